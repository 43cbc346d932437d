//! The lead-export function: SQS batches of export requests, each job run to its end, and the
//! messages that failed reported so only they come again (partial batch responses).

use serde_json::{Value, json};
use shared::export::ExportDeps;
use shared::export::s3::ExportMessage;

/// Runs every job in an SQS event; answers the messages to redeliver. A message that is not an
/// export request is dropped (redelivering it could never succeed).
pub async fn handle(deps: &ExportDeps, event: &Value) -> Value {
    let mut failures = Vec::new();
    for record in event.get("Records").and_then(Value::as_array).into_iter().flatten() {
        let id = record.get("messageId").and_then(Value::as_str).unwrap_or_default();
        let body = record.get("body").and_then(Value::as_str).unwrap_or_default();
        let Ok(message) = serde_json::from_str::<ExportMessage>(body) else {
            tracing::error!(message_id = id, "not an export request; dropped");
            continue;
        };
        if let Err(e) = shared::export::job::run(deps, &message.tenant, &message.export_id).await {
            tracing::error!(error = %e, export_id = message.export_id, "export job failed; it comes again");
            failures.push(json!({"itemIdentifier": id}));
        }
    }
    json!({"batchItemFailures": failures})
}

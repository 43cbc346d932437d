//! The lead-import function: SQS batches of import requests, each import run until its file ends
//! or the function's time is nearly up (it then records its checkpoint and asks to be continued),
//! and the messages that failed reported so only they come again (partial batch responses).

use serde_json::{Value, json};
use shared::import::ImportDeps;
use shared::import::s3::ImportMessage;
use std::time::Instant;

/// Runs every import in an SQS event until `deadline`; answers the messages to redeliver. A
/// message that is not an import request is dropped (redelivering it could never succeed).
pub async fn handle(deps: &ImportDeps, event: &Value, deadline: Option<Instant>) -> Value {
    let mut failures = Vec::new();
    for record in event.get("Records").and_then(Value::as_array).into_iter().flatten() {
        let id = record.get("messageId").and_then(Value::as_str).unwrap_or_default();
        let body = record.get("body").and_then(Value::as_str).unwrap_or_default();
        let Ok(message) = serde_json::from_str::<ImportMessage>(body) else {
            tracing::error!(message_id = id, "not an import request; dropped");
            continue;
        };
        match shared::import::job::run(deps, &message.tenant, &message.import_id, deadline).await {
            Ok(end) => tracing::info!(import_id = message.import_id, ?end, "import run ended"),
            Err(e) => {
                tracing::error!(error = %e, import_id = message.import_id, "import run failed; it comes again");
                failures.push(json!({"itemIdentifier": id}));
            }
        }
    }
    json!({"batchItemFailures": failures})
}

/// When a run must stop: `reserve` before the invocation's deadline (epoch milliseconds).
pub fn stop_at(deadline_ms: u64, now_ms: u64, reserve: std::time::Duration) -> Instant {
    let left = std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(reserve)
}

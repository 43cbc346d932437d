//! The lead-sync function: one binary for the ways a sync starts. EventBridge's schedule fans due
//! connections out to the queue; the queue's batches (scheduled syncs, and the API's on-demand
//! `SyncRequested` events, which the template routes to the same queue) run with bounded
//! concurrency and report partial failures. A `SyncRequested` event delivered straight to the
//! function (the local run, older stacks) runs one connection at once.

use serde::Serialize;
use serde_json::{Value, json};
use shared::store::StoreError;
use shared::sync::fanout::{self, QueueMessage, SyncQueue};
use shared::sync::{SyncEngine, SyncOutcome, SyncRequest};
use tokio::time::Instant;

/// The `detail-type` of on-demand sync events.
pub const SYNC_REQUESTED: &str = shared::sync::requests::EVENT_DETAIL_TYPE;

#[derive(Debug)]
pub enum Invocation {
    Schedule,
    Queue(Vec<QueueMessage>),
    Requested(SyncRequest),
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("unrecognised event: {0}")]
    Unrecognised(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Tells the three event shapes apart.
pub fn classify(event: &Value) -> Result<Invocation, HandlerError> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let messages = records
            .iter()
            .map(|r| {
                let field = |k: &str| r.get(k).and_then(Value::as_str);
                match (field("eventSource"), field("messageId"), field("body")) {
                    (Some("aws:sqs"), Some(id), Some(body)) => Ok(QueueMessage {
                        id: id.to_owned(),
                        body: body.to_owned(),
                        receive_count: r
                            .pointer("/attributes/ApproximateReceiveCount")
                            .and_then(Value::as_str)
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(1),
                    }),
                    _ => Err(HandlerError::Unrecognised("a record that is not an SQS message".into())),
                }
            })
            .collect::<Result<_, _>>()?;
        return Ok(Invocation::Queue(messages));
    }
    match event.get("detail-type").and_then(Value::as_str) {
        Some("Scheduled Event") => Ok(Invocation::Schedule),
        Some(SYNC_REQUESTED) => {
            let detail = event.get("detail").cloned().unwrap_or(Value::Null);
            serde_json::from_value(detail)
                .map(Invocation::Requested)
                .map_err(|e| HandlerError::Unrecognised(format!("SyncRequested detail: {e}")))
        }
        Some(other) => Err(HandlerError::Unrecognised(format!("detail-type {other:?}"))),
        None => Err(HandlerError::Unrecognised(
            "neither SQS records nor an EventBridge event".into(),
        )),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchItemFailure {
    item_identifier: String,
}

/// Handles one invocation; the answer is what Lambda returns to its trigger.
pub async fn handle(
    engine: &SyncEngine,
    queue: Option<&dyn SyncQueue>,
    event: &Value,
    deadline: Option<Instant>,
) -> Result<Value, HandlerError> {
    match classify(event)? {
        Invocation::Schedule => {
            // Housekeeping first and best effort: a failed sweep is retried next tick.
            if let Err(e) = engine.sweep_pending_grants().await {
                tracing::warn!(error = %e, "sweeping expired pending grants failed");
            }
            let report = fanout::schedule(engine, queue, deadline).await?;
            Ok(
                json!({"due": report.due, "queued": report.queued, "completed": report.completed,
                "partial": report.partial, "failed": report.failed, "skipped": report.skipped}),
            )
        }
        Invocation::Queue(messages) => {
            let failures: Vec<BatchItemFailure> = fanout::consume(engine, messages, deadline)
                .await
                .into_iter()
                .map(|item_identifier| BatchItemFailure { item_identifier })
                .collect();
            Ok(json!({ "batchItemFailures": failures }))
        }
        Invocation::Requested(request) => match engine.run(request, deadline).await? {
            SyncOutcome::Ran(task) => Ok(json!({"taskId": task.task_id, "status": task.status})),
            SyncOutcome::Skipped { reason, task } => Ok(json!({
                "taskId": task.map(|t| t.task_id), "status": "SKIPPED", "reason": reason.to_string(),
            })),
        },
    }
}

/// The invocation's deadline (milliseconds since the epoch, from the Lambda context) as an
/// instant; a context without one (0) counts as a deadline already passed.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    shared::deadline::from_epoch_ms(deadline_ms).unwrap_or_else(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_event_shapes_are_told_apart() {
        let schedule = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert!(matches!(classify(&schedule).unwrap(), Invocation::Schedule));
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{}"}]});
        match classify(&sqs).unwrap() {
            Invocation::Queue(m) => assert_eq!((m.len(), m[0].id.as_str()), (1, "m1")),
            other => panic!("{other:?}"),
        }
        let requested = json!({"source": "douyin-leads", "detail-type": "SyncRequested",
            "detail": {"tenant": "t1", "connectionId": "c_1", "taskId": "t_1", "strategy": "FULL"}});
        match classify(&requested).unwrap() {
            Invocation::Requested(r) => {
                assert_eq!((r.tenant.as_str(), r.task_id.as_deref()), ("t1", Some("t_1")));
                assert_eq!(r.strategy, shared::task::Strategy::Full);
                assert_eq!(r.trigger, shared::task::Trigger::Manual);
            }
            other => panic!("{other:?}"),
        }
        assert!(classify(&json!({"detail-type": "Other"})).is_err());
        assert!(classify(&json!({"detail-type": "SyncRequested", "detail": {"tenant": 1}})).is_err());
        assert!(classify(&json!({"Records": [{"eventSource": "aws:s3"}]})).is_err());
    }
}

//! Fan-out: the scheduled invocation lists due connections and queues one message each; queue
//! batches (and on-demand events) run with bounded concurrency and report which messages failed
//! so only those are redelivered (and, after a few tries, land in the dead-letter queue).

use super::{SyncEngine, SyncOutcome, SyncRequest};
use crate::store::StoreError;
use crate::task::TaskStatus;
use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::time::Instant;

/// SendMessageBatch takes at most 10 entries.
const SQS_BATCH: usize = 10;
const SEND_ATTEMPTS: u32 = 3;

#[async_trait]
pub trait SyncQueue: Send + Sync {
    async fn send(&self, requests: &[SyncRequest]) -> Result<(), StoreError>;
}

pub struct SqsSyncQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsSyncQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

#[async_trait]
impl SyncQueue for SqsSyncQueue {
    async fn send(&self, requests: &[SyncRequest]) -> Result<(), StoreError> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        for chunk in requests.chunks(SQS_BATCH) {
            let mut pending: Vec<(String, String)> = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| (i.to_string(), serde_json::to_string(r).expect("requests serialize")))
                .collect();
            let mut attempt = 1;
            while !pending.is_empty() {
                let entries = pending
                    .iter()
                    .map(|(id, body)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(id)
                            .message_body(body)
                            .build()
                            .expect("id and body are set")
                    })
                    .collect();
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| StoreError::new("queue syncs", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
                let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                pending.retain(|(id, _)| failed.contains(&id.as_str()));
                if !pending.is_empty() {
                    if attempt >= SEND_ATTEMPTS {
                        return Err(StoreError::new(
                            "queue syncs",
                            format!("{} messages were refused", pending.len()),
                        ));
                    }
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
        Ok(())
    }
}

/// What a scheduled invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleReport {
    pub due: usize,
    pub queued: usize,
    /// Without a queue the scheduler runs the syncs itself; these count how they ended.
    pub completed: usize,
    pub partial: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Lists the due connections (every ACTIVE one) and queues them, or runs them when there is no queue.
pub async fn schedule(
    engine: &SyncEngine,
    queue: Option<&dyn SyncQueue>,
    deadline: Option<Instant>,
) -> Result<ScheduleReport, StoreError> {
    let due: Vec<SyncRequest> = engine
        .stores()
        .ledger
        .list_active()
        .await?
        .iter()
        .map(SyncRequest::scheduled)
        .collect();
    let mut report = ScheduleReport {
        due: due.len(),
        ..ScheduleReport::default()
    };
    if let Some(queue) = queue {
        queue.send(&due).await?;
        report.queued = due.len();
    } else {
        for (_, result) in run_many(engine, due.into_iter().enumerate().collect(), deadline).await {
            match result {
                Ok(SyncOutcome::Ran(task)) => match task.status {
                    TaskStatus::Completed => report.completed += 1,
                    TaskStatus::Partial => report.partial += 1,
                    _ => report.failed += 1,
                },
                Ok(SyncOutcome::Skipped { .. }) => report.skipped += 1,
                Err(_) => report.failed += 1,
            }
        }
    }
    tracing::info!(
        due = report.due,
        queued = report.queued,
        completed = report.completed,
        partial = report.partial,
        failed = report.failed,
        skipped = report.skipped,
        "scheduled sync"
    );
    Ok(report)
}

/// Runs requests with at most `connection_concurrency` at once; results keep their keys.
pub async fn run_many<K: Send>(
    engine: &SyncEngine,
    requests: Vec<(K, SyncRequest)>,
    deadline: Option<Instant>,
) -> Vec<(K, Result<SyncOutcome, StoreError>)> {
    futures_util::stream::iter(requests)
        .map(|(key, request)| async move {
            let result = engine.run(request, deadline).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "sync run failed");
            }
            (key, result)
        })
        .buffer_unordered(engine.config().connection_concurrency.max(1))
        .collect()
        .await
}

/// A queue message: its id (for partial batch failures) and body.
#[derive(Debug, Clone)]
pub struct QueueMessage {
    pub id: String,
    pub body: String,
    /// Deliveries so far, this one included (`ApproximateReceiveCount`).
    pub receive_count: u32,
}

/// Runs a batch of queue messages; returns the ids of those to redeliver. A body that is not a
/// sync request is redelivered too, so it ends in the dead-letter queue for someone to look at.
/// A run that fails on the message's last delivery closes its task as FAILED first: the message
/// goes to the dead-letter queue, and the task must not stay PENDING or PROCESSING for ever.
pub async fn consume(engine: &SyncEngine, messages: Vec<QueueMessage>, deadline: Option<Instant>) -> Vec<String> {
    let mut failed = Vec::new();
    let mut runnable = Vec::new();
    let mut last = std::collections::HashMap::new();
    for message in messages {
        match serde_json::from_str::<SyncRequest>(&message.body) {
            Ok(request) => {
                if message.receive_count >= engine.config().max_receives {
                    last.insert(message.id.clone(), request.clone());
                }
                runnable.push((message.id, request));
            }
            Err(e) => {
                tracing::error!(message = %message.id, error = %e, "queue message is not a sync request");
                failed.push(message.id);
            }
        }
    }
    for (id, result) in run_many(engine, runnable, deadline).await {
        let Err(e) = result else { continue };
        if let Some(request) = last.get(&id)
            && let Err(close) = engine.give_up(request, &e).await
        {
            tracing::error!(message = %id, error = %close, "could not close the task of a dead message");
        }
        failed.push(id);
    }
    failed
}

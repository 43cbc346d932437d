//! The lead-events function: a batch of DynamoDB Streams records (leads and connections tables)
//! becomes events on the leads bus. A record whose events cannot be published is reported as
//! the batch's first failure: Lambda retries from it, in order, so per-item order holds, and
//! consumers drop the repeats of what was already delivered by `eventId`.
//!
//! The same events become deliveries for the tenant's webhooks and bots (one per subscription and
//! event, made once however often a record is replayed), which the same function then sends from
//! the delivery queue.

use serde_json::{Value, json};
use shared::events::bus::EventPublisher;
use shared::events::stream::{self, ChangeRecord};
use shared::events::{EventRules, OutboundEvent};
use shared::outbound::deliver::Deliverer;
use shared::outbound::queue::DeliveryMessage;
use shared::store::StoreError;
use shared::writeback::runner::WriteBackRunner;

/// Whether a Lambda event is a batch from the delivery queue (else: stream records).
pub fn is_queue_batch(event: &Value) -> bool {
    event["Records"][0]["eventSource"] == "aws:sqs"
}

/// Sends what a batch of delivery messages names. A message whose delivery could not be
/// recorded (the store or queue failed) is reported back and comes again; a failed send is not
/// such a failure: the delivery itself schedules its retry.
pub async fn handle_deliveries(outbound: &Outbound, event: &Value) -> Value {
    use futures_util::StreamExt;
    let records = event["Records"].as_array().cloned().unwrap_or_default();
    // Concurrently: each send may take its whole timeout, and the batch must fit the function's.
    let failures: Vec<Value> = futures_util::stream::iter(records.iter().map(|record| async move {
        let id = record["messageId"].as_str().unwrap_or_default().to_owned();
        let message: Result<DeliveryMessage, _> = serde_json::from_str(record["body"].as_str().unwrap_or_default());
        let Ok(message) = message else {
            // Not a message of ours: retrying cannot help; it is logged and dropped.
            tracing::error!(message_id = %id, "a delivery message could not be read");
            return None;
        };
        match outbound.handle(&message).await {
            Ok(step) => {
                tracing::debug!(message_id = %id, %step, "delivery message handled");
                None
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "a delivery message failed; it comes again");
                Some(json!({"itemIdentifier": id}))
            }
        }
    }))
    .buffer_unordered(DELIVERY_CONCURRENCY)
    .filter_map(|f| async move { f })
    .collect()
    .await;
    json!({ "batchItemFailures": failures })
}

/// What leaves through the delivery queue: webhook and bot deliveries, and status write-backs.
pub struct Outbound {
    pub deliverer: Deliverer,
    pub writeback: Option<WriteBackRunner>,
}

impl Outbound {
    /// The deliveries and write-backs a batch of events asks for, made and queued.
    pub async fn fan_out(&self, events: &[OutboundEvent]) -> Result<(), StoreError> {
        self.deliverer.fan_out(events).await?;
        if let Some(writeback) = &self.writeback {
            writeback.request(events).await?;
        }
        Ok(())
    }

    pub async fn handle(&self, message: &DeliveryMessage) -> Result<String, StoreError> {
        match (&message.write_back, &self.writeback) {
            (Some(_), Some(writeback)) => writeback.handle(message).await.map(|s| format!("{s:?}")),
            (Some(_), None) => Ok("write-back off".into()),
            (None, _) => self.deliverer.handle(message).await.map(|s| format!("{s:?}")),
        }
    }
}

/// Delivery messages of one batch handled at once (the queue's batch size).
const DELIVERY_CONCURRENCY: usize = 10;

/// What one invocation did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub records: usize,
    pub events: usize,
    /// The sequence number Lambda retries from, when something failed.
    pub retry_from: Option<String>,
}

/// Handles one batch; the answer is the partial batch response Lambda expects.
pub async fn handle(
    publisher: &dyn EventPublisher,
    outbound: Option<&Outbound>,
    rules: EventRules,
    event: &Value,
) -> Result<(Value, Outcome), StoreError> {
    let records = stream::records(event)?;
    let mut derived: Vec<(&ChangeRecord, Vec<OutboundEvent>)> = Vec::with_capacity(records.len());
    let mut first_failure: Option<usize> = None;
    for (i, record) in records.iter().enumerate() {
        match stream::events_of(record, rules) {
            Ok(events) => derived.push((record, events)),
            Err(e) => {
                // Not ours to skip: it goes back to Lambda, and after its retries to the DLQ.
                tracing::error!(sequence = %record.sequence, error = %e, "a stream record could not be read");
                first_failure = Some(i);
                break;
            }
        }
    }
    let events: Vec<OutboundEvent> = derived.iter().flat_map(|(_, e)| e.iter().cloned()).collect();
    let refused = publisher.publish(&events).await?;
    if !refused.is_empty()
        && let Some(i) = derived
            .iter()
            .position(|(_, events)| events.iter().any(|e| refused.contains(&e.id)))
    {
        first_failure = Some(first_failure.map_or(i, |f| f.min(i)));
    }
    if let Some(outbound) = outbound
        && let Err(e) = outbound.fan_out(&events).await
    {
        // Deliveries already made are found again on the retry; none is made twice.
        tracing::error!(error = %e, "deliveries could not be made; the batch is retried");
        first_failure = derived
            .iter()
            .position(|(_, events)| !events.is_empty())
            .or(first_failure);
    }
    let retry_from = first_failure.map(|i| records[i].sequence.clone());
    let failures: Vec<Value> = retry_from.iter().map(|s| json!({"itemIdentifier": s})).collect();
    let outcome = Outcome {
        records: records.len(),
        events: events.len() - refused.len(),
        retry_from,
    };
    tracing::info!(records = outcome.records, events = outcome.events, retry_from = ?outcome.retry_from, "stream batch handled");
    Ok((json!({ "batchItemFailures": failures }), outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const RULES: EventRules = EventRules { sync_failing_after: 3 };

    /// A bus that refuses the events of one lead, as PutEvents reports partial failures.
    struct Refusing {
        lead: &'static str,
        published: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl EventPublisher for Refusing {
        async fn publish(&self, events: &[OutboundEvent]) -> Result<Vec<String>, StoreError> {
            let mut refused = Vec::new();
            for e in events {
                if e.detail["leadId"] == self.lead {
                    refused.push(e.id.clone());
                } else {
                    self.published.lock().unwrap().push(e.id.clone());
                }
            }
            Ok(refused)
        }
    }

    fn lead_image(id: &str) -> Value {
        json!({
            "pk": {"S": "TENANT#t1"}, "sk": {"S": format!("LEAD#{id}")}, "leadId": {"S": id},
            "connectionId": {"S": "c_1"}, "source": {"S": "feiyu"}, "sourceLeadId": {"S": "77"},
            "fields": {"M": {"clueType": {"S": "FORM"}, "phone": {"S": "13800138000"}}},
            "contentHash": {"S": "h1"}, "acquiredAt": {"S": "2026-12-01T00:00:00Z"},
            "updatedAt": {"S": "2026-12-01T00:00:00Z"}, "status": {"S": "NEW"}, "version": {"N": "1"},
        })
    }

    fn batch(ids: &[&str]) -> Value {
        let records: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"eventName": "INSERT", "dynamodb": {"SequenceNumber": format!("{}", 100 + i), "NewImage": lead_image(id)}}))
            .collect();
        json!({ "Records": records })
    }

    #[tokio::test]
    async fn a_refused_event_makes_its_record_the_point_lambda_retries_from() {
        let bus = Refusing {
            lead: "l_b",
            published: Mutex::default(),
        };
        let (answer, outcome) = handle(&bus, None, RULES, &batch(&["l_a", "l_b", "l_c"])).await.unwrap();
        assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "101"}]}));
        assert_eq!((outcome.records, outcome.events), (3, 2));
        let (answer, _) = handle(&bus, None, RULES, &batch(&["l_a", "l_c"])).await.unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }

    #[tokio::test]
    async fn an_unreadable_record_is_retried_not_skipped() {
        let bus = Refusing {
            lead: "none",
            published: Mutex::default(),
        };
        let mut event = batch(&["l_a", "l_b"]);
        event["Records"][1]["dynamodb"]["NewImage"]["status"] = json!({"S": "NOT_A_STATUS"});
        let (answer, outcome) = handle(&bus, None, RULES, &event).await.unwrap();
        assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "101"}]}));
        assert_eq!(outcome.events, 1, "what came before it is published");
    }
}

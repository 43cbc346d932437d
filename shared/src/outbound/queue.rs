//! The delivery queue: one message per attempt due, sent again with a delay for each retry (SQS
//! holds a message back at most 15 minutes, so longer waits are taken in hops). A message only
//! names its delivery; the record is the truth, so a duplicate message changes nothing.

use crate::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryMessage {
    pub tenant: String,
    pub hook_id: String,
    /// An attempt at this delivery…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// …or the bot digest of this minute…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_window: Option<i64>,
    /// …or the status write-back of this lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back: Option<String>,
}

#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    async fn send(&self, messages: &[DeliveryMessage], delay: Duration) -> Result<(), StoreError>;
    /// A delivery given up on, described for the operators' alarm.
    async fn dead_letter(&self, message: &DeliveryMessage, why: &str) -> Result<(), StoreError>;
}

pub struct SqsDeliveryQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    dead_letter_url: Option<String>,
    max_delay: Duration,
}

impl SqsDeliveryQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: String, dead_letter_url: Option<String>, max_delay: Duration) -> Self {
        Self {
            client,
            url,
            dead_letter_url,
            max_delay,
        }
    }
}

fn encode(message: &DeliveryMessage) -> Result<String, StoreError> {
    serde_json::to_string(message).map_err(|e| StoreError::new("encode delivery message", e))
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    async fn send(&self, messages: &[DeliveryMessage], delay: Duration) -> Result<(), StoreError> {
        let delay = delay.min(self.max_delay).as_secs() as i32;
        for chunk in messages.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, m) in chunk.iter().enumerate() {
                entries.push(
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(encode(m)?)
                        .delay_seconds(delay)
                        .build()
                        .map_err(|e| StoreError::new("build delivery message", e))?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| StoreError::new("send delivery messages", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            if !out.failed().is_empty() {
                return Err(StoreError::new(
                    "send delivery messages",
                    format!("{} of {} refused", out.failed().len(), chunk.len()),
                ));
            }
        }
        Ok(())
    }

    async fn dead_letter(&self, message: &DeliveryMessage, why: &str) -> Result<(), StoreError> {
        let Some(url) = &self.dead_letter_url else {
            return Ok(());
        };
        let mut body = serde_json::to_value(message).map_err(|e| StoreError::new("encode delivery message", e))?;
        body["reason"] = serde_json::Value::String(why.to_owned());
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body.to_string())
            .send()
            .await
            .map_err(|e| StoreError::new("dead-letter delivery", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
    }
}

/// The local run's and the tests' queue: messages wait for their due time by a clock the caller
/// chooses, so a day of retries can pass in a test.
pub struct MemoryDeliveryQueue {
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    waiting: Mutex<Vec<(DateTime<Utc>, DeliveryMessage)>>,
    dead: Mutex<Vec<(DeliveryMessage, String)>>,
}

impl MemoryDeliveryQueue {
    pub fn new(clock: std::sync::Arc<dyn crate::clock::Clock>) -> Self {
        Self {
            clock,
            waiting: Mutex::default(),
            dead: Mutex::default(),
        }
    }

    /// The messages due now, taken off the queue, oldest first.
    pub fn take_due(&self) -> Vec<DeliveryMessage> {
        let now = self.clock.now();
        let mut waiting = crate::store::memory::lock(&self.waiting);
        waiting.sort_by_key(|(due, _)| *due);
        let split = waiting.partition_point(|(due, _)| *due <= now);
        waiting.drain(..split).map(|(_, m)| m).collect()
    }

    pub fn waiting(&self) -> usize {
        crate::store::memory::lock(&self.waiting).len()
    }

    /// When the next message is due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        crate::store::memory::lock(&self.waiting).iter().map(|(d, _)| *d).min()
    }

    pub fn dead_letters(&self) -> Vec<(DeliveryMessage, String)> {
        crate::store::memory::lock(&self.dead).clone()
    }
}

#[async_trait]
impl DeliveryQueue for MemoryDeliveryQueue {
    async fn send(&self, messages: &[DeliveryMessage], delay: Duration) -> Result<(), StoreError> {
        let due = self.clock.now() + chrono::Duration::milliseconds(delay.as_millis() as i64);
        crate::store::memory::lock(&self.waiting).extend(messages.iter().cloned().map(|m| (due, m)));
        Ok(())
    }

    async fn dead_letter(&self, message: &DeliveryMessage, why: &str) -> Result<(), StoreError> {
        crate::store::memory::lock(&self.dead).push((message.clone(), why.to_owned()));
        Ok(())
    }
}

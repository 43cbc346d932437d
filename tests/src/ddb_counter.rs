//! Counts DynamoDB requests by operation, read from the `X-Amz-Target` header of every request
//! the SDK sends: the proof that an unchanged re-pull writes nothing, and the benchmark's figures.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, Clone)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<(String, String), u64>>>, Arc<Mutex<f64>>);

/// Operations that write items.
const WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

impl RequestCounter {
    /// Requests by (operation, table).
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    /// Write requests that touched `table`.
    pub fn writes_to(&self, table: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((op, t), _)| WRITES.contains(&op.as_str()) && t == table)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests of any kind that touched `table`.
    pub fn requests_to(&self, table: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((_, t), _)| t == table)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.1.lock().unwrap_or_else(|e| e.into_inner()) = 0.0;
    }

    /// Read capacity units the reads consumed, as DynamoDB reports them (every read asks for
    /// `ReturnConsumedCapacity = TOTAL` through this counter).
    pub fn read_units(&self) -> f64 {
        *self.1.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_get_item::BatchGetItemInput, get_item::GetItemInput, query::QueryInput,
        };
        use aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total;
        let input = context.input_mut();
        if let Some(q) = input.downcast_mut::<QueryInput>() {
            q.return_consumed_capacity = Some(Total);
        } else if let Some(g) = input.downcast_mut::<GetItemInput>() {
            g.return_consumed_capacity = Some(Total);
        } else if let Some(b) = input.downcast_mut::<BatchGetItemInput>() {
            b.return_consumed_capacity = Some(Total);
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_get_item::BatchGetItemOutput, get_item::GetItemOutput, query::QueryOutput,
        };
        use aws_sdk_dynamodb::types::ConsumedCapacity;
        let units = |c: Option<&ConsumedCapacity>| c.and_then(|c| c.capacity_units).unwrap_or(0.0);
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let consumed = if let Some(q) = output.downcast_ref::<QueryOutput>() {
            units(q.consumed_capacity.as_ref())
        } else if let Some(g) = output.downcast_ref::<GetItemOutput>() {
            units(g.consumed_capacity.as_ref())
        } else if let Some(b) = output.downcast_ref::<BatchGetItemOutput>() {
            b.consumed_capacity.iter().flatten().map(|c| units(Some(c))).sum()
        } else {
            0.0
        };
        *self.1.lock().unwrap_or_else(|e| e.into_inner()) += consumed;
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
            .to_owned();
        let body: serde_json::Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        // Single-table calls name `TableName`; batch calls key `RequestItems` by table;
        // transactions name a table in each item.
        let mut tables: Vec<String> = match body.get("TableName").and_then(|t| t.as_str()) {
            Some(t) => vec![t.to_owned()],
            None => body
                .get("RequestItems")
                .and_then(|r| r.as_object())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        };
        if let Some(items) = body.get("TransactItems").and_then(|t| t.as_array()) {
            for item in items {
                let table = item
                    .as_object()
                    .and_then(|o| o.values().next())
                    .and_then(|op| op.get("TableName"))
                    .and_then(|t| t.as_str());
                if let Some(t) = table
                    && !tables.iter().any(|x| x == t)
                {
                    tables.push(t.to_owned());
                }
            }
        }
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for table in tables {
            *counts.entry((operation.clone(), table)).or_default() += 1;
        }
        Ok(())
    }
}

/// A DynamoDB client for the moto server whose requests `counter` sees.
pub async fn counted_client(counter: &RequestCounter) -> aws_sdk_dynamodb::Client {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(counter.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

//! DynamoDB attribute helpers shared by the DynamoDB adapters: typed getters that name the
//! attribute on failure, and a JSON ↔ attribute mapping for nested values.

use super::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn list(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.clone())).collect())
}

pub fn time(t: DateTime<Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

pub fn get_s(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::new(
            "decode item",
            format!("attribute {name} is missing or not a string"),
        )),
    }
}

pub fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub fn get_n(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub fn get_list(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttributeValue::L(values)) => values.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
        _ => Vec::new(),
    }
}

pub fn parse_time(name: &str, raw: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::new("decode item", format!("attribute {name}: {e}")))
}

pub fn get_time(item: &Item, name: &str) -> Result<DateTime<Utc>, StoreError> {
    parse_time(name, &get_s(item, name)?)
}

pub fn get_opt_time(item: &Item, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    get_opt_s(item, name).map(|raw| parse_time(name, &raw)).transpose()
}

pub fn sdk_error<E, R>(operation: &'static str, err: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::new(operation, aws_sdk_dynamodb::error::DisplayErrorContext(err))
}

/// A strongly consistent GetItem of `key`.
pub async fn get_consistent(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: Item,
    operation: &'static str,
) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| sdk_error(operation, e))?;
    Ok(out.item)
}

/// Every item `query` finds, page after page (each next page from the last one's
/// `LastEvaluatedKey`). For reads whose whole answer is wanted and bounded by the caller's range.
pub async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    operation: &'static str,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = query
            .clone()
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| sdk_error(operation, e))?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(items),
        }
    }
}

/// True when the error is a failed condition (of any single-item write), which callers turn into
/// a domain answer.
pub fn is_condition_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    err: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// BatchWriteItem in chunks of 25, unprocessed requests sent again with backoff; an error when
/// some stay unprocessed (throttled) after 8 tries, so nothing is silently left unwritten.
pub async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    all: Vec<aws_sdk_dynamodb::types::WriteRequest>,
    operation: &'static str,
) -> Result<(), StoreError> {
    const ATTEMPTS: u32 = 8;
    // BatchWriteItem takes at most 25 requests (moto accepts more; AWS does not).
    for chunk in all.chunks(25) {
        let mut requests = chunk.to_vec();
        let mut attempt = 0;
        while !requests.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .map_err(|e| sdk_error(operation, e))?;
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(table))
                .unwrap_or_default();
            if !requests.is_empty() {
                attempt += 1;
                if attempt >= ATTEMPTS {
                    return Err(StoreError::new(operation, "items stayed unprocessed (throttled)"));
                }
                tokio::time::sleep(std::time::Duration::from_millis(25u64 << attempt.min(6))).await;
            }
        }
    }
    Ok(())
}

/// One BatchGetItem request (at most 100 keys) to its end: unprocessed keys are asked for again
/// with backoff, an error when some stay unprocessed after 8 tries. The items found, by `sk`.
pub async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    request: aws_sdk_dynamodb::types::KeysAndAttributes,
    operation: &'static str,
    found: &mut HashMap<String, Item>,
) -> Result<(), StoreError> {
    const ATTEMPTS: u32 = 8;
    let mut pending = Some(request);
    let mut attempt = 0;
    while let Some(request) = pending.take() {
        let out = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| sdk_error(operation, e))?;
        for item in out.responses.unwrap_or_default().remove(table).unwrap_or_default() {
            found.insert(get_s(&item, "sk")?, item);
        }
        pending = out
            .unprocessed_keys
            .and_then(|mut u| u.remove(table))
            .filter(|k| !k.keys().is_empty());
        if pending.is_some() {
            attempt += 1;
            if attempt >= ATTEMPTS {
                return Err(StoreError::new(operation, "keys stayed unprocessed (throttled)"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(25u64 << attempt.min(6))).await;
        }
    }
    Ok(())
}

/// JSON to a DynamoDB value: objects become maps, arrays lists; numbers keep their text.
pub fn from_json(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(num) => AttributeValue::N(num.to_string()),
        Value::String(text) => AttributeValue::S(text.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(from_json).collect()),
        Value::Object(map) => AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()),
    }
}

pub fn to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())),
        AttributeValue::S(text) => Value::String(text.clone()),
        AttributeValue::L(items) => Value::Array(items.iter().map(to_json).collect()),
        AttributeValue::M(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        AttributeValue::Ss(items) => Value::Array(items.iter().cloned().map(Value::String).collect()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_attributes() {
        let v = serde_json::json!({"a": [1, "x", null, true], "b": {"c": 7391234567890123456u64}, "d": 1.5});
        assert_eq!(to_json(&from_json(&v)), v);
    }
}

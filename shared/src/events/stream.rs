//! DynamoDB Streams records as Lambda delivers them (`Records[].dynamodb.{OldImage,NewImage}` in
//! DynamoDB's typed JSON), read back into the items the stores wrote, and then into events.

use super::{EventRules, OutboundEvent, RunHealth, connection_row_events, lead_events};
use crate::store::attr::Item;
use crate::store::dynamo::DynamoConnectionStore;
use crate::store::dynamo_sync::decode_sync_info;
use crate::store::{StoreError, dynamo_leads};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

/// One stream record: its sequence number (what a partial batch failure names) and its images.
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    pub sequence: String,
    pub old: Option<Item>,
    pub new: Option<Item>,
}

fn bad(message: impl std::fmt::Display) -> StoreError {
    StoreError::new("read stream record", message)
}

/// DynamoDB's typed JSON (`{"S": "…"}`, `{"N": "1"}`, `{"M": {…}}`, …) as an attribute value.
pub fn typed(value: &Value) -> Result<AttributeValue, StoreError> {
    let Some((kind, v)) = value.as_object().and_then(|o| o.iter().next()) else {
        return Err(bad("an attribute value is not a typed object"));
    };
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("{kind} is not a string")))
    };
    let list = |v: &Value| {
        v.as_array()
            .cloned()
            .ok_or_else(|| bad(format!("{kind} is not a list")))
    };
    let blob = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(text(v)?)
            .map(Blob::new)
            .map_err(bad)
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text(v)?),
        "N" => AttributeValue::N(text(v)?),
        "B" => AttributeValue::B(blob(v)?),
        "BOOL" => AttributeValue::Bool(v.as_bool().ok_or_else(|| bad("BOOL is not a boolean"))?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(list(v)?.iter().map(text).collect::<Result<_, _>>()?),
        "NS" => AttributeValue::Ns(list(v)?.iter().map(text).collect::<Result<_, _>>()?),
        "BS" => AttributeValue::Bs(list(v)?.iter().map(blob).collect::<Result<_, _>>()?),
        "L" => AttributeValue::L(list(v)?.iter().map(typed).collect::<Result<_, _>>()?),
        "M" => AttributeValue::M(image(v)?),
        other => return Err(bad(format!("unknown attribute type {other}"))),
    })
}

fn image(value: &Value) -> Result<Item, StoreError> {
    let object = value.as_object().ok_or_else(|| bad("an image is not an object"))?;
    object.iter().map(|(k, v)| Ok((k.clone(), typed(v)?))).collect()
}

/// The records of a Lambda DynamoDB Streams event, in order.
pub fn records(event: &Value) -> Result<Vec<ChangeRecord>, StoreError> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("not a DynamoDB Streams event"))?;
    records
        .iter()
        .map(|r| {
            let change = r.get("dynamodb").ok_or_else(|| bad("a record without dynamodb"))?;
            Ok(ChangeRecord {
                sequence: change
                    .get("SequenceNumber")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("a record without SequenceNumber"))?
                    .to_owned(),
                old: change.get("OldImage").map(image).transpose()?,
                new: change.get("NewImage").map(image).transpose()?,
            })
        })
        .collect()
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// The events a record means. Only lead and connection rows speak, told by their key; a
/// counter, a history entry, a phone index, a claim, an audit or export record means none.
pub fn events_of(record: &ChangeRecord, rules: EventRules) -> Result<Vec<OutboundEvent>, StoreError> {
    let Some(item) = record.new.as_ref().or(record.old.as_ref()) else {
        return Ok(Vec::new());
    };
    let (Some(pk), Some(sk)) = (text(item, "pk"), text(item, "sk")) else {
        return Ok(Vec::new());
    };
    if !pk.starts_with("TENANT#") {
        return Ok(Vec::new());
    }
    if sk.starts_with("LEAD#") {
        let old = record.old.as_ref().map(dynamo_leads::decode).transpose()?;
        let new = record.new.as_ref().map(dynamo_leads::decode).transpose()?;
        return Ok(lead_events(old.as_ref(), new.as_ref()));
    }
    if sk.starts_with("CONN#") {
        // The row and its sync bookkeeping, read as the stores read them.
        let row = |image: Option<&Item>| {
            image
                .map(|i| Ok::<_, StoreError>((DynamoConnectionStore::decode(i)?, RunHealth::of(&decode_sync_info(i)?))))
                .transpose()
        };
        let (old, new) = (row(record.old.as_ref())?, row(record.new.as_ref())?);
        return Ok(connection_row_events(
            old.as_ref().map(|(c, h)| (c, h)),
            new.as_ref().map(|(c, h)| (c, h)),
            rules,
        ));
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_json_reads_every_attribute_type() {
        let v = json!({"M": {"s": {"S": "x"}, "n": {"N": "12"}, "l": {"L": [{"BOOL": true}, {"NULL": true}]},
            "ss": {"SS": ["a", "b"]}, "b": {"B": "AAE="}}});
        let AttributeValue::M(m) = typed(&v).unwrap() else {
            panic!("a map")
        };
        assert_eq!(m["s"], AttributeValue::S("x".into()));
        assert_eq!(m["n"], AttributeValue::N("12".into()));
        assert_eq!(
            m["l"],
            AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null(true)])
        );
        assert_eq!(m["b"], AttributeValue::B(Blob::new(vec![0, 1])));
        assert!(typed(&json!({"X": 1})).is_err());
    }

    #[test]
    fn bookkeeping_rows_emit_nothing() {
        let event = json!({"Records": [
            {"dynamodb": {"SequenceNumber": "1", "NewImage": {"pk": {"S": "TENANT#t"}, "sk": {"S": "COUNT#all#2026-12-02"}, "n": {"N": "3"}}}},
            {"dynamodb": {"SequenceNumber": "2", "NewImage": {"pk": {"S": "HIST#t#l_1"}, "sk": {"S": "H#1"}}}},
            {"dynamodb": {"SequenceNumber": "3", "NewImage": {"pk": {"S": "CLAIM#douyin#x"}, "sk": {"S": "CLAIM"}}}}
        ]});
        let rules = EventRules { sync_failing_after: 3 };
        for record in records(&event).unwrap() {
            assert!(events_of(&record, rules).unwrap().is_empty(), "{}", record.sequence);
        }
    }
}

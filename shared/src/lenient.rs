//! Decoding helpers for platform JSON, where the same field arrives as a number in one response
//! and as a numeric string in another (`expires_in`, `error_code`, ids above 2^53).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Reads an integer given as a number or a numeric string; null or absent reads as 0.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value
        .as_ref()
        .map(value_to_int)
        .transpose()
        .map_err(serde::de::Error::custom)?
        .unwrap_or(0))
}

/// Reads an id given as a number or a string and keeps it as a string, so 19-digit ids survive.
pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.as_ref().and_then(value_to_id).unwrap_or_default())
}

/// A list of ids, each a number or a string.
pub fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let value = Option::<Vec<Value>>::deserialize(d)?;
    Ok(value.unwrap_or_default().iter().filter_map(value_to_id).collect())
}

pub fn value_to_int(value: &Value) -> Result<i64, String> {
    match value {
        Value::Null => Ok(0),
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not a 64-bit integer")),
        Value::String(s) if s.trim().is_empty() => Ok(0),
        Value::String(s) => s.trim().parse().map_err(|_| format!("{s:?} is not an integer")),
        other => Err(format!("expected an integer, found {other}")),
    }
}

pub fn value_to_id(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "int")]
        n: i64,
        #[serde(default, deserialize_with = "id")]
        id: String,
        #[serde(default, deserialize_with = "ids")]
        ids: Vec<String>,
    }

    #[test]
    fn numbers_and_numeric_strings_read_the_same() {
        let a: Sample = serde_json::from_str(r#"{"n":86400,"id":7391234567890123456,"ids":[1,"2"]}"#).unwrap();
        let b: Sample = serde_json::from_str(r#"{"n":"86400","id":"7391234567890123456","ids":["1",2]}"#).unwrap();
        assert_eq!(a.n, 86400);
        assert_eq!(b.n, 86400);
        assert_eq!(a.id, "7391234567890123456");
        assert_eq!(a.id, b.id);
        assert_eq!(a.ids, vec!["1", "2"]);
        assert_eq!(b.ids, vec!["1", "2"]);
    }

    #[test]
    fn missing_and_null_read_as_defaults() {
        let s: Sample = serde_json::from_str(r#"{"n":null}"#).unwrap();
        assert_eq!((s.n, s.id.as_str(), s.ids.len()), (0, "", 0));
    }

    #[test]
    fn garbage_is_an_error_not_a_zero() {
        assert!(serde_json::from_str::<Sample>(r#"{"n":"soon"}"#).is_err());
        assert!(serde_json::from_str::<Sample>(r#"{"n":1.5}"#).is_err());
    }
}

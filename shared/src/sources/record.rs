//! Tolerant readers for platform records: the same field arrives as a number, a numeric string,
//! an empty string or not at all, depending on the endpoint and the doc version.

use crate::platform::{Platform, PlatformError};
use serde_json::Value;
use std::collections::BTreeMap;

/// A non-empty text. A number becomes its decimal text, so `1` and `"1"` read the same: the
/// platforms switch between the two, and a switch must not look like a change.
pub fn text(record: &Value, key: &str) -> Option<String> {
    match record.get(key)? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An id in its one canonical form: decimal text, whatever the wire type. The platforms send
/// `0` (or `"0"`, or `""`) for "no such id" (an ad lead has no promotion, a natural lead no ad),
/// so every spelling of zero is absent; leading zeros of a numeric id are dropped.
pub fn id(record: &Value, key: &str) -> Option<String> {
    let raw = text(record, key)?;
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        let trimmed = raw.trim_start_matches('0');
        return (!trimmed.is_empty()).then(|| trimmed.to_owned());
    }
    Some(raw)
}

/// The first present id of `keys`.
pub fn first_id(record: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| id(record, k))
}

/// An integer from a number or a numeric string.
pub fn int(record: &Value, key: &str) -> Option<i64> {
    match record.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The first present field of `keys`.
pub fn first_text(record: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| text(record, k))
}

/// Joins the present parts (`浙江省 杭州市 西湖区`).
pub fn joined(record: &Value, keys: &[&str]) -> Option<String> {
    let parts: Vec<String> = keys.iter().filter_map(|k| text(record, k)).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// `remark_dict`: an object, or a JSON string holding one. Values become text.
pub fn form_fields(record: &Value, key: &str) -> BTreeMap<String, String> {
    let parsed;
    let object = match record.get(key) {
        Some(Value::Object(map)) => map,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(map)) => {
                parsed = map;
                &parsed
            }
            _ => return BTreeMap::new(),
        },
        _ => return BTreeMap::new(),
    };
    object
        .iter()
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((k.clone(), value))
        })
        .collect()
}

/// The list under `key` in a page's data, or an empty one.
pub fn list<'a>(data: &'a Value, key: &str) -> &'a [Value] {
    data.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The rows of a page. A page without its list is not an empty page: taking it for one would
/// move the watermark over leads never seen, so it is an unreadable answer (retried).
pub fn rows<'a>(data: &'a Value, key: &str, platform: Platform) -> Result<&'a [Value], PlatformError> {
    match data.get(key) {
        Some(Value::Array(rows)) => Ok(rows),
        // Some platforms send null for an empty page.
        Some(Value::Null) => Ok(&[]),
        _ => Err(PlatformError::Decode {
            platform,
            message: format!("the page has no `{key}` list"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readers_tolerate_numbers_strings_and_blanks() {
        let r = json!({"a": 7391234567890123456u64, "b": "", "c": "42", "d": 0, "e": {"x": 1},
            "f": "{\"预约时间\":\"周六\"}", "g": {"k": "v", "n": 2, "z": null}});
        assert_eq!(text(&r, "a").as_deref(), Some("7391234567890123456"));
        assert_eq!(text(&r, "b"), None);
        assert_eq!(text(&r, "d").as_deref(), Some("0"));
        assert_eq!(int(&r, "c"), Some(42));
        assert_eq!(form_fields(&r, "f").get("预约时间").map(String::as_str), Some("周六"));
        let g = form_fields(&r, "g");
        assert_eq!(
            (g.get("k").map(String::as_str), g.get("n").map(String::as_str), g.len()),
            (Some("v"), Some("2"), 2)
        );
    }

    #[test]
    fn every_spelling_of_an_id_reads_the_same() {
        let r = json!({"n0": 0, "s0": "0", "e": "", "zs": "000", "n": 7381234567000000000u64,
            "s": "7381234567000000000", "lead0": "0042", "word": "abc"});
        for key in ["n0", "s0", "e", "zs", "missing"] {
            assert_eq!(id(&r, key), None, "{key}");
        }
        assert_eq!(id(&r, "n"), id(&r, "s"));
        assert_eq!(id(&r, "n").as_deref(), Some("7381234567000000000"));
        assert_eq!(id(&r, "lead0").as_deref(), Some("42"));
        assert_eq!(id(&r, "word").as_deref(), Some("abc"));
    }
}

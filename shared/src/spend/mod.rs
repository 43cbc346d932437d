//! Ocean Engine spend beside the leads (cost per lead). Daily report rows per (connection, level,
//! entity, Beijing day), money kept as whole fen: the platforms send yuan as floats or strings,
//! and a float never touches a sum here.

pub mod reports;
pub mod store;
pub mod sync;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which report a row comes from, and which id it is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpendLevel {
    /// Classic ads (1.0), `report/ad/get`, per `ad_id`.
    Ad,
    /// 2.0 promotions, `report/custom/get` by `cdp_promotion_id`.
    Promotion,
    /// 本地推 promotions, `local/report/promotion/get`, per `promotion_id`.
    LocalPromotion,
}

impl SpendLevel {
    pub const ALL: [SpendLevel; 3] = [SpendLevel::Ad, SpendLevel::Promotion, SpendLevel::LocalPromotion];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ad => "ad",
            Self::Promotion => "promotion",
            Self::LocalPromotion => "local_promotion",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == raw)
    }
}

/// One day of one entity's delivery, as the report tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpendRow {
    pub level: SpendLevel,
    pub entity_id: String,
    /// Beijing calendar day.
    pub day: NaiveDate,
    pub name: Option<String>,
    /// The campaign (1.0) or project (2.0, 本地推) the entity belongs to.
    pub parent_id: Option<String>,
    pub spend_fen: i64,
    pub shows: i64,
    pub clicks: i64,
    /// The platform's own conversion count (kept, never used for lead counts).
    pub conversions: i64,
    /// Today's rows move until the day is over and settled.
    pub provisional: bool,
}

impl SpendRow {
    /// What a re-pull compares: an unchanged row writes nothing.
    pub fn same_figures(&self, other: &SpendRow) -> bool {
        self.name == other.name
            && self.parent_id == other.parent_id
            && self.spend_fen == other.spend_fen
            && self.shows == other.shows
            && self.clicks == other.clicks
            && self.conversions == other.conversions
            && self.provisional == other.provisional
    }
}

/// Yuan, as a JSON number or a decimal string, in whole fen (half a fen rounds away from zero).
/// The number's own decimal text is read, so `152.37` is 15237 fen exactly.
pub fn fen(value: &Value) -> Option<i64> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        Value::Null => return Some(0),
        _ => return None,
    };
    if text.is_empty() {
        return Some(0);
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut frac_digits = frac.bytes().map(|b| i64::from(b - b'0'));
    let tenths = frac_digits.next().unwrap_or(0);
    let hundredths = frac_digits.next().unwrap_or(0);
    let round_up = frac_digits.next().is_some_and(|d| d >= 5);
    let fen = whole.checked_mul(100)? + tenths * 10 + hundredths + i64::from(round_up);
    Some(if negative { -fen } else { fen })
}

/// A count that may come as a number or a string (2.0 reports send strings).
pub fn count(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)).unwrap_or(0),
        Value::String(s) => s.trim().parse::<f64>().map(|f| f.round() as i64).unwrap_or(0),
        _ => 0,
    }
}

/// Fen as yuan text with two places, for answers and CSV.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yuan_become_exact_fen_from_numbers_and_strings() {
        assert_eq!(fen(&json!(152.37)), Some(15237));
        assert_eq!(fen(&json!("152.37")), Some(15237));
        assert_eq!(fen(&json!(0.1)), Some(10));
        assert_eq!(
            fen(&json!(0.29)),
            Some(29),
            "0.29 is 0.28999… as a float; its text is not"
        );
        assert_eq!(fen(&json!(12)), Some(1200));
        assert_eq!(fen(&json!("1.005")), Some(101));
        assert_eq!(fen(&json!("1.004")), Some(100));
        assert_eq!(fen(&json!("-3.5")), Some(-350));
        assert_eq!(fen(&json!("")), Some(0));
        assert_eq!(fen(&json!(null)), Some(0));
        assert_eq!(fen(&json!("12,00")), None);
        assert_eq!(fen(&json!("1e3")), None);
        assert_eq!(yuan(15237), "152.37");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(-350), "-3.50");
    }

    #[test]
    fn ten_thousand_rows_sum_to_the_fen() {
        // Amounts as a platform writes them (two places, as floats), summed in fen.
        let mut expected = 0i64;
        let mut summed = 0i64;
        let mut x: u64 = 7;
        for _ in 0..10_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let amount_fen = (x >> 33) as i64 % 500_000;
            expected += amount_fen;
            let as_float: f64 = amount_fen as f64 / 100.0;
            summed += fen(&json!(as_float)).unwrap();
        }
        assert_eq!(summed, expected, "not a fen of drift");
    }
}

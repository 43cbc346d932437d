//! One cell of an export, read as what it means, or refused with a reason a merchant can act on.

use super::text::half_width;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Why a cell is refused (the import reports it with the row and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// A phone as we store it: digits only, +86 / 0086 dropped. A mainland mobile (11 digits, 1 then
/// 3–9) or a landline with its area code (0 and 9–11 more digits); anything else is refused.
pub fn phone(raw: &str) -> Result<Option<String>, Refusal> {
    let text = half_width(raw.trim());
    if text.is_empty() {
        return Ok(None);
    }
    if is_masked(&text) {
        return Err(Refusal(
            "the phone is masked (138****8000) and the row has no lead id: export again with full numbers shown".into(),
        ));
    }
    if text.chars().any(|c| !(c.is_ascii_digit() || " -+()".contains(c))) {
        return Err(Refusal(
            "it is not a phone number (only digits, spaces, dashes, brackets and +)".into(),
        ));
    }
    let digits = crate::lead::normalize_phone(&text).unwrap_or_default();
    let mobile = digits.len() == 11 && digits.starts_with('1') && matches!(digits.as_bytes()[1], b'3'..=b'9');
    let landline = digits.starts_with('0') && (10..=12).contains(&digits.len());
    if mobile || landline {
        Ok(Some(digits))
    } else {
        // The number is not echoed: rejected rows are shown to callers who may not see phones.
        Err(Refusal(format!(
            "it is not a mainland mobile or landline number ({} digits)",
            digits.len()
        )))
    }
}

/// A cell's text as a reason quotes it: at most 32 characters, and digit runs that could be a
/// phone masked (rejected rows are shown to callers who may not see phones; a phone shifted
/// into another column by a stray comma would otherwise be echoed in full).
fn quoted(raw: &str) -> String {
    let short: String = raw.chars().take(32).collect();
    let ellipsis = if raw.chars().count() > 32 { "…" } else { "" };
    format!("{:?}", crate::lead::mask_digit_runs(&short) + ellipsis)
}

/// Whether a phone cell is masked (`138****8000`), as back offices export phones by default.
pub fn is_masked(raw: &str) -> bool {
    half_width(raw).contains('*')
}

/// A platform id kept as text. Excel turns a 19-digit id into a number (`7.61235E+18`, or a
/// float that lost its last digits); such a cell is refused rather than stored as a wrong id.
pub fn id(raw: &str) -> Result<Option<String>, Refusal> {
    let text = half_width(raw.trim())
        .trim_start_matches('\t')
        .trim_start_matches('\'')
        .to_owned();
    if text.is_empty() {
        return Ok(None);
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("e+") || (lower.contains('e') && lower.chars().all(|c| c.is_ascii_digit() || ".e+-".contains(c)))
    {
        return Err(Refusal(format!(
            "{} is an id Excel turned into a number; export the column as text",
            quoted(raw)
        )));
    }
    let digits = text.strip_suffix(".0").unwrap_or(&text);
    if digits.bytes().all(|b| b.is_ascii_digit())
        && digits.len() > 15
        && digits.ends_with("000")
        && text.ends_with(".0")
    {
        return Err(Refusal(format!(
            "{} lost its last digits in Excel; export the column as text",
            quoted(raw)
        )));
    }
    if !text.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) || text.len() > 64 {
        return Err(Refusal(format!("{} is not an id", quoted(raw))));
    }
    Ok(Some(digits.to_owned()))
}

/// An id from a numeric spreadsheet cell: exact only while a float holds it (≤ 2^53).
pub fn id_from_number(value: f64) -> Result<String, Refusal> {
    if value.fract() != 0.0 || value < 0.0 {
        return Err(Refusal(format!("{value} is not an id")));
    }
    // Excel keeps 15 significant digits: a longer id typed as a number lost the rest (and two
    // ids can have become one).
    if value >= 1e15 {
        return Err(Refusal(format!(
            "{value:e} is an id Excel stored as a number and lost its last digits; export the column as text"
        )));
    }
    Ok(format!("{}", value as u64))
}

fn beijing() -> chrono::FixedOffset {
    crate::sources::beijing()
}

/// A creation time. With a zone (RFC 3339) as given; without one it is Beijing time. An Excel
/// serial day number (days since 1899-12-30, as Beijing time) is read too.
pub fn time(raw: &str) -> Result<Option<DateTime<Utc>>, Refusal> {
    let text = half_width(raw.trim());
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
        return Ok(Some(t.to_utc()));
    }
    let normalised = text.replace('/', "-").replace('T', " ");
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(&normalised, format) {
            return beijing_instant(local);
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(&normalised, "%Y-%m-%d") {
        return beijing_instant(day.and_hms_opt(0, 0, 0).expect("midnight exists"));
    }
    if let Ok(serial) = text.parse::<f64>()
        && (20_000.0..80_000.0).contains(&serial)
    {
        let base = NaiveDate::from_ymd_opt(1899, 12, 30)
            .expect("a valid date")
            .and_hms_opt(0, 0, 0)
            .expect("midnight");
        let local = base + chrono::Duration::milliseconds((serial * 86_400_000.0).round() as i64);
        return beijing_instant(local);
    }
    Err(Refusal(format!("{} is not a date and time", quoted(raw))))
}

fn beijing_instant(local: NaiveDateTime) -> Result<Option<DateTime<Utc>>, Refusal> {
    beijing()
        .from_local_datetime(&local)
        .single()
        .map(|t| Some(t.to_utc()))
        .ok_or_else(|| Refusal(format!("{local} is not a Beijing time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalised_and_checked() {
        assert_eq!(phone("+86 138-0013-8000"), Ok(Some("13800138000".into())));
        assert_eq!(phone("１３８００１３８０００"), Ok(Some("13800138000".into())));
        assert_eq!(phone("0086 13800138000"), Ok(Some("13800138000".into())));
        assert_eq!(phone("0571-88886666"), Ok(Some("057188886666".into())));
        assert_eq!(phone(""), Ok(None));
        assert!(phone("12345").is_err());
        assert!(phone("1280013800").is_err(), "10 digits");
        assert!(phone("138****8000").is_err(), "a masked phone is not a phone");
    }

    #[test]
    fn ids_stay_text_and_excel_numbers_are_refused() {
        assert_eq!(id("7391234567890123456"), Ok(Some("7391234567890123456".into())));
        assert_eq!(id("\t7391234567890123456"), Ok(Some("7391234567890123456".into())));
        assert_eq!(id("'7391234567890123456"), Ok(Some("7391234567890123456".into())));
        let refused = id("7.39123E+18").unwrap_err();
        assert!(refused.0.contains("Excel"), "{refused:?}");
        assert!(id("7391234567890123000.0").is_err());
        assert_eq!(id(""), Ok(None));
        assert_eq!(id_from_number(173_000_000_000_000.0), Ok("173000000000000".into()));
        assert!(
            id_from_number(1_730_000_000_000_001.0).is_err(),
            "16 digits: Excel kept 15 of them"
        );
        assert!(id_from_number(7.391_234_567_890_124e18).is_err());
    }

    #[test]
    fn times_without_a_zone_are_beijing() {
        let bj = |s: &str| time(s).unwrap().unwrap().to_rfc3339();
        assert_eq!(bj("2026-11-30 14:05:00"), "2026-11-30T06:05:00+00:00");
        assert_eq!(bj("2026/11/30 14:05"), "2026-11-30T06:05:00+00:00");
        assert_eq!(bj("2026-11-30"), "2026-11-29T16:00:00+00:00");
        assert_eq!(bj("2026-11-30T14:05:00+08:00"), "2026-11-30T06:05:00+00:00");
        assert_eq!(
            bj("46356.5"),
            "2026-11-30T04:00:00+00:00",
            "Excel's serial day 46356 is 2026-11-30"
        );
        assert!(time("昨天").is_err());
        assert_eq!(time(" "), Ok(None));
    }
}

//! Leads as UTF-8 CSV with a BOM so Excel reads Chinese text: the one format of the small
//! export (`GET /leads/export`) and the export job. Ids are written as text (a tab in front) so
//! Excel keeps all 19 digits; every cell a spreadsheet could read as a formula is defused
//! (OWASP CSV injection); phones, and phone-like digits in remarks, are masked unless the
//! caller may see phones.

use crate::lead::{StoredLead, mask_digit_runs, mask_phone};

pub const HEADER: [&str; 19] = [
    "leadId",
    "source",
    "sourceLeadId",
    "connectionId",
    "name",
    "nickname",
    "phone",
    "clueType",
    "channel",
    "advertiserId",
    "adId",
    "promotionId",
    "store",
    "location",
    "remark",
    "createdAt",
    "status",
    "notes",
    "duplicateOf",
];
pub const BOM: &str = "\u{feff}";

/// One CSV cell: quoted when it must be, and defused (OWASP CSV injection) when a spreadsheet
/// could take it for a formula: a leading `=`, `+`, `-`, `@`, tab or carriage return gets a `'`.
pub fn cell(value: &str) -> String {
    let defused = match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '＝' | '＋' | '－' | '＠') => format!("'{value}"),
        _ => value.to_owned(),
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// An id Excel must not turn into a number: digits get a tab in front (Excel keeps them as
/// text); anything else is an ordinary, defused cell.
pub fn id(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        format!("\t{value}")
    } else {
        cell(value)
    }
}

pub fn row(l: &StoredLead, reveal_phone: bool) -> String {
    let f = &l.fields;
    let text = |v: &Option<String>| cell(v.as_deref().unwrap_or_default());
    let phone = f
        .phone
        .as_deref()
        .map(|p| if reveal_phone { p.to_owned() } else { mask_phone(p) })
        .unwrap_or_default();
    let cells = [
        id(l.lead_id.as_str()),
        cell(l.source.as_str()),
        id(&l.source_lead_id),
        id(l.connection_id.as_str()),
        text(&f.name),
        text(&f.nickname),
        cell(&phone),
        cell(&f.clue_type),
        text(&f.channel),
        f.advertiser_id.as_deref().map(id).unwrap_or_default(),
        f.ad_id.as_deref().map(id).unwrap_or_default(),
        f.promotion_id.as_deref().map(id).unwrap_or_default(),
        text(&f.store),
        text(&f.location),
        cell(
            &f.remark
                .as_deref()
                .map(|r| if reveal_phone { r.to_owned() } else { mask_digit_runs(r) })
                .unwrap_or_default(),
        ),
        cell(&l.sort_time().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        cell(l.status.as_str()),
        cell(&l.notes),
        l.duplicate_of.as_ref().map(|d| id(d.as_str())).unwrap_or_default(),
    ];
    let mut line = cells.join(",");
    line.push_str("\r\n");
    line
}

pub fn header_line() -> String {
    format!("{BOM}{}\r\n", HEADER.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_defused() {
        assert_eq!(cell("张先生"), "张先生");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("\t=1+1"), "'\t=1+1");
        assert_eq!(cell("\r=1+1"), "\"'\r=1+1\"");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(id("7391234567890123456"), "\t7391234567890123456");
        assert_eq!(id("=cmd"), "'=cmd");
    }
}

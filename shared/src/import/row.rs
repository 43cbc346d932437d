//! A data row of an export as a lead, or refused with the row, the column and why.
//!
//! Identity: a row with the platform's lead id is the same lead the API syncs (same source,
//! same source lead id, so the same [`LeadId`]). A row without one gets a source lead id derived
//! from (phone, creation time): the same row imported again lands on the same lead, and a new
//! lead with a phone already stored is linked to it like any duplicate.

use super::cells::{self, Refusal};
use super::headers::{Field, locate};
use super::reader::{Cell, Row};
use crate::domain::{ConnectionId, TenantId};
use crate::lead::{LeadFields, LeadRecord, LeadSource, PlatformLead};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A row the import did not take, as `GET /imports/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// The row's number in the file, as the spreadsheet shows it.
    pub row: u64,
    /// The column's header, when one cell is the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub reason: String,
}

/// Rows above the header row that may be titles (an export's "线索列表 导出时间 …" line).
pub const HEADER_SEARCH_ROWS: usize = 10;

/// Which column holds what, found in the header row.
#[derive(Debug, Clone)]
pub struct Layout {
    pub header_row: u64,
    headers: Vec<String>,
    columns: HashMap<Field, usize>,
}

impl Layout {
    /// The layout if `row` is a header row: one naming a phone or a lead id column.
    pub fn of(row: &Row, overrides: &HashMap<Field, String>) -> Option<Self> {
        let headers: Vec<String> = row.cells.iter().map(|c| c.text().trim().to_owned()).collect();
        let columns = locate(&headers, overrides);
        let found = columns.contains_key(&Field::Phone) || columns.contains_key(&Field::LeadId);
        found.then_some(Layout {
            header_row: row.number,
            headers,
            columns,
        })
    }

    pub fn has(&self, field: Field) -> bool {
        self.columns.contains_key(&field)
    }

    fn cell<'r>(&self, row: &'r Row, field: Field) -> Option<(&'r Cell, &str)> {
        let i = *self.columns.get(&field)?;
        Some((row.cells.get(i).unwrap_or(&Cell::Empty), self.headers[i].as_str()))
    }
}

/// What the rows are imported as.
#[derive(Debug, Clone)]
pub struct Target {
    pub tenant: TenantId,
    pub source: LeadSource,
    pub connection: ConnectionId,
}

/// The connection id of leads imported without one: one per source, never a real account.
pub fn import_connection(source: LeadSource) -> ConnectionId {
    ConnectionId::from_stored(format!("c_import_{}", source.as_str()))
}

fn refuse(row: &Row, column: &str, refusal: Refusal) -> Rejection {
    Rejection {
        row: row.number,
        column: Some(column.to_owned()),
        reason: refusal.0,
    }
}

/// An id cell: text as written, or a number exact only while a float holds it.
fn id_cell(cell: &Cell) -> Result<Option<String>, Refusal> {
    match cell {
        Cell::Number(n) | Cell::Date(n) => cells::id_from_number(*n).map(Some),
        other => cells::id(&other.text()),
    }
}

fn time_cell(cell: &Cell) -> Result<Option<DateTime<Utc>>, Refusal> {
    match cell {
        Cell::Number(n) | Cell::Date(n) => cells::time(&format!("{n}")),
        other => cells::time(&other.text()),
    }
}

/// A phone cell's text. A landline Excel stored as a number lost its leading 0
/// (`02188886666` → 2188886666): a number of 9 to 11 digits that is not a mobile gets it back.
fn phone_text(cell: &Cell) -> String {
    let text = cell.text();
    match cell {
        Cell::Number(_) if (9..=11).contains(&text.len()) && !text.starts_with('1') => format!("0{text}"),
        _ => text,
    }
}

fn text_cell(cell: &Cell) -> Option<String> {
    let text = cell.text().trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The source lead id of a row without the platform's: from what identifies it in the file.
pub fn derived_source_lead_id(phone: &str, created_at: Option<DateTime<Utc>>) -> String {
    let at = created_at.map(|t| t.timestamp_millis().to_string()).unwrap_or_default();
    crate::domain::derived_id("imp_", &[phone, &at])
}

/// The lead a data row describes.
pub fn read(layout: &Layout, row: &Row, target: &Target) -> Result<LeadRecord, Rejection> {
    let field = |f: Field| layout.cell(row, f);
    let mut lead_id = None;
    if let Some((cell, header)) = field(Field::LeadId) {
        lead_id = id_cell(cell).map_err(|r| refuse(row, header, r))?;
    }
    let mut phone = None;
    let mut masked = None;
    if let Some((cell, header)) = field(Field::Phone) {
        // A phone Excel stored as a number is still its digits. A masked one (back offices mask
        // phones unless the export asked for them in full) is no phone: the lead id identifies
        // the row, and a phone the API synced is kept.
        let text = phone_text(cell);
        match cells::phone(&text) {
            Err(refusal) if cells::is_masked(&text) => masked = Some(refuse(row, header, refusal)),
            other => phone = other.map_err(|r| refuse(row, header, r))?,
        }
    }
    let mut created_at = None;
    if let Some((cell, header)) = field(Field::CreatedAt) {
        created_at = time_cell(cell).map_err(|r| refuse(row, header, r))?;
    }
    let mut ad = None;
    if let Some((cell, header)) = field(Field::AdId) {
        ad = id_cell(cell).map_err(|r| refuse(row, header, r))?;
    }
    let source_lead_id = match (&lead_id, &phone) {
        (Some(id), _) => id.clone(),
        (None, Some(phone)) => derived_source_lead_id(phone, created_at),
        (None, None) => {
            return Err(masked.unwrap_or(Rejection {
                row: row.number,
                column: None,
                reason: "the row has neither a phone nor a lead id".into(),
            }));
        }
    };
    let text = |f: Field| field(f).and_then(|(cell, _)| text_cell(cell));
    let (ad_id, promotion_id) = match target.source {
        LeadSource::OceanEngineLife => (None, ad),
        _ => (ad, None),
    };
    let mut raw = serde_json::Map::new();
    let mut form_fields = BTreeMap::new();
    let mapped: Vec<usize> = layout.columns.values().copied().collect();
    for (i, header) in layout.headers.iter().enumerate() {
        let Some(value) = row.cells.get(i).and_then(text_cell) else {
            continue;
        };
        if header.is_empty() {
            continue;
        }
        if !mapped.contains(&i) {
            form_fields.insert(header.clone(), value.clone());
        }
        raw.insert(header.clone(), serde_json::Value::String(value));
    }
    raw.insert("importRow".into(), serde_json::Value::from(row.number));
    let fields = LeadFields {
        name: text(Field::Name),
        phone,
        clue_type: "OTHER".into(),
        channel: text(Field::Source),
        ad_id,
        promotion_id,
        store: text(Field::Store),
        remark: text(Field::Remark),
        form_fields,
        created_at,
        platform_status: text(Field::Status),
        ..LeadFields::default()
    };
    Ok(LeadRecord::new(
        &target.tenant,
        &target.connection,
        PlatformLead {
            source: target.source,
            source_lead_id,
            fields,
            raw: serde_json::Value::Object(raw),
            phone_cipher: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::LeadId;

    fn row(number: u64, cells: &[&str]) -> Row {
        Row {
            number,
            cells: cells.iter().map(|c| Cell::Text((*c).into())).collect(),
        }
    }

    fn target(source: LeadSource) -> Target {
        Target {
            tenant: TenantId::new("t1"),
            source,
            connection: import_connection(source),
        }
    }

    #[test]
    fn a_title_row_is_not_a_header_and_the_header_row_maps_the_columns() {
        let none = HashMap::new();
        assert!(Layout::of(&row(1, &["线索列表 导出时间 2026-11-01"]), &none).is_none());
        let layout = Layout::of(&row(2, &["客资ID", "姓名", "手机号", "提交时间", "意向门店"]), &none).unwrap();
        let lead = read(
            &layout,
            &row(
                3,
                &[
                    "7301234567890123456",
                    "李女士",
                    "+86 139-1234-5678",
                    "2026/11/01 09:30",
                    "徐汇店",
                ],
            ),
            &target(LeadSource::Laike),
        )
        .unwrap();
        assert_eq!(lead.source_lead_id, "7301234567890123456");
        assert_eq!(
            lead.lead_id,
            LeadId::derive(&TenantId::new("t1"), LeadSource::Laike, "7301234567890123456"),
            "the same lead the API syncs"
        );
        assert_eq!(lead.fields.phone.as_deref(), Some("13912345678"));
        assert_eq!(
            lead.fields.created_at.unwrap().to_rfc3339(),
            "2026-11-01T01:30:00+00:00"
        );
        assert_eq!(
            lead.fields.form_fields.get("意向门店").map(String::as_str),
            Some("徐汇店")
        );
        assert_eq!(lead.raw["importRow"], 3);
    }

    #[test]
    fn rows_without_an_id_get_one_from_phone_and_time_and_bad_cells_are_refused_by_column() {
        let none = HashMap::new();
        let layout = Layout::of(&row(1, &["客户姓名", "联系电话", "创建时间", "计划ID"]), &none).unwrap();
        let t = target(LeadSource::OceanEngineLife);
        let a = read(
            &layout,
            &row(2, &["王", "13800138000", "2026-11-02 10:00:00", "123"]),
            &t,
        )
        .unwrap();
        let b = read(
            &layout,
            &row(9, &["王先生", "138 0013 8000", "2026-11-02 10:00", ""]),
            &t,
        )
        .unwrap();
        assert_eq!(a.lead_id, b.lead_id, "same phone, same time: the same lead");
        assert!(a.source_lead_id.starts_with("imp_"));
        assert_eq!(
            a.fields.promotion_id.as_deref(),
            Some("123"),
            "本地推: the id is a promotion"
        );
        let rejected = read(&layout, &row(4, &["赵", "", "", ""]), &t).unwrap_err();
        assert_eq!((rejected.row, rejected.column.as_deref()), (4, None));
        let bad_phone = read(&layout, &row(5, &["赵", "138****8000", "", ""]), &t).unwrap_err();
        assert_eq!(bad_phone.column.as_deref(), Some("联系电话"));
        assert!(
            bad_phone.reason.contains("masked"),
            "a masked phone and no id: nothing identifies it"
        );
        let typo = read(&layout, &row(7, &["赵", "1380013800", "", ""]), &t).unwrap_err();
        assert!(typo.reason.contains("10 digits"), "{}", typo.reason);
        let bad_time = read(&layout, &row(6, &["赵", "13800138000", "昨天", ""]), &t).unwrap_err();
        assert_eq!(bad_time.column.as_deref(), Some("创建时间"));
    }

    #[test]
    fn a_19_digit_id_stored_as_a_number_is_refused_not_rounded() {
        let layout = Layout::of(&row(1, &["线索ID", "手机号"]), &HashMap::new()).unwrap();
        let numeric = Row {
            number: 2,
            cells: vec![
                Cell::Number(7_301_234_567_890_123_456.0),
                Cell::Number(13_800_138_000.0),
            ],
        };
        let masked = Row {
            number: 4,
            cells: vec![
                Cell::Text("7301234567890123456".into()),
                Cell::Text("138****8000".into()),
            ],
        };
        let lead = read(&layout, &masked, &target(LeadSource::Feiyu)).unwrap();
        assert_eq!(
            lead.fields.phone, None,
            "a masked phone is no phone; the id identifies the lead"
        );
        let refused = read(&layout, &numeric, &target(LeadSource::Feiyu)).unwrap_err();
        assert_eq!(refused.column.as_deref(), Some("线索ID"));
        assert!(refused.reason.contains("text"), "{}", refused.reason);
        let small = Row {
            number: 3,
            cells: vec![Cell::Number(123_456.0), Cell::Number(13_800_138_000.0)],
        };
        let landline = Row {
            number: 5,
            cells: vec![Cell::Number(123_457.0), Cell::Number(2_188_886_666.0)],
        };
        let lead = read(&layout, &landline, &target(LeadSource::Feiyu)).unwrap();
        assert_eq!(lead.fields.phone.as_deref(), Some("02188886666"), "the 0 Excel dropped");
        let lead = read(&layout, &small, &target(LeadSource::Feiyu)).unwrap();
        assert_eq!(
            (lead.source_lead_id.as_str(), lead.fields.phone.as_deref()),
            ("123456", Some("13800138000"))
        );
    }
}

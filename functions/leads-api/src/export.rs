//! `GET /leads/export`: the list's filters, every matching lead, as UTF-8 CSV with a BOM so Excel
//! reads Chinese text, streamed page by page. Ids are written as text (a tab in front) so Excel
//! keeps all 19 digits; cells that look like formulas are defused.

use axum::body::{Body, Bytes};
use futures_util::stream;
use shared::domain::TenantId;
use shared::lead::{StoredLead, mask_phone};
use shared::lead_query::{LeadFilter, PageStart};
use shared::store::LeadStore;
use std::sync::Arc;

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
const PAGE: u32 = 100;
const BOM: &str = "\u{feff}";

/// One CSV cell: quoted when it must be, formula-looking text defused with a leading quote.
fn cell(value: &str) -> String {
    let defused = match value.chars().next() {
        Some('=' | '+' | '-' | '@') => format!("'{value}"),
        _ => value.to_owned(),
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// An id Excel must not turn into a number.
fn id(value: &str) -> String {
    format!("\t{value}")
}

pub fn row(l: &StoredLead, reveal_phone: bool) -> String {
    let f = &l.fields;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let phone = f
        .phone
        .as_deref()
        .map(|p| if reveal_phone { p.to_owned() } else { mask_phone(p) })
        .unwrap_or_default();
    let cells = [
        id(l.lead_id.as_str()),
        l.source.as_str().to_owned(),
        id(&l.source_lead_id),
        l.connection_id.as_str().to_owned(),
        text(&f.name),
        text(&f.nickname),
        phone,
        f.clue_type.clone(),
        text(&f.channel),
        f.advertiser_id.as_deref().map(id).unwrap_or_default(),
        f.ad_id.as_deref().map(id).unwrap_or_default(),
        f.promotion_id.as_deref().map(id).unwrap_or_default(),
        text(&f.store),
        text(&f.location),
        text(&f.remark),
        l.sort_time().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        l.status.as_str().to_owned(),
        l.notes.clone(),
        l.duplicate_of.as_ref().map(|d| d.to_string()).unwrap_or_default(),
    ];
    let mut line = cells.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// The CSV body: the header, then one chunk per page of leads.
pub fn body(leads: Arc<dyn LeadStore>, tenant: TenantId, filter: LeadFilter, reveal_phone: bool) -> Body {
    let header = format!("{BOM}{}\r\n", HEADER.join(","));
    let first = Some(PageStart::Number(1));
    let pages = stream::unfold(first, move |next| {
        let (leads, tenant, filter) = (leads.clone(), tenant.clone(), filter.clone());
        async move {
            let start = next?;
            match leads.query(&tenant, &filter, &start, PAGE).await {
                Ok(page) => {
                    let chunk: String = page.records.iter().map(|l| row(l, reveal_phone)).collect();
                    let following = page.next.map(PageStart::After);
                    Some((Ok::<Bytes, std::io::Error>(Bytes::from(chunk)), following))
                }
                // Headers are sent: the only way left to say it failed is to cut the download.
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let head = stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(header)) });
    Body::from_stream(futures_util::StreamExt::chain(head, pages))
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
        assert_eq!(id("7391234567890123456"), "\t7391234567890123456");
    }
}

//! Listing a tenant's leads: the filters the API accepts, page-number or cursor paging, newest
//! first. Both lead stores answer the same query; the cursor is opaque to callers.

use crate::domain::ConnectionId;
use crate::lead::{LeadId, LeadSource, LeadStatus, StoredLead};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadFilter {
    /// Creation time at or after this.
    pub start: Option<DateTime<Utc>>,
    /// Creation time at or before this.
    pub end: Option<DateTime<Utc>>,
    /// Matched against name, nickname, phone digits, remark and notes.
    pub keyword: Option<String>,
    pub status: Option<LeadStatus>,
    pub source: Option<LeadSource>,
    pub connection_id: Option<ConnectionId>,
}

impl LeadFilter {
    pub fn matches(&self, lead: &StoredLead) -> bool {
        let at = lead.sort_time();
        self.start.is_none_or(|s| at >= s)
            && self.end.is_none_or(|e| at <= e)
            && self.status.is_none_or(|s| lead.status == s)
            && self.source.is_none_or(|s| lead.source == s)
            && self.connection_id.as_ref().is_none_or(|c| &lead.connection_id == c)
            && self.keyword.as_deref().is_none_or(|k| {
                let f = &lead.fields;
                [&f.name, &f.nickname, &f.phone, &f.remark]
                    .into_iter()
                    .flatten()
                    .any(|text| text.contains(k))
                    || lead.notes.contains(k)
            })
    }
}

/// Where a page starts: a page number (1-based) or just after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    Number(u32),
    After(Cursor),
}

/// The position of a lead in the newest-first order: its sort key and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_key: String,
    pub lead_id: LeadId,
}

impl Cursor {
    pub fn of(lead: &StoredLead) -> Self {
        Self {
            created_key: sort_key(lead.sort_time(), &lead.lead_id),
            lead_id: lead.lead_id.clone(),
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.created_key, self.lead_id))
    }

    /// `None` for anything this code did not produce.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let (created_key, lead_id) = raw.split_once('|')?;
        let well_formed = lead_id.len() <= 64
            && created_key.len() > 14
            && created_key.as_bytes()[13] == b'#'
            && created_key[..13].bytes().all(|b| b.is_ascii_digit())
            && created_key[14..] == *lead_id
            && lead_id.starts_with("l_");
        well_formed.then(|| Self {
            created_key: created_key.to_owned(),
            lead_id: LeadId::from_stored(lead_id),
        })
    }
}

/// Sorts as text in time order: zero-padded milliseconds, then the id to break ties.
pub fn sort_key(at: DateTime<Utc>, id: &LeadId) -> String {
    format!("{:013}#{id}", at.timestamp_millis().max(0))
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeadPage {
    pub records: Vec<StoredLead>,
    /// Leads matching the filter, over all pages.
    pub total: u64,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let id = LeadId::from_stored("l_0123456789abcdef01234567");
        let c = Cursor {
            created_key: sort_key(DateTime::from_timestamp_millis(1_748_752_200_000).unwrap(), &id),
            lead_id: id,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "%%%",
            "bm90IGEgY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("1748752200000#l_x|l_y"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}

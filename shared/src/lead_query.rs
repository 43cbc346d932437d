//! Listing a tenant's leads: the query plan, written once and executed the same way over either
//! lead store's ports. A filter of status, source and connection (any combination, with or
//! without a time range) is read from the index partition that holds exactly its matches: a
//! page costs one index read and one batch read, its total one read of day counters plus exact
//! counts of the partial days at the range's edges. A keyword search scans a bounded budget of
//! leads per call and goes on with a cursor. Cursors carry a MAC over the tenant, filter and
//! position they belong to.

use crate::domain::{ConnectionId, TenantId};
use crate::lead::{LeadSource, LeadStatus, StoredLead, mask_digit_runs, normalize_phone};
use crate::read_model::{Partition, count_plan, lower_bound, upper_bound};
use crate::store::{IndexRange, LeadStore, StoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeadFilter {
    /// Creation time at or after this.
    pub start: Option<DateTime<Utc>>,
    /// Creation time at or before this.
    pub end: Option<DateTime<Utc>>,
    /// A full phone number, or text matched against name, nickname, remark and notes (and the
    /// phone's digits, for callers who may see phones).
    pub keyword: Option<String>,
    pub status: Option<LeadStatus>,
    pub source: Option<LeadSource>,
    pub connection_id: Option<ConnectionId>,
}

impl LeadFilter {
    /// The filter's fields other than the keyword and time (which the plan's range applies).
    fn dimensions_match(&self, lead: &StoredLead) -> bool {
        self.status.is_none_or(|s| lead.status == s)
            && self.source.is_none_or(|s| lead.source == s)
            && self.connection_id.as_ref().is_none_or(|c| &lead.connection_id == c)
    }

    fn in_range(&self, lead: &StoredLead) -> bool {
        let at = lead.sort_time();
        self.start.is_none_or(|s| at >= s) && self.end.is_none_or(|e| at <= e)
    }

    /// Whether `lead` matches, as a caller who may (`reveal_phone`) or may not see phones
    /// sees it: a keyword never matches what the caller's view masks.
    pub fn matches(&self, lead: &StoredLead, reveal_phone: bool) -> bool {
        self.in_range(lead)
            && self.dimensions_match(lead)
            && self
                .keyword
                .as_deref()
                .is_none_or(|k| keyword_matches(lead, k, reveal_phone))
    }

    /// The time range and fields, canonically, for cursor MACs.
    fn canonical(&self) -> String {
        let t = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis().to_string()).unwrap_or_default();
        format!(
            "{}|{}|{}|{}|{}|{}",
            t(self.start),
            t(self.end),
            self.status.map(LeadStatus::as_str).unwrap_or_default(),
            self.source.map(LeadSource::as_str).unwrap_or_default(),
            self.connection_id.as_ref().map(|c| c.as_str()).unwrap_or_default(),
            self.keyword.as_deref().unwrap_or_default(),
        )
    }
}

/// An 11-digit number (spaces, dashes and a +86 allowed): looked up exactly by phone.
pub fn full_phone(keyword: &str) -> Option<String> {
    let phone_like = keyword
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-'));
    normalize_phone(keyword).filter(|p| phone_like && p.len() == 11)
}

fn keyword_matches(lead: &StoredLead, keyword: &str, reveal_phone: bool) -> bool {
    let f = &lead.fields;
    let shown = |text: &str| {
        if reveal_phone {
            text.contains(keyword)
        } else {
            mask_digit_runs(text).contains(keyword)
        }
    };
    [&f.name, &f.nickname]
        .into_iter()
        .flatten()
        .any(|t| t.contains(keyword))
        || f.remark.as_deref().is_some_and(shown)
        || lead.notes.contains(keyword)
        || (reveal_phone && f.phone.as_deref().is_some_and(|p| p.contains(keyword)))
        || full_phone(keyword).is_some_and(|p| f.phone.as_deref() == Some(p.as_str()))
}

/// Where a page starts: a page number (1-based) or just after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    Number(u32),
    After(Cursor),
}

/// A position in a listing: the sort key the next page starts below, and how many matches the
/// earlier pages of a keyword search returned (its running total).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub position: String,
    pub seen: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeadPage {
    pub records: Vec<StoredLead>,
    /// Leads matching the filter over all pages; for a keyword search, the matches found so
    /// far (exact once the search reached its end).
    pub total: u64,
    pub total_exact: bool,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

/// Read limits: every call is bounded by them whatever the tenant's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Leads a keyword search reads per call.
    pub scan_budget: u32,
    /// The deepest page-number paging reaches (page × size); cursors reach anywhere.
    pub max_offset: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            scan_budget: 300,
            max_offset: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("page numbers reach the first {max} leads; page on with nextCursor beyond")]
    PageTooDeep { max: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a filter is read: the partition, its key range, and whether leads must be scanned
/// (a keyword, or a full phone combined with other fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPlan {
    pub partition: Partition,
    pub lo: String,
    pub hi: String,
    pub scan: bool,
}

pub fn plan(filter: &LeadFilter) -> QueryPlan {
    let dims = (filter.status, filter.source, filter.connection_id.clone());
    let by_dims = match dims {
        (None, None, None) => Partition::All,
        (Some(s), None, None) => Partition::Status(s),
        (None, Some(r), None) => Partition::Source(r),
        (None, None, Some(c)) => Partition::Connection(c),
        (Some(s), Some(r), None) => Partition::StatusSource(s, r),
        (Some(s), None, Some(c)) => Partition::StatusConnection(s, c),
        (None, Some(r), Some(c)) => Partition::SourceConnection(r, c),
        (Some(s), Some(r), Some(c)) => Partition::StatusSourceConnection(s, r, c),
    };
    let phone = filter.keyword.as_deref().and_then(full_phone);
    let (partition, scan) = match phone {
        // The phone's partition is a handful of leads: the other fields are checked on them.
        Some(p) => {
            let alone = by_dims == Partition::All;
            (Partition::Phone(p), !alone)
        }
        None => (by_dims, filter.keyword.is_some()),
    };
    QueryPlan {
        partition,
        lo: filter.start.map(lower_bound).unwrap_or_default(),
        hi: filter.end.map(upper_bound).unwrap_or_else(|| "~".into()),
        scan,
    }
}

/// Leads in the partition within the filter's time range: counters for whole days, exact
/// counts for the partial days at the edges (and for uncounted partitions).
pub async fn count(
    store: &dyn LeadStore,
    tenant: &TenantId,
    partition: &Partition,
    filter: &LeadFilter,
) -> Result<u64, StoreError> {
    if !partition.counted() {
        let p = plan(filter);
        return store.count_range(tenant, partition, &p.lo, &p.hi).await;
    }
    let count_plan = count_plan(filter.start, filter.end);
    let days = async {
        match count_plan.days {
            Some((first, last)) => store.count_days(tenant, partition, first, last).await,
            None => Ok(0),
        }
    };
    let edges = futures_util::future::try_join_all(
        count_plan
            .edges
            .iter()
            .map(|(lo, hi)| store.count_range(tenant, partition, lo, hi)),
    );
    let (days, edges) = futures_util::try_join!(days, edges)?;
    Ok(days + edges.iter().sum::<u64>())
}

/// How many leads a read of `filter` goes through: its partition within its time range (a
/// keyword is then applied to them, so matches are at most this many). Counters, not leads.
pub async fn readable(store: &dyn LeadStore, tenant: &TenantId, filter: &LeadFilter) -> Result<u64, StoreError> {
    count(store, tenant, &plan(filter).partition, filter).await
}

/// One page of the tenant's leads matching `filter`, newest first.
pub async fn list(
    store: &dyn LeadStore,
    tenant: &TenantId,
    filter: &LeadFilter,
    start: &PageStart,
    size: u32,
    reveal_phone: bool,
    limits: ReadLimits,
) -> Result<LeadPage, QueryError> {
    let plan = plan(filter);
    if plan.scan {
        return scan(store, tenant, filter, &plan, start, size, reveal_phone, limits).await;
    }
    let total = count(store, tenant, &plan.partition, filter);
    let position = async {
        match start {
            PageStart::After(cursor) => Ok(Some(cursor.position.clone())),
            PageStart::Number(n) => {
                let skip = u64::from(n.max(&1) - 1) * u64::from(size);
                if skip + u64::from(size) > limits.max_offset.max(u64::from(size)) {
                    return Err(QueryError::PageTooDeep { max: limits.max_offset });
                }
                if skip == 0 {
                    return Ok(None);
                }
                // Positions only: the index's keys are a tenth of the leads' size.
                let range = range(&plan, None);
                let skipped = store.index_page(tenant, &range, skip as u32, false).await?;
                match skipped.entries.last() {
                    Some(last) if skipped.entries.len() as u64 == skip => Ok(Some(last.key.clone())),
                    // Fewer leads than the skip: the page is past the end.
                    _ => Ok(Some(String::new())),
                }
            }
        }
    };
    let (total, position) = futures_util::join!(total, position);
    let (total, position) = (total?, position?);
    if position.as_deref() == Some("") {
        return Ok(LeadPage {
            records: Vec::new(),
            total,
            total_exact: true,
            next: None,
        });
    }
    let mut page = store
        .index_page(tenant, &range(&plan, position), size + 1, true)
        .await?;
    let more = page.entries.len() > size as usize || page.more;
    page.entries.truncate(size as usize);
    let last_key = page.entries.last().map(|e| e.key.clone());
    // The index may lag a status move by a moment: a lead it still lists under its old
    // status is left out rather than shown under the wrong filter.
    let records: Vec<StoredLead> = page
        .entries
        .into_iter()
        .filter_map(|e| e.lead)
        .filter(|l| filter.matches(l, reveal_phone))
        .collect();
    let next = match (more, last_key) {
        (true, Some(position)) => Some(Cursor { position, seen: 0 }),
        _ => None,
    };
    Ok(LeadPage {
        records,
        total,
        total_exact: true,
        next,
    })
}

fn range(plan: &QueryPlan, before: Option<String>) -> IndexRange {
    IndexRange {
        partition: plan.partition.clone(),
        lo: plan.lo.clone(),
        hi: plan.hi.clone(),
        before,
    }
}

/// A keyword search: reads at most the scan budget of the partition's leads from the cursor on,
/// keeps the matches, and says where to go on.
#[allow(clippy::too_many_arguments)]
async fn scan(
    store: &dyn LeadStore,
    tenant: &TenantId,
    filter: &LeadFilter,
    plan: &QueryPlan,
    start: &PageStart,
    size: u32,
    reveal_phone: bool,
    limits: ReadLimits,
) -> Result<LeadPage, QueryError> {
    // A page number counts matches within this call's scan: page N skips the first (N-1)
    // pages of matches the scan finds, and says with the cursor where to go on if it ran out.
    let (position, seen, mut skip) = match start {
        PageStart::Number(n) => (None, 0, u64::from(n.max(&1) - 1) * u64::from(size)),
        PageStart::After(c) => (Some(c.position.clone()), c.seen, 0),
    };
    let budget = limits.scan_budget.max(size);
    let page = store.index_page(tenant, &range(plan, position), budget, true).await?;
    let mut records = Vec::new();
    let mut skipped = 0u64;
    let mut stopped_at = None;
    for entry in &page.entries {
        if let Some(lead) = entry.lead.as_ref().filter(|l| filter.matches(l, reveal_phone)) {
            if skip > 0 {
                skip -= 1;
                skipped += 1;
                continue;
            }
            records.push(lead.clone());
            if records.len() == size as usize {
                stopped_at = Some(entry.key.clone());
                break;
            }
        }
    }
    let last = page.entries.last().map(|e| e.key.clone());
    let read_everything = !page.more && stopped_at.as_ref().is_none_or(|k| last.as_ref() == Some(k));
    let next = if read_everything {
        None
    } else {
        stopped_at.or(last).map(|position| Cursor {
            position,
            seen: seen + skipped + records.len() as u64,
        })
    };
    Ok(LeadPage {
        total: seen + skipped + records.len() as u64,
        total_exact: next.is_none(),
        records,
        next,
    })
}

/// Every lead matching `filter`, newest first, read a batch at a time from the partition that
/// holds them: for exports, which see each batch as it is read and keep none.
pub struct BatchReader {
    filter: LeadFilter,
    plan: QueryPlan,
    reveal_phone: bool,
    before: Option<String>,
    done: bool,
}

impl BatchReader {
    pub fn new(filter: &LeadFilter, reveal_phone: bool) -> Self {
        Self {
            plan: plan(filter),
            filter: filter.clone(),
            reveal_phone,
            before: None,
            done: false,
        }
    }

    /// The next batch of matches (possibly empty when a keyword matched none of the leads
    /// read), or `None` at the end. Each call reads `batch` leads at most.
    pub async fn next_batch(
        &mut self,
        store: &dyn LeadStore,
        tenant: &TenantId,
        batch: u32,
    ) -> Result<Option<Vec<StoredLead>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = store
            .index_page(tenant, &range(&self.plan, self.before.take()), batch, true)
            .await?;
        self.before = page.entries.last().map(|e| e.key.clone());
        self.done = !page.more || self.before.is_none();
        Ok(Some(
            page.entries
                .into_iter()
                .filter_map(|e| e.lead)
                .filter(|l| self.filter.matches(l, self.reveal_phone))
                .collect(),
        ))
    }
}

/// Cursors as callers see them: opaque, and bound by a MAC to the tenant and filter they were
/// issued for, so a cursor from another filter or range is refused instead of read.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("cursor is not one this API issued")]
    Malformed,
    #[error("cursor belongs to another filter or time range")]
    Mismatch,
}

type HmacSha256 = Hmac<Sha256>;

impl CursorCodec {
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        Self {
            key: key.as_ref().to_vec(),
        }
    }

    fn mac(&self, tenant: &TenantId, filter: &LeadFilter, position: &str, seen: u64) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("v1\n{tenant}\n{}\n{position}\n{seen}", filter.canonical()).as_bytes());
        let tag = mac.finalize().into_bytes();
        URL_SAFE_NO_PAD.encode(&tag[..16])
    }

    pub fn encode(&self, tenant: &TenantId, filter: &LeadFilter, cursor: &Cursor) -> String {
        let mac = self.mac(tenant, filter, &cursor.position, cursor.seen);
        URL_SAFE_NO_PAD.encode(format!("v1|{}|{}|{mac}", cursor.position, cursor.seen))
    }

    pub fn decode(&self, tenant: &TenantId, filter: &LeadFilter, text: &str) -> Result<Cursor, CursorError> {
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(CursorError::Malformed)?;
        let mut parts = raw.split('|');
        let (Some("v1"), Some(position), Some(seen), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CursorError::Malformed);
        };
        let seen: u64 = seen.parse().map_err(|_| CursorError::Malformed)?;
        let expected = self.mac(tenant, filter, position, seen);
        // Compared in constant time, like any MAC.
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return Err(CursorError::Mismatch);
        }
        Ok(Cursor {
            position: position.to_owned(),
            seen,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_other_filters_and_forgeries() {
        let codec = CursorCodec::new("k");
        let t = TenantId::new("t1");
        let filter = LeadFilter {
            status: Some(LeadStatus::New),
            ..LeadFilter::default()
        };
        let c = Cursor {
            position: "1748752200000#l_0123".into(),
            seen: 3,
        };
        let text = codec.encode(&t, &filter, &c);
        assert_eq!(codec.decode(&t, &filter, &text), Ok(c.clone()));
        let other = LeadFilter {
            status: Some(LeadStatus::Converted),
            ..LeadFilter::default()
        };
        assert_eq!(codec.decode(&t, &other, &text), Err(CursorError::Mismatch));
        assert_eq!(
            codec.decode(&TenantId::new("t2"), &filter, &text),
            Err(CursorError::Mismatch)
        );
        let forged = URL_SAFE_NO_PAD.encode("v1|9999999999999#l_x|0|AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(codec.decode(&t, &filter, &forged), Err(CursorError::Mismatch));
        for bad in ["", "%%%", "bm90IGEgY3Vyc29y"] {
            assert_eq!(codec.decode(&t, &filter, bad), Err(CursorError::Malformed), "{bad}");
        }
    }

    #[test]
    fn filters_pick_the_partition_that_holds_exactly_their_matches() {
        let c = ConnectionId::from_stored("c_1");
        let f = LeadFilter {
            status: Some(LeadStatus::Converted),
            source: Some(LeadSource::Laike),
            connection_id: Some(c.clone()),
            ..LeadFilter::default()
        };
        let p = plan(&f);
        assert_eq!(
            (p.partition, p.scan),
            (
                Partition::StatusSourceConnection(LeadStatus::Converted, LeadSource::Laike, c),
                false
            )
        );
        let phone = LeadFilter {
            keyword: Some("+86 138-0013-8000".into()),
            ..LeadFilter::default()
        };
        assert_eq!(plan(&phone).partition, Partition::Phone("13800138000".into()));
        assert!(!plan(&phone).scan);
        let partial = LeadFilter {
            keyword: Some("0013".into()),
            ..LeadFilter::default()
        };
        assert_eq!((plan(&partial).partition, plan(&partial).scan), (Partition::All, true));
    }
}

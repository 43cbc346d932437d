//! The lead read model: which index partitions a lead sits in, and which day counters it adds
//! to. Both lead stores keep exactly these, computed here, so a list page, a filter and a total
//! cost the same few requests in either store whatever the tenant's size.
//!
//! - An **index partition** is an ordered list of a tenant's leads that share some fields (all
//!   leads, one status, one source, one connection, one status and source, one status and
//!   connection, one phone), newest first by [`sort_key`]. A filter is answered from the
//!   partition that holds exactly its matches; DynamoDB keeps each as a keys-only index.
//! - A **counter** is the number of a tenant's leads in a counted partition created on one
//!   Beijing day, kept by atomic additions in the same transaction as the lead write or status
//!   move that changes it. A total over a range sums the counters of its whole days and counts
//!   the partial days at its edges exactly.

use crate::domain::ConnectionId;
use crate::lead::{LeadId, LeadSource, LeadStatus, StoredLead};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use std::collections::BTreeMap;

/// Sorts as text in time order: zero-padded milliseconds, then the id to break ties.
pub fn sort_key(at: DateTime<Utc>, id: &LeadId) -> String {
    format!("{:013}#{id}", at.timestamp_millis().max(0))
}

/// The lead id at the end of a sort key.
pub fn id_of_sort_key(key: &str) -> Option<LeadId> {
    key.split_once('#').map(|(_, id)| LeadId::from_stored(id))
}

/// The smallest sort key at or after `at`.
pub fn lower_bound(at: DateTime<Utc>) -> String {
    format!("{:013}#", at.timestamp_millis().max(0))
}

/// The largest sort key at `at` (every id sorts before `~`).
pub fn upper_bound(at: DateTime<Utc>) -> String {
    format!("{:013}#~", at.timestamp_millis().max(0))
}

fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// The Beijing calendar day of an instant: merchants count leads by their local day.
pub fn day_of(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&beijing()).date_naive()
}

/// The first instant of a Beijing day.
pub fn day_start(day: NaiveDate) -> DateTime<Utc> {
    beijing()
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .expect("a fixed offset has no gaps")
        .with_timezone(&Utc)
}

pub fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// One ordered list of a tenant's leads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Partition {
    All,
    Status(LeadStatus),
    Source(LeadSource),
    Connection(ConnectionId),
    StatusSource(LeadStatus, LeadSource),
    StatusConnection(LeadStatus, ConnectionId),
    SourceConnection(LeadSource, ConnectionId),
    StatusSourceConnection(LeadStatus, LeadSource, ConnectionId),
    /// Indexed only (not counted): a phone has a handful of leads, counted exactly.
    Phone(String),
}

/// The index kinds, each a keys-only DynamoDB index on its own attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexKind {
    All,
    Status,
    Source,
    Connection,
    StatusSource,
    StatusConnection,
    SourceConnection,
    StatusSourceConnection,
    Phone,
}

impl IndexKind {
    pub const FILTERED: [IndexKind; 8] = [
        IndexKind::Status,
        IndexKind::Source,
        IndexKind::Connection,
        IndexKind::StatusSource,
        IndexKind::StatusConnection,
        IndexKind::SourceConnection,
        IndexKind::StatusSourceConnection,
        IndexKind::Phone,
    ];

    /// The DynamoDB index name.
    pub fn index_name(self) -> &'static str {
        match self {
            IndexKind::All => "ixAll",
            IndexKind::Status => "ixStatus",
            IndexKind::Source => "ixSource",
            IndexKind::Connection => "ixConnection",
            IndexKind::StatusSource => "ixStatusSource",
            IndexKind::StatusConnection => "ixStatusConnection",
            IndexKind::SourceConnection => "ixSourceConnection",
            IndexKind::StatusSourceConnection => "ixStatusSourceConnection",
            IndexKind::Phone => "ixPhone",
        }
    }

    /// The lead item's attribute that holds the partition (the index's hash key).
    pub fn attribute(self) -> &'static str {
        match self {
            IndexKind::All => "tenant",
            IndexKind::Status => "xS",
            IndexKind::Source => "xR",
            IndexKind::Connection => "xC",
            IndexKind::StatusSource => "xSR",
            IndexKind::StatusConnection => "xSC",
            IndexKind::SourceConnection => "xRC",
            IndexKind::StatusSourceConnection => "xSRC",
            IndexKind::Phone => "xP",
        }
    }
}

impl Partition {
    /// A stable text name, unique per partition (counter keys, index hash keys, cursor MACs).
    pub fn key(&self) -> String {
        match self {
            Partition::All => "A".into(),
            Partition::Status(s) => format!("S={}", s.as_str()),
            Partition::Source(r) => format!("R={}", r.as_str()),
            Partition::Connection(c) => format!("C={c}"),
            Partition::StatusSource(s, r) => format!("S={}|R={}", s.as_str(), r.as_str()),
            Partition::StatusConnection(s, c) => format!("S={}|C={c}", s.as_str()),
            Partition::SourceConnection(r, c) => format!("R={}|C={c}", r.as_str()),
            Partition::StatusSourceConnection(s, r, c) => format!("S={}|R={}|C={c}", s.as_str(), r.as_str()),
            Partition::Phone(p) => format!("P={p}"),
        }
    }

    /// The index that lists this partition.
    pub fn index(&self) -> IndexKind {
        match self {
            Partition::All => IndexKind::All,
            Partition::Status(_) => IndexKind::Status,
            Partition::Source(_) => IndexKind::Source,
            Partition::Connection(_) => IndexKind::Connection,
            Partition::StatusSource(..) => IndexKind::StatusSource,
            Partition::StatusConnection(..) => IndexKind::StatusConnection,
            Partition::SourceConnection(..) => IndexKind::SourceConnection,
            Partition::StatusSourceConnection(..) => IndexKind::StatusSourceConnection,
            Partition::Phone(_) => IndexKind::Phone,
        }
    }

    pub fn counted(&self) -> bool {
        !matches!(self, Partition::Phone(_))
    }
}

/// What of a lead decides where it is listed and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexView {
    pub status: LeadStatus,
    pub source: LeadSource,
    pub connection_id: ConnectionId,
    pub phone: Option<String>,
    pub sort_key: String,
    pub day: NaiveDate,
    /// Which ad the lead came from, for cost per lead ([`attribution_cell`]).
    pub cell: String,
}

/// Where a lead counts for cost per lead: `<connection>|<source>|<campaign>|<ad>|<promotion>`,
/// `-` for what it lacks. Its day's counter per status is kept beside the partition counters
/// (`A|<day>|<cell>|<status>`), so a date range of them is one key range.
pub fn attribution_cell(connection: &ConnectionId, source: LeadSource, fields: &crate::lead::LeadFields) -> String {
    let part = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).unwrap_or("-").to_owned();
    format!(
        "{connection}|{}|{}|{}|{}",
        source.as_str(),
        part(&fields.campaign_id),
        part(&fields.ad_id),
        part(&fields.promotion_id)
    )
}

/// The analytics counter key of a cell's leads of one status on one day.
pub fn analytics_key(day: NaiveDate, cell: &str, status: LeadStatus) -> String {
    format!("A|{}|{cell}|{}", day.format("%Y-%m-%d"), status.as_str())
}

impl IndexView {
    pub fn of(lead: &StoredLead) -> Self {
        let at = lead.sort_time();
        Self {
            status: lead.status,
            source: lead.source,
            connection_id: lead.connection_id.clone(),
            phone: lead.fields.phone.clone(),
            sort_key: sort_key(at, &lead.lead_id),
            day: day_of(at),
            cell: attribution_cell(&lead.connection_id, lead.source, &lead.fields),
        }
    }

    /// Where a lead about to be created goes: status NEW, sorted by the platform's creation
    /// time or, without one, by `now` (when it is first stored).
    pub fn of_new(lead: &crate::lead::LeadRecord, now: DateTime<Utc>) -> Self {
        let at = lead.fields.created_at.unwrap_or(now);
        Self {
            status: LeadStatus::New,
            source: lead.source,
            connection_id: lead.connection_id.clone(),
            phone: lead.fields.phone.clone(),
            sort_key: sort_key(at, &lead.lead_id),
            day: day_of(at),
            cell: attribution_cell(&lead.connection_id, lead.source, &lead.fields),
        }
    }

    /// Every partition the lead is in.
    pub fn partitions(&self) -> Vec<Partition> {
        let (s, r, c) = (self.status, self.source, self.connection_id.clone());
        let mut all = vec![
            Partition::All,
            Partition::Status(s),
            Partition::Source(r),
            Partition::Connection(c.clone()),
            Partition::StatusSource(s, r),
            Partition::StatusConnection(s, c.clone()),
            Partition::SourceConnection(r, c.clone()),
            Partition::StatusSourceConnection(s, r, c),
        ];
        if let Some(phone) = &self.phone {
            all.push(Partition::Phone(phone.clone()));
        }
        all
    }

    /// The index attributes of the lead's item: (attribute, partition key), the All index aside
    /// (its attribute is the tenant itself).
    pub fn index_attributes(&self) -> Vec<(IndexKind, String)> {
        self.partitions()
            .into_iter()
            .filter(|p| *p != Partition::All)
            .map(|p| (p.index(), p.key()))
            .collect()
    }
}

/// Counter changes, by (partition key, day): what moves when a lead appears (`before` None),
/// changes status or day, or goes.
pub fn counter_deltas(before: Option<&IndexView>, after: Option<&IndexView>) -> BTreeMap<(String, NaiveDate), i64> {
    let mut deltas = BTreeMap::new();
    for (view, sign) in [(before, -1), (after, 1)] {
        if let Some(view) = view {
            for p in view.partitions().into_iter().filter(Partition::counted) {
                *deltas.entry((p.key(), view.day)).or_insert(0) += sign;
            }
            let cell = analytics_key(view.day, &view.cell, view.status);
            *deltas.entry((cell, view.day)).or_insert(0) += sign;
        }
    }
    deltas.retain(|_, d| *d != 0);
    deltas
}

/// How a time range splits for counting: whole Beijing days (summed from counters) and the
/// partial days at its edges (counted exactly), as sort-key ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountPlan {
    /// First and last whole day, when the range holds one.
    pub days: Option<(NaiveDate, NaiveDate)>,
    /// Inclusive sort-key ranges counted item by item.
    pub edges: Vec<(String, String)>,
}

/// The first day counters can name, for ranges without a start: before any lead.
const EPOCH: (i32, u32, u32) = (2000, 1, 1);
/// And the last, for ranges without an end.
const END: (i32, u32, u32) = (2999, 12, 31);

pub fn count_plan(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> CountPlan {
    let first_day = |t: DateTime<Utc>| {
        let d = day_of(t);
        if day_start(d) == t { d } else { d + Duration::days(1) }
    };
    // The last day whose end (the next day's start, exclusive) is at or before `t`.
    let last_day = |t: DateTime<Utc>| {
        let d = day_of(t);
        if day_start(d + Duration::days(1)) - Duration::milliseconds(1) <= t {
            d
        } else {
            d - Duration::days(1)
        }
    };
    let from = start.map(first_day).unwrap_or_else(|| date(EPOCH));
    let to = end.map(last_day).unwrap_or_else(|| date(END));
    if from > to {
        let lo = start.map(lower_bound).unwrap_or_default();
        let hi = end.map(upper_bound).unwrap_or_else(|| "~".into());
        return CountPlan {
            days: None,
            edges: vec![(lo, hi)],
        };
    }
    let mut edges = Vec::new();
    if let Some(s) = start.filter(|s| day_start(from) > *s) {
        edges.push((lower_bound(s), upper_bound(day_start(from) - Duration::milliseconds(1))));
    }
    if let Some(e) = end.filter(|e| *e > day_start(to + Duration::days(1)) - Duration::milliseconds(1)) {
        edges.push((lower_bound(day_start(to + Duration::days(1))), upper_bound(e)));
    }
    CountPlan {
        days: Some((from, to)),
        edges,
    }
}

fn date((y, m, d): (i32, u32, u32)) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn bj(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        beijing()
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn days_are_beijing_days() {
        assert_eq!(day_of(bj(2025, 6, 1, 0)), date((2025, 6, 1)));
        assert_eq!(day_of(bj(2025, 6, 1, 23)), date((2025, 6, 1)));
        assert_eq!(day_start(date((2025, 6, 1))), bj(2025, 6, 1, 0));
    }

    #[test]
    fn count_plans_split_whole_days_from_edges() {
        let aligned = count_plan(
            Some(bj(2025, 6, 1, 0)),
            Some(bj(2025, 6, 30, 0) + Duration::days(1) - Duration::milliseconds(1)),
        );
        assert_eq!(aligned.days, Some((date((2025, 6, 1)), date((2025, 6, 30)))));
        assert!(aligned.edges.is_empty());
        let ragged = count_plan(Some(bj(2025, 6, 1, 12)), Some(bj(2025, 6, 30, 6)));
        assert_eq!(ragged.days, Some((date((2025, 6, 2)), date((2025, 6, 29)))));
        assert_eq!(ragged.edges.len(), 2);
        let (lo, hi) = &ragged.edges[0];
        assert!(*lo == lower_bound(bj(2025, 6, 1, 12)) && hi.as_str() < lower_bound(bj(2025, 6, 2, 0)).as_str());
        let inside = count_plan(Some(bj(2025, 6, 1, 12)), Some(bj(2025, 6, 1, 13)));
        assert_eq!(inside.days, None);
        let open = count_plan(None, None);
        assert!(open.edges.is_empty() && open.days.is_some());
    }

    #[test]
    fn a_status_move_shifts_only_the_status_counters() {
        let view = IndexView {
            status: LeadStatus::New,
            source: LeadSource::Laike,
            connection_id: ConnectionId::from_stored("c_1"),
            phone: Some("13800138000".into()),
            sort_key: "x".into(),
            day: date((2025, 6, 1)),
            cell: "c_1|laike|-|-|738".into(),
        };
        let created = counter_deltas(None, Some(&view));
        assert_eq!(created.len(), 9, "8 partitions and the lead's analytics cell");
        assert!(created.values().all(|d| *d == 1));
        let moved = IndexView {
            status: LeadStatus::Contacted,
            ..view.clone()
        };
        let deltas = counter_deltas(Some(&view), Some(&moved));
        assert_eq!(deltas.len(), 10, "{deltas:?}");
        assert_eq!(
            deltas.get(&("A|2025-06-01|c_1|laike|-|-|738|CONTACTED".into(), view.day)),
            Some(&1)
        );
        assert_eq!(deltas.get(&("S=CONTACTED".into(), view.day)), Some(&1));
        assert_eq!(deltas.get(&("S=NEW".into(), view.day)), Some(&-1));
        assert!(!deltas.contains_key(&("A".into(), view.day)));
    }
}

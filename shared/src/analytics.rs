//! Cost per lead: the spend rows of a date range joined with the leads' own counters (kept at
//! write time per attribution cell, day and status), grouped one way. Money stays in fen until
//! it is shown; a ratio whose denominator is zero is null. Lead figures come from our store,
//! never from the reports' conversions.

use crate::domain::ConnectionId;
use crate::lead::{LeadSource, LeadStatus};
use crate::spend::{SpendLevel, SpendRow, yuan};
use chrono::NaiveDate;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// The group of whatever lacks the grouping's attribute (organic leads, spend of another level).
pub const UNATTRIBUTED: &str = "unattributed";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Source,
    Connection,
    Campaign,
    Project,
    Promotion,
    Ad,
}

impl GroupBy {
    pub const NAMES: &[&str] = &["day", "source", "connection", "campaign", "project", "promotion", "ad"];

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "day" => Self::Day,
            "source" => Self::Source,
            "connection" => Self::Connection,
            "campaign" => Self::Campaign,
            "project" => Self::Project,
            "promotion" => Self::Promotion,
            "ad" => Self::Ad,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: GroupBy,
    pub connection: Option<ConnectionId>,
    pub source: Option<LeadSource>,
}

/// One group's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostRow {
    pub key: String,
    pub name: Option<String>,
    pub spend_fen: i64,
    pub shows: i64,
    pub clicks: i64,
    pub leads: i64,
    pub contacted: i64,
    pub converted: i64,
    pub invalid: i64,
    pub provisional: bool,
}

impl CostRow {
    fn add(&mut self, other: &CostRow) {
        self.spend_fen += other.spend_fen;
        self.shows += other.shows;
        self.clicks += other.clicks;
        self.leads += other.leads;
        self.contacted += other.contacted;
        self.converted += other.converted;
        self.invalid += other.invalid;
        self.provisional |= other.provisional;
    }

    /// Fen per unit, rounded half up, as yuan; null without units.
    fn per(&self, units: i64) -> Value {
        if units <= 0 {
            return Value::Null;
        }
        json!(yuan((self.spend_fen * 2 + units) / (units * 2)))
    }

    pub fn json(&self) -> Value {
        let rate = if self.leads > 0 {
            json!(((self.converted as f64 / self.leads as f64) * 10_000.0).round() / 10_000.0)
        } else {
            Value::Null
        };
        json!({
            "key": self.key, "name": self.name, "spend": yuan(self.spend_fen), "shows": self.shows,
            "clicks": self.clicks, "leads": self.leads, "contacted": self.contacted,
            "converted": self.converted, "invalid": self.invalid, "costPerLead": self.per(self.leads),
            "costPerConversion": self.per(self.converted), "conversionRate": rate,
            "provisional": self.provisional,
        })
    }
}

/// The source whose leads a spend level's entities bring.
pub fn level_source(level: SpendLevel) -> LeadSource {
    match level {
        SpendLevel::Ad | SpendLevel::Promotion => LeadSource::OceanEngineClue,
        SpendLevel::LocalPromotion => LeadSource::OceanEngineLife,
    }
}

/// One analytics counter, read back from its key `A|<day>|<conn>|<source>|<campaign>|<ad>|<promotion>|<status>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub day: NaiveDate,
    pub connection: String,
    pub source: LeadSource,
    pub campaign: Option<String>,
    pub ad: Option<String>,
    pub promotion: Option<String>,
    pub status: LeadStatus,
    pub leads: i64,
}

pub fn parse_cell(key: &str, leads: i64) -> Option<Cell> {
    let parts: Vec<&str> = key.split('|').collect();
    let [tag, day, connection, source, campaign, ad, promotion, status] = parts[..] else {
        return None;
    };
    if tag != "A" {
        return None;
    }
    let some = |v: &str| (v != "-").then(|| v.to_owned());
    Some(Cell {
        day: NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?,
        connection: connection.to_owned(),
        source: LeadSource::parse(source)?,
        campaign: some(campaign),
        ad: some(ad),
        promotion: some(promotion),
        status: LeadStatus::parse(status)?,
        leads,
    })
}

/// The grouped table and its totals.
pub fn report(
    q: &CostQuery,
    spend: &[(ConnectionId, SpendRow)],
    counters: &[(String, i64)],
) -> (Vec<CostRow>, CostRow) {
    let keep_connection = |c: &str| q.connection.as_ref().is_none_or(|want| want.as_str() == c);
    let keep_source = |s: LeadSource| q.source.is_none_or(|want| want == s);
    let in_range = |d: NaiveDate| d >= q.from && d <= q.to;
    // A promotion's project, as its spend rows tell it (leads carry only the promotion).
    let projects: HashMap<&str, &str> = spend
        .iter()
        .filter(|(_, r)| r.level != SpendLevel::Ad)
        .filter_map(|(_, r)| Some((r.entity_id.as_str(), r.parent_id.as_deref()?)))
        .collect();
    let mut groups: BTreeMap<String, CostRow> = BTreeMap::new();
    fn group(groups: &mut BTreeMap<String, CostRow>, key: Option<String>, name: Option<String>) -> &mut CostRow {
        let key = key.unwrap_or_else(|| UNATTRIBUTED.to_owned());
        let row = groups.entry(key.clone()).or_insert_with(|| CostRow {
            name: (key == UNATTRIBUTED).then(|| "organic / unattributed".to_owned()),
            key,
            ..CostRow::default()
        });
        if row.name.is_none() {
            row.name = name;
        }
        row
    }
    for (connection, r) in spend {
        let source = level_source(r.level);
        if !in_range(r.day) || !keep_connection(connection.as_str()) || !keep_source(source) {
            continue;
        }
        let entity_name = r.name.clone();
        let (key, name) = match q.group_by {
            GroupBy::Day => (Some(r.day.to_string()), None),
            GroupBy::Source => (Some(source.as_str().to_owned()), None),
            GroupBy::Connection => (Some(connection.to_string()), None),
            GroupBy::Campaign => (r.parent_id.clone().filter(|_| r.level == SpendLevel::Ad), None),
            GroupBy::Project => (r.parent_id.clone().filter(|_| r.level != SpendLevel::Ad), None),
            GroupBy::Promotion => (
                Some(r.entity_id.clone()).filter(|_| r.level != SpendLevel::Ad),
                entity_name,
            ),
            GroupBy::Ad => (
                Some(r.entity_id.clone()).filter(|_| r.level == SpendLevel::Ad),
                entity_name,
            ),
        };
        let row = group(&mut groups, key, name);
        row.spend_fen += r.spend_fen;
        row.shows += r.shows;
        row.clicks += r.clicks;
        row.provisional |= r.provisional;
    }
    for (key, n) in counters {
        let Some(c) = parse_cell(key, *n) else {
            continue;
        };
        if !in_range(c.day) || !keep_connection(&c.connection) || !keep_source(c.source) {
            continue;
        }
        let key = match q.group_by {
            GroupBy::Day => Some(c.day.to_string()),
            GroupBy::Source => Some(c.source.as_str().to_owned()),
            GroupBy::Connection => Some(c.connection.clone()),
            GroupBy::Campaign => c.campaign.clone(),
            GroupBy::Project => c
                .promotion
                .as_deref()
                .and_then(|p| projects.get(p))
                .map(|p| (*p).to_owned()),
            GroupBy::Promotion => c.promotion.clone(),
            GroupBy::Ad => c.ad.clone(),
        };
        let row = group(&mut groups, key, None);
        row.leads += c.leads;
        match c.status {
            LeadStatus::Contacted => row.contacted += c.leads,
            LeadStatus::Converted => row.converted += c.leads,
            LeadStatus::Invalid => row.invalid += c.leads,
            LeadStatus::New => {}
        }
    }
    let rows: Vec<CostRow> = groups
        .into_values()
        .filter(|r| r.spend_fen != 0 || r.leads != 0 || r.shows != 0)
        .collect();
    let mut totals = CostRow {
        key: "total".into(),
        ..CostRow::default()
    };
    for r in &rows {
        totals.add(r);
    }
    (rows, totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn spend(level: SpendLevel, entity: &str, d: u32, fen: i64, parent: &str) -> (ConnectionId, SpendRow) {
        (
            ConnectionId::from_stored("c_1"),
            SpendRow {
                level,
                entity_id: entity.into(),
                day: day(d),
                name: Some(format!("name-{entity}")),
                parent_id: Some(parent.into()),
                spend_fen: fen,
                shows: 100,
                clicks: 10,
                conversions: 99,
                provisional: false,
            },
        )
    }

    #[test]
    fn spend_and_lead_counters_join_by_entity_and_the_rest_is_unattributed() {
        let q = CostQuery {
            from: day(1),
            to: day(30),
            group_by: GroupBy::Promotion,
            connection: None,
            source: None,
        };
        let rows = [
            spend(SpendLevel::LocalPromotion, "p1", 2, 10_000, "proj"),
            spend(SpendLevel::LocalPromotion, "p1", 3, 5_001, "proj"),
            spend(SpendLevel::Ad, "a1", 2, 700, "camp"),
        ];
        let counters = vec![
            ("A|2026-11-02|c_1|oceanengine_life|-|-|p1|NEW".to_owned(), 2),
            ("A|2026-11-03|c_1|oceanengine_life|-|-|p1|CONVERTED".to_owned(), 1),
            ("A|2026-11-03|c_1|oceanengine_clue|-|-|-|NEW".to_owned(), 4),
            ("A|2026-12-01|c_1|oceanengine_life|-|-|p1|NEW".to_owned(), 9),
        ];
        let (groups, totals) = report(&q, &rows, &counters);
        let p1 = groups.iter().find(|g| g.key == "p1").unwrap();
        assert_eq!((p1.spend_fen, p1.leads, p1.converted), (15_001, 3, 1));
        let v = p1.json();
        assert_eq!(v["spend"], "150.01");
        assert_eq!(
            v["costPerLead"], "50.00",
            "15001 fen / 3 = 5000.33 fen, rounded to the fen"
        );
        assert_eq!(v["costPerConversion"], "150.01");
        assert_eq!(v["conversionRate"], 0.3333);
        assert_eq!(p1.name.as_deref(), Some("name-p1"));
        let other = groups.iter().find(|g| g.key == UNATTRIBUTED).unwrap();
        assert_eq!((other.spend_fen, other.leads), (700, 4), "ad spend and organic leads");
        assert_eq!(
            other.json()["costPerConversion"],
            Value::Null,
            "no conversions: null, not a division by zero"
        );
        assert_eq!(
            (totals.spend_fen, totals.leads),
            (15_701, 7),
            "out-of-range counters are not counted"
        );
    }

    #[test]
    fn a_lead_finds_its_project_through_its_promotion() {
        let q = CostQuery {
            from: day(1),
            to: day(30),
            group_by: GroupBy::Project,
            connection: None,
            source: Some(LeadSource::OceanEngineLife),
        };
        let rows = [spend(SpendLevel::LocalPromotion, "p1", 2, 100, "proj")];
        let counters = vec![("A|2026-11-02|c_1|oceanengine_life|-|-|p1|INVALID".to_owned(), 5)];
        let (groups, _) = report(&q, &rows, &counters);
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].key.as_str(), groups[0].invalid), ("proj", 5));
    }
}

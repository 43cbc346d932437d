//! Status write-back (回传): when sales moves a lead, the ad platform is told, so it can optimise
//! delivery on what sales learned. Which of our statuses is which platform state is configuration
//! (defaults below, from platform-apis.md §9); the outcome is recorded on the lead, a state is
//! never sent twice, transient failures are retried, refusals are kept visible.

pub mod platforms;
pub mod runner;

use crate::lead::{LeadSource, LeadStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happened to the latest write-back of a lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WriteBackState {
    /// The platform accepted it.
    Sent,
    /// Not yet: a transient failure, tried again at `nextAttemptAt`.
    Retrying,
    /// The platform refused it (or the retries ran out); not sent again for this status.
    Refused,
}

/// The write-back record on a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteBack {
    pub state: WriteBackState,
    /// Our status this record is for.
    pub status: LeadStatus,
    /// The platform's state sent for it, as text (`194`, `CLUE_CONFIRM`, …).
    pub platform_state: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: u32,
    pub first_attempt_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A platform state to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformState {
    /// `tools/clue/callback` `clue_convert_state`.
    Clue(i64),
    /// `tools/clue/life/callback` `clue_convert_state`.
    Life(String),
    /// Feiyu `clue/callback` `clue_convert_state`.
    Feiyu(i64),
}

impl PlatformState {
    pub fn as_text(&self) -> String {
        match self {
            Self::Clue(n) | Self::Feiyu(n) => n.to_string(),
            Self::Life(s) => s.clone(),
        }
    }
}

/// 本地推's INVALID_EVENT needs a reason; these are the ones the platform lists for all
/// industries (platform-apis.md §9.1). More (HOME_*, EDU_*) by configuration.
pub const LIFE_INVALID_REASONS: &[&str] = &[
    "CALL_THREE_TIMES_NO_RESPONSE",
    "INVALID_NUMBER",
    "CONNECTED_NO_INTENTION",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBackConfig {
    pub clue: BTreeMap<LeadStatus, i64>,
    pub life: BTreeMap<LeadStatus, String>,
    pub feiyu: BTreeMap<LeadStatus, i64>,
    /// Feiyu's callback is legacy (its `source: 0` was retired for Ocean Engine in 2020): off
    /// unless asked for.
    pub feiyu_enabled: bool,
    /// `tools/clue/callback` `source`: 1 = 新版深度转化.
    pub clue_source: i64,
    pub life_invalid_reasons: Vec<String>,
}

impl WriteBackConfig {
    pub fn defaults() -> Self {
        use LeadStatus::*;
        Self {
            clue: BTreeMap::from([(Contacted, 194), (Converted, 196), (Invalid, 10000)]),
            life: BTreeMap::from([
                (Contacted, "CLUE_CONFIRM".to_owned()),
                (Converted, "CONVERSION_CLASS".to_owned()),
                (Invalid, "INVALID_EVENT".to_owned()),
            ]),
            feiyu: BTreeMap::from([(Contacted, 2), (Converted, 4), (Invalid, 1)]),
            feiyu_enabled: false,
            clue_source: 1,
            life_invalid_reasons: LIFE_INVALID_REASONS.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    /// Whether leads of `source` can be written back at all.
    pub fn supports(&self, source: LeadSource) -> bool {
        match source {
            LeadSource::OceanEngineClue | LeadSource::OceanEngineLife => true,
            LeadSource::Feiyu => self.feiyu_enabled,
            _ => false,
        }
    }

    /// The platform state for a lead of `source` now in `status`; `None` when nothing is sent
    /// for it (NEW, an unmapped status, a source without write-back).
    pub fn target(&self, source: LeadSource, status: LeadStatus) -> Option<PlatformState> {
        match source {
            LeadSource::OceanEngineClue => self.clue.get(&status).map(|n| PlatformState::Clue(*n)),
            LeadSource::OceanEngineLife => self.life.get(&status).map(|s| PlatformState::Life(s.clone())),
            LeadSource::Feiyu if self.feiyu_enabled => self.feiyu.get(&status).map(|n| PlatformState::Feiyu(*n)),
            _ => None,
        }
    }

    /// Whether moving a lead of `source` to `status` needs a reason (本地推's INVALID_EVENT).
    pub fn needs_reason(&self, source: LeadSource, status: LeadStatus) -> bool {
        matches!(self.target(source, status), Some(PlatformState::Life(s)) if s == "INVALID_EVENT")
    }
}

/// Reads `CONTACTED=194,CONVERTED=196` into a mapping; the caller reports what does not parse.
pub fn parse_mapping<T: std::str::FromStr>(raw: &str) -> Result<BTreeMap<LeadStatus, T>, String> {
    let mut map = BTreeMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (status, state) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?} is not STATUS=STATE"))?;
        let status = LeadStatus::parse(status.trim())
            .filter(|s| *s != LeadStatus::New)
            .ok_or_else(|| format!("{status:?} is not CONTACTED, CONVERTED or INVALID"))?;
        let state = state
            .trim()
            .parse::<T>()
            .map_err(|_| format!("{state:?} is not a state of this platform"))?;
        map.insert(status, state);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_maps_its_statuses_and_new_sends_nothing() {
        let c = WriteBackConfig::defaults();
        assert_eq!(
            c.target(LeadSource::OceanEngineClue, LeadStatus::Contacted),
            Some(PlatformState::Clue(194))
        );
        assert_eq!(
            c.target(LeadSource::OceanEngineLife, LeadStatus::Invalid),
            Some(PlatformState::Life("INVALID_EVENT".into()))
        );
        assert!(c.needs_reason(LeadSource::OceanEngineLife, LeadStatus::Invalid));
        assert!(!c.needs_reason(LeadSource::OceanEngineClue, LeadStatus::Invalid));
        assert_eq!(c.target(LeadSource::OceanEngineClue, LeadStatus::New), None);
        assert_eq!(
            c.target(LeadSource::Feiyu, LeadStatus::Converted),
            None,
            "Feiyu is behind its switch"
        );
        assert_eq!(c.target(LeadSource::Laike, LeadStatus::Converted), None);
        assert!(!c.supports(LeadSource::DouyinFans));
    }

    #[test]
    fn mappings_parse_from_configuration() {
        let m: BTreeMap<LeadStatus, i64> = parse_mapping("CONTACTED=195, CONVERTED=285").unwrap();
        assert_eq!(m.get(&LeadStatus::Converted), Some(&285));
        assert!(parse_mapping::<i64>("NEW=1").is_err());
        assert!(parse_mapping::<i64>("CONTACTED=x").is_err());
        assert!(parse_mapping::<i64>("CONTACTED").is_err());
    }
}

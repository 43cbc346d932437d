//! The lead: where it comes from, its normalized platform fields, the operator's fields, and
//! the identity and content hash that make every write idempotent.

use crate::domain::{ConnectionId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// One API a lead is pulled from. A connection feeds one or more sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LeadSource {
    /// 抖音来客 `crm/clue/query`.
    #[serde(rename = "laike")]
    Laike,
    /// Ocean Engine `tools/clue/get` (ad form leads).
    #[serde(rename = "oceanengine_clue")]
    OceanEngineClue,
    /// Ocean Engine `tools/clue/life/get` (本地推 leads).
    #[serde(rename = "oceanengine_life")]
    OceanEngineLife,
    /// Feiyu CRM `pull-clues`.
    #[serde(rename = "feiyu")]
    Feiyu,
    /// Douyin `fans/list`: fans as acquisition leads.
    #[serde(rename = "douyin_fans")]
    DouyinFans,
}

impl LeadSource {
    pub const ALL: [LeadSource; 5] = [
        LeadSource::Laike,
        LeadSource::OceanEngineClue,
        LeadSource::OceanEngineLife,
        LeadSource::Feiyu,
        LeadSource::DouyinFans,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadSource::Laike => "laike",
            LeadSource::OceanEngineClue => "oceanengine_clue",
            LeadSource::OceanEngineLife => "oceanengine_life",
            LeadSource::Feiyu => "feiyu",
            LeadSource::DouyinFans => "douyin_fans",
        }
    }

    /// The platform whose accounts supply it.
    pub fn provider(self) -> crate::domain::Provider {
        use crate::domain::Provider;
        match self {
            LeadSource::Laike => Provider::Laike,
            LeadSource::OceanEngineClue | LeadSource::OceanEngineLife => Provider::OceanEngine,
            LeadSource::Feiyu => Provider::Feiyu,
            LeadSource::DouyinFans => Provider::Douyin,
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl fmt::Display for LeadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sales workflow: NEW → CONTACTED → CONVERTED; any → INVALID; INVALID → NEW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LeadStatus {
    New,
    Contacted,
    Converted,
    Invalid,
}

impl LeadStatus {
    pub const ALL: [LeadStatus; 4] = [
        LeadStatus::New,
        LeadStatus::Contacted,
        LeadStatus::Converted,
        LeadStatus::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::New => "NEW",
            LeadStatus::Contacted => "CONTACTED",
            LeadStatus::Converted => "CONVERTED",
            LeadStatus::Invalid => "INVALID",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// The sales workflow's legal moves.
    pub fn can_move_to(self, to: LeadStatus) -> bool {
        use LeadStatus::*;
        matches!(
            (self, to),
            (New, Contacted) | (Contacted, Converted) | (_, Invalid) | (Invalid, New)
        ) && self != to
    }
}

/// What a platform says about a lead, normalized. Ids are strings: they exceed 2^53.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeadFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_id: Option<String>,
    /// Digits only, country code removed; absent when the platform sent none or decryption failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Why `phone` is missing although the platform sent one (a failed decryption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_error: Option<String>,
    /// FORM, CONSULT, PHONE, ORDER, WECHAT, COUPON, LOTTERY, FANS or OTHER.
    pub clue_type: String,
    /// The app the lead came through (`app_name`, `appname`), often filled late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertiser_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creative_id: Option<String>,
    /// Store or POI the lead is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub form_fields: BTreeMap<String, String>,
    /// When the lead was created on the platform; fans have no such time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<DateTime<Utc>>,
    /// The platform's own follow-up or conversion state, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_status: Option<String>,
}

impl LeadFields {
    /// A digest of the normalized fields. The raw record is left out on purpose: the same lead
    /// sent once with numbers and once with numeric strings must not count as a change.
    pub fn content_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("lead fields always serialize");
        hex(&Sha256::digest(&canonical)[..16])
    }
}

/// A lead as a source adapter returns it: the normalized fields and the record as received.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformLead {
    pub source: LeadSource,
    pub source_lead_id: String,
    pub fields: LeadFields,
    pub raw: Value,
    /// The phone ciphertext, when the phone could not be decrypted (kept for a retry).
    pub phone_cipher: Option<String>,
}

/// A lead ready to be written: its identity within the tenant plus what the platform said.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRecord {
    pub lead_id: LeadId,
    pub connection_id: ConnectionId,
    pub source: LeadSource,
    pub source_lead_id: String,
    pub fields: LeadFields,
    pub raw: Value,
    pub content_hash: String,
    /// See [`PlatformLead::phone_cipher`].
    pub phone_cipher: Option<String>,
}

impl LeadRecord {
    pub fn new(tenant: &TenantId, connection_id: &ConnectionId, lead: PlatformLead) -> Self {
        let content_hash = lead.fields.content_hash();
        Self {
            lead_id: LeadId::derive(tenant, lead.source, &lead.source_lead_id),
            connection_id: connection_id.clone(),
            source: lead.source,
            source_lead_id: lead.source_lead_id,
            fields: lead.fields,
            raw: lead.raw,
            content_hash,
            phone_cipher: lead.phone_cipher,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeadId(String);

impl LeadId {
    /// Derived from (tenant, source, source lead id): a re-pull of the same lead, by any
    /// connection of the tenant, lands on the same item.
    pub fn derive(tenant: &TenantId, source: LeadSource, source_lead_id: &str) -> Self {
        Self(crate::domain::derived_id(
            "l_",
            &[tenant.as_str(), source.as_str(), source_lead_id],
        ))
    }

    pub fn from_stored(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One event in a lead's history (kept as items of their own, so the lead stays small).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// STATUS, NOTES or PHONE_REVEALED.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The key of a history entry among its lead's: newest last in key order, unique per write
/// (`seq` orders the entries of one change, the first shown first when read newest first; the
/// nonce keeps two writers apart).
pub fn history_key(at: DateTime<Utc>, seq: usize) -> String {
    let mut nonce = [0u8; 4];
    getrandom::fill(&mut nonce).expect("OS randomness is available");
    let order = 999 - seq.min(999);
    // Dots, not `#`: the key is also the history page's cursor, in a URL.
    format!("{:013}.{order:03}.{}", at.timestamp_millis().max(0), hex(&nonce))
}

/// A lead as stored: platform fields from the last pull that changed it, plus operator fields
/// that no sync ever writes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLead {
    pub lead_id: LeadId,
    pub tenant: TenantId,
    pub connection_id: ConnectionId,
    pub source: LeadSource,
    pub source_lead_id: String,
    pub fields: LeadFields,
    pub raw: Value,
    pub content_hash: String,
    /// When we first stored it.
    pub acquired_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The earliest known lead of the tenant with the same phone.
    pub duplicate_of: Option<LeadId>,
    pub status: LeadStatus,
    pub notes: String,
    /// Bumped by every operator change, for optimistic concurrency; syncs leave it alone.
    pub version: u64,
    /// Who made the last operator change (the outbound events' actor).
    pub changed_by: Option<String>,
    /// Why sales marked it INVALID, from the platform's list (本地推 write-back needs one).
    pub invalid_reason: Option<String>,
    /// The last status write-back to its platform.
    pub write_back: Option<crate::writeback::WriteBack>,
}

impl StoredLead {
    /// The time lists sort by: the platform's creation time, or ours when it has none.
    pub fn sort_time(&self) -> DateTime<Utc> {
        self.fields.created_at.unwrap_or(self.acquired_at)
    }
}

/// Keeps the digits of a phone number and drops a +86 / 0086 country code, so the same number
/// written two ways links as a duplicate.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let national = if digits.len() == 13 && digits.starts_with("86") {
        &digits[2..]
    } else if digits.len() == 15 && digits.starts_with("0086") {
        &digits[4..]
    } else {
        &digits
    };
    (national.len() >= 5).then(|| national.to_owned())
}

/// `138****8000`: the first three and last four digits, for lists and logs.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// Masks every run of 7 or more digits (spaces and dashes inside a run count with it), the
/// way phone numbers typed into remarks and form answers look: `电话138 0013 8000` →
/// `电话138****8000`.
pub fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A run: digits, possibly joined by single spaces or dashes.
        let mut j = i;
        let mut digits = String::new();
        while j < chars.len() {
            if chars[j].is_ascii_digit() {
                digits.push(chars[j]);
                j += 1;
            } else if matches!(chars[j], ' ' | '-') && chars.get(j + 1).is_some_and(char::is_ascii_digit) {
                j += 1;
            } else {
                break;
            }
        }
        if digits.len() >= 7 {
            out.push_str(&mask_phone(&digits));
        } else {
            out.extend(&chars[i..j]);
        }
        i = j;
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalize_and_mask() {
        assert_eq!(normalize_phone("+86 138-0013-8000").as_deref(), Some("13800138000"));
        assert_eq!(normalize_phone("008613800138000").as_deref(), Some("13800138000"));
        assert_eq!(normalize_phone("13800138000").as_deref(), Some("13800138000"));
        assert_eq!(normalize_phone("n/a"), None);
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(mask_phone("12345"), "*****");
        assert_eq!(
            mask_digit_runs("电话138 0013 8000，门店2号"),
            "电话138****8000，门店2号"
        );
        assert_eq!(mask_digit_runs("+86-13800138000"), "+861****8000");
        assert_eq!(mask_digit_runs("订单 123456 已付"), "订单 123456 已付");
        assert_eq!(mask_digit_runs("1234567"), "*******");
    }

    #[test]
    fn lead_id_separates_tenants_and_sources() {
        let t = TenantId::new("t1");
        let a = LeadId::derive(&t, LeadSource::Laike, "7391234567890123456");
        assert_eq!(a, LeadId::derive(&t, LeadSource::Laike, "7391234567890123456"));
        assert_ne!(
            a,
            LeadId::derive(&TenantId::new("t2"), LeadSource::Laike, "7391234567890123456")
        );
        assert_ne!(a, LeadId::derive(&t, LeadSource::Feiyu, "7391234567890123456"));
    }

    #[test]
    fn content_hash_follows_the_fields() {
        let mut f = LeadFields {
            clue_type: "FORM".into(),
            name: Some("张先生".into()),
            ..LeadFields::default()
        };
        let before = f.content_hash();
        assert_eq!(before, f.clone().content_hash());
        f.channel = Some("抖音".into());
        assert_ne!(before, f.content_hash());
    }

    #[test]
    fn the_workflow_allows_only_its_moves() {
        use LeadStatus::*;
        assert!(New.can_move_to(Contacted) && Contacted.can_move_to(Converted));
        assert!(New.can_move_to(Invalid) && Converted.can_move_to(Invalid) && Invalid.can_move_to(New));
        assert!(!New.can_move_to(Converted) && !Converted.can_move_to(New) && !Contacted.can_move_to(New));
        assert!(!Invalid.can_move_to(Invalid) && !New.can_move_to(New));
    }

    #[test]
    fn sources_and_statuses_round_trip() {
        for s in LeadSource::ALL {
            assert_eq!(LeadSource::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), Value::from(s.as_str()));
        }
        for s in LeadStatus::ALL {
            assert_eq!(LeadStatus::parse(s.as_str()), Some(s));
        }
    }
}

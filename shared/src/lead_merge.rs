//! What an upsert does when a pulled lead meets the stored one, decided here once for every
//! store. The rule: a known value is never replaced by an unknown one. A platform that omits a
//! field this time (a refused phone decrypt, a late field not sent, a `0` id) has not told us the
//! value changed, only that it did not give it; so the stored value stays.

use crate::lead::{LeadFields, LeadRecord};
use crate::store::PendingPhone;
use chrono::{DateTime, Utc};

/// The stored side of a lead, as far as an upsert needs it.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub fields: &'a LeadFields,
    pub content_hash: &'a str,
}

/// What to write for one pulled lead.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Not stored yet: write it as pulled.
    Create(LeadRecord),
    /// Stored and changed: write these platform fields (merged over the stored ones).
    Update(LeadRecord),
    /// Stored, and the pull adds nothing: no write.
    Unchanged,
    /// Too big to store (DynamoDB items hold at most 400 KB): this lead fails, the batch goes on.
    Refused(String),
}

/// The largest lead item written, with room under DynamoDB's 400 KB for keys and the index.
pub const MAX_LEAD_ITEM_BYTES: usize = 350 * 1024;

fn refusal(record: &LeadRecord) -> Option<String> {
    let fields = serde_json::to_string(&record.fields).map_or(0, |t| t.len());
    let size = fields + record.raw.to_string().len();
    (size > MAX_LEAD_ITEM_BYTES)
        .then(|| format!("the lead is {size} bytes, over the {MAX_LEAD_ITEM_BYTES}-byte item limit"))
}

/// How the write changes what we know of the lead's phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneEffect {
    /// Nothing new about the phone.
    Same,
    /// The lead now lacks a phone because a decrypt failed: remember it for a retry.
    NowMissing,
    /// A phone that failed to decrypt before is known now: the retry is no longer needed.
    Recovered,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpsertPlan {
    pub write: Write,
    pub phone: PhoneEffect,
}

/// What the write does to the lead's phone retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneRetryChange {
    /// Remember the lead for a decrypt retry on later runs.
    Remember(PendingPhone),
    /// Its phone is known now: forget the retry.
    Forget,
}

impl UpsertPlan {
    /// The retry to remember or forget for `lead` (the record this plan was decided for).
    pub fn phone_retry(&self, lead: &LeadRecord, now: DateTime<Utc>) -> Option<PhoneRetryChange> {
        match (self.phone, &lead.phone_cipher) {
            (PhoneEffect::NowMissing, Some(cipher)) if !matches!(self.write, Write::Refused(_)) => {
                Some(PhoneRetryChange::Remember(PendingPhone {
                    lead_id: lead.lead_id.clone(),
                    connection_id: lead.connection_id.clone(),
                    source: lead.source,
                    source_lead_id: lead.source_lead_id.clone(),
                    cipher: cipher.clone(),
                    attempts: 0,
                    since: now,
                }))
            }
            (PhoneEffect::Recovered, _) => Some(PhoneRetryChange::Forget),
            _ => None,
        }
    }
}

fn missing(fields: &LeadFields) -> bool {
    fields.phone.is_none() && fields.phone_error.is_some()
}

impl UpsertPlan {
    pub fn decide(incoming: &LeadRecord, stored: Option<Stored<'_>>) -> Self {
        let Some(stored) = stored else {
            let phone = if missing(&incoming.fields) {
                PhoneEffect::NowMissing
            } else {
                PhoneEffect::Same
            };
            let write = match refusal(incoming) {
                Some(reason) => Write::Refused(reason),
                None => Write::Create(incoming.clone()),
            };
            return UpsertPlan { write, phone };
        };
        let fields = incoming.fields.clone().merged_over(stored.fields);
        let phone = match (missing(stored.fields), missing(&fields)) {
            (false, true) => PhoneEffect::NowMissing,
            (true, false) => PhoneEffect::Recovered,
            _ => PhoneEffect::Same,
        };
        let content_hash = fields.content_hash();
        let write = if content_hash == stored.content_hash {
            Write::Unchanged
        } else {
            let record = LeadRecord {
                fields,
                content_hash,
                ..incoming.clone()
            };
            match refusal(&record) {
                Some(reason) => Write::Refused(reason),
                None => Write::Update(record),
            }
        };
        UpsertPlan { write, phone }
    }
}

fn keep<T>(new: &mut Option<T>, old: &Option<T>)
where
    T: Clone,
{
    if new.is_none() {
        new.clone_from(old);
    }
}

impl LeadFields {
    /// These freshly pulled fields with every unknown filled from `stored`.
    pub fn merged_over(mut self, stored: &LeadFields) -> LeadFields {
        keep(&mut self.name, &stored.name);
        keep(&mut self.nickname, &stored.nickname);
        keep(&mut self.avatar, &stored.avatar);
        keep(&mut self.open_id, &stored.open_id);
        keep(&mut self.channel, &stored.channel);
        keep(&mut self.advertiser_id, &stored.advertiser_id);
        keep(&mut self.ad_id, &stored.ad_id);
        keep(&mut self.promotion_id, &stored.promotion_id);
        keep(&mut self.campaign_id, &stored.campaign_id);
        keep(&mut self.creative_id, &stored.creative_id);
        keep(&mut self.store, &stored.store);
        keep(&mut self.location, &stored.location);
        keep(&mut self.remark, &stored.remark);
        keep(&mut self.created_at, &stored.created_at);
        keep(&mut self.modified_at, &stored.modified_at);
        keep(&mut self.platform_status, &stored.platform_status);
        if self.form_fields.is_empty() {
            self.form_fields.clone_from(&stored.form_fields);
        }
        if self.clue_type == "OTHER" && !stored.clue_type.is_empty() {
            self.clue_type.clone_from(&stored.clue_type);
        }
        if self.phone.is_none() {
            if stored.phone.is_some() {
                // A phone we know beats a decrypt that failed this time.
                self.phone.clone_from(&stored.phone);
                self.phone_error = None;
            } else {
                keep(&mut self.phone_error, &stored.phone_error);
            }
        } else {
            self.phone_error = None;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConnectionId, TenantId};
    use crate::lead::{LeadSource, PlatformLead};

    fn record(fields: LeadFields) -> LeadRecord {
        LeadRecord::new(
            &TenantId::new("t"),
            &ConnectionId::from_stored("c"),
            PlatformLead {
                source: LeadSource::Laike,
                source_lead_id: "1".into(),
                fields,
                raw: serde_json::Value::Null,
                phone_cipher: None,
            },
        )
    }

    fn stored_with_phone() -> LeadFields {
        LeadFields {
            name: Some("张先生".into()),
            phone: Some("13800138000".into()),
            clue_type: "FORM".into(),
            channel: Some("抖音".into()),
            ..LeadFields::default()
        }
    }

    #[test]
    fn a_refused_decrypt_never_wipes_a_stored_phone() {
        let stored = stored_with_phone();
        let pulled = record(LeadFields {
            phone: None,
            phone_error: Some("decrypt endpoint failed: quota".into()),
            channel: None,
            ..stored.clone()
        });
        let hash = stored.content_hash();
        let plan = UpsertPlan::decide(
            &pulled,
            Some(Stored {
                fields: &stored,
                content_hash: &hash,
            }),
        );
        assert_eq!((plan.write, plan.phone), (Write::Unchanged, PhoneEffect::Same));
    }

    #[test]
    fn a_new_value_replaces_the_old_and_a_recovered_phone_clears_its_error() {
        let stored = LeadFields {
            phone: None,
            phone_error: Some("refused".into()),
            ..stored_with_phone()
        };
        let hash = stored.content_hash();
        let pulled = record(LeadFields {
            phone: Some("13900139000".into()),
            channel: Some("头条".into()),
            ..stored.clone()
        });
        let plan = UpsertPlan::decide(
            &pulled,
            Some(Stored {
                fields: &stored,
                content_hash: &hash,
            }),
        );
        assert_eq!(plan.phone, PhoneEffect::Recovered);
        let Write::Update(written) = plan.write else {
            panic!("a changed lead is updated");
        };
        assert_eq!(written.fields.phone.as_deref(), Some("13900139000"));
        assert_eq!(written.fields.phone_error, None);
        assert_eq!(written.fields.channel.as_deref(), Some("头条"));
        assert_eq!(written.content_hash, written.fields.content_hash());
    }

    #[test]
    fn a_lead_over_the_item_limit_is_refused_alone() {
        let mut huge = record(stored_with_phone());
        huge.raw = serde_json::json!({"remark": "x".repeat(MAX_LEAD_ITEM_BYTES + 1)});
        assert!(matches!(UpsertPlan::decide(&huge, None).write, Write::Refused(_)));
    }

    #[test]
    fn a_lead_not_stored_is_created_as_pulled() {
        let pulled = record(stored_with_phone());
        assert_eq!(UpsertPlan::decide(&pulled, None).write, Write::Create(pulled));
        let refused = record(LeadFields {
            phone: None,
            phone_error: Some("refused".into()),
            ..stored_with_phone()
        });
        assert_eq!(UpsertPlan::decide(&refused, None).phone, PhoneEffect::NowMissing);
    }
}

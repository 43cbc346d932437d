//! How a lead looks on the wire (the lead API and the outbound events): camelCase, ids as strings, the phone masked unless the caller
//! may reveal it, and phone-like digit runs masked in the free text people type numbers into
//! (remarks, form answers). The raw platform record is shown only to callers who may see phones,
//! since it can carry one.

use crate::lead::{StoredLead, mask_digit_runs, mask_phone};
use crate::store::HistoryPage;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Free text as the caller may see it.
pub fn text(value: Option<&str>, reveal_phone: bool) -> Option<String> {
    value.map(|v| if reveal_phone { v.to_owned() } else { mask_digit_runs(v) })
}

pub fn lead(l: &StoredLead, reveal_phone: bool) -> Value {
    let f = &l.fields;
    let phone = f
        .phone
        .as_deref()
        .map(|p| if reveal_phone { p.to_owned() } else { mask_phone(p) });
    let form: BTreeMap<&str, String> = f
        .form_fields
        .iter()
        .map(|(k, v)| (k.as_str(), text(Some(v), reveal_phone).unwrap_or_default()))
        .collect();
    json!({
        "leadId": l.lead_id, "source": l.source, "sourceLeadId": l.source_lead_id, "connectionId": l.connection_id,
        "name": f.name, "nickname": f.nickname, "avatar": f.avatar, "openId": f.open_id,
        "phone": phone, "phoneError": f.phone_error, "clueType": f.clue_type, "channel": f.channel,
        "advertiserId": f.advertiser_id, "adId": f.ad_id, "promotionId": f.promotion_id,
        "campaignId": f.campaign_id, "creativeId": f.creative_id, "store": f.store, "location": f.location,
        "remark": text(f.remark.as_deref(), reveal_phone), "formFields": form, "createdAt": l.sort_time(),
        "acquiredAt": l.acquired_at, "modifiedAt": f.modified_at, "platformStatus": f.platform_status,
        "status": l.status, "notes": l.notes, "version": l.version, "duplicateOf": l.duplicate_of,
        "updatedAt": l.updated_at, "invalidReason": l.invalid_reason, "writeBack": l.write_back,
    })
}

/// The lead with the first page of its history, and its raw record for callers who may see
/// phones.
pub fn lead_detail(l: &StoredLead, history: &HistoryPage, reveal_phone: bool) -> Value {
    let mut v = lead(l, reveal_phone);
    v["history"] = json!(history.entries);
    v["historyNextCursor"] = json!(history.next);
    if reveal_phone {
        v["raw"] = l.raw.clone();
    }
    v
}

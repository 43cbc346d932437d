//! How a lead looks on the wire: camelCase, ids as strings, the phone masked unless the caller
//! may reveal it. The raw platform record is shown only to callers who may see phones, since it
//! can carry one.

use serde_json::{Value, json};
use shared::lead::{StoredLead, mask_phone};

pub fn lead(l: &StoredLead, reveal_phone: bool) -> Value {
    let f = &l.fields;
    let phone = f
        .phone
        .as_deref()
        .map(|p| if reveal_phone { p.to_owned() } else { mask_phone(p) });
    json!({
        "leadId": l.lead_id, "source": l.source, "sourceLeadId": l.source_lead_id, "connectionId": l.connection_id,
        "name": f.name, "nickname": f.nickname, "avatar": f.avatar, "openId": f.open_id,
        "phone": phone, "phoneError": f.phone_error, "clueType": f.clue_type, "channel": f.channel,
        "advertiserId": f.advertiser_id, "adId": f.ad_id, "promotionId": f.promotion_id,
        "campaignId": f.campaign_id, "creativeId": f.creative_id, "store": f.store, "location": f.location,
        "remark": f.remark, "formFields": f.form_fields, "createdAt": l.sort_time(), "acquiredAt": l.acquired_at,
        "modifiedAt": f.modified_at, "platformStatus": f.platform_status, "status": l.status, "notes": l.notes,
        "version": l.version, "duplicateOf": l.duplicate_of, "updatedAt": l.updated_at,
    })
}

/// The lead with its history, and its raw record for callers who may see phones.
pub fn lead_detail(l: &StoredLead, reveal_phone: bool) -> Value {
    let mut v = lead(l, reveal_phone);
    v["history"] = json!(l.history);
    if reveal_phone {
        v["raw"] = l.raw.clone();
    }
    v
}

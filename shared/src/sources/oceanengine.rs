//! Ocean Engine leads (platform-apis.md §3.3, §3.4): `GET tools/clue/get` (ad form leads) and
//! `POST tools/clue/life/get` (本地推 leads), both with the connection's access token over the
//! advertisers it granted. The two endpoints name their `page_info` keys differently.

use super::record::{first_id, first_text, form_fields, id, int, joined, rows, text};
use super::{Page, PageRef, Paging, PullAuth, SourceClient, SourceError, Window, format_datetime, parse_platform_time};
use crate::config::OceanEngineCodes;
use crate::domain::Connection;
use crate::lead::{LeadFields, LeadSource, PlatformLead};
use crate::platform::Platform;
use crate::platform::douyin::join;
use crate::platform::http::{PlatformHttp, Replay};
use crate::platform::oceanengine::decode_envelope;
use async_trait::async_trait;
use chrono::Duration;
use serde_json::{Value, json};
use url::Url;

/// `tools/clue/life/get` takes at most 50 local account ids per call.
const LIFE_ACCOUNTS_PER_CALL: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Clue,
    Life,
}

pub struct OceanEngineSource {
    pub endpoint: Endpoint,
    pub http: PlatformHttp,
    pub base_url: Url,
    pub codes: OceanEngineCodes,
    pub page_size: u32,
    pub lag: Duration,
}

/// Ids as JSON numbers where they are numeric, as the docs show them.
fn id_array(ids: &[String]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| {
                id.parse::<u64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(id.clone()))
            })
            .collect(),
    )
}

/// `tools/clue/get` clue_type: 0 form, 1 consult, 2 smart phone, 3 web callback, 4 coupon, 5 lottery.
fn clue_type_code(code: Option<i64>) -> &'static str {
    match code {
        Some(0) => "FORM",
        Some(1) => "CONSULT",
        Some(2) | Some(3) => "PHONE",
        Some(4) => "COUPON",
        Some(5) => "LOTTERY",
        _ => "OTHER",
    }
}

/// `tools/clue/life/get` clue_type: FORM, CONSULT, SMARTPHONE, GROUP_BUYING, ENT_WECHAT.
fn clue_type_name(name: Option<&str>) -> &'static str {
    match name {
        Some("FORM") => "FORM",
        Some("CONSULT") => "CONSULT",
        Some("SMARTPHONE") => "PHONE",
        Some("GROUP_BUYING") => "ORDER",
        Some("ENT_WECHAT") => "WECHAT",
        _ => "OTHER",
    }
}

pub fn normalize(endpoint: Endpoint, record: &Value) -> Option<PlatformLead> {
    let clue_id = id(record, "clue_id")?;
    let clue_type = match endpoint {
        Endpoint::Clue => clue_type_code(int(record, "clue_type")),
        Endpoint::Life => clue_type_name(record.get("clue_type").and_then(Value::as_str)),
    };
    let store = record
        .get("store")
        .and_then(|s| text(s, "store_name"))
        .or_else(|| first_text(record, &["follow_life_account_name", "intention_life_account_name"]));
    let fields = LeadFields {
        name: text(record, "name"),
        phone: text(record, "telephone").and_then(|p| crate::lead::normalize_phone(&p)),
        clue_type: clue_type.to_owned(),
        channel: first_text(record, &["app_name", "appname"]),
        advertiser_id: first_id(record, &["advertiser_id", "local_account_id"]),
        ad_id: id(record, "ad_id"),
        promotion_id: id(record, "promotion_id"),
        campaign_id: id(record, "project_id"),
        creative_id: id(record, "creative_id"),
        store,
        location: text(record, "location").or_else(|| joined(record, &["province_name", "city_name", "county_name"])),
        remark: text(record, "remark"),
        form_fields: form_fields(record, "remark_dict"),
        created_at: first_text(record, &["create_time_detail", "create_time"]).and_then(|t| parse_platform_time(&t)),
        modified_at: text(record, "modify_time").and_then(|t| parse_platform_time(&t)),
        platform_status: text(record, "convert_status"),
        ..LeadFields::default()
    };
    let source = match endpoint {
        Endpoint::Clue => LeadSource::OceanEngineClue,
        Endpoint::Life => LeadSource::OceanEngineLife,
    };
    Some(PlatformLead {
        source,
        source_lead_id: clue_id,
        fields,
        raw: record.clone(),
        phone_cipher: None,
    })
}

/// `{page, page_size, total_number, total_page}` or `{page_number, page_size, page_total, total}`.
fn read_page_info(data: &Value) -> (Option<u64>, Option<u32>) {
    let info = data.get("page_info").cloned().unwrap_or(Value::Null);
    let total = int(&info, "total_number").or_else(|| int(&info, "total"));
    let pages = int(&info, "total_page").or_else(|| int(&info, "page_total"));
    (total.map(|t| t.max(0) as u64), pages.map(|p| p.max(0) as u32))
}

/// The accounts a connection granted, or its own when it lists none.
fn all_accounts(connection: &Connection) -> Vec<String> {
    if connection.advertiser_ids.is_empty() {
        vec![connection.external_account_id.clone()]
    } else {
        connection.advertiser_ids.clone()
    }
}

impl OceanEngineSource {
    /// The accounts of one call: all of them for `tools/clue/get`; for `clue/life/get`, which
    /// takes at most 50, chunk `part` (each chunk is its own listing, with its own totals).
    fn accounts(&self, connection: &Connection, part: usize) -> Vec<String> {
        let all = all_accounts(connection);
        match self.endpoint {
            Endpoint::Clue => all,
            Endpoint::Life => all
                .chunks(LIFE_ACCOUNTS_PER_CALL)
                .nth(part)
                .map(<[String]>::to_vec)
                .unwrap_or_default(),
        }
    }
}

#[async_trait]
impl SourceClient for OceanEngineSource {
    fn source(&self) -> LeadSource {
        match self.endpoint {
            Endpoint::Clue => LeadSource::OceanEngineClue,
            Endpoint::Life => LeadSource::OceanEngineLife,
        }
    }

    fn platform(&self) -> Platform {
        Platform::OceanEngine
    }

    fn paging(&self) -> Paging {
        Paging::Windowed {
            lag: self.lag,
            max_span: Duration::days(30),
            page_size: self.page_size,
        }
    }

    fn parts(&self, connection: &Connection) -> usize {
        match self.endpoint {
            Endpoint::Clue => 1,
            Endpoint::Life => all_accounts(connection).len().div_ceil(LIFE_ACCOUNTS_PER_CALL).max(1),
        }
    }

    async fn fetch(&self, auth: &PullAuth<'_>, window: &Window, page: PageRef) -> Result<Page, SourceError> {
        let PageRef::Number(number) = page else {
            return Err(SourceError::Unusable("Ocean Engine leads are paged by number".into()));
        };
        let tokens = auth
            .tokens
            .ok_or_else(|| SourceError::Unusable("the connection has no tokens".into()))?;
        let advertisers = self.accounts(auth.connection, auth.part);
        let token = tokens.access_token.expose();
        let (start, end) = (format_datetime(window.start), format_datetime(window.end));
        let data = match self.endpoint {
            Endpoint::Clue => {
                let url = join(&self.base_url, "/open_api/2/tools/clue/get/");
                let query = [
                    ("advertiser_ids", id_array(&advertisers).to_string()),
                    ("start_time", start),
                    ("end_time", end),
                    ("page", number.to_string()),
                    ("page_size", self.page_size.to_string()),
                ];
                self.http
                    .call(
                        Platform::OceanEngine,
                        Replay::Safe,
                        |c| c.get(url.clone()).header("Access-Token", token).query(&query),
                        |raw| decode_envelope(&self.codes, raw),
                    )
                    .await?
            }
            Endpoint::Life => {
                let url = join(&self.base_url, "/open_api/2/tools/clue/life/get/");
                let body = json!({
                    "local_account_ids": id_array(&advertisers), "start_time": start, "end_time": end,
                    "page": number, "page_size": self.page_size,
                });
                self.http
                    .call(
                        Platform::OceanEngine,
                        Replay::Safe,
                        |c| c.post(url.clone()).header("Access-Token", token).json(&body),
                        |raw| decode_envelope(&self.codes, raw),
                    )
                    .await?
            }
        };
        let leads = rows(&data, "list", Platform::OceanEngine)?
            .iter()
            .filter_map(|r| normalize(self.endpoint, r))
            .collect();
        let (total, pages) = read_page_info(&data);
        Ok(Page::numbered(leads, total, pages, number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_page_info_shapes_are_read() {
        let classic = json!({"page_info": {"page": 1, "page_size": 10, "total_number": 31, "total_page": 4}});
        let life = json!({"page_info": {"page_number": 1, "page_size": 100, "page_total": "2", "total": "150"}});
        assert_eq!(read_page_info(&classic), (Some(31), Some(4)));
        assert_eq!(read_page_info(&life), (Some(150), Some(2)));
    }

    #[test]
    fn ids_stay_strings_and_types_map() {
        let r = json!({"clue_id": 7123456789012345678u64, "advertiser_id": "1769665409798152", "ad_id": "1730000000000000",
            "promotion_id": 0, "clue_type": "2", "telephone": "+86 13800138000", "app_name": "抖音",
            "create_time_detail": "2025-06-01 10:15:30", "remark_dict": {"预约时间": "周六"}, "convert_status": "合法转化"});
        let lead = normalize(Endpoint::Clue, &r).unwrap();
        assert_eq!(lead.source_lead_id, "7123456789012345678");
        assert_eq!(lead.fields.ad_id.as_deref(), Some("1730000000000000"));
        assert_eq!(lead.fields.promotion_id, None);
        assert_eq!(lead.fields.clue_type, "PHONE");
        assert_eq!(lead.fields.phone.as_deref(), Some("13800138000"));
        assert_eq!(lead.fields.platform_status.as_deref(), Some("合法转化"));
        let life = normalize(
            Endpoint::Life,
            &json!({"clue_id": "9", "clue_type": "GROUP_BUYING", "local_account_id": "18"}),
        )
        .unwrap();
        assert_eq!(
            (life.fields.clue_type.as_str(), life.fields.advertiser_id.as_deref()),
            ("ORDER", Some("18"))
        );
    }
}

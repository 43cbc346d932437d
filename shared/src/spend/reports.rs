//! The three Ocean Engine daily reports (platform-apis.md §3.5), one page at a time. Classic ads
//! span at most 30 days and page up to 1000 rows; 本地推 pages in 10/20/50/100; 2.0's custom
//! report sends every metric as a string.

use super::{SpendLevel, SpendRow, count, fen};
use crate::config::OceanEngineCodes;
use crate::platform::douyin::join;
use crate::platform::http::{PlatformHttp, Replay};
use crate::platform::oceanengine::decode_envelope;
use crate::platform::{Platform, PlatformError};
use crate::secret::Secret;
use chrono::NaiveDate;
use serde_json::{Value, json};
use url::Url;

pub const AD_REPORT: &str = "/open_api/2/report/ad/get/";
pub const CUSTOM_REPORT: &str = "/open_api/v3.0/report/custom/get/";
pub const LOCAL_REPORT: &str = "/open_api/v3.0/local/report/promotion/get/";

/// The longest span one request may ask for (classic ads: 30 days).
pub const MAX_SPAN_DAYS: i64 = 30;

/// One page of a report.
#[derive(Debug, Clone, Default)]
pub struct ReportPage {
    pub rows: Vec<SpendRow>,
    pub total_pages: u32,
}

pub struct ReportClient {
    pub http: PlatformHttp,
    pub base: Url,
    pub codes: OceanEngineCodes,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.as_u64() != Some(0) => Some(n.to_string()),
        _ => None,
    }
}

fn day_of(v: &Value) -> Option<NaiveDate> {
    let raw = v.as_str()?;
    NaiveDate::parse_from_str(raw.get(..10)?, "%Y-%m-%d").ok()
}

fn bad(message: impl Into<String>) -> PlatformError {
    PlatformError::Decode {
        platform: Platform::OceanEngine,
        message: message.into(),
    }
}

impl ReportClient {
    /// Page `page` of `level`'s daily rows for `account` over `[start, end]` (Beijing days).
    pub async fn page(
        &self,
        level: SpendLevel,
        token: &Secret,
        account: &str,
        (start, end): (NaiveDate, NaiveDate),
        page: u32,
    ) -> Result<ReportPage, PlatformError> {
        let (start, end) = (start.format("%Y-%m-%d").to_string(), end.format("%Y-%m-%d").to_string());
        let page_text = page.to_string();
        let query: Vec<(&str, String)> = match level {
            SpendLevel::Ad => vec![
                ("advertiser_id", account.to_owned()),
                ("start_date", start),
                ("end_date", end),
                (
                    "group_by",
                    json!(["STAT_GROUP_BY_FIELD_ID", "STAT_GROUP_BY_FIELD_STAT_TIME"]).to_string(),
                ),
                ("time_granularity", "STAT_TIME_GRANULARITY_DAILY".into()),
                ("page", page_text),
                ("page_size", "1000".into()),
            ],
            SpendLevel::Promotion => vec![
                ("advertiser_id", account.to_owned()),
                (
                    "dimensions",
                    json!(["stat_time_day", "cdp_project_id", "cdp_promotion_id"]).to_string(),
                ),
                (
                    "metrics",
                    json!(["stat_cost", "show_cnt", "click_cnt", "convert_cnt"]).to_string(),
                ),
                ("filters", "[]".into()),
                ("start_time", start),
                ("end_time", end),
                ("page", page_text),
                ("page_size", "100".into()),
                ("data_topic", "BASIC_DATA".into()),
            ],
            SpendLevel::LocalPromotion => vec![
                ("local_account_id", account.to_owned()),
                ("start_date", start),
                ("end_date", end),
                ("time_granularity", "TIME_GRANULARITY_DAILY".into()),
                (
                    "metrics",
                    json!(["stat_cost", "show_cnt", "click_cnt", "convert_cnt"]).to_string(),
                ),
                ("page", page_text),
                ("page_size", "100".into()),
            ],
        };
        let path = match level {
            SpendLevel::Ad => AD_REPORT,
            SpendLevel::Promotion => CUSTOM_REPORT,
            SpendLevel::LocalPromotion => LOCAL_REPORT,
        };
        let url = join(&self.base, path);
        let data = self
            .http
            .call(
                Platform::OceanEngine,
                Replay::Safe,
                |c| c.get(url.clone()).header("Access-Token", token.expose()).query(&query),
                |raw| decode_envelope(&self.codes, raw),
            )
            .await?;
        let total_pages = data["page_info"]["total_page"]
            .as_u64()
            .or_else(|| data["page_info"]["total_page"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(1) as u32;
        let rows = match level {
            SpendLevel::Ad => rows(&data["list"], |r| {
                Some(SpendRow {
                    level,
                    entity_id: text(&r["ad_id"])?,
                    day: day_of(&r["stat_datetime"])?,
                    name: text(&r["ad_name"]),
                    parent_id: text(&r["campaign_id"]),
                    spend_fen: fen(&r["cost"])?,
                    shows: count(&r["show"]),
                    clicks: count(&r["click"]),
                    conversions: count(&r["convert"]),
                    provisional: false,
                })
            })?,
            SpendLevel::Promotion => rows(&data["rows"], |r| {
                let (d, m) = (&r["dimensions"], &r["metrics"]);
                Some(SpendRow {
                    level,
                    entity_id: text(&d["cdp_promotion_id"])?,
                    day: day_of(&d["stat_time_day"])?,
                    name: text(&d["cdp_promotion_name"]),
                    parent_id: text(&d["cdp_project_id"]),
                    spend_fen: fen(&m["stat_cost"])?,
                    shows: count(&m["show_cnt"]),
                    clicks: count(&m["click_cnt"]),
                    conversions: count(&m["convert_cnt"]),
                    provisional: false,
                })
            })?,
            SpendLevel::LocalPromotion => rows(&data["promotion_list"], |r| {
                Some(SpendRow {
                    level,
                    entity_id: text(&r["promotion_id"])?,
                    day: day_of(&r["stat_time_day"])?,
                    name: text(&r["promotion_name"]),
                    parent_id: text(&r["project_id"]),
                    spend_fen: fen(&r["stat_cost"])?,
                    shows: count(&r["show_cnt"]),
                    clicks: count(&r["click_cnt"]),
                    conversions: count(&r["convert_cnt"]),
                    provisional: false,
                })
            })?,
        };
        Ok(ReportPage { rows, total_pages })
    }
}

/// Every row decoded, or an error naming the first that is not: a row skipped would be spend lost.
fn rows(list: &Value, decode: impl Fn(&Value) -> Option<SpendRow>) -> Result<Vec<SpendRow>, PlatformError> {
    let Some(list) = list.as_array() else {
        return if list.is_null() {
            Ok(Vec::new())
        } else {
            Err(bad("the report's row list is not a list"))
        };
    };
    list.iter()
        .enumerate()
        .map(|(i, r)| decode(r).ok_or_else(|| bad(format!("report row {i} lacks an id, a day or a readable cost"))))
        .collect()
}

//! Lead sources: one small adapter per platform API behind one trait. Each pulls one page of a
//! time window (or of a cursor listing) and returns normalized leads with the raw records.
//! Facts: platform-apis.md §2–§5.

pub mod fans;
pub mod feiyu;
pub mod laike;
pub mod oceanengine;
pub mod phone_crypto;
pub mod record;

use crate::domain::{Connection, TokenSet};
use crate::lead::{LeadSource, PlatformLead};
use crate::platform::{ErrorKind, Platform, PlatformError};
use crate::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// A half-open span of platform creation times, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn span(&self) -> Duration {
        self.end - self.start
    }

    /// Two halves, for a window holding more rows than the platform pages through.
    pub fn split(&self) -> (Window, Window) {
        let mid = self.start + self.span() / 2;
        (
            Window {
                start: self.start,
                end: mid,
            },
            Window {
                start: mid,
                end: self.end,
            },
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRef {
    /// 1-based page number.
    Number(u32),
    /// An opaque cursor; the first page is 0.
    Cursor(i64),
}

#[derive(Debug, Clone)]
pub struct Page {
    pub leads: Vec<PlatformLead>,
    /// Rows in the whole window, when the platform says.
    pub total: Option<u64>,
    /// Pages in the whole window, when the platform says.
    pub pages: Option<u32>,
    pub next: Option<PageRef>,
    /// When the platform answered, by its own clock (milliseconds since the epoch), when the
    /// answer says: it orders answers that crossed on the way back.
    pub answered_at: Option<i64>,
}

impl Page {
    /// Page `number` of a page-numbered listing that has `pages` pages, when it says.
    pub fn numbered(leads: Vec<PlatformLead>, total: Option<u64>, pages: Option<u32>, number: u32) -> Self {
        Self {
            leads,
            total,
            pages,
            next: pages.filter(|p| number < *p).map(|_| PageRef::Number(number + 1)),
            answered_at: None,
        }
    }

    /// The same page, stamped with the platform's clock.
    pub fn answered_at(self, at: Option<i64>) -> Self {
        Self {
            answered_at: at,
            ..self
        }
    }
}

/// How a source is paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// By creation-time window and page number. `lag`: how far behind now a window must end;
    /// `max_span`: the longest window the API accepts.
    Windowed {
        lag: Duration,
        max_span: Duration,
        page_size: u32,
    },
    /// A full listing by cursor (no time filter); nothing to window.
    Cursor { page_size: u32 },
}

/// What a pull may use: the connection and, for user-token and Feiyu sources, its tokens.
pub struct PullAuth<'a> {
    pub connection: &'a Connection,
    pub tokens: Option<&'a TokenSet>,
    /// Which part of the source's accounts to pull (see [`SourceClient::parts`]); 0 for most.
    pub part: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The connection lacks what this source needs (tokens, an account id).
    #[error("{0}")]
    Unusable(String),
    /// Too close to the invocation's deadline to start the call.
    #[error("no time left before the invocation's deadline")]
    OutOfTime,
}

impl SourceError {
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            SourceError::Platform(e) => Some(e.kind()),
            _ => None,
        }
    }
}

/// What a phone retry learned of one ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneRetry {
    Opened(String),
    /// Failed again; `permanent` when retrying cannot help (a ciphertext that does not decode).
    Failed {
        reason: String,
        permanent: bool,
    },
}

#[async_trait]
pub trait SourceClient: Send + Sync {
    fn source(&self) -> LeadSource;
    /// The platform whose rate limit the calls count against.
    fn platform(&self) -> Platform;
    fn paging(&self) -> Paging;
    /// True when calls use the app's token rather than the connection's own.
    fn uses_app_token(&self) -> bool {
        false
    }
    /// The span a request for `window` really covers (a source that sends dates covers whole
    /// days).
    fn covered(&self, window: &Window) -> Window {
        *window
    }
    /// True when answers carry the platform's clock to the millisecond (see
    /// [`Page::answered_at`]), so pages fetched at once can still be put in the order they were
    /// answered; without it, pages are fetched `SYNC_UNCLOCKED_PAGE_CONCURRENCY` at a time.
    fn clocked(&self) -> bool {
        false
    }
    /// Listings a window of this connection takes: an API that accepts only so many accounts
    /// per call is pulled one chunk at a time, each its own listing with its own totals.
    fn parts(&self, _connection: &Connection) -> usize {
        1
    }
    /// Decrypts phones again for leads stored without them (see [`crate::store::PendingPhone`]).
    /// Sources without ciphertexts have nothing to retry.
    async fn retry_phones(
        &self,
        _auth: &PullAuth<'_>,
        _ciphers: &[String],
    ) -> Result<std::collections::HashMap<String, PhoneRetry>, SourceError> {
        Ok(std::collections::HashMap::new())
    }
    /// One page. An app-token source drops a token the platform rejected, so a retry gets a new one.
    async fn fetch(&self, auth: &PullAuth<'_>, window: &Window, page: PageRef) -> Result<Page, SourceError>;
}

/// Every platform writes local times in Beijing time (UTC+8, no daylight saving).
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// `YYYY-MM-DD HH:MM:SS` in Beijing time.
pub fn format_datetime(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing()).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `YYYY-MM-DD` in Beijing time.
pub fn format_date(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing()).format("%Y-%m-%d").to_string()
}

/// Reads a platform time: `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (Beijing time), or unix
/// seconds / milliseconds as a number or a string.
pub fn parse_platform_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(n) = text.parse::<i64>() {
        if n <= 0 {
            return None;
        }
        let millis = if n > 100_000_000_000 { n } else { n * 1000 };
        return Utc.timestamp_millis_opt(millis).single();
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    beijing()
        .from_local_datetime(&local)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_times_are_beijing_time() {
        let t = parse_platform_time("2025-06-01 10:15:30").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-06-01T02:15:30+00:00");
        assert_eq!(format_datetime(t), "2025-06-01 10:15:30");
        assert_eq!(format_date(t), "2025-06-01");
        assert_eq!(parse_platform_time("1590567259").unwrap().timestamp(), 1_590_567_259);
        assert_eq!(parse_platform_time("1748752200000").unwrap().timestamp(), 1_748_752_200);
        assert_eq!(
            parse_platform_time("2025-06-01").unwrap().to_rfc3339(),
            "2025-05-31T16:00:00+00:00"
        );
        assert_eq!(parse_platform_time(""), None);
        assert_eq!(parse_platform_time("0"), None);
    }

    /// The record with every number sent as its decimal text, as the platforms sometimes do.
    fn numbers_as_strings(value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Number(n) => Value::String(n.to_string()),
            Value::Array(items) => Value::Array(items.iter().map(numbers_as_strings).collect()),
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), numbers_as_strings(v))).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn a_record_sent_with_numbers_as_strings_normalizes_to_the_same_lead() {
        use serde_json::json;
        let laike = json!({"clue_id": 7391234567890123456u64, "ad_id": 0, "promotion_id": 7381234567000000000u64,
            "advertiser_id": "1769665409798152", "effective_state": 0, "name": "张先生",
            "create_time_detail": "2025-06-01 10:15:30", "remark_dict": "{}"});
        let oe = json!({"clue_id": "7123456789012345678", "ad_id": "0", "promotion_id": 0, "creative_id": 1730000000000001u64,
            "project_id": "", "clue_type": 2, "convert_status": 1, "create_time_detail": "2025-06-01 10:15:30"});
        let feiyu = json!({"clue_id": "6831434361875726350", "cid": 0, "adv_id": 1664750332606472u64, "clue_type": 1,
            "create_time": 1590567259, "convert_status": "合法转化"});
        type Normalizer = fn(&serde_json::Value) -> Option<crate::lead::LeadFields>;
        let cases: Vec<(&str, serde_json::Value, Normalizer)> = vec![
            ("laike", laike, |r| laike::normalize(r).map(|(l, _)| l.fields)),
            ("oceanengine", oe, |r| {
                oceanengine::normalize(oceanengine::Endpoint::Clue, r).map(|l| l.fields)
            }),
            ("feiyu", feiyu, |r| feiyu::normalize(r).map(|l| l.fields)),
        ];
        for (name, record, normalize) in cases {
            let numbers = normalize(&record).expect(name);
            let strings = normalize(&numbers_as_strings(&record)).expect(name);
            assert_eq!(numbers, strings, "{name}");
            assert_eq!(numbers.content_hash(), strings.content_hash(), "{name}");
            assert_eq!(numbers.ad_id, None, "{name}: 0 means no ad");
        }
    }

    #[test]
    fn windows_split_in_half() {
        let start = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
        let w = Window {
            start,
            end: start + Duration::hours(10),
        };
        let (a, b) = w.split();
        assert_eq!(
            (a.start, a.end, b.start, b.end),
            (start, start + Duration::hours(5), start + Duration::hours(5), w.end)
        );
    }
}

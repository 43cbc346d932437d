//! Douyin fans as acquisition leads: `GET /fans/list/` with the user's access token, cursor
//! paging while `has_more` (platform-apis.md §5.1). At most the 5,000 newest fans, unordered,
//! and with no creation time: every run lists them all and the store keeps what is new.

use super::record::{int, joined, rows, text};
use super::{Page, PageRef, Paging, PullAuth, SourceClient, SourceError, Window};
use crate::lead::{LeadFields, LeadSource, PlatformLead};
use crate::platform::Platform;
use crate::platform::douyin::{self, Endpoint};
use crate::platform::http::{PlatformHttp, Replay};
use async_trait::async_trait;
use serde_json::Value;
use url::Url;

pub struct FansSource {
    pub http: PlatformHttp,
    pub base_url: Url,
    pub page_size: u32,
}

pub fn normalize(record: &Value) -> Option<PlatformLead> {
    let open_id = text(record, "open_id")?;
    let fields = LeadFields {
        nickname: text(record, "nickname"),
        avatar: text(record, "avatar"),
        open_id: Some(open_id.clone()),
        clue_type: "FANS".to_owned(),
        channel: Some("抖音".to_owned()),
        location: joined(record, &["province", "city"]),
        ..LeadFields::default()
    };
    Some(PlatformLead {
        source: LeadSource::DouyinFans,
        source_lead_id: open_id,
        fields,
        raw: record.clone(),
        phone_cipher: None,
    })
}

#[async_trait]
impl SourceClient for FansSource {
    fn source(&self) -> LeadSource {
        LeadSource::DouyinFans
    }

    fn platform(&self) -> Platform {
        Platform::Douyin
    }

    fn paging(&self) -> Paging {
        Paging::Cursor {
            page_size: self.page_size,
        }
    }

    async fn fetch(&self, auth: &PullAuth<'_>, _window: &Window, page: PageRef) -> Result<Page, SourceError> {
        let cursor = match page {
            PageRef::Cursor(c) => c,
            PageRef::Number(_) => 0,
        };
        let tokens = auth
            .tokens
            .ok_or_else(|| SourceError::Unusable("the connection has no tokens".into()))?;
        let open_id = tokens
            .open_id
            .clone()
            .unwrap_or_else(|| auth.connection.external_account_id.clone());
        let url = douyin::join(&self.base_url, "/fans/list/");
        let query = [
            ("open_id", open_id),
            ("cursor", cursor.to_string()),
            ("count", self.page_size.to_string()),
        ];
        let data = self
            .http
            .call(
                Platform::Douyin,
                Replay::Safe,
                |c| {
                    c.get(url.clone())
                        .header("access-token", tokens.access_token.expose())
                        .header("content-type", "application/json")
                        .query(&query)
                },
                |raw| douyin::decode_envelope(Endpoint::OpenApi, raw),
            )
            .await?;
        let has_more = match data.get("has_more") {
            Some(Value::Bool(b)) => *b,
            _ => int(&data, "has_more").unwrap_or(0) != 0,
        };
        let next_cursor = int(&data, "cursor").unwrap_or(cursor);
        Ok(Page {
            answered_at: None,
            leads: rows(&data, "list", Platform::Douyin)?
                .iter()
                .filter_map(normalize)
                .collect(),
            total: int(&data, "total").map(|t| t.max(0) as u64),
            pages: None,
            // A cursor that does not move would loop forever; treat it as the end.
            next: (has_more && next_cursor > cursor).then_some(PageRef::Cursor(next_cursor)),
        })
    }
}

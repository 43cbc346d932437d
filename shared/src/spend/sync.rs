//! The spend pull of one Ocean Engine connection: for each configured level and account, every
//! day from the level's watermark (or the backfill) to today, and always the last
//! `SPEND_REPULL_DAYS` (conversions are re-attributed for days; yesterday settles by about 10:00
//! Beijing). Spans of at most 30 days, every page. Today's rows are provisional. The watermark
//! moves only past days whose every page was stored.

use super::reports::{MAX_SPAN_DAYS, ReportClient};
use super::store::SpendStore;
use super::{SpendLevel, SpendRow};
use crate::domain::Connection;
use crate::platform::PlatformError;
use crate::secret::Secret;
use crate::store::StoreError;
use crate::sync::rate_limit::TokenBucket;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendConfig {
    pub levels: Vec<SpendLevel>,
    pub repull_days: i64,
    pub backfill_days: i64,
    pub table: String,
}

/// What a spend pull did, kept on the sync task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpendCounts {
    pub requests: u64,
    pub rows: u64,
    pub written: u64,
    pub unchanged: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct SpendSync {
    pub reports: ReportClient,
    pub store: Arc<dyn SpendStore>,
    pub config: SpendConfig,
}

/// Beijing's calendar day of `at`.
pub fn beijing_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&crate::sources::beijing()).date_naive()
}

impl SpendSync {
    /// The days to pull for a level whose watermark is `watermark`.
    pub fn span(&self, watermark: Option<NaiveDate>, today: NaiveDate) -> (NaiveDate, NaiveDate) {
        let repull = today - Duration::days(self.config.repull_days - 1);
        let from = match watermark {
            Some(w) => (w + Duration::days(1)).min(repull),
            None => today - Duration::days(self.config.backfill_days - 1),
        };
        (from, today)
    }

    pub async fn run(
        &self,
        connection: &Connection,
        token: &Secret,
        now: DateTime<Utc>,
        buckets: [&TokenBucket; 2],
        counts: &mut SpendCounts,
    ) -> Result<(), SpendError> {
        let today = beijing_day(now);
        for level in &self.config.levels {
            let watermark = self.store_watermark(connection, *level).await?;
            let (from, to) = self.span(watermark, today);
            for account in accounts(connection) {
                let mut start = from;
                while start <= to {
                    let end = (start + Duration::days(MAX_SPAN_DAYS - 1)).min(to);
                    self.pull(
                        connection,
                        *level,
                        token,
                        &account,
                        (start, end),
                        today,
                        buckets,
                        counts,
                    )
                    .await?;
                    start = end + Duration::days(1);
                }
            }
            // Every account's every day is stored: only today stays open.
            let settled = today - Duration::days(1);
            if watermark.is_none_or(|w| w < settled) {
                self.store
                    .advance_watermark(&connection.tenant, &connection.id, *level, settled)
                    .await?;
            }
        }
        Ok(())
    }

    async fn store_watermark(&self, c: &Connection, level: SpendLevel) -> Result<Option<NaiveDate>, StoreError> {
        self.store.watermark(&c.tenant, &c.id, level).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn pull(
        &self,
        connection: &Connection,
        level: SpendLevel,
        token: &Secret,
        account: &str,
        span: (NaiveDate, NaiveDate),
        today: NaiveDate,
        buckets: [&TokenBucket; 2],
        counts: &mut SpendCounts,
    ) -> Result<(), SpendError> {
        // A span's pages are stored together: the rows of an entity's month may be spread over
        // many pages (reports order by day), and its item is then written once, not per page.
        let mut rows: Vec<SpendRow> = Vec::new();
        let mut page = 1;
        loop {
            for bucket in buckets {
                bucket.acquire().await;
            }
            let got = self.reports.page(level, token, account, span, page).await?;
            counts.requests += 1;
            rows.extend(got.rows.into_iter().map(|mut r| {
                r.provisional = r.day >= today;
                r
            }));
            if page >= got.total_pages {
                break;
            }
            page += 1;
        }
        counts.rows += rows.len() as u64;
        let written = self.store.put_rows(&connection.tenant, &connection.id, &rows).await?;
        counts.written += written.written;
        counts.unchanged += written.unchanged;
        Ok(())
    }
}

/// The accounts a connection's reports are read for: every advertiser its token can read.
fn accounts(connection: &Connection) -> Vec<String> {
    if connection.advertiser_ids.is_empty() {
        vec![connection.external_account_id.clone()]
    } else {
        connection.advertiser_ids.clone()
    }
}

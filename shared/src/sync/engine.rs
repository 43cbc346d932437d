//! One sync run of one connection: lease, fresh tokens, every source's windows page by page
//! within the rate limits, idempotent upserts, and the watermark moved only past what is stored.

use super::rate_limit::TokenBucket;
use super::tokens::{TokenError, TokenKeeper};
use super::windows::WindowPlan;
use super::{SkipReason, SyncOutcome, SyncRequest, SyncStores};
use crate::clock::Clock;
use crate::config::SyncConfig;
use crate::domain::{Connection, ConnectionStatus, TokenSet};
use crate::lead::{LeadRecord, LeadSource, PlatformLead};
use crate::platform::{ErrorKind, Platform};
use crate::sources::{Page, PageRef, Paging, PullAuth, SourceClient, SourceError, Window};
use crate::store::{RunRecord, StoreError, UPSERT_BATCH};
use crate::task::{SourceCounts, Strategy, SyncTask, TaskStatus, new_task_id};
use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Windows narrower than this are not split further, however many rows they hold.
const MIN_SPLIT_SPAN: Duration = Duration::minutes(2);

pub struct SyncEngine {
    pub(super) config: SyncConfig,
    pub(super) stores: SyncStores,
    pub(super) catalog: super::catalog::SourceCatalog,
    pub(super) tokens: TokenKeeper,
    pub(super) limits: PlatformLimits,
    pub(super) clock: Arc<dyn Clock>,
}

/// Per-platform token buckets, shared by every connection a container syncs.
pub(super) struct PlatformLimits {
    pub douyin: TokenBucket,
    pub oceanengine: TokenBucket,
    pub feiyu: TokenBucket,
}

impl PlatformLimits {
    fn bucket(&self, platform: Platform) -> &TokenBucket {
        match platform {
            Platform::Douyin => &self.douyin,
            Platform::OceanEngine => &self.oceanengine,
            Platform::Feiyu => &self.feiyu,
        }
    }
}

/// How a source's part of a run ended.
#[derive(Debug, Clone)]
enum SourceEnd {
    Done,
    Failed(String),
    OutOfTime,
    ReauthRequired(String),
}

/// Why a window stopped early.
enum WindowStop {
    Failed(SourceError),
    OutOfTime,
}

impl From<SourceError> for WindowStop {
    fn from(e: SourceError) -> Self {
        WindowStop::Failed(e)
    }
}

impl From<StoreError> for WindowStop {
    fn from(e: StoreError) -> Self {
        WindowStop::Failed(SourceError::Store(e))
    }
}

/// What every page of one connection run shares.
struct Run<'a> {
    connection: &'a Connection,
    tokens: Mutex<Option<TokenSet>>,
    bucket: TokenBucket,
    deadline: Option<Instant>,
    now: DateTime<Utc>,
    strategy: Strategy,
}

impl SyncEngine {
    fn out_of_time(&self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|d| Instant::now() + self.config.deadline_margin >= d)
    }

    /// Runs one connection's sync. Store failures are errors (the caller retries the message);
    /// platform failures end up in the task.
    pub async fn run(&self, request: SyncRequest, deadline: Option<Instant>) -> Result<SyncOutcome, StoreError> {
        let started = Instant::now();
        let now = self.clock.now();
        let stores = &self.stores;
        let ttl = Duration::from_std(self.config.task_ttl).unwrap_or(Duration::days(30));
        let existing = match &request.task_id {
            Some(id) => stores.tasks.get(&request.tenant, id).await?,
            None => None,
        };
        if let Some(task) = existing.as_ref().filter(|t| t.status.is_final()) {
            // A replayed event for a task that already ran: nothing to do, nothing to duplicate.
            return Ok(SyncOutcome::Skipped {
                reason: SkipReason::TaskAlreadyFinished,
                task: Some(task.clone()),
            });
        }
        let mut task = existing.unwrap_or_else(|| {
            SyncTask::new(
                request.task_id.clone().unwrap_or_else(new_task_id),
                request.tenant.clone(),
                request.connection_id.clone(),
                request.trigger,
                request.strategy,
                now,
                ttl,
            )
        });
        let connection = match stores.connections.get(&request.tenant, &request.connection_id).await? {
            Some(c) if c.status == ConnectionStatus::Active => c,
            found => {
                let reason = match found {
                    None => SkipReason::ConnectionNotFound,
                    Some(c) => SkipReason::NotActive(c.status),
                };
                return self.skip(task, reason, request.task_id.is_some()).await;
            }
        };
        let lease_until = now + Duration::from_std(self.config.lease_ttl).unwrap_or(Duration::minutes(15));
        if let Err(lease) = stores
            .ledger
            .acquire_lease(&connection.tenant, &connection.id, &task.task_id, lease_until, now)
            .await?
        {
            let reason = SkipReason::AlreadyRunning { task_id: lease.holder };
            return self.skip(task, reason, request.task_id.is_some()).await;
        }
        task.status = TaskStatus::Processing;
        task.started_at = Some(now);
        stores.tasks.put(&task).await?;

        let result = self.run_leased(&connection, &mut task, deadline, now).await;
        let released = stores
            .ledger
            .release_lease(&connection.tenant, &connection.id, &task.task_id)
            .await;
        if let Err(e) = &result {
            // Best effort: the task should not stay PROCESSING; the message is redelivered anyway.
            task.status = TaskStatus::Failed;
            task.error = Some(format!("storage failed: {e}"));
            task.finished_at = Some(self.clock.now());
            let _ = stores.tasks.put(&task).await;
        }
        result?;
        released?;
        let totals = task.totals();
        tracing::info!(
            tenant = %connection.tenant, connection = %connection.id, provider = %connection.provider,
            task = %task.task_id, trigger = ?task.trigger, status = ?task.status,
            fetched = totals.fetched, created = totals.created, updated = totals.updated,
            unchanged = totals.unchanged, duplicates = totals.duplicates, failed_pages = totals.failed,
            elapsed_ms = started.elapsed().as_millis() as u64, error = task.error.as_deref().unwrap_or(""),
            "connection sync finished"
        );
        Ok(SyncOutcome::Ran(task))
    }

    async fn skip(&self, mut task: SyncTask, reason: SkipReason, record: bool) -> Result<SyncOutcome, StoreError> {
        tracing::info!(tenant = %task.tenant, connection = %task.connection_id, task = %task.task_id, reason = %reason, "sync skipped");
        if record {
            // A requested task must not stay PENDING forever: say why it did not run.
            task.status = TaskStatus::Skipped;
            task.error = Some(reason.to_string());
            task.finished_at = Some(self.clock.now());
            self.stores.tasks.put(&task).await?;
        }
        Ok(SyncOutcome::Skipped {
            reason,
            task: Some(task),
        })
    }

    async fn run_leased(
        &self,
        connection: &Connection,
        task: &mut SyncTask,
        deadline: Option<Instant>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let stores = &self.stores;
        let ends = match self.tokens.fresh(connection, false).await {
            Ok(tokens) => {
                let run = Run {
                    connection,
                    tokens: Mutex::new(tokens),
                    bucket: TokenBucket::new(self.config.connection_qps),
                    deadline,
                    now,
                    strategy: task.strategy,
                };
                let mut ends = Vec::new();
                for client in self.catalog.for_provider(connection.provider) {
                    let mut counts = SourceCounts::default();
                    let end = self.run_source(&run, client.as_ref(), &mut counts).await?;
                    task.sources.insert(client.source(), counts);
                    let stop = matches!(end, SourceEnd::ReauthRequired(_));
                    ends.push(end);
                    if stop {
                        break;
                    }
                }
                ends
            }
            Err(TokenError::ReauthRequired(reason)) => vec![SourceEnd::ReauthRequired(reason)],
            Err(TokenError::Platform(e)) => vec![SourceEnd::Failed(format!("token refresh failed: {e}"))],
            Err(TokenError::Store(e)) => return Err(e),
        };
        let finished = self.clock.now();
        let reauth = ends.iter().find_map(|e| match e {
            SourceEnd::ReauthRequired(reason) => Some(reason.clone()),
            _ => None,
        });
        let errors: Vec<String> = ends
            .iter()
            .filter_map(|e| match e {
                SourceEnd::Failed(reason) | SourceEnd::ReauthRequired(reason) => Some(reason.clone()),
                SourceEnd::OutOfTime => {
                    Some("stopped before the invocation deadline; the rest follows next run".into())
                }
                SourceEnd::Done => None,
            })
            .collect();
        let done = ends.iter().filter(|e| matches!(e, SourceEnd::Done)).count();
        task.status = if errors.is_empty() {
            TaskStatus::Completed
        } else if done == 0 && !ends.iter().any(|e| matches!(e, SourceEnd::OutOfTime)) {
            TaskStatus::Failed
        } else {
            TaskStatus::Partial
        };
        task.error = (!errors.is_empty()).then(|| errors.join("; "));
        task.finished_at = Some(finished);
        if let Some(reason) = &reauth {
            stores
                .ledger
                .mark_reauth_required(&connection.tenant, &connection.id, reason, finished)
                .await?;
        }
        stores
            .ledger
            .record_run(
                &connection.tenant,
                &connection.id,
                &RunRecord {
                    task_id: task.task_id.clone(),
                    at: finished,
                    succeeded: task.status == TaskStatus::Completed,
                    error: task.error.clone(),
                    created: task.totals().created,
                },
            )
            .await?;
        stores.tasks.put(task).await
    }

    async fn run_source(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        counts: &mut SourceCounts,
    ) -> Result<SourceEnd, StoreError> {
        let source = client.source();
        let outcome = match client.paging() {
            Paging::Cursor { .. } => self.pull_listing(run, client, counts).await,
            Paging::Windowed { lag, max_span, .. } => {
                let info = self
                    .stores
                    .ledger
                    .sync_info(&run.connection.tenant, &run.connection.id)
                    .await?;
                let plan = WindowPlan {
                    watermark: info.watermarks.get(&source).copied(),
                    now: run.now,
                    overlap: Duration::from_std(self.config.overlap).unwrap_or(Duration::zero()),
                    backfill: Duration::from_std(self.config.backfill).unwrap_or(Duration::days(30)),
                    lag,
                    max_span,
                    full: run.strategy == Strategy::Full,
                };
                let mut outcome = Ok(());
                for window in plan.windows() {
                    outcome = self.pull_window(run, client, window, counts).await;
                    if outcome.is_err() {
                        break;
                    }
                    // Everything created before window.end is stored: only now may the mark move.
                    self.stores
                        .ledger
                        .advance_watermark(&run.connection.tenant, &run.connection.id, source, window.end)
                        .await?;
                }
                outcome
            }
        };
        Ok(match outcome {
            Ok(()) => SourceEnd::Done,
            Err(WindowStop::OutOfTime) => SourceEnd::OutOfTime,
            Err(WindowStop::Failed(SourceError::Store(e))) => return Err(e),
            Err(WindowStop::Failed(e)) if e.kind() == Some(ErrorKind::GrantRevoked) => {
                SourceEnd::ReauthRequired(format!("{source}: the platform revoked the grant ({e})"))
            }
            Err(WindowStop::Failed(e)) => SourceEnd::Failed(format!("{source}: {e}")),
        })
    }

    /// A cursor listing (fans): every page in turn; no window, no watermark.
    async fn pull_listing(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        counts: &mut SourceCounts,
    ) -> Result<(), WindowStop> {
        let everything = Window {
            start: DateTime::<Utc>::MIN_UTC,
            end: run.now,
        };
        let mut seen = HashSet::new();
        let mut page = Some(PageRef::Cursor(0));
        while let Some(current) = page {
            if self.out_of_time(run.deadline) {
                return Err(WindowStop::OutOfTime);
            }
            let fetched = self.fetch(run, client, &everything, current).await;
            let fetched = fetched.inspect_err(|_| counts.failed += 1)?;
            page = fetched.next;
            self.store(run, fetched.leads, &mut seen, counts).await?;
        }
        Ok(())
    }

    /// One window: the first page tells the total; a window deeper than the platform pages is
    /// split in two; otherwise the other pages are fetched concurrently and stored in order.
    async fn pull_window(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        window: Window,
        counts: &mut SourceCounts,
    ) -> Result<(), WindowStop> {
        if self.out_of_time(run.deadline) {
            return Err(WindowStop::OutOfTime);
        }
        let first = self
            .fetch(run, client, &window, PageRef::Number(1))
            .await
            .inspect_err(|_| counts.failed += 1)?;
        if first.total.is_some_and(|t| t > self.config.max_window_rows) && window.span() > MIN_SPLIT_SPAN {
            let (early, late) = window.split();
            Box::pin(self.pull_window(run, client, early, counts)).await?;
            return Box::pin(self.pull_window(run, client, late, counts)).await;
        }
        let mut seen = HashSet::new();
        let mut next = first.next;
        let pages = first.pages;
        // Pages the window has by the latest count: leads created while paging shift the rest.
        let mut latest_pages = pages.unwrap_or(1);
        self.store(run, first.leads, &mut seen, counts).await?;
        match pages {
            Some(pages) if pages > 1 => {
                let mut stream = futures_util::stream::iter(2..=pages)
                    .map(|n| async move {
                        if self.out_of_time(run.deadline) {
                            return Err(WindowStop::OutOfTime);
                        }
                        self.fetch(run, client, &window, PageRef::Number(n))
                            .await
                            .map_err(WindowStop::from)
                    })
                    .buffered(self.config.page_concurrency.max(1));
                while let Some(result) = stream.next().await {
                    // A failed page ends the window; dropping the stream cancels what is in flight.
                    let page = result.inspect_err(|e| {
                        if matches!(e, WindowStop::Failed(_)) {
                            counts.failed += 1;
                        }
                    })?;
                    latest_pages = latest_pages.max(page.pages.unwrap_or(0));
                    self.store(run, page.leads, &mut seen, counts).await?;
                }
                // The window grew while we paged: what was pushed past the last page is fetched too.
                let mut n = pages + 1;
                while n <= latest_pages {
                    if self.out_of_time(run.deadline) {
                        return Err(WindowStop::OutOfTime);
                    }
                    let page = self
                        .fetch(run, client, &window, PageRef::Number(n))
                        .await
                        .inspect_err(|_| counts.failed += 1)?;
                    latest_pages = latest_pages.max(page.pages.unwrap_or(0));
                    self.store(run, page.leads, &mut seen, counts).await?;
                    n += 1;
                }
            }
            // No page count: follow `next` one page at a time.
            _ => {
                while let Some(current) = next {
                    if self.out_of_time(run.deadline) {
                        return Err(WindowStop::OutOfTime);
                    }
                    let page = self
                        .fetch(run, client, &window, current)
                        .await
                        .inspect_err(|_| counts.failed += 1)?;
                    next = page.next;
                    self.store(run, page.leads, &mut seen, counts).await?;
                }
            }
        }
        Ok(())
    }

    /// One page within the rate limits. A user token the platform rejects is refreshed once and
    /// the page asked again; an app token is dropped by the source and re-issued the same way.
    async fn fetch(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        window: &Window,
        page: PageRef,
    ) -> Result<Page, SourceError> {
        let mut retried = false;
        loop {
            self.limits.bucket(client.platform()).acquire().await;
            run.bucket.acquire().await;
            let tokens = run.tokens.lock().await.clone();
            let auth = PullAuth {
                connection: run.connection,
                tokens: tokens.as_ref(),
            };
            let result = client.fetch(&auth, window, page).await;
            tracing::debug!(source = %client.source(), ?page, leads = result.as_ref().map(|p| p.leads.len()).ok(), error = result.as_ref().err().map(|e| e.to_string()), "page fetched");
            match result {
                Err(e) if e.kind() == Some(ErrorKind::AccessTokenInvalid) && !retried => {
                    retried = true;
                    if !client.uses_app_token() {
                        self.refresh_after_rejection(run, tokens.as_ref()).await?;
                    }
                }
                other => return other,
            }
        }
    }

    /// Refreshes the run's tokens unless a concurrent page already did since `rejected` was read.
    async fn refresh_after_rejection(&self, run: &Run<'_>, rejected: Option<&TokenSet>) -> Result<(), SourceError> {
        let mut current = run.tokens.lock().await;
        let already = match (current.as_ref(), rejected) {
            (Some(now), Some(old)) => now.access_token != old.access_token,
            _ => false,
        };
        if already {
            return Ok(());
        }
        match self.tokens.fresh(run.connection, true).await {
            Ok(tokens) => {
                *current = tokens;
                Ok(())
            }
            Err(TokenError::ReauthRequired(reason)) => {
                Err(SourceError::Platform(crate::platform::PlatformError::Api {
                    platform: client_platform(run.connection),
                    code: 0,
                    message: reason,
                    log_id: None,
                    kind: ErrorKind::GrantRevoked,
                }))
            }
            Err(TokenError::Platform(e)) => Err(e.into()),
            Err(TokenError::Store(e)) => Err(e.into()),
        }
    }

    /// Stores a page's leads not yet seen in this window, in batches.
    async fn store(
        &self,
        run: &Run<'_>,
        leads: Vec<PlatformLead>,
        seen: &mut HashSet<(LeadSource, String)>,
        counts: &mut SourceCounts,
    ) -> Result<(), StoreError> {
        let tenant = &run.connection.tenant;
        let fresh: Vec<LeadRecord> = leads
            .into_iter()
            .filter(|l| seen.insert((l.source, l.source_lead_id.clone())))
            .map(|l| LeadRecord::new(tenant, &run.connection.id, l))
            .collect();
        counts.fetched += fresh.len() as u64;
        for batch in fresh.chunks(UPSERT_BATCH) {
            let report = self.stores.leads.upsert(tenant, batch, self.clock.now()).await?;
            counts.created += report.created;
            counts.updated += report.updated;
            counts.unchanged += report.unchanged;
            counts.duplicates += report.duplicates;
        }
        Ok(())
    }
}

fn client_platform(connection: &Connection) -> Platform {
    match connection.provider {
        crate::domain::Provider::OceanEngine => Platform::OceanEngine,
        crate::domain::Provider::Feiyu => Platform::Feiyu,
        _ => Platform::Douyin,
    }
}

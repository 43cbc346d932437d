//! One sync run of one connection: lease, fresh tokens, every source's windows page by page
//! within the rate limits, idempotent upserts, and the watermark moved only past what is stored.

use super::rate_limit::TokenBucket;
use super::reconcile::{Tally, Verdict};
use super::tokens::{TokenError, TokenKeeper};
use super::windows::WindowPlan;
use super::{SkipReason, SyncOutcome, SyncRequest, SyncStores};
use crate::clock::Clock;
use crate::config::SyncConfig;
use crate::domain::{Connection, ConnectionStatus, TokenSet};
use crate::failure::{self, Failure};
use crate::lead::{LeadFields, LeadId, LeadRecord, PlatformLead};
use crate::platform::{ErrorKind, Platform};
use crate::sources::{Page, PageRef, Paging, PhoneRetry, PullAuth, SourceClient, SourceError, Window};
use crate::store::{Lease, PendingPhone, RunRecord, StoreError, UPSERT_BATCH};
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
    pub(super) margin: std::time::Duration,
    pub(super) stores: SyncStores,
    pub(super) catalog: super::catalog::SourceCatalog,
    pub(super) tokens: TokenKeeper,
    pub(super) limits: PlatformLimits,
    /// Ocean Engine connections also pull their spend reports.
    pub(super) spend: crate::spend::sync::SpendSync,
    pub(super) clock: Arc<dyn Clock>,
    /// Where pending grants keep their tokens, and how long they wait: the tick's sweep.
    pub(super) pending: (String, Duration),
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
    Failed(Failure),
    OutOfTime,
    /// Pulled, but some window is not proven complete (or some leads could not be stored): the
    /// watermark stays before it and the next run pulls it again.
    Incomplete(Failure),
    ReauthRequired(Failure),
}

/// How one window ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WindowEnd {
    /// Every lead of the window is stored: the watermark may pass it.
    Stored,
    /// Pulled as far as it goes, but not proven complete, or some leads failed to store.
    Held(String),
}

impl WindowEnd {
    fn and(self, other: WindowEnd) -> WindowEnd {
        match self {
            WindowEnd::Stored => other,
            held => held,
        }
    }
}

/// Leads whose phone retry one run takes on (one Query), per connection.
const PHONE_RETRY_BATCH: u32 = 500;
/// Retries of a refused decrypt before the lead keeps its `phoneError` for good (one a run).
const PHONE_RETRY_ATTEMPTS: u32 = 20;

/// Passes over a window after rows were deleted while paging, before it is left for next run.
const MAX_PASSES: u32 = 2;
/// Rounds of repairs (pages where rows can have fallen, or new rows at the head of the listing)
/// before the window is split in time.
const REPAIR_ROUNDS: u32 = 3;
/// How deep a short window is split in time to find its missing rows.
const MAX_BISECT_DEPTH: u32 = 3;

/// Why a window stopped early.
enum WindowStop {
    Failed(SourceError),
    OutOfTime,
}

impl From<SourceError> for WindowStop {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::OutOfTime => WindowStop::OutOfTime,
            e => WindowStop::Failed(e),
        }
    }
}

/// A lease token: the task and a random part of this invocation's own.
fn lease_token(task_id: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("OS randomness is available");
    let nonce: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{task_id}/{nonce}")
}

/// The task a lease token belongs to.
fn task_of(holder: &str) -> &str {
    holder.split('/').next().unwrap_or(holder)
}

impl From<StoreError> for WindowStop {
    fn from(e: StoreError) -> Self {
        WindowStop::Failed(SourceError::Store(e))
    }
}

/// One offset-paged listing: a window of one part of a source (a chunk of the accounts it
/// covers), paged `page_size` rows at a time.
#[derive(Debug, Clone, Copy)]
struct Listing {
    window: Window,
    part: usize,
    page_size: u32,
}

impl Listing {
    fn with(self, window: Window) -> Listing {
        Listing { window, ..self }
    }
}

fn held_if_failed(failed: u64) -> WindowEnd {
    if failed == 0 {
        WindowEnd::Stored
    } else {
        WindowEnd::Held(format!(
            "{failed} leads could not be stored; their window is pulled again next run"
        ))
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
    fn page_concurrency(&self, client: &dyn SourceClient) -> usize {
        let configured = if client.clocked() {
            self.config.page_concurrency
        } else {
            self.config.unclocked_page_concurrency
        };
        configured.max(1)
    }

    fn out_of_time(&self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|d| Instant::now() + self.margin >= d)
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
        // Each invocation holds the lease under a token of its own: a second delivery of the
        // same task is a second writer, and must wait like any other.
        let holder = lease_token(&task.task_id);
        let stale = stores
            .ledger
            .sync_info(&connection.tenant, &connection.id)
            .await?
            .lease
            .filter(|l| l.until < now);
        if let Err(lease) = stores
            .ledger
            .acquire_lease(&connection.tenant, &connection.id, &holder, lease_until, now)
            .await?
        {
            let reason = SkipReason::AlreadyRunning {
                task_id: task_of(&lease.holder).to_owned(),
            };
            return self.skip(task, reason, request.task_id.is_some()).await;
        }
        if let Some(stale) = stale {
            self.close_stale_task(&connection, &stale, &task.task_id).await?;
        }
        task.status = TaskStatus::Processing;
        task.started_at = Some(now);
        stores.tasks.put(&task).await?;

        let result = self.run_leased(&connection, &mut task, deadline, now).await;
        let released = stores
            .ledger
            .release_lease(&connection.tenant, &connection.id, &holder)
            .await;
        if let Err(e) = &result {
            // Best effort: the task should not stay PROCESSING; the message is redelivered anyway.
            // The store's text (table names, ARNs) is for the log only.
            tracing::error!(tenant = %connection.tenant, connection = %connection.id, task = %task.task_id, error = %e, "sync storage failed");
            task.status = TaskStatus::Failed;
            task.set_failure(Some(Failure::storage()));
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

    /// The request's last delivery failed (`error`): its task ends FAILED, unless it already ended.
    pub async fn give_up(&self, request: &SyncRequest, error: &StoreError) -> Result<(), StoreError> {
        let Some(task_id) = &request.task_id else {
            return Ok(());
        };
        let tasks = &self.stores.tasks;
        let Some(mut task) = tasks.get(&request.tenant, task_id).await? else {
            return Ok(());
        };
        if task.status.is_final() {
            return Ok(());
        }
        tracing::error!(tenant = %request.tenant, task = %task_id, error = %error, "sync gave up after its last delivery failed");
        task.status = TaskStatus::Failed;
        task.set_failure(Some(Failure::delivery()));
        task.finished_at = Some(self.clock.now());
        tasks.put(&task).await
    }

    /// A run whose lease expired without a release was killed (the Lambda timeout, a crash): its
    /// task would stay PROCESSING forever, so the run that takes the lease over closes it.
    async fn close_stale_task(&self, connection: &Connection, stale: &Lease, current: &str) -> Result<(), StoreError> {
        let task_id = task_of(&stale.holder);
        if task_id == current {
            return Ok(());
        }
        let tasks = &self.stores.tasks;
        let Some(mut task) = tasks.get(&connection.tenant, task_id).await? else {
            return Ok(());
        };
        if task.status != TaskStatus::Processing {
            return Ok(());
        }
        task.status = TaskStatus::Failed;
        task.set_failure(Some(Failure::interrupted(stale.until)));
        task.finished_at = Some(self.clock.now());
        tracing::warn!(tenant = %task.tenant, connection = %task.connection_id, task = %task.task_id, "closed a task its run left unfinished");
        tasks.put(&task).await
    }

    async fn skip(&self, mut task: SyncTask, reason: SkipReason, record: bool) -> Result<SyncOutcome, StoreError> {
        tracing::info!(tenant = %task.tenant, connection = %task.connection_id, task = %task.task_id, reason = %reason, "sync skipped");
        if record {
            // A requested task must not stay PENDING forever: say why it did not run.
            task.status = TaskStatus::Skipped;
            task.set_failure(Some(Failure::skipped(&reason)));
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
        let fresh = if self.out_of_time(deadline) {
            // Not even a token refresh would finish: a rotation cut off mid-way loses the grant.
            Err(TokenError::OutOfTime)
        } else {
            self.tokens.fresh(connection, false).await
        };
        let ends = match fresh {
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
                let reauth = ends.iter().any(|e| matches!(e, SourceEnd::ReauthRequired(_)));
                if connection.provider == crate::domain::Provider::OceanEngine
                    && !self.spend.config.levels.is_empty()
                    && !reauth
                {
                    let mut counts = crate::spend::sync::SpendCounts::default();
                    // A spend failure makes the run partial; a spend success never hides failed
                    // lead sources (the failure streak counts lead runs).
                    let end = self.run_spend(&run, &mut counts).await?;
                    if !matches!(end, SourceEnd::Done) {
                        ends.push(end);
                    }
                    task.spend = Some(counts);
                }
                ends
            }
            Err(TokenError::ReauthRequired(reason)) => vec![SourceEnd::ReauthRequired(Failure::reauth(reason))],
            Err(TokenError::OutOfTime) => vec![SourceEnd::OutOfTime],
            Err(TokenError::Platform(e)) => {
                tracing::warn!(connection = %connection.id, error = %e, "token refresh failed");
                vec![SourceEnd::Failed(Failure::token_refresh(&e))]
            }
            Err(TokenError::Store(e)) => return Err(e),
        };
        let finished = self.clock.now();
        let reauth = ends.iter().find_map(|e| match e {
            SourceEnd::ReauthRequired(failure) => Some(failure.message.clone()),
            _ => None,
        });
        let failures: Vec<Failure> = ends
            .iter()
            .filter_map(|e| match e {
                SourceEnd::Failed(f) | SourceEnd::ReauthRequired(f) | SourceEnd::Incomplete(f) => Some(f.clone()),
                SourceEnd::OutOfTime => Some(Failure::deadline()),
                SourceEnd::Done => None,
            })
            .collect();
        let done = ends.iter().filter(|e| matches!(e, SourceEnd::Done)).count();
        let partial = ends
            .iter()
            .any(|e| matches!(e, SourceEnd::OutOfTime | SourceEnd::Incomplete(_)));
        task.status = if failures.is_empty() {
            TaskStatus::Completed
        } else if done == 0 && !partial {
            TaskStatus::Failed
        } else {
            TaskStatus::Partial
        };
        let failure = failure::combined(&failures);
        task.set_failure(failure.clone());
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
                    failed: task.status == TaskStatus::Failed,
                    failure,
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
            Paging::Windowed {
                lag,
                max_span,
                page_size,
            } => {
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
                let outcome = self.retry_phones(run, client, counts).await;
                match outcome {
                    Ok(()) => self.pull_windows(run, client, plan.windows(), page_size, counts).await,
                    Err(e) => Err(e),
                }
            }
        };
        Ok(match outcome {
            Ok(None) => SourceEnd::Done,
            Ok(Some(held)) => SourceEnd::Incomplete(Failure::incomplete(source, &held)),
            Err(WindowStop::OutOfTime) => SourceEnd::OutOfTime,
            Err(WindowStop::Failed(SourceError::Store(e))) => return Err(e),
            Err(WindowStop::Failed(SourceError::Platform(e))) if e.kind() == ErrorKind::GrantRevoked => {
                SourceEnd::ReauthRequired(Failure::reauth(format!(
                    "{source}: the platform revoked the grant ({})",
                    e.public_message()
                )))
            }
            Err(WindowStop::Failed(e)) => {
                tracing::warn!(connection = %run.connection.id, %source, error = %e, "source failed");
                SourceEnd::Failed(Failure::source(source, &e))
            }
        })
    }

    /// A cursor listing (fans): every page in turn; no window, no watermark.
    async fn pull_listing(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        counts: &mut SourceCounts,
    ) -> Result<Option<String>, WindowStop> {
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
            let listing = Listing {
                window: everything,
                part: 0,
                page_size: 0,
            };
            let fetched = self.fetch(run, client, &listing, current).await;
            let fetched = fetched.inspect_err(|_| counts.failed += 1)?;
            page = fetched.next;
            let fresh: Vec<PlatformLead> = fetched
                .leads
                .into_iter()
                .filter(|l| seen.insert(l.source_lead_id.clone()))
                .collect();
            self.store(run, fresh, counts).await?;
        }
        Ok(None)
    }

    /// Leads stored without their phone (a refused decrypt) get the decrypt retried, whatever
    /// their age: a phone that opens is written (the merge drops its retry), a failure counts an
    /// attempt, and after `PHONE_RETRY_ATTEMPTS` or a permanent failure the lead keeps its
    /// `phoneError` for good. A failing retry never stops the sync.
    async fn retry_phones(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        counts: &mut SourceCounts,
    ) -> Result<(), WindowStop> {
        let (tenant, leads) = (&run.connection.tenant, &self.stores.leads);
        let pending: Vec<PendingPhone> = leads
            .pending_phones(tenant, &run.connection.id, PHONE_RETRY_BATCH)
            .await?
            .into_iter()
            .filter(|p| p.source == client.source())
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if self.out_of_time(run.deadline) {
            return Err(WindowStop::OutOfTime);
        }
        // The decrypt endpoint takes 50 ciphertexts a call.
        for _ in 0..pending.len().div_ceil(50) {
            self.permit(run, client.platform()).await;
        }
        let tokens = run.tokens.lock().await.clone();
        let auth = PullAuth {
            connection: run.connection,
            tokens: tokens.as_ref(),
            part: 0,
        };
        let ciphers: Vec<String> = pending.iter().map(|p| p.cipher.clone()).collect();
        let results = match client.retry_phones(&auth, &ciphers).await {
            Ok(results) => results,
            Err(e) => {
                tracing::warn!(source = %client.source(), error = %e, "phone retry failed; next run tries again");
                counts.phones_pending += pending.len() as u64;
                return Ok(());
            }
        };
        let (mut opened, mut again, mut given_up) = (Vec::new(), Vec::new(), Vec::new());
        for mut entry in pending {
            match results.get(&entry.cipher) {
                Some(PhoneRetry::Opened(phone)) => opened.push((entry, phone.clone())),
                Some(PhoneRetry::Failed { permanent: true, .. }) => given_up.push(entry),
                _ => {
                    entry.attempts += 1;
                    if entry.attempts >= PHONE_RETRY_ATTEMPTS {
                        given_up.push(entry);
                    } else {
                        again.push(entry);
                    }
                }
            }
        }
        let mut records = Vec::new();
        for (entry, phone) in &opened {
            match leads.get(tenant, &entry.lead_id).await? {
                Some(stored) => {
                    let fields = LeadFields {
                        phone: Some(phone.clone()),
                        phone_error: None,
                        ..stored.fields
                    };
                    let lead = PlatformLead {
                        source: stored.source,
                        source_lead_id: stored.source_lead_id,
                        fields,
                        raw: stored.raw,
                        phone_cipher: None,
                    };
                    records.push(LeadRecord::new(tenant, &stored.connection_id, lead));
                }
                None => given_up.push(entry.clone()),
            }
        }
        for batch in records.chunks(UPSERT_BATCH) {
            let report = leads.upsert(tenant, batch, self.clock.now()).await?;
            counts.phones_recovered += report.updated;
        }
        // A recovered phone's retry is dropped by the upsert; these are the rest.
        leads.put_pending_phones(tenant, &again).await?;
        leads.drop_pending_phones(tenant, &given_up).await?;
        counts.phones_pending += again.len() as u64;
        Ok(())
    }

    /// The windows of one source in order, each part of each. The watermark follows the
    /// windows that are stored; after the first that is not, later windows are still pulled (their
    /// leads are wanted) but the watermark stays put. `Some` says why it stayed.
    async fn pull_windows(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        windows: Vec<Window>,
        page_size: u32,
        counts: &mut SourceCounts,
    ) -> Result<Option<String>, WindowStop> {
        let parts = client.parts(run.connection);
        let mut held = None;
        for window in windows {
            let mut end = WindowEnd::Stored;
            for part in 0..parts {
                let listing = Listing {
                    window,
                    part,
                    page_size,
                };
                match self.pull_window(run, client, listing, counts, 0).await {
                    Ok(part_end) => end = end.and(part_end),
                    Err(stop) => {
                        // A window this run could not finish vouches for nothing: leads may have
                        // appeared in it since an earlier run stored it (a FULL or overlap re-pull).
                        self.rewind(run, client, &window).await?;
                        return Err(stop);
                    }
                }
            }
            match end {
                WindowEnd::Stored if held.is_none() => {
                    // Everything created before window.end is stored: only now may the mark move.
                    self.stores
                        .ledger
                        .advance_watermark(&run.connection.tenant, &run.connection.id, client.source(), window.end)
                        .await?;
                }
                WindowEnd::Stored => {}
                WindowEnd::Held(reason) => {
                    counts.unreconciled_windows += 1;
                    held.get_or_insert(reason);
                    self.rewind(run, client, &window).await?;
                }
            }
        }
        Ok(held)
    }

    /// Moves the watermark back to the start of `window` (if it is past it): leads may have
    /// appeared there since an earlier run stored it (a late or backdated lead met by a FULL or
    /// overlap re-pull), and this run could not prove it complete, so the next run pulls it again.
    async fn rewind(&self, run: &Run<'_>, client: &dyn SourceClient, window: &Window) -> Result<(), StoreError> {
        self.stores
            .ledger
            .rewind_watermark(
                &run.connection.tenant,
                &run.connection.id,
                client.source(),
                client.covered(window).start,
            )
            .await
    }

    /// One window (of one part): the first page tells the total; a window deeper than the
    /// platform pages is split in two; otherwise every page is fetched, concurrently, and the
    /// window is reconciled with the platform's final answer (see [`super::reconcile`]). A window
    /// that does not reconcile is split in time and each half pulled on its own (`depth` > 0): a
    /// half is paged in less time, so fewer changes land while it is, and a half that fits one
    /// page is one consistent read.
    async fn pull_window(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        listing: Listing,
        counts: &mut SourceCounts,
        depth: u32,
    ) -> Result<WindowEnd, WindowStop> {
        let window = listing.window;
        let mut tally = Tally::new(listing.page_size).with_clock_tolerance(self.config.clock_tolerance_ms);
        let mut failed = 0u64;
        let first = self.fetch_counted(run, client, listing, 1, counts).await?;
        counts.reconcile_requests += u64::from(depth > 0);
        if first.total.is_some_and(|t| t > self.config.max_window_rows) && window.span() > MIN_SPLIT_SPAN {
            let (early, late) = window.split();
            let early = Box::pin(self.pull_window(run, client, listing.with(early), counts, depth)).await?;
            let late = Box::pin(self.pull_window(run, client, listing.with(late), counts, depth)).await?;
            return Ok(early.and(late));
        }
        self.take(run, &mut tally, 1, first, counts, &mut failed).await?;
        let mut deleted = false;
        'passes: for pass in 0..MAX_PASSES {
            if pass > 0 {
                tally.reset();
                let first = self.fetch_counted(run, client, listing, 1, counts).await?;
                counts.reconcile_requests += 1;
                self.take(run, &mut tally, 1, first, counts, &mut failed).await?;
            }
            // Every page by the latest count (leads created while paging add pages).
            loop {
                let missing = tally.unfetched();
                if missing.is_empty() {
                    break;
                }
                let extra = if pass > 0 { missing.len() as u64 } else { 0 };
                counts.reconcile_requests += extra;
                self.fetch_pages(run, client, listing, &missing, &mut tally, counts, &mut failed)
                    .await?;
            }
            // How deep into the head of the listing repairs have looked.
            let mut head = 1u32;
            for round in 0..=REPAIR_ROUNDS {
                let final_total = if tally.answers() <= 1 {
                    // One answer is one consistent look at the window.
                    tally.max_total()
                } else {
                    let check = self.fetch_counted(run, client, listing, 1, counts).await?;
                    counts.reconcile_requests += 1;
                    let total = check.total;
                    self.take(run, &mut tally, 1, check, counts, &mut failed).await?;
                    total.unwrap_or(tally.max_total())
                };
                let suspect = tally.repair_pages(final_total);
                tracing::debug!(
                    source = %client.source(), start = %window.start, end = %window.end, depth, pass, round,
                    final_total, distinct = tally.distinct(), verdict = ?tally.verdict(final_total),
                    suspects = suspect.len(), "window checked"
                );
                match tally.verdict(final_total) {
                    // Counts alone can hide a deletion behind a row that fell between pages, so
                    // the pages where rows can have fallen are looked at once more first.
                    Verdict::Reconciled if suspect.is_empty() || round == REPAIR_ROUNDS => {
                        return Ok(held_if_failed(failed));
                    }
                    Verdict::Reconciled => {
                        counts.reconcile_requests += suspect.len() as u64;
                        self.fetch_pages(run, client, listing, &suspect, &mut tally, counts, &mut failed)
                            .await?;
                    }
                    Verdict::Deleted => {
                        deleted = true;
                        continue 'passes;
                    }
                    Verdict::Short { .. } if round == REPAIR_ROUNDS => break 'passes,
                    Verdict::Short { missing } => {
                        let mut pages = suspect;
                        pages.extend(tally.unfetched());
                        if pages.is_empty() {
                            // No row fell between pages: the missing ones were created while we
                            // paged, and a listing newest first puts them at its head, past what
                            // the final check's one page shows.
                            let reach = tally.head_reach(final_total, missing, head);
                            pages.extend(2..=reach);
                            head = reach;
                        }
                        pages.sort_unstable();
                        pages.dedup();
                        if pages.is_empty() {
                            break 'passes;
                        }
                        counts.reconcile_requests += pages.len() as u64;
                        self.fetch_pages(run, client, listing, &pages, &mut tally, counts, &mut failed)
                            .await?;
                    }
                }
            }
        }
        if !deleted && depth < MAX_BISECT_DEPTH && window.span() > MIN_SPLIT_SPAN {
            let (early, late) = window.split();
            let early = Box::pin(self.pull_window(run, client, listing.with(early), counts, depth + 1)).await?;
            let late = Box::pin(self.pull_window(run, client, listing.with(late), counts, depth + 1)).await?;
            return Ok(early.and(late).and(held_if_failed(failed)));
        }
        Ok(WindowEnd::Held(format!(
            "a window from {} to {} did not reconcile with the platform's totals ({} rows fetched, {} reported)",
            window.start.to_rfc3339(),
            window.end.to_rfc3339(),
            tally.distinct(),
            tally.max_total()
        )))
    }

    /// One page of a listing, counted as failed when it still fails after retries.
    async fn fetch_counted(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        listing: Listing,
        page: u32,
        counts: &mut SourceCounts,
    ) -> Result<Page, WindowStop> {
        if self.out_of_time(run.deadline) {
            return Err(WindowStop::OutOfTime);
        }
        let fetched = self.fetch(run, client, &listing, PageRef::Number(page)).await;
        Ok(fetched.inspect_err(|_| counts.failed += 1)?)
    }

    /// Pages of a listing, `page_concurrency` at a time, each stored and tallied as it arrives.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_pages(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        listing: Listing,
        pages: &[u32],
        tally: &mut Tally,
        counts: &mut SourceCounts,
        failed: &mut u64,
    ) -> Result<(), WindowStop> {
        let listing = &listing;
        // After a failure no new page leaves, but pages in flight are let finish: one may be in
        // the middle of a token refresh, and an Ocean Engine refresh rotates the refresh token,
        // so cancelling it after the platform answered would lose the grant.
        let stopped = &std::sync::atomic::AtomicBool::new(false);
        let mut stream = futures_util::stream::iter(pages.iter().copied())
            .map(|n| async move {
                if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    return (n, None);
                }
                if self.out_of_time(run.deadline) {
                    return (n, Some(Err(WindowStop::OutOfTime)));
                }
                let page = self.fetch(run, client, listing, PageRef::Number(n)).await;
                (n, Some(page.map_err(WindowStop::from)))
            })
            .buffer_unordered(self.page_concurrency(client));
        let mut first_stop = None;
        // Pages are stored while the next ones are fetched: storing must not hold the fetching
        // back below the rate limit.
        let mut storing = futures_util::stream::FuturesUnordered::new();
        let mut fetching = true;
        while fetching || !storing.is_empty() {
            tokio::select! {
                next = stream.next(), if fetching && storing.len() < STORING_AHEAD => match next {
                    None => fetching = false,
                    Some((_, None)) => {}
                    Some((n, Some(Ok(page)))) => storing.push(self.store_counted(run, unseen(tally, n, page))),
                    Some((_, Some(Err(stop)))) => {
                        if matches!(stop, WindowStop::Failed(_)) {
                            counts.failed += 1;
                        }
                        stopped.store(true, std::sync::atomic::Ordering::Relaxed);
                        first_stop.get_or_insert(stop);
                    }
                },
                Some(stored) = storing.next(), if !storing.is_empty() => match stored {
                    Ok((stored, refused)) => {
                        counts.add(&stored);
                        *failed += refused.len() as u64;
                    }
                    Err(e) => {
                        stopped.store(true, std::sync::atomic::Ordering::Relaxed);
                        first_stop.get_or_insert(WindowStop::from(e));
                    }
                },
            }
        }
        if let Some(stop) = first_stop {
            return Err(stop);
        }
        Ok(())
    }

    /// Stores the leads of an answer not yet seen in this window, then tallies the answer.
    async fn take(
        &self,
        run: &Run<'_>,
        tally: &mut Tally,
        number: u32,
        page: Page,
        counts: &mut SourceCounts,
        failed: &mut u64,
    ) -> Result<(), StoreError> {
        let fresh = unseen(tally, number, page);
        *failed += self.store(run, fresh, counts).await?.len() as u64;
        Ok(())
    }

    /// One page within the rate limits. A user token the platform rejects is refreshed once and
    /// the page asked again; an app token is dropped by the source and re-issued the same way.
    async fn fetch(
        &self,
        run: &Run<'_>,
        client: &dyn SourceClient,
        listing: &Listing,
        page: PageRef,
    ) -> Result<Page, SourceError> {
        let mut retried = false;
        loop {
            self.permit(run, client.platform()).await;
            let tokens = run.tokens.lock().await.clone();
            let auth = PullAuth {
                connection: run.connection,
                tokens: tokens.as_ref(),
                part: listing.part,
            };
            let result = client.fetch(&auth, &listing.window, page).await;
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

    /// The connection's spend reports, within the same rate limits and deadline as its leads.
    async fn run_spend(
        &self,
        run: &Run<'_>,
        counts: &mut crate::spend::sync::SpendCounts,
    ) -> Result<SourceEnd, StoreError> {
        if self.out_of_time(run.deadline) {
            return Ok(SourceEnd::OutOfTime);
        }
        let Some(token) = run.tokens.lock().await.as_ref().map(|t| t.access_token.clone()) else {
            return Ok(SourceEnd::Failed(Failure::spend_unusable()));
        };
        let buckets = [&self.limits.oceanengine, &run.bucket];
        match self.spend.run(run.connection, &token, run.now, buckets, counts).await {
            Ok(()) => Ok(SourceEnd::Done),
            Err(crate::spend::sync::SpendError::Store(e)) => Err(e),
            Err(crate::spend::sync::SpendError::Platform(e)) => {
                tracing::warn!(connection = %run.connection.id, error = %e, "the spend pull failed");
                Ok(SourceEnd::Failed(Failure::spend(&e)))
            }
        }
    }

    /// Waits for a call's turn within the platform's and the connection's token buckets.
    async fn permit(&self, run: &Run<'_>, platform: Platform) {
        self.limits.bucket(platform).acquire().await;
        run.bucket.acquire().await;
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
        if self.out_of_time(run.deadline) {
            return Err(SourceError::OutOfTime);
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
            Err(TokenError::OutOfTime) => Err(SourceError::OutOfTime),
        }
    }

    /// Stores leads (distinct ids) in batches; returns the leads the store refused.
    async fn store(
        &self,
        run: &Run<'_>,
        leads: Vec<PlatformLead>,
        counts: &mut SourceCounts,
    ) -> Result<Vec<LeadId>, StoreError> {
        let (stored, failed) = self.store_counted(run, leads).await?;
        counts.add(&stored);
        Ok(failed)
    }

    /// [`Self::store`], returning the counts instead of adding to them (for stores that run
    /// beside the fetching of further pages).
    async fn store_counted(
        &self,
        run: &Run<'_>,
        leads: Vec<PlatformLead>,
    ) -> Result<(SourceCounts, Vec<LeadId>), StoreError> {
        let tenant = &run.connection.tenant;
        let fresh: Vec<LeadRecord> = leads
            .into_iter()
            .map(|l| LeadRecord::new(tenant, &run.connection.id, l))
            .collect();
        let mut counts = SourceCounts {
            fetched: fresh.len() as u64,
            ..SourceCounts::default()
        };
        let mut failed = Vec::new();
        for batch in fresh.chunks(UPSERT_BATCH) {
            let report = self.stores.leads.upsert(tenant, batch, self.clock.now()).await?;
            counts.created += report.created;
            counts.updated += report.updated;
            counts.unchanged += report.unchanged;
            counts.duplicates += report.duplicates;
            counts.phones_pending += report.phones_missing;
            counts.failed_leads += report.failed.len() as u64;
            failed.extend(report.failed);
        }
        Ok((counts, failed))
    }
}

/// The leads of `page` not yet seen in this window (each once), after noting the answer.
fn unseen(tally: &mut Tally, number: u32, page: Page) -> Vec<PlatformLead> {
    let mut ids = HashSet::new();
    let fresh = page
        .leads
        .iter()
        .filter(|l| !tally.has(&l.source_lead_id) && ids.insert(l.source_lead_id.clone()))
        .cloned()
        .collect();
    tally.record(number, &page);
    fresh
}

/// Pages stored at once while further pages are fetched.
const STORING_AHEAD: usize = 4;

fn client_platform(connection: &Connection) -> Platform {
    match connection.provider {
        crate::domain::Provider::OceanEngine => Platform::OceanEngine,
        crate::domain::Provider::Feiyu => Platform::Feiyu,
        _ => Platform::Douyin,
    }
}

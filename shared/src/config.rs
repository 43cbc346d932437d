//! Configuration from the environment, checked once at cold start. Every problem is reported
//! together, each naming its variable, so one failed deploy shows everything to fix.

use std::collections::BTreeSet;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: Tables,
    pub secrets: SecretIds,
    pub douyin: DouyinConfig,
    pub oceanengine: OceanEngineConfig,
    pub oauth: OAuthConfig,
    pub http: HttpConfig,
    pub feiyu: FeiyuConfig,
    pub sync: SyncConfig,
    pub read: ReadConfig,
    pub function: FunctionConfig,
    pub outbound: OutboundConfig,
    pub writeback: crate::writeback::WriteBackConfig,
    pub spend: crate::spend::sync::SpendConfig,
    pub import: ImportConfig,
    /// JWT claim that names the tenant (API Gateway passes claims through).
    pub tenant_claim: String,
}

/// What the function knows of its own limits.
/// Webhooks and bot messages: where they are kept and queued, which targets they may reach, and
/// how long they are retried.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub table: String,
    /// The delivery queue; without it (the local run) deliveries run in process.
    pub queue_url: Option<String>,
    /// Where a delivery that gave up is described, so its alarm fires.
    pub dead_letter_url: Option<String>,
    pub allow_http: bool,
    /// Loopback and private targets: for the local run and tests only.
    pub allow_private: bool,
    pub ports: Vec<u16>,
    pub timeout: Duration,
    pub response_cap: usize,
    pub retry_horizon: Duration,
    pub disable_after: Duration,
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// SQS holds a message back at most 15 min; longer waits are taken in hops of this.
    pub max_queue_delay: Duration,
    pub bot_per_minute: u32,
    pub max_subscriptions: usize,
    pub lead_link_template: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The function's `Timeout` (`FUNCTION_TIMEOUT_SECS`, which the template sets from the same
    /// value): at cold start, one platform call with all its retries must fit in it.
    pub timeout: Option<Duration>,
    /// Kept back from the invocation's deadline to write the answer.
    pub response_reserve: Duration,
}

/// The lead API's read limits: every call stays within them whatever a tenant's size.
#[derive(Debug, Clone)]
pub struct ReadConfig {
    pub limits: crate::lead_query::ReadLimits,
    /// The most rows `GET /leads/export` answers itself; beyond, an export job.
    pub sync_export_rows: u64,
    /// The bucket export jobs write to (`EXPORT_BUCKET`).
    pub export_bucket: String,
    /// The queue the lead-export function reads (`EXPORT_QUEUE_URL`); without it, no export jobs.
    pub export_queue_url: Option<String>,
    /// How long an export's download link works (`EXPORT_URL_TTL_SECS`, 900).
    pub export_url_ttl: Duration,
    /// How long an export job and its file are kept (`EXPORT_TTL_DAYS`, 7; the bucket's
    /// lifecycle rule must match).
    pub export_ttl: Duration,
    /// The key of the cursors' MAC. Without `LEADS_CURSOR_KEY` it is derived from the leads
    /// table's name: cursors are then still bound to their filter, but forgeable by whoever
    /// knows the name (which only lets a caller start a page where they like in their own data).
    pub cursor_key: String,
}

/// File imports: uploaded to the export bucket under `imports/`, run by the lead-import function.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// The queue the lead-import function reads (`IMPORT_QUEUE_URL`); without it, no imports.
    pub queue_url: Option<String>,
    /// The largest file an import takes (`IMPORT_MAX_MB`, 50).
    pub max_bytes: u64,
    /// How long an upload link works (`IMPORT_UPLOAD_URL_TTL_SECS`, 900).
    pub upload_url_ttl: Duration,
    /// How long an import and its file are kept (`IMPORT_TTL_DAYS`, 7, like exports: the bucket's
    /// lifecycle rule must match).
    pub ttl: Duration,
    /// Where a running import stops, records how far it got and asks to be continued, before
    /// the function's timeout (`IMPORT_RESERVE_SECS`, 60).
    pub reserve: Duration,
    /// A QUEUED or RUNNING import whose record has not moved for this long was abandoned (its
    /// run died) and may be started again (`IMPORT_ABANDONED_AFTER_SECS`, 3600: longer than the
    /// queue's three 15-minute deliveries).
    pub abandoned_after: Duration,
}

#[derive(Debug, Clone)]
pub struct Tables {
    pub connections: String,
    pub oauth_states: String,
    pub leads: String,
    pub sync_tasks: String,
}

#[derive(Debug, Clone)]
pub struct SecretIds {
    pub app_credentials: String,
    /// Each connection's tokens live in `<prefix><connectionId>`.
    pub connection_prefix: String,
}

#[derive(Debug, Clone)]
pub struct DouyinConfig {
    /// Hosts both the consent page and the OpenAPI (`https://open.douyin.com`).
    pub base_url: Url,
    /// Public app identifier; it appears in every consent URL, so it is config, not a secret.
    pub client_key: String,
    pub scopes: String,
    /// Renew the cached app `client_token` this long before it expires.
    pub client_token_renew_before: Duration,
}

#[derive(Debug, Clone)]
pub struct OceanEngineConfig {
    pub api_base_url: Url,
    /// Host of the consent page (`https://ad.oceanengine.com`).
    pub auth_base_url: Url,
    pub app_id: String,
    /// Optional `scope` for the consent page; empty sends none (the app's full grant).
    pub scopes: String,
    /// Ocean Engine publishes no error table; these code sets are configurable guesses.
    pub codes: OceanEngineCodes,
}

#[derive(Debug, Clone)]
pub struct OceanEngineCodes {
    pub throttled: BTreeSet<i64>,
    pub token_invalid: BTreeSet<i64>,
    pub auth_code_invalid: BTreeSet<i64>,
    pub bad_credentials: BTreeSet<i64>,
}

impl Default for OceanEngineCodes {
    fn default() -> Self {
        Self {
            throttled: [40100].into(),
            token_invalid: [40102, 40103, 40105, 40107].into(),
            auth_code_invalid: [40110].into(),
            bad_credentials: [40101].into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The public URL of the auth-callback route, registered with both platforms.
    pub callback_url: Url,
    /// Origins (`scheme://host[:port]`) a `redirectUrl` may point at.
    pub allowed_redirect_origins: Vec<String>,
    pub state_ttl: Duration,
    /// How long a consent waits for its confirmation before it is discarded.
    pub pending_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct FeiyuConfig {
    /// `https://feiyu.oceanengine.com` (the legacy host `https://crm.bytedance.com` serves the same path).
    pub base_url: Url,
    /// How `start_time` / `end_time` are written; the fact sheet could not settle it.
    pub time_format: FeiyuTimeFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeiyuTimeFormat {
    /// `YYYY-MM-DD`, whole days (the most common choice).
    Date,
    /// `YYYY-MM-DD HH:MM:SS`.
    DateTime,
    /// Unix seconds.
    Unix,
}

/// How lead syncs run: windows, limits, leases and the fan-out queue.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// After this many failed runs in a row a connection's `SyncFailing` event goes out.
    pub failing_after: u64,
    /// Each incremental window starts this far before the watermark, to catch late fields and edits.
    pub overlap: Duration,
    /// How far back a first (or FULL) sync reaches.
    pub backfill: Duration,
    /// A window whose total exceeds this is split: platforms page only so deep.
    pub max_window_rows: u64,
    /// 抖音来客 wants `end_time` at least 10 minutes behind now.
    pub laike_lag: Duration,
    /// Lag for the other windowed sources.
    pub default_lag: Duration,
    /// Page size for windowed sources (≤ 100 everywhere).
    pub page_size: u32,
    pub fans_page_size: u32,
    /// Pages of one window fetched at once after the first page gave the total.
    pub page_concurrency: usize,
    /// Connections one invocation syncs at once (an SQS batch).
    pub connection_concurrency: usize,
    /// Requests per second, per platform (shared by all connections in a container) and per connection.
    pub douyin_qps: f64,
    pub oceanengine_qps: f64,
    pub feiyu_qps: f64,
    pub connection_qps: f64,
    /// How long a run may hold a connection's lease before another run may take it over.
    pub lease_ttl: Duration,
    /// Stop starting new pages when the invocation has less than this left.
    /// Time kept for storing what one page brought (and writing its tokens); the deadline margin
    /// adds the longest a platform call can take (see [`SyncConfig::deadline_margin`]).
    pub store_budget: Duration,
    /// Pages fetched at once for a source whose answers carry no millisecond clock: one by one
    /// by default, since only then is the order answers arrive the order they were given (and a
    /// deletion shows in the totals).
    pub unclocked_page_concurrency: usize,
    /// Answers whose platform clocks are this close (ms) are not ordered by them
    /// (`SYNC_CLOCK_TOLERANCE_MS`, 100): when a platform stamps `now` against its read of the
    /// rows is not documented.
    pub clock_tolerance_ms: i64,
    pub task_ttl: Duration,
    /// Refresh an access token this long before it expires.
    pub token_refresh_ahead: Duration,
    /// Renew a Douyin refresh token this long before it expires (while renewals remain).
    pub refresh_renew_ahead: Duration,
    /// The Ocean Engine sources a connection feeds (`clue`, `life`).
    pub oceanengine_sources: Vec<crate::lead::LeadSource>,
    /// The fan-out queue; without it the scheduler syncs due connections itself.
    pub queue_url: Option<String>,
    /// Deliveries of one queue message before it goes to the dead-letter queue (the queue's
    /// `maxReceiveCount`): the last failed delivery closes its task as FAILED.
    pub max_receives: u32,
    /// The EventBridge bus on-demand `SyncRequested` events go to.
    pub event_bus: String,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl HttpConfig {
    /// The longest one platform call can take: every attempt timing out, and the backoff
    /// between them at its cap.
    pub fn worst_call(&self) -> Duration {
        let attempts = self.max_attempts.max(1);
        let waits = (1..attempts).map(|a| {
            let exp = self.retry_base.saturating_mul(1u32 << (a - 1).min(16));
            exp.min(self.retry_max)
        });
        // reqwest's timeout covers the whole request, connecting included.
        self.timeout * attempts + waits.sum::<Duration>()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        let config = Config {
            tables: Tables {
                connections: r.name("CONNECTIONS_TABLE", "douyin-leads-connections"),
                oauth_states: r.name("OAUTH_STATES_TABLE", "douyin-leads-oauth-states"),
                leads: r.name("LEADS_TABLE", "douyin-leads-leads"),
                sync_tasks: r.name("SYNC_TASKS_TABLE", "douyin-leads-sync-tasks"),
            },
            secrets: SecretIds {
                app_credentials: r.name("APP_CREDENTIALS_SECRET_ID", "douyin-leads/app-credentials"),
                connection_prefix: r.name("CONNECTION_SECRET_PREFIX", "douyin-leads/connections/"),
            },
            douyin: DouyinConfig {
                base_url: r.url("DOUYIN_BASE_URL", Some("https://open.douyin.com")),
                client_key: r.required("DOUYIN_CLIENT_KEY"),
                scopes: r.name("DOUYIN_SCOPES", "user_info,fans.list"),
                client_token_renew_before: r.secs("DOUYIN_CLIENT_TOKEN_RENEW_BEFORE_SECS", 600, 0..=3600),
            },
            oceanengine: OceanEngineConfig {
                api_base_url: r.url("OCEANENGINE_API_BASE_URL", Some("https://api.oceanengine.com")),
                auth_base_url: r.url("OCEANENGINE_AUTH_BASE_URL", Some("https://ad.oceanengine.com")),
                app_id: r.required("OCEANENGINE_APP_ID"),
                scopes: r.optional("OCEANENGINE_SCOPES").unwrap_or_default(),
                codes: OceanEngineCodes {
                    throttled: r.codes("OCEANENGINE_THROTTLE_CODES", OceanEngineCodes::default().throttled),
                    token_invalid: r.codes(
                        "OCEANENGINE_TOKEN_INVALID_CODES",
                        OceanEngineCodes::default().token_invalid,
                    ),
                    auth_code_invalid: r.codes(
                        "OCEANENGINE_AUTH_CODE_INVALID_CODES",
                        OceanEngineCodes::default().auth_code_invalid,
                    ),
                    bad_credentials: r.codes(
                        "OCEANENGINE_BAD_CREDENTIAL_CODES",
                        OceanEngineCodes::default().bad_credentials,
                    ),
                },
            },
            oauth: OAuthConfig {
                callback_url: r.url("OAUTH_CALLBACK_URL", None),
                allowed_redirect_origins: r.origins("ALLOWED_REDIRECT_ORIGINS"),
                state_ttl: r.secs("OAUTH_STATE_TTL_SECS", 600, 60..=3600),
                pending_ttl: r.secs("OAUTH_PENDING_TTL_SECS", 600, 60..=3600),
            },
            http: HttpConfig {
                timeout: r.millis("HTTP_TIMEOUT_MS", 5000, 100..=60_000),
                connect_timeout: r.millis("HTTP_CONNECT_TIMEOUT_MS", 2000, 50..=30_000),
                max_attempts: r.int("HTTP_MAX_ATTEMPTS", 3, 1..=10) as u32,
                retry_base: r.millis("HTTP_RETRY_BASE_MS", 200, 1..=10_000),
                retry_max: r.millis("HTTP_RETRY_MAX_MS", 2000, 1..=60_000),
            },
            feiyu: FeiyuConfig {
                base_url: r.url("FEIYU_BASE_URL", Some("https://feiyu.oceanengine.com")),
                time_format: r.feiyu_time_format("FEIYU_TIME_FORMAT"),
            },
            sync: SyncConfig {
                overlap: r.secs("SYNC_OVERLAP_MINS", 30, 0..=24 * 60) * 60,
                backfill: r.secs("SYNC_BACKFILL_DAYS", 30, 1..=365) * 86_400,
                max_window_rows: r.int("SYNC_MAX_WINDOW_ROWS", 10_000, 100..=1_000_000),
                laike_lag: r.secs("LAIKE_LAG_SECS", 600, 600..=86_400),
                default_lag: r.secs("SYNC_LAG_SECS", 60, 0..=86_400),
                page_size: r.int("SYNC_PAGE_SIZE", 100, 1..=100) as u32,
                fans_page_size: r.int("FANS_PAGE_SIZE", 20, 1..=100) as u32,
                page_concurrency: r.int("SYNC_PAGE_CONCURRENCY", 4, 1..=32) as usize,
                connection_concurrency: r.int("SYNC_CONNECTION_CONCURRENCY", 4, 1..=32) as usize,
                douyin_qps: r.rate("DOUYIN_QPS", 10.0),
                oceanengine_qps: r.rate("OCEANENGINE_QPS", 10.0),
                feiyu_qps: r.rate("FEIYU_QPS", 2.0),
                connection_qps: r.rate("CONNECTION_QPS", 5.0),
                lease_ttl: r.secs("SYNC_LEASE_SECS", 900, 60..=86_400),
                store_budget: r.secs("SYNC_DEADLINE_MARGIN_SECS", 5, 1..=600),
                unclocked_page_concurrency: r.int("SYNC_UNCLOCKED_PAGE_CONCURRENCY", 1, 1..=16) as usize,
                clock_tolerance_ms: r.int("SYNC_CLOCK_TOLERANCE_MS", 100, 0..=10_000) as i64,
                task_ttl: r.secs("SYNC_TASK_TTL_DAYS", 30, 1..=365) * 86_400,
                token_refresh_ahead: r.secs("TOKEN_REFRESH_AHEAD_SECS", 3600, 0..=7 * 86_400),
                refresh_renew_ahead: r.secs("REFRESH_TOKEN_RENEW_AHEAD_DAYS", 5, 0..=29) * 86_400,
                oceanengine_sources: r.oceanengine_sources("OCEANENGINE_LEAD_SOURCES"),
                queue_url: r.optional("SYNC_QUEUE_URL"),
                max_receives: r.int("SYNC_MAX_RECEIVES", 3, 1..=1000) as u32,
                failing_after: r.int("SYNC_FAILING_AFTER", 3, 1..=100),
                event_bus: r.name("LEADS_EVENT_BUS", "default"),
            },
            read: ReadConfig {
                limits: crate::lead_query::ReadLimits {
                    scan_budget: r.int("LEADS_SCAN_BUDGET", 300, 10..=5_000) as u32,
                    ..crate::lead_query::ReadLimits::default()
                },
                sync_export_rows: r.int("LEADS_SYNC_EXPORT_ROWS", 5_000, 1..=20_000),
                export_bucket: r.name("EXPORT_BUCKET", "douyin-leads-exports"),
                export_queue_url: r.optional("EXPORT_QUEUE_URL"),
                export_url_ttl: r.secs("EXPORT_URL_TTL_SECS", 900, 60..=3600),
                export_ttl: r.secs("EXPORT_TTL_DAYS", 7, 1..=30) * 86_400,
                cursor_key: r
                    .optional("LEADS_CURSOR_KEY")
                    .unwrap_or_else(|| format!("cursor:{}", r.name("LEADS_TABLE", "douyin-leads-leads"))),
            },
            import: ImportConfig {
                queue_url: r.optional("IMPORT_QUEUE_URL"),
                max_bytes: r.int("IMPORT_MAX_MB", 50, 1..=500) * 1024 * 1024,
                upload_url_ttl: r.secs("IMPORT_UPLOAD_URL_TTL_SECS", 900, 60..=3600),
                ttl: r.secs("IMPORT_TTL_DAYS", 7, 1..=30) * 86_400,
                reserve: r.secs("IMPORT_RESERVE_SECS", 60, 5..=600),
                abandoned_after: r.secs("IMPORT_ABANDONED_AFTER_SECS", 3600, 60..=86_400),
            },
            function: FunctionConfig {
                timeout: r
                    .optional("FUNCTION_TIMEOUT_SECS")
                    .map(|_| r.secs("FUNCTION_TIMEOUT_SECS", 10, 1..=900)),
                response_reserve: r.millis("FUNCTION_RESPONSE_RESERVE_MS", 500, 0..=10_000),
            },
            outbound: OutboundConfig {
                table: r.name("WEBHOOKS_TABLE", "douyin-leads-webhooks"),
                queue_url: r.optional("WEBHOOK_QUEUE_URL"),
                dead_letter_url: r.optional("WEBHOOK_DEAD_LETTER_URL"),
                allow_http: r.flag("WEBHOOK_ALLOW_HTTP", false),
                allow_private: r.flag("WEBHOOK_ALLOW_PRIVATE_TARGETS", false),
                ports: r.ports("WEBHOOK_ALLOWED_PORTS", &[443, 8443]),
                timeout: r.millis("WEBHOOK_TIMEOUT_MS", 5000, 500..=30_000),
                response_cap: r.int("WEBHOOK_RESPONSE_CAP_BYTES", 4096, 256..=65_536) as usize,
                retry_horizon: r.secs("WEBHOOK_RETRY_HOURS", 25, 24..=96) * 3600,
                disable_after: r.secs("WEBHOOK_DISABLE_AFTER_HOURS", 72, 1..=720) * 3600,
                first_retry: r.secs("WEBHOOK_FIRST_RETRY_SECS", 30, 1..=3600),
                max_retry: r.secs("WEBHOOK_MAX_RETRY_SECS", 6 * 3600, 60..=12 * 3600),
                max_queue_delay: r.secs("WEBHOOK_QUEUE_MAX_DELAY_SECS", 900, 0..=900),
                bot_per_minute: r.int("BOT_MESSAGES_PER_MINUTE", 18, 1..=100) as u32,
                max_subscriptions: r.int("WEBHOOK_MAX_PER_TENANT", 20, 1..=200) as usize,
                lead_link_template: r.optional("BOT_LEAD_LINK_TEMPLATE"),
            },
            writeback: r.writeback(),
            spend: crate::spend::sync::SpendConfig {
                levels: r.spend_levels("SPEND_LEVELS"),
                repull_days: r.int("SPEND_REPULL_DAYS", 7, 1..=30) as i64,
                backfill_days: r.int("SPEND_BACKFILL_DAYS", 30, 1..=365) as i64,
                table: r.name("SPEND_TABLE", "douyin-leads-spend"),
            },
            tenant_claim: r.name("TENANT_CLAIM", "sub"),
        };
        if let Some(timeout) = config.function.timeout {
            let needed = config.http.worst_call() + config.function.response_reserve;
            if needed > timeout {
                r.problems.push(format!(
                    "FUNCTION_TIMEOUT_SECS: the function times out after {} s, but one platform call may take {:.1} s \
                     (HTTP_MAX_ATTEMPTS {} x HTTP_TIMEOUT_MS {} plus backoff up to HTTP_RETRY_MAX_MS) and \
                     FUNCTION_RESPONSE_RESERVE_MS {} is kept to answer: raise the function's Timeout in \
                     template.yaml (and FUNCTION_TIMEOUT_SECS with it) or lower the retry settings",
                    timeout.as_secs(),
                    needed.as_secs_f64(),
                    config.http.max_attempts,
                    config.http.timeout.as_millis(),
                    config.function.response_reserve.as_millis(),
                ));
            }
        }
        if r.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems: r.problems })
        }
    }
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&mut self, name: &str) -> String {
        self.optional(name).unwrap_or_else(|| {
            self.problems.push(format!("{name} is required but not set"));
            String::new()
        })
    }

    fn name(&mut self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }

    fn url(&mut self, name: &str, default: Option<&str>) -> Url {
        let fallback = || Url::parse("http://invalid.local").expect("static URL parses");
        let Some(raw) = self.optional(name).or(default.map(str::to_owned)) else {
            self.problems.push(format!("{name} is required but not set"));
            return fallback();
        };
        match Url::parse(&raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => url,
            _ => {
                self.problems
                    .push(format!("{name} must be an absolute http(s) URL, got {raw:?}"));
                fallback()
            }
        }
    }

    fn int(&mut self, name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> u64 {
        let Some(raw) = self.optional(name) else {
            return default;
        };
        match raw.parse::<u64>() {
            Ok(v) if range.contains(&v) => v,
            _ => {
                self.problems.push(format!(
                    "{name} must be an integer in {}..={}, got {raw:?}",
                    range.start(),
                    range.end()
                ));
                default
            }
        }
    }

    fn secs(&mut self, name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Duration {
        Duration::from_secs(self.int(name, default, range))
    }

    fn millis(&mut self, name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Duration {
        Duration::from_millis(self.int(name, default, range))
    }

    /// Status write-back: each platform's mapping (`STATUS=STATE,…`), Feiyu's switch.
    fn writeback(&mut self) -> crate::writeback::WriteBackConfig {
        let mut c = crate::writeback::WriteBackConfig::defaults();
        if let Some(raw) = self.optional("WRITEBACK_OCEANENGINE_CLUE_STATES") {
            match crate::writeback::parse_mapping(&raw) {
                Ok(m) => c.clue = m,
                Err(e) => self.problems.push(format!("WRITEBACK_OCEANENGINE_CLUE_STATES: {e}")),
            }
        }
        if let Some(raw) = self.optional("WRITEBACK_OCEANENGINE_LIFE_STATES") {
            match crate::writeback::parse_mapping(&raw) {
                Ok(m) => c.life = m,
                Err(e) => self.problems.push(format!("WRITEBACK_OCEANENGINE_LIFE_STATES: {e}")),
            }
        }
        if let Some(raw) = self.optional("WRITEBACK_FEIYU_STATES") {
            match crate::writeback::parse_mapping(&raw) {
                Ok(m) => c.feiyu = m,
                Err(e) => self.problems.push(format!("WRITEBACK_FEIYU_STATES: {e}")),
            }
        }
        c.feiyu_enabled = self.flag("WRITEBACK_FEIYU_ENABLED", false);
        c.clue_source = self.int("WRITEBACK_CLUE_SOURCE", 1, 0..=10) as i64;
        if let Some(raw) = self.optional("WRITEBACK_LIFE_INVALID_REASONS") {
            c.life_invalid_reasons = raw
                .split(',')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect();
        }
        c
    }

    /// Which Ocean Engine reports spend is pulled from: `ad`, `promotion`, `local_promotion`
    /// (all three by default), or `none`.
    fn spend_levels(&mut self, name: &str) -> Vec<crate::spend::SpendLevel> {
        let raw = self
            .optional(name)
            .unwrap_or_else(|| "ad,promotion,local_promotion".to_owned());
        if raw == "none" {
            return Vec::new();
        }
        let mut levels = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match crate::spend::SpendLevel::parse(entry) {
                Some(level) if !levels.contains(&level) => levels.push(level),
                Some(_) => {}
                None => self.problems.push(format!(
                    "{name} entries must be ad, promotion or local_promotion (or the whole value none), got {entry:?}"
                )),
            }
        }
        levels
    }

    fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.optional(name).as_deref() {
            None => default,
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => {
                self.problems
                    .push(format!("{name} must be true or false, got {other:?}"));
                default
            }
        }
    }

    fn ports(&mut self, name: &str, default: &[u16]) -> Vec<u16> {
        let Some(raw) = self.optional(name) else {
            return default.to_vec();
        };
        let parsed: Result<Vec<u16>, _> = raw.split(',').map(|p| p.trim().parse::<u16>()).collect();
        match parsed {
            Ok(ports) if !ports.is_empty() && !ports.contains(&0) => ports,
            _ => {
                self.problems
                    .push(format!("{name} must be a comma-separated list of ports, got {raw:?}"));
                default.to_vec()
            }
        }
    }

    /// A positive rate in requests per second.
    fn rate(&mut self, name: &str, default: f64) -> f64 {
        let Some(raw) = self.optional(name) else {
            return default;
        };
        match raw.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 && v <= 10_000.0 => v,
            _ => {
                self.problems.push(format!(
                    "{name} must be a number of requests per second in (0, 10000], got {raw:?}"
                ));
                default
            }
        }
    }

    fn feiyu_time_format(&mut self, name: &str) -> FeiyuTimeFormat {
        match self.optional(name).as_deref() {
            None | Some("date") => FeiyuTimeFormat::Date,
            Some("datetime") => FeiyuTimeFormat::DateTime,
            Some("unix") => FeiyuTimeFormat::Unix,
            Some(other) => {
                self.problems
                    .push(format!("{name} must be one of date, datetime, unix; got {other:?}"));
                FeiyuTimeFormat::Date
            }
        }
    }

    fn oceanengine_sources(&mut self, name: &str) -> Vec<crate::lead::LeadSource> {
        use crate::lead::LeadSource;
        let raw = self.optional(name).unwrap_or_else(|| "clue,life".to_owned());
        let mut sources = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry {
                "clue" => sources.push(LeadSource::OceanEngineClue),
                "life" => sources.push(LeadSource::OceanEngineLife),
                other => self
                    .problems
                    .push(format!("{name} entries must be clue or life, got {other:?}")),
            }
        }
        sources
    }

    fn codes(&mut self, name: &str, default: BTreeSet<i64>) -> BTreeSet<i64> {
        let Some(raw) = self.optional(name) else {
            return default;
        };
        let parsed: Result<BTreeSet<i64>, _> = raw.split(',').map(|c| c.trim().parse::<i64>()).collect();
        parsed.unwrap_or_else(|_| {
            self.problems.push(format!(
                "{name} must be a comma-separated list of integers, got {raw:?}"
            ));
            default
        })
    }

    /// Each entry must be a bare origin; a path would suggest a prefix match we do not do.
    fn origins(&mut self, name: &str) -> Vec<String> {
        let Some(raw) = self.optional(name) else {
            return Vec::new();
        };
        let mut origins = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match Url::parse(entry) {
                Ok(url)
                    if matches!(url.scheme(), "http" | "https")
                        && url.host().is_some()
                        && url.path() == "/"
                        && url.query().is_none() =>
                {
                    origins.push(url.origin().ascii_serialization())
                }
                _ => self.problems.push(format!(
                    "{name} entries must be origins like https://app.example.com, got {entry:?}"
                )),
            }
        }
        origins
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub fn minimal_env() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("DOUYIN_CLIENT_KEY", "awtestkey"),
            ("OCEANENGINE_APP_ID", "1700000000000001"),
            (
                "OAUTH_CALLBACK_URL",
                "https://api.example.com/api/v1/lead/douyin/auth/callback",
            ),
        ])
    }

    fn load(env: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| env.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn minimal_env_gets_sane_defaults() {
        let c = load(&minimal_env()).unwrap();
        assert_eq!(c.tables.connections, "douyin-leads-connections");
        assert_eq!(c.oauth.state_ttl, Duration::from_secs(600));
        assert_eq!(c.douyin.base_url.as_str(), "https://open.douyin.com/");
        assert_eq!(c.http.max_attempts, 3);
        assert_eq!(c.tenant_claim, "sub");
        assert_eq!(c.sync.overlap, Duration::from_secs(30 * 60));
        assert_eq!(c.sync.backfill, Duration::from_secs(30 * 86_400));
        assert_eq!(c.sync.laike_lag, Duration::from_secs(600));
        assert_eq!(c.feiyu.time_format, FeiyuTimeFormat::Date);
        assert_eq!(c.sync.oceanengine_sources.len(), 2);
        assert!(c.sync.queue_url.is_none());
        assert!(c.oauth.allowed_redirect_origins.is_empty());
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let mut env = minimal_env();
        env.remove("DOUYIN_CLIENT_KEY");
        env.insert("HTTP_MAX_ATTEMPTS", "zero");
        env.insert("DOUYIN_QPS", "-1");
        env.insert("FEIYU_TIME_FORMAT", "iso");
        env.insert("OAUTH_CALLBACK_URL", "not a url");
        env.insert(
            "ALLOWED_REDIRECT_ORIGINS",
            "https://ok.example.com, https://bad.example.com/path",
        );
        let err = load(&env).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 6, "{text}");
        for name in [
            "DOUYIN_QPS",
            "FEIYU_TIME_FORMAT",
            "DOUYIN_CLIENT_KEY",
            "HTTP_MAX_ATTEMPTS",
            "OAUTH_CALLBACK_URL",
            "ALLOWED_REDIRECT_ORIGINS",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
    }

    #[test]
    fn a_function_timeout_that_cannot_hold_one_platform_call_is_refused() {
        let mut env = minimal_env();
        // 3 attempts of 5 s plus backoff (0.2 s + 0.4 s) and 0.5 s to answer: 16.1 s.
        env.insert("FUNCTION_TIMEOUT_SECS", "10");
        let text = load(&env).unwrap_err().to_string();
        assert!(
            text.contains("FUNCTION_TIMEOUT_SECS") && text.contains("16.1 s"),
            "{text}"
        );
        env.insert("FUNCTION_TIMEOUT_SECS", "20");
        assert_eq!(load(&env).unwrap().function.timeout, Some(Duration::from_secs(20)));
        env.insert("HTTP_TIMEOUT_MS", "2000");
        env.insert("FUNCTION_TIMEOUT_SECS", "10");
        assert!(load(&env).is_ok(), "fewer retry seconds fit a shorter timeout");
        env.remove("FUNCTION_TIMEOUT_SECS");
        assert!(load(&env).unwrap().function.timeout.is_none(), "unknown outside Lambda");
    }

    #[test]
    fn origins_are_normalised() {
        let mut env = minimal_env();
        env.insert(
            "ALLOWED_REDIRECT_ORIGINS",
            "https://App.Example.com/, http://localhost:3000",
        );
        let c = load(&env).unwrap();
        assert_eq!(
            c.oauth.allowed_redirect_origins,
            vec!["https://app.example.com", "http://localhost:3000"]
        );
    }
}

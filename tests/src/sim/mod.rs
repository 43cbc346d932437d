//! A platform simulator: a real HTTP server on 127.0.0.1 that plays the Douyin open platform and
//! the Ocean Engine Marketing API as platform-apis.md describes them (§1, §3.2, §7), with
//! switches for the faults our clients must survive.
//!
//! One server answers for both platforms (their paths do not overlap). It keeps its own clock,
//! which tests move forward to expire codes and tokens without sleeping.

pub mod adversary;
mod douyin;
mod fans;
mod faults;
mod feiyu;
mod laike;
mod lead_api;
mod leads;
mod oceanengine;
mod oe_leads;
mod params;
pub mod reports;
pub mod writeback;

pub use faults::Fault;
pub use leads::{SimLead, SimSource};

use axum::Router;
use chrono::{DateTime, Duration, Utc};
use faults::Faults;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The app registered on both platforms, and how long what they issue lives.
#[derive(Debug, Clone)]
pub struct SimApp {
    pub douyin_client_key: String,
    pub douyin_client_secret: String,
    pub oceanengine_app_id: String,
    pub oceanengine_secret: String,
    pub code_ttl: Duration,
    pub douyin_access_ttl: Duration,
    pub douyin_refresh_ttl: Duration,
    pub client_token_ttl: Duration,
    pub oceanengine_access_ttl: Duration,
    pub oceanengine_refresh_ttl: Duration,
}

impl Default for SimApp {
    fn default() -> Self {
        Self {
            douyin_client_key: "awsimclientkey01".into(),
            // 32 characters: Douyin's local phone decryption uses the secret as an AES-256 key.
            douyin_client_secret: "sim-douyin-secret-0123456789abcd".into(),
            oceanengine_app_id: "1700000000000001".into(),
            oceanengine_secret: "sim-oceanengine-secret-0123456789".into(),
            code_ttl: Duration::minutes(10),
            douyin_access_ttl: Duration::days(15),
            douyin_refresh_ttl: Duration::days(30),
            client_token_ttl: Duration::hours(2),
            oceanengine_access_ttl: Duration::days(1),
            oceanengine_refresh_ttl: Duration::days(30),
        }
    }
}

pub(crate) struct SimState {
    pub app: SimApp,
    offset: Mutex<Duration>,
    /// Seeded leads end here: half an hour before the simulator started.
    lead_base: DateTime<Utc>,
    pub data: Mutex<Data>,
    pub faults: Mutex<Faults>,
}

#[derive(Default)]
pub(crate) struct Data {
    pub seq: u64,
    pub douyin_codes: HashMap<String, Grant>,
    pub douyin_access: HashMap<String, Issued>,
    pub douyin_refresh: HashMap<String, DouyinRefresh>,
    pub client_tokens: Vec<ClientToken>,
    pub client_token_issues: Vec<DateTime<Utc>>,
    pub oceanengine_codes: HashMap<String, Grant>,
    pub oceanengine_access: HashMap<String, Issued>,
    pub oceanengine_refresh: HashMap<String, Issued>,
    /// Whether the app holds Douyin's `renew_refresh_token` permission.
    pub no_renew_permission: bool,
    pub leads: leads::Book,
    /// Feiyu accounts by console token.
    pub feiyu: HashMap<String, feiyu::FeiyuAccount>,
    /// Ocean Engine: the other accounts a token's advertiser may read.
    pub granted: HashMap<String, Vec<String>>,
    /// Status write-backs accepted, oldest first.
    pub callbacks: Vec<writeback::Callback>,
}

/// A consent the user gave: who, with what scopes, until when the code works.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub account: String,
    pub scope: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub account: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct DouyinRefresh {
    pub account: String,
    pub scope: String,
    pub expires_at: DateTime<Utc>,
    pub renewals: u32,
    pub access_token: String,
}

#[derive(Debug, Clone)]
pub(crate) struct ClientToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// Set when a newer token was issued: the old one keeps working for 5 more minutes.
    pub superseded_until: Option<DateTime<Utc>>,
}

impl SimState {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + *lock(&self.offset)
    }

    pub fn data(&self) -> MutexGuard<'_, Data> {
        lock(&self.data)
    }

    pub fn next_token(&self, data: &mut Data, prefix: &str) -> String {
        data.seq += 1;
        let mut random = [0u8; 12];
        getrandom::fill(&mut random).expect("OS randomness");
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        format!("{prefix}{hex}{:06}", data.seq)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running simulator. Dropping it stops the server. Lead switches come from [`SimHandle`].
pub struct Simulator {
    state: Arc<SimState>,
    handle: SimHandle,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::ops::Deref for Simulator {
    type Target = SimHandle;
    fn deref(&self) -> &SimHandle {
        &self.handle
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Shared handle to a simulator's state, for a simulator mounted inside another router.
#[derive(Clone)]
pub struct SimHandle(Arc<SimState>);

impl SimHandle {
    pub fn new(app: SimApp) -> Self {
        let now = Utc::now();
        Self(Arc::new(SimState {
            app,
            offset: Mutex::new(Duration::zero()),
            lead_base: now - Duration::minutes(30) - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos())),
            data: Mutex::default(),
            faults: Mutex::default(),
        }))
    }

    /// The simulator's routes, to serve on their own or nest under a prefix.
    pub fn router(&self) -> Router {
        let state = self.0.clone();
        Router::new()
            .merge(douyin::routes())
            .merge(oceanengine::routes())
            .merge(laike::routes())
            .merge(oe_leads::routes())
            .merge(feiyu::routes())
            .merge(fans::routes())
            .merge(writeback::routes())
            .merge(reports::routes())
            .layer(axum::middleware::from_fn_with_state(state.clone(), faults::apply))
            .with_state(state)
    }
}

/// Lead data and the lead endpoints' fault switches.
impl SimHandle {
    /// `count` deterministic leads for (source, account), spread evenly over the `span` before
    /// the lead base (half an hour before the simulator started). Calling again adds more.
    pub fn seed_leads(&self, source: SimSource, account: &str, count: usize, span: Duration) {
        let base = self.0.lead_base;
        self.0.data().leads.seed(source, account, count, span, base);
    }

    /// What the platform holds now for (source, account), newest first: what a full pull stores.
    pub fn leads(&self, source: SimSource, account: &str) -> Vec<SimLead> {
        self.0.data().leads.all(source, account)
    }

    /// Late fields and follow-ups: the `n` newest leads get `convert_status`, `app_name` and a new `modify_time`.
    pub fn change_leads(&self, source: SimSource, account: &str, n: usize) {
        let now = self.0.now();
        self.0.data().leads.change(source, account, n, now);
    }

    /// `n` new leads created 20 minutes ago (inside every source's window).
    pub fn insert_leads(&self, source: SimSource, account: &str, n: usize) {
        let at = self.0.now() - Duration::minutes(20);
        self.0.data().leads.insert(source, account, n, at);
    }

    pub fn add_feiyu_account(&self, advertiser_id: &str, token: &str, signature_key: &str) {
        self.0.data().feiyu.insert(
            token.to_owned(),
            feiyu::FeiyuAccount {
                advertiser_id: advertiser_id.to_owned(),
                signature_key: signature_key.to_owned(),
            },
        );
    }

    /// The next lead request for a page after the first inserts `n` new leads first, once.
    pub fn insert_while_paging(&self, n: usize) {
        lock(&self.0.faults).insert_while_paging = Some(n);
    }

    /// The next request for page `page` waits `delay`, then `insert` leads created 15 minutes
    /// ago appear, then it is answered: what the other pages answered meanwhile is now stale.
    pub fn script_page(&self, page: u32, delay: std::time::Duration, insert: usize) {
        lock(&self.0.faults).page_script.insert(page, (delay, insert));
    }

    /// Every lead request from now on meets this adversary (see [`adversary`]).
    pub fn set_adversary(&self, adversary: Option<adversary::Adversary>) {
        lock(&self.0.faults).adversary = adversary;
    }

    /// 来客 sends lead `clue_id` with a remark of `bytes` bytes.
    pub fn bloat_lead(&self, clue_id: &str, bytes: usize) {
        lock(&self.0.faults).bloated = Some((clue_id.to_owned(), bytes));
    }

    /// Turns the adversary off (a quiescent platform) or on again; returns the leads it deleted.
    pub fn calm_adversary(&self, calm: bool) -> Vec<String> {
        let mut faults = lock(&self.0.faults);
        faults.string_numbers = false;
        faults.decrypt_failures = false;
        match faults.adversary.as_mut() {
            Some(a) => {
                a.active = !calm;
                a.deleted.clone()
            }
            None => Vec::new(),
        }
    }

    /// Ocean Engine: a token of `owner` may also read these (local) accounts.
    pub fn grant_accounts(&self, owner: &str, accounts: &[String]) {
        self.0.data().granted.insert(owner.to_owned(), accounts.to_vec());
    }

    /// Each page after the first starts with the previous page's last row.
    pub fn set_duplicate_across_pages(&self, on: bool) {
        lock(&self.0.faults).duplicate_across_pages = on;
    }

    /// After `after` more lead requests, the next `count` answer the platform's throttle code.
    pub fn throttle_after(&self, after: u64, count: u64) {
        lock(&self.0.faults).throttle_after = (count > 0).then_some((after, count));
    }

    /// The next `times` requests for page number `page` answer HTTP `status`.
    pub fn fail_page(&self, page: u32, status: u16, times: u32) {
        lock(&self.0.faults).fail_pages.insert(page, (status, times));
    }

    /// 来客 phones come as `Enc.` ciphertexts that only the decrypt endpoint opens.
    pub fn set_enc_phones(&self, on: bool) {
        lock(&self.0.faults).enc_phones = on;
    }

    /// The decrypt endpoint fails every ciphertext.
    pub fn set_decrypt_failures(&self, on: bool) {
        lock(&self.0.faults).decrypt_failures = on;
    }

    /// Every access token and client token issued so far stops working (refresh tokens live on).
    pub fn expire_access_tokens(&self) {
        let mut data = self.0.data();
        data.douyin_access.clear();
        data.oceanengine_access.clear();
        data.client_tokens.clear();
    }

    /// Requests served whose path ends with `suffix`.
    pub fn requests_to(&self, suffix: &str) -> u64 {
        lock(&self.0.faults)
            .per_path
            .iter()
            .filter(|(path, _)| path.ends_with(suffix))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Simulator {
    /// A handle on the simulator's state that outlives borrows of it.
    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    pub async fn start() -> Self {
        Self::start_with(SimApp::default()).await
    }

    pub async fn start_with(app: SimApp) -> Self {
        let handle = SimHandle::new(app);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound socket has an address");
        let router = handle.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            state: handle.0.clone(),
            handle,
            addr,
            task,
        }
    }

    /// Base URL of both platforms (consent pages and APIs).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn app(&self) -> &SimApp {
        &self.state.app
    }

    /// Moves the simulator's clock forward: codes and tokens expire as if time had passed.
    pub fn advance(&self, by: Duration) {
        *lock(&self.state.offset) += by;
    }

    /// Queues faults; each API request (consent pages excepted) takes the next one.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state.faults).queue.extend(faults);
    }

    /// Numbers such as `expires_in` and `error_code` are sent as strings from now on.
    pub fn set_string_numbers(&self, on: bool) {
        lock(&self.state.faults).string_numbers = on;
    }

    /// Douyin errors use the old envelope (`data` + `extra.logid`) instead of `message: "error"`.
    pub fn set_old_error_envelope(&self, on: bool) {
        lock(&self.state.faults).old_error_envelope = on;
    }

    /// Every API request waits this long first.
    pub fn set_latency(&self, latency: std::time::Duration) {
        lock(&self.state.faults).latency = latency;
    }

    pub fn revoke_renew_permission(&self) {
        self.state.data().no_renew_permission = true;
    }

    /// API requests served so far (consent pages excluded).
    pub fn api_requests(&self) -> u64 {
        lock(&self.state.faults).served
    }

    /// Every token the simulator ever issued, to prove none of them leaks.
    pub fn issued_tokens(&self) -> Vec<String> {
        let data = self.state.data();
        data.douyin_access
            .keys()
            .chain(data.douyin_refresh.keys())
            .chain(data.oceanengine_access.keys())
            .chain(data.oceanengine_refresh.keys())
            .cloned()
            .chain(data.client_tokens.iter().map(|c| c.token.clone()))
            .collect()
    }

    pub fn douyin_access_token_valid(&self, token: &str) -> bool {
        let now = self.state.now();
        self.state
            .data()
            .douyin_access
            .get(token)
            .is_some_and(|t| t.expires_at > now)
    }

    pub fn oceanengine_access_token_valid(&self, token: &str) -> bool {
        let now = self.state.now();
        self.state
            .data()
            .oceanengine_access
            .get(token)
            .is_some_and(|t| t.expires_at > now)
    }

    pub fn oceanengine_refresh_token_valid(&self, token: &str) -> bool {
        let now = self.state.now();
        self.state
            .data()
            .oceanengine_refresh
            .get(token)
            .is_some_and(|t| t.expires_at > now)
    }

    pub fn client_token_valid(&self, token: &str) -> bool {
        douyin::client_token_valid(&self.state, token)
    }
}

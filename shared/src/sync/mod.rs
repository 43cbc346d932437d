//! The sync engine: pulls every source of a connection into the lead store, and the fan-out
//! that spreads due connections over a queue.

pub mod catalog;
pub mod engine;
pub mod fanout;
pub mod rate_limit;
pub mod reconcile;
pub mod requests;
pub mod tokens;
pub mod windows;

pub use engine::SyncEngine;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::{ConnectionId, ConnectionStatus, TenantId};
use crate::platform::douyin::DouyinClient;
use crate::platform::http::PlatformHttp;
use crate::platform::oceanengine::OceanEngineClient;
use crate::store::{AppCredentialsSource, ConnectionStore, LeadStore, SyncLedger, TaskStore, TokenVault};
use crate::task::{Strategy, SyncTask, Trigger};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Everything a sync reads and writes.
#[derive(Clone)]
pub struct SyncStores {
    pub connections: Arc<dyn ConnectionStore>,
    pub ledger: Arc<dyn SyncLedger>,
    pub leads: Arc<dyn LeadStore>,
    pub tasks: Arc<dyn TaskStore>,
    pub vault: Arc<dyn TokenVault>,
    pub credentials: Arc<dyn AppCredentialsSource>,
    /// Ocean Engine spend rows (cost per lead).
    pub spend: Arc<dyn crate::spend::store::SpendStore>,
}

/// One connection to sync: the SQS message body and the `SyncRequested` event detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    pub tenant: TenantId,
    pub connection_id: ConnectionId,
    /// Set when the API created the task first (on-demand syncs); schedules get a fresh one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default = "default_trigger")]
    pub trigger: Trigger,
    #[serde(default = "default_strategy")]
    pub strategy: Strategy,
}

impl SyncRequest {
    /// The request a schedule makes for `connection`: a new task, incremental.
    pub fn scheduled(connection: &crate::domain::Connection) -> Self {
        Self {
            tenant: connection.tenant.clone(),
            connection_id: connection.id.clone(),
            task_id: None,
            trigger: Trigger::Schedule,
            strategy: Strategy::Incremental,
        }
    }
}

fn default_trigger() -> Trigger {
    Trigger::Manual
}

fn default_strategy() -> Strategy {
    Strategy::Incremental
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    ConnectionNotFound,
    NotActive(ConnectionStatus),
    AlreadyRunning { task_id: String },
    TaskAlreadyFinished,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::ConnectionNotFound => f.write_str("the connection does not exist"),
            SkipReason::NotActive(status) => write!(f, "the connection is {}", status.as_str()),
            SkipReason::AlreadyRunning { task_id } => {
                write!(f, "another sync of this connection is running ({task_id})")
            }
            SkipReason::TaskAlreadyFinished => f.write_str("the task already ran"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum SyncOutcome {
    Ran(SyncTask),
    Skipped { reason: SkipReason, task: Option<SyncTask> },
}

impl SyncEngine {
    pub fn new(config: &Config, stores: SyncStores, clock: Arc<dyn Clock>) -> Self {
        let http = PlatformHttp::new(&config.http);
        let douyin = DouyinClient::new(http.clone(), &config.douyin);
        let oceanengine = OceanEngineClient::new(http.clone(), &config.oceanengine);
        let sync = &config.sync;
        let chrono = |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
        Self {
            catalog: catalog::SourceCatalog::new(config, &http, &douyin, stores.credentials.clone(), clock.clone()),
            tokens: tokens::TokenKeeper {
                douyin,
                oceanengine,
                vault: stores.vault.clone(),
                credentials: stores.credentials.clone(),
                ledger: stores.ledger.clone(),
                clock: clock.clone(),
                refresh_ahead: chrono(sync.token_refresh_ahead),
                renew_ahead: chrono(sync.refresh_renew_ahead),
            },
            limits: engine::PlatformLimits {
                douyin: rate_limit::TokenBucket::new(sync.douyin_qps),
                oceanengine: rate_limit::TokenBucket::new(sync.oceanengine_qps),
                feiyu: rate_limit::TokenBucket::new(sync.feiyu_qps),
            },
            spend: crate::spend::sync::SpendSync {
                reports: crate::spend::reports::ReportClient {
                    http: http.clone(),
                    base: config.oceanengine.api_base_url.clone(),
                    codes: config.oceanengine.codes.clone(),
                },
                store: stores.spend.clone(),
                config: config.spend.clone(),
            },
            margin: config.http.worst_call() + sync.store_budget,
            config: sync.clone(),
            stores,
            clock,
            pending: (
                config.secrets.connection_prefix.clone(),
                chrono(config.oauth.pending_ttl),
            ),
        }
    }

    /// Discards the pending grants nobody confirmed in time (the scheduler's tick does this
    /// besides fanning out syncs).
    pub async fn sweep_pending_grants(&self) -> Result<u32, crate::store::StoreError> {
        let (prefix, ttl) = &self.pending;
        crate::connect::sweep::sweep_pending(self.stores.vault.as_ref(), prefix, *ttl, self.clock.now()).await
    }

    pub fn config(&self) -> &crate::config::SyncConfig {
        &self.config
    }

    /// How long before the invocation's deadline the run stops starting calls: the longest a
    /// platform call can take (every attempt timing out, backoff between) plus the time to store
    /// its result. A page, a token refresh or a rotation that starts later might not finish.
    pub fn deadline_margin(&self) -> std::time::Duration {
        self.margin
    }

    pub fn stores(&self) -> &SyncStores {
        &self.stores
    }
}

impl SyncStores {
    /// DynamoDB and Secrets Manager, as deployed.
    pub fn aws(aws: &crate::aws::AwsClients, config: &Config) -> Self {
        use crate::store::dynamo::DynamoConnectionStore;
        use crate::store::dynamo_leads::DynamoLeadStore;
        use crate::store::dynamo_sync::DynamoTaskStore;
        use crate::store::secrets::{SecretsManagerAppCredentials, SecretsManagerVault};
        let connections = Arc::new(DynamoConnectionStore::new(
            aws.dynamodb.clone(),
            &config.tables.connections,
        ));
        Self {
            connections: connections.clone(),
            ledger: connections,
            leads: Arc::new(DynamoLeadStore::new(aws.dynamodb.clone(), &config.tables.leads)),
            tasks: Arc::new(DynamoTaskStore::new(aws.dynamodb.clone(), &config.tables.sync_tasks)),
            vault: Arc::new(SecretsManagerVault::new(aws.secrets.clone())),
            credentials: Arc::new(SecretsManagerAppCredentials::new(
                aws.secrets.clone(),
                &config.secrets.app_credentials,
            )),
            spend: Arc::new(crate::spend::store::DynamoSpendStore::new(
                aws.dynamodb.clone(),
                &config.spend.table,
            )),
        }
    }
}

impl SyncStores {
    /// The embedded stores, for the local run and fast tests.
    pub fn embedded(
        connections: Arc<crate::store::memory::MemoryConnectionStore>,
        vault: Arc<crate::store::memory::MemoryTokenVault>,
    ) -> Self {
        Self {
            connections: connections.clone(),
            ledger: connections,
            leads: Arc::new(crate::store::memory_leads::MemoryLeadStore::default()),
            tasks: Arc::new(crate::store::memory_leads::MemoryTaskStore::default()),
            vault: vault.clone(),
            credentials: vault,
            spend: Arc::new(crate::spend::store::MemorySpendStore::default()),
        }
    }
}

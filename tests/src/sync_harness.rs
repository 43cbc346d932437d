//! A simulator, stores and configuration wired for lead-sync tests and the benchmark: on moto
//! (DynamoDB requests counted) or on the embedded stores.

use crate::app::{StoreSet, simulator_env};
use crate::ddb_counter::{RequestCounter, counted_client};
use crate::moto::{self, Tables};
use crate::sim::Simulator;
use shared::aws::AwsClients;
use shared::clock::SystemClock;
use shared::domain::{AppCredentials, Connection};
use shared::secret::Secret;
use shared::sync::{SyncEngine, SyncOutcome, SyncRequest, SyncStores};
use shared::task::{Strategy, SyncTask};
use std::collections::HashMap;
use std::sync::Arc;

pub struct SyncHarness {
    pub sim: Simulator,
    pub config: shared::Config,
    pub stores: StoreSet,
    /// DynamoDB requests of the stores (moto only).
    pub counter: RequestCounter,
    pub tables: Option<Tables>,
    pub aws: Option<AwsClients>,
}

/// Fast retries and generous rate limits, so tests spend their time on behaviour, not waiting.
fn test_env(sim: &Simulator) -> HashMap<String, String> {
    let mut env = simulator_env(&sim.base_url(), "https://api.example.com", sim.app());
    for (k, v) in [
        ("DOUYIN_QPS", "500"),
        ("OCEANENGINE_QPS", "500"),
        ("FEIYU_QPS", "500"),
        ("CONNECTION_QPS", "500"),
        ("HTTP_TIMEOUT_MS", "1000"),
        ("HTTP_RETRY_BASE_MS", "5"),
        ("HTTP_RETRY_MAX_MS", "20"),
    ] {
        env.insert(k.into(), v.into());
    }
    env
}

fn config(env: HashMap<String, String>, extra: &[(&str, &str)]) -> shared::Config {
    let mut env = env;
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    shared::Config::from_lookup(|k| env.get(k).cloned()).expect("test configuration is valid")
}

impl SyncHarness {
    pub async fn on_moto(extra: &[(&str, &str)]) -> Self {
        Self::on_moto_with(extra, false).await
    }

    /// On moto, with the tables' streams on (the outbox's tests).
    pub async fn on_moto_streaming(extra: &[(&str, &str)]) -> Self {
        Self::on_moto_with(extra, true).await
    }

    async fn on_moto_with(extra: &[(&str, &str)], streams: bool) -> Self {
        let sim = Simulator::start().await;
        let aws = moto::aws().await;
        let tables = moto::create_tables_with(&aws.dynamodb, streams).await;
        let credentials_id = moto::unique("douyin-leads/app-credentials");
        moto::put_app_credentials(
            &aws.secrets,
            &credentials_id,
            &sim.app().douyin_client_secret,
            &sim.app().oceanengine_secret,
        )
        .await;
        let mut env = test_env(&sim);
        env.extend(tables.env());
        env.insert("EXPORT_BUCKET".into(), moto::create_bucket(&aws.s3).await);
        env.insert("APP_CREDENTIALS_SECRET_ID".into(), credentials_id);
        env.insert(
            "CONNECTION_SECRET_PREFIX".into(),
            format!("{}/", moto::unique("douyin-leads/connections")),
        );
        let config = config(env, extra);
        let counter = RequestCounter::default();
        let counted = AwsClients {
            dynamodb: counted_client(&counter).await,
            ..aws.clone()
        };
        let stores = StoreSet::aws(&counted, &config);
        Self {
            sim,
            config,
            stores,
            counter,
            tables: Some(tables),
            aws: Some(aws),
        }
    }

    pub async fn embedded(extra: &[(&str, &str)]) -> Self {
        let sim = Simulator::start().await;
        let config = config(test_env(&sim), extra);
        let stores = StoreSet::embedded(AppCredentials {
            douyin_client_secret: Secret::new(sim.app().douyin_client_secret.clone()),
            oceanengine_secret: Secret::new(sim.app().oceanengine_secret.clone()),
        });
        Self {
            sim,
            config,
            stores,
            counter: RequestCounter::default(),
            tables: None,
            aws: None,
        }
    }

    pub fn engine(&self) -> SyncEngine {
        self.engine_with(self.stores.sync())
    }

    pub fn engine_with(&self, stores: SyncStores) -> SyncEngine {
        SyncEngine::new(&self.config, stores, Arc::new(SystemClock))
    }

    pub fn leads_table(&self) -> &str {
        self.tables.as_ref().map_or("", |t| t.leads.as_str())
    }

    /// Runs one scheduled sync of `connection` and returns its task; panics if it was skipped.
    pub async fn sync(&self, engine: &SyncEngine, connection: &Connection) -> SyncTask {
        self.sync_with(engine, connection, Strategy::Incremental).await
    }

    pub async fn sync_with(&self, engine: &SyncEngine, connection: &Connection, strategy: Strategy) -> SyncTask {
        let request = SyncRequest {
            strategy,
            ..SyncRequest::scheduled(connection)
        };
        match engine.run(request, None).await.expect("sync runs") {
            SyncOutcome::Ran(task) => task,
            SyncOutcome::Skipped { reason, .. } => panic!("sync skipped: {reason}"),
        }
    }
}

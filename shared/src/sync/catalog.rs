//! The lead sources each kind of connection feeds, built once per container.

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::Provider;
use crate::lead::LeadSource;
use crate::platform::douyin::DouyinClient;
use crate::platform::http::PlatformHttp;
use crate::sources::SourceClient;
use crate::sources::fans::FansSource;
use crate::sources::feiyu::FeiyuSource;
use crate::sources::laike::LaikeSource;
use crate::sources::oceanengine::{Endpoint, OceanEngineSource};
use crate::store::AppCredentialsSource;
use chrono::Duration;
use std::sync::Arc;

pub struct SourceCatalog {
    laike: Arc<dyn SourceClient>,
    oceanengine_clue: Arc<dyn SourceClient>,
    oceanengine_life: Arc<dyn SourceClient>,
    feiyu: Arc<dyn SourceClient>,
    fans: Arc<dyn SourceClient>,
    oceanengine_sources: Vec<LeadSource>,
}

fn chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::zero())
}

impl SourceCatalog {
    /// A catalog with its own HTTP client and Douyin client (and so its own client_token cache).
    pub fn from_config(config: &Config, credentials: Arc<dyn AppCredentialsSource>, clock: Arc<dyn Clock>) -> Self {
        let http = PlatformHttp::new(&config.http);
        let douyin = DouyinClient::new(http.clone(), &config.douyin);
        Self::new(config, &http, &douyin, credentials, clock)
    }

    pub fn new(
        config: &Config,
        http: &PlatformHttp,
        douyin: &DouyinClient,
        credentials: Arc<dyn AppCredentialsSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let sync = &config.sync;
        let oceanengine = |endpoint| -> Arc<dyn SourceClient> {
            Arc::new(OceanEngineSource {
                endpoint,
                http: http.clone(),
                base_url: config.oceanengine.api_base_url.clone(),
                codes: config.oceanengine.codes.clone(),
                page_size: sync.page_size,
                lag: chrono(sync.default_lag),
            })
        };
        Self {
            laike: Arc::new(LaikeSource {
                http: http.clone(),
                douyin: douyin.clone(),
                credentials,
                clock: clock.clone(),
                base_url: config.douyin.base_url.clone(),
                page_size: sync.page_size,
                lag: chrono(sync.laike_lag),
            }),
            oceanengine_clue: oceanengine(Endpoint::Clue),
            oceanengine_life: oceanengine(Endpoint::Life),
            feiyu: Arc::new(FeiyuSource {
                http: http.clone(),
                base_url: config.feiyu.base_url.clone(),
                time_format: config.feiyu.time_format,
                clock,
                page_size: sync.page_size,
                lag: chrono(sync.default_lag),
            }),
            fans: Arc::new(FansSource {
                http: http.clone(),
                base_url: config.douyin.base_url.clone(),
                page_size: sync.fans_page_size,
            }),
            oceanengine_sources: sync.oceanengine_sources.clone(),
        }
    }

    pub fn for_provider(&self, provider: Provider) -> Vec<Arc<dyn SourceClient>> {
        match provider {
            Provider::Douyin => vec![self.fans.clone()],
            Provider::Laike => vec![self.laike.clone()],
            Provider::Feiyu => vec![self.feiyu.clone()],
            Provider::OceanEngine => self
                .oceanengine_sources
                .iter()
                .map(|s| match s {
                    LeadSource::OceanEngineLife => self.oceanengine_life.clone(),
                    _ => self.oceanengine_clue.clone(),
                })
                .collect(),
        }
    }
}

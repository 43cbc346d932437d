//! Connections for tests, the benchmark and the local run: OAuth ones walked through the
//! simulator's consent page the way a browser would, and 来客 / Feiyu ones registered directly.

use crate::app::StoreSet;
use chrono::{Duration, Utc};
use shared::clock::SystemClock;
use shared::connect::CallbackParams;
use shared::domain::{Connection, ConnectionStatus, Provider, TenantId, TokenSet};
use shared::secret::Secret;
use std::collections::HashMap;
use std::sync::Arc;

/// Consent link → the simulator's consent page as `account` → callback → confirmation by the
/// same tenant; returns the connection.
pub async fn connect_oauth(
    config: &shared::Config,
    stores: &StoreSet,
    tenant: &TenantId,
    provider: Provider,
    account: &str,
) -> Connection {
    let start = auth_url::service(config, stores.states.clone(), Arc::new(SystemClock));
    let link = start
        .start(tenant, Some(provider.as_str()), None)
        .await
        .expect("consent link");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let consent = http
        .get(format!("{}&sim_account={account}", link.auth_url))
        .send()
        .await
        .expect("consent page answers");
    let location = consent
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("the consent page redirects back");
    let back = url::Url::parse(location).expect("redirect is a URL");
    let q: HashMap<String, String> = back.query_pairs().into_owned().collect();
    let service = auth_callback::service(config, stores.callback(), Arc::new(SystemClock));
    let pending = service
        .finish
        .finish(CallbackParams {
            state: q.get("state").cloned(),
            code: q.get("code").cloned(),
            auth_code: q.get("auth_code").cloned(),
        })
        .await
        .result
        .expect("the callback keeps the grant pending");
    service
        .confirm
        .confirm(tenant, &pending.ticket)
        .await
        .expect("the tenant that started the flow confirms it")
}

fn connection(config: &shared::Config, tenant: &TenantId, provider: Provider, account: &str) -> Connection {
    let now = Utc::now();
    let id = shared::domain::ConnectionId::derive(tenant, provider, account);
    Connection {
        secret_id: format!("{}{}", config.secrets.connection_prefix, id),
        id,
        tenant: tenant.clone(),
        provider,
        external_account_id: account.to_owned(),
        advertiser_ids: Vec::new(),
        scopes: Vec::new(),
        status: ConnectionStatus::Active,
        access_expires_at: now + Duration::days(3650),
        refresh_expires_at: now + Duration::days(3650),
        created_at: now,
        updated_at: now,
    }
}

/// Binds a 来客 account to the tenant (its leads are read with the app's client_token).
pub async fn bind_laike(config: &shared::Config, stores: &StoreSet, tenant: &TenantId, account_id: &str) -> Connection {
    let c = connection(config, tenant, Provider::Laike, account_id);
    stores.connections.upsert(&c).await.expect("bind 来客 account");
    c
}

/// Registers a Feiyu account: its console token and signature key go to the vault.
pub async fn register_feiyu(
    config: &shared::Config,
    stores: &StoreSet,
    tenant: &TenantId,
    advertiser_id: &str,
    token: &str,
    signature_key: &str,
) -> Connection {
    let c = connection(config, tenant, Provider::Feiyu, advertiser_id);
    let now = Utc::now();
    let tokens = TokenSet {
        provider: Provider::Feiyu,
        access_token: Secret::new(token),
        access_expires_at: c.access_expires_at,
        refresh_token: Secret::new(""),
        refresh_expires_at: c.refresh_expires_at,
        open_id: None,
        advertiser_ids: vec![advertiser_id.to_owned()],
        scopes: Vec::new(),
        renewals_used: 0,
        issued_at: now,
        signature_key: Some(Secret::new(signature_key)),
    };
    stores
        .vault
        .put_tokens(&c.secret_id, &tokens)
        .await
        .expect("store Feiyu key");
    stores.connections.upsert(&c).await.expect("register Feiyu account");
    c
}

//! The store contract: one suite, run against the embedded stores and against DynamoDB and
//! Secrets Manager (moto). An adapter that passes it can stand in for the other.

use chrono::{Duration, DurationRound, Utc};
use shared::domain::{Connection, ConnectionId, ConnectionStatus, OAuthState, Provider, TenantId, TokenSet};
use shared::secret::Secret;
use shared::store::{ClaimError, ConnectionStore, StateError, StateStore, TokenVault};

fn now() -> chrono::DateTime<Utc> {
    // Stores keep milliseconds; compare at that precision.
    Utc::now().duration_trunc(Duration::milliseconds(1)).expect("truncate")
}

fn state(id: &str, tenant: &str, redirect: Option<&str>, ttl: Duration) -> OAuthState {
    let now = now();
    OAuthState {
        state: id.to_owned(),
        tenant: TenantId::new(tenant),
        provider: Provider::OceanEngine,
        redirect_url: redirect.map(str::to_owned),
        created_at: now,
        expires_at: now + ttl,
    }
}

pub async fn state_store(store: &dyn StateStore) {
    let issued = state(
        &crate::moto::unique("st"),
        "tenant-a",
        Some("https://app.example.com/cb"),
        Duration::minutes(10),
    );
    store.create(&issued).await.expect("create state");
    let consumed = store.consume(&issued.state, Utc::now()).await.expect("consume once");
    assert_eq!(consumed, issued, "a consumed state returns what was stored");
    assert!(
        matches!(store.consume(&issued.state, Utc::now()).await, Err(StateError::Unknown)),
        "a replayed state is refused"
    );
    assert!(matches!(
        store.consume("never-issued", Utc::now()).await,
        Err(StateError::Unknown)
    ));

    let plain = state(&crate::moto::unique("st"), "tenant-a", None, Duration::minutes(10));
    store.create(&plain).await.expect("create state without redirect");
    assert_eq!(
        store
            .consume(&plain.state, Utc::now())
            .await
            .expect("consume")
            .redirect_url,
        None
    );

    let short = state(&crate::moto::unique("st"), "tenant-a", None, Duration::minutes(10));
    store.create(&short).await.expect("create state");
    let later = Utc::now() + Duration::minutes(11);
    assert!(
        matches!(store.consume(&short.state, later).await, Err(StateError::Expired)),
        "an expired state is refused"
    );
    assert!(
        matches!(store.consume(&short.state, Utc::now()).await, Err(StateError::Unknown)),
        "an expired state is consumed by the refusal and cannot be retried"
    );
}

fn tokens(access: &str, refresh: &str) -> TokenSet {
    let now = now();
    TokenSet {
        provider: Provider::Douyin,
        access_token: Secret::new(access),
        access_expires_at: now + Duration::days(15),
        refresh_token: Secret::new(refresh),
        refresh_expires_at: now + Duration::days(30),
        open_id: Some("open-1".into()),
        advertiser_ids: Vec::new(),
        scopes: vec!["user_info".into(), "fans.list".into()],
        renewals_used: 1,
        issued_at: now,
    }
}

pub async fn token_vault(vault: &dyn TokenVault) {
    let id = crate::moto::unique("douyin-leads/connections/c");
    assert!(
        vault.get_tokens(&id).await.expect("get missing").is_none(),
        "a missing secret reads as None"
    );
    let first = tokens("act.1", "rft.1");
    vault.put_tokens(&id, &first).await.expect("create secret");
    assert_eq!(vault.get_tokens(&id).await.expect("get").as_ref(), Some(&first));
    let second = tokens("act.2", "rft.2");
    vault.put_tokens(&id, &second).await.expect("new version");
    assert_eq!(
        vault.get_tokens(&id).await.expect("get").as_ref(),
        Some(&second),
        "the newest version is current"
    );
}

fn connection(tenant: &str, provider: Provider, external: &str) -> Connection {
    let tenant = TenantId::new(tenant);
    let id = ConnectionId::derive(&tenant, provider, external);
    let now = now();
    Connection {
        secret_id: format!("douyin-leads/connections/{id}"),
        id,
        tenant,
        provider,
        external_account_id: external.to_owned(),
        advertiser_ids: vec!["1769665409798152".into()],
        scopes: vec!["user_info".into()],
        status: ConnectionStatus::Active,
        access_expires_at: now + Duration::days(1),
        refresh_expires_at: now + Duration::days(30),
        created_at: now,
        updated_at: now,
    }
}

pub async fn connection_store(store: &dyn ConnectionStore) {
    let external = crate::moto::unique("acct");
    let (a, b) = (
        TenantId::new(crate::moto::unique("tenant-a")),
        TenantId::new(crate::moto::unique("tenant-b")),
    );

    let id = store.claim(&a, Provider::Douyin, &external).await.expect("first claim");
    assert_eq!(id, ConnectionId::derive(&a, Provider::Douyin, &external));
    assert_eq!(
        store.claim(&a, Provider::Douyin, &external).await.expect("claim again"),
        id,
        "re-claiming is idempotent"
    );
    assert!(
        matches!(
            store.claim(&b, Provider::Douyin, &external).await,
            Err(ClaimError::OwnedByAnotherTenant { .. })
        ),
        "another tenant cannot claim the account"
    );
    store
        .claim(&b, Provider::OceanEngine, &external)
        .await
        .expect("the same id on another provider is another account");

    let first = connection(a.as_str(), Provider::Douyin, &external);
    store.upsert(&first).await.expect("create connection");
    assert_eq!(store.get(&a, &first.id).await.expect("get").as_ref(), Some(&first));

    let mut again = first.clone();
    again.created_at = first.created_at + Duration::hours(1);
    again.updated_at = first.updated_at + Duration::hours(1);
    again.scopes = vec!["user_info".into(), "fans.list".into()];
    again.status = ConnectionStatus::Active;
    store.upsert(&again).await.expect("update connection");
    let stored = store.get(&a, &first.id).await.expect("get").expect("present");
    assert_eq!(stored.created_at, first.created_at, "an update keeps the creation time");
    assert_eq!(stored.updated_at, again.updated_at);
    assert_eq!(stored.scopes, again.scopes);

    let stolen = connection(b.as_str(), Provider::Douyin, &external);
    assert!(
        matches!(
            store.upsert(&stolen).await,
            Err(ClaimError::OwnedByAnotherTenant { .. })
        ),
        "an upsert cannot attach another tenant's account"
    );
    assert!(
        store.get(&b, &stolen.id).await.expect("get").is_none(),
        "the refused upsert wrote nothing"
    );

    assert!(
        store.get(&b, &first.id).await.expect("get").is_none(),
        "tenants do not see each other's connections"
    );
    let listed = store.list(&a).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, first.id);
    assert!(store.list(&b).await.expect("list").is_empty());
}

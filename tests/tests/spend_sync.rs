//! The spend pull end to end: an Ocean Engine connection synced against the simulator's reports
//! (consistent with its leads) into DynamoDB Local. Every (entity, day) row is stored to the fen,
//! a re-pull of settled days writes nothing, a re-attributed conversion rewrites the re-pulled
//! days only, and one tenant's rows are not another's.

use chrono::{Duration, NaiveDate, Utc};
use devkit::sim::SimSource;
use devkit::sync_fixtures::{connected, tenant};
use devkit::sync_harness::SyncHarness;
use shared::spend::SpendLevel;
use shared::spend::sync::beijing_day;
use std::collections::BTreeMap;

type Figures = BTreeMap<(String, NaiveDate), (i64, i64)>;

async fn stored(h: &SyncHarness, t: &shared::domain::TenantId, level: SpendLevel) -> Figures {
    let today = beijing_day(Utc::now());
    h.stores
        .spend
        .rows(t, today - Duration::days(60), today)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, r)| r.level == level)
        .map(|(_, r)| ((r.entity_id, r.day), (r.spend_fen, r.conversions)))
        .collect()
}

#[tokio::test]
async fn spend_is_stored_to_the_fen_and_a_settled_repull_writes_nothing() {
    let h = SyncHarness::on_moto(&[]).await;
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::OceanEngineClue, 300).await;
    let task = h.sync(&h.engine(), &connection).await;
    let counts = task.spend.expect("an Ocean Engine sync pulls spend");
    assert_eq!(task.status, shared::task::TaskStatus::Completed, "{:?}", task.error);
    let today = beijing_day(Utc::now());
    let span = (today - Duration::days(29), today);
    let expected: Figures = h
        .sim
        .spend(SimSource::OceanEngineClue, &account, span)
        .into_iter()
        .map(|s| ((s.entity, s.day), (s.spend_fen, s.leads)))
        .collect();
    let mut got = stored(&h, &t, SpendLevel::Ad).await;
    got.extend(stored(&h, &t, SpendLevel::Promotion).await);
    assert!(
        expected.len() > 40,
        "the leads spread over entities and days: {}",
        expected.len()
    );
    assert_eq!(got, expected, "every (entity, day) row, spend to the fen");
    assert_eq!(counts.written, expected.len() as u64);
    let total: i64 = got.values().map(|(fen, _)| fen).sum();
    let hand: i64 = expected.values().map(|(fen, _)| fen).sum();
    assert_eq!(total, hand);

    // Settled days, pulled again (the last 7), write nothing.
    let again = h.sync(&h.engine(), &connection).await.spend.unwrap();
    assert_eq!(again.written, 0, "{again:?}");
    assert!(
        again.unchanged > 0 && again.unchanged < expected.len() as u64,
        "only the re-pull window is read: {again:?}"
    );

    // The platform re-attributes conversions: the re-pulled days change, older ones stay.
    h.sim.reattribute(2);
    let third = h.sync(&h.engine(), &connection).await.spend.unwrap();
    assert_eq!(third.written, again.unchanged, "{third:?}");
    let after = stored(&h, &t, SpendLevel::Ad).await;
    for ((entity, day), (_, conversions)) in &after {
        let leads = expected[&(entity.clone(), *day)].1;
        let repulled = *day > today - Duration::days(7);
        assert_eq!(*conversions, if repulled { leads + 2 } else { leads }, "{entity} {day}");
    }
    let recent = h.stores.spend.rows(&t, today - Duration::days(2), today).await.unwrap();
    assert!(!recent.is_empty());
    for (_, r) in &recent {
        assert_eq!(
            r.provisional,
            r.day == today,
            "only today's rows are provisional: {r:?}"
        );
    }

    // Another tenant sees none of them.
    let other = tenant();
    assert!(h.stores.spend.rows(&other, span.0, span.1).await.unwrap().is_empty());
}

#[tokio::test]
async fn local_promotions_are_their_own_level() {
    let h = SyncHarness::on_moto(&[("SPEND_LEVELS", "local_promotion")]).await;
    let t = tenant();
    let (connection, account) = connected(&h, &t, SimSource::OceanEngineLife, 120).await;
    let task = h.sync(&h.engine(), &connection).await;
    let today = beijing_day(Utc::now());
    let expected: Figures = h
        .sim
        .spend(
            SimSource::OceanEngineLife,
            &account,
            (today - Duration::days(29), today),
        )
        .into_iter()
        .map(|s| ((s.entity, s.day), (s.spend_fen, s.leads)))
        .collect();
    assert_eq!(stored(&h, &t, SpendLevel::LocalPromotion).await, expected);
    assert!(
        stored(&h, &t, SpendLevel::Ad).await.is_empty(),
        "levels not configured are not pulled"
    );
    assert_eq!(task.spend.unwrap().written, expected.len() as u64);
}

//! The rate-limit counters instances share ([`SharedLimits`]): charged with the
//! limiter's own arithmetic in one atomic step, every change seen by a later poll,
//! quiet ones forgotten. An engine that one process owns has none (the in-memory
//! counters are the whole count); the tests say so for it.

use std::sync::Arc;

use keyclerk::domain::time::Timestamp;
use keyclerk::storage::shared_limits::{ChangeCursor, Charged, LimitCharge, SharedLimits};

use super::races::at_once;
use super::World;

/// The shared counters, on an engine that has them; none on one that must not.
/// Either way the store gets one event, which the runner checks the chain with.
async fn shared(w: &World) -> Option<Arc<dyn SharedLimits>> {
    w.mint("photo-pro", "o-limits").await;
    let shared = w.store.shared_limits();
    assert_eq!(shared.is_some(), w.shares_limits);
    shared
}

/// Three hits at once, then one a second.
fn three_a_second(bucket: &str) -> LimitCharge {
    LimitCharge {
        bucket: bucket.into(),
        cost_ms: 1000,
        burst_ms: 2000,
    }
}

fn at(w: &World, ms: i64) -> Timestamp {
    w.t0 + chrono::Duration::milliseconds(ms)
}

fn ms(w: &World, ms: i64) -> i64 {
    w.t0.timestamp_millis() + ms
}

async fn charge_one(shared: &dyn SharedLimits, charge: LimitCharge, now: Timestamp) -> Charged {
    let answers = shared.charge(vec![charge], now).await.unwrap();
    assert_eq!(answers.len(), 1);
    answers[0]
}

pub async fn a_shared_counter_charges_like_the_limiter_and_refuses_past_its_burst(w: World) {
    let Some(shared) = shared(&w).await else {
        return;
    };
    let events = w.event_count().await;
    let t = at(&w, 0);
    for n in 1..=3 {
        assert_eq!(
            charge_one(&*shared, three_a_second("a"), t).await,
            Charged {
                tat_ms: ms(&w, n * 1000),
                allowed: true
            }
        );
    }
    // Full: refused, and a refused hit is not counted.
    let refused = Charged {
        tat_ms: ms(&w, 3000),
        allowed: false,
    };
    assert_eq!(charge_one(&*shared, three_a_second("a"), t).await, refused);
    assert_eq!(
        charge_one(&*shared, three_a_second("a"), at(&w, 999)).await,
        refused
    );
    // A second later one more fits.
    assert_eq!(
        charge_one(&*shared, three_a_second("a"), at(&w, 1000)).await,
        Charged {
            tat_ms: ms(&w, 4000),
            allowed: true
        }
    );
    // Counters are charged each on its own, in the order given.
    let both = shared
        .charge(vec![three_a_second("a"), three_a_second("b")], at(&w, 1000))
        .await
        .unwrap();
    assert_eq!(
        both,
        [
            Charged {
                tat_ms: ms(&w, 4000),
                allowed: false
            },
            Charged {
                tat_ms: ms(&w, 2000),
                allowed: true
            }
        ]
    );
    // A counter that allows no burst refuses even its first hit and keeps nothing.
    let none = LimitCharge {
        bucket: "c".into(),
        cost_ms: 1000,
        burst_ms: -1,
    };
    assert_eq!(
        charge_one(&*shared, none, t).await,
        Charged {
            tat_ms: ms(&w, 0),
            allowed: false
        }
    );
    let live = shared
        .changes(ChangeCursor::default(), t, 100)
        .await
        .unwrap();
    assert!(live.counters.iter().all(|c| c.bucket != "c"), "{live:?}");
    // Counters are no audit matter.
    assert_eq!(w.event_count().await, events);
}

pub async fn every_change_to_a_shared_counter_reaches_a_later_poll(w: World) {
    let Some(shared) = shared(&w).await else {
        return;
    };
    let t = at(&w, 0);
    for bucket in ["a", "b"] {
        charge_one(&*shared, three_a_second(bucket), t).await;
    }
    let first = shared
        .changes(ChangeCursor::default(), t, 100)
        .await
        .unwrap();
    let mut seen: Vec<(String, i64)> = first
        .counters
        .iter()
        .map(|c| (c.bucket.clone(), c.tat_ms))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("a".into(), ms(&w, 1000)), ("b".into(), ms(&w, 1000))]
    );
    assert!(!first.more);
    // A counter changed after a poll comes in the next one with its new count (an
    // unchanged one may come again: taking a count in twice changes nothing).
    charge_one(&*shared, three_a_second("a"), t).await;
    let second = shared.changes(first.next, t, 100).await.unwrap();
    assert!(
        second
            .counters
            .iter()
            .any(|c| c.bucket == "a" && c.tat_ms == ms(&w, 2000)),
        "{second:?}"
    );
    assert!(
        second
            .counters
            .iter()
            .all(|c| c.tat_ms == ms(&w, if c.bucket == "a" { 2000 } else { 1000 })),
        "{second:?}"
    );
    // A small page says there is more, and the pages together hold every counter.
    for i in 0..5 {
        charge_one(&*shared, three_a_second(&format!("p{i}")), t).await;
    }
    let mut cursor = second.next;
    let mut paged = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let page = shared.changes(cursor, t, 2).await.unwrap();
        assert!(page.counters.len() <= 2, "{page:?}");
        paged.extend(page.counters.iter().map(|c| c.bucket.clone()));
        cursor = page.next;
        if !page.more {
            break;
        }
    }
    for i in 0..5 {
        assert!(paged.contains(&format!("p{i}")), "{paged:?}");
    }
    // Counters whose time has passed are no news.
    let later = shared
        .changes(ChangeCursor::default(), at(&w, 10_000), 100)
        .await
        .unwrap();
    assert!(later.counters.is_empty(), "{later:?}");
}

pub async fn quiet_shared_counters_are_forgotten_in_bounded_steps(w: World) {
    let Some(shared) = shared(&w).await else {
        return;
    };
    let t = at(&w, 0);
    for i in 0..5 {
        charge_one(&*shared, three_a_second(&format!("q{i}")), t).await;
    }
    let slow = LimitCharge {
        bucket: "live".into(),
        cost_ms: 60_000,
        burst_ms: 0,
    };
    assert!(charge_one(&*shared, slow.clone(), t).await.allowed);
    assert_eq!(shared.forget_quiet(at(&w, 999), 100).await.unwrap(), 0);
    assert_eq!(shared.forget_quiet(at(&w, 1000), 2).await.unwrap(), 2);
    assert_eq!(shared.forget_quiet(at(&w, 1000), 100).await.unwrap(), 3);
    assert_eq!(shared.forget_quiet(at(&w, 1000), 100).await.unwrap(), 0);
    // The live one stayed (still full), a forgotten one starts again from now.
    assert_eq!(
        charge_one(&*shared, slow, at(&w, 1000)).await,
        Charged {
            tat_ms: ms(&w, 60_000),
            allowed: false
        }
    );
    assert_eq!(
        charge_one(&*shared, three_a_second("q0"), at(&w, 5000)).await,
        Charged {
            tat_ms: ms(&w, 6000),
            allowed: true
        }
    );
}

pub async fn concurrent_charges_of_one_shared_counter_allow_exactly_its_burst(w: World) {
    let Some(shared) = shared(&w).await else {
        return;
    };
    let t = at(&w, 0);
    let answers = at_once(20, |_| {
        let shared = Arc::clone(&shared);
        async move {
            let five = LimitCharge {
                bucket: "race".into(),
                cost_ms: 1000,
                burst_ms: 4000,
            };
            shared.charge(vec![five], t).await.unwrap()[0]
        }
    });
    let mut allowed: Vec<i64> = answers
        .iter()
        .filter(|c| c.allowed)
        .map(|c| c.tat_ms)
        .collect();
    allowed.sort_unstable();
    assert_eq!(
        allowed,
        (1..=5).map(|n| ms(&w, n * 1000)).collect::<Vec<_>>()
    );
    assert!(answers
        .iter()
        .filter(|c| !c.allowed)
        .all(|c| c.tat_ms == ms(&w, 5000)));
}

/// PostgreSQL only: a transaction that began before the changes and stays open
/// keeps the poll's horizon before them; a read in pages still gets through them all.
pub fn pages_go_on_behind_an_old_transaction() {
    use super::Engine;
    let (store, db) = super::Postgres::fresh();
    let shared = store.shared_limits().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        client
            .batch_execute("BEGIN; SELECT pg_current_xact_id()")
            .await
            .unwrap();
        let t = keyclerk::domain::time::now();
        for i in 0..6 {
            shared
                .charge(vec![three_a_second(&format!("h{i}"))], t)
                .await
                .unwrap();
        }
        let mut cursor = ChangeCursor::default();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10 {
            let page = shared.changes(cursor, t, 2).await.unwrap();
            seen.extend(page.counters.into_iter().map(|c| c.bucket));
            cursor = page.next;
            if !page.more {
                break;
            }
        }
        assert_eq!(seen.len(), 6, "{seen:?}");
        // The next read starts again before the old transaction: nothing is lost
        // should it change a counter still.
        let again = shared.changes(cursor, t, 100).await.unwrap();
        assert_eq!(again.counters.len(), 6, "{again:?}");
        client.batch_execute("ROLLBACK").await.unwrap();
        drop(client);
        let _ = driver.await;
    });
    drop(shared);
    drop(store);
    drop(db);
}

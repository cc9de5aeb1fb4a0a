//! Races run against the store: many callers at once, each on its own thread
//! with its own runtime, released together by a barrier. Whatever the engine does
//! to serialize them, the rules must hold as if they came one by one.

use std::future::Future;
use std::sync::Barrier;

use keyclerk::domain::activation::Refusal;
use keyclerk::domain::audit::{Actor, AuditEvent, PresentedBy};
use keyclerk::domain::grace::Remedy;
use keyclerk::domain::ids::new_id;
use keyclerk::domain::product::Price;
use keyclerk::domain::token::{NewApiToken, Role};
use keyclerk::domain::DomainError;
use keyclerk::storage::activation::{
    ActivationOutcome, Deactivation, DeactivationOutcome, Deactivator,
};
use keyclerk::storage::grace::{DecisionOutcome, Redemption};
use keyclerk::storage::{LicenseLookup, MintOutcome, StorageError};

use super::{fake_key, request, support, vendor, World};

/// Runs `f(0..n)` at once and collects the answers in order of `i`.
pub fn at_once<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut + Sync,
    Fut: Future<Output = T>,
    T: Send,
{
    let barrier = Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (f, barrier) = (&f, &barrier);
                s.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    let call = f(i);
                    barrier.wait();
                    runtime.block_on(call)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Opens as many connections as `n` callers use at once (an engine with a pool
/// opens them on demand, one after the other, which would space the racers out),
/// so that the race that follows is one.
pub fn warm_up(w: &World, n: usize) {
    at_once(n, |_| async { w.store.ready().await.unwrap() });
}

pub async fn fifty_concurrent_mints_of_one_order_make_one_license(w: World) {
    warm_up(&w, 50);
    let outcomes = at_once(50, |_| {
        // Each retry is prepared on its own: its own license id and key.
        let new = w.prepare(request("photo-pro", "o-race"), w.t0);
        let key = fake_key();
        let store = w.store.clone();
        async move {
            let stored = key.stored.clone();
            (store.mint(new, key, vendor()).await.unwrap(), stored)
        }
    });
    let winners: Vec<_> = outcomes
        .iter()
        .filter_map(|(o, key)| match o {
            MintOutcome::Created(l) => Some((l.clone(), key.clone())),
            MintOutcome::Existing(..) => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one mint creates the license");
    let (license, key) = &winners[0];
    for (o, _) in &outcomes {
        if let MintOutcome::Existing(l, k) = o {
            assert_eq!(l, license, "every other mint finds the same license");
            assert_eq!(k, key, "with the winner's key");
        }
    }
    let found = w
        .store
        .find_licenses(LicenseLookup::OrderId("o-race".into()))
        .await
        .unwrap();
    assert_eq!(found, std::slice::from_ref(license));
    assert_eq!(w.events(&license.id).await.len(), 1);
    assert_eq!(
        w.event_count().await,
        1,
        "one license_minted in the whole log"
    );
}

pub async fn twenty_concurrent_activations_on_five_seats_grant_exactly_five(w: World) {
    let mut req = request("photo-pro", "o-1");
    req.seats = Some(5);
    let (l, key) = w.mint_request(req).await;
    warm_up(&w, 20);
    let w = &w;
    let outcomes = at_once(20, |i| async move {
        w.activate(key, &format!("fp-{i}"), w.day(1)).await
    });
    let granted = outcomes
        .iter()
        .filter(|o| matches!(o, ActivationOutcome::Granted { created: true, .. }))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, ActivationOutcome::Refused(Refusal::SeatLimitReached)))
        .count();
    assert_eq!((granted, refused), (5, 15), "{outcomes:?}");
    let live = w.store.activations(&l.id).await.unwrap();
    assert_eq!(live.len(), 5);
    assert!(live.iter().all(|a| a.deactivated_at.is_none()));
    let events = w.events(&l.id).await;
    let mut in_use: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            AuditEvent::ActivationCreated { seats_in_use, .. } => Some(*seats_in_use),
            _ => None,
        })
        .collect();
    in_use.sort_unstable();
    assert_eq!(in_use, [1, 2, 3, 4, 5], "each seat counted once");
    let refusals = events
        .iter()
        .filter(|e| matches!(e, AuditEvent::ActivationRefused { code, .. } if code == "seat_limit_reached"))
        .count();
    assert_eq!(refusals, 15);
    let firsts = events
        .iter()
        .filter(|e| matches!(e, AuditEvent::KeyFirstPresented { .. }))
        .count();
    assert_eq!(firsts, 1);
    let (stored, _) = w.store.license(&l.id).await.unwrap().unwrap();
    assert_eq!(stored.expires_at, Some(w.day(366)), "started once");
}

pub async fn concurrent_activations_of_one_machine_take_one_seat(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    warm_up(&w, 20);
    let outcomes = at_once(20, |_| w.activate(key, "fp-same", w.day(1)));
    let mut created = 0;
    let mut ids = Vec::new();
    for o in &outcomes {
        match o {
            ActivationOutcome::Granted {
                activation,
                created: c,
                ..
            } => {
                created += usize::from(*c);
                ids.push(activation.id.clone());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 1, "one new seat, nineteen refreshes");
    ids.dedup();
    assert_eq!(ids.len(), 1, "all of the same activation");
    assert_eq!(w.store.activations(&l.id).await.unwrap().len(), 1);
}

pub async fn concurrent_first_presentations_write_one_event(w: World) {
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let at = w.day(1);
    warm_up(&w, 20);
    at_once(20, |i| {
        let store = w.store.clone();
        let id = l.id.clone();
        let by = if i % 2 == 0 {
            PresentedBy::Validation
        } else {
            PresentedBy::Claim
        };
        async move { store.mark_presented(id, by, at).await.unwrap() }
    });
    let firsts = w
        .events(&l.id)
        .await
        .into_iter()
        .filter(|e| matches!(e, AuditEvent::KeyFirstPresented { .. }))
        .count();
    assert_eq!(firsts, 1);
}

pub async fn twenty_concurrent_redemptions_of_the_whole_balance_let_one_through(w: World) {
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let granted = w
        .store
        .decide(w.grace(&l, Remedy::Credit), w.day(1))
        .await
        .unwrap();
    assert!(matches!(granted, DecisionOutcome::Made(_)));
    let ann = "ann@example.com";
    let whole = Price {
        amount: 4900,
        currency: "EUR".into(),
    };
    let at = w.day(2);
    warm_up(&w, 20);
    let outcomes = at_once(20, |i| {
        let store = w.store.clone();
        let r = Redemption {
            id: new_id("cre", w.t0),
            email: ann.into(),
            order_id: format!("shop-{i}"),
            amount: whole.clone(),
            actor: vendor(),
        };
        async move { store.redeem(r, at).await }
    });
    let through = outcomes
        .iter()
        .filter(|o| matches!(o, Ok((_, true))))
        .count();
    assert_eq!(through, 1, "{outcomes:?}");
    for o in &outcomes {
        match o {
            Ok((entry, true)) => assert_eq!(entry.amount, -4900),
            Err(StorageError::Domain(DomainError::InsufficientCredit { balance, amount })) => {
                assert_eq!((*balance, *amount), (0, 4900));
            }
            other => panic!("{other:?}"),
        }
    }
    let ledger = w.store.credits(ann).await.unwrap();
    assert_eq!(ledger.len(), 2, "the grant and one redemption");
    assert_eq!(
        ledger.iter().map(|e| e.amount).sum::<i64>(),
        0,
        "never below zero"
    );
    // The same order from many callers at once is spent once.
    let (l2, _) = w.mint("photo-pro", "o-2").await;
    w.store
        .decide(w.grace(&l2, Remedy::Credit), w.day(3))
        .await
        .unwrap();
    let at = w.day(4);
    let outcomes = at_once(20, |_| {
        let store = w.store.clone();
        let r = Redemption {
            id: new_id("cre", w.t0),
            email: ann.into(),
            order_id: "shop-same".into(),
            amount: Price {
                amount: 100,
                currency: "EUR".into(),
            },
            actor: vendor(),
        };
        async move { store.redeem(r, at).await.unwrap() }
    });
    assert_eq!(outcomes.iter().filter(|(_, new)| *new).count(), 1);
    assert!(outcomes.iter().all(|(e, _)| e == &outcomes[0].0));
    assert_eq!(
        w.store
            .credits(ann)
            .await
            .unwrap()
            .iter()
            .map(|e| e.amount)
            .sum::<i64>(),
        4800
    );
}

pub async fn of_ten_concurrent_first_tokens_one_is_stored(w: World) {
    let outcomes = at_once(10, |_| {
        let store = w.store.clone();
        let (new, _) = NewApiToken::generate(Role::Admin, "first admin".into(), w.t0);
        async move { store.create_first_token(new, Actor::System).await }
    });
    let stored: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().unwrap().clone())
        .collect();
    assert_eq!(stored.len(), 1, "{outcomes:?}");
    assert_eq!(w.store.tokens().await.unwrap(), stored);
    assert_eq!(w.event_count().await, 1);
}

pub async fn concurrent_deactivations_of_one_machine_free_it_once(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let act = w.take_seat(key, "fp-1", w.day(1)).await;
    let at = w.day(2);
    warm_up(&w, 20);
    let outcomes = at_once(20, |i| {
        let store = w.store.clone();
        let by = if i % 2 == 0 {
            Deactivator::Support(support())
        } else {
            Deactivator::Customer(key)
        };
        let req = Deactivation {
            activation_id: act.clone(),
            by,
            reason: None,
            policies: std::sync::Arc::clone(&w.policies),
        };
        async move { store.deactivate(req, at).await.unwrap() }
    });
    let freed = outcomes
        .iter()
        .filter(|o| matches!(o, DeactivationOutcome::Deactivated { already: false, .. }))
        .count();
    let already = outcomes
        .iter()
        .filter(|o| matches!(o, DeactivationOutcome::Deactivated { already: true, .. }))
        .count();
    assert_eq!((freed, already), (1, 19), "{outcomes:?}");
    let events = w
        .events(&l.id)
        .await
        .into_iter()
        .filter(|e| matches!(e, AuditEvent::ActivationDeactivated { .. }))
        .count();
    assert_eq!(events, 1, "freed once, written once");
}

pub async fn concurrent_redemptions_of_one_order_for_two_customers_spend_it_once(w: World) {
    let emails = ["ann@example.com", "bob@example.com"];
    for (i, email) in emails.iter().enumerate() {
        let mut req = request("photo-pro", &format!("o-{i}"));
        req.customer_email = Some((*email).into());
        let (l, _) = w.mint_request(req).await;
        w.store
            .decide(w.grace(&l, Remedy::Credit), w.day(1))
            .await
            .unwrap();
    }
    let at = w.day(2);
    warm_up(&w, 20);
    let outcomes = at_once(20, |i| {
        let store = w.store.clone();
        let r = Redemption {
            id: new_id("cre", w.t0),
            email: emails[i % 2].into(),
            order_id: "shop-shared".into(),
            amount: Price {
                amount: 100,
                currency: "EUR".into(),
            },
            actor: vendor(),
        };
        async move { store.redeem(r, at).await }
    });
    let winner = outcomes
        .iter()
        .find_map(|o| match o {
            Ok((entry, true)) => Some(entry.clone()),
            _ => None,
        })
        .expect("one redemption goes through");
    for o in &outcomes {
        match o {
            Ok((entry, _)) => assert_eq!(entry, &winner, "the same order finds the first"),
            Err(StorageError::Domain(DomainError::OrderConflict(order))) => {
                assert_eq!(order, "shop-shared")
            }
            other => panic!("neither the redemption nor a conflict: {other:?}"),
        }
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Ok((_, true))))
            .count(),
        1
    );
    let spent: i64 = w
        .store
        .credits(&winner.email)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.amount < 0)
        .map(|e| e.amount)
        .sum();
    assert_eq!(spent, -100, "spent once");
}

//! Seats: activation, refresh, release, deactivation, first presentation, the
//! facts validation reads and last-seen times.

use keyclerk::domain::activation::{Refusal, SeatPolicy};
use keyclerk::domain::audit::{Actor, AuditEvent, DeactivatedBy, PresentedBy};
use keyclerk::domain::ids::new_id;
use keyclerk::domain::time::{plus_days, Timestamp};
use keyclerk::storage::activation::{
    ActivationOutcome, Deactivation, DeactivationOutcome, Deactivator, Policies,
};
use keyclerk::storage::grace::{ClaimOutcome, NewClaim};
use keyclerk::storage::last_seen::SeenTimes;

use keyclerk::domain::license::Action;
use keyclerk::storage::EventPage;

use super::{fake_key, support, vendor, World};

fn presented(by: PresentedBy) -> AuditEvent {
    AuditEvent::KeyFirstPresented { by }
}

pub async fn each_seat_is_taken_once_and_the_next_machine_is_refused_and_audited(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    assert_eq!(l.seats, 3);
    let mut ids = Vec::new();
    for (i, fp) in ["fp-1", "fp-2", "fp-3"].into_iter().enumerate() {
        let req = w.activation(key, fp, w.day(1));
        let id = req.id.clone();
        match w.store.activate(req, w.day(1)).await.unwrap() {
            ActivationOutcome::Granted {
                activation,
                created,
                ..
            } => {
                assert!(created, "{fp} takes a new seat");
                assert_eq!(activation.id, id, "with the id the request gave");
                assert_eq!(activation.fingerprint, fp);
                assert_eq!(activation.license_id, l.id);
                assert_eq!(activation.activated_at, w.day(1));
                assert_eq!(activation.name.as_deref(), Some(&*format!("machine {fp}")));
                assert_eq!(activation.platform.as_deref(), Some("linux"));
                assert_eq!(activation.deactivated_at, None);
            }
            other => panic!("{fp}: {other:?}"),
        }
        ids.push((id, i));
    }
    let refused = w.activate(key, "fp-4", w.day(1)).await;
    assert!(
        matches!(
            refused,
            ActivationOutcome::Refused(Refusal::SeatLimitReached)
        ),
        "{refused:?}"
    );
    let live = w.store.activations(&l.id).await.unwrap();
    assert_eq!(live.len(), 3, "the refused machine holds nothing");
    assert!(live.iter().all(|a| a.deactivated_at.is_none()));
    let events = w.events_by(&l.id).await;
    let expiry = Some(plus_days(w.day(1), 365));
    let mut expected = vec![(Actor::LicenseKey, presented(PresentedBy::Activation))];
    for (id, i) in &ids {
        expected.push((
            Actor::LicenseKey,
            AuditEvent::ActivationCreated {
                activation: id.clone(),
                fingerprint: format!("fp-{}", i + 1),
                seats_in_use: *i as u32 + 1,
                expires_at: expiry,
            },
        ));
    }
    expected.push((
        Actor::LicenseKey,
        AuditEvent::ActivationRefused {
            code: "seat_limit_reached".into(),
            fingerprint: "fp-4".into(),
        },
    ));
    assert_eq!(events[1..], expected[..]);
}

pub async fn a_machine_holding_a_seat_refreshes_without_taking_another(w: World) {
    let (l, key) = w.mint("photo-basic", "o-1").await;
    assert_eq!(l.seats, 2);
    let first = w.take_seat(key, "fp-1", w.day(1)).await;
    w.take_seat(key, "fp-2", w.day(1)).await;
    // Every seat is taken, and the machine holding one still refreshes.
    let outcome = w.activate(key, "fp-1", w.day(3)).await;
    let ActivationOutcome::Granted {
        activation,
        created,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(!created, "a refresh");
    assert_eq!(activation.id, first, "of the same activation");
    assert_eq!(activation.activated_at, w.day(1));
    assert_eq!(activation.last_seen, w.day(3));
    let stored = w.store.activations(&l.id).await.unwrap();
    assert_eq!(stored.len(), 2);
    let fp1 = stored.iter().find(|a| a.id == first).unwrap();
    assert_eq!(fp1.last_seen, w.day(3));
    assert_eq!(
        w.events(&l.id).await.last(),
        Some(&AuditEvent::ActivationRefreshed { activation: first })
    );
}

pub async fn an_unknown_key_is_not_found_and_writes_nothing(w: World) {
    w.mint("photo-pro", "o-1").await;
    let before = w.event_count().await;
    let outcome = w.activate(fake_key().key_hash, "fp-1", w.day(1)).await;
    assert!(
        matches!(outcome, ActivationOutcome::NotFound),
        "{outcome:?}"
    );
    assert!(w
        .store
        .key_facts(fake_key().key_hash, Some("fp-1".into()))
        .await
        .unwrap()
        .is_none());
    assert_eq!(w.event_count().await, before);
}

pub async fn a_license_never_activated_is_refused_once_its_window_closed(w: World) {
    // photo-pro: first activation within 90 days of purchase.
    let (late, late_key) = w.mint("photo-pro", "o-late").await;
    assert_eq!(late.activate_by, Some(w.day(90)));
    let outcome = w.activate(late_key, "fp-1", w.day(91)).await;
    assert!(
        matches!(outcome, ActivationOutcome::Refused(Refusal::WindowClosed)),
        "{outcome:?}"
    );
    assert_eq!(
        w.events(&late.id).await[1..],
        [
            presented(PresentedBy::Activation),
            AuditEvent::ActivationRefused {
                code: "activation_window_closed".into(),
                fingerprint: "fp-1".into()
            }
        ],
        "the refused attempt presented the key and is on record"
    );
    assert!(w.store.activations(&late.id).await.unwrap().is_empty());
    // The window guards only a license never activated.
    let (early, early_key) = w.mint("photo-pro", "o-early").await;
    w.take_seat(early_key, "fp-1", w.day(10)).await;
    w.take_seat(early_key, "fp-2", w.day(200)).await;
    assert_eq!(w.store.activations(&early.id).await.unwrap().len(), 2);
}

pub async fn the_first_activation_starts_the_expiry_of_a_license_counted_from_activation(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    assert_eq!(l.expires_at, None, "counted from a first activation");
    let outcome = w.activate(key, "fp-1", w.day(30)).await;
    let ActivationOutcome::Granted { license, .. } = outcome else {
        panic!("{outcome:?}")
    };
    let expiry = Some(w.day(30 + 365));
    assert_eq!(license.expires_at, expiry, "the answer carries it");
    assert_eq!(license.updated_at, w.day(30));
    let (stored, _) = w.store.license(&l.id).await.unwrap().unwrap();
    assert_eq!(stored.expires_at, expiry, "and it is stored");
    w.take_seat(key, "fp-2", w.day(60)).await;
    let (stored, _) = w.store.license(&l.id).await.unwrap().unwrap();
    assert_eq!(
        stored.expires_at, expiry,
        "a later activation does not move it"
    );
    // A license counted from purchase keeps its expiry.
    let (fixed, fixed_key) = w.mint("font-pack", "o-2").await;
    w.take_seat(fixed_key, "fp-1", w.day(30)).await;
    let (stored, _) = w.store.license(&fixed.id).await.unwrap().unwrap();
    assert_eq!(stored.expires_at, fixed.expires_at);
    // Past its expiry a license refuses even the machine that holds a seat.
    let expired = w.activate(key, "fp-1", w.day(30 + 366)).await;
    assert!(
        matches!(expired, ActivationOutcome::Refused(Refusal::Expired)),
        "{expired:?}"
    );
}

pub async fn a_key_is_marked_presented_once_whoever_presents_it_first(w: World) {
    let claim = |w: &World, key: [u8; 32]| NewClaim {
        id: new_id("clm", w.t0),
        decision_id: new_id("dec", w.t0),
        credit_id: new_id("cre", w.t0),
        key_hash: key,
        email: None,
        message: None,
        rules: std::sync::Arc::new(keyclerk::domain::grace::ClaimRules {
            policy: w.claim_policy(),
            catalog: std::sync::Arc::clone(&w.catalog),
        }),
        locale: Default::default(),
        mail: false,
    };
    let firsts = |events: Vec<AuditEvent>| -> Vec<AuditEvent> {
        events
            .into_iter()
            .filter(|e| matches!(e, AuditEvent::KeyFirstPresented { .. }))
            .collect()
    };
    // Activation first, then validation and a claim.
    let (a, a_key) = w.mint("photo-pro", "o-a").await;
    w.take_seat(a_key, "fp-1", w.day(1)).await;
    w.store
        .mark_presented(a.id.clone(), PresentedBy::Validation, w.day(2))
        .await
        .unwrap();
    let outcome = w
        .store
        .file_claim(claim(&w, a_key), w.day(3))
        .await
        .unwrap();
    assert!(matches!(outcome, ClaimOutcome::NotNeeded(_)), "{outcome:?}");
    assert_eq!(
        firsts(w.events(&a.id).await),
        [presented(PresentedBy::Activation)]
    );
    // Validation first, twice.
    let (b, b_key) = w.mint("photo-pro", "o-b").await;
    for day in [1, 2] {
        w.store
            .mark_presented(b.id.clone(), PresentedBy::Validation, w.day(day))
            .await
            .unwrap();
    }
    w.take_seat(b_key, "fp-1", w.day(3)).await;
    assert_eq!(
        firsts(w.events(&b.id).await),
        [presented(PresentedBy::Validation)]
    );
    let facts = w.store.key_facts(b_key, None).await.unwrap().unwrap();
    assert!(facts.presented_before);
    // A claim first.
    let (c, c_key) = w.mint("photo-pro", "o-c").await;
    w.store
        .file_claim(claim(&w, c_key), w.day(1))
        .await
        .unwrap();
    w.take_seat(c_key, "fp-1", w.day(2)).await;
    assert_eq!(
        firsts(w.events(&c.id).await),
        [presented(PresentedBy::Claim)]
    );
    let (by, _) = w
        .events_by(&c.id)
        .await
        .into_iter()
        .find(|(_, e)| matches!(e, AuditEvent::KeyFirstPresented { .. }))
        .unwrap();
    assert_eq!(by, Actor::LicenseKey);
}

pub async fn machines_unseen_for_release_after_days_lose_their_seat_at_the_next_activation(
    w: World,
) {
    // studio-suite: 10 seats, machines unseen for 90 days are released.
    let (l, key) = w.mint("studio-suite", "o-1").await;
    let stale = w.take_seat(key, "fp-stale", w.t0).await;
    let edge = w.take_seat(key, "fp-edge", w.t0).await;
    let seen = w.take_seat(key, "fp-seen", w.t0).await;
    let mut times = SeenTimes::default();
    times.note(&l.id, Some(&edge), w.day(5));
    times.note(&l.id, Some(&seen), w.day(6));
    w.store.record_last_seen(times).await.unwrap();
    // At day 95 the cut-off is day 5: at or before it, the seat goes.
    let newcomer = w.take_seat(key, "fp-new", w.day(95)).await;
    let all = w.store.activations(&l.id).await.unwrap();
    let state = |id: &str| all.iter().find(|a| a.id == id).unwrap().deactivated_at;
    assert_eq!(state(&stale), Some(w.day(95)));
    assert_eq!(state(&edge), Some(w.day(95)));
    assert_eq!(state(&seen), None);
    assert_eq!(state(&newcomer), None);
    let released: Vec<(Actor, AuditEvent)> = w
        .events_by(&l.id)
        .await
        .into_iter()
        .filter(|(_, e)| matches!(e, AuditEvent::ActivationReleased { .. }))
        .collect();
    let mut released_ids: Vec<String> = released
        .iter()
        .map(|(actor, e)| {
            assert_eq!(actor, &Actor::System);
            match e {
                AuditEvent::ActivationReleased {
                    activation,
                    after_days: 90,
                } => activation.clone(),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    released_ids.sort();
    let mut expected = vec![stale.clone(), edge.clone()];
    expected.sort();
    assert_eq!(released_ids, expected);
    // A released machine comes back on a new seat.
    let back = w.activate(key, "fp-stale", w.day(96)).await;
    assert!(
        matches!(&back, ActivationOutcome::Granted { created: true, activation, .. } if activation.id != stale),
        "{back:?}"
    );
    // The release comes before the seats are counted: on a full license, the
    // machines it frees make room for the one asking.
    let policies = w.policies_with(
        "photo-basic",
        keyclerk::domain::activation::SeatPolicy {
            release_after_days: Some(30),
            ..w.policies.of("photo-basic")
        },
    );
    let (full, full_key) = w.mint("photo-basic", "o-full").await;
    for fp in ["fp-1", "fp-2"] {
        let req = w.activation_with(full_key, fp, w.t0, policies.clone());
        w.store.activate(req, w.t0).await.unwrap();
    }
    let req = w.activation_with(full_key, "fp-3", w.day(31), policies.clone());
    let outcome = w.store.activate(req, w.day(31)).await.unwrap();
    assert!(
        matches!(outcome, ActivationOutcome::Granted { created: true, .. }),
        "{outcome:?}"
    );
    let live = w.store.activations(&full.id).await.unwrap();
    assert_eq!(
        live.iter().filter(|a| a.deactivated_at.is_none()).count(),
        1
    );
    // A product without release_after_days never releases.
    let (basic, basic_key) = w.mint("photo-basic", "o-2").await;
    w.take_seat(basic_key, "fp-1", w.day(1)).await;
    w.take_seat(basic_key, "fp-2", w.day(3000)).await;
    assert!(w
        .store
        .activations(&basic.id)
        .await
        .unwrap()
        .iter()
        .all(|a| a.deactivated_at.is_none()));
}

fn deactivation(id: &str, by: Deactivator, policies: &Policies) -> Deactivation {
    Deactivation {
        activation_id: id.to_owned(),
        by,
        reason: None,
        policies: std::sync::Arc::clone(policies),
    }
}

pub async fn a_customer_deactivates_only_with_the_key_of_its_license(w: World) {
    let (l, key) = w.mint("photo-basic", "o-1").await;
    let (_, other_key) = w.mint("photo-basic", "o-2").await;
    let act = w.take_seat(key, "fp-1", w.day(1)).await;
    w.take_seat(key, "fp-2", w.day(1)).await;
    let before = w.event_count().await;
    for by in [
        Deactivator::Customer(other_key),
        Deactivator::Customer(fake_key().key_hash),
    ] {
        let outcome = w
            .store
            .deactivate(deactivation(&act, by, &w.policies), w.day(2))
            .await
            .unwrap();
        assert!(
            matches!(outcome, DeactivationOutcome::NotFound),
            "{outcome:?}"
        );
    }
    let outcome = w
        .store
        .deactivate(
            deactivation(
                &new_id("act", w.t0),
                Deactivator::Customer(key),
                &w.policies,
            ),
            w.day(2),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, DeactivationOutcome::NotFound));
    assert_eq!(
        w.event_count().await,
        before,
        "nothing learnt, nothing written"
    );
    let mut req = deactivation(&act, Deactivator::Customer(key), &w.policies);
    req.reason = Some("new laptop".into());
    let outcome = w.store.deactivate(req, w.day(2)).await.unwrap();
    let DeactivationOutcome::Deactivated {
        activation,
        already: false,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(activation.id, act);
    assert_eq!(activation.deactivated_at, Some(w.day(2)));
    assert_eq!(
        w.events_by(&l.id).await.last(),
        Some(&(
            Actor::LicenseKey,
            AuditEvent::ActivationDeactivated {
                activation: act.clone(),
                fingerprint: "fp-1".into(),
                by: DeactivatedBy::Customer,
                reason: Some("new laptop".into())
            }
        ))
    );
    let count = w.event_count().await;
    let again = w
        .store
        .deactivate(
            deactivation(&act, Deactivator::Customer(key), &w.policies),
            w.day(3),
        )
        .await
        .unwrap();
    assert!(
        matches!(&again, DeactivationOutcome::Deactivated { already: true, activation } if activation.deactivated_at == Some(w.day(2))),
        "{again:?}"
    );
    assert_eq!(
        w.event_count().await,
        count,
        "a second deactivation writes nothing"
    );
    // The seat is free again.
    w.take_seat(key, "fp-3", w.day(4)).await;
}

pub async fn the_churn_limit_counts_only_the_customers_deactivations(w: World) {
    let policies = w.policies_with(
        "studio-suite",
        SeatPolicy {
            max_deactivations_per_30_days: 2,
            release_after_days: None,
        },
    );
    let (l, key) = w.mint("studio-suite", "o-1").await;
    let mut acts = Vec::new();
    for i in 0..6 {
        acts.push(w.take_seat(key, &format!("fp-{i}"), w.day(1)).await);
    }
    // Support frees three seats: outside the limit.
    for a in &acts[..3] {
        let outcome = w
            .store
            .deactivate(
                deactivation(a, Deactivator::Support(support()), &policies),
                w.day(2),
            )
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            DeactivationOutcome::Deactivated { already: false, .. }
        ));
    }
    let support_events: Vec<_> = w
        .events_by(&l.id)
        .await
        .into_iter()
        .filter(|(_, e)| {
            matches!(
                e,
                AuditEvent::ActivationDeactivated {
                    by: DeactivatedBy::Support,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(support_events.len(), 3);
    assert!(support_events.iter().all(|(actor, _)| actor == &support()));
    // The customer may free two in 30 days.
    for (a, day) in [(&acts[3], 10), (&acts[4], 12)] {
        let outcome = w
            .store
            .deactivate(
                deactivation(a, Deactivator::Customer(key), &policies),
                w.day(day),
            )
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            DeactivationOutcome::Deactivated { already: false, .. }
        ));
    }
    let outcome = w
        .store
        .deactivate(
            deactivation(&acts[5], Deactivator::Customer(key), &policies),
            w.day(20),
        )
        .await
        .unwrap();
    let DeactivationOutcome::LimitReached(free_at) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(free_at, Some(w.day(40)), "when the first leaves the window");
    assert_eq!(
        w.events_by(&l.id).await.last(),
        Some(&(
            Actor::LicenseKey,
            AuditEvent::DeactivationRefused {
                activation: acts[5].clone(),
                code: "deactivation_limit_reached".into(),
                limit: 2
            }
        ))
    );
    let live = w.store.activations(&l.id).await.unwrap();
    assert!(live
        .iter()
        .any(|a| a.id == acts[5] && a.deactivated_at.is_none()));
    // Support is never limited.
    let outcome = w
        .store
        .deactivate(
            deactivation(&acts[5], Deactivator::Support(support()), &policies),
            w.day(20),
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        DeactivationOutcome::Deactivated { already: false, .. }
    ));
    // Once the first customer deactivation is 30 days old, one more fits.
    let more = w.take_seat(key, "fp-later", w.day(40)).await;
    let outcome = w
        .store
        .deactivate(
            deactivation(&more, Deactivator::Customer(key), &policies),
            w.day(40),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            DeactivationOutcome::Deactivated { already: false, .. }
        ),
        "{outcome:?}"
    );
}

pub async fn released_machines_do_not_count_toward_the_churn_limit(w: World) {
    let policies = w.policies_with(
        "studio-suite",
        SeatPolicy {
            max_deactivations_per_30_days: 1,
            release_after_days: Some(1),
        },
    );
    let (l, key) = w.mint("studio-suite", "o-1").await;
    let activate = |fp: &'static str, day: u32| {
        let req = w.activation_with(key, fp, w.day(day), policies.clone());
        let store = w.store.clone();
        let at = w.day(day);
        async move {
            match store.activate(req, at).await.unwrap() {
                ActivationOutcome::Granted { activation, .. } => activation.id,
                other => panic!("{fp}: {other:?}"),
            }
        }
    };
    let old = activate("fp-old", 0).await;
    let kept = activate("fp-kept", 5).await;
    let all = w.store.activations(&l.id).await.unwrap();
    assert_eq!(
        all.iter().find(|a| a.id == old).unwrap().deactivated_at,
        Some(w.day(5)),
        "released"
    );
    let outcome = w
        .store
        .deactivate(
            deactivation(&kept, Deactivator::Customer(key), &policies),
            w.day(5),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            DeactivationOutcome::Deactivated { already: false, .. }
        ),
        "the release was not the customer's: {outcome:?}"
    );
    let third = activate("fp-third", 5).await;
    let outcome = w
        .store
        .deactivate(
            deactivation(&third, Deactivator::Customer(key), &policies),
            w.day(5),
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, DeactivationOutcome::LimitReached(Some(_))),
        "{outcome:?}"
    );
}

pub async fn key_facts_tell_validation_what_it_needs(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let facts = w
        .store
        .key_facts(key, Some("fp-1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(facts.license, l);
    assert!(!facts.ever_activated);
    assert!(!facts.presented_before);
    assert_eq!(facts.activation_id, None);
    let before = w.event_count().await;
    w.store.key_facts(key, None).await.unwrap();
    assert_eq!(w.event_count().await, before, "a read writes nothing");
    let act = w.take_seat(key, "fp-1", w.day(1)).await;
    let facts = w
        .store
        .key_facts(key, Some("fp-1".into()))
        .await
        .unwrap()
        .unwrap();
    assert!(facts.ever_activated);
    assert!(facts.presented_before);
    assert_eq!(facts.activation_id.as_deref(), Some(act.as_str()));
    assert_eq!(facts.license.expires_at, Some(w.day(366)));
    let other = w
        .store
        .key_facts(key, Some("fp-2".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.activation_id, None);
    let none = w.store.key_facts(key, None).await.unwrap().unwrap();
    assert_eq!(none.activation_id, None);
    w.store
        .deactivate(
            deactivation(&act, Deactivator::Support(support()), &w.policies),
            w.day(2),
        )
        .await
        .unwrap();
    let after = w
        .store
        .key_facts(key, Some("fp-1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.activation_id, None, "a freed seat is no seat");
    assert!(after.ever_activated, "but the license was activated");
}

pub async fn last_seen_times_never_move_backwards(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let act = w.take_seat(key, "fp-1", w.day(10)).await;
    let last_seen = |w: &World| {
        let store = w.store.clone();
        let (l, act) = (l.id.clone(), act.clone());
        async move {
            store
                .activations(&l)
                .await
                .unwrap()
                .into_iter()
                .find(|a| a.id == act)
                .unwrap()
                .last_seen
        }
    };
    assert_eq!(last_seen(&w).await, w.day(10));
    let before = w.event_count().await;
    let write = |day: u32| {
        let mut t = SeenTimes::default();
        t.note(&l.id, Some(&act), w.day(day));
        t
    };
    w.store.record_last_seen(write(20)).await.unwrap();
    assert_eq!(last_seen(&w).await, w.day(20));
    w.store.record_last_seen(write(15)).await.unwrap();
    assert_eq!(
        last_seen(&w).await,
        w.day(20),
        "a late batch does not move it back"
    );
    let mut unknown = SeenTimes::default();
    unknown.note(&new_id("lic", w.t0), Some(&new_id("act", w.t0)), w.day(30));
    w.store.record_last_seen(unknown).await.unwrap();
    assert_eq!(
        w.event_count().await,
        before,
        "last-seen times write no event"
    );
}

pub async fn repeated_refusals_of_one_machine_are_chained_once_a_day_and_counted(w: World) {
    let (l, key) = w.mint("photo-pro", "o-late").await;
    for hour in 0..30 {
        let at = w.day(91) + chrono::Duration::hours(hour % 20);
        w.activate(key, "fp-1", at).await;
    }
    w.activate(key, "fp-2", w.day(91)).await;
    w.activate(key, "fp-1", w.day(92)).await;
    let history = w.store.history(&l.id, super::ALL).await.unwrap();
    let refused: Vec<_> = history
        .iter()
        .filter(|e| e.kind == "activation_refused")
        .collect();
    assert_eq!(
        refused.len(),
        3,
        "fp-1 on day 91, fp-2 on day 91, fp-1 on day 92"
    );
    let first = refused[0].repeats.expect("30 refusals of fp-1 that day");
    assert_eq!(first.count, 30);
    assert_eq!(first.last_at, w.day(91) + chrono::Duration::hours(19));
    assert_eq!(refused[1].repeats, None, "once is not a repeat");
    assert_eq!(refused[2].repeats, None, "a new day is a new event");
}

pub async fn a_history_page_starts_after_its_cursor(w: World) {
    let (l, _) = w.mint("photo-pro", "o-1").await;
    for (i, action) in [Action::Suspend, Action::Reinstate, Action::Suspend]
        .into_iter()
        .enumerate()
    {
        let day = u32::try_from(i).unwrap() + 1;
        w.store
            .transition(l.id.clone(), action, None, vendor(), w.day(day))
            .await
            .unwrap();
    }
    let all = w.store.history(&l.id, super::ALL).await.unwrap();
    assert_eq!(all.len(), 4);
    let page = |after, limit| EventPage { after, limit };
    let first = w.store.history(&l.id, page(None, 2)).await.unwrap();
    let rest = w
        .store
        .history(&l.id, page(Some(first[1].seq), 2))
        .await
        .unwrap();
    assert_eq!(first, all[..2]);
    assert_eq!(rest, all[2..]);
    let past = w
        .store
        .history(&l.id, page(Some(all[3].seq), 2))
        .await
        .unwrap();
    assert!(past.is_empty());
}

/// Whether an activation of `fingerprint` is refused for want of a seat.
async fn refused_for_seats(w: &World, key: [u8; 32], fingerprint: &str, at: Timestamp) -> bool {
    matches!(
        w.activate(key, fingerprint, at).await,
        ActivationOutcome::Refused(Refusal::SeatLimitReached)
    )
}

pub async fn the_seats_held_follow_every_way_a_seat_is_taken_and_freed(w: World) {
    // studio-suite: 10 seats, machines unseen for 90 days are released.
    let (l, key) = w.mint("studio-suite", "o-1").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(w.take_seat(key, &format!("fp-{i}"), w.t0).await);
    }
    assert!(refused_for_seats(&w, key, "fp-extra", w.t0).await);
    // A machine holding a seat refreshes at the limit.
    assert_eq!(w.take_seat(key, "fp-3", w.day(1)).await, ids[3]);
    // Support frees one: one more machine fits, not two.
    let freed = w
        .store
        .deactivate(
            deactivation(&ids[0], Deactivator::Support(support()), &w.policies),
            w.day(1),
        )
        .await
        .unwrap();
    assert!(matches!(
        freed,
        DeactivationOutcome::Deactivated { already: false, .. }
    ));
    let tenth = w.take_seat(key, "fp-10", w.day(1)).await;
    assert!(refused_for_seats(&w, key, "fp-extra", w.day(1)).await);
    // Freeing the same machine again gives nothing back.
    let again = w
        .store
        .deactivate(
            deactivation(&ids[0], Deactivator::Support(support()), &w.policies),
            w.day(2),
        )
        .await
        .unwrap();
    assert!(matches!(
        again,
        DeactivationOutcome::Deactivated { already: true, .. }
    ));
    assert!(refused_for_seats(&w, key, "fp-extra", w.day(2)).await);
    // fp-1, fp-2 and fp-4 are never seen again; the others are seen on day 60: at
    // day 95 the three are released, three newcomers fit and the fourth does not.
    let mut times = SeenTimes::default();
    for id in ids.iter().skip(5).chain([&ids[3], &tenth]) {
        times.note(&l.id, Some(id), w.day(60));
    }
    w.store.record_last_seen(times).await.unwrap();
    let at = w.day(95);
    for fp in ["fp-a", "fp-b", "fp-c"] {
        w.take_seat(key, fp, at).await;
    }
    assert!(refused_for_seats(&w, key, "fp-d", at).await);
    let live = w
        .store
        .activations(&l.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.deactivated_at.is_none())
        .count();
    assert_eq!(live, 10);
}

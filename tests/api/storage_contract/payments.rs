//! Payment events: stored once per provider and event id in the transaction of
//! their effect, whatever races them.

use keyclerk::domain::audit::{Actor, AuditEvent};
use keyclerk::domain::ids::new_id;
use keyclerk::domain::license::{Action, LicenseStatus};
use keyclerk::domain::payments::{LicenseChange, Outcome, Provider, Reference};
use keyclerk::storage::payments::{NewPaymentEvent, PaymentEffect, PaymentFilter, PaymentRequest};
use keyclerk::storage::{LicenseLookup, MintOutcome};

use super::races::at_once;
use super::{fake_key, request, World};

fn event(w: &World, event_id: &str) -> NewPaymentEvent {
    NewPaymentEvent {
        id: new_id("pay", w.t0),
        provider: Provider::Stripe,
        event_id: event_id.into(),
        kind: "checkout.session.completed".into(),
        received_at: w.t0,
        body: format!("{{\"id\":\"{event_id}\"}}"),
    }
}

fn mint(w: &World, event_id: &str, order: &str) -> PaymentRequest {
    PaymentRequest {
        event: event(w, event_id),
        effect: PaymentEffect::Mint {
            licenses: vec![(
                w.prepare(request("font-pack", &format!("stripe:{order}")), w.t0),
                fake_key(),
            )],
            refs: vec![
                Reference::order(order),
                Reference::payment(&format!("pi_{order}")),
            ],
        },
        again: None,
        now: w.t0,
    }
}

fn all(outcome: Option<Outcome>) -> PaymentFilter {
    PaymentFilter {
        provider: None,
        outcome,
        limit: 100,
        after: None,
    }
}

pub async fn twenty_concurrent_deliveries_of_one_payment_event_mint_once(w: World) {
    let results = at_once(20, |_| {
        let req = mint(&w, "evt_race", "cs_race");
        let store = w.store.clone();
        async move { store.apply_payment(req).await.unwrap() }
    });
    let first: Vec<_> = results.iter().filter(|r| !r.repeated).collect();
    assert_eq!(first.len(), 1, "one delivery applies the event");
    assert!(matches!(first[0].minted[..], [MintOutcome::Created(_)]));
    for r in &results {
        assert_eq!(
            r.event, first[0].event,
            "every delivery answers the stored event"
        );
        assert_eq!(r.event.outcome, Outcome::Applied);
    }
    let found = w
        .store
        .find_licenses(LicenseLookup::OrderId("stripe:cs_race".into()))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(w.events(&found[0].id).await.len(), 1, "one mint event");
    assert_eq!(w.store.payment_events(all(None)).await.unwrap().len(), 1);
}

pub async fn a_payment_finds_its_license_by_reference_and_acts_as_its_provider(w: World) {
    let minted = w
        .store
        .apply_payment(mint(&w, "evt_1", "cs_1"))
        .await
        .unwrap();
    let license = minted.event.licenses[0].clone();
    let refund = PaymentRequest {
        event: event(&w, "evt_2"),
        effect: PaymentEffect::Change {
            refs: vec![Reference::payment("pi_cs_1")],
            change: LicenseChange::Transition(Action::Refund),
        },
        again: None,
        now: w.day(1),
    };
    let refunded = w.store.apply_payment(refund).await.unwrap();
    assert_eq!(refunded.event.outcome, Outcome::Applied);
    assert_eq!(refunded.event.licenses, std::slice::from_ref(&license));
    let (stored, _) = w.store.license(&license).await.unwrap().unwrap();
    assert_eq!(stored.status, LicenseStatus::Refunded);
    let history = w.events_by(&license).await;
    let actor = Actor::Payment {
        provider: "stripe".into(),
    };
    assert!(matches!(&history[0], (a, AuditEvent::LicenseMinted { .. }) if *a == actor));
    assert!(matches!(&history[1], (a, AuditEvent::LicenseRefunded(_)) if *a == actor));

    let unknown = PaymentRequest {
        event: event(&w, "evt_3"),
        effect: PaymentEffect::Change {
            refs: vec![Reference::payment("pi_never_seen")],
            change: LicenseChange::Transition(Action::Refund),
        },
        again: None,
        now: w.day(1),
    };
    let unmapped = w.store.apply_payment(unknown).await.unwrap();
    assert_eq!(unmapped.event.outcome, Outcome::Unmapped);
    let listed = w
        .store
        .payment_events(all(Some(Outcome::Unmapped)))
        .await
        .unwrap();
    assert_eq!(listed, std::slice::from_ref(&unmapped.event));

    // Applied again (after a mapping was fixed): the stored row changes, once.
    let mut again = mint(&w, "evt_3", "cs_3");
    again.again = Some(unmapped.event.id.clone());
    let applied = w.store.apply_payment(again.clone()).await.unwrap();
    assert!(!applied.repeated);
    assert_eq!(applied.event.id, unmapped.event.id);
    assert_eq!(applied.event.outcome, Outcome::Applied);
    assert!(
        w.store.apply_payment(again).await.unwrap().repeated,
        "settled"
    );
    assert!(w
        .store
        .payment_events(all(Some(Outcome::Unmapped)))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        w.store.payment_event(&unmapped.event.id).await.unwrap(),
        Some(applied.event)
    );
}

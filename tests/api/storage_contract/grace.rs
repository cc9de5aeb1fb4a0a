//! Late claims: decisions and their effects, idempotent replay, the credit
//! ledger, customers' claims and support's resolutions.

use std::sync::Arc;

use keyclerk::domain::activation::Refusal;
use keyclerk::domain::audit::{Actor, AuditEvent, ClaimStatus, CreditMove};
use keyclerk::domain::grace::{
    ClaimPolicy, ClaimRules, DecisionResult, EarlierDecision, Evidence, RefusedAttempt, Remedy,
    AUTOMATIC_EXTENSION_REASON, MAX_LISTED_CLAIMS,
};
use keyclerk::domain::ids::new_id;
use keyclerk::domain::license::{License, LicenseStatus, MintRequest};
use keyclerk::domain::product::Price;
use keyclerk::domain::time::{self, Timestamp};
use keyclerk::domain::DomainError;
use keyclerk::storage::activation::ActivationOutcome;
use keyclerk::storage::grace::{
    ClaimOutcome, CreditEntry, Decision, DecisionOutcome, GraceRequest, Idempotency, NewClaim,
    Redemption, Target,
};
use keyclerk::storage::{LicenseLookup, MintOutcome};

use super::{fake_key, refused, request, support, vendor, World};

fn eur(amount: u64) -> Price {
    Price {
        amount,
        currency: "EUR".into(),
    }
}

async fn made(w: &World, req: GraceRequest, now: Timestamp) -> Decision {
    match w.store.decide(req, now).await.unwrap() {
        DecisionOutcome::Made(d) => d,
        other => panic!("expected a new decision, got {other:?}"),
    }
}

async fn license(w: &World, id: &str) -> License {
    w.store.license(id).await.unwrap().unwrap().0
}

/// The other product of a substitute or upgrade, as the service prepares it.
fn target(w: &World, original: &License, slug: &str, req: &GraceRequest, now: Timestamp) -> Target {
    let product = w.product(slug);
    let mut metadata = serde_json::Map::new();
    metadata.insert("replaces_order".into(), original.order_id.clone().into());
    let mint = MintRequest {
        product: slug.into(),
        order_id: format!("{}/{}", req.remedy.as_str(), req.id),
        customer_email: original.customer_email.clone(),
        purchased_at: None,
        seats: None,
        entitlements: None,
        expires_at: None,
        metadata: Some(metadata),
        send_email: None,
        locale: None,
    };
    Target {
        price: product.spec.price.clone(),
        license: mint
            .into_new_license(product, new_id("lic", now), now)
            .unwrap(),
        key: fake_key(),
    }
}

fn grace_event(e: &AuditEvent) -> bool {
    matches!(e, AuditEvent::GraceDecision { .. })
}

pub async fn an_extension_reopens_the_window_and_stores_the_fresh_key(w: World) {
    let (l, old_key) = w.mint("photo-pro", "o-1").await;
    let fresh = fake_key();
    let req = GraceRequest {
        fresh_key: Some(fresh.clone()),
        ..w.grace(&l, Remedy::Extend)
    };
    let decision = made(&w, req.clone(), w.day(100)).await;
    let deadline = w.day(190);
    assert_eq!(decision.id, req.id);
    assert_eq!(decision.license_id, l.id);
    assert_eq!(decision.remedy, Remedy::Extend);
    assert_eq!(decision.reason, req.reason);
    assert_eq!(decision.actor, serde_json::to_value(support()).unwrap());
    assert!(!decision.automatic);
    assert_eq!(decision.at, w.day(100));
    assert_eq!(decision.claim_id, None);
    assert_eq!(
        decision.result,
        DecisionResult {
            activate_by: Some(time::format(deadline)),
            days: Some(90),
            ..DecisionResult::default()
        },
        "the product's window by default"
    );
    let (after, key) = w.store.license(&l.id).await.unwrap().unwrap();
    assert_eq!(after.activate_by, Some(deadline));
    assert_eq!(after.status, LicenseStatus::Active);
    assert_eq!(
        key, fresh.stored,
        "the re-signed key is the license's key now"
    );
    assert_eq!(
        w.events_by(&l.id).await.last(),
        Some(&(
            support(),
            AuditEvent::GraceDecision {
                decision: req.id.clone(),
                remedy: Remedy::Extend,
                automatic: false,
                reason: req.reason.clone(),
                result: Box::new(decision.result.clone()),
                days_late: 10,
                ever_presented: false,
                claim: None,
            }
        ))
    );
    // Both keys activate now.
    w.take_seat(fresh.key_hash, "fp-1", w.day(101)).await;
    w.take_seat(old_key, "fp-2", w.day(101)).await;
    // Days given override the window.
    let d = made(
        &w,
        GraceRequest {
            days: Some(7),
            ..w.grace(&after, Remedy::Extend)
        },
        w.day(102),
    )
    .await;
    assert_eq!(d.result.days, Some(7));
    assert_eq!(license(&w, &l.id).await.activate_by, Some(w.day(109)));
}

pub async fn a_substitute_closes_the_license_and_mints_one_that_points_back(w: World) {
    // photo-pro (49 EUR) for photo-basic (29 EUR).
    let (l, old_key) = w.mint("photo-pro", "o-1").await;
    let mut req = w.grace(&l, Remedy::Substitute);
    let t = target(&w, &l, "photo-basic", &req, w.day(100));
    let new_id = t.license.license.id.clone();
    let new_key = t.key.clone();
    req.target = Some(t);
    let d = made(&w, req.clone(), w.day(100)).await;
    assert_eq!(d.result.new_license.as_deref(), Some(new_id.as_str()));
    let old = license(&w, &l.id).await;
    assert_eq!(old.status, LicenseStatus::Superseded);
    assert_eq!(old.superseded_by.as_deref(), Some(new_id.as_str()));
    assert_eq!(old.updated_at, w.day(100));
    let (new, stored) = w.store.license(&new_id).await.unwrap().unwrap();
    assert_eq!(new.status, LicenseStatus::Active);
    assert_eq!(new.product, "photo-basic");
    assert_eq!(new.supersedes.as_deref(), Some(l.id.as_str()));
    assert_eq!(new.customer_email, l.customer_email);
    assert_eq!(new.order_id, format!("substitute/{}", req.id));
    assert_eq!(stored, new_key.stored);
    let by_key = w
        .store
        .find_licenses(LicenseLookup::KeyHash(new_key.key_hash))
        .await
        .unwrap();
    assert_eq!(by_key, std::slice::from_ref(&new));
    let new_events = w.events(&new_id).await;
    assert!(
        matches!(&new_events[0], AuditEvent::LicenseMinted { product, .. } if product == "photo-basic")
    );
    assert_eq!(
        new_events[1..],
        [AuditEvent::LicenseReplaces {
            supersedes: l.id.clone(),
            decision: req.id.clone()
        }]
    );
    assert!(w.events(&l.id).await.iter().any(grace_event));
    // The old key is refused as superseded.
    let outcome = w.activate(old_key, "fp-1", w.day(101)).await;
    assert!(
        matches!(outcome, ActivationOutcome::Refused(Refusal::Superseded)),
        "{outcome:?}"
    );
}

pub async fn a_substitute_dearer_than_the_price_paid_is_refused_and_changes_nothing(w: World) {
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let mut req = w.grace(&l, Remedy::Substitute);
    let t = target(&w, &l, "studio-suite", &req, w.day(100));
    let order = t.license.license.order_id.clone();
    req.target = Some(t);
    let err = refused(w.store.decide(req.clone(), w.day(100)).await);
    assert_eq!(
        err,
        DomainError::SubstituteTooExpensive {
            price: 19900,
            ceiling: 4900
        }
    );
    // A tolerance lets a dearer one through.
    let mut tolerant = req.clone();
    tolerant.terms.substitute_tolerance_percent = 10;
    let mut cheap_target = target(&w, &l, "photo-pro", &req, w.day(100));
    cheap_target.price = eur(5390);
    tolerant.target = Some(cheap_target.clone());
    tolerant.id = new_id("dec", w.t0);
    // A product priced in another currency never is a substitute.
    let mut usd = req.clone();
    cheap_target.price = Price {
        amount: 100,
        currency: "USD".into(),
    };
    usd.target = Some(cheap_target);
    let err = refused(w.store.decide(usd, w.day(100)).await);
    assert!(
        matches!(err, DomainError::CurrencyMismatch { .. }),
        "{err:?}"
    );
    // An upgrade must be dearer.
    let mut upgrade = w.grace(&l, Remedy::Upgrade);
    upgrade.target = Some(target(&w, &l, "photo-basic", &upgrade, w.day(100)));
    assert_eq!(
        refused(w.store.decide(upgrade, w.day(100)).await),
        DomainError::UpgradeNotDearer
    );
    let mut no_product = w.grace(&l, Remedy::Substitute);
    no_product.target = None;
    assert_eq!(
        refused(w.store.decide(no_product, w.day(100)).await),
        DomainError::ProductRequired
    );
    assert_eq!(license(&w, &l.id).await, l, "untouched");
    assert!(w
        .store
        .find_licenses(LicenseLookup::OrderId(order))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(w.events(&l.id).await.len(), 1, "refusals write no event");
    let d = made(&w, tolerant, w.day(100)).await;
    assert!(d.result.new_license.is_some());
}

pub async fn an_upgrade_waits_for_the_difference_until_the_payment_is_confirmed(w: World) {
    // photo-pro (49 EUR) to studio-suite (199 EUR): 150 EUR due.
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let mut req = w.grace(&l, Remedy::Upgrade);
    let t = target(&w, &l, "studio-suite", &req, w.day(100));
    let new_id_ = t.license.license.id.clone();
    let new_key = t.key.key_hash;
    req.target = Some(t);
    let d = made(&w, req, w.day(100)).await;
    assert_eq!(d.result.amount_due, Some(eur(15000)));
    assert_eq!(d.result.new_license.as_deref(), Some(new_id_.as_str()));
    assert_eq!(license(&w, &l.id).await.status, LicenseStatus::Superseded);
    let pending = license(&w, &new_id_).await;
    assert_eq!(pending.status, LicenseStatus::PendingPayment);
    assert_eq!(pending.amount_due, Some(eur(15000)));
    let outcome = w.activate(new_key, "fp-1", w.day(101)).await;
    assert!(
        matches!(outcome, ActivationOutcome::Refused(Refusal::PendingPayment)),
        "{outcome:?}"
    );
    let paid = w
        .store
        .confirm_payment(new_id_.clone(), vendor(), w.day(102))
        .await
        .unwrap();
    assert_eq!(paid.status, LicenseStatus::Active);
    assert_eq!(paid.amount_due, None);
    assert_eq!(paid.updated_at, w.day(102));
    assert_eq!(license(&w, &new_id_).await, paid);
    assert_eq!(
        w.events_by(&new_id_).await.last(),
        Some(&(
            vendor(),
            AuditEvent::PaymentConfirmed {
                amount: Some(eur(15000))
            }
        ))
    );
    w.take_seat(new_key, "fp-1", w.day(103)).await;
    // Only from pending_payment.
    let again = refused(
        w.store
            .confirm_payment(new_id_.clone(), vendor(), w.day(104))
            .await,
    );
    assert_eq!(
        again,
        DomainError::InvalidTransition {
            action: "confirm-payment",
            status: LicenseStatus::Active
        }
    );
    let (plain, _) = w.mint("photo-pro", "o-2").await;
    assert!(matches!(
        refused(
            w.store
                .confirm_payment(plain.id, vendor(), w.day(104))
                .await
        ),
        DomainError::InvalidTransition { .. }
    ));
    assert_eq!(
        refused(
            w.store
                .confirm_payment(new_id("lic", w.t0), vendor(), w.day(104))
                .await
        ),
        DomainError::LicenseNotFound
    );
}

pub async fn a_credit_closes_the_license_and_grants_its_price_to_the_ledger(w: World) {
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let req = w.grace(&l, Remedy::Credit);
    let d = made(&w, req.clone(), w.day(100)).await;
    assert_eq!(d.result.credit, Some(eur(4900)));
    assert_eq!(d.result.credit_email.as_deref(), Some("ann@example.com"));
    assert_eq!(license(&w, &l.id).await.status, LicenseStatus::Credited);
    let ledger = w.store.credits("ann@example.com").await.unwrap();
    assert_eq!(
        ledger,
        [CreditEntry {
            id: req.credit_id.clone(),
            email: "ann@example.com".into(),
            amount: 4900,
            currency: "EUR".into(),
            kind: "grant".into(),
            license_id: Some(l.id.clone()),
            decision_id: Some(req.id.clone()),
            order_id: None,
            at: w.day(100),
        }]
    );
    let events = w.events_by(&l.id).await;
    assert!(events.contains(&(
        support(),
        AuditEvent::CreditGranted(CreditMove {
            entry: req.credit_id.clone(),
            email: "ann@example.com".into(),
            amount: 4900,
            currency: "EUR".into(),
            order_id: None
        })
    )));
    assert_eq!(events.iter().filter(|(_, e)| grace_event(e)).count(), 1);
    // Without an email on the license, the request must give one.
    let mut anonymous = request("photo-pro", "o-2");
    anonymous.customer_email = None;
    let (anon, _) = w.mint_request(anonymous).await;
    assert_eq!(
        refused(
            w.store
                .decide(w.grace(&anon, Remedy::Credit), w.day(100))
                .await
        ),
        DomainError::EmailRequired
    );
    assert_eq!(license(&w, &anon.id).await.status, LicenseStatus::Active);
    let d = made(
        &w,
        GraceRequest {
            email: Some("bob@example.com".into()),
            ..w.grace(&anon, Remedy::Credit)
        },
        w.day(100),
    )
    .await;
    assert_eq!(d.result.credit_email.as_deref(), Some("bob@example.com"));
    assert_eq!(w.store.credits("bob@example.com").await.unwrap().len(), 1);
}

pub async fn a_refund_closes_the_license_and_records_the_price(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let d = made(&w, w.grace(&l, Remedy::Refund), w.day(100)).await;
    assert_eq!(
        d.result,
        DecisionResult {
            refund: Some(eur(4900)),
            ..DecisionResult::default()
        }
    );
    let after = license(&w, &l.id).await;
    assert_eq!(after.status, LicenseStatus::Refunded);
    assert_eq!(after.updated_at, w.day(100));
    assert!(w.store.credits("ann@example.com").await.unwrap().is_empty());
    let outcome = w.activate(key, "fp-1", w.day(100)).await;
    assert!(matches!(
        outcome,
        ActivationOutcome::Refused(Refusal::Revoked)
    ));
}

pub async fn a_decline_changes_nothing_but_is_recorded(w: World) {
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let d = made(&w, w.grace(&l, Remedy::Decline), w.day(100)).await;
    assert_eq!(d.result, DecisionResult::default());
    assert_eq!(license(&w, &l.id).await, l, "not even updated_at");
    let last = w.events(&l.id).await.pop().unwrap();
    assert!(matches!(
        last,
        AuditEvent::GraceDecision {
            remedy: Remedy::Decline,
            ..
        }
    ));
    // A closed license may be declined, but nothing else.
    let revoked = w
        .store
        .transition(
            l.id.clone(),
            keyclerk::domain::license::Action::Revoke,
            None,
            vendor(),
            w.day(101),
        )
        .await
        .unwrap();
    made(&w, w.grace(&revoked, Remedy::Decline), w.day(102)).await;
    for remedy in [Remedy::Extend, Remedy::Credit, Remedy::Refund] {
        assert_eq!(
            refused(w.store.decide(w.grace(&revoked, remedy), w.day(102)).await),
            DomainError::InvalidTransition {
                action: remedy.as_str(),
                status: LicenseStatus::Revoked
            }
        );
    }
    assert_eq!(
        refused(
            w.store
                .decide(
                    GraceRequest {
                        license_id: new_id("lic", w.t0),
                        ..w.grace(&l, Remedy::Decline)
                    },
                    w.day(102)
                )
                .await
        ),
        DomainError::LicenseNotFound
    );
}

/// The events `Evidence::gather` reads (first presentation, activations, refused
/// activations, earlier decisions) come back from the store as written.
pub async fn a_decision_carries_the_evidence_the_log_holds(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let refusal = w.activate(key, "fp-1", w.day(100)).await;
    assert!(matches!(
        refusal,
        ActivationOutcome::Refused(Refusal::WindowClosed)
    ));
    let first = made(&w, w.grace(&l, Remedy::Extend), w.day(101)).await;
    let expected = Evidence {
        purchased_at: w.t0,
        activate_by: Some(w.day(90)),
        days_late: 11,
        ever_presented: true,
        first_presented_at: Some(w.day(100)),
        presented_before_deadline: false,
        ever_activated: false,
        first_downloaded_at: None,
        downloads: 0,
        refused_activations: vec![RefusedAttempt {
            at: w.day(100),
            code: "activation_window_closed".into(),
            attempts: 1,
            last_at: w.day(100),
        }],
        earlier_decisions: vec![],
    };
    assert_eq!(first.evidence, serde_json::to_value(&expected).unwrap());
    w.take_seat(key, "fp-1", w.day(102)).await;
    let second = made(&w, w.grace(&l, Remedy::Decline), w.day(103)).await;
    let expected = Evidence {
        activate_by: Some(w.day(191)),
        days_late: 0,
        presented_before_deadline: true,
        ever_activated: true,
        earlier_decisions: vec![EarlierDecision {
            at: w.day(101),
            decision: first.id.clone(),
            remedy: "extend".into(),
            automatic: false,
        }],
        ..expected
    };
    assert_eq!(second.evidence, serde_json::to_value(&expected).unwrap());
    let event = w.events(&l.id).await.pop().unwrap();
    assert!(matches!(
        event,
        AuditEvent::GraceDecision {
            days_late: 0,
            ever_presented: true,
            ..
        }
    ));
}

pub async fn the_evidence_read_alone_is_the_evidence_a_decision_records(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    assert_eq!(
        w.store.evidence("lic_unknown", w.day(1)).await.unwrap(),
        None
    );
    w.activate(key, "fp-1", w.day(100)).await;
    let read = w.store.evidence(&l.id, w.day(101)).await.unwrap().unwrap();
    assert_eq!(read.days_late, 11);
    assert_eq!(read.first_presented_at, Some(w.day(100)));
    assert_eq!(read.refused_activations.len(), 1);
    let decided = made(&w, w.grace(&l, Remedy::Extend), w.day(101)).await;
    assert_eq!(decided.evidence, serde_json::to_value(&read).unwrap());
    let after = w.store.evidence(&l.id, w.day(102)).await.unwrap().unwrap();
    assert_eq!(
        after.earlier_decisions.len(),
        1,
        "the decision is evidence now"
    );
    assert_eq!(after.earlier_decisions[0].decision, decided.id);
}

pub async fn a_decision_sent_again_under_its_idempotency_key_is_replayed(w: World) {
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let idem = |hash: u8| {
        Some(Idempotency {
            key: "retry-1".into(),
            request_hash: [hash; 32],
        })
    };
    let first = made(
        &w,
        GraceRequest {
            idempotency: idem(1),
            ..w.grace(&l, Remedy::Credit)
        },
        w.day(100),
    )
    .await;
    let count = w.event_count().await;
    // The retry comes with new ids, as the service makes them per request.
    let again = w
        .store
        .decide(
            GraceRequest {
                idempotency: idem(1),
                ..w.grace(&l, Remedy::Credit)
            },
            w.day(101),
        )
        .await
        .unwrap();
    let DecisionOutcome::Replayed(replayed) = again else {
        panic!("{again:?}")
    };
    assert_eq!(replayed, first, "the first decision, as it was");
    assert_eq!(w.event_count().await, count, "nothing done twice");
    assert_eq!(w.store.credits("ann@example.com").await.unwrap().len(), 1);
    let err = refused(
        w.store
            .decide(
                GraceRequest {
                    idempotency: idem(2),
                    ..w.grace(&l, Remedy::Decline)
                },
                w.day(101),
            )
            .await,
    );
    assert_eq!(err, DomainError::IdempotencyKeyReused);
    assert_eq!(w.event_count().await, count);
}

pub async fn the_price_paid_falls_back_to_the_catalog_price(w: World) {
    // A license minted before prices were kept.
    let mut old = w.prepare(request("photo-pro", "o-old"), w.t0);
    old.license.price = None;
    let MintOutcome::Created(l) = w.store.mint(old, fake_key(), vendor()).await.unwrap() else {
        panic!()
    };
    assert_eq!(l.price, None);
    let d = made(
        &w,
        {
            let mut r = w.grace(&l, Remedy::Refund);
            r.terms.catalog_price = Some(eur(3900));
            r
        },
        w.day(100),
    )
    .await;
    assert_eq!(d.result.refund, Some(eur(3900)), "the catalog's price");
    let mut gone = w.prepare(request("photo-pro", "o-gone"), w.t0);
    gone.license.price = None;
    let MintOutcome::Created(g) = w.store.mint(gone, fake_key(), vendor()).await.unwrap() else {
        panic!()
    };
    let err = refused(
        w.store
            .decide(
                {
                    let mut r = w.grace(&g, Remedy::Refund);
                    r.terms.catalog_price = None;
                    r
                },
                w.day(100),
            )
            .await,
    );
    assert_eq!(err, DomainError::PriceUnknown);
    // A price kept with the license wins over the catalog's.
    let (kept, _) = w.mint("photo-pro", "o-kept").await;
    let d = made(
        &w,
        {
            let mut r = w.grace(&kept, Remedy::Refund);
            r.terms.catalog_price = Some(eur(1));
            r
        },
        w.day(100),
    )
    .await;
    assert_eq!(d.result.refund, Some(eur(4900)));
}

fn redemption(w: &World, email: &str, order: &str, amount: Price) -> Redemption {
    Redemption {
        id: new_id("cre", w.t0),
        email: email.into(),
        order_id: order.into(),
        amount,
        actor: vendor(),
    }
}

pub async fn credit_is_redeemed_once_per_order_and_never_overdrawn(w: World) {
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let grant = made(&w, w.grace(&l, Remedy::Credit), w.day(1)).await;
    assert_eq!(grant.result.credit, Some(eur(4900)));
    let ann = "ann@example.com";
    let r = redemption(&w, ann, "shop-1", eur(1000));
    let count = w.event_count().await;
    let (entry, new) = w.store.redeem(r.clone(), w.day(2)).await.unwrap();
    assert!(new);
    assert_eq!(
        entry,
        CreditEntry {
            id: r.id.clone(),
            email: ann.into(),
            amount: -1000,
            currency: "EUR".into(),
            kind: "redeem".into(),
            license_id: None,
            decision_id: None,
            order_id: Some("shop-1".into()),
            at: w.day(2),
        }
    );
    assert_eq!(w.event_count().await, count + 1, "credit_redeemed");
    // The same order again finds the first redemption.
    let (again, new) = w
        .store
        .redeem(redemption(&w, ann, "shop-1", eur(1000)), w.day(3))
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(again, entry);
    assert_eq!(w.event_count().await, count + 1);
    for other in [
        redemption(&w, ann, "shop-1", eur(999)),
        redemption(&w, "bob@example.com", "shop-1", eur(1000)),
        redemption(
            &w,
            ann,
            "shop-1",
            Price {
                amount: 1000,
                currency: "USD".into(),
            },
        ),
    ] {
        assert_eq!(
            refused(w.store.redeem(other, w.day(3)).await),
            DomainError::OrderConflict("shop-1".into())
        );
    }
    assert_eq!(
        refused(
            w.store
                .redeem(redemption(&w, ann, "shop-2", eur(4000)), w.day(3))
                .await
        ),
        DomainError::InsufficientCredit {
            balance: 3900,
            amount: 4000
        }
    );
    assert_eq!(
        refused(
            w.store
                .redeem(
                    redemption(
                        &w,
                        ann,
                        "shop-2",
                        Price {
                            amount: 100,
                            currency: "USD".into()
                        }
                    ),
                    w.day(3)
                )
                .await
        ),
        DomainError::InsufficientCredit {
            balance: 0,
            amount: 100
        },
        "balances are per currency"
    );
    let (rest, new) = w
        .store
        .redeem(redemption(&w, ann, "shop-3", eur(3900)), w.day(4))
        .await
        .unwrap();
    assert!(new);
    let ledger = w.store.credits(ann).await.unwrap();
    assert_eq!(
        ledger.iter().map(|e| e.amount).collect::<Vec<_>>(),
        [4900, -1000, -3900],
        "oldest first"
    );
    assert_eq!(ledger[2], rest);
    assert_eq!(ledger.iter().map(|e| e.amount).sum::<i64>(), 0);
    assert_eq!(
        refused(
            w.store
                .redeem(redemption(&w, ann, "shop-4", eur(1)), w.day(5))
                .await
        ),
        DomainError::InsufficientCredit {
            balance: 0,
            amount: 1
        }
    );
    assert_eq!(w.event_count().await, count + 2);
}

fn claim(w: &World, key: [u8; 32], policy: ClaimPolicy) -> NewClaim {
    NewClaim {
        id: new_id("clm", w.t0),
        decision_id: new_id("dec", w.t0),
        credit_id: new_id("cre", w.t0),
        key_hash: key,
        email: Some("ann@example.com".into()),
        message: Some("I never got to install it".into()),
        rules: Arc::new(ClaimRules {
            policy,
            catalog: Arc::clone(&w.catalog),
        }),
        locale: Default::default(),
        mail: false,
    }
}

fn manual() -> ClaimPolicy {
    ClaimPolicy {
        auto_extend: false,
        ..ClaimPolicy::default()
    }
}

pub async fn a_claim_on_an_unknown_key_is_not_found(w: World) {
    w.mint("photo-pro", "o-1").await;
    let before = w.event_count().await;
    let outcome = w
        .store
        .file_claim(claim(&w, fake_key().key_hash, w.claim_policy()), w.day(100))
        .await
        .unwrap();
    assert!(matches!(outcome, ClaimOutcome::NotFound), "{outcome:?}");
    assert_eq!(w.event_count().await, before);
}

pub async fn a_claim_on_a_usable_key_is_not_needed(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let outcome = w
        .store
        .file_claim(claim(&w, key, w.claim_policy()), w.day(10))
        .await
        .unwrap();
    let ClaimOutcome::NotNeeded(found) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(found.id, l.id);
    for status in [
        ClaimStatus::Pending,
        ClaimStatus::Granted,
        ClaimStatus::Resolved,
    ] {
        assert!(w.store.claims(status).await.unwrap().is_empty());
    }
    assert_eq!(
        w.events(&l.id).await[1..],
        [AuditEvent::KeyFirstPresented {
            by: keyclerk::domain::audit::PresentedBy::Claim
        }],
        "presented, nothing filed"
    );
}

pub async fn a_late_claim_is_granted_by_the_policy_as_often_as_it_allows(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let (_, first_key) = w.store.license(&l.id).await.unwrap().unwrap();
    let c = claim(&w, key, w.claim_policy());
    let outcome = w.store.file_claim(c.clone(), w.day(100)).await.unwrap();
    let ClaimOutcome::Granted(d) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(d.id, c.decision_id);
    assert_eq!(d.license_id, l.id);
    assert_eq!(d.remedy, Remedy::Extend);
    assert!(d.automatic);
    assert_eq!(d.reason, AUTOMATIC_EXTENSION_REASON);
    assert_eq!(d.actor, serde_json::to_value(Actor::System).unwrap());
    assert_eq!(d.result.days, Some(90), "the product's window");
    let (after, key_after) = w.store.license(&l.id).await.unwrap().unwrap();
    assert_eq!(after.activate_by, Some(w.day(190)));
    assert_eq!(key_after, first_key, "the policy signs no new key");
    let granted = w.store.claims(ClaimStatus::Granted).await.unwrap();
    assert_eq!(granted.len(), 1);
    let g = &granted[0];
    assert_eq!(g.id, c.id);
    assert_eq!(g.license_id, l.id);
    assert_eq!(g.status, ClaimStatus::Granted);
    assert_eq!(g.decision_id.as_deref(), Some(d.id.as_str()));
    assert_eq!(g.email, c.email);
    assert_eq!(g.message, c.message);
    assert_eq!(g.note, None);
    assert_eq!(g.created_at, w.day(100));
    assert_eq!(g.resolved_at, Some(w.day(100)));
    let events = w.events_by(&l.id).await;
    assert!(events.contains(&(
        Actor::System,
        AuditEvent::GraceDecision {
            decision: d.id.clone(),
            remedy: Remedy::Extend,
            automatic: true,
            reason: AUTOMATIC_EXTENSION_REASON.into(),
            result: Box::new(d.result.clone()),
            days_late: 10,
            ever_presented: true,
            claim: None,
        }
    )));
    assert_eq!(
        events.last(),
        Some(&(
            Actor::LicenseKey,
            AuditEvent::ClaimFiled {
                claim: c.id.clone(),
                status: ClaimStatus::Granted,
                note: None,
                decision: Some(d.id.clone()),
                email: c.email.clone(),
            }
        ))
    );
    // The policy extends once; the next late claim waits for support.
    let again = claim(&w, key, w.claim_policy());
    let outcome = w.store.file_claim(again.clone(), w.day(200)).await.unwrap();
    let ClaimOutcome::Filed(filed) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(filed.status, ClaimStatus::Pending);
    assert_eq!(
        filed.note.as_deref(),
        Some("the automatic extensions are used up")
    );
    assert_eq!(license(&w, &l.id).await.activate_by, Some(w.day(190)));
    // The granted claim is closed: support cannot decide it again.
    let err = refused(
        w.store
            .resolve_claim(
                GraceRequest {
                    claim_id: Some(c.id.clone()),
                    ..w.grace(&after, Remedy::Decline)
                },
                w.day(201),
            )
            .await,
    );
    assert_eq!(err, DomainError::ClaimResolved);
}

pub async fn a_claim_the_policy_cannot_grant_is_filed_for_support(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let c = claim(&w, key, manual());
    let outcome = w.store.file_claim(c.clone(), w.day(100)).await.unwrap();
    let ClaimOutcome::Filed(filed) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(filed.id, c.id);
    assert_eq!(filed.license_id, l.id);
    assert_eq!(filed.status, ClaimStatus::Pending);
    assert_eq!(filed.note.as_deref(), Some("automatic extensions are off"));
    assert_eq!(filed.decision_id, None);
    assert_eq!(filed.created_at, w.day(100));
    assert_eq!(filed.resolved_at, None);
    assert_eq!(filed.email, c.email);
    assert_eq!(filed.message, c.message);
    let stored = w.store.claim(&c.id).await.unwrap().unwrap();
    assert_eq!(stored, *filed);
    let pending = w.store.claims(ClaimStatus::Pending).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, c.id);
    assert!(w
        .store
        .claims(ClaimStatus::Granted)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(license(&w, &l.id).await, l, "nothing decided");
    assert_eq!(
        w.events_by(&l.id).await.last(),
        Some(&(
            Actor::LicenseKey,
            AuditEvent::ClaimFiled {
                claim: c.id.clone(),
                status: ClaimStatus::Pending,
                note: Some("automatic extensions are off".into()),
                decision: None,
                email: c.email.clone(),
            }
        ))
    );
}

pub async fn support_resolves_a_pending_claim_once(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let c = claim(&w, key, manual());
    w.store.file_claim(c.clone(), w.day(100)).await.unwrap();
    let idem = Some(Idempotency {
        key: "resolve-1".into(),
        request_hash: [7; 32],
    });
    let req = GraceRequest {
        claim_id: Some(c.id.clone()),
        idempotency: idem.clone(),
        ..w.grace(&l, Remedy::Extend)
    };
    let outcome = w
        .store
        .resolve_claim(req.clone(), w.day(101))
        .await
        .unwrap();
    let DecisionOutcome::Made(d) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(d.claim_id.as_deref(), Some(c.id.as_str()));
    assert!(!d.automatic);
    assert_eq!(license(&w, &l.id).await.activate_by, Some(w.day(191)));
    let closed = w.store.claim(&c.id).await.unwrap().unwrap();
    assert_eq!(closed.status, ClaimStatus::Resolved);
    assert_eq!(closed.decision_id.as_deref(), Some(d.id.as_str()));
    assert_eq!(closed.resolved_at, Some(w.day(101)));
    assert!(w
        .store
        .claims(ClaimStatus::Pending)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        w.store.claims(ClaimStatus::Resolved).await.unwrap().len(),
        1
    );
    assert!(w.events(&l.id).await.iter().any(|e| matches!(
        e,
        AuditEvent::GraceDecision { claim: Some(id), automatic: false, .. } if id == &c.id
    )));
    let count = w.event_count().await;
    // A retry under the key finds the decision again.
    let retry = w
        .store
        .resolve_claim(
            GraceRequest {
                claim_id: Some(c.id.clone()),
                idempotency: idem,
                ..w.grace(&l, Remedy::Extend)
            },
            w.day(102),
        )
        .await
        .unwrap();
    assert!(
        matches!(&retry, DecisionOutcome::Replayed(r) if r.id == d.id),
        "{retry:?}"
    );
    // Without the key the claim is closed.
    let err = refused(
        w.store
            .resolve_claim(
                GraceRequest {
                    claim_id: Some(c.id.clone()),
                    ..w.grace(&l, Remedy::Decline)
                },
                w.day(102),
            )
            .await,
    );
    assert_eq!(err, DomainError::ClaimResolved);
    let err = refused(
        w.store
            .resolve_claim(
                GraceRequest {
                    claim_id: Some(new_id("clm", w.t0)),
                    ..w.grace(&l, Remedy::Decline)
                },
                w.day(102),
            )
            .await,
    );
    assert_eq!(err, DomainError::ClaimNotFound);
    assert_eq!(w.event_count().await, count);
}

pub async fn claims_are_listed_oldest_first_at_most_500(w: World) {
    let n = MAX_LISTED_CLAIMS as usize + 1;
    let mut items = Vec::new();
    let mut keys = Vec::new();
    for i in 0..n {
        let key = fake_key();
        keys.push(key.key_hash);
        items.push((
            w.prepare(request("photo-pro", &format!("o-{i}")), w.t0),
            key,
        ));
    }
    w.store.mint_batch(items, vendor()).await.unwrap();
    let mut filed = Vec::new();
    // Filed a second apart, and all queued at once.
    let tasks: Vec<_> = keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| {
            let c = claim(&w, key, manual());
            filed.push(c.id.clone());
            let store = Arc::clone(&w.store);
            let at = time::from_unix(w.day(100).timestamp() + i as i64);
            tokio::spawn(async move { store.file_claim(c, at).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), ClaimOutcome::Filed(_)));
    }
    let listed = w.store.claims(ClaimStatus::Pending).await.unwrap();
    assert_eq!(listed.len(), MAX_LISTED_CLAIMS as usize);
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    let oldest: Vec<&str> = filed[..MAX_LISTED_CLAIMS as usize]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(ids, oldest, "the oldest 500, oldest first");
    assert!(listed.windows(2).all(|p| p[0].created_at < p[1].created_at));
    // The newest, past the queue's 500, is still found on its license (its page).
    let newest = w.store.claim(&filed[n - 1]).await.unwrap().unwrap();
    let own = w
        .store
        .license_claims(&newest.license_id, ClaimStatus::Pending)
        .await
        .unwrap();
    assert_eq!(own, vec![newest.clone()]);
    assert!(w
        .store
        .license_claims(&newest.license_id, ClaimStatus::Resolved)
        .await
        .unwrap()
        .is_empty());
}

pub async fn the_queue_reads_its_claims_licenses_and_evidence_in_one_go(w: World) {
    let mut filed = Vec::new();
    for i in 0..3 {
        let (l, key) = w.mint("photo-pro", &format!("o-{i}")).await;
        if i == 1 {
            w.activate(key, "fp-1", w.day(95)).await;
        }
        let c = claim(&w, key, manual());
        let at = time::from_unix(w.day(100).timestamp() + i);
        let outcome = w.store.file_claim(c.clone(), at).await.unwrap();
        assert!(matches!(outcome, ClaimOutcome::Filed(_)), "{outcome:?}");
        filed.push((c.id, l.id));
    }
    let now = w.day(101);
    let queue = w
        .store
        .claims_with_evidence(ClaimStatus::Pending, 2, now)
        .await
        .unwrap();
    let ids: Vec<&str> = queue.iter().map(|q| q.claim.id.as_str()).collect();
    let oldest: Vec<&str> = filed.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(ids, oldest, "every pending claim, oldest first");
    for (q, (_, license_id)) in queue.iter().zip(&filed).take(2) {
        let (l, evidence) = q.read.as_ref().expect("the first two are read");
        assert_eq!(*l, license(&w, license_id).await);
        let alone = w.store.evidence(license_id, now).await.unwrap().unwrap();
        assert_eq!(*evidence, alone, "the evidence read alone");
    }
    assert_eq!(
        queue[1].read.as_ref().unwrap().1.refused_activations.len(),
        1
    );
    assert!(
        queue[2].read.is_none(),
        "past with_evidence: the claim only"
    );
    assert!(w
        .store
        .claims_with_evidence(ClaimStatus::Resolved, 2, now)
        .await
        .unwrap()
        .is_empty());
}

pub async fn an_idempotency_key_is_scoped_to_its_license(w: World) {
    let (a, _) = w.mint("photo-pro", "o-a").await;
    let (b, _) = w.mint("photo-pro", "o-b").await;
    let idem = Some(Idempotency {
        key: "ticket-7".into(),
        request_hash: [7; 32],
    });
    let first = made(
        &w,
        GraceRequest {
            idempotency: idem.clone(),
            ..w.grace(&a, Remedy::Decline)
        },
        w.day(100),
    )
    .await;
    let other = made(
        &w,
        GraceRequest {
            idempotency: idem,
            ..w.grace(&b, Remedy::Decline)
        },
        w.day(100),
    )
    .await;
    assert_ne!(first.id, other.id, "another license's key space");
    assert_eq!(other.license_id, b.id);
}

pub async fn concurrent_resolutions_of_one_claim_decide_once(w: World) {
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let c = claim(&w, key, manual());
    w.store.file_claim(c.clone(), w.day(100)).await.unwrap();
    let at = w.day(101);
    super::races::warm_up(&w, 10);
    let outcomes = super::races::at_once(10, |_| {
        let store = w.store.clone();
        let req = GraceRequest {
            claim_id: Some(c.id.clone()),
            ..w.grace(&l, Remedy::Extend)
        };
        async move { store.resolve_claim(req, at).await }
    });
    let made = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(DecisionOutcome::Made(_))))
        .count();
    assert_eq!(made, 1, "{outcomes:?}");
    for o in outcomes {
        if !matches!(o, Ok(DecisionOutcome::Made(_))) {
            assert_eq!(refused(o), DomainError::ClaimResolved);
        }
    }
    let decisions = w
        .events(&l.id)
        .await
        .into_iter()
        .filter(grace_event)
        .count();
    assert_eq!(decisions, 1);
}

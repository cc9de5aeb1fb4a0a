//! Minting, look-ups, the list, transitions and renewals.

use keyclerk::domain::audit::{AuditEvent, StatusChange};
use keyclerk::domain::grace::Remedy;
use keyclerk::domain::ids::new_id;
use keyclerk::domain::license::{Action, LicenseStatus, MAX_EMAIL_MATCHES};
use keyclerk::domain::time::plus_days;
use keyclerk::domain::DomainError;
use keyclerk::storage::grace::{DecisionOutcome, GraceRequest};

use keyclerk::storage::{IssuedKey, LicenseLookup, LicensePage, MintOutcome, StorageError};

use super::{fake_key, refused, request, vendor, World};

pub async fn a_new_order_is_minted_with_its_key_and_event(w: World) {
    let new = w.prepare(request("photo-pro", "o-1"), w.t0);
    let key = fake_key();
    let outcome = w
        .store
        .mint(new.clone(), key.clone(), vendor())
        .await
        .unwrap();
    let MintOutcome::Created(license) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(license, new.license, "stored as the domain made it");
    let (stored, stored_key) = w.store.license(&license.id).await.unwrap().unwrap();
    assert_eq!(stored, new.license, "and read back the same");
    assert_eq!(stored_key, key.stored);
    let events = w.events_by(&license.id).await;
    assert_eq!(
        events,
        [(vendor(), new.minted_event(&key.stored.kid))],
        "one license_minted event, by the vendor, naming the key's kid"
    );
    assert!(matches!(
        &events[0].1,
        AuditEvent::LicenseMinted { order_id, seats: 3, .. } if order_id == "o-1"
    ));
}

pub async fn the_same_order_minted_again_finds_the_first_license_and_key(w: World) {
    let first_key = fake_key();
    let first = w.prepare(request("photo-pro", "o-1"), w.t0);
    w.store
        .mint(first.clone(), first_key.clone(), vendor())
        .await
        .unwrap();
    // The shop retries a day later: a new id, a new key, the same fields.
    let again = w.prepare(request("photo-pro", "o-1"), w.day(1));
    assert_eq!(again.request_hash, first.request_hash);
    let second_key = fake_key();
    let outcome = w
        .store
        .mint(again, second_key.clone(), vendor())
        .await
        .unwrap();
    let MintOutcome::Existing(license, stored) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(license, first.license, "the first license");
    assert_eq!(stored, first_key.stored, "with the first key");
    assert_eq!(w.events(&license.id).await.len(), 1, "no second event");
    let by_second_key = w
        .store
        .find_licenses(LicenseLookup::KeyHash(second_key.key_hash))
        .await
        .unwrap();
    assert!(by_second_key.is_empty(), "the retry's key was not stored");
    assert_eq!(w.event_count().await, 1);
}

pub async fn a_second_mint_of_an_order_with_other_fields_is_an_order_conflict(w: World) {
    let (first, _) = w.mint("photo-pro", "o-1").await;
    let mut other = request("photo-pro", "o-1");
    other.seats = Some(5);
    let new = w.prepare(other, w.day(1));
    let key = fake_key();
    let err = refused(w.store.mint(new.clone(), key.clone(), vendor()).await);
    assert_eq!(err, DomainError::OrderConflict("o-1".into()));
    let mut other_product = request("font-pack", "o-1");
    other_product.customer_email = None;
    let err = refused(
        w.store
            .mint(w.prepare(other_product, w.day(1)), fake_key(), vendor())
            .await,
    );
    assert_eq!(err, DomainError::OrderConflict("o-1".into()));
    assert!(w.store.license(&new.license.id).await.unwrap().is_none());
    assert!(w
        .store
        .find_licenses(LicenseLookup::KeyHash(key.key_hash))
        .await
        .unwrap()
        .is_empty());
    let (stored, _) = w.store.license(&first.id).await.unwrap().unwrap();
    assert_eq!(stored.seats, 3, "the first license is untouched");
    assert_eq!(w.event_count().await, 1, "a conflict writes no event");
}

/// An extension whose re-signed key hashes like the stored one (a short key is
/// derived from the license id, so it comes out the same) keeps the first payload.
pub async fn a_reissued_key_keeps_the_first_stored_payload(w: World) {
    let mut req = request("font-pack", "o-short");
    req.customer_email = None;
    let new = w.prepare(req, w.t0);
    let key = fake_key();
    w.store
        .mint(new.clone(), key.clone(), vendor())
        .await
        .unwrap();
    let same_hash = IssuedKey {
        key_hash: key.key_hash,
        stored: keyclerk::storage::StoredKey {
            kid: "k4.pid.another".into(),
            payload: "another payload".into(),
        },
    };
    let outcome = w
        .store
        .decide(
            GraceRequest {
                fresh_key: Some(same_hash),
                days: Some(30),
                ..w.grace(&new.license, Remedy::Extend)
            },
            w.day(10),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, DecisionOutcome::Made(_)));
    let (license, stored) = w.store.license(&new.license.id).await.unwrap().unwrap();
    assert_eq!(stored, key.stored, "the first payload is kept");
    assert_eq!(license.activate_by, Some(plus_days(w.day(10), 30)));
}

pub async fn a_fresh_key_becomes_the_license_key_and_the_old_one_still_finds_it(w: World) {
    let (license, old_hash) = w.mint("photo-pro", "o-1").await;
    let fresh = fake_key();
    w.store
        .decide(
            GraceRequest {
                fresh_key: Some(fresh.clone()),
                ..w.grace(&license, Remedy::Extend)
            },
            w.day(100),
        )
        .await
        .unwrap();
    let (_, stored) = w.store.license(&license.id).await.unwrap().unwrap();
    assert_eq!(
        stored, fresh.stored,
        "license() answers the key last issued"
    );
    // Issued in the same second as the mint, the fresh key is still the later one.
    let (same_second, _) = w.mint("photo-pro", "o-2").await;
    let fresh_now = fake_key();
    w.store
        .decide(
            GraceRequest {
                fresh_key: Some(fresh_now.clone()),
                ..w.grace(&same_second, Remedy::Extend)
            },
            w.t0,
        )
        .await
        .unwrap();
    let (_, stored) = w.store.license(&same_second.id).await.unwrap().unwrap();
    assert_eq!(stored, fresh_now.stored);
    for hash in [old_hash, fresh.key_hash] {
        let found = w
            .store
            .find_licenses(LicenseLookup::KeyHash(hash))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, license.id);
    }
}

pub async fn a_batch_fails_only_the_item_a_rule_refuses(w: World) {
    let (existing, _) = w.mint("photo-pro", "o-old").await;
    let mut conflicting = request("photo-pro", "o-old");
    conflicting.seats = Some(2);
    let items = vec![
        (w.prepare(request("photo-pro", "o-a"), w.t0), fake_key()),
        (w.prepare(conflicting, w.t0), fake_key()),
        (w.prepare(request("photo-basic", "o-b"), w.t0), fake_key()),
        (w.prepare(request("photo-pro", "o-old"), w.t0), fake_key()),
    ];
    let ids: Vec<String> = items.iter().map(|(n, _)| n.license.id.clone()).collect();
    let results = w.store.mint_batch(items, vendor()).await.unwrap();
    assert_eq!(results.len(), 4);
    assert!(matches!(&results[0], Ok(MintOutcome::Created(l)) if l.id == ids[0]));
    assert!(matches!(
        &results[1],
        Err(StorageError::Domain(DomainError::OrderConflict(o))) if o == "o-old"
    ));
    assert!(matches!(&results[2], Ok(MintOutcome::Created(l)) if l.id == ids[2]));
    assert!(matches!(&results[3], Ok(MintOutcome::Existing(l, _)) if l.id == existing.id));
    for id in [&ids[0], &ids[2]] {
        assert!(w.store.license(id).await.unwrap().is_some());
        assert_eq!(w.events(id).await.len(), 1);
    }
    assert!(w.store.license(&ids[1]).await.unwrap().is_none());
    assert_eq!(w.event_count().await, 3, "o-old, o-a and o-b minted");
    // Within one batch, a repeat of an earlier item finds it, a changed one conflicts.
    let mut changed = request("photo-pro", "o-c");
    changed.seats = Some(1);
    let items = vec![
        (w.prepare(request("photo-pro", "o-c"), w.t0), fake_key()),
        (w.prepare(request("photo-pro", "o-c"), w.t0), fake_key()),
        (w.prepare(changed, w.t0), fake_key()),
    ];
    let first = items[0].0.license.id.clone();
    let results = w.store.mint_batch(items, vendor()).await.unwrap();
    assert!(matches!(&results[0], Ok(MintOutcome::Created(l)) if l.id == first));
    assert!(matches!(&results[1], Ok(MintOutcome::Existing(l, _)) if l.id == first));
    assert!(matches!(
        &results[2],
        Err(StorageError::Domain(DomainError::OrderConflict(o))) if o == "o-c"
    ));
    assert_eq!(w.event_count().await, 4);
}

/// Two items with one license id: the database refuses the second, which is no
/// rule of the product, so the whole batch rolls back.
pub async fn a_batch_with_an_item_the_database_refuses_stores_nothing(w: World) {
    w.mint("photo-pro", "o-before").await;
    let first = w.prepare(request("photo-pro", "o-a"), w.t0);
    let mut clash = w.prepare(request("photo-pro", "o-b"), w.t0);
    clash.license.id = first.license.id.clone();
    let result = w
        .store
        .mint_batch(
            vec![(first.clone(), fake_key()), (clash, fake_key())],
            vendor(),
        )
        .await;
    assert!(
        matches!(result, Err(StorageError::Database(_))),
        "{result:?}"
    );
    assert!(w.store.license(&first.license.id).await.unwrap().is_none());
    assert!(w
        .store
        .find_licenses(LicenseLookup::OrderId("o-a".into()))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(w.event_count().await, 1, "only the mint before the batch");
}

pub async fn an_email_lookup_answers_at_most_100_licenses_in_mint_order(w: World) {
    let n = MAX_EMAIL_MATCHES as usize + 1;
    let mut items = Vec::new();
    for i in 0..n {
        let mut req = request("font-pack", &format!("o-{i}"));
        req.customer_email = Some("Many@Example.com".into());
        items.push((w.prepare(req, w.t0), fake_key()));
    }
    let mut other = request("font-pack", "o-other");
    other.customer_email = Some("other@example.com".into());
    items.push((w.prepare(other, w.t0), fake_key()));
    let ids: Vec<String> = items.iter().map(|(n, _)| n.license.id.clone()).collect();
    for r in w.store.mint_batch(items, vendor()).await.unwrap() {
        assert!(matches!(r, Ok(MintOutcome::Created(_))));
    }
    let found = w
        .store
        .find_licenses(LicenseLookup::Email("many@example.com".into()))
        .await
        .unwrap();
    assert_eq!(found.len(), MAX_EMAIL_MATCHES as usize);
    let found_ids: Vec<&str> = found.iter().map(|l| l.id.as_str()).collect();
    let first: Vec<&str> = ids[..MAX_EMAIL_MATCHES as usize]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(found_ids, first, "the first 100 minted, in mint order");
    let other = w
        .store
        .find_licenses(LicenseLookup::Email("other@example.com".into()))
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    assert!(w
        .store
        .find_licenses(LicenseLookup::Email("nobody@example.com".into()))
        .await
        .unwrap()
        .is_empty());
}

pub async fn licenses_are_found_by_order_id_and_by_key_hash(w: World) {
    let (a, a_key) = w.mint("photo-pro", "o-a").await;
    let (b, b_key) = w.mint("font-pack", "o-b").await;
    for (license, key) in [(&a, a_key), (&b, b_key)] {
        let by_order = w
            .store
            .find_licenses(LicenseLookup::OrderId(license.order_id.clone()))
            .await
            .unwrap();
        assert_eq!(by_order, std::slice::from_ref(license));
        let by_key = w
            .store
            .find_licenses(LicenseLookup::KeyHash(key))
            .await
            .unwrap();
        assert_eq!(by_key, std::slice::from_ref(license));
    }
    assert!(w
        .store
        .find_licenses(LicenseLookup::OrderId("o-none".into()))
        .await
        .unwrap()
        .is_empty());
    assert!(w
        .store
        .find_licenses(LicenseLookup::KeyHash(fake_key().key_hash))
        .await
        .unwrap()
        .is_empty());
}

pub async fn the_list_pages_by_id_in_mint_order_with_status_and_product_filters(w: World) {
    let mut minted = Vec::new();
    for i in 0..8 {
        let product = if i % 3 == 2 { "font-pack" } else { "photo-pro" };
        let (l, _) = w.mint(product, &format!("o-{i}")).await;
        minted.push(l);
    }
    for l in [&minted[1], &minted[5]] {
        w.store
            .transition(l.id.clone(), Action::Suspend, None, vendor(), w.day(1))
            .await
            .unwrap();
    }
    let page =
        |status: Option<LicenseStatus>, product: Option<&str>, after: Option<String>| LicensePage {
            status,
            product: product.map(str::to_owned),
            limit: 3,
            after,
        };
    let walk = |status: Option<LicenseStatus>, product: Option<&'static str>| {
        let store = w.store.clone();
        async move {
            let mut all = Vec::new();
            let mut pages = 0;
            let mut after = None;
            loop {
                let got = store
                    .list_licenses(page(status, product, after.clone()))
                    .await
                    .unwrap();
                assert!(got.len() <= 3);
                pages += 1;
                let Some(last) = got.last() else { break };
                after = Some(last.id.clone());
                all.extend(got.into_iter().map(|l| l.id));
            }
            (all, pages)
        }
    };
    let ids = |pick: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..minted.len())
            .filter(|&i| pick(i))
            .map(|i| minted[i].id.clone())
            .collect()
    };
    let (all, pages) = walk(None, None).await;
    assert_eq!(all, ids(&|_| true), "every license once, in mint order");
    assert_eq!(pages, 4, "3 + 3 + 2, then an empty page");
    let (fonts, _) = walk(None, Some("font-pack")).await;
    assert_eq!(fonts, ids(&|i| i % 3 == 2));
    let (suspended, _) = walk(Some(LicenseStatus::Suspended), None).await;
    assert_eq!(suspended, ids(&|i| i == 1 || i == 5));
    let (active_photo, _) = walk(Some(LicenseStatus::Active), Some("photo-pro")).await;
    assert_eq!(active_photo, ids(&|i| i % 3 != 2 && i != 1 && i != 5));
    let after_last = w
        .store
        .list_licenses(page(None, None, Some(minted[7].id.clone())))
        .await
        .unwrap();
    assert!(after_last.is_empty());
    // A cursor need not be a stored id: ids sort by time, so any id works.
    let before_all = w
        .store
        .list_licenses(LicensePage {
            status: None,
            product: None,
            limit: 100,
            after: Some("lic_".into()),
        })
        .await
        .unwrap();
    assert_eq!(before_all.len(), 8);
}

pub async fn suspend_reinstate_revoke_and_refund_follow_the_table_with_their_events(w: World) {
    let (a, _) = w.mint("photo-pro", "o-a").await;
    let (b, _) = w.mint("photo-pro", "o-b").await;
    let steps = [
        (&a, Action::Suspend, LicenseStatus::Suspended),
        (&a, Action::Reinstate, LicenseStatus::Active),
        (&a, Action::Revoke, LicenseStatus::Revoked),
        (&b, Action::Suspend, LicenseStatus::Suspended),
        (&b, Action::Refund, LicenseStatus::Refunded),
    ];
    for (i, (license, action, to)) in steps.into_iter().enumerate() {
        let at = w.day(i as u32 + 1);
        let after = w
            .store
            .transition(
                license.id.clone(),
                action,
                Some(format!("step {i}")),
                vendor(),
                at,
            )
            .await
            .unwrap();
        assert_eq!(after.status, to);
        assert_eq!(after.updated_at, at);
        let (stored, _) = w.store.license(&license.id).await.unwrap().unwrap();
        assert_eq!(stored, after);
    }
    let change = |from: &str, to: &str, i: u32| StatusChange {
        from: from.into(),
        to: to.into(),
        reason: Some(format!("step {i}")),
    };
    assert_eq!(
        w.events(&a.id).await[1..],
        [
            AuditEvent::LicenseSuspended(change("active", "suspended", 0)),
            AuditEvent::LicenseReinstated(change("suspended", "active", 1)),
            AuditEvent::LicenseRevoked(change("active", "revoked", 2)),
        ]
    );
    assert_eq!(
        w.events(&b.id).await[1..],
        [
            AuditEvent::LicenseSuspended(change("active", "suspended", 3)),
            AuditEvent::LicenseRefunded(change("suspended", "refunded", 4)),
        ]
    );
}

pub async fn an_invalid_transition_is_refused_and_changes_nothing(w: World) {
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let revoked = w
        .store
        .transition(l.id.clone(), Action::Revoke, None, vendor(), w.day(1))
        .await
        .unwrap();
    for action in [
        Action::Reinstate,
        Action::Suspend,
        Action::Refund,
        Action::Revoke,
    ] {
        let err = refused(
            w.store
                .transition(l.id.clone(), action, None, vendor(), w.day(2))
                .await,
        );
        assert_eq!(
            err,
            DomainError::InvalidTransition {
                action: action.as_str(),
                status: LicenseStatus::Revoked
            }
        );
    }
    let err = refused(w.store.renew(l.id.clone(), None, vendor(), w.day(2)).await);
    assert!(matches!(
        err,
        DomainError::InvalidTransition {
            action: "renew",
            ..
        }
    ));
    assert_eq!(w.store.license(&l.id).await.unwrap().unwrap().0, revoked);
    assert_eq!(w.events(&l.id).await.len(), 2, "minted and revoked only");
    let err = refused(
        w.store
            .transition(new_id("lic", w.t0), Action::Suspend, None, vendor(), w.t0)
            .await,
    );
    assert_eq!(err, DomainError::LicenseNotFound);
    let err = refused(
        w.store
            .renew(new_id("lic", w.t0), None, vendor(), w.t0)
            .await,
    );
    assert_eq!(err, DomainError::LicenseNotFound);
}

pub async fn a_renewal_adds_one_period_by_default_or_the_days_given(w: World) {
    // One year from purchase.
    let (l, _) = w.mint("font-pack", "o-1").await;
    let expiry = l.expires_at.unwrap();
    assert_eq!(expiry, w.day(365));
    let renewed = w
        .store
        .renew(l.id.clone(), None, vendor(), w.day(300))
        .await
        .unwrap();
    assert_eq!(
        renewed.expires_at,
        Some(plus_days(expiry, 365)),
        "one period"
    );
    // Long after it ran out, the days count from now.
    let late = w
        .store
        .renew(l.id.clone(), Some(30), vendor(), w.day(1000))
        .await
        .unwrap();
    assert_eq!(late.expires_at, Some(w.day(1030)));
    assert_eq!(w.store.license(&l.id).await.unwrap().unwrap().0, late);
    assert_eq!(
        w.events(&l.id).await[1..],
        [
            AuditEvent::LicenseRenewed {
                days: 365,
                expires_before: Some(expiry),
                expires_at: Some(plus_days(expiry, 365)),
                extra_days: 0
            },
            AuditEvent::LicenseRenewed {
                days: 30,
                expires_before: Some(plus_days(expiry, 365)),
                expires_at: Some(w.day(1030)),
                extra_days: 0
            },
        ]
    );
    let err = refused(
        w.store
            .renew(l.id.clone(), Some(0), vendor(), w.day(1000))
            .await,
    );
    assert!(matches!(err, DomainError::InvalidField { field, .. } if field == "days"));
}

pub async fn a_renewal_before_the_first_activation_banks_the_days_for_it(w: World) {
    // A year from the first activation, which has not happened.
    let (l, key) = w.mint("photo-pro", "o-1").await;
    let banked = w
        .store
        .renew(l.id.clone(), None, vendor(), w.day(10))
        .await
        .unwrap();
    assert_eq!(banked.expires_at, None);
    assert_eq!(banked.extra_days, 365);
    w.take_seat(key, "fp-1", w.day(20)).await;
    let (activated, _) = w.store.license(&l.id).await.unwrap().unwrap();
    assert_eq!(
        activated.expires_at,
        Some(w.day(20 + 365 + 365)),
        "the banked days are added when the expiry starts"
    );
}

pub async fn a_perpetual_license_cannot_be_renewed(w: World) {
    let (l, _) = w.mint("photo-basic", "o-1").await;
    let err = refused(
        w.store
            .renew(l.id.clone(), Some(30), vendor(), w.day(1))
            .await,
    );
    assert_eq!(err, DomainError::LicensePerpetual);
    assert_eq!(w.events(&l.id).await.len(), 1);
}

pub async fn unknown_ids_find_nothing_and_the_store_is_ready(w: World) {
    w.store.ready().await.unwrap();
    let nobody = new_id("lic", w.t0);
    assert!(w.store.license(&nobody).await.unwrap().is_none());
    assert!(w
        .store
        .history(&nobody, super::ALL)
        .await
        .unwrap()
        .is_empty());
    assert!(w.store.activations(&nobody).await.unwrap().is_empty());
    assert!(w.store.claim(&new_id("clm", w.t0)).await.unwrap().is_none());
    assert!(w
        .store
        .credits("nobody@example.com")
        .await
        .unwrap()
        .is_empty());
    assert!(w.store.tokens().await.unwrap().is_empty());
    assert!(w.store.known_keys().await.unwrap().is_empty());
    assert_eq!(w.store.verify_audit().await.unwrap(), Ok(0));
    // The runner wants at least one event to check the chain with.
    w.mint("photo-pro", "o-1").await;
}

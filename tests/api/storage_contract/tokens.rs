//! API tokens and signing keys. Their events concern no license, so `history`
//! does not show them; the log's count (from `verify_audit`) does.

use keyclerk::domain::audit::Actor;
use keyclerk::domain::token::{NewApiToken, Role, TokenSecret};
use keyclerk::domain::DomainError;
use keyclerk::storage::KnownKey;

use super::{refused, World};

fn admin() -> Actor {
    Actor::Cli
}

async fn token(
    w: &World,
    role: Role,
    name: &str,
) -> (keyclerk::domain::token::ApiToken, TokenSecret) {
    let (new, secret) = NewApiToken::generate(role, name.into(), w.t0);
    let (expected, _) = new.clone().created();
    let created = w.store.create_token(new, admin()).await.unwrap();
    assert_eq!(created, expected);
    (created, secret)
}

pub async fn a_token_is_created_listed_and_found_by_its_hash(w: World) {
    let (shop, shop_secret) = token(&w, Role::Vendor, "shop").await;
    assert_eq!(w.event_count().await, 1, "token_created");
    let (alice, alice_secret) = token(&w, Role::Support, "alice").await;
    assert_eq!(w.event_count().await, 2);
    assert_eq!(shop.revoked_at, None);
    let mut listed = w.store.tokens().await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = vec![shop.clone(), alice.clone()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, expected);
    assert_eq!(
        w.store.token_by_hash(shop_secret.hash()).await.unwrap(),
        Some(shop)
    );
    assert_eq!(
        w.store.token_by_hash(alice_secret.hash()).await.unwrap(),
        Some(alice)
    );
    assert_eq!(
        w.store
            .token_by_hash(TokenSecret::generate().hash())
            .await
            .unwrap(),
        None
    );
}

pub async fn a_token_is_revoked_by_id_or_by_prefix(w: World) {
    let (by_id, id_secret) = token(&w, Role::Vendor, "shop").await;
    let (by_prefix, prefix_secret) = token(&w, Role::Support, "alice").await;
    let revoked = w
        .store
        .revoke_token(by_id.id.clone(), admin(), w.day(1))
        .await
        .unwrap();
    assert_eq!(revoked.id, by_id.id);
    assert_eq!(revoked.revoked_at, Some(w.day(1)));
    let revoked = w
        .store
        .revoke_token(by_prefix.prefix.clone(), admin(), w.day(2))
        .await
        .unwrap();
    assert_eq!(revoked.id, by_prefix.id);
    assert_eq!(revoked.revoked_at, Some(w.day(2)));
    assert_eq!(w.event_count().await, 4, "two created, two revoked");
    // A revoked token is still found by its hash (the caller refuses it).
    let found = w
        .store
        .token_by_hash(id_secret.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.revoked_at, Some(w.day(1)));
    let found = w
        .store
        .token_by_hash(prefix_secret.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.revoked_at, Some(w.day(2)));
    assert!(w
        .store
        .tokens()
        .await
        .unwrap()
        .iter()
        .all(|t| t.revoked_at.is_some()));
}

pub async fn a_revocation_must_name_exactly_one_token(w: World) {
    let (a, _) = token(&w, Role::Vendor, "shop").await;
    let err = refused(
        w.store
            .revoke_token("tok_nope".into(), admin(), w.day(1))
            .await,
    );
    assert_eq!(err, DomainError::TokenNotFound);
    // Two tokens that share a visible prefix: naming it names neither.
    let (mut b, _) = NewApiToken::generate(Role::Vendor, "twin one".into(), w.t0);
    let (mut c, _) = NewApiToken::generate(Role::Vendor, "twin two".into(), w.t0);
    b.prefix = "kc_twin123".into();
    c.prefix = "kc_twin123".into();
    w.store.create_token(b, admin()).await.unwrap();
    w.store.create_token(c, admin()).await.unwrap();
    let before = w.event_count().await;
    let err = refused(
        w.store
            .revoke_token("kc_twin123".into(), admin(), w.day(1))
            .await,
    );
    assert_eq!(err, DomainError::TokenNotFound);
    assert_eq!(w.event_count().await, before);
    assert!(w
        .store
        .tokens()
        .await
        .unwrap()
        .iter()
        .all(|t| t.revoked_at.is_none()));
    // A part of a prefix is no prefix.
    let err = refused(
        w.store
            .revoke_token(a.prefix[..5].to_owned(), admin(), w.day(1))
            .await,
    );
    assert_eq!(err, DomainError::TokenNotFound);
}

pub async fn a_second_revocation_changes_nothing_and_writes_no_event(w: World) {
    let (t, _) = token(&w, Role::Vendor, "shop").await;
    let first = w
        .store
        .revoke_token(t.id.clone(), admin(), w.day(1))
        .await
        .unwrap();
    let count = w.event_count().await;
    let second = w
        .store
        .revoke_token(t.prefix.clone(), admin(), w.day(5))
        .await
        .unwrap();
    assert_eq!(second, first, "still revoked at the first time");
    assert_eq!(second.revoked_at, Some(w.day(1)));
    assert_eq!(w.event_count().await, count, "no second token_revoked");
}

pub async fn only_new_signing_keys_are_registered_with_an_event(w: World) {
    let key = |n: &str| KnownKey {
        kid: format!("k4.pid.{n}"),
        public_key: format!("k4.public.{n}"),
    };
    w.store
        .register_keys(vec![key("a"), key("b")], Actor::System, w.t0)
        .await
        .unwrap();
    assert_eq!(w.event_count().await, 2);
    assert_eq!(w.store.known_keys().await.unwrap(), [key("a"), key("b")]);
    w.store
        .register_keys(vec![key("b"), key("c")], Actor::System, w.day(1))
        .await
        .unwrap();
    assert_eq!(w.event_count().await, 3, "only c is new");
    assert_eq!(
        w.store.known_keys().await.unwrap(),
        [key("a"), key("b"), key("c")],
        "in the order they were first seen"
    );
    w.store
        .register_keys(vec![key("a"), key("b"), key("c")], Actor::System, w.day(2))
        .await
        .unwrap();
    assert_eq!(w.event_count().await, 3, "nothing new, nothing written");
}

pub async fn the_first_token_is_stored_only_while_there_is_none(w: World) {
    let (first, _) = NewApiToken::generate(Role::Admin, "first admin".into(), w.t0);
    let (expected, _) = first.clone().created();
    let stored = w.store.create_first_token(first, Actor::System).await;
    assert_eq!(stored.unwrap(), Some(expected.clone()));
    assert_eq!(w.event_count().await, 1, "token_created");
    let (second, _) = NewApiToken::generate(Role::Admin, "first admin".into(), w.t0);
    let again = w.store.create_first_token(second, Actor::System).await;
    assert_eq!(again.unwrap(), None);
    assert_eq!(w.store.tokens().await.unwrap(), vec![expected]);
    assert_eq!(w.event_count().await, 1, "nothing written");
}

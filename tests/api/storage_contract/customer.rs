//! The customer page's sign-in links and sessions.

use keyclerk::domain::customer::{CustomerSession, LinkState, NewSignIn, Subject};
use keyclerk::domain::ids::new_id;
use keyclerk::domain::mail::Locale;
use keyclerk::domain::staff::StaffSecret;

use super::World;

fn link(w: &World, email: &str, minutes: i64) -> (NewSignIn, StaffSecret) {
    let at = w.t0 + chrono::Duration::minutes(minutes);
    NewSignIn::issue(
        new_id("sgn", at),
        email,
        Locale::En,
        |s| format!("https://licenses.example.com/my/link/{s}"),
        at,
    )
}

fn session(w: &World) -> CustomerSession {
    CustomerSession::start(Subject::Email(String::new()), w.t0).0
}

pub async fn a_sign_in_link_is_stored_with_its_mail_only_for_an_email_with_licenses(w: World) {
    w.mint("photo-pro", "sign-in-1").await;
    let store = w.store.customer_store();
    let (unknown, unknown_secret) = link(&w, "nobody@example.com", 0);
    assert!(!store.issue_sign_in(unknown, true, w.t0).await.unwrap());
    assert_eq!(
        store
            .sign_in_state(unknown_secret.hash(), w.t0)
            .await
            .unwrap(),
        LinkState::Unknown
    );
    let (known, secret) = link(&w, "ann@example.com", 0);
    let id = known.id.clone();
    assert!(store.issue_sign_in(known, true, w.t0).await.unwrap());
    assert_eq!(
        store.sign_in_state(secret.hash(), w.t0).await.unwrap(),
        LinkState::Usable("ann@example.com".into())
    );
    let far = (w.t0 + chrono::Duration::days(1)).timestamp_millis();
    let mail = w
        .store
        .lease_mail("test".into(), far, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(mail.len(), 1, "one message, for the known email only");
    assert_eq!(mail[0].message_id, format!("sign_in:{id}"));
    assert_eq!(mail[0].kind, "sign_in");
    assert_eq!(mail[0].to, "ann@example.com");
    assert!(
        mail[0].payload.contains(secret.expose()),
        "the link carries the secret: {}",
        mail[0].payload
    );
    // Without mail, the link is stored all the same, and nothing is queued.
    let (quiet, quiet_secret) = link(&w, "ann@example.com", 1);
    assert!(store.issue_sign_in(quiet, false, w.t0).await.unwrap());
    assert!(matches!(
        store
            .sign_in_state(quiet_secret.hash(), w.t0)
            .await
            .unwrap(),
        LinkState::Usable(_)
    ));
    let more = w
        .store
        .lease_mail("test".into(), far, 60_000, 10)
        .await
        .unwrap();
    assert!(more.is_empty(), "{more:?}");
}

pub async fn a_sign_in_link_works_once_and_only_for_thirty_minutes(w: World) {
    w.mint("photo-pro", "sign-in-2").await;
    let store = w.store.customer_store();
    let (first, secret) = link(&w, "ann@example.com", 0);
    assert!(store.issue_sign_in(first, false, w.t0).await.unwrap());
    let at = w.t0 + chrono::Duration::minutes(29);
    let s = session(&w);
    let hash = s.id_hash;
    assert_eq!(
        store.redeem_sign_in(secret.hash(), s, at).await.unwrap(),
        LinkState::Usable("ann@example.com".into())
    );
    let stored = store.customer_session(hash).await.unwrap().unwrap();
    assert_eq!(stored.subject, Subject::Email("ann@example.com".into()));
    let again = session(&w);
    let again_hash = again.id_hash;
    assert_eq!(
        store
            .redeem_sign_in(secret.hash(), again, at)
            .await
            .unwrap(),
        LinkState::Used
    );
    assert_eq!(store.customer_session(again_hash).await.unwrap(), None);
    assert_eq!(
        store.sign_in_state(secret.hash(), at).await.unwrap(),
        LinkState::Used
    );

    let (second, late) = link(&w, "ann@example.com", 0);
    assert!(store.issue_sign_in(second, false, w.t0).await.unwrap());
    let after = w.t0 + chrono::Duration::minutes(30);
    let s = session(&w);
    let late_hash = s.id_hash;
    assert_eq!(
        store.redeem_sign_in(late.hash(), s, after).await.unwrap(),
        LinkState::Expired
    );
    assert_eq!(store.customer_session(late_hash).await.unwrap(), None);
    assert_eq!(
        store
            .redeem_sign_in(StaffSecret::generate().hash(), session(&w), w.t0)
            .await
            .unwrap(),
        LinkState::Unknown
    );
}

pub async fn concurrent_uses_of_one_sign_in_link_sign_in_once(w: World) {
    w.mint("photo-pro", "sign-in-3").await;
    let store = w.store.customer_store();
    let (new, secret) = link(&w, "ann@example.com", 0);
    assert!(store.issue_sign_in(new, false, w.t0).await.unwrap());
    super::races::warm_up(&w, 10);
    let hash = secret.hash();
    let results = super::races::at_once(10, |_| {
        let s = session(&w);
        let at = w.t0;
        let store = &w.store;
        async move { store.customer_store().redeem_sign_in(hash, s, at).await }
    });
    let usable = results
        .iter()
        .filter(|r| matches!(r, Ok(LinkState::Usable(_))))
        .count();
    let used = results
        .iter()
        .filter(|r| matches!(r, Ok(LinkState::Used)))
        .count();
    assert_eq!((usable, used), (1, 9), "{results:?}");
}

pub async fn a_customer_session_is_stored_touched_and_ended(w: World) {
    w.mint("photo-pro", "sign-in-4").await;
    let store = w.store.customer_store();
    let (s, _) = CustomerSession::start(Subject::License("lic_x".into()), w.t0);
    let hash = s.id_hash;
    store.start_customer_session(s.clone()).await.unwrap();
    assert_eq!(store.customer_session(hash).await.unwrap(), Some(s.clone()));
    let later = w.t0 + chrono::Duration::minutes(5);
    store.touch_customer_session(hash, later).await.unwrap();
    store.touch_customer_session(hash, w.t0).await.unwrap();
    let touched = store.customer_session(hash).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, later, "never moves backwards");
    store.end_customer_session(hash).await.unwrap();
    assert_eq!(store.customer_session(hash).await.unwrap(), None);

    // A session past the absolute time-out is cleared when a later one starts.
    let (old, _) = CustomerSession::start(Subject::Email("ann@example.com".into()), w.t0);
    store.start_customer_session(old.clone()).await.unwrap();
    let (young, _) = CustomerSession::start(
        Subject::Email("ann@example.com".into()),
        w.t0 + chrono::Duration::hours(11),
    );
    store.start_customer_session(young.clone()).await.unwrap();
    assert!(store.customer_session(old.id_hash).await.unwrap().is_some());
    let (late, _) = CustomerSession::start(
        Subject::License("lic_y".into()),
        w.t0 + chrono::Duration::hours(13),
    );
    store.start_customer_session(late.clone()).await.unwrap();
    assert_eq!(store.customer_session(old.id_hash).await.unwrap(), None);
    assert_eq!(
        store.customer_session(young.id_hash).await.unwrap(),
        Some(young)
    );
    assert_eq!(
        store.customer_session(late.id_hash).await.unwrap(),
        Some(late)
    );
}

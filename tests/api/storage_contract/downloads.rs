//! Downloads: the links' secret, the download events, and downloads as evidence.

use std::sync::Arc;

use keyclerk::domain::audit::{Actor, AuditEvent};
use keyclerk::domain::grace::{ClaimPolicy, ClaimRules};
use keyclerk::domain::ids::new_id;
use keyclerk::storage::grace::{ClaimOutcome, NewClaim};

use super::{World, ALL};

pub async fn the_download_secret_is_made_once_and_then_always_found(w: World) {
    let first = w.store.download_secret([1; 32], w.t0).await.unwrap();
    assert_eq!(first, [1; 32], "none was stored: the candidate is");
    let again = w.store.download_secret([2; 32], w.day(1)).await.unwrap();
    assert_eq!(again, [1; 32], "the stored one stays");
    // Concurrent first starts of several instances agree on one secret.
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let both = futures_util::future::join_all(
        (3..13u8).map(|b| w.store.download_secret([b; 32], w.day(2))),
    )
    .await;
    assert!(both.into_iter().all(|s| s.unwrap() == [1; 32]));
    assert_eq!(w.events(&l.id).await.len(), 1, "no event: only the mint");
}

pub async fn downloads_are_chained_once_a_file_and_day_and_counted_in_the_evidence(w: World) {
    let (l, _) = w.mint("photo-pro", "o-1").await;
    let before = w.event_count().await;
    for (file, day) in [
        ("A.dmg", 1),
        ("A.dmg", 1),
        ("A.dmg", 1),
        ("B.zip", 1),
        ("A.dmg", 2),
    ] {
        w.store
            .record_download(l.id.clone(), file.into(), w.day(day))
            .await
            .unwrap();
    }
    assert_eq!(
        w.event_count().await,
        before + 3,
        "A.dmg on day 1 (three times), B.zip on day 1, A.dmg on day 2"
    );
    let history = w.store.history(&l.id, ALL).await.unwrap();
    let downloads: Vec<_> = history
        .iter()
        .filter(|e| e.kind == "file_downloaded")
        .collect();
    assert_eq!(downloads.len(), 3);
    assert_eq!(downloads[0].data["file"], "A.dmg");
    assert_eq!(downloads[0].repeats.map(|r| r.count), Some(3));
    assert_eq!(
        serde_json::from_value::<Actor>(downloads[0].actor.clone()).unwrap(),
        Actor::LicenseKey
    );
    let evidence = w.store.evidence(&l.id, w.day(3)).await.unwrap().unwrap();
    assert_eq!(evidence.downloads, 5);
    assert_eq!(evidence.first_downloaded_at, Some(w.day(1)));
    assert!(evidence.picked_up() && !evidence.ever_activated);
    let (other, _) = w.mint("photo-pro", "o-2").await;
    let none = w
        .store
        .evidence(&other.id, w.day(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((none.downloads, none.first_downloaded_at), (0, None));
    assert_eq!(
        w.events(&l.id).await.last(),
        Some(&AuditEvent::FileDownloaded {
            file: "A.dmg".into()
        })
    );
}

fn claim(w: &World, key: [u8; 32]) -> NewClaim {
    NewClaim {
        id: new_id("clm", w.t0),
        decision_id: new_id("dec", w.t0),
        credit_id: new_id("cre", w.t0),
        key_hash: key,
        email: Some("ann@example.com".into()),
        message: None,
        rules: Arc::new(ClaimRules {
            policy: ClaimPolicy::default(),
            catalog: Arc::clone(&w.catalog),
        }),
        locale: Default::default(),
        mail: false,
    }
}

pub async fn a_download_in_the_evidence_sends_a_late_claim_to_support(w: World) {
    let (fetched, fetched_key) = w.mint("photo-pro", "o-1").await;
    let (_, untouched_key) = w.mint("photo-pro", "o-2").await;
    w.store
        .record_download(fetched.id.clone(), "A.dmg".into(), w.day(10))
        .await
        .unwrap();
    let late = w.day(100);
    match w
        .store
        .file_claim(claim(&w, fetched_key), late)
        .await
        .unwrap()
    {
        ClaimOutcome::Filed(c) => {
            assert_eq!(c.note.as_deref(), Some("the product was downloaded before"));
        }
        other => panic!("a purchase fetched is picked up: {other:?}"),
    }
    assert!(
        matches!(
            w.store
                .file_claim(claim(&w, untouched_key), late)
                .await
                .unwrap(),
            ClaimOutcome::Granted(_)
        ),
        "never fetched, never activated: the policy extends"
    );
}

//! Durability on PostgreSQL: a write is answered only once the WAL holding it is
//! flushed, whether it appended events (the head of the chain is let go before the
//! flush: see the engine's `COMMIT_AND_WAIT`), only counted repeats, or wrote
//! nothing at all (an order minted again answers a license another write may still
//! be flushing). Checked on a server that flushes, whose WAL writer flushes on its
//! own only every 10 s and that runs no autovacuum: right after a write is
//! answered, the WAL is flushed as far as it was written.

use keyclerk::storage::MintOutcome;

use super::{fake_key, request, vendor, World};

/// How far the server has written its WAL, and how far flushed it.
fn wal_written_and_flushed(url: &str) -> (String, String, bool) {
    let url = url.to_owned();
    // On a thread of its own: the test's runtime is busy awaiting the store.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let driver = tokio::spawn(connection);
            let row = client
                .query_one(
                    "SELECT pg_current_wal_insert_lsn()::TEXT, pg_current_wal_flush_lsn()::TEXT,
                            pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn()",
                    &[],
                )
                .await
                .unwrap();
            let out = (row.get(0), row.get(1), row.get(2));
            drop(client);
            let _ = driver.await;
            out
        })
    })
    .join()
    .unwrap()
}

/// Runs `n` writes one after the other and asserts that each was answered with
/// the WAL flushed.
async fn assert_each_flushed<F, Fut>(w: &World, what: &str, n: u32, mut write: F)
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let url = w.database_url.as_deref().unwrap();
    for i in 0..n {
        write(i).await;
        let (written, flushed, durable) = wal_written_and_flushed(url);
        assert!(
            durable,
            "{what}: write {i} answered with the WAL written to {written}, flushed to {flushed}"
        );
    }
}

pub async fn every_acknowledged_write_waited_for_its_wal_flush(w: World) {
    assert_each_flushed(&w, "mints of new orders", 20, |i| {
        let w = &w;
        async move {
            w.mint("photo-pro", &format!("o-{i}")).await;
        }
    })
    .await;
    assert_each_flushed(&w, "mints of an order minted before", 20, |_| {
        let w = &w;
        async move {
            let again = w.prepare(request("photo-pro", "o-0"), w.t0);
            let outcome = w.store.mint(again, fake_key(), vendor()).await.unwrap();
            assert!(matches!(outcome, MintOutcome::Existing(..)), "{outcome:?}");
        }
    })
    .await;
    let (_, key) = w.mint("photo-pro", "o-seats").await;
    w.take_seat(key, "fp-1", w.day(1)).await;
    w.take_seat(key, "fp-1", w.day(1)).await;
    assert_each_flushed(&w, "refreshes counted as repeats", 20, |_| {
        let w = &w;
        async move {
            w.take_seat(key, "fp-1", w.day(1)).await;
        }
    })
    .await;
}

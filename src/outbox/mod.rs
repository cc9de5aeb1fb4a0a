//! Delivery from the durable outbox: the rows that writes add in the transaction of
//! the change they report, sent by background workers (never inside a request,
//! never on the writer). Webhooks and mail, two channels of the same table.

pub mod client;
pub mod mail;
pub mod webhook;

pub use mail::{MailSettings, MailWorker};
pub use webhook::{WebhookSettings, WebhookWorker};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::storage::StorageError;

/// The delivery loop both channels share: leases due messages for the free
/// permits and sends each on a task of its own, holding a permit while it does.
/// A lease is one write: while the messages leased before are being sent, it waits
/// until at least half of the permits are free again, so that under load one lease
/// serves several messages instead of one each (a trickle is leased at once, as
/// half are free then). With nothing due it looks again after `poll`.
pub(crate) async fn deliver<M, L, LF, S, SF>(
    permits: Arc<Semaphore>,
    poll: Duration,
    what: &'static str,
    lease: L,
    send: S,
) where
    M: Send + 'static,
    L: Fn(u32) -> LF,
    LF: Future<Output = Result<Vec<M>, StorageError>>,
    S: Fn(M) -> SF,
    SF: Future<Output = ()> + Send + 'static,
{
    let half = u32::try_from(permits.available_permits().div_ceil(2))
        .unwrap_or(1)
        .max(1);
    loop {
        match permits.acquire_many(half).await {
            Ok(p) => drop(p),
            Err(_) => return,
        }
        let free = u32::try_from(permits.available_permits()).unwrap_or(u32::MAX);
        let leased = match lease(free).await {
            Ok(l) => l,
            Err(e) => {
                log::warn!("{what}: could not lease messages: {e}");
                tokio::time::sleep(poll).await;
                continue;
            }
        };
        if leased.is_empty() {
            tokio::time::sleep(poll).await;
            continue;
        }
        for message in leased {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let sending = send(message);
            tokio::spawn(async move {
                sending.await;
                drop(permit);
            });
        }
    }
}

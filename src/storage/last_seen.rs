//! Last-seen times of licenses and machines, noted by validations and written in
//! bulk: many validations, one write, no audit event. Engine-neutral: any
//! [`Storage`] writes what this buffer collects.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::domain::time::Timestamp;
use crate::storage::{Storage, StorageError};

/// The latest time each license and activation was seen since the last write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeenTimes {
    /// License id to the latest time it was seen.
    pub licenses: HashMap<String, Timestamp>,
    /// Activation id to the latest time it was seen.
    pub activations: HashMap<String, Timestamp>,
}

impl SeenTimes {
    /// Nothing noted.
    pub fn is_empty(&self) -> bool {
        self.licenses.is_empty() && self.activations.is_empty()
    }

    /// Notes a sighting; a time never moves backwards.
    pub fn note(&mut self, license_id: &str, activation_id: Option<&str>, at: Timestamp) {
        fn later(map: &mut HashMap<String, Timestamp>, id: &str, at: Timestamp) {
            match map.get_mut(id) {
                Some(t) => *t = (*t).max(at),
                None => {
                    map.insert(id.to_owned(), at);
                }
            }
        }
        later(&mut self.licenses, license_id, at);
        if let Some(a) = activation_id {
            later(&mut self.activations, a, at);
        }
    }
}

/// Collects sightings and writes them every `every`, and once more when dropped.
pub struct LastSeen {
    pending: Arc<Mutex<SeenTimes>>,
    store: Arc<dyn Storage>,
    _stop: mpsc::Sender<()>,
}

impl LastSeen {
    /// Starts the writing thread.
    pub fn start(store: Arc<dyn Storage>, every: Duration) -> std::io::Result<Self> {
        let pending = Arc::new(Mutex::new(SeenTimes::default()));
        let (stop, stopped) = mpsc::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let (thread_pending, thread_store) = (Arc::clone(&pending), Arc::clone(&store));
        std::thread::Builder::new()
            .name("keyclerk-last-seen".into())
            .spawn(move || loop {
                let last = !matches!(
                    stopped.recv_timeout(every),
                    Err(mpsc::RecvTimeoutError::Timeout)
                );
                let seen = take(&thread_pending);
                if !seen.is_empty() {
                    if let Err(e) = runtime.block_on(thread_store.record_last_seen(seen)) {
                        log::warn!("could not write last-seen times: {e}");
                    }
                }
                if last {
                    break;
                }
            })?;
        Ok(Self {
            pending,
            store,
            _stop: stop,
        })
    }

    /// Notes that a license (and a machine of it) was seen at `now`.
    pub fn note(&self, license_id: &str, activation_id: Option<&str>, now: Timestamp) {
        // A poisoned lock only means another thread panicked mid-insert; the map is
        // still a valid map of times.
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.note(license_id, activation_id, now);
    }

    /// Licenses and machines noted and not written yet.
    pub fn pending(&self) -> usize {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.licenses.len() + p.activations.len()
    }

    /// Writes everything noted so far, now.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let seen = take(&self.pending);
        if seen.is_empty() {
            return Ok(());
        }
        self.store.record_last_seen(seen).await
    }
}

fn take(pending: &Mutex<SeenTimes>) -> SeenTimes {
    std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::from_unix;

    #[test]
    fn a_noted_time_never_moves_backwards() {
        let mut s = SeenTimes::default();
        s.note("lic_a", Some("act_a"), from_unix(20));
        s.note("lic_a", Some("act_a"), from_unix(10));
        s.note("lic_a", None, from_unix(30));
        assert_eq!(s.licenses["lic_a"], from_unix(30));
        assert_eq!(s.activations["act_a"], from_unix(20));
    }
}

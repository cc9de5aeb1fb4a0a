//! Shapes the storage boundary uses for activations.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::domain::activation::{Fingerprint, Refusal};
use crate::domain::license::License;
use crate::domain::time::{self, Timestamp};

/// An activation as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activation {
    /// `act_...`
    pub id: String,
    /// The license it holds a seat of.
    pub license_id: String,
    /// The machine's fingerprint.
    pub fingerprint: String,
    /// A name the app gave the machine.
    pub name: Option<String>,
    /// The platform the app reported.
    pub platform: Option<String>,
    /// First activation of this machine.
    #[serde(with = "time::serde_req")]
    pub activated_at: Timestamp,
    /// Last activation, refresh or validation.
    #[serde(with = "time::serde_req")]
    pub last_seen: Timestamp,
    /// When the seat was freed, if it was.
    #[serde(with = "time::serde_opt")]
    pub deactivated_at: Option<Timestamp>,
}

/// An activation request, parsed.
#[derive(Debug, Clone)]
pub struct NewActivation {
    /// Id for the activation, used if a new seat is taken.
    pub id: String,
    /// SHA-256 of the presented license key.
    pub key_hash: [u8; 32],
    /// The machine.
    pub fingerprint: Fingerprint,
    /// Optional machine name.
    pub name: Option<String>,
    /// Optional platform.
    pub platform: Option<String>,
    /// Per product: free seats of machines unseen for this many days.
    pub release_policy: Arc<BTreeMap<String, u32>>,
}

/// What an activation request did.
#[derive(Debug, Clone)]
pub enum ActivationOutcome {
    /// No license has that key (unknown, malformed and forged alike).
    NotFound,
    /// The license refused; the refusal is in the audit log.
    Refused(Refusal),
    /// A seat is held; `created` is true for a new seat.
    Granted {
        /// The license after the activation (expiry may have started).
        license: Box<License>,
        /// The machine's activation.
        activation: Box<Activation>,
        /// A new seat (201) or a refresh (200).
        created: bool,
    },
}

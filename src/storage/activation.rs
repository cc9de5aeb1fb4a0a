//! Shapes the storage boundary uses for activations.

use std::sync::Arc;

use crate::domain::activation::{Fingerprint, Machine, Refusal, SeatPolicies};
use crate::domain::audit::Actor;
use crate::domain::license::License;
use crate::domain::time::Timestamp;

/// An activation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub activated_at: Timestamp,
    /// Last activation, refresh or validation.
    pub last_seen: Timestamp,
    /// When the seat was freed, if it was.
    pub deactivated_at: Option<Timestamp>,
}

impl Activation {
    /// The seat as the domain's rules see it.
    pub fn machine(&self) -> Machine {
        Machine {
            id: self.id.clone(),
            fingerprint: self.fingerprint.clone(),
            deactivated_at: self.deactivated_at,
        }
    }
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
    /// Seat rules per product, for the domain's rules (storage never reads them).
    pub policies: Policies,
}

/// Seat rules per product id, shared.
pub type Policies = Arc<SeatPolicies>;

/// Who frees a seat.
#[derive(Debug, Clone)]
pub enum Deactivator {
    /// The customer's app, proving itself with the key (SHA-256 of it); counts
    /// against the churn limit.
    Customer([u8; 32]),
    /// Support or admin freeing a lost machine's seat; outside the limit.
    Support(Actor),
}

/// A request to free a seat.
#[derive(Debug, Clone)]
pub struct Deactivation {
    /// The activation (`act_...`).
    pub activation_id: String,
    /// Who asks.
    pub by: Deactivator,
    /// Why (support's note).
    pub reason: Option<String>,
    /// Seat rules per product, for the domain's rules (storage never reads them).
    pub policies: Policies,
}

/// What a deactivation did.
#[derive(Debug, Clone)]
pub enum DeactivationOutcome {
    /// No activation with that id on the license of that key (or at all).
    NotFound,
    /// The churn limit is reached; room again at this time (`None`: never).
    LimitReached(Option<Timestamp>),
    /// The seat is free; `already` when it was freed before (nothing changed).
    Deactivated {
        /// The activation, with its `deactivated_at`.
        activation: Box<Activation>,
        /// It had been deactivated before this request.
        already: bool,
    },
}

/// What `POST /v1/validate` needs to know about a key, read without a write.
#[derive(Debug, Clone)]
pub struct KeyFacts {
    /// The license the key belongs to.
    pub license: License,
    /// Whether any machine ever activated it.
    pub ever_activated: bool,
    /// Whether the key was presented before (activation or validation).
    pub presented_before: bool,
    /// The live activation of the asked fingerprint, if it holds a seat.
    pub activation_id: Option<String>,
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

//! Activations: which machine may take a seat, when, and for how long its
//! certificate lives. Every rule takes `now`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::audit::{Actor, AuditEvent, DeactivatedBy, PresentedBy};
use crate::domain::license::{License, LicenseStatus};
use crate::domain::product::DurationFrom;
use crate::domain::text::{Chars, TextRule};
use crate::domain::time::{self, plus_days, Timestamp};

/// Longest fingerprint accepted (the app should send a hash of its machine id).
pub const MAX_FINGERPRINT_CHARS: usize = 256;

/// What a fingerprint may be, as sent.
pub const FINGERPRINT: TextRule = TextRule {
    chars: Chars::Text,
    max_chars: MAX_FINGERPRINT_CHARS,
    required: true,
};

/// Longest name or platform an app may give a machine.
pub const MAX_MACHINE_LABEL_CHARS: usize = 100;

/// A machine's name or platform, as the app reports it.
pub const MACHINE_LABEL: TextRule = TextRule {
    chars: Chars::Text,
    max_chars: MAX_MACHINE_LABEL_CHARS,
    required: false,
};

/// Longest nonce an app may send with a validation.
pub const MAX_NONCE_CHARS: usize = 128;

/// A validation's nonce: it travels in the signed receipt.
pub const NONCE: TextRule = TextRule {
    chars: Chars::AsciiGraphic,
    max_chars: MAX_NONCE_CHARS,
    required: true,
};

/// An app's machine fingerprint: [`FINGERPRINT`], without surrounding white space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Reads a fingerprint; `None` when it breaks [`FINGERPRINT`].
    pub fn parse(s: &str) -> Option<Self> {
        FINGERPRINT.allows(s).then(|| Self(s.trim().to_owned()))
    }

    /// The fingerprint text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a license may not be used by a machine right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Suspended by the vendor.
    #[error("the license is suspended")]
    Suspended,
    /// Revoked or refunded.
    #[error("the license was revoked")]
    Revoked,
    /// Replaced by another license.
    #[error("the license was replaced by another one")]
    Superseded,
    /// Waiting for the vendor to confirm a payment.
    #[error("the license waits for a payment")]
    PendingPayment,
    /// Past its expiry.
    #[error("the license has expired")]
    Expired,
    /// Never activated and past its activation deadline.
    #[error("the activation window of this license has closed")]
    WindowClosed,
    /// Every seat is taken.
    #[error("every seat of this license is taken")]
    SeatLimitReached,
}

impl Refusal {
    /// The code of the HTTP error (`license_suspended`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Self::Suspended => "license_suspended",
            Self::Revoked => "license_revoked",
            Self::Superseded => "license_superseded",
            Self::PendingPayment => "license_pending_payment",
            Self::Expired => "license_expired",
            Self::WindowClosed => "activation_window_closed",
            Self::SeatLimitReached => "seat_limit_reached",
        }
    }

    /// The code `POST /v1/validate` answers with (`SUSPENDED`, ...).
    pub fn validation_code(self) -> &'static str {
        match self {
            Self::Suspended => "SUSPENDED",
            Self::Revoked => "REVOKED",
            Self::Superseded => "SUPERSEDED",
            Self::PendingPayment => "PENDING_PAYMENT",
            Self::Expired => "EXPIRED",
            Self::WindowClosed => "ACTIVATION_WINDOW_CLOSED",
            Self::SeatLimitReached => "NOT_ACTIVATED",
        }
    }
}

/// Why a license in `status` may not be used (nor its files downloaded); `None`
/// for an active one.
pub fn status_refusal(status: LicenseStatus) -> Option<Refusal> {
    match status {
        LicenseStatus::Active => None,
        LicenseStatus::Suspended => Some(Refusal::Suspended),
        LicenseStatus::Revoked | LicenseStatus::Refunded | LicenseStatus::Credited => {
            Some(Refusal::Revoked)
        }
        LicenseStatus::Superseded => Some(Refusal::Superseded),
        LicenseStatus::PendingPayment => Some(Refusal::PendingPayment),
    }
}

/// What the seat count looks like when a machine asks to activate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatUse {
    /// Machines holding a seat now.
    pub active: u32,
    /// Whether this machine already holds one of them.
    pub this_machine_holds_one: bool,
    /// Whether the license was ever activated on any machine.
    pub ever_activated: bool,
}

/// What an allowed activation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The machine already holds a seat: a fresh certificate, no new seat.
    Refresh,
    /// A new seat; `expires_at` is set when this is the first activation of a
    /// license whose duration counts from activation.
    NewSeat {
        /// The expiry to store, if it starts now.
        starts_expiry: Option<Timestamp>,
    },
}

impl License {
    /// Whether a machine may activate (or refresh) at `now`.
    ///
    /// A machine that holds a seat keeps refreshing after the window closes; the
    /// window only guards a license that was never activated. An expired license
    /// refuses both.
    pub fn check_activation(&self, seats: SeatUse, now: Timestamp) -> Result<Grant, Refusal> {
        self.open_at(now)?;
        if seats.this_machine_holds_one {
            return Ok(Grant::Refresh);
        }
        if self.window_closed(seats.ever_activated, now) {
            return Err(Refusal::WindowClosed);
        }
        if seats.active >= self.seats {
            return Err(Refusal::SeatLimitReached);
        }
        let starts_expiry = match (self.expires_at, self.duration_from, self.duration_days) {
            (None, DurationFrom::Activation, Some(days)) => {
                Some(plus_days(now, days.saturating_add(self.extra_days)))
            }
            _ => None,
        };
        Ok(Grant::NewSeat { starts_expiry })
    }

    /// Whether the license itself (not a machine) is usable at `now`.
    pub fn usable(&self, ever_activated: bool, now: Timestamp) -> Result<(), Refusal> {
        self.open_at(now)?;
        if self.window_closed(ever_activated, now) {
            return Err(Refusal::WindowClosed);
        }
        Ok(())
    }

    /// Neither closed by its status nor expired.
    fn open_at(&self, now: Timestamp) -> Result<(), Refusal> {
        if let Some(r) = status_refusal(self.status) {
            return Err(r);
        }
        if self.is_expired(now) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    /// The window guards only a license that was never activated.
    pub fn window_closed(&self, ever_activated: bool, now: Timestamp) -> bool {
        !ever_activated && self.activate_by.is_some_and(|by| now > by)
    }
}

/// What `POST /v1/validate` answers about a license at `now`: the refusal that
/// applies, else `NOT_ACTIVATED` when the asked machine holds no seat, else `VALID`.
pub fn validation_code(
    license: &License,
    ever_activated: bool,
    fingerprint_asked: bool,
    holds_seat: bool,
    now: Timestamp,
) -> &'static str {
    match license.usable(ever_activated, now) {
        Err(refusal) => refusal.validation_code(),
        Ok(()) if fingerprint_asked && !holds_seat => "NOT_ACTIVATED",
        Ok(()) => "VALID",
    }
}

/// End of a certificate's life: the earlier of now + lease and the license's expiry
/// plus the offline grace.
pub fn certificate_expiry(
    now: Timestamp,
    lease_days: u32,
    license_expires: Option<Timestamp>,
    offline_grace_days: u32,
) -> Timestamp {
    let lease_end = plus_days(now, lease_days);
    match license_expires {
        Some(e) => lease_end.min(plus_days(e, offline_grace_days)),
        None => lease_end,
    }
}

/// Length of the rolling window of the deactivation limit.
pub const CHURN_WINDOW_DAYS: u32 = 30;

/// The per-product rules for freeing seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatPolicy {
    /// Deactivations a customer may make per license in a rolling 30 days.
    pub max_deactivations_per_30_days: u32,
    /// Seats of machines unseen this many days are freed at the next activation.
    pub release_after_days: Option<u32>,
}

/// Deactivations a customer may make per license in 30 days, unless the product says.
pub const DEFAULT_MAX_DEACTIVATIONS_PER_30_DAYS: u32 = 10;

impl Default for SeatPolicy {
    fn default() -> Self {
        Self {
            max_deactivations_per_30_days: DEFAULT_MAX_DEACTIVATIONS_PER_30_DAYS,
            release_after_days: None,
        }
    }
}

/// Whether a customer may deactivate one more machine at `now`.
///
/// `recent` holds the times of the customer's deactivations of this license in the
/// last 30 days, oldest first. When the limit is reached, the error is the moment a
/// deactivation leaves the window and makes room again (`None`: a limit of 0, never).
pub fn check_deactivation(
    recent: &[Timestamp],
    limit: u32,
    now: Timestamp,
) -> Result<(), Option<Timestamp>> {
    let limit = limit as usize;
    if recent.len() < limit {
        return Ok(());
    }
    if limit == 0 {
        return Err(None);
    }
    // The (len - limit)-th oldest must leave the window before one more fits.
    let blocking = recent[recent.len() - limit];
    Err(Some(plus_days(blocking, CHURN_WINDOW_DAYS).max(now)))
}

/// The start of the rolling 30-day window of the deactivation limit.
pub fn churn_window_start(now: Timestamp) -> Timestamp {
    time::from_unix(now.timestamp() - i64::from(CHURN_WINDOW_DAYS) * 86_400)
}

/// Whether a machine last seen at `last_seen` has lost its seat by `now`.
pub fn seat_released(
    last_seen: Timestamp,
    release_after_days: Option<u32>,
    now: Timestamp,
) -> bool {
    release_after_days.is_some_and(|d| plus_days(last_seen, d) <= now)
}

/// Seat rules per product id; a product missing from the catalog gets the
/// defaults. Storage hands this to the rules below and never reads it itself.
#[derive(Debug, Clone, Default)]
pub struct SeatPolicies(BTreeMap<String, SeatPolicy>);

impl SeatPolicies {
    /// The rules of these products.
    pub fn new(policies: BTreeMap<String, SeatPolicy>) -> Self {
        Self(policies)
    }

    /// The rules of one product.
    pub fn of(&self, product: &str) -> SeatPolicy {
        self.0.get(product).copied().unwrap_or_default()
    }

    /// Which machines of `license` lose their seat at `now` for being unseen: those
    /// last seen at or before the cut-off (see [`seat_released`]).
    pub fn release(&self, license: &License, now: Timestamp) -> Option<Release> {
        let days = self.of(&license.product).release_after_days?;
        Some(Release {
            last_seen_by: time::from_unix(now.timestamp() - i64::from(days) * 86_400),
            after_days: days,
        })
    }

    /// What a deactivation request does to `activation`.
    ///
    /// `key_license` is the license of the key a customer presented (`None` for
    /// support); `recent` holds the customer's deactivations of the license since
    /// [`churn_window_start`], oldest first.
    pub fn deactivation(
        &self,
        license: &License,
        activation: &Machine,
        by: &DeactivationBy,
        recent: &[Timestamp],
        now: Timestamp,
    ) -> DeactivationPlan {
        if let DeactivationBy::Customer { key_license } = by {
            // Another license's key learns nothing about this activation.
            if key_license.as_deref() != Some(license.id.as_str()) {
                return DeactivationPlan::NotFound;
            }
        }
        if activation.deactivated_at.is_some() {
            return DeactivationPlan::Already;
        }
        match by {
            DeactivationBy::Customer { .. } => {
                let limit = self.of(&license.product).max_deactivations_per_30_days;
                match check_deactivation(recent, limit, now) {
                    Ok(()) => DeactivationPlan::Free {
                        by: DeactivatedBy::Customer,
                        actor: Actor::LicenseKey,
                    },
                    Err(free_at) => DeactivationPlan::Refused {
                        free_at,
                        event: AuditEvent::DeactivationRefused {
                            activation: activation.id.clone(),
                            code: "deactivation_limit_reached".into(),
                            limit,
                        },
                    },
                }
            }
            DeactivationBy::Support(actor) => DeactivationPlan::Free {
                by: DeactivatedBy::Support,
                actor: actor.clone(),
            },
        }
    }
}

/// Machines to free for being unseen too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// Machines last seen at or before this time lose their seat.
    pub last_seen_by: Timestamp,
    /// The product's `release_after_days`.
    pub after_days: u32,
}

impl Release {
    /// The event of one released machine.
    pub fn event(&self, activation_id: &str) -> AuditEvent {
        AuditEvent::ActivationReleased {
            activation: activation_id.to_owned(),
            after_days: self.after_days,
        }
    }
}

/// A machine's seat as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `act_...`
    pub id: String,
    /// The machine's fingerprint.
    pub fingerprint: String,
    /// When its seat was freed, if it was.
    pub deactivated_at: Option<Timestamp>,
}

/// Who asks to free a seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeactivationBy {
    /// The customer's app; the license its key belongs to (`None`: an unknown key).
    Customer {
        /// The license of the presented key.
        key_license: Option<String>,
    },
    /// Support or admin; outside the churn limit.
    Support(Actor),
}

/// What a deactivation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeactivationPlan {
    /// Answer as if the activation did not exist.
    NotFound,
    /// Freed before; nothing changes.
    Already,
    /// The churn limit is reached; room again at `free_at` (`None`: never).
    Refused {
        /// When a deactivation leaves the window.
        free_at: Option<Timestamp>,
        /// The refusal, for the log.
        event: AuditEvent,
    },
    /// Free the seat.
    Free {
        /// Recorded with the activation (churn counts only the customer's).
        by: DeactivatedBy,
        /// Who, for the log.
        actor: Actor,
    },
}

impl DeactivationPlan {
    /// The event of a freed seat.
    pub fn freed_event(machine: &Machine, by: DeactivatedBy, reason: Option<String>) -> AuditEvent {
        AuditEvent::ActivationDeactivated {
            activation: machine.id.clone(),
            fingerprint: machine.fingerprint.clone(),
            by,
            reason,
        }
    }
}

/// What an activation request does, worked out from the license and its seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationPlan {
    /// Refused; the event records it.
    Refused {
        /// Why.
        refusal: Refusal,
        /// The refusal, for the log.
        event: AuditEvent,
    },
    /// The machine holds a seat: only its last-seen time moves.
    Refresh {
        /// The refresh, for the log.
        event: AuditEvent,
    },
    /// A new seat.
    NewSeat {
        /// The license's expiry, when this activation starts it.
        starts_expiry: Option<Timestamp>,
        /// The first activation the license ever had.
        first_activation: bool,
        /// The new seat, for the log.
        event: AuditEvent,
    },
}

impl License {
    /// What activating `fingerprint` does at `now`: `existing` is the machine's live
    /// activation, if it holds a seat; the new seat, if one is taken, gets `new_id`.
    pub fn plan_activation(
        &self,
        seats: SeatUse,
        fingerprint: &Fingerprint,
        existing: Option<&str>,
        new_id: &str,
        now: Timestamp,
    ) -> ActivationPlan {
        match self.check_activation(seats, now) {
            Err(refusal) => ActivationPlan::Refused {
                refusal,
                event: AuditEvent::ActivationRefused {
                    code: refusal.code().to_owned(),
                    fingerprint: fingerprint.as_str().to_owned(),
                },
            },
            Ok(Grant::Refresh) => ActivationPlan::Refresh {
                event: AuditEvent::ActivationRefreshed {
                    activation: existing.unwrap_or(new_id).to_owned(),
                },
            },
            Ok(Grant::NewSeat { starts_expiry }) => ActivationPlan::NewSeat {
                starts_expiry,
                first_activation: !seats.ever_activated,
                event: AuditEvent::ActivationCreated {
                    activation: new_id.to_owned(),
                    fingerprint: fingerprint.as_str().to_owned(),
                    seats_in_use: seats.active.saturating_add(1),
                    expires_at: starts_expiry.or(self.expires_at),
                },
            },
        }
    }
}

/// The event of a key's first presentation, unless it was presented before.
pub fn first_presentation(presented_before: bool, by: PresentedBy) -> Option<AuditEvent> {
    (!presented_before).then_some(AuditEvent::KeyFirstPresented { by })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::license::MintRequest;
    use crate::domain::product::tests::photo_pro;
    use crate::domain::time::parse;

    fn at(s: &str) -> Timestamp {
        parse(s).unwrap()
    }

    /// Photo Pro bought on 2026-01-01: 3 seats, 90-day window, a year from activation.
    fn license() -> License {
        let req: MintRequest = serde_json::from_value(serde_json::json!({
            "product": "photo-pro", "order_id": "o-1", "purchased_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        req.into_new_license(&photo_pro(), "lic_x".into(), at("2026-01-01T00:00:00Z"))
            .unwrap()
            .license
    }

    const FRESH: SeatUse = SeatUse {
        active: 0,
        this_machine_holds_one: false,
        ever_activated: false,
    };

    #[test]
    fn the_first_activation_inside_the_window_starts_the_year() {
        let grant = license().check_activation(FRESH, at("2026-02-01T00:00:00Z"));
        assert_eq!(
            grant,
            Ok(Grant::NewSeat {
                starts_expiry: Some(at("2027-02-01T00:00:00Z"))
            })
        );
    }

    #[test]
    fn a_first_activation_after_the_window_is_refused() {
        let grant = license().check_activation(FRESH, at("2027-01-01T00:00:00Z"));
        assert_eq!(grant, Err(Refusal::WindowClosed));
    }

    #[test]
    fn a_machine_activated_in_time_keeps_refreshing_after_the_window() {
        let mut l = license();
        l.expires_at = Some(at("2027-02-01T00:00:00Z"));
        let seats = SeatUse {
            active: 1,
            this_machine_holds_one: true,
            ever_activated: true,
        };
        assert_eq!(
            l.check_activation(seats, at("2026-06-01T00:00:00Z")),
            Ok(Grant::Refresh)
        );
        let second = SeatUse {
            this_machine_holds_one: false,
            ..seats
        };
        assert!(
            matches!(
                l.check_activation(second, at("2026-06-01T00:00:00Z")),
                Ok(Grant::NewSeat {
                    starts_expiry: None
                })
            ),
            "a claimed license may add machines after the window"
        );
    }

    #[test]
    fn an_expired_license_refuses_activation_and_refresh() {
        let mut l = license();
        l.expires_at = Some(at("2027-02-01T00:00:00Z"));
        let seats = SeatUse {
            active: 1,
            this_machine_holds_one: true,
            ever_activated: true,
        };
        assert_eq!(
            l.check_activation(seats, at("2027-02-01T00:00:00Z")),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn the_last_seat_goes_and_then_none_is_left() {
        let seats = |active| SeatUse {
            active,
            this_machine_holds_one: false,
            ever_activated: true,
        };
        let l = license();
        assert!(l
            .check_activation(seats(2), at("2026-02-01T00:00:00Z"))
            .is_ok());
        assert_eq!(
            l.check_activation(seats(3), at("2026-02-01T00:00:00Z")),
            Err(Refusal::SeatLimitReached)
        );
    }

    #[test]
    fn each_closed_status_refuses_with_its_own_code() {
        for (status, code) in [
            (LicenseStatus::Suspended, "license_suspended"),
            (LicenseStatus::Revoked, "license_revoked"),
            (LicenseStatus::Refunded, "license_revoked"),
            (LicenseStatus::Superseded, "license_superseded"),
            (LicenseStatus::PendingPayment, "license_pending_payment"),
        ] {
            let mut l = license();
            l.status = status;
            let r = l
                .check_activation(FRESH, at("2026-02-01T00:00:00Z"))
                .unwrap_err();
            assert_eq!(r.code(), code, "{status}");
        }
    }

    #[test]
    fn banked_renewal_days_are_added_at_the_first_activation() {
        let mut l = license();
        l.extra_days = 30;
        assert_eq!(
            l.check_activation(FRESH, at("2026-02-01T00:00:00Z")),
            Ok(Grant::NewSeat {
                starts_expiry: Some(at("2027-03-03T00:00:00Z"))
            })
        );
    }

    #[test]
    fn a_certificate_never_outlives_the_license_plus_grace() {
        let now = at("2026-12-20T00:00:00Z");
        assert_eq!(
            certificate_expiry(now, 30, None, 7),
            at("2027-01-19T00:00:00Z")
        );
        assert_eq!(
            certificate_expiry(now, 30, Some(at("2027-01-01T00:00:00Z")), 7),
            at("2027-01-08T00:00:00Z")
        );
    }

    #[test]
    fn fingerprints_are_bounded_and_printable() {
        for (case, s, ok) in [
            ("hash", "3f2a9c", true),
            ("empty", "  ", false),
            ("too long", &"a".repeat(257), false),
            ("longest", &"a".repeat(256), true),
            ("control", "ab\u{0}c", false),
            ("a trailing newline is a control character", "fp\n", false),
            ("padded with spaces", " fp ", true),
        ] {
            assert_eq!(Fingerprint::parse(s).is_some(), ok, "{case}");
        }
        assert_eq!(Fingerprint::parse(" fp ").unwrap().as_str(), "fp");
    }

    #[test]
    fn churn_and_release_rules() {
        let now = at("2026-03-01T00:00:00Z");
        let recent: Vec<Timestamp> = (1..=10)
            .map(|d| at(&format!("2026-02-{d:02}T00:00:00Z")))
            .collect();
        assert_eq!(check_deactivation(&recent[..9], 10, now), Ok(()));
        assert_eq!(
            check_deactivation(&recent, 10, now),
            Err(Some(at("2026-03-03T00:00:00Z"))),
            "room again when the oldest leaves the 30 days"
        );
        assert_eq!(
            check_deactivation(&recent[..5], 3, now),
            Err(Some(at("2026-03-05T00:00:00Z"))),
            "with 5 in the window and a limit of 3, the third oldest must leave"
        );
        assert_eq!(check_deactivation(&[], 0, now), Err(None));
        assert_eq!(churn_window_start(now), at("2026-01-30T00:00:00Z"));
        let seen = at("2026-01-01T00:00:00Z");
        assert!(!seat_released(seen, None, at("2030-01-01T00:00:00Z")));
        assert!(!seat_released(seen, Some(90), at("2026-03-31T00:00:00Z")));
        assert!(seat_released(seen, Some(90), at("2026-04-01T00:00:00Z")));
    }

    fn policies(release_after_days: Option<u32>, churn: u32) -> SeatPolicies {
        SeatPolicies::new(BTreeMap::from([(
            "photo-pro".to_owned(),
            SeatPolicy {
                max_deactivations_per_30_days: churn,
                release_after_days,
            },
        )]))
    }

    #[test]
    fn the_release_cut_off_frees_exactly_the_machines_seat_released_names() {
        let now = at("2026-04-01T00:00:00Z");
        let release = policies(Some(90), 10).release(&license(), now).unwrap();
        for seen in [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:01Z",
            "2025-06-01T00:00:00Z",
        ] {
            assert_eq!(
                at(seen) <= release.last_seen_by,
                seat_released(at(seen), Some(90), now),
                "{seen}"
            );
        }
        assert_eq!(policies(None, 10).release(&license(), now), None);
        assert_eq!(
            SeatPolicies::default()
                .of("unknown")
                .max_deactivations_per_30_days,
            DEFAULT_MAX_DEACTIVATIONS_PER_30_DAYS
        );
    }

    fn machine(deactivated: bool) -> Machine {
        Machine {
            id: "act_1".into(),
            fingerprint: "fp".into(),
            deactivated_at: deactivated.then(|| at("2026-02-01T00:00:00Z")),
        }
    }

    #[test]
    fn only_the_customers_own_key_within_the_limit_frees_a_seat() {
        let l = license();
        let now = at("2026-03-01T00:00:00Z");
        let p = policies(None, 1);
        let own = DeactivationBy::Customer {
            key_license: Some(l.id.clone()),
        };
        let other = DeactivationBy::Customer {
            key_license: Some("lic_other".into()),
        };
        assert_eq!(
            p.deactivation(&l, &machine(false), &other, &[], now),
            DeactivationPlan::NotFound
        );
        assert_eq!(
            p.deactivation(&l, &machine(true), &own, &[], now),
            DeactivationPlan::Already
        );
        assert_eq!(
            p.deactivation(&l, &machine(false), &own, &[], now),
            DeactivationPlan::Free {
                by: DeactivatedBy::Customer,
                actor: Actor::LicenseKey
            }
        );
        let recent = [at("2026-02-20T00:00:00Z")];
        assert!(matches!(
            p.deactivation(&l, &machine(false), &own, &recent, now),
            DeactivationPlan::Refused {
                free_at: Some(_),
                ..
            }
        ));
        assert!(
            matches!(
                p.deactivation(
                    &l,
                    &machine(false),
                    &DeactivationBy::Support(Actor::Cli),
                    &recent,
                    now
                ),
                DeactivationPlan::Free {
                    by: DeactivatedBy::Support,
                    ..
                }
            ),
            "support frees a lost machine outside the limit"
        );
        assert!(DeactivatedBy::Customer.counts_toward_churn());
        assert!(!DeactivatedBy::Support.counts_toward_churn());
        assert!(!DeactivatedBy::Released.counts_toward_churn());
    }

    #[test]
    fn an_activation_plan_carries_the_event_the_log_records() {
        let fp = Fingerprint::parse("fp").unwrap();
        let first =
            license().plan_activation(FRESH, &fp, None, "act_new", at("2026-02-01T00:00:00Z"));
        assert_eq!(
            first,
            ActivationPlan::NewSeat {
                starts_expiry: Some(at("2027-02-01T00:00:00Z")),
                first_activation: true,
                event: AuditEvent::ActivationCreated {
                    activation: "act_new".into(),
                    fingerprint: "fp".into(),
                    seats_in_use: 1,
                    expires_at: Some(at("2027-02-01T00:00:00Z")),
                },
            }
        );
        let late =
            license().plan_activation(FRESH, &fp, None, "act_new", at("2027-01-01T00:00:00Z"));
        assert!(matches!(
            late,
            ActivationPlan::Refused { refusal: Refusal::WindowClosed, event: AuditEvent::ActivationRefused { ref code, .. } }
                if code == "activation_window_closed"
        ));
        assert_eq!(first_presentation(true, PresentedBy::Claim), None);
        assert_eq!(
            first_presentation(false, PresentedBy::Claim),
            Some(AuditEvent::KeyFirstPresented {
                by: PresentedBy::Claim
            })
        );
    }
}

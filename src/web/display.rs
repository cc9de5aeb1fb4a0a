//! How the console writes what storage holds for people: dates in UTC (the agent's
//! own zone by `console.js`), amounts, and the audit log as sentences.

use crate::domain::audit::{Actor, AuditEvent, Event};
use crate::domain::license::License;
use crate::domain::product::Price;
use crate::domain::time::{self, Timestamp};

/// One line that names a license on the pages that act on it: product, status, order.
pub fn summary(license: &License) -> String {
    format!(
        "{} · {} · order {}",
        license.product,
        license.status.as_str(),
        license.order_id
    )
}

/// A moment as the pages show it.
#[derive(Debug, Clone)]
pub struct When {
    /// RFC 3339 in UTC, for `<time datetime>`.
    pub iso: String,
    /// `2026-12-02 05:30` (UTC).
    pub utc: String,
    /// Whole days from now: positive ahead, negative past.
    pub days: i64,
}

impl When {
    /// `t` seen at `now`.
    pub fn at(t: Timestamp, now: Timestamp) -> Self {
        Self {
            iso: time::format(t),
            utc: t.format("%Y-%m-%d %H:%M").to_string(),
            days: (t - now).num_days(),
        }
    }

    /// The `<time>` element: UTC in the text and the title; `console.js` rewrites the
    /// text in the reader's zone. Made only of digits and punctuation, so safe.
    pub fn html(&self) -> String {
        format!(
            "<time datetime=\"{}\" title=\"{} UTC\">{} UTC</time>",
            self.iso, self.utc, self.utc
        )
    }

    /// `12 days left`, `today`, or `40 days late`.
    pub fn left_or_late(&self) -> String {
        match self.days {
            0 => "today".to_owned(),
            d if d > 0 => format!("{} left", days(d)),
            d => format!("{} late", days(-d)),
        }
    }

    /// `in 12 days`, `today`, or `40 days ago`.
    pub fn from_now(&self) -> String {
        match self.days {
            0 => "today".to_owned(),
            d if d > 0 => format!("in {}", days(d)),
            d => format!("{} ago", days(-d)),
        }
    }
}

/// `1 day`, `3 days`.
pub fn days(n: i64) -> String {
    if n == 1 {
        "1 day".to_owned()
    } else {
        format!("{n} days")
    }
}

/// `49.00 EUR` (amounts are kept in minor units, two decimals in every currency
/// the catalog uses today).
pub fn money(p: &Price) -> String {
    format!("{}.{:02} {}", p.amount / 100, p.amount % 100, p.currency)
}

/// Who did it, as the log's actor label (`user:ann@example.com`, `token:tok_…`).
pub fn actor_label(actor: &serde_json::Value) -> String {
    serde_json::from_value::<Actor>(actor.clone())
        .map_or_else(|_| "unknown".to_owned(), |a| a.label())
}

fn because(reason: Option<&str>) -> String {
    match reason {
        Some(r) if !r.trim().is_empty() => format!(": {r}"),
        _ => String::new(),
    }
}

/// An audit event of a license as a sentence.
pub fn sentence(e: &Event) -> String {
    let Ok(event) = AuditEvent::from_stored(&e.kind, e.data.clone()) else {
        return e.kind.replace('_', " ");
    };
    let mut s = match event {
        AuditEvent::LicenseMinted {
            order_id,
            product,
            seats,
            ..
        } => format!(
            "Minted for order {order_id}: {product}, {}.",
            plural(seats, "seat")
        ),
        AuditEvent::LicenseSuspended(c) => {
            format!("Suspended{}.", because(c.reason.as_deref()))
        }
        AuditEvent::LicenseReinstated(c) => {
            format!("Reinstated{}.", because(c.reason.as_deref()))
        }
        AuditEvent::LicenseRevoked(c) => format!("Revoked{}.", because(c.reason.as_deref())),
        AuditEvent::LicenseRefunded(c) => format!("Refunded{}.", because(c.reason.as_deref())),
        AuditEvent::LicenseRenewed {
            days, expires_at, ..
        } => match expires_at {
            Some(t) => format!(
                "Renewed by {}; now expires {}.",
                plural(days, "day"),
                day(t)
            ),
            None => format!(
                "Renewed by {}, counted from the first activation.",
                plural(days, "day")
            ),
        },
        AuditEvent::KeyFirstPresented { by } => format!(
            "The key was presented for the first time (by {}).",
            match by {
                crate::domain::audit::PresentedBy::Activation => "an activation",
                crate::domain::audit::PresentedBy::Validation => "a validation",
                crate::domain::audit::PresentedBy::Claim => "a late claim",
            }
        ),
        AuditEvent::ActivationCreated {
            activation,
            seats_in_use,
            ..
        } => format!(
            "A machine was activated ({activation}); {} in use.",
            plural(seats_in_use, "seat")
        ),
        AuditEvent::ActivationRefreshed { activation } => {
            format!("Machine {activation} refreshed its certificate.")
        }
        AuditEvent::ActivationRefused { code, .. } => format!("An activation was refused: {code}."),
        AuditEvent::ActivationReleased {
            activation,
            after_days,
        } => format!(
            "Machine {activation} was released after {} unseen.",
            plural(after_days, "day")
        ),
        AuditEvent::DeactivationRefused {
            activation, code, ..
        } => format!("Deactivating machine {activation} was refused: {code}."),
        AuditEvent::ActivationDeactivated {
            activation,
            by,
            reason,
            ..
        } => format!(
            "Machine {activation} was deactivated (by {}){}.",
            by.as_str(),
            because(reason.as_deref())
        ),
        AuditEvent::FileDownloaded { file } => format!("The file {file} was downloaded."),
        AuditEvent::GraceDecision {
            remedy,
            automatic,
            reason,
            days_late,
            result,
            ..
        } => {
            let who = if automatic { " by the policy" } else { "" };
            let mut s = format!(
                "Late claim decided{who}, {} late: {}{}.",
                days(days_late),
                remedy.as_str(),
                because(Some(&reason))
            );
            if let Some(by) = &result.activate_by {
                s.push_str(&format!(" New deadline {by}."));
            }
            if let Some(l) = &result.new_license {
                s.push_str(&format!(" New license {l}."));
            }
            if let Some(p) = &result.amount_due {
                s.push_str(&format!(" {} due.", money(p)));
            }
            if let Some(p) = &result.credit {
                s.push_str(&format!(" {} credited.", money(p)));
            }
            s
        }
        AuditEvent::LicenseReplaces { supersedes, .. } => {
            format!("Made to replace license {supersedes}.")
        }
        AuditEvent::CreditGranted(m) => format!(
            "{} {} of store credit granted to {}.",
            signed_money(m.amount),
            m.currency,
            m.email
        ),
        AuditEvent::CreditRedeemed(m) => format!(
            "{} {} of store credit spent by {}.",
            signed_money(m.amount.abs()),
            m.currency,
            m.email
        ),
        AuditEvent::PaymentConfirmed { .. } => "The payment was confirmed.".to_owned(),
        AuditEvent::SubscriptionEnded { provider, .. } => {
            format!("The subscription ended at {provider}.")
        }
        AuditEvent::ClaimFiled {
            claim,
            status,
            note,
            ..
        } => format!(
            "The customer filed a late claim ({claim}, {}){}.",
            status.as_str(),
            because(note.as_deref())
        ),
        other => other.kind().replace('_', " "),
    };
    if let Some(r) = &e.repeats {
        s.push_str(&format!(
            " Repeated {} times that day, last at {} UTC.",
            r.count,
            r.last_at.format("%H:%M")
        ));
    }
    s
}

fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn day(t: Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn signed_money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, (minor % 100).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_ahead_are_left_and_days_behind_are_late() {
        let now = time::from_unix(1_000_000_000);
        let later = When::at(now + chrono::Duration::days(12), now);
        assert_eq!(later.left_or_late(), "12 days left");
        let before = When::at(now - chrono::Duration::days(40), now);
        assert_eq!(before.left_or_late(), "40 days late");
        assert_eq!(before.from_now(), "40 days ago");
        assert!(before.html().starts_with("<time datetime=\"2001-"));
        assert!(before.html().contains("UTC\">"));
    }

    #[test]
    fn events_read_as_sentences_and_unknown_ones_as_their_kind() {
        let event = |kind: &str, data: serde_json::Value| Event {
            seq: 1,
            at: time::from_unix(1_000_000_000),
            actor: serde_json::json!({"type": "user", "email": "ann@example.com"}),
            kind: kind.into(),
            license_id: None,
            data,
            repeats: None,
        };
        let suspended = event(
            "license_suspended",
            serde_json::json!({"from": "active", "to": "suspended", "reason": "chargeback"}),
        );
        assert_eq!(sentence(&suspended), "Suspended: chargeback.");
        assert_eq!(actor_label(&suspended.actor), "user:ann@example.com");
        let refused = event(
            "activation_refused",
            serde_json::json!({"code": "activation_window_closed", "fingerprint": "fp"}),
        );
        assert_eq!(
            sentence(&refused),
            "An activation was refused: activation_window_closed."
        );
        assert_eq!(
            sentence(&event(
                "file_downloaded",
                serde_json::json!({"file": "App.dmg"})
            )),
            "The file App.dmg was downloaded."
        );
        assert_eq!(
            sentence(&event("something_new", serde_json::json!({}))),
            "something new"
        );
    }

    #[test]
    fn amounts_are_written_with_two_decimals() {
        let p = Price {
            amount: 4905,
            currency: "EUR".into(),
        };
        assert_eq!(money(&p), "49.05 EUR");
    }
}

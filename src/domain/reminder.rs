//! Reminders before an unused license's activation window closes: the customer in
//! the founding story would have been reminded instead of refused.
//!
//! A license of a product with `remind_before_days` (for example `[14, 3]`) gets,
//! at its mint, one scheduled reminder per listed day, due that many days before
//! `activate_by`. When one falls due it is sent only if the license still waits for
//! its first activation, stands `active` and its window is still open; a window
//! extended since moves it later; and of two reminders due at once (keyclerk was
//! down when the first fell due) only the nearer one is sent.

use crate::domain::license::{License, LicenseStatus};
use crate::domain::time::Timestamp;

/// Most days before the deadline a reminder may be.
pub const MAX_REMIND_DAYS: u32 = 3650;

/// Most reminders one product may list.
pub const MAX_REMINDERS: usize = 8;

/// The reminders a new license is to get: the listed days, in the language of
/// the mint's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderPlan {
    /// Days before `activate_by`.
    pub days: Vec<u32>,
    /// The language the reminders are written in.
    pub locale: crate::domain::mail::Locale,
}

/// What to do with a reminder that fell due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Mail it now.
    Send,
    /// Not wanted (activated, closed, past the deadline, or a nearer one is due).
    Drop,
    /// The window was extended: due again at this time.
    Later(Timestamp),
}

/// When the reminder `days` before `deadline` is due.
pub fn due_at(deadline: Timestamp, days: u32) -> Timestamp {
    deadline - chrono::Duration::days(i64::from(days))
}

/// What becomes of the reminder `days` before the deadline of `license` at `now`;
/// `activated` says whether the license was ever activated, `listed` are the
/// product's reminder days.
pub fn verdict(
    license: &License,
    activated: bool,
    days: u32,
    listed: &[u32],
    now: Timestamp,
) -> Verdict {
    let Some(deadline) = license.activate_by else {
        return Verdict::Drop;
    };
    if activated || license.status != LicenseStatus::Active || deadline <= now {
        return Verdict::Drop;
    }
    let due = due_at(deadline, days);
    if due > now {
        return Verdict::Later(due);
    }
    if listed
        .iter()
        .any(|&d| d < days && due_at(deadline, d) <= now)
    {
        return Verdict::Drop;
    }
    Verdict::Send
}

/// Whole days left before `deadline` at `now`, rounded up (a deadline 13 days and
/// an hour away is 14 days away).
pub fn days_left(deadline: Timestamp, now: Timestamp) -> i64 {
    let secs = (deadline - now).num_seconds().max(0);
    (secs + 86_399) / 86_400
}

/// Every problem with a product's `remind_before_days`, as messages.
pub fn problems(days: &[u32], window: Option<u32>) -> Vec<String> {
    let mut out = Vec::new();
    if days.len() > MAX_REMINDERS {
        out.push(format!("lists at most {MAX_REMINDERS} days"));
    }
    for (i, d) in days.iter().enumerate() {
        if !(1..=MAX_REMIND_DAYS).contains(d) {
            out.push(format!(
                "{d}: each day must be between 1 and {MAX_REMIND_DAYS}"
            ));
        }
        if days[..i].contains(d) {
            out.push(format!("{d} is listed twice"));
        }
    }
    if !days.is_empty() && window.is_none() {
        out.push(
            "needs activation_window_days (without a window there is nothing to remind of)".into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time;

    fn t(s: &str) -> Timestamp {
        time::parse_rfc3339(s).unwrap()
    }

    fn license(activate_by: Option<&str>, status: LicenseStatus) -> License {
        let req: crate::domain::license::MintRequest = serde_json::from_value(serde_json::json!({
            "product": "photo-pro", "order_id": "o-1", "customer_email": "ann@example.com"
        }))
        .unwrap();
        let product = crate::domain::product::tests::photo_pro();
        let mut l = req
            .into_new_license(&product, "lic_x".into(), t("2027-01-01T00:00:00Z"))
            .unwrap()
            .license;
        l.activate_by = activate_by.map(t);
        l.status = status;
        l
    }

    const DEADLINE: &str = "2027-03-31T12:00:00Z";

    #[test]
    fn a_reminder_is_sent_from_its_day_until_the_deadline() {
        let l = license(Some(DEADLINE), LicenseStatus::Active);
        let listed = [14, 3];
        assert_eq!(
            verdict(&l, false, 14, &listed, t("2027-03-17T12:00:00Z")),
            Verdict::Send
        );
        assert_eq!(
            verdict(&l, false, 14, &listed, t("2027-03-20T00:00:00Z")),
            Verdict::Send
        );
        assert_eq!(
            verdict(&l, false, 3, &listed, t("2027-03-28T12:00:00Z")),
            Verdict::Send
        );
        assert_eq!(
            verdict(&l, false, 3, &listed, t("2027-03-31T12:00:00Z")),
            Verdict::Drop,
            "the window closed"
        );
    }

    #[test]
    fn of_two_reminders_due_at_once_only_the_nearer_is_sent() {
        let l = license(Some(DEADLINE), LicenseStatus::Active);
        let now = t("2027-03-29T00:00:00Z");
        assert_eq!(verdict(&l, false, 14, &[14, 3], now), Verdict::Drop);
        assert_eq!(verdict(&l, false, 3, &[14, 3], now), Verdict::Send);
    }

    #[test]
    fn an_activated_closed_or_windowless_license_is_not_reminded() {
        let now = t("2027-03-20T00:00:00Z");
        let active = license(Some(DEADLINE), LicenseStatus::Active);
        assert_eq!(verdict(&active, true, 14, &[14], now), Verdict::Drop);
        for status in [
            LicenseStatus::Suspended,
            LicenseStatus::Revoked,
            LicenseStatus::Refunded,
            LicenseStatus::Superseded,
            LicenseStatus::Credited,
            LicenseStatus::PendingPayment,
        ] {
            let l = license(Some(DEADLINE), status);
            assert_eq!(
                verdict(&l, false, 14, &[14], now),
                Verdict::Drop,
                "{status:?}"
            );
        }
        let none = license(None, LicenseStatus::Active);
        assert_eq!(verdict(&none, false, 14, &[14], now), Verdict::Drop);
    }

    #[test]
    fn an_extended_window_moves_the_reminder_later() {
        let l = license(Some("2027-06-30T12:00:00Z"), LicenseStatus::Active);
        assert_eq!(
            verdict(&l, false, 14, &[14], t("2027-03-17T12:00:00Z")),
            Verdict::Later(t("2027-06-16T12:00:00Z"))
        );
    }

    #[test]
    fn days_left_round_up() {
        let deadline = t(DEADLINE);
        assert_eq!(days_left(deadline, t("2027-03-17T12:00:00Z")), 14);
        assert_eq!(days_left(deadline, t("2027-03-17T13:00:00Z")), 14);
        assert_eq!(days_left(deadline, t("2027-03-31T11:00:00Z")), 1);
        assert_eq!(days_left(deadline, t("2027-04-01T00:00:00Z")), 0);
    }

    #[test]
    fn a_product_s_days_are_checked() {
        assert!(problems(&[14, 3], Some(90)).is_empty());
        assert_eq!(problems(&[0], Some(90)).len(), 1);
        assert_eq!(problems(&[3, 3], Some(90)).len(), 1);
        assert_eq!(problems(&[3], None).len(), 1);
        assert!(problems(&[], None).is_empty());
    }
}

//! The customer page's rules: who a customer session is (a license or an email),
//! the single-use sign-in link mailed to a purchase email, and the session's
//! time-outs. Secrets are kept only as SHA-256 ([`StaffSecret`]'s hash).

use std::collections::BTreeMap;
use std::fmt;

use crate::domain::mail::{Locale, MailContent, MailKind, NewMail};
use crate::domain::staff::{SessionLimits, StaffSecret, TOUCH_EVERY_SECS};
use crate::domain::time::Timestamp;

/// How long a sign-in link works.
pub const SIGN_IN_VALID_MINUTES: i64 = 30;

/// A customer session's idle time-out.
pub const IDLE_MINUTES: i64 = 30;
/// A customer session's absolute time-out.
pub const ABSOLUTE_HOURS: i64 = 12;

/// The customer page's session time-outs.
pub fn session_limits() -> SessionLimits {
    SessionLimits {
        idle: chrono::Duration::minutes(IDLE_MINUTES),
        absolute: chrono::Duration::hours(ABSOLUTE_HOURS),
    }
}

/// Who a customer session speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Signed in with a key: that license.
    License(String),
    /// Signed in with a link mailed to this (lower-case) email: its licenses.
    Email(String),
}

/// A customer's session as stored (its id only as a hash).
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerSession {
    /// SHA-256 of the cookie's value.
    pub id_hash: [u8; 32],
    /// Whose licenses it shows.
    pub subject: Subject,
    /// The token every form must carry.
    pub csrf_token: String,
    /// Sign-in time (the absolute time-out counts from it).
    pub created_at: Timestamp,
    /// The last request (the idle time-out counts from it).
    pub last_seen_at: Timestamp,
}

impl fmt::Debug for CustomerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerSession")
            .field("subject", &self.subject)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl CustomerSession {
    /// A new session for `subject` at `now`, and the secret for its cookie.
    pub fn start(subject: Subject, now: Timestamp) -> (Self, StaffSecret) {
        let secret = StaffSecret::generate();
        (
            Self {
                id_hash: secret.hash(),
                subject,
                csrf_token: StaffSecret::generate().expose().to_owned(),
                created_at: now,
                last_seen_at: now,
            },
            secret,
        )
    }

    /// Whether the session has ended by `now` (idle or absolute time-out).
    pub fn ended(&self, now: Timestamp) -> bool {
        let limits = session_limits();
        now >= self.created_at + limits.absolute || now >= self.last_seen_at + limits.idle
    }

    /// Whether a request at `now` should write the last-seen time.
    pub fn needs_touch(&self, now: Timestamp) -> bool {
        (now - self.last_seen_at).num_seconds() >= TOUCH_EVERY_SECS
    }
}

/// A sign-in link to store: its id, the hash of its secret, the email, and the
/// mail that carries it (written in the same transaction, when the email has
/// licenses).
#[derive(Clone)]
pub struct NewSignIn {
    /// `sgn_...`
    pub id: String,
    /// SHA-256 of the link's secret.
    pub token_hash: [u8; 32],
    /// The (lower-case) email asked for.
    pub email: String,
    /// When it was asked for.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// The message with the link.
    pub mail: NewMail,
}

impl fmt::Debug for NewSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSignIn")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl NewSignIn {
    /// A new link for `email` at `now`: the row, and the secret the link carries.
    /// `link` turns the secret into the absolute address mailed.
    pub fn issue(
        id: String,
        email: &str,
        locale: Locale,
        link: impl Fn(&str) -> String,
        now: Timestamp,
    ) -> (Self, StaffSecret) {
        let secret = StaffSecret::generate();
        let mut vars = BTreeMap::new();
        vars.insert("link".to_owned(), link(secret.expose()));
        let mail = NewMail {
            cause: format!("{}:{id}", MailKind::SignIn.as_str()),
            to: email.to_owned(),
            kind: MailKind::SignIn,
            content: MailContent { locale, vars },
        };
        (
            Self {
                id,
                token_hash: secret.hash(),
                email: email.to_owned(),
                created_at: now,
                expires_at: now + chrono::Duration::minutes(SIGN_IN_VALID_MINUTES),
                mail,
            },
            secret,
        )
    }
}

/// A stored sign-in link, as a look-up finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// `sgn_...`
    pub id: String,
    /// The email it signs in.
    pub email: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was used, if it was.
    pub used_at: Option<Timestamp>,
}

/// What a presented sign-in link is at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// It works: it signs in this email.
    Usable(String),
    /// It was used already.
    Used,
    /// Its 30 minutes are over.
    Expired,
    /// No link has this secret.
    Unknown,
}

impl SignIn {
    /// What this link is at `now`.
    pub fn state(&self, now: Timestamp) -> LinkState {
        if self.used_at.is_some() {
            LinkState::Used
        } else if now >= self.expires_at {
            LinkState::Expired
        } else {
            LinkState::Usable(self.email.clone())
        }
    }
}

/// What a look-up of a link found, at `now`.
pub fn link_state(found: Option<&SignIn>, now: Timestamp) -> LinkState {
    found.map_or(LinkState::Unknown, |s| s.state(now))
}

/// Whole days from `now` to `then` (negative when `then` has passed), counted
/// by calendar date in UTC.
pub fn days_until(then: Timestamp, now: Timestamp) -> i64 {
    (then.date_naive() - now.date_naive()).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::from_unix;

    #[test]
    fn a_link_works_once_and_for_thirty_minutes() {
        let now = from_unix(1_700_000_000);
        let (new, secret) = NewSignIn::issue(
            "sgn_1".into(),
            "ann@example.com",
            Locale::Fr,
            |s| format!("https://x.example/my/link/{s}"),
            now,
        );
        assert_eq!(new.token_hash, secret.hash());
        assert_eq!(new.mail.cause, "sign_in:sgn_1");
        assert_eq!(
            new.mail.content.vars["link"],
            format!("https://x.example/my/link/{}", secret.expose())
        );
        let mut row = SignIn {
            id: new.id.clone(),
            email: new.email.clone(),
            expires_at: new.expires_at,
            used_at: None,
        };
        assert_eq!(
            row.state(now + chrono::Duration::minutes(29)),
            LinkState::Usable("ann@example.com".into())
        );
        assert_eq!(
            row.state(now + chrono::Duration::minutes(30)),
            LinkState::Expired
        );
        row.used_at = Some(now);
        assert_eq!(row.state(now), LinkState::Used);
        assert_eq!(link_state(None, now), LinkState::Unknown);
    }

    #[test]
    fn a_session_ends_when_idle_or_too_old() {
        let now = from_unix(1_700_000_000);
        let (mut s, _) = CustomerSession::start(Subject::Email("a@b.c".into()), now);
        assert!(!s.ended(now + chrono::Duration::minutes(29)));
        assert!(s.ended(now + chrono::Duration::minutes(30)));
        s.last_seen_at = now + chrono::Duration::hours(11);
        assert!(!s.ended(now + chrono::Duration::hours(11)));
        assert!(s.ended(now + chrono::Duration::hours(12)));
    }

    #[test]
    fn days_are_counted_by_date() {
        let now = from_unix(1_700_000_000);
        assert_eq!(days_until(now + chrono::Duration::days(3), now), 3);
        assert_eq!(days_until(now - chrono::Duration::days(2), now), -2);
    }
}

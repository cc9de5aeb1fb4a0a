//! `[console]`: the support console's sign-in and session settings.

use serde::{Deserialize, Serialize};

use crate::domain::staff::SessionLimits;

/// The `[console]` section of `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// Every staff member must sign in with a TOTP code too.
    pub require_totp: bool,
    /// Minutes a session may go unused before it ends.
    pub idle_timeout_minutes: u32,
    /// Hours a session lasts at most, however busy.
    pub absolute_timeout_hours: u32,
    /// Failed sign-ins per account per 15 minutes, then a wait.
    pub failed_sign_ins_per_account: u32,
    /// Failed sign-ins per client address per 15 minutes, then a wait.
    pub failed_sign_ins_per_address: u32,
    /// Minutes a password asked again (before a refund or credit) stays good.
    pub reauth_minutes: u32,
    /// The address people reach keyclerk at (`https://licenses.example.com`): setup
    /// links are made with it, and a form's `Origin` must be it (or the `Host` the
    /// request came to).
    pub public_url: Option<String>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            require_totp: false,
            idle_timeout_minutes: 30,
            absolute_timeout_hours: 8,
            failed_sign_ins_per_account: 5,
            failed_sign_ins_per_address: 20,
            reauth_minutes: 5,
            public_url: None,
        }
    }
}

impl ConsoleSettings {
    /// The session time-outs.
    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            idle: chrono::Duration::minutes(i64::from(self.idle_timeout_minutes)),
            absolute: chrono::Duration::hours(i64::from(self.absolute_timeout_hours)),
        }
    }

    /// The first setting that cannot be used, and why.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if !(1..=24 * 60).contains(&self.idle_timeout_minutes) {
            return Some(("idle_timeout_minutes", "1 to 1440"));
        }
        if !(1..=24 * 7).contains(&self.absolute_timeout_hours) {
            return Some(("absolute_timeout_hours", "1 to 168"));
        }
        if !(1..=60).contains(&self.reauth_minutes) {
            return Some(("reauth_minutes", "1 to 60"));
        }
        if self.failed_sign_ins_per_account == 0 || self.failed_sign_ins_per_address == 0 {
            return Some(("failed_sign_ins_per_account", "at least 1"));
        }
        if self
            .public_url
            .as_deref()
            .is_some_and(|u| !is_public_url(u))
        {
            return Some(("public_url", PUBLIC_URL_SHAPE));
        }
        None
    }

    /// The link base: `public_url` without its trailing slash, or `http://listen`.
    pub fn base_url(&self, listen: &str) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{listen}"),
        }
    }
}

/// What a `public_url` must be.
pub const PUBLIC_URL_SHAPE: &str = "an http:// or https:// URL with no query";

/// Whether `url` can be a `public_url` (the top-level one or the console's): an
/// `http://` or `https://` address with no query or fragment.
pub fn is_public_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url.trim_end_matches('/').contains(['?', '#'])
}

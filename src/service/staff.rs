//! Staff accounts and sign-in: what the CLI (`keyclerk users`) and the console call.
//!
//! Passwords are hashed with Argon2id at OWASP's parameters (19 MiB, two passes, one
//! lane), off the async executor. An unknown email costs the same hash as a known
//! one and gets the same answer as a wrong password.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::audit::Actor;
use crate::domain::ids::new_id;
use crate::domain::staff::{
    check_totp, password_problem, Credentials, NewStaffUser, Session, Setup, StaffEmail, StaffRole,
    StaffSecret, StaffUser,
};
use crate::domain::time::Timestamp;
use crate::domain::DomainError;
use crate::service::limits::Limiter;
use crate::service::ServiceError;
use crate::storage::staff::{SetupDone, StaffStore};

/// OWASP's Argon2id parameters: m = 19 MiB, t = 2, p = 1.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const ARGON2_PASSES: u32 = 2;
/// Argon2id lanes.
pub const ARGON2_LANES: u32 = 1;

fn argon2() -> Argon2<'static> {
    // The constants are within Argon2's bounds: Params::new cannot refuse them.
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
        .unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The Argon2id PHC string of `password` (blocking: about 50 ms).
pub fn hash_password_blocking(password: &str) -> Result<String, ServiceError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
}

/// Whether `password` matches the PHC string `hash` (blocking).
pub fn verify_password_blocking(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// A hash no password matches, checked for an unknown email so that it takes as
/// long as a known one.
static DECOY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password_blocking(StaffSecret::generate().expose()).unwrap_or_default());

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::internal("password hashing", &e))
}

/// Hashes `password` off the executor.
pub async fn hash_password(password: String) -> Result<String, ServiceError> {
    blocking(move || hash_password_blocking(&password)).await?
}

/// Checks `password` against `hash` (or, when there is none, against the decoy)
/// off the executor.
pub async fn verify_password(hash: Option<String>, password: String) -> Result<bool, ServiceError> {
    blocking(move || {
        let decoy = hash.is_none();
        let hash = hash.unwrap_or_else(|| DECOY_HASH.clone());
        verify_password_blocking(&hash, &password) && !decoy
    })
    .await
}

/// The email as an account name, or the refusal naming the field.
pub fn parse_email(email: &str) -> Result<StaffEmail, ServiceError> {
    StaffEmail::parse(email).ok_or_else(|| {
        DomainError::field("email", "an email address such as ann@example.com").into()
    })
}

/// Refuses a password the rule refuses, with the rule's words.
pub fn check_password(password: &str, email: &StaffEmail) -> Result<(), ServiceError> {
    match password_problem(password, email) {
        Some(problem) => Err(DomainError::field("password", problem).into()),
        None => Ok(()),
    }
}

/// Makes an account: with `password` set at once, else with a setup link whose
/// secret is returned (to print once).
pub async fn create(
    store: &dyn StaffStore,
    email: &str,
    role: StaffRole,
    password: Option<String>,
    actor: Actor,
    now: Timestamp,
) -> Result<(StaffUser, Option<StaffSecret>), ServiceError> {
    let email = parse_email(email)?;
    let (password_hash, setup, secret) = match password {
        Some(p) => {
            check_password(&p, &email)?;
            (Some(hash_password(p).await?), None, None)
        }
        None => {
            let (setup, secret) = Setup::generate(now);
            (None, Some(setup), Some(secret))
        }
    };
    let new = NewStaffUser {
        id: new_id("usr", now),
        email,
        role,
        password_hash,
        setup,
        created_at: now,
    };
    Ok((store.create_staff(new, actor).await?, secret))
}

/// Disables an account; its sessions end at once.
pub async fn disable(
    store: &dyn StaffStore,
    email: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<StaffUser, ServiceError> {
    let email = parse_email(email)?;
    Ok(store
        .disable_staff(email.as_str().to_owned(), actor, now)
        .await?)
}

/// Gives an account a new setup link (its password, TOTP and sessions end); the
/// link's secret, to print once.
pub async fn reset(
    store: &dyn StaffStore,
    email: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<(StaffUser, StaffSecret), ServiceError> {
    let email = parse_email(email)?;
    let (setup, secret) = Setup::generate(now);
    let user = store
        .reset_staff(email.as_str().to_owned(), setup, actor, now)
        .await?;
    Ok((user, secret))
}

/// The path of a setup link for `secret` (the console's page).
pub fn setup_path(secret: &StaffSecret) -> String {
    format!("/console/setup/{}", secret.expose())
}

/// Sets the password (and TOTP) through a setup link; `None` when the link no
/// longer works.
pub async fn complete_setup(
    store: &dyn StaffStore,
    secret: &StaffSecret,
    password: String,
    totp_secret: Option<Vec<u8>>,
    now: Timestamp,
) -> Result<Option<StaffUser>, ServiceError> {
    let Some(user) = store.staff_by_setup(secret.hash(), now).await? else {
        return Ok(None);
    };
    let email = parse_email(&user.email)?;
    check_password(&password, &email)?;
    let done = SetupDone {
        setup_hash: secret.hash(),
        password_hash: hash_password(password).await?,
        totp_secret,
    };
    Ok(store.complete_setup(done, now).await?)
}

/// Failed sign-ins allowed per account and per address (`[console]`).
pub struct SignInLimits {
    /// Failures per account.
    pub per_account: Limiter,
    /// Failures per client address.
    pub per_address: Limiter,
}

impl SignInLimits {
    /// Failures per account and per address in each 15 minutes.
    pub fn new(per_account: u32, per_address: u32) -> Self {
        Self {
            per_account: Limiter::new(per_account, 15 * 60),
            per_address: Limiter::new(per_address, 15 * 60),
        }
    }
}

/// What a sign-in attempt presented.
pub struct SignInAttempt {
    /// The email typed.
    pub email: String,
    /// The password typed.
    pub password: String,
    /// The TOTP code typed, if any.
    pub totp: Option<String>,
    /// The client's address (for the limit).
    pub address: String,
}

/// Why a sign-in did not open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInRefused {
    /// The email, password or code is wrong (the same for an unknown email).
    Wrong,
    /// Too many failures for this account or address; seconds to wait.
    Throttled(u64),
    /// Right password, but `[console] require_totp` and no TOTP set up yet.
    TotpRequired,
}

/// Checks an attempt and, when it is right, stores a new session (a new id, whatever
/// the browser had before) and returns it with the cookie's secret.
pub async fn sign_in(
    store: &dyn StaffStore,
    limits: &SignInLimits,
    attempt: SignInAttempt,
    require_totp: bool,
    now: Timestamp,
) -> Result<Result<(Session, StaffSecret, StaffUser), SignInRefused>, ServiceError> {
    let email = StaffEmail::parse(&attempt.email);
    let account_key = email
        .as_ref()
        .map_or_else(|| attempt.email.clone(), |e| e.as_str().to_owned());
    let blocked = limits
        .per_address
        .blocked(&attempt.address, now)
        .or_else(|| limits.per_account.blocked(&account_key, now));
    if let Some(wait) = blocked {
        return Ok(Err(SignInRefused::Throttled(wait)));
    }
    let creds: Option<Credentials> = match &email {
        Some(e) => store.staff_credentials(e.as_str()).await?,
        None => None,
    };
    let live = creds.filter(|c| c.user.disabled_at.is_none());
    let hash = live.as_ref().and_then(|c| c.password_hash.clone());
    let password_ok = verify_password(hash, attempt.password).await?;
    let totp_step = match (&live, password_ok) {
        (Some(c), true) => match &c.totp_secret {
            Some(secret) => attempt
                .totp
                .as_deref()
                .and_then(|code| check_totp(secret, code, now, c.totp_last_step))
                .map(Some),
            None => Some(None),
        },
        _ => None,
    };
    let (Some(creds), Some(totp_step)) = (live, totp_step) else {
        // Each failure counts against the address and the account.
        let _ = limits.per_address.hit(&attempt.address, now);
        let _ = limits.per_account.hit(&account_key, now);
        return Ok(Err(SignInRefused::Wrong));
    };
    if require_totp && creds.totp_secret.is_none() {
        return Ok(Err(SignInRefused::TotpRequired));
    }
    let (session, secret) = Session::start(&creds.user.id, now);
    store.start_session(session.clone(), totp_step).await?;
    Ok(Ok((session, secret, creds.user)))
}

/// Asks the password again (before a refund or credit): true if it is right, and
/// then the session records the time.
pub async fn reauthenticate(
    store: &dyn StaffStore,
    limits: &SignInLimits,
    session: &Session,
    user: &StaffUser,
    password: String,
    now: Timestamp,
) -> Result<Result<(), SignInRefused>, ServiceError> {
    if let Some(wait) = limits.per_account.blocked(&user.email, now) {
        return Ok(Err(SignInRefused::Throttled(wait)));
    }
    let creds = store.staff_credentials(&user.email).await?;
    let hash = creds.and_then(|c| c.password_hash);
    if !verify_password(hash, password).await? {
        let _ = limits.per_account.hit(&user.email, now);
        return Ok(Err(SignInRefused::Wrong));
    }
    store.touch_session(session.id_hash, now, Some(now)).await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_is_argon2id_at_owasps_parameters_and_verifies() {
        let hash = hash_password_blocking("plum tractor velvet orbit").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password_blocking(&hash, "plum tractor velvet orbit"));
        assert!(!verify_password_blocking(
            &hash,
            "plum tractor velvet orbiT"
        ));
        assert!(!verify_password_blocking("not a hash", "x"));
    }
}

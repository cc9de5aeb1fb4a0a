//! The customer page's sign-in links and sessions in PostgreSQL.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{connect, corrupt, exec, opt, Db, PostgresStore};
use crate::domain::customer::{
    link_state, CustomerSession, LinkState, NewSignIn, SignIn, Subject, ABSOLUTE_HOURS,
};
use crate::domain::time::{self, Timestamp};
use crate::storage::customer::CustomerStore;
use crate::storage::StorageError;

async fn sign_in<C: Db + ?Sized>(
    c: &C,
    token_hash: &[u8; 32],
    lock: bool,
) -> Result<Option<SignIn>, StorageError> {
    let sql = format!(
        "SELECT id, email, expires_at, used_at FROM customer_sign_ins WHERE token_hash = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    match opt(c, &sql, &[&&token_hash[..]]).await? {
        None => Ok(None),
        Some(r) => Ok(Some(SignIn {
            id: r.try_get(0)?,
            email: r.try_get(1)?,
            expires_at: time::from_unix(r.try_get(2)?),
            used_at: r.try_get::<_, Option<i64>>(3)?.map(time::from_unix),
        })),
    }
}

async fn insert_session<C: Db + ?Sized>(c: &C, s: &CustomerSession) -> Result<(), StorageError> {
    let (license, email) = match &s.subject {
        Subject::License(id) => (Some(id.as_str()), None),
        Subject::Email(e) => (None, Some(e.as_str())),
    };
    // Sessions past the absolute time-out are of no use: cleared as new ones start.
    exec(
        c,
        "DELETE FROM customer_sessions WHERE created_at < $1",
        &[&(s.created_at.timestamp() - ABSOLUTE_HOURS * 3600)],
    )
    .await?;
    exec(
        c,
        "INSERT INTO customer_sessions (id_hash, license_id, email, csrf_token, created_at,
             last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
        &[
            &&s.id_hash[..],
            &license,
            &email,
            &s.csrf_token,
            &s.created_at.timestamp(),
        ],
    )
    .await?;
    Ok(())
}

fn session_from_row(r: &Row) -> Result<CustomerSession, StorageError> {
    let hash: Vec<u8> = r.try_get(0)?;
    let license: Option<String> = r.try_get(1)?;
    let email: Option<String> = r.try_get(2)?;
    let subject = match (license, email) {
        (Some(id), None) => Subject::License(id),
        (None, Some(e)) => Subject::Email(e),
        _ => return Err(corrupt("customer session subject")),
    };
    Ok(CustomerSession {
        id_hash: hash.try_into().map_err(|_| corrupt("id_hash"))?,
        subject,
        csrf_token: r.try_get(3)?,
        created_at: time::from_unix(r.try_get(4)?),
        last_seen_at: time::from_unix(r.try_get(5)?),
    })
}

#[async_trait]
impl CustomerStore for PostgresStore {
    async fn issue_sign_in(
        &self,
        new: NewSignIn,
        mail: bool,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        write_tx!(self, |w| {
            let known = opt(
                &w,
                "SELECT 1 FROM licenses WHERE customer_email = $1 LIMIT 1",
                &[&new.email],
            )
            .await?
            .is_some();
            // Links of the past are of no use to anyone: cleared as new ones come.
            exec(
                &w,
                "DELETE FROM customer_sign_ins WHERE expires_at < $1",
                &[&(now.timestamp() - 86_400)],
            )
            .await?;
            if known {
                exec(
                    &w,
                    "INSERT INTO customer_sign_ins (id, token_hash, email, created_at,
                         expires_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &new.id,
                        &&new.token_hash[..],
                        &new.email,
                        &new.created_at.timestamp(),
                        &new.expires_at.timestamp(),
                    ],
                )
                .await?;
                if mail {
                    w.queue_mail(&new.mail, now);
                }
            }
            known
        })
        .await
    }

    async fn sign_in_state(
        &self,
        token_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<LinkState, StorageError> {
        read!(self, |c| {
            link_state(sign_in(c, &token_hash, false).await?.as_ref(), now)
        })
        .await
    }

    async fn redeem_sign_in(
        &self,
        token_hash: [u8; 32],
        session: CustomerSession,
        now: Timestamp,
    ) -> Result<LinkState, StorageError> {
        write_tx!(self, |w| {
            // The transaction is only read and written here, never given events.
            let w = &mut w;
            // The row stays locked to the commit: a second use waits, then finds it used.
            let found = sign_in(&*w, &token_hash, true).await?;
            let state = link_state(found.as_ref(), now);
            if let LinkState::Usable(email) = &state {
                exec(
                    &*w,
                    "UPDATE customer_sign_ins SET used_at = $2 WHERE token_hash = $1",
                    &[&&token_hash[..], &now.timestamp()],
                )
                .await?;
                let session = CustomerSession {
                    subject: Subject::Email(email.clone()),
                    ..session.clone()
                };
                insert_session(&*w, &session).await?;
            }
            state
        })
        .await
    }

    async fn start_customer_session(&self, session: CustomerSession) -> Result<(), StorageError> {
        read!(self, |c| insert_session(c, &session).await?).await
    }

    async fn customer_session(
        &self,
        id_hash: [u8; 32],
    ) -> Result<Option<CustomerSession>, StorageError> {
        read!(self, |c| {
            match opt(
                c,
                "SELECT id_hash, license_id, email, csrf_token, created_at, last_seen_at
                 FROM customer_sessions WHERE id_hash = $1",
                &[&&id_hash[..]],
            )
            .await?
            {
                None => None,
                Some(r) => Some(session_from_row(&r)?),
            }
        })
        .await
    }

    async fn touch_customer_session(
        &self,
        id_hash: [u8; 32],
        last_seen_at: Timestamp,
    ) -> Result<(), StorageError> {
        read!(self, |c| {
            exec(
                c,
                "UPDATE customer_sessions SET last_seen_at = GREATEST(last_seen_at, $2)
                 WHERE id_hash = $1",
                &[&&id_hash[..], &last_seen_at.timestamp()],
            )
            .await?;
        })
        .await
    }

    async fn end_customer_session(&self, id_hash: [u8; 32]) -> Result<(), StorageError> {
        read!(self, |c| {
            exec(
                c,
                "DELETE FROM customer_sessions WHERE id_hash = $1",
                &[&&id_hash[..]],
            )
            .await?;
        })
        .await
    }
}

//! The customer page's sign-in links and sessions in SQLite.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::SqliteStore;
use crate::domain::customer::{
    link_state, CustomerSession, LinkState, NewSignIn, SignIn, Subject, ABSOLUTE_HOURS,
};
use crate::domain::time::{self, Timestamp};
use crate::storage::customer::CustomerStore;
use crate::storage::StorageError;

fn sign_in(conn: &Connection, token_hash: &[u8; 32]) -> Result<Option<SignIn>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, email, expires_at, used_at FROM customer_sign_ins WHERE token_hash = ?1",
        )?
        .query_row([&token_hash[..]], |r| {
            Ok(SignIn {
                id: r.get(0)?,
                email: r.get(1)?,
                expires_at: time::from_unix(r.get(2)?),
                used_at: r.get::<_, Option<i64>>(3)?.map(time::from_unix),
            })
        })
        .optional()?)
}

fn insert_session(conn: &Connection, s: &CustomerSession) -> Result<(), StorageError> {
    let (license, email) = match &s.subject {
        Subject::License(id) => (Some(id.as_str()), None),
        Subject::Email(e) => (None, Some(e.as_str())),
    };
    // Sessions past the absolute time-out are of no use: cleared as new ones start.
    conn.prepare_cached("DELETE FROM customer_sessions WHERE created_at < ?1")?
        .execute([s.created_at.timestamp() - ABSOLUTE_HOURS * 3600])?;
    conn.prepare_cached(
        "INSERT INTO customer_sessions (id_hash, license_id, email, csrf_token, created_at,
             last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        &s.id_hash[..],
        license,
        email,
        s.csrf_token,
        s.created_at.timestamp()
    ])?;
    Ok(())
}

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<CustomerSession> {
    let hash: Vec<u8> = r.get(0)?;
    let license: Option<String> = r.get(1)?;
    let email: Option<String> = r.get(2)?;
    let subject = match (license, email) {
        (Some(id), None) => Subject::License(id),
        (None, Some(e)) => Subject::Email(e),
        _ => return Err(super::corrupt("customer session subject")),
    };
    Ok(CustomerSession {
        id_hash: hash.try_into().map_err(|_| super::corrupt("id_hash"))?,
        subject,
        csrf_token: r.get(3)?,
        created_at: time::from_unix(r.get(4)?),
        last_seen_at: time::from_unix(r.get(5)?),
    })
}

#[async_trait]
impl CustomerStore for SqliteStore {
    async fn issue_sign_in(
        &self,
        new: NewSignIn,
        mail: bool,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        self.writer
            .write(move |ctx| {
                let known: bool = ctx
                    .conn
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM licenses WHERE customer_email = ?1)",
                    )?
                    .query_row([&new.email], |r| r.get(0))?;
                // Links of the past are of no use to anyone: cleared as new ones come.
                ctx.conn
                    .prepare_cached("DELETE FROM customer_sign_ins WHERE expires_at < ?1")?
                    .execute([now.timestamp() - 86_400])?;
                if !known {
                    return Ok(false);
                }
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO customer_sign_ins (id, token_hash, email, created_at,
                             expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        new.id,
                        &new.token_hash[..],
                        new.email,
                        new.created_at.timestamp(),
                        new.expires_at.timestamp()
                    ])?;
                if mail {
                    ctx.queue_mail(&new.mail, now)?;
                }
                Ok(true)
            })
            .await
    }

    async fn sign_in_state(
        &self,
        token_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<LinkState, StorageError> {
        self.read_short(move |c| Ok(link_state(sign_in(c, &token_hash)?.as_ref(), now)))
            .await
    }

    async fn redeem_sign_in(
        &self,
        token_hash: [u8; 32],
        session: CustomerSession,
        now: Timestamp,
    ) -> Result<LinkState, StorageError> {
        self.writer
            .write(move |ctx| {
                // One writer: the check and the marking cannot interleave.
                let found = sign_in(ctx.conn, &token_hash)?;
                let state = link_state(found.as_ref(), now);
                if let LinkState::Usable(email) = &state {
                    ctx.conn
                        .prepare_cached(
                            "UPDATE customer_sign_ins SET used_at = ?2 WHERE token_hash = ?1",
                        )?
                        .execute(params![&token_hash[..], now.timestamp()])?;
                    let session = CustomerSession {
                        subject: Subject::Email(email.clone()),
                        ..session
                    };
                    insert_session(ctx.conn, &session)?;
                }
                Ok(state)
            })
            .await
    }

    async fn start_customer_session(&self, session: CustomerSession) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| insert_session(ctx.conn, &session))
            .await
    }

    async fn customer_session(
        &self,
        id_hash: [u8; 32],
    ) -> Result<Option<CustomerSession>, StorageError> {
        self.read_short(move |c| {
            Ok(c.prepare_cached(
                "SELECT id_hash, license_id, email, csrf_token, created_at, last_seen_at
                 FROM customer_sessions WHERE id_hash = ?1",
            )?
            .query_row([&id_hash[..]], session_from_row)
            .optional()?)
        })
        .await
    }

    async fn touch_customer_session(
        &self,
        id_hash: [u8; 32],
        last_seen_at: Timestamp,
    ) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| {
                ctx.conn
                    .prepare_cached(
                        "UPDATE customer_sessions SET last_seen_at = max(last_seen_at, ?2)
                         WHERE id_hash = ?1",
                    )?
                    .execute(params![&id_hash[..], last_seen_at.timestamp()])?;
                Ok(())
            })
            .await
    }

    async fn end_customer_session(&self, id_hash: [u8; 32]) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| {
                ctx.conn
                    .prepare_cached("DELETE FROM customer_sessions WHERE id_hash = ?1")?
                    .execute([&id_hash[..]])?;
                Ok(())
            })
            .await
    }
}

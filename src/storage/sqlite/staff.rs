//! Staff accounts and console sessions in SQLite.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::writer::WriteCtx;
use super::SqliteStore;
use crate::domain::audit::{Actor, AuditEvent, NewEvent};
use crate::domain::staff::{Credentials, NewStaffUser, Session, Setup, StaffRole, StaffUser};
use crate::domain::time::{self, Timestamp};
use crate::storage::staff::{email_taken, no_such_staff, SetupDone, StaffStore};
use crate::storage::StorageError;

const USER_COLUMNS: &str = "id, email, role, password_hash IS NOT NULL, totp_secret IS NOT NULL, \
     created_at, disabled_at, last_sign_in_at";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<StaffUser> {
    let role: String = r.get(2)?;
    Ok(StaffUser {
        id: r.get(0)?,
        email: r.get(1)?,
        role: StaffRole::parse(&role).ok_or_else(|| super::corrupt("role"))?,
        has_password: r.get(3)?,
        has_totp: r.get(4)?,
        created_at: time::from_unix(r.get(5)?),
        disabled_at: r.get::<_, Option<i64>>(6)?.map(time::from_unix),
        last_sign_in_at: r.get::<_, Option<i64>>(7)?.map(time::from_unix),
    })
}

fn user_by_email(conn: &Connection, email: &str) -> Result<Option<StaffUser>, StorageError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM staff_users WHERE email = ?1"
        ))?
        .query_row([email], user_from_row)
        .optional()?)
}

fn user_by_id(conn: &Connection, id: &str) -> Result<Option<StaffUser>, StorageError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM staff_users WHERE id = ?1"
        ))?
        .query_row([id], user_from_row)
        .optional()?)
}

fn end_sessions_of(ctx: &WriteCtx<'_>, user_id: &str) -> Result<(), StorageError> {
    ctx.conn
        .prepare_cached("DELETE FROM staff_sessions WHERE user_id = ?1")?
        .execute([user_id])?;
    Ok(())
}

fn hash32(v: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    v.try_into().map_err(|_| super::corrupt("id_hash"))
}

#[async_trait]
impl StaffStore for SqliteStore {
    async fn create_staff(
        &self,
        new: NewStaffUser,
        actor: Actor,
    ) -> Result<StaffUser, StorageError> {
        self.writer
            .write(move |ctx| {
                // One writer: the check and the insert cannot interleave.
                if user_by_email(ctx.conn, new.email.as_str())?.is_some() {
                    return Err(email_taken());
                }
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO staff_users (id, email, role, password_hash, setup_hash,
                             setup_expires_at, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        new.id,
                        new.email.as_str(),
                        new.role.as_str(),
                        new.password_hash,
                        new.setup.map(|s| s.hash.to_vec()),
                        new.setup.map(|s| s.expires_at.timestamp()),
                        new.created_at.timestamp(),
                    ])?;
                let (user, event) = new.created();
                ctx.append(NewEvent::general(new.created_at, actor, event))?;
                Ok(user)
            })
            .await
    }

    async fn staff(&self) -> Result<Vec<StaffUser>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM staff_users ORDER BY email"
            ))?;
            let rows = stmt.query_map([], user_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn staff_credentials(&self, email: &str) -> Result<Option<Credentials>, StorageError> {
        let email = email.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS}, password_hash, totp_secret, totp_last_step
                 FROM staff_users WHERE email = ?1"
            ))?
            .query_row([&email], |r| {
                Ok(Credentials {
                    user: user_from_row(r)?,
                    password_hash: r.get(8)?,
                    totp_secret: r.get(9)?,
                    totp_last_step: r.get(10)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn staff_by_setup(
        &self,
        setup_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<Option<StaffUser>, StorageError> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM staff_users
                 WHERE setup_hash = ?1 AND setup_expires_at > ?2 AND disabled_at IS NULL"
            ))?
            .query_row(params![&setup_hash[..], now.timestamp()], user_from_row)
            .optional()?)
        })
        .await
    }

    async fn complete_setup(
        &self,
        done: SetupDone,
        now: Timestamp,
    ) -> Result<Option<StaffUser>, StorageError> {
        self.writer
            .write(move |ctx| {
                let id: Option<String> = ctx
                    .conn
                    .prepare_cached(
                        "UPDATE staff_users
                         SET password_hash = ?2, totp_secret = ?3, totp_last_step = NULL,
                             setup_hash = NULL, setup_expires_at = NULL
                         WHERE setup_hash = ?1 AND setup_expires_at > ?4
                             AND disabled_at IS NULL
                         RETURNING id",
                    )?
                    .query_row(
                        params![
                            &done.setup_hash[..],
                            done.password_hash,
                            done.totp_secret,
                            now.timestamp()
                        ],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(id) = id else {
                    return Ok(None);
                };
                end_sessions_of(ctx, &id)?;
                let event = AuditEvent::StaffUserSetUp {
                    user: id.clone(),
                    totp: done.totp_secret.is_some(),
                };
                let user = user_by_id(ctx.conn, &id)?;
                if let Some(u) = &user {
                    ctx.append(NewEvent::general(now, u.actor(), event))?;
                }
                Ok(user)
            })
            .await
    }

    async fn disable_staff(
        &self,
        email: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<StaffUser, StorageError> {
        self.writer
            .write(move |ctx| {
                let mut user = user_by_email(ctx.conn, &email)?.ok_or_else(no_such_staff)?;
                end_sessions_of(ctx, &user.id)?;
                if user.disabled_at.is_none() {
                    ctx.conn
                        .prepare_cached("UPDATE staff_users SET disabled_at = ?2 WHERE id = ?1")?
                        .execute(params![user.id, now.timestamp()])?;
                    user.disabled_at = Some(now);
                    let event = AuditEvent::StaffUserDisabled {
                        user: user.id.clone(),
                        email: user.email.clone(),
                    };
                    ctx.append(NewEvent::general(now, actor, event))?;
                }
                Ok(user)
            })
            .await
    }

    async fn reset_staff(
        &self,
        email: String,
        setup: Setup,
        actor: Actor,
        now: Timestamp,
    ) -> Result<StaffUser, StorageError> {
        self.writer
            .write(move |ctx| {
                let user = user_by_email(ctx.conn, &email)?.ok_or_else(no_such_staff)?;
                end_sessions_of(ctx, &user.id)?;
                ctx.conn
                    .prepare_cached(
                        "UPDATE staff_users
                         SET password_hash = NULL, totp_secret = NULL, totp_last_step = NULL,
                             setup_hash = ?2, setup_expires_at = ?3, disabled_at = NULL
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        user.id,
                        &setup.hash[..],
                        setup.expires_at.timestamp()
                    ])?;
                let event = AuditEvent::StaffUserReset {
                    user: user.id.clone(),
                    email: user.email.clone(),
                };
                ctx.append(NewEvent::general(now, actor, event))?;
                user_by_id(ctx.conn, &user.id)?.ok_or_else(no_such_staff)
            })
            .await
    }

    async fn start_session(
        &self,
        session: Session,
        totp_step: Option<i64>,
    ) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| {
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO staff_sessions (id_hash, user_id, csrf_token, created_at,
                             last_seen_at)
                         VALUES (?1, ?2, ?3, ?4, ?4)",
                    )?
                    .execute(params![
                        &session.id_hash[..],
                        session.user_id,
                        session.csrf_token,
                        session.created_at.timestamp()
                    ])?;
                ctx.conn
                    .prepare_cached(
                        "UPDATE staff_users
                         SET last_sign_in_at = ?2, totp_last_step = coalesce(?3, totp_last_step)
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        session.user_id,
                        session.created_at.timestamp(),
                        totp_step
                    ])?;
                Ok(())
            })
            .await
    }

    async fn session(
        &self,
        id_hash: [u8; 32],
    ) -> Result<Option<(Session, StaffUser)>, StorageError> {
        self.read_short(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT s.id_hash, s.user_id, s.csrf_token, s.created_at, s.last_seen_at,
                        s.reauth_at, {}
                 FROM staff_sessions s JOIN staff_users u ON u.id = s.user_id
                 WHERE s.id_hash = ?1",
                USER_COLUMNS
                    .split(", ")
                    .map(|c| format!("u.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?
            .query_row([&id_hash[..]], |r| {
                let session = Session {
                    id_hash: hash32(r.get(0)?)?,
                    user_id: r.get(1)?,
                    csrf_token: r.get(2)?,
                    created_at: time::from_unix(r.get(3)?),
                    last_seen_at: time::from_unix(r.get(4)?),
                    reauth_at: r.get::<_, Option<i64>>(5)?.map(time::from_unix),
                };
                let role: String = r.get(8)?;
                let user = StaffUser {
                    id: r.get(6)?,
                    email: r.get(7)?,
                    role: StaffRole::parse(&role).ok_or_else(|| super::corrupt("role"))?,
                    has_password: r.get(9)?,
                    has_totp: r.get(10)?,
                    created_at: time::from_unix(r.get(11)?),
                    disabled_at: r.get::<_, Option<i64>>(12)?.map(time::from_unix),
                    last_sign_in_at: r.get::<_, Option<i64>>(13)?.map(time::from_unix),
                };
                Ok((session, user))
            })
            .optional()?)
        })
        .await
    }

    async fn touch_session(
        &self,
        id_hash: [u8; 32],
        last_seen_at: Timestamp,
        reauth_at: Option<Timestamp>,
    ) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| {
                ctx.conn
                    .prepare_cached(
                        "UPDATE staff_sessions
                         SET last_seen_at = max(last_seen_at, ?2),
                             reauth_at = coalesce(?3, reauth_at)
                         WHERE id_hash = ?1",
                    )?
                    .execute(params![
                        &id_hash[..],
                        last_seen_at.timestamp(),
                        reauth_at.map(|t| t.timestamp())
                    ])?;
                Ok(())
            })
            .await
    }

    async fn end_session(&self, id_hash: [u8; 32]) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| {
                ctx.conn
                    .prepare_cached("DELETE FROM staff_sessions WHERE id_hash = ?1")?
                    .execute([&id_hash[..]])?;
                Ok(())
            })
            .await
    }
}

//! Staff accounts and console sessions in PostgreSQL.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{connect, corrupt, exec, opt, rows, Db, PostgresStore, Write};
use crate::domain::audit::{Actor, AuditEvent, NewEvent};
use crate::domain::staff::{Credentials, NewStaffUser, Session, Setup, StaffRole, StaffUser};
use crate::domain::time::{self, Timestamp};
use crate::storage::staff::{email_taken, no_such_staff, SetupDone, StaffStore};
use crate::storage::StorageError;

const USER_COLUMNS: &str = "u.id, u.email, u.role, u.password_hash IS NOT NULL, \
     u.totp_secret IS NOT NULL, u.created_at, u.disabled_at, u.last_sign_in_at";

fn user_from_row(r: &Row) -> Result<StaffUser, StorageError> {
    let role: String = r.try_get(2)?;
    Ok(StaffUser {
        id: r.try_get(0)?,
        email: r.try_get(1)?,
        role: StaffRole::parse(&role).ok_or_else(|| corrupt("role"))?,
        has_password: r.try_get(3)?,
        has_totp: r.try_get(4)?,
        created_at: time::from_unix(r.try_get(5)?),
        disabled_at: r.try_get::<_, Option<i64>>(6)?.map(time::from_unix),
        last_sign_in_at: r.try_get::<_, Option<i64>>(7)?.map(time::from_unix),
    })
}

/// The account of `email`, its row locked to the end of the transaction.
async fn lock_by_email(w: &Write<'_>, email: &str) -> Result<StaffUser, StorageError> {
    let row = opt(
        w,
        &format!("SELECT {USER_COLUMNS} FROM staff_users u WHERE u.email = $1 FOR UPDATE"),
        &[&email],
    )
    .await?
    .ok_or_else(no_such_staff)?;
    user_from_row(&row)
}

async fn user_by_id<C: Db + ?Sized>(c: &C, id: &str) -> Result<StaffUser, StorageError> {
    let row = opt(
        c,
        &format!("SELECT {USER_COLUMNS} FROM staff_users u WHERE u.id = $1"),
        &[&id],
    )
    .await?
    .ok_or_else(no_such_staff)?;
    user_from_row(&row)
}

async fn end_sessions_of(w: &Write<'_>, user_id: &str) -> Result<(), StorageError> {
    exec(
        w,
        "DELETE FROM staff_sessions WHERE user_id = $1",
        &[&user_id],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl StaffStore for PostgresStore {
    async fn create_staff(
        &self,
        new: NewStaffUser,
        actor: Actor,
    ) -> Result<StaffUser, StorageError> {
        write_tx!(self, |w| {
            let setup_hash = new.setup.map(|s| s.hash.to_vec());
            let setup_expires = new.setup.map(|s| s.expires_at.timestamp());
            let inserted = exec(
                &w,
                "INSERT INTO staff_users (id, email, role, password_hash, setup_hash,
                     setup_expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (email) DO NOTHING",
                &[
                    &new.id,
                    &new.email.as_str(),
                    &new.role.as_str(),
                    &new.password_hash,
                    &setup_hash,
                    &setup_expires,
                    &new.created_at.timestamp(),
                ],
            )
            .await?;
            if inserted == 0 {
                return Err(email_taken());
            }
            let (user, event) = new.created();
            w.append(NewEvent::general(new.created_at, actor.clone(), event));
            user
        })
        .await
    }

    async fn staff(&self) -> Result<Vec<StaffUser>, StorageError> {
        read!(self, |c| {
            rows(
                c,
                &format!("SELECT {USER_COLUMNS} FROM staff_users u ORDER BY u.email"),
                &[],
            )
            .await?
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?
        })
        .await
    }

    async fn staff_credentials(&self, email: &str) -> Result<Option<Credentials>, StorageError> {
        let email = email.to_owned();
        read!(self, |c| {
            match opt(
                c,
                &format!(
                    "SELECT {USER_COLUMNS}, u.password_hash, u.totp_secret, u.totp_last_step
                     FROM staff_users u WHERE u.email = $1"
                ),
                &[&email],
            )
            .await?
            {
                Some(r) => Some(Credentials {
                    user: user_from_row(&r)?,
                    password_hash: r.try_get(8)?,
                    totp_secret: r.try_get(9)?,
                    totp_last_step: r.try_get(10)?,
                }),
                None => None,
            }
        })
        .await
    }

    async fn staff_by_setup(
        &self,
        setup_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<Option<StaffUser>, StorageError> {
        read!(self, |c| {
            match opt(
                c,
                &format!(
                    "SELECT {USER_COLUMNS} FROM staff_users u
                     WHERE u.setup_hash = $1 AND u.setup_expires_at > $2
                         AND u.disabled_at IS NULL"
                ),
                &[&&setup_hash[..], &now.timestamp()],
            )
            .await?
            {
                Some(r) => Some(user_from_row(&r)?),
                None => None,
            }
        })
        .await
    }

    async fn complete_setup(
        &self,
        done: SetupDone,
        now: Timestamp,
    ) -> Result<Option<StaffUser>, StorageError> {
        write_tx!(self, |w| {
            let row = opt(
                &w,
                "UPDATE staff_users
                 SET password_hash = $2, totp_secret = $3, totp_last_step = NULL,
                     setup_hash = NULL, setup_expires_at = NULL
                 WHERE setup_hash = $1 AND setup_expires_at > $4 AND disabled_at IS NULL
                 RETURNING id",
                &[
                    &&done.setup_hash[..],
                    &done.password_hash,
                    &done.totp_secret,
                    &now.timestamp(),
                ],
            )
            .await?;
            match row {
                None => None,
                Some(r) => {
                    let id: String = r.try_get(0)?;
                    end_sessions_of(&w, &id).await?;
                    let user = user_by_id(&w, &id).await?;
                    let event = AuditEvent::StaffUserSetUp {
                        user: id,
                        totp: done.totp_secret.is_some(),
                    };
                    w.append(NewEvent::general(now, user.actor(), event));
                    Some(user)
                }
            }
        })
        .await
    }

    async fn disable_staff(
        &self,
        email: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<StaffUser, StorageError> {
        write_tx!(self, |w| {
            let mut user = lock_by_email(&w, &email).await?;
            end_sessions_of(&w, &user.id).await?;
            if user.disabled_at.is_none() {
                exec(
                    &w,
                    "UPDATE staff_users SET disabled_at = $2 WHERE id = $1",
                    &[&user.id, &now.timestamp()],
                )
                .await?;
                user.disabled_at = Some(now);
                let event = AuditEvent::StaffUserDisabled {
                    user: user.id.clone(),
                    email: user.email.clone(),
                };
                w.append(NewEvent::general(now, actor.clone(), event));
            }
            user
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
        write_tx!(self, |w| {
            let user = lock_by_email(&w, &email).await?;
            end_sessions_of(&w, &user.id).await?;
            exec(
                &w,
                "UPDATE staff_users
                 SET password_hash = NULL, totp_secret = NULL, totp_last_step = NULL,
                     setup_hash = $2, setup_expires_at = $3, disabled_at = NULL
                 WHERE id = $1",
                &[&user.id, &&setup.hash[..], &setup.expires_at.timestamp()],
            )
            .await?;
            let event = AuditEvent::StaffUserReset {
                user: user.id.clone(),
                email: user.email.clone(),
            };
            w.append(NewEvent::general(now, actor.clone(), event));
            user_by_id(&w, &user.id).await?
        })
        .await
    }

    async fn start_session(
        &self,
        session: Session,
        totp_step: Option<i64>,
    ) -> Result<(), StorageError> {
        // No audit event: the chain's head is not locked for a sign-in.
        read!(self, |c| {
            let created = session.created_at.timestamp();
            exec(
                c,
                "INSERT INTO staff_sessions (id_hash, user_id, csrf_token, created_at,
                     last_seen_at)
                 VALUES ($1, $2, $3, $4, $4)",
                &[
                    &&session.id_hash[..],
                    &session.user_id,
                    &session.csrf_token,
                    &created,
                ],
            )
            .await?;
            exec(
                c,
                "UPDATE staff_users
                 SET last_sign_in_at = $2, totp_last_step = coalesce($3, totp_last_step)
                 WHERE id = $1",
                &[&session.user_id, &created, &totp_step],
            )
            .await?;
        })
        .await
    }

    async fn session(
        &self,
        id_hash: [u8; 32],
    ) -> Result<Option<(Session, StaffUser)>, StorageError> {
        read!(self, |c| {
            match opt(
                c,
                &format!(
                    "SELECT {USER_COLUMNS}, s.id_hash, s.user_id, s.csrf_token, s.created_at,
                            s.last_seen_at, s.reauth_at
                     FROM staff_sessions s JOIN staff_users u ON u.id = s.user_id
                     WHERE s.id_hash = $1"
                ),
                &[&&id_hash[..]],
            )
            .await?
            {
                None => None,
                Some(r) => {
                    let hash: Vec<u8> = r.try_get(8)?;
                    let session = Session {
                        id_hash: hash.try_into().map_err(|_| corrupt("id_hash"))?,
                        user_id: r.try_get(9)?,
                        csrf_token: r.try_get(10)?,
                        created_at: time::from_unix(r.try_get(11)?),
                        last_seen_at: time::from_unix(r.try_get(12)?),
                        reauth_at: r.try_get::<_, Option<i64>>(13)?.map(time::from_unix),
                    };
                    Some((session, user_from_row(&r)?))
                }
            }
        })
        .await
    }

    async fn touch_session(
        &self,
        id_hash: [u8; 32],
        last_seen_at: Timestamp,
        reauth_at: Option<Timestamp>,
    ) -> Result<(), StorageError> {
        read!(self, |c| {
            exec(
                c,
                "UPDATE staff_sessions
                 SET last_seen_at = GREATEST(last_seen_at, $2),
                     reauth_at = coalesce($3, reauth_at)
                 WHERE id_hash = $1",
                &[
                    &&id_hash[..],
                    &last_seen_at.timestamp(),
                    &reauth_at.map(|t| t.timestamp()),
                ],
            )
            .await?;
        })
        .await
    }

    async fn end_session(&self, id_hash: [u8; 32]) -> Result<(), StorageError> {
        read!(self, |c| {
            exec(
                c,
                "DELETE FROM staff_sessions WHERE id_hash = $1",
                &[&&id_hash[..]],
            )
            .await?;
        })
        .await
    }
}

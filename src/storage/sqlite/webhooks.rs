//! Webhook endpoints and the outbox on SQLite. Leases and results go through the
//! one writer like every write; whether anything is due is asked of a reader first,
//! so that an idle worker costs the writer nothing.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::writer::WriteCtx;
use super::SqliteStore;
use crate::domain::audit::{Actor, AuditEvent, NewEvent};
use crate::domain::mail::MAIL_CHANNEL;
use crate::domain::time::{self, Timestamp};
use crate::domain::webhook::{filter_from_stored, stored_filter, WebhookSecret, WEBHOOK_CHANNEL};
use crate::domain::DomainError;
use crate::storage::webhooks::{
    found, Attempt, AttemptOutcome, Delivery, DeliveryPage, DeliveryStatus, Endpoint,
    EndpointChange, LeasedMail, LeasedWebhook, NewEndpoint, WebhookStore,
};
use crate::storage::StorageError;

const ENDPOINT_COLUMNS: &str = "id, url, events, description, enabled, disabled_reason, secret, \
     previous_secret, previous_secret_until, created_at, updated_at";

fn secret(s: String) -> rusqlite::Result<WebhookSecret> {
    WebhookSecret::parse(&s).ok_or_else(|| super::corrupt("webhook_endpoints.secret"))
}

fn endpoint_from_row(r: &Row<'_>) -> rusqlite::Result<Endpoint> {
    let previous: Option<String> = r.get(7)?;
    let until: Option<i64> = r.get(8)?;
    Ok(Endpoint {
        id: r.get(0)?,
        url: r.get(1)?,
        events: filter_from_stored(&r.get::<_, String>(2)?),
        description: r.get(3)?,
        enabled: r.get(4)?,
        disabled_reason: r.get(5)?,
        secret: secret(r.get(6)?)?,
        previous_secret: match (previous, until) {
            (Some(p), Some(u)) => Some((secret(p)?, time::from_unix(u))),
            _ => None,
        },
        created_at: time::from_unix(r.get(9)?),
        updated_at: time::from_unix(r.get(10)?),
    })
}

fn load_endpoint(c: &Connection, id: &str) -> Result<Option<Endpoint>, StorageError> {
    Ok(c.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1"
    ))?
    .query_row([id], endpoint_from_row)
    .optional()?)
}

const DELIVERY_COLUMNS: &str = "id, message_id, target, kind, payload, status, attempts, \
     last_status, last_error, created_at, last_attempt_at, done_at";

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = r.get(5)?;
    Ok(Delivery {
        id: r.get(0)?,
        message_id: r.get(1)?,
        endpoint_id: r.get(2)?,
        event_type: r.get(3)?,
        payload: r.get(4)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| super::corrupt("outbox.status"))?,
        attempts: r.get(6)?,
        last_status: r.get(7)?,
        last_error: r.get(8)?,
        created_at: time::from_unix(r.get(9)?),
        last_attempt_at: r.get::<_, Option<i64>>(10)?.map(time::from_unix),
        done_at: r.get::<_, Option<i64>>(11)?.map(time::from_unix),
    })
}

fn changed(
    ctx: &mut WriteCtx<'_>,
    endpoint: &Endpoint,
    action: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<(), StorageError> {
    ctx.recount_webhook_endpoints()?;
    ctx.append(NewEvent::general(
        now,
        actor,
        AuditEvent::WebhookEndpointChanged {
            endpoint: endpoint.id.clone(),
            action: action.to_owned(),
            url: endpoint.url.clone(),
        },
    ))?;
    Ok(())
}

fn record_one(ctx: &mut WriteCtx<'_>, a: &Attempt) -> Result<(), StorageError> {
    let at = a.at.timestamp();
    let (status, next_at_ms, done_at) = match a.outcome {
        AttemptOutcome::Delivered => ("delivered", None, Some(at)),
        AttemptOutcome::Retry { next_at_ms } => ("pending", Some(next_at_ms), None),
        AttemptOutcome::Failed | AttemptOutcome::Gone => ("failed", None, Some(at)),
    };
    let updated = ctx
        .conn
        .prepare_cached(
            "UPDATE outbox SET status = ?3, attempts = attempts + 1,
                 next_at_ms = coalesce(?4, next_at_ms), last_status = ?5, last_error = ?6,
                 last_attempt_at = ?7, done_at = ?8, lease_owner = NULL, lease_until_ms = NULL
             WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
        )?
        .execute(params![
            a.id, a.owner, status, next_at_ms, a.status, a.error, at, done_at
        ])?;
    if updated == 1 && matches!(a.outcome, AttemptOutcome::Gone) {
        let disabled = ctx
            .conn
            .prepare_cached(
                "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = 'gone',
                     updated_at = ?2 WHERE id = ?1 AND enabled = 1",
            )?
            .execute(params![a.endpoint_id, at])?;
        if disabled == 1 {
            if let Some(e) = load_endpoint(ctx.conn, &a.endpoint_id)? {
                changed(ctx, &e, "disabled_gone", Actor::System, a.at)?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook_endpoint(
        &self,
        new: NewEndpoint,
        actor: Actor,
    ) -> Result<Endpoint, StorageError> {
        self.writer
            .write(move |ctx| {
                let at = new.created_at.timestamp();
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO webhook_endpoints (id, url, events, description, enabled,
                             secret, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?6)",
                    )?
                    .execute(params![
                        new.id,
                        new.url,
                        stored_filter(&new.events),
                        new.description,
                        new.secret.expose(),
                        at
                    ])?;
                let endpoint = found(load_endpoint(ctx.conn, &new.id)?)?;
                changed(ctx, &endpoint, "created", actor, new.created_at)?;
                Ok(endpoint)
            })
            .await
    }

    async fn webhook_endpoints(&self) -> Result<Vec<Endpoint>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"
            ))?;
            let rows = stmt.query_map([], endpoint_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn webhook_endpoint(&self, id: &str) -> Result<Option<Endpoint>, StorageError> {
        let id = id.to_owned();
        self.read(move |c| load_endpoint(c, &id)).await
    }

    async fn change_webhook_endpoint(
        &self,
        id: String,
        change: EndpointChange,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Endpoint, StorageError> {
        self.writer
            .write(move |ctx| {
                let before = found(load_endpoint(ctx.conn, &id)?)?;
                let at = now.timestamp();
                match &change {
                    EndpointChange::Disable => {
                        ctx.conn.execute(
                            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = 'admin',
                                 updated_at = ?2 WHERE id = ?1",
                            params![id, at],
                        )?;
                    }
                    EndpointChange::Enable => {
                        ctx.conn.execute(
                            "UPDATE webhook_endpoints SET enabled = 1, disabled_reason = NULL,
                                 updated_at = ?2 WHERE id = ?1",
                            params![id, at],
                        )?;
                    }
                    EndpointChange::RotateSecret {
                        secret,
                        overlap_until,
                    } => {
                        ctx.conn.execute(
                            "UPDATE webhook_endpoints SET previous_secret = secret,
                                 previous_secret_until = ?3, secret = ?2, updated_at = ?4
                             WHERE id = ?1",
                            params![id, secret.expose(), overlap_until.timestamp(), at],
                        )?;
                    }
                    EndpointChange::Remove => {
                        ctx.conn.execute(
                            "DELETE FROM outbox WHERE channel = ?2 AND target = ?1",
                            params![id, WEBHOOK_CHANNEL],
                        )?;
                        ctx.conn
                            .execute("DELETE FROM webhook_endpoints WHERE id = ?1", [&id])?;
                        changed(ctx, &before, change.as_str(), actor, now)?;
                        return Ok(before);
                    }
                }
                let after = found(load_endpoint(ctx.conn, &id)?)?;
                changed(ctx, &after, change.as_str(), actor, now)?;
                Ok(after)
            })
            .await
    }

    async fn lease_webhooks(
        &self,
        owner: String,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<LeasedWebhook>, StorageError> {
        let due: bool = self
            .read_short(move |c| {
                Ok(c.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM outbox
                     WHERE channel = ?1 AND status = 'pending' AND next_at_ms <= ?2
                       AND (lease_until_ms IS NULL OR lease_until_ms < ?2))",
                )?
                .query_row(params![WEBHOOK_CHANNEL, now_ms], |r| r.get(0))?)
            })
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        self.writer
            .write(move |ctx| {
                let rows: Vec<(i64, String, String, String, u32, String)> = ctx
                    .conn
                    .prepare_cached(
                        "UPDATE outbox SET lease_owner = ?1, lease_until_ms = ?2
                         WHERE id IN (
                             SELECT o.id FROM outbox o
                             JOIN webhook_endpoints e ON e.id = o.target
                             WHERE o.channel = ?5 AND o.status = 'pending'
                               AND o.next_at_ms <= ?3
                               AND (o.lease_until_ms IS NULL OR o.lease_until_ms < ?3)
                               AND e.enabled = 1
                             ORDER BY o.next_at_ms LIMIT ?4)
                         RETURNING id, message_id, kind, payload, attempts, target",
                    )?
                    .query_map(
                        params![owner, now_ms + lease_ms, now_ms, limit, WEBHOOK_CHANNEL],
                        |r| {
                            Ok((
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(4)?,
                                r.get(5)?,
                            ))
                        },
                    )?
                    .collect::<rusqlite::Result<_>>()?;
                let mut endpoints: Vec<Endpoint> = Vec::new();
                let mut out = Vec::with_capacity(rows.len());
                for (id, message_id, kind, payload, attempts, target) in rows {
                    let endpoint = match endpoints.iter().find(|e| e.id == target) {
                        Some(e) => e.clone(),
                        None => {
                            let e = found(load_endpoint(ctx.conn, &target)?)?;
                            endpoints.push(e.clone());
                            e
                        }
                    };
                    out.push(LeasedWebhook {
                        id,
                        message_id,
                        kind,
                        payload,
                        attempts,
                        endpoint,
                    });
                }
                Ok(out)
            })
            .await
    }

    async fn lease_mail(
        &self,
        owner: String,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<LeasedMail>, StorageError> {
        let due: bool = self
            .read_short(move |c| {
                Ok(c.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM outbox
                     WHERE channel = ?1 AND status = 'pending' AND next_at_ms <= ?2
                       AND (lease_until_ms IS NULL OR lease_until_ms < ?2))",
                )?
                .query_row(params![MAIL_CHANNEL, now_ms], |r| r.get(0))?)
            })
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        self.writer
            .write(move |ctx| {
                Ok(ctx
                    .conn
                    .prepare_cached(
                        "UPDATE outbox SET lease_owner = ?1, lease_until_ms = ?2
                         WHERE id IN (
                             SELECT id FROM outbox
                             WHERE channel = ?5 AND status = 'pending' AND next_at_ms <= ?3
                               AND (lease_until_ms IS NULL OR lease_until_ms < ?3)
                             ORDER BY next_at_ms LIMIT ?4)
                         RETURNING id, message_id, kind, target, payload, attempts",
                    )?
                    .query_map(
                        params![owner, now_ms + lease_ms, now_ms, limit, MAIL_CHANNEL],
                        |r| {
                            Ok(LeasedMail {
                                id: r.get(0)?,
                                message_id: r.get(1)?,
                                kind: r.get(2)?,
                                to: r.get(3)?,
                                payload: r.get(4)?,
                                attempts: r.get(5)?,
                            })
                        },
                    )?
                    .collect::<rusqlite::Result<_>>()?)
            })
            .await
    }

    async fn mail_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<Delivery>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbox
                 WHERE channel = ?1 AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR id < ?3)
                 ORDER BY id DESC LIMIT ?4"
            ))?;
            let rows = stmt.query_map(
                params![
                    MAIL_CHANNEL,
                    status.map(DeliveryStatus::as_str),
                    before,
                    limit
                ],
                delivery_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn record_attempts(&self, attempts: Vec<Attempt>) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| {
                for a in &attempts {
                    record_one(ctx, a)?;
                }
                Ok(())
            })
            .await
    }

    async fn release_own_leases(&self) -> Result<(), StorageError> {
        self.writer
            .write(|ctx| {
                ctx.conn.execute(
                    "UPDATE outbox SET lease_owner = NULL, lease_until_ms = NULL
                     WHERE status = 'pending' AND lease_owner IS NOT NULL",
                    [],
                )?;
                Ok(())
            })
            .await
    }

    async fn webhook_deliveries(&self, page: DeliveryPage) -> Result<Vec<Delivery>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbox
                 WHERE channel = ?1 AND target = ?2 AND (?3 IS NULL OR status = ?3)
                   AND (?4 IS NULL OR id < ?4)
                 ORDER BY id DESC LIMIT ?5"
            ))?;
            let rows = stmt.query_map(
                params![
                    WEBHOOK_CHANNEL,
                    page.endpoint_id,
                    page.status.map(DeliveryStatus::as_str),
                    page.before,
                    page.limit
                ],
                delivery_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn resend_delivery(
        &self,
        endpoint_id: String,
        id: i64,
        now: Timestamp,
    ) -> Result<Delivery, StorageError> {
        self.writer
            .write(move |ctx| {
                let select = format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE id = ?1 AND channel = ?2 AND target = ?3"
                );
                let d = ctx
                    .conn
                    .prepare_cached(&select)?
                    .query_row(params![id, WEBHOOK_CHANNEL, endpoint_id], delivery_from_row)
                    .optional()?
                    .ok_or(DomainError::DeliveryNotFound)?;
                if d.status != DeliveryStatus::Failed {
                    return Err(DomainError::DeliveryNotFailed(d.status.as_str()).into());
                }
                ctx.conn.execute(
                    "UPDATE outbox SET status = 'pending', attempts = 0, next_at_ms = ?2,
                         done_at = NULL, lease_owner = NULL, lease_until_ms = NULL
                     WHERE id = ?1",
                    params![id, now.timestamp_millis()],
                )?;
                Ok(ctx
                    .conn
                    .prepare_cached(&select)?
                    .query_row(params![id, WEBHOOK_CHANNEL, endpoint_id], delivery_from_row)?)
            })
            .await
    }

    async fn prune_outbox(
        &self,
        channel: &'static str,
        done_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StorageError> {
        self.writer
            .write(move |ctx| {
                let deleted = ctx.conn.execute(
                    "DELETE FROM outbox WHERE id IN (
                         SELECT id FROM outbox
                         WHERE channel = ?1 AND status <> 'pending' AND done_at < ?2
                         LIMIT ?3)",
                    params![channel, done_before.timestamp(), limit],
                )?;
                Ok(deleted as u64)
            })
            .await
    }

    async fn outbox_pending(&self, channel: &'static str) -> Result<i64, StorageError> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT count(*) FROM outbox WHERE channel = ?1 AND status = 'pending'",
            )?
            .query_row([channel], |r| r.get(0))?)
        })
        .await
    }
}

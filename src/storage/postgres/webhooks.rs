//! Webhook endpoints and the outbox on PostgreSQL. Endpoint changes lock the audit
//! head like every write (they append an event and change the count of enabled
//! endpoints the writes read with it); leases and ordinary results do not: they
//! take their rows with `FOR UPDATE SKIP LOCKED`, so that several instances share
//! the work and never hold up a write.

use async_trait::async_trait;

use tokio_postgres::Row;

use super::{connect, exec, one, opt, rows, Db, PostgresStore, Write};
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

fn secret(s: String) -> Result<WebhookSecret, StorageError> {
    WebhookSecret::parse(&s).ok_or_else(|| super::corrupt("webhook_endpoints.secret"))
}

fn endpoint_from_row(r: &Row) -> Result<Endpoint, StorageError> {
    let previous: Option<String> = r.try_get(7)?;
    let until: Option<i64> = r.try_get(8)?;
    Ok(Endpoint {
        id: r.try_get(0)?,
        url: r.try_get(1)?,
        events: filter_from_stored(r.try_get(2)?),
        description: r.try_get(3)?,
        enabled: r.try_get(4)?,
        disabled_reason: r.try_get(5)?,
        secret: secret(r.try_get(6)?)?,
        previous_secret: match (previous, until) {
            (Some(p), Some(u)) => Some((secret(p)?, time::from_unix(u))),
            _ => None,
        },
        created_at: time::from_unix(r.try_get(9)?),
        updated_at: time::from_unix(r.try_get(10)?),
    })
}

async fn load_endpoint<C: Db + ?Sized>(c: &C, id: &str) -> Result<Option<Endpoint>, StorageError> {
    opt(
        c,
        &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(endpoint_from_row)
    .transpose()
}

const DELIVERY_COLUMNS: &str = "id, message_id, target, kind, payload, status, attempts, \
     last_status, last_error, created_at, last_attempt_at, done_at";

fn delivery_from_row(r: &Row) -> Result<Delivery, StorageError> {
    let status: String = r.try_get(5)?;
    let attempts: i64 = r.try_get(6)?;
    let last_status: Option<i64> = r.try_get(7)?;
    Ok(Delivery {
        id: r.try_get(0)?,
        message_id: r.try_get(1)?,
        endpoint_id: r.try_get(2)?,
        event_type: r.try_get(3)?,
        payload: r.try_get(4)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| super::corrupt("outbox.status"))?,
        attempts: u32::try_from(attempts).map_err(|_| super::corrupt("outbox.attempts"))?,
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: r.try_get(8)?,
        created_at: time::from_unix(r.try_get(9)?),
        last_attempt_at: r.try_get::<_, Option<i64>>(10)?.map(time::from_unix),
        done_at: r.try_get::<_, Option<i64>>(11)?.map(time::from_unix),
    })
}

async fn changed(
    w: &mut Write<'_>,
    endpoint: &Endpoint,
    action: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<(), StorageError> {
    w.recount_webhook_endpoints().await?;
    w.append(NewEvent::general(
        now,
        actor,
        AuditEvent::WebhookEndpointChanged {
            endpoint: endpoint.id.clone(),
            action: action.to_owned(),
            url: endpoint.url.clone(),
        },
    ));
    Ok(())
}

/// Records one attempt; true when it was recorded (its lease was still its own).
async fn record_one<C: Db + ?Sized>(c: &C, a: &Attempt) -> Result<bool, StorageError> {
    let at = a.at.timestamp();
    let (status, next_at_ms, done_at) = match a.outcome {
        AttemptOutcome::Delivered => ("delivered", None, Some(at)),
        AttemptOutcome::Retry { next_at_ms } => ("pending", Some(next_at_ms), None),
        AttemptOutcome::Failed | AttemptOutcome::Gone => ("failed", None, Some(at)),
    };
    let updated = exec(
        c,
        "UPDATE outbox SET status = $3, attempts = attempts + 1,
             next_at_ms = coalesce($4, next_at_ms), last_status = $5, last_error = $6,
             last_attempt_at = $7, done_at = $8, lease_owner = NULL, lease_until_ms = NULL
         WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
        &[
            &a.id,
            &a.owner,
            &status,
            &next_at_ms,
            &a.status.map(i64::from),
            &a.error,
            &at,
            &done_at,
        ],
    )
    .await?;
    Ok(updated == 1)
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn create_webhook_endpoint(
        &self,
        new: NewEndpoint,
        actor: Actor,
    ) -> Result<Endpoint, StorageError> {
        write_tx!(self, |w| {
            let at = new.created_at.timestamp();
            exec(
                &w,
                "INSERT INTO webhook_endpoints (id, url, events, description, enabled,
                     secret, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, TRUE, $5, $6, $6)",
                &[
                    &new.id,
                    &new.url,
                    &stored_filter(&new.events),
                    &new.description,
                    &new.secret.expose(),
                    &at,
                ],
            )
            .await?;
            let endpoint = found(load_endpoint(&w, &new.id).await?)?;
            changed(&mut w, &endpoint, "created", actor.clone(), new.created_at).await?;
            endpoint
        })
        .await
    }

    async fn webhook_endpoints(&self) -> Result<Vec<Endpoint>, StorageError> {
        read!(self, |c| {
            rows(
                c,
                &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"),
                &[],
            )
            .await?
            .iter()
            .map(endpoint_from_row)
            .collect::<Result<Vec<_>, _>>()?
        })
        .await
    }

    async fn webhook_endpoint(&self, id: &str) -> Result<Option<Endpoint>, StorageError> {
        let id = id.to_owned();
        read!(self, |c| load_endpoint(c, &id).await?).await
    }

    async fn change_webhook_endpoint(
        &self,
        id: String,
        change: EndpointChange,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Endpoint, StorageError> {
        write_tx!(self, |w| {
            let before = found(load_endpoint(&w, &id).await?)?;
            let at = now.timestamp();
            match &change {
                EndpointChange::Disable => {
                    exec(
                        &w,
                        "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = 'admin',
                             updated_at = $2 WHERE id = $1",
                        &[&id, &at],
                    )
                    .await?;
                }
                EndpointChange::Enable => {
                    exec(
                        &w,
                        "UPDATE webhook_endpoints SET enabled = TRUE, disabled_reason = NULL,
                             updated_at = $2 WHERE id = $1",
                        &[&id, &at],
                    )
                    .await?;
                }
                EndpointChange::RotateSecret {
                    secret,
                    overlap_until,
                } => {
                    exec(
                        &w,
                        "UPDATE webhook_endpoints SET previous_secret = secret,
                             previous_secret_until = $3, secret = $2, updated_at = $4
                         WHERE id = $1",
                        &[&id, &secret.expose(), &overlap_until.timestamp(), &at],
                    )
                    .await?;
                }
                EndpointChange::Remove => {
                    exec(
                        &w,
                        "DELETE FROM outbox WHERE channel = $2 AND target = $1",
                        &[&id, &WEBHOOK_CHANNEL],
                    )
                    .await?;
                    exec(&w, "DELETE FROM webhook_endpoints WHERE id = $1", &[&id]).await?;
                }
            }
            let after = match change {
                EndpointChange::Remove => before,
                _ => found(load_endpoint(&w, &id).await?)?,
            };
            changed(&mut w, &after, change.as_str(), actor.clone(), now).await?;
            after
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
        read!(self, |c| {
            let leased = rows(
                c,
                "UPDATE outbox SET lease_owner = $1, lease_until_ms = $2
                 WHERE id IN (
                     SELECT o.id FROM outbox o
                     JOIN webhook_endpoints e ON e.id = o.target
                     WHERE o.channel = $5 AND o.status = 'pending' AND o.next_at_ms <= $3
                       AND (o.lease_until_ms IS NULL OR o.lease_until_ms < $3)
                       AND e.enabled
                     ORDER BY o.next_at_ms LIMIT $4
                     FOR UPDATE OF o SKIP LOCKED)
                 RETURNING id, message_id, kind, payload, attempts, target",
                &[
                    &owner,
                    &(now_ms + lease_ms),
                    &now_ms,
                    &i64::from(limit),
                    &WEBHOOK_CHANNEL,
                ],
            )
            .await?;
            let mut endpoints: Vec<Endpoint> = Vec::new();
            let mut out = Vec::with_capacity(leased.len());
            for r in &leased {
                let target: String = r.try_get(5)?;
                let endpoint = match endpoints.iter().find(|e| e.id == target) {
                    Some(e) => e.clone(),
                    None => {
                        let e = found(load_endpoint(c, &target).await?)?;
                        endpoints.push(e.clone());
                        e
                    }
                };
                let attempts: i64 = r.try_get(4)?;
                out.push(LeasedWebhook {
                    id: r.try_get(0)?,
                    message_id: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    payload: r.try_get(3)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    endpoint,
                });
            }
            out
        })
        .await
    }

    async fn record_attempts(&self, attempts: Vec<Attempt>) -> Result<(), StorageError> {
        let (gone, plain): (Vec<Attempt>, Vec<Attempt>) = attempts
            .into_iter()
            .partition(|a| matches!(a.outcome, AttemptOutcome::Gone));
        if !plain.is_empty() {
            self.run(move |pool| async move {
                let mut client = connect::Lease::get(&pool).await?;
                let done: Result<(), StorageError> = async {
                    let tx = client.transaction().await?;
                    for a in &plain {
                        record_one(&tx, a).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }
                .await;
                client.release();
                done
            })
            .await?;
        }
        for a in gone {
            write_tx!(self, |w| {
                if record_one(&w, &a).await? {
                    let disabled = exec(
                        &w,
                        "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = 'gone',
                             updated_at = $2 WHERE id = $1 AND enabled",
                        &[&a.endpoint_id, &a.at.timestamp()],
                    )
                    .await?;
                    if disabled == 1 {
                        if let Some(e) = load_endpoint(&w, &a.endpoint_id).await? {
                            changed(&mut w, &e, "disabled_gone", Actor::System, a.at).await?;
                        }
                    }
                }
            })
            .await?;
        }
        Ok(())
    }

    async fn lease_mail(
        &self,
        owner: String,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<LeasedMail>, StorageError> {
        read!(self, |c| {
            let leased = rows(
                c,
                "UPDATE outbox SET lease_owner = $1, lease_until_ms = $2
                 WHERE id IN (
                     SELECT id FROM outbox
                     WHERE channel = $5 AND status = 'pending' AND next_at_ms <= $3
                       AND (lease_until_ms IS NULL OR lease_until_ms < $3)
                     ORDER BY next_at_ms LIMIT $4
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, message_id, kind, target, payload, attempts",
                &[
                    &owner,
                    &(now_ms + lease_ms),
                    &now_ms,
                    &i64::from(limit),
                    &MAIL_CHANNEL,
                ],
            )
            .await?;
            let mut out = Vec::with_capacity(leased.len());
            for r in &leased {
                let attempts: i64 = r.try_get(5)?;
                out.push(LeasedMail {
                    id: r.try_get(0)?,
                    message_id: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    to: r.try_get(3)?,
                    payload: r.try_get(4)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                });
            }
            out
        })
        .await
    }

    async fn mail_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<Delivery>, StorageError> {
        read!(self, |c| {
            rows(
                c,
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbox
                     WHERE channel = $1
                       AND ($2::TEXT IS NULL OR status = $2)
                       AND ($3::BIGINT IS NULL OR id < $3)
                     ORDER BY id DESC LIMIT $4"
                ),
                &[
                    &MAIL_CHANNEL,
                    &status.map(DeliveryStatus::as_str),
                    &before,
                    &i64::from(limit),
                ],
            )
            .await?
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?
        })
        .await
    }

    async fn release_own_leases(&self) -> Result<(), StorageError> {
        // Other instances may hold leases on this database: theirs run out instead.
        Ok(())
    }

    async fn webhook_deliveries(&self, page: DeliveryPage) -> Result<Vec<Delivery>, StorageError> {
        read!(self, |c| {
            rows(
                c,
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbox
                     WHERE channel = $1 AND target = $2
                       AND ($3::TEXT IS NULL OR status = $3)
                       AND ($4::BIGINT IS NULL OR id < $4)
                     ORDER BY id DESC LIMIT $5"
                ),
                &[
                    &WEBHOOK_CHANNEL,
                    &page.endpoint_id,
                    &page.status.map(DeliveryStatus::as_str),
                    &page.before,
                    &i64::from(page.limit),
                ],
            )
            .await?
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?
        })
        .await
    }

    async fn resend_delivery(
        &self,
        endpoint_id: String,
        id: i64,
        now: Timestamp,
    ) -> Result<Delivery, StorageError> {
        self.run(move |pool| async move {
            let mut client = connect::Lease::get(&pool).await?;
            let done: Result<Delivery, StorageError> = async {
                let tx = client.transaction().await?;
                let select = format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbox
                     WHERE id = $1 AND channel = $2 AND target = $3 FOR UPDATE"
                );
                let d = opt(&tx, &select, &[&id, &WEBHOOK_CHANNEL, &endpoint_id])
                    .await?
                    .as_ref()
                    .map(delivery_from_row)
                    .transpose()?
                    .ok_or(DomainError::DeliveryNotFound)?;
                if d.status != DeliveryStatus::Failed {
                    return Err(DomainError::DeliveryNotFailed(d.status.as_str()).into());
                }
                exec(
                    &tx,
                    "UPDATE outbox SET status = 'pending', attempts = 0, next_at_ms = $2,
                         done_at = NULL, lease_owner = NULL, lease_until_ms = NULL
                     WHERE id = $1",
                    &[&id, &now.timestamp_millis()],
                )
                .await?;
                let d = delivery_from_row(
                    &one(&tx, &select, &[&id, &WEBHOOK_CHANNEL, &endpoint_id]).await?,
                )?;
                tx.commit().await?;
                Ok(d)
            }
            .await;
            client.release();
            done
        })
        .await
    }

    async fn prune_outbox(
        &self,
        channel: &'static str,
        done_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StorageError> {
        read!(self, |c| {
            exec(
                c,
                "DELETE FROM outbox WHERE id IN (
                     SELECT id FROM outbox
                     WHERE channel = $1 AND status <> 'pending' AND done_at < $2
                     LIMIT $3)",
                &[&channel, &done_before.timestamp(), &i64::from(limit)],
            )
            .await?
        })
        .await
    }

    async fn outbox_pending(&self, channel: &'static str) -> Result<i64, StorageError> {
        read!(self, |c| {
            one(
                c,
                "SELECT count(*) FROM outbox WHERE channel = $1 AND status = 'pending'",
                &[&channel],
            )
            .await?
            .try_get::<_, i64>(0)?
        })
        .await
    }
}

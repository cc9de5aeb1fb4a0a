//! Rate-limit counters every instance on the database sees (see
//! [`crate::storage::shared_limits`]), in the UNLOGGED table `rate_limit_counters`.
//!
//! UNLOGGED: a counter is not worth a WAL record, a replica or an fsync; a crash of
//! PostgreSQL or a failover empties the table, and each instance's in-memory
//! counters carry on (CockroachDB and YugabyteDB have no UNLOGGED tables, and no
//! `pg_current_snapshot`; there this table would be an ordinary one and
//! [`SharedLimits::changes`] would need another change marker).
//!
//! Each counter row remembers the transaction that last changed it
//! (`changed_xid`). A poll reads the rows changed by transactions from the previous
//! poll's horizon on, the horizon being the oldest transaction still running at the
//! poll's snapshot (`pg_snapshot_xmin(pg_current_snapshot())`): every transaction
//! older than it has ended and was seen, so a change is never skipped, however
//! commits interleave. A sequence would not do: numbers are drawn before commit,
//! and a lower one may commit after a higher one was read. A read of more rows
//! than a poll takes goes on in pages by `(changed_xid, bucket)`, and the next read
//! starts again from the horizon of its first page. The horizon is the whole
//! cluster's: a transaction left open for long anywhere on the server holds it
//! back, and each poll then reads again the counters changed since it began.

use async_trait::async_trait;

use super::{exec, one, opt, rows, PostgresStore};
use crate::domain::time::Timestamp;
use crate::storage::shared_limits::{
    ChangeCursor, Charged, LimitChange, LimitChanges, LimitCharge, SharedLimits,
};
use crate::storage::StorageError;

/// One atomic charge: `max(tat, now) + cost` unless `max(tat, now)` is past
/// `now + burst`; a new counter counts from now (when any burst is allowed). No row
/// comes back for a refused charge.
const CHARGE: &str = "INSERT INTO rate_limit_counters AS c (bucket, tat_ms, changed_xid)
     SELECT $1::TEXT, $2::BIGINT + $3::BIGINT, pg_current_xact_id()::TEXT::BIGINT
     WHERE $4::BIGINT >= 0
     ON CONFLICT (bucket) DO UPDATE
         SET tat_ms = GREATEST(c.tat_ms, $2::BIGINT) + $3::BIGINT,
             changed_xid = EXCLUDED.changed_xid
         WHERE GREATEST(c.tat_ms, $2::BIGINT) <= $2::BIGINT + $4::BIGINT
     RETURNING tat_ms";

#[async_trait]
impl SharedLimits for PostgresStore {
    async fn charge(
        &self,
        charges: Vec<LimitCharge>,
        now: Timestamp,
    ) -> Result<Vec<Charged>, StorageError> {
        let now_ms = now.timestamp_millis();
        self.run(move |pool| async move {
            let client = pool.get().await.map_err(super::pool_error)?;
            let c: &deadpool_postgres::ClientWrapper = &client;
            let mut out = Vec::with_capacity(charges.len());
            for charge in &charges {
                let counted = opt(
                    c,
                    CHARGE,
                    &[&charge.bucket, &now_ms, &charge.cost_ms, &charge.burst_ms],
                )
                .await?;
                out.push(match counted {
                    Some(row) => Charged {
                        tat_ms: row.try_get(0)?,
                        allowed: true,
                    },
                    // Refused: the counter as it stands, which only moves forward
                    // (or was just deleted as quiet: then it is now).
                    None => Charged {
                        tat_ms: opt(
                            c,
                            "SELECT tat_ms FROM rate_limit_counters WHERE bucket = $1",
                            &[&charge.bucket],
                        )
                        .await?
                        .map(|r| r.try_get(0))
                        .transpose()?
                        .unwrap_or(now_ms),
                        allowed: false,
                    },
                });
            }
            Ok(out)
        })
        .await
    }

    async fn changes(
        &self,
        since: ChangeCursor,
        now: Timestamp,
        max: u32,
    ) -> Result<LimitChanges, StorageError> {
        let now_ms = now.timestamp_millis();
        let max = i64::from(max.max(1));
        self.run(move |pool| async move {
            let client = pool.get().await.map_err(super::pool_error)?;
            let c: &deadpool_postgres::ClientWrapper = &client;
            // The horizon is taken before the rows are read: whatever committed
            // before the horizon's snapshot is visible to the later one.
            let horizon = match &since.page {
                Some((_, _, horizon)) => *horizon,
                None => one(
                    c,
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::TEXT::BIGINT",
                    &[],
                )
                .await?
                .try_get(0)?,
            };
            let (after_xid, after_bucket) = match &since.page {
                Some((xid, bucket, _)) => (Some(*xid), Some(bucket.clone())),
                None => (None, None),
            };
            let found = rows(
                c,
                "SELECT bucket, tat_ms, changed_xid FROM rate_limit_counters
                 WHERE changed_xid >= $1 AND tat_ms > $2
                   AND ($3::BIGINT IS NULL OR (changed_xid, bucket) > ($3, $4::TEXT))
                 ORDER BY changed_xid, bucket LIMIT $5",
                &[&since.from, &now_ms, &after_xid, &after_bucket, &max],
            )
            .await?;
            let mut counters = Vec::with_capacity(found.len());
            let mut last = None;
            for row in &found {
                let bucket: String = row.try_get(0)?;
                counters.push(LimitChange {
                    bucket: bucket.clone(),
                    tat_ms: row.try_get(1)?,
                });
                last = Some((row.try_get::<_, i64>(2)?, bucket));
            }
            let more = found.len() as i64 == max;
            let next = match last {
                // A full page: the next one goes on after its last row, from the
                // same mark, and the horizon of the first page is kept for after.
                Some((xid, bucket)) if more => ChangeCursor {
                    from: since.from,
                    page: Some((xid, bucket, horizon)),
                },
                _ => ChangeCursor {
                    from: horizon,
                    page: None,
                },
            };
            Ok(LimitChanges {
                counters,
                next,
                more,
            })
        })
        .await
    }

    async fn forget_quiet(&self, now: Timestamp, max: u32) -> Result<u64, StorageError> {
        let now_ms = now.timestamp_millis();
        let max = i64::from(max);
        self.run(move |pool| async move {
            let client = pool.get().await.map_err(super::pool_error)?;
            let c: &deadpool_postgres::ClientWrapper = &client;
            // The outer condition is checked again on a row a charge changed
            // meanwhile: a counter that came back to life stays.
            exec(
                c,
                "DELETE FROM rate_limit_counters WHERE tat_ms <= $1 AND bucket IN
                     (SELECT bucket FROM rate_limit_counters WHERE tat_ms <= $1
                      ORDER BY tat_ms LIMIT $2)",
                &[&now_ms, &max],
            )
            .await
        })
        .await
    }
}

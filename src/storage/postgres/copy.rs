//! `keyclerk db copy --to postgres://…`: a SQLite database into an empty PostgreSQL
//! one, table by table, in one PostgreSQL transaction, from one SQLite read
//! snapshot. Rows keep their ids, times and the audit chain's hashes, so the chain
//! verifies on the target; the copy is checked before it is committed.

use std::path::Path;

use rusqlite::OpenFlags;
use tokio_postgres::types::ToSql;

use super::{exec, one, verify_audit_on, OpenError, PostgresStore};
use crate::domain::audit::ChainError;
use crate::storage::StorageError;

/// How a column is read from SQLite and written to PostgreSQL.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Blob,
    /// An INTEGER 0/1 in SQLite, a BOOLEAN in PostgreSQL.
    Bool,
}

use Kind::{Blob, Bool, Int, Text};

/// A table: its name and its columns as (SQLite name, PostgreSQL name, kind).
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, &'static str, Kind)],
}

macro_rules! same {
    ($($col:literal : $kind:expr),* $(,)?) => {
        &[$(($col, $col, $kind)),*]
    };
}

/// Every table with data, parents before children; `audit_head` is set last.
const TABLES: &[Table] = &[
    Table {
        name: "licenses",
        columns: same![
            "id": Text, "product": Text, "order_id": Text, "customer_email": Text,
            "purchased_at": Int, "activate_by": Int, "expires_at": Int, "duration_days": Int,
            "duration_from": Text, "extra_days": Int, "seats": Int, "entitlements": Text,
            "metadata": Text, "status": Text, "key_format": Text, "request_hash": Blob,
            "created_at": Int, "updated_at": Int, "first_presented_at": Int,
            "first_activated_at": Int, "last_seen_at": Int, "price_amount": Int,
            "price_currency": Text, "supersedes": Text, "superseded_by": Text,
            "due_amount": Int, "due_currency": Text, "seats_used": Int,
        ],
    },
    Table {
        name: "license_keys",
        columns: same![
            "key_hash": Blob, "license_id": Text, "kid": Text, "payload": Text, "issued_at": Int,
        ],
    },
    Table {
        name: "events",
        columns: same![
            "seq": Int, "at": Int, "actor": Text, "kind": Text, "license_id": Text,
            "data": Text, "hash": Blob,
        ],
    },
    Table {
        name: "event_repeats",
        columns: &[
            ("seq", "seq", Int),
            ("license_id", "license_id", Text),
            ("window", "repeat_window", Text),
            ("count", "count", Int),
            ("last_at", "last_at", Int),
        ],
    },
    Table {
        name: "api_tokens",
        columns: same![
            "id": Text, "role": Text, "name": Text, "secret_hash": Blob, "prefix": Text,
            "created_at": Int, "revoked_at": Int,
        ],
    },
    Table {
        name: "signing_keys",
        columns: same!["kid": Text, "public_key": Text, "first_seen": Int],
    },
    Table {
        name: "activations",
        columns: same![
            "id": Text, "license_id": Text, "fingerprint": Text, "name": Text, "platform": Text,
            "activated_at": Int, "last_seen": Int, "deactivated_at": Int, "deactivated_by": Text,
        ],
    },
    Table {
        name: "decisions",
        columns: same![
            "id": Text, "license_id": Text, "remedy": Text, "reason": Text, "actor": Text,
            "automatic": Bool, "at": Int, "evidence": Text, "result": Text,
            "new_license_id": Text, "claim_id": Text, "idempotency_key": Text,
            "request_hash": Blob,
        ],
    },
    Table {
        name: "credit_entries",
        columns: same![
            "id": Text, "email": Text, "amount": Int, "currency": Text, "kind": Text,
            "license_id": Text, "decision_id": Text, "order_id": Text, "at": Int, "actor": Text,
        ],
    },
    Table {
        name: "claims",
        columns: same![
            "id": Text, "license_id": Text, "email": Text, "message": Text, "status": Text,
            "note": Text, "decision_id": Text, "created_at": Int, "resolved_at": Int,
            "locale": Text,
        ],
    },
    Table {
        name: "reminders",
        columns: same!["license_id": Text, "days": Int, "due_at": Int, "locale": Text],
    },
    Table {
        name: "payment_events",
        columns: same![
            "id": Text, "provider": Text, "event_id": Text, "kind": Text, "received_at": Int,
            "outcome": Text, "reason": Text, "licenses": Text, "decided_at": Int, "body": Text,
        ],
    },
    Table {
        name: "payment_links",
        columns: same![
            "provider": Text, "reference": Text, "license_id": Text, "ended_at": Int,
        ],
    },
    Table {
        name: "webhook_endpoints",
        columns: same![
            "id": Text, "url": Text, "events": Text, "description": Text, "enabled": Bool,
            "disabled_reason": Text, "secret": Text, "previous_secret": Text,
            "previous_secret_until": Int, "created_at": Int, "updated_at": Int,
        ],
    },
    Table {
        name: "outbox",
        columns: same![
            "id": Int, "message_id": Text, "channel": Text, "target": Text, "kind": Text,
            "payload": Text, "created_at": Int, "status": Text, "attempts": Int,
            "next_at_ms": Int, "lease_owner": Text, "lease_until_ms": Int, "last_status": Int,
            "last_error": Text, "last_attempt_at": Int, "done_at": Int,
        ],
    },
    Table {
        name: "staff_users",
        columns: same![
            "id": Text, "email": Text, "role": Text, "password_hash": Text, "totp_secret": Blob,
            "totp_last_step": Int, "setup_hash": Blob, "setup_expires_at": Int,
            "created_at": Int, "disabled_at": Int, "last_sign_in_at": Int,
        ],
    },
    Table {
        name: "staff_sessions",
        columns: same![
            "id_hash": Blob, "user_id": Text, "csrf_token": Text, "created_at": Int,
            "last_seen_at": Int, "reauth_at": Int,
        ],
    },
    Table {
        name: "server_secrets",
        columns: same!["name": Text, "secret": Blob, "created_at": Int],
    },
    Table {
        name: "customer_sign_ins",
        columns: same![
            "id": Text, "token_hash": Blob, "email": Text, "created_at": Int,
            "expires_at": Int, "used_at": Int,
        ],
    },
    Table {
        name: "customer_sessions",
        columns: same![
            "id_hash": Blob, "license_id": Text, "email": Text, "csrf_token": Text,
            "created_at": Int, "last_seen_at": Int,
        ],
    },
];

/// Rows read from SQLite at a time.
const CHUNK: i64 = 1000;

/// The tables without a rowid (`WITHOUT ROWID`), with the primary key they are
/// read in order of instead; every column of such a key is TEXT.
const KEYED: &[(&str, &[&str])] = &[
    ("payment_events", &["id"]),
    ("payment_links", &["provider", "reference", "license_id"]),
];

/// The primary key `table` is read in order of, or none for its rowid.
fn key_of(table: &Table) -> Option<&'static [&'static str]> {
    KEYED
        .iter()
        .find(|(name, _)| *name == table.name)
        .map(|(_, key)| *key)
}

/// Where the last chunk of a table ended.
enum After {
    /// Nothing read yet.
    Start,
    /// At this rowid.
    Rowid(i64),
    /// At this primary key.
    Key(Vec<String>),
}

/// The statements that read `table` in chunks: the first chunk, and the chunk
/// after a row (`?1`, or `?1, ?2, …` for a key).
fn chunk_queries(table: &Table) -> (String, String) {
    let columns = table
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.0))
        .collect::<Vec<_>>()
        .join(", ");
    let (order, after) = match key_of(table) {
        None => ("rowid".to_owned(), "rowid > ?1".to_owned()),
        Some(key) => {
            let order = key.join(", ");
            let marks: Vec<String> = (1..=key.len()).map(|i| format!("?{i}")).collect();
            let after = format!("({order}) > ({})", marks.join(", "));
            (order, after)
        }
    };
    let select = format!("SELECT {order}, {columns} FROM {}", table.name);
    (
        format!("{select} ORDER BY {order} LIMIT {CHUNK}"),
        format!("{select} WHERE {after} ORDER BY {order} LIMIT {CHUNK}"),
    )
}

/// One value of a row, as both databases take it.
enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
    Bool(Option<bool>),
}

impl Cell {
    fn as_param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Int(v) => v,
            Self::Text(v) => v,
            Self::Blob(v) => v,
            Self::Bool(v) => v,
        }
    }
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The SQLite database could not be read.
    #[error("{path}: {source}")]
    Source {
        /// The SQLite file.
        path: String,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The SQLite database is not at this keyclerk's schema version.
    #[error("{path} is at schema version {found}, this keyclerk copies version {known}: start this keyclerk on it once (it migrates), then copy")]
    SourceVersion {
        /// The SQLite file.
        path: String,
        /// Its version.
        found: i64,
        /// The version this binary writes.
        known: i64,
    },
    /// The target could not be opened.
    #[error(transparent)]
    Target(#[from] OpenError),
    /// The target already holds data.
    #[error("--to: the target database is not empty ({0}); copy only into an empty database")]
    NotEmpty(String),
    /// Writing the target failed.
    #[error("--to: {0}")]
    Write(#[from] StorageError),
    /// The chain did not verify on the target (nothing was committed).
    #[error("the audit chain does not verify on the copy ({0}); nothing was committed")]
    Chain(ChainError),
}

/// What a copy did: rows per table, and the events of the verified chain.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// (table, rows) in copy order.
    pub tables: Vec<(&'static str, u64)>,
    /// Events in the chain, verified on the target.
    pub events: i64,
}

/// Told `(table, rows copied, rows in the table)` as a copy goes.
pub type Progress = Box<dyn FnMut(&str, u64, u64) + Send>;

/// Copies the SQLite database at `source` into the empty PostgreSQL database of
/// `url` (migrating it first). `progress(table, copied, total)` is called as rows go.
pub fn copy_from_sqlite(
    source: &Path,
    url: &str,
    progress: Progress,
) -> Result<CopyReport, CopyError> {
    let path = source.display().to_string();
    let src = |e| CopyError::Source {
        path: path.clone(),
        source: e,
    };
    let conn = rusqlite::Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(src)?;
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(src)?;
    let known = crate::storage::sqlite::CURRENT_VERSION;
    if found != known {
        return Err(CopyError::SourceVersion { path, found, known });
    }
    let store = PostgresStore::open(url)?;
    let (done, answer) = std::sync::mpsc::channel();
    let pool = store.pool.clone();
    store.runtime.spawn(async move {
        let _ = done.send(copy(conn, path, pool, progress).await);
    });
    answer.recv().map_err(|_| {
        CopyError::Write(StorageError::Unavailable("the PostgreSQL runtime stopped"))
    })?
}

async fn copy(
    conn: rusqlite::Connection,
    path: String,
    pool: deadpool_postgres::Pool,
    mut progress: Progress,
) -> Result<CopyReport, CopyError> {
    let src = |e| CopyError::Source {
        path: path.clone(),
        source: e,
    };
    let mut client = pool.get().await.map_err(super::pool_error)?;
    let tx = client.transaction().await.map_err(StorageError::from)?;
    // Every table locked against writes first (a write of an instance that started
    // before waits for the copy, or the copy for it), then the head: no instance
    // writes while the copy runs.
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    tx.batch_execute(&format!(
        "LOCK TABLE {}, audit_head IN EXCLUSIVE MODE",
        names.join(", ")
    ))
    .await
    .map_err(StorageError::from)?;
    let head = one(
        &tx,
        "SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE",
        &[],
    )
    .await?;
    let head_seq: i64 = head.try_get(0).map_err(StorageError::from)?;
    let mut held = Vec::new();
    for table in TABLES {
        let n: i64 = one(&tx, &format!("SELECT count(*) FROM {}", table.name), &[])
            .await?
            .try_get(0)
            .map_err(StorageError::from)?;
        if n > 0 {
            held.push(format!("{} rows in {}", n, table.name));
        }
    }
    if head_seq != 0 || !held.is_empty() {
        return Err(CopyError::NotEmpty(if held.is_empty() {
            format!("its audit chain is at event {head_seq}")
        } else {
            held.join(", ")
        }));
    }
    // One snapshot of the source for the whole copy.
    conn.execute_batch("BEGIN").map_err(src)?;
    let mut report = Vec::new();
    for table in TABLES {
        let total: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {}", table.name), [], |r| {
                r.get(0)
            })
            .map_err(src)?;
        let total = u64::try_from(total).unwrap_or(0);
        let pg_columns: Vec<&str> = table.columns.iter().map(|c| c.1).collect();
        let placeholders: Vec<String> =
            (1..=table.columns.len()).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            pg_columns.join(", "),
            placeholders.join(", ")
        );
        let queries = chunk_queries(table);
        let mut after = After::Start;
        let mut copied = 0u64;
        progress(table.name, 0, total);
        loop {
            let rows = read_chunk(&conn, &queries, table, &mut after).map_err(src)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let params: Vec<&(dyn ToSql + Sync)> = row.iter().map(Cell::as_param).collect();
                exec(&tx, &insert, &params).await?;
            }
            copied += rows.len() as u64;
            progress(table.name, copied, total);
        }
        report.push((table.name, copied));
    }
    let (seq, hash): (i64, Vec<u8>) = conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(src)?;
    conn.execute_batch("COMMIT").map_err(src)?;
    exec(
        &tx,
        "UPDATE audit_head SET seq = $1, hash = $2,
             webhook_endpoints = (SELECT count(*) FROM webhook_endpoints WHERE enabled)
         WHERE id = 1",
        &[&seq, &hash],
    )
    .await?;
    // The outbox's ids were copied as they were: new rows take the next ones.
    exec(
        &tx,
        "SELECT setval(pg_get_serial_sequence('outbox', 'id'), coalesce(max(id), 0) + 1, false)
         FROM outbox",
        &[],
    )
    .await?;
    let events = verify_audit_on(&tx).await?.map_err(CopyError::Chain)?;
    tx.commit().await.map_err(StorageError::from)?;
    Ok(CopyReport {
        tables: report,
        events,
    })
}

/// Up to [`CHUNK`] rows after `after` (by rowid or by key), which moves to the
/// last one read.
fn read_chunk(
    conn: &rusqlite::Connection,
    (first, next): &(String, String),
    table: &Table,
    after: &mut After,
) -> rusqlite::Result<Vec<Vec<Cell>>> {
    let mut stmt = conn.prepare_cached(if matches!(after, After::Start) {
        first
    } else {
        next
    })?;
    let from: Vec<rusqlite::types::Value> = match after {
        After::Start => Vec::new(),
        After::Rowid(id) => vec![(*id).into()],
        After::Key(key) => key.iter().cloned().map(Into::into).collect(),
    };
    let mut rows = stmt.query(rusqlite::params_from_iter(from))?;
    let key = key_of(table);
    let skip = key.map_or(1, <[_]>::len);
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        *after = match key {
            None => After::Rowid(r.get(0)?),
            Some(key) => After::Key(
                (0..key.len())
                    .map(|i| r.get::<_, String>(i))
                    .collect::<rusqlite::Result<_>>()?,
            ),
        };
        let mut cells = Vec::with_capacity(table.columns.len());
        for (i, (_, _, kind)) in table.columns.iter().enumerate() {
            let i = i + skip;
            cells.push(match kind {
                Int => Cell::Int(r.get(i)?),
                Text => Cell::Text(r.get(i)?),
                Blob => Cell::Blob(r.get(i)?),
                Bool => Cell::Bool(r.get::<_, Option<i64>>(i)?.map(|v| v != 0)),
            });
        }
        out.push(cells);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column of every SQLite table is copied (a migration that adds one
    /// must add it here too).
    #[test]
    fn every_sqlite_column_has_a_place_in_the_copy() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::storage::sqlite::migrate_for_tests(&mut conn);
        for table in TABLES {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{}')",
                    table.name
                ))
                .unwrap();
            let mut columns: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            columns.sort();
            let mut copied: Vec<String> = table.columns.iter().map(|c| c.0.to_owned()).collect();
            copied.sort();
            assert_eq!(columns, copied, "table {}", table.name);
        }
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for t in tables {
            assert!(
                t == "audit_head" || TABLES.iter().any(|c| c.name == t),
                "table {t} is not copied"
            );
        }
    }

    /// A table without a rowid is read by its primary key (a rowid query would
    /// fail on it), and a table with one by its rowid.
    #[test]
    fn tables_without_a_rowid_are_read_by_their_key() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::storage::sqlite::migrate_for_tests(&mut conn);
        for table in TABLES {
            let has_rowid = conn
                .prepare(&format!("SELECT rowid FROM {}", table.name))
                .is_ok();
            assert_eq!(key_of(table).is_none(), has_rowid, "table {}", table.name);
            let (first, next) = chunk_queries(table);
            conn.prepare(&first)
                .unwrap_or_else(|e| panic!("{first}: {e}"));
            conn.prepare(&next)
                .unwrap_or_else(|e| panic!("{next}: {e}"));
        }
    }

    /// Reading by key in chunks returns every row once, in order, across chunks.
    #[test]
    fn a_keyed_table_is_read_whole_across_chunks() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::storage::sqlite::migrate_for_tests(&mut conn);
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        let n = CHUNK * 2 + 7;
        for i in 0..n {
            // Two references share each license, and the references repeat a
            // prefix, so the key's later columns decide the order too.
            conn.execute(
                "INSERT INTO payment_links (provider, reference, license_id) VALUES ('stripe', ?1, ?2)",
                rusqlite::params![format!("ref_{}", i / 2), format!("lic_{i}")],
            )
            .unwrap();
        }
        let table = TABLES.iter().find(|t| t.name == "payment_links").unwrap();
        let queries = chunk_queries(table);
        let mut after = After::Start;
        let mut seen = Vec::new();
        loop {
            let rows = read_chunk(&conn, &queries, table, &mut after).unwrap();
            if rows.is_empty() {
                break;
            }
            for row in rows {
                match &row[2] {
                    Cell::Text(Some(id)) => seen.push(id.clone()),
                    _ => panic!("license_id is not text"),
                }
            }
        }
        assert_eq!(seen.len() as i64, n);
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len());
    }
}

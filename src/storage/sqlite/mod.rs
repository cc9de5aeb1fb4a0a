//! The SQLite engine: one file in the data directory, WAL, group-committing writer.

mod activations;
mod backup;
mod customer;
mod grace;
mod migrations;
mod payments;
mod pool;
mod reminders;
mod staff;
mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::domain::audit::{
    verify_chain_head, Actor, AuditEvent, ChainError, ChainHead, ClaimStatus, Event, EventRecord,
    NewEvent, PreparedEvent, PresentedBy,
};
use crate::domain::grace::{EvidenceEvents, PastEvent};
use crate::domain::license::{
    Action, License, LicenseStatus, MintDecision, NewLicense, MAX_EMAIL_MATCHES,
};
use crate::domain::product::{DurationFrom, KeyFormat};
use crate::domain::time::{self, Timestamp};
use crate::domain::token::{the_named_token, ApiToken, NewApiToken, Role};
use crate::domain::DomainError;
use crate::storage::activation::{
    Activation, ActivationOutcome, Deactivation, DeactivationOutcome, KeyFacts, NewActivation,
};
use crate::storage::grace::{
    Claim, ClaimOutcome, CreditEntry, DecisionOutcome, GraceRequest, NewClaim, QueuedClaim,
    Redemption,
};
use crate::storage::last_seen::SeenTimes;
pub(super) use crate::storage::rows::price_columns;
use crate::storage::rows::{past_events, price_from};
use crate::storage::DOWNLOAD_SECRET;
use crate::storage::{
    EventPage, IssuedKey, KnownKey, LicenseLookup, LicensePage, MintOutcome, Storage, StorageError,
    StoredKey,
};

pub use backup::{backup, BackupError, BackupReport};
pub use migrations::{MigrationError, CURRENT_VERSION};
use pool::ReadPool;
use writer::{WriteCtx, Writer};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "keyclerk.db";
/// Read connections in the pool.
const READ_CONNECTIONS: usize = 4;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite refused.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The schema could not be brought up to date.
    #[error("{path}: {source}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: MigrationError,
    },
    /// The writer thread could not start.
    #[error("could not start the writer thread: {0}")]
    Thread(std::io::Error),
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Database(Box::new(e))
    }
}

/// keyclerk's SQLite storage.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<ReadPool>,
    _background: Arc<Background>,
    path: PathBuf,
}

/// Stops the checkpointer (after a last checkpoint) when the last copy of the store
/// is dropped.
struct Background {
    _checkpointer: std::sync::mpsc::Sender<()>,
}

/// Prepared statements kept per connection (rusqlite's default of 16 is fewer than
/// one activation uses).
pub(super) const STATEMENT_CACHE: usize = 128;
/// Page cache of the write connection, in KiB.
const WRITER_CACHE_KIB: i64 = 8 * 1024;
/// Page cache of the checkpointer's connection, in KiB.
const CHECKPOINT_CACHE_KIB: i64 = 256;
/// WAL pages after which the writer checkpoints itself (16 MiB of 4 KiB pages).
const WAL_RESTART_PAGES: i64 = 4096;
/// How often the checkpointer looks at the WAL.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A savepoint per job keeps a statement journal: in memory, not in a temp file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // The checkpointer thread copies the WAL back as it grows, so that commits rarely
    // wait for it. Past this size the writer checkpoints too, after a commit (then
    // little is left to copy): only a checkpoint by the one writer, with no newer
    // frame behind it, lets the next transaction start the WAL from the beginning,
    // which keeps the file from growing without end under steady writes.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_RESTART_PAGES)?;
    Ok(())
}

/// Copies the WAL back into the database from its own connection, off the writer's
/// path: a PASSIVE checkpoint never blocks the writer or the readers.
fn start_checkpointer(path: &Path) -> Result<std::sync::mpsc::Sender<()>, OpenError> {
    let conn = Connection::open(path).map_err(|source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    })?;
    // A checkpoint copies frames from the WAL to the database: it needs no page cache.
    conn.pragma_update(None, "cache_size", -CHECKPOINT_CACHE_KIB)
        .map_err(|source| OpenError::Sqlite {
            path: path.to_owned(),
            source,
        })?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("keyclerk-checkpoint".into())
        .spawn(move || {
            loop {
                let last = !matches!(
                    stopped.recv_timeout(CHECKPOINT_EVERY),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                );
                // The answer (busy, frames in the WAL, frames copied) is not needed.
                let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                if let Err(e) = done {
                    log::warn!("checkpoint failed: {e}");
                }
                if last {
                    break;
                }
            }
        })
        .map_err(OpenError::Thread)?;
    Ok(stop)
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/keyclerk.db`, migrates it and starts the writer.
    pub fn open(data_dir: &Path) -> Result<Self, OpenError> {
        let path = data_dir.join(DB_FILE);
        let sqlite = |source| OpenError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(sqlite)?;
        configure(&conn).map_err(sqlite)?;
        migrations::migrate(&mut conn).map_err(|source| OpenError::Migration {
            path: path.clone(),
            source,
        })?;
        let readers = ReadPool::open(&path, READ_CONNECTIONS).map_err(sqlite)?;
        let writer = Writer::start(conn).map_err(OpenError::Thread)?;
        let background = Background {
            _checkpointer: start_checkpointer(&path)?,
        };
        Ok(Self {
            writer,
            readers: Arc::new(readers),
            _background: Arc::new(background),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a short read (a few index look-ups) on the calling thread when a
    /// connection is free, else like [`SqliteStore::read`]. For the hot paths, where
    /// handing the work to another thread costs more than the read itself.
    async fn read_short<R, F>(&self, f: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StorageError> + Send + 'static,
    {
        match self.readers.try_get() {
            Some(conn) => f(&conn),
            None => self.read(f).await,
        }
    }

    async fn read<R, F>(&self, f: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StorageError> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let conn = readers
                .get()
                .ok_or(StorageError::Unavailable("reader pool poisoned"))?;
            f(&conn)
        })
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(p) => StorageError::Panicked(writer::panic_message(p.as_ref())),
            Err(_) => StorageError::Unavailable("reader task was cancelled"),
        })?
    }
}

pub(super) const LICENSE_COLUMNS: &str =
    "id, product, order_id, customer_email, purchased_at, activate_by, \
     expires_at, duration_days, duration_from, extra_days, seats, entitlements, metadata, status, \
     key_format, created_at, updated_at, price_amount, price_currency, supersedes, superseded_by, \
     due_amount, due_currency";

pub(super) fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
}

pub(super) fn license_from_row(r: &Row<'_>) -> rusqlite::Result<License> {
    let entitlements: String = r.get(11)?;
    let metadata: Option<String> = r.get(12)?;
    let status: String = r.get(13)?;
    let duration_from: String = r.get(8)?;
    let key_format: String = r.get(14)?;
    Ok(License {
        id: r.get(0)?,
        product: r.get(1)?,
        order_id: r.get(2)?,
        customer_email: r.get(3)?,
        purchased_at: time::from_unix(r.get(4)?),
        activate_by: r.get::<_, Option<i64>>(5)?.map(time::from_unix),
        expires_at: r.get::<_, Option<i64>>(6)?.map(time::from_unix),
        duration_days: r.get(7)?,
        duration_from: DurationFrom::parse(&duration_from)
            .ok_or_else(|| corrupt("duration_from"))?,
        extra_days: r.get(9)?,
        seats: r.get(10)?,
        entitlements: serde_json::from_str(&entitlements).map_err(|_| corrupt("entitlements"))?,
        metadata: metadata
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(|_| corrupt("metadata"))?,
        status: LicenseStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        key_format: KeyFormat::parse(&key_format).ok_or_else(|| corrupt("key_format"))?,
        created_at: time::from_unix(r.get(15)?),
        updated_at: time::from_unix(r.get(16)?),
        price: price_from(r.get(17)?, r.get(18)?),
        supersedes: r.get(19)?,
        superseded_by: r.get(20)?,
        amount_due: price_from(r.get(21)?, r.get(22)?),
    })
}

fn insert_token(ctx: &WriteCtx<'_>, new: &NewApiToken) -> Result<(), StorageError> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO api_tokens (id, role, name, secret_hash, prefix, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            new.id,
            new.role.as_str(),
            new.name,
            &new.secret_hash[..],
            new.prefix,
            new.created_at.timestamp()
        ])?;
    Ok(())
}

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<ApiToken> {
    let role: String = r.get(1)?;
    Ok(ApiToken {
        id: r.get(0)?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role"))?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        created_at: time::from_unix(r.get(4)?),
        revoked_at: r.get::<_, Option<i64>>(5)?.map(time::from_unix),
    })
}

const TOKEN_COLUMNS: &str = "id, role, name, prefix, created_at, revoked_at";

pub(super) fn load_license(conn: &Connection, id: &str) -> Result<Option<License>, StorageError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = ?1"
        ))?
        .query_row([id], license_from_row)
        .optional()?)
}

pub(super) fn latest_key(conn: &Connection, license_id: &str) -> Result<StoredKey, StorageError> {
    conn.prepare_cached(
        "SELECT kid, payload FROM license_keys WHERE license_id = ?1
         ORDER BY issued_at DESC, rowid DESC LIMIT 1",
    )?
    .query_row([license_id], |r| {
        Ok(StoredKey {
            kid: r.get(0)?,
            payload: r.get(1)?,
        })
    })
    .optional()?
    .ok_or_else(|| StorageError::Corrupt(format!("license {license_id} has no key")))
}

/// What a mint stores as text (JSON columns and the event), made before the writer
/// takes the job: the writer then only looks up, numbers, hashes and inserts.
pub(super) struct MintText {
    entitlements: String,
    metadata: Option<String>,
    event: PreparedEvent,
}

impl MintText {
    /// The text of `new`'s row and its minted event (key `key`, by `actor`).
    pub(super) fn of(
        new: &NewLicense,
        key: &IssuedKey,
        actor: &Actor,
    ) -> Result<Self, StorageError> {
        let l = &new.license;
        Ok(Self {
            entitlements: serde_json::to_string(&l.entitlements)
                .map_err(|e| StorageError::Corrupt(format!("entitlements: {e}")))?,
            metadata: l
                .metadata
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StorageError::Corrupt(format!("metadata: {e}")))?,
            event: NewEvent::about(
                &l.id,
                l.created_at,
                actor.clone(),
                new.minted_event(&key.stored.kid),
            )
            .prepare(),
        })
    }
}

/// `INSERT INTO licenses` with every column: made once (the statement cache is
/// keyed by the text).
static INSERT_LICENSE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO licenses ({LICENSE_COLUMNS}, request_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24)"
    )
});

/// Mints one license. A domain error (an order conflict) is returned before anything
/// is written; callers rely on that.
pub(super) fn mint_one(
    ctx: &mut WriteCtx<'_>,
    new: &NewLicense,
    key: &IssuedKey,
    actor: &Actor,
) -> Result<MintOutcome, StorageError> {
    mint_with_text(ctx, new, key, MintText::of(new, key, actor)?)
}

/// [`mint_one`] with its text made before.
pub(super) fn mint_with_text(
    ctx: &mut WriteCtx<'_>,
    new: &NewLicense,
    key: &IssuedKey,
    text: MintText,
) -> Result<MintOutcome, StorageError> {
    let l = &new.license;
    let existing: Option<(String, Vec<u8>)> = ctx
        .conn
        .prepare_cached("SELECT id, request_hash FROM licenses WHERE order_id = ?1")?
        .query_row([&l.order_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let MintDecision::Existing = new.decide(existing.as_ref().map(|(_, h)| h.as_slice()))? {
        let id = existing
            .map(|(id, _)| id)
            .ok_or_else(|| StorageError::Corrupt("an existing order without a row".into()))?;
        let license = load_license(ctx.conn, &id)?
            .ok_or_else(|| StorageError::Corrupt(format!("license {id} vanished")))?;
        let stored = latest_key(ctx.conn, &id)?;
        return Ok(MintOutcome::Existing(license, stored));
    }
    ctx.conn.prepare_cached(&INSERT_LICENSE)?.execute(params![
        l.id,
        l.product,
        l.order_id,
        l.customer_email,
        l.purchased_at.timestamp(),
        l.activate_by.map(|t| t.timestamp()),
        l.expires_at.map(|t| t.timestamp()),
        l.duration_days,
        l.duration_from.as_str(),
        l.extra_days,
        l.seats,
        text.entitlements,
        text.metadata,
        l.status.as_str(),
        l.key_format.as_str(),
        l.created_at.timestamp(),
        l.updated_at.timestamp(),
        price_columns(l.price.as_ref()).0,
        price_columns(l.price.as_ref()).1,
        l.supersedes,
        l.superseded_by,
        price_columns(l.amount_due.as_ref()).0,
        price_columns(l.amount_due.as_ref()).1,
        &new.request_hash[..],
    ])?;
    store_key(ctx.conn, &l.id, key, l.created_at)?;
    ctx.append_prepared(text.event)?;
    if let Some(mail) = &new.mail {
        ctx.queue_mail(mail, l.created_at)?;
    }
    reminders::schedule(ctx, new)?;
    Ok(MintOutcome::Created(l.clone()))
}

/// Stores a key of a license. A key stored before is left as it is: a short key is
/// derived from the license id, so re-issuing one gives the same key again.
pub(super) fn store_key(
    conn: &Connection,
    license_id: &str,
    key: &IssuedKey,
    at: Timestamp,
) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO license_keys (key_hash, license_id, kid, payload, issued_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        &key.key_hash[..],
        license_id,
        key.stored.kid,
        key.stored.payload,
        at.timestamp()
    ])?;
    Ok(())
}

pub(super) fn update_license_state(ctx: &WriteCtx<'_>, l: &License) -> Result<(), StorageError> {
    ctx.conn
        .prepare_cached(
            "UPDATE licenses SET status = ?2, expires_at = ?3, extra_days = ?4, updated_at = ?5,
                activate_by = ?6, superseded_by = ?7, due_amount = ?8, due_currency = ?9
             WHERE id = ?1",
        )?
        .execute(params![
            l.id,
            l.status.as_str(),
            l.expires_at.map(|t| t.timestamp()),
            l.extra_days,
            l.updated_at.timestamp(),
            l.activate_by.map(|t| t.timestamp()),
            l.superseded_by,
            price_columns(l.amount_due.as_ref()).0,
            price_columns(l.amount_due.as_ref()).1,
        ])?;
    Ok(())
}

/// Columns of an event with its repeats, for [`event_from_row`].
const EVENT_COLUMNS: &str = "events.seq, events.at, events.actor, events.kind, \
     events.license_id, events.data, event_repeats.count, event_repeats.last_at";

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    let seq: i64 = r.get(0)?;
    let json = |i: usize, what: &str| -> rusqlite::Result<serde_json::Value> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).map_err(|_| corrupt(what))
    };
    let count: Option<i64> = r.get(6)?;
    let last_at: Option<i64> = r.get(7)?;
    Ok(Event {
        seq,
        at: time::from_unix(r.get(1)?),
        actor: json(2, "event actor")?,
        kind: r.get(3)?,
        license_id: r.get(4)?,
        data: json(5, "event data")?,
        repeats: crate::storage::rows::repeats_from(count, last_at)
            .map_err(|_| corrupt("repeat count"))?,
    })
}

/// A page of one license's events, oldest first, after the event `page.after`.
pub(super) fn license_events(
    conn: &Connection,
    license_id: &str,
    page: &EventPage,
) -> Result<Vec<Event>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events
         LEFT JOIN event_repeats ON event_repeats.seq = events.seq
         WHERE events.license_id = ?1 AND events.seq > ?2
         ORDER BY events.seq LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![license_id, page.after.unwrap_or(0), page.limit],
        event_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The condition of the partial index `events_evidence` (the kinds the evidence
/// reads) on `column`: a query states it so that SQLite may use that index.
pub(super) fn evidence_kinds(column: &str) -> String {
    let kinds = EvidenceEvents::FIRST_OF
        .iter()
        .chain(&EvidenceEvents::ALL_OF)
        .map(|k| format!("{column} = '{k}'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!("({kinds})")
}

/// The statements [`evidence_events`] runs: for each kind the evidence reads, one
/// with the kind written in (the first event for [`EvidenceEvents::FIRST_OF`], every
/// one for [`EvidenceEvents::ALL_OF`]). Not `kind = ?2`: a parameter compared where
/// the partial index `events_evidence` names values makes SQLite prepare the
/// statement again whenever its value changes (to see whether the index applies),
/// and with the kind changing from one query to the next that was every query: two
/// thirds of the claims queue's time went into SQLite's parser.
pub(super) static EVIDENCE_SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    let kinds = evidence_kinds("events.kind");
    let select = |kind: &str, limit: &str| {
        format!(
            "SELECT {EVENT_COLUMNS} FROM events
             LEFT JOIN event_repeats ON event_repeats.seq = events.seq
             WHERE events.license_id = ?1 AND events.kind = '{kind}' AND {kinds}
             ORDER BY events.seq{limit}"
        )
    };
    EvidenceEvents::FIRST_OF
        .iter()
        .map(|k| select(k, " LIMIT 1"))
        .chain(EvidenceEvents::ALL_OF.iter().map(|k| select(k, "")))
        .collect()
});

/// The events the evidence of a late claim reads (see [`EvidenceEvents`]), oldest
/// first: by kind, through an index, never the license's whole history.
pub(super) fn evidence_events(
    conn: &Connection,
    license_id: &str,
) -> Result<Vec<PastEvent>, StorageError> {
    let mut events = Vec::new();
    for sql in EVIDENCE_SQL.iter() {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([license_id], event_from_row)?;
        for row in rows {
            events.push(row?);
        }
    }
    past_events(events)
}

pub(super) fn require_license(ctx: &WriteCtx<'_>, id: &str) -> Result<License, StorageError> {
    load_license(ctx.conn, id)?.ok_or(StorageError::Domain(DomainError::LicenseNotFound))
}

#[async_trait]
impl Storage for SqliteStore {
    async fn activate(
        &self,
        req: NewActivation,
        now: Timestamp,
    ) -> Result<ActivationOutcome, StorageError> {
        self.writer
            .write(move |ctx| activations::activate_one(ctx, &req, now))
            .await
    }

    async fn deactivate(
        &self,
        req: Deactivation,
        now: Timestamp,
    ) -> Result<DeactivationOutcome, StorageError> {
        self.writer
            .write(move |ctx| activations::deactivate_one(ctx, &req, now))
            .await
    }

    async fn key_facts(
        &self,
        key_hash: [u8; 32],
        fingerprint: Option<String>,
    ) -> Result<Option<KeyFacts>, StorageError> {
        self.read_short(move |c| activations::key_facts(c, &key_hash, fingerprint.as_deref()))
            .await
    }

    async fn mark_presented(
        &self,
        license_id: String,
        by: PresentedBy,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| activations::mark_presented(ctx, &license_id, false, by, now))
            .await
    }

    async fn record_last_seen(&self, seen: SeenTimes) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| activations::record_last_seen(ctx, &seen))
            .await
    }

    async fn decide(
        &self,
        req: GraceRequest,
        now: Timestamp,
    ) -> Result<DecisionOutcome, StorageError> {
        self.writer
            .write(move |ctx| grace::decide(ctx, &req, now))
            .await
    }

    async fn confirm_payment(
        &self,
        id: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<License, StorageError> {
        self.writer
            .write(move |ctx| grace::confirm_payment(ctx, &id, &actor, now))
            .await
    }

    async fn credits(&self, email: &str) -> Result<Vec<CreditEntry>, StorageError> {
        let email = email.to_owned();
        self.read(move |c| grace::credits(c, &email)).await
    }

    async fn redeem(
        &self,
        r: Redemption,
        now: Timestamp,
    ) -> Result<(CreditEntry, bool), StorageError> {
        self.writer
            .write(move |ctx| grace::redeem(ctx, &r, now))
            .await
    }

    async fn file_claim(&self, c: NewClaim, now: Timestamp) -> Result<ClaimOutcome, StorageError> {
        self.writer
            .write(move |ctx| grace::file_claim(ctx, &c, now))
            .await
    }

    async fn claim(&self, id: &str) -> Result<Option<Claim>, StorageError> {
        let id = id.to_owned();
        self.read(move |c| grace::claim(c, &id)).await
    }

    async fn claims(&self, status: ClaimStatus) -> Result<Vec<Claim>, StorageError> {
        self.read(move |c| grace::claims(c, status)).await
    }

    async fn customer_claims(&self, email: &str) -> Result<Vec<Claim>, StorageError> {
        let email = email.to_owned();
        self.read(move |c| grace::customer_claims(c, &email)).await
    }

    async fn claims_with_evidence(
        &self,
        status: ClaimStatus,
        with_evidence: usize,
        now: Timestamp,
    ) -> Result<Vec<QueuedClaim>, StorageError> {
        self.read(move |c| {
            let mut queue = Vec::new();
            for (i, claim) in grace::claims(c, status)?.into_iter().enumerate() {
                let read = match i < with_evidence {
                    true => load_license(c, &claim.license_id)?
                        .map(|l| grace::evidence_of(c, &l, now).map(|e| (l, e)))
                        .transpose()?,
                    false => None,
                };
                queue.push(QueuedClaim { claim, read });
            }
            Ok(queue)
        })
        .await
    }

    async fn license_claims(
        &self,
        license_id: &str,
        status: ClaimStatus,
    ) -> Result<Vec<Claim>, StorageError> {
        let id = license_id.to_owned();
        self.read(move |c| grace::license_claims(c, &id, status))
            .await
    }

    async fn resolve_claim(
        &self,
        req: GraceRequest,
        now: Timestamp,
    ) -> Result<DecisionOutcome, StorageError> {
        self.writer
            .write(move |ctx| grace::resolve_claim(ctx, &req, now))
            .await
    }

    async fn activations(&self, license_id: &str) -> Result<Vec<Activation>, StorageError> {
        let id = license_id.to_owned();
        self.read(move |c| activations::list(c, &id)).await
    }

    async fn ready(&self) -> Result<(), StorageError> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .map(|_| ())
    }

    fn stats(&self) -> crate::storage::StorageStats {
        let w = self.writer.stats();
        crate::storage::StorageStats {
            engine: "sqlite",
            write_queue: Some(w.queue()),
            write_batch_size: Some(w.batch_size.snapshot()),
            batch_micros: Some(w.batch_micros.snapshot()),
            commit_micros: Some(w.commit_micros.snapshot()),
            pools: vec![self.readers.stats()],
        }
    }

    async fn mint(
        &self,
        new: NewLicense,
        key: IssuedKey,
        actor: Actor,
    ) -> Result<MintOutcome, StorageError> {
        let text = MintText::of(&new, &key, &actor)?;
        self.writer
            .write(move |ctx| mint_with_text(ctx, &new, &key, text))
            .await
    }

    async fn mint_batch(
        &self,
        items: Vec<(NewLicense, IssuedKey)>,
        actor: Actor,
    ) -> Result<Vec<Result<MintOutcome, StorageError>>, StorageError> {
        // The text of up to a thousand rows and events takes milliseconds: made on
        // the blocking pool, in parallel with other requests, not on the one writer.
        let items = tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .map(|(new, key)| {
                    let text = MintText::of(&new, &key, &actor)?;
                    Ok((new, key, text))
                })
                .collect::<Result<Vec<_>, StorageError>>()
        })
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(p) => StorageError::Panicked(writer::panic_message(p.as_ref())),
            Err(_) => StorageError::Unavailable("batch preparation was cancelled"),
        })??;
        self.writer
            .write(move |ctx| {
                crate::storage::mint_each(items, |(new, key, text)| {
                    mint_with_text(ctx, &new, &key, text)
                })
            })
            .await
    }

    async fn license(&self, id: &str) -> Result<Option<(License, StoredKey)>, StorageError> {
        let id = id.to_owned();
        self.read(move |c| match load_license(c, &id)? {
            Some(l) => {
                let key = latest_key(c, &id)?;
                Ok(Some((l, key)))
            }
            None => Ok(None),
        })
        .await
    }

    async fn evidence(
        &self,
        license_id: &str,
        now: Timestamp,
    ) -> Result<Option<crate::domain::grace::Evidence>, StorageError> {
        let id = license_id.to_owned();
        self.read(move |c| {
            load_license(c, &id)?
                .map(|l| grace::evidence_of(c, &l, now))
                .transpose()
        })
        .await
    }

    async fn find_licenses(&self, lookup: LicenseLookup) -> Result<Vec<License>, StorageError> {
        self.read(move |c| {
            let (sql, arg): (String, rusqlite::types::Value) = match lookup {
                LicenseLookup::OrderId(o) => (
                    format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE order_id = ?1"),
                    o.into(),
                ),
                LicenseLookup::Email(e) => (
                    format!(
                        "SELECT {LICENSE_COLUMNS} FROM licenses WHERE customer_email = ?1
                         ORDER BY id LIMIT {MAX_EMAIL_MATCHES}"
                    ),
                    e.into(),
                ),
                LicenseLookup::KeyHash(h) => (
                    format!(
                        "SELECT {LICENSE_COLUMNS} FROM licenses WHERE id =
                         (SELECT license_id FROM license_keys WHERE key_hash = ?1)"
                    ),
                    h.to_vec().into(),
                ),
            };
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([arg], license_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn list_licenses(&self, page: LicensePage) -> Result<Vec<License>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {LICENSE_COLUMNS} FROM licenses
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR product = ?2)
                   AND (?3 IS NULL OR id > ?3)
                 ORDER BY id LIMIT ?4"
            ))?;
            let rows = stmt.query_map(
                params![
                    page.status.map(|s| s.as_str()),
                    page.product,
                    page.after,
                    page.limit
                ],
                license_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn transition(
        &self,
        id: String,
        action: Action,
        reason: Option<String>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<License, StorageError> {
        self.writer
            .write(move |ctx| {
                let mut license = require_license(ctx, &id)?;
                let event = license.transition(action, reason, now)?;
                update_license_state(ctx, &license)?;
                ctx.append(NewEvent::about(&id, now, actor, event))?;
                Ok(license)
            })
            .await
    }

    async fn renew(
        &self,
        id: String,
        days: Option<u32>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<License, StorageError> {
        self.writer
            .write(move |ctx| {
                let mut license = require_license(ctx, &id)?;
                let event = license.apply_renewal(days, now)?;
                update_license_state(ctx, &license)?;
                ctx.append(NewEvent::about(&id, now, actor, event))?;
                Ok(license)
            })
            .await
    }

    async fn create_token(&self, new: NewApiToken, actor: Actor) -> Result<ApiToken, StorageError> {
        self.writer
            .write(move |ctx| {
                insert_token(ctx, &new)?;
                let at = new.created_at;
                let (token, event) = new.created();
                ctx.append(NewEvent::general(at, actor, event))?;
                Ok(token)
            })
            .await
    }

    async fn create_first_token(
        &self,
        new: NewApiToken,
        actor: Actor,
    ) -> Result<Option<ApiToken>, StorageError> {
        // One writer: the check and the insert cannot interleave with another write.
        self.writer
            .write(move |ctx| {
                let any: bool = ctx
                    .conn
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM api_tokens)")?
                    .query_row([], |r| r.get(0))?;
                if any {
                    return Ok(None);
                }
                insert_token(ctx, &new)?;
                let at = new.created_at;
                let (token, event) = new.created();
                ctx.append(NewEvent::general(at, actor, event))?;
                Ok(Some(token))
            })
            .await
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
            ))?;
            let rows = stmt.query_map([], token_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_token(
        &self,
        id: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<ApiToken, StorageError> {
        self.writer
            .write(move |ctx| {
                let token = ctx
                    .conn
                    .prepare_cached(&format!(
                        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1 OR prefix = ?1"
                    ))?
                    .query_map([&id], token_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut token = the_named_token(token)?;
                if let Some(event) = token.revoke(now) {
                    ctx.conn
                        .prepare_cached("UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1")?
                        .execute(params![token.id, now.timestamp()])?;
                    ctx.append(NewEvent::general(now, actor, event))?;
                }
                Ok(token)
            })
            .await
    }

    async fn token_by_hash(&self, hash: [u8; 32]) -> Result<Option<ApiToken>, StorageError> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS}, secret_hash FROM api_tokens WHERE secret_hash = ?1"
            ))?
            .query_row([&hash[..]], |r| {
                let stored: Vec<u8> = r.get(6)?;
                Ok((token_from_row(r)?, stored))
            })
            .optional()?
            .filter(|(_, stored)| crate::domain::token::hashes_equal(stored, &hash))
            .map(|(t, _)| t))
        })
        .await
    }

    async fn known_keys(&self) -> Result<Vec<KnownKey>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT kid, public_key FROM signing_keys ORDER BY first_seen, kid",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(KnownKey {
                    kid: r.get(0)?,
                    public_key: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn download_secret(
        &self,
        candidate: [u8; 32],
        now: Timestamp,
    ) -> Result<[u8; 32], StorageError> {
        self.writer
            .write(move |ctx| {
                ctx.conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO server_secrets (name, secret, created_at)
                         VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![
                        DOWNLOAD_SECRET,
                        candidate.as_slice(),
                        now.timestamp()
                    ])?;
                let stored: Vec<u8> = ctx
                    .conn
                    .prepare_cached("SELECT secret FROM server_secrets WHERE name = ?1")?
                    .query_row(params![DOWNLOAD_SECRET], |r| r.get(0))?;
                <[u8; 32]>::try_from(stored.as_slice())
                    .map_err(|_| corrupt("server_secrets.secret").into())
            })
            .await
    }

    async fn record_download(
        &self,
        license_id: String,
        file: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| {
                ctx.append(NewEvent::about(
                    &license_id,
                    now,
                    Actor::LicenseKey,
                    AuditEvent::FileDownloaded { file },
                ))?;
                Ok(())
            })
            .await
    }

    async fn register_keys(
        &self,
        keys: Vec<KnownKey>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.writer
            .write(move |ctx| {
                for k in keys {
                    let inserted = ctx
                        .conn
                        .prepare_cached(
                            "INSERT OR IGNORE INTO signing_keys (kid, public_key, first_seen)
                             VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![k.kid, k.public_key, now.timestamp()])?;
                    if inserted == 1 {
                        ctx.append(NewEvent::general(now, actor.clone(), k.registered_event()))?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn history(&self, license_id: &str, page: EventPage) -> Result<Vec<Event>, StorageError> {
        let id = license_id.to_owned();
        self.read(move |c| license_events(c, &id, &page)).await
    }

    async fn verify_audit(&self) -> Result<Result<i64, ChainError>, StorageError> {
        self.read(verify_audit_on).await
    }

    async fn audit_head(&self) -> Result<Result<ChainHead, ChainError>, StorageError> {
        self.read(chain_head_on).await
    }

    async fn apply_payment(
        &self,
        req: crate::storage::payments::PaymentRequest,
    ) -> Result<crate::storage::payments::PaymentResult, StorageError> {
        let texts = payments::mint_texts(&req)?;
        self.writer
            .write(move |ctx| payments::apply(ctx, &req, texts))
            .await
    }

    async fn payment_events(
        &self,
        filter: crate::storage::payments::PaymentFilter,
    ) -> Result<Vec<crate::domain::payments::PaymentEvent>, StorageError> {
        self.read(move |c| payments::events(c, &filter)).await
    }

    async fn payment_event(
        &self,
        id: &str,
    ) -> Result<Option<crate::domain::payments::PaymentEvent>, StorageError> {
        let id = id.to_owned();
        self.read(move |c| payments::event(c, &id)).await
    }

    async fn due_reminders(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::storage::reminders::DueReminder>, StorageError> {
        self.read(move |c| reminders::due(c, now, limit)).await
    }

    async fn settle_reminders(
        &self,
        settled: Vec<crate::storage::reminders::SettledReminder>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        if settled.is_empty() {
            return Ok(());
        }
        self.writer
            .write(move |ctx| reminders::settle(ctx, &settled, now))
            .await
    }

    fn staff_store(&self) -> &dyn crate::storage::staff::StaffStore {
        self
    }

    fn customer_store(&self) -> &dyn crate::storage::customer::CustomerStore {
        self
    }

    /// None: one keyclerk process owns a SQLite file (more instances mean
    /// PostgreSQL), so its in-memory counters already see every failed look-up. A
    /// shared table here would count nothing more, and would put a synchronous
    /// write (an fsync) on every guess an attacker sends.
    fn shared_limits(&self) -> Option<Arc<dyn crate::storage::shared_limits::SharedLimits>> {
        None
    }
}

/// A fresh in-memory schema, for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn migrate_for_tests(conn: &mut Connection) {
    migrations::migrate(conn).unwrap_or_else(|e| panic!("migrating: {e}"));
}

/// The plan SQLite picks for `sql`, one line per step, for tests elsewhere in the
/// crate.
#[cfg(test)]
pub(crate) fn plan_for_tests(conn: &Connection, sql: &str) -> String {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    // The parameters stay unbound: the plan does not depend on them.
    let mut rows = stmt.raw_query();
    let mut steps = Vec::new();
    while let Some(row) = rows.next().unwrap_or_else(|e| panic!("{sql}: {e}")) {
        steps.push(row.get::<_, String>(3).unwrap_or_default());
    }
    steps.join("\n")
}

/// Checks the audit chain of the database `c` is connected to.
pub(super) fn verify_audit_on(c: &Connection) -> Result<Result<i64, ChainError>, StorageError> {
    Ok(chain_head_on(c)?.map(|h| h.length))
}

/// Checks the audit chain of the database `c` is connected to; its head if intact.
fn chain_head_on(c: &Connection) -> Result<Result<ChainHead, ChainError>, StorageError> {
    let head_seq: i64 = c.query_row("SELECT seq FROM audit_head WHERE id = 1", [], |r| r.get(0))?;
    let mut stmt =
        c.prepare("SELECT seq, at, actor, kind, license_id, data, hash FROM events ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        let hash: Vec<u8> = r.get(6)?;
        let mut h = [0u8; 32];
        if hash.len() == 32 {
            h.copy_from_slice(&hash);
        }
        Ok((
            EventRecord {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                kind: r.get(3)?,
                license_id: r.get(4)?,
                data: r.get(5)?,
            },
            h,
        ))
    })?;
    let records = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(verify_chain_head(records, head_seq))
}

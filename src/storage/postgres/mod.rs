//! The PostgreSQL engine: several keyclerk instances on one database.
//!
//! Driver: `tokio-postgres` (the Rust PostgreSQL project's async driver: libpq URLs
//! with several hosts and `target_session_attrs`, no C library) with the
//! `deadpool-postgres` pool. Both run on a runtime of the engine's own, on one
//! thread: a connection is driven by the runtime that opened it, and keyclerk's
//! callers (actix workers, the last-seen thread, the CLI) each have another.
//!
//! Every write is one transaction that first locks the head of the audit chain
//! (`SELECT … FROM audit_head … FOR UPDATE`): the chain is appended in commit order
//! whichever instance writes, and writes are serialized across instances. A
//! transaction that counts seats or decides also locks its license row, so the
//! count stays right should the head lock ever be taken later in a transaction.
//! Order ids, idempotency keys and live activations are unique constraints too.
//! (CockroachDB and YugabyteDB take `FOR UPDATE` locks too, but run serializable:
//! there a retry on `40001` would be needed.)

mod activations;
mod connect;
mod copy;
mod grace;
mod limits;
mod migrations;
mod password;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::domain::audit::{
    verify_chain, Actor, ChainError, ClaimStatus, Event, EventRecord, NewEvent, PresentedBy,
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
    Claim, ClaimOutcome, CreditEntry, DecisionOutcome, GraceRequest, NewClaim, Redemption,
};
use crate::storage::last_seen::SeenTimes;
use crate::storage::rows::{batch_item, past_events, price_columns, price_from, repeats_from};
use crate::storage::{
    EventPage, IssuedKey, KnownKey, LicenseLookup, LicensePage, MintOutcome, Storage, StorageError,
    StoredKey,
};

pub use copy::{copy_from_sqlite, CopyError, CopyReport, Progress};
pub use migrations::{MigrationError, CURRENT_VERSION};

/// Connections in the pool of one instance.
const POOL_SIZE: usize = 16;
/// How long a request waits for an idle connection before it is answered as
/// unavailable.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one host of the URL may take to give a connection (TCP, start-up,
/// login, the read-write check) before the next host is tried, unless the URL's
/// `connect_timeout` says otherwise: a server on the network answers in
/// milliseconds, and a primary that is gone must not hold up the standby behind it.
const HOST_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest one operation may take, connection included: past it the caller
/// hears "unavailable" rather than hang on a server that stopped answering (a
/// write cut off here is rolled back, or committed and found again on a retry:
/// every write is idempotent or refused twice the same way).
const OPERATION_DEADLINE: Duration = Duration::from_secs(10);

/// Why the database could not be opened. No message holds the URL's password.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is not a libpq connection URL.
    #[error("database.url cannot be parsed: {0}")]
    Url(String),
    /// The server could not be reached or refused the login.
    #[error("database.url: cannot connect: {0}")]
    Connect(String),
    /// The schema could not be brought up to date.
    #[error("database.url: {0}")]
    Migration(String),
    /// The engine's runtime could not start.
    #[error("could not start the PostgreSQL runtime: {0}")]
    Thread(std::io::Error),
}

/// A connection lost or refused (retry later), or anything else (a bug or a
/// corrupt database, for the log).
fn db_error(e: tokio_postgres::Error) -> StorageError {
    if is_unavailable(&e) {
        log::warn!("PostgreSQL is unavailable: {e}");
        StorageError::Unavailable("the database is unavailable")
    } else {
        StorageError::Database(Box::new(e))
    }
}

fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        // 08: connection exception; 57P01-03: the server shuts down or starts;
        // 25006: a read-only transaction (a standby not promoted yet); 40001/40P01:
        // serialization failure and deadlock, which a retry resolves.
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08")
                || matches!(
                    code,
                    "57P01" | "57P02" | "57P03" | "25006" | "40001" | "40P01"
                )
        }
        None => {
            e.is_closed()
                || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
                || e.to_string().starts_with("timeout")
        }
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(e: tokio_postgres::Error) -> Self {
        db_error(e)
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StorageError {
    log::warn!("no PostgreSQL connection: {e}");
    StorageError::Unavailable("the database is unavailable")
}

/// Replaces the password of a `postgres://user:password@host` URL in `message`.
fn without_password(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "***"),
        None => message.to_owned(),
    }
}

/// The cause of an error with its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// What `keyclerk backup` says on PostgreSQL: the database's own tools make the
/// backup, with the exact commands (the URL's password left out: libpq takes it
/// from `PGPASSWORD` or `~/.pgpass`).
pub fn backup_advice(url: &str, dest: &std::path::Path) -> String {
    let shown = without_password(url, url).replace(":***@", "@");
    let dest = dest.display();
    format!(
        "keyclerk backup copies the SQLite file; on PostgreSQL back up with pg_dump:\n  \
         pg_dump --format=custom --file='{dest}' '{shown}'\n\
         and restore into an empty database with:\n  \
         pg_restore --dbname='{shown}' --no-owner '{dest}'\n\
         (the password comes from PGPASSWORD or ~/.pgpass; keyclerk audit verify checks the \
         restored chain)"
    )
}

/// keyclerk's PostgreSQL storage.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    runtime: tokio::runtime::Handle,
    _background: Arc<Background>,
}

/// Ends the engine's runtime (and its connections) when the last copy of the store
/// is dropped.
struct Background {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl PostgresStore {
    /// Connects to the database of a `postgres://` URL and migrates it.
    pub fn open(url: &str) -> Result<Self, OpenError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| {
                OpenError::Url(without_password(&chain(&e), url))
            })?;
        password::fill_in(&mut config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(HOST_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("keyclerk");
        }
        let per_host = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(HOST_TIMEOUT);
        let connect = connect::HostByHost::new(&config, per_host);
        let create_timeout = connect.create_timeout();
        // Fast recycling: a connection whose server closed it is dropped; one that
        // went silent is dropped by its lease when its operation is cut off.
        let manager = Manager::from_connect(
            config,
            connect,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(create_timeout))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| OpenError::Connect(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(OpenError::Thread)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("keyclerk-postgres".into())
            .spawn(move || {
                // Ends when the sender is dropped (or sends).
                let _ = runtime.block_on(stopped);
            })
            .map_err(OpenError::Thread)?;
        let (done, migrated) = std::sync::mpsc::channel();
        let migrate_pool = pool.clone();
        let url_for_messages = url.to_owned();
        handle.spawn(async move {
            let result = async {
                let mut client = migrate_pool.get().await.map_err(|e| {
                    let cause = match &e {
                        deadpool_postgres::PoolError::Backend(e) => chain(e),
                        other => chain(other),
                    };
                    OpenError::Connect(without_password(&cause, &url_for_messages))
                })?;
                migrations::migrate(&mut client).await.map_err(|e| {
                    OpenError::Migration(without_password(&chain(&e), &url_for_messages))
                })
            }
            .await;
            let _ = done.send(result);
        });
        migrated
            .recv()
            .map_err(|_| OpenError::Connect("the PostgreSQL runtime stopped".into()))??;
        Ok(Self {
            pool,
            runtime: handle,
            _background: Arc::new(Background { _stop: stop }),
        })
    }

    /// Runs `f` on the engine's runtime with the pool.
    async fn run<R, F, Fut>(&self, f: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<R, StorageError>> + Send + 'static,
    {
        let operation = f(self.pool.clone());
        self.runtime
            .spawn(async move {
                tokio::time::timeout(OPERATION_DEADLINE, operation)
                    .await
                    .unwrap_or_else(|_| {
                        log::warn!(
                            "a PostgreSQL operation took longer than {OPERATION_DEADLINE:?}"
                        );
                        Err(StorageError::Unavailable(
                            "the database did not answer in time",
                        ))
                    })
            })
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(p) => StorageError::Panicked(
                    p.downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".to_owned()),
                ),
                Err(_) => StorageError::Unavailable("the PostgreSQL runtime stopped"),
            })?
    }
}

/// Runs `$body` (which may `.await` and `?`) in one write transaction `$w` on the
/// engine's runtime; committed if it returns, rolled back if it fails.
macro_rules! write_tx {
    ($self:ident, |$w:ident| $body:expr) => {
        $self.run(move |pool| async move {
            let mut client = connect::Lease::get(&pool).await?;
            let done: Result<_, StorageError> = async {
                let mut $w = Write::begin(&mut client).await?;
                let out = $body;
                $w.commit().await?;
                Ok(out)
            }
            .await;
            client.release();
            done
        })
    };
}

/// Runs `$body` with a pooled connection `$c` on the engine's runtime.
macro_rules! read {
    ($self:ident, |$c:ident| $body:expr) => {
        $self.run(move |pool| async move {
            let client = connect::Lease::get(&pool).await?;
            let done: Result<_, StorageError> = async {
                let $c: &deadpool_postgres::Object = &client;
                Ok($body)
            }
            .await;
            client.release();
            done
        })
    };
}

mod staff;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Rows of a statement (prepared once per connection).
pub(super) async fn rows<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, StorageError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, params).await?)
}

/// The row of a statement, if any.
pub(super) async fn opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StorageError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&stmt, params).await?)
}

/// The one row of a statement.
pub(super) async fn one<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Row, StorageError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_one(&stmt, params).await?)
}

/// Runs a statement; the rows it changed.
pub(super) async fn exec<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, StorageError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.execute(&stmt, params).await?)
}

/// A write transaction holding the head of the audit chain.
pub(super) struct Write<'a> {
    /// The transaction.
    pub tx: deadpool_postgres::Transaction<'a>,
    head_seq: i64,
    head_hash: [u8; 32],
}

impl<'a> Write<'a> {
    async fn begin(client: &'a mut deadpool_postgres::Object) -> Result<Self, StorageError> {
        let tx = client.transaction().await?;
        let head = one(
            &tx,
            "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?;
        let hash: Vec<u8> = head.try_get(1)?;
        // A head that is not a hash would start the chain from nothing: refuse it.
        let head_hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| StorageError::Corrupt("audit_head.hash".into()))?;
        Ok(Self {
            head_seq: head.try_get(0)?,
            head_hash,
            tx,
        })
    }

    async fn commit(self) -> Result<(), StorageError> {
        Ok(self.tx.commit().await?)
    }

    /// Appends an event to the hash-chained log; a repeat of a refusal or refresh
    /// already chained in its window is counted beside that event instead (see
    /// [`crate::domain::audit::AuditEvent::repeat_window`]). The seq of the chained
    /// event.
    pub async fn append(&mut self, event: NewEvent) -> Result<i64, StorageError> {
        let window = match (&event.license_id, event.event.repeat_window(event.at)) {
            (Some(license), Some(window)) => {
                let counted = opt(
                    &self.tx,
                    "UPDATE event_repeats SET count = count + 1, last_at = GREATEST(last_at, $3)
                     WHERE license_id = $1 AND repeat_window = $2 RETURNING seq",
                    &[license, &window, &event.at.timestamp()],
                )
                .await?;
                if let Some(row) = counted {
                    return Ok(row.try_get(0)?);
                }
                Some((license.clone(), window))
            }
            _ => None,
        };
        let record = event.record(self.head_seq + 1);
        let hash = record.chain_hash(&self.head_hash);
        exec(
            &self.tx,
            "INSERT INTO events (seq, at, actor, kind, license_id, data, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &record.seq,
                &record.at,
                &record.actor,
                &record.kind,
                &record.license_id,
                &record.data,
                &hash.as_slice(),
            ],
        )
        .await?;
        exec(
            &self.tx,
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
            &[&record.seq, &hash.as_slice()],
        )
        .await?;
        if let Some((license, window)) = window {
            exec(
                &self.tx,
                "INSERT INTO event_repeats (seq, license_id, repeat_window, count, last_at)
                 VALUES ($1, $2, $3, 1, $4)",
                &[&record.seq, &license, &window, &record.at],
            )
            .await?;
        }
        self.head_seq = record.seq;
        self.head_hash = hash;
        Ok(record.seq)
    }
}

/// The advisory lock key of [`Storage::create_first_token`] ("kc first" in ASCII).
const FIRST_TOKEN_LOCK: i64 = 0x6b63_2066_6972_7374;

async fn insert_token(w: &Write<'_>, new: &NewApiToken) -> Result<(), StorageError> {
    exec(
        &w.tx,
        "INSERT INTO api_tokens (id, role, name, secret_hash, prefix, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &new.id,
            &new.role.as_str(),
            &new.name,
            &new.secret_hash.as_slice(),
            &new.prefix,
            &new.created_at.timestamp(),
        ],
    )
    .await?;
    Ok(())
}

pub(super) const LICENSE_COLUMNS: &str =
    "licenses.id, product, order_id, customer_email, purchased_at, activate_by, \
     expires_at, duration_days, duration_from, extra_days, seats, entitlements, metadata, status, \
     key_format, created_at, updated_at, price_amount, price_currency, supersedes, superseded_by, \
     due_amount, due_currency";

/// Columns in [`LICENSE_COLUMNS`] (a test keeps the two in step).
pub(super) const LICENSE_COLUMN_COUNT: usize = 23;

pub(super) fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(what.to_owned())
}

fn unsigned(v: i64, what: &str) -> Result<u32, StorageError> {
    u32::try_from(v).map_err(|_| corrupt(what))
}

pub(super) fn license_from_row(r: &Row) -> Result<License, StorageError> {
    let entitlements: String = r.try_get(11)?;
    let metadata: Option<String> = r.try_get(12)?;
    let status: String = r.try_get(13)?;
    let duration_from: String = r.try_get(8)?;
    let key_format: String = r.try_get(14)?;
    Ok(License {
        id: r.try_get(0)?,
        product: r.try_get(1)?,
        order_id: r.try_get(2)?,
        customer_email: r.try_get(3)?,
        purchased_at: time::from_unix(r.try_get(4)?),
        activate_by: r.try_get::<_, Option<i64>>(5)?.map(time::from_unix),
        expires_at: r.try_get::<_, Option<i64>>(6)?.map(time::from_unix),
        duration_days: r
            .try_get::<_, Option<i64>>(7)?
            .map(|d| unsigned(d, "duration_days"))
            .transpose()?,
        duration_from: DurationFrom::parse(&duration_from)
            .ok_or_else(|| corrupt("duration_from"))?,
        extra_days: unsigned(r.try_get(9)?, "extra_days")?,
        seats: unsigned(r.try_get(10)?, "seats")?,
        entitlements: serde_json::from_str(&entitlements).map_err(|_| corrupt("entitlements"))?,
        metadata: metadata
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(|_| corrupt("metadata"))?,
        status: LicenseStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        key_format: KeyFormat::parse(&key_format).ok_or_else(|| corrupt("key_format"))?,
        created_at: time::from_unix(r.try_get(15)?),
        updated_at: time::from_unix(r.try_get(16)?),
        price: price_from(r.try_get(17)?, r.try_get(18)?),
        supersedes: r.try_get(19)?,
        superseded_by: r.try_get(20)?,
        amount_due: price_from(r.try_get(21)?, r.try_get(22)?),
    })
}

fn token_from_row(r: &Row) -> Result<ApiToken, StorageError> {
    let role: String = r.try_get(1)?;
    Ok(ApiToken {
        id: r.try_get(0)?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role"))?,
        name: r.try_get(2)?,
        prefix: r.try_get(3)?,
        created_at: time::from_unix(r.try_get(4)?),
        revoked_at: r.try_get::<_, Option<i64>>(5)?.map(time::from_unix),
    })
}

const TOKEN_COLUMNS: &str = "id, role, name, prefix, created_at, revoked_at";

/// A license, read without a lock.
pub(super) async fn load_license<C: GenericClient>(
    c: &C,
    id: &str,
) -> Result<Option<License>, StorageError> {
    opt(
        c,
        &format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(license_from_row)
    .transpose()
}

/// A license, its row locked until the transaction ends; a refusal if there is none.
pub(super) async fn require_license(w: &Write<'_>, id: &str) -> Result<License, StorageError> {
    opt(
        &w.tx,
        &format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = $1 FOR UPDATE"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(license_from_row)
    .transpose()?
    .ok_or(StorageError::Domain(DomainError::LicenseNotFound))
}

async fn latest_key<C: GenericClient>(c: &C, license_id: &str) -> Result<StoredKey, StorageError> {
    let row = opt(
        c,
        "SELECT kid, payload FROM license_keys WHERE license_id = $1
         ORDER BY issued_at DESC, n DESC LIMIT 1",
        &[&license_id],
    )
    .await?
    .ok_or_else(|| StorageError::Corrupt(format!("license {license_id} has no key")))?;
    Ok(StoredKey {
        kid: row.try_get(0)?,
        payload: row.try_get(1)?,
    })
}

/// Mints one license. A domain error (an order conflict) is returned before anything
/// is written; callers rely on that.
pub(super) async fn mint_one(
    w: &mut Write<'_>,
    new: &NewLicense,
    key: &IssuedKey,
    actor: &Actor,
) -> Result<MintOutcome, StorageError> {
    let l = &new.license;
    let existing = opt(
        &w.tx,
        "SELECT id, request_hash FROM licenses WHERE order_id = $1",
        &[&l.order_id],
    )
    .await?;
    let existing: Option<(String, Vec<u8>)> = match existing {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
        None => None,
    };
    if let MintDecision::Existing = new.decide(existing.as_ref().map(|(_, h)| h.as_slice()))? {
        let id = existing
            .map(|(id, _)| id)
            .ok_or_else(|| StorageError::Corrupt("an existing order without a row".into()))?;
        let license = load_license(&w.tx, &id)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("license {id} vanished")))?;
        let stored = latest_key(&w.tx, &id).await?;
        return Ok(MintOutcome::Existing(license, stored));
    }
    let entitlements = serde_json::to_string(&l.entitlements)
        .map_err(|e| StorageError::Corrupt(format!("entitlements: {e}")))?;
    let metadata = l
        .metadata
        .as_ref()
        .map(|m| serde_json::Value::Object(m.clone()).to_string());
    let (price_amount, price_currency) = price_columns(l.price.as_ref());
    let (due_amount, due_currency) = price_columns(l.amount_due.as_ref());
    exec(
        &w.tx,
        "INSERT INTO licenses (id, product, order_id, customer_email, purchased_at, activate_by,
             expires_at, duration_days, duration_from, extra_days, seats, entitlements, metadata,
             status, key_format, created_at, updated_at, price_amount, price_currency, supersedes,
             superseded_by, due_amount, due_currency, request_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22, $23, $24)",
        &[
            &l.id,
            &l.product,
            &l.order_id,
            &l.customer_email,
            &l.purchased_at.timestamp(),
            &l.activate_by.map(|t| t.timestamp()),
            &l.expires_at.map(|t| t.timestamp()),
            &l.duration_days.map(i64::from),
            &l.duration_from.as_str(),
            &i64::from(l.extra_days),
            &i64::from(l.seats),
            &entitlements,
            &metadata,
            &l.status.as_str(),
            &l.key_format.as_str(),
            &l.created_at.timestamp(),
            &l.updated_at.timestamp(),
            &price_amount,
            &price_currency,
            &l.supersedes,
            &l.superseded_by,
            &due_amount,
            &due_currency,
            &new.request_hash.as_slice(),
        ],
    )
    .await?;
    store_key(w, &l.id, key, l.created_at).await?;
    w.append(NewEvent::about(
        &l.id,
        l.created_at,
        actor.clone(),
        new.minted_event(&key.stored.kid),
    ))
    .await?;
    Ok(MintOutcome::Created(l.clone()))
}

/// Stores a key of a license. A key stored before is left as it is: a short key is
/// derived from the license id, so re-issuing one gives the same key again.
pub(super) async fn store_key(
    w: &Write<'_>,
    license_id: &str,
    key: &IssuedKey,
    at: Timestamp,
) -> Result<(), StorageError> {
    exec(
        &w.tx,
        "INSERT INTO license_keys (key_hash, license_id, kid, payload, issued_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_hash) DO NOTHING",
        &[
            &key.key_hash.as_slice(),
            &license_id,
            &key.stored.kid,
            &key.stored.payload,
            &at.timestamp(),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn update_license_state(w: &Write<'_>, l: &License) -> Result<(), StorageError> {
    let (due_amount, due_currency) = price_columns(l.amount_due.as_ref());
    exec(
        &w.tx,
        "UPDATE licenses SET status = $2, expires_at = $3, extra_days = $4, updated_at = $5,
            activate_by = $6, superseded_by = $7, due_amount = $8, due_currency = $9
         WHERE id = $1",
        &[
            &l.id,
            &l.status.as_str(),
            &l.expires_at.map(|t| t.timestamp()),
            &i64::from(l.extra_days),
            &l.updated_at.timestamp(),
            &l.activate_by.map(|t| t.timestamp()),
            &l.superseded_by,
            &due_amount,
            &due_currency,
        ],
    )
    .await?;
    Ok(())
}

/// Columns of an event with its repeats, for [`event_from_row`].
const EVENT_COLUMNS: &str = "events.seq, events.at, events.actor, events.kind, \
     events.license_id, events.data, event_repeats.count, event_repeats.last_at";

fn event_from_row(r: &Row) -> Result<Event, StorageError> {
    let json = |i: usize, what: &str| -> Result<serde_json::Value, StorageError> {
        let text: String = r.try_get(i)?;
        serde_json::from_str(&text).map_err(|_| corrupt(what))
    };
    Ok(Event {
        seq: r.try_get(0)?,
        at: time::from_unix(r.try_get(1)?),
        actor: json(2, "event actor")?,
        kind: r.try_get(3)?,
        license_id: r.try_get(4)?,
        data: json(5, "event data")?,
        repeats: repeats_from(r.try_get(6)?, r.try_get(7)?)?,
    })
}

/// A page of one license's events, oldest first, after the event `page.after`.
async fn license_events<C: GenericClient>(
    c: &C,
    license_id: &str,
    page: &EventPage,
) -> Result<Vec<Event>, StorageError> {
    rows(
        c,
        &format!(
            "SELECT {EVENT_COLUMNS} FROM events
             LEFT JOIN event_repeats ON event_repeats.seq = events.seq
             WHERE events.license_id = $1 AND events.seq > $2
             ORDER BY events.seq LIMIT $3"
        ),
        &[
            &license_id,
            &page.after.unwrap_or(0),
            &i64::from(page.limit),
        ],
    )
    .await?
    .iter()
    .map(event_from_row)
    .collect()
}

/// The events the evidence of a late claim reads (see [`EvidenceEvents`]), oldest
/// first: by kind, through an index, never the license's whole history.
pub(super) async fn evidence_events<C: GenericClient>(
    c: &C,
    license_id: &str,
) -> Result<Vec<PastEvent>, StorageError> {
    let mut events = Vec::new();
    let first = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         LEFT JOIN event_repeats ON event_repeats.seq = events.seq
         WHERE events.license_id = $1 AND events.kind = $2 ORDER BY events.seq LIMIT 1"
    );
    for kind in EvidenceEvents::FIRST_OF {
        if let Some(r) = opt(c, &first, &[&license_id, &kind]).await? {
            events.push(event_from_row(&r)?);
        }
    }
    let all = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         LEFT JOIN event_repeats ON event_repeats.seq = events.seq
         WHERE events.license_id = $1 AND events.kind = $2 ORDER BY events.seq"
    );
    for kind in EvidenceEvents::ALL_OF {
        for r in rows(c, &all, &[&license_id, &kind]).await? {
            events.push(event_from_row(&r)?);
        }
    }
    past_events(events)
}

/// Checks the audit chain of the database `c` is connected to.
async fn verify_audit_on<C: GenericClient>(c: &C) -> Result<Result<i64, ChainError>, StorageError> {
    let head_seq: i64 = one(c, "SELECT seq FROM audit_head WHERE id = 1", &[])
        .await?
        .try_get(0)?;
    let records = rows(
        c,
        "SELECT seq, at, actor, kind, license_id, data, hash FROM events ORDER BY seq",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        let hash: Vec<u8> = r.try_get(6)?;
        let mut h = [0u8; 32];
        if hash.len() == 32 {
            h.copy_from_slice(&hash);
        }
        Ok((
            EventRecord {
                seq: r.try_get(0)?,
                at: r.try_get(1)?,
                actor: r.try_get(2)?,
                kind: r.try_get(3)?,
                license_id: r.try_get(4)?,
                data: r.try_get(5)?,
            },
            h,
        ))
    })
    .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(verify_chain(records, head_seq))
}

#[async_trait]
impl Storage for PostgresStore {
    async fn ready(&self) -> Result<(), StorageError> {
        read!(self, |c| one(c, "SELECT 1", &[]).await.map(|_| ())?).await
    }

    fn stats(&self) -> crate::storage::StorageStats {
        let s = self.pool.status();
        crate::storage::StorageStats {
            engine: "postgres",
            pools: vec![crate::storage::PoolStats {
                name: "postgres",
                max: s.max_size,
                open: s.size,
                idle: s.available,
                waiting: s.waiting,
            }],
            ..Default::default()
        }
    }

    async fn mint(
        &self,
        new: NewLicense,
        key: IssuedKey,
        actor: Actor,
    ) -> Result<MintOutcome, StorageError> {
        write_tx!(self, |w| mint_one(&mut w, &new, &key, &actor).await?).await
    }

    async fn mint_batch(
        &self,
        items: Vec<(NewLicense, IssuedKey)>,
        actor: Actor,
    ) -> Result<Vec<Result<MintOutcome, StorageError>>, StorageError> {
        write_tx!(self, |w| {
            let mut out = Vec::with_capacity(items.len());
            for (new, key) in &items {
                out.push(batch_item(mint_one(&mut w, new, key, &actor).await)?);
            }
            out
        })
        .await
    }

    async fn license(&self, id: &str) -> Result<Option<(License, StoredKey)>, StorageError> {
        let id = id.to_owned();
        read!(self, |c| match load_license(c, &id).await? {
            Some(l) => Some((l, latest_key(c, &id).await?)),
            None => None,
        })
        .await
    }

    async fn find_licenses(&self, lookup: LicenseLookup) -> Result<Vec<License>, StorageError> {
        read!(self, |c| {
            let found = match lookup {
                LicenseLookup::OrderId(o) => {
                    rows(
                        c,
                        &format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE order_id = $1"),
                        &[&o],
                    )
                    .await?
                }
                LicenseLookup::Email(e) => {
                    rows(
                        c,
                        &format!(
                            "SELECT {LICENSE_COLUMNS} FROM licenses WHERE customer_email = $1
                             ORDER BY id LIMIT {MAX_EMAIL_MATCHES}"
                        ),
                        &[&e],
                    )
                    .await?
                }
                LicenseLookup::KeyHash(h) => {
                    rows(
                        c,
                        &format!(
                            "SELECT {LICENSE_COLUMNS} FROM licenses WHERE id =
                             (SELECT license_id FROM license_keys WHERE key_hash = $1)"
                        ),
                        &[&h.as_slice()],
                    )
                    .await?
                }
            };
            found
                .iter()
                .map(license_from_row)
                .collect::<Result<Vec<_>, _>>()?
        })
        .await
    }

    async fn list_licenses(&self, page: LicensePage) -> Result<Vec<License>, StorageError> {
        read!(self, |c| {
            rows(
                c,
                &format!(
                    "SELECT {LICENSE_COLUMNS} FROM licenses
                     WHERE ($1::TEXT IS NULL OR status = $1) AND ($2::TEXT IS NULL OR product = $2)
                       AND ($3::TEXT IS NULL OR id > $3)
                     ORDER BY id LIMIT $4"
                ),
                &[
                    &page.status.map(|s| s.as_str()),
                    &page.product,
                    &page.after,
                    &i64::from(page.limit),
                ],
            )
            .await?
            .iter()
            .map(license_from_row)
            .collect::<Result<Vec<_>, _>>()?
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
        write_tx!(self, |w| {
            let mut license = require_license(&w, &id).await?;
            let event = license.transition(action, reason, now)?;
            update_license_state(&w, &license).await?;
            w.append(NewEvent::about(&id, now, actor, event)).await?;
            license
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
        write_tx!(self, |w| {
            let mut license = require_license(&w, &id).await?;
            let event = license.apply_renewal(days, now)?;
            update_license_state(&w, &license).await?;
            w.append(NewEvent::about(&id, now, actor, event)).await?;
            license
        })
        .await
    }

    async fn activate(
        &self,
        req: NewActivation,
        now: Timestamp,
    ) -> Result<ActivationOutcome, StorageError> {
        write_tx!(self, |w| activations::activate_one(&mut w, &req, now)
            .await?)
        .await
    }

    async fn deactivate(
        &self,
        req: Deactivation,
        now: Timestamp,
    ) -> Result<DeactivationOutcome, StorageError> {
        write_tx!(self, |w| activations::deactivate_one(&mut w, &req, now)
            .await?)
        .await
    }

    async fn key_facts(
        &self,
        key_hash: [u8; 32],
        fingerprint: Option<String>,
    ) -> Result<Option<KeyFacts>, StorageError> {
        read!(self, |c| activations::key_facts(
            c,
            &key_hash,
            fingerprint.as_deref()
        )
        .await?)
        .await
    }

    async fn mark_presented(
        &self,
        license_id: String,
        by: PresentedBy,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        write_tx!(self, |w| {
            activations::mark_presented(&mut w, &license_id, false, by, now).await?
        })
        .await
    }

    async fn record_last_seen(&self, seen: SeenTimes) -> Result<(), StorageError> {
        write_tx!(self, |w| activations::record_last_seen(&mut w, &seen)
            .await?)
        .await
    }

    async fn activations(&self, license_id: &str) -> Result<Vec<Activation>, StorageError> {
        let id = license_id.to_owned();
        read!(self, |c| activations::list(c, &id).await?).await
    }

    async fn decide(
        &self,
        req: GraceRequest,
        now: Timestamp,
    ) -> Result<DecisionOutcome, StorageError> {
        write_tx!(self, |w| grace::decide(&mut w, &req, now).await?).await
    }

    async fn confirm_payment(
        &self,
        id: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<License, StorageError> {
        write_tx!(self, |w| grace::confirm_payment(&mut w, &id, &actor, now)
            .await?)
        .await
    }

    async fn credits(&self, email: &str) -> Result<Vec<CreditEntry>, StorageError> {
        let email = email.to_owned();
        read!(self, |c| grace::credits(c, &email).await?).await
    }

    async fn redeem(
        &self,
        r: Redemption,
        now: Timestamp,
    ) -> Result<(CreditEntry, bool), StorageError> {
        write_tx!(self, |w| grace::redeem(&mut w, &r, now).await?).await
    }

    async fn file_claim(&self, c: NewClaim, now: Timestamp) -> Result<ClaimOutcome, StorageError> {
        write_tx!(self, |w| grace::file_claim(&mut w, &c, now).await?).await
    }

    async fn claim(&self, id: &str) -> Result<Option<Claim>, StorageError> {
        let id = id.to_owned();
        read!(self, |c| grace::claim(c, &id).await?).await
    }

    async fn claims(&self, status: ClaimStatus) -> Result<Vec<Claim>, StorageError> {
        read!(self, |c| grace::claims(c, status).await?).await
    }

    async fn resolve_claim(
        &self,
        req: GraceRequest,
        now: Timestamp,
    ) -> Result<DecisionOutcome, StorageError> {
        write_tx!(self, |w| grace::resolve_claim(&mut w, &req, now).await?).await
    }

    async fn create_token(&self, new: NewApiToken, actor: Actor) -> Result<ApiToken, StorageError> {
        write_tx!(self, |w| {
            insert_token(&w, &new).await?;
            let at = new.created_at;
            let (token, event) = new.created();
            w.append(NewEvent::general(at, actor, event)).await?;
            token
        })
        .await
    }

    async fn create_first_token(
        &self,
        new: NewApiToken,
        actor: Actor,
    ) -> Result<Option<ApiToken>, StorageError> {
        write_tx!(self, |w| {
            // Instances starting on one new database at once: the first to take this
            // lock (held to the commit) stores its token; the others then see it.
            exec(
                &w.tx,
                "SELECT pg_advisory_xact_lock($1)",
                &[&FIRST_TOKEN_LOCK],
            )
            .await?;
            let any: bool = one(&w.tx, "SELECT EXISTS (SELECT 1 FROM api_tokens)", &[])
                .await?
                .try_get(0)?;
            if any {
                None
            } else {
                insert_token(&w, &new).await?;
                let at = new.created_at;
                let (token, event) = new.created();
                w.append(NewEvent::general(at, actor, event)).await?;
                Some(token)
            }
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, StorageError> {
        read!(self, |c| {
            rows(
                c,
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"),
                &[],
            )
            .await?
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>, _>>()?
        })
        .await
    }

    async fn revoke_token(
        &self,
        id: String,
        actor: Actor,
        now: Timestamp,
    ) -> Result<ApiToken, StorageError> {
        write_tx!(self, |w| {
            let found = rows(
                &w.tx,
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1 OR prefix = $1 FOR UPDATE"
                ),
                &[&id],
            )
            .await?
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>, _>>()?;
            let mut token = the_named_token(found)?;
            if let Some(event) = token.revoke(now) {
                exec(
                    &w.tx,
                    "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1",
                    &[&token.id, &now.timestamp()],
                )
                .await?;
                w.append(NewEvent::general(now, actor, event)).await?;
            }
            token
        })
        .await
    }

    async fn token_by_hash(&self, hash: [u8; 32]) -> Result<Option<ApiToken>, StorageError> {
        read!(self, |c| {
            match opt(
                c,
                &format!(
                    "SELECT {TOKEN_COLUMNS}, secret_hash FROM api_tokens WHERE secret_hash = $1"
                ),
                &[&hash.as_slice()],
            )
            .await?
            {
                Some(r) => {
                    let stored: Vec<u8> = r.try_get(6)?;
                    let token = token_from_row(&r)?;
                    crate::domain::token::hashes_equal(&stored, &hash).then_some(token)
                }
                None => None,
            }
        })
        .await
    }

    async fn known_keys(&self) -> Result<Vec<KnownKey>, StorageError> {
        read!(self, |c| {
            rows(
                c,
                "SELECT kid, public_key FROM signing_keys ORDER BY first_seen, kid",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(KnownKey {
                    kid: r.try_get(0)?,
                    public_key: r.try_get(1)?,
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?
        })
        .await
    }

    async fn register_keys(
        &self,
        keys: Vec<KnownKey>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        write_tx!(self, |w| {
            for k in keys {
                let inserted = exec(
                    &w.tx,
                    "INSERT INTO signing_keys (kid, public_key, first_seen) VALUES ($1, $2, $3)
                     ON CONFLICT (kid) DO NOTHING",
                    &[&k.kid, &k.public_key, &now.timestamp()],
                )
                .await?;
                if inserted == 1 {
                    w.append(NewEvent::general(now, actor.clone(), k.registered_event()))
                        .await?;
                }
            }
        })
        .await
    }

    async fn history(&self, license_id: &str, page: EventPage) -> Result<Vec<Event>, StorageError> {
        let id = license_id.to_owned();
        read!(self, |c| license_events(c, &id, &page).await?).await
    }

    async fn verify_audit(&self) -> Result<Result<i64, ChainError>, StorageError> {
        read!(self, |c| verify_audit_on(c).await?).await
    }

    fn staff_store(&self) -> &dyn crate::storage::staff::StaffStore {
        self
    }

    fn shared_limits(&self) -> Option<Arc<dyn crate::storage::shared_limits::SharedLimits>> {
        Some(Arc::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_count_is_the_count_of_license_columns() {
        assert_eq!(LICENSE_COLUMN_COUNT, LICENSE_COLUMNS.split(',').count());
    }

    #[test]
    fn a_password_never_reaches_a_message() {
        let url = "postgres://kc:s3cret@db1,db2/keyclerk";
        assert_eq!(
            without_password("login as kc:s3cret failed", url),
            "login as kc:*** failed"
        );
        assert_eq!(without_password("plain", "postgres://kc@db/k"), "plain");
    }

    #[test]
    fn the_backup_advice_names_pg_dump_without_the_password() {
        let advice = backup_advice(
            "postgres://kc:s3cret@db1,db2/keyclerk?target_session_attrs=read-write",
            std::path::Path::new("/b/kc.dump"),
        );
        assert!(
            advice.contains(
                "pg_dump --format=custom --file='/b/kc.dump' \
             'postgres://kc@db1,db2/keyclerk?target_session_attrs=read-write'"
            ),
            "{advice}"
        );
        assert!(!advice.contains("s3cret"), "{advice}");
    }

    #[test]
    fn a_url_with_several_hosts_asks_for_the_read_write_one() {
        let config: tokio_postgres::Config =
            "postgres://kc@db1:5432,db2:5433/keyclerk?target_session_attrs=read-write"
                .parse()
                .unwrap();
        assert_eq!(config.get_hosts().len(), 2);
        assert_eq!(config.get_ports(), [5432, 5433]);
        assert_eq!(
            config.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
    }

    #[test]
    fn an_unparsable_url_is_refused_without_its_password() {
        let err = PostgresStore::open("postgres://kc:s3cret@db:notaport/k")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("database.url cannot be parsed"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}

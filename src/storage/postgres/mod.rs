//! The PostgreSQL engine: several keyclerk instances on one database.
//!
//! Driver: `tokio-postgres` (the Rust PostgreSQL project's async driver: libpq URLs
//! with several hosts and `target_session_attrs`, no C library) with the
//! `deadpool-postgres` pool. Both run on a runtime of the engine's own, on one
//! thread: a connection is driven by the runtime that opened it, and keyclerk's
//! callers (actix workers, the last-seen thread, the CLI) each have another.
//!
//! Every write is one transaction. Its statements lock what its rules read first
//! (the license row `FOR UPDATE` before seats are counted or a decision is made, a
//! customer's credit entries before a balance is spent), so that they run beside
//! those of other transactions, across instances, one at a time only per license
//! or customer. Its audit events are kept until the commit, which then locks the
//! head of the chain (`audit_head`), appends them and commits in one round trip
//! ([`Write`]): the chain is appended in commit order whichever instance writes,
//! and the head is the last lock every write takes (no deadlock through it).
//! Order ids, idempotency keys, redeemed orders and live activations are unique
//! constraints too; a transaction that loses a race to one (or to a deadlock) runs
//! once more and finds the winner. (CockroachDB and YugabyteDB take `FOR UPDATE`
//! locks too, but run serializable: there `40001` is frequent, and retried the
//! same way.)

mod activations;
mod connect;
mod copy;
mod grace;
mod limits;
mod migrations;
mod password;
mod payments;
mod reminders;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, StatementCache};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use crate::domain::audit::{
    verify_chain_head, Actor, AuditEvent, ChainError, ChainHead, ClaimStatus, Event, EventRecord,
    NewEvent, PresentedBy,
};
use crate::domain::grace::{EvidenceEvents, PastEvent};
use crate::domain::license::{Action, License, LicenseStatus, NewLicense, MAX_EMAIL_MATCHES};
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
use crate::storage::rows::{batch_item, past_events, price_columns, price_from, repeats_from};
use crate::storage::DOWNLOAD_SECRET;
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
        // 25006: a read-only transaction (a standby not promoted yet). A deadlock or
        // a serialization failure is run again by `write_tx!`, and only then
        // answered as unavailable (`after_retry`).
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "25006")
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
    timing: Arc<WriteTiming>,
    _background: Arc<Background>,
}

/// How long this instance's write transactions take, for `/metrics`.
struct WriteTiming {
    /// `BEGIN` to the end of the commit, in microseconds.
    transaction_micros: crate::metrics::Histogram,
    /// The commit: the chain's head locked, the events appended, `COMMIT`, and the
    /// wait for the WAL's flush, in microseconds.
    commit_micros: crate::metrics::Histogram,
}

fn micros_since(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
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
            timing: Arc::new(WriteTiming {
                transaction_micros: crate::metrics::Histogram::latency(),
                commit_micros: crate::metrics::Histogram::latency(),
            }),
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
/// engine's runtime; committed if it returns, rolled back if it fails. A
/// transaction that loses a race to a unique constraint, a deadlock or a
/// serialization failure is rolled back and run once more (the second run sees the
/// winner's rows); a second failure of that kind answers "unavailable", never a
/// database error.
macro_rules! write_tx {
    ($self:ident, |$w:ident| $body:expr) => {{
        let timing = std::sync::Arc::clone(&$self.timing);
        $self.run(move |pool| async move {
            let mut client = crate::storage::postgres::connect::Lease::get(&pool).await?;
            let mut tries = 0;
            let done = loop {
                tries += 1;
                let done: Result<_, StorageError> = async {
                    let started = std::time::Instant::now();
                    let mut $w = crate::storage::postgres::Write::begin(&mut client).await?;
                    let out = $body;
                    let committing = std::time::Instant::now();
                    $w.commit().await?;
                    timing
                        .commit_micros
                        .observe(crate::storage::postgres::micros_since(committing));
                    timing
                        .transaction_micros
                        .observe(crate::storage::postgres::micros_since(started));
                    Ok(out)
                }
                .await;
                match done {
                    Err(e) if tries < 2 && crate::storage::postgres::lost_a_race(&e) => {
                        log::debug!("a PostgreSQL write lost a race and runs again: {e:?}");
                    }
                    other => break other.map_err(crate::storage::postgres::after_retry),
                }
            };
            client.release();
            done
        })
    }};
}

/// Runs `$body` with a pooled connection `$c` on the engine's runtime.
macro_rules! read {
    ($self:ident, |$c:ident| $body:expr) => {
        $self.run(move |pool| async move {
            let client = connect::Lease::get(&pool).await?;
            let done: Result<_, StorageError> = async {
                let $c: &deadpool_postgres::ClientWrapper = &client;
                Ok($body)
            }
            .await;
            client.release();
            done
        })
    };
}

/// The SQLSTATE of a database error, if it is one.
fn sql_state(e: &StorageError) -> Option<&SqlState> {
    match e {
        StorageError::Database(source) => source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code),
        _ => None,
    }
}

/// A transaction rolled back for a race another transaction won: a unique
/// violation (two inserts of one key: run again, the second finds the first), a
/// deadlock or a serialization failure.
fn lost_a_race(e: &StorageError) -> bool {
    sql_state(e).is_some_and(|code| {
        [
            SqlState::UNIQUE_VIOLATION,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ]
        .contains(code)
    })
}

/// A deadlock or serialization failure that persisted: "unavailable" (a client's
/// retry resolves it); anything else as it was.
fn after_retry(e: StorageError) -> StorageError {
    match sql_state(&e) {
        Some(code)
            if *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            log::warn!("a PostgreSQL write lost its race twice: {e:?}");
            StorageError::Unavailable("the database is busy")
        }
        _ => e,
    }
}

// Declared after the macros above, which it uses.
mod customer;
mod staff;
mod webhooks;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A connection, or a transaction on one: what statements run on. Statements are
/// prepared once per connection.
pub(super) trait Db: Sync {
    /// The connection.
    fn client(&self) -> &tokio_postgres::Client;
    /// Its prepared statements.
    fn statements(&self) -> &StatementCache;
    /// The statements kept to be sent with the next one ([`Write::later`]).
    fn take_later(&self) -> Vec<Later> {
        Vec::new()
    }
}

impl Db for deadpool_postgres::ClientWrapper {
    fn client(&self) -> &tokio_postgres::Client {
        self
    }
    fn statements(&self) -> &StatementCache {
        &self.statement_cache
    }
}

impl Db for deadpool_postgres::Transaction<'_> {
    fn client(&self) -> &tokio_postgres::Client {
        tokio_postgres::Transaction::client(self)
    }
    fn statements(&self) -> &StatementCache {
        &self.statement_cache
    }
}

async fn prepared<C: Db + ?Sized>(c: &C, sql: &str) -> Result<Statement, StorageError> {
    Ok(c.statements().prepare(c.client(), sql).await?)
}

/// Runs `statement` on `c` after the statements `c` kept for later, in one round
/// trip: a statement sees every write before it, sent or kept.
async fn after_later<C: Db + ?Sized, T>(
    c: &C,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StorageError> {
    let later = c.take_later();
    if later.is_empty() {
        return Ok(statement.await?);
    }
    let prepared = prepare_later(c, &later).await?;
    let (sent, out) =
        futures_util::future::join(send_later(c.client(), &later, &prepared), statement).await;
    first_error(sent)?;
    Ok(out?)
}

async fn prepare_later<C: Db + ?Sized>(
    c: &C,
    later: &[Later],
) -> Result<Vec<Statement>, StorageError> {
    let mut out = Vec::with_capacity(later.len());
    for l in later {
        out.push(prepared(c, &l.sql).await?);
    }
    Ok(out)
}

/// Sends the statements kept for later, pipelined; their answers in order.
async fn send_later(
    pg: &tokio_postgres::Client,
    later: &[Later],
    prepared: &[Statement],
) -> Vec<Result<u64, tokio_postgres::Error>> {
    futures_util::future::join_all(later.iter().zip(prepared).map(|(l, stmt)| {
        let params: Vec<&(dyn ToSql + Sync)> = l
            .params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect();
        async move { pg.execute(stmt, &params).await }
    }))
    .await
}

/// Rows of a statement.
pub(super) async fn rows<C: Db + ?Sized>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, StorageError> {
    let stmt = prepared(c, sql).await?;
    after_later(c, c.client().query(&stmt, params)).await
}

/// The row of a statement, if any.
pub(super) async fn opt<C: Db + ?Sized>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StorageError> {
    let stmt = prepared(c, sql).await?;
    after_later(c, c.client().query_opt(&stmt, params)).await
}

/// The one row of a statement.
pub(super) async fn one<C: Db + ?Sized>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Row, StorageError> {
    let stmt = prepared(c, sql).await?;
    after_later(c, c.client().query_one(&stmt, params)).await
}

/// Runs a statement; the rows it changed.
pub(super) async fn exec<C: Db + ?Sized>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, StorageError> {
    let stmt = prepared(c, sql).await?;
    after_later(c, c.client().execute(&stmt, params)).await
}

/// A parameter of a statement sent later ([`Write::later`]): owned.
pub(super) type Owned = Box<dyn ToSql + Send + Sync>;

/// A statement whose result nobody reads, sent with the next statement or the
/// commit.
pub(super) struct Later {
    sql: String,
    params: Vec<Owned>,
}

/// Locks the head of the chain; the pipeline of the commit sends it after the
/// transaction's last statements, so that it is the last lock every write takes.
const LOCK_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";

/// Counts repeats beside events already chained in their window, for each
/// (license, window) of the transaction's repeatable events at once: `n` more,
/// seen last at `last_at`. Answers the windows that had an event.
const COUNT_REPEATS: &str = "UPDATE event_repeats
     SET count = event_repeats.count + v.n, last_at = GREATEST(event_repeats.last_at, v.last_at)
     FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[])
         AS v (license_id, repeat_window, n, last_at)
     WHERE event_repeats.license_id = v.license_id
       AND event_repeats.repeat_window = v.repeat_window
     RETURNING event_repeats.license_id, event_repeats.repeat_window";

/// Locks the head, numbers and hashes events after it, appends them and moves the
/// head, in one statement. (Once the lock is granted, `FOR UPDATE` answers the
/// head as the transaction that held it left it, whatever the statement's
/// snapshot: PostgreSQL's documented READ COMMITTED behaviour.) `$6` holds what each event's
/// hash covers after the head's hash and its sequence number
/// ([`EventRecord::hashed_after_seq`]): the hash is the one
/// [`EventRecord::chain_hash`] computes.
const APPEND_WHERE_THE_HEAD_IS: &str = "WITH RECURSIVE
     head AS (
         SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE
     ), new AS (
         SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                              $6::BYTEA[])
             WITH ORDINALITY AS e (at, actor, kind, license_id, data, hashed, n)
     ), chain (n, seq, hash) AS (
         SELECT 0::BIGINT, seq, hash FROM head
         UNION ALL
         SELECT new.n, chain.seq + 1,
                sha256(chain.hash || int8send(octet_length((chain.seq + 1)::TEXT)::BIGINT)
                       || convert_to((chain.seq + 1)::TEXT, 'UTF8') || new.hashed)
         FROM chain JOIN new ON new.n = chain.n + 1
     ), appended AS (
         INSERT INTO events (seq, at, actor, kind, license_id, data, hash)
         SELECT chain.seq, new.at, new.actor, new.kind, new.license_id, new.data, chain.hash
         FROM chain JOIN new ON new.n = chain.n
     )
     UPDATE audit_head SET seq = last.seq, hash = last.hash
     FROM (SELECT seq, hash FROM chain ORDER BY n DESC LIMIT 1) AS last
     WHERE audit_head.id = 1";

/// Appends the chained events, opens the repeat counts of the windows they open
/// and moves the head, in one statement.
const CHAIN: &str = "WITH chained AS (
         INSERT INTO events (seq, at, actor, kind, license_id, data, hash)
         SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                              $6::TEXT[], $7::BYTEA[])
     ), opened AS (
         INSERT INTO event_repeats (seq, license_id, repeat_window, count, last_at)
         SELECT * FROM unnest($8::BIGINT[], $9::TEXT[], $10::TEXT[], $11::BIGINT[], $12::BIGINT[])
     )
     UPDATE audit_head SET seq = $13, hash = $14 WHERE id = 1";

/// A write transaction. Its events are chained at the commit, which only then
/// locks the head of the chain: the transaction's own statements run beside those
/// of other transactions (each locks the rows its rules read first), and only the
/// appending of events is one at a time across instances.
pub(super) struct Write<'a> {
    tx: tokio_postgres::Transaction<'a>,
    statements: Arc<StatementCache>,
    /// Events to chain at the commit, in order.
    events: Vec<NewEvent>,
    /// Statements to send with the next statement or the commit, in order.
    later: std::sync::Mutex<Vec<Later>>,
}

impl Db for Write<'_> {
    fn client(&self) -> &tokio_postgres::Client {
        self.tx.client()
    }
    fn statements(&self) -> &StatementCache {
        &self.statements
    }
    fn take_later(&self) -> Vec<Later> {
        // A poisoned lock only means a panic mid-push; the list is still a list.
        std::mem::take(&mut *self.later.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The first error of a pipeline's answers, in the order they were sent.
fn first_error<T>(
    answers: impl IntoIterator<Item = Result<T, tokio_postgres::Error>>,
) -> Result<Vec<T>, StorageError> {
    answers
        .into_iter()
        .collect::<Result<Vec<T>, _>>()
        .map_err(StorageError::from)
}

impl<'a> Write<'a> {
    async fn begin(client: &'a mut deadpool_postgres::Object) -> Result<Self, StorageError> {
        let statements = Arc::clone(&client.statement_cache);
        let pg: &mut tokio_postgres::Client = client;
        Ok(Self {
            tx: pg.transaction().await?,
            statements,
            events: Vec::new(),
            later: std::sync::Mutex::default(),
        })
    }

    /// Appends an event to the hash-chained log at the commit; a repeat of a refusal
    /// or refresh already chained in its window is counted beside that event
    /// instead (see [`crate::domain::audit::AuditEvent::repeat_window`]).
    pub fn append(&mut self, event: NewEvent) {
        // The place in the chain is given at the commit; messages do not carry it.
        let messages = crate::storage::webhooks::messages_of(&event.record(0), event.at);
        self.queue_messages(messages, event.at);
        self.events.push(event);
    }

    /// Writes `messages` into the outbox, one row per enabled endpoint subscribed
    /// to each one's type, due at `at`, sent with the next statement or the commit
    /// (one pipelined statement, no round trip of its own).
    ///
    /// The statement runs whether or not an endpoint exists. SQLite skips it when
    /// `audit_head.webhook_endpoints` is 0, read with the head; here the head is
    /// locked only in the commit's own pipeline, so the count would have to be read
    /// before: a round trip more (dearer than the statement, which finds no
    /// endpoint row and writes nothing), and not race-free (an endpoint committed
    /// between that read and the head's lock comes before this write's events in
    /// the chain, yet would get none of their messages).
    pub fn queue_messages(
        &mut self,
        messages: Vec<crate::storage::webhooks::NewMessage>,
        at: Timestamp,
    ) {
        for m in messages {
            self.later(
                "INSERT INTO outbox (message_id, channel, target, kind, payload,
                                     created_at, status, next_at_ms)
                 SELECT $1, $2, id, $3, $4, $5, 'pending', $6 FROM webhook_endpoints
                 WHERE enabled AND (events = ' * ' OR strpos(events, ' ' || $3 || ' ') > 0)",
                vec![
                    Box::new(m.message_id),
                    Box::new(crate::domain::webhook::WEBHOOK_CHANNEL),
                    Box::new(m.kind),
                    Box::new(m.payload),
                    Box::new(at.timestamp()),
                    Box::new(at.timestamp_millis()),
                ],
            );
        }
    }

    /// Writes a customer's mail into the outbox, due at `at`, with the commit; a
    /// second mail of the same cause is none (the row is unique per cause and
    /// recipient).
    pub fn queue_mail(&mut self, mail: &crate::domain::mail::NewMail, at: Timestamp) {
        self.later(
            "INSERT INTO outbox (message_id, channel, target, kind, payload,
                                 created_at, status, next_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)
             ON CONFLICT (message_id, channel, target) DO NOTHING",
            vec![
                Box::new(mail.cause.clone()),
                Box::new(crate::domain::mail::MAIL_CHANNEL),
                Box::new(mail.to.clone()),
                Box::new(mail.kind.as_str()),
                Box::new(mail.payload()),
                Box::new(at.timestamp()),
                Box::new(at.timestamp_millis()),
            ],
        );
    }

    /// Counts the enabled webhook endpoints again (after this write changed them)
    /// into `audit_head.webhook_endpoints`, which SQLite reads with its head (and a
    /// copy of this database takes along).
    pub async fn recount_webhook_endpoints(&mut self) -> Result<(), StorageError> {
        exec(
            self,
            "UPDATE audit_head SET webhook_endpoints =
                 (SELECT count(*) FROM webhook_endpoints WHERE enabled)
             WHERE id = 1",
            &[],
        )
        .await?;
        Ok(())
    }

    /// The events appended so far about `license_id`, oldest first: what the log
    /// will hold once the transaction commits.
    pub fn appended<'s>(&'s self, license_id: &'s str) -> impl Iterator<Item = &'s NewEvent> {
        self.events
            .iter()
            .filter(move |e| e.license_id.as_deref() == Some(license_id))
    }

    /// Keeps a statement whose result nobody reads, to send it in one round trip
    /// with the transaction's next statement, or with the commit and the head's
    /// lock (a failure still fails the operation and rolls it back).
    pub fn later(&mut self, sql: impl Into<String>, params: Vec<Owned>) {
        self.later
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .push(Later {
                sql: sql.into(),
                params,
            });
    }

    /// Commits. Without events: the statements kept for later and the commit, one
    /// round trip. With events that are never counted as repeats (a mint, a new
    /// seat): the statements kept for later, the head's lock with the append, and
    /// the commit, one round trip. With repeatable events (a refresh, a refusal):
    /// the statements kept for later, the head's lock and the repeat count, then
    /// the append and the commit, two.
    async fn commit(self) -> Result<(), StorageError> {
        let later = self.take_later();
        let later_statements = prepare_later(&self, &later).await?;
        let Self {
            tx,
            statements,
            events,
            ..
        } = self;
        let pg = tx.client();
        let sent_later = send_later(pg, &later, &later_statements);
        if events.is_empty() {
            let (sent, committed) =
                futures_util::future::join(sent_later, pg.batch_execute(COMMIT_DURABLY)).await;
            first_error(sent)?;
            committed?;
            // See below.
            std::mem::forget(tx);
            return Ok(());
        }
        let repeatable: Vec<Option<(String, String)>> = events.iter().map(repeat_key).collect();
        let windows = Windows::of(&events, &repeatable);
        if windows.is_empty() {
            // Nothing to count: the server numbers and hashes the events itself, and
            // the head's lock, the append and the commit go in one round trip. The
            // lock is held while the server works, never across a round trip.
            let append = statements.prepare(pg, APPEND_WHERE_THE_HEAD_IS).await?;
            let columns = Appended::of(&events);
            let (sent, appended, committed) = futures_util::future::join3(
                sent_later,
                pg.execute(
                    &append,
                    &[
                        &columns.ats,
                        &columns.actors,
                        &columns.kinds,
                        &columns.licenses,
                        &columns.data,
                        &columns.hashed,
                    ],
                ),
                pg.batch_execute(COMMIT_AND_WAIT),
            )
            .await;
            first_error(sent)?;
            appended?;
            committed?;
            // See below.
            std::mem::forget(tx);
            return Ok(());
        }
        // Repeats to count first: which events are chained depends on what the
        // count finds, so the events are numbered and hashed here, after it.
        let lock_head = statements.prepare(pg, LOCK_HEAD).await?;
        let count_repeats = statements.prepare(pg, COUNT_REPEATS).await?;
        let chain = statements.prepare(pg, CHAIN).await?;
        let (sent, head, counted) = futures_util::future::join3(
            sent_later,
            pg.query_one(&lock_head, &[]),
            pg.query(
                &count_repeats,
                &[
                    &windows.licenses,
                    &windows.windows,
                    &windows.counts,
                    &windows.last_at,
                ],
            ),
        )
        .await;
        first_error(sent)?;
        let head = head?;
        let counted: HashSet<(String, String)> = counted?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, StorageError>>()?;
        let head_hash: Vec<u8> = head.try_get(1)?;
        // A head that is not a hash would start the chain from nothing: refuse it.
        let mut hash: [u8; 32] = head_hash
            .try_into()
            .map_err(|_| StorageError::Corrupt("audit_head.hash".into()))?;
        let mut seq: i64 = head.try_get(0)?;
        let mut chained = Chained::default();
        let mut opened = Opened::default();
        for (event, key) in events.iter().zip(&repeatable) {
            if let Some(key) = key {
                if counted.contains(key) || opened.has(key) {
                    continue;
                }
                let (n, last_at) = windows.of_key(key);
                opened.push(seq + 1, key, n, last_at);
            }
            seq += 1;
            let record = event.record(seq);
            hash = record.chain_hash(&hash);
            chained.push(record, hash);
        }
        if chained.seqs.is_empty() {
            // Every event was a repeat, counted above.
            pg.batch_execute(COMMIT_AND_WAIT).await?;
            std::mem::forget(tx);
            return Ok(());
        }
        let hash_bytes = hash.to_vec();
        let (appended, committed) = futures_util::future::join(
            pg.execute(
                &chain,
                &[
                    &chained.seqs,
                    &chained.ats,
                    &chained.actors,
                    &chained.kinds,
                    &chained.licenses,
                    &chained.data,
                    &chained.hashes,
                    &opened.seqs,
                    &opened.licenses,
                    &opened.windows,
                    &opened.counts,
                    &opened.last_at,
                    &seq,
                    &hash_bytes,
                ],
            ),
            pg.batch_execute(COMMIT_AND_WAIT),
        )
        .await;
        appended?;
        committed?;
        // The COMMIT went in the pipeline above, borrowing the transaction; left to
        // drop, it would send a ROLLBACK after it. It owns nothing but its borrow
        // of the connection. (On an error above it is dropped: the ROLLBACK then
        // ends whatever the failed pipeline left open.)
        std::mem::forget(tx);
        Ok(())
    }
}

/// The end of a write transaction that holds the head of the chain: the head is
/// let go as soon as the commit record is written, and the caller is answered once
/// that record is durable.
///
/// A commit with `synchronous_commit` on (the server's setting, as it should be)
/// waits for its WAL flush, and for a synchronous standby, before it lets go of its
/// locks: the head's lock would be held across every flush, one at a time, and no
/// two writes could share one. So this transaction commits without waiting
/// (`SET LOCAL synchronous_commit = off`: its locks go at once), and then a second
/// transaction on the same connection waits for it: it writes one WAL record of its
/// own (an empty transactional logical message, which any role may write at any
/// `wal_level`; a transaction that only took an xid would write no WAL before its
/// commit record and not wait) and commits with the server's own setting, so its
/// commit waits until the WAL is durable up to its commit record, later in the WAL
/// than this one's (locally, and on the synchronous standby when there is one).
/// The two go in one message; the answer comes after the wait. Concurrent waits
/// share their flushes (PostgreSQL's group commit), as the SQLite writer's batches
/// share one fsync.
///
/// What this changes: another transaction may read this one's rows during the wait
/// (as a read on a primary may while a synchronous commit waits for its standby).
/// Every write waits for durability before it answers (see [`COMMIT_DURABLY`]),
/// so nothing acknowledged depends on a write that could still be lost; a read
/// (a validation, a look-up) may. A connection lost during the wait answers
/// "unavailable" for a write that may have committed: every write is idempotent
/// or refused twice the same way, and the client's retry finds it.
const COMMIT_AND_WAIT: &str = "SET LOCAL synchronous_commit = off; COMMIT; \
     BEGIN; SELECT pg_logical_emit_message(true, 'keyclerk', ''); COMMIT";

/// The end of a write transaction that took no head: with a WAL record of its own,
/// so that its commit waits for the WAL flush even when it wrote nothing (a mint
/// found again may have read a license whose own wait is still under way: see
/// [`COMMIT_AND_WAIT`]).
const COMMIT_DURABLY: &str = "SELECT pg_logical_emit_message(true, 'keyclerk', ''); COMMIT";

/// A repeatable event's license and window.
fn repeat_key(e: &NewEvent) -> Option<(String, String)> {
    match (&e.license_id, e.event.repeat_window(e.at)) {
        (Some(license), Some(window)) => Some((license.clone(), window)),
        _ => None,
    }
}

/// The windows of a transaction's repeatable events: each once, with how many of
/// its events fall in it and the latest of their times.
#[derive(Default)]
struct Windows {
    licenses: Vec<String>,
    windows: Vec<String>,
    counts: Vec<i64>,
    last_at: Vec<i64>,
}

impl Windows {
    fn of(events: &[NewEvent], keys: &[Option<(String, String)>]) -> Self {
        let mut w = Self::default();
        for (event, key) in events.iter().zip(keys) {
            let Some((license, window)) = key else {
                continue;
            };
            let at = event.at.timestamp();
            match w.index(license, window) {
                Some(i) => {
                    w.counts[i] += 1;
                    w.last_at[i] = w.last_at[i].max(at);
                }
                None => {
                    w.licenses.push(license.clone());
                    w.windows.push(window.clone());
                    w.counts.push(1);
                    w.last_at.push(at);
                }
            }
        }
        w
    }

    fn index(&self, license: &str, window: &str) -> Option<usize> {
        (0..self.licenses.len()).find(|&i| self.licenses[i] == license && self.windows[i] == window)
    }

    fn is_empty(&self) -> bool {
        self.licenses.is_empty()
    }

    /// How many events fall in the window of `key`, and the latest time.
    fn of_key(&self, (license, window): &(String, String)) -> (i64, i64) {
        self.index(license, window)
            .map_or((1, 0), |i| (self.counts[i], self.last_at[i]))
    }
}

/// The events a commit appends where the head is, column by column.
#[derive(Default)]
struct Appended {
    ats: Vec<i64>,
    actors: Vec<String>,
    kinds: Vec<String>,
    licenses: Vec<Option<String>>,
    data: Vec<String>,
    hashed: Vec<Vec<u8>>,
}

impl Appended {
    fn of(events: &[NewEvent]) -> Self {
        let mut a = Self::default();
        for event in events {
            // The sequence number is the server's to give: not part of these.
            let r = event.record(0);
            a.hashed.push(r.hashed_after_seq());
            a.ats.push(r.at);
            a.actors.push(r.actor);
            a.kinds.push(r.kind);
            a.licenses.push(r.license_id);
            a.data.push(r.data);
        }
        a
    }
}

/// The events chained by a commit, column by column.
#[derive(Default)]
struct Chained {
    seqs: Vec<i64>,
    ats: Vec<i64>,
    actors: Vec<String>,
    kinds: Vec<String>,
    licenses: Vec<Option<String>>,
    data: Vec<String>,
    hashes: Vec<Vec<u8>>,
}

impl Chained {
    fn push(&mut self, r: EventRecord, hash: [u8; 32]) {
        self.seqs.push(r.seq);
        self.ats.push(r.at);
        self.actors.push(r.actor);
        self.kinds.push(r.kind);
        self.licenses.push(r.license_id);
        self.data.push(r.data);
        self.hashes.push(hash.to_vec());
    }
}

/// The repeat counts a commit opens beside the events it chains.
#[derive(Default)]
struct Opened {
    seqs: Vec<i64>,
    licenses: Vec<String>,
    windows: Vec<String>,
    counts: Vec<i64>,
    last_at: Vec<i64>,
}

impl Opened {
    fn has(&self, (license, window): &(String, String)) -> bool {
        (0..self.seqs.len()).any(|i| self.licenses[i] == *license && self.windows[i] == *window)
    }

    fn push(&mut self, seq: i64, (license, window): &(String, String), n: i64, last_at: i64) {
        self.seqs.push(seq);
        self.licenses.push(license.clone());
        self.windows.push(window.clone());
        self.counts.push(n);
        self.last_at.push(last_at);
    }
}

/// The advisory lock key of [`Storage::create_first_token`] ("kc first" in ASCII).
const FIRST_TOKEN_LOCK: i64 = 0x6b63_2066_6972_7374;

async fn insert_token(w: &Write<'_>, new: &NewApiToken) -> Result<(), StorageError> {
    exec(
        w,
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
pub(super) async fn load_license<C: Db + ?Sized>(
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
        w,
        &format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = $1 FOR UPDATE"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(license_from_row)
    .transpose()?
    .ok_or(StorageError::Domain(DomainError::LicenseNotFound))
}

pub(super) async fn latest_key<C: Db + ?Sized>(
    c: &C,
    license_id: &str,
) -> Result<StoredKey, StorageError> {
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
///
/// The insert comes first and gives way to a license of the same order id
/// (`ON CONFLICT DO NOTHING`, which waits for a concurrent insert of that order id
/// to commit or roll back): a mint that finds the order taken reads the license
/// that took it, so concurrent mints of one order make one license.
pub(super) async fn mint_one(
    w: &mut Write<'_>,
    new: &NewLicense,
    key: &IssuedKey,
    actor: &Actor,
) -> Result<MintOutcome, StorageError> {
    let l = &new.license;
    let entitlements = serde_json::to_string(&l.entitlements)
        .map_err(|e| StorageError::Corrupt(format!("entitlements: {e}")))?;
    let metadata = l
        .metadata
        .as_ref()
        .map(|m| serde_json::Value::Object(m.clone()).to_string());
    let (price_amount, price_currency) = price_columns(l.price.as_ref());
    let (due_amount, due_currency) = price_columns(l.amount_due.as_ref());
    let inserted = exec(
        w,
        "INSERT INTO licenses (id, product, order_id, customer_email, purchased_at, activate_by,
             expires_at, duration_days, duration_from, extra_days, seats, entitlements, metadata,
             status, key_format, created_at, updated_at, price_amount, price_currency, supersedes,
             superseded_by, due_amount, due_currency, request_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22, $23, $24)
         ON CONFLICT (order_id) DO NOTHING",
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
    if inserted == 0 {
        // This statement sees the license that holds the order id, committed.
        let found = opt(
            w,
            &format!("SELECT {LICENSE_COLUMNS}, request_hash FROM licenses WHERE order_id = $1"),
            &[&l.order_id],
        )
        .await?
        .ok_or_else(|| StorageError::Corrupt(format!("order {} vanished", l.order_id)))?;
        let hash: Vec<u8> = found.try_get(LICENSE_COLUMN_COUNT)?;
        new.decide(Some(&hash))?;
        let license = license_from_row(&found)?;
        let stored = latest_key(w, &license.id).await?;
        return Ok(MintOutcome::Existing(license, stored));
    }
    new.decide(None)?;
    store_key(w, &l.id, key, l.created_at);
    w.append(NewEvent::about(
        &l.id,
        l.created_at,
        actor.clone(),
        new.minted_event(&key.stored.kid),
    ));
    if let Some(mail) = &new.mail {
        w.queue_mail(mail, l.created_at);
    }
    reminders::schedule(w, new);
    Ok(MintOutcome::Created(l.clone()))
}

/// Stores a key of a license, with the commit (nothing reads it back before). A
/// key stored before is left as it is: a short key is derived from the license id,
/// so re-issuing one gives the same key again.
pub(super) fn store_key(w: &mut Write<'_>, license_id: &str, key: &IssuedKey, at: Timestamp) {
    w.later(
        "INSERT INTO license_keys (key_hash, license_id, kid, payload, issued_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_hash) DO NOTHING",
        vec![
            Box::new(key.key_hash.to_vec()),
            Box::new(license_id.to_owned()),
            Box::new(key.stored.kid.clone()),
            Box::new(key.stored.payload.clone()),
            Box::new(at.timestamp()),
        ],
    );
}

pub(super) async fn update_license_state(w: &Write<'_>, l: &License) -> Result<(), StorageError> {
    let (due_amount, due_currency) = price_columns(l.amount_due.as_ref());
    exec(
        w,
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
async fn license_events<C: Db + ?Sized>(
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
pub(super) async fn evidence_events<C: Db + ?Sized>(
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

/// The licenses of `ids`, by id, in one statement.
async fn licenses_of<C: Db + ?Sized>(
    c: &C,
    ids: &[&str],
) -> Result<HashMap<String, License>, StorageError> {
    let ids = ids.to_vec();
    rows(
        c,
        &format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = ANY($1)"),
        &[&ids],
    )
    .await?
    .iter()
    .map(|r| license_from_row(r).map(|l| (l.id.clone(), l)))
    .collect()
}

/// [`evidence_events`] of several licenses in two statements, by license id.
async fn evidence_events_of<C: Db + ?Sized>(
    c: &C,
    ids: &[&str],
) -> Result<HashMap<String, Vec<PastEvent>>, StorageError> {
    let ids = ids.to_vec();
    let (first_of, all_of) = (
        EvidenceEvents::FIRST_OF.to_vec(),
        EvidenceEvents::ALL_OF.to_vec(),
    );
    let first = format!(
        "SELECT DISTINCT ON (events.license_id, events.kind) {EVENT_COLUMNS} FROM events
         LEFT JOIN event_repeats ON event_repeats.seq = events.seq
         WHERE events.license_id = ANY($1) AND events.kind = ANY($2)
         ORDER BY events.license_id, events.kind, events.seq"
    );
    let all = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         LEFT JOIN event_repeats ON event_repeats.seq = events.seq
         WHERE events.license_id = ANY($1) AND events.kind = ANY($2)"
    );
    let (firsts, alls) = futures_util::future::try_join(
        rows(c, &first, &[&ids, &first_of]),
        rows(c, &all, &[&ids, &all_of]),
    )
    .await?;
    let mut by: HashMap<String, Vec<Event>> = HashMap::new();
    for r in firsts.iter().chain(&alls) {
        let e = event_from_row(r)?;
        if let Some(id) = e.license_id.clone() {
            by.entry(id).or_default().push(e);
        }
    }
    by.into_iter()
        .map(|(id, events)| Ok((id, past_events(events)?)))
        .collect()
}

/// Checks the audit chain of the database `c` is connected to.
async fn verify_audit_on<C: Db + ?Sized>(c: &C) -> Result<Result<i64, ChainError>, StorageError> {
    Ok(chain_head_on(c).await?.map(|h| h.length))
}

/// Checks the audit chain of the database `c` is connected to; its head if intact.
async fn chain_head_on<C: Db + ?Sized>(
    c: &C,
) -> Result<Result<ChainHead, ChainError>, StorageError> {
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
    Ok(verify_chain_head(records, head_seq))
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
            batch_micros: Some(self.timing.transaction_micros.snapshot()),
            commit_micros: Some(self.timing.commit_micros.snapshot()),
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

    async fn evidence(
        &self,
        license_id: &str,
        now: Timestamp,
    ) -> Result<Option<crate::domain::grace::Evidence>, StorageError> {
        let id = license_id.to_owned();
        read!(self, |c| match load_license(c, &id).await? {
            Some(l) => Some(crate::domain::grace::Evidence::gather(
                &l,
                &evidence_events(c, &id).await?,
                now,
            )),
            None => None,
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
            let event = license.transition(action, reason.clone(), now)?;
            update_license_state(&w, &license).await?;
            w.append(NewEvent::about(&id, now, actor.clone(), event));
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
            w.append(NewEvent::about(&id, now, actor.clone(), event));
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

    async fn customer_claims(&self, email: &str) -> Result<Vec<Claim>, StorageError> {
        let email = email.to_owned();
        read!(self, |c| grace::customer_claims(c, &email).await?).await
    }

    async fn claims_with_evidence(
        &self,
        status: ClaimStatus,
        with_evidence: usize,
        now: Timestamp,
    ) -> Result<Vec<QueuedClaim>, StorageError> {
        read!(self, |c| {
            let claims = grace::claims(c, status).await?;
            let ids: Vec<&str> = claims
                .iter()
                .take(with_evidence)
                .map(|q| q.license_id.as_str())
                .collect();
            // Three statements for the whole queue, not five per claim.
            let (licenses, events) =
                futures_util::future::try_join(licenses_of(c, &ids), evidence_events_of(c, &ids))
                    .await?;
            let mut queue = Vec::with_capacity(claims.len());
            for (i, claim) in claims.iter().enumerate() {
                let read = match licenses.get(&claim.license_id) {
                    Some(l) if i < with_evidence => {
                        let none = Vec::new();
                        let events = events.get(&claim.license_id).unwrap_or(&none);
                        let evidence = crate::domain::grace::Evidence::gather(l, events, now);
                        Some((l.clone(), evidence))
                    }
                    _ => None,
                };
                queue.push(QueuedClaim {
                    claim: claim.clone(),
                    read,
                });
            }
            queue
        })
        .await
    }

    async fn license_claims(
        &self,
        license_id: &str,
        status: ClaimStatus,
    ) -> Result<Vec<Claim>, StorageError> {
        let id = license_id.to_owned();
        read!(self, |c| grace::license_claims(c, &id, status).await?).await
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
            let (token, event) = new.clone().created();
            w.append(NewEvent::general(at, actor.clone(), event));
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
            exec(&w, "SELECT pg_advisory_xact_lock($1)", &[&FIRST_TOKEN_LOCK]).await?;
            let any: bool = one(&w, "SELECT EXISTS (SELECT 1 FROM api_tokens)", &[])
                .await?
                .try_get(0)?;
            if any {
                None
            } else {
                insert_token(&w, &new).await?;
                let at = new.created_at;
                let (token, event) = new.clone().created();
                w.append(NewEvent::general(at, actor.clone(), event));
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
                &w,
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
                    &w,
                    "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1",
                    &[&token.id, &now.timestamp()],
                )
                .await?;
                w.append(NewEvent::general(now, actor.clone(), event));
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

    async fn download_secret(
        &self,
        candidate: [u8; 32],
        now: Timestamp,
    ) -> Result<[u8; 32], StorageError> {
        write_tx!(self, |w| {
            // `write_tx!` makes `w` mutable for writes that append; this one does not.
            let w = &mut w;
            let secret = candidate.to_vec();
            exec(
                &*w,
                "INSERT INTO server_secrets (name, secret, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[&DOWNLOAD_SECRET, &secret, &now.timestamp()],
            )
            .await?;
            let stored: Vec<u8> = one(
                &*w,
                "SELECT secret FROM server_secrets WHERE name = $1",
                &[&DOWNLOAD_SECRET],
            )
            .await?
            .try_get(0)?;
            <[u8; 32]>::try_from(stored.as_slice()).map_err(|_| corrupt("server_secrets.secret"))?
        })
        .await
    }

    async fn record_download(
        &self,
        license_id: String,
        file: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        write_tx!(self, |w| {
            w.append(NewEvent::about(
                &license_id,
                now,
                Actor::LicenseKey,
                AuditEvent::FileDownloaded { file: file.clone() },
            ));
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
            for k in &keys {
                let inserted = exec(
                    &w,
                    "INSERT INTO signing_keys (kid, public_key, first_seen) VALUES ($1, $2, $3)
                     ON CONFLICT (kid) DO NOTHING",
                    &[&k.kid, &k.public_key, &now.timestamp()],
                )
                .await?;
                if inserted == 1 {
                    w.append(NewEvent::general(now, actor.clone(), k.registered_event()));
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

    async fn audit_head(&self) -> Result<Result<ChainHead, ChainError>, StorageError> {
        read!(self, |c| chain_head_on(c).await?).await
    }

    async fn apply_payment(
        &self,
        req: crate::storage::payments::PaymentRequest,
    ) -> Result<crate::storage::payments::PaymentResult, StorageError> {
        write_tx!(self, |w| payments::apply(&mut w, &req).await?).await
    }

    async fn payment_events(
        &self,
        filter: crate::storage::payments::PaymentFilter,
    ) -> Result<Vec<crate::domain::payments::PaymentEvent>, StorageError> {
        read!(self, |c| payments::events(c, &filter).await?).await
    }

    async fn payment_event(
        &self,
        id: &str,
    ) -> Result<Option<crate::domain::payments::PaymentEvent>, StorageError> {
        let id = id.to_owned();
        read!(self, |c| payments::event(c, &id).await?).await
    }

    async fn due_reminders(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::storage::reminders::DueReminder>, StorageError> {
        read!(self, |c| reminders::due(c, now, limit).await?).await
    }

    async fn settle_reminders(
        &self,
        settled: Vec<crate::storage::reminders::SettledReminder>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        if settled.is_empty() {
            return Ok(());
        }
        write_tx!(self, |w| reminders::settle(&mut w, &settled, now).await?).await
    }

    fn staff_store(&self) -> &dyn crate::storage::staff::StaffStore {
        self
    }

    fn customer_store(&self) -> &dyn crate::storage::customer::CustomerStore {
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

//! Embedded, numbered migrations; the table `schema_version` records how far a
//! database is. Each runs in one transaction, under a lock on that table, so two
//! instances starting on a new database at once apply each step once.

use tokio_postgres::Client;

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`. Times are Unix seconds, as on
/// SQLite; JSON is kept as the text that was hashed into the audit chain (never
/// `jsonb`, which would reorder it).
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE licenses (
    id                  TEXT PRIMARY KEY,
    product             TEXT NOT NULL,
    order_id            TEXT NOT NULL UNIQUE,
    customer_email      TEXT,
    purchased_at        BIGINT NOT NULL,
    activate_by         BIGINT,
    expires_at          BIGINT,
    duration_days       BIGINT,
    duration_from       TEXT NOT NULL,
    extra_days          BIGINT NOT NULL DEFAULT 0,
    seats               BIGINT NOT NULL,
    entitlements        TEXT NOT NULL,
    metadata            TEXT,
    status              TEXT NOT NULL,
    key_format          TEXT NOT NULL,
    request_hash        BYTEA NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    first_presented_at  BIGINT,
    first_activated_at  BIGINT,
    last_seen_at        BIGINT,
    price_amount        BIGINT,
    price_currency      TEXT,
    supersedes          TEXT,
    superseded_by       TEXT,
    due_amount          BIGINT,
    due_currency        TEXT
);
CREATE INDEX licenses_by_email ON licenses (customer_email);
CREATE INDEX licenses_by_status ON licenses (status);
CREATE INDEX licenses_by_product ON licenses (product);

CREATE TABLE license_keys (
    n           BIGSERIAL UNIQUE,
    key_hash    BYTEA PRIMARY KEY,
    license_id  TEXT NOT NULL REFERENCES licenses (id),
    kid         TEXT NOT NULL,
    payload     TEXT NOT NULL,
    issued_at   BIGINT NOT NULL
);
CREATE INDEX license_keys_by_license ON license_keys (license_id, issued_at);

CREATE TABLE events (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    license_id  TEXT,
    data        TEXT NOT NULL,
    hash        BYTEA NOT NULL
);
CREATE INDEX events_by_license ON events (license_id, seq);
CREATE INDEX events_by_license_kind ON events (license_id, kind, seq);

CREATE TABLE event_repeats (
    seq            BIGINT PRIMARY KEY REFERENCES events (seq),
    license_id     TEXT NOT NULL,
    repeat_window  TEXT NOT NULL,
    count          BIGINT NOT NULL,
    last_at        BIGINT NOT NULL,
    UNIQUE (license_id, repeat_window)
);

-- The head of the chain: every write transaction with events locks this one row
-- as it commits, so the chain is appended in commit order whichever instance writes.
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    first_seen  BIGINT NOT NULL
);

CREATE TABLE activations (
    id              TEXT PRIMARY KEY,
    license_id      TEXT NOT NULL REFERENCES licenses (id),
    fingerprint     TEXT NOT NULL,
    name            TEXT,
    platform        TEXT,
    activated_at    BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    deactivated_at  BIGINT,
    deactivated_by  TEXT
);
CREATE UNIQUE INDEX activations_live ON activations (license_id, fingerprint)
    WHERE deactivated_at IS NULL;
CREATE INDEX activations_by_license ON activations (license_id, deactivated_at);

CREATE TABLE decisions (
    id               TEXT PRIMARY KEY,
    license_id       TEXT NOT NULL REFERENCES licenses (id),
    remedy           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    actor            TEXT NOT NULL,
    automatic        BOOLEAN NOT NULL,
    at               BIGINT NOT NULL,
    evidence         TEXT NOT NULL,
    result           TEXT NOT NULL,
    new_license_id   TEXT,
    claim_id         TEXT,
    idempotency_key  TEXT,
    request_hash     BYTEA,
    UNIQUE (license_id, idempotency_key)
);
CREATE INDEX decisions_by_license ON decisions (license_id, at);

CREATE TABLE credit_entries (
    n            BIGSERIAL UNIQUE,
    id           TEXT PRIMARY KEY,
    email        TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    license_id   TEXT,
    decision_id  TEXT,
    order_id     TEXT UNIQUE,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL
);
CREATE INDEX credit_entries_by_email ON credit_entries (email, at);

CREATE TABLE claims (
    id           TEXT PRIMARY KEY,
    license_id   TEXT NOT NULL REFERENCES licenses (id),
    email        TEXT,
    message      TEXT,
    status       TEXT NOT NULL,
    note         TEXT,
    decision_id  TEXT,
    created_at   BIGINT NOT NULL,
    resolved_at  BIGINT
);
CREATE INDEX claims_by_status ON claims (status, created_at);
"#,
    r#"
-- Rate-limit counters every instance sees (storage/postgres/limits.rs): a bucket's
-- next-hit time in Unix ms, and the transaction that last changed it, which the
-- instances' polls follow. UNLOGGED: a crash or a failover empties it.
CREATE UNLOGGED TABLE rate_limit_counters (
    bucket       TEXT PRIMARY KEY,
    tat_ms       BIGINT NOT NULL,
    changed_xid  BIGINT NOT NULL
);
CREATE INDEX rate_limit_counters_by_change ON rate_limit_counters (changed_xid, bucket);
CREATE INDEX rate_limit_counters_by_tat ON rate_limit_counters (tat_ms);
"#,
    // Activation in constant time, however many machines a license holds: the live
    // seats are a count kept on the license (changed in the transaction that takes
    // or frees a seat), and the release of unseen machines reads only those unseen.
    r#"
ALTER TABLE licenses ADD COLUMN seats_used BIGINT NOT NULL DEFAULT 0;
UPDATE licenses SET seats_used = (
    SELECT count(*) FROM activations
    WHERE activations.license_id = licenses.id AND deactivated_at IS NULL
);
CREATE INDEX activations_unseen ON activations (license_id, last_seen)
    WHERE deactivated_at IS NULL;
"#,
    // Payments in: every verified provider event once (its effect commits with it),
    // and the references (order, payment, subscription) later events find a
    // license by.
    r#"
CREATE TABLE payment_events (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    reason       TEXT,
    licenses     TEXT NOT NULL,
    decided_at   BIGINT NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (provider, event_id)
);
CREATE INDEX payment_events_by_outcome ON payment_events (outcome, id);

CREATE TABLE payment_links (
    provider    TEXT NOT NULL,
    reference   TEXT NOT NULL,
    license_id  TEXT NOT NULL REFERENCES licenses (id),
    ended_at    BIGINT,
    PRIMARY KEY (provider, reference, license_id)
);
"#,
    // Outgoing messages (webhooks now, mail later): a row per message and target,
    // written in the transaction of the change it reports, leased by the delivery
    // worker. `audit_head.webhook_endpoints` counts the enabled endpoints, read with
    // the head by every write, so that with none a write costs nothing more.
    r#"
CREATE TABLE webhook_endpoints (
    id                     TEXT PRIMARY KEY,
    url                    TEXT NOT NULL,
    events                 TEXT NOT NULL,
    description            TEXT,
    enabled                BOOLEAN NOT NULL,
    disabled_reason        TEXT,
    secret                 TEXT NOT NULL,
    previous_secret        TEXT,
    previous_secret_until  BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);

CREATE TABLE outbox (
    id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    message_id    TEXT NOT NULL,
    channel       TEXT NOT NULL,
    target        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    status        TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at_ms    BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_until_ms BIGINT,
    last_status   BIGINT,
    last_error    TEXT,
    last_attempt_at BIGINT,
    done_at       BIGINT,
    UNIQUE (message_id, channel, target)
);
CREATE INDEX outbox_due ON outbox (channel, next_at_ms) WHERE status = 'pending';
CREATE INDEX outbox_by_target ON outbox (channel, target, status, id);
CREATE INDEX outbox_done ON outbox (channel, done_at) WHERE status <> 'pending';

ALTER TABLE audit_head ADD COLUMN webhook_endpoints BIGINT NOT NULL DEFAULT 0;
"#,
    // The support console's staff accounts and their server-side sessions (kept by
    // the hash of the cookie's value).
    r#"
CREATE TABLE staff_users (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    role              TEXT NOT NULL,
    password_hash     TEXT,
    totp_secret       BYTEA,
    totp_last_step    BIGINT,
    setup_hash        BYTEA UNIQUE,
    setup_expires_at  BIGINT,
    created_at        BIGINT NOT NULL,
    disabled_at       BIGINT,
    last_sign_in_at   BIGINT
);

CREATE TABLE staff_sessions (
    id_hash       BYTEA PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES staff_users (id),
    csrf_token    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    reauth_at     BIGINT
);
CREATE INDEX staff_sessions_by_user ON staff_sessions (user_id);
"#,
    // The console's customer page reads a customer's claims: those of their
    // licenses and those they filed under their email.
    r#"
CREATE INDEX IF NOT EXISTS claims_by_license ON claims (license_id, created_at);
CREATE INDEX IF NOT EXISTS claims_by_email ON claims (email, created_at);
"#,
    // The language a customer filed a late claim in: the mail saying how it was
    // decided is written in it, also when support decides days later.
    r#"
ALTER TABLE claims ADD COLUMN locale TEXT;
"#,
    // Reminders before an unused license's activation window closes: one row per
    // listed day, written with the mint, deleted once sent or not wanted. Only
    // licenses of products with `remind_before_days` (and an email) have any.
    // No foreign key to `licenses`: with one, a mint of a new order left WAL
    // written after its flush (the durability contract test caught it); licenses
    // are never deleted, and the sweep reads each row's license.
    r#"
CREATE TABLE reminders (
    license_id  TEXT NOT NULL,
    days        BIGINT NOT NULL,
    due_at      BIGINT NOT NULL,
    locale      TEXT NOT NULL,
    PRIMARY KEY (license_id, days)
);
CREATE INDEX reminders_due ON reminders (due_at);
"#,
    // The secret download links are signed with: made on the first start, the same
    // for every instance on the database. (The evidence reads downloads through
    // `events_by_license_kind`, which holds every kind.)
    r#"
CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    secret      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);
"#,
    // The customer page (`/my`): single-use sign-in links by mail (only their
    // hash kept) and customers' sessions, by a license or by an email.
    r#"
CREATE TABLE customer_sign_ins (
    id          TEXT PRIMARY KEY,
    token_hash  BYTEA NOT NULL UNIQUE,
    email       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX customer_sign_ins_expiry ON customer_sign_ins (expires_at);

CREATE TABLE customer_sessions (
    id_hash       BYTEA PRIMARY KEY,
    license_id    TEXT,
    email         TEXT,
    csrf_token    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    CHECK ((license_id IS NULL) <> (email IS NULL))
);
CREATE INDEX customer_sessions_by_age ON customer_sessions (created_at);
"#,
    // Payment events by outcome only for those a vendor looks for (see SQLite's).
    r#"
DROP INDEX payment_events_by_outcome;
CREATE INDEX payment_events_unsettled ON payment_events (outcome, id)
    WHERE outcome <> 'applied';
"#,
];

/// The schema version this binary writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database was written by a newer keyclerk.
    #[error("the database is at schema version {found}, newer than this keyclerk knows ({known}); run the newer keyclerk or restore a backup")]
    TooNew {
        /// The database's version.
        found: i64,
        /// This binary's version.
        known: i64,
    },
    /// PostgreSQL failed.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// Brings the database up to [`CURRENT_VERSION`]; refuses a newer one.
pub async fn migrate(client: &mut Client) -> Result<(), MigrationError> {
    // Two instances creating the table at once: one wins, the other's error is a
    // unique violation on the catalog, and its next statement sees the table.
    let created = client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 version BIGINT NOT NULL
             );
             INSERT INTO schema_version (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING",
        )
        .await;
    if let Err(e) = created {
        if e.code() != Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            return Err(e.into());
        }
    }
    loop {
        let tx = client.transaction().await?;
        let found: i64 = tx
            .query_one(
                "SELECT version FROM schema_version WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await?
            .try_get(0)?;
        if found > CURRENT_VERSION {
            return Err(MigrationError::TooNew {
                found,
                known: CURRENT_VERSION,
            });
        }
        let Some(sql) = usize::try_from(found).ok().and_then(|i| MIGRATIONS.get(i)) else {
            tx.commit().await?;
            return Ok(());
        };
        tx.batch_execute(sql).await?;
        tx.execute(
            "UPDATE schema_version SET version = $1 WHERE id = 1",
            &[&(found + 1)],
        )
        .await?;
        tx.commit().await?;
    }
}

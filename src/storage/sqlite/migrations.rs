//! Embedded, numbered migrations; `PRAGMA user_version` records how far a database is.

use rusqlite::{Connection, TransactionBehavior};

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`; each runs in one transaction.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE licenses (
    id              TEXT PRIMARY KEY,
    product         TEXT NOT NULL,
    order_id        TEXT NOT NULL UNIQUE,
    customer_email  TEXT,
    purchased_at    INTEGER NOT NULL,
    activate_by     INTEGER,
    expires_at      INTEGER,
    duration_days   INTEGER,
    duration_from   TEXT NOT NULL,
    extra_days      INTEGER NOT NULL DEFAULT 0,
    seats           INTEGER NOT NULL,
    entitlements    TEXT NOT NULL,
    metadata        TEXT,
    status          TEXT NOT NULL,
    key_format      TEXT NOT NULL,
    request_hash    BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX licenses_by_email ON licenses (customer_email);
CREATE INDEX licenses_by_status ON licenses (status);
CREATE INDEX licenses_by_product ON licenses (product);

CREATE TABLE license_keys (
    key_hash    BLOB PRIMARY KEY,
    license_id  TEXT NOT NULL REFERENCES licenses (id),
    kid         TEXT NOT NULL,
    payload     TEXT NOT NULL,
    issued_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX license_keys_by_license ON license_keys (license_id, issued_at);

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    license_id  TEXT,
    data        TEXT NOT NULL,
    hash        BLOB NOT NULL
) STRICT;
CREATE INDEX events_by_license ON events (license_id, seq);

CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  BLOB NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    first_seen  INTEGER NOT NULL
) STRICT;
"#,
    r#"
ALTER TABLE licenses ADD COLUMN first_presented_at INTEGER;
ALTER TABLE licenses ADD COLUMN first_activated_at INTEGER;
ALTER TABLE licenses ADD COLUMN last_seen_at INTEGER;

CREATE TABLE activations (
    id              TEXT PRIMARY KEY,
    license_id      TEXT NOT NULL REFERENCES licenses (id),
    fingerprint     TEXT NOT NULL,
    name            TEXT,
    platform        TEXT,
    activated_at    INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    deactivated_at  INTEGER,
    deactivated_by  TEXT
) STRICT;
CREATE UNIQUE INDEX activations_live ON activations (license_id, fingerprint)
    WHERE deactivated_at IS NULL;
CREATE INDEX activations_by_license ON activations (license_id, deactivated_at);
"#,
    r#"
ALTER TABLE licenses ADD COLUMN price_amount INTEGER;
ALTER TABLE licenses ADD COLUMN price_currency TEXT;
ALTER TABLE licenses ADD COLUMN supersedes TEXT;
ALTER TABLE licenses ADD COLUMN superseded_by TEXT;
ALTER TABLE licenses ADD COLUMN due_amount INTEGER;
ALTER TABLE licenses ADD COLUMN due_currency TEXT;

CREATE TABLE decisions (
    id               TEXT PRIMARY KEY,
    license_id       TEXT NOT NULL REFERENCES licenses (id),
    remedy           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    actor            TEXT NOT NULL,
    automatic        INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    evidence         TEXT NOT NULL,
    result           TEXT NOT NULL,
    new_license_id   TEXT,
    claim_id         TEXT,
    idempotency_key  TEXT UNIQUE,
    request_hash     BLOB
) STRICT;
CREATE INDEX decisions_by_license ON decisions (license_id, at);

CREATE TABLE credit_entries (
    id           TEXT PRIMARY KEY,
    email        TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    license_id   TEXT,
    decision_id  TEXT,
    order_id     TEXT UNIQUE,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL
) STRICT;
CREATE INDEX credit_entries_by_email ON credit_entries (email, at);

CREATE TABLE claims (
    id           TEXT PRIMARY KEY,
    license_id   TEXT NOT NULL REFERENCES licenses (id),
    email        TEXT,
    message      TEXT,
    status       TEXT NOT NULL,
    note         TEXT,
    decision_id  TEXT,
    created_at   INTEGER NOT NULL,
    resolved_at  INTEGER
) STRICT;
CREATE INDEX claims_by_status ON claims (status, created_at);
"#,
    // Idempotency keys are scoped per license; the evidence reads a license's events
    // by kind; repeated refusals and refreshes are counted beside their first event.
    r#"
CREATE TABLE decisions_scoped (
    id               TEXT PRIMARY KEY,
    license_id       TEXT NOT NULL REFERENCES licenses (id),
    remedy           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    actor            TEXT NOT NULL,
    automatic        INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    evidence         TEXT NOT NULL,
    result           TEXT NOT NULL,
    new_license_id   TEXT,
    claim_id         TEXT,
    idempotency_key  TEXT,
    request_hash     BLOB,
    UNIQUE (license_id, idempotency_key)
) STRICT;
INSERT INTO decisions_scoped
    SELECT id, license_id, remedy, reason, actor, automatic, at, evidence, result,
           new_license_id, claim_id, idempotency_key, request_hash
    FROM decisions;
DROP TABLE decisions;
ALTER TABLE decisions_scoped RENAME TO decisions;
CREATE INDEX decisions_by_license ON decisions (license_id, at);

CREATE INDEX events_by_license_kind ON events (license_id, kind, seq);

CREATE TABLE event_repeats (
    seq         INTEGER PRIMARY KEY REFERENCES events (seq),
    license_id  TEXT NOT NULL,
    window      TEXT NOT NULL,
    count       INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,
    UNIQUE (license_id, window)
) STRICT;
"#,
    // Activation in constant time, however many machines a license holds: the live
    // seats are a count kept on the license (changed in the transaction that takes
    // or frees a seat), and the release of unseen machines reads only those unseen.
    r#"
ALTER TABLE licenses ADD COLUMN seats_used INTEGER NOT NULL DEFAULT 0;
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
    received_at  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    reason       TEXT,
    licenses     TEXT NOT NULL,
    decided_at   INTEGER NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (provider, event_id)
) STRICT;
CREATE INDEX payment_events_by_outcome ON payment_events (outcome, id);

CREATE TABLE payment_links (
    provider    TEXT NOT NULL,
    reference   TEXT NOT NULL,
    license_id  TEXT NOT NULL REFERENCES licenses (id),
    ended_at    INTEGER,
    PRIMARY KEY (provider, reference, license_id)
) STRICT;
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
    enabled                INTEGER NOT NULL,
    disabled_reason        TEXT,
    secret                 TEXT NOT NULL,
    previous_secret        TEXT,
    previous_secret_until  INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
) STRICT;

CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    message_id    TEXT NOT NULL,
    channel       TEXT NOT NULL,
    target        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at_ms    INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_until_ms INTEGER,
    last_status   INTEGER,
    last_error    TEXT,
    last_attempt_at INTEGER,
    done_at       INTEGER,
    UNIQUE (message_id, channel, target)
) STRICT;
CREATE INDEX outbox_due ON outbox (channel, next_at_ms) WHERE status = 'pending';
CREATE INDEX outbox_by_target ON outbox (channel, target, status, id);
CREATE INDEX outbox_done ON outbox (channel, done_at) WHERE status <> 'pending';

ALTER TABLE audit_head ADD COLUMN webhook_endpoints INTEGER NOT NULL DEFAULT 0;
"#,
    // The support console's staff accounts and their server-side sessions (kept by
    // the hash of the cookie's value).
    r#"
CREATE TABLE staff_users (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    role              TEXT NOT NULL,
    password_hash     TEXT,
    totp_secret       BLOB,
    totp_last_step    INTEGER,
    setup_hash        BLOB UNIQUE,
    setup_expires_at  INTEGER,
    created_at        INTEGER NOT NULL,
    disabled_at       INTEGER,
    last_sign_in_at   INTEGER
) STRICT;

CREATE TABLE staff_sessions (
    id_hash       BLOB PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES staff_users (id),
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    reauth_at     INTEGER
) STRICT;
CREATE INDEX staff_sessions_by_user ON staff_sessions (user_id);
"#,
    // A new seat writes only the index entries a live machine needs: the freed
    // seats are indexed apart (the churn limit and the list of machines read them).
    r#"
DROP INDEX activations_by_license;
CREATE INDEX activations_freed ON activations (license_id, deactivated_at)
    WHERE deactivated_at IS NOT NULL;
"#,
    // The console's customer page reads a customer's claims: those of their
    // licenses and those they filed under their email.
    r#"
CREATE INDEX IF NOT EXISTS claims_by_license ON claims (license_id, created_at);
CREATE INDEX IF NOT EXISTS claims_by_email ON claims (email, created_at);
"#,
    // Events by license and kind only for the kinds a late claim's evidence reads
    // (`EvidenceEvents`): a minted license, a refresh or a renewal writes no entry
    // there, and `events_by_license` serves every other read of a license's events.
    // Written with OR, not IN: an IN list of more than two values makes every insert
    // into `events` build a temporary b-tree to test it.
    r#"
DROP INDEX events_by_license_kind;
CREATE INDEX events_evidence ON events (license_id, kind, seq)
    WHERE (kind = 'key_first_presented' OR kind = 'activation_created'
           OR kind = 'activation_refused' OR kind = 'grace_decision');
"#,
    // The language a customer filed a late claim in: the mail saying how it was
    // decided is written in it, also when support decides days later.
    r#"
ALTER TABLE claims ADD COLUMN locale TEXT;
"#,
    // Reminders before an unused license's activation window closes: one row per
    // listed day, written with the mint, deleted once sent or not wanted. Only
    // licenses of products with `remind_before_days` (and an email) have any.
    r#"
CREATE TABLE reminders (
    license_id  TEXT NOT NULL REFERENCES licenses (id),
    days        INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    locale      TEXT NOT NULL,
    PRIMARY KEY (license_id, days)
) STRICT;
CREATE INDEX reminders_due ON reminders (due_at);
"#,
    // Downloads: the evidence reads a license's downloads too (its index takes
    // their kind), and the secret download links are signed with, made on the
    // first start and the same for every reader of the database.
    r#"
DROP INDEX events_evidence;
CREATE INDEX events_evidence ON events (license_id, kind, seq)
    WHERE (kind = 'key_first_presented' OR kind = 'activation_created'
           OR kind = 'activation_refused' OR kind = 'grace_decision'
           OR kind = 'file_downloaded');
CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    secret      BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
"#,
    // The customer page (`/my`): single-use sign-in links by mail (only their
    // hash kept) and customers' sessions, by a license or by an email.
    r#"
CREATE TABLE customer_sign_ins (
    id          TEXT PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,
    email       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;
CREATE INDEX customer_sign_ins_expiry ON customer_sign_ins (expires_at);

CREATE TABLE customer_sessions (
    id_hash       BLOB PRIMARY KEY,
    license_id    TEXT,
    email         TEXT,
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    CHECK ((license_id IS NULL) <> (email IS NULL))
) STRICT;
CREATE INDEX customer_sessions_by_age ON customer_sessions (created_at);
"#,
    // What a paid order writes beside its license, made smaller: payment events by
    // outcome only for those a vendor looks for (unmapped, failed, duplicate; an
    // applied event, nearly every one, writes no entry, and the list of applied
    // ones reads the events in order by id), and the events and the links to an
    // order's references each in their key's B-tree alone (WITHOUT ROWID: not a
    // table and an index of its key).
    r#"
CREATE TABLE payment_events_by_id (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    reason       TEXT,
    licenses     TEXT NOT NULL,
    decided_at   INTEGER NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (provider, event_id)
) STRICT, WITHOUT ROWID;
INSERT INTO payment_events_by_id
    SELECT id, provider, event_id, kind, received_at, outcome, reason, licenses,
           decided_at, body
    FROM payment_events;
DROP TABLE payment_events;
ALTER TABLE payment_events_by_id RENAME TO payment_events;
CREATE INDEX payment_events_unsettled ON payment_events (outcome, id)
    WHERE outcome <> 'applied';

CREATE TABLE payment_links_by_key (
    provider    TEXT NOT NULL,
    reference   TEXT NOT NULL,
    license_id  TEXT NOT NULL REFERENCES licenses (id),
    ended_at    INTEGER,
    PRIMARY KEY (provider, reference, license_id)
) STRICT, WITHOUT ROWID;
INSERT INTO payment_links_by_key (provider, reference, license_id, ended_at)
    SELECT provider, reference, license_id, ended_at FROM payment_links;
DROP TABLE payment_links;
ALTER TABLE payment_links_by_key RENAME TO payment_links;
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
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Brings the database up to [`CURRENT_VERSION`]; refuses a newer one.
///
/// Each step reads the version inside an immediate (write-locked) transaction, so two
/// processes opening a new database at once (the server and a CLI command) cannot
/// both apply the same migration.
pub fn migrate(conn: &mut Connection) -> Result<(), MigrationError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > CURRENT_VERSION {
            return Err(MigrationError::TooNew {
                found,
                known: CURRENT_VERSION,
            });
        }
        let Some(sql) = usize::try_from(found).ok().and_then(|i| MIGRATIONS.get(i)) else {
            tx.commit()?;
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_harmless() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
    }

    #[test]
    fn the_seat_count_starts_from_the_machines_a_database_already_holds() {
        let mut conn = Connection::open_in_memory().unwrap();
        // The schema as version 4 left it, with two live machines and a freed one.
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute_batch(
            "INSERT INTO licenses (id, product, order_id, purchased_at, duration_from, seats,
                 entitlements, status, key_format, request_hash, created_at, updated_at)
             VALUES ('lic_a', 'p', 'o-1', 0, 'purchase', 3, '[]', 'active', 'signed', x'00', 0, 0),
                    ('lic_b', 'p', 'o-2', 0, 'purchase', 3, '[]', 'active', 'signed', x'00', 0, 0);
             INSERT INTO activations (id, license_id, fingerprint, activated_at, last_seen,
                 deactivated_at)
             VALUES ('act_1', 'lic_a', 'f1', 0, 0, NULL), ('act_2', 'lic_a', 'f2', 0, 0, NULL),
                    ('act_3', 'lic_a', 'f3', 0, 0, 5);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let used = |id: &str| -> i64 {
            conn.query_row("SELECT seats_used FROM licenses WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!((used("lic_a"), used("lic_b")), (2, 0));
    }

    /// The payment events and links a database holds survive their tables'
    /// rebuild without a rowid, and an unmapped event is found through the new
    /// partial index.
    #[test]
    fn payment_events_and_links_survive_their_rebuild() {
        let mut conn = Connection::open_in_memory().unwrap();
        let before = MIGRATIONS.len() - 1;
        for sql in &MIGRATIONS[..before] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", before as i64)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO licenses (id, product, order_id, purchased_at, duration_from, seats,
                 entitlements, status, key_format, request_hash, created_at, updated_at)
             VALUES ('lic_a', 'p', 'stripe:cs_1', 0, 'purchase', 1, '[]', 'active', 'signed',
                     x'00', 0, 0);
             INSERT INTO payment_events (id, provider, event_id, kind, received_at, outcome,
                 reason, licenses, decided_at, body)
             VALUES ('pay_1', 'stripe', 'evt_1', 'checkout.session.completed', 1, 'applied',
                     NULL, 'lic_a', 1, '{}'),
                    ('pay_2', 'stripe', 'evt_2', 'charge.refunded', 2, 'unmapped',
                     'no license', '', 2, '{}');
             INSERT INTO payment_links (provider, reference, license_id, ended_at)
             VALUES ('stripe', 'cs_1', 'lic_a', NULL), ('stripe', 'pi_1', 'lic_a', 7);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let events: Vec<(String, String)> = conn
            .prepare("SELECT id, outcome FROM payment_events ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            events,
            [
                ("pay_1".to_owned(), "applied".to_owned()),
                ("pay_2".to_owned(), "unmapped".to_owned())
            ]
        );
        let unsettled: String = conn
            .query_row(
                "SELECT id FROM payment_events INDEXED BY payment_events_unsettled
                 WHERE outcome = 'unmapped' AND outcome <> 'applied'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unsettled, "pay_2");
        let links: Vec<(String, Option<i64>)> = conn
            .prepare("SELECT reference, ended_at FROM payment_links ORDER BY reference")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            links,
            [("cs_1".to_owned(), None), ("pi_1".to_owned(), Some(7))]
        );
        // The same event twice is still refused.
        assert!(conn
            .execute(
                "INSERT INTO payment_events (id, provider, event_id, kind, received_at, outcome,
                     licenses, decided_at, body)
                 VALUES ('pay_3', 'stripe', 'evt_1', 'k', 3, 'applied', '', 3, '{}')",
                [],
            )
            .is_err());
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(MigrationError::TooNew { .. })
        ));
    }
}

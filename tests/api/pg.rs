//! The throwaway PostgreSQL that `scripts/test.sh` starts: one fresh database per
//! test, copied from a template migrated once per test process.

use std::sync::OnceLock;

/// The variable `scripts/test.sh` exports.
pub const URL_VARIABLE: &str = "KC_TEST_POSTGRES_URL";

/// The server's URL (to its `postgres` database); fails the test without it.
pub fn server_url() -> String {
    std::env::var(URL_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{URL_VARIABLE} is not set: the PostgreSQL tests need the server that \
             scripts/test.sh starts (run ./scripts/test.sh, or export {URL_VARIABLE}=postgres://…)"
        )
    })
}

/// `url` with its database replaced by `name`.
pub fn url_of(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((hosts, _db)) => format!("{scheme}://{hosts}"),
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

/// Runs statements on the server's `postgres` database, on a runtime of its own.
fn admin(statements: &[String]) -> Result<(), tokio_postgres::Error> {
    execute_on(&server_url(), statements)
}

/// Runs statements on the database of `url`, each on its own (`CREATE DATABASE`
/// refuses to share a query string with another statement).
pub fn execute_on(url: &str, statements: &[String]) -> Result<(), tokio_postgres::Error> {
    for s in statements {
        simple_query(url, s)?;
    }
    Ok(())
}

/// The rows of `sql` (one or more statements) on the database of `url`, on a runtime
/// of its own; every value as text, `None` for NULL.
pub fn simple_query(
    url: &str,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let messages = client.simple_query(sql).await;
        drop(client);
        let _ = driver.await;
        Ok(messages?
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    })
}

fn random_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{:016x}",
        std::process::id(),
        rand::random::<u64>()
    )
}

/// The template every test database is copied from: migrated once per process.
fn template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = random_name("kc_template");
        admin(&[format!("CREATE DATABASE {name}")]).unwrap();
        let store = keyclerk::storage::postgres::PostgresStore::open(&url_of(&server_url(), &name))
            .unwrap_or_else(|e| panic!("migrating the template database: {e}"));
        drop(store);
        name
    })
}

/// A fresh database, dropped with this guard.
pub struct Database {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl Database {
    /// A migrated database: a copy of the template.
    pub fn create() -> Self {
        let template = template();
        let name = random_name("kc");
        // The template's last connections may still be closing: PostgreSQL refuses
        // to copy a database someone is connected to, so wait for them.
        let mut tries = 0;
        loop {
            match admin(&[format!("CREATE DATABASE {name} TEMPLATE {template}")]) {
                Ok(()) => break,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("creating a test database: {e}"),
            }
        }
        Self::named(name)
    }

    /// A new database without keyclerk's schema (where a backup is restored).
    pub fn empty() -> Self {
        let name = random_name("kc_empty");
        admin(&[format!("CREATE DATABASE {name}")]).unwrap();
        Self::named(name)
    }

    fn named(name: String) -> Self {
        Self {
            url: url_of(&server_url(), &name),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // WITH (FORCE) (PostgreSQL 13) ends the store's connections still closing.
        if let Err(e) = admin(&[format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )]) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// Runs `f` with a client of `url`, on a runtime of its own.
fn with_client<R>(url: &str, f: impl AsyncFnOnce(&tokio_postgres::Client) -> R) -> R {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let out = f(&client).await;
        drop(client);
        let _ = driver.await;
        out
    })
}

/// Runs one statement on a test database.
pub fn execute(url: &str, sql: &str) {
    with_client(url, async |c| c.batch_execute(sql).await.unwrap());
}

/// The one number a query on a test database answers.
pub fn query_i64(url: &str, sql: &str) -> i64 {
    with_client(url, async |c| c.query_one(sql, &[]).await.unwrap().get(0))
}

/// A PostgreSQL cluster of the test's own (for stopping and starting it), from the
/// binaries `scripts/test.sh` names; stopped when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Flushes its WAL (fsync and synchronous_commit on, as a deployment would).
    durable: bool,
}

/// The PostgreSQL server binaries `scripts/test.sh` names; fails the test without them.
pub fn server_bin() -> std::path::PathBuf {
    std::env::var("KC_TEST_POSTGRES_BIN")
        .unwrap_or_else(|_| {
            panic!("KC_TEST_POSTGRES_BIN is not set: this test runs a PostgreSQL of its own from the binaries scripts/test.sh finds")
        })
        .into()
}

/// A directory for clusters of a test's own. As root the clusters belong to
/// postgres, who must reach it: under /tmp (not a TMPDIR in root's home), owned by
/// postgres.
pub fn cluster_dir() -> tempfile::TempDir {
    if !rustix::process::geteuid().is_root() {
        return tempfile::tempdir().unwrap();
    }
    let dir = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
    let ok = std::process::Command::new("chown")
        .args(["postgres:", &dir.path().display().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "chown of the cluster directory");
    dir
}

/// Runs `program` of the server binaries `bin` (as postgres when the tests run as
/// root) and asserts that it succeeds.
pub fn run_server_program(bin: &std::path::Path, program: &str, args: &[&str]) {
    let program = bin.join(program);
    let mut cmd = if rustix::process::geteuid().is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        std::process::Command::new(&program)
    };
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pg_ctl -m immediate stop` of the cluster in `data`, as whoever owns it, for
/// clean-up: errors (a server already gone) are ignored.
pub fn stop_immediately(bin: &std::path::Path, data: &str) {
    let _ = std::process::Command::new(bin.join("pg_ctl"))
        .args(["-D", data, "-m", "immediate", "stop"])
        .output();
    if rustix::process::geteuid().is_root() {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("pg_ctl"))
            .args(["-D", data, "-m", "immediate", "stop"])
            .output();
    }
}

/// A free port on 127.0.0.1 (free when asked: another process may take it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// `initdb` and start; as the `postgres` user when the tests run as root.
    /// `fsync` is off: the test stops the server, the machine never crashes.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// As [`Cluster::start`], with `fsync` and `synchronous_commit` on, the WAL
    /// writer's own flushes rare (every 10 s) and no autovacuum, so that a test can
    /// tell whether a write waited for its flush.
    pub fn start_durable() -> Self {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Self {
        let cluster = Self {
            dir: cluster_dir(),
            bin: server_bin(),
            port: free_port(),
            durable,
        };
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust"]);
        cluster.pg_ctl_start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        run_server_program(&self.bin, program, args);
    }

    /// Starts the server and waits until it accepts connections.
    pub fn pg_ctl_start(&self) {
        let flushes = if self.durable {
            "-c fsync=on -c synchronous_commit=on -c wal_writer_delay=10000 -c autovacuum=off"
        } else {
            "-c fsync=off"
        };
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} {flushes}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-o", &options, "start"],
        );
    }

    /// Stops the server (fast: open transactions are rolled back, clients cut off).
    pub fn pg_ctl_stop(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop_immediately(&self.bin, &self.data());
    }
}

#[test]
fn a_database_is_named_in_the_url_of_the_server() {
    assert_eq!(
        url_of("postgres://postgres@127.0.0.1:5/postgres", "kc_1"),
        "postgres://postgres@127.0.0.1:5/kc_1"
    );
    assert_eq!(
        url_of(
            "postgres://u@a,b/postgres?target_session_attrs=read-write",
            "kc_1"
        ),
        "postgres://u@a,b/kc_1?target_session_attrs=read-write"
    );
}

//! The PostgreSQL of `--engine postgres`: a throwaway cluster of the machine's
//! server binaries (as `scripts/postgres.sh` starts one for the tests, but durable:
//! `fsync` and `synchronous_commit` on, like SQLite's `synchronous = FULL`), or a
//! server the caller names with `--database-url`. Each measured setup gets a
//! database of its own, dropped at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The server's settings that decide what a commit costs, printed with the figures.
const SETTINGS: [&str; 7] = [
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "shared_buffers",
    "max_connections",
];

/// A PostgreSQL server the benchmark uses.
pub struct Cluster {
    /// The URL of its maintenance database (`postgres`, or the one given).
    url: String,
    /// The throwaway cluster's directory and how to stop it; none for a server of
    /// the caller's.
    owned: Option<Owned>,
    /// Databases made for the setups, dropped at the end.
    made: Mutex<Vec<String>>,
}

struct Owned {
    dir: PathBuf,
    pg_ctl: PathBuf,
    as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/*/bin` that holds `initdb` and `pg_ctl`.
fn server_binaries() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e} (install Debian's postgresql package)"))?
        .filter_map(Result::ok)
        .filter_map(|d| {
            let version = d.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = d.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no initdb and pg_ctl under /usr/lib/postgresql/*/bin".into())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

fn run(mut command: Command, what: &str, log: &Path) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        Err(format!("{what} failed ({status}):\n{log}"))
    }
}

/// `url` with its database replaced by `name` (the query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let hosts = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((hosts, _)) => format!("{scheme}://{hosts}"),
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    match query {
        Some(q) => format!("{hosts}/{name}?{q}"),
        None => format!("{hosts}/{name}"),
    }
}

/// Runs `f` with a connection to `url`, on a runtime of its own.
fn with_client<T>(
    url: &str,
    f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
) -> Result<T, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("a runtime for PostgreSQL: {e}"))?;
    runtime
        .block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            let driver = tokio::spawn(connection);
            let out = f(&client).await;
            drop(client);
            let _ = driver.await;
            out
        })
        .map_err(|e| format!("PostgreSQL at {}: {e}", without_password(url)))
}

fn without_password(url: &str) -> String {
    match url.split_once("://").and_then(|(s, rest)| {
        let (userinfo, host) = rest.split_once('@')?;
        let (user, _) = userinfo.split_once(':')?;
        Some(format!("{s}://{user}:***@{host}"))
    }) {
        Some(shown) => shown,
        None => url.to_owned(),
    }
}

impl Cluster {
    /// Initialises and starts a cluster in a new directory under `base` (under
    /// /tmp when run as root: the cluster belongs to the `postgres` user then, who
    /// must reach its directory), on a free port of 127.0.0.1.
    pub fn start(base: &Path, stats: bool) -> Result<Self, String> {
        let bin = server_binaries()?;
        let as_postgres = rustix::process::geteuid().is_root();
        let parent = if as_postgres {
            PathBuf::from("/tmp")
        } else {
            base.to_owned()
        };
        let dir = parent.join(format!("keyclerk-bench-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let command = |program: &Path| {
            if as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            }
        };
        if as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("postgres:").arg(&dir);
            run(chown, "chown postgres", Path::new("/dev/null"))?;
        }
        let owned = Owned {
            dir: dir.clone(),
            pg_ctl: bin.join("pg_ctl"),
            as_postgres,
        };
        let port = free_port()?;
        let mut initdb = command(&bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(std::fs::File::create(dir.join("initdb.log")).map_err(|e| e.to_string())?)
            .stderr(std::process::Stdio::null());
        // Stopped and removed by drop from here on, whatever fails next.
        let cluster = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            owned: Some(owned),
            made: Mutex::default(),
        };
        run(initdb, "initdb", &dir.join("initdb.log"))?;
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=200 \
             -c fsync=on -c synchronous_commit=on -c full_page_writes=on",
            dir.display()
        );
        if stats {
            options.push_str(" -c shared_preload_libraries=pg_stat_statements");
        }
        let mut start = command(&bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdout(std::process::Stdio::null());
        run(start, "pg_ctl start", &dir.join("server.log"))?;
        Ok(cluster)
    }

    /// The server at `url`, whose user may create databases.
    pub fn external(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            owned: None,
            made: Mutex::default(),
        }
    }

    /// Where the throwaway cluster's files are, if the benchmark started one.
    pub fn directory(&self) -> Option<&Path> {
        self.owned.as_ref().map(|o| o.dir.as_path())
    }

    /// The server's settings that decide what a commit costs.
    pub fn settings(&self) -> Result<Vec<(&'static str, String)>, String> {
        with_client(&self.url, async |c| {
            let mut out = Vec::new();
            for name in SETTINGS {
                let row = c.query_one(&format!("SHOW {name}"), &[]).await?;
                out.push((name, row.try_get::<_, String>(0)?));
            }
            Ok(out)
        })
    }

    /// A new, empty database; its URL.
    pub fn database(&self, name: &str) -> Result<String, String> {
        let name = format!("keyclerk_bench_{}_{name}", std::process::id());
        let create = format!("CREATE DATABASE {name}");
        with_client(&self.url, async |c| c.batch_execute(&create).await)?;
        if let Ok(mut made) = self.made.lock() {
            made.push(name.clone());
        }
        Ok(with_database(&self.url, &name))
    }

    /// Starts counting statements of `database_url` (pg_stat_statements, if the
    /// server has it loaded): see [`Cluster::statements`].
    pub fn reset_statements(&self, database_url: &str) -> Result<(), String> {
        with_client(database_url, async |c| {
            c.batch_execute(
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()",
            )
            .await
        })
    }

    /// The statements run on `database_url` since [`Cluster::reset_statements`], most
    /// called first: (calls, mean ms, the statement's first 110 characters).
    pub fn statements(&self, database_url: &str) -> Result<Vec<(i64, f64, String)>, String> {
        with_client(database_url, async |c| {
            let rows = c
                .query(
                    "SELECT calls, mean_exec_time, regexp_replace(query, '\\s+', ' ', 'g')
                     FROM pg_stat_statements
                     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND query NOT LIKE '%pg_stat%'
                     ORDER BY calls DESC LIMIT 25",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let query: String = r.try_get(2)?;
                    Ok((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        query.chars().take(110).collect(),
                    ))
                })
                .collect()
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match &self.owned {
            Some(o) => {
                let mut stop = if o.as_postgres {
                    let mut c = Command::new("runuser");
                    c.args(["-u", "postgres", "--"]).arg(&o.pg_ctl);
                    c
                } else {
                    Command::new(&o.pg_ctl)
                };
                let _ = stop
                    .arg("-D")
                    .arg(o.dir.join("data"))
                    .args(["-m", "immediate", "-w", "stop"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                let _ = std::fs::remove_dir_all(&o.dir);
            }
            None => {
                let made = self.made.lock().map(|m| m.clone()).unwrap_or_default();
                for name in made {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(e) = with_client(&self.url, async |c| c.batch_execute(&drop).await) {
                        eprintln!("could not drop {name}: {e}");
                    }
                }
            }
        }
    }
}

/// What the server's backends of keyclerk were doing, sampled every few
/// milliseconds while a load ran: the share of samples in each state.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Vec<(String, u64)>, String>>,
}

/// One sample: each keyclerk backend's state, with its wait if it waits. "idle in
/// transaction" is a backend waiting for keyclerk's next statement (a round trip),
/// "Lock:transactionid" one waiting for another transaction's row lock,
/// "IO:WALSync" one flushing the WAL, "LWLock:WALWrite" one waiting for another's
/// flush, "active" one running.
const SAMPLE: &str = "SELECT CASE WHEN state = 'active' AND wait_event IS NOT NULL
                                THEN wait_event_type || ':' || wait_event ELSE state END,
                           count(*)
                      FROM pg_stat_activity
                      WHERE application_name = 'keyclerk' AND datname = current_database()
                      GROUP BY 1";

impl Sampler {
    /// Samples the backends of `database_url` until [`Sampler::finish`].
    pub fn start(database_url: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let url = database_url.to_owned();
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            with_client(&url, async |c| {
                let mut counts: Vec<(String, u64)> = Vec::new();
                let stmt = c.prepare(SAMPLE).await?;
                while !stopped.load(Ordering::Relaxed) {
                    for r in c.query(&stmt, &[]).await? {
                        let state: Option<String> = r.try_get(0)?;
                        let n: i64 = r.try_get(1)?;
                        let state = state.unwrap_or_else(|| "unknown".into());
                        match counts.iter_mut().find(|(s, _)| *s == state) {
                            Some((_, total)) => *total += n.unsigned_abs(),
                            None => counts.push((state, n.unsigned_abs())),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(counts)
            })
        });
        Self { stop, thread }
    }

    /// The states seen, each with its share of all samples, most frequent first.
    pub fn finish(self) -> Result<Vec<(String, f64)>, String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut counts = self
            .thread
            .join()
            .map_err(|_| "the sampler panicked".to_owned())??;
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        Ok(counts
            .into_iter()
            .map(|(s, n)| (s, n as f64 / total.max(1) as f64))
            .collect())
    }
}

//! The servers under test, each its own process (this binary run again), so that
//! their memory and start-up can be measured apart from the load generator's.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// First argument that makes this binary run `keyclerk` itself.
pub const AS_SERVER: &str = "--as-keyclerk";
/// First argument that makes this binary run the hello-world server.
pub const AS_HELLO: &str = "--as-hello-world";

/// The rate limits a keyclerk server runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// `[rate_limits] enabled = false`: the server alone.
    Off,
    /// On, as shipped.
    Shipped,
    /// On, with this many requests per key per minute (one license taking
    /// thousands of activations a second would be refused at the shipped 120).
    PerKeyPerMinute(u32),
}

impl Limits {
    /// `off` or `on`, for the report.
    pub fn label(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Shipped | Self::PerKeyPerMinute(_) => "on",
        }
    }
}

/// A server process on a free port.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// From spawning the process to its "listening on port" line.
    pub startup: Duration,
}

impl Server {
    /// Starts `keyclerk serve` with the configuration file `config`.
    pub fn keyclerk(config: &Path) -> io::Result<Self> {
        Self::keyclerk_on(config, None)
    }

    /// Starts `keyclerk serve` on its SQLite file with the rate limits `limits`.
    pub fn keyclerk_with(config: &Path, limits: Limits) -> io::Result<Self> {
        let mut command = Self::serve(config)?;
        match limits {
            Limits::Off => {
                command.env("KEYCLERK_RATE_LIMITS__ENABLED", "false");
            }
            Limits::Shipped => {
                command.env("KEYCLERK_RATE_LIMITS__ENABLED", "true");
            }
            Limits::PerKeyPerMinute(n) => {
                command.env("KEYCLERK_RATE_LIMITS__ENABLED", "true").env(
                    "KEYCLERK_RATE_LIMITS__REQUESTS_PER_KEY_PER_MINUTE",
                    n.to_string(),
                );
            }
        }
        Self::spawn(command)
    }

    /// `keyclerk serve` as this binary run again.
    fn serve(config: &Path) -> io::Result<Command> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg(AS_SERVER)
            .arg("--config")
            .arg(config)
            .arg("serve");
        Ok(command)
    }

    /// Starts `keyclerk serve` with the configuration file `config`, on the
    /// PostgreSQL database `database_url` if one is given (else on its SQLite file).
    pub fn keyclerk_on(config: &Path, database_url: Option<&str>) -> io::Result<Self> {
        let mut command = Self::serve(config)?;
        if let Some(url) = database_url {
            command.env("KEYCLERK_DATABASE__URL", url);
        }
        // The benchmark measures the server, not the limits that stop brute force.
        command.env("KEYCLERK_RATE_LIMITS__ENABLED", "false");
        Self::spawn(command)
    }

    /// Starts the actix-web hello-world server.
    pub fn hello_world() -> io::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg(AS_HELLO);
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> io::Result<Self> {
        let started = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let port = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                return Err(io::Error::other(format!(
                    "the server ended before it listened:\n{}",
                    seen.join("\n")
                )));
            };
            let line = line?;
            if let Some(p) = line.split("listening on port ").nth(1) {
                break p
                    .trim()
                    .parse::<u16>()
                    .map_err(|_| io::Error::other(format!("bad port in {line:?}")))?;
            }
            seen.push(line);
        };
        let startup = started.elapsed();
        // Drain the log (one line per request) so the server never blocks on the pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            port,
            startup,
        })
    }

    /// The most resident memory the process has had (VmHWM), in bytes.
    pub fn peak_memory(&self) -> io::Result<u64> {
        self.status_kib("VmHWM").map(|kib| kib * 1024)
    }

    /// Resident memory now: (private anonymous, file-backed and shared), in bytes.
    pub fn resident(&self) -> io::Result<(u64, u64)> {
        let anon = self.status_kib("RssAnon")?;
        let other = self.status_kib("RssFile")? + self.status_kib("RssShmem")?;
        Ok((anon * 1024, other * 1024))
    }

    fn status_kib(&self, field: &str) -> io::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| io::Error::other(format!("no {field} in /proc status")))
    }

    /// Stops the server with SIGTERM (a graceful stop) and waits for it.
    pub fn stop(mut self) -> io::Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait().map(|_| ())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the hello-world server: actix-web with its default workers, one route that
/// reads a JSON body and answers a small JSON document.
pub fn hello_world_main() -> std::process::ExitCode {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let served = actix_web::rt::System::new().block_on(async {
        let server = HttpServer::new(|| {
            App::new().route(
                "/hello",
                web::post().to(|body: web::Bytes| async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(format!("{{\"hello\":\"world\",\"read\":{}}}", body.len()))
                }),
            )
        })
        .bind(("127.0.0.1", 0))?;
        let port = server.addrs().first().map_or(0, |a| a.port());
        eprintln!("listening on port {port}");
        server.run().await
    });
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello-world server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Seats of the `site` product: the most a license may have.
pub const SITE_SEATS: u32 = 100_000;

/// A fresh directory for one server: its config, data and keys.
pub struct Workspace {
    /// The directory.
    pub dir: PathBuf,
}

impl Workspace {
    /// Makes `base/name` (emptied first) and writes its config.toml; the start-up
    /// messages are always logged, since the benchmark reads the port from them.
    pub fn new(base: &Path, name: &str, log: &str) -> io::Result<Self> {
        let dir = base.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let config = format!(
            r#"listen = "127.0.0.1:0"
data_dir = "{data}"
keys_dir = "{keys}"
issuer = "keyclerk-bench"
log = "{log},keyclerk::startup=info"

[products.bench]
name = "Bench App"
price = {{ amount = 1000, currency = "EUR" }}
seats = 1000
lease_days = 30
key_format = "signed"
entitlements = ["pro"]

[products.site]
name = "Bench Site License"
price = {{ amount = 100000, currency = "EUR" }}
seats = {site_seats}
lease_days = 30
key_format = "signed"
entitlements = ["pro"]

[payments.stripe]
webhook_secrets = ["{stripe_secret}"]
"#,
            site_seats = SITE_SEATS,
            data = dir.join("data").display(),
            keys = dir.join("keys").display(),
            stripe_secret = crate::STRIPE_SECRET,
        );
        std::fs::write(dir.join("config.toml"), config)?;
        Ok(Self { dir })
    }

    /// Its configuration file.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// The first admin token, written by the server's first start.
    pub fn admin_token(&self) -> io::Result<String> {
        Ok(
            std::fs::read_to_string(self.dir.join("data").join("admin-token"))?
                .trim()
                .to_owned(),
        )
    }

    /// Size of the database files (db and WAL), in bytes.
    pub fn database_size(&self) -> u64 {
        ["keyclerk.db", "keyclerk.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.join("data").join(f)).ok())
            .map(|m| m.len())
            .sum()
    }
}

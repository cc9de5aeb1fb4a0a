//! The test harness: a real keyclerk on port 0 with temporary directories, and HTTP.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{mpsc, Once};
use std::time::Duration;

use keyclerk::config::{Settings, EMBEDDED_CONFIG};
use keyclerk::startup::{self, ServeOptions, ADMIN_TOKEN_FILE};
use serde_json::{json, Value};
use tempfile::TempDir;

/// A running server and the directories it owns.
pub struct TestServer {
    pub port: u16,
    /// The `[metrics] listen` port, when the settings set one.
    pub metrics_port: Option<u16>,
    pub admin: String,
    dirs: Option<Dirs>,
    stop: actix_web::dev::ServerHandle,
}

/// The storage engine a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The embedded SQLite file in the data directory.
    Sqlite,
    /// A fresh database of the PostgreSQL server `scripts/test.sh` starts.
    Postgres,
}

/// Turns `fn name(engine: Engine)` into the tests `name::sqlite` and
/// `name::postgres` (a module beside the function of the same name), for a test
/// that must hold on each storage engine. Written where `#[test]` would be:
///
/// ```text
/// both_engines!(a_mint_is_stored);
/// fn a_mint_is_stored(engine: Engine) {
///     let server = TestServer::start_on(engine);
/// ```
macro_rules! both_engines {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::helpers::Engine::Sqlite);
            }
            #[test]
            fn postgres() {
                super::$name($crate::helpers::Engine::Postgres);
            }
        }
    };
}
pub(crate) use both_engines;

/// The temporary home of one server (kept across restarts), and its PostgreSQL
/// database when it runs on that engine (dropped with it).
pub struct Dirs {
    pub root: TempDir,
    pub database: Option<crate::pg::Database>,
}

impl Dirs {
    /// Directories for a server on SQLite.
    pub fn new() -> Self {
        Self::on(Engine::Sqlite)
    }
    /// Directories for a server on `engine`: on PostgreSQL, with a fresh database.
    pub fn on(engine: Engine) -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
            database: match engine {
                Engine::Sqlite => None,
                Engine::Postgres => Some(crate::pg::Database::create()),
            },
        }
    }
    /// The database URL of a server on PostgreSQL.
    pub fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(|db| db.url.as_str())
    }
    /// Runs `sql` on the database of these directories, whichever the engine (on
    /// SQLite, with the server stopped).
    pub fn execute(&self, sql: &str) {
        match self.database_url() {
            Some(url) => crate::pg::execute(url, sql),
            None => self.sqlite().execute_batch(sql).unwrap(),
        }
    }
    /// The one number `sql` answers on the database of these directories.
    pub fn query_i64(&self, sql: &str) -> i64 {
        match self.database_url() {
            Some(url) => crate::pg::query_i64(url, sql),
            None => self.sqlite().query_row(sql, [], |r| r.get(0)).unwrap(),
        }
    }
    fn sqlite(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data().join("keyclerk.db")).unwrap()
    }
    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }
    pub fn keys(&self) -> PathBuf {
        self.root.path().join("keys")
    }
    pub fn settings(&self) -> Settings {
        let mut s = Settings::from_toml("test config", EMBEDDED_CONFIG, Vec::new())
            .unwrap()
            .settings;
        s.listen = "127.0.0.1:0".into();
        s.data_dir = self.data();
        s.keys_dir = self.keys();
        s.issuer = "keyclerk-test".into();
        s.database.url = self.database_url().map(str::to_owned);
        // A test server serves a handful of clients: one worker, not one per CPU.
        s.workers = 1;
        s
    }
}

/// A response, whatever its status.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status, body: {}",
            self.body
        );
        self.body
    }
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.code(), code, "body: {}", self.body);
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(self.body["status"], status);
    }
}

/// With `TEST_LOG` set (to a filter such as `debug` or `keyclerk=trace`; empty means
/// `debug`), in-process servers log into the output of the test that started them,
/// which the harness shows when that test fails.
fn init_test_log() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Some(filter) = test_log() {
            // Another logger already set (none is, here) would only mean no test log.
            let _ = env_logger::Builder::new()
                .parse_filters(&filter)
                .is_test(true)
                .try_init();
        }
    });
}

/// The `TEST_LOG` filter, if the switch is on.
pub fn test_log() -> Option<String> {
    std::env::var("TEST_LOG").ok().map(|f| {
        if f.trim().is_empty() {
            "debug".into()
        } else {
            f
        }
    })
}

/// A server started by [`try_start`]: its port, its metrics port, its stop handle.
pub type Started = (u16, Option<u16>, actix_web::dev::ServerHandle);

/// Starts a server on `dirs` with `settings`; returns the error text if start-up fails.
pub fn try_start(settings: Settings, force: bool) -> Result<Started, String> {
    init_test_log();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match startup::build(&settings, ServeOptions { force }).await {
                Ok(app) => {
                    let _ = tx.send(Ok((app.port(), app.metrics_port(), app.handle())));
                    let _ = app.run_until_stopped().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap()
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_in(Dirs::new())
    }

    /// A server on `engine`.
    pub fn start_on(engine: Engine) -> Self {
        Self::start_in(Dirs::on(engine))
    }

    pub fn start_in(dirs: Dirs) -> Self {
        Self::start_with(dirs, |_| {})
    }

    pub fn start_with(dirs: Dirs, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = dirs.settings();
        change(&mut settings);
        let (port, metrics_port, stop) = try_start(settings, false).unwrap();
        let admin = std::fs::read_to_string(dirs.data().join(ADMIN_TOKEN_FILE))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            port,
            metrics_port,
            admin,
            dirs: Some(dirs),
            stop,
        }
    }

    pub fn dirs(&self) -> &Dirs {
        self.dirs.as_ref().unwrap()
    }

    /// Stops the server and hands back its directories for a restart.
    pub fn stop(mut self) -> Dirs {
        actix_web::rt::System::new().block_on(self.stop.stop(true));
        self.dirs.take().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> ureq::Request {
        let mut r = ureq::request(method, &self.url(path)).timeout(Duration::from_secs(60));
        if let Some(t) = token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        r
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        into_resp(self.request("GET", path, token).call())
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        into_resp(self.request("POST", path, token).send_json(body))
    }

    pub fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Resp {
        into_resp(
            self.request("POST", path, token)
                .set("Content-Type", content_type)
                .send_bytes(body),
        )
    }

    /// A token of `role` made through the API.
    pub fn token(&self, role: &str) -> String {
        let body = self
            .post(
                "/v1/tokens",
                Some(&self.admin),
                &json!({"role": role, "name": format!("{role} test")}),
            )
            .expect(201);
        body["secret"].as_str().unwrap().to_owned()
    }

    /// Mints with the admin token; returns the response.
    pub fn mint(&self, body: Value) -> Resp {
        self.post("/v1/licenses", Some(&self.admin), &body)
    }

    /// The server's public keys as (kid, k4.public).
    pub fn public_keys(&self) -> Vec<(String, String)> {
        self.get("/v1/keys", None).expect(200)["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["kid"].as_str().unwrap().to_owned(),
                    k["public_key"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Runs the keyclerk binary against this server's directories.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_in(self.dirs(), args)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Sending the stop command is enough; nobody waits for it.
        drop(self.stop.stop(false));
    }
}

pub fn into_resp(r: Result<ureq::Response, ureq::Error>) -> Resp {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let content_type = resp.header("content-type").unwrap_or("").to_owned();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or("").to_owned();
            (n, v)
        })
        .collect();
    let text = resp.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp {
        status,
        content_type,
        body,
        headers,
    }
}

/// Runs the keyclerk binary in `dirs` (no config.toml there: the built-in one), on
/// their database.
pub fn cli_in(dirs: &Dirs, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyclerk"));
    cmd.args(args)
        .current_dir(dirs.root.path())
        .env("KEYCLERK_DATA_DIR", dirs.data())
        .env("KEYCLERK_KEYS_DIR", dirs.keys());
    if let Some(url) = dirs.database_url() {
        cmd.env("KEYCLERK_DATABASE__URL", url);
    }
    cmd.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The repository root (for scripts under tests/).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Flips one character in the middle of a token's signed part.
pub fn flip_one_char(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let i = "v4.public.".len() + 20;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

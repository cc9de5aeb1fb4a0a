//! `keyclerk serve` as its own process (for SIGKILL, backups and log capture).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::{test_log, Dirs};

/// Keeps a line of the server's log; with `TEST_LOG` set, also prints it to the
/// test's output, which the harness shows when the test fails.
fn keep(log: &Mutex<String>, line: &str) {
    if test_log().is_some() {
        eprintln!("{line}");
    }
    let mut l = log.lock().unwrap();
    l.push_str(line);
    l.push('\n');
}

/// The server's log level: info, or `TEST_LOG`'s filter; either way start-up logs
/// the port at info, which `spawn` waits for.
fn process_log_filter() -> String {
    test_log().map_or("info".into(), |f| format!("{f},keyclerk::startup=info"))
}

/// A server process on a free port; everything it logs is kept.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts `keyclerk serve` on `dirs` with extra environment variables.
    pub fn spawn(dirs: &Dirs, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyclerk"));
        cmd.arg("serve")
            .current_dir(dirs.root.path())
            .env("KEYCLERK_DATA_DIR", dirs.data())
            .env("KEYCLERK_KEYS_DIR", dirs.keys())
            .env("KEYCLERK_LISTEN", "127.0.0.1:0")
            .env("KEYCLERK_LOG", process_log_filter())
            .env("KEYCLERK_WORKERS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = dirs.database_url() {
            cmd.env("KEYCLERK_DATABASE__URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    keep(&log, &line);
                }
            });
        }
        let mut lines = BufReader::new(stderr).lines();
        let port = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "the server ended before it listened: {}",
                    log.lock().unwrap()
                );
            };
            keep(&log, &line);
            // The digits after the words, in a text or a JSON line alike.
            if let Some(p) = line.split("listening on port ").nth(1) {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                break digits.parse::<u16>().unwrap();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        let drain = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    keep(&log, &line);
                }
            })
        };
        Self {
            child,
            port,
            log,
            drain: Some(drain),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit; returns everything the server logged.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "no exit 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(d) = self.drain.take() {
            d.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }
}

/// A server still running when its test ends (or panics) is killed.
impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The admin token written on the first start.
pub fn admin_token(dirs: &Dirs) -> String {
    std::fs::read_to_string(dirs.data().join(keyclerk::startup::ADMIN_TOKEN_FILE))
        .unwrap()
        .trim()
        .to_owned()
}

/// A client with a timeout long enough for a loaded CI machine.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

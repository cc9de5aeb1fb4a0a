//! The same loads driven by `wrk` (Debian's package) with `scripts/wrk/keyclerk.lua`,
//! so that the cost of keyclerk-bench's own client shows beside its figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The script, as committed in the repository.
const SCRIPT: &str = include_str!("../../../scripts/wrk/keyclerk.lua");

/// wrk's threads: one per core, as its manual suggests.
const THREADS: usize = 2;

/// What one `wrk` run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Answers with another status, and socket errors.
    pub failed: u64,
    /// The run's length.
    pub elapsed: Duration,
    /// Latency quantiles and the maximum, in milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What a run sends (see the script).
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Activate,
    Validate,
    Mint,
    Batch,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Activate => "activate",
            Self::Validate => "validate",
            Self::Mint => "mint",
            Self::Batch => "batch",
        }
    }
}

/// Where the script and its input files go.
pub struct Wrk {
    dir: PathBuf,
    runs: u64,
}

impl Wrk {
    /// Writes the script into `dir`; fails when `wrk` cannot be run.
    pub fn new(dir: &Path) -> Result<Self, String> {
        let version = Command::new("wrk")
            .arg("--version")
            .output()
            .map_err(|e| format!("wrk: {e} (install Debian's package: apt-get install wrk)"))?;
        // `wrk --version` prints its banner and exits with status 1.
        if version.stdout.is_empty() && version.stderr.is_empty() {
            return Err("wrk printed nothing for --version".into());
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(dir.join("keyclerk.lua"), SCRIPT)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            runs: 0,
        })
    }

    /// Runs `mode` for `seconds` (whole seconds, at least one) on `connections`
    /// connections; `lines` is the script's input file (keys, key and fingerprint
    /// pairs, or the admin token).
    pub fn run(
        &mut self,
        port: u16,
        connections: usize,
        seconds: u64,
        mode: Mode,
        lines: &[String],
    ) -> Result<Measured, String> {
        self.runs += 1;
        let input = self.dir.join(format!("input-{}.txt", self.runs));
        std::fs::write(&input, lines.join("\n") + "\n")
            .map_err(|e| format!("{}: {e}", input.display()))?;
        let tag = format!("{}-{}", std::process::id(), self.runs);
        let output = Command::new("wrk")
            .arg(format!("-t{THREADS}"))
            .arg(format!("-c{connections}"))
            .arg(format!("-d{}s", seconds.max(1)))
            .arg("--timeout")
            .arg("10s")
            .arg("-s")
            .arg(self.dir.join("keyclerk.lua"))
            .arg(format!("http://127.0.0.1:{port}"))
            .arg("--")
            .arg(mode.name())
            .arg(&input)
            .arg(&tag)
            .output()
            .map_err(|e| format!("wrk: {e}"))?;
        let _ = std::fs::remove_file(&input);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("kc-wrk "))
            .ok_or_else(|| {
                format!(
                    "wrk {}: no result line; it printed:\n{stdout}{}",
                    mode.name(),
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
        parse(line)
    }
}

/// The script's result line.
fn parse(line: &str) -> Result<Measured, String> {
    let field = |name: &str| -> Result<u64, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("wrk: no {name} in {line:?}"))
    };
    let requests = field("requests")?;
    let failed = field("non2xx")? + field("socket_errors")?;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(Measured {
        ok: requests.saturating_sub(field("non2xx")?),
        failed,
        elapsed: Duration::from_micros(field("duration_us")?),
        p50_ms: ms(field("p50_us")?),
        p99_ms: ms(field("p99_us")?),
        max_ms: ms(field("max_us")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_is_read_field_by_field() {
        let m = parse(
            "kc-wrk requests=1000 duration_us=2000000 non2xx=10 socket_errors=2 \
             p50_us=1500 p99_us=9000 max_us=12000",
        )
        .unwrap();
        assert_eq!((m.ok, m.failed), (990, 12));
        assert_eq!(m.elapsed, Duration::from_secs(2));
        assert_eq!((m.p50_ms, m.p99_ms, m.max_ms), (1.5, 9.0, 12.0));
        assert!(parse("kc-wrk requests=1").is_err());
    }
}

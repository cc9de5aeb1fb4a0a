//! `keyclerk-bench`: starts keyclerk on a temporary directory, drives it over real
//! HTTP and prints throughput and latency beside the machine's ceilings (raw
//! Ed25519, an actix-web hello-world over the same client).
//!
//! Run with `cargo run --release --bin keyclerk-bench` (`--help` for the knobs);
//! `--engine postgres` compares the PostgreSQL engine with SQLite instead.

mod console;
mod delivery;
mod engines;
mod http;
mod load;
mod offline;
mod postgres;
mod server;
mod single;
mod webhooks;
mod wrk;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use keyclerk_client::Verifier;
use serde_json::Value;

use load::{Span, Stats};
use server::{Limits, Server, Workspace};
use wrk::{Mode, Wrk};

/// Benchmark keyclerk against the machine's limits.
#[derive(Debug, Parser)]
#[command(name = "keyclerk-bench")]
struct Args {
    /// Concurrent keep-alive connections for each HTTP load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds measured for each HTTP load (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of warm-up before each HTTP load, not counted.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Licenses in the small database.
    #[arg(long, default_value_t = 10_000)]
    small: u64,
    /// Licenses in the large database (0: skip it).
    #[arg(long, default_value_t = 1_000_000)]
    large: u64,
    /// Where the temporary server directories go (default: the system's temp dir).
    /// Put it on the disk you would deploy on: fsync cost is part of the figures.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the server directories afterwards.
    #[arg(long)]
    keep: bool,
    /// Run only these parts, comma-separated (for profiling one load): hello, mint,
    /// payments, batch, activate, validate, offline, limits (activate and validate
    /// again with the rate limits on), single (one license, fresh and holding 50,000
    /// machines), large, webhooks, delivery (the key by mail after a payment, to an
    /// SMTP server of the benchmark's own), console (the support console's pages on a
    /// database of --large licenses of its own; alone with `--engine postgres`, on
    /// PostgreSQL). Seeding always runs.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Measure with keyclerk-bench's own client only, not with `wrk` as well.
    #[arg(long)]
    no_wrk: bool,
    /// Events per second of the webhook delivery load (mints, each one message).
    #[arg(long, default_value_t = 1000.0)]
    webhook_rate: f64,
    /// Orders per second of the steady mail delivery load.
    #[arg(long, default_value_t = 50.0)]
    delivery_rate: f64,
    /// Orders of the mail delivery burst, sent at once.
    #[arg(long, default_value_t = 1000)]
    delivery_burst: u64,
    /// Concurrent connections of each console page's load (agents at once).
    #[arg(long, default_value_t = 8)]
    console_connections: usize,
    /// The servers' log level (the shipped default is "info": a line per request).
    #[arg(long, default_value = "info")]
    log: String,
    /// `postgres`: measure activate, validate, mint (single and batches), payments
    /// and one license (fresh and holding 50,000 machines) on SQLite and on
    /// PostgreSQL with one and with two keyclerk instances, and print the ratios (on a
    /// throwaway PostgreSQL the benchmark starts, fsync and synchronous_commit on,
    /// unless --database-url names a server).
    #[arg(long, value_enum, default_value_t = Engine::Sqlite)]
    engine: Engine,
    /// With `--engine postgres`: the server to use instead of a throwaway one (its
    /// user must be allowed to create databases; the benchmark makes one per setup
    /// beside the URL's database and drops them at the end).
    #[arg(long)]
    database_url: Option<String>,
    /// With `--engine postgres`: sample what the server's backends wait for during
    /// each load and list the statements run (pg_stat_statements, which the
    /// throwaway server then loads). For profiling: the sampling costs a little.
    #[arg(long)]
    postgres_stats: bool,
}

/// The engine(s) `keyclerk-bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Engine {
    /// SQLite alone: the whole benchmark.
    Sqlite,
    /// SQLite and PostgreSQL side by side: the loads of the server's writes and reads.
    Postgres,
}

impl Args {
    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    match argv.get(1).and_then(|a| a.to_str()) {
        Some(server::AS_SERVER) => {
            let rest = argv.iter().skip(2).cloned();
            return keyclerk::cli::main_from(
                std::iter::once(OsString::from("keyclerk")).chain(rest),
            );
        }
        Some(server::AS_HELLO) => return server::hello_world_main(),
        _ => {}
    }
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyclerk-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Rate and latencies of one HTTP load, from either client.
#[derive(Debug, Clone)]
pub(crate) struct Figures {
    /// Accepted requests per second.
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    failed: u64,
    first_failure: Option<String>,
}

impl From<&Stats> for Figures {
    fn from(s: &Stats) -> Self {
        Self {
            rate: s.rate(),
            p50_ms: s.quantile_ms(0.5),
            p99_ms: s.quantile_ms(0.99),
            max_ms: s.quantile_ms(1.0),
            failed: s.failed,
            first_failure: s.first_failure.clone(),
        }
    }
}

impl From<&wrk::Measured> for Figures {
    fn from(m: &wrk::Measured) -> Self {
        Self {
            rate: m.ok as f64 / m.elapsed.as_secs_f64().max(1e-9),
            p50_ms: m.p50_ms,
            p99_ms: m.p99_ms,
            max_ms: m.max_ms,
            failed: m.failed,
            first_failure: None,
        }
    }
}

/// Which client drove a load.
pub(crate) const OWN: &str = "keyclerk-bench";
/// The other client.
pub(crate) const WRK: &str = "wrk";

/// One line of the results table.
pub(crate) struct Row {
    name: String,
    client: &'static str,
    limits: &'static str,
    figures: Option<Figures>,
    /// Units per second (requests, keys or verifications).
    rate: f64,
    unit: &'static str,
    ratio: Option<(f64, &'static str)>,
}

impl Row {
    pub(crate) fn http(
        name: &str,
        (client, limits): (&'static str, Limits),
        figures: Figures,
        unit: &'static str,
        per_request: f64,
        ceiling: Option<f64>,
    ) -> Self {
        let rate = figures.rate * per_request;
        Self {
            name: name.to_owned(),
            client,
            limits: limits.label(),
            ratio: ceiling.map(|c| (figures.rate / c, "hello-world")),
            figures: Some(figures),
            rate,
            unit,
        }
    }

    /// The row of `name` measured by `client` with rate limits `limits`.
    pub(crate) fn is(&self, name: &str, client: &str, limits: &str) -> bool {
        self.name.starts_with(name) && self.client == client && self.limits == limits
    }
}

/// Figures of the large database.
struct Large {
    resident: (u64, u64),
    activate: f64,
    validate: f64,
    startup: Duration,
    peak: u64,
    seeding_peak: u64,
    seeded: f64,
    size: u64,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A target of the issue, checked against a figure.
pub(crate) struct Target {
    what: String,
    met: bool,
}

pub(crate) fn target(what: String, met: bool) -> Target {
    Target { what, met }
}

pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn run(args: &Args) -> Result<(), String> {
    let base = args
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("keyclerk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let outcome = match args.engine {
        Engine::Sqlite => bench(args, &base),
        Engine::Postgres if args.only == ["console"] => console::on_postgres(args, &base),
        Engine::Postgres => engines::compare(args, &base),
    };
    if !args.keep {
        let _ = std::fs::remove_dir_all(&base);
    }
    outcome
}

fn describe_machine(base: &Path) {
    let cores = cores();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or("unknown".into(), |kb| {
            format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0)
        });
    println!("## Machine\n");
    println!("- cores: {cores}; CPU: {cpu}; memory: {memory}");
    println!("- server directories under {}", base.display());
    println!("- load generator: this process, one thread, same machine\n");
}

/// Runs `mode` with `wrk` beside a load of keyclerk-bench's own client, unless
/// `--no-wrk`; its row goes after the own client's.
#[expect(clippy::too_many_arguments, reason = "one call per load, each named")]
fn with_wrk(
    wrk: &mut Option<Wrk>,
    rows: &mut Vec<Row>,
    name: &str,
    limits: Limits,
    port: u16,
    conns: usize,
    seconds: u64,
    (mode, lines): (Mode, &[String]),
    (unit, per_request, ceiling): (&'static str, f64, Option<f64>),
) -> Result<(), String> {
    let Some(wrk) = wrk.as_mut() else {
        return Ok(());
    };
    let measured = wrk.run(port, conns, seconds, mode, lines)?;
    rows.push(Row::http(
        name,
        (WRK, limits),
        Figures::from(&measured),
        unit,
        per_request,
        ceiling,
    ));
    Ok(())
}

/// `key fingerprint` lines of the machines `activated` (request numbers of
/// [`activate`]), for wrk's validations.
fn machines(keys: &[String], activated: &[u64]) -> Vec<String> {
    activated
        .iter()
        .map(|&i| {
            format!(
                "{} {}",
                keys[(i % keys.len() as u64) as usize],
                fingerprint(i)
            )
        })
        .collect()
}

fn bench(args: &Args, base: &Path) -> Result<(), String> {
    let started = Instant::now();
    describe_machine(base);
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: io::Error| format!("{what}: {e}")
    };
    let timed = Span::Timed {
        warmup: secs(args.warmup),
        measure: secs(args.seconds),
    };
    let conns = args.connections;
    let wrk_seconds = args.seconds.round().max(1.0) as u64;
    let mut wrk = if args.no_wrk {
        None
    } else {
        Some(Wrk::new(&base.join("wrk"))?)
    };
    let off = (OWN, Limits::Off);

    // Ceilings.
    let raw = offline::raw(secs(2.0), 300);
    let mut rows = Vec::new();
    let mut ceiling = None;
    if args.wants("hello") {
        let hello = Server::hello_world().map_err(err("hello-world server"))?;
        let body = r#"{"license_key":"v4.public.eyJ4IjoxfQ","fingerprint":"bench-00000001"}"#;
        let request = http::post("/hello", None, body);
        let stats = load::run(
            &[hello.port],
            conns,
            timed,
            Arc::new(move |_| request.clone()),
            Arc::new(|_, status, _| status == 200),
        )
        .map_err(err("hello-world load"))?;
        hello.stop().map_err(err("stopping hello-world"))?;
        ceiling = Some(stats.rate());
        rows.push(Row::http(
            "hello-world (actix-web, ceiling)",
            off,
            Figures::from(&stats),
            "req/s",
            1.0,
            None,
        ));
        eprintln!("hello-world measured");
    }
    let req = ("req/s", 1.0, ceiling);

    // The small database.
    let small = Workspace::new(base, "small", &args.log).map_err(err("small workspace"))?;
    let server = Server::keyclerk(&small.config()).map_err(err("keyclerk (small)"))?;
    let token = small.admin_token().map_err(err("admin token"))?;
    let (keys, seed_small) = seed(server.port, &token, "small", args.small, 1)?;
    let keys_document = fetch(server.port, "/v1/keys")?;
    let mut certificates = Vec::new();
    let activate_name = format!("activate, new seat ({} licenses)", args.small);
    let validate_name = format!("validate ({} licenses)", args.small);
    let mut activated = Vec::new();
    if args.wants("activate") || args.wants("validate") || args.wants("offline") {
        let (stats, granted, certs) = activate(&[server.port], conns, timed, Arc::clone(&keys))?;
        certificates = certs;
        activated = granted;
        rows.push(Row::http(
            &activate_name,
            off,
            Figures::from(&stats),
            "req/s",
            1.0,
            ceiling,
        ));
        with_wrk(
            &mut wrk,
            &mut rows,
            &activate_name,
            Limits::Off,
            server.port,
            conns,
            wrk_seconds,
            (Mode::Activate, &keys),
            req,
        )?;
        if args.wants("validate") {
            let stats = validate(&[server.port], conns, timed, &keys, &activated)?;
            rows.push(Row::http(
                &validate_name,
                off,
                Figures::from(&stats),
                "req/s",
                1.0,
                ceiling,
            ));
            with_wrk(
                &mut wrk,
                &mut rows,
                &validate_name,
                Limits::Off,
                server.port,
                conns,
                wrk_seconds,
                (Mode::Validate, &machines(&keys, &activated)),
                req,
            )?;
        }
    }
    if args.wants("mint") {
        let stats = mint(&[server.port], &token, conns, timed, 1)?;
        rows.push(Row::http(
            "mint, single",
            off,
            Figures::from(&stats),
            "req/s",
            1.0,
            ceiling,
        ));
        with_wrk(
            &mut wrk,
            &mut rows,
            "mint, single",
            Limits::Off,
            server.port,
            conns,
            wrk_seconds,
            (Mode::Mint, std::slice::from_ref(&token)),
            req,
        )?;
    }
    if args.wants("payments") {
        let stats = payments(&[server.port], conns, timed)?;
        let mut row = Row::http(
            "payments, Stripe checkout.session.completed",
            off,
            Figures::from(&stats),
            "req/s",
            1.0,
            ceiling,
        );
        if let Some(plain) = rows.iter().find(|r| r.is("mint, single", OWN, "off")) {
            row.ratio = Some((row.rate / plain.rate, "mint, single"));
        }
        rows.push(row);
    }
    if args.wants("batch") {
        let raw_all = raw.sign * cores() as f64;
        let stats = mint(&[server.port], &token, conns, timed, 100)?;
        let name = "mint, batches of 100";
        let mut row = Row::http(name, off, Figures::from(&stats), "keys/s", 100.0, None);
        row.ratio = Some((row.rate / raw_all, "raw sign, all cores"));
        rows.push(row);
        with_wrk(
            &mut wrk,
            &mut rows,
            name,
            Limits::Off,
            server.port,
            conns,
            wrk_seconds,
            (Mode::Batch, std::slice::from_ref(&token)),
            ("keys/s", 100.0, None),
        )?;
        if let Some(row) = rows.last_mut().filter(|r| r.client == WRK) {
            row.ratio = Some((row.rate / raw_all, "raw sign, all cores"));
        }
    }
    let mut small_peak = server.peak_memory().map_err(err("peak memory"))?;
    let small_resident = server.resident().map_err(err("resident memory"))?;
    server.stop().map_err(err("stopping keyclerk"))?;
    eprintln!("small database measured");

    // The same activations and validations with the rate limits on, as shipped.
    if args.wants("limits") && !activated.is_empty() {
        let limits = Limits::Shipped;
        let on = (OWN, limits);
        let server = Server::keyclerk_with(&small.config(), limits)
            .map_err(err("keyclerk (small, limits on)"))?;
        // New machines: numbers past those the first load activated.
        let first = activated.iter().max().map_or(0, |m| m + 1) + 10_000_000;
        let (stats, _, _) = activate_from(&[server.port], conns, timed, Arc::clone(&keys), first)?;
        rows.push(Row::http(
            &activate_name,
            on,
            Figures::from(&stats),
            "req/s",
            1.0,
            ceiling,
        ));
        with_wrk(
            &mut wrk,
            &mut rows,
            &activate_name,
            limits,
            server.port,
            conns,
            wrk_seconds,
            (Mode::Activate, &keys),
            req,
        )?;
        let stats = validate(&[server.port], conns, timed, &keys, &activated)?;
        rows.push(Row::http(
            &validate_name,
            on,
            Figures::from(&stats),
            "req/s",
            1.0,
            ceiling,
        ));
        with_wrk(
            &mut wrk,
            &mut rows,
            &validate_name,
            limits,
            server.port,
            conns,
            wrk_seconds,
            (Mode::Validate, &machines(&keys, &activated)),
            req,
        )?;
        small_peak = small_peak.max(server.peak_memory().map_err(err("peak memory"))?);
        server.stop().map_err(err("stopping keyclerk"))?;
        eprintln!("small database measured with the rate limits on");
    }

    // One license, fresh and holding many machines.
    let mut single_peak = 0;
    if args.wants("single") {
        let (single_rows, peak) = single::measure(args, base, &mut wrk, ceiling)?;
        rows.extend(single_rows);
        single_peak = peak;
        eprintln!("one license measured");
    }

    // Webhook delivery at a steady event rate.
    let mut webhook_figures = None;
    if args.wants("webhooks") {
        webhook_figures = Some(webhooks::run(
            base,
            &args.log,
            args.webhook_rate,
            args.seconds.max(10.0),
        )?);
        eprintln!("webhook delivery measured");
    }

    // Mail delivery: from a payment to the key in the buyer's mailbox.
    let mut delivery_figures = Vec::new();
    if args.wants("delivery") {
        delivery_figures = delivery::run(
            base,
            &args.log,
            args.delivery_rate,
            args.seconds.max(10.0),
            args.delivery_burst,
        )?;
        eprintln!("mail delivery measured");
    }

    // Offline checks, with the machine quiet again.
    let mut offline_ratios = Vec::new();
    if args.wants("offline") {
        let verifier = Verifier::from_keys_document(&keys_document)
            .map_err(|e| format!("GET /v1/keys: {e}"))?;
        for (name, measured) in offline::client(secs(4.0), &verifier, &keys, &certificates) {
            offline_ratios.push((name, measured.ratio()));
            rows.push(Row {
                name: format!("offline verify: {name} (1 core)"),
                client: OWN,
                limits: "",
                figures: None,
                rate: measured.rate,
                unit: "/s",
                ratio: Some((measured.ratio(), "raw verify_strict, interleaved")),
            });
        }
    }

    // The large database.
    let mut large_figures = None;
    if args.large > 0 && args.wants("large") {
        let large = Workspace::new(base, "large", &args.log).map_err(err("large workspace"))?;
        let server = Server::keyclerk(&large.config()).map_err(err("keyclerk (large)"))?;
        let token = large.admin_token().map_err(err("admin token"))?;
        let every = (args.large / 20_000).max(1);
        let (sample, seeded) = seed(server.port, &token, "large", args.large, every)?;
        let seeding_peak = server.peak_memory().map_err(err("peak memory"))?;
        server.stop().map_err(err("stopping keyclerk"))?;
        let size = large.database_size();
        eprintln!("large database built");
        let server = Server::keyclerk(&large.config()).map_err(err("keyclerk (large, restart)"))?;
        let startup = server.startup;
        let (activate_large, activated, _) =
            activate(&[server.port], conns, timed, Arc::clone(&sample))?;
        let name = format!("activate, new seat ({} licenses)", args.large);
        rows.push(Row::http(
            &name,
            off,
            Figures::from(&activate_large),
            "req/s",
            1.0,
            ceiling,
        ));
        with_wrk(
            &mut wrk,
            &mut rows,
            &name,
            Limits::Off,
            server.port,
            conns,
            wrk_seconds,
            (Mode::Activate, &sample),
            req,
        )?;
        let validate_large = validate(&[server.port], conns, timed, &sample, &activated)?;
        let name = format!("validate ({} licenses)", args.large);
        rows.push(Row::http(
            &name,
            off,
            Figures::from(&validate_large),
            "req/s",
            1.0,
            ceiling,
        ));
        with_wrk(
            &mut wrk,
            &mut rows,
            &name,
            Limits::Off,
            server.port,
            conns,
            wrk_seconds,
            (Mode::Validate, &machines(&sample, &activated)),
            req,
        )?;
        let peak = server.peak_memory().map_err(err("peak memory"))?;
        let resident = server.resident().map_err(err("resident memory"))?;
        server.stop().map_err(err("stopping keyclerk"))?;
        large_figures = Some(Large {
            resident,
            activate: activate_large.rate(),
            validate: validate_large.rate(),
            startup,
            peak,
            seeding_peak,
            seeded,
            size,
        });
    }

    // The support console's pages on a large database of their own.
    let mut console = None;
    if args.large > 0 && args.wants("console") {
        let mut measured = console::measure(args, base, None)?;
        rows.append(&mut measured.rows);
        console = Some(measured);
        eprintln!("console pages measured");
    }

    // Report.
    println!("## Ceilings (one core unless said)\n");
    println!("| ceiling | rate |");
    println!("|---|---:|");
    println!(
        "| ed25519-dalek sign (300-byte message) | {:.0}/s |",
        raw.sign
    );
    println!(
        "| ed25519-dalek verify_strict | {:.0}/s |",
        raw.verify_strict
    );
    println!("| ed25519-dalek verify | {:.0}/s |", raw.verify);
    if let Some(ceiling) = ceiling {
        println!("| actix-web hello-world, {conns} connections, both cores | {ceiling:.0} req/s |");
    }
    println!();
    println!(
        "## Loads ({conns} connections, {}s measured after {}s warm-up by keyclerk-bench's \
         client; wrk: {THREADS} threads, {wrk_seconds}s right after it on the same server, \
         no warm-up of its own; synchronous = FULL)\n",
        args.seconds,
        args.warmup,
        THREADS = 2,
    );
    println!("| load | client | rate limits | rate | p50 ms | p99 ms | max ms | failed | ratio |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---|");
    for row in &rows {
        let (p50, p99, max, failed) =
            row.figures
                .as_ref()
                .map_or(("".into(), "".into(), "".into(), "".into()), |f| {
                    (
                        format!("{:.2}", f.p50_ms),
                        format!("{:.2}", f.p99_ms),
                        format!("{:.2}", f.max_ms),
                        f.failed.to_string(),
                    )
                });
        let ratio = row
            .ratio
            .map_or(String::new(), |(r, of)| format!("{r:.2} x {of}"));
        println!(
            "| {} | {} | {} | {:.0} {} | {p50} | {p99} | {max} | {failed} | {ratio} |",
            row.name, row.client, row.limits, row.rate, row.unit
        );
    }
    println!();
    println!(
        "Seeding over HTTP (batches of 1000, 4 connections): {} licenses at {:.0} keys/s.",
        args.small, seed_small
    );
    for row in &rows {
        if let Some(f) = row.figures.as_ref().and_then(|s| s.first_failure.as_ref()) {
            println!(
                "First failure of \"{}\" ({}, limits {}): {f}",
                row.name, row.client, row.limits
            );
        }
    }
    for note in console.iter().flat_map(|c| &c.notes) {
        println!("{note}");
    }
    println!(
        "Peak memory of the server ({} licenses, after all loads): {:.1} MB; resident at the end: {:.1} MB private, {:.1} MB file-backed and shared.",
        args.small,
        small_peak as f64 / 1e6,
        small_resident.0 as f64 / 1e6,
        small_resident.1 as f64 / 1e6
    );
    if single_peak > 0 {
        println!(
            "Peak memory of the server of one license: {:.1} MB.",
            single_peak as f64 / 1e6
        );
    }

    if let Some(w) = &webhook_figures {
        println!(
            "Webhook delivery to a local receiver: {} mints asked at {:.0}/s, {:.0}/s answered ({} licenses), one message each; pending messages at most {} in the first half of the run and {} in the second; the outbox empty {:.2} s after the last mint.",
            (w.target_rate * args.seconds.max(10.0)) as u64,
            w.target_rate,
            w.minted_rate,
            w.minted,
            w.max_pending.0,
            w.max_pending.1,
            w.drain.as_secs_f64()
        );
    }

    for d in &delivery_figures {
        println!(
            "Mail delivery, {}: {} orders from a verified Stripe webhook to the key accepted by a local SMTP server: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} lost, {} doubled.",
            d.name,
            d.orders,
            d.p50.as_secs_f64() * 1000.0,
            d.p99.as_secs_f64() * 1000.0,
            d.max.as_secs_f64() * 1000.0,
            d.lost,
            d.doubled
        );
    }

    let find = |name: &str| rows.iter().find(|r| r.is(name, OWN, "off"));
    let stat = |name: &str| find(name).and_then(|r| r.figures.as_ref());
    let mut targets = Vec::new();
    if let Some(f) = stat("activate, new seat") {
        targets.push(target(
            format!(
                "activate >= 10,000/s with p99 <= 25 ms: {:.0}/s, p99 {:.2} ms",
                f.rate, f.p99_ms
            ),
            f.rate >= 10_000.0 && f.p99_ms <= 25.0,
        ));
    }
    targets.extend(single::targets(&rows));
    for d in &delivery_figures {
        targets.push(target(
            format!(
                "mail delivery p99 < 2 s, none lost or doubled ({}): p99 {:.0} ms, {} lost, {} doubled",
                d.name,
                d.p99.as_secs_f64() * 1000.0,
                d.lost,
                d.doubled
            ),
            d.p99 < Duration::from_secs(2) && d.lost == 0 && d.doubled == 0,
        ));
    }
    if let Some(f) = stat("validate") {
        targets.push(target(
            format!(
                "validate >= 25,000/s with p99 <= 10 ms: {:.0}/s, p99 {:.2} ms",
                f.rate, f.p99_ms
            ),
            f.rate >= 25_000.0 && f.p99_ms <= 10.0,
        ));
    }
    if let Some(r) = find("mint, single") {
        targets.push(target(
            format!("mint single >= 8,000/s: {:.0}/s", r.rate),
            r.rate >= 8_000.0,
        ));
    }
    if let (Some(p), Some(m)) = (find("payments"), find("mint, single")) {
        targets.push(target(
            format!(
                "payments >= 0.7 x mint single: {:.0}/s, {:.2} x",
                p.rate,
                p.rate / m.rate
            ),
            p.rate >= 0.7 * m.rate,
        ));
    }
    if let Some(r) = find("mint, batches") {
        targets.push(target(
            format!("mint batches >= 40,000 keys/s: {:.0} keys/s", r.rate),
            r.rate >= 40_000.0,
        ));
    }
    for (name, ratio) in offline_ratios {
        targets.push(target(
            format!("offline verify ({name}) >= 0.9 x raw verify: {ratio:.2}"),
            ratio >= 0.9,
        ));
    }
    let mut peak_all = small_peak.max(single_peak);
    if let Some(Large {
        resident,
        activate: act,
        validate: val,
        startup,
        peak,
        seeding_peak,
        seeded,
        size,
    }) = large_figures
    {
        let small_act = stat("activate, new seat").map_or(0.0, |f| f.rate);
        let small_val = stat("validate").map_or(0.0, |f| f.rate);
        println!(
            "Large database: {} licenses seeded over HTTP at {seeded:.0} keys/s; {:.0} MB on disk.",
            args.large,
            size as f64 / 1e6
        );
        println!(
            "Start-up on the large database (spawn to listening): {:.3} s; peak memory after its loads {:.1} MB (while seeding: {:.1} MB).",
            startup.as_secs_f64(),
            peak as f64 / 1e6,
            seeding_peak as f64 / 1e6
        );
        println!(
            "Resident at the end on the large database: {:.1} MB private, {:.1} MB file-backed and shared.",
            resident.0 as f64 / 1e6,
            resident.1 as f64 / 1e6
        );
        targets.push(target(
            format!(
                "activate at {} >= 0.8 x at {}: {:.2}",
                args.large,
                args.small,
                act / small_act
            ),
            act / small_act >= 0.8,
        ));
        targets.push(target(
            format!(
                "validate at {} >= 0.8 x at {}: {:.2}",
                args.large,
                args.small,
                val / small_val
            ),
            val / small_val >= 0.8,
        ));
        peak_all = peak_all.max(peak).max(seeding_peak);
        targets.push(target(
            format!(
                "start-up on the large database <= 0.5 s: {:.3} s",
                startup.as_secs_f64()
            ),
            startup <= Duration::from_millis(500),
        ));
    }
    targets.extend(console.into_iter().flat_map(|c| c.targets));
    targets.push(target(
        format!("peak memory <= 100 MB: {:.1} MB", peak_all as f64 / 1e6),
        peak_all <= 100_000_000,
    ));
    println!("\n## Targets (keyclerk-bench's client, rate limits off)\n");
    for t in &targets {
        println!("- [{}] {}", if t.met { "met" } else { "NOT met" }, t.what);
    }
    println!("\nWhole run: {:.0} s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// A plain GET; the body as text.
fn fetch(port: u16, path: &str) -> Result<String, String> {
    let body: Arc<Mutex<Option<String>>> = Arc::default();
    let out = Arc::clone(&body);
    let request = http::get(path);
    load::run(
        &[port],
        1,
        Span::Requests(1),
        Arc::new(move |_| request.clone()),
        Arc::new(move |_, status, b| {
            if let Ok(mut o) = out.lock() {
                *o = Some(String::from_utf8_lossy(b).into_owned());
            }
            status == 200
        }),
    )
    .map_err(|e| format!("GET {path}: {e}"))?;
    let text = body.lock().ok().and_then(|mut b| b.take());
    text.ok_or_else(|| format!("GET {path}: no answer"))
}

/// Mints `count` licenses in batches of 1000 on 4 connections; keeps every
/// `every`-th key. Returns the keys and the rate in keys per second.
pub(crate) fn seed(
    port: u16,
    token: &str,
    tag: &str,
    count: u64,
    every: u64,
) -> Result<(Arc<Vec<String>>, f64), String> {
    const BATCH: u64 = 1000;
    let batches = count.div_ceil(BATCH);
    let token = token.to_owned();
    let tag = tag.to_owned();
    let make = move |i: u64| {
        let from = i * BATCH;
        let to = (from + BATCH).min(count);
        let items: Vec<String> = (from..to)
            .map(|n| format!(r#"{{"product":"bench","order_id":"seed-{tag}-{n}","customer_email":"c{n}@example.com"}}"#))
            .collect();
        http::post(
            "/v1/licenses/batch",
            Some(&token),
            &format!(r#"{{"licenses":[{}]}}"#, items.join(",")),
        )
    };
    let kept: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let out = Arc::clone(&kept);
    let check = move |i: u64, status: u16, body: &[u8]| {
        let Ok(doc) = serde_json::from_slice::<Value>(body) else {
            return false;
        };
        let Some(results) = doc["results"].as_array() else {
            return false;
        };
        let mut mine = Vec::new();
        for (j, r) in results.iter().enumerate() {
            if r["status"] != 201 {
                return false;
            }
            let n = i * BATCH + j as u64;
            if n.is_multiple_of(every) {
                mine.push((n, r["key"].as_str().unwrap_or_default().to_owned()));
            }
        }
        out.lock().map(|mut o| o.extend(mine)).is_ok() && status == 200
    };
    let stats = load::run(
        &[port],
        4,
        Span::Requests(batches),
        Arc::new(make),
        Arc::new(check),
    )
    .map_err(|e| format!("seeding: {e}"))?;
    if stats.failed > 0 {
        return Err(format!(
            "seeding failed {} times; first: {}",
            stats.failed,
            stats.first_failure.unwrap_or_default()
        ));
    }
    let mut kept = std::mem::take(&mut *kept.lock().map_err(|_| "poisoned")?);
    kept.sort();
    let rate = count as f64 / stats.elapsed.as_secs_f64();
    Ok((Arc::new(kept.into_iter().map(|(_, k)| k).collect()), rate))
}

/// Certificates with the fingerprints they were issued for.
type Certificates = Vec<(String, String)>;

fn fingerprint(i: u64) -> String {
    format!("bench-machine-{i:010}")
}

/// Activations of new machines, `i`-th on key `i mod n`. Returns the stats, the
/// request numbers that got a seat, and a few certificates with their fingerprints.
pub(crate) fn activate(
    ports: &[u16],
    conns: usize,
    span: Span,
    keys: Arc<Vec<String>>,
) -> Result<(Stats, Vec<u64>, Certificates), String> {
    activate_from(ports, conns, span, keys, 0)
}

/// As [`activate`], with the machines' numbers starting at `first` (machines not
/// seen before when numbers up to `first` were used); the request numbers returned
/// stay 0-based, so only those of `first = 0` are machine numbers for [`validate`].
pub(crate) fn activate_from(
    ports: &[u16],
    conns: usize,
    span: Span,
    keys: Arc<Vec<String>>,
    first: u64,
) -> Result<(Stats, Vec<u64>, Certificates), String> {
    let ks = Arc::clone(&keys);
    let make = move |i: u64| {
        let key = &ks[(i % ks.len() as u64) as usize];
        http::post(
            "/v1/activations",
            None,
            &format!(
                r#"{{"license_key":"{key}","fingerprint":"{}","name":"bench","platform":"linux"}}"#,
                fingerprint(first + i)
            ),
        )
    };
    let granted: Arc<Mutex<(Vec<u64>, Certificates)>> = Arc::default();
    let out = Arc::clone(&granted);
    let check = move |i: u64, status: u16, body: &[u8]| {
        if status != 201 {
            return false;
        }
        if let Ok(mut g) = out.lock() {
            g.0.push(i);
            if g.1.len() < 1000 {
                let certificate = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v["certificate"].as_str().map(str::to_owned));
                match certificate {
                    Some(c) => g.1.push((c, fingerprint(first + i))),
                    None => return false,
                }
            }
        }
        true
    };
    let stats = load::run(ports, conns, span, Arc::new(make), Arc::new(check))
        .map_err(|e| format!("activate: {e}"))?;
    let (activated, certificates) = std::mem::take(&mut *granted.lock().map_err(|_| "poisoned")?);
    if activated.is_empty() || certificates.is_empty() {
        return Err(format!(
            "no activation succeeded; first failure: {}",
            stats.first_failure.unwrap_or_default()
        ));
    }
    Ok((stats, activated, certificates))
}

/// Validations of activated machines (key and fingerprint), as an app's start does.
pub(crate) fn validate(
    ports: &[u16],
    conns: usize,
    span: Span,
    keys: &Arc<Vec<String>>,
    activated: &[u64],
) -> Result<Stats, String> {
    let pairs: Arc<Vec<Vec<u8>>> = Arc::new(
        activated
            .iter()
            .map(|&i| {
                let key = &keys[(i % keys.len() as u64) as usize];
                http::post(
                    "/v1/validate",
                    None,
                    &format!(
                        r#"{{"license_key":"{key}","fingerprint":"{}"}}"#,
                        fingerprint(i)
                    ),
                )
            })
            .collect(),
    );
    let make = move |i: u64| pairs[(i.wrapping_mul(7919) % pairs.len() as u64) as usize].clone();
    let check =
        |_: u64, status: u16, body: &[u8]| status == 200 && count(body, br#""code":"VALID""#) == 1;
    load::run(ports, conns, span, Arc::new(make), Arc::new(check))
        .map_err(|e| format!("validate: {e}"))
}

/// Mints with new order ids, one license per request or `per_request` in a batch.
pub(crate) fn mint(
    ports: &[u16],
    token: &str,
    conns: usize,
    span: Span,
    per_request: u64,
) -> Result<Stats, String> {
    let token = token.to_owned();
    let make = move |i: u64| {
        let item = |n: String| {
            format!(
                r#"{{"product":"bench","order_id":"{n}","customer_email":"buyer@example.com"}}"#
            )
        };
        if per_request == 1 {
            http::post("/v1/licenses", Some(&token), &item(format!("single-{i}")))
        } else {
            let items: Vec<String> = (0..per_request)
                .map(|j| item(format!("batch-{i}-{j}")))
                .collect();
            http::post(
                "/v1/licenses/batch",
                Some(&token),
                &format!(r#"{{"licenses":[{}]}}"#, items.join(",")),
            )
        }
    };
    let check = move |_: u64, status: u16, body: &[u8]| {
        if per_request == 1 {
            status == 201
        } else {
            status == 200 && count(body, br#""status":201"#) as u64 == per_request
        }
    };
    load::run(ports, conns, span, Arc::new(make), Arc::new(check)).map_err(|e| format!("mint: {e}"))
}

/// The Stripe webhook secret of the benchmark's server.
pub(crate) const STRIPE_SECRET: &str = "whsec_keyclerk_bench";

/// Verified Stripe-shaped `checkout.session.completed` events, each a new order
/// (its product named by `metadata.keyclerk_product`), signed as Stripe signs.
pub(crate) fn payments(ports: &[u16], conns: usize, span: Span) -> Result<Stats, String> {
    use keyclerk::domain::payments::{hex, hmac_sha256};
    let make = move |i: u64| {
        let t = keyclerk::domain::time::now().timestamp().to_string();
        let body = format!(
            r#"{{"id":"evt_bench_{i}","object":"event","type":"checkout.session.completed","created":{t},"data":{{"object":{{"id":"cs_bench_{i}","object":"checkout.session","mode":"payment","payment_status":"paid","customer_details":{{"email":"buyer@example.com"}},"metadata":{{"keyclerk_product":"bench"}},"payment_intent":"pi_bench_{i}"}}}}}}"#
        );
        let mac = hmac_sha256(
            STRIPE_SECRET.as_bytes(),
            &[t.as_bytes(), b".", body.as_bytes()],
        );
        http::post_with(
            "/v1/payments/stripe",
            &[("Stripe-Signature", format!("t={t},v1={}", hex(&mac)))],
            &body,
        )
    };
    let check = |_: u64, status: u16, body: &[u8]| {
        status == 200 && count(body, br#""outcome":"applied""#) == 1
    };
    load::run(ports, conns, span, Arc::new(make), Arc::new(check))
        .map_err(|e| format!("payments: {e}"))
}

/// How often `needle` occurs in `haystack`.
fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

//! `--engine postgres`: activate, validate, mint (single and in batches), payments,
//! and activation on one license fresh and holding [`HELD`] machines, on SQLite,
//! then on PostgreSQL with one and with two keyclerk instances (two processes on
//! one database, the connections split between them), in one run, with the ratios
//! to SQLite and the goals that hold on every engine.

use std::path::Path;
use std::sync::Arc;

use crate::load::{Span, Stats};
use crate::postgres::{Cluster, Sampler};
use crate::server::{Server, Workspace, SITE_SEATS};
use crate::single::{site_licenses, HELD};
use crate::{activate, activate_from, mint, payments, secs, seed, validate, Args};

/// The goals of the PostgreSQL engine on these cores, as fractions of SQLite.
const ACTIVATE_GOAL: f64 = 0.5;
const VALIDATE_GOAL: f64 = 0.7;
/// Goals of every engine: payments against plain mint, and one license holding
/// [`HELD`] machines against a fresh one.
const PAYMENTS_GOAL: f64 = 0.7;
const HELD_GOAL: f64 = 0.9;

/// One configuration measured.
struct Setup {
    name: &'static str,
    /// The PostgreSQL database, or none for SQLite.
    url: Option<String>,
    instances: usize,
}

/// What one load measured, with what the server's backends were doing meanwhile
/// (with `--postgres-stats`).
struct Load {
    stats: Stats,
    states: Vec<(String, f64)>,
}

/// The figures of one setup.
struct Measured {
    name: &'static str,
    seeded: f64,
    activate: Option<Load>,
    validate: Option<Load>,
    mint: Option<Load>,
    batch: Option<Load>,
    payments: Option<Load>,
    fresh: Option<Load>,
    held: Option<Load>,
    statements: Vec<(i64, f64, String)>,
}

/// Runs the comparison.
pub fn compare(args: &Args, base: &Path) -> Result<(), String> {
    let started = std::time::Instant::now();
    crate::describe_machine(base);
    let cluster = match &args.database_url {
        Some(url) => Cluster::external(url),
        None => Cluster::start(base, args.postgres_stats)?,
    };
    let settings = cluster.settings()?;
    println!("## PostgreSQL\n");
    match cluster.directory() {
        Some(dir) => println!(
            "- a throwaway cluster started by the benchmark in {} (the same disk as the \
             SQLite file unless --dir says otherwise), on 127.0.0.1",
            dir.display()
        ),
        None => println!("- the server of --database-url"),
    }
    let shown: Vec<String> = settings.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    println!("- {}\n", shown.join(", "));
    let setups = [
        Setup {
            name: "SQLite",
            url: None,
            instances: 1,
        },
        Setup {
            name: "PostgreSQL, 1 instance",
            url: Some(cluster.database("one")?),
            instances: 1,
        },
        Setup {
            name: "PostgreSQL, 2 instances",
            url: Some(cluster.database("two")?),
            instances: 2,
        },
    ];
    let mut all = Vec::new();
    for (i, setup) in setups.iter().enumerate() {
        all.push(measure(args, base, &cluster, setup, i)?);
        eprintln!("{} measured", setup.name);
    }
    report(args, &all);
    println!("\nWhole run: {:.0} s.", started.elapsed().as_secs_f64());
    Ok(())
}

fn measure(
    args: &Args,
    base: &Path,
    cluster: &Cluster,
    setup: &Setup,
    index: usize,
) -> Result<Measured, String> {
    let dir = format!("setup-{index}");
    let err = |what: &'static str| move |e: std::io::Error| format!("{what}: {e}");
    let workspace = Workspace::new(base, &dir, &args.log).map_err(err("workspace"))?;
    let url = setup.url.as_deref();
    // The first instance creates the keys and the admin token; the others share them.
    let mut servers = vec![Server::keyclerk_on(&workspace.config(), url).map_err(err("keyclerk"))?];
    for _ in 1..setup.instances {
        servers.push(Server::keyclerk_on(&workspace.config(), url).map_err(err("keyclerk"))?);
    }
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let token = workspace.admin_token().map_err(err("admin token"))?;
    let (keys, seeded) = seed(ports[0], &token, &dir, args.small, 1)?;
    let sampled = match url {
        Some(u) if args.postgres_stats => {
            cluster.reset_statements(u)?;
            Some(u)
        }
        _ => None,
    };
    let timed = Span::Timed {
        warmup: secs(args.warmup),
        measure: secs(args.seconds),
    };
    let conns = args.connections;
    let sample = |f: &mut dyn FnMut() -> Result<Stats, String>| -> Result<Load, String> {
        let sampler = sampled.map(Sampler::start);
        let stats = f()?;
        let states = match sampler {
            Some(s) => s.finish()?,
            None => Vec::new(),
        };
        Ok(Load { stats, states })
    };
    let mut measured = Measured {
        name: setup.name,
        seeded,
        activate: None,
        validate: None,
        mint: None,
        batch: None,
        payments: None,
        fresh: None,
        held: None,
        statements: Vec::new(),
    };
    if args.wants("activate") || args.wants("validate") {
        let mut activated = Vec::new();
        let load = sample(&mut || {
            let (stats, granted, _) = activate(&ports, conns, timed, Arc::clone(&keys))?;
            activated = granted;
            Ok(stats)
        })?;
        measured.activate = Some(load);
        if args.wants("validate") {
            measured.validate = Some(sample(&mut || {
                validate(&ports, conns, timed, &keys, &activated)
            })?);
        }
    }
    if args.wants("mint") || args.wants("payments") {
        measured.mint = Some(sample(&mut || mint(&ports, &token, conns, timed, 1))?);
    }
    if args.wants("payments") {
        measured.payments = Some(sample(&mut || payments(&ports, conns, timed))?);
    }
    if args.wants("batch") {
        measured.batch = Some(sample(&mut || mint(&ports, &token, conns, timed, 100))?);
    }
    if args.wants("single") {
        // Two site licenses: one measured fresh, one filled over HTTP first.
        let keys = site_licenses(ports[0], &token, &dir, 2)?;
        let one = |i: usize| Arc::new(vec![keys[i].clone()]);
        let (filled, _, _) =
            activate_from(&ports, conns, Span::Requests(HELD), one(1), 1_000_000_000)?;
        if filled.failed > 0 || filled.ok != HELD {
            return Err(format!(
                "filling a license on {}: {} of {HELD} activations failed; first: {}",
                setup.name,
                filled.failed,
                filled.first_failure.unwrap_or_default()
            ));
        }
        let capped = Span::Capped {
            warmup: secs(args.warmup),
            measure: secs(args.seconds),
            most: u64::from(SITE_SEATS) - HELD,
        };
        for (i, slot) in [(0, &mut measured.fresh), (1, &mut measured.held)] {
            *slot = Some(sample(&mut || {
                activate_from(&ports, conns, capped, one(i), 0).map(|(stats, _, _)| stats)
            })?);
        }
    }
    if let Some(u) = sampled {
        measured.statements = cluster.statements(u)?;
    }
    for server in servers {
        server.stop().map_err(err("stopping keyclerk"))?;
    }
    Ok(measured)
}

/// Names of the loads, in the order of the report.
const FRESH: &str = "activate, one license, fresh";
const FULL: &str = "activate, one license holding 50000";
const MINT: &str = "mint, single";
const PAYMENTS: &str = "payments, Stripe checkout.session.completed";

/// The loads of a setup, in the order of the report, with what one request is
/// (a batch mints 100 keys).
fn loads(m: &Measured) -> [(&'static str, Option<&Load>, f64, &'static str); 7] {
    [
        ("activate, new seat", m.activate.as_ref(), 1.0, "req/s"),
        ("validate", m.validate.as_ref(), 1.0, "req/s"),
        (MINT, m.mint.as_ref(), 1.0, "req/s"),
        (PAYMENTS, m.payments.as_ref(), 1.0, "req/s"),
        ("mint, batches of 100", m.batch.as_ref(), 100.0, "keys/s"),
        (FRESH, m.fresh.as_ref(), 1.0, "req/s"),
        (FULL, m.held.as_ref(), 1.0, "req/s"),
    ]
}

/// The rate of the load `name` of `m`, in its unit.
fn rate_of(m: &Measured, name: &str) -> Option<f64> {
    loads(m)
        .into_iter()
        .find(|l| l.0 == name)
        .and_then(|(_, load, per, _)| load.map(|l| l.stats.rate() * per))
}

fn report(args: &Args, all: &[Measured]) {
    println!(
        "## Loads ({} connections split across the instances, {}s measured after {}s warm-up, {} licenses)\n",
        args.connections, args.seconds, args.warmup, args.small
    );
    println!("| setup | load | rate | p50 ms | p99 ms | max ms | failed |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for m in all {
        for (name, load, per, unit) in loads(m) {
            if let Some(l) = load {
                let s = &l.stats;
                println!(
                    "| {} | {name} | {:.0} {unit} | {:.2} | {:.2} | {:.2} | {} |",
                    m.name,
                    s.rate() * per,
                    s.quantile_ms(0.5),
                    s.quantile_ms(0.99),
                    s.quantile_ms(1.0),
                    s.failed
                );
            }
        }
    }
    println!();
    for m in all {
        println!(
            "Seeding {} ({} licenses in batches of 1000 over HTTP): {:.0} keys/s.",
            m.name, args.small, m.seeded
        );
        for (name, load, _, _) in loads(m) {
            if let Some(f) = load.and_then(|l| l.stats.first_failure.as_ref()) {
                println!("First failure of {name} on {}: {f}", m.name);
            }
        }
    }
    let Some((sqlite, postgres)) = all.split_first() else {
        return;
    };
    println!("\n## PostgreSQL against SQLite\n");
    let mut header = String::from("| load | SQLite |");
    let mut rule = String::from("|---|---:|");
    for m in postgres {
        header.push_str(&format!(" {} | ratio |", m.name));
        rule.push_str("---:|---:|");
    }
    println!("{header} goal |\n{rule}---:|");
    let mut targets = Vec::new();
    for (i, (name, base, per, unit)) in loads(sqlite).into_iter().enumerate() {
        let Some(base) = base else { continue };
        let goal = match i {
            0 => Some(ACTIVATE_GOAL),
            1 => Some(VALIDATE_GOAL),
            _ => None,
        };
        let mut line = format!("| {name} | {:.0} {unit} |", base.stats.rate() * per);
        for m in postgres {
            match loads(m)[i].1 {
                Some(l) => {
                    let ratio = l.stats.rate() / base.stats.rate().max(1e-9);
                    line.push_str(&format!(
                        " {:.0} {unit} | {ratio:.2} |",
                        l.stats.rate() * per
                    ));
                    if let Some(g) = goal {
                        targets.push(format!(
                            "- [{}] {name} on {} >= {g} x SQLite: {ratio:.2}",
                            if ratio >= g { "met" } else { "NOT met" },
                            m.name
                        ));
                    }
                }
                None => line.push_str(" | |"),
            }
        }
        line.push_str(&goal.map_or(" |".into(), |g| format!(" {g} |")));
        println!("{line}");
    }
    // The goals that hold on every engine, each setup against itself.
    for m in all {
        for (what, of, to, goal) in [
            ("payments", PAYMENTS, MINT, PAYMENTS_GOAL),
            ("one license holding 50000", FULL, FRESH, HELD_GOAL),
        ] {
            if let (Some(a), Some(b)) = (rate_of(m, of), rate_of(m, to)) {
                let ratio = a / b.max(1e-9);
                targets.push(format!(
                    "- [{}] {what} on {} >= {goal} x {to}: {ratio:.2}",
                    if ratio >= goal { "met" } else { "NOT met" },
                    m.name
                ));
            }
        }
    }
    println!("\n## Targets\n");
    for t in &targets {
        println!("{t}");
    }
    if !args.postgres_stats {
        return;
    }
    println!("\n## What PostgreSQL's backends of keyclerk were doing (share of samples)\n");
    for m in postgres {
        for (name, load, _, _) in loads(m) {
            if let Some(l) = load {
                let shown: Vec<String> = l
                    .states
                    .iter()
                    .map(|(s, share)| format!("{s} {:.0}%", share * 100.0))
                    .collect();
                println!("- {}, {name}: {}", m.name, shown.join(", "));
            }
        }
    }
    for m in postgres {
        println!(
            "\n### Statements on {} (pg_stat_statements, all loads after seeding)\n",
            m.name
        );
        println!("| calls | mean ms | statement |");
        println!("|---:|---:|---|");
        for (calls, mean, query) in &m.statements {
            println!("| {calls} | {mean:.3} | `{}` |", query.replace('|', "\\|"));
        }
    }
}

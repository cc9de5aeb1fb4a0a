//! `--engine postgres`: mint, activate and validate on SQLite, then on PostgreSQL
//! with one and with two keyclerk instances (two processes on one database, the
//! connections split between them), in one run, with the ratios to SQLite.

use std::path::Path;
use std::sync::Arc;

use crate::load::{Span, Stats};
use crate::postgres::{Cluster, Sampler};
use crate::server::{Server, Workspace};
use crate::{activate, mint, secs, seed, validate, Args};

/// The goals of the PostgreSQL engine on these cores, as fractions of SQLite.
const ACTIVATE_GOAL: f64 = 0.5;
const VALIDATE_GOAL: f64 = 0.7;

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
    if args.wants("mint") {
        measured.mint = Some(sample(&mut || mint(&ports, &token, conns, timed, 1))?);
    }
    if let Some(u) = sampled {
        measured.statements = cluster.statements(u)?;
    }
    for server in servers {
        server.stop().map_err(err("stopping keyclerk"))?;
    }
    Ok(measured)
}

/// The loads of a setup, in the order of the report.
fn loads(m: &Measured) -> [(&'static str, Option<&Load>); 3] {
    [
        ("activate, new seat", m.activate.as_ref()),
        ("validate", m.validate.as_ref()),
        ("mint, single", m.mint.as_ref()),
    ]
}

fn report(args: &Args, all: &[Measured]) {
    println!(
        "## Loads ({} connections split across the instances, {}s measured after {}s warm-up, {} licenses)\n",
        args.connections, args.seconds, args.warmup, args.small
    );
    println!("| setup | load | rate | p50 ms | p99 ms | max ms | failed |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for m in all {
        for (name, load) in loads(m) {
            if let Some(l) = load {
                let s = &l.stats;
                println!(
                    "| {} | {name} | {:.0} req/s | {:.2} | {:.2} | {:.2} | {} |",
                    m.name,
                    s.rate(),
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
        for (name, load) in loads(m) {
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
    for (i, (name, base)) in loads(sqlite).into_iter().enumerate() {
        let Some(base) = base else { continue };
        let goal = match i {
            0 => Some(ACTIVATE_GOAL),
            1 => Some(VALIDATE_GOAL),
            _ => None,
        };
        let mut line = format!("| {name} | {:.0} req/s |", base.stats.rate());
        for m in postgres {
            match loads(m)[i].1 {
                Some(l) => {
                    let ratio = l.stats.rate() / base.stats.rate().max(1e-9);
                    line.push_str(&format!(" {:.0} req/s | {ratio:.2} |", l.stats.rate()));
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
    println!("\n## Targets\n");
    for t in &targets {
        println!("{t}");
    }
    if !args.postgres_stats {
        return;
    }
    println!("\n## What PostgreSQL's backends of keyclerk were doing (share of samples)\n");
    for m in postgres {
        for (name, load) in loads(m) {
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

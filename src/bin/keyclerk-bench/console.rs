//! The support console's pages on a large database: a staff member signed in as a
//! browser does (an account made with the real `users create`, the sign-in form
//! posted with keyclerk's own `Origin`, the `__Host-` cookie kept), then each page
//! loaded with targets drawn at random from the seeded licenses.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use crate::load::{self, Span, Stats};
use crate::postgres::Cluster;
use crate::server::{Limits, Server, Workspace, AS_SERVER};
use crate::{http, secs, target, Args, Figures, Row, Target, OWN};

/// The goal of issue 15: every page under this at p99.
const GOAL_P99_MS: f64 = 50.0;
/// The staff member the benchmark signs in as.
const AGENT: &str = "agent@bench.example";
/// Their password (the rule wants 12 characters and no common password).
const PASSWORD: &str = "quiet harbor lantern maple";
/// Licenses per seeding request.
const BATCH: u64 = 1000;
/// Pending claims filed on late licenses (the queue shows the oldest 100).
const CLAIMS: usize = 300;

/// The products the console's database is seeded with, besides `bench`: one whose
/// activation window of 90 days closed long ago, one with typed (short) keys.
const PRODUCTS: &str = r#"
[products.late]
name = "Bench Late"
price = { amount = 4900, currency = "EUR" }
seats = 3
activation_window_days = 90
key_format = "signed"

[products.typed]
name = "Bench Typed"
price = { amount = 1900, currency = "EUR" }
seats = 1
key_format = "short"

[late_claims]
auto_extend = false
max_claims_per_key_per_day = 1000
max_claims_per_address_per_hour = 1000000
"#;

/// What the console part measured.
pub struct Measured {
    /// One row per page.
    pub rows: Vec<Row>,
    /// The 50 ms goal per page.
    pub targets: Vec<Target>,
    /// Lines for the report (seeding, sign-in, failures).
    pub notes: Vec<String>,
}

/// The product of seeded license `n`: 1 in 20 late, 1 in 5 typed, the rest `bench`.
fn product_of(n: u64) -> &'static str {
    match (n % 20, n % 5) {
        (7, _) => "late",
        (_, 1) => "typed",
        _ => "bench",
    }
}

/// A seeded license the loads draw from.
#[derive(Debug, Clone)]
struct Seeded {
    id: String,
    key: String,
    order_id: String,
    email: String,
    product: &'static str,
}

/// Seeds `count` licenses over HTTP in batches on 4 connections: emails shared by
/// two licenses each (`c{n/2}`), a year-old purchase for the late ones. Keeps blocks
/// of 20 consecutive licenses (every product in each) for about 20,000 in all.
/// Returns them and the seeding's seconds.
fn seed(port: u16, token: &str, count: u64) -> Result<(Vec<Seeded>, f64), String> {
    let every = (count / 20_000).max(1);
    let kept_n = move |n: u64| (n / 20).is_multiple_of(every);
    let year_ago =
        keyclerk::domain::time::format(keyclerk::domain::time::now() - chrono::Duration::days(365));
    let token = token.to_owned();
    let make = move |i: u64| {
        let from = i * BATCH;
        let to = (from + BATCH).min(count);
        let items: Vec<String> = (from..to)
            .map(|n| {
                let product = product_of(n);
                let bought = if product == "late" {
                    format!(r#","purchased_at":"{year_ago}""#)
                } else {
                    String::new()
                };
                format!(
                    r#"{{"product":"{product}","order_id":"con-{n}","customer_email":"c{}@example.com"{bought}}}"#,
                    n / 2
                )
            })
            .collect();
        http::post(
            "/v1/licenses/batch",
            Some(&token),
            &format!(r#"{{"licenses":[{}]}}"#, items.join(",")),
        )
    };
    let kept: Arc<Mutex<Vec<(u64, Seeded)>>> = Arc::default();
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
            if kept_n(n) {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                mine.push((
                    n,
                    Seeded {
                        id: text(&r["license"]["id"]),
                        key: text(&r["key"]),
                        order_id: format!("con-{n}"),
                        email: format!("c{}@example.com", n / 2),
                        product: product_of(n),
                    },
                ));
            }
        }
        out.lock().map(|mut o| o.extend(mine)).is_ok() && status == 200
    };
    let stats = load::run(
        &[port],
        4,
        Span::Requests(count.div_ceil(BATCH)),
        Arc::new(make),
        Arc::new(check),
    )
    .map_err(|e| format!("seeding the console's database: {e}"))?;
    if stats.failed > 0 {
        return Err(format!(
            "seeding the console's database failed {} times; first: {}",
            stats.failed,
            stats.first_failure.unwrap_or_default()
        ));
    }
    let mut kept = std::mem::take(&mut *kept.lock().map_err(|_| "poisoned")?);
    kept.sort_by_key(|(n, _)| *n);
    Ok((
        kept.into_iter().map(|(_, s)| s).collect(),
        stats.elapsed.as_secs_f64(),
    ))
}

/// Files a pending claim on each of `late` (as a customer's app does, with the key).
fn file_claims(port: u16, late: &[&Seeded]) -> Result<(), String> {
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        late.iter()
            .map(|s| {
                http::post(
                    "/v1/claims",
                    None,
                    &format!(
                        r#"{{"license_key":"{}","email":"{}","message":"Bought a year ago, never got to install it."}}"#,
                        s.key, s.email
                    ),
                )
            })
            .collect(),
    );
    let n = bodies.len() as u64;
    let stats = load::run(
        &[port],
        4,
        Span::Requests(n),
        Arc::new(move |i| bodies[i as usize].clone()),
        Arc::new(|_, status, _| status == 202),
    )
    .map_err(|e| format!("filing claims: {e}"))?;
    if stats.failed > 0 {
        return Err(format!(
            "filing claims failed {} times; first: {}",
            stats.failed,
            stats.first_failure.unwrap_or_default()
        ));
    }
    Ok(())
}

/// Makes the staff account with the real CLI (`keyclerk users create
/// --password-stdin`) on the server's configuration (and database, if given).
fn create_agent(config: &Path, database_url: Option<&str>) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("the benchmark's binary: {e}"))?;
    let mut command = Command::new(exe);
    command
        .arg(AS_SERVER)
        .arg("--config")
        .arg(config)
        .args([
            "users",
            "create",
            "--email",
            AGENT,
            "--role",
            "support",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = database_url {
        command.env("KEYCLERK_DATABASE__URL", url);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("keyclerk users create: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("keyclerk users create: no stdin")?
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .map_err(|e| format!("keyclerk users create: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("keyclerk users create: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "keyclerk users create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// One answer read whole (the connection closed after it): status, headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    /// The session cookie it sets, if any.
    fn session_cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                let value = v
                    .strip_prefix(&format!("{}=", keyclerk::web::session::COOKIE))?
                    .split(';')
                    .next()?;
                (!value.is_empty()).then(|| value.to_owned())
            })
    }
}

/// Sends `request` on a new connection and reads the whole answer.
fn exchange(port: u16, request: &str) -> io::Result<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(secs(30.0)))?;
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("no end of the head"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("no status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Signs in as a browser does: the sign-in page, then its form posted from
/// keyclerk's own origin. Returns the session cookie's value.
fn sign_in(port: u16) -> Result<String, String> {
    let host = format!("127.0.0.1:{port}");
    let page = exchange(
        port,
        &format!("GET /console/login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .map_err(|e| format!("GET /console/login: {e}"))?;
    if page.status != 200 || !page.body.contains("name=\"password\"") {
        return Err(format!(
            "GET /console/login answered {} without the form",
            page.status
        ));
    }
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("email", AGENT)
        .append_pair("password", PASSWORD)
        .append_pair("next", "/console")
        .finish();
    let mut request = format!(
        "POST /console/login HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        form.len()
    );
    // A cookie the sign-in page set (none today) goes back, as a browser's would.
    if let Some(c) = page.session_cookie() {
        request.push_str(&format!(
            "Cookie: {}={c}\r\n",
            keyclerk::web::session::COOKIE
        ));
    }
    request.push_str("\r\n");
    request.push_str(&form);
    let answer = exchange(port, &request).map_err(|e| format!("POST /console/login: {e}"))?;
    match (answer.status, answer.session_cookie()) {
        (303, Some(cookie)) => Ok(cookie),
        (status, _) => Err(format!(
            "signing in answered {status}: {}",
            &answer.body[..answer.body.len().min(300)]
        )),
    }
}

/// A GET of a console page with the session's cookie, from a browser at `host`.
fn page_request(port: u16, cookie: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {}={cookie}\r\n\
         Accept: text/html\r\n\r\n",
        keyclerk::web::session::COOKIE
    )
    .into_bytes()
}

/// A page load: its name, the paths drawn from, the status each must answer.
struct PageLoad {
    name: &'static str,
    paths: Vec<String>,
    status: u16,
}

fn encoded(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The loads of the console's pages over `seeded`.
fn page_loads(seeded: &[Seeded]) -> Vec<PageLoad> {
    let search = |s: &str| format!("/console/search?q={}", encoded(s));
    let of = |product: Option<&str>| -> Vec<&Seeded> {
        seeded
            .iter()
            .filter(|s| product.is_none_or(|p| s.product == p))
            .collect()
    };
    let signed: Vec<&Seeded> = seeded.iter().filter(|s| s.product != "typed").collect();
    vec![
        // Two licenses share each email: a list of results.
        PageLoad {
            name: "search by email",
            paths: of(None).iter().map(|s| search(&s.email)).collect(),
            status: 200,
        },
        // One hit goes straight to its license.
        PageLoad {
            name: "search by full key",
            paths: signed.iter().map(|s| search(&s.key)).collect(),
            status: 303,
        },
        PageLoad {
            name: "search by short key",
            paths: of(Some("typed")).iter().map(|s| search(&s.key)).collect(),
            status: 303,
        },
        PageLoad {
            name: "search by order id",
            paths: of(None).iter().map(|s| search(&s.order_id)).collect(),
            status: 303,
        },
        PageLoad {
            name: "license page",
            paths: of(None)
                .iter()
                .map(|s| format!("/console/licenses/{}", s.id))
                .collect(),
            status: 200,
        },
        PageLoad {
            name: "extend preview, late license",
            paths: of(Some("late"))
                .iter()
                .map(|s| format!("/console/licenses/{}/remedy?remedy=extend", s.id))
                .collect(),
            status: 200,
        },
        PageLoad {
            name: "customer page",
            paths: of(None)
                .iter()
                .map(|s| format!("/console/customers/{}", encoded(&s.email)))
                .collect(),
            status: 200,
        },
        PageLoad {
            name: "claims queue",
            paths: vec!["/console/claims".to_owned()],
            status: 200,
        },
    ]
}

/// A well-mixed index for request `i` (SplitMix64), so targets are drawn at random
/// and the same on every run.
fn draw(i: u64, n: usize) -> usize {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % n as u64) as usize
}

/// Loads one page on `conns` connections; a status other than the page's own, or
/// an empty page, is an error.
fn load_page(
    port: u16,
    cookie: &str,
    conns: usize,
    span: Span,
    page: &PageLoad,
) -> Result<Stats, String> {
    if page.paths.is_empty() {
        return Err(format!("{}: no seeded license to load it with", page.name));
    }
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        page.paths
            .iter()
            .map(|p| page_request(port, cookie, p))
            .collect(),
    );
    let expected = page.status;
    let make = move |i: u64| requests[draw(i, requests.len())].clone();
    let check = move |_: u64, status: u16, body: &[u8]| {
        status == expected && (status != 200 || body.starts_with(b"<!doctype html>"))
    };
    load::run(&[port], conns, span, Arc::new(make), Arc::new(check))
        .map_err(|e| format!("{}: {e}", page.name))
}

/// `--engine postgres --only console`: the console's part alone on PostgreSQL (a
/// throwaway server unless `--database-url`), printed as its own report.
pub fn on_postgres(args: &Args, base: &Path) -> Result<(), String> {
    crate::describe_machine(base);
    let cluster = match &args.database_url {
        Some(url) => Cluster::external(url),
        None => Cluster::start(base, false)?,
    };
    let url = cluster.database("console")?;
    let measured = measure(args, base, Some(&url))?;
    println!("## Console pages on PostgreSQL (keyclerk-bench's client, rate limits off)\n");
    println!("| load | rate | p50 ms | p99 ms | max ms | failed |");
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &measured.rows {
        if let Some(f) = &row.figures {
            println!(
                "| {} | {:.0} req/s | {:.2} | {:.2} | {:.2} | {} |",
                row.name, f.rate, f.p50_ms, f.p99_ms, f.max_ms, f.failed
            );
        }
    }
    println!();
    for row in &measured.rows {
        if let Some(f) = row.figures.as_ref().and_then(|f| f.first_failure.as_ref()) {
            println!("First failure of \"{}\": {f}", row.name);
        }
    }
    for note in &measured.notes {
        println!("{note}");
    }
    println!("\n## Targets\n");
    for t in &measured.targets {
        println!("- [{}] {}", if t.met { "met" } else { "NOT met" }, t.what);
    }
    Ok(())
}

/// Seeds a database of `--large` licenses on a server of its own (on PostgreSQL
/// at `database_url` if given, else SQLite), signs an agent in and loads each
/// console page.
pub fn measure(args: &Args, base: &Path, database_url: Option<&str>) -> Result<Measured, String> {
    let count = args.large;
    let workspace = Workspace::new(base, "console", &args.log)
        .map_err(|e| format!("console workspace: {e}"))?;
    let config = workspace.config();
    let mut text =
        std::fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    text.push_str(PRODUCTS);
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    let mut notes = Vec::new();

    let server = Server::keyclerk_on(&config, database_url)
        .map_err(|e| format!("keyclerk (console): {e}"))?;
    let token = workspace
        .admin_token()
        .map_err(|e| format!("admin token: {e}"))?;
    let started = Instant::now();
    let (seeded, seeding) = seed(server.port, &token, count)?;
    let late: Vec<&Seeded> = seeded
        .iter()
        .filter(|s| s.product == "late")
        .take(CLAIMS)
        .collect();
    file_claims(server.port, &late)?;
    notes.push(format!(
        "Console database ({}): {count} licenses seeded over HTTP in {seeding:.0} s \
         ({:.0} keys/s; 1 in 20 bought a year ago with a 90-day window, 1 in 5 with a short \
         key, two licenses per email), {} pending claims filed; {:.0} s in all before the \
         loads.",
        if database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        count as f64 / seeding.max(1e-9),
        late.len(),
        started.elapsed().as_secs_f64()
    ));
    server
        .stop()
        .map_err(|e| format!("stopping keyclerk (console): {e}"))?;
    if database_url.is_none() {
        notes.push(format!(
            "Console database on disk: {:.0} MB.",
            workspace.database_size() as f64 / 1e6
        ));
    }
    eprintln!("console database built");

    // A restarted server: the pages read a database the server did not just write.
    let server = Server::keyclerk_on(&config, database_url)
        .map_err(|e| format!("keyclerk (console, restart): {e}"))?;
    create_agent(&config, database_url)?;
    let cookie = sign_in(server.port)?;
    notes.push(format!(
        "Console sign-in: {AGENT} made with `keyclerk users create --role support \
         --password-stdin`, GET /console/login, the form posted with Origin \
         http://127.0.0.1:{} (303 and the {} cookie).",
        server.port,
        keyclerk::web::session::COOKIE
    ));

    let conns = args.console_connections;
    let span = Span::Timed {
        warmup: secs(args.warmup),
        measure: secs(args.seconds),
    };
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for page in page_loads(&seeded) {
        let stats = load_page(server.port, &cookie, conns, span, &page)?;
        // Its first error is printed with the rows' (see the report).
        let figures = Figures::from(&stats);
        targets.push(target(
            format!(
                "console {} p99 <= {GOAL_P99_MS} ms at {count} licenses ({conns} connections): \
                 {:.2} ms, {} errors",
                page.name, figures.p99_ms, figures.failed
            ),
            figures.p99_ms <= GOAL_P99_MS && figures.failed == 0,
        ));
        rows.push(Row::http(
            &format!(
                "console: {} ({count} licenses, {conns} connections, {} targets)",
                page.name,
                page.paths.len()
            ),
            (OWN, Limits::Off),
            figures,
            "req/s",
            1.0,
            None,
        ));
        eprintln!("console {} measured", page.name);
    }
    server
        .stop()
        .map_err(|e| format!("stopping keyclerk (console): {e}"))?;
    Ok(Measured {
        rows,
        targets,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_of_twenty_has_each_product() {
        let products: Vec<&str> = (0..20).map(product_of).collect();
        for p in ["late", "typed", "bench"] {
            assert!(products.contains(&p), "{p}");
        }
        assert_eq!(products.iter().filter(|p| **p == "late").count(), 1);
    }

    #[test]
    fn draws_stay_in_range_and_spread() {
        let picks: Vec<usize> = (0..1000).map(|i| draw(i, 10)).collect();
        assert!(picks.iter().all(|&p| p < 10));
        for k in 0..10 {
            assert!(picks.contains(&k), "{k}");
        }
    }
}

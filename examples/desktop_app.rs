//! A desktop app licensed with keyclerk, reduced to its licensing.
//!
//! The first run activates the key against the server and stores the signed
//! certificate in a state file. Later runs start from that file without the network,
//! refresh the certificate online when its lease nears its end (and keep running on
//! the old one if the server cannot be reached), and refuse a certificate copied from
//! another machine.
//!
//! A machine without internet activates offline instead: `--offline` shows a
//! request code (and its QR code, which opens the customer page with the code
//! filled in); the customer pastes it on `/my/offline` from any device and brings
//! back the certificate file, which `--certificate-file` checks and stores.
//!
//! ```text
//! cargo run --example desktop_app -- --server http://127.0.0.1:8080 --key 'v4.public.…'
//! cargo run --example desktop_app            # later: starts offline from app-state.json
//! cargo run --example desktop_app -- --offline --key 'v4.public.…' --server https://licenses.example.com
//! cargo run --example desktop_app -- --certificate-file keyclerk-certificate-….json \
//!     --key 'v4.public.…' --public-key 'k4.public.…'
//! ```
//!
//! Exit codes: 0 licensed (or a request code shown); 2 usage or network; 3 certificate
//! of another machine; 4 lease over and no server; 5 clock set back; 6 refused by the
//! server, or a certificate file that does not verify; 7 invalid state.
#![allow(
    clippy::unwrap_used,
    reason = "an example: the few unwraps are on values just built"
)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use keyclerk_client::offline::ActivationRequest;
use keyclerk_client::qr::Qr;
use keyclerk_client::{machine_fingerprint, ClientError, Verifier};
use serde::{Deserialize, Serialize};

/// The app's name: part of the fingerprint, so two apps on one machine differ.
const APP: &str = "keyclerk-demo";

#[derive(Parser)]
#[command(about = "A desktop app that activates once and then starts offline")]
struct Args {
    /// The keyclerk server (needed for the first activation and for refreshes).
    #[arg(long)]
    server: Option<String>,
    /// The license key (needed for the first activation).
    #[arg(long)]
    key: Option<String>,
    /// Where the app keeps its certificate.
    #[arg(long, default_value = "app-state.json")]
    state: PathBuf,
    /// This machine's id (default: /etc/machine-id, else the host name).
    #[arg(long)]
    machine_id: Option<String>,
    /// Pin the server's public key (k4.public…) instead of fetching /v1/keys once.
    #[arg(long)]
    public_key: Option<String>,
    /// Refresh online when fewer days than this are left on the lease.
    #[arg(long, default_value_t = 7)]
    refresh_within_days: i64,
    /// Show the request code of an offline activation (with `--key`; `--server`
    /// makes the QR code open its customer page) and stop.
    #[arg(long)]
    offline: bool,
    /// Also write the QR code of the request as an SVG image here.
    #[arg(long, requires = "offline")]
    qr_svg: Option<PathBuf>,
    /// A name for this machine, shown on the customer page.
    #[arg(long, default_value = "demo machine")]
    name: String,
    /// Activate from the certificate file of an offline activation (with `--key`,
    /// and `--public-key` where the server cannot be reached).
    #[arg(long, conflicts_with = "offline")]
    certificate_file: Option<PathBuf>,
}

/// What the app keeps on disk: nothing secret beyond the key the customer typed.
#[derive(Serialize, Deserialize)]
struct State {
    server: Option<String>,
    license_key: String,
    public_keys: Vec<String>,
    certificate: String,
    /// The latest time the app saw: a clock earlier than this was set back.
    last_seen: DateTime<Utc>,
}

fn machine_id(args: &Args) -> String {
    args.machine_id
        .clone()
        .or_else(|| std::fs::read_to_string("/etc/machine-id").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_else(|| "unknown-machine".into())
}

/// What to tell the user for each refusal code of the server.
fn explain(code: &str) -> &'static str {
    match code {
        "license_not_found" => "This license key is not valid. Check it for typos.",
        "activation_window_closed" => {
            "This key was not activated in time. Contact support: late claims are often granted."
        }
        "seat_limit_reached" => {
            "This license is in use on all its machines. Deactivate one, or buy more seats."
        }
        "license_expired" => "This license has expired. Renew it to keep using the app.",
        "license_suspended" => "This license is suspended. Contact support.",
        "license_revoked" => "This license was revoked or refunded.",
        "license_superseded" => "This license was replaced. Use the key you received instead.",
        "license_pending_payment" => "This license waits for a payment to complete.",
        _ => "The license server refused this activation.",
    }
}

enum Failure {
    Network(String),
    Refused(String),
}

fn http() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(StdDuration::from_secs(10))
        .build()
}

fn fetch_keys(server: &str) -> Result<Vec<String>, Failure> {
    let body: serde_json::Value = http()
        .get(&format!("{server}/v1/keys"))
        .call()
        .map_err(|e| Failure::Network(e.to_string()))?
        .into_json()
        .map_err(|e| Failure::Network(e.to_string()))?;
    Ok(body["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k["public_key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// `POST /v1/activations`: a new seat or a fresh certificate for this machine.
fn activate(server: &str, key: &str, fingerprint: &str, name: &str) -> Result<String, Failure> {
    let res = http()
        .post(&format!("{server}/v1/activations"))
        .send_json(serde_json::json!({
            "license_key": key,
            "fingerprint": fingerprint,
            "name": name,
            "platform": std::env::consts::OS,
        }));
    match res {
        Ok(r) => {
            let body: serde_json::Value =
                r.into_json().map_err(|e| Failure::Network(e.to_string()))?;
            Ok(body["certificate"].as_str().unwrap_or_default().to_owned())
        }
        Err(ureq::Error::Status(_, r)) => {
            let body: serde_json::Value = r.into_json().unwrap_or_default();
            Err(Failure::Refused(
                body["code"].as_str().unwrap_or("unknown").to_owned(),
            ))
        }
        Err(e) => Err(Failure::Network(e.to_string())),
    }
}

fn save(path: &PathBuf, state: &State) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(tmp, path)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let fingerprint = machine_fingerprint(APP, &machine_id(&args));
    let now = Utc::now();
    if args.offline {
        return show_request(&args, &fingerprint);
    }
    if let Some(file) = &args.certificate_file {
        return import_certificate(&args, file, &fingerprint, now);
    }
    match std::fs::read(&args.state) {
        Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
            Ok(state) => start_from_certificate(&args, state, &fingerprint, now),
            Err(e) => {
                eprintln!(
                    "refused: the state file {} is damaged: {e}",
                    args.state.display()
                );
                ExitCode::from(7)
            }
        },
        Err(_) => first_activation(&args, &fingerprint, now),
    }
}

fn first_activation(args: &Args, fingerprint: &str, now: DateTime<Utc>) -> ExitCode {
    let (Some(server), Some(key)) = (args.server.as_deref(), args.key.as_deref()) else {
        eprintln!("not activated yet: run once with --server URL --key KEY");
        return ExitCode::from(2);
    };
    let public_keys = match &args.public_key {
        Some(pinned) => vec![pinned.clone()],
        None => match fetch_keys(server) {
            Ok(keys) => keys,
            Err(Failure::Network(e) | Failure::Refused(e)) => {
                eprintln!("cannot reach the license server: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let certificate = match activate(server, key, fingerprint, &args.name) {
        Ok(c) => c,
        Err(Failure::Refused(code)) => {
            eprintln!("refused: {code}: {}", explain(&code));
            return ExitCode::from(6);
        }
        Err(Failure::Network(e)) => {
            eprintln!("cannot reach the license server: {e}");
            return ExitCode::from(2);
        }
    };
    let verifier = Verifier::new(&public_keys).unwrap();
    // The certificate is checked like on every later start: a server that is not
    // the vendor's cannot hand out a certificate the app accepts.
    let claims = match verifier.verify_certificate(&certificate, fingerprint, now, None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("refused: the server's certificate does not verify: {e}");
            return ExitCode::from(6);
        }
    };
    let state = State {
        server: Some(server.to_owned()),
        license_key: key.to_owned(),
        public_keys,
        certificate,
        last_seen: now,
    };
    store_activation(args, &state, &claims, "activated")
}

/// Stores the state of a new activation and says so (`how`: "activated", ...).
fn store_activation(
    args: &Args,
    state: &State,
    claims: &keyclerk_client::claims::ActivationClaims,
    how: &str,
) -> ExitCode {
    if let Err(e) = save(&args.state, state) {
        eprintln!("cannot write {}: {e}", args.state.display());
        return ExitCode::from(2);
    }
    println!(
        "{how}: license {} ({}), lease until {}",
        claims.license, claims.product, claims.exp
    );
    ExitCode::SUCCESS
}

fn start_from_certificate(
    args: &Args,
    mut state: State,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> ExitCode {
    let Ok(verifier) = Verifier::new(&state.public_keys) else {
        eprintln!("refused: the state file holds no valid public key");
        return ExitCode::from(7);
    };
    let server = args.server.clone().or_else(|| state.server.clone());
    let checked =
        verifier.verify_certificate(&state.certificate, fingerprint, now, Some(state.last_seen));
    let lease_ok = match &checked {
        Ok(claims) => {
            let exp = DateTime::parse_from_rfc3339(&claims.exp)
                .unwrap()
                .with_timezone(&Utc);
            if exp - now > Duration::days(args.refresh_within_days) {
                println!(
                    "started offline from the certificate: license {}, lease until {}",
                    claims.license, claims.exp
                );
                return remember(args, state, now);
            }
            true
        }
        Err(ClientError::LeaseExpired { .. }) => false,
        Err(ClientError::FingerprintMismatch) => {
            eprintln!(
                "refused: this certificate was issued for another machine. \
                 Activate this machine with your license key."
            );
            return ExitCode::from(3);
        }
        Err(ClientError::ClockSetBack { seen, .. }) => {
            eprintln!("refused: the system clock is earlier than {seen}; correct it and restart.");
            return ExitCode::from(5);
        }
        Err(e) => {
            eprintln!("refused: the stored certificate is not valid: {e}");
            return ExitCode::from(7);
        }
    };
    // The lease nears its end (or has ended): refresh online if the server answers.
    let refreshed = match server.as_deref() {
        Some(s) => activate(s, &state.license_key, fingerprint, &args.name),
        None => Err(Failure::Network("no server known".into())),
    };
    match refreshed {
        Ok(certificate) => {
            match verifier.verify_certificate(&certificate, fingerprint, now, Some(state.last_seen))
            {
                Ok(claims) => {
                    println!("refreshed the certificate: lease until {}", claims.exp);
                    state.certificate = certificate;
                }
                Err(e) => {
                    eprintln!("refused: the refreshed certificate does not verify: {e}");
                    return ExitCode::from(6);
                }
            }
        }
        Err(Failure::Refused(code)) => {
            eprintln!("refused: {code}: {}", explain(&code));
            return ExitCode::from(6);
        }
        Err(Failure::Network(e)) if lease_ok => {
            println!("started offline from the certificate (refresh failed: {e})");
        }
        Err(Failure::Network(e)) => {
            eprintln!(
                "the lease has ended and the license server cannot be reached: {e}. \
                 Without internet, run with --offline for a new request code."
            );
            return ExitCode::from(4);
        }
    }
    remember(args, state, now)
}

/// `--offline`: the request code to paste on the customer page, and its QR code.
fn show_request(args: &Args, fingerprint: &str) -> ExitCode {
    let Some(key) = args.key.as_deref() else {
        eprintln!("an offline activation needs the license key: --offline --key KEY");
        return ExitCode::from(2);
    };
    let request = ActivationRequest::new(key, fingerprint)
        .with_name(args.name.clone())
        .with_platform(std::env::consts::OS);
    let (code, link) = match (request.code(), args.server.as_deref()) {
        (Ok(code), Some(server)) => {
            let link = request.page_url(server).unwrap_or_else(|_| code.clone());
            (code, link)
        }
        (Ok(code), None) => (code.clone(), code),
        (Err(e), _) => {
            eprintln!("cannot make a request code: {e}");
            return ExitCode::from(2);
        }
    };
    let page = args.server.as_deref().map_or_else(
        || "the customer page (/my/offline)".to_owned(),
        |s| format!("{}/my/offline", s.trim_end_matches('/')),
    );
    println!("To activate this machine without internet, open {page} on any device and paste this request code (or scan the QR code):");
    println!();
    println!("{code}");
    println!();
    match Qr::new(&link) {
        Ok(qr) => {
            print!("{}", qr.terminal());
            if let Some(path) = &args.qr_svg {
                if let Err(e) = std::fs::write(path, qr.svg()) {
                    eprintln!("cannot write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
        Err(e) => eprintln!("(no QR code: {e})"),
    }
    println!();
    println!("Then bring the certificate file back and run: desktop_app --certificate-file FILE --key KEY --public-key K4");
    ExitCode::SUCCESS
}

/// `--certificate-file`: checks the file of an offline activation against the
/// server's public keys (pinned, or fetched where the server answers) and stores it.
fn import_certificate(
    args: &Args,
    file: &PathBuf,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> ExitCode {
    let Some(key) = args.key.as_deref() else {
        eprintln!("an offline activation needs the license key: --certificate-file FILE --key KEY");
        return ExitCode::from(2);
    };
    let public_keys = match (&args.public_key, args.server.as_deref()) {
        (Some(pinned), _) => vec![pinned.clone()],
        (None, Some(server)) => {
            match fetch_keys(server) {
                Ok(keys) => keys,
                Err(Failure::Network(e) | Failure::Refused(e)) => {
                    eprintln!("cannot reach the license server for its keys ({e}): pin one with --public-key");
                    return ExitCode::from(2);
                }
            }
        }
        (None, None) => {
            eprintln!("the certificate is checked against the server's public key: give --public-key k4.public…");
            return ExitCode::from(2);
        }
    };
    let Ok(verifier) = Verifier::new(&public_keys) else {
        eprintln!("refused: --public-key is not a k4.public key");
        return ExitCode::from(2);
    };
    let contents = match std::fs::read(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let claims = match verifier.verify_certificate_file(&contents, fingerprint, now, None) {
        Ok(c) => c,
        Err(ClientError::FingerprintMismatch) => {
            eprintln!(
                "refused: this certificate was issued for another machine. \
                 Make a request code on this machine with --offline."
            );
            return ExitCode::from(3);
        }
        Err(e) => {
            eprintln!("refused: the certificate file does not verify: {e}");
            return ExitCode::from(6);
        }
    };
    // A signed key names its license: the certificate must be of that license.
    if let Ok(license) = verifier.verify_license(key, now) {
        if license.sub != claims.license {
            eprintln!("refused: the certificate is of another license than this key");
            return ExitCode::from(6);
        }
    }
    // The file verified, so it parses: its certificate is what the app keeps.
    let Some(file) = keyclerk_client::offline::CertificateFile::parse(&contents) else {
        return ExitCode::from(7);
    };
    let state = State {
        server: args.server.clone(),
        license_key: key.to_owned(),
        public_keys,
        certificate: file.certificate,
        last_seen: now,
    };
    store_activation(args, &state, &claims, "activated offline")
}

/// Stores the state with the latest time seen.
fn remember(args: &Args, mut state: State, now: DateTime<Utc>) -> ExitCode {
    state.last_seen = state.last_seen.max(now);
    if let Err(e) = save(&args.state, &state) {
        eprintln!("cannot write {}: {e}", args.state.display());
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

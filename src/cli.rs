//! The `keyclerk` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::domain::audit::Actor;
use crate::domain::staff::StaffRole;
use crate::domain::time;
use crate::domain::token::{parse_token_name, NewApiToken, Role};
use crate::startup::{self, ServeOptions};
use crate::storage::Storage;
use crate::token::claims::LICENSE_KIND;
use crate::token::keyring::{KeyStatus, Keyring};
use crate::token::paserk;

/// keyclerk: a self-hosted license server.
#[derive(Debug, Parser)]
#[command(name = "keyclerk", version, about)]
pub struct Cli {
    /// Configuration file (default: ./config.toml, else the built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (creates keys/ and data/ on first start).
    Serve {
        /// Start even though signing keys the database has used are missing.
        #[arg(long)]
        force: bool,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage API tokens.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Check a license key or certificate offline; prints its claims as JSON.
    Verify {
        /// The token (v4.public.…).
        token: String,
        /// A public key (k4.public.… or a file holding one); repeatable. Default: keys/.
        #[arg(long = "public-key", value_name = "KEY")]
        public_keys: Vec<String>,
    },
    /// Copy the database to PATH while the server runs (consistent, checked).
    Backup {
        /// The new file (must not exist yet).
        path: PathBuf,
    },
    /// Database tools.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage the endpoints of keyclerk's own webhooks.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Staff accounts of the support console.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Add an endpoint; prints its signing secret alone on stdout, once.
    Add {
        /// Where keyclerk POSTs the messages (http or https).
        url: String,
        /// Event types, comma-separated, or `*` for all.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// For people.
        #[arg(long)]
        description: Option<String>,
    },
    /// List endpoints (never their secrets).
    List,
    /// Stop making and sending messages for an endpoint.
    Disable {
        /// Endpoint id (whe_…).
        id: String,
    },
    /// Make and send messages for an endpoint again.
    Enable {
        /// Endpoint id (whe_…).
        id: String,
    },
    /// A new signing secret (printed alone on stdout); the old one signs too for a while.
    RotateSecret {
        /// Endpoint id (whe_…).
        id: String,
        /// Hours the old secret keeps signing (default: [webhooks] rotation_overlap_hours).
        #[arg(long)]
        overlap_hours: Option<u32>,
    },
    /// Remove an endpoint and its messages.
    Remove {
        /// Endpoint id (whe_…).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Make an account; prints a one-time setup link (valid 24 h), or with
    /// --password-stdin sets the password read from standard input.
    Create {
        /// The staff member's email (the name to sign in with).
        #[arg(long)]
        email: String,
        /// support or admin.
        #[arg(long, value_enum)]
        role: StaffRole,
        /// Read the password from standard input (one line) instead of printing a link.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Disable an account; its sessions end at once.
    Disable {
        /// The account's email.
        email: String,
    },
    /// Print a new setup link; the password, TOTP and sessions of the account end.
    Reset {
        /// The account's email.
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create the first signing key.
    Init,
    /// Add a new signing key; it signs from the next start, the old ones keep verifying.
    Rotate,
    /// List keys with their ids and status.
    List,
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Create a token; prints the secret alone on stdout, once.
    Create {
        /// admin, vendor or support.
        #[arg(long, value_enum)]
        role: Role,
        /// Who or what it is for.
        #[arg(long)]
        name: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id or visible prefix.
    Revoke {
        /// Token id (tok_…) or prefix (kc_…).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Copy the SQLite database into an empty PostgreSQL database (every row, the
    /// audit chain verified on the target).
    Copy {
        /// The target: a postgres:// URL of an empty database.
        #[arg(long, value_name = "URL")]
        to: String,
        /// The SQLite file to copy (default: keyclerk.db in data_dir).
        #[arg(long, value_name = "PATH")]
        from: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain of the audit log.
    Verify,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// Runs the command line given as `args` (the first is the program name), as
/// `keyclerk` would; the benchmark runs its server this way.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let loaded = match Settings::load(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("keyclerk: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = loaded.settings;
    // Everything keyclerk writes holds secrets or customer data.
    crate::files::restrict_umask();
    init_logging(&settings.log, matches!(cli.command, Command::Serve { .. }));
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    let result = match cli.command {
        Command::Serve { force } => {
            log::info!("configuration from {}", loaded.source);
            serve(&settings, ServeOptions { force })
        }
        Command::Keys { command } => keys(&settings, command),
        Command::Tokens { command } => tokens(&settings, command),
        Command::Verify { token, public_keys } => verify(&settings, &token, &public_keys),
        Command::Backup { path } => backup(&settings, &path),
        Command::Db {
            command: DbCommand::Copy { to, from },
        } => db_copy(&settings, &to, from.as_deref()),
        Command::Audit {
            command: AuditCommand::Verify,
        } => audit_verify(&settings),
        Command::Webhooks { command } => webhooks(&settings, command),
        Command::Users { command } => users(&settings, command),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("keyclerk: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(log: &crate::logging::LogSettings, serving: bool) {
    let filter = if serving { log.level.as_str() } else { "warn" };
    crate::logging::install(crate::logging::build(filter, log.format));
}

type CliResult = Result<ExitCode, String>;

fn serve(settings: &Settings, options: ServeOptions) -> CliResult {
    actix_web::rt::System::new().block_on(async {
        let app = startup::build(settings, options)
            .await
            .map_err(|e| e.to_string())?;
        app.run_until_stopped().await.map_err(|e| e.to_string())?;
        Ok(ExitCode::SUCCESS)
    })
}

fn keys(settings: &Settings, command: KeysCommand) -> CliResult {
    let dir = &settings.keys_dir;
    match command {
        KeysCommand::Init => {
            let kid = Keyring::init(dir, time::now()).map_err(|e| e.to_string())?;
            println!("{kid}");
        }
        KeysCommand::Rotate => {
            Keyring::load(dir).map_err(|e| e.to_string())?;
            let kid = Keyring::generate_into(dir, time::now()).map_err(|e| e.to_string())?;
            println!("{kid}");
            eprintln!(
                "a running server signs with it within {} s (at once on SIGHUP or \
                 POST /v1/keys/reload); older keys keep verifying",
                crate::service::keys::WATCH_EVERY.as_secs()
            );
        }
        KeysCommand::List => {
            let ring = Keyring::load_public(dir).map_err(|e| e.to_string())?;
            if ring.is_empty() {
                return Err(format!("no keys in {}", dir.display()));
            }
            for k in ring.public_keys() {
                let status = match k.status {
                    KeyStatus::Active => "active",
                    KeyStatus::Retired => "retired",
                };
                println!(
                    "{}\t{}\t{}\t{}",
                    k.kid,
                    status,
                    time::format(k.created_at),
                    k.public_key
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn with_store<T>(
    settings: &Settings,
    f: impl AsyncFnOnce(&dyn Storage) -> Result<T, String>,
) -> Result<T, String> {
    startup::ensure_data_dir(&settings.data_dir).map_err(|e| e.to_string())?;
    actix_web::rt::System::new().block_on(async {
        let store = crate::storage::open(settings.database.url.as_deref(), &settings.data_dir)
            .map_err(|e| e.to_string())?;
        f(&*store).await
    })
}

fn tokens(settings: &Settings, command: TokensCommand) -> CliResult {
    match command {
        TokensCommand::Create { role, name } => {
            let name = parse_token_name(&name).ok_or("--name: 1 to 100 printable characters")?;
            let (new, secret) = NewApiToken::generate(role, name, time::now());
            let token = with_store(settings, async |s| {
                s.create_token(new, Actor::Cli)
                    .await
                    .map_err(|e| e.to_string())
            })?;
            println!("{}", secret.expose());
            eprintln!(
                "created {} ({}, {}); the secret above is shown only once",
                token.id,
                token.role.as_str(),
                token.name
            );
        }
        TokensCommand::List => {
            let tokens = with_store(settings, async |s| {
                s.tokens().await.map_err(|e| e.to_string())
            })?;
            for t in tokens {
                let state = t.revoked_at.map_or("active".to_owned(), |r| {
                    format!("revoked {}", time::format(r))
                });
                println!(
                    "{}\t{}\t{}\t{}…\t{}",
                    t.id,
                    t.role.as_str(),
                    t.name,
                    t.prefix,
                    state
                );
            }
        }
        TokensCommand::Revoke { id } => {
            let token = with_store(settings, async |s| {
                s.revoke_token(id, Actor::Cli, time::now())
                    .await
                    .map_err(|e| e.to_string())
            })?;
            println!("revoked {} ({})", token.id, token.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn webhooks(settings: &Settings, command: WebhooksCommand) -> CliResult {
    use crate::service::webhooks as hooks;
    use crate::storage::webhooks::EndpointChange;
    let message = |e: crate::service::ServiceError| crate::error::ApiError::from(e).to_string();
    let line = |e: &crate::storage::webhooks::Endpoint| {
        format!(
            "{}\t{}\t{}\t{}",
            e.id,
            if e.enabled { "enabled" } else { "disabled" },
            e.events.join(","),
            e.url
        )
    };
    let now = time::now();
    let change = |id: String, change: EndpointChange| -> Result<(), String> {
        let what = change.as_str();
        let endpoint = with_store(settings, async |s| {
            hooks::change(s, &id, change, Actor::Cli, now)
                .await
                .map_err(message)
        })?;
        println!("{what} {}", line(&endpoint));
        Ok(())
    };
    match command {
        WebhooksCommand::Add {
            url,
            events,
            description,
        } => {
            let (endpoint, secret) = with_store(settings, async |s| {
                hooks::add_endpoint(
                    s,
                    &settings.webhooks,
                    hooks::EndpointRequest {
                        url,
                        events,
                        description,
                    },
                    Actor::Cli,
                    now,
                )
                .await
                .map_err(message)
            })?;
            println!("{}", secret.expose());
            eprintln!(
                "added {}; the secret above is shown only once",
                line(&endpoint)
            );
        }
        WebhooksCommand::List => {
            let endpoints = with_store(settings, async |s| {
                s.webhook_endpoints().await.map_err(|e| e.to_string())
            })?;
            for e in &endpoints {
                println!("{}", line(e));
            }
        }
        WebhooksCommand::RotateSecret { id, overlap_hours } => {
            let (endpoint, secret) = with_store(settings, async |s| {
                hooks::rotate_secret(s, &settings.webhooks, &id, overlap_hours, Actor::Cli, now)
                    .await
                    .map_err(message)
            })?;
            println!("{}", secret.expose());
            eprintln!(
                "new secret for {}; the old one signs too until {}",
                endpoint.id,
                endpoint
                    .previous_secret
                    .as_ref()
                    .map_or_else(|| "now".to_owned(), |(_, until)| time::format(*until))
            );
        }
        WebhooksCommand::Disable { id } => change(id, EndpointChange::Disable)?,
        WebhooksCommand::Enable { id } => change(id, EndpointChange::Enable)?,
        WebhooksCommand::Remove { id } => change(id, EndpointChange::Remove)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn users(settings: &Settings, command: UsersCommand) -> CliResult {
    use crate::service::staff;
    let now = time::now();
    let link = |secret: &crate::domain::staff::StaffSecret| {
        format!(
            "{}{}",
            settings.console.base_url(&settings.listen),
            staff::setup_path(secret)
        )
    };
    match command {
        UsersCommand::Create {
            email,
            role,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| format!("standard input: {e}"))?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            let (user, secret) = with_store(settings, async |s| {
                staff::create(s.staff_store(), &email, role, password, Actor::Cli, now)
                    .await
                    .map_err(|e| e.to_string())
            })?;
            match secret {
                Some(secret) => {
                    println!("{}", link(&secret));
                    eprintln!(
                        "created {} ({}); the setup link above works once, for {} hours",
                        user.email,
                        user.role.as_str(),
                        crate::domain::staff::SETUP_VALID_HOURS
                    );
                }
                None => eprintln!(
                    "created {} ({}) with the password given",
                    user.email,
                    user.role.as_str()
                ),
            }
        }
        UsersCommand::List => {
            let users = with_store(settings, async |s| {
                s.staff_store().staff().await.map_err(|e| e.to_string())
            })?;
            for u in users {
                let state = match (u.disabled_at, u.has_password) {
                    (Some(at), _) => format!("disabled {}", time::format(at)),
                    (None, false) => "awaiting setup".to_owned(),
                    (None, true) => "active".to_owned(),
                };
                let last = u.last_sign_in_at.map_or("never signed in".to_owned(), |t| {
                    format!("last sign-in {}", time::format(t))
                });
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    u.email,
                    u.role.as_str(),
                    state,
                    if u.has_totp { "totp" } else { "no totp" },
                    last
                );
            }
        }
        UsersCommand::Disable { email } => {
            let user = with_store(settings, async |s| {
                staff::disable(s.staff_store(), &email, Actor::Cli, now)
                    .await
                    .map_err(|e| e.to_string())
            })?;
            println!("disabled {}; its sessions have ended", user.email);
        }
        UsersCommand::Reset { email } => {
            let (user, secret) = with_store(settings, async |s| {
                staff::reset(s.staff_store(), &email, Actor::Cli, now)
                    .await
                    .map_err(|e| e.to_string())
            })?;
            println!("{}", link(&secret));
            eprintln!(
                "reset {}: its password, TOTP and sessions have ended; the setup link above \
                 works once, for {} hours",
                user.email,
                crate::domain::staff::SETUP_VALID_HOURS
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(settings: &Settings, token: &str, public_keys: &[String]) -> CliResult {
    let token = token.trim();
    let ring = if public_keys.is_empty() {
        let ring = Keyring::load_public(&settings.keys_dir).map_err(|e| e.to_string())?;
        if ring.is_empty() {
            return Err(format!(
                "no public keys in {}; pass --public-key k4.public…",
                settings.keys_dir.display()
            ));
        }
        ring
    } else {
        let mut keys = Vec::new();
        for k in public_keys {
            let text = if k.starts_with(paserk::PUBLIC_PREFIX) {
                k.clone()
            } else {
                std::fs::read_to_string(k).map_err(|e| format!("{k}: {e}"))?
            };
            let bytes =
                paserk::parse_public(&text).ok_or_else(|| format!("{k}: not a k4.public key"))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| format!("{k}: not an Ed25519 public key"))?;
            keys.push(key);
        }
        Keyring::from_public_keys(keys)
    };
    if crate::domain::short_key::ShortKey::parse(token).is_some() {
        return Err("this is a short key: it carries no signature and can only be checked online (GET /v1/licenses?key=…)".into());
    }
    let (payload, kid) = ring.verify(token).map_err(|e| format!("invalid: {e}"))?;
    let claims: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|_| "invalid: the payload is not JSON".to_owned())?;
    let kind = claims["kind"].as_str().unwrap_or("");
    if kind != LICENSE_KIND && kind != "activation" {
        return Err(format!("invalid: not a keyclerk token (kind `{kind}`)"));
    }
    let expired = claims["exp"]
        .as_str()
        .and_then(time::parse)
        .is_some_and(|exp| exp <= time::now());
    let out = serde_json::json!({ "valid": !expired, "kid": kid, "claims": claims });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    if expired {
        eprintln!("keyclerk: the signature is genuine but the token expired");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn backup(settings: &Settings, dest: &std::path::Path) -> CliResult {
    let engine = crate::storage::EngineUrl::parse(settings.database.url.as_deref())
        .map_err(|e| e.to_string())?;
    if let crate::storage::EngineUrl::Postgres(url) = engine {
        return Err(crate::storage::postgres::backup_advice(&url, dest));
    }
    let report =
        crate::storage::sqlite::backup(&settings.data_dir, dest).map_err(|e| e.to_string())?;
    println!(
        "backed up to {}: {} licenses, {} audit events (chain verified), {} pages",
        dest.display(),
        report.licenses,
        report.events,
        report.pages
    );
    Ok(ExitCode::SUCCESS)
}

fn db_copy(settings: &Settings, to: &str, from: Option<&std::path::Path>) -> CliResult {
    let crate::storage::EngineUrl::Postgres(url) = crate::storage::EngineUrl::parse(Some(to))
        .map_err(|_| "--to: a postgres:// URL".to_owned())?
    else {
        return Err("--to: a postgres:// URL".into());
    };
    let source = from.map_or_else(
        || settings.data_dir.join(crate::storage::sqlite::DB_FILE),
        std::path::Path::to_path_buf,
    );
    if !source.is_file() {
        return Err(format!("{}: no such SQLite database", source.display()));
    }
    let progress = copy_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let report = crate::storage::postgres::copy_from_sqlite(&source, &url, progress)
        .map_err(|e| e.to_string())?;
    let rows: u64 = report.tables.iter().map(|(_, n)| n).sum();
    println!(
        "copied {} to PostgreSQL: {rows} rows in {} tables, {} audit events (chain verified)",
        source.display(),
        report.tables.len(),
        report.events
    );
    Ok(ExitCode::SUCCESS)
}

/// How `db copy` reports its progress on standard error: on a terminal, one bar per
/// table redrawn in place (at most ten times a second, and once at its end); else
/// plain lines, one per table and every 10,000 rows of a large one, that a log keeps.
fn copy_progress(terminal: bool) -> crate::storage::postgres::Progress {
    if !terminal {
        return Box::new(|table: &str, copied: u64, total: u64| {
            if copied == total || (copied > 0 && copied.is_multiple_of(10_000)) {
                eprintln!("{table}: {copied} of {total}");
            }
        });
    }
    let mut drawn: Option<std::time::Instant> = None;
    Box::new(move |table: &str, copied: u64, total: u64| {
        let done = copied >= total;
        let due = drawn.is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(100));
        if done || due {
            // \r back to the line's start, \x1b[K clears what a longer line left.
            eprint!(
                "\r{}\x1b[K{}",
                progress_bar(table, copied, total),
                if done { "\n" } else { "" }
            );
            drawn = Some(std::time::Instant::now());
        }
    })
}

/// One line of a progress bar: `events  [#########...........]  45%  45000/100000`.
fn progress_bar(table: &str, copied: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let (filled, percent) = match total {
        0 => (WIDTH, 100),
        _ => {
            let copied = copied.min(total);
            (copied * WIDTH / total, copied * 100 / total)
        }
    };
    // `filled` is at most WIDTH (30): the casts cannot truncate.
    let bar = "#".repeat(filled as usize) + &".".repeat((WIDTH - filled) as usize);
    format!("{table:<16} [{bar}] {percent:>3}%  {copied}/{total}")
}

fn audit_verify(settings: &Settings) -> CliResult {
    let result = with_store(settings, async |s| {
        s.verify_audit().await.map_err(|e| e.to_string())
    })?;
    match result {
        Ok(n) => {
            println!("audit chain intact: {n} events");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(format!("audit chain broken: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::progress_bar;

    #[test]
    fn a_progress_bar_fills_with_the_rows_copied_and_never_past_its_end() {
        let half = progress_bar("events", 50, 100);
        assert!(half.starts_with("events "), "{half}");
        assert!(
            half.contains(&format!("[{}{}]", "#".repeat(15), ".".repeat(15))),
            "{half}"
        );
        assert!(half.ends_with(" 50%  50/100"), "{half}");
        let full = progress_bar("licenses", 7, 7);
        assert!(full.contains(&format!("[{}]", "#".repeat(30))), "{full}");
        assert!(full.ends_with("100%  7/7"), "{full}");
        assert!(
            progress_bar("claims", 0, 0).contains("100%"),
            "an empty table is done"
        );
        let over = progress_bar("events", 120, 100);
        assert!(
            over.contains("100%") && over.contains(&"#".repeat(30)),
            "{over}"
        );
    }
}

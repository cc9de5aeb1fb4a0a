//! Builds the server: directories, keys, database, first admin token, HTTP listener.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::config::Settings;
use crate::domain::audit::Actor;
use crate::domain::download::LinkSecret;
use crate::domain::grace::ClaimRules;
use crate::domain::time;
use crate::domain::token::{NewApiToken, Role};
use crate::error::ApiError;
use crate::metrics::http::HttpMetrics;
use crate::routes;
use crate::server::ConnectionCap;
use crate::service::downloads::Downloads;
use crate::service::keys::Keys;
use crate::service::{AppState, Limits};
use crate::storage::last_seen::LastSeen;
use crate::storage::{self, KnownKey, Storage};
use crate::token::keyring::{KeyError, Keyring};
use crate::token::paserk;

/// How often last-seen times noted by validations are written.
const LAST_SEEN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Threads of each worker's blocking pool (actix-web's default is 512 shared out
/// among the workers). What runs there is CPU work (signing a batch, a password
/// hash) or a read waiting for one of the few read connections: more threads than
/// cores and connections add no throughput, only a stack and a malloc arena each.
const BLOCKING_THREADS_PER_WORKER: usize = 4;

/// File (in the data directory) that receives the first admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Why the server did not start; each message tells the operator what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A directory or file could not be made.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The signing keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The database could not be opened.
    #[error(transparent)]
    Database(#[from] crate::storage::OpenError),
    /// The database failed during start-up.
    #[error("database: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// Keys that signed licenses in this database are gone from the keys directory.
    #[error("the keys directory {dir} no longer holds signing key(s) {missing} that this database has used; restore them, or start with --force to accept that keys they signed can no longer be re-issued")]
    KeysChanged {
        /// The keys directory.
        dir: PathBuf,
        /// The missing key ids.
        missing: String,
    },
    /// A product's files are not where `[downloads] dir` says, or lead out of it.
    #[error("{0}")]
    Downloads(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Start-up choices that are not settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    /// Start even though signing keys known to the database are missing.
    pub force: bool,
}

/// A built server, bound and ready to run.
pub struct Application {
    server: Server,
    port: u16,
    metrics: Option<(ServerHandle, u16)>,
    last_seen: Arc<LastSeen>,
    /// Sends the outbox's webhooks while the server runs.
    _webhooks: Option<crate::outbox::WebhookWorker>,
    /// Sends the outbox's mail while the server runs.
    _mail: Option<crate::outbox::MailWorker>,
}

impl Application {
    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the `[metrics] listen` address, when one is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Runs until the server is stopped (SIGINT/SIGTERM).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let done = self.server.await;
        if let Some((metrics, _)) = &self.metrics {
            metrics.stop(true).await;
        }
        // Last-seen times noted since the last flush go to disk before the process ends.
        if let Err(e) = self.last_seen.flush().await {
            log::warn!("could not write the last-seen times: {e}");
        }
        done
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates the data directory (0700) if needed, and the database file in it 0600.
pub fn ensure_data_dir(dir: &Path) -> Result<(), StartError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    crate::files::prepare_database(dir).map_err(io(dir))
}

/// Checks the keyring against the keys the database has seen, then records new ones.
async fn reconcile_keys(
    store: &dyn Storage,
    ring: &Keyring,
    keys_dir: &Path,
    force: bool,
    now: time::Timestamp,
) -> Result<(), StartError> {
    let known = store.known_keys().await?;
    let missing: Vec<String> = known
        .iter()
        .filter(|k| ring.get(&k.kid).is_none())
        .map(|k| k.kid.clone())
        .collect();
    if !missing.is_empty() {
        if !force {
            return Err(StartError::KeysChanged {
                dir: keys_dir.to_owned(),
                missing: missing.join(", "),
            });
        }
        log::warn!(
            "starting with --force although signing key(s) {} are missing from {}",
            missing.join(", "),
            keys_dir.display()
        );
    }
    let new: Vec<KnownKey> = ring
        .public_keys()
        .into_iter()
        .filter(|k| !known.iter().any(|kk| kk.kid == k.kid))
        .map(|k| KnownKey {
            kid: k.kid,
            public_key: k.public_key,
        })
        .collect();
    if !new.is_empty() {
        store.register_keys(new, Actor::System, now).await?;
    }
    Ok(())
}

/// On the very first start, makes an admin token and writes it to a 0600 file.
///
/// The secret is written (and synced) before the token is stored, so that a stored
/// first token is never one nobody can read; it goes to a file of its own first and
/// takes the real name only once this instance's token was the one stored (several
/// instances may start on one new database at once: exactly one token is stored).
async fn bootstrap_admin(
    store: &dyn Storage,
    data_dir: &Path,
    now: time::Timestamp,
) -> Result<(), StartError> {
    if !store.tokens().await?.is_empty() {
        return Ok(());
    }
    let (new, secret) = NewApiToken::generate(Role::Admin, "first admin".into(), now);
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let pending = data_dir.join(format!("{ADMIN_TOKEN_FILE}.{}", new.id));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&pending)
        .map_err(io(&pending))?;
    writeln!(f, "{}", secret.expose()).map_err(io(&pending))?;
    f.sync_all().map_err(io(&pending))?;
    drop(f);
    let stored = store.create_first_token(new, Actor::System).await;
    if !matches!(stored, Ok(Some(_))) {
        // Another instance stored the first token (or the store failed): this
        // secret opens nothing.
        let _ = fs::remove_file(&pending);
        stored?;
        log::info!("another instance made the first admin token (see its data directory)");
        return Ok(());
    }
    fs::rename(&pending, &path).map_err(io(&path))?;
    log::info!(
        "first start: an admin token was written to {} (mode 0600); keep it safe",
        path.display()
    );
    Ok(())
}

/// The request metrics laid out on the route table.
fn http_metrics() -> HttpMetrics {
    let routes: Vec<_> = routes::ROUTES.iter().map(|r| (r.method, r.path)).collect();
    HttpMetrics::new(
        &routes,
        routes::PATTERNS,
        routes::route_index("POST", "/v1/activations"),
    )
}

/// Binds `addr` for a server, with the address in the error.
fn bind(addr: &str) -> Result<(std::net::TcpListener, u16), StartError> {
    let bind_error = |source| StartError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = crate::server::listen(addr).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    Ok((listener, port))
}

/// The `[metrics] listen` server: `/metrics` without a token, one worker, stopped
/// with the API's server (it takes no signals of its own).
fn metrics_server(
    addr: &str,
    state: web::Data<AppState>,
    metrics: web::Data<HttpMetrics>,
) -> Result<(ServerHandle, u16), StartError> {
    let (listener, port) = bind(addr)?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(routes::observe::observe))
            .app_data(state.clone())
            .app_data(metrics.clone())
            .configure(routes::metrics::configure_listener)
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(|source| StartError::Bind {
        addr: addr.to_owned(),
        source,
    })?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    log::info!("/metrics answers without a token on port {port}");
    Ok((handle, port))
}

/// Prepares keys, database and listener; call from inside an actix system.
pub async fn build(settings: &Settings, options: ServeOptions) -> Result<Application, StartError> {
    ensure_data_dir(&settings.data_dir)?;
    // The database first: a URL that cannot be used stops start-up before any key
    // is made.
    let store = storage::open(settings.database.url.as_deref(), &settings.data_dir)?;
    let now = time::now();
    let (ring, created) = Keyring::load_or_create(&settings.keys_dir, now)?;
    crate::files::warn_about_shared_dirs(&settings.data_dir, &settings.keys_dir);
    if let Some(kid) = created {
        log::info!(
            "created signing key {kid} in {}",
            settings.keys_dir.display()
        );
    }
    reconcile_keys(&*store, &ring, &settings.keys_dir, options.force, now).await?;
    bootstrap_admin(&*store, &settings.data_dir, now).await?;
    let secret = store
        .download_secret(*LinkSecret::generate().expose(), now)
        .await?;
    let downloads = Downloads::new(
        &settings.downloads,
        &settings.catalog(),
        LinkSecret::new(secret),
        settings.public_url.clone(),
    )
    .map_err(StartError::Downloads)?;
    if let Some(active) = ring.active() {
        log::info!(
            "signing with {} ({})",
            active.kid,
            paserk::public_of(active.public.as_bytes())
        );
    }
    let (listener, port) = bind(&settings.listen)?;
    let catalog = Arc::new(settings.catalog());
    let policies = catalog.seat_policies();
    let last_seen = Arc::new(
        LastSeen::start(Arc::clone(&store), LAST_SEEN_EVERY)
            .map_err(io(Path::new("last-seen thread")))?,
    );
    let limits = Limits::new(
        &settings.late_claims,
        &settings.rate_limits,
        store.shared_limits(),
    )
    .map_err(io(Path::new("rate-limit thread")))?;
    let state = web::Data::new(AppState {
        store,
        last_seen: Arc::clone(&last_seen),
        keyring: Arc::new(Keys::new(ring, &settings.keys_dir)),
        catalog: Arc::clone(&catalog),
        issuer: settings.issuer.clone(),
        policies: Arc::new(policies),
        claim_policy: settings.late_claims.clone(),
        claim_rules: Arc::new(ClaimRules {
            policy: settings.late_claims.clone(),
            catalog: Arc::clone(&catalog),
        }),
        limits,
        payments: Arc::new(settings.payment_providers()),
        webhooks: settings.webhooks.clone(),
        mail_on: settings.mail.is_some(),
        downloads: Arc::new(downloads),
    });
    // Once, before either outbox worker leases anything: on SQLite this frees the
    // leases of the killed process before us; done by a worker it could free what
    // the other had just leased and is sending (each mail was sent twice).
    state.store.release_own_leases().await?;
    let webhooks = if settings.webhooks.deliver {
        Some(
            crate::outbox::WebhookWorker::start(
                Arc::clone(&state.store),
                settings.webhooks.clone(),
            )
            .map_err(io(Path::new("webhook thread")))?,
        )
    } else {
        log::info!("webhooks: this instance delivers none ([webhooks] deliver = false)");
        None
    };
    let mail = match &settings.mail {
        Some(m) if m.deliver => Some(
            crate::outbox::MailWorker::start(Arc::clone(&state.store), m.clone())
                .map_err(io(Path::new("mail thread")))?,
        ),
        Some(_) => {
            log::info!("mail: this instance delivers none ([mail] deliver = false)");
            None
        }
        None => {
            log::info!("mail: none is sent or queued (no [mail] section)");
            None
        }
    };
    // The instances that send mail look for due reminders; the others only queue.
    if let Some(m) = settings.mail.as_ref().filter(|m| m.deliver) {
        crate::service::reminders::start(
            state.clone(),
            std::time::Duration::from_secs_f64(m.reminder_interval_seconds),
        );
    }
    crate::service::keys::watch(Arc::clone(&state.keyring), Arc::clone(&state.store));
    let http_metrics = web::Data::new(http_metrics());
    let metrics = match &settings.metrics.listen {
        Some(addr) => Some(metrics_server(addr, state.clone(), http_metrics.clone())?),
        None => None,
    };
    let mut console_settings = settings.console.clone();
    if console_settings.public_url.is_none() {
        console_settings.public_url = settings.public_url.clone();
    }
    let console = Arc::new(crate::web::ConsoleState::new(
        &console_settings,
        &settings.issuer,
    ));
    let my = Arc::new(crate::web::my::MyState::new(
        console_settings.public_url.clone(),
    ));
    let body_deadline = settings.server.body_deadline();
    let connection_cap = Arc::new(ConnectionCap::from_settings(settings));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(routes::enforce_access))
            .wrap(from_fn(routes::hygiene::hygiene))
            // Outermost: the request id, the route match the layers below read, the
            // access line (without the query string) and the metrics.
            .wrap(from_fn(routes::observe::observe))
            .app_data(state.clone())
            .app_data(http_metrics.clone())
            .app_data(body_deadline)
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::InvalidQuery(e.to_string()).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::InvalidQuery(e.to_string()).into()),
            )
            .configure(routes::configure)
            .configure(crate::web::configure(Arc::clone(&console)))
            .configure(crate::web::my::configure(Arc::clone(&my)))
            .default_service(web::to(routes::not_found))
    })
    .workers(settings.workers)
    .worker_max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
    .on_connect(move |io, ext| connection_cap.on_connect(io, ext))
    .listen(listener)
    .map_err(|source| StartError::Bind {
        addr: settings.listen.clone(),
        source,
    })?
    .run();
    log::info!("listening on port {port}");
    Ok(Application {
        server,
        port,
        metrics,
        last_seen,
        _webhooks: webhooks,
        _mail: mail,
    })
}

//! Settings: built-in defaults < `config.toml` < `KEYCLERK_*` environment variables.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::grace::ClaimPolicy;
use crate::domain::payments::{Provider, ProviderConfig, ProviderSettings};
use crate::domain::product::{Catalog, Product, ProductId, ProductSpec};
use crate::logging::LogSettings;
use crate::server::ServerSettings;
use crate::service::limits::RateLimitSettings;

/// The repository's `config.toml`, used when no file is given and none is present.
pub const EMBEDDED_CONFIG: &str = include_str!("../config.toml");
/// The file read when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config.toml";
const ENV_PREFIX: &str = "KEYCLERK_";

/// Every setting of the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (`host:port`; port 0 picks one).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Directory of the database.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Directory of the signing keys.
    #[serde(default = "default_keys_dir")]
    pub keys_dir: PathBuf,
    /// The `iss` claim.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The log: level and format. `log = "debug"` (a level alone) is read as
    /// `[log] level = "debug"`.
    #[serde(default)]
    pub log: LogSettings,
    /// `/metrics`: an address of its own, if any.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Limits of the HTTP server (body deadline, connections per address).
    #[serde(default)]
    pub server: ServerSettings,
    /// HTTP worker threads, 1 to 512 (default: one per CPU, as actix-web).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// What customers' own late claims get without a person.
    #[serde(default)]
    pub late_claims: ClaimPolicy,
    /// Limits of the public endpoints.
    #[serde(default)]
    pub rate_limits: RateLimitSettings,
    /// Which database: the embedded SQLite file, or PostgreSQL.
    #[serde(default)]
    pub database: DatabaseSettings,
    /// Outgoing webhooks: delivery, retries, which addresses endpoints may reach.
    #[serde(default)]
    pub webhooks: crate::outbox::WebhookSettings,
    /// The support console: sessions, sign-in limits, TOTP.
    #[serde(default)]
    pub console: crate::web::ConsoleSettings,
    /// The address customers and staff reach keyclerk at (`https://licenses.example.com`):
    /// links in mail start with it, and the console's when `[console] public_url`
    /// is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// `[mail]`: mail to customers over SMTP; without it no mail is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<crate::outbox::MailSettings>,
    /// `[downloads]`: where the products' files are, how long a link lives.
    #[serde(default)]
    pub downloads: crate::service::downloads::DownloadSettings,
    /// The catalog.
    #[serde(default)]
    pub products: BTreeMap<String, ProductSpec>,
    /// `[payments.<provider>]`: the payment providers whose webhooks keyclerk takes.
    #[serde(default)]
    pub payments: BTreeMap<String, ProviderSettings>,
}

/// `[metrics]`: `GET /metrics` answers on `listen` to admin tokens, and, when
/// `listen` is set here, on that address too, without a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port` of a listener that serves only `/metrics`, to anyone who reaches it.
    pub listen: Option<String>,
}

/// `[database]`: absent, or `url = "sqlite:"`, is the SQLite file in `data_dir`;
/// `url = "postgres://…"` is PostgreSQL.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite:` or a libpq URL (`postgres://user@host1,host2/db?…`).
    pub url: Option<String>,
}

/// The URL may hold a password: never printed.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.url.as_ref().map(|_| "…"))
            .finish()
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_data_dir() -> PathBuf {
    "data".into()
}
fn default_keys_dir() -> PathBuf {
    "keys".into()
}
fn default_issuer() -> String {
    "keyclerk".into()
}
/// actix-web panics outside 1..=512 workers.
const MAX_WORKERS: usize = 512;
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, NonZeroUsize::get)
        .min(MAX_WORKERS)
}

/// A configuration that cannot be used; the message names the file and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Settings and the warnings met while loading them (unknown variables).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings.
    pub settings: Settings,
    /// Things the operator should know, to log once logging is up.
    pub warnings: Vec<String>,
    /// Where the settings came from.
    pub source: String,
}

impl Settings {
    /// Loads from `path` (or `./config.toml`, or the built-in copy) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
        let (source, text) = match path {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("{}: cannot read: {e}", p.display())))?,
            ),
            None => match std::fs::read_to_string(DEFAULT_CONFIG_PATH) {
                Ok(t) => (DEFAULT_CONFIG_PATH.to_owned(), t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                    "built-in config.toml".to_owned(),
                    EMBEDDED_CONFIG.to_owned(),
                ),
                Err(e) => {
                    return Err(ConfigError(format!(
                        "{DEFAULT_CONFIG_PATH}: cannot read: {e}"
                    )))
                }
            },
        };
        Self::from_toml(&source, &text, std::env::vars())
    }

    /// Parses `text` (named `source` in messages) and applies `env` overrides.
    pub fn from_toml(
        source: &str,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut value: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError(format!("{source}: {}", e.to_string().trim()))
        })?;
        // `log = "debug"` is the level alone (as before `[log]` had a format).
        if let Some(toml::Value::String(level)) = value.get("log").cloned() {
            let mut section = toml::Table::new();
            section.insert("level".into(), toml::Value::String(level));
            value.insert("log".into(), toml::Value::Table(section));
        }
        let password_in_file = value
            .get("mail")
            .and_then(toml::Value::as_table)
            .is_some_and(|m| m.contains_key("password"));
        if password_in_file {
            return Err(ConfigError(format!(
                "{source}: mail.password: set it in the environment ({}), never in the file",
                crate::outbox::mail::PASSWORD_VARIABLE
            )));
        }
        let mut warnings = Vec::new();
        let mut env: Vec<_> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        env.sort();
        for (name, raw) in env {
            // KEYCLERK_LOG stays the level, beside KEYCLERK_LOG__FORMAT.
            let name = if name == "KEYCLERK_LOG" {
                "KEYCLERK_LOG__LEVEL".to_owned()
            } else {
                name
            };
            if !apply_env(&mut value, &name, &raw) {
                warnings.push(format!(
                    "environment variable {name} matches no setting; ignored"
                ));
            }
        }
        let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(value))
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                let inner = inner.trim();
                if path == "." {
                    ConfigError(format!("{source}: {inner}"))
                } else {
                    ConfigError(format!("{source}: {path}: {inner}"))
                }
            })?;
        settings.check(source)?;
        Ok(Loaded {
            settings,
            warnings,
            source: source.to_owned(),
        })
    }

    fn check(&self, source: &str) -> Result<(), ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(ConfigError(format!("{source}: issuer: must not be empty")));
        }
        if let Some((key, message)) = self.server.problem() {
            return Err(ConfigError(format!("{source}: server.{key}: {message}")));
        }
        if self
            .metrics
            .listen
            .as_deref()
            .is_some_and(|l| l.trim().is_empty())
        {
            return Err(ConfigError(format!(
                "{source}: metrics.listen: an address (host:port), or leave it out"
            )));
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(ConfigError(format!(
                "{source}: workers: must be between 1 and {MAX_WORKERS}"
            )));
        }
        if let Some((key, message)) = self.rate_limits.problem() {
            return Err(ConfigError(format!(
                "{source}: rate_limits.{key}: {message}"
            )));
        }
        if let Some((key, message)) = self.webhooks.problem() {
            return Err(ConfigError(format!("{source}: webhooks.{key}: {message}")));
        }
        if let Some((key, message)) = self.console.problem() {
            return Err(ConfigError(format!("{source}: console.{key}: {message}")));
        }
        if self
            .public_url
            .as_deref()
            .is_some_and(|u| !crate::web::settings::is_public_url(u))
        {
            return Err(ConfigError(format!(
                "{source}: public_url: {}",
                crate::web::settings::PUBLIC_URL_SHAPE
            )));
        }
        if let Some((key, message)) = self.mail.as_ref().and_then(|m| m.problem()) {
            return Err(ConfigError(format!("{source}: mail.{key}: {message}")));
        }
        if let Some((key, message)) = self.downloads.problem() {
            return Err(ConfigError(format!("{source}: downloads.{key}: {message}")));
        }
        for (id, spec) in &self.products {
            if ProductId::parse(id).is_none() {
                return Err(ConfigError(format!(
                    "{source}: products.{id}: a product id is 1-64 of a-z, 0-9 and -"
                )));
            }
            if let Some((key, message)) = spec.problems().into_iter().next() {
                return Err(ConfigError(format!(
                    "{source}: products.{id}.{key}: {message}"
                )));
            }
        }
        for (name, provider) in &self.payments {
            if Provider::parse(name).is_none() {
                let known: Vec<_> = Provider::ALL.iter().map(|p| p.as_str()).collect();
                return Err(ConfigError(format!(
                    "{source}: payments.{name}: no such payment provider; one of {}",
                    known.join(", ")
                )));
            }
            let known = |p: &str| self.products.contains_key(p);
            if let Some((key, message)) = provider.problem(&known) {
                return Err(ConfigError(format!(
                    "{source}: payments.{name}.{key}: {message}"
                )));
            }
        }
        Ok(())
    }

    /// The payment providers configured, by provider.
    pub fn payment_providers(&self) -> BTreeMap<Provider, ProviderConfig> {
        self.payments
            .iter()
            .filter_map(|(name, settings)| {
                let provider = Provider::parse(name)?;
                Some((
                    provider,
                    ProviderConfig {
                        provider,
                        settings: settings.clone(),
                    },
                ))
            })
            .collect()
    }

    /// The catalog of products.
    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.products.iter().filter_map(|(id, spec)| {
            Some(Product {
                id: ProductId::parse(id)?,
                spec: spec.clone(),
            })
        }))
    }
}

/// Sets `KEYCLERK_A__B=v` as `a.b = v`, typed like the value it replaces.
/// Returns false when the name matches no setting.
fn apply_env(table: &mut toml::Table, name: &str, raw: &str) -> bool {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return false;
    };
    let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
    let defaults = toml::Table::try_from(Settings::defaults()).unwrap_or_default();
    let (last, parents) = match path.split_last() {
        Some(split) => split,
        None => return false,
    };
    if parents.is_empty() && !defaults.contains_key(last.as_str()) {
        return false;
    }
    if !parents.is_empty()
        && !defaults.contains_key(parents[0].as_str())
        && !table.contains_key(parents[0].as_str())
    {
        return false;
    }
    let mut current = table;
    for p in parents {
        let entry = current
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => current = t,
            _ => return false,
        }
    }
    let template = current.get(last.as_str()).cloned().or_else(|| {
        if parents.is_empty() {
            defaults.get(last.as_str()).cloned()
        } else {
            None
        }
    });
    let value = typed_like(template.as_ref(), raw);
    current.insert(last.clone(), value);
    true
}

fn typed_like(template: Option<&toml::Value>, raw: &str) -> toml::Value {
    let parsed = || {
        format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
    };
    match template {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
        _ => parsed().unwrap_or_else(|| toml::Value::String(raw.to_owned())),
    }
}

impl Settings {
    /// The built-in defaults, without products.
    pub fn defaults() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            keys_dir: default_keys_dir(),
            issuer: default_issuer(),
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
            server: ServerSettings::default(),
            workers: default_workers(),
            late_claims: ClaimPolicy::default(),
            rate_limits: RateLimitSettings::default(),
            database: DatabaseSettings::default(),
            webhooks: crate::outbox::WebhookSettings::default(),
            console: crate::web::ConsoleSettings::default(),
            public_url: None,
            mail: None,
            downloads: crate::service::downloads::DownloadSettings::default(),
            products: BTreeMap::new(),
            payments: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        Settings::from_toml(
            "test.toml",
            text,
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn the_shipped_config_loads_with_at_least_four_products() {
        let loaded = load(EMBEDDED_CONFIG, &[]).unwrap();
        assert!(loaded.settings.catalog().iter().count() >= 4);
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let s = load("", &[]).unwrap().settings;
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("data"));
    }

    #[test]
    fn environment_variables_override_the_file() {
        let s = load(
            "listen = \"1.2.3.4:5\"\n[products.a]\nname = \"A\"\nprice = { amount = 1, currency = \"EUR\" }\n",
            &[
                ("KEYCLERK_LISTEN", "127.0.0.1:0"),
                ("KEYCLERK_DATA_DIR", "/tmp/d"),
                ("KEYCLERK_KEYS_DIR", "/tmp/k"),
                ("KEYCLERK_ISSUER", "123"),
                ("KEYCLERK_PRODUCTS__A__SEATS", "4"),
            ],
        )
        .unwrap()
        .settings;
        assert_eq!(s.listen, "127.0.0.1:0");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(s.keys_dir, PathBuf::from("/tmp/k"));
        assert_eq!(s.issuer, "123", "a string setting stays a string");
        assert_eq!(s.products["a"].seats, 4);
    }

    #[test]
    fn an_unknown_variable_is_warned_about_not_fatal() {
        let loaded = load("", &[("KEYCLERK_LISTNE", "x")]).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("KEYCLERK_LISTNE"));
    }

    #[test]
    fn rate_limits_are_on_by_default_and_off_by_one_variable() {
        let on = load("", &[]).unwrap();
        assert!(on.settings.rate_limits.enabled);
        let shipped = Settings::from_toml("config.toml", EMBEDDED_CONFIG, Vec::new()).unwrap();
        assert_eq!(shipped.settings.rate_limits, RateLimitSettings::default());
        let off = load("", &[("KEYCLERK_RATE_LIMITS__ENABLED", "false")]).unwrap();
        assert!(off.warnings.is_empty(), "{:?}", off.warnings);
        assert!(!off.settings.rate_limits.enabled);
        let bad = load("[rate_limits]\ntrusted_proxies = [\"10.0.0.0/40\"]", &[]).unwrap_err();
        assert!(bad.0.contains("rate_limits.trusted_proxies"), "{}", bad.0);
    }

    #[test]
    fn the_shipped_server_limits_are_the_defaults_and_a_bad_one_is_named() {
        let shipped = Settings::from_toml("config.toml", EMBEDDED_CONFIG, Vec::new()).unwrap();
        assert_eq!(shipped.settings.server, ServerSettings::default());
        let env = load("", &[("KEYCLERK_SERVER__BODY_TIMEOUT_SECONDS", "3")]).unwrap();
        assert!(env.warnings.is_empty(), "{:?}", env.warnings);
        assert_eq!(env.settings.server.body_timeout_seconds, 3);
        let bad = load("[server]\nbody_timeout_seconds = 0", &[]).unwrap_err();
        assert!(bad.0.contains("server.body_timeout_seconds"), "{}", bad.0);
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_problem() {
        for (case, text, expected) in [
            ("syntax", "listen = ", "test.toml: TOML parse error"),
            ("unknown key", "lisen = \"x\"", "unknown field `lisen`"),
            ("no workers", "workers = 0", "test.toml: workers: must be between 1 and 512"),
            (
                "wrong type",
                "[products.a]\nname = \"A\"\nprice = { amount = 1, currency = \"EUR\" }\nseats = \"three\"",
                "test.toml: products.a.seats: invalid type",
            ),
            (
                "bad value",
                "[products.a]\nname = \"A\"\nprice = { amount = 1, currency = \"EUR\" }\nseats = 0",
                "test.toml: products.a.seats: must be between",
            ),
            (
                "bad currency",
                "[products.a]\nname = \"A\"\nprice = { amount = 1, currency = \"eu\" }",
                "test.toml: products.a.price.currency:",
            ),
            (
                "bad slug",
                "[products.A]\nname = \"A\"\nprice = { amount = 1, currency = \"EUR\" }",
                "test.toml: products.A:",
            ),
            (
                "bad key format",
                "[products.a]\nname = \"A\"\nprice = { amount = 1, currency = \"EUR\" }\nkey_format = \"long\"",
                "test.toml: products.a.key_format: unknown variant `long`",
            ),
        ] {
            let err = load(text, &[]).unwrap_err().0;
            assert!(err.contains(expected), "{case}: {err}");
        }
    }

    #[test]
    fn the_log_is_a_level_alone_or_a_section_with_a_format() {
        use crate::logging::LogFormat;
        let shipped = load(EMBEDDED_CONFIG, &[]).unwrap().settings;
        assert_eq!(shipped.log, LogSettings::default());
        assert_eq!(shipped.metrics, MetricsSettings::default());
        let alone = load("log = \"debug\"", &[]).unwrap().settings;
        assert_eq!(alone.log.level, "debug");
        assert_eq!(alone.log.format, LogFormat::Text);
        let section = load("[log]\nlevel = \"warn\"\nformat = \"json\"", &[])
            .unwrap()
            .settings;
        assert_eq!(
            (section.log.level.as_str(), section.log.format),
            ("warn", LogFormat::Json)
        );
        let env = load(
            "log = \"info\"",
            &[("KEYCLERK_LOG", "trace"), ("KEYCLERK_LOG__FORMAT", "json")],
        )
        .unwrap();
        assert!(env.warnings.is_empty(), "{:?}", env.warnings);
        assert_eq!(env.settings.log.level, "trace");
        assert_eq!(env.settings.log.format, LogFormat::Json);
        let bad = load("[log]\nformat = \"xml\"", &[]).unwrap_err();
        assert!(bad.0.contains("log.format"), "{}", bad.0);
        let metrics = load("", &[("KEYCLERK_METRICS__LISTEN", "127.0.0.1:9100")]).unwrap();
        assert!(metrics.warnings.is_empty(), "{:?}", metrics.warnings);
        assert_eq!(
            metrics.settings.metrics.listen.as_deref(),
            Some("127.0.0.1:9100")
        );
    }

    #[test]
    fn payment_providers_come_from_the_file_with_their_secrets_from_the_environment() {
        let file = "[products.a]\nname = \"A\"\nprice = { amount = 1, currency = \"EUR\" }\n\
            [payments.stripe]\nwebhook_secrets = [\"whsec_file\"]\n\
            [payments.stripe.products]\n\"price_1\" = \"a\"\n\"price_team\" = { product = \"a\", seats = 5 }\n";
        let loaded = load(file, &[]).unwrap().settings;
        let stripe = &loaded.payment_providers()[&Provider::Stripe];
        assert_eq!(stripe.settings.webhook_secrets[0].expose(), "whsec_file");
        assert_eq!(stripe.tolerance_secs(), Some(300));
        assert_eq!(stripe.settings.products["price_team"].seats(), Some(5));
        let env = load(
            file,
            &[
                (
                    "KEYCLERK_PAYMENTS__STRIPE__WEBHOOK_SECRETS",
                    r#"["whsec_a","whsec_b"]"#,
                ),
                ("KEYCLERK_PAYMENTS__PADDLE__WEBHOOK_SECRETS", "pdl_ntfset_x"),
                ("KEYCLERK_PAYMENTS__PADDLE__TOLERANCE_SECONDS", "30"),
            ],
        )
        .unwrap();
        assert!(env.warnings.is_empty(), "{:?}", env.warnings);
        let providers = env.settings.payment_providers();
        assert_eq!(
            providers[&Provider::Stripe].settings.webhook_secrets.len(),
            2
        );
        assert_eq!(
            providers[&Provider::Paddle].settings.webhook_secrets[0].expose(),
            "pdl_ntfset_x"
        );
        assert_eq!(providers[&Provider::Paddle].tolerance_secs(), Some(30));
        assert!(!format!("{:?}", env.settings).contains("whsec_a"));
        let env_alone = load(
            "",
            &[("KEYCLERK_PAYMENTS__STRIPE__WEBHOOK_SECRETS", "whsec_x")],
        )
        .unwrap();
        assert!(env_alone.warnings.is_empty(), "{:?}", env_alone.warnings);
        assert_eq!(env_alone.settings.payment_providers().len(), 1);
    }

    #[test]
    fn a_payment_mapping_to_an_unknown_product_stops_start_up_naming_its_key() {
        let err = load(
            "[payments.stripe]\nwebhook_secrets = \"whsec_x\"\n[payments.stripe.products]\n\"price_9\" = \"nope\"\n",
            &[],
        )
        .unwrap_err()
        .0;
        assert!(
            err.contains("payments.stripe.products.\"price_9\": no product `nope`"),
            "{err}"
        );
        let unknown = load("[payments.paypal]\nwebhook_secrets = \"x\"\n", &[])
            .unwrap_err()
            .0;
        assert!(
            unknown.contains("payments.paypal: no such payment provider"),
            "{unknown}"
        );
        let no_secret = load("[payments.paddle]\n", &[]).unwrap_err().0;
        assert!(
            no_secret.contains("payments.paddle.webhook_secrets"),
            "{no_secret}"
        );
    }

    #[test]
    fn downloads_default_to_files_and_15_minutes_and_a_bad_file_list_names_the_product() {
        let shipped = load(EMBEDDED_CONFIG, &[]).unwrap().settings;
        assert_eq!(shipped.downloads.dir, PathBuf::from("files"));
        assert_eq!(shipped.downloads.link_minutes, 15);
        let env = load("", &[("KEYCLERK_DOWNLOADS__LINK_MINUTES", "5")]).unwrap();
        assert!(env.warnings.is_empty(), "{:?}", env.warnings);
        assert_eq!(env.settings.downloads.link_minutes, 5);
        let bad = load("[downloads]\nlink_minutes = 0", &[]).unwrap_err().0;
        assert!(bad.contains("downloads.link_minutes"), "{bad}");
        let product = "[products.a]\nname = \"A\"\nprice = { amount = 1, currency = \"EUR\" }\n";
        let ok = load(
            &format!("{product}files = [{{ name = \"A.dmg\", path = \"a/A.dmg\" }}]\n"),
            &[],
        )
        .unwrap();
        assert_eq!(ok.settings.products["a"].files[0].path, "a/A.dmg");
        let escape = load(
            &format!("{product}files = [{{ name = \"A.dmg\", path = \"../A.dmg\" }}]\n"),
            &[],
        )
        .unwrap_err()
        .0;
        assert!(
            escape.contains("products.a.files: `A.dmg`: path `../A.dmg`"),
            "{escape}"
        );
        let unknown = load(
            &format!("{product}files = [{{ name = \"A\", url = \"x\" }}]\n"),
            &[],
        )
        .unwrap_err()
        .0;
        assert!(unknown.contains("products.a.files"), "{unknown}");
    }

    #[test]
    fn the_database_url_comes_from_the_file_or_the_environment_and_is_never_printed() {
        let none = load("", &[]).unwrap();
        assert!(none.settings.database.url.is_none());
        let file = load("[database]\nurl = \"sqlite:\"\n", &[]).unwrap();
        assert_eq!(file.settings.database.url.as_deref(), Some("sqlite:"));
        let env = load(
            "",
            &[("KEYCLERK_DATABASE__URL", "postgres://kc:s3cret@db1,db2/kc")],
        )
        .unwrap();
        assert!(env.warnings.is_empty(), "{:?}", env.warnings);
        assert_eq!(
            env.settings.database.url.as_deref(),
            Some("postgres://kc:s3cret@db1,db2/kc")
        );
        assert!(!format!("{:?}", env.settings).contains("s3cret"));
    }

    #[test]
    fn mail_is_checked_at_start_up_and_its_password_comes_from_the_environment_only() {
        let ok = "[mail]\nurl = \"smtps://shop@mail.example.com:465\"\nfrom = \"Shop <shop@example.com>\"\n";
        assert!(load("", &[("KEYCLERK_MAIL__PASSWORD", "pw")])
            .unwrap()
            .settings
            .mail
            .is_none());
        let loaded = load(ok, &[("KEYCLERK_MAIL__PASSWORD", "s3cret")]).unwrap();
        let mail = loaded.settings.mail.clone().unwrap();
        assert_eq!(mail.password.as_ref().map(|p| p.0.as_str()), Some("s3cret"));
        assert!(!format!("{:?}", loaded.settings).contains("s3cret"));
        let in_file = format!("{ok}password = \"x\"\n");
        let e = load(&in_file, &[]).unwrap_err().0;
        assert!(
            e.contains("mail.password") && e.contains("KEYCLERK_MAIL__PASSWORD"),
            "{e}"
        );
        for (bad, key) in [
            (
                "url = \"http://mail.example.com\"\nfrom = \"a@b.c\"",
                "mail.url",
            ),
            (
                "url = \"smtp://u:pw@mail.example.com\"\nfrom = \"a@b.c\"",
                "mail.url",
            ),
            (
                "url = \"smtp://mail.example.com\"\nfrom = \"not an address\"",
                "mail.from",
            ),
        ] {
            let e = load(&format!("[mail]\n{bad}\n"), &[]).unwrap_err().0;
            assert!(e.contains(key), "{bad}: {e}");
        }
        let e = load("public_url = \"ftp://x\"\n", &[]).unwrap_err().0;
        assert!(e.contains("public_url"), "{e}");
    }
}

//! The catalog: products and the policy every license of them follows.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest product slug.
pub const MAX_PRODUCT_ID_CHARS: usize = 64;

/// Whether `c` may be in a product slug: `a-z`, `0-9` and `-`.
pub fn is_slug_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// Whether `c` may start a product slug: a letter or digit.
pub fn is_slug_start(c: char) -> bool {
    is_slug_char(c) && c != '-'
}

/// A product's slug: 1 to 64 of `a-z`, `0-9` and `-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ProductId(String);

impl ProductId {
    /// Reads a slug; `None` if it does not have the allowed shape.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.chars().count() <= MAX_PRODUCT_ID_CHARS
            && s.chars().next().is_some_and(is_slug_start)
            && s.chars().all(is_slug_char);
        ok.then(|| Self(s.to_owned()))
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A price in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Amount in minor units.
    pub amount: u64,
    /// Three upper-case letters, such as `EUR`.
    pub currency: String,
}

/// When a license's duration starts counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DurationFrom {
    /// From the purchase time.
    #[default]
    Purchase,
    /// From the first activation.
    Activation,
}

impl DurationFrom {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::Activation => "activation",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "purchase" => Some(Self::Purchase),
            "activation" => Some(Self::Activation),
            _ => None,
        }
    }
}

/// The kind of key a product's licenses get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// A PASETO v4.public token an app can verify offline.
    #[default]
    Signed,
    /// A 25-character key for typing; checked online only.
    Short,
}

impl KeyFormat {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signed => "signed",
            Self::Short => "short",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "signed" => Some(Self::Signed),
            "short" => Some(Self::Short),
            _ => None,
        }
    }
}

fn default_seats() -> u32 {
    1
}
/// Life of an activation certificate, unless the product says.
pub const DEFAULT_LEASE_DAYS: u32 = 30;
/// Days a certificate outlives the license's expiry, unless the product says.
pub const DEFAULT_OFFLINE_GRACE_DAYS: u32 = 7;

fn default_lease_days() -> u32 {
    DEFAULT_LEASE_DAYS
}
fn default_offline_grace_days() -> u32 {
    DEFAULT_OFFLINE_GRACE_DAYS
}
fn default_max_deactivations() -> u32 {
    crate::domain::activation::DEFAULT_MAX_DEACTIVATIONS_PER_30_DAYS
}

/// A product as written in the catalog (`[products.<id>]` in `config.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    /// Display name.
    pub name: String,
    /// What a license costs.
    pub price: Price,
    /// Machines that may hold an activation at once.
    #[serde(default = "default_seats")]
    pub seats: u32,
    /// Days after purchase within which the first activation must happen; none = no deadline.
    #[serde(default)]
    pub activation_window_days: Option<u32>,
    /// Life of a license in days; none = perpetual.
    #[serde(default)]
    pub duration_days: Option<u32>,
    /// Whether the duration counts from purchase or from first activation.
    #[serde(default)]
    pub duration_from: DurationFrom,
    /// Life of an activation certificate before the app must refresh it.
    #[serde(default = "default_lease_days")]
    pub lease_days: u32,
    /// Days a certificate may outlive the license's expiry, for apps that are offline.
    #[serde(default = "default_offline_grace_days")]
    pub offline_grace_days: u32,
    /// Signed (offline-verifiable) or short (typed) keys.
    #[serde(default)]
    pub key_format: KeyFormat,
    /// Feature flags a license of this product carries.
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// Deactivations a license may make per rolling 30 days.
    #[serde(default = "default_max_deactivations")]
    pub max_deactivations_per_30_days: u32,
    /// Free the seat of a machine not seen for that many days; none = never.
    #[serde(default)]
    pub release_after_days: Option<u32>,
    /// Mail the key to the customer after a mint, unless the mint request's
    /// `send_email` says otherwise (with `[mail]` set up).
    #[serde(default)]
    pub deliver_by_email: bool,
    /// Mail a reminder this many days before the activation window closes, once
    /// per listed day, to a license never activated (with `[mail]` set up and a
    /// customer email), for example `[14, 3]`.
    #[serde(default)]
    pub remind_before_days: Vec<u32>,
    /// Files a license of this product may download, under `[downloads] dir`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<crate::domain::download::ProductFile>,
}

/// Upper bound on seats of one license, to keep counting and requests sane.
pub const MAX_SEATS: u32 = 100_000;

/// Longest entitlement name.
pub const MAX_ENTITLEMENT_CHARS: usize = 64;

/// Most entitlements one license carries.
pub const MAX_ENTITLEMENTS: usize = 64;

/// Whether `c` may be in an entitlement name: letters, digits, `-`, `_`, `.`, `:`.
pub fn is_entitlement_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.:".contains(c)
}

/// Whether `s` is an acceptable entitlement name.
pub fn is_entitlement(s: &str) -> bool {
    (1..=MAX_ENTITLEMENT_CHARS).contains(&s.chars().count()) && s.chars().all(is_entitlement_char)
}

/// Letters in an ISO 4217 currency code.
pub const CURRENCY_LETTERS: usize = 3;

/// Whether `s` has the shape of an ISO 4217 code: three upper-case letters.
pub fn is_currency(s: &str) -> bool {
    s.chars().count() == CURRENCY_LETTERS && s.chars().all(|c| c.is_ascii_uppercase())
}

impl ProductSpec {
    /// Every problem with this spec, as (key, message) pairs; empty when it is sound.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("name", "must not be empty".to_owned()));
        }
        let c = &self.price.currency;
        if !is_currency(c) {
            out.push((
                "price.currency",
                format!("`{c}` is not an ISO 4217 code (three upper-case letters)"),
            ));
        }
        if !(1..=MAX_SEATS).contains(&self.seats) {
            out.push(("seats", format!("must be between 1 and {MAX_SEATS}")));
        }
        for (key, v) in [
            ("activation_window_days", self.activation_window_days),
            ("duration_days", self.duration_days),
            ("release_after_days", self.release_after_days),
        ] {
            if v == Some(0) {
                out.push((key, "must be at least 1 (omit it for none)".to_owned()));
            }
        }
        for message in
            crate::domain::reminder::problems(&self.remind_before_days, self.activation_window_days)
        {
            out.push(("remind_before_days", message));
        }
        if self.lease_days == 0 {
            out.push(("lease_days", "must be at least 1".to_owned()));
        }
        if self.duration_days.is_none() && self.duration_from == DurationFrom::Activation {
            out.push((
                "duration_from",
                "`activation` needs duration_days (a perpetual license has no duration)".to_owned(),
            ));
        }
        if let Some(problem) = crate::domain::download::files_problems(&self.files)
            .into_iter()
            .next()
        {
            out.push(("files", problem));
        }
        if let Some(bad) = self.entitlements.iter().find(|e| !is_entitlement(e)) {
            out.push((
                "entitlements",
                format!("`{bad}` is not 1-{MAX_ENTITLEMENT_CHARS} characters of letters, digits, - _ . :"),
            ));
        }
        out
    }
}

/// A product of the catalog, with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Product {
    /// The slug.
    pub id: ProductId,
    /// Everything else.
    #[serde(flatten)]
    pub spec: ProductSpec,
}

/// All products, by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    products: BTreeMap<ProductId, Product>,
}

impl Catalog {
    /// The seat rules (churn limit, release of unseen machines) of every product.
    pub fn seat_policies(&self) -> crate::domain::activation::SeatPolicies {
        crate::domain::activation::SeatPolicies::new(
            self.products
                .values()
                .map(|p| {
                    let policy = crate::domain::activation::SeatPolicy {
                        max_deactivations_per_30_days: p.spec.max_deactivations_per_30_days,
                        release_after_days: p.spec.release_after_days,
                    };
                    (p.id.to_string(), policy)
                })
                .collect(),
        )
    }

    /// A catalog of these products.
    pub fn new(products: impl IntoIterator<Item = Product>) -> Self {
        Self {
            products: products.into_iter().map(|p| (p.id.clone(), p)).collect(),
        }
    }

    /// The product with this id, if any.
    pub fn get(&self, id: &str) -> Option<&Product> {
        ProductId::parse(id).and_then(|id| self.products.get(&id))
    }

    /// Every product, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Product> {
        self.products.values()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A product for tests: 90-day window, one year from activation, 3 seats.
    pub fn photo_pro() -> Product {
        Product {
            id: ProductId::parse("photo-pro").unwrap(),
            spec: ProductSpec {
                name: "Photo Pro".into(),
                price: Price {
                    amount: 4900,
                    currency: "EUR".into(),
                },
                seats: 3,
                activation_window_days: Some(90),
                duration_days: Some(365),
                duration_from: DurationFrom::Activation,
                lease_days: 30,
                offline_grace_days: 7,
                key_format: KeyFormat::Signed,
                entitlements: vec!["export".into()],
                max_deactivations_per_30_days: 10,
                release_after_days: None,
                deliver_by_email: false,
                remind_before_days: Vec::new(),
                files: Vec::new(),
            },
        }
    }

    #[test]
    fn product_ids_are_slugs() {
        for (case, s, ok) in [
            ("plain", "photo-pro", true),
            ("digits", "app2", true),
            ("upper case", "Photo", false),
            ("leading dash", "-x", false),
            ("empty", "", false),
            ("space", "a b", false),
            ("too long", &"a".repeat(65), false),
        ] {
            assert_eq!(ProductId::parse(s).is_some(), ok, "{case}");
        }
    }

    #[test]
    fn a_sound_spec_has_no_problems() {
        assert!(photo_pro().spec.problems().is_empty());
    }

    #[test]
    fn each_problem_names_its_key() {
        let mut spec = photo_pro().spec;
        spec.seats = 0;
        spec.price.currency = "euro".into();
        spec.duration_days = None;
        let keys: Vec<_> = spec.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["price.currency", "seats", "duration_from"]);
    }

    #[test]
    fn the_catalog_finds_products_by_slug() {
        let catalog = Catalog::new([photo_pro()]);
        assert!(catalog.get("photo-pro").is_some());
        assert!(catalog.get("nope").is_none());
        assert!(catalog.get("NOT A SLUG").is_none());
    }
}

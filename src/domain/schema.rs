//! The JSON Schema of each value a request carries, built from the rule the server
//! checks it with. Request types name these as their fields' schemas
//! (`#[schema(value_type = ...)]`), so the API document states every limit from the
//! constant the check uses: no number is written twice.

use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::activation::{FINGERPRINT, MACHINE_LABEL, NONCE};
use crate::domain::audit::MAX_HISTORY_PAGE;
use crate::domain::grace::{IDEMPOTENCY_KEY, MAX_EXTENSION_DAYS};
use crate::domain::ids::{is_id_char, ID_BODY_CHARS};
use crate::domain::license::{
    Email, MAX_BATCH, MAX_EMAIL_CHARS, MAX_EMAIL_LOCAL_CHARS, MAX_LICENSE_PAGE, MAX_METADATA_BYTES,
    MAX_RENEWAL_DAYS, ORDER_ID,
};
use crate::domain::product::{
    is_entitlement_char, is_slug_char, is_slug_start, ProductId, CURRENCY_LETTERS,
    MAX_ENTITLEMENTS, MAX_ENTITLEMENT_CHARS, MAX_PRODUCT_ID_CHARS, MAX_SEATS,
};
use crate::domain::text::{class, Chars, TextRule, NOTE, REASON};
use crate::domain::time::LATEST_UNIX;
use crate::domain::token::{PREFIX_LEN, TOKEN_NAME, TOKEN_PREFIX};
use crate::domain::webhook::{
    event_types, ALL_EVENTS, MAX_DELIVERY_PAGE, MAX_OVERLAP_HOURS, MAX_URL_CHARS,
};

/// Declares a schema-only type (named as the type) with the schema `$schema`.
macro_rules! shape {
    ($($(#[$doc:meta])* $name:ident => $schema:expr;)+) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    Schema::from($schema).into()
                }
            }

            impl ToSchema for $name {}
        )+

        /// Every shape, by name, for the document's components.
        pub fn all() -> Vec<(String, RefOr<Schema>)> {
            vec![$( (<$name as ToSchema>::name().into_owned(), <$name as PartialSchema>::schema()), )+]
        }
    };
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A text of `rule`, described by `what` and the rule in words.
fn text(rule: &TextRule, what: &str) -> ObjectBuilder {
    string()
        .min_length((rule.min_chars() > 0).then_some(rule.min_chars()))
        .max_length(Some(rule.max_chars))
        .pattern(Some(rule.pattern()))
        .description(Some(format!("{what}: {}.", rule.describe())))
}

/// A whole number from `min` to `max`.
fn whole(min: u64, max: u64, what: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(format!("{what}: {min} to {max}.")))
}

/// An id `prefix_` and [`ID_BODY_CHARS`] characters of lowercase Crockford base32.
fn id(prefix: &str, what: &str) -> ObjectBuilder {
    string()
        .pattern(Some(id_pattern(prefix)))
        .description(Some(format!("{what} (`{prefix}_…`).")))
}

fn id_pattern(prefix: &str) -> String {
    format!("^{prefix}_{}{{{ID_BODY_CHARS}}}$", class(is_id_char))
}

/// A JSON value as `metadata` may hold it, at any depth: strings and keys with no
/// control characters but newline and tab.
fn metadata_value() -> Schema {
    let text = format!("^{}*$", class(|c| Chars::Lines.allows(c)));
    let value = || RefOr::Ref(Ref::from_schema_name("MetadataValue"));
    AnyOfBuilder::new()
        .item(string().pattern(Some(text.clone())))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(ArrayBuilder::new().items(value()))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property_names(Some(string().pattern(Some(text))))
                .additional_properties(Some(AdditionalProperties::RefOr(value()))),
        )
        .description(Some(
            "A value of `metadata`: its strings and keys hold no control characters but newline and tab.",
        ))
        .into()
}

shape! {
    /// A machine's fingerprint.
    Fingerprint => text(
        &FINGERPRINT,
        "The machine's fingerprint (a hash of its machine id), kept without surrounding white space",
    );
    /// A machine's name or platform.
    MachineLabel => text(&MACHINE_LABEL, "A name or platform the app reports for the machine");
    /// A validation's nonce.
    Nonce => text(&NONCE, "A fresh random value from the app, echoed in the signed receipt");
    /// An optional note.
    Note => text(&NOTE, "Free text");
    /// A grace decision's reason.
    Reason => text(
        &REASON,
        "Why, kept without surrounding white space",
    );
    /// An order id.
    OrderId => text(
        &ORDER_ID,
        "The shop's order id, kept without surrounding white space",
    );
    /// A token's name.
    TokenName => text(&TOKEN_NAME, "Who the token is for, kept without surrounding white space");
    /// An `Idempotency-Key`.
    IdempotencyKey => text(&IDEMPOTENCY_KEY, "A key of the client's choosing for safe retries");
    /// An email address.
    EmailAddress => string()
        .format(Some(SchemaFormat::Custom("email".into())))
        .max_length(Some(MAX_EMAIL_CHARS))
        .pattern(Some(Email::pattern()))
        .description(Some(format!(
            "An email address as sent (stored lower-cased): dot-separated atoms of letters, digits and ``!#$%&'*+-/=?^_`{{|}}~``, at most {MAX_EMAIL_LOCAL_CHARS} characters before the `@`, then a domain of dot-separated labels of letters, digits and inner `-`; at most {MAX_EMAIL_CHARS} characters."
        )));
    /// The language of a customer's mail.
    MailLocale => string()
        .pattern(Some(crate::domain::mail::Locale::pattern()))
        .description(Some(
            "The language of the customer's mail: `en` or `fr`, optionally with subtags (`fr-CA`), read by its language.",
        ));
    /// A point in time.
    PointInTime => string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some(format!(
            "RFC 3339 (`Z` or an offset; fractions of a second are dropped). A time past {} is refused with `date_out_of_range`.",
            crate::domain::time::format(crate::domain::time::from_unix(LATEST_UNIX))
        )));
    /// A feature flag.
    Entitlement => string()
        .min_length(Some(1))
        .max_length(Some(MAX_ENTITLEMENT_CHARS))
        .pattern(Some(format!("^{}*$", class(is_entitlement_char))))
        .description(Some(format!(
            "A feature flag: 1 to {MAX_ENTITLEMENT_CHARS} letters, digits, `-`, `_`, `.`, `:`."
        )));
    /// A license's feature flags.
    Entitlements => ArrayBuilder::new()
        .items(RefOr::Ref(Ref::from_schema_name("Entitlement")))
        .max_items(Some(MAX_ENTITLEMENTS))
        .description(Some(format!(
            "At most {MAX_ENTITLEMENTS} feature flags; repeats count once."
        )));
    /// The items of a batch.
    BatchItems => ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some(
            "A mint request (`MintRequest`). Each item is read and judged on its own: a bad one gets its error in its result, the others are minted.",
        )))
        .min_items(Some(1))
        .max_items(Some(MAX_BATCH))
        .description(Some(format!("1 to {MAX_BATCH} mint requests (`empty_batch`, `batch_too_large` otherwise)")));
    /// A license's seats.
    Seats => whole(1, u64::from(MAX_SEATS), "Machines that may hold an activation at once");
    /// The length of an extended activation window.
    ExtensionDays => whole(1, u64::from(MAX_EXTENSION_DAYS), "Days the re-opened window lasts");
    /// The days a renewal adds.
    RenewalDays => whole(1, u64::from(MAX_RENEWAL_DAYS), "Days the renewal adds");
    /// Store credit spent, in minor units.
    CreditAmount => whole(1, i64::MAX.unsigned_abs(), "Minor units (cents)");
    /// An ISO 4217 code.
    Currency => string()
        .pattern(Some(format!(
            "^{}{{{CURRENCY_LETTERS}}}$",
            class(|c| c.is_ascii_uppercase())
        )))
        .description(Some("ISO 4217: three upper-case letters, such as `EUR`."));
    /// Free-form data kept with a license.
    Metadata => ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(string().pattern(Some(format!(
            "^{}*$",
            class(|c| Chars::Lines.allows(c))
        )))))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::Ref(
            Ref::from_schema_name("MetadataValue"),
        ))))
        .description(Some(format!(
            "Free-form object kept with the license: at most {MAX_METADATA_BYTES} bytes as JSON; its strings and keys, at any depth, hold no control characters but newline and tab."
        )));
    /// A value inside `metadata`.
    MetadataValue => metadata_value();
    /// A license id.
    LicenseId => id("lic", "A license id");
    /// A signed download link's token.
    DownloadToken => string()
        .min_length(Some(1))
        .max_length(Some(512))
        .description(Some("A download link's token: license id, file name, expiry and MAC, as `GET /v1/licenses/{id}/downloads` made it.".to_owned()));
    /// An activation id.
    ActivationId => id("act", "An activation id");
    /// A claim id.
    ClaimId => id("clm", "A claim id");
    /// A token, by id or by the visible prefix of its secret.
    TokenRef => string()
        .pattern(Some(format!(
            "^(?:{}|{TOKEN_PREFIX}{}{{{}}})$",
            id_pattern("tok").trim_start_matches('^').trim_end_matches('$'),
            class(is_id_char),
            PREFIX_LEN - TOKEN_PREFIX.len()
        )))
        .description(Some(format!(
            "A token id (`tok_…`) or the visible prefix of its secret (the first {PREFIX_LEN} characters, `{TOKEN_PREFIX}…`)."
        )));
    /// How many licenses a page holds.
    LicensePageLimit => whole(1, u64::from(MAX_LICENSE_PAGE), "Licenses on the page");
    /// How many events a page of history holds.
    HistoryPageLimit => whole(1, u64::from(MAX_HISTORY_PAGE), "Events on the page");
    /// A position in a license's history.
    EventCursor => whole(0, i64::MAX.unsigned_abs(), "Only events after this sequence number");
    /// A payment event id.
    PaymentEventId => id("pay", "A payment event id");
    /// How many payment events a page holds.
    PaymentPageLimit => whole(1, u64::from(crate::domain::payments::MAX_PAYMENT_PAGE), "Payment events on the page");
    /// Where an endpoint receives webhooks.
    WebhookUrl => string()
        .format(Some(SchemaFormat::Custom("uri".into())))
        .max_length(Some(MAX_URL_CHARS))
        .pattern(Some("^[Hh][Tt][Tt][Pp][Ss]?://[^@#]+$".to_owned()))
        .description(Some(format!(
            "An `http` or `https` URL with a host, without credentials or fragment, at most {MAX_URL_CHARS} characters. A host that is (or resolves to) a loopback, private or link-local address is refused with `address_not_allowed` unless `[webhooks] allow_private_addresses = true`."
        )));
    /// An event type, or `*` for all.
    EventType => string()
        .enum_values(Some(event_types().into_iter().chain([ALL_EVENTS])))
        .description(Some("A webhook event type, or `*` for every type."));
    /// The event types an endpoint takes.
    EventTypes => ArrayBuilder::new()
        .items(RefOr::Ref(Ref::from_schema_name("EventType")))
        .min_items(Some(1))
        .description(Some("At least one event type (repeats count once), or `*`."));
    /// A webhook endpoint id.
    WebhookEndpointId => id("whe", "A webhook endpoint id");
    /// A delivery (one message to one endpoint).
    DeliveryId => whole(1, i64::MAX.unsigned_abs(), "A delivery id");
    /// How many deliveries a page holds.
    DeliveryPageLimit => whole(1, u64::from(MAX_DELIVERY_PAGE), "Deliveries on the page");
    /// How long the old secret keeps signing after a rotation.
    OverlapHours => whole(0, u64::from(MAX_OVERLAP_HOURS), "Hours the old secret keeps signing beside the new one");
}

impl PartialSchema for ProductId {
    fn schema() -> RefOr<Schema> {
        Schema::from(
            string()
                .min_length(Some(1))
                .max_length(Some(MAX_PRODUCT_ID_CHARS))
                .pattern(Some(format!(
                    "^{}{}*$",
                    class(is_slug_start),
                    class(is_slug_char)
                )))
                .description(Some(format!(
                    "A product's slug: 1 to {MAX_PRODUCT_ID_CHARS} of `a-z`, `0-9` and `-`, starting with a letter or digit."
                ))),
        )
        .into()
    }
}

impl ToSchema for ProductId {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::license::MAX_DOMAIN_LABEL_CHARS;
    use proptest::prelude::*;

    /// The pattern and lengths a shape states, as one check.
    fn document(schema: RefOr<Schema>) -> impl Fn(&str) -> bool + Send + Sync {
        let RefOr::T(Schema::Object(o)) = schema else {
            panic!("not a string schema");
        };
        let pattern = regex::Regex::new(o.pattern.as_deref().unwrap_or("")).unwrap();
        let (min, max) = (
            o.min_length.unwrap_or(0),
            o.max_length.unwrap_or(usize::MAX),
        );
        move |s| pattern.is_match(s) && (min..=max).contains(&s.chars().count())
    }

    fn telling_text() -> impl Strategy<Value = String> {
        let char = prop_oneof![
            proptest::char::range('a', 'c'),
            proptest::char::range('A', 'B'),
            proptest::char::range('0', '1'),
            Just('-'),
            Just('_'),
            Just('.'),
            Just(':'),
            Just('@'),
            Just('!'),
            Just('~'),
            Just(' '),
            Just('é'),
            Just('\u{0}'),
        ];
        proptest::collection::vec(char, 0..14).prop_map(|c| c.into_iter().collect())
    }

    type Check = Box<dyn Fn(&str) -> bool + Send + Sync>;

    /// The email, slug, entitlement and currency shapes, compiled once.
    static SHAPES: std::sync::LazyLock<[Check; 4]> = std::sync::LazyLock::new(|| {
        [
            Box::new(document(EmailAddress::schema())),
            Box::new(document(ProductId::schema())),
            Box::new(document(Entitlement::schema())),
            Box::new(document(Currency::schema())),
        ]
    });

    /// The id shapes with their prefixes, compiled once.
    static IDS: std::sync::LazyLock<[(&str, Check); 3]> = std::sync::LazyLock::new(|| {
        [
            ("lic", Box::new(document(LicenseId::schema())) as Check),
            ("act", Box::new(document(ActivationId::schema()))),
            ("clm", Box::new(document(ClaimId::schema()))),
        ]
    });

    proptest! {
        #[test]
        fn each_shapes_pattern_says_what_its_check_says(texts in proptest::collection::vec(telling_text(), 64)) {
            let [email, slug, entitlement, currency] = &*SHAPES;
            for s in texts {
                // `format: email` holds the part before the `@` to its length.
                let local_fits = s.split('@').next().is_some_and(|l| l.len() <= MAX_EMAIL_LOCAL_CHARS);
                prop_assert_eq!(email(&s) && local_fits, Email::parse(&s).is_some(), "email {:?}", s);
                prop_assert_eq!(slug(&s), ProductId::parse(&s).is_some(), "slug {:?}", s);
                prop_assert_eq!(
                    entitlement(&s),
                    crate::domain::product::is_entitlement(&s),
                    "entitlement {:?}", s
                );
                prop_assert_eq!(currency(&s), crate::domain::product::is_currency(&s), "currency {:?}", s);
            }
        }

        #[test]
        fn id_patterns_say_what_is_id_says(bodies in proptest::collection::vec("[0-9a-z_]{24,28}", 16)) {
            for (prefix, document) in IDS.iter() {
                for body in &bodies {
                    let s = format!("{prefix}_{body}");
                    prop_assert_eq!(document(&s), crate::domain::ids::is_id(prefix, &s), "{:?}", s);
                }
            }
        }
    }

    #[test]
    fn emails_of_every_part_and_length_are_told_apart() {
        let email = document(EmailAddress::schema());
        let label = "b".repeat(MAX_DOMAIN_LABEL_CHARS);
        for (case, s, ok) in [
            ("plain", "ann@example.com".to_owned(), true),
            ("one label", "ann@localhost".to_owned(), true),
            ("every symbol", "!#$%&'*+-/=?^_`{|}~@x.y".to_owned(), true),
            ("longest label", format!("a@{label}.c"), true),
            ("label too long", format!("a@{label}b.c"), false),
            ("label ends with -", "a@b-.c".to_owned(), false),
            ("two dots", "a..b@c.d".to_owned(), false),
            ("leading dot", ".a@b.c".to_owned(), false),
            ("surrounding space", " a@b.c".to_owned(), false),
            ("not ascii", "ü@b.c".to_owned(), false),
            ("two @", "a@b@c".to_owned(), false),
            ("quoted", "\"a b\"@c.d".to_owned(), false),
        ] {
            assert_eq!(email(&s), ok, "{case}");
            assert_eq!(Email::parse(&s).is_some(), ok, "{case}");
        }
        let longest = format!("{}@{label}.{label}.{}", "a".repeat(64), "c".repeat(61));
        assert_eq!(longest.len(), MAX_EMAIL_CHARS);
        assert!(email(&longest) && Email::parse(&longest).is_some());
        let over = format!("{longest}c");
        assert!(!email(&over) && Email::parse(&over).is_none());
        let long_local = format!("{}@b.c", "a".repeat(MAX_EMAIL_LOCAL_CHARS + 1));
        assert!(Email::parse(&long_local).is_none());
    }

    #[test]
    fn every_shape_is_a_schema_of_its_own_name() {
        let names: Vec<String> = all().into_iter().map(|(name, _)| name).collect();
        for name in [
            "Fingerprint",
            "EmailAddress",
            "PointInTime",
            "Metadata",
            "MetadataValue",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}");
        }
    }
}

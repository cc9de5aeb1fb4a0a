//! The customer page's languages: its Fluent catalogs (`locales/<lang>/my.ftl`,
//! embedded at compile time, parsed once), the language of a request, and the
//! strings of a page.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

use crate::domain::mail::Locale;

/// The page catalogs, by language (English first: the reference).
pub const CATALOGS: &[(Locale, &str)] = &[
    (Locale::En, include_str!("../../locales/en/my.ftl")),
    (Locale::Fr, include_str!("../../locales/fr/my.ftl")),
];

type Bundle = FluentBundle<FluentResource>;

fn bundles() -> &'static Vec<(Locale, Bundle)> {
    static BUNDLES: OnceLock<Vec<(Locale, Bundle)>> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        CATALOGS
            .iter()
            .map(|(locale, source)| (*locale, bundle(*locale, source)))
            .collect()
    })
}

fn bundle(locale: Locale, source: &str) -> Bundle {
    let resource = FluentResource::try_new(source.to_owned()).unwrap_or_else(|(r, errors)| {
        log::error!(
            "the {} page catalog has errors: {errors:?}",
            locale.as_str()
        );
        r
    });
    let lang: unic_langid::LanguageIdentifier = locale.as_str().parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![lang]);
    bundle.set_use_isolating(false);
    if let Err(errors) = bundle.add_resource(resource) {
        log::error!(
            "the {} page catalog has errors: {errors:?}",
            locale.as_str()
        );
    }
    bundle
}

/// The strings of one page, in one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    /// The language.
    pub locale: Locale,
}

/// One argument of a message: text or a number (numbers choose plural forms).
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text.
    Str(String),
    /// A number.
    Num(i64),
}

impl Text {
    /// The strings in `locale`.
    pub fn new(locale: Locale) -> Self {
        Self { locale }
    }

    /// The language tag (`lang` of the page).
    pub fn lang(&self) -> &'static str {
        self.locale.as_str()
    }

    /// The message `id` (its id itself when missing: a catalog mistake shows).
    pub fn get(&self, id: &str) -> String {
        self.format(id, &[])
    }

    /// The message `id` with one text argument.
    pub fn with(&self, id: &str, name: &str, value: &str) -> String {
        self.format(id, &[(name, Arg::Str(value.to_owned()))])
    }

    /// The message `id` with one number argument.
    pub fn num(&self, id: &str, name: &str, value: i64) -> String {
        self.format(id, &[(name, Arg::Num(value))])
    }

    /// The message `id` with its arguments.
    pub fn format(&self, id: &str, args: &[(&str, Arg)]) -> String {
        let Some((_, bundle)) = bundles().iter().find(|(l, _)| *l == self.locale) else {
            return id.to_owned();
        };
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            log::error!("no message {id} in the {} page catalog", self.lang());
            return id.to_owned();
        };
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            match value {
                Arg::Str(s) => fluent_args.set(*name, FluentValue::from(s.clone())),
                Arg::Num(n) => fluent_args.set(*name, FluentValue::from(*n)),
            }
        }
        let mut errors = Vec::new();
        let out = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
        if !errors.is_empty() {
            log::error!("message {id} ({}): {errors:?}", self.lang());
        }
        out.into_owned()
    }
}

/// The language of a request: `?lang=` first, then the language cookie, then
/// `Accept-Language`, then English.
pub fn choose(query_lang: Option<&str>, cookie: Option<&str>, accept: Option<&str>) -> Locale {
    query_lang
        .and_then(Locale::parse)
        .or_else(|| cookie.and_then(Locale::parse))
        .or_else(|| accept.and_then(Locale::from_accept_language))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::mail::catalog_ids as ids;

    #[test]
    fn every_catalog_loads_without_errors() {
        for &(locale, source) in CATALOGS {
            let resource = FluentResource::try_new(source.to_owned())
                .unwrap_or_else(|(_, e)| panic!("{}: {e:?}", locale.as_str()));
            let lang: unic_langid::LanguageIdentifier = locale.as_str().parse().unwrap();
            let mut bundle = FluentBundle::new_concurrent(vec![lang]);
            let added = bundle.add_resource(resource);
            assert!(
                added.is_ok(),
                "{}: {:?} (a message defined twice?)",
                locale.as_str(),
                added.err()
            );
        }
    }

    #[test]
    fn every_page_language_has_every_key() {
        let (_, english) = CATALOGS[0];
        let reference = ids(english);
        assert!(reference.len() > 50, "the English catalog is read");
        for (locale, source) in CATALOGS {
            let these = ids(source);
            let missing: Vec<_> = reference.difference(&these).collect();
            let extra: Vec<_> = these.difference(&reference).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{}: missing {missing:?}, not in English {extra:?}",
                locale.as_str()
            );
        }
    }

    #[test]
    fn every_message_formats_without_errors_in_every_language() {
        let (_, english) = CATALOGS[0];
        for locale in Locale::ALL {
            let t = Text::new(locale);
            let bundle = &bundles()
                .iter()
                .find(|(l, _)| *l == locale)
                .expect("bundle")
                .1;
            for id in ids(english) {
                let pattern = bundle
                    .get_message(&id)
                    .and_then(|m| m.value())
                    .unwrap_or_else(|| panic!("{id} has a value"));
                let mut args = FluentArgs::new();
                for name in ["minutes", "days", "limit", "used", "seats"] {
                    args.set(name, FluentValue::from(2));
                }
                for name in ["email", "date", "remedy", "name", "automatic"] {
                    args.set(name, FluentValue::from("x"));
                }
                let mut errors = Vec::new();
                let _ = bundle.format_pattern(pattern, Some(&args), &mut errors);
                assert!(errors.is_empty(), "{id} ({}): {errors:?}", t.lang());
            }
        }
    }

    #[test]
    fn plural_forms_follow_the_number() {
        let en = Text::new(Locale::En);
        assert_eq!(en.num("my-days-left", "days", 0), "today");
        assert_eq!(en.num("my-days-left", "days", 1), "one day left");
        assert_eq!(en.num("my-days-left", "days", 12), "12 days left");
        let fr = Text::new(Locale::Fr);
        assert_eq!(fr.num("my-days-left", "days", 12), "encore 12 jours");
    }

    #[test]
    fn the_language_comes_from_the_query_then_the_cookie_then_the_header() {
        assert_eq!(choose(Some("fr"), Some("en"), Some("en")), Locale::Fr);
        assert_eq!(choose(None, Some("fr"), Some("en")), Locale::Fr);
        assert_eq!(choose(None, None, Some("fr-CA,fr;q=0.9")), Locale::Fr);
        assert_eq!(choose(Some("de"), None, Some("de")), Locale::En);
    }
}

//! Mail to customers: the kinds of message, their language, what each carries,
//! and how each is written from the message catalogs (`locales/<lang>/mail.ftl`,
//! embedded at compile time). A message is decided in the transaction of its
//! cause and kept in the outbox (channel [`MAIL_CHANNEL`]) with its variables;
//! the mail worker writes it out and sends it.

use std::collections::BTreeMap;

use fluent_bundle::{FluentArgs, FluentBundle, FluentResource};
use serde::{Deserialize, Serialize};

/// The outbox channel of mail.
pub const MAIL_CHANNEL: &str = "mail";

/// The catalogs, by language.
const CATALOGS: &[(Locale, &str)] = &[
    (Locale::En, include_str!("../../locales/en/mail.ftl")),
    (Locale::Fr, include_str!("../../locales/fr/mail.ftl")),
];

/// A language mail is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// English (the default).
    #[default]
    En,
    /// French.
    Fr,
}

impl Locale {
    /// Every language, default first.
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Fr];

    /// The tag stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Fr => "fr",
        }
    }

    /// Reads a language tag by its primary subtag (`fr`, `fr-CA`, `FR_fr`: the
    /// language, then subtags of 1 to 8 letters or digits after `-` or `_`); `None`
    /// for another shape or a language keyclerk does not write.
    pub fn parse(tag: &str) -> Option<Self> {
        let mut parts = tag.trim().split(['-', '_']);
        let primary = parts.next()?.to_ascii_lowercase();
        let subtags_fit = parts
            .all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if !subtags_fit {
            return None;
        }
        Self::ALL.into_iter().find(|l| l.as_str() == primary)
    }

    /// A request's `locale` field: absent is the default language, another shape
    /// or language `invalid_field`.
    pub fn field(tag: Option<&str>) -> Result<Self, crate::domain::DomainError> {
        match tag {
            Some(tag) => Self::parse(tag).ok_or_else(|| {
                crate::domain::DomainError::field(
                    "locale",
                    "must be en or fr (a tag such as fr-CA is read as fr)",
                )
            }),
            None => Ok(Self::default()),
        }
    }

    /// The shape [`Locale::parse`] reads from a request, as a regular expression
    /// (the request's value is taken as sent, without surrounding white space).
    pub fn pattern() -> String {
        let languages: Vec<String> = Self::ALL
            .iter()
            .map(|l| {
                l.as_str()
                    .chars()
                    .map(|c| format!("[{}{}]", c, c.to_ascii_uppercase()))
                    .collect()
            })
            .collect();
        format!("^(?:{})(?:[-_][A-Za-z0-9]{{1,8}})*$", languages.join("|"))
    }

    /// The language an `Accept-Language` header prefers among those keyclerk
    /// writes (by `q`, then order); `None` when it names none of them.
    pub fn from_accept_language(header: &str) -> Option<Self> {
        let mut best: Option<(f32, Self)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let Some(locale) = pieces.next().and_then(Self::parse) else {
                continue;
            };
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, locale));
            }
        }
        best.map(|(_, l)| l)
    }
}

/// What a message is about; each is one catalog entry (`<id>-subject`,
/// `<id>-text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// The key, after a mint.
    LicenseKey,
    /// The single-use sign-in link to the customer page.
    SignIn,
    /// A late claim was filed and waits for support.
    ClaimReceived,
    /// A late claim was decided (with the new key where one was made).
    ClaimDecided,
    /// The activation window closes soon.
    Reminder,
}

impl MailKind {
    /// The name stored in the outbox's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LicenseKey => "license_key",
            Self::SignIn => "sign_in",
            Self::ClaimReceived => "claim_received",
            Self::ClaimDecided => "claim_decided",
            Self::Reminder => "reminder",
        }
    }

    /// The catalog entry's prefix.
    fn catalog_id(self) -> &'static str {
        match self {
            Self::LicenseKey => "license-key",
            Self::SignIn => "sign-in",
            Self::ClaimReceived => "claim-received",
            Self::ClaimDecided => "claim-decided",
            Self::Reminder => "reminder",
        }
    }
}

/// A message to queue: written into the outbox with its cause, unique per cause
/// (`cause` is the outbox row's message id, `to` its target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// What caused it, unique for one message (`license_key:lic_…`): the same
    /// cause never queues a second message.
    pub cause: String,
    /// The recipient.
    pub to: String,
    /// What it is about.
    pub kind: MailKind,
    /// Its language, and what fills its catalog entry.
    pub content: MailContent,
}

/// What the outbox row's payload keeps: the language and the variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailContent {
    /// The language.
    pub locale: Locale,
    /// The catalog entry's variables (`product`, `key`, `order_id`, …).
    pub vars: BTreeMap<String, String>,
}

/// What a variable holds when there is nothing to say (the catalogs' selectors
/// read it as their `[none]` variant).
pub const NONE: &str = "none";

impl NewMail {
    /// The key delivered after a mint.
    pub fn license_key(
        license: &crate::domain::license::License,
        product_name: &str,
        key: &str,
        to: &str,
        locale: Locale,
    ) -> Self {
        let mut vars = license_vars(license, product_name);
        vars.insert("key".to_owned(), key.to_owned());
        vars.insert(
            "activate_by".to_owned(),
            license
                .activate_by
                .map_or_else(|| NONE.to_owned(), |t| t.format("%Y-%m-%d").to_string()),
        );
        Self {
            cause: format!("{}:{}", MailKind::LicenseKey.as_str(), license.id),
            to: to.to_owned(),
            kind: MailKind::LicenseKey,
            content: MailContent { locale, vars },
        }
    }

    /// A late claim filed for support: the customer is told it was received.
    pub fn claim_received(
        license: &crate::domain::license::License,
        product_name: &str,
        claim_id: &str,
        to: &str,
        locale: Locale,
    ) -> Self {
        Self {
            cause: format!("{}:{claim_id}", MailKind::ClaimReceived.as_str()),
            to: to.to_owned(),
            kind: MailKind::ClaimReceived,
            content: MailContent {
                locale,
                vars: license_vars(license, product_name),
            },
        }
    }

    /// A late claim decided (by the policy or by support), with the key the
    /// customer should use from now on where the decision made or re-signed one.
    pub fn claim_decided(
        license: &crate::domain::license::License,
        product_name: &str,
        decision_id: &str,
        remedy: crate::domain::grace::Remedy,
        key: Option<&str>,
        to: &str,
        locale: Locale,
    ) -> Self {
        use crate::domain::grace::Remedy;
        let mut vars = license_vars(license, product_name);
        let outcome = match remedy {
            Remedy::Extend | Remedy::Substitute | Remedy::Upgrade => "granted",
            Remedy::Credit => "credit",
            Remedy::Refund => "refund",
            Remedy::Decline => "declined",
        };
        vars.insert("outcome".to_owned(), outcome.to_owned());
        vars.insert("key".to_owned(), key.unwrap_or(NONE).to_owned());
        Self {
            cause: format!("{}:{decision_id}", MailKind::ClaimDecided.as_str()),
            to: to.to_owned(),
            kind: MailKind::ClaimDecided,
            content: MailContent { locale, vars },
        }
    }

    /// The reminder `days` before the activation window of `license` closes,
    /// with its key; `days_left` is what the text says (more than `days` never,
    /// fewer when it goes out late). One per listed day and deadline: a window
    /// extended since is reminded of again.
    pub fn reminder(
        license: &crate::domain::license::License,
        product_name: &str,
        key: &str,
        days: u32,
        days_left: i64,
        locale: Locale,
    ) -> Option<Self> {
        let to = license.customer_email.as_deref()?;
        let deadline = license.activate_by?;
        let mut vars = license_vars(license, product_name);
        vars.insert("key".to_owned(), key.to_owned());
        vars.insert("days".to_owned(), days_left.to_string());
        vars.insert(
            "activate_by".to_owned(),
            deadline.format("%Y-%m-%d").to_string(),
        );
        Some(Self {
            cause: format!(
                "{}:{}:{days}:{}",
                MailKind::Reminder.as_str(),
                license.id,
                deadline.timestamp()
            ),
            to: to.to_owned(),
            kind: MailKind::Reminder,
            content: MailContent { locale, vars },
        })
    }

    /// The outbox row's payload.
    pub fn payload(&self) -> String {
        serde_json::to_string(&self.content).unwrap_or_default()
    }
}

/// The variables every message about a license has.
fn license_vars(
    license: &crate::domain::license::License,
    product_name: &str,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    vars.insert("product".to_owned(), product_name.to_owned());
    vars.insert("order_id".to_owned(), license.order_id.clone());
    vars.insert("license_id".to_owned(), license.id.clone());
    vars
}

/// A message written out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// Why a stored message cannot be written out (a bug or a catalog mistake: the
/// message fails at once rather than being retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

fn bundle(locale: Locale) -> Result<FluentBundle<FluentResource>, RenderError> {
    let source = CATALOGS
        .iter()
        .find(|(l, _)| *l == locale)
        .map(|(_, s)| *s)
        .ok_or_else(|| RenderError(format!("no catalog for {}", locale.as_str())))?;
    let resource = FluentResource::try_new(source.to_owned())
        .map_err(|(_, e)| RenderError(format!("{} catalog: {e:?}", locale.as_str())))?;
    let lang: unic_langid::LanguageIdentifier = locale
        .as_str()
        .parse()
        .map_err(|e| RenderError(format!("{e}")))?;
    let mut bundle = FluentBundle::new(vec![lang]);
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .map_err(|e| RenderError(format!("{} catalog: {e:?}", locale.as_str())))?;
    Ok(bundle)
}

fn format(
    bundle: &FluentBundle<FluentResource>,
    id: &str,
    args: &FluentArgs<'_>,
) -> Result<String, RenderError> {
    let pattern = bundle
        .get_message(id)
        .and_then(|m| m.value())
        .ok_or_else(|| RenderError(format!("no message {id}")))?;
    let mut errors = Vec::new();
    let out = bundle.format_pattern(pattern, Some(args), &mut errors);
    if let Some(e) = errors.first() {
        return Err(RenderError(format!("{id}: {e:?}")));
    }
    Ok(out.into_owned())
}

/// Writes a message of `kind` out in its language from its variables: the
/// subject, the text, and the HTML made from the text (each paragraph a `<p>`,
/// a paragraph that is one of the variables `key` or `link` set apart).
pub fn render(kind: MailKind, content: &MailContent) -> Result<Rendered, RenderError> {
    let bundle = bundle(content.locale)?;
    let mut args = FluentArgs::new();
    for (k, v) in &content.vars {
        args.set(k.as_str(), v.as_str());
    }
    let id = kind.catalog_id();
    let subject = format(&bundle, &format!("{id}-subject"), &args)?;
    let text = format(&bundle, &format!("{id}-text"), &args)?;
    let special = |p: &str| {
        ["key", "link"]
            .iter()
            .filter_map(|k| content.vars.get(*k))
            .any(|v| v == p)
    };
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n",
        content.locale.as_str(),
        escape(&subject)
    );
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if special(paragraph) {
            if paragraph.starts_with("https://") || paragraph.starts_with("http://") {
                let e = escape(paragraph);
                html.push_str(&format!("<p><a href=\"{e}\">{e}</a></p>\n"));
            } else {
                html.push_str(&format!(
                    "<pre style=\"white-space:pre-wrap;word-break:break-all\"><code>{}</code></pre>\n",
                    escape(paragraph)
                ));
            }
        } else {
            let lines: Vec<String> = paragraph.lines().map(escape).collect();
            html.push_str(&format!("<p>{}</p>\n", lines.join("<br>\n")));
        }
    }
    html.push_str("</body></html>\n");
    Ok(Rendered {
        subject,
        text: format!("{}\n", text.trim_end()),
        html,
    })
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The message and term ids of a Fluent catalog (terms as `-name`), for the tests
/// that every language has every key (mail here, the customer page's in `web::i18n`).
#[cfg(test)]
pub(crate) fn catalog_ids(source: &str) -> std::collections::BTreeSet<String> {
    let resource = FluentResource::try_new(source.to_owned()).expect("catalog parses");
    resource
        .entries()
        .filter_map(|e| match e {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
            fluent_syntax::ast::Entry::Term(t) => Some(format!("-{}", t.id.name)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(source: &str) -> std::collections::BTreeSet<String> {
        catalog_ids(source)
    }

    #[test]
    fn every_language_has_every_key() {
        let (_, english) = CATALOGS[0];
        let reference = ids(english);
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

    fn content(locale: Locale, vars: &[(&str, &str)]) -> MailContent {
        MailContent {
            locale,
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn every_kind_renders_in_every_language() {
        let vars = [
            ("product", "Pro <3"),
            ("key", "v4.public.abc"),
            ("order_id", "o-1"),
            ("activate_by", "2027-01-01"),
            ("link", "https://example.com/my/s?t=x"),
            ("outcome", "granted"),
            ("days", "14"),
        ];
        for locale in Locale::ALL {
            for kind in [
                MailKind::LicenseKey,
                MailKind::SignIn,
                MailKind::ClaimReceived,
                MailKind::ClaimDecided,
                MailKind::Reminder,
            ] {
                let r = render(kind, &content(locale, &vars)).expect("renders");
                assert!(!r.subject.is_empty() && !r.text.is_empty());
                assert!(!r.html.contains("<3"), "escaped: {}", r.html);
            }
        }
    }

    #[test]
    fn the_key_mail_carries_the_key_in_both_parts() {
        let c = content(
            Locale::Fr,
            &[
                ("product", "Pro"),
                ("key", "v4.public.abc"),
                ("order_id", "o-1"),
                ("activate_by", NONE),
            ],
        );
        let r = render(MailKind::LicenseKey, &c).expect("renders");
        assert!(r.subject.starts_with("Votre clé"));
        assert!(r.text.contains("\n\nv4.public.abc\n\n"), "{}", r.text);
        assert!(!r.text.contains("Activez-la"));
        assert!(r.html.contains("<code>v4.public.abc</code>"));
    }

    #[test]
    fn accept_language_picks_a_written_language() {
        assert_eq!(
            Locale::from_accept_language("fr-CH, fr;q=0.9, en;q=0.8"),
            Some(Locale::Fr)
        );
        assert_eq!(
            Locale::from_accept_language("de, en;q=0.5"),
            Some(Locale::En)
        );
        assert_eq!(
            Locale::from_accept_language("en;q=0.4, fr;q=0.6"),
            Some(Locale::Fr)
        );
        assert_eq!(Locale::from_accept_language("de"), None);
        assert_eq!(Locale::from_accept_language("fr;q=0"), None);
        assert_eq!(Locale::parse("FR_ca"), Some(Locale::Fr));
    }
}

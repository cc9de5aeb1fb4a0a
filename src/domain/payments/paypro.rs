//! PayPro Global's IPN: a form-encoded POST whose `SIGNATURE` field is the plain
//! SHA-256 (hex) of `ORDER_ID`, `ORDER_STATUS`, `ORDER_TOTAL_AMOUNT`,
//! `CUSTOMER_EMAIL`, the validation key, `TEST_MODE` and `IPN_TYPE_NAME`,
//! concatenated (PayPro's webhook-ipn page, in its copy Poprotska/payproglobal
//! `README.md`). The signature travels inside the body, so the form is decoded to
//! find it; nothing else is read before it matches.
//!
//! The page's own example leaves `CUSTOMER_EMAIL` out of the concatenation although
//! its formula lists it (research/payments.md §4, unconfirmed): both forms are
//! accepted. Either holds the validation key, which is what makes it unforgeable.
//! The `HASH` field (MD5 of the order id and the secret key, and always MD5("1") for
//! test orders) is not checked: it proves nothing `SIGNATURE` does not.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::{
    hex_decode, same, DisputeStage, Intent, Item, PayloadError, ProviderEvent, Purchase, Reference,
    Secret, SignatureError,
};

/// The fields of a form body, each by its first value.
fn fields(body: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// `SIGNATURE` as PayPro computes it, with the email or (as the page's example)
/// without.
fn expected(f: &BTreeMap<String, String>, key: &str, with_email: bool) -> [u8; 32] {
    let get = |name: &str| f.get(name).map_or("", String::as_str);
    let mut h = Sha256::new();
    for part in [
        get("ORDER_ID"),
        get("ORDER_STATUS"),
        get("ORDER_TOTAL_AMOUNT"),
    ] {
        h.update(part.as_bytes());
    }
    if with_email {
        h.update(get("CUSTOMER_EMAIL").as_bytes());
    }
    for part in [key, get("TEST_MODE"), get("IPN_TYPE_NAME")] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// Checks the `SIGNATURE` field of a form body.
pub fn verify(body: &[u8], secrets: &[Secret]) -> Result<(), SignatureError> {
    let f = fields(body);
    let given = f
        .get("SIGNATURE")
        .and_then(|s| hex_decode(s))
        .ok_or(SignatureError)?;
    if !f.contains_key("ORDER_ID") || !f.contains_key("IPN_TYPE_NAME") {
        return Err(SignatureError);
    }
    secrets
        .iter()
        .any(|s| {
            same(&expected(&f, s.expose(), true), &given)
                || same(&expected(&f, s.expose(), false), &given)
        })
        .then_some(())
        .ok_or(SignatureError)
}

/// A field's value, unless absent, empty or `0` (PayPro writes 0 for "none").
fn value(f: &BTreeMap<String, String>, name: &str) -> Option<String> {
    f.get(name)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s != "0")
}

/// Reads an IPN.
pub fn parse(body: &[u8]) -> Result<ProviderEvent, PayloadError> {
    if std::str::from_utf8(body).is_err() {
        return Err(PayloadError::new("the form is not UTF-8"));
    }
    let f = fields(body);
    let need = |name: &str| {
        value(&f, name).ok_or_else(|| PayloadError::new(format!("`{name}` is missing")))
    };
    let kind = need("IPN_TYPE_NAME")?;
    let order = need("ORDER_ID")?;
    let line = value(&f, "ORDER_ITEM_ID").or_else(|| value(&f, "PRODUCT_ID"));
    let event_id = match &line {
        Some(l) => format!("{kind}:{order}:{l}"),
        None => format!("{kind}:{order}"),
    };
    let subscription = value(&f, "SUBSCRIPTION_ID");
    let order_refs = vec![Reference::order(&order)];
    let intent = match kind.as_str() {
        "OrderCharged" | "LicenseRequested" => {
            let mut refs = order_refs;
            if let Some(s) = &subscription {
                refs.push(Reference::subscription(s));
            }
            Intent::Purchase(Purchase {
                order_id: order,
                email: value(&f, "CUSTOMER_EMAIL").or_else(|| value(&f, "LICENSED_TO_EMAIL")),
                items: vec![Item {
                    ids: [value(&f, "PRODUCT_ID"), value(&f, "ORDER_ITEM_SKU")]
                        .into_iter()
                        .flatten()
                        .collect(),
                    named_product: None,
                    quantity: value(&f, "PRODUCT_QUANTITY")
                        .and_then(|q| q.parse().ok())
                        .filter(|q| *q > 0)
                        .unwrap_or(1),
                }],
                subscription,
                refs,
                answer_with_key: kind == "LicenseRequested",
            })
        }
        "SubscriptionChargeSucceed" => match subscription {
            Some(s) => Intent::Renewal {
                refs: vec![Reference::subscription(&s)],
                period_end: None,
            },
            None => return Err(PayloadError::new("`SUBSCRIPTION_ID` is missing")),
        },
        "OrderRefunded" => Intent::Refund {
            refs: order_refs,
            full: true,
        },
        "OrderPartiallyRefunded" => Intent::Refund {
            refs: order_refs,
            full: false,
        },
        "OrderChargedBack" => Intent::Dispute {
            refs: order_refs,
            stage: DisputeStage::Opened,
        },
        "OrderChargebackIsWon" => Intent::Dispute {
            refs: order_refs,
            stage: DisputeStage::Won,
        },
        "SubscriptionTerminated" => match subscription {
            Some(s) => Intent::SubscriptionEnded {
                refs: vec![Reference::subscription(&s)],
                subscription: s,
            },
            None => return Err(PayloadError::new("`SUBSCRIPTION_ID` is missing")),
        },
        other => Intent::Ignore(format!("keyclerk does not act on `{other}`")),
    };
    Ok(ProviderEvent {
        event_id,
        kind,
        occurred_at: None,
        intent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::payments::hex;

    /// The page's example: sha256("12345Processed9.99123qwerty1OrderCharged"),
    /// research/payments.md §4 (computed).
    #[test]
    fn the_documented_example_verifies_and_a_changed_field_does_not() {
        assert_eq!(
            hex(&Sha256::digest(b"12345Processed9.99123qwerty1OrderCharged")),
            "de5618173458ee2aaed43d09a4e65e1d0b7c497b27dfab62f27344b9105d24c1"
        );
        let form = "ORDER_ID=12345&ORDER_STATUS=Processed&ORDER_TOTAL_AMOUNT=9.99\
            &CUSTOMER_EMAIL=ann%40example.com&TEST_MODE=1&IPN_TYPE_NAME=OrderCharged\
            &SIGNATURE=de5618173458ee2aaed43d09a4e65e1d0b7c497b27dfab62f27344b9105d24c1";
        let secrets = [Secret::new("123qwerty")];
        assert_eq!(verify(form.as_bytes(), &secrets), Ok(()));
        let changed = form.replace("9.99", "0.99");
        assert_eq!(verify(changed.as_bytes(), &secrets), Err(SignatureError));
        assert_eq!(
            verify(form.as_bytes(), &[Secret::new("x")]),
            Err(SignatureError)
        );
        assert_eq!(verify(b"ORDER_ID=1", &secrets), Err(SignatureError));
    }

    #[test]
    fn the_formula_with_the_email_verifies_too() {
        let mut f = fields(b"ORDER_ID=7&ORDER_STATUS=Processed&ORDER_TOTAL_AMOUNT=49.00&CUSTOMER_EMAIL=ann%40example.com&TEST_MODE=0&IPN_TYPE_NAME=OrderCharged");
        let sig = hex(&expected(&f, "key", true));
        f.insert("SIGNATURE".into(), sig);
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(f.iter())
            .finish();
        assert_eq!(verify(body.as_bytes(), &[Secret::new("key")]), Ok(()));
    }

    #[test]
    fn a_license_request_is_a_purchase_answered_with_the_key() {
        let e = parse(b"IPN_TYPE_NAME=LicenseRequested&ORDER_ID=7&PRODUCT_ID=555&PRODUCT_QUANTITY=2&CUSTOMER_EMAIL=ann%40example.com&SUBSCRIPTION_ID=0").unwrap();
        assert_eq!(e.event_id, "LicenseRequested:7:555");
        let Intent::Purchase(p) = e.intent else {
            panic!()
        };
        assert!(p.answer_with_key);
        assert_eq!((p.items[0].quantity, p.subscription), (2, None));
        assert_eq!(p.email.as_deref(), Some("ann@example.com"));
    }
}

//! Lemon Squeezy: `X-Signature: <hex>`, HMAC-SHA256 of the body under the signing
//! secret (docs.lemonsqueezy.com/help/webhooks/signing-requests; lmsqueezy/laravel's
//! `VerifyWebhookSignature`). Nothing time-bound is signed. The payloads are JSON:API
//! resources `{meta: {event_name, custom_data}, data: {type, id, attributes}}`.
//!
//! Lemon Squeezy sends no event id: an event is named by its name, its resource and
//! the resource's `updated_at`, which a retry repeats and a later change does not.

use serde_json::Value;

use super::{
    body_digest, hex_decode, hmac_sha256, json_object, quantity_at, required, same, text_at,
    time_at, Intent, Item, PayloadError, ProviderEvent, Purchase, Reference, Secret,
    SignatureError,
};

/// The header Lemon Squeezy signs in.
pub const HEADER: &str = "x-signature";

/// Checks `X-Signature` over `body`.
pub fn verify(
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let given = header(HEADER)
        .and_then(|v| hex_decode(&v))
        .ok_or(SignatureError)?;
    secrets
        .iter()
        .any(|s| same(&hmac_sha256(s.expose().as_bytes(), &[body]), &given))
        .then_some(())
        .ok_or(SignatureError)
}

/// Reads a Lemon Squeezy event.
pub fn parse(body: &[u8]) -> Result<ProviderEvent, PayloadError> {
    let v = json_object(body)?;
    let kind = required(&v, "/meta/event_name")?;
    let id = required(&v, "/data/id")?;
    let a = v
        .pointer("/data/attributes")
        .filter(|a| a.is_object())
        .ok_or_else(|| PayloadError::new("`/data/attributes` is missing"))?;
    let event_id = match text_at(a, "/updated_at") {
        Some(updated) => format!("{kind}:{id}:{updated}"),
        None => format!("{kind}:{id}:{}", body_digest(body)),
    };
    let occurred_at = time_at(a, "/updated_at").or_else(|| time_at(a, "/created_at"));
    let intent = match kind.as_str() {
        "order_created" => {
            let status = text_at(a, "/status").unwrap_or_default();
            if status != "paid" {
                Intent::Ignore(format!("the order is `{status}`, not `paid`"))
            } else {
                let item = a.pointer("/first_order_item").unwrap_or(&Value::Null);
                Intent::Purchase(Purchase {
                    refs: vec![Reference::order(&id)],
                    order_id: id,
                    email: text_at(a, "/user_email"),
                    items: vec![Item {
                        ids: [text_at(item, "/variant_id"), text_at(item, "/product_id")]
                            .into_iter()
                            .flatten()
                            .collect(),
                        named_product: None,
                        quantity: quantity_at(item, "/quantity"),
                    }],
                    subscription: None,
                    answer_with_key: false,
                })
            }
        }
        "subscription_created" => Intent::Link {
            refs: vec![Reference::order(&required(a, "/order_id")?)],
            add: vec![Reference::subscription(&id)],
        },
        "subscription_payment_success" => {
            let reason = text_at(a, "/billing_reason").unwrap_or_default();
            if reason == "renewal" {
                Intent::Renewal {
                    refs: vec![Reference::subscription(&required(a, "/subscription_id")?)],
                    period_end: None,
                }
            } else {
                Intent::Ignore(format!("billing_reason `{reason}` is not a renewal"))
            }
        }
        "order_refunded" => {
            let total = a.pointer("/total").and_then(Value::as_u64).unwrap_or(0);
            let refunded = a
                .pointer("/refunded_amount")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            Intent::Refund {
                refs: vec![Reference::order(&id)],
                full: text_at(a, "/status").as_deref() == Some("refunded")
                    || (total > 0 && refunded >= total),
            }
        }
        "subscription_expired" => Intent::SubscriptionEnded {
            refs: vec![Reference::subscription(&id)],
            subscription: id,
        },
        other => Intent::Ignore(format!("keyclerk does not act on `{other}`")),
    };
    Ok(ProviderEvent {
        event_id,
        kind,
        occurred_at,
        intent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// research/payments.md §3.1 (computed with Python's hmac, not an official vector).
    #[test]
    fn the_computed_vector_verifies_and_a_changed_body_does_not() {
        let body = r#"{"meta":{"event_name":"order_created"},"data":{"type":"orders","id":"1"}}"#;
        let sig = "2acbc9c2399ae17abb109875cb6efb5f25931384c6b2012bef90e529f76806ba";
        let header = |name: &str| (name == HEADER).then(|| sig.to_owned());
        let secrets = [Secret::new("wrong"), Secret::new("test_signing_secret")];
        assert_eq!(verify(&header, body.as_bytes(), &secrets), Ok(()));
        assert_eq!(
            verify(&header, body.replace('1', "2").as_bytes(), &secrets),
            Err(SignatureError)
        );
        assert_eq!(
            verify(&|_| None, body.as_bytes(), &secrets),
            Err(SignatureError)
        );
    }

    #[test]
    fn a_paid_order_is_a_purchase_named_by_its_update() {
        let body = serde_json::json!({"meta": {"event_name": "order_created"},
            "data": {"type": "orders", "id": "1001", "attributes": {
                "status": "paid", "user_email": "ann@example.com",
                "updated_at": "2026-01-01T10:00:00.000000Z",
                "first_order_item": {"variant_id": 42, "product_id": 7}}}});
        let e = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(e.event_id, "order_created:1001:2026-01-01T10:00:00.000000Z");
        let Intent::Purchase(p) = e.intent else {
            panic!()
        };
        assert_eq!(p.items[0].ids, ["42", "7"]);
    }
}

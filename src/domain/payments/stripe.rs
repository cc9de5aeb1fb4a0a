//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`, HMAC-SHA256 of
//! `"<t>.<body>"` under the whole secret's UTF-8 bytes (`whsec_` included), as
//! stripe-python's `stripe/_webhook.py` computes it; schemes other than `v1` (the
//! test mode's `v0`) are ignored. The payloads are events `{id, type, created,
//! data: {object}}`; fields as stripe-python's resource classes name them, in the
//! shapes of API versions before and after 2025-03-31.basil.

use serde_json::Value;

use super::{
    json_object, quantity_at, required, text_at, unix_at, DisputeStage, Intent, Item, PayloadError,
    ProviderEvent, Purchase, Reference, Secret, SignatureError, TimedHeader,
};
use crate::domain::time::Timestamp;

/// The header Stripe signs in.
pub const HEADER: &str = "stripe-signature";

/// `t=<unix>,v1=<hex>` over `"<t>.<body>"`.
const SCHEME: TimedHeader = TimedHeader {
    parts: ',',
    time: "t",
    signature: "v1",
    joiner: b".",
};

/// Checks `Stripe-Signature` over `body`.
pub fn verify(
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    secrets: &[Secret],
    tolerance: Option<u64>,
    now: Timestamp,
) -> Result<(), SignatureError> {
    let value = header(HEADER).ok_or(SignatureError)?;
    SCHEME.verify(&value, body, secrets, tolerance, now)
}

/// The subscription of an invoice: `parent.subscription_details.subscription`
/// (basil and later) or `subscription` (before).
fn invoice_subscription(o: &Value) -> Option<String> {
    text_at(o, "/parent/subscription_details/subscription")
        .or_else(|| text_at(o, "/subscription"))
        .or_else(|| text_at(o, "/subscription/id"))
}

fn payment_refs(o: &Value) -> Vec<Reference> {
    let mut refs = Vec::new();
    if let Some(pi) = text_at(o, "/payment_intent").or_else(|| text_at(o, "/payment_intent/id")) {
        refs.push(Reference::payment(&pi));
    }
    refs
}

/// Reads a Stripe event.
pub fn parse(body: &[u8]) -> Result<ProviderEvent, PayloadError> {
    let v = json_object(body)?;
    let event_id = required(&v, "/id")?;
    let kind = required(&v, "/type")?;
    let occurred_at = unix_at(&v, "/created");
    let o = v
        .pointer("/data/object")
        .filter(|o| o.is_object())
        .ok_or_else(|| PayloadError::new("`/data/object` is missing"))?;
    let intent = match kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let status = text_at(o, "/payment_status").unwrap_or_default();
            if status != "paid" {
                Intent::Ignore(format!("payment_status is `{status}`, not `paid`"))
            } else {
                let session = required(o, "/id")?;
                let subscription =
                    text_at(o, "/subscription").or_else(|| text_at(o, "/subscription/id"));
                let mut refs = vec![Reference::order(&session)];
                refs.extend(payment_refs(o));
                if let Some(s) = &subscription {
                    refs.push(Reference::subscription(s));
                }
                let mut items: Vec<Item> = o
                    .pointer("/line_items/data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|line| Item {
                        ids: [text_at(line, "/price/id"), text_at(line, "/price/product")]
                            .into_iter()
                            .flatten()
                            .collect(),
                        named_product: None,
                        quantity: quantity_at(line, "/quantity"),
                    })
                    .collect();
                if items.is_empty() {
                    if let Some(named) = text_at(o, "/metadata/keyclerk_product") {
                        items.push(Item {
                            ids: Vec::new(),
                            named_product: Some(named),
                            quantity: 1,
                        });
                    }
                }
                Intent::Purchase(Purchase {
                    order_id: session,
                    email: text_at(o, "/customer_details/email")
                        .or_else(|| text_at(o, "/customer_email")),
                    items,
                    subscription,
                    refs,
                    answer_with_key: false,
                })
            }
        }
        "invoice.paid" => {
            let reason = text_at(o, "/billing_reason").unwrap_or_default();
            match invoice_subscription(o) {
                Some(sub) if reason == "subscription_cycle" => Intent::Renewal {
                    refs: vec![Reference::subscription(&sub)],
                    period_end: unix_at(o, "/lines/data/0/period/end")
                        .or_else(|| unix_at(o, "/period_end")),
                },
                _ => Intent::Ignore(format!("billing_reason `{reason}` is not a renewal")),
            }
        }
        "charge.refunded" => Intent::Refund {
            refs: payment_refs(o),
            full: o.pointer("/refunded").and_then(Value::as_bool) == Some(true),
        },
        "charge.dispute.created" => Intent::Dispute {
            refs: payment_refs(o),
            stage: DisputeStage::Opened,
        },
        "charge.dispute.closed" => Intent::Dispute {
            refs: payment_refs(o),
            stage: if text_at(o, "/status").as_deref() == Some("lost") {
                DisputeStage::Lost
            } else {
                DisputeStage::Won
            },
        },
        "customer.subscription.deleted" => {
            let sub = required(o, "/id")?;
            Intent::SubscriptionEnded {
                refs: vec![Reference::subscription(&sub)],
                subscription: sub,
            }
        }
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
    use crate::domain::time::from_unix;

    fn header_of(value: &str) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| (name == HEADER).then(|| value.to_owned())
    }

    /// research/payments.md §1.2: made with stripe-python 16.1.0's
    /// `WebhookSignature.generate_signature_header`.
    const BODY: &str = r#"{"id":"evt_test","object":"event"}"#;
    const SIGNED: &str =
        "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724";

    #[test]
    fn the_sdk_vector_verifies_within_the_tolerance_and_not_after() {
        let secrets = [Secret::new("whsec_test_secret")];
        let ok = |value: &str, now: i64| {
            verify(
                &header_of(value),
                BODY.as_bytes(),
                &secrets,
                Some(300),
                from_unix(now),
            )
        };
        assert_eq!(ok(SIGNED, 1_700_000_100), Ok(()));
        assert_eq!(ok(SIGNED, 1_700_000_301), Err(SignatureError), "stale");
        let rolled = format!("{SIGNED},v1=00ff,v0=6ffbb5");
        assert_eq!(ok(&rolled, 1_700_000_000), Ok(()), "any v1 may match");
        let tampered = BODY.replace("evt_test", "evt_tesT");
        assert_eq!(
            verify(
                &header_of(SIGNED),
                tampered.as_bytes(),
                &secrets,
                Some(300),
                from_unix(1_700_000_000)
            ),
            Err(SignatureError)
        );
        let other = [Secret::new("whsec_other"), Secret::new("whsec_test_secret")];
        assert_eq!(
            verify(
                &header_of(SIGNED),
                BODY.as_bytes(),
                &other,
                Some(300),
                from_unix(1_700_000_000)
            ),
            Ok(()),
            "every configured secret is tried"
        );
        for bad in ["", "t=1700000000", "v1=8042", "t=x,v1=8042376f"] {
            assert_eq!(ok(bad, 1_700_000_000), Err(SignatureError), "{bad}");
        }
        let none = |_: &str| None;
        assert_eq!(
            verify(
                &none,
                BODY.as_bytes(),
                &secrets,
                Some(300),
                from_unix(1_700_000_000)
            ),
            Err(SignatureError)
        );
    }

    #[test]
    fn a_paid_session_is_a_purchase_and_an_unpaid_one_is_ignored() {
        let body = serde_json::json!({
            "id": "evt_1", "type": "checkout.session.completed", "created": 1_700_000_000,
            "data": {"object": {
                "id": "cs_1", "payment_status": "paid", "mode": "subscription",
                "customer_details": {"email": "ann@example.com"},
                "metadata": {"keyclerk_product": "photo-pro"},
                "payment_intent": "pi_1", "subscription": "sub_1"
            }}
        });
        let e = parse(body.to_string().as_bytes()).unwrap();
        let Intent::Purchase(p) = e.intent else {
            panic!("{:?}", e.intent)
        };
        assert_eq!(p.order_id, "cs_1");
        assert_eq!(p.items[0].named_product.as_deref(), Some("photo-pro"));
        assert_eq!(
            p.refs,
            [
                Reference::order("cs_1"),
                Reference::payment("pi_1"),
                Reference::subscription("sub_1")
            ]
        );
        let mut unpaid = body.clone();
        unpaid["data"]["object"]["payment_status"] = "unpaid".into();
        assert!(matches!(
            parse(unpaid.to_string().as_bytes()).unwrap().intent,
            Intent::Ignore(_)
        ));
    }

    #[test]
    fn an_invoice_renews_only_on_the_subscription_cycle_in_both_api_shapes() {
        for object in [
            serde_json::json!({"billing_reason": "subscription_cycle",
                "parent": {"subscription_details": {"subscription": "sub_1"}},
                "lines": {"data": [{"period": {"end": 1_800_000_000}}]}}),
            serde_json::json!({"billing_reason": "subscription_cycle", "subscription": "sub_1",
                "lines": {"data": [{"period": {"end": 1_800_000_000}}]}}),
        ] {
            let body = serde_json::json!({"id": "evt_2", "type": "invoice.paid", "data": {"object": object}});
            let e = parse(body.to_string().as_bytes()).unwrap();
            assert_eq!(
                e.intent,
                Intent::Renewal {
                    refs: vec![Reference::subscription("sub_1")],
                    period_end: Some(from_unix(1_800_000_000))
                }
            );
        }
        let first = serde_json::json!({"id": "evt_3", "type": "invoice.paid",
            "data": {"object": {"billing_reason": "subscription_create", "subscription": "sub_1"}}});
        assert!(matches!(
            parse(first.to_string().as_bytes()).unwrap().intent,
            Intent::Ignore(_)
        ));
    }

    #[test]
    fn what_is_not_an_event_is_a_payload_error() {
        for bad in [
            "[]",
            "{",
            r#"{"id":"evt_1"}"#,
            r#"{"id":"evt_1","type":"x"}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}

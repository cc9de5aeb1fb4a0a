//! Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=…]`, HMAC-SHA256 of
//! `"<ts>:<body>"` under the endpoint secret's UTF-8 bytes, as paddle-python-sdk's
//! `PaddleSignature` and paddle-node-sdk's `webhooks-validator.ts` compute it. The
//! payloads are `{event_id, event_type, occurred_at, data}` (the SDK's
//! `NotificationEvent`), `data` a transaction, adjustment or subscription.

use serde_json::Value;

use super::{
    json_object, quantity_at, required, text_at, time_at, DisputeStage, Intent, Item, PayloadError,
    ProviderEvent, Purchase, Reference, Secret, SignatureError, TimedHeader,
};
use crate::domain::time::Timestamp;

/// The header Paddle signs in.
pub const HEADER: &str = "paddle-signature";

/// `ts=<unix>;h1=<hex>` over `"<ts>:<body>"`.
const SCHEME: TimedHeader = TimedHeader {
    parts: ';',
    time: "ts",
    signature: "h1",
    joiner: b":",
};

/// Checks `Paddle-Signature` over `body`.
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

/// Reads a Paddle Billing event.
pub fn parse(body: &[u8]) -> Result<ProviderEvent, PayloadError> {
    let v = json_object(body)?;
    let event_id = required(&v, "/event_id")?;
    let kind = required(&v, "/event_type")?;
    let occurred_at = time_at(&v, "/occurred_at");
    let d = v
        .pointer("/data")
        .filter(|d| d.is_object())
        .ok_or_else(|| PayloadError::new("`/data` is missing"))?;
    let intent = match kind.as_str() {
        "transaction.completed" => {
            let txn = required(d, "/id")?;
            let subscription = text_at(d, "/subscription_id");
            if text_at(d, "/origin").as_deref() == Some("subscription_recurring") {
                match subscription {
                    Some(sub) => Intent::Renewal {
                        refs: vec![Reference::subscription(&sub)],
                        period_end: time_at(d, "/billing_period/ends_at"),
                    },
                    None => return Err(PayloadError::new("`/data/subscription_id` is missing")),
                }
            } else {
                let mut refs = vec![Reference::order(&txn)];
                if let Some(s) = &subscription {
                    refs.push(Reference::subscription(s));
                }
                let items = d
                    .pointer("/items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|line| Item {
                        ids: [
                            text_at(line, "/price/id").or_else(|| text_at(line, "/price_id")),
                            text_at(line, "/price/product_id"),
                        ]
                        .into_iter()
                        .flatten()
                        .collect(),
                        named_product: None,
                        quantity: quantity_at(line, "/quantity"),
                    })
                    .collect();
                Intent::Purchase(Purchase {
                    order_id: txn,
                    // A transaction names its customer by id; the email is there when
                    // the vendor's checkout passes it in `custom_data.email`.
                    email: text_at(d, "/customer/email")
                        .or_else(|| text_at(d, "/custom_data/email")),
                    items,
                    subscription,
                    refs,
                    answer_with_key: false,
                })
            }
        }
        "adjustment.created" | "adjustment.updated" => {
            let refs = vec![Reference::order(&required(d, "/transaction_id")?)];
            let action = text_at(d, "/action").unwrap_or_default();
            let status = text_at(d, "/status").unwrap_or_default();
            match action.as_str() {
                "refund" if status == "approved" => Intent::Refund {
                    refs,
                    full: text_at(d, "/type").as_deref() != Some("partial"),
                },
                "refund" => Intent::Ignore(format!("a refund that is `{status}`, not approved")),
                "chargeback" | "chargeback_warning" => Intent::Dispute {
                    refs,
                    stage: DisputeStage::Opened,
                },
                "chargeback_reverse" => Intent::Dispute {
                    refs,
                    stage: DisputeStage::Won,
                },
                other => {
                    Intent::Ignore(format!("keyclerk does not act on an adjustment `{other}`"))
                }
            }
        }
        "subscription.canceled" => {
            let sub = required(d, "/id")?;
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

    /// paddle-python-sdk `tests/Unit/Notification/test_Verifier.py` (research/payments.md §2.1).
    #[test]
    fn the_sdk_vector_verifies_with_a_decoy_and_within_five_seconds_only() {
        let secrets = [Secret::new(
            "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
        )];
        let value = "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02";
        let check = |body: &str, now: i64| {
            verify(
                &header_of(value),
                body.as_bytes(),
                &secrets,
                Some(5),
                from_unix(now),
            )
        };
        assert_eq!(check("hello-world", 1_696_195_958), Ok(()));
        assert_eq!(
            check("hello-world", 1_696_195_960),
            Err(SignatureError),
            "stale"
        );
        assert_eq!(check("hello-world!", 1_696_195_954), Err(SignatureError));
        let other = [Secret::new("pdl_ntf_other")];
        assert_eq!(
            verify(
                &header_of(value),
                b"hello-world",
                &other,
                Some(5),
                from_unix(1_696_195_954)
            ),
            Err(SignatureError)
        );
    }

    #[test]
    fn a_transaction_is_a_purchase_or_a_renewal_by_its_origin() {
        let mut body = serde_json::json!({
            "event_id": "evt_1", "event_type": "transaction.completed",
            "occurred_at": "2026-01-01T10:00:00.123Z",
            "data": {"id": "txn_1", "origin": "web", "subscription_id": "sub_1",
                "custom_data": {"email": "ann@example.com"},
                "items": [{"price": {"id": "pri_1", "product_id": "pro_1"}, "quantity": 2}]}
        });
        let e = parse(body.to_string().as_bytes()).unwrap();
        assert!(e.occurred_at.is_some());
        let Intent::Purchase(p) = e.intent else {
            panic!()
        };
        assert_eq!(p.items[0].ids, ["pri_1", "pro_1"]);
        assert_eq!(p.items[0].quantity, 2);
        assert_eq!(p.email.as_deref(), Some("ann@example.com"));
        body["data"]["origin"] = "subscription_recurring".into();
        body["data"]["billing_period"] = serde_json::json!({"ends_at": "2027-01-01T00:00:00Z"});
        assert!(matches!(
            parse(body.to_string().as_bytes()).unwrap().intent,
            Intent::Renewal {
                period_end: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn adjustments_refund_when_approved_and_chargebacks_suspend_or_reinstate() {
        let adj = |action: &str, status: &str| {
            let body = serde_json::json!({"event_id": "evt_a", "event_type": "adjustment.updated",
                "data": {"transaction_id": "txn_1", "action": action, "status": status, "type": "full"}});
            parse(body.to_string().as_bytes()).unwrap().intent
        };
        assert!(matches!(
            adj("refund", "approved"),
            Intent::Refund { full: true, .. }
        ));
        assert!(matches!(
            adj("refund", "pending_approval"),
            Intent::Ignore(_)
        ));
        assert!(matches!(
            adj("chargeback", "approved"),
            Intent::Dispute {
                stage: DisputeStage::Opened,
                ..
            }
        ));
        assert!(matches!(
            adj("chargeback_reverse", "approved"),
            Intent::Dispute {
                stage: DisputeStage::Won,
                ..
            }
        ));
    }
}

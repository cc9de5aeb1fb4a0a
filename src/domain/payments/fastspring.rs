//! FastSpring: `X-FS-Signature: <base64>`, HMAC-SHA256 of the body under the
//! webhook's "HMAC SHA256 Secret" (developer.fastspring.com/docs/message-security).
//! Nothing time-bound is signed. One post may carry several events:
//! `{"events": [{id, type, live, processed, created, data}]}` (the envelope's field
//! names are those of the AsyncAPI description research/payments.md §5 cites,
//! unconfirmed by FastSpring's own pages); automatic retries keep each event's id.
//! A chargeback is `chargeback.created` with the order in `data.order`
//! (developer.fastspring.com/reference/order-chargeback); FastSpring documents no
//! event for its outcome, so a chargeback only suspends.

use base64::Engine as _;
use serde_json::Value;

use super::{
    hmac_sha256, json_object, quantity_at, required, same, text_at, DisputeStage, Intent, Item,
    PayloadError, ProviderEvent, Purchase, Reference, Secret, SignatureError,
};
use crate::domain::time;

/// The header FastSpring signs in.
pub const HEADER: &str = "x-fs-signature";

/// Checks `X-FS-Signature` over `body`.
pub fn verify(
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let given = header(HEADER)
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .ok_or(SignatureError)?;
    secrets
        .iter()
        .any(|s| same(&hmac_sha256(s.expose().as_bytes(), &[body]), &given))
        .then_some(())
        .ok_or(SignatureError)
}

/// An id that may be a string or an object with an `id` (webhook expansion).
fn id_at(v: &Value, pointer: &str) -> Option<String> {
    text_at(v, pointer).or_else(|| text_at(v, &format!("{pointer}/id")))
}

fn one(e: &Value) -> Result<ProviderEvent, PayloadError> {
    let event_id = required(e, "/id")?;
    let kind = required(e, "/type")?;
    let occurred_at = e
        .pointer("/created")
        .and_then(Value::as_i64)
        .map(|ms| ms.div_euclid(1000))
        .filter(|t| (0..=time::LATEST_UNIX).contains(t))
        .map(time::from_unix);
    let d = e.pointer("/data").unwrap_or(&Value::Null);
    let intent = match kind.as_str() {
        "order.completed" => {
            let order = id_at(d, "/order").or_else(|| text_at(d, "/id"));
            let order = order.ok_or_else(|| PayloadError::new("`/data/order` is missing"))?;
            let lines: Vec<&Value> = d
                .pointer("/items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect();
            let subscription = lines.iter().find_map(|l| id_at(l, "/subscription"));
            let mut refs = vec![Reference::order(&order)];
            if let Some(s) = &subscription {
                refs.push(Reference::subscription(s));
            }
            Intent::Purchase(Purchase {
                order_id: order,
                email: text_at(d, "/customer/email")
                    .or_else(|| text_at(d, "/account/contact/email")),
                items: lines
                    .iter()
                    .map(|l| Item {
                        ids: [text_at(l, "/product"), text_at(l, "/sku")]
                            .into_iter()
                            .flatten()
                            .collect(),
                        named_product: None,
                        quantity: quantity_at(l, "/quantity"),
                    })
                    .collect(),
                subscription,
                refs,
                answer_with_key: false,
            })
        }
        "subscription.charge.completed" => {
            let sub = id_at(d, "/subscription")
                .ok_or_else(|| PayloadError::new("`/data/subscription` is missing"))?;
            Intent::Renewal {
                refs: vec![Reference::subscription(&sub)],
                period_end: None,
            }
        }
        "return.created" => {
            let order = id_at(d, "/original").or_else(|| id_at(d, "/order"));
            let order = order.ok_or_else(|| PayloadError::new("`/data/original` is missing"))?;
            Intent::Refund {
                refs: vec![Reference::order(&order)],
                full: true,
            }
        }
        "chargeback.created" => {
            let order = id_at(d, "/order")
                .or_else(|| text_at(d, "/id"))
                .ok_or_else(|| PayloadError::new("`/data/order` is missing"))?;
            Intent::Dispute {
                refs: vec![Reference::order(&order)],
                stage: DisputeStage::Opened,
            }
        }
        "subscription.deactivated" => {
            let sub = id_at(d, "/subscription")
                .or_else(|| text_at(d, "/id"))
                .ok_or_else(|| PayloadError::new("`/data/subscription` is missing"))?;
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

/// Reads a FastSpring post: every event it carries.
pub fn parse(body: &[u8]) -> Result<Vec<ProviderEvent>, PayloadError> {
    let v = json_object(body)?;
    let events = v
        .pointer("/events")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| PayloadError::new("`/events` is missing or empty"))?;
    events.iter().map(one).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// research/payments.md §5 (computed, not an official vector).
    #[test]
    fn the_computed_vector_verifies_and_another_secret_does_not() {
        let body = r#"{"events":[{"id":"evt_1","type":"order.completed","live":false,"data":{}}]}"#;
        let header = |name: &str| {
            (name == HEADER).then(|| "p16UEK06rUKg6pkTv4+nkLWJ7zlMDUHLL6u7b+j/8uM=".to_owned())
        };
        assert_eq!(
            verify(&header, body.as_bytes(), &[Secret::new("test_fs_secret")]),
            Ok(())
        );
        assert_eq!(
            verify(&header, body.as_bytes(), &[Secret::new("other")]),
            Err(SignatureError)
        );
    }

    #[test]
    fn a_post_carries_every_event() {
        let body = serde_json::json!({"events": [
            {"id": "e1", "type": "order.completed", "created": 1_767_225_600_000_i64,
             "data": {"order": "ord_1", "customer": {"email": "ann@example.com"},
                      "items": [{"product": "photo-pro-fs", "quantity": 1, "subscription": "sub_1"}]}},
            {"id": "e2", "type": "subscription.charge.completed", "data": {"subscription": "sub_1"}}
        ]});
        let events = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        let Intent::Purchase(p) = &events[0].intent else {
            panic!()
        };
        assert_eq!(p.subscription.as_deref(), Some("sub_1"));
        assert!(events[0].occurred_at.is_some());
        assert!(matches!(events[1].intent, Intent::Renewal { .. }));
        assert!(parse(br#"{"events":[]}"#).is_err());
    }

    #[test]
    fn a_chargeback_suspends_the_license_of_its_order() {
        let body = serde_json::json!({"events": [{"id": "e3", "type": "chargeback.created",
            "data": {"id": "ord_1", "order": "ord_1", "status": "NEW", "reasonCode": "4837"}}]});
        let events = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            events[0].intent,
            Intent::Dispute {
                refs: vec![Reference::order("ord_1")],
                stage: DisputeStage::Opened
            }
        );
    }
}

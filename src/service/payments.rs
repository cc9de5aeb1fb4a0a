//! Payments in: a provider's verified webhook turned into the operations the vendor
//! API has (mint, renew, refund, suspend, revoke, reinstate), each event once.

use std::collections::BTreeMap;

use crate::domain::ids::new_id;
use crate::domain::license::Action;
use crate::domain::payments::{
    self, body_digest, DisputeStage, Intent, LicenseChange, Outcome, PaymentEvent, Provider,
    ProviderConfig, ProviderEvent,
};
use crate::domain::time::Timestamp;
use crate::domain::DomainError;
use crate::service::{AppState, ServiceError};
use crate::storage::payments::{
    NewPaymentEvent, PaymentEffect, PaymentFilter, PaymentRequest, PaymentResult,
};
use crate::storage::MintOutcome;

/// The payment providers configured, by provider.
pub type PaymentProviders = BTreeMap<Provider, ProviderConfig>;

/// What a delivery did.
#[derive(Debug)]
pub struct Received {
    /// Each event it carried, as stored.
    pub events: Vec<PaymentEvent>,
    /// The key of the license it minted, when the provider takes the key as the
    /// answer (PayPro's `LicenseRequested`).
    pub license_key: Option<String>,
}

/// The effect of an event, and the fresh keys of the licenses it would mint.
struct Prepared {
    effect: PaymentEffect,
    keys: BTreeMap<String, String>,
}

impl AppState {
    fn provider(&self, name: &str) -> Result<&ProviderConfig, ServiceError> {
        Provider::parse(name)
            .and_then(|p| self.payments.get(&p))
            .ok_or(ServiceError::PaymentProviderNotFound)
    }

    /// Takes a delivery of `provider`'s webhook: the signature is checked over the
    /// raw `body` first (400 `invalid_signature`, nothing stored); then each event
    /// it carries is stored and applied once.
    pub async fn receive_payment(
        &self,
        provider: &str,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Received, ServiceError> {
        let config = self.provider(provider)?;
        config
            .verify(header, body, now)
            .map_err(|_| ServiceError::InvalidSignature)?;
        let text = String::from_utf8_lossy(body).into_owned();
        let events = match payments::parse(config.provider, body) {
            Ok(events) => events,
            Err(e) => {
                let reason = format!("the body cannot be read: {e}");
                self.store
                    .apply_payment(PaymentRequest {
                        event: NewPaymentEvent {
                            id: new_id("pay", now),
                            provider: config.provider,
                            event_id: format!("body:{}", body_digest(body)),
                            kind: "unreadable".into(),
                            received_at: now,
                            body: text,
                        },
                        effect: PaymentEffect::Record {
                            outcome: Outcome::Failed,
                            reason: Some(reason),
                        },
                        again: None,
                        now,
                    })
                    .await?;
                return Err(ServiceError::InvalidPayload(e.0));
            }
        };
        let mut stored = Vec::with_capacity(events.len());
        let mut license_key = None;
        for event in events {
            let answer_with_key = matches!(&event.intent, Intent::Purchase(p) if p.answer_with_key);
            let new = NewPaymentEvent {
                id: new_id("pay", now),
                provider: config.provider,
                event_id: event.event_id.clone(),
                kind: event.kind.clone(),
                received_at: now,
                body: text.clone(),
            };
            let (result, keys) = self.apply_event(config, &event, new, None, now).await?;
            if answer_with_key && license_key.is_none() {
                license_key = self.key_of(&result, &keys).await?;
            }
            stored.push(result.event);
        }
        Ok(Received {
            events: stored,
            license_key,
        })
    }

    /// The key of the first license an event minted or found.
    async fn key_of(
        &self,
        result: &PaymentResult,
        fresh: &BTreeMap<String, String>,
    ) -> Result<Option<String>, ServiceError> {
        match result.minted.first() {
            Some(MintOutcome::Created(l)) => Ok(fresh.get(&l.id).cloned()),
            Some(MintOutcome::Existing(l, stored)) => Ok(Some(self.reissue(l, stored).await?)),
            None => match result.event.licenses.first() {
                Some(id) => Ok(Some(self.license_with_key(id).await?.1)),
                None => Ok(None),
            },
        }
    }

    /// What `event` does under the mapping in force; an error only for a failure
    /// on our side (a key that cannot be signed), which the provider's retry may
    /// get past.
    fn prepare_event(
        &self,
        config: &ProviderConfig,
        event: &ProviderEvent,
        now: Timestamp,
    ) -> Result<Prepared, ServiceError> {
        let record = |outcome, reason: String| Prepared {
            effect: PaymentEffect::Record {
                outcome,
                reason: Some(reason),
            },
            keys: BTreeMap::new(),
        };
        let change = |refs: &Vec<payments::Reference>, change| Prepared {
            effect: PaymentEffect::Change {
                refs: refs.clone(),
                change,
            },
            keys: BTreeMap::new(),
        };
        Ok(match &event.intent {
            Intent::Purchase(purchase) => {
                let requests = match payments::mint_requests(
                    config.provider,
                    purchase,
                    event.occurred_at,
                    &config.settings,
                    &self.catalog,
                ) {
                    Ok(r) => r,
                    Err(why) => return Ok(record(Outcome::Unmapped, why)),
                };
                let mut licenses = Vec::with_capacity(requests.len());
                let mut keys = BTreeMap::new();
                for req in requests {
                    match self.prepare(req, now) {
                        Ok((new, key, issued)) => {
                            keys.insert(new.license.id.clone(), key);
                            licenses.push((new, issued));
                        }
                        Err(ServiceError::Domain(e)) => {
                            return Ok(record(Outcome::Failed, e.to_string()))
                        }
                        Err(e) => return Err(e),
                    }
                }
                Prepared {
                    effect: PaymentEffect::Mint {
                        licenses,
                        refs: purchase.refs.clone(),
                    },
                    keys,
                }
            }
            Intent::Renewal { refs, period_end } => change(refs, LicenseChange::Renew(*period_end)),
            Intent::Refund { refs, full: true } => {
                change(refs, LicenseChange::Transition(Action::Refund))
            }
            Intent::Refund { full: false, .. } => record(
                Outcome::Applied,
                "a partial refund: recorded, the license is unchanged".into(),
            ),
            Intent::Dispute { refs, stage } => change(
                refs,
                LicenseChange::Transition(match stage {
                    DisputeStage::Opened => Action::Suspend,
                    DisputeStage::Won => Action::Reinstate,
                    DisputeStage::Lost => Action::Revoke,
                }),
            ),
            Intent::SubscriptionEnded { refs, subscription } => {
                change(refs, LicenseChange::EndSubscription(subscription.clone()))
            }
            Intent::Link { refs, add } => Prepared {
                effect: PaymentEffect::Link {
                    refs: refs.clone(),
                    add: add.clone(),
                },
                keys: BTreeMap::new(),
            },
            Intent::Ignore(why) => record(Outcome::Applied, format!("nothing to do: {why}")),
        })
    }

    async fn apply_event(
        &self,
        config: &ProviderConfig,
        event: &ProviderEvent,
        new: NewPaymentEvent,
        again: Option<String>,
        now: Timestamp,
    ) -> Result<(PaymentResult, BTreeMap<String, String>), ServiceError> {
        let prepared = self.prepare_event(config, event, now)?;
        let result = self
            .store
            .apply_payment(PaymentRequest {
                event: new,
                effect: prepared.effect,
                again,
                now,
            })
            .await?;
        Ok((result, prepared.keys))
    }

    /// A page of the payment events received.
    pub async fn payment_events(
        &self,
        filter: PaymentFilter,
    ) -> Result<Vec<PaymentEvent>, ServiceError> {
        Ok(self.store.payment_events(filter).await?)
    }

    /// Applies an `unmapped` or `failed` event again, under the mapping in force
    /// now; 409 `payment_event_settled` for one that was applied.
    pub async fn apply_payment_again(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<PaymentEvent, ServiceError> {
        let stored = self
            .store
            .payment_event(id)
            .await?
            .ok_or(DomainError::PaymentEventNotFound)?;
        if !stored.outcome.may_apply_again() {
            return Err(DomainError::PaymentEventSettled(stored.outcome.as_str()).into());
        }
        let config = self.provider(stored.provider.as_str())?;
        let new = NewPaymentEvent {
            id: stored.id.clone(),
            provider: stored.provider,
            event_id: stored.event_id.clone(),
            kind: stored.kind.clone(),
            received_at: stored.received_at,
            body: stored.body.clone(),
        };
        let event = payments::parse(stored.provider, stored.body.as_bytes())
            .ok()
            .and_then(|events| events.into_iter().find(|e| e.event_id == stored.event_id));
        let Some(event) = event else {
            // A body that could not be read cannot be applied: it stays as it is.
            return Err(DomainError::PaymentEventSettled(stored.outcome.as_str()).into());
        };
        let (result, _) = self
            .apply_event(config, &event, new, Some(stored.id.clone()), now)
            .await?;
        if result.repeated {
            return Err(DomainError::PaymentEventSettled(result.event.outcome.as_str()).into());
        }
        Ok(result.event)
    }
}

//! The storage contract: every rule the store keeps and every method of the
//! [`Storage`] trait, called directly (no HTTP), generic over the engine.
//!
//! Each test is an `async fn(World)` in a module per concern. [`suite!`] turns the
//! list of them into `#[test]`s for one engine; the SQLite engine runs them below.
//! A later engine adds an `impl Engine for ...` and one `mod ... { suite!(...); }`
//! and runs the same tests unchanged. After every test the runner checks that the
//! audit chain is intact.

mod activations;
mod customer;
mod downloads;
mod durability;
mod grace;
mod licenses;
mod limits;
mod payments;
mod races;
mod tokens;

use std::future::Future;
use std::sync::Arc;

use keyclerk::config::{Settings, EMBEDDED_CONFIG};
use keyclerk::domain::activation::{Fingerprint, SeatPolicies};
use keyclerk::domain::audit::{Actor, AuditEvent};
use keyclerk::domain::grace::{ClaimPolicy, DecisionTerms, Remedy};
use keyclerk::domain::ids::new_id;
use keyclerk::domain::license::{License, MintRequest, NewLicense};
use keyclerk::domain::product::{Catalog, Product};
use keyclerk::domain::time::{self, plus_days, Timestamp};
use keyclerk::domain::DomainError;
use keyclerk::storage::activation::{ActivationOutcome, NewActivation, Policies};
use keyclerk::storage::grace::GraceRequest;
use keyclerk::storage::{IssuedKey, MintOutcome, Storage, StorageError, StoredKey};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A storage engine the contract runs on: makes a fresh, empty store.
/// Every event of a license in one page.
pub const ALL: keyclerk::storage::EventPage = keyclerk::storage::EventPage {
    after: None,
    limit: u32::MAX,
};

pub trait Engine {
    /// Whatever keeps the store's resources alive (a temporary directory, a
    /// database to drop); dropped after the test.
    type Guard: 'static;

    /// Whether instances share this engine's databases, and so its rate-limit
    /// counters ([`Storage::shared_limits`]).
    const SHARES_LIMITS: bool;

    /// A new, empty, migrated store of this engine.
    fn fresh() -> (Arc<dyn Storage>, Self::Guard);

    /// The PostgreSQL database behind the store, if it is one.
    fn database_url(_guard: &Self::Guard) -> Option<String> {
        None
    }
}

/// The embedded SQLite engine, in a temporary data directory.
pub struct Sqlite;

impl Engine for Sqlite {
    type Guard = tempfile::TempDir;
    const SHARES_LIMITS: bool = false;

    fn fresh() -> (Arc<dyn Storage>, Self::Guard) {
        let dir = tempfile::tempdir().unwrap();
        let store = keyclerk::storage::open(None, dir.path()).unwrap();
        (store, dir)
    }
}

/// PostgreSQL: a fresh database of the server `scripts/test.sh` starts.
pub struct Postgres;

impl Engine for Postgres {
    type Guard = crate::pg::Database;
    const SHARES_LIMITS: bool = true;

    fn fresh() -> (Arc<dyn Storage>, Self::Guard) {
        let db = crate::pg::Database::create();
        let store = keyclerk::storage::open(Some(&db.url), std::path::Path::new("unused")).unwrap();
        (store, db)
    }

    fn database_url(guard: &Self::Guard) -> Option<String> {
        Some(guard.url.clone())
    }
}

/// PostgreSQL on a cluster of its own that flushes its WAL (fsync and
/// synchronous_commit on), for the tests that count the flushes.
pub struct DurablePostgres;

impl Engine for DurablePostgres {
    type Guard = crate::pg::Cluster;
    const SHARES_LIMITS: bool = true;

    fn fresh() -> (Arc<dyn Storage>, Self::Guard) {
        let cluster = crate::pg::Cluster::start_durable();
        let store =
            keyclerk::storage::open(Some(&cluster.url()), std::path::Path::new("unused")).unwrap();
        (store, cluster)
    }

    fn database_url(guard: &Self::Guard) -> Option<String> {
        Some(guard.url())
    }
}

/// A fresh store with the demo catalog, and helpers that build requests the way
/// the service does.
pub struct World {
    pub store: Arc<dyn Storage>,
    pub catalog: Arc<Catalog>,
    pub policies: Policies,
    /// The time the test starts at; every later time is counted from it.
    pub t0: Timestamp,
    /// Whether the engine shares rate-limit counters between instances.
    pub shares_limits: bool,
    /// The PostgreSQL database behind the store, if it is one.
    pub database_url: Option<String>,
}

/// Runs one contract test on a fresh store of engine `E`, then checks the chain.
pub fn run<E: Engine, F, Fut>(test: F)
where
    F: FnOnce(World) -> Fut,
    Fut: Future<Output = ()>,
{
    let (store, guard) = E::fresh();
    let settings = Settings::from_toml("demo config", EMBEDDED_CONFIG, Vec::new())
        .unwrap()
        .settings;
    let catalog = Arc::new(settings.catalog());
    let world = World {
        database_url: E::database_url(&guard),
        store: Arc::clone(&store),
        policies: Arc::new(catalog.seat_policies()),
        catalog,
        t0: time::parse("2026-01-01T00:00:00Z").unwrap(),
        shares_limits: E::SHARES_LIMITS,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        test(world).await;
        let verified = store.verify_audit().await.unwrap();
        assert!(
            matches!(verified, Ok(n) if n > 0),
            "the audit chain after the test: {verified:?}"
        );
    });
    drop(store);
    drop(guard);
}

/// The whole suite for one engine: `mod sqlite { suite!(super::Sqlite); }`.
macro_rules! suite {
    (@tests $attr:tt $engine:ty => $($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[test]
            #$attr
            fn $test() {
                $crate::storage_contract::run::<$engine, _, _>(
                    $crate::storage_contract::$module::$test,
                );
            }
        )*
    };
    (@list $attr:tt $engine:ty) => {
        suite!(@tests $attr $engine =>
            licenses::a_new_order_is_minted_with_its_key_and_event,
            activations::repeated_refusals_of_one_machine_are_chained_once_a_day_and_counted,
            activations::a_history_page_starts_after_its_cursor,
            grace::an_idempotency_key_is_scoped_to_its_license,
            licenses::the_same_order_minted_again_finds_the_first_license_and_key,
            licenses::a_second_mint_of_an_order_with_other_fields_is_an_order_conflict,
            licenses::a_reissued_key_keeps_the_first_stored_payload,
            licenses::a_fresh_key_becomes_the_license_key_and_the_old_one_still_finds_it,
            licenses::a_batch_fails_only_the_item_a_rule_refuses,
            licenses::a_batch_with_an_item_the_database_refuses_stores_nothing,
            licenses::an_email_lookup_answers_at_most_100_licenses_in_mint_order,
            licenses::licenses_are_found_by_order_id_and_by_key_hash,
            licenses::the_list_pages_by_id_in_mint_order_with_status_and_product_filters,
            licenses::suspend_reinstate_revoke_and_refund_follow_the_table_with_their_events,
            licenses::an_invalid_transition_is_refused_and_changes_nothing,
            licenses::a_renewal_adds_one_period_by_default_or_the_days_given,
            licenses::a_renewal_before_the_first_activation_banks_the_days_for_it,
            licenses::a_perpetual_license_cannot_be_renewed,
            licenses::unknown_ids_find_nothing_and_the_store_is_ready,
            tokens::a_token_is_created_listed_and_found_by_its_hash,
            tokens::a_token_is_revoked_by_id_or_by_prefix,
            tokens::a_revocation_must_name_exactly_one_token,
            tokens::a_second_revocation_changes_nothing_and_writes_no_event,
            tokens::only_new_signing_keys_are_registered_with_an_event,
            tokens::the_first_token_is_stored_only_while_there_is_none,
            activations::each_seat_is_taken_once_and_the_next_machine_is_refused_and_audited,
            activations::a_machine_holding_a_seat_refreshes_without_taking_another,
            activations::an_unknown_key_is_not_found_and_writes_nothing,
            activations::a_license_never_activated_is_refused_once_its_window_closed,
            activations::the_first_activation_starts_the_expiry_of_a_license_counted_from_activation,
            activations::a_key_is_marked_presented_once_whoever_presents_it_first,
            activations::machines_unseen_for_release_after_days_lose_their_seat_at_the_next_activation,
            activations::a_customer_deactivates_only_with_the_key_of_its_license,
            activations::the_churn_limit_counts_only_the_customers_deactivations,
            activations::released_machines_do_not_count_toward_the_churn_limit,
            activations::the_seats_held_follow_every_way_a_seat_is_taken_and_freed,
            activations::key_facts_tell_validation_what_it_needs,
            activations::last_seen_times_never_move_backwards,
            grace::an_extension_reopens_the_window_and_stores_the_fresh_key,
            grace::a_substitute_closes_the_license_and_mints_one_that_points_back,
            grace::a_substitute_dearer_than_the_price_paid_is_refused_and_changes_nothing,
            grace::an_upgrade_waits_for_the_difference_until_the_payment_is_confirmed,
            grace::a_credit_closes_the_license_and_grants_its_price_to_the_ledger,
            grace::a_refund_closes_the_license_and_records_the_price,
            grace::a_decline_changes_nothing_but_is_recorded,
            grace::a_decision_carries_the_evidence_the_log_holds,
            grace::the_evidence_read_alone_is_the_evidence_a_decision_records,
            grace::a_decision_sent_again_under_its_idempotency_key_is_replayed,
            grace::the_price_paid_falls_back_to_the_catalog_price,
            grace::credit_is_redeemed_once_per_order_and_never_overdrawn,
            grace::a_claim_on_an_unknown_key_is_not_found,
            grace::a_claim_on_a_usable_key_is_not_needed,
            grace::a_late_claim_is_granted_by_the_policy_as_often_as_it_allows,
            grace::a_claim_the_policy_cannot_grant_is_filed_for_support,
            grace::support_resolves_a_pending_claim_once,
            grace::claims_are_listed_oldest_first_at_most_500,
            grace::the_queue_reads_its_claims_licenses_and_evidence_in_one_go,
            races::fifty_concurrent_mints_of_one_order_make_one_license,
            races::twenty_concurrent_activations_on_five_seats_grant_exactly_five,
            races::concurrent_activations_of_one_machine_take_one_seat,
            races::concurrent_first_presentations_write_one_event,
            races::twenty_concurrent_redemptions_of_the_whole_balance_let_one_through,
            races::of_ten_concurrent_first_tokens_one_is_stored,
            limits::a_shared_counter_charges_like_the_limiter_and_refuses_past_its_burst,
            limits::every_change_to_a_shared_counter_reaches_a_later_poll,
            limits::quiet_shared_counters_are_forgotten_in_bounded_steps,
            limits::concurrent_charges_of_one_shared_counter_allow_exactly_its_burst,
            races::concurrent_deactivations_of_one_machine_free_it_once,
            races::concurrent_redemptions_of_one_order_for_two_customers_spend_it_once,
            grace::concurrent_resolutions_of_one_claim_decide_once,
            payments::twenty_concurrent_deliveries_of_one_payment_event_mint_once,
            payments::a_payment_finds_its_license_by_reference_and_acts_as_its_provider,
            downloads::the_download_secret_is_made_once_and_then_always_found,
            downloads::downloads_are_chained_once_a_file_and_day_and_counted_in_the_evidence,
            downloads::a_download_in_the_evidence_sends_a_late_claim_to_support,
            customer::a_sign_in_link_is_stored_with_its_mail_only_for_an_email_with_licenses,
            customer::a_sign_in_link_works_once_and_only_for_thirty_minutes,
            customer::concurrent_uses_of_one_sign_in_link_sign_in_once,
            customer::a_customer_session_is_stored_touched_and_ended,
        );
    };
    ($engine:ty) => {
        suite!(@list [doc = "A contract test."] $engine);
    };
}

mod sqlite {
    suite!(super::Sqlite);
}

mod postgres {
    suite!(super::Postgres);

    #[test]
    fn a_poll_in_pages_goes_on_while_an_old_transaction_holds_the_horizon_back() {
        super::limits::pages_go_on_behind_an_old_transaction();
    }

    #[test]
    fn every_acknowledged_write_waited_for_its_wal_flush() {
        crate::storage_contract::run::<super::DurablePostgres, _, _>(
            crate::storage_contract::durability::every_acknowledged_write_waited_for_its_wal_flush,
        );
    }
}

/// A vendor's token, as the audit log names it.
pub fn vendor() -> Actor {
    Actor::Token {
        id: "tok_vendor".into(),
        name: "shop".into(),
        role: "vendor".into(),
    }
}

/// A support agent's token.
pub fn support() -> Actor {
    Actor::Token {
        id: "tok_support".into(),
        name: "alice".into(),
        role: "support".into(),
    }
}

/// A made-up key: the store never checks signatures, only hashes.
pub fn fake_key() -> IssuedKey {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = format!("v4.public.fake-{bytes:02x?}");
    IssuedKey {
        key_hash: Sha256::digest(text.as_bytes()).into(),
        stored: StoredKey {
            kid: "k4.pid.contract-test".into(),
            payload: format!("{{\"claims\":\"{text}\"}}"),
        },
    }
}

/// A mint request as a shop sends it.
pub fn request(product: &str, order: &str) -> MintRequest {
    MintRequest {
        product: product.into(),
        order_id: order.into(),
        customer_email: Some("ann@example.com".into()),
        purchased_at: None,
        seats: None,
        entitlements: None,
        expires_at: None,
        metadata: None,
        send_email: None,
        locale: None,
    }
}

/// A domain refusal, unwrapped.
#[track_caller]
pub fn refused<T: std::fmt::Debug>(r: Result<T, StorageError>) -> DomainError {
    match r {
        Err(StorageError::Domain(e)) => e,
        other => panic!("expected a domain refusal, got {other:?}"),
    }
}

impl World {
    /// A day after the start.
    pub fn day(&self, n: u32) -> Timestamp {
        plus_days(self.t0, n)
    }

    pub fn product(&self, slug: &str) -> &Product {
        self.catalog.get(slug).unwrap()
    }

    /// `req` as the service prepares it at `now`.
    pub fn prepare(&self, req: MintRequest, now: Timestamp) -> NewLicense {
        let product = self.product(&req.product).clone();
        req.into_new_license(&product, new_id("lic", now), now)
            .unwrap()
    }

    /// Mints a new order at the start; the license and its key's hash.
    pub async fn mint(&self, product: &str, order: &str) -> (License, [u8; 32]) {
        self.mint_request(request(product, order)).await
    }

    pub async fn mint_request(&self, req: MintRequest) -> (License, [u8; 32]) {
        let new = self.prepare(req, self.t0);
        let key = fake_key();
        let hash = key.key_hash;
        match self.store.mint(new, key, vendor()).await.unwrap() {
            MintOutcome::Created(l) => (l, hash),
            other => panic!("expected a new license, got {other:?}"),
        }
    }

    /// The events of a license, typed, oldest first.
    pub async fn events(&self, license_id: &str) -> Vec<AuditEvent> {
        self.store
            .history(license_id, ALL)
            .await
            .unwrap()
            .into_iter()
            .map(|e| AuditEvent::from_stored(&e.kind, e.data).unwrap())
            .collect()
    }

    /// The events of a license with their actors.
    pub async fn events_by(&self, license_id: &str) -> Vec<(Actor, AuditEvent)> {
        self.store
            .history(license_id, ALL)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                (
                    serde_json::from_value(e.actor).unwrap(),
                    AuditEvent::from_stored(&e.kind, e.data).unwrap(),
                )
            })
            .collect()
    }

    /// Events in the whole log (the chain is checked on the way).
    pub async fn event_count(&self) -> i64 {
        self.store.verify_audit().await.unwrap().unwrap()
    }

    /// An activation request as the service builds it.
    pub fn activation(
        &self,
        key_hash: [u8; 32],
        fingerprint: &str,
        now: Timestamp,
    ) -> NewActivation {
        self.activation_with(key_hash, fingerprint, now, Arc::clone(&self.policies))
    }

    pub fn activation_with(
        &self,
        key_hash: [u8; 32],
        fingerprint: &str,
        now: Timestamp,
        policies: Policies,
    ) -> NewActivation {
        NewActivation {
            id: new_id("act", now),
            key_hash,
            fingerprint: Fingerprint::parse(fingerprint).unwrap(),
            name: Some(format!("machine {fingerprint}")),
            platform: Some("linux".into()),
            policies,
        }
    }

    pub async fn activate(
        &self,
        key_hash: [u8; 32],
        fingerprint: &str,
        now: Timestamp,
    ) -> ActivationOutcome {
        self.store
            .activate(self.activation(key_hash, fingerprint, now), now)
            .await
            .unwrap()
    }

    /// Activates and expects a seat; the activation's id.
    pub async fn take_seat(&self, key_hash: [u8; 32], fingerprint: &str, now: Timestamp) -> String {
        match self.activate(key_hash, fingerprint, now).await {
            ActivationOutcome::Granted { activation, .. } => activation.id,
            other => panic!("expected a seat for {fingerprint}, got {other:?}"),
        }
    }

    /// The claim policy of the demo configuration.
    pub fn claim_policy(&self) -> ClaimPolicy {
        Settings::from_toml("demo config", EMBEDDED_CONFIG, Vec::new())
            .unwrap()
            .settings
            .late_claims
    }

    /// Seat policies with one product's rules replaced.
    pub fn policies_with(
        &self,
        product: &str,
        policy: keyclerk::domain::activation::SeatPolicy,
    ) -> Policies {
        let mut map = std::collections::BTreeMap::new();
        for p in self.catalog.iter() {
            map.insert(p.id.to_string(), self.policies.of(p.id.as_str()));
        }
        map.insert(product.to_owned(), policy);
        Arc::new(SeatPolicies::new(map))
    }

    /// A grace request as the service builds it, for `remedy` on `license`.
    pub fn grace(&self, license: &License, remedy: Remedy) -> GraceRequest {
        GraceRequest {
            id: new_id("dec", self.t0),
            license_id: license.id.clone(),
            remedy,
            reason: format!("{} for the test", remedy.as_str()),
            days: None,
            email: None,
            target: None,
            fresh_key: None,
            terms: DecisionTerms::of(&self.catalog, &license.product, 0),
            actor: support(),
            automatic: false,
            idempotency: None,
            claim_id: None,
            credit_id: new_id("cre", self.t0),
            mail: None,
        }
    }
}

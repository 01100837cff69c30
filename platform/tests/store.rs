//! The storage contract ([`Store`], `platform/store/src/lib.rs`), checked on each backend
//! by calling the store directly: every test is written once, as `async fn xxx(store)`,
//! and run as `sqlite_xxx` (always) and `postgres_xxx` (`#[ignore]`d: needs
//! `FIELDLINK_TEST_POSTGRES`, a fresh database per test; `.ci/run` runs them).

use crate::support::{bounded, code};
use fieldlink_platform::Database;
use fieldlink_platform::catalog::{District, Industry};
use fieldlink_platform::clock::{DAY_MS, day_of};
use fieldlink_platform::credit_code::CreditCode;
use fieldlink_platform::profile::{MaturityLevel, Size, Specialised};
use fieldlink_platform::registry::gateway_id;
use fieldlink_platform::store::alarms::{
    EventState, NewChannel, NewRule, RuleKind, Severity, Transition,
};
use fieldlink_platform::store::{
    AssignOutcome, BatchOutcome, EnrollOutcome, EnrollRequest, Gap, GatewayStatus, IncomingBatch,
    Maturity, MonitoringRow, NewAssessment, NewConfig, NewEnterprise, NewIntegrator, NewToken,
    OpenGaps, SeriesBucket, SeriesPoint, Store,
};
use fieldlink_testkit::postgres::TestDatabase;
use fieldlink_wire::{GatewayState, Quality, Sample, Status, Value};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);
/// The program's time zone (China Standard Time), minutes east of UTC.
const OFFSET: i32 = 480;
const MINUTE: i64 = 60_000;
const DEVICE: &str = "press-1";

/// Generates `sqlite_xxx` and `postgres_xxx` for each `xxx`; `store` tests get an open
/// store, `open` tests the database and data directory to open it themselves.
macro_rules! on_both_backends {
    (@run store $test:ident) => {
        |database: Database, dir: PathBuf| async move {
            let store = Store::open(&database, &dir).await.expect("the store opens");
            $test(store).await
        }
    };
    (@run open $test:ident) => {
        $test
    };
    ($($kind:ident $test:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            on_sqlite(on_both_backends!(@run $kind $test)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "needs FIELDLINK_TEST_POSTGRES; run by .ci/run"]
        async fn $postgres() {
            on_postgres(on_both_backends!(@run $kind $test)).await;
        }
    )*};
}

on_both_backends! {
    store enterprises_are_inserted_all_or_none
        => sqlite_enterprises_are_inserted_all_or_none, postgres_enterprises_are_inserted_all_or_none;
    store tokens_need_a_registered_enterprise
        => sqlite_tokens_need_a_registered_enterprise, postgres_tokens_need_a_registered_enterprise;
    store enrollment_checks_the_token_and_rotates_credentials
        => sqlite_enrollment_checks_the_token_and_rotates_credentials, postgres_enrollment_checks_the_token_and_rotates_credentials;
    store concurrent_enrollments_never_overrun_max_gateways
        => sqlite_concurrent_enrollments_never_overrun_max_gateways, postgres_concurrent_enrollments_never_overrun_max_gateways;
    store a_batch_is_stored_once_by_gateway_and_seq
        => sqlite_a_batch_is_stored_once_by_gateway_and_seq, postgres_a_batch_is_stored_once_by_gateway_and_seq;
    store a_resent_batch_spanning_two_days_is_stored_once_on_each_day
        => sqlite_a_resent_batch_spanning_two_days_is_stored_once_on_each_day, postgres_a_resent_batch_spanning_two_days_is_stored_once_on_each_day;
    store the_same_batch_in_concurrent_ingests_is_stored_once
        => sqlite_the_same_batch_in_concurrent_ingests_is_stored_once, postgres_the_same_batch_in_concurrent_ingests_is_stored_once;
    store concurrent_ingests_of_one_gateway_leave_no_false_gaps
        => sqlite_concurrent_ingests_of_one_gateway_leave_no_false_gaps, postgres_concurrent_ingests_of_one_gateway_leave_no_false_gaps;
    store concurrent_groups_over_the_same_gateways_in_any_order_all_commit
        => sqlite_concurrent_groups_over_the_same_gateways_in_any_order_all_commit, postgres_concurrent_groups_over_the_same_gateways_in_any_order_all_commit;
    store gaps_are_opened_and_filled_by_late_batches
        => sqlite_gaps_are_opened_and_filled_by_late_batches, postgres_gaps_are_opened_and_filled_by_late_batches;
    store crash_windows_are_never_missing_batches_in_either_order
        => sqlite_crash_windows_are_never_missing_batches_in_either_order, postgres_crash_windows_are_never_missing_batches_in_either_order;
    store stale_gaps_are_reported_once_and_keep_their_detection_time
        => sqlite_stale_gaps_are_reported_once_and_keep_their_detection_time, postgres_stale_gaps_are_reported_once_and_keep_their_detection_time;
    store concurrent_reports_return_each_stale_gap_once
        => sqlite_concurrent_reports_return_each_stale_gap_once, postgres_concurrent_reports_return_each_stale_gap_once;
    store the_latest_value_is_the_newest_read_whatever_the_arrival_order
        => sqlite_the_latest_value_is_the_newest_read_whatever_the_arrival_order, postgres_the_latest_value_is_the_newest_read_whatever_the_arrival_order;
    store series_are_bucketed_from_samples_and_from_minutes
        => sqlite_series_are_bucketed_from_samples_and_from_minutes, postgres_series_are_bucketed_from_samples_and_from_minutes;
    store unsigned_values_above_i64_max_round_trip_exactly
        => sqlite_unsigned_values_above_i64_max_round_trip_exactly, postgres_unsigned_values_above_i64_max_round_trip_exactly;
    store text_none_and_qualities_round_trip
        => sqlite_text_none_and_qualities_round_trip, postgres_text_none_and_qualities_round_trip;
    store prune_deletes_exactly_the_samples_read_before_the_cutoff
        => sqlite_prune_deletes_exactly_the_samples_read_before_the_cutoff, postgres_prune_deletes_exactly_the_samples_read_before_the_cutoff;
    store onboarding_on_cloud_since_and_active_days_follow_the_batches
        => sqlite_onboarding_on_cloud_since_and_active_days_follow_the_batches, postgres_onboarding_on_cloud_since_and_active_days_follow_the_batches;
    store status_and_meta_are_kept_for_enrolled_gateways_only
        => sqlite_status_and_meta_are_kept_for_enrolled_gateways_only, postgres_status_and_meta_are_kept_for_enrolled_gateways_only;
    store integrators_assignments_sharing_and_numbering_are_kept
        => sqlite_integrators_assignments_sharing_and_numbering_are_kept, postgres_integrators_assignments_sharing_and_numbering_are_kept;
    store config_versions_are_numbered_once_kept_and_published
        => sqlite_config_versions_are_numbered_once_kept_and_published, postgres_config_versions_are_numbered_once_kept_and_published;
    store the_newest_config_version_of_every_gateway_comes_in_one_answer
        => sqlite_the_newest_config_version_of_every_gateway_comes_in_one_answer, postgres_the_newest_config_version_of_every_gateway_comes_in_one_answer;
    store alarms_raise_clear_notify_once_and_follow_the_clock
        => sqlite_alarms_raise_clear_notify_once_and_follow_the_clock, postgres_alarms_raise_clear_notify_once_and_follow_the_clock;
    store concurrent_claims_deliver_each_notification_once
        => sqlite_concurrent_claims_deliver_each_notification_once, postgres_concurrent_claims_deliver_each_notification_once;
    store rules_are_created_while_the_ingest_stores_their_gateways_batches
        => sqlite_rules_are_created_while_the_ingest_stores_their_gateways_batches, postgres_rules_are_created_while_the_ingest_stores_their_gateways_batches;
    store sizes_classes_and_the_maturity_history_are_kept
        => sqlite_sizes_classes_and_the_maturity_history_are_kept, postgres_sizes_classes_and_the_maturity_history_are_kept;
    store monitoring_counts_resets_gaps_and_late_batches_as_in_order
        => sqlite_monitoring_counts_resets_gaps_and_late_batches_as_in_order, postgres_monitoring_counts_resets_gaps_and_late_batches_as_in_order;
    store monitoring_follows_the_catalogue_that_arrives_after_the_samples
        => sqlite_monitoring_follows_the_catalogue_that_arrives_after_the_samples, postgres_monitoring_follows_the_catalogue_that_arrives_after_the_samples;
    open reopening_keeps_the_data_and_migrates_nothing_twice
        => sqlite_reopening_keeps_the_data_and_migrates_nothing_twice, postgres_reopening_keeps_the_data_and_migrates_nothing_twice;
}

/// Runs `test` on SQLite in a fresh data directory.
async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Database, PathBuf) -> Fut,
    Fut: Future<Output = ()>,
{
    crate::support::logs();
    let dir = tempfile::tempdir().unwrap();
    bounded(LIMIT, test(Database::Sqlite, dir.path().to_owned())).await;
}

/// Runs `test` on a fresh PostgreSQL database, then drops it; skips without a test server.
async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Database, PathBuf) -> Fut,
    Fut: Future<Output = ()>,
{
    crate::support::logs();
    let Some(db) = TestDatabase::create().await else {
        eprintln!("skipped: FIELDLINK_TEST_POSTGRES is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = Database::Postgres {
        url: db.url().to_owned(),
        ca_file: None,
    };
    bounded(LIMIT, test(database, dir.path().to_owned())).await;
    db.drop_database().await;
}

// --- helpers ---

/// A start of day (UTC) yesterday: whole minutes, recent enough for any partitioning.
fn t0() -> i64 {
    (fieldlink_platform::clock::now_ms() / DAY_MS - 1) * DAY_MS
}

fn new_enterprise(serial: u32, in_program: bool) -> NewEnterprise {
    NewEnterprise {
        credit_code: CreditCode::parse(&code(serial)).unwrap(),
        name: format!("武汉测试企业 {serial}"),
        industry: Industry::ALL[serial as usize % Industry::ALL.len()],
        district: District::all()
            .nth(serial as usize % District::all().count())
            .unwrap(),
        in_program,
        size: None,
        specialised: None,
        maturity: None,
    }
}

fn new_token(credit_code: &str, secret: &str, max_gateways: u32, now: i64) -> NewToken {
    NewToken {
        credit_code: credit_code.to_owned(),
        token_sha256: fieldlink_platform::secret::sha256_hex(secret),
        created_at: now,
        expires_at: now + DAY_MS,
        max_gateways,
    }
}

fn enroll_request(secret: &str, gateway_name: &str, now: i64) -> EnrollRequest {
    EnrollRequest {
        token_sha256: fieldlink_platform::secret::sha256_hex(secret),
        gateway_name: gateway_name.to_owned(),
        hostname: Some("ipc-1".to_owned()),
        agent_version: Some("0.1.0".to_owned()),
        password_hash: format!("$7$101$hash-of-{gateway_name}"),
        now,
    }
}

/// Registers enterprise `serial` and enrolls gateways `names`; their ids.
async fn enrolled(store: &Store, serial: u32, in_program: bool, names: &[&str]) -> Vec<String> {
    let now = t0();
    let inserted = store
        .insert_enterprises(vec![new_enterprise(serial, in_program)], now, true)
        .await
        .unwrap();
    assert_eq!(inserted, Ok(1));
    let c = code(serial);
    let secret = format!("token-{serial}");
    let max = u32::try_from(names.len()).unwrap();
    assert!(
        store
            .insert_token(new_token(&c, &secret, max, now))
            .await
            .unwrap()
    );
    let mut ids = Vec::new();
    for name in names {
        match store
            .enroll(enroll_request(&secret, name, now))
            .await
            .unwrap()
        {
            EnrollOutcome::Enrolled { gateway_id, .. } => ids.push(gateway_id),
            other => panic!("{name}: {other:?}"),
        }
    }
    ids
}

fn sample(point: &str, ts: i64, value: Value) -> Sample {
    Sample::good(DEVICE.into(), point.into(), ts, value)
}

fn incoming(gateway: &str, seq: u64, samples: Vec<Sample>) -> IncomingBatch {
    IncomingBatch {
        gateway: gateway.to_owned(),
        seq,
        samples,
    }
}

/// A batch of `n` float samples of point `p`, one a second from `ts`.
fn floats(gateway: &str, seq: u64, ts: i64, n: usize) -> IncomingBatch {
    let samples = (0..n)
        .map(|i| sample("p", ts + i as i64 * 1000, Value::Float(i as f64)))
        .collect();
    incoming(gateway, seq, samples)
}

async fn ingest_at(
    store: &Store,
    batches: Vec<IncomingBatch>,
    received_at: i64,
) -> Vec<BatchOutcome> {
    store
        .ingest(batches.into(), received_at, OFFSET)
        .await
        .expect("the batches are stored")
}

async fn ingest(store: &Store, batches: Vec<IncomingBatch>) -> Vec<BatchOutcome> {
    ingest_at(store, batches, t0() + DAY_MS / 2).await
}

fn stored(samples: u64) -> BatchOutcome {
    BatchOutcome::Stored {
        samples,
        gap: None,
        filled: false,
    }
}

/// A late batch that filled (part of) an open gap.
fn late(samples: u64) -> BatchOutcome {
    BatchOutcome::Stored {
        samples,
        gap: None,
        filled: true,
    }
}

fn point(gateway: &str, name: &str) -> SeriesPoint {
    SeriesPoint {
        gateway: gateway.to_owned(),
        device: DEVICE.to_owned(),
        point: name.to_owned(),
    }
}

/// Samples of `name` read in `[from, to)`, counted through the raw (per-sample) path.
async fn samples_in(store: &Store, gateway: &str, name: &str, from: i64, to: i64) -> u64 {
    // from + 1 is not a whole minute: the raw path.
    store
        .series(point(gateway, name), from - 1, to, to - from + 1)
        .await
        .unwrap()
        .iter()
        .map(|b| b.count)
        .sum()
}

async fn gateway(store: &Store, id: &str) -> (fieldlink_platform::store::Gateway, Vec<Gap>) {
    store
        .gateway(id, 100)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("gateway {id} exists"))
}

// --- the tests ---

async fn enterprises_are_inserted_all_or_none(store: Store) {
    let now = t0();
    let (a, b, c, d) = (
        new_enterprise(1, true),
        new_enterprise(2, false),
        new_enterprise(3, false),
        new_enterprise(4, false),
    );
    let result = store
        .insert_enterprises(vec![a.clone(), b.clone()], now, true)
        .await
        .unwrap();
    assert_eq!(result, Ok(2));

    // One already registered: nothing of the list is stored.
    let result = store
        .insert_enterprises(vec![c.clone(), a.clone()], now + 1, true)
        .await
        .unwrap();
    assert_eq!(result, Err(vec![code(1)]));
    assert!(store.enterprise(&code(3)).await.unwrap().is_none());

    // A check only: nothing stored either.
    let result = store
        .insert_enterprises(vec![d.clone()], now, false)
        .await
        .unwrap();
    assert_eq!(result, Ok(1));
    assert!(store.enterprise(&code(4)).await.unwrap().is_none());

    let all = store.enterprises().await.unwrap();
    let codes: Vec<&str> = all.iter().map(|e| e.credit_code.as_str()).collect();
    let mut sorted = vec![code(1), code(2)];
    sorted.sort();
    assert_eq!(codes, sorted);
    let e = store.enterprise(&code(1)).await.unwrap().unwrap();
    assert_eq!(e.name, a.name);
    assert_eq!(e.industry, a.industry);
    assert_eq!(e.district, a.district);
    assert!(e.in_program);
    assert_eq!(e.registered_at, now);
    assert_eq!((e.first_batch_at, e.last_batch_at), (None, None));
    assert!(
        !store
            .enterprise(&code(2))
            .await
            .unwrap()
            .unwrap()
            .in_program
    );
}

async fn tokens_need_a_registered_enterprise(store: Store) {
    let now = t0();
    assert!(
        !store
            .insert_token(new_token(&code(9), "t", 1, now))
            .await
            .unwrap(),
        "a token for an unknown enterprise"
    );
    store
        .insert_enterprises(vec![new_enterprise(9, false)], now, true)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .insert_token(new_token(&code(9), "t", 1, now))
            .await
            .unwrap()
    );
    // The stored hash enrolls; nothing else does.
    let outcome = store.enroll(enroll_request("t", "gw", now)).await.unwrap();
    assert!(
        matches!(outcome, EnrollOutcome::Enrolled { .. }),
        "{outcome:?}"
    );
    let outcome = store
        .enroll(enroll_request("not-t", "gw", now))
        .await
        .unwrap();
    assert_eq!(outcome, EnrollOutcome::UnknownToken);
}

async fn enrollment_checks_the_token_and_rotates_credentials(store: Store) {
    let now = t0();
    let c = code(21);
    store
        .insert_enterprises(vec![new_enterprise(21, true)], now, true)
        .await
        .unwrap()
        .unwrap();
    store
        .insert_token(new_token(&c, "two", 2, now))
        .await
        .unwrap();
    let mut expired = new_token(&c, "old", 5, now - 2 * DAY_MS);
    expired.expires_at = now - DAY_MS;
    store.insert_token(expired).await.unwrap();

    assert_eq!(
        store
            .enroll(enroll_request("nope", "a", now))
            .await
            .unwrap(),
        EnrollOutcome::UnknownToken
    );
    assert_eq!(
        store.enroll(enroll_request("old", "a", now)).await.unwrap(),
        EnrollOutcome::Expired {
            expires_at: now - DAY_MS
        }
    );

    let first = store.enroll(enroll_request("two", "a", now)).await.unwrap();
    assert_eq!(
        first,
        EnrollOutcome::Enrolled {
            gateway_id: gateway_id(&c, "a"),
            credit_code: c.clone(),
            enterprise_name: "武汉测试企业 21".to_owned(),
            rotated: false,
        }
    );
    // Re-enrolling the same name rotates its credentials and takes no slot.
    let mut again = enroll_request("two", "a", now + 1000);
    again.password_hash = "$7$101$rotated".to_owned();
    again.hostname = None;
    let second = store.enroll(again).await.unwrap();
    assert!(
        matches!(second, EnrollOutcome::Enrolled { rotated: true, .. }),
        "{second:?}"
    );
    let b = store
        .enroll(enroll_request("two", "b", now + 2000))
        .await
        .unwrap();
    assert!(
        matches!(b, EnrollOutcome::Enrolled { rotated: false, .. }),
        "{b:?}"
    );
    assert_eq!(
        store
            .enroll(enroll_request("two", "c", now + 3000))
            .await
            .unwrap(),
        EnrollOutcome::UsedUp { max_gateways: 2 }
    );

    let (g, gaps) = gateway(&store, &gateway_id(&c, "a")).await;
    assert!(gaps.is_empty());
    assert_eq!(g.credit_code, c);
    assert_eq!(g.name, "a");
    assert_eq!(g.enrolled_at, now);
    assert_eq!(g.credentials_issued_at, now + 1000);
    assert_eq!(
        g.hostname.as_deref(),
        Some("ipc-1"),
        "kept when not reported"
    );
    assert_eq!(g.agent_version.as_deref(), Some("0.1.0"));
    assert_eq!((g.batches, g.samples, g.max_seq), (0, 0, None));
    assert!(g.status.is_none() && g.meta.is_none());

    let gateways = store.gateways(Some(&c)).await.unwrap();
    let ids: Vec<&str> = gateways.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, [gateway_id(&c, "a"), gateway_id(&c, "b")]);
    assert_eq!(store.gateways(None).await.unwrap().len(), 2);
    assert!(store.gateways(Some(&code(22))).await.unwrap().is_empty());
    let credentials = store.credentials().await.unwrap();
    assert_eq!(
        credentials.users,
        [
            (gateway_id(&c, "a"), "$7$101$rotated".to_owned()),
            (gateway_id(&c, "b"), "$7$101$hash-of-b".to_owned()),
        ]
    );
    // Three enrollments changed the credentials (a, a rotated, b); the refused ones did not.
    assert_eq!(credentials.version, 3);
}

/// Regression guard of the enrollment transaction: a token's slots cannot be overrun by
/// enrollments racing each other.
async fn concurrent_enrollments_never_overrun_max_gateways(store: Store) {
    let now = t0();
    let c = code(31);
    store
        .insert_enterprises(vec![new_enterprise(31, false)], now, true)
        .await
        .unwrap()
        .unwrap();
    store
        .insert_token(new_token(&c, "five", 5, now))
        .await
        .unwrap();
    let enrollments: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enroll(enroll_request("five", &format!("gw-{i}"), now))
                    .await
                    .expect("enrollment runs")
            })
        })
        .collect();
    let mut enrolled = 0;
    for e in enrollments {
        match e.await.unwrap() {
            EnrollOutcome::Enrolled { rotated: false, .. } => enrolled += 1,
            EnrollOutcome::UsedUp { max_gateways: 5 } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(enrolled, 5);
    assert_eq!(store.gateways(Some(&c)).await.unwrap().len(), 5);
}

async fn a_batch_is_stored_once_by_gateway_and_seq(store: Store) {
    let ids = enrolled(&store, 41, false, &["a", "b"]).await;
    let (a, b) = (&ids[0], &ids[1]);
    let ts = t0();
    assert_eq!(
        ingest(&store, vec![floats(a, 1, ts, 10)]).await,
        [stored(10)]
    );
    assert_eq!(
        ingest(&store, vec![floats(a, 1, ts, 10)]).await,
        [BatchOutcome::Duplicate]
    );
    // Twice in one group; the same seq of another gateway is another batch; an unknown
    // gateway is dropped.
    assert_eq!(
        ingest(
            &store,
            vec![
                floats(a, 2, ts + 10_000, 10),
                floats(a, 2, ts + 10_000, 10),
                floats(b, 1, ts, 5),
                floats("stranger", 1, ts, 5),
            ]
        )
        .await,
        [
            stored(10),
            BatchOutcome::Duplicate,
            stored(5),
            BatchOutcome::UnknownGateway
        ]
    );
    let (g, gaps) = gateway(&store, a).await;
    assert_eq!((g.batches, g.samples, g.max_seq), (2, 20, Some(2)));
    assert_eq!((g.missing_batches, gaps.len()), (0, 0));
    assert_eq!(samples_in(&store, a, "p", ts, ts + MINUTE).await, 20);
    assert_eq!(samples_in(&store, b, "p", ts, ts + MINUTE).await, 5);
}

/// A batch resent after a lost ack, its samples on two days (two partitions on
/// PostgreSQL, written by one `COPY`), alone and in a group with a new batch: each sample
/// is stored once, on its own day, with every kind of value.
async fn a_resent_batch_spanning_two_days_is_stored_once_on_each_day(store: Store) {
    let a = enrolled(&store, 201, false, &["a"]).await.remove(0);
    let (yesterday, today) = (t0() - DAY_MS, t0());
    let first = incoming(
        &a,
        1,
        vec![
            sample("p", yesterday + MINUTE, Value::Float(1.5)),
            sample("p", yesterday + 2 * MINUTE, Value::UInt(u64::MAX)),
            sample("p", yesterday + 3 * MINUTE, Value::Text("jam".into())),
            sample("p", today + MINUTE, Value::Int(-7)),
            Sample::bad(DEVICE.into(), "p".into(), today + 2 * MINUTE, "timeout"),
        ],
    );
    let second = incoming(
        &a,
        2,
        vec![
            sample("p", yesterday + 4 * MINUTE, Value::Bool(true)),
            sample("p", today + 3 * MINUTE, Value::None),
        ],
    );
    assert_eq!(ingest(&store, vec![first.clone()]).await, [stored(5)]);
    assert_eq!(
        ingest(&store, vec![first.clone()]).await,
        [BatchOutcome::Duplicate]
    );
    assert_eq!(
        ingest(&store, vec![first, second]).await,
        [BatchOutcome::Duplicate, stored(2)]
    );
    // The numeric ones through the charts' path, then every row as pruning counts it.
    assert_eq!(samples_in(&store, &a, "p", yesterday, today).await, 3);
    assert_eq!(samples_in(&store, &a, "p", today, today + DAY_MS).await, 1);
    let (g, gaps) = gateway(&store, &a).await;
    assert_eq!((g.batches, g.samples, g.max_seq), (2, 7, Some(2)));
    assert!(gaps.is_empty());
    assert_eq!(store.prune(today, 0).await.unwrap(), 4);
    assert_eq!(store.prune(today + DAY_MS, 0).await.unwrap(), 3);
}

/// Regression guard of the dedup key across instances: the same batch handed to two
/// ingests at once (a redelivery racing the first delivery) is stored once.
async fn the_same_batch_in_concurrent_ingests_is_stored_once(store: Store) {
    let ids = enrolled(&store, 51, false, &["a"]).await;
    let a = ids[0].clone();
    let ts = t0();
    for seq in 0..20u64 {
        let batch: Arc<[IncomingBatch]> =
            vec![floats(&a, seq, ts + seq as i64 * 50_000, 50)].into();
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (store, batch) = (store.clone(), batch.clone());
                tokio::spawn(async move {
                    let at = t0() + DAY_MS / 2;
                    store.ingest(batch, at, OFFSET).await.expect("stored")
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for r in racers {
            outcomes.extend(r.await.unwrap());
        }
        outcomes.sort_by_key(|o| matches!(o, BatchOutcome::Duplicate));
        assert_eq!(outcomes, [stored(50), BatchOutcome::Duplicate], "seq {seq}");
    }
    let (g, gaps) = gateway(&store, &a).await;
    assert_eq!((g.batches, g.samples, g.max_seq), (20, 1000, Some(19)));
    assert!(gaps.is_empty(), "{gaps:?}");
    assert_eq!(
        samples_in(&store, &a, "p", ts, ts + 20 * MINUTE).await,
        1000
    );
    // The per-minute aggregates count each sample once too.
    let minutes: u64 = store
        .series(point(&a, "p"), ts, ts + 20 * MINUTE, 20 * MINUTE)
        .await
        .unwrap()
        .iter()
        .map(|b| b.count)
        .sum();
    assert_eq!(minutes, 1000);
}

/// Regression guard of the gateway row lock: batches of one gateway stored concurrently,
/// in any order, end with its highest seq and no gap left open.
async fn concurrent_ingests_of_one_gateway_leave_no_false_gaps(store: Store) {
    let ids = enrolled(&store, 61, false, &["a"]).await;
    let a = ids[0].clone();
    let ts = t0();
    let tasks: Vec<_> = (0..40u64)
        .map(|seq| {
            let (store, a) = (store.clone(), a.clone());
            tokio::spawn(async move {
                let at = t0() + DAY_MS / 2;
                store
                    .ingest(
                        vec![floats(&a, seq, ts + seq as i64 * 1000, 1)].into(),
                        at,
                        OFFSET,
                    )
                    .await
                    .expect("stored")
            })
        })
        .collect();
    for t in tasks {
        let outcome = t.await.unwrap();
        assert!(
            matches!(outcome[..], [BatchOutcome::Stored { samples: 1, .. }]),
            "{outcome:?}"
        );
    }
    let (g, gaps) = gateway(&store, &a).await;
    assert_eq!((g.batches, g.samples, g.max_seq), (40, 40, Some(39)));
    assert_eq!(g.missing_batches, 0, "{gaps:?}");
    assert!(gaps.is_empty(), "{gaps:?}");
}

/// Regression guard of the lock order: two instances storing groups that touch the same
/// gateways (and enterprises) in opposite orders both commit, neither fails.
async fn concurrent_groups_over_the_same_gateways_in_any_order_all_commit(store: Store) {
    let mut gateways = Vec::new();
    for serial in 71..74 {
        gateways.extend(enrolled(&store, serial, false, &["a", "b"]).await);
    }
    let ts = t0();
    for round in 0..10u64 {
        let forward: Vec<IncomingBatch> = gateways
            .iter()
            .map(|g| floats(g, 2 * round, ts + round as i64 * 10_000, 5))
            .collect();
        let backward: Vec<IncomingBatch> = gateways
            .iter()
            .rev()
            .map(|g| floats(g, 2 * round + 1, ts + round as i64 * 10_000 + 5000, 5))
            .collect();
        let tasks: Vec<_> = [forward, backward]
            .into_iter()
            .map(|group| {
                let store = store.clone();
                tokio::spawn(async move {
                    let at = t0() + DAY_MS / 2;
                    store.ingest(group.into(), at, OFFSET).await
                })
            })
            .collect();
        for t in tasks {
            let outcomes = t.await.unwrap().expect("the group commits");
            assert!(
                outcomes
                    .iter()
                    .all(|o| matches!(o, BatchOutcome::Stored { samples: 5, .. })),
                "round {round}: {outcomes:?}"
            );
        }
    }
    for g in &gateways {
        let (g, gaps) = gateway(&store, g).await;
        assert_eq!((g.batches, g.samples, g.max_seq), (20, 100, Some(19)));
        assert!(gaps.is_empty(), "{gaps:?}");
    }
}

async fn gaps_are_opened_and_filled_by_late_batches(store: Store) {
    let ids = enrolled(&store, 81, false, &["a"]).await;
    let a = &ids[0];
    let ts = t0();
    let one = |seq: u64| floats(a, seq, ts + seq as i64 * 1000, 1);
    assert_eq!(ingest(&store, vec![one(0)]).await, [stored(1)]);
    assert_eq!(
        ingest(&store, vec![one(5)]).await,
        [BatchOutcome::Stored {
            samples: 1,
            gap: Some(Gap {
                first_seq: 1,
                last_seq: 4
            }),
            filled: false,
        }]
    );
    assert_eq!(
        ingest(&store, vec![one(9)]).await,
        [BatchOutcome::Stored {
            samples: 1,
            gap: Some(Gap {
                first_seq: 6,
                last_seq: 8
            }),
            filled: false,
        }]
    );
    let (g, gaps) = gateway(&store, a).await;
    assert_eq!((g.missing_batches, g.max_seq), (7, Some(9)));
    assert_eq!(
        gaps,
        [
            Gap {
                first_seq: 1,
                last_seq: 4
            },
            Gap {
                first_seq: 6,
                last_seq: 8
            }
        ]
    );
    // The first `max_gaps` only.
    assert_eq!(store.gateway(a, 1).await.unwrap().unwrap().1.len(), 1);

    // A late batch splits its gap, the edges shrink it; none opens a new one.
    assert_eq!(ingest(&store, vec![one(2)]).await, [late(1)]);
    let (g, gaps) = gateway(&store, a).await;
    assert_eq!(g.missing_batches, 6);
    assert_eq!(
        gaps,
        [
            Gap {
                first_seq: 1,
                last_seq: 1
            },
            Gap {
                first_seq: 3,
                last_seq: 4
            },
            Gap {
                first_seq: 6,
                last_seq: 8
            }
        ]
    );
    assert_eq!(
        ingest(&store, vec![one(1), one(4), one(6), one(8)]).await,
        [late(1), late(1), late(1), late(1)]
    );
    let (g, gaps) = gateway(&store, a).await;
    assert_eq!(g.missing_batches, 2);
    assert_eq!(
        gaps,
        [
            Gap {
                first_seq: 3,
                last_seq: 3
            },
            Gap {
                first_seq: 7,
                last_seq: 7
            }
        ]
    );
    assert_eq!(
        ingest(&store, vec![one(7), one(3)]).await,
        [late(1), late(1)]
    );
    let (g, gaps) = gateway(&store, a).await;
    assert_eq!((g.missing_batches, g.max_seq, g.batches), (0, Some(9), 10));
    assert!(gaps.is_empty(), "{gaps:?}");
    // A duplicate of a batch below the highest seq is not late: it fills nothing.
    assert_eq!(
        ingest(&store, vec![one(3)]).await,
        [BatchOutcome::Duplicate]
    );
}

/// Regression test: the numbers an agent reserved but never sent before a kill -9 were
/// counted as missing batches. A crash window takes them out of the gaps, whether the
/// status announcing it arrives after the jump or before it, and only them.
async fn crash_windows_are_never_missing_batches_in_either_order(store: Store) {
    let ids = enrolled(&store, 85, false, &["a"]).await;
    let a = &ids[0];
    let t = t0() + DAY_MS / 2;
    let one = |seq: u64| floats(a, seq, t0() + seq as i64 * 1000, 1);
    ingest(&store, vec![one(1), one(2)]).await;

    // The window's status arrives after the jump: the gap it opened closes.
    ingest(&store, vec![one(1030)]).await;
    assert_eq!(gateway(&store, a).await.0.missing_batches, 1027);
    assert_eq!(
        store.record_crash_window(a, (3, 1029), t).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        store
            .record_crash_window(a, (3, 1029), t + 1)
            .await
            .unwrap(),
        Some(false),
        "idempotent"
    );
    let (g, gaps) = gateway(&store, a).await;
    assert_eq!(g.missing_batches, 0, "{gaps:?}");

    // Before the jump: no gap opens at all.
    assert_eq!(
        store.record_crash_window(a, (1031, 2054), t).await.unwrap(),
        Some(true)
    );
    assert_eq!(ingest(&store, vec![one(2055)]).await, [stored(1)]);
    assert_eq!(gateway(&store, a).await.0.missing_batches, 0);

    // Batches really missing beside a window stay missing: 2056..2059 were numbered and
    // never delivered; 2060..2100 were the crash's.
    assert_eq!(
        store.record_crash_window(a, (2060, 2100), t).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        ingest(&store, vec![one(2101)]).await,
        [BatchOutcome::Stored {
            samples: 1,
            gap: Some(Gap {
                first_seq: 2056,
                last_seq: 2059
            }),
            filled: false,
        }]
    );
    // A window inside an open gap splits it.
    ingest(&store, vec![one(2200)]).await;
    store.record_crash_window(a, (2150, 2160), t).await.unwrap();
    let (g, gaps) = gateway(&store, a).await;
    assert_eq!(
        gaps,
        [
            Gap {
                first_seq: 2056,
                last_seq: 2059
            },
            Gap {
                first_seq: 2102,
                last_seq: 2149
            },
            Gap {
                first_seq: 2161,
                last_seq: 2199
            },
        ]
    );
    assert_eq!(g.missing_batches, 4 + 48 + 39);
    let windows: Vec<(u64, u64)> = store
        .crash_windows(a, 10)
        .await
        .unwrap()
        .iter()
        .map(|w| (w.first_seq, w.last_seq))
        .collect();
    assert_eq!(
        windows,
        [(3, 1029), (1031, 2054), (2060, 2100), (2150, 2160)]
    );
    assert_eq!(
        store
            .record_crash_window("nobody", (1, 2), t)
            .await
            .unwrap(),
        None
    );
}

/// Reports the gaps detected before `before`, not reported yet.
async fn report(store: &Store, before: i64, limit: u32) -> Vec<(String, u64, u64, i64)> {
    store
        .report_stale_gaps(before, before + 1, limit)
        .await
        .expect("stale gaps are reported")
        .into_iter()
        .map(|g| (g.gateway, g.gap.first_seq, g.gap.last_seq, g.detected_at))
        .collect()
}

async fn stale_gaps_are_reported_once_and_keep_their_detection_time(store: Store) {
    let ids = enrolled(&store, 82, false, &["a", "b"]).await;
    let (a, b) = (ids[0].clone(), ids[1].clone());
    let t = t0() + DAY_MS / 2;
    let one = |g: &str, seq: u64| floats(g, seq, t + seq as i64 * 1000, 1);
    ingest_at(&store, vec![one(&a, 0), one(&a, 5)], t).await;
    // Detected at t: not stale before t.
    assert_eq!(report(&store, t, 10).await, []);
    ingest_at(&store, vec![one(&b, 0), one(&b, 3)], t + 10_000).await;
    ingest_at(&store, vec![one(&a, 9)], t + 20_000).await;
    assert_eq!(
        store.open_gaps().await.unwrap(),
        OpenGaps {
            gaps: 3,
            missing_batches: 4 + 2 + 3
        }
    );

    // Oldest first, at most `limit`; each once.
    assert_eq!(report(&store, t + 15_000, 1).await, [(a.clone(), 1, 4, t)]);
    assert_eq!(
        report(&store, t + 15_000, 10).await,
        [(b.clone(), 1, 2, t + 10_000)]
    );
    assert_eq!(report(&store, t + 15_000, 10).await, []);

    // A late batch splits a reported gap: its rest stays reported, with its first
    // detection time; a new jump is a new gap.
    assert_eq!(
        ingest_at(&store, vec![one(&a, 2)], t + 30_000).await,
        [late(1)]
    );
    ingest_at(&store, vec![one(&b, 6)], t + 30_000).await;
    assert_eq!(
        report(&store, t + 60_000, 10).await,
        [(a.clone(), 6, 8, t + 20_000), (b.clone(), 4, 5, t + 30_000)]
    );
    assert_eq!(report(&store, t + 60_000, 10).await, []);
    assert_eq!(
        store.open_gaps().await.unwrap(),
        OpenGaps {
            gaps: 5,
            missing_batches: 1 + 2 + 3 + 2 + 2
        }
    );
    let (_, gaps) = gateway(&store, &a).await;
    assert_eq!(gaps.len(), 3, "{gaps:?}");

    // Pruning with the dedup rows drops the gaps detected before the cutoff.
    store.prune(0, t + 15_000).await.unwrap();
    assert_eq!(
        store.open_gaps().await.unwrap(),
        OpenGaps {
            gaps: 2,
            missing_batches: 3 + 2
        }
    );
}

async fn concurrent_reports_return_each_stale_gap_once(store: Store) {
    let ids = enrolled(&store, 83, false, &["a"]).await;
    let a = &ids[0];
    let t = t0() + DAY_MS / 2;
    // seq 0, 2, 4, ..., 80: 40 gaps of one batch each.
    let batches = (0..=40)
        .map(|i| floats(a, i * 2, t + i as i64, 1))
        .collect();
    ingest_at(&store, batches, t).await;
    let reports: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { report(&store, t + 1, 15).await })
        })
        .collect();
    let mut seen = Vec::new();
    for reported in reports {
        seen.extend(
            reported
                .await
                .unwrap()
                .into_iter()
                .map(|(_, first, ..)| first),
        );
    }
    seen.extend(
        report(&store, t + 1, 1000)
            .await
            .into_iter()
            .map(|(_, first, ..)| first),
    );
    seen.sort_unstable();
    assert_eq!(seen, (0..40).map(|i| i * 2 + 1).collect::<Vec<u64>>());
}

async fn the_latest_value_is_the_newest_read_whatever_the_arrival_order(store: Store) {
    let ids = enrolled(&store, 91, false, &["a"]).await;
    let a = &ids[0];
    let ts = t0();
    // Within one batch, out of order.
    ingest(
        &store,
        vec![incoming(
            a,
            1,
            vec![
                sample("p", ts + 3000, Value::Int(3)),
                sample("p", ts + 2500, Value::Int(2)),
                sample("q", ts, Value::Bool(true)),
            ],
        )],
    )
    .await;
    // An older read arriving later (a backlog) does not replace it.
    ingest(
        &store,
        vec![incoming(a, 2, vec![sample("p", ts + 1000, Value::Int(1))])],
    )
    .await;
    let latest = store.latest_values(a).await.unwrap();
    let p: Vec<_> = latest
        .iter()
        .map(|l| (l.point.as_str(), l.ts, l.value.clone()))
        .collect();
    assert_eq!(
        p,
        [
            ("p", ts + 3000, Value::Int(3)),
            ("q", ts, Value::Bool(true))
        ]
    );
    assert!(
        latest
            .iter()
            .all(|l| l.device == DEVICE && l.quality == Quality::Good)
    );
    // A newer read does, in a group where an older one of the same point comes after it.
    ingest(
        &store,
        vec![
            incoming(a, 3, vec![sample("p", ts + 9000, Value::Int(9))]),
            incoming(a, 4, vec![sample("p", ts + 4000, Value::Int(4))]),
        ],
    )
    .await;
    let latest = store.latest_values(a).await.unwrap();
    assert_eq!(
        (latest[0].ts, &latest[0].value),
        (ts + 9000, &Value::Int(9))
    );
    assert!(store.latest_values("stranger").await.unwrap().is_empty());
}

async fn series_are_bucketed_from_samples_and_from_minutes(store: Store) {
    let ids = enrolled(&store, 101, false, &["a"]).await;
    let a = &ids[0];
    let t = t0();
    // 10 minutes, a sample every 10 s with value i (float, int and bool alternating
    // between points), split over batches that share minutes; a text and a failed read
    // that charts skip; minute 7 empty.
    let mut batches = Vec::new();
    for (seq, chunk) in (0..60i64).collect::<Vec<_>>().chunks(7).enumerate() {
        let samples = chunk
            .iter()
            .filter(|&&i| i / 6 != 7)
            .flat_map(|&i| {
                let ts = t + i * 10_000;
                [
                    sample("f", ts, Value::Float(i as f64)),
                    sample("i", ts, Value::Int(i)),
                    sample("f", ts + 1, Value::Text("not a number".into())),
                    Sample::bad(DEVICE.into(), "f".into(), ts + 2, "timeout"),
                ]
            })
            .collect();
        batches.push(incoming(a, seq as u64, samples));
    }
    ingest(&store, batches).await;
    let values = |range: std::ops::Range<i64>| -> Vec<f64> {
        range.filter(|i| i / 6 != 7).map(|i| i as f64).collect()
    };
    let bucket = |start: i64, vs: Vec<f64>| SeriesBucket {
        start,
        min: vs.iter().copied().fold(f64::INFINITY, f64::min),
        max: vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        avg: vs.iter().sum::<f64>() / vs.len() as f64,
        count: vs.len() as u64,
    };

    // Raw path: bounds that are not whole minutes.
    for name in ["f", "i"] {
        let raw = store
            .series(point(a, name), t + 5000, t + 65_000, 30_000)
            .await
            .unwrap();
        assert_eq!(
            raw,
            [
                bucket(t + 5000, values(1..4)),
                bucket(t + 35_000, values(4..7))
            ],
            "{name}"
        );
    }
    // Per-minute path: whole minutes; bucket 3 minutes over minutes 0..9, minute 7 empty.
    for name in ["f", "i"] {
        let minutes = store
            .series(point(a, name), t, t + 9 * MINUTE, 3 * MINUTE)
            .await
            .unwrap();
        assert_eq!(
            minutes,
            [
                bucket(t, values(0..18)),
                bucket(t + 3 * MINUTE, values(18..36)),
                bucket(t + 6 * MINUTE, values(36..54)),
            ],
            "{name}"
        );
        // A minute bucket with no samples is absent.
        let by_minute = store
            .series(point(a, name), t + 6 * MINUTE, t + 9 * MINUTE, MINUTE)
            .await
            .unwrap();
        let starts: Vec<i64> = by_minute.iter().map(|b| b.start).collect();
        assert_eq!(starts, [t + 6 * MINUTE, t + 8 * MINUTE], "{name}");
    }
    // Both paths agree on the same window, shifted by a millisecond to force the raw one.
    let raw = store
        .series(point(a, "f"), t - 1, t + 10 * MINUTE - 1, 10 * MINUTE)
        .await
        .unwrap();
    let minutes = store
        .series(point(a, "f"), t, t + 10 * MINUTE, 10 * MINUTE)
        .await
        .unwrap();
    assert_eq!((raw.len(), minutes.len()), (1, 1));
    assert_eq!(
        (raw[0].min, raw[0].max, raw[0].avg, raw[0].count),
        (
            minutes[0].min,
            minutes[0].max,
            minutes[0].avg,
            minutes[0].count
        )
    );
    // Nothing outside the window, nothing for another point.
    assert!(
        store
            .series(point(a, "f"), t + 11 * MINUTE, t + 20 * MINUTE, MINUTE)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .series(point(a, "nope"), t, t + 10 * MINUTE, MINUTE)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Regression guard: unsigned values are kept exactly, not as a float or a wrapped i64.
async fn unsigned_values_above_i64_max_round_trip_exactly(store: Store) {
    let ids = enrolled(&store, 111, false, &["a"]).await;
    let a = &ids[0];
    let ts = t0();
    let values = [
        ("u-max", Value::UInt(u64::MAX)),
        ("u-above", Value::UInt(i64::MAX as u64 + 1)),
        ("u-odd", Value::UInt(18_446_744_073_709_551_557)),
        ("u-zero", Value::UInt(0)),
        ("i-min", Value::Int(i64::MIN)),
        ("i-max", Value::Int(i64::MAX)),
        ("f-neg", Value::Float(-0.5)),
        ("f-big", Value::Float(1.0e300)),
        ("b-false", Value::Bool(false)),
    ];
    let samples = values
        .iter()
        .map(|(name, v)| sample(name, ts, v.clone()))
        .collect();
    ingest(&store, vec![incoming(a, 1, samples)]).await;
    let mut latest: Vec<(String, Value)> = store
        .latest_values(a)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.point, l.value))
        .collect();
    latest.sort_by(|x, y| x.0.cmp(&y.0));
    let mut expected: Vec<(String, Value)> = values
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(latest, expected);
    // Charted as numbers.
    let max = store
        .series(point(a, "u-max"), ts, ts + MINUTE, MINUTE)
        .await
        .unwrap();
    assert_eq!(max.len(), 1);
    assert_eq!(max[0].max, u64::MAX as f64);
}

async fn text_none_and_qualities_round_trip(store: Store) {
    let ids = enrolled(&store, 121, false, &["a"]).await;
    let a = &ids[0];
    let ts = t0();
    let uncertain = Sample {
        quality: Quality::Uncertain,
        ..sample("uncertain", ts, Value::Float(1.5))
    };
    let samples = vec![
        sample("text", ts, Value::Text("运行中 running, \"quoted\"".into())),
        sample("empty-text", ts, Value::Text(String::new())),
        sample("none-good", ts, Value::None),
        Sample::bad(DEVICE.into(), "bad".into(), ts, "exception 02 非法地址"),
        Sample::bad(DEVICE.into(), "bad-empty".into(), ts, ""),
        uncertain,
    ];
    ingest(&store, vec![incoming(a, 1, samples.clone())]).await;
    let mut latest: Vec<Sample> = store
        .latest_values(a)
        .await
        .unwrap()
        .into_iter()
        .map(|l| Sample {
            device: l.device.into(),
            point: l.point.into(),
            ts: l.ts,
            value: l.value,
            quality: l.quality,
        })
        .collect();
    let mut expected = samples;
    latest.sort_by(|x, y| x.point.cmp(&y.point));
    expected.sort_by(|x, y| x.point.cmp(&y.point));
    assert_eq!(latest, expected);
    // Not numbers: no series.
    for name in ["text", "none-good", "bad"] {
        assert!(
            store
                .series(point(a, name), ts, ts + MINUTE, MINUTE)
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
    }
}

async fn prune_deletes_exactly_the_samples_read_before_the_cutoff(store: Store) {
    let ids = enrolled(&store, 131, false, &["a"]).await;
    let a = &ids[0];
    // Three days, a sample a minute on two points for the first ten minutes of each day,
    // and one read in 1970 (a gateway clock far off).
    let day0 = t0() - DAY_MS;
    let mut samples = vec![sample("p", 1000, Value::Int(-1))];
    for day in 0..3 {
        for m in 0..10 {
            let ts = day0 + day * DAY_MS + m * MINUTE;
            samples.push(sample("p", ts, Value::Int(m)));
            samples.push(sample("q", ts, Value::Float(m as f64)));
        }
    }
    let received_at = t0() + DAY_MS / 2;
    ingest_at(&store, vec![incoming(a, 1, samples)], received_at).await;
    let all = |store: Store, name: &'static str| {
        let a = a.clone();
        async move { samples_in(&store, &a, name, 0, day0 + 3 * DAY_MS).await }
    };
    assert_eq!(all(store.clone(), "p").await, 31);

    // Mid-day: the first 5 minutes of day 0 and the 1970 read go; the rest stays.
    let cutoff = day0 + 5 * MINUTE;
    assert_eq!(store.prune(cutoff, 0).await.unwrap(), 5 + 5 + 1);
    assert_eq!(all(store.clone(), "p").await, 25);
    assert_eq!(all(store.clone(), "q").await, 25);
    assert_eq!(samples_in(&store, a, "p", day0, cutoff).await, 0);
    assert_eq!(
        samples_in(&store, a, "p", cutoff, cutoff + 5 * MINUTE).await,
        5
    );
    // The per-minute aggregates go with them.
    let minutes = store
        .series(point(a, "q"), day0, day0 + DAY_MS, MINUTE)
        .await
        .unwrap();
    let starts: Vec<i64> = minutes.iter().map(|b| b.start).collect();
    assert_eq!(
        starts,
        (5..10).map(|m| day0 + m * MINUTE).collect::<Vec<_>>()
    );
    assert_eq!(
        store.prune(cutoff, 0).await.unwrap(),
        0,
        "nothing left to prune"
    );

    // A day boundary: all of day 0 (and nothing of day 1).
    assert_eq!(store.prune(day0 + DAY_MS, 0).await.unwrap(), 10);
    assert_eq!(all(store.clone(), "p").await, 20);
    assert_eq!(
        samples_in(&store, a, "q", day0 + DAY_MS, day0 + 3 * DAY_MS).await,
        20
    );

    // Dedup rows go only when received before their cutoff.
    assert_eq!(
        ingest_at(&store, vec![floats(a, 1, day0, 1)], received_at).await,
        [BatchOutcome::Duplicate]
    );
    store.prune(0, received_at).await.unwrap();
    assert_eq!(
        ingest_at(&store, vec![floats(a, 1, day0, 1)], received_at).await,
        [BatchOutcome::Duplicate],
        "received at the cutoff: kept"
    );
    store.prune(0, received_at + 1).await.unwrap();
    assert_eq!(
        ingest_at(
            &store,
            vec![floats(a, 1, day0 + 2 * DAY_MS, 1)],
            received_at
        )
        .await,
        [stored(1)],
        "its dedup row pruned, the seq is new again"
    );
    // Counters are not touched by pruning.
    let (g, _) = gateway(&store, a).await;
    assert_eq!((g.batches, g.samples), (2, 62));
}

async fn onboarding_on_cloud_since_and_active_days_follow_the_batches(store: Store) {
    let now = t0();
    let a = enrolled(&store, 141, true, &["a"]).await.remove(0);
    enrolled(&store, 142, false, &["b"]).await;
    store
        .insert_enterprises(vec![new_enterprise(143, false)], now, true)
        .await
        .unwrap()
        .unwrap();

    let rows = store.onboarding(now).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().filter(|r| r.enrolled).count(), 2);
    assert!(rows.iter().all(|r| !r.on_cloud && !r.active));
    assert!(store.on_cloud_since().await.unwrap().is_empty());

    // Batches on two days, the second day twice; one received out of order.
    let (t1, t2, t3) = (
        now + 3_600_000,
        now + DAY_MS + 3_600_000,
        now + DAY_MS + 60_000,
    );
    ingest_at(&store, vec![floats(&a, 0, t1, 1)], t1).await;
    ingest_at(&store, vec![floats(&a, 1, t2, 1)], t2).await;
    ingest_at(&store, vec![floats(&a, 2, t3, 1)], t3).await;

    let e = store.enterprise(&code(141)).await.unwrap().unwrap();
    assert_eq!((e.first_batch_at, e.last_batch_at), (Some(t1), Some(t2)));
    let (g, _) = gateway(&store, &a).await;
    assert_eq!(g.first_batch_at, Some(t1));

    let rows = store.onboarding(t2).await.unwrap();
    let find = |industry: Industry, in_program: bool| {
        rows.iter()
            .find(|r| r.industry == industry && r.in_program == in_program)
            .copied()
            .unwrap()
    };
    let ra = find(new_enterprise(141, true).industry, true);
    assert!(ra.enrolled && ra.on_cloud && ra.active);
    assert_eq!(ra.district, new_enterprise(141, true).district);
    let rb = find(new_enterprise(142, false).industry, false);
    assert!(rb.enrolled && !rb.on_cloud && !rb.active);
    let rows = store.onboarding(t2 + 1).await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.on_cloud).count(), 1);
    assert_eq!(rows.iter().filter(|r| r.active).count(), 0);

    assert_eq!(store.on_cloud_since().await.unwrap(), [(true, t1)]);

    let (d1, d2) = (day_of(t1, OFFSET), day_of(t2, OFFSET));
    assert_ne!(d1, d2);
    let mut days = store.active_days(d1 - 5, d2 + 5).await.unwrap();
    days.sort_by_key(|d| d.day);
    let seen: Vec<(i64, bool)> = days.iter().map(|d| (d.day, d.in_program)).collect();
    assert_eq!(seen, [(d1, true), (d2, true)]);
    assert_eq!(days[0].enterprise, days[1].enterprise, "one enterprise");
    assert_eq!(store.active_days(d2, d2).await.unwrap().len(), 1);
    assert!(store.active_days(d2 + 1, d2 + 9).await.unwrap().is_empty());
}

async fn status_and_meta_are_kept_for_enrolled_gateways_only(store: Store) {
    let a = enrolled(&store, 151, false, &["a"]).await.remove(0);
    let now = t0();
    let status = Status {
        state: GatewayState::Online,
        version: Some("0.1.0".to_owned()),
        started_at: Some(now - 1000),
        backlog_batches: Some(u64::MAX),
        evicted_batches: Some(0),
        ..Status::offline()
    };
    let meta = serde_json::json!({"devices": [{"name": "press-1", "protocol": "modbus-tcp",
        "points": [{"name": "温度", "unit": "°C"}]}]});
    assert!(
        !store
            .update_status("stranger", status.clone(), now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_meta("stranger", meta.clone(), now, OFFSET)
            .await
            .unwrap()
    );
    assert!(store.update_status(&a, status.clone(), now).await.unwrap());
    assert!(
        store
            .update_meta(&a, meta.clone(), now, OFFSET)
            .await
            .unwrap()
    );
    let (g, _) = gateway(&store, &a).await;
    assert_eq!(
        g.status,
        Some(GatewayStatus {
            status,
            received_at: now
        })
    );
    assert!(g.status.as_ref().unwrap().online());
    assert_eq!(g.meta, Some(meta));
    assert!(store.gateway("stranger", 10).await.unwrap().is_none());

    // The will replaces it.
    assert!(
        store
            .update_status(&a, Status::offline(), now + 1)
            .await
            .unwrap()
    );
    let (g, _) = gateway(&store, &a).await;
    assert!(!g.status.unwrap().online());
}

async fn reopening_keeps_the_data_and_migrates_nothing_twice(database: Database, dir: PathBuf) {
    let store = Store::open(&database, &dir).await.expect("opens");
    let a = enrolled(&store, 161, false, &["a"]).await.remove(0);
    let ts = t0();
    ingest(&store, vec![floats(&a, 1, ts, 3)]).await;
    drop(store);
    let store = Store::open(&database, &dir).await.expect("opens again");
    assert_eq!(
        ingest(&store, vec![floats(&a, 1, ts, 3)]).await,
        [BatchOutcome::Duplicate]
    );
    let (g, _) = gateway(&store, &a).await;
    assert_eq!((g.batches, g.samples), (1, 3));
    assert_eq!(samples_in(&store, &a, "p", ts, ts + MINUTE).await, 3);
}

/// Several instances starting together on a fresh PostgreSQL database migrate it once
/// (SQLite is one instance's: not a case there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FIELDLINK_TEST_POSTGRES; run by .ci/run"]
async fn postgres_instances_opening_together_migrate_once() {
    on_postgres(|database: Database, dir: PathBuf| async move {
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let (database, dir) = (database.clone(), dir.clone());
                tokio::spawn(async move { Store::open(&database, &dir).await })
            })
            .collect();
        let mut stores = Vec::new();
        for open in opens {
            stores.push(open.await.unwrap().expect("every instance opens"));
        }
        let a = enrolled(&stores[0], 171, false, &["a"]).await.remove(0);
        assert_eq!(stores[3].gateways(None).await.unwrap()[0].id, a);
    })
    .await;
}

/// PostgreSQL keeps samples in one partition per UTC day: a day's samples land in its
/// partition, a read far from today in the default one, and pruning past a day drops its
/// partition whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FIELDLINK_TEST_POSTGRES; run by .ci/run"]
async fn postgres_samples_are_partitioned_by_day_and_pruned_by_dropping_days() {
    crate::support::logs();
    let Some(db) = TestDatabase::create().await else {
        eprintln!("skipped: FIELDLINK_TEST_POSTGRES is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = Database::Postgres {
        url: db.url().to_owned(),
        ca_file: None,
    };
    bounded(LIMIT, async {
        let store = Store::open(&database, dir.path()).await.unwrap();
        let a = enrolled(&store, 181, false, &["a"]).await.remove(0);
        let day0 = t0() - DAY_MS;
        let samples = vec![
            sample("p", day0 + MINUTE, Value::Int(1)),
            sample("p", day0 + DAY_MS + MINUTE, Value::Int(2)),
            sample("p", day0 + DAY_MS + 2 * MINUTE, Value::Int(3)),
            sample("p", 1000, Value::Int(0)),
        ];
        ingest_at(&store, vec![incoming(&a, 1, samples)], t0() + MINUTE).await;
        let client = db.client().await;
        let rows_in = |table: String| {
            let client = &client;
            async move {
                client
                    .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                    .await
                    .map(|r| r.get::<_, i64>(0))
                    .ok()
            }
        };
        let day = |ts: i64| format!("samples_d{}", ts.div_euclid(DAY_MS));
        assert_eq!(rows_in(day(day0)).await, Some(1));
        assert_eq!(rows_in(day(day0 + DAY_MS)).await, Some(2));
        assert_eq!(rows_in("samples_default".to_owned()).await, Some(1));
        // Tomorrow's partition exists before any of its samples arrive.
        assert_eq!(rows_in(day(t0() + 2 * DAY_MS)).await, Some(0));

        assert_eq!(store.prune(day0 + DAY_MS, 0).await.unwrap(), 2);
        assert_eq!(rows_in(day(day0)).await, None, "day 0's partition dropped");
        assert_eq!(rows_in(day(day0 + DAY_MS)).await, Some(2));
        assert_eq!(rows_in("samples_default".to_owned()).await, Some(0));
        assert_eq!(samples_in(&store, &a, "p", 0, t0() + DAY_MS).await, 2);
    })
    .await;
    db.drop_database().await;
}

/// Integrators, every assignment with its time, the enterprise's sharing, and a window's
/// numbering: stored, numbered (crash windows not counted), samples.
/// A maturity assessment of level `level` at `t0() + at` by `assessor`.
fn assessment(level: i64, at: i64, assessor: &str) -> NewAssessment {
    NewAssessment {
        level: MaturityLevel::new(level).unwrap(),
        assessed_at: t0() + at,
        assessor: assessor.to_owned(),
    }
}

async fn sizes_classes_and_the_maturity_history_are_kept(store: Store) {
    // Registered with its classes and an assessment; and one without (as rows from before
    // the classes existed): nothing recorded.
    let mut giant = new_enterprise(71, true);
    giant.size = Some(Size::Above);
    giant.specialised = Some(Specialised::LittleGiant);
    giant.maturity = Some(assessment(2, 10, "第一评估院"));
    let plain = new_enterprise(72, false);
    let inserted = store
        .insert_enterprises(vec![giant, plain], t0() + 100, true)
        .await
        .unwrap();
    assert_eq!(inserted, Ok(2));
    let (a, b) = (code(71), code(72));
    let e = store.enterprise(&a).await.unwrap().unwrap();
    assert_eq!(
        (e.size, e.specialised, e.maturity),
        (
            Some(Size::Above),
            Some(Specialised::LittleGiant),
            Some(Maturity {
                level: MaturityLevel::new(2).unwrap(),
                assessed_at: t0() + 10
            })
        )
    );
    let e = store.enterprise(&b).await.unwrap().unwrap();
    assert_eq!((e.size, e.specialised, e.maturity), (None, None, None));
    assert!(store.assessments(&b).await.unwrap().is_empty());

    // Classes change one at a time; an absent one stays.
    assert!(
        store
            .set_classes(&b, Some(Size::Below), None)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_classes(&b, None, Some(Specialised::Provincial))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_classes(&code(73), Some(Size::Above), None)
            .await
            .unwrap()
    );
    let e = store.enterprise(&b).await.unwrap().unwrap();
    assert_eq!(
        (e.size, e.specialised),
        (Some(Size::Below), Some(Specialised::Provincial))
    );

    // Assessments recorded out of order: the newest by its date is the current one; an
    // older one recorded later joins the history only; of two on the same date, the last
    // recorded wins.
    for (level, at, assessor, now) in [
        (3, 50, "第二评估院", 200),
        (1, 20, "第三评估院", 300),
        (4, 50, "第四评估院", 400),
    ] {
        assert!(
            store
                .record_assessment(&a, assessment(level, at, assessor), t0() + now)
                .await
                .unwrap()
        );
    }
    assert!(
        !store
            .record_assessment(&code(73), assessment(2, 1, "x"), t0())
            .await
            .unwrap()
    );
    let history: Vec<(u8, i64, String, i64)> = store
        .assessments(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|h| {
            (
                h.level.get(),
                h.assessed_at - t0(),
                h.assessor,
                h.recorded_at - t0(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            (4, 50, "第四评估院".to_owned(), 400),
            (3, 50, "第二评估院".to_owned(), 200),
            (1, 20, "第三评估院".to_owned(), 300),
            (2, 10, "第一评估院".to_owned(), 100),
        ]
    );
    let current = store.enterprise(&a).await.unwrap().unwrap().maturity;
    assert_eq!(
        current,
        Some(Maturity {
            level: MaturityLevel::new(4).unwrap(),
            assessed_at: t0() + 50
        })
    );
    // The list and the counts' rows carry the same.
    let listed = store.enterprises().await.unwrap();
    let listed_a = listed.iter().find(|e| e.credit_code == a).unwrap();
    assert_eq!(listed_a.maturity, current);
    let rows = store.onboarding(t0()).await.unwrap();
    let mut classes: Vec<_> = rows
        .iter()
        .map(|r| (r.size, r.specialised, r.maturity.map(MaturityLevel::get)))
        .collect();
    classes.sort();
    assert_eq!(
        classes,
        [
            (Some(Size::Above), Some(Specialised::LittleGiant), Some(4)),
            (Some(Size::Below), Some(Specialised::Provincial), None),
        ]
    );
}

async fn integrators_assignments_sharing_and_numbering_are_kept(store: Store) {
    let ids = enrolled(&store, 86, false, &["a"]).await;
    let a = &ids[0];
    let enterprise = code(86);
    let (i1, i2) = (code(96), code(97));
    for (i, name) in [(&i1, "一号"), (&i2, "二号")] {
        let new = NewIntegrator {
            credit_code: CreditCode::parse(i).unwrap(),
            name: name.to_owned(),
            contact: None,
        };
        assert!(store.insert_integrator(new.clone(), t0()).await.unwrap());
        assert!(!store.insert_integrator(new, t0()).await.unwrap(), "exists");
    }
    assert_eq!(store.integrators().await.unwrap().len(), 2);
    assert_eq!(
        store.assign(&enterprise, &code(98), t0()).await.unwrap(),
        AssignOutcome::NoIntegrator
    );
    assert_eq!(
        store.assign(&code(99), &i1, t0()).await.unwrap(),
        AssignOutcome::NoEnterprise
    );
    for (i, at, outcome) in [
        (&i1, 1, AssignOutcome::Assigned),
        (&i1, 2, AssignOutcome::Unchanged),
        (&i2, 3, AssignOutcome::Assigned),
        (&i1, 4, AssignOutcome::Assigned),
    ] {
        assert_eq!(
            store.assign(&enterprise, i, t0() + at).await.unwrap(),
            outcome
        );
    }
    let history: Vec<(String, i64)> = store
        .assignments(&enterprise)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.integrator, h.assigned_at - t0()))
        .collect();
    assert_eq!(history, [(i1.clone(), 1), (i2.clone(), 3), (i1.clone(), 4)]);
    let e = store.enterprise(&enterprise).await.unwrap().unwrap();
    assert_eq!(
        (
            e.integrator.as_deref(),
            e.assigned_at,
            e.share_data_with_bureau
        ),
        (Some(i1.as_str()), Some(t0() + 4), false)
    );
    assert!(
        store
            .set_share_data_with_bureau(&enterprise, true)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_share_data_with_bureau(&code(99), true)
            .await
            .unwrap()
    );
    assert!(
        store
            .enterprise(&enterprise)
            .await
            .unwrap()
            .unwrap()
            .share_data_with_bureau
    );

    // Batches 1-2 and 10-12 of 3 samples, 3-7 a crash window, 8-9 missing.
    let batch = |seq: u64| floats(a, seq, t0() + seq as i64 * 1000, 3);
    ingest(&store, [1, 2, 10, 11, 12].map(batch).to_vec()).await;
    store.record_crash_window(a, (3, 7), t0()).await.unwrap();
    let numbering = store.numbering_since(t0()).await.unwrap();
    assert_eq!(numbering.len(), 1, "{numbering:?}");
    let n = &numbering[0];
    assert_eq!(
        (
            n.stored,
            n.samples,
            n.first_seq,
            n.last_seq,
            n.crash_skipped
        ),
        (5, 15, 1, 12, 5)
    );
    assert_eq!(n.numbered(), 7, "12 numbers less the 5 a crash skipped");
    assert!(
        store
            .numbering_since(t0() + DAY_MS)
            .await
            .unwrap()
            .is_empty(),
        "nothing arrived after the window's start"
    );
    let day = day_of(t0() + DAY_MS / 2, OFFSET);
    assert_eq!(
        store
            .days_with_data(&enterprise, day - 29, day)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .days_with_data(&enterprise, day + 1, day + 30)
            .await
            .unwrap(),
        0
    );
}

/// Every saved config gets the next number, also when two instances save at once; the
/// versions are kept; the newest of each gateway is to be published until marked.
async fn config_versions_are_numbered_once_kept_and_published(store: Store) {
    let ids = enrolled(&store, 61, false, &["a", "b"]).await;
    let (a, b) = (ids[0].clone(), ids[1].clone());
    let new = |gateway: &str, toml: &str| NewConfig {
        gateway_id: gateway.to_owned(),
        toml: toml.to_owned(),
        sha256: fieldlink_wire::config::sha256_hex(toml),
        created_by: "int-1".to_owned(),
    };
    let savers: Vec<_> = (0..10)
        .map(|i| {
            let (store, config) = (store.clone(), new(&a, &format!("# v{i}\n")));
            tokio::spawn(async move { store.save_config(config, t0() + i).await })
        })
        .collect();
    let mut versions = Vec::new();
    for saver in savers {
        versions.push(saver.await.unwrap().expect("saved").expect("enrolled"));
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=10).collect::<Vec<u64>>(), "each number once");
    assert_eq!(
        store
            .save_config(new("no-such-gateway", ""), t0())
            .await
            .unwrap(),
        None
    );

    let listed = store.config_versions(&a, 3).await.unwrap();
    assert_eq!(
        listed.iter().map(|v| v.version).collect::<Vec<_>>(),
        [10, 9, 8]
    );
    let (newest, text) = store.config(&a, None).await.unwrap().expect("a config");
    assert_eq!(newest.version, 10);
    assert_eq!(newest.sha256, fieldlink_wire::config::sha256_hex(&text));
    let (third, _) = store.config(&a, Some(3)).await.unwrap().expect("v3 kept");
    assert_eq!((third.version, third.created_by.as_str()), (3, "int-1"));
    assert_eq!(store.config(&b, None).await.unwrap(), None);

    store.save_config(new(&b, "# b1\n"), t0()).await.unwrap();
    let due = store.configs_to_publish(false, None, 100).await.unwrap();
    let due: Vec<(&str, u64)> = due
        .iter()
        .map(|c| (c.gateway_id.as_str(), c.version))
        .collect();
    assert_eq!(
        due,
        [(a.as_str(), 10), (b.as_str(), 1)],
        "the newest of each"
    );
    store
        .mark_config_published(&a, 10, t0() + 100)
        .await
        .unwrap();
    let due = store.configs_to_publish(false, None, 100).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].gateway_id, b);
    let every = store.configs_to_publish(true, None, 100).await.unwrap();
    assert_eq!(every.len(), 2, "all of them again after a reconnect");
    let first_page = store.configs_to_publish(true, None, 1).await.unwrap();
    let next_page = store
        .configs_to_publish(true, Some(&first_page[0].gateway_id), 1)
        .await
        .unwrap();
    assert_eq!(
        (first_page[0].version, next_page[0].version),
        (every[0].version, every[1].version)
    );
    assert_eq!(
        store
            .config(&a, Some(10))
            .await
            .unwrap()
            .unwrap()
            .0
            .published_at,
        Some(t0() + 100)
    );
}

/// The fleet's config column: the newest version of every gateway that has one, and none
/// for a gateway without a config.
async fn the_newest_config_version_of_every_gateway_comes_in_one_answer(store: Store) {
    let ids = enrolled(&store, 62, false, &["a", "b", "c"]).await;
    assert!(store.newest_config_versions().await.unwrap().is_empty());
    for (gateway, saves) in [(&ids[0], 3), (&ids[1], 1)] {
        for i in 0..saves {
            let toml = format!("# v{i}\n");
            let config = NewConfig {
                gateway_id: gateway.clone(),
                sha256: fieldlink_wire::config::sha256_hex(&toml),
                toml,
                created_by: "int-1".to_owned(),
            };
            store.save_config(config, t0() + i).await.unwrap();
        }
    }
    let newest = store.newest_config_versions().await.unwrap();
    let expected: std::collections::HashMap<String, u64> =
        [(ids[0].clone(), 3), (ids[1].clone(), 1)].into();
    assert_eq!(newest, expected, "no entry for {}", ids[2]);
}

/// A `high` rule with two channels and a `stale` rule on one gateway: `(channel, rule)` ids.
async fn alarm_fixture(store: &Store, serial: u32) -> (String, String, [i64; 2], i64, i64) {
    let ids = enrolled(store, serial, false, &["a"]).await;
    let gateway = ids[0].clone();
    let c = code(serial);
    let channel = |name: &str| NewChannel {
        credit_code: c.clone(),
        name: name.to_owned(),
        kind: "webhook".to_owned(),
        url: format!("https://example.org/{name}"),
        secret: None,
    };
    let a = store.create_channel(channel("a"), t0()).await.unwrap();
    let b = store.create_channel(channel("b"), t0()).await.unwrap();
    let rule = |name: &str, kind: RuleKind, threshold: Option<f64>, for_seconds: i64| NewRule {
        credit_code: c.clone(),
        name: name.to_owned(),
        gateway_id: gateway.clone(),
        device: Some(DEVICE.to_owned()),
        point: Some("t".to_owned()),
        kind,
        threshold,
        hysteresis: 5.0,
        for_seconds,
        severity: Severity::Critical,
        channels: vec![a, b],
    };
    let high = store
        .create_rule(rule("炉温过高", RuleKind::High, Some(100.0), 0), t0())
        .await
        .unwrap();
    let stale = store
        .create_rule(rule("无数据", RuleKind::Stale, None, 60), t0())
        .await
        .unwrap();
    (c, gateway, [a, b], high, stale)
}

fn temperatures(gateway: &str, seq: u64, from: i64, values: &[f64]) -> IncomingBatch {
    let samples = values
        .iter()
        .enumerate()
        .map(|(i, &v)| sample("t", from + i as i64 * 1000, Value::Float(v)))
        .collect();
    incoming(gateway, seq, samples)
}

/// Notifications claimed now by `instance`, as `(transition, channel)`, delivered at once.
async fn deliver_all(store: &Store, instance: &str, now: i64) -> Vec<(Transition, i64, i64)> {
    let claimed = store
        .claim_notifications(instance, now, 30_000, 100)
        .await
        .unwrap();
    let mut out = Vec::new();
    for n in claimed {
        store
            .settle_notification(n.id, instance, now, Ok(()))
            .await
            .unwrap();
        out.push((n.transition, n.channel.id, n.event.rule_id));
    }
    out
}

async fn alarms_raise_clear_notify_once_and_follow_the_clock(store: Store) {
    let (c, gw, [a, b], high, stale) = alarm_fixture(&store, 71).await;
    let now = t0() + DAY_MS / 2;
    let at = now - 10_000;
    // 90, 101 (raise), 98 (inside the hysteresis band), 94 (clear), 120 (raise again).
    let batch = temperatures(&gw, 1, at, &[90.0, 101.0, 98.0, 94.0, 120.0]);
    ingest_at(&store, vec![batch.clone()], now).await;
    // The same batch again (a resend): a duplicate, never evaluated twice.
    assert_eq!(
        ingest_at(&store, vec![batch], now).await,
        [BatchOutcome::Duplicate]
    );
    let events = store.alarm_events(&c, false, 10).await.unwrap();
    let summary: Vec<(i64, EventState, i64, Option<i64>)> = events
        .iter()
        .map(|e| (e.rule_id, e.state, e.raised_at, e.cleared_at))
        .collect();
    assert_eq!(
        summary,
        [
            (high, EventState::Active, at + 4000, None),
            (high, EventState::Cleared, at + 1000, Some(at + 3000)),
        ]
    );
    assert_eq!(events[0].value, Some(Value::Float(120.0)));
    let mut sent = deliver_all(&store, "i1", now).await;
    sent.sort_by_key(|(t, ch, _)| (*ch, t.as_str()));
    assert_eq!(
        sent.len(),
        6,
        "two raises and a clear, to two channels: {sent:?}"
    );
    assert!(deliver_all(&store, "i1", now).await.is_empty(), "each once");
    assert_eq!(
        store.open_alarm_counts().await.unwrap().get(&c),
        Some(&(1, 0))
    );

    // Acknowledged, then cleared; history kept.
    let active = events[0].id;
    assert!(store.acknowledge(active, "ent-user", now).await.unwrap());
    assert!(
        !store.acknowledge(active, "ent-user", now).await.unwrap(),
        "once"
    );
    assert_eq!(
        store.open_alarm_counts().await.unwrap().get(&c),
        Some(&(0, 1))
    );
    ingest_at(&store, vec![temperatures(&gw, 2, now, &[80.0])], now + 1000).await;
    let cleared = store.alarm_event(active).await.unwrap().unwrap();
    assert_eq!(cleared.state, EventState::Cleared);
    assert_eq!(cleared.acknowledged_by.as_deref(), Some("ent-user"));
    let sent = deliver_all(&store, "i1", now + 1000).await;
    assert_eq!(
        sent.iter()
            .filter(|(t, _, _)| *t == Transition::Cleared)
            .count(),
        2
    );

    // A late batch (older than what the rule has seen) changes nothing.
    ingest_at(
        &store,
        vec![temperatures(&gw, 3, at - 60_000, &[500.0])],
        now + 2000,
    )
    .await;
    assert_eq!(store.alarm_events(&c, true, 10).await.unwrap(), []);

    // The clock: `stale` raises 60 s after the last sample, on the leader only.
    let last = now;
    let tick = store.alarm_tick("i1", last + 59_000, 5_000).await.unwrap();
    assert_eq!((tick.leader, tick.raised), (true, 0));
    assert!(
        !store
            .alarm_tick("i2", last + 60_000, 5_000)
            .await
            .unwrap()
            .leader,
        "i1 holds the lease"
    );
    let tick = store.alarm_tick("i1", last + 60_000, 5_000).await.unwrap();
    assert_eq!(tick.raised, 1);
    let open = store.alarm_events(&c, true, 10).await.unwrap();
    assert_eq!((open[0].rule_id, open[0].raised_at), (stale, last + 60_000));
    // i1 dies: its lease lapses and i2 takes over.
    assert!(
        store
            .alarm_tick("i2", last + 65_001, 5_000)
            .await
            .unwrap()
            .leader
    );
    // The next sample clears it.
    ingest_at(
        &store,
        vec![temperatures(&gw, 4, last + 70_000, &[50.0])],
        last + 70_000,
    )
    .await;
    assert_eq!(store.alarm_events(&c, true, 10).await.unwrap(), []);
    let channels: Vec<i64> = deliver_all(&store, "i2", last + 70_000)
        .await
        .iter()
        .map(|n| n.1)
        .collect();
    assert_eq!(
        channels.len(),
        4,
        "the stale raise and clear, to both channels"
    );
    assert!(channels.contains(&a) && channels.contains(&b));

    // A backlog of old excursions that all ended: history, no notification.
    let old = last + 80_000 - 3_600_000;
    let backlog = temperatures(&gw, 5, old, &[150.0, 50.0, 150.0, 50.0]);
    let rules = store.rules(&c).await.unwrap();
    let high_rule = rules.iter().find(|r| r.id == high).unwrap().clone();
    // The rule starts over (an edit), so the old samples are its newest.
    let edit = NewRule {
        credit_code: c.clone(),
        name: high_rule.name.clone(),
        gateway_id: gw.clone(),
        device: high_rule.device.clone(),
        point: high_rule.point.clone(),
        kind: RuleKind::High,
        threshold: Some(100.0),
        hysteresis: 5.0,
        for_seconds: 0,
        severity: Severity::Critical,
        channels: vec![a, b],
    };
    assert!(
        store
            .update_rule(high, edit, true, last + 79_000)
            .await
            .unwrap()
    );
    ingest_at(&store, vec![backlog], last + 80_000).await;
    let history = store.alarm_events(&c, false, 100).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|e| e.rule_id == high && e.raised_at <= old + 2000)
            .count(),
        2
    );
    assert!(
        deliver_all(&store, "i2", last + 80_000).await.is_empty(),
        "no storm for the past"
    );
}

/// Two instances claiming at once never get the same notification; a claim that lapses
/// (its instance died mid-send) is taken again; a retry is due at its time.
async fn concurrent_claims_deliver_each_notification_once(store: Store) {
    let (_, gw, _, _, _) = alarm_fixture(&store, 72).await;
    let now = t0() + DAY_MS / 2;
    for i in 0..20u64 {
        let batch = temperatures(&gw, i + 1, now - 20_000 + i as i64 * 2000, &[150.0, 50.0]);
        ingest_at(&store, vec![batch], now).await;
    }
    // 20 raises and 20 clears, to two channels.
    let claimers: Vec<_> = ["i1", "i2"]
        .into_iter()
        .map(|instance| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let claimed = store
                        .claim_notifications(instance, now, 30_000, 7)
                        .await
                        .unwrap();
                    if claimed.is_empty() {
                        return ids;
                    }
                    ids.extend(claimed.iter().map(|n| n.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!((count, all.len()), (80, 80), "each claimed once");
    // Nothing settled: once the claims lapse they are taken again.
    assert!(
        store
            .claim_notifications("i3", now + 29_000, 30_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_notifications("i3", now + 30_001, 30_000, 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 80);
    let first = again[0].id;
    // Only the holder settles; a retry is due later.
    store
        .settle_notification(first, "i1", now, Ok(()))
        .await
        .unwrap();
    store
        .settle_notification(
            first,
            "i3",
            now + 30_001,
            Err((Some(now + 40_000), "503".into())),
        )
        .await
        .unwrap();
    for n in &again[1..] {
        store
            .settle_notification(n.id, "i3", now + 30_001, Ok(()))
            .await
            .unwrap();
    }
    assert_eq!(store.pending_notifications().await.unwrap(), 1);
    assert!(
        store
            .claim_notifications("i1", now + 39_999, 30_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let retried = store
        .claim_notifications("i1", now + 40_000, 30_000, 100)
        .await
        .unwrap();
    assert_eq!((retried.len(), retried[0].attempts), (1, 1));
    store
        .settle_notification(retried[0].id, "i1", now + 40_000, Err((None, "404".into())))
        .await
        .unwrap();
    assert_eq!(store.pending_notifications().await.unwrap(), 0);
}

/// Regression (found by the end-to-end test on PostgreSQL): creating a rule while the ingest
/// stored its gateway's batches deadlocked (the insert's foreign-key checks locked the
/// enterprise's row, then waited for the gateway's, which the ingest held while it waited
/// for the enterprise's) and answered 500.
async fn rules_are_created_while_the_ingest_stores_their_gateways_batches(store: Store) {
    let (c, gw, [a, _], _, _) = alarm_fixture(&store, 73).await;
    let now = t0() + DAY_MS / 2;
    // Four ingests keep the gateway's row busy while rules are created one after another.
    let ingests: Vec<_> = (0..4u64)
        .map(|lane| {
            let (store, gw) = (store.clone(), gw.clone());
            tokio::spawn(async move {
                for group in 0..50u64 {
                    let batches = (0..10u64)
                        .map(|i| {
                            let seq = 1 + lane * 10_000 + group * 10 + i;
                            temperatures(&gw, seq, now + seq as i64, &[50.0])
                        })
                        .collect();
                    ingest_at(&store, batches, now).await;
                }
            })
        })
        .collect();
    for i in 0..100 {
        let rule = NewRule {
            credit_code: c.clone(),
            name: format!("rule {i}"),
            gateway_id: gw.clone(),
            device: Some(DEVICE.to_owned()),
            point: Some("t".to_owned()),
            kind: RuleKind::Low,
            threshold: Some(0.0),
            hysteresis: 0.0,
            for_seconds: 0,
            severity: Severity::Info,
            channels: vec![a],
        };
        store
            .create_rule(rule, now)
            .await
            .expect("the rule is created");
    }
    for ingest in ingests {
        ingest.await.unwrap();
    }
    assert_eq!(store.rules(&c).await.unwrap().len(), 102);
}

/// A catalogue of `DEVICE` whose points `(name, type, role)` carry those roles.
fn catalogue(points: &[(&str, &str, Option<&str>)]) -> serde_json::Value {
    let points: Vec<serde_json::Value> = points
        .iter()
        .map(|(name, data_type, role)| match role {
            Some(role) => serde_json::json!({"name": name, "type": data_type, "role": role}),
            None => serde_json::json!({"name": name, "type": data_type}),
        })
        .collect();
    serde_json::json!({"devices": [{"name": DEVICE, "protocol": "modbus-tcp", "points": points}]})
}

/// The monitoring row of enterprise `serial`'s industry (the only enterprise of it in the
/// test) on local day `day`, if it reported.
async fn monitored(store: &Store, serial: u32, day: i64) -> Option<MonitoringRow> {
    let industry = new_enterprise(serial, false).industry;
    store
        .monitoring(day, day)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.industry == industry)
}

/// A local midnight of the program's zone, two days ago.
fn local_midnight() -> (i64, i64) {
    let day = day_of(t0(), OFFSET) - 1;
    (day, day * DAY_MS - i64::from(OFFSET) * MINUTE)
}

/// Counter resets, a gap over midnight, bad samples, a late batch (a backlog sent after
/// live data) and a duplicate give the figures of the readings in order, hand-computed.
async fn monitoring_counts_resets_gaps_and_late_batches_as_in_order(store: Store) {
    let a = enrolled(&store, 191, false, &["a"]).await.remove(0);
    let meta = catalogue(&[
        ("run", "bool", Some("running")),
        ("kwh", "f64", Some("energy_kwh")),
        ("parts", "u32", Some("output_count")),
        ("temp", "f32", None),
    ]);
    assert!(store.update_meta(&a, meta, t0(), OFFSET).await.unwrap());
    let (day, midnight) = local_midnight();
    let at = |minute: i64| midnight + minute * MINUTE;
    // Running: true 0–10 min, false 10–40, true 40–60, read every 5 min.
    let run = |minute: i64| sample("run", at(minute), Value::Bool(!(10..40).contains(&minute)));
    let seq1 = vec![
        run(0),
        run(5),
        run(10),
        run(15),
        run(20),
        sample("kwh", at(0), Value::Float(100.0)),
        sample("kwh", at(10), Value::Float(104.0)),
        sample("kwh", at(20), Value::Float(110.0)),
        sample("parts", at(0), Value::Int(500)),
        sample("temp", at(0), Value::Float(21.5)),
        Sample::good("press-2".into(), "temp".into(), at(1), Value::Float(20.0)),
    ];
    // The backlog: sent after seq 3.
    let seq2 = vec![
        run(25),
        run(30),
        run(35),
        Sample::bad(DEVICE.into(), "run".into(), at(37), "timeout"),
        sample("kwh", at(30), Value::Float(112.5)),
        sample("kwh", at(40), Value::Float(115.0)),
        Sample::bad(DEVICE.into(), "kwh".into(), at(50), "timeout"),
        // The parts counter was reset between 0 and 30 min.
        sample("parts", at(30), Value::Int(20)),
    ];
    let seq3 = vec![
        run(40),
        run(45),
        run(50),
        run(55),
        run(60),
        // The meter was swapped: it starts again from 0.
        sample("kwh", at(60), Value::Float(2.0)),
        sample("kwh", at(70), Value::Float(5.0)),
        sample("parts", at(60), Value::Int(560)),
        sample("parts", at(70), Value::Int(10)),
    ];
    // After 23 hours of silence, the next day.
    let seq4 = vec![
        run(24 * 60 + 30),
        sample("kwh", at(24 * 60 + 30), Value::Float(9.0)),
    ];
    ingest(&store, vec![incoming(&a, 1, seq1)]).await;
    ingest(&store, vec![incoming(&a, 3, seq3)]).await;
    // Before the backlog: 20 → 40 min is a gap (unobserved), the counters jump.
    let early = monitored(&store, 191, day).await.expect("reported");
    assert_eq!(
        (early.observed_ms, early.running_ms),
        (40 * MINUTE, 30 * MINUTE)
    );
    assert_eq!(early.energy_kwh, 4.0 + 6.0 + 2.0 + 3.0);
    assert_eq!(early.output, 60.0 + 10.0);
    ingest(&store, vec![incoming(&a, 2, seq2.clone())]).await;
    assert_eq!(
        ingest(&store, vec![incoming(&a, 2, seq2), incoming(&a, 4, seq4)]).await,
        [BatchOutcome::Duplicate, stored(2)]
    );

    let d = monitored(&store, 191, day).await.expect("reported");
    assert_eq!((d.enterprises, d.not_sharing, d.machines), (1, 1, 2));
    // 60 min observed, 30 of them running: a running rate of 0.5.
    assert_eq!((d.observed_ms, d.running_ms), (60 * MINUTE, 30 * MINUTE));
    // 100 → 104 → 110 → 112.5 → 115, swapped → 2 → 5.
    assert_eq!(d.energy_kwh, 4.0 + 6.0 + 2.5 + 2.5 + 2.0 + 3.0);
    // 500, reset → 20 → 560, reset → 10.
    assert_eq!(d.output, 20.0 + 540.0 + 10.0);
    // The increment over the gap counts on the day it was read.
    let next = monitored(&store, 191, day + 1).await.expect("reported");
    assert_eq!((next.machines, next.observed_ms), (1, 0));
    assert_eq!((next.energy_kwh, next.output), (4.0, 0.0));
    assert!(monitored(&store, 191, day + 2).await.is_none());
}

/// Samples stored before their gateway's catalogue count once it arrives; a role taken
/// away takes its figures with it, and given back brings them back.
async fn monitoring_follows_the_catalogue_that_arrives_after_the_samples(store: Store) {
    let b = enrolled(&store, 192, false, &["b"]).await.remove(0);
    let (day, midnight) = local_midnight();
    let at = |minute: i64| midnight + minute * MINUTE;
    let first = vec![
        sample("run", at(0), Value::Bool(true)),
        sample("run", at(5), Value::Bool(true)),
        sample("run", at(10), Value::Bool(false)),
        sample("run", at(15), Value::Bool(false)),
        sample("kwh", at(0), Value::Float(50.0)),
        sample("kwh", at(15), Value::Float(55.0)),
    ];
    ingest(&store, vec![incoming(&b, 1, first)]).await;
    let before = monitored(&store, 192, day).await.expect("reported");
    assert_eq!(
        (before.machines, before.observed_ms, before.energy_kwh),
        (1, 0, 0.0)
    );

    let both = catalogue(&[
        ("run", "bool", Some("running")),
        ("kwh", "f64", Some("energy_kwh")),
    ]);
    assert!(
        store
            .update_meta(&b, both.clone(), t0(), OFFSET)
            .await
            .unwrap()
    );
    let d = monitored(&store, 192, day).await.unwrap();
    assert_eq!(
        (d.observed_ms, d.running_ms, d.energy_kwh),
        (15 * MINUTE, 10 * MINUTE, 5.0)
    );
    // The same catalogue again changes nothing; new samples follow on.
    assert!(
        store
            .update_meta(&b, both.clone(), t0(), OFFSET)
            .await
            .unwrap()
    );
    let second = vec![
        sample("run", at(20), Value::Bool(true)),
        sample("kwh", at(20), Value::Float(60.0)),
    ];
    ingest(&store, vec![incoming(&b, 2, second)]).await;
    let d = monitored(&store, 192, day).await.unwrap();
    assert_eq!(
        (d.observed_ms, d.running_ms, d.energy_kwh),
        (20 * MINUTE, 10 * MINUTE, 10.0)
    );

    let run_only = catalogue(&[("run", "bool", Some("running")), ("kwh", "f64", None)]);
    assert!(store.update_meta(&b, run_only, t0(), OFFSET).await.unwrap());
    let d = monitored(&store, 192, day).await.unwrap();
    assert_eq!(
        (d.observed_ms, d.running_ms, d.energy_kwh),
        (20 * MINUTE, 10 * MINUTE, 0.0)
    );
    assert!(store.update_meta(&b, both, t0(), OFFSET).await.unwrap());
    let d = monitored(&store, 192, day).await.unwrap();
    assert_eq!(
        (d.observed_ms, d.energy_kwh, d.machines),
        (20 * MINUTE, 10.0, 1)
    );
}

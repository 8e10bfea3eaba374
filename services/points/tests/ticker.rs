//! Scores move with time as well as with records: when a disclosed entry starts to count and when
//! it stops, the ticker refreshes the household's balance and publishes `ScoreChanged`. A test with
//! an injected clock (the windows are days long). Runs on SQLite, or on PostgreSQL when
//! `JIAXIN_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::sync::Arc;

use jiaxin_kit::{
    Secret,
    auth::{Caller, Claims, ISSUER, Role},
    events,
    storage::{Database, DatabaseLocation},
    time::now_micros,
};
use jiaxin_points::{PointsService, UnpledgedRecords};
use jiaxin_proto::{
    council::{ObjectionFiled, ObjectionOutcome, ObjectionResolved, RepairApproved, ReviewDecided, ReviewOutcome},
    identity::{HouseholdRegistered, OrgNodeCreated, OrgNodeKind},
    pledges::PledgeSigned,
    points::{
        GetScoreRequest, RecordInput, ScoreChanged, SubmitRecordRequest, points_service_server::PointsService as _,
    },
};
use sqlx::Row;

const DAY: i64 = 24 * 3600 * 1_000_000;

/// A signed-in account of one role, as the API object sees it after authentication.
fn caller(account: &str, role: Role, org: &str) -> Caller {
    Caller(Arc::new(Claims {
        iss: ISSUER.into(),
        sub: account.into(),
        roles: vec![role],
        org: org.into(),
        rid: None,
        iat: 0,
        exp: i64::MAX,
        jti: "t".into(),
    }))
}

async fn database(dir: &std::path::Path) -> Database {
    let location = match std::env::var("JIAXIN_TEST_DATABASE_URL") {
        Ok(url) => {
            DatabaseLocation::shared(Secret::new(url), &format!("t{}_", uuid::Uuid::new_v4().simple()), "points")
        }
        Err(_) => DatabaseLocation::sqlite_in(dir, "points").unwrap(),
    };
    let db = Database::connect(&location).await.unwrap();
    db.migrate("points", &jiaxin_points::MIGRATIONS).await.unwrap();
    db
}

/// The ScoreChanged events in the outbox, oldest first, as (old, new).
async fn score_changes(db: &Database) -> Vec<(i64, i64)> {
    let rows = sqlx::query("SELECT envelope FROM kit_outbox ORDER BY seq").fetch_all(db.pool()).await.unwrap();
    rows.iter()
        .filter_map(|row| {
            let envelope = events::decode(&row.try_get::<Vec<u8>, _>("envelope").unwrap()).unwrap();
            events::payload::<ScoreChanged>(&envelope).unwrap().map(|e| (e.old_score, e.new_score))
        })
        .collect()
}

/// A household known from identity's events, pledged, with a littering deduction (D06, 4
/// points: 7 days' disclosure, then 90 days) the council approved just now.
struct Approved {
    service: PointsService,
    consumer: jiaxin_kit::inbox::Consumer,
    db: Database,
    household: &'static str,
    record_id: String,
    now: i64,
    _dir: tempfile::TempDir,
}

/// A points service on a database of its own, with one household it knows from identity's events
/// and whose pledge it has heard of.
struct Pledged {
    service: PointsService,
    consumer: jiaxin_kit::inbox::Consumer,
    db: Database,
    household: &'static str,
    dir: tempfile::TempDir,
}

async fn pledged_household() -> Pledged {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let config = jiaxin_points::PointsConfig { score_tick_secs: 30, unpledged_records: UnpledgedRecords::Hold };
    let service = PointsService::start(db.clone(), &config).await.unwrap();
    let (_, consumer) = service.consumer();

    // Identity's events make the household known.
    let (root, grid, household) = ("county-1", "grid-1", "household-1");
    let node = jiaxin_proto::identity::OrgNode {
        id: grid.into(),
        kind: OrgNodeKind::Grid as i32,
        path: vec![root.into(), grid.into()],
        ..Default::default()
    };
    for envelope in [
        events::envelope("identity", grid, &OrgNodeCreated { org_node: Some(node) }).unwrap(),
        events::envelope(
            "identity",
            household,
            &HouseholdRegistered {
                household_id: household.into(),
                grid_id: grid.into(),
                head_resident_id: "r-1".into(),
                org_path: vec![root.into(), grid.into()],
                address: "1号".into(),
                head_birth_date: "1975-01-01".into(),
            },
        )
        .unwrap(),
    ] {
        consumer.deliver(&events::topic("identity"), &envelope).await.unwrap();
    }
    // …and pledges' that it signed, so its records count.
    let signed = PledgeSigned { household_id: household.into(), ..Default::default() };
    consumer
        .deliver(&events::topic("pledges"), &events::envelope("pledges", household, &signed).unwrap())
        .await
        .unwrap();

    Pledged { service, consumer, db, household, dir }
}

async fn approved_deduction() -> Approved {
    let Pledged { service, consumer, db, household, dir } = pledged_household().await;
    // A grid worker records littering (minor: 7 days' disclosure, then 90 days).
    let now = now_micros();
    service.tick_at(now).await.unwrap();
    let record = record(&service, household, "k-1", "D06", 4).await;
    let decision = ReviewDecided {
        record_id: record.id.clone(),
        household_id: household.into(),
        outcome: ReviewOutcome::Approved as i32,
        reason: "属实".into(),
        ..Default::default()
    };
    consumer
        .deliver(&events::topic("council"), &events::envelope("council", household, &decision).unwrap())
        .await
        .unwrap();
    Approved { service, consumer, db, household, record_id: record.id, now, _dir: dir }
}

#[tokio::test]
async fn a_disclosed_deduction_moves_the_score_when_it_starts_and_when_it_expires() {
    let Approved { service, db, now, _dir, .. } = approved_deduction().await;
    assert!(score_changes(&db).await.is_empty(), "nothing counts during disclosure");

    // Day 8: the disclosure has ended; the ticker finds the household and moves its score.
    assert_eq!(service.tick_at(now + 8 * DAY).await.unwrap(), 1);
    assert_eq!(score_changes(&db).await, [(1000, 996)]);
    assert_eq!(service.tick_at(now + 8 * DAY).await.unwrap(), 0, "a tick over no time changes nothing");
    assert_eq!(service.tick_at(now + 50 * DAY).await.unwrap(), 0, "nothing starts or stops in between");
    // Day 7 + 90: the window has passed; the score returns.
    assert_eq!(service.tick_at(now + 98 * DAY).await.unwrap(), 1);
    assert_eq!(score_changes(&db).await, [(1000, 996), (996, 1000)]);
}

async fn score_as_of(service: &PointsService, household: &str, at: i64) -> i64 {
    let caller = caller("admin", Role::CountyAdmin, "county-1");
    let mut request = tonic::Request::new(GetScoreRequest {
        household_id: household.into(),
        as_of: Some(jiaxin_kit::time::to_timestamp(at)),
        ..Default::default()
    });
    request.extensions_mut().insert(caller);
    service.api().get_score(request).await.unwrap().into_inner().score.unwrap().score
}

#[tokio::test]
async fn an_objection_freezes_the_deduction_until_upheld_and_an_approved_repair_ends_it() {
    let Approved { service, consumer, household, record_id, now, _dir, .. } = approved_deduction().await;
    let day_8 = now + 8 * DAY;
    assert_eq!(score_as_of(&service, household, day_8).await, 996);
    let deliver = |envelope: jiaxin_proto::events::Envelope| {
        let consumer = &consumer;
        async move { consumer.deliver(&events::topic("council"), &envelope).await.unwrap() }
    };

    // Frozen: it stops counting; redelivered, nothing more happens.
    let filed = ObjectionFiled {
        objection_id: "o-1".into(),
        record_id: record_id.clone(),
        household_id: household.into(),
        ..Default::default()
    };
    let envelope = events::envelope("council", household, &filed).unwrap();
    deliver(envelope.clone()).await;
    deliver(envelope).await;
    assert_eq!(score_as_of(&service, household, day_8).await, 1000);
    // Upheld: it counts again, for the rest of its window only.
    let resolved = ObjectionResolved {
        objection_id: "o-1".into(),
        record_id: record_id.clone(),
        household_id: household.into(),
        outcome: ObjectionOutcome::Upheld as i32,
        ..Default::default()
    };
    deliver(events::envelope("council", household, &resolved).unwrap()).await;
    assert_eq!(score_as_of(&service, household, day_8).await, 996);
    assert_eq!(score_as_of(&service, household, now + 98 * DAY).await, 1000, "no longer than its window");

    // An approved repair ends it: from its start, since that has not come yet.
    let repair = RepairApproved {
        repair_id: "r-1".into(),
        record_id: record_id.clone(),
        household_id: household.into(),
        reason: "已改正".into(),
    };
    deliver(events::envelope("council", household, &repair).unwrap()).await;
    assert_eq!(score_as_of(&service, household, day_8).await, 1000);
}

/// A grid worker's record of `rule` (`points` for a ranged rule, else 0) for the household,
/// about something that happened yesterday.
async fn record(
    service: &PointsService,
    household: &str,
    request_id: &str,
    rule: &str,
    points: i64,
) -> jiaxin_proto::points::Record {
    let caller = caller("worker", Role::GridWorker, "grid-1");
    let mut request = tonic::Request::new(SubmitRecordRequest {
        record: Some(RecordInput {
            request_id: request_id.into(),
            household_id: household.into(),
            rule_code: rule.into(),
            points,
            occurred_at: Some(jiaxin_kit::time::to_timestamp(now_micros() - DAY)),
            evidence: vec!["photo:1".into()],
            ..Default::default()
        }),
    });
    request.extensions_mut().insert(caller);
    service.api().submit_record(request).await.unwrap().into_inner().record.unwrap()
}

/// The recompute finds a balance that no longer follows from the ledger, and a household whose
/// entries moved its score but that has no balance; a deduction still in 公示 (no balance yet)
/// and a balance the ticker has moved are no disagreement.
#[tokio::test]
async fn a_recompute_names_the_households_whose_balance_the_ledger_does_not_give() {
    let Approved { service, db, household, now, _dir, .. } = approved_deduction().await;
    let in_disclosure = service.recompute_scores().await.unwrap();
    assert_eq!(
        (in_disclosure.households, in_disclosure.entries, in_disclosure.disagreeing),
        (1, 1, 0),
        "{in_disclosure:?}"
    );
    // Day 8: the deduction counts, and the tick wrote the balance that says so.
    service.tick_at(now + 8 * DAY).await.unwrap();
    assert_eq!(maintained_score(&db, household).await, 996);
    assert_eq!(service.recompute_scores().await.unwrap().disagreeing, 0);

    sqlx::query("UPDATE balances SET score = score + 1 WHERE household_id = $1")
        .bind(household)
        .execute(db.pool())
        .await
        .unwrap();
    let tampered = service.recompute_scores().await.unwrap();
    assert_eq!((tampered.disagreeing, tampered.first_disagreeing.clone()), (1, vec![household.to_owned()]));

    sqlx::query("DELETE FROM balances WHERE household_id = $1").bind(household).execute(db.pool()).await.unwrap();
    let missing = service.recompute_scores().await.unwrap();
    assert_eq!((missing.households, missing.disagreeing), (1, 1), "{missing:?}");
}

async fn maintained_score(db: &Database, household: &str) -> i64 {
    sqlx::query_scalar("SELECT score FROM balances WHERE household_id = $1")
        .bind(household)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// A record carries the maintained balance forward by its own points — unless something started
/// or stopped counting since that balance was computed and no tick has seen it yet: then the
/// household's whole ledger is evaluated again, and the balance is what the ledger says.
#[tokio::test]
async fn a_record_counts_what_started_counting_since_the_balance_even_before_a_tick() {
    let Approved { service, db, household, record_id, _dir, .. } = approved_deduction().await;
    // Attending the villagers' meeting (A01): 2 points, no review, counts at once.
    record(&service, household, "meeting-1", "A01", 0).await;
    assert_eq!(maintained_score(&db, household).await, 1002, "the deduction is still in disclosure");

    // The deduction's disclosure ends just after that balance was computed (the clock is real,
    // so the ledger is moved instead of the time; no tick runs).
    sqlx::query(
        "UPDATE ledger SET effective_from = (SELECT updated_at + 1 FROM balances WHERE household_id = $1) \
         WHERE record_id = $2",
    )
    .bind(household)
    .bind(&record_id)
    .execute(db.pool())
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    record(&service, household, "meeting-2", "A01", 0).await;
    assert_eq!(maintained_score(&db, household).await, 1000, "1000 + 2 + 2 - 4: the deduction counts now");
    assert_eq!(score_as_of(&service, household, now_micros()).await, 1000, "the ledger agrees");

    // Nothing started or stopped since: carried forward.
    record(&service, household, "meeting-3", "A01", 0).await;
    assert_eq!(maintained_score(&db, household).await, 1002);
}

/// A step of a record's life, as the property test below drives it.
#[derive(Debug, Clone)]
enum Step {
    /// A04, mediating a dispute: 3 points, no review, counts at once.
    Bonus,
    /// D06, littering: 2 or 3 points off, waits for the council.
    Deduction(i64),
    /// The council decides the n-th record awaiting it (modulo how many there are).
    Decide(usize, bool),
    /// A cadre reverses the n-th live record: an effective bonus or a disclosed deduction.
    Reverse(usize),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Step::Bonus),
        (2_i64..=3).prop_map(Step::Deduction),
        (0_usize..4, any::<bool>()).prop_map(|(n, approve)| Step::Decide(n, approve)),
        (0_usize..4).prop_map(Step::Reverse),
    ]
}

async fn reverse(service: &PointsService, record_id: &str) {
    let caller = caller("cadre", Role::VillageCadre, "grid-1");
    let mut request = tonic::Request::new(jiaxin_proto::points::ReverseRecordRequest {
        record_id: record_id.into(),
        reason: "核实有误 / recorded in error".into(),
    });
    request.extensions_mut().insert(caller);
    service.api().reverse_record(request).await.unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 24, max_shrink_iters: 64, ..Default::default() })]

    /// Records through their lives — bonuses, deductions the council approves or rejects, and
    /// reversals — keep three things equal to a reference model at every step: the maintained
    /// balance (carried forward by batches where it can be), the score evaluated from the ledger
    /// now, and the score eight days on, when the approved deductions' disclosure has ended.
    #[test]
    fn a_records_life_keeps_the_balance_the_ledger_and_a_model_equal(steps in proptest::collection::vec(step(), 1..7)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let Pledged { service, consumer, db, household, dir: _dir } = pledged_household().await;
            // The model: live effective bonuses, records awaiting the council, disclosed deductions.
            let (mut bonuses, mut pending, mut disclosed) = (Vec::new(), Vec::new(), Vec::new());
            for (i, step) in steps.iter().enumerate() {
                match step.clone() {
                    Step::Bonus => {
                        let record = record(&service, household, &format!("k-{i}"), "A04", 3).await;
                        bonuses.push((record.id, 3));
                    }
                    Step::Deduction(points) => {
                        let record = record(&service, household, &format!("k-{i}"), "D06", points).await;
                        pending.push((record.id, points));
                    }
                    Step::Decide(n, approve) if !pending.is_empty() => {
                        let (record_id, points) = pending.remove(n % pending.len());
                        let outcome = if approve { ReviewOutcome::Approved } else { ReviewOutcome::Rejected };
                        let decision = ReviewDecided {
                            record_id: record_id.clone(),
                            household_id: household.into(),
                            outcome: outcome as i32,
                            reason: "议事会表决".into(),
                            ..Default::default()
                        };
                        let envelope = events::envelope("council", household, &decision).unwrap();
                        consumer.deliver(&events::topic("council"), &envelope).await.unwrap();
                        if approve {
                            disclosed.push((record_id, points));
                        }
                    }
                    Step::Reverse(n) if !bonuses.is_empty() || !disclosed.is_empty() => {
                        let n = n % (bonuses.len() + disclosed.len());
                        let (record_id, _) =
                            if n < bonuses.len() { bonuses.remove(n) } else { disclosed.remove(n - bonuses.len()) };
                        reverse(&service, &record_id).await;
                    }
                    Step::Decide(..) | Step::Reverse(_) => continue,
                }
                let now_model = 1000 + bonuses.iter().map(|(_, p)| p).sum::<i64>();
                let later_model = now_model - disclosed.iter().map(|(_, p)| p).sum::<i64>();
                let maintained: Option<i64> = sqlx::query_scalar("SELECT score FROM balances WHERE household_id = $1")
                    .bind(household)
                    .fetch_optional(db.pool())
                    .await
                    .unwrap();
                proptest::prop_assert_eq!(maintained.unwrap_or(1000), now_model, "maintained after {:?}", &steps[..=i]);
                proptest::prop_assert_eq!(score_as_of(&service, household, now_micros()).await, now_model);
                let day_8 = now_micros() + 8 * DAY;
                proptest::prop_assert_eq!(score_as_of(&service, household, day_8).await, later_model);
            }
            // The recompute an operator runs agrees with the balance however it was maintained.
            let recomputed = service.recompute_scores().await.unwrap();
            proptest::prop_assert_eq!(recomputed.disagreeing, 0, "{:?} after {:?}", recomputed, &steps);
            Ok(())
        })?;
    }
}

/// A tick never moves a balance back in time: a tick whose moment was taken before a record
/// was committed (the ticker waited for the household's lock meanwhile) still counts that
/// record. (The crash campaign caught a tick that did not: it wrote an evaluation as of its
/// older moment over the newer balance.)
#[tokio::test]
async fn a_tick_whose_moment_is_older_than_a_record_still_counts_it() {
    let Pledged { service, db, household, dir: _dir, .. } = pledged_household().await;
    service.tick_at(now_micros()).await.unwrap();
    // Attending the villagers' meeting (A01): 2 points, no review, counts at once.
    record(&service, household, "meeting-1", "A01", 0).await;
    let tick_moment = now_micros();
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    record(&service, household, "meeting-2", "A01", 0).await;
    assert_eq!(maintained_score(&db, household).await, 1004);
    // The first record started counting since the last tick, so this tick visits the household.
    service.tick_at(tick_moment).await.unwrap();
    assert_eq!(maintained_score(&db, household).await, 1004, "the record committed after the tick's moment counts");
    assert_eq!(score_as_of(&service, household, now_micros()).await, 1004, "the ledger agrees");
}

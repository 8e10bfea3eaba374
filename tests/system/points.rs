//! End-to-end tests of the points service, in both modes, driven through gRPC (and, for the
//! council that is not built yet, through its events).

use std::time::{Duration, Instant};

use crate::common::{self, TestSystem, authed, code, id_number};
use jiaxin::system::ServiceName;
use jiaxin_kit::error::field_violations;
use jiaxin_proto::{
    council::{ReviewDecided, ReviewOutcome},
    identity::{
        CreateAccountRequest, NewResident, OrgNodeKind, RegisterHouseholdRequest, Role,
        identity_service_client::IdentityServiceClient,
    },
    pledges::pledges_service_client::PledgesServiceClient,
    points::{
        BatchSubmitRecordsRequest, Category, ExplainScoreRequest, GetRecordRequest, GetRuleRequest, GetScoreRequest,
        LedgerBreak, ListRecordsRequest, ListRulesRequest, RecordInput, RecordStatus, ReverseRecordRequest, Severity,
        SubmitRecordRequest, VerifyLedgerRequest, points_service_client::PointsServiceClient,
    },
    points::{CreateRuleRequest, PledgeStatus, RetireRuleRequest, ReviseRuleRequest, RuleKind},
};
use tonic::{Code, transport::Channel};

const DAY: i64 = 24 * 3600;

struct County {
    sys: TestSystem,
    admin: String,
    identity: IdentityServiceClient<Channel>,
    pledges: PledgesServiceClient<Channel>,
    points: PointsServiceClient<Channel>,
    town: String,
    village: String,
    grid_a: String,
    grid_b: String,
}

async fn county() -> County {
    county_on(TestSystem::start().await).await
}

async fn county_on(sys: TestSystem) -> County {
    let admin = sys.admin_token().await;
    let mut identity = sys.identity().await;
    let root = common::own_scope(&mut identity, &admin).await;
    let town = common::create_node(&mut identity, &admin, &root, OrgNodeKind::Town, "马坝镇", "").await;
    let village = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "新街村", "").await;
    let grid_a = common::create_node(&mut identity, &admin, &village, OrgNodeKind::Grid, "第一网格", "").await;
    let grid_b = common::create_node(&mut identity, &admin, &village, OrgNodeKind::Grid, "第二网格", "").await;
    let points = PointsServiceClient::new(sys.channel_to(ServiceName::Points).await);
    let mut pledges = PledgesServiceClient::new(sys.channel_to(ServiceName::Pledges).await);
    common::publish_template(&mut pledges, &admin, &village, false).await;
    County { sys, admin, identity, pledges, points, town, village, grid_a, grid_b }
}

impl County {
    async fn household(&mut self, grid: &str, n: u32) -> String {
        let head = NewResident {
            name: format!("户主{n}"),
            id_number: id_number("320830", "19700101", n),
            phone: String::new(),
        };
        let request = RegisterHouseholdRequest {
            grid_id: grid.into(),
            address: format!("新街村{n}号"),
            head: Some(head),
            ..Default::default()
        };
        let household = self
            .identity
            .register_household(authed(&self.admin, request))
            .await
            .unwrap()
            .into_inner()
            .household
            .unwrap();
        self.pledge(&household.id, &household.head_resident_id).await;
        household.id
    }

    /// The head signs the household's pledge (a paper form a cadre enters); waits until points
    /// has the household and its pledge, so its records count.
    async fn pledge(&mut self, household: &str, head: &str) {
        common::await_pledges_household(&mut self.pledges, &self.admin, household).await;
        self.pledges.sign_pledge(authed(&self.admin, common::paper_pledge(household, head, 1))).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let request = authed(&self.admin, GetScoreRequest { household_id: household.into(), ..Default::default() });
            match self.points.get_score(request).await {
                Ok(score) if score.get_ref().score.as_ref().unwrap().pledge == PledgeStatus::InForce as i32 => return,
                Ok(_) => {}
                Err(status) if status.code() == Code::NotFound => {}
                Err(status) => panic!("points never learned of the household: {status:?}"),
            }
            assert!(Instant::now() < deadline, "points never learned of household {household}'s pledge");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn account(&mut self, role: Role, grid: &str) -> String {
        let username = format!("{}-{}", role.as_str_name().to_lowercase(), uuid::Uuid::new_v4().simple());
        let request = CreateAccountRequest {
            username: username.clone(),
            display_name: "采集员".into(),
            roles: vec![role as i32],
            org_node_id: grid.into(),
            password: "collector-pass-1".into(),
            ..Default::default()
        };
        self.identity.create_account(authed(&self.admin, request)).await.unwrap();
        self.sys.login(&username, "collector-pass-1").await
    }

    async fn score(&mut self, household: &str, as_of: Option<i64>) -> (i64, String) {
        let as_of = as_of.map(|s| prost_types::Timestamp { seconds: s, nanos: 0 });
        let request =
            authed(&self.admin, GetScoreRequest { household_id: household.into(), as_of, ..Default::default() });
        let score = self.points.get_score(request).await.unwrap().into_inner().score.unwrap();
        (score.score, score.tier)
    }

    /// Records A04 (a bonus of 3–5 points that needs no review) for each `(idempotency key,
    /// points)`, as `worker`.
    async fn record_bonuses(&mut self, worker: &str, household: &str, items: &[(&str, i64)]) {
        for (key, points) in items {
            let request = SubmitRecordRequest { record: Some(item(key, household, "A04", *points)) };
            self.points.submit_record(authed(worker, request)).await.unwrap();
        }
    }

    async fn record_status(&mut self, id: &str) -> (i32, i64) {
        let record = self.points.get_record(authed(&self.admin, GetRecordRequest { id: id.into() })).await.unwrap();
        let record = record.into_inner().record.unwrap();
        (record.status, record.points)
    }

    /// Waits (bounded) until the record reaches `status`: council decisions arrive as events.
    async fn wait_status(&mut self, id: &str, status: RecordStatus) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.record_status(id).await.0 != status as i32 {
            assert!(Instant::now() < deadline, "record {id} never reached {status:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An hour before the test began, the same for every item of the test: a retry must carry the
/// same content, and a clock that ticked to the next second between two items would not.
fn an_hour_ago() -> i64 {
    static AT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *AT.get_or_init(|| now() - 3600)
}

fn item(request_id: &str, household: &str, rule: &str, points: i64) -> RecordInput {
    RecordInput {
        request_id: request_id.into(),
        household_id: household.into(),
        rule_code: rule.into(),
        points,
        occurred_at: Some(prost_types::Timestamp { seconds: an_hour_ago(), nanos: 0 }),
        place: "新街村文化广场".into(),
        evidence: vec!["photo:2026-11-29/0001.jpg".into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_catalogue_is_loaded_with_provenance() {
    let mut c = county().await;
    let rules = c.points.list_rules(authed(&c.admin, ListRulesRequest::default())).await.unwrap().into_inner().rules;
    // The shipped catalogue (a shared cluster may also hold other tests' own rules).
    let shipped = rules.iter().filter(|r| r.scope_org_node_id.is_empty() && r.code.len() == 3).count();
    assert_eq!(shipped, 48);
    let order = c
        .points
        .list_rules(authed(
            &c.admin,
            ListRulesRequest { category: Category::PublicOrder as i32, include_retired: false },
        ))
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(order.iter().filter(|r| r.scope_org_node_id.is_empty() && r.code.len() == 3).count(), 9);
    let rule = c
        .points
        .get_rule(authed(&c.admin, GetRuleRequest { code: "C09".into() }))
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!(rule.name_zh, "大操大办红白喜事");
    assert_eq!(rule.severity, Severity::Minor as i32);
    assert!(rule.review_required);
    assert_eq!((rule.disclosure_days, rule.counts_days), (7, 90));
    assert!(!rule.article.is_empty() && !rule.basis.is_empty() && !rule.adopted_on.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_record_in_their_own_grid_only_and_retries_are_idempotent() {
    let mut c = county().await;
    let mine = c.household(&c.grid_a.clone(), 1).await;
    let theirs = c.household(&c.grid_b.clone(), 2).await;
    let worker = c.account(Role::GridWorker, &c.grid_a.clone()).await;

    // A04 (mediating a dispute, 3–5 points) needs no review: it counts at once.
    let first = c
        .points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("k-1", &mine, "A04", 4)) }))
        .await
        .unwrap();
    let first = first.into_inner().record.unwrap();
    assert_eq!((first.status, first.points), (RecordStatus::Effective as i32, 4));
    assert_eq!(c.score(&mine, None).await, (1004, "A".into()));

    // The same key and content: the first result, nothing counted twice.
    let again = c
        .points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("k-1", &mine, "A04", 4)) }))
        .await
        .unwrap();
    assert_eq!(again.into_inner().record.unwrap().id, first.id);
    assert_eq!(c.score(&mine, None).await.0, 1004);
    // The same key with other content is refused, naming the difference.
    let status = c
        .points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("k-1", &mine, "A04", 5)) }))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "request_id");
    assert!(status.message().contains("points"), "{}", status.message());

    // Another grid's household reads exactly like one that does not exist.
    let elsewhere = c
        .points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("k-2", &theirs, "A04", 4)) }))
        .await
        .unwrap_err();
    let nowhere = c
        .points
        .submit_record(authed(
            &worker,
            SubmitRecordRequest { record: Some(item("k-3", "no-such-household", "A04", 4)) },
        ))
        .await
        .unwrap_err();
    assert_eq!((elsewhere.code(), elsewhere.message()), (nowhere.code(), nowhere.message()));
    assert_eq!(elsewhere.code(), Code::NotFound);
    assert_eq!(c.score(&theirs, None).await.0, 1000);

    // A volunteer may not record what only cadres and the council may (A07, loan repaid).
    let volunteer = c.account(Role::Volunteer, &c.grid_a.clone()).await;
    let denied = c
        .points
        .submit_record(authed(&volunteer, SubmitRecordRequest { record: Some(item("k-4", &mine, "A07", 0)) }))
        .await;
    assert_eq!(code(denied), Code::PermissionDenied);
}

/// One record retried a thousand times at once, over eight connections (a connection serves 256
/// requests at a time and sheds the rest), counts once: every answer is the same record, and the
/// ledger has one entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_retries_of_one_key_count_once() {
    let mut c = county().await;
    let household = c.household(&c.grid_a.clone(), 1).await;
    let worker = c.account(Role::GridWorker, &c.grid_a.clone()).await;
    let mut connections = Vec::new();
    for _ in 0..8 {
        connections.push(PointsServiceClient::new(c.sys.channel_to(ServiceName::Points).await));
    }
    let retries = (0..1_000).map(|i| {
        let mut points = connections[i % connections.len()].clone();
        let record = SubmitRecordRequest { record: Some(item("once", &household, "A04", 4)) };
        let worker = worker.clone();
        tokio::spawn(async move {
            // UNAVAILABLE (a busy database: pool, deadlock, serialization) says "retry", and a
            // client retrying a key does so; that retry must count once too. Bounded.
            for _ in 0..20 {
                match points.submit_record(authed(&worker, record.clone())).await {
                    Err(status) if status.code() == Code::Unavailable => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    answer => return answer.map(|r| r.into_inner().record.unwrap().id),
                }
            }
            panic!("UNAVAILABLE twenty times in a row");
        })
    });
    let mut ids = std::collections::BTreeSet::new();
    for answer in futures::future::join_all(retries).await {
        ids.insert(answer.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 1, "every retry answers with the first record");
    assert_eq!(c.score(&household, None).await.0, 1004, "counted once");
    let listed = c
        .points
        .list_records(authed(&c.admin, ListRecordsRequest { household_id: household.clone(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.records.len(), 1);

    // The same key with other content, also at once: every one refused, nothing written.
    let conflicting = (0..100).map(|i| {
        let mut points = connections[i % connections.len()].clone();
        let request = authed(&worker, SubmitRecordRequest { record: Some(item("once", &household, "A04", 5)) });
        tokio::spawn(async move { points.submit_record(request).await.map(|_| ()) })
    });
    for answer in futures::future::join_all(conflicting).await {
        let status = answer.unwrap().unwrap_err();
        assert_eq!(field_violations(&status)[0].field, "request_id");
    }
    assert_eq!(c.score(&household, None).await.0, 1004);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deduction_waits_for_the_council_is_disclosed_then_counts_until_it_expires() {
    let mut c = county().await;
    let household = c.household(&c.grid_a.clone(), 3).await;
    let worker = c.account(Role::GridWorker, &c.grid_a.clone()).await;
    let bonus = item("b-1", &household, "A04", 5);
    c.points.submit_record(authed(&worker, SubmitRecordRequest { record: Some(bonus) })).await.unwrap();

    // D06 littering (minor: 7 days' disclosure, counts 90 days).
    let submitted = c
        .points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("d-1", &household, "D06", 4)) }))
        .await
        .unwrap();
    let record = submitted.into_inner().record.unwrap();
    assert_eq!((record.status, record.points), (RecordStatus::PendingReview as i32, -4));
    assert_eq!(c.score(&household, None).await.0, 1005, "nothing counts before the council decides");

    let decided_at = now();
    let decision = ReviewDecided {
        review_id: "review-1".into(),
        record_id: record.id.clone(),
        household_id: household.clone(),
        outcome: ReviewOutcome::Amended as i32,
        amended_points: 3,
        reason: "情节较轻,减为3分".into(),
    };
    c.sys.publish("council", &household, &decision).await;
    c.wait_status(&record.id, RecordStatus::InDisclosure).await;
    assert_eq!(c.record_status(&record.id).await.1, -3, "the council's amendment");

    // On the disclosure list for 7 days, then it counts for 90 days, then it no longer does.
    assert_eq!(c.score(&household, None).await.0, 1005);
    assert_eq!(c.score(&household, Some(decided_at + 8 * DAY)).await, (1002, "A".into()));
    assert_eq!(c.score(&household, Some(decided_at + 7 * DAY + 89 * DAY)).await.0, 1002);
    assert_eq!(c.score(&household, Some(decided_at + 7 * DAY + 91 * DAY)).await.0, 1005);
    // As of before it was even recorded, the books were as they were.
    assert_eq!(c.score(&household, Some(decided_at - DAY)).await.0, 1000);

    // The explanation names each entry and rule, what expires when, and the nearest boundaries.
    let explained = c
        .points
        .explain_score(authed(
            &c.admin,
            ExplainScoreRequest {
                household_id: household.clone(),
                as_of: Some(prost_types::Timestamp { seconds: decided_at + 8 * DAY, nanos: 0 }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(explained.base, 1000);
    let mut rules: Vec<(String, i64)> = explained.entries.iter().map(|e| (e.rule_code.clone(), e.points)).collect();
    rules.sort();
    assert_eq!(rules, [("A04".into(), 5), ("D06".into(), -3)]);
    assert!(explained.entries.iter().any(|e| e.rule_name_zh == "乱扔乱倒垃圾"));
    assert_eq!(explained.expiring.first().map(|e| e.rule_code.as_str()), Some("D06"), "the deduction expires first");
    assert_eq!((explained.next_tier.as_str(), explained.points_to_next_tier), ("AA", 48));
    assert_eq!((explained.lower_tier.as_str(), explained.points_above_lower_tier), ("B", 3));

    // A rejected deduction never counts; a redelivered decision changes nothing.
    let other = c
        .points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("d-2", &household, "D06", 2)) }))
        .await
        .unwrap();
    let other = other.into_inner().record.unwrap();
    let rejection = ReviewDecided {
        record_id: other.id.clone(),
        outcome: ReviewOutcome::Rejected as i32,
        reason: "证据不足".into(),
        ..decision.clone()
    };
    c.sys.publish("council", &household, &rejection).await;
    c.wait_status(&other.id, RecordStatus::Rejected).await;
    c.sys.publish("council", &household, &decision).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.score(&household, Some(decided_at + 8 * DAY)).await.0, 1002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversal_is_a_new_entry_and_the_chain_catches_tampering() {
    let mut c = county().await;
    let household = c.household(&c.grid_a.clone(), 4).await;
    let worker = c.account(Role::GridWorker, &c.grid_a.clone()).await;
    c.record_bonuses(&worker, &household, &[("r-1", 3), ("r-2", 5)]).await;
    assert_eq!(c.score(&household, None).await.0, 1008);
    let records = c
        .points
        .list_records(authed(&c.admin, ListRecordsRequest { household_id: household.clone(), ..Default::default() }))
        .await
        .unwrap();
    let target = records.into_inner().records.into_iter().find(|r| r.points == 5).unwrap();
    // Whole seconds on the wire: leave one between the entries and the reversal.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before_reversal = now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reversed = c
        .points
        .reverse_record(authed(
            &c.admin,
            ReverseRecordRequest { record_id: target.id.clone(), reason: "重复录入".into() },
        ))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(reversed.status, RecordStatus::Reversed as i32);
    assert_eq!(c.score(&household, None).await.0, 1003);
    assert_eq!(c.score(&household, Some(before_reversal)).await.0, 1008, "history keeps the entry");

    let verify = c
        .points
        .verify_ledger(authed(&c.admin, VerifyLedgerRequest { household_id: household.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert!(verify.intact);
    assert_eq!(verify.entries_checked, 3, "two entries and a reversal");

    // Someone edits history directly in the database: the chain shows where.
    let db = c.sys.database(ServiceName::Points).await;
    let first_seq: i64 = sqlx::query_scalar("SELECT MIN(seq) FROM ledger WHERE household_id = $1")
        .bind(&household)
        .fetch_one(db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE ledger SET delta = 30 WHERE seq = $1").bind(first_seq).execute(db.pool()).await.unwrap();
    let verify = c
        .points
        .verify_ledger(authed(&c.admin, VerifyLedgerRequest { household_id: household.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert!(!verify.intact);
    assert_eq!((verify.broken_entry_seq, verify.broken_household_id.as_str()), (first_seq, household.as_str()));
}

/// Each household's chain is linked entry to entry and ends at the household's chain head, so
/// verify catches an entry changed, removed from the middle, from the end, or every one of them,
/// two entries swapped, and the head itself removed — for the household and across a town — and a
/// chain cut short stays caught after a later entry is appended to it. Each tampering on its own
/// household, whose chain was written by both paths: records through the intake, a reversal
/// appended alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_removed_or_reordered_ledger_entry_is_caught_by_verify() {
    let mut c = county().await;
    let worker = c.account(Role::GridWorker, &c.grid_a.clone()).await;
    // Verifying "every chain" as an auditor of this test's town: the shared cluster holds other
    // tests' households, some tampered on purpose.
    let auditor = c.account(Role::Auditor, &c.town.clone()).await;
    // One household per tampering: changed, middle removed, last removed, all removed, swapped,
    // head removed.
    let mut households = Vec::new();
    for n in 0..6 {
        let household = c.household(&c.grid_a.clone(), 40 + n).await;
        c.record_bonuses(&worker, &household, &[(&format!("{household}-1"), 3), (&format!("{household}-2"), 5)]).await;
        let records = c.points.list_records(authed(
            &c.admin,
            ListRecordsRequest { household_id: household.clone(), ..Default::default() },
        ));
        let second = records.await.unwrap().into_inner().records.into_iter().find(|r| r.points == 5).unwrap();
        let reversal = ReverseRecordRequest { record_id: second.id, reason: "重复录入".into() };
        c.points.reverse_record(authed(&c.admin, reversal)).await.unwrap();
        households.push(household);
    }
    let town = c.points.verify_ledger(authed(&auditor, VerifyLedgerRequest::default())).await.unwrap().into_inner();
    assert!(town.intact, "{town:?}");
    assert_eq!((town.households_checked, town.entries_checked), (6, 18), "three entries per household");

    let db = c.sys.database(ServiceName::Points).await;
    let pool = db.pool();
    let seqs = |household: String| async move {
        sqlx::query_scalar::<_, i64>("SELECT seq FROM ledger WHERE household_id = $1 ORDER BY seq")
            .bind(household)
            .fetch_all(pool)
            .await
            .unwrap()
    };
    let run = |sql: &'static str, household: String| async move {
        sqlx::query(sql).bind(household).execute(pool).await.unwrap();
    };
    /// What verify says is wrong with the household's chain: (kind, entry named, missing entries).
    async fn broken_at(c: &mut County, household: &str) -> (LedgerBreak, i64, i64) {
        let request = VerifyLedgerRequest { household_id: household.into() };
        let verified = c.points.verify_ledger(authed(&c.admin, request)).await.unwrap().into_inner();
        assert!(!verified.intact, "{household}: {verified:?}");
        assert_eq!(verified.broken_household_id, household);
        (verified.broken(), verified.broken_entry_seq, verified.missing_entries)
    }
    use LedgerBreak::{Entry, HeadMismatch, HeadMissing};
    let [changed, middle, last, all, swapped, headless] = households.try_into().unwrap();

    // Every entry removed first, alone: the town's verify finds the household by its head.
    run("DELETE FROM ledger WHERE household_id = $1", all.clone()).await;
    assert_eq!(broken_at(&mut c, &all).await, (HeadMismatch, 0, 3), "every entry removed: the head counts three");
    let town = c.points.verify_ledger(authed(&auditor, VerifyLedgerRequest::default())).await.unwrap().into_inner();
    assert_eq!((town.intact, town.broken_household_id.as_str()), (false, all.as_str()), "{town:?}");

    let changed_seqs = seqs(changed.clone()).await;
    run("UPDATE ledger SET delta = 30 WHERE household_id = $1 AND delta = 5", changed.clone()).await;
    assert_eq!(broken_at(&mut c, &changed).await, (Entry, changed_seqs[1], 0), "a changed entry");

    let middle_seqs = seqs(middle.clone()).await;
    sqlx::query("DELETE FROM ledger WHERE seq = $1").bind(middle_seqs[1]).execute(pool).await.unwrap();
    assert_eq!(broken_at(&mut c, &middle).await, (Entry, middle_seqs[2], 0), "the entry after a removed one");

    let last_seqs = seqs(last.clone()).await;
    sqlx::query("DELETE FROM ledger WHERE seq = $1").bind(last_seqs[2]).execute(pool).await.unwrap();
    assert_eq!(broken_at(&mut c, &last).await, (HeadMismatch, last_seqs[1], 1), "the last entry removed");
    // A later record chains after the head, the removed entry: the gap stays in the chain.
    c.record_bonuses(&worker, &last, &[(&format!("{last}-3"), 3)]).await;
    let appended = *seqs(last.clone()).await.last().unwrap();
    assert!(appended > last_seqs[2]);
    assert_eq!(broken_at(&mut c, &last).await, (Entry, appended, 0), "the entry appended after the removal");

    // The first two entries trade places: each row takes the other's every field but its seq.
    let swapped_seqs = seqs(swapped.clone()).await;
    type Fields = (String, String, String, i64, i64, i64, String, i64, i64, i64, Option<i64>, i64, String, String);
    let fields = |seq: i64| async move {
        sqlx::query_as::<_, Fields>(
            "SELECT household_id, record_id, resident_id, delta, effective_from, expires_at, rule_code, rule_version, \
             category, serious, reverses_seq, created_at, prev_hash, hash FROM ledger WHERE seq = $1",
        )
        .bind(seq)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let (first, second) = (fields(swapped_seqs[0]).await, fields(swapped_seqs[1]).await);
    for (seq, f) in [(swapped_seqs[0], second), (swapped_seqs[1], first)] {
        sqlx::query(
            "UPDATE ledger SET household_id = $1, record_id = $2, resident_id = $3, delta = $4, effective_from = $5, \
             expires_at = $6, rule_code = $7, rule_version = $8, category = $9, serious = $10, reverses_seq = $11, \
             created_at = $12, prev_hash = $13, hash = $14 WHERE seq = $15",
        )
        .bind(f.0)
        .bind(f.1)
        .bind(f.2)
        .bind(f.3)
        .bind(f.4)
        .bind(f.5)
        .bind(f.6)
        .bind(f.7)
        .bind(f.8)
        .bind(f.9)
        .bind(f.10)
        .bind(f.11)
        .bind(f.12)
        .bind(f.13)
        .bind(seq)
        .execute(pool)
        .await
        .unwrap();
    }
    assert_eq!(broken_at(&mut c, &swapped).await, (Entry, swapped_seqs[0], 0), "two entries swapped");

    let headless_seqs = seqs(headless.clone()).await;
    run("DELETE FROM ledger_heads WHERE household_id = $1", headless.clone()).await;
    assert_eq!(broken_at(&mut c, &headless).await, (HeadMissing, headless_seqs[2], 0), "the head removed");
}

/// Verify reads each page's chain heads and entries from one snapshot: while records are
/// appended, a chain whose head moved between two reads must not look broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_stays_intact_while_records_are_appended() {
    let mut c = county().await;
    let worker = c.account(Role::GridWorker, &c.grid_a.clone()).await;
    let auditor = c.account(Role::Auditor, &c.town.clone()).await;
    let mut households = Vec::new();
    for n in 0..4 {
        households.push(c.household(&c.grid_a.clone(), 60 + n).await);
    }
    let records = common::bonus_records("appended", &households);
    let total = records.len();
    let mut writer_client = c.points.clone();
    let writer = tokio::spawn(async move {
        for pair in records.chunks(2) {
            let request = BatchSubmitRecordsRequest { records: pair.to_vec() };
            let answer = writer_client.batch_submit_records(authed(&worker, request)).await.unwrap().into_inner();
            assert_eq!(answer.accepted, pair.len() as i32, "{answer:?}");
        }
    });
    let mut rounds = 0;
    while !writer.is_finished() {
        let verified =
            c.points.verify_ledger(authed(&auditor, VerifyLedgerRequest::default())).await.unwrap().into_inner();
        assert!(verified.intact, "round {rounds}: {verified:?}");
        rounds += 1;
    }
    writer.await.unwrap();
    let verified = c.points.verify_ledger(authed(&auditor, VerifyLedgerRequest::default())).await.unwrap().into_inner();
    assert_eq!((verified.intact, verified.entries_checked), (true, total as i64), "{verified:?}");
    assert!(rounds > 0, "verify ran while records were appended");
}

/// `jiaxin recompute-scores`, an operator's check that every maintained balance (what
/// leaderboards, tier counts and ScoreChanged events come from) still follows from the ledger.
/// On a system of the test's own: the command reads the data directory once it has stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recompute_scores_tells_an_operator_whether_every_balance_follows_from_the_ledger() {
    let mut c = county_on(TestSystem::start_private(false).await).await;
    let household = c.household(&c.grid_a.clone(), 7).await;
    let worker = c.account(Role::GridWorker, &c.grid_a.clone()).await;
    c.record_bonuses(&worker, &household, &[("k-1", 3), ("k-2", 4)]).await;
    assert_eq!(c.score(&household, None).await.0, 1007);
    c.sys.stop().await;
    let recompute = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_jiaxin"))
            .args(["recompute-scores", "--data-dir", c.sys.data_dir.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let agreeing = recompute();
    let stdout = String::from_utf8_lossy(&agreeing.stdout);
    assert!(agreeing.status.success(), "{stdout}{}", String::from_utf8_lossy(&agreeing.stderr));
    assert!(stdout.contains("from 2 ledger entries") && stdout.contains("全部与维护余额一致"), "{stdout}");

    // A balance edited behind points' back.
    let db = c.sys.database(ServiceName::Points).await;
    sqlx::query("UPDATE balances SET score = 1010 WHERE household_id = $1")
        .bind(&household)
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
    let disagreeing = recompute();
    let stdout = String::from_utf8_lossy(&disagreeing.stdout);
    assert!(!disagreeing.status.success(), "{stdout}");
    assert!(stdout.contains("1 户余额与台账不符") && stdout.contains(&household), "{stdout}");
}

/// `jiaxin recompute-scores` reads only: pointed at a data directory `serve` has not set up, it
/// refuses by name and creates nothing there.
#[tokio::test]
async fn recompute_scores_refuses_a_data_directory_serve_has_not_set_up() {
    let dir = tempfile::tempdir().unwrap();
    let recompute = |data_dir: &std::path::Path| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_jiaxin"))
            .args(["recompute-scores", "--data-dir", data_dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let missing = dir.path().join("nowhere");
    assert!(recompute(&missing).contains("no points database"));
    assert!(!missing.exists(), "the missing data directory was created");
    assert!(recompute(dir.path()).contains("no points database"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "something was written into the empty data directory"
    );

    // A file of that name that `serve` never migrated.
    std::fs::write(dir.path().join("points.db"), b"").unwrap();
    let stderr = recompute(dir.path());
    assert!(stderr.contains("no points database here"), "{stderr}");

    // One that an older binary migrated part of the way.
    let location = jiaxin_kit::storage::DatabaseLocation::sqlite_in(dir.path(), "points").unwrap();
    let db = jiaxin_kit::storage::Database::connect(&location).await.unwrap();
    for sql in [
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, success BOOLEAN)",
        "INSERT INTO _sqlx_migrations VALUES (1, 1)",
    ] {
        sqlx::query(sql).execute(db.pool()).await.unwrap();
    }
    db.close().await;
    let stderr = recompute(dir.path());
    assert!(stderr.contains("lacks this binary's migrations") && !stderr.contains("[1,"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_refused_by_field_and_write_nothing_and_batches_answer_per_item() {
    let mut c = county().await;
    let household = c.household(&c.grid_a.clone(), 5).await;
    let worker = c.account(Role::GridWorker, &c.grid_a.clone()).await;

    let mut bad = item("x-1", &household, "", 0);
    bad.occurred_at = None;
    let status = c.points.submit_record(authed(&worker, SubmitRecordRequest { record: Some(bad) })).await.unwrap_err();
    let mut fields: Vec<String> = field_violations(&status).into_iter().map(|v| v.field).collect();
    fields.sort();
    assert_eq!(fields, ["occurred_at", "rule_code"]);
    let out_of_range = c
        .points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("x-2", &household, "A04", 9)) }))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&out_of_range)[0].field, "points");
    let mut no_evidence = item("x-3", &household, "A04", 3);
    no_evidence.evidence.clear();
    let status =
        c.points.submit_record(authed(&worker, SubmitRecordRequest { record: Some(no_evidence) })).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "evidence");
    let mut future = item("x-4", &household, "A04", 3);
    future.occurred_at = Some(prost_types::Timestamp { seconds: now() + 2 * DAY, nanos: 0 });
    let status =
        c.points.submit_record(authed(&worker, SubmitRecordRequest { record: Some(future) })).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "occurred_at");
    let listed = c
        .points
        .list_records(authed(&c.admin, ListRecordsRequest { household_id: household.clone(), ..Default::default() }))
        .await
        .unwrap();
    assert!(listed.into_inner().records.is_empty(), "nothing was written");

    // A batch: each item answered on its own; the good ones count, the yearly cap holds.
    let batch =
        vec![item("y-1", &household, "A01", 0), item("y-2", &household, "NOPE", 0), item("y-3", &household, "A04", 4)];
    let response = c
        .points
        .batch_submit_records(authed(&worker, BatchSubmitRecordsRequest { records: batch }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((response.accepted, response.failed), (2, 1));
    let failed = &response.results[1];
    assert_eq!(
        (failed.index, failed.error_code.as_str(), failed.error_field.as_str()),
        (1, "InvalidArgument", "rule_code")
    );
    assert_eq!(c.score(&household, None).await.0, 1006);
    // A01 (the villagers' meeting, 2 points) is capped at 12 a year: six times, not seven.
    let meetings: Vec<RecordInput> = (0..6).map(|i| item(&format!("m-{i}"), &household, "A01", 0)).collect();
    let response = c
        .points
        .batch_submit_records(authed(&worker, BatchSubmitRecordsRequest { records: meetings }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((response.accepted, response.failed), (5, 1), "one A01 was already recorded this year");
    assert_eq!(response.results[5].error_field, "points");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_revised_by_version_local_to_their_village_and_retired_never_deleted() {
    let mut c = county().await;
    let household = c.household(&c.grid_a.clone(), 7).await;
    let worker = c.account(Role::GridWorker, &c.grid_a.clone()).await;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase();
    let county_id = common::own_scope(&mut c.identity, &c.admin).await;
    // Points learns of org nodes from identity's events: retry while it has not yet.
    async fn eventually<T>(mut call: impl AsyncFnMut() -> Result<T, tonic::Status>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match call().await {
                Ok(value) => return value,
                Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("{status:?}"),
            }
        }
    }

    // The county's own rule, then a new version of it: earlier records keep their version.
    let code_c = format!("C-{suffix}");
    let rule = common::river_cleaning_rule(&code_c, &county_id, 4);
    let created = eventually(async || {
        c.points
            .create_rule(authed(&c.admin, CreateRuleRequest { rule: Some(rule.clone()) }))
            .await
            .map(|r| r.into_inner().rule.unwrap())
    })
    .await;
    assert_eq!(created.version, 1);
    let first = c
        .points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("v-1", &household, &code_c, 4)) }))
        .await
        .unwrap();
    let first = first.into_inner().record.unwrap();
    let wider = common::river_cleaning_rule(&code_c, &county_id, 8);
    let denied = c.points.revise_rule(authed(&worker, ReviseRuleRequest { rule: Some(wider.clone()) })).await;
    assert_eq!(code(denied), Code::PermissionDenied);
    let revised = c
        .points
        .revise_rule(authed(&c.admin, ReviseRuleRequest { rule: Some(wider) }))
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!((revised.version, revised.points_max), (2, 8));
    let second = c
        .points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("v-2", &household, &code_c, 8)) }))
        .await
        .unwrap();
    assert_eq!(second.into_inner().record.unwrap().rule_version, 2);
    let again = c.points.get_record(authed(&c.admin, GetRecordRequest { id: first.id.clone() })).await.unwrap();
    assert_eq!(again.into_inner().record.unwrap().rule_version, 1);

    // A village adds a local rule; a household of another village cannot be recorded under it.
    let cadre = c.account(Role::VillageCadre, &c.village.clone()).await;
    let code_v = format!("V-{suffix}");
    let local = common::river_cleaning_rule(&code_v, &c.village, 2);
    eventually(async || c.points.create_rule(authed(&cadre, CreateRuleRequest { rule: Some(local.clone()) })).await)
        .await;
    c.points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("l-1", &household, &code_v, 0)) }))
        .await
        .unwrap();
    let other_village =
        common::create_node(&mut c.identity, &c.admin, &c.town.clone(), OrgNodeKind::Village, "马坝村", "").await;
    let other_grid =
        common::create_node(&mut c.identity, &c.admin, &other_village, OrgNodeKind::Grid, "马坝一网格", "").await;
    common::publish_template(&mut c.pledges, &c.admin, &other_village, false).await;
    let outsider = c.household(&other_grid, 8).await;
    let other_worker = c.account(Role::GridWorker, &other_grid).await;
    let status = c
        .points
        .submit_record(authed(&other_worker, SubmitRecordRequest { record: Some(item("l-3", &outsider, &code_v, 0)) }))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "rule_code");
    // Nor may a village cadre make rules for the whole deployment.
    let status = c
        .points
        .create_rule(authed(
            &cadre,
            CreateRuleRequest { rule: Some(common::river_cleaning_rule(&format!("W-{suffix}"), "", 2)) },
        ))
        .await;
    assert_eq!(code(status), Code::PermissionDenied);

    // A rule that breaks the catalogue's invariants is refused by field.
    let mut no_class = common::river_cleaning_rule(&format!("D-{suffix}"), &c.village, 2);
    no_class.kind = RuleKind::Deduction as i32;
    let status = c.points.create_rule(authed(&cadre, CreateRuleRequest { rule: Some(no_class) })).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "rule.severity");

    // Retired, not deleted: no new records, still listed on request, old records still count.
    let retired = c
        .points
        .retire_rule(authed(&c.admin, RetireRuleRequest { code: code_c.clone() }))
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert!(retired.retired);
    let status = c
        .points
        .submit_record(authed(&worker, SubmitRecordRequest { record: Some(item("v-3", &household, &code_c, 4)) }))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "rule_code");
    let in_force = c.points.list_rules(authed(&c.admin, ListRulesRequest::default())).await.unwrap().into_inner().rules;
    assert!(!in_force.iter().any(|r| r.code == code_c));
    let all = c
        .points
        .list_rules(authed(&c.admin, ListRulesRequest { category: 0, include_retired: true }))
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert!(all.iter().any(|r| r.code == code_c && r.retired));
    assert_eq!(c.score(&household, None).await.0, 1000 + 4 + 8 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn villages_see_leaderboards_and_totals_and_members_their_own_scores() {
    use jiaxin_proto::points::{GetTotalsRequest, ListLeaderboardRequest};
    let mut c = county().await;
    let first = c.household(&c.grid_a.clone(), 11).await;
    let second = c.household(&c.grid_b.clone(), 12).await;
    let worker_a = c.account(Role::GridWorker, &c.grid_a.clone()).await;
    let worker_b = c.account(Role::GridWorker, &c.grid_b.clone()).await;
    let head = c
        .identity
        .get_household(authed(&c.admin, jiaxin_proto::identity::GetHouseholdRequest { id: second.clone() }))
        .await
        .unwrap()
        .into_inner()
        .household
        .unwrap()
        .head_resident_id;
    c.points
        .submit_record(authed(&worker_a, SubmitRecordRequest { record: Some(item("t-1", &first, "A04", 5)) }))
        .await
        .unwrap();
    let mut by_head = item("t-2", &second, "A04", 3);
    by_head.resident_id = head.clone();
    c.points.submit_record(authed(&worker_b, SubmitRecordRequest { record: Some(by_head) })).await.unwrap();
    c.points
        .submit_record(authed(&worker_b, SubmitRecordRequest { record: Some(item("t-3", &second, "D01", 0)) }))
        .await
        .unwrap();

    // The village's ranking, from maintained balances.
    let deadline = Instant::now() + Duration::from_secs(60);
    let board = loop {
        let request = authed(&c.admin, ListLeaderboardRequest { org_node_id: c.village.clone(), limit: 10 });
        match c.points.list_leaderboard(request).await {
            Ok(response) => break response.into_inner().entries,
            Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(status) => panic!("{status:?}"),
        }
    };
    let ranked: Vec<(&str, i64, i32)> = board.iter().map(|e| (e.household_id.as_str(), e.score, e.rank)).collect();
    assert_eq!(ranked, [(first.as_str(), 1005, 1), (second.as_str(), 1004, 2)]);
    // A grid worker sees their own grid's board only.
    let own = c
        .points
        .list_leaderboard(authed(&worker_a, ListLeaderboardRequest { org_node_id: c.grid_a.clone(), limit: 0 }))
        .await
        .unwrap();
    assert_eq!(own.into_inner().entries.len(), 1);
    let status = c
        .points
        .list_leaderboard(authed(&worker_a, ListLeaderboardRequest { org_node_id: c.grid_b.clone(), limit: 0 }))
        .await;
    assert_eq!(code(status), Code::NotFound);
    // No ranking of a whole town (or county): that would read every household in it.
    let status = c
        .points
        .list_leaderboard(authed(&c.admin, ListLeaderboardRequest { org_node_id: c.town.clone(), limit: 10 }))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "org_node_id");

    // Totals by category and month, for any node (kept per grid, summed over the subtree).
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let totals = c
        .points
        .get_totals(authed(
            &c.admin,
            GetTotalsRequest { org_node_id: c.town.clone(), from_month: month.clone(), to_month: month.clone() },
        ))
        .await
        .unwrap()
        .into_inner()
        .totals;
    let summary: Vec<(i32, i64, i64, i64)> =
        totals.iter().map(|t| (t.category, t.bonus_points, t.deduction_points, t.entries)).collect();
    assert_eq!(summary, [(Category::VillageAffairs as i32, 8, 0, 2), (Category::Environment as i32, 1, 0, 1)]);
    let status = c
        .points
        .get_totals(authed(
            &c.admin,
            GetTotalsRequest { org_node_id: c.town.clone(), from_month: "2026-13".into(), to_month: String::new() },
        ))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "from_month");

    // A member's own score: the entries recorded for them.
    let request =
        authed(&c.admin, GetScoreRequest { household_id: second.clone(), resident_id: head, ..Default::default() });
    let member = c.points.get_score(request).await.unwrap().into_inner().score.unwrap();
    assert_eq!(member.score, 1003);
    assert_eq!(c.score(&second, None).await.0, 1004);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_chains_a_households_entries_counts_its_caps_and_knows_its_own_keys() {
    let mut c = county().await;
    let household = c.household(&c.grid_a.clone(), 21).await;
    let other = c.household(&c.grid_b.clone(), 22).await;
    let worker = c.account(Role::GridWorker, &c.village.clone()).await;
    // A01 is worth 2 points, capped at 12 a year: the seventh in one batch is over the cap.
    let mut records: Vec<RecordInput> = (0..7).map(|n| item(&format!("cap-{n}"), &household, "A01", 0)).collect();
    records.push(item("cap-0", &household, "A01", 0)); // a retry inside the batch: the same record
    let mut reused = item("cap-1", &household, "A01", 0);
    reused.place = "别处".into(); // the same key, other content
    records.push(reused);
    records.push(item("other-1", &other, "A04", 5));
    let response = c
        .points
        .batch_submit_records(authed(&worker, BatchSubmitRecordsRequest { records }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((response.accepted, response.failed), (8, 2), "{:?}", response.results);
    assert_eq!(response.results[6].error_field, "points", "over the cap by the batch's own items");
    assert_eq!(response.results[7].record.as_ref().unwrap().id, response.results[0].record.as_ref().unwrap().id);
    assert_eq!(response.results[8].error_field, "request_id");

    // Six entries chained in batch order, the balance maintained, the chain intact.
    assert_eq!(c.score(&household, None).await.0, 1012);
    assert_eq!(c.score(&other, None).await.0, 1005);
    for h in [&household, &other] {
        let verify = c.points.verify_ledger(authed(&c.admin, VerifyLedgerRequest { household_id: h.clone() }));
        let verify = verify.await.unwrap().into_inner();
        assert!(verify.intact, "{verify:?}");
        assert_eq!(verify.entries_checked, if h == &household { 6 } else { 1 });
    }
    // Sent again as a whole, nothing new is written.
    let again: Vec<RecordInput> = (0..6).map(|n| item(&format!("cap-{n}"), &household, "A01", 0)).collect();
    let again = c.points.batch_submit_records(authed(&worker, BatchSubmitRecordsRequest { records: again })).await;
    assert_eq!(again.unwrap().into_inner().accepted, 6);
    assert_eq!(c.score(&household, None).await.0, 1012);
}

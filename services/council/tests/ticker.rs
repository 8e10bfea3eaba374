//! Time moves the council too: an open task past its deadline is reminded of once
//! (`ReviewOverdue`), and an approved record's disclosure period is closed once
//! (`DisclosureClosed`). A test with an injected clock (the periods are days long). Runs on
//! SQLite, or on PostgreSQL when `JIAXIN_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::sync::Arc;

use jiaxin_council::CouncilService;
use jiaxin_kit::{
    Secret,
    auth::{Caller, Claims, ISSUER, Role},
    events,
    storage::{Database, DatabaseLocation},
    time::now_micros,
};
use jiaxin_proto::{
    council::{
        ApplyRepairRequest, CastVoteRequest, Choice, DisclosureClosed, FileObjectionRequest, Member, MemberKind,
        ObjectionEscalated, ObjectionFiled, ObjectionResolved, RepairApproved, ReviewOverdue, SaveCouncilRequest,
        SeatMemberRequest, council_service_server::CouncilService as _,
    },
    identity::{OrgNode, OrgNodeCreated, OrgNodeKind},
    pledges::PledgeSigned,
    points::{Record, RecordSubmitted, Severity},
};
use sqlx::Row;

const DAY: i64 = 24 * 3600 * 1_000_000;

async fn database(dir: &std::path::Path) -> Database {
    let location = match std::env::var("JIAXIN_TEST_DATABASE_URL") {
        Ok(url) => {
            DatabaseLocation::shared(Secret::new(url), &format!("t{}_", uuid::Uuid::new_v4().simple()), "council")
        }
        Err(_) => DatabaseLocation::sqlite_in(dir, "council").unwrap(),
    };
    let db = Database::connect(&location).await.unwrap();
    db.migrate("council", &jiaxin_council::MIGRATIONS).await.unwrap();
    db
}

/// How many events of type `M` the council's outbox holds.
async fn count<M: prost::Name + Default>(db: &Database) -> usize {
    let rows = sqlx::query("SELECT envelope FROM kit_outbox").fetch_all(db.pool()).await.unwrap();
    rows.iter()
        .filter(|row| {
            let envelope = events::decode(&row.try_get::<Vec<u8>, _>("envelope").unwrap()).unwrap();
            events::payload::<M>(&envelope).unwrap().is_some()
        })
        .count()
}

fn request<T>(message: T, roles: Vec<Role>, account: &str, scope: &str) -> tonic::Request<T> {
    let claims = Claims {
        iss: ISSUER.into(),
        sub: account.into(),
        roles,
        org: scope.into(),
        rid: None,
        iat: 0,
        exp: i64::MAX,
        jti: "t".into(),
    };
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(Caller(Arc::new(claims)));
    request
}

#[tokio::test]
async fn overdue_tasks_are_reminded_of_and_disclosures_closed_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let service = CouncilService::start(db.clone());
    let (_, consumer) = service.consumer();
    let (county, village, grid) = ("county-1", "village-1", "grid-1");
    let node = OrgNode {
        id: village.into(),
        kind: OrgNodeKind::Village as i32,
        path: vec![county.into(), village.into()],
        ..Default::default()
    };
    let created = events::envelope("identity", village, &OrgNodeCreated { org_node: Some(node) }).unwrap();
    consumer.deliver(&events::topic("identity"), &created).await.unwrap();
    let api = service.api();
    let council = SaveCouncilRequest {
        org_node_id: village.into(),
        name: "议事会".into(),
        quorum: 1,
        majority_permille: 501,
        review_days: 3,
        ..Default::default()
    };
    api.save_council(request(council, vec![Role::CountyAdmin], "admin", county)).await.unwrap();
    let member = Member {
        account_id: "member-1".into(),
        display_name: "成员".into(),
        kind: MemberKind::LocalWorthy as i32,
        term_from: "2000-01-01".into(),
        term_to: "2999-12-31".into(),
    };
    let seat = SeatMemberRequest { org_node_id: village.into(), member: Some(member) };
    api.seat_member(request(seat, vec![Role::CountyAdmin], "admin", county)).await.unwrap();

    // Points asks for two reviews: a deduction with 7 days' disclosure, and one left waiting.
    for (n, record_id) in ["record-1", "record-2"].iter().enumerate() {
        let record = Record {
            id: (*record_id).into(),
            household_id: format!("household-{n}"),
            rule_code: "D06".into(),
            points: -3,
            recorded_by: "worker".into(),
            ..Default::default()
        };
        let submitted = RecordSubmitted {
            record: Some(record),
            needs_review: true,
            org_path: vec![county.into(), village.into(), grid.into()],
            points_min: 2,
            points_max: 5,
            disclosure_days: 7,
            severity: Severity::Minor as i32,
            ..Default::default()
        };
        let envelope = events::envelope("points", &format!("household-{n}"), &submitted).unwrap();
        consumer.deliver(&events::topic("points"), &envelope).await.unwrap();
        // A redelivery opens nothing twice.
        consumer.deliver(&events::topic("points"), &envelope).await.unwrap();
    }
    let tasks: Vec<String> =
        sqlx::query_scalar("SELECT id FROM tasks ORDER BY record_id").fetch_all(db.pool()).await.unwrap();
    assert_eq!(tasks.len(), 2);
    let vote = CastVoteRequest {
        task_id: tasks[0].clone(),
        choice: Choice::Approve as i32,
        reason: "属实".into(),
        ..Default::default()
    };
    api.cast_vote(request(vote, vec![Role::CouncilMember], "member-1", village)).await.unwrap();

    let now = now_micros();
    assert_eq!(service.tick_at(now).await.unwrap(), 0, "nothing is due yet");
    assert_eq!(service.tick_at(now + 4 * DAY).await.unwrap(), 1, "the open task is overdue");
    assert_eq!(service.tick_at(now + 5 * DAY).await.unwrap(), 0, "reminded once");
    assert_eq!(count::<ReviewOverdue>(&db).await, 1);
    assert_eq!(service.tick_at(now + 8 * DAY).await.unwrap(), 1, "the disclosure period ended");
    assert_eq!(service.tick_at(now + 9 * DAY).await.unwrap(), 0, "closed once");
    assert_eq!(count::<DisclosureClosed>(&db).await, 1);
}

#[tokio::test]
async fn an_unanswered_objection_escalates_to_the_town_and_a_repair_waits_for_its_time_and_a_fresh_pledge() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let service = CouncilService::start(db.clone());
    let (_, consumer) = service.consumer();
    let (county, town, village, grid, household) = ("county-1", "town-1", "village-1", "grid-1", "household-1");
    for (id, kind, path) in
        [(town, OrgNodeKind::Town, vec![county, town]), (village, OrgNodeKind::Village, vec![county, town, village])]
    {
        let node = OrgNode {
            id: id.into(),
            kind: kind as i32,
            path: path.into_iter().map(str::to_owned).collect(),
            ..Default::default()
        };
        let created = events::envelope("identity", id, &OrgNodeCreated { org_node: Some(node) }).unwrap();
        consumer.deliver(&events::topic("identity"), &created).await.unwrap();
    }
    let api = service.api();
    let council = SaveCouncilRequest {
        org_node_id: village.into(),
        name: "议事会".into(),
        quorum: 1,
        majority_permille: 501,
        review_days: 3,
        ..Default::default()
    };
    let saved = api.save_council(request(council, vec![Role::CountyAdmin], "admin", county)).await.unwrap();
    assert_eq!(saved.into_inner().council.unwrap().repair_wait_days_minor, 30, "the default wait");
    let member = Member {
        account_id: "member-1".into(),
        display_name: "成员".into(),
        kind: MemberKind::VillagerRepresentative as i32,
        term_from: "2000-01-01".into(),
        term_to: "2999-12-31".into(),
    };
    let seat = SeatMemberRequest { org_node_id: village.into(), member: Some(member) };
    api.seat_member(request(seat, vec![Role::CountyAdmin], "admin", county)).await.unwrap();
    let record = Record {
        id: "record-1".into(),
        household_id: household.into(),
        rule_code: "D06".into(),
        points: -3,
        recorded_by: "worker".into(),
        ..Default::default()
    };
    let submitted = RecordSubmitted {
        record: Some(record),
        needs_review: true,
        org_path: vec![county.into(), town.into(), village.into(), grid.into()],
        points_min: 2,
        points_max: 5,
        disclosure_days: 7,
        severity: Severity::Minor as i32,
        ..Default::default()
    };
    consumer
        .deliver(&events::topic("points"), &events::envelope("points", household, &submitted).unwrap())
        .await
        .unwrap();
    let review: String = sqlx::query_scalar("SELECT id FROM tasks").fetch_one(db.pool()).await.unwrap();
    let vote = |task: &str, choice: Choice| CastVoteRequest {
        task_id: task.into(),
        choice: choice as i32,
        reason: "经核实".into(),
        ..Default::default()
    };
    api.cast_vote(request(vote(&review, Choice::Approve), vec![Role::CouncilMember], "member-1", village))
        .await
        .unwrap();
    let now = now_micros();

    // A cadre enters the household's objection; nobody answers it for 20 days.
    let objection = FileObjectionRequest { record_id: "record-1".into(), reason: "当天不在家".into() };
    let filed = api.file_objection(request(objection, vec![Role::VillageCadre], "cadre", village)).await.unwrap();
    let filed = filed.into_inner().objection.unwrap();
    assert_eq!(count::<ObjectionFiled>(&db).await, 1);
    assert_eq!(service.tick_at(now + 19 * DAY).await.unwrap(), 1, "only the review-task reminder");
    assert_eq!(service.tick_at(now + 21 * DAY).await.unwrap(), 2, "escalated, and its disclosure closed");
    assert_eq!(service.tick_at(now + 22 * DAY).await.unwrap(), 0, "escalated once");
    let rows = sqlx::query("SELECT envelope FROM kit_outbox").fetch_all(db.pool()).await.unwrap();
    let escalated: Vec<ObjectionEscalated> = rows
        .iter()
        .filter_map(|row| {
            let envelope = events::decode(&row.try_get::<Vec<u8>, _>("envelope").unwrap()).unwrap();
            events::payload::<ObjectionEscalated>(&envelope).unwrap()
        })
        .collect();
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0].town_id, town);
    // The council upholds the record.
    api.cast_vote(request(vote(&filed.task_id, Choice::Approve), vec![Role::CouncilMember], "member-1", village))
        .await
        .unwrap();
    assert_eq!(count::<ObjectionResolved>(&db).await, 1);

    // Repair: not before 30 days after the deduction took effect, and not without a fresh pledge.
    let cadre = || {
        Caller(Arc::new(Claims {
            iss: ISSUER.into(),
            sub: "cadre".into(),
            roles: vec![Role::VillageCadre],
            org: village.into(),
            rid: None,
            iat: 0,
            exp: i64::MAX,
            jti: "t".into(),
        }))
    };
    let application = ApplyRepairRequest {
        record_id: "record-1".into(),
        statement: "已清理并参加环境整治志愿服务".into(),
        evidence: vec!["photo:cleanup.jpg".into()],
    };
    let early = service.apply_repair_at(&cadre(), application.clone(), now + 20 * DAY).await.unwrap_err();
    assert!(matches!(early, jiaxin_council::CouncilError::Precondition(ref m) if m.contains("30")), "{early:?}");
    let unpledged = service.apply_repair_at(&cadre(), application.clone(), now + 40 * DAY).await.unwrap_err();
    assert!(
        matches!(unpledged, jiaxin_council::CouncilError::Precondition(ref m) if m.contains("承诺")),
        "{unpledged:?}"
    );
    let pledge = PledgeSigned {
        household_id: household.into(),
        signed_at: Some(jiaxin_kit::time::to_timestamp(now + 30 * DAY)),
        ..Default::default()
    };
    consumer
        .deliver(&events::topic("pledges"), &events::envelope("pledges", household, &pledge).unwrap())
        .await
        .unwrap();
    let repair = service.apply_repair_at(&cadre(), application, now + 40 * DAY).await.unwrap();
    api.cast_vote(request(vote(&repair.task_id, Choice::Approve), vec![Role::CouncilMember], "member-1", village))
        .await
        .unwrap();
    assert_eq!(count::<RepairApproved>(&db).await, 1);
}

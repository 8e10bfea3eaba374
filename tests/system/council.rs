//! End-to-end tests of the council service, in both modes: a deduction goes record → review →
//! disclosure only when the council decides; quorum, majority and recusal; scope; minutes,
//! disclosure list and the audit log.

use std::time::{Duration, Instant};

use crate::common::{self, TestSystem, authed, code, id_number, paper_pledge};
use jiaxin::system::ServiceName;
use jiaxin_kit::error::field_violations;
use jiaxin_proto::{
    council::{
        ApplyRepairRequest, CaseStatus, CastVoteRequest, Choice, FileObjectionRequest, GetTaskRequest,
        ListDisclosuresRequest, ListMinutesRequest, ListObjectionsRequest, ListTasksRequest, Member, MemberKind,
        ObjectionOutcome, ReviewOutcome, SaveCouncilRequest, SeatMemberRequest, Task, TaskStatus,
        VerifyAuditLogRequest, council_service_client::CouncilServiceClient,
    },
    identity::{
        AddMemberRequest, NewResident, OrgNodeKind, RegisterHouseholdRequest, Relation, Role,
        identity_service_client::IdentityServiceClient,
    },
    pledges::pledges_service_client::PledgesServiceClient,
    points::{
        GetRecordRequest, GetScoreRequest, RecordInput, RecordStatus, SubmitRecordRequest,
        points_service_client::PointsServiceClient,
    },
};
use tonic::{Code, transport::Channel};

struct Village {
    sys: TestSystem,
    admin: String,
    identity: IdentityServiceClient<Channel>,
    points: PointsServiceClient<Channel>,
    council: CouncilServiceClient<Channel>,
    village: String,
    other_village: String,
    household: String,
    head: String,
    /// A member of the household who sits on the council (must recuse).
    relative: String,
}

async fn village() -> Village {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    let mut identity = sys.identity().await;
    let county = common::own_scope(&mut identity, &admin).await;
    let town = common::create_node(&mut identity, &admin, &county, OrgNodeKind::Town, "官滩镇", "").await;
    let village = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "新华村", "").await;
    let grid = common::create_node(&mut identity, &admin, &village, OrgNodeKind::Grid, "第一网格", "").await;
    let other_village = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "金源村", "").await;
    let mut pledges = PledgesServiceClient::new(sys.channel_to(ServiceName::Pledges).await);
    common::publish_template(&mut pledges, &admin, &village, false).await;

    let head = NewResident { name: "户主".into(), id_number: id_number("320830", "19680101", 1), phone: "".into() };
    let request = RegisterHouseholdRequest {
        grid_id: grid.clone(),
        address: "新华村三组12号".into(),
        head: Some(head),
        ..Default::default()
    };
    let household = identity.register_household(authed(&admin, request)).await.unwrap().into_inner().household.unwrap();
    let son = NewResident { name: "儿子".into(), id_number: id_number("320830", "19920202", 2), phone: "".into() };
    let add =
        AddMemberRequest { household_id: household.id.clone(), resident: Some(son), relation: Relation::Child as i32 };
    let relative = identity.add_member(authed(&admin, add)).await.unwrap().into_inner().resident.unwrap().id;
    common::await_pledges_household(&mut pledges, &admin, &household.id).await;
    pledges.sign_pledge(authed(&admin, paper_pledge(&household.id, &household.head_resident_id, 1))).await.unwrap();

    let mut points = PointsServiceClient::new(sys.channel_to(ServiceName::Points).await);
    common::await_points_pledge(&mut points, &admin, &household.id).await;
    let council = CouncilServiceClient::new(sys.channel_to(ServiceName::Council).await);
    let head = household.head_resident_id.clone();
    Village { sys, admin, identity, points, council, village, other_village, household: household.id, head, relative }
}

impl Village {
    /// Sets up the village's council (quorum 3, more than half) once the council knows the village.
    async fn council(&mut self, node: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let request = SaveCouncilRequest {
                org_node_id: node.into(),
                name: "信用议事会".into(),
                quorum: 3,
                majority_permille: 501,
                review_days: 7,
                ..Default::default()
            };
            match self.council.save_council(authed(&self.admin, request)).await {
                Ok(_) => return,
                Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("could not set up the council: {status:?}"),
            }
        }
    }

    /// A council member seated for this year on `node`'s council; returns (account id, token).
    async fn member(&mut self, node: &str, roles: &[Role], resident: &str) -> (String, String) {
        let (id, token) = common::account(&self.sys, &mut self.identity, &self.admin, roles, node, resident).await;
        let year = chrono::Utc::now().format("%Y").to_string();
        let member = Member {
            account_id: id.clone(),
            display_name: "成员".into(),
            kind: MemberKind::LocalWorthy as i32,
            term_from: format!("{year}-01-01"),
            term_to: format!("{year}-12-31"),
        };
        let request = SeatMemberRequest { org_node_id: node.into(), member: Some(member) };
        self.council.seat_member(authed(&self.admin, request)).await.unwrap();
        (id, token)
    }

    async fn record(&mut self, token: &str, key: &str, rule: &str, points: i64) -> String {
        let input = RecordInput {
            request_id: key.into(),
            household_id: self.household.clone(),
            rule_code: rule.into(),
            points,
            occurred_at: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 }),
            evidence: vec!["photo:scene.jpg".into()],
            place: "新华村村道".into(),
            ..Default::default()
        };
        let response = self.points.submit_record(authed(token, SubmitRecordRequest { record: Some(input) })).await;
        response.unwrap().into_inner().record.unwrap().id
    }

    /// Waits until the council has opened the record's task.
    async fn task(&mut self, record: &str) -> Task {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let request = ListTasksRequest { org_node_id: self.village.clone(), ..Default::default() };
            let tasks = self.council.list_tasks(authed(&self.admin, request)).await.unwrap().into_inner().tasks;
            if let Some(task) = tasks.into_iter().find(|t| t.record_id == record) {
                return task;
            }
            assert!(Instant::now() < deadline, "the council never opened a task for {record}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn vote(&mut self, token: &str, task: &str, choice: Choice, points: i64) -> Result<Task, tonic::Status> {
        let request = CastVoteRequest {
            task_id: task.into(),
            choice: choice as i32,
            amended_points: points,
            reason: "经核实 / verified".into(),
        };
        self.council.cast_vote(authed(token, request)).await.map(|r| r.into_inner().task.unwrap())
    }

    async fn record_status(&mut self, id: &str) -> i32 {
        let record = self.points.get_record(authed(&self.admin, GetRecordRequest { id: id.into() })).await.unwrap();
        record.into_inner().record.unwrap().status
    }

    async fn wait_status(&mut self, id: &str, status: RecordStatus) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.record_status(id).await != status as i32 {
            assert!(Instant::now() < deadline, "record {id} never reached {status:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deduction_is_disclosed_only_when_the_council_decides_by_quorum_and_majority() {
    let mut v = village().await;
    let node = v.village.clone();
    v.council(&node).await;
    // The recorder is a grid worker who also sits on the council; a son of the household sits too.
    let (_, recorder) = v.member(&node, &[Role::CouncilMember, Role::GridWorker], "").await;
    let relative = v.relative.clone();
    let (_, son) = v.member(&node, &[Role::CouncilMember], &relative).await;
    let (_, first) = v.member(&node, &[Role::CouncilMember], "").await;
    let (_, second) = v.member(&node, &[Role::CouncilMember], "").await;
    let (_, third) = v.member(&node, &[Role::CouncilMember], "").await;

    // D06 littering: a deduction, so it waits for the council.
    let record = v.record(&recorder, "d06-1", "D06", 4).await;
    assert_eq!(v.record_status(&record).await, RecordStatus::PendingReview as i32);
    let task = v.task(&record).await;
    assert_eq!((task.points_min, task.points_max), (2, 5));
    assert_eq!(task.record.as_ref().unwrap().evidence, ["photo:scene.jpg"]);

    // Recused: the recorder, and the household's own son.
    let refused = v.vote(&recorder, &task.id, Choice::Approve, 0).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("回避"), "{refused:?}");
    let refused = v.vote(&son, &task.id, Choice::Reject, 0).await.unwrap_err();
    assert!(refused.message().contains("回避"), "{refused:?}");
    // Amendments stay in the rule's range; a vote needs a choice and a reason.
    let status = v.vote(&first, &task.id, Choice::Amend, 9).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "amended_points");
    let status =
        v.council.cast_vote(authed(&first, CastVoteRequest { task_id: task.id.clone(), ..Default::default() })).await;
    let mut fields: Vec<String> = field_violations(&status.unwrap_err()).into_iter().map(|f| f.field).collect();
    fields.sort();
    assert_eq!(fields, ["choice", "reason"]);

    // Two votes are below the quorum of three: no decision, the record still waits.
    v.vote(&first, &task.id, Choice::Approve, 0).await.unwrap();
    let open = v.vote(&second, &task.id, Choice::Approve, 0).await.unwrap();
    assert_eq!(open.status, TaskStatus::Open as i32);
    assert!(open.decision.is_none());
    assert_eq!(code(v.vote(&second, &task.id, Choice::Reject, 0).await), Code::FailedPrecondition, "one vote each");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(v.record_status(&record).await, RecordStatus::PendingReview as i32);

    // The third vote makes quorum and majority: approved, on the disclosure list, not yet counting.
    let decided = v.vote(&third, &task.id, Choice::Approve, 0).await.unwrap();
    assert_eq!(decided.status, TaskStatus::Decided as i32);
    assert_eq!(decided.decision.as_ref().unwrap().outcome, ReviewOutcome::Approved as i32);
    v.wait_status(&record, RecordStatus::InDisclosure).await;
    let score = v
        .points
        .get_score(authed(&v.admin, GetScoreRequest { household_id: v.household.clone(), ..Default::default() }));
    assert_eq!(score.await.unwrap().into_inner().score.unwrap().score, 1000, "nothing counts during disclosure");
    let effective_from = v.points.get_record(authed(&v.admin, GetRecordRequest { id: record.clone() })).await.unwrap();
    let effective_from = effective_from.into_inner().record.unwrap().effective_from.unwrap().seconds;
    let until = decided.decision.as_ref().unwrap().disclosed_until.unwrap().seconds;
    assert!((effective_from - until).abs() < 120, "points counts it when the disclosure ends");
    assert_eq!(code(v.vote(&third, &task.id, Choice::Reject, 0).await), Code::FailedPrecondition, "decided");

    // Published: the disclosure list and minutes show the household masked, never its id.
    let list = v.council.list_disclosures(authed(&v.admin, ListDisclosuresRequest { org_node_id: node.clone() })).await;
    let list = list.unwrap().into_inner().disclosures;
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].household.as_str(), list[0].points), ("新华******", -4));
    let minutes =
        v.council.list_minutes(authed(&first, ListMinutesRequest { org_node_id: node.clone(), ..Default::default() }));
    let minutes = minutes.await.unwrap().into_inner().entries;
    assert_eq!(minutes.len(), 1);
    assert_eq!(minutes[0].votes.len(), 3);
    assert!(!format!("{minutes:?}").contains(&v.household), "minutes never name the household");

    // The household objects: the record is frozen and stops counting (as of the day it would
    // have), until the council re-reviews it and upholds it.
    let future = Some(prost_types::Timestamp { seconds: until + 86_400, nanos: 0 });
    let score_then = |points: &mut PointsServiceClient<Channel>, admin: String, household: String| {
        let request = GetScoreRequest { household_id: household, as_of: future, ..Default::default() };
        let mut points = points.clone();
        async move { points.get_score(authed(&admin, request)).await.unwrap().into_inner().score.unwrap().score }
    };
    assert_eq!(score_then(&mut v.points, v.admin.clone(), v.household.clone()).await, 996);
    let head = v.head.clone();
    let (_, resident) = common::account(&v.sys, &mut v.identity, &v.admin, &[Role::Resident], &node, &head).await;
    let objection = FileObjectionRequest {
        record_id: record.clone(),
        reason: "当天户主不在村 / not at home that day".into(),
    };
    let objection =
        v.council.file_objection(authed(&resident, objection)).await.unwrap().into_inner().objection.unwrap();
    v.wait_status(&record, RecordStatus::Frozen).await;
    assert_eq!(score_then(&mut v.points, v.admin.clone(), v.household.clone()).await, 1000);
    let again = FileObjectionRequest { record_id: record.clone(), reason: "再次".into() };
    assert_eq!(code(v.council.file_objection(authed(&resident, again)).await), Code::FailedPrecondition);
    // Too early for a repair (it has not even taken effect).
    let repair =
        ApplyRepairRequest {
            record_id: record.clone(), statement: "已改正".into(), evidence: vec!["photo:1".into()]
        };
    assert_eq!(code(v.council.apply_repair(authed(&resident, repair)).await), Code::FailedPrecondition);
    for token in [&first, &second, &third] {
        v.vote(token, &objection.task_id, Choice::Approve, 0).await.unwrap();
    }
    v.wait_status(&record, RecordStatus::InDisclosure).await;
    assert_eq!(score_then(&mut v.points, v.admin.clone(), v.household.clone()).await, 996);
    let objections = ListObjectionsRequest { org_node_id: node.clone(), status: CaseStatus::Resolved as i32 };
    let objections = v.council.list_objections(authed(&v.admin, objections)).await.unwrap().into_inner().objections;
    assert_eq!(objections[0].outcome, ObjectionOutcome::Upheld as i32);

    // A second deduction the council rejects never counts.
    let record = v.record(&recorder, "d06-2", "D06", 2).await;
    let task = v.task(&record).await;
    for token in [&first, &second, &third] {
        v.vote(token, &task.id, Choice::Reject, 0).await.unwrap();
    }
    v.wait_status(&record, RecordStatus::Rejected).await;

    // Every vote and decision is in the audit log, and its chain holds.
    let audit = v.council.verify_audit_log(authed(&v.admin, VerifyAuditLogRequest {})).await.unwrap().into_inner();
    assert!(audit.intact);
    assert!(audit.entries_checked >= 8, "{audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_village_sees_and_decides_nothing_here() {
    let mut v = village().await;
    let (here, there) = (v.village.clone(), v.other_village.clone());
    v.council(&here).await;
    v.council(&there).await;
    let (_, recorder) = v.member(&here, &[Role::GridWorker, Role::CouncilMember], "").await;
    let (_, outsider) = v.member(&there, &[Role::CouncilMember], "").await;
    let (_, unseated) = common::account(&v.sys, &mut v.identity, &v.admin, &[Role::CouncilMember], &here, "").await;
    let record = v.record(&recorder, "d06-1", "D06", 3).await;
    let task = v.task(&record).await;

    assert_eq!(
        code(v.council.get_task(authed(&outsider, GetTaskRequest { id: task.id.clone() })).await),
        Code::NotFound
    );
    assert_eq!(code(v.vote(&outsider, &task.id, Choice::Approve, 0).await), Code::NotFound);
    let list = ListTasksRequest { org_node_id: here.clone(), ..Default::default() };
    assert_eq!(code(v.council.list_tasks(authed(&outsider, list)).await), Code::NotFound);
    // In scope but not seated on the council: refused.
    let refused = v.vote(&unseated, &task.id, Choice::Approve, 0).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // A grid worker without a seat cannot vote at all.
    let (_, worker) = common::account(&v.sys, &mut v.identity, &v.admin, &[Role::GridWorker], &here, "").await;
    assert_eq!(code(v.vote(&worker, &task.id, Choice::Approve, 0).await), Code::PermissionDenied);
    let task = v.council.get_task(authed(&v.admin, GetTaskRequest { id: task.id.clone() })).await.unwrap().into_inner();
    assert!(task.task.unwrap().votes.is_empty());
}

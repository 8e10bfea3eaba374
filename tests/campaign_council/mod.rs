//! The council's side of the crash campaign: one deduction per household goes into the stream,
//! and a three-member credit council (信用议事会) reviews them while the faults fall — some
//! rejected, some approved, some approved and then objected to (异议) by the village, the
//! objection upheld or the record reversed. Every call is retried until it is answered, as the
//! council's own clients would; a vote or an objection whose answer was lost is found standing
//! on the retry, never cast or filed twice. The campaign then checks, in points and in the
//! council, that each deduction ended exactly as planned, once.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use jiaxin_kit::storage::Database;
use jiaxin_proto::{
    council::{
        CaseStatus, CastVoteRequest, Choice, FileObjectionRequest, ListObjectionsRequest, ListTasksRequest, Member,
        MemberKind, ObjectionOutcome, ReviewOutcome, SaveCouncilRequest, SeatMemberRequest, Task, TaskKind, TaskStatus,
        council_service_client::CouncilServiceClient,
    },
    identity::{CreateAccountRequest, Role, identity_service_client::IdentityServiceClient},
    points::{RecordInput, RecordStatus},
};
use tonic::{Code, transport::Channel};

use crate::common::authed;

/// Littering (乱扔乱倒垃圾): a minor deduction of 2–5 points a village cadre may record; every
/// deduction waits for the council.
pub const DEDUCTION_RULE: &str = "D06";
const MEMBERS: usize = 3;
const MEMBER_PASSWORD: &str = "campaign-council-1";
/// How often the council looks for open tasks.
const ROUND_EVERY: Duration = Duration::from_millis(300);
/// The bound on the council's work after the stream ends (a bound, not a pace).
const SETTLE_WITHIN: Duration = Duration::from_secs(600);

/// What happens to a household's deduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Rejected,
    Approved,
    /// Approved, objected to, and the objection's re-review keeps it.
    ObjectionUpheld,
    /// Approved, objected to, and reversed on re-review: it never counts.
    ObjectionReversed,
}

impl Verdict {
    pub fn of(household: usize) -> Self {
        match household % 4 {
            0 => Self::Rejected,
            1 => Self::Approved,
            2 => Self::ObjectionUpheld,
            _ => Self::ObjectionReversed,
        }
    }

    fn objected(self) -> bool {
        matches!(self, Self::ObjectionUpheld | Self::ObjectionReversed)
    }

    /// The record's status in points once everything has been applied.
    pub fn final_status(self) -> RecordStatus {
        match self {
            Self::Rejected => RecordStatus::Rejected,
            Self::Approved | Self::ObjectionUpheld => RecordStatus::InDisclosure,
            Self::ObjectionReversed => RecordStatus::Reversed,
        }
    }

    /// The record's ledger entries (how many, their sum) for a deduction of `points`: approval
    /// appends one; an objection cancels it with an opposite entry, and upholding appends it
    /// again.
    pub fn ledger(self, points: i64) -> (i64, i64) {
        match self {
            Self::Rejected => (0, 0),
            Self::Approved => (1, -points),
            Self::ObjectionUpheld => (3, -points),
            Self::ObjectionReversed => (2, 0),
        }
    }

    /// The council's choice on the record's review and on its objection.
    fn choice(self, kind: TaskKind) -> Choice {
        match (self, kind) {
            (Self::Rejected, _) | (Self::ObjectionReversed, TaskKind::Objection) => Choice::Reject,
            _ => Choice::Approve,
        }
    }
}

/// The size of household `h`'s deduction (the rule allows 2–5).
pub fn deduction_points(household: usize) -> i64 {
    2 + (household / 4 % 4) as i64
}

pub fn request_id(prefix: &str, household: usize) -> String {
    format!("{prefix}-{household}-{DEDUCTION_RULE}")
}

/// `bonuses` with one deduction per household spread evenly among them, so the council's work
/// falls all along the stream.
pub fn with_deductions(prefix: &str, households: &[String], bonuses: Vec<RecordInput>) -> Vec<RecordInput> {
    let at = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 };
    let mut deductions = households.iter().enumerate().map(|(h, household)| RecordInput {
        request_id: request_id(prefix, h),
        household_id: household.clone(),
        rule_code: DEDUCTION_RULE.into(),
        points: deduction_points(h),
        occurred_at: Some(at),
        evidence: vec!["photo:litter.jpg".into()],
        place: "万山村村道".into(),
        ..Default::default()
    });
    let every = bonuses.len().div_ceil(households.len().max(1)).max(1);
    let mut records = Vec::with_capacity(bonuses.len() + households.len());
    for chunk in bonuses.chunks(every) {
        records.extend_from_slice(chunk);
        records.extend(deductions.next());
    }
    records.extend(deductions);
    records
}

/// The village's council: its settings, its members' usernames, and who files objections.
pub struct CouncilSide {
    pub council: String,
    pub identity: String,
    pub village: String,
    /// Files the objections as an organiser entering the household's paper form.
    pub cadre: (String, String),
    /// Household id → its index in the campaign (which sets its deduction's verdict).
    households: HashMap<String, usize>,
    members: Vec<String>,
}

/// Sets up the village's council (quorum three, more than half) and seats three members.
pub async fn seat_council(
    identity: &str,
    council: &str,
    admin: &str,
    village: &str,
    cadre: (String, String),
    households: &[String],
) -> CouncilSide {
    let mut accounts = IdentityServiceClient::connect(identity.to_owned()).await.unwrap();
    let mut client = CouncilServiceClient::connect(council.to_owned()).await.unwrap();
    // The council learns the village from identity's events: wait for it, bounded.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let request = SaveCouncilRequest {
            org_node_id: village.into(),
            name: "信用议事会".into(),
            quorum: MEMBERS as i32,
            majority_permille: 501,
            review_days: 7,
            ..Default::default()
        };
        match client.save_council(authed(admin, request)).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("could not set up the council: {status:?}"),
        }
    }
    let year = chrono::Utc::now().format("%Y").to_string();
    let mut members = Vec::new();
    for n in 1..=MEMBERS {
        let username = format!("council-{n}");
        let request = CreateAccountRequest {
            username: username.clone(),
            display_name: format!("议事会成员{n}"),
            roles: vec![Role::CouncilMember as i32],
            org_node_id: village.into(),
            password: MEMBER_PASSWORD.into(),
            ..Default::default()
        };
        let account = accounts.create_account(authed(admin, request)).await.unwrap().into_inner().account.unwrap();
        let member = Member {
            account_id: account.id,
            display_name: format!("成员{n}"),
            kind: MemberKind::LocalWorthy as i32,
            term_from: format!("{year}-01-01"),
            term_to: format!("{year}-12-31"),
        };
        client
            .seat_member(authed(admin, SeatMemberRequest { org_node_id: village.into(), member: Some(member) }))
            .await
            .unwrap();
        members.push(username);
    }
    CouncilSide {
        council: council.into(),
        identity: identity.into(),
        village: village.into(),
        cadre,
        households: households.iter().enumerate().map(|(h, id)| (id.clone(), h)).collect(),
        members,
    }
}

/// What the council did, for the campaign's summary.
#[derive(Debug, Default)]
pub struct CouncilWork {
    pub votes: usize,
    pub objections: usize,
    /// Calls retried after a refusal that was not about their content.
    pub retries: usize,
}

/// The council at work until the stream has ended (`stream_done`) and every deduction has been
/// decided, and every planned objection filed and decided; an error when that takes longer than
/// [`SETTLE_WITHIN`] after the stream.
pub async fn review_until_settled(side: Arc<CouncilSide>, stream_done: Arc<AtomicBool>) -> Result<CouncilWork, String> {
    let mut work = CouncilWork::default();
    let mut state = Progress::default();
    let mut tokens: Option<Tokens> = None;
    let mut settle_deadline = None;
    // One channel for the whole run: tonic reconnects it after each of the council's restarts.
    let channel = Channel::from_shared(side.council.clone()).unwrap().connect_lazy();
    let mut client = CouncilServiceClient::new(channel);
    loop {
        let stream_over = stream_done.load(Ordering::SeqCst);
        if stream_over && settle_deadline.is_none() {
            settle_deadline = Some(Instant::now() + SETTLE_WITHIN);
        }
        if tokens.is_none() {
            tokens = Tokens::login(&side).await.ok();
        }
        if let Some(current) = &tokens {
            match round(&mut client, &side, current, &mut state, &mut work).await {
                Ok(true) if stream_over => return Ok(work),
                Ok(_) => {}
                Err(status) => {
                    work.retries += 1;
                    if status.code() == Code::Unauthenticated {
                        tokens = None;
                    }
                }
            }
        }
        if let Some(deadline) = settle_deadline
            && Instant::now() >= deadline
        {
            return Err(format!(
                "the council's work did not settle within {SETTLE_WITHIN:?} of the stream's end: {} of {} reviews \
                 seen, {} objections filed",
                state.reviews.len(),
                side.households.len(),
                state.objected.len()
            ));
        }
        tokio::time::sleep(ROUND_EVERY).await;
    }
}

struct Tokens {
    members: Vec<String>,
    cadre: String,
}

impl Tokens {
    async fn login(side: &CouncilSide) -> Result<Self, tonic::Status> {
        let mut members = Vec::new();
        for username in &side.members {
            members.push(crate::login(&side.identity, username, MEMBER_PASSWORD).await?);
        }
        let cadre = crate::login(&side.identity, &side.cadre.0, &side.cadre.1).await?;
        Ok(Self { members, cadre })
    }
}

#[derive(Default)]
struct Progress {
    /// household index → its deduction's record, once the council opened its review.
    reviews: HashMap<usize, String>,
    /// Records with an objection filed.
    objected: HashSet<String>,
}

/// One pass: vote on every open task, file the objections that are due. True when nothing was
/// open, every deduction's review has been seen and every planned objection filed.
async fn round(
    client: &mut CouncilServiceClient<Channel>,
    side: &CouncilSide,
    tokens: &Tokens,
    state: &mut Progress,
    work: &mut CouncilWork,
) -> Result<bool, tonic::Status> {
    let open = open_tasks(client, &tokens.members[0], &side.village).await?;
    let settled = open.is_empty()
        && state.reviews.len() == side.households.len()
        && (0..side.households.len())
            .filter(|h| Verdict::of(*h).objected())
            .all(|h| state.reviews.get(&h).is_some_and(|record| state.objected.contains(record)));
    for task in &open {
        let household = *side.households.get(&task.household_id).expect("only the campaign's households");
        let kind = TaskKind::try_from(task.kind).unwrap_or(TaskKind::Unspecified);
        if kind == TaskKind::Review {
            state.reviews.insert(household, task.record_id.clone());
        }
        let choice = Verdict::of(household).choice(kind);
        for token in &tokens.members {
            let request = CastVoteRequest {
                task_id: task.id.clone(),
                choice: choice as i32,
                amended_points: 0,
                reason: "经核实 / verified".into(),
            };
            match client.cast_vote(authed(token, request)).await {
                Ok(_) => work.votes += 1,
                // Already cast (its answer was lost) or the task already decided.
                Err(status) if status.code() == Code::FailedPrecondition => {}
                Err(status) => return Err(status),
            }
        }
    }
    file_objections(client, side, tokens, state, work).await?;
    Ok(settled)
}

async fn open_tasks(
    client: &mut CouncilServiceClient<Channel>,
    token: &str,
    village: &str,
) -> Result<Vec<Task>, tonic::Status> {
    let mut tasks = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListTasksRequest {
            org_node_id: village.into(),
            status: TaskStatus::Open as i32,
            page_size: 200,
            page_token,
        };
        let page = client.list_tasks(authed(token, request)).await?.into_inner();
        tasks.extend(page.tasks);
        if page.next_page_token.is_empty() {
            return Ok(tasks);
        }
        page_token = page.next_page_token;
    }
}

/// Files the planned objections whose records the council has approved. What the village
/// already lists is not filed again: a filing whose answer was lost still stands.
async fn file_objections(
    client: &mut CouncilServiceClient<Channel>,
    side: &CouncilSide,
    tokens: &Tokens,
    state: &mut Progress,
    work: &mut CouncilWork,
) -> Result<(), tonic::Status> {
    let due: Vec<String> = state
        .reviews
        .iter()
        .filter(|(h, record)| Verdict::of(**h).objected() && !state.objected.contains(*record))
        .map(|(_, record)| record.clone())
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let listed = ListObjectionsRequest { org_node_id: side.village.clone(), status: CaseStatus::Unspecified as i32 };
    let listed = client.list_objections(authed(&tokens.cadre, listed)).await?.into_inner().objections;
    state.objected.extend(listed.into_iter().map(|o| o.record_id));
    let due: Vec<String> = due.into_iter().filter(|r| !state.objected.contains(r)).collect();
    for record in due {
        let request = FileObjectionRequest {
            record_id: record.clone(),
            reason: "户主称当天不在村 / the head says no one was home that day".into(),
        };
        match client.file_objection(authed(&tokens.cadre, request)).await {
            Ok(_) => {
                work.objections += 1;
                state.objected.insert(record);
            }
            // Not approved yet: the council has still to decide its review.
            Err(status) if status.code() == Code::FailedPrecondition => {}
            Err(status) => return Err(status),
        }
    }
    Ok(())
}

/// Waits (bounded) until points shows every deduction in its planned final status. `records`
/// maps each household index to its deduction's record id. A failure says which statuses the
/// stragglers are in, (planned, seen) with counts.
pub async fn await_planned_statuses(points: &Database, records: &BTreeMap<usize, String>) -> Result<(), String> {
    let expected_status: BTreeMap<String, i64> =
        records.iter().map(|(h, id)| (id.clone(), Verdict::of(*h).final_status() as i64)).collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT id, status FROM records WHERE rule_code = $1")
            .bind(DEDUCTION_RULE)
            .fetch_all(points.pool())
            .await
            .unwrap();
        let seen: BTreeMap<String, i64> = rows.into_iter().collect();
        if seen == expected_status {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let status_name =
                |s: Option<&i64>| s.map_or("absent".into(), |s| format!("{:?}", RecordStatus::try_from(*s as i32)));
            let mut differ: BTreeMap<(String, String), usize> = BTreeMap::new();
            for (id, want) in &expected_status {
                if seen.get(id) != Some(want) {
                    *differ.entry((status_name(Some(want)), status_name(seen.get(id)))).or_default() += 1;
                }
            }
            let total: usize = differ.values().sum();
            return Err(format!(
                "{total} deductions not in their planned status in points after 300 s; (planned, seen) → count: \
                 {differ:?}"
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Checks each deduction's ledger entries in points, and the council's tasks, votes and
/// objections, against the plan, once [`await_planned_statuses`] has passed.
pub async fn check(points: &Database, council: &Database, records: &BTreeMap<usize, String>) {
    // Points: each record's ledger entries as its verdict implies — nothing applied twice.
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT record_id, CAST(COUNT(*) AS BIGINT), CAST(SUM(delta) AS BIGINT) FROM ledger WHERE rule_code = $1 \
         GROUP BY record_id",
    )
    .bind(DEDUCTION_RULE)
    .fetch_all(points.pool())
    .await
    .unwrap();
    let ledger: HashMap<String, (i64, i64)> = rows.into_iter().map(|(id, n, sum)| (id, (n, sum))).collect();
    for (h, id) in records {
        let want = Verdict::of(*h).ledger(deduction_points(*h));
        let have = ledger.get(id).copied().unwrap_or((0, 0));
        assert_eq!(have, want, "household {h}'s deduction ({:?}): ledger entries and their sum", Verdict::of(*h));
    }

    // The council: one review per deduction and one objection task per objection, each decided
    // as planned by exactly the three members' votes.
    let tasks: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT t.record_id, t.kind, t.status, t.outcome, CAST(COUNT(v.account_id) AS BIGINT) FROM tasks t \
         LEFT JOIN votes v ON v.task_id = t.id GROUP BY t.id, t.record_id, t.kind, t.status, t.outcome",
    )
    .fetch_all(council.pool())
    .await
    .unwrap();
    let mut by_record: HashMap<String, Vec<(i64, i64, i64, i64)>> = HashMap::new();
    for (record, kind, status, outcome, votes) in tasks {
        by_record.entry(record).or_default().push((kind, status, outcome, votes));
    }
    let decided = TaskStatus::Decided as i64;
    let three = MEMBERS as i64;
    for (h, id) in records {
        let verdict = Verdict::of(*h);
        let mut want =
            vec![(TaskKind::Review as i64, decided, review_outcome(verdict.choice(TaskKind::Review)), three)];
        if verdict.objected() {
            let outcome = review_outcome(verdict.choice(TaskKind::Objection));
            want.push((TaskKind::Objection as i64, decided, outcome, three));
        }
        let mut have = by_record.remove(id).unwrap_or_default();
        have.sort_unstable();
        assert_eq!(
            have, want,
            "household {h}'s deduction ({verdict:?}): the council's tasks (kind, status, outcome, votes)"
        );
    }
    assert!(by_record.is_empty(), "tasks for records the campaign never made: {by_record:?}");
    let objections: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT record_id, status, outcome FROM objections").fetch_all(council.pool()).await.unwrap();
    let mut objections_of: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for (record, status, outcome) in objections {
        objections_of.entry(record).or_default().push((status, outcome));
    }
    for (h, id) in records {
        let want = match Verdict::of(*h) {
            Verdict::ObjectionUpheld => vec![(CaseStatus::Resolved as i64, ObjectionOutcome::Upheld as i64)],
            Verdict::ObjectionReversed => vec![(CaseStatus::Resolved as i64, ObjectionOutcome::Reversed as i64)],
            Verdict::Rejected | Verdict::Approved => vec![],
        };
        assert_eq!(objections_of.remove(id).unwrap_or_default(), want, "household {h}'s objections (status, outcome)");
    }
}

fn review_outcome(choice: Choice) -> i64 {
    match choice {
        Choice::Reject => ReviewOutcome::Rejected as i64,
        _ => ReviewOutcome::Approved as i64,
    }
}

/// What the household's deductions take off its score once their disclosure is over.
pub fn counted_after_disclosure(household: usize) -> i64 {
    match Verdict::of(household) {
        Verdict::Approved | Verdict::ObjectionUpheld => -deduction_points(household),
        Verdict::Rejected | Verdict::ObjectionReversed => 0,
    }
}

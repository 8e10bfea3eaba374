//! Review tasks: opened from points' records that need review, voted on by the village's council
//! (recused members refused), decided when quorum and majority hold, and the decision published
//! to points.

use jiaxin_kit::{
    auth::{Caller, Role},
    error::Violations,
    page::Page,
    storage::Tx,
    time::{DAY_MICROS, china_date, now_micros, parse_date, to_timestamp},
};
use jiaxin_proto::{
    council::{
        CastVoteRequest, Choice, DisclosurePublished, GetTaskResponse, ListTasksResponse, ReviewDecided, ReviewOutcome,
        Task, TaskKind, TaskStatus,
    },
    points::Record,
};
use prost::Message;

use super::{Council, audit, outcome_name, path_ids, path_of, task_proto};
use crate::{
    domain::{
        access,
        tally::{self, Ballot},
    },
    error::{CouncilError, Result},
    store::{self, TaskRow, VoteRow},
};

const TASK: &str = "评议事项";
/// Review deadline for a village that has not set up its council yet.
const DEFAULT_REVIEW_DAYS: i64 = 7;
const HISTORY: i64 = 20;

/// A record that needs review, as points published it.
pub(crate) struct Submitted<'a> {
    pub record: &'a Record,
    pub org_path: &'a [String],
    pub points_min: i64,
    pub points_max: i64,
    pub disclosure_days: i64,
    pub severity: i64,
}

pub(crate) fn ballot_of(v: &VoteRow) -> Ballot {
    match Choice::try_from(v.choice as i32).unwrap_or(Choice::Unspecified) {
        Choice::Approve => Ballot::Approve,
        Choice::Amend => Ballot::Amend(v.amended_points),
        Choice::Reject | Choice::Unspecified => Ballot::Reject,
    }
}

fn validate_vote(req: &CastVoteRequest, task: Option<&TaskRow>) -> Result<Choice> {
    let mut v = Violations::new();
    v.require("task_id", &req.task_id);
    let choice = Choice::try_from(req.choice).unwrap_or(Choice::Unspecified);
    if choice == Choice::Unspecified {
        v.add("choice", "同意、不同意或修改分值 / approve, reject or amend");
    }
    if req.reason.trim().is_empty() || req.reason.chars().count() > 500 {
        v.add("reason", "必填,不超过500字 / required, at most 500 characters");
    }
    if let Some(task) = task
        && choice == Choice::Amend
        && task.kind == TaskKind::Repair as i64
    {
        v.add("choice", "信用修复只能同意或不同意 / a repair is approved or rejected");
    } else if let Some(task) = task
        && choice == Choice::Amend
        && !(task.points_min..=task.points_max).contains(&req.amended_points)
    {
        v.add(
            "amended_points",
            format!(
                "应在 {}–{} 之间 / must be within {}–{}",
                task.points_min, task.points_max, task.points_min, task.points_max
            ),
        );
    }
    v.into_result()?;
    Ok(choice)
}

/// The reasons of the votes for the decided choice, as the minutes give the decision's reason.
pub(crate) fn reasons_for(votes: &[VoteRow], decided: Ballot) -> String {
    votes.iter().filter(|v| ballot_of(v) == decided).map(|v| v.reason.as_str()).collect::<Vec<_>>().join(";")
}

impl Council {
    /// Opens the review task of a record (once: a redelivered event finds it open).
    pub(crate) async fn open_task(&self, tx: &mut Tx, submitted: Submitted<'_>) -> Result<()> {
        let record = submitted.record;
        let path = path_of(submitted.org_path);
        let council = store::council_on_path(&mut **tx, &path_ids(&path)).await?;
        let review_days = council.map(|c| c.review_days).unwrap_or(DEFAULT_REVIEW_DAYS);
        let opened_at = now_micros();
        let row = TaskRow {
            id: uuid::Uuid::now_v7().to_string(),
            kind: TaskKind::Review as i64,
            case_id: String::new(),
            record_id: record.id.clone(),
            household_id: record.household_id.clone(),
            path,
            record: record.encode_to_vec(),
            recorded_by: record.recorded_by.clone(),
            rule_code: record.rule_code.clone(),
            points: record.points,
            points_min: submitted.points_min,
            points_max: submitted.points_max,
            disclosure_days: submitted.disclosure_days,
            severity: submitted.severity,
            status: TaskStatus::Open as i64,
            opened_at,
            due_at: opened_at + review_days * DAY_MICROS,
            outcome: 0,
            amended_points: 0,
            reason: String::new(),
            decided_at: None,
            disclosed_until: None,
        };
        if store::insert_task(&mut **tx, &row).await? {
            audit(tx, "points", "task.opened", &row.id, &format!("record={} rule={}", row.record_id, row.rule_code))
                .await?;
        }
        Ok(())
    }

    /// The village or community on a task's path that has a council, else the task's grid's
    /// parent (for display).
    pub(crate) async fn task_node(&self, tx: &mut Tx, task: &TaskRow) -> Result<String> {
        let ids = path_ids(&task.path);
        Ok(match store::council_on_path(&mut **tx, &ids).await? {
            Some(council) => council.org_node_id,
            None => ids.iter().rev().nth(1).map(|s| (*s).to_owned()).unwrap_or_default(),
        })
    }

    /// The task, when the caller reads inside its scope.
    pub(crate) async fn readable_task(&self, tx: &mut Tx, caller: &Caller, id: &str) -> Result<TaskRow> {
        if !caller.has_any_role(access::READERS) {
            return Err(CouncilError::PermissionDenied);
        }
        let task = store::task(&mut **tx, id.trim()).await?.ok_or(CouncilError::NotFound(TASK))?;
        if !caller.covers(&path_ids(&task.path)) {
            return Err(CouncilError::NotFound(TASK));
        }
        Ok(task)
    }

    pub async fn list_tasks(
        &self,
        caller: &Caller,
        org_node_id: &str,
        status: i32,
        page: Page,
    ) -> Result<ListTasksResponse> {
        if !caller.has_any_role(access::READERS) {
            return Err(CouncilError::PermissionDenied);
        }
        if !(0..=2).contains(&status) {
            return Err(CouncilError::invalid("status", "OPEN 或 DECIDED / open or decided"));
        }
        let node = if org_node_id.trim().is_empty() { caller.scope() } else { org_node_id.trim() };
        let now = now_micros();
        let mut tx = self.db.begin_read().await?;
        let (path, _) = store::org_node(&mut *tx, node).await?.ok_or(CouncilError::NotFound("组织"))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(CouncilError::NotFound("组织"));
        }
        let mut rows =
            store::tasks_under(&mut *tx, &path, i64::from(status), page.after.as_deref(), page.fetch_limit(), false)
                .await?;
        let next_page_token = page.finish(&mut rows, |t| t.id.clone());
        let mut tasks = Vec::with_capacity(rows.len());
        // A page is mostly one village's tasks: look each grid's council up once.
        let mut nodes: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for row in &rows {
            let votes = store::votes(&mut *tx, &row.id).await?;
            if !nodes.contains_key(&row.path) {
                let node = self.task_node(&mut tx, row).await?;
                nodes.insert(row.path.clone(), node);
            }
            tasks.push(task_proto(row, &nodes[&row.path], &votes, now));
        }
        Ok(ListTasksResponse { tasks, next_page_token })
    }

    pub async fn get_task(&self, caller: &Caller, id: &str) -> Result<GetTaskResponse> {
        let now = now_micros();
        let mut tx = self.db.begin_read().await?;
        let task = self.readable_task(&mut tx, caller, id).await?;
        let node = self.task_node(&mut tx, &task).await?;
        let votes = store::votes(&mut *tx, &task.id).await?;
        let mut history = Vec::new();
        for earlier in store::household_tasks(&mut *tx, &task.household_id, &task.id, HISTORY).await? {
            let votes = store::votes(&mut *tx, &earlier.id).await?;
            history.push(task_proto(&earlier, &node, &votes, now));
        }
        Ok(GetTaskResponse { task: Some(task_proto(&task, &node, &votes, now)), history })
    }

    pub async fn cast_vote(&self, caller: &Caller, req: CastVoteRequest) -> Result<Task> {
        if !caller.has_role(Role::CouncilMember) {
            return Err(CouncilError::PermissionDenied);
        }
        validate_vote(&req, None)?;
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let task = self.readable_task(&mut tx, caller, &req.task_id).await?;
        let choice = validate_vote(&req, Some(&task))?;
        let council = store::council_on_path(&mut *tx, &path_ids(&task.path))
            .await?
            .ok_or_else(|| CouncilError::Precondition("该村尚未设立信用议事会 / no council here yet".into()))?;
        let today = china_date(now).ok_or_else(|| CouncilError::Internal("clock out of range".into()))?;
        let seated = store::members(&mut *tx, &council.id).await?.into_iter().any(|m| {
            m.account_id == caller.account_id()
                && parse_date(&m.term_from).is_some_and(|from| from <= today)
                && parse_date(&m.term_to).is_some_and(|to| today <= to)
        });
        if !seated {
            return Err(CouncilError::Forbidden("不是本村议事会的在任成员 / not a serving member of this council"));
        }

        store::lock_task(&mut *tx, &task.id).await?;
        let task = store::task(&mut *tx, &task.id).await?.ok_or(CouncilError::NotFound(TASK))?;
        if task.status != TaskStatus::Open as i64 {
            return Err(CouncilError::Precondition("该事项已作出决定 / already decided".into()));
        }
        if task.recorded_by == caller.account_id() {
            return Err(CouncilError::Forbidden("回避:本人记录的事项 / recused: you recorded this item"));
        }
        if let Some(rid) = caller.0.rid.as_deref()
            && store::related(&mut *tx, &task.household_id, rid).await?
        {
            return Err(CouncilError::Forbidden(
                "回避:与该户有成员或亲属关系 / recused: you belong or are related to the household",
            ));
        }
        let mut votes = store::votes(&mut *tx, &task.id).await?;
        if votes.iter().any(|v| v.account_id == caller.account_id()) {
            return Err(CouncilError::Precondition("已投票 / already voted".into()));
        }
        let vote = VoteRow {
            account_id: caller.account_id().to_owned(),
            choice: choice as i64,
            amended_points: if choice == Choice::Amend { req.amended_points } else { 0 },
            reason: req.reason.trim().to_owned(),
            cast_at: now,
        };
        store::insert_vote(&mut *tx, &task.id, &vote).await?;
        let details = format!("choice={} points={} reason={}", vote.choice, vote.amended_points, vote.reason);
        audit(&mut tx, caller.account_id(), "vote", &task.id, &details).await?;
        votes.push(vote);

        let rules = tally::Rules { quorum: council.quorum as usize, majority_permille: council.majority_permille };
        let ballots: Vec<Ballot> = votes.iter().map(ballot_of).collect();
        if let Some(decided) = tally::decide(&ballots, rules) {
            match TaskKind::try_from(task.kind as i32).unwrap_or(TaskKind::Review) {
                TaskKind::Objection => self.decide_objection(&mut tx, &task, decided, &votes, now).await?,
                TaskKind::Repair => self.decide_repair(&mut tx, &task, decided, &votes, now).await?,
                TaskKind::Review | TaskKind::Unspecified => self.decide(&mut tx, &task, decided, &votes, now).await?,
            }
        }
        let task = store::task(&mut *tx, &task.id).await?.ok_or(CouncilError::NotFound(TASK))?;
        let node = council.org_node_id.clone();
        tx.commit().await?;
        self.outbox.wake();
        Ok(task_proto(&task, &node, &votes, now))
    }

    /// Records the decision (minutes and audit), and tells points; an approval goes on the
    /// village's disclosure list for the rule's period.
    async fn decide(&self, tx: &mut Tx, task: &TaskRow, decided: Ballot, votes: &[VoteRow], now: i64) -> Result<()> {
        let (outcome, amended_points) = match decided {
            Ballot::Approve => (ReviewOutcome::Approved, 0),
            Ballot::Reject => (ReviewOutcome::Rejected, 0),
            Ballot::Amend(points) => (ReviewOutcome::Amended, points),
        };
        let reason = reasons_for(votes, decided);
        let disclosed_until = (outcome != ReviewOutcome::Rejected).then_some(now + task.disclosure_days * DAY_MICROS);
        store::decide_task(&mut **tx, &task.id, outcome as i64, amended_points, &reason, now, disclosed_until).await?;
        let details = format!("outcome={} points={} votes={}", outcome_name(outcome), amended_points, votes.len());
        audit(tx, "council", "decision", &task.id, &details).await?;
        let decision = ReviewDecided {
            review_id: task.id.clone(),
            record_id: task.record_id.clone(),
            household_id: task.household_id.clone(),
            outcome: outcome as i32,
            amended_points,
            reason,
        };
        self.outbox.write(tx, &task.household_id, &decision).await?;
        if let Some(until) = disclosed_until {
            let published = DisclosurePublished {
                review_id: task.id.clone(),
                record_id: task.record_id.clone(),
                household_id: task.household_id.clone(),
                until: Some(to_timestamp(until)),
            };
            self.outbox.write(tx, &task.household_id, &published).await?;
        }
        Ok(())
    }
}

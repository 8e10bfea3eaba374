//! Objections (异议) and credit repair (信用修复): the household's two ways back to the council.
//! Each opens a task the council votes on like a review (quorum, majority, recusal); the outcome
//! goes to points as an event.

use jiaxin_kit::{
    auth::{Caller, Role},
    error::Violations,
    storage::Tx,
    time::{DAY_MICROS, now_micros, to_timestamp},
};
use jiaxin_proto::{
    council::{
        ApplyRepairRequest, CaseStatus, ListObjectionsResponse, Objection, ObjectionEscalated, ObjectionFiled,
        ObjectionOutcome, ObjectionResolved, Repair, RepairApproved, RepairRejected, ReviewOutcome, TaskKind,
        TaskStatus,
    },
    identity::OrgNodeKind,
    points::Severity,
};

use super::{Council, audit, path_ids, review::reasons_for};
use crate::{
    domain::{access, tally::Ballot},
    error::{CouncilError, Result},
    store::{self, ObjectionRow, RepairRow, TaskRow, VoteRow},
};

/// An objection must be answered within 20 days (the law's limit).
const OBJECTION_DAYS: i64 = 20;
const RECORD: &str = "积分记录";

fn objection_proto(o: &ObjectionRow) -> Objection {
    Objection {
        id: o.id.clone(),
        record_id: o.record_id.clone(),
        household_id: o.household_id.clone(),
        reason: o.reason.clone(),
        filed_by: o.filed_by.clone(),
        filed_at: Some(to_timestamp(o.filed_at)),
        due_at: Some(to_timestamp(o.due_at)),
        escalated: o.escalated == 1,
        task_id: o.task_id.clone(),
        status: o.status as i32,
        outcome: o.outcome as i32,
        amended_points: o.amended_points,
        resolved_at: o.resolved_at.map(to_timestamp),
    }
}

fn repair_proto(r: &RepairRow) -> Repair {
    Repair {
        id: r.id.clone(),
        record_id: r.record_id.clone(),
        household_id: r.household_id.clone(),
        statement: r.statement.clone(),
        evidence: if r.evidence.is_empty() { Vec::new() } else { r.evidence.split('\n').map(str::to_owned).collect() },
        applied_by: r.applied_by.clone(),
        applied_at: Some(to_timestamp(r.applied_at)),
        task_id: r.task_id.clone(),
        status: r.status as i32,
        approved: r.approved == 1,
        decided_at: r.decided_at.map(to_timestamp),
    }
}

impl Council {
    /// The record's approved review, when the caller may act for its household: a current
    /// member (a resident), or an organiser in scope entering a paper form.
    async fn case_record(&self, tx: &mut Tx, caller: &Caller, record_id: &str) -> Result<TaskRow> {
        let review = store::review_of_record(&mut **tx, record_id).await?.ok_or(CouncilError::NotFound(RECORD))?;
        let by_organiser = caller.has_any_role(access::ORGANISERS) && caller.covers(&path_ids(&review.path));
        let by_household = caller.has_role(Role::Resident)
            && match caller.0.rid.as_deref() {
                Some(rid) => store::is_current_member(&mut **tx, &review.household_id, rid).await?,
                None => false,
            };
        if !by_organiser && !by_household {
            return Err(CouncilError::NotFound(RECORD));
        }
        let approved = review.status == TaskStatus::Decided as i64
            && (review.outcome == ReviewOutcome::Approved as i64 || review.outcome == ReviewOutcome::Amended as i64);
        if !approved {
            return Err(CouncilError::Precondition(
                "只针对议事会通过的记录 / only records the council approved".into(),
            ));
        }
        // Closed for good once an objection reversed it or a repair ended it.
        let reversed = store::objections_of_record(&mut **tx, record_id)
            .await?
            .iter()
            .any(|o| o.outcome == ObjectionOutcome::Reversed as i64);
        let repaired = store::repairs_of_record(&mut **tx, record_id).await?.iter().any(|r| r.approved == 1);
        if reversed || repaired {
            return Err(CouncilError::Precondition("该记录已撤销或已修复 / already reversed or repaired".into()));
        }
        Ok(review)
    }

    /// A task for a case, carrying the record as its review did.
    async fn open_case_task(
        &self,
        tx: &mut Tx,
        review: &TaskRow,
        kind: TaskKind,
        case_id: &str,
        due_at: i64,
    ) -> Result<String> {
        let now = now_micros();
        let task = TaskRow {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind as i64,
            case_id: case_id.to_owned(),
            status: TaskStatus::Open as i64,
            opened_at: now,
            due_at,
            outcome: 0,
            amended_points: 0,
            reason: String::new(),
            decided_at: None,
            disclosed_until: None,
            ..review.clone()
        };
        store::insert_task(&mut **tx, &task).await?;
        Ok(task.id)
    }

    pub async fn file_objection(&self, caller: &Caller, record_id: &str, reason: &str) -> Result<Objection> {
        let mut v = Violations::new();
        v.require("record_id", record_id);
        if reason.trim().is_empty() || reason.chars().count() > 500 {
            v.add("reason", "必填,不超过500字 / required, at most 500 characters");
        }
        v.into_result()?;
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let review = self.case_record(&mut tx, caller, record_id.trim()).await?;
        if store::objections_of_record(&mut *tx, &review.record_id)
            .await?
            .iter()
            .any(|o| o.status == CaseStatus::Open as i64)
        {
            return Err(CouncilError::Precondition("该记录已有待复核的异议 / an objection is already open".into()));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let due_at = now + OBJECTION_DAYS * DAY_MICROS;
        let task_id = self.open_case_task(&mut tx, &review, TaskKind::Objection, &id, due_at).await?;
        let row = ObjectionRow {
            id: id.clone(),
            record_id: review.record_id.clone(),
            household_id: review.household_id.clone(),
            path: review.path.clone(),
            reason: reason.trim().to_owned(),
            filed_by: caller.account_id().to_owned(),
            filed_at: now,
            due_at,
            escalated: 0,
            task_id,
            status: CaseStatus::Open as i64,
            outcome: 0,
            amended_points: 0,
            resolved_at: None,
        };
        store::insert_objection(&mut *tx, &row).await?;
        audit(&mut tx, caller.account_id(), "objection.filed", &id, &format!("record={}", row.record_id)).await?;
        let event = ObjectionFiled {
            objection_id: id,
            record_id: row.record_id.clone(),
            household_id: row.household_id.clone(),
            due_at: Some(to_timestamp(due_at)),
        };
        self.outbox.write(&mut tx, &row.household_id, &event).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(objection_proto(&row))
    }

    pub async fn list_objections(
        &self,
        caller: &Caller,
        org_node_id: &str,
        status: i32,
    ) -> Result<ListObjectionsResponse> {
        if !caller.has_any_role(access::READERS) {
            return Err(CouncilError::PermissionDenied);
        }
        if !(0..=2).contains(&status) {
            return Err(CouncilError::invalid("status", "OPEN 或 RESOLVED / open or resolved"));
        }
        let node = if org_node_id.trim().is_empty() { caller.scope() } else { org_node_id.trim() };
        let mut tx = self.db.begin_read().await?;
        let (path, _) = store::org_node(&mut *tx, node).await?.ok_or(CouncilError::NotFound("组织"))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(CouncilError::NotFound("组织"));
        }
        let rows = store::objections_under(&mut *tx, &path, i64::from(status)).await?;
        Ok(ListObjectionsResponse { objections: rows.iter().map(objection_proto).collect() })
    }

    pub async fn apply_repair(&self, caller: &Caller, req: ApplyRepairRequest) -> Result<Repair> {
        self.apply_repair_at(caller, req, now_micros()).await
    }

    /// A repair application at `now` (the clock for the API; tests pass a moment).
    pub async fn apply_repair_at(&self, caller: &Caller, req: ApplyRepairRequest, now: i64) -> Result<Repair> {
        let mut v = Violations::new();
        v.require("record_id", &req.record_id);
        if req.statement.trim().is_empty() || req.statement.chars().count() > 1000 {
            v.add("statement", "必填,不超过1000字 / required, at most 1000 characters");
        }
        if req.evidence.is_empty()
            || req.evidence.iter().any(|e| e.trim().is_empty() || e.contains('\n') || e.len() > 512)
        {
            v.add(
                "evidence",
                "至少一项,每项一行、不超过512字符 / at least one one-line reference of at most 512 characters",
            );
        }
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let review = self.case_record(&mut tx, caller, req.record_id.trim()).await?;
        if review.points >= 0 {
            return Err(CouncilError::invalid("record_id", "只有扣分记录可以修复 / only deductions can be repaired"));
        }
        if store::objections_of_record(&mut *tx, &review.record_id)
            .await?
            .iter()
            .any(|o| o.status == CaseStatus::Open as i64)
            || store::repairs_of_record(&mut *tx, &review.record_id)
                .await?
                .iter()
                .any(|r| r.status == CaseStatus::Open as i64)
        {
            return Err(CouncilError::Precondition("该记录已有待决的异议或修复申请 / a case is already open".into()));
        }
        let council = store::council_on_path(&mut *tx, &path_ids(&review.path))
            .await?
            .ok_or_else(|| CouncilError::Precondition("该村尚未设立信用议事会 / no council here yet".into()))?;
        let wait_days = match Severity::try_from(review.severity as i32).unwrap_or(Severity::Unspecified) {
            Severity::Serious => council.repair_wait_days_serious,
            Severity::General => council.repair_wait_days_general,
            Severity::Minor | Severity::Unspecified => council.repair_wait_days_minor,
        };
        let effective_from = review.disclosed_until.unwrap_or(review.opened_at);
        if now < effective_from + wait_days * DAY_MICROS {
            return Err(CouncilError::Precondition(format!(
                "须在扣分生效满{wait_days}天后申请 / repair may be applied for {wait_days} days after the deduction took effect"
            )));
        }
        let pledged = store::pledged_at(&mut *tx, &review.household_id).await?;
        let fresh = pledged.is_some_and(|at| review.decided_at.is_some_and(|decided| at >= decided));
        if !fresh {
            return Err(CouncilError::Precondition(
                "须在扣分后重新签署信用承诺 / sign a fresh pledge after the deduction first".into(),
            ));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let task_id = {
            let due = now + council.review_days * DAY_MICROS;
            self.open_case_task(&mut tx, &review, TaskKind::Repair, &id, due).await?
        };
        let row = RepairRow {
            id: id.clone(),
            record_id: review.record_id.clone(),
            household_id: review.household_id.clone(),
            statement: req.statement.trim().to_owned(),
            evidence: req.evidence.iter().map(|e| e.trim()).collect::<Vec<_>>().join("\n"),
            applied_by: caller.account_id().to_owned(),
            applied_at: now,
            task_id,
            status: CaseStatus::Open as i64,
            approved: 0,
            decided_at: None,
        };
        store::insert_repair(&mut *tx, &row).await?;
        audit(&mut tx, caller.account_id(), "repair.applied", &id, &format!("record={}", row.record_id)).await?;
        tx.commit().await?;
        Ok(repair_proto(&row))
    }

    /// The council re-reviewed an objection: uphold (approve), reverse (reject) or amend.
    pub(crate) async fn decide_objection(
        &self,
        tx: &mut Tx,
        task: &TaskRow,
        decided: Ballot,
        votes: &[VoteRow],
        now: i64,
    ) -> Result<()> {
        let (outcome, review_outcome, amended) = match decided {
            Ballot::Approve => (ObjectionOutcome::Upheld, ReviewOutcome::Approved, 0),
            Ballot::Reject => (ObjectionOutcome::Reversed, ReviewOutcome::Rejected, 0),
            Ballot::Amend(points) => (ObjectionOutcome::Amended, ReviewOutcome::Amended, points),
        };
        let reason = reasons_for(votes, decided);
        store::decide_task(&mut **tx, &task.id, review_outcome as i64, amended, &reason, now, None).await?;
        store::resolve_objection(&mut **tx, &task.case_id, outcome as i64, amended, now).await?;
        audit(
            tx,
            "council",
            "objection.resolved",
            &task.case_id,
            &format!("outcome={} points={amended}", outcome as i32),
        )
        .await?;
        let event = ObjectionResolved {
            objection_id: task.case_id.clone(),
            record_id: task.record_id.clone(),
            household_id: task.household_id.clone(),
            outcome: outcome as i32,
            amended_points: amended,
            reason,
        };
        self.outbox.write(tx, &task.household_id, &event).await?;
        Ok(())
    }

    /// The council decided a repair application.
    pub(crate) async fn decide_repair(
        &self,
        tx: &mut Tx,
        task: &TaskRow,
        decided: Ballot,
        votes: &[VoteRow],
        now: i64,
    ) -> Result<()> {
        let approved = decided == Ballot::Approve;
        let outcome = if approved { ReviewOutcome::Approved } else { ReviewOutcome::Rejected };
        let reason = reasons_for(votes, decided);
        store::decide_task(&mut **tx, &task.id, outcome as i64, 0, &reason, now, None).await?;
        store::decide_repair(&mut **tx, &task.case_id, approved, now).await?;
        audit(tx, "council", "repair.decided", &task.case_id, &format!("approved={approved}")).await?;
        let (repair_id, record_id, household_id) =
            (task.case_id.clone(), task.record_id.clone(), task.household_id.clone());
        if approved {
            let event = RepairApproved { repair_id, record_id, household_id, reason };
            self.outbox.write(tx, &task.household_id, &event).await?;
        } else {
            let event = RepairRejected { repair_id, record_id, household_id, reason };
            self.outbox.write(tx, &task.household_id, &event).await?;
        }
        Ok(())
    }

    /// Escalates objections unanswered past their 20 days to the town above the village, once.
    pub(crate) async fn escalate_overdue_objections(&self, tx: &mut Tx, now: i64) -> Result<usize> {
        let overdue = store::take_overdue_objections(&mut **tx, now).await?;
        for objection in &overdue {
            let mut town = String::new();
            for id in path_ids(&objection.path).iter().rev() {
                if let Some((_, kind)) = store::org_node(&mut **tx, id).await?
                    && (kind == OrgNodeKind::Town as i64 || kind == OrgNodeKind::Street as i64)
                {
                    town = (*id).to_owned();
                    break;
                }
            }
            audit(tx, "council", "objection.escalated", &objection.id, &format!("town={town}")).await?;
            let event = ObjectionEscalated {
                objection_id: objection.id.clone(),
                record_id: objection.record_id.clone(),
                household_id: objection.household_id.clone(),
                town_id: town,
            };
            self.outbox.write(tx, &objection.household_id, &event).await?;
        }
        Ok(overdue.len())
    }
}

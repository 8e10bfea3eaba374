//! The council's operations: each one transaction that checks the caller, validates against
//! current state, writes (with its audit entries) and adds its events to the outbox.

mod cases;
mod councils;
mod published;
mod review;

pub(crate) use review::Submitted;

use jiaxin_kit::{outbox::Outbox, storage::Database, storage::Tx, time::now_micros, time::to_timestamp};
use jiaxin_proto::council::{Decision, ReviewOutcome, Task, TaskStatus, Vote};
use prost::Message;

use crate::{
    error::Result,
    store::{TaskRow, VoteRow},
};

pub struct Council {
    pub(crate) db: Database,
    pub(crate) outbox: Outbox,
}

impl Council {
    pub fn new(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }
}

pub(crate) use jiaxin_kit::sql::{path_ids, path_of};

/// Appends to the audit log's hash chain, inside the operation's transaction: if the entry
/// cannot be written, neither can what it records. The chain's head row queues concurrent
/// appends (see `jiaxin_kit::audit`).
pub(crate) async fn audit(tx: &mut Tx, actor: &str, action: &str, subject: &str, details: &str) -> Result<()> {
    let entry = jiaxin_kit::audit::Entry { at: now_micros(), actor, action, subject, details };
    jiaxin_kit::audit::append(tx, &[entry]).await?;
    Ok(())
}

pub(crate) fn vote_proto(v: &VoteRow) -> Vote {
    Vote {
        account_id: v.account_id.clone(),
        choice: v.choice as i32,
        amended_points: v.amended_points,
        reason: v.reason.clone(),
        cast_at: Some(to_timestamp(v.cast_at)),
    }
}

pub(crate) fn decision_proto(t: &TaskRow) -> Option<Decision> {
    let decided_at = t.decided_at?;
    Some(Decision {
        outcome: t.outcome as i32,
        amended_points: t.amended_points,
        reason: t.reason.clone(),
        decided_at: Some(to_timestamp(decided_at)),
        disclosed_until: t.disclosed_until.map(to_timestamp),
    })
}

/// The village or community a task's path runs through, known from the org tree; the task's
/// grid's parent otherwise.
pub(crate) fn task_proto(t: &TaskRow, org_node_id: &str, votes: &[VoteRow], now: i64) -> Task {
    Task {
        id: t.id.clone(),
        record_id: t.record_id.clone(),
        household_id: t.household_id.clone(),
        org_node_id: org_node_id.to_owned(),
        record: jiaxin_proto::points::Record::decode(t.record.as_slice()).ok(),
        points_min: t.points_min,
        points_max: t.points_max,
        status: t.status as i32,
        opened_at: Some(to_timestamp(t.opened_at)),
        due_at: Some(to_timestamp(t.due_at)),
        overdue: t.status == TaskStatus::Open as i64 && t.due_at < now,
        votes: votes.iter().map(vote_proto).collect(),
        decision: decision_proto(t),
        kind: t.kind as i32,
        case_id: t.case_id.clone(),
    }
}

pub(crate) fn outcome_name(outcome: ReviewOutcome) -> &'static str {
    match outcome {
        ReviewOutcome::Approved => "approved",
        ReviewOutcome::Amended => "amended",
        ReviewOutcome::Rejected => "rejected",
        ReviewOutcome::Unspecified => "unspecified",
    }
}

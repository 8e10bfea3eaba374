//! What the council publishes: the minutes (every decision with its votes, the household
//! anonymised), the disclosure list (公示), the audit log's check, and the reminders and
//! closings that come with time.

use jiaxin_kit::{auth::Caller, page::Page, time::to_timestamp};
use jiaxin_proto::council::{
    Disclosure, DisclosureClosed, ListDisclosuresResponse, ListMinutesResponse, MinutesEntry, ReviewOverdue,
    TaskStatus, VerifyAuditLogResponse,
};

use super::{Council, decision_proto, path_ids, vote_proto};
use crate::{
    domain::{access, mask::masked_address},
    error::{CouncilError, Result},
    store::{self, TaskRow},
};

const NODE: &str = "村(社区)";

impl Council {
    async fn village_path(&self, tx: &mut jiaxin_kit::storage::Tx, org_node_id: &str) -> Result<String> {
        if org_node_id.trim().is_empty() {
            return Err(CouncilError::invalid("org_node_id", "必填 / required"));
        }
        let (path, _) = store::org_node(&mut **tx, org_node_id.trim()).await?.ok_or(CouncilError::NotFound(NODE))?;
        Ok(path)
    }

    async fn shown_household(&self, tx: &mut jiaxin_kit::storage::Tx, task: &TaskRow) -> Result<String> {
        let address = store::household_address(&mut **tx, &task.household_id).await?.unwrap_or_default();
        Ok(masked_address(&address))
    }

    /// Published minutes are public in the village (any signed-in caller): the household shows
    /// only as its masked address; the members' votes and reasons are the council's record.
    pub async fn minutes(&self, org_node_id: &str, page: Page) -> Result<ListMinutesResponse> {
        let mut tx = self.db.begin_read().await?;
        let path = self.village_path(&mut tx, org_node_id).await?;
        let mut rows = store::tasks_under(
            &mut *tx,
            &path,
            TaskStatus::Decided as i64,
            page.after.as_deref(),
            page.fetch_limit(),
            true,
        )
        .await?;
        let next_page_token = page.finish(&mut rows, |t| t.id.clone());
        let mut entries = Vec::with_capacity(rows.len());
        for task in &rows {
            let votes = store::votes(&mut *tx, &task.id).await?;
            entries.push(MinutesEntry {
                task_id: task.id.clone(),
                household: self.shown_household(&mut tx, task).await?,
                rule_code: task.rule_code.clone(),
                points: task.points,
                decision: decision_proto(task),
                votes: votes.iter().map(vote_proto).collect(),
            });
        }
        Ok(ListMinutesResponse { entries, next_page_token })
    }

    /// The village's disclosure list now: approved records in their period, households masked.
    pub async fn disclosures(&self, org_node_id: &str) -> Result<ListDisclosuresResponse> {
        let now = jiaxin_kit::time::now_micros();
        let mut tx = self.db.begin_read().await?;
        let path = self.village_path(&mut tx, org_node_id).await?;
        let mut disclosures = Vec::new();
        for task in store::disclosed_under(&mut *tx, &path, now).await? {
            let points = if task.outcome == jiaxin_proto::council::ReviewOutcome::Amended as i64 {
                task.amended_points * task.points.signum()
            } else {
                task.points
            };
            disclosures.push(Disclosure {
                task_id: task.id.clone(),
                household: self.shown_household(&mut tx, &task).await?,
                rule_code: task.rule_code.clone(),
                points,
                from: task.decided_at.map(to_timestamp),
                until: task.disclosed_until.map(to_timestamp),
            });
        }
        Ok(ListDisclosuresResponse { disclosures })
    }

    pub async fn verify_audit(&self, caller: &Caller) -> Result<VerifyAuditLogResponse> {
        if !caller.has_any_role(access::VERIFIERS) {
            return Err(CouncilError::PermissionDenied);
        }
        let mut tx = self.db.begin_read().await?;
        let checked = jiaxin_kit::audit::verify(&mut tx).await?;
        Ok(VerifyAuditLogResponse {
            intact: checked.intact,
            entries_checked: checked.entries_checked,
            broken_seq: checked.broken_seq,
        })
    }

    /// Reminds of tasks past their deadline, closes disclosure periods that ended and escalates
    /// objections unanswered in 20 days, once each.
    pub async fn tick(&self, now: i64) -> Result<usize> {
        let mut tx = self.db.begin().await?;
        let overdue = store::take_overdue(&mut *tx, now).await?;
        for task in &overdue {
            let village = path_ids(&task.path).iter().rev().nth(1).map(|s| (*s).to_owned()).unwrap_or_default();
            let event =
                ReviewOverdue { review_id: task.id.clone(), record_id: task.record_id.clone(), org_node_id: village };
            self.outbox.write(&mut tx, &task.household_id, &event).await?;
        }
        let closed = store::take_closed_disclosures(&mut *tx, now).await?;
        for task in &closed {
            let event = DisclosureClosed {
                review_id: task.id.clone(),
                record_id: task.record_id.clone(),
                household_id: task.household_id.clone(),
            };
            self.outbox.write(&mut tx, &task.household_id, &event).await?;
        }
        let escalated = self.escalate_overdue_objections(&mut tx, now).await?;
        tx.commit().await?;
        let changed = overdue.len() + closed.len() + escalated;
        if changed > 0 {
            self.outbox.wake();
        }
        Ok(changed)
    }
}

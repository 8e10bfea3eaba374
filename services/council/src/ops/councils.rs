//! Councils per village or community, their voting rules and their members' terms.

use jiaxin_kit::{
    auth::Caller,
    error::Violations,
    time::{now_micros, parse_date},
};
use jiaxin_proto::{
    council::{Council as CouncilProto, Member, MemberKind, SaveCouncilRequest, SeatMemberRequest},
    identity::OrgNodeKind,
};

use super::{Council, audit, path_ids};
use crate::{
    domain::access,
    error::{CouncilError, Result},
    store::{self, CouncilRow, MemberRow},
};

const COUNCIL: &str = "信用议事会";
/// Adverse records expire within five years at most: no wait may be longer.
const MAX_REPAIR_WAIT_DAYS: i32 = 1825;
/// Default waits before a household may apply for repair, by severity class: minor, general,
/// serious (after the deduction took effect).
const DEFAULT_REPAIR_WAIT_DAYS: [i64; 3] = [30, 90, 365];

fn or_default(days: i32, default: i64) -> i64 {
    if days == 0 { default } else { i64::from(days) }
}
const NODE: &str = "村(社区)";

fn member_proto(m: &MemberRow) -> Member {
    Member {
        account_id: m.account_id.clone(),
        display_name: m.display_name.clone(),
        kind: m.kind as i32,
        term_from: m.term_from.clone(),
        term_to: m.term_to.clone(),
    }
}

fn council_proto(c: &CouncilRow, members: &[MemberRow]) -> CouncilProto {
    CouncilProto {
        id: c.id.clone(),
        org_node_id: c.org_node_id.clone(),
        name: c.name.clone(),
        quorum: c.quorum as i32,
        majority_permille: c.majority_permille as i32,
        review_days: c.review_days as i32,
        members: members.iter().map(member_proto).collect(),
        repair_wait_days_minor: c.repair_wait_days_minor as i32,
        repair_wait_days_general: c.repair_wait_days_general as i32,
        repair_wait_days_serious: c.repair_wait_days_serious as i32,
    }
}

fn validate_council(req: &SaveCouncilRequest) -> Result<()> {
    let mut v = Violations::new();
    v.require("org_node_id", &req.org_node_id);
    if req.name.trim().is_empty() || req.name.chars().count() > 100 {
        v.add("name", "必填,不超过100字 / required, at most 100 characters");
    }
    if !(1..=50).contains(&req.quorum) {
        v.add("quorum", "1–50 人 / 1 to 50 votes");
    }
    if !(501..=1000).contains(&req.majority_permille) {
        v.add("majority_permille", "501–1000(过半至全票)/ from more than half to all");
    }
    if !(1..=60).contains(&req.review_days) {
        v.add("review_days", "1–60 天 / 1 to 60 days");
    }
    for (field, days) in [
        ("repair_wait_days_minor", req.repair_wait_days_minor),
        ("repair_wait_days_general", req.repair_wait_days_general),
        ("repair_wait_days_serious", req.repair_wait_days_serious),
    ] {
        if !(0..=MAX_REPAIR_WAIT_DAYS).contains(&days) {
            v.add(field, "0(默认)至1825天 / 0 (the default) to 1825 days");
        }
    }
    Ok(v.into_result()?)
}

impl Council {
    /// The village or community, when the caller organises inside its scope.
    async fn organised_node(&self, tx: &mut jiaxin_kit::storage::Tx, caller: &Caller, id: &str) -> Result<()> {
        let (path, kind) = store::org_node(&mut **tx, id).await?.ok_or(CouncilError::NotFound(NODE))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(CouncilError::NotFound(NODE));
        }
        if kind != OrgNodeKind::Village as i64 && kind != OrgNodeKind::Community as i64 {
            return Err(CouncilError::invalid(
                "org_node_id",
                "议事会设在村或社区 / councils sit in villages and communities",
            ));
        }
        Ok(())
    }

    pub async fn save_council(&self, caller: &Caller, req: SaveCouncilRequest) -> Result<CouncilProto> {
        if !caller.has_any_role(access::ORGANISERS) {
            return Err(CouncilError::PermissionDenied);
        }
        validate_council(&req)?;
        let node = req.org_node_id.trim();
        let mut tx = self.db.begin().await?;
        self.organised_node(&mut tx, caller, node).await?;
        let existing = store::council_of_node(&mut *tx, node).await?;
        let row = CouncilRow {
            id: existing.map(|c| c.id).unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            org_node_id: node.to_owned(),
            name: req.name.trim().to_owned(),
            quorum: i64::from(req.quorum),
            majority_permille: i64::from(req.majority_permille),
            review_days: i64::from(req.review_days),
            repair_wait_days_minor: or_default(req.repair_wait_days_minor, DEFAULT_REPAIR_WAIT_DAYS[0]),
            repair_wait_days_general: or_default(req.repair_wait_days_general, DEFAULT_REPAIR_WAIT_DAYS[1]),
            repair_wait_days_serious: or_default(req.repair_wait_days_serious, DEFAULT_REPAIR_WAIT_DAYS[2]),
        };
        store::save_council(&mut *tx, &row, now_micros()).await?;
        let details =
            format!("quorum={} majority={}‰ review_days={}", row.quorum, row.majority_permille, row.review_days);
        audit(&mut tx, caller.account_id(), "council.saved", &row.id, &details).await?;
        let members = store::members(&mut *tx, &row.id).await?;
        tx.commit().await?;
        Ok(council_proto(&row, &members))
    }

    pub async fn get_council(&self, caller: &Caller, org_node_id: &str) -> Result<CouncilProto> {
        if !caller.has_any_role(access::READERS) {
            return Err(CouncilError::PermissionDenied);
        }
        let mut tx = self.db.begin_read().await?;
        let (path, _) = store::org_node(&mut *tx, org_node_id.trim()).await?.ok_or(CouncilError::NotFound(NODE))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(CouncilError::NotFound(NODE));
        }
        let council =
            store::council_of_node(&mut *tx, org_node_id.trim()).await?.ok_or(CouncilError::NotFound(COUNCIL))?;
        let members = store::members(&mut *tx, &council.id).await?;
        Ok(council_proto(&council, &members))
    }

    /// Seats a member (an account with the council-member role, which identity issues) for a term.
    pub async fn seat_member(&self, caller: &Caller, req: SeatMemberRequest) -> Result<CouncilProto> {
        if !caller.has_any_role(access::ORGANISERS) {
            return Err(CouncilError::PermissionDenied);
        }
        let member = req.member.unwrap_or_default();
        let mut v = Violations::new();
        v.require("org_node_id", &req.org_node_id);
        v.require("member.account_id", &member.account_id);
        if member.display_name.trim().is_empty() || member.display_name.chars().count() > 50 {
            v.add("member.display_name", "必填,不超过50字 / required, at most 50 characters");
        }
        if !matches!(MemberKind::try_from(member.kind), Ok(k) if k != MemberKind::Unspecified) {
            v.add(
                "member.kind",
                "乡贤、村干部、党员或村民代表 / a local worthy, cadre, party member or representative",
            );
        }
        let from = parse_date(&member.term_from);
        let to = parse_date(&member.term_to);
        if from.is_none() {
            v.add("member.term_from", "日期格式为 YYYY-MM-DD / a date, YYYY-MM-DD");
        }
        match to {
            None => v.add("member.term_to", "日期格式为 YYYY-MM-DD / a date, YYYY-MM-DD"),
            Some(to) if from.is_some_and(|from| to < from) => {
                v.add("member.term_to", "不能早于任期开始 / before the term starts")
            }
            Some(_) => {}
        }
        v.into_result()?;
        let node = req.org_node_id.trim();
        let mut tx = self.db.begin().await?;
        self.organised_node(&mut tx, caller, node).await?;
        let council = store::council_of_node(&mut *tx, node).await?.ok_or(CouncilError::NotFound(COUNCIL))?;
        let row = MemberRow {
            account_id: member.account_id.trim().to_owned(),
            display_name: member.display_name.trim().to_owned(),
            kind: i64::from(member.kind),
            term_from: member.term_from.clone(),
            term_to: member.term_to.clone(),
        };
        store::seat_member(&mut *tx, &council.id, &row).await?;
        let details = format!("member={} term={}..{}", row.account_id, row.term_from, row.term_to);
        audit(&mut tx, caller.account_id(), "council.member_seated", &council.id, &details).await?;
        let members = store::members(&mut *tx, &council.id).await?;
        tx.commit().await?;
        Ok(council_proto(&council, &members))
    }
}

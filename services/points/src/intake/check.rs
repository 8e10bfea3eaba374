//! One item's checks, in memory against what the batch knows: the same checks, in the same
//! order, with the same errors, whether the item came alone or with thousands of others.

use jiaxin_kit::{
    auth::{Caller, Role},
    error::Violations,
};
use jiaxin_proto::points::{RecordInput, RecordStatus, RuleKind};

use super::{Accepted, known::Known};
use crate::{
    UnpledgedRecords,
    domain::{access, score::DAY_MICROS},
    error::{PointsError, Result},
    ops::{HOUSEHOLD, path_ids, timestamp_micros},
    pledge::Gate,
    pledge::gate,
    store::RecordRow,
};

/// Submissions may be stamped a little ahead of the server's clock (a phone's clock drifts).
const CLOCK_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

pub(crate) enum Verdict {
    /// A retry: the record this request id made before.
    Earlier(Box<RecordRow>),
    New(Box<Accepted>),
}

fn validate_fields(input: &RecordInput, now: i64) -> Result<i64> {
    let mut v = Violations::new();
    v.require("request_id", &input.request_id);
    v.require("household_id", &input.household_id);
    v.require("rule_code", &input.rule_code);
    let occurred_at = timestamp_micros(&input.occurred_at);
    match occurred_at {
        None => v.add("occurred_at", "必填 / required"),
        Some(at) if at > now + CLOCK_SKEW_MICROS => v.add("occurred_at", "不能晚于现在 / cannot be in the future"),
        Some(_) => {}
    }
    if input.evidence.iter().any(|e| e.trim().is_empty() || e.contains('\n') || e.len() > 512) {
        v.add("evidence", "每项为一行、不超过512字符的引用 / one-line references of at most 512 characters");
    }
    if input.note.chars().count() > 500 || input.place.chars().count() > 200 {
        v.add(if input.place.chars().count() > 200 { "place" } else { "note" }, "过长 / too long");
    }
    if input.points < 0 {
        v.add("points", "填写正数,加减由规则决定 / unsigned: the rule says bonus or deduction");
    }
    v.into_result()?;
    Ok(occurred_at.unwrap_or(now))
}

/// The first field in which a retried submission differs from the record its key made.
fn differing_field(earlier: &RecordRow, input: &RecordInput, occurred_at: i64) -> Option<&'static str> {
    let evidence: Vec<&str> = input.evidence.iter().map(|e| e.trim()).collect();
    let magnitude_matches = input.points == 0 || input.points == earlier.points.abs();
    [
        ("household_id", earlier.household_id == input.household_id),
        ("resident_id", earlier.resident_id.as_deref().unwrap_or("") == input.resident_id),
        ("rule_code", earlier.rule_code == input.rule_code.trim()),
        ("points", magnitude_matches),
        ("occurred_at", earlier.occurred_at == occurred_at),
        ("place", earlier.place == input.place.trim()),
        ("evidence", earlier.evidence == evidence.join("\n")),
        ("note", earlier.note == input.note.trim()),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(field, _)| field)
}

pub(crate) fn check(
    known: &Known,
    caller: &Caller,
    input: &RecordInput,
    now: i64,
    unpledged: UnpledgedRecords,
) -> Result<Verdict> {
    let occurred_at = validate_fields(input, now)?;

    // A retry returns the first result; the same key with other content is refused by field.
    if let Some(earlier) = known.earlier.get(&input.request_id) {
        return match differing_field(earlier, input, occurred_at) {
            None => Ok(Verdict::Earlier(Box::new(earlier.clone()))),
            Some(field) => Err(PointsError::invalid(
                "request_id",
                format!("该请求号已用于另一条记录,{field} 不同 / reused with a different {field}"),
            )),
        };
    }

    let rule = known
        .rules
        .get(input.rule_code.trim())
        .filter(|r| r.retired == 0)
        .ok_or_else(|| PointsError::invalid("rule_code", "规则不存在或已停用 / no such rule in force"))?;
    let recorders: Vec<Role> = rule.recorders.split(',').filter_map(access::recorder_role).collect();
    let as_collector = recorders.iter().any(|r| *r != Role::Resident && caller.has_role(*r));
    let self_report = !as_collector && recorders.contains(&Role::Resident) && caller.has_role(Role::Resident);
    if !as_collector && !self_report {
        return Err(PointsError::PermissionDenied);
    }

    let household = known.households.get(&input.household_id).ok_or(PointsError::NotFound(HOUSEHOLD))?;
    let path = path_ids(&household.path);
    let in_scope = if self_report {
        caller.0.rid.as_deref().is_some_and(|rid| known.is_member(&input.household_id, rid))
    } else {
        caller.covers(&path)
    };
    if !in_scope {
        return Err(PointsError::NotFound(HOUSEHOLD));
    }
    if !rule.scope_node_id.is_empty() && !path.contains(&rule.scope_node_id.as_str()) {
        return Err(PointsError::invalid("rule_code", "该村规不适用于此户所在村(居)/ a local rule of another village"));
    }
    if !household.active {
        return Err(PointsError::Precondition("该户已注销 / the household is dissolved".into()));
    }
    if !input.resident_id.is_empty() && !known.is_member(&input.household_id, &input.resident_id) {
        return Err(PointsError::invalid("resident_id", "不是该户现有成员 / not a current member of the household"));
    }

    let magnitude = match (rule.points_min == rule.points_max, input.points) {
        (true, 0) => rule.points_min,
        (_, p) if p >= rule.points_min && p <= rule.points_max => p,
        _ => {
            return Err(PointsError::invalid(
                "points",
                format!(
                    "应在 {}–{} 之间 / must be within {}–{}",
                    rule.points_min, rule.points_max, rule.points_min, rule.points_max
                ),
            ));
        }
    };
    if rule.evidence_required == 1 && input.evidence.is_empty() {
        return Err(PointsError::invalid("evidence", "该规则须附证据 / this rule requires evidence"));
    }
    let year = jiaxin_kit::time::to_datetime(occurred_at).map(|d| i64::from(chrono::Datelike::year(&d))).unwrap_or(0);
    if rule.yearly_cap > 0 {
        let used = known.used(&input.household_id, &rule.code, year);
        if used + magnitude > rule.yearly_cap {
            return Err(PointsError::invalid(
                "points",
                format!(
                    "超过该规则年度上限 {} 分(已用 {})/ over the yearly cap of {} (used {})",
                    rule.yearly_cap, used, rule.yearly_cap, used
                ),
            ));
        }
    }

    let signed = if rule.kind == RuleKind::Deduction as i64 { -magnitude } else { magnitude };
    let needs_review = rule.review_required == 1 || self_report;
    let held = gate(known.pledges.get(&input.household_id).copied(), unpledged)? == Gate::Hold;
    let status = match (held, needs_review) {
        (true, _) => RecordStatus::Held,
        (false, true) => RecordStatus::PendingReview,
        (false, false) => RecordStatus::Effective,
    };
    let effective = status == RecordStatus::Effective;
    let row = RecordRow {
        id: uuid::Uuid::now_v7().to_string(),
        household_id: input.household_id.clone(),
        resident_id: (!input.resident_id.is_empty()).then(|| input.resident_id.clone()),
        rule_code: rule.code.clone(),
        rule_version: rule.version,
        points: signed,
        status: status as i64,
        occurred_at,
        place: input.place.trim().to_owned(),
        evidence: input.evidence.iter().map(|e| e.trim()).collect::<Vec<_>>().join("\n"),
        note: input.note.trim().to_owned(),
        recorded_by: caller.account_id().to_owned(),
        submitted_at: now,
        effective_from: effective.then_some(now),
        expires_at: effective.then_some(now + rule.counts_days * DAY_MICROS),
        decision_reason: String::new(),
        request_id: input.request_id.clone(),
        year,
        needs_review: i64::from(needs_review),
        frozen: 0,
    };
    Ok(Verdict::New(Box::new(Accepted {
        row,
        rule: rule.clone(),
        status,
        grid_id: household.grid_id.clone(),
        org_path: path.into_iter().map(str::to_owned).collect(),
    })))
}

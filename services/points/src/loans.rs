//! Loan outcomes the bank reports, turned into records under the village rules: repaying on time
//! earns A07 (按期归还银行贷款, +5, counts at once); an overdue loan opens A10 (恶意拖欠银行贷款,
//! a deduction) at its lowest points, which like every deduction waits for the council — the
//! council rejects it when the default was not wilful, or amends the points. Other outcomes (a
//! line granted, a loan disbursed or written off) change no score.
//!
//! The record goes through the same intake as a collector's, inside the event's transaction,
//! recorded by `bank:<institution>` acting as the village's cadre (the rules' recorder): the
//! household's scope, pledge policy, yearly caps and idempotency (the event id is the request
//! id) all apply. A record the intake refuses (a cap reached, a withdrawn pledge) is logged and
//! skipped: the outcome still stands at the bank.

use std::sync::Arc;

use jiaxin_kit::{
    auth::{Caller, Claims, ISSUER, Role},
    storage::Tx,
    time::{china_date, parse_date},
};
use jiaxin_proto::{
    bank::{LoanEventKind, LoanEventReported},
    points::RecordInput,
};

use crate::{error::Result, ops::Points};

/// The rule and points a loan outcome becomes, if any.
fn rule_for(kind: LoanEventKind) -> Option<(&'static str, i64)> {
    match kind {
        LoanEventKind::RepaidOnTime => Some(("A07", 5)),
        LoanEventKind::Overdue => Some(("A10", 30)),
        _ => None,
    }
}

/// Noon in China on the reported day (a date without a time), or now.
fn occurred_at(day: &str, now: i64) -> i64 {
    parse_date(day)
        .and_then(|d| d.and_hms_opt(4, 0, 0))
        .map(|at| at.and_utc().timestamp_micros())
        .filter(|at| china_date(*at).is_some() && *at <= now)
        .unwrap_or(now)
}

impl Points {
    pub(crate) async fn apply_loan_event(&self, tx: &mut Tx, reported: &LoanEventReported) -> Result<()> {
        let Some(event) = &reported.event else { return Ok(()) };
        let kind = LoanEventKind::try_from(event.kind).unwrap_or(LoanEventKind::Unspecified);
        let Some((rule, points)) = rule_for(kind) else { return Ok(()) };
        // The household's village: the grid's parent on the path the bank saw.
        let Some(village) = reported.org_path.iter().rev().nth(1) else { return Ok(()) };
        let caller = Caller(Arc::new(Claims {
            iss: ISSUER.into(),
            sub: format!("bank:{}", event.institution_id),
            roles: vec![Role::VillageCadre],
            org: village.clone(),
            rid: None,
            iat: 0,
            exp: i64::MAX,
            jti: event.id.clone(),
        }));
        let now = jiaxin_kit::time::now_micros();
        let input = RecordInput {
            request_id: format!("bank:{}", event.id),
            household_id: event.household_id.clone(),
            rule_code: rule.into(),
            points,
            occurred_at: Some(jiaxin_kit::time::to_timestamp(occurred_at(&event.occurred_on, now))),
            evidence: vec![format!("bank:{}/{}", event.institution_id, event.loan_ref)],
            note: format!("银行报送 / reported by the bank: {}", kind.as_str_name()),
            ..Default::default()
        };
        for answer in self.intake_in(tx, &caller, std::slice::from_ref(&input)).await? {
            if let Err(error) = answer {
                tracing::info!(event_id = %event.id, %error, "loan outcome not recorded");
            }
        }
        Ok(())
    }
}

//! Credit lines and loan outcomes reported back by the bank: published for points (an on-time
//! repayment can earn a bonus; a default goes to the council as a deduction) and benefits (a
//! village's non-performing ratio).

use jiaxin_kit::{
    auth::Caller,
    error::Violations,
    sql::path_ids,
    time::{parse_date, to_timestamp},
};
use jiaxin_proto::bank::{LoanEvent, LoanEventKind, LoanEventReported, ReportLoanEventRequest};

use super::{Bank, HOUSEHOLD, china_today, now};
use crate::{
    error::{BankError, Result},
    store::{
        consents::{self as store, LoanEventRow},
        readmodel, registry,
    },
};

fn loan_proto(l: &LoanEventRow) -> LoanEvent {
    LoanEvent {
        id: l.id.clone(),
        institution_id: l.institution_id.clone(),
        household_id: l.household_id.clone(),
        loan_ref: l.loan_ref.clone(),
        kind: l.kind as i32,
        amount_fen: l.amount_fen,
        occurred_on: l.occurred_on.clone(),
        reported_by: l.reported_by.clone(),
        reported_at: Some(to_timestamp(l.reported_at)),
        business_id: l.business_id.clone(),
    }
}

fn validate(request: &ReportLoanEventRequest, today: &str) -> Result<LoanEventKind> {
    let mut v = Violations::new();
    v.require("household_id", &request.household_id);
    v.require("loan_ref", &request.loan_ref);
    v.require("client_key", &request.client_key);
    let kind = LoanEventKind::try_from(request.kind).unwrap_or(LoanEventKind::Unspecified);
    if kind == LoanEventKind::Unspecified {
        v.add("kind", "须指定事件类型 / a kind is required");
    }
    let needs_amount = matches!(kind, LoanEventKind::LineGranted | LoanEventKind::Disbursed);
    if request.amount_fen < 0 || (needs_amount && request.amount_fen == 0) {
        v.add("amount_fen", "金额须为正的分 / a positive amount in fen");
    }
    match parse_date(&request.occurred_on) {
        None => v.add("occurred_on", "须为 YYYY-MM-DD / must be YYYY-MM-DD"),
        Some(day) if parse_date(today).is_some_and(|today| day > today) => {
            v.add("occurred_on", "不能是将来 / must not be in the future")
        }
        Some(_) => {}
    }
    v.into_result()?;
    Ok(kind)
}

impl Bank {
    /// Reported by the household's institution (one with a consent in force from it), once per
    /// client key: a retry returns the first report; the key with other content is refused.
    pub async fn report_loan_event(&self, caller: &Caller, request: ReportLoanEventRequest) -> Result<LoanEvent> {
        let at = now();
        let kind = validate(&request, &china_today(at))?;
        let mut tx = self.db.begin().await?;
        let institution = self.officer_institution(&mut tx, caller).await?;
        if !request.institution_id.is_empty() && request.institution_id != institution {
            return Err(BankError::PermissionDenied);
        }
        if let Some(earlier) = store::loan_event_by_key(&mut *tx, caller.account_id(), &request.client_key).await? {
            let same = earlier.household_id == request.household_id
                && earlier.loan_ref == request.loan_ref
                && earlier.kind == i64::from(request.kind)
                && earlier.amount_fen == request.amount_fen
                && earlier.occurred_on == request.occurred_on
                && earlier.business_id == request.business_id;
            return if same {
                Ok(loan_proto(&earlier))
            } else {
                Err(BankError::invalid("client_key", "该请求号已用于另一事件 / reused with different content"))
            };
        }
        let (path, _) =
            readmodel::household(&mut *tx, &request.household_id).await?.ok_or(BankError::NotFound(HOUSEHOLD))?;
        if !store::any_usable(&mut *tx, &institution, &request.household_id, &china_today(at)).await? {
            return Err(BankError::NotFound(HOUSEHOLD));
        }
        if !request.business_id.is_empty()
            && registry::business(&mut *tx, &request.business_id)
                .await?
                .is_none_or(|b| b.household_id != request.household_id)
        {
            return Err(BankError::invalid("business_id", "该户无此经营主体 / no such business of the household"));
        }
        let row = LoanEventRow {
            id: uuid::Uuid::now_v7().to_string(),
            institution_id: institution,
            household_id: request.household_id.clone(),
            loan_ref: request.loan_ref.trim().to_owned(),
            kind: kind as i64,
            amount_fen: request.amount_fen,
            occurred_on: request.occurred_on.clone(),
            reported_by: caller.account_id().to_owned(),
            reported_at: at,
            client_key: request.client_key.clone(),
            business_id: request.business_id.clone(),
        };
        store::insert_loan_event(&mut *tx, &row).await?;
        let event = loan_proto(&row);
        let published = LoanEventReported {
            event: Some(event.clone()),
            org_path: path_ids(&path).into_iter().map(str::to_owned).collect(),
        };
        self.outbox.write(&mut tx, &row.household_id, &published).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(event)
    }
}

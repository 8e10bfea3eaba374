//! Agricultural businesses (新型农业经营主体: 种粮大户, 家庭农场, 合作社): a registry linked to
//! households. A business's line of credit rests on its household's score, so its report is the
//! household's, under the household's consent, with the business's registration beside it.

use jiaxin_kit::{auth::Caller, error::Violations, sql::path_ids, time::to_timestamp};
use jiaxin_proto::bank::{Business, BusinessKind, GetBusinessReportResponse};

use super::{Bank, CONSENT, HOUSEHOLD, now};
use crate::{
    domain::access,
    error::{BankError, Result},
    store::{
        readmodel,
        registry::{self as store, BusinessRow},
    },
};

pub(crate) fn business_proto(b: &BusinessRow) -> Business {
    Business {
        id: b.id.clone(),
        name: b.name.clone(),
        kind: b.kind as i32,
        household_id: b.household_id.clone(),
        credit_code: b.credit_code.clone(),
        scale_mu: b.scale_mu,
        updated_at: Some(to_timestamp(b.updated_at)),
    }
}

/// 统一社会信用代码: 18 characters of digits and capital letters (the check digit is the
/// regulator's to verify).
fn valid_credit_code(code: &str) -> bool {
    code.len() == 18 && code.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

impl Bank {
    pub async fn save_business(&self, caller: &Caller, business: Option<Business>) -> Result<Business> {
        if !caller.has_any_role(access::BUSINESS_REGISTRARS) {
            return Err(BankError::PermissionDenied);
        }
        let b = business.ok_or_else(|| BankError::invalid("business", "必填 / required"))?;
        let mut v = Violations::new();
        v.require("business.name", &b.name);
        v.require("business.household_id", &b.household_id);
        if BusinessKind::try_from(b.kind).unwrap_or(BusinessKind::Unspecified) == BusinessKind::Unspecified {
            v.add("business.kind", "须为种粮大户、家庭农场或合作社 / GRAIN_GROWER, FAMILY_FARM or COOPERATIVE");
        }
        if !b.credit_code.is_empty() && !valid_credit_code(&b.credit_code) {
            v.add("business.credit_code", "统一社会信用代码为 18 位数字或大写字母 / 18 digits or capital letters");
        }
        if b.scale_mu < 0 {
            v.add("business.scale_mu", "不能为负 / must not be negative");
        }
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let (path, _) = readmodel::household(&mut *tx, &b.household_id).await?.ok_or(BankError::NotFound(HOUSEHOLD))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(BankError::NotFound(HOUSEHOLD));
        }
        let id = if b.id.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            store::business(&mut *tx, &b.id).await?.ok_or(BankError::NotFound("business"))?.id
        };
        let row = BusinessRow {
            id,
            name: b.name.trim().to_owned(),
            kind: i64::from(b.kind),
            household_id: b.household_id.clone(),
            credit_code: b.credit_code.clone(),
            scale_mu: b.scale_mu,
            registered_by: caller.account_id().to_owned(),
            updated_at: now(),
        };
        store::save_business(&mut *tx, &row).await?;
        tx.commit().await?;
        Ok(business_proto(&row))
    }

    /// The linked household's report under its consent; a business not linked to the consent's
    /// household reads like a consent that is not there.
    pub async fn business_report(
        &self,
        caller: &Caller,
        consent_id: &str,
        business_id: &str,
    ) -> Result<GetBusinessReportResponse> {
        // Who may ask at all is settled before the lookup: a refusal must not tell whether the
        // business exists (the authorisation matrix found it did).
        let mut read = self.db.begin_read().await?;
        self.officer_institution(&mut read, caller).await?;
        let business = store::business(&mut *read, business_id).await?.ok_or(BankError::NotFound(CONSENT))?;
        read.rollback().await?;
        let proto = business_proto(&business);
        let report = self.credit_report_for(caller, consent_id, Some(business)).await?;
        Ok(GetBusinessReportResponse { business: Some(proto), report: Some(report) })
    }
}

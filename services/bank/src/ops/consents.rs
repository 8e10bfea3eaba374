//! Consents: a household's head grants an institution consent for a purpose until a date (in
//! the app, or on a signed paper form an officer enters), may revoke it at any time, and sees
//! every query made under it.

use jiaxin_kit::{
    auth::{Caller, Role},
    error::Violations,
    sql::path_ids,
    time::{parse_date, to_timestamp},
};
use jiaxin_proto::bank::{
    AuthoriseMemberRequest, Consent, ConsentChannel, ConsentGranted, ConsentRevoked, GrantConsentRequest, Purpose,
    QueryRecord,
};

use super::{Bank, CONSENT, HOUSEHOLD, china_today, now};
use crate::{
    domain::access,
    error::{BankError, Result},
    store::{
        consents::{self as store, ConsentRow, QueryRow},
        readmodel, registry,
    },
};

/// The longest a consent may run, in days (about three years).
const MAX_DAYS: i64 = 3 * 366;

pub(crate) fn consent_proto(c: &ConsentRow, queries: &[QueryRow]) -> Consent {
    Consent {
        id: c.id.clone(),
        household_id: c.household_id.clone(),
        institution_id: c.institution_id.clone(),
        purpose: c.purpose as i32,
        valid_until: c.valid_until.clone(),
        channel: c.channel as i32,
        scan_reference: c.scan_reference.clone(),
        granted_by: c.granted_by.clone(),
        granted_at: Some(to_timestamp(c.granted_at)),
        revoked_at: c.revoked_at.map(to_timestamp),
        queries: queries.iter().map(query_proto).collect(),
    }
}

fn query_proto(q: &QueryRow) -> QueryRecord {
    QueryRecord {
        id: q.id.clone(),
        institution_id: q.institution_id.clone(),
        officer_account_id: q.officer_account_id.clone(),
        purpose: q.purpose as i32,
        at: Some(to_timestamp(q.at)),
        returned: q.returned.clone(),
    }
}

/// Whether a birth date (YYYY-MM-DD; unknown counts as not adult) makes an adult on `at`.
fn adult(birth_date: &str, at: i64) -> bool {
    match (parse_date(birth_date), jiaxin_kit::time::china_date(at)) {
        (Some(birth), Some(today)) => jiaxin_kit::time::age_on(birth, today) >= jiaxin_kit::time::ADULT_AGE,
        _ => false,
    }
}

fn validate(request: &GrantConsentRequest, today: &str) -> Result<()> {
    let mut v = Violations::new();
    v.require("household_id", &request.household_id);
    v.require("institution_id", &request.institution_id);
    if Purpose::try_from(request.purpose).unwrap_or(Purpose::Unspecified) == Purpose::Unspecified {
        v.add("purpose", "须指定用途 / a purpose is required");
    }
    match (parse_date(&request.valid_until), parse_date(today)) {
        (None, _) => v.add("valid_until", "须为 YYYY-MM-DD / must be YYYY-MM-DD"),
        (Some(until), Some(today)) if until < today => v.add("valid_until", "不能早于今天 / must not be in the past"),
        (Some(until), Some(today)) if (until - today).num_days() > MAX_DAYS => {
            v.add("valid_until", "授权最长三年 / at most three years")
        }
        _ => {}
    }
    Ok(v.into_result()?)
}

impl Bank {
    pub async fn grant_consent(&self, caller: &Caller, request: GrantConsentRequest) -> Result<Consent> {
        let at = now();
        validate(&request, &china_today(at))?;
        let mut tx = self.db.begin().await?;
        // Who may grant is settled before the household is read, so a caller who may not cannot
        // learn from the answer whether the household exists (tests/system/authz.rs found the refusal
        // coming after the lookup). In the app the head grants as themselves; on paper an officer
        // of the institution enters the head's signed form.
        let resident = caller.has_role(Role::Resident);
        if !resident && self.officer_institution(&mut tx, caller).await? != request.institution_id {
            return Err(BankError::PermissionDenied);
        }
        let (_, head) =
            readmodel::household(&mut *tx, &request.household_id).await?.ok_or(BankError::NotFound(HOUSEHOLD))?;
        let (channel, granted_by) = if resident {
            let rid = caller.0.rid.clone().unwrap_or_default();
            if !self.speaks_for(&mut tx, &request.household_id, &head, &rid, at).await? {
                return Err(BankError::NotFound(HOUSEHOLD));
            }
            (ConsentChannel::App, rid)
        } else {
            let mut v = Violations::new();
            v.require("scan_reference", &request.scan_reference);
            if request.signer_resident_id != head {
                v.add("signer_resident_id", "须由户主签署 / the household's head must sign");
            }
            v.into_result()?;
            (ConsentChannel::Paper, head)
        };
        if registry::institution_name(&mut *tx, &request.institution_id).await?.is_none() {
            return Err(BankError::invalid("institution_id", "机构不存在 / no such institution"));
        }
        let row = ConsentRow {
            id: uuid::Uuid::now_v7().to_string(),
            household_id: request.household_id.clone(),
            institution_id: request.institution_id.clone(),
            purpose: i64::from(request.purpose),
            valid_until: request.valid_until.clone(),
            channel: channel as i64,
            scan_reference: request.scan_reference.trim().to_owned(),
            granted_by,
            entered_by: caller.account_id().to_owned(),
            granted_at: at,
            revoked_at: None,
        };
        store::insert_consent(&mut *tx, &row).await?;
        let consent = consent_proto(&row, &[]);
        self.outbox.write(&mut tx, &row.household_id, &ConsentGranted { consent: Some(consent.clone()) }).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(consent)
    }

    /// The household's head (or whoever granted it) revokes; it blocks the very next query.
    /// Revoking again returns the consent unchanged.
    pub async fn revoke_consent(&self, caller: &Caller, id: &str) -> Result<Consent> {
        let mut tx = self.db.begin().await?;
        let row = store::consent(&mut *tx, id).await?.ok_or(BankError::NotFound(CONSENT))?;
        let head = readmodel::household(&mut *tx, &row.household_id).await?.map(|(_, head)| head);
        let rid = caller.0.rid.as_deref();
        let household_side = caller.has_role(Role::Resident)
            && rid.is_some()
            && (rid == head.as_deref() || rid == Some(row.granted_by.as_str()));
        if !household_side && caller.account_id() != row.entered_by {
            return Err(BankError::NotFound(CONSENT));
        }
        let revoked_now = store::revoke(&mut *tx, id, now()).await?;
        let row = store::consent(&mut *tx, id).await?.ok_or(BankError::NotFound(CONSENT))?;
        if revoked_now {
            self.outbox
                .write(&mut tx, &row.household_id, &ConsentRevoked { consent: Some(consent_proto(&row, &[])) })
                .await?;
        }
        tx.commit().await?;
        self.outbox.wake();
        Ok(consent_proto(&row, &[]))
    }

    /// Whether a resident may grant and revoke the household's consents: its head, or a current
    /// adult member the head authorised.
    async fn speaks_for(
        &self,
        tx: &mut jiaxin_kit::storage::Tx,
        household_id: &str,
        head: &str,
        rid: &str,
        at: i64,
    ) -> Result<bool> {
        let Some((birth_date, authorised)) = readmodel::member(&mut **tx, household_id, rid).await? else {
            return Ok(false);
        };
        Ok(rid == head || (authorised && adult(&birth_date, at)))
    }

    /// The head authorises an adult member of the household for consents, or withdraws it.
    pub async fn authorise_member(&self, caller: &Caller, request: AuthoriseMemberRequest) -> Result<()> {
        let mut v = Violations::new();
        v.require("household_id", &request.household_id);
        v.require("resident_id", &request.resident_id);
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let (_, head) =
            readmodel::household(&mut *tx, &request.household_id).await?.ok_or(BankError::NotFound(HOUSEHOLD))?;
        if !caller.has_role(Role::Resident) || caller.0.rid.as_deref() != Some(head.as_str()) {
            return Err(BankError::NotFound(HOUSEHOLD));
        }
        let (birth_date, _) = readmodel::member(&mut *tx, &request.household_id, &request.resident_id)
            .await?
            .ok_or_else(|| BankError::invalid("resident_id", "不是本户成员 / not a member of the household"))?;
        if !request.withdraw && !adult(&birth_date, now()) {
            return Err(BankError::invalid("resident_id", "须为成年成员 / must be an adult member"));
        }
        readmodel::set_authorised(&mut *tx, &request.household_id, &request.resident_id, !request.withdraw).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The household's consents, newest first, each with every query made under it.
    pub async fn list_consents(&self, caller: &Caller, household_id: &str) -> Result<Vec<Consent>> {
        let mut tx = self.db.begin_read().await?;
        let (path, _) = readmodel::household(&mut *tx, household_id).await?.ok_or(BankError::NotFound(HOUSEHOLD))?;
        let member = match (caller.has_role(Role::Resident), caller.0.rid.as_deref()) {
            (true, Some(rid)) => readmodel::is_member(&mut *tx, household_id, rid).await?,
            _ => false,
        };
        let reader = caller.has_any_role(access::CONSENT_READERS) && caller.covers(&path_ids(&path));
        if !member && !reader {
            return Err(BankError::NotFound(HOUSEHOLD));
        }
        let mut consents = Vec::new();
        for row in store::consents_of(&mut *tx, household_id).await? {
            let queries = store::queries_of(&mut *tx, &row.id).await?;
            consents.push(consent_proto(&row, &queries));
        }
        Ok(consents)
    }
}

//! Signing, renewing and revoking a household's pledge, and the head's authorisation of members
//! to sign.

use jiaxin_kit::{
    auth::{Caller, Role},
    error::{ItemError, Violations},
    storage::Tx,
    time::{ADULT_AGE, age_on, china_date, from_timestamp, now_micros, parse_date, to_timestamp},
};
use jiaxin_proto::pledges::{
    BatchSignPledgesResponse, BatchSignResult, Channel, GetHouseholdPledgeResponse, PledgeRenewed, PledgeRevoked,
    PledgeSigned, PledgeState, SignPledgeRequest, SignPledgeResponse, Signature,
};

use super::{
    CLOCK_SKEW_MICROS, HOUSEHOLD, Pledges, household_for, is_own_household, signature_proto, state_of, template_proto,
    write_coverage,
};
use crate::{
    domain::{
        access,
        state::{CoverageDelta, path_ids, standing},
    },
    error::{PledgesError, Result},
    store::{self, HouseholdRow, SignatureRow},
};

const MAX_BATCH: usize = 10_000;
const MAX_SCAN_REFERENCE: usize = 256;
const MAX_REASON: usize = 500;

/// Checks that `resident_id` may sign (or revoke) for the household on `day`: a current, adult
/// member who is the head or authorised by the head. `field` names the request field.
async fn check_signer(
    tx: &mut Tx,
    household: &HouseholdRow,
    resident_id: &str,
    day: chrono::NaiveDate,
    field: &str,
) -> Result<()> {
    let birth = store::member_birth_date(&mut **tx, &household.id, resident_id)
        .await?
        .ok_or_else(|| PledgesError::invalid(field, "不是该户现有成员 / not a current member of the household"))?;
    let birth = parse_date(&birth)
        .ok_or_else(|| PledgesError::invalid(field, "出生日期不明,无法确认成年 / date of birth unknown"))?;
    if age_on(birth, day) < ADULT_AGE {
        return Err(PledgesError::invalid(field, "未成年人不能签署 / a minor cannot sign"));
    }
    if household.head_resident_id != resident_id
        && !store::authorised_signers(&mut **tx, &household.id).await?.iter().any(|id| id == resident_id)
    {
        return Err(PledgesError::invalid(
            field,
            "须为户主或经户主授权的成年成员 / must be the head or an adult member the head authorised",
        ));
    }
    Ok(())
}

/// Whether a signature of `version` replaces `previous`, the one in force: a later version does;
/// the same version only as a deliberate renewal (重新承诺) on another form signed after it —
/// the same form entered twice changes nothing.
fn supersedes(previous: &SignatureRow, version: i64, req: &SignPledgeRequest, signed_at: i64) -> Result<bool> {
    if previous.template_version != version {
        return Ok(previous.template_version < version);
    }
    let scan = req.scan_reference.trim();
    let same_form = signed_at == previous.signed_at || (!scan.is_empty() && scan == previous.scan_reference);
    if !req.renewal || same_form {
        return Ok(false);
    }
    if signed_at < previous.signed_at {
        return Err(PledgesError::invalid(
            "signed_at",
            "重新承诺须晚于现行承诺 / a renewal is signed after the pledge in force",
        ));
    }
    Ok(true)
}

fn validate(req: &SignPledgeRequest, now: i64) -> Result<(Channel, i64)> {
    let mut v = Violations::new();
    v.require("household_id", &req.household_id);
    v.require("signer_resident_id", &req.signer_resident_id);
    if req.template_version <= 0 {
        v.add("template_version", "必填,签署的版本号 / required: the version signed");
    }
    let channel = Channel::try_from(req.channel).unwrap_or(Channel::Unspecified);
    match channel {
        Channel::Unspecified => v.add("channel", "须为 App、纸质或会议 / app, paper or meeting"),
        Channel::Paper if req.scan_reference.trim().is_empty() => {
            v.add("scan_reference", "纸质承诺书须附扫描件编号 / a paper form needs its scan reference");
        }
        _ => {}
    }
    if req.scan_reference.chars().count() > MAX_SCAN_REFERENCE || req.scan_reference.contains('\n') {
        v.add("scan_reference", "一行,不超过256字符 / one line of at most 256 characters");
    }
    let signed_at = req.signed_at.as_ref().map(from_timestamp).unwrap_or(now);
    if signed_at > now + CLOCK_SKEW_MICROS {
        v.add("signed_at", "不能晚于现在 / cannot be in the future");
    } else if signed_at <= 0 {
        v.add("signed_at", "无效时间 / not a valid time");
    }
    v.into_result()?;
    Ok((channel, signed_at))
}

impl Pledges {
    pub async fn sign(&self, caller: &Caller, req: SignPledgeRequest) -> Result<SignPledgeResponse> {
        let mut tx = self.db.begin().await?;
        let mut delta = CoverageDelta::default();
        let answer = self.sign_in(&mut tx, caller, &req, &mut delta).await?;
        write_coverage(&mut tx, &mut delta).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(answer)
    }

    /// The whole batch in one transaction, each item in its own savepoint: a bad item is rolled
    /// back alone and answered with its error. Coverage is written once for the batch.
    pub async fn batch_sign(&self, caller: &Caller, items: Vec<SignPledgeRequest>) -> Result<BatchSignPledgesResponse> {
        if items.len() > MAX_BATCH {
            return Err(PledgesError::invalid("items", "每批最多10000条 / at most 10000 per batch"));
        }
        let mut response = BatchSignPledgesResponse::default();
        let mut batch_delta = CoverageDelta::default();
        let mut tx = self.db.begin().await?;
        for (index, item) in items.iter().enumerate() {
            let mut result = BatchSignResult { index: index as i32, ..Default::default() };
            let mut delta = CoverageDelta::default();
            sqlx::query("SAVEPOINT batch_item").execute(&mut *tx).await?;
            match self.sign_in(&mut tx, caller, item, &mut delta).await {
                Ok(answer) => {
                    sqlx::query("RELEASE SAVEPOINT batch_item").execute(&mut *tx).await?;
                    batch_delta.merge(delta);
                    if answer.created {
                        response.signed += 1
                    } else {
                        response.unchanged += 1
                    }
                    result.signature = answer.signature;
                    result.created = answer.created;
                }
                Err(PledgesError::Storage(error)) if jiaxin_kit::storage::is_transient(&error) => {
                    return Err(PledgesError::Storage(error));
                }
                Err(error) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT batch_item").execute(&mut *tx).await?;
                    sqlx::query("RELEASE SAVEPOINT batch_item").execute(&mut *tx).await?;
                    let failed = ItemError::from(tonic::Status::from(error));
                    (result.error_code, result.error_field, result.error_message) =
                        (failed.code, failed.field, failed.message);
                    response.failed += 1;
                }
            }
            response.results.push(result);
        }
        write_coverage(&mut tx, &mut batch_delta).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(response)
    }

    async fn sign_in(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        req: &SignPledgeRequest,
        delta: &mut CoverageDelta,
    ) -> Result<SignPledgeResponse> {
        let now = now_micros();
        let (channel, signed_at) = validate(req, now)?;
        let signer = req.signer_resident_id.trim();

        // Who collects it: a collector inside their scope (paper, meeting), or a member of the
        // household signing as themselves on the app.
        let household = store::household(&mut **tx, req.household_id.trim()).await?;
        let household = household.ok_or(PledgesError::NotFound(HOUSEHOLD))?;
        let by_collector = caller.has_any_role(access::COLLECTORS) && caller.covers(&path_ids(&household.path));
        if !by_collector {
            if !is_own_household(tx, caller, &household.id).await? {
                return Err(PledgesError::NotFound(HOUSEHOLD));
            }
            if caller.0.rid.as_deref() != Some(signer) {
                return Err(PledgesError::invalid(
                    "signer_resident_id",
                    "居民只能本人签署 / a resident signs only as themselves",
                ));
            }
            if channel != Channel::App {
                return Err(PledgesError::invalid("channel", "居民自助签署经 App / a resident signs on the app"));
            }
        } else if channel == Channel::App {
            return Err(PledgesError::invalid(
                "channel",
                "代收的承诺书为纸质或会议签署 / collected pledges are paper or meeting",
            ));
        }
        if household.active != 1 {
            return Err(PledgesError::Precondition("该户已注销 / the household is dissolved".into()));
        }

        let template = store::template_on_path(&mut **tx, &path_ids(&household.path)).await?.ok_or_else(|| {
            PledgesError::Precondition("本村(社区)尚未发布承诺书 / no pledge template published here yet".into())
        })?;
        let version = i64::from(req.template_version);
        if version > template.version {
            return Err(PledgesError::invalid(
                "template_version",
                format!("现行版本为第{}版 / the current version is {}", template.version, template.version),
            ));
        }
        let day =
            china_date(signed_at).ok_or_else(|| PledgesError::invalid("signed_at", "无效时间 / not a valid time"))?;
        check_signer(tx, &household, signer, day, "signer_resident_id").await?;
        let campaign_id = req.campaign_id.trim();
        if !campaign_id.is_empty() {
            self.check_campaign(tx, campaign_id, &household, day).await?;
        }

        // Under the household's lock, read its standing again: a concurrent signing may have
        // changed it since the checks above (PostgreSQL; SQLite's writer lock already serialises).
        store::lock_household(&mut **tx, &household.id).await?;
        let household = store::household(&mut **tx, &household.id).await?.ok_or(PledgesError::NotFound(HOUSEHOLD))?;
        let resign_from = store::resign_from(&mut **tx, &template.id).await?;
        let previous = store::in_force(&mut **tx, &household.id, &template.id).await?;
        if let Some(previous) = &previous
            && !supersedes(previous, version, req, signed_at)?
        {
            // Signing again what is already signed changes nothing.
            return Ok(SignPledgeResponse {
                signature: Some(signature_proto(previous)),
                created: false,
                state: state_of(&household) as i32,
            });
        }
        // A pledge in force on another village's template (the household's grid moved) gives way.
        if let Some(other) = household.signature_id.as_deref()
            && previous.is_none()
            && let Some(row) = store::signature(&mut **tx, other).await?
            && row.status == store::IN_FORCE
        {
            store::mark_renewed(&mut **tx, &row.id).await?;
        }
        if let Some(previous) = &previous {
            store::mark_renewed(&mut **tx, &previous.id).await?;
        }
        let row = SignatureRow {
            id: uuid::Uuid::now_v7().to_string(),
            household_id: household.id.clone(),
            template_id: template.id.clone(),
            template_version: version,
            signer_resident_id: signer.to_owned(),
            channel: channel as i64,
            scan_reference: req.scan_reference.trim().to_owned(),
            campaign_id: campaign_id.to_owned(),
            signed_at,
            collected_by: caller.account_id().to_owned(),
            recorded_at: now,
            status: store::IN_FORCE,
            revoked_at: None,
            revoke_reason: String::new(),
            revoked_by: String::new(),
        };
        store::insert_signature(&mut **tx, &row).await?;
        let state = standing(version, resign_from);
        store::set_standing(&mut **tx, &household.id, state as i64, Some(&row.id), Some(&template.id), version).await?;
        delta.transition(&path_ids(&household.path), state_of(&household), state, 1);
        if !campaign_id.is_empty() {
            store::count_collected(&mut **tx, campaign_id).await?;
        }
        match &previous {
            Some(previous) => {
                let event = PledgeRenewed {
                    household_id: household.id.clone(),
                    signature_id: row.id.clone(),
                    template_id: template.id.clone(),
                    template_version: version as i32,
                    previous_version: previous.template_version as i32,
                    signed_at: Some(to_timestamp(signed_at)),
                };
                self.outbox.write(tx, &household.id, &event).await?;
            }
            None => {
                let event = PledgeSigned {
                    household_id: household.id.clone(),
                    signature_id: row.id.clone(),
                    template_id: template.id.clone(),
                    template_version: version as i32,
                    channel: channel as i32,
                    campaign_id: row.campaign_id.clone(),
                    signed_at: Some(to_timestamp(signed_at)),
                };
                self.outbox.write(tx, &household.id, &event).await?;
            }
        }
        Ok(SignPledgeResponse { signature: Some(signature_proto(&row)), created: true, state: state as i32 })
    }

    /// Withdraws the household's consent. A member who may sign may revoke on the app; a
    /// collector records a revocation handed in on paper.
    pub async fn revoke(&self, caller: &Caller, household_id: &str, reason: &str) -> Result<Signature> {
        let mut v = Violations::new();
        v.require("household_id", household_id);
        v.require("reason", reason);
        if reason.chars().count() > MAX_REASON {
            v.add("reason", "不超过500字 / at most 500 characters");
        }
        v.into_result()?;
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let household = household_for(&mut tx, caller, household_id.trim(), access::COLLECTORS, true).await?;
        let by_collector = caller.has_any_role(access::COLLECTORS) && caller.covers(&path_ids(&household.path));
        if !by_collector {
            let rid = caller.0.rid.clone().unwrap_or_default();
            let today = china_date(now).ok_or_else(|| PledgesError::Internal("clock out of range".into()))?;
            // A member who may not sign may not withdraw the household's consent either.
            match check_signer(&mut tx, &household, &rid, today, "household_id").await {
                Err(PledgesError::Invalid(_)) => return Err(PledgesError::PermissionDenied),
                other => other?,
            }
        }
        store::lock_household(&mut *tx, &household.id).await?;
        let household = store::household(&mut *tx, &household.id).await?.ok_or(PledgesError::NotFound(HOUSEHOLD))?;
        let in_force = match household.signature_id.as_deref() {
            Some(id) => store::signature(&mut *tx, id).await?.filter(|s| s.status == store::IN_FORCE),
            None => None,
        };
        let Some(signature) = in_force else {
            return Err(PledgesError::Precondition("该户没有生效的承诺 / the household has no pledge in force".into()));
        };
        store::mark_revoked(&mut *tx, &signature.id, now, reason.trim(), caller.account_id()).await?;
        store::set_standing(
            &mut *tx,
            &household.id,
            PledgeState::Revoked as i64,
            Some(&signature.id),
            Some(&signature.template_id),
            signature.template_version,
        )
        .await?;
        let mut delta = CoverageDelta::default();
        if household.active == 1 {
            delta.transition(&path_ids(&household.path), state_of(&household), PledgeState::Revoked, 1);
        }
        write_coverage(&mut tx, &mut delta).await?;
        let event = PledgeRevoked {
            household_id: household.id.clone(),
            signature_id: signature.id.clone(),
            template_id: signature.template_id.clone(),
            revoked_at: Some(to_timestamp(now)),
        };
        self.outbox.write(&mut tx, &household.id, &event).await?;
        let revoked = store::signature(&mut *tx, &signature.id).await?.ok_or(PledgesError::NotFound("承诺"))?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(signature_proto(&revoked))
    }

    /// The head (on the app) or a collector (recording the head's written word) authorises an
    /// adult member to sign for the household.
    pub async fn authorise_signer(&self, caller: &Caller, household_id: &str, resident_id: &str) -> Result<()> {
        let mut v = Violations::new();
        v.require("household_id", household_id);
        v.require("resident_id", resident_id);
        v.into_result()?;
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let household = household_for(&mut tx, caller, household_id.trim(), access::COLLECTORS, true).await?;
        let by_collector = caller.has_any_role(access::COLLECTORS) && caller.covers(&path_ids(&household.path));
        if !by_collector && caller.0.rid.as_deref() != Some(household.head_resident_id.as_str()) {
            return Err(PledgesError::PermissionDenied);
        }
        let birth = store::member_birth_date(&mut *tx, &household.id, resident_id.trim())
            .await?
            .ok_or_else(|| PledgesError::invalid("resident_id", "不是该户现有成员 / not a current member"))?;
        let today = china_date(now).ok_or_else(|| PledgesError::Internal("clock out of range".into()))?;
        if parse_date(&birth).is_none_or(|birth| age_on(birth, today) < ADULT_AGE) {
            return Err(PledgesError::invalid("resident_id", "只能授权成年成员 / only an adult member"));
        }
        store::authorise_signer(&mut *tx, &household.id, resident_id.trim(), caller.account_id(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn household_pledge(&self, caller: &Caller, household_id: &str) -> Result<GetHouseholdPledgeResponse> {
        if household_id.trim().is_empty() {
            return Err(PledgesError::invalid("household_id", "必填 / required"));
        }
        if !caller.has_any_role(access::READERS) && !caller.has_role(Role::Resident) {
            return Err(PledgesError::PermissionDenied);
        }
        let mut tx = self.db.begin_read().await?;
        let household = household_for(&mut tx, caller, household_id.trim(), access::READERS, true).await?;
        let template = store::template_on_path(&mut *tx, &path_ids(&household.path)).await?;
        let history = store::signature_history(&mut *tx, &household.id).await?;
        let current = household.signature_id.as_deref().and_then(|id| history.iter().find(|s| s.id == id));
        Ok(GetHouseholdPledgeResponse {
            state: state_of(&household) as i32,
            template: template.as_ref().map(|t| template_proto(t, false)),
            signature: current.map(signature_proto),
            history: history.iter().map(signature_proto).collect(),
            authorised_signer_ids: store::authorised_signers(&mut *tx, &household.id).await?,
        })
    }
}

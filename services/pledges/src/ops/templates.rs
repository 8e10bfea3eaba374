//! Templates: a village's or community's pledge text, versioned; a version may ask households
//! signed on earlier versions to sign again.

use jiaxin_kit::{
    auth::Caller,
    error::Violations,
    time::{china_date, now_micros, parse_date},
};
use jiaxin_proto::{
    identity::OrgNodeKind,
    pledges::{GetTemplateResponse, PledgeState, PublishTemplateRequest, Template, TemplateKind, TemplatePublished},
};

use super::{Pledges, template_proto, write_coverage};
use crate::{
    domain::{
        access,
        state::{CoverageDelta, path_ids},
    },
    error::{PledgesError, Result},
    store::{self, TemplateRow},
};

const TEMPLATE: &str = "承诺书模板";
const MAX_TITLE: usize = 100;
const MAX_BODY: usize = 50_000;
const MAX_CLAUSE: usize = 2_000;

/// Villages and communities hold templates; nothing else does.
pub(crate) fn holds_templates(kind: i64) -> bool {
    kind == OrgNodeKind::Village as i64 || kind == OrgNodeKind::Community as i64
}

fn check_text(v: &mut Violations, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        v.add(field, "必填 / required");
    } else if value.chars().count() > max {
        v.add(field, format!("不超过{max}字 / at most {max} characters"));
    }
}

fn validate(req: &PublishTemplateRequest) -> Result<()> {
    let mut v = Violations::new();
    v.require("org_node_id", &req.org_node_id);
    if !matches!(TemplateKind::try_from(req.kind), Ok(TemplateKind::VillageRules | TemplateKind::ResidentsConvention)) {
        v.add("kind", "须为村规民约或居民公约 / village rules or residents' convention");
    }
    check_text(&mut v, "title", &req.title, MAX_TITLE);
    check_text(&mut v, "body", &req.body, MAX_BODY);
    check_text(&mut v, "consent_clause", &req.consent_clause, MAX_CLAUSE);
    check_text(&mut v, "adopted_by", &req.adopted_by, MAX_TITLE);
    let today = china_date(now_micros());
    let effective = parse_date(&req.effective_on);
    let adopted = parse_date(&req.adopted_on);
    if effective.is_none() {
        v.add("effective_on", "日期格式为 YYYY-MM-DD / a date, YYYY-MM-DD");
    }
    match adopted {
        None => v.add("adopted_on", "日期格式为 YYYY-MM-DD / a date, YYYY-MM-DD"),
        Some(day) if today.is_some_and(|today| day > today) => {
            v.add("adopted_on", "不能晚于今天 / cannot be in the future");
        }
        Some(day) if effective.is_some_and(|effective| day > effective) => {
            v.add("adopted_on", "通过日期不能晚于生效日期 / adopted after it takes effect");
        }
        Some(_) => {}
    }
    Ok(v.into_result()?)
}

impl Pledges {
    pub async fn publish_template(&self, caller: &Caller, req: PublishTemplateRequest) -> Result<Template> {
        if !caller.has_any_role(access::TEMPLATE_PUBLISHERS) {
            return Err(PledgesError::PermissionDenied);
        }
        validate(&req)?;
        let mut tx = self.db.begin().await?;
        let (path, kind) =
            store::org_node(&mut *tx, req.org_node_id.trim()).await?.ok_or(PledgesError::NotFound("村(社区)"))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(PledgesError::NotFound("村(社区)"));
        }
        if !holds_templates(kind) {
            return Err(PledgesError::invalid("org_node_id", "承诺书只属于村或社区 / only villages and communities"));
        }
        let current = store::template_of_node(&mut *tx, req.org_node_id.trim(), 0).await?;
        if let Some(current) = &current
            && current.kind != i64::from(req.kind)
        {
            return Err(PledgesError::invalid("kind", "须与现行版本相同 / must stay the kind of the current version"));
        }
        let row = TemplateRow {
            id: current.as_ref().map(|c| c.id.clone()).unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            version: current.as_ref().map(|c| c.version + 1).unwrap_or(1),
            org_node_id: req.org_node_id.trim().to_owned(),
            kind: i64::from(req.kind),
            title: req.title.trim().to_owned(),
            body: req.body.clone(),
            consent_clause: req.consent_clause.trim().to_owned(),
            effective_on: req.effective_on.clone(),
            adopted_by: req.adopted_by.trim().to_owned(),
            adopted_on: req.adopted_on.clone(),
            // The first version has nothing before it to renew.
            requires_resign: i64::from(req.requires_resign && current.is_some()),
            published_at: now_micros(),
            published_by: caller.account_id().to_owned(),
        };
        store::insert_template(&mut *tx, &row).await?;
        if row.requires_resign == 1 {
            // Households signed on an earlier version are now due for renewal: counted per grid,
            // then moved in one statement.
            let mut delta = CoverageDelta::default();
            for (grid_path, households) in store::signed_before_by_path(&mut *tx, &row.id, row.version).await? {
                delta.transition(&path_ids(&grid_path), PledgeState::Signed, PledgeState::RenewalDue, households);
            }
            let moved = store::mark_renewal_due(&mut *tx, &row.id, row.version).await?;
            write_coverage(&mut tx, &mut delta).await?;
            tracing::info!(template = %row.id, version = row.version, households = moved, "pledges due for renewal");
        }
        let event = TemplatePublished {
            template_id: row.id.clone(),
            org_node_id: row.org_node_id.clone(),
            kind: row.kind as i32,
            version: row.version as i32,
            requires_resign: row.requires_resign == 1,
            effective_on: row.effective_on.clone(),
        };
        self.outbox.write(&mut tx, &row.org_node_id, &event).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(template_proto(&row, true))
    }

    /// Templates are public documents (村规民约 are posted in the village): any signed-in caller
    /// may read them, residents above all, before they sign.
    pub async fn get_template(&self, org_node_id: &str, version: i32) -> Result<GetTemplateResponse> {
        if org_node_id.trim().is_empty() {
            return Err(PledgesError::invalid("org_node_id", "必填 / required"));
        }
        if version < 0 {
            return Err(PledgesError::invalid("version", "不能为负 / must not be negative"));
        }
        let mut tx = self.db.begin_read().await?;
        let template = store::template_of_node(&mut *tx, org_node_id.trim(), i64::from(version))
            .await?
            .ok_or(PledgesError::NotFound(TEMPLATE))?;
        let versions = store::template_versions(&mut *tx, &template.id).await?;
        Ok(GetTemplateResponse {
            template: Some(template_proto(&template, true)),
            versions: versions.iter().map(|t| template_proto(t, false)).collect(),
        })
    }
}

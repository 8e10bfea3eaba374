//! Editing the catalogue: deployment-wide rules from the root, a county's own rules by its admins,
//! village-local ones by the village's cadres and town admins; every change is a new version, and
//! retiring never deletes.

use jiaxin_kit::auth::{Caller, Role};
use jiaxin_proto::points::{Category, Rule, RuleKind, Severity};

use crate::{
    domain::catalogue::{self, RuleDef, Windows},
    error::{PointsError, Result},
    ops::{Points, rule_proto},
    store,
};

/// May edit the deployment-wide catalogue, from the root of the org tree.
const COUNTY_EDITORS: &[Role] = &[Role::Province, Role::CountyAdmin];
const LOCAL_EDITORS: &[Role] = &[Role::Province, Role::CountyAdmin, Role::TownAdmin, Role::VillageCadre];

/// A rule as the API gives it, settled (review, disclosure) and checked like a shipped one.
fn rule_def(rule: &Rule, windows: &Windows) -> Result<RuleDef> {
    let kind = RuleKind::try_from(rule.kind).unwrap_or(RuleKind::Unspecified);
    let severity = Severity::try_from(rule.severity).unwrap_or(Severity::Unspecified);
    let (disclosure, counts) = windows.of(kind, severity);
    let mut def = RuleDef {
        code: rule.code.trim().to_owned(),
        category: Category::try_from(rule.category).unwrap_or(Category::Unspecified),
        name_zh: rule.name_zh.trim().to_owned(),
        name_en: rule.name_en.trim().to_owned(),
        kind,
        points_min: rule.points_min,
        points_max: rule.points_max,
        yearly_cap: rule.yearly_cap.max(0),
        recorders: rule.recorders.iter().map(|r| r.trim().to_owned()).collect(),
        evidence_required: rule.evidence_required,
        review_required: rule.review_required,
        severity,
        disclosure_days: if rule.disclosure_days > 0 { i64::from(rule.disclosure_days) } else { disclosure },
        counts_days: if rule.counts_days > 0 { i64::from(rule.counts_days) } else { counts },
        article: rule.article.trim().to_owned(),
        adopted_by: rule.adopted_by.trim().to_owned(),
        adopted_on: rule.adopted_on.trim().to_owned(),
        basis: rule.basis.trim().to_owned(),
    };
    catalogue::settle(&mut def, windows.large_bonus_points);
    catalogue::check(&def).map_err(|(field, message)| PointsError::invalid(&format!("rule.{field}"), message))?;
    Ok(def)
}

impl Points {
    /// Whether the caller may edit rules of `scope`: '' is the whole deployment (a county admin of
    /// a one-county deployment, or the province), a node is its subtree (a county's own rules, a
    /// village's local ones).
    async fn may_edit(&self, tx: &mut jiaxin_kit::storage::Tx, caller: &Caller, scope: &str) -> Result<()> {
        if scope.is_empty() {
            caller.require_any_role(COUNTY_EDITORS).map_err(|_| PointsError::PermissionDenied)?;
            // Only from the root: a county inside a province cannot change other counties' rules.
            let root = store::org_node_path(&mut **tx, caller.scope())
                .await?
                .is_some_and(|path| path.split('/').filter(|s| !s.is_empty()).count() == 1);
            return if root { Ok(()) } else { Err(PointsError::PermissionDenied) };
        }
        caller.require_any_role(LOCAL_EDITORS).map_err(|_| PointsError::PermissionDenied)?;
        let path = store::org_node_path(&mut **tx, scope).await?.ok_or(PointsError::NotFound("组织节点"))?;
        let ids: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if caller.covers(&ids) { Ok(()) } else { Err(PointsError::NotFound("组织节点")) }
    }

    /// The current version of a rule the caller may edit. Who may edit rules at all is settled
    /// before the lookup; a rule outside the caller's scope is refused with PERMISSION_DENIED,
    /// not NOT_FOUND: the catalogue is published, so its rules and their scopes are no secret.
    async fn editable_rule(
        &self,
        tx: &mut jiaxin_kit::storage::Tx,
        caller: &Caller,
        code: &str,
    ) -> Result<store::RuleRow> {
        caller.require_any_role(LOCAL_EDITORS).map_err(|_| PointsError::PermissionDenied)?;
        let current = store::current_rule(&mut **tx, code).await?.ok_or(PointsError::NotFound("规则"))?;
        match self.may_edit(tx, caller, &current.scope_node_id).await {
            Err(PointsError::NotFound(_)) => Err(PointsError::PermissionDenied),
            other => other.map(|()| current),
        }
    }

    pub async fn create_rule(&self, caller: &Caller, rule: Rule) -> Result<Rule> {
        let windows = Windows::shipped().map_err(|e| PointsError::Internal(e.to_string()))?;
        let def = rule_def(&rule, &windows)?;
        let mut tx = self.db.begin().await?;
        self.may_edit(&mut tx, caller, &rule.scope_org_node_id).await?;
        if store::current_rule(&mut *tx, &def.code).await?.is_some() {
            return Err(PointsError::invalid("rule.code", "规则代码已存在 / a rule with this code exists"));
        }
        store::insert_rule(&mut *tx, &def, 1, &rule.scope_org_node_id).await?;
        let row = store::current_rule(&mut *tx, &def.code).await?.ok_or(PointsError::NotFound("规则"))?;
        tx.commit().await?;
        Ok(rule_proto(&row))
    }

    /// A new version; the scope stays the rule's own.
    pub async fn revise_rule(&self, caller: &Caller, rule: Rule) -> Result<Rule> {
        let windows = Windows::shipped().map_err(|e| PointsError::Internal(e.to_string()))?;
        let def = rule_def(&rule, &windows)?;
        let mut tx = self.db.begin().await?;
        let current = self.editable_rule(&mut tx, caller, &def.code).await?;
        if current.retired == 1 {
            return Err(PointsError::Precondition("规则已停用 / the rule is retired".into()));
        }
        store::insert_rule(&mut *tx, &def, current.version + 1, &current.scope_node_id).await?;
        let row = store::current_rule(&mut *tx, &def.code).await?.ok_or(PointsError::NotFound("规则"))?;
        tx.commit().await?;
        tracing::info!(code = %row.code, version = row.version, "rule revised");
        Ok(rule_proto(&row))
    }

    pub async fn retire_rule(&self, caller: &Caller, code: &str) -> Result<Rule> {
        let mut tx = self.db.begin().await?;
        let current = self.editable_rule(&mut tx, caller, code.trim()).await?;
        store::retire_rule(&mut *tx, &current.code, current.version).await?;
        let row = store::current_rule(&mut *tx, &current.code).await?.ok_or(PointsError::NotFound("规则"))?;
        tx.commit().await?;
        Ok(rule_proto(&row))
    }
}

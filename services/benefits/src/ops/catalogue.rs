//! Providers and the benefit catalogue: county and town admins manage them in their scope; a
//! provider's accounts see their own benefits; residents browse what is in force.

use jiaxin_kit::{
    audit::Entry,
    auth::Caller,
    error::Violations,
    page::Page,
    sql::{path_ids, subtree_range},
    tiers,
    time::{parse_date, to_timestamp},
};
use jiaxin_proto::benefits::{Benefit, BenefitKind, ListBenefitsResponse, Provider, ProviderKind, Scene};

use super::{BENEFIT, Benefits, audit, now};
use crate::{
    domain::access,
    error::{BenefitsError, Result},
    store::catalogue::{self, BenefitRow, ProviderRow, Visible},
};

const MAX_ACCOUNTS: usize = 100;

pub(crate) fn benefit_proto(b: &BenefitRow) -> Benefit {
    Benefit {
        id: b.id.clone(),
        name: b.name.clone(),
        description: b.description.clone(),
        scene: b.scene as i32,
        kind: b.kind as i32,
        provider_id: b.provider_id.clone(),
        org_node_id: b.org_node_id.clone(),
        min_tier: b.min_tier.clone(),
        min_score: b.min_score,
        policy_basis: b.policy_basis.clone(),
        valid_from: b.valid_from.clone(),
        valid_until: b.valid_until.clone(),
        cost_points: b.cost_points,
        stock: b.stock,
        stock_left: b.stock_left,
        per_household_yearly: b.per_household_yearly,
        retired: b.retired != 0,
        updated_at: Some(to_timestamp(b.updated_at)),
    }
}

fn provider_proto(p: &ProviderRow, accounts: Vec<String>) -> Provider {
    Provider {
        id: p.id.clone(),
        name: p.name.clone(),
        kind: p.kind as i32,
        org_node_id: p.org_node_id.clone(),
        account_ids: accounts,
    }
}

fn require_len(v: &mut Violations, field: &str, value: &str, max: usize) {
    v.require(field, value);
    if value.chars().count() > max {
        v.add(field, format!("不能超过 {max} 个字符 / at most {max} characters"));
    }
}

impl Benefits {
    pub async fn save_provider(&self, caller: &Caller, provider: Option<Provider>) -> Result<Provider> {
        if !caller.has_any_role(access::CATALOGUE_ADMINS) {
            return Err(BenefitsError::PermissionDenied);
        }
        let p = provider.ok_or_else(|| BenefitsError::invalid("provider", "必填 / required"))?;
        let mut v = Violations::new();
        require_len(&mut v, "provider.name", &p.name, 100);
        if ProviderKind::try_from(p.kind).unwrap_or(ProviderKind::Unspecified) == ProviderKind::Unspecified {
            v.add("provider.kind", "须为机构或商户 / must be AGENCY or MERCHANT");
        }
        let mut accounts: Vec<String> = p.account_ids.iter().map(|a| a.trim().to_owned()).collect();
        accounts.sort();
        accounts.dedup();
        if accounts.iter().any(String::is_empty) {
            v.add("provider.account_ids", "账号不能为空 / account ids must not be empty");
        }
        if accounts.len() > MAX_ACCOUNTS {
            v.add("provider.account_ids", format!("最多 {MAX_ACCOUNTS} 个 / at most {MAX_ACCOUNTS}"));
        }
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let path = self.scoped_node(&mut tx, caller, &p.org_node_id, "provider.org_node_id").await?;
        let id = if p.id.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            // An update stays with the admins whose scope holds the provider.
            let existing = catalogue::provider(&mut *tx, &p.id).await?.ok_or(BenefitsError::NotFound("provider"))?;
            if !caller.covers(&path_ids(&existing.path)) {
                return Err(BenefitsError::NotFound("provider"));
            }
            existing.id
        };
        let row = ProviderRow {
            id,
            name: p.name.trim().to_owned(),
            kind: i64::from(p.kind),
            org_node_id: p.org_node_id.clone(),
            path,
            updated_at: now(),
        };
        catalogue::save_provider(&mut tx, &row, &accounts).await?;
        let details = format!("name={} accounts={}", row.name, accounts.join(","));
        audit(
            &mut tx,
            &[Entry {
                at: row.updated_at,
                actor: caller.account_id(),
                action: "provider.save",
                subject: &row.id,
                details: &details,
            }],
        )
        .await?;
        tx.commit().await?;
        Ok(provider_proto(&row, accounts))
    }

    pub async fn save_benefit(&self, caller: &Caller, benefit: Option<Benefit>) -> Result<Benefit> {
        if !caller.has_any_role(access::CATALOGUE_ADMINS) {
            return Err(BenefitsError::PermissionDenied);
        }
        let b = benefit.ok_or_else(|| BenefitsError::invalid("benefit", "必填 / required"))?;
        validate_benefit(&b)?;
        let mut tx = self.db.begin().await?;
        let path = self.scoped_node(&mut tx, caller, &b.org_node_id, "benefit.org_node_id").await?;
        let provider = catalogue::provider(&mut *tx, &b.provider_id)
            .await?
            .ok_or_else(|| BenefitsError::invalid("benefit.provider_id", "提供方不存在 / no such provider"))?;
        if !path_ids(&path).contains(&provider.org_node_id.as_str()) {
            return Err(BenefitsError::invalid(
                "benefit.org_node_id",
                "权益范围须在提供方服务范围内 / must lie within the provider's area",
            ));
        }
        let existing = match b.id.as_str() {
            "" => None,
            id => {
                let row = catalogue::benefit(&mut *tx, id).await?.ok_or(BenefitsError::NotFound(BENEFIT))?;
                if !caller.covers(&path_ids(&row.path)) {
                    return Err(BenefitsError::NotFound(BENEFIT));
                }
                Some(row)
            }
        };
        let stock_left = stock_left_after(existing.as_ref(), b.stock)?;
        let row = BenefitRow {
            id: existing.map(|e| e.id).unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            name: b.name.trim().to_owned(),
            description: b.description.trim().to_owned(),
            scene: i64::from(b.scene),
            kind: i64::from(b.kind),
            provider_id: provider.id,
            org_node_id: b.org_node_id.clone(),
            path,
            min_tier: b.min_tier.trim().to_owned(),
            min_score: b.min_score,
            policy_basis: b.policy_basis.trim().to_owned(),
            valid_from: b.valid_from.clone(),
            valid_until: b.valid_until.clone(),
            cost_points: b.cost_points,
            stock: b.stock,
            stock_left,
            per_household_yearly: b.per_household_yearly,
            retired: i64::from(b.retired),
            updated_at: now(),
        };
        catalogue::save_benefit(&mut *tx, &row).await?;
        let details = format!(
            "name={} min_tier={} min_score={} valid={}..{} cost={} stock={} retired={}",
            row.name,
            row.min_tier,
            row.min_score,
            row.valid_from,
            row.valid_until,
            row.cost_points,
            row.stock,
            row.retired
        );
        audit(
            &mut tx,
            &[Entry {
                at: row.updated_at,
                actor: caller.account_id(),
                action: "benefit.save",
                subject: &row.id,
                details: &details,
            }],
        )
        .await?;
        tx.commit().await?;
        Ok(benefit_proto(&row))
    }

    /// Admins in scope, the provider's accounts, and anyone for a benefit in force.
    pub async fn get_benefit(&self, caller: &Caller, id: &str) -> Result<Benefit> {
        let mut tx = self.db.begin_read().await?;
        let row = catalogue::benefit(&mut *tx, id).await?.ok_or(BenefitsError::NotFound(BENEFIT))?;
        let admin = caller.has_any_role(access::CATALOGUE_ADMINS) && caller.covers(&path_ids(&row.path));
        let provider = catalogue::acts_for(&mut *tx, caller.account_id(), &row.provider_id).await?;
        if admin || provider || row.retired == 0 {
            Ok(benefit_proto(&row))
        } else {
            Err(BenefitsError::NotFound(BENEFIT))
        }
    }

    pub async fn list_benefits(
        &self,
        caller: &Caller,
        scene: i32,
        include_retired: bool,
        page: Page,
    ) -> Result<ListBenefitsResponse> {
        let mut tx = self.db.begin_read().await?;
        let after = page.after.clone().unwrap_or_default();
        let range;
        let providers;
        let visible = if caller.has_any_role(access::CATALOGUE_ADMINS) {
            // An admin whose node benefits has not heard of yet has nothing in scope.
            let Some(scope_path) = crate::store::readmodel::org_path(&mut *tx, caller.scope()).await? else {
                return Ok(ListBenefitsResponse::default());
            };
            range = subtree_range(&scope_path);
            Visible::Subtree { from: &range.0, to: &range.1 }
        } else {
            providers = catalogue::providers_of(&mut *tx, caller.account_id()).await?;
            if providers.is_empty() { Visible::InForce } else { Visible::Providers(&providers) }
        };
        let mut rows =
            catalogue::list_benefits(&mut tx, &visible, i64::from(scene), include_retired, &after, page.fetch_limit())
                .await?;
        let next_page_token = page.finish(&mut rows, |r| r.id.clone());
        Ok(ListBenefitsResponse { benefits: rows.iter().map(benefit_proto).collect(), next_page_token })
    }
}

/// Field checks that need no state.
fn validate_benefit(b: &Benefit) -> Result<()> {
    let mut v = Violations::new();
    require_len(&mut v, "benefit.name", &b.name, 100);
    require_len(&mut v, "benefit.policy_basis", &b.policy_basis, 500);
    if b.description.chars().count() > 2000 {
        v.add("benefit.description", "不能超过 2000 个字符 / at most 2000 characters");
    }
    if Scene::try_from(b.scene).unwrap_or(Scene::Unspecified) == Scene::Unspecified {
        v.add("benefit.scene", "须指定场景 / a scene is required");
    }
    let kind = BenefitKind::try_from(b.kind).unwrap_or(BenefitKind::Unspecified);
    if kind == BenefitKind::Unspecified {
        v.add("benefit.kind", "须指定类型 / a kind is required");
    }
    if !b.min_tier.trim().is_empty() && tiers::rank(b.min_tier.trim()).is_none() {
        v.add("benefit.min_tier", "不是有效的信用等级 / not a tier (AAA, AA, A, B, C, D)");
    }
    if b.min_score < 0 {
        v.add("benefit.min_score", "不能为负 / must not be negative");
    }
    let from = parse_date(&b.valid_from);
    if from.is_none() {
        v.add("benefit.valid_from", "须为 YYYY-MM-DD / must be YYYY-MM-DD");
    }
    if !b.valid_until.is_empty() {
        match parse_date(&b.valid_until) {
            None => v.add("benefit.valid_until", "须为 YYYY-MM-DD 或留空 / must be YYYY-MM-DD or empty"),
            Some(until) if from.is_some_and(|from| until < from) => {
                v.add("benefit.valid_until", "不能早于开始日期 / must not be before valid_from")
            }
            Some(_) => {}
        }
    }
    for (field, value) in [
        ("benefit.cost_points", b.cost_points),
        ("benefit.stock", b.stock),
        ("benefit.per_household_yearly", b.per_household_yearly),
    ] {
        if value < 0 {
            v.add(field, "不能为负 / must not be negative");
        }
    }
    if kind == BenefitKind::Redemption && b.cost_points <= 0 {
        v.add("benefit.cost_points", "积分兑换须定价 / a redemption item needs a price in points");
    }
    if kind != BenefitKind::Redemption && kind != BenefitKind::Unspecified {
        for (field, value) in [
            ("benefit.cost_points", b.cost_points),
            ("benefit.stock", b.stock),
            ("benefit.per_household_yearly", b.per_household_yearly),
        ] {
            if value != 0 {
                v.add(field, "仅适用于积分兑换 / only for redemption items");
            }
        }
    }
    Ok(v.into_result()?)
}

/// What is left in stock after the stock is set to `stock`: what was already redeemed stays
/// redeemed, so the new stock cannot be below it. 0 means unlimited.
fn stock_left_after(existing: Option<&BenefitRow>, stock: i64) -> Result<i64> {
    if stock == 0 {
        return Ok(0);
    }
    let redeemed = existing.filter(|e| e.stock > 0).map(|e| e.stock - e.stock_left).unwrap_or(0);
    if stock < redeemed {
        return Err(BenefitsError::invalid(
            "benefit.stock",
            format!("已兑换 {redeemed} 件,库存不能少于此数 / {redeemed} already redeemed; stock cannot be lower"),
        ));
    }
    Ok(stock - redeemed)
}

//! The points shop (积分超市): spending redeemable points on items, and refunds. One redemption
//! is one transaction that takes the household's standing row first (so redemptions for one
//! household queue), spends only what is available, takes stock only if some is left, and
//! records the redemption under the caller's client key (so a retry finds the first result).

use jiaxin_kit::{
    auth::Caller,
    page::Page,
    sql::path_ids,
    time::{china_date, to_timestamp},
};
use jiaxin_proto::benefits::{
    BenefitKind, EligibilityReason, ListRedemptionsResponse, RedeemRequest, Redeemed, Redemption, RedemptionStatus,
    Refunded,
};

use super::{BENEFIT, Benefits, HOUSEHOLD, china_today, now};
use crate::{
    domain::{access, eligibility},
    error::{BenefitsError, Result},
    store::{
        catalogue::{self, BenefitRow},
        readmodel::{self, StandingRow},
        shop::{self, RedemptionRow},
    },
};

const MAX_QUANTITY: i64 = 100;
const MAX_KEY: usize = 128;

pub(crate) fn redemption_proto(r: &RedemptionRow) -> Redemption {
    Redemption {
        id: r.id.clone(),
        benefit_id: r.benefit_id.clone(),
        household_id: r.household_id.clone(),
        quantity: r.quantity,
        points: r.points,
        status: r.status as i32,
        client_key: r.client_key.clone(),
        redeemed_by: r.redeemed_by.clone(),
        redeemed_at: Some(to_timestamp(r.redeemed_at)),
        cancelled_by: r.cancelled_by.clone(),
        cancelled_at: r.cancelled_at.map(to_timestamp),
        cancel_reason: r.cancel_reason.clone(),
    }
}

/// The same key with the same content is a retry; with other content it is refused, by field.
fn same_request(earlier: &RedemptionRow, request: &RedeemRequest, quantity: i64) -> Result<()> {
    let differing = if earlier.benefit_id != request.benefit_id {
        Some("benefit_id")
    } else if earlier.household_id != request.household_id {
        Some("household_id")
    } else if earlier.quantity != quantity {
        Some("quantity")
    } else {
        None
    };
    match differing {
        None => Ok(()),
        Some(field) => Err(BenefitsError::invalid(
            "client_key",
            format!("该请求号已用于另一笔兑换,{field} 不同 / reused with a different {field}"),
        )),
    }
}

fn validate(request: &RedeemRequest) -> Result<i64> {
    let mut v = jiaxin_kit::error::Violations::new();
    v.require("benefit_id", &request.benefit_id);
    v.require("household_id", &request.household_id);
    v.require("client_key", &request.client_key);
    if request.client_key.len() > MAX_KEY {
        v.add("client_key", format!("不能超过 {MAX_KEY} 字节 / at most {MAX_KEY} bytes"));
    }
    let quantity = if request.quantity == 0 { 1 } else { request.quantity };
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        v.add("quantity", format!("须在 1 到 {MAX_QUANTITY} 之间 / between 1 and {MAX_QUANTITY}"));
    }
    v.into_result()?;
    Ok(quantity)
}

fn refused(message: String) -> BenefitsError {
    BenefitsError::Precondition(message)
}

impl Benefits {
    /// The household's member (the resident), or an account of the item's provider (at the shop
    /// counter), may redeem. Anyone else reads "not found".
    async fn may_redeem(
        &self,
        tx: &mut jiaxin_kit::storage::Tx,
        caller: &Caller,
        benefit: &BenefitRow,
        household_id: &str,
    ) -> Result<()> {
        let provider = catalogue::acts_for(&mut **tx, caller.account_id(), &benefit.provider_id).await?;
        if provider || self.is_own(tx, caller, household_id).await? {
            Ok(())
        } else {
            Err(BenefitsError::NotFound(BENEFIT))
        }
    }

    pub async fn redeem(&self, caller: &Caller, request: RedeemRequest) -> Result<Redemption> {
        let quantity = validate(&request)?;
        match self.try_redeem(caller, &request, quantity).await {
            // Two retries racing with one key: the loser's insert hits the unique key after the
            // winner committed; its whole transaction rolled back, so it answers with the winner's.
            Err(BenefitsError::Storage(error)) if is_unique_violation(&error) => {
                let earlier = shop::by_client_key(self.db.pool(), caller.account_id(), &request.client_key)
                    .await?
                    .ok_or(BenefitsError::Storage(error))?;
                same_request(&earlier, &request, quantity)?;
                Ok(redemption_proto(&earlier))
            }
            other => other,
        }
    }

    async fn try_redeem(&self, caller: &Caller, request: &RedeemRequest, quantity: i64) -> Result<Redemption> {
        let mut tx = self.db.begin().await?;
        if let Some(earlier) = shop::by_client_key(&mut *tx, caller.account_id(), &request.client_key).await? {
            same_request(&earlier, request, quantity)?;
            return Ok(redemption_proto(&earlier));
        }
        let benefit =
            catalogue::benefit(&mut *tx, &request.benefit_id).await?.ok_or(BenefitsError::NotFound(BENEFIT))?;
        self.may_redeem(&mut tx, caller, &benefit, &request.household_id).await?;
        let path = readmodel::household_path(&mut *tx, &request.household_id)
            .await?
            .ok_or(BenefitsError::NotFound(HOUSEHOLD))?;
        if benefit.kind != BenefitKind::Redemption as i64 {
            return Err(BenefitsError::invalid("benefit_id", "不是积分兑换项目 / not a points-shop item"));
        }
        let at = now();
        let standing = readmodel::standing(&mut *tx, &request.household_id)
            .await?
            .unwrap_or_else(|| StandingRow::base(&request.household_id));
        let terms = eligibility::Terms {
            min_tier: &benefit.min_tier,
            min_score: benefit.min_score,
            valid_from: &benefit.valid_from,
            valid_until: &benefit.valid_until,
            retired: benefit.retired != 0,
        };
        let covered = path_ids(&path).contains(&benefit.org_node_id.as_str());
        let reason = if covered {
            eligibility::decide(&terms, standing.score, &standing.tier, &china_today(at))
        } else {
            EligibilityReason::NotCovered
        };
        if reason != EligibilityReason::Eligible {
            return Err(refused(eligibility::explain(reason, &terms, standing.score, &standing.tier)));
        }
        let points = benefit.cost_points * quantity;
        // Spending first: its row lock puts every other redemption of this household behind us.
        if !shop::spend(&mut *tx, &request.household_id, points).await? {
            let available = (standing.redeemable_earned - standing.redeemable_spent).max(0);
            return Err(refused(format!(
                "可用积分不足:可用 {available},需要 {points} / not enough redeemable points: {available} available, {points} needed"
            )));
        }
        let year = i64::from(china_date(at).map(|d| chrono::Datelike::year(&d)).unwrap_or_default());
        if benefit.per_household_yearly > 0 {
            let taken = shop::redeemed_in_year(&mut *tx, &benefit.id, &request.household_id, year).await?;
            if taken + quantity > benefit.per_household_yearly {
                return Err(refused(format!(
                    "每户每年限兑 {} 件,今年已兑 {taken} 件 / at most {} a year per household, {taken} taken",
                    benefit.per_household_yearly, benefit.per_household_yearly
                )));
            }
        }
        if !catalogue::take_stock(&mut *tx, &benefit.id, quantity).await? {
            return Err(refused(format!(
                "库存不足:剩余 {} / out of stock: {} left",
                benefit.stock_left, benefit.stock_left
            )));
        }
        let row = RedemptionRow {
            id: uuid::Uuid::now_v7().to_string(),
            benefit_id: benefit.id.clone(),
            household_id: request.household_id.clone(),
            quantity,
            points,
            status: RedemptionStatus::Redeemed as i64,
            client_key: request.client_key.clone(),
            redeemed_by: caller.account_id().to_owned(),
            redeemed_at: at,
            year,
            cancelled_by: String::new(),
            cancelled_at: None,
            cancel_reason: String::new(),
        };
        shop::insert(&mut *tx, &row).await?;
        let redemption = redemption_proto(&row);
        self.outbox.write(&mut tx, &row.household_id, &Redeemed { redemption: Some(redemption.clone()) }).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(redemption)
    }

    /// Cancels a redemption and refunds it: by the item's provider, or a county or town admin in
    /// scope. Cancelling a cancelled redemption returns it unchanged.
    pub async fn cancel_redemption(&self, caller: &Caller, id: &str, reason: &str) -> Result<Redemption> {
        if reason.trim().is_empty() {
            return Err(BenefitsError::invalid("reason", "须说明原因 / a reason is required"));
        }
        let mut tx = self.db.begin().await?;
        let row = shop::redemption(&mut *tx, id).await?.ok_or(BenefitsError::NotFound("redemption"))?;
        let benefit =
            catalogue::benefit(&mut *tx, &row.benefit_id).await?.ok_or(BenefitsError::NotFound("redemption"))?;
        let provider = catalogue::acts_for(&mut *tx, caller.account_id(), &benefit.provider_id).await?;
        let path = readmodel::household_path(&mut *tx, &row.household_id).await?.unwrap_or_default();
        let admin = caller.has_any_role(access::REFUNDERS) && caller.covers(&path_ids(&path));
        if !(provider || admin) {
            return Err(BenefitsError::NotFound("redemption"));
        }
        let at = now();
        let cancelled_now = shop::cancel(&mut *tx, id, caller.account_id(), at, reason.trim()).await?;
        if cancelled_now {
            shop::refund(&mut *tx, &row.household_id, row.points).await?;
            catalogue::return_stock(&mut *tx, &row.benefit_id, row.quantity).await?;
        }
        let row = shop::redemption(&mut *tx, id).await?.ok_or(BenefitsError::NotFound("redemption"))?;
        let redemption = redemption_proto(&row);
        if cancelled_now {
            self.outbox.write(&mut tx, &row.household_id, &Refunded { redemption: Some(redemption.clone()) }).await?;
        }
        tx.commit().await?;
        self.outbox.wake();
        Ok(redemption)
    }

    pub async fn list_redemptions(
        &self,
        caller: &Caller,
        household_id: &str,
        page: Page,
    ) -> Result<ListRedemptionsResponse> {
        let mut tx = self.db.begin_read().await?;
        self.readable_household(&mut tx, caller, household_id).await?;
        let before = page.after.as_deref().and_then(|token| {
            let (at, id) = token.split_once(':')?;
            Some((at.parse().ok()?, id.to_owned()))
        });
        let mut rows = shop::list(&mut *tx, household_id, before, page.fetch_limit()).await?;
        let next_page_token = page.finish(&mut rows, |r| format!("{}:{}", r.redeemed_at, r.id));
        Ok(ListRedemptionsResponse { redemptions: rows.iter().map(redemption_proto).collect(), next_page_token })
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

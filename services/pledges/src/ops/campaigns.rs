//! Signing campaigns: moments when residents come anyway (medical-insurance payment, pension
//! certification, the villagers' meeting), over a set of villages and dates, with their progress.

use chrono::NaiveDate;
use jiaxin_kit::{
    auth::Caller,
    error::Violations,
    page::Page,
    storage::Tx,
    time::{china_date, now_micros, parse_date, to_timestamp},
};
use jiaxin_proto::pledges::{
    Campaign, CampaignProgress, CreateCampaignRequest, GetCampaignResponse, ListCampaignsResponse, Moment,
};

use super::{Pledges, coverage::coverage_proto};
use crate::{
    domain::{
        access,
        state::{Counts, path_ids},
    },
    error::{PledgesError, Result},
    ops::templates::holds_templates,
    store::{self, CampaignRow, HouseholdRow},
};

const CAMPAIGN: &str = "签约活动";
const MAX_NODES: usize = 500;

fn campaign_proto(c: &CampaignRow, nodes: &[(String, String)]) -> Campaign {
    Campaign {
        id: c.id.clone(),
        name: c.name.clone(),
        moment: c.moment as i32,
        org_node_ids: nodes.iter().map(|(id, _)| id.clone()).collect(),
        starts_on: c.starts_on.clone(),
        ends_on: c.ends_on.clone(),
        created_by: c.created_by.clone(),
        created_at: Some(to_timestamp(c.created_at)),
    }
}

fn runs_on(c: &CampaignRow, day: NaiveDate) -> bool {
    match (parse_date(&c.starts_on), parse_date(&c.ends_on)) {
        (Some(start), Some(end)) => start <= day && day <= end,
        _ => false,
    }
}

fn validate(req: &CreateCampaignRequest) -> Result<(Vec<String>, NaiveDate, NaiveDate)> {
    let mut v = Violations::new();
    if req.name.trim().is_empty() {
        v.add("name", "必填 / required");
    } else if req.name.chars().count() > 100 {
        v.add("name", "不超过100字 / at most 100 characters");
    }
    if !matches!(Moment::try_from(req.moment), Ok(m) if m != Moment::Unspecified) {
        v.add("moment", "须为医保缴费、养老认证、村民大会或其他 / a moment residents come anyway");
    }
    let mut nodes: Vec<String> = req.org_node_ids.iter().map(|id| id.trim().to_owned()).collect();
    nodes.sort();
    nodes.dedup();
    if nodes.is_empty() || nodes.iter().any(String::is_empty) {
        v.add("org_node_ids", "至少一个村(社区)/ at least one village or community");
    } else if nodes.len() > MAX_NODES {
        v.add("org_node_ids", "最多500个 / at most 500");
    }
    let starts = parse_date(&req.starts_on);
    let ends = parse_date(&req.ends_on);
    if starts.is_none() {
        v.add("starts_on", "日期格式为 YYYY-MM-DD / a date, YYYY-MM-DD");
    }
    match ends {
        None => v.add("ends_on", "日期格式为 YYYY-MM-DD / a date, YYYY-MM-DD"),
        Some(end) if starts.is_some_and(|start| end < start) => v.add("ends_on", "不能早于开始日期 / before the start"),
        Some(_) => {}
    }
    v.into_result()?;
    match (starts, ends) {
        (Some(starts), Some(ends)) => Ok((nodes, starts, ends)),
        _ => Err(PledgesError::Internal("dates validated above".into())),
    }
}

impl Pledges {
    pub async fn create_campaign(&self, caller: &Caller, req: CreateCampaignRequest) -> Result<Campaign> {
        if !caller.has_any_role(access::CAMPAIGNERS) {
            return Err(PledgesError::PermissionDenied);
        }
        let (nodes, starts, ends) = validate(&req)?;
        let mut tx = self.db.begin().await?;
        let mut with_paths = Vec::with_capacity(nodes.len());
        for id in &nodes {
            let (path, kind) = store::org_node(&mut *tx, id).await?.ok_or(PledgesError::NotFound("村(社区)"))?;
            if !caller.covers(&path_ids(&path)) {
                return Err(PledgesError::NotFound("村(社区)"));
            }
            if !holds_templates(kind) {
                return Err(PledgesError::invalid("org_node_ids", "须为村或社区 / villages and communities only"));
            }
            with_paths.push((id.clone(), path));
        }
        let row = CampaignRow {
            id: uuid::Uuid::now_v7().to_string(),
            name: req.name.trim().to_owned(),
            moment: i64::from(req.moment),
            starts_on: starts.format("%Y-%m-%d").to_string(),
            ends_on: ends.format("%Y-%m-%d").to_string(),
            created_by: caller.account_id().to_owned(),
            created_at: now_micros(),
            collected: 0,
        };
        store::insert_campaign(&mut *tx, &row).await?;
        for (id, path) in &with_paths {
            store::insert_campaign_node(&mut *tx, &row.id, id, path).await?;
        }
        tx.commit().await?;
        Ok(campaign_proto(&row, &with_paths))
    }

    pub async fn get_campaign(&self, caller: &Caller, id: &str) -> Result<GetCampaignResponse> {
        if !caller.has_any_role(access::READERS) {
            return Err(PledgesError::PermissionDenied);
        }
        let mut tx = self.db.begin_read().await?;
        let campaign = store::campaign(&mut *tx, id.trim()).await?.ok_or(PledgesError::NotFound(CAMPAIGN))?;
        let nodes = store::campaign_nodes(&mut *tx, &campaign.id).await?;
        // Visible to whoever covers one of its villages (or the whole campaign from above).
        if !nodes.iter().any(|(_, path)| caller.covers(&path_ids(path))) {
            return Err(PledgesError::NotFound(CAMPAIGN));
        }
        let mut total = Counts::default();
        for (node, _) in &nodes {
            total += store::coverage(&mut *tx, node).await?;
        }
        let running = china_date(now_micros()).is_some_and(|today| runs_on(&campaign, today));
        Ok(GetCampaignResponse {
            campaign: Some(campaign_proto(&campaign, &nodes)),
            progress: Some(CampaignProgress {
                coverage: Some(coverage_proto("", &total)),
                collected: campaign.collected,
                running,
            }),
        })
    }

    pub async fn list_campaigns(
        &self,
        caller: &Caller,
        org_node_id: &str,
        page: Page,
    ) -> Result<ListCampaignsResponse> {
        if !caller.has_any_role(access::READERS) {
            return Err(PledgesError::PermissionDenied);
        }
        let node = if org_node_id.trim().is_empty() { caller.scope() } else { org_node_id.trim() };
        let mut tx = self.db.begin_read().await?;
        let (path, _) = store::org_node(&mut *tx, node).await?.ok_or(PledgesError::NotFound("组织"))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(PledgesError::NotFound("组织"));
        }
        let mut rows = store::campaigns_under(&mut *tx, &path, page.after.as_deref(), page.fetch_limit()).await?;
        let next_page_token = page.finish(&mut rows, |c| c.id.clone());
        let mut campaigns = Vec::with_capacity(rows.len());
        for row in &rows {
            campaigns.push(campaign_proto(row, &store::campaign_nodes(&mut *tx, &row.id).await?));
        }
        Ok(ListCampaignsResponse { campaigns, next_page_token })
    }

    /// A signature collected under a campaign must fall within its dates and villages.
    pub(crate) async fn check_campaign(
        &self,
        tx: &mut Tx,
        campaign_id: &str,
        household: &HouseholdRow,
        day: NaiveDate,
    ) -> Result<()> {
        let campaign = store::campaign(&mut **tx, campaign_id)
            .await?
            .ok_or_else(|| PledgesError::invalid("campaign_id", "没有该活动 / no such campaign"))?;
        if !runs_on(&campaign, day) {
            return Err(PledgesError::invalid(
                "campaign_id",
                format!(
                    "活动期为 {} 至 {} / the campaign runs {} to {}",
                    campaign.starts_on, campaign.ends_on, campaign.starts_on, campaign.ends_on
                ),
            ));
        }
        let path = path_ids(&household.path);
        let nodes = store::campaign_nodes(&mut **tx, &campaign.id).await?;
        if !nodes.iter().any(|(id, _)| path.contains(&id.as_str())) {
            return Err(PledgesError::invalid(
                "campaign_id",
                "该户不在活动范围内 / the household is outside the campaign",
            ));
        }
        Ok(())
    }
}

//! Coverage read from the maintained aggregates, and the grid worker's visit list (查漏补缺).

use jiaxin_kit::{auth::Caller, page::Page};
use jiaxin_proto::pledges::{Coverage, GetCoverageResponse, ListUnsignedResponse, PledgeState, UnsignedHousehold};

use super::{Pledges, state_of};
use crate::{
    domain::{
        access,
        state::{Counts, path_ids},
    },
    error::{PledgesError, Result},
    store,
};

const NODE: &str = "组织";
/// Separates address and id in a visit-list page token (never in either).
const KEY_SEPARATOR: char = '\u{1f}';

pub(crate) fn coverage_proto(org_node_id: &str, c: &Counts) -> Coverage {
    Coverage {
        org_node_id: org_node_id.to_owned(),
        households: c.households,
        signed: c.signed,
        renewal_due: c.renewal_due,
        revoked: c.revoked,
        unsigned: c.unsigned(),
        coverage_permille: c.coverage_permille(),
    }
}

impl Pledges {
    pub async fn coverage(&self, caller: &Caller, org_node_id: &str) -> Result<GetCoverageResponse> {
        if !caller.has_any_role(access::READERS) {
            return Err(PledgesError::PermissionDenied);
        }
        let node = if org_node_id.trim().is_empty() { caller.scope() } else { org_node_id.trim() };
        let mut tx = self.db.begin_read().await?;
        let (path, _) = store::org_node(&mut *tx, node).await?.ok_or(PledgesError::NotFound(NODE))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(PledgesError::NotFound(NODE));
        }
        let own = store::coverage(&mut *tx, node).await?;
        let children = store::children_coverage(&mut *tx, node).await?;
        Ok(GetCoverageResponse {
            coverage: Some(coverage_proto(node, &own)),
            children: children.iter().map(|(id, counts)| coverage_proto(id, counts)).collect(),
        })
    }

    pub async fn list_unsigned(
        &self,
        caller: &Caller,
        grid_id: &str,
        include_revoked: bool,
        page: Page,
    ) -> Result<ListUnsignedResponse> {
        if !caller.has_any_role(access::READERS) {
            return Err(PledgesError::PermissionDenied);
        }
        if grid_id.trim().is_empty() {
            return Err(PledgesError::invalid("grid_id", "必填 / required"));
        }
        let after = match page.after.as_deref() {
            None => None,
            Some(key) => Some(
                key.split_once(KEY_SEPARATOR)
                    .ok_or_else(|| PledgesError::invalid("page_token", "无效的分页令牌 / invalid page token"))?,
            ),
        };
        let mut tx = self.db.begin_read().await?;
        let (path, _) = store::org_node(&mut *tx, grid_id.trim()).await?.ok_or(PledgesError::NotFound(NODE))?;
        if !caller.covers(&path_ids(&path)) {
            return Err(PledgesError::NotFound(NODE));
        }
        let mut states = vec![PledgeState::Unsigned as i64, PledgeState::RenewalDue as i64];
        if include_revoked {
            states.push(PledgeState::Revoked as i64);
        }
        let mut rows = store::visit_list(&mut *tx, grid_id.trim(), &states, after, page.fetch_limit()).await?;
        let next_page_token = page.finish(&mut rows, |h| format!("{}{KEY_SEPARATOR}{}", h.address, h.id));
        Ok(ListUnsignedResponse {
            households: rows
                .iter()
                .map(|h| UnsignedHousehold {
                    household_id: h.id.clone(),
                    address: h.address.clone(),
                    state: state_of(h) as i32,
                    head_resident_id: h.head_resident_id.clone(),
                })
                .collect(),
            next_page_token,
        })
    }
}

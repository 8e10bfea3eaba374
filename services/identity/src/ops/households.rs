//! Households and residents: register, change membership (add, remove, move, split, merge,
//! death), read and list, always inside the caller's scope and with full membership history.

use jiaxin_kit::{
    auth::{Caller, Role},
    error::Violations,
    page::Page,
    storage::Tx,
    time::to_timestamp,
};
use jiaxin_proto::identity::{
    AddMemberRequest, Gender, Household, HouseholdDissolved, HouseholdHeadChanged, HouseholdRegistered, HouseholdSplit,
    HouseholdStatus, HouseholdsMerged, ListHouseholdsRequest, ListHouseholdsResponse, ListMembershipHistoryRequest,
    MemberJoined, MemberLeft, MembershipEntry, MembershipReason, MergeHouseholdsRequest, MoveMemberRequest,
    NewResident, OrgNodeKind, RecordDeathRequest, RegisterHouseholdRequest, Relation, RemoveMemberRequest, Resident,
    ResidentDied, SetHouseholdHeadRequest, SplitHouseholdRequest, list_membership_history_request::Subject,
};

use super::{Identity, earlier_result, new_id, org::kind_of, remember_result, request_hash, today};
use crate::{
    domain::{
        access,
        id_number::{self, IdNumber},
        org,
    },
    error::{IdentityError, Result},
    store::{self, HouseholdRow, NewResidentRow, ResidentRow},
};

const HOUSEHOLD: &str = "家庭户";
const RESIDENT: &str = "居民";
pub(crate) const ID_CONTEXT: &str = "residents.id_number";
const PHONE_CONTEXT: &str = "residents.phone";

/// A resident checked and encrypted, ready to insert.
pub(crate) struct PreparedResident {
    pub id: String,
    pub name: String,
    pub id_number: IdNumber,
    pub bidx: String,
    id_ct: Vec<u8>,
    phone_ct: Option<Vec<u8>>,
    phone_masked: String,
    birth_date: String,
    id_masked: String,
}

impl PreparedResident {
    pub fn row(&self) -> NewResidentRow<'_> {
        NewResidentRow {
            id: &self.id,
            name: &self.name,
            gender: if self.id_number.male { Gender::Male as i64 } else { Gender::Female as i64 },
            birth_date: &self.birth_date,
            id_number_ct: self.id_ct.clone(),
            id_number_bidx: &self.bidx,
            id_number_masked: &self.id_masked,
            phone_ct: self.phone_ct.clone(),
            phone_masked: &self.phone_masked,
        }
    }

    pub fn birth_date(&self) -> &str {
        &self.birth_date
    }
}

impl Identity {
    /// Validates a new resident's fields (reported under `prefix`) and encrypts what is personal.
    pub(crate) fn prepare_resident(
        &self,
        v: &mut Violations,
        prefix: &str,
        input: &NewResident,
    ) -> Option<PreparedResident> {
        let name = input.name.trim();
        let field = |f: &str| {
            if prefix.is_empty() { f.to_owned() } else { format!("{prefix}.{f}") }
        };
        v.require(&field("name"), name);
        if name.chars().count() > 64 {
            v.add(field("name"), "不超过64个字符 / at most 64 characters");
        }
        let id_number = match IdNumber::parse(&input.id_number, today()) {
            Ok(id) => Some(id),
            Err(error) => {
                v.add(field("id_number"), error.to_string());
                None
            }
        };
        let phone = if input.phone.trim().is_empty() {
            None
        } else {
            match id_number::parse_phone(&input.phone) {
                Ok(p) => Some(p),
                Err(error) => {
                    v.add(field("phone"), error.to_string());
                    None
                }
            }
        };
        if !v.is_empty() {
            // Something in the request is refused already: spend no crypto on it.
            return None;
        }
        let id_number = id_number?;
        Some(PreparedResident {
            id: new_id(),
            name: name.to_owned(),
            bidx: self.cipher.blind_index(ID_CONTEXT, id_number.as_str()),
            id_ct: self.cipher.encrypt(ID_CONTEXT, id_number.as_str()),
            phone_ct: phone.as_deref().map(|p| self.cipher.encrypt(PHONE_CONTEXT, p)),
            phone_masked: phone.as_deref().map(id_number::mask_phone).unwrap_or_default(),
            birth_date: id_number.birth_date.format("%Y-%m-%d").to_string(),
            id_masked: id_number.masked(),
            id_number,
        })
    }

    /// Inserts a prepared resident, refusing an ID number that is registered already.
    pub(crate) async fn insert_resident(&self, tx: &mut Tx, field: &str, resident: &PreparedResident) -> Result<()> {
        let taken = || IdentityError::invalid(field, "该身份证号已登记 / this ID number is registered already");
        if store::resident_id_by_index(&mut **tx, &resident.bidx).await?.is_some() {
            return Err(taken());
        }
        // A concurrent registration of the same person can pass the check; the unique blind
        // index refuses the second, which must read as the same answer.
        store::insert_resident(&mut **tx, &resident.row())
            .await
            .map_err(|e| if super::is_unique_violation(&e) { taken() } else { e.into() })?;
        Ok(())
    }

    /// A household the caller may read (`write == false`) or change. Out of scope reads as
    /// missing; a resident reads only their own household.
    async fn household_for(&self, tx: &mut Tx, caller: &Caller, id: &str, write: bool) -> Result<HouseholdRow> {
        if write {
            store::lock_household(&mut **tx, id).await?;
        }
        let row = store::household(&mut **tx, id).await?.ok_or(IdentityError::NotFound(HOUSEHOLD))?;
        let roles = if write { access::HOUSEHOLD_EDITORS } else { access::HOUSEHOLD_READERS };
        let by_role = caller.has_any_role(roles) && caller.covers(&org::path_ids(&row.grid_path));
        let own = !write && caller.has_role(Role::Resident) && self.is_own_household(tx, caller, &row.id).await?;
        if by_role || own { Ok(row) } else { Err(IdentityError::NotFound(HOUSEHOLD)) }
    }

    async fn is_own_household(&self, tx: &mut Tx, caller: &Caller, household_id: &str) -> Result<bool> {
        let Some(resident_id) = caller.0.rid.as_deref() else {
            return Ok(false);
        };
        Ok(store::resident(&mut **tx, resident_id).await?.and_then(|r| r.household_id).as_deref() == Some(household_id))
    }

    /// A resident the caller may read or change, judged by the resident's latest household.
    async fn resident_for(&self, tx: &mut Tx, caller: &Caller, id: &str, write: bool) -> Result<ResidentRow> {
        let row = store::resident(&mut **tx, id).await?.ok_or(IdentityError::NotFound(RESIDENT))?;
        let roles = if write { access::HOUSEHOLD_EDITORS } else { access::HOUSEHOLD_READERS };
        let path = store::resident_scope_path(&mut **tx, id).await?.unwrap_or_default();
        let by_role = caller.has_any_role(roles) && caller.covers(&org::path_ids(&path));
        let own = !write
            && caller.has_role(Role::Resident)
            && match (caller.0.rid.as_deref(), &row.household_id) {
                (Some(me), _) if me == row.id => true,
                (Some(_), Some(hh)) => self.is_own_household(tx, caller, hh).await?,
                _ => false,
            };
        if by_role || own { Ok(row) } else { Err(IdentityError::NotFound(RESIDENT)) }
    }

    async fn grid_for(&self, tx: &mut Tx, caller: &Caller, grid_id: &str) -> Result<store::OrgRow> {
        let grid = self.visible_node(tx, caller, grid_id, "网格").await?;
        if kind_of(&grid) != OrgNodeKind::Grid {
            return Err(IdentityError::invalid("grid_id", "应为网格节点 / must be a grid"));
        }
        Ok(grid)
    }

    pub(crate) async fn household_proto(&self, tx: &mut Tx, row: &HouseholdRow) -> Result<Household> {
        let members = store::members(&mut **tx, &row.id).await?;
        Ok(Household {
            id: row.id.clone(),
            grid_id: row.grid_id.clone(),
            address: row.address.clone(),
            head_resident_id: row.head_resident_id.clone().unwrap_or_default(),
            status: row.status as i32,
            members: members.iter().map(resident_proto).collect(),
            created_at: Some(to_timestamp(row.created_at)),
        })
    }

    async fn reload(&self, tx: &mut Tx, id: &str) -> Result<Household> {
        let row = store::household(&mut **tx, id).await?.ok_or(IdentityError::NotFound(HOUSEHOLD))?;
        self.household_proto(tx, &row).await
    }

    /// Writes a new household with its head, and its two events.
    pub(crate) async fn create_household(
        &self,
        tx: &mut Tx,
        grid: &store::OrgRow,
        address: &str,
        head: &PreparedResident,
        reason: MembershipReason,
    ) -> Result<String> {
        let household_id = new_id();
        store::insert_household(&mut **tx, &household_id, &grid.id, address, &head.id).await?;
        let registered = HouseholdRegistered {
            household_id: household_id.clone(),
            grid_id: grid.id.clone(),
            head_resident_id: head.id.clone(),
            org_path: org::path_ids(&grid.path),
            address: address.to_owned(),
            head_birth_date: head.birth_date().to_owned(),
        };
        self.outbox.write(tx, &household_id, &registered).await?;
        self.record_join(tx, &household_id, &head.id, head.birth_date(), Relation::Head, reason).await?;
        Ok(household_id)
    }

    pub async fn register_household(&self, caller: &Caller, req: RegisterHouseholdRequest) -> Result<Household> {
        caller.require_any_role(access::HOUSEHOLD_EDITORS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("grid_id", &req.grid_id);
        v.require("address", &req.address);
        let head = match &req.head {
            Some(head) => self.prepare_resident(&mut v, "head", head),
            None => {
                v.add("head", "必填 / required");
                None
            }
        };
        v.into_result()?;
        let head = head.ok_or_else(|| IdentityError::invalid("head", "必填 / required"))?;

        let hash = request_hash(caller, &req);
        let mut tx = self.db.begin().await?;
        if let Some(id) = earlier_result(&mut tx, "register_household", &req.request_id, &hash).await? {
            return self.reload(&mut tx, &id).await;
        }
        let grid = self.grid_for(&mut tx, caller, &req.grid_id).await?;
        self.insert_resident(&mut tx, "head.id_number", &head).await?;
        let id = self.create_household(&mut tx, &grid, req.address.trim(), &head, MembershipReason::Registered).await?;
        remember_result(&mut tx, "register_household", &req.request_id, &hash, &id).await?;
        let household = self.reload(&mut tx, &id).await?;
        self.commit(tx).await?;
        Ok(household)
    }

    pub async fn get_household(&self, caller: &Caller, id: &str) -> Result<Household> {
        let mut tx = self.db.begin_read().await?;
        let row = self.household_for(&mut tx, caller, id, false).await?;
        self.household_proto(&mut tx, &row).await
    }

    pub async fn list_households(&self, caller: &Caller, req: ListHouseholdsRequest) -> Result<ListHouseholdsResponse> {
        caller.require_any_role(access::HOUSEHOLD_READERS).map_err(|_| IdentityError::PermissionDenied)?;
        let page = Page::parse(req.page_size, &req.page_token)?;
        let node_id = if req.org_node_id.is_empty() { caller.scope().to_owned() } else { req.org_node_id.clone() };
        let mut tx = self.db.begin_read().await?;
        let node = self.visible_node(&mut tx, caller, &node_id, "组织节点").await?;
        let mut rows = store::households_in(&mut *tx, &node.path, &page).await?;
        let next_page_token = page.finish(&mut rows, |r| r.id.clone());
        let mut households = Vec::with_capacity(rows.len());
        for row in &rows {
            households.push(self.household_proto(&mut tx, row).await?);
        }
        Ok(ListHouseholdsResponse { households, next_page_token })
    }

    pub async fn add_member(&self, caller: &Caller, req: AddMemberRequest) -> Result<(Household, Resident)> {
        caller.require_any_role(access::HOUSEHOLD_EDITORS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("household_id", &req.household_id);
        let relation = member_relation(&mut v, "relation", req.relation);
        let resident = match &req.resident {
            Some(r) => self.prepare_resident(&mut v, "resident", r),
            None => {
                v.add("resident", "必填 / required");
                None
            }
        };
        v.into_result()?;
        let resident = resident.ok_or_else(|| IdentityError::invalid("resident", "必填 / required"))?;
        let mut tx = self.db.begin().await?;
        let household = self.household_for(&mut tx, caller, &req.household_id, true).await?;
        require_active(&household)?;
        self.insert_resident(&mut tx, "resident.id_number", &resident).await?;
        self.join_new_member(&mut tx, &household.id, &resident, relation, MembershipReason::Added).await?;
        let updated = self.reload(&mut tx, &household.id).await?;
        let added = store::resident(&mut *tx, &resident.id).await?.ok_or(IdentityError::NotFound(RESIDENT))?;
        self.commit(tx).await?;
        Ok((updated, resident_proto(&added)))
    }

    /// Adds a newly inserted resident to a household, with its event.
    pub(crate) async fn join_new_member(
        &self,
        tx: &mut Tx,
        household_id: &str,
        resident: &PreparedResident,
        relation: Relation,
        reason: MembershipReason,
    ) -> Result<()> {
        self.record_join(tx, household_id, &resident.id, resident.birth_date(), relation, reason).await
    }

    /// Opens a membership and writes its `MemberJoined` event.
    async fn record_join(
        &self,
        tx: &mut Tx,
        household_id: &str,
        resident_id: &str,
        birth_date: &str,
        relation: Relation,
        reason: MembershipReason,
    ) -> Result<()> {
        store::join_household(&mut **tx, resident_id, household_id, relation as i64, reason as i64).await?;
        let joined = MemberJoined {
            household_id: household_id.to_owned(),
            resident_id: resident_id.to_owned(),
            relation: relation as i32,
            reason: reason as i32,
            birth_date: birth_date.to_owned(),
        };
        self.outbox.write(tx, household_id, &joined).await?;
        Ok(())
    }

    /// Ends a member's membership with `reason`, dissolving the household when nobody is left.
    /// The caller has made sure a head does not leave others behind without a head.
    async fn leave(&self, tx: &mut Tx, household_id: &str, resident_id: &str, reason: MembershipReason) -> Result<()> {
        store::leave_household(&mut **tx, resident_id, reason as i64).await?;
        let left = MemberLeft {
            household_id: household_id.to_owned(),
            resident_id: resident_id.to_owned(),
            reason: reason as i32,
        };
        self.outbox.write(tx, household_id, &left).await?;
        if store::members(&mut **tx, household_id).await?.is_empty() {
            store::dissolve_household(&mut **tx, household_id).await?;
            self.outbox.write(tx, household_id, &HouseholdDissolved { household_id: household_id.to_owned() }).await?;
        }
        Ok(())
    }

    async fn join(
        &self,
        tx: &mut Tx,
        household_id: &str,
        resident: &ResidentRow,
        relation: Relation,
        reason: MembershipReason,
    ) -> Result<()> {
        self.record_join(tx, household_id, &resident.id, &resident.birth_date, relation, reason).await
    }

    pub async fn remove_member(&self, caller: &Caller, req: RemoveMemberRequest) -> Result<Household> {
        caller.require_any_role(access::HOUSEHOLD_EDITORS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("household_id", &req.household_id);
        v.require("resident_id", &req.resident_id);
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let household = self.household_for(&mut tx, caller, &req.household_id, true).await?;
        let members = store::members(&mut *tx, &household.id).await?;
        let Some(member) = members.iter().find(|m| m.id == req.resident_id) else {
            return Err(IdentityError::NotFound("户内成员"));
        };
        if household.head_resident_id.as_deref() == Some(member.id.as_str()) && members.len() > 1 {
            return Err(IdentityError::precondition("请先变更户主 / change the household head first"));
        }
        self.leave(&mut tx, &household.id, &member.id, MembershipReason::Removed).await?;
        let updated = self.reload(&mut tx, &household.id).await?;
        self.commit(tx).await?;
        Ok(updated)
    }

    pub async fn set_household_head(&self, caller: &Caller, req: SetHouseholdHeadRequest) -> Result<Household> {
        caller.require_any_role(access::HOUSEHOLD_EDITORS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("household_id", &req.household_id);
        v.require("resident_id", &req.resident_id);
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let household = self.household_for(&mut tx, caller, &req.household_id, true).await?;
        require_active(&household)?;
        self.change_head(&mut tx, &household, &req.resident_id, "resident_id").await?;
        let updated = self.reload(&mut tx, &household.id).await?;
        self.commit(tx).await?;
        Ok(updated)
    }

    async fn change_head(&self, tx: &mut Tx, household: &HouseholdRow, new_head: &str, field: &str) -> Result<()> {
        let members = store::members(&mut **tx, &household.id).await?;
        let Some(member) = members.iter().find(|m| m.id == new_head && m.death_date.is_none()) else {
            return Err(IdentityError::invalid(field, "应为本户在世成员 / must be a living member of the household"));
        };
        if let Some(old) = &household.head_resident_id
            && old != &member.id
        {
            store::set_relation(&mut **tx, old, Relation::Other as i64).await?;
        }
        store::set_relation(&mut **tx, &member.id, Relation::Head as i64).await?;
        store::set_head(&mut **tx, &household.id, Some(&member.id)).await?;
        let event = HouseholdHeadChanged { household_id: household.id.clone(), head_resident_id: member.id.clone() };
        self.outbox.write(tx, &household.id, &event).await?;
        Ok(())
    }

    pub async fn move_member(&self, caller: &Caller, req: MoveMemberRequest) -> Result<(Household, Household)> {
        caller.require_any_role(access::HOUSEHOLD_EDITORS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("resident_id", &req.resident_id);
        v.require("to_household_id", &req.to_household_id);
        let relation = member_relation(&mut v, "relation", req.relation);
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let resident = self.resident_for(&mut tx, caller, &req.resident_id, true).await?;
        if resident.death_date.is_some() {
            return Err(IdentityError::precondition("该居民已故 / the resident is deceased"));
        }
        let target = self.household_for(&mut tx, caller, &req.to_household_id, true).await?;
        require_active(&target)?;
        let from_id = resident.household_id.clone();
        if from_id.as_deref() == Some(target.id.as_str()) {
            return Err(IdentityError::invalid("to_household_id", "已是该户成员 / already a member of that household"));
        }
        if let Some(from_id) = &from_id {
            let from = store::household(&mut *tx, from_id).await?.ok_or(IdentityError::NotFound(HOUSEHOLD))?;
            let others = store::members(&mut *tx, from_id).await?.len() > 1;
            if from.head_resident_id.as_deref() == Some(resident.id.as_str()) && others {
                return Err(IdentityError::precondition(
                    "请先变更原户户主 / change the head of the old household first",
                ));
            }
            self.leave(&mut tx, from_id, &resident.id, MembershipReason::Moved).await?;
        }
        self.join(&mut tx, &target.id, &resident, relation, MembershipReason::Moved).await?;
        let from = match &from_id {
            Some(id) => self.reload(&mut tx, id).await?,
            None => Household::default(),
        };
        let to = self.reload(&mut tx, &target.id).await?;
        self.commit(tx).await?;
        Ok((from, to))
    }

    pub async fn split_household(&self, caller: &Caller, req: SplitHouseholdRequest) -> Result<(Household, Household)> {
        caller.require_any_role(access::HOUSEHOLD_EDITORS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("household_id", &req.household_id);
        v.require("new_head_resident_id", &req.new_head_resident_id);
        if req.resident_ids.is_empty() {
            v.add("resident_ids", "至少一人 / at least one member");
        }
        let mut unique = req.resident_ids.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != req.resident_ids.len() {
            v.add("resident_ids", "有重复 / contains duplicates");
        }
        if !req.new_head_resident_id.is_empty() && !req.resident_ids.contains(&req.new_head_resident_id) {
            v.add("new_head_resident_id", "应在分出成员之中 / must be one of resident_ids");
        }
        v.into_result()?;

        let hash = request_hash(caller, &req);
        let mut tx = self.db.begin().await?;
        if let Some(new_id) = earlier_result(&mut tx, "split_household", &req.request_id, &hash).await? {
            let original = self.reload(&mut tx, &req.household_id).await?;
            return Ok((original, self.reload(&mut tx, &new_id).await?));
        }
        let household = self.household_for(&mut tx, caller, &req.household_id, true).await?;
        require_active(&household)?;
        let members = store::members(&mut *tx, &household.id).await?;
        let leaving: Vec<&ResidentRow> = members.iter().filter(|m| req.resident_ids.contains(&m.id)).collect();
        if leaving.len() != req.resident_ids.len() {
            return Err(IdentityError::invalid("resident_ids", "应均为本户现有成员 / must all be current members"));
        }
        if leaving.len() == members.len() {
            return Err(IdentityError::invalid("resident_ids", "不能全部分出 / cannot split off every member"));
        }
        if leaving.iter().any(|m| household.head_resident_id.as_deref() == Some(m.id.as_str())) {
            return Err(IdentityError::precondition(
                "原户主不能分出,请先变更户主 / the head cannot leave; change the head first",
            ));
        }
        let Some(new_head) = leaving.iter().find(|m| m.id == req.new_head_resident_id) else {
            return Err(IdentityError::invalid(
                "new_head_resident_id",
                "应在分出成员之中 / must be one of resident_ids",
            ));
        };
        let adult = chrono::NaiveDate::parse_from_str(&new_head.birth_date, "%Y-%m-%d")
            .map(|birth| id_number::age_on(birth, today()) >= 18)
            .unwrap_or(false);
        if !adult || new_head.death_date.is_some() {
            return Err(IdentityError::invalid(
                "new_head_resident_id",
                "新户主应为在世成年人 / must be a living adult",
            ));
        }
        let grid_id = if req.grid_id.is_empty() { household.grid_id.clone() } else { req.grid_id.clone() };
        let grid = self.grid_for(&mut tx, caller, &grid_id).await?;
        let address =
            if req.address.trim().is_empty() { household.address.clone() } else { req.address.trim().to_owned() };

        let created_id = new_id();
        store::insert_household(&mut *tx, &created_id, &grid.id, &address, &new_head.id).await?;
        let registered = HouseholdRegistered {
            household_id: created_id.clone(),
            grid_id: grid.id.clone(),
            head_resident_id: new_head.id.clone(),
            org_path: org::path_ids(&grid.path),
            address: address.clone(),
            head_birth_date: new_head.birth_date.clone(),
        };
        self.outbox.write(&mut tx, &created_id, &registered).await?;
        for member in &leaving {
            store::leave_household(&mut *tx, &member.id, MembershipReason::Split as i64).await?;
            let left = MemberLeft {
                household_id: household.id.clone(),
                resident_id: member.id.clone(),
                reason: MembershipReason::Split as i32,
            };
            self.outbox.write(&mut tx, &household.id, &left).await?;
            let relation = if member.id == new_head.id { Relation::Head } else { Relation::Other };
            self.join(&mut tx, &created_id, member, relation, MembershipReason::Split).await?;
        }
        let split = HouseholdSplit {
            original_household_id: household.id.clone(),
            new_household_id: created_id.clone(),
            resident_ids: req.resident_ids.clone(),
        };
        self.outbox.write(&mut tx, &household.id, &split).await?;
        remember_result(&mut tx, "split_household", &req.request_id, &hash, &created_id).await?;
        let original = self.reload(&mut tx, &household.id).await?;
        let created = self.reload(&mut tx, &created_id).await?;
        self.commit(tx).await?;
        Ok((original, created))
    }

    pub async fn merge_households(&self, caller: &Caller, req: MergeHouseholdsRequest) -> Result<Household> {
        caller.require_any_role(access::HOUSEHOLD_EDITORS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("source_household_id", &req.source_household_id);
        v.require("target_household_id", &req.target_household_id);
        if !req.source_household_id.is_empty() && req.source_household_id == req.target_household_id {
            v.add("target_household_id", "不能与来源户相同 / must differ from the source");
        }
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let source = self.household_for(&mut tx, caller, &req.source_household_id, true).await?;
        let target = self.household_for(&mut tx, caller, &req.target_household_id, true).await?;
        require_active(&source)?;
        require_active(&target)?;
        let members = store::members(&mut *tx, &source.id).await?;
        for member in &members {
            self.leave(&mut tx, &source.id, &member.id, MembershipReason::Merged).await?;
            self.join(&mut tx, &target.id, member, Relation::Other, MembershipReason::Merged).await?;
        }
        let merged =
            HouseholdsMerged { source_household_id: source.id.clone(), target_household_id: target.id.clone() };
        self.outbox.write(&mut tx, &target.id, &merged).await?;
        let household = self.reload(&mut tx, &target.id).await?;
        self.commit(tx).await?;
        Ok(household)
    }

    pub async fn record_death(&self, caller: &Caller, req: RecordDeathRequest) -> Result<Resident> {
        caller.require_any_role(access::HOUSEHOLD_EDITORS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("resident_id", &req.resident_id);
        let date = chrono::NaiveDate::parse_from_str(req.date_of_death.trim(), "%Y-%m-%d").ok();
        match date {
            None => v.add("date_of_death", "应为 YYYY-MM-DD 格式的日期 / must be a YYYY-MM-DD date"),
            Some(d) if d > today() => v.add("date_of_death", "不能晚于今天 / cannot be in the future"),
            Some(_) => {}
        }
        v.into_result()?;
        let date = date.unwrap_or_else(today).format("%Y-%m-%d").to_string();
        let mut tx = self.db.begin().await?;
        let resident = self.resident_for(&mut tx, caller, &req.resident_id, true).await?;
        if resident.death_date.is_some() {
            return Err(IdentityError::precondition("已登记死亡 / death already recorded"));
        }
        if date < resident.birth_date {
            return Err(IdentityError::invalid("date_of_death", "早于出生日期 / before the date of birth"));
        }
        store::record_death(&mut *tx, &resident.id, &date).await?;
        if let Some(household_id) = &resident.household_id {
            let household =
                store::household(&mut *tx, household_id).await?.ok_or(IdentityError::NotFound(HOUSEHOLD))?;
            let others = store::members(&mut *tx, household_id).await?.len() > 1;
            if household.head_resident_id.as_deref() == Some(resident.id.as_str()) && others {
                if req.new_head_resident_id.is_empty() || req.new_head_resident_id == resident.id {
                    return Err(IdentityError::invalid(
                        "new_head_resident_id",
                        "户主去世需指定新户主 / a new head is required",
                    ));
                }
                self.change_head(&mut tx, &household, &req.new_head_resident_id, "new_head_resident_id").await?;
            }
            let died = ResidentDied {
                resident_id: resident.id.clone(),
                household_id: household_id.clone(),
                date_of_death: date.clone(),
            };
            self.outbox.write(&mut tx, household_id, &died).await?;
            self.leave(&mut tx, household_id, &resident.id, MembershipReason::Died).await?;
        }
        let updated = store::resident(&mut *tx, &resident.id).await?.ok_or(IdentityError::NotFound(RESIDENT))?;
        self.commit(tx).await?;
        Ok(resident_proto(&updated))
    }

    pub async fn get_resident(&self, caller: &Caller, id: &str) -> Result<Resident> {
        let mut tx = self.db.begin_read().await?;
        let row = self.resident_for(&mut tx, caller, id, false).await?;
        Ok(resident_proto(&row))
    }

    pub async fn find_resident(&self, caller: &Caller, id_number: &str) -> Result<Resident> {
        caller.require_any_role(access::HOUSEHOLD_READERS).map_err(|_| IdentityError::PermissionDenied)?;
        let id = IdNumber::parse(id_number, today()).map_err(|e| IdentityError::invalid("id_number", e.to_string()))?;
        let bidx = self.cipher.blind_index(ID_CONTEXT, id.as_str());
        let mut tx = self.db.begin_read().await?;
        let resident_id =
            store::resident_id_by_index(&mut *tx, &bidx).await?.ok_or(IdentityError::NotFound(RESIDENT))?;
        let row = self.resident_for(&mut tx, caller, &resident_id, false).await?;
        Ok(resident_proto(&row))
    }

    pub async fn membership_history(
        &self,
        caller: &Caller,
        req: ListMembershipHistoryRequest,
    ) -> Result<Vec<MembershipEntry>> {
        let mut tx = self.db.begin_read().await?;
        let rows = match req.subject {
            Some(Subject::HouseholdId(id)) if !id.is_empty() => {
                let household = self.household_for(&mut tx, caller, &id, false).await?;
                store::history_of_household(&mut *tx, &household.id).await?
            }
            Some(Subject::ResidentId(id)) if !id.is_empty() => {
                let resident = self.resident_for(&mut tx, caller, &id, false).await?;
                store::history_of_resident(&mut *tx, &resident.id).await?
            }
            _ => {
                return Err(IdentityError::invalid(
                    "subject",
                    "需给出 household_id 或 resident_id / household_id or resident_id is required",
                ));
            }
        };
        Ok(rows
            .into_iter()
            .map(|m| MembershipEntry {
                resident_id: m.resident_id,
                household_id: m.household_id,
                relation: m.relation as i32,
                joined_at: Some(to_timestamp(m.joined_at)),
                join_reason: m.join_reason as i32,
                left_at: m.left_at.map(to_timestamp),
                leave_reason: m.leave_reason.unwrap_or_default() as i32,
            })
            .collect())
    }
}

fn require_active(household: &HouseholdRow) -> Result<()> {
    if household.status == HouseholdStatus::Active as i64 {
        Ok(())
    } else {
        Err(IdentityError::precondition("该户已注销 / the household is dissolved"))
    }
}

/// A member's relation to the head: any but HEAD (heads change through SetHouseholdHead).
fn member_relation(v: &mut Violations, field: &str, value: i32) -> Relation {
    match Relation::try_from(value) {
        Ok(Relation::Unspecified) | Err(_) => {
            v.add(field, "必须指定与户主关系 / required");
            Relation::Other
        }
        Ok(Relation::Head) => {
            v.add(field, "变更户主请用 SetHouseholdHead / use SetHouseholdHead to change the head");
            Relation::Other
        }
        Ok(relation) => relation,
    }
}

pub(crate) fn resident_proto(row: &ResidentRow) -> Resident {
    Resident {
        id: row.id.clone(),
        name: row.name.clone(),
        id_number_masked: row.id_number_masked.clone(),
        phone_masked: row.phone_masked.clone(),
        gender: row.gender as i32,
        birth_date: row.birth_date.clone(),
        death_date: row.death_date.clone().unwrap_or_default(),
        household_id: row.household_id.clone().unwrap_or_default(),
        relation: row.relation.unwrap_or_default() as i32,
    }
}

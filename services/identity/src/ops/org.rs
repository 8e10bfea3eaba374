//! The org tree: create, rename, move, read and list nodes inside the caller's scope.

use jiaxin_kit::{
    auth::Caller,
    error::Violations,
    page::Page,
    time::{now_micros, to_timestamp},
};
use jiaxin_proto::identity::{
    CreateOrgNodeRequest, ListOrgChildrenRequest, ListOrgChildrenResponse, MoveOrgNodeRequest, OrgNode, OrgNodeCreated,
    OrgNodeKind, OrgNodeMoved, OrgNodeRenamed, RenameOrgNodeRequest,
};

use super::{Identity, earlier_result, is_unique_violation, new_id, remember_result, request_hash};
use crate::{
    domain::{access, org},
    error::{IdentityError, Result},
    store::{self, OrgRow},
};

const NODE: &str = "组织节点";

pub(crate) fn org_proto(row: &OrgRow) -> OrgNode {
    OrgNode {
        id: row.id.clone(),
        parent_id: row.parent_id.clone().unwrap_or_default(),
        kind: row.kind as i32,
        name: row.name.clone(),
        code: row.code.clone(),
        path: org::path_ids(&row.path),
        created_at: Some(to_timestamp(row.created_at)),
    }
}

pub(crate) fn kind_of(row: &OrgRow) -> OrgNodeKind {
    OrgNodeKind::try_from(row.kind as i32).unwrap_or(OrgNodeKind::Unspecified)
}

fn validate_name(v: &mut Violations, field: &str, name: &str) {
    v.require(field, name);
    if name.chars().count() > 64 {
        v.add(field, "不超过64个字符 / at most 64 characters");
    }
}

impl Identity {
    /// A node the caller may see: inside its scope. Anything else reads as missing.
    pub(crate) async fn visible_node(
        &self,
        tx: &mut jiaxin_kit::storage::Tx,
        caller: &Caller,
        id: &str,
        what: &'static str,
    ) -> Result<OrgRow> {
        match store::org_node(&mut **tx, id).await? {
            Some(row) if caller.covers(&org::path_ids(&row.path)) => Ok(row),
            _ => Err(IdentityError::NotFound(what)),
        }
    }

    pub async fn create_org_node(&self, caller: &Caller, req: CreateOrgNodeRequest) -> Result<OrgNode> {
        caller.require_any_role(access::ORG_ADMINS).map_err(|_| IdentityError::PermissionDenied)?;
        let kind = OrgNodeKind::try_from(req.kind).unwrap_or(OrgNodeKind::Unspecified);
        let mut v = Violations::new();
        v.require("parent_id", &req.parent_id);
        validate_name(&mut v, "name", &req.name);
        if kind == OrgNodeKind::Unspecified {
            v.add("kind", "必须指定组织类型 / required");
        }
        if req.code.chars().count() > 32 {
            v.add("code", "不超过32个字符 / at most 32 characters");
        }
        v.into_result()?;

        let hash = request_hash(caller, &req);
        let mut tx = self.db.begin().await?;
        if let Some(id) = earlier_result(&mut tx, "create_org_node", &req.request_id, &hash).await? {
            let row = store::org_node(&mut *tx, &id).await?.ok_or(IdentityError::NotFound(NODE))?;
            return Ok(org_proto(&row));
        }
        let parent = self.visible_node(&mut tx, caller, &req.parent_id, "上级组织").await?;
        if !org::may_contain(Some(kind_of(&parent)), kind) {
            return Err(IdentityError::invalid(
                "kind",
                "该类型不能设在此上级之下 / this kind cannot sit under that parent",
            ));
        }
        let id = new_id();
        let row = OrgRow {
            path: org::child_path(Some(&parent.path), &id),
            id,
            parent_id: Some(parent.id.clone()),
            kind: kind as i64,
            name: req.name.trim().to_owned(),
            code: req.code.trim().to_owned(),
            created_at: now_micros(),
        };
        store::insert_org_node(&mut *tx, &row).await.map_err(|e| {
            if is_unique_violation(&e) {
                IdentityError::AlreadyExists("同级已有同名组织 / a sibling has that name".into())
            } else {
                e.into()
            }
        })?;
        let node = org_proto(&row);
        self.outbox.write(&mut tx, &row.id, &OrgNodeCreated { org_node: Some(node.clone()) }).await?;
        remember_result(&mut tx, "create_org_node", &req.request_id, &hash, &row.id).await?;
        self.commit(tx).await?;
        Ok(node)
    }

    pub async fn get_org_node(&self, caller: &Caller, id: &str) -> Result<OrgNode> {
        let mut tx = self.db.begin_read().await?;
        let row = self.visible_node(&mut tx, caller, id, NODE).await?;
        tx.rollback().await?;
        Ok(org_proto(&row))
    }

    pub async fn rename_org_node(&self, caller: &Caller, req: RenameOrgNodeRequest) -> Result<OrgNode> {
        caller.require_any_role(access::ORG_ADMINS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("id", &req.id);
        validate_name(&mut v, "name", &req.name);
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let mut row = self.visible_node(&mut tx, caller, &req.id, NODE).await?;
        row.name = req.name.trim().to_owned();
        store::rename_org_node(&mut *tx, &row.id, &row.name).await.map_err(|e| {
            if is_unique_violation(&e) {
                IdentityError::AlreadyExists("同级已有同名组织 / a sibling has that name".into())
            } else {
                e.into()
            }
        })?;
        self.outbox
            .write(&mut tx, &row.id, &OrgNodeRenamed { org_node_id: row.id.clone(), name: row.name.clone() })
            .await?;
        self.commit(tx).await?;
        Ok(org_proto(&row))
    }

    pub async fn move_org_node(&self, caller: &Caller, req: MoveOrgNodeRequest) -> Result<OrgNode> {
        caller.require_any_role(access::ORG_ADMINS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        v.require("id", &req.id);
        v.require("new_parent_id", &req.new_parent_id);
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let node = self.visible_node(&mut tx, caller, &req.id, NODE).await?;
        // A caller cannot move the node its own scope hangs from: it would lose or widen it.
        if node.id == caller.scope() {
            return Err(IdentityError::PermissionDenied);
        }
        let parent = self.visible_node(&mut tx, caller, &req.new_parent_id, "上级组织").await?;
        if org::path_ids(&parent.path).contains(&node.id) {
            return Err(IdentityError::invalid(
                "new_parent_id",
                "不能移到自身的下级 / cannot move a node under itself",
            ));
        }
        if !org::may_contain(Some(kind_of(&parent)), kind_of(&node)) {
            return Err(IdentityError::invalid(
                "new_parent_id",
                "该类型不能设在此上级之下 / this kind cannot sit under that parent",
            ));
        }
        let new_path = org::child_path(Some(&parent.path), &node.id);
        store::move_subtree(&mut *tx, &node.id, &parent.id, &node.path, &new_path).await.map_err(|e| {
            if is_unique_violation(&e) {
                IdentityError::AlreadyExists("新上级下已有同名组织 / the new parent has a child of that name".into())
            } else {
                e.into()
            }
        })?;
        let moved = store::org_node(&mut *tx, &node.id).await?.ok_or(IdentityError::NotFound(NODE))?;
        let event = OrgNodeMoved {
            org_node_id: node.id.clone(),
            old_parent_id: node.parent_id.clone().unwrap_or_default(),
            new_parent_id: parent.id.clone(),
            path: org::path_ids(&moved.path),
        };
        self.outbox.write(&mut tx, &node.id, &event).await?;
        self.commit(tx).await?;
        Ok(org_proto(&moved))
    }

    pub async fn list_org_children(
        &self,
        caller: &Caller,
        req: ListOrgChildrenRequest,
    ) -> Result<ListOrgChildrenResponse> {
        let parent_id = if req.parent_id.is_empty() { caller.scope().to_owned() } else { req.parent_id.clone() };
        let page = Page::parse(req.page_size, &req.page_token)?;
        let mut tx = self.db.begin_read().await?;
        let parent = self.visible_node(&mut tx, caller, &parent_id, "上级组织").await?;
        let mut rows = store::org_children(&mut *tx, &parent.id, &page).await?;
        tx.rollback().await?;
        let next_page_token = page.finish(&mut rows, |r| r.id.clone());
        Ok(ListOrgChildrenResponse { children: rows.iter().map(org_proto).collect(), next_page_token })
    }
}

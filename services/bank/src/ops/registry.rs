//! Institutions, branches and products.

use jiaxin_kit::{audit, auth::Caller, error::Violations};
use jiaxin_proto::bank::{Branch, Institution, Product};

use super::{Bank, now};
use crate::{
    domain::{access, limits},
    error::{BankError, Result},
    store::{readmodel, registry as store},
};

const MAX_LIST: usize = 500;

/// Trimmed, deduplicated ids; a violation on `field` for empty ones or too many.
fn ids(v: &mut Violations, field: &str, values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = values.iter().map(|s| s.trim().to_owned()).collect();
    out.sort();
    out.dedup();
    if out.iter().any(String::is_empty) {
        v.add(field, "不能为空 / ids must not be empty");
    }
    if out.len() > MAX_LIST {
        v.add(field, format!("最多 {MAX_LIST} 个 / at most {MAX_LIST}"));
    }
    out
}

impl Bank {
    pub async fn save_institution(&self, caller: &Caller, institution: Option<Institution>) -> Result<Institution> {
        if !caller.has_any_role(access::REGISTRARS) {
            return Err(BankError::PermissionDenied);
        }
        let i = institution.ok_or_else(|| BankError::invalid("institution", "必填 / required"))?;
        let mut v = Violations::new();
        v.require("institution.name", &i.name);
        let officers = ids(&mut v, "institution.officer_account_ids", &i.officer_account_ids);
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let id = if i.id.is_empty() { uuid::Uuid::now_v7().to_string() } else { i.id.clone() };
        if !i.id.is_empty() && store::institution_name(&mut *tx, &id).await?.is_none() {
            return Err(BankError::NotFound("institution"));
        }
        for officer in &officers {
            if store::officer_elsewhere(&mut *tx, officer, &id).await?.is_some() {
                return Err(BankError::invalid(
                    "institution.officer_account_ids",
                    format!("{officer} 已是其他机构的客户经理 / already an officer of another institution"),
                ));
            }
        }
        let at = now();
        store::save_institution(&mut tx, &id, i.name.trim(), &officers, at).await?;
        let details = format!("name={} officers={}", i.name.trim(), officers.join(","));
        let entry = audit::Entry {
            at,
            actor: caller.account_id(),
            action: "institution.save",
            subject: &id,
            details: &details,
        };
        audit::append(&mut tx, &[entry]).await?;
        tx.commit().await?;
        Ok(Institution { id, name: i.name.trim().to_owned(), officer_account_ids: officers })
    }

    pub async fn save_branch(&self, caller: &Caller, branch: Option<Branch>) -> Result<Branch> {
        if !caller.has_any_role(access::REGISTRARS) {
            return Err(BankError::PermissionDenied);
        }
        let b = branch.ok_or_else(|| BankError::invalid("branch", "必填 / required"))?;
        let mut v = Violations::new();
        v.require("branch.name", &b.name);
        v.require("branch.institution_id", &b.institution_id);
        let villages = ids(&mut v, "branch.village_ids", &b.village_ids);
        let officers = ids(&mut v, "branch.officer_account_ids", &b.officer_account_ids);
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        if store::institution_name(&mut *tx, &b.institution_id).await?.is_none() {
            return Err(BankError::invalid("branch.institution_id", "机构不存在 / no such institution"));
        }
        let institution_officers = store::officers(&mut *tx, &b.institution_id).await?;
        if let Some(stranger) = officers.iter().find(|o| !institution_officers.contains(o)) {
            return Err(BankError::invalid(
                "branch.officer_account_ids",
                format!("{stranger} 不是该机构的客户经理 / not an officer of the institution"),
            ));
        }
        for village in &villages {
            let path = readmodel::org_path(&mut *tx, village).await?;
            if path.is_none_or(|path| !caller.covers(&jiaxin_kit::sql::path_ids(&path))) {
                return Err(BankError::invalid(
                    "branch.village_ids",
                    format!("{village}: 不在您的辖区 / not in your scope"),
                ));
            }
        }
        let id = if b.id.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            match store::branch(&mut *tx, &b.id).await? {
                Some((institution, _)) if institution == b.institution_id => b.id.clone(),
                Some(_) => {
                    return Err(BankError::invalid(
                        "branch.institution_id",
                        "网点不能换机构 / a branch keeps its institution",
                    ));
                }
                None => return Err(BankError::NotFound("branch")),
            }
        };
        let at = now();
        store::save_branch(&mut tx, &id, &b.institution_id, b.name.trim(), &villages, &officers, at).await?;
        let details =
            format!("institution={} villages={} officers={}", b.institution_id, villages.join(","), officers.join(","));
        let entry =
            audit::Entry { at, actor: caller.account_id(), action: "branch.save", subject: &id, details: &details };
        audit::append(&mut tx, &[entry]).await?;
        tx.commit().await?;
        Ok(Branch {
            id,
            institution_id: b.institution_id,
            name: b.name.trim().to_owned(),
            village_ids: villages,
            officer_account_ids: officers,
        })
    }

    /// Products are the institution's own: its officers write them.
    pub async fn save_product(&self, caller: &Caller, product: Option<Product>) -> Result<Product> {
        let p = product.ok_or_else(|| BankError::invalid("product", "必填 / required"))?;
        let mut v = Violations::new();
        v.require("product.name", &p.name);
        if p.limits.is_empty() {
            v.add("product.limits", "至少一个等级的额度 / at least one tier's limit");
        }
        let table = limits::encode(&p.limits).map_err(|message| v.add("product.limits", message)).unwrap_or_default();
        if !(1..=360).contains(&p.term_months) {
            v.add("product.term_months", "1 到 360 个月 / between 1 and 360 months");
        }
        v.into_result()?;
        let mut tx = self.db.begin().await?;
        let institution = self.officer_institution(&mut tx, caller).await?;
        if !p.institution_id.is_empty() && p.institution_id != institution {
            return Err(BankError::PermissionDenied);
        }
        let id = if p.id.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            match store::product(&mut *tx, &p.id).await? {
                Some(existing) if existing.institution_id == institution => existing.id,
                _ => return Err(BankError::NotFound("product")),
            }
        };
        let row = store::ProductRow {
            id,
            institution_id: institution,
            name: p.name.trim().to_owned(),
            purpose: p.purpose.trim().to_owned(),
            limits: table,
            term_months: i64::from(p.term_months),
            rate_note: p.rate_note.trim().to_owned(),
            updated_at: now(),
        };
        store::save_product(&mut *tx, &row).await?;
        tx.commit().await?;
        Ok(product_proto(&row))
    }

    pub async fn list_products(&self, caller: &Caller, institution_id: &str) -> Result<Vec<Product>> {
        let mut tx = self.db.begin_read().await?;
        let institution = if institution_id.is_empty() {
            self.officer_institution(&mut tx, caller).await?
        } else {
            institution_id.to_owned()
        };
        Ok(store::products_of(&mut *tx, &institution).await?.iter().map(product_proto).collect())
    }
}

pub(crate) fn product_proto(p: &store::ProductRow) -> Product {
    Product {
        id: p.id.clone(),
        institution_id: p.institution_id.clone(),
        name: p.name.clone(),
        purpose: p.purpose.clone(),
        limits: limits::decode(&p.limits),
        term_months: p.term_months as i32,
        rate_note: p.rate_note.clone(),
    }
}

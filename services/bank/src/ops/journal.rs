//! The writes that make a credit report answerable — the consent checked again, the household's
//! query record, the audit entry — made for many concurrent reports in one transaction (group
//! commit, `jiaxin_kit::group_commit`). A report is returned only once its batch has committed;
//! a consent revoked or a household dissolved since the report was read refuses that report
//! alone.

use std::collections::HashMap;

use jiaxin_kit::{audit, group_commit::BatchWriter, storage::Dialect, writes::Writes};
use sqlx::AnyConnection;

use super::{CONSENT, china_today, reports::usable};
use crate::{
    error::BankError,
    store::consents::{self as store, QueryRow},
};

/// One report's writes: the household's query record (which names the consent, the officer's
/// institution and the officer) and the audit entry's action and details.
pub(crate) struct ReportWrite {
    /// The household the report's business belongs to, for a business's report.
    pub business_household: Option<String>,
    pub query: QueryRow,
    pub action: &'static str,
    pub details: String,
}

/// Writes batches of reports' query records and audit entries.
pub(crate) struct ReportJournal;

impl BatchWriter for ReportJournal {
    type Item = ReportWrite;
    /// Refused: the consent is no longer usable (the same NOT_FOUND as any refusal).
    type Answer = Result<(), BankError>;

    async fn write(&self, tx: &mut AnyConnection, items: Vec<ReportWrite>) -> Result<Vec<Self::Answer>, sqlx::Error> {
        let ids: Vec<&str> = items.iter().map(|item| item.query.consent_id.as_str()).collect();
        let consents: HashMap<String, store::ConsentRow> = store::consents_of_current_households(tx, &ids)
            .await?
            .into_iter()
            .map(|row| (row.id.clone(), row))
            .collect();
        let mut answers = Vec::with_capacity(items.len());
        let mut kept = Vec::with_capacity(items.len());
        for item in &items {
            let still_usable = consents.get(&item.query.consent_id).is_some_and(|row| {
                usable(row, &item.query.institution_id, item.business_household.as_deref(), &china_today(item.query.at))
            });
            if still_usable {
                kept.push(item);
                answers.push(Ok(()));
            } else {
                answers.push(Err(BankError::NotFound(CONSENT)));
            }
        }
        if kept.is_empty() {
            return Ok(answers);
        }
        let head = audit::head_for_append(tx).await?;
        let queries: Vec<QueryRow> = kept.iter().map(|item| item.query.clone()).collect();
        let entries: Vec<audit::Entry<'_>> = kept
            .iter()
            .map(|item| audit::Entry {
                at: item.query.at,
                actor: &item.query.officer_account_id,
                action: item.action,
                subject: &item.query.id,
                details: &item.details,
            })
            .collect();
        let chained = audit::Chained::after(head, &entries);
        // The query records, the audit entries and the head's move in one round trip: the
        // writer holds the write lock while it waits on each (`jiaxin_kit::writes`).
        let mut writes = Writes::new(Dialect::of(tx));
        store::write_queries(&mut writes, &queries)?;
        chained.write_into(&mut writes)?;
        writes.execute(tx).await?;
        Ok(answers)
    }
}

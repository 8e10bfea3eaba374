//! Credit reports made many at a time (group commit, `jiaxin_kit::group_commit`): one
//! transaction reads a batch's officers and consents with everything of their households, admits
//! each query against the rate limits, assembles the reports, and writes each report's query
//! record and audit entry. A report is returned only once its batch has committed, and what it
//! says is what the database held in the transaction that recorded it.
//!
//! Reading in the writer's transaction, rather than on a pooled connection before it, is what
//! makes a report cheap on SQLite: every commit empties the page cache of every other connection
//! (in WAL mode a connection that finds the database changed drops its cache), so a read on a
//! pooled connection went to the file for every page, and handed each statement to that
//! connection's thread and back. The writer's own connection keeps its cache across its commits,
//! and a batch's reads are two statements, whatever its size (docs/benchmarks.md, bank item 9).

use std::{collections::BTreeSet, sync::Arc};

use jiaxin_kit::{audit, group_commit::BatchWriter, storage::Dialect, writes::Writes};
use jiaxin_proto::bank::CreditReport;
use sqlx::AnyConnection;

use super::{Admission, CONSENT, china_today, now, reports};
use crate::{
    error::BankError,
    store::{
        consents::{self as store, QueryRow},
        registry::{self, BusinessRow, OfficerProducts},
    },
};

/// A bank officer's ask for a report under a consent.
pub(crate) struct ReportAsk {
    pub officer_account_id: String,
    pub consent_id: String,
    /// For a business's report: the business, whose household must be the consent's.
    pub business: Option<BusinessRow>,
}

/// What a report leaves behind: the household's query record and the audit entry's action and
/// details.
pub(crate) struct ReportTrace {
    pub query: QueryRow,
    pub action: &'static str,
    pub details: String,
}

/// Reads, assembles and records batches of credit reports.
pub(crate) struct ReportJournal {
    pub admission: Arc<Admission>,
}

impl BatchWriter for ReportJournal {
    type Item = ReportAsk;
    /// Each ask's report, or why it is refused: not an institution's officer, past a rate limit,
    /// or NOT_FOUND for every reason the consent cannot carry the report (missing, another
    /// bank's, revoked, expired, the wrong purpose, a household dissolved, a business of
    /// another household).
    type Answer = Result<CreditReport, BankError>;

    async fn write(&self, tx: &mut AnyConnection, asks: Vec<ReportAsk>) -> Result<Vec<Self::Answer>, sqlx::Error> {
        let at = now();
        let today = china_today(at);
        let accounts: BTreeSet<&str> = asks.iter().map(|ask| ask.officer_account_id.as_str()).collect();
        let officers = registry::officers_products(tx, &accounts.into_iter().collect::<Vec<_>>()).await?;
        // Who asks, and whether within the allowance, is settled before anything of a household
        // is read.
        let admitted: Vec<Result<&OfficerProducts, BankError>> = asks
            .iter()
            .map(|ask| {
                let officer = officers.get(&ask.officer_account_id).ok_or(BankError::PermissionDenied)?;
                self.admission.admit(&ask.officer_account_id, &officer.institution_id)?;
                Ok(officer)
            })
            .collect();
        let consent_ids: Vec<&str> = asks
            .iter()
            .zip(&admitted)
            .filter(|(_, admitted)| admitted.is_ok())
            .map(|(ask, _)| ask.consent_id.as_str())
            .collect();
        let subjects = store::report_subjects(tx, &consent_ids).await?;

        let mut answers = Vec::with_capacity(asks.len());
        let mut traces = Vec::with_capacity(asks.len());
        for (ask, admitted) in asks.iter().zip(admitted) {
            answers.push(admitted.and_then(|officer| {
                let business_household = ask.business.as_ref().map(|b| b.household_id.as_str());
                let subject = subjects
                    .get(&ask.consent_id)
                    .filter(|s| reports::usable(&s.consent, &officer.institution_id, business_household, &today))
                    .ok_or(BankError::NotFound(CONSENT))?;
                let report = reports::assemble(subject, &officer.products, at);
                traces.push(reports::trace(&report, &subject.consent, ask, &officer.institution_id, at));
                Ok(report)
            }));
        }
        if traces.is_empty() {
            return Ok(answers);
        }

        let head = audit::head_for_append(tx).await?;
        let (queries, notes): (Vec<QueryRow>, Vec<_>) =
            traces.into_iter().map(|trace| (trace.query, (trace.action, trace.details))).unzip();
        let entries: Vec<audit::Entry<'_>> = queries
            .iter()
            .zip(&notes)
            .map(|(query, (action, details))| audit::Entry {
                at,
                actor: &query.officer_account_id,
                action,
                subject: &query.id,
                details,
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

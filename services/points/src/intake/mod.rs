//! Taking records in. One path serves a single record and a batch of thousands: read what the
//! batch needs with a few set queries (`known`), check every item in memory against that and
//! against the items before it (`check`), then write the accepted ones with multi-row
//! statements (`write`). A bad item is answered with its error and writes nothing; the others
//! stand. That is about a dozen statements per batch instead of some twenty per record
//! (docs/benchmarks.md).

mod check;
mod known;
mod write;

use jiaxin_kit::{auth::Caller, time::now_micros};
use jiaxin_proto::points::{Record, RecordInput, RecordStatus};

use crate::{
    error::Result,
    ops::{Points, record_proto},
    store::{RecordRow, RuleRow},
};

/// A record that passed every check, ready to write.
pub(crate) struct Accepted {
    pub row: RecordRow,
    pub rule: RuleRow,
    pub status: RecordStatus,
    pub grid_id: String,
    /// The household's org path, root first, for the council to find the village.
    pub org_path: Vec<String>,
}

/// Ids per `IN (…)` list: far below SQLite's and PostgreSQL's limits on bound values.
pub(crate) const IDS_PER_QUERY: usize = 500;

impl Points {
    /// Checks and writes `inputs` in one transaction; one answer per input, in order. A storage
    /// failure fails the whole call, which the client may resend: request ids make it safe.
    pub(crate) async fn intake(&self, caller: &Caller, inputs: &[RecordInput]) -> Result<Vec<Result<Record>>> {
        let mut tx = self.db.begin().await?;
        let answers = self.intake_in(&mut tx, caller, inputs).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(answers)
    }

    /// The same inside a transaction the caller owns (an event handler's, so the records and
    /// the event's inbox entry commit together).
    pub(crate) async fn intake_in(
        &self,
        tx: &mut jiaxin_kit::storage::Tx,
        caller: &Caller,
        inputs: &[RecordInput],
    ) -> Result<Vec<Result<Record>>> {
        let now = now_micros();
        let mut known = known::Known::load(tx, caller, inputs).await?;
        let mut answers = Vec::with_capacity(inputs.len());
        let mut accepted = Vec::new();
        for input in inputs {
            match check::check(&known, caller, input, now, self.unpledged) {
                Ok(check::Verdict::Earlier(row)) => answers.push(Ok(record_proto(&row))),
                Ok(check::Verdict::New(item)) => {
                    known.note(&item);
                    answers.push(Ok(record_proto(&item.row)));
                    accepted.push(*item);
                }
                Err(error) => answers.push(Err(error)),
            }
        }
        write::write(self, tx, &accepted).await?;
        Ok(answers)
    }
}

//! The consumer side: apply each event exactly once, in the consumer's own transaction, and park
//! what keeps failing as a dead letter instead of stalling everything behind it.

use std::{collections::HashSet, sync::Arc, time::Duration};

use async_trait::async_trait;
use jiaxin_proto::events::Envelope;
use sqlx::Row;
use tracing::Instrument;

use crate::{
    events,
    storage::{Database, Dialect, Tx},
    telemetry,
    time::now_micros,
};

/// Why a handler could not apply an event. The message is stored with the dead letter, so it
/// must not contain personal data.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A service's reaction to events, run inside the transaction that also records the event id.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(&self, tx: &mut Tx, envelope: &Envelope) -> Result<(), HandlerError>;
}

/// Event ids per statement when a batch's inbox entries are looked up or written together.
const INBOX_IDS_PER_STATEMENT: usize = 500;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, first_backoff: Duration::from_millis(50), max_backoff: Duration::from_secs(2) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Applied,
    /// Already applied before (a redelivery).
    Duplicate,
    /// Failed every attempt and was parked in the dead-letter table.
    Parked,
}

#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("{0}")]
    Handler(#[from] HandlerError),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
}

/// A parked event, as an operator sees it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub event_id: String,
    pub event_type: String,
    pub topic: String,
    pub error: String,
    pub attempts: i64,
    pub parked_at: i64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    pub applied: usize,
    pub still_failing: usize,
}

/// One consuming service's subscription: its name (the consumer group), its database and its
/// handler.
pub struct Consumer {
    name: String,
    db: Database,
    handler: Arc<dyn EventHandler>,
    retry: RetryPolicy,
}

impl Consumer {
    pub fn new(name: impl Into<String>, db: Database, handler: Arc<dyn EventHandler>) -> Self {
        Self { name: name.into(), db, handler, retry: RetryPolicy::default() }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Applies the event once, retrying with backoff; after the last attempt the event is parked.
    /// An error means not even parking worked (the database is down): the caller must redeliver.
    pub async fn deliver(&self, topic: &str, envelope: &Envelope) -> Result<Delivery, sqlx::Error> {
        let span = tracing::info_span!("event.consume", consumer = %self.name, event_type = %envelope.event_type, event_id = %envelope.event_id);
        telemetry::set_parent_from(&span, &envelope.trace_context);
        async {
            let mut backoff = self.retry.first_backoff;
            let mut last_error = String::new();
            for attempt in 1..=self.retry.max_attempts.max(1) {
                match self.apply_once(envelope).await {
                    Ok(delivery) => {
                        let outcome = if delivery == Delivery::Applied { "applied" } else { "duplicate" };
                        metrics::counter!("jiaxin_events_consumed_total", "consumer" => self.name.clone(), "outcome" => outcome).increment(1);
                        return Ok(delivery);
                    }
                    Err(error) => {
                        tracing::warn!(attempt, %error, "event handler failed");
                        last_error = error.to_string();
                        if attempt < self.retry.max_attempts {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(self.retry.max_backoff);
                        }
                    }
                }
            }
            self.park(topic, envelope, &last_error, i64::from(self.retry.max_attempts.max(1))).await?;
            metrics::counter!("jiaxin_events_dead_lettered_total", "consumer" => self.name.clone()).increment(1);
            tracing::error!(error = %last_error, "event parked as dead letter");
            Ok(Delivery::Parked)
        }
        .instrument(span)
        .await
    }

    /// Applies a run of events of one topic, in order, as many as possible in one transaction
    /// (each inside a savepoint, so a failing event is rolled back alone). At the first failure the
    /// events before it are committed and it goes through [`Consumer::deliver`] — retries, then
    /// the dead letters — before the rest carry on: order is kept, and one transaction per event
    /// is paid only where something goes wrong. A publisher's batch of hundreds of events thus
    /// costs one commit instead of hundreds.
    pub async fn deliver_batch(&self, topic: &str, envelopes: &[Envelope]) -> Result<(), sqlx::Error> {
        let mut start = 0;
        while start < envelopes.len() {
            let applied = self.apply_run(&envelopes[start..]).await?;
            start += applied;
            if let Some(failed) = envelopes.get(start) {
                self.deliver(topic, failed).await?;
                start += 1;
            }
        }
        Ok(())
    }

    /// Applies events in one transaction until the first whose handler fails; returns how many
    /// went through (applied or skipped as duplicates), all committed.
    ///
    /// Optimistic first: the whole run without savepoints, its inbox entries looked up and
    /// written with one statement each instead of one per event. Only if a handler fails is the
    /// run rolled back and taken again event by event in savepoints, to find the failing one.
    /// Per event that saves three round trips to the database (savepoint, inbox entry, release),
    /// which on SQLite are each a hand-off to its connection's thread (docs/benchmarks.md).
    async fn apply_run(&self, envelopes: &[Envelope]) -> Result<usize, sqlx::Error> {
        match self.apply_run_whole(envelopes).await {
            Ok(done) => Ok(done),
            Err(ApplyError::Sqlx(error)) if crate::storage::is_transient(&error) => Err(error),
            Err(error) => {
                tracing::debug!(%error, consumer = %self.name, "a batch failed whole; applying it event by event");
                self.apply_run_isolated(envelopes).await
            }
        }
    }

    /// The whole run in one transaction, or nothing (see [`Consumer::apply_run`]).
    async fn apply_run_whole(&self, envelopes: &[Envelope]) -> Result<usize, ApplyError> {
        let mut tx = self.db.begin().await?;
        let mut seen = self.already_applied(&mut tx, envelopes).await?;
        let mut applied = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            // The same id twice in one run is a redelivery too.
            if !seen.insert(envelope.event_id.as_str()) {
                continue;
            }
            let span = tracing::info_span!("event.consume", consumer = %self.name, event_type = %envelope.event_type, event_id = %envelope.event_id);
            telemetry::set_parent_from(&span, &envelope.trace_context);
            self.handler.handle(&mut tx, envelope).instrument(span).await?;
            applied.push(envelope.event_id.as_str());
        }
        self.record_applied(&mut tx, &applied).await?;
        tx.commit().await?;
        let duplicates = envelopes.len() - applied.len();
        metrics::counter!("jiaxin_events_consumed_total", "consumer" => self.name.clone(), "outcome" => "applied")
            .increment(applied.len() as u64);
        metrics::counter!("jiaxin_events_consumed_total", "consumer" => self.name.clone(), "outcome" => "duplicate")
            .increment(duplicates as u64);
        Ok(envelopes.len())
    }

    /// The ids among `envelopes` this consumer has applied before.
    async fn already_applied<'e>(
        &self,
        tx: &mut Tx,
        envelopes: &'e [Envelope],
    ) -> Result<HashSet<&'e str>, sqlx::Error> {
        let mut seen = HashSet::with_capacity(envelopes.len());
        for chunk in envelopes.chunks(INBOX_IDS_PER_STATEMENT) {
            let mut placeholders = crate::writes::Placeholders::new(Dialect::of(tx));
            let sql = format!(
                "SELECT event_id FROM kit_inbox WHERE consumer = {} AND event_id IN ({})",
                placeholders.one(),
                placeholders.list(chunk.len())
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql).bind(&self.name);
            for envelope in chunk {
                query = query.bind(&envelope.event_id);
            }
            let found: HashSet<String> = query.fetch_all(&mut **tx).await?.into_iter().collect();
            seen.extend(chunk.iter().map(|e| e.event_id.as_str()).filter(|id| found.contains(*id)));
        }
        Ok(seen)
    }

    /// Inbox entries for `event_ids`, a multi-row insert per chunk.
    async fn record_applied(&self, tx: &mut Tx, event_ids: &[&str]) -> Result<(), sqlx::Error> {
        let at = now_micros();
        for chunk in event_ids.chunks(INBOX_IDS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO kit_inbox (consumer, event_id, applied_at) VALUES {}",
                crate::sql::values(crate::storage::Dialect::of(tx), chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(&self.name).bind(*id).bind(at);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The run event by event, each in a savepoint, until the first whose handler fails.
    async fn apply_run_isolated(&self, envelopes: &[Envelope]) -> Result<usize, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let mut done = 0;
        for envelope in envelopes {
            let span = tracing::info_span!("event.consume", consumer = %self.name, event_type = %envelope.event_type, event_id = %envelope.event_id);
            telemetry::set_parent_from(&span, &envelope.trace_context);
            sqlx::query("SAVEPOINT inbox_event").execute(&mut *tx).await?;
            let outcome = async {
                let inserted = sqlx::query(
                    "INSERT INTO kit_inbox (consumer, event_id, applied_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (consumer, event_id) DO NOTHING",
                )
                .bind(&self.name)
                .bind(&envelope.event_id)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok::<_, ApplyError>(Delivery::Duplicate);
                }
                self.handler.handle(&mut tx, envelope).await?;
                Ok(Delivery::Applied)
            }
            .instrument(span)
            .await;
            match outcome {
                Ok(delivery) => {
                    sqlx::query("RELEASE SAVEPOINT inbox_event").execute(&mut *tx).await?;
                    let outcome = if delivery == Delivery::Applied { "applied" } else { "duplicate" };
                    metrics::counter!("jiaxin_events_consumed_total", "consumer" => self.name.clone(), "outcome" => outcome).increment(1);
                    done += 1;
                }
                Err(ApplyError::Sqlx(error)) if crate::storage::is_transient(&error) => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, event_id = %envelope.event_id, "event failed in a batch; retried on its own");
                    sqlx::query("ROLLBACK TO SAVEPOINT inbox_event").execute(&mut *tx).await?;
                    sqlx::query("RELEASE SAVEPOINT inbox_event").execute(&mut *tx).await?;
                    break;
                }
            }
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn apply_once(&self, envelope: &Envelope) -> Result<Delivery, ApplyError> {
        let mut tx = self.db.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO kit_inbox (consumer, event_id, applied_at) VALUES ($1, $2, $3) \
             ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(&self.name)
        .bind(&envelope.event_id)
        .bind(now_micros())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(Delivery::Duplicate);
        }
        self.handler.handle(&mut tx, envelope).await?;
        tx.commit().await?;
        Ok(Delivery::Applied)
    }

    async fn park(&self, topic: &str, envelope: &Envelope, error: &str, attempts: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO kit_dead_letters (consumer, event_id, topic, partition_key, envelope, error, attempts, parked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (consumer, event_id) DO UPDATE SET error = excluded.error, \
                 attempts = kit_dead_letters.attempts + excluded.attempts, parked_at = excluded.parked_at, replayed_at = NULL",
        )
        .bind(&self.name)
        .bind(&envelope.event_id)
        .bind(topic)
        .bind(&envelope.partition_key)
        .bind(events::encode(envelope))
        .bind(error)
        .bind(attempts)
        .bind(now_micros())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Parked events not yet replayed, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, consumer, event_id, topic, envelope, error, attempts, parked_at FROM kit_dead_letters \
             WHERE consumer = $1 AND replayed_at IS NULL ORDER BY id",
        )
        .bind(&self.name)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get("envelope")?;
                let event_type = events::decode(&bytes).map(|e| e.event_type).unwrap_or_default();
                Ok(DeadLetter {
                    id: row.try_get("id")?,
                    consumer: row.try_get("consumer")?,
                    event_id: row.try_get("event_id")?,
                    event_type,
                    topic: row.try_get("topic")?,
                    error: row.try_get("error")?,
                    attempts: row.try_get("attempts")?,
                    parked_at: row.try_get("parked_at")?,
                })
            })
            .collect()
    }

    /// Applies every parked event once more (once its cause is fixed), in the order they were
    /// parked. Successes are marked replayed; failures stay parked with the new error.
    pub async fn replay_dead_letters(&self) -> Result<ReplayReport, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, envelope FROM kit_dead_letters WHERE consumer = $1 AND replayed_at IS NULL ORDER BY id",
        )
        .bind(&self.name)
        .fetch_all(self.db.pool())
        .await?;
        let mut report = ReplayReport::default();
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let bytes: Vec<u8> = row.try_get("envelope")?;
            let outcome = match events::decode(&bytes) {
                Ok(envelope) => self.apply_once(&envelope).await.map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match outcome {
                Ok(_) => {
                    sqlx::query("UPDATE kit_dead_letters SET replayed_at = $1 WHERE id = $2")
                        .bind(now_micros())
                        .bind(id)
                        .execute(self.db.pool())
                        .await?;
                    report.applied += 1;
                }
                Err(error) => {
                    sqlx::query("UPDATE kit_dead_letters SET error = $1, attempts = attempts + 1 WHERE id = $2")
                        .bind(error)
                        .bind(id)
                        .execute(self.db.pool())
                        .await?;
                    report.still_failing += 1;
                }
            }
        }
        Ok(report)
    }
}

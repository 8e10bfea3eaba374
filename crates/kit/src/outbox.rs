//! The transactional outbox: events are written in the producer's own transaction and a relay
//! publishes them afterwards, so a state change and its event are committed together or not at
//! all, and a crash at any moment leaves at worst an event that is published again (consumers
//! ignore the duplicate through their inbox).

use std::{sync::Arc, time::Duration};

use jiaxin_proto::events::Envelope;
use prost::Name;
use sqlx::{Any, Row, pool::PoolConnection};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::Bus,
    events::{self, EnvelopeError},
    pipeline::Statement,
    storage::{Database, Dialect, Tx},
    time::now_micros,
};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("outbox write failed: {0}")]
    Sqlx(#[from] sqlx::Error),
}

/// What a service uses to write its events. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    producer: &'static str,
    topic: String,
    committed: Arc<Notify>,
}

impl Outbox {
    pub fn new(producer: &'static str) -> Self {
        Self { producer, topic: events::topic(producer), committed: Arc::new(Notify::new()) }
    }

    /// Adds `event` to the outbox inside `tx`; returns the event id.
    pub async fn write<M: Name>(&self, tx: &mut Tx, partition_key: &str, event: &M) -> Result<String, OutboxError> {
        let envelope = events::envelope(self.producer, partition_key, event)?;
        sqlx::query(
            "INSERT INTO kit_outbox (event_id, topic, partition_key, envelope, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&envelope.event_id)
        .bind(&self.topic)
        .bind(&envelope.partition_key)
        .bind(events::encode(&envelope))
        .bind(now_micros())
        .execute(&mut **tx)
        .await?;
        Ok(envelope.event_id)
    }

    /// An event as [`Outbox::write`] would store it, to gather many for [`Outbox::write_all`].
    pub fn envelope<M: Name>(&self, partition_key: &str, event: &M) -> Result<Envelope, OutboxError> {
        Ok(events::envelope(self.producer, partition_key, event)?)
    }

    /// Adds many events inside `tx` with multi-row inserts, in the order given (which is the
    /// order they are published in): a batch operation's hundreds of events cost a few
    /// statements, not one each.
    pub async fn write_all(&self, tx: &mut Tx, envelopes: &[Envelope]) -> Result<(), OutboxError> {
        for statement in self.inserts(Dialect::of(tx), envelopes) {
            statement.execute(tx).await?;
        }
        Ok(())
    }

    /// The statements of [`Outbox::write_all`], each built (its events encoded) as it is taken:
    /// for a [`crate::pipeline::Queue`].
    pub fn inserts<'a>(&'a self, dialect: Dialect, envelopes: &'a [Envelope]) -> impl Iterator<Item = Statement> + 'a {
        const ROWS_PER_STATEMENT: usize = 1_000;
        let created_at = now_micros();
        envelopes.chunks(ROWS_PER_STATEMENT).map(move |chunk| {
            let sql = format!(
                "INSERT INTO kit_outbox (event_id, topic, partition_key, envelope, created_at) VALUES {}",
                crate::sql::values(dialect, chunk.len(), 5)
            );
            chunk.iter().fold(Statement::new(sql), |statement, envelope| {
                statement
                    .bind(envelope.event_id.clone())
                    .bind(self.topic.clone())
                    .bind(envelope.partition_key.clone())
                    .bind(events::encode(envelope))
                    .bind(created_at)
            })
        })
    }

    /// Tells the relay that a transaction with events has committed, so it need not wait for its
    /// next poll.
    pub fn wake(&self) {
        self.committed.notify_one();
    }

    pub fn producer(&self) -> &'static str {
        self.producer
    }
}

/// The backlog gauge counts up to this many unsent events (it reads "this many or more" beyond).
const BACKLOG_GAUGE_LIMIT: i64 = 10_000;

/// Publishes a service's outbox to the bus in commit order.
pub struct Relay {
    db: Database,
    outbox: Outbox,
    bus: Arc<dyn Bus>,
    batch_size: i64,
    poll_interval: Duration,
    retention: Duration,
}

/// Events committed in `db`'s outbox and not yet delivered to the bus.
pub async fn undelivered(db: &Database) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM kit_outbox WHERE sent_at IS NULL").fetch_one(db.pool()).await
}

impl Relay {
    pub fn new(db: Database, outbox: Outbox, bus: Arc<dyn Bus>) -> Self {
        Self {
            db,
            outbox,
            bus,
            batch_size: 256,
            // A backstop for rows committed by a process that died before waking its relay.
            poll_interval: Duration::from_millis(500),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }

    /// Runs until cancelled, then publishes what is left before returning. With several
    /// replicas of a service on PostgreSQL only the one holding the relay lock publishes, so
    /// events leave in commit order; the others wait to take over.
    pub async fn run(self, cancel: CancellationToken) {
        while let Some(leadership) = self.lead(&cancel).await {
            self.relay_while_leading(leadership, &cancel).await;
            if cancel.is_cancelled() {
                break;
            }
        }
    }

    /// Waits until this relay may publish; `None` when cancelled first.
    async fn lead(&self, cancel: &CancellationToken) -> Option<Leadership> {
        if self.db.dialect() == Dialect::Sqlite {
            // One process owns a SQLite file.
            return Some(Leadership::Sole);
        }
        let mut logged = false;
        loop {
            match self.try_lock().await {
                Ok(Some(conn)) => {
                    tracing::info!(producer = self.outbox.producer, "outbox relay leading");
                    return Some(Leadership::Locked(conn));
                }
                Ok(None) if !logged => {
                    tracing::info!(producer = self.outbox.producer, "another replica relays the outbox; standing by");
                    logged = true;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(producer = self.outbox.producer, %error, "relay lock unavailable"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
                () = cancel.cancelled() => return None,
            }
        }
    }

    async fn try_lock(&self) -> Result<Option<PoolConnection<Any>>, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        // Session-level advisory lock, keyed by the service's schema: released when this
        // connection closes, so a dead replica's lock passes on by itself.
        let got: i64 = sqlx::query_scalar(
            "SELECT CAST(CASE WHEN pg_try_advisory_lock(hashtext('jiaxin.outbox.' || current_schema())) THEN 1 ELSE 0 END AS BIGINT)",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok((got == 1).then_some(conn))
    }

    async fn relay_while_leading(&self, mut leadership: Leadership, cancel: &CancellationToken) {
        let mut failures = 0u32;
        let mut drains = 0u64;
        loop {
            if !leadership.still_held().await {
                tracing::warn!(producer = self.outbox.producer, "relay lock lost; re-acquiring");
                return;
            }
            match self.drain_once().await {
                Ok(published) => {
                    failures = 0;
                    drains += 1;
                    if drains.is_multiple_of(1000) {
                        self.purge_sent().await;
                    }
                    if published > 0 {
                        continue;
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(producer = self.outbox.producer, %error, failures, "outbox relay failed; will retry");
                    let backoff = Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)));
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => continue,
                        () = cancel.cancelled() => break,
                    }
                }
            }
            tokio::select! {
                () = self.outbox.committed.notified() => {}
                () = tokio::time::sleep(self.poll_interval) => {}
                () = cancel.cancelled() => break,
            }
        }
        // Flush what committed before shutdown so a clean stop leaves nothing for the next start.
        match self.drain_all().await {
            Ok(n) => tracing::debug!(producer = self.outbox.producer, flushed = n, "outbox relay stopped"),
            Err(error) => {
                tracing::warn!(producer = self.outbox.producer, %error, "outbox not fully flushed; the next start resends it")
            }
        }
    }

    /// Publishes everything unsent.
    pub async fn drain_all(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let n = self.drain_once().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Publishes up to one batch in seq order and marks exactly those rows sent. A failure
    /// publishes the whole batch again next time (consumers drop the duplicates), so no event
    /// overtakes an earlier one of the same household.
    pub async fn drain_once(&self) -> Result<usize, RelayError> {
        let rows =
            sqlx::query("SELECT seq, topic, envelope FROM kit_outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1")
                .bind(self.batch_size)
                .fetch_all(self.db.pool())
                .await?;
        let mut seqs = Vec::with_capacity(rows.len());
        let mut batch = Vec::with_capacity(rows.len());
        for row in &rows {
            seqs.push(row.try_get::<i64, _>("seq")?);
            let bytes: Vec<u8> = row.try_get("envelope")?;
            batch.push((row.try_get::<String, _>("topic")?, events::decode(&bytes)?));
        }
        if !batch.is_empty() {
            self.bus.publish_batch(&batch).await?;
            // Exactly these rows: a row with a lower seq that committed meanwhile was not
            // published, so a range would be wrong.
            let placeholders: Vec<String> = (0..seqs.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!("UPDATE kit_outbox SET sent_at = $1 WHERE seq IN ({})", placeholders.join(", "));
            let mut update = sqlx::query(&sql).bind(now_micros());
            for seq in &seqs {
                update = update.bind(*seq);
            }
            update.execute(self.db.pool()).await?;
            metrics::counter!("jiaxin_outbox_published_total", "producer" => self.outbox.producer)
                .increment(batch.len() as u64);
        }
        // Bounded: counting a large backlog after every batch would make draining it quadratic.
        let backlog: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM kit_outbox WHERE sent_at IS NULL LIMIT $1) AS unsent",
        )
        .bind(BACKLOG_GAUGE_LIMIT)
        .fetch_one(self.db.pool())
        .await?;
        metrics::gauge!("jiaxin_outbox_backlog", "producer" => self.outbox.producer).set(backlog as f64);
        Ok(batch.len())
    }

    async fn purge_sent(&self) {
        let cutoff = now_micros() - self.retention.as_micros() as i64;
        if let Err(error) = sqlx::query("DELETE FROM kit_outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
            .bind(cutoff)
            .execute(self.db.pool())
            .await
        {
            tracing::warn!(producer = self.outbox.producer, %error, "purging sent outbox rows failed");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox read failed: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
}

/// The right to publish a service's outbox.
enum Leadership {
    /// SQLite: the process owns the file.
    Sole,
    /// PostgreSQL: an advisory lock held on this connection.
    Locked(PoolConnection<Any>),
}

impl Leadership {
    async fn still_held(&mut self) -> bool {
        match self {
            Leadership::Sole => true,
            // The lock lives as long as its connection; a failing connection means it is gone.
            Leadership::Locked(conn) => sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok(),
        }
    }
}

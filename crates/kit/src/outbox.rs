//! The transactional outbox: events are written in the producer's own transaction and a relay
//! publishes them afterwards, so a state change and its event are committed together or not at
//! all, and a crash at any moment leaves at worst an event that is published again (consumers
//! ignore the duplicate through their inbox).

use std::{sync::Arc, time::Duration};

use jiaxin_proto::events::Envelope;
use prost::Name;
use sqlx::Row;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::Bus,
    events::{self, EnvelopeError},
    storage::{Database, Tx},
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
        Self {
            producer,
            topic: events::topic(producer),
            committed: Arc::new(Notify::new()),
        }
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

    /// Tells the relay that a transaction with events has committed, so it need not wait for its
    /// next poll.
    pub fn wake(&self) {
        self.committed.notify_one();
    }

    pub fn producer(&self) -> &'static str {
        self.producer
    }
}

/// Publishes a service's outbox to the bus in commit order.
pub struct Relay {
    db: Database,
    outbox: Outbox,
    bus: Arc<dyn Bus>,
    batch_size: i64,
    poll_interval: Duration,
    retention: Duration,
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

    /// Runs until cancelled, then publishes what is left before returning.
    pub async fn run(self, cancel: CancellationToken) {
        let mut failures = 0u32;
        let mut drains = 0u64;
        loop {
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

    /// Publishes up to one batch, strictly in seq order, stopping at the first failure so that
    /// no event overtakes an earlier one of the same household.
    pub async fn drain_once(&self) -> Result<usize, RelayError> {
        let rows =
            sqlx::query("SELECT seq, topic, envelope FROM kit_outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1")
                .bind(self.batch_size)
                .fetch_all(self.db.pool())
                .await?;
        let mut published = 0;
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            let topic: String = row.try_get("topic")?;
            let bytes: Vec<u8> = row.try_get("envelope")?;
            let envelope: Envelope = events::decode(&bytes)?;
            self.bus.publish(&topic, &envelope).await?;
            sqlx::query("UPDATE kit_outbox SET sent_at = $1 WHERE seq = $2")
                .bind(now_micros())
                .bind(seq)
                .execute(self.db.pool())
                .await?;
            published += 1;
        }
        if published > 0 {
            metrics::counter!("jiaxin_outbox_published_total", "producer" => self.outbox.producer)
                .increment(published as u64);
        }
        let backlog: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kit_outbox WHERE sent_at IS NULL")
            .fetch_one(self.db.pool())
            .await?;
        metrics::gauge!("jiaxin_outbox_backlog", "producer" => self.outbox.producer).set(backlog as f64);
        Ok(published)
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

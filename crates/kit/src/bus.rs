//! The event bus: publish an envelope to a topic, subscribe a consumer to topics.
//!
//! Embedded mode uses [`InProcessBus`]; distributed mode uses Kafka. Both give the outbox relay
//! the same promise: `publish` returns `Ok` only once the event is durable downstream (here: every
//! subscriber has applied it in its own database, or parked it as a dead letter).

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use jiaxin_proto::events::Envelope;
use tokio::sync::RwLock;

use crate::inbox::Consumer;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("broker: {0}")]
    Broker(String),
    #[error("consumer '{consumer}' could not take event {event_id}: {reason}")]
    Delivery { consumer: String, event_id: String, reason: String },
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes and returns once the event is durable downstream.
    async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<(), BusError>;
    /// Publishes several events in order; returns once all are durable downstream.
    async fn publish_batch(&self, batch: &[(String, Envelope)]) -> Result<(), BusError> {
        for (topic, envelope) in batch {
            self.publish(topic, envelope).await?;
        }
        Ok(())
    }

    /// Delivers every later event on `topics` to `consumer`.
    async fn subscribe(&self, topics: &[String], consumer: Arc<Consumer>) -> Result<(), BusError>;
}

/// Delivers events to the consumers in this process, in the order the relay publishes them.
///
/// Subscribe every consumer before starting the relays: an event published to a topic nobody
/// subscribed to is acknowledged at once, as a broker would keep it for nobody.
#[derive(Default)]
pub struct InProcessBus {
    subscribers: RwLock<HashMap<String, Vec<Arc<Consumer>>>>,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<(), BusError> {
        let consumers = self.subscribers.read().await.get(topic).cloned().unwrap_or_default();
        for consumer in consumers {
            // Each consumer applies in its own database (inbox-deduplicated) and parks what keeps
            // failing, so an error here means its database itself is unreachable: the relay keeps
            // the event and retries, and the consumers that already applied it skip the retry.
            consumer.deliver(topic, envelope).await.map_err(|error| BusError::Delivery {
                consumer: consumer.name().to_owned(),
                event_id: envelope.event_id.clone(),
                reason: error.to_string(),
            })?;
        }
        Ok(())
    }

    /// Each consumer takes each topic's run of events in as few transactions as it can
    /// ([`Consumer::deliver_batch`]), in the relay's order.
    async fn publish_batch(&self, batch: &[(String, Envelope)]) -> Result<(), BusError> {
        for (topic, run) in topic_runs(batch) {
            let consumers = self.subscribers.read().await.get(topic).cloned().unwrap_or_default();
            for consumer in consumers {
                consumer.deliver_batch(topic, &run).await.map_err(|error| BusError::Delivery {
                    consumer: consumer.name().to_owned(),
                    event_id: run.first().map(|e| e.event_id.clone()).unwrap_or_default(),
                    reason: error.to_string(),
                })?;
            }
        }
        Ok(())
    }

    async fn subscribe(&self, topics: &[String], consumer: Arc<Consumer>) -> Result<(), BusError> {
        let mut subscribers = self.subscribers.write().await;
        for topic in topics {
            subscribers.entry(topic.clone()).or_default().push(consumer.clone());
        }
        Ok(())
    }
}

/// The batch's consecutive runs of one topic, in the batch's order: each is what a consumer can
/// apply in one transaction ([`Consumer::deliver_batch`]).
pub(crate) fn topic_runs(batch: &[(String, Envelope)]) -> impl Iterator<Item = (&str, Vec<Envelope>)> {
    batch
        .chunk_by(|a, b| a.0 == b.0)
        .map(|run| (run[0].0.as_str(), run.iter().map(|(_, envelope)| envelope.clone()).collect()))
}

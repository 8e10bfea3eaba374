//! The Kafka bus, for distributed mode: one topic per producing service, keyed by household so a
//! household's events stay in one partition and in order; one consumer group per consuming
//! service.
//!
//! The delivery promise matches the in-process bus: `publish` returns once every broker replica
//! has the event (idempotent producer, `acks=all`), and a consumer's offset is stored only after
//! the inbox transaction that applied the event has committed (`enable.auto.offset.store=false`;
//! the stored offsets are committed in the background and on rebalance). A crash between apply
//! and commit means a redelivery, which the inbox turns into a no-op.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use futures::FutureExt as _;
use jiaxin_proto::events::Envelope;
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    config::ClientConfig,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    error::KafkaError,
    message::{BorrowedMessage, Header, Message, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
    types::RDKafkaErrorCode,
    util::Timeout,
};
use tokio::{sync::Mutex, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    bus::{self, Bus, BusError},
    events,
    inbox::Consumer,
    supervise::{Stop, until_stopped},
};

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
const LAG_INTERVAL: Duration = Duration::from_secs(10);
/// Most messages one pass of a consumer's loop applies (the inbox looks up and records a run's
/// event ids in statements of a few hundred).
const MAX_MESSAGES_PER_APPLY: usize = 500;

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port,host:port`
    pub brokers: String,
    /// Prepended to every topic and group name (isolates tests and tenants on one cluster).
    pub prefix: String,
    /// Partitions of topics this process creates.
    pub partitions: i32,
    /// Replication factor of topics this process creates.
    pub replication: i32,
}

pub struct KafkaBus {
    config: KafkaConfig,
    /// Replaced after a failed delivery (see [`KafkaBus::publish_batch`]).
    producer: std::sync::RwLock<FutureProducer>,
    admin: AdminClient<DefaultClientContext>,
    known_topics: Mutex<HashSet<String>>,
    consumers: Mutex<JoinSet<()>>,
    /// The process's stop: consumers end when it begins, and a consumer that ends before it
    /// (a panicking handler) begins it.
    stop: Stop,
}

fn kafka_error(context: &str, error: impl std::fmt::Display) -> BusError {
    BusError::Broker(format!("{context}: {error}"))
}

impl KafkaBus {
    pub fn new(config: KafkaConfig, stop: Stop) -> Result<Self, BusError> {
        let producer = std::sync::RwLock::new(Self::create_producer(&config)?);
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .create()
            .map_err(|e| kafka_error("cannot create admin client", e))?;
        Ok(Self {
            config,
            producer,
            admin,
            known_topics: Mutex::new(HashSet::new()),
            consumers: Mutex::new(JoinSet::new()),
            stop,
        })
    }

    fn create_producer(config: &KafkaConfig) -> Result<FutureProducer, BusError> {
        ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            // Idempotence makes retries safe and keeps per-partition order; it implies acks=all.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
            .set("linger.ms", "5")
            .create()
            .map_err(|e| kafka_error("cannot create producer", e))
    }

    fn producer(&self) -> FutureProducer {
        self.producer.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Starts over with a new producer (a new producer id, sequences from zero). An idempotent
    /// producer whose broker restarted can be refused every produce from then on — seen with
    /// tansu: "Unknown broker error" on every retry, minutes after the broker was back — so
    /// retrying with the same one would never recover. The relay resends the failed batch.
    fn renew_producer(&self) {
        match Self::create_producer(&self.config) {
            Ok(fresh) => {
                *self.producer.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
                tracing::info!("kafka producer renewed after a failed delivery");
            }
            Err(error) => tracing::warn!(%error, "kafka producer could not be renewed; keeping the old one"),
        }
    }

    fn full_topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.config.prefix)
    }

    /// Creates the topic with the configured partitions when it does not exist yet.
    async fn ensure_topic(&self, full_topic: &str) -> Result<(), BusError> {
        let mut known = self.known_topics.lock().await;
        if known.contains(full_topic) {
            return Ok(());
        }
        let topic = NewTopic::new(full_topic, self.config.partitions, TopicReplication::Fixed(self.config.replication));
        let results = self
            .admin
            .create_topics([&topic], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))))
            .await
            .map_err(|e| kafka_error("cannot create topic", e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(kafka_error(&format!("cannot create topic {name}"), code)),
            }
        }
        known.insert(full_topic.to_owned());
        Ok(())
    }

    /// Waits for the consumers to commit and close (after the stop began), then flushes the
    /// producer, all within `budget`. With the broker gone, librdkafka would wait out
    /// its request timeouts (about half a minute); past the budget the clients are left closing
    /// on their own threads, and nothing is lost by it: unpublished events stay in the outbox,
    /// and events applied but not committed are redelivered and dropped by the inbox.
    pub async fn shutdown(&self, budget: Duration) {
        let deadline = tokio::time::Instant::now() + budget;
        let mut consumers = self.consumers.lock().await;
        let closed = tokio::time::timeout_at(deadline, async { while consumers.join_next().await.is_some() {} }).await;
        if closed.is_err() {
            tracing::warn!(budget_ms = budget.as_millis() as u64, "kafka consumers still closing; not waiting longer");
        }
        let producer = self.producer();
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        // `flush` blocks; its own timeout bounds it, so the runtime's wait for blocking tasks is bounded too.
        match tokio::task::spawn_blocking(move || producer.flush(Timeout::After(remaining))).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "kafka producer flush incomplete"),
            Err(error) => tracing::warn!(%error, "kafka producer flush did not run"),
        }
    }

    fn headers(envelope: &Envelope) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new()
            .insert(Header { key: "event_id", value: Some(envelope.event_id.as_bytes()) })
            .insert(Header { key: "event_type", value: Some(envelope.event_type.as_bytes()) });
        for (key, value) in &envelope.trace_context {
            headers = headers.insert(Header { key, value: Some(value.as_bytes()) });
        }
        headers
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, topic: &str, envelope: &Envelope) -> Result<(), BusError> {
        self.publish_batch(&[(topic.to_owned(), envelope.clone())]).await
    }

    /// Enqueues the whole batch in order, then waits for every delivery report: one round trip
    /// for the batch instead of one per event, and the idempotent producer keeps the order.
    async fn publish_batch(&self, batch: &[(String, Envelope)]) -> Result<(), BusError> {
        let producer = self.producer();
        let mut pending = Vec::with_capacity(batch.len());
        for (topic, envelope) in batch {
            let full_topic = self.full_topic(topic);
            self.ensure_topic(&full_topic).await?;
            let payload = events::encode(envelope);
            let mut record = FutureRecord::to(&full_topic)
                .key(envelope.partition_key.as_str())
                .payload(&payload)
                .headers(Self::headers(envelope));
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        record = returned;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((error, _)) => return Err(kafka_error("cannot enqueue event", error)),
                }
            }
        }
        // Every delivery settles (each within the message timeout) before a failure is reported:
        // the relay resends the whole batch, and nothing of the failed attempt may still be in
        // flight then to land after the resent events and reorder a household's stream.
        let mut failure = None;
        for delivery in pending {
            let error = match delivery.await {
                Ok(Ok(_)) => continue,
                Ok(Err((error, _))) => kafka_error("event not delivered", error),
                Err(_) => BusError::Broker("producer dropped the delivery".into()),
            };
            failure.get_or_insert(error);
        }
        match failure {
            None => Ok(()),
            Some(error) => {
                self.renew_producer();
                Err(error)
            }
        }
    }

    async fn subscribe(&self, topics: &[String], consumer: Arc<Consumer>) -> Result<(), BusError> {
        let full_topics: Vec<String> = topics.iter().map(|t| self.full_topic(t)).collect();
        for topic in &full_topics {
            self.ensure_topic(topic).await?;
        }
        let group = format!("{}jiaxin.{}", self.config.prefix, consumer.name());
        let kafka: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.config.brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // jiaxin's producers use no transactions, so read_committed (librdkafka's default)
            // buys nothing and makes every consumer wait at the broker's last stable offset. A
            // producer SIGKILLed mid-batch left that offset stuck on tansu: every consumer group
            // stopped at the same offsets for good (the crash campaign, tests/campaign.rs).
            .set("isolation.level", "read_uncommitted")
            .set("session.timeout.ms", "10000")
            .create()
            .map_err(|e| kafka_error("cannot create consumer", e))?;
        let refs: Vec<&str> = full_topics.iter().map(String::as_str).collect();
        kafka.subscribe(&refs).map_err(|e| kafka_error("cannot subscribe", e))?;
        let prefix = self.config.prefix.clone();
        let task_name = format!("kafka consumer {}", consumer.name());
        let loop_until_stopped = consume(Arc::new(kafka), consumer, prefix, self.stop.token());
        self.consumers.lock().await.spawn(until_stopped(task_name, self.stop.clone(), loop_until_stopped));
        Ok(())
    }
}

/// One consumer's loop: take a message and whatever else has been fetched already, apply them
/// through the inbox, then store their offsets.
async fn consume(kafka: Arc<StreamConsumer>, consumer: Arc<Consumer>, prefix: String, cancel: CancellationToken) {
    let mut lag_tick = tokio::time::interval(LAG_INTERVAL);
    let lag_report_running = Arc::new(AtomicBool::new(false));
    loop {
        let message = tokio::select! {
            () = cancel.cancelled() => break,
            _ = lag_tick.tick() => {
                // One report at a time: with the broker gone, one takes longer than the interval.
                if !lag_report_running.swap(true, Ordering::AcqRel) {
                    report_lag(kafka.clone(), consumer.name().to_owned(), cancel.clone(), lag_report_running.clone());
                }
                continue;
            }
            message = kafka.recv() => message,
        };
        let first = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(consumer = consumer.name(), %error, "kafka receive failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let messages = with_already_fetched(&kafka, consumer.name(), first);
        let events = decode_all(&consumer, &prefix, &messages);
        if !apply_until_done(&consumer, &events, &cancel).await {
            break;
        }
        for message in &messages {
            if let Err(error) = kafka.store_offset_from_message(message) {
                tracing::warn!(consumer = consumer.name(), %error, "cannot store offset; the event may be redelivered");
            }
        }
    }
    close(kafka).await;
}

/// `first` and the messages librdkafka has fetched already, in the order it hands them out (a
/// partition's in offset order), without waiting for more: a consumer that keeps up applies
/// each event as it comes, one that is behind takes its backlog in runs of up to
/// [`MAX_MESSAGES_PER_APPLY`], a transaction per run and topic instead of one per event.
fn with_already_fetched<'a>(
    kafka: &'a StreamConsumer,
    consumer: &str,
    first: BorrowedMessage<'a>,
) -> Vec<BorrowedMessage<'a>> {
    let mut messages = vec![first];
    while messages.len() < MAX_MESSAGES_PER_APPLY {
        match kafka.recv().now_or_never() {
            Some(Ok(message)) => messages.push(message),
            Some(Err(error)) => {
                tracing::warn!(consumer, %error, "kafka receive failed");
                break;
            }
            None => break,
        }
    }
    messages
}

/// The messages' events with their topics (prefix removed), in order. A message that is not an
/// event envelope is counted, logged and left out: its offset is stored with the others, as
/// retrying it could never succeed.
fn decode_all(consumer: &Consumer, prefix: &str, messages: &[BorrowedMessage<'_>]) -> Vec<(String, Envelope)> {
    let mut events = Vec::with_capacity(messages.len());
    for message in messages {
        match message.payload().map(events::decode) {
            Some(Ok(envelope)) => {
                let topic = message.topic().strip_prefix(prefix).unwrap_or(message.topic()).to_owned();
                events.push((topic, envelope));
            }
            _ => {
                metrics::counter!("jiaxin_events_malformed_total", "consumer" => consumer.name().to_owned())
                    .increment(1);
                tracing::error!(consumer = consumer.name(), topic = %message.topic(), partition = message.partition(), offset = message.offset(), "skipping a message that is not an event envelope");
            }
        }
    }
    events
}

/// Applies the events, each run of one topic through [`Consumer::deliver_batch`], retrying
/// while the database is unreachable (handler errors are parked, not returned): the offsets
/// stay where they are until everything is applied, so nothing is skipped, and what a failed
/// try committed already is skipped by the inbox on the next. False if cancelled first.
async fn apply_until_done(consumer: &Consumer, events: &[(String, Envelope)], cancel: &CancellationToken) -> bool {
    for (topic, run) in bus::topic_runs(events) {
        let mut backoff = Duration::from_millis(100);
        while let Err(error) = consumer.deliver_batch(topic, &run).await {
            tracing::warn!(consumer = consumer.name(), %error, "cannot apply events; retrying");
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
    true
}

/// Commits what was applied, so the next owner does not redeliver it, and closes the consumer
/// (leaving its group). Both block, and with the broker gone they wait out librdkafka's request
/// timeouts, so they run on a thread of their own: not on an async worker, and not through
/// `spawn_blocking`, whose tasks the runtime waits for when the process ends —
/// [`KafkaBus::shutdown`] decides how long the stop waits for this.
async fn close(kafka: Arc<StreamConsumer>) {
    let (closed, on_closed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        if let Err(error) = kafka.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(%error, "final offset commit skipped");
        }
        // The last reference, unless a lag report still holds one: dropping it closes the consumer.
        drop(kafka);
        let _ = closed.send(());
    });
    let _ = on_closed.await;
}

/// Publishes each assigned partition's lag (high watermark minus position) as a gauge, and how
/// many partitions the consumer is assigned: a group the broker assigned nothing has no lag to
/// report, so only that count shows it (alert on 0). The watermark query blocks on the network,
/// so it runs off the async workers, on a thread of its own rather than through `spawn_blocking`:
/// with the broker gone each query waits out its timeout, and the runtime waits for its blocking
/// tasks when the process ends (a stop took 24 s so). It also gives up as soon as the process stops.
fn report_lag(kafka: Arc<StreamConsumer>, consumer: String, cancel: CancellationToken, running: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        report_lag_now(&kafka, &consumer, &cancel);
        running.store(false, Ordering::Release);
    });
}

fn report_lag_now(kafka: &StreamConsumer, consumer: &str, cancel: &CancellationToken) {
    let Ok(positions) = kafka.position() else { return };
    metrics::gauge!("jiaxin_consumer_assigned_partitions", "consumer" => consumer.to_owned())
        .set(positions.count() as f64);
    // A partition with nothing fetched since it was assigned has no position yet; where the
    // group stands on it is then its committed offset (asked only when needed). Counting
    // the whole partition as lag instead made every caught-up consumer of a quiet topic
    // report that topic's length.
    let mut committed = None;
    for element in positions.elements() {
        if cancel.is_cancelled() {
            return;
        }
        let Some(mut position) = element.offset().to_raw() else {
            continue;
        };
        if position < 0 {
            let stored_offsets =
                committed.get_or_insert_with(|| kafka.committed(Timeout::After(Duration::from_secs(2))).ok());
            position = stored_offsets
                .as_ref()
                .and_then(|list| list.find_partition(element.topic(), element.partition()))
                .and_then(|stored| stored.offset().to_raw())
                .unwrap_or(-1);
        }
        if let Ok((_, high)) =
            kafka.fetch_watermarks(element.topic(), element.partition(), Timeout::After(Duration::from_secs(2)))
        {
            // Still unknown: nothing committed either, so all of it is waiting.
            let lag = if position < 0 { high } else { (high - position).max(0) };
            metrics::gauge!(
                "jiaxin_consumer_lag",
                "consumer" => consumer.to_owned(),
                "topic" => element.topic().to_owned(),
                "partition" => element.partition().to_string()
            )
            .set(lag as f64);
        }
    }
}

//! One service's Kafka consumer alone, distributed mode: how fast points' read model takes in a
//! county's household registrations from the broker, against the same consumer applying the
//! same events straight from memory in the same run (its database work without the broker).
//! Nothing else runs: no services, only PostgreSQL and the broker. Prints its figures; asserts
//! nothing about time.
//!
//!     scripts/postgres.sh start; JIAXIN_BROKER_DIR=/tmp/kb scripts/broker.sh start
//!     cargo run --release -p jiaxin-bench -- consume --events 100000 \
//!       --database-url postgres://… --bus kafka://127.0.0.1:…
//!
//! 1. Builds `--events` HouseholdRegistered events (identity's, one household each).
//! 2. Baseline: points' consumer applies them in runs of 500 (what its Kafka consumer takes at
//!    most per transaction), in a fresh PostgreSQL schema, no broker.
//! 3. Publishes them to a fresh topic (one partition) and times the producer.
//! 4. Subscribes points' consumer, on a second fresh schema, and times until its read model holds
//!    every household: the group join (until the first is applied) and the rate after it.

use std::{sync::Arc, time::Instant};

use jiaxin::system::ServiceName;
use jiaxin_kit::{
    Secret,
    bus::Bus,
    events,
    kafka::{KafkaBus, KafkaConfig},
    storage::{Database, DatabaseLocation},
    supervise::Stop,
};
use jiaxin_proto::{events::Envelope, identity::HouseholdRegistered};

use crate::support::{await_rows, rate};

/// Events per transaction for the baseline: the Kafka consumer's own cap
/// (`MAX_MESSAGES_PER_APPLY` in jiaxin_kit::kafka).
const RUN: usize = 500;
/// Events per publish call, as the outbox relay sends them.
const PUBLISH_BATCH: usize = 256;
const GRIDS: usize = 250;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 50_000)]
    events: usize,
    /// PostgreSQL (`scripts/postgres.sh start` prints one).
    #[arg(long, env = "JIAXIN_TEST_DATABASE_URL")]
    database_url: String,
    /// The Kafka-protocol broker, kafka://host:port (`scripts/broker.sh start` prints one).
    #[arg(long, env = "JIAXIN_TEST_BUS")]
    bus: String,
}

pub async fn run(args: Args) {
    let namespace = format!("consume{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    let registrations = registrations(&namespace, args.events);
    let topic = events::topic("identity");
    println!("事件消费 / one consumer alone: {} household registrations, points' read model", args.events);

    let direct = points_database(&args.database_url, &format!("{namespace}_direct_")).await;
    let (_, consumer) = jiaxin_points::consumer(&direct, None);
    let started = Instant::now();
    for run in registrations.chunks(RUN) {
        consumer.deliver_batch(&topic, run).await.unwrap();
    }
    let baseline = started.elapsed();
    assert_eq!(households(&direct).await, args.events, "the baseline applied every event");

    let stop = Stop::new();
    let brokers = args.bus.strip_prefix("kafka://").expect("--bus is kafka://host:port").to_owned();
    let config = KafkaConfig { brokers, prefix: format!("{namespace}."), partitions: 1, replication: 1 };
    let bus = Arc::new(KafkaBus::new(config, stop.clone()).unwrap());
    let started = Instant::now();
    for batch in registrations.chunks(PUBLISH_BATCH) {
        let batch: Vec<(String, Envelope)> = batch.iter().map(|e| (topic.clone(), e.clone())).collect();
        bus.publish_batch(&batch).await.unwrap();
    }
    let published = started.elapsed();

    let via_kafka = points_database(&args.database_url, &format!("{namespace}_kafka_")).await;
    let (topics, consumer) = jiaxin_points::consumer(&via_kafka, None);
    bus.subscribe(&topics, Arc::new(consumer)).await.unwrap();
    let joined = await_rows(&via_kafka, "households", 1).await;
    let after_join = await_rows(&via_kafka, "households", args.events).await;
    stop.token().cancel();
    bus.shutdown(std::time::Duration::from_secs(5)).await;

    println!(
        "  基线 / baseline, the consumer's database work alone (runs of {RUN}): {:.0} events/s ({:.1} s)",
        rate(args.events, baseline),
        baseline.as_secs_f64()
    );
    println!(
        "  发布 / published to the broker ({PUBLISH_BATCH} a call, one partition): {:.0} events/s ({:.1} s)",
        rate(args.events, published),
        published.as_secs_f64()
    );
    println!(
        "  Kafka 消费 / consumed from the broker: first applied {:.1} s after subscribing, then {:.0} events/s ({:.1} s; ratio to baseline {:.2})",
        joined.as_secs_f64(),
        rate(args.events, after_join),
        after_join.as_secs_f64(),
        rate(args.events, after_join) / rate(args.events, baseline)
    );
}

/// One registration per household, spread over `GRIDS` grids of one village.
fn registrations(namespace: &str, count: usize) -> Vec<Envelope> {
    let (county, village) = (format!("{namespace}-county"), format!("{namespace}-village"));
    (0..count)
        .map(|i| {
            let household_id = format!("{namespace}-h{i}");
            let grid_id = format!("{namespace}-g{}", i % GRIDS);
            let event = HouseholdRegistered {
                household_id: household_id.clone(),
                grid_id: grid_id.clone(),
                head_resident_id: format!("{namespace}-r{i}"),
                org_path: vec![county.clone(), village.clone(), grid_id],
                address: format!("第{i}号"),
                head_birth_date: "1970-01-01".into(),
            };
            events::envelope("identity", &household_id, &event).unwrap()
        })
        .collect()
}

/// A fresh, migrated points schema `<prefix>points` on the server.
async fn points_database(url: &str, prefix: &str) -> Database {
    let location = DatabaseLocation::shared(Secret::new(url.to_owned()), prefix, "points");
    let db = Database::connect(&location).await.unwrap();
    db.migrate("points", ServiceName::Points.migrations()).await.unwrap();
    db
}

async fn households(db: &Database) -> usize {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM households").fetch_one(db.pool()).await.unwrap();
    count as usize
}

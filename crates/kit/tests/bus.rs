//! The outbox → bus → inbox chain under the failures it exists for: a process that dies between
//! commit and delivery, a delivery whose acknowledgement is lost, a handler that keeps failing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use jiaxin_kit::{
    bus::{Bus, InProcessBus},
    events,
    inbox::{Consumer, EventHandler, HandlerError, RetryPolicy},
    outbox::{Outbox, Relay},
    storage::{Database, DatabaseLocation, Migrations, Tx},
};
use jiaxin_proto::{events::Envelope, identity::OrgNodeRenamed};
use sqlx::migrate::Migrator;

static TEST_MIGRATIONS: Migrator = sqlx::migrate!("./tests/migrations");
static MIGRATIONS: Migrations = Migrations {
    sqlite: &TEST_MIGRATIONS,
    postgres: None,
};

async fn open(dir: &std::path::Path, name: &str) -> Database {
    let db = Database::connect(&DatabaseLocation::sqlite_in(dir, name).unwrap())
        .await
        .unwrap();
    db.migrate(name, &MIGRATIONS).await.unwrap();
    db
}

/// Records every event it applies; fails while `failing` is set.
struct Recorder {
    failing: AtomicBool,
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, tx: &mut Tx, envelope: &Envelope) -> Result<(), HandlerError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(HandlerError::new("downstream not ready"));
        }
        let label = events::payload::<OrgNodeRenamed>(envelope)
            .map_err(|e| HandlerError::new(e.to_string()))?
            .map(|v| v.name)
            .unwrap_or_default();
        sqlx::query("INSERT INTO applied (event_id, partition_key, label) VALUES ($1, $2, $3)")
            .bind(&envelope.event_id)
            .bind(&envelope.partition_key)
            .bind(label)
            .execute(&mut **tx)
            .await
            .map_err(|e| HandlerError::new(e.to_string()))?;
        Ok(())
    }
}

async fn write_events(db: &Database, outbox: &Outbox, events: &[(&str, &str)]) {
    let mut tx = db.begin().await.unwrap();
    for (key, label) in events {
        outbox
            .write(
                &mut tx,
                key,
                &OrgNodeRenamed {
                    org_node_id: (*key).to_owned(),
                    name: (*label).to_owned(),
                },
            )
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn applied(db: &Database) -> Vec<(String, String)> {
    sqlx::query_as("SELECT partition_key, label FROM applied ORDER BY n")
        .fetch_all(db.pool())
        .await
        .unwrap()
}

async fn unsent(db: &Database) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM kit_outbox WHERE sent_at IS NULL")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

async fn subscribe(bus: &InProcessBus, consumer_db: &Database, failing: bool) -> (Arc<Consumer>, Arc<Recorder>) {
    let recorder = Arc::new(Recorder {
        failing: AtomicBool::new(failing),
    });
    let consumer =
        Arc::new(Consumer::new("test-consumer", consumer_db.clone(), recorder.clone()).with_retry(fast_retry()));
    bus.subscribe(&[events::topic("producer")], consumer.clone())
        .await
        .unwrap();
    (consumer, recorder)
}

#[tokio::test]
async fn events_committed_before_a_crash_are_delivered_after_restart_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::new("producer");

    // The producer commits its change and events, then "dies" before any relay runs.
    let producer = open(dir.path(), "producer").await;
    write_events(&producer, &outbox, &[("h1", "a"), ("h2", "b"), ("h1", "c")]).await;
    producer.close().await;
    drop(producer);

    // Restart: the new process's relay finds the events and delivers them.
    let producer = open(dir.path(), "producer").await;
    let consumer_db = open(dir.path(), "consumer").await;
    let bus = Arc::new(InProcessBus::new());
    subscribe(&bus, &consumer_db, false).await;
    let relay = Relay::new(producer.clone(), outbox.clone(), bus.clone());
    assert_eq!(relay.drain_all().await.unwrap(), 3);
    assert_eq!(unsent(&producer).await, 0);
    let expected = vec![
        ("h1".into(), "a".into()),
        ("h2".into(), "b".into()),
        ("h1".into(), "c".into()),
    ];
    assert_eq!(applied(&consumer_db).await, expected);

    // The process dies after delivery but before marking the rows sent: the rows are resent
    // on restart, and the consumer's inbox turns the redelivery into a no-op.
    sqlx::query("UPDATE kit_outbox SET sent_at = NULL")
        .execute(producer.pool())
        .await
        .unwrap();
    assert_eq!(relay.drain_all().await.unwrap(), 3);
    assert_eq!(
        applied(&consumer_db).await,
        expected,
        "redelivery applied nothing twice"
    );
}

#[tokio::test]
async fn a_failing_handler_parks_the_event_and_replay_applies_it_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::new("producer");
    let producer = open(dir.path(), "producer").await;
    let consumer_db = open(dir.path(), "consumer").await;
    let bus = Arc::new(InProcessBus::new());
    let (consumer, recorder) = subscribe(&bus, &consumer_db, true).await;

    write_events(&producer, &outbox, &[("h1", "poison")]).await;
    let relay = Relay::new(producer.clone(), outbox.clone(), bus.clone());
    // The relay is not stalled: the event is acknowledged as parked.
    assert_eq!(relay.drain_all().await.unwrap(), 1);
    assert!(applied(&consumer_db).await.is_empty());
    let parked = consumer.dead_letters().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].error, "downstream not ready");
    assert_eq!(parked[0].attempts, 3);
    assert_eq!(parked[0].event_type, "jiaxin.identity.v1.OrgNodeRenamed");

    // Later events still flow once the cause is fixed.
    recorder.failing.store(false, Ordering::SeqCst);
    write_events(&producer, &outbox, &[("h2", "next")]).await;
    relay.drain_all().await.unwrap();
    assert_eq!(applied(&consumer_db).await, vec![("h2".into(), "next".into())]);

    let report = consumer.replay_dead_letters().await.unwrap();
    assert_eq!((report.applied, report.still_failing), (1, 0));
    assert!(consumer.dead_letters().await.unwrap().is_empty());
    assert_eq!(applied(&consumer_db).await.len(), 2);
    // Replaying again finds nothing to do.
    assert_eq!(consumer.replay_dead_letters().await.unwrap().applied, 0);
}

#[tokio::test]
async fn one_households_events_arrive_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::new("producer");
    let producer = open(dir.path(), "producer").await;
    let consumer_db = open(dir.path(), "consumer").await;
    let bus = Arc::new(InProcessBus::new());
    subscribe(&bus, &consumer_db, false).await;

    for i in 0..50 {
        write_events(
            &producer,
            &outbox,
            &[(if i % 2 == 0 { "even" } else { "odd" }, &i.to_string())],
        )
        .await;
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let relay = tokio::spawn(Relay::new(producer.clone(), outbox.clone(), bus.clone()).run(cancel.clone()));
    outbox.wake();
    for _ in 0..200 {
        if applied(&consumer_db).await.len() == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    relay.await.unwrap();
    let rows = applied(&consumer_db).await;
    for key in ["even", "odd"] {
        let labels: Vec<i32> = rows
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, l)| l.parse().unwrap())
            .collect();
        assert_eq!(labels.len(), 25, "{key}");
        assert!(labels.windows(2).all(|w| w[0] < w[1]), "{key} out of order: {labels:?}");
    }
}

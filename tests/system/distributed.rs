//! Distributed mode as deployed: identity as its own `jiaxin serve --service identity` processes
//! over PostgreSQL and a Kafka-protocol broker, checked from the outside (gRPC in, the topic out).
//! These need the servers of `scripts/test-distributed.sh`, so they are ignored elsewhere.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use crate::common::{self, authed, id_number};
use crate::processes::{self, Env, PASSWORD, PrivateBroker, free_port, script, terminate};
use jiaxin_proto::identity::{
    LoginRequest, NewResident, RegisterHouseholdRequest, identity_service_client::IdentityServiceClient,
};
use prost::Message;
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
    message::Message as _,
};
use tonic::transport::Channel;

impl Env {
    async fn outbox_event_ids(&self) -> Vec<(i64, String, String)> {
        let db = self.database("identity").await;
        sqlx::query_as("SELECT seq, event_id, partition_key FROM kit_outbox ORDER BY seq")
            .fetch_all(db.pool())
            .await
            .unwrap()
    }

    /// Every message's bytes on the topic (payload and headers), read until `expected` arrived
    /// and nothing more does.
    fn topic_bytes(&self, expected: usize) -> Vec<u8> {
        use rdkafka::message::Headers as _;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("{}.scanner", self.namespace))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[&self.topic()]).unwrap();
        let (mut bytes, mut count) = (Vec::new(), 0);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline && !(count >= expected && quiet_since.elapsed() > Duration::from_secs(2)) {
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let message = message.unwrap();
                bytes.extend_from_slice(message.payload().unwrap_or_default());
                bytes.extend_from_slice(message.key().unwrap_or_default());
                for header in message.headers().map(|h| h.iter().collect::<Vec<_>>()).unwrap_or_default() {
                    bytes.extend_from_slice(header.value.unwrap_or_default());
                }
                count += 1;
                quiet_since = Instant::now();
            }
        }
        assert!(count >= expected, "{count} of {expected} messages read");
        bytes
    }

    /// Every envelope on the topic, per partition in offset order, read until `expected` distinct
    /// events were seen and nothing more arrives.
    fn read_topic(&self, expected: usize) -> Vec<(i32, String, String)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("{}.reader", self.namespace))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[&self.topic()]).unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    let envelope = jiaxin_proto::events::Envelope::decode(message.payload().unwrap()).unwrap();
                    seen.push((message.partition(), envelope.event_id, envelope.partition_key));
                    quiet_since = Instant::now();
                }
                Some(Err(error)) => panic!("kafka: {error}"),
                None => {
                    let distinct: HashSet<&String> = seen.iter().map(|(_, id, _)| id).collect();
                    if distinct.len() >= expected && quiet_since.elapsed() > Duration::from_secs(2) {
                        break;
                    }
                }
            }
        }
        seen
    }
}

async fn client(addr: &str) -> (IdentityServiceClient<Channel>, String) {
    let mut client = IdentityServiceClient::connect(addr.to_owned()).await.unwrap();
    let token = client
        .login(LoginRequest { username: "admin".into(), password: PASSWORD.into() })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    (client, token)
}

async fn grid(client: &mut IdentityServiceClient<Channel>, token: &str) -> String {
    common::grid_under_scope(client, token, "").await
}

async fn register(client: &mut IdentityServiceClient<Channel>, token: &str, grid: &str, n: u32) {
    let request = RegisterHouseholdRequest {
        grid_id: grid.into(),
        address: format!("新街村{n}号"),
        head: Some(NewResident {
            name: format!("户主{n}"),
            id_number: id_number("320830", "19700101", n),
            phone: String::new(),
        }),
        ..Default::default()
    };
    client.register_household(authed(token, request)).await.unwrap();
}

/// Checks the topic against the outbox: every event once, each household's in commit order.
fn assert_published_once_in_order(outbox: &[(i64, String, String)], topic: &[(i32, String, String)]) {
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for (_, id, _) in topic {
        *counts.entry(id).or_default() += 1;
    }
    for (_, id, _) in outbox {
        assert_eq!(counts.get(id).copied().unwrap_or(0), 1, "event {id} must be on the topic exactly once");
    }
    assert_eq!(counts.len(), outbox.len(), "nothing on the topic that the outbox did not hold");
    let seq_of: HashMap<&String, i64> = outbox.iter().map(|(seq, id, _)| (id, *seq)).collect();
    let mut last: HashMap<&String, i64> = HashMap::new();
    for (_, id, key) in topic {
        let seq = seq_of[id];
        if let Some(previous) = last.insert(key, seq) {
            assert!(previous < seq, "household {key}: events out of commit order");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and a Kafka-protocol broker: run by scripts/test-distributed.sh"]
async fn two_identity_replicas_share_the_database_and_publish_every_event_once_in_order() {
    let env = Env::new();
    let (mut first, first_addr) = env.spawn().await;
    let (mut second, second_addr) = env.spawn().await;
    let (mut a, token) = client(&first_addr).await;
    let (mut b, token_b) = client(&second_addr).await;
    let grid_id = grid(&mut a, &token).await;
    for n in 0..20 {
        // Alternate replicas: both write the same schema; one relay publishes.
        if n % 2 == 0 {
            register(&mut a, &token, &grid_id, n).await;
        } else {
            register(&mut b, &token_b, &grid_id, n).await;
        }
    }
    assert!(terminate(&mut first).success(), "clean exit on SIGTERM");
    assert!(terminate(&mut second).success(), "clean exit on SIGTERM");

    let outbox = env.outbox_event_ids().await;
    // Bootstrap (root node, admin), three org nodes, and two events per household.
    assert_eq!(outbox.len(), 2 + 3 + 20 * 2);
    let topic = env.read_topic(outbox.len());
    assert_published_once_in_order(&outbox, &topic);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and a Kafka-protocol broker: run by scripts/test-distributed.sh"]
async fn a_killed_identity_process_loses_no_event() {
    let env = Env::new();
    let (mut process, addr) = env.spawn().await;
    let (mut client1, token) = client(&addr).await;
    let grid_id = grid(&mut client1, &token).await;
    for n in 0..10 {
        register(&mut client1, &token, &grid_id, n).await;
    }
    // No chance to flush: whatever the relay had not published stays in the outbox.
    process.0.kill().unwrap();
    process.0.wait().unwrap();

    let restart = Instant::now();
    let (mut restarted, addr) = env.spawn().await;
    let healthy_after = restart.elapsed();
    let (mut client2, token) = client(&addr).await;
    register(&mut client2, &token, &grid_id, 10).await;
    assert!(terminate(&mut restarted).success());

    let outbox = env.outbox_event_ids().await;
    assert_eq!(outbox.len(), 2 + 3 + 11 * 2);
    let topic = env.read_topic(outbox.len());
    let on_topic: HashSet<&String> = topic.iter().map(|(_, id, _)| id).collect();
    for (_, id, _) in &outbox {
        assert!(on_topic.contains(id), "event {id} was lost");
    }
    // A figure for docs/reliability.md, not an assertion on time.
    println!(
        "identity SIGKILLed: healthy again {:.1} s after restart; events {}, lost 0",
        healthy_after.as_secs_f64(),
        outbox.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL server binaries: run by scripts/test-distributed.sh"]
async fn a_database_outage_answers_unavailable_and_the_service_recovers() {
    // A private PostgreSQL: stopping the shared one would disturb the other tests. Its directory
    // is outside any root-only temp dir, since the server runs as the postgres user.
    let pg_dir = format!("/tmp/jiaxin-pg-outage-{}", uuid::Uuid::new_v4().simple());
    let pg_env = [("JIAXIN_PG_PORT", free_port().to_string()), ("JIAXIN_PG_DIR", pg_dir.clone())];
    let database_url = script("postgres.sh", "start", &pg_env);
    let mut env = Env::new();
    env.database_url = database_url;
    let (mut process, addr) = env.spawn().await;
    let (mut client, token) = client(&addr).await;
    let grid_id = grid(&mut client, &token).await;
    register(&mut client, &token, &grid_id, 1).await;

    script("postgres.sh", "stop", &pg_env);
    let mut request = authed(&token, jiaxin_proto::identity::ListHouseholdsRequest::default());
    request.set_timeout(Duration::from_secs(15));
    let status = client.list_households(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(process.0.try_wait().unwrap().is_none(), "the service is still running");

    script("postgres.sh", "start", &pg_env);
    let deadline = Instant::now() + Duration::from_secs(30);
    let households = loop {
        let request = authed(&token, jiaxin_proto::identity::ListHouseholdsRequest::default());
        match client.list_households(request).await {
            Ok(response) => break response.into_inner().households,
            Err(status) if status.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("did not recover: {status:?}"),
        }
    };
    assert_eq!(households.len(), 1, "the data is back with the database");
    register(&mut client, &token, &grid_id, 2).await;
    assert!(terminate(&mut process).success());
    script("postgres.sh", "stop", &pg_env);
    let _ = std::fs::remove_dir_all(&pg_dir);
}

/// A counter's value on a process's Prometheus endpoint (0 when absent).
fn metric(admin_port: u16, name: &str, labels: &str) -> f64 {
    processes::http_get(admin_port, "/metrics")
        .unwrap()
        .lines()
        .filter(|line| line.starts_with(name) && labels.split(',').all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every service that consumes events scales out the same way: two `jiaxin serve --service <name>`
/// processes on one schema form one consumer group over the partitions of identity's topic, each
/// takes part of the work, and between them every event is applied exactly once (the inbox). One
/// service after another, beside one identity, so the machine holds three processes at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and a Kafka-protocol broker: run by scripts/test-distributed.sh"]
async fn two_processes_of_each_consuming_service_share_the_events_and_apply_each_once() {
    let env = Env::new();
    let (mut identity, identity_addr) = env.spawn().await;
    let peer = format!("identity={identity_addr}");
    let (mut client, token) = client(&identity_addr).await;
    let grid_id = grid(&mut client, &token).await;
    let mut registered = 0;
    for service in ["pledges", "points", "council", "benefits", "bank"] {
        let ports = [processes::free_ports::<2>(), processes::free_ports::<2>()];
        let mut replicas = Vec::new();
        for replica_ports in ports {
            replicas.push(env.spawn_at(service, &["--peer", &peer], "info", replica_ports).await.0);
        }
        // The group rebalances when the second process joins (heartbeats every 3 s): let it
        // settle first, or the first process may take the whole stream before it does. (The
        // events of the services before this one are on the topic already: whichever process
        // joined first may apply them alone; the new households' are shared.)
        tokio::time::sleep(Duration::from_secs(15)).await;
        for _ in 0..30 {
            register(&mut client, &token, &grid_id, registered).await;
            registered += 1;
        }

        // Every event identity wrote is applied once, between them.
        let events = env.outbox_event_ids().await;
        let db = env.database(service).await;
        let deadline = Instant::now() + common::EVENTS_WITHIN;
        let applied = loop {
            let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kit_inbox WHERE consumer = $1")
                .bind(service)
                .fetch_one(db.pool())
                .await
                .unwrap();
            if applied as usize >= events.len() {
                break applied;
            }
            assert!(Instant::now() < deadline, "{service}: {applied} of {} events applied", events.len());
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(applied as usize, events.len(), "{service}: each event applied exactly once");

        // Both did part of the work: each process counts what it applied.
        let labels = format!("consumer=\"{service}\",outcome=\"applied\"");
        let shares: Vec<f64> =
            ports.iter().map(|[_, admin]| metric(*admin, "jiaxin_events_consumed_total", &labels)).collect();
        println!(
            "two {service} processes: {} and {} of {} events applied (one consumer group, 3 partitions)",
            shares[0],
            shares[1],
            events.len()
        );
        assert!(shares.iter().all(|share| *share > 0.0), "{service}: both processes applied events: {shares:?}");
        // And each says it holds partitions (the gauge an operator alerts on when it stays 0),
        // within a few of its 10-second reports.
        let label = format!("consumer=\"{service}\"");
        for [_, admin] in ports {
            let deadline = Instant::now() + Duration::from_secs(30);
            while metric(admin, "jiaxin_consumer_assigned_partitions", &label) < 1.0 {
                assert!(Instant::now() < deadline, "{service}: a process reports no partitions assigned");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        // Everything applied, so the lag both report on identity's topic falls to 0.
        let labels = format!("consumer=\"{service}\",topic=\"{}\"", env.topic());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lag: Vec<f64> = ports.iter().map(|[_, admin]| metric(*admin, "jiaxin_consumer_lag", &labels)).collect();
            if lag.iter().sum::<f64>() == 0.0 {
                break;
            }
            assert!(Instant::now() < deadline, "{service}: lag reported with every event applied: {lag:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(
            shares.iter().sum::<f64>() as usize,
            events.len(),
            "{service}: between them, each event once: {shares:?}"
        );
        for mut replica in replicas {
            assert!(terminate(&mut replica).success(), "{service} stops cleanly");
        }
    }
    assert!(terminate(&mut identity).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and a Kafka-protocol broker: run by scripts/test-distributed.sh"]
async fn a_consumer_killed_mid_stream_loses_no_event_and_applies_none_twice() {
    let env = Env::new();
    let (mut identity, identity_addr) = env.spawn().await;
    let peer = format!("identity={identity_addr}");
    let (mut points, _) = env.spawn_service("points", &["--peer", &peer]).await;
    let (mut client, token) = client(&identity_addr).await;
    let grid_id = grid(&mut client, &token).await;
    let households = 60;
    for n in 0..households {
        register(&mut client, &token, &grid_id, n).await;
        if n == households / 3 {
            // Mid-stream, without a chance to commit offsets or finish a transaction.
            points.0.kill().unwrap();
            points.0.wait().unwrap();
        }
    }
    // Restart only once the dead member's session (10 s) has expired: tansu evicts a member that
    // stopped heartbeating when the next member joins after that, not on a timer as Apache Kafka
    // does, so an earlier restart waits behind the dead member's assignment.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let restart = Instant::now();
    points = env.spawn_service("points", &["--peer", &peer]).await.0;
    let healthy_after = restart.elapsed();

    // Every event identity wrote is applied once: count effects against event ids.
    let events = env.outbox_event_ids().await;
    let points_db = env.database("points").await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kit_inbox WHERE consumer = 'points'")
            .fetch_one(points_db.pool())
            .await
            .unwrap();
        if applied as usize >= events.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let caught_up_after = restart.elapsed();
    let applied: Vec<String> = sqlx::query_scalar("SELECT event_id FROM kit_inbox WHERE consumer = 'points'")
        .fetch_all(points_db.pool())
        .await
        .unwrap();
    let applied: HashSet<&String> = applied.iter().collect();
    let lost: Vec<&String> = events.iter().map(|(_, id, _)| id).filter(|id| !applied.contains(id)).collect();
    assert!(lost.is_empty(), "{} of {} events lost (applied {})", lost.len(), events.len(), applied.len());
    assert_eq!(applied.len(), events.len(), "each event applied exactly once");
    let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM households").fetch_one(points_db.pool()).await.unwrap();
    assert_eq!(known, i64::from(households));
    let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members").fetch_one(points_db.pool()).await.unwrap();
    assert_eq!(members, i64::from(households), "one head each, none doubled");
    // Figures for docs/reliability.md, not assertions on time.
    println!(
        "points SIGKILLed mid-stream: healthy again {:.1} s after restart, lag back to zero {:.1} s after restart; events {}, lost 0, applied twice 0",
        healthy_after.as_secs_f64(),
        caught_up_after.as_secs_f64(),
        events.len()
    );
    assert!(terminate(&mut points).success());
    assert!(terminate(&mut identity).success());
}

/// Every file under `dir` (a PostgreSQL data directory: tables, indexes, WAL), concatenated.
fn files_under(dir: &std::path::Path, out: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend_from_slice(&bytes);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and a Kafka-protocol broker: run by scripts/test-distributed.sh"]
async fn personal_numbers_reach_no_topic_log_line_or_postgresql_file_in_clear() {
    let env = Env::new();
    // Everything identity logs, down to debug and every SQL statement sqlx logs.
    let (mut process, addr, log) = env.spawn_logged("identity", &[], "debug,sqlx=debug").await;
    let (mut client, token) = client(&addr).await;
    let grid_id = grid(&mut client, &token).await;
    let mut secrets = Vec::new();
    // Numbers unique to this test, so nothing else in the cluster can contain them (ten in a row
    // from one random start, so no two of them collide).
    let start = u32::try_from(uuid::Uuid::new_v4().as_u128() % 900_000).unwrap();
    for n in 0..10 {
        let seed = start + n;
        let id = id_number("320830", "19660606", (start % 990) + n);
        let phone = format!("13{:09}", seed);
        let request = RegisterHouseholdRequest {
            grid_id: grid_id.clone(),
            address: format!("隐私村{n}号"),
            head: Some(NewResident { name: format!("户主{n}"), id_number: id.clone(), phone: phone.clone() }),
            ..Default::default()
        };
        client.register_household(authed(&token, request)).await.unwrap();
        secrets.push(phone);
        secrets.push(id);
    }
    let outbox = env.outbox_event_ids().await;
    assert!(terminate(&mut process).success());
    // PostgreSQL writes dirty pages out at a checkpoint: force one so the files hold the rows.
    let db = env.database("identity").await;
    sqlx::query("CHECKPOINT").execute(db.pool()).await.unwrap();

    let mut haystacks: Vec<(&str, Vec<u8>)> = vec![("the topic", env.topic_bytes(outbox.len()))];
    haystacks.push(("identity's log", std::fs::read(&log).unwrap()));
    let pg_dir = std::env::var("JIAXIN_TEST_PG_DIR").expect("set by scripts/dev-cluster.sh");
    let mut files = Vec::new();
    files_under(std::path::Path::new(&pg_dir), &mut files);
    haystacks.push(("PostgreSQL's files", files));
    for (place, bytes) in &haystacks {
        assert!(!bytes.is_empty(), "nothing read from {place}");
        for secret in &secrets {
            assert!(memchr::memmem::find(bytes, secret.as_bytes()).is_none(), "{secret} found in clear in {place}");
        }
    }
    // The scan would see them: the addresses (not secret) are on the topic and in PostgreSQL,
    // and the log has every registration.
    for (place, bytes) in [&haystacks[0], &haystacks[2]] {
        assert!(memchr::memmem::find(bytes, "隐私村3号".as_bytes()).is_some(), "the scan of {place} reads nothing");
    }
    assert!(memchr::memmem::find(&haystacks[1].1, b"RegisterHousehold").is_some(), "the log has the requests");
}

/// A service whose broker is gone for good (a lost node; a broker being replaced) is stopped by
/// its operator: SIGTERM must end the process within its grace period and a bounded close of its
/// Kafka clients, not leave it waiting in librdkafka until Kubernetes kills it. A private broker,
/// so stopping it disturbs no other test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and a Kafka-protocol broker: run by scripts/test-distributed.sh"]
async fn a_service_whose_broker_is_gone_for_good_still_stops_on_sigterm() {
    let mut env = Env::new();
    let broker = PrivateBroker::start(&env.data_dir.path().join("broker"));
    env.brokers = broker.address.clone();
    let grace_secs = 5;
    let grace = ["--shutdown-grace-secs", &grace_secs.to_string()];
    // Identity publishes (producer, relay); points both consumes and publishes.
    let (mut identity, identity_addr, identity_log) = env.spawn_logged("identity", &grace, "info").await;
    let peer = format!("identity={identity_addr}");
    let (mut points, _, points_log) = env.spawn_logged("points", &[grace[0], grace[1], "--peer", &peer], "info").await;
    broker.stop();
    // Long enough for the clients to notice: their requests time out, the group session lapses.
    tokio::time::sleep(Duration::from_secs(5)).await;

    for (name, process, log) in [("identity", &mut identity, identity_log), ("points", &mut points, points_log)] {
        let started = Instant::now();
        let status = terminate(process);
        let took = started.elapsed();
        println!("{name} stopped {took:?} after SIGTERM, broker gone ({status})");
        // The grace period, then at most five seconds for the clients to close (main.rs,
        // CLOSE_MARGIN), and some slack for a slow machine. Without the bound, points took 25 s.
        assert!(took < Duration::from_secs(grace_secs + 10), "{name} took {took:?} to stop");
        // Status 0: the stop itself gave up on the Kafka clients in time; status 1 would be
        // main.rs's deadline ending a stop that still waited on them.
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "{name} did not stop on its own: {status}; its log:\n{log}");
    }
}

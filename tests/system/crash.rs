//! Embedded mode under SIGKILL (issue 11, the embedded part): a grid worker streams record
//! batches into `jiaxin serve` and the process is killed mid-stream. Then, before and after a
//! restart: every SQLite file passes `PRAGMA integrity_check`; retrying every batch yields each
//! record exactly once (acknowledged ones with their first id); the ledger's chains verify; every
//! household's score is the base plus exactly its records, and points' maintained scores (the
//! leaderboard) equal a full evaluation; benefits' read model catches up to points' truth.

use std::{
    collections::{BTreeMap, HashMap},
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::common::{self, authed, id_number};
use jiaxin_kit::{
    secret::Secret,
    storage::{Database, DatabaseLocation},
};
use jiaxin_proto::{
    benefits::{GetStandingRequest, benefits_service_client::BenefitsServiceClient},
    identity::{
        CreateAccountRequest, GetCurrentAccountRequest, LoginRequest, NewResident, OrgNodeKind,
        RegisterHouseholdRequest, Role, identity_service_client::IdentityServiceClient,
    },
    points::{
        BatchSubmitRecordsRequest, GetScoreRequest, ListLeaderboardRequest, RecordInput, VerifyLedgerRequest,
        points_service_client::PointsServiceClient,
    },
};
use tonic::transport::Channel;

const PASSWORD: &str = "crash-admin-pass-1";
const HOUSEHOLDS: u32 = 60;
const BATCH: usize = 60;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `jiaxin serve` on `dir` and returns it with its gRPC address once it serves.
fn serve(dir: &Path) -> (Running, String) {
    let [grpc, admin] = crate::processes::free_ports();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jiaxin"))
        .args(["serve", "--data-dir", dir.to_str().unwrap(), "--bootstrap-admin-password", PASSWORD])
        .args(["--grpc-listen", &format!("127.0.0.1:{grpc}"), "--admin-listen", &format!("127.0.0.1:{admin}")])
        // Records count without a pledge, so the test needs no signing step.
        .args(["--unpledged-records", "accept"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "serve exited early");
        if line.contains("jiaxin 已启动") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (Running(child), format!("http://127.0.0.1:{grpc}"))
}

async fn channel(addr: &str) -> Channel {
    Channel::from_shared(addr.to_owned()).unwrap().connect().await.unwrap()
}

async fn login(channel: &Channel, username: &str, password: &str) -> String {
    let request = LoginRequest { username: username.into(), password: password.into() };
    IdentityServiceClient::new(channel.clone()).login(request).await.unwrap().into_inner().access_token
}

/// Submits every batch, counting the answered ones in `answered`; returns the record id each
/// request id got, for the batches that answered.
async fn submit_all(
    channel: &Channel,
    worker: &str,
    records: &[RecordInput],
    answered: &AtomicUsize,
) -> HashMap<String, String> {
    let mut points = PointsServiceClient::new(channel.clone());
    let mut acknowledged = HashMap::new();
    for batch in records.chunks(BATCH) {
        let request = authed(worker, BatchSubmitRecordsRequest { records: batch.to_vec() });
        let Ok(response) = points.batch_submit_records(request).await else {
            break;
        };
        for result in response.into_inner().results {
            assert!(result.error_code.is_empty(), "{} {}", result.error_field, result.error_message);
            let record = result.record.unwrap();
            acknowledged.insert(batch[result.index as usize].request_id.clone(), record.id);
        }
        answered.fetch_add(1, Ordering::SeqCst);
    }
    acknowledged
}

/// `PRAGMA integrity_check` on every SQLite file of the data directory.
async fn integrity(dir: &Path) -> usize {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "db") {
            let url = format!("sqlite://{}", path.display());
            let location = DatabaseLocation { url: Secret::new(url), max_connections: 1, schema: None };
            let db = Database::connect(&location).await.unwrap();
            let answer: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(db.pool()).await.unwrap();
            assert_eq!(answer, "ok", "{}", path.display());
            db.close().await;
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_stream_loses_no_record_and_counts_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve(dir.path());
    let channel = channel(&addr).await;
    let admin = login(&channel, "admin", PASSWORD).await;
    let mut identity = IdentityServiceClient::new(channel.clone());
    let me = identity.get_current_account(authed(&admin, GetCurrentAccountRequest {})).await.unwrap();
    let county = me.into_inner().account.unwrap().org_node_id;
    let town = common::create_node(&mut identity, &admin, &county, OrgNodeKind::Town, "官滩镇", "").await;
    let village = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "万山村", "").await;
    let grid = common::create_node(&mut identity, &admin, &village, OrgNodeKind::Grid, "第一网格", "").await;
    let mut households = Vec::new();
    for n in 0..HOUSEHOLDS {
        let head = NewResident {
            name: format!("户主{n}"),
            id_number: id_number("320830", "19700101", n),
            phone: String::new(),
        };
        let request = RegisterHouseholdRequest {
            grid_id: grid.clone(),
            address: format!("{n}号"),
            head: Some(head),
            ..Default::default()
        };
        let household = identity.register_household(authed(&admin, request)).await.unwrap().into_inner().household;
        households.push(household.unwrap().id);
    }
    let account = CreateAccountRequest {
        username: "worker".into(),
        display_name: "网格员".into(),
        roles: vec![Role::GridWorker as i32],
        org_node_id: grid.clone(),
        password: "crash-worker-pass-1".into(),
        ..Default::default()
    };
    identity.create_account(authed(&admin, account)).await.unwrap();
    let worker = login(&channel, "worker", "crash-worker-pass-1").await;
    let mut points = PointsServiceClient::new(channel.clone());
    for household in &households {
        common::await_points_household(&mut points, &admin, household).await;
    }

    // Stream the batches and SIGKILL the process once a third of them are in.
    let records = common::bonus_records("crash", &households);
    let batches = records.len().div_ceil(BATCH);
    let answered = Arc::new(AtomicUsize::new(0));
    let streaming = tokio::spawn({
        let (channel, worker, records, answered) = (channel.clone(), worker.clone(), records.clone(), answered.clone());
        async move { submit_all(&channel, &worker, &records, &answered).await }
    });
    while answered.load(Ordering::SeqCst) < batches / 3 {
        assert!(!streaming.is_finished(), "the stream ended before the kill");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let acknowledged = streaming.await.unwrap();
    assert!(!acknowledged.is_empty() && acknowledged.len() < records.len(), "killed mid-stream");

    // The files survived the kill.
    let files = integrity(dir.path()).await;
    assert!(files >= 6, "{files} database files checked");

    // Restart, and retry everything: each request id gets exactly one record, the first one.
    let (_server, addr) = serve(dir.path());
    let channel = self::channel(&addr).await;
    let admin = login(&channel, "admin", PASSWORD).await;
    let worker = login(&channel, "worker", "crash-worker-pass-1").await;
    let retried = submit_all(&channel, &worker, &records, &AtomicUsize::new(0)).await;
    assert_eq!(retried.len(), records.len(), "every record accepted after the restart");
    for (request, id) in &acknowledged {
        assert_eq!(&retried[request], id, "{request} was acknowledged before the kill and kept its record");
    }
    let mut ids: Vec<&String> = retried.values().collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), records.len(), "no two requests share a record");

    // The ledger verifies; scores are the base plus exactly the plan; maintained = evaluated.
    let mut points = PointsServiceClient::new(channel.clone());
    let verified = points.verify_ledger(authed(&admin, VerifyLedgerRequest::default())).await.unwrap().into_inner();
    assert!(verified.intact, "{verified:?}");
    let planned = common::bonus_plan_points();
    let mut scores = BTreeMap::new();
    for household in &households {
        let request = authed(&admin, GetScoreRequest { household_id: household.clone(), ..Default::default() });
        let score = points.get_score(request).await.unwrap().into_inner().score.unwrap().score;
        assert_eq!(score, 1000 + planned, "{household}");
        scores.insert(household.clone(), score);
    }
    let board = points.list_leaderboard(authed(&admin, ListLeaderboardRequest { org_node_id: grid, limit: 500 })).await;
    let board: BTreeMap<String, i64> =
        board.unwrap().into_inner().entries.into_iter().map(|e| (e.household_id, e.score)).collect();
    assert_eq!(board, scores, "maintained scores equal a full evaluation");

    // Benefits' read model catches up to points' truth.
    let mut benefits = BenefitsServiceClient::new(channel.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    for (household, score) in &scores {
        loop {
            let request = authed(&admin, GetStandingRequest { household_id: household.clone(), at: None });
            let standing = benefits.get_standing(request).await.ok().and_then(|s| s.into_inner().standing);
            if standing.is_some_and(|s| s.score == *score) {
                break;
            }
            assert!(Instant::now() < deadline, "benefits never caught up with {household}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "records {}, acknowledged before the kill {}, kills 1, lost 0, duplicated 0, files checked {files}",
        records.len(),
        acknowledged.len()
    );
}

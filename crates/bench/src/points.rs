//! Points throughput and score reads at a county's size, with a baseline from the same run, in
//! embedded mode or against a running distributed cluster. Prints its figures; asserts nothing
//! about time.
//!
//!     cargo run --release -p jiaxin-bench -- points --households 210000 --records 950000
//!     JIAXIN_UNPLEDGED_RECORDS=accept scripts/dev-cluster.sh start
//!     cargo run --release -p jiaxin-bench -- points --cluster /tmp/jiaxin-cluster
//!
//! 1. Onboards a synthetic county through the same CSV import cadres use (streamed over gRPC).
//! 2. Pushes a year of records through BatchSubmitRecords, to effective ledger entries and
//!    updated balances (rules that need no review, so every record goes the whole way), from
//!    `--clients` clients at once (one by default); embedded, also the CPU the process spent
//!    per record.
//! 3. Baseline: a plain batched insert of the same number of rows into one table of the same
//!    database engine (SQLite embedded, the cluster's PostgreSQL distributed).
//! 4. Household score reads in process (the API object, no network): p50 / p99, while the
//!    records' events still drain to the other services and again once they have.
//! 5. Recompute: every household's score rebuilt from its ledger and compared with its
//!    maintained balance, against reading the same ledger rows unevaluated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark program fails loudly

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::support::{self, Bench, percentile, rate};
use jiaxin::system::{ServiceName, consumers_of};
use jiaxin_kit::{
    auth::{Caller, Claims, ISSUER, Role},
    storage::Database,
};
use jiaxin_proto::points::{
    GetScoreRequest, VerifyLedgerRequest, points_service_client::PointsServiceClient,
    points_service_server::PointsService as _,
};
use tonic::Request;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 20_000)]
    households: usize,
    #[arg(long, default_value_t = 90_000)]
    records: usize,
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    /// Clients submitting the batches at once (several cadres importing their grids' records).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 20_000)]
    reads: usize,
    /// A running distributed cluster's directory (`scripts/dev-cluster.sh start`, with
    /// JIAXIN_UNPLEDGED_RECORDS=accept so records count without a pledge, as here embedded):
    /// measure it instead of an embedded system.
    #[arg(long)]
    cluster: Option<PathBuf>,
}

pub async fn run(args: Args) {
    // This program measures records, not pledges (the pledges scenario does): they count at once.
    let bench = match &args.cluster {
        Some(dir) => Bench::connect(dir).await,
        None => Bench::start(&["--unpledged-records", "accept"]).await,
    };
    let (config, root) = (bench.config.clone(), bench.root.clone());
    let points = PointsServiceClient::new(bench.channel(ServiceName::Points))
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let county = support::onboard_county(&bench, args.households).await;
    let import_done = Instant::now();
    let (residents, import_elapsed) = (county.residents, county.import_elapsed);
    let grids = county.grids;

    // Points learns the households from identity's events.
    let points_db = Database::connect(&config.location(ServiceName::Points).unwrap()).await.unwrap();
    let (households, propagation) = county_households(&points_db, &grids, args.households).await;
    // The records are measured once the other services have taken in the county too: while
    // they still apply identity's events (minutes at Xuyi's size) they share the two cores with
    // the intake, and the figure would be the onboarding's as much as the records'.
    bench.drained(ServiceName::Identity, &consumers_of(ServiceName::Identity)).await;
    let onboarded = import_done.elapsed();

    let collector = support::county_collector(&bench).await;
    let inputs = support::year_of_records(&households, args.records);
    // A cluster may hold earlier runs' counties: this run's entries are the ledger's growth.
    let count_entries = || async {
        let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger").fetch_one(points_db.pool()).await.unwrap();
        entries as usize
    };
    let entries_before = count_entries().await;
    // Progress on stderr, for a long run and for a profiler to attach to this phase alone.
    eprintln!("records: submitting {} from {} client(s)…", inputs.len(), args.clients);
    let (started, cpu) = (Instant::now(), support::CpuTimer::start());
    let accepted = support::submit_records(&points, collector, &inputs, args.batch, args.clients).await;
    let records_elapsed = started.elapsed();
    let records_cpu = cpu.elapsed();
    let records_done = Instant::now();
    eprintln!("records: done in {:.1} s", records_elapsed.as_secs_f64());
    assert_eq!(count_entries().await - entries_before, accepted);

    // Baseline: the same number of rows, plainly batch-inserted into one table of the same engine.
    let baseline_db = bench.baseline_database(ServiceName::Points).await;
    sqlx::query("CREATE TABLE plain (id TEXT PRIMARY KEY, household_id TEXT, rule_code TEXT, points BIGINT, occurred_at BIGINT, evidence TEXT)")
        .execute(baseline_db.pool())
        .await
        .unwrap();
    let started = Instant::now();
    for (n, chunk) in inputs.chunks(args.batch).enumerate() {
        let mut tx = baseline_db.begin().await.unwrap();
        for (i, input) in chunk.iter().enumerate() {
            sqlx::query("INSERT INTO plain VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(format!("{n}-{i}"))
                .bind(&input.household_id)
                .bind(&input.rule_code)
                .bind(2_i64)
                .bind(input.occurred_at.as_ref().map(|t| t.seconds).unwrap_or_default())
                .bind(&input.evidence[0])
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let baseline_elapsed = started.elapsed();

    // Score reads in process: the API object over the same database, no network.
    let service = jiaxin_points::PointsService::start(points_db.clone(), &config.points).await.unwrap();
    let api = service.api();
    let caller = Caller(Arc::new(Claims {
        iss: ISSUER.into(),
        sub: "bench".into(),
        roles: vec![Role::CountyAdmin],
        org: root.clone(),
        rid: None,
        iat: 0,
        exp: i64::MAX,
        jti: "bench".into(),
    }));
    let read_scores = || async {
        let mut latencies = Vec::with_capacity(args.reads);
        for i in 0..args.reads {
            let household = &households[(i * 7919) % households.len()];
            let mut request = Request::new(GetScoreRequest { household_id: household.clone(), ..Default::default() });
            request.extensions_mut().insert(caller.clone());
            let started = Instant::now();
            api.get_score(request).await.unwrap();
            latencies.push(started.elapsed());
        }
        latencies.sort();
        latencies
    };
    // First while the records' events still reach council, benefits and the bank on the same
    // two cores (as right after a county's catch-up), then once they have all arrived.
    let busy = read_scores().await;
    bench.drained(ServiceName::Points, &consumers_of(ServiceName::Points)).await;
    let drained = records_done.elapsed();
    let quiet = read_scores().await;

    // Every household's score rebuilt from its ledger and compared with the maintained balance,
    // against reading the same ledger rows without evaluating them.
    let started = Instant::now();
    let recomputed = service.recompute_scores().await.unwrap();
    let recompute_elapsed = started.elapsed();
    // Every household's hash chain recomputed and checked against its head, county-wide.
    let started = Instant::now();
    let mut request = Request::new(VerifyLedgerRequest::default());
    request.extensions_mut().insert(caller.clone());
    let verified = api.verify_ledger(request).await.unwrap().into_inner();
    let verify_elapsed = started.elapsed();
    let started = Instant::now();
    let ledger_rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT household_id, delta, effective_from, expires_at, created_at FROM ledger ORDER BY household_id, seq",
    )
    .fetch_all(points_db.pool())
    .await
    .unwrap();
    let ledger_read_elapsed = started.elapsed();

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("jiaxin points benchmark — {}, {} cores", bench.mode(), cores);
    println!("county:   {} households, {} residents, {} grids", args.households, residents, grids.len());
    println!(
        "import:   {:>10.0} households/s  ({:.1} s, CSV over gRPC, validated, encrypted)",
        rate(args.households, import_elapsed),
        import_elapsed.as_secs_f64()
    );
    println!(
        "events:   {:>10.0} households/s  reach points' read model ({:.1} s after the import)",
        rate(args.households, import_elapsed + propagation),
        propagation.as_secs_f64()
    );
    println!(
        "          every service has taken in the county {:.1} s after the import; the records start then",
        onboarded.as_secs_f64()
    );
    println!(
        "records:  {:>10.0} records/s     ({} records in batches of {} from {} client(s), to effective ledger entries and balances, {:.1} s)",
        rate(accepted, records_elapsed),
        accepted,
        args.batch,
        args.clients,
        records_elapsed.as_secs_f64()
    );
    // Embedded, every service runs in this process; against a cluster this process is a client.
    if let (Some(cpu), None) = (records_cpu, &args.cluster) {
        println!(
            "          {:.1} µs of CPU per record (every thread of the process; {:.0}% of the {cores} cores busy)",
            cpu.as_secs_f64() * 1e6 / accepted as f64,
            100.0 * cpu.as_secs_f64() / records_elapsed.as_secs_f64() / cores as f64
        );
    }
    println!(
        "baseline: {:>10.0} rows/s        (plain batched INSERT of the same rows into one table, same engine, {:.1} s)",
        rate(accepted, baseline_elapsed),
        baseline_elapsed.as_secs_f64()
    );
    println!(
        "ratio:    {:>10.2}               records/s ÷ baseline rows/s",
        rate(accepted, records_elapsed) / rate(accepted, baseline_elapsed)
    );
    println!(
        "drained:  every record's events reached council, benefits and the bank {:.1} s after the last batch",
        drained.as_secs_f64()
    );
    for (when, latencies) in [("while the events drain", &busy), ("after the events drained", &quiet)] {
        println!(
            "score read in process, {when}: p50 {:?}  p99 {:?}  max {:?}  ({} reads)",
            percentile(latencies, 0.50),
            percentile(latencies, 0.99),
            latencies[latencies.len() - 1],
            latencies.len()
        );
    }
    println!(
        "recompute: {} households' scores from {} ledger entries in {:.2} s, {} disagreeing with their balance",
        recomputed.households,
        recomputed.entries,
        recompute_elapsed.as_secs_f64(),
        recomputed.disagreeing
    );
    println!(
        "verify:   {} households' hash chains, {} entries, checked against their heads in {:.2} s: {}",
        verified.households_checked,
        verified.entries_checked,
        verify_elapsed.as_secs_f64(),
        if verified.intact { "intact" } else { "BROKEN" }
    );
    println!(
        "baseline: reading the same {} ledger rows in one statement, unevaluated: {:.2} s",
        ledger_rows.len(),
        ledger_read_elapsed.as_secs_f64()
    );
    bench.shutdown().await;
}

/// This run's households as points' read model holds them, once identity's events have brought
/// all of them, and how long that took. Points keeps a household's grid, not its path, so the
/// county's grids pick them (a cluster may hold earlier runs' counties beside this one).
async fn county_households(points_db: &Database, grids: &[String], expected: usize) -> (Vec<String>, Duration) {
    let grids: std::collections::HashSet<&str> = grids.iter().map(String::as_str).collect();
    let started = Instant::now();
    loop {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, grid_id FROM households ORDER BY id").fetch_all(points_db.pool()).await.unwrap();
        let households: Vec<String> =
            rows.into_iter().filter(|(_, grid)| grids.contains(grid.as_str())).map(|(id, _)| id).collect();
        if households.len() >= expected {
            return (households, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

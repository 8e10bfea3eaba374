//! Pledge signing at a county's size and the time to read coverage, in embedded mode or against
//! a running distributed cluster, with baselines from the same run. Prints its figures; asserts
//! nothing about time.
//!
//!     cargo run --release -p jiaxin-bench -- pledges --households 210000
//!     cargo run --release -p jiaxin-bench -- pledges --cluster /tmp/jiaxin-cluster
//!
//! 1. Onboards a synthetic county through the CSV import; each village publishes its 村规民约.
//! 2. Signs every household's pledge through BatchSignPledges (paper forms entered by a cadre),
//!    each item validated, coverage kept at every level.
//!    Baseline: a plain batched insert of the same number of rows into one table of the same
//!    engine (SQLite embedded, the cluster's PostgreSQL distributed).
//! 3. Reads county coverage over gRPC: p50 / p99. Baseline: counting the county's households by
//!    state in pledges' own table (what a request would cost without the maintained aggregates).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark program fails loudly

use std::time::Instant;

use crate::support::{self, Bench, authed, percentile, rate};
use jiaxin::system::ServiceName;
use jiaxin_kit::storage::Database;
use jiaxin_proto::pledges::{GetCoverageRequest, pledges_service_client::PledgesServiceClient};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 20_000)]
    households: usize,
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    #[arg(long, default_value_t = 2_000)]
    reads: usize,
    /// A running distributed cluster's directory (`scripts/dev-cluster.sh start`): measure it
    /// instead of an embedded system.
    #[arg(long)]
    cluster: Option<std::path::PathBuf>,
}

pub async fn run(args: Args) {
    let bench = match &args.cluster {
        Some(dir) => Bench::connect(dir).await,
        None => Bench::start(&[]).await,
    };
    let admin = bench.admin().await;
    let mut pledges = PledgesServiceClient::new(bench.channel(ServiceName::Pledges))
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let county = support::onboard_county(&bench, args.households).await;
    let pledges_db = Database::connect(&bench.config.location(ServiceName::Pledges).unwrap()).await.unwrap();
    let (heads, propagation) = support::county_heads(&pledges_db, &bench.root, args.households).await;

    support::publish_village_rules(&mut pledges, &admin, &county.villages).await;

    // Every household's head signs on paper; a cadre enters the forms in batches.
    let items = support::paper_pledges(&heads);
    let started = Instant::now();
    let (signed, mut latencies) = support::sign_pledges(&mut pledges, &admin, &items, args.batch).await;
    let signing_elapsed = started.elapsed();
    latencies.sort();
    let batch_p99 = percentile(&latencies, 0.99);

    // Baseline: the same number of rows, plainly batch-inserted into one table of the same engine.
    let baseline_db = bench.baseline_database(ServiceName::Pledges).await;
    sqlx::query("CREATE TABLE plain (id TEXT PRIMARY KEY, household_id TEXT, signer TEXT, scan TEXT)")
        .execute(baseline_db.pool())
        .await
        .unwrap();
    let started = Instant::now();
    for (n, chunk) in items.chunks(args.batch).enumerate() {
        let mut tx = baseline_db.begin().await.unwrap();
        for (i, item) in chunk.iter().enumerate() {
            sqlx::query("INSERT INTO plain VALUES ($1, $2, $3, $4)")
                .bind(format!("{n}-{i}"))
                .bind(&item.household_id)
                .bind(&item.signer_resident_id)
                .bind(&item.scan_reference)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let baseline_elapsed = started.elapsed();

    // County coverage, from the maintained aggregates, over gRPC.
    let mut reads = Vec::with_capacity(args.reads);
    let mut coverage = None;
    for _ in 0..args.reads {
        let started = Instant::now();
        let request = authed(&admin, GetCoverageRequest { org_node_id: bench.root.clone() });
        coverage = pledges.get_coverage(request).await.unwrap().into_inner().coverage;
        reads.push(started.elapsed());
    }
    reads.sort();
    let coverage = coverage.unwrap();
    assert_eq!((coverage.households as usize, coverage.signed as usize), (args.households, signed));
    // Baseline: what one read costs when it counts the households instead.
    let mut scans = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let sql = format!(
            "SELECT state, COUNT(*) FROM households WHERE active = 1 AND {} GROUP BY state",
            support::IN_COUNTY
        );
        let counts: Vec<(i64, i64)> =
            sqlx::query_as(&sql).bind(&bench.root).fetch_all(pledges_db.pool()).await.unwrap();
        scans.push(started.elapsed());
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>() as usize, args.households);
    }
    scans.sort();

    println!(
        "jiaxin pledges benchmark — {}, {} cores",
        bench.mode(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "county:   {} households, {} residents, {} grids, {} villages",
        county.households,
        county.residents,
        county.grids.len(),
        county.villages.len()
    );
    println!(
        "import:   {:>10.0} households/s  ({:.1} s; pledges' read model complete {:.1} s after it)",
        rate(county.households, county.import_elapsed),
        county.import_elapsed.as_secs_f64(),
        propagation.as_secs_f64()
    );
    println!(
        "signing:  {:>10.0} pledges/s      ({} households in batches of {}, validated, coverage kept, {:.1} s; batch p99 {:?})",
        rate(signed, signing_elapsed),
        signed,
        args.batch,
        signing_elapsed.as_secs_f64(),
        batch_p99
    );
    println!(
        "baseline: {:>10.0} rows/s        (plain batched INSERT of the same rows into one table, same engine, {:.1} s)",
        rate(signed, baseline_elapsed),
        baseline_elapsed.as_secs_f64()
    );
    println!(
        "coverage: county read over gRPC p50 {:?}  p99 {:?}  ({} reads; {} of {} signed)",
        percentile(&reads, 0.50),
        percentile(&reads, 0.99),
        reads.len(),
        coverage.signed,
        coverage.households
    );
    println!(
        "baseline: counting the county's households by state p50 {:?}  p99 {:?}  (what a read would cost without the aggregates)",
        percentile(&scans, 0.50),
        percentile(&scans, 0.99)
    );
    bench.shutdown().await;
}

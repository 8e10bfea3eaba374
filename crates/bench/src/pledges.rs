//! Pledge signing at a county's size and the time to read coverage, embedded mode, with
//! baselines from the same run. Prints its figures; asserts nothing about time.
//!
//!     cargo run --release -p jiaxin-bench -- pledges --households 210000
//!
//! 1. Onboards a synthetic county through the CSV import; each village publishes its 村规民约.
//! 2. Signs every household's pledge through BatchSignPledges (paper forms entered by a cadre),
//!    each item validated, coverage kept at every level.
//!    Baseline: a plain batched insert of the same number of rows into one SQLite table.
//! 3. Reads county coverage over gRPC: p50 / p99. Baseline: counting the households by state in
//!    pledges' own table (what a request would cost without the maintained aggregates).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark program fails loudly

use std::time::Instant;

use crate::support::{self, Bench, authed, percentile, rate};
use jiaxin::system::ServiceName;
use jiaxin_kit::storage::{Database, DatabaseLocation};
use jiaxin_proto::pledges::{
    BatchSignPledgesRequest, Channel as SignChannel, GetCoverageRequest, PublishTemplateRequest, SignPledgeRequest,
    TemplateKind, pledges_service_client::PledgesServiceClient,
};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 20_000)]
    households: usize,
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    #[arg(long, default_value_t = 2_000)]
    reads: usize,
}

pub async fn run(args: Args) {
    let bench = Bench::start(&[]).await;
    let admin = bench.admin().await;
    let mut pledges = PledgesServiceClient::new(bench.channel(ServiceName::Pledges))
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let county = support::onboard_county(&bench, args.households).await;
    let pledges_db = Database::connect(&bench.config.location(ServiceName::Pledges).unwrap()).await.unwrap();
    let propagation = support::await_rows(&pledges_db, "households", args.households).await;

    for village in &county.villages {
        let template = PublishTemplateRequest {
            org_node_id: village.clone(),
            kind: TemplateKind::VillageRules as i32,
            title: "村规民约".into(),
            body: "一、遵纪守法。二、移风易俗。三、爱护环境。四、邻里和睦。".into(),
            consent_clause: "本户同意将本承诺及履约记录纳入家庭信用档案。".into(),
            effective_on: "2026-01-01".into(),
            adopted_by: "村民代表大会".into(),
            adopted_on: "2025-12-20".into(),
            requires_resign: false,
        };
        pledges.publish_template(authed(&admin, template)).await.unwrap();
    }

    // Every household's head signs on paper; a cadre enters the forms in batches.
    let heads: Vec<(String, String)> = sqlx::query_as("SELECT id, head_resident_id FROM households ORDER BY id")
        .fetch_all(pledges_db.pool())
        .await
        .unwrap();
    let items: Vec<SignPledgeRequest> = heads
        .iter()
        .enumerate()
        .map(|(i, (household, head))| SignPledgeRequest {
            household_id: household.clone(),
            signer_resident_id: head.clone(),
            template_version: 1,
            channel: SignChannel::Paper as i32,
            scan_reference: format!("scan:2026/{i:06}.pdf"),
            ..Default::default()
        })
        .collect();
    let started = Instant::now();
    let mut signed = 0;
    let mut latencies = Vec::new();
    for chunk in items.chunks(args.batch) {
        let call = Instant::now();
        let response = pledges
            .batch_sign_pledges(authed(&admin, BatchSignPledgesRequest { items: chunk.to_vec() }))
            .await
            .unwrap()
            .into_inner();
        latencies.push(call.elapsed());
        if response.failed > 0 {
            let first = response.results.iter().find(|r| !r.error_code.is_empty()).unwrap();
            panic!("{} failed: {} {} {}", response.failed, first.error_code, first.error_field, first.error_message);
        }
        signed += response.signed as usize;
    }
    let signing_elapsed = started.elapsed();
    latencies.sort();
    let batch_p99 = percentile(&latencies, 0.99);

    // Baseline: the same number of rows, plainly batch-inserted into one SQLite table.
    let baseline_db =
        Database::connect(&DatabaseLocation::sqlite_in(bench.scratch(), "baseline").unwrap()).await.unwrap();
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
        let counts: Vec<(i64, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM households WHERE active = 1 GROUP BY state")
                .fetch_all(pledges_db.pool())
                .await
                .unwrap();
        scans.push(started.elapsed());
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>() as usize, args.households);
    }
    scans.sort();

    println!(
        "jiaxin pledges benchmark — embedded (SQLite), {} cores",
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
        "baseline: {:>10.0} rows/s        (plain batched INSERT of the same rows into one SQLite table, {:.1} s)",
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
        "baseline: counting households by state p50 {:?}  p99 {:?}  (what a read would cost without the aggregates)",
        percentile(&scans, 0.50),
        percentile(&scans, 0.99)
    );
    bench.shutdown().await;
}

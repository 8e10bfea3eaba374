//! The benefits scenario against a running distributed cluster: benefits is one `jiaxin serve
//! --service benefits` process on PostgreSQL, its read model fed by the broker, and this program
//! one of its clients over the network.
//!
//!     scripts/dev-cluster.sh start
//!     cargo run --release -p jiaxin-bench -- benefits --cluster /tmp/jiaxin-cluster
//!
//! 1. The county goes in the way a real one does: households through identity's CSV import, each
//!    village's 村规民约 and nineteen in twenty households' paper pledges through pledges, a year
//!    of records for the pledged households through points; benefits learns all of it from their
//!    events. The agency is an account of identity's; its provider and benefit are saved over
//!    gRPC.
//! 2. Eligibility checks one at a time over the network, each with the agency's token. Baseline:
//!    reading the household's standing row from benefits' schema through this program's own
//!    connection (a round trip to the same PostgreSQL, no audit write).
//! 3. Checks from concurrent clients, 4. a daily queue and 5. the annual evaluation as in process
//!    (benefits.rs), every call over the network with a token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark program fails loudly

use std::{path::Path, sync::Arc, time::Instant};

use crate::{
    benefits::{Args, measure_checks, one_at_a_time, show, show_batch_check, show_evaluation},
    support::{self, Bench, authed, rate},
};
use jiaxin::system::{ServiceName, consumers_of};
use jiaxin_kit::storage::Database;
use jiaxin_proto::{
    benefits::{
        BatchCheckEligibilityRequest, Benefit, BenefitKind, CheckEligibilityRequest, EvaluateYearRequest, Provider,
        ProviderKind, SaveBenefitRequest, SaveProviderRequest, Scene, benefits_service_client::BenefitsServiceClient,
    },
    identity::Role as ProtoRole,
    pledges::pledges_service_client::PledgesServiceClient,
    points::points_service_client::PointsServiceClient,
};
use tonic::transport::Channel;

/// Records per pledged household: a year's worth is about four and a half (the points
/// scenario's 950,000 for 210,000 households); the checks read the standing, not the records.
const RECORDS_PER_HOUSEHOLD: usize = 3;

pub async fn run(args: &Args, cluster_dir: &Path) {
    let bench = Bench::connect(cluster_dir).await;
    println!("benefits 基准 / benchmark: {} households, {}", args.households, bench.mode());

    // 1. The county through the services' APIs.
    let started = Instant::now();
    let county = support::onboard_county(&bench, args.households).await;
    let pledges_db = Database::connect(&bench.config.location(ServiceName::Pledges).unwrap()).await.unwrap();
    let (heads, _) = support::county_heads(&pledges_db, &bench.root, args.households).await;
    bench.drained(ServiceName::Identity, &consumers_of(ServiceName::Identity)).await;
    let onboarded = started.elapsed();

    let started = Instant::now();
    let admin = bench.admin().await;
    let mut pledges = PledgesServiceClient::new(bench.channel(ServiceName::Pledges))
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    support::publish_village_rules(&mut pledges, &admin, &county.villages).await;
    // Nineteen in twenty households sign, as in process.
    let signing: Vec<(String, String)> =
        heads.iter().enumerate().filter(|(i, _)| i % 20 != 0).map(|(_, head)| head.clone()).collect();
    let (signed, _) = support::sign_pledges(&mut pledges, &admin, &support::paper_pledges(&signing), 5_000).await;
    bench.drained(ServiceName::Pledges, &consumers_of(ServiceName::Pledges)).await;
    let pledged: Vec<String> = signing.into_iter().map(|(household, _)| household).collect();
    let points = PointsServiceClient::new(bench.channel(ServiceName::Points)).max_encoding_message_size(256 << 20);
    let collector = support::county_collector(&bench).await;
    let inputs = support::year_of_records(&pledged, RECORDS_PER_HOUSEHOLD * pledged.len());
    let accepted = support::submit_records(&points, collector, &inputs, 5_000, 1).await;
    // Every consumer, not only benefits: a drain still running elsewhere would share the cores.
    bench.drained(ServiceName::Points, &consumers_of(ServiceName::Points)).await;
    println!(
        "1. county: {} households imported and known to every service in {:.1} s; {signed} pledges and \
         {accepted} records through pledges and points and in benefits' read model in {:.1} s",
        args.households,
        onboarded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // The agency and its benefit for tier A and above.
    let (agency_id, mut agency) = support::account(&bench, "bench-agency", "政务服务中心", ProtoRole::Agency).await;
    let mut benefits =
        BenefitsServiceClient::new(bench.channel(ServiceName::Benefits)).max_encoding_message_size(64 << 20);
    let admin = bench.admin().await;
    let provider = Provider {
        name: "县政务服务中心".into(),
        kind: ProviderKind::Agency as i32,
        org_node_id: bench.root.clone(),
        account_ids: vec![agency_id],
        ..Default::default()
    };
    let request = SaveProviderRequest { provider: Some(provider) };
    let provider = benefits.save_provider(authed(&admin, request)).await.unwrap().into_inner().provider.unwrap();
    let benefit = Benefit {
        name: "信易批·容缺受理".into(),
        scene: Scene::Approval as i32,
        kind: BenefitKind::FastTrack as i32,
        provider_id: provider.id,
        org_node_id: bench.root.clone(),
        min_tier: "A".into(),
        policy_basis: "《盱眙县信用户激励办法》".into(),
        valid_from: "2020-01-01".into(),
        ..Default::default()
    };
    let request = SaveBenefitRequest { benefit: Some(benefit) };
    let benefit_id = benefits.save_benefit(authed(&admin, request)).await.unwrap().into_inner().benefit.unwrap().id;
    // Spread over the county the same way every run (a multiplicative step through the list).
    let picks: Vec<String> = (0..args.checks).map(|i| heads[(i * 7919) % heads.len()].0.clone()).collect();

    // 2. One at a time over the network, against reading the standing row over the same distance.
    let benefits_db = Database::connect(&bench.config.location(ServiceName::Benefits).unwrap()).await.unwrap();
    // One in twenty has no standing: it never pledged, so no score reached benefits (its check
    // says so).
    let (baseline, _) = one_at_a_time(&picks, |household| {
        let query = sqlx::query_as("SELECT score, tier FROM standings WHERE household_id = $1").bind(household.clone());
        async {
            let _: Option<(i64, String)> = query.fetch_optional(benefits_db.pool()).await.unwrap();
        }
    })
    .await;
    let token: Arc<str> = agency.token().await.into();
    let (latencies, elapsed) = one_at_a_time(&picks, |household| {
        let ask = CheckEligibilityRequest { benefit_id: benefit_id.clone(), household_id: household.clone() };
        let (mut client, ask) = (benefits.clone(), authed(&token, ask));
        async move {
            client.check_eligibility(ask).await.unwrap();
        }
    })
    .await;
    println!("2. eligibility checks, one at a time ({} checks, {:.0}/s):", picks.len(), rate(picks.len(), elapsed));
    show("CheckEligibility over gRPC (token, reads, audit)", &latencies);
    show("baseline: read the standing row only", &baseline);

    // 3. Concurrent clients against the fixed-answer baseline.
    let ask = CheckEligibilityRequest { benefit_id: benefit_id.clone(), household_id: picks[0].clone() };
    let sample = benefits.check_eligibility(authed(&token, ask)).await.unwrap().into_inner();
    let picks = Arc::new(picks);
    let checks = |channel: Channel| {
        let (picks, benefit_id, token) = (picks.clone(), benefit_id.clone(), token.clone());
        move |n: usize| {
            let mut client = BenefitsServiceClient::new(channel.clone());
            let ask = CheckEligibilityRequest {
                benefit_id: benefit_id.clone(),
                household_id: picks[n % picks.len()].clone(),
            };
            let request = authed(&token, ask);
            async move {
                client.check_eligibility(request).await.unwrap();
            }
        }
    };
    measure_checks(args, sample, bench.channel(ServiceName::Benefits), checks).await;

    // 4. A daily queue in one call.
    let queue: Vec<String> = picks.iter().take(5_000).cloned().collect();
    let request = BatchCheckEligibilityRequest { benefit_id, household_ids: queue.clone() };
    let started = Instant::now();
    let checks = benefits.batch_check_eligibility(authed(agency.token().await, request)).await.unwrap();
    let elapsed = started.elapsed();
    let eligible = checks.into_inner().checks.iter().filter(|c| c.eligible).count();
    show_batch_check(queue.len(), eligible, elapsed);

    // 5. The annual evaluation of this county, twice (the second replaces the draft), against
    // counting the rows of benefits' read model it reads.
    let started = Instant::now();
    for table in ["households", "standings", "score_history"] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let _: i64 = sqlx::query_scalar(&sql).fetch_one(benefits_db.pool()).await.unwrap();
    }
    let scan = started.elapsed();
    for run in ["first", "again"] {
        let request =
            authed(&bench.admin().await, EvaluateYearRequest { year: args.year, org_node_id: bench.root.clone() });
        let started = Instant::now();
        let evaluation = benefits.evaluate_year(request).await.unwrap();
        let evaluation = evaluation.into_inner().evaluation.unwrap();
        show_evaluation(run, started.elapsed(), &evaluation);
    }
    println!(
        "   baseline: COUNT(*) over households, standings, score history (the whole schema): {:.3} s",
        scan.as_secs_f64()
    );
    bench.shutdown().await;
}

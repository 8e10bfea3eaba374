//! Benefits at a county's size, with baselines from the same run. Prints
//! its figures; asserts nothing about time.
//!
//!     cargo run --release -p jiaxin-bench -- benefits --households 210000
//!
//! That is the service in this process (on SQLite, or PostgreSQL with `--postgres`); with
//! `--cluster` the same measurements are taken of a running distributed cluster's benefits
//! process (benefits_cluster.rs). In process:
//!
//! 1. Builds benefits' read model of a synthetic county (towns, 250 villages, grids of ~230
//!    households; most households pledged; one to three score changes each over the year; a few
//!    serious deductions) by delivering the events identity, pledges and points would publish
//!    to benefits' own consumer, a relay batch at a time.
//! 2. Eligibility checks by an agency, one at a time, in process: p50 / p99, each answered once
//!    its audit entry has committed.
//!    Baseline: reading the same household's standing row with no audit write.
//! 3. Eligibility checks over gRPC on 127.0.0.1 from concurrent clients: peak checks/s and
//!    p50/p99, then p50/p99 at half that rate (requests spread evenly). The agency is put in the
//!    request by an interceptor (no token check). Baseline: a tonic server on the same machine
//!    answering every check with a prebuilt answer of the same size.
//! 4. A 5,000-household daily queue in one BatchCheckEligibility.
//! 5. The annual evaluation of the county (credit households and villages), computed twice.
//!    Baseline: scanning the rows it reads (households, pledges, score history) with COUNT.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark program fails loudly

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    fixed::{self, FixedAnswer},
    load::load,
    support::{engine, percentile, rate, scenario_database},
};
use jiaxin_benefits::{BenefitsConfig, BenefitsService, api::BenefitsApi};
use jiaxin_kit::{
    auth::{Caller, Claims, ISSUER, Role},
    events, tiers,
    time::to_timestamp,
};
use jiaxin_proto::{
    benefits::{
        BatchCheckEligibilityRequest, Benefit, BenefitKind, CheckEligibilityRequest, CheckEligibilityResponse,
        EvaluateYearRequest, Evaluation, Provider, ProviderKind, SaveBenefitRequest, SaveProviderRequest, Scene,
        benefits_service_client::BenefitsServiceClient,
        benefits_service_server::{BenefitsService as _, BenefitsServiceServer},
    },
    events::Envelope,
    identity::{HouseholdRegistered, OrgNode, OrgNodeCreated, OrgNodeKind},
    pledges::PledgeSigned,
    points::{Record, RecordEffective, RecordSubmitted, ScoreChanged, Severity},
};
use tonic::{service::Routes, transport::Channel};

#[derive(clap::Args)]
pub struct Args {
    /// Run the service on this PostgreSQL (a fresh schema) instead of a SQLite file, e.g.
    /// postgres://postgres@127.0.0.1:25432/postgres from scripts/postgres.sh.
    #[arg(long)]
    postgres: Option<String>,
    /// A running distributed cluster's directory (`scripts/dev-cluster.sh start`): measure its
    /// benefits process over the network, the county loaded through the services' own APIs,
    /// instead of the service in this process.
    #[arg(long, conflicts_with = "postgres")]
    cluster: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 20_000)]
    pub households: usize,
    /// In process only: the villages the households are spread over (with --cluster, the
    /// county's shape is the import's: villages of about 920 households).
    #[arg(long, default_value_t = 250)]
    villages: usize,
    #[arg(long, default_value_t = 10_000)]
    pub checks: usize,
    #[arg(long, default_value_t = 2026)]
    pub year: i32,
    /// Concurrent gRPC clients for the checks over gRPC.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

const DAY: i64 = 24 * 3600 * 1_000_000;
const GRID_SIZE: usize = 230;

/// A small deterministic generator (xorshift), so every run builds the same county.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn caller(account: &str, role: Role) -> Caller {
    Caller(Arc::new(Claims {
        iss: ISSUER.into(),
        sub: account.into(),
        roles: vec![role],
        org: "county".into(),
        rid: None,
        iat: 0,
        exp: i64::MAX,
        jti: "bench".into(),
    }))
}

fn request<T>(caller: &Caller, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(caller.clone());
    request
}

fn node(id: &str, kind: OrgNodeKind, path: &[String]) -> Envelope {
    let node = OrgNode { id: id.into(), kind: kind as i32, path: path.to_vec(), ..Default::default() };
    events::envelope("identity", id, &OrgNodeCreated { org_node: Some(node) }).unwrap()
}

/// The events of a synthetic county, by topic, in the order their producers would publish them.
fn county_events(args: &Args, year_start: i64) -> (Vec<Envelope>, Vec<Envelope>, Vec<Envelope>) {
    let mut rng = Seeded(0x9e37_79b9_7f4a_7c15);
    let county = "county".to_owned();
    let mut identity = vec![node(&county, OrgNodeKind::County, std::slice::from_ref(&county))];
    let towns = args.villages.div_ceil(20);
    for t in 0..towns {
        identity.push(node(&format!("town-{t}"), OrgNodeKind::Town, &[county.clone(), format!("town-{t}")]));
    }
    let grids = args.households.div_ceil(GRID_SIZE).max(args.villages);
    for g in 0..grids {
        let v = g % args.villages;
        let path = [county.clone(), format!("town-{}", v % towns), format!("village-{v}")];
        if g < args.villages {
            identity.push(node(&path[2], OrgNodeKind::Village, &path));
        }
        let mut grid_path = path.to_vec();
        grid_path.push(format!("grid-{g}"));
        identity.push(node(&format!("grid-{g}"), OrgNodeKind::Grid, &grid_path));
    }
    let (mut pledges, mut points) = (Vec::new(), Vec::new());
    for h in 0..args.households {
        let household = format!("household-{h}");
        let g = h % grids;
        let v = g % args.villages;
        let path = vec![county.clone(), format!("town-{}", v % towns), format!("village-{v}"), format!("grid-{g}")];
        let registered = HouseholdRegistered {
            household_id: household.clone(),
            grid_id: format!("grid-{g}"),
            head_resident_id: format!("resident-{h}"),
            org_path: path,
            address: format!("{h}号"),
            head_birth_date: "1975-01-01".into(),
        };
        identity.push(events::envelope("identity", &household, &registered).unwrap());
        // Nineteen in twenty signed, in the year's first campaign.
        if rng.below(20) != 0 {
            let signed = PledgeSigned {
                household_id: household.clone(),
                signed_at: Some(to_timestamp(year_start + rng.below(60) as i64 * DAY)),
                ..Default::default()
            };
            pledges.push(events::envelope("pledges", &household, &signed).unwrap());
        }
        // One to three score changes over the year, mostly bonuses.
        let (mut score, mut at) = (tiers::BASE_SCORE, year_start + 60 * DAY);
        for _ in 0..=rng.below(3) {
            let old = score;
            score += rng.below(40) as i64 - 8;
            at += rng.below(90) as i64 * DAY + 1;
            let changed = ScoreChanged {
                household_id: household.clone(),
                old_score: old,
                new_score: score,
                old_tier: tiers::of_score(old).into(),
                new_tier: tiers::of_score(score).into(),
                redeemable_points: (score - tiers::BASE_SCORE).max(0),
                at: Some(to_timestamp(at)),
            };
            points.push(events::envelope("points", &household, &changed).unwrap());
        }
        // Three in a thousand had a serious deduction that counted this year.
        if rng.below(1000) < 3 {
            let record = Record {
                id: format!("record-{h}"),
                household_id: household.clone(),
                points: -30,
                effective_from: Some(to_timestamp(at)),
                expires_at: Some(to_timestamp(at + 1095 * DAY)),
                ..Default::default()
            };
            let submitted = RecordSubmitted {
                record: Some(record.clone()),
                severity: Severity::Serious as i32,
                ..Default::default()
            };
            points.push(events::envelope("points", &household, &submitted).unwrap());
            points.push(events::envelope("points", &household, &RecordEffective { record: Some(record) }).unwrap());
        }
    }
    (identity, pledges, points)
}

/// Awaits `call` for each of `items` in turn: each call's latency (sorted) and the whole run's
/// time.
pub async fn one_at_a_time<T, F, Fut>(items: &[T], mut call: F) -> (Vec<Duration>, Duration)
where
    F: FnMut(&T) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut latencies = Vec::with_capacity(items.len());
    let started = Instant::now();
    for item in items {
        let call_started = Instant::now();
        call(item).await;
        latencies.push(call_started.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    (latencies, elapsed)
}

/// Phase 4's line: one BatchCheckEligibility of `households`.
pub fn show_batch_check(households: usize, eligible: usize, elapsed: Duration) {
    println!(
        "4. BatchCheckEligibility of {households} households: {:.0} ms ({eligible} eligible), {:.0} checks/s",
        elapsed.as_secs_f64() * 1e3,
        rate(households, elapsed)
    );
}

/// Phase 5's line: one run of the annual evaluation.
pub fn show_evaluation(run: &str, elapsed: Duration, evaluation: &Evaluation) {
    println!(
        "5. annual evaluation ({run}): {:.2} s — {} households, {} 信用户; {} villages, {} 信用村居",
        elapsed.as_secs_f64(),
        evaluation.households,
        evaluation.credit_households,
        evaluation.villages,
        evaluation.credit_villages
    );
}

pub fn show(label: &str, sorted: &[Duration]) {
    println!(
        "  {label:<44} p50 {:>8.3} ms   p99 {:>8.3} ms",
        percentile(sorted, 0.50).as_secs_f64() * 1e3,
        percentile(sorted, 0.99).as_secs_f64() * 1e3
    );
}

/// Phase 3: checks asked of `service` by concurrent clients — as fast as answers come, then at
/// half that rate — after the same clients asking a tonic server that answers `sample` whatever
/// the request. `checks(channel)` makes the clients' asking function for a channel.
pub async fn measure_checks<C, F, Fut>(args: &Args, sample: CheckEligibilityResponse, service: Channel, checks: C)
where
    C: Fn(Channel) -> F,
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    println!(
        "3. eligibility checks over gRPC ({} clients, {} s each; an answer is {} bytes):",
        args.clients,
        args.seconds,
        prost::Message::encoded_len(&sample)
    );
    let baseline_channel =
        fixed::serve(Routes::new(FixedAnswer::<BenefitsServiceServer<BenefitsApi>, CheckEligibilityRequest, _>::new(
            sample,
        )))
        .await;
    let baseline = load(args.clients, args.seconds, Duration::ZERO, checks(baseline_channel)).await;
    baseline.show("baseline: tonic answering a fixed answer");
    let peak = load(args.clients, args.seconds, Duration::ZERO, checks(service.clone())).await;
    peak.show("CheckEligibility at peak");
    let halved = load(args.clients, args.seconds, peak.pause_for(args.clients, 0.5), checks(service)).await;
    halved.show("CheckEligibility at half the peak rate");
    println!("   peak is {:.0}% of the baseline", 100.0 * peak.rate() / baseline.rate());
}

pub async fn run(args: Args) {
    match &args.cluster {
        Some(dir) => crate::benefits_cluster::run(&args, dir).await,
        None => in_process(args).await,
    }
}

async fn in_process(args: Args) {
    let dir = tempfile::tempdir().unwrap();
    let db = scenario_database(args.postgres.as_deref(), dir.path(), "benefits").await;
    db.migrate("benefits", &jiaxin_benefits::MIGRATIONS).await.unwrap();
    let service = BenefitsService::start(db.clone(), &BenefitsConfig::default());
    let (_, consumer) = service.consumer();
    let api = service.api();
    let year_start = chrono::NaiveDate::from_ymd_opt(args.year, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros()
        - 8 * 3600 * 1_000_000;
    println!(
        "benefits 基准 / benchmark: {} households, {} villages (in process on {})",
        args.households,
        args.villages,
        engine(args.postgres.as_deref())
    );

    // 1. The read model, from the events.
    let (identity, pledges, points) = county_events(&args, year_start);
    let total = identity.len() + pledges.len() + points.len();
    let started = Instant::now();
    for (topic, envelopes) in [("identity", &identity), ("pledges", &pledges), ("points", &points)] {
        for batch in envelopes.chunks(1_000) {
            consumer.deliver_batch(&events::topic(topic), batch).await.unwrap();
        }
    }
    let elapsed = started.elapsed();
    println!("1. read model: {total} events in {:.1} s — {:.0} events/s", elapsed.as_secs_f64(), rate(total, elapsed));

    // 2. One agency, one benefit for tier A and above; checks one at a time.
    let admin = caller("admin", Role::CountyAdmin);
    let agency = caller("agency", Role::Agency);
    let provider = Provider {
        name: "县政务服务中心".into(),
        kind: ProviderKind::Agency as i32,
        org_node_id: "county".into(),
        account_ids: vec!["agency".into()],
        ..Default::default()
    };
    let provider = api.save_provider(request(&admin, SaveProviderRequest { provider: Some(provider) })).await.unwrap();
    let benefit = Benefit {
        name: "信易批·容缺受理".into(),
        scene: Scene::Approval as i32,
        kind: BenefitKind::FastTrack as i32,
        provider_id: provider.into_inner().provider.unwrap().id,
        org_node_id: "county".into(),
        min_tier: "A".into(),
        policy_basis: "《盱眙县信用户激励办法》".into(),
        valid_from: "2020-01-01".into(),
        ..Default::default()
    };
    let benefit = api.save_benefit(request(&admin, SaveBenefitRequest { benefit: Some(benefit) })).await.unwrap();
    let benefit_id = benefit.into_inner().benefit.unwrap().id;
    let mut rng = Seeded(42);
    let picks: Vec<String> =
        (0..args.checks).map(|_| format!("household-{}", rng.below(args.households as u64))).collect();

    let (baseline, _) = one_at_a_time(&picks, |household| {
        let query = sqlx::query_as("SELECT score, tier FROM standings WHERE household_id = $1").bind(household.clone());
        async {
            let row: Option<(i64, String)> = query.fetch_optional(db.pool()).await.unwrap();
            assert!(row.is_some());
        }
    })
    .await;
    let service_api = &api;
    let (latencies, elapsed) = one_at_a_time(&picks, |household| {
        let ask = CheckEligibilityRequest { benefit_id: benefit_id.clone(), household_id: household.clone() };
        let (api, ask) = (service_api, request(&agency, ask));
        async move {
            api.check_eligibility(ask).await.unwrap();
        }
    })
    .await;
    println!("2. eligibility checks, one at a time ({} checks, {:.0}/s):", picks.len(), rate(picks.len(), elapsed));
    show("CheckEligibility (reads, audit entry committed)", &latencies);
    show("baseline: read the standing row only", &baseline);

    // 3. Checks over gRPC against the fixed-answer baseline, same clients, same duration.
    let sample = api
        .check_eligibility(request(
            &agency,
            CheckEligibilityRequest { benefit_id: benefit_id.clone(), household_id: picks[0].clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    let interceptor_agency = agency.clone();
    let service_channel = fixed::serve(Routes::new(BenefitsServiceServer::with_interceptor(
        service.api(),
        move |mut request: tonic::Request<()>| {
            request.extensions_mut().insert(interceptor_agency.clone());
            Ok(request)
        },
    )))
    .await;
    let picks = Arc::new(picks);
    let checks = |channel: Channel| {
        let (picks, benefit_id) = (picks.clone(), benefit_id.clone());
        move |n: usize| {
            let mut client = BenefitsServiceClient::new(channel.clone());
            let ask = CheckEligibilityRequest {
                benefit_id: benefit_id.clone(),
                household_id: picks[n % picks.len()].clone(),
            };
            async move {
                client.check_eligibility(ask).await.unwrap();
            }
        }
    };
    measure_checks(&args, sample, service_channel, checks).await;

    // 4. A daily queue.
    let queue: Vec<String> = picks.iter().take(5_000).cloned().collect();
    let started = Instant::now();
    let checks = api
        .batch_check_eligibility(request(
            &agency,
            BatchCheckEligibilityRequest { benefit_id: benefit_id.clone(), household_ids: queue.clone() },
        ))
        .await
        .unwrap()
        .into_inner()
        .checks;
    let elapsed = started.elapsed();
    let eligible = checks.iter().filter(|c| c.eligible).count();
    show_batch_check(queue.len(), eligible, elapsed);

    // 4. The annual evaluation, twice (the second replaces the draft).
    let started = Instant::now();
    for table in ["households", "standings", "score_history"] {
        let _: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(db.pool()).await.unwrap();
    }
    let scan = started.elapsed();
    for run in ["first", "again"] {
        let started = Instant::now();
        let evaluation = api
            .evaluate_year(request(&admin, EvaluateYearRequest { year: args.year, org_node_id: "county".into() }))
            .await
            .unwrap()
            .into_inner()
            .evaluation
            .unwrap();
        show_evaluation(run, started.elapsed(), &evaluation);
    }
    println!("   baseline: COUNT(*) over households, standings, score history: {:.3} s", scan.as_secs_f64());
}

//! The bank's credit report and whole-village pre-approval at a county's size, over real gRPC on
//! this machine, with a baseline from the same run. Prints its figures; asserts nothing about
//! time.
//!
//!     cargo run --release -p jiaxin-bench -- bank --households 210000
//!
//! That is the service in this process (on SQLite, or PostgreSQL with `--postgres`); with
//! `--cluster` the same measurements are taken of a running distributed cluster's bank process
//! (bank_cluster.rs). In process:
//!
//! 1. Builds the bank's read model of a synthetic county (250 villages, one of them 5,000
//!    households; one to three score changes and a few records per household) by delivering the
//!    events identity, pledges and points would publish to the bank's own consumer; households
//!    consent (loan application; pre-approval in the large village).
//! 2. Credit reports over gRPC on 127.0.0.1 from concurrent clients: peak requests/s and p50/p99;
//!    then p50/p99 at half that rate, the requests spread evenly in time. Each report reads the
//!    household's rows from a snapshot; its query record and audit entry are committed with other
//!    reports' (group commit) before it is answered. The caller is put in the request by an
//!    interceptor: token verification (one EdDSA signature check per call) is not measured.
//!    Baseline: a tonic server on the same machine answering a fixed report of the same size —
//!    the gRPC stack's own limit.
//! 3. Pre-approval of the 5,000-household village: time per answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark program fails loudly

use std::{
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    fixed::{self, FixedAnswer},
    load::load,
    support::{engine, percentile, rate, scenario_database},
};
use jiaxin_bank::{BankConfig, BankService, api::BankApi};
use jiaxin_kit::{
    auth::{Caller, Claims, ISSUER, Role},
    events, tiers,
    time::{DAY_MICROS, now_micros, to_timestamp},
};
use jiaxin_proto::{
    bank::{
        Branch, CreditReport, GetCreditReportRequest, GetCreditReportResponse, GrantConsentRequest, Institution,
        PreApproveVillageRequest, PreApproveVillageResponse, Product, Purpose, SaveBranchRequest,
        SaveInstitutionRequest, SaveProductRequest, TierLimit,
        bank_service_client::BankServiceClient,
        bank_service_server::{BankService as _, BankServiceServer},
    },
    events::Envelope,
    identity::{HouseholdRegistered, MemberJoined, OrgNode, OrgNodeCreated, OrgNodeKind},
    pledges::PledgeSigned,
    points::{Record, RecordEffective, RecordSubmitted, ScoreChanged, Severity},
};
use tonic::{Request, service::Routes, transport::Channel};

#[derive(clap::Args)]
pub struct Args {
    /// Run the service on this PostgreSQL (a fresh schema) instead of a SQLite file, e.g.
    /// postgres://postgres@127.0.0.1:25432/postgres from scripts/postgres.sh.
    #[arg(long)]
    postgres: Option<String>,
    /// A running distributed cluster's directory (`scripts/dev-cluster.sh start`, with
    /// JIAXIN_UNPLEDGED_RECORDS=accept and the bank's rate limits raised): measure its bank
    /// process over the network, the county loaded through the services' own APIs, instead of
    /// the service in this process.
    #[arg(long, conflicts_with = "postgres")]
    pub cluster: Option<PathBuf>,
    #[arg(long, default_value_t = 20_000)]
    pub households: usize,
    /// With --cluster: records per household submitted through points (in process the read
    /// model is built from one to three score changes per household instead).
    #[arg(long, default_value_t = 3)]
    pub records_per_household: usize,
    #[arg(long, default_value_t = 250)]
    villages: usize,
    /// Households of the largest village.
    #[arg(long, default_value_t = 5_000)]
    pub large_village: usize,
    /// Households with a loan-application consent (the ones reports are asked for).
    #[arg(long, default_value_t = 10_000)]
    pub consents: usize,
    #[arg(long, default_value_t = 16)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

const GRID_SIZE: usize = 230;

/// A small deterministic generator (xorshift), so every run builds the same county.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn claims(account: &str, role: Role, rid: Option<String>) -> Caller {
    Caller(Arc::new(Claims {
        iss: ISSUER.into(),
        sub: account.into(),
        roles: vec![role],
        org: "county".into(),
        rid,
        iat: 0,
        exp: i64::MAX,
        jti: "bench".into(),
    }))
}

fn request<T>(caller: &Caller, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(caller.clone());
    request
}

fn node(id: &str, kind: OrgNodeKind, path: &[String]) -> Envelope {
    let node = OrgNode { id: id.into(), kind: kind as i32, path: path.to_vec(), ..Default::default() };
    events::envelope("identity", id, &OrgNodeCreated { org_node: Some(node) }).unwrap()
}

/// The county's events: village 0 is the large one, the rest share the other households.
fn county_events(args: &Args) -> Vec<(&'static str, Envelope)> {
    let mut rng = Seeded(0x2545_f491_4f6c_dd1d);
    let county = "county".to_owned();
    let mut out = vec![("identity", node(&county, OrgNodeKind::County, std::slice::from_ref(&county)))];
    let grids_large = args.large_village.div_ceil(GRID_SIZE);
    let rest = args.households - args.large_village;
    let grids_rest = rest.div_ceil(GRID_SIZE).max(args.villages - 1);
    let mut grid_paths = Vec::new();
    for v in 0..args.villages {
        let path = vec![county.clone(), format!("village-{v}")];
        out.push(("identity", node(&path[1], OrgNodeKind::Village, &path)));
    }
    for g in 0..grids_large + grids_rest {
        let village = if g < grids_large { 0 } else { 1 + (g - grids_large) % (args.villages - 1) };
        let path = vec![county.clone(), format!("village-{village}"), format!("grid-{g}")];
        out.push(("identity", node(&path[2], OrgNodeKind::Grid, &path)));
        grid_paths.push(path);
    }
    let now = now_micros();
    for h in 0..args.households {
        let household = format!("household-{h}");
        let grid =
            if h < args.large_village { h / GRID_SIZE } else { grids_large + (h - args.large_village) % grids_rest };
        let registered = HouseholdRegistered {
            household_id: household.clone(),
            grid_id: grid_paths[grid][2].clone(),
            head_resident_id: format!("resident-{h}"),
            org_path: grid_paths[grid].clone(),
            address: format!("{h}号"),
            head_birth_date: "1975-01-01".into(),
        };
        out.push(("identity", events::envelope("identity", &household, &registered).unwrap()));
        let joined = MemberJoined {
            household_id: household.clone(),
            resident_id: format!("resident-{h}"),
            ..Default::default()
        };
        out.push(("identity", events::envelope("identity", &household, &joined).unwrap()));
        let signed = PledgeSigned {
            household_id: household.clone(),
            signed_at: Some(to_timestamp(now - 400 * DAY_MICROS)),
            ..Default::default()
        };
        out.push(("pledges", events::envelope("pledges", &household, &signed).unwrap()));
        let mut score = tiers::BASE_SCORE;
        for i in 0..=rng.below(3) {
            let old = score;
            score += rng.below(60) as i64 - 10;
            let at = now - (700 - 200 * i as i64) * DAY_MICROS;
            let changed = ScoreChanged {
                household_id: household.clone(),
                old_score: old,
                new_score: score,
                old_tier: tiers::of_score(old).into(),
                new_tier: tiers::of_score(score).into(),
                redeemable_points: 0,
                at: Some(to_timestamp(at)),
            };
            out.push(("points", events::envelope("points", &household, &changed).unwrap()));
            let record = Record {
                id: format!("record-{h}-{i}"),
                household_id: household.clone(),
                points: score - old,
                effective_from: Some(to_timestamp(at)),
                expires_at: Some(to_timestamp(at + 1095 * DAY_MICROS)),
                ..Default::default()
            };
            let submitted = RecordSubmitted {
                record: Some(record.clone()),
                severity: if score < old { Severity::General as i32 } else { Severity::Unspecified as i32 },
                category: 1 + rng.below(5) as i32,
                ..Default::default()
            };
            out.push(("points", events::envelope("points", &household, &submitted).unwrap()));
            out.push((
                "points",
                events::envelope("points", &household, &RecordEffective { record: Some(record) }).unwrap(),
            ));
        }
    }
    out
}

/// The loan product the branch pre-approves with.
pub fn product() -> Product {
    Product {
        name: "信易贷".into(),
        limits: [("AAA", 50_000_000), ("AA", 30_000_000), ("A", 20_000_000), ("B", 5_000_000)]
            .map(|(tier, fen)| TierLimit { tier: tier.into(), limit_fen: fen })
            .to_vec(),
        term_months: 12,
        ..Default::default()
    }
}

/// The consent the `h`-th household gives, if any: every other household of the large village
/// consents to pre-approval; one in seven of the others applies for a loan, up to `--consents`.
pub fn consent_purpose(args: &Args, h: usize, in_large_village: bool, loan_consents: usize) -> Option<Purpose> {
    if in_large_village && h.is_multiple_of(2) {
        Some(Purpose::VillagePreapproval)
    } else if loan_consents < args.consents && h % 7 == 3 {
        Some(Purpose::LoanApplication)
    } else {
        None
    }
}

/// Serves the bank's API on 127.0.0.1 with the officer put into every request.
async fn serve_bank(api: BankApi, officer: Caller) -> Channel {
    fixed::serve(Routes::new(BankServiceServer::with_interceptor(api, move |mut request: Request<()>| {
        request.extensions_mut().insert(officer.clone());
        Ok(request)
    })))
    .await
}

pub async fn run(args: Args) {
    match &args.cluster {
        Some(dir) => crate::bank_cluster::run(&args, dir).await,
        None => in_process(args).await,
    }
}

async fn in_process(args: Args) {
    let dir = tempfile::tempdir().unwrap();
    let db = scenario_database(args.postgres.as_deref(), dir.path(), "bank").await;
    db.migrate("bank", &jiaxin_bank::MIGRATIONS).await.unwrap();
    let unlimited = BankConfig { bank_officer_rate: u32::MAX / 2, bank_institution_rate: u32::MAX / 2 };
    let bank = BankService::start(db.clone(), &unlimited);
    let (_, consumer) = bank.consumer();
    let api = bank.api();
    println!(
        "bank 基准 / benchmark: {} households, {} villages (largest {}), in process on {}, gRPC on 127.0.0.1",
        args.households,
        args.villages,
        args.large_village,
        engine(args.postgres.as_deref())
    );

    // 1. The read model, then the institution and the households' consents.
    let events = county_events(&args);
    let started = Instant::now();
    for producer in ["identity", "pledges", "points"] {
        let batch: Vec<Envelope> = events.iter().filter(|(p, _)| *p == producer).map(|(_, e)| e.clone()).collect();
        for chunk in batch.chunks(1_000) {
            consumer.deliver_batch(&events::topic(producer), chunk).await.unwrap();
        }
    }
    let elapsed = started.elapsed();
    println!(
        "1. read model: {} events in {:.1} s — {:.0} events/s",
        events.len(),
        elapsed.as_secs_f64(),
        rate(events.len(), elapsed)
    );
    let admin = claims("admin", Role::CountyAdmin, None);
    let officer = claims("officer", Role::BankOfficer, None);
    let institution =
        Institution {
            name: "盱眙农商银行".into(), officer_account_ids: vec!["officer".into()], ..Default::default()
        };
    let institution =
        api.save_institution(request(&admin, SaveInstitutionRequest { institution: Some(institution) })).await.unwrap();
    let institution = institution.into_inner().institution.unwrap().id;
    let branch = Branch {
        institution_id: institution.clone(),
        name: "马坝支行".into(),
        village_ids: vec!["village-0".into()],
        officer_account_ids: vec!["officer".into()],
        ..Default::default()
    };
    let branch = api
        .save_branch(request(&admin, SaveBranchRequest { branch: Some(branch) }))
        .await
        .unwrap()
        .into_inner()
        .branch
        .unwrap()
        .id;
    let product = api.save_product(request(&officer, SaveProductRequest { product: Some(product()) })).await.unwrap();
    let product = product.into_inner().product.unwrap().id;
    let until = (chrono::Utc::now() + chrono::Duration::days(365)).format("%Y-%m-%d").to_string();
    let mut loan_consents = Vec::new();
    let started = Instant::now();
    for h in 0..args.households {
        let Some(purpose) = consent_purpose(&args, h, h < args.large_village, loan_consents.len()) else {
            continue;
        };
        let head = claims(&format!("head-{h}"), Role::Resident, Some(format!("resident-{h}")));
        let grant = GrantConsentRequest {
            household_id: format!("household-{h}"),
            institution_id: institution.clone(),
            purpose: purpose as i32,
            valid_until: until.clone(),
            ..Default::default()
        };
        let consent = api.grant_consent(request(&head, grant)).await.unwrap().into_inner().consent.unwrap();
        if purpose == Purpose::LoanApplication {
            loan_consents.push(consent.id);
        }
    }
    println!(
        "   consents granted in {:.1} s ({} for loan applications)",
        started.elapsed().as_secs_f64(),
        loan_consents.len()
    );

    // 2. Reports over gRPC against the fixed-answer baseline, same clients, same duration.
    let sample = api
        .get_credit_report(request(&officer, GetCreditReportRequest { consent_id: loan_consents[0].clone() }))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let bank_channel = serve_bank(bank.api(), officer.clone()).await;
    // Clients asking for reports under the loan consents, in turn.
    let consents = Arc::new(loan_consents);
    let reports = move |channel: Channel| {
        let consents = consents.clone();
        move |n: usize| {
            let mut client = BankServiceClient::new(channel.clone());
            let request = GetCreditReportRequest { consent_id: consents[n % consents.len()].clone() };
            async move {
                client.get_credit_report(request).await.unwrap();
            }
        }
    };
    measure_reports(&args, sample, bank_channel, reports).await;

    // 3. Pre-approval of the largest village.
    let ask = PreApproveVillageRequest { branch_id: branch, village_id: "village-0".into(), product_id: product };
    measure_pre_approval(args.large_village, || {
        let ask = ask.clone();
        let api = &api;
        let officer = &officer;
        async move { api.pre_approve_village(request(officer, ask)).await.unwrap().into_inner() }
    })
    .await;
}

/// Phase 2: reports asked of `bank` by concurrent clients — as fast as answers come, then at half
/// that rate — after the same clients asking a tonic server that answers `sample` whatever the
/// request. `reports(channel)` makes the clients' asking function for a channel.
pub async fn measure_reports<R, F, Fut>(args: &Args, sample: CreditReport, bank: Channel, reports: R)
where
    R: Fn(Channel) -> F,
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    println!(
        "2. credit reports ({} clients, {} s each; a report is {} bytes):",
        args.clients,
        args.seconds,
        prost::Message::encoded_len(&sample)
    );
    let answer = GetCreditReportResponse { report: Some(sample) };
    let baseline_channel =
        fixed::serve(Routes::new(FixedAnswer::<BankServiceServer<BankApi>, GetCreditReportRequest, _>::new(answer)))
            .await;
    let baseline = load(args.clients, args.seconds, Duration::ZERO, reports(baseline_channel)).await;
    baseline.show("baseline: tonic answering a fixed report");
    let peak = load(args.clients, args.seconds, Duration::ZERO, reports(bank.clone())).await;
    peak.show("GetCreditReport at peak");
    let pause = peak.pause_for(args.clients, 0.5);
    let halved = load(args.clients, args.seconds, pause, reports(bank)).await;
    halved.show("GetCreditReport at half the peak rate");
    println!("   peak is {:.0}% of the baseline", 100.0 * peak.rate() / baseline.rate());
    if let (Some(report), Some(fixed)) = (peak.cpu_per_request_us(), baseline.cpu_per_request_us()) {
        // How many times the gRPC stack's own cost a report is: a ratio that holds better than
        // the rates' when the machine's speed moves between the two runs.
        println!("   at peak a report costs {:.1}× the baseline's CPU per request", report / fixed);
    }
}

/// Phase 3: ten pre-approvals of the largest village (`households` of them), timed one by one.
pub async fn measure_pre_approval<A, Fut>(households: usize, mut ask: A)
where
    A: FnMut() -> Fut,
    Fut: Future<Output = PreApproveVillageResponse>,
{
    let mut times = Vec::new();
    let mut consented = 0;
    for _ in 0..10 {
        let started = Instant::now();
        let answer = ask().await;
        times.push(started.elapsed());
        consented = answer.consented.len();
        assert_eq!(answer.households as usize, households);
    }
    times.sort();
    println!(
        "3. PreApproveVillage, {households} households ({consented} consented): p50 {:.1} ms, max {:.1} ms over {} answers",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
        times.len()
    );
}

//! The bank scenario against a running distributed cluster: the bank is one `jiaxin serve
//! --service bank` process on PostgreSQL, its read model fed by the broker, and this program one
//! of its clients over the network.
//!
//!     JIAXIN_UNPLEDGED_RECORDS=accept JIAXIN_BANK_OFFICER_RATE=100000000 \
//!       JIAXIN_BANK_INSTITUTION_RATE=100000000 scripts/dev-cluster.sh start
//!     cargo run --release -p jiaxin-bench -- bank --cluster /tmp/jiaxin-cluster
//!
//! 1. The county goes in the way a real one does: households through identity's CSV import (the
//!    largest village first), records through points' BatchSubmitRecords (counting without a
//!    pledge, hence JIAXIN_UNPLEDGED_RECORDS), and the bank learns both from their events. The
//!    bank officer is an account of identity's; the institution, branch and product are saved
//!    over gRPC; the consents are the heads' paper forms, entered by the officer.
//! 2. Credit reports and 3. pre-approval as in process (bank.rs), except that every call carries
//!    the officer's access token, so each answer includes its signature check — the rate limits,
//!    which would refuse a benchmark's load, are raised when the cluster starts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark program fails loudly

use std::{path::Path, sync::Arc, time::Instant};

use crate::{
    bank::{Args, consent_purpose, measure_pre_approval, measure_reports, product},
    support::{self, Bench, authed, rate},
};
use jiaxin::system::{ServiceName, consumers_of};
use jiaxin_kit::storage::Database;
use jiaxin_proto::{
    bank::{
        Branch, GetCreditReportRequest, GrantConsentRequest, Institution, PreApproveVillageRequest, Purpose,
        SaveBranchRequest, SaveInstitutionRequest, SaveProductRequest, bank_service_client::BankServiceClient,
    },
    identity::Role as ProtoRole,
    points::points_service_client::PointsServiceClient,
};
use tonic::transport::Channel;

/// Consents entered at once: an officer's desk is one client, but the forms of a whole county
/// would be entered by many.
const CONSENT_CLIENTS: usize = 8;

/// A household as the bank's read model knows it.
struct Household {
    id: String,
    head: String,
    in_large_village: bool,
}

pub async fn run(args: &Args, cluster_dir: &Path) {
    let bench = Bench::connect(cluster_dir).await;
    println!(
        "bank 基准 / benchmark: {} households (largest village {}), {}",
        args.households,
        args.large_village,
        bench.mode()
    );

    // 1. The county through the services' APIs; the bank learns it from their events.
    let started = Instant::now();
    let county = support::onboard_county_with(&bench, args.households, args.large_village).await;
    let bank_db = Database::connect(&bench.config.location(ServiceName::Bank).unwrap()).await.unwrap();
    let large_village = county.villages[0].clone();
    let households = loop {
        let known = households(&bank_db, &bench.root, &large_village).await;
        if known.len() == args.households {
            break known;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    bench.drained(ServiceName::Identity, &consumers_of(ServiceName::Identity)).await;
    let onboarded = started.elapsed();
    let ids: Vec<String> = households.iter().map(|h| h.id.clone()).collect();

    let started = Instant::now();
    let points = PointsServiceClient::new(bench.channel(ServiceName::Points)).max_encoding_message_size(256 << 20);
    let collector = support::county_collector(&bench).await;
    let inputs = support::year_of_records(&ids, args.records_per_household * ids.len());
    let accepted = support::submit_records(&points, collector, &inputs, 5_000, 1).await;
    // Every consumer, not only the bank: a drain still running elsewhere would share the cores.
    bench.drained(ServiceName::Points, &consumers_of(ServiceName::Points)).await;
    let scored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM standings s JOIN households h ON h.id = s.household_id WHERE strpos(h.path, $1) > 0",
    )
    .bind(&bench.root)
    .fetch_one(bank_db.pool())
    .await
    .unwrap();
    assert_eq!(
        scored as usize,
        ids.len(),
        "the bank knows scores of {scored} households of {}: records counted without a pledge? \
         (start the cluster with JIAXIN_UNPLEDGED_RECORDS=accept)",
        ids.len()
    );
    println!(
        "1. county: {} households imported and known to every service in {:.1} s; {accepted} records \
         through points and in the bank's read model in {:.1} s",
        args.households,
        onboarded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let mut bank = BankServiceClient::new(bench.channel(ServiceName::Bank));
    let (officer_id, mut officer) = support::account(&bench, "bench-officer", "客户经理", ProtoRole::BankOfficer).await;
    let admin = bench.admin().await;
    let institution = Institution {
        name: "盱眙农商银行".into(),
        officer_account_ids: vec![officer_id.clone()],
        ..Default::default()
    };
    let request = SaveInstitutionRequest { institution: Some(institution) };
    let institution = bank.save_institution(authed(&admin, request)).await.unwrap().into_inner().institution;
    let institution = institution.unwrap().id;
    let branch = Branch {
        institution_id: institution.clone(),
        name: "马坝支行".into(),
        village_ids: vec![large_village.clone()],
        officer_account_ids: vec![officer_id],
        ..Default::default()
    };
    let branch = bank.save_branch(authed(&admin, SaveBranchRequest { branch: Some(branch) })).await.unwrap();
    let branch = branch.into_inner().branch.unwrap().id;
    let request = SaveProductRequest { product: Some(product()) };
    let product = bank.save_product(authed(officer.token().await, request)).await.unwrap();
    let product = product.into_inner().product.unwrap().id;

    let mut forms = Vec::new();
    let mut loans = 0;
    for (h, household) in households.iter().enumerate() {
        if let Some(purpose) = consent_purpose(args, h, household.in_large_village, loans) {
            loans += usize::from(purpose == Purpose::LoanApplication);
            forms.push((household, purpose));
        }
    }
    let started = Instant::now();
    let until = (chrono::Utc::now() + chrono::Duration::days(365)).format("%Y-%m-%d").to_string();
    let token: Arc<str> = officer.token().await.into();
    let mut clients = tokio::task::JoinSet::new();
    for share in forms.chunks(forms.len().div_ceil(CONSENT_CLIENTS)) {
        let grants: Vec<(Purpose, GrantConsentRequest)> = share
            .iter()
            .map(|(household, purpose)| {
                let request = GrantConsentRequest {
                    household_id: household.id.clone(),
                    institution_id: institution.clone(),
                    purpose: *purpose as i32,
                    valid_until: until.clone(),
                    signer_resident_id: household.head.clone(),
                    scan_reference: format!("scan:consent/{}.pdf", household.id),
                };
                (*purpose, request)
            })
            .collect();
        let (mut bank, token) = (bank.clone(), token.clone());
        clients.spawn(async move {
            let mut loan_consents = Vec::new();
            for (purpose, grant) in grants {
                let consent = bank.grant_consent(authed(&token, grant)).await.unwrap().into_inner().consent.unwrap();
                if purpose == Purpose::LoanApplication {
                    loan_consents.push(consent.id);
                }
            }
            loan_consents
        });
    }
    let mut loan_consents = Vec::new();
    while let Some(granted) = clients.join_next().await {
        loan_consents.extend(granted.unwrap());
    }
    let elapsed = started.elapsed();
    println!(
        "   {} paper consents entered by the officer in {:.1} s — {:.0}/s from {CONSENT_CLIENTS} clients \
         ({} for loan applications)",
        forms.len(),
        elapsed.as_secs_f64(),
        rate(forms.len(), elapsed),
        loan_consents.len()
    );

    // 2. Reports, each with the officer's token (a fresh one: the load outlives no token).
    let token: Arc<str> = officer.token().await.into();
    let request = GetCreditReportRequest { consent_id: loan_consents[0].clone() };
    let sample = bank.get_credit_report(authed(&token, request)).await.unwrap_or_else(|status| {
        panic!("{status} (start the cluster with JIAXIN_BANK_OFFICER_RATE and JIAXIN_BANK_INSTITUTION_RATE raised)")
    });
    let sample = sample.into_inner().report.unwrap();
    let consents = Arc::new(loan_consents);
    let reports = move |channel: Channel| {
        let (consents, token) = (consents.clone(), token.clone());
        move |n: usize| {
            let mut client = BankServiceClient::new(channel.clone());
            let request = authed(&token, GetCreditReportRequest { consent_id: consents[n % consents.len()].clone() });
            async move {
                client.get_credit_report(request).await.unwrap();
            }
        }
    };
    measure_reports(args, sample, bench.channel(ServiceName::Bank), reports).await;

    // 3. Pre-approval of the largest village, over the network.
    let token: Arc<str> = officer.token().await.into();
    let ask = PreApproveVillageRequest { branch_id: branch, village_id: large_village, product_id: product };
    measure_pre_approval(args.large_village, || {
        let (mut bank, request) = (bank.clone(), authed(&token, ask.clone()));
        async move { bank.pre_approve_village(request).await.unwrap().into_inner() }
    })
    .await;
    bench.shutdown().await;
}

/// The households of the county under `root` with their heads, as the bank's read model holds
/// them so far (a cluster keeps earlier runs' counties beside this one), and whether each lives in
/// the large village. Ordered by id, so the consents fall the same way for the same households.
async fn households(bank_db: &Database, root: &str, large_village: &str) -> Vec<Household> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, head_resident_id, path FROM households WHERE dissolved = 0 AND strpos(path, $1) > 0 ORDER BY id",
    )
    .bind(root)
    .fetch_all(bank_db.pool())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, head, path)| Household { id, head, in_large_village: path.contains(large_village) })
        .collect()
}

//! A deduction's expiry restores a household's eligibility on the right date: points (with an
//! injected clock) moves the score back when the deduction's window ends, its `ScoreChanged`
//! carries that moment, and benefits' checks and as-of standing follow. Points' events are
//! handed to benefits' consumer as the bus would. Runs on SQLite, or on PostgreSQL when
//! `JIAXIN_TEST_DATABASE_URL` is set.

use std::sync::Arc;

use jiaxin_benefits::{BenefitsConfig, BenefitsService};
use jiaxin_kit::{
    Secret,
    auth::{Caller, Claims, ISSUER, Role},
    events,
    inbox::Consumer,
    storage::{Database, DatabaseLocation, Migrations},
    time::{now_micros, to_timestamp},
};
use jiaxin_points::{PointsConfig, PointsService, UnpledgedRecords};
use jiaxin_proto::{
    benefits::{
        Benefit, BenefitKind, CheckEligibilityRequest, EligibilityReason, GetStandingRequest, Provider, ProviderKind,
        SaveBenefitRequest, SaveProviderRequest, Scene, benefits_service_server::BenefitsService as _,
    },
    council::{ReviewDecided, ReviewOutcome},
    identity::{HouseholdRegistered, OrgNode, OrgNodeCreated, OrgNodeKind},
    pledges::PledgeSigned,
    points::{GetRecordRequest, RecordInput, SubmitRecordRequest, points_service_server::PointsService as _},
};
use sqlx::Row;

const DAY: i64 = 24 * 3600 * 1_000_000;
const COUNTY: &str = "county-1";
const GRID: &str = "grid-1";
const HOUSEHOLD: &str = "household-1";

async fn database(dir: &std::path::Path, service: &str, migrations: &Migrations) -> Database {
    let location = match std::env::var("JIAXIN_TEST_DATABASE_URL") {
        Ok(url) => DatabaseLocation::shared(Secret::new(url), &format!("t{}_", uuid::Uuid::new_v4().simple()), service),
        Err(_) => DatabaseLocation::sqlite_in(dir, service).unwrap(),
    };
    let db = Database::connect(&location).await.unwrap();
    db.migrate(service, migrations).await.unwrap();
    db
}

fn caller(account: &str, role: Role, org: &str) -> Caller {
    Caller(Arc::new(Claims {
        iss: ISSUER.into(),
        sub: account.into(),
        roles: vec![role],
        org: org.into(),
        rid: None,
        iat: 0,
        exp: i64::MAX,
        jti: "t".into(),
    }))
}

fn request<T>(caller: &Caller, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(caller.clone());
    request
}

/// Delivers every event in points' outbox to benefits' consumer, as the relay and bus would
/// (the inbox makes repeats harmless).
async fn forward(points_db: &Database, benefits: &Consumer) {
    let rows = sqlx::query("SELECT envelope FROM kit_outbox ORDER BY seq").fetch_all(points_db.pool()).await.unwrap();
    for row in rows {
        let envelope = events::decode(&row.try_get::<Vec<u8>, _>("envelope").unwrap()).unwrap();
        benefits.deliver(&events::topic("points"), &envelope).await.unwrap();
    }
}

#[tokio::test]
async fn a_deduction_expiring_restores_eligibility_on_that_date() {
    let dir = tempfile::tempdir().unwrap();
    let points_db = database(dir.path(), "points", &jiaxin_points::MIGRATIONS).await;
    let benefits_db = database(dir.path(), "benefits", &jiaxin_benefits::MIGRATIONS).await;
    let config = PointsConfig { score_tick_secs: 30, unpledged_records: UnpledgedRecords::Hold };
    let points = PointsService::start(points_db.clone(), &config).await.unwrap();
    let benefits = BenefitsService::start(benefits_db, &BenefitsConfig::default());
    let (_, points_inbox) = points.consumer();
    let (_, benefits_inbox) = benefits.consumer();

    // Identity's and pledges' events, to both services.
    let nodes = [(COUNTY, OrgNodeKind::County, vec![COUNTY]), (GRID, OrgNodeKind::Grid, vec![COUNTY, GRID])];
    let mut upstream = Vec::new();
    for (id, kind, path) in nodes {
        let node = OrgNode {
            id: id.into(),
            kind: kind as i32,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        upstream
            .push(("identity", events::envelope("identity", id, &OrgNodeCreated { org_node: Some(node) }).unwrap()));
    }
    let registered = HouseholdRegistered {
        household_id: HOUSEHOLD.into(),
        grid_id: GRID.into(),
        head_resident_id: "r-1".into(),
        org_path: vec![COUNTY.into(), GRID.into()],
        address: "1号".into(),
        head_birth_date: "1975-01-01".into(),
    };
    upstream.push(("identity", events::envelope("identity", HOUSEHOLD, &registered).unwrap()));
    let signed = PledgeSigned {
        household_id: HOUSEHOLD.into(),
        signed_at: Some(to_timestamp(now_micros())),
        ..Default::default()
    };
    upstream.push(("pledges", events::envelope("pledges", HOUSEHOLD, &signed).unwrap()));
    for (producer, envelope) in &upstream {
        points_inbox.deliver(&events::topic(producer), envelope).await.unwrap();
        benefits_inbox.deliver(&events::topic(producer), envelope).await.unwrap();
    }

    // An agency's benefit for tier A and above.
    let admin = caller("admin", Role::CountyAdmin, COUNTY);
    let provider = Provider {
        name: "县政务服务中心".into(),
        kind: ProviderKind::Agency as i32,
        org_node_id: COUNTY.into(),
        account_ids: vec!["agency-1".into()],
        ..Default::default()
    };
    let api = benefits.api();
    let provider = api.save_provider(request(&admin, SaveProviderRequest { provider: Some(provider) })).await.unwrap();
    let benefit = Benefit {
        name: "信易批·绿色通道".into(),
        scene: Scene::Approval as i32,
        kind: BenefitKind::FastTrack as i32,
        provider_id: provider.into_inner().provider.unwrap().id,
        org_node_id: COUNTY.into(),
        min_tier: "A".into(),
        policy_basis: "《盱眙县信用户激励办法》".into(),
        valid_from: "2020-01-01".into(),
        ..Default::default()
    };
    let benefit = api.save_benefit(request(&admin, SaveBenefitRequest { benefit: Some(benefit) })).await.unwrap();
    let benefit_id = benefit.into_inner().benefit.unwrap().id;
    let agency = caller("agency-1", Role::Agency, COUNTY);
    let check = || async {
        let ask = CheckEligibilityRequest { benefit_id: benefit_id.clone(), household_id: HOUSEHOLD.into() };
        let check = api.check_eligibility(request(&agency, ask)).await.unwrap().into_inner().check.unwrap();
        (EligibilityReason::try_from(check.reason).unwrap(), check.tier)
    };
    assert_eq!(check().await, (EligibilityReason::Eligible, "A".to_owned()));

    // Littering (D06, 4 points: 7 days' disclosure, then 90 days), approved by the council.
    let now = now_micros();
    points.tick_at(now).await.unwrap();
    let worker = caller("worker", Role::GridWorker, GRID);
    let record = RecordInput {
        request_id: "k-1".into(),
        household_id: HOUSEHOLD.into(),
        rule_code: "D06".into(),
        points: 4,
        occurred_at: Some(to_timestamp(now - DAY)),
        evidence: vec!["photo:1".into()],
        ..Default::default()
    };
    let submitted = points.api().submit_record(request(&worker, SubmitRecordRequest { record: Some(record) })).await;
    let record_id = submitted.unwrap().into_inner().record.unwrap().id;
    let decision = ReviewDecided {
        record_id: record_id.clone(),
        household_id: HOUSEHOLD.into(),
        outcome: ReviewOutcome::Approved as i32,
        reason: "属实".into(),
        ..Default::default()
    };
    points_inbox
        .deliver(&events::topic("council"), &events::envelope("council", HOUSEHOLD, &decision).unwrap())
        .await
        .unwrap();

    // The disclosure ends: 996, tier B, below the benefit.
    points.tick_at(now + 8 * DAY).await.unwrap();
    forward(&points_db, &benefits_inbox).await;
    assert_eq!(check().await, (EligibilityReason::TierTooLow, "B".to_owned()));

    // The ticker runs at the very moment the window ends: the household qualifies again, and
    // benefits' history says so from that moment, not from when it heard.
    let record = points.api().get_record(request(&admin, GetRecordRequest { id: record_id })).await.unwrap();
    let expires_at = jiaxin_kit::time::from_timestamp(&record.into_inner().record.unwrap().expires_at.unwrap());
    points.tick_at(expires_at).await.unwrap();
    forward(&points_db, &benefits_inbox).await;
    assert_eq!(check().await, (EligibilityReason::Eligible, "A".to_owned()));
    let standing_at = |at: i64| {
        let api = &api;
        let admin = &admin;
        async move {
            let ask = GetStandingRequest { household_id: HOUSEHOLD.into(), at: Some(to_timestamp(at)) };
            let standing = api.get_standing(request(admin, ask)).await.unwrap().into_inner().standing.unwrap();
            (standing.score, standing.tier)
        }
    };
    assert_eq!(standing_at(expires_at - 1).await, (996, "B".to_owned()));
    assert_eq!(standing_at(expires_at).await, (1000, "A".to_owned()));
    assert_eq!(standing_at(now).await, (1000, "A".to_owned()), "before the deduction counted");
}

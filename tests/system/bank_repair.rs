//! A credit repair (or any reversal) in points reaches the bank's next report: the serious
//! deduction leaves the report and the tier it capped comes back. Points' events are delivered
//! to the bank's consumer as the bus would. Runs on SQLite, or on PostgreSQL when
//! `JIAXIN_TEST_DATABASE_URL` is set.

use std::sync::Arc;

use jiaxin_bank::{BankConfig, BankService};
use jiaxin_kit::{
    Secret,
    auth::{Caller, Claims, ISSUER, Role},
    events,
    storage::{Database, DatabaseLocation},
    time::{DAY_MICROS, now_micros, to_timestamp},
};
use jiaxin_proto::{
    bank::{
        GetCreditReportRequest, GrantConsentRequest, Institution, Purpose, ReasonCode, SaveInstitutionRequest,
        bank_service_server::BankService as _,
    },
    identity::{HouseholdRegistered, MemberJoined, OrgNode, OrgNodeCreated, OrgNodeKind},
    points::{Category, Record, RecordEffective, RecordReversed, RecordSubmitted, ScoreChanged, Severity},
};

const HOUSEHOLD: &str = "household-1";
const HEAD: &str = "resident-1";

fn caller(account: &str, role: Role, rid: Option<&str>) -> Caller {
    Caller(Arc::new(Claims {
        iss: ISSUER.into(),
        sub: account.into(),
        roles: vec![role],
        org: "county-1".into(),
        rid: rid.map(str::to_owned),
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

fn score_changed(old: (i64, &str), new: (i64, &str), at: i64) -> ScoreChanged {
    ScoreChanged {
        household_id: HOUSEHOLD.into(),
        old_score: old.0,
        new_score: new.0,
        old_tier: old.1.into(),
        new_tier: new.1.into(),
        redeemable_points: 0,
        at: Some(to_timestamp(at)),
    }
}

#[tokio::test]
async fn a_repair_in_points_changes_the_next_report() {
    let dir = tempfile::tempdir().unwrap();
    let location = match std::env::var("JIAXIN_TEST_DATABASE_URL") {
        Ok(url) => DatabaseLocation::shared(Secret::new(url), &format!("t{}_", uuid::Uuid::new_v4().simple()), "bank"),
        Err(_) => DatabaseLocation::sqlite_in(dir.path(), "bank").unwrap(),
    };
    let db = Database::connect(&location).await.unwrap();
    db.migrate("bank", &jiaxin_bank::MIGRATIONS).await.unwrap();
    let bank = BankService::start(db, &BankConfig::default());
    let (_, inbox) = bank.consumer();
    let deliver = |producer: &'static str, envelope: jiaxin_proto::events::Envelope| {
        let inbox = &inbox;
        async move { inbox.deliver(&events::topic(producer), &envelope).await.unwrap() }
    };

    // identity: a county, a grid, the household and its head.
    for (id, kind, path) in
        [("county-1", OrgNodeKind::County, vec!["county-1"]), ("grid-1", OrgNodeKind::Grid, vec!["county-1", "grid-1"])]
    {
        let node = OrgNode {
            id: id.into(),
            kind: kind as i32,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        deliver("identity", events::envelope("identity", id, &OrgNodeCreated { org_node: Some(node) }).unwrap()).await;
    }
    let registered = HouseholdRegistered {
        household_id: HOUSEHOLD.into(),
        grid_id: "grid-1".into(),
        head_resident_id: HEAD.into(),
        org_path: vec!["county-1".into(), "grid-1".into()],
        address: "1号".into(),
        head_birth_date: "1975-01-01".into(),
    };
    deliver("identity", events::envelope("identity", HOUSEHOLD, &registered).unwrap()).await;
    let joined = MemberJoined { household_id: HOUSEHOLD.into(), resident_id: HEAD.into(), ..Default::default() };
    deliver("identity", events::envelope("identity", HOUSEHOLD, &joined).unwrap()).await;

    // points: a serious deduction (gambling, public order) took effect 45 days ago (in an earlier month) and capped the tier.
    let now = now_micros();
    let record = Record {
        id: "record-1".into(),
        household_id: HOUSEHOLD.into(),
        rule_code: "E07".into(),
        points: -30,
        effective_from: Some(to_timestamp(now - 45 * DAY_MICROS)),
        expires_at: Some(to_timestamp(now + 1000 * DAY_MICROS)),
        ..Default::default()
    };
    let submitted = RecordSubmitted {
        record: Some(record.clone()),
        severity: Severity::Serious as i32,
        category: Category::PublicOrder as i32,
        ..Default::default()
    };
    deliver("points", events::envelope("points", HOUSEHOLD, &submitted).unwrap()).await;
    deliver(
        "points",
        events::envelope("points", HOUSEHOLD, &RecordEffective { record: Some(record.clone()) }).unwrap(),
    )
    .await;
    let capped = score_changed((1000, "A"), (970, "B"), now - 45 * DAY_MICROS);
    deliver("points", events::envelope("points", HOUSEHOLD, &capped).unwrap()).await;

    // A bank, an officer, and the head's consent.
    let api = bank.api();
    let admin = caller("admin", Role::CountyAdmin, None);
    let institution = Institution {
        name: "盱眙农商银行".into(),
        officer_account_ids: vec!["officer-1".into()],
        ..Default::default()
    };
    let institution =
        api.save_institution(request(&admin, SaveInstitutionRequest { institution: Some(institution) })).await.unwrap();
    let institution_id = institution.into_inner().institution.unwrap().id;
    let head = caller("head", Role::Resident, Some(HEAD));
    let grant = GrantConsentRequest {
        household_id: HOUSEHOLD.into(),
        institution_id,
        purpose: Purpose::LoanApplication as i32,
        valid_until: (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%d").to_string(),
        ..Default::default()
    };
    let consent = api.grant_consent(request(&head, grant)).await.unwrap().into_inner().consent.unwrap().id;
    let officer = caller("officer-1", Role::BankOfficer, None);
    let report = || async {
        let ask = GetCreditReportRequest { consent_id: consent.clone() };
        api.get_credit_report(request(&officer, ask)).await.unwrap().into_inner().report.unwrap()
    };

    let before = report().await;
    assert_eq!((before.score, before.tier.as_str()), (970, "B"));
    assert_eq!(before.serious_deductions.len(), 1);
    assert!(before.reasons.contains(&(ReasonCode::SeriousDeductionActive as i32)));
    let public_order = before.counts.iter().find(|c| c.category == "public_order").unwrap();
    assert_eq!((public_order.bonus_items, public_order.deduction_items), (0, 1));

    // The council approves a repair; points ends the deduction and the score comes back.
    let reversed = RecordReversed { record: Some(record), reason: "信用修复 / credit repair".into() };
    deliver("points", events::envelope("points", HOUSEHOLD, &reversed).unwrap()).await;
    let repaired = score_changed((970, "B"), (1000, "A"), now_micros());
    deliver("points", events::envelope("points", HOUSEHOLD, &repaired).unwrap()).await;

    let after = report().await;
    assert_eq!((after.score, after.tier.as_str()), (1000, "A"));
    assert!(after.serious_deductions.is_empty(), "{:?}", after.serious_deductions);
    assert!(!after.reasons.contains(&(ReasonCode::SeriousDeductionActive as i32)));
    // The trend still shows the month the deduction counted.
    assert!(after.trend.iter().any(|m| m.tier == "B"));
}

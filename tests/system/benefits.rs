//! End-to-end tests of the benefits service, in both modes: a points record moves a household's
//! tier and with it what an agency's check answers; the boundary tier and score; providers see
//! only their own benefits; redemptions spend exactly what a household has, once per key; the
//! annual evaluation gives exactly the households and villages its criteria imply.

use std::time::{Duration, Instant};

use crate::common::{self, TestSystem, authed, code, id_number};
use jiaxin::system::ServiceName;
use jiaxin_kit::error::field_violations;
use jiaxin_proto::{
    bank::{
        GrantConsentRequest, Institution, LoanEventKind, Purpose, ReportLoanEventRequest, SaveInstitutionRequest,
        bank_service_client::BankServiceClient,
    },
    benefits::{
        BatchCheckEligibilityRequest, Benefit, BenefitKind, CancelRedemptionRequest, CheckEligibilityRequest,
        EligibilityCheck, EligibilityReason, EvaluateYearRequest, GetHonourStatusRequest, GetStandingRequest,
        HonourKind, ListBenefitsRequest, ListHonoursRequest, ListVillageReportsRequest, Provider, ProviderKind,
        PublishHonoursRequest, RedeemRequest, RedemptionStatus, SaveBenefitRequest, SaveProviderRequest, Scene,
        Standing, VerifyAuditLogRequest, VerifyAuditLogResponse, benefits_service_client::BenefitsServiceClient,
    },
    identity::{
        CreateAccountRequest, NewResident, OrgNodeKind, RegisterHouseholdRequest, Role,
        identity_service_client::IdentityServiceClient,
    },
    pledges::pledges_service_client::PledgesServiceClient,
    points::{
        GetScoreRequest, PledgeStatus, RecordInput, SubmitRecordRequest, points_service_client::PointsServiceClient,
    },
};
use tonic::{Code, transport::Channel};

struct County {
    sys: TestSystem,
    admin: String,
    identity: IdentityServiceClient<Channel>,
    pledges: PledgesServiceClient<Channel>,
    points: PointsServiceClient<Channel>,
    benefits: BenefitsServiceClient<Channel>,
    county: String,
    village_a: String,
    village_b: String,
    grid_a: String,
    grid_b: String,
}

struct Household {
    id: String,
    head: String,
}

async fn county() -> County {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    let mut identity = sys.identity().await;
    let county = common::own_scope(&mut identity, &admin).await;
    let town = common::create_node(&mut identity, &admin, &county, OrgNodeKind::Town, "桂五镇", "").await;
    let village_a = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "水冲港村", "").await;
    let village_b = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "敬父村", "").await;
    let grid_a = common::create_node(&mut identity, &admin, &village_a, OrgNodeKind::Grid, "第一网格", "").await;
    let grid_b = common::create_node(&mut identity, &admin, &village_b, OrgNodeKind::Grid, "第一网格", "").await;
    let mut pledges = PledgesServiceClient::new(sys.channel_to(ServiceName::Pledges).await);
    common::publish_template(&mut pledges, &admin, &village_a, false).await;
    common::publish_template(&mut pledges, &admin, &village_b, false).await;
    let points = PointsServiceClient::new(sys.channel_to(ServiceName::Points).await);
    let benefits = BenefitsServiceClient::new(sys.channel_to(ServiceName::Benefits).await);
    County { sys, admin, identity, pledges, points, benefits, county, village_a, village_b, grid_a, grid_b }
}

impl County {
    /// Registers a household; with `pledge`, its head signs and the test waits until points
    /// counts its records and benefits sees the pledge.
    async fn household(&mut self, grid: &str, n: u32, pledge: bool) -> Household {
        let head = NewResident {
            name: format!("户主{n}"),
            id_number: id_number("320830", "19700101", n),
            phone: String::new(),
        };
        let request = RegisterHouseholdRequest {
            grid_id: grid.into(),
            address: format!("{n}号"),
            head: Some(head),
            ..Default::default()
        };
        let household = self
            .identity
            .register_household(authed(&self.admin, request))
            .await
            .unwrap()
            .into_inner()
            .household
            .unwrap();
        let id = household.id.clone();
        if pledge {
            common::await_pledges_household(&mut self.pledges, &self.admin, &id).await;
            self.pledges
                .sign_pledge(authed(&self.admin, common::paper_pledge(&id, &household.head_resident_id, 1)))
                .await
                .unwrap();
            self.until("points counts the pledge", |c| {
                let id = id.clone();
                Box::pin(async move {
                    let request = authed(&c.admin, GetScoreRequest { household_id: id, ..Default::default() });
                    c.points
                        .get_score(request)
                        .await
                        .is_ok_and(|s| s.get_ref().score.as_ref().unwrap().pledge == PledgeStatus::InForce as i32)
                })
            })
            .await;
        }
        self.until("benefits knows the household", |c| {
            let id = id.clone();
            Box::pin(async move { c.standing(&id).await.is_some_and(|s| s.pledge_in_force == pledge) })
        })
        .await;
        Household { id, head: household.head_resident_id }
    }

    /// Polls `condition` (bounded): other services learn of changes through events.
    async fn until<F>(&mut self, what: &str, mut condition: F)
    where
        F: for<'a> FnMut(&'a mut County) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + 'a>>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !condition(self).await {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn standing(&mut self, household: &str) -> Option<Standing> {
        let request = authed(&self.admin, GetStandingRequest { household_id: household.into(), at: None });
        self.benefits.get_standing(request).await.ok().and_then(|r| r.into_inner().standing)
    }

    async fn await_score(&mut self, household: &str, score: i64) -> Standing {
        self.until(&format!("benefits sees score {score}"), |c| {
            let household = household.to_owned();
            Box::pin(async move { c.standing(&household).await.is_some_and(|s| s.score == score) })
        })
        .await;
        self.standing(household).await.unwrap()
    }

    async fn account(&mut self, role: Role, scope: &str, resident: &str) -> (String, String) {
        let username = format!("{}-{}", role.as_str_name().to_lowercase(), uuid::Uuid::new_v4().simple());
        let request = CreateAccountRequest {
            username: username.clone(),
            display_name: "测试账号".into(),
            roles: vec![role as i32],
            org_node_id: scope.into(),
            password: "benefits-pass-1".into(),
            resident_id: resident.into(),
            ..Default::default()
        };
        let id =
            self.identity.create_account(authed(&self.admin, request)).await.unwrap().into_inner().account.unwrap().id;
        (id, self.sys.login(&username, "benefits-pass-1").await)
    }

    async fn provider(&mut self, name: &str, kind: ProviderKind, accounts: &[&str]) -> String {
        let provider = Provider {
            name: name.into(),
            kind: kind as i32,
            org_node_id: self.county.clone(),
            account_ids: accounts.iter().map(|a| (*a).to_owned()).collect(),
            ..Default::default()
        };
        // Benefits learns the org tree from identity's events; under load (the distributed run)
        // it may not know the node yet.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let request = authed(&self.admin, SaveProviderRequest { provider: Some(provider.clone()) });
            match self.benefits.save_provider(request).await {
                Ok(saved) => return saved.into_inner().provider.unwrap().id,
                Err(status)
                    if status.code() == Code::InvalidArgument
                        && field_violations(&status).iter().any(|v| v.field == "provider.org_node_id")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("could not save the provider: {status:?}"),
            }
        }
    }

    async fn benefit(&mut self, benefit: Benefit) -> Benefit {
        let request = authed(&self.admin, SaveBenefitRequest { benefit: Some(benefit) });
        self.benefits.save_benefit(request).await.unwrap().into_inner().benefit.unwrap()
    }

    /// Bonus records that need no review (each counts at once), `total` points in all, in steps
    /// of at most 5 within each rule's yearly cap.
    async fn earn(&mut self, worker: &str, household: &str, mut total: i64) {
        let rules = [("A04", 20), ("B04", 20), ("C04", 30)];
        let mut n = 0;
        for (rule, cap) in rules {
            let mut used = 0;
            while total > 0 && used < cap {
                let points = total.min(5).min(cap - used).max(3);
                let record = RecordInput {
                    request_id: format!("{household}-{n}"),
                    household_id: household.into(),
                    rule_code: rule.into(),
                    points,
                    occurred_at: Some(prost_types::Timestamp {
                        seconds: chrono::Utc::now().timestamp() - 3600,
                        nanos: 0,
                    }),
                    evidence: vec!["photo:1.jpg".into()],
                    ..Default::default()
                };
                self.points.submit_record(authed(worker, SubmitRecordRequest { record: Some(record) })).await.unwrap();
                (total, used, n) = (total - points, used + points, n + 1);
            }
        }
        assert_eq!(total, 0, "the rules' caps cover the points asked for");
    }

    /// A bank lends to the household (its head consents in the app) and reports the loan
    /// overdue; waits until benefits has counted it.
    async fn overdue_loan(&mut self, household: &Household) {
        let county = self.county.clone();
        let grid = self.grid_a.clone();
        let (officer_id, officer) = self.account(Role::BankOfficer, &county, "").await;
        let (_, head) = self.account(Role::Resident, &grid, &household.head).await;
        let mut bank = BankServiceClient::new(self.sys.channel_to(ServiceName::Bank).await);
        let institution =
            Institution {
                name: "盱眙农商银行".into(), officer_account_ids: vec![officer_id], ..Default::default()
            };
        let request = authed(&self.admin, SaveInstitutionRequest { institution: Some(institution) });
        let institution = bank.save_institution(request).await.unwrap().into_inner().institution.unwrap().id;
        let until = (chrono::Utc::now() + chrono::Duration::days(90)).format("%Y-%m-%d").to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let grant = GrantConsentRequest {
                household_id: household.id.clone(),
                institution_id: institution.clone(),
                purpose: Purpose::PostLoanMonitoring as i32,
                valid_until: until.clone(),
                ..Default::default()
            };
            match bank.grant_consent(authed(&head, grant)).await {
                Ok(_) => break,
                Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("the head could not consent: {status:?}"),
            }
        }
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        for (kind, key, amount) in [(LoanEventKind::Disbursed, "d", 20_000_000), (LoanEventKind::Overdue, "o", 0)] {
            let event = ReportLoanEventRequest {
                household_id: household.id.clone(),
                loan_ref: "XY-0001".into(),
                kind: kind as i32,
                amount_fen: amount,
                occurred_on: today.clone(),
                client_key: key.into(),
                ..Default::default()
            };
            bank.report_loan_event(authed(&officer, event)).await.unwrap();
        }
        let db = self.sys.database(ServiceName::Benefits).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let bad: Option<i64> = sqlx::query_scalar("SELECT bad FROM loans WHERE household_id = $1")
                .bind(&household.id)
                .fetch_optional(db.pool())
                .await
                .unwrap();
            if bad == Some(1) {
                return;
            }
            assert!(Instant::now() < deadline, "benefits never heard of the overdue loan");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn check(&mut self, token: &str, benefit: &str, household: &str) -> Result<EligibilityCheck, tonic::Status> {
        let request = CheckEligibilityRequest { benefit_id: benefit.into(), household_id: household.into() };
        self.benefits.check_eligibility(authed(token, request)).await.map(|r| r.into_inner().check.unwrap())
    }
}

fn benefit(name: &str, provider: &str, area: &str, scene: Scene, kind: BenefitKind) -> Benefit {
    Benefit {
        name: name.into(),
        description: "持信用户证明优先办理".into(),
        scene: scene as i32,
        kind: kind as i32,
        provider_id: provider.into(),
        org_node_id: area.into(),
        policy_basis: "《盱眙县信用户激励办法》第五条".into(),
        valid_from: "2020-01-01".into(),
        ..Default::default()
    }
}

fn reason(check: &EligibilityCheck) -> EligibilityReason {
    EligibilityReason::try_from(check.reason).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_points_record_moves_the_tier_an_agency_check_sees_at_the_boundary() {
    let mut c = county().await;
    let (grid_a, county_node) = (c.grid_a.clone(), c.county.clone());
    let top = c.household(&grid_a, 1, true).await;
    let short = c.household(&grid_a, 2, true).await;
    let worker = c.account(Role::GridWorker, &grid_a, "").await.1;
    let (agency_id, agency) = c.account(Role::Agency, &county_node, "").await;
    let (other_id, other_agency) = c.account(Role::Agency, &county_node, "").await;
    let office = c.provider("县政务服务中心", ProviderKind::Agency, &[&agency_id]).await;
    let hospital = c.provider("县人民医院", ProviderKind::Agency, &[&other_id]).await;
    let fast = c
        .benefit(Benefit {
            min_tier: "AA".into(),
            ..benefit("信易批·容缺受理", &office, &county_node, Scene::Approval, BenefitKind::FastTrack)
        })
        .await;
    let clinic = c
        .benefit(Benefit {
            min_score: 1050,
            ..benefit("信易医·先诊疗后付费", &hospital, &county_node, Scene::Medical, BenefitKind::Priority)
        })
        .await;

    // At the base (1000, A) the household is below AA.
    let before = c.check(&agency, &fast.id, &top.id).await.unwrap();
    assert_eq!((reason(&before), before.tier.as_str(), before.score), (EligibilityReason::TierTooLow, "A", 1000));
    assert!(!before.eligible && before.explanation.contains("AA"));
    let at_base = chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Fifty points of bonuses reach AA exactly; forty-nine stay one short.
    c.earn(&worker, &top.id, 50).await;
    c.earn(&worker, &short.id, 49).await;
    let standing = c.await_score(&top.id, 1050).await;
    assert_eq!(standing.tier, "AA");
    assert_eq!(c.await_score(&short.id, 1049).await.tier, "A");

    let top_check = c.check(&agency, &fast.id, &top.id).await.unwrap();
    assert_eq!(
        (reason(&top_check), top_check.eligible, top_check.tier.as_str()),
        (EligibilityReason::Eligible, true, "AA")
    );
    assert!(top_check.standing_as_of.is_some() && !top_check.id.is_empty());
    let short_check = c.check(&agency, &fast.id, &short.id).await.unwrap();
    assert_eq!(reason(&short_check), EligibilityReason::TierTooLow);
    let by_score = c.check(&other_agency, &clinic.id, &short.id).await.unwrap();
    assert_eq!((reason(&by_score), by_score.score), (EligibilityReason::ScoreTooLow, 1049));
    assert!(c.check(&other_agency, &clinic.id, &top.id).await.unwrap().eligible);

    // A provider asks only about its own benefits; anyone else's read as not there.
    assert_eq!(code(c.check(&other_agency, &fast.id, &top.id).await), Code::NotFound);
    assert_eq!(code(c.check(&agency, &clinic.id, &top.id).await), Code::NotFound);
    let admin = c.admin.clone();
    assert_eq!(code(c.check(&admin, &fast.id, &top.id).await), Code::NotFound);
    let listed = c.benefits.list_benefits(authed(&agency, ListBenefitsRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.benefits.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), [fast.id.as_str()]);

    // The daily queue in one call; unknown households are "not covered", like any outside the area.
    let queue = BatchCheckEligibilityRequest {
        benefit_id: fast.id.clone(),
        household_ids: vec![top.id.clone(), short.id.clone(), "no-such-household".into()],
    };
    let checks = c.benefits.batch_check_eligibility(authed(&agency, queue)).await.unwrap().into_inner().checks;
    assert_eq!(
        checks.iter().map(reason).collect::<Vec<_>>(),
        [EligibilityReason::Eligible, EligibilityReason::TierTooLow, EligibilityReason::NotCovered]
    );
    let queue = BatchCheckEligibilityRequest { benefit_id: fast.id.clone(), household_ids: vec![top.id.clone()] };
    assert_eq!(code(c.benefits.batch_check_eligibility(authed(&other_agency, queue)).await), Code::NotFound);

    // A dispute about the first check: the standing as of then was the base.
    let request = GetStandingRequest {
        household_id: top.id.clone(),
        at: Some(prost_types::Timestamp { seconds: at_base, nanos: 0 }),
    };
    let then = c.benefits.get_standing(authed(&admin, request)).await.unwrap().into_inner().standing.unwrap();
    assert_eq!((then.score, then.tier.as_str()), (1000, "A"));

    // Every check is in the audit log, and the chain holds.
    let verified = c.benefits.verify_audit_log(authed(&admin, VerifyAuditLogRequest {})).await.unwrap().into_inner();
    assert!(verified.intact, "{verified:?}");

    // If the audit entry cannot be written, no answer is given and the log is unchanged.
    let db = c.sys.database(ServiceName::Benefits).await;
    sqlx::query("ALTER TABLE audit_head RENAME TO audit_head_away").execute(db.pool()).await.unwrap();
    let unaudited = c.check(&agency, &fast.id, &top.id).await;
    let unaudited_queue =
        BatchCheckEligibilityRequest { benefit_id: fast.id.clone(), household_ids: vec![top.id.clone()] };
    let unaudited_queue = c.benefits.batch_check_eligibility(authed(&agency, unaudited_queue)).await;
    sqlx::query("ALTER TABLE audit_head_away RENAME TO audit_head").execute(db.pool()).await.unwrap();
    assert!(unaudited.is_err() && unaudited_queue.is_err(), "an unaudited answer was given");
    let again = c.benefits.verify_audit_log(authed(&admin, VerifyAuditLogRequest {})).await.unwrap().into_inner();
    assert_eq!((again.intact, again.entries_checked), (true, verified.entries_checked));
    assert!(verified.entries_checked >= 9, "{verified:?}");
    assert_eq!(
        code(c.benefits.verify_audit_log(authed(&agency, VerifyAuditLogRequest {})).await),
        Code::PermissionDenied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_spend_exactly_what_a_household_has() {
    let mut c = county().await;
    let (grid_a, county_node) = (c.grid_a.clone(), c.county.clone());
    let home = c.household(&grid_a, 1, true).await;
    let neighbour = c.household(&grid_a, 2, true).await;
    let worker = c.account(Role::GridWorker, &grid_a, "").await.1;
    let (_, resident) = c.account(Role::Resident, &grid_a, &home.head).await;
    let (_, stranger) = c.account(Role::Resident, &grid_a, &neighbour.head).await;
    let (shop_id, shopkeeper) = c.account(Role::Agency, &county_node, "").await;
    let shop = c.provider("水冲港村积分超市", ProviderKind::Merchant, &[&shop_id]).await;
    let soap = c
        .benefit(Benefit {
            cost_points: 1,
            ..benefit("洗衣皂一块", &shop, &county_node, Scene::Other, BenefitKind::Redemption)
        })
        .await;
    let oil = c
        .benefit(Benefit {
            cost_points: 1,
            stock: 2,
            ..benefit("食用油一桶", &shop, &county_node, Scene::Other, BenefitKind::Redemption)
        })
        .await;
    c.earn(&worker, &home.id, 50).await;
    assert_eq!(c.await_score(&home.id, 1050).await.redeemable_available, 50);

    // Stock is taken once: two of two, then none left.
    let redeem = |benefit: &str, quantity: i64, key: &str| RedeemRequest {
        benefit_id: benefit.into(),
        household_id: home.id.clone(),
        quantity,
        client_key: key.into(),
    };
    let two = c
        .benefits
        .redeem(authed(&resident, redeem(&oil.id, 2, "oil-1")))
        .await
        .unwrap()
        .into_inner()
        .redemption
        .unwrap();
    assert_eq!((two.points, two.status), (2, RedemptionStatus::Redeemed as i32));
    let none_left = c.benefits.redeem(authed(&resident, redeem(&oil.id, 1, "oil-2"))).await.unwrap_err();
    assert_eq!(none_left.code(), Code::FailedPrecondition);
    assert!(none_left.message().contains("库存"), "{}", none_left.message());

    // A hundred redemptions at once for 48 remaining points: exactly 48 go through.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let mut client = c.benefits.clone();
        let request = authed(&resident, redeem(&soap.id, 1, &format!("soap-{i}")));
        tasks.spawn(async move { client.redeem(request).await.map(|_| ()).map_err(|s| s.code()) });
    }
    let mut outcomes = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 48, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Ok(()) | Err(Code::FailedPrecondition))), "{outcomes:?}");
    let after = c.standing(&home.id).await.unwrap();
    assert_eq!((after.redeemable_earned, after.redeemable_spent, after.redeemable_available), (50, 50, 0));
    // Spending never touches the credit score.
    assert_eq!((after.score, after.tier.as_str()), (1050, "AA"));
    let request = authed(&c.admin, GetScoreRequest { household_id: home.id.clone(), ..Default::default() });
    assert_eq!(c.points.get_score(request).await.unwrap().into_inner().score.unwrap().score, 1050);

    // A retry with the same key is the first result; the key with other content is refused.
    let first = c
        .benefits
        .redeem(authed(&resident, redeem(&oil.id, 2, "oil-1")))
        .await
        .unwrap()
        .into_inner()
        .redemption
        .unwrap();
    assert_eq!(first.id, two.id);
    let reused = c.benefits.redeem(authed(&resident, redeem(&oil.id, 1, "oil-1"))).await.unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&reused)[0].field, "client_key");
    // Another household's resident cannot spend this household's points.
    assert_eq!(code(c.benefits.redeem(authed(&stranger, redeem(&soap.id, 1, "x-1"))).await), Code::NotFound);

    // The shop cancels: points and stock come back, once.
    let cancel = CancelRedemptionRequest { id: two.id.clone(), reason: "顾客退货".into() };
    let cancelled = c
        .benefits
        .cancel_redemption(authed(&shopkeeper, cancel.clone()))
        .await
        .unwrap()
        .into_inner()
        .redemption
        .unwrap();
    assert_eq!(cancelled.status, RedemptionStatus::Cancelled as i32);
    c.benefits.cancel_redemption(authed(&shopkeeper, cancel)).await.unwrap();
    assert_eq!(c.standing(&home.id).await.unwrap().redeemable_available, 2);
    c.benefits.redeem(authed(&resident, redeem(&oil.id, 2, "oil-3"))).await.unwrap();
    assert_eq!(c.standing(&home.id).await.unwrap().redeemable_available, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_annual_evaluation_honours_exactly_what_the_criteria_imply() {
    let mut c = county().await;
    let (grid_a, grid_b, county_node) = (c.grid_a.clone(), c.grid_b.clone(), c.county.clone());
    // Village A: two pledged households and one that never signed (coverage 666‰, short of
    // 900‰). Village B: one pledged household at the base.
    let a1 = c.household(&grid_a, 1, true).await;
    let a2 = c.household(&grid_a, 2, true).await;
    let unsigned = c.household(&grid_a, 3, false).await;
    let b1 = c.household(&grid_b, 4, true).await;
    let (_, resident) = c.account(Role::Resident, &grid_a, &unsigned.head).await;
    // A bank lent to a household of village A, and the loan went overdue: A's non-performing
    // ratio is 1000‰ (B has no loans, which meets the criterion).
    c.overdue_loan(&a1).await;
    let year =
        chrono::Datelike::year(&chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()));

    let bad = EvaluateYearRequest { year: 1999, org_node_id: county_node.clone() };
    let status = c.benefits.evaluate_year(authed(&c.admin, bad)).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "year");
    let request = EvaluateYearRequest { year, org_node_id: county_node.clone() };
    assert_eq!(code(c.benefits.evaluate_year(authed(&resident, request.clone())).await), Code::PermissionDenied);
    let draft =
        c.benefits.evaluate_year(authed(&c.admin, request.clone())).await.unwrap().into_inner().evaluation.unwrap();
    assert_eq!(
        (draft.households, draft.credit_households, draft.villages, draft.credit_villages),
        (4, 3, 2, 1),
        "{draft:?}"
    );

    let list = |kind: HonourKind| ListHonoursRequest {
        evaluation_id: draft.id.clone(),
        kind: kind as i32,
        ..Default::default()
    };
    let households = c.benefits.list_honours(authed(&c.admin, list(HonourKind::Household))).await.unwrap().into_inner();
    let mut honoured: Vec<String> = households.honours.iter().map(|h| h.subject_id.clone()).collect();
    honoured.sort();
    let mut expected = vec![a1.id.clone(), a2.id.clone(), b1.id.clone()];
    expected.sort();
    assert_eq!(honoured, expected);
    let villages = c.benefits.list_honours(authed(&c.admin, list(HonourKind::Village))).await.unwrap().into_inner();
    assert_eq!(villages.honours.iter().map(|h| h.subject_id.as_str()).collect::<Vec<_>>(), [c.village_b.as_str()]);

    // The household sees nothing of a draft; once published, what it is missing.
    let status_request = GetHonourStatusRequest { year, household_id: unsigned.id.clone(), village_id: String::new() };
    assert_eq!(code(c.benefits.get_honour_status(authed(&resident, status_request.clone())).await), Code::NotFound);
    assert_eq!(code(c.benefits.list_honours(authed(&resident, list(HonourKind::Household))).await), Code::NotFound);
    let published = c
        .benefits
        .publish_honours(authed(&c.admin, PublishHonoursRequest { evaluation_id: draft.id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .evaluation
        .unwrap();
    assert!(published.published_at.is_some());
    let mine = c.benefits.get_honour_status(authed(&resident, status_request)).await.unwrap().into_inner();
    assert!(mine.published && !mine.honoured);
    let missing: Vec<&str> = mine.criteria.iter().filter(|k| !k.met).map(|k| k.name.as_str()).collect();
    assert_eq!(missing, ["household.pledge"]);

    let village = GetHonourStatusRequest { year, household_id: String::new(), village_id: c.village_a.clone() };
    let village = c.benefits.get_honour_status(authed(&resident, village)).await.unwrap().into_inner();
    let missing: Vec<&str> = village.criteria.iter().filter(|k| !k.met).map(|k| k.name.as_str()).collect();
    assert_eq!(missing, ["village.coverage", "village.credit_share", "village.npl"]);
    let reports = ListVillageReportsRequest { evaluation_id: draft.id.clone(), ..Default::default() };
    let reports = c.benefits.list_village_reports(authed(&c.admin, reports)).await.unwrap().into_inner().reports;
    let report_a = reports.iter().find(|r| r.village_id == c.village_a).unwrap();
    assert_eq!(
        (report_a.households, report_a.pledged, report_a.coverage_permille, report_a.average_score),
        (3, 2, 666, 1000)
    );

    // Published results stand.
    let again = c.benefits.evaluate_year(authed(&c.admin, request)).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_catalogue_input_is_refused_by_field_and_writes_nothing() {
    let mut c = county().await;
    let county_node = c.county.clone();
    let (agency_id, agency) = c.account(Role::Agency, &county_node, "").await;
    let office = c.provider("县政务服务中心", ProviderKind::Agency, &[&agency_id]).await;
    let bad = Benefit {
        min_tier: "S".into(),
        valid_from: "2026-13-01".into(),
        cost_points: 5,
        ..benefit("", &office, &county_node, Scene::Unspecified, BenefitKind::Priority)
    };
    let status =
        c.benefits.save_benefit(authed(&c.admin, SaveBenefitRequest { benefit: Some(bad) })).await.unwrap_err();
    let mut fields: Vec<String> = field_violations(&status).into_iter().map(|v| v.field).collect();
    fields.sort();
    assert_eq!(
        fields,
        ["benefit.cost_points", "benefit.min_tier", "benefit.name", "benefit.scene", "benefit.valid_from"],
        "{status:?}"
    );
    let unknown =
        benefit("信易游·景区门票半价", "no-such-provider", &county_node, Scene::Tourism, BenefitKind::Discount);
    let status =
        c.benefits.save_benefit(authed(&c.admin, SaveBenefitRequest { benefit: Some(unknown) })).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "benefit.provider_id");
    let listed = c.benefits.list_benefits(authed(&c.admin, ListBenefitsRequest::default())).await.unwrap().into_inner();
    assert!(listed.benefits.is_empty(), "nothing was written: {listed:?}");
    // Only county and town admins manage the catalogue.
    let good = benefit("信易游·景区门票半价", &office, &county_node, Scene::Tourism, BenefitKind::Discount);
    let status =
        c.benefits.save_benefit(authed(&agency, SaveBenefitRequest { benefit: Some(good) })).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

/// Issue 11: someone with the database in hand changes, removes or reorders entries of an audit
/// log; verification catches each and names the first entry that no longer follows, and the
/// log verifies again once put back. Benefits' log; the council's and the bank's are the same
/// code (`jiaxin_kit::audit`) on tables of the same shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_removed_or_reordered_audit_entry_is_caught_by_verify() {
    let mut c = county().await;
    let county_node = c.county.clone();
    let (agency_id, _) = c.account(Role::Agency, &county_node, "").await;
    let office = c.provider("县政务服务中心", ProviderKind::Agency, &[&agency_id]).await;
    for name in ["信易批·容缺受理", "信易租·租房优惠", "信易游·景区门票"] {
        c.benefit(benefit(name, &office, &county_node, Scene::Approval, BenefitKind::FastTrack)).await;
    }
    let intact = verify_benefits_log(&mut c).await;
    assert!(intact.intact && intact.entries_checked >= 4, "{intact:?}");
    let last = intact.entries_checked;

    let db = c.sys.database(ServiceName::Benefits).await;
    let pool = db.pool();
    type Row = (i64, i64, String, String, String, String, String, String);
    let row = |seq: i64| async move {
        sqlx::query_as::<_, Row>(
            "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log WHERE seq = $1",
        )
        .bind(seq)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let put_back = |r: Row| async move {
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.0)
        .bind(r.1)
        .bind(r.2)
        .bind(r.3)
        .bind(r.4)
        .bind(r.5)
        .bind(r.6)
        .bind(r.7)
        .execute(pool)
        .await
        .unwrap();
    };
    let run = |sql: &str| {
        let sql = sql.to_owned();
        async move {
            sqlx::query(&sql).execute(pool).await.unwrap();
        }
    };

    // A field changed.
    let second = row(2).await;
    run("UPDATE audit_log SET details = details || ' ' WHERE seq = 2").await;
    assert_broken_at(&mut c, 2, "a changed entry").await;
    sqlx::query("UPDATE audit_log SET details = $1 WHERE seq = 2").bind(&second.5).execute(pool).await.unwrap();
    assert_eq!(verify_benefits_log(&mut c).await, intact, "put back");

    // An entry removed from the middle, and the last one removed.
    for seq in [2, last] {
        let removed = row(seq).await;
        run(&format!("DELETE FROM audit_log WHERE seq = {seq}")).await;
        assert_broken_at(&mut c, seq, "a removed entry").await;
        put_back(removed).await;
        assert_eq!(verify_benefits_log(&mut c).await, intact, "put back");
    }

    // Two entries swapped in the order.
    // Through a free seq, so no step holds two entries with one seq; the same steps swap back.
    let swap = [
        "UPDATE audit_log SET seq = -1 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = -1",
    ];
    for statement in swap {
        run(statement).await;
    }
    assert_broken_at(&mut c, 2, "two entries swapped").await;
    for statement in swap {
        run(statement).await;
    }
    assert_eq!(verify_benefits_log(&mut c).await, intact, "put back");
}

async fn verify_benefits_log(c: &mut County) -> VerifyAuditLogResponse {
    c.benefits.verify_audit_log(authed(&c.admin, VerifyAuditLogRequest {})).await.unwrap().into_inner()
}

async fn assert_broken_at(c: &mut County, seq: i64, what: &str) {
    let verified = verify_benefits_log(c).await;
    assert!(!verified.intact, "{what} went unnoticed: {verified:?}");
    assert_eq!(verified.broken_seq, seq, "{what}: {verified:?}");
}

//! End-to-end tests of the bank service, in both modes: consents deny alike whatever is wrong
//! with them, a revocation blocks the very next query, every report is in the household's query
//! list and the audit log, the rate limit holds under a burst, pre-approval names only consenting
//! households, and loan outcomes reach points — an overdue one only through council review.

use std::time::{Duration, Instant};

use crate::common::{self, TestSystem, authed, code, id_number};
use jiaxin::system::ServiceName;
use jiaxin_kit::error::field_violations;
use jiaxin_proto::{
    bank::{
        AuthoriseMemberRequest, Branch, Business, BusinessKind, GetBusinessReportRequest, GetCreditReportRequest,
        GrantConsentRequest, Institution, ListConsentsRequest, LoanEventKind, PreApproveVillageRequest, Product,
        Purpose, ReportLoanEventRequest, RevokeConsentRequest, SaveBranchRequest, SaveBusinessRequest,
        SaveInstitutionRequest, SaveProductRequest, TierLimit, VerifyAuditLogRequest,
        bank_service_client::BankServiceClient,
    },
    council::{ReviewDecided, ReviewOutcome},
    identity::{
        AddMemberRequest, CreateAccountRequest, NewResident, OrgNodeKind, RegisterHouseholdRequest, Relation, Role,
        identity_service_client::IdentityServiceClient,
    },
    pledges::pledges_service_client::PledgesServiceClient,
    points::{
        GetScoreRequest, ListRecordsRequest, PledgeStatus, RecordStatus, points_service_client::PointsServiceClient,
    },
};
use tonic::{Code, transport::Channel};

struct County {
    sys: TestSystem,
    admin: String,
    identity: IdentityServiceClient<Channel>,
    pledges: PledgesServiceClient<Channel>,
    points: PointsServiceClient<Channel>,
    bank: BankServiceClient<Channel>,
    county: String,
    village: String,
    other_village: String,
    grid: String,
}

struct Household {
    id: String,
    /// A resident account of the household's head.
    head: String,
}

/// An institution with its officers' tokens, a branch serving the test village, a product.
struct Lender {
    id: String,
    officers: Vec<String>,
    branch: String,
    product: String,
}

async fn county() -> County {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    let mut identity = sys.identity().await;
    let county = common::own_scope(&mut identity, &admin).await;
    let town = common::create_node(&mut identity, &admin, &county, OrgNodeKind::Town, "官滩镇", "").await;
    let village = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "万山村", "").await;
    let other_village = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "仁和村", "").await;
    let grid = common::create_node(&mut identity, &admin, &village, OrgNodeKind::Grid, "第一网格", "").await;
    let mut pledges = PledgesServiceClient::new(sys.channel_to(ServiceName::Pledges).await);
    common::publish_template(&mut pledges, &admin, &village, false).await;
    let points = PointsServiceClient::new(sys.channel_to(ServiceName::Points).await);
    let bank = BankServiceClient::new(sys.channel_to(ServiceName::Bank).await);
    County { sys, admin, identity, pledges, points, bank, county, village, other_village, grid }
}

impl County {
    async fn account(&mut self, role: Role, scope: &str, resident: &str) -> (String, String) {
        let username = format!("{}-{}", role.as_str_name().to_lowercase(), uuid::Uuid::new_v4().simple());
        let request = CreateAccountRequest {
            username: username.clone(),
            display_name: "测试账号".into(),
            roles: vec![role as i32],
            org_node_id: scope.into(),
            password: "bank-pass-1".into(),
            resident_id: resident.into(),
            ..Default::default()
        };
        let id =
            self.identity.create_account(authed(&self.admin, request)).await.unwrap().into_inner().account.unwrap().id;
        (id, self.sys.login(&username, "bank-pass-1").await)
    }

    /// A pledged household whose head has a resident account; waits until points counts its
    /// records and the bank knows it.
    async fn household(&mut self, n: u32) -> (Household, String) {
        let head = NewResident {
            name: format!("户主{n}"),
            id_number: id_number("320830", "19750101", n),
            phone: String::new(),
        };
        let request = RegisterHouseholdRequest {
            grid_id: self.grid.clone(),
            address: format!("万山村{n}号"),
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
        common::await_pledges_household(&mut self.pledges, &self.admin, &household.id).await;
        self.pledges
            .sign_pledge(authed(&self.admin, common::paper_pledge(&household.id, &household.head_resident_id, 1)))
            .await
            .unwrap();
        let grid = self.grid.clone();
        let (_, head) = self.account(Role::Resident, &grid, &household.head_resident_id).await;
        let bank_db = self.sys.database(ServiceName::Bank).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let score =
                authed(&self.admin, GetScoreRequest { household_id: household.id.clone(), ..Default::default() });
            let pledged = self
                .points
                .get_score(score)
                .await
                .is_ok_and(|s| s.get_ref().score.as_ref().unwrap().pledge == PledgeStatus::InForce as i32);
            let known = self
                .bank
                .list_consents(authed(&head, ListConsentsRequest { household_id: household.id.clone() }))
                .await
                .is_ok();
            // And the bank has the pledge in its own read model (its events arrive on their own).
            let bank_pledged: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM standings WHERE household_id = $1 AND pledged_at IS NOT NULL")
                    .bind(&household.id)
                    .fetch_one(bank_db.pool())
                    .await
                    .unwrap_or_default();
            if pledged && known && bank_pledged > 0 {
                break;
            }
            if Instant::now() >= deadline {
                let listed = self
                    .bank
                    .list_consents(authed(&head, ListConsentsRequest { household_id: household.id.clone() }))
                    .await;
                panic!("points ({pledged}) and the bank ({listed:?}) never learned of household {}", household.id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (Household { id: household.id, head }, household.head_resident_id)
    }

    /// Adds a member born on `birth` (YYYY-MMDD digits as in an ID number) and gives them a
    /// resident account; waits until the bank knows the membership.
    async fn member(&mut self, household: &str, n: u32, birth: &str) -> (String, String) {
        let resident =
            NewResident { name: format!("成员{n}"), id_number: id_number("320830", birth, n), phone: String::new() };
        let add = AddMemberRequest {
            household_id: household.into(),
            resident: Some(resident),
            relation: Relation::Child as i32,
        };
        let resident_id =
            self.identity.add_member(authed(&self.admin, add)).await.unwrap().into_inner().resident.unwrap().id;
        let grid = self.grid.clone();
        let (_, token) = self.account(Role::Resident, &grid, &resident_id).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .bank
            .list_consents(authed(&token, ListConsentsRequest { household_id: household.into() }))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the bank never learned of the member");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (resident_id, token)
    }

    async fn lender(&mut self, name: &str, officers: usize) -> Lender {
        let county = self.county.clone();
        let mut ids = Vec::new();
        let mut tokens = Vec::new();
        for _ in 0..officers {
            let (id, token) = self.account(Role::BankOfficer, &county, "").await;
            ids.push(id);
            tokens.push(token);
        }
        let institution = Institution { name: name.into(), officer_account_ids: ids.clone(), ..Default::default() };
        let request = authed(&self.admin, SaveInstitutionRequest { institution: Some(institution) });
        let id = self.bank.save_institution(request).await.unwrap().into_inner().institution.unwrap().id;
        let product = Product {
            name: "信易贷·农户信用贷".into(),
            purpose: "生产经营".into(),
            limits: [("AAA", 50_000_000), ("AA", 30_000_000), ("A", 20_000_000), ("B", 5_000_000)]
                .map(|(tier, fen)| TierLimit { tier: tier.into(), limit_fen: fen })
                .to_vec(),
            term_months: 12,
            rate_note: "LPR + 0.5%".into(),
            ..Default::default()
        };
        let product =
            self.bank.save_product(authed(&tokens[0], SaveProductRequest { product: Some(product) })).await.unwrap();
        // The branch serving the village waits until the bank knows the village.
        let deadline = Instant::now() + Duration::from_secs(60);
        let branch = loop {
            let branch = Branch {
                institution_id: id.clone(),
                name: format!("{name}官滩支行"),
                village_ids: vec![self.village.clone()],
                officer_account_ids: ids.clone(),
                ..Default::default()
            };
            match self.bank.save_branch(authed(&self.admin, SaveBranchRequest { branch: Some(branch) })).await {
                Ok(saved) => break saved.into_inner().branch.unwrap().id,
                Err(status) if status.code() == Code::InvalidArgument && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("could not save the branch: {status:?}"),
            }
        };
        Lender { id, officers: tokens, branch, product: product.into_inner().product.unwrap().id }
    }

    async fn consent(&mut self, household: &Household, institution: &str, purpose: Purpose) -> String {
        let until = (chrono::Utc::now() + chrono::Duration::days(90)).format("%Y-%m-%d").to_string();
        let request = GrantConsentRequest {
            household_id: household.id.clone(),
            institution_id: institution.into(),
            purpose: purpose as i32,
            valid_until: until,
            ..Default::default()
        };
        self.bank.grant_consent(authed(&household.head, request)).await.unwrap().into_inner().consent.unwrap().id
    }

    async fn report(
        &mut self,
        officer: &str,
        consent: &str,
    ) -> Result<jiaxin_proto::bank::CreditReport, tonic::Status> {
        let request = authed(officer, GetCreditReportRequest { consent_id: consent.into() });
        self.bank.get_credit_report(request).await.map(|r| r.into_inner().report.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consents_deny_alike_and_every_report_is_in_the_query_list_and_the_audit_log() {
    let mut c = county().await;
    let (home, _) = c.household(1).await;
    let ours = c.lender("盱眙农商银行", 1).await;
    let theirs = c.lender("邮储银行盱眙支行", 1).await;
    let officer = ours.officers[0].clone();

    let loan = c.consent(&home, &ours.id, Purpose::LoanApplication).await;
    let report = c.report(&officer, &loan).await.unwrap();
    assert_eq!((report.household_id.as_str(), report.score, report.tier.as_str()), (home.id.as_str(), 1000, "A"));
    assert_eq!(report.trend.len(), 24);
    assert_eq!(report.limits.iter().map(|l| l.limit_fen).collect::<Vec<_>>(), [20_000_000]);
    assert!(report.reasons.contains(&(jiaxin_proto::bank::ReasonCode::PledgeInForce as i32)));

    // An adult son may consent once the head authorises him; a minor cannot be authorised.
    let (son, son_token) = c.member(&home.id, 11, "19980303").await;
    let (minor, _) = c.member(&home.id, 12, "20150505").await;
    let until = (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%d").to_string();
    let by_son = GrantConsentRequest {
        household_id: home.id.clone(),
        institution_id: ours.id.clone(),
        purpose: Purpose::LoanApplication as i32,
        valid_until: until,
        ..Default::default()
    };
    assert_eq!(code(c.bank.grant_consent(authed(&son_token, by_son.clone())).await), Code::NotFound);
    let authorise = |resident: &str| AuthoriseMemberRequest {
        household_id: home.id.clone(),
        resident_id: resident.into(),
        withdraw: false,
    };
    let status = c.bank.authorise_member(authed(&home.head, authorise(&minor))).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "resident_id");
    assert_eq!(
        code(c.bank.authorise_member(authed(&son_token, authorise(&son))).await),
        Code::NotFound,
        "only the head authorises"
    );
    c.bank.authorise_member(authed(&home.head, authorise(&son))).await.unwrap();
    let granted = c.bank.grant_consent(authed(&son_token, by_son)).await.unwrap().into_inner().consent.unwrap();
    assert_eq!(granted.granted_by, son);

    // Every refusal reads like a consent that does not exist.
    let missing = c.report(&officer, "no-such-consent").await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let other_bank = c.report(&theirs.officers[0], &loan).await.unwrap_err();
    let preapproval_only = c.consent(&home, &ours.id, Purpose::VillagePreapproval).await;
    let wrong_purpose = c.report(&officer, &preapproval_only).await.unwrap_err();
    let lapsing = c.consent(&home, &ours.id, Purpose::PostLoanMonitoring).await;
    let db = c.sys.database(ServiceName::Bank).await;
    sqlx::query("UPDATE consents SET valid_until = '2020-01-01' WHERE id = $1")
        .bind(&lapsing)
        .execute(db.pool())
        .await
        .unwrap();
    let expired = c.report(&officer, &lapsing).await.unwrap_err();
    for denial in [&other_bank, &wrong_purpose, &expired] {
        assert_eq!((denial.code(), denial.message()), (missing.code(), missing.message()));
    }
    // Not an officer at all: refused before anything is looked up.
    let admin = c.admin.clone();
    assert_eq!(code(c.report(&admin, &loan).await), Code::PermissionDenied);

    // A family farm registered to the household borrows on the household's score, under its
    // consent; a business of another household does not ride on this consent.
    let farm = Business {
        name: "万山家庭农场".into(),
        kind: BusinessKind::FamilyFarm as i32,
        household_id: home.id.clone(),
        credit_code: "92320830MA1XY2345K".into(),
        scale_mu: 320,
        ..Default::default()
    };
    let bad = Business { credit_code: "12345".into(), ..farm.clone() };
    let status = c.bank.save_business(authed(&admin, SaveBusinessRequest { business: Some(bad) })).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "business.credit_code");
    let farm = c.bank.save_business(authed(&admin, SaveBusinessRequest { business: Some(farm) })).await.unwrap();
    let farm = farm.into_inner().business.unwrap();
    let ask = GetBusinessReportRequest { consent_id: loan.clone(), business_id: farm.id.clone() };
    let farm_report = c.bank.get_business_report(authed(&officer, ask)).await.unwrap().into_inner();
    assert_eq!(farm_report.business.unwrap().scale_mu, 320);
    assert_eq!(farm_report.report.unwrap().household_id, home.id);
    let (neighbour, _) = c.household(2).await;
    let other_farm = Business {
        name: "仁和种粮大户".into(),
        kind: BusinessKind::GrainGrower as i32,
        household_id: neighbour.id.clone(),
        ..Default::default()
    };
    let other_farm =
        c.bank.save_business(authed(&admin, SaveBusinessRequest { business: Some(other_farm) })).await.unwrap();
    let ask = GetBusinessReportRequest {
        consent_id: loan.clone(),
        business_id: other_farm.into_inner().business.unwrap().id,
    };
    let denied = c.bank.get_business_report(authed(&officer, ask)).await.unwrap_err();
    assert_eq!((denied.code(), denied.message()), (missing.code(), missing.message()));

    // If the audit entry cannot be written, the report is not given and nothing is recorded.
    let queries_now = |consents: Vec<jiaxin_proto::bank::Consent>| {
        consents.iter().find(|k| k.id == loan).map(|k| k.queries.len()).unwrap_or_default()
    };
    let listed = c.bank.list_consents(authed(&home.head, ListConsentsRequest { household_id: home.id.clone() }));
    let before = queries_now(listed.await.unwrap().into_inner().consents);
    sqlx::query("ALTER TABLE audit_head RENAME TO audit_head_away").execute(db.pool()).await.unwrap();
    let unaudited = c.report(&officer, &loan).await;
    sqlx::query("ALTER TABLE audit_head_away RENAME TO audit_head").execute(db.pool()).await.unwrap();
    assert!(unaudited.is_err(), "a report whose audit entry failed was given: {unaudited:?}");
    let listed = c.bank.list_consents(authed(&home.head, ListConsentsRequest { household_id: home.id.clone() }));
    assert_eq!(queries_now(listed.await.unwrap().into_inner().consents), before, "no query recorded either");

    // The head revokes: the very next query is refused, alike.
    let request = authed(&home.head, RevokeConsentRequest { id: loan.clone() });
    assert!(c.bank.revoke_consent(request).await.unwrap().into_inner().consent.unwrap().revoked_at.is_some());
    let revoked = c.report(&officer, &loan).await.unwrap_err();
    assert_eq!((revoked.code(), revoked.message()), (missing.code(), missing.message()));

    // The household sees the one report that was given, and who asked.
    let listed =
        c.bank.list_consents(authed(&home.head, ListConsentsRequest { household_id: home.id.clone() })).await.unwrap();
    let consents = listed.into_inner().consents;
    let loan_consent = consents.iter().find(|k| k.id == loan).unwrap();
    assert_eq!(loan_consent.queries.len(), 2, "the household's report and the farm's");
    assert_eq!(loan_consent.queries[0].id, report.id);
    assert!(loan_consent.queries[1].returned.contains("万山家庭农场"), "{:?}", loan_consent.queries);
    assert!(loan_consent.queries[0].returned.contains("A 级"), "{:?}", loan_consent.queries[0]);
    assert!(consents.iter().filter(|k| k.id != loan).all(|k| k.queries.is_empty()));
    let stranger = theirs.officers[0].clone();
    assert_eq!(
        code(c.bank.list_consents(authed(&stranger, ListConsentsRequest { household_id: home.id.clone() })).await),
        Code::NotFound
    );

    let verified = c.bank.verify_audit_log(authed(&admin, VerifyAuditLogRequest {})).await.unwrap().into_inner();
    assert!(verified.intact, "{verified:?}");
    let entries: Vec<(String, String)> =
        sqlx::query_as("SELECT action, subject FROM audit_log WHERE action = 'credit.report'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert!(entries.iter().any(|(_, subject)| *subject == report.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_officer_rate_limit_holds_under_a_burst_and_every_answer_is_listed() {
    let mut c = county().await;
    let (home, _) = c.household(1).await;
    let lender = c.lender("盱眙农商银行", 1).await;
    let consent = c.consent(&home, &lender.id, Purpose::LoanApplication).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..150 {
        let mut bank = c.bank.clone();
        let request = authed(&lender.officers[0], GetCreditReportRequest { consent_id: consent.clone() });
        tasks.spawn(async move { bank.get_credit_report(request).await.map(|_| ()).map_err(|s| s.code()) });
    }
    let mut outcomes = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome.unwrap());
    }
    let answered = outcomes.iter().filter(|o| o.is_ok()).count();
    // A minute's allowance (120), plus what refills at 2 a second while the burst runs.
    assert!((120..=126).contains(&answered), "{answered} answered: {outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Ok(()) | Err(Code::ResourceExhausted))), "{outcomes:?}");
    let listed =
        c.bank.list_consents(authed(&home.head, ListConsentsRequest { household_id: home.id.clone() })).await.unwrap();
    assert_eq!(listed.into_inner().consents[0].queries.len(), answered);
    // The burst's reports were committed together (group commit): each answered one has its own
    // audit entry, and the chain still verifies.
    let verified = c.bank.verify_audit_log(authed(&c.admin, VerifyAuditLogRequest {})).await.unwrap().into_inner();
    assert!(verified.intact, "{verified:?}");
    let db = c.sys.database(ServiceName::Bank).await;
    // In distributed mode the bank's database is shared with the tests running beside this one.
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'credit.report' AND details LIKE $1")
            .bind(format!("consent={consent} %"))
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(audited, answered as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_approval_names_only_households_that_consented_to_it() {
    let mut c = county().await;
    let (willing, _) = c.household(1).await;
    let (elsewhere, _) = c.household(2).await;
    let (silent, _) = c.household(3).await;
    let ours = c.lender("盱眙农商银行", 2).await;
    let theirs = c.lender("邮储银行盱眙支行", 1).await;
    c.consent(&willing, &ours.id, Purpose::VillagePreapproval).await;
    c.consent(&elsewhere, &theirs.id, Purpose::VillagePreapproval).await;
    c.consent(&silent, &ours.id, Purpose::LoanApplication).await;

    let request = PreApproveVillageRequest {
        branch_id: ours.branch.clone(),
        village_id: c.village.clone(),
        product_id: ours.product.clone(),
    };
    let answer = c.bank.pre_approve_village(authed(&ours.officers[1], request.clone())).await.unwrap().into_inner();
    assert_eq!(answer.households, 3);
    assert_eq!(answer.tiers.iter().map(|t| (t.tier.as_str(), t.households)).collect::<Vec<_>>(), [("A", 3)]);
    assert_eq!(answer.suggested_total_fen, 3 * 20_000_000);
    assert_eq!(answer.consented.iter().map(|h| h.household_id.as_str()).collect::<Vec<_>>(), [willing.id.as_str()]);
    assert_eq!(answer.consented[0].limit_fen, 20_000_000);

    // The household sees the pre-approval among its queries; the others saw nothing.
    let listed = c
        .bank
        .list_consents(authed(&willing.head, ListConsentsRequest { household_id: willing.id.clone() }))
        .await
        .unwrap();
    assert_eq!(listed.into_inner().consents[0].queries.len(), 1);
    let listed = c
        .bank
        .list_consents(authed(&silent.head, ListConsentsRequest { household_id: silent.id.clone() }))
        .await
        .unwrap();
    assert!(listed.into_inner().consents[0].queries.is_empty());

    // Another bank's officer, and a village the branch does not serve.
    assert_eq!(code(c.bank.pre_approve_village(authed(&theirs.officers[0], request.clone())).await), Code::NotFound);
    let elsewhere_village = PreApproveVillageRequest { village_id: c.other_village.clone(), ..request };
    let status = c.bank.pre_approve_village(authed(&ours.officers[0], elsewhere_village)).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "village_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loan_outcomes_reach_points_and_an_overdue_one_waits_for_the_council() {
    let mut c = county().await;
    let (home, _) = c.household(1).await;
    let lender = c.lender("盱眙农商银行", 1).await;
    let officer = lender.officers[0].clone();
    c.consent(&home, &lender.id, Purpose::PostLoanMonitoring).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let outcome = |kind: LoanEventKind, key: &str| ReportLoanEventRequest {
        household_id: home.id.clone(),
        loan_ref: "XY-2026-0001".into(),
        kind: kind as i32,
        amount_fen: 0,
        occurred_on: today.clone(),
        client_key: key.into(),
        ..Default::default()
    };
    let repaid = c.bank.report_loan_event(authed(&officer, outcome(LoanEventKind::RepaidOnTime, "k-1"))).await.unwrap();
    let again = c.bank.report_loan_event(authed(&officer, outcome(LoanEventKind::RepaidOnTime, "k-1"))).await.unwrap();
    assert_eq!(repaid.get_ref().event.as_ref().unwrap().id, again.get_ref().event.as_ref().unwrap().id);
    let reused = c.bank.report_loan_event(authed(&officer, outcome(LoanEventKind::Overdue, "k-1"))).await.unwrap_err();
    assert_eq!(field_violations(&reused)[0].field, "client_key");
    c.bank.report_loan_event(authed(&officer, outcome(LoanEventKind::Overdue, "k-2"))).await.unwrap();

    // Points: the on-time repayment counts at once (A07, +5); the overdue loan is an A10
    // deduction waiting for the council, the score untouched by it.
    let admin = c.admin.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let request = authed(&admin, ListRecordsRequest { household_id: home.id.clone(), ..Default::default() });
        let records = c.points.list_records(request).await.unwrap().into_inner().records;
        if records.len() == 2 {
            break records;
        }
        assert!(Instant::now() < deadline, "points never recorded the loan outcomes: {records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bonus = records.iter().find(|r| r.rule_code == "A07").unwrap();
    let deduction = records.iter().find(|r| r.rule_code == "A10").unwrap();
    assert_eq!((bonus.status, bonus.points), (RecordStatus::Effective as i32, 5));
    assert_eq!((deduction.status, deduction.points), (RecordStatus::PendingReview as i32, -30));
    let score = authed(&admin, GetScoreRequest { household_id: home.id.clone(), ..Default::default() });
    assert_eq!(c.points.get_score(score).await.unwrap().into_inner().score.unwrap().score, 1005);

    // The council rejects it (the default was not wilful): it never counts.
    let decision = ReviewDecided {
        record_id: deduction.id.clone(),
        household_id: home.id.clone(),
        outcome: ReviewOutcome::Rejected as i32,
        reason: "已还清,非恶意 / repaid, not wilful".into(),
        ..Default::default()
    };
    c.sys.publish("council", &home.id, &decision).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = authed(&admin, ListRecordsRequest { household_id: home.id.clone(), ..Default::default() });
        let records = c.points.list_records(request).await.unwrap().into_inner().records;
        if records.iter().any(|r| r.id == deduction.id && r.status == RecordStatus::Rejected as i32) {
            break;
        }
        assert!(Instant::now() < deadline, "the council's decision never reached points");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let score = authed(&admin, GetScoreRequest { household_id: home.id.clone(), ..Default::default() });
    assert_eq!(c.points.get_score(score).await.unwrap().into_inner().score.unwrap().score, 1005);
}

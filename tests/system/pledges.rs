//! End-to-end tests of the pledges service, in both modes, driven through gRPC: a campaign to
//! full coverage, renewal after a new version, revocation stopping points, who may sign, and bad
//! input.

use std::time::{Duration, Instant};

use crate::common::{self, TestSystem, authed, code, id_number, paper_pledge};
use jiaxin::system::ServiceName;
use jiaxin_kit::error::field_violations;
use jiaxin_proto::{
    identity::{
        AddMemberRequest, CreateAccountRequest, Household, NewResident, OrgNodeKind, RegisterHouseholdRequest,
        Relation, Role, SplitHouseholdRequest, identity_service_client::IdentityServiceClient,
    },
    pledges::{
        AuthoriseSignerRequest, BatchSignPledgesRequest, Channel as SignChannel, Coverage, CreateCampaignRequest,
        GetCampaignRequest, GetCoverageRequest, GetHouseholdPledgeRequest, GetTemplateRequest, ListUnsignedRequest,
        Moment, PledgeState, RevokePledgeRequest, SignPledgeRequest, pledges_service_client::PledgesServiceClient,
    },
    points::{
        GetRecordRequest, GetScoreRequest, PledgeStatus, RecordInput, RecordStatus, SubmitRecordRequest,
        points_service_client::PointsServiceClient,
    },
};
use tonic::{Code, transport::Channel};

struct Village {
    sys: TestSystem,
    admin: String,
    identity: IdentityServiceClient<Channel>,
    pledges: PledgesServiceClient<Channel>,
    county: String,
    town: String,
    village: String,
    grid_a: String,
    grid_b: String,
    next: u32,
}

async fn village() -> Village {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    let mut identity = sys.identity().await;
    let county = common::own_scope(&mut identity, &admin).await;
    let town = common::create_node(&mut identity, &admin, &county, OrgNodeKind::Town, "穆店乡", "").await;
    let village = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "龙泉村", "").await;
    let grid_a = common::create_node(&mut identity, &admin, &village, OrgNodeKind::Grid, "第一网格", "").await;
    let grid_b = common::create_node(&mut identity, &admin, &village, OrgNodeKind::Grid, "第二网格", "").await;
    let pledges = PledgesServiceClient::new(sys.channel_to(ServiceName::Pledges).await);
    Village { sys, admin, identity, pledges, county, town, village, grid_a, grid_b, next: 1 }
}

impl Village {
    /// Registers a household (head born 1970) at `address` and waits until pledges has it.
    async fn household(&mut self, grid: &str, address: &str) -> Household {
        let n = self.next;
        self.next += 1;
        let head =
            NewResident { name: format!("户主{n}"), id_number: id_number("320830", "19700101", n), phone: "".into() };
        let request = RegisterHouseholdRequest {
            grid_id: grid.into(),
            address: address.into(),
            head: Some(head),
            ..Default::default()
        };
        let household =
            self.identity.register_household(authed(&self.admin, request)).await.unwrap().into_inner().household;
        let household = household.unwrap();
        common::await_pledges_household(&mut self.pledges, &self.admin, &household.id).await;
        household
    }

    /// Adds a member born on `birth` (YYYYMMDD) and waits until pledges has them.
    async fn member(&mut self, household: &str, birth: &str, relation: Relation) -> String {
        let n = self.next;
        self.next += 1;
        let resident =
            NewResident { name: format!("成员{n}"), id_number: id_number("320830", birth, n), phone: "".into() };
        let request =
            AddMemberRequest { household_id: household.into(), resident: Some(resident), relation: relation as i32 };
        let resident = self.identity.add_member(authed(&self.admin, request)).await.unwrap().into_inner().resident;
        let resident = resident.unwrap().id;
        // Pledges has the member once naming them as signer fails for what they are (a minor, not
        // authorised) rather than for not being a member. (The village's template is published.)
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let probe = paper_pledge(household, &resident, 1);
            let status =
                self.pledges.sign_pledge(authed(&self.admin, probe)).await.expect_err("a new member cannot sign");
            if !field_violations(&status).first().is_some_and(|v| v.message.contains("现有成员")) {
                return resident;
            }
            assert!(Instant::now() < deadline, "pledges never learned of member {resident}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn account(&mut self, role: Role, scope: &str, resident: &str) -> String {
        let username = format!("{}-{}", role.as_str_name().to_lowercase(), uuid::Uuid::new_v4().simple());
        let request = CreateAccountRequest {
            username: username.clone(),
            display_name: "测试账户".into(),
            roles: vec![role as i32],
            org_node_id: scope.into(),
            password: "account-pass-1".into(),
            resident_id: resident.into(),
            ..Default::default()
        };
        self.identity.create_account(authed(&self.admin, request)).await.unwrap();
        self.sys.login(&username, "account-pass-1").await
    }

    async fn coverage(&mut self, node: &str) -> Coverage {
        let request = GetCoverageRequest { org_node_id: node.into() };
        self.pledges.get_coverage(authed(&self.admin, request)).await.unwrap().into_inner().coverage.unwrap()
    }

    /// (households, signed, renewal due, revoked, unsigned) of a node.
    async fn counts(&mut self, node: &str) -> (i64, i64, i64, i64, i64) {
        let c = self.coverage(node).await;
        (c.households, c.signed, c.renewal_due, c.revoked, c.unsigned)
    }

    /// Every unsigned household of a grid as `token` sees it, following page tokens.
    async fn unsigned(&mut self, token: &str, grid: &str, include_revoked: bool) -> Vec<(String, i32)> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = ListUnsignedRequest {
                grid_id: grid.into(),
                include_revoked,
                page_size: 2,
                page_token: page_token.clone(),
            };
            let page = self.pledges.list_unsigned(authed(token, request)).await.unwrap().into_inner();
            all.extend(page.households.into_iter().map(|h| (h.address, h.state)));
            if page.next_page_token.is_empty() {
                return all;
            }
            page_token = page.next_page_token;
        }
    }

    async fn state(&mut self, household: &str) -> i32 {
        let request = GetHouseholdPledgeRequest { household_id: household.into() };
        self.pledges.get_household_pledge(authed(&self.admin, request)).await.unwrap().into_inner().state
    }
}

fn today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_reaches_full_coverage_with_exact_counts_at_every_level() {
    let mut v = village().await;
    // A second village of the same town that has not started: the town's figures include it.
    let other =
        common::create_node(&mut v.identity, &v.admin, &v.town.clone(), OrgNodeKind::Village, "桥东村", "").await;
    let other_grid = common::create_node(&mut v.identity, &v.admin, &other, OrgNodeKind::Grid, "桥东一网格", "").await;
    let template = common::publish_template(&mut v.pledges, &v.admin, &v.village.clone(), false).await;
    assert_eq!(template.version, 1);

    let (grid_a, grid_b) = (v.grid_a.clone(), v.grid_b.clone());
    let mut in_a = Vec::new();
    for address in ["龙泉村一组3号", "龙泉村一组1号", "龙泉村二组7号", "龙泉村一组2号"] {
        in_a.push(v.household(&grid_a, address).await);
    }
    let mut in_b = Vec::new();
    for n in 1..=3 {
        in_b.push(v.household(&grid_b, &format!("龙泉村三组{n}号")).await);
    }
    v.household(&other_grid, "桥东村1号").await;
    assert_eq!(v.counts(&v.village.clone()).await, (7, 0, 0, 0, 7));
    assert_eq!(v.counts(&v.town.clone()).await, (8, 0, 0, 0, 8));

    // The campaign rides on the medical-insurance payment, over this village, running today.
    let campaign = CreateCampaignRequest {
        name: "2027年度医保缴费同步签约".into(),
        moment: Moment::MedicalInsurance as i32,
        org_node_ids: vec![v.village.clone()],
        starts_on: (today() - chrono::Days::new(1)).format("%Y-%m-%d").to_string(),
        ends_on: (today() + chrono::Days::new(30)).format("%Y-%m-%d").to_string(),
    };
    let campaign = v.pledges.create_campaign(authed(&v.admin, campaign)).await.unwrap().into_inner().campaign.unwrap();

    // The grid worker's visit list is door to door, paged, and shrinks as households sign.
    let worker = v.account(Role::GridWorker, &grid_a, "").await;
    let list = v.unsigned(&worker, &grid_a, false).await;
    let addresses: Vec<&str> = list.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(addresses, ["龙泉村一组1号", "龙泉村一组2号", "龙泉村一组3号", "龙泉村二组7号"]);
    for (signed, household) in in_a.iter().enumerate() {
        let mut request = paper_pledge(&household.id, &household.head_resident_id, 1);
        request.campaign_id = campaign.id.clone();
        let answer = v.pledges.sign_pledge(authed(&worker, request)).await.unwrap().into_inner();
        assert!(answer.created);
        assert_eq!(answer.state, PledgeState::Signed as i32);
        let signed = signed as i64 + 1;
        assert_eq!(v.unsigned(&worker, &grid_a, false).await.len() as i64, 4 - signed);
        assert_eq!(v.counts(&grid_a).await, (4, signed, 0, 0, 4 - signed));
        assert_eq!(v.counts(&v.village.clone()).await, (7, signed, 0, 0, 7 - signed));
        assert_eq!(v.counts(&v.town.clone()).await, (8, signed, 0, 0, 8 - signed));
        assert_eq!(v.counts(&v.county.clone()).await, (8, signed, 0, 0, 8 - signed));
    }
    // Signing twice changes nothing.
    let again = paper_pledge(&in_a[0].id, &in_a[0].head_resident_id, 1);
    assert!(!v.pledges.sign_pledge(authed(&worker, again)).await.unwrap().into_inner().created);
    assert_eq!(v.counts(&grid_a).await, (4, 4, 0, 0, 0));

    // 重新承诺 (as a credit repair asks): a fresh form of the version in force is a renewal —
    // once per form, and never dated before the pledge it renews.
    let (household, head) = (in_a[1].id.clone(), in_a[1].head_resident_id.clone());
    let mut renewal = paper_pledge(&household, &head, 1);
    renewal.renewal = true;
    let same_form = v.pledges.sign_pledge(authed(&worker, renewal.clone())).await.unwrap().into_inner();
    assert!(!same_form.created, "the form already in force, entered again");
    renewal.scan_reference = format!("scan:{household}/renewal.pdf");
    let mut backdated = renewal.clone();
    backdated.signed_at = Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 86_400, nanos: 0 });
    let status = v.pledges.sign_pledge(authed(&worker, backdated)).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "signed_at");
    let renewed = v.pledges.sign_pledge(authed(&worker, renewal.clone())).await.unwrap().into_inner();
    assert!(renewed.created);
    assert_eq!(renewed.state, PledgeState::Signed as i32);
    assert!(!v.pledges.sign_pledge(authed(&worker, renewal)).await.unwrap().into_inner().created, "entered twice");
    let pledge = GetHouseholdPledgeRequest { household_id: household.clone() };
    let pledge = v.pledges.get_household_pledge(authed(&worker, pledge)).await.unwrap().into_inner();
    assert_eq!(pledge.history.iter().map(|s| s.template_version).collect::<Vec<_>>(), [1, 1]);
    assert_eq!(pledge.history[0].scan_reference, format!("scan:{household}/renewal.pdf"));
    assert_eq!(v.counts(&grid_a).await, (4, 4, 0, 0, 0), "a renewal moves no count");

    // Grid B's paper forms come in one batch; a form naming a minor fails alone, by field.
    let minor = v.member(&in_b[0].id, "20150601", Relation::Child).await;
    let mut items: Vec<SignPledgeRequest> = in_b.iter().map(|h| paper_pledge(&h.id, &h.head_resident_id, 1)).collect();
    items.push(paper_pledge(&in_b[0].id, &minor, 1));
    for item in &mut items {
        item.campaign_id = campaign.id.clone();
    }
    let batch = v.pledges.batch_sign_pledges(authed(&v.admin, BatchSignPledgesRequest { items })).await.unwrap();
    let batch = batch.into_inner();
    assert_eq!((batch.signed, batch.unchanged, batch.failed), (3, 0, 1), "{:?}", batch.results);
    assert_eq!(batch.results[3].error_field, "signer_resident_id");
    assert!(batch.results[3].error_message.contains("未成年"));
    // A form entered twice is answered as unchanged.
    let twice = BatchSignPledgesRequest { items: vec![paper_pledge(&in_b[1].id, &in_b[1].head_resident_id, 1)] };
    let twice = v.pledges.batch_sign_pledges(authed(&v.admin, twice)).await.unwrap().into_inner();
    assert_eq!((twice.signed, twice.unchanged, twice.failed), (0, 1, 0));

    assert_eq!(v.counts(&v.village.clone()).await, (7, 7, 0, 0, 0));
    assert_eq!(v.coverage(&v.village.clone()).await.coverage_permille, 1000);
    assert_eq!(v.counts(&v.town.clone()).await, (8, 7, 0, 0, 1));
    assert_eq!(v.coverage(&v.town.clone()).await.coverage_permille, 875);
    let town = v.pledges.get_coverage(authed(&v.admin, GetCoverageRequest { org_node_id: v.town.clone() })).await;
    let mut children: Vec<(String, i64)> =
        town.unwrap().into_inner().children.into_iter().map(|c| (c.org_node_id, c.signed)).collect();
    children.sort();
    let mut expected = vec![(v.village.clone(), 7), (other.clone(), 0)];
    expected.sort();
    assert_eq!(children, expected);
    assert!(v.unsigned(&worker, &grid_a, true).await.is_empty());

    let progress = v.pledges.get_campaign(authed(&v.admin, GetCampaignRequest { id: campaign.id.clone() })).await;
    let progress = progress.unwrap().into_inner().progress.unwrap();
    assert_eq!(progress.collected, 7);
    assert!(progress.running);
    assert_eq!(progress.coverage.unwrap().coverage_permille, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_asks_for_renewal_and_revocation_stops_points_accrual() {
    let mut v = village().await;
    let village_id = v.village.clone();
    common::publish_template(&mut v.pledges, &v.admin, &village_id, false).await;
    let grid = v.grid_a.clone();
    let first = v.household(&grid, "龙泉村一组1号").await;
    let second = v.household(&grid, "龙泉村一组2号").await;
    let mut points = PointsServiceClient::new(v.sys.channel_to(ServiceName::Points).await);
    let worker = v.account(Role::GridWorker, &grid, "").await;

    // A record for a household that has not signed is held, and counts once it signs.
    let record = |key: &str, household: &str| SubmitRecordRequest {
        record: Some(RecordInput {
            request_id: key.into(),
            household_id: household.into(),
            rule_code: "A01".into(),
            occurred_at: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 }),
            evidence: vec!["photo:meeting.jpg".into()],
            ..Default::default()
        }),
    };
    common::await_points_household(&mut points, &v.admin, &first.id).await;
    let held = points.submit_record(authed(&worker, record("held-1", &first.id))).await;
    let held = held.unwrap().into_inner().record.unwrap();
    assert_eq!(held.status, RecordStatus::Held as i32);
    v.pledges.sign_pledge(authed(&v.admin, paper_pledge(&first.id, &first.head_resident_id, 1))).await.unwrap();
    v.pledges.sign_pledge(authed(&v.admin, paper_pledge(&second.id, &second.head_resident_id, 1))).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = authed(&v.admin, GetRecordRequest { id: held.id.clone() });
        let status = points.get_record(request).await.unwrap().into_inner().record.unwrap().status;
        if status == RecordStatus::Effective as i32 {
            break;
        }
        assert!(Instant::now() < deadline, "the held record was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let score =
        points.get_score(authed(&v.admin, GetScoreRequest { household_id: first.id.clone(), ..Default::default() }));
    let score = score.await.unwrap().into_inner().score.unwrap();
    assert_eq!(score.pledge, PledgeStatus::InForce as i32);
    assert!(score.score > 1000, "the released record counts: {score:?}");

    // Version 2 asks for re-signing: both households are due, still covered, and on the list.
    let v2 = common::publish_template(&mut v.pledges, &v.admin, &village_id, true).await;
    assert_eq!((v2.version, v2.requires_resign), (2, true));
    assert_eq!(v.counts(&grid).await, (2, 0, 2, 0, 0));
    assert_eq!(v.coverage(&grid).await.coverage_permille, 1000);
    assert_eq!(v.state(&first.id).await, PledgeState::RenewalDue as i32);
    let admin = v.admin.clone();
    let due = v.unsigned(&admin, &grid, false).await;
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|(_, state)| *state == PledgeState::RenewalDue as i32));
    let template =
        v.pledges.get_template(authed(&v.admin, GetTemplateRequest { org_node_id: village_id.clone(), version: 0 }));
    let template = template.await.unwrap().into_inner();
    assert_eq!(template.template.unwrap().version, 2);
    assert_eq!(template.versions.len(), 2);

    // Re-signing version 2 renews; the old signature is kept in the history.
    let renewed = v.pledges.sign_pledge(authed(&v.admin, paper_pledge(&first.id, &first.head_resident_id, 2))).await;
    assert!(renewed.unwrap().into_inner().created);
    assert_eq!(v.counts(&grid).await, (2, 1, 1, 0, 0));
    let pledge =
        v.pledges.get_household_pledge(authed(&v.admin, GetHouseholdPledgeRequest { household_id: first.id.clone() }));
    let pledge = pledge.await.unwrap().into_inner();
    assert_eq!(pledge.state, PledgeState::Signed as i32);
    assert_eq!(pledge.history.iter().map(|s| s.template_version).collect::<Vec<_>>(), [2, 1]);

    // Revocation needs a reason; then the household accrues nothing new.
    let no_reason = RevokePledgeRequest { household_id: first.id.clone(), reason: " ".into() };
    let status = v.pledges.revoke_pledge(authed(&v.admin, no_reason)).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "reason");
    let revoke = RevokePledgeRequest { household_id: first.id.clone(), reason: "户主书面申请撤回".into() };
    let revoked = v.pledges.revoke_pledge(authed(&v.admin, revoke)).await.unwrap().into_inner().signature.unwrap();
    assert!(revoked.revoked);
    assert_eq!(v.counts(&grid).await, (2, 0, 1, 1, 0));
    assert_eq!(v.unsigned(&admin, &grid, true).await.len(), 2);
    // Once points has heard of the revocation, it takes no new record for the household.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = GetScoreRequest { household_id: first.id.clone(), ..Default::default() };
        let score = points.get_score(authed(&v.admin, request)).await.unwrap().into_inner().score.unwrap();
        if score.pledge == PledgeStatus::Revoked as i32 {
            break;
        }
        assert!(Instant::now() < deadline, "points never heard of the revocation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = points.submit_record(authed(&worker, record("after-revocation", &first.id))).await;
    assert_eq!(code(refused), Code::FailedPrecondition);
    // Revoking again: nothing in force.
    let again = RevokePledgeRequest { household_id: first.id.clone(), reason: "重复".into() };
    assert_eq!(code(v.pledges.revoke_pledge(authed(&v.admin, again)).await), Code::FailedPrecondition);
    // The other household is unaffected.
    common::await_points_pledge(&mut points, &v.admin, &second.id).await;
    let other = points.submit_record(authed(&worker, record("other-1", &second.id))).await.unwrap();
    assert_eq!(other.into_inner().record.unwrap().status, RecordStatus::Effective as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn residents_sign_only_for_their_own_household_and_only_adults_the_head_authorised() {
    let mut v = village().await;
    let village_id = v.village.clone();
    common::publish_template(&mut v.pledges, &v.admin, &village_id, false).await;
    let grid = v.grid_a.clone();
    let mine = v.household(&grid, "龙泉村一组1号").await;
    let theirs = v.household(&grid, "龙泉村一组2号").await;
    let spouse = v.member(&mine.id, "19750305", Relation::Spouse).await;
    let child = v.member(&mine.id, "20120909", Relation::Child).await;
    let head_token = v.account(Role::Resident, &grid, &mine.head_resident_id).await;
    let spouse_token = v.account(Role::Resident, &grid, &spouse).await;

    let app = |household: &str, signer: &str| SignPledgeRequest {
        household_id: household.into(),
        signer_resident_id: signer.into(),
        template_version: 1,
        channel: SignChannel::App as i32,
        ..Default::default()
    };
    // Another household reads as missing; signing as someone else is refused by field.
    let status = v.pledges.sign_pledge(authed(&head_token, app(&theirs.id, &theirs.head_resident_id))).await;
    assert_eq!(code(status), Code::NotFound);
    let status = v.pledges.sign_pledge(authed(&head_token, app(&mine.id, &spouse))).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "signer_resident_id");
    // The spouse is an adult but not authorised yet; a minor can never sign.
    let status = v.pledges.sign_pledge(authed(&spouse_token, app(&mine.id, &spouse))).await.unwrap_err();
    assert!(field_violations(&status)[0].message.contains("授权"), "{status:?}");
    let status = v.pledges.sign_pledge(authed(&v.admin, paper_pledge(&mine.id, &child, 1))).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "signer_resident_id");
    assert!(field_violations(&status)[0].message.contains("未成年"));
    let authorise_child = AuthoriseSignerRequest { household_id: mine.id.clone(), resident_id: child.clone() };
    let status = v.pledges.authorise_signer(authed(&head_token, authorise_child)).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "resident_id");
    // Only the head authorises; then the spouse signs on the app.
    let authorise = AuthoriseSignerRequest { household_id: mine.id.clone(), resident_id: spouse.clone() };
    assert_eq!(
        code(v.pledges.authorise_signer(authed(&spouse_token, authorise.clone())).await),
        Code::PermissionDenied
    );
    v.pledges.authorise_signer(authed(&head_token, authorise)).await.unwrap();
    let signed = v.pledges.sign_pledge(authed(&spouse_token, app(&mine.id, &spouse))).await.unwrap().into_inner();
    assert_eq!(signed.signature.unwrap().channel, SignChannel::App as i32);
    // Residents see their own pledge, not the neighbours'.
    let own = GetHouseholdPledgeRequest { household_id: mine.id.clone() };
    assert_eq!(
        v.pledges.get_household_pledge(authed(&head_token, own)).await.unwrap().into_inner().state,
        PledgeState::Signed as i32
    );
    let other = GetHouseholdPledgeRequest { household_id: theirs.id.clone() };
    assert_eq!(code(v.pledges.get_household_pledge(authed(&head_token, other)).await), Code::NotFound);
    // Coverage and visit lists are for cadres and grid workers.
    let coverage = GetCoverageRequest { org_node_id: grid.clone() };
    assert_eq!(code(v.pledges.get_coverage(authed(&head_token, coverage)).await), Code::PermissionDenied);
    // A grid worker of another grid sees neither the households nor the list.
    let other_worker = v.account(Role::GridWorker, &v.grid_b.clone(), "").await;
    let status =
        v.pledges.sign_pledge(authed(&other_worker, paper_pledge(&theirs.id, &theirs.head_resident_id, 1))).await;
    assert_eq!(code(status), Code::NotFound);
    let list = ListUnsignedRequest { grid_id: grid.clone(), ..Default::default() };
    assert_eq!(code(v.pledges.list_unsigned(authed(&other_worker, list)).await), Code::NotFound);
    assert_eq!(v.counts(&grid).await, (2, 1, 0, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_by_field_and_writes_nothing() {
    let mut v = village().await;
    let village_id = v.village.clone();
    let grid = v.grid_a.clone();
    let household = v.household(&grid, "龙泉村一组1号").await;

    // No template yet: nothing to sign.
    let status =
        v.pledges.sign_pledge(authed(&v.admin, paper_pledge(&household.id, &household.head_resident_id, 1))).await;
    assert_eq!(code(status), Code::FailedPrecondition);

    let mut bad = common::pledge_template(&village_id, false);
    bad.kind = 0;
    bad.consent_clause = "".into();
    bad.effective_on = "2026-13-01".into();
    bad.adopted_on = "2099-01-01".into();
    let status = v.pledges.publish_template(authed(&v.admin, bad)).await.unwrap_err();
    let mut fields: Vec<String> = field_violations(&status).into_iter().map(|f| f.field).collect();
    fields.sort();
    assert_eq!(fields, ["adopted_on", "consent_clause", "effective_on", "kind"]);
    let status = v.pledges.publish_template(authed(&v.admin, common::pledge_template(&grid, false))).await;
    assert_eq!(field_violations(&status.unwrap_err())[0].field, "org_node_id");
    let status =
        v.pledges.get_template(authed(&v.admin, GetTemplateRequest { org_node_id: village_id.clone(), version: 0 }));
    assert_eq!(code(status.await), Code::NotFound, "nothing was published");
    common::publish_template(&mut v.pledges, &v.admin, &village_id, false).await;

    let status = v.pledges.sign_pledge(authed(&v.admin, SignPledgeRequest::default())).await.unwrap_err();
    let mut fields: Vec<String> = field_violations(&status).into_iter().map(|f| f.field).collect();
    fields.sort();
    assert_eq!(fields, ["channel", "household_id", "signer_resident_id", "template_version"]);
    let mut no_scan = paper_pledge(&household.id, &household.head_resident_id, 1);
    no_scan.scan_reference.clear();
    let status = v.pledges.sign_pledge(authed(&v.admin, no_scan)).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "scan_reference");
    let mut future = paper_pledge(&household.id, &household.head_resident_id, 1);
    future.signed_at = Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + 86_400, nanos: 0 });
    let status = v.pledges.sign_pledge(authed(&v.admin, future)).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "signed_at");
    let status =
        v.pledges.sign_pledge(authed(&v.admin, paper_pledge(&household.id, &household.head_resident_id, 9))).await;
    assert_eq!(field_violations(&status.unwrap_err())[0].field, "template_version");
    let mut app_by_cadre = paper_pledge(&household.id, &household.head_resident_id, 1);
    app_by_cadre.channel = SignChannel::App as i32;
    let status = v.pledges.sign_pledge(authed(&v.admin, app_by_cadre)).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "channel");
    let mut no_campaign = paper_pledge(&household.id, &household.head_resident_id, 1);
    no_campaign.campaign_id = "no-such-campaign".into();
    let status = v.pledges.sign_pledge(authed(&v.admin, no_campaign)).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "campaign_id");

    let campaign = CreateCampaignRequest {
        name: "".into(),
        moment: 0,
        org_node_ids: vec![],
        starts_on: "2026-12-31".into(),
        ends_on: "2026-12-01".into(),
    };
    let status = v.pledges.create_campaign(authed(&v.admin, campaign)).await.unwrap_err();
    let mut fields: Vec<String> = field_violations(&status).into_iter().map(|f| f.field).collect();
    fields.sort();
    assert_eq!(fields, ["ends_on", "moment", "name", "org_node_ids"]);
    let paging = ListUnsignedRequest { grid_id: grid.clone(), page_token: "!!".into(), ..Default::default() };
    assert_eq!(
        field_violations(&v.pledges.list_unsigned(authed(&v.admin, paging)).await.unwrap_err())[0].field,
        "page_token"
    );

    // Nothing was written by any of it.
    assert_eq!(v.counts(&grid).await, (1, 0, 0, 0, 1));
    assert_eq!(v.state(&household.id).await, PledgeState::Unsigned as i32);
    let history = v
        .pledges
        .get_household_pledge(authed(&v.admin, GetHouseholdPledgeRequest { household_id: household.id.clone() }));
    assert!(history.await.unwrap().into_inner().history.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_off_household_starts_unsigned_and_the_original_keeps_its_pledge() {
    let mut v = village().await;
    let village_id = v.village.clone();
    common::publish_template(&mut v.pledges, &v.admin, &village_id, false).await;
    let grid = v.grid_a.clone();
    let household = v.household(&grid, "龙泉村一组1号").await;
    let son = v.member(&household.id, "19950101", Relation::Child).await;
    v.pledges.sign_pledge(authed(&v.admin, paper_pledge(&household.id, &household.head_resident_id, 1))).await.unwrap();
    assert_eq!(v.counts(&grid).await, (1, 1, 0, 0, 0));

    let split = SplitHouseholdRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        household_id: household.id.clone(),
        resident_ids: vec![son.clone()],
        new_head_resident_id: son.clone(),
        address: "龙泉村一组1号之一".into(),
        ..Default::default()
    };
    let created = v.identity.split_household(authed(&v.admin, split)).await.unwrap().into_inner().created.unwrap();
    common::await_pledges_household(&mut v.pledges, &v.admin, &created.id).await;
    assert_eq!(v.counts(&grid).await, (2, 1, 0, 0, 1));
    assert_eq!(v.state(&household.id).await, PledgeState::Signed as i32);
    assert_eq!(v.state(&created.id).await, PledgeState::Unsigned as i32);
    let admin = v.admin.clone();
    assert_eq!(
        v.unsigned(&admin, &grid, false).await,
        [("龙泉村一组1号之一".to_owned(), PledgeState::Unsigned as i32)]
    );
    // The son heads the new household and signs its own pledge (once his membership arrived).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match v.pledges.sign_pledge(authed(&v.admin, paper_pledge(&created.id, &son, 1))).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::InvalidArgument && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("the new head could not sign: {status:?}"),
        }
    }
    assert_eq!(v.counts(&grid).await, (2, 2, 0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_moved_to_another_village_reopens_under_that_village_and_coverage_follows() {
    let mut v = village().await;
    let (town, from) = (v.town.clone(), v.village.clone());
    let to = common::create_node(&mut v.identity, &v.admin, &town, OrgNodeKind::Village, "桥东村", "").await;
    common::publish_template(&mut v.pledges, &v.admin, &from, false).await;
    common::publish_template(&mut v.pledges, &v.admin, &to, false).await;
    let grid = v.grid_a.clone();
    let household = v.household(&grid, "龙泉村一组1号").await;
    v.pledges.sign_pledge(authed(&v.admin, paper_pledge(&household.id, &household.head_resident_id, 1))).await.unwrap();
    assert_eq!(v.counts(&from).await, (1, 1, 0, 0, 0));

    let request = jiaxin_proto::identity::MoveOrgNodeRequest { id: grid.clone(), new_parent_id: to.clone() };
    v.identity.move_org_node(authed(&v.admin, request)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while v.counts(&to).await.0 != 1 {
        assert!(Instant::now() < deadline, "coverage never followed the grid");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(v.counts(&from).await, (0, 0, 0, 0, 0));
    assert_eq!(v.counts(&to).await, (1, 0, 0, 0, 1));
    assert_eq!(v.counts(&grid).await, (1, 0, 0, 0, 1));
    assert_eq!(v.counts(&town).await, (1, 0, 0, 0, 1));
    assert_eq!(v.state(&household.id).await, PledgeState::Unsigned as i32);
    // Signing the new village's rules covers it there; the old signature gave way.
    v.pledges.sign_pledge(authed(&v.admin, paper_pledge(&household.id, &household.head_resident_id, 1))).await.unwrap();
    assert_eq!(v.counts(&town).await, (1, 1, 0, 0, 0));
    let pledge = GetHouseholdPledgeRequest { household_id: household.id.clone() };
    let history = v.pledges.get_household_pledge(authed(&v.admin, pledge)).await.unwrap().into_inner().history;
    assert_eq!(history.len(), 2);
    assert_eq!(history.iter().filter(|s| !s.revoked).count(), 2, "the first gave way; nothing was revoked");
}

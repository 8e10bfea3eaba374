//! The year a sample county plays through the public gRPC APIs, as its people would: cadres
//! import households and enter paper pledges and records, the village councils review, an
//! agency checks eligibility, the points shop redeems, a bank queries with consent and
//! pre-approves a village. Each step prints what happened, with its figures.

use std::{
    collections::HashMap,
    future::Future,
    str::FromStr,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::{Datelike, NaiveDate};
use jiaxin_proto::{
    bank::{
        Branch, GetCreditReportRequest, GrantConsentRequest, Institution, PreApproveVillageRequest, Product, Purpose,
        SaveBranchRequest, SaveInstitutionRequest, SaveProductRequest, TierLimit,
        bank_service_client::BankServiceClient,
    },
    benefits::{
        BatchCheckEligibilityRequest, Benefit, BenefitKind, EvaluateYearRequest, Provider, ProviderKind,
        PublishHonoursRequest, RedeemRequest, SaveBenefitRequest, SaveProviderRequest, Scene,
        benefits_service_client::BenefitsServiceClient,
    },
    council::{
        CastVoteRequest, Choice, FileObjectionRequest, ListTasksRequest, Member, MemberKind, SaveCouncilRequest,
        SeatMemberRequest, Task, TaskStatus, council_service_client::CouncilServiceClient,
    },
    identity::{
        CreateAccountRequest, CreateOrgNodeRequest, GetCurrentAccountRequest, ImportHouseholdsRequest, ImportOptions,
        ListHouseholdsRequest, LoginRequest, OrgNodeKind, Role, identity_service_client::IdentityServiceClient,
        import_households_request::Part,
    },
    pledges::{
        BatchSignPledgesRequest, Channel as SignChannel, CreateCampaignRequest, GetCoverageRequest, Moment,
        PublishTemplateRequest, SignPledgeRequest, TemplateKind, pledges_service_client::PledgesServiceClient,
    },
    points::{BatchSubmitRecordsRequest, RecordInput, RecordStatus, points_service_client::PointsServiceClient},
};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

use super::county::{Activity, County};
use crate::system::RunningSystem;

mod waiting;

/// The password of every account the demo creates (printed at the end; demo data only).
pub const DEMO_PASSWORD: &str = "jiaxin-demo-2026";
/// The label of the residents' accounts (the heads who object and who repair).
const RESIDENT_LABEL: &str = "居民户主(提出异议、申请信用修复)/ household heads (objection, repair)";
/// How long the story waits for events to reach a service before it gives up.
const PATIENCE: Duration = Duration::from_secs(600);
const BATCH: usize = 5_000;

/// An account the demo made, for the list printed at the end.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DemoAccount {
    pub username: String,
    pub role: String,
}

/// What the story leaves behind: the accounts to explore with.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub households: usize,
    pub seed: u64,
    /// The villages in order: `cadre-3` and `council-3-…` are the third's.
    #[serde(default)]
    pub villages: Vec<String>,
    pub accounts: Vec<DemoAccount>,
    /// How far the story moved the demo's clock ahead (microseconds): a second run serves the
    /// county on the same clock.
    #[serde(default)]
    pub clock_ahead_micros: i64,
}

struct Clients {
    identity: IdentityServiceClient<Channel>,
    pledges: PledgesServiceClient<Channel>,
    points: PointsServiceClient<Channel>,
    council: CouncilServiceClient<Channel>,
    benefits: BenefitsServiceClient<Channel>,
    bank: BankServiceClient<Channel>,
}

impl Clients {
    fn new(channel: &Channel) -> Self {
        const LARGE: usize = 256 << 20;
        Self {
            identity: IdentityServiceClient::new(channel.clone())
                .max_decoding_message_size(LARGE)
                .max_encoding_message_size(LARGE),
            pledges: PledgesServiceClient::new(channel.clone())
                .max_decoding_message_size(LARGE)
                .max_encoding_message_size(LARGE),
            points: PointsServiceClient::new(channel.clone())
                .max_decoding_message_size(LARGE)
                .max_encoding_message_size(LARGE),
            council: CouncilServiceClient::new(channel.clone()).max_decoding_message_size(LARGE),
            benefits: BenefitsServiceClient::new(channel.clone())
                .max_decoding_message_size(LARGE)
                .max_encoding_message_size(LARGE),
            bank: BankServiceClient::new(channel.clone()).max_decoding_message_size(LARGE),
        }
    }
}

fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    // Tokens are ASCII; one that is not is left out, and the call fails UNAUTHENTICATED.
    if let Ok(value) = MetadataValue::from_str(&format!("Bearer {token}")) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// 12,345 — figures as a person reads them.
pub fn thousands(n: impl Into<i128>) -> String {
    let n = n.into();
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn yuan(fen: i64) -> String {
    format!("{} 元", thousands(fen / 100))
}

fn step(title: &str) {
    println!("\n【{title}】");
}

/// Polls `check` until it answers `Some`, or fails naming `what` after [`PATIENCE`].
async fn until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("等待超时 / timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The story's state: who acts, and the ids the system gave to what the county generated.
struct Story<'a> {
    system: &'a RunningSystem,
    clients: Clients,
    admin: String,
    admin_password: String,
    county: County,
    /// Today on the demo's clock (it moves ahead as the story passes days).
    today: NaiveDate,
    /// The year played (honours are for it, even once the clock has passed New Year).
    year: i32,
    seed: u64,
    town_id: String,
    village_ids: Vec<String>,
    grid_ids: Vec<String>,
    /// Per generated household: (household id, head resident id).
    households: Vec<(String, String)>,
    accounts: Vec<DemoAccount>,
    /// The record one household objected to.
    objected: Option<String>,
    /// The household that repairs a minor deduction at the end.
    repairable: Option<waiting::Repairable>,
    /// The loan applicant's consent for the bank's credit report.
    loan_consent: Option<String>,
    /// Which deductions are minor and how long 公示 lasts, as points' catalogue says.
    catalogue: waiting::CatalogueFacts,
}

pub async fn play(
    system: &RunningSystem,
    channel: &Channel,
    admin_password: &str,
    households: usize,
    seed: u64,
) -> anyhow::Result<Outcome> {
    let mut clients = Clients::new(channel);
    let login = LoginRequest { username: "admin".into(), password: admin_password.into() };
    let admin = clients.identity.login(login).await.context("admin login")?.into_inner().access_token;
    let today = jiaxin_kit::time::china_date(jiaxin_kit::time::now_micros()).context("today's date")?;
    let county = County::generate(households, seed, today);
    let catalogue = waiting::CatalogueFacts::read(&clients.points, &admin).await?;
    let mut story = Story {
        system,
        clients,
        admin,
        admin_password: admin_password.to_owned(),
        county,
        today,
        year: today.year(),
        seed,
        town_id: String::new(),
        village_ids: Vec::new(),
        grid_ids: Vec::new(),
        households: Vec::new(),
        accounts: vec![DemoAccount { username: "admin".into(), role: "县级管理员 / county admin".into() }],
        objected: None,
        repairable: None,
        loan_consent: None,
        catalogue,
    };
    story.onboard().await?;
    story.pledge_campaign().await?;
    let cadres = story.cadres().await?;
    let activity = story.county.activity(seed, today);
    let reviews = story.record_the_year(&cadres, &activity).await?;
    story.council_reviews(&reviews).await?;
    story.disclosure_over(&reviews).await?;
    let scores = story.scores().await?;
    story.honours().await?;
    story.benefits(&scores).await?;
    story.bank().await?;
    story.credit_repair().await?;
    let villages = story.county.villages.iter().map(|v| (*v).to_owned()).collect();
    let clock_ahead_micros = jiaxin_kit::time::clock_ahead_micros();
    Ok(Outcome { households, seed, villages, accounts: story.accounts, clock_ahead_micros })
}

impl Story<'_> {
    async fn org_node(&mut self, parent: &str, kind: OrgNodeKind, name: &str) -> anyhow::Result<String> {
        let request = CreateOrgNodeRequest {
            parent_id: parent.into(),
            kind: kind as i32,
            name: name.into(),
            ..Default::default()
        };
        let node = self.clients.identity.create_org_node(authed(&self.admin, request)).await?.into_inner();
        Ok(node.org_node.context("org node")?.id)
    }

    /// Creates an account with the demo password and logs it in.
    async fn account(
        &mut self,
        username: &str,
        role: Role,
        scope: &str,
        resident: &str,
        label: &str,
    ) -> anyhow::Result<(String, String)> {
        let request = CreateAccountRequest {
            request_id: format!("demo-account-{username}"),
            username: username.into(),
            display_name: label.into(),
            roles: vec![role as i32],
            org_node_id: scope.into(),
            password: DEMO_PASSWORD.into(),
            resident_id: resident.into(),
            service_account: false,
        };
        let created = self.clients.identity.create_account(authed(&self.admin, request)).await?.into_inner();
        let id = created.account.context("account")?.id;
        let login = LoginRequest { username: username.into(), password: DEMO_PASSWORD.into() };
        let token = self.clients.identity.login(login).await?.into_inner().access_token;
        self.accounts.push(DemoAccount { username: username.into(), role: label.into() });
        Ok((id, token))
    }

    /// 建档: the org tree, then the households CSV through the import cadres use.
    async fn onboard(&mut self) -> anyhow::Result<()> {
        step("一、建档 / Onboarding");
        let started = Instant::now();
        let me = self.clients.identity.get_current_account(authed(&self.admin, GetCurrentAccountRequest {})).await?;
        let root = me.into_inner().account.context("account")?.org_node_id;
        let town = self.county.town;
        self.town_id = self.org_node(&root, OrgNodeKind::Town, town).await?;
        for v in 0..self.county.villages.len() {
            let (town_id, name) = (self.town_id.clone(), self.county.villages[v]);
            let id = self.org_node(&town_id, OrgNodeKind::Village, name).await?;
            self.village_ids.push(id);
        }
        let mut grid_ids = Vec::with_capacity(self.county.grids.len());
        for g in 0..self.county.grids.len() {
            let grid = self.county.grids[g].clone();
            let village = self.village_ids[grid.village].clone();
            grid_ids.push(self.org_node(&village, OrgNodeKind::Grid, &grid.name).await?);
        }
        let csv = self.county.import_csv(&grid_ids);
        self.grid_ids = grid_ids;
        let mut messages = vec![ImportHouseholdsRequest { part: Some(Part::Options(ImportOptions::default())) }];
        messages.extend(
            csv.as_bytes().chunks(256 * 1024).map(|c| ImportHouseholdsRequest { part: Some(Part::Chunk(c.to_vec())) }),
        );
        let report = self
            .clients
            .identity
            .import_households(authed(&self.admin, tokio_stream::iter(messages)))
            .await?
            .into_inner();
        if !report.committed {
            bail!("导入失败 / the import was refused: {:?}", report.bad_rows.first());
        }
        // The system's ids for the generated households, found by their (unique) address.
        let by_address: HashMap<&str, usize> =
            self.county.households.iter().enumerate().map(|(i, h)| (h.address.as_str(), i)).collect();
        let mut households = vec![(String::new(), String::new()); self.county.households.len()];
        let mut page_token = String::new();
        loop {
            let request = ListHouseholdsRequest { org_node_id: self.town_id.clone(), page_size: 1000, page_token };
            let page = self.clients.identity.list_households(authed(&self.admin, request)).await?.into_inner();
            for h in page.households {
                if let Some(&i) = by_address.get(h.address.as_str()) {
                    households[i] = (h.id, h.head_resident_id);
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        if households.iter().any(|(id, _)| id.is_empty()) {
            bail!("导入后有家庭户未找到 / some imported households were not listed");
        }
        self.households = households;
        println!(
            "  {} 个镇、{} 个村、{} 个网格;{} 户 {} 人(其中未成年人 {} 人),经批量导入建档,用时 {:.1} 秒",
            1,
            self.county.villages.len(),
            self.county.grids.len(),
            thousands(report.households_imported),
            thousands(report.residents_imported),
            thousands(self.county.minors(self.today) as i64),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    async fn coverage(&mut self) -> anyhow::Result<jiaxin_proto::pledges::Coverage> {
        let request = GetCoverageRequest { org_node_id: self.town_id.clone() };
        let response = self.clients.pledges.get_coverage(authed(&self.admin, request)).await?.into_inner();
        response.coverage.context("coverage")
    }

    /// 主动承诺: every village publishes its 村规民约; a campaign at the villagers' meetings
    /// collects every head's signed form, entered by cadres in batches.
    async fn pledge_campaign(&mut self) -> anyhow::Result<()> {
        step("二、主动承诺 / The pledge campaign");
        let expected = self.households.len() as i64;
        let admin = self.admin.clone();
        // Pledges learns of the households from identity's events.
        until("承诺服务知道全部家庭户 / pledges knows every household", || {
            let mut pledges = self.clients.pledges.clone();
            let (admin, town) = (admin.clone(), self.town_id.clone());
            async move {
                let request = GetCoverageRequest { org_node_id: town };
                let coverage = pledges.get_coverage(authed(&admin, request)).await?.into_inner().coverage;
                Ok(coverage.filter(|c| c.households >= expected).map(|_| ()))
            }
        })
        .await?;
        let before = self.coverage().await?;
        for village in self.village_ids.clone() {
            let template = PublishTemplateRequest {
                org_node_id: village,
                kind: TemplateKind::VillageRules as i32,
                title: "村规民约".into(),
                body:
                    "一、遵纪守法,依法信访。二、移风易俗,红白喜事简办。三、爱护环境,垃圾分类。四、邻里和睦,孝老爱亲。"
                        .into(),
                consent_clause: "本户自愿作出以上承诺,同意将履约记录纳入家庭信用档案。".into(),
                effective_on: format!("{}-01-01", self.today.year()),
                adopted_by: "村民代表大会".into(),
                adopted_on: format!("{}-12-20", self.today.year() - 1),
                requires_resign: false,
            };
            self.clients.pledges.publish_template(authed(&admin, template)).await?;
        }
        let campaign = CreateCampaignRequest {
            name: format!("{}年{}全域承诺", self.today.year(), self.county.town),
            moment: Moment::VillagersMeeting as i32,
            org_node_ids: self.village_ids.clone(),
            starts_on: self.today.format("%Y-%m-%d").to_string(),
            ends_on: (self.today + chrono::Days::new(30)).format("%Y-%m-%d").to_string(),
        };
        let campaign = self.clients.pledges.create_campaign(authed(&admin, campaign)).await?.into_inner();
        let campaign_id = campaign.campaign.context("campaign")?.id;
        let started = Instant::now();
        let items: Vec<SignPledgeRequest> = self
            .households
            .iter()
            .enumerate()
            .map(|(i, (household, head))| SignPledgeRequest {
                household_id: household.clone(),
                signer_resident_id: head.clone(),
                template_version: 1,
                channel: SignChannel::Paper as i32,
                scan_reference: format!("scan:pledge/{i}.pdf"),
                campaign_id: campaign_id.clone(),
                signed_at: None,
                renewal: false,
            })
            .collect();
        let mut signed = 0;
        for chunk in items.chunks(BATCH) {
            let request = BatchSignPledgesRequest { items: chunk.to_vec() };
            let response = self.clients.pledges.batch_sign_pledges(authed(&admin, request)).await?.into_inner();
            if response.failed > 0 {
                let first = response.results.iter().find(|r| !r.error_code.is_empty());
                bail!("承诺签署失败 / signatures refused: {first:?}");
            }
            signed += response.signed;
        }
        let after = self.coverage().await?;
        println!(
            "  各村发布村规民约;村民大会上 {} 户户主签署承诺书,网格员批量录入,用时 {:.1} 秒",
            thousands(signed),
            started.elapsed().as_secs_f64()
        );
        println!(
            "  承诺覆盖率 / pledge coverage: {:.1}% → {:.1}%({} / {} 户)",
            f64::from(before.coverage_permille) / 10.0,
            f64::from(after.coverage_permille) / 10.0,
            thousands(after.signed),
            thousands(after.households)
        );
        // Points counts the pledges (from pledges' events) before any record arrives: a record
        // for a household whose pledge it has not heard of yet would wait, held.
        self.settle().await?;
        Ok(())
    }

    /// One village cadre per village, who records for its households.
    async fn cadres(&mut self) -> anyhow::Result<Vec<String>> {
        let mut tokens = Vec::new();
        for v in 0..self.village_ids.len() {
            let village = self.village_ids[v].clone();
            let (_, token) = self
                .account(
                    &format!("cadre-{}", v + 1),
                    Role::VillageCadre,
                    &village,
                    "",
                    "村干部,每村一位 / village cadre, one per village",
                )
                .await?;
            tokens.push(token);
        }
        Ok(tokens)
    }

    /// 积分记录: a year of what households did, recorded by each village's cadre in batches.
    /// Returns the records that went to the council, by village.
    async fn record_the_year(&mut self, cadres: &[String], activity: &[Activity]) -> anyhow::Result<Vec<Vec<String>>> {
        step("三、积分记录 / A year of records");
        let started = Instant::now();
        let villages = self.village_ids.len();
        let mut by_village: Vec<Vec<RecordInput>> = vec![Vec::new(); villages];
        for (n, a) in activity.iter().enumerate() {
            let household = &self.county.households[a.household];
            let village = self.county.grids[household.grid].village;
            // 10:00 in China that day.
            let at = jiaxin_kit::time::china_midnight(a.occurred_on).context("a date")? / 1_000_000 + 10 * 3600;
            by_village[village].push(RecordInput {
                request_id: format!("demo-{}-{n}", self.seed),
                household_id: self.households[a.household].0.clone(),
                resident_id: String::new(),
                rule_code: a.rule.into(),
                points: a.points,
                occurred_at: Some(prost_types::Timestamp { seconds: at, nanos: 0 }),
                place: household.address.clone(),
                evidence: vec![format!("photo:demo/{n}.jpg")],
                note: String::new(),
            });
        }
        let (mut accepted, mut bonus, mut deduction) = (0usize, 0i64, 0i64);
        let mut reviews = vec![Vec::new(); villages];
        for (v, inputs) in by_village.iter().enumerate() {
            for chunk in inputs.chunks(BATCH) {
                let request = BatchSubmitRecordsRequest { records: chunk.to_vec() };
                let response =
                    self.clients.points.batch_submit_records(authed(&cadres[v], request)).await?.into_inner();
                for result in response.results {
                    let Some(record) = result.record.filter(|_| result.error_code.is_empty()) else {
                        bail!("记录被拒 / a record was refused: {} {}", result.error_field, result.error_message);
                    };
                    accepted += 1;
                    if record.points >= 0 {
                        bonus += record.points
                    } else {
                        deduction += record.points
                    }
                    if record.status == RecordStatus::PendingReview as i32 {
                        reviews[v].push(record.id);
                    }
                }
            }
        }
        let pending: usize = reviews.iter().map(Vec::len).sum();
        println!(
            "  10 位村干部录入 {} 条记录(加分 {} 分,扣分 {} 分),用时 {:.1} 秒",
            thousands(accepted as i64),
            thousands(bonus),
            thousands(-deduction),
            started.elapsed().as_secs_f64()
        );
        println!(
            "  其中 {pending} 条(全部扣分、大额加分和可自报的志愿服务)待村信用议事会审议 / wait for the village credit council"
        );
        Ok(reviews)
    }

    /// 议事会审议: each village seats its credit council; three members vote on every task;
    /// one household objects to its deduction and the council hears it.
    async fn council_reviews(&mut self, reviews: &[Vec<String>]) -> anyhow::Result<()> {
        step("四、信用议事会 / The village credit councils");
        let year = self.year;
        let mut members: Vec<Vec<String>> = Vec::new();
        for v in 0..self.village_ids.len() {
            let village = self.village_ids[v].clone();
            let name = self.county.villages[v];
            let request = SaveCouncilRequest {
                org_node_id: village.clone(),
                name: format!("{name}信用议事会"),
                quorum: 3,
                majority_permille: 501,
                review_days: 7,
                ..Default::default()
            };
            self.clients.council.save_council(authed(&self.admin, request)).await?;
            let mut tokens = Vec::new();
            for (m, kind) in
                [MemberKind::VillageCadre, MemberKind::LocalWorthy, MemberKind::PartyMember].into_iter().enumerate()
            {
                let username = format!("council-{}-{}", v + 1, m + 1);
                let (id, token) = self
                    .account(
                        &username,
                        Role::CouncilMember,
                        &village,
                        "",
                        "村信用议事会成员,每村三位 / council members, three per village",
                    )
                    .await?;
                let member = Member {
                    account_id: id,
                    display_name: format!("{name}议事会成员{}", m + 1),
                    kind: kind as i32,
                    term_from: format!("{year}-01-01"),
                    term_to: format!("{}-12-31", year + 2),
                };
                let request = SeatMemberRequest { org_node_id: village.clone(), member: Some(member) };
                self.clients.council.seat_member(authed(&self.admin, request)).await?;
                tokens.push(token);
            }
            members.push(tokens);
        }
        // Every task the records opened has reached the councils.
        self.settle().await?;
        let started = Instant::now();
        let mut decided = 0;
        for (v, expected) in reviews.iter().enumerate() {
            let tasks = self.open_tasks(v, expected.len()).await?;
            for task in &tasks {
                for token in &members[v] {
                    let vote = CastVoteRequest {
                        task_id: task.id.clone(),
                        choice: Choice::Approve as i32,
                        amended_points: 0,
                        reason: "经核实,情况属实 / verified".into(),
                    };
                    self.clients.council.cast_vote(authed(token, vote)).await?;
                }
                decided += 1;
            }
        }
        println!(
            "  10 个村成立信用议事会(各 3 人,过半数通过);审议 {decided} 项,用时 {:.1} 秒",
            started.elapsed().as_secs_f64()
        );
        let catalogue = &self.catalogue;
        println!(
            "  通过的扣分进入公示期({} 天,严重扣分 {} 天),公示期满才计入积分 / approved deductions are disclosed (公示) before they count",
            catalogue.longest_ordinary_disclosure_days, catalogue.serious_disclosure_days
        );

        // One household objects: its head, with a resident account, files an objection (异议).
        let Some((v, record_id)) =
            reviews.iter().enumerate().find_map(|(v, ids)| ids.first().map(|id| (v, id.clone())))
        else {
            return Ok(());
        };
        let record = self
            .record_until("记录进入公示 / the record is disclosed", &record_id, |r| {
                r.status == RecordStatus::InDisclosure as i32
            })
            .await?;
        self.objected = Some(record_id.clone());
        let index = self.households.iter().position(|(id, _)| *id == record.household_id).context("household")?;
        let (head, grid) = (self.households[index].1.clone(), self.county.households[index].grid);
        let grid_id = self.grid_ids[grid].clone();
        let (_, resident) = self.account("resident-demo", Role::Resident, &grid_id, &head, RESIDENT_LABEL).await?;
        let objection = FileObjectionRequest {
            record_id: record_id.clone(),
            reason: "当天家中办的是简朴的家宴,并非大操大办,有邻居可作证 / it was a simple family meal".into(),
        };
        let objection = self.clients.council.file_objection(authed(&resident, objection)).await?.into_inner();
        let task_id = objection.objection.context("objection")?.task_id;
        // The council hears it and finds the record was wrong: the majority votes to withdraw it.
        for token in &members[v] {
            let vote = CastVoteRequest {
                task_id: task_id.clone(),
                choice: Choice::Reject as i32,
                amended_points: 0,
                reason: "经走访核实,异议成立 / the objection is upheld".into(),
            };
            self.clients.council.cast_vote(authed(token, vote)).await?;
        }
        let after = self
            .record_until("异议处理完毕 / the objection is resolved", &record_id, |r| {
                r.status != RecordStatus::Frozen as i32 && r.status != RecordStatus::InDisclosure as i32
            })
            .await?;
        let outcome = match RecordStatus::try_from(after.status) {
            Ok(RecordStatus::Reversed) => "异议成立,记录撤销,不计分 / upheld: the record is withdrawn".to_owned(),
            Ok(other) => format!("记录状态 / record status: {other:?}"),
            Err(_) => "未知状态 / unknown status".to_owned(),
        };
        println!("  {}一户对扣分提出异议;议事会走访后表决:{outcome}", self.county.villages[v]);
        Ok(())
    }

    /// The village's open tasks, once the council has opened all `expected` of them.
    async fn open_tasks(&mut self, village: usize, expected: usize) -> anyhow::Result<Vec<Task>> {
        let (admin, node) = (self.admin.clone(), self.village_ids[village].clone());
        until("议事会收到全部待审事项 / the council has every task", || {
            let mut council = self.clients.council.clone();
            let (admin, node) = (admin.clone(), node.clone());
            async move {
                let mut tasks = Vec::new();
                let mut page_token = String::new();
                loop {
                    let request = ListTasksRequest {
                        org_node_id: node.clone(),
                        status: TaskStatus::Open as i32,
                        page_size: 500,
                        page_token,
                    };
                    let page = council.list_tasks(authed(&admin, request)).await?.into_inner();
                    tasks.extend(page.tasks);
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    page_token = page.next_page_token;
                }
                Ok((tasks.len() >= expected).then_some(tasks))
            }
        })
        .await
    }

    /// 积分与等级: every household's score and tier now.
    async fn scores(&mut self) -> anyhow::Result<Vec<(i64, String)>> {
        step("五、积分与信用等级 / Scores and tiers");
        let mut scores = Vec::with_capacity(self.households.len());
        for (household, _) in &self.households {
            scores.push(self.score(household).await?);
        }
        let mut tiers: HashMap<&str, usize> = HashMap::new();
        for (_, tier) in &scores {
            *tiers.entry(tier.as_str()).or_default() += 1;
        }
        let average = scores.iter().map(|(s, _)| *s).sum::<i64>() as f64 / scores.len().max(1) as f64;
        let (min, max) = scores.iter().fold((i64::MAX, i64::MIN), |(lo, hi), (s, _)| (lo.min(*s), hi.max(*s)));
        println!("  平均积分 / average score {average:.1}(最低 {min},最高 {max};基础分 1000)");
        let line: Vec<String> = ["AAA", "AA", "A", "B", "C", "D"]
            .iter()
            .map(|t| format!("{t} {}", thousands(*tiers.get(t).unwrap_or(&0) as i64)))
            .collect();
        println!("  信用等级分布 / tiers: {}", line.join(" · "));
        Ok(scores)
    }

    /// 信用户评定: the annual evaluation by the configured criteria, reviewed and published.
    async fn honours(&mut self) -> anyhow::Result<()> {
        step("六、年度信用户、信用村评定 / Annual credit households and villages");
        // Benefits learns the year from points' and the bank's events before it evaluates.
        self.settle().await?;
        let request = EvaluateYearRequest { year: self.year, org_node_id: self.town_id.clone() };
        let draft = self.clients.benefits.evaluate_year(authed(&self.admin, request)).await?.into_inner();
        let draft = draft.evaluation.context("evaluation")?;
        let published = self
            .clients
            .benefits
            .publish_honours(authed(&self.admin, PublishHonoursRequest { evaluation_id: draft.id.clone() }))
            .await?
            .into_inner()
            .evaluation
            .context("evaluation")?;
        println!("  评定标准 / criteria:");
        for criterion in &published.criteria {
            println!("    · {criterion}");
        }
        println!(
            "  信用户 / credit households: {} / {} 户;信用村 / credit villages: {} / {} 个 — 县级管理员审核后公布",
            thousands(published.credit_households),
            thousands(published.households),
            published.credit_villages,
            published.villages
        );
        println!(
            "  其余 {} 户未评上:全年有严重扣分,或等级不足 / the rest had a serious deduction or a lower tier",
            thousands(published.households - published.credit_households)
        );
        Ok(())
    }

    /// Waits until every event written so far has reached every service's read model, so the
    /// evaluation and the bank see the whole year (at a large county's size they lag by minutes).
    async fn settle(&mut self) -> anyhow::Result<()> {
        let system = self.system;
        // Twice, a moment apart: one delivery can write the next service's event between the
        // reads of two outboxes, and a single reading would miss it.
        for _ in 0..2 {
            until("每个服务都收到了全部事件 / every event delivered", || async move {
                Ok((system.undelivered_events().await? == 0).then_some(()))
            })
            .await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }

    /// 信易+: an agency's fast track for AA and above, checked for every household; the points
    /// shop redeems an item for three households.
    async fn benefits(&mut self, scores: &[(i64, String)]) -> anyhow::Result<()> {
        step("七、信易+ 守信激励 / Benefits");
        let town = self.town_id.clone();
        let (agency_id, agency) =
            self.account("agency-1", Role::Agency, &town, "", "县政务服务中心窗口 / agency").await?;
        let provider = Provider {
            name: "盱眙县政务服务中心".into(),
            kind: ProviderKind::Agency as i32,
            org_node_id: town.clone(),
            account_ids: vec![agency_id],
            ..Default::default()
        };
        let provider = self
            .clients
            .benefits
            .save_provider(authed(&self.admin, SaveProviderRequest { provider: Some(provider) }))
            .await?;
        let provider_id = provider.into_inner().provider.context("provider")?.id;
        let fast_track = Benefit {
            name: "建房审批容缺受理".into(),
            description: "AA 级及以上信用户办理农房建设审批时,非关键材料可容缺受理、先行办理。".into(),
            scene: Scene::Approval as i32,
            kind: BenefitKind::FastTrack as i32,
            provider_id,
            org_node_id: town.clone(),
            min_tier: "AA".into(),
            policy_basis: "《盱眙县家庭信用积分结果运用办法》第八条".into(),
            valid_from: format!("{}-01-01", self.today.year()),
            ..Default::default()
        };
        let fast_track = self
            .clients
            .benefits
            .save_benefit(authed(&self.admin, SaveBenefitRequest { benefit: Some(fast_track) }))
            .await?;
        let fast_track = fast_track.into_inner().benefit.context("benefit")?.id;
        let started = Instant::now();
        let mut eligible = 0;
        for chunk in self.households.chunks(BATCH) {
            let request = BatchCheckEligibilityRequest {
                benefit_id: fast_track.clone(),
                household_ids: chunk.iter().map(|(id, _)| id.clone()).collect(),
            };
            let checks =
                self.clients.benefits.batch_check_eligibility(authed(&agency, request)).await?.into_inner().checks;
            eligible += checks.iter().filter(|c| c.eligible).count();
        }
        let expected = scores.iter().filter(|(_, t)| t == "AA" || t == "AAA").count();
        println!(
            "  「建房审批容缺受理」(AA 级及以上):窗口批量核验 {} 户,符合 {} 户(按积分 {} 户),用时 {:.2} 秒,每次核验均记入审计链",
            thousands(self.households.len() as i64),
            thousands(eligible as i64),
            thousands(expected as i64),
            started.elapsed().as_secs_f64()
        );

        let (shop_id, shop) = self.account("shop-1", Role::Agency, &town, "", "积分超市店员 / points shop").await?;
        let merchant = Provider {
            name: format!("{}积分超市", self.county.town),
            kind: ProviderKind::Merchant as i32,
            org_node_id: town.clone(),
            account_ids: vec![shop_id],
            ..Default::default()
        };
        let merchant = self
            .clients
            .benefits
            .save_provider(authed(&self.admin, SaveProviderRequest { provider: Some(merchant) }))
            .await?;
        let item = Benefit {
            name: "洗衣液一瓶".into(),
            description: "积分超市兑换,每户每年限 2 件。".into(),
            scene: Scene::Other as i32,
            kind: BenefitKind::Redemption as i32,
            provider_id: merchant.into_inner().provider.context("provider")?.id,
            org_node_id: town.clone(),
            policy_basis: "《官滩镇积分超市管理办法》".into(),
            valid_from: format!("{}-01-01", self.today.year()),
            cost_points: 10,
            stock: 500,
            per_household_yearly: 2,
            ..Default::default()
        };
        let item =
            self.clients.benefits.save_benefit(authed(&self.admin, SaveBenefitRequest { benefit: Some(item) })).await?;
        let item = item.into_inner().benefit.context("benefit")?.id;
        // The three households with the most points each redeem one.
        let mut ranked: Vec<usize> = (0..scores.len()).collect();
        ranked.sort_by_key(|&i| std::cmp::Reverse(scores[i].0));
        let mut redeemed = 0;
        for &i in ranked.iter().take(3) {
            let household = self.households[i].0.clone();
            let request = RedeemRequest {
                benefit_id: item.clone(),
                household_id: household.clone(),
                quantity: 1,
                client_key: format!("demo-redeem-{household}"),
            };
            self.clients.benefits.redeem(authed(&shop, request)).await.context("redeem")?;
            redeemed += 1;
        }
        println!(
            "  积分超市:{redeemed} 户各用 10 分兑换洗衣液一瓶(消费积分不影响信用分 / spending never lowers the score)"
        );
        Ok(())
    }

    /// 信易贷: a rural commercial bank with a branch serving the town; households of the first
    /// village sign paper consents; an officer queries one report and pre-approves the village.
    async fn bank(&mut self) -> anyhow::Result<()> {
        step("八、信易贷 / Credit");
        let town = self.town_id.clone();
        let (officer_id, officer) =
            self.account("bank-officer-1", Role::BankOfficer, &town, "", "农商行客户经理 / bank officer").await?;
        let institution = Institution {
            name: "江苏盱眙农村商业银行".into(),
            officer_account_ids: vec![officer_id.clone()],
            ..Default::default()
        };
        let institution = self
            .clients
            .bank
            .save_institution(authed(&self.admin, SaveInstitutionRequest { institution: Some(institution) }))
            .await?;
        let institution_id = institution.into_inner().institution.context("institution")?.id;
        let product = Product {
            name: "信易贷·农户信用贷".into(),
            purpose: "生产经营".into(),
            limits: [("AAA", 50_000_000), ("AA", 30_000_000), ("A", 20_000_000), ("B", 5_000_000)]
                .map(|(tier, fen)| TierLimit { tier: tier.into(), limit_fen: fen })
                .to_vec(),
            term_months: 12,
            rate_note: "LPR + 0.35%,信用户优惠 / preferential rate for credit households".into(),
            ..Default::default()
        };
        let product =
            self.clients.bank.save_product(authed(&officer, SaveProductRequest { product: Some(product) })).await?;
        let product_id = product.into_inner().product.context("product")?.id;
        let branch = Branch {
            institution_id: institution_id.clone(),
            name: format!("{}支行", self.county.town),
            village_ids: self.village_ids.clone(),
            officer_account_ids: vec![officer_id],
            ..Default::default()
        };
        let branch =
            self.clients.bank.save_branch(authed(&self.admin, SaveBranchRequest { branch: Some(branch) })).await?;
        let branch_id = branch.into_inner().branch.context("branch")?.id;

        // Four in five households of the first village sign the paper form for 整村授信; one
        // household (the one that repairs a deduction later, when there is one) applies for a
        // loan and consents to the credit report.
        let village = 0;
        let in_village: Vec<usize> = (0..self.households.len())
            .filter(|&i| self.county.grids[self.county.households[i].grid].village == village)
            .collect();
        let mut consents = 0;
        for (n, &i) in in_village.iter().enumerate() {
            if n % 5 == 4 {
                continue;
            }
            self.consent(&officer, &institution_id, i, Purpose::VillagePreapproval).await?;
            consents += 1;
        }
        println!(
            "  {} 户中 {} 户签署纸质授权书(整村授信),由客户经理录入 / paper consents entered by the officer",
            thousands(in_village.len() as i64),
            thousands(consents as i64)
        );
        let applicant = self.repairable.as_ref().map(|r| r.household).or(in_village.first().copied());
        if let Some(applicant) = applicant {
            let consent = self.consent(&officer, &institution_id, applicant, Purpose::LoanApplication).await?;
            let request = authed(&officer, GetCreditReportRequest { consent_id: consent.clone() });
            let report = self.clients.bank.get_credit_report(request).await?.into_inner().report.context("report")?;
            println!(
                "  一户申请贷款并授权查询:信用报告 积分 {} · 等级 {} · 近 24 个月走势 {} 项 · 理由码 {} 个(不含身份证号与他人姓名)— 本次查询记入该户的查询清单与审计链",
                report.score,
                report.tier,
                report.trend.len(),
                report.reasons.len()
            );
            self.loan_consent = Some(consent);
        }
        let started = Instant::now();
        let request = PreApproveVillageRequest { branch_id, village_id: self.village_ids[village].clone(), product_id };
        let answer = self.clients.bank.pre_approve_village(authed(&officer, request)).await?.into_inner();
        let tiers: Vec<String> = answer.tiers.iter().map(|t| format!("{} {}", t.tier, t.households)).collect();
        let consented_total: i64 = answer.consented.iter().map(|h| h.limit_fen).sum();
        println!(
            "  整村授信 / whole-village pre-approval — {}:{} 户({}),建议授信总额 {};",
            self.county.villages[village],
            thousands(answer.households),
            tiers.join(" · "),
            yuan(answer.suggested_total_fen)
        );
        println!(
            "  已签授权的 {} 户列出建议额度,合计 {},用时 {} 毫秒(未授权的家庭只计入汇总)",
            thousands(answer.consented.len() as i64),
            yuan(consented_total),
            started.elapsed().as_millis()
        );
        Ok(())
    }

    /// A paper consent of household `i`'s head for `purpose`, valid a year, entered by the
    /// officer. Returns its id.
    async fn consent(
        &mut self,
        officer: &str,
        institution_id: &str,
        i: usize,
        purpose: Purpose,
    ) -> anyhow::Result<String> {
        let (household_id, head) = self.households[i].clone();
        let request = GrantConsentRequest {
            household_id,
            institution_id: institution_id.to_owned(),
            purpose: purpose as i32,
            valid_until: (self.today + chrono::Days::new(365)).format("%Y-%m-%d").to_string(),
            signer_resident_id: head,
            scan_reference: format!("scan:consent/{i}-{}.pdf", purpose as i32),
        };
        let consent = self.clients.bank.grant_consent(authed(officer, request)).await?.into_inner();
        Ok(consent.consent.context("consent")?.id)
    }
}

//! Property tests against reference models: random sequences of operations run through the real
//! services, in both modes, each answer compared with what a few lines of model say it must be.
//! Each case starts from a household every service already knows (the set-up waits for it), so
//! the steps themselves race no read model.
//!
//! The points shop: redemptions (with reused and conflicting client keys, out-of-stock and
//! over-budget attempts) and cancellations (repeated) of one household, checked after every step
//! against a model of its redeemable balance, each item's stock and each key's first result —
//! and at the end, that the credit score never moved.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::common::{self, EVENTS_WITHIN, TestSystem, authed};
use jiaxin::system::ServiceName;
use jiaxin_proto::{
    benefits::{
        Benefit, BenefitKind, CancelRedemptionRequest, GetBenefitRequest, GetStandingRequest, Provider, ProviderKind,
        RedeemRequest, SaveBenefitRequest, SaveProviderRequest, Scene, benefits_service_client::BenefitsServiceClient,
    },
    identity::{OrgNodeKind, Role, identity_service_client::IdentityServiceClient},
    pledges::pledges_service_client::PledgesServiceClient,
    points::{GetScoreRequest, RecordInput, SubmitRecordRequest, points_service_client::PointsServiceClient},
};
use proptest::{prelude::*, test_runner::TestRunner};
use tonic::{Code, transport::Channel};

/// Redeemable points each case's household earns first.
const EARNED: i64 = 40;
/// Two items: soap costs 1 with unlimited stock; oil costs 3 with 4 in stock.
const COSTS: [i64; 2] = [1, 3];
const STOCK: [Option<i64>; 2] = [None, Some(4)];

#[derive(Debug, Clone)]
enum Op {
    Redeem {
        item: usize,
        quantity: i64,
        key: u8,
    },
    /// Cancels the n-th successful redemption so far (modulo their number), perhaps again.
    Cancel {
        nth: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 1..5i64, 0..6u8).prop_map(|(item, quantity, key)| Op::Redeem { item, quantity, key }),
        1 => any::<usize>().prop_map(|nth| Op::Cancel { nth }),
    ]
}

/// What the shop must answer: how much is left to spend, each item's stock, each key's first
/// successful request, and the redemptions made.
#[derive(Debug, Default)]
struct Model {
    available: i64,
    stock: [Option<i64>; 2],
    keys: HashMap<u8, (usize, i64, usize)>,
    /// (item, quantity, cancelled) per successful redemption, in order.
    redemptions: Vec<(usize, i64, bool)>,
}

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// A new redemption (its index) or the earlier one a key names.
    Redeemed(usize),
    Refused(Code),
}

impl Model {
    fn redeem(&mut self, item: usize, quantity: i64, key: u8) -> Expect {
        if let Some(&(first_item, first_quantity, index)) = self.keys.get(&key) {
            return if (first_item, first_quantity) == (item, quantity) {
                Expect::Redeemed(index)
            } else {
                Expect::Refused(Code::InvalidArgument)
            };
        }
        let points = COSTS[item] * quantity;
        let in_stock = self.stock[item].is_none_or(|left| left >= quantity);
        if points > self.available || !in_stock {
            return Expect::Refused(Code::FailedPrecondition);
        }
        self.available -= points;
        if let Some(left) = &mut self.stock[item] {
            *left -= quantity;
        }
        self.redemptions.push((item, quantity, false));
        self.keys.insert(key, (item, quantity, self.redemptions.len() - 1));
        Expect::Redeemed(self.redemptions.len() - 1)
    }

    /// Cancelling twice refunds once.
    fn cancel(&mut self, index: usize) {
        let (item, quantity, cancelled) = &mut self.redemptions[index];
        if !*cancelled {
            *cancelled = true;
            self.available += COSTS[*item] * *quantity;
            if let Some(left) = &mut self.stock[*item] {
                *left += *quantity;
            }
        }
    }
}

/// The fixed cast: a county with a shop and its two items, a grid worker who records, an admin.
struct Shop {
    sys: TestSystem,
    admin: String,
    identity: IdentityServiceClient<Channel>,
    pledges: PledgesServiceClient<Channel>,
    points: PointsServiceClient<Channel>,
    benefits: BenefitsServiceClient<Channel>,
    grid: String,
    county: String,
    worker: String,
    shopkeeper: String,
    shop: String,
    households: u32,
}

impl Shop {
    async fn open() -> Self {
        let sys = TestSystem::start().await;
        let admin = sys.admin_token().await;
        let mut identity = sys.identity().await;
        let county = common::own_scope(&mut identity, &admin).await;
        let town = common::create_node(&mut identity, &admin, &county, OrgNodeKind::Town, "桂五镇", "").await;
        let village = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "水冲港村", "").await;
        let grid = common::create_node(&mut identity, &admin, &village, OrgNodeKind::Grid, "第一网格", "").await;
        let mut pledges = PledgesServiceClient::new(sys.channel_to(ServiceName::Pledges).await);
        common::publish_template(&mut pledges, &admin, &village, false).await;
        let points = PointsServiceClient::new(sys.channel_to(ServiceName::Points).await);
        let benefits = BenefitsServiceClient::new(sys.channel_to(ServiceName::Benefits).await);
        let mut shop = Shop {
            sys,
            admin,
            identity,
            pledges,
            points,
            benefits,
            grid,
            county,
            worker: String::new(),
            shopkeeper: String::new(),
            shop: String::new(),
            households: 0,
        };
        let grid = shop.grid.clone();
        shop.worker = shop.account(Role::GridWorker, &grid).await.1;
        let county = shop.county.clone();
        let (keeper_id, keeper) = shop.account(Role::Agency, &county).await;
        shop.shopkeeper = keeper;
        let provider = Provider {
            name: "水冲港村积分超市".into(),
            kind: ProviderKind::Merchant as i32,
            org_node_id: county.clone(),
            account_ids: vec![keeper_id],
            ..Default::default()
        };
        // Benefits learns the org tree from identity's events: wait until it knows the county.
        let deadline = Instant::now() + EVENTS_WITHIN;
        shop.shop = loop {
            let request = authed(&shop.admin, SaveProviderRequest { provider: Some(provider.clone()) });
            match shop.benefits.save_provider(request).await {
                Ok(saved) => break saved.into_inner().provider.unwrap().id,
                Err(status) if status.code() == Code::InvalidArgument && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("could not save the shop: {status:?}"),
            }
        };
        shop
    }

    async fn account(&mut self, role: Role, scope: &str) -> (String, String) {
        common::account(&self.sys, &mut self.identity, &self.admin, &[role], scope, "").await
    }

    /// The two items, fresh for each case (so each case starts with full stock).
    async fn items(&mut self) -> [String; 2] {
        let mut ids = Vec::new();
        for (i, name) in ["洗衣皂一块", "食用油一桶"].into_iter().enumerate() {
            let benefit = Benefit {
                name: name.into(),
                description: "积分兑换".into(),
                scene: Scene::Other as i32,
                kind: BenefitKind::Redemption as i32,
                provider_id: self.shop.clone(),
                org_node_id: self.county.clone(),
                policy_basis: "《积分超市管理办法》".into(),
                valid_from: "2020-01-01".into(),
                cost_points: COSTS[i],
                stock: STOCK[i].unwrap_or(0),
                ..Default::default()
            };
            let request = authed(&self.admin, SaveBenefitRequest { benefit: Some(benefit) });
            ids.push(self.benefits.save_benefit(request).await.unwrap().into_inner().benefit.unwrap().id);
        }
        [ids[0].clone(), ids[1].clone()]
    }

    /// A new pledged household that has earned [`EARNED`] redeemable points, once benefits knows.
    async fn household(&mut self) -> String {
        self.households += 1;
        let n = self.households;
        let household = common::register_household(&mut self.identity, &self.admin, &self.grid, n).await;
        common::await_pledges_household(&mut self.pledges, &self.admin, &household.id).await;
        let pledge = common::paper_pledge(&household.id, &household.head_resident_id, 1);
        self.pledges.sign_pledge(authed(&self.admin, pledge)).await.unwrap();
        common::await_points_household(&mut self.points, &self.admin, &household.id).await;
        // 20 + 20 points of two bonuses that need no review (A04, B04: 3–5 each, yearly cap 20).
        let at = prop_time();
        let mut n_record = 0;
        for rule in ["A04", "B04"] {
            for points in [5, 5, 5, 5] {
                n_record += 1;
                let record = RecordInput {
                    request_id: format!("{}-{n_record}", household.id),
                    household_id: household.id.clone(),
                    rule_code: rule.into(),
                    points,
                    occurred_at: Some(at),
                    evidence: vec!["photo:1.jpg".into()],
                    ..Default::default()
                };
                let request = authed(&self.worker, SubmitRecordRequest { record: Some(record) });
                self.points.submit_record(request).await.unwrap();
            }
        }
        let deadline = Instant::now() + EVENTS_WITHIN;
        loop {
            let request = authed(&self.admin, GetStandingRequest { household_id: household.id.clone(), at: None });
            let standing = self.benefits.get_standing(request).await.ok().and_then(|s| s.into_inner().standing);
            if standing.is_some_and(|s| s.redeemable_available == EARNED) {
                return household.id;
            }
            assert!(Instant::now() < deadline, "benefits never saw the household's {EARNED} points");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn play(&mut self, ops: &[Op]) -> Result<(), TestCaseError> {
        let items = self.items().await;
        let household = self.household().await;
        let score = |points: &mut PointsServiceClient<Channel>, admin: &str, id: &str| {
            let request = authed(admin, GetScoreRequest { household_id: id.into(), ..Default::default() });
            let mut points = points.clone();
            async move { points.get_score(request).await.unwrap().into_inner().score.unwrap().score }
        };
        let score_before = score(&mut self.points, &self.admin, &household).await;
        let mut model = Model { available: EARNED, stock: STOCK, ..Default::default() };
        let mut ids: Vec<String> = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Redeem { item, quantity, key } => {
                    let expected = model.redeem(item, quantity, key);
                    let request = RedeemRequest {
                        benefit_id: items[item].clone(),
                        household_id: household.clone(),
                        quantity,
                        client_key: format!("{household}-{key}"),
                    };
                    let answer = self.benefits.redeem(authed(&self.shopkeeper, request)).await;
                    match (expected, answer) {
                        (Expect::Redeemed(index), Ok(response)) => {
                            let id = response.into_inner().redemption.unwrap().id;
                            if index == ids.len() {
                                ids.push(id);
                            } else {
                                prop_assert_eq!(
                                    &ids[index],
                                    &id,
                                    "step {}: a retried key returns the first redemption",
                                    step
                                );
                            }
                        }
                        (Expect::Refused(code), Err(status)) => {
                            prop_assert_eq!(status.code(), code, "step {}: {:?} → {}", step, op, status.message())
                        }
                        (expected, answer) => {
                            return Err(TestCaseError::fail(format!(
                                "step {step}: {op:?} expected {expected:?}, got {answer:?}"
                            )));
                        }
                    }
                }
                Op::Cancel { nth } => {
                    if ids.is_empty() {
                        continue;
                    }
                    let index = nth % ids.len();
                    model.cancel(index);
                    let request = CancelRedemptionRequest { id: ids[index].clone(), reason: "顾客退货".into() };
                    let answer = self.benefits.cancel_redemption(authed(&self.shopkeeper, request)).await;
                    prop_assert!(answer.is_ok(), "step {}: cancel {:?}", step, answer);
                }
            }
            // After every step: the balance and the stock are the model's.
            let request = authed(&self.admin, GetStandingRequest { household_id: household.clone(), at: None });
            let standing = self.benefits.get_standing(request).await.unwrap().into_inner().standing.unwrap();
            prop_assert_eq!(standing.redeemable_available, model.available, "step {}: {:?}", step, op);
            prop_assert_eq!(standing.redeemable_earned, EARNED);
            let request = authed(&self.admin, GetBenefitRequest { id: items[1].clone() });
            let oil = self.benefits.get_benefit(request).await.unwrap().into_inner().benefit.unwrap();
            prop_assert_eq!(Some(oil.stock_left), model.stock[1], "step {}: {:?}", step, op);
        }
        // Spending never moves the credit score.
        prop_assert_eq!(score(&mut self.points, &self.admin, &household).await, score_before);
        Ok(())
    }
}

/// An hour ago, for the records the household earns its points with.
fn prop_time() -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 }
}

#[test]
fn redemptions_and_cancellations_keep_the_balance_and_stock_of_a_reference_model() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let shop = std::cell::RefCell::new(runtime.block_on(Shop::open()));
    // Each case is a new household and new items in the same running system.
    let config =
        ProptestConfig { cases: 12, failure_persistence: None, max_shrink_iters: 64, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let result =
        runner.run(&proptest::collection::vec(op(), 1..30), |ops| runtime.block_on(shop.borrow_mut().play(&ops)));
    runtime.block_on(shop.borrow_mut().sys.stop());
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

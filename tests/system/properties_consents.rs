//! Consents against a reference model: random sequences of grants (three purposes, two banks),
//! revocations (repeated) and credit-report requests (by either bank's officer) for a fresh
//! household per case. After every step the answer must be the model's — a report only under an
//! unrevoked consent for a loan purpose, to the bank it was granted to, and every refusal the same
//! NOT_FOUND as for a consent that does not exist — and at the end the household's consent list
//! must show each consent's state and exactly the reports made under it.

use std::time::{Duration, Instant};

use crate::common::{self, EVENTS_WITHIN, TestSystem, authed};
use jiaxin::system::ServiceName;
use jiaxin_proto::{
    bank::{
        GetCreditReportRequest, GrantConsentRequest, Institution, ListConsentsRequest, Purpose, RevokeConsentRequest,
        SaveInstitutionRequest, bank_service_client::BankServiceClient,
    },
    identity::{OrgNodeKind, Role, identity_service_client::IdentityServiceClient},
};
use proptest::{prelude::*, test_runner::TestRunner};
use tonic::{Code, transport::Channel};

const PURPOSES: [Purpose; 3] = [Purpose::LoanApplication, Purpose::VillagePreapproval, Purpose::PostLoanMonitoring];

#[derive(Debug, Clone)]
enum Op {
    Grant {
        purpose: usize,
        bank: usize,
    },
    /// Revokes the n-th consent so far (modulo their number), perhaps again.
    Revoke {
        nth: usize,
    },
    /// Bank `bank`'s officer asks for a report under the n-th consent.
    Report {
        nth: usize,
        bank: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..3usize, 0..2usize).prop_map(|(purpose, bank)| Op::Grant { purpose, bank }),
        1 => any::<usize>().prop_map(|nth| Op::Revoke { nth }),
        3 => (any::<usize>(), 0..2usize).prop_map(|(nth, bank)| Op::Report { nth, bank }),
    ]
}

/// One consent as the model keeps it.
#[derive(Debug, Clone)]
struct Granted {
    id: String,
    purpose: usize,
    bank: usize,
    revoked: bool,
    reports: usize,
}

impl Granted {
    /// Whether `bank`'s officer gets a credit report under it.
    fn reports_to(&self, bank: usize) -> bool {
        !self.revoked && self.bank == bank && PURPOSES[self.purpose] != Purpose::VillagePreapproval
    }
}

struct Cast {
    sys: TestSystem,
    admin: String,
    identity: IdentityServiceClient<Channel>,
    bank: BankServiceClient<Channel>,
    grid: String,
    county: String,
    households: u32,
}

impl Cast {
    async fn new() -> Self {
        let sys = TestSystem::start().await;
        let admin = sys.admin_token().await;
        let mut identity = sys.identity().await;
        let county = common::own_scope(&mut identity, &admin).await;
        let town = common::create_node(&mut identity, &admin, &county, OrgNodeKind::Town, "官滩镇", "").await;
        let village = common::create_node(&mut identity, &admin, &town, OrgNodeKind::Village, "万山村", "").await;
        let grid = common::create_node(&mut identity, &admin, &village, OrgNodeKind::Grid, "第一网格", "").await;
        let bank = BankServiceClient::new(sys.channel_to(ServiceName::Bank).await);
        Self { sys, admin, identity, bank, grid, county, households: 0 }
    }

    async fn account(&mut self, role: Role, scope: &str, resident: &str) -> (String, String) {
        common::account(&self.sys, &mut self.identity, &self.admin, &[role], scope, resident).await
    }

    /// Two banks, each with an officer of its own (new each case, so no case meets another's
    /// rate limit): (institution ids, officer tokens).
    async fn banks(&mut self) -> ([String; 2], [String; 2]) {
        let mut ids = Vec::new();
        let mut officers = Vec::new();
        for name in ["盱眙农商银行", "邮储银行盱眙支行"] {
            let county = self.county.clone();
            let (officer_id, officer) = self.account(Role::BankOfficer, &county, "").await;
            let institution =
                Institution { name: name.into(), officer_account_ids: vec![officer_id], ..Default::default() };
            let request = authed(&self.admin, SaveInstitutionRequest { institution: Some(institution) });
            ids.push(self.bank.save_institution(request).await.unwrap().into_inner().institution.unwrap().id);
            officers.push(officer);
        }
        ([ids[0].clone(), ids[1].clone()], [officers[0].clone(), officers[1].clone()])
    }

    /// A new household whose head has a resident account, once the bank knows it.
    async fn household(&mut self) -> (String, String) {
        self.households += 1;
        let n = self.households;
        let household = common::register_household(&mut self.identity, &self.admin, &self.grid, n).await;
        let grid = self.grid.clone();
        let (_, head) = self.account(Role::Resident, &grid, &household.head_resident_id).await;
        let deadline = Instant::now() + EVENTS_WITHIN;
        loop {
            let request = authed(&head, ListConsentsRequest { household_id: household.id.clone() });
            if self.bank.list_consents(request).await.is_ok() {
                return (household.id, head);
            }
            assert!(Instant::now() < deadline, "the bank never learned of the household");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn play(&mut self, ops: &[Op]) -> Result<(), TestCaseError> {
        let (banks, officers) = self.banks().await;
        let (household, head) = self.household().await;
        let until = (chrono::Utc::now() + chrono::Duration::days(60)).format("%Y-%m-%d").to_string();
        let mut consents: Vec<Granted> = Vec::new();
        let missing = {
            let request = authed(&officers[0], GetCreditReportRequest { consent_id: "no-such-consent".into() });
            self.bank.get_credit_report(request).await.unwrap_err()
        };
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Grant { purpose, bank } => {
                    let request = GrantConsentRequest {
                        household_id: household.clone(),
                        institution_id: banks[bank].clone(),
                        purpose: PURPOSES[purpose] as i32,
                        valid_until: until.clone(),
                        ..Default::default()
                    };
                    let granted = self.bank.grant_consent(authed(&head, request)).await;
                    prop_assert!(granted.is_ok(), "step {}: {:?} → {:?}", step, op, granted);
                    let id = granted.unwrap().into_inner().consent.unwrap().id;
                    consents.push(Granted { id, purpose, bank, revoked: false, reports: 0 });
                }
                Op::Revoke { nth } if !consents.is_empty() => {
                    let index = nth % consents.len();
                    let consent = &mut consents[index];
                    consent.revoked = true;
                    let request = authed(&head, RevokeConsentRequest { id: consent.id.clone() });
                    let revoked = self.bank.revoke_consent(request).await;
                    prop_assert!(revoked.is_ok(), "step {}: {:?} → {:?}", step, op, revoked);
                }
                Op::Report { nth, bank } if !consents.is_empty() => {
                    let index = nth % consents.len();
                    let consent = &mut consents[index];
                    let request = authed(&officers[bank], GetCreditReportRequest { consent_id: consent.id.clone() });
                    let answer = self.bank.get_credit_report(request).await;
                    if consent.reports_to(bank) {
                        prop_assert!(answer.is_ok(), "step {}: {:?} under {:?} → {:?}", step, op, consent, answer);
                        prop_assert_eq!(answer.unwrap().into_inner().report.unwrap().household_id, household.clone());
                        consent.reports += 1;
                    } else {
                        let denial = answer.expect_err("the model refuses this report");
                        // Refused exactly as a consent that does not exist.
                        prop_assert_eq!(denial.code(), Code::NotFound, "step {}: {:?}", step, op);
                        prop_assert_eq!(denial.message(), missing.message(), "step {}: {:?}", step, op);
                    }
                }
                Op::Revoke { .. } | Op::Report { .. } => {}
            }
        }
        // The household sees every consent's state and exactly the reports made under it.
        let listed = self.bank.list_consents(authed(&head, ListConsentsRequest { household_id: household })).await;
        let listed = listed.unwrap().into_inner().consents;
        prop_assert_eq!(listed.len(), consents.len());
        for consent in &consents {
            let shown = listed.iter().find(|c| c.id == consent.id);
            prop_assert!(shown.is_some(), "consent {:?} not listed", consent);
            let shown = shown.unwrap();
            prop_assert_eq!(shown.revoked_at.is_some(), consent.revoked, "{:?}", consent);
            prop_assert_eq!(shown.queries.len(), consent.reports, "{:?}", consent);
        }
        Ok(())
    }
}

#[test]
fn consents_grant_revoke_and_report_as_a_reference_model_says() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cast = std::cell::RefCell::new(runtime.block_on(Cast::new()));
    let config =
        ProptestConfig { cases: 10, failure_persistence: None, max_shrink_iters: 64, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let result =
        runner.run(&proptest::collection::vec(op(), 1..30), |ops| runtime.block_on(cast.borrow_mut().play(&ops)));
    runtime.block_on(cast.borrow_mut().sys.stop());
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

//! The days a county waits through, played in seconds: the demo moves the process's clock (see
//! `jiaxin_kit::time`) past the 公示 period, so the year's reviewed records count, and past the
//! wait before a credit repair, so one household repairs a minor deduction and the bank's next
//! report shows it.

use std::collections::HashSet;

use anyhow::{Context, bail};
use jiaxin_kit::time::{DAY_MICROS, china_date, clock_ahead_micros, from_timestamp, now_micros, set_clock_ahead};
use jiaxin_proto::{
    bank::GetCreditReportRequest,
    council::{ApplyRepairRequest, CastVoteRequest, Choice},
    identity::{LoginRequest, Role},
    pledges::{Channel as SignChannel, GetHouseholdPledgeRequest, SignPledgeRequest},
    points::{
        GetRecordRequest, GetScoreRequest, ListRulesRequest, Record, RecordStatus, Severity,
        points_service_client::PointsServiceClient,
    },
};
use tonic::transport::Channel;

use super::{DEMO_PASSWORD, PATIENCE, RESIDENT_LABEL, Story, authed, step, thousands, until};

/// The wait before a minor deduction may be repaired (the councils' default), counted from the
/// day it took effect.
const MINOR_REPAIR_WAIT_DAYS: u64 = 30;

/// What the story needs to know of the catalogue, read from points rather than restated here.
pub(super) struct CatalogueFacts {
    /// Minor deductions: the ones a household can repair after a month.
    pub minor_faults: HashSet<String>,
    /// The longest 公示 of any rule that is not a serious deduction.
    pub longest_ordinary_disclosure_days: u64,
    /// The longest 公示 of a serious deduction.
    pub serious_disclosure_days: u64,
}

impl CatalogueFacts {
    /// Reads the catalogue from points once, when the story starts.
    pub(super) async fn read(points: &PointsServiceClient<Channel>, admin: &str) -> anyhow::Result<Self> {
        let request = authed(admin, ListRulesRequest::default());
        let rules = points.clone().list_rules(request).await.context("list rules")?.into_inner().rules;
        let minor_faults =
            rules.iter().filter(|r| r.severity == Severity::Minor as i32).map(|r| r.code.clone()).collect();
        let longest_disclosure = |serious: bool| {
            let days = rules
                .iter()
                .filter(|r| (r.severity == Severity::Serious as i32) == serious)
                .map(|r| r.disclosure_days)
                .max()
                .unwrap_or(0);
            u64::try_from(days).context("disclosure_days")
        };
        Ok(Self {
            minor_faults,
            longest_ordinary_disclosure_days: longest_disclosure(false)?,
            serious_disclosure_days: longest_disclosure(true)?,
        })
    }
}

/// The household that repairs a minor deduction at the end of the story (the bank's loan
/// applicant, so its next report shows the repair).
pub(super) struct Repairable {
    pub household: usize,
    pub record_id: String,
    pub points: i64,
}

impl Story<'_> {
    /// Moves the demo's clock `days` on, and signs the admin in again (tokens live hours).
    async fn pass_days(&mut self, days: u64, why: &str) -> anyhow::Result<()> {
        let days = i64::try_from(days).context("days")?;
        set_clock_ahead(clock_ahead_micros() + days * DAY_MICROS);
        self.today = china_date(now_micros()).context("today's date")?;
        self.admin = self.login("admin", &self.admin_password.clone()).await?;
        println!(
            "  ⏩ 演示时钟快进 {days} 天({why}),今天是 {} / the demo clock moves {days} days on",
            self.today.format("%Y-%m-%d")
        );
        Ok(())
    }

    pub(super) async fn login(&mut self, username: &str, password: &str) -> anyhow::Result<String> {
        let login = LoginRequest { username: username.into(), password: password.into() };
        let answer = self.clients.identity.login(login).await.with_context(|| format!("{username} login"))?;
        Ok(answer.into_inner().access_token)
    }

    async fn record(&self, id: &str) -> anyhow::Result<Record> {
        let request = authed(&self.admin, GetRecordRequest { id: id.to_owned() });
        self.clients.points.clone().get_record(request).await?.into_inner().record.context("record")
    }

    /// Polls the record `id` until `wanted` holds for it, or fails naming `what`.
    pub(super) async fn record_until(
        &self,
        what: &str,
        id: &str,
        wanted: impl Fn(&Record) -> bool,
    ) -> anyhow::Result<Record> {
        let wanted = &wanted;
        until(what, || async move { Ok(Some(self.record(id).await?).filter(|r| wanted(r))) }).await
    }

    /// 公示期满: the approved records leave disclosure and count. Picks the household whose
    /// minor deduction is repaired at the end.
    pub(super) async fn disclosure_over(&mut self, reviews: &[Vec<String>]) -> anyhow::Result<()> {
        // A day past the longest ordinary 公示: every reviewed record but the serious ones counts.
        self.pass_days(self.catalogue.longest_ordinary_disclosure_days + 1, "公示期满 / disclosure over").await?;
        let mut waiting: Vec<String> = reviews.iter().flatten().cloned().collect();
        let (mut effective, mut disclosed) = (Vec::new(), 0usize);
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            for id in std::mem::take(&mut waiting) {
                let record = self.record(&id).await?;
                let ends = record.effective_from.as_ref().map(from_timestamp).unwrap_or(i64::MAX);
                if record.status != RecordStatus::InDisclosure as i32 {
                    effective.push(record);
                } else if ends <= now_micros() {
                    // Its 公示 is over; points' ticker has yet to count it.
                    waiting.push(id);
                } else {
                    // A serious deduction: its 公示 lasts longer.
                    disclosed += 1;
                }
            }
            if waiting.is_empty() {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("等待超时 / timed out waiting until disclosed records count");
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let (mut counted, mut deducted) = (0usize, 0i64);
        for record in effective.iter().filter(|r| r.status == RecordStatus::Effective as i32) {
            counted += 1;
            if record.points < 0 {
                deducted += -record.points;
            }
        }
        println!(
            "  {} 条经审议的记录公示期满、开始计分(其中扣分 {} 分)/ reviewed records now count",
            thousands(counted as i64),
            thousands(deducted)
        );
        if disclosed > 0 {
            println!(
                "  {disclosed} 条严重扣分的公示期更长({} 天),仍在公示 / serious deductions stay disclosed longer",
                self.catalogue.serious_disclosure_days
            );
        }
        // Points and the read models have applied what the closing disclosures changed.
        self.settle().await?;
        self.repairable = effective
            .iter()
            .filter(|r| {
                r.status == RecordStatus::Effective as i32 && self.catalogue.minor_faults.contains(&r.rule_code)
            })
            .filter(|r| self.objected.as_deref() != Some(r.id.as_str()))
            .find_map(|r| {
                let household = self.households.iter().position(|(id, _)| *id == r.household_id)?;
                Some(Repairable { household, record_id: r.id.clone(), points: r.points })
            });
        Ok(())
    }

    /// 信用修复: a month after its minor deduction took effect, a household that put things
    /// right signs a fresh pledge on the app and applies; the council approves; the deduction
    /// stops counting, and the bank's next report under the same consent shows it.
    pub(super) async fn credit_repair(&mut self) -> anyhow::Result<()> {
        step("九、信用修复 / Credit repair");
        let Some(repairable) = self.repairable.take() else {
            println!("  本年度没有可修复的轻微扣分 / no minor deduction to repair this year");
            return Ok(());
        };
        self.pass_days(MINOR_REPAIR_WAIT_DAYS, "轻微扣分生效满 30 天 / the repair wait").await?;
        let (household_id, head) = self.households[repairable.household].clone();
        let grid = self.county.households[repairable.household].grid;
        let village = self.county.grids[grid].village;
        let before = self.score(&household_id).await?;

        // The head, on the phone: a fresh pledge (重新承诺), then the application.
        let grid_id = self.grid_ids[grid].clone();
        let (_, resident) = self.account("resident-repair", Role::Resident, &grid_id, &head, RESIDENT_LABEL).await?;
        let pledge = GetHouseholdPledgeRequest { household_id: household_id.clone() };
        let pledge = self.clients.pledges.get_household_pledge(authed(&resident, pledge)).await?.into_inner();
        let version = pledge.history.first().context("the household's pledge")?.template_version;
        let fresh = SignPledgeRequest {
            household_id: household_id.clone(),
            signer_resident_id: head.clone(),
            template_version: version,
            channel: SignChannel::App as i32,
            renewal: true,
            ..Default::default()
        };
        let signed = self.clients.pledges.sign_pledge(authed(&resident, fresh)).await?.into_inner();
        if !signed.created {
            bail!("重新承诺未被记录 / the fresh pledge was not recorded");
        }
        // The council hears of the fresh pledge from pledges' events.
        self.settle().await?;
        let application = ApplyRepairRequest {
            record_id: repairable.record_id.clone(),
            statement: "已清理房前屋后并签订门前三包责任书,此后每月参加村环境整治志愿服务".into(),
            evidence: vec!["photo:demo/repair-cleanup.jpg".into(), "doc:demo/three-guarantees.pdf".into()],
        };
        let repair = self.clients.council.apply_repair(authed(&resident, application)).await?.into_inner();
        let task_id = repair.repair.context("repair")?.task_id;
        for m in 1..=3 {
            let member = self.login(&format!("council-{}-{m}", village + 1), DEMO_PASSWORD).await?;
            let vote = CastVoteRequest {
                task_id: task_id.clone(),
                choice: Choice::Approve as i32,
                amended_points: 0,
                reason: "整改到位,同意修复 / put right; repair approved".into(),
            };
            self.clients.council.cast_vote(authed(&member, vote)).await?;
        }
        self.record_until("修复记入积分 / the repair reaches points", &repairable.record_id, |r| {
            r.status == RecordStatus::Reversed as i32
        })
        .await?;
        self.settle().await?;
        let after = self.score(&household_id).await?;
        println!(
            "  {}一户的扣分({} 分)生效满 30 天;户主在手机上重新签署承诺、提交整改材料,议事会 3 人表决通过信用修复",
            self.county.villages[village], -repairable.points
        );
        println!(
            "  修复后 / after the repair: 积分 {} → {},等级 {} → {}(扣分不再计入)",
            before.0, after.0, before.1, after.1
        );
        if let Some(consent) = self.loan_consent.clone() {
            let officer = self.login("bank-officer-1", DEMO_PASSWORD).await?;
            let request = authed(&officer, GetCreditReportRequest { consent_id: consent });
            let report = self.clients.bank.get_credit_report(request).await?.into_inner().report.context("report")?;
            println!(
                "  银行凭同一授权再次查询 / the bank's next report: 积分 {} · 等级 {} — 修复已反映在信用报告中",
                report.score, report.tier
            );
        }
        Ok(())
    }

    /// A household's score and tier now.
    pub(super) async fn score(&self, household_id: &str) -> anyhow::Result<(i64, String)> {
        let request = GetScoreRequest { household_id: household_id.to_owned(), ..Default::default() };
        let score = self.clients.points.clone().get_score(authed(&self.admin, request)).await?.into_inner();
        let score = score.score.context("score")?;
        Ok((score.score, score.tier))
    }
}

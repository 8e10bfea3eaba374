//! The gRPC API: decode, take the caller, call the operation, encode.

use std::sync::Arc;

use jiaxin_kit::{auth::Caller, page::Page};
use jiaxin_proto::points::{points_service_server::PointsService, *};
use tonic::{Request, Response, Status};

use crate::{error::PointsError, ops::Points};

pub struct PointsApi {
    points: Arc<Points>,
}

impl PointsApi {
    pub(crate) fn new(points: Arc<Points>) -> Self {
        Self { points }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Answer<T> {
    Ok(Response::new(value))
}

fn micros(ts: Option<prost_types::Timestamp>) -> Option<i64> {
    ts.as_ref().map(jiaxin_kit::time::from_timestamp)
}

#[tonic::async_trait]
impl PointsService for PointsApi {
    async fn list_rules(&self, request: Request<ListRulesRequest>) -> Answer<ListRulesResponse> {
        Caller::from_request(&request)?;
        let request = request.into_inner();
        ok(ListRulesResponse { rules: self.points.list_rules(request.category, request.include_retired).await? })
    }

    async fn get_rule(&self, request: Request<GetRuleRequest>) -> Answer<GetRuleResponse> {
        Caller::from_request(&request)?;
        ok(GetRuleResponse { rule: Some(self.points.get_rule(&request.into_inner().code).await?) })
    }

    async fn create_rule(&self, request: Request<CreateRuleRequest>) -> Answer<CreateRuleResponse> {
        let caller = Caller::from_request(&request)?;
        let rule = request.into_inner().rule.ok_or_else(|| PointsError::invalid("rule", "必填 / required"))?;
        ok(CreateRuleResponse { rule: Some(self.points.create_rule(&caller, rule).await?) })
    }

    async fn revise_rule(&self, request: Request<ReviseRuleRequest>) -> Answer<ReviseRuleResponse> {
        let caller = Caller::from_request(&request)?;
        let rule = request.into_inner().rule.ok_or_else(|| PointsError::invalid("rule", "必填 / required"))?;
        ok(ReviseRuleResponse { rule: Some(self.points.revise_rule(&caller, rule).await?) })
    }

    async fn retire_rule(&self, request: Request<RetireRuleRequest>) -> Answer<RetireRuleResponse> {
        let caller = Caller::from_request(&request)?;
        ok(RetireRuleResponse { rule: Some(self.points.retire_rule(&caller, &request.into_inner().code).await?) })
    }

    async fn submit_record(&self, request: Request<SubmitRecordRequest>) -> Answer<SubmitRecordResponse> {
        let caller = Caller::from_request(&request)?;
        let input = request.into_inner().record.ok_or_else(|| PointsError::invalid("record", "必填 / required"))?;
        ok(SubmitRecordResponse { record: Some(self.points.submit(&caller, input).await?) })
    }

    async fn batch_submit_records(
        &self,
        request: Request<BatchSubmitRecordsRequest>,
    ) -> Answer<BatchSubmitRecordsResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.points.batch_submit(&caller, request.into_inner().records).await?)
    }

    async fn get_record(&self, request: Request<GetRecordRequest>) -> Answer<GetRecordResponse> {
        let caller = Caller::from_request(&request)?;
        ok(GetRecordResponse { record: Some(self.points.get_record(&caller, &request.into_inner().id).await?) })
    }

    async fn list_records(&self, request: Request<ListRecordsRequest>) -> Answer<ListRecordsResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let page = Page::parse(request.page_size, &request.page_token).map_err(PointsError::from)?;
        ok(self.points.list_records(&caller, &request.household_id, page).await?)
    }

    async fn reverse_record(&self, request: Request<ReverseRecordRequest>) -> Answer<ReverseRecordResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        ok(ReverseRecordResponse {
            record: Some(self.points.reverse(&caller, &request.record_id, &request.reason).await?),
        })
    }

    async fn get_score(&self, request: Request<GetScoreRequest>) -> Answer<GetScoreResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        ok(GetScoreResponse {
            score: Some(
                self.points.score(&caller, &request.household_id, &request.resident_id, micros(request.as_of)).await?,
            ),
        })
    }

    async fn explain_score(&self, request: Request<ExplainScoreRequest>) -> Answer<ExplainScoreResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        ok(self.points.explain(&caller, &request.household_id, micros(request.as_of)).await?)
    }

    async fn list_leaderboard(&self, request: Request<ListLeaderboardRequest>) -> Answer<ListLeaderboardResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        ok(ListLeaderboardResponse {
            entries: self.points.leaderboard(&caller, &request.org_node_id, request.limit).await?,
        })
    }

    async fn get_totals(&self, request: Request<GetTotalsRequest>) -> Answer<GetTotalsResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let totals = self.points.totals(&caller, &request.org_node_id, &request.from_month, &request.to_month).await?;
        ok(GetTotalsResponse { totals })
    }

    async fn verify_ledger(&self, request: Request<VerifyLedgerRequest>) -> Answer<VerifyLedgerResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.points.verify(&caller, &request.into_inner().household_id).await?)
    }
}

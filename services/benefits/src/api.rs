//! The gRPC API: decode, take the caller, call the operation, encode.

use std::sync::Arc;

use jiaxin_kit::{auth::Caller, page::Page, time::from_timestamp};
use jiaxin_proto::benefits::{benefits_service_server::BenefitsService, *};
use tonic::{Request, Response, Status};

use crate::{error::BenefitsError, ops::Benefits};

pub struct BenefitsApi {
    benefits: Arc<Benefits>,
}

impl BenefitsApi {
    pub(crate) fn new(benefits: Arc<Benefits>) -> Self {
        Self { benefits }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Answer<T> {
    Ok(Response::new(value))
}

fn page(size: i32, token: &str) -> Result<Page, BenefitsError> {
    Ok(Page::parse(size, token)?)
}

#[tonic::async_trait]
impl BenefitsService for BenefitsApi {
    async fn save_provider(&self, request: Request<SaveProviderRequest>) -> Answer<SaveProviderResponse> {
        let caller = Caller::from_request(&request)?;
        ok(SaveProviderResponse {
            provider: Some(self.benefits.save_provider(&caller, request.into_inner().provider).await?),
        })
    }

    async fn save_benefit(&self, request: Request<SaveBenefitRequest>) -> Answer<SaveBenefitResponse> {
        let caller = Caller::from_request(&request)?;
        ok(SaveBenefitResponse {
            benefit: Some(self.benefits.save_benefit(&caller, request.into_inner().benefit).await?),
        })
    }

    async fn get_benefit(&self, request: Request<GetBenefitRequest>) -> Answer<GetBenefitResponse> {
        let caller = Caller::from_request(&request)?;
        ok(GetBenefitResponse { benefit: Some(self.benefits.get_benefit(&caller, &request.into_inner().id).await?) })
    }

    async fn list_benefits(&self, request: Request<ListBenefitsRequest>) -> Answer<ListBenefitsResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let page = page(r.page_size, &r.page_token)?;
        ok(self.benefits.list_benefits(&caller, r.scene, r.include_retired, page).await?)
    }

    async fn get_standing(&self, request: Request<GetStandingRequest>) -> Answer<GetStandingResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let standing = self.benefits.standing(&caller, &r.household_id, r.at.as_ref().map(from_timestamp)).await?;
        ok(GetStandingResponse { standing: Some(standing) })
    }

    async fn check_eligibility(&self, request: Request<CheckEligibilityRequest>) -> Answer<CheckEligibilityResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        ok(CheckEligibilityResponse {
            check: Some(self.benefits.check(&caller, &r.benefit_id, &r.household_id).await?),
        })
    }

    async fn batch_check_eligibility(
        &self,
        request: Request<BatchCheckEligibilityRequest>,
    ) -> Answer<BatchCheckEligibilityResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        ok(BatchCheckEligibilityResponse {
            checks: self.benefits.batch_check(&caller, &r.benefit_id, &r.household_ids).await?,
        })
    }

    async fn redeem(&self, request: Request<RedeemRequest>) -> Answer<RedeemResponse> {
        let caller = Caller::from_request(&request)?;
        ok(RedeemResponse { redemption: Some(self.benefits.redeem(&caller, request.into_inner()).await?) })
    }

    async fn cancel_redemption(&self, request: Request<CancelRedemptionRequest>) -> Answer<CancelRedemptionResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        ok(CancelRedemptionResponse {
            redemption: Some(self.benefits.cancel_redemption(&caller, &r.id, &r.reason).await?),
        })
    }

    async fn list_redemptions(&self, request: Request<ListRedemptionsRequest>) -> Answer<ListRedemptionsResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let page = page(r.page_size, &r.page_token)?;
        ok(self.benefits.list_redemptions(&caller, &r.household_id, page).await?)
    }

    async fn evaluate_year(&self, request: Request<EvaluateYearRequest>) -> Answer<EvaluateYearResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        ok(EvaluateYearResponse {
            evaluation: Some(self.benefits.evaluate_year(&caller, r.year, &r.org_node_id).await?),
        })
    }

    async fn publish_honours(&self, request: Request<PublishHonoursRequest>) -> Answer<PublishHonoursResponse> {
        let caller = Caller::from_request(&request)?;
        let id = request.into_inner().evaluation_id;
        ok(PublishHonoursResponse { evaluation: Some(self.benefits.publish_honours(&caller, &id).await?) })
    }

    async fn list_honours(&self, request: Request<ListHonoursRequest>) -> Answer<ListHonoursResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let page = page(r.page_size, &r.page_token)?;
        ok(self.benefits.list_honours(&caller, &r.evaluation_id, r.kind, &r.org_node_id, page).await?)
    }

    async fn get_honour_status(&self, request: Request<GetHonourStatusRequest>) -> Answer<GetHonourStatusResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        ok(self.benefits.honour_status(&caller, r.year, &r.household_id, &r.village_id).await?)
    }

    async fn list_village_reports(
        &self,
        request: Request<ListVillageReportsRequest>,
    ) -> Answer<ListVillageReportsResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        let page = page(r.page_size, &r.page_token)?;
        ok(self.benefits.village_reports(&caller, &r.evaluation_id, &r.org_node_id, page).await?)
    }

    async fn verify_audit_log(&self, request: Request<VerifyAuditLogRequest>) -> Answer<VerifyAuditLogResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.benefits.verify_audit(&caller).await?)
    }
}

//! The gRPC API: decode, take the caller, call the operation, encode.

use std::sync::Arc;

use jiaxin_kit::{auth::Caller, page::Page};
use jiaxin_proto::pledges::{pledges_service_server::PledgesService, *};
use tonic::{Request, Response, Status};

use crate::{error::PledgesError, ops::Pledges};

pub struct PledgesApi {
    pledges: Arc<Pledges>,
}

impl PledgesApi {
    pub(crate) fn new(pledges: Arc<Pledges>) -> Self {
        Self { pledges }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Answer<T> {
    Ok(Response::new(value))
}

#[tonic::async_trait]
impl PledgesService for PledgesApi {
    async fn publish_template(&self, request: Request<PublishTemplateRequest>) -> Answer<PublishTemplateResponse> {
        let caller = Caller::from_request(&request)?;
        let template = self.pledges.publish_template(&caller, request.into_inner()).await?;
        ok(PublishTemplateResponse { template: Some(template) })
    }

    async fn get_template(&self, request: Request<GetTemplateRequest>) -> Answer<GetTemplateResponse> {
        Caller::from_request(&request)?;
        let request = request.into_inner();
        ok(self.pledges.get_template(&request.org_node_id, request.version).await?)
    }

    async fn authorise_signer(&self, request: Request<AuthoriseSignerRequest>) -> Answer<AuthoriseSignerResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        self.pledges.authorise_signer(&caller, &request.household_id, &request.resident_id).await?;
        ok(AuthoriseSignerResponse {})
    }

    async fn sign_pledge(&self, request: Request<SignPledgeRequest>) -> Answer<SignPledgeResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.pledges.sign(&caller, request.into_inner()).await?)
    }

    async fn batch_sign_pledges(&self, request: Request<BatchSignPledgesRequest>) -> Answer<BatchSignPledgesResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.pledges.batch_sign(&caller, request.into_inner().items).await?)
    }

    async fn revoke_pledge(&self, request: Request<RevokePledgeRequest>) -> Answer<RevokePledgeResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let signature = self.pledges.revoke(&caller, &request.household_id, &request.reason).await?;
        ok(RevokePledgeResponse { signature: Some(signature) })
    }

    async fn get_household_pledge(
        &self,
        request: Request<GetHouseholdPledgeRequest>,
    ) -> Answer<GetHouseholdPledgeResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.pledges.household_pledge(&caller, &request.into_inner().household_id).await?)
    }

    async fn create_campaign(&self, request: Request<CreateCampaignRequest>) -> Answer<CreateCampaignResponse> {
        let caller = Caller::from_request(&request)?;
        let campaign = self.pledges.create_campaign(&caller, request.into_inner()).await?;
        ok(CreateCampaignResponse { campaign: Some(campaign) })
    }

    async fn get_campaign(&self, request: Request<GetCampaignRequest>) -> Answer<GetCampaignResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.pledges.get_campaign(&caller, &request.into_inner().id).await?)
    }

    async fn list_campaigns(&self, request: Request<ListCampaignsRequest>) -> Answer<ListCampaignsResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let page = Page::parse(request.page_size, &request.page_token).map_err(PledgesError::from)?;
        ok(self.pledges.list_campaigns(&caller, &request.org_node_id, page).await?)
    }

    async fn get_coverage(&self, request: Request<GetCoverageRequest>) -> Answer<GetCoverageResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.pledges.coverage(&caller, &request.into_inner().org_node_id).await?)
    }

    async fn list_unsigned(&self, request: Request<ListUnsignedRequest>) -> Answer<ListUnsignedResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let page = Page::parse(request.page_size, &request.page_token).map_err(PledgesError::from)?;
        ok(self.pledges.list_unsigned(&caller, &request.grid_id, request.include_revoked, page).await?)
    }
}

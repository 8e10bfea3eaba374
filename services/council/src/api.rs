//! The gRPC API: decode, take the caller, call the operation, encode.

use std::sync::Arc;

use jiaxin_kit::{auth::Caller, page::Page};
use jiaxin_proto::council::{council_service_server::CouncilService, *};
use tonic::{Request, Response, Status};

use crate::{error::CouncilError, ops::Council};

pub struct CouncilApi {
    council: Arc<Council>,
}

impl CouncilApi {
    pub(crate) fn new(council: Arc<Council>) -> Self {
        Self { council }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Answer<T> {
    Ok(Response::new(value))
}

#[tonic::async_trait]
impl CouncilService for CouncilApi {
    async fn save_council(&self, request: Request<SaveCouncilRequest>) -> Answer<SaveCouncilResponse> {
        let caller = Caller::from_request(&request)?;
        ok(SaveCouncilResponse { council: Some(self.council.save_council(&caller, request.into_inner()).await?) })
    }

    async fn get_council(&self, request: Request<GetCouncilRequest>) -> Answer<GetCouncilResponse> {
        let caller = Caller::from_request(&request)?;
        let council = self.council.get_council(&caller, &request.into_inner().org_node_id).await?;
        ok(GetCouncilResponse { council: Some(council) })
    }

    async fn seat_member(&self, request: Request<SeatMemberRequest>) -> Answer<SeatMemberResponse> {
        let caller = Caller::from_request(&request)?;
        ok(SeatMemberResponse { council: Some(self.council.seat_member(&caller, request.into_inner()).await?) })
    }

    async fn list_tasks(&self, request: Request<ListTasksRequest>) -> Answer<ListTasksResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let page = Page::parse(request.page_size, &request.page_token).map_err(CouncilError::from)?;
        ok(self.council.list_tasks(&caller, &request.org_node_id, request.status, page).await?)
    }

    async fn get_task(&self, request: Request<GetTaskRequest>) -> Answer<GetTaskResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.council.get_task(&caller, &request.into_inner().id).await?)
    }

    async fn cast_vote(&self, request: Request<CastVoteRequest>) -> Answer<CastVoteResponse> {
        let caller = Caller::from_request(&request)?;
        ok(CastVoteResponse { task: Some(self.council.cast_vote(&caller, request.into_inner()).await?) })
    }

    async fn list_minutes(&self, request: Request<ListMinutesRequest>) -> Answer<ListMinutesResponse> {
        Caller::from_request(&request)?;
        let request = request.into_inner();
        let page = Page::parse(request.page_size, &request.page_token).map_err(CouncilError::from)?;
        ok(self.council.minutes(&request.org_node_id, page).await?)
    }

    async fn list_disclosures(&self, request: Request<ListDisclosuresRequest>) -> Answer<ListDisclosuresResponse> {
        Caller::from_request(&request)?;
        ok(self.council.disclosures(&request.into_inner().org_node_id).await?)
    }

    async fn file_objection(&self, request: Request<FileObjectionRequest>) -> Answer<FileObjectionResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        let objection = self.council.file_objection(&caller, &request.record_id, &request.reason).await?;
        ok(FileObjectionResponse { objection: Some(objection) })
    }

    async fn list_objections(&self, request: Request<ListObjectionsRequest>) -> Answer<ListObjectionsResponse> {
        let caller = Caller::from_request(&request)?;
        let request = request.into_inner();
        ok(self.council.list_objections(&caller, &request.org_node_id, request.status).await?)
    }

    async fn apply_repair(&self, request: Request<ApplyRepairRequest>) -> Answer<ApplyRepairResponse> {
        let caller = Caller::from_request(&request)?;
        ok(ApplyRepairResponse { repair: Some(self.council.apply_repair(&caller, request.into_inner()).await?) })
    }

    async fn verify_audit_log(&self, request: Request<VerifyAuditLogRequest>) -> Answer<VerifyAuditLogResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.council.verify_audit(&caller).await?)
    }
}

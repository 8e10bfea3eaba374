//! The gRPC API: decode, take the caller, call the operation, encode. No rules live here.

use std::sync::Arc;

use jiaxin_kit::auth::Caller;
use jiaxin_proto::identity::{identity_service_server::IdentityService, *};
use tonic::{Request, Response, Status, Streaming};

use crate::ops::Identity;

pub struct IdentityApi {
    identity: Arc<Identity>,
}

impl IdentityApi {
    pub(crate) fn new(identity: Arc<Identity>) -> Self {
        Self { identity }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Answer<T> {
    Ok(Response::new(value))
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn login(&self, request: Request<LoginRequest>) -> Answer<LoginResponse> {
        ok(self.identity.login(request.into_inner()).await?)
    }

    async fn refresh_token(&self, request: Request<RefreshTokenRequest>) -> Answer<RefreshTokenResponse> {
        ok(self.identity.refresh(&request.into_inner().refresh_token).await?)
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Answer<LogoutResponse> {
        self.identity.logout(&request.into_inner().refresh_token).await?;
        ok(LogoutResponse {})
    }

    async fn get_public_keys(&self, _request: Request<GetPublicKeysRequest>) -> Answer<GetPublicKeysResponse> {
        ok(GetPublicKeysResponse { keys: self.identity.public_keys().await? })
    }

    async fn rotate_signing_key(&self, request: Request<RotateSigningKeyRequest>) -> Answer<RotateSigningKeyResponse> {
        let caller = Caller::from_request(&request)?;
        ok(RotateSigningKeyResponse { key_id: self.identity.rotate_signing_key(&caller).await? })
    }

    async fn get_current_account(
        &self,
        request: Request<GetCurrentAccountRequest>,
    ) -> Answer<GetCurrentAccountResponse> {
        let caller = Caller::from_request(&request)?;
        ok(GetCurrentAccountResponse { account: Some(self.identity.current_account(&caller).await?) })
    }

    async fn create_account(&self, request: Request<CreateAccountRequest>) -> Answer<CreateAccountResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.identity.create_account(&caller, request.into_inner()).await?)
    }

    async fn get_account(&self, request: Request<GetAccountRequest>) -> Answer<GetAccountResponse> {
        let caller = Caller::from_request(&request)?;
        ok(GetAccountResponse { account: Some(self.identity.get_account(&caller, &request.into_inner().id).await?) })
    }

    async fn list_accounts(&self, request: Request<ListAccountsRequest>) -> Answer<ListAccountsResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.identity.list_accounts(&caller, request.into_inner()).await?)
    }

    async fn disable_account(&self, request: Request<DisableAccountRequest>) -> Answer<DisableAccountResponse> {
        let caller = Caller::from_request(&request)?;
        ok(DisableAccountResponse {
            account: Some(self.identity.disable_account(&caller, &request.into_inner().id).await?),
        })
    }

    async fn change_password(&self, request: Request<ChangePasswordRequest>) -> Answer<ChangePasswordResponse> {
        let caller = Caller::from_request(&request)?;
        self.identity.change_password(&caller, request.into_inner()).await?;
        ok(ChangePasswordResponse {})
    }

    async fn create_org_node(&self, request: Request<CreateOrgNodeRequest>) -> Answer<CreateOrgNodeResponse> {
        let caller = Caller::from_request(&request)?;
        ok(CreateOrgNodeResponse {
            org_node: Some(self.identity.create_org_node(&caller, request.into_inner()).await?),
        })
    }

    async fn get_org_node(&self, request: Request<GetOrgNodeRequest>) -> Answer<GetOrgNodeResponse> {
        let caller = Caller::from_request(&request)?;
        ok(GetOrgNodeResponse { org_node: Some(self.identity.get_org_node(&caller, &request.into_inner().id).await?) })
    }

    async fn rename_org_node(&self, request: Request<RenameOrgNodeRequest>) -> Answer<RenameOrgNodeResponse> {
        let caller = Caller::from_request(&request)?;
        ok(RenameOrgNodeResponse {
            org_node: Some(self.identity.rename_org_node(&caller, request.into_inner()).await?),
        })
    }

    async fn move_org_node(&self, request: Request<MoveOrgNodeRequest>) -> Answer<MoveOrgNodeResponse> {
        let caller = Caller::from_request(&request)?;
        ok(MoveOrgNodeResponse { org_node: Some(self.identity.move_org_node(&caller, request.into_inner()).await?) })
    }

    async fn list_org_children(&self, request: Request<ListOrgChildrenRequest>) -> Answer<ListOrgChildrenResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.identity.list_org_children(&caller, request.into_inner()).await?)
    }

    async fn register_household(
        &self,
        request: Request<RegisterHouseholdRequest>,
    ) -> Answer<RegisterHouseholdResponse> {
        let caller = Caller::from_request(&request)?;
        ok(RegisterHouseholdResponse {
            household: Some(self.identity.register_household(&caller, request.into_inner()).await?),
        })
    }

    async fn get_household(&self, request: Request<GetHouseholdRequest>) -> Answer<GetHouseholdResponse> {
        let caller = Caller::from_request(&request)?;
        ok(GetHouseholdResponse {
            household: Some(self.identity.get_household(&caller, &request.into_inner().id).await?),
        })
    }

    async fn list_households(&self, request: Request<ListHouseholdsRequest>) -> Answer<ListHouseholdsResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.identity.list_households(&caller, request.into_inner()).await?)
    }

    async fn add_member(&self, request: Request<AddMemberRequest>) -> Answer<AddMemberResponse> {
        let caller = Caller::from_request(&request)?;
        let (household, resident) = self.identity.add_member(&caller, request.into_inner()).await?;
        ok(AddMemberResponse { household: Some(household), resident: Some(resident) })
    }

    async fn remove_member(&self, request: Request<RemoveMemberRequest>) -> Answer<RemoveMemberResponse> {
        let caller = Caller::from_request(&request)?;
        ok(RemoveMemberResponse { household: Some(self.identity.remove_member(&caller, request.into_inner()).await?) })
    }

    async fn set_household_head(&self, request: Request<SetHouseholdHeadRequest>) -> Answer<SetHouseholdHeadResponse> {
        let caller = Caller::from_request(&request)?;
        ok(SetHouseholdHeadResponse {
            household: Some(self.identity.set_household_head(&caller, request.into_inner()).await?),
        })
    }

    async fn move_member(&self, request: Request<MoveMemberRequest>) -> Answer<MoveMemberResponse> {
        let caller = Caller::from_request(&request)?;
        let (from, to) = self.identity.move_member(&caller, request.into_inner()).await?;
        ok(MoveMemberResponse { from_household: Some(from), to_household: Some(to) })
    }

    async fn split_household(&self, request: Request<SplitHouseholdRequest>) -> Answer<SplitHouseholdResponse> {
        let caller = Caller::from_request(&request)?;
        let (original, created) = self.identity.split_household(&caller, request.into_inner()).await?;
        ok(SplitHouseholdResponse { original: Some(original), created: Some(created) })
    }

    async fn merge_households(&self, request: Request<MergeHouseholdsRequest>) -> Answer<MergeHouseholdsResponse> {
        let caller = Caller::from_request(&request)?;
        ok(MergeHouseholdsResponse {
            household: Some(self.identity.merge_households(&caller, request.into_inner()).await?),
        })
    }

    async fn record_death(&self, request: Request<RecordDeathRequest>) -> Answer<RecordDeathResponse> {
        let caller = Caller::from_request(&request)?;
        ok(RecordDeathResponse { resident: Some(self.identity.record_death(&caller, request.into_inner()).await?) })
    }

    async fn get_resident(&self, request: Request<GetResidentRequest>) -> Answer<GetResidentResponse> {
        let caller = Caller::from_request(&request)?;
        ok(GetResidentResponse { resident: Some(self.identity.get_resident(&caller, &request.into_inner().id).await?) })
    }

    async fn find_resident(&self, request: Request<FindResidentRequest>) -> Answer<FindResidentResponse> {
        let caller = Caller::from_request(&request)?;
        ok(FindResidentResponse {
            resident: Some(self.identity.find_resident(&caller, &request.into_inner().id_number).await?),
        })
    }

    async fn list_membership_history(
        &self,
        request: Request<ListMembershipHistoryRequest>,
    ) -> Answer<ListMembershipHistoryResponse> {
        let caller = Caller::from_request(&request)?;
        ok(ListMembershipHistoryResponse {
            entries: self.identity.membership_history(&caller, request.into_inner()).await?,
        })
    }

    async fn import_households(
        &self,
        request: Request<Streaming<ImportHouseholdsRequest>>,
    ) -> Answer<ImportHouseholdsResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.identity.import_households(&caller, request.into_inner()).await?)
    }
}

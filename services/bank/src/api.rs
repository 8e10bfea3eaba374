//! The gRPC API: decode, take the caller, call the operation, encode.

use std::sync::Arc;

use jiaxin_kit::auth::Caller;
use jiaxin_proto::bank::{bank_service_server::BankService, *};
use tonic::{Request, Response, Status};

use crate::ops::Bank;

pub struct BankApi {
    bank: Arc<Bank>,
}

impl BankApi {
    pub(crate) fn new(bank: Arc<Bank>) -> Self {
        Self { bank }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Answer<T> {
    Ok(Response::new(value))
}

#[tonic::async_trait]
impl BankService for BankApi {
    async fn save_institution(&self, request: Request<SaveInstitutionRequest>) -> Answer<SaveInstitutionResponse> {
        let caller = Caller::from_request(&request)?;
        let institution = self.bank.save_institution(&caller, request.into_inner().institution).await?;
        ok(SaveInstitutionResponse { institution: Some(institution) })
    }

    async fn save_branch(&self, request: Request<SaveBranchRequest>) -> Answer<SaveBranchResponse> {
        let caller = Caller::from_request(&request)?;
        ok(SaveBranchResponse { branch: Some(self.bank.save_branch(&caller, request.into_inner().branch).await?) })
    }

    async fn save_product(&self, request: Request<SaveProductRequest>) -> Answer<SaveProductResponse> {
        let caller = Caller::from_request(&request)?;
        ok(SaveProductResponse { product: Some(self.bank.save_product(&caller, request.into_inner().product).await?) })
    }

    async fn list_products(&self, request: Request<ListProductsRequest>) -> Answer<ListProductsResponse> {
        let caller = Caller::from_request(&request)?;
        ok(ListProductsResponse {
            products: self.bank.list_products(&caller, &request.into_inner().institution_id).await?,
        })
    }

    async fn grant_consent(&self, request: Request<GrantConsentRequest>) -> Answer<GrantConsentResponse> {
        let caller = Caller::from_request(&request)?;
        ok(GrantConsentResponse { consent: Some(self.bank.grant_consent(&caller, request.into_inner()).await?) })
    }

    async fn authorise_member(&self, request: Request<AuthoriseMemberRequest>) -> Answer<AuthoriseMemberResponse> {
        let caller = Caller::from_request(&request)?;
        self.bank.authorise_member(&caller, request.into_inner()).await?;
        ok(AuthoriseMemberResponse {})
    }

    async fn revoke_consent(&self, request: Request<RevokeConsentRequest>) -> Answer<RevokeConsentResponse> {
        let caller = Caller::from_request(&request)?;
        ok(RevokeConsentResponse { consent: Some(self.bank.revoke_consent(&caller, &request.into_inner().id).await?) })
    }

    async fn list_consents(&self, request: Request<ListConsentsRequest>) -> Answer<ListConsentsResponse> {
        let caller = Caller::from_request(&request)?;
        ok(ListConsentsResponse {
            consents: self.bank.list_consents(&caller, &request.into_inner().household_id).await?,
        })
    }

    async fn get_credit_report(&self, request: Request<GetCreditReportRequest>) -> Answer<GetCreditReportResponse> {
        let caller = Caller::from_request(&request)?;
        ok(GetCreditReportResponse {
            report: Some(self.bank.credit_report(&caller, &request.into_inner().consent_id).await?),
        })
    }

    async fn pre_approve_village(
        &self,
        request: Request<PreApproveVillageRequest>,
    ) -> Answer<PreApproveVillageResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.bank.pre_approve(&caller, request.into_inner()).await?)
    }

    async fn report_loan_event(&self, request: Request<ReportLoanEventRequest>) -> Answer<ReportLoanEventResponse> {
        let caller = Caller::from_request(&request)?;
        ok(ReportLoanEventResponse { event: Some(self.bank.report_loan_event(&caller, request.into_inner()).await?) })
    }

    async fn save_business(&self, request: Request<SaveBusinessRequest>) -> Answer<SaveBusinessResponse> {
        let caller = Caller::from_request(&request)?;
        ok(SaveBusinessResponse {
            business: Some(self.bank.save_business(&caller, request.into_inner().business).await?),
        })
    }

    async fn get_business_report(
        &self,
        request: Request<GetBusinessReportRequest>,
    ) -> Answer<GetBusinessReportResponse> {
        let caller = Caller::from_request(&request)?;
        let r = request.into_inner();
        ok(self.bank.business_report(&caller, &r.consent_id, &r.business_id).await?)
    }

    async fn verify_audit_log(&self, request: Request<VerifyAuditLogRequest>) -> Answer<VerifyAuditLogResponse> {
        let caller = Caller::from_request(&request)?;
        ok(self.bank.verify_audit(&caller).await?)
    }
}

//! Benefits' errors and their one mapping to gRPC statuses.

use jiaxin_kit::{
    error::{self, FieldViolation},
    group_commit::GroupCommitError,
    outbox::OutboxError,
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum BenefitsError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    /// Missing, or outside the caller's reach: the two read the same.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("not permitted")]
    PermissionDenied,
    /// The request is well formed but the state refuses it (not enough points, out of stock),
    /// with the reason a person needs.
    #[error("failed precondition: {0}")]
    Precondition(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("outbox: {0}")]
    Outbox(#[from] OutboxError),
    #[error("event: {0}")]
    Envelope(#[from] jiaxin_kit::events::EnvelopeError),
    /// The audit log's group commit failed, or its writer has stopped.
    #[error("audit log: {0}")]
    AuditLog(#[from] GroupCommitError),
    #[error("internal: {0}")]
    Internal(String),
}

impl BenefitsError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        BenefitsError::Invalid(vec![FieldViolation::new(field, message)])
    }
}

impl From<Vec<FieldViolation>> for BenefitsError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        BenefitsError::Invalid(violations)
    }
}

impl From<FieldViolation> for BenefitsError {
    fn from(violation: FieldViolation) -> Self {
        BenefitsError::Invalid(vec![violation])
    }
}

impl From<BenefitsError> for Status {
    fn from(error: BenefitsError) -> Self {
        match error {
            BenefitsError::Invalid(violations) => error::invalid_argument(&violations),
            BenefitsError::NotFound(what) => error::not_found(what),
            BenefitsError::PermissionDenied => Status::permission_denied("无权执行此操作 / not permitted"),
            BenefitsError::Precondition(message) => Status::failed_precondition(message),
            BenefitsError::Storage(e) => error::storage(&e),
            BenefitsError::Outbox(e) => error::internal(&e),
            BenefitsError::Envelope(e) => error::internal(&e),
            BenefitsError::AuditLog(e) => error::group_commit(&e),
            BenefitsError::Internal(message) => {
                tracing::error!(%message, "benefits internal error");
                Status::internal("内部错误 / internal error")
            }
        }
    }
}

pub type Result<T, E = BenefitsError> = std::result::Result<T, E>;

//! Council' errors and their one mapping to gRPC statuses.

use jiaxin_kit::{
    error::{self, FieldViolation},
    outbox::OutboxError,
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum CouncilError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    /// Missing, or outside the caller's scope: the two read the same.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("not permitted")]
    PermissionDenied,
    /// Not permitted, with the reason the person needs (recusal, not serving).
    #[error("not permitted: {0}")]
    Forbidden(&'static str),
    #[error("failed precondition: {0}")]
    Precondition(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("outbox: {0}")]
    Outbox(#[from] OutboxError),
    #[error("event: {0}")]
    Envelope(#[from] jiaxin_kit::events::EnvelopeError),
    #[error("internal: {0}")]
    Internal(String),
}

impl CouncilError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        CouncilError::Invalid(vec![FieldViolation::new(field, message)])
    }
}

impl From<Vec<FieldViolation>> for CouncilError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        CouncilError::Invalid(violations)
    }
}

impl From<FieldViolation> for CouncilError {
    fn from(violation: FieldViolation) -> Self {
        CouncilError::Invalid(vec![violation])
    }
}

impl From<CouncilError> for Status {
    fn from(error: CouncilError) -> Self {
        match error {
            CouncilError::Invalid(violations) => error::invalid_argument(&violations),
            CouncilError::NotFound(what) => error::not_found(what),
            CouncilError::PermissionDenied => Status::permission_denied("无权执行此操作 / not permitted"),
            CouncilError::Forbidden(reason) => Status::permission_denied(reason),
            CouncilError::Precondition(message) => Status::failed_precondition(message),
            CouncilError::Storage(e) => error::storage(&e),
            CouncilError::Outbox(e) => error::internal(&e),
            CouncilError::Envelope(e) => error::internal(&e),
            CouncilError::Internal(message) => {
                tracing::error!(%message, "council internal error");
                Status::internal("内部错误 / internal error")
            }
        }
    }
}

pub type Result<T, E = CouncilError> = std::result::Result<T, E>;

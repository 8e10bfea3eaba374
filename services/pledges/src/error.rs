//! Pledges' errors and their one mapping to gRPC statuses.

use jiaxin_kit::{
    error::{self, FieldViolation},
    outbox::OutboxError,
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum PledgesError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    /// Missing, or outside the caller's scope: the two read the same.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("not permitted")]
    PermissionDenied,
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

impl PledgesError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        PledgesError::Invalid(vec![FieldViolation::new(field, message)])
    }
}

impl From<Vec<FieldViolation>> for PledgesError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        PledgesError::Invalid(violations)
    }
}

impl From<FieldViolation> for PledgesError {
    fn from(violation: FieldViolation) -> Self {
        PledgesError::Invalid(vec![violation])
    }
}

impl From<PledgesError> for Status {
    fn from(error: PledgesError) -> Self {
        match error {
            PledgesError::Invalid(violations) => error::invalid_argument(&violations),
            PledgesError::NotFound(what) => error::not_found(what),
            PledgesError::PermissionDenied => Status::permission_denied("无权执行此操作 / not permitted"),
            PledgesError::Precondition(message) => Status::failed_precondition(message),
            PledgesError::Storage(e) => error::storage(&e),
            PledgesError::Outbox(e) => error::internal(&e),
            PledgesError::Envelope(e) => error::internal(&e),
            PledgesError::Internal(message) => {
                tracing::error!(%message, "pledges internal error");
                Status::internal("内部错误 / internal error")
            }
        }
    }
}

pub type Result<T, E = PledgesError> = std::result::Result<T, E>;

//! Points' errors and their one mapping to gRPC statuses.

use jiaxin_kit::{
    error::{self, FieldViolation},
    outbox::OutboxError,
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum PointsError {
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
    #[error("internal: {0}")]
    Internal(String),
}

impl PointsError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        PointsError::Invalid(vec![FieldViolation::new(field, message)])
    }
}

impl From<Vec<FieldViolation>> for PointsError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        PointsError::Invalid(violations)
    }
}

impl From<FieldViolation> for PointsError {
    fn from(violation: FieldViolation) -> Self {
        PointsError::Invalid(vec![violation])
    }
}

impl From<PointsError> for Status {
    fn from(error: PointsError) -> Self {
        match error {
            PointsError::Invalid(violations) => error::invalid_argument(&violations),
            PointsError::NotFound(what) => error::not_found(what),
            PointsError::PermissionDenied => Status::permission_denied("无权执行此操作 / not permitted"),
            PointsError::Precondition(message) => Status::failed_precondition(message),
            PointsError::Storage(e) => error::storage(&e),
            PointsError::Outbox(e) => error::internal(&e),
            PointsError::Internal(message) => {
                tracing::error!(%message, "points internal error");
                Status::internal("内部错误 / internal error")
            }
        }
    }
}

pub type Result<T, E = PointsError> = std::result::Result<T, E>;

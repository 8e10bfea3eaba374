//! The bank's errors and their one mapping to gRPC statuses.

use jiaxin_kit::{
    error::{self, FieldViolation},
    group_commit::GroupCommitError,
    outbox::OutboxError,
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum BankError {
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
    /// Past the institution's or the officer's rate limit.
    #[error("rate limited: {0}")]
    RateLimited(&'static str),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("outbox: {0}")]
    Outbox(#[from] OutboxError),
    #[error("event: {0}")]
    Envelope(#[from] jiaxin_kit::events::EnvelopeError),
    /// The report journal's batch failed, or the journal has stopped.
    #[error("report journal: {0}")]
    Journal(#[from] GroupCommitError),
    #[error("internal: {0}")]
    Internal(String),
}

impl BankError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        BankError::Invalid(vec![FieldViolation::new(field, message)])
    }
}

impl From<Vec<FieldViolation>> for BankError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        BankError::Invalid(violations)
    }
}

impl From<FieldViolation> for BankError {
    fn from(violation: FieldViolation) -> Self {
        BankError::Invalid(vec![violation])
    }
}

impl From<BankError> for Status {
    fn from(error: BankError) -> Self {
        match error {
            BankError::Invalid(violations) => error::invalid_argument(&violations),
            BankError::NotFound(what) => error::not_found(what),
            BankError::PermissionDenied => Status::permission_denied("无权执行此操作 / not permitted"),
            BankError::Precondition(message) => Status::failed_precondition(message),
            BankError::RateLimited(who) => Status::resource_exhausted(format!(
                "查询过于频繁,请稍后再试 / too many queries by this {who}; try later"
            )),
            BankError::Storage(e) => error::storage(&e),
            BankError::Outbox(e) => error::internal(&e),
            BankError::Envelope(e) => error::internal(&e),
            BankError::Journal(e) => error::group_commit(&e),
            BankError::Internal(message) => {
                tracing::error!(%message, "bank internal error");
                Status::internal("内部错误 / internal error")
            }
        }
    }
}

pub type Result<T, E = BankError> = std::result::Result<T, E>;

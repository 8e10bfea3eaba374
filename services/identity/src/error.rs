//! Identity's errors and their one mapping to gRPC statuses.

use jiaxin_kit::{
    crypto::CryptoError,
    error::{self, FieldViolation},
    outbox::OutboxError,
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    /// Missing, or outside the caller's scope: the two read the same.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("not permitted")]
    PermissionDenied,
    #[error("login failed")]
    LoginFailed,
    #[error("refresh token invalid")]
    BadRefreshToken,
    /// The request is valid but the state does not allow it (message for people).
    #[error("failed precondition: {0}")]
    Precondition(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("outbox: {0}")]
    Outbox(#[from] OutboxError),
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    #[error("internal: {0}")]
    Internal(String),
}

impl IdentityError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        IdentityError::Invalid(vec![FieldViolation::new(field, message)])
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        IdentityError::Precondition(message.into())
    }
}

impl From<Vec<FieldViolation>> for IdentityError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        IdentityError::Invalid(violations)
    }
}

impl From<FieldViolation> for IdentityError {
    fn from(violation: FieldViolation) -> Self {
        IdentityError::Invalid(vec![violation])
    }
}

impl From<IdentityError> for Status {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Invalid(violations) => error::invalid_argument(&violations),
            IdentityError::NotFound(what) => error::not_found(what),
            IdentityError::PermissionDenied => Status::permission_denied("无权执行此操作 / not permitted"),
            // One message for a wrong name, a wrong password, a disabled and a locked account,
            // so a guesser learns nothing about which accounts exist.
            IdentityError::LoginFailed => {
                Status::unauthenticated("用户名或密码错误,或账户已停用、临时锁定 / login failed")
            }
            IdentityError::BadRefreshToken => Status::unauthenticated("刷新令牌无效或已过期 / invalid refresh token"),
            IdentityError::Precondition(message) => Status::failed_precondition(message),
            IdentityError::AlreadyExists(message) => Status::already_exists(message),
            IdentityError::Storage(e) => error::storage(&e),
            IdentityError::Outbox(e) => error::internal(&e),
            IdentityError::Crypto(e) => error::internal(&e),
            IdentityError::Internal(message) => {
                tracing::error!(%message, "identity internal error");
                Status::internal("内部错误 / internal error")
            }
        }
    }
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

//! The shared parts of error handling: validation errors with field violations, and the few
//! statuses every service returns the same way. Each service keeps its own `thiserror` enum and
//! maps it to `tonic::Status` in one exhaustive match; these helpers build the statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One invalid field: the proto field path and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub message: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Collects violations while validating a request, so a caller learns every bad field at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldViolation::new(field, message));
    }

    /// Records a violation for `field` when `value` is blank.
    pub fn require(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(field, "必填 / required");
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), Vec<FieldViolation>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }
}

/// INVALID_ARGUMENT whose message names every bad field and whose details carry a
/// `google.rpc.BadRequest` with the field violations.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let summary = violations.iter().map(|v| format!("{}: {}", v.field, v.message)).collect::<Vec<_>>().join("; ");
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.message.clone());
    }
    Status::with_error_details(Code::InvalidArgument, format!("请求无效 / invalid request: {summary}"), details)
}

/// NOT_FOUND that reads the same whether the object is missing or outside the caller's scope.
pub fn not_found(what: &str) -> Status {
    Status::not_found(format!("{what}不存在或无权访问 / {what} not found"))
}

/// INTERNAL for failures the caller cannot fix. The cause is logged, never returned: it could
/// carry SQL or personal data.
pub fn internal(error: &dyn std::error::Error) -> Status {
    tracing::error!(error = %error, "internal error");
    Status::internal("内部错误,请稍后重试 / internal error")
}

/// UNAVAILABLE for a database that is busy or unreachable, so clients retry.
pub fn unavailable(error: &dyn std::error::Error) -> Status {
    tracing::warn!(error = %error, "storage unavailable");
    Status::unavailable("服务暂时不可用,请重试 / temporarily unavailable, retry")
}

/// Maps a database error: transient ones (server restarting or unreachable, pool exhausted,
/// deadlock, serialization failure) are UNAVAILABLE, which clients retry; anything else internal.
pub fn storage(error: &sqlx::Error) -> Status {
    if crate::storage::is_transient(error) || matches!(error, sqlx::Error::PoolClosed) {
        unavailable(error)
    } else {
        internal(error)
    }
}

/// Maps a failed group commit (`crate::group_commit`): its batch's storage error, or the writer
/// gone because the service is stopping (UNAVAILABLE: another replica, or a retry, answers).
pub fn group_commit(error: &crate::group_commit::GroupCommitError) -> Status {
    match error {
        crate::group_commit::GroupCommitError::Storage(e) => storage(e),
        crate::group_commit::GroupCommitError::Stopped => {
            Status::unavailable("服务正在停止,请重试 / the service is stopping; retry")
        }
    }
}

/// The field violations carried by a status, for tests and clients.
pub fn field_violations(status: &Status) -> Vec<FieldViolation> {
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| FieldViolation::new(v.field, v.description)).collect())
        .unwrap_or_default()
}

/// How a batch answers one failed item: the status code's name, the first bad field (if any)
/// and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub code: String,
    pub field: String,
    pub message: String,
}

impl From<Status> for ItemError {
    fn from(status: Status) -> Self {
        let violation = field_violations(&status).into_iter().next();
        Self {
            code: format!("{:?}", status.code()),
            field: violation.as_ref().map(|v| v.field.clone()).unwrap_or_default(),
            message: violation.map(|v| v.message).unwrap_or_else(|| status.message().to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_every_field() {
        let mut v = Violations::new();
        v.require("name", " ");
        v.add("id_number", "校验位错误 / bad checksum");
        let status = invalid_argument(&v.into_result().unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("name") && status.message().contains("id_number"));
        let fields: Vec<_> = field_violations(&status).into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["name", "id_number"]);
    }
}

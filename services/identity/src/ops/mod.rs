//! Identity's operations. Each runs in one transaction that checks the caller's role and scope,
//! validates against current state, writes, and adds its events to the outbox, so a change and
//! its events commit together.

mod accounts;
pub(crate) mod households;
pub(crate) mod org;

use chrono::NaiveDate;
use jiaxin_kit::{auth::Caller, crypto::FieldCipher, outbox::Outbox, storage::Database, storage::Tx};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::{
    error::{IdentityError, Result},
    keys::Keys,
    store,
};

pub use accounts::Bootstrap;

/// Token lifetimes and lockout rules.
#[derive(Debug, Clone)]
pub struct Settings {
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub max_failed_logins: i64,
    pub lockout_secs: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            max_failed_logins: 5,
            lockout_secs: 15 * 60,
        }
    }
}

/// The identity service's state, shared by its gRPC API and import.
pub struct Identity {
    pub(crate) db: Database,
    pub(crate) cipher: FieldCipher,
    pub(crate) outbox: Outbox,
    pub(crate) keys: Arc<Keys>,
    pub(crate) settings: Settings,
}

impl Identity {
    pub fn new(db: Database, cipher: FieldCipher, outbox: Outbox, keys: Arc<Keys>, settings: Settings) -> Self {
        Self { db, cipher, outbox, keys, settings }
    }

    /// Commits and wakes the relay for the events written in `tx`.
    pub(crate) async fn commit(&self, tx: Tx) -> Result<()> {
        tx.commit().await?;
        self.outbox.wake();
        Ok(())
    }
}

/// Today in China, on the process's clock.
pub(crate) fn today() -> NaiveDate {
    jiaxin_kit::time::china_date(jiaxin_kit::time::now_micros()).unwrap_or_else(|| chrono::Utc::now().date_naive())
}

/// A hash of what a caller asked, to tell a retry from a reuse of the same request id.
pub(crate) fn request_hash(caller: &Caller, message: &impl prost::Message) -> String {
    let mut hasher = Sha256::new();
    hasher.update(caller.account_id().as_bytes());
    hasher.update([0]);
    hasher.update(message.encode_to_vec());
    hex::encode(hasher.finalize())
}

/// For idempotent creates: the id made by an earlier request with this `request_id`, or `None`
/// when it is new. The same id with other content is refused.
pub(crate) async fn earlier_result(
    tx: &mut Tx,
    operation: &str,
    request_id: &str,
    hash: &str,
) -> Result<Option<String>> {
    if request_id.is_empty() {
        return Ok(None);
    }
    match store::idempotent_result(&mut **tx, operation, request_id).await? {
        None => Ok(None),
        Some((earlier_hash, id)) if earlier_hash == hash => Ok(Some(id)),
        Some(_) => Err(IdentityError::invalid(
            "request_id",
            "该请求号已用于另一内容不同的请求 / reused with different content",
        )),
    }
}

pub(crate) async fn remember_result(
    tx: &mut Tx,
    operation: &str,
    request_id: &str,
    hash: &str,
    id: &str,
) -> Result<()> {
    if !request_id.is_empty() {
        store::remember_idempotent(&mut **tx, operation, request_id, hash, id).await?;
    }
    Ok(())
}

/// Whether a database error is a UNIQUE violation (both dialects report it the same way through
/// sqlx's error kind).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

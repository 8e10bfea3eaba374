//! The audit log's hash chain: each entry's hash covers its fields and the previous entry's
//! hash, so changing or removing any entry breaks every later one.

use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit entry records.
pub struct Entry<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub details: &'a str,
}

pub fn hash(prev: &str, entry: &Entry<'_>) -> String {
    let mut hasher = Sha256::new();
    for field in [prev, &entry.at.to_string(), entry.actor, entry.action, entry.subject, entry.details] {
        // Length-prefixed, so no two different entries hash the same bytes.
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_changed_field_changes_the_hash() {
        let entry = Entry { at: 1, actor: "a", action: "vote", subject: "t", details: "approve" };
        let base = hash(GENESIS, &entry);
        assert_ne!(base, hash(GENESIS, &Entry { details: "reject", ..entry }));
        let shifted = Entry { at: 1, actor: "av", action: "ote", subject: "t", details: "approve" };
        assert_ne!(base, hash(GENESIS, &shifted));
        assert_ne!(base, hash(&base, &Entry { at: 1, actor: "a", action: "vote", subject: "t", details: "approve" }));
    }
}

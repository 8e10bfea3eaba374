//! The ledger's hash chain: each entry's hash covers its fields and the previous entry's hash of
//! the same household, so changing any entry breaks it and every later one.

use sha2::{Digest, Sha256};

/// The hash before a household's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields an entry's hash covers, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chained<'a> {
    pub household_id: &'a str,
    pub record_id: &'a str,
    pub resident_id: &'a str,
    pub delta: i64,
    pub effective_from: i64,
    pub expires_at: i64,
    pub rule_code: &'a str,
    pub rule_version: i64,
    pub category: i64,
    pub serious: bool,
    pub reverses_seq: Option<i64>,
    pub created_at: i64,
}

pub fn hash(prev_hash: &str, entry: &Chained<'_>) -> String {
    let mut hasher = Sha256::new();
    // Length-prefixed fields: no two different entries serialise alike.
    for field in [
        prev_hash.to_owned(),
        entry.household_id.to_owned(),
        entry.record_id.to_owned(),
        entry.resident_id.to_owned(),
        entry.delta.to_string(),
        entry.effective_from.to_string(),
        entry.expires_at.to_string(),
        entry.rule_code.to_owned(),
        entry.rule_version.to_string(),
        entry.category.to_string(),
        u8::from(entry.serious).to_string(),
        entry.reverses_seq.map(|s| s.to_string()).unwrap_or_default(),
        entry.created_at.to_string(),
    ] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_changes_the_hash() {
        let entry = Chained {
            household_id: "h",
            record_id: "r",
            resident_id: "",
            delta: 5,
            effective_from: 1,
            expires_at: 2,
            rule_code: "A01",
            rule_version: 1,
            category: 1,
            serious: false,
            reverses_seq: None,
            created_at: 1,
        };
        let h = hash(GENESIS, &entry);
        assert_eq!(h, hash(GENESIS, &entry));
        assert_ne!(h, hash(GENESIS, &Chained { delta: 6, ..entry.clone() }));
        assert_ne!(h, hash(&h, &entry), "the previous hash is covered");
    }
}

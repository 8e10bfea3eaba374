//! Points' rules, free of I/O: the catalogue and its validation, how a record is judged, the
//! score and its tiers, and the ledger's hash chain.

pub mod access;
pub mod catalogue;
pub mod ledger;
pub mod score;

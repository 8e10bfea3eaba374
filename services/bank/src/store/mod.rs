//! The bank's SQL. Functions take any executor so operations can run them in one transaction.

pub mod consents;
pub mod readmodel;
pub mod registry;

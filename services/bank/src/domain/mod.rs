//! The bank's rules without I/O: who may do what, when a consent may be used, the credit
//! report's trend and reason codes, product limits, and the rate limiter.

pub mod access;
pub mod consent;
pub mod limits;
pub mod ratelimit;
pub mod report;

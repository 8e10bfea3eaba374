//! Benefits' rules without I/O: who may do what, when a household qualifies for a benefit, and
//! the annual honours' criteria.

pub mod access;
pub mod eligibility;
pub mod honours;

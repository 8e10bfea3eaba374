//! Pledges' rules without I/O: where a household stands, and who may do what.

pub mod access;
pub mod state;

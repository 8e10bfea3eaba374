//! Identity's rules, free of I/O: ID numbers, the org tree's shape, and who may do what.

pub mod access;
pub mod id_number;
pub mod org;

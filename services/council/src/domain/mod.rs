//! The council's rules without I/O: how votes become a decision,
//! how a household is shown in published minutes, and who may do what.

pub mod access;
pub mod mask;
pub mod tally;

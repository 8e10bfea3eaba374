//! Benefits' SQL. Functions take any executor so operations can run them in one transaction.

pub mod catalogue;
pub mod honours;
pub mod readmodel;
pub mod shop;

//! The audit log's hash chain: the shared definition in `jiaxin_kit::audit` (the council keeps
//! its own table, appended through `ops::audit`).

pub use jiaxin_kit::audit::{Entry, GENESIS, hash};

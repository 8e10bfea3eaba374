//! What every jiaxin service shares: configuration, storage, the event bus with its outbox and
//! inbox, authentication, errors, telemetry and the server stack. Nothing here knows a service.

pub mod audit;
pub mod auth;
pub mod bus;
mod checkpoint;
pub mod config;
pub mod crypto;
pub mod deadline;
pub mod error;
pub mod events;
pub mod group_commit;
pub mod inbox;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod orgmodel;
pub mod outbox;
pub mod page;
pub mod pipeline;
pub mod ports;
pub mod secret;
pub mod server;
pub mod sql;
pub mod storage;
pub mod supervise;
pub mod telemetry;
pub mod tiers;
pub mod time;
pub mod tls;
pub mod writes;

pub use secret::Secret;

//! The `jiaxin` binary's library: assembling services into a running system, and the commands
//! that drive it (`serve`, `migrate`, `import`, `dead-letters`).

pub mod demo;
pub mod import_cli;
pub mod peers;
pub mod system;

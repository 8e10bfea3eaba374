//! Generated protobuf messages and gRPC stubs for every jiaxin API and event.
//!
//! The module tree mirrors the protobuf packages: `jiaxin.identity.v1` is
//! [`jiaxin::identity::v1`]. Short aliases sit at the top for everyday use.

#![allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]

pub mod jiaxin {
    pub mod events {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiaxin.events.v1.rs"));
        }
    }
    pub mod identity {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiaxin.identity.v1.rs"));
        }
    }
    pub mod points {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiaxin.points.v1.rs"));
        }
    }
    pub mod pledges {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiaxin.pledges.v1.rs"));
        }
    }
    pub mod bank {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiaxin.bank.v1.rs"));
        }
    }
    pub mod benefits {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiaxin.benefits.v1.rs"));
        }
    }
    pub mod council {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/jiaxin.council.v1.rs"));
        }
    }
}

pub use jiaxin::bank::v1 as bank;
pub use jiaxin::benefits::v1 as benefits;
pub use jiaxin::council::v1 as council;
pub use jiaxin::events::v1 as events;
pub use jiaxin::identity::v1 as identity;
pub use jiaxin::pledges::v1 as pledges;
pub use jiaxin::points::v1 as points;

/// Every file descriptor of every jiaxin package, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/jiaxin_descriptor.bin"));

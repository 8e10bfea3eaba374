//! The system tests: every end-to-end, process and security test of `jiaxin`, in one test binary.
//!
//! One binary instead of one per file: each test binary links the whole workspace (≈80 MB in a
//! debug build), so twenty of them cost gigabytes of disk and minutes of linking in every clean
//! CI build. nextest still runs each test in its own process. A module per subject; run one with
//! `cargo nextest run --test system identity::` (or `cargo test --test system identity::`).
//! The crash campaign stays a binary of its own (`tests/campaign.rs`): it runs alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "../common/mod.rs"]
mod common;
#[path = "../processes/mod.rs"]
mod processes;

mod authz;
mod bank;
mod bank_repair;
mod benefits;
mod benefits_clock;
mod cli;
mod council;
mod crash;
mod demo;
mod distributed;
mod identity;
mod import;
mod pledges;
mod points;
mod properties;
mod properties_consents;
mod query_plans;
mod security;
mod tls;
mod tracing;

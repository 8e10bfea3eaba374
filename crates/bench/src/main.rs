//! `jiaxin-bench`: the benchmark program. Each scenario prints its figures and a baseline
//! measured in the same run; docs/benchmarks.md records them with the command that produced
//! them. Nothing here asserts anything about time.
//!
//!     cargo run --release -p jiaxin-bench -- <scenario> [flags]     (--help for each)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark program fails loudly

mod bank;
mod bank_cluster;
mod benefits;
mod benefits_cluster;
mod consume;
mod county;
mod fixed;
mod load;
mod pledges;
mod points;
mod support;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "jiaxin-bench",
    about = "家信性能测试 / jiaxin's benchmarks, each against a baseline from the same run"
)]
enum Scenario {
    /// 积分入账 / records to ledger entries and scores, against a plain batched insert; score reads.
    Points(points::Args),
    /// 承诺签署 / signing a county's pledges and reading coverage, against plain inserts and counting.
    Pledges(pledges::Args),
    /// 信易+ / eligibility checks and the annual evaluation, against reading the standing row only.
    Benefits(benefits::Args),
    /// 信易贷 / credit reports against a tonic server answering a fixed report; pre-approval.
    Bank(bank::Args),
    /// 全县全年 / a county's whole year end to end (the demo's story): each step, wall time, peak RSS.
    County(county::Args),
    /// 事件消费 / one Kafka consumer alone (PostgreSQL + broker), against its database work alone.
    Consume(consume::Args),
}

#[tokio::main]
async fn main() {
    match Scenario::parse() {
        Scenario::Points(args) => points::run(args).await,
        Scenario::Pledges(args) => pledges::run(args).await,
        Scenario::Benefits(args) => benefits::run(args).await,
        Scenario::Bank(args) => bank::run(args).await,
        Scenario::County(args) => county::run(args).await,
        Scenario::Consume(args) => consume::run(args).await,
    }
}

//! A county's whole year end to end, embedded: the demo's story (import, pledges, a year of
//! records, council reviews, tiers, honours, benefits, credit) at any size, with the wall time
//! and the process's peak resident memory. Run it at 10,000, 50,000 and 210,000 households to see
//! how cost grows.
//!
//!     cargo run --release -p jiaxin-bench -- county --households 50000

use std::time::Instant;

use jiaxin::demo::{self, DemoArgs};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 10_000)]
    households: u32,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

/// The process's peak resident set (VmHWM), from /proc.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub async fn run(args: Args) {
    let dir = tempfile::tempdir().unwrap();
    let demo = DemoArgs {
        households: args.households,
        seed: args.seed,
        data_dir: dir.path().join("county"),
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        no_serve: true,
        log_format: jiaxin_kit::telemetry::LogFormat::Pretty,
    };
    let started = Instant::now();
    demo::run(&demo).await.unwrap();
    let elapsed = started.elapsed();
    println!("\n== county, {} households ==", args.households);
    println!("the whole year, wall clock: {:.1} s", elapsed.as_secs_f64());
    match peak_rss_mib() {
        Some(mib) => println!("peak RSS of the process (every service embedded): {mib:.0} MiB"),
        None => println!("peak RSS: not available (no /proc)"),
    }
}

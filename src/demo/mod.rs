//! `jiaxin demo`: all services embedded, a sample county generated and played through a year —
//! pledges, records, council reviews with an objection, the 公示 period, scores and tiers, the
//! annual honours, benefit checks and redemptions, a bank's consented query and a whole-village
//! pre-approval, a credit repair the bank's next report shows — printed as a short story; then
//! it keeps serving with the demo accounts printed. The days the county waits through are played
//! by moving the process's clock ahead (`jiaxin_kit::time`). A second run finds the county in its
//! data directory and serves it again, on the same clock.

pub mod county;
mod story;

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, bail};
use story::{DEMO_PASSWORD, Outcome};
use tonic::transport::Channel;

use crate::system::{self, RunningSystem, SystemConfig};

/// The demo's admin password (demo data only: the demo listens on 127.0.0.1 by default).
const ADMIN_PASSWORD: &str = "jiaxin-demo-admin";
/// Written when the story has finished; its presence means "serve this county again".
const MARKER: &str = "demo.json";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Households in the sample county (≈ 5,000 is one town of ten villages; 210000 is Xuyi).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    pub households: u32,
    /// Seed of the generator: the same seed gives the same county and the same year.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Where the demo keeps its databases (kept for the next run).
    #[arg(long, default_value = "./demo-data")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub grpc_listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub admin_listen: SocketAddr,
    /// Stop after the story instead of serving (for scripts and tests).
    #[arg(long)]
    pub no_serve: bool,
    /// Format of the log lines (warnings only unless `JIAXIN_LOG` asks for more); the story is
    /// printed as it is either way.
    #[arg(long, env = "JIAXIN_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: jiaxin_kit::telemetry::LogFormat,
}

/// The services' settings for the demo: the defaults, with the demo's directory, addresses and
/// admin password, and tokens that outlast a large county's story.
fn config(args: &DemoArgs) -> anyhow::Result<SystemConfig> {
    let data_dir = args.data_dir.to_str().context("--data-dir must be UTF-8")?;
    Ok(SystemConfig::from_args([
        "jiaxin-demo",
        "--data-dir",
        data_dir,
        "--grpc-listen",
        &args.grpc_listen.to_string(),
        "--admin-listen",
        &args.admin_listen.to_string(),
        "--bootstrap-admin-password",
        ADMIN_PASSWORD,
        "--access-token-minutes",
        "720",
        "--request-timeout-secs",
        "600",
    ])?)
}

/// Runs the demo; returns the running system when it should keep serving.
pub async fn run(args: &DemoArgs) -> anyhow::Result<Option<RunningSystem>> {
    let marker = args.data_dir.join(MARKER);
    let earlier: Option<Outcome> = match std::fs::read_to_string(&marker) {
        Ok(text) => Some(serde_json::from_str(&text).context("demo.json is unreadable")?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error).context("reading demo.json"),
    };
    if earlier.is_none() && args.data_dir.join("identity.db").exists() {
        bail!(
            "{} 里有一次未完成的演示,请删除该目录后重试 / holds an unfinished demo: remove it and run again",
            args.data_dir.display()
        );
    }
    // The county lives on the clock its story moved ahead: set it before any service starts.
    if let Some(outcome) = &earlier {
        jiaxin_kit::time::set_clock_ahead(outcome.clock_ahead_micros);
    }
    let config = config(args)?;
    config.validate().map_err(|problems| anyhow::anyhow!(problems.join("; ")))?;
    println!(
        "家信 jiaxin 演示 / demo — 全部服务内嵌运行 / every service embedded, data in {}",
        args.data_dir.display()
    );
    let running = system::start(config).await?;
    let outcome = match earlier {
        Some(outcome) => {
            println!(
                "复用上次生成的示范县({} 户,种子 {}) / serving the county generated last time",
                story::thousands(outcome.households as i64),
                outcome.seed
            );
            outcome
        }
        None => {
            println!(
                "生成示范县:1 个镇、10 个村,约 {} 户(种子 {}) / generating the sample county",
                story::thousands(i64::from(args.households)),
                args.seed
            );
            let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))?.connect().await?;
            let started = std::time::Instant::now();
            let outcome = story::play(&running, &channel, ADMIN_PASSWORD, args.households as usize, args.seed).await?;
            std::fs::write(&marker, serde_json::to_string_pretty(&outcome)?)?;
            println!(
                "\n全年流程演示完毕,用时 {:.0} 秒 / the year played in {:.0} s",
                started.elapsed().as_secs_f64(),
                started.elapsed().as_secs_f64()
            );
            outcome
        }
    };
    print_accounts(&outcome);
    let days_ahead = outcome.clock_ahead_micros / jiaxin_kit::time::DAY_MICROS;
    if days_ahead > 0 {
        println!(
            "演示时钟比实际时间快 {days_ahead} 天(公示期与修复等待期已在演示中度过)/ the demo's clock runs {days_ahead} days ahead"
        );
    }
    if args.no_serve {
        running.shutdown().await;
        println!(
            "\n已按 --no-serve 停止服务;数据保留在 {},去掉该参数再次运行即可继续服务 / stopped as asked; run again without --no-serve to serve this county",
            args.data_dir.display()
        );
        return Ok(None);
    }
    print_endpoints(&running);
    Ok(Some(running))
}

fn print_accounts(outcome: &Outcome) {
    println!("\n演示账号(仅供演示)/ demo accounts (demo data only):");
    println!("  admin — 县级管理员 / county admin — 密码 / password {ADMIN_PASSWORD}");
    // Accounts of one kind (cadre-1 … cadre-10) on one line.
    let mut groups: Vec<(&str, Vec<&str>, &str)> = Vec::new();
    for account in outcome.accounts.iter().filter(|a| a.username != "admin") {
        let kind = account.username.split('-').next().unwrap_or_default();
        match groups.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, names, _)) => names.push(&account.username),
            None => groups.push((kind, vec![&account.username], &account.role)),
        }
    }
    for (_, names, role) in &groups {
        let who = match names.as_slice() {
            [one] => (*one).to_owned(),
            [first, .., last] => format!("{first} … {last}(共 {} 个)", names.len()),
            [] => continue,
        };
        println!("  {who} — {role}");
    }
    println!("  以上账号的密码均为 / their password: {DEMO_PASSWORD}");
    let villages: Vec<String> = outcome.villages.iter().enumerate().map(|(i, v)| format!("{} {v}", i + 1)).collect();
    println!("  村序号 / villages (cadre-N, council-N-…): {}", villages.join(" · "));
}

/// Where to reach the county being served, with a first call to try.
fn print_endpoints(running: &RunningSystem) {
    println!("\ngRPC: {}(已开启反射 / reflection on),例如 / for example:", running.grpc_addr);
    println!("  grpcurl -plaintext {} list", running.grpc_addr);
    println!(
        "  grpcurl -plaintext -d '{{\"username\":\"admin\",\"password\":\"{ADMIN_PASSWORD}\"}}' {} jiaxin.identity.v1.IdentityService/Login",
        running.grpc_addr
    );
    println!("指标 / metrics: http://{}/metrics", running.admin_addr);
}

//! `jiaxin`: every service of the platform in one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jiaxin::{
    demo::{self, DemoArgs},
    import_cli::{self, ImportArgs},
    system::{self, ServiceName, Settings, SystemConfig},
};
use jiaxin_kit::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "jiaxin",
    version,
    about = "家信 — 基层治理家庭信用积分平台 / household credit points for grassroots governance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// 运行服务 / Run services (all of them, embedded on SQLite, by default).
    Serve(ServeArgs),
    /// 演示:生成示范县并演示全年流程,然后继续服务 / Generate a sample county, play its year, keep serving.
    Demo(DemoArgs),
    /// 执行数据库迁移后退出 / Apply database migrations and exit.
    Migrate(ServeArgs),
    /// 从 CSV 批量导入家庭户 / Bulk-import households from CSV into a running jiaxin.
    Import(ImportArgs),
    /// 列出本程序包含的服务 / List the services this binary runs, one per line.
    Services,
    /// 由积分台账重算每户积分并与维护余额核对(只读)/ Rebuild every household's score from the
    /// points ledger and compare it with the maintained balance (reads only: refuses a data
    /// directory or database `serve` has not set up); exits 1 when any household disagrees.
    RecomputeScores(ServeArgs),
    /// 查看或重放死信事件 / List or replay parked (dead-letter) events.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLetterAction {
    /// List parked events.
    List,
    /// Apply parked events again (after fixing their cause).
    Replay,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Run only these services (repeatable); all when absent.
    #[arg(long = "service", value_enum, env = "JIAXIN_SERVICES", value_delimiter = ',')]
    services: Vec<ServiceName>,
    #[command(flatten)]
    settings: Settings,
    /// 只检查配置后退出 / Check the settings (flags and JIAXIN_* variables) and exit, binding
    /// and writing nothing: what a deployment renders can be tried before it runs.
    #[arg(long)]
    check_config: bool,
}

impl ServeArgs {
    fn into_config(self) -> SystemConfig {
        self.settings.into_config(self.services)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("错误 / error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) if args.check_config => {
            let config = args.into_config();
            check_config(&config, config.validate())
        }
        Command::Migrate(args) if args.check_config => {
            let config = args.into_config();
            check_config(&config, config.validate_settings())
        }
        Command::Serve(args) => serve(args.into_config()).await,
        Command::Demo(args) => run_demo(&args).await,
        Command::Migrate(args) => {
            let config = args.into_config();
            config.validate_settings().map_err(|problems| invalid(&problems))?;
            let _telemetry = telemetry::init(config.common.log_format, None, "jiaxin")?;
            for service in config.services() {
                system::open_database(&config, service).await?;
                println!("已迁移 / migrated: {}", service.as_str());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Services => {
            for service in ServiceName::ALL {
                println!("{}", service.as_str());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(args) => Ok(if import_cli::run(args).await? { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        Command::DeadLetters { action, serve } => dead_letters(action, serve.into_config()).await,
        Command::RecomputeScores(args) => recompute_scores(args.into_config()).await,
    }
}

async fn serve(config: SystemConfig) -> anyhow::Result<ExitCode> {
    // Validate before anything is bound or written.
    if let Err(problems) = config.validate() {
        return Err(invalid(&problems));
    }
    let _telemetry = telemetry::init(config.common.log_format, config.common.otlp_endpoint.as_deref(), "jiaxin")?;
    // Take over SIGINT and SIGTERM before anything starts: a signal that arrived before its handler
    // would kill the process without draining.
    let stop = shutdown_signal()?;
    let grace = config.common.shutdown_grace();
    let mut running = system::start(config).await?;
    if let Some(password) = &running.generated_admin_password {
        println!("首次启动:已创建管理员账户 / first start: admin account created");
        println!("  用户名 / username: admin(或 JIAXIN_BOOTSTRAP_ADMIN_USERNAME)");
        println!("  密码 / password:   {password}");
        println!("  此密码只显示这一次,请登录后修改 / shown once only: change it after logging in");
    }
    println!("jiaxin 已启动 / serving gRPC on {} (metrics http://{}/metrics)", running.grpc_addr, running.admin_addr);
    let cancel = running.cancel_token();
    // However the stop begins — a signal, or a task of this process that failed — it is bounded.
    let stopping = cancel.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        exit_if_not_stopped_within(grace + CLOSE_MARGIN);
    });
    tokio::spawn(async move {
        stop.await;
        tracing::info!("shutdown requested; draining");
        cancel.cancel();
    });
    running.join().await;
    Ok(stopped(&running))
}

/// Says how the system stopped. A failure (a server, relay, ticker or consumer that failed or
/// ended on its own) exits non-zero, so whatever runs the process sees it and starts it again.
fn stopped(running: &system::RunningSystem) -> ExitCode {
    match running.failure() {
        None => {
            println!("jiaxin 已停止 / stopped");
            ExitCode::SUCCESS
        }
        Some(failure) => {
            eprintln!("jiaxin 因故障停止 / stopped after a failure: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// How long past the grace period a stopping process waits for its Kafka clients to close. Below
/// the ten seconds the Helm chart adds to the grace for Kubernetes' own deadline, so the process
/// ends itself before it is SIGKILLed.
const CLOSE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Ends the process if the orderly stop has not ended it within `deadline`: the last guard, for a
/// call that blocks where nothing else bounds it (the stop bounds its Kafka clients itself; before
/// it did, a process whose broker was gone took 24–25 s with a 5 s grace). Exiting then loses
/// nothing: events not yet published stay in the outbox for the next process, and events applied
/// but not acknowledged are delivered again and dropped by the inbox.
fn exit_if_not_stopped_within(deadline: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        tracing::error!(
            deadline_secs = deadline.as_secs(),
            "shutdown did not finish in time (a Kafka client still closing?); exiting anyway"
        );
        eprintln!("jiaxin 未能在 {} 秒内正常停止,强制退出 / did not stop in time; exiting", deadline.as_secs());
        std::process::exit(1);
    });
}

/// `--check-config`: whether the settings are valid, said on stdout (or in the error).
fn check_config(config: &SystemConfig, validity: Result<(), Vec<String>>) -> anyhow::Result<ExitCode> {
    validity.map_err(|problems| invalid(&problems))?;
    let names: Vec<&str> = config.services().iter().map(|s| s.as_str()).collect();
    println!("配置有效 / configuration valid: {}", names.join(", "));
    Ok(ExitCode::SUCCESS)
}

fn invalid(problems: &[String]) -> anyhow::Error {
    anyhow::anyhow!("配置无效 / invalid configuration:\n  {}", problems.join("\n  "))
}

async fn run_demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    // Warnings only, and not sqlx's slow-statement notes: the story is what a person reads.
    let _telemetry = telemetry::init_filtered(args.log_format, None, "jiaxin", "warn,sqlx=error")?;
    let mut stop = Box::pin(shutdown_signal()?);
    // Ctrl-C during the story stops it (the half-played county is refused next time, by name).
    let played = tokio::select! {
        played = demo::run(args) => played?,
        () = &mut stop => {
            eprintln!("演示已中断 / interrupted: remove {} before the next run", args.data_dir.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let Some(mut running) = played else {
        return Ok(ExitCode::SUCCESS);
    };
    println!("\n继续服务中,Ctrl-C 停止 / serving; Ctrl-C stops");
    let cancel = running.cancel_token();
    tokio::spawn(async move {
        stop.await;
        cancel.cancel();
    });
    running.join().await;
    Ok(stopped(&running))
}

/// Registers the SIGINT and SIGTERM handlers now; the returned future completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

async fn recompute_scores(config: SystemConfig) -> anyhow::Result<ExitCode> {
    config.validate_settings().map_err(|problems| invalid(&problems))?;
    let _telemetry = telemetry::init(config.common.log_format, None, "jiaxin")?;
    let db = system::open_existing_database(&config, ServiceName::Points).await?;
    let points = jiaxin_points::PointsService::open_read_only(db, &config.points);
    let started = std::time::Instant::now();
    let found = points.recompute_scores().await?;
    let (households, entries, disagreeing) = (found.households, found.entries, found.disagreeing);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "已由台账重算 {households} 户积分({entries} 条台账记录,{secs:.1} 秒)/ recomputed {households} households from {entries} ledger entries in {secs:.1} s"
    );
    if disagreeing == 0 {
        println!("全部与维护余额一致 / every balance follows from the ledger");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{disagreeing} 户余额与台账不符 / {disagreeing} households' balances disagree with the ledger:");
    for household in &found.first_disagreeing {
        println!("  {household}");
    }
    let shown = found.first_disagreeing.len();
    if disagreeing > shown as u64 {
        println!("  …(仅列前 {shown} 户 / the first {shown} shown)");
    }
    Ok(ExitCode::FAILURE)
}

async fn dead_letters(action: DeadLetterAction, config: SystemConfig) -> anyhow::Result<ExitCode> {
    let _telemetry = telemetry::init(config.common.log_format, None, "jiaxin")?;
    let mut total = 0usize;
    for service in config.services() {
        let db = system::open_database(&config, service).await?;
        let consumers = system::consumers(service, &db);
        if consumers.is_empty() {
            println!("{}: 无事件消费者 / consumes no events", service.as_str());
            continue;
        }
        for consumer in consumers {
            match action {
                DeadLetterAction::List => {
                    let parked = consumer.dead_letters().await?;
                    total += parked.len();
                    for d in parked {
                        println!(
                            "{} #{} {} {} 尝试{}次 / {} attempts: {}",
                            d.consumer, d.id, d.event_type, d.event_id, d.attempts, d.attempts, d.error
                        );
                    }
                }
                DeadLetterAction::Replay => {
                    let report = consumer.replay_dead_letters().await?;
                    total += report.still_failing;
                    println!(
                        "{}: 已重放 {} 条,仍失败 {} 条 / replayed {}, still failing {}",
                        consumer.name(),
                        report.applied,
                        report.still_failing,
                        report.applied,
                        report.still_failing
                    );
                }
            }
        }
    }
    if matches!(action, DeadLetterAction::List) {
        println!("死信合计 / parked events: {total}");
    }
    Ok(if matches!(action, DeadLetterAction::Replay) && total > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

//! `jiaxin import`: streams a households CSV to a running jiaxin over gRPC, as a cadre would,
//! with a progress bar and a summary in Chinese.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use jiaxin_proto::identity::{
    ImportHouseholdsRequest, ImportHouseholdsResponse, ImportOptions, LoginRequest,
    identity_service_client::IdentityServiceClient, import_households_request::Part,
};
use tokio::io::AsyncReadExt;
use tonic::{Request, metadata::MetadataValue};

const CHUNK_BYTES: usize = 64 * 1024;
const SHOWN_BAD_ROWS: usize = 20;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The CSV file: household_ref, grid, address, relation, name, id_number[, phone].
    pub file: PathBuf,
    /// The jiaxin gRPC address.
    #[arg(long, env = "JIAXIN_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    #[arg(long, env = "JIAXIN_USERNAME")]
    pub username: String,
    #[arg(long, env = "JIAXIN_PASSWORD", hide_env_values = true)]
    pub password: jiaxin_kit::Secret<String>,
    /// Import the good rows and report the bad ones, instead of importing nothing.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Check every row, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs the import; returns whether the file was imported (or, for a dry run, is clean).
pub async fn run(args: ImportArgs) -> anyhow::Result<bool> {
    let file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("无法打开文件 / cannot open {}", args.file.display()))?;
    let size = file.metadata().await?.len();
    let mut client = IdentityServiceClient::connect(args.server.clone())
        .await
        .with_context(|| format!("无法连接 / cannot connect to {}", args.server))?
        .max_decoding_message_size(64 * 1024 * 1024);
    let login = client
        .login(LoginRequest { username: args.username.clone(), password: args.password.expose().clone() })
        .await
        .map_err(|s| anyhow::anyhow!("登录失败 / login failed: {}", s.message()))?
        .into_inner();
    let bearer: MetadataValue<_> = format!("Bearer {}", login.access_token).parse()?;

    let progress = ProgressBar::new(size);
    progress.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    progress.set_message("上传并校验 / uploading");
    let (tx, rx) = tokio::sync::mpsc::channel::<ImportHouseholdsRequest>(8);
    let options = ImportOptions { skip_bad_rows: args.skip_bad_rows, dry_run: args.dry_run };
    let reader_progress = progress.clone();
    let reader = tokio::spawn(async move {
        let mut file = file;
        tx.send(ImportHouseholdsRequest { part: Some(Part::Options(options)) }).await.ok();
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            reader_progress.inc(n as u64);
            if tx.send(ImportHouseholdsRequest { part: Some(Part::Chunk(buf[..n].to_vec())) }).await.is_err() {
                break;
            }
        }
        anyhow::Ok(())
    });
    let mut request = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    request.metadata_mut().insert("authorization", bearer);
    let result = client.import_households(request).await;
    reader.await??;
    progress.finish_and_clear();
    let report = result.map_err(|s| anyhow::anyhow!("导入失败 / import failed: {}", s.message()))?.into_inner();
    print_report(&report, args.dry_run);
    Ok(if args.dry_run { report.bad_row_count == 0 } else { report.committed })
}

fn print_report(report: &ImportHouseholdsResponse, dry_run: bool) {
    println!("读取行数 / rows read:            {}", report.rows_read);
    println!("导入户数 / households imported:  {}", report.households_imported);
    println!("导入人数 / residents imported:   {}", report.residents_imported);
    println!("问题行数 / bad rows:             {}", report.bad_row_count);
    for bad in report.bad_rows.iter().take(SHOWN_BAD_ROWS) {
        let field = if bad.field.is_empty() { String::new() } else { format!(" [{}]", bad.field) };
        println!("  第{}行 / line {}{}: {}", bad.line, bad.line, field, bad.message);
    }
    if report.bad_row_count as usize > SHOWN_BAD_ROWS {
        println!(
            "  …… 另有{}行 / and {} more",
            report.bad_row_count as usize - SHOWN_BAD_ROWS,
            report.bad_row_count as usize - SHOWN_BAD_ROWS
        );
    }
    if dry_run {
        println!("试运行,未写入任何数据 / dry run: nothing was written");
    } else if report.committed {
        println!("导入完成 / import committed");
    } else {
        println!(
            "文件有问题行,未导入任何数据;修正后重试,或加 --skip-bad-rows 跳过问题行 / nothing imported: fix the rows or use --skip-bad-rows"
        );
    }
}

//! The `jiaxin` binary as an operator runs it: bad settings refused before anything is bound or
//! written, the first admin's password shown once, SIGTERM draining cleanly, `migrate`, and
//! Prometheus metrics on the admin port.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::processes::{self, Running, free_port, free_ports, terminate};

fn jiaxin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jiaxin"))
}

/// Starts `jiaxin serve` embedded; returns the child once it printed that it serves, with the
/// lines it printed up to then.
fn serve(data_dir: &std::path::Path, grpc: u16, admin: u16) -> (Running, Vec<String>) {
    let mut child = jiaxin()
        // A short grace period: serving must not end when it runs out, only shutting down.
        .args(["serve", "--data-dir", data_dir.to_str().unwrap(), "--shutdown-grace-secs", "1"])
        .args(["--grpc-listen", &format!("127.0.0.1:{grpc}"), "--admin-listen", &format!("127.0.0.1:{admin}")])
        .env_remove("JIAXIN_BOOTSTRAP_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "serve exited early: {lines:?}");
        let serving = line.contains("jiaxin 已启动");
        lines.push(line);
        if serving {
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (Running(child), lines)
}

#[test]
fn bad_settings_are_refused_before_anything_is_bound_or_written() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let port = free_port();
    let output = jiaxin()
        .args(["serve", "--data-dir", data_dir.to_str().unwrap(), "--grpc-listen", &format!("127.0.0.1:{port}")])
        .args(["--field-key", "not-a-key", "--bus", "carrier-pigeon://x", "--database-url", "mysql://db/x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for flag in ["--field-key", "--bus", "--database-url"] {
        assert!(stderr.contains(flag), "{flag} not named in: {stderr}");
    }
    assert!(!stderr.contains("not-a-key"), "a secret's value is never echoed");
    assert!(!data_dir.exists(), "nothing written");
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "nothing bound");
}

#[test]
fn check_config_tries_a_deployments_settings_without_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // What a Kubernetes Deployment of points renders: flags and JIAXIN_* variables.
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let distributed = |command: &mut std::process::Command| {
        command
            .args(["serve", "--service", "points", "--check-config", "--data-dir", data_dir.to_str().unwrap()])
            .env("JIAXIN_DATABASE_URL", "postgres://jiaxin:secret@db:5432/jiaxin")
            .env("JIAXIN_FIELD_KEY", key)
            .env("JIAXIN_PEERS", "identity=http://identity:50051")
            .env("JIAXIN_GRPC_LISTEN", "0.0.0.0:50051")
            .env("JIAXIN_ADMIN_LISTEN", "0.0.0.0:9464");
    };
    let mut valid = jiaxin();
    distributed(&mut valid);
    let output = valid.env("JIAXIN_KAFKA_BROKERS", "kafka:9092").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("配置有效 / configuration valid: points"), "{stdout}");

    // The same without a shared bus cannot work: refused, naming the flag.
    let mut invalid = jiaxin();
    distributed(&mut invalid);
    let output = invalid.output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--bus kafka://"), "{stderr}");
    assert!(!stderr.contains("secret"), "the database password is never echoed: {stderr}");

    // A migration needs its database only: no bus, no peers.
    let output = jiaxin()
        .args(["migrate", "--service", "points", "--check-config", "--data-dir", data_dir.to_str().unwrap()])
        .env("JIAXIN_DATABASE_URL", "postgres://jiaxin:secret@db:5432/jiaxin")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!data_dir.exists(), "nothing written");
}

/// Polls `/metrics` (bounded) until it shows `needle`.
fn metrics_showing(port: u16, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = processes::http_get(port, "/metrics").unwrap();
        if metrics.contains(needle) || Instant::now() > deadline {
            return metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_shows_the_admin_password_once_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let [grpc, admin] = free_ports();
    let (mut first, lines) = serve(dir.path(), grpc, admin);
    let printed = lines.concat();
    assert!(printed.contains("密码 / password:"), "{printed}");

    // Metrics and health on the admin port, counting the RPCs served.
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{grpc}")).unwrap().connect().await.unwrap();
    let check = tonic_health::pb::HealthCheckRequest { service: "jiaxin.identity.v1.IdentityService".into() };
    tonic_health::pb::health_client::HealthClient::new(channel).check(check).await.unwrap();
    // Still serving well past the grace period (which bounds draining, not running).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let check = tonic_health::pb::HealthCheckRequest { service: "jiaxin.points.v1.PointsService".into() };
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{grpc}")).unwrap().connect().await.unwrap();
    tonic_health::pb::health_client::HealthClient::new(channel).check(check).await.unwrap();
    let metrics = metrics_showing(admin, "/grpc.health.v1.Health/Check");
    assert!(
        metrics.contains("jiaxin_grpc_requests_total{method=\"/grpc.health.v1.Health/Check\",code=\"Ok\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("jiaxin_grpc_request_duration_seconds_bucket"), "{metrics}");
    let backlog = "jiaxin_outbox_backlog{producer=\"identity\"} 0";
    assert!(metrics_showing(admin, backlog).contains(backlog));
    assert!(processes::http_get(admin, "/healthz").unwrap().ends_with("ok"));

    assert!(terminate(&mut first).success(), "SIGTERM drains and exits 0");

    let (mut second, lines) = serve(dir.path(), grpc, admin);
    assert!(!lines.concat().contains("密码 / password:"), "the password is shown on the first start only");
    assert!(terminate(&mut second).success());
}

#[test]
fn migrate_prepares_every_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = jiaxin().args(["migrate", "--data-dir", dir.path().to_str().unwrap()]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("identity"));
    for service in ["identity", "pledges", "points", "council", "benefits", "bank"] {
        assert!(dir.path().join(format!("{service}.db")).exists(), "{service}.db");
    }
    let services = jiaxin().arg("services").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&services.stdout).lines().collect::<Vec<_>>(),
        ["identity", "pledges", "points", "council", "benefits", "bank"]
    );
}

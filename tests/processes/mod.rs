//! Service processes for the distributed tests: `jiaxin serve --service …` children over the
//! suite's PostgreSQL and a Kafka-protocol broker, in a namespace (schemas, topics) of their own.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{Read, Write},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tonic::transport::Channel;

pub const PASSWORD: &str = "distributed-admin-1";
pub const FIELD_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub struct Env {
    pub database_url: String,
    pub brokers: String,
    pub namespace: String,
    pub data_dir: tempfile::TempDir,
    /// Partitions of the topics the processes create.
    pub partitions: u32,
}

impl Env {
    pub fn new() -> Self {
        let database_url = std::env::var("JIAXIN_TEST_DATABASE_URL").expect("run by scripts/test-distributed.sh");
        let bus = std::env::var("JIAXIN_TEST_BUS").expect("run by scripts/test-distributed.sh");
        Self {
            database_url,
            brokers: bus.trim_start_matches("kafka://").to_owned(),
            namespace: format!("t{}", uuid::Uuid::new_v4().simple()),
            data_dir: tempfile::tempdir().unwrap(),
            partitions: 3,
        }
    }

    pub fn topic(&self) -> String {
        format!("{}.jiaxin.identity.v1", self.namespace)
    }

    /// Starts `jiaxin serve --service identity` as a child process; returns it and its address.
    pub async fn spawn(&self) -> (Running, String) {
        self.spawn_service("identity", &[]).await
    }

    /// Starts one service as its own process, with extra flags; returns it and its address.
    pub async fn spawn_service(&self, service: &str, extra: &[&str]) -> (Running, String) {
        let (running, addr, _) = self.spawn_logged(service, extra, "info").await;
        (running, addr)
    }

    /// [`Self::spawn_service`] logging at `level` (`JIAXIN_LOG`); also returns its log file.
    pub async fn spawn_logged(
        &self,
        service: &str,
        extra: &[&str],
        level: &str,
    ) -> (Running, String, std::path::PathBuf) {
        self.spawn_at(service, extra, level, free_ports()).await
    }

    /// Starts one service on the given gRPC and admin ports (a restart keeps its address) and
    /// waits until its health check answers SERVING; returns it, its address and its log file.
    pub async fn spawn_at(
        &self,
        service: &str,
        extra: &[&str],
        level: &str,
        ports: [u16; 2],
    ) -> (Running, String, std::path::PathBuf) {
        self.try_spawn_at(service, extra, level, ports).await.unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// [`Self::spawn_at`], answering why when the process exits before it is healthy or is not
    /// healthy within a minute (its log's last lines).
    pub async fn try_spawn_at(
        &self,
        service: &str,
        extra: &[&str],
        level: &str,
        [port, admin_port]: [u16; 2],
    ) -> Result<(Running, String, std::path::PathBuf), String> {
        let log_path = self.data_dir.path().join(format!("{service}-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).unwrap();
        // Guarded from the start: a start-up that never becomes healthy still ends the process.
        let mut child = Running(
            Command::new(env!("CARGO_BIN_EXE_jiaxin"))
                .args(["serve", "--service", service])
                .args(extra)
                .args([
                    "--grpc-listen",
                    &format!("127.0.0.1:{port}"),
                    "--admin-listen",
                    &format!("127.0.0.1:{admin_port}"),
                ])
                .args([
                    "--database-url",
                    &self.database_url,
                    "--database-schema-prefix",
                    &format!("{}_", self.namespace),
                ])
                .args(["--kafka-brokers", &self.brokers, "--kafka-topic-prefix", &format!("{}.", self.namespace)])
                .args(["--kafka-partitions", &self.partitions.to_string()])
                .args(["--field-key", FIELD_KEY, "--bootstrap-admin-password", PASSWORD])
                .args(["--data-dir", self.data_dir.path().to_str().unwrap(), "--log-format", "json"])
                .env("JIAXIN_LOG", level)
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap(),
        );
        let addr = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let log_tail = || {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = output.lines().rev().take(15).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        loop {
            if let Ok(channel) = Channel::from_shared(addr.clone()).unwrap().connect().await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let check = tonic_health::pb::HealthCheckRequest { service: grpc_service_name(service) };
                if health.check(check).await.is_ok_and(|r| r.into_inner().status == 1) {
                    return Ok((child, addr, log_path));
                }
            }
            if let Some(status) = child.0.try_wait().unwrap() {
                return Err(format!(
                    "{service} exited ({status}) before it was healthy; its log ends:\n{}",
                    log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("{service} did not become healthy; its log ends:\n{}", log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn database(&self, service: &str) -> jiaxin_kit::storage::Database {
        let location = jiaxin_kit::storage::DatabaseLocation::shared(
            jiaxin_kit::Secret::new(self.database_url.clone()),
            &format!("{}_", self.namespace),
            service,
        );
        jiaxin_kit::storage::Database::connect(&location).await.unwrap()
    }
}

/// The gRPC service a `--service` process serves, as its health check names it.
pub fn grpc_service_name(service: &str) -> String {
    let mut chars = service.chars();
    let title: String = chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect();
    format!("jiaxin.{service}.v1.{title}Service")
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `N` distinct free ports, from below the kernel's ephemeral range so that a process restarted on
/// one finds it still free (see `jiaxin_kit::ports`).
pub fn free_ports<const N: usize>() -> [u16; N] {
    jiaxin_kit::ports::restartable_ports().unwrap()
}

pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

pub fn terminate(Running(child): &mut Running) -> std::process::ExitStatus {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A broker of the test's own (scripts/broker.sh on a free port, its data under `dir`), for tests
/// that stop or restart it: the suite's is shared by every other test. Stopped when dropped, so a
/// failing test leaves none running — provided `dir` still exists then (the pid file is there):
/// drop the broker before the directory.
pub struct PrivateBroker {
    env: Vec<(&'static str, String)>,
    /// `host:port`, for `--kafka-brokers`.
    pub address: String,
}

impl PrivateBroker {
    pub fn start(dir: &std::path::Path) -> Self {
        let env =
            vec![("JIAXIN_BROKER_PORT", free_port().to_string()), ("JIAXIN_BROKER_DIR", dir.display().to_string())];
        let address = script("broker.sh", "start", &env);
        Self { env, address }
    }

    pub fn stop(&self) {
        script("broker.sh", "stop", &self.env);
    }

    pub fn restart(&self) {
        script("broker.sh", "restart", &self.env);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // Not `script`: a drop during a panic must not panic again.
        let _ = Command::new(format!("{}/scripts/broker.sh", env!("CARGO_MANIFEST_DIR")))
            .arg("stop")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .status();
    }
}

/// Runs one of the repository's server scripts with the given environment; returns its stdout.
pub fn script(name: &str, action: &str, env: &[(&str, String)]) -> String {
    let path = format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(&path).arg(action).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap();
    assert!(output.status.success(), "{name} {action}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// What a process's admin port answers to `GET path` (status line, headers and body): its
/// `/metrics`, `/healthz`. Errors when nothing listens or it does not answer within five seconds.
pub fn http_get(admin_port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", admin_port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

//! TLS and mutual TLS on the gRPC port (`--tls-cert`, `--tls-key`, `--tls-client-ca`), and a
//! peer reached over `https://` with `--peer-ca` (identity's keys fetched over mTLS). Uses the
//! test certificates in tests/fixtures/tls.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use jiaxin_proto::identity::{LoginRequest, identity_service_client::IdentityServiceClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

const PASSWORD: &str = "tls-admin-pass-1";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `jiaxin serve` with TLS (and mTLS when `client_ca`); returns once it serves, with its port.
fn serve(dir: &Path, client_ca: bool) -> (Running, u16) {
    let [grpc_port, admin_port] = crate::processes::free_ports();
    let mut command = Command::new(env!("CARGO_BIN_EXE_jiaxin"));
    command
        .args(["serve", "--data-dir", dir.to_str().unwrap(), "--shutdown-grace-secs", "1"])
        .args([
            "--grpc-listen",
            &format!("127.0.0.1:{grpc_port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
        ])
        .args(["--bootstrap-admin-password", PASSWORD])
        .arg("--tls-cert")
        .arg(fixture("server.crt"))
        .arg("--tls-key")
        .arg(fixture("server.key"));
    if client_ca {
        command.arg("--tls-client-ca").arg(fixture("ca.crt"));
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "serve exited early: {seen:?}");
        let serving = line.contains("jiaxin 已启动");
        seen.push(line);
        if serving {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (Running(child), grpc_port)
}

fn tls(with_client_certificate: bool) -> ClientTlsConfig {
    let ca = Certificate::from_pem(std::fs::read(fixture("ca.crt")).unwrap());
    let tls = ClientTlsConfig::new().ca_certificate(ca).domain_name("localhost");
    if with_client_certificate {
        let cert = std::fs::read(fixture("client.crt")).unwrap();
        let key = std::fs::read(fixture("client.key")).unwrap();
        tls.identity(Identity::from_pem(cert, key))
    } else {
        tls
    }
}

async fn channel(port: u16, tls: Option<ClientTlsConfig>) -> Result<Channel, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://localhost:{port}")).unwrap();
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls)?;
    }
    endpoint.connect().await
}

/// Whether the health service answers SERVING over `channel`.
async fn serving(channel: Result<Channel, tonic::transport::Error>) -> bool {
    let Ok(channel) = channel else { return false };
    let answer = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
    answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_port_speaks_tls_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = serve(dir.path(), false);
    assert!(serving(channel(port, Some(tls(false))).await).await, "a client trusting the CA is served");
    assert!(!serving(channel(port, None).await).await, "plaintext is not served");
    // A client that does not trust the server's CA refuses it.
    let stranger = ClientTlsConfig::new().domain_name("localhost");
    assert!(!serving(channel(port, Some(stranger)).await).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate_and_a_peer_fetches_keys_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = serve(dir.path(), true);
    assert!(!serving(channel(port, Some(tls(false))).await).await, "no client certificate, no service");
    assert!(serving(channel(port, Some(tls(true))).await).await, "a certificate from the CA is served");

    // What another service does with `--peer identity=https://… --peer-ca …` and its own
    // certificate: fetch identity's public keys over mTLS and verify a token with them.
    let mut identity = IdentityServiceClient::new(channel(port, Some(tls(true))).await.unwrap());
    let login = LoginRequest { username: "admin".into(), password: PASSWORD.into() };
    let token = identity.login(login).await.unwrap().into_inner().access_token;
    let source =
        jiaxin::peers::RemoteKeySource::connect(&format!("https://localhost:{port}"), Some(tls(true))).unwrap();
    let verifier = jiaxin_kit::auth::Verifier::new(source);
    assert!(verifier.verify(&token).await.is_ok(), "the token verifies with keys fetched over mTLS");
    let without_certificate =
        jiaxin::peers::RemoteKeySource::connect(&format!("https://localhost:{port}"), Some(tls(false))).unwrap();
    assert!(
        jiaxin_kit::auth::Verifier::new(without_certificate).verify(&token).await.is_err(),
        "a peer without a certificate gets no keys"
    );
}

#[test]
fn tls_settings_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_jiaxin"))
            .args(["serve", "--data-dir", data.to_str().unwrap(), "--grpc-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap()
    };
    // A certificate without its key: refused by the parser, naming the missing flag.
    let output = run(&["--tls-cert", "/nonexistent/server.crt"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-key"));
    // A client CA without a certificate of our own.
    let output = run(&["--tls-client-ca", fixture("ca.crt").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-client-ca needs --tls-cert"));
    // An https peer without a CA to check it against.
    let output = run(&["--service", "points", "--bus", "kafka://127.0.0.1:1", "--peer", "identity=https://id:50051"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("--peer-ca"));
    // Files that cannot be read: refused naming the flag, before any database is written.
    let missing = dir.path().join("missing.key");
    let output = run(&["--tls-cert", fixture("server.crt").to_str().unwrap(), "--tls-key", missing.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--tls-key"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!data.join("identity.db").exists(), "nothing written");
}

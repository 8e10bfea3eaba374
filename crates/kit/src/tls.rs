//! TLS for the gRPC server and for calls to peer services, from the PEM files the settings name
//! (`--tls-cert`, `--tls-key`, `--tls-client-ca`, `--peer-ca`). Files are read when the process
//! starts; a missing or unreadable one is refused naming its flag.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::CommonConfig;

#[derive(Debug, thiserror::Error)]
#[error("{flag} {path}: {source}")]
pub struct TlsFileError {
    flag: &'static str,
    path: String,
    source: std::io::Error,
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError { flag, path: path.display().to_string(), source })
}

/// This process's certificate and key, when configured.
fn identity(config: &CommonConfig) -> Result<Option<Identity>, TlsFileError> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(Identity::from_pem(read("--tls-cert", cert)?, read("--tls-key", key)?))),
        _ => Ok(None),
    }
}

/// The gRPC server's TLS settings: none (plaintext), TLS, or mutual TLS with `--tls-client-ca`.
pub fn server(config: &CommonConfig) -> Result<Option<ServerTlsConfig>, TlsFileError> {
    let Some(identity) = identity(config)? else {
        return Ok(None);
    };
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &config.tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read("--tls-client-ca", ca)?));
    }
    Ok(Some(tls))
}

/// TLS for calls to `https://` peers: their certificates checked against `--peer-ca`, and this
/// process's own certificate presented when it has one.
pub fn client(config: &CommonConfig) -> Result<Option<ClientTlsConfig>, TlsFileError> {
    let Some(ca) = &config.peer_ca else {
        return Ok(None);
    };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("--peer-ca", ca)?));
    if let Some(identity) = identity(config)? {
        tls = tls.identity(identity);
    }
    Ok(Some(tls))
}

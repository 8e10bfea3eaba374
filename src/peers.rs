//! Clients for services that run in other processes (distributed mode), configured with
//! `--peer name=url`.

use std::sync::Arc;

use async_trait::async_trait;
use jiaxin_kit::auth::KeySource;
use jiaxin_proto::identity::{GetPublicKeysRequest, identity_service_client::IdentityServiceClient};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// A client interceptor that forwards the current trace context.
type TraceInterceptor = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;
type TracedChannel = tonic::service::interceptor::InterceptedService<Channel, TraceInterceptor>;

/// Identity's public keys fetched over gRPC, for a process that verifies tokens but does not run
/// identity itself.
pub struct RemoteKeySource {
    client: IdentityServiceClient<TracedChannel>,
}

impl RemoteKeySource {
    /// Connects lazily: the process may start before identity does. An `https://` peer is
    /// reached with `tls` (from `--peer-ca`, required for https by the settings' validation).
    pub fn connect(url: &str, tls: Option<ClientTlsConfig>) -> anyhow::Result<Arc<dyn KeySource>> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(10));
        if let Some(tls) = tls.filter(|_| url.starts_with("https://")) {
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint.connect_lazy();
        let inject: TraceInterceptor = jiaxin_kit::telemetry::inject_trace_context;
        Ok(Arc::new(Self { client: IdentityServiceClient::with_interceptor(channel, inject) }))
    }
}

#[async_trait]
impl KeySource for RemoteKeySource {
    async fn public_keys(&self) -> Result<Vec<(String, [u8; 32])>, String> {
        let keys = self
            .client
            .clone()
            .get_public_keys(GetPublicKeysRequest {})
            .await
            .map_err(|status| format!("identity GetPublicKeys: {}", status.message()))?
            .into_inner()
            .keys;
        Ok(keys
            .into_iter()
            .filter_map(|k| <[u8; 32]>::try_from(k.public_key).ok().map(|bytes| (k.key_id, bytes)))
            .collect())
    }
}

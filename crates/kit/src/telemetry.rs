//! Logs, traces and metrics.
//!
//! Logs go through `tracing` (pretty for people, JSON for collectors); spans are exported over
//! OTLP when an endpoint is configured; the W3C trace context travels in gRPC metadata and in the
//! event envelope; metrics are kept by the `metrics` facade and rendered for Prometheus on the
//! admin port.

use std::{
    collections::HashMap,
    sync::OnceLock,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up OTLP export: {0}")]
    Otlp(String),
}

/// Keeps the OTLP exporter alive; flushes spans when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("otlp shutdown: {error}");
        }
    }
}

/// What is logged unless `JIAXIN_LOG` says otherwise.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,h2=warn,tower=warn";

/// Installs the global subscriber. Safe to call more than once (tests): later calls keep the
/// first subscriber.
pub fn init(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    service_name: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    init_filtered(format, otlp_endpoint, service_name, DEFAULT_LOG_FILTER)
}

/// [`init`] with another default filter (`JIAXIN_LOG` still wins): the demo logs only warnings,
/// so its story reads cleanly.
pub fn init_filtered(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    service_name: &str,
    default_filter: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_env("JIAXIN_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let fmt = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_target(false).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).boxed(),
    };
    let (otel, provider) = match otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name(service_name.to_owned()).build())
                .build();
            global::set_tracer_provider(provider.clone());
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("jiaxin"));
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    // A second init (another system in the same test process) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
    Ok(TelemetryGuard { provider })
}

/// The Prometheus recorder, installed once per process.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed already; this one then stays unused.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

struct MapInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapExtractor<'a>(&'a HashMap<String, String>);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The current span's W3C trace context, for an event envelope.
pub fn current_trace_context() -> HashMap<String, String> {
    let mut map = HashMap::new();
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut MapInjector(&mut map)));
    map
}

/// Makes `span` a child of the trace carried by an event envelope.
pub fn set_parent_from(span: &tracing::Span, trace_context: &HashMap<String, String>) {
    let parent = global::get_text_map_propagator(|p| p.extract(&MapExtractor(trace_context)));
    let _ = span.set_parent(parent);
}

/// Puts the current trace context into outgoing gRPC metadata (use as a client interceptor).
pub fn inject_trace_context(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    for (key, value) in current_trace_context() {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            request.metadata_mut().insert(key, value);
        }
    }
    Ok(request)
}

/// Tower layer giving every RPC a span (child of the caller's trace), a request counter by
/// status code and a latency histogram.
#[derive(Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService { inner }
    }
}

#[derive(Clone)]
pub struct ObserveService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for ObserveService<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = request.uri().path().to_owned();
        let span = tracing::info_span!("grpc.request", otel.name = %method, rpc.method = %method, rpc.grpc.status_code = tracing::field::Empty);
        let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
        let _ = span.set_parent(parent);
        Box::pin(tracing::Instrument::instrument(
            async move {
                let started = Instant::now();
                let result = inner.call(request).await;
                // Errors answered before the body carry grpc-status in the headers; a successful
                // unary answer carries it in the trailers, which is OK.
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0),
                    Err(_) => tonic::Code::Internal as i32,
                };
                let code_name = format!("{:?}", tonic::Code::from_i32(code));
                tracing::Span::current().record("rpc.grpc.status_code", code);
                metrics::counter!("jiaxin_grpc_requests_total", "method" => method.clone(), "code" => code_name)
                    .increment(1);
                metrics::histogram!("jiaxin_grpc_request_duration_seconds", "method" => method)
                    .record(started.elapsed().as_secs_f64());
                result
            },
            span,
        ))
    }
}

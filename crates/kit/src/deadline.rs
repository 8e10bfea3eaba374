//! The server's deadline for each call, by method: `--request-timeout-secs` for the ordinary
//! calls, and the longer `--bulk-request-timeout-secs` for the bulk ones, whose length grows with
//! what they carry (a county's households streamed in one import: about eight minutes for
//! 210,000 at this machine's import rate, where one deadline for all would cut it off at 30 s).
//!
//! A client's own `grpc-timeout` still applies on top (tonic honours it for every call); this
//! layer replaces tonic's server-wide `Server::timeout`, which cannot tell calls apart.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;

/// What a caller past its deadline is told.
pub const DEADLINE_EXCEEDED: &str = "请求超过服务端时限 / the server's deadline for this call passed";

/// Calls whose deadline is the bulk one: the client-streaming RPCs (a unit test checks this
/// list against the proto descriptors, so a new one cannot be missed).
pub const BULK_METHODS: &[&str] = &["/jiaxin.identity.v1.IdentityService/ImportHouseholds"];

/// Ends a call that outlives its deadline with DEADLINE_EXCEEDED (tonic's own timeout said
/// CANCELLED, which a client cannot tell from a call it cancelled itself).
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    ordinary: Duration,
    bulk: Duration,
}

impl DeadlineLayer {
    pub fn new(ordinary: Duration, bulk: Duration) -> Self {
        Self { ordinary, bulk }
    }

    /// The deadline for a call to `path` (`/package.Service/Method`).
    pub fn deadline_for(&self, path: &str) -> Duration {
        if BULK_METHODS.contains(&path) { self.bulk } else { self.ordinary }
    }
}

impl<S> tower_layer::Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService { inner, layer: *self }
    }
}

#[derive(Debug, Clone)]
pub struct DeadlineService<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl<S, ReqBody> tower_service::Service<http::Request<ReqBody>> for DeadlineService<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let deadline = self.layer.deadline_for(request.uri().path());
        let call = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(deadline, call).await {
                Ok(answered) => answered,
                Err(_) => {
                    metrics::counter!("jiaxin_grpc_deadline_exceeded_total").increment(1);
                    Ok(tonic::Status::deadline_exceeded(DEADLINE_EXCEEDED).into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn every_client_streaming_rpc_has_the_bulk_deadline_and_nothing_else_does() {
        let descriptors = prost_types::FileDescriptorSet::decode(jiaxin_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut streaming = Vec::new();
        for file in &descriptors.file {
            for service in &file.service {
                for method in &service.method {
                    if method.client_streaming() {
                        streaming.push(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                    }
                }
            }
        }
        streaming.sort();
        let mut bulk: Vec<String> = BULK_METHODS.iter().map(|m| (*m).to_owned()).collect();
        bulk.sort();
        assert_eq!(streaming, bulk);
    }

    /// A handler that answers after `work`, behind a layer with deadlines of 0.5 s and 2 s.
    async fn call_taking(path: &str, work: Duration) -> Option<String> {
        use tower::{Layer, ServiceExt};
        let handler = tower::service_fn(move |_: http::Request<()>| async move {
            tokio::time::sleep(work).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
        });
        let service = DeadlineLayer::new(Duration::from_millis(500), Duration::from_secs(2)).layer(handler);
        let request = http::Request::builder().uri(path).body(()).unwrap();
        let response = service.oneshot(request).await.unwrap();
        response.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn an_ordinary_call_past_its_deadline_ends_and_a_bulk_one_does_not() {
        let get_score = "/jiaxin.points.v1.PointsService/GetScore";
        let exceeded = Some((tonic::Code::DeadlineExceeded as i32).to_string());
        // Concurrently: the test takes the longest deadline, not the sum.
        let (ordinary_late, ordinary_quick, bulk_late_for_ordinary, bulk_too_late) = tokio::join!(
            call_taking(get_score, Duration::from_millis(1500)),
            call_taking(get_score, Duration::ZERO),
            call_taking(BULK_METHODS[0], Duration::from_millis(1000)),
            call_taking(BULK_METHODS[0], Duration::from_secs(5)),
        );
        assert_eq!(ordinary_late, exceeded);
        assert_eq!(ordinary_quick, None, "answered");
        assert_eq!(bulk_late_for_ordinary, None, "answered");
        assert_eq!(bulk_too_late, exceeded);
    }

    #[test]
    fn bulk_calls_get_the_bulk_deadline() {
        let layer = DeadlineLayer::new(Duration::from_secs(30), Duration::from_secs(3600));
        assert_eq!(layer.deadline_for(BULK_METHODS[0]), Duration::from_secs(3600));
        assert_eq!(layer.deadline_for("/jiaxin.points.v1.PointsService/GetScore"), Duration::from_secs(30));
    }
}

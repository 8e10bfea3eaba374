//! The baseline of every gRPC scenario: a tonic server on the same machine answering one method
//! with a prebuilt message of the real answer's size — the request decoded and the answer
//! encoded with prost, as a real server does, and nothing else. What it reaches is the gRPC
//! stack's own limit here; a service's figure is read against it.

#![allow(clippy::unwrap_used)] // a benchmark program fails loudly

use std::{
    convert::Infallible,
    future::{Ready, ready},
    marker::PhantomData,
    task::{Context, Poll},
};

use tonic::{
    Request, Response, Status,
    body::Body,
    server::{Grpc, NamedService, UnaryService},
    service::Routes,
    transport::Channel,
};
use tonic_prost::ProstCodec;

/// Answers every call to the service named like `S` with `answer`, whatever the method.
pub struct FixedAnswer<S, Req, Resp> {
    answer: Resp,
    _types: PhantomData<fn() -> (S, Req)>,
}

impl<S, Req, Resp: Clone> Clone for FixedAnswer<S, Req, Resp> {
    fn clone(&self) -> Self {
        Self { answer: self.answer.clone(), _types: PhantomData }
    }
}

impl<S, Req, Resp> FixedAnswer<S, Req, Resp> {
    pub fn new(answer: Resp) -> Self {
        Self { answer, _types: PhantomData }
    }
}

impl<S: NamedService, Req, Resp> NamedService for FixedAnswer<S, Req, Resp> {
    const NAME: &'static str = S::NAME;
}

struct Answer<Req, Resp>(Resp, PhantomData<fn() -> Req>);

impl<Req, Resp: Clone> UnaryService<Req> for Answer<Req, Resp> {
    type Response = Resp;
    type Future = Ready<Result<Response<Resp>, Status>>;

    fn call(&mut self, _: Request<Req>) -> Self::Future {
        ready(Ok(Response::new(self.0.clone())))
    }
}

impl<S, Req, Resp, B> tower::Service<http::Request<B>> for FixedAnswer<S, Req, Resp>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Clone + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = Answer(self.answer.clone(), PhantomData);
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<Resp, Req>::default());
            Ok(grpc.unary(answer, request).await)
        })
    }
}

/// Serves tonic services (`Routes::new(service)`) on 127.0.0.1 — TCP_NODELAY, as kit's server
/// does — and connects to them.
pub async fn serve(routes: Routes) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)))
            .await
            .unwrap();
    });
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

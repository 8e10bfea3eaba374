//! One trace across the hop: a gRPC request that causes an event, and a consumer's handling of
//! that event, reach a real OTLP receiver as spans of the caller's trace. (Its own test binary:
//! the tracing subscriber is per process.)

use std::{
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::common::{self, ADMIN_PASSWORD, authed, id_number};
use async_trait::async_trait;
use jiaxin_kit::{
    events,
    inbox::{Consumer, EventHandler, HandlerError},
    storage::{Database, DatabaseLocation, Migrations, Tx},
    telemetry::{self, LogFormat},
};
use jiaxin_proto::{
    events::Envelope,
    identity::{NewResident, RegisterHouseholdRequest, identity_service_client::IdentityServiceClient},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use sqlx::migrate::Migrator;
use tonic::{Request, Response, Status, metadata::MetadataValue};

/// Spans as (trace id hex, name).
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(String, String)>>>);

#[async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push((hex::encode(span.trace_id), span.name));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// A consumer that only acknowledges: the span comes from the inbox machinery around it.
struct Ack;

#[async_trait]
impl EventHandler for Ack {
    async fn handle(&self, _tx: &mut Tx, _envelope: &Envelope) -> Result<(), HandlerError> {
        Ok(())
    }
}

static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;
static CONSUMER_MIGRATIONS: Migrations = Migrations { sqlite: &NO_MIGRATIONS, postgres: Some(&NO_MIGRATIONS) };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_and_the_handling_of_its_event_share_one_trace_at_the_otlp_receiver() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let guard = telemetry::init(LogFormat::Json, Some(&endpoint), "jiaxin-test").unwrap();

    // A system of its own (the shared cluster's processes export nowhere), on the run's bus: in
    // the distributed suite the event crosses the broker.
    let sys = common::TestSystem::start_private(true).await;
    let dir = tempfile::tempdir().unwrap();
    let consumer_db = Database::connect(&DatabaseLocation::sqlite_in(dir.path(), "consumer").unwrap()).await.unwrap();
    consumer_db.migrate("consumer", &CONSUMER_MIGRATIONS).await.unwrap();
    let consumer = Arc::new(Consumer::new("trace-test", consumer_db.clone(), Arc::new(Ack)));
    sys.bus().subscribe(&[events::topic("identity")], consumer).await.unwrap();

    let token = sys.login(sys.admin_username(), ADMIN_PASSWORD).await;
    let mut client = IdentityServiceClient::new(sys.channel().await);
    let grid = common::grid_under_scope(&mut client, &token, "").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let head =
        NewResident { name: "陈家明".into(), id_number: id_number("320830", "19700305", 1), phone: String::new() };
    let mut request = authed(
        &token,
        RegisterHouseholdRequest {
            grid_id: grid, address: "新街村1号".into(), head: Some(head), ..Default::default()
        },
    );
    request
        .metadata_mut()
        .insert("traceparent", MetadataValue::from_str(&format!("00-{trace_id}-00f067aa0ba902b7-01")).unwrap());
    let household = client.register_household(request).await.unwrap().into_inner().household.unwrap();

    // Wait until the consumer has applied the household's events (through Kafka the group's first
    // assignment takes seconds), then flush every span to the receiver.
    let identity_db = sys.database(jiaxin::system::ServiceName::Identity).await;
    let caused: Vec<String> = sqlx::query_scalar("SELECT event_id FROM kit_outbox WHERE partition_key = $1")
        .bind(&household.id)
        .fetch_all(identity_db.pool())
        .await
        .unwrap();
    assert_eq!(caused.len(), 2, "HouseholdRegistered and MemberJoined");
    for _ in 0..600 {
        let mut applied = 0;
        for event_id in &caused {
            let found: Option<String> = sqlx::query_scalar("SELECT event_id FROM kit_inbox WHERE event_id = $1")
                .bind(event_id)
                .fetch_optional(consumer_db.pool())
                .await
                .unwrap();
            applied += usize::from(found.is_some());
        }
        if applied == caused.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut sys = sys;
    sys.stop().await;
    drop(guard);
    let spans = receiver.0.lock().unwrap().clone();
    server.abort();
    let in_trace: Vec<&String> = spans.iter().filter(|(t, _)| t == trace_id).map(|(_, n)| n).collect();
    assert!(
        in_trace.iter().any(|n| n.as_str() == "/jiaxin.identity.v1.IdentityService/RegisterHousehold"),
        "the request's span is in the caller's trace: {spans:?}"
    );
    assert!(
        in_trace.iter().any(|n| n.as_str() == "event.consume"),
        "the consumer's span is in the same trace: {spans:?}"
    );
}

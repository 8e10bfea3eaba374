//! Building and reading event envelopes.

use jiaxin_proto::events::Envelope;
use prost::{Message, Name};

use crate::telemetry;

/// The topic a service publishes on: `jiaxin.<service>.v1`.
pub fn topic(service: &str) -> String {
    format!("jiaxin.{service}.v1")
}

/// The topics of the services `producers` (a consumer's subscriptions).
pub fn topics(producers: &[&str]) -> Vec<String> {
    producers.iter().map(|producer| topic(producer)).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("cannot encode event payload: {0}")]
    Encode(#[from] prost::EncodeError),
    #[error("cannot decode event: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("event has no payload")]
    MissingPayload,
}

/// Wraps `event` in an envelope with a fresh id, the current time and the current trace context.
pub fn envelope<M: Name>(producer: &str, partition_key: &str, event: &M) -> Result<Envelope, EnvelopeError> {
    Ok(Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: M::full_name(),
        partition_key: partition_key.to_owned(),
        occurred_at: Some(crate::time::to_timestamp(crate::time::now_micros())),
        producer: producer.to_owned(),
        trace_context: telemetry::current_trace_context(),
        payload: Some(prost_types::Any::from_msg(event)?),
    })
}

/// Decodes the payload when the envelope carries an `M`; `None` for any other type, so a handler
/// can try the types it knows in turn.
pub fn payload<M: Name + Default>(envelope: &Envelope) -> Result<Option<M>, EnvelopeError> {
    if envelope.event_type != M::full_name() {
        return Ok(None);
    }
    let any = envelope.payload.as_ref().ok_or(EnvelopeError::MissingPayload)?;
    Ok(Some(M::decode(any.value.as_slice())?))
}

pub fn encode(envelope: &Envelope) -> Vec<u8> {
    envelope.encode_to_vec()
}

pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    Ok(Envelope::decode(bytes)?)
}

//! Event envelopes as they come off Kafka: any bytes must decode or be refused, and a decoded
//! envelope's payload must unpack as its type or be refused — never a panic in a consumer.
#![no_main]

use jiaxin_kit::events;
use jiaxin_proto::{identity::HouseholdRegistered, points::ScoreChanged};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(envelope) = events::decode(bytes) {
        let _ = events::payload::<HouseholdRegistered>(&envelope);
        let _ = events::payload::<ScoreChanged>(&envelope);
        let again = events::decode(&events::encode(&envelope));
        assert_eq!(again.ok(), Some(envelope));
    }
});

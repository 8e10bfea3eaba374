//! Time as the stores keep it: microseconds since the Unix epoch in a BIGINT, the one timestamp
//! representation SQLite and PostgreSQL share without driver-specific types.

use chrono::{DateTime, TimeZone, Utc};

pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub fn to_timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

pub fn to_datetime(micros: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_micros(micros).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_micros_convert_to_normalised_timestamps() {
        let ts = to_timestamp(-1);
        assert_eq!((ts.seconds, ts.nanos), (-1, 999_999_000));
        let ts = to_timestamp(1_500_000);
        assert_eq!((ts.seconds, ts.nanos), (1, 500_000_000));
    }
}

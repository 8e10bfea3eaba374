//! Time as the stores keep it: microseconds since the Unix epoch in a BIGINT, the one timestamp
//! representation SQLite and PostgreSQL share without driver-specific types.

use std::sync::{
    LazyLock,
    atomic::{AtomicI64, Ordering},
};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use tokio::sync::watch;

/// Adulthood under PRC civil law: 18 full years.
pub const ADULT_AGE: i32 = 18;

/// A clock that can run ahead of the wall clock, and tells its watchers when it moves.
struct Clock {
    ahead_micros: AtomicI64,
    moves: watch::Sender<i64>,
}

impl Clock {
    fn new() -> Self {
        Self { ahead_micros: AtomicI64::new(0), moves: watch::Sender::new(0) }
    }

    fn now_micros(&self) -> i64 {
        Utc::now().timestamp_micros() + self.ahead_micros.load(Ordering::Relaxed)
    }

    /// Never back: time in the stores only moves forward.
    fn set_ahead(&self, micros: i64) {
        let ahead = self.ahead_micros.fetch_max(micros.max(0), Ordering::Relaxed).max(micros);
        self.moves.send_replace(ahead);
    }
}

/// This process's clock. It runs ahead of the wall clock only in `jiaxin demo`, which moves it to
/// play the days a county waits through (a 公示 period, the wait before a credit repair) in
/// seconds; in every deployment it is the wall clock. Every service in the process reads it, so
/// they agree on what day it is.
static CLOCK: LazyLock<Clock> = LazyLock::new(Clock::new);

/// Now, in microseconds since the Unix epoch (the wall clock, outside the demo).
pub fn now_micros() -> i64 {
    CLOCK.now_micros()
}

/// Now in whole seconds (token lifetimes), on the same clock as [`now_micros`].
pub fn now_secs() -> i64 {
    now_micros().div_euclid(1_000_000)
}

/// How far the clock runs ahead of the wall clock, in microseconds.
pub fn clock_ahead_micros() -> i64 {
    CLOCK.ahead_micros.load(Ordering::Relaxed)
}

/// Moves this process's clock to run `micros` ahead of the wall clock and wakes the tickers, so
/// what fell due in the skipped days happens at once. For `jiaxin demo` only.
pub fn set_clock_ahead(micros: i64) {
    CLOCK.set_ahead(micros);
}

/// Sees every move of the clock (tickers wait on it beside their interval).
pub fn clock_moves() -> watch::Receiver<i64> {
    CLOCK.moves.subscribe()
}

pub const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

/// A protobuf timestamp as the stores keep time (saturating far outside any real date).
pub fn from_timestamp(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds.saturating_mul(1_000_000).saturating_add(i64::from(ts.nanos) / 1_000)
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

/// Full years of age on `day`.
pub fn age_on(birth: NaiveDate, day: NaiveDate) -> i32 {
    let mut age = day.year() - birth.year();
    if (day.month(), day.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// A calendar date as the APIs write it, strictly `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// The calendar date of a moment in China (UTC+8, no daylight saving): a paper form signed at
/// 07:00 Beijing time on the 1st is signed on the 1st.
pub fn china_date(micros: i64) -> Option<NaiveDate> {
    let offset = chrono::FixedOffset::east_opt(8 * 3600)?;
    to_datetime(micros).map(|at| at.with_timezone(&offset).date_naive())
}

/// A moment's date in China as the APIs write it (`YYYY-MM-DD`), e.g. to compare with a
/// validity date; empty for a moment chrono cannot represent.
pub fn china_day(micros: i64) -> String {
    china_date(micros).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// The first moment of a day in China (UTC+8), in microseconds: where a China year or month
/// begins.
pub fn china_midnight(day: NaiveDate) -> Option<i64> {
    let offset = chrono::FixedOffset::east_opt(8 * 3600)?;
    let midnight = day.and_hms_opt(0, 0, 0)?;
    chrono::TimeZone::from_local_datetime(&offset, &midnight).single().map(|at| at.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_count_full_years_and_dates_are_strict() {
        let birth = NaiveDate::from_ymd_opt(2008, 11, 30).unwrap();
        assert_eq!(age_on(birth, NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()), 17);
        assert_eq!(age_on(birth, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()), 18);
        assert_eq!(parse_date("2026-02-28"), NaiveDate::from_ymd_opt(2026, 2, 28));
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_date("2026-2-8"), None);
        // 2026-11-29 16:30 UTC is already the 30th in Beijing.
        let late = Utc.with_ymd_and_hms(2026, 11, 29, 16, 30, 0).unwrap().timestamp_micros();
        assert_eq!(china_date(late), NaiveDate::from_ymd_opt(2026, 11, 30));
    }

    // A clock of its own: the process's clock is shared by every test in this binary.
    #[tokio::test]
    async fn a_clock_moves_only_forward_and_tells_whoever_waits() {
        let clock = Clock::new();
        let mut moves = clock.moves.subscribe();
        let before = clock.now_micros();
        clock.set_ahead(3 * DAY_MICROS);
        moves.changed().await.unwrap();
        assert_eq!(*moves.borrow_and_update(), 3 * DAY_MICROS);
        assert!(clock.now_micros() >= before + 3 * DAY_MICROS);
        clock.set_ahead(DAY_MICROS);
        assert_eq!(clock.ahead_micros.load(Ordering::Relaxed), 3 * DAY_MICROS, "never back");
        clock.set_ahead(-DAY_MICROS);
        assert_eq!(clock.ahead_micros.load(Ordering::Relaxed), 3 * DAY_MICROS, "never back");
        assert!(clock.now_micros() < before + 4 * DAY_MICROS);
    }

    #[test]
    fn negative_micros_convert_to_normalised_timestamps() {
        let ts = to_timestamp(-1);
        assert_eq!((ts.seconds, ts.nanos), (-1, 999_999_000));
        let ts = to_timestamp(1_500_000);
        assert_eq!((ts.seconds, ts.nanos), (1, 500_000_000));
        assert_eq!(from_timestamp(&ts), 1_500_000);
    }
}

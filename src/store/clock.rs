//! The time a store reads as "now", for tests that move time instead of sleeping.
//!
//! Every statement of both backends reads the current time through one SQL function,
//! `porter_now()`, instead of the database's own clock function: on SQLite a function of each
//! connection (registered in Rust, evaluated once per statement like SQLite's `'now'`), on
//! PostgreSQL a `STABLE` SQL function from migration 0002 that reads the session setting
//! `porter.now` and falls back to `now()`. A store opened with [`crate::store::open`] always
//! reads the real clock (on PostgreSQL the setting is never set, so nothing is added to any
//! round trip). A store opened with [`crate::store::open_with_clock`] reads the [`Clock`] it
//! was given: real time until a test [`Clock::set`]s it, then that time until it is moved or
//! [`Clock::reset`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A clock that tests can set and advance; shared by every clone. Real time by default.
#[derive(Clone, Default)]
pub struct Clock {
    fixed: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("fixed", &self.fixed())
            .finish()
    }
}

impl Clock {
    /// A clock that reads real time until it is set.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, "now" is `at` (until moved again), kept inside the range both databases
    /// store with room for the longest duration added to it ([`clamp`]).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.fixed.lock().expect("clock lock") = Some(clamp(at));
    }

    /// Moves "now" forward by `by`: from the time set last, or from real time when unset.
    /// Returns the new time.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut fixed = self.fixed.lock().expect("clock lock");
        let from = fixed.unwrap_or_else(Utc::now);
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let at = clamp(
            from.checked_add_signed(by)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        );
        *fixed = Some(at);
        at
    }

    /// Back to real time.
    pub fn reset(&self) {
        *self.fixed.lock().expect("clock lock") = None;
    }

    /// The time it was set to, or `None` when it reads real time.
    pub fn fixed(&self) -> Option<DateTime<Utc>> {
        *self.fixed.lock().expect("clock lock")
    }

    /// What "now" is.
    pub fn now(&self) -> DateTime<Utc> {
        self.fixed().unwrap_or_else(Utc::now)
    }
}

/// The latest time a test clock may read: year 8000, so that adding the longest duration the
/// stores accept ([`crate::store::MAX_DURATION`], 1,000 years) stays before year 9999, past
/// which SQLite's date functions give NULL. The earliest is the Unix epoch.
pub fn clamp(at: DateTime<Utc>) -> DateTime<Utc> {
    let latest = DateTime::parse_from_rfc3339("8000-01-01T00:00:00Z")
        .expect("a time")
        .with_timezone(&Utc);
    at.clamp(DateTime::<Utc>::UNIX_EPOCH, latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_stays_inside_what_the_databases_store() {
        let clock = Clock::new();
        assert_eq!(clock.fixed(), None, "real time until set");
        clock.set(DateTime::<Utc>::MAX_UTC);
        let latest = clock.now();
        assert!(latest.format("%Y").to_string() == "8000", "{latest}");
        assert_eq!(
            clock.advance(Duration::MAX),
            latest,
            "advancing saturates at the same bound"
        );
        clock.set(DateTime::<Utc>::MIN_UTC);
        assert_eq!(clock.now(), DateTime::<Utc>::UNIX_EPOCH);
        clock.reset();
        assert!((clock.now() - Utc::now()).num_seconds().abs() < 60);
    }
}

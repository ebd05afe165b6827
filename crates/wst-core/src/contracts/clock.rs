//! Where library code takes the time of day from: a [`Clock`] the caller controls.
//!
//! Every timestamp wst writes into evidence (audit records, sidecars, run reports, verification
//! and drill reports, prune records, artifact names) comes from a [`Clock`] handed in by the
//! caller, the way the retention planner takes `now` (rustic's `KeepOptions::apply(snapshots,
//! now)` never reads the clock either). Production code uses [`Clock::system`] (the default);
//! tests and simulations use [`Clock::manual`] and move it explicitly, so a test that evaluates
//! compliance at a chosen `now` writes its records at chosen times and never depends on the date
//! the test happens to run on.
//!
//! Durations (RTO, phase timings) are measured with [`std::time::Instant`], which is monotonic
//! and not evidence of *when*; a clock only answers "what time is it (UTC)".

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};

/// The source of "now" (UTC, nanosecond resolution) for everything the library stamps.
///
/// Cheap to clone (clones share a manual clock's state). `Clock::default()` is
/// [`Clock::system`].
///
/// ```
/// use wst_core::Clock;
/// let clock = Clock::manual("2026-11-21T12:00:00Z".parse().unwrap());
/// clock.advance(jiff::SignedDuration::from_hours(25));
/// assert_eq!(clock.now().to_string(), "2026-11-22T13:00:00Z");
/// ```
#[derive(Clone, Default)]
pub struct Clock {
    inner: Inner,
}

#[derive(Clone, Default)]
enum Inner {
    #[default]
    System,
    Manual(Arc<Mutex<Timestamp>>),
    Custom(Arc<dyn Fn() -> Timestamp + Send + Sync>),
}

impl Clock {
    /// The operating system's real-time clock ([`Timestamp::now`]).
    pub fn system() -> Self {
        Self {
            inner: Inner::System,
        }
    }

    /// A clock that stands at `start` until [`Clock::set`] or [`Clock::advance`] moves it;
    /// every clone sees the same time. For tests and simulations.
    pub fn manual(start: Timestamp) -> Self {
        Self {
            inner: Inner::Manual(Arc::new(Mutex::new(start))),
        }
    }

    /// A clock that asks `now` each time (e.g. a service's own time source, or a clock offset
    /// from the system's).
    pub fn from_fn(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Self {
            inner: Inner::Custom(Arc::new(now)),
        }
    }

    /// The current time (UTC).
    pub fn now(&self) -> Timestamp {
        match &self.inner {
            Inner::System => Timestamp::now(),
            Inner::Manual(t) => *t.lock().unwrap_or_else(PoisonError::into_inner),
            Inner::Custom(f) => f(),
        }
    }

    /// Whether this is a [`Clock::manual`] clock (which stands still unless moved).
    pub fn is_manual(&self) -> bool {
        matches!(self.inner, Inner::Manual(_))
    }

    /// Moves a manual clock to `t`. No effect on other clocks.
    pub fn set(&self, t: Timestamp) {
        if let Inner::Manual(m) = &self.inner {
            *m.lock().unwrap_or_else(PoisonError::into_inner) = t;
        }
    }

    /// Moves a manual clock by `by` (negative: back). Saturates at jiff's range. No effect on
    /// other clocks.
    pub fn advance(&self, by: SignedDuration) {
        if let Inner::Manual(m) = &self.inner {
            let mut t = m.lock().unwrap_or_else(PoisonError::into_inner);
            *t = t.saturating_add(by).unwrap_or(*t);
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::System => f.write_str("Clock::system"),
            Inner::Manual(_) => write!(f, "Clock::manual({})", self.now()),
            Inner::Custom(_) => f.write_str("Clock::from_fn"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let start: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
        let c = Clock::manual(start);
        let d = c.clone();
        assert_eq!(c.now(), start);
        d.advance(SignedDuration::from_secs(90));
        assert_eq!(
            c.now(),
            "2026-11-21T12:01:30Z".parse::<Timestamp>().unwrap()
        );
        c.set(start);
        assert_eq!(d.now(), start);
        assert!(c.is_manual());
    }

    #[test]
    fn system_and_custom_clocks() {
        let fixed: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(Clock::from_fn(move || fixed).now(), fixed);
        let s = Clock::system();
        s.advance(SignedDuration::from_hours(1)); // no effect, no panic
        let a = s.now();
        assert!(Clock::default().now() >= a);
        assert!(!s.is_manual());
    }
}

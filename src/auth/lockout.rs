//! Backoff and lockout after consecutive failed logins: pure arithmetic on the count
//! of failures and the time of the last one, which the API keeps per account and
//! resets on a successful login.
//!
//! | consecutive failures | next attempt allowed                     | answer |
//! |----------------------|------------------------------------------|--------|
//! | 1 to 3               | at once                                  |        |
//! | 4, 5, 6 … 9          | 1 s, 2 s, 4 s … 32 s after the last one  | 429    |
//! | 10 and more          | 15 min after the last one (locked)       | 423    |
//!
//! The backoff doubles per failure and is capped at [`MAX_BACKOFF`], so raising
//! [`LOCK_AFTER`] keeps delays bounded. A failure while locked (the API should not
//! even check the password then) would extend the lock from that failure.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// Failures allowed without any delay.
pub const FREE_FAILURES: u32 = 3;
/// Delay after the first failure past [`FREE_FAILURES`]; doubles with each failure.
pub const FIRST_BACKOFF: TimeDelta = TimeDelta::seconds(1);
/// Longest backoff delay.
pub const MAX_BACKOFF: TimeDelta = TimeDelta::minutes(15);
/// Failures after which the account is locked.
pub const LOCK_AFTER: u32 = 10;
/// How long a lock lasts, from the last failure.
pub const LOCK_DURATION: TimeDelta = TimeDelta::minutes(15);

/// Why a login attempt must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    /// Slow down: HTTP 429 Too Many Requests.
    Backoff { until: DateTime<Utc> },
    /// Locked after [`LOCK_AFTER`] failures: HTTP 423 Locked.
    Locked { until: DateTime<Utc> },
}

impl Lockout {
    /// Whether an attempt at `now` must wait, given `failures` consecutive failures
    /// the last of which was at `last_failure`.
    pub fn check(failures: u32, last_failure: DateTime<Utc>, now: DateTime<Utc>) -> Option<Self> {
        let until = next_attempt_allowed_at(failures, last_failure)?;
        if now >= until {
            None
        } else if failures >= LOCK_AFTER {
            Some(Lockout::Locked { until })
        } else {
            Some(Lockout::Backoff { until })
        }
    }

    /// When the next attempt is allowed.
    pub fn until(&self) -> DateTime<Utc> {
        match self {
            Lockout::Backoff { until } | Lockout::Locked { until } => *until,
        }
    }

    /// 429 for backoff, 423 for a lock.
    pub fn status_code(&self) -> u16 {
        match self {
            Lockout::Backoff { .. } => 429,
            Lockout::Locked { .. } => 423,
        }
    }

    /// Whole seconds from `now` to [`Lockout::until`], rounded up, for `Retry-After`.
    pub fn retry_after_secs(&self, now: DateTime<Utc>) -> u64 {
        let wait = self.until() - now;
        let secs = wait.num_seconds() + i64::from(wait.subsec_nanos() > 0);
        u64::try_from(secs).unwrap_or(0)
    }

    /// The message for the client.
    pub fn describe(&self) -> String {
        match self {
            Lockout::Backoff { until } => format!(
                "too many failed logins: try again at {}",
                until.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            Lockout::Locked { until } => format!(
                "too many failed logins ({LOCK_AFTER} in a row), the account is locked: try again at {}, or ask an admin to reset the password",
                until.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
        }
    }
}

/// When the next attempt is allowed after `failures` consecutive failures, the last
/// at `last_failure`; `None` when there is no delay at all.
pub fn next_attempt_allowed_at(
    failures: u32,
    last_failure: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    delay(failures).map(|delay| {
        last_failure
            .checked_add_signed(delay)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    })
}

/// The wait after `failures` consecutive failures.
fn delay(failures: u32) -> Option<TimeDelta> {
    if failures >= LOCK_AFTER {
        return Some(LOCK_DURATION);
    }
    let past_free = failures.checked_sub(FREE_FAILURES).filter(|&n| n > 0)?;
    // 1 s · 2^(past_free − 1), capped; the shift is bounded so it cannot overflow.
    let exponent = (past_free - 1).min(30);
    let backoff = FIRST_BACKOFF * (1_i32 << exponent);
    Some(backoff.min(MAX_BACKOFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).expect("valid time")
    }

    #[test]
    fn no_delay_for_the_first_three_failures() {
        for failures in 0..=FREE_FAILURES {
            assert_eq!(next_attempt_allowed_at(failures, t0()), None, "{failures}");
            assert_eq!(Lockout::check(failures, t0(), t0()), None);
        }
    }

    #[test]
    fn exponential_backoff_then_lock() {
        let expected = [
            (4, TimeDelta::seconds(1)),
            (5, TimeDelta::seconds(2)),
            (6, TimeDelta::seconds(4)),
            (7, TimeDelta::seconds(8)),
            (8, TimeDelta::seconds(16)),
            (9, TimeDelta::seconds(32)),
            (10, TimeDelta::minutes(15)),
            (11, TimeDelta::minutes(15)),
            (u32::MAX, TimeDelta::minutes(15)),
        ];
        for (failures, wait) in expected {
            assert_eq!(
                next_attempt_allowed_at(failures, t0()),
                Some(t0() + wait),
                "{failures}"
            );
        }
    }

    #[test]
    fn backoff_is_capped() {
        for failures in FREE_FAILURES + 1..=200 {
            assert!(delay(failures).expect("delay") <= MAX_BACKOFF);
        }
    }

    #[test]
    fn check_at_the_boundaries() {
        // 4 failures: 1 s backoff, answered 429 until exactly then.
        let b = Lockout::check(4, t0(), t0()).expect("wait");
        assert_eq!(
            b,
            Lockout::Backoff {
                until: t0() + TimeDelta::seconds(1)
            }
        );
        assert_eq!(b.status_code(), 429);
        assert_eq!(b.retry_after_secs(t0()), 1);
        let almost = t0() + TimeDelta::milliseconds(999);
        assert!(Lockout::check(4, t0(), almost).is_some());
        assert_eq!(b.retry_after_secs(almost), 1);
        assert_eq!(Lockout::check(4, t0(), t0() + TimeDelta::seconds(1)), None);

        // 9 failures: still backoff; 10: locked for 15 minutes, 423.
        assert!(matches!(
            Lockout::check(9, t0(), t0()),
            Some(Lockout::Backoff { .. })
        ));
        let l = Lockout::check(10, t0(), t0()).expect("locked");
        assert_eq!(
            l,
            Lockout::Locked {
                until: t0() + TimeDelta::minutes(15)
            }
        );
        assert_eq!(l.status_code(), 423);
        assert_eq!(l.retry_after_secs(t0()), 900);
        assert!(Lockout::check(10, t0(), t0() + TimeDelta::seconds(899)).is_some());
        assert_eq!(
            Lockout::check(10, t0(), t0() + TimeDelta::minutes(15)),
            None
        );
        assert_eq!(l.retry_after_secs(t0() + TimeDelta::hours(1)), 0);
    }

    #[test]
    fn describe_says_when() {
        let b = Lockout::check(4, t0(), t0()).expect("wait");
        assert_eq!(
            b.describe(),
            "too many failed logins: try again at 2025-06-15T15:06:41Z"
        );
        let l = Lockout::check(10, t0(), t0()).expect("locked");
        assert!(
            l.describe()
                .starts_with("too many failed logins (10 in a row), the account is locked: try again at 2025-06-15T15:21:40Z"),
            "{}",
            l.describe()
        );
    }
}

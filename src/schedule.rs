//! Cron schedules in a time zone: when `coffre serve` starts each job, decided purely.
//!
//! A [`Schedule`] is a cron expression read in an IANA time zone. Expressions have 5 fields
//! (`minute hour day-of-month month day-of-week`, as in crontab) or 6 with seconds first
//! (for tests that want a run every few seconds); `@daily`-style nicknames work too. Parsing
//! and evaluation are the `croner` crate's (Vixie-cron semantics: a restricted day of month
//! and day of week match when either does), time zones are `chrono-tz`'s.
//!
//! Daylight-saving changes follow croner's rules (the Open Cron Pattern Specification): a
//! job at a fixed time that the clock skips (02:30 in Paris on the last Sunday of March)
//! runs at the first instant after the gap (03:00); one at a fixed time that the clock
//! repeats (02:30 on the last Sunday of October) runs once, on the first pass. Interval
//! jobs (`*/15 * * * *`, `0 * * * *`) follow elapsed time and run in both passes.
//!
//! How the scheduler uses it:
//!
//! * slots are the nominal times of the expression: [`Schedule::next_after`] and
//!   [`Schedule::last_at_or_before`];
//! * a job with a jitter starts at [`Schedule::start_time`] (the slot plus
//!   [`Schedule::jitter_for`] its name), which spreads sources sharing one expression
//!   while keeping each source on the same offset from run to run;
//! * the scheduler records the *slot* it served as the schedule's last run, and at start-up
//!   [`Schedule::missed_since`] says which missed slot, if any, to run once now.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use sha2::{Digest, Sha256};

/// What every expression error shows as a valid example.
const EXAMPLES: &str = "e.g. \"30 2 * * *\" for 02:30 every day, \"0 */6 * * *\" every six hours, \
                        or \"*/10 * * * * *\" every 10 seconds";

/// The names of the fields of a 6-field expression; a 5-field one has no seconds.
const FIELDS: [(&str, &str); 6] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31, L or W"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-7 or SUN-SAT, 0 and 7 being Sunday"),
];

/// The nicknames croner knows.
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// Why an expression or a time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "schedule {expr:?}: {count} fields, expected 5 (minute hour day-of-month month \
         day-of-week) or 6 with seconds first ({EXAMPLES})"
    )]
    FieldCount { expr: String, count: usize },
    #[error(
        "schedule {expr:?}: {field} field {value:?}: {reason} (allowed: {allowed}; {EXAMPLES})"
    )]
    Field {
        expr: String,
        field: &'static str,
        value: String,
        allowed: &'static str,
        reason: String,
    },
    #[error("schedule {expr:?}: {reason} ({EXAMPLES})")]
    Invalid { expr: String, reason: String },
    #[error(
        "schedule {expr:?} never matches a real date (such as the 30th of February): \
         check its day of month and month ({EXAMPLES})"
    )]
    Never { expr: String },
    #[error(
        "unknown time zone {zone:?}{hint} (use an IANA name such as \"Europe/Paris\" or \"UTC\")"
    )]
    UnknownZone { zone: String, hint: String },
}

/// A cron expression in a time zone, with an optional jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    tz: Tz,
    jitter: Duration,
}

impl Schedule {
    /// Parses a 5-field (or 6-field, seconds first) cron expression, read in the IANA time
    /// zone `tz` (e.g. `"Europe/Paris"`, `"UTC"`). An expression that never matches a real
    /// date is refused too.
    pub fn parse(expr: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        let tz = parse_zone(tz)?;
        let expr = expr.trim();
        let cron = parse_cron(expr)?;
        let schedule = Schedule {
            expr: expr.to_owned(),
            cron,
            tz,
            jitter: Duration::ZERO,
        };
        // Without a year field, an expression that matches at all matches within a few
        // years of any date (28 for a weekday on a 29th of February): searching from a fixed
        // date keeps parsing pure.
        let reference = DateTime::<Utc>::from_timestamp(946_684_800, 0); // 2000-01-01
        if reference.and_then(|t| schedule.next_after(t)).is_none() {
            return Err(ScheduleError::Never {
                expr: expr.to_owned(),
            });
        }
        Ok(schedule)
    }

    /// The same schedule, whose jobs start up to `max` after each slot (see
    /// [`Schedule::jitter_for`]). Keep `max` well below the interval between slots.
    #[must_use]
    pub fn with_jitter(mut self, max: Duration) -> Schedule {
        self.jitter = max;
        self
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// The time zone the expression is read in.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The largest jitter ([`Duration::ZERO`] when none was set).
    pub fn max_jitter(&self) -> Duration {
        self.jitter
    }

    /// The first slot strictly after `t`, or `None` if there is none before the year 5000.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// The latest slot at or before `t`, if any.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|previous| previous.with_timezone(&Utc))
    }

    /// The offset of the job `name` after each slot: the same for the same expression, time
    /// zone, maximum and name, in every run and every process (SHA-256 of them, not a seeded
    /// hasher), spread over `0..=max` to the millisecond, and never more than the maximum.
    pub fn jitter_for(&self, name: &str) -> Duration {
        let max_ms = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if max_ms == 0 {
            return Duration::ZERO;
        }
        let digest = Sha256::new()
            .chain_update(self.expr.as_bytes())
            .chain_update([0])
            .chain_update(self.tz.name().as_bytes())
            .chain_update([0])
            .chain_update(name.as_bytes())
            .finalize();
        let hash = digest
            .first_chunk::<8>()
            .map_or(0, |bytes| u64::from_be_bytes(*bytes));
        // max_ms < u64::MAX here unless the maximum is absurd; then the offset is < max.
        Duration::from_millis(hash % max_ms.saturating_add(1))
    }

    /// When the job `name` starts for `slot`: the slot plus its jitter.
    pub fn start_time(&self, slot: DateTime<Utc>, name: &str) -> DateTime<Utc> {
        TimeDelta::from_std(self.jitter_for(name))
            .ok()
            .and_then(|offset| slot.checked_add_signed(offset))
            .unwrap_or(slot)
    }

    /// The slot to catch up once at start-up: the latest slot in `(last_run, now]` (any slot
    /// at or before `now` when the job never ran), if it is at most `window` before `now`;
    /// otherwise `None` (nothing missed, or missed too long ago to be worth running now).
    /// `last_run` is the slot the scheduler last served.
    pub fn missed_since(
        &self,
        last_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Option<DateTime<Utc>> {
        let slot = self.last_at_or_before(now)?;
        if last_run.is_some_and(|last| slot <= last) {
            return None;
        }
        let window = TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
        (now - slot <= window).then_some(slot)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" in {}", self.expr, self.tz.name())?;
        if !self.jitter.is_zero() {
            write!(f, " with up to {} ms of jitter", self.jitter.as_millis())?;
        }
        Ok(())
    }
}

/// An IANA zone name, or an error suggesting the nearest one.
fn parse_zone(zone: &str) -> Result<Tz, ScheduleError> {
    let trimmed = zone.trim();
    trimmed.parse::<Tz>().map_err(|_| {
        let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
        let hint = crate::config::did_you_mean(trimmed, names)
            .map(|name| format!(": did you mean {name:?}?"))
            .unwrap_or_default();
        ScheduleError::UnknownZone {
            zone: zone.to_owned(),
            hint,
        }
    })
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Parses with croner; on error, finds the first field croner refuses on its own.
fn parse_cron(expr: &str) -> Result<Cron, ScheduleError> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let nickname = fields.len() == 1 && fields.first().is_some_and(|f| f.starts_with('@'));
    if nickname && !NICKNAMES.iter().any(|n| expr.eq_ignore_ascii_case(n)) {
        return Err(ScheduleError::Invalid {
            expr: expr.to_owned(),
            reason: format!("unknown nickname (use one of {})", NICKNAMES.join(", ")),
        });
    }
    if !nickname && !(5..=6).contains(&fields.len()) {
        return Err(ScheduleError::FieldCount {
            expr: expr.to_owned(),
            count: fields.len(),
        });
    }
    let error = match parser().parse(expr) {
        Ok(cron) => return Ok(cron),
        Err(error) => error,
    };
    if !nickname {
        let names = &FIELDS[6 - fields.len()..];
        for (i, (value, (field, allowed))) in fields.iter().zip(names).enumerate() {
            let alone: Vec<&str> = (0..fields.len())
                .map(|j| if j == i { *value } else { "*" })
                .collect();
            if let Err(e) = parser().parse(&alone.join(" ")) {
                return Err(ScheduleError::Field {
                    expr: expr.to_owned(),
                    field,
                    value: (*value).to_owned(),
                    allowed,
                    reason: cron_reason(&e),
                });
            }
        }
    }
    Err(ScheduleError::Invalid {
        expr: expr.to_owned(),
        reason: cron_reason(&error),
    })
}

/// croner's message, in the house style: lowercase, no final period, no "Component error:".
fn cron_reason(error: &CronError) -> String {
    let text = match error {
        CronError::InvalidPattern(m)
        | CronError::ComponentError(m)
        | CronError::IllegalCharacters(m) => m.clone(),
        other => other.to_string(),
    };
    let text = text.trim().trim_end_matches('.');
    let text = text.strip_prefix("CronPattern ").unwrap_or(text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "invalid expression".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{SecondsFormat, TimeZone};

    /// A wall-clock time in `tz` as UTC: `None` when the clock skips it, the first instant
    /// when it comes twice.
    fn local_to_utc(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Option<DateTime<Utc>> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid test time")
            .with_timezone(&Utc)
    }

    fn show(t: Option<DateTime<Utc>>) -> String {
        t.map_or("none".to_owned(), |t| {
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        })
    }

    /// The first `n` slots strictly after `from`.
    fn slots(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut t = utc(from);
        for _ in 0..n {
            let next = s.next_after(t);
            out.push(show(next));
            match next {
                Some(next) => t = next,
                None => break,
            }
        }
        out
    }

    fn paris(expr: &str) -> Schedule {
        Schedule::parse(expr, "Europe/Paris").expect("valid schedule")
    }

    #[test]
    fn five_fields_in_utc() {
        let s = Schedule::parse("30 2 * * *", "UTC").expect("valid");
        assert_eq!(s.expression(), "30 2 * * *");
        assert_eq!(s.time_zone(), Tz::UTC);
        assert_eq!(
            slots(&s, "2026-11-22T01:00:00Z", 2),
            ["2026-11-22T02:30:00Z", "2026-11-23T02:30:00Z"]
        );
        // Strictly after: a slot is not its own successor.
        assert_eq!(
            show(s.next_after(utc("2026-11-22T02:30:00Z"))),
            "2026-11-23T02:30:00Z"
        );
        assert_eq!(
            show(s.next_after(utc("2026-11-22T02:29:59.999Z"))),
            "2026-11-22T02:30:00Z"
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let s = Schedule::parse("*/3 * * * * *", "UTC").expect("valid");
        assert_eq!(
            slots(&s, "2026-11-22T10:00:58Z", 4),
            [
                "2026-11-22T10:01:00Z",
                "2026-11-22T10:01:03Z",
                "2026-11-22T10:01:06Z",
                "2026-11-22T10:01:09Z"
            ]
        );
        // A 5-field expression runs at second 0.
        let s = Schedule::parse("*/5 * * * *", "UTC").expect("valid");
        assert_eq!(
            slots(&s, "2026-11-22T10:01:30Z", 2),
            ["2026-11-22T10:05:00Z", "2026-11-22T10:10:00Z"]
        );
    }

    #[test]
    fn names_nicknames_and_vixie_day_matching() {
        // Weekdays at 04:30; Saturday 2026-11-21 and Sunday 22 are skipped.
        let s = Schedule::parse("30 4 * * MON-FRI", "UTC").expect("valid");
        assert_eq!(
            slots(&s, "2026-11-20T05:00:00Z", 2),
            ["2026-11-23T04:30:00Z", "2026-11-24T04:30:00Z"]
        );
        let s = Schedule::parse("@daily", "UTC").expect("valid");
        assert_eq!(
            show(s.next_after(utc("2026-11-22T10:00:00Z"))),
            "2026-11-23T00:00:00Z"
        );
        // Day of month and day of week both restricted: either matches (crontab(5)).
        let s = Schedule::parse("0 0 1 * SUN", "UTC").expect("valid");
        assert_eq!(
            slots(&s, "2026-11-27T00:00:00Z", 3),
            [
                "2026-11-29T00:00:00Z", // a Sunday
                "2026-12-01T00:00:00Z", // the 1st, a Tuesday
                "2026-12-06T00:00:00Z"  // a Sunday
            ]
        );
        // 29 February: only leap years.
        let s = Schedule::parse("0 12 29 2 *", "UTC").expect("valid");
        assert_eq!(
            show(s.next_after(utc("2026-11-22T00:00:00Z"))),
            "2028-02-29T12:00:00Z"
        );
    }

    #[test]
    fn time_zone_shifts_the_slots() {
        let s = paris("30 2 * * *");
        // Winter: UTC+1.
        assert_eq!(
            show(s.next_after(utc("2026-11-22T00:00:00Z"))),
            "2026-11-22T01:30:00Z"
        );
        // Summer: UTC+2.
        assert_eq!(
            show(s.next_after(utc("2026-07-01T03:00:00Z"))),
            "2026-07-02T00:30:00Z"
        );
        let tokyo = Schedule::parse("0 9 * * *", "Asia/Tokyo").expect("valid");
        assert_eq!(
            show(tokyo.next_after(utc("2026-11-22T00:00:00Z"))),
            "2026-11-23T00:00:00Z"
        );
    }

    #[test]
    fn spring_forward_daily_job_runs_once_after_the_gap() {
        // 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 never exists.
        let s = paris("30 2 * * *");
        assert_eq!(local_to_utc(s.time_zone(), 2026, 3, 29, 2, 30), None);
        assert_eq!(
            slots(&s, "2026-03-28T00:00:00Z", 3),
            [
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // 03:00 CEST, the first instant after the gap
                "2026-03-30T00:30:00Z"  // 02:30 CEST
            ]
        );
        // Once that day: a start-up right after the gap run finds nothing more to catch up.
        let day = Duration::from_secs(86_400);
        assert_eq!(
            s.missed_since(
                Some(utc("2026-03-29T01:00:00Z")),
                utc("2026-03-29T20:00:00Z"),
                day
            ),
            None
        );
        assert_eq!(
            show(s.missed_since(
                Some(utc("2026-03-28T01:30:00Z")),
                utc("2026-03-29T20:00:00Z"),
                day
            )),
            "2026-03-29T01:00:00Z"
        );
    }

    #[test]
    fn fall_back_daily_job_runs_once() {
        // 2026-10-25 in Paris: 03:00 CEST falls back to 02:00 CET (01:00 UTC), so 02:30 comes
        // twice, at 00:30 UTC and at 01:30 UTC; the job runs on the first pass only.
        let s = paris("30 2 * * *");
        assert_eq!(
            slots(&s, "2026-10-24T00:00:00Z", 3),
            [
                "2026-10-24T00:30:00Z", // 02:30 CEST
                "2026-10-25T00:30:00Z", // 02:30 CEST, first pass
                "2026-10-26T01:30:00Z"  // 02:30 CET
            ]
        );
        // In the repeated hour (02:45 CET, second pass), the last slot is the first pass…
        let now = utc("2026-10-25T01:45:00Z");
        assert_eq!(show(s.last_at_or_before(now)), "2026-10-25T00:30:00Z");
        // … so a job that ran then is not run again,
        let hour = Duration::from_secs(3600);
        let window = hour * 2;
        assert_eq!(
            s.missed_since(Some(utc("2026-10-25T00:30:00Z")), now, window),
            None
        );
        // and one that missed it is caught up once.
        assert_eq!(
            show(s.missed_since(Some(utc("2026-10-24T00:30:00Z")), now, window)),
            "2026-10-25T00:30:00Z"
        );
    }

    #[test]
    fn hourly_job_follows_elapsed_time_across_both_changes() {
        let s = paris("0 * * * *");
        let every_hour = |from: &str, n: usize| {
            let start = utc(from);
            (1..=n)
                .map(|h| show(Some(start + TimeDelta::hours(h as i64))))
                .collect::<Vec<_>>()
        };
        // Spring: 01:00 CET, then 03:00 CEST one hour later.
        assert_eq!(
            slots(&s, "2026-03-28T23:00:00Z", 4),
            every_hour("2026-03-28T23:00:00Z", 4)
        );
        // Autumn: 02:00 CEST, 02:00 CET, 03:00 CET, one hour apart each.
        assert_eq!(
            slots(&s, "2026-10-24T22:00:00Z", 5),
            every_hour("2026-10-24T22:00:00Z", 5)
        );
        // A whole spring day has 23 local hours, hence 23 slots.
        let start = utc("2026-03-28T23:00:00Z"); // 00:00 CET on the 29th
        let end = utc("2026-03-29T22:00:00Z"); // 00:00 CEST on the 30th
        let mut t = start;
        let mut count = 0;
        while let Some(next) = s.next_after(t).filter(|n| *n < end) {
            count += 1;
            t = next;
        }
        // 01:00 CET, then 03:00 … 23:00 CEST: the day has 23 hours, 02:00 does not exist.
        assert_eq!(count, 22);
    }

    #[test]
    fn last_at_or_before_is_inclusive() {
        let s = Schedule::parse("0 */6 * * *", "UTC").expect("valid");
        assert_eq!(
            show(s.last_at_or_before(utc("2026-11-22T12:00:00Z"))),
            "2026-11-22T12:00:00Z"
        );
        assert_eq!(
            show(s.last_at_or_before(utc("2026-11-22T11:59:59Z"))),
            "2026-11-22T06:00:00Z"
        );
    }

    #[test]
    fn missed_run_window_edges() {
        let s = Schedule::parse("0 2 * * *", "UTC").expect("valid");
        let slot = utc("2026-11-22T02:00:00Z");
        let hour = Duration::from_secs(3600);
        let before = Some(utc("2026-11-21T02:00:00Z"));

        // Exactly `window` late: still caught up; one millisecond more: too late.
        assert_eq!(
            s.missed_since(before, utc("2026-11-22T03:00:00Z"), hour),
            Some(slot)
        );
        assert_eq!(
            s.missed_since(before, utc("2026-11-22T03:00:00.001Z"), hour),
            None
        );
        // The slot is `now` itself: due.
        assert_eq!(s.missed_since(before, slot, Duration::ZERO), Some(slot));
        // Already served (the recorded slot), or served later than the slot.
        assert_eq!(
            s.missed_since(Some(slot), utc("2026-11-22T02:10:00Z"), hour),
            None
        );
        assert_eq!(
            s.missed_since(
                Some(utc("2026-11-22T02:05:00Z")),
                utc("2026-11-22T02:10:00Z"),
                hour
            ),
            None
        );
        // Never ran: the latest slot, if recent enough.
        assert_eq!(
            s.missed_since(None, utc("2026-11-22T02:30:00Z"), hour),
            Some(slot)
        );
        assert_eq!(
            s.missed_since(None, utc("2026-11-22T05:00:00Z"), hour),
            None
        );
        // Several missed slots: only the latest is run, once.
        assert_eq!(
            s.missed_since(
                Some(utc("2026-11-18T02:00:00Z")),
                utc("2026-11-22T02:20:00Z"),
                hour
            ),
            Some(slot)
        );
        // A clock set back below the last run: nothing.
        assert_eq!(
            s.missed_since(
                Some(utc("2026-11-23T02:00:00Z")),
                utc("2026-11-22T02:20:00Z"),
                Duration::MAX
            ),
            None
        );
        // A huge window does not overflow.
        assert_eq!(
            s.missed_since(before, utc("2026-11-22T03:00:00Z"), Duration::MAX),
            Some(slot)
        );
    }

    #[test]
    fn jitter_is_bounded_deterministic_and_spread() {
        let max = Duration::from_secs(300);
        let s = Schedule::parse("0 2 * * *", "Europe/Paris")
            .expect("valid")
            .with_jitter(max);
        assert_eq!(s.max_jitter(), max);

        let names: Vec<String> = (0..200).map(|i| format!("source-{i}")).collect();
        let offsets: Vec<Duration> = names.iter().map(|n| s.jitter_for(n)).collect();
        assert!(offsets.iter().all(|o| *o <= max), "{offsets:?}");
        // Spread: 200 names over 300 001 possible offsets nearly all differ, and cover the
        // range rather than bunching at one end.
        let mut distinct = offsets.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() >= 190, "{}", distinct.len());
        assert!(offsets.iter().any(|o| *o < max / 4));
        assert!(offsets.iter().any(|o| *o > max * 3 / 4));

        // The same offset from a schedule parsed again (another process, another day).
        let again = Schedule::parse("0 2 * * *", "Europe/Paris")
            .expect("valid")
            .with_jitter(max);
        for (name, offset) in names.iter().zip(&offsets) {
            assert_eq!(again.jitter_for(name), *offset);
        }
        // Stable across releases and platforms: a pinned value, not a seeded hasher's (a
        // change here moves every source's start time).
        let pinned = s.jitter_for("billing");
        assert_eq!(pinned, Duration::from_millis(168_531));

        // Another schedule for the same name gets its own offset (almost surely).
        let other = Schedule::parse("0 3 * * *", "Europe/Paris")
            .expect("valid")
            .with_jitter(max);
        let moved = names
            .iter()
            .filter(|n| other.jitter_for(n) != s.jitter_for(n))
            .count();
        assert!(moved >= 190, "{moved}");

        // The start time is the slot plus that offset.
        let slot = s.next_after(utc("2026-11-22T00:00:00Z")).expect("a slot");
        let start = s.start_time(slot, "billing");
        assert_eq!(start - slot, TimeDelta::from_std(pinned).expect("small"));
    }

    #[test]
    fn jitter_edges() {
        let s = Schedule::parse("0 2 * * *", "UTC").expect("valid");
        assert_eq!(s.jitter_for("billing"), Duration::ZERO);
        let slot = utc("2026-11-22T02:00:00Z");
        assert_eq!(s.start_time(slot, "billing"), slot);

        let one_ms = s.clone().with_jitter(Duration::from_millis(1));
        let values: Vec<Duration> = (0..64)
            .map(|i| one_ms.jitter_for(&format!("s{i}")))
            .collect();
        assert!(values.iter().all(|v| *v <= Duration::from_millis(1)));
        assert!(values.contains(&Duration::ZERO));
        assert!(values.contains(&Duration::from_millis(1)));

        // Below a millisecond: no jitter rather than a rounding past the maximum.
        let tiny = s.clone().with_jitter(Duration::from_micros(500));
        assert_eq!(tiny.jitter_for("billing"), Duration::ZERO);

        // An absurd maximum stays within bounds and does not overflow the start time.
        let huge = s.with_jitter(Duration::MAX);
        assert!(huge.jitter_for("billing") <= Duration::MAX);
        let _ = huge.start_time(slot, "billing");
    }

    #[test]
    fn display_names_expression_zone_and_jitter() {
        let s = paris("30 2 * * *");
        assert_eq!(s.to_string(), "\"30 2 * * *\" in Europe/Paris");
        let s = s.with_jitter(Duration::from_secs(60));
        assert_eq!(
            s.to_string(),
            "\"30 2 * * *\" in Europe/Paris with up to 60000 ms of jitter"
        );
    }

    fn parse_error(expr: &str) -> String {
        match Schedule::parse(expr, "UTC") {
            Ok(s) => panic!("{expr:?} parsed as {s}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn wrong_field_count_says_what_is_expected() {
        for (expr, count) in [("", 0), ("30 2 * *", 4), ("0 30 2 * * * 2026", 7)] {
            let e = parse_error(expr);
            assert!(e.contains(&format!("{count} fields, expected 5")), "{e}");
            assert!(e.contains("\"30 2 * * *\""), "{e}");
        }
    }

    #[test]
    fn bad_field_is_named_with_its_range() {
        let e = parse_error("30 25 * * *");
        assert!(
            e.starts_with("schedule \"30 25 * * *\": hour field \"25\""),
            "{e}"
        );
        assert!(e.contains("allowed: 0-23"), "{e}");
        assert!(e.contains("e.g. \"30 2 * * *\""), "{e}");

        let e = parse_error("61 * * * * *");
        assert!(e.contains("second field \"61\""), "{e}");

        let e = parse_error("0 0 * 13 *");
        assert!(e.contains("month field \"13\""), "{e}");
        assert!(e.contains("JAN-DEC"), "{e}");

        let e = parse_error("0 0 * * MOON");
        assert!(e.contains("day of week field \"MOON\""), "{e}");

        let e = parse_error("x 2 * * *");
        assert!(e.contains("minute field \"x\""), "{e}");

        // croner's wording, in the house style.
        assert!(e.contains(": contains illegal character"), "{e}");
        assert!(!e.contains("Component error"), "{e}");
        assert!(!e.contains("CronPattern"), "{e}");

        let e = parse_error("*/0 * * * *");
        assert!(
            e.contains("minute field \"*/0\": step cannot be zero ("),
            "{e}"
        );
    }

    #[test]
    fn nicknames_are_checked() {
        for nickname in NICKNAMES {
            assert!(Schedule::parse(nickname, "UTC").is_ok(), "{nickname}");
        }
        let e = parse_error("@every");
        assert!(
            e.contains("schedule \"@every\": unknown nickname (use one of @yearly"),
            "{e}"
        );
    }

    #[test]
    fn impossible_date_is_refused() {
        let e = parse_error("0 0 30 2 *");
        assert!(e.contains("never matches a real date"), "{e}");
        assert!(e.contains("\"0 0 30 2 *\""), "{e}");
    }

    #[test]
    fn unknown_time_zone_names_it_and_suggests() {
        let e = Schedule::parse("30 2 * * *", "Europe/Pari")
            .expect_err("unknown zone")
            .to_string();
        assert!(e.contains("unknown time zone \"Europe/Pari\""), "{e}");
        assert!(e.contains("did you mean \"Europe/Paris\"?"), "{e}");

        let e = Schedule::parse("30 2 * * *", "europe/paris")
            .expect_err("case matters")
            .to_string();
        assert!(e.contains("did you mean \"Europe/Paris\"?"), "{e}");

        let e = Schedule::parse("30 2 * * *", "CEST+2")
            .expect_err("not IANA")
            .to_string();
        assert!(e.contains("unknown time zone \"CEST+2\""), "{e}");
        assert!(e.contains("such as \"Europe/Paris\""), "{e}");

        // The zone is checked before the expression.
        let e = Schedule::parse("nonsense", "Nowhere/Land")
            .expect_err("both wrong")
            .to_string();
        assert!(e.contains("unknown time zone"), "{e}");
    }
}

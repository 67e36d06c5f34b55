//! Retention planning: which backups to keep (GFS counts plus a maximum age), decided purely.
//!
//! [`plan`] takes a [`RetentionPolicy`], the backups of one source and the current time, and
//! returns one [`Verdict`] per backup with every reason behind it. It does no I/O: the caller
//! deletes what the plan says, and can show the plan first (a dry run is the same call).
//!
//! The grandfather-father-son counts follow restic's `forget --keep-*` and borg's `prune`,
//! on the UTC calendar: walking the restorable backups newest first, `daily N` keeps the
//! newest backup of each of the N most recent calendar days that have one, and likewise for
//! ISO weeks, months and years; `keep_last N` keeps the N newest. A backup may fill several
//! slots at once. Then, in order of precedence:
//!
//! 1. `max_age_days` deletes what is older, even if a GFS slot wanted it (storage limits such
//!    as the GDPR's beat history);
//! 2. the newest restorable backup is never deleted, whatever the rules;
//! 3. a backup under S3 Object Lock (`locked_until` in the future) is kept, since deleting it
//!    would fail anyway; its reason says what the policy would have done.
//!
//! A policy with no GFS count but a `max_age_days` keeps every restorable backup younger than
//! the limit. A policy with nothing set keeps everything.

use std::cmp::Reverse;

use chrono::{DateTime, Datelike, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// How many backups of one source to keep, read from `[sources.<name>.retention]`.
///
/// ```toml
/// [sources.billing.retention]
/// keep_last = 7
/// daily = 7
/// weekly = 4
/// monthly = 12
/// yearly = 3
/// max_age_days = 1095
/// ```
///
/// Every field defaults to zero (or none); unknown keys are rejected.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep the N newest restorable backups.
    #[serde(default)]
    pub keep_last: u32,
    /// Keep the newest backup of each of the N most recent UTC days that have one.
    #[serde(default)]
    pub daily: u32,
    /// Keep the newest backup of each of the N most recent ISO weeks that have one.
    #[serde(default)]
    pub weekly: u32,
    /// Keep the newest backup of each of the N most recent months that have one.
    #[serde(default)]
    pub monthly: u32,
    /// Keep the newest backup of each of the N most recent years that have one.
    #[serde(default)]
    pub yearly: u32,
    /// Delete backups created more than this many days ago, whatever the counts say
    /// (the newest restorable backup and object-locked backups excepted).
    #[serde(default)]
    pub max_age_days: Option<u32>,
}

impl RetentionPolicy {
    /// True when nothing is set: such a policy keeps every backup.
    pub fn is_empty(&self) -> bool {
        !self.has_counts() && self.max_age_days.is_none()
    }

    /// True when at least one GFS count (`keep_last` … `yearly`) is set.
    fn has_counts(&self) -> bool {
        self.keep_last > 0
            || self.daily > 0
            || self.weekly > 0
            || self.monthly > 0
            || self.yearly > 0
    }

    /// One line for logs and reports, listing the fields that are set:
    /// `keep_last 7, daily 7, weekly 4, monthly 12, yearly 3, max_age_days 1095`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no retention policy (keep everything)".to_owned();
        }
        let counts = [
            ("keep_last", self.keep_last),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ];
        let mut parts: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        if let Some(days) = self.max_age_days {
            parts.push(format!("max_age_days {days}"));
        }
        parts.join(", ")
    }
}

/// One backup as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Backup id; ids of one source sort in creation order (used to break ties on time).
    pub id: String,
    pub created: DateTime<Utc>,
    /// Restorable: at least one whole, authenticated copy exists.
    pub good: bool,
    /// S3 Object Lock retain-until date of its objects, if any.
    pub locked_until: Option<DateTime<Utc>>,
}

/// The decision for one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub id: String,
    pub created: DateTime<Utc>,
    pub keep: bool,
    /// Why: every rule that keeps it, or what deletes it. Never empty.
    pub reasons: Vec<String>,
}

/// The reason given to backups that no rule keeps.
const NOT_SELECTED: &str = "not selected by keep_last/daily/weekly/monthly/yearly";
/// The reason given to the newest restorable backup.
const NEWEST_GOOD: &str = "newest good backup: never deleted";

/// Decides, for each candidate, whether to keep it and why. Verdicts come newest first
/// (ties on time broken by id, greatest first), whatever the order of `candidates`.
pub fn plan(
    policy: &RetentionPolicy,
    candidates: &[Candidate],
    now: DateTime<Utc>,
) -> Vec<Verdict> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by_key(|c| Reverse((c.created, c.id.as_str())));

    if policy.is_empty() {
        return sorted
            .into_iter()
            .map(|c| Verdict {
                id: c.id.clone(),
                created: c.created,
                keep: true,
                reasons: vec!["no retention policy".to_owned()],
            })
            .collect();
    }

    let slots = gfs_slots(policy, &sorted);
    // A limit so large that it reaches before the calendar's start expires nothing.
    let cutoff = policy.max_age_days.and_then(|days| {
        now.checked_sub_signed(TimeDelta::days(i64::from(days)))
            .map(|at| (days, at))
    });
    let newest_good = sorted.iter().position(|c| c.good);

    sorted
        .iter()
        .zip(slots)
        .enumerate()
        .map(|(i, (c, gfs))| {
            let mut against = Vec::new();
            if let Some((days, at)) = cutoff
                && c.created < at
            {
                against.push(format!("older than max_age_days = {days}"));
            }
            if !c.good {
                against.push("not restorable".to_owned());
            }
            let selected = if policy.has_counts() {
                !gfs.is_empty()
            } else {
                c.good
            };
            if against.is_empty() && !selected {
                against.push(NOT_SELECTED.to_owned());
            }

            let mut reasons = Vec::new();
            let mut keep = against.is_empty();
            if keep {
                reasons = gfs;
                if reasons.is_empty()
                    && let Some((days, _)) = cutoff
                {
                    reasons.push(format!("within max_age_days = {days}"));
                }
            }
            let overridden = if keep {
                String::new()
            } else {
                format!(" (would be deleted: {})", against.join("; "))
            };
            if newest_good == Some(i) {
                reasons.push(format!("{NEWEST_GOOD}{overridden}"));
                keep = true;
            }
            if let Some(until) = c.locked_until.filter(|until| *until > now) {
                let mut reason = format!(
                    "object lock until {}",
                    until.to_rfc3339_opts(SecondsFormat::Secs, true)
                );
                if !keep {
                    reason.push_str(&overridden);
                }
                reasons.push(reason);
                keep = true;
            }
            if !keep {
                reasons = against;
            }
            Verdict {
                id: c.id.clone(),
                created: c.created,
                keep,
                reasons,
            }
        })
        .collect()
}

/// GFS reasons per candidate (same order as `sorted`, newest first); empty for backups that
/// fill no slot. Only good backups fill slots.
fn gfs_slots(policy: &RetentionPolicy, sorted: &[&Candidate]) -> Vec<Vec<String>> {
    type Bucket = fn(&DateTime<Utc>) -> String;
    let periods: [(&str, u32, Bucket); 4] = [
        ("daily", policy.daily, |t| t.format("%Y-%m-%d").to_string()),
        ("weekly", policy.weekly, |t| {
            let week = t.iso_week();
            format!("{}-W{:02}", week.year(), week.week())
        }),
        ("monthly", policy.monthly, |t| t.format("%Y-%m").to_string()),
        ("yearly", policy.yearly, |t| t.format("%Y").to_string()),
    ];

    let mut reasons = vec![Vec::new(); sorted.len()];
    let good = || sorted.iter().enumerate().filter(|(_, c)| c.good);

    for (n, (i, _)) in (1..=policy.keep_last).zip(good()) {
        if let Some(r) = reasons.get_mut(i) {
            r.push(format!("last {n}/{}", policy.keep_last));
        }
    }
    for (name, count, bucket) in periods {
        let mut kept = 0;
        let mut previous: Option<String> = None;
        for (i, c) in good() {
            if kept == count {
                break;
            }
            let key = bucket(&c.created);
            // Newest first, so the first backup seen in a period is that period's newest.
            if previous.as_ref() != Some(&key) {
                if let Some(r) = reasons.get_mut(i) {
                    r.push(format!("{name} {key}"));
                }
                kept += 1;
                previous = Some(key);
            }
        }
    }
    reasons
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use std::collections::BTreeSet;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid test date")
    }

    /// An id shaped like `manifest::new_backup_id`'s.
    fn id_of(t: DateTime<Utc>) -> String {
        format!("{}-0000", t.format("%Y%m%dT%H%M%S%.3fZ"))
    }

    fn good(t: DateTime<Utc>) -> Candidate {
        Candidate {
            id: id_of(t),
            created: t,
            good: true,
            locked_until: None,
        }
    }

    fn verdict(verdicts: &[Verdict], t: DateTime<Utc>) -> &Verdict {
        let id = id_of(t);
        verdicts
            .iter()
            .find(|v| v.id == id)
            .expect("a verdict for every candidate")
    }

    fn kept_days(verdicts: &[Verdict]) -> BTreeSet<NaiveDate> {
        verdicts
            .iter()
            .filter(|v| v.keep)
            .map(|v| v.created.date_naive())
            .collect()
    }

    /// The days kept out of one daily backup at 02:00 for 400 days up to
    /// 2026-11-22, under keep_last 3, daily 7, weekly 4, monthly 6, yearly 2 and
    /// max_age_days 365, worked out by hand from the calendar (also used by the
    /// prune tests, which run the same series through real stores).
    pub(crate) fn gfs_series_expected() -> BTreeSet<NaiveDate> {
        [
            // keep_last 3 (Nov 22, 21, 20) and daily 7: Nov 22 back to Nov 16.
            day(2026, 11, 22),
            day(2026, 11, 21),
            day(2026, 11, 20),
            day(2026, 11, 19),
            day(2026, 11, 18),
            day(2026, 11, 17),
            day(2026, 11, 16),
            // weekly 4: Sundays closing W47 (Nov 22, already kept), W46, W45, W44.
            day(2026, 11, 15),
            day(2026, 11, 8),
            day(2026, 11, 1),
            // monthly 6: November (Nov 22), then the last day of October … June.
            day(2026, 10, 31),
            day(2026, 9, 30),
            day(2026, 8, 31),
            day(2026, 7, 31),
            day(2026, 6, 30),
            // yearly 2: 2026 (Nov 22) and 2025's newest, New Year's Eve.
            day(2025, 12, 31),
        ]
        .into_iter()
        .collect()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    /// 400 daily backups at 02:00 UTC, the last on 2026-11-22 (a Sunday, ISO week 47),
    /// the first on 2025-10-19.
    fn series() -> Vec<Candidate> {
        let last = at(2026, 11, 22, 2);
        (0..400)
            .map(|back| good(last - TimeDelta::days(back)))
            .collect()
    }

    fn now() -> DateTime<Utc> {
        at(2026, 11, 22, 3)
    }

    #[test]
    fn gfs_series_with_max_age() {
        let policy = RetentionPolicy {
            keep_last: 3,
            daily: 7,
            weekly: 4,
            monthly: 6,
            yearly: 2,
            max_age_days: Some(365),
        };
        let candidates = series();
        assert_eq!(candidates.len(), 400);
        assert_eq!(
            candidates.last().map(|c| c.created),
            Some(at(2025, 10, 19, 2))
        );
        let verdicts = plan(&policy, &candidates, now());
        assert_eq!(verdicts.len(), 400);

        let expected = gfs_series_expected();
        assert_eq!(kept_days(&verdicts), expected);

        let limit = now() - TimeDelta::days(365);
        assert!(
            verdicts
                .iter()
                .filter(|v| v.keep)
                .all(|v| v.created >= limit)
        );

        // Newest first, reasons spelled out.
        assert_eq!(verdicts[0].created, at(2026, 11, 22, 2));
        assert_eq!(verdicts[399].created, at(2025, 10, 19, 2));
        assert_eq!(
            verdict(&verdicts, at(2026, 11, 15, 2)).reasons,
            vec!["weekly 2026-W46"]
        );
        assert_eq!(
            verdict(&verdicts, at(2025, 12, 31, 2)).reasons,
            vec!["yearly 2025"]
        );
        let dropped = verdict(&verdicts, at(2026, 11, 14, 2));
        assert!(!dropped.keep);
        assert_eq!(dropped.reasons, vec![NOT_SELECTED]);
        // Exactly 365 days before the newest backup, i.e. one hour past the limit.
        let too_old = verdict(&verdicts, at(2025, 11, 22, 2));
        assert!(!too_old.keep);
        assert_eq!(too_old.reasons, vec!["older than max_age_days = 365"]);
    }

    #[test]
    fn max_age_overrides_a_gfs_slot() {
        // monthly 14 reaches back to October 2025, whose newest backup (Oct 31) is older
        // than 365 days: the slot is spent, the backup is deleted anyway.
        let policy = RetentionPolicy {
            monthly: 14,
            max_age_days: Some(365),
            ..RetentionPolicy::default()
        };
        let verdicts = plan(&policy, &series(), now());
        let october = verdict(&verdicts, at(2025, 10, 31, 2));
        assert!(!october.keep);
        assert_eq!(october.reasons, vec!["older than max_age_days = 365"]);
        let november = verdict(&verdicts, at(2025, 11, 30, 2));
        assert!(november.keep);
        assert_eq!(november.reasons, vec!["monthly 2025-11"]);
        // 13 months from 2025-11 to 2026-11, all within the limit.
        assert_eq!(verdicts.iter().filter(|v| v.keep).count(), 13);
    }

    #[test]
    fn newest_good_backup_survives_max_age() {
        let policy = RetentionPolicy {
            keep_last: 2,
            max_age_days: Some(30),
            ..RetentionPolicy::default()
        };
        let older = good(at(2026, 1, 1, 2));
        let newest_good = good(at(2026, 1, 2, 2));
        let broken = Candidate {
            good: false,
            ..good(at(2026, 1, 3, 2))
        };
        let verdicts = plan(&policy, &[older, newest_good, broken], now());

        assert_eq!(verdicts.len(), 3);
        assert_eq!(verdicts[0].created, at(2026, 1, 3, 2));
        assert!(!verdicts[0].keep);
        assert_eq!(
            verdicts[0].reasons,
            vec!["older than max_age_days = 30", "not restorable"]
        );
        assert_eq!(verdicts[1].created, at(2026, 1, 2, 2));
        assert!(verdicts[1].keep);
        assert_eq!(
            verdicts[1].reasons,
            vec![
                "newest good backup: never deleted (would be deleted: older than max_age_days = 30)"
            ]
        );
        assert_eq!(verdicts[2].created, at(2026, 1, 1, 2));
        assert!(!verdicts[2].keep);
        assert_eq!(verdicts[2].reasons, vec!["older than max_age_days = 30"]);
    }

    #[test]
    fn not_restorable_backups_fill_no_slot() {
        let policy = RetentionPolicy {
            keep_last: 1,
            daily: 1,
            ..RetentionPolicy::default()
        };
        let broken = Candidate {
            good: false,
            ..good(at(2026, 11, 22, 2))
        };
        let earlier = good(at(2026, 11, 21, 2));
        let verdicts = plan(&policy, &[broken, earlier], now());
        assert!(!verdicts[0].keep);
        assert_eq!(verdicts[0].reasons, vec!["not restorable"]);
        assert!(verdicts[1].keep);
        assert_eq!(
            verdicts[1].reasons,
            vec!["last 1/1", "daily 2026-11-21", NEWEST_GOOD]
        );
    }

    #[test]
    fn object_lock_keeps_what_the_policy_would_delete() {
        let policy = RetentionPolicy {
            keep_last: 1,
            max_age_days: Some(30),
            ..RetentionPolicy::default()
        };
        let locked = Candidate {
            locked_until: Some(at(2027, 1, 1, 0)),
            ..good(at(2026, 1, 1, 2))
        };
        let lock_expired = Candidate {
            locked_until: Some(at(2026, 11, 1, 0)),
            ..good(at(2026, 1, 2, 2))
        };
        let unselected_locked = Candidate {
            locked_until: Some(at(2026, 12, 1, 0)),
            ..good(at(2026, 11, 20, 2))
        };
        let newest = good(at(2026, 11, 21, 2));
        let verdicts = plan(
            &policy,
            &[locked, lock_expired, unselected_locked, newest],
            now(),
        );

        let v = verdict(&verdicts, at(2026, 1, 1, 2));
        assert!(v.keep);
        assert_eq!(
            v.reasons,
            vec![
                "object lock until 2027-01-01T00:00:00Z (would be deleted: older than max_age_days = 30)"
            ]
        );
        let v = verdict(&verdicts, at(2026, 1, 2, 2));
        assert!(!v.keep);
        assert_eq!(v.reasons, vec!["older than max_age_days = 30"]);
        let v = verdict(&verdicts, at(2026, 11, 20, 2));
        assert!(v.keep);
        assert_eq!(
            v.reasons,
            vec![format!(
                "object lock until 2026-12-01T00:00:00Z (would be deleted: {NOT_SELECTED})"
            )]
        );
        let v = verdict(&verdicts, at(2026, 11, 21, 2));
        assert!(v.keep);
        assert_eq!(v.reasons, vec!["last 1/1", NEWEST_GOOD]);
    }

    #[test]
    fn empty_policy_keeps_everything() {
        let policy = RetentionPolicy::default();
        assert!(policy.is_empty());
        let broken = Candidate {
            good: false,
            ..good(at(2020, 1, 1, 0))
        };
        let verdicts = plan(&policy, &[broken, good(at(2026, 11, 1, 0))], now());
        assert_eq!(verdicts.len(), 2);
        for v in &verdicts {
            assert!(v.keep);
            assert_eq!(v.reasons, vec!["no retention policy"]);
        }
    }

    #[test]
    fn max_age_alone_keeps_everything_younger() {
        let policy = RetentionPolicy {
            max_age_days: Some(10),
            ..RetentionPolicy::default()
        };
        assert!(!policy.is_empty());
        let verdicts = plan(&policy, &series(), now());
        // Nov 13 02:00 is 9 days 1 hour old; Nov 12 02:00 is 10 days 1 hour old.
        let expected: BTreeSet<NaiveDate> = (13..=22).map(|d| day(2026, 11, d)).collect();
        assert_eq!(kept_days(&verdicts), expected);
        assert_eq!(
            verdict(&verdicts, at(2026, 11, 13, 2)).reasons,
            vec!["within max_age_days = 10"]
        );
    }

    #[test]
    fn input_order_does_not_matter() {
        let policy = RetentionPolicy {
            keep_last: 2,
            daily: 5,
            weekly: 3,
            monthly: 4,
            yearly: 1,
            max_age_days: Some(200),
        };
        // Several backups a day, two of them at the same instant (ids break the tie).
        let mut candidates: Vec<Candidate> = series().into_iter().take(60).collect();
        for h in [5, 9, 13] {
            candidates.push(good(at(2026, 11, 20, h)));
        }
        let twin = Candidate {
            id: format!("{}-ffff", at(2026, 11, 20, 13).format("%Y%m%dT%H%M%S%.3fZ")),
            ..good(at(2026, 11, 20, 13))
        };
        candidates.push(twin.clone());
        let reference = plan(&policy, &candidates, now());
        assert!(
            reference
                .windows(2)
                .all(|w| { (w[0].created, w[0].id.as_str()) > (w[1].created, w[1].id.as_str()) })
        );
        // The later id of the two at 13:00 is the day's newest.
        let twin_verdict = reference
            .iter()
            .find(|v| v.id == twin.id)
            .expect("twin planned");
        assert_eq!(twin_verdict.reasons, vec!["daily 2026-11-20"]);

        let mut reversed = candidates.clone();
        reversed.reverse();
        assert_eq!(plan(&policy, &reversed, now()), reference);

        // Fisher-Yates with a small xorshift, a few seeds.
        for seed in [1_u64, 42, 0x9e37_79b9_7f4a_7c15] {
            let mut state = seed;
            let mut shuffled = candidates.clone();
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let j = usize::try_from(state % (i as u64 + 1)).expect("small index");
                shuffled.swap(i, j);
            }
            assert_ne!(shuffled, candidates);
            assert_eq!(plan(&policy, &shuffled, now()), reference, "seed {seed}");
        }
    }

    #[test]
    fn all_reasons_are_listed() {
        let policy = RetentionPolicy {
            keep_last: 7,
            daily: 2,
            weekly: 1,
            monthly: 1,
            yearly: 1,
            max_age_days: Some(365),
        };
        let verdicts = plan(&policy, &series(), now());
        assert_eq!(
            verdicts[0].reasons,
            vec![
                "last 1/7",
                "daily 2026-11-22",
                "weekly 2026-W47",
                "monthly 2026-11",
                "yearly 2026",
                NEWEST_GOOD,
            ]
        );
        assert_eq!(verdicts[1].reasons, vec!["last 2/7", "daily 2026-11-21"]);
        assert_eq!(verdicts[2].reasons, vec!["last 3/7"]);
        assert_eq!(verdicts[7].reasons, vec![NOT_SELECTED]);
    }

    #[test]
    fn iso_weeks_cross_year_boundaries() {
        // 2026-01-01 is a Thursday: Mon 2025-12-29 … Sun 2026-01-04 is 2026-W01, and
        // Sun 2025-12-28 closes 2025-W52.
        let policy = RetentionPolicy {
            weekly: 2,
            ..RetentionPolicy::default()
        };
        let candidates: Vec<Candidate> = (26..=31)
            .map(|d| good(at(2025, 12, d, 2)))
            .chain((1..=3).map(|d| good(at(2026, 1, d, 2))))
            .collect();
        let verdicts = plan(&policy, &candidates, at(2026, 1, 3, 3));
        let kept: Vec<(NaiveDate, Vec<String>)> = verdicts
            .iter()
            .filter(|v| v.keep)
            .map(|v| (v.created.date_naive(), v.reasons.clone()))
            .collect();
        assert_eq!(
            kept,
            vec![
                (
                    day(2026, 1, 3),
                    vec!["weekly 2026-W01".to_owned(), NEWEST_GOOD.to_owned()]
                ),
                (day(2025, 12, 28), vec!["weekly 2025-W52".to_owned()]),
            ]
        );
    }

    #[test]
    fn policy_from_toml() {
        let policy: RetentionPolicy = toml::from_str(
            "keep_last = 7\ndaily = 7\nweekly = 4\nmonthly = 12\nyearly = 3\nmax_age_days = 1095\n",
        )
        .expect("valid policy");
        assert_eq!(
            policy.summary(),
            "keep_last 7, daily 7, weekly 4, monthly 12, yearly 3, max_age_days 1095"
        );

        let partial: RetentionPolicy = toml::from_str("daily = 3").expect("valid policy");
        assert_eq!(
            partial,
            RetentionPolicy {
                daily: 3,
                ..RetentionPolicy::default()
            }
        );
        assert_eq!(partial.summary(), "daily 3");

        let err = toml::from_str::<RetentionPolicy>("daily = 7\nhourly = 24\n")
            .expect_err("unknown key rejected");
        assert!(err.to_string().contains("hourly"), "{err}");
        let err = toml::from_str::<RetentionPolicy>("keep_last = -1")
            .expect_err("negative count rejected");
        assert!(err.to_string().contains("keep_last"), "{err}");
    }
}

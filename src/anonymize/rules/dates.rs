//! `date_shift`: moves dates and timestamps by a whole number of days, keeping
//! their text form.
//!
//! Only the `YYYY-MM-DD` part is rewritten: a time, fraction, offset, `T` or `Z`
//! after it is kept byte for byte, so a `timestamptz` keeps its offset and moves by
//! exactly that many 24-hour days. The shift is derived from the date alone: every
//! value on one calendar day moves by the same amount (ordering within a day holds).

use super::FakeRng;
use chrono::{Datelike, Days, NaiveDate};
use rand::RngExt;

use super::RuleError;

const NOT_DATE: RuleError = RuleError::Invalid {
    rule: "date_shift",
    expected: "a date or timestamp (YYYY-MM-DD, YYYY-MM-DD HH:MM:SS[.ffffff][+TZ] or ISO 8601 with T/Z)",
};

/// PostgreSQL's special values, kept as they are.
pub(crate) fn is_special(value: &str) -> bool {
    matches!(value, "infinity" | "-infinity" | "+infinity")
}

/// Checks the value is a date or timestamp this rule handles.
pub(crate) fn check(value: &str) -> Result<(), RuleError> {
    if is_special(value) {
        Ok(())
    } else {
        split(value).map(|_| ())
    }
}

/// The `YYYY-MM-DD` part, after checking the whole value.
pub(crate) fn date_part(value: &str) -> Result<&str, RuleError> {
    split(value)?;
    Ok(&value[..10])
}

fn split(value: &str) -> Result<(NaiveDate, &str), RuleError> {
    let b = value.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(NOT_DATE);
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, RuleError> {
        let s = &b[r];
        if s.iter().all(u8::is_ascii_digit) {
            Ok(s.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        } else {
            Err(NOT_DATE)
        }
    };
    let year = i32::try_from(num(0..4)?).map_err(|_| NOT_DATE)?;
    let date = NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?).ok_or(NOT_DATE)?;
    let rest = &value[10..];
    if rest.is_empty() || time_shaped(rest.as_bytes()) {
        Ok((date, rest))
    } else {
        Err(NOT_DATE)
    }
}

/// `( |T)HH:MM[:SS[.f+]][Z|(+|-)HH[[:]MM[[:]SS]]]`.
fn time_shaped(b: &[u8]) -> bool {
    let two = |i: usize| {
        b.get(i..i + 2)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    if !matches!(b.first(), Some(b' ' | b'T')) || !two(1) || b.get(3) != Some(&b':') || !two(4) {
        return false;
    }
    let mut i = 6;
    if b.get(i) == Some(&b':') {
        if !two(i + 1) {
            return false;
        }
        i += 3;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            i = start;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return false;
            }
        }
    }
    match b.get(i) {
        None => true,
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            // Offset: HH, then up to two more fields, with or without colons.
            let mut j = i + 1;
            if !two(j) {
                return false;
            }
            j += 2;
            for _ in 0..2 {
                if j == b.len() {
                    return true;
                }
                if b[j] == b':' {
                    j += 1;
                }
                if !two(j) {
                    return false;
                }
                j += 2;
            }
            j == b.len()
        }
        Some(_) => false,
    }
}

/// The value with its date moved by 1 to `days` days, forwards or backwards.
pub(crate) fn shift(rng: &mut FakeRng, days: u32, value: &str) -> Result<String, RuleError> {
    let (date, rest) = split(value)?;
    if days == 0 {
        return Ok(value.to_owned());
    }
    let by = u64::from(rng.random_range(1..=days));
    let moved = if rng.random_bool(0.5) {
        date.checked_add_days(Days::new(by))
    } else {
        date.checked_sub_days(Days::new(by))
    };
    let moved = moved
        .filter(|d| (1..=9999).contains(&d.year()))
        .ok_or(RuleError::Invalid {
            rule: "date_shift",
            expected: "a date that stays between years 1 and 9999 once shifted",
        })?;
    let mut out = String::with_capacity(value.len());
    out.push_str(&format!(
        "{:04}-{:02}-{:02}",
        moved.year(),
        moved.month(),
        moved.day()
    ));
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{Faker, Locale, Rule};
    use super::*;
    use chrono::{DateTime, NaiveDateTime};

    fn shifted(f: &mut Faker, days: u32, v: &str) -> String {
        f.apply(&Rule::DateShift { days }, v, false)
            .expect("rule applies")
            .expect("not null")
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(&s[..10], "%Y-%m-%d").expect("parses")
    }

    #[test]
    fn shifts_stay_within_bounds_never_zero_and_keep_the_format() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let start = NaiveDate::from_ymd_opt(2019, 1, 1).expect("valid date");
        let mut seen_forward = false;
        let mut seen_backward = false;
        for i in 0..1500u64 {
            let d = start + Days::new(i);
            let ds = d.format("%Y-%m-%d").to_string();
            let forms = [
                ds.clone(),
                format!("{ds} 13:45:07+00"),
                format!("{ds} 13:45:07.123456+02"),
                format!("{ds} 23:59:59-03:30"),
                format!("{ds} 08:00:00"),
                format!("{ds}T08:00:00Z"),
                format!("{ds}T08:00:00.5+01:00"),
            ];
            let mut shifts = Vec::new();
            for v in &forms {
                let out = shifted(&mut f, 30, v);
                assert_eq!(out.len(), v.len(), "{v} → {out}");
                assert_eq!(out[10..], v[10..], "{v} → {out}");
                let delta = (date(&out) - d).num_days();
                assert!(delta != 0 && delta.abs() <= 30, "{v} → {out}");
                shifts.push(delta);
                seen_forward |= delta > 0;
                seen_backward |= delta < 0;
            }
            // One calendar day, one shift, whatever the time.
            assert!(shifts.windows(2).all(|w| w[0] == w[1]), "{shifts:?}");
        }
        assert!(seen_forward && seen_backward);
        // Parsers still accept what we print.
        let out = shifted(&mut f, 30, "2024-02-29 13:45:07.123456+02");
        assert!(
            DateTime::parse_from_str(&format!("{out}00"), "%Y-%m-%d %H:%M:%S%.f%z").is_ok(),
            "{out}"
        );
        let out = shifted(&mut f, 30, "2024-02-29 13:45:07");
        assert!(NaiveDateTime::parse_from_str(&out, "%Y-%m-%d %H:%M:%S").is_ok());
    }

    #[test]
    fn small_and_zero_windows() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        for i in 1..=28 {
            let v = format!("2024-03-{i:02}");
            let delta = (date(&shifted(&mut f, 1, &v)) - date(&v)).num_days();
            assert!(delta == 1 || delta == -1);
        }
        assert_eq!(shifted(&mut f, 0, "2024-03-01"), "2024-03-01");
        assert!(
            f.apply(&Rule::DateShift { days: 0 }, "hier", false)
                .is_err()
        );
    }

    #[test]
    fn special_and_bad_values() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        for v in ["infinity", "-infinity"] {
            assert_eq!(shifted(&mut f, 10, v), v);
        }
        for bad in [
            "",
            "2024-13-01",
            "2024-02-30",
            "24-01-01",
            "2024/01/01",
            "2024-01-01 25",
            "2024-01-01 10:00:00 BC",
            "2024-01-01T10:00:00+1",
            "2024-01-01 10:00:00.",
            "2024-01-01 10:00:00Zx",
        ] {
            let e = f
                .apply(&Rule::DateShift { days: 10 }, bad, false)
                .expect_err("must fail");
            assert!(e.to_string().contains("not a date"), "{bad}: {e}");
        }
        assert!(check("2024-01-01 10:00:00+05:30:00").is_ok());
        assert!(check("2024-01-01T10:00Z").is_ok());
    }
}

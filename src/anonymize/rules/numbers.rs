//! `numeric_noise`: multiplies a decimal by `1 ± up to percent/100`, keeping its
//! text shape: sign, number of fraction digits, exponent.
//!
//! Decimals of up to 27 significant digits are computed exactly in integers
//! (rounded half away from zero); longer ones go through `f64`. The factor is drawn
//! per value, so equal amounts get equal noise. Small integers may come out
//! unchanged (3 ± 5 % rounds to 3).

use std::fmt::Write as _;

use super::FakeRng;
use rand::RngExt;

use super::RuleError;

const NOT_NUMBER: RuleError = RuleError::Invalid {
    rule: "numeric_noise",
    expected: "a decimal number",
};

/// The factor's resolution: parts per billion.
const PPB: i128 = 1_000_000_000;

/// `NaN` and the infinities, kept as they are.
pub(crate) fn is_special(value: &str) -> bool {
    matches!(
        value,
        "NaN" | "Infinity" | "-Infinity" | "+Infinity" | "inf" | "-inf" | "nan"
    )
}

struct Decimal<'a> {
    sign: &'a str,
    int: &'a str,
    dot: bool,
    frac: &'a str,
    exp: &'a str,
}

fn parse(value: &str) -> Result<Decimal<'_>, RuleError> {
    let (sign, rest) = match value.as_bytes().first() {
        Some(b'-' | b'+') => value.split_at(1),
        _ => ("", value),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !exp.is_empty() {
        let digits = exp[1..].trim_start_matches(['+', '-']);
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || exp.len() - digits.len() > 2
        {
            return Err(NOT_NUMBER);
        }
    }
    let (int, dot, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, true, f),
        None => (mantissa, false, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
        return Err(NOT_NUMBER);
    }
    Ok(Decimal {
        sign,
        int,
        dot,
        frac,
        exp,
    })
}

/// The value times a random factor in `[1 − percent/100, 1 + percent/100]`.
pub(crate) fn noise(rng: &mut FakeRng, percent: f64, value: &str) -> Result<String, RuleError> {
    let d = parse(value)?;
    let bound = (percent / 100.0 * PPB as f64).round() as i128;
    let ppb = if bound <= 0 {
        0
    } else {
        rng.random_range(-bound..=bound)
    };
    let scale = d.frac.len();
    let mut digits = String::with_capacity(d.int.len() + scale);
    digits.push_str(d.int);
    digits.push_str(d.frac);
    let significant = digits.trim_start_matches('0');
    let magnitude: String = if significant.len() <= 27 {
        let v: i128 = if significant.is_empty() {
            0
        } else {
            significant.parse().map_err(|_| NOT_NUMBER)?
        };
        let num = v * (PPB + ppb);
        let q = (num + PPB / 2) / PPB; // half away from zero: num ≥ 0
        let mut s = q.to_string();
        if s.len() <= scale {
            s.insert_str(0, &"0".repeat(scale + 1 - s.len()));
        }
        if d.dot {
            s.insert(s.len() - scale, '.');
        }
        s
    } else {
        let x: f64 = format!("{}.{}", if d.int.is_empty() { "0" } else { d.int }, d.frac)
            .parse()
            .map_err(|_| NOT_NUMBER)?;
        let y = x * (1.0 + ppb as f64 / PPB as f64);
        let mut s = format!("{y:.scale$}");
        if d.dot && scale == 0 {
            s.push('.');
        }
        s
    };
    let is_zero = magnitude.bytes().all(|b| b == b'0' || b == b'.');
    let mut out = String::with_capacity(value.len() + 2);
    if !(is_zero && d.sign == "-") {
        out.push_str(d.sign);
    }
    // ".5" stays ".xx" rather than "0.xx".
    let magnitude = if d.int.is_empty() {
        magnitude.trim_start_matches('0')
    } else {
        magnitude.as_str()
    };
    let _ = write!(out, "{magnitude}{}", d.exp);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{Faker, Locale, Rule};
    use super::*;
    use rand::SeedableRng;

    fn noisy(f: &mut Faker, percent: f64, v: &str) -> String {
        f.apply(&Rule::NumericNoise { percent }, v, false)
            .expect("rule applies")
            .expect("not null")
    }

    fn decimals(s: &str) -> Option<usize> {
        s.split_once('.').map(|(_, f)| f.len())
    }

    #[test]
    fn noise_stays_within_bounds_and_keeps_decimals_and_sign() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let mut rng = FakeRng::from_seed([9; 32]);
        let mut changed = 0;
        for i in 0..2000 {
            let cents: i64 = rng.random_range(-10_000_000..10_000_000);
            let v = match i % 3 {
                0 => format!("{}.{:02}", cents / 100, (cents % 100).abs()),
                1 => format!("{}", cents),
                _ => format!("{:.3}", cents as f64 / 1000.0),
            };
            let v = if cents < 0 && !v.starts_with('-') {
                format!("-{v}")
            } else {
                v
            };
            let out = noisy(&mut f, 5.0, &v);
            assert_eq!(decimals(&out), decimals(&v), "{v} → {out}");
            let (x, y): (f64, f64) = (v.parse().expect("parses"), out.parse().expect("parses"));
            let ulp = 10f64.powi(-(decimals(&v).unwrap_or(0) as i32));
            assert!(
                (y - x).abs() <= x.abs() * 0.05 + ulp / 2.0 + 1e-9,
                "{v} → {out}"
            );
            if y != 0.0 {
                assert_eq!(x < 0.0, y < 0.0, "{v} → {out}");
            }
            assert!(
                !out.starts_with("-0") || out.contains(|c: char| ('1'..='9').contains(&c)),
                "{out}"
            );
            changed += usize::from(out != v);
            assert_eq!(out, noisy(&mut f, 5.0, &v));
        }
        assert!(changed > 1800, "{changed}");
    }

    #[test]
    fn shapes_and_special_values() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        assert_eq!(noisy(&mut f, 5.0, "0"), "0");
        assert_eq!(noisy(&mut f, 5.0, "0.00"), "0.00");
        assert_eq!(noisy(&mut f, 0.0, "123.45"), "123.45");
        assert_eq!(decimals(&noisy(&mut f, 5.0, "0.001")), Some(3));
        let e = noisy(&mut f, 5.0, "1.5e+20");
        assert!(e.ends_with("e+20") && e.starts_with("1."), "{e}");
        let big = "123456789012345678901234567890.12";
        let out = noisy(&mut f, 5.0, big);
        assert_eq!(decimals(&out), Some(2), "{out}");
        assert!(noisy(&mut f, 50.0, ".5").starts_with('.'));
        for v in ["NaN", "Infinity", "-Infinity"] {
            assert_eq!(noisy(&mut f, 5.0, v), v);
        }
        for bad in ["", "abc", "1.2.3", "1e", "--1", "1,5", " 1"] {
            assert!(
                f.apply(&Rule::NumericNoise { percent: 5.0 }, bad, false)
                    .is_err(),
                "{bad}"
            );
        }
    }
}

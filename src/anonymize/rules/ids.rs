//! Fake identifiers with valid check digits: SIREN/SIRET (Luhn), IBAN (mod 97,
//! French RIB key), BIC, and the card numbers `scrub` finds in text.

use super::FakeRng;
use rand::RngExt;

use super::RuleError;
use super::fake_values::fill_digits;
use super::faker::{Faker, Kind};

/// IBAN lengths by country (SWIFT registry), for the countries `scrub` recognises.
pub(crate) const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AT", 20),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BR", 29),
    ("CH", 21),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DZ", 26),
    ("EE", 20),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MA", 28),
    ("MC", 27),
    ("ME", 22),
    ("MT", 31),
    ("NL", 18),
    ("NO", 15),
    ("PL", 28),
    ("PT", 25),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
];

/// The registered IBAN length of a country, if `scrub` knows it.
pub(crate) fn iban_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| *c == country)
        .map(|(_, n)| *n)
}

/// Whether the digits pass the Luhn check (last digit is the key).
pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
    luhn_sum(digits, false).is_multiple_of(10)
}

/// Luhn sum of ASCII digits; `doubling_first_from_right` when a key will follow.
fn luhn_sum(digits: &[u8], key_follows: bool) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if (i % 2 == 1) != key_follows {
                if d > 4 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum()
}

/// The Luhn key to append to `payload`.
fn luhn_key(payload: &[u8]) -> u8 {
    b'0' + ((10 - luhn_sum(payload, true) % 10) % 10) as u8
}

/// `n` random ASCII digits (the first `1`–`9`) whose last digit is a Luhn key.
fn luhn_number(rng: &mut FakeRng, n: usize, first: Option<u8>) -> Vec<u8> {
    let mut d = Vec::with_capacity(n);
    d.push(first.unwrap_or_else(|| b'1' + rng.random_range(0..9u8)));
    while d.len() + 1 < n {
        d.push(b'0' + rng.random_range(0..10u8));
    }
    if n > 1 {
        let key = luhn_key(&d);
        d.push(key);
    }
    d
}

/// The digits of a SIRET, SIREN or card number, whatever separates them.
pub(crate) fn normalize_digits(kind: Kind, value: &str) -> Result<String, RuleError> {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 2 {
        return Err(RuleError::Invalid {
            rule: kind.name(),
            expected: "a number of several digits",
        });
    }
    Ok(digits)
}

/// SIRET and SIREN keep the input's digit count: 9 digits make a SIREN, 14 a SIRET
/// whose first 9 digits are the fake of the original's SIREN (so a company's
/// establishments stay together and agree with a `siren` column), any other count
/// a Luhn-valid number of that length. Separators stay where they were.
pub(crate) fn siret_or_siren(
    faker: &Faker,
    kind: Kind,
    rng: &mut FakeRng,
    norm: &str,
    original: &str,
) -> String {
    let digits = match norm.len() {
        14 => {
            let mut d = if kind == Kind::Siren {
                // A SIRET in a SIREN column: its SIREN part is the rule's own fake.
                luhn_number(rng, 9, None)
            } else {
                luhn_number(&mut faker.rng_for(Kind::Siren, &norm[..9]), 9, None)
            };
            for _ in 0..4 {
                d.push(b'0' + rng.random_range(0..10u8));
            }
            let key = luhn_key(&d);
            d.push(key);
            d
        }
        n => luhn_number(rng, n, None),
    };
    fill_digits(original, &digits)
}

/// A card number of the same length and layout, same first digit (network), valid Luhn key.
pub(crate) fn card(rng: &mut FakeRng, norm: &str, original: &str) -> String {
    let digits = luhn_number(rng, norm.len(), norm.bytes().next());
    fill_digits(original, &digits)
}

const NOT_IBAN: RuleError = RuleError::Invalid {
    rule: "iban",
    expected: "an IBAN (2 letters, 2 check digits, up to 30 letters or digits)",
};

/// Uppercase, without spaces or dashes; checked for the IBAN shape (not the check digits).
pub(crate) fn normalize_iban(value: &str) -> Result<String, RuleError> {
    let mut s = String::with_capacity(34);
    for c in value.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => s.push(c.to_ascii_uppercase()),
            ' ' | '-' | '\t' => {}
            _ => return Err(NOT_IBAN),
        }
    }
    let b = s.as_bytes();
    let shaped = (5..=34).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit);
    if shaped { Ok(s) } else { Err(NOT_IBAN) }
}

/// Remainder modulo 97 of an IBAN-style string (letters count as 10–35).
pub(crate) fn mod97(s: &str) -> u32 {
    // Digits pile up in 64 bits and are reduced only when they could overflow (one
    // division every 15 digits or so, instead of one a digit).
    let mut r: u64 = 0;
    for b in s.bytes() {
        r = match b {
            b'0'..=b'9' => r * 10 + u64::from(b - b'0'),
            b'A'..=b'Z' => r * 100 + u64::from(b - b'A') + 10,
            _ => continue,
        };
        if r >= 1 << 56 {
            r %= 97;
        }
    }
    (r % 97) as u32
}

#[cfg(test)]
/// Whether a compact IBAN's check digits are right.
#[cfg(test)]
fn iban_valid(compact: &str) -> bool {
    compact.len() > 4
        && compact.is_ascii()
        && mod97(&format!("{}{}", &compact[4..], &compact[..4])) == 1
}

/// A fake IBAN: the original's country and length, valid check digits, laid out
/// like the original (its spaces where they were). French (and Monegasque)
/// 27-char IBANs get a plausible BBAN: bank, branch, account, valid RIB key;
/// others keep the original's letter/digit pattern.
pub(crate) fn iban(rng: &mut FakeRng, norm: &str, original: &str) -> String {
    let country = &norm[..2];
    let bban = if matches!(country, "FR" | "MC") && norm.len() == 27 {
        french_bban(rng)
    } else {
        norm[4..]
            .bytes()
            .map(|b| {
                if b.is_ascii_digit() {
                    char::from(b'0' + rng.random_range(0..10u8))
                } else {
                    char::from(b'A' + rng.random_range(0..26u8))
                }
            })
            .collect()
    };
    let check = 98 - mod97(&format!("{bban}{country}00"));
    let compact = format!("{country}{check:02}{bban}");
    let mut it = compact.chars();
    original
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                it.next().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// Bank (5 digits), branch (5), account (11), RIB key (2, valid).
fn french_bban(rng: &mut FakeRng) -> String {
    let bank = rng.random_range(10_000..100_000u64);
    let branch = rng.random_range(0..100_000u64);
    let account = rng.random_range(0..100_000_000_000u64);
    let key = 97 - (89 * bank + 15 * branch + 3 * account) % 97;
    format!("{bank:05}{branch:05}{account:011}{key:02}")
}

const NOT_BIC: RuleError = RuleError::Invalid {
    rule: "bic",
    expected: "a BIC (8 or 11 letters or digits, country letters 5-6)",
};

pub(crate) fn normalize_bic(value: &str) -> Result<String, RuleError> {
    let s = value.trim().to_ascii_uppercase();
    let b = s.as_bytes();
    if matches!(b.len(), 8 | 11)
        && b.iter().all(u8::is_ascii_alphanumeric)
        && b[4..6].iter().all(u8::is_ascii_uppercase)
    {
        Ok(s)
    } else {
        Err(NOT_BIC)
    }
}

/// Random bank letters, the original's country, a random location (not a test
/// BIC: no `0` second), and for 11 chars `XXX` (head office) if the original had
/// it, else a random branch.
pub(crate) fn bic(rng: &mut FakeRng, norm: &str) -> String {
    let letter = |rng: &mut FakeRng| char::from(b'A' + rng.random_range(0..26u8));
    let mut s = String::with_capacity(11);
    for _ in 0..4 {
        s.push(letter(rng));
    }
    s.push_str(&norm[4..6]);
    s.push(letter(rng));
    const LOCATION: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ23456789";
    s.push(char::from(LOCATION[rng.random_range(0..LOCATION.len())]));
    if norm.len() == 11 {
        if &norm[8..] == "XXX" {
            s.push_str("XXX");
        } else {
            const BRANCH: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            for _ in 0..3 {
                s.push(char::from(BRANCH[rng.random_range(0..BRANCH.len())]));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::{Locale, Rule};
    use super::*;
    use rand::SeedableRng;

    fn digits(s: &str) -> Vec<u8> {
        s.bytes().filter(u8::is_ascii_digit).collect()
    }

    fn one(f: &mut Faker, rule: &Rule, v: &str) -> String {
        f.apply(rule, v, false)
            .expect("rule applies")
            .expect("not null")
    }

    #[test]
    fn luhn_known_values() {
        assert!(luhn_valid(b"732829320")); // a real SIREN
        assert!(luhn_valid(b"4111111111111111"));
        assert!(!luhn_valid(b"4111111111111112"));
        assert_eq!(luhn_key(b"73282932"), b'0');
        assert!(iban_valid("FR1420041010050500013M02606"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(!iban_valid("GB82WEST12345698765433"));
    }

    #[test]
    fn siret_and_siren_are_luhn_valid_over_random_inputs() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let mut rng = FakeRng::from_seed([3; 32]);
        for _ in 0..1000 {
            let siret: String = (0..14)
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect();
            let out = one(&mut f, &Rule::Siret, &siret);
            assert_eq!(out.len(), 14, "{out}");
            assert!(luhn_valid(out.as_bytes()), "{out}");
            assert!(luhn_valid(&out.as_bytes()[..9]), "{out}");
            // The SIREN column of the same company gets the SIRET's first 9 digits.
            let siren = one(&mut f, &Rule::Siren, &siret[..9]);
            assert_eq!(siren, out[..9], "{siret}");
            assert!(luhn_valid(siren.as_bytes()));
        }
        // Layout kept, digit count kept.
        let spaced = one(&mut f, &Rule::Siret, "732 829 320 00074");
        assert_eq!(spaced.len(), 17);
        assert!(luhn_valid(&digits(&spaced)));
        assert_eq!(one(&mut f, &Rule::Siren, "73282932000074").len(), 14);
        assert!(f.apply(&Rule::Siret, "n/a", false).is_err());
    }

    #[test]
    fn mod97_equals_the_digit_by_digit_remainder() {
        let slow = |s: &str| {
            s.bytes().fold(0u32, |r, b| match b {
                b'0'..=b'9' => (r * 10 + u32::from(b - b'0')) % 97,
                b'A'..=b'Z' => (r * 100 + u32::from(b - b'A') + 10) % 97,
                _ => r,
            })
        };
        let mut x: u64 = 12345;
        for len in 0..80 {
            let s: String = (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let k = (x >> 33) % 40;
                    match k {
                        0..=9 => char::from(b'9' - k as u8),
                        10..=35 => char::from(b'Z' - (k - 10) as u8),
                        _ => ' ',
                    }
                })
                .collect();
            assert_eq!(mod97(&s), slow(&s), "{s}");
        }
        assert_eq!(mod97(&"9".repeat(200)), slow(&"9".repeat(200)));
    }

    #[test]
    fn ibans_are_mod97_valid_and_keep_country_length_spacing() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let mut rng = FakeRng::from_seed([5; 32]);
        let countries = [
            ("FR", 27),
            ("DE", 22),
            ("GB", 22),
            ("BE", 16),
            ("IT", 27),
            ("MT", 31),
        ];
        for i in 0..1000 {
            let (cc, len) = countries[i % countries.len()];
            let body: String = (0..len - 4)
                .map(|j| {
                    if cc == "GB" && j < 4 {
                        char::from(b'A' + rng.random_range(0..26u8))
                    } else {
                        char::from(b'0' + rng.random_range(0..10u8))
                    }
                })
                .collect();
            let compact = format!("{cc}{:02}{body}", rng.random_range(0..100));
            let spaced: String = compact
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect::<Vec<_>>()
                .join(" ");
            for input in [&compact, &spaced] {
                let out = one(&mut f, &Rule::Iban, input);
                assert_eq!(out.len(), input.len(), "{input} → {out}");
                assert_eq!(&out[..2], cc);
                for (a, b) in input.chars().zip(out.chars()) {
                    assert_eq!(a == ' ', b == ' ', "{input} → {out}");
                    if cc == "GB" {
                        assert_eq!(a.is_ascii_digit(), b.is_ascii_digit(), "{input} → {out}");
                    }
                }
                let out_compact: String = out.chars().filter(|c| *c != ' ').collect();
                assert!(iban_valid(&out_compact), "{out}");
                if cc == "FR" {
                    // RIB key: 97 − (89·bank + 15·branch + 3·account) mod 97.
                    let n =
                        |r: std::ops::Range<usize>| out_compact[r].parse::<u64>().expect("parses");
                    let key = 97 - (89 * n(4..9) + 15 * n(9..14) + 3 * n(14..25)) % 97;
                    assert_eq!(key, n(25..27), "{out}");
                }
            }
            // Spaced and compact spellings of one IBAN share their fake.
            let a: String = one(&mut f, &Rule::Iban, &compact);
            let b: String = one(&mut f, &Rule::Iban, &spaced).replace(' ', "");
            assert_eq!(a, b);
        }
        // The seed's irregular spacing is kept as is.
        let seed = "FR76 3000 6000 010000000042 189";
        let out = one(&mut f, &Rule::Iban, seed);
        assert_eq!(
            out.match_indices(' ').collect::<Vec<_>>(),
            seed.match_indices(' ').collect::<Vec<_>>()
        );
        assert!(f.apply(&Rule::Iban, "hello", false).is_err());
        assert!(f.apply(&Rule::Iban, "FR76 3000 6000 01€", false).is_err());
    }

    #[test]
    fn bics_keep_length_and_country() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        for (i, v) in ["BNPAFRPPXXX", "BNPAFRPP", "DEUTDEFF500", "bnpafrppxxx"]
            .iter()
            .enumerate()
        {
            let out = one(&mut f, &Rule::Bic, v);
            assert_eq!(out.len(), v.len(), "{out}");
            assert_eq!(&out[4..6], &v.to_ascii_uppercase()[4..6]);
            assert!(out[..4].bytes().all(|b| b.is_ascii_uppercase()));
            assert_ne!(out.as_bytes()[7], b'0');
            if i == 0 || i == 3 {
                assert!(out.ends_with("XXX"));
            }
        }
        assert!(f.apply(&Rule::Bic, "BNPA", false).is_err());
    }

    #[test]
    fn cards_keep_network_length_and_layout() {
        let mut rng = FakeRng::from_seed([1; 32]);
        let out = card(&mut rng, "4111111111111111", "4111 1111 1111 1111");
        assert_eq!(out.len(), 19);
        assert!(out.starts_with('4'));
        assert!(luhn_valid(&digits(&out)));
    }
}

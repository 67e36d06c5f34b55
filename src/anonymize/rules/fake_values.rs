//! Fake personal values: names, e-mails, phones, addresses, companies, IPs, user
//! agents, drawn from the `fake` crate's locale data with a seeded generator.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::FakeRng;
use fake::Fake;
use fake::faker::address::raw::{BuildingNumber, CityName, StreetName};
use fake::faker::company::raw::CompanyName;
use fake::faker::internet::raw::UserAgent;
use fake::faker::name::raw::{FirstName, LastName};
use fake::locales::{EN, FR_FR};
use rand::RngExt;
use rand::seq::IndexedRandom;

use super::{Locale, RuleError};

/// Non-routable mail domains (`.test` is reserved by RFC 2606, `example.*` too).
const DOMAINS_FR: &[&str] = &["exemple.test", "courriel.test", "messagerie.test"];
const DOMAINS_EN: &[&str] = &["example.com", "example.org", "example.net"];

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

pub(crate) fn first_name(rng: &mut FakeRng, locale: Locale) -> &'static str {
    match locale {
        Locale::FrFr => FirstName(FR_FR).fake_with_rng(rng),
        Locale::En => FirstName(EN).fake_with_rng(rng),
    }
}

pub(crate) fn last_name(rng: &mut FakeRng, locale: Locale) -> &'static str {
    match locale {
        Locale::FrFr => LastName(FR_FR).fake_with_rng(rng),
        Locale::En => LastName(EN).fake_with_rng(rng),
    }
}

pub(crate) fn full_name(rng: &mut FakeRng, locale: Locale) -> String {
    let first = first_name(rng, locale);
    let last = last_name(rng, locale);
    format!("{first} {last}")
}

/// `prenom.nom.<6 base32 chars>@<domain>`: 30 bits of the seed make collisions
/// between distinct originals negligible even among millions.
pub(crate) fn email(rng: &mut FakeRng, locale: Locale) -> String {
    let first = first_name(rng, locale);
    let last = last_name(rng, locale);
    let tag: u32 = rng.random();
    let domains = match locale {
        Locale::FrFr => DOMAINS_FR,
        Locale::En => DOMAINS_EN,
    };
    let domain = domains.choose(rng).copied().unwrap_or("example.com");
    let mut s = String::with_capacity(first.len() + last.len() + domain.len() + 10);
    fold_ascii_into(first, &mut s);
    s.push('.');
    fold_ascii_into(last, &mut s);
    s.push('.');
    for i in 0..6 {
        s.push(char::from(BASE32[((tag >> (5 * i)) & 31) as usize]));
    }
    s.push('@');
    s.push_str(domain);
    s
}

/// Lowercase ASCII for an e-mail local part: accents folded, `-` kept, the rest dropped.
#[cfg(test)]
fn fold_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    fold_ascii_into(s, &mut out);
    out
}

/// [`fold_ascii`] appended to `out`.
fn fold_ascii_into(s: &str, out: &mut String) {
    for c in s.chars() {
        let folded: &str = match c {
            'a'..='z' | '0'..='9' | '-' => {
                out.push(c);
                continue;
            }
            'A'..='Z' => {
                out.push(c.to_ascii_lowercase());
                continue;
            }
            'à' | 'â' | 'ä' | 'á' | 'ã' | 'å' | 'À' | 'Â' | 'Ä' | 'Á' | 'Ã' | 'Å' => {
                "a"
            }
            'ç' | 'Ç' => "c",
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => "e",
            'î' | 'ï' | 'í' | 'ì' | 'Î' | 'Ï' | 'Í' | 'Ì' => "i",
            'ô' | 'ö' | 'ó' | 'ò' | 'õ' | 'ø' | 'Ô' | 'Ö' | 'Ó' | 'Ò' | 'Õ' | 'Ø' => {
                "o"
            }
            'ù' | 'û' | 'ü' | 'ú' | 'Ù' | 'Û' | 'Ü' | 'Ú' => "u",
            'ÿ' | 'ý' | 'Ÿ' | 'Ý' => "y",
            'ñ' | 'Ñ' => "n",
            'æ' | 'Æ' => "ae",
            'œ' | 'Œ' => "oe",
            'ß' => "ss",
            ' ' => "-",
            _ => "",
        };
        out.push_str(folded);
    }
}

/// The fake in capitals when the original is written in capitals (`MARTIN`).
pub(crate) fn match_case(original: &str, fake: &str) -> String {
    let mut letters = 0;
    for c in original.chars().filter(|c| c.is_alphabetic()) {
        if !c.is_uppercase() {
            return fake.to_owned();
        }
        letters += 1;
    }
    if letters >= 2 {
        fake.to_uppercase()
    } else {
        fake.to_owned()
    }
}

/// Where a phone number's kept prefix ends and whether it is French.
struct PhoneLayout {
    /// Leading digits kept as they are (`00`, country code, trunk `0`).
    keep: usize,
    /// The country code's digits, for international numbers.
    cc: Option<(usize, usize)>,
    french: bool,
}

fn phone_layout(original: &str, digits: &[u8]) -> Option<PhoneLayout> {
    let t = original.trim_start();
    let plus = t.starts_with('+');
    let layout = if plus || digits.starts_with(b"00") {
        let skip = if plus { 0 } else { 2 };
        let cc_end = skip + country_code_len(digits.get(skip..)?)?;
        let french = digits.get(skip..cc_end) == Some(b"33".as_slice());
        // "+33 (0)6 …": the trunk 0 in brackets is part of the prefix.
        let trunk = digits.get(cc_end) == Some(&b'0') && t.contains("(0)");
        PhoneLayout {
            keep: cc_end + usize::from(trunk),
            cc: Some((skip, cc_end)),
            french,
        }
    } else if digits.first() == Some(&b'0') {
        PhoneLayout {
            keep: 1,
            cc: None,
            french: digits.len() == 10,
        }
    } else {
        PhoneLayout {
            keep: 0,
            cc: None,
            french: false,
        }
    };
    let nsn = digits.len().checked_sub(layout.keep)?;
    (4..=14).contains(&nsn).then_some(layout)
}

/// Length of the ITU country code at the start of `d` (1 to 3 digits).
fn country_code_len(d: &[u8]) -> Option<usize> {
    let (a, b) = (*d.first()?, *d.get(1)?);
    Some(match a {
        b'1' | b'7' => 1,
        b'2' => 2 + usize::from(!matches!(b, b'0' | b'7')),
        b'3' => 2 + usize::from(!matches!(b, b'0'..=b'4' | b'6' | b'9')),
        b'4' => 2 + usize::from(b == b'2'),
        b'5' => 2 + usize::from(!matches!(b, b'1'..=b'8')),
        b'6' => 2 + usize::from(!matches!(b, b'0'..=b'6')),
        b'8' => 2 + usize::from(!matches!(b, b'1' | b'2' | b'4' | b'6')),
        b'9' => 2 + usize::from(!matches!(b, b'0'..=b'5' | b'8')),
        _ => return None,
    })
}

/// The digits identifying a phone whatever its layout: French numbers reduced to
/// their 9 national digits (`+33 6 12 34 56 78`, `0033612345678` and
/// `06.12.34.56.78` agree), others to country code and number.
pub(crate) fn normalize_phone(value: &str) -> String {
    let digits: Vec<u8> = value.bytes().filter(u8::is_ascii_digit).collect();
    let Some(l) = phone_layout(value, &digits) else {
        return value.trim().to_lowercase();
    };
    let mut out = String::with_capacity(digits.len());
    if let (Some((start, end)), false) = (l.cc, l.french) {
        // Not French: the country code identifies the number too.
        out.extend(digits[start..end].iter().map(|&b| char::from(b)));
    }
    out.extend(digits[l.keep..].iter().map(|&b| char::from(b)));
    out
}

/// A fake phone laid out exactly like `original` (same separators, same prefix);
/// French numbers keep their class (mobile 6/7, geographic 1–5, 9).
pub(crate) fn phone(rng: &mut FakeRng, locale: Locale, original: &str) -> String {
    let digits: Vec<u8> = original.bytes().filter(u8::is_ascii_digit).collect();
    let Some(l) = phone_layout(original, &digits) else {
        return default_phone(rng, locale);
    };
    let nsn = &digits[l.keep..];
    let mut new: Vec<u8> = Vec::with_capacity(digits.len());
    new.extend_from_slice(&digits[..l.keep]);
    let first = nsn.first().copied().unwrap_or(b'6');
    let first = if l.french {
        match first {
            b'6' | b'7' => *[b'6', b'7'].choose(rng).unwrap_or(&b'6'),
            b'1'..=b'5' | b'9' => *b"123459".choose(rng).unwrap_or(&b'1'),
            other => other,
        }
    } else {
        first
    };
    new.push(first);
    for _ in 1..nsn.len() {
        new.push(b'0' + rng.random_range(0..10u8));
    }
    fill_digits(original, &new)
}

fn default_phone(rng: &mut FakeRng, locale: Locale) -> String {
    let (template, first): (&str, &[u8]) = match locale {
        Locale::FrFr => ("+33 # ## ## ## ##", b"67"),
        Locale::En => ("+44 #### ######", b"7"),
    };
    let mut digits = vec![*first.choose(rng).unwrap_or(&b'6')];
    digits.extend((1..10).map(|_| b'0' + rng.random_range(0..10u8)));
    let mut it = digits.into_iter();
    template
        .chars()
        .map(|c| match c {
            '#' => char::from(it.next().unwrap_or(b'0')),
            c => c,
        })
        .collect()
}

/// `shape` with its ASCII digits replaced, in order, by `digits`.
pub(crate) fn fill_digits(shape: &str, digits: &[u8]) -> String {
    let mut it = digits.iter();
    shape
        .chars()
        .map(|c| match c {
            '0'..='9' => it.next().map_or(c, |&d| char::from(d)),
            c => c,
        })
        .collect()
}

pub(crate) fn street_address(rng: &mut FakeRng, locale: Locale) -> String {
    match locale {
        Locale::FrFr => {
            let number = rng.random_range(1..=199u32);
            let street: String = StreetName(FR_FR).fake_with_rng(rng);
            // "Rue Martin" → "rue Martin", as French addresses write it.
            let mut chars = street.chars();
            let lowered: String = match chars.next() {
                Some(c) => c.to_lowercase().chain(chars).collect(),
                None => street,
            };
            format!("{number} {lowered}")
        }
        Locale::En => {
            let number: String = BuildingNumber(EN).fake_with_rng(rng);
            let street: String = StreetName(EN).fake_with_rng(rng);
            format!("{number} {street}")
        }
    }
}

/// 5 digits (a French département 01–95 then 3 digits, or a US ZIP) for 5-digit
/// originals; otherwise the original's shape with letters and digits redrawn.
pub(crate) fn postcode(rng: &mut FakeRng, locale: Locale, original: &str) -> String {
    let t = original.trim();
    if t.len() == 5 && t.bytes().all(|b| b.is_ascii_digit()) {
        return match locale {
            Locale::FrFr => {
                let mut dept = rng.random_range(1..=94u32);
                if dept >= 20 {
                    dept += 1; // no département 20 (Corsica is 2A/2B, postcodes 20xxx)
                }
                format!("{dept:02}{:03}", rng.random_range(0..1000u32))
            }
            Locale::En => format!("{:05}", rng.random_range(1000..100_000u32)),
        };
    }
    t.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from(b'0' + rng.random_range(0..10u8))
            } else if c.is_ascii_uppercase() {
                char::from(b'A' + rng.random_range(0..26u8))
            } else if c.is_ascii_lowercase() {
                char::from(b'a' + rng.random_range(0..26u8))
            } else {
                c
            }
        })
        .collect()
}

const FR_CITY_SUFFIXES: &[&str] = &[
    "-sur-Mer",
    "-sur-Loire",
    "-sur-Seine",
    "-sur-Marne",
    "-les-Bains",
    "-la-Forêt",
    "-le-Château",
    "-en-Vexin",
    "ville",
];

pub(crate) fn city(rng: &mut FakeRng, locale: Locale) -> String {
    match locale {
        Locale::FrFr => match rng.random_range(0..4u8) {
            0 => format!("Saint-{}", first_name(rng, locale)),
            1 => {
                let name = last_name(rng, locale);
                let suffix = FR_CITY_SUFFIXES.choose(rng).copied().unwrap_or("");
                format!("{name}{suffix}")
            }
            _ => last_name(rng, locale).to_owned(),
        },
        Locale::En => CityName(EN).fake_with_rng(rng),
    }
}

const FR_LEGAL_FORMS: &[&str] = &["SARL", "SAS", "SA", "EURL", "SASU"];

pub(crate) fn company(rng: &mut FakeRng, locale: Locale) -> String {
    match locale {
        Locale::FrFr => match rng.random_range(0..5u8) {
            0 => format!("{} & Fils", last_name(rng, locale)),
            1 => {
                let a = last_name(rng, locale);
                let b = last_name(rng, locale);
                format!("{a} et {b}")
            }
            2 => format!("Établissements {}", last_name(rng, locale)),
            _ => {
                let form = FR_LEGAL_FORMS.choose(rng).copied().unwrap_or("SARL");
                format!("{form} {}", last_name(rng, locale))
            }
        },
        Locale::En => CompanyName(EN).fake_with_rng(rng),
    }
}

pub(crate) fn user_agent(rng: &mut FakeRng) -> &'static str {
    UserAgent(EN).fake_with_rng(rng)
}

const NOT_IP: RuleError = RuleError::Invalid {
    rule: "ip_address",
    expected: "an IP address (inet or cidr text)",
};

/// Address and optional prefix length of `10.1.2.3`, `10.1.2.0/24`, `2001:db8::1/64`.
fn parse_ip(value: &str) -> Result<(IpAddr, Option<u8>), RuleError> {
    let t = value.trim();
    let (addr, prefix) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| NOT_IP)?)),
        None => (t, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| NOT_IP)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix.is_some_and(|p| p > max) {
        return Err(NOT_IP);
    }
    Ok((addr, prefix))
}

/// The canonical address (the prefix does not identify the host).
pub(crate) fn normalize_ip(value: &str) -> Result<String, RuleError> {
    Ok(parse_ip(value)?.0.to_string())
}

/// A fake address of the same family; private IPv4 stay in their private range,
/// public ones become other public ones, IPv6 go to `2001:db8::/32`. A prefix is
/// kept, and so are zero host bits (a `cidr` stays a valid network).
pub(crate) fn ip(rng: &mut FakeRng, value: &str) -> Result<String, RuleError> {
    let (addr, prefix) = parse_ip(value)?;
    let new = match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            let r: [u8; 4] = rng.random();
            let fake = match o {
                [10, ..] => Ipv4Addr::new(10, r[1], r[2], r[3]),
                [172, 16..=31, ..] => Ipv4Addr::new(172, 16 + (r[1] & 15), r[2], r[3]),
                [192, 168, ..] => Ipv4Addr::new(192, 168, r[2], r[3]),
                [127, ..] => Ipv4Addr::new(127, r[1], r[2], r[3]),
                _ => public_v4(rng),
            };
            let bits = u32::from(fake);
            IpAddr::V4(Ipv4Addr::from(keep_host_zero(
                u128::from(u32::from(a)),
                u128::from(bits),
                prefix,
                32,
            ) as u32))
        }
        IpAddr::V6(a) => {
            let r: u128 = rng.random();
            let fake = (0x2001_0db8u128 << 96) | (r & ((1u128 << 96) - 1));
            IpAddr::V6(Ipv6Addr::from(keep_host_zero(
                u128::from(a),
                fake,
                prefix,
                128,
            )))
        }
    };
    Ok(match prefix {
        Some(p) => format!("{new}/{p}"),
        None => new.to_string(),
    })
}

fn public_v4(rng: &mut FakeRng) -> Ipv4Addr {
    let mut a = Ipv4Addr::new(198, 51, 100, 1);
    for _ in 0..32 {
        let r: [u8; 4] = rng.random();
        a = Ipv4Addr::from(r);
        let first = r[0];
        if (1..224).contains(&first)
            && !a.is_private()
            && !a.is_loopback()
            && !a.is_link_local()
            && first != 100
        {
            break;
        }
    }
    a
}

/// `fake` with its host bits cleared when the original's were all zero.
fn keep_host_zero(original: u128, fake: u128, prefix: Option<u8>, width: u32) -> u128 {
    let Some(p) = prefix else { return fake };
    let p = u32::from(p);
    if p >= width {
        return fake;
    }
    let host_mask = (1u128 << (width - p)) - 1;
    if original & host_mask == 0 {
        fake & !host_mask
    } else {
        fake
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Faker, Rule};
    use super::*;
    use rand::SeedableRng;

    fn fr() -> Faker {
        Faker::new(b"k", Locale::FrFr)
    }

    fn one(f: &mut Faker, rule: &Rule, v: &str) -> String {
        f.apply(rule, v, false)
            .expect("rule applies")
            .expect("not null")
    }

    #[test]
    fn emails_are_well_formed_and_non_routable() {
        let mut f = fr();
        for i in 0..200 {
            let e = one(
                &mut f,
                &Rule::Email,
                &format!("Camille.Martin{i}@Exemple.fr"),
            );
            let (local, domain) = e.split_once('@').expect("separator");
            assert!(DOMAINS_FR.contains(&domain), "{e}");
            let parts: Vec<&str> = local.split('.').collect();
            assert_eq!(parts.len(), 3, "{e}");
            assert_eq!(parts[2].len(), 6, "{e}");
            assert!(
                local
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)),
                "{e}"
            );
        }
        // Normalized before hashing: case and spaces do not matter.
        assert_eq!(
            one(&mut f, &Rule::Email, " camille@exemple.fr "),
            one(&mut f, &Rule::Email, "CAMILLE@EXEMPLE.FR")
        );
    }

    fn is_fr_intl(s: &str) -> bool {
        // +33 D DD DD DD DD
        let b = s.as_bytes();
        s.len() == 17
            && s.starts_with("+33 ")
            && b[4].is_ascii_digit()
            && (5..17).all(|i| {
                if (i - 5) % 3 == 0 {
                    b[i] == b' '
                } else {
                    b[i].is_ascii_digit()
                }
            })
    }

    #[test]
    fn french_phones_keep_shape_and_class() {
        let mut f = fr();
        let mut rng = FakeRng::from_seed([7; 32]);
        for _ in 0..500 {
            let mobile = rng.random_bool(0.5);
            let first = if mobile { 6 } else { rng.random_range(1..=5) };
            let rest: Vec<u8> = (0..8).map(|_| rng.random_range(0..10)).collect();
            let r = |i: usize| format!("{}{}", rest[i], rest[i + 1]);
            let intl = format!("+33 {first} {} {} {} {}", r(0), r(2), r(4), r(6));
            let out = one(&mut f, &Rule::Phone, &intl);
            assert!(is_fr_intl(&out), "{intl} → {out}");
            let class = out.as_bytes()[4];
            if mobile {
                assert!(class == b'6' || class == b'7', "{out}");
            } else {
                assert!(b"123459".contains(&class), "{out}");
            }
            // The national spelling of the same number: same digits, its own layout.
            let national = format!("0{first}.{}.{}.{}.{}", r(0), r(2), r(4), r(6));
            let out_nat = one(&mut f, &Rule::Phone, &national);
            assert_eq!(out_nat.len(), 14, "{out_nat}");
            assert_eq!(out_nat.matches('.').count(), 4, "{out_nat}");
            let d = |s: &str| s.bytes().filter(u8::is_ascii_digit).collect::<Vec<u8>>();
            assert_eq!(d(&out)[2..], d(&out_nat)[1..], "{out} vs {out_nat}");
            let compact = format!(
                "0033{first}{}",
                rest.iter().map(|d| d.to_string()).collect::<String>()
            );
            let out_c = one(&mut f, &Rule::Phone, &compact);
            assert_eq!(d(&out_c)[4..], d(&out)[2..], "{out_c}");
        }
    }

    #[test]
    fn other_phones_keep_country_code_and_layout() {
        let mut f = Faker::new(b"k", Locale::En);
        for v in [
            "+44 20 7946 0958",
            "+1 (415) 555-0100",
            "+49 30 1234567",
            "(415) 555-0100",
        ] {
            let out = one(&mut f, &Rule::Phone, v);
            assert_eq!(out.len(), v.len(), "{v} → {out}");
            assert_ne!(out, v);
            for (a, b) in v.chars().zip(out.chars()) {
                assert_eq!(a.is_ascii_digit(), b.is_ascii_digit(), "{v} → {out}");
            }
        }
        assert!(one(&mut f, &Rule::Phone, "+44 20 7946 0958").starts_with("+44 2"));
        // Not a phone at all: a fresh one in the locale's default layout.
        let out = one(&mut f, &Rule::Phone, "n/a");
        assert!(out.starts_with("+44 7"), "{out}");
    }

    #[test]
    fn country_codes() {
        for (d, n) in [
            ("33", 2),
            ("1415", 1),
            ("44", 2),
            ("352", 3),
            ("212", 3),
            ("49", 2),
            ("7", 0),
        ] {
            assert_eq!(country_code_len(d.as_bytes()).unwrap_or(0), n, "{d}");
        }
    }

    #[test]
    fn addresses_and_companies_look_french() {
        let mut f = fr();
        for i in 0..100 {
            let pc = one(&mut f, &Rule::Postcode, &format!("{:05}", 75000 + i));
            assert_eq!(pc.len(), 5);
            assert!(
                pc.bytes().all(|b| b.is_ascii_digit())
                    && !pc.starts_with("00")
                    && !pc.starts_with("20"),
                "{pc}"
            );
            let street = one(
                &mut f,
                &Rule::StreetAddress,
                &format!("{i} rue de la République"),
            );
            let (n, rest) = street.split_once(' ').expect("separator");
            assert!(n.parse::<u32>().is_ok(), "{street}");
            assert!(rest.starts_with(|c: char| c.is_lowercase()), "{street}");
            assert!(!one(&mut f, &Rule::City, &format!("Ville {i}")).is_empty());
            assert!(!one(&mut f, &Rule::Company, &format!("SARL {i}")).is_empty());
            let full = one(&mut f, &Rule::FullName, &format!("Camille {i}"));
            assert!(full.contains(' '), "{full}");
        }
        assert_eq!(one(&mut f, &Rule::Postcode, "SW1A 1AA").len(), 8);
        let upper = one(&mut f, &Rule::LastName, "MARTIN");
        assert_eq!(upper, upper.to_uppercase());
        assert_eq!(upper, one(&mut f, &Rule::LastName, "Martin").to_uppercase());
    }

    #[test]
    fn fold_ascii_folds_french() {
        assert_eq!(fold_ascii("Élodie"), "elodie");
        assert_eq!(fold_ascii("D'Almeida"), "dalmeida");
        assert_eq!(fold_ascii("Jean-Noël Œuvre"), "jean-noel-oeuvre");
    }

    #[test]
    fn ips_keep_family_prefix_and_privacy() {
        let mut f = fr();
        for i in 0..200u32 {
            let v4 = format!("10.{}.{}.{}", i % 250, i % 7, i % 13);
            let out: Ipv4Addr = one(&mut f, &Rule::IpAddress, &v4).parse().expect("parses");
            assert_eq!(out.octets()[0], 10);
            let out: Ipv4Addr = one(
                &mut f,
                &Rule::IpAddress,
                &format!("8.8.{}.{}", i % 250, i % 3),
            )
            .parse()
            .expect("parses");
            assert!(
                !out.is_private() && !out.is_loopback() && out.octets()[0] < 224,
                "{out}"
            );
            let net = one(
                &mut f,
                &Rule::IpAddress,
                &format!("192.168.{}.0/24", i % 250),
            );
            let (a, p) = net.split_once('/').expect("separator");
            assert_eq!(p, "24");
            let a: Ipv4Addr = a.parse().expect("parses");
            assert_eq!(a.octets()[3], 0, "{net}");
            assert_eq!(&a.octets()[..2], &[192, 168]);
            let v6 = one(&mut f, &Rule::IpAddress, &format!("fe80::{i:x}/64"));
            let (a, p) = v6.split_once('/').expect("separator");
            assert_eq!(p, "64");
            assert!(
                a.parse::<Ipv6Addr>().is_ok() && a.starts_with("2001:db8:"),
                "{v6}"
            );
        }
        let host = one(&mut f, &Rule::IpAddress, "10.0.0.7/8");
        assert!(!host.ends_with(".0.0.0/8"), "{host}");
        assert!(f.apply(&Rule::IpAddress, "not an ip", false).is_err());
        assert!(f.apply(&Rule::IpAddress, "10.0.0.1/33", false).is_err());
        // inet prints a host without /32: same fake with or without it.
        let a = one(&mut f, &Rule::IpAddress, "10.9.8.7");
        let b = one(&mut f, &Rule::IpAddress, "10.9.8.7/32");
        assert_eq!(format!("{a}/32"), b);
    }

    #[test]
    fn user_agents_come_from_fake() {
        let mut f = fr();
        let ua = one(
            &mut f,
            &Rule::UserAgent,
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/110.0",
        );
        assert!(ua.starts_with("Mozilla") || ua.starts_with("Opera"), "{ua}");
    }
}

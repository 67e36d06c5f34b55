//! `scrub`: finds e-mails, phone numbers, IBANs and card numbers inside free text
//! and replaces each with the fake its column rule would give; every other byte of
//! the text is kept.
//!
//! What is recognised:
//! - e-mails `local@domain.tld` (Unicode letters allowed);
//! - French phones `+33 6 12 34 56 78`, `0033 6…`, `+33 (0)6…`, `06 12 34 56 78`,
//!   `06.12.34.56.78`, `0612345678`; other international numbers written with `+`
//!   (8–15 digits);
//! - IBANs of known countries, with or without spaces (even irregular ones);
//! - card numbers: 13–19 digits, optionally grouped by spaces or dashes, that pass
//!   the Luhn check (a SIRET in a note passes it too and is replaced as well).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use super::RuleError;
use super::faker::{Faker, Kind, Params};
use super::ids::{iban_length, luhn_valid};

/// One pattern, one group per kind, tried leftmost-first. ASCII word boundaries:
/// Unicode ones would push the regex engine off its fast path on accented text.
const PATTERN: &str = r"(?x)
    (?P<email>[\p{L}\p{N}._%+-]+@[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?)*\.\p{L}{2,})
  | (?P<iban>(?-u:\b)[A-Z]{2}[0-9]{2}(?:\x20?[A-Z0-9]){11,30})
  | (?P<phone>
        (?:\+|(?-u:\b)00)\x20?33[\x20.-]?(?:\(0\)[\x20.-]?)?[1-9](?:[\x20.-]?[0-9]{2}){4}(?-u:\b)
      | \+[1-9][0-9]{0,2}(?:[\x20.-]?\(?[0-9]{1,4}\)?){2,6}(?-u:\b)
      | (?-u:\b)0[1-9](?:[\x20.-]?[0-9]{2}){4}(?-u:\b)
    )
  | (?P<card>(?-u:\b)[1-9](?:[\x20-]?[0-9]){12,18}(?-u:\b))
";

static PII: LazyLock<Result<Regex, regex::Error>> = LazyLock::new(|| Regex::new(PATTERN));

/// What kind of personal value `text` holds somewhere, if any: `"e-mail"`,
/// `"IBAN"`, `"phone number"` or `"card number"` (the same recognisers as
/// [`scrub`]).
pub(crate) fn detect(text: &str) -> Option<&'static str> {
    if !text.bytes().any(|b| b == b'@' || b.is_ascii_digit()) {
        return None;
    }
    let re = PII.as_ref().ok()?;
    let mut locs = re.capture_locations();
    let mut pos = 0;
    while pos < text.len() {
        let (start, end) = re
            .captures_read_at(&mut locs, text, pos)
            .map(|m| (m.start(), m.end()))?;
        let group = (1..=4).find(|g| locs.get(*g).is_some()).unwrap_or(0);
        let found = match group {
            1 => Some("e-mail"),
            2 => iban_end(text, start, end).map(|_| "IBAN"),
            3 => phone_ok(&text[start..end]).then_some("phone number"),
            4 => luhn_valid(&digits(&text[start..end])).then_some("card number"),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
        pos = end.max(start + 1);
        while !text.is_char_boundary(pos) {
            pos += 1;
        }
    }
    None
}

/// The text with every e-mail, phone, IBAN and card number replaced.
pub(crate) fn scrub<'t>(faker: &mut Faker, text: &'t str) -> Result<Cow<'t, str>, RuleError> {
    // Every kind needs an '@' or a digit: most text without them is skipped here.
    if !text.bytes().any(|b| b == b'@' || b.is_ascii_digit()) {
        return Ok(Cow::Borrowed(text));
    }
    let re = PII
        .as_ref()
        .map_err(|e| RuleError::Internal(format!("scrub pattern: {e}")))?;
    let mut locs = re.capture_locations();
    let mut out = String::new();
    let mut copied = 0; // text[..copied] is in `out` (or replaced)
    let mut pos = 0;
    while pos < text.len() {
        let Some((start, end)) = re
            .captures_read_at(&mut locs, text, pos)
            .map(|m| (m.start(), m.end()))
        else {
            break;
        };
        let group = (1..=4).find(|g| locs.get(*g).is_some()).unwrap_or(0);
        let found = match group {
            1 => Some((Kind::Email, end)),
            2 => iban_end(text, start, end).map(|e| (Kind::Iban, e)),
            3 => phone_ok(&text[start..end]).then_some((Kind::Phone, end)),
            4 => luhn_valid(&digits(&text[start..end])).then_some((Kind::Card, end)),
            _ => None,
        };
        match found {
            Some((kind, end)) => {
                let fake = faker.fake(kind, Params::default(), &text[start..end], false)?;
                out.push_str(&text[copied..start]);
                out.push_str(&fake);
                copied = end;
                pos = end;
            }
            None => pos = end.max(start + 1),
        }
        while !text.is_char_boundary(pos) {
            pos += 1;
        }
    }
    if copied == 0 {
        return Ok(Cow::Borrowed(text));
    }
    out.push_str(&text[copied..]);
    Ok(Cow::Owned(out))
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii_digit).collect()
}

/// 8 to 15 digits, as E.164 allows.
fn phone_ok(s: &str) -> bool {
    (8..=15).contains(&s.bytes().filter(u8::is_ascii_digit).count())
}

/// Where the IBAN starting at `start` ends, if it is one: trailing words of
/// letters only (`… 42 EUR`) are not part of it, and a country's registered
/// length cuts a longer run. Shorter runs of at least 15 characters are still
/// taken (test data and typos rarely have the exact length).
fn iban_end(text: &str, start: usize, mut end: usize) -> Option<usize> {
    let country = iban_length(&text[start..start + 2])?;
    while let Some(space) = text[start..end].rfind(' ') {
        let last = &text[start + space + 1..end];
        if last.bytes().all(|b| b.is_ascii_uppercase()) {
            end = start + space;
        } else {
            break;
        }
    }
    let mut count = 0;
    for (i, b) in text[start..end].bytes().enumerate() {
        if b != b' ' {
            count += 1;
            if count == country {
                return Some(start + i + 1);
            }
        }
    }
    (count >= 15).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::super::{Locale, Rule};
    use super::*;

    #[test]
    fn detect_names_the_kind_and_ignores_plain_text() {
        assert_eq!(
            detect("écrire à jean.dupont@exemple.fr svp"),
            Some("e-mail")
        );
        assert_eq!(detect("tél 06 12 34 56 78"), Some("phone number"));
        assert_eq!(detect("FR76 3000 6000 0100 0000 0001 189"), Some("IBAN"));
        assert_eq!(detect("carte 4111 1111 1111 1111"), Some("card number"));
        assert_eq!(detect("facture de 12 articles, 2024-03-01"), None);
        assert_eq!(detect("Paris"), None);
    }

    fn scrubbed(f: &mut Faker, text: &str) -> String {
        f.apply(&Rule::Scrub, text, false)
            .expect("rule applies")
            .expect("not null")
    }

    /// Asserts `out` is `text` with exactly the `secrets` (in order) replaced and
    /// the rest kept byte for byte; returns the replacements.
    fn assert_replaced(text: &str, out: &str, secrets: &[&str]) -> Vec<String> {
        let mut segs = Vec::new();
        let mut rest = text;
        for s in secrets {
            let i = rest.find(s).unwrap_or_else(|| panic!("{s} not in {text}"));
            segs.push(&rest[..i]);
            rest = &rest[i + s.len()..];
        }
        segs.push(rest);
        let mut o = out
            .strip_prefix(segs[0])
            .unwrap_or_else(|| panic!("prefix {:?} of {out:?}", segs[0]));
        let mut fakes = Vec::new();
        for (k, s) in secrets.iter().enumerate() {
            let next = segs[k + 1];
            let j = if k + 1 == secrets.len() {
                assert!(o.ends_with(next), "suffix {next:?} of {out:?}");
                o.len() - next.len()
            } else {
                assert!(!next.is_empty());
                o.find(next)
                    .unwrap_or_else(|| panic!("{next:?} in {out:?}"))
            };
            let fake = &o[..j];
            assert!(!fake.is_empty() && fake != *s, "{s} → {fake:?} in {out}");
            assert!(!out.contains(s), "{s} still in {out}");
            fakes.push(fake.to_owned());
            o = &o[j + next.len()..];
        }
        if secrets.is_empty() {
            assert_eq!(out, text);
        }
        fakes
    }

    #[test]
    fn seed_note_shapes() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        for (note, secrets) in [
            (
                "Appeler Camille au +33 6 12 34 56 07 avant le 5.",
                vec!["+33 6 12 34 56 07"],
            ),
            (
                "Litige\tfacture de mars\nvoir mail de camille12@gmail.com",
                vec!["camille12@gmail.com"],
            ),
            (
                "Client fidèle 😀, IBAN secondaire FR76 1027 8060 310000000042 42",
                vec!["FR76 1027 8060 310000000042 42"],
            ),
            (
                "Chemin réseau : C:\\Partage\\Clients\\Martin — ne pas \"relancer\"",
                vec![],
            ),
            ("", vec![]),
        ] {
            let out = scrubbed(&mut f, note);
            let fakes = assert_replaced(note, &out, &secrets);
            for (s, fake) in secrets.iter().zip(&fakes) {
                if !s.contains('@') {
                    // Phones and IBANs keep their layout.
                    assert_eq!(fake.len(), s.len(), "{s} → {fake}");
                }
            }
        }
    }

    #[test]
    fn every_kind_in_one_text() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let text = "Écrire à Jean.Dupont@exemple.fr ou jean@sub.mail.co.uk, tél. 06.12.34.56.78, \
                    fixe 01 23 45 67 89, 0033 6 11 22 33 44, +33 (0)7 11 22 33 44, UK +44 20 7946 0958; \
                    IBAN FR7630006000011234567890189 / DE89 3704 0044 0532 0130 00 EUR; \
                    carte 4111 1111 1111 1111 ou 5500-0000-0000-0004. Montant 1234,56 € le 2024-01-15, réf F2024-000000123.";
        let secrets = [
            "Jean.Dupont@exemple.fr",
            "jean@sub.mail.co.uk",
            "06.12.34.56.78",
            "01 23 45 67 89",
            "0033 6 11 22 33 44",
            "+33 (0)7 11 22 33 44",
            "+44 20 7946 0958",
            "FR7630006000011234567890189",
            "DE89 3704 0044 0532 0130 00",
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
        ];
        let out = scrubbed(&mut f, text);
        assert_replaced(text, &out, &secrets);
        assert!(out.contains(" EUR; carte "), "{out}");
        assert!(
            out.contains("Montant 1234,56 € le 2024-01-15, réf F2024-000000123."),
            "{out}"
        );
    }

    #[test]
    fn non_pii_numbers_are_kept() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        for text in [
            "Facture F2020-000000009 du 2020-01-31, total 1 234,56 €",
            "commande 4111 1111 1111 1112 (Luhn faux)",
            "ticket #123456789",
            "AB12 CDEF GHIJ KLMN OP (pas un pays)",
            "v1.2.3, 10:45, 50 %",
        ] {
            assert_eq!(scrubbed(&mut f, text), text);
        }
    }

    #[test]
    fn scrub_uses_the_column_fakes() {
        let mut f = Faker::new(b"k", Locale::FrFr);
        let email = f
            .apply(&Rule::Email, "camille12@gmail.com", false)
            .expect("rule applies")
            .expect("not null");
        let phone = f
            .apply(&Rule::Phone, "+33 6 12 34 56 07", false)
            .expect("rule applies")
            .expect("not null");
        let iban = f
            .apply(&Rule::Iban, "FR76 1027 8060 310000000042 42", false)
            .expect("rule applies")
            .expect("not null");
        let out = scrubbed(
            &mut f,
            "mail CAMILLE12@gmail.com, tél +33 6 12 34 56 07, IBAN FR76 1027 8060 310000000042 42",
        );
        assert_eq!(out, format!("mail {email}, tél {phone}, IBAN {iban}"));
    }
}

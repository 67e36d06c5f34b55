//! Anonymization rules: pure, deterministic value transformers.
//!
//! A [`Rule`] says what to do with one value (`email`, `iban`, `date_shift`, `scrub`,
//! …); a [`Faker`] applies rules to values, in the text form PostgreSQL prints them.
//!
//! # Determinism
//!
//! Every fake derives from `HMAC-SHA256(key, kind ‖ 0x00 ‖ normalized original
//! [‖ counter])`, used as the seed of a [`FakeRng`] (xoshiro256++: a generator
//! whose seeding and output cost a few nanoseconds, where ChaCha filled a 256-byte
//! block per value) handed to the `fake` generators. The kind is the rule's kind (`"email"`), never the column, so one
//! e-mail becomes the same fake e-mail in every table, column, JSON key, array and
//! inside scrubbed free text, run after run; another key gives other fakes.
//! Originals are normalized before hashing (e-mails trimmed and lowercased, phones
//! reduced to their national digits, IBANs uppercased without spaces, …), so two
//! spellings of one value share a fake while each keeps its own layout.
//!
//! Fakes are collision-resistant by construction where it is cheap (a fake e-mail
//! carries 30 bits of the HMAC); for unique columns the [`Faker`] also remembers a
//! 64-bit hash of every fake it produced and re-derives, with a counter, a fake that
//! was already handed to another original.
//!
//! Outputs depend on the key, the locale, this module's code and the data of the
//! `fake` crate (pinned by `Cargo.lock`).

mod array;
mod dates;
mod fake_values;
mod faker;
mod ids;
mod json;
mod numbers;
mod rule;
mod text_scrub;

use std::fmt;
use std::str::FromStr;

pub use faker::Faker;
/// Every rule name, in the order of the documentation.
pub(crate) use rule::RULE_NAMES;
pub use rule::Rule;
/// Recognises e-mails, phones, IBANs and card numbers inside a text.
pub(crate) use text_scrub::detect as detect_personal;

/// The generator every fake is drawn from, seeded with 32 bytes of HMAC output.
/// Portable and fixed: the same seed gives the same stream on every platform.
pub(crate) type FakeRng = rand_xoshiro::Xoshiro256PlusPlus;

/// The language and country of generated names, addresses and phone numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Locale {
    /// French (`fr_FR`): French names, `+33` phones, 5-digit postcodes.
    FrFr,
    /// English (`en`).
    En,
}

impl Locale {
    /// The policy spelling: `"fr_FR"` or `"en"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::FrFr => "fr_FR",
            Locale::En => "en",
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Locale {
    type Err = String;

    /// Accepts `fr_FR`, `fr`, `en` and `en_US` (case and `-`/`_` are not significant).
    fn from_str(s: &str) -> Result<Locale, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "fr_fr" | "fr" => Ok(Locale::FrFr),
            "en" | "en_us" => Ok(Locale::En),
            _ => Err(format!(
                "unknown locale \"{s}\"; valid locales: fr_FR, fr, en, en_US"
            )),
        }
    }
}

/// Why a value could not be anonymized.
///
/// Messages never quote the value itself: it is personal data, and errors end up in
/// logs. The caller adds the table, column and row.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The value does not have the shape the rule needs.
    #[error("value is not {expected} (rule \"{rule}\")")]
    Invalid {
        rule: &'static str,
        expected: &'static str,
    },
    /// A `json` rule met text that does not parse as JSON.
    #[error("value is not valid JSON ({0})")]
    NotJson(String),
    /// An `array` rule met text that is neither a PostgreSQL array literal nor a JSON array.
    #[error("value is not a PostgreSQL array literal nor a JSON array ({0})")]
    NotArray(String),
    /// A unique column asked for more distinct fakes than the rule can make.
    #[error(
        "rule \"{rule}\" found no unused fake after {attempts} attempts: the column is unique \
         but the rule makes too few distinct values; use another rule (e.g. \"hmac\")"
    )]
    UniqueExhausted { rule: &'static str, attempts: u32 },
    /// An internal pattern failed to build (a bug).
    #[error("internal error in anonymization rules: {0}")]
    Internal(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_parses_policy_spellings() {
        for (s, l) in [
            ("fr_FR", Locale::FrFr),
            ("fr", Locale::FrFr),
            ("fr-fr", Locale::FrFr),
            ("en", Locale::En),
            ("en_US", Locale::En),
        ] {
            assert_eq!(s.parse::<Locale>(), Ok(l), "{s}");
        }
        let err = "de_DE".parse::<Locale>().expect_err("must fail");
        assert!(err.contains("fr_FR") && err.contains("en"), "{err}");
        assert_eq!(Locale::FrFr.to_string(), "fr_FR");
    }

    #[test]
    fn one_email_one_fake_everywhere() {
        let orig = "camille.martin1@exemple.fr";
        let mut f = Faker::new(b"policy key", Locale::FrFr);
        let fake = f
            .apply(&Rule::Email, orig, true)
            .expect("rule applies")
            .expect("not null");
        // Another run (another faker with the same key) in other places.
        let mut g = Faker::new(b"policy key", Locale::FrFr);
        let note = g
            .apply(
                &Rule::Scrub,
                &format!("Litige\tvoir mail de {orig}."),
                false,
            )
            .expect("rule applies")
            .expect("not null");
        assert_eq!(note, format!("Litige\tvoir mail de {fake}."));
        let json = Rule::Json {
            paths: vec![("contact.email".into(), Rule::Email)],
            others: Box::new(Rule::Keep),
        };
        let doc = g
            .apply(
                &json,
                &format!(r#"{{"contact": {{"email": "{orig}"}}}}"#),
                false,
            )
            .expect("rule applies")
            .expect("not null");
        assert_eq!(doc, format!(r#"{{"contact":{{"email":"{fake}"}}}}"#));
        let array = Rule::Array {
            element: Box::new(Rule::Email),
        };
        let pg = g
            .apply(
                &array,
                "{camille.martin1@exemple.fr,\" Camille.Martin1@EXEMPLE.fr\",NULL}",
                false,
            )
            .expect("rule applies")
            .expect("not null");
        assert_eq!(pg, format!("{{{fake},{fake},NULL}}"));
        let sqlite = g
            .apply(&array, &format!(r#"["{orig}"]"#), false)
            .expect("rule applies")
            .expect("not null");
        assert_eq!(sqlite, format!(r#"["{fake}"]"#));
        let scrubbed_json = Rule::Json {
            paths: vec![],
            others: Box::new(Rule::Scrub),
        };
        let doc = g
            .apply(
                &scrubbed_json,
                &format!(r#"{{"note": "écrire à {orig}"}}"#),
                false,
            )
            .expect("rule applies")
            .expect("not null");
        assert_eq!(doc, format!(r#"{{"note":"écrire à {fake}"}}"#));
    }
}

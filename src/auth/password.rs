//! Passwords: the policy a new password must meet, and argon2id hashing to PHC strings.
//!
//! The policy follows NIST SP 800-63B in spirit (length first, a list of common
//! passwords) plus a character-class rule asked for by our operators. Hashes are
//! argon2id PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) carrying their own
//! parameters, so raising [`ARGON2_PARAMS`] later keeps old hashes verifiable and
//! [`needs_rehash`] tells the API when to re-hash at the next successful login.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::PasswordVerifier as _;
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};

use super::AuthError;

/// Fewest characters (Unicode scalar values, not bytes) a password may have.
pub const MIN_CHARS: usize = 12;

/// Most characters a password may have: long enough for any passphrase, short enough
/// that a request cannot make the server hash megabytes.
pub const MAX_CHARS: usize = 1024;

/// How many of the four character classes (lowercase, uppercase, digit, other) a
/// password must mix.
pub const MIN_CLASSES: usize = 3;

/// A user name shorter than this is not searched for inside passwords (too many
/// false positives: "al", "jo").
pub const MIN_USERNAME_CHARS: usize = 3;

/// argon2id memory cost in KiB: 19 MiB, the OWASP Password Storage Cheat Sheet's
/// minimum recommendation for argon2id (m=19456, t=2, p=1).
pub const ARGON2_M_COST_KIB: u32 = 19_456;
/// argon2id iterations (OWASP: 2 with 19 MiB).
pub const ARGON2_T_COST: u32 = 2;
/// argon2id lanes (OWASP: 1).
pub const ARGON2_P_COST: u32 = 1;

/// The parameters new hashes are made with; checked at compile time.
pub const ARGON2_PARAMS: Params =
    match Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None) {
        Ok(params) => params,
        Err(_) => panic!("invalid argon2 parameters"),
    };

/// Why a password was refused. The message says what is wrong and what to do, and
/// never repeats the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error(
        "password is too short ({chars} characters): use at least {MIN_CHARS}, for example several unrelated words"
    )]
    TooShort { chars: usize },
    #[error("password is too long ({chars} characters): use at most {MAX_CHARS}")]
    TooLong { chars: usize },
    #[error(
        "password mixes only {classes} of the 4 character classes (lowercase, uppercase, digits, symbols): use at least {MIN_CLASSES}"
    )]
    TooFewClasses { classes: usize },
    #[error("password contains the user name: choose one that has nothing to do with the account")]
    ContainsUsername,
    #[error(
        "password contains the user name reversed: choose one that has nothing to do with the account"
    )]
    ContainsReversedUsername,
    #[error(
        "password is a common password (possibly with digits or symbols around it), the first kind attackers try: choose something less predictable, such as several unrelated words"
    )]
    Common,
}

/// The embedded list of common passwords, lowercase, loaded once.
static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_lowercase)
        .collect()
});

/// Checks `password` for the account `username` against the policy; the first
/// problem found is returned (length, then common passwords, then the user name,
/// then character classes).
pub fn check_policy(password: &str, username: &str) -> Result<(), PasswordProblem> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordProblem::TooShort { chars });
    }
    if chars > MAX_CHARS {
        return Err(PasswordProblem::TooLong { chars });
    }

    let lower = password.to_lowercase();
    if is_common(&lower) {
        return Err(PasswordProblem::Common);
    }

    let name = username.trim().to_lowercase();
    if name.chars().count() >= MIN_USERNAME_CHARS {
        if lower.contains(&name) {
            return Err(PasswordProblem::ContainsUsername);
        }
        let reversed: String = name.chars().rev().collect();
        if lower.contains(&reversed) {
            return Err(PasswordProblem::ContainsReversedUsername);
        }
    }

    let classes = character_classes(password);
    if classes < MIN_CLASSES {
        return Err(PasswordProblem::TooFewClasses { classes });
    }
    Ok(())
}

/// Whether the lowercase `lower` is common as typed, or once the non-letters around
/// it are stripped ("password123!" → "password", "2024!soleil" → "soleil").
fn is_common(lower: &str) -> bool {
    let not_letter = |c: char| !c.is_alphabetic();
    let stripped_end = lower.trim_end_matches(not_letter);
    let stripped = stripped_end.trim_start_matches(not_letter);
    [lower, stripped_end, stripped]
        .iter()
        .any(|candidate| !candidate.is_empty() && COMMON.contains(*candidate))
}

/// How many of lowercase, uppercase, digit and other characters `password` has.
fn character_classes(password: &str) -> usize {
    let (mut lower, mut upper, mut digit, mut other) = (false, false, false, false);
    for c in password.chars() {
        if c.is_lowercase() {
            lower = true;
        } else if c.is_uppercase() {
            upper = true;
        } else if c.is_numeric() {
            digit = true;
        } else {
            other = true;
        }
    }
    [lower, upper, digit, other].iter().filter(|&&b| b).count()
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, ARGON2_PARAMS)
}

/// Hashes `password` with argon2id, [`ARGON2_PARAMS`] and a 16-byte salt from the
/// operating system's RNG; returns the PHC string to store.
pub fn hash(password: &str) -> Result<String, AuthError> {
    Ok(hasher().hash_password(password.as_bytes())?.to_string())
}

/// Whether `password` matches the PHC string `phc` (with the parameters recorded in
/// it). The comparison is constant time (the argon2 crate's `Output` equality); a
/// malformed `phc` never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of one [`verify`] and returns `false`: call it when the user name
/// is unknown, so that response time does not tell which user names exist.
pub fn verify_dummy(password: &str) -> bool {
    static DUMMY: LazyLock<Option<String>> = LazyLock::new(|| {
        hasher()
            .hash_password_with_salt(b"coffre dummy password", b"coffre-dummy-salt")
            .ok()
            .map(|hash| hash.to_string())
    });
    if let Some(dummy) = DUMMY.as_deref() {
        let _ = verify(password, dummy);
    }
    false
}

/// Whether `phc` was made with another algorithm or weaker parameters than
/// [`ARGON2_PARAMS`] (or does not parse), so that the API should store a fresh
/// [`hash`] after the next successful login.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if parsed.algorithm.as_str() != argon2::ARGON2ID_IDENT.as_str() {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(params) => {
            params.m_cost() < ARGON2_M_COST_KIB
                || params.t_cost() < ARGON2_T_COST
                || params.p_cost() < ARGON2_P_COST
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_list_loads_lowercase_and_large() {
        assert!(
            COMMON.len() >= 300,
            "only {} common passwords",
            COMMON.len()
        );
        for word in COMMON.iter() {
            assert_eq!(word, &word.to_lowercase());
            assert_eq!(word, word.trim());
        }
        for word in [
            "password",
            "motdepasse",
            "azerty",
            "qwerty",
            "soleil",
            "bonjour",
        ] {
            assert!(COMMON.contains(word), "{word} missing");
        }
    }

    #[test]
    fn accepts_a_good_password() {
        assert_eq!(check_policy("Correct-Horse-Battery-9", "alice"), Ok(()));
        assert_eq!(check_policy("vélo Rouge sous la pluie", "bob"), Ok(()));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 11 characters but 22 bytes: too short.
        assert_eq!(
            check_policy("éééééÉÉÉ1!x", "alice"),
            Err(PasswordProblem::TooShort { chars: 11 })
        );
        // 12 characters.
        assert_eq!(check_policy("éééééÉÉÉ1!xy", "alice"), Ok(()));
        assert_eq!(
            check_policy(&"Ab1!".repeat(300), "alice"),
            Err(PasswordProblem::TooLong { chars: 1200 })
        );
    }

    #[test]
    fn needs_three_classes() {
        assert_eq!(
            check_policy("onlylowercaseletters", "alice"),
            Err(PasswordProblem::TooFewClasses { classes: 1 })
        );
        assert_eq!(
            check_policy("lowerandUPPERletters", "alice"),
            Err(PasswordProblem::TooFewClasses { classes: 2 })
        );
        assert_eq!(check_policy("lowerUPPER2digits", "alice"), Ok(()));
        assert_eq!(check_policy("lower upper digits 7", "alice"), Ok(()));
    }

    #[test]
    fn refuses_the_user_name() {
        assert_eq!(
            check_policy("My-Alice-Password-7", "alice"),
            Err(PasswordProblem::ContainsUsername)
        );
        assert_eq!(
            check_policy("xx-ECILA-xx-Secure-7", "Alice"),
            Err(PasswordProblem::ContainsReversedUsername)
        );
        assert_eq!(
            check_policy("Sylvestrelaurent9!", "tnerualertsevlys"),
            Err(PasswordProblem::ContainsReversedUsername)
        );
        // Names shorter than 3 characters are not searched.
        assert_eq!(check_policy("Jovial-Weather-42", "jo"), Ok(()));
    }

    #[test]
    fn refuses_common_passwords_and_their_variants() {
        for password in [
            "Password123!",
            "MotDePasse2024!",
            "Azertyuiop12",
            "Qwertyuiop!!",
            "Soleil123456",
            "Bonjour2025!",
            "Summer2024!!",
            "Janvier2025!",
            "!!P@ssw0rd!!2024",
            "2024#Printemps",
        ] {
            assert_eq!(
                check_policy(password, "alice"),
                Err(PasswordProblem::Common),
                "{password}"
            );
        }
    }

    #[test]
    fn messages_never_echo_the_password() {
        let password = "Password123!";
        let problem = check_policy(password, "alice").expect_err("common");
        let text = problem.to_string();
        assert!(!text.contains(password));
        assert!(text.contains("common"), "{text}");
        let short = check_policy("Xy1!", "alice")
            .expect_err("short")
            .to_string();
        assert!(!short.contains("Xy1!"));
        assert!(short.contains("at least 12"), "{short}");
    }

    #[test]
    fn hash_and_verify() {
        let first = hash("Correct-Horse-Battery-9").expect("hash");
        let second = hash("Correct-Horse-Battery-9").expect("hash");
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "salts must differ");
        assert!(verify("Correct-Horse-Battery-9", &first));
        assert!(verify("Correct-Horse-Battery-9", &second));
        assert!(!verify("correct-horse-battery-9", &first));
        assert!(!verify("", &first));
        assert!(!verify("Correct-Horse-Battery-9", "not a phc string"));
        assert!(!needs_rehash(&first));
        assert!(!verify_dummy("Correct-Horse-Battery-9"));
    }

    #[test]
    fn weaker_hashes_need_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).expect("params"),
        )
        .hash_password_with_salt(b"pw", b"somesaltsomesalt")
        .expect("hash")
        .to_string();
        assert!(verify("pw", &weak), "old parameters still verify");
        assert!(needs_rehash(&weak));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, ARGON2_PARAMS)
            .hash_password_with_salt(b"pw", b"somesaltsomesalt")
            .expect("hash")
            .to_string();
        assert!(needs_rehash(&argon2i));
        assert!(needs_rehash("garbage"));
    }
}

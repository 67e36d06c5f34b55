//! Time-based one-time passwords (RFC 6238) as authenticator apps expect them:
//! HMAC-SHA-1, 6 digits, 30-second steps, a 160-bit secret shown as base32.
//!
//! [`verify`] accepts the current step and one step either side (clock skew) and
//! refuses any step at or before the last one used by the account, so a code seen
//! over a shoulder or in a log cannot be replayed (RFC 6238 §5.2). The API stores the
//! step [`verify`] returns as the account's new `last_used_step`.

use std::fmt;

use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::AuthError;

/// Digits in a code.
pub const DIGITS: u8 = 6;
/// Seconds in a step.
pub const STEP_SECONDS: u64 = 30;
/// Steps accepted on either side of the current one.
pub const SKEW_STEPS: u64 = 1;
/// Bytes of a new secret (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_BYTES: usize = 20;
/// The issuer shown by authenticator apps next to the account name.
pub const DEFAULT_ISSUER: &str = "coffre";

/// Why a code was refused, or why a secret or URI could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error(
        "the one-time code must be {DIGITS} digits: type the code shown by the authenticator app"
    )]
    Malformed,
    #[error(
        "the one-time code is wrong or expired: type the current code, and check the clocks of the phone and the server"
    )]
    Invalid,
    #[error(
        "the one-time code was already used: wait for the next code (at most {STEP_SECONDS} s)"
    )]
    Replayed,
    #[error(
        "the stored TOTP secret is not valid base32 of at least 128 bits: enrol the device again"
    )]
    BadSecret,
    #[error(
        "cannot build the provisioning URI: {0} (account names and issuers may not contain ':')"
    )]
    Uri(totp_rs::TotpError),
    #[error(transparent)]
    Random(#[from] AuthError),
}

/// A shared TOTP secret. Stored by the API as [`TotpSecret::to_base32`] (encrypt it
/// at rest if the state store allows: unlike a password hash, it is usable as is).
/// Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// The secret as unpadded RFC 4648 base32, as authenticator apps accept it.
    pub fn to_base32(&self) -> String {
        Secret::from(self.0.as_slice()).to_base32()
    }

    /// Parses a stored base32 secret (case-insensitive, padding optional); refuses
    /// secrets under 128 bits.
    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        let bytes = Secret::try_from_base32(text.trim().trim_end_matches('=').to_uppercase())
            .map_err(|_| TotpError::BadSecret)?
            .as_bytes()
            .to_vec();
        if bytes.len() < 16 {
            return Err(TotpError::BadSecret);
        }
        Ok(Self(bytes))
    }

    fn totp(&self, digits: u8, account: &str, issuer: &str) -> Result<Totp, totp_rs::TotpError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(digits)
            .with_step_duration(STEP_SECONDS)
            .with_skew(0)
            .with_secret(self.0.clone())
            .with_account_name(account)
            .with_issuer(Some(issuer))
            .build()
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// A new random 160-bit secret from the operating system's RNG.
pub fn new_secret() -> Result<TotpSecret, TotpError> {
    Ok(TotpSecret(super::random_bytes::<SECRET_BYTES>()?.to_vec()))
}

/// The `otpauth://totp/…` URI to show as a QR code at enrolment, labelled
/// `issuer:account` (use [`DEFAULT_ISSUER`] unless the appliance is named).
pub fn provisioning_uri(
    secret: &TotpSecret,
    account: &str,
    issuer: &str,
) -> Result<String, TotpError> {
    secret
        .totp(DIGITS, account, issuer)
        .and_then(|totp| totp.to_url())
        .map_err(TotpError::Uri)
}

/// The code for `secret` at `unix_seconds` (for tests and for a CLI that shows the
/// current code when enrolling a device).
pub fn code_at(secret: &TotpSecret, unix_seconds: u64) -> Result<String, TotpError> {
    let totp = secret
        .totp(DIGITS, "", DEFAULT_ISSUER)
        .map_err(|_| TotpError::BadSecret)?;
    Ok(totp.generate(unix_seconds).to_string())
}

/// Checks `code` (spaces allowed, as apps display "123 456") against `secret` at
/// `now_unix`, accepting the current step and [`SKEW_STEPS`] either side, and
/// refusing any step `<= last_used_step`. Returns the matched step, to store as the
/// account's new `last_used_step`. Every candidate step is computed, whatever
/// matched, and compared in constant time by the crate.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    now_unix: u64,
    last_used_step: Option<u64>,
) -> Result<u64, TotpError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Malformed);
    }
    let totp = secret
        .totp(DIGITS, "", DEFAULT_ISSUER)
        .map_err(|_| TotpError::BadSecret)?;
    let current = now_unix / STEP_SECONDS;
    let mut fresh = None;
    let mut replayed = false;
    for step in current.saturating_sub(SKEW_STEPS)..=current.saturating_add(SKEW_STEPS) {
        // With skew 0, `check` compares against exactly this step's code.
        if totp
            .check(&code, step.saturating_mul(STEP_SECONDS))
            .is_some()
        {
            if last_used_step.is_some_and(|last| step <= last) {
                replayed = true;
            } else {
                fresh = Some(step);
            }
        }
    }
    match (fresh, replayed) {
        (Some(step), _) => Ok(step),
        (None, true) => Err(TotpError::Replayed),
        (None, false) => Err(TotpError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows: (time, 8-digit code).
    const RFC6238_SHA1: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    fn rfc_secret() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc6238_vectors_8_digits() {
        let totp = rfc_secret().totp(8, "", DEFAULT_ISSUER).expect("totp");
        for (time, expected) in RFC6238_SHA1 {
            assert_eq!(totp.generate(time).to_string(), expected, "t={time}");
        }
    }

    #[test]
    fn rfc6238_vectors_6_digit_suffix() {
        let secret = rfc_secret();
        for (time, expected) in RFC6238_SHA1 {
            let six = &expected[2..];
            assert_eq!(code_at(&secret, time).expect("code"), six, "t={time}");
            assert_eq!(
                verify(&secret, six, time, None).expect("valid"),
                time / STEP_SECONDS
            );
        }
    }

    #[test]
    fn accepts_one_step_of_skew_and_no_more() {
        let secret = rfc_secret();
        // "287082" is the code of step 1 (t = 30..=59).
        assert_eq!(verify(&secret, "287082", 59, None).expect("now"), 1);
        assert_eq!(
            verify(&secret, "287 082", 89, None).expect("1 step late"),
            1
        );
        assert_eq!(verify(&secret, "287082", 0, None).expect("1 step early"), 1);
        assert!(matches!(
            verify(&secret, "287082", 90, None),
            Err(TotpError::Invalid)
        ));
        assert!(matches!(
            verify(&secret, "000000", 59, None),
            Err(TotpError::Invalid)
        ));
    }

    #[test]
    fn refuses_replay_and_older_steps() {
        let secret = rfc_secret();
        let step = verify(&secret, "287082", 59, None).expect("first use");
        assert!(matches!(
            verify(&secret, "287082", 59, Some(step)),
            Err(TotpError::Replayed)
        ));
        // The code of step 1, still in the window at step 2, after step 2 was used.
        assert!(matches!(
            verify(&secret, "287082", 60, Some(2)),
            Err(TotpError::Replayed)
        ));
        // A later step's code is fine.
        let next = code_at(&secret, 60).expect("code");
        assert_eq!(verify(&secret, &next, 60, Some(step)).expect("next"), 2);
    }

    #[test]
    fn refuses_malformed_codes() {
        let secret = rfc_secret();
        for code in ["", "12345", "1234567", "12345a", "+12345", "２８７０８２"] {
            assert!(
                matches!(verify(&secret, code, 59, None), Err(TotpError::Malformed)),
                "{code:?}"
            );
        }
    }

    #[test]
    fn new_secrets_are_160_bits_and_round_trip() {
        let a = new_secret().expect("secret");
        let b = new_secret().expect("secret");
        assert_eq!(a.0.len(), 20);
        assert_ne!(a, b);
        let text = a.to_base32();
        assert_eq!(text.len(), 32);
        assert_eq!(TotpSecret::from_base32(&text).expect("parse"), a);
        assert_eq!(
            TotpSecret::from_base32(&text.to_lowercase()).expect("parse"),
            a
        );
        assert!(matches!(
            TotpSecret::from_base32("GEZDGNBV"),
            Err(TotpError::BadSecret)
        ));
        assert!(matches!(
            TotpSecret::from_base32("not base32!"),
            Err(TotpError::BadSecret)
        ));
        assert_eq!(format!("{a:?}"), "TotpSecret(<redacted>)");
    }

    #[test]
    fn provisioning_uri_is_what_apps_expect() {
        let secret = rfc_secret();
        let uri = provisioning_uri(&secret, "alice@example.org", DEFAULT_ISSUER).expect("uri");
        assert!(
            uri.starts_with("otpauth://totp/coffre:alice%40example.org?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=coffre"), "{uri}");
        assert!(!uri.contains("digits="), "6 digits is the default: {uri}");
        assert!(!uri.contains("algorithm="), "SHA1 is the default: {uri}");
        assert!(matches!(
            provisioning_uri(&secret, "bad:name", DEFAULT_ISSUER),
            Err(TotpError::Uri(_))
        ));
    }
}

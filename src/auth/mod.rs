//! Authentication building blocks for the admin API: pure, I/O-free primitives.
//!
//! The API keeps users, sessions and tokens in its state store; this module only
//! decides and computes, so every rule can be unit-tested without a database or HTTP:
//!
//! - [`password`]: the password policy and argon2id hashing (PHC strings);
//! - [`totp`]: RFC 6238 one-time codes, with ±1 step of clock skew and replay refusal;
//! - [`token`]: API and session bearer tokens (`cfr_<kind>_<random>`) and the
//!   fingerprint that is stored instead of the token;
//! - [`lockout`]: backoff and lockout after consecutive failed logins;
//! - [`roles`]: roles, permissions and the one table that maps them.
//!
//! Secrets (passwords, TOTP secrets, tokens) never appear in an error message or a
//! `Debug` output of these modules.

pub mod lockout;
pub mod password;
pub mod roles;
pub mod token;
pub mod totp;

/// Failures of the operating system or of a crypto primitive (never of user input:
/// those have their own error types, such as [`password::PasswordProblem`]).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(#[from] getrandom::Error),
    #[error("password hashing failed: {0}")]
    Hash(#[from] argon2::password_hash::Error),
}

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

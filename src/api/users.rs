//! Making users: a name, a role, a temporary password that must be changed at the first
//! login (or one given by the CLI for the first admin), and for admin and operator a TOTP
//! secret, sealed in the state store and shown once as an `otpauth://` URI.

use chrono::Utc;
use serde::Serialize;

use super::seal;
use crate::auth::roles::Role;
use crate::auth::{password, totp};
use crate::integrity::IntegrityKey;
use crate::state::{NewUser, State};

/// A user just made, with what is shown once.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// Set when coffre chose the password: it must be changed at the first login.
    pub temporary_password: Option<String>,
    /// For admin and operator: the TOTP secret to enrol in an authenticator app.
    pub totp_uri: Option<String>,
    pub totp_secret: Option<String>,
}

/// Why a user could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {0:?} exists already")]
    Exists(String),
    #[error("password refused: {0}")]
    Policy(#[from] password::PasswordProblem),
    #[error("{0}")]
    Other(String),
}

/// A random password meeting the policy: 24 characters of four classes.
fn temporary_password() -> Result<String, UserError> {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"23456789";
    const OTHER: &[u8] = b"-_.+=!";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| UserError::Other(e.to_string()))?;
    let sets = [LOWER, UPPER, DIGITS, OTHER];
    Ok(bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let set = sets[i % 4];
            char::from(set[usize::from(*b) % set.len()])
        })
        .collect())
}

/// Makes a user (blocking: hashes the password). `password`: the one to set (checked
/// against the policy, no change required), or `None` for a temporary one.
pub fn create(
    state: &State,
    key: &IntegrityKey,
    name: &str,
    role: Role,
    recipient: Option<&str>,
    given: Option<&str>,
) -> Result<Created, UserError> {
    let other = |e: &dyn std::fmt::Display| UserError::Other(e.to_string());
    if state.user_by_name(name).map_err(|e| other(&e))?.is_some() {
        return Err(UserError::Exists(name.to_owned()));
    }
    let (secret_password, temporary) = match given {
        Some(p) => {
            password::check_policy(p, name)?;
            (p.to_owned(), None)
        }
        None => {
            let p = temporary_password()?;
            (p.clone(), Some(p))
        }
    };
    let phc = password::hash(&secret_password).map_err(|e| other(&e))?;
    let id = state
        .create_user(&NewUser {
            name,
            role: role.as_str(),
            password_phc: &phc,
            must_change: temporary.is_some(),
            recipient,
            now: Utc::now(),
        })
        .map_err(|e| other(&e))?;
    let (totp_uri, totp_secret) = if role.requires_totp() {
        let secret = totp::new_secret().map_err(|e| other(&e))?;
        let base32 = secret.to_base32();
        let sealed = seal::seal(key, base32.as_bytes())
            .ok_or_else(|| UserError::Other("cannot seal the TOTP secret".into()))?;
        state.set_totp(id, Some(&sealed)).map_err(|e| other(&e))?;
        let uri =
            totp::provisioning_uri(&secret, name, totp::DEFAULT_ISSUER).map_err(|e| other(&e))?;
        (Some(uri), Some(base32))
    } else {
        (None, None)
    };
    Ok(Created {
        id,
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        temporary_password: temporary,
        totp_uri,
        totp_secret,
    })
}

/// Gives a user (now admin or operator) a TOTP secret; returns its URI and base32 text,
/// shown once.
pub(crate) fn add_totp(
    api: &super::Api,
    id: i64,
    name: &str,
) -> Result<(String, String), super::ApiError> {
    let secret = totp::new_secret().map_err(super::ApiError::internal)?;
    let base32 = secret.to_base32();
    let sealed = seal::seal(&api.key, base32.as_bytes())
        .ok_or_else(|| super::ApiError::internal("cannot seal the TOTP secret"))?;
    api.state(|s| s.set_totp(id, Some(&sealed)))
        .map_err(super::ApiError::internal)?;
    let uri = totp::provisioning_uri(&secret, name, totp::DEFAULT_ISSUER)
        .map_err(super::ApiError::internal)?;
    Ok((uri, base32))
}

/// The TOTP secret of a user, opened.
pub fn totp_secret(key: &IntegrityKey, sealed: &str) -> Option<totp::TotpSecret> {
    let text = String::from_utf8(seal::open(key, sealed)?).ok()?;
    totp::TotpSecret::from_base32(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_passwords_meet_the_policy() {
        for _ in 0..50 {
            let p = temporary_password().expect("random");
            password::check_policy(&p, "alice").expect("policy");
        }
    }
}

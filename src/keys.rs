//! age keys: generating an identity, parsing recipients, loading identity files.
//!
//! Backups are encrypted to public X25519 recipients only; the private identity is
//! read only by restore, verify-with-decryption and drills.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;

/// Errors about keys, each naming the file or value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("recipient {value:?} is not an age X25519 recipient (age1…): {reason}")]
    BadRecipient { value: String, reason: String },
    #[error("identity file {path}: {reason}")]
    IdentityFile { path: PathBuf, reason: String },
    #[error(
        "no identity configured: set [encryption] identity_file to the age identity that matches one of the recipients"
    )]
    NoIdentity,
    #[error("{path} already exists: refusing to overwrite a key (choose another --out)")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a secret key (integrity, anonymization) could not be read.
#[derive(Debug)]
pub enum SecretKeyError {
    /// Neither the environment variable nor the file is set.
    Unset,
    /// `where_` (the variable or the file) does not hold a usable key.
    Bad { where_: String, reason: String },
}

/// Reads a secret key from the environment variable `env` if set, else from
/// `file`, then checks it with [`check_secret_key`]. `io_hint` follows the
/// error of a file that cannot be read.
pub fn read_secret_key(
    env: &str,
    file: Option<&Path>,
    min: usize,
    io_hint: &str,
) -> Result<Vec<u8>, SecretKeyError> {
    let (bytes, where_) = match std::env::var_os(env) {
        Some(v) => (v.into_encoded_bytes(), env.to_owned()),
        None => {
            let path = file.ok_or(SecretKeyError::Unset)?;
            let bytes = std::fs::read(path).map_err(|e| SecretKeyError::Bad {
                where_: path.display().to_string(),
                reason: format!("{e}{io_hint}"),
            })?;
            (bytes, path.display().to_string())
        }
    };
    check_secret_key(bytes, &where_, min)
}

/// A secret key's bytes with trailing newlines dropped, refused when shorter
/// than `min` bytes; `where_` names their origin in errors.
pub fn check_secret_key(
    mut key: Vec<u8>,
    where_: &str,
    min: usize,
) -> Result<Vec<u8>, SecretKeyError> {
    while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        key.pop();
    }
    if key.len() < min {
        return Err(SecretKeyError::Bad {
            where_: where_.to_owned(),
            reason: format!(
                "{} bytes is too short: use at least {min} random bytes",
                key.len()
            ),
        });
    }
    Ok(key)
}

/// Parses the configured recipients.
pub fn parse_recipients(values: &[String]) -> Result<Vec<age::x25519::Recipient>, KeyError> {
    values
        .iter()
        .map(|v| {
            age::x25519::Recipient::from_str(v.trim()).map_err(|reason| KeyError::BadRecipient {
                value: v.clone(),
                reason: reason.to_string(),
            })
        })
        .collect()
}

/// Identities able to decrypt backups.
pub type Identities = Vec<Box<dyn age::Identity + Send + Sync>>;

/// Loads an identity file in age's format (`AGE-SECRET-KEY-1…` lines, `#` comments).
pub fn load_identities(path: &Path) -> Result<Identities, KeyError> {
    let err = |reason: String| KeyError::IdentityFile {
        path: path.to_owned(),
        reason,
    };
    let file = age::IdentityFile::from_file(path.to_string_lossy().into_owned()).map_err(|e| {
        err(format!(
            "{e} (is it an age identity file made by `coffre keygen` or `age-keygen`?)"
        ))
    })?;
    let ids = file.into_identities().map_err(|e| err(e.to_string()))?;
    if ids.is_empty() {
        return Err(err("it holds no identity".into()));
    }
    Ok(ids)
}

/// A fresh identity and its recipient.
pub struct NewKey {
    pub identity: String,
    pub recipient: String,
}

/// Generates a new X25519 identity.
pub fn generate() -> NewKey {
    let id = age::x25519::Identity::generate();
    NewKey {
        identity: id.to_string().expose_secret().to_owned(),
        recipient: id.to_public().to_string(),
    }
}

/// Writes a new identity file (mode 0600, never overwriting) in age-keygen's layout.
pub fn write_identity_file(path: &Path, key: &NewKey) -> Result<(), KeyError> {
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    write_secret_file(
        path,
        &format!(
            "# created: {created}\n# public key: {}\n{}\n",
            key.recipient, key.identity
        ),
    )
}

/// Writes a new secret key file of 32 random bytes in hex (integrity and
/// anonymization keys), mode 0600, never overwriting.
pub fn write_random_key_file(path: &Path) -> Result<(), KeyError> {
    let bytes: [u8; 32] = rand::random();
    write_secret_file(path, &format!("{}\n", hex::encode(bytes)))
}

/// Creates `path` (and its folder) with mode 0600 and writes `text`; refuses to
/// overwrite an existing file.
fn write_secret_file(path: &Path, text: &str) -> Result<(), KeyError> {
    if path.exists() {
        return Err(KeyError::Exists {
            path: path.to_owned(),
        });
    }
    let write_err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(write_err)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_round_trips_through_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("id.txt");
        let key = generate();
        write_identity_file(&path, &key).expect("write");
        assert!(write_identity_file(&path, &key).is_err(), "no overwrite");
        let ids = load_identities(&path).expect("load");
        assert_eq!(ids.len(), 1);
        let recips = parse_recipients(std::slice::from_ref(&key.recipient)).expect("recipient");
        assert_eq!(recips.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_recipient_is_named() {
        let err = parse_recipients(&["age1nope".into()]).expect_err("must fail");
        assert!(err.to_string().contains("age1nope"));
    }
}

//! TOTP secrets at rest: unlike passwords they cannot be hashed (the server must compute
//! codes from them), so they are sealed with ChaCha20-Poly1305 under a key derived from the
//! integrity key (`coffre-totp-secret/1`). A stolen `state.db` alone yields no secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::integrity::IntegrityKey;

const DOMAIN: &str = "coffre-totp-secret/1";
const PREFIX: &str = "c20p1305:";

fn cipher(key: &IntegrityKey) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(&key.derive(DOMAIN)))
}

/// Seals `secret` (a random nonce per seal); `None` if the OS has no randomness.
pub fn seal(key: &IntegrityKey, secret: &[u8]) -> Option<String> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).ok()?;
    let sealed = cipher(key)
        .encrypt(Nonce::from_slice(&nonce), secret)
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Some(format!("{PREFIX}{}", STANDARD.encode(out)))
}

/// Opens a sealed secret; `None` when it was altered or sealed under another key.
pub fn open(key: &IntegrityKey, sealed: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(sealed.strip_prefix(PREFIX)?).ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, body) = bytes.split_at(12);
    cipher(key).decrypt(Nonce::from_slice(nonce), body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let a = IntegrityKey::from_bytes(vec![1; 32], "a").expect("key");
        let b = IntegrityKey::from_bytes(vec![2; 32], "b").expect("key");
        let sealed = seal(&a, b"12345678901234567890").expect("seal");
        assert!(!sealed.contains("1234567890"));
        assert_eq!(
            open(&a, &sealed).as_deref(),
            Some(&b"12345678901234567890"[..])
        );
        assert_eq!(open(&b, &sealed), None);
        assert_ne!(seal(&a, b"x"), seal(&a, b"x"), "a fresh nonce each time");
    }
}

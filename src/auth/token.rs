//! Bearer tokens for the API: long-lived API tokens and login sessions.
//!
//! A token reads `cfr_<kind letter>_<43 base64url characters>`: 32 bytes (256 bits)
//! from the operating system's RNG, twice the 128 bits required. The prefix makes a
//! leaked token recognisable by secret scanners and lets [`parse`] refuse malformed
//! input before any lookup.
//!
//! The token is shown once, at creation; the state store keeps only its
//! [`fingerprint`], the hex SHA-256 of the whole token. A fast hash is enough here
//! (unlike passwords): with 256 random bits there is nothing to guess, so a leaked
//! table of fingerprints gives an attacker no token, and lookups stay cheap.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::AuthError;

/// Every token starts with this.
pub const PREFIX: &str = "cfr_";
/// Random bytes in a token (256 bits).
pub const RANDOM_BYTES: usize = 32;
/// Length of the base64url (unpadded) encoding of [`RANDOM_BYTES`].
const RANDOM_CHARS: usize = 43;
/// Length of a whole token: `cfr_` + letter + `_` + random part.
pub const TOKEN_LEN: usize = PREFIX.len() + 2 + RANDOM_CHARS;
/// Characters of the random part kept in [`TokenId::hint`].
const HINT_CHARS: usize = 4;

/// What a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A long-lived API token, created and revoked by its owner (`cfr_a_…`).
    Api,
    /// A login session, created by a successful login (`cfr_s_…`).
    Session,
}

impl TokenKind {
    /// The letter after `cfr_`.
    pub const fn letter(self) -> char {
        match self {
            TokenKind::Api => 'a',
            TokenKind::Session => 's',
        }
    }

    /// `api` or `session`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
        }
    }

    fn from_letter(letter: u8) -> Option<Self> {
        match letter {
            b'a' => Some(TokenKind::Api),
            b's' => Some(TokenKind::Session),
            _ => None,
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the state store keeps about a token: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenId {
    pub kind: TokenKind,
    /// [`fingerprint`] of the token: the lookup key.
    pub fingerprint: String,
    /// The token's first characters (`cfr_a_AbCd…`), 24 of its 256 random bits, for
    /// listing tokens so that their owners can tell them apart.
    pub hint: String,
}

/// A new token of `kind`: the text to show once, and what to store.
pub fn generate(kind: TokenKind) -> Result<(String, TokenId), AuthError> {
    let random = super::random_bytes::<RANDOM_BYTES>()?;
    let token = format!(
        "{PREFIX}{}_{}",
        kind.letter(),
        URL_SAFE_NO_PAD.encode(random)
    );
    let id = TokenId {
        kind,
        fingerprint: fingerprint(&token),
        hint: hint(&token),
    };
    Ok((token, id))
}

/// `cfr_a_AbCd…`: the prefix and [`HINT_CHARS`] characters of the random part.
fn hint(token: &str) -> String {
    let visible: String = token.chars().take(PREFIX.len() + 2 + HINT_CHARS).collect();
    format!("{visible}…")
}

/// The hex SHA-256 of the whole token: what is stored and looked up.
pub fn fingerprint(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The kind of `text` if it is a well-formed token (prefix, known kind letter,
/// 43 base64url characters decoding to exactly 32 bytes), else `None`. Cheap and
/// done before any lookup, so garbage never reaches the state store.
pub fn parse(text: &str) -> Option<TokenKind> {
    let bytes = text.as_bytes();
    if bytes.len() != TOKEN_LEN || !text.starts_with(PREFIX) {
        return None;
    }
    let kind = TokenKind::from_letter(*bytes.get(PREFIX.len())?)?;
    if bytes.get(PREFIX.len() + 1) != Some(&b'_') {
        return None;
    }
    let random = text.get(PREFIX.len() + 2..)?;
    // The strict engine also refuses non-canonical trailing bits.
    match URL_SAFE_NO_PAD.decode(random) {
        Ok(decoded) if decoded.len() == RANDOM_BYTES => Some(kind),
        _ => None,
    }
}

/// Whether two fingerprints are equal, in time independent of where they differ.
pub fn fingerprints_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        for kind in [TokenKind::Api, TokenKind::Session] {
            let (token, id) = generate(kind).expect("token");
            let (other, other_id) = generate(kind).expect("token");
            assert_ne!(token, other);
            assert_ne!(id.fingerprint, other_id.fingerprint);
            assert_eq!(token.len(), TOKEN_LEN);
            assert!(
                token.starts_with(&format!("cfr_{}_", kind.letter())),
                "{token}"
            );
            assert_eq!(parse(&token), Some(kind));
            assert_eq!(id.kind, kind);
            assert_eq!(id.fingerprint, fingerprint(&token));
            assert!(token.starts_with(id.hint.trim_end_matches('…')));
            assert_eq!(id.hint.chars().count(), 11);
        }
    }

    #[test]
    fn fingerprint_is_hex_sha256_of_the_whole_token() {
        // sha256("abc")
        assert_eq!(
            fingerprint("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (token, id) = generate(TokenKind::Api).expect("token");
        assert_eq!(id.fingerprint.len(), 64);
        assert!(fingerprints_equal(&id.fingerprint, &fingerprint(&token)));
        assert!(!fingerprints_equal(
            &id.fingerprint,
            &fingerprint("cfr_a_x")
        ));
        assert!(!fingerprints_equal(&id.fingerprint, ""));
    }

    #[test]
    fn parse_refuses_malformed_tokens() {
        let good = format!("cfr_a_{}", "A".repeat(42) + "A");
        assert_eq!(parse(&good), Some(TokenKind::Api));
        let cases = [
            String::new(),
            "cfr_".into(),
            "cfr_a_".into(),
            format!("cfr_x_{}", "A".repeat(43)),  // unknown kind
            format!("cfr_A_{}", "A".repeat(43)),  // kind is lowercase
            format!("cfr_a-{}", "A".repeat(43)),  // separator
            format!("cfx_a_{}", "A".repeat(43)),  // prefix
            format!("CFR_a_{}", "A".repeat(43)),  // prefix is case-sensitive
            format!("cfr_a_{}", "A".repeat(42)),  // too short
            format!("cfr_a_{}", "A".repeat(44)),  // too long
            format!("cfr_a_{}=", "A".repeat(42)), // padding
            format!("cfr_a_{}+", "A".repeat(42)), // not url-safe
            format!("cfr_a_{}B", "A".repeat(42)), // non-canonical last char
            format!("cfr_a_{}é", "A".repeat(41)), // non-ASCII, same byte length
            format!(" cfr_a_{}", "A".repeat(42)), // whitespace
        ];
        for case in cases {
            assert_eq!(parse(&case), None, "{case:?}");
        }
    }
}

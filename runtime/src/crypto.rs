//! Crypto helpers: random tokens, SHA-256 token hashes, constant-time comparison and
//! AES-256-GCM for secrets at rest under the master key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A fresh 256-bit random token, base64url without padding (43 characters).
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// True when `s` looks like a token made by [`random_token`]; anything else is rejected
/// before it reaches a store.
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// SHA-256 of a token, base64url: the only form in which tokens are stored or cached.
pub fn hash_token(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality for secrets.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key must be 32 bytes, base64 encoded")]
    BadKey,
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("secret could not be decrypted with this master key")]
    Decrypt,
    #[error("secret could not be encrypted")]
    Encrypt,
}

/// The AES-256-GCM master key that seals secrets at rest. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct MasterKey(Key<Aes256Gcm>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

const SEALED_PREFIX: &str = "v1:";

impl MasterKey {
    /// Parse a base64 (standard or url-safe) 32-byte key.
    pub fn from_base64(s: &str) -> Result<Self, CryptoError> {
        let s = s.trim();
        let bytes = STANDARD
            .decode(s)
            .or_else(|_| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
            .map_err(|_| CryptoError::BadKey)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self(arr.into()))
    }

    /// A new random key, returned with its base64 form (for `dev` to keep in the data dir).
    pub fn generate() -> (Self, String) {
        let bytes: [u8; 32] = rand::random();
        (Self(bytes.into()), STANDARD.encode(bytes))
    }

    /// Seal a secret: `v1:` + base64(nonce || ciphertext).
    pub fn seal(&self, plaintext: &str) -> Result<String, CryptoError> {
        let cipher = Aes256Gcm::new(&self.0);
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        let ct = cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// Open a value made by [`MasterKey::seal`].
    pub fn open(&self, sealed: &str) -> Result<String, CryptoError> {
        let b64 = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(CryptoError::Malformed)?;
        let raw = STANDARD.decode(b64).map_err(|_| CryptoError::Malformed)?;
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ct) = raw.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
        let cipher = Aes256Gcm::new(&self.0);
        let pt = cipher
            .decrypt(&Nonce::from(nonce), ct)
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(pt).map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_hash_deterministically() {
        let t = random_token();
        assert!(is_token_shaped(&t));
        assert_ne!(t, random_token());
        assert_eq!(hash_token(&t), hash_token(&t));
        assert_ne!(hash_token(&t), t);
        assert!(!is_token_shaped("short"));
        assert!(!is_token_shaped(&format!("{}!", &t[..42])));
    }

    #[test]
    fn sealed_secrets_round_trip_and_resist_the_wrong_key() {
        let (k, b64) = MasterKey::generate();
        let sealed = k.seal("re_live_secret").unwrap();
        assert!(!sealed.contains("re_live_secret"));
        assert_eq!(k.open(&sealed).unwrap(), "re_live_secret");
        assert_ne!(
            sealed,
            k.seal("re_live_secret").unwrap(),
            "nonces must differ"
        );
        let again = MasterKey::from_base64(&b64).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "re_live_secret");
        let (other, _) = MasterKey::generate();
        assert!(matches!(other.open(&sealed), Err(CryptoError::Decrypt)));
        assert!(matches!(k.open("garbage"), Err(CryptoError::Malformed)));
        assert!(format!("{k:?}").contains("redacted"));
    }

    #[test]
    fn master_key_rejects_wrong_lengths() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64 at all!").is_err());
    }

    #[test]
    fn ct_eq_compares_content() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}

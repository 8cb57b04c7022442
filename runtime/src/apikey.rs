//! Organization API keys: `reauth_sk_` + 32 base62 characters of randomness (190 bits) + a
//! 6-character base62 CRC32 checksum of everything before it — GitHub's token format: the
//! prefix makes leaked keys greppable by secret scanners, the checksum rejects typos and junk
//! without a database hit. The first [`LOOKUP_LEN`] random characters are the key's public
//! lookup id (stored in clear, shown in listings); the whole key is stored only as an argon2id
//! hash.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

pub const PREFIX: &str = "reauth_sk_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
/// Random characters that form the public lookup id.
pub const LOOKUP_LEN: usize = 12;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 (IEEE 802.3, reflected, as zlib's), bitwise: keys are short.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// `n` in base62, left-padded with '0' to `width` characters.
fn base62(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn checksum(body: &str) -> String {
    base62(u64::from(crc32(body.as_bytes())), CHECKSUM_LEN)
}

/// A new key (shown once) and its public lookup id.
pub fn generate() -> (String, String) {
    let mut random = String::with_capacity(RANDOM_LEN);
    while random.len() < RANDOM_LEN {
        // Rejection sampling keeps every character uniform over the 62.
        let b: u8 = rand::random();
        if b < 248 {
            random.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }
    let body = format!("{PREFIX}{random}");
    let key = format!("{body}{}", checksum(&body));
    let lookup = random[..LOOKUP_LEN].to_string();
    (key, lookup)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("not a reauth API key (expected reauth_sk_…)")]
    Shape,
    #[error("the API key's checksum does not match (mistyped or truncated?)")]
    Checksum,
}

/// Check a presented key's shape and checksum (no I/O); returns its lookup id.
pub fn parse(key: &str) -> Result<&str, KeyFormatError> {
    let rest = key.strip_prefix(PREFIX).ok_or(KeyFormatError::Shape)?;
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyFormatError::Shape);
    }
    let (body, sum) = key.split_at(PREFIX.len() + RANDOM_LEN);
    if !crate::crypto::ct_eq(checksum(body).as_bytes(), sum.as_bytes()) {
        return Err(KeyFormatError::Checksum);
    }
    Ok(&rest[..LOOKUP_LEN])
}

/// The argon2id hash (PHC string, salted) to store.
pub fn hash(key: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(key.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing an API key: {e}"))
}

/// Whether `key` matches the stored hash (argon2's comparison is constant-time).
pub fn verify(key: &str, stored: &str) -> bool {
    PasswordHash::new(stored).ok().is_some_and(|h| {
        Argon2::default()
            .verify_password(key.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_generated_key_parses_and_a_typo_does_not() {
        let (key, lookup) = generate();
        assert_eq!(key.len(), PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN);
        assert_eq!(parse(&key), Ok(lookup.as_str()));
        // Change one random character: the checksum catches it.
        let mut typo: Vec<u8> = key.clone().into_bytes();
        let i = PREFIX.len() + 5;
        typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(parse(&typo), Err(KeyFormatError::Checksum));
        assert_eq!(parse("reauth_sk_short"), Err(KeyFormatError::Shape));
        assert_eq!(
            parse(&key.replace("reauth_sk_", "ghp_")),
            Err(KeyFormatError::Shape)
        );
        assert_eq!(parse(&format!("{key}x")), Err(KeyFormatError::Shape));
    }

    #[test]
    fn the_hash_verifies_the_key_only() {
        let (key, _) = generate();
        let (other, _) = generate();
        let h = hash(&key).unwrap();
        assert!(!h.contains(&key));
        assert!(verify(&key, &h));
        assert!(!verify(&other, &h));
        assert!(!verify(&key, "not a hash"));
    }
}

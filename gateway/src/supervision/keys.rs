//! How the windows hold identifiers. The person's key is held as its 32
//! raw bytes, not as 64 hex characters: the signals show the key of the
//! message at hand, which comes whole with its fact. The identifiers the
//! rules only compare — msgid, invono, a bill's digest — are held as 64-bit
//! [`Digest`]s, keyed per process (SipHash under random keys): two
//! different identifiers compare equal with a probability of 2⁻⁶⁴, and no
//! sender can choose identifiers that do.

use sha2::{Digest as _, Sha256};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU64;

/// A person's key as 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonKey(pub [u8; 32]);

impl PersonKey {
    /// The key of `text`: the bytes of a lower-case hex HMAC (what
    /// [`crate::supervision::facts::person_key`] makes); any other text
    /// (never made, but a ledger row could hold one) by its SHA-256, which
    /// keeps two different texts apart as the text itself would.
    pub fn of(text: &str) -> PersonKey {
        let mut bytes = [0u8; 32];
        let hex = text.as_bytes();
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let decoded = hex.len() == 64
            && bytes.iter_mut().zip(hex.chunks_exact(2)).all(|(b, pair)| {
                match (nibble(pair[0]), nibble(pair[1])) {
                    (Some(high), Some(low)) => {
                        *b = high << 4 | low;
                        true
                    }
                    _ => false,
                }
            });
        if decoded {
            return PersonKey(bytes);
        }
        let mut hash = Sha256::new();
        hash.update(b"not an hmac:");
        hash.update(hex);
        PersonKey(hash.finalize().into())
    }

    /// A hash for a table: the key is an HMAC under a secret key, its bytes
    /// are already uniformly spread.
    pub fn hash(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(first)
    }
}

/// An identifier compared only for equality, as 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(NonZeroU64);

impl Digest {
    /// A hash for a table, of this digest and a code's number.
    pub fn with(self, number: u64) -> u64 {
        self.0.get() ^ number.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// Makes digests and hashes under this process's random keys.
#[derive(Debug, Default)]
pub struct Digester(RandomState);

impl Digester {
    /// The digest of `id`.
    pub fn of(&self, id: &str) -> Digest {
        let hash = self.0.hash_one(id);
        Digest(NonZeroU64::new(hash).unwrap_or(NonZeroU64::MIN))
    }

    /// A hash of `value` for a table.
    pub fn hash(&self, value: impl Hash) -> u64 {
        self.0.hash_one(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hex_key_is_its_bytes_and_other_text_stays_apart() {
        let hex = crate::supervision::facts::hmac_hex(b"k", b"id:1");
        let key = PersonKey::of(&hex);
        assert_eq!(contracts::hex::encode(&key.0), hex);
        assert_ne!(PersonKey::of(&hex.to_uppercase()), key);
        assert_ne!(PersonKey::of("x"), PersonKey::of("y"));
        assert_eq!(PersonKey::of("x"), PersonKey::of("x"));
    }

    #[test]
    fn digests_compare_as_the_ids() {
        let digests = Digester::default();
        assert_eq!(digests.of("M1"), digests.of("M1"));
        assert_ne!(digests.of("M1"), digests.of("M2"));
    }
}

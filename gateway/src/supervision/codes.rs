//! Codes interned: the institution, region and drug codes the windows hold
//! are a [`Code`] (four bytes) each instead of a `String` per settlement.
//! Every code is counted: [`Codes::intern`] takes a hold on it,
//! [`Codes::release`] gives it back, and a code nothing holds any more is
//! forgotten. So the table follows the distinct codes in the windows
//! (thousands of institutions, tens of thousands of drugs), not the traffic,
//! whatever codes senders make up.

use crate::supervision::slab::{Slab, NONE};
use std::collections::HashMap;

/// A code as the windows hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(u32);

impl Code {
    /// As four bytes (for a settlement's drugs).
    pub fn to_bytes(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }

    /// From four bytes.
    pub fn from_bytes(bytes: [u8; 4]) -> Code {
        Code(u32::from_le_bytes(bytes))
    }

    /// A number for hashing.
    pub fn number(self) -> u64 {
        u64::from(self.0)
    }
}

/// A code's text and how many holds it has.
#[derive(Debug)]
struct Entry {
    text: Box<str>,
    holds: u32,
}

/// The codes held.
#[derive(Debug, Default)]
pub struct Codes {
    ids: HashMap<Box<str>, u32>,
    entries: Slab<Entry>,
}

impl Codes {
    /// The code of `text`, with one more hold on it. (Beyond four thousand
    /// million distinct codes held — more than memory holds — a new code
    /// reads as empty.)
    pub fn intern(&mut self, text: &str) -> Code {
        if let Some(&id) = self.ids.get(text) {
            if let Some(entry) = self.entries.get_mut(id) {
                entry.holds = entry.holds.saturating_add(1);
                return Code(id);
            }
        }
        let entry = Entry {
            text: text.into(),
            holds: 1,
        };
        let Some(id) = self.entries.insert(entry) else {
            return Code(NONE);
        };
        self.ids.insert(text.into(), id);
        Code(id)
    }

    /// Gives back a hold on `code`; forgets it when none is left.
    pub fn release(&mut self, code: Code) {
        let Some(entry) = self.entries.get_mut(code.0) else {
            return;
        };
        entry.holds = entry.holds.saturating_sub(1);
        if entry.holds == 0 {
            if let Some(entry) = self.entries.remove(code.0) {
                self.ids.remove(&entry.text);
            }
        }
    }

    /// The code of `text` if it is held (no hold taken).
    pub fn find(&self, text: &str) -> Option<Code> {
        self.ids.get(text).copied().map(Code)
    }

    /// The text of `code` (empty for a code not held).
    pub fn text(&self, code: Code) -> &str {
        self.entries.get(code.0).map_or("", |e| &e.text)
    }

    /// How many distinct codes are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes allocated (approximately: the map's table and the texts).
    pub fn bytes(&self) -> usize {
        let texts: usize = self.ids.keys().map(|t| 2 * t.len()).sum();
        self.ids.capacity() * (std::mem::size_of::<(Box<str>, u32)>() + 1)
            + self.entries.bytes()
            + texts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_forgotten_with_its_last_hold() {
        let mut codes = Codes::default();
        let a = codes.intern("H11010500123");
        let b = codes.intern("H11010500123");
        let c = codes.intern("110105");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(codes.text(a), "H11010500123");
        codes.release(a);
        assert_eq!(codes.find("H11010500123"), Some(a));
        codes.release(a);
        assert_eq!(codes.find("H11010500123"), None);
        assert_eq!(codes.text(a), "");
        assert_eq!(codes.len(), 1);
        assert_eq!(codes.text(c), "110105");
    }
}

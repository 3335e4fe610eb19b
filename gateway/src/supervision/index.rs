//! An index of held records by one of their keys: a hash table whose
//! entries are eight bytes, the record's `u32` id and 32 bits of its key's
//! hash (nine bytes with the table's control byte). Equality is decided on
//! the record itself, by the closure the caller passes. The hash kept in
//! the entry lets the table grow without reading a record (growing at ten
//! million entries is one pass over the table, not ten million cache misses
//! in the records: seconds, with the windows' lock held) and passes over
//! most records that only share the table's 7-bit tag. One entry per key:
//! putting a record replaces the one of the same key.

use hashbrown::hash_table::Entry as Slot;
use hashbrown::HashTable;

/// A record's id and 32 bits of its key's hash.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u32,
    hash: u32,
}

/// 32 bits of a key's hash.
fn fold(hash: u64) -> u32 {
    ((hash >> 32) ^ hash) as u32
}

/// The table's hash of 32 bits: the table takes its bucket from the low
/// bits and its tag from the top ones.
fn spread(hash: u32) -> u64 {
    u64::from(hash) << 32 | u64::from(hash)
}

/// Record ids by key.
#[derive(Debug, Default)]
pub struct Index {
    table: HashTable<Entry>,
}

impl Index {
    /// The id of the record whose key hashes to `hash` and `is` the one sought.
    pub fn get(&self, hash: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let hash = fold(hash);
        self.table
            .find(spread(hash), |e| e.hash == hash && is(e.id))
            .map(|e| e.id)
    }

    /// Puts `id` under its key (`hash`; `is` tells a record of the same
    /// key), in place of the record there was.
    pub fn put(&mut self, id: u32, hash: u64, is: impl Fn(u32) -> bool) {
        let hash = fold(hash);
        match self.table.entry(
            spread(hash),
            |e| e.hash == hash && is(e.id),
            |e| spread(e.hash),
        ) {
            Slot::Occupied(mut slot) => slot.get_mut().id = id,
            Slot::Vacant(slot) => {
                slot.insert(Entry { id, hash });
            }
        }
    }

    /// Removes the entry naming `id`, if any (`hash`: of its key); whether there was one.
    pub fn remove(&mut self, id: u32, hash: u64) -> bool {
        let hash = fold(hash);
        match self.table.find_entry(spread(hash), |e| e.id == id) {
            Ok(slot) => {
                slot.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes allocated.
    pub fn bytes(&self) -> usize {
        self.table.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_key_the_last_put() {
        let keys = ["a", "b", "a", "c"];
        let hash = |key: &str| u64::from(key.as_bytes()[0]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut index = Index::default();
        for (id, key) in keys.iter().enumerate() {
            let id = id as u32;
            index.put(id, hash(key), |other| keys[other as usize] == *key);
        }
        assert_eq!(index.len(), 3);
        assert_eq!(index.get(hash("a"), |id| keys[id as usize] == "a"), Some(2));
        assert!(!index.remove(0, hash("a")));
        assert!(index.remove(2, hash("a")));
        assert_eq!(index.get(hash("a"), |id| keys[id as usize] == "a"), None);
        assert_eq!(index.get(hash("b"), |id| keys[id as usize] == "b"), Some(1));
    }
}

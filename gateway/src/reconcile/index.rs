//! The gateway's rows as the reconciliation keeps them: one compact [`Slot`]
//! per row in file order, and a table from a row's key to its slot.
//!
//! Ten million rows do not fit in any cache, so what costs is touching
//! memory at random: one cache (and TLB) miss per row inserted into a hash
//! map and one per row looked up, twenty million on a ten-million day. Both
//! are avoided where the data allows:
//!
//! - the table is built only once every gateway row is read, from the keys
//!   first spread into 256 partitions by their top byte (in one pass, into
//!   one list of 8 bytes a row); each partition fills its own contiguous part
//!   of an open-addressing table (half a megabyte on a ten-million day), which
//!   stays in cache while it is filled;
//! - a region's statement is written in the same order as the gateway's
//!   journal (both by settlement time), so the slot a statement row matches
//!   is nearly always a few slots after the one the previous row matched: a
//!   [`Cursor`] looks there first and falls back to the table only when the
//!   order differs. The result never depends on the order, only the speed.

/// Flags kept in a slot: matched by a region's row.
pub(super) const MATCHED: u8 = 1;
/// A region's row with this key was seen (a second one is a duplicate).
pub(super) const REGION_SEEN: u8 = 2;
/// A later gateway row with the key of an earlier one: reported as a
/// duplicate, never matched.
pub(super) const DUPLICATE: u8 = 4;

/// What is kept of one gateway row.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    /// The row's key (see `key`).
    pub key: u64,
    /// Digest of the compared fields the gateway has.
    pub digest: u64,
    /// Where the row starts in the gateway's source.
    pub offset: u64,
    /// The key's independent check.
    pub check: u32,
    /// Which compared fields the gateway has (bit per field of `compared`).
    pub mask: u16,
    pub flags: u8,
    /// The configured region of the insured.
    pub region: u8,
}

/// Slots are kept in pages of this many, so that growing never copies them
/// nor holds two copies at once.
const PAGE_BITS: u32 = 16;
const PAGE: usize = 1 << PAGE_BITS;

/// Partitions of the keys while the table is built (by the key's top byte).
const PARTS: usize = 256;

/// How many slots after the cursor are looked at before the table.
const LOOKAHEAD: usize = 32;

/// The gateway's rows, in file order, and (once [`Index::seal`]ed) the
/// table from key to slot.
#[derive(Default)]
pub(super) struct Index {
    pages: Vec<Vec<Slot>>,
    len: usize,
    /// Before sealing: how many keys fall in each partition.
    counts: Vec<usize>,
    /// After sealing: open addressing, linear probing, the bucket taken from
    /// the key's top bits; an entry is the slot's number plus one (0: empty)
    /// under the key's top 32 bits.
    table: Vec<u64>,
    shift: u32,
}

/// The index has room for this many rows (slot numbers plus one are 32-bit).
pub(super) const MAX_ROWS: usize = u32::MAX as usize - 1;

impl Index {
    /// Appends a row's slot; `false` when the index is full ([`MAX_ROWS`]).
    pub fn push(&mut self, slot: Slot) -> bool {
        if self.len >= MAX_ROWS {
            return false;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; PARTS];
        }
        if self.len.is_multiple_of(PAGE) {
            self.pages.push(Vec::with_capacity(PAGE));
        }
        self.counts[(slot.key >> 56) as usize] += 1;
        if let Some(page) = self.pages.last_mut() {
            page.push(slot);
        }
        self.len += 1;
        true
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The `i`th row's slot.
    pub fn get(&self, i: usize) -> &Slot {
        &self.pages[i >> PAGE_BITS][i & (PAGE - 1)]
    }

    /// The `i`th row's slot, to change its flags.
    pub fn get_mut(&mut self, i: usize) -> &mut Slot {
        &mut self.pages[i >> PAGE_BITS][i & (PAGE - 1)]
    }

    /// Every slot, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Slot> + '_ {
        self.pages.iter().flatten()
    }

    /// Builds the table once every row is pushed: the slots' keys are
    /// spread by partition (in file order within each) into one list sized
    /// exactly, then inserted partition by partition. A row whose key an
    /// earlier row has is flagged [`DUPLICATE`] and left out; their numbers
    /// are returned, in file order.
    pub fn seal(&mut self) -> Vec<usize> {
        // At most 5/8 full; at least four buckets per partition.
        let wanted = (self.len + self.len / 2 + self.len / 8).max(PARTS * 4);
        // The bucket is taken from the key's top 32 bits at most.
        let bits = wanted.next_power_of_two().trailing_zeros().min(32);
        self.shift = 64 - bits;
        let mut next = Vec::with_capacity(PARTS);
        let mut sum = 0;
        for count in std::mem::take(&mut self.counts) {
            next.push(sum);
            sum += count;
        }
        // (key's top 32 bits, slot number), the slot number below.
        let mut spread = vec![0u64; self.len];
        for (number, slot) in self.iter().enumerate() {
            let part = (slot.key >> 56) as usize;
            spread[next[part]] = (slot.key & !0xffff_ffff) | number as u64;
            next[part] += 1;
        }
        self.table = vec![0u64; 1usize << bits];
        let mut duplicates = Vec::new();
        for entry in spread {
            let number = (entry & 0xffff_ffff) as usize;
            if !self.insert(entry) {
                self.get_mut(number).flags |= DUPLICATE;
                duplicates.push(number);
            }
        }
        duplicates.sort_unstable();
        duplicates
    }

    /// Inserts a key spread as (its top 32 bits, slot number), without
    /// reading the slot unless another key has the same top 32 bits; `false`
    /// (and nothing inserted) when an earlier slot has the same key.
    fn insert(&mut self, spread: u64) -> bool {
        let mask = self.table.len() - 1;
        let mut at = (spread >> self.shift) as usize;
        loop {
            let entry = self.table[at];
            if entry == 0 {
                self.table[at] = spread + 1;
                return true;
            }
            let other = (entry & 0xffff_ffff) as usize - 1;
            if entry >> 32 == spread >> 32
                && self.get(other).key == self.get((spread & 0xffff_ffff) as usize).key
            {
                return false;
            }
            at = (at + 1) & mask;
        }
    }

    /// The number of the (first) row with `key`, from the table.
    pub fn find(&self, key: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        let mask = self.table.len() - 1;
        let mut at = (key >> self.shift) as usize;
        loop {
            let entry = self.table[at];
            if entry == 0 {
                return None;
            }
            let number = (entry & 0xffff_ffff) as usize - 1;
            if entry >> 32 == key >> 32 && self.get(number).key == key {
                return Some(number);
            }
            at = (at + 1) & mask;
        }
    }
}

/// Where the last row of one statement matched: the next is looked for
/// just after it first.
#[derive(Default)]
pub(super) struct Cursor(usize);

impl Cursor {
    /// The number of the gateway's (first) row with `key` and `check`.
    pub fn find(&mut self, index: &Index, key: u64, check: u32) -> Option<usize> {
        let end = (self.0 + LOOKAHEAD).min(index.len());
        let near = (self.0..end).find(|&i| {
            let slot = index.get(i);
            slot.key == key && slot.flags & DUPLICATE == 0
        });
        let found = near.or_else(|| index.find(key))?;
        self.0 = found + 1;
        (index.get(found).check == check).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn slot(key: u64) -> Slot {
        Slot {
            key,
            digest: 0,
            offset: 0,
            check: key as u32 ^ 1,
            mask: 0,
            flags: 0,
            region: 0,
        }
    }

    /// Keys that share their top 32 bits (the table's bucket and tag) are
    /// still told apart; duplicates keep the first row.
    #[test]
    fn colliding_buckets_and_tags_and_duplicates() {
        let mut index = Index::default();
        let keys: Vec<u64> = (0..200_000u64)
            .map(|n| n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .chain([
                0xAB00_0000_1234_5678,
                0xAB00_0000_8765_4321,
                0xAB00_0000_1234_5679,
            ])
            .chain([
                7u64.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                0xAB00_0000_8765_4321,
            ])
            .collect();
        for &k in &keys {
            assert!(index.push(slot(k)));
        }
        let duplicates = index.seal();
        let n = keys.len();
        assert_eq!(duplicates, vec![n - 2, n - 1]);
        for (i, &k) in keys.iter().enumerate().take(n - 2) {
            assert_eq!(index.find(k), Some(i));
        }
        assert_eq!(index.find(0xAB00_0000_0000_0000), None);
        // The cursor: in order, out of order, a wrong check, a duplicate's key.
        let mut cursor = Cursor::default();
        assert_eq!(cursor.find(&index, keys[0], keys[0] as u32 ^ 1), Some(0));
        assert_eq!(cursor.find(&index, keys[5], keys[5] as u32 ^ 1), Some(5));
        assert_eq!(
            cursor.find(&index, keys[150_000], keys[150_000] as u32 ^ 1),
            Some(150_000)
        );
        assert_eq!(cursor.find(&index, keys[6], 0), None);
        assert_eq!(cursor.find(&index, keys[7], keys[7] as u32 ^ 1), Some(7));
        let mut cursor = Cursor(n - 10);
        assert_eq!(
            cursor.find(&index, keys[n - 1], keys[n - 1] as u32 ^ 1),
            Some(n - 4)
        );
    }
}

//! A slab: values kept in one vector and named by a `u32` id, their slots
//! reused through a free list. Supervision holds millions of settlements;
//! an id lets a person's chain or an index name one in four bytes, instead
//! of a pointer, a clone or a key. Memory follows the most values held at
//! once, not how many were ever inserted.

/// The id that names nothing (the end of a chain).
pub const NONE: u32 = u32::MAX;

/// Values named by `u32` ids.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Keeps `value`; its id, or `None` when four thousand million are held.
    pub fn insert(&mut self, value: T) -> Option<u32> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|id| *id != NONE)?;
                self.slots.push(None);
                id
            }
        };
        if let Some(slot) = self.slots.get_mut(id as usize) {
            *slot = Some(value);
        }
        self.len += 1;
        Some(id)
    }

    /// The value named `id`.
    pub fn get(&self, id: u32) -> Option<&T> {
        self.slots.get(id as usize)?.as_ref()
    }

    /// The value named `id`, to change.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.slots.get_mut(id as usize)?.as_mut()
    }

    /// Takes the value named `id` out; its slot is reused.
    pub fn remove(&mut self, id: u32) -> Option<T> {
        let value = self.slots.get_mut(id as usize)?.take()?;
        self.free.push(id);
        self.len -= 1;
        Some(value)
    }

    /// How many values are held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids that may name a value (some of them free): `0..bound()`.
    pub fn bound(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(NONE)
    }

    /// Bytes of the slots ever used and of the free list (the vector's
    /// spare capacity is allocated but never touched).
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Option<T>>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!((a, b), (Some(0), Some(1)));
        assert_eq!(slab.remove(0), Some("a"));
        assert_eq!(slab.remove(0), None);
        assert_eq!(slab.get(0), None);
        assert_eq!(slab.insert("c"), Some(0));
        assert_eq!(slab.get(0), Some(&"c"));
        assert_eq!((slab.len(), slab.bound()), (2, 2));
    }
}

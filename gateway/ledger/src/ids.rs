//! Ids of journalled refusals: unique without asking the database, also
//! when several gateway replicas share one PostgreSQL ledger.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Hands out `r<instance>-<serial>`: a random 64-bit instance number drawn
/// when the ledger is opened, and a serial counted from there.
pub(crate) struct RefusalIds {
    instance: u64,
    serial: AtomicU64,
}

impl RefusalIds {
    pub(crate) fn new() -> RefusalIds {
        // RandomState is seeded from the operating system's randomness; mixing
        // in the process id and the clock separates processes even if it were not.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_i64(crate::sql::now_ms());
        if let Ok(elapsed) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u32(elapsed.subsec_nanos());
        }
        RefusalIds {
            instance: hasher.finish(),
            serial: AtomicU64::new(0),
        }
    }

    /// The next id.
    pub(crate) fn next(&self) -> String {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        format!("r{:016x}-{serial:010}", self.instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_within_and_across_instances() {
        let (a, b) = (RefusalIds::new(), RefusalIds::new());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(a.next()));
            assert!(seen.insert(b.next()));
        }
        assert!(a.next().len() <= crate::check::MAX_TEXT);
    }
}

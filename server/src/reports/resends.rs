//! Recently stored idempotency keys, so that a rider's resend is answered from memory instead
//! of a conflicting insert plus a lookup. An entry cannot go stale: a report's key, payload
//! hash and 201 body are written once and never change, and reports are never deleted (OGC
//! serves them read-only, the workflow updates only their status). It only ages out; a key not
//! held here still gets the same answer from the database (`intake::replay`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use uuid::Uuid;

/// Bytes of stored answers held (a 201 body is 1–3 KB, so tens of thousands of recent keys).
const CAPACITY_BYTES: u64 = 64 * 1024 * 1024;
/// An offline queue is flushed within hours; a day covers it.
const TIME_TO_LIVE: Duration = Duration::from_secs(24 * 3600);

/// What a key stored.
#[derive(Debug)]
pub struct KeyAnswer {
    pub id: i64,
    pub hash: Vec<u8>,
    pub body: String,
}

#[derive(Debug)]
pub struct Resends {
    keys: moka::sync::Cache<Uuid, Arc<KeyAnswer>>,
    hits: AtomicU64,
}

impl Default for Resends {
    fn default() -> Self {
        Self::with_capacity(CAPACITY_BYTES)
    }
}

impl Resends {
    /// Hold up to `bytes` of answers. Least recently used goes first: moka's default admission
    /// (`TinyLFU`) would turn away each new key once the cache is full — exactly the keys whose
    /// resends are coming — in favour of old ones seen once (bench/reports.sh showed it: an
    /// eighth of the resends missed after ~30,000 reports).
    pub fn with_capacity(bytes: u64) -> Self {
        let keys = moka::sync::Cache::builder()
            .max_capacity(bytes)
            .weigher(|_, s: &Arc<KeyAnswer>| u32::try_from(s.body.len() + s.hash.len() + 64).unwrap_or(u32::MAX))
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_live(TIME_TO_LIVE)
            .build();
        Self { keys, hits: AtomicU64::new(0) }
    }

    pub fn get(&self, key: Uuid) -> Option<Arc<KeyAnswer>> {
        let found = self.keys.get(&key);
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    pub fn remember(&self, key: Uuid, stored: KeyAnswer) {
        self.keys.insert(key, Arc::new(stored));
    }

    /// Resends answered from memory so far (for `/metrics`).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_still_holds_the_newest_keys() {
        let resends = Resends::with_capacity(64 * 1024);
        let keys: Vec<Uuid> = (0..2_000).map(|_| Uuid::new_v4()).collect();
        for (i, key) in keys.iter().enumerate() {
            resends.remember(*key, KeyAnswer { id: i as i64, hash: vec![0; 32], body: "x".repeat(1_000) });
            resends.keys.run_pending_tasks();
            assert!(resends.get(*key).is_some(), "key {i}, just stored, is held");
        }
        resends.keys.run_pending_tasks();
        assert!(resends.get(keys[0]).is_none(), "the oldest made room");
        assert!(resends.keys.weighted_size() <= 64 * 1024);
    }
}

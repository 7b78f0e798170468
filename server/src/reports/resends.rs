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
pub struct Stored {
    pub id: i64,
    pub hash: Vec<u8>,
    pub body: String,
}

#[derive(Debug)]
pub struct Resends {
    keys: moka::sync::Cache<Uuid, Arc<Stored>>,
    hits: AtomicU64,
}

impl Default for Resends {
    fn default() -> Self {
        let keys = moka::sync::Cache::builder()
            .max_capacity(CAPACITY_BYTES)
            .weigher(|_, s: &Arc<Stored>| u32::try_from(s.body.len() + s.hash.len() + 64).unwrap_or(u32::MAX))
            .time_to_live(TIME_TO_LIVE)
            .build();
        Self { keys, hits: AtomicU64::new(0) }
    }
}

impl Resends {
    pub fn get(&self, key: Uuid) -> Option<Arc<Stored>> {
        let found = self.keys.get(&key);
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    pub fn remember(&self, key: Uuid, stored: Stored) {
        self.keys.insert(key, Arc::new(stored));
    }

    /// Resends answered from memory so far (for `/metrics`).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

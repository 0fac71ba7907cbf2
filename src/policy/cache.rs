//! The decision cache of one engine generation: a sharded hash table keyed by
//! (identity, database, db user, db name, command, namespaces). A reload builds a new
//! generation with an empty cache, so stale decisions are never served.
//!
//! A hit takes one shard read lock, compares the stored request field by field (the hash only
//! picks the slot) and clones an `Arc`: no allocation.

use std::sync::{Arc, RwLock};

use hashbrown::HashTable;

use super::model::{Decision, Request};

const SHARDS: usize = 64;
/// Entries per shard before the shard is cleared (a crude but bounded eviction).
const SHARD_CAPACITY: usize = 4096;

type Entry = (u64, Request, Arc<Decision>);

pub(crate) struct DecisionCache {
    shards: Box<[CachePadded<RwLock<HashTable<Entry>>>]>,
}

/// Keeps each shard's lock on its own cache line so two threads on different shards do not
/// slow each other down.
#[repr(align(128))]
struct CachePadded<T>(T);

impl DecisionCache {
    pub(crate) fn new() -> DecisionCache {
        DecisionCache {
            shards: (0..SHARDS)
                .map(|_| CachePadded(RwLock::new(HashTable::new())))
                .collect(),
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<HashTable<Entry>> {
        // The low bits pick the bucket inside the table; use high bits for the shard.
        &self.shards[(hash >> 58) as usize % SHARDS].0
    }

    pub(crate) fn get(&self, hash: u64, request: &Request) -> Option<Arc<Decision>> {
        let shard = self.shard(hash).read().unwrap_or_else(|p| p.into_inner());
        shard
            .find(hash, |(h, r, _)| *h == hash && r.same_as(request))
            .map(|(_, _, d)| Arc::clone(d))
    }

    /// Like [`get`](Self::get) but returns only the verdict (no reference count touched).
    pub(crate) fn allowed(&self, hash: u64, request: &Request) -> Option<bool> {
        let shard = self.shard(hash).read().unwrap_or_else(|p| p.into_inner());
        shard
            .find(hash, |(h, r, _)| *h == hash && r.same_as(request))
            .map(|(_, _, d)| d.allowed)
    }

    pub(crate) fn insert(&self, hash: u64, request: Request, decision: Arc<Decision>) {
        let mut shard = self.shard(hash).write().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= SHARD_CAPACITY {
            shard.clear();
        }
        match shard.entry(
            hash,
            |(h, r, _)| *h == hash && r.same_as(&request),
            |(h, _, _)| *h,
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => {}
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert((hash, request, decision));
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

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
/// Bytes the whole cache may hold (its requests' and decisions' strings, plus a fixed cost
/// per entry): 64 MiB. Names are client-chosen (a namespace may be 255 bytes, a command name
/// longer), so a bound in entries alone is no bound on memory. Each shard holds at most
/// 1/64 of it and is cleared when an insert would go past that.
pub const MAX_CACHE_BYTES: usize = 64 << 20;
const SHARD_BYTES: usize = MAX_CACHE_BYTES / SHARDS;
/// What one entry costs besides its strings (the table slot, the `Arc`s, the `Vec`s).
const ENTRY_OVERHEAD: usize = 256;

type Entry = (u64, Request, Arc<Decision>);

struct Shard {
    table: HashTable<Entry>,
    /// Estimated bytes of the entries in `table` (see [`entry_bytes`]).
    bytes: usize,
}

/// The estimated memory of one cache entry.
fn entry_bytes(request: &Request, decision: &Decision) -> usize {
    ENTRY_OVERHEAD
        + request.database.len()
        + request.db_user.len()
        + request.db_name.len()
        + request.command.as_ref().map_or(0, String::len)
        + request
            .namespaces
            .iter()
            .map(|n| n.len() + std::mem::size_of::<String>())
            .sum::<usize>()
        + decision.reason.len()
        + decision
            .matched_roles
            .iter()
            .map(|r| r.len() + std::mem::size_of::<String>())
            .sum::<usize>()
}

pub(crate) struct DecisionCache {
    shards: Box<[CachePadded<RwLock<Shard>>]>,
}

/// Keeps each shard's lock on its own cache line so two threads on different shards do not
/// slow each other down.
#[repr(align(128))]
struct CachePadded<T>(T);

impl DecisionCache {
    pub(crate) fn new() -> DecisionCache {
        DecisionCache {
            shards: (0..SHARDS)
                .map(|_| {
                    CachePadded(RwLock::new(Shard {
                        table: HashTable::new(),
                        bytes: 0,
                    }))
                })
                .collect(),
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        // The low bits pick the bucket inside the table; use high bits for the shard.
        &self.shards[(hash >> 58) as usize % SHARDS].0
    }

    pub(crate) fn get(&self, hash: u64, request: &Request) -> Option<Arc<Decision>> {
        let shard = self.shard(hash).read().unwrap_or_else(|p| p.into_inner());
        shard
            .table
            .find(hash, |(h, r, _)| *h == hash && r.same_as(request))
            .map(|(_, _, d)| Arc::clone(d))
    }

    /// Like [`get`](Self::get) but returns only the verdict (no reference count touched).
    pub(crate) fn allowed(&self, hash: u64, request: &Request) -> Option<bool> {
        let shard = self.shard(hash).read().unwrap_or_else(|p| p.into_inner());
        shard
            .table
            .find(hash, |(h, r, _)| *h == hash && r.same_as(request))
            .map(|(_, _, d)| d.allowed)
    }

    pub(crate) fn insert(&self, hash: u64, request: Request, decision: Arc<Decision>) {
        let cost = entry_bytes(&request, &decision);
        if cost > SHARD_BYTES {
            // Never worth evicting a whole shard for: decided again when it comes back.
            return;
        }
        let mut shard = self.shard(hash).write().unwrap_or_else(|p| p.into_inner());
        if shard.table.len() >= SHARD_CAPACITY || shard.bytes + cost > SHARD_BYTES {
            // Dropped, not just emptied: a table grown by long names gives its memory back.
            shard.table = HashTable::new();
            shard.bytes = 0;
        }
        let shard = &mut *shard;
        match shard.table.entry(
            hash,
            |(h, r, _)| *h == hash && r.same_as(&request),
            |(h, _, _)| *h,
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => {}
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert((hash, request, decision));
                shard.bytes += cost;
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(|p| p.into_inner()).table.len())
            .sum()
    }

    /// Estimated bytes held (at most [`MAX_CACHE_BYTES`]).
    pub(crate) fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(|p| p.into_inner()).bytes)
            .sum()
    }
}

//! Safe Rust behind the C ABI, one file per chapter of the PKCS#11 function list.
//!
//! Global state and its lock order: `LIBRARY` (the initialized library) → `clusters` /
//! `sessions` maps → a cluster's `inner` → a session's `ops`. No lock is held during
//! crypto except the calling session's own `ops`.

pub mod crypto;
pub mod general;
pub mod key_mgmt;
pub mod object;
pub mod random;
pub mod session;
pub mod slot_token;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::store::Store;
use cryptoki_sys::*;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct Library {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub clusters: RwLock<Vec<Arc<Cluster>>>,
    pub sessions: SessionTable,
    next_session: AtomicU64,
    clusters_seen: AtomicU64,
}

/// Every call starts here, so reading it must not write shared memory: with a lock or an
/// `Arc` clone, two threads bounce one cache line on every call (2-thread scaling of short
/// operations fell to x0.77). `arc_swap` hands out a guard from a per-thread slot.
static LIBRARY: arc_swap::ArcSwapOption<Library> = arc_swap::ArcSwapOption::const_empty();

/// A borrowed handle on the initialized library; C_Finalize waits for none of them (the
/// library is dropped when the last one goes).
pub struct LibraryRef(arc_swap::Guard<Option<Arc<Library>>>);

impl std::ops::Deref for LibraryRef {
    type Target = Library;
    fn deref(&self) -> &Library {
        // `library()` only builds a LibraryRef around Some.
        self.0.as_deref().expect("LibraryRef holds a library")
    }
}

/// The initialized library, or CKR_CRYPTOKI_NOT_INITIALIZED.
pub fn library() -> Result<LibraryRef> {
    let guard = LIBRARY.load();
    if guard.is_none() {
        return Err(Error::NotInitialized);
    }
    Ok(LibraryRef(guard))
}

pub(crate) fn install(lib: Option<Arc<Library>>) -> Option<Arc<Library>> {
    LIBRARY.swap(lib)
}

pub(crate) fn is_initialized() -> bool {
    LIBRARY.load().is_some()
}

/// Open sessions, in shards by handle: each call looks its session up, and threads on
/// different sessions then take different locks.
pub struct SessionTable {
    shards: [SessionShard; SESSION_SHARDS],
}

/// One shard, alone on its cache line(s) so neighbouring shards do not share one.
#[repr(align(64))]
struct SessionShard(RwLock<rustc_hash::FxHashMap<CK_SESSION_HANDLE, Arc<Session>>>);

impl std::ops::Deref for SessionShard {
    type Target = RwLock<rustc_hash::FxHashMap<CK_SESSION_HANDLE, Arc<Session>>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

const SESSION_SHARDS: usize = 16;

impl SessionTable {
    fn new() -> Self {
        SessionTable {
            shards: std::array::from_fn(|_| SessionShard(RwLock::new(Default::default()))),
        }
    }

    fn shard(
        &self,
        handle: CK_SESSION_HANDLE,
    ) -> &RwLock<rustc_hash::FxHashMap<CK_SESSION_HANDLE, Arc<Session>>> {
        &self.shards[handle as usize % SESSION_SHARDS].0
    }

    pub fn get(&self, handle: CK_SESSION_HANDLE) -> Option<Arc<Session>> {
        self.shard(handle).read().get(&handle).cloned()
    }

    pub fn insert(&self, s: Arc<Session>) {
        self.shard(s.handle).write().insert(s.handle, s);
    }

    pub fn remove(&self, handle: CK_SESSION_HANDLE) -> Option<Arc<Session>> {
        self.shard(handle).write().remove(&handle)
    }

    /// Removes and returns every session that matches.
    pub fn remove_where(&self, pred: impl Fn(&Session) -> bool) -> Vec<Arc<Session>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            shard.write().retain(|_, s| {
                if pred(s) {
                    out.push(s.clone());
                    false
                } else {
                    true
                }
            });
        }
        out
    }

    /// Every session that matches (a snapshot, shard by shard).
    pub fn filter(&self, pred: impl Fn(&Session) -> bool) -> Vec<Arc<Session>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(shard.read().values().filter(|s| pred(s)).cloned());
        }
        out
    }

    /// Runs `f` on every session (under each shard's read lock; `f` must not reach the
    /// session table).
    pub fn for_each(&self, f: impl Fn(&Session)) {
        for shard in &self.shards {
            shard.read().values().for_each(|s| f(s));
        }
    }

    pub fn clear(&self) {
        for shard in &self.shards {
            shard.write().clear();
        }
    }
}

impl Library {
    pub fn open(config: Config) -> Result<Library> {
        let config = Arc::new(config);
        let dir = config.store_dir()?;
        let store = Arc::new(Store::open(&dir)?);
        let lib = Library {
            config,
            store,
            clusters: RwLock::new(Vec::new()),
            sessions: SessionTable::new(),
            next_session: AtomicU64::new(1),
            clusters_seen: AtomicU64::new(u64::MAX),
        };
        lib.refresh_clusters()?;
        Ok(lib)
    }

    /// Notices clusters created or deleted by another process.
    pub fn refresh_clusters(&self) -> Result<()> {
        let now = self.store.change_counter();
        if self.clusters_seen.swap(now, Ordering::AcqRel) == now {
            return Ok(());
        }
        let rows = self.store.clusters()?;
        let mut clusters = self.clusters.write();
        clusters.retain(|c| rows.iter().any(|r| r.id == c.id));
        for row in rows {
            if !clusters.iter().any(|c| c.id == row.id) {
                clusters.push(Cluster::load(self.store.clone(), self.config.clone(), row)?);
            }
        }
        clusters.sort_by_key(|c| c.id);
        Ok(())
    }

    pub fn cluster(&self, slot: CK_SLOT_ID) -> Result<Arc<Cluster>> {
        if let Some(c) = self.clusters.read().iter().find(|c| c.slot_id() == slot) {
            return Ok(c.clone());
        }
        self.refresh_clusters()?;
        self.clusters
            .read()
            .iter()
            .find(|c| c.slot_id() == slot)
            .cloned()
            .ok_or(Error::SlotIdInvalid(slot))
    }

    /// The id of the free uninitialized slot, when one is shown.
    pub fn free_slot(&self) -> Result<Option<CK_SLOT_ID>> {
        use crate::config::FreeSlot;
        let clusters = self.clusters.read();
        let show = match self.config.free_slot {
            FreeSlot::Always => true,
            FreeSlot::Never => false,
            FreeSlot::Auto => clusters.is_empty(),
        };
        if !show {
            return Ok(None);
        }
        let next = clusters.iter().map(|c| c.id).max().unwrap_or(0) + 1;
        Ok(Some(next as CK_SLOT_ID))
    }

    /// Every slot: clusters first, then the free slot.
    pub fn slot_ids(&self) -> Result<Vec<CK_SLOT_ID>> {
        self.refresh_clusters()?;
        let mut ids: Vec<CK_SLOT_ID> = self.clusters.read().iter().map(|c| c.slot_id()).collect();
        if let Some(free) = self.free_slot()? {
            ids.push(free);
        }
        Ok(ids)
    }

    pub fn session(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<Session>> {
        self.sessions
            .get(handle)
            .ok_or(Error::SessionHandleInvalid(handle))
    }

    pub fn next_session_handle(&self) -> CK_SESSION_HANDLE {
        self.next_session.fetch_add(1, Ordering::Relaxed) as CK_SESSION_HANDLE
    }

    pub fn sessions_of(&self, slot: CK_SLOT_ID) -> Vec<Arc<Session>> {
        self.sessions.filter(|s| s.slot_id() == slot)
    }
}

/// Shorthand used by every api function: the library and the session.
pub fn session(handle: CK_SESSION_HANDLE) -> Result<(LibraryRef, Arc<Session>)> {
    let lib = library()?;
    let s = lib.session(handle)?;
    Ok((lib, s))
}

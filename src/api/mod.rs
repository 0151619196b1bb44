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
    pub sessions: RwLock<rustc_hash::FxHashMap<CK_SESSION_HANDLE, Arc<Session>>>,
    next_session: AtomicU64,
    clusters_seen: AtomicU64,
}

static LIBRARY: RwLock<Option<Arc<Library>>> = RwLock::new(None);

/// The initialized library, or CKR_CRYPTOKI_NOT_INITIALIZED.
pub fn library() -> Result<Arc<Library>> {
    LIBRARY.read().clone().ok_or(Error::NotInitialized)
}

pub(crate) fn install(lib: Option<Arc<Library>>) -> Option<Arc<Library>> {
    std::mem::replace(&mut *LIBRARY.write(), lib)
}

pub(crate) fn is_initialized() -> bool {
    LIBRARY.read().is_some()
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
            sessions: RwLock::new(Default::default()),
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
            .read()
            .get(&handle)
            .cloned()
            .ok_or(Error::SessionHandleInvalid(handle))
    }

    pub fn next_session_handle(&self) -> CK_SESSION_HANDLE {
        self.next_session.fetch_add(1, Ordering::Relaxed) as CK_SESSION_HANDLE
    }

    pub fn sessions_of(&self, slot: CK_SLOT_ID) -> Vec<Arc<Session>> {
        self.sessions
            .read()
            .values()
            .filter(|s| s.slot_id() == slot)
            .cloned()
            .collect()
    }
}

/// Shorthand used by every api function: the library and the session.
pub fn session(handle: CK_SESSION_HANDLE) -> Result<(Arc<Library>, Arc<Session>)> {
    let lib = library()?;
    let s = lib.session(handle)?;
    Ok((lib, s))
}

//! A cluster: the token behind one slot. It holds this process's view of the cluster's
//! state (HSM instances, users, objects), refreshed from the store when the cross-process
//! change counter moves, and this application's login state.
//!
//! Lock order (never take an earlier lock while holding a later one):
//! library → cluster `inner` → session operation state. No crypto runs under `inner`.

pub mod audit;
pub mod backup;
pub mod hsm;
pub mod objects;
pub mod users;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::object::index::ObjectIndex;
use crate::object::ProfileDefaults;
use crate::store::seal::MasterKey;
use crate::store::{self, ClusterRow, Store, UserRow};
use cryptoki_sys::*;
use hsm::{Health, HsmRuntime};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The behaviour profile of a cluster (DESIGN.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Standard,
    CloudHsm,
}

impl Profile {
    pub fn parse(s: &str) -> Result<Profile> {
        match s {
            "standard" => Ok(Profile::Standard),
            "cloudhsm" => Ok(Profile::CloudHsm),
            other => Err(Error::GeneralError(format!("unknown profile {other:?}"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Standard => "standard",
            Profile::CloudHsm => "cloudhsm",
        }
    }

    pub fn defaults(self) -> ProfileDefaults {
        match self {
            Profile::Standard => ProfileDefaults {
                extractable: false,
                secret_sensitive: false,
            },
            // CloudHSM: CKA_EXTRACTABLE defaults to true.
            Profile::CloudHsm => ProfileDefaults {
                extractable: true,
                secret_sensitive: false,
            },
        }
    }
}

/// Who this application is logged in as on this cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginState {
    Public,
    User(String),
    SecurityOfficer(String),
}

/// Which instances hold an object.
pub type Replicas = Arc<[String]>;

pub struct ClusterInner {
    pub row: ClusterRow,
    /// The token's identity in every seal's AAD; survives backup and restore.
    pub token_id: String,
    pub hsms: Vec<HsmRuntime>,
    pub users: Vec<UserRow>,
    /// (user, hsm) -> consecutive failed logins counted on that instance.
    pub failures: HashMap<(String, String), u32>,
    pub objects: ObjectIndex,
    /// Which instances hold each object (by handle); lists are shared (see
    /// `intern_replicas`).
    pub replicas: rustc_hash::FxHashMap<CK_OBJECT_HANDLE, Replicas>,
    /// The distinct replica lists in use: most objects share one of a handful.
    replica_lists: Vec<Replicas>,
    /// The owners of loaded objects, one allocation per user.
    owners: Vec<Arc<str>>,
    pub login: LoginState,
    pub master_key: Option<Arc<MasterKey>>,
    /// Highest store sequence applied to `objects`.
    pub applied_seq: i64,
    /// Injected latency and throttling (from the cluster's settings).
    pub faults: hsm::Faults,
}

/// The next round-robin position of this thread. Per thread rather than one shared counter:
/// a shared counter is a cache line every operation on every thread writes. A thread's
/// first position comes from a shared counter, so threads start on different instances.
pub fn next_turn() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static FIRST: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static TURN: Cell<Option<usize>> = const { Cell::new(None) };
    }
    TURN.with(|t| {
        let now = t
            .get()
            .unwrap_or_else(|| FIRST.fetch_add(1, Ordering::Relaxed));
        t.set(Some(now.wrapping_add(1)));
        now
    })
}

impl ClusterInner {
    /// The shared copy of an owner's name.
    pub fn intern_owner(&mut self, name: String) -> Arc<str> {
        if let Some(known) = self.owners.iter().find(|o| ***o == *name) {
            return known.clone();
        }
        let shared: Arc<str> = name.into();
        if self.owners.len() < 256 {
            self.owners.push(shared.clone());
        }
        shared
    }

    /// The shared copy of a replica list (one allocation per distinct list, not per
    /// object: 100,000 keys on 3 instances hold one list).
    pub fn intern_replicas<S: AsRef<str>>(&mut self, list: &[S]) -> Replicas {
        let same = |known: &Replicas| {
            known.len() == list.len() && known.iter().zip(list).all(|(a, b)| a == b.as_ref())
        };
        if let Some(known) = self.replica_lists.iter().find(|r| same(r)) {
            return known.clone();
        }
        let shared: Replicas = list.iter().map(|s| s.as_ref().to_string()).collect();
        // Bounded: lists change only with instance health, so a handful are live.
        if self.replica_lists.len() >= 32 {
            self.replica_lists.remove(0);
        }
        self.replica_lists.push(shared.clone());
        shared
    }
}

pub struct Cluster {
    pub id: i64,
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    pub inner: RwLock<ClusterInner>,
    seen_counter: AtomicU64,
    /// The profile, readable without the lock (every operation asks).
    profile: std::sync::atomic::AtomicU8,
    /// This process's open sessions on the cluster: the last one to close logs out.
    pub open_sessions: std::sync::atomic::AtomicUsize,
    /// Bumped whenever `inner` is written (see [`Cluster::write_inner`]): a session's key
    /// memo from the same generation is still valid.
    generation: AtomicU64,
    /// Verified PINs of this process (see `users::PinCache`).
    pub pin_cache: users::PinCache,
}

impl Cluster {
    /// Loads a cluster's state from the store.
    pub fn load(store: Arc<Store>, config: Arc<Config>, row: ClusterRow) -> Result<Arc<Cluster>> {
        let profile = Profile::parse(&row.profile)?;
        let counter = store.change_counter();
        let inner = ClusterInner {
            token_id: token_id(&row),
            hsms: Vec::new(),
            users: Vec::new(),
            failures: HashMap::new(),
            objects: ObjectIndex::new(),
            replicas: Default::default(),
            replica_lists: Vec::new(),
            owners: Vec::new(),
            login: LoginState::Public,
            master_key: None,
            applied_seq: 0,
            faults: hsm::Faults::from_settings(&row.settings),
            row,
        };
        let cluster = Arc::new(Cluster {
            id: inner.row.id,
            store,
            config,
            inner: RwLock::new(inner),
            seen_counter: AtomicU64::new(counter),
            profile: std::sync::atomic::AtomicU8::new(profile as u8),
            generation: AtomicU64::new(0),
            open_sessions: Default::default(),
            pin_cache: users::PinCache::new(),
        });
        {
            let mut inner = cluster.write_inner();
            cluster.reload_locked(&mut inner)?;
        }
        Ok(cluster)
    }

    pub fn slot_id(&self) -> CK_SLOT_ID {
        self.id as CK_SLOT_ID
    }

    /// The write lock on the cluster's state. Every writer goes through here: it moves the
    /// generation on, so what sessions remembered from before is checked again.
    pub(crate) fn write_inner(&self) -> parking_lot::RwLockWriteGuard<'_, ClusterInner> {
        let guard = self.inner.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        guard
    }

    /// The current generation (see `write_inner`).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Applies other processes' changes if the change counter moved (one atomic load when
    /// nothing changed).
    pub fn refresh(&self) -> Result<()> {
        let now = self.store.change_counter();
        if now == self.seen_counter.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut inner = self.write_inner();
        self.seen_counter.store(now, Ordering::Release);
        self.reload_locked(&mut inner)
    }

    /// Re-reads topology, users, failures and objects changed since the last reload.
    fn reload_locked(&self, inner: &mut ClusterInner) -> Result<()> {
        if let Some(row) = self.store.clusters()?.into_iter().find(|c| c.id == self.id) {
            self.profile
                .store(Profile::parse(&row.profile)? as u8, Ordering::Relaxed);
            inner.token_id = token_id(&row);
            inner.faults = hsm::Faults::from_settings(&row.settings);
            inner.row = row;
        }
        let rows = self.store.hsms(self.id)?;
        let old: Vec<HsmRuntime> = std::mem::take(&mut inner.hsms);
        inner.hsms = rows
            .into_iter()
            .map(|r| {
                let served = old
                    .iter()
                    .find(|h| h.id == r.hsm_id)
                    .map(|h| h.served.clone())
                    .unwrap_or_default();
                HsmRuntime {
                    id: r.hsm_id,
                    az: r.az,
                    health: Health::parse(&r.health),
                    served,
                }
            })
            .collect();
        // Session objects live on one instance only (as in CloudHSM): if it is down they
        // are gone.
        let down: Vec<String> = inner
            .hsms
            .iter()
            .filter(|h| !h.health.serving())
            .map(|h| h.id.clone())
            .collect();
        if !down.is_empty() {
            let lost: Vec<CK_OBJECT_HANDLE> = inner
                .objects
                .all()
                .filter(|e| e.session.is_some())
                .filter(|e| {
                    inner
                        .replicas
                        .get(&e.handle)
                        .is_some_and(|r| r.iter().all(|h| down.contains(h)))
                })
                .map(|e| e.handle)
                .collect();
            for h in lost {
                inner.objects.remove(h);
                inner.replicas.remove(&h);
            }
        }
        inner.users = self.store.users(self.id)?;
        inner.failures = self
            .store
            .login_failures(self.id)?
            .into_iter()
            .map(|(u, h, n)| ((u, h), n))
            .collect();
        // Applied as read (rows in sequence order): a partial read leaves `applied_seq` at
        // the last row applied, and the next refresh continues from there.
        let cluster_id = self.id;
        let since = inner.applied_seq;
        let complete_to = self
            .store
            .changes_since(cluster_id, since, |change| match change {
                store::Change::Gone(uid) => {
                    if let Some(e) = inner.objects.remove_uid(&uid) {
                        inner.replicas.remove(&e.handle);
                    }
                }
                store::Change::Row(row) => {
                    inner.applied_seq = inner.applied_seq.max(row.seq);
                    if let Err(e) = objects::apply_row(inner, row) {
                        crate::log_warn!(
                        "cluster {cluster_id}: skipping a stored object that cannot be read: {e}"
                    );
                    }
                }
            })?;
        inner.applied_seq = inner.applied_seq.max(complete_to);
        // A user that no longer exists cannot stay logged in.
        let gone_user = match &inner.login {
            LoginState::User(n) | LoginState::SecurityOfficer(n) => {
                !inner.users.iter().any(|u| &u.name == n)
            }
            LoginState::Public => false,
        };
        if gone_user {
            inner.login = LoginState::Public;
            inner.master_key = None;
        }
        Ok(())
    }

    /// Writes in one store transaction and applies the result locally before returning.
    pub fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        let out = self.store.write(f)?;
        self.refresh()?;
        Ok(out)
    }

    /// Stores new fault settings (latency per instance, throttling) for every process.
    pub fn set_faults(&self, update: impl FnOnce(&mut hsm::Faults)) -> Result<()> {
        self.refresh()?;
        let mut row = self.inner.read().row.clone();
        let mut settings: serde_json::Value =
            serde_json::from_str(&row.settings).unwrap_or_else(|_| serde_json::json!({}));
        let mut faults = hsm::Faults::from_settings(&row.settings);
        update(&mut faults);
        settings["faults"] =
            serde_json::to_value(&faults).map_err(|e| Error::GeneralError(e.to_string()))?;
        row.settings = settings.to_string();
        self.write(|tx| store::update_cluster(tx, &row))
    }

    pub fn profile(&self) -> Profile {
        if self.profile.load(Ordering::Relaxed) == Profile::CloudHsm as u8 {
            Profile::CloudHsm
        } else {
            Profile::Standard
        }
    }

    pub fn label(&self) -> String {
        self.inner.read().row.label.clone()
    }

    pub fn login_state(&self) -> LoginState {
        self.inner.read().login.clone()
    }

    /// Whether a Crypto User is logged in (no allocation, unlike `login_state`).
    pub fn user_logged_in(&self) -> bool {
        matches!(self.inner.read().login, LoginState::User(_))
    }
}

/// Creates a new cluster row with its HSM instances (C_InitToken on the free slot, or the CLI).
pub fn create_cluster(
    store: &Store,
    config: &Config,
    id: i64,
    label: &str,
    profile: &str,
    azs: &[String],
) -> Result<ClusterRow> {
    Profile::parse(profile)?;
    if azs.is_empty() || azs.len() > 28 {
        return Err(Error::ArgumentsBad("a cluster has 1 to 28 HSM instances"));
    }
    let serial = random_hex(8)?;
    let row = ClusterRow {
        id,
        label: label.to_string(),
        serial,
        profile: profile.to_string(),
        kdf_iterations: config.kdf_iterations,
        created: audit::now_utc(),
        settings: serde_json::json!({ "token_id": random_hex(16)? }).to_string(),
    };
    let hsms: Vec<store::HsmRow> = azs
        .iter()
        .enumerate()
        .map(|(i, az)| store::HsmRow {
            hsm_id: hsm::instance_name(i),
            az: az.clone(),
            health: Health::Active.name().into(),
        })
        .collect();
    store.write(|tx| store::insert_cluster(tx, &row, &hsms))?;
    Ok(row)
}

/// The token identity bound into seals: `settings.token_id`, else one derived from the id.
pub fn token_id(row: &ClusterRow) -> String {
    serde_json::from_str::<serde_json::Value>(&row.settings)
        .ok()
        .and_then(|v| {
            v.get("token_id")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("cluster-{}", row.id))
}

/// Lowercase hex of `bytes`, in one allocation.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> Result<String> {
    Ok(to_hex(&crate::store::seal::random_bytes(n)?))
}

//! Objects on a cluster: loading and sealing stored rows, visibility and ownership rules,
//! and the writes that replicate to every serving instance.

use super::hsm::RoutePlan;
use super::{audit, next_turn, Cluster, ClusterInner, LoginState};
use crate::error::{Error, Result};
use crate::object::index::Entry;
use crate::object::{AttrMap, Object};
use crate::secure_mem::SecretBytes;
use crate::session::KeyMemo;
use crate::store::seal::MasterKey;
use crate::store::{self, record, ObjectRow};
use cryptoki_sys::*;
use std::sync::Arc;

/// What the caller wants to do with an object; decides the ownership check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read attributes, find.
    Read,
    /// Use in a cryptographic operation.
    Use,
    /// Change, destroy, wrap, export, share: the owner only.
    Own,
}

fn seal_aad(token_id: &str, uid: &str) -> Vec<u8> {
    format!("clusterhsm-obj:{token_id}:{uid}").into_bytes()
}

/// A new CKA_UNIQUE_ID: a per-process random 64-bit prefix XOR a scrambled counter (an odd
/// multiplier is a bijection, so uids never repeat within a process; across processes two
/// random prefixes collide with negligible probability). One RNG draw per process, not per
/// object; a forked child draws a new prefix.
pub fn new_uid() -> Result<String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: parking_lot::Mutex<(u32, u64)> = parking_lot::Mutex::new((0, 0));
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let prefix = {
        let mut p = PREFIX.lock();
        let pid = std::process::id();
        if p.0 != pid {
            let b = store::seal::random_bytes(8)?;
            *p = (
                pid,
                u64::from_be_bytes(b.try_into().map_err(|_| Error::RandomNoRng)?),
            );
        }
        p.1
    };
    let n = COUNTER
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Ok(super::to_hex(&(prefix ^ n).to_be_bytes()))
}

/// Encodes an object for the store. The sealed part holds every secret and, for a
/// private object, CKA_VALUE (a private data object's payload is as confidential as a
/// key); it is sealed under the master key, or written back as loaded when it was never
/// opened here.
pub fn to_row(
    token_id: &str,
    obj: &Object,
    mk: Option<&MasterKey>,
    replicas: Vec<String>,
) -> Result<ObjectRow> {
    let private_value = obj.is_private() && obj.attr(CKA_VALUE).is_some();
    let attrs = record::encode(
        obj.attrs
            .iter()
            .filter(|(k, _)| !(private_value && *k == CKA_VALUE)),
    );
    let sealed = match obj.reusable_seal()? {
        Some(_) if private_value && obj.attrs.contains_key(&CKA_VALUE) => {
            return Err(Error::UserNotLoggedIn)
        }
        Some(blob) => Some(blob.to_vec()),
        None => {
            let mut parts: Vec<(CK_ATTRIBUTE_TYPE, &[u8])> =
                obj.all_secrets().map(|(k, s)| (k, s.expose())).collect();
            if private_value {
                parts.extend(obj.attr(CKA_VALUE).map(|v| (CKA_VALUE, v)));
            }
            if parts.is_empty() {
                None
            } else {
                let mk = mk.ok_or(Error::UserNotLoggedIn)?;
                let plain = SecretBytes::new(record::encode(parts));
                Some(mk.seal(&seal_aad(token_id, &obj.uid), plain.expose())?)
            }
        }
    };
    Ok(ObjectRow {
        uid: obj.uid.clone(),
        seq: 0,
        owner: obj.owner.as_deref().map(str::to_string),
        shared: obj.shared_with.clone(),
        attrs,
        sealed,
        replicas,
    })
}

/// Applies one stored row to this process's index (new object or new version). The sealed
/// part stays sealed until the object is first used ([`Cluster::entry`]).
pub fn apply_row(inner: &mut ClusterInner, row: ObjectRow) -> Result<()> {
    let mut obj = Object::from_attrs(row.uid, AttrMap::from_record(&row.attrs)?)
        .ok_or_else(|| Error::DeviceError("stored object has no class".into()))?;
    obj.owner = row.owner.map(|o| inner.intern_owner(o));
    obj.shared_with = row.shared;
    if let Some(sealed) = row.sealed {
        obj.set_sealed(sealed);
    }
    let entry = inner.objects.upsert(obj, None);
    let replicas = inner.intern_replicas(&row.replicas);
    inner.replicas.insert(entry.handle, replicas);
    Ok(())
}

/// Opens an object's sealed part with the master key, when there is one. A part that
/// fails its integrity check is logged and refused each time it is needed.
fn unseal(cluster_id: i64, inner: &ClusterInner, obj: &Object) -> Result<()> {
    let Some(mk) = &inner.master_key else {
        return Ok(());
    };
    obj.unseal(|aad_uid, blob| mk.open(&seal_aad(&inner.token_id, aad_uid), blob))
        .inspect_err(|e| {
            crate::log_warn!(
                "cluster {cluster_id}: object {} cannot be unsealed: {e}",
                obj.uid
            )
        })
}

/// Whether the current login may see an object.
pub fn visible(login: &LoginState, obj: &Object) -> bool {
    if !obj.is_private() {
        return true;
    }
    match login {
        LoginState::User(name) => {
            obj.owner.as_deref().is_none_or(|o| o == name)
                || obj.shared_with.iter().any(|s| s == name)
        }
        LoginState::SecurityOfficer(_) | LoginState::Public => false,
    }
}

impl Cluster {
    /// Looks up an object for `access` under the current login.
    pub fn entry(&self, handle: CK_OBJECT_HANDLE, access: Access) -> Result<Arc<Entry>> {
        match self.entry_checked(handle, access) {
            // Perhaps another process made it; look once more after catching up.
            Err(Error::ObjectHandleInvalid(_)) if !self.inner.read().objects.contains(handle) => {
                self.refresh()?;
                self.entry_checked(handle, access)
            }
            other => other,
        }
    }

    /// The lookup and every check under one read lock, so the entry returned is the version
    /// the checks saw (a login unsealing it in between cannot hand out a stale, secret-less
    /// copy).
    fn entry_checked(&self, handle: CK_OBJECT_HANDLE, access: Access) -> Result<Arc<Entry>> {
        self.entry_checked_in(&self.inner.read(), handle, access)
    }

    fn entry_checked_in(
        &self,
        inner: &ClusterInner,
        handle: CK_OBJECT_HANDLE,
        access: Access,
    ) -> Result<Arc<Entry>> {
        let entry = inner
            .objects
            .get(handle)
            .ok_or(Error::ObjectHandleInvalid(handle))?;
        if !visible(&inner.login, &entry.object) {
            return Err(Error::ObjectHandleInvalid(handle));
        }
        if entry.object.is_sealed_closed() {
            let opened = unseal(self.id, inner, &entry.object);
            if access != Access::Read {
                opened?;
                if entry.object.is_sealed_closed() {
                    return Err(Error::UserNotLoggedIn);
                }
            }
        }
        if access == Access::Own {
            if let (LoginState::User(me), Some(owner)) = (&inner.login, &entry.object.owner) {
                if **me != **owner {
                    return Err(Error::ActionProhibited(format!(
                        "only the owner {owner} may do this"
                    )));
                }
            }
        }
        Ok(entry)
    }

    /// A key for a cryptographic operation, looked up, checked (usable, key availability)
    /// and routed to the instance that serves it, then injected latency and throttling
    /// applied; through a session's memo of the key it used last: while
    /// the cluster is unchanged the lookup, checks and routing plan are reused, and
    /// nothing shared between threads is written. Returns the serving instance; the entry
    /// is the memo's.
    pub fn use_key_memo(
        &self,
        memo: &mut Option<KeyMemo>,
        handle: CK_OBJECT_HANDLE,
    ) -> Result<String> {
        self.refresh()?;
        let current = memo
            .as_ref()
            .is_some_and(|m| m.handle == handle && m.generation == self.generation());
        if !current {
            *memo = None;
            let inner = self.inner.read();
            // Read under the read lock: no writer can move it meanwhile.
            let generation = self.generation();
            let entry = self.entry_checked_in(&inner, handle, Access::Use)?;
            self.availability_check(&inner, &entry)?;
            let holders = inner.replicas.get(&entry.handle).map(|h| &h[..]);
            let route = RoutePlan::new(&inner.hsms, holders, &inner.faults);
            *memo = Some(KeyMemo {
                handle,
                generation,
                entry,
                route,
                cipher: None,
            });
        }
        let m = memo
            .as_ref()
            .ok_or_else(|| Error::GeneralError("key memo missing".into()))?;
        let (served_by, latency, throttle) = m.route.pick(next_turn())?;
        let served_by = served_by.to_string();
        super::hsm::apply_faults(latency, throttle)?;
        Ok(served_by)
    }

    /// CloudHSM's key availability check for token keys (SDK 5): fewer than 2 copies in a
    /// multi-instance cluster refuses the operation.
    fn availability_check(&self, inner: &ClusterInner, entry: &Entry) -> Result<()> {
        if let Some(h) = inner.replicas.get(&entry.handle) {
            if entry.session.is_none()
                && self.config.key_availability_check
                && h.len() < 2
                && inner.hsms.len() > 1
            {
                return Err(Error::FunctionFailed(
                    "key availability check: the key has fewer than 2 copies in the cluster (CloudHSM SDK 5)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Picks the instance that serves an operation with this object and counts it there,
    /// then applies injected latency and throttling. Enforces CloudHSM's key availability
    /// check for token keys. Takes only a read lock: operations on many threads do not
    /// serialize here.
    pub fn route_for(&self, entry: &Entry) -> Result<String> {
        self.refresh()?;
        let turn = next_turn();
        let (served_by, latency, throttle) = self.route_in(&self.inner.read(), entry, turn)?;
        super::hsm::apply_faults(latency, throttle)?;
        Ok(served_by)
    }

    /// The routing decision: (instance, injected latency in ms, throttle percent).
    fn route_in(
        &self,
        inner: &ClusterInner,
        entry: &Entry,
        turn: usize,
    ) -> Result<(String, u64, u32)> {
        self.availability_check(inner, entry)?;
        let holders = inner.replicas.get(&entry.handle);
        let chosen = super::hsm::route(&inner.hsms, holders.map(|h| &h[..]), turn)?;
        Ok((
            chosen.id.clone(),
            inner.faults.latency_ms(&chosen.id),
            inner.faults.throttle_percent,
        ))
    }

    /// Records a crypto operation in the audit log of the instance that served it (only
    /// when `audit_crypto` is configured: it costs a store write per operation).
    pub fn audit_operation(
        &self,
        opcode: &str,
        hsm: &str,
        session: CK_SESSION_HANDLE,
        entry: &Entry,
        mechanism: CK_MECHANISM_TYPE,
    ) -> Result<()> {
        let user = self.current_user();
        let detail = format!("mechanism 0x{mechanism:x}");
        self.write(|tx| {
            let mut ev = audit::Event::new(opcode);
            ev.user = user.as_deref();
            ev.session = Some(session);
            ev.handle = Some(entry.handle);
            ev.unique_id = Some(&entry.object.uid);
            ev.label = Some(entry.object.label());
            ev.detail = Some(&detail);
            audit::record(tx, self.id, &[hsm.to_string()], &ev)
        })
    }

    /// Picks an instance for an operation that uses no stored key.
    pub fn route_any(&self) -> Result<String> {
        self.refresh()?;
        let turn = next_turn();
        let inner = self.inner.read();
        Ok(super::hsm::route(&inner.hsms, None, turn)?.id.clone())
    }

    fn current_user(&self) -> Option<String> {
        match &self.inner.read().login {
            LoginState::User(n) | LoginState::SecurityOfficer(n) => Some(n.clone()),
            LoginState::Public => None,
        }
    }

    /// Adds a new object: token objects are stored (sealed) and replicated to every serving
    /// instance in one transaction; session objects live on the session's instance.
    pub fn insert_object(
        &self,
        mut obj: Object,
        session: CK_SESSION_HANDLE,
        session_hsm: &str,
    ) -> Result<CK_OBJECT_HANDLE> {
        let login = self.login_state();
        if obj.is_private() && !matches!(login, LoginState::User(_)) {
            return Err(Error::UserNotLoggedIn);
        }
        if let LoginState::User(me) = &login {
            obj.owner = Some(me.as_str().into());
        }
        if !obj.is_token() {
            let mut inner = self.write_inner();
            let entry = inner.objects.upsert(obj, Some(session));
            let replicas = inner.intern_replicas(&[session_hsm]);
            inner.replicas.insert(entry.handle, replicas);
            return Ok(entry.handle);
        }
        let replicas = self.serving_instances();
        if replicas.is_empty() {
            return Err(Error::DeviceError("no HSM instance is serving".into()));
        }
        let mk = self.inner.read().master_key.clone();
        let token = self.inner.read().token_id.clone();
        let row = to_row(&token, &obj, mk.as_deref(), replicas.clone())?;
        let user = self.current_user();
        let uid = obj.uid.clone();
        self.write(|tx| {
            store::put_object(tx, self.id, &row)?;
            let mut ev = audit::Event::new("CN_CREATE_OBJECT");
            ev.user = user.as_deref();
            ev.session = Some(session);
            ev.unique_id = Some(&uid);
            ev.label = Some(obj.label());
            audit::record(tx, self.id, &replicas, &ev)
        })?;
        self.inner
            .read()
            .objects
            .handle_of(&uid)
            .ok_or_else(|| Error::GeneralError("stored object vanished".into()))
    }

    /// Replaces an object by a changed version (C_SetAttributeValue, sharing).
    pub fn update_object(&self, handle: CK_OBJECT_HANDLE, next: Object) -> Result<()> {
        let (is_token, replicas) = {
            let inner = self.inner.read();
            let e = inner
                .objects
                .get(handle)
                .ok_or(Error::ObjectHandleInvalid(handle))?;
            (
                e.object.is_token(),
                inner
                    .replicas
                    .get(&handle)
                    .map(|r| r.to_vec())
                    .unwrap_or_default(),
            )
        };
        if !is_token {
            self.write_inner().objects.replace(handle, next);
            return Ok(());
        }
        // The new version reaches the serving instances that hold the object; a Down
        // instance keeps the old one and is resynced when it returns.
        let serving = self.serving_instances();
        let replicas: Vec<String> = replicas
            .into_iter()
            .filter(|r| serving.contains(r))
            .collect();
        if replicas.is_empty() {
            return Err(Error::DeviceError(
                "no serving HSM instance holds this object".into(),
            ));
        }
        let mk = self.inner.read().master_key.clone();
        let token = self.inner.read().token_id.clone();
        let row = to_row(&token, &next, mk.as_deref(), replicas.clone())?;
        let user = self.current_user();
        self.write(|tx| {
            store::put_object(tx, self.id, &row)?;
            let mut ev = audit::Event::new("CN_MODIFY_OBJECT");
            ev.user = user.as_deref();
            ev.handle = Some(handle);
            ev.unique_id = Some(&next.uid);
            audit::record(tx, self.id, &replicas, &ev)
        })
    }

    pub fn destroy_object(&self, handle: CK_OBJECT_HANDLE) -> Result<()> {
        let entry = self
            .inner
            .read()
            .objects
            .get(handle)
            .ok_or(Error::ObjectHandleInvalid(handle))?;
        if !entry.object.is_token() {
            let mut inner = self.write_inner();
            inner.objects.remove(handle);
            inner.replicas.remove(&handle);
            return Ok(());
        }
        let instances = self.serving_instances();
        let user = self.current_user();
        self.write(|tx| {
            store::delete_object(tx, self.id, &entry.object.uid)?;
            let mut ev = audit::Event::new("CN_DESTROY_OBJECT");
            ev.user = user.as_deref();
            ev.handle = Some(handle);
            ev.unique_id = Some(&entry.object.uid);
            ev.label = Some(entry.object.label());
            audit::record(tx, self.id, &instances, &ev)
        })
    }

    /// Handles of visible objects matching a template (label-indexed when possible).
    pub fn find(&self, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Result<Vec<CK_OBJECT_HANDLE>> {
        self.refresh()?;
        let inner = self.inner.read();
        let label = crate::object::template_get(template, CKA_LABEL);
        Ok(inner
            .objects
            .candidates(label)
            .into_iter()
            .filter(|e| {
                if !visible(&inner.login, &e.object) {
                    return false;
                }
                // A template naming a value the closed sealed part may hold needs it open.
                if e.object.is_sealed_closed()
                    && template.iter().any(|(ty, _)| e.object.attr(*ty).is_none())
                {
                    let _ = unseal(self.id, &inner, &e.object);
                }
                e.object.matches(template)
            })
            .map(|e| e.handle)
            .collect())
    }

    /// Drops the session objects of a closed session.
    /// Returns whether there were any.
    pub fn drop_session_objects(&self, session: CK_SESSION_HANDLE) -> bool {
        if !self.inner.read().objects.has_session_objects(session) {
            return false;
        }
        let mut inner = self.write_inner();
        for h in inner.objects.remove_session_objects(session) {
            inner.replicas.remove(&h);
        }
        true
    }

    /// Which instances hold an object.
    pub fn replicas_of(&self, handle: CK_OBJECT_HANDLE) -> Vec<String> {
        self.inner
            .read()
            .replicas
            .get(&handle)
            .map(|r| r.to_vec())
            .unwrap_or_default()
    }
}

impl Cluster {
    /// Shares or unshares a key the logged-in Crypto User owns with another Crypto User
    /// (`clusterhsm key share|unshare`). Only the owner may.
    pub fn share(&self, uid: &str, with: &str, share: bool) -> Result<()> {
        self.refresh()?;
        let me = match self.login_state() {
            LoginState::User(n) => n,
            _ => return Err(Error::UserNotLoggedIn),
        };
        if !self.has_crypto_user(with) {
            return Err(Error::ArgumentsBad("no such crypto user"));
        }
        let handle = self
            .inner
            .read()
            .objects
            .handle_of(uid)
            .ok_or(Error::ArgumentsBad("no such key"))?;
        let entry = self.entry(handle, Access::Own)?;
        if entry.object.owner.as_deref() != Some(me.as_str()) {
            return Err(Error::ActionProhibited(
                "only the owner may share a key".into(),
            ));
        }
        let mut next = entry.object.duplicate(entry.object.uid.clone());
        next.shared_with.retain(|u| u != with);
        if share && with != me {
            next.shared_with.push(with.to_string());
        }
        self.update_object(handle, next)
    }
}

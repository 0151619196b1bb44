//! The per-process object index: handles (per process, from a counter, never reused),
//! the CKA_UNIQUE_ID map, and a label index so C_FindObjects does not scan.

use super::Object;
use cryptoki_sys::*;
use std::any::Any;
// Handles and uids are ours and labels the application's own: no HashDoS exposure, so a
// fast non-keyed hash (SipHash was 5% of loading a 110,000-object token).
use rustc_hash::FxHashMap as HashMap;
use std::sync::{Arc, OnceLock};

/// An object as this process holds it.
pub struct Entry {
    pub handle: CK_OBJECT_HANDLE,
    pub object: Object,
    /// The session that owns a session object; None for token objects.
    pub session: Option<CK_SESSION_HANDLE>,
    /// Parsed key material, built on first use and kept (type known to the mechanism layer).
    pub key_cache: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Entry {
    pub fn new(
        handle: CK_OBJECT_HANDLE,
        object: Object,
        session: Option<CK_SESSION_HANDLE>,
    ) -> Self {
        Entry {
            handle,
            object,
            session,
            key_cache: OnceLock::new(),
        }
    }
}

/// The handles whose label (or uid) hashes to one value: almost always one, so no vector
/// for that case. The label itself is not stored twice: callers check the entries.
enum LabelBucket {
    One(CK_OBJECT_HANDLE),
    Many(Vec<CK_OBJECT_HANDLE>),
}

impl LabelBucket {
    fn push(&mut self, handle: CK_OBJECT_HANDLE) {
        match self {
            LabelBucket::One(h) => *self = LabelBucket::Many(vec![*h, handle]),
            LabelBucket::Many(v) => v.push(handle),
        }
    }

    /// Removes a handle; true when the bucket is now empty.
    fn remove(&mut self, handle: CK_OBJECT_HANDLE) -> bool {
        match self {
            LabelBucket::One(h) => *h == handle,
            LabelBucket::Many(v) => {
                v.retain(|h| *h != handle);
                v.is_empty()
            }
        }
    }

    fn handles(&self) -> &[CK_OBJECT_HANDLE] {
        match self {
            LabelBucket::One(h) => std::slice::from_ref(h),
            LabelBucket::Many(v) => v,
        }
    }
}

fn key_hash(key: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write(key);
    h.finish()
}

fn link(map: &mut HashMap<u64, LabelBucket>, key: &[u8], handle: CK_OBJECT_HANDLE) {
    match map.get_mut(&key_hash(key)) {
        Some(bucket) => bucket.push(handle),
        None => {
            map.insert(key_hash(key), LabelBucket::One(handle));
        }
    }
}

fn unlink(map: &mut HashMap<u64, LabelBucket>, key: &[u8], handle: CK_OBJECT_HANDLE) {
    let k = key_hash(key);
    if map.get_mut(&k).is_some_and(|bucket| bucket.remove(handle)) {
        map.remove(&k);
    }
}

#[derive(Default)]
pub struct ObjectIndex {
    by_handle: HashMap<CK_OBJECT_HANDLE, Arc<Entry>>,
    /// By a hash of the uid (the uid is in the entry: no second copy per object).
    by_uid: HashMap<u64, LabelBucket>,
    /// By a hash of the label, non-empty labels only (unlabeled objects would make one
    /// bucket of everything). A search checks the label of each candidate.
    by_label: HashMap<u64, LabelBucket>,
    /// Session objects by owning session, so closing a session does not scan every object.
    by_session: HashMap<CK_SESSION_HANDLE, Vec<CK_OBJECT_HANDLE>>,
    next_handle: CK_OBJECT_HANDLE,
}

impl ObjectIndex {
    pub fn new() -> Self {
        ObjectIndex {
            next_handle: 1,
            ..Default::default()
        }
    }

    pub fn get(&self, handle: CK_OBJECT_HANDLE) -> Option<Arc<Entry>> {
        self.by_handle.get(&handle).cloned()
    }

    pub fn contains(&self, handle: CK_OBJECT_HANDLE) -> bool {
        self.by_handle.contains_key(&handle)
    }

    pub fn handle_of(&self, uid: &str) -> Option<CK_OBJECT_HANDLE> {
        self.by_uid
            .get(&key_hash(uid.as_bytes()))?
            .handles()
            .iter()
            .copied()
            .find(|h| self.by_handle.get(h).is_some_and(|e| e.object.uid == uid))
    }

    pub fn len(&self) -> usize {
        self.by_handle.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_handle.is_empty()
    }

    /// Inserts a new object or a new version of a known one (same uid keeps its handle).
    pub fn upsert(&mut self, mut object: Object, session: Option<CK_SESSION_HANDLE>) -> Arc<Entry> {
        object.attrs.shrink_to_fit();
        let handle = match self.handle_of(&object.uid) {
            Some(h) => {
                self.unlink_label(h);
                h
            }
            None => {
                let h = self.next_handle;
                self.next_handle += 1;
                link(&mut self.by_uid, object.uid.as_bytes(), h);
                h
            }
        };
        self.link_label(object.label(), handle);
        let entry = Arc::new(Entry::new(handle, object, session));
        if let Some(sess) = session {
            let list = self.by_session.entry(sess).or_default();
            if !list.contains(&handle) {
                list.push(handle);
            }
        }
        self.by_handle.insert(handle, entry.clone());
        entry
    }

    /// Replaces the object behind `handle` by a new version with another uid (session
    /// objects get a new uid per version; token objects keep theirs).
    pub fn replace(&mut self, handle: CK_OBJECT_HANDLE, object: Object) -> Option<Arc<Entry>> {
        let old = self.by_handle.get(&handle)?.clone();
        self.unlink_label(handle);
        unlink(&mut self.by_uid, old.object.uid.as_bytes(), handle);
        link(&mut self.by_uid, object.uid.as_bytes(), handle);
        self.link_label(object.label(), handle);
        let entry = Arc::new(Entry::new(handle, object, old.session));
        self.by_handle.insert(handle, entry.clone());
        Some(entry)
    }

    pub fn remove(&mut self, handle: CK_OBJECT_HANDLE) -> Option<Arc<Entry>> {
        let entry = self.by_handle.get(&handle)?.clone();
        self.unlink_label(handle);
        self.by_handle.remove(&handle);
        unlink(&mut self.by_uid, entry.object.uid.as_bytes(), handle);
        if let Some(sess) = entry.session {
            if let Some(list) = self.by_session.get_mut(&sess) {
                list.retain(|h| *h != handle);
                if list.is_empty() {
                    self.by_session.remove(&sess);
                }
            }
        }
        Some(entry)
    }

    pub fn remove_uid(&mut self, uid: &str) -> Option<Arc<Entry>> {
        let h = self.handle_of(uid)?;
        self.remove(h)
    }

    fn link_label(&mut self, label: &[u8], handle: CK_OBJECT_HANDLE) {
        if !label.is_empty() {
            link(&mut self.by_label, label, handle);
        }
    }

    fn unlink_label(&mut self, handle: CK_OBJECT_HANDLE) {
        if let Some(e) = self.by_handle.get(&handle) {
            let label = e.object.label();
            if !label.is_empty() {
                unlink(&mut self.by_label, label, handle);
            }
        }
    }

    /// Candidate entries for a search: the label bucket when the template names a label.
    pub fn candidates(&self, label: Option<&[u8]>) -> Vec<Arc<Entry>> {
        match label {
            Some(l) if !l.is_empty() => self
                .by_label
                .get(&key_hash(l))
                .map(|bucket| {
                    bucket
                        .handles()
                        .iter()
                        .filter_map(|h| self.by_handle.get(h).cloned())
                        .collect()
                })
                .unwrap_or_default(),
            _ => {
                let mut all: Vec<Arc<Entry>> = self.by_handle.values().cloned().collect();
                all.sort_by_key(|e| e.handle);
                all
            }
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.by_handle.values()
    }

    /// Removes every object of a session (session close) and returns their handles.
    pub fn has_session_objects(&self, session: CK_SESSION_HANDLE) -> bool {
        self.by_session.contains_key(&session)
    }

    pub fn remove_session_objects(&mut self, session: CK_SESSION_HANDLE) -> Vec<CK_OBJECT_HANDLE> {
        let handles = self.by_session.remove(&session).unwrap_or_default();
        for h in &handles {
            self.remove(*h);
        }
        handles
    }

    pub fn clear(&mut self) {
        self.by_handle.clear();
        self.by_uid.clear();
        self.by_label.clear();
        self.by_session.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{AttrMap, Object};

    fn obj(uid: &str, label: &[u8]) -> Object {
        let mut a = AttrMap::new();
        a.insert(CKA_CLASS, (CKO_DATA as CK_ULONG).to_ne_bytes());
        a.insert(CKA_LABEL, label);
        Object::from_attrs(uid.into(), a).expect("class")
    }

    #[test]
    fn uid_and_label_lookups_follow_every_change() {
        let mut ix = ObjectIndex::new();
        let a = ix.upsert(obj("u1", b"same"), None).handle;
        let b = ix.upsert(obj("u2", b"same"), None).handle;
        let c = ix.upsert(obj("u3", b""), Some(7)).handle;
        assert_eq!(ix.handle_of("u2"), Some(b));
        assert_eq!(ix.handle_of("nope"), None);
        let mut same: Vec<_> = ix
            .candidates(Some(b"same"))
            .iter()
            .map(|e| e.handle)
            .collect();
        same.sort();
        assert_eq!(same, vec![a, b]);
        // An empty label is not indexed: a search for it sees every object.
        assert_eq!(ix.candidates(Some(b"")).len(), 3);
        // A new version keeps the handle and moves the label.
        assert_eq!(ix.upsert(obj("u1", b"other"), None).handle, a);
        assert_eq!(ix.candidates(Some(b"same")).len(), 1);
        assert_eq!(ix.candidates(Some(b"other"))[0].handle, a);
        // A replacement with a new uid drops the old uid.
        ix.replace(b, obj("u2b", b"same"));
        assert_eq!(ix.handle_of("u2"), None);
        assert_eq!(ix.handle_of("u2b"), Some(b));
        assert_eq!(ix.remove_session_objects(7), vec![c]);
        assert!(ix.remove_uid("u1").is_some());
        assert!(ix.candidates(Some(b"other")).is_empty());
        assert_eq!(ix.len(), 1);
    }
}

//! Sessions: their handle, cluster, R/O or R/W, the instance they are attached to, and
//! the operation state (one active operation per kind, PKCS#11 v2.40 §5.6).

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::mechanism::{CipherOp, VerifyOp};
use crate::secure_mem::SecretBytes;
use cryptoki_sys::*;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The kinds of operation a session can have active at once (one of each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Encrypt,
    Decrypt,
    Digest,
    Sign,
    SignRecover,
    VerifyRecover,
}

/// An active operation and the output computed for a length-query re-call.
pub struct ActiveOp {
    pub op: Box<dyn CipherOp>,
    /// Output computed once and kept until the caller's buffer is large enough
    /// (randomized signatures and decryptions are never computed twice).
    pub cached: Option<SecretBytes>,
    /// Set once C_*Update was called: the single-part call is then not allowed.
    pub multipart: bool,
}

pub struct ActiveVerify {
    pub op: Box<dyn VerifyOp>,
    pub multipart: bool,
}

/// An active C_FindObjects search: the result list and how far the caller read.
pub struct FindCursor {
    pub handles: Vec<CK_OBJECT_HANDLE>,
    pub position: usize,
}

#[derive(Default)]
pub struct Operations {
    pub encrypt: Option<ActiveOp>,
    pub decrypt: Option<ActiveOp>,
    pub digest: Option<ActiveOp>,
    pub sign: Option<ActiveOp>,
    pub sign_recover: Option<ActiveOp>,
    pub verify_recover: Option<ActiveOp>,
    pub verify: Option<ActiveVerify>,
    pub find: Option<FindCursor>,
}

impl Operations {
    pub fn slot(&mut self, kind: OpKind) -> &mut Option<ActiveOp> {
        match kind {
            OpKind::Encrypt => &mut self.encrypt,
            OpKind::Decrypt => &mut self.decrypt,
            OpKind::Digest => &mut self.digest,
            OpKind::Sign => &mut self.sign,
            OpKind::SignRecover => &mut self.sign_recover,
            OpKind::VerifyRecover => &mut self.verify_recover,
        }
    }

    pub fn any_active(&self) -> bool {
        self.encrypt.is_some()
            || self.decrypt.is_some()
            || self.digest.is_some()
            || self.sign.is_some()
            || self.sign_recover.is_some()
            || self.verify_recover.is_some()
            || self.verify.is_some()
            || self.find.is_some()
    }

    /// C_SessionCancel: drops the operations selected by CKF_* flags.
    pub fn cancel(&mut self, flags: CK_FLAGS) {
        if flags & CKF_ENCRYPT != 0 {
            self.encrypt = None;
        }
        if flags & CKF_DECRYPT != 0 {
            self.decrypt = None;
        }
        if flags & CKF_DIGEST != 0 {
            self.digest = None;
        }
        if flags & CKF_SIGN != 0 {
            self.sign = None;
        }
        if flags & CKF_SIGN_RECOVER != 0 {
            self.sign_recover = None;
        }
        if flags & CKF_VERIFY != 0 {
            self.verify = None;
        }
        if flags & CKF_VERIFY_RECOVER != 0 {
            self.verify_recover = None;
        }
        if flags & CKF_FIND_OBJECTS != 0 {
            self.find = None;
        }
    }
}

pub struct Session {
    pub handle: CK_SESSION_HANDLE,
    pub cluster: Arc<Cluster>,
    pub read_write: bool,
    /// The HSM instance this session is attached to (its session objects live there).
    pub hsm: String,
    pub ops: Mutex<Operations>,
    /// Set by a successful CKU_CONTEXT_SPECIFIC login, consumed by the next operation.
    pub context_authenticated: AtomicBool,
    /// The key this session used last (see [`KeyMemo`]).
    pub key_memo: Mutex<Option<KeyMemo>>,
    /// A cache line of padding after the fields threads write (`ops`, `key_memo`), so the
    /// next allocation (often another session, its reference count written by another
    /// thread) cannot share their line. Padding rather than `repr(align(64))`: aligned
    /// allocations take glibc's slow memalign path (a third of open+close).
    _pad: [u8; 64],
}

/// The key a session used last, looked up, checked and routed, kept while its cluster is
/// unchanged (same generation): the next operation with the same key skips the cluster's
/// lock and every reference count shared with other threads, which for short operations
/// on two threads cost more than the operation itself.
pub struct KeyMemo {
    pub handle: CK_OBJECT_HANDLE,
    pub generation: u64,
    pub entry: Arc<crate::object::index::Entry>,
    pub route: crate::cluster::hsm::RoutePlan,
    /// This session's own copy of the key schedule (block ciphers), made on first use.
    pub cipher: Option<Arc<crate::crypto::block::BlockCipher>>,
}

impl Session {
    pub fn new(
        handle: CK_SESSION_HANDLE,
        cluster: Arc<Cluster>,
        read_write: bool,
        hsm: String,
    ) -> Session {
        Session {
            handle,
            cluster,
            read_write,
            hsm,
            ops: Mutex::new(Operations::default()),
            context_authenticated: AtomicBool::new(false),
            key_memo: Mutex::new(None),
            _pad: [0; 64],
        }
    }

    pub fn slot_id(&self) -> CK_SLOT_ID {
        self.cluster.slot_id()
    }

    /// Drops the memo of a key that was a closed session's object.
    pub fn forget_objects_of(&self, closed: CK_SESSION_HANDLE) {
        let mut memo = self.key_memo.lock();
        if memo
            .as_ref()
            .is_some_and(|m| m.entry.session == Some(closed))
        {
            *memo = None;
        }
    }

    /// Drops the memo of a destroyed key at once (its secrets must not outlive it here).
    pub fn forget_key(&self, handle: CK_OBJECT_HANDLE) {
        let mut memo = self.key_memo.lock();
        if memo.as_ref().is_some_and(|m| m.handle == handle) {
            *memo = None;
        }
    }

    /// The session state of PKCS#11 v2.40 §5.6.1 (derived from the application's login).
    pub fn state(&self) -> CK_STATE {
        use crate::cluster::LoginState::*;
        match (self.cluster.login_state(), self.read_write) {
            (Public, false) => CKS_RO_PUBLIC_SESSION,
            (Public, true) => CKS_RW_PUBLIC_SESSION,
            (User(_), false) => CKS_RO_USER_FUNCTIONS,
            (User(_), true) => CKS_RW_USER_FUNCTIONS,
            (SecurityOfficer(_), _) => CKS_RW_SO_FUNCTIONS,
        }
    }

    pub fn require_rw(&self) -> Result<()> {
        if self.read_write {
            Ok(())
        } else {
            Err(Error::SessionReadOnly)
        }
    }

    pub fn take_context_auth(&self) -> bool {
        self.context_authenticated.swap(false, Ordering::AcqRel)
    }
}

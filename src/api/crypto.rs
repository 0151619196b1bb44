//! Cryptographic operations (PKCS#11 v2.40 §5.8–§5.12) with the length convention in one
//! place: a NULL or short buffer gets the size and the operation stays active; an output
//! is computed once and kept for the re-call (randomized signatures are never recomputed).

use super::session;
use crate::cluster::objects::Access;
use crate::error::{Error, Result};
use crate::mechanism::{ops, Mechanism};
use crate::secure_mem::SecretBytes;
use crate::session::{ActiveOp, ActiveVerify, OpKind, Session};
use cryptoki_sys::*;

/// What an output-producing call hands back to the FFI layer.
pub enum Delivery {
    /// Only the length: the buffer was NULL or too small; the operation stays active.
    Length(usize),
    Data(SecretBytes),
}

fn deliver_cached(
    slot: &mut Option<ActiveOp>,
    capacity: Option<usize>,
    finished: bool,
) -> Result<Delivery> {
    let active = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
    let len = active.cached.as_ref().map(SecretBytes::len).unwrap_or(0);
    match capacity {
        Some(cap) if cap >= len => {
            let data = active
                .cached
                .take()
                .unwrap_or_else(|| SecretBytes::new(Vec::new()));
            if finished {
                *slot = None;
            }
            Ok(Delivery::Data(data))
        }
        _ => Ok(Delivery::Length(len)),
    }
}

/// Checks a key may be used for an operation, routes it to an instance and builds the
/// operation with it (`build` gets the entry and the session's own key-schedule slot).
/// Goes through the session's key memo: repeated operations with one key touch nothing
/// shared.
fn with_key<T>(
    s: &Session,
    key: CK_OBJECT_HANDLE,
    opcode: &str,
    mechanism: CK_MECHANISM_TYPE,
    build: impl FnOnce(
        &crate::object::index::Entry,
        &mut Option<std::sync::Arc<crate::crypto::block::BlockCipher>>,
    ) -> Result<T>,
) -> Result<T> {
    let mut memo = s.key_memo.lock();
    let served_by = s
        .cluster
        .use_key_memo(&mut memo, key)
        .map_err(|e| match e {
            Error::ObjectHandleInvalid(h) => Error::KeyHandleInvalid(h),
            other => other,
        })?;
    let m = memo
        .as_mut()
        .ok_or_else(|| Error::GeneralError("key memo missing".into()))?;
    if s.cluster.config.audit_crypto {
        s.cluster
            .audit_operation(opcode, &served_by, s.handle, &m.entry, mechanism)?;
    }
    if m.entry.object.bool_attr(CKA_ALWAYS_AUTHENTICATE) && !s.take_context_auth() {
        // The operation starts, but the spec requires a CKU_CONTEXT_SPECIFIC login first.
        crate::log_debug!("key {key} needs CKU_CONTEXT_SPECIFIC re-authentication");
    }
    build(&m.entry, &mut m.cipher)
}

/// CloudHSM-style audit opcode names for crypto operations.
fn opcode(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Encrypt => "CN_ENCRYPT",
        OpKind::Decrypt => "CN_DECRYPT",
        OpKind::Digest => "CN_DIGEST",
        OpKind::Sign | OpKind::SignRecover => "CN_SIGN",
        OpKind::VerifyRecover => "CN_VERIFY",
    }
}

/// C_EncryptInit / C_DecryptInit / C_DigestInit / C_SignInit / C_SignRecoverInit /
/// C_VerifyRecoverInit.
pub fn op_init(
    h: CK_SESSION_HANDLE,
    kind: OpKind,
    mech: &Mechanism,
    key: Option<CK_OBJECT_HANDLE>,
) -> Result<Option<Vec<u8>>> {
    let (_lib, s) = session(h)?;
    if s.ops.lock().slot(kind).is_some() {
        return Err(Error::OperationActive);
    }
    let profile = s.cluster.profile();
    let op = match key {
        None => ops::new_digest(mech, profile)?,
        Some(k) => with_key(&s, k, opcode(kind), mech.ty, |entry, own_cipher| {
            ops::new_cipher_op(kind, mech, entry, profile, Some(own_cipher))
        })?,
    };
    let generated = op.generated_iv().map(<[u8]>::to_vec);
    let mut guard = s.ops.lock();
    let slot = guard.slot(kind);
    if slot.is_some() {
        return Err(Error::OperationActive);
    }
    *slot = Some(ActiveOp {
        op,
        cached: None,
        multipart: false,
    });
    Ok(generated)
}

/// C_Encrypt, C_Decrypt, C_Digest, C_Sign, C_SignRecover, C_VerifyRecover.
pub fn single(
    h: CK_SESSION_HANDLE,
    kind: OpKind,
    input: &[u8],
    capacity: Option<usize>,
) -> Result<Delivery> {
    let (_lib, s) = session(h)?;
    let mut ops = s.ops.lock();
    let slot = ops.slot(kind);
    let active = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
    if active.multipart {
        return Err(Error::OperationActive);
    }
    if active.cached.is_none() {
        match active.op.one_shot(input) {
            Ok(out) => active.cached = Some(out),
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        }
    }
    deliver_cached(slot, capacity, true)
}

/// C_Encrypt / C_Decrypt with the caller's buffer (`out` None for a length query). When
/// the operation knows its output length up front (block ciphers), the result is written
/// straight into the buffer: no copy through locked memory for ciphertext on its way out.
/// Otherwise as [`single`].
pub fn single_into(
    h: CK_SESSION_HANDLE,
    kind: OpKind,
    input: &[u8],
    out: Option<&mut [u8]>,
) -> Result<Written> {
    let (_lib, s) = session(h)?;
    let mut ops = s.ops.lock();
    let slot = ops.slot(kind);
    let active = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
    if active.multipart {
        return Err(Error::OperationActive);
    }
    if active.cached.is_none() {
        if let Some(needed) = active.op.one_shot_len(input.len()) {
            let out = match out {
                Some(o) if o.len() >= needed => o,
                _ => return Ok(Written::Needed(needed)),
            };
            let written = active.op.one_shot_into(input, &mut out[..needed]);
            *slot = None;
            return written.map(Written::Wrote);
        }
        match active.op.one_shot(input) {
            Ok(v) => active.cached = Some(v),
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        }
    }
    let active = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
    let len = active.cached.as_ref().map_or(0, SecretBytes::len);
    match out {
        Some(o) if o.len() >= len => {
            if let Some(v) = active.cached.take() {
                o[..len].copy_from_slice(v.expose());
            }
            *slot = None;
            Ok(Written::Wrote(len))
        }
        _ => Ok(Written::Needed(len)),
    }
}

/// C_EncryptUpdate / C_DecryptUpdate, written straight into the caller's buffer: `out`
/// is None for a length query. Returns the bytes needed (query or short buffer: the
/// operation stays active) or written.
pub fn update(
    h: CK_SESSION_HANDLE,
    kind: OpKind,
    input: &[u8],
    out: Option<&mut [u8]>,
) -> Result<Written> {
    let (_lib, s) = session(h)?;
    let mut ops = s.ops.lock();
    let slot = ops.slot(kind);
    let active = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
    if !active.op.multipart() {
        *slot = None;
        return Err(Error::FunctionNotSupported(
            "this mechanism has no multi-part form",
        ));
    }
    let needed = active.op.update_len(input.len());
    let out = match out {
        Some(o) if o.len() >= needed => o,
        _ => return Ok(Written::Needed(needed)),
    };
    active.multipart = true;
    match active.op.update_into(input, out) {
        Ok(n) => Ok(Written::Wrote(n)),
        Err(e) => {
            *slot = None;
            Err(e)
        }
    }
}

/// The outcome of a call that writes into the caller's buffer.
pub enum Written {
    /// The buffer was NULL or too small: this many bytes are needed.
    Needed(usize),
    Wrote(usize),
}

/// C_DigestUpdate / C_SignUpdate (no output).
pub fn absorb(h: CK_SESSION_HANDLE, kind: OpKind, input: &[u8]) -> Result<()> {
    let (_lib, s) = session(h)?;
    let mut ops = s.ops.lock();
    let slot = ops.slot(kind);
    let active = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
    if !active.op.multipart() {
        *slot = None;
        return Err(Error::FunctionNotSupported(
            "this mechanism has no multi-part form",
        ));
    }
    active.multipart = true;
    match active.op.update(input) {
        Ok(_) => Ok(()),
        Err(e) => {
            *slot = None;
            Err(e)
        }
    }
}

/// C_EncryptFinal, C_DecryptFinal, C_DigestFinal, C_SignFinal.
pub fn finish(h: CK_SESSION_HANDLE, kind: OpKind, capacity: Option<usize>) -> Result<Delivery> {
    let (_lib, s) = session(h)?;
    let mut ops = s.ops.lock();
    let slot = ops.slot(kind);
    let active = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
    if active.cached.is_none() {
        active.multipart = true;
        match active.op.finish() {
            Ok(out) => active.cached = Some(out),
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        }
    }
    deliver_cached(slot, capacity, true)
}

/// C_DigestKey (§5.10).
pub fn digest_key(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> Result<()> {
    let (_lib, s) = session(h)?;
    if s.cluster.profile() == crate::cluster::Profile::CloudHsm {
        return Err(Error::FunctionNotSupported(
            "C_DigestKey is not offered by CloudHSM SDK 5",
        ));
    }
    let entry = s
        .cluster
        .entry(key, Access::Use)
        .map_err(|_| Error::KeyHandleInvalid(key))?;
    if entry.object.class != CKO_SECRET_KEY {
        return Err(Error::KeyIndigestible);
    }
    let value = entry
        .object
        .secret(CKA_VALUE)
        .ok_or(Error::KeyIndigestible)?;
    let mut ops = s.ops.lock();
    let active = ops.digest.as_mut().ok_or(Error::OperationNotInitialized)?;
    active.multipart = true;
    active.op.digest_key(value.expose())
}

/// C_VerifyInit (§5.12).
pub fn verify_init(h: CK_SESSION_HANDLE, mech: &Mechanism, key: CK_OBJECT_HANDLE) -> Result<()> {
    let (_lib, s) = session(h)?;
    if s.ops.lock().verify.is_some() {
        return Err(Error::OperationActive);
    }
    let profile = s.cluster.profile();
    let op = with_key(&s, key, "CN_VERIFY", mech.ty, |entry, _| {
        ops::new_verify_op(mech, entry, profile)
    })?;
    let mut guard = s.ops.lock();
    if guard.verify.is_some() {
        return Err(Error::OperationActive);
    }
    guard.verify = Some(ActiveVerify {
        op,
        multipart: false,
    });
    Ok(())
}

/// C_Verify (§5.12): the operation ends whatever the outcome.
pub fn verify(h: CK_SESSION_HANDLE, data: &[u8], sig: &[u8]) -> Result<()> {
    let (_lib, s) = session(h)?;
    let mut active = s
        .ops
        .lock()
        .verify
        .take()
        .ok_or(Error::OperationNotInitialized)?;
    if active.multipart {
        return Err(Error::OperationActive);
    }
    active.op.one_shot(data, sig)
}

/// C_VerifyUpdate (§5.12).
pub fn verify_update(h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
    let (_lib, s) = session(h)?;
    let mut ops = s.ops.lock();
    let active = ops.verify.as_mut().ok_or(Error::OperationNotInitialized)?;
    if !active.op.multipart() {
        ops.verify = None;
        return Err(Error::FunctionNotSupported(
            "this mechanism has no multi-part form",
        ));
    }
    active.multipart = true;
    let r = active.op.update(data);
    if r.is_err() {
        ops.verify = None;
    }
    r
}

/// C_VerifyFinal (§5.12).
pub fn verify_final(h: CK_SESSION_HANDLE, sig: &[u8]) -> Result<()> {
    let (_lib, s) = session(h)?;
    let mut active = s
        .ops
        .lock()
        .verify
        .take()
        .ok_or(Error::OperationNotInitialized)?;
    active.op.finish(sig)
}

/// Ends the active operation of `kind` (None: verification) after a failed call.
pub fn terminate(h: CK_SESSION_HANDLE, kind: Option<OpKind>) {
    if let Ok((_lib, s)) = session(h) {
        let mut ops = s.ops.lock();
        match kind {
            Some(k) => *ops.slot(k) = None,
            None => ops.verify = None,
        }
    }
}

//! Session management (PKCS#11 v2.40 §5.6): open/close, info, login state machine,
//! C_LoginUser and C_SessionCancel (3.0 §5.6).

use super::{library, session};
use crate::cluster::users::Role;
use crate::cluster::{LoginState, Profile};
use crate::error::{Error, Result};
use crate::session::Session;
use cryptoki_sys::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// C_OpenSession (§5.6).
pub fn open_session(slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
    let lib = library()?;
    if flags & CKF_SERIAL_SESSION == 0 {
        return Err(Error::SessionParallelNotSupported);
    }
    let cluster = match lib.cluster(slot) {
        Ok(c) => c,
        Err(Error::SlotIdInvalid(_)) if lib.free_slot()? == Some(slot) => {
            return Err(Error::TokenNotRecognized(
                "the free slot's token is not initialized: run C_InitToken".into(),
            ))
        }
        Err(e) => return Err(e),
    };
    cluster.refresh()?;
    let read_write = flags & CKF_RW_SESSION != 0;
    let profile = cluster.profile();
    if profile == Profile::CloudHsm && !read_write {
        // CloudHSM SDK 5 has no read-only sessions.
        return Err(Error::FunctionFailed(
            "CloudHSM does not support read-only sessions".into(),
        ));
    }
    if !read_write && matches!(cluster.login_state(), LoginState::SecurityOfficer(_)) {
        return Err(Error::SessionReadWriteSoExists);
    }
    if profile == Profile::CloudHsm && lib.sessions_of(slot).len() >= 1024 {
        return Err(Error::SessionCount);
    }
    let hsm = cluster.route_any()?;
    let handle = lib.next_session_handle();
    cluster.open_sessions.fetch_add(1, Ordering::AcqRel);
    let s = Arc::new(Session::new(handle, cluster, read_write, hsm));
    lib.sessions.insert(s);
    Ok(handle)
}

fn close(lib: &super::Library, s: &Session) {
    let slot = s.slot_id();
    if s.cluster.drop_session_objects(s.handle) {
        // Other sessions may have used this session's objects: none keeps them in its memo.
        lib.sessions.for_each(|other| {
            if other.slot_id() == slot {
                other.forget_objects_of(s.handle);
            }
        });
    }
    if s.cluster.open_sessions.fetch_sub(1, Ordering::AcqRel) == 1 {
        // The last session of the application on this token: logout (§5.6).
        s.cluster.logout();
    }
}

/// C_CloseSession (§5.6).
pub fn close_session(handle: CK_SESSION_HANDLE) -> Result<()> {
    let lib = library()?;
    let s = lib
        .sessions
        .remove(handle)
        .ok_or(Error::SessionHandleInvalid(handle))?;
    close(&lib, &s);
    Ok(())
}

/// C_CloseAllSessions (§5.6).
pub fn close_all_sessions(slot: CK_SLOT_ID) -> Result<()> {
    let lib = library()?;
    let known = lib.slot_ids()?;
    if !known.contains(&slot) {
        return Err(Error::SlotIdInvalid(slot));
    }
    let closing: Vec<Arc<Session>> = lib.sessions.remove_where(|s| s.slot_id() == slot);
    for s in &closing {
        close(&lib, s);
    }
    if let Ok(c) = lib.cluster(slot) {
        c.logout();
    }
    Ok(())
}

pub struct SessionInfo {
    pub slot: CK_SLOT_ID,
    pub state: CK_STATE,
    pub flags: CK_FLAGS,
}

/// C_GetSessionInfo (§5.6).
pub fn session_info(handle: CK_SESSION_HANDLE) -> Result<SessionInfo> {
    let (_lib, s) = session(handle)?;
    let mut flags = CKF_SERIAL_SESSION;
    if s.read_write {
        flags |= CKF_RW_SESSION;
    }
    Ok(SessionInfo {
        slot: s.slot_id(),
        state: s.state(),
        flags,
    })
}

/// C_Login (§5.6) with the spec's state machine.
pub fn login(handle: CK_SESSION_HANDLE, user_type: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
    let (lib, s) = session(handle)?;
    let c = &s.cluster;
    let state = c.login_state();
    let role = match user_type {
        CKU_SO => Role::CryptoOfficer,
        CKU_USER => Role::CryptoUser,
        CKU_CONTEXT_SPECIFIC => {
            if state == LoginState::Public {
                return Err(Error::UserNotLoggedIn);
            }
            c.reauthenticate(pin)?;
            s.context_authenticated
                .store(true, std::sync::atomic::Ordering::Release);
            return Ok(());
        }
        _ => return Err(Error::UserTypeInvalid),
    };
    match (&state, role) {
        (LoginState::User(_), Role::CryptoUser)
        | (LoginState::SecurityOfficer(_), Role::CryptoOfficer) => {
            return Err(Error::UserAlreadyLoggedIn)
        }
        (LoginState::User(_), Role::CryptoOfficer)
        | (LoginState::SecurityOfficer(_), Role::CryptoUser) => {
            return Err(Error::UserAnotherAlreadyLoggedIn)
        }
        (LoginState::Public, _) => {}
    }
    if role == Role::CryptoOfficer && lib.sessions_of(s.slot_id()).iter().any(|x| !x.read_write) {
        return Err(Error::SessionReadOnlyExists);
    }
    if pin.is_empty() || pin.contains(&0) {
        return Err(Error::PinIncorrect);
    }
    c.login(role, pin)
}

/// C_LoginUser (3.0 §5.6): the user name given apart from the PIN.
pub fn login_user(
    handle: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    pin: &[u8],
    user: &[u8],
) -> Result<()> {
    if user.is_empty() {
        return login(handle, user_type, pin);
    }
    let mut joined = crate::secure_mem::SecretBytes::zeroed(user.len() + 1 + pin.len());
    let buf = joined.expose_mut();
    buf[..user.len()].copy_from_slice(user);
    buf[user.len()] = b':';
    buf[user.len() + 1..].copy_from_slice(pin);
    login(handle, user_type, joined.expose())
}

/// C_Logout (§5.6).
pub fn logout(handle: CK_SESSION_HANDLE) -> Result<()> {
    let (lib, s) = session(handle)?;
    if s.cluster.login_state() == LoginState::Public {
        return Err(Error::UserNotLoggedIn);
    }
    s.cluster.logout();
    // Operations of every session of this token that used private objects end with the login.
    for other in lib.sessions_of(s.slot_id()) {
        *other.ops.lock() = Default::default();
    }
    Ok(())
}

/// C_SessionCancel (3.0 §5.6).
pub fn session_cancel(handle: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
    let (_lib, s) = session(handle)?;
    s.ops.lock().cancel(flags);
    Ok(())
}

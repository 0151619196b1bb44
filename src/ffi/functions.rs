//! Every PKCS#11 entry point: guard → marshal → api. Doc comments name the spec section.

use super::marshal::*;
use super::params::read_mechanism;
use super::{guard, reset_failed};
use crate::api::crypto::Delivery;
use crate::api::{self, general::InitArgs};
use crate::error::Error;
use crate::session::OpKind;
use cryptoki_sys::*;

/// Writes a Delivery with the length convention: a length answer for a NULL or short
/// buffer (the operation stays active), the data otherwise.
unsafe fn deliver(d: Delivery, buf: *mut u8, len_ptr: *mut CK_ULONG) -> crate::error::Result<()> {
    // SAFETY: forwarded caller guarantee on buf/len_ptr.
    let len = unsafe { out_ref(len_ptr) }?;
    match d {
        Delivery::Length(n) => {
            let short = !buf.is_null();
            *len = to_ulong(n);
            if short {
                Err(Error::BufferTooSmall)
            } else {
                Ok(())
            }
        }
        Delivery::Data(data) => {
            // SAFETY: as above; capacity was checked by the api against *len.
            unsafe { write_output(buf, len_ptr, data.expose()) }
        }
    }
}

/// §5.8–§5.12: a failed call ends the active operation, except a length answer
/// (CKR_BUFFER_TOO_SMALL) — also when the arguments were refused before the operation was
/// reached.
fn ends_on_error(
    h: CK_SESSION_HANDLE,
    kind: Option<OpKind>,
    f: impl FnOnce() -> crate::error::Result<()>,
) -> crate::error::Result<()> {
    let r = f();
    if matches!(&r, Err(e) if !matches!(e, Error::BufferTooSmall)) {
        api::crypto::terminate(h, kind);
    }
    r
}

// ---- general (§5.4) ---------------------------------------------------------------------

/// C_Initialize (§5.4).
#[no_mangle]
pub unsafe extern "C" fn C_Initialize(p_init_args: CK_VOID_PTR) -> CK_RV {
    guard("C_Initialize", || {
        // SAFETY: NULL or a CK_C_INITIALIZE_ARGS per the spec.
        let args =
            unsafe { (p_init_args as *const CK_C_INITIALIZE_ARGS).as_ref() }.map(|a| InitArgs {
                mutex_fns_given: [
                    a.CreateMutex.is_some(),
                    a.DestroyMutex.is_some(),
                    a.LockMutex.is_some(),
                    a.UnlockMutex.is_some(),
                ]
                .iter()
                .filter(|x| **x)
                .count(),
                os_locking_ok: a.flags & CKF_OS_LOCKING_OK != 0,
                reserved_non_null: !a.pReserved.is_null(),
            });
        api::general::initialize(args)
    })
}

/// C_Finalize (§5.4).
#[no_mangle]
pub unsafe extern "C" fn C_Finalize(p_reserved: CK_VOID_PTR) -> CK_RV {
    let rv = guard("C_Finalize", || {
        api::general::finalize(!p_reserved.is_null())
    });
    if rv == CKR_OK {
        reset_failed();
    }
    rv
}

fn fill_info(info: &mut CK_INFO, major: u8, minor: u8) {
    info.cryptokiVersion = CK_VERSION { major, minor };
    pad_into(&mut info.manufacturerID, api::general::MANUFACTURER);
    info.flags = 0;
    pad_into(
        &mut info.libraryDescription,
        api::general::LIBRARY_DESCRIPTION,
    );
    info.libraryVersion = crate::library_version();
}

/// C_GetInfo (§5.4) for the 2.40 function list.
#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(p_info: CK_INFO_PTR) -> CK_RV {
    guard("C_GetInfo", || {
        api::general::get_info()?;
        // SAFETY: NULL or a writable CK_INFO.
        fill_info(unsafe { out_ref(p_info) }?, 2, 40);
        Ok(())
    })
}

/// C_GetInfo for the 3.0 interface: reports 3.0.
pub unsafe extern "C" fn C_GetInfo_v3(p_info: CK_INFO_PTR) -> CK_RV {
    guard("C_GetInfo", || {
        api::general::get_info()?;
        // SAFETY: NULL or a writable CK_INFO.
        fill_info(unsafe { out_ref(p_info) }?, 3, 0);
        Ok(())
    })
}

// ---- slots and tokens (§5.5) -----------------------------------------------------------

/// C_GetSlotList (§5.5).
#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    token_present: CK_BBOOL,
    p_slot_list: CK_SLOT_ID_PTR,
    pul_count: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_GetSlotList", || {
        let slots = api::slot_token::slot_list(token_present != CK_FALSE)?;
        // SAFETY: count and array per the length convention (caller guarantee).
        unsafe { write_array(&slots, p_slot_list, pul_count) }
    })
}

/// C_GetSlotInfo (§5.5).
#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, p_info: CK_SLOT_INFO_PTR) -> CK_RV {
    guard("C_GetSlotInfo", || {
        // SAFETY: NULL or a writable CK_SLOT_INFO.
        let info = unsafe { out_ref(p_info) }?;
        let si = api::slot_token::slot_info(slot)?;
        pad_into(&mut info.slotDescription, &si.description);
        pad_into(&mut info.manufacturerID, api::general::MANUFACTURER);
        info.flags = if si.token_present {
            CKF_TOKEN_PRESENT
        } else {
            0
        };
        info.hardwareVersion = CK_VERSION { major: 1, minor: 0 };
        info.firmwareVersion = crate::library_version();
        Ok(())
    })
}

/// C_GetTokenInfo (§5.5).
#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, p_info: CK_TOKEN_INFO_PTR) -> CK_RV {
    guard("C_GetTokenInfo", || {
        // SAFETY: NULL or a writable CK_TOKEN_INFO.
        let info = unsafe { out_ref(p_info) }?;
        let t = api::slot_token::token_info(slot)?;
        pad_into(&mut info.label, &t.label);
        pad_into(&mut info.manufacturerID, api::general::MANUFACTURER);
        pad_into(&mut info.model, &t.model);
        pad_into(&mut info.serialNumber, &t.serial);
        info.flags = t.flags;
        info.ulMaxSessionCount = t.max_sessions;
        info.ulSessionCount = to_ulong(t.session_count);
        info.ulMaxRwSessionCount = t.max_sessions;
        info.ulRwSessionCount = to_ulong(t.rw_session_count);
        info.ulMaxPinLen = t.max_pin;
        info.ulMinPinLen = t.min_pin;
        info.ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
        info.ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
        info.ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
        info.ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
        info.hardwareVersion = CK_VERSION { major: 1, minor: 0 };
        info.firmwareVersion = crate::library_version();
        info.utcTime.fill(b'0');
        let now = crate::cluster::audit::now_utc();
        // "YYYYMMDDhhmmss00" from "YYYY-MM-DDThh:mm:ss.uuuuuuZ".
        let digits: Vec<u8> = now.bytes().filter(u8::is_ascii_digit).take(14).collect();
        info.utcTime[..digits.len()].copy_from_slice(&digits);
        if !t.initialized {
            info.flags &= !CKF_TOKEN_INITIALIZED;
        }
        Ok(())
    })
}

/// C_WaitForSlotEvent (§5.5): slots never change hands here; no event is ever pending.
#[no_mangle]
pub unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    p_slot: CK_SLOT_ID_PTR,
    p_reserved: CK_VOID_PTR,
) -> CK_RV {
    guard("C_WaitForSlotEvent", || {
        api::library()?;
        if p_slot.is_null() {
            return Err(Error::ArgumentsBad("NULL pSlot"));
        }
        if !p_reserved.is_null() {
            return Err(Error::ArgumentsBad("pReserved must be NULL"));
        }
        if flags & CKF_DONT_BLOCK != 0 {
            return Err(Error::NoEvent);
        }
        Err(Error::FunctionNotSupported("C_WaitForSlotEvent"))
    })
}

/// C_GetMechanismList (§5.5).
#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    p_list: CK_MECHANISM_TYPE_PTR,
    pul_count: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_GetMechanismList", || {
        let list = api::slot_token::mechanism_list(slot)?;
        // SAFETY: count and array per the length convention (caller guarantee).
        unsafe { write_array(&list, p_list, pul_count) }
    })
}

/// C_GetMechanismInfo (§5.5).
#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    mech: CK_MECHANISM_TYPE,
    p_info: CK_MECHANISM_INFO_PTR,
) -> CK_RV {
    guard("C_GetMechanismInfo", || {
        // SAFETY: NULL or a writable CK_MECHANISM_INFO.
        let info = unsafe { out_ref(p_info) }?;
        *info = api::slot_token::mechanism_info(slot, mech)?;
        Ok(())
    })
}

/// C_InitToken (§5.5).
#[no_mangle]
pub unsafe extern "C" fn C_InitToken(
    slot: CK_SLOT_ID,
    p_pin: CK_UTF8CHAR_PTR,
    ul_pin_len: CK_ULONG,
    p_label: CK_UTF8CHAR_PTR,
) -> CK_RV {
    guard("C_InitToken", || {
        // SAFETY: pin valid for its length; the label is 32 bytes per the spec.
        let pin = unsafe { in_bytes(p_pin, ul_pin_len) }?;
        if p_label.is_null() {
            return Err(Error::ArgumentsBad("NULL label"));
        }
        // SAFETY: the spec fixes the label at 32 bytes.
        let label = unsafe { std::slice::from_raw_parts(p_label, 32) };
        api::slot_token::init_token(slot, pin, label)
    })
}

/// C_InitPIN (§5.5).
#[no_mangle]
pub unsafe extern "C" fn C_InitPIN(
    h: CK_SESSION_HANDLE,
    p_pin: CK_UTF8CHAR_PTR,
    ul_pin_len: CK_ULONG,
) -> CK_RV {
    guard("C_InitPIN", || {
        // SAFETY: pin valid for its length.
        let pin = unsafe { in_bytes(p_pin, ul_pin_len) }?;
        api::slot_token::init_pin(h, pin)
    })
}

/// C_SetPIN (§5.5).
#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    h: CK_SESSION_HANDLE,
    p_old: CK_UTF8CHAR_PTR,
    ul_old: CK_ULONG,
    p_new: CK_UTF8CHAR_PTR,
    ul_new: CK_ULONG,
) -> CK_RV {
    guard("C_SetPIN", || {
        // SAFETY: both PINs valid for their lengths.
        let (old, new) = unsafe { (in_bytes(p_old, ul_old)?, in_bytes(p_new, ul_new)?) };
        api::slot_token::set_pin(h, old, new)
    })
}

// ---- sessions (§5.6) ---------------------------------------------------------------------

/// C_OpenSession (§5.6). Notification callbacks are accepted and never called.
#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _p_application: CK_VOID_PTR,
    _notify: CK_NOTIFY,
    ph_session: CK_SESSION_HANDLE_PTR,
) -> CK_RV {
    guard("C_OpenSession", || {
        // SAFETY: NULL or a writable handle.
        let out = unsafe { out_ref(ph_session) }?;
        *out = api::session::open_session(slot, flags)?;
        Ok(())
    })
}

/// C_CloseSession (§5.6).
#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(h: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_CloseSession", || api::session::close_session(h))
}

/// C_CloseAllSessions (§5.6).
#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard("C_CloseAllSessions", || {
        api::session::close_all_sessions(slot)
    })
}

/// C_GetSessionInfo (§5.6).
#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(
    h: CK_SESSION_HANDLE,
    p_info: CK_SESSION_INFO_PTR,
) -> CK_RV {
    guard("C_GetSessionInfo", || {
        // SAFETY: NULL or a writable CK_SESSION_INFO.
        let info = unsafe { out_ref(p_info) }?;
        let si = api::session::session_info(h)?;
        info.slotID = si.slot;
        info.state = si.state;
        info.flags = si.flags;
        info.ulDeviceError = 0;
        Ok(())
    })
}

/// C_SessionCancel (3.0 §5.6).
pub unsafe extern "C" fn C_SessionCancel(h: CK_SESSION_HANDLE, flags: CK_FLAGS) -> CK_RV {
    guard("C_SessionCancel", || api::session::session_cancel(h, flags))
}

/// C_GetOperationState (§5.6): operation state is not exported (it would carry key
/// schedules out of the token).
#[no_mangle]
pub unsafe extern "C" fn C_GetOperationState(
    h: CK_SESSION_HANDLE,
    _p: CK_BYTE_PTR,
    _l: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_GetOperationState", || {
        api::session(h)?;
        Err(Error::FunctionNotSupported("C_GetOperationState"))
    })
}

/// C_SetOperationState (§5.6).
#[no_mangle]
pub unsafe extern "C" fn C_SetOperationState(
    h: CK_SESSION_HANDLE,
    _p: CK_BYTE_PTR,
    _l: CK_ULONG,
    _e: CK_OBJECT_HANDLE,
    _a: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_SetOperationState", || {
        api::session(h)?;
        Err(Error::FunctionNotSupported("C_SetOperationState"))
    })
}

/// C_Login (§5.6).
#[no_mangle]
pub unsafe extern "C" fn C_Login(
    h: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    p_pin: CK_UTF8CHAR_PTR,
    ul_pin_len: CK_ULONG,
) -> CK_RV {
    guard("C_Login", || {
        // SAFETY: pin valid for its length.
        let pin = unsafe { in_bytes(p_pin, ul_pin_len) }?;
        api::session::login(h, user_type, pin)
    })
}

/// C_LoginUser (3.0 §5.6).
pub unsafe extern "C" fn C_LoginUser(
    h: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    p_pin: CK_UTF8CHAR_PTR,
    ul_pin_len: CK_ULONG,
    p_username: CK_UTF8CHAR_PTR,
    ul_username_len: CK_ULONG,
) -> CK_RV {
    guard("C_LoginUser", || {
        // SAFETY: pin and username valid for their lengths.
        let (pin, user) = unsafe {
            (
                in_bytes(p_pin, ul_pin_len)?,
                in_bytes(p_username, ul_username_len)?,
            )
        };
        api::session::login_user(h, user_type, pin, user)
    })
}

/// C_Logout (§5.6).
#[no_mangle]
pub unsafe extern "C" fn C_Logout(h: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_Logout", || api::session::logout(h))
}

// ---- objects (§5.7) ----------------------------------------------------------------------

/// C_CreateObject (§5.7).
#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    h: CK_SESSION_HANDLE,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
    ph_object: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_CreateObject", || {
        // SAFETY: template valid for ul_count attributes; handle writable.
        let (mut t, out) = unsafe { (read_template(p_template, ul_count)?, out_ref(ph_object)?) };
        let r = api::object::create_object(h, &t);
        wipe_template(&mut t);
        *out = r?;
        Ok(())
    })
}

/// C_CopyObject (§5.7).
#[no_mangle]
pub unsafe extern "C" fn C_CopyObject(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
    ph_new: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_CopyObject", || {
        // SAFETY: template valid for ul_count attributes; handle writable.
        let (t, out) = unsafe { (read_template(p_template, ul_count)?, out_ref(ph_new)?) };
        *out = api::object::copy_object(h, object, &t)?;
        Ok(())
    })
}

/// C_DestroyObject (§5.7).
#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> CK_RV {
    guard("C_DestroyObject", || api::object::destroy_object(h, object))
}

/// C_GetObjectSize (§5.7).
#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    pul_size: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_GetObjectSize", || {
        // SAFETY: NULL or a writable CK_ULONG.
        let out = unsafe { out_ref(pul_size) }?;
        *out = to_ulong(api::object::object_size(h, object)?);
        Ok(())
    })
}

/// C_GetAttributeValue (§5.7): every attribute is processed; failed entries get
/// CK_UNAVAILABLE_INFORMATION and the call returns the matching error.
#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
) -> CK_RV {
    guard("C_GetAttributeValue", || {
        let count = to_usize(ul_count)?;
        if count > 0 && p_template.is_null() {
            return Err(Error::ArgumentsBad("NULL template"));
        }
        let attrs: &mut [CK_ATTRIBUTE] = if count == 0 {
            &mut []
        } else {
            // SAFETY: non-NULL and valid for `count` attributes (caller guarantee).
            unsafe { std::slice::from_raw_parts_mut(p_template, count) }
        };
        let types: Vec<CK_ATTRIBUTE_TYPE> = attrs.iter().map(|a| a.type_).collect();
        let answers = api::object::get_attributes(h, object, &types)?;
        let mut result = Ok(());
        for (a, answer) in attrs.iter_mut().zip(answers) {
            use api::object::AttrAnswer;
            match answer {
                AttrAnswer::Sensitive => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(Error::AttributeSensitive(a.type_));
                }
                AttrAnswer::Invalid => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    if !matches!(result, Err(Error::AttributeSensitive(_))) {
                        result = Err(Error::AttributeTypeInvalid(a.type_));
                    }
                }
                AttrAnswer::Value(v) => {
                    // SAFETY: pValue valid for ulValueLen bytes when non-NULL (caller guarantee).
                    let written = unsafe { write_attribute(a, &v) };
                    if written.is_err() && result.is_ok() {
                        result = Err(Error::BufferTooSmall);
                    }
                }
            }
        }
        result
    })
}

/// Writes one attribute value; nested attribute arrays are expanded into the caller's
/// CK_ATTRIBUTE array.
unsafe fn write_attribute(a: &mut CK_ATTRIBUTE, value: &[u8]) -> crate::error::Result<()> {
    if matches!(
        a.type_,
        CKA_WRAP_TEMPLATE | CKA_UNWRAP_TEMPLATE | CKA_DERIVE_TEMPLATE
    ) {
        let nested = crate::store::record::decode(value).unwrap_or_default();
        let needed = to_ulong(nested.len() * std::mem::size_of::<CK_ATTRIBUTE>());
        if a.pValue.is_null() {
            a.ulValueLen = needed;
            return Ok(());
        }
        if a.ulValueLen < needed {
            a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
            return Err(Error::BufferTooSmall);
        }
        // SAFETY: the caller's array holds at least nested.len() attributes.
        let inner =
            unsafe { std::slice::from_raw_parts_mut(a.pValue as *mut CK_ATTRIBUTE, nested.len()) };
        let mut r = Ok(());
        for (slot, (ty, v)) in inner.iter_mut().zip(nested) {
            slot.type_ = ty;
            // SAFETY: nested entries follow the same rules as top-level ones.
            if unsafe { write_attribute(slot, &v) }.is_err() {
                r = Err(Error::BufferTooSmall);
            }
        }
        a.ulValueLen = needed;
        return r;
    }
    let needed = to_ulong(value.len());
    if a.pValue.is_null() {
        a.ulValueLen = needed;
        return Ok(());
    }
    if a.ulValueLen < needed {
        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
        return Err(Error::BufferTooSmall);
    }
    // SAFETY: pValue is valid for ulValueLen >= value.len() bytes.
    unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), a.pValue as *mut u8, value.len()) };
    a.ulValueLen = needed;
    Ok(())
}

/// C_SetAttributeValue (§5.7).
#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
) -> CK_RV {
    guard("C_SetAttributeValue", || {
        // SAFETY: template valid for ul_count attributes.
        let t = unsafe { read_template(p_template, ul_count) }?;
        api::object::set_attributes(h, object, &t)
    })
}

/// C_FindObjectsInit (§5.7).
#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    h: CK_SESSION_HANDLE,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
) -> CK_RV {
    guard("C_FindObjectsInit", || {
        // SAFETY: template valid for ul_count attributes.
        let t = unsafe { read_template(p_template, ul_count) }?;
        api::object::find_init(h, &t)
    })
}

/// C_FindObjects (§5.7).
#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    h: CK_SESSION_HANDLE,
    ph_object: CK_OBJECT_HANDLE_PTR,
    ul_max: CK_ULONG,
    pul_count: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_FindObjects", || {
        // SAFETY: NULL or a writable CK_ULONG.
        let count = unsafe { out_ref(pul_count) }?;
        if ph_object.is_null() && ul_max > 0 {
            return Err(Error::ArgumentsBad("NULL handle array"));
        }
        let max = usize::try_from(ul_max).unwrap_or(usize::MAX);
        let found = api::object::find_next(h, max)?;
        if !found.is_empty() {
            // SAFETY: the caller's array holds ul_max >= found.len() handles.
            unsafe { std::ptr::copy_nonoverlapping(found.as_ptr(), ph_object, found.len()) };
        }
        *count = to_ulong(found.len());
        Ok(())
    })
}

/// C_FindObjectsFinal (§5.7).
#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_FindObjectsFinal", || api::object::find_final(h))
}

// ---- cryptographic operations (§5.8–§5.13) -----------------------------------------------

macro_rules! op_init_fn {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(h: CK_SESSION_HANDLE, p_mech: CK_MECHANISM_PTR, key: CK_OBJECT_HANDLE) -> CK_RV {
            guard(stringify!($name), || {
                // SAFETY: NULL or a valid CK_MECHANISM.
                let m = unsafe { read_mechanism(p_mech) }?;
                if let Some(iv) = api::crypto::op_init(h, $kind, &m, Some(key))? {
                    // SAFETY: p_mech was read successfully above; its GCM parameter is
                    // valid as the spec requires.
                    unsafe { super::params::write_back_gcm_iv(p_mech, &iv) }?;
                }
                Ok(())
            })
        }
    };
}

macro_rules! op_single_fn {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(h: CK_SESSION_HANDLE, p_in: CK_BYTE_PTR, ul_in: CK_ULONG, p_out: CK_BYTE_PTR, pul_out: CK_ULONG_PTR) -> CK_RV {
            guard(stringify!($name), || ends_on_error(h, Some($kind), || {
                // SAFETY: input valid for its length; output per the length convention.
                unsafe {
                    let input = in_bytes(p_in, ul_in)?;
                    let cap = out_capacity(p_out, pul_out)?;
                    let d = api::crypto::single(h, $kind, input, cap)?;
                    deliver(d, p_out, pul_out)
                }
            }))
        }
    };
}

/// Writes a `Written` answer: the count, and CKR_BUFFER_TOO_SMALL for a short buffer.
fn written(w: api::crypto::Written, len: &mut CK_ULONG, query: bool) -> crate::error::Result<()> {
    match w {
        api::crypto::Written::Wrote(n) => {
            *len = to_ulong(n);
            Ok(())
        }
        api::crypto::Written::Needed(n) => {
            *len = to_ulong(n);
            if query {
                Ok(())
            } else {
                Err(Error::BufferTooSmall)
            }
        }
    }
}

macro_rules! op_into_fn {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $api:path) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(h: CK_SESSION_HANDLE, p_in: CK_BYTE_PTR, ul_in: CK_ULONG, p_out: CK_BYTE_PTR, pul_out: CK_ULONG_PTR) -> CK_RV {
            guard(stringify!($name), || ends_on_error(h, Some($kind), || {
                // SAFETY: input valid for its length; output per the length convention.
                unsafe {
                    let (input, out) = in_and_out(p_in, ul_in, p_out, pul_out)?;
                    let w = $api(h, $kind, &input, out)?;
                    written(w, out_ref(pul_out)?, p_out.is_null())
                }
            }))
        }
    };
}

macro_rules! op_absorb_fn {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(h: CK_SESSION_HANDLE, p_in: CK_BYTE_PTR, ul_in: CK_ULONG) -> CK_RV {
            guard(stringify!($name), || ends_on_error(h, Some($kind), || {
                // SAFETY: input valid for its length.
                let input = unsafe { in_bytes(p_in, ul_in) }?;
                api::crypto::absorb(h, $kind, input)
            }))
        }
    };
}

macro_rules! op_final_fn {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(h: CK_SESSION_HANDLE, p_out: CK_BYTE_PTR, pul_out: CK_ULONG_PTR) -> CK_RV {
            guard(stringify!($name), || ends_on_error(h, Some($kind), || {
                // SAFETY: output per the length convention.
                unsafe {
                    let cap = out_capacity(p_out, pul_out)?;
                    let d = api::crypto::finish(h, $kind, cap)?;
                    deliver(d, p_out, pul_out)
                }
            }))
        }
    };
}

op_init_fn!(/// C_EncryptInit (§5.8).
    C_EncryptInit, OpKind::Encrypt);
op_into_fn!(/// C_Encrypt (§5.8).
    C_Encrypt, OpKind::Encrypt, api::crypto::single_into);
op_into_fn!(/// C_EncryptUpdate (§5.8).
    C_EncryptUpdate, OpKind::Encrypt, api::crypto::update);
op_final_fn!(/// C_EncryptFinal (§5.8).
    C_EncryptFinal, OpKind::Encrypt);
op_init_fn!(/// C_DecryptInit (§5.9).
    C_DecryptInit, OpKind::Decrypt);
op_into_fn!(/// C_Decrypt (§5.9).
    C_Decrypt, OpKind::Decrypt, api::crypto::single_into);
op_into_fn!(/// C_DecryptUpdate (§5.9).
    C_DecryptUpdate, OpKind::Decrypt, api::crypto::update);
op_final_fn!(/// C_DecryptFinal (§5.9).
    C_DecryptFinal, OpKind::Decrypt);
op_single_fn!(/// C_Digest (§5.10).
    C_Digest, OpKind::Digest);
op_absorb_fn!(/// C_DigestUpdate (§5.10).
    C_DigestUpdate, OpKind::Digest);
op_final_fn!(/// C_DigestFinal (§5.10).
    C_DigestFinal, OpKind::Digest);
op_init_fn!(/// C_SignInit (§5.11).
    C_SignInit, OpKind::Sign);
op_single_fn!(/// C_Sign (§5.11).
    C_Sign, OpKind::Sign);
op_absorb_fn!(/// C_SignUpdate (§5.11).
    C_SignUpdate, OpKind::Sign);
op_final_fn!(/// C_SignFinal (§5.11).
    C_SignFinal, OpKind::Sign);
op_init_fn!(/// C_SignRecoverInit (§5.11).
    C_SignRecoverInit, OpKind::SignRecover);
op_single_fn!(/// C_SignRecover (§5.11).
    C_SignRecover, OpKind::SignRecover);
op_init_fn!(/// C_VerifyRecoverInit (§5.12).
    C_VerifyRecoverInit, OpKind::VerifyRecover);
op_single_fn!(/// C_VerifyRecover (§5.12).
    C_VerifyRecover, OpKind::VerifyRecover);

/// C_DigestInit (§5.10).
#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(h: CK_SESSION_HANDLE, p_mech: CK_MECHANISM_PTR) -> CK_RV {
    guard("C_DigestInit", || {
        // SAFETY: NULL or a valid CK_MECHANISM.
        let m = unsafe { read_mechanism(p_mech) }?;
        api::crypto::op_init(h, OpKind::Digest, &m, None).map(|_| ())
    })
}

/// C_DigestKey (§5.10).
#[no_mangle]
pub unsafe extern "C" fn C_DigestKey(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    guard("C_DigestKey", || api::crypto::digest_key(h, key))
}

/// C_VerifyInit (§5.12).
#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    h: CK_SESSION_HANDLE,
    p_mech: CK_MECHANISM_PTR,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_VerifyInit", || {
        // SAFETY: NULL or a valid CK_MECHANISM.
        let m = unsafe { read_mechanism(p_mech) }?;
        api::crypto::verify_init(h, &m, key)
    })
}

/// C_Verify (§5.12).
#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    h: CK_SESSION_HANDLE,
    p_data: CK_BYTE_PTR,
    ul_data: CK_ULONG,
    p_sig: CK_BYTE_PTR,
    ul_sig: CK_ULONG,
) -> CK_RV {
    guard("C_Verify", || {
        ends_on_error(h, None, || {
            // SAFETY: both buffers valid for their lengths.
            let (data, sig) = unsafe { (in_bytes(p_data, ul_data)?, in_bytes(p_sig, ul_sig)?) };
            api::crypto::verify(h, data, sig)
        })
    })
}

/// C_VerifyUpdate (§5.12).
#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    h: CK_SESSION_HANDLE,
    p_data: CK_BYTE_PTR,
    ul_data: CK_ULONG,
) -> CK_RV {
    guard("C_VerifyUpdate", || {
        ends_on_error(h, None, || {
            // SAFETY: valid for its length.
            let data = unsafe { in_bytes(p_data, ul_data) }?;
            api::crypto::verify_update(h, data)
        })
    })
}

/// C_VerifyFinal (§5.12).
#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    h: CK_SESSION_HANDLE,
    p_sig: CK_BYTE_PTR,
    ul_sig: CK_ULONG,
) -> CK_RV {
    guard("C_VerifyFinal", || {
        ends_on_error(h, None, || {
            // SAFETY: valid for its length.
            let sig = unsafe { in_bytes(p_sig, ul_sig) }?;
            api::crypto::verify_final(h, sig)
        })
    })
}

macro_rules! dual_fn {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(h: CK_SESSION_HANDLE, _p_in: CK_BYTE_PTR, _ul_in: CK_ULONG, _p_out: CK_BYTE_PTR, _pul_out: CK_ULONG_PTR) -> CK_RV {
            guard(stringify!($name), || {
                api::session(h)?;
                Err(Error::FunctionNotSupported(stringify!($name)))
            })
        }
    };
}

dual_fn!(/// C_DigestEncryptUpdate (§5.13): dual-function operations are not offered.
    C_DigestEncryptUpdate);
dual_fn!(/// C_DecryptDigestUpdate (§5.13).
    C_DecryptDigestUpdate);
dual_fn!(/// C_SignEncryptUpdate (§5.13).
    C_SignEncryptUpdate);
dual_fn!(/// C_DecryptVerifyUpdate (§5.13).
    C_DecryptVerifyUpdate);

// ---- key management (§5.14) --------------------------------------------------------------

/// C_GenerateKey (§5.14).
#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    h: CK_SESSION_HANDLE,
    p_mech: CK_MECHANISM_PTR,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
    ph_key: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_GenerateKey", || {
        // SAFETY: mechanism, template and handle per the spec.
        let (m, t, out) = unsafe {
            (
                read_mechanism(p_mech)?,
                read_template(p_template, ul_count)?,
                out_ref(ph_key)?,
            )
        };
        *out = api::key_mgmt::generate_key(h, &m, &t)?;
        Ok(())
    })
}

/// C_GenerateKeyPair (§5.14).
#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    h: CK_SESSION_HANDLE,
    p_mech: CK_MECHANISM_PTR,
    p_pub: CK_ATTRIBUTE_PTR,
    ul_pub: CK_ULONG,
    p_priv: CK_ATTRIBUTE_PTR,
    ul_priv: CK_ULONG,
    ph_pub: CK_OBJECT_HANDLE_PTR,
    ph_priv: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_GenerateKeyPair", || {
        // SAFETY: mechanism, templates and handles per the spec.
        let (m, tp, tk, op, ok) = unsafe {
            (
                read_mechanism(p_mech)?,
                read_template(p_pub, ul_pub)?,
                read_template(p_priv, ul_priv)?,
                out_ref(ph_pub)?,
                out_ref(ph_priv)?,
            )
        };
        let (a, b) = api::key_mgmt::generate_key_pair(h, &m, &tp, &tk)?;
        *op = a;
        *ok = b;
        Ok(())
    })
}

/// C_WrapKey (§5.14).
#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    h: CK_SESSION_HANDLE,
    p_mech: CK_MECHANISM_PTR,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    p_out: CK_BYTE_PTR,
    pul_out: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_WrapKey", || {
        // SAFETY: mechanism and output per the spec.
        unsafe {
            let m = read_mechanism(p_mech)?;
            let cap = out_capacity(p_out, pul_out)?;
            let d = api::key_mgmt::wrap_key(h, &m, wrapping, key, cap)?;
            deliver(d, p_out, pul_out)
        }
    })
}

/// C_UnwrapKey (§5.14).
#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    h: CK_SESSION_HANDLE,
    p_mech: CK_MECHANISM_PTR,
    unwrapping: CK_OBJECT_HANDLE,
    p_wrapped: CK_BYTE_PTR,
    ul_wrapped: CK_ULONG,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
    ph_key: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_UnwrapKey", || {
        // SAFETY: mechanism, buffer, template and handle per the spec.
        let (m, w, t, out) = unsafe {
            (
                read_mechanism(p_mech)?,
                in_bytes(p_wrapped, ul_wrapped)?,
                read_template(p_template, ul_count)?,
                out_ref(ph_key)?,
            )
        };
        *out = api::key_mgmt::unwrap_key(h, &m, unwrapping, w, &t)?;
        Ok(())
    })
}

/// C_DeriveKey (§5.14).
#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    h: CK_SESSION_HANDLE,
    p_mech: CK_MECHANISM_PTR,
    base: CK_OBJECT_HANDLE,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
    ph_key: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_DeriveKey", || {
        // SAFETY: mechanism, template and handle per the spec.
        let (m, t, out) = unsafe {
            (
                read_mechanism(p_mech)?,
                read_template(p_template, ul_count)?,
                out_ref(ph_key)?,
            )
        };
        *out = api::key_mgmt::derive_key(h, &m, base, &t)?;
        Ok(())
    })
}

// ---- random (§5.15) and legacy (§5.16) ---------------------------------------------------

/// C_SeedRandom (§5.15).
#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    h: CK_SESSION_HANDLE,
    p_seed: CK_BYTE_PTR,
    ul_seed: CK_ULONG,
) -> CK_RV {
    guard("C_SeedRandom", || {
        // SAFETY: valid for its length.
        let seed = unsafe { in_bytes(p_seed, ul_seed) }?;
        api::random::seed_random(h, seed)
    })
}

/// C_GenerateRandom (§5.15).
#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    h: CK_SESSION_HANDLE,
    p_out: CK_BYTE_PTR,
    ul_len: CK_ULONG,
) -> CK_RV {
    guard("C_GenerateRandom", || {
        let len = to_usize(ul_len)?;
        if len == 0 {
            return api::random::generate_random(h, &mut []);
        }
        if p_out.is_null() {
            return Err(Error::ArgumentsBad("NULL output with a non-zero length"));
        }
        // SAFETY: p_out is valid for len bytes (caller guarantee).
        let out = unsafe { std::slice::from_raw_parts_mut(p_out, len) };
        api::random::generate_random(h, out)
    })
}

/// C_GetFunctionStatus (§5.16): legacy; always CKR_FUNCTION_NOT_PARALLEL.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionStatus(h: CK_SESSION_HANDLE) -> CK_RV {
    let rv = guard("C_GetFunctionStatus", || api::session(h).map(|_| ()));
    if rv == CKR_OK {
        CKR_FUNCTION_NOT_PARALLEL
    } else {
        rv
    }
}

/// C_CancelFunction (§5.16): legacy; always CKR_FUNCTION_NOT_PARALLEL.
#[no_mangle]
pub unsafe extern "C" fn C_CancelFunction(h: CK_SESSION_HANDLE) -> CK_RV {
    let rv = guard("C_CancelFunction", || api::session(h).map(|_| ()));
    if rv == CKR_OK {
        CKR_FUNCTION_NOT_PARALLEL
    } else {
        rv
    }
}

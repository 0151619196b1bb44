//! The function lists: a 2.40 table via C_GetFunctionList, and via C_GetInterfaceList /
//! C_GetInterface the "PKCS 11" 3.0 table plus the vendor interface "clusterhsm". Every
//! pointer is non-NULL; the 3.0 message-based functions answer CKR_FUNCTION_NOT_SUPPORTED.

use super::functions::*;
use super::guard;
use super::marshal::out_ref;
use crate::error::Error;
use cryptoki_sys::*;

macro_rules! unsupported {
    ($name:ident ( $($arg:ident : $ty:ty),* )) => {
        unsafe extern "C" fn $name($(_: $ty),*) -> CK_RV {
            guard(stringify!($name), || {
                crate::api::library()?;
                Err(Error::FunctionNotSupported(stringify!($name)))
            })
        }
    };
}

unsupported!(C_MessageEncryptInit(a: CK_SESSION_HANDLE, b: CK_MECHANISM_PTR, c: CK_OBJECT_HANDLE));
unsupported!(C_EncryptMessage(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG, d: CK_BYTE_PTR, e: CK_ULONG, f: CK_BYTE_PTR, g: CK_ULONG, h: CK_BYTE_PTR, i: CK_ULONG_PTR));
unsupported!(C_EncryptMessageBegin(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG, d: CK_BYTE_PTR, e: CK_ULONG));
unsupported!(C_EncryptMessageNext(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG, d: CK_BYTE_PTR, e: CK_ULONG, f: CK_BYTE_PTR, g: CK_ULONG_PTR, h: CK_FLAGS));
unsupported!(C_MessageEncryptFinal(a: CK_SESSION_HANDLE));
unsupported!(C_MessageDecryptInit(a: CK_SESSION_HANDLE, b: CK_MECHANISM_PTR, c: CK_OBJECT_HANDLE));
unsupported!(C_DecryptMessage(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG, d: CK_BYTE_PTR, e: CK_ULONG, f: CK_BYTE_PTR, g: CK_ULONG, h: CK_BYTE_PTR, i: CK_ULONG_PTR));
unsupported!(C_DecryptMessageBegin(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG, d: CK_BYTE_PTR, e: CK_ULONG));
unsupported!(C_DecryptMessageNext(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG, d: CK_BYTE_PTR, e: CK_ULONG, f: CK_BYTE_PTR, g: CK_ULONG_PTR, h: CK_FLAGS));
unsupported!(C_MessageDecryptFinal(a: CK_SESSION_HANDLE));
unsupported!(C_MessageSignInit(a: CK_SESSION_HANDLE, b: CK_MECHANISM_PTR, c: CK_OBJECT_HANDLE));
unsupported!(C_SignMessage(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG, d: CK_BYTE_PTR, e: CK_ULONG, f: CK_BYTE_PTR, g: CK_ULONG_PTR));
unsupported!(C_SignMessageBegin(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG));
unsupported!(C_SignMessageNext(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG, d: CK_BYTE_PTR, e: CK_ULONG, f: CK_BYTE_PTR, g: CK_ULONG_PTR));
unsupported!(C_MessageSignFinal(a: CK_SESSION_HANDLE));
unsupported!(C_MessageVerifyInit(a: CK_SESSION_HANDLE, b: CK_MECHANISM_PTR, c: CK_OBJECT_HANDLE));
unsupported!(C_VerifyMessage(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG, d: CK_BYTE_PTR, e: CK_ULONG, f: CK_BYTE_PTR, g: CK_ULONG));
unsupported!(C_VerifyMessageBegin(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG));
unsupported!(C_VerifyMessageNext(a: CK_SESSION_HANDLE, b: CK_VOID_PTR, c: CK_ULONG, d: CK_BYTE_PTR, e: CK_ULONG, f: CK_BYTE_PTR, g: CK_ULONG));
unsupported!(C_MessageVerifyFinal(a: CK_SESSION_HANDLE));

macro_rules! common_fields {
    ($get_info:expr, $get_function_list:expr) => {
        CK_FUNCTION_LIST {
            version: CK_VERSION {
                major: 2,
                minor: 40,
            },
            C_Initialize: Some(C_Initialize),
            C_Finalize: Some(C_Finalize),
            C_GetInfo: Some($get_info),
            C_GetFunctionList: Some($get_function_list),
            C_GetSlotList: Some(C_GetSlotList),
            C_GetSlotInfo: Some(C_GetSlotInfo),
            C_GetTokenInfo: Some(C_GetTokenInfo),
            C_GetMechanismList: Some(C_GetMechanismList),
            C_GetMechanismInfo: Some(C_GetMechanismInfo),
            C_InitToken: Some(C_InitToken),
            C_InitPIN: Some(C_InitPIN),
            C_SetPIN: Some(C_SetPIN),
            C_OpenSession: Some(C_OpenSession),
            C_CloseSession: Some(C_CloseSession),
            C_CloseAllSessions: Some(C_CloseAllSessions),
            C_GetSessionInfo: Some(C_GetSessionInfo),
            C_GetOperationState: Some(C_GetOperationState),
            C_SetOperationState: Some(C_SetOperationState),
            C_Login: Some(C_Login),
            C_Logout: Some(C_Logout),
            C_CreateObject: Some(C_CreateObject),
            C_CopyObject: Some(C_CopyObject),
            C_DestroyObject: Some(C_DestroyObject),
            C_GetObjectSize: Some(C_GetObjectSize),
            C_GetAttributeValue: Some(C_GetAttributeValue),
            C_SetAttributeValue: Some(C_SetAttributeValue),
            C_FindObjectsInit: Some(C_FindObjectsInit),
            C_FindObjects: Some(C_FindObjects),
            C_FindObjectsFinal: Some(C_FindObjectsFinal),
            C_EncryptInit: Some(C_EncryptInit),
            C_Encrypt: Some(C_Encrypt),
            C_EncryptUpdate: Some(C_EncryptUpdate),
            C_EncryptFinal: Some(C_EncryptFinal),
            C_DecryptInit: Some(C_DecryptInit),
            C_Decrypt: Some(C_Decrypt),
            C_DecryptUpdate: Some(C_DecryptUpdate),
            C_DecryptFinal: Some(C_DecryptFinal),
            C_DigestInit: Some(C_DigestInit),
            C_Digest: Some(C_Digest),
            C_DigestUpdate: Some(C_DigestUpdate),
            C_DigestKey: Some(C_DigestKey),
            C_DigestFinal: Some(C_DigestFinal),
            C_SignInit: Some(C_SignInit),
            C_Sign: Some(C_Sign),
            C_SignUpdate: Some(C_SignUpdate),
            C_SignFinal: Some(C_SignFinal),
            C_SignRecoverInit: Some(C_SignRecoverInit),
            C_SignRecover: Some(C_SignRecover),
            C_VerifyInit: Some(C_VerifyInit),
            C_Verify: Some(C_Verify),
            C_VerifyUpdate: Some(C_VerifyUpdate),
            C_VerifyFinal: Some(C_VerifyFinal),
            C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
            C_VerifyRecover: Some(C_VerifyRecover),
            C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
            C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
            C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
            C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
            C_GenerateKey: Some(C_GenerateKey),
            C_GenerateKeyPair: Some(C_GenerateKeyPair),
            C_WrapKey: Some(C_WrapKey),
            C_UnwrapKey: Some(C_UnwrapKey),
            C_DeriveKey: Some(C_DeriveKey),
            C_SeedRandom: Some(C_SeedRandom),
            C_GenerateRandom: Some(C_GenerateRandom),
            C_GetFunctionStatus: Some(C_GetFunctionStatus),
            C_CancelFunction: Some(C_CancelFunction),
            C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
        }
    };
}

static FUNCTION_LIST_240: CK_FUNCTION_LIST = common_fields!(C_GetInfo, C_GetFunctionList);

/// The 3.0 table: the 2.40 entries (with a 3.0 C_GetInfo) followed by the 3.0 additions.
static FUNCTION_LIST_30: CK_FUNCTION_LIST_3_0 = {
    let b = common_fields!(C_GetInfo_v3, C_GetFunctionList);
    CK_FUNCTION_LIST_3_0 {
        version: CK_VERSION { major: 3, minor: 0 },
        C_Initialize: b.C_Initialize,
        C_Finalize: b.C_Finalize,
        C_GetInfo: b.C_GetInfo,
        C_GetFunctionList: b.C_GetFunctionList,
        C_GetSlotList: b.C_GetSlotList,
        C_GetSlotInfo: b.C_GetSlotInfo,
        C_GetTokenInfo: b.C_GetTokenInfo,
        C_GetMechanismList: b.C_GetMechanismList,
        C_GetMechanismInfo: b.C_GetMechanismInfo,
        C_InitToken: b.C_InitToken,
        C_InitPIN: b.C_InitPIN,
        C_SetPIN: b.C_SetPIN,
        C_OpenSession: b.C_OpenSession,
        C_CloseSession: b.C_CloseSession,
        C_CloseAllSessions: b.C_CloseAllSessions,
        C_GetSessionInfo: b.C_GetSessionInfo,
        C_GetOperationState: b.C_GetOperationState,
        C_SetOperationState: b.C_SetOperationState,
        C_Login: b.C_Login,
        C_Logout: b.C_Logout,
        C_CreateObject: b.C_CreateObject,
        C_CopyObject: b.C_CopyObject,
        C_DestroyObject: b.C_DestroyObject,
        C_GetObjectSize: b.C_GetObjectSize,
        C_GetAttributeValue: b.C_GetAttributeValue,
        C_SetAttributeValue: b.C_SetAttributeValue,
        C_FindObjectsInit: b.C_FindObjectsInit,
        C_FindObjects: b.C_FindObjects,
        C_FindObjectsFinal: b.C_FindObjectsFinal,
        C_EncryptInit: b.C_EncryptInit,
        C_Encrypt: b.C_Encrypt,
        C_EncryptUpdate: b.C_EncryptUpdate,
        C_EncryptFinal: b.C_EncryptFinal,
        C_DecryptInit: b.C_DecryptInit,
        C_Decrypt: b.C_Decrypt,
        C_DecryptUpdate: b.C_DecryptUpdate,
        C_DecryptFinal: b.C_DecryptFinal,
        C_DigestInit: b.C_DigestInit,
        C_Digest: b.C_Digest,
        C_DigestUpdate: b.C_DigestUpdate,
        C_DigestKey: b.C_DigestKey,
        C_DigestFinal: b.C_DigestFinal,
        C_SignInit: b.C_SignInit,
        C_Sign: b.C_Sign,
        C_SignUpdate: b.C_SignUpdate,
        C_SignFinal: b.C_SignFinal,
        C_SignRecoverInit: b.C_SignRecoverInit,
        C_SignRecover: b.C_SignRecover,
        C_VerifyInit: b.C_VerifyInit,
        C_Verify: b.C_Verify,
        C_VerifyUpdate: b.C_VerifyUpdate,
        C_VerifyFinal: b.C_VerifyFinal,
        C_VerifyRecoverInit: b.C_VerifyRecoverInit,
        C_VerifyRecover: b.C_VerifyRecover,
        C_DigestEncryptUpdate: b.C_DigestEncryptUpdate,
        C_DecryptDigestUpdate: b.C_DecryptDigestUpdate,
        C_SignEncryptUpdate: b.C_SignEncryptUpdate,
        C_DecryptVerifyUpdate: b.C_DecryptVerifyUpdate,
        C_GenerateKey: b.C_GenerateKey,
        C_GenerateKeyPair: b.C_GenerateKeyPair,
        C_WrapKey: b.C_WrapKey,
        C_UnwrapKey: b.C_UnwrapKey,
        C_DeriveKey: b.C_DeriveKey,
        C_SeedRandom: b.C_SeedRandom,
        C_GenerateRandom: b.C_GenerateRandom,
        C_GetFunctionStatus: b.C_GetFunctionStatus,
        C_CancelFunction: b.C_CancelFunction,
        C_WaitForSlotEvent: b.C_WaitForSlotEvent,
        C_GetInterfaceList: Some(C_GetInterfaceList),
        C_GetInterface: Some(C_GetInterface),
        C_LoginUser: Some(C_LoginUser),
        C_SessionCancel: Some(C_SessionCancel),
        C_MessageEncryptInit: Some(C_MessageEncryptInit),
        C_EncryptMessage: Some(C_EncryptMessage),
        C_EncryptMessageBegin: Some(C_EncryptMessageBegin),
        C_EncryptMessageNext: Some(C_EncryptMessageNext),
        C_MessageEncryptFinal: Some(C_MessageEncryptFinal),
        C_MessageDecryptInit: Some(C_MessageDecryptInit),
        C_DecryptMessage: Some(C_DecryptMessage),
        C_DecryptMessageBegin: Some(C_DecryptMessageBegin),
        C_DecryptMessageNext: Some(C_DecryptMessageNext),
        C_MessageDecryptFinal: Some(C_MessageDecryptFinal),
        C_MessageSignInit: Some(C_MessageSignInit),
        C_SignMessage: Some(C_SignMessage),
        C_SignMessageBegin: Some(C_SignMessageBegin),
        C_SignMessageNext: Some(C_SignMessageNext),
        C_MessageSignFinal: Some(C_MessageSignFinal),
        C_MessageVerifyInit: Some(C_MessageVerifyInit),
        C_VerifyMessage: Some(C_VerifyMessage),
        C_VerifyMessageBegin: Some(C_VerifyMessageBegin),
        C_VerifyMessageNext: Some(C_VerifyMessageNext),
        C_MessageVerifyFinal: Some(C_MessageVerifyFinal),
    }
};

/// Holder making the static interface table Sync (it only holds pointers to statics).
struct Interfaces([CK_INTERFACE; 3]);
// SAFETY: the table is immutable and points only at 'static data.
unsafe impl Sync for Interfaces {}

static INTERFACES: Interfaces = Interfaces([
    CK_INTERFACE {
        pInterfaceName: c"PKCS 11".as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST_30 as *const CK_FUNCTION_LIST_3_0 as *mut std::ffi::c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: c"PKCS 11".as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST_240 as *const CK_FUNCTION_LIST as *mut std::ffi::c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: c"clusterhsm".as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &super::vendor::VENDOR_FUNCTION_LIST
            as *const super::vendor::CK_CLUSTERHSM_FUNCTION_LIST
            as *mut std::ffi::c_void,
        flags: 0,
    },
]);

/// C_GetFunctionList (§5.4): the 2.40 table, which says 2.40.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(pp_list: CK_FUNCTION_LIST_PTR_PTR) -> CK_RV {
    guard("C_GetFunctionList", || {
        // SAFETY: NULL or a writable pointer slot.
        let out = unsafe { out_ref(pp_list) }?;
        *out = &FUNCTION_LIST_240 as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        Ok(())
    })
}

/// C_GetInterfaceList (3.0 §5.4).
#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(
    p_list: CK_INTERFACE_PTR,
    pul_count: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_GetInterfaceList", || {
        // SAFETY: count and array per the length convention (caller guarantee).
        unsafe { super::marshal::write_array(&INTERFACES.0, p_list, pul_count) }
    })
}

/// C_GetInterface (3.0 §5.4): by name and optional version; NULL name means the default
/// ("PKCS 11" 3.0).
#[no_mangle]
pub unsafe extern "C" fn C_GetInterface(
    p_name: CK_UTF8CHAR_PTR,
    p_version: CK_VERSION_PTR,
    pp_interface: CK_INTERFACE_PTR_PTR,
    flags: CK_FLAGS,
) -> CK_RV {
    guard("C_GetInterface", || {
        // SAFETY: NULL or a writable pointer slot.
        let out = unsafe { out_ref(pp_interface) }?;
        let name: Option<Vec<u8>> = if p_name.is_null() {
            None
        } else {
            // SAFETY: a NUL-terminated string per the spec.
            Some(
                unsafe { std::ffi::CStr::from_ptr(p_name as *const std::ffi::c_char) }
                    .to_bytes()
                    .to_vec(),
            )
        };
        // SAFETY: NULL or a readable CK_VERSION.
        let version = unsafe { p_version.as_ref() }.copied();
        for iface in &INTERFACES.0 {
            // SAFETY: our own static NUL-terminated names.
            let iname = unsafe {
                std::ffi::CStr::from_ptr(iface.pInterfaceName as *const std::ffi::c_char)
            }
            .to_bytes();
            if name.as_deref().is_some_and(|n| n != iname) {
                continue;
            }
            // SAFETY: every function list starts with a CK_VERSION.
            let iv = unsafe { *(iface.pFunctionList as *const CK_VERSION) };
            if let Some(v) = version {
                if v.major != iv.major || v.minor != iv.minor {
                    continue;
                }
            }
            if iface.flags & flags != flags {
                continue;
            }
            *out = iface as *const CK_INTERFACE as *mut CK_INTERFACE;
            return Ok(());
        }
        Err(Error::ArgumentsBad("no such interface"))
    })
}

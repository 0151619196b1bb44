//! Error paths through raw function pointers (C_GetFunctionList / C_GetInterface):
//! calls before C_Initialize and after C_Finalize, NULL and invalid arguments, operation
//! state errors, and the function tables themselves.

// `ck!` (tests/common/raw.rs) evaluates its arguments inside its unsafe block on purpose:
// every use is a raw FFI call.
#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Raw};
use common::*;
use cryptoki_sys::*;
use std::ptr::null_mut;

/// Calls every function of the 2.40 list except C_GetFunctionList and C_Initialize, plus
/// the 3.0 session functions, with harmless arguments (valid output pointers, so only the
/// library state can explain an error). Returns each function's name and CKR_ code.
fn call_everything(raw: &Raw, f3: &CK_FUNCTION_LIST_3_0) -> Vec<(&'static str, CK_RV)> {
    let s: CK_SESSION_HANDLE = 1;
    let slot: CK_SLOT_ID = 1;
    let o: CK_OBJECT_HANDLE = 1;
    let mut ul: CK_ULONG = 64;
    let mut buf = [0u8; 64];
    let mut out = [0u8; 64];
    let b = buf.as_mut_ptr();
    let bo = out.as_mut_ptr();
    let mut m = CK_MECHANISM {
        mechanism: CKM_SHA256,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    let mut lbl = [0u8; 8];
    let mut attrs = [CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: lbl.as_mut_ptr().cast(),
        ulValueLen: 8,
    }];
    let a = attrs.as_mut_ptr();
    let mut h: CK_OBJECT_HANDLE = 0;
    let mut h2: CK_OBJECT_HANDLE = 0;
    let mut sh: CK_SESSION_HANDLE = 0;
    let mut info = CK_INFO::default();
    let mut slot_info = CK_SLOT_INFO::default();
    let mut token_info = CK_TOKEN_INFO::default();
    let mut mech_info = CK_MECHANISM_INFO::default();
    let mut session_info = CK_SESSION_INFO::default();
    let mut slots = [0 as CK_SLOT_ID; 8];
    let mut mechs = [0 as CK_MECHANISM_TYPE; 8];
    let mut pin = *b"12345678";
    let p = pin.as_mut_ptr();
    let mut v = vec![
        ("C_GetInfo", ck!(raw, C_GetInfo(&mut info))),
        ("C_GetSlotList", {
            let mut n = 8;
            ck!(raw, C_GetSlotList(0, slots.as_mut_ptr(), &mut n))
        }),
        (
            "C_GetSlotInfo",
            ck!(raw, C_GetSlotInfo(slot, &mut slot_info)),
        ),
        (
            "C_GetTokenInfo",
            ck!(raw, C_GetTokenInfo(slot, &mut token_info)),
        ),
        ("C_GetMechanismList", {
            let mut n = 8;
            ck!(raw, C_GetMechanismList(slot, mechs.as_mut_ptr(), &mut n))
        }),
        (
            "C_GetMechanismInfo",
            ck!(raw, C_GetMechanismInfo(slot, CKM_SHA256, &mut mech_info)),
        ),
        ("C_InitToken", ck!(raw, C_InitToken(slot, p, 8, b))),
        ("C_InitPIN", ck!(raw, C_InitPIN(s, p, 8))),
        ("C_SetPIN", ck!(raw, C_SetPIN(s, p, 8, p, 8))),
        (
            "C_OpenSession",
            ck!(
                raw,
                C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut sh)
            ),
        ),
        ("C_CloseSession", ck!(raw, C_CloseSession(s))),
        ("C_CloseAllSessions", ck!(raw, C_CloseAllSessions(slot))),
        (
            "C_GetSessionInfo",
            ck!(raw, C_GetSessionInfo(s, &mut session_info)),
        ),
        (
            "C_GetOperationState",
            ck!(raw, C_GetOperationState(s, bo, &mut ul)),
        ),
        (
            "C_SetOperationState",
            ck!(raw, C_SetOperationState(s, b, 8, 0, 0)),
        ),
        ("C_Login", ck!(raw, C_Login(s, CKU_USER, p, 8))),
        ("C_Logout", ck!(raw, C_Logout(s))),
        ("C_CreateObject", ck!(raw, C_CreateObject(s, a, 1, &mut h))),
        ("C_CopyObject", ck!(raw, C_CopyObject(s, o, a, 1, &mut h))),
        ("C_DestroyObject", ck!(raw, C_DestroyObject(s, o))),
        ("C_GetObjectSize", ck!(raw, C_GetObjectSize(s, o, &mut ul))),
        (
            "C_GetAttributeValue",
            ck!(raw, C_GetAttributeValue(s, o, a, 1)),
        ),
        (
            "C_SetAttributeValue",
            ck!(raw, C_SetAttributeValue(s, o, a, 1)),
        ),
        ("C_FindObjectsInit", ck!(raw, C_FindObjectsInit(s, a, 1))),
        (
            "C_FindObjects",
            ck!(raw, C_FindObjects(s, &mut h, 1, &mut ul)),
        ),
        ("C_FindObjectsFinal", ck!(raw, C_FindObjectsFinal(s))),
        ("C_EncryptInit", ck!(raw, C_EncryptInit(s, &mut m, o))),
        ("C_Encrypt", ck!(raw, C_Encrypt(s, b, 16, bo, &mut ul))),
        (
            "C_EncryptUpdate",
            ck!(raw, C_EncryptUpdate(s, b, 16, bo, &mut ul)),
        ),
        ("C_EncryptFinal", ck!(raw, C_EncryptFinal(s, bo, &mut ul))),
        ("C_DecryptInit", ck!(raw, C_DecryptInit(s, &mut m, o))),
        ("C_Decrypt", ck!(raw, C_Decrypt(s, b, 16, bo, &mut ul))),
        (
            "C_DecryptUpdate",
            ck!(raw, C_DecryptUpdate(s, b, 16, bo, &mut ul)),
        ),
        ("C_DecryptFinal", ck!(raw, C_DecryptFinal(s, bo, &mut ul))),
        ("C_DigestInit", ck!(raw, C_DigestInit(s, &mut m))),
        ("C_Digest", ck!(raw, C_Digest(s, b, 16, bo, &mut ul))),
        ("C_DigestUpdate", ck!(raw, C_DigestUpdate(s, b, 16))),
        ("C_DigestKey", ck!(raw, C_DigestKey(s, o))),
        ("C_DigestFinal", ck!(raw, C_DigestFinal(s, bo, &mut ul))),
        ("C_SignInit", ck!(raw, C_SignInit(s, &mut m, o))),
        ("C_Sign", ck!(raw, C_Sign(s, b, 16, bo, &mut ul))),
        ("C_SignUpdate", ck!(raw, C_SignUpdate(s, b, 16))),
        ("C_SignFinal", ck!(raw, C_SignFinal(s, bo, &mut ul))),
        (
            "C_SignRecoverInit",
            ck!(raw, C_SignRecoverInit(s, &mut m, o)),
        ),
        (
            "C_SignRecover",
            ck!(raw, C_SignRecover(s, b, 16, bo, &mut ul)),
        ),
        ("C_VerifyInit", ck!(raw, C_VerifyInit(s, &mut m, o))),
        ("C_Verify", ck!(raw, C_Verify(s, b, 16, bo, 16))),
        ("C_VerifyUpdate", ck!(raw, C_VerifyUpdate(s, b, 16))),
        ("C_VerifyFinal", ck!(raw, C_VerifyFinal(s, bo, 16))),
        (
            "C_VerifyRecoverInit",
            ck!(raw, C_VerifyRecoverInit(s, &mut m, o)),
        ),
        (
            "C_VerifyRecover",
            ck!(raw, C_VerifyRecover(s, b, 16, bo, &mut ul)),
        ),
        (
            "C_DigestEncryptUpdate",
            ck!(raw, C_DigestEncryptUpdate(s, b, 16, bo, &mut ul)),
        ),
        (
            "C_DecryptDigestUpdate",
            ck!(raw, C_DecryptDigestUpdate(s, b, 16, bo, &mut ul)),
        ),
        (
            "C_SignEncryptUpdate",
            ck!(raw, C_SignEncryptUpdate(s, b, 16, bo, &mut ul)),
        ),
        (
            "C_DecryptVerifyUpdate",
            ck!(raw, C_DecryptVerifyUpdate(s, b, 16, bo, &mut ul)),
        ),
        (
            "C_GenerateKey",
            ck!(raw, C_GenerateKey(s, &mut m, a, 1, &mut h)),
        ),
        (
            "C_GenerateKeyPair",
            ck!(
                raw,
                C_GenerateKeyPair(s, &mut m, a, 1, a, 1, &mut h, &mut h2)
            ),
        ),
        (
            "C_WrapKey",
            ck!(raw, C_WrapKey(s, &mut m, o, o, bo, &mut ul)),
        ),
        (
            "C_UnwrapKey",
            ck!(raw, C_UnwrapKey(s, &mut m, o, b, 16, a, 1, &mut h)),
        ),
        (
            "C_DeriveKey",
            ck!(raw, C_DeriveKey(s, &mut m, o, a, 1, &mut h)),
        ),
        ("C_SeedRandom", ck!(raw, C_SeedRandom(s, b, 16))),
        ("C_GenerateRandom", ck!(raw, C_GenerateRandom(s, bo, 16))),
        ("C_WaitForSlotEvent", {
            let mut ev: CK_SLOT_ID = 0;
            ck!(raw, C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut ev, null_mut()))
        }),
    ];
    // 3.0 additions that take a session.
    let login_user = f3.C_LoginUser.expect("C_LoginUser");
    let cancel = f3.C_SessionCancel.expect("C_SessionCancel");
    let mut user = *b"cu";
    // SAFETY: valid pointers and lengths.
    v.push(("C_LoginUser", unsafe {
        login_user(s, CKU_USER, p, 8, user.as_mut_ptr(), 2)
    }));
    // SAFETY: no pointers.
    v.push(("C_SessionCancel", unsafe { cancel(s, 0) }));
    v
}

fn interface_3_0(raw: &Raw) -> &'static CK_FUNCTION_LIST_3_0 {
    let get: libloading::Symbol<
        unsafe extern "C" fn(*mut u8, *mut CK_VERSION, *mut *mut CK_INTERFACE, CK_FLAGS) -> CK_RV,
    > =
        // SAFETY: the symbol has the C_GetInterface signature.
        unsafe { raw.library().get(b"C_GetInterface\0") }.expect("C_GetInterface symbol");
    let mut name = *b"PKCS 11\0";
    let mut iface: *mut CK_INTERFACE = null_mut();
    // SAFETY: NUL-terminated name, NULL version (any), valid out pointer.
    let rv = unsafe { get(name.as_mut_ptr(), null_mut(), &mut iface, 0) };
    assert_eq!(rv, CKR_OK, "C_GetInterface(\"PKCS 11\"): {}", rv_name(rv));
    assert!(!iface.is_null());
    // SAFETY: the module returned a pointer to its static interface record.
    let iface = unsafe { &*iface };
    // SAFETY: the interface name is a NUL-terminated static string.
    let got = unsafe { std::ffi::CStr::from_ptr(iface.pInterfaceName as *const _) };
    assert_eq!(got.to_str().unwrap(), "PKCS 11");
    // SAFETY: a "PKCS 11" interface's list is a CK_FUNCTION_LIST_3_0 with static lifetime.
    unsafe { &*(iface.pFunctionList as *const CK_FUNCTION_LIST_3_0) }
}

fn assert_all(calls: Vec<(&'static str, CK_RV)>, want: CK_RV) {
    let wrong: Vec<String> = calls
        .iter()
        .filter(|(_, rv)| *rv != want)
        .map(|(name, rv)| format!("{name} → {}", rv_name(*rv)))
        .collect();
    assert!(
        wrong.is_empty(),
        "expected {} from every function, but: {wrong:#?}",
        rv_name(want)
    );
}

#[test]
fn before_initialize_and_after_finalize() {
    isolated("before_initialize_and_after_finalize", || {
        let raw = Raw::load();
        let f3 = interface_3_0(&raw);
        assert_all(call_everything(&raw, f3), CKR_CRYPTOKI_NOT_INITIALIZED);
        assert_eq!(
            ck!(raw, C_Finalize(null_mut())),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );

        assert_eq!(raw.initialize(), CKR_OK);
        // C_Finalize's pReserved must be NULL.
        let mut junk = 0u64;
        assert_eq!(
            ck!(raw, C_Finalize((&mut junk as *mut u64).cast())),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(ck!(raw, C_Finalize(null_mut())), CKR_OK);
        assert_all(call_everything(&raw, f3), CKR_CRYPTOKI_NOT_INITIALIZED);
        assert_eq!(
            ck!(raw, C_Finalize(null_mut())),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        // And the library can start again.
        assert_eq!(raw.initialize(), CKR_OK);
        let mut info = CK_INFO::default();
        assert_eq!(ck!(raw, C_GetInfo(&mut info)), CKR_OK);
    });
}

#[test]
fn null_and_invalid_arguments() {
    isolated("null_and_invalid_arguments", || {
        let p = load();
        let slot = setup_token(&p).id();
        let raw = Raw::load();
        let mut n: CK_ULONG = 0;
        assert_eq!(
            ck!(raw, C_GetSlotList(0, null_mut(), null_mut())),
            CKR_ARGUMENTS_BAD,
            "C_GetSlotList(pulCount = NULL)"
        );
        assert_eq!(ck!(raw, C_GetSlotList(0, null_mut(), &mut n)), CKR_OK);
        assert_eq!(n, 1);
        assert_eq!(ck!(raw, C_GetInfo(null_mut())), CKR_ARGUMENTS_BAD);
        assert_eq!(
            ck!(raw, C_GetTokenInfo(slot, null_mut())),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(ck!(raw, C_GetSlotInfo(slot, null_mut())), CKR_ARGUMENTS_BAD);
        assert_eq!(
            ck!(
                raw,
                C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, null_mut())
            ),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            ck!(raw, C_GetMechanismList(slot, null_mut(), null_mut())),
            CKR_ARGUMENTS_BAD
        );

        // Invalid slot.
        let bad_slot: CK_SLOT_ID = 0xdead;
        let mut si = CK_SLOT_INFO::default();
        let mut ti = CK_TOKEN_INFO::default();
        let mut sh: CK_SESSION_HANDLE = 0;
        assert_eq!(
            ck!(raw, C_GetSlotInfo(bad_slot, &mut si)),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(
            ck!(raw, C_GetTokenInfo(bad_slot, &mut ti)),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(
            ck!(raw, C_GetMechanismList(bad_slot, null_mut(), &mut n)),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(
            ck!(
                raw,
                C_OpenSession(bad_slot, CKF_SERIAL_SESSION, null_mut(), None, &mut sh)
            ),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(ck!(raw, C_CloseAllSessions(bad_slot)), CKR_SLOT_ID_INVALID);

        // No parallel sessions.
        assert_eq!(
            ck!(
                raw,
                C_OpenSession(slot, CKF_RW_SESSION, null_mut(), None, &mut sh)
            ),
            CKR_SESSION_PARALLEL_NOT_SUPPORTED
        );

        // NULL template with a non-zero count.
        let s = user_session(&p, cryptoki::slot::Slot::try_from(slot).unwrap());
        let sh = s.handle();
        let mut h: CK_OBJECT_HANDLE = 0;
        assert_eq!(
            ck!(raw, C_CreateObject(sh, null_mut(), 2, &mut h)),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            ck!(raw, C_FindObjectsInit(sh, null_mut(), 1)),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            ck!(raw, C_GetAttributeValue(sh, 1, null_mut(), 1)),
            CKR_ARGUMENTS_BAD
        );
        // NULL mechanism.
        assert_eq!(ck!(raw, C_DigestInit(sh, null_mut())), CKR_ARGUMENTS_BAD);
    });
}

#[test]
fn operation_state_errors() {
    isolated("operation_state_errors", || {
        use common::raw::{Mech, Tmpl};
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);
        let raw = Raw::load();
        let sh = s.handle();
        let mut b = [0u8; 32];
        let mut o = [0u8; 64];
        let mut ul: CK_ULONG = 64;
        let (bp, op) = (b.as_mut_ptr(), o.as_mut_ptr());
        let not_init = [
            ("C_Encrypt", ck!(raw, C_Encrypt(sh, bp, 16, op, &mut ul))),
            (
                "C_EncryptUpdate",
                ck!(raw, C_EncryptUpdate(sh, bp, 16, op, &mut ul)),
            ),
            ("C_EncryptFinal", ck!(raw, C_EncryptFinal(sh, op, &mut ul))),
            ("C_Decrypt", ck!(raw, C_Decrypt(sh, bp, 16, op, &mut ul))),
            ("C_DecryptFinal", ck!(raw, C_DecryptFinal(sh, op, &mut ul))),
            ("C_Digest", ck!(raw, C_Digest(sh, bp, 16, op, &mut ul))),
            ("C_DigestUpdate", ck!(raw, C_DigestUpdate(sh, bp, 16))),
            ("C_DigestFinal", ck!(raw, C_DigestFinal(sh, op, &mut ul))),
            ("C_Sign", ck!(raw, C_Sign(sh, bp, 16, op, &mut ul))),
            ("C_SignUpdate", ck!(raw, C_SignUpdate(sh, bp, 16))),
            ("C_SignFinal", ck!(raw, C_SignFinal(sh, op, &mut ul))),
            ("C_Verify", ck!(raw, C_Verify(sh, bp, 16, op, 16))),
            ("C_VerifyFinal", ck!(raw, C_VerifyFinal(sh, op, 16))),
            ("C_FindObjects", {
                let mut h = 0;
                ck!(raw, C_FindObjects(sh, &mut h, 1, &mut ul))
            }),
            ("C_FindObjectsFinal", ck!(raw, C_FindObjectsFinal(sh))),
        ];
        assert_all(not_init.to_vec(), CKR_OPERATION_NOT_INITIALIZED);

        // An AES key for the operation tests.
        let key = raw
            .generate_key(
                sh,
                &mut Mech::new(CKM_AES_KEY_GEN),
                &mut Tmpl::new()
                    .ulong(CKA_VALUE_LEN, 16)
                    .bool(CKA_ENCRYPT, true)
                    .bool(CKA_DECRYPT, true)
                    .bool(CKA_SIGN, false),
            )
            .expect("C_GenerateKey");
        let mut m = Mech::new(CKM_AES_ECB);
        let mut ckm = m.ck();
        assert_eq!(ck!(raw, C_EncryptInit(sh, &mut ckm, key)), CKR_OK);
        assert_eq!(
            ck!(raw, C_EncryptInit(sh, &mut ckm, key)),
            CKR_OPERATION_ACTIVE
        );
        // The first operation is still usable.
        ul = 64;
        assert_eq!(ck!(raw, C_Encrypt(sh, bp, 16, op, &mut ul)), CKR_OK);
        assert_eq!(ul, 16);
        // Finished: back to not initialized.
        assert_eq!(
            ck!(raw, C_Encrypt(sh, bp, 16, op, &mut ul)),
            CKR_OPERATION_NOT_INITIALIZED
        );
        // A second C_FindObjectsInit while one is active.
        let mut t = Tmpl::new().ulong(CKA_CLASS, CKO_SECRET_KEY);
        let mut a = t.ck();
        assert_eq!(ck!(raw, C_FindObjectsInit(sh, a.as_mut_ptr(), 1)), CKR_OK);
        assert_eq!(
            ck!(raw, C_FindObjectsInit(sh, a.as_mut_ptr(), 1)),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(ck!(raw, C_FindObjectsFinal(sh)), CKR_OK);

        // Invalid key and object handles.
        let bad: CK_OBJECT_HANDLE = 0xdead_beef;
        assert_eq!(
            ck!(raw, C_EncryptInit(sh, &mut ckm, bad)),
            CKR_KEY_HANDLE_INVALID
        );
        let mut sha = Mech::new(CKM_SHA256_HMAC);
        let mut ckh = sha.ck();
        assert_eq!(
            ck!(raw, C_SignInit(sh, &mut ckh, bad)),
            CKR_KEY_HANDLE_INVALID
        );
        assert_eq!(
            ck!(raw, C_VerifyInit(sh, &mut ckh, bad)),
            CKR_KEY_HANDLE_INVALID
        );
        let mut ga = Tmpl::new().bytes(CKA_LABEL, &[0; 8]);
        let mut gac = ga.ck();
        assert_eq!(
            ck!(raw, C_GetAttributeValue(sh, bad, gac.as_mut_ptr(), 1)),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            ck!(raw, C_DestroyObject(sh, bad)),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            ck!(raw, C_GetObjectSize(sh, bad, &mut ul)),
            CKR_OBJECT_HANDLE_INVALID
        );
        // A mechanism the token does not have.
        let mut md5 = Mech::new(CKM_MD5);
        let mut ckmd5 = md5.ck();
        assert_eq!(
            ck!(raw, C_DigestInit(sh, &mut ckmd5)),
            CKR_MECHANISM_INVALID
        );
        // A key that may not do the operation (CKA_SIGN false).
        let mut cmac = Mech::new(CKM_AES_CMAC);
        let mut ckc = cmac.ck();
        assert_eq!(
            ck!(raw, C_SignInit(sh, &mut ckc, key)),
            CKR_KEY_FUNCTION_NOT_PERMITTED
        );
    });
}

#[test]
fn function_lists() {
    isolated("function_lists", || {
        let raw = Raw::load();
        let l2 = raw.list();
        assert_eq!(
            (l2.version.major, l2.version.minor),
            (2, 40),
            "C_GetFunctionList's version"
        );
        let f3 = interface_3_0(&raw);
        assert_eq!((f3.version.major, f3.version.minor), (3, 0));

        // Every entry after the version is a function pointer; none may be NULL.
        fn null_slots<T>(table: &T) -> Vec<usize> {
            let size = std::mem::size_of::<T>();
            let first = std::mem::size_of::<usize>(); // CK_VERSION padded to pointer size
            let words = (size - first) / std::mem::size_of::<usize>();
            // SAFETY: the table is a repr(C) struct of a padded version then pointers.
            let ptrs = unsafe {
                std::slice::from_raw_parts(
                    (table as *const T as *const u8).add(first) as *const usize,
                    words,
                )
            };
            ptrs.iter()
                .enumerate()
                .filter(|(_, p)| **p == 0)
                .map(|(i, _)| i)
                .collect()
        }
        assert_eq!(std::mem::size_of::<CK_FUNCTION_LIST>(), 8 + 68 * 8);
        assert_eq!(
            null_slots(l2),
            Vec::<usize>::new(),
            "NULL entries in the 2.40 list"
        );
        assert_eq!(std::mem::size_of::<CK_FUNCTION_LIST_3_0>(), 8 + 92 * 8);
        assert_eq!(
            null_slots(f3),
            Vec::<usize>::new(),
            "NULL entries in the 3.0 list"
        );

        // C_GetInterfaceList includes "PKCS 11" 3.0.
        let f = f3.C_GetInterfaceList.unwrap();
        let mut n: CK_ULONG = 0;
        // SAFETY: NULL list asks the count.
        assert_eq!(unsafe { f(null_mut(), &mut n) }, CKR_OK);
        let mut list = vec![
            CK_INTERFACE {
                pInterfaceName: null_mut(),
                pFunctionList: null_mut(),
                flags: 0
            };
            n as usize
        ];
        // SAFETY: the buffer holds n entries.
        assert_eq!(unsafe { f(list.as_mut_ptr(), &mut n) }, CKR_OK);
        let names: Vec<(String, u8)> = list
            .iter()
            .map(|i| {
                // SAFETY: static NUL-terminated names and static function lists.
                unsafe {
                    (
                        std::ffi::CStr::from_ptr(i.pInterfaceName as *const _)
                            .to_string_lossy()
                            .into_owned(),
                        (*(i.pFunctionList as *const CK_VERSION)).major,
                    )
                }
            })
            .collect();
        assert!(
            names.contains(&("PKCS 11".to_string(), 3)),
            "interfaces: {names:?}"
        );
    });
}

//! Fuzzing on stable Rust (issue 8), the C ABI: proptest drives the built module through
//! raw function pointers with
//! - `fuzz_templates`: random CK_ATTRIBUTE arrays (random types, lengths, NULL values with
//!   any length, nested templates) into C_CreateObject, C_GenerateKey, C_FindObjectsInit,
//!   C_GetAttributeValue and C_SetAttributeValue;
//! - `fuzz_mechanisms`: random CK_MECHANISMs (every mechanism the module lists plus random
//!   types; parameters as random bytes of random length, or the mechanism's parameter
//!   structure with random fields and pointers that are NULL or valid) into C_EncryptInit,
//!   C_DecryptInit, C_SignInit, C_DeriveKey and C_WrapKey, each followed by the operation;
//! - `fuzz_call_sequences`: random sequences of C functions with random handles (valid,
//!   closed, 0, random), NULL or honest buffers and huge lengths.
//!
//! Every call must return a CKR_ code that PKCS#11 defines, never CKR_GENERAL_ERROR (what
//! the module returns for a caught panic, after which it fails closed); after each target
//! C_GetInfo still returns CKR_OK. The inputs this harness builds are always valid memory
//! for the lengths it claims, except where the point is a NULL pointer: a crash is the
//! module's. Failure seeds: `fuzz-corpus/<target>.proptest-regressions`, replayed first.
//! Cases per target: `PROPTEST_CASES` (default 500). Hours: README "Reliability".

#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Mech, Raw, Tmpl, H, S};
use common::*;
use cryptoki_sys::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use std::cell::Cell;
use std::path::Path;
use std::ptr::null_mut;

const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// CK_UNAVAILABLE_INFORMATION, and a length above isize::MAX.
const HUGE: [CK_ULONG; 3] = [
    CK_UNAVAILABLE_INFORMATION,
    (isize::MAX as CK_ULONG) + 1,
    1 << 40,
];

fn runner(target: &str) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz-corpus")
        .join(format!("{target}.proptest-regressions"));
    let file: &'static str = Box::leak(file.to_string_lossy().into_owned().into_boxed_str());
    TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..Config::default()
    })
}

/// A code PKCS#11 (3.0) defines or a vendor code, and not CKR_GENERAL_ERROR.
fn check_rv(call: &str, r: CK_RV) -> Result<CK_RV, TestCaseError> {
    if r == CKR_GENERAL_ERROR || (r > 0x202 && r < CKR_VENDOR_DEFINED) {
        return Err(TestCaseError::fail(format!(
            "{call} returned {} (a caught panic or no CKR_ code)",
            rv_name(r)
        )));
    }
    Ok(r)
}

/// The process's fixture: a logged-in session and keys of each kind (session objects).
struct Fx {
    raw: Raw,
    slot: CK_SLOT_ID,
    aes: H,
    aes128: H,
    generic: H,
    ec: (H, H),
    rsa: (H, H),
    data: H,
    mechs: Vec<CK_MECHANISM_TYPE>,
    /// CK_MECHANISM_INFO.flags per listed mechanism.
    flags: std::collections::HashMap<CK_MECHANISM_TYPE, CK_FLAGS>,
    calls: Cell<u64>,
}

impl Fx {
    fn new() -> Fx {
        let p = load();
        let slot = setup_token(&p).id();
        std::mem::forget(p); // the module stays initialized for the process
        let raw = Raw::load();
        let s = open(&raw, slot);
        login(&raw, s);
        let (aes, aes128, generic, ec, rsa, data) = keys(&raw, s);
        let mut n: CK_ULONG = 0;
        assert_eq!(
            ck!(raw, C_GetMechanismList(slot, null_mut(), &mut n)),
            CKR_OK
        );
        let mut mechs = vec![0; n as usize];
        assert_eq!(
            ck!(raw, C_GetMechanismList(slot, mechs.as_mut_ptr(), &mut n)),
            CKR_OK
        );
        let flags = mechs
            .iter()
            .map(|&m| {
                let mut info: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
                assert_eq!(ck!(raw, C_GetMechanismInfo(slot, m, &mut info)), CKR_OK);
                (m, info.flags)
            })
            .collect();
        Fx {
            flags,
            raw,
            slot,
            aes,
            aes128,
            generic,
            ec,
            rsa,
            data,
            mechs,
            calls: Cell::new(0),
        }
    }
    fn key(&self, i: u8) -> H {
        [
            self.aes,
            self.aes128,
            self.generic,
            self.ec.0,
            self.ec.1,
            self.rsa.0,
            self.rsa.1,
            self.data,
            0,
            0xdead_beef,
        ][i as usize % 10]
    }
    /// A key that fits the mechanism's family (by CKM_ value range), for `op` (0 encrypt,
    /// 1 decrypt, 2 sign, 3 derive, 4 wrap).
    fn key_for(&self, m: CK_MECHANISM_TYPE, op: u8) -> H {
        match m {
            0x0..=0x4f => {
                if op == 0 || op == 4 {
                    self.rsa.0
                } else {
                    self.rsa.1
                }
            }
            0x1040..=0x105f => self.ec.1,
            0x200..=0x2ff | 0x350..=0x3ff => self.generic,
            _ => self.aes,
        }
    }
    fn rv(&self, call: &str, r: CK_RV) -> Result<CK_RV, TestCaseError> {
        self.calls.set(self.calls.get() + 1);
        if std::env::var_os("FUZZ_TALLY").is_some() {
            eprintln!("TALLY {call} {}", rv_name(r));
        }
        check_rv(call, r)
    }
    /// After a target: the library did not fail closed.
    fn finish(&self, target: &str) {
        let mut info: CK_INFO = unsafe { std::mem::zeroed() };
        let r = ck!(self.raw, C_GetInfo(&mut info));
        assert_eq!(
            r,
            CKR_OK,
            "{target}: C_GetInfo after the run: {}",
            rv_name(r)
        );
        println!(
            "{target}: {} C ABI calls, every one returned a CKR_ code, library not failed closed",
            self.calls.get()
        );
    }
}

fn open(raw: &Raw, slot: CK_SLOT_ID) -> S {
    let mut s: S = 0;
    let r = ck!(
        raw,
        C_OpenSession(
            slot,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            null_mut(),
            None,
            &mut s
        )
    );
    assert_eq!(r, CKR_OK, "C_OpenSession: {}", rv_name(r));
    s
}

fn login(raw: &Raw, s: S) {
    let mut pin = USER_PIN.as_bytes().to_vec();
    let r = ck!(
        raw,
        C_Login(s, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG)
    );
    assert!(
        r == CKR_OK || r == CKR_USER_ALREADY_LOGGED_IN,
        "C_Login: {}",
        rv_name(r)
    );
}

type Keys = (H, H, H, (H, H), (H, H), H);

fn keys(raw: &Raw, s: S) -> Keys {
    // CKA_PRIVATE false: a C_Logout in a call sequence must not take the fixture away.
    let all = |t: Tmpl| {
        t.bool(CKA_PRIVATE, false)
            .bool(CKA_ENCRYPT, true)
            .bool(CKA_DECRYPT, true)
            .bool(CKA_SIGN, true)
            .bool(CKA_VERIFY, true)
            .bool(CKA_WRAP, true)
            .bool(CKA_UNWRAP, true)
            .bool(CKA_DERIVE, true)
            .bool(CKA_EXTRACTABLE, true)
    };
    let aes = raw
        .generate_key(
            s,
            &mut Mech::new(CKM_AES_KEY_GEN),
            &mut all(Tmpl::new().ulong(CKA_VALUE_LEN, 32)),
        )
        .expect("AES-256");
    let aes128 = raw
        .generate_key(
            s,
            &mut Mech::new(CKM_AES_KEY_GEN),
            &mut all(Tmpl::new().ulong(CKA_VALUE_LEN, 16)),
        )
        .expect("AES-128");
    let generic = raw
        .generate_key(
            s,
            &mut Mech::new(CKM_GENERIC_SECRET_KEY_GEN),
            &mut all(Tmpl::new().ulong(CKA_VALUE_LEN, 32)),
        )
        .expect("generic secret");
    let ec = raw
        .generate_key_pair(
            s,
            &mut Mech::new(CKM_EC_KEY_PAIR_GEN),
            &mut Tmpl::new()
                .bytes(CKA_EC_PARAMS, &P256_OID)
                .bool(CKA_VERIFY, true),
            &mut Tmpl::new()
                .bool(CKA_PRIVATE, false)
                .bool(CKA_SIGN, true)
                .bool(CKA_DERIVE, true),
        )
        .expect("EC P-256");
    let rsa = raw
        .generate_key_pair(
            s,
            &mut Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &mut Tmpl::new()
                .ulong(CKA_MODULUS_BITS, 2048)
                .bool(CKA_ENCRYPT, true)
                .bool(CKA_VERIFY, true)
                .bool(CKA_WRAP, true),
            &mut Tmpl::new()
                .bool(CKA_PRIVATE, false)
                .bool(CKA_SIGN, true)
                .bool(CKA_DECRYPT, true)
                .bool(CKA_UNWRAP, true),
        )
        .expect("RSA-2048");
    let data = raw
        .create_object(
            s,
            &mut Tmpl::new()
                .ulong(CKA_CLASS, CKO_DATA)
                .bytes(CKA_LABEL, b"fuzz")
                .bytes(CKA_VALUE, b"value"),
        )
        .expect("data object");
    (aes, aes128, generic, ec, rsa, data)
}

// ---------------------------------------------------------------------------------------
// Templates

const ATTR_TYPES: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_APPLICATION,
    CKA_VALUE,
    CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE,
    CKA_KEY_TYPE,
    CKA_ID,
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_DERIVE,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_VALUE_LEN,
    CKA_EXTRACTABLE,
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_CHECK_VALUE,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE,
    CKA_DERIVE_TEMPLATE,
    CKA_ALLOWED_MECHANISMS,
    CKA_KEY_GEN_MECHANISM,
    CKA_UNIQUE_ID,
    CKA_VENDOR_DEFINED,
];

/// Attribute types whose value is itself a CK_ATTRIBUTE array (pointers inside).
fn is_template_attr(t: CK_ATTRIBUTE_TYPE) -> bool {
    t == CKA_WRAP_TEMPLATE || t == CKA_UNWRAP_TEMPLATE || t == CKA_DERIVE_TEMPLATE
}

#[derive(Debug, Clone)]
enum Val {
    Bytes(Vec<u8>),
    Ulong(CK_ULONG),
    /// pValue NULL with this length (CK_UNAVAILABLE_INFORMATION, > isize::MAX, ...).
    Null(CK_ULONG),
    /// A nested template (for the *_TEMPLATE attributes): (type, bytes) pairs.
    Nested(Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>),
}

fn attr_type() -> impl Strategy<Value = CK_ATTRIBUTE_TYPE> {
    prop_oneof![
        4 => prop::sample::select(ATTR_TYPES),
        1 => any::<u64>().prop_map(|t| t as CK_ATTRIBUTE_TYPE & !CKF_ARRAY_ATTRIBUTE),
        1 => (0u64..0x700).prop_map(|t| t as CK_ATTRIBUTE_TYPE),
    ]
}

fn small_ulong() -> impl Strategy<Value = CK_ULONG> {
    prop_oneof![
        0 as CK_ULONG..0x20,
        prop::sample::select(vec![
            CKO_DATA,
            CKO_SECRET_KEY,
            CKO_PUBLIC_KEY,
            CKO_PRIVATE_KEY,
            CKO_CERTIFICATE,
            CKK_AES,
            CKK_EC,
            CKK_RSA,
            CKK_GENERIC_SECRET,
            16,
            24,
            32,
            64,
            2048
        ]),
        any::<u64>().prop_map(|v| v as CK_ULONG),
    ]
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..48).prop_map(Val::Bytes),
        2 => small_ulong().prop_map(Val::Ulong),
        1 => prop_oneof![
            Just(0 as CK_ULONG),
            1 as CK_ULONG..64,
            prop::sample::select(HUGE.to_vec()),
        ]
        .prop_map(Val::Null),
        1 => prop::collection::vec(
            (prop::sample::select(ATTR_TYPES).prop_filter("flat", |t| !is_template_attr(*t)),
             prop::collection::vec(any::<u8>(), 0..9)),
            0..4,
        )
        .prop_map(Val::Nested),
    ]
}

fn template() -> impl Strategy<Value = Vec<(CK_ATTRIBUTE_TYPE, Val)>> {
    prop::collection::vec((attr_type(), val()), 0..10).prop_map(|v| {
        // A *_TEMPLATE attribute always gets a nested template (its value has pointers);
        // a nested template goes only under those types.
        v.into_iter()
            .map(|(t, v)| match (is_template_attr(t), v) {
                (true, Val::Nested(n)) => (t, Val::Nested(n)),
                (true, _) => (t, Val::Nested(vec![])),
                (false, Val::Nested(n)) => (t, Val::Bytes(n.concat_bytes())),
                (false, v) => (t, v),
            })
            .collect()
    })
}

trait Concat {
    fn concat_bytes(self) -> Vec<u8>;
}
impl Concat for Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    fn concat_bytes(self) -> Vec<u8> {
        self.into_iter().flat_map(|(_, b)| b).collect()
    }
}

/// The CK_ATTRIBUTE array of a generated template; owns every buffer it points to.
struct Built {
    bufs: Vec<Vec<u8>>,
    nested: Vec<Vec<CK_ATTRIBUTE>>,
    attrs: Vec<CK_ATTRIBUTE>,
}

fn build(t: &[(CK_ATTRIBUTE_TYPE, Val)]) -> Built {
    let mut b = Built {
        bufs: Vec::new(),
        nested: Vec::new(),
        attrs: Vec::new(),
    };
    for (ty, v) in t {
        let a = match v {
            Val::Bytes(x) => {
                b.bufs.push(x.clone());
                let p = b.bufs.last_mut().unwrap();
                CK_ATTRIBUTE {
                    type_: *ty,
                    pValue: if p.is_empty() {
                        null_mut()
                    } else {
                        p.as_mut_ptr().cast()
                    },
                    ulValueLen: p.len() as CK_ULONG,
                }
            }
            Val::Ulong(u) => {
                b.bufs.push(u.to_ne_bytes().to_vec());
                let p = b.bufs.last_mut().unwrap();
                CK_ATTRIBUTE {
                    type_: *ty,
                    pValue: p.as_mut_ptr().cast(),
                    ulValueLen: p.len() as CK_ULONG,
                }
            }
            Val::Null(len) => CK_ATTRIBUTE {
                type_: *ty,
                pValue: null_mut(),
                ulValueLen: *len,
            },
            Val::Nested(n) => {
                let mut inner = Vec::new();
                for (nt, nb) in n {
                    b.bufs.push(nb.clone());
                    let p = b.bufs.last_mut().unwrap();
                    inner.push(CK_ATTRIBUTE {
                        type_: *nt,
                        pValue: if p.is_empty() {
                            null_mut()
                        } else {
                            p.as_mut_ptr().cast()
                        },
                        ulValueLen: p.len() as CK_ULONG,
                    });
                }
                b.nested.push(inner);
                let p = b.nested.last_mut().unwrap();
                CK_ATTRIBUTE {
                    type_: *ty,
                    pValue: if p.is_empty() {
                        null_mut()
                    } else {
                        p.as_mut_ptr().cast()
                    },
                    ulValueLen: (p.len() * std::mem::size_of::<CK_ATTRIBUTE>()) as CK_ULONG,
                }
            }
        };
        b.attrs.push(a);
    }
    b
}

#[test]
fn fuzz_templates() {
    isolated("fuzz_templates", || {
        let fx = Fx::new();
        let r = &fx.raw;
        let mut runner = runner("fuzz_templates");
        runner
            .run(
                &(template(), 0u8..6, any::<u8>(), any::<bool>()),
                |(t, target, key, null_array)| {
                    let s = open(r, fx.slot);
                    let mut b = build(&t);
                    let n = b.attrs.len() as CK_ULONG;
                    let p = if null_array {
                        null_mut()
                    } else {
                        b.attrs.as_mut_ptr()
                    };
                    let mut h: H = 0;
                    match target {
                        0 => {
                            let rv =
                                fx.rv("C_CreateObject", ck!(r, C_CreateObject(s, p, n, &mut h)))?;
                            if rv == CKR_OK {
                                fx.rv("C_DestroyObject", ck!(r, C_DestroyObject(s, h)))?;
                            }
                        }
                        1 => {
                            let mut m = Mech::new(CKM_AES_KEY_GEN).ck();
                            let rv = fx.rv(
                                "C_GenerateKey",
                                ck!(r, C_GenerateKey(s, &mut m, p, n, &mut h)),
                            )?;
                            if rv == CKR_OK {
                                fx.rv("C_DestroyObject", ck!(r, C_DestroyObject(s, h)))?;
                            }
                        }
                        2 => {
                            let rv =
                                fx.rv("C_FindObjectsInit", ck!(r, C_FindObjectsInit(s, p, n)))?;
                            if rv == CKR_OK {
                                let mut found = [0 as H; 16];
                                let mut k: CK_ULONG = 0;
                                fx.rv(
                                    "C_FindObjects",
                                    ck!(r, C_FindObjects(s, found.as_mut_ptr(), 16, &mut k)),
                                )?;
                                fx.rv("C_FindObjectsFinal", ck!(r, C_FindObjectsFinal(s)))?;
                            }
                        }
                        3 | 4 => {
                            fx.rv(
                                "C_GetAttributeValue",
                                ck!(r, C_GetAttributeValue(s, fx.key(key), p, n)),
                            )?;
                        }
                        _ => {
                            // On a copy of the data object or the AES key (never the fixture).
                            let src = if key.is_multiple_of(2) {
                                fx.data
                            } else {
                                fx.aes
                            };
                            let mut c = Tmpl::new();
                            let mut ca = c.ck();
                            let rv = ck!(r, C_CopyObject(s, src, ca.as_mut_ptr(), 0, &mut h));
                            prop_assert_eq!(rv, CKR_OK, "C_CopyObject: {}", rv_name(rv));
                            fx.rv(
                                "C_SetAttributeValue",
                                ck!(r, C_SetAttributeValue(s, h, p, n)),
                            )?;
                            fx.rv("C_DestroyObject", ck!(r, C_DestroyObject(s, h)))?;
                        }
                    }
                    prop_assert_eq!(ck!(r, C_CloseSession(s)), CKR_OK);
                    Ok(())
                },
            )
            .unwrap();
        fx.finish("fuzz_templates");
    });
}

// ---------------------------------------------------------------------------------------
// Mechanism parameters

/// A buffer field of a parameter structure: NULL with a (random) length, or a valid
/// buffer with a length no larger than it.
#[derive(Debug, Clone)]
enum Field {
    Null(CK_ULONG),
    Buf(Vec<u8>, usize),
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        prop_oneof![
            Just(0 as CK_ULONG),
            1 as CK_ULONG..40,
            prop::sample::select(HUGE.to_vec())
        ]
        .prop_map(Field::Null),
        prop::collection::vec(any::<u8>(), 0..80)
            .prop_flat_map(|v| {
                let n = v.len();
                (Just(v), 0..=n)
            })
            .prop_map(|(v, l)| Field::Buf(v, l)),
    ]
}

#[derive(Debug, Clone)]
enum Param {
    /// Random bytes, random length (for mechanisms whose parameter holds no pointer), or a
    /// length that cannot be a pointer-holding structure's (not a multiple of 8).
    Bytes(Vec<u8>),
    /// The mechanism's own structure: ulongs and buffer fields.
    Struct(Vec<CK_ULONG>, Vec<Field>),
    /// An IV-like string of a usual length (8, 12, 16, 24 bytes).
    Iv(Vec<u8>),
    None,
}

fn param() -> impl Strategy<Value = Param> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..72).prop_map(Param::Bytes),
        (
            prop::collection::vec(small_ulong(), 6),
            prop::collection::vec(field(), 3)
        )
            .prop_map(|(u, f)| Param::Struct(u, f)),
        Just(Param::None),
        prop::sample::select(vec![8usize, 12, 16, 16, 24])
            .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n))
            .prop_map(Param::Iv),
    ]
}

/// Mechanisms whose parameter (if any) holds no pointer: random bytes are safe to pass.
fn pointer_free(m: CK_MECHANISM_TYPE) -> bool {
    !matches!(
        m,
        CKM_AES_GCM
            | CKM_AES_CCM
            | CKM_RSA_PKCS_OAEP
            | CKM_ECDH1_DERIVE
            | CKM_ECDH1_COFACTOR_DERIVE
            | CKM_CONCATENATE_BASE_AND_DATA
            | CKM_CONCATENATE_DATA_AND_BASE
            | CKM_XOR_BASE_AND_DATA
            | CKM_AES_ECB_ENCRYPT_DATA
            | CKM_DES3_ECB_ENCRYPT_DATA
            | CKM_AES_CBC_ENCRYPT_DATA
            | CKM_DES3_CBC_ENCRYPT_DATA
            | CKM_HKDF_DERIVE
            | CKM_HKDF_DATA
            | CKM_RSA_AES_KEY_WRAP
            | CKM_EDDSA
            | CKM_CHACHA20_POLY1305
            | CKM_SALSA20_POLY1305
            | CKM_SP800_108_COUNTER_KDF
            | CKM_SP800_108_FEEDBACK_KDF
            | CKM_SP800_108_DOUBLE_PIPELINE_KDF
            | CKM_ECDH_AES_KEY_WRAP
            | CKM_PKCS5_PBKD2
            | CKM_TLS_PRF
            | CKM_TLS12_KDF
            | CKM_TLS12_MASTER_KEY_DERIVE
            | CKM_TLS12_KEY_AND_MAC_DERIVE
            | CKM_SSL3_MASTER_KEY_DERIVE
            | CKM_SSL3_KEY_AND_MAC_DERIVE
            | CKM_TLS_MASTER_KEY_DERIVE
            | CKM_TLS_KEY_AND_MAC_DERIVE
    ) && m < CKM_VENDOR_DEFINED
}

/// Parameter storage: 8-byte words plus the buffers the pointers point into.
struct PBuf {
    words: Vec<u64>,
    len: usize,
    _bufs: Vec<Vec<u8>>,
    _inner: Option<Box<PBuf>>,
}

impl PBuf {
    fn bytes(b: &[u8]) -> PBuf {
        let mut words = vec![0u64; b.len().div_ceil(8)];
        // SAFETY: words holds at least b.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), words.as_mut_ptr().cast(), b.len()) };
        PBuf {
            words,
            len: b.len(),
            _bufs: vec![],
            _inner: None,
        }
    }
}

/// (pointer, length) of a buffer field; the buffer is kept in `bufs`.
fn ptr_len(f: &Field, bufs: &mut Vec<Vec<u8>>) -> (u64, u64) {
    match f {
        Field::Null(l) => (0, *l),
        Field::Buf(v, l) => {
            bufs.push(v.clone());
            let b = bufs.last_mut().unwrap();
            let p = if b.is_empty() {
                0
            } else {
                b.as_mut_ptr() as u64
            };
            (p, *l as u64)
        }
    }
}

/// Lays out the mechanism's parameter structure (the ones with pointers) from random
/// fields; pointers are NULL or valid, lengths within their buffers. None for mechanisms
/// this harness knows no structure of (they then get only pointer-free byte strings).
fn structured(m: CK_MECHANISM_TYPE, u: &[CK_ULONG], f: &[Field]) -> Option<PBuf> {
    let mut bufs = Vec::new();
    let u = |i: usize| u[i];
    let words: Vec<u64> = match m {
        // CK_GCM_PARAMS { pIv, ulIvLen, ulIvBits, pAAD, ulAADLen, ulTagBits }
        CKM_AES_GCM | CKM_CLOUDHSM_AES_GCM_VALUE => {
            let (iv, ivl) = ptr_len(&f[0], &mut bufs);
            let (aad, aadl) = ptr_len(&f[1], &mut bufs);
            vec![iv, ivl, u(0), aad, aadl, u(1)]
        }
        // CK_CCM_PARAMS { ulDataLen, pNonce, ulNonceLen, pAAD, ulAADLen, ulMACLen }
        CKM_AES_CCM => {
            let (n, nl) = ptr_len(&f[0], &mut bufs);
            let (aad, aadl) = ptr_len(&f[1], &mut bufs);
            vec![u(0), n, nl, aad, aadl, u(1)]
        }
        // CK_RSA_PKCS_OAEP_PARAMS { hashAlg, mgf, source, pSourceData, ulSourceDataLen }
        CKM_RSA_PKCS_OAEP => {
            let (p, l) = ptr_len(&f[0], &mut bufs);
            vec![u(0) % 0x300, u(1) % 8, u(2) % 3, p, l]
        }
        // CK_ECDH1_DERIVE_PARAMS { kdf, ulSharedDataLen, pSharedData, ulPublicDataLen,
        // pPublicData } (also the CloudHSM X9.63 KDFs)
        CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => {
            let (sd, sdl) = ptr_len(&f[0], &mut bufs);
            let (pd, pdl) = ptr_len(&f[1], &mut bufs);
            vec![u(0) % 16, sdl, sd, pdl, pd]
        }
        // CK_KEY_DERIVATION_STRING_DATA { pData, ulLen }
        CKM_CONCATENATE_BASE_AND_DATA
        | CKM_CONCATENATE_DATA_AND_BASE
        | CKM_XOR_BASE_AND_DATA
        | CKM_AES_ECB_ENCRYPT_DATA
        | CKM_DES3_ECB_ENCRYPT_DATA => {
            let (p, l) = ptr_len(&f[0], &mut bufs);
            vec![p, l]
        }
        // CK_AES_CBC_ENCRYPT_DATA_PARAMS { iv[16], pData, length }
        CKM_AES_CBC_ENCRYPT_DATA => {
            let (p, l) = ptr_len(&f[0], &mut bufs);
            vec![u(0), u(1), p, l]
        }
        // CK_HKDF_PARAMS { bExtract, bExpand, prfHashMechanism, ulSaltType, pSalt,
        // ulSaltLen, hSaltKey, pInfo, ulInfoLen }
        CKM_HKDF_DERIVE | CKM_HKDF_DATA => {
            let (s, sl) = ptr_len(&f[0], &mut bufs);
            let (i, il) = ptr_len(&f[1], &mut bufs);
            vec![
                u(0) & 0x0101,
                u(1) % 0x300,
                u(2) % 4,
                s,
                sl,
                u(3) % 4,
                i,
                il,
            ]
        }
        // CK_EDDSA_PARAMS { phFlag, ulContextDataLen, pContextData }
        CKM_EDDSA => {
            let (p, l) = ptr_len(&f[0], &mut bufs);
            vec![u(0) & 1, l, p]
        }
        // CK_SALSA20_CHACHA20_POLY1305_PARAMS { pNonce, ulNonceLen, pAAD, ulAADLen }
        CKM_CHACHA20_POLY1305 | CKM_SALSA20_POLY1305 => {
            let (n, nl) = ptr_len(&f[0], &mut bufs);
            let (a, al) = ptr_len(&f[1], &mut bufs);
            vec![n, nl, a, al]
        }
        _ => return None,
    };
    Some(PBuf {
        len: words.len() * 8,
        words,
        _bufs: bufs,
        _inner: None,
    })
}

/// CKM_CLOUDHSM_AES_GCM (clusterhsm.h), as a pattern constant.
const CKM_CLOUDHSM_AES_GCM_VALUE: CK_MECHANISM_TYPE = 0x8000_1087;

fn mech_param(m: CK_MECHANISM_TYPE, p: &Param) -> PBuf {
    match p {
        Param::None => PBuf::bytes(&[]),
        Param::Struct(u, f) => structured(m, u, f).unwrap_or_else(|| PBuf::bytes(&[])),
        Param::Bytes(b) | Param::Iv(b) => {
            if pointer_free(m) {
                PBuf::bytes(b)
            } else {
                // Never the size of a pointer-holding structure: the module must refuse
                // the length before it reads a pointer.
                let mut b = b.clone();
                if b.len().is_multiple_of(8) {
                    b.push(0);
                }
                PBuf::bytes(&b)
            }
        }
    }
}

#[test]
fn fuzz_mechanisms() {
    isolated("fuzz_mechanisms", || {
        let fx = Fx::new();
        let r = &fx.raw;
        let mechs = fx.mechs.clone();
        println!("fuzz_mechanisms: {} mechanisms listed", mechs.len());
        let mech = prop_oneof![
            6 => prop::sample::select(mechs),
            1 => any::<u64>().prop_map(|m| m as CK_MECHANISM_TYPE),
            1 => prop::sample::select(vec![
                CKM_AES_GCM, CKM_AES_CCM, CKM_RSA_PKCS_OAEP, CKM_ECDH1_DERIVE,
                CKM_CONCATENATE_BASE_AND_DATA, CKM_AES_CBC_ENCRYPT_DATA, CKM_HKDF_DERIVE,
                CKM_EDDSA, CKM_CHACHA20_POLY1305, CKM_CLOUDHSM_AES_GCM_VALUE,
            ]),
        ];
        let mut runner = runner("fuzz_mechanisms");
        runner
            .run(
                &(
                    mech,
                    param(),
                    0u8..5,
                    any::<u8>(),
                    prop::collection::vec(any::<u8>(), 0..100),
                ),
                |(m, p, op, key, data)| {
                    // Mostly a function the mechanism supports (CKF_ flags), else any.
                    let fits: Vec<u8> = [CKF_ENCRYPT, CKF_DECRYPT, CKF_SIGN, CKF_DERIVE, CKF_WRAP]
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| fx.flags.get(&m).is_some_and(|fl| fl & **f != 0))
                        .map(|(i, _)| i as u8)
                        .collect();
                    let op = if key % 4 != 0 && !fits.is_empty() {
                        fits[op as usize % fits.len()]
                    } else {
                        op
                    };
                    let s = open(r, fx.slot);
                    let mut pb = mech_param(m, &p);
                    let mut ck = CK_MECHANISM {
                        mechanism: m,
                        pParameter: if pb.len == 0 {
                            null_mut()
                        } else {
                            pb.words.as_mut_ptr().cast()
                        },
                        ulParameterLen: pb.len as CK_ULONG,
                    };
                    // Half the time a key of the mechanism's family, else any (mismatches).
                    let k = if key < 128 {
                        fx.key_for(m, op)
                    } else {
                        fx.key(key)
                    };
                    let mut d = data.clone();
                    let mut out = vec![0u8; 4096];
                    let mut ol: CK_ULONG = out.len() as CK_ULONG;
                    let dl = d.len() as CK_ULONG;
                    match op {
                        0 => {
                            if fx.rv("C_EncryptInit", ck!(r, C_EncryptInit(s, &mut ck, k)))?
                                == CKR_OK
                            {
                                fx.rv(
                                    "C_Encrypt",
                                    ck!(
                                        r,
                                        C_Encrypt(s, d.as_mut_ptr(), dl, out.as_mut_ptr(), &mut ol)
                                    ),
                                )?;
                            }
                        }
                        1 => {
                            if fx.rv("C_DecryptInit", ck!(r, C_DecryptInit(s, &mut ck, k)))?
                                == CKR_OK
                            {
                                fx.rv(
                                    "C_Decrypt",
                                    ck!(
                                        r,
                                        C_Decrypt(s, d.as_mut_ptr(), dl, out.as_mut_ptr(), &mut ol)
                                    ),
                                )?;
                            }
                        }
                        2 => {
                            if fx.rv("C_SignInit", ck!(r, C_SignInit(s, &mut ck, k)))? == CKR_OK {
                                fx.rv(
                                    "C_Sign",
                                    ck!(
                                        r,
                                        C_Sign(s, d.as_mut_ptr(), dl, out.as_mut_ptr(), &mut ol)
                                    ),
                                )?;
                            }
                        }
                        3 => {
                            let mut t = Tmpl::new()
                                .ulong(CKA_CLASS, CKO_SECRET_KEY)
                                .ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
                                .ulong(CKA_VALUE_LEN, 32);
                            let mut a = t.ck();
                            let mut h: H = 0;
                            let rv = fx.rv(
                                "C_DeriveKey",
                                ck!(
                                    r,
                                    C_DeriveKey(
                                        s,
                                        &mut ck,
                                        k,
                                        a.as_mut_ptr(),
                                        a.len() as CK_ULONG,
                                        &mut h
                                    )
                                ),
                            )?;
                            if rv == CKR_OK {
                                fx.rv("C_DestroyObject", ck!(r, C_DestroyObject(s, h)))?;
                            }
                        }
                        _ => {
                            let target = fx.key(key / 10);
                            let rv = fx.rv(
                                "C_WrapKey",
                                ck!(r, C_WrapKey(s, &mut ck, k, target, null_mut(), &mut ol)),
                            )?;
                            if rv == CKR_OK && ol as usize <= out.len() {
                                fx.rv(
                                    "C_WrapKey",
                                    ck!(
                                        r,
                                        C_WrapKey(s, &mut ck, k, target, out.as_mut_ptr(), &mut ol)
                                    ),
                                )?;
                            }
                        }
                    }
                    drop(pb);
                    prop_assert_eq!(ck!(r, C_CloseSession(s)), CKR_OK);
                    Ok(())
                },
            )
            .unwrap();
        fx.finish("fuzz_mechanisms");
    });
}

// ---------------------------------------------------------------------------------------
// Random call sequences

#[derive(Debug, Clone)]
enum Hs {
    /// One of the sessions this case opened (possibly closed since).
    Session(u8),
    Zero,
    Random(u64),
}

#[derive(Debug, Clone)]
enum Out {
    Null,
    /// An honest buffer of this length.
    Buf(u16),
    /// NULL with a huge length.
    NullHuge(u8),
}

#[derive(Debug, Clone)]
enum In {
    Bytes(Vec<u8>),
    NullLen(CK_ULONG),
}

#[derive(Debug, Clone)]
struct Call {
    f: u8,
    h: Hs,
    obj: u8,
    mech: u8,
    input: In,
    out: Out,
    ulong: CK_ULONG,
}

fn call() -> impl Strategy<Value = Call> {
    (
        0u8..40,
        prop_oneof![
            6 => (0u8..4).prop_map(Hs::Session),
            1 => Just(Hs::Zero),
            1 => any::<u64>().prop_map(Hs::Random),
        ],
        any::<u8>(),
        0u8..8,
        prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..100).prop_map(In::Bytes),
            1 => prop_oneof![Just(0 as CK_ULONG), 1 as CK_ULONG..64, prop::sample::select(HUGE.to_vec())]
                .prop_map(In::NullLen),
        ],
        prop_oneof![
            1 => Just(Out::Null),
            4 => (0u16..600).prop_map(Out::Buf),
            1 => (0u8..3).prop_map(Out::NullHuge),
        ],
        small_ulong(),
    )
        .prop_map(|(f, h, obj, mech, input, out, ulong)| Call {
            f,
            h,
            obj,
            mech,
            input,
            out,
            ulong,
        })
}

struct SeqState<'a> {
    fx: &'a Fx,
    sessions: Vec<S>,
    objects: Vec<H>,
    keep: Vec<Vec<u8>>,
}

impl SeqState<'_> {
    fn session(&self, h: &Hs) -> S {
        match h {
            Hs::Session(i) => self
                .sessions
                .get(*i as usize % self.sessions.len().max(1))
                .copied()
                .unwrap_or(0),
            Hs::Zero => 0,
            Hs::Random(r) => *r as S,
        }
    }
    fn object(&self, i: u8) -> H {
        if (i as usize) < self.objects.len() {
            self.objects[i as usize]
        } else if i.is_multiple_of(3) {
            i as H * 7919
        } else {
            self.fx.key(i)
        }
    }
}

fn mechanism(i: u8, iv: &mut [u8; 16], gcm: &mut CK_GCM_PARAMS) -> CK_MECHANISM {
    let (m, p, l): (CK_MECHANISM_TYPE, *mut std::ffi::c_void, usize) = match i {
        0 => (CKM_AES_CBC_PAD, iv.as_mut_ptr().cast(), 16),
        1 => (CKM_AES_ECB, null_mut(), 0),
        2 => (
            CKM_AES_GCM,
            (gcm as *mut CK_GCM_PARAMS).cast(),
            std::mem::size_of::<CK_GCM_PARAMS>(),
        ),
        3 => (CKM_ECDSA_SHA256, null_mut(), 0),
        4 => (CKM_SHA256_HMAC, null_mut(), 0),
        5 => (CKM_SHA256, null_mut(), 0),
        6 => (CKM_RSA_PKCS, null_mut(), 0),
        _ => (CKM_AES_CMAC, null_mut(), 0),
    };
    CK_MECHANISM {
        mechanism: m,
        pParameter: p,
        ulParameterLen: l as CK_ULONG,
    }
}

fn run_call(st: &mut SeqState, c: &Call) -> Result<(), TestCaseError> {
    let fx = st.fx;
    let r = &fx.raw;
    let s = st.session(&c.h);
    let o = st.object(c.obj);
    let mut iv = [3u8; 16];
    let mut gcm_iv = [9u8; 12];
    let mut gcm = CK_GCM_PARAMS {
        pIv: gcm_iv.as_mut_ptr(),
        ulIvLen: 12,
        ulIvBits: 96,
        pAAD: null_mut(),
        ulAADLen: 0,
        ulTagBits: 128,
    };
    let mut m = mechanism(c.mech, &mut iv, &mut gcm);
    let (inp, inl): (*mut u8, CK_ULONG) = match &c.input {
        In::Bytes(b) => {
            st.keep.push(b.clone());
            let b = st.keep.last_mut().unwrap();
            (
                if b.is_empty() {
                    null_mut()
                } else {
                    b.as_mut_ptr()
                },
                b.len() as CK_ULONG,
            )
        }
        In::NullLen(l) => (null_mut(), *l),
    };
    let mut outbuf = vec![
        0u8;
        match c.out {
            Out::Buf(n) => n as usize,
            _ => 0,
        }
    ];
    let (outp, mut outl): (*mut u8, CK_ULONG) = match c.out {
        Out::Null => (null_mut(), 0),
        Out::Buf(n) => (outbuf.as_mut_ptr(), n as CK_ULONG),
        Out::NullHuge(i) => (null_mut(), HUGE[i as usize % 3]),
    };
    let name;
    let rv = match c.f {
        0 => {
            name = "C_OpenSession";
            let mut h: S = 0;
            let flags = [
                CKF_SERIAL_SESSION,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                0,
                c.ulong,
            ][c.obj as usize % 4];
            let rv = ck!(r, C_OpenSession(fx.slot, flags, null_mut(), None, &mut h));
            if rv == CKR_OK {
                st.sessions.push(h);
            }
            rv
        }
        1 => {
            name = "C_CloseSession";
            ck!(r, C_CloseSession(s))
        }
        2 => {
            name = "C_GetSessionInfo";
            let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
            let p = if c.obj.is_multiple_of(4) {
                null_mut()
            } else {
                &mut info as *mut _
            };
            ck!(r, C_GetSessionInfo(s, p))
        }
        3 => {
            name = "C_Login";
            // Always the right PIN for the user type (a wrong one, and NULL with length 0 is
            // an empty PIN, would lock the user out and end the fuzzing), or NULL with a
            // nonzero length (CKR_ARGUMENTS_BAD).
            let user = [CKU_USER, CKU_SO, CKU_CONTEXT_SPECIFIC, c.ulong][c.mech as usize % 4];
            let mut pin = if user == CKU_SO {
                SO_PIN.as_bytes().to_vec()
            } else {
                USER_PIN.as_bytes().to_vec()
            };
            let (pp, pl) = match &c.input {
                In::NullLen(l) if *l != 0 => (null_mut(), *l),
                _ => (pin.as_mut_ptr(), pin.len() as CK_ULONG),
            };
            ck!(r, C_Login(s, user, pp, pl))
        }
        4 => {
            name = "C_Logout";
            ck!(r, C_Logout(s))
        }
        5 => {
            name = "C_FindObjectsInit";
            ck!(r, C_FindObjectsInit(s, null_mut(), 0))
        }
        6 => {
            name = "C_FindObjects";
            let mut buf = vec![0 as H; (c.ulong % 64) as usize];
            let mut n: CK_ULONG = 0;
            let bp = if buf.is_empty() {
                null_mut()
            } else {
                buf.as_mut_ptr()
            };
            let np = if c.obj.is_multiple_of(7) {
                null_mut()
            } else {
                &mut n as *mut _
            };
            ck!(r, C_FindObjects(s, bp, buf.len() as CK_ULONG, np))
        }
        7 => {
            name = "C_FindObjectsFinal";
            ck!(r, C_FindObjectsFinal(s))
        }
        8 => {
            name = "C_EncryptInit";
            let mp = if c.obj.is_multiple_of(9) {
                null_mut()
            } else {
                &mut m as *mut _
            };
            ck!(r, C_EncryptInit(s, mp, o))
        }
        9 => {
            name = "C_Encrypt";
            ck!(r, C_Encrypt(s, inp, inl, outp, &mut outl))
        }
        10 => {
            name = "C_EncryptUpdate";
            ck!(r, C_EncryptUpdate(s, inp, inl, outp, &mut outl))
        }
        11 => {
            name = "C_EncryptFinal";
            ck!(r, C_EncryptFinal(s, outp, &mut outl))
        }
        12 => {
            name = "C_DecryptInit";
            ck!(r, C_DecryptInit(s, &mut m, o))
        }
        13 => {
            name = "C_Decrypt";
            ck!(r, C_Decrypt(s, inp, inl, outp, &mut outl))
        }
        14 => {
            name = "C_DecryptUpdate";
            ck!(r, C_DecryptUpdate(s, inp, inl, outp, &mut outl))
        }
        15 => {
            name = "C_DecryptFinal";
            ck!(r, C_DecryptFinal(s, outp, &mut outl))
        }
        16 => {
            name = "C_SignInit";
            ck!(r, C_SignInit(s, &mut m, o))
        }
        17 => {
            name = "C_Sign";
            ck!(r, C_Sign(s, inp, inl, outp, &mut outl))
        }
        18 => {
            name = "C_SignUpdate";
            ck!(r, C_SignUpdate(s, inp, inl))
        }
        19 => {
            name = "C_SignFinal";
            ck!(r, C_SignFinal(s, outp, &mut outl))
        }
        20 => {
            name = "C_VerifyInit";
            ck!(r, C_VerifyInit(s, &mut m, o))
        }
        21 => {
            name = "C_Verify";
            ck!(
                r,
                C_Verify(s, inp, inl, outp, outl.min(outbuf.len() as CK_ULONG))
            )
        }
        22 => {
            name = "C_VerifyFinal";
            ck!(
                r,
                C_VerifyFinal(s, outp, outl.min(outbuf.len() as CK_ULONG))
            )
        }
        23 => {
            name = "C_DigestInit";
            ck!(r, C_DigestInit(s, &mut m))
        }
        24 => {
            name = "C_Digest";
            ck!(r, C_Digest(s, inp, inl, outp, &mut outl))
        }
        25 => {
            name = "C_DigestUpdate";
            ck!(r, C_DigestUpdate(s, inp, inl))
        }
        26 => {
            name = "C_DigestKey";
            ck!(r, C_DigestKey(s, o))
        }
        27 => {
            name = "C_DigestFinal";
            ck!(r, C_DigestFinal(s, outp, &mut outl))
        }
        28 => {
            name = "C_GenerateRandom";
            ck!(r, C_GenerateRandom(s, outp, outl))
        }
        29 => {
            name = "C_SeedRandom";
            ck!(r, C_SeedRandom(s, inp, inl))
        }
        30 => {
            name = "C_GetAttributeValue";
            let ty = [
                CKA_LABEL,
                CKA_VALUE,
                CKA_CLASS,
                CKA_KEY_TYPE,
                CKA_EC_POINT,
                CKA_MODULUS,
                c.ulong,
                CKA_WRAP_TEMPLATE,
            ][c.mech as usize % 8];
            let mut a = [CK_ATTRIBUTE {
                type_: ty,
                pValue: outp.cast(),
                ulValueLen: outl,
            }];
            ck!(r, C_GetAttributeValue(s, o, a.as_mut_ptr(), 1))
        }
        31 => {
            name = "C_SetAttributeValue";
            let mut a = [CK_ATTRIBUTE {
                type_: [CKA_LABEL, CKA_ID, CKA_VALUE, CKA_ENCRYPT][c.mech as usize % 4],
                pValue: inp.cast(),
                ulValueLen: inl,
            }];
            ck!(r, C_SetAttributeValue(s, o, a.as_mut_ptr(), 1))
        }
        32 => {
            name = "C_GenerateKey";
            let mut gm = Mech::new(CKM_AES_KEY_GEN).ck();
            let mut t =
                Tmpl::new().ulong(CKA_VALUE_LEN, [16, 24, 32, c.ulong][c.mech as usize % 4]);
            let mut a = t.ck();
            let mut h: H = 0;
            let rv = ck!(
                r,
                C_GenerateKey(s, &mut gm, a.as_mut_ptr(), a.len() as CK_ULONG, &mut h)
            );
            if rv == CKR_OK {
                st.objects.push(h);
            }
            rv
        }
        33 => {
            name = "C_DestroyObject";
            // Only objects this case made (the fixture keys stay).
            let h = if st.objects.is_empty() {
                c.ulong
            } else {
                st.objects[c.obj as usize % st.objects.len()]
            };
            ck!(r, C_DestroyObject(s, h))
        }
        34 => {
            name = "C_GetObjectSize";
            let mut n: CK_ULONG = 0;
            let p = if c.obj.is_multiple_of(5) {
                null_mut()
            } else {
                &mut n as *mut _
            };
            ck!(r, C_GetObjectSize(s, o, p))
        }
        35 => {
            name = "C_CopyObject";
            let mut h: H = 0;
            let rv = ck!(r, C_CopyObject(s, o, null_mut(), 0, &mut h));
            if rv == CKR_OK {
                st.objects.push(h);
            }
            rv
        }
        36 => {
            name = "C_GetOperationState";
            ck!(r, C_GetOperationState(s, outp, &mut outl))
        }
        37 => {
            name = "C_SetOperationState";
            ck!(r, C_SetOperationState(s, inp, inl, o, 0))
        }
        38 => {
            name = "C_GetMechanismInfo";
            let mut info: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
            ck!(r, C_GetMechanismInfo(fx.slot, c.ulong, &mut info))
        }
        _ => {
            name = "C_GetTokenInfo";
            let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
            let p = if c.obj.is_multiple_of(5) {
                null_mut()
            } else {
                &mut info as *mut _
            };
            ck!(
                r,
                C_GetTokenInfo(
                    if c.obj.is_multiple_of(3) {
                        c.ulong
                    } else {
                        fx.slot
                    },
                    p
                )
            )
        }
    };
    // A returned output length never exceeds an honest buffer when CKR_OK says it was written.
    if rv == CKR_OK
        && !outp.is_null()
        && matches!(c.out, Out::Buf(_))
        && [9, 10, 11, 13, 14, 15, 17, 19, 24, 27, 36].contains(&c.f)
    {
        prop_assert!(
            outl as usize <= outbuf.len(),
            "{name} wrote {outl} bytes into {}",
            outbuf.len()
        );
    }
    fx.rv(name, rv)?;
    Ok(())
}

#[test]
fn fuzz_call_sequences() {
    isolated("fuzz_call_sequences", || {
        let fx = Fx::new();
        let r = &fx.raw;
        let mut runner = runner("fuzz_call_sequences");
        runner
            .run(&prop::collection::vec(call(), 1..24), |calls| {
                let s0 = open(r, fx.slot);
                // Whoever the last case left logged in (the user, the SO), start as the user.
                let _ = ck!(r, C_Logout(s0));
                login(r, s0);
                let mut st = SeqState {
                    fx: &fx,
                    sessions: vec![s0],
                    objects: vec![],
                    keep: vec![],
                };
                for c in &calls {
                    run_call(&mut st, c)?;
                }
                // Back to a known state: every session this case opened closed (the fixture's
                // own session is not among them; its keys survive only while it is open).
                for s in st.sessions {
                    let rv = ck!(r, C_CloseSession(s));
                    prop_assert!(
                        rv == CKR_OK || rv == CKR_SESSION_HANDLE_INVALID,
                        "C_CloseSession at the end: {}",
                        rv_name(rv)
                    );
                }
                Ok(())
            })
            .unwrap();
        fx.finish("fuzz_call_sequences");
    });
}

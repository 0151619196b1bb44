//! The project's own benchmark: every case of issue 7 against the built
//! `libclusterhsm.so` through the C ABI (libloading + cryptoki-sys, the raw function list,
//! as `pkcs11-tests/tests/common/raw.rs` does), and the same RSA-2048 sign, RSA-2048 keygen
//! and ECDSA sign done with aws-lc-rs directly in this process, interleaved round by round
//! with the module case, so "module / aws-lc-rs alone" is a fair ratio.
//!
//! ```text
//! cargo build --release && cargo build --release --example bench
//! target/release/examples/bench [--module target/release/libclusterhsm.so] [--seconds 2]
//!     [--rounds 3] [--threads 1,2] [--keygen-seconds 30] [--only 'rsa*,find_objects']
//!     [--objects 1000] [--json FILE] [--store DIR] [--list]
//! target/release/examples/bench --scale [--aes 100000] [--rsa 10000] [--rsa-distinct 16]
//!     [--json FILE] [--store DIR] [--keep-store]
//! target/release/examples/bench --scale-child open|full --store DIR   # one fresh process
//! ```
//!
//! The cases, their names and their call sequences are those of p11bench
//! (`../shared/bench`, same token setup: C_InitToken, C_InitPIN, C_Login as the user; token
//! keys; 1,000 CKO_DATA token objects for `find_objects`; one Init plus one call with a
//! pre-sized output buffer per operation), so its JSON joins p11bench's by case name.
//!
//! `--scale` builds a token with `--aes` AES-256 keys and `--rsa` RSA-2048 private keys
//! imported with C_CreateObject from material generated here (aws-lc-rs makes
//! `--rsa-distinct` distinct RSA keys, which are reused round-robin under distinct labels:
//! generating 10,000 RSA keys would take about 20 minutes on this kind of machine). Then
//! fresh processes (this binary with `--scale-child`) time C_Initialize + C_GetSlotList +
//! C_OpenSession + C_Login, find_objects by label among all objects, use every key once,
//! and report the resident set (VmRSS/VmHWM, and `/usr/bin/time -v` when present).

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use cryptoki_sys::*;
use serde_json::{json, Value};
use std::ffi::c_void;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const CHUNK: usize = 64 * 1024;
const MIN_ITERS: u64 = 5;
const SO_PIN: &[u8] = b"87654321";
const USER_PIN: &[u8] = b"12345678";

// ---------------------------------------------------------------- errors and calls

#[derive(Clone, Copy, Debug)]
struct Fail {
    rv: CK_RV,
    call: &'static str,
}
type R<T> = Result<T, Fail>;

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: CKR 0x{:x}", self.call, self.rv)
    }
}

fn fail(call: &'static str) -> Fail {
    Fail {
        rv: CKR_GENERAL_ERROR,
        call,
    }
}

/// The module's function list; `'static` because the library is never unloaded.
#[derive(Clone, Copy)]
struct Api(&'static CK_FUNCTION_LIST);

/// `ck!(api, C_Foo(args...))` → `R<()>`.
macro_rules! ck {
    ($api:expr, $f:ident ( $($a:expr),* $(,)? )) => {{
        match $api.0.$f {
            // SAFETY: the module implements the PKCS#11 ABI; every call site passes valid
            // pointers into buffers that outlive the call.
            Some(func) => match unsafe { func($($a),*) } {
                CKR_OK => Ok(()),
                rv => Err(Fail { rv, call: stringify!($f) }),
            },
            None => Err(Fail { rv: CKR_FUNCTION_NOT_SUPPORTED, call: stringify!($f) }),
        }
    }};
}

/// Owned attribute template; values in 8-byte aligned heap buffers.
struct Tmpl {
    attrs: Vec<CK_ATTRIBUTE>,
    bufs: Vec<Vec<u64>>,
}

impl Tmpl {
    fn new() -> Tmpl {
        Tmpl {
            attrs: Vec::new(),
            bufs: Vec::new(),
        }
    }
    fn raw(mut self, t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> Tmpl {
        let mut buf = vec![0u64; v.len().div_ceil(8).max(1)];
        // SAFETY: buf holds at least v.len() bytes; the regions do not overlap.
        unsafe { ptr::copy_nonoverlapping(v.as_ptr(), buf.as_mut_ptr().cast::<u8>(), v.len()) };
        self.attrs.push(CK_ATTRIBUTE {
            type_: t,
            pValue: buf.as_mut_ptr().cast(),
            ulValueLen: v.len() as CK_ULONG,
        });
        self.bufs.push(buf); // the heap buffer does not move with the Vec
        self
    }
    fn b(self, t: CK_ATTRIBUTE_TYPE, v: bool) -> Tmpl {
        self.raw(t, &[v as u8])
    }
    fn u(self, t: CK_ATTRIBUTE_TYPE, v: CK_ULONG) -> Tmpl {
        self.raw(t, &v.to_ne_bytes())
    }
    fn ptr(&mut self) -> *mut CK_ATTRIBUTE {
        self.attrs.as_mut_ptr()
    }
    fn len(&self) -> CK_ULONG {
        self.attrs.len() as CK_ULONG
    }
}

#[derive(Clone, Copy, Default)]
struct Keys {
    public: CK_OBJECT_HANDLE,
    private: CK_OBJECT_HANDLE,
}

impl Api {
    fn open(&self, slot: CK_SLOT_ID) -> R<CK_SESSION_HANDLE> {
        let mut s = 0;
        let flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
        ck!(
            self,
            C_OpenSession(slot, flags, ptr::null_mut(), None, &mut s)
        )?;
        Ok(s)
    }
    fn login(&self, s: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> R<()> {
        ck!(
            self,
            C_Login(s, user, pin.as_ptr() as *mut u8, pin.len() as CK_ULONG)
        )
    }
    fn create(&self, s: CK_SESSION_HANDLE, t: &mut Tmpl) -> R<CK_OBJECT_HANDLE> {
        let mut h = 0;
        ck!(self, C_CreateObject(s, t.ptr(), t.len(), &mut h))?;
        Ok(h)
    }
    fn destroy(&self, s: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE) -> R<()> {
        ck!(self, C_DestroyObject(s, h))
    }
    fn gen_key(
        &self,
        s: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        t: &mut Tmpl,
    ) -> R<CK_OBJECT_HANDLE> {
        let mut m = CK_MECHANISM {
            mechanism: mech,
            pParameter: ptr::null_mut(),
            ulParameterLen: 0,
        };
        let mut h = 0;
        ck!(self, C_GenerateKey(s, &mut m, t.ptr(), t.len(), &mut h))?;
        Ok(h)
    }
    fn gen_pair(
        &self,
        s: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        p: &mut Tmpl,
        q: &mut Tmpl,
    ) -> R<Keys> {
        let mut m = CK_MECHANISM {
            mechanism: mech,
            pParameter: ptr::null_mut(),
            ulParameterLen: 0,
        };
        let mut k = Keys::default();
        ck!(
            self,
            C_GenerateKeyPair(
                s,
                &mut m,
                p.ptr(),
                p.len(),
                q.ptr(),
                q.len(),
                &mut k.public,
                &mut k.private
            )
        )?;
        Ok(k)
    }
    fn sign(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut CK_MECHANISM,
        k: CK_OBJECT_HANDLE,
        data: &[u8],
        out: &mut [u8],
    ) -> R<usize> {
        ck!(self, C_SignInit(s, m, k))?;
        let mut l = out.len() as CK_ULONG;
        ck!(
            self,
            C_Sign(
                s,
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut l
            )
        )?;
        Ok(l as usize)
    }
    fn verify(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut CK_MECHANISM,
        k: CK_OBJECT_HANDLE,
        data: &[u8],
        sig: &[u8],
    ) -> R<()> {
        ck!(self, C_VerifyInit(s, m, k))?;
        ck!(
            self,
            C_Verify(
                s,
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                sig.as_ptr() as *mut u8,
                sig.len() as CK_ULONG
            )
        )
    }
    fn encrypt(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut CK_MECHANISM,
        k: CK_OBJECT_HANDLE,
        data: &[u8],
        out: &mut [u8],
    ) -> R<usize> {
        ck!(self, C_EncryptInit(s, m, k))?;
        let mut l = out.len() as CK_ULONG;
        ck!(
            self,
            C_Encrypt(
                s,
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut l
            )
        )?;
        Ok(l as usize)
    }
    fn decrypt(
        &self,
        s: CK_SESSION_HANDLE,
        m: &mut CK_MECHANISM,
        k: CK_OBJECT_HANDLE,
        data: &[u8],
        out: &mut [u8],
    ) -> R<usize> {
        ck!(self, C_DecryptInit(s, m, k))?;
        let mut l = out.len() as CK_ULONG;
        ck!(
            self,
            C_Decrypt(
                s,
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut l
            )
        )?;
        Ok(l as usize)
    }
    fn slots(&self) -> R<Vec<CK_SLOT_ID>> {
        let mut n: CK_ULONG = 0;
        ck!(self, C_GetSlotList(CK_FALSE, ptr::null_mut(), &mut n))?;
        let mut v = vec![0; n as usize];
        ck!(self, C_GetSlotList(CK_FALSE, v.as_mut_ptr(), &mut n))?;
        v.truncate(n as usize);
        Ok(v)
    }
    fn token_flags(&self, slot: CK_SLOT_ID) -> R<CK_FLAGS> {
        // SAFETY: CK_TOKEN_INFO is plain data; all zero bytes is a valid value.
        let mut ti: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
        ck!(self, C_GetTokenInfo(slot, &mut ti))?;
        Ok(ti.flags)
    }
    /// All handles matching the template, in one search.
    fn find_all(&self, s: CK_SESSION_HANDLE, t: &mut Tmpl) -> R<Vec<CK_OBJECT_HANDLE>> {
        ck!(self, C_FindObjectsInit(s, t.ptr(), t.len()))?;
        let mut out = Vec::new();
        let mut buf = vec![0 as CK_OBJECT_HANDLE; 4096];
        loop {
            let mut n: CK_ULONG = 0;
            let r = ck!(
                self,
                C_FindObjects(s, buf.as_mut_ptr(), buf.len() as CK_ULONG, &mut n)
            );
            if let Err(e) = r {
                let _ = ck!(self, C_FindObjectsFinal(s));
                return Err(e);
            }
            out.extend_from_slice(&buf[..n as usize]);
            if n == 0 {
                break;
            }
        }
        ck!(self, C_FindObjectsFinal(s))?;
        Ok(out)
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31).wrapping_add(7)) as u8)
        .collect()
}

fn padded32(s: &[u8]) -> [u8; 32] {
    let mut l = [b' '; 32];
    l[..s.len()].copy_from_slice(s);
    l
}

/// dlopen the module (never unloaded) and return its function list.
fn load(path: &Path) -> Result<Api, String> {
    // SAFETY: loading the module runs its initializers, which have no preconditions.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("dlopen {}: {e}", path.display()))?;
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));
    type GetList = unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV;
    // SAFETY: C_GetFunctionList has this signature in every PKCS#11 module.
    let get: libloading::Symbol<GetList> =
        unsafe { lib.get(b"C_GetFunctionList\0") }.map_err(|e| e.to_string())?;
    let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
    // SAFETY: valid out pointer.
    let rv = unsafe { get(&mut list) };
    if rv != CKR_OK || list.is_null() {
        return Err(format!("C_GetFunctionList: 0x{rv:x}"));
    }
    // SAFETY: the module's static list lives as long as the library, which is leaked.
    Ok(Api(unsafe { &*list }))
}

fn initialize(api: Api) -> R<()> {
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: ptr::null_mut(),
    };
    ck!(
        api,
        C_Initialize((&mut args as *mut CK_C_INITIALIZE_ARGS).cast())
    )
}

/// Fresh token: C_InitToken on the first uninitialized slot, SO login, C_InitPIN, then the
/// user logged in on the returned (slot, session).
fn setup_token(api: Api) -> R<(CK_SLOT_ID, CK_SESSION_HANDLE)> {
    initialize(api)?;
    let mut free = None;
    for s in api.slots()? {
        if api.token_flags(s)? & CKF_TOKEN_INITIALIZED == 0 {
            free = Some(s);
            break;
        }
    }
    let slot = free.ok_or(fail("no free slot"))?;
    let label = padded32(b"bench");
    ck!(
        api,
        C_InitToken(
            slot,
            SO_PIN.as_ptr() as *mut u8,
            SO_PIN.len() as CK_ULONG,
            label.as_ptr() as *mut u8
        )
    )?;
    let slot = find_token_slot(api)?;
    let s = api.open(slot)?;
    api.login(s, CKU_SO, SO_PIN)?;
    ck!(
        api,
        C_InitPIN(s, USER_PIN.as_ptr() as *mut u8, USER_PIN.len() as CK_ULONG)
    )?;
    ck!(api, C_Logout(s))?;
    api.login(s, CKU_USER, USER_PIN)?;
    Ok((slot, s))
}

fn find_token_slot(api: Api) -> R<CK_SLOT_ID> {
    for s in api.slots()? {
        if api.token_flags(s)? & CKF_TOKEN_INITIALIZED != 0 {
            return Ok(s);
        }
    }
    Err(fail("no initialized token"))
}

// ---------------------------------------------------------------- mechanisms

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum M {
    Sha256RsaPkcs,
    PssSha256,
    OaepSha1,
    Ecdsa,
    EcdsaSha384,
    Hmac256,
    AesCbc,
    AesCbcPad,
    AesGcm,
    AesEcb,
    Sha256,
}

/// Mechanism parameters in stable heap storage.
struct MechBuf {
    m: M,
    iv: Box<[u8; 16]>,
    pss: Box<CK_RSA_PKCS_PSS_PARAMS>,
    oaep: Box<CK_RSA_PKCS_OAEP_PARAMS>,
    gcm: Box<CK_GCM_PARAMS>,
    ctr: u64,
}

impl MechBuf {
    fn new(m: M) -> MechBuf {
        MechBuf {
            m,
            iv: Box::new([0x42; 16]),
            pss: Box::new(CK_RSA_PKCS_PSS_PARAMS {
                hashAlg: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                sLen: 32,
            }),
            oaep: Box::new(CK_RSA_PKCS_OAEP_PARAMS {
                hashAlg: CKM_SHA_1,
                mgf: CKG_MGF1_SHA1,
                source: CKZ_DATA_SPECIFIED,
                pSourceData: ptr::null_mut(),
                ulSourceDataLen: 0,
            }),
            gcm: Box::new(CK_GCM_PARAMS {
                pIv: ptr::null_mut(),
                ulIvLen: 12,
                ulIvBits: 96,
                pAAD: ptr::null_mut(),
                ulAADLen: 0,
                ulTagBits: 128,
            }),
            ctr: 0,
        }
    }
    fn bump_iv(&mut self) {
        self.ctr += 1;
        self.iv[4..12].copy_from_slice(&self.ctr.to_be_bytes());
    }
    fn get(&mut self) -> CK_MECHANISM {
        fn p<T>(b: &mut T) -> *mut c_void {
            (b as *mut T).cast()
        }
        let (mech, param, len): (CK_MECHANISM_TYPE, *mut c_void, usize) = match self.m {
            M::Sha256RsaPkcs => (CKM_SHA256_RSA_PKCS, ptr::null_mut(), 0),
            M::PssSha256 => (
                CKM_SHA256_RSA_PKCS_PSS,
                p(&mut *self.pss),
                std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>(),
            ),
            M::OaepSha1 => (
                CKM_RSA_PKCS_OAEP,
                p(&mut *self.oaep),
                std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>(),
            ),
            M::Ecdsa => (CKM_ECDSA, ptr::null_mut(), 0),
            M::EcdsaSha384 => (CKM_ECDSA_SHA384, ptr::null_mut(), 0),
            M::Hmac256 => (CKM_SHA256_HMAC, ptr::null_mut(), 0),
            M::AesCbc => (CKM_AES_CBC, self.iv.as_mut_ptr().cast(), 16),
            M::AesCbcPad => (CKM_AES_CBC_PAD, self.iv.as_mut_ptr().cast(), 16),
            M::AesGcm => {
                self.gcm.pIv = self.iv.as_mut_ptr();
                (
                    CKM_AES_GCM,
                    p(&mut *self.gcm),
                    std::mem::size_of::<CK_GCM_PARAMS>(),
                )
            }
            M::AesEcb => (CKM_AES_ECB, ptr::null_mut(), 0),
            M::Sha256 => (CKM_SHA256, ptr::null_mut(), 0),
        };
        CK_MECHANISM {
            mechanism: mech,
            pParameter: param,
            ulParameterLen: len as CK_ULONG,
        }
    }
}

// ---------------------------------------------------------------- fixtures

const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

fn rsa_templates(bits: u32, token: bool) -> (Tmpl, Tmpl) {
    let pubt = Tmpl::new()
        .b(CKA_TOKEN, token)
        .b(CKA_PRIVATE, false)
        .u(CKA_MODULUS_BITS, bits as CK_ULONG)
        .raw(CKA_PUBLIC_EXPONENT, &[1, 0, 1])
        .b(CKA_VERIFY, true)
        .b(CKA_ENCRYPT, true);
    let privt = Tmpl::new()
        .b(CKA_TOKEN, token)
        .b(CKA_PRIVATE, true)
        .b(CKA_SENSITIVE, true)
        .b(CKA_SIGN, true)
        .b(CKA_DECRYPT, true);
    (pubt, privt)
}

fn ec_templates(oid: &[u8], token: bool) -> (Tmpl, Tmpl) {
    let pubt = Tmpl::new()
        .b(CKA_TOKEN, token)
        .b(CKA_PRIVATE, false)
        .raw(CKA_EC_PARAMS, oid)
        .b(CKA_VERIFY, true);
    let privt = Tmpl::new()
        .b(CKA_TOKEN, token)
        .b(CKA_PRIVATE, true)
        .b(CKA_SENSITIVE, true)
        .b(CKA_SIGN, true);
    (pubt, privt)
}

fn aes_template(token: bool) -> Tmpl {
    Tmpl::new()
        .b(CKA_TOKEN, token)
        .b(CKA_PRIVATE, true)
        .b(CKA_SENSITIVE, true)
        .u(CKA_VALUE_LEN, 32)
        .b(CKA_ENCRYPT, true)
        .b(CKA_DECRYPT, true)
}

fn object_label(i: usize) -> Vec<u8> {
    format!("bench-obj-{i:05}").into_bytes()
}

/// The long-lived token keys and objects, made once before anything is timed.
struct Fixtures {
    rsa2048: Keys,
    rsa3072: Keys,
    rsa4096: Keys,
    p256: Keys,
    p384: Keys,
    aes: CK_OBJECT_HANDLE,
    hmac: CK_OBJECT_HANDLE,
    n_objects: usize,
}

fn make_fixtures(api: Api, s: CK_SESSION_HANDLE, n_objects: usize) -> R<Fixtures> {
    let rsa = |bits| {
        let (mut p, mut q) = rsa_templates(bits, true);
        api.gen_pair(s, CKM_RSA_PKCS_KEY_PAIR_GEN, &mut p, &mut q)
    };
    let ec = |oid| {
        let (mut p, mut q) = ec_templates(oid, true);
        api.gen_pair(s, CKM_EC_KEY_PAIR_GEN, &mut p, &mut q)
    };
    let aes = api.gen_key(s, CKM_AES_KEY_GEN, &mut aes_template(true))?;
    let mut ht = Tmpl::new()
        .u(CKA_CLASS, CKO_SECRET_KEY)
        .u(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
        .b(CKA_TOKEN, true)
        .b(CKA_PRIVATE, true)
        .b(CKA_SENSITIVE, true)
        .b(CKA_SIGN, true)
        .b(CKA_VERIFY, true)
        .raw(CKA_VALUE, &pattern(32));
    let hmac = api.create(s, &mut ht)?;
    for i in 0..n_objects {
        let mut t = Tmpl::new()
            .u(CKA_CLASS, CKO_DATA)
            .b(CKA_TOKEN, true)
            .b(CKA_PRIVATE, false)
            .raw(CKA_LABEL, &object_label(i))
            .raw(CKA_VALUE, b"x");
        api.create(s, &mut t)?;
    }
    Ok(Fixtures {
        rsa2048: rsa(2048)?,
        rsa3072: rsa(3072)?,
        rsa4096: rsa(4096)?,
        p256: ec(P256_OID)?,
        p384: ec(P384_OID)?,
        aes,
        hmac,
        n_objects,
    })
}

// ---------------------------------------------------------------- cases

#[derive(Clone, Copy, Debug)]
enum Fx {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    P256,
    P384,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sign(M, Fx, usize),
    Verify(M, Fx, usize),
    OaepDecrypt,
    OaepEncrypt,
    Cipher(M, usize, bool),
    CbcMulti,
    DigestMulti,
    Hmac(usize),
    Random(usize),
    KeygenRsa,
    KeygenEc,
    KeygenAes,
    OpenClose,
    Find,
    CreateDestroy,
    GetAttr,
    LoginLogout,
}

/// The same operation done with aws-lc-rs directly, in this process.
#[derive(Clone, Copy, Debug)]
enum Alone {
    RsaPkcs1,
    RsaPss,
    RsaKeygen,
    P256Sign,
    P384Sign,
    P256Keygen,
}

struct Case {
    name: &'static str,
    kind: Kind,
    bytes: usize,
    /// Also run with every thread count > 1.
    mt: bool,
    alone: Option<Alone>,
}

const fn case(
    name: &'static str,
    kind: Kind,
    bytes: usize,
    mt: bool,
    alone: Option<Alone>,
) -> Case {
    Case {
        name,
        kind,
        bytes,
        mt,
        alone,
    }
}

use Kind::*;
static CASES: &[Case] = &[
    case(
        "rsa2048_sign_pkcs1_sha256",
        Sign(M::Sha256RsaPkcs, Fx::Rsa2048, 64),
        0,
        true,
        Some(Alone::RsaPkcs1),
    ),
    case(
        "rsa2048_sign_pss_sha256",
        Sign(M::PssSha256, Fx::Rsa2048, 64),
        0,
        true,
        Some(Alone::RsaPss),
    ),
    case(
        "rsa3072_sign",
        Sign(M::Sha256RsaPkcs, Fx::Rsa3072, 64),
        0,
        true,
        None,
    ),
    case(
        "rsa4096_sign",
        Sign(M::Sha256RsaPkcs, Fx::Rsa4096, 64),
        0,
        true,
        None,
    ),
    case(
        "rsa2048_verify",
        Verify(M::Sha256RsaPkcs, Fx::Rsa2048, 64),
        0,
        false,
        None,
    ),
    case("rsa2048_decrypt_oaep", OaepDecrypt, 0, false, None),
    case("rsa2048_encrypt_oaep", OaepEncrypt, 0, false, None),
    case(
        "ecdsa_p256_sign",
        Sign(M::Ecdsa, Fx::P256, 32),
        0,
        true,
        Some(Alone::P256Sign),
    ),
    case(
        "ecdsa_p384_sign",
        Sign(M::Ecdsa, Fx::P384, 48),
        0,
        true,
        Some(Alone::P384Sign),
    ),
    case(
        "ecdsa_p256_verify",
        Verify(M::Ecdsa, Fx::P256, 32),
        0,
        false,
        None,
    ),
    case(
        "ecdsa_p384_sha384_sign",
        Sign(M::EcdsaSha384, Fx::P384, 1024),
        0,
        true,
        None,
    ),
    case(
        "aes256_cbc_encrypt_4k",
        Cipher(M::AesCbc, 4096, false),
        4096,
        true,
        None,
    ),
    case("aes256_cbc_encrypt_1m", CbcMulti, MIB, false, None),
    case(
        "aes256_cbc_pad_decrypt_4k",
        Cipher(M::AesCbcPad, 4096, true),
        4096,
        false,
        None,
    ),
    case(
        "aes256_gcm_encrypt_4k",
        Cipher(M::AesGcm, 4096, false),
        4096,
        true,
        None,
    ),
    case(
        "aes256_ecb_16",
        Cipher(M::AesEcb, 16, false),
        16,
        true,
        None,
    ),
    case("sha256_digest_1m", DigestMulti, MIB, false, None),
    case("sha256_hmac_4k", Hmac(4096), 4096, false, None),
    case("generate_random_32", Random(32), 0, false, None),
    case(
        "keygen_rsa2048",
        KeygenRsa,
        0,
        false,
        Some(Alone::RsaKeygen),
    ),
    case(
        "keygen_ec_p256",
        KeygenEc,
        0,
        false,
        Some(Alone::P256Keygen),
    ),
    case("keygen_aes256", KeygenAes, 0, false, None),
    case("open_close_session", OpenClose, 0, false, None),
    case("find_objects", Find, 0, false, None),
    case(
        "create_destroy_session_object",
        CreateDestroy,
        0,
        false,
        None,
    ),
    case("get_attribute_value", GetAttr, 0, false, None),
    case("login_logout", LoginLogout, 0, false, None),
];

type Op<'a> = Box<dyn FnMut() -> R<Option<Duration>> + 'a>;

struct Ctx {
    api: Api,
    slot: CK_SLOT_ID,
    fx: Fixtures,
}

impl Ctx {
    fn keys(&self, f: Fx) -> Keys {
        match f {
            Fx::Rsa2048 => self.fx.rsa2048,
            Fx::Rsa3072 => self.fx.rsa3072,
            Fx::Rsa4096 => self.fx.rsa4096,
            Fx::P256 => self.fx.p256,
            Fx::P384 => self.fx.p384,
        }
    }
}

/// The timed operation for one session; inputs (signatures, ciphertexts) made here, untimed.
fn make_op(c: &Ctx, kind: Kind, s: CK_SESSION_HANDLE) -> R<Op<'static>> {
    let api = c.api;
    let slot = c.slot;
    Ok(match kind {
        Sign(mk, fx, len) => {
            let key = c.keys(fx).private;
            let (data, mut out, mut mb) = (pattern(len), vec![0u8; 1024], MechBuf::new(mk));
            Box::new(move || {
                api.sign(s, &mut mb.get(), key, &data, &mut out)
                    .map(|_| None)
            })
        }
        Hmac(len) => {
            let key = c.fx.hmac;
            let (data, mut out, mut mb) = (pattern(len), vec![0u8; 64], MechBuf::new(M::Hmac256));
            Box::new(move || {
                api.sign(s, &mut mb.get(), key, &data, &mut out)
                    .map(|_| None)
            })
        }
        Verify(mk, fx, len) => {
            let k = c.keys(fx);
            let (data, mut sig, mut mb) = (pattern(len), vec![0u8; 1024], MechBuf::new(mk));
            let n = api.sign(s, &mut mb.get(), k.private, &data, &mut sig)?;
            sig.truncate(n);
            Box::new(move || {
                api.verify(s, &mut mb.get(), k.public, &data, &sig)
                    .map(|_| None)
            })
        }
        OaepEncrypt => {
            let k = c.fx.rsa2048;
            let (data, mut out, mut mb) = (pattern(32), vec![0u8; 1024], MechBuf::new(M::OaepSha1));
            Box::new(move || {
                api.encrypt(s, &mut mb.get(), k.public, &data, &mut out)
                    .map(|_| None)
            })
        }
        OaepDecrypt => {
            let k = c.fx.rsa2048;
            let (mut ct, mut out, mut mb) =
                (vec![0u8; 1024], vec![0u8; 1024], MechBuf::new(M::OaepSha1));
            let n = api.encrypt(s, &mut mb.get(), k.public, &pattern(32), &mut ct)?;
            ct.truncate(n);
            Box::new(move || {
                api.decrypt(s, &mut mb.get(), k.private, &ct, &mut out)
                    .map(|_| None)
            })
        }
        Cipher(mk, len, decrypt) => {
            let key = c.fx.aes;
            let mut mb = MechBuf::new(mk);
            let mut out = vec![0u8; len + 64];
            let mut input = pattern(len);
            if decrypt {
                let mut ct = vec![0u8; len + 64];
                let n = api.encrypt(s, &mut mb.get(), key, &input, &mut ct)?;
                ct.truncate(n);
                input = ct;
            }
            let fresh_iv = mk == M::AesGcm && !decrypt;
            Box::new(move || {
                if decrypt {
                    api.decrypt(s, &mut mb.get(), key, &input, &mut out)?;
                } else {
                    if fresh_iv {
                        mb.bump_iv();
                    }
                    api.encrypt(s, &mut mb.get(), key, &input, &mut out)?;
                }
                Ok(None)
            })
        }
        CbcMulti => {
            let key = c.fx.aes;
            let (data, mut out, mut mb) =
                (pattern(MIB), vec![0u8; CHUNK + 64], MechBuf::new(M::AesCbc));
            Box::new(move || {
                ck!(api, C_EncryptInit(s, &mut mb.get(), key))?;
                for chunk in data.chunks(CHUNK) {
                    let mut l = out.len() as CK_ULONG;
                    ck!(
                        api,
                        C_EncryptUpdate(
                            s,
                            chunk.as_ptr() as *mut u8,
                            chunk.len() as CK_ULONG,
                            out.as_mut_ptr(),
                            &mut l
                        )
                    )?;
                }
                let mut l = out.len() as CK_ULONG;
                ck!(api, C_EncryptFinal(s, out.as_mut_ptr(), &mut l))?;
                Ok(None)
            })
        }
        DigestMulti => {
            let (data, mut out, mut mb) = (pattern(MIB), vec![0u8; 64], MechBuf::new(M::Sha256));
            Box::new(move || {
                ck!(api, C_DigestInit(s, &mut mb.get()))?;
                for chunk in data.chunks(CHUNK) {
                    ck!(
                        api,
                        C_DigestUpdate(s, chunk.as_ptr() as *mut u8, chunk.len() as CK_ULONG)
                    )?;
                }
                let mut l = out.len() as CK_ULONG;
                ck!(api, C_DigestFinal(s, out.as_mut_ptr(), &mut l))?;
                Ok(None)
            })
        }
        Random(len) => {
            let mut out = vec![0u8; len];
            Box::new(move || {
                ck!(api, C_GenerateRandom(s, out.as_mut_ptr(), len as CK_ULONG)).map(|_| None)
            })
        }
        KeygenRsa => {
            let (mut p, mut q) = rsa_templates(2048, false);
            Box::new(move || {
                let t0 = Instant::now();
                let k = api.gen_pair(s, CKM_RSA_PKCS_KEY_PAIR_GEN, &mut p, &mut q)?;
                let d = t0.elapsed();
                api.destroy(s, k.public)?;
                api.destroy(s, k.private)?;
                Ok(Some(d))
            })
        }
        KeygenEc => {
            let (mut p, mut q) = ec_templates(P256_OID, false);
            Box::new(move || {
                let t0 = Instant::now();
                let k = api.gen_pair(s, CKM_EC_KEY_PAIR_GEN, &mut p, &mut q)?;
                let d = t0.elapsed();
                api.destroy(s, k.public)?;
                api.destroy(s, k.private)?;
                Ok(Some(d))
            })
        }
        KeygenAes => {
            let mut t = aes_template(false);
            Box::new(move || {
                let t0 = Instant::now();
                let k = api.gen_key(s, CKM_AES_KEY_GEN, &mut t)?;
                let d = t0.elapsed();
                api.destroy(s, k)?;
                Ok(Some(d))
            })
        }
        OpenClose => Box::new(move || {
            let h = api.open(slot)?;
            ck!(api, C_CloseSession(h))?;
            Ok(None)
        }),
        LoginLogout => Box::new(move || {
            ck!(api, C_Logout(s))?;
            api.login(s, CKU_USER, USER_PIN)?;
            Ok(None)
        }),
        Find => {
            let labels: Vec<Vec<u8>> = (0..c.fx.n_objects.max(1)).map(object_label).collect();
            let mut i = 0usize;
            let mut checked = false;
            Box::new(move || {
                i = (i + 7) % labels.len();
                let n = find_label(api, s, &labels[i])?;
                if !checked {
                    if n != 1 {
                        return Err(fail("C_FindObjects (expected exactly 1 match)"));
                    }
                    checked = true;
                }
                Ok(None)
            })
        }
        CreateDestroy => {
            let mut t = Tmpl::new()
                .u(CKA_CLASS, CKO_SECRET_KEY)
                .u(CKA_KEY_TYPE, CKK_AES)
                .b(CKA_TOKEN, false)
                .b(CKA_ENCRYPT, true)
                .b(CKA_DECRYPT, true)
                .raw(CKA_VALUE, &pattern(32));
            Box::new(move || {
                let h = api.create(s, &mut t)?;
                api.destroy(s, h)?;
                Ok(None)
            })
        }
        GetAttr => {
            let key = c.fx.rsa2048.public;
            let mut buf = vec![0u8; 1024];
            Box::new(move || {
                let mut a = CK_ATTRIBUTE {
                    type_: CKA_MODULUS,
                    pValue: buf.as_mut_ptr().cast(),
                    ulValueLen: buf.len() as CK_ULONG,
                };
                ck!(api, C_GetAttributeValue(s, key, &mut a, 1)).map(|_| None)
            })
        }
    })
}

/// C_FindObjectsInit(CKA_LABEL) + C_FindObjects + C_FindObjectsFinal; the match count.
fn find_label(api: Api, s: CK_SESSION_HANDLE, label: &[u8]) -> R<CK_ULONG> {
    let mut found = [0 as CK_OBJECT_HANDLE; 4];
    let mut a = CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: label.as_ptr() as *mut c_void,
        ulValueLen: label.len() as CK_ULONG,
    };
    ck!(api, C_FindObjectsInit(s, &mut a, 1))?;
    let mut n: CK_ULONG = 0;
    let r = ck!(
        api,
        C_FindObjects(s, found.as_mut_ptr(), found.len() as CK_ULONG, &mut n)
    );
    ck!(api, C_FindObjectsFinal(s))?;
    r.map(|_| n)
}

fn make_alone(a: Alone) -> R<Op<'static>> {
    let e = |_| fail("aws-lc-rs");
    let rng = SystemRandom::new();
    Ok(match a {
        Alone::RsaPkcs1 | Alone::RsaPss => {
            let k = RsaKeyPair::generate(KeySize::Rsa2048).map_err(e)?;
            let alg: &'static dyn aws_lc_rs::signature::RsaEncoding = if matches!(a, Alone::RsaPss)
            {
                &RSA_PSS_SHA256
            } else {
                &RSA_PKCS1_SHA256
            };
            let (data, mut sig) = (pattern(64), vec![0u8; k.public_modulus_len()]);
            Box::new(move || k.sign(alg, &rng, &data, &mut sig).map(|_| None).map_err(e))
        }
        Alone::RsaKeygen => Box::new(move || {
            let t0 = Instant::now();
            let k = RsaKeyPair::generate(KeySize::Rsa2048).map_err(e)?;
            let d = t0.elapsed();
            drop(k);
            Ok(Some(d))
        }),
        Alone::P256Sign | Alone::P384Sign => {
            let (alg, dalg, len) = if matches!(a, Alone::P256Sign) {
                (&ECDSA_P256_SHA256_FIXED_SIGNING, &digest::SHA256, 32)
            } else {
                (&ECDSA_P384_SHA384_FIXED_SIGNING, &digest::SHA384, 48)
            };
            let k = EcdsaKeyPair::generate(alg).map_err(e)?;
            let data = pattern(len);
            Box::new(move || {
                // The module gets a ready hash (CKM_ECDSA): so does aws-lc-rs.
                let d = digest::Digest::import_less_safe(&data, dalg).map_err(e)?;
                k.sign_digest(&d).map(|_| None).map_err(e)
            })
        }
        Alone::P256Keygen => Box::new(move || {
            let t0 = Instant::now();
            let k = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(e)?;
            let d = t0.elapsed();
            drop(k);
            Ok(Some(d))
        }),
    })
}

// ---------------------------------------------------------------- timing

struct Sample {
    ops: u64,
    secs: f64,
}

fn warmup(op: &mut Op<'_>, warm: Duration) -> R<u64> {
    let t0 = Instant::now();
    let mut n = 0u64;
    loop {
        op()?;
        n += 1;
        if t0.elapsed() >= warm {
            break;
        }
    }
    let per = t0.elapsed().as_secs_f64() / n as f64;
    Ok(((0.002 / per) as u64).clamp(1, 4096))
}

fn timed(op: &mut Op<'_>, batch: u64, slice: Duration) -> R<Sample> {
    let t0 = Instant::now();
    let (mut n, mut part, mut partial) = (0u64, Duration::ZERO, false);
    loop {
        for _ in 0..batch {
            if let Some(d) = op()? {
                part += d;
                partial = true;
            }
        }
        n += batch;
        let el = t0.elapsed();
        if el >= slice && n >= MIN_ITERS {
            let secs = if partial { part } else { el }.as_secs_f64();
            return Ok(Sample {
                ops: n,
                secs: secs.max(1e-9),
            });
        }
    }
}

/// One round with `threads` threads, each with its own session (or, for the aws-lc-rs
/// side, its own key); returns total ops/s.
fn run_round(c: &Ctx, kind: Kind, alone: Option<Alone>, threads: usize, slice: Duration) -> R<f64> {
    let warm = slice.mul_f64(0.15);
    let barrier = Barrier::new(threads);
    let worker = || -> R<Sample> {
        let ready = (|| -> R<(Option<CK_SESSION_HANDLE>, Op<'static>, u64)> {
            let (s, mut op) = match alone {
                Some(a) => (None, make_alone(a)?),
                None => {
                    let s = c.api.open(c.slot)?;
                    (Some(s), make_op(c, kind, s)?)
                }
            };
            let b = warmup(&mut op, warm)?;
            Ok((s, op, b))
        })();
        barrier.wait();
        let (s, mut op, batch) = ready?;
        let r = timed(&mut op, batch, slice);
        drop(op);
        if let Some(s) = s {
            let _ = ck!(c.api, C_CloseSession(s));
        }
        r
    };
    let results: Vec<R<Sample>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads).map(|_| sc.spawn(worker)).collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or(Err(fail("worker panicked"))))
            .collect()
    });
    let mut total = 0.0;
    for r in results {
        let s = r?;
        total += s.ops as f64 / s.secs;
    }
    Ok(total)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn range_pct(v: &[f64]) -> f64 {
    let (mn, mx) = v
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    if v.is_empty() {
        0.0
    } else {
        100.0 * (mx - mn) / median(v)
    }
}

// ---------------------------------------------------------------- host facts

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with(field))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn host_json() -> Value {
    json!({
        "cpu_model": cpu_model(),
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "loadavg": loadavg(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

fn fmt_ops(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

// ---------------------------------------------------------------- CLI

struct Opts {
    module: PathBuf,
    seconds: f64,
    rounds: usize,
    keygen_seconds: f64,
    threads: Vec<usize>,
    only: Vec<String>,
    objects: usize,
    json: Option<PathBuf>,
    store: Option<PathBuf>,
    list: bool,
    scale: bool,
    scale_child: Option<String>,
    aes: usize,
    rsa: usize,
    rsa_distinct: usize,
    keep: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        module: PathBuf::from("target/release/libclusterhsm.so"),
        seconds: 2.0,
        rounds: 3,
        keygen_seconds: 30.0,
        threads: vec![1, 2],
        only: Vec::new(),
        objects: 1000,
        json: None,
        store: None,
        list: false,
        scale: false,
        scale_child: None,
        aes: 100_000,
        rsa: 10_000,
        rsa_distinct: 16,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|e| format!("{v}: {e}"));
        match a.as_str() {
            "--module" => o.module = PathBuf::from(val()?),
            "--seconds" => o.seconds = num(val()?)?,
            "--rounds" => o.rounds = num(val()?)? as usize,
            "--keygen-seconds" => o.keygen_seconds = num(val()?)?,
            "--threads" => {
                o.threads = val()?
                    .split(',')
                    .map(|t| t.parse::<usize>().map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?
            }
            "--only" => o.only = val()?.split(',').map(String::from).collect(),
            "--objects" => o.objects = num(val()?)? as usize,
            "--json" => o.json = Some(PathBuf::from(val()?)),
            "--store" => o.store = Some(PathBuf::from(val()?)),
            "--list" => o.list = true,
            "--keep-store" => o.keep = true,
            "--scale" => o.scale = true,
            "--scale-child" => o.scale_child = Some(val()?),
            "--aes" => o.aes = num(val()?)? as usize,
            "--rsa" => o.rsa = num(val()?)? as usize,
            "--rsa-distinct" => o.rsa_distinct = (num(val()?)? as usize).max(1),
            "-h" | "--help" => {
                println!("see the comment at the top of examples/bench.rs");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    o.rounds = o.rounds.max(1);
    Ok(o)
}

fn selected(only: &[String], name: &str) -> bool {
    only.is_empty()
        || only.iter().any(|p| match p.strip_suffix('*') {
            Some(pre) => name.starts_with(pre),
            None => p == name,
        })
}

/// A fresh store directory (the module reads CLUSTERHSM_DIR when it is initialized).
fn use_store(o: &Opts) -> Result<PathBuf, String> {
    let dir = match &o.store {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("clusterhsm-bench-{}", std::process::id())),
    };
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        return Err(format!(
            "{} is not empty: give a fresh --store",
            dir.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::env::set_var("CLUSTERHSM_DIR", &dir);
    Ok(dir)
}

fn write_json(path: &Option<PathBuf>, doc: &Value) -> Result<(), String> {
    if let Some(p) = path {
        let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn main() {
    let r = parse_args().and_then(|o| {
        if let Some(what) = o.scale_child.clone() {
            scale_child(&o, &what)
        } else if o.scale {
            scale(&o)
        } else {
            bench(&o)
        }
    });
    if let Err(e) = r {
        eprintln!("bench: {e}");
        std::process::exit(2);
    }
}

// ---------------------------------------------------------------- the case run

fn bench(o: &Opts) -> Result<(), String> {
    if o.list {
        for c in CASES {
            println!(
                "{}{}{}",
                c.name,
                if c.mt { " [T]" } else { "" },
                if c.alone.is_some() {
                    " [+aws-lc-rs]"
                } else {
                    ""
                }
            );
        }
        return Ok(());
    }
    let wall0 = Instant::now();
    let host0 = host_json();
    let store = use_store(o)?;
    let api = load(&o.module)?;
    let (slot, admin) = setup_token(api).map_err(|e| format!("token setup: {e}"))?;
    eprintln!(
        "module {} store {} slot {slot}",
        o.module.display(),
        store.display()
    );
    let t0 = Instant::now();
    let fx = make_fixtures(api, admin, o.objects).map_err(|e| format!("fixtures: {e}"))?;
    eprintln!(
        "fixtures: RSA-2048/3072/4096, P-256, P-384, AES-256, HMAC, {} token objects in {:.1} s",
        o.objects,
        t0.elapsed().as_secs_f64()
    );
    let ctx = Ctx { api, slot, fx };

    // Single-thread cases in list order (login_logout last), then the scaling runs.
    let mut runs: Vec<(&Case, usize)> = CASES
        .iter()
        .filter(|c| selected(&o.only, c.name))
        .map(|c| (c, 1))
        .collect();
    let ll = runs
        .iter()
        .position(|(c, _)| c.name == "login_logout")
        .map(|i| runs.remove(i));
    for &t in o.threads.iter().filter(|&&t| t > 1) {
        runs.extend(
            CASES
                .iter()
                .filter(|c| c.mt && selected(&o.only, c.name))
                .map(|c| (c, t)),
        );
    }
    runs.extend(ll);

    let mut results = Vec::new();
    let total = runs.len();
    println!(
        "{:<32} {:>3} {:>12} {:>9} {:>6} {:>12} {:>8}",
        "case", "thr", "ops/s", "MB/s", "rng%", "aws-lc ops/s", "mod/lc"
    );
    for (i, (c, threads)) in runs.into_iter().enumerate() {
        let secs = if c.name == "keygen_rsa2048" {
            o.keygen_seconds.max(o.seconds)
        } else {
            o.seconds
        };
        let slice = Duration::from_secs_f64(secs / o.rounds as f64);
        let alone = if threads == 1 { c.alone } else { None };
        eprint!(
            "[{}/{}] {} x{} ({:.0} s{}) ... ",
            i + 1,
            total,
            c.name,
            threads,
            secs,
            if alone.is_some() {
                " + aws-lc-rs alone"
            } else {
                ""
            }
        );
        let _ = std::io::stderr().flush();
        let (mut m, mut a, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut err = None;
        for r in 0..o.rounds {
            // Module and aws-lc-rs alternate within a round; who goes first alternates too.
            let order: &[bool] = if alone.is_none() {
                &[false]
            } else if r % 2 == 0 {
                &[false, true]
            } else {
                &[true, false]
            };
            let (mut mv, mut av) = (None, None);
            for &is_alone in order {
                let res = run_round(
                    &ctx,
                    c.kind,
                    if is_alone { alone } else { None },
                    threads,
                    slice,
                );
                match res {
                    Ok(v) if is_alone => av = Some(v),
                    Ok(v) => mv = Some(v),
                    Err(e) => err = Some(e),
                }
            }
            if let Some(v) = mv {
                m.push(v);
            }
            if let (Some(x), Some(y)) = (mv, av) {
                a.push(y);
                ratios.push(x / y);
            }
            if err.is_some() {
                break;
            }
        }
        let ops = median(&m);
        let mbs = if c.bytes > 0 {
            Some(ops * c.bytes as f64 / 1e6)
        } else {
            None
        };
        let line = match err {
            Some(e) => format!("error ({e})"),
            None => format!(
                "{} ops/s{} rng {:.1}%{}",
                fmt_ops(ops),
                mbs.map(|v| format!(" ({v:.1} MB/s)")).unwrap_or_default(),
                range_pct(&m),
                if a.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; aws-lc-rs {} ops/s, ratio {:.3}",
                        fmt_ops(median(&a)),
                        median(&ratios)
                    )
                }
            ),
        };
        eprintln!("{line}");
        println!(
            "{:<32} {:>3} {:>12} {:>9} {:>6.1} {:>12} {:>8}",
            c.name,
            threads,
            if err.is_some() {
                "error".into()
            } else {
                fmt_ops(ops)
            },
            mbs.map(|v| format!("{v:.1}")).unwrap_or("-".into()),
            range_pct(&m),
            if a.is_empty() {
                "-".into()
            } else {
                fmt_ops(median(&a))
            },
            if ratios.is_empty() {
                "-".into()
            } else {
                format!("{:.3}", median(&ratios))
            }
        );
        results.push(json!({
            "case": c.name,
            "threads": threads,
            "bytes_per_op": c.bytes,
            "seconds": secs,
            "status": if err.is_some() { "error" } else { "ok" },
            "error": err.map(|e| e.to_string()),
            "ops_per_s": if m.is_empty() { Value::Null } else { json!(ops) },
            "mb_per_s": mbs,
            "range_pct": range_pct(&m),
            "rounds": m,
            "awslc": if a.is_empty() { Value::Null } else { json!({
                "ops_per_s": median(&a),
                "rounds": a,
                "ratio_module_awslc": median(&ratios),
                "ratio_rounds": ratios,
            })},
        }));
    }
    let _ = ck!(api, C_Finalize(ptr::null_mut()));
    let doc = json!({
        "tool": "clusterhsm examples/bench.rs",
        "module": o.module.display().to_string(),
        "settings": { "seconds": o.seconds, "rounds": o.rounds, "keygen_rsa2048_seconds": o.keygen_seconds,
                      "threads": o.threads, "objects": o.objects, "keys": "token", "oaep_hash": "sha1" },
        "host_start": host0,
        "host_end": host_json(),
        "wall_seconds": wall0.elapsed().as_secs_f64(),
        "peak_rss_kib": status_kib("VmHWM:"),
        "results": results,
    });
    let _ = std::fs::remove_dir_all(&store);
    write_json(&o.json, &doc)
}

// ---------------------------------------------------------------- scale mode

fn aes_label(i: usize) -> Vec<u8> {
    format!("aes-{i:06}").into_bytes()
}

fn rsa_label(i: usize) -> Vec<u8> {
    format!("rsa-{i:05}").into_bytes()
}

/// RSA private-key components (n, e, d, p, q, dp, dq, qinv) of a fresh aws-lc-rs key.
fn rsa_material() -> Result<[Vec<u8>; 8], String> {
    use rsa::pkcs1::der::Decode;
    let k = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| e.to_string())?;
    let der = k.as_der().map_err(|e| e.to_string())?;
    let pki = rsa::pkcs8::PrivateKeyInfo::try_from(der.as_ref()).map_err(|e| e.to_string())?;
    let r = rsa::pkcs1::RsaPrivateKey::from_der(pki.private_key).map_err(|e| e.to_string())?;
    let b = |u: rsa::pkcs1::UintRef<'_>| u.as_bytes().to_vec();
    Ok([
        b(r.modulus),
        b(r.public_exponent),
        b(r.private_exponent),
        b(r.prime1),
        b(r.prime2),
        b(r.exponent1),
        b(r.exponent2),
        b(r.coefficient),
    ])
}

fn scale(o: &Opts) -> Result<(), String> {
    let wall0 = Instant::now();
    let host0 = host_json();
    let store = use_store(o)?;
    eprintln!(
        "scale: {} AES-256 + {} RSA-2048 token keys, store {}",
        o.aes,
        o.rsa,
        store.display()
    );
    let t0 = Instant::now();
    let rsa_keys: Vec<[Vec<u8>; 8]> = (0..o.rsa_distinct.min(o.rsa.max(1)))
        .map(|_| rsa_material())
        .collect::<Result<_, _>>()?;
    let mut aes_vals = vec![0u8; 32 * o.aes];
    aws_lc_rs::rand::fill(&mut aes_vals).map_err(|e| e.to_string())?;
    let gen_s = t0.elapsed().as_secs_f64();
    eprintln!(
        "material: {} distinct RSA-2048 keys, {} AES values in {gen_s:.1} s",
        rsa_keys.len(),
        o.aes
    );

    let api = load(&o.module)?;
    let (_slot, s) = setup_token(api).map_err(|e| format!("token setup: {e}"))?;
    let t1 = Instant::now();
    let mut last = Instant::now();
    for i in 0..o.aes {
        let mut t = Tmpl::new()
            .u(CKA_CLASS, CKO_SECRET_KEY)
            .u(CKA_KEY_TYPE, CKK_AES)
            .b(CKA_TOKEN, true)
            .b(CKA_PRIVATE, true)
            .b(CKA_SENSITIVE, true)
            .b(CKA_ENCRYPT, true)
            .b(CKA_DECRYPT, true)
            .raw(CKA_LABEL, &aes_label(i))
            .raw(CKA_VALUE, &aes_vals[32 * i..32 * i + 32]);
        api.create(s, &mut t)
            .map_err(|e| format!("AES key {i}: {e}"))?;
        if last.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  {} AES keys ({:.0}/s)",
                i + 1,
                (i + 1) as f64 / t1.elapsed().as_secs_f64()
            );
            last = Instant::now();
        }
    }
    let aes_s = t1.elapsed().as_secs_f64();
    eprintln!(
        "created {} AES keys in {aes_s:.1} s ({:.0}/s)",
        o.aes,
        o.aes as f64 / aes_s.max(1e-9)
    );
    let t2 = Instant::now();
    for i in 0..o.rsa {
        let k = &rsa_keys[i % rsa_keys.len()];
        let mut t = Tmpl::new()
            .u(CKA_CLASS, CKO_PRIVATE_KEY)
            .u(CKA_KEY_TYPE, CKK_RSA)
            .b(CKA_TOKEN, true)
            .b(CKA_PRIVATE, true)
            .b(CKA_SENSITIVE, true)
            .b(CKA_SIGN, true)
            .raw(CKA_LABEL, &rsa_label(i))
            .raw(CKA_ID, &(i as u32).to_be_bytes())
            .raw(CKA_MODULUS, &k[0])
            .raw(CKA_PUBLIC_EXPONENT, &k[1])
            .raw(CKA_PRIVATE_EXPONENT, &k[2])
            .raw(CKA_PRIME_1, &k[3])
            .raw(CKA_PRIME_2, &k[4])
            .raw(CKA_EXPONENT_1, &k[5])
            .raw(CKA_EXPONENT_2, &k[6])
            .raw(CKA_COEFFICIENT, &k[7]);
        api.create(s, &mut t)
            .map_err(|e| format!("RSA key {i}: {e}"))?;
        if last.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  {} RSA keys ({:.0}/s)",
                i + 1,
                (i + 1) as f64 / t2.elapsed().as_secs_f64()
            );
            last = Instant::now();
        }
    }
    let rsa_s = t2.elapsed().as_secs_f64();
    eprintln!(
        "created {} RSA keys in {rsa_s:.1} s ({:.0}/s)",
        o.rsa,
        o.rsa as f64 / rsa_s.max(1e-9)
    );
    ck!(api, C_Finalize(ptr::null_mut())).map_err(|e| e.to_string())?;
    let store_bytes: u64 = std::fs::read_dir(&store)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);

    // Fresh processes: three that only open (C_Initialize..C_Login), then the full one
    // under /usr/bin/time -v.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = |what: &str, timed_v: bool| -> Result<(Value, Option<u64>), String> {
        let mut cmd = if timed_v && Path::new("/usr/bin/time").exists() {
            let mut c = std::process::Command::new("/usr/bin/time");
            c.arg("-v").arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        cmd.args(["--scale-child", what, "--module"]).arg(&o.module);
        cmd.args(["--aes", &o.aes.to_string(), "--rsa", &o.rsa.to_string()]);
        cmd.env("CLUSTERHSM_DIR", &store);
        let out = cmd.output().map_err(|e| e.to_string())?;
        let err = String::from_utf8_lossy(&out.stderr);
        eprint!(
            "{}",
            err.lines()
                .filter(|l| l.starts_with("  "))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        );
        if !out.status.success() {
            return Err(format!("scale child {what} failed: {err}"));
        }
        let maxrss = err
            .lines()
            .find(|l| l.contains("Maximum resident set size"))
            .and_then(|l| l.rsplit(':').next())
            .and_then(|v| v.trim().parse().ok());
        let v: Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("child output: {e}"))?;
        Ok((v, maxrss))
    };
    let mut opens = Vec::new();
    for _ in 0..3 {
        let (v, _) = child("open", false)?;
        let secs = v["open_seconds"].as_f64().unwrap_or(f64::NAN);
        eprintln!(
            "fresh process: C_Initialize+C_GetSlotList+C_OpenSession+C_Login {:.3} s",
            secs
        );
        opens.push(secs);
    }
    let (full, maxrss) = child("full", true)?;
    let budget_kib = (o.aes * 2 + o.rsa * 8) as u64;
    let max_rss = maxrss.or(full["vm_hwm_kib"].as_u64());
    eprintln!(
        "max RSS {} KiB (budget {} KiB = {} x 2 KiB + {} x 8 KiB)",
        max_rss.map(|v| v.to_string()).unwrap_or("?".into()),
        budget_kib,
        o.aes,
        o.rsa
    );
    let doc = json!({
        "tool": "clusterhsm examples/bench.rs --scale",
        "module": o.module.display().to_string(),
        "host_start": host0,
        "host_end": host_json(),
        "aes_keys": o.aes,
        "rsa_keys": o.rsa,
        "rsa_distinct_materials": rsa_keys.len(),
        "material_seconds": gen_s,
        "create_aes_seconds": aes_s,
        "create_rsa_seconds": rsa_s,
        "store_bytes": store_bytes,
        "open_seconds_runs": opens,
        "open_seconds_median": median(&opens),
        "full": full,
        "max_rss_kib_time_v": maxrss,
        "budget_kib": budget_kib,
        "max_rss_per_weighted_key_ok": max_rss.map(|v| v <= budget_kib),
        "wall_seconds": wall0.elapsed().as_secs_f64(),
    });
    if !o.keep {
        let _ = std::fs::remove_dir_all(&store);
    }
    write_json(&o.json, &doc)
}

/// In a fresh process on the scale store: "open" times C_Initialize + C_GetSlotList +
/// C_OpenSession + C_Login; "full" then also finds by label, uses every key once and
/// reports the resident set after each phase. Prints one JSON object.
fn scale_child(o: &Opts, what: &str) -> Result<(), String> {
    let e = |e: Fail| e.to_string();
    if let Some(d) = &o.store {
        std::env::set_var("CLUSTERHSM_DIR", d);
    }
    let rss_start = status_kib("VmRSS:");
    let api = load(&o.module)?;
    let t0 = Instant::now();
    initialize(api).map_err(e)?;
    let slot = find_token_slot(api).map_err(e)?;
    let s = api.open(slot).map_err(e)?;
    api.login(s, CKU_USER, USER_PIN).map_err(e)?;
    let open_s = t0.elapsed().as_secs_f64();
    let rss_open = status_kib("VmRSS:");
    let mut doc = json!({ "open_seconds": open_s, "rss_start_kib": rss_start, "rss_after_login_kib": rss_open });
    if what == "full" {
        // find_objects by label among all objects, random labels, 2 s.
        let n_total = o.aes + o.rsa;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let (mut n, t) = (0u64, Instant::now());
        while t.elapsed() < Duration::from_secs(2) {
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % n_total as u64) as usize;
                let l = if i < o.aes {
                    aes_label(i)
                } else {
                    rsa_label(i - o.aes)
                };
                if find_label(api, s, &l).map_err(e)? != 1 {
                    return Err(format!(
                        "label {} not found exactly once",
                        String::from_utf8_lossy(&l)
                    ));
                }
            }
            n += 64;
        }
        let find_rate = n as f64 / t.elapsed().as_secs_f64();
        eprintln!("  find_objects by label among {n_total} objects: {find_rate:.0}/s");
        // Every AES key once (C_EncryptInit + C_Encrypt, ECB, 16 bytes).
        let mut tm = Tmpl::new()
            .u(CKA_CLASS, CKO_SECRET_KEY)
            .u(CKA_KEY_TYPE, CKK_AES);
        let aes = api.find_all(s, &mut tm).map_err(e)?;
        let t = Instant::now();
        let (data, mut out) = (pattern(16), vec![0u8; 64]);
        for &h in &aes {
            let mut m = MechBuf::new(M::AesEcb);
            api.encrypt(s, &mut m.get(), h, &data, &mut out)
                .map_err(e)?;
        }
        let aes_use_s = t.elapsed().as_secs_f64();
        let rss_aes = status_kib("VmRSS:");
        eprintln!(
            "  used {} AES keys once in {aes_use_s:.2} s; VmRSS {} KiB",
            aes.len(),
            rss_aes.unwrap_or(0)
        );
        let mut tm = Tmpl::new()
            .u(CKA_CLASS, CKO_PRIVATE_KEY)
            .u(CKA_KEY_TYPE, CKK_RSA);
        let rsa = api.find_all(s, &mut tm).map_err(e)?;
        let t = Instant::now();
        let (data, mut out) = (pattern(64), vec![0u8; 512]);
        for &h in &rsa {
            let mut m = MechBuf::new(M::Sha256RsaPkcs);
            api.sign(s, &mut m.get(), h, &data, &mut out).map_err(e)?;
        }
        let rsa_use_s = t.elapsed().as_secs_f64();
        let rss_rsa = status_kib("VmRSS:");
        eprintln!(
            "  signed once with each of {} RSA keys in {rsa_use_s:.2} s; VmRSS {} KiB",
            rsa.len(),
            rss_rsa.unwrap_or(0)
        );
        let base = rss_start.unwrap_or(0) as f64;
        doc["find_objects_per_s"] = json!(find_rate);
        doc["aes_found"] = json!(aes.len());
        doc["rsa_found"] = json!(rsa.len());
        doc["aes_use_seconds"] = json!(aes_use_s);
        doc["rsa_use_seconds"] = json!(rsa_use_s);
        doc["rss_after_aes_kib"] = json!(rss_aes);
        doc["rss_after_rsa_kib"] = json!(rss_rsa);
        doc["vm_hwm_kib"] = json!(status_kib("VmHWM:"));
        // Attribution: everything above the pre-C_Initialize baseline up to "all AES keys
        // used" is charged to the AES keys (it includes the RSA objects loaded at login);
        // the growth while using the RSA keys is charged to them.
        doc["kib_per_aes_key_upper"] =
            json!((rss_aes.unwrap_or(0) as f64 - base) / aes.len().max(1) as f64);
        doc["kib_per_rsa_key_growth"] = json!(
            (rss_rsa.unwrap_or(0) as f64 - rss_aes.unwrap_or(0) as f64) / rsa.len().max(1) as f64
        );
    }
    let _ = ck!(api, C_Finalize(ptr::null_mut()));
    println!("{doc}");
    Ok(())
}

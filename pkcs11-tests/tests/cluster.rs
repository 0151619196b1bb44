//! The cluster behind the slot (DESIGN.md §3): replication and resync, CloudHSM's key
//! availability check, routing around Down instances, faults injected by the CLI reaching
//! another process, Crypto User isolation, lockout, and the gap-free audit log.
//!
//! Evidence that a fault reached the process is the per-instance operation count of the
//! vendor interface (`CHSM_GetInstanceInfo(...).ops_served`): every C_SignInit is routed to
//! exactly one instance and counted there, so a Down instance's count must not move.

// `ck!` (tests/common/raw.rs) evaluates its arguments inside its unsafe block on purpose:
// every use is a raw FFI call.
#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::*;
use common::*;
use cryptoki::context::Pkcs11;
use cryptoki_sys::*;
use std::collections::BTreeMap;
use std::ffi::c_char;
use std::process::Command;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HEALTH_ACTIVE: CK_ULONG = 0;
const HEALTH_DOWN: CK_ULONG = 2;

/// DER of the P-256 OID (CKA_EC_PARAMS).
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

// ---------------------------------------------------------------------------------------
// The vendor interface, as include/clusterhsm.h declares it (the 1.0 fields).

#[repr(C)]
struct InstanceInfo {
    id: [CK_UTF8CHAR; 32],
    az: [CK_UTF8CHAR; 32],
    health: CK_ULONG,
    ops_served: CK_ULONG,
}

#[repr(C)]
struct VendorList {
    version: CK_VERSION,
    set_instance_health: unsafe extern "C" fn(CK_SLOT_ID, *const c_char, CK_ULONG) -> CK_RV,
    set_az_health: unsafe extern "C" fn(CK_SLOT_ID, *const c_char, CK_ULONG) -> CK_RV,
    get_instance_count: unsafe extern "C" fn(CK_SLOT_ID, *mut CK_ULONG) -> CK_RV,
    get_instance_info: unsafe extern "C" fn(CK_SLOT_ID, CK_ULONG, *mut InstanceInfo) -> CK_RV,
    get_object_replicas: unsafe extern "C" fn(
        CK_SESSION_HANDLE,
        CK_OBJECT_HANDLE,
        *mut CK_BYTE,
        *mut CK_ULONG,
    ) -> CK_RV,
}

#[derive(Debug, Clone)]
struct Instance {
    id: String,
    az: String,
    health: CK_ULONG,
    ops: CK_ULONG,
}

fn c_str(b: &[u8]) -> String {
    let end = b.iter().position(|x| *x == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A token set up as a user would (C_InitToken, C_InitPIN "1234"), the raw function list
/// and the vendor interface, all on the same module instance.
struct Cluster {
    raw: Raw,
    vendor: &'static VendorList,
    slot: CK_SLOT_ID,
    _p: Pkcs11,
}

impl Cluster {
    fn setup() -> Cluster {
        let p = load();
        let slot = setup_token(&p);
        Cluster::attach(p, slot.id())
    }

    /// For a helper process on an existing token.
    fn existing() -> Cluster {
        let p = load();
        let slot = token_slot(&p);
        Cluster::attach(p, slot.id())
    }

    fn attach(p: Pkcs11, slot: CK_SLOT_ID) -> Cluster {
        let raw = Raw::load();
        let vendor = {
            // SAFETY: C_GetInterface has this signature (PKCS#11 3.0).
            let get: libloading::Symbol<
                unsafe extern "C" fn(
                    *mut CK_UTF8CHAR,
                    *mut CK_VERSION,
                    *mut *mut CK_INTERFACE,
                    CK_FLAGS,
                ) -> CK_RV,
            > = unsafe { raw.library().get(b"C_GetInterface\0") }.expect("C_GetInterface");
            let mut iface: *mut CK_INTERFACE = null_mut();
            let mut name = *b"clusterhsm\0";
            // SAFETY: NUL-terminated name, valid out-pointer.
            let rv = unsafe { get(name.as_mut_ptr(), null_mut(), &mut iface, 0) };
            assert_eq!(rv, CKR_OK, "C_GetInterface(clusterhsm): {}", rv_name(rv));
            // SAFETY: the module's static vendor table; the module stays loaded (raw and
            // cryptoki hold it) for the rest of the process.
            unsafe { &*((*iface).pFunctionList as *const VendorList) }
        };
        assert_eq!(vendor.version.major, 1, "vendor interface major version");
        Cluster {
            raw,
            vendor,
            slot,
            _p: p,
        }
    }

    fn set_hsm(&self, id: &str, health: CK_ULONG) {
        let name = std::ffi::CString::new(id).unwrap();
        // SAFETY: NUL-terminated name.
        let rv = unsafe { (self.vendor.set_instance_health)(self.slot, name.as_ptr(), health) };
        assert_eq!(rv, CKR_OK, "CHSM_SetInstanceHealth({id}, {health})");
    }

    fn set_az(&self, az: &str, health: CK_ULONG) {
        let name = std::ffi::CString::new(az).unwrap();
        // SAFETY: NUL-terminated name.
        let rv = unsafe { (self.vendor.set_az_health)(self.slot, name.as_ptr(), health) };
        assert_eq!(rv, CKR_OK, "CHSM_SetAzHealth({az}, {health})");
    }

    fn instances(&self) -> Vec<Instance> {
        let mut n: CK_ULONG = 0;
        // SAFETY: valid out-pointer.
        let rv = unsafe { (self.vendor.get_instance_count)(self.slot, &mut n) };
        assert_eq!(rv, CKR_OK, "CHSM_GetInstanceCount");
        (0..n)
            .map(|i| {
                let mut info = InstanceInfo {
                    id: [0; 32],
                    az: [0; 32],
                    health: 99,
                    ops_served: 0,
                };
                // SAFETY: valid out-pointer.
                let rv = unsafe { (self.vendor.get_instance_info)(self.slot, i, &mut info) };
                assert_eq!(rv, CKR_OK, "CHSM_GetInstanceInfo({i})");
                Instance {
                    id: c_str(&info.id),
                    az: c_str(&info.az),
                    health: info.health,
                    ops: info.ops_served,
                }
            })
            .collect()
    }

    /// ops_served per instance id.
    fn ops(&self) -> BTreeMap<String, CK_ULONG> {
        self.instances()
            .into_iter()
            .map(|i| (i.id, i.ops))
            .collect()
    }

    fn health(&self, id: &str) -> CK_ULONG {
        self.instances()
            .into_iter()
            .find(|i| i.id == id)
            .unwrap_or_else(|| panic!("no instance {id}"))
            .health
    }

    /// CHSM_GetObjectReplicas, sorted.
    fn replicas(&self, s: S, h: H) -> Vec<String> {
        let mut len: CK_ULONG = 0;
        // SAFETY: NULL buffer asks for the length.
        let rv = unsafe { (self.vendor.get_object_replicas)(s, h, null_mut(), &mut len) };
        assert_eq!(rv, CKR_OK, "CHSM_GetObjectReplicas length: {}", rv_name(rv));
        let mut buf = vec![0u8; len as usize];
        // SAFETY: buffer of len bytes.
        let rv = unsafe { (self.vendor.get_object_replicas)(s, h, buf.as_mut_ptr(), &mut len) };
        assert_eq!(rv, CKR_OK, "CHSM_GetObjectReplicas: {}", rv_name(rv));
        buf.truncate(len as usize);
        let mut v: Vec<String> = String::from_utf8(buf)
            .expect("UTF-8 replica list")
            .split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    fn open(&self) -> S {
        open_rw(&self.raw, self.slot)
    }

    /// A R/W session with the default CU logged in.
    fn user_session(&self) -> S {
        let s = self.open();
        assert_eq!(
            login(&self.raw, s, CKU_USER, USER_PIN),
            CKR_OK,
            "C_Login USER"
        );
        s
    }

    fn token_flags(&self) -> CK_FLAGS {
        token_flags(&self.raw, self.slot)
    }
}

fn open_rw(raw: &Raw, slot: CK_SLOT_ID) -> S {
    let mut s: S = 0;
    let rv = ck!(
        raw,
        C_OpenSession(
            slot,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            null_mut(),
            None,
            &mut s
        )
    );
    assert_eq!(rv, CKR_OK, "C_OpenSession: {}", rv_name(rv));
    s
}

fn login(raw: &Raw, s: S, user: CK_USER_TYPE, pin: &str) -> CK_RV {
    let mut p = pin.as_bytes().to_vec();
    ck!(raw, C_Login(s, user, p.as_mut_ptr(), p.len() as CK_ULONG))
}

fn token_flags(raw: &Raw, slot: CK_SLOT_ID) -> CK_FLAGS {
    // SAFETY: CK_TOKEN_INFO is plain data; all-zero is a valid value.
    let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
    let rv = ck!(raw, C_GetTokenInfo(slot, &mut info));
    assert_eq!(rv, CKR_OK, "C_GetTokenInfo");
    info.flags
}

/// A P-256 key pair on the token: (public, private).
fn ec_token_key(raw: &Raw, s: S, label: &str) -> (H, H) {
    let mut m = Mech::new(CKM_EC_KEY_PAIR_GEN);
    let mut public = Tmpl::new()
        .bool(CKA_TOKEN, true)
        .bool(CKA_VERIFY, true)
        .bytes(CKA_EC_PARAMS, P256)
        .bytes(CKA_LABEL, label.as_bytes());
    let mut private = Tmpl::new()
        .bool(CKA_TOKEN, true)
        .bool(CKA_PRIVATE, true)
        .bool(CKA_SENSITIVE, true)
        .bool(CKA_SIGN, true)
        .bytes(CKA_LABEL, label.as_bytes());
    raw.generate_key_pair(s, &mut m, &mut public, &mut private)
        .unwrap_or_else(|rv| panic!("C_GenerateKeyPair: {}", rv_name(rv)))
}

fn aes_key(raw: &Raw, s: S, token: bool, label: &str) -> H {
    let mut m = Mech::new(CKM_AES_KEY_GEN);
    let mut t = Tmpl::new()
        .bool(CKA_TOKEN, token)
        .bool(CKA_PRIVATE, true)
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_DECRYPT, true)
        .ulong(CKA_VALUE_LEN, 32)
        .bytes(CKA_LABEL, label.as_bytes());
    raw.generate_key(s, &mut m, &mut t)
        .unwrap_or_else(|rv| panic!("C_GenerateKey: {}", rv_name(rv)))
}

const DIGEST: [u8; 32] = [0x5a; 32];

fn sign(raw: &Raw, s: S, key: H) -> Result<Vec<u8>, CK_RV> {
    raw.sign(s, &mut Mech::new(CKM_ECDSA), key, &DIGEST)
}

/// Signs `n` times; every call must succeed and verify. Each round is two routed
/// operations (C_SignInit and C_VerifyInit).
const OPS_PER_ROUND: CK_ULONG = 2;

/// Signs `n` times; every call must succeed and verify.
#[track_caller]
fn sign_n(raw: &Raw, s: S, key: H, public: H, n: usize) {
    for i in 0..n {
        let sig = sign(raw, s, key)
            .unwrap_or_else(|rv| panic!("signature {i} of {n} failed: {}", rv_name(rv)));
        raw.verify(s, &mut Mech::new(CKM_ECDSA), public, &DIGEST, &sig)
            .unwrap_or_else(|rv| panic!("verification {i} failed: {}", rv_name(rv)));
    }
}

/// Per-instance change of ops_served between two snapshots.
fn delta(
    before: &BTreeMap<String, CK_ULONG>,
    after: &BTreeMap<String, CK_ULONG>,
) -> BTreeMap<String, CK_ULONG> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

fn find(raw: &Raw, s: S, mut t: Tmpl) -> Vec<H> {
    let mut a = t.ck();
    let rv = ck!(
        raw,
        C_FindObjectsInit(s, a.as_mut_ptr(), a.len() as CK_ULONG)
    );
    assert_eq!(rv, CKR_OK, "C_FindObjectsInit: {}", rv_name(rv));
    let mut all = Vec::new();
    loop {
        let mut buf = [0 as H; 64];
        let mut n: CK_ULONG = 0;
        let rv = ck!(raw, C_FindObjects(s, buf.as_mut_ptr(), 64, &mut n));
        assert_eq!(rv, CKR_OK, "C_FindObjects: {}", rv_name(rv));
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n as usize]);
    }
    assert_eq!(ck!(raw, C_FindObjectsFinal(s)), CKR_OK);
    all
}

/// `target/release/clusterhsm` beside the module; runs with this process's environment
/// (the same CLUSTERHSM_DIR / CLUSTERHSM_CONF). Returns (success, stdout, stderr).
fn cli(args: &[&str]) -> (bool, String, String) {
    let module = module_path();
    let exe = module
        .parent()
        .expect("module directory")
        .join("clusterhsm");
    assert!(exe.is_file(), "CLI not found at {}", exe.display());
    let out = Command::new(&exe)
        .args(args)
        .output()
        .expect("run the clusterhsm CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn cli_ok(args: &[&str]) -> String {
    let (ok, out, err) = cli(args);
    assert!(ok, "clusterhsm {args:?} failed:\n{out}\n{err}");
    out
}

/// The lock status `clusterhsm user list` prints for `user`.
fn listed_lock_status(user: &str) -> String {
    let out = cli_ok(&["user", "list"]);
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(user))
        .unwrap_or_else(|| panic!("user {user} not in `user list`:\n{out}"));
    line.split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Replication and resync

/// A token key created while az-b is down is not held by hsm-b, is not served by it, and
/// is resynced to it when az-b comes back.
#[test]
fn key_created_during_az_outage_is_resynced() {
    isolated("key_created_during_az_outage_is_resynced", || {
        let c = Cluster::setup();
        let names: Vec<(String, String)> =
            c.instances().into_iter().map(|i| (i.id, i.az)).collect();
        assert_eq!(
            names,
            [("hsm-a", "az-a"), ("hsm-b", "az-b"), ("hsm-c", "az-c")]
                .map(|(a, b)| (a.to_string(), b.to_string())),
            "the default topology"
        );
        let s = c.user_session();
        let (before_pub, before_priv) = ec_token_key(&c.raw, s, "before");
        assert_eq!(
            c.replicas(s, before_priv),
            ["hsm-a", "hsm-b", "hsm-c"],
            "a key made with every instance up is on every instance"
        );

        c.set_az("az-b", HEALTH_DOWN);
        assert_eq!(c.health("hsm-b"), HEALTH_DOWN);
        let (public, private) = ec_token_key(&c.raw, s, "during-outage");
        assert_eq!(c.replicas(s, private), ["hsm-a", "hsm-c"]);
        assert_eq!(c.replicas(s, public), ["hsm-a", "hsm-c"]);

        let t0 = c.ops();
        sign_n(&c.raw, s, private, public, 6);
        sign_n(&c.raw, s, before_priv, before_pub, 6);
        let d = delta(&t0, &c.ops());
        assert_eq!(d["hsm-b"], 0, "a Down instance served operations: {d:?}");
        assert!(d["hsm-a"] > 0 && d["hsm-c"] > 0, "load is spread: {d:?}");
        assert_eq!(
            d.values().sum::<CK_ULONG>(),
            12 * OPS_PER_ROUND,
            "one routed operation per C_SignInit / C_VerifyInit: {d:?}"
        );

        c.set_az("az-b", HEALTH_ACTIVE);
        assert_eq!(c.health("hsm-b"), HEALTH_ACTIVE);
        assert_eq!(
            c.replicas(s, private),
            ["hsm-a", "hsm-b", "hsm-c"],
            "hsm-b is resynced when az-b comes back"
        );
        assert_eq!(c.replicas(s, public), ["hsm-a", "hsm-b", "hsm-c"]);
        let t1 = c.ops();
        sign_n(&c.raw, s, private, public, 6);
        let d = delta(&t1, &c.ops());
        assert!(
            d["hsm-b"] > 0,
            "the resynced instance serves the key: {d:?}"
        );
        assert_eq!(d.values().sum::<CK_ULONG>(), 6 * OPS_PER_ROUND);

        // The resync is in hsm-b's audit log.
        let tail = cli_ok(&["audit", "tail", "200"]);
        assert!(
            tail.lines().any(|l| l.contains("CN_HSM_HEALTH")
                && l.contains("\"hsm-b\"")
                && l.contains("resynced 2 objects")),
            "no resync event for hsm-b in the audit log:\n{tail}"
        );
    });
}

/// A modification made while hsm-b is down is a write hsm-b misses (DESIGN.md §3): it no
/// longer holds the current version, its audit log does not record the change, and it is
/// resynced (and says so) when it comes back.
#[test]
fn modification_while_down_is_resynced() {
    isolated("modification_while_down_is_resynced", || {
        let c = Cluster::setup();
        let s = c.user_session();
        let key = aes_key(&c.raw, s, true, "v1");
        assert_eq!(c.replicas(s, key), ["hsm-a", "hsm-b", "hsm-c"]);
        c.set_hsm("hsm-b", HEALTH_DOWN);
        let mut t = Tmpl::new().bytes(CKA_LABEL, b"v2");
        let mut a = t.ck();
        let rv = ck!(
            c.raw,
            C_SetAttributeValue(s, key, a.as_mut_ptr(), a.len() as CK_ULONG)
        );
        assert_eq!(rv, CKR_OK, "C_SetAttributeValue: {}", rv_name(rv));
        assert_eq!(c.raw.get_attr(s, key, CKA_LABEL).unwrap(), b"v2");
        let modify_on: Vec<String> = cli_ok(&["audit", "tail", "200"])
            .lines()
            .filter(|l| l.contains("CN_MODIFY_OBJECT"))
            .map(str::to_string)
            .collect();
        assert!(!modify_on.is_empty(), "no CN_MODIFY_OBJECT event at all");
        assert!(
            modify_on.iter().all(|l| !l.contains("\"hsm\":\"hsm-b\"")),
            "the Down hsm-b logged the modification: {modify_on:?}"
        );
        assert_eq!(
            c.replicas(s, key),
            ["hsm-a", "hsm-c"],
            "hsm-b missed the new version but is still listed as holding it"
        );
        c.set_hsm("hsm-b", HEALTH_ACTIVE);
        assert_eq!(c.replicas(s, key), ["hsm-a", "hsm-b", "hsm-c"]);
        let tail = cli_ok(&["audit", "tail", "200"]);
        assert!(
            tail.lines().any(|l| l.contains("CN_HSM_HEALTH")
                && l.contains("\"hsm-b\"")
                && l.contains("resynced 1 objects")),
            "no resync of the modified key on hsm-b:\n{tail}"
        );
    });
}

/// Session objects live on their session's instance only (DESIGN.md §3, as in CloudHSM):
/// when that instance goes down they are gone, and they do not come back with it.
#[test]
fn session_objects_are_lost_with_their_instance() {
    isolated("session_objects_are_lost_with_their_instance", || {
        let c = Cluster::setup();
        let s = c.user_session();
        let key = aes_key(&c.raw, s, false, "session-key");
        let on = c.replicas(s, key);
        assert_eq!(on.len(), 1, "a session object is on one instance: {on:?}");
        let home = on[0].clone();
        c.raw
            .encrypt(s, &mut Mech::new(CKM_AES_ECB), key, &[3u8; 16])
            .unwrap_or_else(|rv| panic!("session key before the outage: {}", rv_name(rv)));
        c.set_hsm(&home, HEALTH_DOWN);
        let rv = c
            .raw
            .encrypt(s, &mut Mech::new(CKM_AES_ECB), key, &[3u8; 16])
            .expect_err("a session key whose instance is Down");
        assert!(
            rv == CKR_KEY_HANDLE_INVALID || rv == CKR_DEVICE_ERROR,
            "{}",
            rv_name(rv)
        );
        c.set_hsm(&home, HEALTH_ACTIVE);
        let got = c.raw.get_attr(s, key, CKA_LABEL);
        assert_eq!(
            got.as_ref().map_err(|rv| *rv),
            Err(CKR_OBJECT_HANDLE_INVALID),
            "the session key came back with {home}: {got:?}"
        );
        // The session itself goes on: a new session key works.
        let again = aes_key(&c.raw, s, false, "session-key-2");
        assert!(c
            .raw
            .encrypt(s, &mut Mech::new(CKM_AES_ECB), again, &[3u8; 16])
            .is_ok());
    });
}

// ---------------------------------------------------------------------------------------
// Key availability check (CloudHSM SDK 5)

/// With one Active instance a new token key has one copy and is refused for use
/// (CKR_FUNCTION_FAILED) until a second instance comes back and holds it.
#[test]
fn key_availability_check_needs_two_copies() {
    isolated("key_availability_check_needs_two_copies", || {
        let c = Cluster::setup();
        let s = c.user_session();
        c.set_hsm("hsm-b", HEALTH_DOWN);
        c.set_hsm("hsm-c", HEALTH_DOWN);
        let (public, private) = ec_token_key(&c.raw, s, "one-copy");
        let aes = aes_key(&c.raw, s, true, "one-copy-aes");
        assert_eq!(c.replicas(s, private), ["hsm-a"]);
        assert_eq!(c.replicas(s, aes), ["hsm-a"]);

        let t0 = c.ops();
        let rv = ck!(
            c.raw,
            C_SignInit(s, &mut Mech::new(CKM_ECDSA).ck(), private)
        );
        assert_eq!(rv, CKR_FUNCTION_FAILED, "C_SignInit: {}", rv_name(rv));
        let rv = ck!(
            c.raw,
            C_EncryptInit(s, &mut Mech::new(CKM_AES_ECB).ck(), aes)
        );
        assert_eq!(rv, CKR_FUNCTION_FAILED, "C_EncryptInit: {}", rv_name(rv));
        // The refused inits left no operation behind.
        let mut d = DIGEST.to_vec();
        let mut out = [0u8; 128];
        let mut len = out.len() as CK_ULONG;
        let rv = ck!(
            c.raw,
            C_Sign(
                s,
                d.as_mut_ptr(),
                d.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len
            )
        );
        assert_eq!(rv, CKR_OPERATION_NOT_INITIALIZED, "{}", rv_name(rv));
        let d = delta(&t0, &c.ops());
        assert_eq!((d["hsm-b"], d["hsm-c"]), (0, 0), "{d:?}");

        // A session key lives on its session's instance by design and is not subject to
        // the check (a session opened now is on hsm-a, the only Active instance).
        let s1 = c.open();
        let session_aes = aes_key(&c.raw, s1, false, "session-aes");
        assert_eq!(c.replicas(s1, session_aes), ["hsm-a"]);
        let ct = c
            .raw
            .encrypt(s1, &mut Mech::new(CKM_AES_ECB), session_aes, &[1u8; 16])
            .unwrap_or_else(|rv| panic!("session key: {}", rv_name(rv)));
        assert_eq!(ct.len(), 16);

        c.set_hsm("hsm-b", HEALTH_ACTIVE);
        assert_eq!(c.replicas(s, private), ["hsm-a", "hsm-b"]);
        assert_eq!(c.replicas(s, aes), ["hsm-a", "hsm-b"]);
        let t1 = c.ops();
        sign_n(&c.raw, s, private, public, 6);
        let ct = c
            .raw
            .encrypt(s, &mut Mech::new(CKM_AES_ECB), aes, &[2u8; 16])
            .unwrap_or_else(|rv| panic!("C_Encrypt with 2 copies: {}", rv_name(rv)));
        let pt = c
            .raw
            .decrypt(s, &mut Mech::new(CKM_AES_ECB), aes, &ct)
            .unwrap();
        assert_eq!(pt, [2u8; 16]);
        let d = delta(&t1, &c.ops());
        assert_eq!(d["hsm-c"], 0, "hsm-c is still down: {d:?}");
        assert!(d["hsm-a"] > 0 && d["hsm-b"] > 0, "{d:?}");
    });
}

/// `key_availability_check = false` in the config turns the check off: a key with one
/// copy is usable at once.
#[test]
fn key_availability_check_can_be_turned_off() {
    isolated("key_availability_check_can_be_turned_off", || {
        let conf = std::env::var("CLUSTERHSM_CONF").expect("CLUSTERHSM_CONF");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("key_availability_check = false\n");
        std::fs::write(&conf, text).unwrap();
        let c = Cluster::setup();
        let s = c.user_session();
        c.set_hsm("hsm-b", HEALTH_DOWN);
        c.set_hsm("hsm-c", HEALTH_DOWN);
        let (public, private) = ec_token_key(&c.raw, s, "unchecked");
        assert_eq!(c.replicas(s, private), ["hsm-a"]);
        let t0 = c.ops();
        sign_n(&c.raw, s, private, public, 3);
        let d = delta(&t0, &c.ops());
        assert_eq!(
            (d["hsm-a"], d["hsm-b"], d["hsm-c"]),
            (3 * OPS_PER_ROUND, 0, 0)
        );
    });
}

// ---------------------------------------------------------------------------------------
// Failover

/// A signer thread keeps signing while instances go down one by one: not a single call
/// fails, and the Down instances' counters stay put. With none left the calls fail
/// cleanly, and they resume when an instance holding the key returns.
#[test]
fn signing_survives_instances_going_down() {
    isolated("signing_survives_instances_going_down", || {
        let c = Cluster::setup();
        let s = c.user_session();
        let (public, private) = ec_token_key(&c.raw, s, "failover");
        assert_eq!(c.replicas(s, private), ["hsm-a", "hsm-b", "hsm-c"]);
        // The signer's own session (C_OpenSession is routed too: open it before counting).
        let s2 = c.open();

        let start = c.ops();
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let signer = {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let raw = Raw::load();
                let s = s2;
                let mut failures = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    match sign(&raw, s, private) {
                        Ok(sig) => {
                            if let Err(rv) =
                                raw.verify(s, &mut Mech::new(CKM_ECDSA), public, &DIGEST, &sig)
                            {
                                failures.push(format!("verify: {}", rv_name(rv)));
                            }
                        }
                        Err(rv) => failures.push(format!("sign: {}", rv_name(rv))),
                    }
                    done.fetch_add(1, Ordering::AcqRel);
                }
                failures
            })
        };
        let wait_for = |n: usize| {
            let target = done.load(Ordering::Acquire) + n;
            let start = Instant::now();
            while done.load(Ordering::Acquire) < target {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "the signer stalled"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        };

        wait_for(30);
        c.set_hsm("hsm-a", HEALTH_DOWN);
        let a_at_down = c.ops()["hsm-a"];
        wait_for(30);
        c.set_hsm("hsm-b", HEALTH_DOWN);
        let b_at_down = c.ops()["hsm-b"];
        wait_for(30);
        stop.store(true, Ordering::Release);
        let failures = signer.join().expect("signer thread");
        assert!(
            failures.is_empty(),
            "calls failed while an instance holding the key was Active: {failures:?}"
        );
        let end = c.ops();
        assert_eq!(
            end["hsm-a"], a_at_down,
            "hsm-a served operations while Down"
        );
        assert_eq!(
            end["hsm-b"], b_at_down,
            "hsm-b served operations while Down"
        );
        let d = delta(&start, &end);
        assert!(d["hsm-c"] >= 30, "hsm-c carried the last phase: {d:?}");
        assert_eq!(
            d.values().sum::<CK_ULONG>(),
            done.load(Ordering::Acquire) as CK_ULONG * OPS_PER_ROUND,
            "one routed operation per C_SignInit / C_VerifyInit: {d:?}"
        );

        // The last instance goes: calls fail cleanly, the session stays usable.
        c.set_hsm("hsm-c", HEALTH_DOWN);
        let t0 = c.ops();
        for _ in 0..3 {
            let rv = sign(&c.raw, s, private).expect_err("signing with every instance Down");
            assert!(
                rv == CKR_DEVICE_ERROR || rv == CKR_FUNCTION_FAILED,
                "no instance serving: {}",
                rv_name(rv)
            );
        }
        assert_eq!(c.ops(), t0, "no instance counted a refused operation");
        // SAFETY: CK_SESSION_INFO is plain data.
        let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
        assert_eq!(ck!(c.raw, C_GetSessionInfo(s, &mut info)), CKR_OK);
        assert_eq!(info.state, CKS_RW_USER_FUNCTIONS);

        // hsm-a still holds the key (it missed nothing); signing resumes on it alone.
        c.set_hsm("hsm-a", HEALTH_ACTIVE);
        let t1 = c.ops();
        sign_n(&c.raw, s, private, public, 5);
        let d = delta(&t1, &c.ops());
        assert_eq!(
            (d["hsm-a"], d["hsm-b"], d["hsm-c"]),
            (5 * OPS_PER_ROUND, 0, 0),
            "only hsm-a is back: {d:?}"
        );
    });
}

// ---------------------------------------------------------------------------------------
// Faults from the CLI reach a running process

/// `clusterhsm hsm down hsm-a` in another process takes effect here before the next
/// operation: from then on this process routes only to hsm-b and hsm-c.
#[test]
fn cli_fault_reaches_running_process() {
    isolated("cli_fault_reaches_running_process", || {
        let c = Cluster::setup();
        let s = c.user_session();
        let (public, private) = ec_token_key(&c.raw, s, "cli-fault");
        let t0 = c.ops();
        sign_n(&c.raw, s, private, public, 6);
        let d = delta(&t0, &c.ops());
        assert!(
            d.values().all(|n| *n > 0),
            "every instance serves while Active: {d:?}"
        );

        let before = c.ops();
        let out = cli_ok(&["hsm", "down", "hsm-a"]);
        assert!(out.contains("hsm-a"), "{out}");
        // No vendor call in between: the signing itself must notice the change.
        sign_n(&c.raw, s, private, public, 10);
        let after = c.ops();
        let d = delta(&before, &after);
        assert_eq!(
            d["hsm-a"], 0,
            "operations were routed to hsm-a after the CLI took it down: {d:?}"
        );
        assert_eq!(d["hsm-b"] + d["hsm-c"], 10 * OPS_PER_ROUND, "{d:?}");
        assert_eq!(c.health("hsm-a"), HEALTH_DOWN);

        cli_ok(&["hsm", "up", "hsm-a"]);
        let before = c.ops();
        sign_n(&c.raw, s, private, public, 9);
        let d = delta(&before, &c.ops());
        assert!(d["hsm-a"] > 0, "hsm-a is back in rotation: {d:?}");
        assert_eq!(c.health("hsm-a"), HEALTH_ACTIVE);

        // An AZ outage from the CLI, too.
        cli_ok(&["az", "down", "az-c"]);
        let before = c.ops();
        sign_n(&c.raw, s, private, public, 8);
        let d = delta(&before, &c.ops());
        assert_eq!(d["hsm-c"], 0, "routed into a Down AZ: {d:?}");
        assert_eq!(d["hsm-a"] + d["hsm-b"], 8 * OPS_PER_ROUND, "{d:?}");
    });
}

// ---------------------------------------------------------------------------------------
// Crypto User isolation

/// A CU sees neither another CU's private key nor can use, read or destroy it by handle.
#[test]
fn crypto_users_do_not_see_each_others_keys() {
    isolated("crypto_users_do_not_see_each_others_keys", || {
        let c = Cluster::setup();
        let so = format!("admin:{SO_PIN}");
        cli_ok(&[
            "user",
            "create",
            "alice",
            "--role",
            "cu",
            "--password",
            "alicepass1",
            "--user",
            &so,
        ]);
        assert_eq!(listed_lock_status("alice"), "unlocked");

        let s = c.user_session();
        let (cu_pub, cu_priv) = ec_token_key(&c.raw, s, "cu-key");
        let cu_aes = aes_key(&c.raw, s, true, "cu-aes");
        sign_n(&c.raw, s, cu_priv, cu_pub, 1);
        assert_eq!(ck!(c.raw, C_Logout(s)), CKR_OK);

        assert_eq!(login(&c.raw, s, CKU_USER, "alice:alicepass1"), CKR_OK);
        let found = find(&c.raw, s, Tmpl::new());
        assert!(
            !found.contains(&cu_priv) && !found.contains(&cu_aes),
            "alice finds cu's private keys: {found:?}"
        );
        assert!(
            find(
                &c.raw,
                s,
                Tmpl::new()
                    .bytes(CKA_LABEL, b"cu-key")
                    .ulong(CKA_CLASS, CKO_PRIVATE_KEY)
            )
            .is_empty(),
            "alice finds cu's private key by label"
        );
        assert_eq!(
            sign(&c.raw, s, cu_priv).expect_err("alice signs with cu's key"),
            CKR_KEY_HANDLE_INVALID
        );
        assert_eq!(
            c.raw
                .encrypt(s, &mut Mech::new(CKM_AES_ECB), cu_aes, &[0u8; 16])
                .expect_err("alice encrypts with cu's key"),
            CKR_KEY_HANDLE_INVALID
        );
        assert_eq!(
            c.raw
                .get_attr(s, cu_priv, CKA_LABEL)
                .expect_err("alice reads cu's key"),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            ck!(c.raw, C_DestroyObject(s, cu_aes)),
            CKR_OBJECT_HANDLE_INVALID
        );
        // Her own key works.
        let (a_pub, a_priv) = ec_token_key(&c.raw, s, "alice-key");
        sign_n(&c.raw, s, a_priv, a_pub, 1);
        assert_eq!(ck!(c.raw, C_Logout(s)), CKR_OK);

        // Back as cu: its keys are intact, alice's private key is invisible.
        assert_eq!(login(&c.raw, s, CKU_USER, USER_PIN), CKR_OK);
        sign_n(&c.raw, s, cu_priv, cu_pub, 1);
        assert!(c.raw.get_attr(s, cu_aes, CKA_LABEL).is_ok());
        assert!(!find(&c.raw, s, Tmpl::new()).contains(&a_priv));
        assert_eq!(
            sign(&c.raw, s, a_priv).expect_err("cu signs with alice's key"),
            CKR_KEY_HANDLE_INVALID
        );
    });
}

// ---------------------------------------------------------------------------------------
// Lockout

fn pin_flags(f: CK_FLAGS) -> CK_FLAGS {
    f & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED)
}

/// With one Active instance, five wrong PINs lock the default CU there: the sixth attempt
/// fails with CKR_PIN_LOCKED even with the right PIN, C_GetTokenInfo's flags follow the
/// count, `user list` reports the lock, `user unlock` resets it.
#[test]
fn lockout_after_five_failures() {
    isolated("lockout_after_five_failures", || {
        let c = Cluster::setup();
        c.set_hsm("hsm-b", HEALTH_DOWN);
        c.set_hsm("hsm-c", HEALTH_DOWN);
        let s = c.open();
        assert_eq!(pin_flags(c.token_flags()), 0, "no failures yet");

        for attempt in 1..=5 {
            let rv = login(&c.raw, s, CKU_USER, "wrong-pin");
            if attempt < 5 {
                assert_eq!(rv, CKR_PIN_INCORRECT, "attempt {attempt}: {}", rv_name(rv));
            } else {
                assert!(
                    rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED,
                    "attempt {attempt}: {}",
                    rv_name(rv)
                );
            }
            let want = match attempt {
                1..=3 => CKF_USER_PIN_COUNT_LOW,
                4 => CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY,
                _ => CKF_USER_PIN_LOCKED,
            };
            let got = pin_flags(c.token_flags());
            // LOCKED may come with COUNT_LOW set too; FINAL_TRY must go.
            assert!(
                got & want == want && (attempt < 5 || got & CKF_USER_PIN_FINAL_TRY == 0),
                "flags after {attempt} failures: 0x{got:x}, want 0x{want:x}"
            );
        }
        let rv = login(&c.raw, s, CKU_USER, USER_PIN);
        assert_eq!(
            rv,
            CKR_PIN_LOCKED,
            "6th attempt with the right PIN: {}",
            rv_name(rv)
        );
        // Locked on hsm-a, never tried on the Down instances.
        assert_eq!(listed_lock_status("cu"), "inconsistent");
        assert_eq!(listed_lock_status("admin"), "unlocked");

        cli_ok(&["user", "unlock", "cu", "--user", &format!("admin:{SO_PIN}")]);
        assert_eq!(listed_lock_status("cu"), "unlocked");
        assert_eq!(pin_flags(c.token_flags()), 0, "unlock clears the flags");
        assert_eq!(login(&c.raw, s, CKU_USER, USER_PIN), CKR_OK);
        assert_eq!(ck!(c.raw, C_Logout(s)), CKR_OK);

        // With every instance Active, failures lock the user everywhere: `locked`.
        c.set_hsm("hsm-b", HEALTH_ACTIVE);
        c.set_hsm("hsm-c", HEALTH_ACTIVE);
        let mut attempts = 0;
        while listed_lock_status("cu") != "locked" {
            attempts += 1;
            assert!(attempts <= 40, "cu is not locked on every instance");
            let rv = login(&c.raw, s, CKU_USER, "wrong-pin");
            assert!(
                rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED,
                "{}",
                rv_name(rv)
            );
        }
        assert!(
            attempts >= 15,
            "locked after {attempts} failures on 3 instances"
        );
        for _ in 0..3 {
            assert_eq!(login(&c.raw, s, CKU_USER, USER_PIN), CKR_PIN_LOCKED);
        }
        assert!(pin_flags(c.token_flags()) & CKF_USER_PIN_LOCKED != 0);
        cli_ok(&["user", "unlock", "cu", "--user", &format!("admin:{SO_PIN}")]);
        assert_eq!(listed_lock_status("cu"), "unlocked");
        assert_eq!(login(&c.raw, s, CKU_USER, USER_PIN), CKR_OK);
    });
}

// ---------------------------------------------------------------------------------------
// Audit

const AUDIT_ROUNDS: usize = 40;

/// Creates and destroys `AUDIT_ROUNDS` token objects; returns the failures.
fn churn(slot: CK_SLOT_ID, tag: &str) -> Vec<String> {
    let raw = Raw::load();
    let s = open_rw(&raw, slot);
    let mut failures = Vec::new();
    for i in 0..AUDIT_ROUNDS {
        let label = format!("{tag}-{i}");
        let mut t = Tmpl::new()
            .ulong(CKA_CLASS, CKO_DATA)
            .bool(CKA_TOKEN, true)
            .bool(CKA_PRIVATE, true)
            .bytes(CKA_LABEL, label.as_bytes())
            .bytes(CKA_VALUE, label.as_bytes());
        match raw.create_object(s, &mut t) {
            Ok(h) => {
                let rv = ck!(raw, C_DestroyObject(s, h));
                if rv != CKR_OK {
                    failures.push(format!("{label}: C_DestroyObject {}", rv_name(rv)));
                }
            }
            Err(rv) => failures.push(format!("{label}: C_CreateObject {}", rv_name(rv))),
        }
    }
    assert_eq!(ck!(raw, C_CloseSession(s)), CKR_OK);
    failures
}

/// Two threads of churn, logged in as the default CU.
fn churn_two_threads(c: &Cluster, tag: &str) -> Vec<String> {
    let s = c.user_session();
    let slot = c.slot;
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let tag = format!("{tag}-t{t}");
            std::thread::spawn(move || churn(slot, &tag))
        })
        .collect();
    let failures = threads
        .into_iter()
        .flat_map(|t| t.join().expect("churn thread"))
        .collect();
    assert_eq!(ck!(c.raw, C_CloseSession(s)), CKR_OK);
    failures
}

/// The second process of `audit_log_has_no_gaps`.
#[test]
fn audit_churn_process() {
    helper_process("audit_churn_process", || {
        let c = Cluster::existing();
        let failures = churn_two_threads(&c, "helper");
        assert!(failures.is_empty(), "helper process: {failures:?}");
    });
}

/// Four threads in two processes create and destroy token objects (an instance goes down
/// and comes back meanwhile); every instance's audit log stays gap-free.
#[test]
fn audit_log_has_no_gaps() {
    isolated("audit_log_has_no_gaps", || {
        let c = Cluster::setup();
        let helper = std::thread::spawn(|| spawn_helper("audit_churn_process"));
        let local = {
            let s = c.user_session();
            let slot = c.slot;
            let threads: Vec<_> = (0..2)
                .map(|t| {
                    let tag = format!("main-t{t}");
                    std::thread::spawn(move || churn(slot, &tag))
                })
                .collect();
            std::thread::sleep(Duration::from_millis(20));
            c.set_hsm("hsm-c", HEALTH_DOWN);
            std::thread::sleep(Duration::from_millis(20));
            c.set_hsm("hsm-c", HEALTH_ACTIVE);
            let f: Vec<String> = threads
                .into_iter()
                .flat_map(|t| t.join().expect("churn thread"))
                .collect();
            assert_eq!(ck!(c.raw, C_CloseSession(s)), CKR_OK);
            f
        };
        helper.join().expect("helper process");
        assert!(local.is_empty(), "main process: {local:?}");

        let (ok, out, err) = cli(&["audit", "verify"]);
        assert!(ok, "audit verify failed:\n{out}\n{err}");
        let ops = 4 * AUDIT_ROUNDS * 2;
        for hsm in ["hsm-a", "hsm-b", "hsm-c"] {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{hsm}:")))
                .unwrap_or_else(|| panic!("{hsm} missing from audit verify:\n{out}"));
            assert!(line.contains("no gaps"), "{line}");
            let n: usize = line
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or_else(|| panic!("event count in {line:?}"));
            if hsm != "hsm-c" {
                assert!(n >= ops, "{hsm} logged {n} events for {ops} operations");
            } else {
                assert!(n > 0, "{line}");
            }
        }
        // Nothing was left behind.
        let s = c.user_session();
        assert!(find(&c.raw, s, Tmpl::new().ulong(CKA_CLASS, CKO_DATA)).is_empty());
    });
}

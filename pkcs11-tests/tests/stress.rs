//! Reliability under load (issue 8): 8 threads, each with its own session, mix key
//! generation (AES, EC P-256), sign/verify, encrypt/decrypt, find, copy, destroy and
//! login/logout for `STRESS_SECONDS` (default 10), while two other processes on the same
//! token do the same and an AZ goes down and comes back every few seconds (alternately
//! through the vendor interface, CHSM_SetAzHealth, and the CLI, `clusterhsm az down|up`).
//!
//! Checked: no crash, no deadlock (a watchdog aborts when a thread makes no progress for
//! 30 s), every CKR_ code is on the call's explicit allow-list, and at the end every token
//! object a thread created and did not destroy is present (labels per thread, checked by
//! each process and again by the main process for all three).
//!
//! Long form: `STRESS_SECONDS=3600 cargo test --release -p pkcs11-tests --test stress -- --nocapture`.

#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Mech, Raw, Tmpl, H, S};
use common::*;
use cryptoki_sys::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const THREADS: usize = 8;
const WATCHDOG: Duration = Duration::from_secs(30);
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn seconds() -> u64 {
    std::env::var("STRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

fn scratch_root() -> PathBuf {
    PathBuf::from(std::env::var_os("CLUSTERHSM_DIR").expect("CLUSTERHSM_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The raw function list, shared by the threads of one process.
struct Shared(Raw);
// SAFETY: the module is initialized with CKF_OS_LOCKING_OK and is thread-safe; the function
// table is immutable static data.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

/// The process's view of whether the (per-application) login may be absent: threads log
/// out and in concurrently, so an operation that overlapped a logout may legitimately see
/// CKR_USER_NOT_LOGGED_IN or a private object's handle become invalid.
#[derive(Default)]
struct Auth {
    logged_in: bool,
    epoch: u64,
    /// C_Logout calls started and not yet returned.
    pending_logouts: u32,
}

/// What one key shared between threads is.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Aes,
    Ec,
}

#[derive(Clone, Copy)]
struct Key {
    kind: Kind,
    // AES: the key; EC: the private key.
    h: H,
    // EC: the public key.
    pubh: H,
}

struct Ctx {
    raw: Shared,
    slot: CK_SLOT_ID,
    prefix: String,
    auth: Mutex<Auth>,
    /// Every thread's live keys, published so other threads use them too.
    pool: Mutex<Vec<Key>>,
    stop: AtomicBool,
    ops: AtomicU64,
    progress: Vec<AtomicU64>,
    started: Instant,
    /// (call, CKR_ code) → count of allowed non-OK results.
    tolerated: Mutex<BTreeMap<(String, String), u64>>,
    /// Unexpected results: the test fails if any.
    failures: Mutex<Vec<String>>,
}

struct Window {
    logged_in: bool,
    epoch: u64,
}

impl Ctx {
    fn r(&self) -> &Raw {
        &self.raw.0
    }
    fn window(&self) -> Window {
        let a = self.auth.lock().unwrap();
        Window {
            logged_in: a.logged_in,
            epoch: a.epoch,
        }
    }
    /// True when the login may have been absent at some point since `w`.
    fn maybe_unauth(&self, w: &Window) -> bool {
        let a = self.auth.lock().unwrap();
        !w.logged_in || !a.logged_in || a.epoch != w.epoch
    }
    fn tick(&self, t: usize) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        self.progress[t].store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    /// Classifies a result: OK → true; an allowed code → false (counted); anything else is
    /// recorded as a failure.
    fn check(&self, call: &str, r: CK_RV, allowed: &[CK_RV]) -> bool {
        if r == CKR_OK {
            return true;
        }
        if allowed.contains(&r) {
            *self
                .tolerated
                .lock()
                .unwrap()
                .entry((call.to_string(), rv_name(r)))
                .or_default() += 1;
        } else {
            let msg = format!(
                "{}: {call} returned {} (not allowed)",
                self.prefix,
                rv_name(r)
            );
            eprintln!("{msg}");
            self.failures.lock().unwrap().push(msg);
        }
        false
    }
    fn fail(&self, msg: String) {
        eprintln!("{}: {msg}", self.prefix);
        self.failures.lock().unwrap().push(msg);
    }
}

/// The codes allowed when a call touches a key that may have been destroyed by another
/// thread, or a private object while the login may be absent.
const GONE: &[CK_RV] = &[CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID];
const UNAUTH: &[CK_RV] = &[
    CKR_USER_NOT_LOGGED_IN,
    CKR_OBJECT_HANDLE_INVALID,
    CKR_KEY_HANDLE_INVALID,
];

fn allowed(other_owner: bool, unauth: bool) -> Vec<CK_RV> {
    let mut v = Vec::new();
    if other_owner {
        v.extend_from_slice(GONE);
    }
    if unauth {
        v.extend_from_slice(UNAUTH);
    }
    v
}

/// For the second call of a two-phase operation (C_Sign after C_SignInit, C_FindObjects
/// after C_FindObjectsInit): the module's C_Logout ends the operations of every session of
/// the token, so CKR_OPERATION_NOT_INITIALIZED is allowed when a logout overlapped.
fn allowed2(other_owner: bool, unauth: bool) -> Vec<CK_RV> {
    let mut v = allowed(other_owner, unauth);
    if unauth {
        v.push(CKR_OPERATION_NOT_INITIALIZED);
    }
    v
}

/// A thread's own objects: label → live object handles.
#[derive(Default)]
struct Mine {
    objects: BTreeMap<String, Vec<H>>,
    keys: Vec<(String, Key)>,
    n: u64,
}

fn open_session(ctx: &Ctx) -> S {
    let mut s: S = 0;
    let r = ck!(
        ctx.r(),
        C_OpenSession(
            ctx.slot,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            null_mut(),
            None,
            &mut s
        )
    );
    assert_eq!(r, CKR_OK, "C_OpenSession: {}", rv_name(r));
    s
}

fn login(ctx: &Ctx, s: S) {
    let (epoch0, pending0) = {
        let a = ctx.auth.lock().unwrap();
        (a.epoch, a.pending_logouts)
    };
    let mut pin = USER_PIN.as_bytes().to_vec();
    let r = ck!(
        ctx.r(),
        C_Login(s, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG)
    );
    ctx.check("C_Login", r, &[CKR_USER_ALREADY_LOGGED_IN]);
    let mut a = ctx.auth.lock().unwrap();
    // Logged in for sure only when no logout was in flight or started meanwhile.
    if (r == CKR_OK || r == CKR_USER_ALREADY_LOGGED_IN)
        && a.epoch == epoch0
        && pending0 == 0
        && a.pending_logouts == 0
    {
        a.logged_in = true;
    }
    a.epoch += 1;
}

fn logout(ctx: &Ctx, s: S) {
    {
        let mut a = ctx.auth.lock().unwrap();
        a.logged_in = false;
        a.pending_logouts += 1;
        a.epoch += 1;
    }
    let r = ck!(ctx.r(), C_Logout(s));
    ctx.check("C_Logout", r, &[CKR_USER_NOT_LOGGED_IN]);
    let mut a = ctx.auth.lock().unwrap();
    a.pending_logouts -= 1;
    a.epoch += 1;
}

fn pick_key(ctx: &Ctx, mine: &Mine, rng: &mut StdRng, kind: Kind) -> Option<(Key, bool)> {
    let own: Vec<Key> = mine
        .keys
        .iter()
        .filter(|(_, k)| k.kind == kind)
        .map(|(_, k)| *k)
        .collect();
    if !own.is_empty() && rng.gen_bool(0.7) {
        return Some((own[rng.gen_range(0..own.len())], false));
    }
    let pool = ctx.pool.lock().unwrap();
    let others: Vec<Key> = pool
        .iter()
        .filter(|k| k.kind == kind && !own.iter().any(|o| o.h == k.h))
        .copied()
        .collect();
    if others.is_empty() {
        return own.first().map(|k| (*k, false));
    }
    Some((others[rng.gen_range(0..others.len())], true))
}

fn label_tmpl(label: &str) -> Tmpl {
    Tmpl::new()
        .bool(CKA_TOKEN, true)
        .bytes(CKA_LABEL, label.as_bytes())
}

fn publish(ctx: &Ctx, k: Key) {
    ctx.pool.lock().unwrap().push(k);
}

fn unpublish(ctx: &Ctx, h: H) {
    ctx.pool.lock().unwrap().retain(|k| k.h != h);
}

fn step(ctx: &Ctx, s: S, t: usize, mine: &mut Mine, rng: &mut StdRng) {
    let r = ctx.r();
    // Keep the window in which a logout may be in effect short: when the login state is
    // unknown and no logout is in flight, log in (again) to know it.
    let unknown = {
        let a = ctx.auth.lock().unwrap();
        !a.logged_in && a.pending_logouts == 0
    };
    if unknown {
        login(ctx, s);
    }
    let w = ctx.window();
    // Bounded store for long runs: past 64 live labels per thread, destroy more often.
    let op = if mine.objects.len() > 64 && rng.gen_bool(0.5) {
        80
    } else {
        rng.gen_range(0..100)
    };
    match op {
        // Generate an AES-256 token key.
        0..=11 => {
            mine.n += 1;
            let label = format!("{}-t{t}-{}", ctx.prefix, mine.n);
            let mut m = Mech::new(CKM_AES_KEY_GEN);
            let mut tm = label_tmpl(&label)
                .ulong(CKA_VALUE_LEN, 32)
                .bool(CKA_ENCRYPT, true)
                .bool(CKA_DECRYPT, true)
                .bool(CKA_PRIVATE, true);
            let res = r.generate_key(s, &mut m, &mut tm);
            let rv = res.err().unwrap_or(CKR_OK);
            if ctx.check(
                "C_GenerateKey(AES)",
                rv,
                &allowed(false, ctx.maybe_unauth(&w)),
            ) {
                let h = res.unwrap();
                mine.objects.insert(label.clone(), vec![h]);
                let k = Key {
                    kind: Kind::Aes,
                    h,
                    pubh: 0,
                };
                mine.keys.push((label, k));
                publish(ctx, k);
            }
        }
        // Generate an EC P-256 token key pair.
        12..=19 => {
            mine.n += 1;
            let label = format!("{}-t{t}-{}", ctx.prefix, mine.n);
            let mut m = Mech::new(CKM_EC_KEY_PAIR_GEN);
            let mut pubt = label_tmpl(&label)
                .bytes(CKA_EC_PARAMS, &P256_OID)
                .bool(CKA_VERIFY, true);
            let mut privt = label_tmpl(&label)
                .bool(CKA_SIGN, true)
                .bool(CKA_PRIVATE, true);
            let res = r.generate_key_pair(s, &mut m, &mut pubt, &mut privt);
            let rv = res.err().unwrap_or(CKR_OK);
            if ctx.check(
                "C_GenerateKeyPair(EC)",
                rv,
                &allowed(false, ctx.maybe_unauth(&w)),
            ) {
                let (ph, kh) = res.unwrap();
                mine.objects.insert(label.clone(), vec![ph, kh]);
                let k = Key {
                    kind: Kind::Ec,
                    h: kh,
                    pubh: ph,
                };
                mine.keys.push((label, k));
                publish(ctx, k);
            }
        }
        // Sign and verify (ECDSA-SHA256).
        20..=39 => {
            let Some((k, other)) = pick_key(ctx, mine, rng, Kind::Ec) else {
                return;
            };
            let data: Vec<u8> = (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect();
            let mut m = Mech::new(CKM_ECDSA_SHA256);
            let res = r.sign(s, &mut m, k.h, &data);
            let rv = res.as_ref().err().copied().unwrap_or(CKR_OK);
            if ctx.check(
                "C_Sign(ECDSA-SHA256)",
                rv,
                &allowed2(other, ctx.maybe_unauth(&w)),
            ) {
                let sig = res.unwrap();
                let res = r.verify(s, &mut m, k.pubh, &data, &sig);
                let rv = res.err().unwrap_or(CKR_OK);
                // The public key is a public object: only another thread's destroy can
                // take it away (a logout may still end the operation).
                let mut al = allowed(other, false);
                if ctx.maybe_unauth(&w) {
                    al.push(CKR_OPERATION_NOT_INITIALIZED);
                }
                ctx.check("C_Verify(ECDSA-SHA256)", rv, &al);
            }
        }
        // Encrypt and decrypt (AES-GCM / AES-CBC-PAD).
        40..=59 => {
            let Some((k, other)) = pick_key(ctx, mine, rng, Kind::Aes) else {
                return;
            };
            let data: Vec<u8> = (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect();
            let iv: [u8; 16] = rng.gen();
            let mut gcm_iv = iv[..12].to_vec();
            let gcm = CK_GCM_PARAMS {
                pIv: gcm_iv.as_mut_ptr(),
                ulIvLen: 12,
                ulIvBits: 96,
                pAAD: null_mut(),
                ulAADLen: 0,
                ulTagBits: 128,
            };
            let mut m = if rng.gen_bool(0.5) {
                Mech::with(CKM_AES_GCM, &gcm)
            } else {
                Mech::bytes(CKM_AES_CBC_PAD, &iv)
            };
            let res = r.encrypt(s, &mut m, k.h, &data);
            let rv = res.as_ref().err().copied().unwrap_or(CKR_OK);
            if ctx.check("C_Encrypt(AES)", rv, &allowed2(other, ctx.maybe_unauth(&w))) {
                let ct = res.unwrap();
                let res = r.decrypt(s, &mut m, k.h, &ct);
                let rv = res.as_ref().err().copied().unwrap_or(CKR_OK);
                let al = allowed2(other, ctx.maybe_unauth(&w));
                if ctx.check("C_Decrypt(AES)", rv, &al) && res.unwrap() != data {
                    ctx.fail("AES decrypt did not give back the plaintext".into());
                }
            }
        }
        // Find an own object by label: it must be there (once logged in).
        60..=71 => {
            let Some((label, handles)) = mine
                .objects
                .iter()
                .nth(rng.gen_range(0..mine.objects.len().max(1)))
                .map(|(l, h)| (l.clone(), h.len()))
            else {
                return;
            };
            let mut tm = Tmpl::new().bytes(CKA_LABEL, label.as_bytes());
            let mut a = tm.ck();
            let rv = ck!(r, C_FindObjectsInit(s, a.as_mut_ptr(), a.len() as CK_ULONG));
            if !ctx.check("C_FindObjectsInit", rv, &[]) {
                return;
            }
            let mut found = [0 as H; 8];
            let mut n: CK_ULONG = 0;
            let rv = ck!(r, C_FindObjects(s, found.as_mut_ptr(), 8, &mut n));
            let found_ok = ctx.check("C_FindObjects", rv, &allowed2(false, ctx.maybe_unauth(&w)));
            let rv = ck!(r, C_FindObjectsFinal(s));
            ctx.check(
                "C_FindObjectsFinal",
                rv,
                &allowed2(false, ctx.maybe_unauth(&w)),
            );
            let unauth = ctx.maybe_unauth(&w);
            if found_ok && n as usize != handles && !unauth {
                ctx.fail(format!(
                    "C_FindObjects(label={label}) found {n} objects, {handles} expected"
                ));
            }
        }
        // Copy an own AES key under a new label.
        72..=79 => {
            let Some((_, k)) = mine
                .keys
                .iter()
                .filter(|(_, k)| k.kind == Kind::Aes)
                .nth(rng.gen_range(0..mine.keys.len().max(1)))
                .cloned()
            else {
                return;
            };
            mine.n += 1;
            let label = format!("{}-t{t}-{}", ctx.prefix, mine.n);
            let mut tm = label_tmpl(&label);
            let res = r.copy_object(s, k.h, &mut tm);
            let rv = res.err().unwrap_or(CKR_OK);
            if ctx.check("C_CopyObject", rv, &allowed(false, ctx.maybe_unauth(&w))) {
                let h = res.unwrap();
                mine.objects.insert(label.clone(), vec![h]);
                let k = Key {
                    kind: Kind::Aes,
                    h,
                    pubh: 0,
                };
                mine.keys.push((label, k));
                publish(ctx, k);
            }
        }
        // Destroy an own object (the private half of a key pair first; a half left over
        // after a logout is retried by a later destroy).
        80..=97 => {
            if mine.objects.len() < 4 {
                return;
            }
            let label = mine
                .objects
                .keys()
                .nth(rng.gen_range(0..mine.objects.len()))
                .unwrap()
                .clone();
            if let Some(i) = mine.keys.iter().position(|(l, _)| *l == label) {
                let (_, k) = mine.keys.remove(i);
                unpublish(ctx, k.h);
            }
            let handles = mine.objects.remove(&label).unwrap_or_default();
            let mut left = Vec::new();
            for h in handles.into_iter().rev() {
                let rv = ck!(r, C_DestroyObject(s, h));
                if !ctx.check("C_DestroyObject", rv, &allowed(false, ctx.maybe_unauth(&w))) {
                    left.push(h);
                }
            }
            if !left.is_empty() {
                // Not destroyed (logged out meanwhile): still there, retried later.
                mine.objects.insert(label, left);
            }
        }
        // Log out and in again (the other threads of the application see it).
        _ => {
            logout(ctx, s);
            ctx.tick(t);
            login(ctx, s);
        }
    }
}

fn worker(ctx: Arc<Ctx>, t: usize) -> Mine {
    let s = open_session(&ctx);
    login(&ctx, s);
    let mut rng = StdRng::seed_from_u64(std::process::id() as u64 * 1000 + t as u64);
    let mut mine = Mine::default();
    while !ctx.stop.load(Ordering::Relaxed) {
        step(&ctx, s, t, &mut mine, &mut rng);
        ctx.tick(t);
    }
    let rv = ck!(ctx.r(), C_CloseSession(s));
    ctx.check("C_CloseSession", rv, &[]);
    mine
}

/// Counts token objects per label with this prefix, logged in.
fn labels_present(r: &Raw, slot: CK_SLOT_ID, prefix: &str) -> BTreeMap<String, usize> {
    let mut s: S = 0;
    let rv = ck!(
        r,
        C_OpenSession(
            slot,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            null_mut(),
            None,
            &mut s
        )
    );
    assert_eq!(rv, CKR_OK, "C_OpenSession: {}", rv_name(rv));
    let mut pin = USER_PIN.as_bytes().to_vec();
    let rv = ck!(
        r,
        C_Login(s, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG)
    );
    assert!(
        rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN,
        "C_Login: {}",
        rv_name(rv)
    );
    let mut tm = Tmpl::new().bool(CKA_TOKEN, true);
    let mut a = tm.ck();
    assert_eq!(
        ck!(r, C_FindObjectsInit(s, a.as_mut_ptr(), a.len() as CK_ULONG)),
        CKR_OK
    );
    let mut all = Vec::new();
    loop {
        let mut buf = [0 as H; 256];
        let mut n: CK_ULONG = 0;
        assert_eq!(
            ck!(r, C_FindObjects(s, buf.as_mut_ptr(), 256, &mut n)),
            CKR_OK
        );
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n as usize]);
    }
    assert_eq!(ck!(r, C_FindObjectsFinal(s)), CKR_OK);
    let mut out = BTreeMap::new();
    for h in all {
        let label = r
            .get_attr(s, h, CKA_LABEL)
            .unwrap_or_else(|e| panic!("C_GetAttributeValue(CKA_LABEL) of {h}: {}", rv_name(e)));
        let label = String::from_utf8_lossy(&label).into_owned();
        if label.starts_with(&format!("{prefix}-")) {
            *out.entry(label).or_default() += 1;
        }
    }
    assert_eq!(ck!(r, C_CloseSession(s)), CKR_OK);
    out
}

/// One process's part: THREADS workers for the configured time, then the check of its
/// own objects. Returns the label → count map it expects.
fn run_process(prefix: &str, raw: Raw, slot: CK_SLOT_ID, faults: Option<FaultInjector>) {
    let secs = seconds();
    let ctx = Arc::new(Ctx {
        raw: Shared(raw),
        slot,
        prefix: prefix.to_string(),
        auth: Mutex::new(Auth::default()),
        pool: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        ops: AtomicU64::new(0),
        progress: (0..THREADS + 1).map(|_| AtomicU64::new(0)).collect(),
        started: Instant::now(),
        tolerated: Mutex::new(BTreeMap::new()),
        failures: Mutex::new(Vec::new()),
    });
    // Watchdog: a thread with no progress for 30 s means a deadlock; abort the process so
    // the parent sees it (a hung test would otherwise hang CI).
    let done = Arc::new(AtomicBool::new(false));
    {
        let ctx = ctx.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let now = ctx.started.elapsed().as_millis() as u64;
                for (i, p) in ctx.progress.iter().enumerate() {
                    let last = p.load(Ordering::Relaxed);
                    if now.saturating_sub(last) > WATCHDOG.as_millis() as u64 {
                        eprintln!(
                            "{}: WATCHDOG: thread {i} made no progress for {} s: deadlock",
                            ctx.prefix,
                            (now - last) / 1000
                        );
                        std::process::exit(3);
                    }
                }
            }
        });
    }
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let ctx = ctx.clone();
            std::thread::spawn(move || worker(ctx, t))
        })
        .collect();
    let mut faults_injected = 0;
    let deadline = Instant::now() + Duration::from_secs(secs);
    if let Some(f) = faults {
        let mut round = 0usize;
        let azs = ["az-a", "az-b", "az-c"];
        while Instant::now() < deadline {
            let az = azs[round % 3];
            let via_cli = round % 2 == 1;
            f.set(az, false, via_cli);
            ctx.progress[THREADS]
                .store(ctx.started.elapsed().as_millis() as u64, Ordering::Relaxed);
            std::thread::sleep(
                Duration::from_millis(1500).min(deadline - Instant::now().min(deadline)),
            );
            f.set(az, true, via_cli);
            ctx.progress[THREADS]
                .store(ctx.started.elapsed().as_millis() as u64, Ordering::Relaxed);
            faults_injected += 1;
            round += 1;
            std::thread::sleep(
                Duration::from_millis(1000).min(deadline - Instant::now().min(deadline)),
            );
        }
    } else {
        while Instant::now() < deadline {
            ctx.progress[THREADS]
                .store(ctx.started.elapsed().as_millis() as u64, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    ctx.progress[THREADS].store(u64::MAX / 2, Ordering::Relaxed);
    ctx.stop.store(true, Ordering::Relaxed);
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for h in handles {
        let mine = h.join().expect("a worker thread panicked");
        for (l, hs) in mine.objects {
            expected.insert(l, hs.len());
        }
    }
    done.store(true, Ordering::Relaxed);
    let present = labels_present(&ctx.raw.0, slot, prefix);
    let missing: Vec<_> = expected
        .iter()
        .filter(|(l, n)| present.get(*l) != Some(n))
        .collect();
    let extra: Vec<_> = present
        .iter()
        .filter(|(l, _)| !expected.contains_key(*l))
        .collect();
    println!(
        "stress {prefix}: {} operations in {secs} s on {THREADS} threads, {faults_injected} AZ \
         down/up cycles injected, {} token objects expected and present",
        ctx.ops.load(Ordering::Relaxed),
        expected.values().sum::<usize>()
    );
    for ((call, code), n) in ctx.tolerated.lock().unwrap().iter() {
        println!("  tolerated {call} → {code}: {n}×");
    }
    let failures = ctx.failures.lock().unwrap();
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for f in failures.iter() {
        *tally.entry(f.as_str()).or_default() += 1;
    }
    for (f, n) in &tally {
        println!("  UNEXPECTED {f}: {n}×");
    }
    assert!(
        failures.is_empty(),
        "{prefix}: {} unexpected results, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{prefix}: objects lost or wrong count: {missing:?}; unexpected: {extra:?}"
    );
    // For the main process's cross-check.
    let list: String = expected.iter().map(|(l, n)| format!("{l} {n}\n")).collect();
    std::fs::write(scratch_root().join(format!("expected-{prefix}")), list).unwrap();
}

/// The vendor interface (clusterhsm.h), the fields this test uses.
#[repr(C)]
struct VendorList {
    version: CK_VERSION,
    set_instance_health: unsafe extern "C" fn(CK_SLOT_ID, *const i8, CK_ULONG) -> CK_RV,
    set_az_health: unsafe extern "C" fn(CK_SLOT_ID, *const i8, CK_ULONG) -> CK_RV,
}

struct FaultInjector {
    vendor: &'static VendorList,
    slot: CK_SLOT_ID,
}

impl FaultInjector {
    fn new(raw: &Raw, slot: CK_SLOT_ID) -> FaultInjector {
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
        // SAFETY: the module's static vendor table; the module stays loaded for the process.
        let vendor = unsafe { &*((*iface).pFunctionList as *const VendorList) };
        FaultInjector { vendor, slot }
    }

    fn set(&self, az: &str, up: bool, via_cli: bool) {
        if via_cli {
            let cli = module_path().with_file_name("clusterhsm");
            let out = std::process::Command::new(&cli)
                .args(["az", if up { "up" } else { "down" }, az])
                .output()
                .expect("run the clusterhsm CLI");
            assert!(
                out.status.success(),
                "clusterhsm az {} {az}: {}",
                if up { "up" } else { "down" },
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            let name = std::ffi::CString::new(az).unwrap();
            let health = if up { 0 } else { 2 };
            // SAFETY: NUL-terminated name.
            let rv = unsafe { (self.vendor.set_az_health)(self.slot, name.as_ptr(), health) };
            assert_eq!(
                rv,
                CKR_OK,
                "CHSM_SetAzHealth({az}, {health}): {}",
                rv_name(rv)
            );
        }
    }
}

fn peer(prefix: &str) {
    let p = load();
    let slot = token_slot(&p).id();
    run_process(prefix, Raw::load(), slot, None);
    drop(p);
}

#[test]
fn stress_peer_1() {
    helper_process("stress_peer_1", || peer("p1"));
}

#[test]
fn stress_peer_2() {
    helper_process("stress_peer_2", || peer("p2"));
}

#[test]
fn stress_threads_processes_and_az_faults() {
    isolated("stress_threads_processes_and_az_faults", || {
        let p = load();
        let slot = setup_token(&p).id();
        let raw = Raw::load();
        let faults = FaultInjector::new(&raw, slot);
        let peers: Vec<_> = ["stress_peer_1", "stress_peer_2"]
            .into_iter()
            .map(|n| std::thread::spawn(move || spawn_helper(n)))
            .collect();
        run_process("p0", raw, slot, Some(faults));
        for h in peers {
            h.join().expect("a peer process failed");
        }
        // Every process's surviving objects, seen from this process after all are done.
        let raw = Raw::load();
        let mut total = 0;
        for prefix in ["p0", "p1", "p2"] {
            let want: HashMap<String, usize> =
                std::fs::read_to_string(scratch_root().join(format!("expected-{prefix}")))
                    .unwrap()
                    .lines()
                    .map(|l| {
                        let (a, b) = l.rsplit_once(' ').unwrap();
                        (a.to_string(), b.parse().unwrap())
                    })
                    .collect();
            let got = labels_present(&raw, slot, prefix);
            let got: HashMap<String, usize> = got.into_iter().collect();
            assert_eq!(
                got, want,
                "objects of {prefix} as the main process sees them"
            );
            total += want.values().sum::<usize>();
        }
        println!("stress: all 3 processes' {total} surviving token objects present, none lost");
        drop(p);
    });
}

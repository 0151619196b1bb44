//! kill -9 during writes (issue 8): 4 writer processes create and destroy token AES keys
//! (1,000 operations in total) and are killed with SIGKILL at random moments, round after
//! round. Each writer appends to its side file, fsync'd before it goes on:
//!   `c LABEL` before C_CreateObject, `C LABEL` after it returned CKR_OK,
//!   `d LABEL` before C_DestroyObject, `D LABEL` after it returned CKR_OK.
//! Then a fresh process opens the token: C_Initialize and login work; every object whose
//! create returned OK and whose destroy was never attempted is present, has the key value
//! it was created with and encrypts; every destroy that returned OK left nothing; an
//! object whose call was cut short (`c` without `C`, `d` without `D`) may be there or not,
//! but if there it is whole; no object has a label that no writer wrote; every object's
//! attributes are readable; and `clusterhsm audit verify` reports no gaps.

#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Mech, Raw, Tmpl, H, S};
use common::*;
use cryptoki_sys::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

const WRITERS: usize = 4;
const TOTAL_OPS: usize = 1000;

fn root() -> PathBuf {
    PathBuf::from(std::env::var_os("CLUSTERHSM_DIR").expect("CLUSTERHSM_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn side_file(w: usize) -> PathBuf {
    root().join(format!("writer-{w}.log"))
}

/// The AES-128 key value a label's object was created with.
fn key_value(label: &str) -> Vec<u8> {
    Sha256::digest(label.as_bytes())[..16].to_vec()
}

/// (state per label, completed operations) from a writer's side file. A torn last line
/// (killed mid-write) is ignored: its call had not started.
fn read_side(w: usize) -> (BTreeMap<String, char>, usize) {
    let text = std::fs::read_to_string(side_file(w)).unwrap_or_default();
    let mut state = BTreeMap::new();
    let mut done = 0;
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let (tag, label) = line.trim_end().split_once(' ').expect("side file line");
        let tag = tag.chars().next().unwrap();
        if tag == 'C' || tag == 'D' {
            done += 1;
        }
        state.insert(label.to_string(), tag);
    }
    (state, done)
}

fn session(r: &Raw) -> S {
    let mut slots = [0 as CK_SLOT_ID; 4];
    let mut n: CK_ULONG = 4;
    assert_eq!(
        ck!(r, C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n)),
        CKR_OK
    );
    assert_eq!(n, 1, "one token slot");
    let mut s: S = 0;
    let rv = ck!(
        r,
        C_OpenSession(
            slots[0],
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
    assert_eq!(rv, CKR_OK, "C_Login: {}", rv_name(rv));
    s
}

fn find(r: &Raw, s: S, t: &mut Tmpl) -> Vec<H> {
    let mut a = t.ck();
    assert_eq!(
        ck!(r, C_FindObjectsInit(s, a.as_mut_ptr(), a.len() as CK_ULONG)),
        CKR_OK
    );
    let mut all = Vec::new();
    loop {
        let mut buf = [0 as H; 128];
        let mut n: CK_ULONG = 0;
        let rv = ck!(r, C_FindObjects(s, buf.as_mut_ptr(), 128, &mut n));
        assert_eq!(rv, CKR_OK, "C_FindObjects: {}", rv_name(rv));
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n as usize]);
    }
    assert_eq!(ck!(r, C_FindObjectsFinal(s)), CKR_OK);
    all
}

fn append(f: &mut std::fs::File, tag: char, label: &str) {
    writeln!(f, "{tag} {label}").unwrap();
    f.sync_all().unwrap();
}

/// A writer: creates and destroys its own token AES keys until its share of the
/// operations is done (counted from its side file, so a restarted writer continues).
#[test]
fn crash_writer() {
    helper_process("crash_writer", || {
        let w: usize = std::env::var("CRASH_WRITER").unwrap().parse().unwrap();
        let quota = TOTAL_OPS / WRITERS;
        let (state, mut done) = read_side(w);
        let mut live: Vec<String> = state
            .iter()
            .filter(|(_, t)| **t == 'C')
            .map(|(l, _)| l.clone())
            .collect();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(side_file(w))
            .unwrap();
        let r = Raw::load();
        assert_eq!(r.initialize(), CKR_OK);
        let s = session(&r);
        let mut rng = StdRng::from_entropy();
        let mut n = state.len();
        while done < quota {
            if live.len() > 3 && rng.gen_bool(0.4) {
                let label = live.swap_remove(rng.gen_range(0..live.len()));
                let hs = find(&r, s, &mut Tmpl::new().bytes(CKA_LABEL, label.as_bytes()));
                assert_eq!(
                    hs.len(),
                    1,
                    "writer {w}: {label} present once before destroy"
                );
                append(&mut f, 'd', &label);
                let rv = ck!(r, C_DestroyObject(s, hs[0]));
                assert_eq!(rv, CKR_OK, "C_DestroyObject: {}", rv_name(rv));
                append(&mut f, 'D', &label);
            } else {
                n += 1;
                let label = format!("w{w}-{}-{n}", std::process::id());
                append(&mut f, 'c', &label);
                let mut t = Tmpl::new()
                    .ulong(CKA_CLASS, CKO_SECRET_KEY)
                    .ulong(CKA_KEY_TYPE, CKK_AES)
                    .bool(CKA_TOKEN, true)
                    .bool(CKA_PRIVATE, true)
                    .bool(CKA_SENSITIVE, false)
                    .bool(CKA_EXTRACTABLE, true)
                    .bool(CKA_ENCRYPT, true)
                    .bool(CKA_DECRYPT, true)
                    .bytes(CKA_LABEL, label.as_bytes())
                    .bytes(CKA_ID, label.as_bytes())
                    .bytes(CKA_VALUE, &key_value(&label));
                let res = r.create_object(s, &mut t);
                assert!(res.is_ok(), "C_CreateObject: {}", rv_name(res.unwrap_err()));
                append(&mut f, 'C', &label);
                live.push(label);
            }
            done += 1;
        }
    });
}

/// The fresh process that checks what the writers left.
#[test]
fn crash_verifier() {
    helper_process("crash_verifier", || {
        let r = Raw::load();
        assert_eq!(r.initialize(), CKR_OK, "C_Initialize after the kills");
        let s = session(&r);
        let mut states = BTreeMap::new();
        for w in 0..WRITERS {
            states.extend(read_side(w).0);
        }
        let all = find(&r, s, &mut Tmpl::new());
        let mut present: BTreeMap<String, Vec<H>> = BTreeMap::new();
        for &h in &all {
            // Nothing half-written: every attribute of every object reads back.
            for ty in [
                CKA_CLASS,
                CKA_KEY_TYPE,
                CKA_TOKEN,
                CKA_PRIVATE,
                CKA_LABEL,
                CKA_ID,
                CKA_VALUE_LEN,
                CKA_ENCRYPT,
                CKA_DECRYPT,
                CKA_SENSITIVE,
                CKA_EXTRACTABLE,
                CKA_VALUE,
            ] {
                let res = r.get_attr(s, h, ty);
                assert!(
                    res.is_ok(),
                    "object {h}: attribute 0x{ty:x} unreadable: {}",
                    rv_name(res.unwrap_err())
                );
            }
            let label = String::from_utf8(r.get_attr(s, h, CKA_LABEL).unwrap()).unwrap();
            present.entry(label).or_default().push(h);
        }
        let (mut kept, mut gone, mut torn_present, mut torn_absent) = (0, 0, 0, 0);
        for (label, hs) in &present {
            let st = states.get(label).copied();
            assert!(
                st.is_some(),
                "object {label} present but no writer ever created it"
            );
            assert_eq!(hs.len(), 1, "{label} present {} times", hs.len());
            let st = st.unwrap();
            assert_ne!(st, 'D', "{label}: destroyed (CKR_OK) but still present");
            if st == 'c' || st == 'd' {
                torn_present += 1;
            }
            let h = hs[0];
            assert_eq!(
                r.get_attr(s, h, CKA_VALUE).unwrap(),
                key_value(label),
                "{label}: key value"
            );
            assert_eq!(r.get_attr(s, h, CKA_ID).unwrap(), label.as_bytes());
            let data = [0x5au8; 32];
            let iv = [7u8; 16];
            let ct = r
                .encrypt(s, &mut Mech::bytes(CKM_AES_CBC_PAD, &iv), h, &data)
                .unwrap_or_else(|e| panic!("{label}: C_Encrypt: {}", rv_name(e)));
            let pt = r
                .decrypt(s, &mut Mech::bytes(CKM_AES_CBC_PAD, &iv), h, &ct)
                .unwrap_or_else(|e| panic!("{label}: C_Decrypt: {}", rv_name(e)));
            assert_eq!(pt, data, "{label}: decrypt(encrypt(x)) == x");
        }
        for (label, st) in &states {
            match st {
                'C' => {
                    assert!(
                        present.contains_key(label),
                        "{label}: created (CKR_OK), lost"
                    );
                    kept += 1;
                }
                'D' => gone += 1,
                _ => {
                    if !present.contains_key(label) {
                        torn_absent += 1;
                    }
                }
            }
        }
        println!(
            "crash: {} objects present: {kept} created and kept, all present and usable; \
             {gone} destroyed, none present; {torn_present} cut-short calls left their object, \
             {torn_absent} did not",
            all.len()
        );
        let out = Command::new(module_path().with_file_name("clusterhsm"))
            .args(["audit", "verify"])
            .output()
            .expect("clusterhsm audit verify");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        assert!(
            out.status.success(),
            "clusterhsm audit verify failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

#[test]
fn crash_sigkill_during_writes() {
    isolated("crash_sigkill_during_writes", || {
        {
            let p = load();
            setup_token(&p);
        }
        let exe = std::env::current_exe().unwrap();
        let mut rng = StdRng::from_entropy();
        let quota = TOTAL_OPS / WRITERS;
        let (mut rounds, mut killed) = (0, 0);
        let started = Instant::now();
        loop {
            let remaining: Vec<usize> = (0..WRITERS).filter(|&w| read_side(w).1 < quota).collect();
            if remaining.is_empty() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "writers made no headway"
            );
            rounds += 1;
            let mut kids: Vec<_> = remaining
                .iter()
                .map(|&w| {
                    Command::new(&exe)
                        .args(["crash_writer", "--exact", "--nocapture", "--test-threads=1"])
                        .env("PKCS11_TESTS_CHILD", "crash_writer")
                        .env("CRASH_WRITER", w.to_string())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            // The first 8 rounds kill at a random moment; after that the writers finish.
            if rounds <= 8 {
                std::thread::sleep(Duration::from_millis(rng.gen_range(40..300)));
                for k in kids.iter_mut() {
                    if rng.gen_bool(0.9) && k.try_wait().unwrap().is_none() {
                        k.kill().unwrap(); // SIGKILL
                        killed += 1;
                    }
                }
            }
            for k in kids {
                let out = k.wait_with_output().unwrap();
                use std::os::unix::process::ExitStatusExt;
                if out.status.signal() != Some(9) {
                    assert!(
                        out.status.success(),
                        "a writer failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        let ops: usize = (0..WRITERS).map(|w| read_side(w).1).sum();
        println!(
            "crash: {ops} create/destroy operations by {WRITERS} writers in {rounds} rounds, \
             {killed} writer processes killed with SIGKILL"
        );
        assert!(killed > 0, "no writer was killed");
        spawn_helper("crash_verifier");
    });
}

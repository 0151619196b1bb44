//! A full disk and a read-only store (issue 8). As root, the test re-executes itself inside
//! `unshare -m --propagation private` (a private mount namespace), mounts a 2 MiB tmpfs,
//! puts the store there and fills the rest with a file: creating a token object must fail
//! with CKR_DEVICE_MEMORY or CKR_DEVICE_ERROR while the existing keys still sign and
//! encrypt; after the file is removed creation works again. Then the same with the tmpfs
//! remounted read-only, and remounted read-write. Skipped (with a message) when not root.

#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Mech, Raw, Tmpl, H, S};
use common::*;
use cryptoki_sys::*;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::ptr::null_mut;

const NAME: &str = "disk_full_and_read_only_store";
const INSIDE: &str = "PKCS11_TESTS_IN_MOUNT_NS";
const PHASE: &str = "PKCS11_TESTS_DISKFULL_PHASE";
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn is_root() -> bool {
    // No libc dependency: the effective uid from /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(st.success(), "`{cmd}` failed");
}

fn create_data(r: &Raw, s: S, label: &str) -> Result<H, CK_RV> {
    let mut t = Tmpl::new()
        .ulong(CKA_CLASS, CKO_DATA)
        .bool(CKA_TOKEN, true)
        .bytes(CKA_LABEL, label.as_bytes())
        .bytes(CKA_VALUE, &[0xabu8; 2048]);
    r.create_object(s, &mut t)
}

fn use_keys(r: &Raw, s: S, aes: H, ec: (H, H), when: &str) {
    let iv = [1u8; 16];
    let ct = r
        .encrypt(
            s,
            &mut Mech::bytes(CKM_AES_CBC_PAD, &iv),
            aes,
            b"still usable",
        )
        .unwrap_or_else(|e| panic!("{when}: C_Encrypt: {}", rv_name(e)));
    let pt = r
        .decrypt(s, &mut Mech::bytes(CKM_AES_CBC_PAD, &iv), aes, &ct)
        .unwrap_or_else(|e| panic!("{when}: C_Decrypt: {}", rv_name(e)));
    assert_eq!(pt, b"still usable");
    let sig = r
        .sign(s, &mut Mech::new(CKM_ECDSA_SHA256), ec.1, b"msg")
        .unwrap_or_else(|e| panic!("{when}: C_Sign: {}", rv_name(e)));
    r.verify(s, &mut Mech::new(CKM_ECDSA_SHA256), ec.0, b"msg", &sig)
        .unwrap_or_else(|e| panic!("{when}: C_Verify: {}", rv_name(e)));
}

fn expect_write_refused(r: &Raw, s: S, label: &str, when: &str) {
    match create_data(r, s, label) {
        Ok(_) => panic!("{when}: C_CreateObject of a token object succeeded"),
        Err(e) if e == CKR_DEVICE_MEMORY || e == CKR_DEVICE_ERROR => {
            println!("{when}: C_CreateObject(token) → {}", rv_name(e))
        }
        Err(e) => panic!(
            "{when}: C_CreateObject(token) → {}, CKR_DEVICE_MEMORY or CKR_DEVICE_ERROR expected",
            rv_name(e)
        ),
    }
    let mut t = Tmpl::new()
        .bool(CKA_TOKEN, true)
        .ulong(CKA_VALUE_LEN, 32)
        .bytes(CKA_LABEL, b"refused-gen");
    match r.generate_key(s, &mut Mech::new(CKM_AES_KEY_GEN), &mut t) {
        Ok(_) => panic!("{when}: C_GenerateKey of a token key succeeded"),
        Err(e) if e == CKR_DEVICE_MEMORY || e == CKR_DEVICE_ERROR => {
            println!("{when}: C_GenerateKey(token) → {}", rv_name(e))
        }
        Err(e) => panic!(
            "{when}: C_GenerateKey(token) → {}, CKR_DEVICE_MEMORY or CKR_DEVICE_ERROR expected",
            rv_name(e)
        ),
    }
}

fn find_one(r: &Raw, s: S, class: CK_ULONG, label: &[u8]) -> H {
    let mut t = Tmpl::new().ulong(CKA_CLASS, class).bytes(CKA_LABEL, label);
    let mut a = t.ck();
    assert_eq!(
        ck!(r, C_FindObjectsInit(s, a.as_mut_ptr(), a.len() as CK_ULONG)),
        CKR_OK
    );
    let mut buf = [0 as H; 4];
    let mut n: CK_ULONG = 0;
    assert_eq!(
        ck!(r, C_FindObjects(s, buf.as_mut_ptr(), 4, &mut n)),
        CKR_OK
    );
    assert_eq!(ck!(r, C_FindObjectsFinal(s)), CKR_OK);
    assert_eq!(
        n,
        1,
        "one object labelled {:?}",
        String::from_utf8_lossy(label)
    );
    buf[0]
}

/// C_Initialize, a logged-in R/W session, and the keys found again by label.
fn reopen(r: &Raw) -> (S, H, (H, H)) {
    let rv = r.initialize();
    assert_eq!(rv, CKR_OK, "C_Initialize: {}", rv_name(rv));
    let mut slots = [0 as CK_SLOT_ID; 2];
    let mut n: CK_ULONG = 2;
    assert_eq!(
        ck!(r, C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n)),
        CKR_OK
    );
    assert_eq!(n, 1);
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
    let aes = find_one(r, s, CKO_SECRET_KEY, b"aes");
    let ec = (
        find_one(r, s, CKO_PUBLIC_KEY, b"ec"),
        find_one(r, s, CKO_PRIVATE_KEY, b"ec"),
    );
    (s, aes, ec)
}

/// Phase 1 (a process in the namespace): the token, its keys, the full disk.
fn phase_full(mnt: &Path) {
    let p = load();
    let slot = setup_token(&p).id();
    let r = Raw::load();
    let mut s: S = 0;
    assert_eq!(
        ck!(
            r,
            C_OpenSession(
                slot,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                null_mut(),
                None,
                &mut s
            )
        ),
        CKR_OK
    );
    let mut pin = USER_PIN.as_bytes().to_vec();
    assert_eq!(
        ck!(
            r,
            C_Login(s, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG)
        ),
        CKR_OK
    );
    let aes = r
        .generate_key(
            s,
            &mut Mech::new(CKM_AES_KEY_GEN),
            &mut Tmpl::new()
                .bool(CKA_TOKEN, true)
                .ulong(CKA_VALUE_LEN, 32)
                .bytes(CKA_LABEL, b"aes"),
        )
        .expect("AES token key");
    let ec = r
        .generate_key_pair(
            s,
            &mut Mech::new(CKM_EC_KEY_PAIR_GEN),
            &mut Tmpl::new()
                .bool(CKA_TOKEN, true)
                .bytes(CKA_EC_PARAMS, &P256_OID)
                .bytes(CKA_LABEL, b"ec"),
            &mut Tmpl::new()
                .bool(CKA_TOKEN, true)
                .bool(CKA_SIGN, true)
                .bytes(CKA_LABEL, b"ec"),
        )
        .expect("EC token key pair");
    create_data(&r, s, "before").expect("create with space left");
    use_keys(&r, s, aes, ec, "before");

    // Disk full: fill the tmpfs.
    let filler = mnt.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    sh(&format!("df -k {} | tail -1", mnt.display()));
    expect_write_refused(&r, s, "full", "disk full");
    use_keys(&r, s, aes, ec, "disk full");
    std::fs::remove_file(&filler).unwrap();
    create_data(&r, s, "after-full").expect("create after freeing space");
    use_keys(&r, s, aes, ec, "space freed");
    println!("space freed: C_CreateObject(token) → CKR_OK");
    drop(p);
}

/// Phase 2: a process started on the read-only store.
fn phase_ro() {
    let r = Raw::load();
    let (s, aes, ec) = reopen(&r);
    expect_write_refused(&r, s, "ro", "read-only store");
    use_keys(&r, s, aes, ec, "read-only store");
    assert_eq!(ck!(r, C_Finalize(null_mut())), CKR_OK);
}

/// Phase 3: read-write again.
fn phase_rw() {
    let r = Raw::load();
    let (s, aes, ec) = reopen(&r);
    create_data(&r, s, "after-ro").expect("create after remounting read-write");
    use_keys(&r, s, aes, ec, "read-write again");
    println!("read-write again: C_CreateObject(token) → CKR_OK");
    // Only what returned CKR_OK is there.
    let mut t = Tmpl::new().ulong(CKA_CLASS, CKO_DATA);
    let mut a = t.ck();
    assert_eq!(
        ck!(r, C_FindObjectsInit(s, a.as_mut_ptr(), a.len() as CK_ULONG)),
        CKR_OK
    );
    let mut buf = [0 as H; 16];
    let mut n: CK_ULONG = 0;
    assert_eq!(
        ck!(r, C_FindObjects(s, buf.as_mut_ptr(), 16, &mut n)),
        CKR_OK
    );
    assert_eq!(ck!(r, C_FindObjectsFinal(s)), CKR_OK);
    let mut labels: Vec<String> = buf[..n as usize]
        .iter()
        .map(|&h| String::from_utf8(r.get_attr(s, h, CKA_LABEL).unwrap()).unwrap())
        .collect();
    labels.sort();
    assert_eq!(labels, ["after-full", "after-ro", "before"]);
    assert_eq!(ck!(r, C_Finalize(null_mut())), CKR_OK);
}

fn run_phase(mnt: &Path, phase: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, mnt)
        .env(PHASE, phase)
        .env("CLUSTERHSM_DIR", mnt.join("store"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "phase {phase} failed"
    );
}

/// Inside the mount namespace: each phase in its own process, because Linux refuses
/// `remount,ro` while a process has files of the mount open for writing, and the module
/// keeps `changes.shm` mapped even after C_Finalize (reliability-bugs.md).
fn inside(mnt: &Path) {
    match std::env::var(PHASE).as_deref() {
        Ok("full") => return phase_full(mnt),
        Ok("ro") => return phase_ro(),
        Ok("rw") => return phase_rw(),
        _ => {}
    }
    sh(&format!(
        "mount -t tmpfs -o size=2m clusterhsm-test {}",
        mnt.display()
    ));
    std::fs::create_dir_all(mnt.join("store")).unwrap();
    run_phase(mnt, "full");
    sh(&format!("mount -o remount,ro {}", mnt.display()));
    run_phase(mnt, "ro");
    sh(&format!("mount -o remount,rw {}", mnt.display()));
    run_phase(mnt, "rw");
}

#[test]
fn disk_full_and_read_only_store() {
    if std::env::var_os(INSIDE).is_some() {
        let mnt = std::path::PathBuf::from(std::env::var_os(INSIDE).unwrap());
        inside(&mnt);
        return;
    }
    if !is_root() {
        println!("SKIPPED {NAME}: needs root (mount in a private mount namespace)");
        return;
    }
    let scratch = Scratch::new();
    let mnt = scratch.root.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(&exe)
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, &mnt)
        .env("CLUSTERHSM_CONF", scratch.conf_path())
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the test inside the mount namespace failed"
    );
    assert!(
        stdout.contains("1 passed"),
        "the test did not run inside the namespace"
    );
}

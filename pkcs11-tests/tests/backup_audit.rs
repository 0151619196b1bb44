//! A backup restores into a new cluster with every key usable under the same passwords; the
//! audit log stays gap-free under 10,000 audited operations from 4 threads in 2 processes.

#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Mech, Raw, Tmpl, H, S};
use common::*;
use cryptoki_sys::*;
use std::process::Command;

fn cli_ok(args: &[&str]) -> String {
    let exe = module_path()
        .parent()
        .expect("module directory")
        .join("clusterhsm");
    let out = Command::new(&exe)
        .args(args)
        .output()
        .expect("run the clusterhsm CLI");
    assert!(
        out.status.success(),
        "clusterhsm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keys(raw: &Raw, s: S) -> (H, (H, H), (H, H)) {
    let mut aes = Tmpl::new()
        .bool(CKA_TOKEN, true)
        .ulong(CKA_VALUE_LEN, 32)
        .bytes(CKA_LABEL, b"b-aes");
    let aes = raw
        .generate_key(s, &mut Mech::new(CKM_AES_KEY_GEN), &mut aes)
        .expect("AES");
    let mut rp = Tmpl::new()
        .bool(CKA_TOKEN, true)
        .ulong(CKA_MODULUS_BITS, 2048)
        .bytes(CKA_LABEL, b"b-rsa");
    let mut rk = Tmpl::new().bool(CKA_TOKEN, true).bytes(CKA_LABEL, b"b-rsa");
    let rsa = raw
        .generate_key_pair(
            s,
            &mut Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &mut rp,
            &mut rk,
        )
        .expect("RSA");
    let p256 = hex::decode("06082a8648ce3d030107").expect("oid");
    let mut ep = Tmpl::new()
        .bool(CKA_TOKEN, true)
        .bytes(CKA_EC_PARAMS, &p256)
        .bytes(CKA_LABEL, b"b-ec");
    let mut ek = Tmpl::new().bool(CKA_TOKEN, true).bytes(CKA_LABEL, b"b-ec");
    let ec = raw
        .generate_key_pair(s, &mut Mech::new(CKM_EC_KEY_PAIR_GEN), &mut ep, &mut ek)
        .expect("EC");
    (aes, rsa, ec)
}

fn find(raw: &Raw, s: S, class: CK_OBJECT_CLASS, label: &[u8]) -> H {
    let found = raw
        .find(
            s,
            &mut Tmpl::new().ulong(CKA_CLASS, class).bytes(CKA_LABEL, label),
        )
        .expect("C_FindObjects");
    assert_eq!(found.len(), 1, "one {label:?} of class {class}");
    found[0]
}

#[test]
fn backup_restores_into_a_new_cluster_with_every_key_usable() {
    isolated(
        "backup_restores_into_a_new_cluster_with_every_key_usable",
        || {
            let root = std::path::PathBuf::from(std::env::var("CLUSTERHSM_DIR").expect("dir"));
            let file = root.parent().expect("root").join("cluster.bak");
            let ciphertext;
            {
                let p = load();
                let slot = setup_token(&p);
                let session = user_session(&p, slot);
                let raw = Raw::load();
                let s = session.handle();
                let (aes, _, _) = keys(&raw, s);
                ciphertext = raw
                    .encrypt(s, &mut Mech::new(CKM_AES_ECB), aes, &[9u8; 32])
                    .expect("encrypt");
                drop(session);
                p.finalize().expect("C_Finalize");
            }
            cli_ok(&[
                "backup",
                "create",
                file.to_str().expect("path"),
                "--password",
                "backup-pass-1",
            ]);
            // A tampered copy is refused and adds no cluster.
            let mut bad = std::fs::read(&file).expect("read");
            let last = bad.len() - 1;
            bad[last] ^= 1;
            let bad_file = file.with_extension("bad");
            std::fs::write(&bad_file, &bad).expect("write");
            let exe = module_path().parent().expect("dir").join("clusterhsm");
            let out = Command::new(&exe)
                .args([
                    "backup",
                    "restore",
                    bad_file.to_str().expect("p"),
                    "--password",
                    "backup-pass-1",
                ])
                .output()
                .expect("cli");
            assert!(!out.status.success(), "a tampered backup must be refused");
            let out = Command::new(&exe)
                .args([
                    "backup",
                    "restore",
                    file.to_str().expect("p"),
                    "--password",
                    "wrong-password",
                ])
                .output()
                .expect("cli");
            assert!(
                !out.status.success(),
                "a wrong backup password must be refused"
            );
            let said = cli_ok(&[
                "backup",
                "restore",
                file.to_str().expect("path"),
                "--password",
                "backup-pass-1",
            ]);
            assert!(said.contains("slot 2"), "{said}");

            let raw = Raw::load();
            assert_eq!(raw.initialize(), CKR_OK);
            let mut slots = [0 as CK_SLOT_ID; 4];
            let mut n: CK_ULONG = 4;
            assert_eq!(
                ck!(raw, C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n)),
                CKR_OK
            );
            assert_eq!(
                &slots[..n as usize],
                &[1, 2],
                "the original and the restored cluster"
            );
            let mut s: S = 0;
            assert_eq!(
                ck!(
                    raw,
                    C_OpenSession(
                        2,
                        CKF_SERIAL_SESSION | CKF_RW_SESSION,
                        std::ptr::null_mut(),
                        None,
                        &mut s
                    )
                ),
                CKR_OK
            );
            let mut pin = USER_PIN.as_bytes().to_vec();
            let rv = ck!(
                raw,
                C_Login(s, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG)
            );
            assert_eq!(
                rv,
                CKR_OK,
                "the same user and password log in to the restored cluster: {}",
                rv_name(rv)
            );
            let aes = find(&raw, s, CKO_SECRET_KEY, b"b-aes");
            assert_eq!(
                raw.decrypt(s, &mut Mech::new(CKM_AES_ECB), aes, &ciphertext)
                    .expect("decrypt"),
                [9u8; 32],
                "the restored AES key is the same key"
            );
            for (label, mech) in [
                (&b"b-rsa"[..], CKM_SHA256_RSA_PKCS),
                (&b"b-ec"[..], CKM_ECDSA_SHA256),
            ] {
                let private = find(&raw, s, CKO_PRIVATE_KEY, label);
                let public = find(&raw, s, CKO_PUBLIC_KEY, label);
                let sig = raw
                    .sign(s, &mut Mech::new(mech), private, b"restored")
                    .expect("sign");
                raw.verify(s, &mut Mech::new(mech), public, b"restored", &sig)
                    .expect("verify");
            }
        },
    );
}

fn sign_loop(ops: usize) {
    let p = load();
    let slot = token_slot(&p);
    let raw = Raw::load();
    let session = p.open_rw_session(slot).expect("session");
    match session.login(cryptoki::session::UserType::User, Some(&pin(USER_PIN))) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("login: {e:?}"),
    }
    let s = session.handle();
    let key = find(&raw, s, CKO_SECRET_KEY, b"audited");
    let slot_id = slot.id();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(move || {
                // Each thread has its own function-pointer handle on the same module instance.
                let raw = Raw::load();
                let mut s: S = 0;
                let flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
                let rv = ck!(
                    raw,
                    C_OpenSession(slot_id, flags, std::ptr::null_mut(), None, &mut s)
                );
                assert_eq!(rv, CKR_OK);
                for _ in 0..ops / 2 {
                    raw.sign(s, &mut Mech::new(CKM_SHA256_HMAC), key, b"audited data")
                        .expect("sign");
                }
            });
        }
    });
    drop(session);
}

#[test]
fn audit_has_no_gaps_after_10000_operations() {
    isolated("audit_has_no_gaps_after_10000_operations", || {
        let conf = std::env::var("CLUSTERHSM_CONF").expect("conf");
        std::fs::write(&conf, "kdf_iterations = 1000\naudit_crypto = true\n").expect("config");
        {
            let p = load();
            let slot = setup_token(&p);
            let session = user_session(&p, slot);
            let raw = Raw::load();
            let mut t = Tmpl::new()
                .ulong(CKA_CLASS, CKO_SECRET_KEY)
                .ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
                .bool(CKA_TOKEN, true)
                .bool(CKA_SIGN, true)
                .bytes(CKA_LABEL, b"audited")
                .bytes(CKA_VALUE, &[5u8; 32]);
            raw.create_object(session.handle(), &mut t).expect("key");
            drop(session);
            p.finalize().expect("C_Finalize");
        }
        let child = std::thread::spawn(|| spawn_helper("audit_second_process"));
        sign_loop(5_000);
        child.join().expect("second process");
        let verify = cli_ok(&["audit", "verify"]);
        println!("{verify}");
        assert!(!verify.contains("GAPS"), "{verify}");
        let total: i64 = verify
            .lines()
            .filter_map(|l| {
                l.split(':')
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<i64>()
                    .ok()
            })
            .sum();
        assert!(
            total >= 10_000,
            "at least 10,000 audited operations, found {total}"
        );
    });
}

#[test]
fn audit_second_process() {
    helper_process("audit_second_process", || sign_loop(5_000));
}

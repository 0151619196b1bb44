//! Key ownership and sharing (CloudHSM): the owner shares a key with another Crypto User,
//! who may then use it but not destroy, wrap, export, modify or re-share it; unsharing
//! takes it away again.

#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Mech, Raw, Tmpl, S};
use common::*;
use cryptoki_sys::*;
use std::process::Command;

fn cli(args: &[&str]) -> (bool, String) {
    let exe = module_path()
        .parent()
        .expect("module directory")
        .join("clusterhsm");
    let out = Command::new(&exe)
        .args(args)
        .output()
        .expect("run the clusterhsm CLI");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn cli_ok(args: &[&str]) -> String {
    let (ok, out) = cli(args);
    assert!(ok, "clusterhsm {args:?}: {out}");
    out
}

fn session_as(raw: &Raw, pin: &str) -> S {
    let mut s: S = 0;
    assert_eq!(
        ck!(
            raw,
            C_OpenSession(
                1,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                std::ptr::null_mut(),
                None,
                &mut s
            )
        ),
        CKR_OK
    );
    let mut p = pin.as_bytes().to_vec();
    let rv = ck!(
        raw,
        C_Login(s, CKU_USER, p.as_mut_ptr(), p.len() as CK_ULONG)
    );
    assert_eq!(rv, CKR_OK, "login {pin}: {}", rv_name(rv));
    s
}

fn find_label(raw: &Raw, s: S, label: &[u8]) -> Vec<CK_OBJECT_HANDLE> {
    raw.find(s, &mut Tmpl::new().bytes(CKA_LABEL, label))
        .expect("C_FindObjects")
}

#[test]
fn shared_users_use_but_do_not_own() {
    isolated("shared_users_use_but_do_not_own", || {
        {
            let p = load();
            setup_token(&p);
            p.finalize().expect("C_Finalize");
        }
        let co = format!("admin:{SO_PIN}");
        cli_ok(&[
            "user",
            "create",
            "alice",
            "--role",
            "cu",
            "--password",
            "alicepass1",
            "--user",
            &co,
        ]);
        cli_ok(&[
            "user",
            "create",
            "bob",
            "--role",
            "cu",
            "--password",
            "bobpass12",
            "--user",
            &co,
        ]);
        let made = cli_ok(&[
            "key",
            "generate",
            "--type",
            "aes-256",
            "--label",
            "shared-aes",
            "--user",
            "alice:alicepass1",
        ]);
        let uid = made.split_whitespace().last().expect("uid").to_string();
        let wrapper = cli_ok(&[
            "key",
            "generate",
            "--type",
            "aes-256",
            "--label",
            "bob-kek",
            "--user",
            "bob:bobpass12",
        ]);
        assert!(wrapper.contains("generated"));

        let raw = Raw::load();
        assert_eq!(raw.initialize(), CKR_OK);
        let bob = session_as(&raw, "bob:bobpass12");
        assert!(
            find_label(&raw, bob, b"shared-aes").is_empty(),
            "bob cannot see alice's unshared key"
        );
        assert_eq!(ck!(raw, C_CloseAllSessions(1)), CKR_OK);
        drop(raw);

        cli_ok(&[
            "key",
            "share",
            &uid,
            "--with",
            "bob",
            "--user",
            "alice:alicepass1",
        ]);
        let (ok, out) = cli(&[
            "key",
            "share",
            &uid,
            "--with",
            "bob",
            "--user",
            "bob:bobpass12",
        ]);
        assert!(!ok, "a shared user cannot re-share: {out}");

        let raw = Raw::load();
        let bob = session_as(&raw, "bob:bobpass12");
        let found = find_label(&raw, bob, b"shared-aes");
        assert_eq!(found.len(), 1, "bob sees the shared key");
        let key = found[0];
        raw.encrypt(bob, &mut Mech::new(CKM_AES_ECB), key, &[0u8; 16])
            .expect("a shared user uses the key");
        assert_eq!(
            ck!(raw, C_DestroyObject(bob, key)),
            CKR_ACTION_PROHIBITED,
            "a shared user cannot destroy it"
        );
        let mut label = Tmpl::new().bytes(CKA_LABEL, b"mine now");
        assert_eq!(
            raw.set_attrs(bob, key, &mut label).map_err(rv_name),
            Err(rv_name(CKR_ACTION_PROHIBITED)),
            "nor modify it"
        );
        let kek = find_label(&raw, bob, b"bob-kek")[0];
        let r = raw.wrap(bob, &mut Mech::new(CKM_AES_KEY_WRAP_PAD), kek, key);
        assert!(
            r.is_err(),
            "a shared user cannot wrap (export) it: {:?}",
            r.map(hex::encode)
        );
        assert!(
            raw.get_attr(bob, key, CKA_VALUE).is_err(),
            "nor read its value"
        );
        assert_eq!(ck!(raw, C_CloseAllSessions(1)), CKR_OK);
        drop(raw);

        cli_ok(&[
            "key",
            "unshare",
            &uid,
            "--with",
            "bob",
            "--user",
            "alice:alicepass1",
        ]);
        let raw = Raw::load();
        let bob = session_as(&raw, "bob:bobpass12");
        assert!(
            find_label(&raw, bob, b"shared-aes").is_empty(),
            "unshared again"
        );
    });
}

//! Keys at rest: no secret attribute or PIN reaches any file the module writes (the SQLite
//! file, its WAL and shared-memory files, the change counter, logs, backups) in plaintext,
//! sealed records are bound to their object and token, and damaged stores fail cleanly.

#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Mech, Raw, Tmpl};
use common::*;
use cryptoki_sys::*;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use std::path::{Path, PathBuf};

const AES_KEY: [u8; 32] = *b"AT-REST-KNOWN-AES-KEY-0123456789";
/// A distinctive user PIN so a search cannot match by accident.
const DISTINCT_PIN: &str = "Zq7-distinct-pin-Xw4";

fn store() -> PathBuf {
    PathBuf::from(std::env::var("CLUSTERHSM_DIR").expect("CLUSTERHSM_DIR"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Needles: each secret in both byte orders (libraries keep big numbers little-endian).
fn needles(secrets: &[(&str, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for (name, bytes) in secrets {
        let window = bytes[..bytes.len().min(24)].to_vec();
        let mut rev = bytes.clone();
        rev.reverse();
        v.push((format!("{name} (big-endian)"), window));
        v.push((
            format!("{name} (little-endian)"),
            rev[..rev.len().min(24)].to_vec(),
        ));
    }
    v
}

fn find_any(hay: &[u8], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, n)| memchr::memmem::find(hay, n).is_some())
        .map(|(name, _)| name.clone())
        .collect()
}

#[test]
fn no_secret_reaches_a_file() {
    isolated("no_secret_reaches_a_file", || {
        let root = store().parent().expect("scratch root").to_path_buf();
        let log = root.join("module.log");
        std::env::set_var("CLUSTERHSM_LOG", format!("debug:{}", log.display()));
        let p = load();
        let slot = setup_token(&p);
        let raw = Raw::load();
        // Re-set the user PIN to the distinctive one through PKCS#11.
        let session = user_session(&p, slot);
        session
            .set_pin(&pin(USER_PIN), &pin(DISTINCT_PIN))
            .expect("C_SetPIN");
        let s = session.handle();
        let mut rng = rand::thread_rng();
        let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa keygen");
        let be = |n: &rsa::BigUint| n.to_bytes_be();
        let primes = rsa_key.primes();
        let (d, pp, qq) = (be(rsa_key.d()), be(&primes[0]), be(&primes[1]));
        let (dp, dq) = (be(rsa_key.dp().expect("dp")), be(rsa_key.dq().expect("dq")));
        let qinv = rsa_key.crt_coefficient().expect("qinv").to_bytes_be();
        let mut rsa_t = Tmpl::new()
            .ulong(CKA_CLASS, CKO_PRIVATE_KEY)
            .ulong(CKA_KEY_TYPE, CKK_RSA)
            .bool(CKA_TOKEN, true)
            .bool(CKA_SIGN, true)
            .bytes(CKA_LABEL, b"at-rest-rsa")
            .bytes(CKA_MODULUS, &be(rsa_key.n()))
            .bytes(CKA_PUBLIC_EXPONENT, &be(rsa_key.e()))
            .bytes(CKA_PRIVATE_EXPONENT, &d)
            .bytes(CKA_PRIME_1, &pp)
            .bytes(CKA_PRIME_2, &qq)
            .bytes(CKA_EXPONENT_1, &dp)
            .bytes(CKA_EXPONENT_2, &dq)
            .bytes(CKA_COEFFICIENT, &qinv);
        let rsa_h = raw.create_object(s, &mut rsa_t).expect("import RSA");
        let mut aes_t = Tmpl::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, CKK_AES)
            .bool(CKA_TOKEN, true)
            .bytes(CKA_LABEL, b"at-rest-aes")
            .bytes(CKA_VALUE, &AES_KEY);
        let aes_h = raw.create_object(s, &mut aes_t).expect("import AES");
        raw.sign(s, &mut Mech::new(CKM_SHA256_RSA_PKCS), rsa_h, b"data")
            .expect("sign");
        raw.encrypt(s, &mut Mech::new(CKM_AES_ECB), aes_h, &[0u8; 32])
            .expect("encrypt");
        // A wrong PIN attempt is logged too (the log must not contain it either).
        let other = p.open_rw_session(slot).expect("session");
        drop(other);
        drop(session);
        drop(p);
        // A backup of the token.
        let cli = module_path()
            .parent()
            .expect("target dir")
            .join("clusterhsm");
        let backup = root.join("token.bak");
        let out = std::process::Command::new(&cli)
            .args([
                "backup",
                "create",
                backup.to_str().expect("path"),
                "--password",
                "backup-password-1",
            ])
            .output()
            .expect("run the CLI");
        assert!(
            out.status.success(),
            "backup: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let mut files = Vec::new();
        files_under(&root, &mut files);
        assert!(
            files.iter().any(|f| f.ends_with("clusterhsm.db")),
            "the store file exists: {files:?}"
        );
        assert!(log.exists(), "the module wrote its log");
        let secrets = [
            ("AES key", AES_KEY.to_vec()),
            ("RSA d", d.clone()),
            ("RSA p", pp.clone()),
            ("RSA q", qq.clone()),
            ("RSA dP", dp.clone()),
            ("RSA dQ", dq.clone()),
            ("RSA qInv", qinv.clone()),
            ("user PIN", DISTINCT_PIN.as_bytes().to_vec()),
            ("SO PIN", SO_PIN.as_bytes().to_vec()),
        ];
        let needles = needles(&secrets);
        let mut leaks = Vec::new();
        for f in &files {
            let bytes = std::fs::read(f).unwrap_or_default();
            for hit in find_any(&bytes, &needles) {
                leaks.push(format!("{} in {}", hit, f.display()));
            }
        }
        // The SO PIN "12345678" is short and could appear by chance in binary data; check
        // it only in the text files (the log).
        leaks.retain(|l| !l.starts_with("SO PIN") || l.ends_with("module.log"));
        assert!(leaks.is_empty(), "plaintext secrets found: {leaks:#?}");
        // The check can fail: the same search finds the AES key in a file that holds it.
        let probe = root.join("probe.bin");
        std::fs::write(&probe, [b"xx".as_slice(), &AES_KEY].concat()).expect("write probe");
        assert!(!find_any(&std::fs::read(&probe).expect("read"), &needles).is_empty());
    });
}

/// Corrupts the store in `how`, then checks the token still opens, every other object
/// still works, and the damaged one is refused (not silently accepted as another key).
fn damaged_store(name: &str, how: fn(&rusqlite::Connection, &[String])) {
    isolated(name, || {
        let log = store().parent().expect("root").join("module.log");
        std::env::set_var("CLUSTERHSM_LOG", format!("info:{}", log.display()));
        let uids: Vec<String>;
        {
            let p = load();
            let slot = setup_token(&p);
            let session = user_session(&p, slot);
            let raw = Raw::load();
            let s = session.handle();
            let mut ids = Vec::new();
            for (i, v) in [[1u8; 32], [2u8; 32], [3u8; 32]].iter().enumerate() {
                let mut t = Tmpl::new()
                    .ulong(CKA_CLASS, CKO_SECRET_KEY)
                    .ulong(CKA_KEY_TYPE, CKK_AES)
                    .bool(CKA_TOKEN, true)
                    .bytes(CKA_LABEL, format!("k{i}").as_bytes())
                    .bytes(CKA_VALUE, v);
                let h = raw.create_object(s, &mut t).expect("create");
                ids.push(
                    String::from_utf8(raw.get_attr(s, h, CKA_UNIQUE_ID).expect("uid"))
                        .expect("utf8"),
                );
            }
            uids = ids;
            drop(session);
            p.finalize().expect("C_Finalize");
        }
        let conn = rusqlite::Connection::open(store().join("clusterhsm.db")).expect("open db");
        how(&conn, &uids);
        drop(conn);
        let p = load();
        let slot = token_slot(&p);
        let session = user_session(&p, slot);
        let raw = Raw::load();
        let s = session.handle();
        // k2 was not touched and still encrypts as AES-256 with [3; 32].
        let find = |label: &str| -> Vec<CK_OBJECT_HANDLE> {
            use cryptoki::object::Attribute;
            session
                .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
                .expect("find")
                .into_iter()
                .map(|o| o.handle())
                .collect()
        };
        let k2 = find("k2");
        assert_eq!(k2.len(), 1, "the untouched key is still there");
        raw.encrypt(s, &mut Mech::new(CKM_AES_ECB), k2[0], &[0u8; 16])
            .expect("the untouched key works");
        // k0 and k1 were damaged: either absent or refused — never usable as the other key.
        for label in ["k0", "k1"] {
            for h in find(label) {
                let r = raw.encrypt(s, &mut Mech::new(CKM_AES_ECB), h, &[0u8; 16]);
                assert!(
                    r.is_err(),
                    "{label}: a damaged key must not be usable, got {:?}",
                    r.map(hex::encode)
                );
                println!("{label}: refused with {}", rv_name(r.err().unwrap_or(0)));
            }
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            text.contains("integrity check"),
            "a clear log line names the failure:\n{text}"
        );
    });
}

#[test]
fn swapped_sealed_records_are_detected() {
    damaged_store("swapped_sealed_records_are_detected", |c, uids| {
        let a: Vec<u8> = c
            .query_row(
                "SELECT sealed FROM objects WHERE uid = ?",
                [&uids[0]],
                |r| r.get(0),
            )
            .expect("a");
        let b: Vec<u8> = c
            .query_row(
                "SELECT sealed FROM objects WHERE uid = ?",
                [&uids[1]],
                |r| r.get(0),
            )
            .expect("b");
        c.execute(
            "UPDATE objects SET sealed = ? WHERE uid = ?",
            rusqlite::params![b, uids[0]],
        )
        .expect("swap");
        c.execute(
            "UPDATE objects SET sealed = ? WHERE uid = ?",
            rusqlite::params![a, uids[1]],
        )
        .expect("swap");
    });
}

#[test]
fn flipped_byte_in_a_sealed_record_is_detected() {
    damaged_store("flipped_byte_in_a_sealed_record_is_detected", |c, uids| {
        for uid in &uids[..2] {
            let mut a: Vec<u8> = c
                .query_row("SELECT sealed FROM objects WHERE uid = ?", [uid], |r| {
                    r.get(0)
                })
                .expect("a");
            let mid = a.len() / 2;
            a[mid] ^= 0x01;
            c.execute(
                "UPDATE objects SET sealed = ? WHERE uid = ?",
                rusqlite::params![a, uid],
            )
            .expect("flip");
        }
    });
}

#[test]
fn truncated_database_fails_cleanly() {
    isolated("truncated_database_fails_cleanly", || {
        {
            let p = load();
            setup_token(&p);
            p.finalize().expect("C_Finalize");
        }
        let db = store().join("clusterhsm.db");
        let bytes = std::fs::read(&db).expect("read db");
        for f in ["clusterhsm.db-wal", "clusterhsm.db-shm"] {
            let _ = std::fs::remove_file(store().join(f));
        }
        std::fs::write(&db, &bytes[..bytes.len().min(1500)]).expect("truncate");
        let pk = cryptoki::context::Pkcs11::new(module_path()).expect("load");
        let r = pk.initialize(cryptoki::context::CInitializeArgs::new(
            cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
        ));
        match r {
            Err(cryptoki::error::Error::Pkcs11(rv, _)) => {
                println!("C_Initialize on a truncated store: {rv:?}");
                assert!(
                    matches!(
                        rv,
                        cryptoki::error::RvError::FunctionFailed
                            | cryptoki::error::RvError::DeviceError
                    ),
                    "{rv:?}"
                );
            }
            Ok(()) => {
                // SQLite may open a truncated file; then every lookup must fail cleanly.
                let slots = pk.get_all_slots();
                println!("truncated store opened; slots: {slots:?}");
            }
            Err(e) => panic!("unexpected: {e:?}"),
        }
    });
}

#[test]
fn wrong_pin_is_pin_incorrect() {
    isolated("wrong_pin_is_pin_incorrect", || {
        let p = load();
        let slot = setup_token(&p);
        let s = p.open_rw_session(slot).expect("session");
        expect_rv(
            s.login(cryptoki::session::UserType::User, Some(&pin("9999"))),
            cryptoki::error::RvError::PinIncorrect,
        );
        s.login(cryptoki::session::UserType::User, Some(&pin(USER_PIN)))
            .expect("right PIN still works");
    });
}

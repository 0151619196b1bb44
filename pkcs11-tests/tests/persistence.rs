//! Token objects outlive the process that made them and are seen by other processes that
//! share the store; a store from a newer schema is refused cleanly.

// `ck!` (tests/common/raw.rs) evaluates its arguments inside its unsafe block on purpose:
// every use is a raw FFI call.
#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::Raw;
use common::*;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::{CKA_VALUE, CKR_ATTRIBUTE_SENSITIVE};

// NIST SP 800-38A F.1.1 (ECB-AES128.Encrypt), block 1.
const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172a";
const CIPHER: &str = "3ad77bb40d7a3660a89ecaf32466ef97";

/// Process A: initializes the token (when needed) and writes token objects.
#[test]
fn writer_process() {
    helper_process("writer_process", || {
        let p = load();
        let slot = if p.get_slots_with_initialized_token().unwrap().is_empty() {
            setup_token(&p)
        } else {
            token_slot(&p)
        };
        let s = user_session(&p, slot);
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label(b"p-data".to_vec()),
            Attribute::Value(b"persisted".to_vec()),
        ])
        .unwrap();
        s.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(b"p-aes".to_vec()),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Value(hex::decode(KEY).unwrap()),
        ])
        .unwrap();
        s.generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"p-rsa".to_vec()),
                Attribute::ModulusBits(1024.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(b"p-rsa".to_vec()),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    });
}

fn one(s: &Session, template: &[Attribute]) -> ObjectHandle {
    let found = s.find_objects(template).unwrap();
    assert_eq!(found.len(), 1, "expected one object for {template:?}");
    found[0]
}

/// Process B: finds A's objects by label and uses them.
fn use_objects(p: &Pkcs11) {
    let slot = token_slot(p);
    let s = user_session(p, slot);
    let data = one(&s, &[Attribute::Label(b"p-data".to_vec())]);
    assert_eq!(
        s.get_attributes(data, &[AttributeType::Value]).unwrap(),
        vec![Attribute::Value(b"persisted".to_vec())]
    );
    let aes = one(&s, &[Attribute::Label(b"p-aes".to_vec())]);
    let ct = s
        .encrypt(&Mechanism::AesEcb, aes, &hex::decode(PLAIN).unwrap())
        .unwrap();
    assert_eq!(hex::encode(&ct), CIPHER);
    assert_eq!(
        hex::encode(s.decrypt(&Mechanism::AesEcb, aes, &ct).unwrap()),
        PLAIN
    );
    let private = one(
        &s,
        &[
            Attribute::Label(b"p-rsa".to_vec()),
            Attribute::Class(ObjectClass::PRIVATE_KEY),
        ],
    );
    let public = one(
        &s,
        &[
            Attribute::Label(b"p-rsa".to_vec()),
            Attribute::Class(ObjectClass::PUBLIC_KEY),
        ],
    );
    let sig = s
        .sign(&Mechanism::Sha256RsaPkcs, private, b"message")
        .unwrap();
    assert_eq!(sig.len(), 128);
    s.verify(&Mechanism::Sha256RsaPkcs, public, b"message", &sig)
        .unwrap();
    expect_rv(
        s.verify(&Mechanism::Sha256RsaPkcs, public, b"other", &sig),
        RvError::SignatureInvalid,
    );
}

#[test]
fn objects_from_a_finished_process() {
    isolated("objects_from_a_finished_process", || {
        spawn_helper("writer_process");
        let p = load();
        use_objects(&p);
    });
}

#[test]
fn objects_written_while_initialized() {
    isolated("objects_written_while_initialized", || {
        // B is initialized on an empty store: only the free slot.
        let p = load();
        assert!(p.get_slots_with_initialized_token().unwrap().is_empty());
        // A creates the token and its objects meanwhile.
        spawn_helper("writer_process");
        use_objects(&p);
        // A again, while B holds a logged-in session: B sees the new objects too.
        let s = user_session(&p, token_slot(&p));
        spawn_helper("writer_process");
        assert_eq!(
            s.find_objects(&[Attribute::Label(b"p-data".to_vec())])
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            s.find_objects(&[Attribute::Label(b"p-rsa".to_vec())])
                .unwrap()
                .len(),
            4
        );
    });
}

#[test]
fn newer_schema_is_refused() {
    isolated("newer_schema_is_refused", || {
        spawn_helper("writer_process");
        let dir = std::env::var("CLUSTERHSM_DIR").unwrap();
        let db = std::path::Path::new(&dir).join("clusterhsm.db");
        assert!(db.is_file(), "no store at {}", db.display());
        let conn = rusqlite::Connection::open(&db).unwrap();
        let n = conn
            .execute(
                "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
                [],
            )
            .unwrap();
        assert_eq!(n, 1, "the store has a schema_version row");
        drop(conn);

        let p = Pkcs11::new(module_path()).expect("load");
        expect_rv(
            p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)),
            RvError::FunctionFailed,
        );
        // Still not initialized, and still callable.
        expect_rv(p.get_library_info(), RvError::CryptokiNotInitialized);
        expect_rv(
            p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)),
            RvError::FunctionFailed,
        );
    });
}

/// Writes a token with a readable AES key (not sensitive, extractable), a sensitive one, a
/// public sensitive one and a private data object, for the lazy-unsealing scenarios.
#[test]
fn sealed_writer_process() {
    helper_process("sealed_writer_process", || {
        let p = load();
        let s = user_session(&p, setup_token(&p));
        let key = |label: &[u8], sensitive: bool, private: bool| {
            s.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Sensitive(sensitive),
                Attribute::Extractable(!sensitive),
                Attribute::Label(label.to_vec()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Value(hex::decode(KEY).unwrap()),
            ])
            .unwrap();
        };
        key(b"readable", false, true);
        key(b"sensitive", true, true);
        key(b"public-sensitive", true, false);
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(b"secret-data".to_vec()),
            Attribute::Value(b"classified".to_vec()),
        ])
        .unwrap();
    });
}

/// Process B renames the sensitive key without ever using it: its sealed part is written
/// back as loaded.
#[test]
fn sealed_renamer_process() {
    helper_process("sealed_renamer_process", || {
        let p = load();
        let s = user_session(&p, token_slot(&p));
        let k = one(&s, &[Attribute::Label(b"sensitive".to_vec())]);
        s.update_attributes(k, &[Attribute::Label(b"renamed".to_vec())])
            .unwrap();
    });
}

/// Stored secrets are opened at first use in each process, not at login: every way of
/// reaching a value still works in a fresh process, and before login nothing is revealed.
#[test]
fn sealed_parts_open_on_first_use() {
    isolated("sealed_parts_open_on_first_use", || {
        spawn_helper("sealed_writer_process");
        spawn_helper("sealed_renamer_process");
        let p = load();
        let slot = token_slot(&p);
        // Before login: a public sensitive key is visible but reveals nothing and cannot
        // be used (its sealed part needs the master key).
        let public = p.open_rw_session(slot).unwrap();
        let k = one(&public, &[Attribute::Label(b"public-sensitive".to_vec())]);
        let raw = Raw::load();
        assert_eq!(
            raw.get_attr(public.handle(), k.handle(), CKA_VALUE),
            Err(CKR_ATTRIBUTE_SENSITIVE)
        );
        expect_rv(
            public.encrypt(&Mechanism::AesEcb, k, &hex::decode(PLAIN).unwrap()),
            RvError::UserNotLoggedIn,
        );
        let s = user_session(&p, slot);
        // Reading a value opens the sealed part.
        let readable = one(&s, &[Attribute::Label(b"readable".to_vec())]);
        assert_eq!(
            s.get_attributes(readable, &[AttributeType::Value]).unwrap(),
            vec![Attribute::Value(hex::decode(KEY).unwrap())]
        );
        let data = one(&s, &[Attribute::Label(b"secret-data".to_vec())]);
        assert_eq!(
            s.get_attributes(data, &[AttributeType::Value]).unwrap(),
            vec![Attribute::Value(b"classified".to_vec())]
        );
        // A search on a sealed value finds the object (private data) in a third process.
        let found = s
            .find_objects(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Value(b"classified".to_vec()),
            ])
            .unwrap();
        assert_eq!(found, vec![data]);
        // The renamed key, never used by the process that renamed it, still works.
        let renamed = one(&s, &[Attribute::Label(b"renamed".to_vec())]);
        assert!(s
            .find_objects(&[Attribute::Label(b"sensitive".to_vec())])
            .unwrap()
            .is_empty());
        // A copy made before first use carries the key.
        let copy = s.copy_object(renamed, &[Attribute::Token(false)]).unwrap();
        for h in [renamed, copy, k] {
            let ct = s
                .encrypt(&Mechanism::AesEcb, h, &hex::decode(PLAIN).unwrap())
                .unwrap();
            assert_eq!(hex::encode(ct), CIPHER);
        }
        // The sensitive key stays sensitive once opened.
        assert_eq!(
            raw.get_attr(s.handle(), renamed.handle(), CKA_VALUE),
            Err(CKR_ATTRIBUTE_SENSITIVE)
        );
    });
}

//! Object management (PKCS#11 v2.40 §5.7, §4): create, read, modify, copy, destroy, find,
//! visibility rules. Each test is one process with a fresh store.

// `ck!` (tests/common/raw.rs) evaluates its arguments inside its unsafe block on purpose:
// every use is a raw FFI call.
#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::Raw;
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;
use std::ptr::null_mut;

const AES_VALUE: [u8; 16] = [
    0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
];

fn aes_key(s: &Session, label: &str, sensitive: bool) -> ObjectHandle {
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Label(label.into()),
        Attribute::Sensitive(sensitive),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Value(AES_VALUE.to_vec()),
    ])
    .expect("create AES key")
}

fn find_labels(s: &Session, template: &[Attribute]) -> Vec<String> {
    let mut v: Vec<String> = s
        .find_objects(template)
        .unwrap()
        .into_iter()
        .map(|h| label_of(s, h))
        .collect();
    v.sort();
    v
}

fn label_of(s: &Session, h: ObjectHandle) -> String {
    match &s.get_attributes(h, &[AttributeType::Label]).unwrap()[..] {
        [Attribute::Label(l)] => String::from_utf8(l.clone()).unwrap(),
        other => panic!("no label: {other:?}"),
    }
}

fn self_signed_cert_der() -> Vec<u8> {
    let dir = Scratch::new();
    let (key, cert) = (dir.root.join("k.pem"), dir.root.join("c.der"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=t",
        ])
        .args(["-days", "1", "-outform", "DER", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (needed to make a test certificate)");
    assert!(out.status.success(), "openssl req failed: {out:?}");
    std::fs::read(&cert).unwrap()
}

#[test]
fn create_and_read_objects() {
    isolated("create_and_read_objects", || {
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);

        // A data object.
        let data = s
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Label(b"data".to_vec()),
                Attribute::Application(b"app".to_vec()),
                Attribute::Value(b"hello".to_vec()),
            ])
            .unwrap();
        let got = s
            .get_attributes(data, &[AttributeType::Value, AttributeType::Application])
            .unwrap();
        assert_eq!(
            got,
            vec![
                Attribute::Value(b"hello".to_vec()),
                Attribute::Application(b"app".to_vec())
            ]
        );

        // A certificate from only CKA_CLASS, CKA_CERTIFICATE_TYPE and CKA_VALUE: the token
        // fills CKA_SUBJECT from the DER.
        let der = self_signed_cert_der();
        let cert = s
            .create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Value(der.clone()),
            ])
            .unwrap();
        let subject = match &s.get_attributes(cert, &[AttributeType::Subject]).unwrap()[..] {
            [Attribute::Subject(v)] => v.clone(),
            other => panic!("no CKA_SUBJECT: {other:?}"),
        };
        // DER of Name { CN=t }: SEQUENCE { SET { SEQUENCE { OID 2.5.4.3, UTF8String "t" } } }
        assert_eq!(
            subject,
            hex::decode("300c310a300806035504030c0174").unwrap(),
            "CKA_SUBJECT must be the certificate's subject Name"
        );
        assert!(der.windows(subject.len()).any(|w| w == subject));

        // An AES key with a known value: sensitive, so CKA_VALUE is not readable.
        let key = aes_key(&s, "aes", true);
        assert!(matches!(
            s.get_attribute_info(key, &[AttributeType::Value]).unwrap()[..],
            [AttributeInfo::Sensitive]
        ));
        // (cryptoki's get_attributes drops unavailable attributes; the CKR_ code is
        // checked with a raw call below.)
        assert!(s
            .get_attributes(key, &[AttributeType::Value])
            .unwrap()
            .is_empty());
        // The check value (first 3 bytes of AES-ECB(key, 0^128)) shows the value is right:
        // AES-128 key 2b7e1516... encrypts the zero block to 7df76b0c1ab899b33e42f047b91b546f.
        assert_eq!(
            s.get_attributes(key, &[AttributeType::CheckValue, AttributeType::ValueLen])
                .unwrap(),
            vec![
                Attribute::CheckValue(vec![0x7d, 0xf7, 0x6b]),
                Attribute::ValueLen(16.into())
            ]
        );
        // CKA_MODULUS is not an attribute of an AES key.
        assert!(matches!(
            s.get_attribute_info(key, &[AttributeType::Modulus, AttributeType::Label])
                .unwrap()[..],
            [AttributeInfo::TypeInvalid, AttributeInfo::Available(3)]
        ));

        // One C_GetAttributeValue with a sensitive, an invalid and a readable attribute:
        // every attribute is processed; the two bad ones get CK_UNAVAILABLE_INFORMATION and
        // the call returns one of the two errors (§5.7).
        let raw = Raw::load();
        let mut label = [0u8; 16];
        let mut tmpl = [
            CK_ATTRIBUTE {
                type_: CKA_VALUE,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: CKA_MODULUS,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: label.as_mut_ptr().cast(),
                ulValueLen: label.len() as CK_ULONG,
            },
        ];
        let rv = ck!(
            raw,
            C_GetAttributeValue(s.handle(), key.handle(), tmpl.as_mut_ptr(), 3)
        );
        assert!(
            rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID,
            "got {}",
            common::raw::rv_name(rv)
        );
        assert_eq!(tmpl[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(tmpl[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(tmpl[2].ulValueLen, 3);
        assert_eq!(&label[..3], b"aes");
        // A buffer too small for one attribute: CKR_BUFFER_TOO_SMALL, that one unavailable.
        let mut small = [0u8; 1];
        let mut tmpl = [CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: small.as_mut_ptr().cast(),
            ulValueLen: 1,
        }];
        let rv = ck!(
            raw,
            C_GetAttributeValue(s.handle(), key.handle(), tmpl.as_mut_ptr(), 1)
        );
        assert_eq!(rv, CKR_BUFFER_TOO_SMALL, "got {}", common::raw::rv_name(rv));
        assert_eq!(tmpl[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    });
}

#[test]
fn set_attribute_rules() {
    isolated("set_attribute_rules", || {
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);
        let key = aes_key(&s, "aes", true);
        // A plain attribute can change.
        s.update_attributes(key, &[Attribute::Label(b"renamed".to_vec())])
            .unwrap();
        assert_eq!(label_of(&s, key), "renamed");
        // CKA_SENSITIVE can only go false → true.
        expect_rv(
            s.update_attributes(key, &[Attribute::Sensitive(false)]),
            RvError::AttributeReadOnly,
        );
        // CKA_EXTRACTABLE can only go true → false.
        expect_rv(
            s.update_attributes(key, &[Attribute::Extractable(true)]),
            RvError::AttributeReadOnly,
        );
        // A non-sensitive key may become sensitive.
        let open = aes_key(&s, "open", false);
        s.update_attributes(open, &[Attribute::Sensitive(true)])
            .unwrap();
        assert!(matches!(
            s.get_attribute_info(open, &[AttributeType::Value]).unwrap()[..],
            [AttributeInfo::Sensitive]
        ));
        // CKA_MODIFIABLE false: no change at all.
        let frozen = s
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Modifiable(false),
                Attribute::Label(b"frozen".to_vec()),
                Attribute::Value(vec![1]),
            ])
            .unwrap();
        expect_rv(
            s.update_attributes(frozen, &[Attribute::Label(b"x".to_vec())]),
            RvError::ActionProhibited,
        );
        assert_eq!(label_of(&s, frozen), "frozen");
    });
}

#[test]
fn copy_destroy_find() {
    isolated("copy_destroy_find", || {
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);
        // Generic secret keys carry CKA_ID (data objects have no CKA_ID).
        let mk = |label: &str, id: &[u8], token: bool| {
            s.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Token(token),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Label(label.into()),
                Attribute::Id(id.to_vec()),
                Attribute::Value(label.into()),
            ])
            .unwrap()
        };
        let a = mk("a", b"1", true);
        mk("b", b"1", true);
        mk("c", b"2", false);
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label(b"d".to_vec()),
            Attribute::Value(vec![1]),
        ])
        .unwrap();

        assert_eq!(
            find_labels(&s, &[Attribute::Class(ObjectClass::SECRET_KEY)]),
            ["a", "b", "c"]
        );
        assert_eq!(find_labels(&s, &[Attribute::Id(b"1".to_vec())]), ["a", "b"]);
        assert_eq!(find_labels(&s, &[Attribute::Label(b"c".to_vec())]), ["c"]);
        assert_eq!(
            find_labels(&s, &[Attribute::Class(ObjectClass::DATA)]),
            ["d"]
        );
        assert_eq!(
            find_labels(
                &s,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::Id(b"2".to_vec())
                ]
            ),
            ["c"]
        );
        assert_eq!(find_labels(&s, &[]).len(), 4);
        assert!(find_labels(&s, &[Attribute::Label(b"none".to_vec())]).is_empty());

        // Copy with a changed label; the original stays.
        let copy = s
            .copy_object(a, &[Attribute::Label(b"a2".to_vec())])
            .unwrap();
        assert_ne!(copy, a);
        assert_eq!(
            s.get_attributes(copy, &[AttributeType::Value]).unwrap(),
            vec![Attribute::Value(b"a".to_vec())]
        );
        assert_eq!(
            find_labels(&s, &[Attribute::Id(b"1".to_vec())]),
            ["a", "a2", "b"]
        );

        // Destroy: gone from searches and its handle is invalid.
        s.destroy_object(a).unwrap();
        assert_eq!(
            find_labels(&s, &[Attribute::Id(b"1".to_vec())]),
            ["a2", "b"]
        );
        expect_rv(
            s.get_attributes(a, &[AttributeType::Label]),
            RvError::ObjectHandleInvalid,
        );
        expect_rv(s.destroy_object(a), RvError::ObjectHandleInvalid);
    });
}

#[test]
fn visibility_and_session_rules() {
    isolated("visibility_and_session_rules", || {
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);
        let private = |token: bool, label: &str| {
            vec![
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(token),
                Attribute::Private(true),
                Attribute::Label(label.into()),
                Attribute::Value(vec![7]),
            ]
        };
        let hidden = s.create_object(&private(true, "private")).unwrap();
        assert_eq!(find_labels(&s, &private(true, "private")[..4]), ["private"]);

        // Private objects are invisible after logout.
        s.logout().unwrap();
        assert!(find_labels(&s, &[Attribute::Label(b"private".to_vec())]).is_empty());
        expect_rv(
            s.get_attributes(hidden, &[AttributeType::Label]),
            RvError::ObjectHandleInvalid,
        );
        // A private object cannot be made without login.
        expect_rv(
            s.create_object(&private(false, "p2")),
            RvError::UserNotLoggedIn,
        );
        s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();

        // A token object cannot be made in a R/O session; a session object can.
        let ro = p.open_ro_session(slot).unwrap();
        expect_rv(
            ro.create_object(&private(true, "p3")),
            RvError::SessionReadOnly,
        );
        ro.create_object(&private(false, "ro-session-obj")).unwrap();
        expect_rv(ro.destroy_object(hidden), RvError::SessionReadOnly);

        // Session objects vanish with their session; other sessions see them meanwhile.
        let other = p.open_rw_session(slot).unwrap();
        other.create_object(&private(false, "session-obj")).unwrap();
        assert_eq!(
            find_labels(&s, &[Attribute::Token(false)]),
            ["ro-session-obj", "session-obj"]
        );
        drop(other);
        drop(ro);
        assert!(find_labels(&s, &[Attribute::Token(false)]).is_empty());
        assert_eq!(find_labels(&s, &[Attribute::Token(true)]), ["private"]);
    });
}

#[test]
fn template_errors() {
    isolated("template_errors", || {
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);
        // A secret key without CKA_VALUE.
        expect_rv(
            s.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(false),
            ]),
            RvError::TemplateIncomplete,
        );
        // No class at all.
        expect_rv(
            s.create_object(&[Attribute::Value(vec![1, 2, 3])]),
            RvError::TemplateIncomplete,
        );
        // An RSA-only attribute on an AES key.
        expect_rv(
            s.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Value(AES_VALUE.to_vec()),
                Attribute::Modulus(vec![1, 2, 3]),
            ]),
            RvError::AttributeTypeInvalid,
        );
        // A wrong AES key length.
        expect_rv(
            s.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Value(vec![0; 15]),
            ]),
            RvError::AttributeValueInvalid,
        );
    });
}

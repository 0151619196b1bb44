//! The known PKCS#11 API attacks (Clulow 2003; Bortolozzo, Centenaro, Focardi, Steel,
//! "Attacking and fixing PKCS#11 security tokens", CCS 2010 — the Tookan paper), each one
//! refused by the module's policy. Ordinary use with default attributes still works.

#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Mech, Raw, Tmpl, H, S};
use common::*;
use cryptoki_sys::*;

fn secret(raw: &Raw, s: S, value: &[u8], t: Tmpl) -> H {
    let mut t = t
        .ulong(CKA_CLASS, CKO_SECRET_KEY)
        .ulong(CKA_KEY_TYPE, CKK_AES)
        .bool(CKA_TOKEN, false)
        .bytes(CKA_VALUE, value);
    raw.create_object(s, &mut t).expect("C_CreateObject")
}

fn refused<T: std::fmt::Debug>(r: Result<T, CK_RV>, want: CK_RV, what: &str) {
    assert_eq!(r.map_err(rv_name).err(), Some(rv_name(want)), "{what}");
}

#[test]
fn known_attacks_are_refused() {
    isolated("known_attacks_are_refused", || {
        let p = load();
        let slot = setup_token(&p);
        let session = user_session(&p, slot);
        let raw = Raw::load();
        let s = session.handle();
        let victim = secret(
            &raw,
            s,
            &[0x11; 32],
            Tmpl::new()
                .bool(CKA_SENSITIVE, true)
                .bool(CKA_EXTRACTABLE, true),
        );

        // 1. Wrap a sensitive key under a key that can also decrypt, then decrypt the blob.
        let wrap_and_decrypt = secret(
            &raw,
            s,
            &[0x22; 32],
            Tmpl::new().bool(CKA_WRAP, true).bool(CKA_DECRYPT, true),
        );
        refused(
            raw.wrap(
                s,
                &mut Mech::new(CKM_AES_KEY_WRAP_PAD),
                wrap_and_decrypt,
                victim,
            ),
            CKR_KEY_FUNCTION_NOT_PERMITTED,
            "wrapping a sensitive key under a key that can also decrypt",
        );
        // The same wrap under a wrap-only key is ordinary use and works.
        let wrap_only = secret(
            &raw,
            s,
            &[0x33; 32],
            Tmpl::new().bool(CKA_WRAP, true).bool(CKA_DECRYPT, false),
        );
        raw.wrap(s, &mut Mech::new(CKM_AES_KEY_WRAP_PAD), wrap_only, victim)
            .expect("wrap under a wrap-only key");

        // 2. Wrap a key under itself.
        let selfish = secret(
            &raw,
            s,
            &[0x44; 32],
            Tmpl::new()
                .bool(CKA_WRAP, true)
                .bool(CKA_DECRYPT, false)
                .bool(CKA_EXTRACTABLE, true),
        );
        refused(
            raw.wrap(s, &mut Mech::new(CKM_AES_KEY_WRAP_PAD), selfish, selfish),
            CKR_KEY_NOT_WRAPPABLE,
            "wrapping a key under itself",
        );

        // 3. Unwrap a known blob as a key that can both wrap and decrypt.
        let known = raw
            .wrap(s, &mut Mech::new(CKM_AES_KEY_WRAP_PAD), wrap_only, victim)
            .expect("wrap");
        let mut both = Tmpl::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, CKK_AES)
            .bool(CKA_TOKEN, false)
            .bool(CKA_WRAP, true)
            .bool(CKA_DECRYPT, true);
        let unwrapper = secret(
            &raw,
            s,
            &[0x33; 32],
            Tmpl::new()
                .bool(CKA_UNWRAP, true)
                .bool(CKA_WRAP, false)
                .bool(CKA_DECRYPT, false),
        );
        refused(
            raw.unwrap(
                s,
                &mut Mech::new(CKM_AES_KEY_WRAP_PAD),
                unwrapper,
                &known,
                &mut both,
            ),
            CKR_TEMPLATE_INCONSISTENT,
            "unwrapping a known blob as a wrap-and-decrypt key",
        );

        // 4. Flip CKA_SENSITIVE back to false, CKA_EXTRACTABLE back to true.
        let mut off = Tmpl::new().bool(CKA_SENSITIVE, false);
        refused(
            raw.set_attrs(s, victim, &mut off),
            CKR_ATTRIBUTE_READ_ONLY,
            "CKA_SENSITIVE true -> false",
        );
        let locked = secret(
            &raw,
            s,
            &[0x55; 32],
            Tmpl::new().bool(CKA_EXTRACTABLE, false),
        );
        let mut on = Tmpl::new().bool(CKA_EXTRACTABLE, true);
        refused(
            raw.set_attrs(s, locked, &mut on),
            CKR_ATTRIBUTE_READ_ONLY,
            "CKA_EXTRACTABLE false -> true",
        );

        // 5. Read CKA_VALUE of a sensitive key, directly or through a copy made non-sensitive.
        refused(
            raw.get_attr(s, victim, CKA_VALUE),
            CKR_ATTRIBUTE_SENSITIVE,
            "reading a sensitive CKA_VALUE",
        );
        let mut copy_t = Tmpl::new().bool(CKA_SENSITIVE, false);
        refused(
            raw.copy_object(s, victim, &mut copy_t),
            CKR_ATTRIBUTE_READ_ONLY,
            "C_CopyObject with CKA_SENSITIVE false",
        );

        // 6. Derive a key with weaker attributes than its base (the derived value of
        //    AES_ECB_ENCRYPT_DATA would be an encryption under the base key).
        let base = secret(
            &raw,
            s,
            &[0x66; 32],
            Tmpl::new().bool(CKA_SENSITIVE, true).bool(CKA_DERIVE, true),
        );
        let data = [0u8; 32];
        let params = CK_KEY_DERIVATION_STRING_DATA {
            pData: data.as_ptr() as *mut u8,
            ulLen: 32,
        };
        let mut weak = Tmpl::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, CKK_AES)
            .ulong(CKA_VALUE_LEN, 32)
            .bool(CKA_TOKEN, false)
            .bool(CKA_SENSITIVE, false);
        refused(
            raw.derive(
                s,
                &mut Mech::with(CKM_AES_ECB_ENCRYPT_DATA, &params),
                base,
                &mut weak,
            ),
            CKR_TEMPLATE_INCONSISTENT,
            "deriving a non-sensitive key from a sensitive one",
        );
        let mut strong = Tmpl::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, CKK_AES)
            .ulong(CKA_VALUE_LEN, 32)
            .bool(CKA_TOKEN, false);
        let derived = raw
            .derive(
                s,
                &mut Mech::with(CKM_AES_ECB_ENCRYPT_DATA, &params),
                base,
                &mut strong,
            )
            .expect("derivation that keeps the base's protection");
        refused(
            raw.get_attr(s, derived, CKA_VALUE),
            CKR_ATTRIBUTE_SENSITIVE,
            "the derived key inherits CKA_SENSITIVE",
        );

        // 7. A CKA_WRAP_WITH_TRUSTED key under an untrusted wrapping key.
        let guarded = secret(
            &raw,
            s,
            &[0x77; 32],
            Tmpl::new()
                .bool(CKA_WRAP_WITH_TRUSTED, true)
                .bool(CKA_EXTRACTABLE, true)
                .bool(CKA_SENSITIVE, true),
        );
        refused(
            raw.wrap(s, &mut Mech::new(CKM_AES_KEY_WRAP_PAD), wrap_only, guarded),
            CKR_KEY_NOT_WRAPPABLE,
            "wrapping a CKA_WRAP_WITH_TRUSTED key under an untrusted key",
        );
        // CKA_TRUSTED can only be set by the Security Officer.
        let mut trust = Tmpl::new().bool(CKA_TRUSTED, true);
        refused(
            raw.set_attrs(s, wrap_only, &mut trust),
            CKR_ATTRIBUTE_READ_ONLY,
            "a user setting CKA_TRUSTED",
        );

        // A non-extractable key is never wrapped.
        let pinned = secret(
            &raw,
            s,
            &[0x88; 32],
            Tmpl::new()
                .bool(CKA_EXTRACTABLE, false)
                .bool(CKA_SENSITIVE, true),
        );
        refused(
            raw.wrap(s, &mut Mech::new(CKM_AES_KEY_WRAP_PAD), wrap_only, pinned),
            CKR_KEY_UNEXTRACTABLE,
            "wrapping a non-extractable key",
        );
    });
}

//! The `cloudhsm` profile (DESIGN.md §3, README): one test per rule, each on a fresh store
//! whose token was made through PKCS#11 with `default_profile = "cloudhsm"` in the config
//! (or from `clusterhsm cluster create --profile cloudhsm`), and the `standard` profile's
//! opposite behaviour as a control where the rule changes the spec's behaviour.
//!
//! Rules and their CloudHSM sources (AWS CloudHSM Client SDK 5 documentation):
//! "Known issues for the PKCS #11 library" and "Supported API operations" (no R/O sessions,
//! no multi-part AES-GCM, HSM-generated GCM IVs, the functions SDK 5 does not offer),
//! "Supported attributes" (CKA_EXTRACTABLE defaults to true), "Supported mechanisms"
//! (2.40 list plus vendor mechanisms), "Quotas" (1,024 sessions per application) and
//! "Managing users" (passwords of 8 to 32 characters).

// `ck!` (tests/common/raw.rs) evaluates its arguments inside its unsafe block on purpose:
// every use is a raw FFI call.
#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::*;
use common::*;
use cryptoki_sys::*;
use std::process::Command;
use std::ptr::null_mut;

/// The default CU's password on a cloudhsm cluster (made with the CLI: no C_InitPIN).
const CU_PASSWORD: &str = "cupassword1";

const CKM_CLOUDHSM_AES_GCM: CK_MECHANISM_TYPE = 0x8000_1087;
const CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD: CK_MECHANISM_TYPE = 0x8000_2109;
const CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD: CK_MECHANISM_TYPE = 0x8000_210A;
const CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD: CK_MECHANISM_TYPE = 0x8000_216F;
const CKM_SP800_108_COUNTER_KDF_CLOUDHSM: CK_MECHANISM_TYPE = 0x8000_0001;

const VENDOR_MECHANISMS: [CK_MECHANISM_TYPE; 5] = [
    CKM_CLOUDHSM_AES_GCM,
    CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD,
    CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD,
    CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD,
    CKM_SP800_108_COUNTER_KDF_CLOUDHSM,
];

/// Every SHA-3 mechanism of PKCS#11 3.0 (digests, HMACs, hash-and-sign, key generation).
const SHA3_MECHANISMS: [CK_MECHANISM_TYPE; 28] = [
    CKM_SHA3_224,
    CKM_SHA3_256,
    CKM_SHA3_384,
    CKM_SHA3_512,
    CKM_SHA3_224_HMAC,
    CKM_SHA3_256_HMAC,
    CKM_SHA3_384_HMAC,
    CKM_SHA3_512_HMAC,
    CKM_SHA3_224_HMAC_GENERAL,
    CKM_SHA3_256_HMAC_GENERAL,
    CKM_SHA3_384_HMAC_GENERAL,
    CKM_SHA3_512_HMAC_GENERAL,
    CKM_SHA3_224_RSA_PKCS,
    CKM_SHA3_256_RSA_PKCS,
    CKM_SHA3_384_RSA_PKCS,
    CKM_SHA3_512_RSA_PKCS,
    CKM_SHA3_224_RSA_PKCS_PSS,
    CKM_SHA3_256_RSA_PKCS_PSS,
    CKM_SHA3_384_RSA_PKCS_PSS,
    CKM_SHA3_512_RSA_PKCS_PSS,
    CKM_ECDSA_SHA3_224,
    CKM_ECDSA_SHA3_256,
    CKM_ECDSA_SHA3_384,
    CKM_ECDSA_SHA3_512,
    CKM_SHA3_224_KEY_GEN,
    CKM_SHA3_256_KEY_GEN,
    CKM_SHA3_384_KEY_GEN,
    CKM_SHA3_512_KEY_GEN,
];

/// DER of the P-256 OID (CKA_EC_PARAMS).
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

// ---------------------------------------------------------------------------------------
// Setup

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Profile {
    Standard,
    CloudHsm,
}

/// Sets `default_profile` in this scenario's config (before the module reads it).
fn config_profile(profile: Profile) {
    let conf = std::env::var("CLUSTERHSM_CONF").expect("CLUSTERHSM_CONF in a scenario");
    let mut text = std::fs::read_to_string(&conf).expect("read the test config");
    let name = match profile {
        Profile::Standard => "standard",
        Profile::CloudHsm => "cloudhsm",
    };
    text.push_str(&format!("default_profile = \"{name}\"\n"));
    std::fs::write(&conf, text).expect("write the test config");
}

/// `target/release/clusterhsm` beside the module, with this process's environment.
fn cli(args: &[&str]) -> (bool, String) {
    let exe = module_path()
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
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[track_caller]
fn cli_ok(args: &[&str]) -> String {
    let (ok, out) = cli(args);
    assert!(ok, "clusterhsm {args:?} failed:\n{out}");
    out
}

fn slots(raw: &Raw) -> Vec<CK_SLOT_ID> {
    let mut n: CK_ULONG = 0;
    assert_eq!(ck!(raw, C_GetSlotList(CK_TRUE, null_mut(), &mut n)), CKR_OK);
    let mut v = vec![0; n as usize];
    assert_eq!(
        ck!(raw, C_GetSlotList(CK_TRUE, v.as_mut_ptr(), &mut n)),
        CKR_OK
    );
    v.truncate(n as usize);
    v
}

fn init_token(raw: &Raw, slot: CK_SLOT_ID, so_pin: &str) -> CK_RV {
    let mut label = [b' '; 32];
    label[..4].copy_from_slice(b"test");
    let mut p = so_pin.as_bytes().to_vec();
    ck!(
        raw,
        C_InitToken(
            slot,
            p.as_mut_ptr(),
            p.len() as CK_ULONG,
            label.as_mut_ptr()
        )
    )
}

fn open_session(raw: &Raw, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<S, CK_RV> {
    let mut s: S = 0;
    rv(ck!(
        raw,
        C_OpenSession(slot, flags, null_mut(), None, &mut s)
    ))?;
    Ok(s)
}

fn login(raw: &Raw, s: S, user: CK_USER_TYPE, pin: &str) -> CK_RV {
    let mut p = pin.as_bytes().to_vec();
    ck!(raw, C_Login(s, user, p.as_mut_ptr(), p.len() as CK_ULONG))
}

fn token_info(raw: &Raw, slot: CK_SLOT_ID) -> CK_TOKEN_INFO {
    // SAFETY: CK_TOKEN_INFO is plain data; all-zero is a valid value.
    let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(ck!(raw, C_GetTokenInfo(slot, &mut info)), CKR_OK);
    info
}

struct Token {
    raw: Raw,
    slot: CK_SLOT_ID,
    profile: Profile,
}

impl Token {
    /// A fresh token of `profile`, made by C_InitToken on the free slot, with the default CU
    /// (C_InitPIN in the standard profile, the CLI in the cloudhsm one).
    fn new(profile: Profile) -> Token {
        config_profile(profile);
        let raw = Raw::load();
        assert_eq!(raw.initialize(), CKR_OK, "C_Initialize");
        let free = slots(&raw);
        assert_eq!(free.len(), 1, "a new store shows one free slot");
        let rv = init_token(&raw, free[0], SO_PIN);
        assert_eq!(rv, CKR_OK, "C_InitToken: {}", rv_name(rv));
        let slot = slots(&raw)[0];
        let t = Token { raw, slot, profile };
        t.add_default_cu();
        t
    }

    fn add_default_cu(&self) {
        match self.profile {
            Profile::CloudHsm => {
                cli_ok(&[
                    "user",
                    "create",
                    "cu",
                    "--role",
                    "cu",
                    "--password",
                    CU_PASSWORD,
                    "--user",
                    &format!("admin:{SO_PIN}"),
                ]);
            }
            Profile::Standard => {
                let s = self.rw();
                assert_eq!(login(&self.raw, s, CKU_SO, SO_PIN), CKR_OK);
                let mut p = USER_PIN.as_bytes().to_vec();
                assert_eq!(
                    ck!(self.raw, C_InitPIN(s, p.as_mut_ptr(), p.len() as CK_ULONG)),
                    CKR_OK
                );
                assert_eq!(ck!(self.raw, C_CloseSession(s)), CKR_OK);
            }
        }
    }

    fn user_pin(&self) -> String {
        match self.profile {
            Profile::CloudHsm => format!("cu:{CU_PASSWORD}"),
            Profile::Standard => USER_PIN.to_string(),
        }
    }

    fn rw(&self) -> S {
        open_session(&self.raw, self.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
            .unwrap_or_else(|rv| panic!("C_OpenSession R/W: {}", rv_name(rv)))
    }

    fn user_session(&self) -> S {
        let s = self.rw();
        let rv = login(&self.raw, s, CKU_USER, &self.user_pin());
        assert_eq!(rv, CKR_OK, "C_Login USER: {}", rv_name(rv));
        s
    }

    fn mechanisms(&self) -> Vec<CK_MECHANISM_TYPE> {
        let mut n: CK_ULONG = 0;
        assert_eq!(
            ck!(self.raw, C_GetMechanismList(self.slot, null_mut(), &mut n)),
            CKR_OK
        );
        let mut v = vec![0; n as usize];
        assert_eq!(
            ck!(
                self.raw,
                C_GetMechanismList(self.slot, v.as_mut_ptr(), &mut n)
            ),
            CKR_OK
        );
        v.truncate(n as usize);
        v
    }
}

/// An AES-256 key with the given extra attributes.
fn aes_key(raw: &Raw, s: S, token: bool, extra: Tmpl) -> H {
    let mut m = Mech::new(CKM_AES_KEY_GEN);
    let mut t = extra
        .bool(CKA_TOKEN, token)
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_DECRYPT, true)
        .ulong(CKA_VALUE_LEN, 32)
        .bytes(CKA_LABEL, b"aes");
    raw.generate_key(s, &mut m, &mut t)
        .unwrap_or_else(|rv| panic!("C_GenerateKey: {}", rv_name(rv)))
}

fn bool_attr(raw: &Raw, s: S, h: H, ty: CK_ATTRIBUTE_TYPE) -> bool {
    let v = raw
        .get_attr(s, h, ty)
        .unwrap_or_else(|rv| panic!("C_GetAttributeValue(0x{ty:x}): {}", rv_name(rv)));
    assert_eq!(v.len(), 1, "CK_BBOOL size");
    v[0] != 0
}

/// CK_GCM_PARAMS over caller-owned IV and AAD buffers (which must outlive the mechanism).
fn gcm(iv: &mut [u8], aad: &mut [u8]) -> Mech {
    let p = CK_GCM_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: iv.len() as CK_ULONG,
        ulIvBits: (iv.len() * 8) as CK_ULONG,
        pAAD: aad.as_mut_ptr(),
        ulAADLen: aad.len() as CK_ULONG,
        ulTagBits: 128,
    };
    Mech::with(CKM_AES_GCM, &p)
}

// ---------------------------------------------------------------------------------------
// R/O sessions

/// CloudHSM SDK 5 has no read-only sessions: C_OpenSession without CKF_RW_SESSION fails
/// with CKR_FUNCTION_FAILED. Control: the standard profile opens one.
#[test]
fn read_only_session_refused() {
    isolated("read_only_session_refused", || {
        let t = Token::new(Profile::CloudHsm);
        let rv = open_session(&t.raw, t.slot, CKF_SERIAL_SESSION).expect_err("R/O session");
        assert_eq!(rv, CKR_FUNCTION_FAILED, "{}", rv_name(rv));
        let s = t.rw();
        // SAFETY: CK_SESSION_INFO is plain data.
        let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
        assert_eq!(ck!(t.raw, C_GetSessionInfo(s, &mut info)), CKR_OK);
        assert_eq!(info.state, CKS_RW_PUBLIC_SESSION);
    });
}

#[test]
fn standard_profile_opens_read_only_sessions() {
    isolated("standard_profile_opens_read_only_sessions", || {
        let t = Token::new(Profile::Standard);
        let s = open_session(&t.raw, t.slot, CKF_SERIAL_SESSION)
            .unwrap_or_else(|rv| panic!("R/O session: {}", rv_name(rv)));
        // SAFETY: CK_SESSION_INFO is plain data.
        let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
        assert_eq!(ck!(t.raw, C_GetSessionInfo(s, &mut info)), CKR_OK);
        assert_eq!(info.state, CKS_RO_PUBLIC_SESSION);
    });
}

// ---------------------------------------------------------------------------------------
// CKA_EXTRACTABLE

/// Generated keys without CKA_EXTRACTABLE in the template are extractable on CloudHSM;
/// the standard profile keeps them non-extractable.
#[test]
fn generated_keys_extractable_by_default() {
    isolated("generated_keys_extractable_by_default", || {
        let t = Token::new(Profile::CloudHsm);
        let s = t.user_session();
        let aes = aes_key(&t.raw, s, true, Tmpl::new().bool(CKA_PRIVATE, true));
        let mut m = Mech::new(CKM_EC_KEY_PAIR_GEN);
        let mut public = Tmpl::new()
            .bool(CKA_TOKEN, true)
            .bool(CKA_VERIFY, true)
            .bytes(CKA_EC_PARAMS, P256);
        let mut private = Tmpl::new()
            .bool(CKA_TOKEN, true)
            .bool(CKA_PRIVATE, true)
            .bool(CKA_SIGN, true);
        let (_, ec) = t
            .raw
            .generate_key_pair(s, &mut m, &mut public, &mut private)
            .unwrap_or_else(|rv| panic!("C_GenerateKeyPair: {}", rv_name(rv)));
        assert!(bool_attr(&t.raw, s, aes, CKA_EXTRACTABLE), "AES key");
        assert!(bool_attr(&t.raw, s, ec, CKA_EXTRACTABLE), "EC private key");
        // An explicit CKA_EXTRACTABLE still wins.
        let fixed = aes_key(&t.raw, s, false, Tmpl::new().bool(CKA_EXTRACTABLE, false));
        assert!(!bool_attr(&t.raw, s, fixed, CKA_EXTRACTABLE));
    });
}

#[test]
fn standard_profile_keys_not_extractable_by_default() {
    isolated("standard_profile_keys_not_extractable_by_default", || {
        let t = Token::new(Profile::Standard);
        let s = t.user_session();
        let aes = aes_key(&t.raw, s, true, Tmpl::new().bool(CKA_PRIVATE, true));
        assert!(!bool_attr(&t.raw, s, aes, CKA_EXTRACTABLE));
        // An explicit CKA_EXTRACTABLE wins in both profiles.
        let explicit = aes_key(&t.raw, s, false, Tmpl::new().bool(CKA_EXTRACTABLE, true));
        assert!(bool_attr(&t.raw, s, explicit, CKA_EXTRACTABLE));
    });
}

// ---------------------------------------------------------------------------------------
// AES-GCM

/// No multi-part AES-GCM on CloudHSM: C_EncryptUpdate (and C_DecryptUpdate) are refused
/// and end the operation; single-part works.
#[test]
fn no_multipart_aes_gcm() {
    isolated("no_multipart_aes_gcm", || {
        let t = Token::new(Profile::CloudHsm);
        let s = t.user_session();
        let key = aes_key(&t.raw, s, false, Tmpl::new());
        let (mut iv, mut aad) = ([0u8; 12], *b"header");
        let rv = t
            .raw
            .encrypt_parts(
                s,
                &mut gcm(&mut iv, &mut aad),
                key,
                &[b"part one ", b"part two"],
            )
            .expect_err("multi-part AES-GCM encryption");
        assert_eq!(
            rv,
            CKR_FUNCTION_NOT_SUPPORTED,
            "C_EncryptUpdate: {}",
            rv_name(rv)
        );
        // The refused update ended the operation (PKCS#11 §5.2: any error but
        // CKR_BUFFER_TOO_SMALL terminates it).
        let mut out = [0u8; 64];
        let mut len = out.len() as CK_ULONG;
        assert_eq!(
            ck!(t.raw, C_EncryptFinal(s, out.as_mut_ptr(), &mut len)),
            CKR_OPERATION_NOT_INITIALIZED
        );

        let (mut iv, mut aad) = ([0u8; 12], *b"header");
        let ct = t
            .raw
            .encrypt(s, &mut gcm(&mut iv, &mut aad), key, b"single part")
            .unwrap_or_else(|rv| panic!("single-part AES-GCM: {}", rv_name(rv)));
        let rv = t
            .raw
            .decrypt_parts(s, &mut gcm(&mut iv, &mut aad), key, &[&ct[..8], &ct[8..]])
            .expect_err("multi-part AES-GCM decryption");
        assert_eq!(
            rv,
            CKR_FUNCTION_NOT_SUPPORTED,
            "C_DecryptUpdate: {}",
            rv_name(rv)
        );
        let pt = t
            .raw
            .decrypt(s, &mut gcm(&mut iv, &mut aad), key, &ct)
            .unwrap_or_else(|rv| panic!("single-part AES-GCM decryption: {}", rv_name(rv)));
        assert_eq!(pt, b"single part");
    });
}

#[test]
fn standard_profile_multipart_aes_gcm() {
    isolated("standard_profile_multipart_aes_gcm", || {
        let t = Token::new(Profile::Standard);
        let s = t.user_session();
        let key = aes_key(&t.raw, s, false, Tmpl::new());
        let (mut iv, mut aad) = ([7u8; 12], *b"header");
        let parts = t
            .raw
            .encrypt_parts(
                s,
                &mut gcm(&mut iv, &mut aad),
                key,
                &[b"part one ", b"part two"],
            )
            .unwrap_or_else(|rv| panic!("multi-part AES-GCM: {}", rv_name(rv)));
        let whole = t
            .raw
            .encrypt(s, &mut gcm(&mut iv, &mut aad), key, b"part one part two")
            .unwrap();
        assert_eq!(
            parts, whole,
            "multi-part equals single-part with the same IV"
        );
        assert_eq!(
            iv, [7u8; 12],
            "the standard profile leaves the caller's IV alone"
        );
        let pt = t
            .raw
            .decrypt_parts(
                s,
                &mut gcm(&mut iv, &mut aad),
                key,
                &[&whole[..5], &whole[5..]],
            )
            .unwrap();
        assert_eq!(pt, b"part one part two");
    });
}

/// CKM_AES_GCM encryption on CloudHSM ignores the caller's IV, generates a 12-byte IV and
/// writes it into CK_GCM_PARAMS.pIv; decryption with that IV recovers the data.
#[test]
fn gcm_iv_generated_and_written_back() {
    isolated("gcm_iv_generated_and_written_back", || {
        let t = Token::new(Profile::CloudHsm);
        let s = t.user_session();
        let key = aes_key(&t.raw, s, false, Tmpl::new());
        let placeholder = [0xA5u8; 12];
        let mut aad = *b"aad";

        let mut iv1 = placeholder;
        let ct1 = t
            .raw
            .encrypt(s, &mut gcm(&mut iv1, &mut aad), key, b"gcm plaintext")
            .unwrap_or_else(|rv| panic!("AES-GCM: {}", rv_name(rv)));
        assert_ne!(
            iv1, placeholder,
            "pIv was not overwritten with the generated IV"
        );
        assert_eq!(
            ct1.len(),
            13 + 16,
            "ciphertext and 16-byte tag, no IV prepended"
        );

        let mut iv2 = placeholder;
        let ct2 = t
            .raw
            .encrypt(s, &mut gcm(&mut iv2, &mut aad), key, b"gcm plaintext")
            .unwrap();
        assert_ne!(iv1, iv2, "a fresh IV per encryption");
        assert_ne!(ct1, ct2);

        let generated = iv1;
        let pt = t
            .raw
            .decrypt(s, &mut gcm(&mut iv1, &mut aad), key, &ct1)
            .unwrap_or_else(|rv| panic!("decrypt with the generated IV: {}", rv_name(rv)));
        assert_eq!(pt, b"gcm plaintext");
        assert_eq!(iv1, generated, "decryption leaves the IV alone");
        let pt = t
            .raw
            .decrypt(s, &mut gcm(&mut iv2, &mut aad), key, &ct2)
            .unwrap();
        assert_eq!(pt, b"gcm plaintext");
        // The caller's original IV is not the one used.
        let mut orig = placeholder;
        let rv = t
            .raw
            .decrypt(s, &mut gcm(&mut orig, &mut aad), key, &ct1)
            .expect_err("decrypt with the placeholder IV");
        assert_eq!(rv, CKR_ENCRYPTED_DATA_INVALID, "{}", rv_name(rv));

        // An IV buffer that cannot hold 12 bytes is refused.
        let mut short = [0u8; 8];
        let rv = t
            .raw
            .encrypt(s, &mut gcm(&mut short, &mut aad), key, b"x")
            .expect_err("8-byte IV buffer");
        assert_eq!(rv, CKR_MECHANISM_PARAM_INVALID, "{}", rv_name(rv));
    });
}

// ---------------------------------------------------------------------------------------
// Mechanism list

/// CloudHSM's list is PKCS#11 2.40 (no SHA-3) plus its vendor mechanisms.
#[test]
fn mechanism_list_without_sha3_with_vendor() {
    isolated("mechanism_list_without_sha3_with_vendor", || {
        let t = Token::new(Profile::CloudHsm);
        let list = t.mechanisms();
        let sha3: Vec<_> = list
            .iter()
            .filter(|m| SHA3_MECHANISMS.contains(m))
            .map(|m| format!("0x{m:x}"))
            .collect();
        assert!(sha3.is_empty(), "SHA-3 mechanisms listed: {sha3:?}");
        for m in VENDOR_MECHANISMS {
            assert!(list.contains(&m), "vendor mechanism 0x{m:x} missing");
            // SAFETY: CK_MECHANISM_INFO is plain data.
            let mut info: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
            assert_eq!(
                ck!(t.raw, C_GetMechanismInfo(t.slot, m, &mut info)),
                CKR_OK,
                "C_GetMechanismInfo(0x{m:x})"
            );
        }
        // SAFETY: CK_MECHANISM_INFO is plain data.
        let mut info: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
        assert_eq!(
            ck!(t.raw, C_GetMechanismInfo(t.slot, CKM_SHA3_256, &mut info)),
            CKR_MECHANISM_INVALID
        );
        let s = t.rw();
        let rv = t
            .raw
            .digest(s, &mut Mech::new(CKM_SHA3_256), b"abc")
            .expect_err("SHA3-256 on a cloudhsm cluster");
        assert_eq!(rv, CKR_MECHANISM_INVALID, "{}", rv_name(rv));
        // The 2.40 staples are there.
        for m in [CKM_SHA256, CKM_AES_GCM, CKM_ECDSA, CKM_RSA_PKCS_PSS] {
            assert!(list.contains(&m), "0x{m:x} missing");
        }
    });
}

#[test]
fn standard_profile_lists_sha3() {
    isolated("standard_profile_lists_sha3", || {
        let t = Token::new(Profile::Standard);
        let list = t.mechanisms();
        assert!(
            list.contains(&CKM_SHA3_256),
            "standard profile without SHA3-256"
        );
        let s = t.rw();
        let d = t
            .raw
            .digest(s, &mut Mech::new(CKM_SHA3_256), b"abc")
            .unwrap_or_else(|rv| panic!("SHA3-256: {}", rv_name(rv)));
        // FIPS 202, SHA3-256("abc").
        assert_eq!(
            hex::encode(d),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        for m in VENDOR_MECHANISMS {
            assert!(
                list.contains(&m),
                "vendor mechanism 0x{m:x} missing (both profiles)"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// Password length

/// Passwords of 8 to 32 characters (the part after `user:`); shorter or longer ones get
/// CKR_PIN_LEN_RANGE from C_InitToken, and the CLI refuses them for new users.
#[test]
fn password_length_8_to_32() {
    isolated("password_length_8_to_32", || {
        config_profile(Profile::CloudHsm);
        let raw = Raw::load();
        assert_eq!(raw.initialize(), CKR_OK);
        let free = slots(&raw)[0];
        for bad in [
            "1234567".to_string(),
            "x".repeat(33),
            "admin:1234567".to_string(),
            format!("admin:{}", "y".repeat(33)),
        ] {
            let rv = init_token(&raw, free, &bad);
            assert_eq!(
                rv,
                CKR_PIN_LEN_RANGE,
                "C_InitToken with a {}-character PIN: {}",
                bad.len(),
                rv_name(rv)
            );
        }
        assert_eq!(
            slots(&raw),
            [free],
            "no cluster was made by a refused C_InitToken"
        );
        let longest = "z".repeat(32);
        let rv = init_token(&raw, free, &longest);
        assert_eq!(rv, CKR_OK, "32-character password: {}", rv_name(rv));
        let slot = slots(&raw)[0];
        let info = token_info(&raw, slot);
        assert_eq!(info.ulMinPinLen, 8);
        let s = open_session(&raw, slot, CKF_SERIAL_SESSION | CKF_RW_SESSION).unwrap();
        assert_eq!(login(&raw, s, CKU_SO, &longest), CKR_OK);
    });
}

/// Users are made with the CLI on a cloudhsm cluster: its passwords follow the same rule.
#[test]
fn cli_user_password_length_8_to_32() {
    isolated("cli_user_password_length_8_to_32", || {
        let t = Token::new(Profile::CloudHsm);
        let co = format!("admin:{SO_PIN}");
        for bad in ["short12", &"w".repeat(33)] {
            let (ok, out) = cli(&[
                "user",
                "create",
                "bob",
                "--role",
                "cu",
                "--password",
                bad,
                "--user",
                &co,
            ]);
            assert!(
                !ok,
                "the CLI accepted a {}-character password on a cloudhsm cluster:\n{out}",
                bad.len()
            );
        }
        cli_ok(&[
            "user",
            "create",
            "bob",
            "--role",
            "cu",
            "--password",
            "exactly8",
            "--user",
            &co,
        ]);
        let s = t.rw();
        assert_eq!(login(&t.raw, s, CKU_USER, "bob:exactly8"), CKR_OK);
    });
}

#[test]
fn standard_profile_short_pins() {
    isolated("standard_profile_short_pins", || {
        config_profile(Profile::Standard);
        let raw = Raw::load();
        assert_eq!(raw.initialize(), CKR_OK);
        let free = slots(&raw)[0];
        assert_eq!(init_token(&raw, free, "123"), CKR_PIN_LEN_RANGE);
        let rv = init_token(&raw, free, "1234567");
        assert_eq!(rv, CKR_OK, "a 7-character SO PIN: {}", rv_name(rv));
    });
}

// ---------------------------------------------------------------------------------------
// Functions SDK 5 does not offer

/// C_InitPIN, C_SetPIN, C_CopyObject, C_SetAttributeValue and C_DigestKey return
/// CKR_FUNCTION_NOT_SUPPORTED on a cloudhsm cluster (users are managed with the CLI).
#[test]
fn unsupported_functions() {
    isolated("unsupported_functions", || {
        let t = Token::new(Profile::CloudHsm);
        let r = unsupported_calls(&t);
        assert_eq!(
            r,
            [CKR_FUNCTION_NOT_SUPPORTED; 5],
            "C_InitPIN, C_SetPIN, C_CopyObject, C_SetAttributeValue, C_DigestKey: {:?}",
            r.map(rv_name)
        );
    });
}

#[test]
fn standard_profile_offers_those_functions() {
    isolated("standard_profile_offers_those_functions", || {
        let t = Token::new(Profile::Standard);
        let r = unsupported_calls(&t);
        assert_eq!(
            r,
            [CKR_OK; 5],
            "C_InitPIN, C_SetPIN, C_CopyObject, C_SetAttributeValue, C_DigestKey: {:?}",
            r.map(rv_name)
        );
    });
}

/// The five calls, each made in the state where the spec allows it.
fn unsupported_calls(t: &Token) -> [CK_RV; 5] {
    let so = t.rw();
    assert_eq!(login(&t.raw, so, CKU_SO, SO_PIN), CKR_OK, "C_Login SO");
    let mut new_cu = b"other:otherpass1".to_vec();
    let init_pin = ck!(
        t.raw,
        C_InitPIN(so, new_cu.as_mut_ptr(), new_cu.len() as CK_ULONG)
    );
    assert_eq!(ck!(t.raw, C_CloseSession(so)), CKR_OK);

    let s = t.user_session();
    let mut old = t.user_pin().into_bytes();
    let mut new = format!("{}-new", t.user_pin()).into_bytes();
    let set_pin = ck!(
        t.raw,
        C_SetPIN(
            s,
            old.as_mut_ptr(),
            old.len() as CK_ULONG,
            new.as_mut_ptr(),
            new.len() as CK_ULONG
        )
    );

    let key = aes_key(&t.raw, s, true, Tmpl::new().bool(CKA_SENSITIVE, false));
    let mut copy_t = Tmpl::new().bytes(CKA_LABEL, b"copy");
    let mut a = copy_t.ck();
    let mut copy: H = 0;
    let copy_rv = ck!(
        t.raw,
        C_CopyObject(s, key, a.as_mut_ptr(), a.len() as CK_ULONG, &mut copy)
    );
    let mut set_t = Tmpl::new().bytes(CKA_LABEL, b"renamed");
    let mut a = set_t.ck();
    let set_attr = ck!(
        t.raw,
        C_SetAttributeValue(s, key, a.as_mut_ptr(), a.len() as CK_ULONG)
    );
    let mut m = Mech::new(CKM_SHA256).ck();
    assert_eq!(ck!(t.raw, C_DigestInit(s, &mut m)), CKR_OK, "C_DigestInit");
    let digest_key = ck!(t.raw, C_DigestKey(s, key));
    [init_pin, set_pin, copy_rv, set_attr, digest_key]
}

// ---------------------------------------------------------------------------------------
// Sessions per application

/// ulMaxSessionCount is 1,024 and the 1,025th C_OpenSession fails with CKR_SESSION_COUNT;
/// closing one makes room again.
#[test]
fn session_limit_1024() {
    isolated("session_limit_1024", || {
        let t = Token::new(Profile::CloudHsm);
        assert_eq!(token_info(&t.raw, t.slot).ulMaxSessionCount, 1024);
        let sessions: Vec<S> = (0..1024)
            .map(|i| {
                open_session(&t.raw, t.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
                    .unwrap_or_else(|rv| panic!("session {}: {}", i + 1, rv_name(rv)))
            })
            .collect();
        let info = token_info(&t.raw, t.slot);
        assert_eq!(info.ulSessionCount, 1024);
        let rv = open_session(&t.raw, t.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
            .expect_err("the 1025th session");
        assert_eq!(rv, CKR_SESSION_COUNT, "{}", rv_name(rv));
        assert_eq!(ck!(t.raw, C_CloseSession(sessions[0])), CKR_OK);
        let extra = open_session(&t.raw, t.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
            .unwrap_or_else(|rv| panic!("after closing one: {}", rv_name(rv)));
        assert_eq!(ck!(t.raw, C_CloseSession(extra)), CKR_OK);
        assert_eq!(ck!(t.raw, C_CloseAllSessions(t.slot)), CKR_OK);
    });
}

#[test]
fn standard_profile_has_no_session_limit() {
    isolated("standard_profile_has_no_session_limit", || {
        let t = Token::new(Profile::Standard);
        assert_eq!(
            token_info(&t.raw, t.slot).ulMaxSessionCount,
            CK_EFFECTIVELY_INFINITE
        );
        for i in 0..1025 {
            open_session(&t.raw, t.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
                .unwrap_or_else(|rv| panic!("session {}: {}", i + 1, rv_name(rv)));
        }
        assert_eq!(ck!(t.raw, C_CloseAllSessions(t.slot)), CKR_OK);
    });
}

// ---------------------------------------------------------------------------------------
// A cloudhsm cluster made by the CLI

/// `clusterhsm cluster create --profile cloudhsm --label t` then C_InitToken on its slot
/// (as the CLI's own message says) gives a cloudhsm-profile token.
#[test]
fn cli_created_cloudhsm_cluster() {
    isolated("cli_created_cloudhsm_cluster", || {
        let out = cli_ok(&["cluster", "create", "--profile", "cloudhsm", "--label", "t"]);
        assert!(out.contains("cloudhsm"), "{out}");
        let raw = Raw::load();
        assert_eq!(raw.initialize(), CKR_OK);
        let listed = slots(&raw);
        assert_eq!(
            listed.len(),
            1,
            "exactly one slot once a cluster exists: {listed:?}"
        );
        let slot = listed[0];
        let rv = init_token(&raw, slot, SO_PIN);
        assert_eq!(
            rv,
            CKR_OK,
            "C_InitToken on the CLI's cluster: {}",
            rv_name(rv)
        );
        let info = token_info(&raw, slot);
        assert!(info.flags & CKF_TOKEN_INITIALIZED != 0);
        assert_eq!(&info.label[..4], b"test");
        assert_eq!(info.ulMaxSessionCount, 1024, "the cloudhsm profile");
        let rv = open_session(&raw, slot, CKF_SERIAL_SESSION).expect_err("R/O session");
        assert_eq!(rv, CKR_FUNCTION_FAILED);
        // The CO from C_InitToken manages users with the CLI.
        let t = Token {
            raw,
            slot,
            profile: Profile::CloudHsm,
        };
        t.add_default_cu();
        let s = t.user_session();
        assert_eq!(ck!(t.raw, C_CloseSession(s)), CKR_OK);
    });
}

// ---------------------------------------------------------------------------------------
// Per-mechanism data-size limits (AWS CloudHSM User Guide, "Supported mechanisms for the
// PKCS #11 library": maximum data size for each mechanism; AES-CBC 16,272 bytes).

#[test]
fn data_size_limits() {
    isolated("data_size_limits", || {
        let t = Token::new(Profile::CloudHsm);
        let s = t.user_session();
        let k = aes_key(&t.raw, s, false, Tmpl::new());
        let iv = [0u8; 16];
        let at_limit = vec![7u8; 16_272];
        let over = vec![7u8; 16_272 + 16];
        t.raw
            .encrypt(s, &mut Mech::bytes(CKM_AES_CBC, &iv), k, &at_limit)
            .unwrap_or_else(|rv| panic!("16,272 bytes of AES-CBC: {}", rv_name(rv)));
        assert_eq!(
            t.raw
                .encrypt(s, &mut Mech::bytes(CKM_AES_CBC, &iv), k, &over)
                .map_err(rv_name),
            Err(rv_name(CKR_DATA_LEN_RANGE)),
            "over CloudHSM's AES-CBC limit"
        );
    });
}

#[test]
fn standard_profile_has_no_data_size_limits() {
    isolated("standard_profile_has_no_data_size_limits", || {
        let t = Token::new(Profile::Standard);
        let s = t.user_session();
        let k = aes_key(&t.raw, s, false, Tmpl::new());
        let iv = [0u8; 16];
        t.raw
            .encrypt(s, &mut Mech::bytes(CKM_AES_CBC, &iv), k, &vec![7u8; 65_536])
            .unwrap_or_else(|rv| panic!("64 KiB of AES-CBC: {}", rv_name(rv)));
    });
}

//! Registry-driven mechanism coverage: every mechanism C_GetMechanismList reports is run,
//! for every operation flag C_GetMechanismInfo claims, at the smallest and largest key
//! size it reports, and the results are cross-checked against independent
//! implementations (rsa, p256, ed25519-dalek, sha1/sha2/sha3, hmac) or published
//! known-answer vectors.
//!
//! The mechanism walk uses raw function pointers: cryptoki 0.12's `get_mechanism_list`
//! silently drops mechanism numbers it has no name for (SHA-3, *_HMAC_GENERAL, X9.31 key
//! generation, ...) and its `Mechanism` type cannot carry them, so it could not see or
//! run the whole registry. Token setup and login still go through cryptoki.
//!
//! Key sizes: RSA reports 1024..8192 bits; we run 1024 and 4096 (not 8192) to keep the
//! suite fast, and generate the 4096-bit key once. X9.31 key generation runs at 1024 and
//! 2048 for the same reason. EC reports 256..521: P-256 and P-521. AES 128 and 256 bits.
//! HMAC keys 1 and 512 bytes (plus the RFC key), generic secrets 1 and 512 bytes.

// `ck!` (tests/common/raw.rs) evaluates its arguments inside its unsafe block on purpose:
// every use is a raw FFI call.
#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Mech, Raw, Tmpl, H, S};
use common::*;
use cryptoki_sys::*;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

/// The operation flags the table must account for.
const OP_FLAGS: CK_FLAGS = CKF_ENCRYPT
    | CKF_DECRYPT
    | CKF_DIGEST
    | CKF_SIGN
    | CKF_SIGN_RECOVER
    | CKF_VERIFY
    | CKF_VERIFY_RECOVER
    | CKF_GENERATE
    | CKF_GENERATE_KEY_PAIR
    | CKF_WRAP
    | CKF_UNWRAP
    | CKF_DERIVE;
const ENC: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT;
const SIG: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
const REC: CK_FLAGS = CKF_SIGN_RECOVER | CKF_VERIFY_RECOVER;
const WRAP: CK_FLAGS = CKF_WRAP | CKF_UNWRAP;

const RSA_TEST_MAX_BITS: CK_ULONG = 4096;
/// PKCS#11 3.0's SP 800-108 counter KDF and CloudHSM's vendor form (its header).
const CKM_SP800_108_COUNTER_KDF: CK_MECHANISM_TYPE = 0x3ac;
const CKM_SP800_108_COUNTER_KDF_CLOUDHSM: CK_MECHANISM_TYPE = 0x8000_0001;
/// AWS CloudHSM's published vendor mechanism values.
const CKM_CLOUDHSM_AES_GCM: CK_MECHANISM_TYPE = 0x8000_1087;
const CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD: CK_MECHANISM_TYPE = 0x8000_2109;
const CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD: CK_MECHANISM_TYPE = 0x8000_210A;
const CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD: CK_MECHANISM_TYPE = 0x8000_216F;

fn hx(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
    fn ckm(self) -> CK_MECHANISM_TYPE {
        match self {
            Hash::Sha1 => CKM_SHA_1,
            Hash::Sha224 => CKM_SHA224,
            Hash::Sha256 => CKM_SHA256,
            Hash::Sha384 => CKM_SHA384,
            Hash::Sha512 => CKM_SHA512,
        }
    }
    fn mgf(self) -> CK_RSA_PKCS_MGF_TYPE {
        match self {
            Hash::Sha1 => CKG_MGF1_SHA1,
            Hash::Sha224 => CKG_MGF1_SHA224,
            Hash::Sha256 => CKG_MGF1_SHA256,
            Hash::Sha384 => CKG_MGF1_SHA384,
            Hash::Sha512 => CKG_MGF1_SHA512,
        }
    }
    fn len(self) -> usize {
        self.digest(b"").len()
    }
    fn pkcs1(self) -> rsa::Pkcs1v15Sign {
        match self {
            Hash::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
            Hash::Sha224 => rsa::Pkcs1v15Sign::new::<sha2::Sha224>(),
            Hash::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            Hash::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            Hash::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }
    fn pss(self, salt: usize) -> rsa::Pss {
        match self {
            Hash::Sha1 => rsa::Pss::new_with_salt::<sha1::Sha1>(salt),
            Hash::Sha224 => rsa::Pss::new_with_salt::<sha2::Sha224>(salt),
            Hash::Sha256 => rsa::Pss::new_with_salt::<sha2::Sha256>(salt),
            Hash::Sha384 => rsa::Pss::new_with_salt::<sha2::Sha384>(salt),
            Hash::Sha512 => rsa::Pss::new_with_salt::<sha2::Sha512>(salt),
        }
    }
}

/// EC curves by CKA_EC_PARAMS (DER OID).
const P256: &str = "06082a8648ce3d030107";
const P521: &str = "06052b81040023";

struct Ctx {
    raw: Raw,
    s: S,
    slot: CK_SLOT_ID,
    rsa: HashMap<CK_ULONG, (H, H)>,
    ec: HashMap<&'static str, (H, H)>,
}

fn info(raw: &Raw, slot: CK_SLOT_ID, m: CK_MECHANISM_TYPE) -> CK_MECHANISM_INFO {
    let mut i = CK_MECHANISM_INFO::default();
    let rv = ck!(raw, C_GetMechanismInfo(slot, m, &mut i));
    assert_eq!(rv, CKR_OK, "C_GetMechanismInfo(0x{m:x}): {}", rv_name(rv));
    i
}

#[track_caller]
fn ok<T>(r: Result<T, CK_RV>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {}", rv_name(e)),
    }
}

impl Ctx {
    fn rsa_sizes(&self, m: CK_MECHANISM_TYPE) -> Vec<CK_ULONG> {
        let i = info(&self.raw, self.slot, m);
        vec![i.ulMinKeySize, i.ulMaxKeySize.min(RSA_TEST_MAX_BITS)]
    }

    fn rsa_pair_with(&self, gen: CK_MECHANISM_TYPE, bits: CK_ULONG) -> (H, H) {
        let mut public = Tmpl::new()
            .bool(CKA_TOKEN, false)
            .ulong(CKA_MODULUS_BITS, bits)
            .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1])
            .bool(CKA_ENCRYPT, true)
            .bool(CKA_VERIFY, true)
            .bool(CKA_VERIFY_RECOVER, true)
            .bool(CKA_WRAP, true);
        let mut private = Tmpl::new()
            .bool(CKA_TOKEN, false)
            .bool(CKA_PRIVATE, true)
            .bool(CKA_SENSITIVE, true)
            .bool(CKA_DECRYPT, true)
            .bool(CKA_SIGN, true)
            .bool(CKA_SIGN_RECOVER, true)
            .bool(CKA_UNWRAP, true);
        let pair = ok(
            self.raw
                .generate_key_pair(self.s, &mut Mech::new(gen), &mut public, &mut private),
            &format!("C_GenerateKeyPair(0x{gen:x}, {bits} bits)"),
        );
        assert_eq!(
            ok(self.raw.get_ulong(self.s, pair.0, CKA_MODULUS_BITS), "bits"),
            bits
        );
        assert_eq!(
            ok(self.raw.get_attr(self.s, pair.0, CKA_MODULUS), "n").len() * 8,
            bits as usize
        );
        pair
    }

    /// The RSA pair of this size made with CKM_RSA_PKCS_KEY_PAIR_GEN (made once).
    fn rsa(&mut self, bits: CK_ULONG) -> (H, H) {
        if let Some(p) = self.rsa.get(&bits) {
            return *p;
        }
        let p = self.rsa_pair_with(CKM_RSA_PKCS_KEY_PAIR_GEN, bits);
        self.rsa.insert(bits, p);
        p
    }

    fn rsa_public(&self, public: H) -> rsa::RsaPublicKey {
        let n = ok(self.raw.get_attr(self.s, public, CKA_MODULUS), "n");
        let e = ok(self.raw.get_attr(self.s, public, CKA_PUBLIC_EXPONENT), "e");
        rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&n),
            rsa::BigUint::from_bytes_be(&e),
        )
        .expect("module's RSA public key")
    }

    fn ec(&mut self, curve: &'static str) -> (H, H) {
        if let Some(p) = self.ec.get(curve) {
            return *p;
        }
        let mut public = Tmpl::new()
            .bool(CKA_TOKEN, false)
            .bytes(CKA_EC_PARAMS, &hx(curve))
            .bool(CKA_VERIFY, true);
        let mut private = Tmpl::new()
            .bool(CKA_TOKEN, false)
            .bool(CKA_PRIVATE, true)
            .bool(CKA_SIGN, true);
        let p = ok(
            self.raw.generate_key_pair(
                self.s,
                &mut Mech::new(CKM_EC_KEY_PAIR_GEN),
                &mut public,
                &mut private,
            ),
            "C_GenerateKeyPair(EC)",
        );
        self.ec.insert(curve, p);
        p
    }

    /// The uncompressed point from CKA_EC_POINT (a DER OCTET STRING).
    fn ec_point(&self, public: H) -> Vec<u8> {
        der_octets(&ok(
            self.raw.get_attr(self.s, public, CKA_EC_POINT),
            "EC point",
        ))
    }

    /// A session secret key with a known value, usable for everything, extractable.
    fn secret(&self, key_type: CK_KEY_TYPE, value: &[u8]) -> H {
        let mut t = Tmpl::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, key_type)
            .bool(CKA_TOKEN, false)
            .bool(CKA_SENSITIVE, false)
            .bool(CKA_EXTRACTABLE, true)
            .bool(CKA_ENCRYPT, true)
            .bool(CKA_DECRYPT, true)
            .bool(CKA_SIGN, true)
            .bool(CKA_VERIFY, true)
            .bool(CKA_WRAP, true)
            .bool(CKA_UNWRAP, true)
            .bytes(CKA_VALUE, value);
        ok(
            self.raw.create_object(self.s, &mut t),
            "C_CreateObject(secret)",
        )
    }

    fn value(&self, key: H) -> Vec<u8> {
        ok(self.raw.get_attr(self.s, key, CKA_VALUE), "CKA_VALUE")
    }

    /// Sign + verify through the module, a tampered signature rejected.
    fn sign_verify(&self, m: &mut Mech, private: H, public: H, data: &[u8]) -> Vec<u8> {
        let what = format!("mechanism 0x{:x}", m.ty());
        let sig = ok(
            self.raw.sign(self.s, m, private, data),
            &format!("C_Sign {what}"),
        );
        ok(
            self.raw.verify(self.s, m, public, data, &sig),
            &format!("C_Verify {what}"),
        );
        let mut bad = sig.clone();
        bad[0] ^= 1;
        let r = self.raw.verify(self.s, m, public, data, &bad);
        assert!(
            r == Err(CKR_SIGNATURE_INVALID),
            "C_Verify of a tampered signature ({what}): {:?}",
            r.map_err(rv_name)
        );
        sig
    }
}

/// Strips a DER OCTET STRING header.
fn der_octets(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x04, "OCTET STRING");
    let (len, off) = match der[1] {
        l if l < 0x80 => (l as usize, 2),
        0x81 => (der[2] as usize, 3),
        0x82 => (((der[2] as usize) << 8) | der[3] as usize, 4),
        l => panic!("length form {l:x}"),
    };
    assert_eq!(der.len(), off + len);
    der[off..].to_vec()
}

/// How each mechanism is exercised: the operation flags it covers and the runner.
type Runner = fn(&mut Ctx, CK_MECHANISM_TYPE);

fn table(m: CK_MECHANISM_TYPE) -> Option<(CK_FLAGS, Runner)> {
    Some(match m {
        CKM_RSA_PKCS_KEY_PAIR_GEN => (CKF_GENERATE_KEY_PAIR, rsa_keygen),
        CKM_RSA_X9_31_KEY_PAIR_GEN => (CKF_GENERATE_KEY_PAIR, rsa_x931_keygen),
        CKM_RSA_PKCS => (ENC | SIG | REC | WRAP, rsa_pkcs),
        CKM_RSA_X_509 => (ENC | SIG | REC, rsa_x509),
        CKM_RSA_PKCS_OAEP => (ENC | WRAP, rsa_oaep),
        CKM_RSA_AES_KEY_WRAP => (WRAP, rsa_aes_key_wrap),
        CKM_RSA_PKCS_PSS => (SIG, rsa_pss_raw),
        CKM_SHA1_RSA_PKCS | CKM_SHA224_RSA_PKCS | CKM_SHA256_RSA_PKCS | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS => (SIG, rsa_pkcs_hashed),
        CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => (SIG, rsa_pss_hashed),
        CKM_DES3_KEY_GEN => (CKF_GENERATE, des3_keygen),
        CKM_DES3_ECB | CKM_DES3_CBC | CKM_DES3_CBC_PAD => (ENC, des3_modes),
        CKM_SHA_1 | CKM_SHA224 | CKM_SHA256 | CKM_SHA384 | CKM_SHA512 | CKM_SHA3_224
        | CKM_SHA3_256 | CKM_SHA3_384 | CKM_SHA3_512 => (CKF_DIGEST, digest),
        CKM_SHA_1_HMAC | CKM_SHA224_HMAC | CKM_SHA256_HMAC | CKM_SHA384_HMAC | CKM_SHA512_HMAC
        | CKM_SHA3_224_HMAC | CKM_SHA3_256_HMAC | CKM_SHA3_384_HMAC | CKM_SHA3_512_HMAC => {
            (SIG, hmac)
        }
        CKM_SHA_1_HMAC_GENERAL
        | CKM_SHA224_HMAC_GENERAL
        | CKM_SHA256_HMAC_GENERAL
        | CKM_SHA384_HMAC_GENERAL
        | CKM_SHA512_HMAC_GENERAL => (SIG, hmac),
        CKM_GENERIC_SECRET_KEY_GEN => (CKF_GENERATE, generic_keygen),
        CKM_EC_KEY_PAIR_GEN => (CKF_GENERATE_KEY_PAIR, ec_keygen),
        CKM_ECDSA | CKM_ECDSA_SHA1 | CKM_ECDSA_SHA224 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512 => (SIG, ecdsa),
        CKM_EC_EDWARDS_KEY_PAIR_GEN => (CKF_GENERATE_KEY_PAIR, eddsa),
        CKM_EDDSA => (SIG, eddsa),
        CKM_AES_KEY_GEN => (CKF_GENERATE, aes_keygen),
        CKM_AES_ECB | CKM_AES_CBC | CKM_AES_CTR => (ENC, aes_modes),
        CKM_AES_GCM => (ENC | WRAP, aes_gcm_with_wrap),
        CKM_CLOUDHSM_AES_GCM => (ENC | WRAP, cloudhsm_gcm),
        CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD
        | CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD
        | CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD => (WRAP, cloudhsm_kw),
        CKM_AES_CBC_PAD => (ENC | WRAP, aes_modes),
        CKM_AES_CMAC | CKM_AES_CMAC_GENERAL => (SIG, aes_cmac),
        CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_PAD => (WRAP, aes_key_wrap),
        CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => (CKF_DERIVE, ecdh),
        CKM_EC_MONTGOMERY_KEY_PAIR_GEN => (CKF_GENERATE_KEY_PAIR, x25519),
        CKM_HKDF_DERIVE => (CKF_DERIVE, hkdf),
        CKM_AES_ECB_ENCRYPT_DATA | CKM_AES_CBC_ENCRYPT_DATA => (CKF_DERIVE, aes_encrypt_data),
        CKM_SP800_108_COUNTER_KDF | CKM_SP800_108_COUNTER_KDF_CLOUDHSM => (CKF_DERIVE, kbkdf),
        _ => return None,
    })
}

// ---------------------------------------------------------------- RSA

fn rsa_keygen(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    for bits in c.rsa_sizes(m) {
        let (public, private) = c.rsa(bits);
        assert_eq!(
            ok(
                c.raw.get_ulong(c.s, private, CKA_KEY_GEN_MECHANISM),
                "gen mech"
            ),
            m
        );
        // The pair works together and the public half is a valid RSA key.
        let sig = c.sign_verify(&mut Mech::new(CKM_SHA256_RSA_PKCS), private, public, b"kg");
        c.rsa_public(public)
            .verify(Hash::Sha256.pkcs1(), &Hash::Sha256.digest(b"kg"), &sig)
            .expect("rsa crate verifies");
    }
}

fn rsa_x931_keygen(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    // 1024 (the reported minimum) and 2048: one 4096-bit generation is enough per run.
    let i = info(&c.raw, c.slot, m);
    assert!(i.ulMaxKeySize >= 2048);
    for bits in [i.ulMinKeySize, 2048] {
        let (public, private) = c.rsa_pair_with(m, bits);
        let sig = c.sign_verify(
            &mut Mech::new(CKM_SHA256_RSA_PKCS),
            private,
            public,
            b"x931",
        );
        c.rsa_public(public)
            .verify(Hash::Sha256.pkcs1(), &Hash::Sha256.digest(b"x931"), &sig)
            .expect("rsa crate verifies");
    }
}

/// RSA wrap/unwrap of an AES key; the unwrapped value must equal the original.
fn rsa_wrap_roundtrip(c: &mut Ctx, mech: &dyn Fn() -> Mech, public: H, private: H) {
    let value = hx("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let target = c.secret(CKK_AES, &value);
    let wrapped = ok(
        c.raw.wrap(c.s, &mut mech(), public, target),
        "C_WrapKey(RSA)",
    );
    let mut t = Tmpl::new()
        .ulong(CKA_CLASS, CKO_SECRET_KEY)
        .ulong(CKA_KEY_TYPE, CKK_AES)
        .bool(CKA_TOKEN, false)
        .bool(CKA_SENSITIVE, false)
        .bool(CKA_EXTRACTABLE, true);
    let back = ok(
        c.raw.unwrap(c.s, &mut mech(), private, &wrapped, &mut t),
        "C_UnwrapKey(RSA)",
    );
    assert_eq!(c.value(back), value);
}

fn rsa_pkcs(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let mut rng = rand::thread_rng();
    for bits in c.rsa_sizes(m) {
        let (public, private) = c.rsa(bits);
        let pk = c.rsa_public(public);
        // Encrypt: module → module, and rsa crate → module.
        let msg = b"PKCS#1 v1.5 message";
        let ct = ok(
            c.raw.encrypt(c.s, &mut Mech::new(m), public, msg),
            "C_Encrypt",
        );
        assert_eq!(ct.len() * 8, bits as usize);
        assert_eq!(
            ok(
                c.raw.decrypt(c.s, &mut Mech::new(m), private, &ct),
                "C_Decrypt"
            ),
            msg
        );
        let ct2 = pk.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, msg).unwrap();
        assert_eq!(
            ok(
                c.raw.decrypt(c.s, &mut Mech::new(m), private, &ct2),
                "C_Decrypt"
            ),
            msg
        );
        // Sign a DigestInfo; the rsa crate checks it as SHA-256 PKCS#1 v1.5.
        let digest = Hash::Sha256.digest(b"signed");
        let mut info = hx("3031300d060960864801650304020105000420");
        info.extend(&digest);
        let sig = c.sign_verify(&mut Mech::new(m), private, public, &info);
        pk.verify(Hash::Sha256.pkcs1(), &digest, &sig)
            .expect("rsa crate verifies CKM_RSA_PKCS");
        // Sign-recover / verify-recover give the data back.
        let rec = ok(
            c.raw
                .sign_recover(c.s, &mut Mech::new(m), private, b"recover me"),
            "C_SignRecover",
        );
        assert_eq!(rec, sig_for(c, m, private, b"recover me"));
        assert_eq!(
            ok(
                c.raw.verify_recover(c.s, &mut Mech::new(m), public, &rec),
                "C_VerifyRecover"
            ),
            b"recover me"
        );
        rsa_wrap_roundtrip(c, &|| Mech::new(m), public, private);
    }
}

fn sig_for(c: &Ctx, m: CK_MECHANISM_TYPE, key: H, data: &[u8]) -> Vec<u8> {
    ok(c.raw.sign(c.s, &mut Mech::new(m), key, data), "C_Sign")
}

fn rsa_x509(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    use rsa::traits::PublicKeyParts;
    for bits in c.rsa_sizes(m) {
        let (public, private) = c.rsa(bits);
        let pk = c.rsa_public(public);
        let k = bits as usize / 8;
        let mut msg = vec![0u8; k];
        msg[1..]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = i as u8 | 1);
        let x = rsa::BigUint::from_bytes_be(&msg);
        // Raw encryption: c = m^e mod n, compared with our own computation.
        let ct = ok(
            c.raw.encrypt(c.s, &mut Mech::new(m), public, &msg),
            "C_Encrypt",
        );
        let want = x.modpow(pk.e(), pk.n()).to_bytes_be();
        assert_eq!(rsa::BigUint::from_bytes_be(&ct).to_bytes_be(), want);
        let pt = ok(
            c.raw.decrypt(c.s, &mut Mech::new(m), private, &ct),
            "C_Decrypt",
        );
        assert_eq!(pt, msg);
        // Raw signature: s^e mod n gives the message back.
        let sig = c.sign_verify(&mut Mech::new(m), private, public, &msg);
        assert_eq!(rsa::BigUint::from_bytes_be(&sig).modpow(pk.e(), pk.n()), x);
        let rec = ok(
            c.raw.sign_recover(c.s, &mut Mech::new(m), private, &msg),
            "C_SignRecover",
        );
        let back = ok(
            c.raw.verify_recover(c.s, &mut Mech::new(m), public, &rec),
            "C_VerifyRecover",
        );
        assert_eq!(rsa::BigUint::from_bytes_be(&back), x);
    }
}

fn oaep_params(h: Hash) -> CK_RSA_PKCS_OAEP_PARAMS {
    CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: h.ckm(),
        mgf: h.mgf(),
        source: CKZ_DATA_SPECIFIED,
        pSourceData: null_mut(),
        ulSourceDataLen: 0,
    }
}

fn rsa_oaep(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let mut rng = rand::thread_rng();
    for bits in c.rsa_sizes(m) {
        let (public, private) = c.rsa(bits);
        let pk = c.rsa_public(public);
        for h in [Hash::Sha1, Hash::Sha256] {
            let mech = || Mech::with(m, &oaep_params(h));
            let msg = b"OAEP message";
            let ct = ok(
                c.raw.encrypt(c.s, &mut mech(), public, msg),
                "C_Encrypt(OAEP)",
            );
            assert_eq!(
                ok(
                    c.raw.decrypt(c.s, &mut mech(), private, &ct),
                    "C_Decrypt(OAEP)"
                ),
                msg
            );
            // Ciphertext from the rsa crate decrypts in the module.
            let scheme = match h {
                Hash::Sha1 => rsa::Oaep::new::<sha1::Sha1>(),
                _ => rsa::Oaep::new::<sha2::Sha256>(),
            };
            let ct2 = pk.encrypt(&mut rng, scheme, msg).unwrap();
            assert_eq!(
                ok(
                    c.raw.decrypt(c.s, &mut mech(), private, &ct2),
                    "C_Decrypt(OAEP)"
                ),
                msg
            );
        }
        rsa_wrap_roundtrip(
            c,
            &|| Mech::with(m, &oaep_params(Hash::Sha256)),
            public,
            private,
        );
    }
}

/// The largest salt (at most the hash length) that fits the key.
fn pss_salt(bits: CK_ULONG, h: Hash) -> usize {
    let em_len = (bits as usize - 1).div_ceil(8);
    h.len().min(em_len - h.len() - 2)
}

fn pss_params(h: Hash, salt: usize) -> CK_RSA_PKCS_PSS_PARAMS {
    CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: h.ckm(),
        mgf: h.mgf(),
        sLen: salt as CK_ULONG,
    }
}

fn rsa_pss_raw(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    for bits in c.rsa_sizes(m) {
        let (public, private) = c.rsa(bits);
        let h = Hash::Sha256;
        let salt = pss_salt(bits, h);
        let digest = h.digest(b"pss");
        let sig = c.sign_verify(
            &mut Mech::with(m, &pss_params(h, salt)),
            private,
            public,
            &digest,
        );
        c.rsa_public(public)
            .verify(h.pss(salt), &digest, &sig)
            .expect("rsa crate verifies CKM_RSA_PKCS_PSS");
    }
}

fn hash_of_rsa(m: CK_MECHANISM_TYPE) -> Hash {
    match m {
        CKM_SHA1_RSA_PKCS | CKM_SHA1_RSA_PKCS_PSS | CKM_ECDSA_SHA1 => Hash::Sha1,
        CKM_SHA224_RSA_PKCS | CKM_SHA224_RSA_PKCS_PSS | CKM_ECDSA_SHA224 => Hash::Sha224,
        CKM_SHA256_RSA_PKCS | CKM_SHA256_RSA_PKCS_PSS | CKM_ECDSA_SHA256 => Hash::Sha256,
        CKM_SHA384_RSA_PKCS | CKM_SHA384_RSA_PKCS_PSS | CKM_ECDSA_SHA384 => Hash::Sha384,
        CKM_SHA512_RSA_PKCS | CKM_SHA512_RSA_PKCS_PSS | CKM_ECDSA_SHA512 => Hash::Sha512,
        _ => panic!("no hash for 0x{m:x}"),
    }
}

fn rsa_pkcs_hashed(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let h = hash_of_rsa(m);
    for bits in c.rsa_sizes(m) {
        let (public, private) = c.rsa(bits);
        let data = b"hash-and-sign message";
        let sig = c.sign_verify(&mut Mech::new(m), private, public, data);
        c.rsa_public(public)
            .verify(h.pkcs1(), &h.digest(data), &sig)
            .unwrap_or_else(|e| panic!("rsa crate rejects 0x{m:x}: {e}"));
        // Multi-part gives the same (deterministic) signature.
        let parts = ok(
            c.raw.sign_parts(
                c.s,
                &mut Mech::new(m),
                private,
                &[b"hash-and-", b"sign message"],
            ),
            "C_SignUpdate/Final",
        );
        assert_eq!(parts, sig);
        ok(
            c.raw.verify_parts(
                c.s,
                &mut Mech::new(m),
                public,
                &[b"hash-and-sign", b" message"],
                &sig,
            ),
            "C_VerifyUpdate/Final",
        );
    }
}

fn rsa_pss_hashed(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let h = hash_of_rsa(m);
    for bits in c.rsa_sizes(m) {
        let (public, private) = c.rsa(bits);
        let salt = pss_salt(bits, h);
        let data = b"pss message";
        let sig = c.sign_verify(
            &mut Mech::with(m, &pss_params(h, salt)),
            private,
            public,
            data,
        );
        c.rsa_public(public)
            .verify(h.pss(salt), &h.digest(data), &sig)
            .unwrap_or_else(|e| panic!("rsa crate rejects 0x{m:x}: {e}"));
    }
}

// ---------------------------------------------------------------- 3DES

fn des3_keygen(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let mut t = Tmpl::new()
        .bool(CKA_TOKEN, false)
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_DECRYPT, true);
    let k = ok(
        c.raw.generate_key(c.s, &mut Mech::new(m), &mut t),
        "C_GenerateKey(DES3)",
    );
    assert_eq!(ok(c.raw.get_ulong(c.s, k, CKA_KEY_TYPE), "type"), CKK_DES3);
    let ct = ok(
        c.raw
            .encrypt(c.s, &mut Mech::new(CKM_DES3_ECB), k, &[7; 16]),
        "3DES",
    );
    assert_eq!(
        ok(
            c.raw.decrypt(c.s, &mut Mech::new(CKM_DES3_ECB), k, &ct),
            "3DES"
        ),
        [7; 16]
    );
}

fn des3_modes(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    // NIST SP 800-67 Rev. 1 (TDEA) example: three distinct keys, ECB.
    let key = c.secret(
        CKK_DES3,
        &hx("0123456789ABCDEF 23456789ABCDEF01 456789ABCDEF0123"),
    );
    let plain = b"The qufck brown fox jump".to_vec();
    let ecb = hx("A826FD8CE53B855F CCE21C8112256FE6 68D5C05DD9B6B900");
    let iv = hx("0001020304050607");
    let xor = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| x ^ y).collect::<Vec<u8>>();
    let ecb_block = |c: &Ctx, b: &[u8]| {
        ok(
            c.raw.encrypt(c.s, &mut Mech::new(CKM_DES3_ECB), key, b),
            "3DES-ECB",
        )
    };
    let (mech, want) = match m {
        CKM_DES3_ECB => (Mech::new(m), ecb.clone()),
        _ => {
            // CBC from the ECB known answer: C_i = E(P_i xor C_{i-1}), C_0 = IV.
            let mut prev = iv.clone();
            let mut want = Vec::new();
            for block in plain.chunks(8) {
                prev = ecb_block(c, &xor(block, &prev));
                want.extend(&prev);
            }
            if m == CKM_DES3_CBC_PAD {
                want.extend(ecb_block(c, &xor(&[8; 8], &prev)));
            }
            (Mech::bytes(m, &iv), want)
        }
    };
    let _ = mech;
    let mk = || match m {
        CKM_DES3_ECB => Mech::new(m),
        _ => Mech::bytes(m, &iv),
    };
    let ct = ok(c.raw.encrypt(c.s, &mut mk(), key, &plain), "3DES encrypt");
    assert_eq!(hex::encode(&ct), hex::encode(&want), "mechanism 0x{m:x}");
    assert_eq!(
        ok(c.raw.decrypt(c.s, &mut mk(), key, &ct), "3DES decrypt"),
        plain
    );
    let parts = ok(
        c.raw
            .encrypt_parts(c.s, &mut mk(), key, &[&plain[..8], &plain[8..]]),
        "3DES multi-part",
    );
    assert_eq!(parts, want);
}

// ---------------------------------------------------------------- digests and HMAC

fn digest(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    use sha3::Digest;
    let want = match m {
        CKM_SHA_1 => Hash::Sha1.digest(b"abc"),
        CKM_SHA224 => Hash::Sha224.digest(b"abc"),
        // FIPS 180-2 Appendix B.1: SHA-256("abc").
        CKM_SHA256 => hx("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        CKM_SHA384 => Hash::Sha384.digest(b"abc"),
        CKM_SHA512 => Hash::Sha512.digest(b"abc"),
        CKM_SHA3_224 => sha3::Sha3_224::digest(b"abc").to_vec(),
        CKM_SHA3_256 => sha3::Sha3_256::digest(b"abc").to_vec(),
        CKM_SHA3_384 => sha3::Sha3_384::digest(b"abc").to_vec(),
        CKM_SHA3_512 => sha3::Sha3_512::digest(b"abc").to_vec(),
        _ => unreachable!(),
    };
    assert_eq!(
        hex::encode(ok(c.raw.digest(c.s, &mut Mech::new(m), b"abc"), "C_Digest")),
        hex::encode(&want),
        "digest 0x{m:x}"
    );
    // Multi-part.
    let mut ck = Mech::new(m).ck();
    assert_eq!(ck!(c.raw, C_DigestInit(c.s, &mut ck)), CKR_OK);
    for part in [b"a".as_slice(), b"bc"] {
        let mut p = part.to_vec();
        assert_eq!(
            ck!(
                c.raw,
                C_DigestUpdate(c.s, p.as_mut_ptr(), p.len() as CK_ULONG)
            ),
            CKR_OK
        );
    }
    let mut out = [0u8; 64];
    let mut len = out.len() as CK_ULONG;
    assert_eq!(
        ck!(c.raw, C_DigestFinal(c.s, out.as_mut_ptr(), &mut len)),
        CKR_OK
    );
    assert_eq!(&out[..len as usize], &want[..]);
}

fn hmac_ref(m: CK_MECHANISM_TYPE, key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::{Mac, SimpleHmac};
    macro_rules! h {
        ($d:ty) => {{
            let mut mac = SimpleHmac::<$d>::new_from_slice(key).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }};
    }
    match m {
        CKM_SHA_1_HMAC | CKM_SHA_1_HMAC_GENERAL => h!(sha1::Sha1),
        CKM_SHA224_HMAC | CKM_SHA224_HMAC_GENERAL => h!(sha2::Sha224),
        CKM_SHA256_HMAC | CKM_SHA256_HMAC_GENERAL => h!(sha2::Sha256),
        CKM_SHA384_HMAC | CKM_SHA384_HMAC_GENERAL => h!(sha2::Sha384),
        CKM_SHA512_HMAC | CKM_SHA512_HMAC_GENERAL => h!(sha2::Sha512),
        CKM_SHA3_224_HMAC => h!(sha3::Sha3_224),
        CKM_SHA3_256_HMAC => h!(sha3::Sha3_256),
        CKM_SHA3_384_HMAC => h!(sha3::Sha3_384),
        CKM_SHA3_512_HMAC => h!(sha3::Sha3_512),
        _ => unreachable!(),
    }
}

fn hmac(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let general = matches!(
        m,
        CKM_SHA_1_HMAC_GENERAL
            | CKM_SHA224_HMAC_GENERAL
            | CKM_SHA256_HMAC_GENERAL
            | CKM_SHA384_HMAC_GENERAL
            | CKM_SHA512_HMAC_GENERAL
    );
    const OUT: CK_ULONG = 10;
    let mech = || {
        if general {
            Mech::with(m, &OUT)
        } else {
            Mech::new(m)
        }
    };
    let trim = |mut v: Vec<u8>| {
        if general {
            v.truncate(OUT as usize);
        }
        v
    };
    // RFC 4231 test case 2 (RFC 2202 test case 2 for SHA-1): key "Jefe".
    let data = b"what do ya want for nothing?";
    let rfc = match m {
        CKM_SHA_1_HMAC | CKM_SHA_1_HMAC_GENERAL => Some("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        CKM_SHA224_HMAC | CKM_SHA224_HMAC_GENERAL => {
            Some("a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44")
        }
        CKM_SHA256_HMAC | CKM_SHA256_HMAC_GENERAL => {
            Some("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        }
        CKM_SHA384_HMAC | CKM_SHA384_HMAC_GENERAL => Some(
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649",
        ),
        CKM_SHA512_HMAC | CKM_SHA512_HMAC_GENERAL => Some(
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ),
        _ => None,
    };
    let jefe = c.secret(CKK_GENERIC_SECRET, b"Jefe");
    let mac = c.sign_verify(&mut mech(), jefe, jefe, data);
    let reference = hmac_ref(m, b"Jefe", data);
    if let Some(rfc) = rfc {
        assert_eq!(hex::encode(&reference), rfc, "reference HMAC");
    }
    assert_eq!(hex::encode(&mac), hex::encode(trim(reference)), "0x{m:x}");
    // The reported key-size range (bytes), cross-checked with the hmac crate.
    let i = info(&c.raw, c.slot, m);
    for len in [i.ulMinKeySize, i.ulMaxKeySize] {
        let value: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
        let k = c.secret(CKK_GENERIC_SECRET, &value);
        let mac = c.sign_verify(&mut mech(), k, k, b"key size");
        assert_eq!(
            mac,
            trim(hmac_ref(m, &value, b"key size")),
            "0x{m:x} {len}-byte key"
        );
        let parts = ok(
            c.raw.sign_parts(c.s, &mut mech(), k, &[b"key ", b"size"]),
            "HMAC multi-part",
        );
        assert_eq!(parts, mac);
    }
}

fn generic_keygen(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let i = info(&c.raw, c.slot, m);
    for len in [i.ulMinKeySize, i.ulMaxKeySize] {
        let mut t = Tmpl::new()
            .bool(CKA_TOKEN, false)
            .bool(CKA_SIGN, true)
            .bool(CKA_VERIFY, true)
            .ulong(CKA_VALUE_LEN, len);
        let k = ok(
            c.raw.generate_key(c.s, &mut Mech::new(m), &mut t),
            "C_GenerateKey",
        );
        assert_eq!(ok(c.raw.get_ulong(c.s, k, CKA_VALUE_LEN), "len"), len);
        assert_eq!(
            ok(c.raw.get_ulong(c.s, k, CKA_KEY_TYPE), "type"),
            CKK_GENERIC_SECRET
        );
        c.sign_verify(&mut Mech::new(CKM_SHA256_HMAC), k, k, b"generic");
    }
}

// ---------------------------------------------------------------- EC

fn ec_keygen(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let i = info(&c.raw, c.slot, m);
    assert_eq!((i.ulMinKeySize, i.ulMaxKeySize), (256, 521));
    for (curve, len) in [(P256, 65), (P521, 133)] {
        let (public, private) = c.ec(curve);
        let point = c.ec_point(public);
        assert_eq!((point.len(), point[0]), (len, 4), "uncompressed point");
        assert_eq!(
            ok(c.raw.get_attr(c.s, private, CKA_EC_PARAMS), "params"),
            hx(curve)
        );
        if curve == P256 {
            p256::PublicKey::from_sec1_bytes(&point).expect("a P-256 point");
        }
    }
}

fn ecdsa(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let data = b"ecdsa message";
    let (hashed, input) = match m {
        CKM_ECDSA => (Hash::Sha256.digest(data), Hash::Sha256.digest(data)),
        _ => (hash_of_rsa(m).digest(data), data.to_vec()),
    };
    for (curve, sig_len) in [(P256, 64), (P521, 132)] {
        let (public, private) = c.ec(curve);
        let sig = c.sign_verify(&mut Mech::new(m), private, public, &input);
        assert_eq!(sig.len(), sig_len, "r||s length");
        if curve == P256 {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&c.ec_point(public)).unwrap();
            let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
            vk.verify_prehash(&hashed, &sig)
                .unwrap_or_else(|e| panic!("p256 rejects 0x{m:x}: {e}"));
        }
    }
}

fn eddsa(c: &mut Ctx, _m: CK_MECHANISM_TYPE) {
    let mut public = Tmpl::new().bool(CKA_TOKEN, false).bool(CKA_VERIFY, true);
    let mut private = Tmpl::new()
        .bool(CKA_TOKEN, false)
        .bool(CKA_PRIVATE, true)
        .bool(CKA_SIGN, true);
    let (pk, sk) = ok(
        c.raw.generate_key_pair(
            c.s,
            &mut Mech::new(CKM_EC_EDWARDS_KEY_PAIR_GEN),
            &mut public,
            &mut private,
        ),
        "C_GenerateKeyPair(Ed25519)",
    );
    let point: [u8; 32] = c.ec_point(pk).try_into().expect("32-byte Ed25519 key");
    let data = b"ed25519 message";
    let sig = c.sign_verify(&mut Mech::new(CKM_EDDSA), sk, pk, data);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&point).unwrap();
    vk.verify_strict(data, &ed25519_dalek::Signature::from_slice(&sig).unwrap())
        .expect("ed25519-dalek verifies");
}

// ---------------------------------------------------------------- AES

fn aes_keygen(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let i = info(&c.raw, c.slot, m);
    // PKCS#11 gives AES key sizes in bytes.
    assert_eq!(
        (i.ulMinKeySize, i.ulMaxKeySize),
        (16, 32),
        "AES key sizes are in bytes"
    );
    for bytes in [i.ulMinKeySize, i.ulMaxKeySize] {
        let mut t = Tmpl::new()
            .bool(CKA_TOKEN, false)
            .bool(CKA_ENCRYPT, true)
            .bool(CKA_DECRYPT, true)
            .ulong(CKA_VALUE_LEN, bytes);
        let k = ok(
            c.raw.generate_key(c.s, &mut Mech::new(m), &mut t),
            "C_GenerateKey(AES)",
        );
        assert_eq!(ok(c.raw.get_ulong(c.s, k, CKA_VALUE_LEN), "len"), bytes);
        let ct = ok(
            c.raw.encrypt(c.s, &mut Mech::new(CKM_AES_ECB), k, &[1; 32]),
            "ECB",
        );
        assert_eq!(
            ok(
                c.raw.decrypt(c.s, &mut Mech::new(CKM_AES_ECB), k, &ct),
                "ECB"
            ),
            [1; 32]
        );
    }
}

// NIST SP 800-38A, Appendix F: the AES-128 (F.x.1) and AES-256 (F.x.5) keys and the first
// two plaintext blocks.
const K128: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const K256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const PT: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51";
const IV: &str = "000102030405060708090a0b0c0d0e0f";
const CTR0: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

fn aes_kat(m: CK_MECHANISM_TYPE, key: &str) -> &'static str {
    match (m, key == K256) {
        // F.1.1 / F.1.5 ECB-AES{128,256}.Encrypt
        (CKM_AES_ECB, false) => "3ad77bb40d7a3660a89ecaf32466ef97 f5d3d58503b9699de785895a96fdbaaf",
        (CKM_AES_ECB, true) => "f3eed1bdb5d2a03c064b5a7e3db181f8 591ccb10d410ed26dc5ba74a31362870",
        // F.2.1 / F.2.5 CBC-AES{128,256}.Encrypt
        (CKM_AES_CBC | CKM_AES_CBC_PAD, false) => {
            "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2"
        }
        (CKM_AES_CBC | CKM_AES_CBC_PAD, true) => {
            "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d"
        }
        // F.5.1 / F.5.5 CTR-AES{128,256}.Encrypt
        (CKM_AES_CTR, false) => "874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff",
        (CKM_AES_CTR, true) => "601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5",
        _ => unreachable!(),
    }
}

fn aes_modes(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    if m == CKM_AES_GCM {
        return aes_gcm(c);
    }
    for key_hex in [K128, K256] {
        let key = c.secret(CKK_AES, &hx(key_hex));
        let mk = || match m {
            CKM_AES_ECB => Mech::new(m),
            CKM_AES_CTR => Mech::with(
                m,
                &CK_AES_CTR_PARAMS {
                    ulCounterBits: 128,
                    cb: hx(CTR0).try_into().unwrap(),
                },
            ),
            _ => Mech::bytes(m, &hx(IV)),
        };
        let pt = hx(PT);
        let want = hex::encode(hx(aes_kat(m, key_hex)));
        let ct = ok(c.raw.encrypt(c.s, &mut mk(), key, &pt), "C_Encrypt(AES)");
        if m == CKM_AES_CBC_PAD {
            // The two SP 800-38A blocks, then a full block of padding.
            assert_eq!(ct.len(), 48);
            assert_eq!(hex::encode(&ct[..32]), want);
        } else {
            assert_eq!(hex::encode(&ct), want, "0x{m:x} with {key_hex}");
        }
        assert_eq!(
            ok(c.raw.decrypt(c.s, &mut mk(), key, &ct), "C_Decrypt(AES)"),
            pt
        );
        // Multi-part with an odd split (block modes buffer; CTR streams).
        let parts = ok(
            c.raw
                .encrypt_parts(c.s, &mut mk(), key, &[&pt[..5], &pt[5..21], &pt[21..]]),
            "C_EncryptUpdate(AES)",
        );
        assert_eq!(parts, ct);
        let back = ok(
            c.raw
                .decrypt_parts(c.s, &mut mk(), key, &[&ct[..17], &ct[17..]]),
            "C_DecryptUpdate(AES)",
        );
        assert_eq!(back, pt);
        if m == CKM_AES_CBC_PAD {
            // CBC_PAD also wraps: the wrapped key is the CBC-PAD encryption of its value.
            let target_value = hx("00112233445566778899aabbccddeeff");
            let target = c.secret(CKK_AES, &target_value);
            let wrapped = ok(
                c.raw.wrap(c.s, &mut mk(), key, target),
                "C_WrapKey(CBC_PAD)",
            );
            assert_eq!(
                wrapped,
                ok(
                    c.raw.encrypt(c.s, &mut mk(), key, &target_value),
                    "C_Encrypt"
                )
            );
            let mut t = Tmpl::new()
                .ulong(CKA_CLASS, CKO_SECRET_KEY)
                .ulong(CKA_KEY_TYPE, CKK_AES)
                .bool(CKA_TOKEN, false)
                .bool(CKA_SENSITIVE, false)
                .bool(CKA_EXTRACTABLE, true);
            let back = ok(
                c.raw.unwrap(c.s, &mut mk(), key, &wrapped, &mut t),
                "C_UnwrapKey(CBC_PAD)",
            );
            assert_eq!(c.value(back), target_value);
        }
    }
}

fn aes_gcm(c: &mut Ctx) {
    // "The Galois/Counter Mode of Operation (GCM)", McGrew & Viega (the specification
    // NIST SP 800-38D is based on), test cases 2 (AES-128) and 14 (AES-256): zero key,
    // zero 96-bit IV, one zero block, no AAD.
    for (key, ct, tag) in [
        (
            vec![0u8; 16],
            "0388dace60b6a392f328c2b971b2fe78",
            "ab6e47d42cec13bdf53a67b21257bddf",
        ),
        (
            vec![0u8; 32],
            "cea7403d4d606b6e074ec5d3baf39d18",
            "d0d1c8a799996bf0265b98b5d48ab919",
        ),
    ] {
        let k = c.secret(CKK_AES, &key);
        let mut iv = [0u8; 12];
        let mk = |iv: &mut [u8; 12]| {
            Mech::with(
                CKM_AES_GCM,
                &CK_GCM_PARAMS {
                    pIv: iv.as_mut_ptr(),
                    ulIvLen: 12,
                    ulIvBits: 96,
                    pAAD: null_mut(),
                    ulAADLen: 0,
                    ulTagBits: 128,
                },
            )
        };
        let out = ok(
            c.raw.encrypt(c.s, &mut mk(&mut iv), k, &[0; 16]),
            "C_Encrypt(GCM)",
        );
        assert_eq!(hex::encode(&out), format!("{ct}{tag}"));
        assert_eq!(
            ok(
                c.raw.decrypt(c.s, &mut mk(&mut iv), k, &out),
                "C_Decrypt(GCM)"
            ),
            [0; 16]
        );
        let mut bad = out.clone();
        bad[20] ^= 1;
        let r = c.raw.decrypt(c.s, &mut mk(&mut iv), k, &bad);
        assert!(
            r.is_err(),
            "a forged GCM tag must not decrypt (got {:?})",
            r.map(hex::encode)
        );
    }
}

fn aes_cmac(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    // NIST SP 800-38B Appendix D.1 (AES-128) and D.3 (AES-256), examples 1 and 2.
    let general = m == CKM_AES_CMAC_GENERAL;
    let mk = || {
        if general {
            Mech::with(m, &(8 as CK_ULONG))
        } else {
            Mech::new(m)
        }
    };
    for (key, empty, one_block) in [
        (
            K128,
            "bb1d6929e95937287fa37d129b756746",
            "070a16b46b4d4144f79bdd9dd04a287c",
        ),
        (
            K256,
            "028962f61b7bf89efc6b551f4667d983",
            "28a7023f452e8f82bd4bf28d8c37c35c",
        ),
    ] {
        let k = c.secret(CKK_AES, &hx(key));
        let msg = hx(PT)[..16].to_vec();
        for (data, want) in [(vec![], empty), (msg, one_block)] {
            let mut want = hx(want);
            if general {
                want.truncate(8);
            }
            let mac = c.sign_verify(&mut mk(), k, k, &data);
            assert_eq!(hex::encode(mac), hex::encode(want), "0x{m:x} key {key}");
        }
    }
}

fn aes_key_wrap(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let unwrap_tmpl = |kt: CK_KEY_TYPE| {
        Tmpl::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, kt)
            .bool(CKA_TOKEN, false)
            .bool(CKA_SENSITIVE, false)
            .bool(CKA_EXTRACTABLE, true)
    };
    // (KEK, key data, key type, wrapped)
    let vectors: Vec<(String, &str, CK_KEY_TYPE, &str)> = if m == CKM_AES_KEY_WRAP {
        vec![
            // RFC 3394 §4.1: 128-bit data, 128-bit KEK.
            (
                "000102030405060708090A0B0C0D0E0F".into(),
                "00112233445566778899AABBCCDDEEFF",
                CKK_AES,
                "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5",
            ),
            // RFC 3394 §4.6: 256-bit data, 256-bit KEK.
            (
                "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F".into(),
                "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
                CKK_AES,
                "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B \
                 FB988B9B7A02DD21",
            ),
        ]
    } else {
        // RFC 5649 §6 (192-bit KEK), 20-byte and 7-byte key data.
        let kek = "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8".replace(' ', "");
        vec![
            (
                kek.clone(),
                "c37b7e6492584340 bed1220780894115 5068f738",
                CKK_GENERIC_SECRET,
                "138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a",
            ),
            (
                kek,
                "466f7250617369",
                CKK_GENERIC_SECRET,
                "afbeb0f07dfbf541 9200f2ccb50bb24f",
            ),
        ]
    };
    for (kek, data, kt, wrapped) in vectors {
        let w = c.secret(CKK_AES, &hx(&kek));
        let target = c.secret(kt, &hx(data));
        let got = ok(c.raw.wrap(c.s, &mut Mech::new(m), w, target), "C_WrapKey");
        assert_eq!(hex::encode(&got), hex::encode(hx(wrapped)), "0x{m:x}");
        let back = ok(
            c.raw
                .unwrap(c.s, &mut Mech::new(m), w, &got, &mut unwrap_tmpl(kt)),
            "C_UnwrapKey",
        );
        assert_eq!(c.value(back), hx(data));
    }
    // The reported KEK sizes (16 and 32 bytes), round trip of a 256-bit AES key.
    let i = info(&c.raw, c.slot, m);
    for bytes in [i.ulMinKeySize, i.ulMaxKeySize] {
        let kek: Vec<u8> = (0..bytes).map(|i| i as u8 ^ 0x5a).collect();
        let w = c.secret(CKK_AES, &kek);
        let value = [0x42u8; 32];
        let target = c.secret(CKK_AES, &value);
        let got = ok(c.raw.wrap(c.s, &mut Mech::new(m), w, target), "C_WrapKey");
        let back = ok(
            c.raw
                .unwrap(c.s, &mut Mech::new(m), w, &got, &mut unwrap_tmpl(CKK_AES)),
            "C_UnwrapKey",
        );
        assert_eq!(c.value(back), value);
        // A corrupted blob is refused.
        let mut bad = got.clone();
        bad[0] ^= 1;
        let r = c
            .raw
            .unwrap(c.s, &mut Mech::new(m), w, &bad, &mut unwrap_tmpl(CKK_AES));
        assert_eq!(r.map_err(rv_name), Err(rv_name(CKR_WRAPPED_KEY_INVALID)));
    }
}

// ---------------------------------------------------------------- the tests

fn mechanism_list(raw: &Raw, slot: CK_SLOT_ID) -> Vec<CK_MECHANISM_TYPE> {
    let mut n: CK_ULONG = 0;
    assert_eq!(
        ck!(raw, C_GetMechanismList(slot, null_mut(), &mut n)),
        CKR_OK
    );
    let mut v = vec![0; n as usize];
    assert_eq!(
        ck!(raw, C_GetMechanismList(slot, v.as_mut_ptr(), &mut n)),
        CKR_OK
    );
    v.truncate(n as usize);
    v
}

#[test]
fn every_listed_mechanism() {
    isolated("every_listed_mechanism", || {
        let p = load();
        let slot = setup_token(&p);
        let session = user_session(&p, slot);
        let raw = Raw::load();
        let list = mechanism_list(&raw, slot.id());
        assert!(
            list.len() > 20,
            "the registry lists {} mechanisms",
            list.len()
        );
        let mut c = Ctx {
            raw,
            s: session.handle(),
            slot: slot.id(),
            rsa: HashMap::new(),
            ec: HashMap::new(),
        };
        let mut failures = Vec::new();
        for &m in &list {
            let i = info(&c.raw, c.slot, m);
            let claimed = i.flags & OP_FLAGS;
            let Some((covered, run)) = table(m) else {
                failures.push(format!(
                    "0x{m:x}: listed but has no entry in the test table"
                ));
                continue;
            };
            if claimed != covered {
                failures.push(format!(
                    "0x{m:x}: claims flags 0x{claimed:x} but the table exercises 0x{covered:x}"
                ));
            }
            let started = std::time::Instant::now();
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| run(&mut c, m))) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("0x{m:x}: {msg}"));
            }
            println!("mechanism 0x{m:08x}: {:?}", started.elapsed());
        }
        assert!(
            failures.is_empty(),
            "{} mechanism failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    });
}

#[test]
fn sign_length_convention() {
    isolated("sign_length_convention", || {
        use p256::ecdsa::signature::Verifier;
        let p = load();
        let slot = setup_token(&p);
        let session = user_session(&p, slot);
        let raw = Raw::load();
        let mut c = Ctx {
            raw,
            s: session.handle(),
            slot: slot.id(),
            rsa: HashMap::new(),
            ec: HashMap::new(),
        };
        let s = c.s;
        // ECDSA is randomized: the re-call must hand out the signature computed for the
        // first call, and the operation must survive the short-buffer call.
        let (public, private) = c.ec(P256);
        let mut m = Mech::new(CKM_ECDSA_SHA256);
        let mut ck = m.ck();
        assert_eq!(ck!(c.raw, C_SignInit(s, &mut ck, private)), CKR_OK);
        let mut data = b"length convention".to_vec();
        let mut buf = [0u8; 128];
        let mut len: CK_ULONG = 10;
        let rv = ck!(
            c.raw,
            C_Sign(
                s,
                data.as_mut_ptr(),
                data.len() as CK_ULONG,
                buf.as_mut_ptr(),
                &mut len
            )
        );
        assert_eq!(rv, CKR_BUFFER_TOO_SMALL, "{}", rv_name(rv));
        assert_eq!(len, 64, "the needed length");
        // NULL buffer: the length again, still active.
        let mut len2: CK_ULONG = 0;
        let rv = ck!(
            c.raw,
            C_Sign(
                s,
                data.as_mut_ptr(),
                data.len() as CK_ULONG,
                null_mut(),
                &mut len2
            )
        );
        assert_eq!(rv, CKR_OK);
        assert_eq!(len2, 64);
        let rv = ck!(
            c.raw,
            C_Sign(
                s,
                data.as_mut_ptr(),
                data.len() as CK_ULONG,
                buf.as_mut_ptr(),
                &mut len
            )
        );
        assert_eq!(rv, CKR_OK, "{}", rv_name(rv));
        assert_eq!(len, 64);
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&c.ec_point(public)).unwrap();
        vk.verify(
            &data,
            &p256::ecdsa::Signature::from_slice(&buf[..64]).unwrap(),
        )
        .expect("p256 verifies the signature");
        // The operation is finished now.
        let rv = ck!(
            c.raw,
            C_Sign(
                s,
                data.as_mut_ptr(),
                data.len() as CK_ULONG,
                buf.as_mut_ptr(),
                &mut len
            )
        );
        assert_eq!(rv, CKR_OPERATION_NOT_INITIALIZED);

        // The same for C_SignFinal and C_Encrypt.
        let k = c.secret(CKK_GENERIC_SECRET, b"Jefe");
        let mut m = Mech::new(CKM_SHA256_HMAC);
        let mut ck = m.ck();
        assert_eq!(ck!(c.raw, C_SignInit(s, &mut ck, k)), CKR_OK);
        let mut d = b"what do ya want for nothing?".to_vec();
        assert_eq!(
            ck!(c.raw, C_SignUpdate(s, d.as_mut_ptr(), d.len() as CK_ULONG)),
            CKR_OK
        );
        len = 31;
        assert_eq!(
            ck!(c.raw, C_SignFinal(s, buf.as_mut_ptr(), &mut len)),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 32);
        assert_eq!(
            ck!(c.raw, C_SignFinal(s, buf.as_mut_ptr(), &mut len)),
            CKR_OK
        );
        assert_eq!(
            hex::encode(&buf[..32]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let aes = c.secret(CKK_AES, &hx(K128));
        let mut m = Mech::new(CKM_AES_ECB);
        let mut ck = m.ck();
        assert_eq!(ck!(c.raw, C_EncryptInit(s, &mut ck, aes)), CKR_OK);
        let mut pt = hx(PT);
        len = 16;
        assert_eq!(
            ck!(
                c.raw,
                C_Encrypt(s, pt.as_mut_ptr(), 32, buf.as_mut_ptr(), &mut len)
            ),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 32);
        assert_eq!(
            ck!(
                c.raw,
                C_Encrypt(s, pt.as_mut_ptr(), 32, buf.as_mut_ptr(), &mut len)
            ),
            CKR_OK
        );
        assert_eq!(
            hex::encode(&buf[..32]),
            hex::encode(hx(aes_kat(CKM_AES_ECB, K128)))
        );
    });
}

// ---------------------------------------------------------------- derivation

/// A derived key template: an extractable, readable secret of `len` bytes.
fn derived(key_type: CK_KEY_TYPE, len: Option<CK_ULONG>) -> Tmpl {
    let t = Tmpl::new()
        .ulong(CKA_CLASS, CKO_SECRET_KEY)
        .ulong(CKA_KEY_TYPE, key_type)
        .bool(CKA_TOKEN, false)
        .bool(CKA_SENSITIVE, false)
        .bool(CKA_EXTRACTABLE, true);
    match len {
        Some(l) => t.ulong(CKA_VALUE_LEN, l),
        None => t,
    }
}

/// A session secret with CKA_DERIVE, readable.
fn derive_base(c: &Ctx, key_type: CK_KEY_TYPE, value: &[u8]) -> H {
    let mut t = Tmpl::new()
        .ulong(CKA_CLASS, CKO_SECRET_KEY)
        .ulong(CKA_KEY_TYPE, key_type)
        .bool(CKA_TOKEN, false)
        .bool(CKA_SENSITIVE, false)
        .bool(CKA_EXTRACTABLE, true)
        .bool(CKA_DERIVE, true)
        .bytes(CKA_VALUE, value);
    ok(
        c.raw.create_object(c.s, &mut t),
        "C_CreateObject(derive base)",
    )
}

fn derive_pair(c: &Ctx, gen: CK_MECHANISM_TYPE, params: &[u8]) -> (H, H) {
    let mut public = Tmpl::new()
        .bool(CKA_TOKEN, false)
        .bytes(CKA_EC_PARAMS, params);
    let mut private = Tmpl::new()
        .bool(CKA_TOKEN, false)
        .bool(CKA_PRIVATE, true)
        .bool(CKA_DERIVE, true);
    ok(
        c.raw
            .generate_key_pair(c.s, &mut Mech::new(gen), &mut public, &mut private),
        "C_GenerateKeyPair(derive pair)",
    )
}

fn ecdh_params(kdf: CK_EC_KDF_TYPE, shared: &[u8], public: &[u8]) -> CK_ECDH1_DERIVE_PARAMS {
    CK_ECDH1_DERIVE_PARAMS {
        kdf,
        ulSharedDataLen: shared.len() as CK_ULONG,
        pSharedData: shared.as_ptr() as *mut u8,
        ulPublicDataLen: public.len() as CK_ULONG,
        pPublicData: public.as_ptr() as *mut u8,
    }
}

/// Both parties derive; CKD_NULL gives Z, CKD_SHA256_KDF gives X9.63(Z) (checked with sha2).
fn agree(c: &Ctx, m: CK_MECHANISM_TYPE, a: (H, H), b: (H, H)) {
    use sha2::Digest;
    let pa = c.ec_point(a.0);
    let pb = c.ec_point(b.0);
    let mut z = Vec::new();
    for (mine, theirs) in [(a.1, &pb), (b.1, &pa)] {
        let p = ecdh_params(CKD_NULL, &[], theirs);
        let k = ok(
            c.raw.derive(
                c.s,
                &mut Mech::with(m, &p),
                mine,
                &mut derived(CKK_GENERIC_SECRET, None),
            ),
            &format!("C_DeriveKey(0x{m:x}, CKD_NULL)"),
        );
        let v = c.value(k);
        if z.is_empty() {
            z = v;
        } else {
            assert_eq!(z, v, "both parties derive the same Z (0x{m:x})");
        }
    }
    let shared = b"shared info";
    let p = ecdh_params(CKD_SHA256_KDF, shared, &pb);
    let k = ok(
        c.raw.derive(
            c.s,
            &mut Mech::with(m, &p),
            a.1,
            &mut derived(CKK_AES, Some(32)),
        ),
        &format!("C_DeriveKey(0x{m:x}, CKD_SHA256_KDF)"),
    );
    let mut h = sha2::Sha256::new();
    h.update(&z);
    h.update(1u32.to_be_bytes());
    h.update(shared);
    assert_eq!(c.value(k), h.finalize().to_vec(), "X9.63 KDF (0x{m:x})");
}

const P256_OID: &str = "06082a8648ce3d030107";
const P521_OID: &str = "06052b81040023";

fn ecdh(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    for curve in [P256_OID, P521_OID] {
        let a = derive_pair(c, CKM_EC_KEY_PAIR_GEN, &hx(curve));
        let b = derive_pair(c, CKM_EC_KEY_PAIR_GEN, &hx(curve));
        agree(c, m, a, b);
    }
    if m == CKM_ECDH1_DERIVE {
        x25519(c, m);
    }
}

/// X25519 key pairs (RFC 8410 OID 1.3.101.110) agree through CKM_ECDH1_DERIVE.
fn x25519(c: &mut Ctx, _m: CK_MECHANISM_TYPE) {
    let oid = hx("06032b656e");
    let a = derive_pair(c, CKM_EC_MONTGOMERY_KEY_PAIR_GEN, &oid);
    let b = derive_pair(c, CKM_EC_MONTGOMERY_KEY_PAIR_GEN, &oid);
    assert_eq!(c.ec_point(a.0).len(), 32);
    agree(c, CKM_ECDH1_DERIVE, a, b);
}

/// RFC 5869 test case 1 (HKDF-SHA256).
fn hkdf(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let ikm = [0x0bu8; 22];
    let salt = hx("000102030405060708090a0b0c");
    let info_bytes = hx("f0f1f2f3f4f5f6f7f8f9");
    let okm =
        hx("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
    let base = derive_base(c, CKK_GENERIC_SECRET, &ikm);
    let p = CK_HKDF_PARAMS {
        bExtract: CK_TRUE,
        bExpand: CK_TRUE,
        prfHashMechanism: CKM_SHA256,
        ulSaltType: CKF_HKDF_SALT_DATA,
        pSalt: salt.as_ptr() as *mut u8,
        ulSaltLen: salt.len() as CK_ULONG,
        hSaltKey: 0,
        pInfo: info_bytes.as_ptr() as *mut u8,
        ulInfoLen: info_bytes.len() as CK_ULONG,
    };
    let k = ok(
        c.raw.derive(
            c.s,
            &mut Mech::with(m, &p),
            base,
            &mut derived(CKK_GENERIC_SECRET, Some(42)),
        ),
        "C_DeriveKey(HKDF)",
    );
    assert_eq!(c.value(k), okm, "RFC 5869 case 1");
}

/// AES-ECB/CBC of the data under the base key becomes the new key (SP 800-38A F.1.5/F.2.5).
fn aes_encrypt_data(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let key = hx("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
    let data = hx("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
    let base = derive_base(c, CKK_AES, &key);
    let iv = hx("000102030405060708090a0b0c0d0e0f");
    let (mut mech, want) = if m == CKM_AES_ECB_ENCRYPT_DATA {
        let p = CK_KEY_DERIVATION_STRING_DATA {
            pData: data.as_ptr() as *mut u8,
            ulLen: data.len() as CK_ULONG,
        };
        (
            Mech::with(m, &p),
            hx("f3eed1bdb5d2a03c064b5a7e3db181f8591ccb10d410ed26dc5ba74a31362870"),
        )
    } else {
        let mut ivb = [0u8; 16];
        ivb.copy_from_slice(&iv);
        let p = CK_AES_CBC_ENCRYPT_DATA_PARAMS {
            iv: ivb,
            pData: data.as_ptr() as *mut u8,
            length: data.len() as CK_ULONG,
        };
        (
            Mech::with(m, &p),
            hx("f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"),
        )
    };
    let k = ok(
        c.raw
            .derive(c.s, &mut mech, base, &mut derived(CKK_AES, Some(32))),
        &format!("C_DeriveKey(0x{m:x})"),
    );
    assert_eq!(c.value(k), want, "SP 800-38A vector through 0x{m:x}");
}

/// NIST CAVP KBKDF (KDFCTR_gen.rsp, HMAC_SHA256, counter before fixed data, 8-bit counter,
/// COUNT=0), in PKCS#11 3.0's parameter form and in CloudHSM's.
fn kbkdf(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let ki = hx("3edc6b5b8f7aadbd713732b482b8f979286e1ea3b8f8f99c30c884cfe3349b83");
    let fixed = hx("98e9988bb4cc8b34d7922e1c68ad692ba2a1d9ae15149571675f17a77ad49e80c8d2a85e831a26445b1f0ff44d7084a17206b4896c8112daad18605a");
    let ko = hx("6c037652990674a07844732d0ad985f9");
    let base = derive_base(c, CKK_GENERIC_SECRET, &ki);
    let counter = CK_SP800_108_COUNTER_FORMAT {
        bLittleEndian: CK_FALSE,
        ulWidthInBits: 8,
    };
    let std_items = [
        CK_PRF_DATA_PARAM {
            type_: CK_SP800_108_ITERATION_VARIABLE,
            pValue: &counter as *const _ as *mut _,
            ulValueLen: std::mem::size_of::<CK_SP800_108_COUNTER_FORMAT>() as CK_ULONG,
        },
        CK_PRF_DATA_PARAM {
            type_: CK_SP800_108_BYTE_ARRAY,
            pValue: fixed.as_ptr() as *mut _,
            ulValueLen: fixed.len() as CK_ULONG,
        },
    ];
    let std_params = CK_SP800_108_KDF_PARAMS {
        prfType: CKM_SHA256_HMAC,
        ulNumberOfDataParams: 2,
        pDataParams: std_items.as_ptr() as *mut _,
        ulAdditionalDerivedKeys: 0,
        pAdditionalDerivedKeys: null_mut(),
    };
    let k = ok(
        c.raw.derive(
            c.s,
            &mut Mech::with(m, &std_params),
            base,
            &mut derived(CKK_GENERIC_SECRET, Some(16)),
        ),
        &format!("C_DeriveKey(0x{m:x}, PKCS#11 3.0 params)"),
    );
    assert_eq!(c.value(k), ko, "CAVP KBKDF vector (0x{m:x})");
    if m == CKM_SP800_108_COUNTER_KDF_CLOUDHSM {
        // CloudHSM's vendor header: counter format {width}, type 4; byte array, type 8.
        let width: CK_ULONG = 8;
        let items = [
            CK_PRF_DATA_PARAM {
                type_: 4,
                pValue: &width as *const _ as *mut _,
                ulValueLen: std::mem::size_of::<CK_ULONG>() as CK_ULONG,
            },
            CK_PRF_DATA_PARAM {
                type_: 8,
                pValue: fixed.as_ptr() as *mut _,
                ulValueLen: fixed.len() as CK_ULONG,
            },
        ];
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct CloudHsmParams {
            prf: CK_MECHANISM_TYPE,
            n: CK_ULONG,
            p: *const CK_PRF_DATA_PARAM,
        }
        let p = CloudHsmParams {
            prf: CKM_SHA256_HMAC,
            n: 2,
            p: items.as_ptr(),
        };
        let k = ok(
            c.raw.derive(
                c.s,
                &mut Mech::with(m, &p),
                base,
                &mut derived(CKK_GENERIC_SECRET, Some(16)),
            ),
            "C_DeriveKey(CloudHSM SP 800-108 params)",
        );
        assert_eq!(
            c.value(k),
            ko,
            "CAVP KBKDF vector through CloudHSM's parameters"
        );
    }
}

// ---------------------------------------------------------------- GCM wrap and CloudHSM

fn gcm_params(iv: &mut [u8], aad: &[u8]) -> CK_GCM_PARAMS {
    CK_GCM_PARAMS {
        pIv: if iv.is_empty() {
            null_mut()
        } else {
            iv.as_mut_ptr()
        },
        ulIvLen: iv.len() as CK_ULONG,
        ulIvBits: (iv.len() * 8) as CK_ULONG,
        pAAD: aad.as_ptr() as *mut u8,
        ulAADLen: aad.len() as CK_ULONG,
        ulTagBits: 128,
    }
}

fn unwrap_secret_tmpl(kt: CK_KEY_TYPE, len: Option<CK_ULONG>) -> Tmpl {
    let t = Tmpl::new()
        .ulong(CKA_CLASS, CKO_SECRET_KEY)
        .ulong(CKA_KEY_TYPE, kt)
        .bool(CKA_TOKEN, false)
        .bool(CKA_SENSITIVE, false)
        .bool(CKA_EXTRACTABLE, true);
    match len {
        Some(l) => t.ulong(CKA_VALUE_LEN, l),
        None => t,
    }
}

/// CKM_AES_GCM: the encryption vectors, then a key wrapped and unwrapped with AES-GCM,
/// the wrapped blob decrypting (C_Decrypt) to the key value.
fn aes_gcm_with_wrap(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    aes_modes(c, m);
    let kek = c.secret(CKK_AES, &[7u8; 32]);
    let value = [0x24u8; 32];
    let target = c.secret(CKK_AES, &value);
    let mut iv = [9u8; 12];
    let aad = b"wrap aad";
    let wrapped = ok(
        c.raw.wrap(
            c.s,
            &mut Mech::with(m, &gcm_params(&mut iv, aad)),
            kek,
            target,
        ),
        "C_WrapKey(AES-GCM)",
    );
    assert_eq!(wrapped.len(), 32 + 16);
    let plain = ok(
        c.raw.decrypt(
            c.s,
            &mut Mech::with(m, &gcm_params(&mut iv, aad)),
            kek,
            &wrapped,
        ),
        "C_Decrypt of a GCM-wrapped key",
    );
    assert_eq!(plain, value);
    let back = ok(
        c.raw.unwrap(
            c.s,
            &mut Mech::with(m, &gcm_params(&mut iv, aad)),
            kek,
            &wrapped,
            &mut unwrap_secret_tmpl(CKK_AES, None),
        ),
        "C_UnwrapKey(AES-GCM)",
    );
    assert_eq!(c.value(back), value);
}

/// CKM_CLOUDHSM_AES_GCM: the token makes the IV and prepends it; the rest is standard
/// AES-GCM under that IV (checked with CKM_AES_GCM), and wrapping works the same way.
fn cloudhsm_gcm(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    for key in [[3u8; 16].to_vec(), [4u8; 32].to_vec()] {
        let k = c.secret(CKK_AES, &key);
        let aad = b"aad";
        let pt = b"CloudHSM in-band IV";
        let ct = ok(
            c.raw
                .encrypt(c.s, &mut Mech::with(m, &gcm_params(&mut [], aad)), k, pt),
            "C_Encrypt(CKM_CLOUDHSM_AES_GCM)",
        );
        assert_eq!(ct.len(), 12 + pt.len() + 16, "IV || ciphertext || tag");
        let again = ok(
            c.raw
                .encrypt(c.s, &mut Mech::with(m, &gcm_params(&mut [], aad)), k, pt),
            "second encryption",
        );
        assert_ne!(ct[..12], again[..12], "a fresh IV per message");
        let mut iv = ct[..12].to_vec();
        let std = ok(
            c.raw.decrypt(
                c.s,
                &mut Mech::with(CKM_AES_GCM, &gcm_params(&mut iv, aad)),
                k,
                &ct[12..],
            ),
            "standard AES-GCM decryption of the vendor ciphertext",
        );
        assert_eq!(std, pt);
        let back = ok(
            c.raw
                .decrypt(c.s, &mut Mech::with(m, &gcm_params(&mut [], aad)), k, &ct),
            "C_Decrypt(CKM_CLOUDHSM_AES_GCM)",
        );
        assert_eq!(back, pt);
        let mut with_iv = [0u8; 12];
        assert_eq!(
            c.raw
                .encrypt(
                    c.s,
                    &mut Mech::with(m, &gcm_params(&mut with_iv, aad)),
                    k,
                    pt
                )
                .map_err(rv_name),
            Err(rv_name(CKR_MECHANISM_PARAM_INVALID)),
            "the vendor mechanism refuses a caller IV"
        );
        let target = c.secret(CKK_GENERIC_SECRET, &[5u8; 24]);
        let wrapped = ok(
            c.raw.wrap(
                c.s,
                &mut Mech::with(m, &gcm_params(&mut [], &[])),
                k,
                target,
            ),
            "C_WrapKey(CKM_CLOUDHSM_AES_GCM)",
        );
        let unwrapped = ok(
            c.raw.unwrap(
                c.s,
                &mut Mech::with(m, &gcm_params(&mut [], &[])),
                k,
                &wrapped,
                &mut unwrap_secret_tmpl(CKK_GENERIC_SECRET, None),
            ),
            "C_UnwrapKey(CKM_CLOUDHSM_AES_GCM)",
        );
        assert_eq!(c.value(unwrapped), [5u8; 24]);
    }
}

/// CloudHSM's AES key wraps are RFC 3394 over the key padded (none, PKCS#5, zeros):
/// checked byte for byte against CKM_AES_KEY_WRAP of the padded value.
fn cloudhsm_kw(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    let i = info(&c.raw, c.slot, m);
    for bytes in [i.ulMinKeySize, i.ulMaxKeySize] {
        let kek = c.secret(CKK_AES, &vec![0x31u8; bytes as usize]);
        let data: Vec<u8> = if m == CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD {
            (0..32).collect()
        } else {
            (0..20).collect()
        };
        let padded: Vec<u8> = match m {
            CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD => [data.clone(), vec![4u8; 4]].concat(),
            CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD => [data.clone(), vec![0u8; 4]].concat(),
            _ => data.clone(),
        };
        let target = c.secret(CKK_GENERIC_SECRET, &data);
        let reference_key = c.secret(CKK_GENERIC_SECRET, &padded);
        let got = ok(
            c.raw.wrap(c.s, &mut Mech::new(m), kek, target),
            "C_WrapKey(CloudHSM)",
        );
        let want = ok(
            c.raw
                .wrap(c.s, &mut Mech::new(CKM_AES_KEY_WRAP), kek, reference_key),
            "C_WrapKey(AES_KEY_WRAP of the padded value)",
        );
        assert_eq!(hex::encode(&got), hex::encode(&want), "0x{m:x}");
        let len = (m == CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD).then_some(data.len() as CK_ULONG);
        let back = ok(
            c.raw.unwrap(
                c.s,
                &mut Mech::new(m),
                kek,
                &got,
                &mut unwrap_secret_tmpl(CKK_GENERIC_SECRET, len),
            ),
            "C_UnwrapKey(CloudHSM)",
        );
        assert_eq!(c.value(back), data, "0x{m:x} round trip");
    }
}

/// CKM_RSA_AES_KEY_WRAP: the blob is OAEP(temporary AES key) || KWP(target). Checked by
/// taking it apart with the module's own CKM_RSA_PKCS_OAEP and CKM_AES_KEY_WRAP_PAD.
fn rsa_aes_key_wrap(c: &mut Ctx, m: CK_MECHANISM_TYPE) {
    for bits in c.rsa_sizes(m) {
        let (public, private) = c.rsa(bits);
        let oaep = oaep_params(Hash::Sha256);
        let params = CK_RSA_AES_KEY_WRAP_PARAMS {
            ulAESKeyBits: 256,
            pOAEPParams: &oaep as *const _ as *mut _,
        };
        let value = hx("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
        let target = c.secret(CKK_AES, &value);
        let wrapped = ok(
            c.raw.wrap(c.s, &mut Mech::with(m, &params), public, target),
            "C_WrapKey(RSA_AES_KEY_WRAP)",
        );
        let k = (bits / 8) as usize;
        assert!(wrapped.len() > k);
        let temp = ok(
            c.raw.decrypt(
                c.s,
                &mut Mech::with(CKM_RSA_PKCS_OAEP, &oaep),
                private,
                &wrapped[..k],
            ),
            "OAEP-decrypting the temporary key",
        );
        assert_eq!(temp.len(), 32, "a 256-bit temporary AES key");
        let kek = c.secret(CKK_AES, &temp);
        let mut t = Tmpl::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, CKK_AES)
            .bool(CKA_TOKEN, false)
            .bool(CKA_SENSITIVE, false)
            .bool(CKA_EXTRACTABLE, true);
        let inner = ok(
            c.raw.unwrap(
                c.s,
                &mut Mech::new(CKM_AES_KEY_WRAP_PAD),
                kek,
                &wrapped[k..],
                &mut t,
            ),
            "KWP-unwrapping the target with the temporary key",
        );
        assert_eq!(c.value(inner), value);
        let back = ok(
            c.raw
                .unwrap(c.s, &mut Mech::with(m, &params), private, &wrapped, &mut t),
            "C_UnwrapKey(RSA_AES_KEY_WRAP)",
        );
        assert_eq!(c.value(back), value);
    }
}

/// C_Encrypt / C_Decrypt write block-cipher output straight into the caller's buffer:
/// the length convention still holds (NULL and short buffers leave the operation active),
/// in-place calls (the same buffer for input and output, as many C callers do) give the
/// right answer in single and multi-part form, and a bad length still ends the operation.
#[test]
fn cipher_output_into_the_callers_buffer() {
    isolated("cipher_output_into_the_callers_buffer", || {
        let p = load();
        let slot = setup_token(&p);
        let session = user_session(&p, slot);
        let raw = Raw::load();
        let s = session.handle();
        let key = raw
            .create_object(
                s,
                &mut Tmpl::new()
                    .ulong(CKA_CLASS, CKO_SECRET_KEY)
                    .ulong(CKA_KEY_TYPE, CKK_AES)
                    .bytes(CKA_VALUE, &hx("2b7e151628aed2a6abf7158809cf4f3c")),
            )
            .expect("AES key");
        // SP 800-38A F.2.1 CBC-AES128.Encrypt, blocks 1-2.
        let iv = hx("000102030405060708090a0b0c0d0e0f");
        let plain = hx("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let cipher = hx("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2");
        let mut m = Mech::bytes(CKM_AES_CBC, &iv);
        let mut ck = m.ck();
        assert_eq!(ck!(raw, C_EncryptInit(s, &mut ck, key)), CKR_OK);
        let mut buf = plain.clone();
        // NULL output: the length, still active.
        let mut len: CK_ULONG = 0;
        let rv = ck!(
            raw,
            C_Encrypt(s, buf.as_mut_ptr(), 32, std::ptr::null_mut(), &mut len)
        );
        assert_eq!((rv, len), (CKR_OK, 32), "{}", rv_name(rv));
        // Short output: CKR_BUFFER_TOO_SMALL and the length, still active.
        let mut short = [0u8; 16];
        let mut len: CK_ULONG = 16;
        let rv = ck!(
            raw,
            C_Encrypt(s, buf.as_mut_ptr(), 32, short.as_mut_ptr(), &mut len)
        );
        assert_eq!((rv, len), (CKR_BUFFER_TOO_SMALL, 32), "{}", rv_name(rv));
        // In place.
        let mut len: CK_ULONG = 32;
        let p_buf = buf.as_mut_ptr();
        let rv = ck!(raw, C_Encrypt(s, p_buf, 32, p_buf, &mut len));
        assert_eq!((rv, len), (CKR_OK, 32), "{}", rv_name(rv));
        assert_eq!(buf, cipher, "in-place C_Encrypt");
        // The operation is over.
        let mut len: CK_ULONG = 32;
        let rv = ck!(raw, C_Encrypt(s, p_buf, 32, p_buf, &mut len));
        assert_eq!(rv, CKR_OPERATION_NOT_INITIALIZED, "{}", rv_name(rv));
        // In-place decryption, and in-place multi-part decryption.
        let mut ck = m.ck();
        assert_eq!(ck!(raw, C_DecryptInit(s, &mut ck, key)), CKR_OK);
        let mut len: CK_ULONG = 32;
        let rv = ck!(raw, C_Decrypt(s, p_buf, 32, p_buf, &mut len));
        assert_eq!((rv, len), (CKR_OK, 32), "{}", rv_name(rv));
        assert_eq!(buf, plain, "in-place C_Decrypt");
        let mut ck = m.ck();
        assert_eq!(ck!(raw, C_EncryptInit(s, &mut ck, key)), CKR_OK);
        for half in 0..2 {
            let at = buf[half * 16..].as_mut_ptr();
            let mut len: CK_ULONG = 16;
            let rv = ck!(raw, C_EncryptUpdate(s, at, 16, at, &mut len));
            assert_eq!((rv, len), (CKR_OK, 16), "{}", rv_name(rv));
        }
        let mut len: CK_ULONG = 0;
        let rv = ck!(raw, C_EncryptFinal(s, std::ptr::null_mut(), &mut len));
        assert_eq!((rv, len), (CKR_OK, 0), "{}", rv_name(rv));
        let mut end = [0u8; 16];
        let mut len: CK_ULONG = 16;
        assert_eq!(
            ck!(raw, C_EncryptFinal(s, end.as_mut_ptr(), &mut len)),
            CKR_OK
        );
        assert_eq!(buf, cipher, "in-place C_EncryptUpdate");
        // A length CBC refuses ends the operation, also on a length query.
        let mut ck = m.ck();
        assert_eq!(ck!(raw, C_EncryptInit(s, &mut ck, key)), CKR_OK);
        let mut len: CK_ULONG = 0;
        let rv = ck!(
            raw,
            C_Encrypt(s, buf.as_mut_ptr(), 15, std::ptr::null_mut(), &mut len)
        );
        assert_eq!(rv, CKR_DATA_LEN_RANGE, "{}", rv_name(rv));
        let mut len: CK_ULONG = 32;
        let rv = ck!(raw, C_Encrypt(s, p_buf, 16, p_buf, &mut len));
        assert_eq!(rv, CKR_OPERATION_NOT_INITIALIZED, "{}", rv_name(rv));
    });
}

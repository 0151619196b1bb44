//! RSA (RFC 8017) on AWS-LC: PKCS#1 v1.5 signatures and encryption, PSS, OAEP and the
//! raw permutation, with the exact semantics the PKCS#11 RSA mechanisms need.
//!
//! Keys are parsed into AWS-LC once, at construction; every operation uses the parsed
//! key. Private components live only inside AWS-LC's structures (and in `SecretBytes`
//! when exported with [`RsaPrivateKey::components`]).

use std::fmt;
use std::sync::Arc;

use super::awslc::{LcRsa, RsaCrt, RsaPad};
use super::digest::HashAlg;
use super::{CryptoError, CryptoResult};
use crate::secure_mem::SecretBytes;

/// Smallest and largest modulus we generate. AWS-LC generates multiples of 128 bits.
const MIN_GEN_BITS: usize = 1024;
const MAX_GEN_BITS: usize = 8192;
/// Modulus sizes accepted on import (AWS-LC's own ceiling is 16384 bits).
const MIN_IMPORT_BITS: usize = 512;
const MAX_IMPORT_BITS: usize = 16384;
/// AWS-LC refuses to generate keys with a public exponent above 32 bits.
const MAX_GEN_E_BITS: usize = 32;

/// RSA key components, big-endian without leading zeros. No `Clone`; `Debug` shows only
/// the public part.
pub struct RsaComponents {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Option<SecretBytes>,
    pub p: Option<SecretBytes>,
    pub q: Option<SecretBytes>,
    pub dp: Option<SecretBytes>,
    pub dq: Option<SecretBytes>,
    pub qinv: Option<SecretBytes>,
}

impl fmt::Debug for RsaComponents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaComponents")
            .field("modulus_bits", &bit_len(&self.n))
            .field("e", &self.e)
            .field("private", &self.d.is_some())
            .field("crt", &self.p.is_some())
            .finish()
    }
}

/// Strips leading zero bytes.
fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

fn bit_len(be: &[u8]) -> usize {
    let b = trim(be);
    match b.first() {
        None => 0,
        Some(&top) => b.len() * 8 - top.leading_zeros() as usize,
    }
}

/// `a < b` for big-endian unsigned numbers of the same length (public values only).
fn less_than(a: &[u8], b: &[u8]) -> bool {
    a < b
}

/// Left-pads `input` to `k` bytes.
fn left_pad(input: &[u8], k: usize) -> CryptoResult<Vec<u8>> {
    if input.len() > k {
        return Err(CryptoError::DataLen);
    }
    let mut v = vec![0u8; k];
    v[k - input.len()..].copy_from_slice(input);
    Ok(v)
}

fn check_import_size(n: &[u8]) -> CryptoResult<()> {
    if (MIN_IMPORT_BITS..=MAX_IMPORT_BITS).contains(&bit_len(n)) {
        Ok(())
    } else {
        Err(CryptoError::KeySize)
    }
}

fn check_digest_len(hash: HashAlg, digest: &[u8]) -> CryptoResult<()> {
    if digest.len() == hash.output_len() {
        Ok(())
    } else {
        Err(CryptoError::DataLen)
    }
}

/// RFC 8017 §9.1.1: emLen = ceil((modBits - 1) / 8) must be >= hLen + sLen + 2.
fn pss_salt(modulus_bits: usize, hash: HashAlg, salt_len: usize) -> CryptoResult<i32> {
    let em_len = (modulus_bits.saturating_sub(1)).div_ceil(8);
    let need = hash
        .output_len()
        .checked_add(salt_len)
        .and_then(|x| x.checked_add(2));
    match need {
        Some(need) if need <= em_len => {
            i32::try_from(salt_len).map_err(|_| CryptoError::InvalidParameter("PSS salt length"))
        }
        _ => Err(CryptoError::InvalidParameter("PSS salt length")),
    }
}

/// RFC 8017 §7.1.1: k >= 2 hLen + 2.
fn oaep_max_data(k: usize, hash: HashAlg) -> CryptoResult<usize> {
    k.checked_sub(2 * hash.output_len() + 2)
        .ok_or(CryptoError::InvalidParameter(
            "OAEP hash too large for the modulus",
        ))
}

struct PublicInner {
    key: LcRsa,
    n: Vec<u8>,
    e: Vec<u8>,
    bits: usize,
    len: usize,
}

/// An RSA public key. Cloning is cheap (shared, immutable).
#[derive(Clone)]
pub struct RsaPublicKey {
    inner: Arc<PublicInner>,
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPublicKey")
            .field("modulus_bits", &self.inner.bits)
            .field("e", &self.inner.e)
            .finish()
    }
}

impl RsaPublicKey {
    /// From the modulus and public exponent (big-endian; leading zeros ignored). Moduli
    /// outside 512..=16384 bits -> `KeySize`.
    pub fn from_components(n: &[u8], e: &[u8]) -> CryptoResult<RsaPublicKey> {
        let (n, e) = (trim(n), trim(e));
        if n.is_empty() || e.is_empty() {
            return Err(CryptoError::InvalidKey("RSA modulus or exponent missing"));
        }
        check_import_size(n)?;
        let key = LcRsa::new_public(n, e)?;
        Ok(RsaPublicKey::wrap(key, n.to_vec(), e.to_vec()))
    }

    fn wrap(key: LcRsa, n: Vec<u8>, e: Vec<u8>) -> RsaPublicKey {
        let (bits, len) = (key.bits(), key.size());
        RsaPublicKey {
            inner: Arc::new(PublicInner {
                key,
                n,
                e,
                bits,
                len,
            }),
        }
    }

    pub fn n(&self) -> &[u8] {
        &self.inner.n
    }

    pub fn e(&self) -> &[u8] {
        &self.inner.e
    }

    pub fn modulus_bits(&self) -> usize {
        self.inner.bits
    }

    /// k: the modulus length in bytes (= signature/ciphertext length).
    pub fn modulus_len(&self) -> usize {
        self.inner.len
    }

    fn check_sig_len(&self, sig: &[u8]) -> CryptoResult<()> {
        if sig.len() == self.inner.len {
            Ok(())
        } else {
            Err(CryptoError::SignatureLen)
        }
    }

    /// CKM_RSA_PKCS verify: the signature must decode (type-1 padding) to exactly `data`.
    pub fn verify_pkcs1v15(&self, data: &[u8], sig: &[u8]) -> CryptoResult<()> {
        let recovered = self.recover_pkcs1v15(sig)?;
        if recovered == data {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }

    /// RSASSA-PKCS1-v1_5 verify of a precomputed digest (DigestInfo added for `hash`).
    pub fn verify_pkcs1v15_digest(
        &self,
        hash: HashAlg,
        digest: &[u8],
        sig: &[u8],
    ) -> CryptoResult<()> {
        check_digest_len(hash, digest)?;
        self.check_sig_len(sig)?;
        if self.inner.key.verify_digest(hash, digest, sig) {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }

    /// RSASSA-PSS verify of a precomputed message hash.
    pub fn verify_pss(
        &self,
        hash: HashAlg,
        mgf1_hash: HashAlg,
        salt_len: usize,
        mhash: &[u8],
        sig: &[u8],
    ) -> CryptoResult<()> {
        check_digest_len(hash, mhash)?;
        let salt = pss_salt(self.inner.bits, hash, salt_len)?;
        self.check_sig_len(sig)?;
        if self.inner.key.verify_pss(hash, mgf1_hash, salt, mhash, sig) {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }

    /// CKM_RSA_PKCS verify-recover: the data under the type-1 padding.
    pub fn recover_pkcs1v15(&self, sig: &[u8]) -> CryptoResult<Vec<u8>> {
        self.check_sig_len(sig)?;
        self.inner
            .key
            .public_raw(sig, RsaPad::Pkcs1)
            .ok_or(CryptoError::BadSignature)
    }

    /// RSAES-PKCS1-v1_5 encryption; `data` at most k - 11 bytes.
    pub fn encrypt_pkcs1v15(&self, data: &[u8]) -> CryptoResult<Vec<u8>> {
        if data.len() > self.inner.len.saturating_sub(11) {
            return Err(CryptoError::DataLen);
        }
        self.inner.key.encrypt(data, RsaPad::Pkcs1)
    }

    /// RSAES-OAEP encryption with any message hash, MGF1 hash and label.
    pub fn encrypt_oaep(
        &self,
        hash: HashAlg,
        mgf1_hash: HashAlg,
        label: &[u8],
        data: &[u8],
    ) -> CryptoResult<Vec<u8>> {
        if data.len() > oaep_max_data(self.inner.len, hash)? {
            return Err(CryptoError::DataLen);
        }
        self.inner.key.encrypt_oaep(hash, mgf1_hash, label, data)
    }

    /// CKM_RSA_X_509 public operation: `input` left-padded to k, must be < n. Output k bytes.
    pub fn raw_public(&self, input: &[u8]) -> CryptoResult<Vec<u8>> {
        let x = self.raw_input(input)?;
        let mut out = self.inner.key.encrypt(&x, RsaPad::None)?;
        if out.len() < self.inner.len {
            out = left_pad(&out, self.inner.len)?;
        }
        Ok(out)
    }

    fn raw_input(&self, input: &[u8]) -> CryptoResult<Vec<u8>> {
        raw_input(&self.inner.n, self.inner.len, input)
    }
}

/// Left-pads a raw-RSA input to k bytes and checks it is below the modulus `n`.
fn raw_input(n: &[u8], k: usize, input: &[u8]) -> CryptoResult<Vec<u8>> {
    let x = left_pad(input, k)?;
    let n = left_pad(n, k)?;
    if less_than(&x, &n) {
        Ok(x)
    } else {
        Err(CryptoError::DataInvalid)
    }
}

/// An RSA private key, parsed once into AWS-LC. `Send + Sync`; no `Clone`.
pub struct RsaPrivateKey {
    key: LcRsa,
    n: Vec<u8>,
    e: Vec<u8>,
    bits: usize,
    len: usize,
    /// A separate public-only key, made when first asked for (most keys only sign).
    public: std::sync::OnceLock<RsaPublicKey>,
}

impl fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPrivateKey")
            .field("modulus_bits", &self.bits)
            .field("e", &self.e)
            .finish_non_exhaustive()
    }
}

impl RsaPrivateKey {
    /// Generates a key of `bits` (1024..=8192, a multiple of 128 as AWS-LC generates) with
    /// the given public exponent (big-endian; empty means 65537; odd, >= 3, <= 32 bits).
    pub fn generate(bits: usize, public_exponent: &[u8]) -> CryptoResult<RsaPrivateKey> {
        if !(MIN_GEN_BITS..=MAX_GEN_BITS).contains(&bits) || bits % 128 != 0 {
            return Err(CryptoError::KeySize);
        }
        let e_bytes = trim(public_exponent);
        let e: u64 = if public_exponent.is_empty() {
            65537
        } else {
            if bit_len(e_bytes) > MAX_GEN_E_BITS {
                return Err(CryptoError::InvalidParameter("public exponent"));
            }
            e_bytes
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        };
        if e < 3 || e % 2 == 0 {
            return Err(CryptoError::InvalidParameter("public exponent"));
        }
        let key = LcRsa::generate(bits, e)?;
        if key.bits() != bits {
            return Err(CryptoError::KeySize);
        }
        RsaPrivateKey::from_lc(key)
    }

    fn from_lc(key: LcRsa) -> CryptoResult<RsaPrivateKey> {
        let (n, e) = key.public_parts()?;
        Ok(RsaPrivateKey {
            bits: key.bits(),
            len: key.size(),
            key,
            n,
            e,
            public: std::sync::OnceLock::new(),
        })
    }

    /// From components: n, e and d are required; the CRT parts are used when all five are
    /// present (and AWS-LC checks them for consistency). Without them, the key is checked
    /// by a sign/verify round trip of the raw permutation.
    pub fn from_components(c: &RsaComponents) -> CryptoResult<RsaPrivateKey> {
        let n = trim(&c.n);
        let e = trim(&c.e);
        let d =
            c.d.as_ref()
                .ok_or(CryptoError::InvalidKey("RSA private exponent missing"))?;
        if n.is_empty() || e.is_empty() || d.is_empty() {
            return Err(CryptoError::InvalidKey("RSA modulus or exponent missing"));
        }
        check_import_size(n)?;
        let d = trim(d.expose());
        let crt = match (&c.p, &c.q, &c.dp, &c.dq, &c.qinv) {
            (Some(p), Some(q), Some(dp), Some(dq), Some(qinv)) => Some(RsaCrt {
                p: trim(p.expose()),
                q: trim(q.expose()),
                dp: trim(dp.expose()),
                dq: trim(dq.expose()),
                qinv: trim(qinv.expose()),
            }),
            _ => None,
        };
        let has_crt = crt.is_some();
        let key = LcRsa::new_private(n, e, d, crt)?;
        let me = RsaPrivateKey::from_lc(key)?;
        if !has_crt {
            // x^(d e) must be x: catches a d that does not belong to (n, e).
            // (AWS-LC also checks this itself after each private operation.)
            let mismatch = CryptoError::InvalidKey("RSA private exponent does not match");
            let x = [2u8];
            let y = me.raw_private(&x).map_err(|_| mismatch.clone())?;
            if trim(&me.public_key()?.raw_public(&y)?) != x {
                return Err(mismatch);
            }
        }
        Ok(me)
    }

    /// All components (CRT parts are `None` when the key was imported without them).
    pub fn components(&self) -> RsaComponents {
        // Reading back from a key AWS-LC accepted only fails on allocation failure; then
        // fall back to the public part alone rather than panic.
        match self.key.parts() {
            Ok(parts) => {
                let (p, q, dp, dq, qinv) = match parts.crt {
                    Some([p, q, dp, dq, qinv]) => {
                        (Some(p), Some(q), Some(dp), Some(dq), Some(qinv))
                    }
                    None => (None, None, None, None, None),
                };
                RsaComponents {
                    n: parts.n,
                    e: parts.e,
                    d: parts.d,
                    p,
                    q,
                    dp,
                    dq,
                    qinv,
                }
            }
            Err(_) => RsaComponents {
                n: self.n.clone(),
                e: self.e.clone(),
                d: None,
                p: None,
                q: None,
                dp: None,
                dq: None,
                qinv: None,
            },
        }
    }

    pub fn modulus_bits(&self) -> usize {
        self.bits
    }

    pub fn modulus_len(&self) -> usize {
        self.len
    }

    pub fn public_key(&self) -> CryptoResult<RsaPublicKey> {
        if let Some(p) = self.public.get() {
            return Ok(p.clone());
        }
        let p = RsaPublicKey::wrap(
            LcRsa::new_public(&self.n, &self.e)?,
            self.n.clone(),
            self.e.clone(),
        );
        Ok(self.public.get_or_init(|| p).clone())
    }

    /// CKM_RSA_PKCS sign: EMSA-PKCS1-v1_5 type-1 padding over `data` exactly as given
    /// (normally a DigestInfo). `data` longer than k - 11 -> `DataLen`.
    pub fn sign_pkcs1v15(&self, data: &[u8]) -> CryptoResult<Vec<u8>> {
        if data.len() > self.modulus_len().saturating_sub(11) {
            return Err(CryptoError::DataLen);
        }
        self.key
            .private_raw(data, RsaPad::Pkcs1)
            .map_err(|_| CryptoError::Internal("RSA PKCS#1 v1.5 sign"))
    }

    /// RSASSA-PKCS1-v1_5 over a precomputed digest (AWS-LC's RSA_sign adds DigestInfo).
    pub fn sign_pkcs1v15_digest(&self, hash: HashAlg, digest: &[u8]) -> CryptoResult<Vec<u8>> {
        check_digest_len(hash, digest)?;
        self.key.sign_digest(hash, digest)
    }

    /// RSASSA-PSS over a precomputed message hash, any hash / MGF1 hash / salt length.
    pub fn sign_pss(
        &self,
        hash: HashAlg,
        mgf1_hash: HashAlg,
        salt_len: usize,
        mhash: &[u8],
    ) -> CryptoResult<Vec<u8>> {
        check_digest_len(hash, mhash)?;
        let salt = pss_salt(self.modulus_bits(), hash, salt_len)?;
        self.key.sign_pss(hash, mgf1_hash, salt, mhash)
    }

    /// RSAES-PKCS1-v1_5 decryption (padding checked in constant time inside AWS-LC).
    pub fn decrypt_pkcs1v15(&self, ct: &[u8]) -> CryptoResult<SecretBytes> {
        if ct.len() != self.modulus_len() {
            return Err(CryptoError::EncryptedDataLen);
        }
        self.key.decrypt(ct, RsaPad::Pkcs1)
    }

    /// RSAES-OAEP decryption with any message hash, MGF1 hash and label.
    pub fn decrypt_oaep(
        &self,
        hash: HashAlg,
        mgf1_hash: HashAlg,
        label: &[u8],
        ct: &[u8],
    ) -> CryptoResult<SecretBytes> {
        if ct.len() != self.modulus_len() {
            return Err(CryptoError::EncryptedDataLen);
        }
        oaep_max_data(self.modulus_len(), hash)?;
        self.key.decrypt_oaep(hash, mgf1_hash, label, ct)
    }

    /// CKM_RSA_X_509 private operation: `input` left-padded to k, must be < n (else
    /// `DataInvalid`; longer than k -> `DataLen`). Output k bytes. AWS-LC also refuses
    /// the fixed points 0, 1 and n - 1 as inputs to the private operation (no padding
    /// produces them): those give `DataInvalid` too.
    pub fn raw_private(&self, input: &[u8]) -> CryptoResult<Vec<u8>> {
        let x = raw_input(&self.n, self.len, input)?;
        let out = self.key.private_raw(&x, RsaPad::None)?;
        if out.len() < self.modulus_len() {
            return left_pad(&out, self.modulus_len());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::digest::digest;
    use ::rsa::traits::{PrivateKeyParts, PublicKeyParts};
    use ::rsa::{BigUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss};
    use std::sync::OnceLock;

    fn key2048() -> &'static RsaPrivateKey {
        static K: OnceLock<RsaPrivateKey> = OnceLock::new();
        K.get_or_init(|| RsaPrivateKey::generate(2048, &[]).expect("keygen"))
    }

    fn their_public(k: &RsaPublicKey) -> ::rsa::RsaPublicKey {
        ::rsa::RsaPublicKey::new(BigUint::from_bytes_be(k.n()), BigUint::from_bytes_be(k.e()))
            .expect("rsa crate accepts our public key")
    }

    fn their_private(k: &RsaPrivateKey) -> ::rsa::RsaPrivateKey {
        let c = k.components();
        let b =
            |s: &Option<SecretBytes>| BigUint::from_bytes_be(s.as_ref().expect("part").expose());
        ::rsa::RsaPrivateKey::from_components(
            BigUint::from_bytes_be(&c.n),
            BigUint::from_bytes_be(&c.e),
            b(&c.d),
            vec![b(&c.p), b(&c.q)],
        )
        .expect("rsa crate accepts our private key")
    }

    /// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) written out independently of AWS-LC, over the
    /// `rsa` crate's raw public operation: lets us check MGF1 hashes that differ from the
    /// message hash, which the `rsa` crate's own PSS cannot express.
    fn independent_pss_verify(
        pk: &::rsa::RsaPublicKey,
        hash: HashAlg,
        mgf1: HashAlg,
        salt_len: usize,
        mhash: &[u8],
        sig: &[u8],
    ) -> bool {
        let em_bits = pk.n().bits() - 1;
        let em_len = em_bits.div_ceil(8);
        let m = ::rsa::hazmat::rsa_encrypt(pk, &BigUint::from_bytes_be(sig)).expect("raw");
        let m = m.to_bytes_be();
        if m.len() > em_len {
            return false;
        }
        let mut em = vec![0u8; em_len - m.len()];
        em.extend_from_slice(&m);
        let h_len = hash.output_len();
        if em[em_len - 1] != 0xbc {
            return false;
        }
        let (masked_db, h) = em[..em_len - 1].split_at(em_len - h_len - 1);
        // MGF1
        let mut mask = Vec::new();
        let mut counter = 0u32;
        while mask.len() < masked_db.len() {
            let mut input = h.to_vec();
            input.extend_from_slice(&counter.to_be_bytes());
            mask.extend_from_slice(&digest(mgf1, &input));
            counter += 1;
        }
        let mut db: Vec<u8> = masked_db.iter().zip(&mask).map(|(a, b)| a ^ b).collect();
        let zero_bits = 8 * em_len - em_bits;
        db[0] &= 0xff >> zero_bits;
        let ps_len = em_len - h_len - salt_len - 2;
        if db[..ps_len].iter().any(|&b| b != 0) || db[ps_len] != 1 {
            return false;
        }
        let salt = &db[ps_len + 1..];
        let mut m_prime = vec![0u8; 8];
        m_prime.extend_from_slice(mhash);
        m_prime.extend_from_slice(salt);
        digest(hash, &m_prime) == h
    }

    #[test]
    fn keys_are_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<RsaPrivateKey>();
        check::<RsaPublicKey>();
    }

    #[test]
    fn generate_sizes_and_exponent() {
        for bits in [1024usize, 3072] {
            let k = RsaPrivateKey::generate(bits, &[0x01, 0x00, 0x01]).expect("keygen");
            assert_eq!(k.modulus_bits(), bits);
            assert_eq!(k.modulus_len(), bits / 8);
            let d = digest(HashAlg::Sha256, b"abc");
            let sig = k.sign_pkcs1v15_digest(HashAlg::Sha256, &d).expect("sign");
            their_public(&k.public_key().unwrap())
                .verify(Pkcs1v15Sign::new::<::rsa::sha2::Sha256>(), &d, &sig)
                .expect("rsa crate verifies");
        }
        let k = RsaPrivateKey::generate(1024, &[3]).expect("e=3");
        assert_eq!(k.public_key().unwrap().e(), &[3]);
        assert_eq!(key2048().modulus_bits(), 2048);
        assert_eq!(key2048().public_key().unwrap().e(), &[1, 0, 1]);
    }

    #[test]
    fn generate_rejects_bad_parameters() {
        assert_eq!(
            RsaPrivateKey::generate(1000, &[]).err(),
            Some(CryptoError::KeySize)
        );
        assert_eq!(
            RsaPrivateKey::generate(512, &[]).err(),
            Some(CryptoError::KeySize)
        );
        assert_eq!(
            RsaPrivateKey::generate(16384, &[]).err(),
            Some(CryptoError::KeySize)
        );
        for e in [
            &[1u8][..],
            &[2],
            &[0x01, 0x00, 0x00],
            &[0],
            &[1, 0, 0, 0, 1],
        ] {
            assert!(
                matches!(
                    RsaPrivateKey::generate(1024, e),
                    Err(CryptoError::InvalidParameter(_))
                ),
                "exponent {e:?}"
            );
        }
    }

    #[test]
    fn pkcs1v15_digest_cross_verify_all_hashes() {
        let k = key2048();
        let theirs = their_public(&k.public_key().unwrap());
        let msg = b"the quick brown fox";
        for hash in [
            HashAlg::Sha1,
            HashAlg::Sha224,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
            HashAlg::Sha3_224,
            HashAlg::Sha3_256,
            HashAlg::Sha3_384,
            HashAlg::Sha3_512,
        ] {
            let d = digest(hash, msg);
            let sig = k.sign_pkcs1v15_digest(hash, &d).expect("sign");
            // The same signature through CKM_RSA_PKCS with a caller-built DigestInfo.
            let mut info = hash.digest_info_prefix().to_vec();
            info.extend_from_slice(&d);
            assert_eq!(k.sign_pkcs1v15(&info).expect("raw sign"), sig, "{hash:?}");
            k.public_key()
                .unwrap()
                .verify_pkcs1v15_digest(hash, &d, &sig)
                .expect("own verify");
            k.public_key()
                .unwrap()
                .verify_pkcs1v15(&info, &sig)
                .expect("raw verify");
            assert_eq!(
                k.public_key()
                    .unwrap()
                    .recover_pkcs1v15(&sig)
                    .expect("recover"),
                info
            );
            // Independent: the rsa crate, unprefixed, compares the whole DigestInfo.
            theirs
                .verify(Pkcs1v15Sign::new_unprefixed(), &info, &sig)
                .expect("rsa crate verifies");
        }
        // And the other way: the rsa crate signs, we verify.
        let d = digest(HashAlg::Sha256, msg);
        let sig = their_private(k)
            .sign(Pkcs1v15Sign::new::<::rsa::sha2::Sha256>(), &d)
            .expect("rsa crate signs");
        k.public_key()
            .unwrap()
            .verify_pkcs1v15_digest(HashAlg::Sha256, &d, &sig)
            .expect("we verify theirs");
    }

    #[test]
    fn pkcs1v15_errors() {
        let k = key2048();
        let pk = k.public_key().unwrap();
        let d = digest(HashAlg::Sha256, b"x");
        assert_eq!(
            k.sign_pkcs1v15_digest(HashAlg::Sha256, &d[..31]).err(),
            Some(CryptoError::DataLen)
        );
        assert_eq!(
            k.sign_pkcs1v15(&[0u8; 246]).err(),
            Some(CryptoError::DataLen)
        );
        assert!(k.sign_pkcs1v15(&[0u8; 245]).is_ok());
        assert!(k.sign_pkcs1v15(&[]).is_ok());
        let mut sig = k.sign_pkcs1v15_digest(HashAlg::Sha256, &d).expect("sign");
        assert_eq!(
            pk.verify_pkcs1v15_digest(HashAlg::Sha256, &d, &sig[1..])
                .err(),
            Some(CryptoError::SignatureLen)
        );
        assert_eq!(
            pk.verify_pkcs1v15_digest(HashAlg::Sha384, &digest(HashAlg::Sha384, b"x"), &sig)
                .err(),
            Some(CryptoError::BadSignature)
        );
        sig[10] ^= 1;
        assert_eq!(
            pk.verify_pkcs1v15_digest(HashAlg::Sha256, &d, &sig).err(),
            Some(CryptoError::BadSignature)
        );
        assert_eq!(
            pk.verify_pkcs1v15(b"abc", &sig).err(),
            Some(CryptoError::BadSignature)
        );
        assert_eq!(
            pk.recover_pkcs1v15(&sig).err(),
            Some(CryptoError::BadSignature)
        );
        assert_eq!(
            pk.recover_pkcs1v15(&[0u8; 255]).err(),
            Some(CryptoError::SignatureLen)
        );
        // A signature >= n is invalid, not a crash.
        assert_eq!(
            pk.recover_pkcs1v15(&[0xffu8; 256]).err(),
            Some(CryptoError::BadSignature)
        );
    }

    #[test]
    fn pss_combinations_cross_verify() {
        let k = key2048();
        let theirs = their_public(&k.public_key().unwrap());
        let combos = [
            (HashAlg::Sha256, HashAlg::Sha256, 32),
            (HashAlg::Sha256, HashAlg::Sha256, 0),
            (HashAlg::Sha1, HashAlg::Sha1, 20),
            (HashAlg::Sha384, HashAlg::Sha384, 48),
            (HashAlg::Sha512, HashAlg::Sha512, 64),
            (HashAlg::Sha256, HashAlg::Sha1, 20),
            (HashAlg::Sha512, HashAlg::Sha256, 7),
            (HashAlg::Sha224, HashAlg::Sha384, 100),
            (HashAlg::Sha3_256, HashAlg::Sha3_256, 32),
            (HashAlg::Sha256, HashAlg::Sha3_512, 1),
            // the largest salt a 2048-bit key allows with SHA-256: 256 - 32 - 2
            (HashAlg::Sha256, HashAlg::Sha256, 222),
        ];
        for (hash, mgf1, salt) in combos {
            let mhash = digest(hash, b"pss message");
            let sig = k.sign_pss(hash, mgf1, salt, &mhash).expect("sign");
            assert_eq!(sig.len(), 256);
            k.public_key()
                .unwrap()
                .verify_pss(hash, mgf1, salt, &mhash, &sig)
                .expect("own verify");
            assert!(
                independent_pss_verify(&theirs, hash, mgf1, salt, &mhash, &sig),
                "independent verify {hash:?}/{mgf1:?}/{salt}"
            );
            if hash == mgf1 && hash == HashAlg::Sha256 {
                theirs
                    .verify(
                        Pss::new_with_salt::<::rsa::sha2::Sha256>(salt),
                        &mhash,
                        &sig,
                    )
                    .expect("rsa crate verifies");
            }
            // Wrong salt length must not verify.
            if salt == 222 {
                continue;
            }
            assert_eq!(
                k.public_key()
                    .unwrap()
                    .verify_pss(hash, mgf1, salt + 1, &mhash, &sig)
                    .err(),
                Some(CryptoError::BadSignature)
            );
        }
        // The rsa crate signs PSS, we verify.
        let mhash = digest(HashAlg::Sha384, b"theirs");
        let sig = their_private(k)
            .sign_with_rng(
                &mut rand::thread_rng(),
                Pss::new_with_salt::<::rsa::sha2::Sha384>(48),
                &mhash,
            )
            .expect("rsa crate signs");
        k.public_key()
            .unwrap()
            .verify_pss(HashAlg::Sha384, HashAlg::Sha384, 48, &mhash, &sig)
            .expect("we verify theirs");
    }

    #[test]
    fn pss_errors() {
        let k = key2048();
        let mhash = digest(HashAlg::Sha256, b"m");
        assert!(matches!(
            k.sign_pss(HashAlg::Sha256, HashAlg::Sha256, 223, &mhash),
            Err(CryptoError::InvalidParameter(_))
        ));
        assert!(matches!(
            k.sign_pss(HashAlg::Sha256, HashAlg::Sha256, usize::MAX, &mhash),
            Err(CryptoError::InvalidParameter(_))
        ));
        assert_eq!(
            k.sign_pss(HashAlg::Sha256, HashAlg::Sha256, 32, &mhash[..20])
                .err(),
            Some(CryptoError::DataLen)
        );
        let sig = k
            .sign_pss(HashAlg::Sha256, HashAlg::Sha256, 32, &mhash)
            .expect("sign");
        assert_eq!(
            k.public_key()
                .unwrap()
                .verify_pss(HashAlg::Sha256, HashAlg::Sha256, 32, &mhash, &sig[..100])
                .err(),
            Some(CryptoError::SignatureLen)
        );
        assert_eq!(
            k.public_key()
                .unwrap()
                .verify_pss(HashAlg::Sha256, HashAlg::Sha1, 32, &mhash, &sig)
                .err(),
            Some(CryptoError::BadSignature)
        );
    }

    #[test]
    fn oaep_cross_and_round_trip() {
        let k = key2048();
        let pk = k.public_key().unwrap();
        let theirs = their_public(&pk);
        let mut rng = rand::thread_rng();
        // They encrypt, we decrypt: no label, with label, different MGF1 hash.
        let ct = theirs
            .encrypt(&mut rng, Oaep::new::<rsa_sha1::Sha1>(), b"secret one")
            .expect("enc");
        let pt = k
            .decrypt_oaep(HashAlg::Sha1, HashAlg::Sha1, &[], &ct)
            .expect("dec");
        assert_eq!(pt.expose(), b"secret one");
        let ct = theirs
            .encrypt(
                &mut rng,
                Oaep::new_with_label::<::rsa::sha2::Sha256, _>("my label"),
                b"two",
            )
            .expect("enc");
        let pt = k
            .decrypt_oaep(HashAlg::Sha256, HashAlg::Sha256, b"my label", &ct)
            .expect("dec");
        assert_eq!(pt.expose(), b"two");
        assert_eq!(
            k.decrypt_oaep(HashAlg::Sha256, HashAlg::Sha256, b"other", &ct)
                .err(),
            Some(CryptoError::EncryptedDataInvalid)
        );
        assert_eq!(
            k.decrypt_oaep(HashAlg::Sha256, HashAlg::Sha256, &[], &ct)
                .err(),
            Some(CryptoError::EncryptedDataInvalid)
        );
        let ct = theirs
            .encrypt(
                &mut rng,
                Oaep::new_with_mgf_hash::<::rsa::sha2::Sha512, rsa_sha1::Sha1>(),
                b"three",
            )
            .expect("enc");
        let pt = k
            .decrypt_oaep(HashAlg::Sha512, HashAlg::Sha1, &[], &ct)
            .expect("dec");
        assert_eq!(pt.expose(), b"three");

        // We encrypt, they decrypt.
        let priv_theirs = their_private(k);
        let ct = pk
            .encrypt_oaep(HashAlg::Sha256, HashAlg::Sha1, b"lbl", b"four")
            .expect("enc");
        let mut scheme = Oaep::new_with_mgf_hash::<::rsa::sha2::Sha256, rsa_sha1::Sha1>();
        scheme.label = Some("lbl".to_string());
        assert_eq!(
            priv_theirs.decrypt(scheme, &ct).expect("they decrypt"),
            b"four"
        );
        let ct = pk
            .encrypt_oaep(HashAlg::Sha384, HashAlg::Sha384, &[], b"")
            .expect("enc");
        assert_eq!(
            priv_theirs
                .decrypt(Oaep::new::<::rsa::sha2::Sha384>(), &ct)
                .expect("they decrypt"),
            b""
        );
        // SHA-3 round trip (no independent verifier in the rsa crate for this mix).
        let ct = pk
            .encrypt_oaep(HashAlg::Sha3_256, HashAlg::Sha3_256, b"x", b"five")
            .expect("enc");
        let pt = k
            .decrypt_oaep(HashAlg::Sha3_256, HashAlg::Sha3_256, b"x", &ct)
            .expect("dec");
        assert_eq!(pt.expose(), b"five");
    }

    #[test]
    fn oaep_errors() {
        let k = key2048();
        let pk = k.public_key().unwrap();
        // max = 256 - 2*32 - 2 = 190
        assert!(pk
            .encrypt_oaep(HashAlg::Sha256, HashAlg::Sha256, &[], &[7; 190])
            .is_ok());
        assert_eq!(
            pk.encrypt_oaep(HashAlg::Sha256, HashAlg::Sha256, &[], &[7; 191])
                .err(),
            Some(CryptoError::DataLen)
        );
        assert_eq!(
            k.decrypt_oaep(HashAlg::Sha256, HashAlg::Sha256, &[], &[1; 255])
                .err(),
            Some(CryptoError::EncryptedDataLen)
        );
        assert_eq!(
            k.decrypt_oaep(HashAlg::Sha256, HashAlg::Sha256, &[], &[1; 256])
                .err(),
            Some(CryptoError::EncryptedDataInvalid)
        );
        let small = RsaPrivateKey::generate(1024, &[]).expect("keygen");
        // 128 < 2*64 + 2: SHA-512 OAEP impossible with a 1024-bit key.
        assert!(matches!(
            small
                .public_key()
                .unwrap()
                .encrypt_oaep(HashAlg::Sha512, HashAlg::Sha512, &[], b"a"),
            Err(CryptoError::InvalidParameter(_))
        ));
    }

    #[test]
    fn pkcs1v15_encryption() {
        let k = key2048();
        let pk = k.public_key().unwrap();
        let mut rng = rand::thread_rng();
        let ct = their_public(&pk)
            .encrypt(&mut rng, Pkcs1v15Encrypt, b"hello")
            .expect("enc");
        assert_eq!(k.decrypt_pkcs1v15(&ct).expect("dec").expose(), b"hello");
        let ct = pk.encrypt_pkcs1v15(&[9; 245]).expect("max len");
        assert_eq!(
            their_private(k)
                .decrypt(Pkcs1v15Encrypt, &ct)
                .expect("they decrypt"),
            vec![9; 245]
        );
        assert_eq!(
            pk.encrypt_pkcs1v15(&[9; 246]).err(),
            Some(CryptoError::DataLen)
        );
        assert_eq!(
            k.decrypt_pkcs1v15(&ct[1..]).err(),
            Some(CryptoError::EncryptedDataLen)
        );
        // A raw value with no type-2 padding.
        let junk = k
            .public_key()
            .unwrap()
            .raw_public(&[0x42; 200])
            .expect("raw");
        assert_eq!(
            k.decrypt_pkcs1v15(&junk).err(),
            Some(CryptoError::EncryptedDataInvalid)
        );
        assert_eq!(
            k.decrypt_pkcs1v15(&[0xff; 256]).err(),
            Some(CryptoError::EncryptedDataInvalid)
        );
    }

    #[test]
    fn raw_rsa() {
        let k = key2048();
        let pk = k.public_key().unwrap();
        let theirs = their_public(&pk);
        let x = [0x5a; 100];
        let y = k.raw_private(&x).expect("raw private");
        assert_eq!(y.len(), 256);
        // Independent: y^e mod n == x.
        let back = ::rsa::hazmat::rsa_encrypt(&theirs, &BigUint::from_bytes_be(&y)).expect("raw");
        assert_eq!(back.to_bytes_be(), x.to_vec());
        let z = pk.raw_public(&y).expect("raw public");
        assert_eq!(z.len(), 256);
        assert_eq!(&z[156..], &x[..]);
        assert!(z[..156].iter().all(|&b| b == 0));
        // Small outputs are left-padded to k.
        assert_eq!(pk.raw_public(&[1]).expect("one"), {
            let mut v = vec![0u8; 256];
            v[255] = 1;
            v
        });
        // AWS-LC refuses the private operation's fixed points.
        assert_eq!(k.raw_private(&[1]).err(), Some(CryptoError::DataInvalid));
        assert_eq!(k.raw_private(&[]).err(), Some(CryptoError::DataInvalid));
        // Input >= n, > k.
        assert_eq!(k.raw_private(pk.n()).err(), Some(CryptoError::DataInvalid));
        assert_eq!(
            k.raw_private(&[0xff; 256]).err(),
            Some(CryptoError::DataInvalid)
        );
        assert_eq!(
            pk.raw_public(&[0xff; 256]).err(),
            Some(CryptoError::DataInvalid)
        );
        assert_eq!(k.raw_private(&[1; 257]).err(), Some(CryptoError::DataLen));
        // Leading zeros beyond k are still "longer than k".
        assert_eq!(pk.raw_public(&[0; 257]).err(), Some(CryptoError::DataLen));
    }

    #[test]
    fn components_round_trip_and_checks() {
        let k = key2048();
        let c = k.components();
        assert!(c.p.is_some() && c.qinv.is_some());
        assert_eq!(c.n, k.public_key().unwrap().n());
        assert_ne!(c.n[0], 0);
        let shown = format!("{c:?} {k:?} {:?}", k.public_key().unwrap());
        for secret in [&c.d, &c.p, &c.q] {
            let secret = secret.as_ref().expect("part").expose();
            let as_list = format!("{:?}", &secret[..4]);
            let inner = &as_list[1..as_list.len() - 1];
            assert!(!shown.contains(inner), "Debug leaks {inner}");
            assert!(!shown.contains(&hex::encode(&secret[..4])));
        }

        let k2 = RsaPrivateKey::from_components(&c).expect("from components");
        let d = digest(HashAlg::Sha256, b"again");
        assert_eq!(
            k2.sign_pkcs1v15_digest(HashAlg::Sha256, &d).expect("sign"),
            k.sign_pkcs1v15_digest(HashAlg::Sha256, &d).expect("sign")
        );

        // Without CRT: n, e, d only (and with a partial CRT set, which is ignored).
        let no_crt = RsaComponents {
            n: c.n.clone(),
            e: c.e.clone(),
            d: c.d.as_ref().map(SecretBytes::duplicate),
            p: c.p.as_ref().map(SecretBytes::duplicate),
            q: None,
            dp: None,
            dq: None,
            qinv: None,
        };
        let k3 = RsaPrivateKey::from_components(&no_crt).expect("no crt");
        let sig = k3.sign_pkcs1v15_digest(HashAlg::Sha256, &d).expect("sign");
        their_public(&k.public_key().unwrap())
            .verify(Pkcs1v15Sign::new::<::rsa::sha2::Sha256>(), &d, &sig)
            .expect("verify");
        assert!(k3.components().p.is_none());
        let ct = k
            .public_key()
            .unwrap()
            .encrypt_oaep(HashAlg::Sha1, HashAlg::Sha1, &[], b"z")
            .expect("e");
        assert_eq!(
            k3.decrypt_oaep(HashAlg::Sha1, HashAlg::Sha1, &[], &ct)
                .expect("d")
                .expose(),
            b"z"
        );

        // Inconsistent components are rejected.
        let mut bad_d = c.d.as_ref().expect("d").duplicate();
        let last = bad_d.len() - 1;
        bad_d.expose_mut()[last] ^= 2;
        let wrong = RsaComponents {
            n: c.n.clone(),
            e: c.e.clone(),
            d: Some(bad_d),
            p: None,
            q: None,
            dp: None,
            dq: None,
            qinv: None,
        };
        assert!(matches!(
            RsaPrivateKey::from_components(&wrong),
            Err(CryptoError::InvalidKey(_))
        ));
        let mut bad_q = c.q.as_ref().expect("q").duplicate();
        bad_q.expose_mut()[0] ^= 1;
        let wrong = RsaComponents {
            n: c.n.clone(),
            e: c.e.clone(),
            d: c.d.as_ref().map(SecretBytes::duplicate),
            p: c.p.as_ref().map(SecretBytes::duplicate),
            q: Some(bad_q),
            dp: c.dp.as_ref().map(SecretBytes::duplicate),
            dq: c.dq.as_ref().map(SecretBytes::duplicate),
            qinv: c.qinv.as_ref().map(SecretBytes::duplicate),
        };
        assert!(matches!(
            RsaPrivateKey::from_components(&wrong),
            Err(CryptoError::InvalidKey(_))
        ));
        let missing_d = RsaComponents {
            n: c.n.clone(),
            e: c.e.clone(),
            d: None,
            p: None,
            q: None,
            dp: None,
            dq: None,
            qinv: None,
        };
        assert!(matches!(
            RsaPrivateKey::from_components(&missing_d),
            Err(CryptoError::InvalidKey(_))
        ));

        // Public key from components; leading zeros tolerated.
        let mut n0 = vec![0u8];
        n0.extend_from_slice(&c.n);
        let pk = RsaPublicKey::from_components(&n0, &[0, 1, 0, 1]).expect("public");
        assert_eq!(pk.n(), &c.n[..]);
        assert_eq!(pk.e(), &[1, 0, 1]);
        pk.verify_pkcs1v15_digest(HashAlg::Sha256, &d, &sig)
            .expect("verify");
        assert!(RsaPublicKey::from_components(&[], &[3]).is_err());
        assert_eq!(
            RsaPublicKey::from_components(&[0xff; 8], &[3]).err(),
            Some(CryptoError::KeySize)
        );
        let theirs = their_private(k);
        assert_eq!(theirs.primes().len(), 2);
    }

    #[test]
    fn concurrent_use() {
        let k = key2048();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                s.spawn(move || {
                    for i in 0..5u8 {
                        let d = digest(HashAlg::Sha256, &[t, i]);
                        let sig = k.sign_pkcs1v15_digest(HashAlg::Sha256, &d).expect("sign");
                        k.public_key()
                            .unwrap()
                            .verify_pkcs1v15_digest(HashAlg::Sha256, &d, &sig)
                            .expect("verify");
                    }
                });
            }
        });
    }
}

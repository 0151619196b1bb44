//! The one place the asymmetric algorithms call AWS-LC through raw `aws-lc-sys` FFI.
//!
//! aws-lc-rs's safe API has no entry for what PKCS#11 needs here: raw RSA (CKM_RSA_X_509),
//! PKCS#1 v1.5 over caller-built DigestInfo (CKM_RSA_PKCS), PSS/OAEP with an MGF1 hash
//! different from the message hash and any salt length, OAEP labels, ECDSA over a hash
//! of any length, importing keys from components, exporting components. Everything
//! here is a small owning wrapper (`Drop` frees) plus safe methods; `rsa.rs` and `ec.rs`
//! hold no `unsafe`.
//!
//! Thread safety: AWS-LC (like BoringSSL) documents `RSA` and `EC_KEY` objects as safe for
//! concurrent use by operations that do not mutate the key (signing, decryption,
//! verification: the lazily built Montgomery contexts and blinding state are guarded by
//! the key's own lock). After construction these wrappers are only used that way, which
//! is what makes the `Send`/`Sync` impls below sound. aws-lc-rs relies on the same
//! guarantee for its own key types.

#![allow(unsafe_code)]

use std::os::raw::c_int;
use std::ptr::{self, NonNull};

use aws_lc_sys as sys;

use super::digest::HashAlg;
use super::{CryptoError, CryptoResult};
use crate::secure_mem::SecretBytes;

/// Clears AWS-LC's thread-local error queue after a failed call, so a later unrelated
/// failure does not report a stale reason.
fn clear_errors() {
    // SAFETY: ERR_clear_error only touches the calling thread's error queue.
    unsafe { sys::ERR_clear_error() }
}

/// The `EVP_MD` for a hash algorithm (static objects owned by AWS-LC; never freed).
fn evp_md(hash: HashAlg) -> *const sys::EVP_MD {
    // SAFETY: each EVP_* accessor returns a pointer to a static, immutable EVP_MD.
    unsafe {
        match hash {
            HashAlg::Sha1 => sys::EVP_sha1(),
            HashAlg::Sha224 => sys::EVP_sha224(),
            HashAlg::Sha256 => sys::EVP_sha256(),
            HashAlg::Sha384 => sys::EVP_sha384(),
            HashAlg::Sha512 => sys::EVP_sha512(),
            HashAlg::Sha3_224 => sys::EVP_sha3_224(),
            HashAlg::Sha3_256 => sys::EVP_sha3_256(),
            HashAlg::Sha3_384 => sys::EVP_sha3_384(),
            HashAlg::Sha3_512 => sys::EVP_sha3_512(),
        }
    }
}

fn hash_nid(hash: HashAlg) -> c_int {
    match hash {
        HashAlg::Sha1 => sys::NID_sha1,
        HashAlg::Sha224 => sys::NID_sha224,
        HashAlg::Sha256 => sys::NID_sha256,
        HashAlg::Sha384 => sys::NID_sha384,
        HashAlg::Sha512 => sys::NID_sha512,
        HashAlg::Sha3_224 => sys::NID_sha3_224,
        HashAlg::Sha3_256 => sys::NID_sha3_256,
        HashAlg::Sha3_384 => sys::NID_sha3_384,
        HashAlg::Sha3_512 => sys::NID_sha3_512,
    }
}

// ---------------------------------------------------------------------------------------
// BIGNUM
// ---------------------------------------------------------------------------------------

/// An owned `BIGNUM`, wiped on free (it may hold a private exponent or scalar).
struct Bn(NonNull<sys::BIGNUM>);

impl Bn {
    /// From unsigned big-endian bytes (empty means zero).
    fn from_be(bytes: &[u8]) -> CryptoResult<Bn> {
        // SAFETY: `bytes` is a valid slice for its length; a NULL `ret` asks BN_bin2bn
        // to allocate a new BIGNUM, which we own from here on.
        let p = unsafe { sys::BN_bin2bn(bytes.as_ptr(), bytes.len(), ptr::null_mut()) };
        NonNull::new(p)
            .map(Bn)
            .ok_or(CryptoError::Internal("BN_bin2bn"))
    }

    fn from_u64(v: u64) -> CryptoResult<Bn> {
        let bn = Bn::from_be(&[])?;
        // SAFETY: `bn` is a valid BIGNUM we own.
        if unsafe { sys::BN_set_word(bn.0.as_ptr(), v) } != 1 {
            return Err(CryptoError::Internal("BN_set_word"));
        }
        Ok(bn)
    }

    fn as_ptr(&self) -> *const sys::BIGNUM {
        self.0.as_ptr()
    }

    /// Gives up ownership (for calls documented to take it).
    fn into_raw(self) -> *mut sys::BIGNUM {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: we own this BIGNUM; BN_clear_free wipes and frees it exactly once.
        unsafe { sys::BN_clear_free(self.0.as_ptr()) }
    }
}

/// Number of bytes of a borrowed BIGNUM.
///
/// # Safety contract (upheld by callers in this file)
/// `bn` is NULL or points to a live BIGNUM owned by a key we hold.
fn bn_num_bytes(bn: *const sys::BIGNUM) -> usize {
    if bn.is_null() {
        return 0;
    }
    // SAFETY: `bn` is non-NULL and live (contract above).
    unsafe { sys::BN_num_bytes(bn) as usize }
}

/// Writes a borrowed BIGNUM into `out` (exactly `bn_num_bytes(bn)` long).
fn bn_write(bn: *const sys::BIGNUM, out: &mut [u8]) -> CryptoResult<()> {
    if bn.is_null() {
        return Err(CryptoError::Internal("missing BIGNUM"));
    }
    // SAFETY: `bn` is live; `out` is writable for `out.len()` bytes and BN_bn2bin_padded
    // fails rather than writing more than that.
    if unsafe { sys::BN_bn2bin_padded(out.as_mut_ptr(), out.len(), bn) } != 1 {
        return Err(CryptoError::Internal("BN_bn2bin_padded"));
    }
    Ok(())
}

fn bn_to_vec(bn: *const sys::BIGNUM) -> CryptoResult<Vec<u8>> {
    let mut v = vec![0u8; bn_num_bytes(bn)];
    bn_write(bn, &mut v)?;
    Ok(v)
}

fn bn_to_secret(bn: *const sys::BIGNUM) -> CryptoResult<SecretBytes> {
    let mut s = SecretBytes::zeroed(bn_num_bytes(bn));
    bn_write(bn, s.expose_mut())?;
    Ok(s)
}

fn bn_to_secret_padded(bn: *const sys::BIGNUM, len: usize) -> CryptoResult<SecretBytes> {
    let mut s = SecretBytes::zeroed(len);
    bn_write(bn, s.expose_mut())?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------
// RSA
// ---------------------------------------------------------------------------------------

/// PKCS#1 padding modes of the raw RSA calls.
#[derive(Clone, Copy)]
pub(super) enum RsaPad {
    /// EMSA-PKCS1-v1_5 (sign: type 1) / RSAES-PKCS1-v1_5 (encrypt: type 2).
    Pkcs1,
    /// No padding: the bare RSA permutation.
    None,
}

impl RsaPad {
    fn raw(self) -> c_int {
        match self {
            RsaPad::Pkcs1 => sys::RSA_PKCS1_PADDING,
            RsaPad::None => sys::RSA_NO_PADDING,
        }
    }
}

/// CRT components for [`LcRsa::new_private`].
pub(super) struct RsaCrt<'a> {
    pub p: &'a [u8],
    pub q: &'a [u8],
    pub dp: &'a [u8],
    pub dq: &'a [u8],
    pub qinv: &'a [u8],
}

/// Components read back from a key: (n, e, d, [p, q, dp, dq, qinv]).
pub(super) struct RsaParts {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Option<SecretBytes>,
    pub crt: Option<[SecretBytes; 5]>,
}

/// An RSA key (public or private) held as an `EVP_PKEY` that owns its `RSA`.
pub(super) struct LcRsa {
    pkey: NonNull<sys::EVP_PKEY>,
    /// Borrowed from `pkey`, valid as long as `pkey` is.
    rsa: NonNull<sys::RSA>,
}

// SAFETY: see the module comment: after construction only thread-safe, non-mutating
// AWS-LC operations touch the key, and the pointers are owned by this value alone.
unsafe impl Send for LcRsa {}
// SAFETY: as above.
unsafe impl Sync for LcRsa {}

impl Drop for LcRsa {
    fn drop(&mut self) {
        // SAFETY: we own `pkey` (which owns `rsa`); freed exactly once here.
        unsafe { sys::EVP_PKEY_free(self.pkey.as_ptr()) }
    }
}

/// An owned `EVP_PKEY_CTX`.
struct PkeyCtx(NonNull<sys::EVP_PKEY_CTX>);

impl Drop for PkeyCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context; freed exactly once.
        unsafe { sys::EVP_PKEY_CTX_free(self.0.as_ptr()) }
    }
}

impl LcRsa {
    /// Takes ownership of a freshly created `RSA*` (NULL means the creating call failed).
    fn adopt(rsa: *mut sys::RSA, what: &'static str) -> CryptoResult<LcRsa> {
        let Some(rsa) = NonNull::new(rsa) else {
            clear_errors();
            return Err(CryptoError::InvalidKey(what));
        };
        // SAFETY: EVP_PKEY_new has no preconditions.
        let pkey = unsafe { sys::EVP_PKEY_new() };
        let Some(pkey) = NonNull::new(pkey) else {
            // SAFETY: we still own `rsa`.
            unsafe { sys::RSA_free(rsa.as_ptr()) };
            return Err(CryptoError::Internal("EVP_PKEY_new"));
        };
        // SAFETY: both are valid; on success EVP_PKEY_assign_RSA takes ownership of `rsa`.
        if unsafe { sys::EVP_PKEY_assign_RSA(pkey.as_ptr(), rsa.as_ptr()) } != 1 {
            // SAFETY: assignment failed, so we still own both.
            unsafe {
                sys::RSA_free(rsa.as_ptr());
                sys::EVP_PKEY_free(pkey.as_ptr());
            }
            return Err(CryptoError::Internal("EVP_PKEY_assign_RSA"));
        }
        Ok(LcRsa { pkey, rsa })
    }

    pub fn generate(bits: usize, e: u64) -> CryptoResult<LcRsa> {
        let bits_c = c_int::try_from(bits).map_err(|_| CryptoError::KeySize)?;
        let e = Bn::from_u64(e)?;
        // SAFETY: RSA_new has no preconditions.
        let rsa = unsafe { sys::RSA_new() };
        let Some(rsa) = NonNull::new(rsa) else {
            return Err(CryptoError::Internal("RSA_new"));
        };
        // SAFETY: `rsa` and `e` are valid; a NULL callback is allowed.
        let ok =
            unsafe { sys::RSA_generate_key_ex(rsa.as_ptr(), bits_c, e.as_ptr(), ptr::null_mut()) };
        if ok != 1 {
            clear_errors();
            // SAFETY: we own `rsa`.
            unsafe { sys::RSA_free(rsa.as_ptr()) };
            return Err(CryptoError::Internal("RSA key generation failed"));
        }
        LcRsa::adopt(rsa.as_ptr(), "generated RSA key")
    }

    /// A private key; AWS-LC checks the components are consistent (RSA_check_key).
    pub fn new_private(
        n: &[u8],
        e: &[u8],
        d: &[u8],
        crt: Option<RsaCrt<'_>>,
    ) -> CryptoResult<LcRsa> {
        let (n, e, d) = (Bn::from_be(n)?, Bn::from_be(e)?, Bn::from_be(d)?);
        let rsa = match crt {
            Some(c) => {
                let p = Bn::from_be(c.p)?;
                let q = Bn::from_be(c.q)?;
                let dp = Bn::from_be(c.dp)?;
                let dq = Bn::from_be(c.dq)?;
                let qinv = Bn::from_be(c.qinv)?;
                // SAFETY: all BIGNUMs are valid; the call copies them (does not take
                // ownership) and returns a new RSA or NULL.
                unsafe {
                    sys::RSA_new_private_key(
                        n.as_ptr(),
                        e.as_ptr(),
                        d.as_ptr(),
                        p.as_ptr(),
                        q.as_ptr(),
                        dp.as_ptr(),
                        dq.as_ptr(),
                        qinv.as_ptr(),
                    )
                }
            }
            // SAFETY: as above.
            None => unsafe { sys::RSA_new_private_key_no_crt(n.as_ptr(), e.as_ptr(), d.as_ptr()) },
        };
        LcRsa::adopt(rsa, "RSA private key components rejected")
    }

    pub fn new_public(n: &[u8], e: &[u8]) -> CryptoResult<LcRsa> {
        let (n, e) = (Bn::from_be(n)?, Bn::from_be(e)?);
        // SAFETY: valid BIGNUMs, copied by the call.
        let rsa = unsafe { sys::RSA_new_public_key(n.as_ptr(), e.as_ptr()) };
        LcRsa::adopt(rsa, "RSA public key rejected")
    }

    fn rsa(&self) -> *mut sys::RSA {
        self.rsa.as_ptr()
    }

    /// Modulus length in bytes.
    pub fn size(&self) -> usize {
        // SAFETY: valid key.
        unsafe { sys::RSA_size(self.rsa()) as usize }
    }

    pub fn bits(&self) -> usize {
        // SAFETY: valid key.
        unsafe { sys::RSA_bits(self.rsa()) as usize }
    }

    /// The modulus and public exponent (big-endian), without touching the private parts.
    pub fn public_parts(&self) -> CryptoResult<(Vec<u8>, Vec<u8>)> {
        let (mut n, mut e, mut d) = (ptr::null(), ptr::null(), ptr::null());
        // SAFETY: valid key; the out-pointers receive borrowed BIGNUMs that live as long
        // as the key (`d` is ignored).
        unsafe { sys::RSA_get0_key(self.rsa(), &mut n, &mut e, &mut d) };
        Ok((bn_to_vec(n)?, bn_to_vec(e)?))
    }

    pub fn parts(&self) -> CryptoResult<RsaParts> {
        let (mut n, mut e, mut d) = (ptr::null(), ptr::null(), ptr::null());
        let (mut p, mut q) = (ptr::null(), ptr::null());
        let (mut dp, mut dq, mut qi) = (ptr::null(), ptr::null(), ptr::null());
        // SAFETY: valid key; the out-pointers receive borrowed (possibly NULL) BIGNUMs
        // that live as long as the key.
        unsafe {
            sys::RSA_get0_key(self.rsa(), &mut n, &mut e, &mut d);
            sys::RSA_get0_factors(self.rsa(), &mut p, &mut q);
            sys::RSA_get0_crt_params(self.rsa(), &mut dp, &mut dq, &mut qi);
        }
        let d = if d.is_null() {
            None
        } else {
            Some(bn_to_secret(d)?)
        };
        let crt = if [p, q, dp, dq, qi].iter().any(|b| b.is_null()) {
            None
        } else {
            Some([
                bn_to_secret(p)?,
                bn_to_secret(q)?,
                bn_to_secret(dp)?,
                bn_to_secret(dq)?,
                bn_to_secret(qi)?,
            ])
        };
        Ok(RsaParts {
            n: bn_to_vec(n)?,
            e: bn_to_vec(e)?,
            d,
            crt,
        })
    }

    /// RSA_sign: EMSA-PKCS1-v1_5 with AWS-LC's DigestInfo for `hash`.
    pub fn sign_digest(&self, hash: HashAlg, digest: &[u8]) -> CryptoResult<Vec<u8>> {
        let mut out = vec![0u8; self.size()];
        let mut out_len: std::os::raw::c_uint = 0;
        // SAFETY: `digest` is valid for its length; `out` has RSA_size bytes, which is
        // what RSA_sign requires.
        let ok = unsafe {
            sys::RSA_sign(
                hash_nid(hash),
                digest.as_ptr(),
                digest.len(),
                out.as_mut_ptr(),
                &mut out_len,
                self.rsa(),
            )
        };
        if ok != 1 {
            clear_errors();
            return Err(CryptoError::Internal("RSA_sign"));
        }
        out.truncate(out_len as usize);
        Ok(out)
    }

    pub fn verify_digest(&self, hash: HashAlg, digest: &[u8], sig: &[u8]) -> bool {
        // SAFETY: slices valid for their lengths; key valid.
        let ok = unsafe {
            sys::RSA_verify(
                hash_nid(hash),
                digest.as_ptr(),
                digest.len(),
                sig.as_ptr(),
                sig.len(),
                self.rsa(),
            )
        };
        if ok != 1 {
            clear_errors();
        }
        ok == 1
    }

    /// Private-key operation with the given padding (RSA_sign_raw). Output: k bytes.
    pub fn private_raw(&self, input: &[u8], pad: RsaPad) -> CryptoResult<Vec<u8>> {
        let k = self.size();
        let mut out = vec![0u8; k];
        let mut out_len = 0usize;
        // SAFETY: `out` is writable for `k` bytes (= max_out); `input` is valid.
        let ok = unsafe {
            sys::RSA_sign_raw(
                self.rsa(),
                &mut out_len,
                out.as_mut_ptr(),
                k,
                input.as_ptr(),
                input.len(),
                pad.raw(),
            )
        };
        if ok != 1 {
            clear_errors();
            return Err(CryptoError::DataInvalid);
        }
        out.truncate(out_len);
        Ok(out)
    }

    /// Public-key operation, then removal of the padding (RSA_verify_raw).
    pub fn public_raw(&self, input: &[u8], pad: RsaPad) -> Option<Vec<u8>> {
        let k = self.size();
        let mut out = vec![0u8; k];
        let mut out_len = 0usize;
        // SAFETY: as in `private_raw`.
        let ok = unsafe {
            sys::RSA_verify_raw(
                self.rsa(),
                &mut out_len,
                out.as_mut_ptr(),
                k,
                input.as_ptr(),
                input.len(),
                pad.raw(),
            )
        };
        if ok != 1 {
            clear_errors();
            return None;
        }
        out.truncate(out_len);
        Some(out)
    }

    pub fn sign_pss(
        &self,
        hash: HashAlg,
        mgf1: HashAlg,
        salt_len: c_int,
        mhash: &[u8],
    ) -> CryptoResult<Vec<u8>> {
        let k = self.size();
        let mut out = vec![0u8; k];
        let mut out_len = 0usize;
        // SAFETY: `out` writable for `k` bytes; `mhash` valid; static EVP_MDs.
        let ok = unsafe {
            sys::RSA_sign_pss_mgf1(
                self.rsa(),
                &mut out_len,
                out.as_mut_ptr(),
                k,
                mhash.as_ptr(),
                mhash.len(),
                evp_md(hash),
                evp_md(mgf1),
                salt_len,
            )
        };
        if ok != 1 {
            clear_errors();
            return Err(CryptoError::Internal("RSA_sign_pss_mgf1"));
        }
        out.truncate(out_len);
        Ok(out)
    }

    pub fn verify_pss(
        &self,
        hash: HashAlg,
        mgf1: HashAlg,
        salt_len: c_int,
        mhash: &[u8],
        sig: &[u8],
    ) -> bool {
        // SAFETY: slices valid for their lengths; static EVP_MDs; valid key.
        let ok = unsafe {
            sys::RSA_verify_pss_mgf1(
                self.rsa(),
                mhash.as_ptr(),
                mhash.len(),
                evp_md(hash),
                evp_md(mgf1),
                salt_len,
                sig.as_ptr(),
                sig.len(),
            )
        };
        if ok != 1 {
            clear_errors();
        }
        ok == 1
    }

    /// RSA_decrypt (private key) with PKCS#1 v1.5 type 2 or no padding. The padding
    /// check is constant-time inside AWS-LC; every failure is reported the same way.
    pub fn decrypt(&self, ct: &[u8], pad: RsaPad) -> CryptoResult<SecretBytes> {
        let k = self.size();
        let mut buf = SecretBytes::zeroed(k);
        let mut out_len = 0usize;
        // SAFETY: `buf` writable for `k` bytes; `ct` valid.
        let ok = unsafe {
            sys::RSA_decrypt(
                self.rsa(),
                &mut out_len,
                buf.expose_mut().as_mut_ptr(),
                k,
                ct.as_ptr(),
                ct.len(),
                pad.raw(),
            )
        };
        if ok != 1 {
            clear_errors();
            return Err(CryptoError::EncryptedDataInvalid);
        }
        let plain = buf.expose().get(..out_len).unwrap_or_default();
        Ok(SecretBytes::from_slice(plain))
    }

    /// RSA_encrypt (public key) with PKCS#1 v1.5 type 2 or no padding.
    pub fn encrypt(&self, data: &[u8], pad: RsaPad) -> CryptoResult<Vec<u8>> {
        let k = self.size();
        let mut out = vec![0u8; k];
        let mut out_len = 0usize;
        // SAFETY: `out` writable for `k` bytes; `data` valid.
        let ok = unsafe {
            sys::RSA_encrypt(
                self.rsa(),
                &mut out_len,
                out.as_mut_ptr(),
                k,
                data.as_ptr(),
                data.len(),
                pad.raw(),
            )
        };
        if ok != 1 {
            clear_errors();
            return Err(CryptoError::DataInvalid);
        }
        out.truncate(out_len);
        Ok(out)
    }

    /// An `EVP_PKEY_CTX` set up for OAEP in the given direction.
    fn oaep_ctx(
        &self,
        decrypt: bool,
        hash: HashAlg,
        mgf1: HashAlg,
        label: &[u8],
    ) -> CryptoResult<PkeyCtx> {
        // SAFETY: valid key; NULL engine is allowed.
        let ctx = unsafe { sys::EVP_PKEY_CTX_new(self.pkey.as_ptr(), ptr::null_mut()) };
        let ctx = PkeyCtx(NonNull::new(ctx).ok_or(CryptoError::Internal("EVP_PKEY_CTX_new"))?);
        let c = ctx.0.as_ptr();
        // SAFETY: `c` is a valid context for an RSA key; the MDs are static.
        let ok = unsafe {
            (if decrypt {
                sys::EVP_PKEY_decrypt_init(c)
            } else {
                sys::EVP_PKEY_encrypt_init(c)
            }) == 1
                && sys::EVP_PKEY_CTX_set_rsa_padding(c, sys::RSA_PKCS1_OAEP_PADDING) == 1
                && sys::EVP_PKEY_CTX_set_rsa_oaep_md(c, evp_md(hash)) == 1
                && sys::EVP_PKEY_CTX_set_rsa_mgf1_md(c, evp_md(mgf1)) == 1
        };
        if !ok {
            clear_errors();
            return Err(CryptoError::Internal("OAEP context setup"));
        }
        if !label.is_empty() {
            // The context takes ownership of the label, which must come from
            // OPENSSL_malloc.
            // SAFETY: OPENSSL_malloc has no preconditions; NULL is checked.
            let buf = unsafe { sys::OPENSSL_malloc(label.len()) }.cast::<u8>();
            if buf.is_null() {
                return Err(CryptoError::Internal("OPENSSL_malloc"));
            }
            // SAFETY: `buf` has `label.len()` bytes and does not overlap `label`.
            unsafe { ptr::copy_nonoverlapping(label.as_ptr(), buf, label.len()) };
            // SAFETY: `c` is valid; on success the context owns `buf`.
            if unsafe { sys::EVP_PKEY_CTX_set0_rsa_oaep_label(c, buf, label.len()) } != 1 {
                clear_errors();
                // SAFETY: ownership was not transferred; free our allocation.
                unsafe { sys::OPENSSL_free(buf.cast()) };
                return Err(CryptoError::Internal("OAEP label"));
            }
        }
        Ok(ctx)
    }

    pub fn decrypt_oaep(
        &self,
        hash: HashAlg,
        mgf1: HashAlg,
        label: &[u8],
        ct: &[u8],
    ) -> CryptoResult<SecretBytes> {
        let ctx = self.oaep_ctx(true, hash, mgf1, label)?;
        let k = self.size();
        let mut buf = SecretBytes::zeroed(k);
        let mut out_len = k;
        // SAFETY: `buf` writable for `out_len` bytes; `ct` valid; ctx set up for decrypt.
        let ok = unsafe {
            sys::EVP_PKEY_decrypt(
                ctx.0.as_ptr(),
                buf.expose_mut().as_mut_ptr(),
                &mut out_len,
                ct.as_ptr(),
                ct.len(),
            )
        };
        if ok != 1 {
            clear_errors();
            return Err(CryptoError::EncryptedDataInvalid);
        }
        let plain = buf.expose().get(..out_len).unwrap_or_default();
        Ok(SecretBytes::from_slice(plain))
    }

    pub fn encrypt_oaep(
        &self,
        hash: HashAlg,
        mgf1: HashAlg,
        label: &[u8],
        data: &[u8],
    ) -> CryptoResult<Vec<u8>> {
        let ctx = self.oaep_ctx(false, hash, mgf1, label)?;
        let k = self.size();
        let mut out = vec![0u8; k];
        let mut out_len = k;
        // SAFETY: `out` writable for `out_len` bytes; `data` valid; ctx set for encrypt.
        let ok = unsafe {
            sys::EVP_PKEY_encrypt(
                ctx.0.as_ptr(),
                out.as_mut_ptr(),
                &mut out_len,
                data.as_ptr(),
                data.len(),
            )
        };
        if ok != 1 {
            clear_errors();
            return Err(CryptoError::DataLen);
        }
        out.truncate(out_len);
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// EC
// ---------------------------------------------------------------------------------------

/// Which AWS-LC group (static objects; never freed).
#[derive(Clone, Copy)]
pub(super) enum Group {
    P256,
    P384,
    P521,
    Secp256k1,
}

impl Group {
    fn ptr(self) -> *const sys::EC_GROUP {
        // SAFETY: these return pointers to static, immutable groups.
        unsafe {
            match self {
                Group::P256 => sys::EC_group_p256(),
                Group::P384 => sys::EC_group_p384(),
                Group::P521 => sys::EC_group_p521(),
                Group::Secp256k1 => sys::EC_group_secp256k1(),
            }
        }
    }
}

/// An owned `EC_POINT`.
struct Point(NonNull<sys::EC_POINT>);

impl Drop for Point {
    fn drop(&mut self) {
        // SAFETY: we own the point; freed once.
        unsafe { sys::EC_POINT_free(self.0.as_ptr()) }
    }
}

impl Point {
    /// Parses an SEC1 point (compressed or uncompressed); AWS-LC checks it is on the
    /// curve.
    fn parse(group: Group, bytes: &[u8]) -> Option<Point> {
        // SAFETY: static group.
        let p = NonNull::new(unsafe { sys::EC_POINT_new(group.ptr()) }).map(Point)?;
        // SAFETY: `p` valid for this group; `bytes` valid for its length; NULL BN_CTX ok.
        let ok = unsafe {
            sys::EC_POINT_oct2point(
                group.ptr(),
                p.0.as_ptr(),
                bytes.as_ptr(),
                bytes.len(),
                ptr::null_mut(),
            )
        };
        if ok != 1 {
            clear_errors();
            return None;
        }
        Some(p)
    }
}

/// An owned `ECDSA_SIG`.
struct EcdsaSig(NonNull<sys::ECDSA_SIG>);

impl Drop for EcdsaSig {
    fn drop(&mut self) {
        // SAFETY: we own the signature; freed once.
        unsafe { sys::ECDSA_SIG_free(self.0.as_ptr()) }
    }
}

/// An EC key (public or private) as an owned `EC_KEY`.
pub(super) struct LcEcKey {
    key: NonNull<sys::EC_KEY>,
    group: Group,
}

// SAFETY: see the module comment; after construction only const operations are used.
unsafe impl Send for LcEcKey {}
// SAFETY: as above.
unsafe impl Sync for LcEcKey {}

impl Drop for LcEcKey {
    fn drop(&mut self) {
        // SAFETY: we own the key; EC_KEY_free wipes the private scalar and frees once.
        unsafe { sys::EC_KEY_free(self.key.as_ptr()) }
    }
}

impl LcEcKey {
    fn empty(group: Group) -> CryptoResult<LcEcKey> {
        // SAFETY: no preconditions.
        let key = NonNull::new(unsafe { sys::EC_KEY_new() })
            .ok_or(CryptoError::Internal("EC_KEY_new"))?;
        let k = LcEcKey { key, group };
        // SAFETY: valid key and static group.
        if unsafe { sys::EC_KEY_set_group(k.key.as_ptr(), group.ptr()) } != 1 {
            return Err(CryptoError::Internal("EC_KEY_set_group"));
        }
        Ok(k)
    }

    pub fn generate(group: Group) -> CryptoResult<LcEcKey> {
        let k = LcEcKey::empty(group)?;
        // SAFETY: valid key with a group.
        if unsafe { sys::EC_KEY_generate_key(k.key.as_ptr()) } != 1 {
            clear_errors();
            return Err(CryptoError::Internal("EC_KEY_generate_key"));
        }
        Ok(k)
    }

    /// From a private scalar (big-endian); computes the public point. Rejects 0 and
    /// values >= the group order.
    pub fn from_private(group: Group, d: &[u8]) -> CryptoResult<LcEcKey> {
        let k = LcEcKey::empty(group)?;
        let d = Bn::from_be(d)?;
        // SAFETY: valid BIGNUM.
        if unsafe { sys::BN_is_zero(d.as_ptr()) } == 1 {
            return Err(CryptoError::InvalidKey("EC private scalar is zero"));
        }
        // SAFETY: valid key and BIGNUM (copied by the call). AWS-LC rejects d >= order.
        if unsafe { sys::EC_KEY_set_private_key(k.key.as_ptr(), d.as_ptr()) } != 1 {
            clear_errors();
            return Err(CryptoError::InvalidKey("EC private scalar out of range"));
        }
        // SAFETY: static group.
        let pubp = NonNull::new(unsafe { sys::EC_POINT_new(group.ptr()) })
            .map(Point)
            .ok_or(CryptoError::Internal("EC_POINT_new"))?;
        // SAFETY: valid group, point and scalar; the other inputs may be NULL.
        let ok = unsafe {
            sys::EC_POINT_mul(
                group.ptr(),
                pubp.0.as_ptr(),
                d.as_ptr(),
                ptr::null(),
                ptr::null(),
                ptr::null_mut(),
            ) == 1
                && sys::EC_KEY_set_public_key(k.key.as_ptr(), pubp.0.as_ptr()) == 1
        };
        if !ok {
            clear_errors();
            return Err(CryptoError::Internal("EC public point computation"));
        }
        Ok(k)
    }

    /// From a public point (compressed or uncompressed), checked to be on the curve.
    pub fn from_public(group: Group, point: &[u8]) -> Option<LcEcKey> {
        let p = Point::parse(group, point)?;
        let k = LcEcKey::empty(group).ok()?;
        // SAFETY: valid key and point (copied by the call).
        if unsafe { sys::EC_KEY_set_public_key(k.key.as_ptr(), p.0.as_ptr()) } != 1 {
            clear_errors();
            return None;
        }
        Some(k)
    }

    /// The public point, uncompressed (0x04 || X || Y).
    pub fn public_point(&self, field_len: usize) -> CryptoResult<Vec<u8>> {
        // SAFETY: valid key; the returned point is borrowed from it.
        let p = unsafe { sys::EC_KEY_get0_public_key(self.key.as_ptr()) };
        if p.is_null() {
            return Err(CryptoError::Internal("EC key has no public point"));
        }
        let mut out = vec![0u8; 1 + 2 * field_len];
        // SAFETY: `out` writable for its length; the call fails rather than overflow it.
        let n = unsafe {
            sys::EC_POINT_point2oct(
                self.group.ptr(),
                p,
                sys::point_conversion_form_t::POINT_CONVERSION_UNCOMPRESSED,
                out.as_mut_ptr(),
                out.len(),
                ptr::null_mut(),
            )
        };
        if n != out.len() {
            clear_errors();
            return Err(CryptoError::Internal("EC_POINT_point2oct"));
        }
        Ok(out)
    }

    /// The private scalar, left-padded to `len` bytes.
    pub fn private_scalar(&self, len: usize) -> CryptoResult<SecretBytes> {
        // SAFETY: valid key; borrowed BIGNUM (or NULL for a public key).
        let d = unsafe { sys::EC_KEY_get0_private_key(self.key.as_ptr()) };
        bn_to_secret_padded(d, len)
    }

    /// ECDSA over `hash` as given (AWS-LC truncates it to the order's bit length, as
    /// FIPS 186-4 / SEC1 say). Returns r || s, each `order_len` bytes.
    pub fn ecdsa_sign(&self, hash: &[u8], order_len: usize) -> CryptoResult<Vec<u8>> {
        // SAFETY: `hash` valid for its length; valid private key.
        let sig = unsafe { sys::ECDSA_do_sign(hash.as_ptr(), hash.len(), self.key.as_ptr()) };
        let Some(sig) = NonNull::new(sig).map(EcdsaSig) else {
            clear_errors();
            return Err(CryptoError::Internal("ECDSA_do_sign"));
        };
        let (mut r, mut s) = (ptr::null(), ptr::null());
        // SAFETY: valid signature; r and s are borrowed from it.
        unsafe { sys::ECDSA_SIG_get0(sig.0.as_ptr(), &mut r, &mut s) };
        let mut out = vec![0u8; 2 * order_len];
        let (ro, so) = out.split_at_mut(order_len);
        bn_write(r, ro)?;
        bn_write(s, so)?;
        Ok(out)
    }

    pub fn ecdsa_verify(&self, hash: &[u8], r: &[u8], s: &[u8]) -> bool {
        let (Ok(r), Ok(s)) = (Bn::from_be(r), Bn::from_be(s)) else {
            return false;
        };
        // SAFETY: no preconditions.
        let Some(sig) = NonNull::new(unsafe { sys::ECDSA_SIG_new() }).map(EcdsaSig) else {
            return false;
        };
        let (r, s) = (r.into_raw(), s.into_raw());
        // SAFETY: valid signature; on success it takes ownership of r and s.
        if unsafe { sys::ECDSA_SIG_set0(sig.0.as_ptr(), r, s) } != 1 {
            // SAFETY: ownership not transferred: free them ourselves.
            unsafe {
                sys::BN_free(r);
                sys::BN_free(s);
            }
            return false;
        }
        // SAFETY: valid slices, signature and key.
        let ok = unsafe {
            sys::ECDSA_do_verify(hash.as_ptr(), hash.len(), sig.0.as_ptr(), self.key.as_ptr())
        };
        if ok != 1 {
            clear_errors();
        }
        ok == 1
    }

    /// ECDH: the shared point's x-coordinate (`field_len` bytes). `None` when the peer
    /// point is not a valid point of this curve.
    pub fn ecdh(&self, peer: &[u8], field_len: usize) -> Option<SecretBytes> {
        let p = Point::parse(self.group, peer)?;
        let mut out = SecretBytes::zeroed(field_len);
        // SAFETY: `out` writable for `field_len` bytes; valid point and private key; no
        // KDF, so the raw x-coordinate is written.
        let n = unsafe {
            sys::ECDH_compute_key(
                out.expose_mut().as_mut_ptr().cast(),
                field_len,
                p.0.as_ptr(),
                self.key.as_ptr(),
                None,
            )
        };
        if usize::try_from(n).ok() != Some(field_len) {
            clear_errors();
            return None;
        }
        Some(out)
    }
}

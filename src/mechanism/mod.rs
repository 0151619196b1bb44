//! Mechanisms: typed parameters (decoded once, in `ffi::params`), the registry (one sorted
//! table of what the token offers), key material loading, and the operations.

pub mod keys;
pub mod ops;
pub mod registry;

use crate::error::Result;
use crate::secure_mem::SecretBytes;
use cryptoki_sys::*;

/// Salt source for CKM_HKDF_DERIVE (PKCS#11 3.0 §2.43).
#[derive(Clone, Debug)]
pub enum HkdfSalt {
    Null,
    Data(Vec<u8>),
    Key(CK_OBJECT_HANDLE),
}

/// A mechanism's parameters, decoded and owned (no caller pointers survive decoding).
#[derive(Debug)]
pub enum Params {
    None,
    /// An IV (CBC modes) or an optional key-wrap IV.
    Iv(Vec<u8>),
    Ctr {
        counter_bits: u32,
        counter_block: [u8; 16],
    },
    Gcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_bits: usize,
    },
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        label: Vec<u8>,
    },
    Pss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt_len: usize,
    },
    Ecdh {
        kdf: CK_EC_KDF_TYPE,
        shared_data: Vec<u8>,
        public_data: Vec<u8>,
    },
    Hkdf {
        extract: bool,
        expand: bool,
        prf: CK_MECHANISM_TYPE,
        salt: HkdfSalt,
        info: Vec<u8>,
    },
    /// Output length of a *_GENERAL MAC.
    MacLen(usize),
    /// AES_ECB_ENCRYPT_DATA / AES_CBC_ENCRYPT_DATA.
    DeriveData {
        iv: Option<[u8; 16]>,
        data: SecretBytes,
    },
    RsaAesWrap {
        aes_key_bits: usize,
        oaep: Box<Params>,
    },
    /// NIST SP 800-108 counter-mode KDF (PKCS#11 3.0 §2.42, and CloudHSM's vendor form).
    Kbkdf {
        prf: CK_MECHANISM_TYPE,
        segments: Vec<KdfSegment>,
    },
    /// Anything not decoded further, kept as raw bytes.
    Raw(Vec<u8>),
}

/// One piece of the SP 800-108 fixed input, in the order the caller listed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KdfSegment {
    /// The iteration counter i, encoded in `width_bits`.
    Counter {
        width_bits: usize,
        little_endian: bool,
    },
    /// L, the length of the derived keying material in bits.
    DkmLength {
        sum_of_segments: bool,
        width_bits: usize,
        little_endian: bool,
    },
    /// Fixed bytes (label, context, separators).
    Bytes(Vec<u8>),
}

#[derive(Debug)]
pub struct Mechanism {
    pub ty: CK_MECHANISM_TYPE,
    pub params: Params,
}

/// Encrypt, decrypt, digest, sign, sign-recover and verify-recover share this shape:
/// input goes in, output comes out, in one call or in parts.
pub trait CipherOp: Send {
    /// The whole operation in one call (C_Encrypt, C_Sign, ...).
    fn one_shot(&mut self, input: &[u8]) -> Result<SecretBytes>;
    /// One part (C_EncryptUpdate, C_SignUpdate, ...); digest/sign parts output nothing.
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>>;
    /// `update` writing into `out` (at least `update_len(input.len())` bytes); returns the
    /// bytes written. Stream ciphers override it to skip the intermediate buffer.
    fn update_into(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize> {
        let v = self.update(input)?;
        let dst = out
            .get_mut(..v.len())
            .ok_or(crate::error::Error::BufferTooSmall)?;
        dst.copy_from_slice(&v);
        Ok(v.len())
    }
    /// The exact number of bytes `update` will output for this much input.
    fn update_len(&self, input_len: usize) -> usize;
    /// The exact length `one_shot` would return for this input, when the operation can
    /// tell without running (then `one_shot_into` writes straight into the caller's
    /// buffer); None when only running it can tell (signatures, padded decryption).
    fn one_shot_len(&self, _input_len: usize) -> Option<usize> {
        None
    }
    /// `one_shot` into `out` (exactly `one_shot_len(input.len())` bytes); returns the
    /// bytes written.
    fn one_shot_into(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize> {
        let v = self.one_shot(input)?;
        let dst = out
            .get_mut(..v.len())
            .ok_or(crate::error::Error::BufferTooSmall)?;
        dst.copy_from_slice(v.expose());
        Ok(v.len())
    }
    /// The last part (C_EncryptFinal, C_SignFinal, ...).
    fn finish(&mut self) -> Result<SecretBytes>;
    /// Whether the mechanism has a multi-part form at all.
    fn multipart(&self) -> bool {
        true
    }
    /// An IV the token generated at init, to be written back to the caller (CloudHSM's
    /// AES-GCM).
    fn generated_iv(&self) -> Option<&[u8]> {
        None
    }
    /// C_DigestKey: feed a secret key's value (digests only).
    fn digest_key(&mut self, _value: &[u8]) -> Result<()> {
        Err(crate::error::Error::KeyIndigestible)
    }
}

/// Verification: data (in one call or parts) against a signature.
pub trait VerifyOp: Send {
    fn one_shot(&mut self, data: &[u8], signature: &[u8]) -> Result<()>;
    fn update(&mut self, data: &[u8]) -> Result<()>;
    fn finish(&mut self, signature: &[u8]) -> Result<()>;
    fn multipart(&self) -> bool {
        true
    }
}

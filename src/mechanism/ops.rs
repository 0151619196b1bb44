//! The operations behind C_Encrypt/C_Decrypt/C_Digest/C_Sign/C_Verify and friends, built
//! from a mechanism and a parsed key after the registry and the key's usage attributes
//! allow it.

use super::keys::{load, LoadedKey};
use super::registry;
use super::{CipherOp, Mechanism, Params, VerifyOp};
use crate::cluster::Profile;
use crate::crypto::block::{BlockCipher, CipherStream, Direction, Mode};
use crate::crypto::digest::{HashAlg, Hasher};
use crate::crypto::gcm::GcmKey;
use crate::crypto::mac::{Cmac, Hmac};
use crate::error::{Error, Result};
use crate::object::index::Entry;
use crate::secure_mem::SecretBytes;
use crate::session::OpKind;
use cryptoki_sys::*;
use std::sync::Arc;

pub fn hash_of(mech: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match mech {
        CKM_SHA_1
        | CKM_SHA_1_HMAC
        | CKM_SHA_1_HMAC_GENERAL
        | CKM_SHA1_RSA_PKCS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_ECDSA_SHA1 => HashAlg::Sha1,
        CKM_SHA224
        | CKM_SHA224_HMAC
        | CKM_SHA224_HMAC_GENERAL
        | CKM_SHA224_RSA_PKCS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_ECDSA_SHA224 => HashAlg::Sha224,
        CKM_SHA256
        | CKM_SHA256_HMAC
        | CKM_SHA256_HMAC_GENERAL
        | CKM_SHA256_RSA_PKCS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_ECDSA_SHA256 => HashAlg::Sha256,
        CKM_SHA384
        | CKM_SHA384_HMAC
        | CKM_SHA384_HMAC_GENERAL
        | CKM_SHA384_RSA_PKCS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_ECDSA_SHA384 => HashAlg::Sha384,
        CKM_SHA512
        | CKM_SHA512_HMAC
        | CKM_SHA512_HMAC_GENERAL
        | CKM_SHA512_RSA_PKCS
        | CKM_SHA512_RSA_PKCS_PSS
        | CKM_ECDSA_SHA512 => HashAlg::Sha512,
        CKM_SHA3_224 | CKM_SHA3_224_HMAC => HashAlg::Sha3_224,
        CKM_SHA3_256 | CKM_SHA3_256_HMAC => HashAlg::Sha3_256,
        CKM_SHA3_384 | CKM_SHA3_384_HMAC => HashAlg::Sha3_384,
        CKM_SHA3_512 | CKM_SHA3_512_HMAC => HashAlg::Sha3_512,
        _ => return None,
    })
}

/// MGF1 selector to its hash.
fn mgf_hash(mgf: CK_RSA_PKCS_MGF_TYPE) -> Result<HashAlg> {
    Ok(match mgf {
        CKG_MGF1_SHA1 => HashAlg::Sha1,
        CKG_MGF1_SHA224 => HashAlg::Sha224,
        CKG_MGF1_SHA256 => HashAlg::Sha256,
        CKG_MGF1_SHA384 => HashAlg::Sha384,
        CKG_MGF1_SHA512 => HashAlg::Sha512,
        CKG_MGF1_SHA3_224 => HashAlg::Sha3_224,
        CKG_MGF1_SHA3_256 => HashAlg::Sha3_256,
        CKG_MGF1_SHA3_384 => HashAlg::Sha3_384,
        CKG_MGF1_SHA3_512 => HashAlg::Sha3_512,
        _ => return Err(Error::MechanismParamInvalid("unknown MGF".into())),
    })
}

fn param_hash(mech: CK_MECHANISM_TYPE) -> Result<HashAlg> {
    hash_of(mech)
        .ok_or_else(|| Error::MechanismParamInvalid(format!("unsupported hash 0x{mech:x}")))
}

/// The usage attribute an operation needs.
fn usage_attr(kind: OpKind) -> CK_ATTRIBUTE_TYPE {
    match kind {
        OpKind::Encrypt => CKA_ENCRYPT,
        OpKind::Decrypt => CKA_DECRYPT,
        OpKind::Sign => CKA_SIGN,
        OpKind::SignRecover => CKA_SIGN_RECOVER,
        OpKind::VerifyRecover => CKA_VERIFY_RECOVER,
        OpKind::Digest => CKA_CLASS,
    }
}

fn flag_of(kind: OpKind) -> CK_FLAGS {
    match kind {
        OpKind::Encrypt => CKF_ENCRYPT,
        OpKind::Decrypt => CKF_DECRYPT,
        OpKind::Sign => CKF_SIGN,
        OpKind::SignRecover => CKF_SIGN_RECOVER,
        OpKind::VerifyRecover => CKF_VERIFY_RECOVER,
        OpKind::Digest => CKF_DIGEST,
    }
}

/// Registry, CKA_ALLOWED_MECHANISMS and usage-attribute checks shared by every init.
pub fn check_key_allows(
    entry: &Entry,
    mech: CK_MECHANISM_TYPE,
    usage: CK_ATTRIBUTE_TYPE,
    flag: CK_FLAGS,
    profile: Profile,
) -> Result<()> {
    if !registry::allows(profile, mech, flag) {
        crate::log_debug!("mechanism 0x{mech:x} is not offered for operation flag 0x{flag:x}");
        return Err(Error::MechanismInvalid(mech));
    }
    if !entry.object.bool_attr(usage) {
        return Err(Error::KeyFunctionNotPermitted(
            "the key's usage attribute does not allow this operation",
        ));
    }
    if let Some(allowed) = entry.object.attr(CKA_ALLOWED_MECHANISMS) {
        if !allowed.is_empty() {
            let ok = allowed
                .chunks_exact(std::mem::size_of::<CK_ULONG>())
                .any(|c| c.try_into().map(CK_ULONG::from_ne_bytes).ok() == Some(mech));
            if !ok {
                crate::log_debug!(
                    "mechanism 0x{mech:x} is not in the key's CKA_ALLOWED_MECHANISMS"
                );
                return Err(Error::MechanismInvalid(mech));
            }
        }
    }
    Ok(())
}

// ---- digest -------------------------------------------------------------------------------

struct DigestOp {
    hasher: Option<Hasher>,
}

impl CipherOp for DigestOp {
    fn one_shot(&mut self, input: &[u8]) -> Result<SecretBytes> {
        self.update(input)?;
        self.finish()
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.hasher
            .as_mut()
            .ok_or(Error::OperationNotInitialized)?
            .update(input);
        Ok(Vec::new())
    }
    fn update_len(&self, _: usize) -> usize {
        0
    }
    fn finish(&mut self) -> Result<SecretBytes> {
        Ok(SecretBytes::new(
            self.hasher
                .take()
                .ok_or(Error::OperationNotInitialized)?
                .finish(),
        ))
    }
    fn digest_key(&mut self, value: &[u8]) -> Result<()> {
        self.update(value).map(|_| ())
    }
}

pub fn new_digest(mech: &Mechanism, profile: Profile) -> Result<Box<dyn CipherOp>> {
    if !registry::allows(profile, mech.ty, CKF_DIGEST) {
        return Err(Error::MechanismInvalid(mech.ty));
    }
    let alg = hash_of(mech.ty).ok_or(Error::MechanismInvalid(mech.ty))?;
    Ok(Box::new(DigestOp {
        hasher: Some(Hasher::new(alg)),
    }))
}

// ---- MACs (sign and verify) ----------------------------------------------------------------

#[derive(Clone)]
enum MacState {
    Hmac(Hmac),
    Cmac(Cmac),
}

struct MacOp {
    state: Option<MacState>,
    out_len: usize,
}

impl MacOp {
    fn compute(&mut self) -> Result<Vec<u8>> {
        let full = match self.state.take().ok_or(Error::OperationNotInitialized)? {
            MacState::Hmac(h) => h.finish(),
            MacState::Cmac(c) => c.finish(),
        };
        Ok(full[..self.out_len.min(full.len())].to_vec())
    }
    fn absorb(&mut self, data: &[u8]) -> Result<()> {
        match self.state.as_mut().ok_or(Error::OperationNotInitialized)? {
            MacState::Hmac(h) => h.update(data),
            MacState::Cmac(c) => c.update(data),
        }
        Ok(())
    }
}

impl CipherOp for MacOp {
    fn one_shot(&mut self, input: &[u8]) -> Result<SecretBytes> {
        self.absorb(input)?;
        CipherOp::finish(self)
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.absorb(input)?;
        Ok(Vec::new())
    }
    fn update_len(&self, _: usize) -> usize {
        0
    }
    fn finish(&mut self) -> Result<SecretBytes> {
        Ok(SecretBytes::new(self.compute()?))
    }
}

impl VerifyOp for MacOp {
    fn one_shot(&mut self, data: &[u8], signature: &[u8]) -> Result<()> {
        self.absorb(data)?;
        VerifyOp::finish(self, signature)
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.absorb(data)
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != self.out_len {
            return Err(Error::SignatureLenRange);
        }
        let mac = SecretBytes::new(self.compute()?);
        if mac == SecretBytes::from_slice(signature) {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }
}

fn new_mac(mech: &Mechanism, key: &LoadedKey) -> Result<Option<MacOp>> {
    let general_len = match &mech.params {
        Params::MacLen(n) => Some(*n),
        _ => None,
    };
    let op = match mech.ty {
        CKM_AES_CMAC | CKM_AES_CMAC_GENERAL => {
            let LoadedKey::Aes(aes) = key else {
                return Err(Error::KeyTypeInconsistent);
            };
            let cipher = &aes.cipher()?;
            let len = if mech.ty == CKM_AES_CMAC_GENERAL {
                general_len.ok_or(Error::MechanismParamInvalid("MAC length".into()))?
            } else {
                16
            };
            if len == 0 || len > 16 {
                return Err(Error::MechanismParamInvalid(
                    "CMAC length must be 1..16".into(),
                ));
            }
            MacOp {
                state: Some(MacState::Cmac(Cmac::new(cipher))),
                out_len: len,
            }
        }
        m => {
            let Some(alg) = hash_of(m) else {
                return Ok(None);
            };
            if !matches!(
                m,
                CKM_SHA_1_HMAC
                    | CKM_SHA224_HMAC
                    | CKM_SHA256_HMAC
                    | CKM_SHA384_HMAC
                    | CKM_SHA512_HMAC
                    | CKM_SHA3_224_HMAC
                    | CKM_SHA3_256_HMAC
                    | CKM_SHA3_384_HMAC
                    | CKM_SHA3_512_HMAC
                    | CKM_SHA_1_HMAC_GENERAL
                    | CKM_SHA224_HMAC_GENERAL
                    | CKM_SHA256_HMAC_GENERAL
                    | CKM_SHA384_HMAC_GENERAL
                    | CKM_SHA512_HMAC_GENERAL
            ) {
                return Ok(None);
            }
            let value = match key {
                LoadedKey::Generic { value } => value.expose(),
                LoadedKey::Aes(aes) => aes.value(),
                _ => return Err(Error::KeyTypeInconsistent),
            };
            let len = match general_len {
                Some(n) if n == 0 || n > alg.output_len() => {
                    return Err(Error::MechanismParamInvalid("HMAC length".into()))
                }
                Some(n) => n,
                None => alg.output_len(),
            };
            MacOp {
                state: Some(MacState::Hmac(Hmac::new(alg, value))),
                out_len: len,
            }
        }
    };
    Ok(Some(op))
}

// ---- block ciphers ------------------------------------------------------------------------

struct StreamOp {
    stream: CipherStream,
}

impl CipherOp for StreamOp {
    fn one_shot(&mut self, input: &[u8]) -> Result<SecretBytes> {
        let mut out =
            SecretBytes::zeroed(self.stream.update_len(input.len()) + self.stream.final_len());
        let n = self.stream.update(input, out.expose_mut())?;
        let m = self.stream.finish(&mut out.expose_mut()[n..])?;
        Ok(SecretBytes::from_slice(&out.expose()[..n + m]))
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.stream.update_len(input.len())];
        let n = self.stream.update(input, &mut out)?;
        out.truncate(n);
        Ok(out)
    }
    fn update_into(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize> {
        Ok(self.stream.update(input, out)?)
    }
    fn update_len(&self, input_len: usize) -> usize {
        self.stream.update_len(input_len)
    }
    fn one_shot_len(&self, input_len: usize) -> Option<usize> {
        self.stream.exact_total_len(input_len)
    }
    fn one_shot_into(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize> {
        let n = self.stream.update(input, out)?;
        let m = self.stream.finish(&mut out[n..])?;
        Ok(n + m)
    }
    fn finish(&mut self) -> Result<SecretBytes> {
        let mut out = SecretBytes::zeroed(self.stream.final_len());
        let n = self.stream.finish(out.expose_mut())?;
        Ok(SecretBytes::from_slice(&out.expose()[..n]))
    }
}

/// AES-GCM: encryption and decryption buffer the message and run once at the end
/// (decryption must not release plaintext before the tag is checked).
struct GcmOp {
    key: Arc<GcmKey>,
    /// The IV, or empty for CKM_CLOUDHSM_AES_GCM (generated per message and prepended).
    iv: Vec<u8>,
    /// An IV the token generated at init that the FFI layer writes back to the caller.
    generated_iv: Option<Vec<u8>>,
    aad: Vec<u8>,
    tag_len: usize,
    dir: Direction,
    buffer: SecretBytes,
    multipart_allowed: bool,
}

impl CipherOp for GcmOp {
    fn one_shot(&mut self, input: &[u8]) -> Result<SecretBytes> {
        gcm_apply(
            &self.key,
            &self.iv,
            &self.aad,
            self.tag_len,
            self.dir,
            input,
        )
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let mut next = SecretBytes::zeroed(self.buffer.len() + input.len());
        next.expose_mut()[..self.buffer.len()].copy_from_slice(self.buffer.expose());
        next.expose_mut()[self.buffer.len()..].copy_from_slice(input);
        self.buffer = next;
        Ok(Vec::new())
    }
    fn update_len(&self, _: usize) -> usize {
        0
    }
    fn finish(&mut self) -> Result<SecretBytes> {
        let data = std::mem::replace(&mut self.buffer, SecretBytes::new(Vec::new()));
        self.one_shot(data.expose())
    }
    fn multipart(&self) -> bool {
        self.multipart_allowed
    }
    fn generated_iv(&self) -> Option<&[u8]> {
        self.generated_iv.as_deref()
    }
}

/// Length of the IV CKM_CLOUDHSM_AES_GCM generates and prepends.
pub const CLOUDHSM_GCM_IV_LEN: usize = 12;

/// One AES-GCM seal or open. An empty `iv` means CloudHSM's in-band form: encryption
/// generates a 12-byte IV and prepends it, decryption reads it from the front.
pub fn gcm_apply(
    key: &GcmKey,
    iv: &[u8],
    aad: &[u8],
    tag_len: usize,
    dir: Direction,
    input: &[u8],
) -> Result<SecretBytes> {
    Ok(match (dir, iv.is_empty()) {
        (Direction::Encrypt, false) => SecretBytes::new(key.seal(iv, aad, input, tag_len)?),
        (Direction::Decrypt, false) => SecretBytes::new(key.open(iv, aad, input, tag_len)?),
        (Direction::Encrypt, true) => {
            let fresh = crate::crypto::rng::random_vec(CLOUDHSM_GCM_IV_LEN)?;
            let mut out = fresh.clone();
            out.extend_from_slice(&key.seal(&fresh, aad, input, tag_len)?);
            SecretBytes::new(out)
        }
        (Direction::Decrypt, true) => {
            if input.len() < CLOUDHSM_GCM_IV_LEN + tag_len {
                return Err(Error::EncryptedDataLenRange);
            }
            let (iv, rest) = input.split_at(CLOUDHSM_GCM_IV_LEN);
            SecretBytes::new(key.open(iv, aad, rest, tag_len)?)
        }
    })
}

/// Decodes GCM parameters for CKM_AES_GCM and CKM_CLOUDHSM_AES_GCM: (iv, aad, tag length).
/// The vendor mechanism takes no IV (the token makes one per message).
pub fn gcm_params(mech: &Mechanism) -> Result<(Vec<u8>, Vec<u8>, usize)> {
    let vendor = mech.ty == crate::vendor::CKM_CLOUDHSM_AES_GCM;
    let (iv, aad, tag_bits) = match &mech.params {
        Params::Gcm { iv, aad, tag_bits } => (iv.clone(), aad.clone(), *tag_bits),
        Params::None if vendor => (Vec::new(), Vec::new(), 128),
        _ => {
            return Err(Error::MechanismParamInvalid(
                "CK_GCM_PARAMS required".into(),
            ))
        }
    };
    if tag_bits % 8 != 0 || !(32..=128).contains(&tag_bits) {
        return Err(Error::MechanismParamInvalid(
            "GCM tag must be 32..128 bits in whole bytes".into(),
        ));
    }
    if vendor && !iv.is_empty() {
        return Err(Error::MechanismParamInvalid(
            "CKM_CLOUDHSM_AES_GCM generates the IV: pass none".into(),
        ));
    }
    if !vendor && (iv.is_empty() || iv.len() > 256) {
        return Err(Error::MechanismParamInvalid(
            "GCM IV must be 1..256 bytes".into(),
        ));
    }
    Ok((iv, aad, tag_bits / 8))
}

fn direction(kind: OpKind) -> Result<Direction> {
    match kind {
        OpKind::Encrypt => Ok(Direction::Encrypt),
        OpKind::Decrypt => Ok(Direction::Decrypt),
        _ => Err(Error::KeyFunctionNotPermitted(
            "not an encryption operation",
        )),
    }
}

fn iv_param(mech: &Mechanism, len: usize) -> Result<Vec<u8>> {
    match &mech.params {
        Params::Iv(iv) if iv.len() == len => Ok(iv.clone()),
        _ => Err(Error::MechanismParamInvalid(format!(
            "an IV of {len} bytes is required"
        ))),
    }
}

fn new_symmetric(
    kind: OpKind,
    mech: &Mechanism,
    key: &LoadedKey,
    profile: Profile,
    own_cipher: Option<&mut Option<Arc<BlockCipher>>>,
) -> Result<Box<dyn CipherOp>> {
    let dir = direction(kind)?;
    let bs = match (mech.ty, key) {
        (
            CKM_AES_ECB
            | CKM_AES_CBC
            | CKM_AES_CBC_PAD
            | CKM_AES_CTR
            | CKM_AES_GCM
            | crate::vendor::CKM_CLOUDHSM_AES_GCM,
            LoadedKey::Aes(_),
        ) => 16,
        (CKM_DES3_ECB | CKM_DES3_CBC | CKM_DES3_CBC_PAD, LoadedKey::Des3 { .. }) => 8,
        _ => return Err(Error::KeyTypeInconsistent),
    };
    let mode = match mech.ty {
        CKM_AES_ECB | CKM_DES3_ECB => Mode::Ecb,
        CKM_AES_CBC | CKM_DES3_CBC => Mode::Cbc {
            iv: iv_param(mech, bs)?,
        },
        CKM_AES_CBC_PAD | CKM_DES3_CBC_PAD => Mode::CbcPad {
            iv: iv_param(mech, bs)?,
        },
        CKM_AES_CTR => match &mech.params {
            Params::Ctr {
                counter_bits,
                counter_block,
            } if (1..=128).contains(counter_bits) => Mode::Ctr {
                counter_block: *counter_block,
                counter_bits: *counter_bits,
            },
            _ => {
                return Err(Error::MechanismParamInvalid(
                    "CK_AES_CTR_PARAMS with 1..128 counter bits".into(),
                ))
            }
        },
        CKM_AES_GCM | crate::vendor::CKM_CLOUDHSM_AES_GCM => {
            let LoadedKey::Aes(aes) = key else {
                return Err(Error::KeyTypeInconsistent);
            };
            let gcm = aes.gcm()?;
            let (mut iv, aad, tag_len) = gcm_params(mech)?;
            // CloudHSM generates the IV of CKM_AES_GCM encryption itself and writes it
            // back into the caller's CK_GCM_PARAMS.pIv (which must hold 12 bytes).
            let mut generated_iv = None;
            if profile == Profile::CloudHsm && mech.ty == CKM_AES_GCM && dir == Direction::Encrypt {
                if iv.len() != CLOUDHSM_GCM_IV_LEN {
                    return Err(Error::MechanismParamInvalid(
                        "CloudHSM: pass a 12-byte IV buffer for the generated IV".into(),
                    ));
                }
                iv = crate::crypto::rng::random_vec(CLOUDHSM_GCM_IV_LEN)?;
                generated_iv = Some(iv.clone());
            }
            return Ok(Box::new(GcmOp {
                key: gcm.clone(),
                iv,
                generated_iv,
                aad,
                tag_len,
                dir,
                buffer: SecretBytes::new(Vec::new()),
                // CloudHSM offers no multi-part AES-GCM.
                multipart_allowed: profile == Profile::Standard,
            }));
        }
        _ => return Err(Error::MechanismInvalid(mech.ty)),
    };
    let shared = || -> Result<Arc<BlockCipher>> {
        match key {
            LoadedKey::Aes(aes) => aes.cipher(),
            LoadedKey::Des3 { cipher } => Ok(cipher.clone()),
            _ => Err(Error::KeyTypeInconsistent),
        }
    };
    let cipher = match own_cipher {
        Some(Some(own)) => own.clone(),
        Some(slot) => {
            let own = Arc::new(shared()?.duplicate());
            *slot = Some(own.clone());
            own
        }
        None => shared()?,
    };
    Ok(Box::new(StreamOp {
        stream: CipherStream::new(cipher, mode, dir)?,
    }))
}

// ---- RSA ------------------------------------------------------------------------------------

enum RsaScheme {
    /// CKM_RSA_PKCS: caller-supplied DigestInfo or data.
    Pkcs1Raw,
    /// CKM_SHA*_RSA_PKCS: hash here, then PKCS#1 v1.5.
    Pkcs1Hash(HashAlg),
    /// CKM_RSA_PKCS_PSS over a caller-supplied hash.
    PssPrehashed {
        hash: HashAlg,
        mgf: HashAlg,
        salt: usize,
    },
    PssHash {
        hash: HashAlg,
        mgf: HashAlg,
        salt: usize,
    },
    X509,
}

fn rsa_scheme(mech: &Mechanism) -> Result<RsaScheme> {
    Ok(match mech.ty {
        CKM_RSA_PKCS => RsaScheme::Pkcs1Raw,
        CKM_RSA_X_509 => RsaScheme::X509,
        CKM_SHA1_RSA_PKCS | CKM_SHA224_RSA_PKCS | CKM_SHA256_RSA_PKCS | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS => RsaScheme::Pkcs1Hash(param_hash(mech.ty)?),
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            let Params::Pss {
                hash,
                mgf,
                salt_len,
            } = &mech.params
            else {
                return Err(Error::MechanismParamInvalid(
                    "CK_RSA_PKCS_PSS_PARAMS required".into(),
                ));
            };
            let h = param_hash(*hash)?;
            if mech.ty != CKM_RSA_PKCS_PSS && hash_of(mech.ty) != Some(h) {
                return Err(Error::MechanismParamInvalid(
                    "PSS hashAlg must match the mechanism's hash".into(),
                ));
            }
            let mgf = mgf_hash(*mgf)?;
            if mech.ty == CKM_RSA_PKCS_PSS {
                RsaScheme::PssPrehashed {
                    hash: h,
                    mgf,
                    salt: *salt_len,
                }
            } else {
                RsaScheme::PssHash {
                    hash: h,
                    mgf,
                    salt: *salt_len,
                }
            }
        }
        _ => return Err(Error::KeyTypeInconsistent),
    })
}

/// RSA signing (and C_SignRecover for RSA_PKCS / X_509): buffers input for the
/// single-part-only schemes, hashes incrementally for the hash-and-sign ones.
struct RsaSignOp {
    key: Arc<crate::crypto::rsa::RsaPrivateKey>,
    scheme: RsaScheme,
    hasher: Option<Hasher>,
}

impl RsaSignOp {
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        Ok(match &self.scheme {
            RsaScheme::Pkcs1Raw => self.key.sign_pkcs1v15(data)?,
            RsaScheme::X509 => self.key.raw_private(data)?,
            RsaScheme::Pkcs1Hash(h) => self.key.sign_pkcs1v15_digest(*h, data)?,
            RsaScheme::PssPrehashed { hash, mgf, salt }
            | RsaScheme::PssHash { hash, mgf, salt } => {
                self.key.sign_pss(*hash, *mgf, *salt, data)?
            }
        })
    }
}

impl CipherOp for RsaSignOp {
    fn one_shot(&mut self, input: &[u8]) -> Result<SecretBytes> {
        let sig = match &self.scheme {
            RsaScheme::Pkcs1Hash(h) | RsaScheme::PssHash { hash: h, .. } => {
                let d = crate::crypto::digest::digest(*h, input);
                self.sign(&d)?
            }
            _ => self.sign(input)?,
        };
        Ok(SecretBytes::new(sig))
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.hasher
            .as_mut()
            .ok_or(Error::FunctionNotSupported("no multi-part form"))?
            .update(input);
        Ok(Vec::new())
    }
    fn update_len(&self, _: usize) -> usize {
        0
    }
    fn finish(&mut self) -> Result<SecretBytes> {
        let d = self
            .hasher
            .take()
            .ok_or(Error::OperationNotInitialized)?
            .finish();
        Ok(SecretBytes::new(self.sign(&d)?))
    }
    fn multipart(&self) -> bool {
        self.hasher.is_some()
    }
}

struct RsaVerifyOp {
    key: crate::crypto::rsa::RsaPublicKey,
    scheme: RsaScheme,
    hasher: Option<Hasher>,
}

impl RsaVerifyOp {
    fn check(&self, data: &[u8], sig: &[u8]) -> Result<()> {
        if sig.len() != self.key.modulus_len() {
            return Err(Error::SignatureLenRange);
        }
        match &self.scheme {
            RsaScheme::Pkcs1Raw => self.key.verify_pkcs1v15(data, sig)?,
            RsaScheme::X509 => {
                let recovered = self.key.raw_public(sig)?;
                let k = self.key.modulus_len();
                let mut padded = vec![0u8; k.saturating_sub(data.len())];
                padded.extend_from_slice(data);
                if data.len() > k || recovered != padded {
                    return Err(Error::SignatureInvalid);
                }
            }
            RsaScheme::Pkcs1Hash(h) => self.key.verify_pkcs1v15_digest(*h, data, sig)?,
            RsaScheme::PssPrehashed { hash, mgf, salt }
            | RsaScheme::PssHash { hash, mgf, salt } => {
                self.key.verify_pss(*hash, *mgf, *salt, data, sig)?
            }
        }
        Ok(())
    }
}

impl VerifyOp for RsaVerifyOp {
    fn one_shot(&mut self, data: &[u8], signature: &[u8]) -> Result<()> {
        match &self.scheme {
            RsaScheme::Pkcs1Hash(h) | RsaScheme::PssHash { hash: h, .. } => {
                let d = crate::crypto::digest::digest(*h, data);
                self.check(&d, signature)
            }
            _ => self.check(data, signature),
        }
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.hasher
            .as_mut()
            .ok_or(Error::FunctionNotSupported("no multi-part form"))?
            .update(data);
        Ok(())
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let d = self
            .hasher
            .take()
            .ok_or(Error::OperationNotInitialized)?
            .finish();
        self.check(&d, signature)
    }
    fn multipart(&self) -> bool {
        self.hasher.is_some()
    }
}

fn scheme_hasher(s: &RsaScheme) -> Option<Hasher> {
    match s {
        RsaScheme::Pkcs1Hash(h) | RsaScheme::PssHash { hash: h, .. } => Some(Hasher::new(*h)),
        _ => None,
    }
}

enum RsaCipher {
    Pkcs1,
    Oaep {
        hash: HashAlg,
        mgf: HashAlg,
        label: Vec<u8>,
    },
    X509,
}

fn rsa_cipher(mech: &Mechanism) -> Result<RsaCipher> {
    Ok(match mech.ty {
        CKM_RSA_PKCS => RsaCipher::Pkcs1,
        CKM_RSA_X_509 => RsaCipher::X509,
        CKM_RSA_PKCS_OAEP => {
            let Params::Oaep { hash, mgf, label } = &mech.params else {
                return Err(Error::MechanismParamInvalid(
                    "CK_RSA_PKCS_OAEP_PARAMS required".into(),
                ));
            };
            RsaCipher::Oaep {
                hash: param_hash(*hash)?,
                mgf: mgf_hash(*mgf)?,
                label: label.clone(),
            }
        }
        _ => return Err(Error::KeyTypeInconsistent),
    })
}

/// RSA encryption and decryption, and C_VerifyRecover: single-part only.
enum RsaCryptOp {
    Encrypt(crate::crypto::rsa::RsaPublicKey, RsaCipher),
    Decrypt(Arc<crate::crypto::rsa::RsaPrivateKey>, RsaCipher),
    Recover(crate::crypto::rsa::RsaPublicKey, RsaCipher),
}

impl CipherOp for RsaCryptOp {
    fn one_shot(&mut self, input: &[u8]) -> Result<SecretBytes> {
        Ok(match self {
            RsaCryptOp::Encrypt(k, RsaCipher::Pkcs1) => {
                SecretBytes::new(k.encrypt_pkcs1v15(input)?)
            }
            RsaCryptOp::Encrypt(k, RsaCipher::X509) => SecretBytes::new(k.raw_public(input)?),
            RsaCryptOp::Encrypt(k, RsaCipher::Oaep { hash, mgf, label }) => {
                SecretBytes::new(k.encrypt_oaep(*hash, *mgf, label, input)?)
            }
            RsaCryptOp::Decrypt(k, RsaCipher::Pkcs1) => k.decrypt_pkcs1v15(input)?,
            RsaCryptOp::Decrypt(k, RsaCipher::X509) => SecretBytes::new(k.raw_private(input)?),
            RsaCryptOp::Decrypt(k, RsaCipher::Oaep { hash, mgf, label }) => {
                k.decrypt_oaep(*hash, *mgf, label, input)?
            }
            RsaCryptOp::Recover(k, RsaCipher::X509) => {
                if input.len() != k.modulus_len() {
                    return Err(Error::SignatureLenRange);
                }
                SecretBytes::new(k.raw_public(input)?)
            }
            RsaCryptOp::Recover(k, _) => {
                if input.len() != k.modulus_len() {
                    return Err(Error::SignatureLenRange);
                }
                SecretBytes::new(k.recover_pkcs1v15(input)?)
            }
        })
    }
    fn update(&mut self, _: &[u8]) -> Result<Vec<u8>> {
        Err(Error::FunctionNotSupported(
            "RSA encryption has no multi-part form",
        ))
    }
    fn update_len(&self, _: usize) -> usize {
        0
    }
    fn finish(&mut self) -> Result<SecretBytes> {
        Err(Error::FunctionNotSupported(
            "RSA encryption has no multi-part form",
        ))
    }
    fn multipart(&self) -> bool {
        false
    }
}

// ---- ECDSA and EdDSA -------------------------------------------------------------------

struct EcdsaSignOp {
    key: Arc<crate::crypto::ec::EcPrivateKey>,
    hasher: Option<Hasher>,
    prehashed: bool,
}

impl CipherOp for EcdsaSignOp {
    fn one_shot(&mut self, input: &[u8]) -> Result<SecretBytes> {
        if self.prehashed {
            return Ok(SecretBytes::new(self.key.sign_prehashed(input)?));
        }
        self.update(input)?;
        self.finish()
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.hasher
            .as_mut()
            .ok_or(Error::FunctionNotSupported(
                "CKM_ECDSA has no multi-part form",
            ))?
            .update(input);
        Ok(Vec::new())
    }
    fn update_len(&self, _: usize) -> usize {
        0
    }
    fn finish(&mut self) -> Result<SecretBytes> {
        let d = self
            .hasher
            .take()
            .ok_or(Error::OperationNotInitialized)?
            .finish();
        Ok(SecretBytes::new(self.key.sign_prehashed(&d)?))
    }
    fn multipart(&self) -> bool {
        !self.prehashed
    }
}

struct EcdsaVerifyOp {
    key: crate::crypto::ec::EcPublicKey,
    hasher: Option<Hasher>,
    prehashed: bool,
}

impl VerifyOp for EcdsaVerifyOp {
    fn one_shot(&mut self, data: &[u8], signature: &[u8]) -> Result<()> {
        if self.prehashed {
            return Ok(self.key.verify_prehashed(data, signature)?);
        }
        VerifyOp::update(self, data)?;
        VerifyOp::finish(self, signature)
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.hasher
            .as_mut()
            .ok_or(Error::FunctionNotSupported(
                "CKM_ECDSA has no multi-part form",
            ))?
            .update(data);
        Ok(())
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let d = self
            .hasher
            .take()
            .ok_or(Error::OperationNotInitialized)?
            .finish();
        Ok(self.key.verify_prehashed(&d, signature)?)
    }
    fn multipart(&self) -> bool {
        !self.prehashed
    }
}

/// Ed25519 signs the whole message: parts are buffered.
struct EddsaOp {
    private: Option<Arc<crate::crypto::edwards::Ed25519PrivateKey>>,
    public: Vec<u8>,
    buffer: Vec<u8>,
}

impl CipherOp for EddsaOp {
    fn one_shot(&mut self, input: &[u8]) -> Result<SecretBytes> {
        let k = self.private.as_ref().ok_or(Error::KeyTypeInconsistent)?;
        Ok(SecretBytes::new(k.sign(input)?))
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.buffer.extend_from_slice(input);
        Ok(Vec::new())
    }
    fn update_len(&self, _: usize) -> usize {
        0
    }
    fn finish(&mut self) -> Result<SecretBytes> {
        let data = std::mem::take(&mut self.buffer);
        CipherOp::one_shot(self, &data)
    }
}

impl VerifyOp for EddsaOp {
    fn one_shot(&mut self, data: &[u8], signature: &[u8]) -> Result<()> {
        if signature.len() != 64 {
            return Err(Error::SignatureLenRange);
        }
        Ok(crate::crypto::edwards::ed25519_verify(
            &self.public,
            data,
            signature,
        )?)
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.buffer.extend_from_slice(data);
        Ok(())
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let data = std::mem::take(&mut self.buffer);
        VerifyOp::one_shot(self, &data, signature)
    }
}

fn ecdsa_hash(mech: CK_MECHANISM_TYPE) -> Result<Option<HashAlg>> {
    Ok(match mech {
        CKM_ECDSA => None,
        CKM_ECDSA_SHA1 | CKM_ECDSA_SHA224 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512 => Some(param_hash(mech)?),
        _ => return Err(Error::KeyTypeInconsistent),
    })
}

// ---- constructors ---------------------------------------------------------------------------

/// Builds an encrypt/decrypt/sign/sign-recover/verify-recover operation.
/// CloudHSM's maximum data size per call for mechanisms the HSM computes itself (AWS
/// CloudHSM User Guide, "Supported mechanisms for the PKCS #11 library", maximum data size
/// for each mechanism). RSA and ECDSA hash in the client and have no limit.
pub fn cloudhsm_data_limit(mech: CK_MECHANISM_TYPE) -> Option<usize> {
    Some(match mech {
        CKM_SHA_1_HMAC | CKM_SHA256_HMAC => 16_288,
        CKM_SHA224_HMAC => 16_256,
        CKM_SHA384_HMAC | CKM_SHA512_HMAC => 16_224,
        CKM_AES_CBC | CKM_AES_CBC_PAD | CKM_AES_ECB | CKM_AES_CTR => 16_272,
        CKM_AES_GCM | crate::vendor::CKM_CLOUDHSM_AES_GCM => 16_224,
        CKM_DES3_CBC | CKM_DES3_CBC_PAD | CKM_DES3_ECB => 16_280,
        _ => return None,
    })
}

/// Enforces a per-call input limit (the cloudhsm profile), then defers to the operation.
struct LimitedOp {
    inner: Box<dyn CipherOp>,
    limit: usize,
}

impl LimitedOp {
    fn check(&self, len: usize) -> Result<()> {
        if len > self.limit {
            return Err(Error::DataLenRange);
        }
        Ok(())
    }
}

impl CipherOp for LimitedOp {
    fn one_shot(&mut self, input: &[u8]) -> Result<SecretBytes> {
        self.check(input.len())?;
        self.inner.one_shot(input)
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.check(input.len())?;
        self.inner.update(input)
    }
    fn update_into(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize> {
        self.check(input.len())?;
        self.inner.update_into(input, out)
    }
    fn update_len(&self, input_len: usize) -> usize {
        self.inner.update_len(input_len)
    }
    fn finish(&mut self) -> Result<SecretBytes> {
        self.inner.finish()
    }
    fn multipart(&self) -> bool {
        self.inner.multipart()
    }
    fn generated_iv(&self) -> Option<&[u8]> {
        self.inner.generated_iv()
    }
}

/// Wraps an operation in the cloudhsm profile's data-size limit where one applies.
fn with_profile_limits(
    op: Box<dyn CipherOp>,
    mech: CK_MECHANISM_TYPE,
    profile: Profile,
) -> Box<dyn CipherOp> {
    match (profile, cloudhsm_data_limit(mech)) {
        (Profile::CloudHsm, Some(limit)) => Box::new(LimitedOp { inner: op, limit }),
        _ => op,
    }
}

/// `own_cipher`: a slot for the caller's own copy of a block cipher's key schedule
/// (a session's); the operation then shares nothing with other threads' operations.
pub fn new_cipher_op(
    kind: OpKind,
    mech: &Mechanism,
    entry: &Entry,
    profile: Profile,
    own_cipher: Option<&mut Option<Arc<BlockCipher>>>,
) -> Result<Box<dyn CipherOp>> {
    Ok(with_profile_limits(
        build_cipher_op(kind, mech, entry, profile, own_cipher)?,
        mech.ty,
        profile,
    ))
}

fn build_cipher_op(
    kind: OpKind,
    mech: &Mechanism,
    entry: &Entry,
    profile: Profile,
    own_cipher: Option<&mut Option<Arc<BlockCipher>>>,
) -> Result<Box<dyn CipherOp>> {
    check_key_allows(entry, mech.ty, usage_attr(kind), flag_of(kind), profile)?;
    let key = load(entry)?;
    match kind {
        OpKind::Encrypt | OpKind::Decrypt => match key {
            LoadedKey::Aes(_) | LoadedKey::Des3 { .. } => {
                new_symmetric(kind, mech, key, profile, own_cipher)
            }
            LoadedKey::RsaPublic(k) if kind == OpKind::Encrypt => {
                Ok(Box::new(RsaCryptOp::Encrypt(k.clone(), rsa_cipher(mech)?)))
            }
            LoadedKey::RsaPrivate(k) if kind == OpKind::Decrypt => {
                Ok(Box::new(RsaCryptOp::Decrypt(k.clone(), rsa_cipher(mech)?)))
            }
            _ => Err(Error::KeyTypeInconsistent),
        },
        OpKind::Sign | OpKind::SignRecover => {
            if let Some(mac) = new_mac(mech, key)? {
                if kind == OpKind::SignRecover {
                    return Err(Error::MechanismInvalid(mech.ty));
                }
                return Ok(Box::new(mac));
            }
            match key {
                LoadedKey::RsaPrivate(k) => {
                    let scheme = rsa_scheme(mech)?;
                    if kind == OpKind::SignRecover
                        && !matches!(scheme, RsaScheme::Pkcs1Raw | RsaScheme::X509)
                    {
                        return Err(Error::MechanismInvalid(mech.ty));
                    }
                    let hasher = scheme_hasher(&scheme);
                    Ok(Box::new(RsaSignOp {
                        key: k.clone(),
                        scheme,
                        hasher,
                    }))
                }
                LoadedKey::EcPrivate(k) => {
                    let h = ecdsa_hash(mech.ty)?;
                    Ok(Box::new(EcdsaSignOp {
                        key: k.clone(),
                        hasher: h.map(Hasher::new),
                        prehashed: h.is_none(),
                    }))
                }
                LoadedKey::Ed25519Private(k) if mech.ty == CKM_EDDSA => Ok(Box::new(EddsaOp {
                    private: Some(k.clone()),
                    public: Vec::new(),
                    buffer: Vec::new(),
                })),
                _ => Err(Error::KeyTypeInconsistent),
            }
        }
        OpKind::VerifyRecover => match key {
            LoadedKey::RsaPublic(k) => {
                let c = match mech.ty {
                    CKM_RSA_PKCS => RsaCipher::Pkcs1,
                    CKM_RSA_X_509 => RsaCipher::X509,
                    _ => return Err(Error::KeyTypeInconsistent),
                };
                Ok(Box::new(RsaCryptOp::Recover(k.clone(), c)))
            }
            _ => Err(Error::KeyTypeInconsistent),
        },
        OpKind::Digest => Err(Error::MechanismInvalid(mech.ty)),
    }
}

/// Builds a verify operation.
pub fn new_verify_op(
    mech: &Mechanism,
    entry: &Entry,
    profile: Profile,
) -> Result<Box<dyn VerifyOp>> {
    check_key_allows(entry, mech.ty, CKA_VERIFY, CKF_VERIFY, profile)?;
    let key = load(entry)?;
    if let Some(mac) = new_mac(mech, key)? {
        return Ok(Box::new(mac));
    }
    match key {
        LoadedKey::RsaPublic(k) => {
            let scheme = rsa_scheme(mech)?;
            let hasher = scheme_hasher(&scheme);
            Ok(Box::new(RsaVerifyOp {
                key: k.clone(),
                scheme,
                hasher,
            }))
        }
        LoadedKey::EcPublic(k) => {
            let h = ecdsa_hash(mech.ty)?;
            Ok(Box::new(EcdsaVerifyOp {
                key: k.clone(),
                hasher: h.map(Hasher::new),
                prehashed: h.is_none(),
            }))
        }
        LoadedKey::Ed25519Public(p) if mech.ty == CKM_EDDSA => Ok(Box::new(EddsaOp {
            private: None,
            public: p.clone(),
            buffer: Vec::new(),
        })),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

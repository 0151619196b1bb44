//! Mechanism parameters decoded from caller memory in one place. Both CK_GCM_PARAMS
//! layouts are accepted: PKCS#11 3.0's (with ulIvBits) and the 2.40 header's (without).

use super::marshal::{in_bytes, to_usize};
use crate::error::{Error, Result};
use crate::mechanism::{HkdfSalt, KdfSegment, Mechanism, Params};
use crate::secure_mem::SecretBytes;
use cryptoki_sys::*;
use std::mem::size_of;

/// The 2.40 header's GCM parameters (no ulIvBits), as some clients still send them.
#[repr(C)]
struct GcmParamsV240 {
    p_iv: *mut CK_BYTE,
    ul_iv_len: CK_ULONG,
    p_aad: *mut CK_BYTE,
    ul_aad_len: CK_ULONG,
    ul_tag_bits: CK_ULONG,
}

/// Reads a parameter struct of type T after checking its length.
///
/// # Safety
/// `ptr` must be valid for `len` bytes when non-NULL.
unsafe fn param_struct<'a, T>(ptr: *const std::ffi::c_void, len: usize) -> Result<&'a T> {
    if ptr.is_null() || len != size_of::<T>() {
        return Err(Error::MechanismParamInvalid(format!(
            "expected a {}-byte parameter",
            size_of::<T>()
        )));
    }
    if (ptr as usize) % std::mem::align_of::<T>() != 0 {
        return Err(Error::MechanismParamInvalid("misaligned parameter".into()));
    }
    // SAFETY: non-NULL, aligned, and the caller guarantees `len == size_of::<T>()` bytes.
    Ok(unsafe { &*(ptr as *const T) })
}

fn param_err(e: Error) -> Error {
    match e {
        Error::ArgumentsBad(w) => Error::MechanismParamInvalid(w.to_string()),
        other => other,
    }
}

/// Decodes a CK_MECHANISM.
///
/// # Safety
/// `mech` must be NULL or a valid CK_MECHANISM whose parameter is valid for its length.
pub unsafe fn read_mechanism(mech: *const CK_MECHANISM) -> Result<Mechanism> {
    // SAFETY: caller guarantee; NULL is rejected.
    let m = unsafe { mech.as_ref() }.ok_or(Error::ArgumentsBad("NULL mechanism"))?;
    let len = to_usize(m.ulParameterLen)?;
    let p = m.pParameter as *const std::ffi::c_void;
    // SAFETY: every branch reads the parameter within the length the caller declared.
    let params = unsafe { decode(m.mechanism, p, len) }.map_err(param_err)?;
    Ok(Mechanism {
        ty: m.mechanism,
        params,
    })
}

/// # Safety
/// As `read_mechanism`.
unsafe fn decode(ty: CK_MECHANISM_TYPE, p: *const std::ffi::c_void, len: usize) -> Result<Params> {
    // SAFETY: each access in this body goes through `param_struct` or `in_bytes`, which
    // check NULL, size and alignment against the caller-declared length.
    unsafe {
        Ok(match ty {
            CKM_AES_CBC
            | CKM_AES_CBC_PAD
            | CKM_DES3_CBC
            | CKM_DES3_CBC_PAD
            | CKM_AES_KEY_WRAP
            | CKM_AES_KEY_WRAP_PAD
            | CKM_AES_KEY_WRAP_KWP
            | crate::vendor::CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD
            | crate::vendor::CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD
            | crate::vendor::CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD => {
                Params::Iv(in_bytes(p as *const u8, len as CK_ULONG)?.to_vec())
            }
            CKM_AES_CTR => {
                let c: &CK_AES_CTR_PARAMS = param_struct(p, len)?;
                let bits = u32::try_from(c.ulCounterBits)
                    .map_err(|_| Error::MechanismParamInvalid("counter bits".into()))?;
                Params::Ctr {
                    counter_bits: bits,
                    counter_block: c.cb,
                }
            }
            CKM_AES_GCM | crate::vendor::CKM_CLOUDHSM_AES_GCM => {
                if p.is_null() && ty == crate::vendor::CKM_CLOUDHSM_AES_GCM {
                    Params::None
                } else if len == size_of::<CK_GCM_PARAMS>() {
                    let g: &CK_GCM_PARAMS = param_struct(p, len)?;
                    Params::Gcm {
                        iv: in_bytes(g.pIv, g.ulIvLen)?.to_vec(),
                        aad: in_bytes(g.pAAD, g.ulAADLen)?.to_vec(),
                        tag_bits: to_usize(g.ulTagBits)?,
                    }
                } else {
                    let g: &GcmParamsV240 = param_struct(p, len)?;
                    Params::Gcm {
                        iv: in_bytes(g.p_iv, g.ul_iv_len)?.to_vec(),
                        aad: in_bytes(g.p_aad, g.ul_aad_len)?.to_vec(),
                        tag_bits: to_usize(g.ul_tag_bits)?,
                    }
                }
            }
            CKM_RSA_PKCS_OAEP => oaep(p, len)?,
            CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA224_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS
            | CKM_SHA3_224_RSA_PKCS_PSS
            | CKM_SHA3_256_RSA_PKCS_PSS
            | CKM_SHA3_384_RSA_PKCS_PSS
            | CKM_SHA3_512_RSA_PKCS_PSS => {
                let s: &CK_RSA_PKCS_PSS_PARAMS = param_struct(p, len)?;
                Params::Pss {
                    hash: s.hashAlg,
                    mgf: s.mgf,
                    salt_len: to_usize(s.sLen)?,
                }
            }
            CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => {
                let e: &CK_ECDH1_DERIVE_PARAMS = param_struct(p, len)?;
                Params::Ecdh {
                    kdf: e.kdf,
                    shared_data: in_bytes(e.pSharedData, e.ulSharedDataLen)?.to_vec(),
                    public_data: in_bytes(e.pPublicData, e.ulPublicDataLen)?.to_vec(),
                }
            }
            CKM_HKDF_DERIVE | CKM_HKDF_DATA => {
                let h: &CK_HKDF_PARAMS = param_struct(p, len)?;
                let salt = match h.ulSaltType {
                    CKF_HKDF_SALT_NULL => HkdfSalt::Null,
                    CKF_HKDF_SALT_DATA => HkdfSalt::Data(in_bytes(h.pSalt, h.ulSaltLen)?.to_vec()),
                    CKF_HKDF_SALT_KEY => HkdfSalt::Key(h.hSaltKey),
                    _ => return Err(Error::MechanismParamInvalid("HKDF salt type".into())),
                };
                Params::Hkdf {
                    extract: h.bExtract != CK_FALSE,
                    expand: h.bExpand != CK_FALSE,
                    prf: h.prfHashMechanism,
                    salt,
                    info: in_bytes(h.pInfo, h.ulInfoLen)?.to_vec(),
                }
            }
            CKM_SHA_1_HMAC_GENERAL
            | CKM_SHA224_HMAC_GENERAL
            | CKM_SHA256_HMAC_GENERAL
            | CKM_SHA384_HMAC_GENERAL
            | CKM_SHA512_HMAC_GENERAL
            | CKM_SHA3_224_HMAC_GENERAL
            | CKM_SHA3_256_HMAC_GENERAL
            | CKM_SHA3_384_HMAC_GENERAL
            | CKM_SHA3_512_HMAC_GENERAL
            | CKM_AES_CMAC_GENERAL
            | CKM_DES3_CMAC_GENERAL => {
                let l: &CK_MAC_GENERAL_PARAMS = param_struct(p, len)?;
                Params::MacLen(to_usize(*l)?)
            }
            CKM_AES_ECB_ENCRYPT_DATA => {
                let d: &CK_KEY_DERIVATION_STRING_DATA = param_struct(p, len)?;
                Params::DeriveData {
                    iv: None,
                    data: SecretBytes::from_slice(in_bytes(d.pData, d.ulLen)?),
                }
            }
            CKM_AES_CBC_ENCRYPT_DATA => {
                let d: &CK_AES_CBC_ENCRYPT_DATA_PARAMS = param_struct(p, len)?;
                Params::DeriveData {
                    iv: Some(d.iv),
                    data: SecretBytes::from_slice(in_bytes(d.pData, d.length)?),
                }
            }
            CKM_RSA_AES_KEY_WRAP => {
                let w: &CK_RSA_AES_KEY_WRAP_PARAMS = param_struct(p, len)?;
                let o = oaep(
                    w.pOAEPParams as *const std::ffi::c_void,
                    size_of::<CK_RSA_PKCS_OAEP_PARAMS>(),
                )?;
                Params::RsaAesWrap {
                    aes_key_bits: to_usize(w.ulAESKeyBits)?,
                    oaep: Box::new(o),
                }
            }
            CKM_SP800_108_COUNTER_KDF => kbkdf_standard(p, len)?,
            crate::vendor::CKM_SP800_108_COUNTER_KDF_CLOUDHSM => {
                if len == size_of::<CloudHsmKdfParams>() {
                    kbkdf_cloudhsm(p, len)?
                } else {
                    kbkdf_standard(p, len)?
                }
            }
            CKM_EDDSA => {
                if p.is_null() || len == 0 {
                    Params::None
                } else {
                    let e: &CK_EDDSA_PARAMS = param_struct(p, len)?;
                    if e.phFlag != CK_FALSE || e.ulContextDataLen != 0 {
                        return Err(Error::MechanismParamInvalid(
                            "only pure Ed25519 without context is supported".into(),
                        ));
                    }
                    Params::None
                }
            }
            _ => {
                if len == 0 {
                    Params::None
                } else {
                    Params::Raw(in_bytes(p as *const u8, len as CK_ULONG)?.to_vec())
                }
            }
        })
    }
}

/// # Safety
/// `p` valid for `len` bytes when non-NULL.
unsafe fn oaep(p: *const std::ffi::c_void, len: usize) -> Result<Params> {
    // SAFETY: forwarded caller guarantee, checked by param_struct/in_bytes.
    unsafe {
        let o: &CK_RSA_PKCS_OAEP_PARAMS = param_struct(p, len)?;
        let label = if o.source == CKZ_DATA_SPECIFIED || o.source == 0 {
            in_bytes(o.pSourceData as *const u8, o.ulSourceDataLen)?.to_vec()
        } else {
            return Err(Error::MechanismParamInvalid(
                "OAEP source must be CKZ_DATA_SPECIFIED".into(),
            ));
        };
        Ok(Params::Oaep {
            hash: o.hashAlg,
            mgf: o.mgf,
            label,
        })
    }
}

/// CloudHSM's CK_SP800_108_KDF_PARAMS (three fields; its vendor header).
#[repr(C)]
struct CloudHsmKdfParams {
    prf_type: CK_MECHANISM_TYPE,
    count: CK_ULONG,
    params: *const CK_PRF_DATA_PARAM,
}

/// CloudHSM's counter format: only a width, big-endian.
#[repr(C)]
struct CloudHsmCounterFormat {
    width_bits: CK_ULONG,
}

/// CloudHSM's DKM format: method and width, big-endian.
#[repr(C)]
struct CloudHsmDkmFormat {
    method: CK_ULONG,
    width_bits: CK_ULONG,
}

fn width(bits: CK_ULONG, max: usize) -> Result<usize> {
    let b = to_usize(bits)?;
    if b == 0 || b % 8 != 0 || b > max {
        return Err(Error::MechanismParamInvalid(format!(
            "SP 800-108 width must be 8..={max} bits in whole bytes"
        )));
    }
    Ok(b)
}

/// # Safety
/// `p` valid for `len` bytes when non-NULL, and its nested pointers valid as declared.
unsafe fn kbkdf_standard(p: *const std::ffi::c_void, len: usize) -> Result<Params> {
    // SAFETY: every read goes through param_struct/in_bytes with caller-declared lengths.
    unsafe {
        let k: &CK_SP800_108_KDF_PARAMS = param_struct(p, len)?;
        if k.ulAdditionalDerivedKeys != 0 {
            return Err(Error::MechanismParamInvalid(
                "additional derived keys are not supported".into(),
            ));
        }
        let items = prf_items(k.pDataParams, k.ulNumberOfDataParams)?;
        let mut segments = Vec::with_capacity(items.len());
        for it in items {
            segments.push(match it.type_ {
                CK_SP800_108_ITERATION_VARIABLE => {
                    let f: &CK_SP800_108_COUNTER_FORMAT =
                        param_struct(it.pValue, to_usize(it.ulValueLen)?)?;
                    KdfSegment::Counter {
                        width_bits: width(f.ulWidthInBits, 32)?,
                        little_endian: f.bLittleEndian != CK_FALSE,
                    }
                }
                CK_SP800_108_DKM_LENGTH => {
                    let f: &CK_SP800_108_DKM_LENGTH_FORMAT =
                        param_struct(it.pValue, to_usize(it.ulValueLen)?)?;
                    KdfSegment::DkmLength {
                        sum_of_segments: dkm_method(f.dkmLengthMethod)?,
                        width_bits: width(f.ulWidthInBits, 64)?,
                        little_endian: f.bLittleEndian != CK_FALSE,
                    }
                }
                CK_SP800_108_BYTE_ARRAY => {
                    KdfSegment::Bytes(in_bytes(it.pValue as *const u8, it.ulValueLen)?.to_vec())
                }
                _ => {
                    return Err(Error::MechanismParamInvalid(
                        "unsupported SP 800-108 data parameter".into(),
                    ))
                }
            });
        }
        Ok(Params::Kbkdf {
            prf: k.prfType,
            segments,
        })
    }
}

/// # Safety
/// As `kbkdf_standard`.
unsafe fn kbkdf_cloudhsm(p: *const std::ffi::c_void, len: usize) -> Result<Params> {
    use crate::vendor::*;
    // SAFETY: every read goes through param_struct/in_bytes with caller-declared lengths.
    unsafe {
        let k: &CloudHsmKdfParams = param_struct(p, len)?;
        let items = prf_items(k.params, k.count)?;
        let mut segments = Vec::with_capacity(items.len() + 1);
        let mut after_label = false;
        for it in items {
            let value_len = to_usize(it.ulValueLen)?;
            match it.type_ {
                CLOUDHSM_SP800_108_COUNTER_FORMAT => {
                    let f: &CloudHsmCounterFormat = param_struct(it.pValue, value_len)?;
                    segments.push(KdfSegment::Counter {
                        width_bits: width(f.width_bits, 32)?,
                        little_endian: false,
                    });
                }
                CLOUDHSM_SP800_108_DKM_FORMAT => {
                    let f: &CloudHsmDkmFormat = param_struct(it.pValue, value_len)?;
                    segments.push(KdfSegment::DkmLength {
                        sum_of_segments: dkm_method(f.method)?,
                        width_bits: width(f.width_bits, 64)?,
                        little_endian: false,
                    });
                }
                CLOUDHSM_SP800_108_PRF_LABEL => {
                    segments.push(KdfSegment::Bytes(
                        in_bytes(it.pValue as *const u8, it.ulValueLen)?.to_vec(),
                    ));
                    after_label = true;
                }
                CLOUDHSM_SP800_108_PRF_CONTEXT => {
                    // SP 800-108 separates Label and Context with one zero byte.
                    if after_label {
                        segments.push(KdfSegment::Bytes(vec![0]));
                    }
                    segments.push(KdfSegment::Bytes(
                        in_bytes(it.pValue as *const u8, it.ulValueLen)?.to_vec(),
                    ));
                }
                CLOUDHSM_SP800_108_BYTE_ARRAY => segments.push(KdfSegment::Bytes(
                    in_bytes(it.pValue as *const u8, it.ulValueLen)?.to_vec(),
                )),
                // The PKCS#11 3.0 numbers that do not collide with CloudHSM's are accepted too.
                CK_SP800_108_ITERATION_VARIABLE => {
                    let f: &CK_SP800_108_COUNTER_FORMAT = param_struct(it.pValue, value_len)?;
                    segments.push(KdfSegment::Counter {
                        width_bits: width(f.ulWidthInBits, 32)?,
                        little_endian: f.bLittleEndian != CK_FALSE,
                    });
                }
                CK_SP800_108_DKM_LENGTH => {
                    let f: &CK_SP800_108_DKM_LENGTH_FORMAT = param_struct(it.pValue, value_len)?;
                    segments.push(KdfSegment::DkmLength {
                        sum_of_segments: dkm_method(f.dkmLengthMethod)?,
                        width_bits: width(f.ulWidthInBits, 64)?,
                        little_endian: f.bLittleEndian != CK_FALSE,
                    });
                }
                _ => {
                    return Err(Error::MechanismParamInvalid(
                        "unsupported CloudHSM SP 800-108 data parameter".into(),
                    ))
                }
            }
        }
        Ok(Params::Kbkdf {
            prf: k.prf_type,
            segments,
        })
    }
}

fn dkm_method(m: CK_ULONG) -> Result<bool> {
    match m {
        CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS => Ok(false),
        CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS => Ok(true),
        _ => Err(Error::MechanismParamInvalid(
            "unknown DKM length method".into(),
        )),
    }
}

/// # Safety
/// `ptr` valid for `count` CK_PRF_DATA_PARAMs when count > 0.
unsafe fn prf_items<'a>(
    ptr: *const CK_PRF_DATA_PARAM,
    count: CK_ULONG,
) -> Result<&'a [CK_PRF_DATA_PARAM]> {
    let n = to_usize(count)?;
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() || (ptr as usize) % std::mem::align_of::<CK_PRF_DATA_PARAM>() != 0 {
        return Err(Error::MechanismParamInvalid(
            "bad SP 800-108 data parameter array".into(),
        ));
    }
    // SAFETY: non-NULL, aligned, and the caller declared `n` entries.
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// Writes a token-generated IV into CK_GCM_PARAMS.pIv. Both GCM parameter layouts start
/// with pIv and ulIvLen, so this is layout-independent.
///
/// # Safety
/// `mech` must be a CK_MECHANISM that `read_mechanism` accepted as GCM parameters.
pub unsafe fn write_back_gcm_iv(mech: *const CK_MECHANISM, iv: &[u8]) -> Result<()> {
    // SAFETY: read_mechanism already checked mech and its parameter for NULL and size.
    unsafe {
        let m = mech.as_ref().ok_or(Error::ArgumentsBad("NULL mechanism"))?;
        let g = (m.pParameter as *const GcmParamsV240)
            .as_ref()
            .ok_or(Error::ArgumentsBad("NULL GCM parameters"))?;
        if g.p_iv.is_null() || to_usize(g.ul_iv_len)? < iv.len() {
            return Err(Error::MechanismParamInvalid(
                "the GCM IV buffer is too small for the generated IV".into(),
            ));
        }
        std::ptr::copy_nonoverlapping(iv.as_ptr(), g.p_iv, iv.len());
    }
    Ok(())
}

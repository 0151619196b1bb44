//! Key management (PKCS#11 v2.40 §5.14): generate, generate pair, wrap, unwrap, derive.

use super::crypto::Delivery;
use super::object::{actor, check_may_create};
use super::session;
use crate::cluster::objects::{new_uid, Access};
use crate::crypto::der::{self, PrivateKeyMaterial};
use crate::crypto::ec::{self, EcPrivateKey};
use crate::crypto::edwards::{Ed25519PrivateKey, EdwardsCurve, X25519PrivateKey};
use crate::crypto::rsa::RsaPrivateKey;
use crate::error::{Error, Result};
use crate::mechanism::keys::{self, ec_family, EcFamily, LoadedKey};
use crate::mechanism::{ops, registry, Mechanism, Params};
use crate::object::{self, template_get, template_ulong, ulong_bytes, Object, Origin, Template};
use crate::secure_mem::SecretBytes;
use cryptoki_sys::*;

fn with_class(
    template: &Template,
    class: CK_OBJECT_CLASS,
    key_type: CK_KEY_TYPE,
) -> Result<Template> {
    if let Some(c) = template_ulong(template, CKA_CLASS)? {
        if c != class {
            return Err(Error::TemplateInconsistent(
                "CKA_CLASS does not fit the mechanism".into(),
            ));
        }
    }
    if let Some(k) = template_ulong(template, CKA_KEY_TYPE)? {
        if k != key_type {
            return Err(Error::TemplateInconsistent(
                "CKA_KEY_TYPE does not fit the mechanism".into(),
            ));
        }
    }
    let mut t: Template = template
        .iter()
        .filter(|(ty, _)| *ty != CKA_CLASS && *ty != CKA_KEY_TYPE)
        .cloned()
        .collect();
    t.push((CKA_CLASS, ulong_bytes(class)));
    t.push((CKA_KEY_TYPE, ulong_bytes(key_type)));
    Ok(t)
}

/// Recomputes ALWAYS_SENSITIVE / NEVER_EXTRACTABLE after key material is in place.
fn finish_bookkeeping(obj: &mut Object, generated: bool) {
    let sensitive = obj.bool_attr(CKA_SENSITIVE);
    let extractable = obj.bool_attr(CKA_EXTRACTABLE);
    if obj.attrs.contains_key(&CKA_ALWAYS_SENSITIVE) {
        obj.attrs.insert(
            CKA_ALWAYS_SENSITIVE,
            object::bool_bytes(generated && sensitive),
        );
        obj.attrs.insert(
            CKA_NEVER_EXTRACTABLE,
            object::bool_bytes(generated && !extractable),
        );
    }
}

/// C_GenerateKey (§5.14): AES, 3DES and generic secrets.
pub fn generate_key(
    h: CK_SESSION_HANDLE,
    mech: &Mechanism,
    template: &Template,
) -> Result<CK_OBJECT_HANDLE> {
    let (_lib, s) = session(h)?;
    let profile = s.cluster.profile();
    if !registry::allows(profile, mech.ty, CKF_GENERATE) {
        return Err(Error::MechanismInvalid(mech.ty));
    }
    let (key_type, len) = match mech.ty {
        CKM_AES_KEY_GEN => {
            let len = template_ulong(template, CKA_VALUE_LEN)?
                .ok_or(Error::TemplateIncomplete(CKA_VALUE_LEN))? as usize;
            if !matches!(len, 16 | 24 | 32) {
                return Err(Error::AttributeValueInvalid(CKA_VALUE_LEN));
            }
            (CKK_AES, len)
        }
        CKM_DES3_KEY_GEN => (CKK_DES3, 24),
        CKM_GENERIC_SECRET_KEY_GEN => {
            let len = template_ulong(template, CKA_VALUE_LEN)?
                .ok_or(Error::TemplateIncomplete(CKA_VALUE_LEN))? as usize;
            if len == 0 || len > 512 {
                return Err(Error::AttributeValueInvalid(CKA_VALUE_LEN));
            }
            (CKK_GENERIC_SECRET, len)
        }
        _ => return Err(Error::MechanismInvalid(mech.ty)),
    };
    let t = with_class(template, CKO_SECRET_KEY, key_type)?;
    let mut obj = object::build_object(
        &t,
        Origin::Generate(mech.ty),
        actor(&s),
        profile.defaults(),
        new_uid()?,
    )?;
    let mut value = crate::crypto::rng::random_secret(len)?;
    if key_type == CKK_DES3 {
        // DES parity bits: odd parity in each byte.
        for b in value.expose_mut() {
            *b = (*b & 0xfe) | ((b.count_ones() as u8 & 1) ^ 1);
        }
    }
    obj.secrets.insert(CKA_VALUE, value);
    keys::complete_new_object(&mut obj)?;
    finish_bookkeeping(&mut obj, true);
    check_may_create(&s, obj.is_token(), obj.is_private())?;
    s.cluster.insert_object(obj, s.handle, &s.hsm)
}

/// C_GenerateKeyPair (§5.14): RSA, EC (P-256/384/521), Ed25519, X25519.
pub fn generate_key_pair(
    h: CK_SESSION_HANDLE,
    mech: &Mechanism,
    pub_t: &Template,
    priv_t: &Template,
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    let (_lib, s) = session(h)?;
    let profile = s.cluster.profile();
    if !registry::allows(profile, mech.ty, CKF_GENERATE_KEY_PAIR) {
        return Err(Error::MechanismInvalid(mech.ty));
    }
    let key_type = match mech.ty {
        CKM_RSA_PKCS_KEY_PAIR_GEN | CKM_RSA_X9_31_KEY_PAIR_GEN => CKK_RSA,
        CKM_EC_KEY_PAIR_GEN => CKK_EC,
        CKM_EC_EDWARDS_KEY_PAIR_GEN => CKK_EC_EDWARDS,
        CKM_EC_MONTGOMERY_KEY_PAIR_GEN => CKK_EC_MONTGOMERY,
        _ => return Err(Error::MechanismInvalid(mech.ty)),
    };
    // Attributes that belong to the other half are inconsistent (e.g. CKA_MODULUS_BITS in
    // the private template).
    for bad in [CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS] {
        if template_get(priv_t, bad).is_some() && template_get(pub_t, bad).is_none() {
            return Err(Error::TemplateInconsistent(format!(
                "attribute 0x{bad:x} belongs in the public template"
            )));
        }
    }
    let mut pt = with_class(pub_t, CKO_PUBLIC_KEY, key_type)?;
    let kt = with_class(priv_t, CKO_PRIVATE_KEY, key_type)?;
    if key_type == CKK_EC_EDWARDS && template_get(&pt, CKA_EC_PARAMS).is_none() {
        pt.push((CKA_EC_PARAMS, EdwardsCurve::Ed25519.ec_params_der()));
    }
    if key_type == CKK_EC_MONTGOMERY && template_get(&pt, CKA_EC_PARAMS).is_none() {
        pt.push((CKA_EC_PARAMS, EdwardsCurve::X25519.ec_params_der()));
    }
    let defaults = profile.defaults();
    let mut public = object::build_object(
        &pt,
        Origin::Generate(mech.ty),
        actor(&s),
        defaults,
        new_uid()?,
    )?;
    let mut private = object::build_object(
        &kt,
        Origin::Generate(mech.ty),
        actor(&s),
        defaults,
        new_uid()?,
    )?;
    check_may_create(&s, public.is_token(), public.is_private())?;
    check_may_create(&s, private.is_token(), private.is_private())?;

    let (material, point) = match key_type {
        CKK_RSA => {
            let bits = public
                .ulong_attr(CKA_MODULUS_BITS)
                .ok_or(Error::TemplateIncomplete(CKA_MODULUS_BITS))?
                as usize;
            if !(1024..=8192).contains(&bits) {
                return Err(Error::KeySizeRange);
            }
            let e = public
                .attr(CKA_PUBLIC_EXPONENT)
                .map(<[u8]>::to_vec)
                .unwrap_or_else(|| vec![1, 0, 1]);
            let k = RsaPrivateKey::generate(bits, &e)?;
            let c = k.components();
            public.attrs.insert(CKA_MODULUS, c.n.clone());
            public.attrs.insert(CKA_PUBLIC_EXPONENT, c.e.clone());
            public.attrs.insert(
                CKA_PUBLIC_KEY_INFO,
                der::encode_spki(&der::PublicKeyMaterial::Rsa {
                    n: c.n.clone(),
                    e: c.e.clone(),
                }),
            );
            (PrivateKeyMaterial::Rsa(c), None)
        }
        _ => {
            let params = public
                .attr(CKA_EC_PARAMS)
                .ok_or(Error::TemplateIncomplete(CKA_EC_PARAMS))?
                .to_vec();
            match (ec_family(&params)?, key_type) {
                (EcFamily::Weierstrass(curve), CKK_EC) => {
                    let k = EcPrivateKey::generate(curve)?;
                    let p = k.public_point();
                    public.attrs.insert(
                        CKA_PUBLIC_KEY_INFO,
                        der::encode_spki(&der::PublicKeyMaterial::Ec {
                            curve,
                            point: p.clone(),
                        }),
                    );
                    (
                        PrivateKeyMaterial::Ec {
                            curve,
                            scalar: k.scalar(),
                            public_point: None,
                        },
                        Some(p),
                    )
                }
                (EcFamily::Edwards(EdwardsCurve::Ed25519), CKK_EC_EDWARDS) => {
                    let k = Ed25519PrivateKey::generate()?;
                    let p = k.public_key_bytes().to_vec();
                    public.attrs.insert(
                        CKA_PUBLIC_KEY_INFO,
                        der::encode_spki(&der::PublicKeyMaterial::Ed25519(p.clone())),
                    );
                    (PrivateKeyMaterial::Ed25519 { seed: k.seed() }, Some(p))
                }
                (EcFamily::Edwards(EdwardsCurve::X25519), CKK_EC_MONTGOMERY) => {
                    let k = X25519PrivateKey::generate()?;
                    let p = k.public_key_bytes().to_vec();
                    public.attrs.insert(
                        CKA_PUBLIC_KEY_INFO,
                        der::encode_spki(&der::PublicKeyMaterial::X25519(p.clone())),
                    );
                    (PrivateKeyMaterial::X25519 { scalar: k.scalar() }, Some(p))
                }
                _ => {
                    return Err(Error::TemplateInconsistent(
                        "CKA_EC_PARAMS does not fit the mechanism".into(),
                    ))
                }
            }
        }
    };
    if let Some(p) = point {
        public.attrs.insert(CKA_EC_POINT, ec::ec_point_to_der(&p));
        private.attrs.insert(CKA_EC_PARAMS, params_of(&public));
    }
    keys::fill_private(&mut private, &material)?;
    if key_type != CKK_RSA {
        private.attrs.insert(CKA_EC_PARAMS, params_of(&public));
    }
    if let Some(info) = public.attr(CKA_PUBLIC_KEY_INFO) {
        private.attrs.insert(CKA_PUBLIC_KEY_INFO, info);
    }
    finish_bookkeeping(&mut private, true);
    let ph = s.cluster.insert_object(public, s.handle, &s.hsm)?;
    match s.cluster.insert_object(private, s.handle, &s.hsm) {
        Ok(kh) => Ok((ph, kh)),
        Err(e) => {
            let _ = s.cluster.destroy_object(ph);
            Err(e)
        }
    }
}

fn params_of(o: &Object) -> Vec<u8> {
    o.attr(CKA_EC_PARAMS)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// The bytes a key wraps as: a secret key's value, or a private key as PKCS#8.
fn wrappable_bytes(obj: &Object) -> Result<SecretBytes> {
    match obj.class {
        CKO_SECRET_KEY => obj
            .secret(CKA_VALUE)
            .map(SecretBytes::duplicate)
            .ok_or(Error::KeyNotWrappable),
        CKO_PRIVATE_KEY => {
            let key = keys::parse(obj)?;
            let material = match key {
                LoadedKey::RsaPrivate(k) => PrivateKeyMaterial::Rsa(k.components()),
                LoadedKey::EcPrivate(k) => PrivateKeyMaterial::Ec {
                    curve: k.curve(),
                    scalar: k.scalar(),
                    public_point: Some(k.public_point()),
                },
                LoadedKey::Ed25519Private(k) => PrivateKeyMaterial::Ed25519 { seed: k.seed() },
                LoadedKey::X25519Private(k) => PrivateKeyMaterial::X25519 { scalar: k.scalar() },
                _ => return Err(Error::KeyNotWrappable),
            };
            Ok(der::encode_pkcs8(&material)?)
        }
        _ => Err(Error::KeyNotWrappable),
    }
}

fn wrap_iv8(mech: &Mechanism) -> Result<Option<[u8; 8]>> {
    match &mech.params {
        Params::None => Ok(None),
        Params::Iv(v) if v.is_empty() => Ok(None),
        Params::Iv(v) if v.len() == 8 => Ok(v.as_slice().try_into().ok()),
        _ => Err(Error::MechanismParamInvalid(
            "AES key wrap IV must be 8 bytes".into(),
        )),
    }
}

fn wrap_iv4(mech: &Mechanism) -> Result<Option<[u8; 4]>> {
    match &mech.params {
        Params::None => Ok(None),
        Params::Iv(v) if v.is_empty() => Ok(None),
        Params::Iv(v) if v.len() == 4 => Ok(v.as_slice().try_into().ok()),
        _ => Err(Error::MechanismParamInvalid(
            "AES KWP IV must be 4 bytes".into(),
        )),
    }
}

/// Wraps or unwraps `data` with a loaded wrapping key.
/// The length of one DER TLV at the start of `b` (definite lengths only).
fn der_tlv_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let total = header.checked_add(len)?;
    (total <= b.len()).then_some(total)
}

/// CloudHSM's padded AES key wraps: PKCS#5 padding or zero padding to a multiple of 8
/// bytes, then RFC 3394.
fn cloudhsm_kw(
    mech_ty: CK_MECHANISM_TYPE,
    kek: &[u8],
    iv: Option<[u8; 8]>,
    data: &[u8],
    wrap: bool,
) -> Result<SecretBytes> {
    use crate::crypto::keywrap::{aes_kw_unwrap, aes_kw_wrap};
    use crate::vendor::*;
    if wrap {
        let mut padded = SecretBytes::from_slice(data);
        let pad = 8 - data.len() % 8;
        let extra: Vec<u8> = match mech_ty {
            CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD => vec![pad as u8; pad],
            CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD if data.len() % 8 != 0 => vec![0; pad],
            _ => Vec::new(),
        };
        if !extra.is_empty() {
            let mut v = SecretBytes::zeroed(data.len() + extra.len());
            v.expose_mut()[..data.len()].copy_from_slice(data);
            v.expose_mut()[data.len()..].copy_from_slice(&extra);
            padded = v;
        }
        return Ok(SecretBytes::new(aes_kw_wrap(
            kek,
            padded.expose(),
            iv.as_ref(),
        )?));
    }
    let plain = aes_kw_unwrap(kek, data, iv.as_ref())?;
    match mech_ty {
        CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD => {
            let p = plain.expose();
            let n = *p.last().ok_or(Error::WrappedKeyInvalid)? as usize;
            if n == 0 || n > 8 || n > p.len() || !p[p.len() - n..].iter().all(|b| *b as usize == n)
            {
                return Err(Error::WrappedKeyInvalid);
            }
            Ok(SecretBytes::from_slice(&p[..p.len() - n]))
        }
        // Zero padding is trimmed by the unwrapped key itself: the DER length of a private
        // key, or CKA_VALUE_LEN of a secret key (in unwrap_key).
        CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD => match der_tlv_len(plain.expose()) {
            Some(n)
                if plain.expose().first() == Some(&0x30)
                    && plain.expose()[n..].iter().all(|b| *b == 0) =>
            {
                Ok(SecretBytes::from_slice(&plain.expose()[..n]))
            }
            _ => Ok(plain),
        },
        _ => Ok(plain),
    }
}

fn wrap_with(mech: &Mechanism, key: &LoadedKey, data: &[u8], wrap: bool) -> Result<SecretBytes> {
    use crate::vendor::*;
    Ok(match (mech.ty, key) {
        (
            CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD
            | CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD
            | CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD,
            LoadedKey::Aes(aes),
        ) => cloudhsm_kw(mech.ty, aes.value(), wrap_iv8(mech)?, data, wrap)?,
        (CKM_AES_GCM | CKM_CLOUDHSM_AES_GCM, LoadedKey::Aes(aes)) => {
            let gcm = &aes.gcm()?;
            let (iv, aad, tag_len) = ops::gcm_params(mech)?;
            let dir = if wrap {
                crate::crypto::block::Direction::Encrypt
            } else {
                crate::crypto::block::Direction::Decrypt
            };
            ops::gcm_apply(gcm, &iv, &aad, tag_len, dir, data)?
        }
        (CKM_AES_KEY_WRAP, LoadedKey::Aes(aes)) => {
            let iv = wrap_iv8(mech)?;
            if wrap {
                SecretBytes::new(crate::crypto::keywrap::aes_kw_wrap(
                    aes.value(),
                    data,
                    iv.as_ref(),
                )?)
            } else {
                crate::crypto::keywrap::aes_kw_unwrap(aes.value(), data, iv.as_ref())?
            }
        }
        (CKM_AES_KEY_WRAP_PAD, LoadedKey::Aes(aes)) => {
            let iv = wrap_iv4(mech)?;
            if wrap {
                SecretBytes::new(crate::crypto::keywrap::aes_kwp_wrap(
                    aes.value(),
                    data,
                    iv.as_ref(),
                )?)
            } else {
                crate::crypto::keywrap::aes_kwp_unwrap(aes.value(), data, iv.as_ref())?
            }
        }
        (CKM_AES_CBC_PAD, LoadedKey::Aes(aes)) => {
            let cipher = aes.cipher()?;
            let Params::Iv(iv) = &mech.params else {
                return Err(Error::MechanismParamInvalid("IV required".into()));
            };
            let dir = if wrap {
                crate::crypto::block::Direction::Encrypt
            } else {
                crate::crypto::block::Direction::Decrypt
            };
            SecretBytes::new(crate::crypto::block::CipherStream::one_shot(
                cipher.clone(),
                crate::crypto::block::Mode::CbcPad { iv: iv.clone() },
                dir,
                data,
            )?)
        }
        (CKM_RSA_AES_KEY_WRAP, LoadedKey::RsaPublic(_) | LoadedKey::RsaPrivate(_)) => {
            rsa_aes_wrap(mech, key, data, wrap)?
        }
        (CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP, LoadedKey::RsaPublic(k)) if wrap => match &mech.params {
            Params::Oaep { hash, mgf, label } => SecretBytes::new(k.encrypt_oaep(
                ops::hash_of(*hash).ok_or(Error::MechanismParamInvalid("hash".into()))?,
                mgf_to_hash(*mgf)?,
                label,
                data,
            )?),
            _ => SecretBytes::new(k.encrypt_pkcs1v15(data)?),
        },
        (CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP, LoadedKey::RsaPrivate(k)) if !wrap => match &mech.params
        {
            Params::Oaep { hash, mgf, label } => k.decrypt_oaep(
                ops::hash_of(*hash).ok_or(Error::MechanismParamInvalid("hash".into()))?,
                mgf_to_hash(*mgf)?,
                label,
                data,
            )?,
            _ => k.decrypt_pkcs1v15(data)?,
        },
        _ => {
            return Err(if wrap {
                Error::WrappingKeyTypeInconsistent
            } else {
                Error::UnwrappingKeyTypeInconsistent
            });
        }
    })
}

/// CKM_RSA_AES_KEY_WRAP (PKCS#11 v2.40 §2.1.21): a fresh AES key of ulAESKeyBits wraps
/// the target with RFC 5649 key wrap, and is itself wrapped with RSA-OAEP; the result is
/// the OAEP block followed by the AES-wrapped key.
fn rsa_aes_wrap(mech: &Mechanism, key: &LoadedKey, data: &[u8], wrap: bool) -> Result<SecretBytes> {
    let Params::RsaAesWrap { aes_key_bits, oaep } = &mech.params else {
        return Err(Error::MechanismParamInvalid(
            "CK_RSA_AES_KEY_WRAP_PARAMS required".into(),
        ));
    };
    let Params::Oaep { hash, mgf, label } = oaep.as_ref() else {
        return Err(Error::MechanismParamInvalid(
            "OAEP parameters required".into(),
        ));
    };
    let hash = ops::hash_of(*hash).ok_or(Error::MechanismParamInvalid("OAEP hash".into()))?;
    let mgf = mgf_to_hash(*mgf)?;
    if !matches!(aes_key_bits, 128 | 192 | 256) {
        return Err(Error::MechanismParamInvalid(
            "ulAESKeyBits must be 128, 192 or 256".into(),
        ));
    }
    match (key, wrap) {
        (LoadedKey::RsaPublic(k), true) => {
            let temp = crate::crypto::rng::random_secret(aes_key_bits / 8)?;
            let mut out = k.encrypt_oaep(hash, mgf, label, temp.expose())?;
            out.extend_from_slice(&crate::crypto::keywrap::aes_kwp_wrap(
                temp.expose(),
                data,
                None,
            )?);
            Ok(SecretBytes::new(out))
        }
        (LoadedKey::RsaPrivate(k), false) => {
            let n = k.modulus_len();
            if data.len() <= n {
                return Err(Error::WrappedKeyLen);
            }
            let (head, tail) = data.split_at(n);
            let temp = k
                .decrypt_oaep(hash, mgf, label, head)
                .map_err(|_| Error::WrappedKeyInvalid)?;
            if temp.len() * 8 != *aes_key_bits {
                return Err(Error::WrappedKeyInvalid);
            }
            Ok(crate::crypto::keywrap::aes_kwp_unwrap(
                temp.expose(),
                tail,
                None,
            )?)
        }
        _ => Err(if wrap {
            Error::WrappingKeyTypeInconsistent
        } else {
            Error::UnwrappingKeyTypeInconsistent
        }),
    }
}

fn mgf_to_hash(mgf: CK_RSA_PKCS_MGF_TYPE) -> Result<crate::crypto::digest::HashAlg> {
    use crate::crypto::digest::HashAlg;
    Ok(match mgf {
        CKG_MGF1_SHA1 => HashAlg::Sha1,
        CKG_MGF1_SHA224 => HashAlg::Sha224,
        CKG_MGF1_SHA256 => HashAlg::Sha256,
        CKG_MGF1_SHA384 => HashAlg::Sha384,
        CKG_MGF1_SHA512 => HashAlg::Sha512,
        _ => return Err(Error::MechanismParamInvalid("MGF".into())),
    })
}

/// C_WrapKey (§5.14) with the policy against known API attacks: the wrapped key must be
/// extractable; CKA_WRAP_WITH_TRUSTED keys need a trusted wrapping key; a key never wraps
/// itself; a sensitive key is not wrapped under a key that can also decrypt (strict policy).
pub fn wrap_key(
    h: CK_SESSION_HANDLE,
    mech: &Mechanism,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    capacity: Option<usize>,
) -> Result<Delivery> {
    let (lib, s) = session(h)?;
    let profile = s.cluster.profile();
    if !registry::allows(profile, mech.ty, CKF_WRAP) {
        return Err(Error::MechanismInvalid(mech.ty));
    }
    let wk = s
        .cluster
        .entry(wrapping, Access::Use)
        .map_err(|_| Error::WrappingKeyHandleInvalid)?;
    let target = s.cluster.entry(key, Access::Own).map_err(|e| match e {
        Error::ObjectHandleInvalid(k) => Error::KeyHandleInvalid(k),
        other => other,
    })?;
    if !wk.object.bool_attr(CKA_WRAP) {
        return Err(Error::KeyFunctionNotPermitted(
            "the wrapping key lacks CKA_WRAP",
        ));
    }
    if wrapping == key {
        return Err(Error::KeyNotWrappable);
    }
    if !target.object.bool_attr(CKA_EXTRACTABLE) {
        return Err(Error::KeyUnextractable);
    }
    if target.object.bool_attr(CKA_WRAP_WITH_TRUSTED) && !wk.object.bool_attr(CKA_TRUSTED) {
        return Err(Error::KeyNotWrappable);
    }
    if lib.config.strict_wrap_policy
        && target.object.bool_attr(CKA_SENSITIVE)
        && wk.object.bool_attr(CKA_DECRYPT)
        && wk.object.class == CKO_SECRET_KEY
    {
        return Err(Error::KeyFunctionNotPermitted(
            "policy: a sensitive key is not wrapped under a key that can also decrypt",
        ));
    }
    if let Some(t) = wk.object.attr(CKA_WRAP_TEMPLATE) {
        let required = crate::store::record::decode(t).unwrap_or_default();
        if !required.is_empty() && !target.object.matches(&required) {
            return Err(Error::KeyNotWrappable);
        }
    }
    s.cluster.route_for(&wk)?;
    let wkey = keys::load(&wk)?;
    let plain = wrappable_bytes(&target.object)?;
    let wrapped = wrap_with(mech, wkey, plain.expose(), true)?;
    match capacity {
        Some(c) if c >= wrapped.len() => Ok(Delivery::Data(wrapped)),
        _ => Ok(Delivery::Length(wrapped.len())),
    }
}

/// C_UnwrapKey (§5.14): the unwrapping key's CKA_UNWRAP_TEMPLATE is merged (a conflict is
/// CKR_TEMPLATE_INCONSISTENT); the new key is neither ALWAYS_SENSITIVE nor NEVER_EXTRACTABLE.
pub fn unwrap_key(
    h: CK_SESSION_HANDLE,
    mech: &Mechanism,
    unwrapping: CK_OBJECT_HANDLE,
    wrapped: &[u8],
    template: &Template,
) -> Result<CK_OBJECT_HANDLE> {
    let (lib, s) = session(h)?;
    let profile = s.cluster.profile();
    if !registry::allows(profile, mech.ty, CKF_UNWRAP) {
        return Err(Error::MechanismInvalid(mech.ty));
    }
    let uk = s
        .cluster
        .entry(unwrapping, Access::Use)
        .map_err(|_| Error::UnwrappingKeyHandleInvalid)?;
    if !uk.object.bool_attr(CKA_UNWRAP) {
        return Err(Error::KeyFunctionNotPermitted(
            "the unwrapping key lacks CKA_UNWRAP",
        ));
    }
    let mut t = template.clone();
    if let Some(ut) = uk.object.attr(CKA_UNWRAP_TEMPLATE) {
        for (ty, v) in crate::store::record::decode(ut).unwrap_or_default() {
            match template_get(&t, ty) {
                Some(given) if given != v.as_slice() => {
                    return Err(Error::TemplateInconsistent(
                        "template conflicts with the unwrapping key's CKA_UNWRAP_TEMPLATE".into(),
                    ))
                }
                Some(_) => {}
                None => t.push((ty, v)),
            }
        }
    }
    let class = template_ulong(&t, CKA_CLASS)?.ok_or(Error::TemplateIncomplete(CKA_CLASS))?;
    // Policy against the known-blob attack: an unwrapped key asked to both wrap and
    // decrypt could wrap a sensitive key and then decrypt the result.
    if lib.config.strict_wrap_policy
        && object::template_bool(&t, CKA_WRAP)? == Some(true)
        && object::template_bool(&t, CKA_DECRYPT)? == Some(true)
    {
        return Err(Error::TemplateInconsistent(
            "policy: an unwrapped key may not both wrap and decrypt".into(),
        ));
    }
    s.cluster.route_for(&uk)?;
    let ukey = keys::load(&uk)?;
    let plain = wrap_with(mech, ukey, wrapped, false).map_err(|e| match e {
        Error::EncryptedDataInvalid | Error::DataLenRange => Error::WrappedKeyInvalid,
        Error::EncryptedDataLenRange => Error::WrappedKeyLen,
        other => other,
    })?;
    let mut obj = object::build_object(
        &t,
        Origin::Unwrap,
        actor(&s),
        profile.defaults(),
        new_uid()?,
    )?;
    match class {
        CKO_SECRET_KEY => {
            let mut value = plain.expose().to_vec();
            if let Some(len) = obj.ulong_attr(CKA_VALUE_LEN) {
                let len = len as usize;
                if len > value.len() {
                    return Err(Error::WrappedKeyInvalid);
                }
                value.truncate(len);
            }
            obj.attrs.remove(&CKA_VALUE_LEN);
            obj.secrets.insert(CKA_VALUE, SecretBytes::new(value));
        }
        CKO_PRIVATE_KEY => {
            let material =
                der::decode_pkcs8(plain.expose()).map_err(|_| Error::WrappedKeyInvalid)?;
            keys::fill_private(&mut obj, &material)?;
        }
        _ => {
            return Err(Error::TemplateInconsistent(
                "only secret and private keys can be unwrapped".into(),
            ))
        }
    }
    keys::complete_new_object(&mut obj).map_err(|_| Error::WrappedKeyInvalid)?;
    finish_bookkeeping(&mut obj, false);
    check_may_create(&s, obj.is_token(), obj.is_private())?;
    s.cluster.insert_object(obj, s.handle, &s.hsm)
}

/// The length a derived secret key must have, from its template and type.
fn derived_len(t: &Template, key_type: CK_KEY_TYPE, natural: Option<usize>) -> Result<usize> {
    let given = template_ulong(t, CKA_VALUE_LEN)?.map(|v| v as usize);
    let len = match key_type {
        CKK_AES => given.ok_or(Error::TemplateIncomplete(CKA_VALUE_LEN))?,
        CKK_DES3 => given.unwrap_or(24),
        _ => given
            .or(natural)
            .ok_or(Error::TemplateIncomplete(CKA_VALUE_LEN))?,
    };
    let ok = match key_type {
        CKK_AES => matches!(len, 16 | 24 | 32),
        CKK_DES3 => len == 24,
        _ => len > 0 && len <= 512,
    };
    if ok {
        Ok(len)
    } else {
        Err(Error::AttributeValueInvalid(CKA_VALUE_LEN))
    }
}

fn secret_value(key: &LoadedKey) -> Result<&[u8]> {
    match key {
        LoadedKey::Generic { value } => Ok(value.expose()),
        LoadedKey::Aes(aes) => Ok(aes.value()),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn x963_hash(kdf: CK_EC_KDF_TYPE) -> Result<Option<crate::crypto::digest::HashAlg>> {
    use crate::crypto::digest::HashAlg;
    Ok(match kdf {
        CKD_NULL => None,
        CKD_SHA1_KDF => Some(HashAlg::Sha1),
        CKD_SHA224_KDF => Some(HashAlg::Sha224),
        CKD_SHA256_KDF => Some(HashAlg::Sha256),
        CKD_SHA384_KDF => Some(HashAlg::Sha384),
        CKD_SHA512_KDF => Some(HashAlg::Sha512),
        CKD_SHA3_224_KDF => Some(HashAlg::Sha3_224),
        CKD_SHA3_256_KDF => Some(HashAlg::Sha3_256),
        CKD_SHA3_384_KDF => Some(HashAlg::Sha3_384),
        CKD_SHA3_512_KDF => Some(HashAlg::Sha3_512),
        _ => return Err(Error::MechanismParamInvalid("unsupported ECDH KDF".into())),
    })
}

/// Computes the derived key bytes for a mechanism.
fn derive_bytes(
    s: &crate::session::Session,
    mech: &Mechanism,
    base: &LoadedKey,
    t: &Template,
    key_type: CK_KEY_TYPE,
) -> Result<SecretBytes> {
    use crate::crypto::kdf;
    match (mech.ty, &mech.params) {
        (
            CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE,
            Params::Ecdh {
                kdf: k,
                shared_data,
                public_data,
            },
        ) => {
            let z = match base {
                LoadedKey::EcPrivate(key) => {
                    let point =
                        ec::ec_point_from_attribute(public_data, Some(key.curve().point_len()))
                            .map_err(|_| {
                                Error::MechanismParamInvalid("peer public point".into())
                            })?;
                    key.ecdh(&point)?
                }
                LoadedKey::X25519Private(key) => {
                    let point = ec::ec_point_from_attribute(public_data, Some(32))
                        .map_err(|_| Error::MechanismParamInvalid("peer public key".into()))?;
                    key.diffie_hellman(&point)?
                }
                _ => return Err(Error::KeyTypeInconsistent),
            };
            match x963_hash(*k)? {
                None => {
                    if !shared_data.is_empty() {
                        return Err(Error::MechanismParamInvalid(
                            "CKD_NULL takes no shared data".into(),
                        ));
                    }
                    let len = derived_len(t, key_type, Some(z.len()))?;
                    if len > z.len() {
                        return Err(Error::TemplateInconsistent(
                            "CKA_VALUE_LEN exceeds the shared secret".into(),
                        ));
                    }
                    Ok(SecretBytes::from_slice(&z.expose()[..len]))
                }
                Some(h) => Ok(kdf::x963_kdf(
                    h,
                    z.expose(),
                    shared_data,
                    derived_len(t, key_type, None)?,
                )),
            }
        }
        (
            CKM_HKDF_DERIVE,
            Params::Hkdf {
                extract,
                expand,
                prf,
                salt,
                info,
            },
        ) => {
            let h = ops::hash_of(*prf).ok_or(Error::MechanismParamInvalid(
                "HKDF PRF must be a SHA hash".into(),
            ))?;
            if !extract && !expand {
                return Err(Error::MechanismParamInvalid(
                    "HKDF needs extract, expand or both".into(),
                ));
            }
            let ikm = secret_value(base)?;
            let salt_bytes: SecretBytes = match salt {
                crate::mechanism::HkdfSalt::Null => SecretBytes::new(Vec::new()),
                crate::mechanism::HkdfSalt::Data(d) => SecretBytes::from_slice(d),
                crate::mechanism::HkdfSalt::Key(handle) => {
                    let e = s
                        .cluster
                        .entry(*handle, Access::Use)
                        .map_err(|_| Error::MechanismParamInvalid("HKDF salt key".into()))?;
                    let v = e
                        .object
                        .secret(CKA_VALUE)
                        .ok_or(Error::MechanismParamInvalid(
                            "HKDF salt key has no value".into(),
                        ))?;
                    v.duplicate()
                }
            };
            let prk = if *extract {
                kdf::hkdf_extract(h, salt_bytes.expose(), ikm)
            } else {
                SecretBytes::from_slice(ikm)
            };
            if !expand {
                let len = derived_len(t, key_type, Some(prk.len()))?;
                if len > prk.len() {
                    return Err(Error::TemplateInconsistent(
                        "CKA_VALUE_LEN exceeds the PRK".into(),
                    ));
                }
                return Ok(SecretBytes::from_slice(&prk.expose()[..len]));
            }
            Ok(kdf::hkdf_expand(
                h,
                prk.expose(),
                info,
                derived_len(t, key_type, None)?,
            )?)
        }
        (CKM_AES_ECB_ENCRYPT_DATA | CKM_AES_CBC_ENCRYPT_DATA, Params::DeriveData { iv, data }) => {
            let LoadedKey::Aes(aes) = base else {
                return Err(Error::KeyTypeInconsistent);
            };
            let cipher = aes.cipher()?;
            let mode = match iv {
                Some(iv) => crate::crypto::block::Mode::Cbc { iv: iv.to_vec() },
                None => crate::crypto::block::Mode::Ecb,
            };
            let out = crate::crypto::block::CipherStream::one_shot(
                cipher.clone(),
                mode,
                crate::crypto::block::Direction::Encrypt,
                data.expose(),
            )?;
            let out = SecretBytes::new(out);
            let len = derived_len(t, key_type, Some(out.len()))?;
            if len > out.len() {
                return Err(Error::TemplateInconsistent(
                    "CKA_VALUE_LEN exceeds the encrypted data".into(),
                ));
            }
            Ok(SecretBytes::from_slice(&out.expose()[..len]))
        }
        (
            CKM_SP800_108_COUNTER_KDF | crate::vendor::CKM_SP800_108_COUNTER_KDF_CLOUDHSM,
            Params::Kbkdf { prf, segments },
        ) => {
            use crate::crypto::kdf::CounterKdfPart;
            use crate::mechanism::KdfSegment;
            let len = derived_len(t, key_type, None)?;
            let block_len = match (*prf, base) {
                (CKM_AES_CMAC, LoadedKey::Aes(_)) => 16,
                (p, _) => ops::hash_of(p)
                    .ok_or(Error::MechanismParamInvalid(
                        "SP 800-108 PRF must be an HMAC or AES-CMAC".into(),
                    ))?
                    .output_len(),
            };
            let parts: Vec<CounterKdfPart> = segments
                .iter()
                .map(|seg| match seg {
                    KdfSegment::Counter {
                        width_bits,
                        little_endian,
                    } => CounterKdfPart::Counter {
                        width_bits: *width_bits,
                        little_endian: *little_endian,
                    },
                    KdfSegment::DkmLength {
                        sum_of_segments,
                        width_bits,
                        little_endian,
                    } => {
                        let bytes = if *sum_of_segments {
                            len.div_ceil(block_len) * block_len
                        } else {
                            len
                        };
                        CounterKdfPart::Length {
                            value_bits: bytes as u64 * 8,
                            width_bits: *width_bits,
                            little_endian: *little_endian,
                        }
                    }
                    KdfSegment::Bytes(b) => CounterKdfPart::Bytes(b.clone()),
                })
                .collect();
            let out = match (*prf, base) {
                (CKM_AES_CMAC, LoadedKey::Aes(aes)) => {
                    let cipher = &aes.cipher()?;
                    kdf::sp800_108_counter(&parts, len, |x| {
                        let mut m = crate::crypto::mac::Cmac::new(cipher);
                        m.update(x);
                        m.finish()
                    })?
                }
                (
                    CKM_SHA_1_HMAC | CKM_SHA224_HMAC | CKM_SHA256_HMAC | CKM_SHA384_HMAC
                    | CKM_SHA512_HMAC,
                    _,
                ) => {
                    let h = ops::hash_of(*prf).ok_or(Error::MechanismParamInvalid("PRF".into()))?;
                    let k = secret_value(base)?;
                    kdf::sp800_108_counter(&parts, len, |x| crate::crypto::mac::hmac(h, k, x))?
                }
                _ => {
                    return Err(Error::MechanismParamInvalid(
                        "SP 800-108 PRF must be an HMAC or AES-CMAC".into(),
                    ))
                }
            };
            Ok(out)
        }
        _ => Err(Error::MechanismParamInvalid(
            "missing or wrong mechanism parameters".into(),
        )),
    }
}

/// C_DeriveKey (§5.14). The base key must allow CKA_DERIVE and belong to the caller
/// (CloudHSM: shared users cannot derive). With `strict_derive_policy` (default) a key
/// derived from a secret key cannot be weaker than its base: from a sensitive base it is
/// sensitive, from a non-extractable base non-extractable (otherwise AES_*_ENCRYPT_DATA
/// would be an encryption oracle around CKA_ENCRYPT=false). Key agreement (ECDH) mixes in
/// a peer's public key and makes a new shared secret, so it is not restricted.
pub fn derive_key(
    h: CK_SESSION_HANDLE,
    mech: &Mechanism,
    base: CK_OBJECT_HANDLE,
    template: &Template,
) -> Result<CK_OBJECT_HANDLE> {
    let (lib, s) = session(h)?;
    let profile = s.cluster.profile();
    if !registry::allows(profile, mech.ty, CKF_DERIVE) {
        return Err(Error::MechanismInvalid(mech.ty));
    }
    let entry = s.cluster.entry(base, Access::Own).map_err(|e| match e {
        Error::ObjectHandleInvalid(k) => Error::KeyHandleInvalid(k),
        other => other,
    })?;
    ops::check_key_allows(&entry, mech.ty, CKA_DERIVE, CKF_DERIVE, profile)?;
    s.cluster.route_for(&entry)?;
    let base_key = keys::load(&entry)?;
    let class = template_ulong(template, CKA_CLASS)?.unwrap_or(CKO_SECRET_KEY);
    if class != CKO_SECRET_KEY {
        return Err(Error::TemplateInconsistent(
            "derivation makes secret keys".into(),
        ));
    }
    let key_type = template_ulong(template, CKA_KEY_TYPE)?.unwrap_or(CKK_GENERIC_SECRET);
    let mut t = with_class(template, CKO_SECRET_KEY, key_type)?;
    let restricted = lib.config.strict_derive_policy && entry.object.class == CKO_SECRET_KEY;
    let base_sensitive = restricted && entry.object.bool_attr(CKA_SENSITIVE);
    let base_extractable = !restricted || entry.object.bool_attr(CKA_EXTRACTABLE);
    if base_sensitive {
        match object::template_bool(&t, CKA_SENSITIVE)? {
            Some(false) => {
                return Err(Error::TemplateInconsistent(
                    "a key derived from a sensitive key must be sensitive".into(),
                ))
            }
            Some(true) => {}
            None => t.push((CKA_SENSITIVE, object::bool_bytes(true))),
        }
    }
    if !base_extractable {
        match object::template_bool(&t, CKA_EXTRACTABLE)? {
            Some(true) => {
                return Err(Error::TemplateInconsistent(
                    "a key derived from a non-extractable key cannot be extractable".into(),
                ))
            }
            Some(false) => {}
            None => t.push((CKA_EXTRACTABLE, object::bool_bytes(false))),
        }
    }
    let value = derive_bytes(&s, mech, base_key, &t, key_type)?;
    t.retain(|(ty, _)| *ty != CKA_VALUE_LEN);
    let mut obj = object::build_object(
        &t,
        Origin::Derive,
        actor(&s),
        profile.defaults(),
        new_uid()?,
    )?;
    obj.secrets.insert(CKA_VALUE, value);
    keys::complete_new_object(&mut obj)?;
    // §4.10: ALWAYS_SENSITIVE / NEVER_EXTRACTABLE carry over from the base key.
    let sensitive = obj.bool_attr(CKA_SENSITIVE);
    let extractable = obj.bool_attr(CKA_EXTRACTABLE);
    obj.attrs.insert(
        CKA_ALWAYS_SENSITIVE,
        object::bool_bytes(entry.object.bool_attr(CKA_ALWAYS_SENSITIVE) && sensitive),
    );
    obj.attrs.insert(
        CKA_NEVER_EXTRACTABLE,
        object::bool_bytes(entry.object.bool_attr(CKA_NEVER_EXTRACTABLE) && !extractable),
    );
    check_may_create(&s, obj.is_token(), obj.is_private())?;
    s.cluster.insert_object(obj, s.handle, &s.hsm)
}

/// Imports a PKCS#8 private key (the admin CLI's `key import`): the same path as C_UnwrapKey
/// after the unwrapping. The new key is neither ALWAYS_SENSITIVE nor NEVER_EXTRACTABLE.
pub fn import_pkcs8(
    h: CK_SESSION_HANDLE,
    der: &[u8],
    template: &Template,
) -> Result<CK_OBJECT_HANDLE> {
    let (_lib, s) = session(h)?;
    let material =
        der::decode_pkcs8(der).map_err(|_| Error::ArgumentsBad("not a PKCS#8 private key"))?;
    let key_type = match &material {
        PrivateKeyMaterial::Rsa(_) => CKK_RSA,
        PrivateKeyMaterial::Ec { .. } => CKK_EC,
        PrivateKeyMaterial::Ed25519 { .. } => CKK_EC_EDWARDS,
        PrivateKeyMaterial::X25519 { .. } => CKK_EC_MONTGOMERY,
    };
    let t = with_class(template, CKO_PRIVATE_KEY, key_type)?;
    let mut obj = object::build_object(
        &t,
        Origin::Unwrap,
        actor(&s),
        s.cluster.profile().defaults(),
        new_uid()?,
    )?;
    keys::fill_private(&mut obj, &material)?;
    keys::complete_new_object(&mut obj)?;
    finish_bookkeeping(&mut obj, false);
    check_may_create(&s, obj.is_token(), obj.is_private())?;
    s.cluster.insert_object(obj, s.handle, &s.hsm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(der_tlv_len(&[0x30, 0x03, 1, 2, 3, 0, 0]), Some(5));
        assert_eq!(der_tlv_len(&[0x30, 0x81, 0x02, 1, 2]), Some(5));
        assert_eq!(der_tlv_len(&[0x30, 0x05, 1]), None);
        assert_eq!(der_tlv_len(&[0x30]), None);
    }

    #[test]
    fn cloudhsm_zero_pad_trims_a_private_key_by_its_der_length() {
        let kek = [1u8; 32];
        let mut der = vec![0x30u8, 18, 0x04, 16];
        der.extend_from_slice(&[7u8; 16]);
        let m = crate::vendor::CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD;
        let wrapped = cloudhsm_kw(m, &kek, None, &der, true).unwrap();
        assert_eq!(wrapped.len(), 24 + 8);
        let back = cloudhsm_kw(m, &kek, None, wrapped.expose(), false).unwrap();
        assert_eq!(back.expose(), der.as_slice());
        let p5 = crate::vendor::CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD;
        let w = cloudhsm_kw(p5, &kek, None, &[9u8; 8], true).unwrap();
        assert_eq!(
            w.len(),
            16 + 8,
            "a full block of padding when already aligned"
        );
        assert_eq!(
            cloudhsm_kw(p5, &kek, None, w.expose(), false)
                .unwrap()
                .expose(),
            &[9u8; 8]
        );
    }
}

//! Key material: checking and completing imported objects (C_CreateObject), turning
//! stored attributes into parsed engine keys once (cached on the object entry), and
//! building objects from generated material.

use crate::crypto::block::BlockCipher;
use crate::crypto::der;
use crate::crypto::ec::{self, Curve, EcPrivateKey, EcPublicKey};
use crate::crypto::edwards::{Ed25519PrivateKey, EdwardsCurve, X25519PrivateKey};
use crate::crypto::gcm::GcmKey;
use crate::crypto::rsa::{RsaComponents, RsaPrivateKey, RsaPublicKey};
use crate::error::{Error, Result};
use crate::object::index::Entry;
use crate::object::{bool_bytes, ulong_bytes, Object};
use crate::secure_mem::SecretBytes;
use cryptoki_sys::*;
use std::sync::{Arc, OnceLock};

/// A parsed key, built once per object version and shared by every operation.
pub enum LoadedKey {
    Aes(AesKey),
    Des3 { cipher: Arc<BlockCipher> },
    Generic { value: SecretBytes },
    RsaPrivate(Arc<RsaPrivateKey>),
    RsaPublic(RsaPublicKey),
    EcPrivate(Arc<EcPrivateKey>),
    EcPublic(EcPublicKey),
    Ed25519Private(Arc<Ed25519PrivateKey>),
    Ed25519Public(Vec<u8>),
    X25519Private(Arc<X25519PrivateKey>),
    X25519Public(Vec<u8>),
}

/// An AES key and the engine states built from it on first use by a mode that needs
/// them: a key only ever used for GCM holds no block-cipher schedule and vice versa (at
/// 100,000 keys the difference is ~100 MB).
pub struct AesKey {
    value: SecretBytes,
    cipher: OnceLock<Arc<BlockCipher>>,
    gcm: OnceLock<Arc<GcmKey>>,
}

impl AesKey {
    pub fn value(&self) -> &[u8] {
        self.value.expose()
    }

    /// The expanded key for ECB/CBC/CTR/CMAC.
    pub fn cipher(&self) -> Result<Arc<BlockCipher>> {
        if let Some(c) = self.cipher.get() {
            return Ok(c.clone());
        }
        let c = Arc::new(BlockCipher::aes(self.value())?);
        Ok(self.cipher.get_or_init(|| c).clone())
    }

    /// The GCM context.
    pub fn gcm(&self) -> Result<Arc<GcmKey>> {
        if let Some(g) = self.gcm.get() {
            return Ok(g.clone());
        }
        let g = Arc::new(GcmKey::new(self.value())?);
        Ok(self.gcm.get_or_init(|| g).clone())
    }
}

fn secret(obj: &Object, ty: CK_ATTRIBUTE_TYPE) -> Result<&[u8]> {
    obj.secret(ty)
        .map(SecretBytes::expose)
        .ok_or(Error::TemplateIncomplete(ty))
}

fn opt_secret(obj: &Object, ty: CK_ATTRIBUTE_TYPE) -> Option<SecretBytes> {
    obj.secret(ty).map(SecretBytes::duplicate)
}

fn attr(obj: &Object, ty: CK_ATTRIBUTE_TYPE) -> Result<&[u8]> {
    obj.attr(ty).ok_or(Error::TemplateIncomplete(ty))
}

/// Which curve family CKA_EC_PARAMS names.
pub enum EcFamily {
    Weierstrass(Curve),
    Edwards(EdwardsCurve),
}

pub fn ec_family(params: &[u8]) -> Result<EcFamily> {
    if let Ok(c) = Curve::from_ec_params(params) {
        return Ok(EcFamily::Weierstrass(c));
    }
    EdwardsCurve::from_ec_params(params)
        .map(EcFamily::Edwards)
        .map_err(|_| Error::AttributeValueInvalid(CKA_EC_PARAMS))
}

fn rsa_components(obj: &Object) -> Result<RsaComponents> {
    Ok(RsaComponents {
        n: attr(obj, CKA_MODULUS)?.to_vec(),
        e: obj
            .attr(CKA_PUBLIC_EXPONENT)
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
        d: Some(SecretBytes::from_slice(secret(obj, CKA_PRIVATE_EXPONENT)?)),
        p: opt_secret(obj, CKA_PRIME_1),
        q: opt_secret(obj, CKA_PRIME_2),
        dp: opt_secret(obj, CKA_EXPONENT_1),
        dq: opt_secret(obj, CKA_EXPONENT_2),
        qinv: opt_secret(obj, CKA_COEFFICIENT),
    })
}

/// Parses an object's key material into engine keys.
pub fn parse(obj: &Object) -> Result<LoadedKey> {
    let kt = obj.key_type.ok_or(Error::KeyTypeInconsistent)?;
    Ok(match (obj.class, kt) {
        (CKO_SECRET_KEY, CKK_AES) => {
            let v = secret(obj, CKA_VALUE)?;
            if !matches!(v.len(), 16 | 24 | 32) {
                return Err(Error::KeySizeRange);
            }
            LoadedKey::Aes(AesKey {
                value: SecretBytes::from_slice(v),
                cipher: OnceLock::new(),
                gcm: OnceLock::new(),
            })
        }
        (CKO_SECRET_KEY, CKK_DES3) => LoadedKey::Des3 {
            cipher: Arc::new(BlockCipher::des3(secret(obj, CKA_VALUE)?)?),
        },
        (CKO_SECRET_KEY, CKK_GENERIC_SECRET) => LoadedKey::Generic {
            value: SecretBytes::from_slice(secret(obj, CKA_VALUE)?),
        },
        (CKO_PRIVATE_KEY, CKK_RSA) => LoadedKey::RsaPrivate(Arc::new(
            RsaPrivateKey::from_components(&rsa_components(obj)?)?,
        )),
        (CKO_PUBLIC_KEY, CKK_RSA) => LoadedKey::RsaPublic(RsaPublicKey::from_components(
            attr(obj, CKA_MODULUS)?,
            attr(obj, CKA_PUBLIC_EXPONENT)?,
        )?),
        (CKO_PRIVATE_KEY, CKK_EC) => {
            let curve = Curve::from_ec_params(attr(obj, CKA_EC_PARAMS)?)?;
            LoadedKey::EcPrivate(Arc::new(EcPrivateKey::from_scalar(
                curve,
                secret(obj, CKA_VALUE)?,
            )?))
        }
        (CKO_PUBLIC_KEY, CKK_EC) => {
            let curve = Curve::from_ec_params(attr(obj, CKA_EC_PARAMS)?)?;
            let point =
                ec::ec_point_from_attribute(attr(obj, CKA_EC_POINT)?, Some(curve.point_len()))?;
            LoadedKey::EcPublic(EcPublicKey::from_point(curve, &point)?)
        }
        (CKO_PRIVATE_KEY, CKK_EC_EDWARDS) => LoadedKey::Ed25519Private(Arc::new(
            Ed25519PrivateKey::from_seed(secret(obj, CKA_VALUE)?)?,
        )),
        (CKO_PUBLIC_KEY, CKK_EC_EDWARDS) => LoadedKey::Ed25519Public(ec::ec_point_from_attribute(
            attr(obj, CKA_EC_POINT)?,
            Some(32),
        )?),
        (CKO_PRIVATE_KEY, CKK_EC_MONTGOMERY) => LoadedKey::X25519Private(Arc::new(
            X25519PrivateKey::from_scalar(secret(obj, CKA_VALUE)?)?,
        )),
        (CKO_PUBLIC_KEY, CKK_EC_MONTGOMERY) => LoadedKey::X25519Public(
            ec::ec_point_from_attribute(attr(obj, CKA_EC_POINT)?, Some(32))?,
        ),
        _ => return Err(Error::KeyTypeInconsistent),
    })
}

/// The parsed key of an entry, built on first use and cached with the entry.
/// Borrowed from the entry (no reference count touched: two threads using one key would
/// otherwise write the same cache line on every operation).
pub fn load(entry: &Entry) -> Result<&LoadedKey> {
    if entry.key_cache.get().is_none() {
        // Two threads may parse at once; the first result stays.
        let _ = entry.key_cache.set(Box::new(parse(&entry.object)?));
    }
    entry
        .key_cache
        .get()
        .and_then(|k| k.downcast_ref::<LoadedKey>())
        .ok_or_else(|| Error::GeneralError("cached key of another type".into()))
}

/// AES key check value: the first 3 bytes of ECB(key, 0^128) (PKCS#11 3.0 §2.10.1).
fn aes_check_value(value: &[u8]) -> Result<[u8; 3]> {
    let mut block = [0u8; 16];
    crate::crypto::block::aes_encrypt_block_once(value, &mut block)?;
    Ok([block[0], block[1], block[2]])
}

/// Checks an object made by C_CreateObject (or unwrapped) and fills the attributes the
/// token derives from key material (CKA_VALUE_LEN, CKA_MODULUS_BITS, CKA_CHECK_VALUE,
/// certificate fields, the DER form of CKA_EC_POINT).
pub fn complete_new_object(obj: &mut Object) -> Result<()> {
    match (obj.class, obj.key_type) {
        (CKO_SECRET_KEY, Some(kt)) => {
            let len = secret(obj, CKA_VALUE)?.len();
            let ok = match kt {
                CKK_AES => matches!(len, 16 | 24 | 32),
                CKK_DES3 => matches!(len, 16 | 24),
                _ => len > 0,
            };
            if !ok {
                return Err(Error::AttributeValueInvalid(CKA_VALUE));
            }
            if let Some(given) = obj.ulong_attr(CKA_VALUE_LEN) {
                if given as usize != len {
                    return Err(Error::TemplateInconsistent(
                        "CKA_VALUE_LEN does not match CKA_VALUE".into(),
                    ));
                }
            }
            obj.attrs
                .insert(CKA_VALUE_LEN, ulong_bytes(len as CK_ULONG));
            if kt == CKK_AES {
                let cv = aes_check_value(secret(obj, CKA_VALUE)?)?;
                obj.attrs.insert(CKA_CHECK_VALUE, cv);
            }
        }
        (CKO_PUBLIC_KEY, Some(CKK_RSA)) => {
            let k = RsaPublicKey::from_components(
                attr(obj, CKA_MODULUS)?,
                attr(obj, CKA_PUBLIC_EXPONENT)?,
            )
            .map_err(|_| Error::AttributeValueInvalid(CKA_MODULUS))?;
            obj.attrs
                .insert(CKA_MODULUS_BITS, ulong_bytes(k.modulus_bits() as CK_ULONG));
            obj.attrs.insert(
                CKA_PUBLIC_KEY_INFO,
                der::encode_spki(&der::PublicKeyMaterial::Rsa {
                    n: k.n().to_vec(),
                    e: k.e().to_vec(),
                }),
            );
        }
        (CKO_PRIVATE_KEY, Some(CKK_RSA)) => {
            let k = RsaPrivateKey::from_components(&rsa_components(obj)?)
                .map_err(|_| Error::AttributeValueInvalid(CKA_PRIVATE_EXPONENT))?;
            let p = k.public_key()?;
            obj.attrs
                .insert(CKA_MODULUS_BITS, ulong_bytes(k.modulus_bits() as CK_ULONG));
            if !obj.attrs.contains_key(&CKA_PUBLIC_EXPONENT) && !p.e().is_empty() {
                obj.attrs.insert(CKA_PUBLIC_EXPONENT, p.e());
            }
            if obj
                .attrs
                .get(&CKA_PUBLIC_EXPONENT)
                .is_some_and(|e| !e.is_empty())
            {
                obj.attrs.insert(
                    CKA_PUBLIC_KEY_INFO,
                    der::encode_spki(&der::PublicKeyMaterial::Rsa {
                        n: p.n().to_vec(),
                        e: p.e().to_vec(),
                    }),
                );
            }
        }
        (CKO_PUBLIC_KEY, Some(kt @ (CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY))) => {
            let params = attr(obj, CKA_EC_PARAMS)?.to_vec();
            let (point, spki) = match (ec_family(&params)?, kt) {
                (EcFamily::Weierstrass(c), CKK_EC) => {
                    let p =
                        ec::ec_point_from_attribute(attr(obj, CKA_EC_POINT)?, Some(c.point_len()))
                            .map_err(|_| Error::AttributeValueInvalid(CKA_EC_POINT))?;
                    EcPublicKey::from_point(c, &p)
                        .map_err(|_| Error::AttributeValueInvalid(CKA_EC_POINT))?;
                    let spki = der::encode_spki(&der::PublicKeyMaterial::Ec {
                        curve: c,
                        point: p.clone(),
                    });
                    (p, spki)
                }
                (EcFamily::Edwards(EdwardsCurve::Ed25519), CKK_EC_EDWARDS) => {
                    let p = ec::ec_point_from_attribute(attr(obj, CKA_EC_POINT)?, Some(32))
                        .map_err(|_| Error::AttributeValueInvalid(CKA_EC_POINT))?;
                    (
                        p.clone(),
                        der::encode_spki(&der::PublicKeyMaterial::Ed25519(p)),
                    )
                }
                (EcFamily::Edwards(EdwardsCurve::X25519), CKK_EC_MONTGOMERY) => {
                    let p = ec::ec_point_from_attribute(attr(obj, CKA_EC_POINT)?, Some(32))
                        .map_err(|_| Error::AttributeValueInvalid(CKA_EC_POINT))?;
                    (
                        p.clone(),
                        der::encode_spki(&der::PublicKeyMaterial::X25519(p)),
                    )
                }
                _ => {
                    return Err(Error::TemplateInconsistent(
                        "CKA_EC_PARAMS does not fit the key type".into(),
                    ))
                }
            };
            obj.attrs.insert(CKA_EC_POINT, ec::ec_point_to_der(&point));
            obj.attrs.insert(CKA_PUBLIC_KEY_INFO, spki);
        }
        (CKO_PRIVATE_KEY, Some(CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY)) => {
            ec_family(attr(obj, CKA_EC_PARAMS)?)?;
            parse(obj).map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?;
        }
        (CKO_CERTIFICATE, _) => {
            let value = attr(obj, CKA_VALUE)?.to_vec();
            if let Ok(fields) = der::parse_certificate(&value) {
                for (ty, v) in [
                    (CKA_SUBJECT, fields.subject),
                    (CKA_ISSUER, fields.issuer),
                    (CKA_SERIAL_NUMBER, fields.serial_number),
                ] {
                    if obj.attrs.get(&ty).is_none_or(<[u8]>::is_empty) {
                        obj.attrs.insert(ty, v);
                    }
                }
                obj.attrs.insert(CKA_PUBLIC_KEY_INFO, fields.spki);
            }
            let digest =
                crate::crypto::digest::digest(crate::crypto::digest::HashAlg::Sha1, &value);
            obj.attrs.insert(CKA_CHECK_VALUE, &digest[..3]);
        }
        _ => {}
    }
    Ok(())
}

/// Puts generated or unwrapped private material into an object's secret attributes.
pub fn fill_private(obj: &mut Object, material: &der::PrivateKeyMaterial) -> Result<()> {
    use der::PrivateKeyMaterial as M;
    match material {
        M::Rsa(c) => {
            obj.attrs.insert(CKA_MODULUS, c.n.clone());
            obj.attrs.insert(CKA_PUBLIC_EXPONENT, c.e.clone());
            let bits = c.n.len() * 8 - c.n.first().map_or(0, |b| b.leading_zeros() as usize);
            obj.attrs
                .insert(CKA_MODULUS_BITS, ulong_bytes(bits as CK_ULONG));
            let pairs = [
                (CKA_PRIVATE_EXPONENT, &c.d),
                (CKA_PRIME_1, &c.p),
                (CKA_PRIME_2, &c.q),
                (CKA_EXPONENT_1, &c.dp),
                (CKA_EXPONENT_2, &c.dq),
                (CKA_COEFFICIENT, &c.qinv),
            ];
            for (ty, v) in pairs {
                if let Some(v) = v {
                    obj.secrets.insert(ty, v.duplicate());
                }
            }
            obj.attrs.insert(
                CKA_PUBLIC_KEY_INFO,
                der::encode_spki(&der::PublicKeyMaterial::Rsa {
                    n: c.n.clone(),
                    e: c.e.clone(),
                }),
            );
        }
        M::Ec { curve, scalar, .. } => {
            obj.attrs.insert(CKA_EC_PARAMS, curve.oid_der());
            obj.secrets.insert(CKA_VALUE, scalar.duplicate());
        }
        M::Ed25519 { seed } => {
            obj.attrs
                .insert_if_absent(CKA_EC_PARAMS, || EdwardsCurve::Ed25519.ec_params_der());
            obj.secrets.insert(CKA_VALUE, seed.duplicate());
        }
        M::X25519 { scalar } => {
            obj.attrs
                .insert_if_absent(CKA_EC_PARAMS, || EdwardsCurve::X25519.ec_params_der());
            obj.secrets.insert(CKA_VALUE, scalar.duplicate());
        }
    }
    Ok(())
}

/// Marks a freshly generated key's bookkeeping attributes.
pub fn mark_generated(obj: &mut Object, mech: CK_MECHANISM_TYPE) {
    obj.attrs.insert(CKA_LOCAL, bool_bytes(true));
    obj.attrs.insert(CKA_KEY_GEN_MECHANISM, ulong_bytes(mech));
}

//! Attribute rules as data: which attributes each (class, key type) carries, their
//! defaults, and when they may be given, changed and read (PKCS#11 v2.40 §4, the
//! footnotes of Table 10). Template checks are generic code over this table.

use cryptoki_sys::*;

/// The value shape of an attribute, used to validate lengths on input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Ulong,
    Bytes,
    /// CK_DATE: empty or exactly 8 ASCII digits.
    Date,
    /// An array of CK_ATTRIBUTE (wrap/unwrap templates).
    AttrArray,
    /// An array of CK_MECHANISM_TYPE.
    MechArray,
}

/// Object kinds an attribute belongs to (bit set).
pub mod scope {
    pub const DATA: u16 = 1 << 0;
    pub const CERT: u16 = 1 << 1;
    pub const PUB: u16 = 1 << 2;
    pub const PRIV: u16 = 1 << 3;
    pub const SECRET: u16 = 1 << 4;
    pub const KEY: u16 = PUB | PRIV | SECRET;
    pub const STORAGE: u16 = DATA | CERT | KEY;
}

/// Key types an attribute belongs to (bit set); 0 means "any".
pub mod keys {
    pub const ANY: u16 = 0;
    pub const RSA: u16 = 1 << 0;
    pub const EC: u16 = 1 << 1;
    pub const EDWARDS: u16 = 1 << 2;
    pub const MONTGOMERY: u16 = 1 << 3;
    pub const AES: u16 = 1 << 4;
    pub const GENERIC: u16 = 1 << 5;
    pub const DES3: u16 = 1 << 6;
    pub const ECLIKE: u16 = EC | EDWARDS | MONTGOMERY;
    pub const SYMMETRIC: u16 = AES | GENERIC | DES3;
}

/// Rules for one attribute (the footnote numbers of PKCS#11 v2.40 Table 10).
pub mod rule {
    /// 1: must be given to C_CreateObject.
    pub const REQUIRED_ON_CREATE: u16 = 1 << 0;
    /// 2: must not be given to C_CreateObject (the token computes it).
    pub const FORBIDDEN_ON_CREATE: u16 = 1 << 1;
    /// 3: must be given to C_GenerateKey/C_GenerateKeyPair.
    pub const REQUIRED_ON_GENERATE: u16 = 1 << 2;
    /// 4: must not be given to C_GenerateKey/C_GenerateKeyPair.
    pub const FORBIDDEN_ON_GENERATE: u16 = 1 << 3;
    /// 6: must not be given to C_UnwrapKey/C_DeriveKey.
    pub const FORBIDDEN_ON_UNWRAP: u16 = 1 << 4;
    /// 7: secret: not revealed when CKA_SENSITIVE or !CKA_EXTRACTABLE; sealed at rest.
    pub const SENSITIVE_VALUE: u16 = 1 << 5;
    /// 8: may be changed by C_SetAttributeValue / C_CopyObject.
    pub const MODIFIABLE: u16 = 1 << 6;
    /// 10: may only change FALSE -> TRUE.
    pub const ONLY_TO_TRUE: u16 = 1 << 7;
    /// 11: may only be set TRUE by the Security Officer.
    pub const SO_ONLY: u16 = 1 << 8;
    /// May only change TRUE -> FALSE (CKA_EXTRACTABLE, CKA_COPYABLE).
    pub const ONLY_TO_FALSE: u16 = 1 << 9;
    /// Computed by the token; never accepted from a template.
    pub const COMPUTED: u16 = FORBIDDEN_ON_CREATE | FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP;
}

/// A default applied when a template is silent.
#[derive(Clone, Copy, Debug)]
pub enum Default {
    None,
    Bool(bool),
    Ulong(CK_ULONG),
    Empty,
}

#[derive(Clone, Copy, Debug)]
pub struct AttrSpec {
    pub ty: CK_ATTRIBUTE_TYPE,
    pub kind: Kind,
    pub scope: u16,
    pub keys: u16,
    pub rules: u16,
    pub default: Default,
}

const fn a(
    ty: CK_ATTRIBUTE_TYPE,
    kind: Kind,
    scope: u16,
    keys: u16,
    rules: u16,
    default: Default,
) -> AttrSpec {
    AttrSpec {
        ty,
        kind,
        scope,
        keys,
        rules,
        default,
    }
}

use keys::*;
use rule::*;
use scope::*;
use Kind::*;

/// The attribute table. An attribute may appear more than once with different scopes.
/// Defaults for usage flags follow SoftHSMv2 (true when a template is silent), which
/// pkcs11-tool and Java SunPKCS11 rely on; profile-specific overrides live in `defaults_for`.
pub static ATTRIBUTES: &[AttrSpec] = &[
    // Common to every object.
    a(
        CKA_CLASS,
        Ulong,
        STORAGE,
        ANY,
        REQUIRED_ON_CREATE,
        Default::None,
    ),
    a(CKA_TOKEN, Bool, STORAGE, ANY, 0, Default::Bool(false)),
    a(CKA_PRIVATE, Bool, STORAGE, ANY, 0, Default::None),
    a(CKA_MODIFIABLE, Bool, STORAGE, ANY, 0, Default::Bool(true)),
    a(CKA_LABEL, Bytes, STORAGE, ANY, MODIFIABLE, Default::Empty),
    a(
        CKA_COPYABLE,
        Bool,
        STORAGE,
        ANY,
        MODIFIABLE | ONLY_TO_FALSE,
        Default::Bool(true),
    ),
    a(
        CKA_DESTROYABLE,
        Bool,
        STORAGE,
        ANY,
        MODIFIABLE,
        Default::Bool(true),
    ),
    a(CKA_UNIQUE_ID, Bytes, STORAGE, ANY, COMPUTED, Default::None),
    // Data objects.
    a(
        CKA_APPLICATION,
        Bytes,
        DATA,
        ANY,
        MODIFIABLE,
        Default::Empty,
    ),
    a(CKA_OBJECT_ID, Bytes, DATA, ANY, MODIFIABLE, Default::Empty),
    a(CKA_VALUE, Bytes, DATA, ANY, MODIFIABLE, Default::Empty),
    // Certificates (X.509 public key certificates).
    a(
        CKA_CERTIFICATE_TYPE,
        Ulong,
        CERT,
        ANY,
        REQUIRED_ON_CREATE,
        Default::None,
    ),
    a(
        CKA_TRUSTED,
        Bool,
        CERT,
        ANY,
        MODIFIABLE | SO_ONLY,
        Default::Bool(false),
    ),
    a(
        CKA_CERTIFICATE_CATEGORY,
        Ulong,
        CERT,
        ANY,
        MODIFIABLE,
        Default::Ulong(0),
    ),
    a(CKA_CHECK_VALUE, Bytes, CERT, ANY, COMPUTED, Default::None),
    a(CKA_START_DATE, Date, CERT, ANY, MODIFIABLE, Default::Empty),
    a(CKA_END_DATE, Date, CERT, ANY, MODIFIABLE, Default::Empty),
    a(CKA_SUBJECT, Bytes, CERT, ANY, MODIFIABLE, Default::Empty),
    a(CKA_ID, Bytes, CERT, ANY, MODIFIABLE, Default::Empty),
    a(CKA_ISSUER, Bytes, CERT, ANY, MODIFIABLE, Default::Empty),
    a(
        CKA_SERIAL_NUMBER,
        Bytes,
        CERT,
        ANY,
        MODIFIABLE,
        Default::Empty,
    ),
    a(
        CKA_VALUE,
        Bytes,
        CERT,
        ANY,
        REQUIRED_ON_CREATE,
        Default::None,
    ),
    a(CKA_URL, Bytes, CERT, ANY, 0, Default::Empty),
    a(
        CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
        Bytes,
        CERT,
        ANY,
        0,
        Default::Empty,
    ),
    a(
        CKA_HASH_OF_ISSUER_PUBLIC_KEY,
        Bytes,
        CERT,
        ANY,
        0,
        Default::Empty,
    ),
    a(
        CKA_JAVA_MIDP_SECURITY_DOMAIN,
        Ulong,
        CERT,
        ANY,
        0,
        Default::Ulong(0),
    ),
    a(
        CKA_NAME_HASH_ALGORITHM,
        Ulong,
        CERT,
        ANY,
        0,
        Default::Ulong(CKM_SHA_1),
    ),
    a(CKA_PUBLIC_KEY_INFO, Bytes, CERT, ANY, 0, Default::Empty),
    // Every key.
    a(
        CKA_KEY_TYPE,
        Ulong,
        KEY,
        ANY,
        REQUIRED_ON_CREATE,
        Default::None,
    ),
    a(CKA_ID, Bytes, KEY, ANY, MODIFIABLE, Default::Empty),
    a(CKA_START_DATE, Date, KEY, ANY, MODIFIABLE, Default::Empty),
    a(CKA_END_DATE, Date, KEY, ANY, MODIFIABLE, Default::Empty),
    a(CKA_DERIVE, Bool, KEY, ANY, MODIFIABLE, Default::Bool(false)),
    a(CKA_LOCAL, Bool, KEY, ANY, COMPUTED, Default::Bool(false)),
    a(
        CKA_KEY_GEN_MECHANISM,
        Ulong,
        KEY,
        ANY,
        COMPUTED,
        Default::Ulong(CK_UNAVAILABLE_INFORMATION),
    ),
    a(
        CKA_ALLOWED_MECHANISMS,
        MechArray,
        KEY,
        ANY,
        0,
        Default::Empty,
    ),
    // Public keys.
    a(CKA_SUBJECT, Bytes, PUB, ANY, MODIFIABLE, Default::Empty),
    a(CKA_ENCRYPT, Bool, PUB, ANY, MODIFIABLE, Default::Bool(true)),
    a(CKA_VERIFY, Bool, PUB, ANY, MODIFIABLE, Default::Bool(true)),
    a(
        CKA_VERIFY_RECOVER,
        Bool,
        PUB,
        ANY,
        MODIFIABLE,
        Default::Bool(true),
    ),
    a(CKA_WRAP, Bool, PUB, ANY, MODIFIABLE, Default::Bool(true)),
    a(
        CKA_TRUSTED,
        Bool,
        PUB,
        ANY,
        MODIFIABLE | SO_ONLY,
        Default::Bool(false),
    ),
    a(CKA_WRAP_TEMPLATE, AttrArray, PUB, ANY, 0, Default::Empty),
    a(CKA_PUBLIC_KEY_INFO, Bytes, PUB, ANY, 0, Default::Empty),
    // Private keys.
    a(CKA_SUBJECT, Bytes, PRIV, ANY, MODIFIABLE, Default::Empty),
    a(
        CKA_SENSITIVE,
        Bool,
        PRIV,
        ANY,
        MODIFIABLE | ONLY_TO_TRUE,
        Default::Bool(true),
    ),
    a(
        CKA_DECRYPT,
        Bool,
        PRIV,
        ANY,
        MODIFIABLE,
        Default::Bool(true),
    ),
    a(CKA_SIGN, Bool, PRIV, ANY, MODIFIABLE, Default::Bool(true)),
    a(
        CKA_SIGN_RECOVER,
        Bool,
        PRIV,
        ANY,
        MODIFIABLE,
        Default::Bool(true),
    ),
    a(CKA_UNWRAP, Bool, PRIV, ANY, MODIFIABLE, Default::Bool(true)),
    a(
        CKA_EXTRACTABLE,
        Bool,
        PRIV,
        ANY,
        MODIFIABLE | ONLY_TO_FALSE,
        Default::None,
    ),
    a(
        CKA_ALWAYS_SENSITIVE,
        Bool,
        PRIV,
        ANY,
        COMPUTED,
        Default::None,
    ),
    a(
        CKA_NEVER_EXTRACTABLE,
        Bool,
        PRIV,
        ANY,
        COMPUTED,
        Default::None,
    ),
    a(
        CKA_WRAP_WITH_TRUSTED,
        Bool,
        PRIV,
        ANY,
        MODIFIABLE | ONLY_TO_TRUE,
        Default::Bool(false),
    ),
    a(CKA_UNWRAP_TEMPLATE, AttrArray, PRIV, ANY, 0, Default::Empty),
    a(
        CKA_ALWAYS_AUTHENTICATE,
        Bool,
        PRIV,
        ANY,
        0,
        Default::Bool(false),
    ),
    a(CKA_PUBLIC_KEY_INFO, Bytes, PRIV, ANY, 0, Default::Empty),
    // Secret keys.
    a(
        CKA_SENSITIVE,
        Bool,
        SECRET,
        ANY,
        MODIFIABLE | ONLY_TO_TRUE,
        Default::None,
    ),
    a(
        CKA_ENCRYPT,
        Bool,
        SECRET,
        ANY,
        MODIFIABLE,
        Default::Bool(true),
    ),
    a(
        CKA_DECRYPT,
        Bool,
        SECRET,
        ANY,
        MODIFIABLE,
        Default::Bool(true),
    ),
    a(CKA_SIGN, Bool, SECRET, ANY, MODIFIABLE, Default::Bool(true)),
    a(
        CKA_VERIFY,
        Bool,
        SECRET,
        ANY,
        MODIFIABLE,
        Default::Bool(true),
    ),
    a(CKA_WRAP, Bool, SECRET, ANY, MODIFIABLE, Default::Bool(true)),
    a(
        CKA_UNWRAP,
        Bool,
        SECRET,
        ANY,
        MODIFIABLE,
        Default::Bool(true),
    ),
    a(
        CKA_EXTRACTABLE,
        Bool,
        SECRET,
        ANY,
        MODIFIABLE | ONLY_TO_FALSE,
        Default::None,
    ),
    a(
        CKA_ALWAYS_SENSITIVE,
        Bool,
        SECRET,
        ANY,
        COMPUTED,
        Default::None,
    ),
    a(
        CKA_NEVER_EXTRACTABLE,
        Bool,
        SECRET,
        ANY,
        COMPUTED,
        Default::None,
    ),
    a(CKA_CHECK_VALUE, Bytes, SECRET, ANY, COMPUTED, Default::None),
    a(
        CKA_WRAP_WITH_TRUSTED,
        Bool,
        SECRET,
        ANY,
        MODIFIABLE | ONLY_TO_TRUE,
        Default::Bool(false),
    ),
    a(
        CKA_TRUSTED,
        Bool,
        SECRET,
        ANY,
        MODIFIABLE | SO_ONLY,
        Default::Bool(false),
    ),
    a(CKA_WRAP_TEMPLATE, AttrArray, SECRET, ANY, 0, Default::Empty),
    a(
        CKA_UNWRAP_TEMPLATE,
        AttrArray,
        SECRET,
        ANY,
        0,
        Default::Empty,
    ),
    // RSA.
    a(
        CKA_MODULUS,
        Bytes,
        PUB | PRIV,
        RSA,
        REQUIRED_ON_CREATE | FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP,
        Default::None,
    ),
    a(
        CKA_MODULUS_BITS,
        Ulong,
        PUB,
        RSA,
        FORBIDDEN_ON_CREATE | REQUIRED_ON_GENERATE | FORBIDDEN_ON_UNWRAP,
        Default::None,
    ),
    a(
        CKA_PUBLIC_EXPONENT,
        Bytes,
        PUB,
        RSA,
        REQUIRED_ON_CREATE | FORBIDDEN_ON_UNWRAP,
        Default::None,
    ),
    a(CKA_MODULUS_BITS, Ulong, PRIV, RSA, COMPUTED, Default::None),
    a(
        CKA_PUBLIC_EXPONENT,
        Bytes,
        PRIV,
        RSA,
        FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP,
        Default::None,
    ),
    a(
        CKA_PRIVATE_EXPONENT,
        Bytes,
        PRIV,
        RSA,
        REQUIRED_ON_CREATE | FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP | SENSITIVE_VALUE,
        Default::None,
    ),
    a(
        CKA_PRIME_1,
        Bytes,
        PRIV,
        RSA,
        FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP | SENSITIVE_VALUE,
        Default::None,
    ),
    a(
        CKA_PRIME_2,
        Bytes,
        PRIV,
        RSA,
        FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP | SENSITIVE_VALUE,
        Default::None,
    ),
    a(
        CKA_EXPONENT_1,
        Bytes,
        PRIV,
        RSA,
        FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP | SENSITIVE_VALUE,
        Default::None,
    ),
    a(
        CKA_EXPONENT_2,
        Bytes,
        PRIV,
        RSA,
        FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP | SENSITIVE_VALUE,
        Default::None,
    ),
    a(
        CKA_COEFFICIENT,
        Bytes,
        PRIV,
        RSA,
        FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP | SENSITIVE_VALUE,
        Default::None,
    ),
    // Elliptic curves (Weierstrass, Edwards, Montgomery share the shape).
    a(
        CKA_EC_PARAMS,
        Bytes,
        PUB,
        ECLIKE,
        REQUIRED_ON_CREATE | REQUIRED_ON_GENERATE | FORBIDDEN_ON_UNWRAP,
        Default::None,
    ),
    a(
        CKA_EC_PARAMS,
        Bytes,
        PRIV,
        ECLIKE,
        REQUIRED_ON_CREATE | FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP,
        Default::None,
    ),
    a(
        CKA_EC_POINT,
        Bytes,
        PUB,
        ECLIKE,
        REQUIRED_ON_CREATE | FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP,
        Default::None,
    ),
    a(
        CKA_VALUE,
        Bytes,
        PRIV,
        ECLIKE,
        REQUIRED_ON_CREATE | FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP | SENSITIVE_VALUE,
        Default::None,
    ),
    // Symmetric keys.
    a(
        CKA_VALUE,
        Bytes,
        SECRET,
        SYMMETRIC,
        REQUIRED_ON_CREATE | FORBIDDEN_ON_GENERATE | FORBIDDEN_ON_UNWRAP | SENSITIVE_VALUE,
        Default::None,
    ),
    a(
        CKA_VALUE_LEN,
        Ulong,
        SECRET,
        AES | GENERIC,
        FORBIDDEN_ON_CREATE,
        Default::None,
    ),
    a(CKA_VALUE_LEN, Ulong, SECRET, DES3, COMPUTED, Default::None),
];

/// Bit for a class in `scope`, or None for classes this token does not store.
pub fn class_scope(class: CK_OBJECT_CLASS) -> Option<u16> {
    Some(match class {
        CKO_DATA => DATA,
        CKO_CERTIFICATE => CERT,
        CKO_PUBLIC_KEY => PUB,
        CKO_PRIVATE_KEY => PRIV,
        CKO_SECRET_KEY => SECRET,
        _ => return None,
    })
}

/// Bit for a key type in `keys`, or None for key types this token does not know.
pub fn key_type_bit(key_type: CK_KEY_TYPE) -> Option<u16> {
    Some(match key_type {
        CKK_RSA => RSA,
        CKK_EC => EC,
        CKK_EC_EDWARDS => EDWARDS,
        CKK_EC_MONTGOMERY => MONTGOMERY,
        CKK_AES => AES,
        CKK_GENERIC_SECRET => GENERIC,
        CKK_DES3 => DES3,
        _ => return None,
    })
}

/// Whether a key type belongs with a class (RSA is not a secret key, AES is not public).
pub fn key_type_fits_class(class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE) -> bool {
    match class {
        CKO_SECRET_KEY => matches!(key_type, CKK_AES | CKK_GENERIC_SECRET | CKK_DES3),
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY => {
            matches!(
                key_type,
                CKK_RSA | CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY
            )
        }
        _ => false,
    }
}

/// The rule for `ty` on an object of this class and key type, if the attribute exists there.
pub fn spec_for(
    ty: CK_ATTRIBUTE_TYPE,
    class: CK_OBJECT_CLASS,
    key_type: Option<CK_KEY_TYPE>,
) -> Option<&'static AttrSpec> {
    let specs = specs_by_type(class, key_type)?;
    let first = specs.partition_point(|s| s.ty < ty);
    specs.get(first).copied().filter(|s| s.ty == ty)
}

/// Every attribute an object of this class and key type carries.
pub fn specs_for(
    class: CK_OBJECT_CLASS,
    key_type: Option<CK_KEY_TYPE>,
) -> impl Iterator<Item = &'static AttrSpec> {
    specs_by_type(class, key_type)
        .unwrap_or_default()
        .iter()
        .copied()
}

/// The table entries that apply to one class and key type, sorted by attribute type (the
/// first table entry first where a type appears twice, as a scan of the table would
/// find). Built once per combination: creating an object looks attributes up dozens of
/// times.
fn specs_by_type(
    class: CK_OBJECT_CLASS,
    key_type: Option<CK_KEY_TYPE>,
) -> Option<&'static [&'static AttrSpec]> {
    const CLASSES: [CK_OBJECT_CLASS; 5] = [
        CKO_DATA,
        CKO_CERTIFICATE,
        CKO_PUBLIC_KEY,
        CKO_PRIVATE_KEY,
        CKO_SECRET_KEY,
    ];
    const KEY_TYPES: [CK_KEY_TYPE; 7] = [
        CKK_RSA,
        CKK_EC,
        CKK_EC_EDWARDS,
        CKK_EC_MONTGOMERY,
        CKK_AES,
        CKK_GENERIC_SECRET,
        CKK_DES3,
    ];
    static TABLES: std::sync::OnceLock<Vec<Vec<&'static AttrSpec>>> = std::sync::OnceLock::new();
    let class_index = CLASSES.iter().position(|c| *c == class)?;
    // Slot 0 is "no key type, or one this token does not know" (key bit 0).
    let key_index = key_type
        .and_then(|k| KEY_TYPES.iter().position(|t| *t == k))
        .map_or(0, |i| i + 1);
    let tables = TABLES.get_or_init(|| {
        let mut all = Vec::new();
        for c in CLASSES {
            let class_bit = class_scope(c).unwrap_or(0);
            for k in std::iter::once(None).chain(KEY_TYPES.iter().map(|k| Some(*k))) {
                let key_bit = k.and_then(key_type_bit).unwrap_or(0);
                let mut list: Vec<&'static AttrSpec> = ATTRIBUTES
                    .iter()
                    .filter(|s| {
                        s.scope & class_bit != 0 && (s.keys == ANY || s.keys & key_bit != 0)
                    })
                    .collect();
                list.sort_by_key(|s| s.ty);
                all.push(list);
            }
        }
        all
    });
    tables
        .get(class_index * (KEY_TYPES.len() + 1) + key_index)
        .map(Vec::as_slice)
}

/// Whether `ty` is a secret-valued attribute on this kind of object.
pub fn is_secret(
    ty: CK_ATTRIBUTE_TYPE,
    class: CK_OBJECT_CLASS,
    key_type: Option<CK_KEY_TYPE>,
) -> bool {
    spec_for(ty, class, key_type).is_some_and(|s| s.rules & SENSITIVE_VALUE != 0)
}

/// Checks a value's shape against its kind.
pub fn value_shape_ok(kind: Kind, value: &[u8]) -> bool {
    if value.len() > super::attrs::MAX_VALUE_LEN {
        return false;
    }
    match kind {
        Bool => value.len() == 1,
        Ulong => value.len() == std::mem::size_of::<CK_ULONG>(),
        Date => value.is_empty() || (value.len() == 8 && value.iter().all(u8::is_ascii_digit)),
        Bytes | AttrArray => true,
        MechArray => value.len() % std::mem::size_of::<CK_ULONG>() == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_lookup_matches_a_table_scan() {
        let classes = [
            CKO_DATA,
            CKO_CERTIFICATE,
            CKO_PUBLIC_KEY,
            CKO_PRIVATE_KEY,
            CKO_SECRET_KEY,
            CKO_HW_FEATURE,
        ];
        let key_types = [
            None,
            Some(CKK_RSA),
            Some(CKK_EC),
            Some(CKK_EC_EDWARDS),
            Some(CKK_EC_MONTGOMERY),
            Some(CKK_AES),
            Some(CKK_GENERIC_SECRET),
            Some(CKK_DES3),
            Some(CKK_DSA),
        ];
        for class in classes {
            for key_type in key_types {
                let class_bit = class_scope(class).unwrap_or(0);
                let key_bit = key_type.and_then(key_type_bit).unwrap_or(0);
                let applies = |s: &&AttrSpec| {
                    s.scope & class_bit != 0 && (s.keys == ANY || s.keys & key_bit != 0)
                };
                for ty in ATTRIBUTES.iter().map(|s| s.ty).chain([0x7fff_ffff]) {
                    let scanned = ATTRIBUTES.iter().find(|s| s.ty == ty && applies(s));
                    let cached = spec_for(ty, class, key_type);
                    assert_eq!(
                        scanned.map(|s| s as *const AttrSpec),
                        cached.map(|s| s as *const AttrSpec),
                        "type 0x{ty:x} class 0x{class:x} key {key_type:?}"
                    );
                }
                let mut scanned: Vec<_> = ATTRIBUTES.iter().filter(applies).map(|s| s.ty).collect();
                let mut listed: Vec<_> = specs_for(class, key_type).map(|s| s.ty).collect();
                scanned.sort();
                listed.sort();
                assert_eq!(scanned, listed);
            }
        }
    }

    #[test]
    fn every_class_has_class_and_token() {
        for class in [
            CKO_DATA,
            CKO_CERTIFICATE,
            CKO_PUBLIC_KEY,
            CKO_PRIVATE_KEY,
            CKO_SECRET_KEY,
        ] {
            assert!(spec_for(CKA_CLASS, class, None).is_some());
            assert!(spec_for(CKA_TOKEN, class, None).is_some());
        }
    }

    #[test]
    fn value_is_secret_only_for_keys() {
        assert!(is_secret(CKA_VALUE, CKO_SECRET_KEY, Some(CKK_AES)));
        assert!(is_secret(CKA_VALUE, CKO_PRIVATE_KEY, Some(CKK_EC)));
        assert!(!is_secret(CKA_VALUE, CKO_DATA, None));
        assert!(!is_secret(CKA_VALUE, CKO_CERTIFICATE, None));
        assert!(is_secret(CKA_PRIME_1, CKO_PRIVATE_KEY, Some(CKK_RSA)));
        assert!(!is_secret(CKA_MODULUS, CKO_PRIVATE_KEY, Some(CKK_RSA)));
    }

    #[test]
    fn rsa_attributes_do_not_leak_to_ec() {
        assert!(spec_for(CKA_MODULUS, CKO_PUBLIC_KEY, Some(CKK_EC)).is_none());
        assert!(spec_for(CKA_EC_POINT, CKO_PUBLIC_KEY, Some(CKK_RSA)).is_none());
        assert!(spec_for(CKA_VALUE_LEN, CKO_SECRET_KEY, Some(CKK_AES)).is_some());
    }

    #[test]
    fn shapes() {
        assert!(value_shape_ok(Kind::Bool, &[1]));
        assert!(!value_shape_ok(Kind::Bool, &[1, 0]));
        assert!(value_shape_ok(Kind::Date, b"20240101"));
        assert!(!value_shape_ok(Kind::Date, b"2024010x"));
        assert!(value_shape_ok(Kind::Date, b""));
    }
}

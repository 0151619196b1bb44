//! The object model: an immutable attribute set per object (changes make a new version),
//! template validation over the rules in [`schema`], and the per-process index.

pub mod attrs;
pub mod index;
pub mod schema;

use crate::error::{Error, Result};
use crate::secure_mem::SecretBytes;
pub use attrs::AttrMap;
use cryptoki_sys::*;
use schema::{rule, Default as AttrDefault, Kind};
use std::sync::OnceLock;

/// An attribute template as received from the caller (type, raw value bytes).
pub type Template = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

/// How an object comes to exist; selects which template rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Create,
    Generate(CK_MECHANISM_TYPE),
    Unwrap,
    Derive,
}

/// Who is asking, for rules that depend on the role (CKA_TRUSTED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    SecurityOfficer,
    User,
    Public,
}

/// Token-wide defaults that differ by profile.
#[derive(Clone, Copy, Debug)]
pub struct ProfileDefaults {
    pub extractable: bool,
    pub secret_sensitive: bool,
}

pub fn bool_bytes(b: bool) -> Vec<u8> {
    bool_value(b).to_vec()
}

/// A CK_BBOOL value without an allocation (for `AttrMap::insert`).
pub fn bool_value(b: bool) -> [u8; 1] {
    [if b { CK_TRUE } else { CK_FALSE }]
}

fn bool_ref(b: bool) -> &'static [u8] {
    if b {
        &[CK_TRUE]
    } else {
        &[CK_FALSE]
    }
}

/// A CK_ULONG value without an allocation (for `AttrMap::insert`).
pub fn ulong_value(v: CK_ULONG) -> [u8; std::mem::size_of::<CK_ULONG>()] {
    v.to_ne_bytes()
}

pub fn ulong_bytes(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

pub fn bytes_to_ulong(v: &[u8]) -> Option<CK_ULONG> {
    Some(CK_ULONG::from_ne_bytes(v.try_into().ok()?))
}

pub fn template_get(t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)], ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    t.iter()
        .rev()
        .find(|(k, _)| *k == ty)
        .map(|(_, v)| v.as_slice())
}

pub fn template_ulong(
    t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ty: CK_ATTRIBUTE_TYPE,
) -> Result<Option<CK_ULONG>> {
    match template_get(t, ty) {
        None => Ok(None),
        Some(v) => bytes_to_ulong(v)
            .map(Some)
            .ok_or(Error::AttributeValueInvalid(ty)),
    }
}

pub fn template_bool(
    t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ty: CK_ATTRIBUTE_TYPE,
) -> Result<Option<bool>> {
    match template_get(t, ty) {
        None => Ok(None),
        Some([b]) => Ok(Some(*b != CK_FALSE)),
        Some(_) => Err(Error::AttributeValueInvalid(ty)),
    }
}

/// Secret-valued attributes (key material), each in locked memory. Objects hold one to
/// six, so a short vector beats a map.
#[derive(Default)]
pub struct SecretMap(Vec<(CK_ATTRIBUTE_TYPE, SecretBytes)>);

impl SecretMap {
    pub fn get(&self, ty: &CK_ATTRIBUTE_TYPE) -> Option<&SecretBytes> {
        self.0.iter().find(|(t, _)| t == ty).map(|(_, v)| v)
    }

    pub fn contains_key(&self, ty: &CK_ATTRIBUTE_TYPE) -> bool {
        self.get(ty).is_some()
    }

    pub fn insert(&mut self, ty: CK_ATTRIBUTE_TYPE, value: SecretBytes) {
        match self.0.iter_mut().find(|(t, _)| *t == ty) {
            Some(slot) => slot.1 = value,
            None => self.0.push((ty, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (CK_ATTRIBUTE_TYPE, &SecretBytes)> + '_ {
        self.0.iter().map(|(t, v)| (*t, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn duplicate(&self) -> SecretMap {
        SecretMap(self.0.iter().map(|(t, v)| (*t, v.duplicate())).collect())
    }
}

/// The sealed part of a stored object, kept as loaded and opened on first use: logging in
/// to a token with 100,000 keys then costs nothing per key, and a key never used in this
/// process is never decrypted in it.
struct Sealed {
    /// The uid the seal's AAD names when it is not the object's own (a copy made before
    /// opening).
    aad_uid: Option<Box<str>>,
    blob: Box<[u8]>,
    opened: OnceLock<Opened>,
}

/// What a sealed part holds once opened: secrets, and non-secret values that are sealed
/// because the object is private (a private data object's CKA_VALUE).
struct Opened {
    secrets: SecretMap,
    attrs: AttrMap,
}

/// One object: public attributes in the clear, secret-valued ones in `SecretBytes`, and
/// for stored objects possibly a sealed part not opened yet.
pub struct Object {
    pub uid: String,
    pub class: CK_OBJECT_CLASS,
    pub key_type: Option<CK_KEY_TYPE>,
    pub attrs: AttrMap,
    pub secrets: SecretMap,
    sealed: Option<Box<Sealed>>,
    /// The Crypto User that owns the object (None for objects made before any login);
    /// shared by every object of that user (see `ClusterInner::intern_owner`).
    pub owner: Option<std::sync::Arc<str>>,
    /// Other Crypto Users the owner shared this key with.
    pub shared_with: Vec<String>,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("uid", &self.uid)
            .field("class", &self.class)
            .field("key_type", &self.key_type)
            .field("secret_attrs", &self.secrets.len())
            .field("sealed", &self.sealed.is_some())
            .finish()
    }
}

/// What `C_GetAttributeValue` may reveal for one attribute.
pub enum Reveal<'a> {
    Value(&'a [u8]),
    Sensitive,
    Invalid,
}

impl Object {
    /// An object with the given public attributes and nothing secret yet.
    pub fn from_attrs(uid: String, attrs: AttrMap) -> Option<Object> {
        let class = attrs.get(&CKA_CLASS).and_then(bytes_to_ulong)?;
        let key_type = attrs.get(&CKA_KEY_TYPE).and_then(bytes_to_ulong);
        Some(Object {
            uid,
            class,
            key_type,
            attrs,
            secrets: SecretMap::default(),
            sealed: None,
            owner: None,
            shared_with: Vec::new(),
        })
    }

    /// Attaches a stored sealed part, opened later by [`Object::unseal`].
    pub fn set_sealed(&mut self, blob: Vec<u8>) {
        self.sealed = Some(Box::new(Sealed {
            aad_uid: None,
            blob: blob.into_boxed_slice(),
            opened: OnceLock::new(),
        }));
    }

    fn opened(&self) -> Option<&Opened> {
        self.sealed.as_ref().and_then(|s| s.opened.get())
    }

    /// Whether a sealed part is still closed (its values are not known in this process).
    pub fn is_sealed_closed(&self) -> bool {
        self.sealed
            .as_ref()
            .is_some_and(|s| s.opened.get().is_none())
    }

    /// Opens the sealed part, once; `open` decrypts a blob sealed for a given uid into a
    /// stored record. Values go straight from the decrypted record into locked memory.
    pub fn unseal(&self, open: impl FnOnce(&str, &[u8]) -> Result<SecretBytes>) -> Result<()> {
        let Some(sealed) = &self.sealed else {
            return Ok(());
        };
        if sealed.opened.get().is_some() {
            return Ok(());
        }
        let plain = open(sealed.aad_uid.as_deref().unwrap_or(&self.uid), &sealed.blob)?;
        let mut opened = Opened {
            secrets: SecretMap::default(),
            attrs: AttrMap::new(),
        };
        crate::store::record::decode_each(plain.expose(), |ty, value| {
            if schema::is_secret(ty, self.class, self.key_type) {
                opened.secrets.insert(ty, SecretBytes::from_slice(value));
            } else {
                opened.attrs.insert(ty, value);
            }
        })?;
        opened.attrs.shrink_to_fit();
        // Two threads may open at once; the first result stays, the other is dropped.
        let _ = sealed.opened.set(opened);
        Ok(())
    }

    /// The stored sealed blob, when it can be written back unchanged: still closed, sealed
    /// for this uid, and no secret added beside it. `Err` when the part is closed but
    /// cannot be reused (the master key is needed to seal anew).
    pub fn reusable_seal(&self) -> Result<Option<&[u8]>> {
        match &self.sealed {
            Some(s) if s.opened.get().is_none() => {
                let same_uid = s.aad_uid.as_deref().is_none_or(|a| a == self.uid);
                if same_uid && self.secrets.is_empty() {
                    Ok(Some(&s.blob))
                } else {
                    Err(Error::UserNotLoggedIn)
                }
            }
            _ => Ok(None),
        }
    }

    /// Every known secret attribute (plain and opened).
    pub fn all_secrets(&self) -> impl Iterator<Item = (CK_ATTRIBUTE_TYPE, &SecretBytes)> + '_ {
        self.secrets
            .iter()
            .chain(self.opened().into_iter().flat_map(|o| o.secrets.iter()))
    }

    pub fn bool_attr(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(self.attr(ty), Some([b]) if *b != CK_FALSE)
    }

    pub fn ulong_attr(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
        self.attr(ty).and_then(bytes_to_ulong)
    }

    /// A non-secret attribute (public, or from an opened sealed part).
    pub fn attr(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.attrs
            .get(&ty)
            .or_else(|| self.opened().and_then(|o| o.attrs.get(&ty)))
    }

    pub fn secret(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&SecretBytes> {
        self.secrets
            .get(&ty)
            .or_else(|| self.opened().and_then(|o| o.secrets.get(&ty)))
    }

    pub fn is_token(&self) -> bool {
        self.bool_attr(CKA_TOKEN)
    }

    pub fn is_private(&self) -> bool {
        self.bool_attr(CKA_PRIVATE)
    }

    pub fn label(&self) -> &[u8] {
        self.attr(CKA_LABEL).unwrap_or(&[])
    }

    /// Whether secret attributes may be read out (not sensitive and extractable).
    pub fn secrets_readable(&self) -> bool {
        !self.bool_attr(CKA_SENSITIVE)
            && (self.class == CKO_DATA
                || self.bool_attr(CKA_EXTRACTABLE)
                || !self.attrs.contains_key(&CKA_EXTRACTABLE))
    }

    /// C_GetAttributeValue's view of one attribute (PKCS#11 v2.40 §5.7).
    pub fn reveal(&self, ty: CK_ATTRIBUTE_TYPE) -> Reveal<'_> {
        if let Some(v) = self.attr(ty) {
            return Reveal::Value(v);
        }
        if let Some(s) = self.secret(ty) {
            return if self.secrets_readable() {
                Reveal::Value(s.expose())
            } else {
                Reveal::Sensitive
            };
        }
        // A closed sealed part (no master key in this process yet) reveals nothing.
        if self.is_sealed_closed()
            && (ty == CKA_VALUE || schema::is_secret(ty, self.class, self.key_type))
        {
            return Reveal::Sensitive;
        }
        Reveal::Invalid
    }

    /// An approximate size in bytes (C_GetObjectSize).
    pub fn size(&self) -> usize {
        let a: usize = self.attrs.iter().map(|(_, v)| v.len() + 16).sum();
        let s: usize = self.all_secrets().map(|(_, v)| v.len() + 16).sum();
        let closed = match &self.sealed {
            Some(sealed) if sealed.opened.get().is_none() => sealed.blob.len(),
            _ => 0,
        };
        a + s + closed + self.uid.len()
    }

    /// A copy with a new identity, for C_CopyObject and for new versions. Opened values
    /// become plain ones; a closed sealed part is carried as it is.
    pub fn duplicate(&self, uid: String) -> Object {
        let mut attrs = self.attrs.clone();
        let mut secrets = self.secrets.duplicate();
        let mut sealed = None;
        if let Some(s) = &self.sealed {
            match s.opened.get() {
                Some(o) => {
                    for (ty, v) in o.attrs.iter() {
                        attrs.insert(ty, v);
                    }
                    for (ty, v) in o.secrets.iter() {
                        secrets.insert(ty, v.duplicate());
                    }
                }
                None => {
                    sealed = Some(Box::new(Sealed {
                        aad_uid: Some(
                            s.aad_uid
                                .clone()
                                .unwrap_or_else(|| self.uid.as_str().into()),
                        ),
                        blob: s.blob.clone(),
                        opened: OnceLock::new(),
                    }))
                }
            }
        }
        attrs.insert(CKA_UNIQUE_ID, uid.as_bytes());
        Object {
            uid,
            class: self.class,
            key_type: self.key_type,
            attrs,
            secrets,
            sealed,
            owner: self.owner.clone(),
            shared_with: self.shared_with.clone(),
        }
    }

    /// Whether this object matches every attribute in a search template.
    pub fn matches(&self, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
        template.iter().all(|(ty, want)| match self.attr(*ty) {
            Some(have) => have == want.as_slice(),
            None => match self.secret(*ty) {
                // Searching on a secret value would be an oracle; only readable values match.
                Some(s) => self.secrets_readable() && s.expose() == want.as_slice(),
                None => false,
            },
        })
    }
}

/// Validates a creation template and builds the object with defaults applied.
/// Key-type specific consistency (modulus vs exponent, curve points) is the mechanism
/// layer's job; this checks the attribute rules only.
pub fn build_object(
    template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    origin: Origin,
    actor: Actor,
    defaults: ProfileDefaults,
    uid: String,
) -> Result<Object> {
    let class = template_ulong(template, CKA_CLASS)?.ok_or(Error::TemplateIncomplete(CKA_CLASS))?;
    if schema::class_scope(class).is_none() {
        return Err(Error::AttributeValueInvalid(CKA_CLASS));
    }
    let key_type = if matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        let kt = template_ulong(template, CKA_KEY_TYPE)?
            .ok_or(Error::TemplateIncomplete(CKA_KEY_TYPE))?;
        if schema::key_type_bit(kt).is_none() {
            return Err(Error::AttributeValueInvalid(CKA_KEY_TYPE));
        }
        if !schema::key_type_fits_class(class, kt) {
            return Err(Error::TemplateInconsistent(format!(
                "key type 0x{kt:x} does not fit class 0x{class:x}"
            )));
        }
        Some(kt)
    } else {
        None
    };
    if class == CKO_CERTIFICATE {
        let ct = template_ulong(template, CKA_CERTIFICATE_TYPE)?
            .ok_or(Error::TemplateIncomplete(CKA_CERTIFICATE_TYPE))?;
        if ct != CKC_X_509 {
            return Err(Error::AttributeValueInvalid(CKA_CERTIFICATE_TYPE));
        }
    }

    // Room for the template plus the defaults, so building does not regrow.
    let mut attrs = AttrMap::with_capacity(
        template.len() + 16,
        template.iter().map(|(_, v)| v.len()).sum::<usize>() + 64,
    );
    let mut secrets = SecretMap::default();
    for (ty, value) in template {
        let spec =
            schema::spec_for(*ty, class, key_type).ok_or(Error::AttributeTypeInvalid(*ty))?;
        if !schema::value_shape_ok(spec.kind, value) {
            return Err(Error::AttributeValueInvalid(*ty));
        }
        let forbidden = match origin {
            Origin::Create => spec.rules & rule::FORBIDDEN_ON_CREATE != 0,
            Origin::Generate(_) => spec.rules & rule::FORBIDDEN_ON_GENERATE != 0,
            Origin::Unwrap | Origin::Derive => spec.rules & rule::FORBIDDEN_ON_UNWRAP != 0,
        };
        // CKA_VALUE_LEN is allowed on unwrap/derive of generic/AES keys (it sizes the result).
        let value_len_ok = *ty == CKA_VALUE_LEN
            && matches!(
                origin,
                Origin::Unwrap | Origin::Derive | Origin::Generate(_)
            );
        if forbidden && !value_len_ok {
            return Err(Error::TemplateInconsistent(format!(
                "attribute 0x{ty:x} may not be given here"
            )));
        }
        if spec.rules & rule::SO_ONLY != 0 && value == &[CK_TRUE] && actor != Actor::SecurityOfficer
        {
            return Err(Error::AttributeReadOnly(*ty));
        }
        if spec.rules & rule::SENSITIVE_VALUE != 0 {
            secrets.insert(*ty, SecretBytes::from_slice(value));
        } else {
            attrs.insert(*ty, value);
        }
    }
    // One pass over the attributes this kind of object carries: what the template left
    // out is either required (an error) or gets its default. Creation requires the key
    // material; generation its parameters; unwrapping and derivation supply both.
    for spec in schema::specs_for(class, key_type) {
        if attrs.contains_key(&spec.ty) || secrets.contains_key(&spec.ty) {
            continue;
        }
        let required = match origin {
            Origin::Create => rule::REQUIRED_ON_CREATE,
            Origin::Generate(_) => rule::REQUIRED_ON_GENERATE,
            Origin::Unwrap | Origin::Derive => 0,
        };
        if spec.rules & required != 0 {
            return Err(Error::TemplateIncomplete(spec.ty));
        }
        let ulong;
        let value: Option<&[u8]> = match (spec.ty, spec.default) {
            (CKA_PRIVATE, _) => Some(bool_ref(matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY))),
            (CKA_EXTRACTABLE, _) => Some(bool_ref(defaults.extractable)),
            (CKA_SENSITIVE, AttrDefault::None) => Some(bool_ref(defaults.secret_sensitive)),
            (_, AttrDefault::Bool(b)) => Some(bool_ref(b)),
            (_, AttrDefault::Ulong(u)) => {
                ulong = ulong_value(u);
                Some(&ulong)
            }
            (_, AttrDefault::Empty) => Some(&[]),
            (_, AttrDefault::None) => None,
        };
        if let Some(v) = value {
            if spec.kind == Kind::Bool
                || spec.kind == Kind::Ulong
                || spec.rules & rule::SENSITIVE_VALUE == 0
            {
                attrs.insert(spec.ty, v);
            }
        }
    }

    let local = matches!(origin, Origin::Generate(_));
    attrs.insert(CKA_UNIQUE_ID, uid.as_bytes());
    if key_type.is_some() {
        attrs.insert(CKA_LOCAL, bool_value(local));
        if let Origin::Generate(mech) = origin {
            attrs.insert(CKA_KEY_GEN_MECHANISM, ulong_value(mech));
        }
    }
    if matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        let sensitive = matches!(attrs.get(&CKA_SENSITIVE), Some([b]) if *b != 0);
        let extractable = matches!(attrs.get(&CKA_EXTRACTABLE), Some([b]) if *b != 0);
        // Keys that arrived from outside were known in the clear at some point.
        let born_here = local;
        attrs.insert(CKA_ALWAYS_SENSITIVE, bool_value(born_here && sensitive));
        attrs.insert(CKA_NEVER_EXTRACTABLE, bool_value(born_here && !extractable));
    }
    Ok(Object {
        uid,
        class,
        key_type,
        attrs,
        secrets,
        sealed: None,
        owner: None,
        shared_with: Vec::new(),
    })
}

/// Applies C_SetAttributeValue / C_CopyObject changes to a copy of `obj`, enforcing the
/// one-way and read-only rules. The caller has already checked CKA_MODIFIABLE (for set).
pub fn apply_changes(
    obj: &Object,
    changes: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    actor: Actor,
    copying: bool,
    new_uid: String,
) -> Result<Object> {
    let mut next = obj.duplicate(new_uid);
    for (ty, value) in changes {
        let spec = schema::spec_for(*ty, obj.class, obj.key_type)
            .ok_or(Error::AttributeTypeInvalid(*ty))?;
        if !schema::value_shape_ok(spec.kind, value) {
            return Err(Error::AttributeValueInvalid(*ty));
        }
        let current = obj.attr(*ty);
        let unchanged = current.is_some_and(|c| c == value.as_slice());
        // CKA_TOKEN, CKA_PRIVATE and CKA_MODIFIABLE may change only while copying.
        let copy_only = matches!(*ty, CKA_TOKEN | CKA_PRIVATE | CKA_MODIFIABLE);
        let modifiable = spec.rules & rule::MODIFIABLE != 0 || (copying && copy_only);
        if !modifiable && !unchanged {
            return Err(Error::AttributeReadOnly(*ty));
        }
        let to_true = value.as_slice() == [CK_TRUE];
        let was_true = matches!(current, Some([b]) if *b != 0);
        if spec.rules & rule::ONLY_TO_TRUE != 0 && was_true && !to_true {
            return Err(Error::AttributeReadOnly(*ty));
        }
        if spec.rules & rule::ONLY_TO_FALSE != 0 && !was_true && to_true {
            return Err(Error::AttributeReadOnly(*ty));
        }
        if spec.rules & rule::SO_ONLY != 0 && to_true && actor != Actor::SecurityOfficer {
            return Err(Error::AttributeReadOnly(*ty));
        }
        if spec.rules & rule::SENSITIVE_VALUE != 0 {
            next.secrets.insert(*ty, SecretBytes::from_slice(value));
        } else {
            next.attrs.insert(*ty, value);
        }
    }
    // Bookkeeping that follows from the new values (PKCS#11 v2.40 §4.9 / §4.10).
    if matches!(obj.class, CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        if !next.bool_attr(CKA_SENSITIVE) {
            next.attrs.insert(CKA_ALWAYS_SENSITIVE, bool_value(false));
        }
        if next.bool_attr(CKA_EXTRACTABLE) {
            next.attrs.insert(CKA_NEVER_EXTRACTABLE, bool_value(false));
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ProfileDefaults {
        ProfileDefaults {
            extractable: false,
            secret_sensitive: false,
        }
    }

    fn aes_template() -> Template {
        vec![
            (CKA_CLASS, ulong_bytes(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ulong_bytes(CKK_AES)),
            (CKA_VALUE, vec![7u8; 32]),
            (CKA_SENSITIVE, bool_bytes(true)),
        ]
    }

    #[test]
    fn create_applies_defaults_and_keeps_value_secret() {
        let o = build_object(
            &aes_template(),
            Origin::Create,
            Actor::User,
            defaults(),
            "u1".into(),
        )
        .unwrap();
        assert!(o.bool_attr(CKA_ENCRYPT));
        assert!(o.bool_attr(CKA_PRIVATE));
        assert!(!o.bool_attr(CKA_LOCAL));
        assert!(!o.bool_attr(CKA_ALWAYS_SENSITIVE));
        assert!(!o.attrs.contains_key(&CKA_VALUE));
        assert!(matches!(o.reveal(CKA_VALUE), Reveal::Sensitive));
        assert!(matches!(o.reveal(CKA_MODULUS), Reveal::Invalid));
    }

    #[test]
    fn missing_value_is_incomplete() {
        let mut t = aes_template();
        t.retain(|(k, _)| *k != CKA_VALUE);
        let e = build_object(&t, Origin::Create, Actor::User, defaults(), "u".into()).unwrap_err();
        assert_eq!(e, Error::TemplateIncomplete(CKA_VALUE));
    }

    #[test]
    fn wrong_attribute_for_class_is_type_invalid() {
        let mut t = aes_template();
        t.push((CKA_MODULUS, vec![1, 2, 3]));
        let e = build_object(&t, Origin::Create, Actor::User, defaults(), "u".into()).unwrap_err();
        assert_eq!(e, Error::AttributeTypeInvalid(CKA_MODULUS));
    }

    #[test]
    fn sensitive_cannot_go_back_and_extractable_cannot_come_back() {
        let mut t = aes_template();
        t.push((CKA_EXTRACTABLE, bool_bytes(false)));
        let o = build_object(&t, Origin::Create, Actor::User, defaults(), "u".into()).unwrap();
        let e = apply_changes(
            &o,
            &[(CKA_SENSITIVE, bool_bytes(false))],
            Actor::User,
            false,
            "v".into(),
        )
        .unwrap_err();
        assert_eq!(e, Error::AttributeReadOnly(CKA_SENSITIVE));
        let e = apply_changes(
            &o,
            &[(CKA_EXTRACTABLE, bool_bytes(true))],
            Actor::User,
            false,
            "v".into(),
        )
        .unwrap_err();
        assert_eq!(e, Error::AttributeReadOnly(CKA_EXTRACTABLE));
        let ok = apply_changes(
            &o,
            &[(CKA_LABEL, b"x".to_vec())],
            Actor::User,
            false,
            "v".into(),
        )
        .unwrap();
        assert_eq!(ok.label(), b"x");
    }

    #[test]
    fn trusted_needs_the_so() {
        let t = vec![
            (CKA_CLASS, ulong_bytes(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ulong_bytes(CKK_AES)),
            (CKA_VALUE, vec![1u8; 16]),
            (CKA_TRUSTED, bool_bytes(true)),
        ];
        assert_eq!(
            build_object(&t, Origin::Create, Actor::User, defaults(), "u".into()).unwrap_err(),
            Error::AttributeReadOnly(CKA_TRUSTED)
        );
        assert!(build_object(
            &t,
            Origin::Create,
            Actor::SecurityOfficer,
            defaults(),
            "u".into()
        )
        .is_ok());
    }

    #[test]
    fn generate_forbids_value() {
        let e = build_object(
            &aes_template(),
            Origin::Generate(CKM_AES_KEY_GEN),
            Actor::User,
            defaults(),
            "u".into(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::TemplateInconsistent(_)));
    }
}

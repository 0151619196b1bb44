//! ECDSA and ECDH over the NIST prime curves and secp256k1 (SEC 1, FIPS 186-4), on
//! AWS-LC. Signatures are raw r || s (PKCS#11 CKM_ECDSA format); the hash is supplied by
//! the caller (CKM_ECDSA) or computed by the mechanism layer (CKM_ECDSA_SHA*).

use std::fmt;
use std::sync::Arc;

use super::awslc::{Group, LcEcKey};
use super::der::{self, Reader};
use super::{CryptoError, CryptoResult};
use crate::secure_mem::SecretBytes;

/// The supported short-Weierstrass curves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
    Secp256k1,
}

impl Curve {
    /// Bytes of a field element (an affine coordinate).
    pub fn field_len(&self) -> usize {
        match self {
            Curve::P256 | Curve::Secp256k1 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// Bytes of the group order (of a scalar, and of r and s in a signature).
    pub fn order_len(&self) -> usize {
        match self {
            Curve::P256 | Curve::Secp256k1 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// Length of an uncompressed point 0x04 || X || Y.
    pub fn point_len(&self) -> usize {
        1 + 2 * self.field_len()
    }

    pub fn name(&self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Secp256k1 => "secp256k1",
        }
    }

    /// The namedCurve OBJECT IDENTIFIER, DER-encoded, as CKA_EC_PARAMS holds it.
    pub fn oid_der(&self) -> &'static [u8] {
        match self {
            // 1.2.840.10045.3.1.7
            Curve::P256 => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            // 1.3.132.0.34
            Curve::P384 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
            // 1.3.132.0.35
            Curve::P521 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
            // 1.3.132.0.10
            Curve::Secp256k1 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
        }
    }

    /// CKA_EC_PARAMS -> curve. Accepts the namedCurve OID and, as some clients send, a
    /// PrintableString (or UTF8String) curve name. Explicit parameters and anything else
    /// -> `Unsupported("curve")`.
    pub fn from_ec_params(params: &[u8]) -> CryptoResult<Curve> {
        let unsupported = CryptoError::Unsupported("curve");
        let mut r = Reader::new(params);
        let tlv = r.read().map_err(|_| unsupported.clone())?;
        r.finish().map_err(|_| unsupported.clone())?;
        match tlv.tag {
            der::TAG_OID => [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1]
                .into_iter()
                .find(|c| c.oid_der() == tlv.raw)
                .ok_or(unsupported),
            der::TAG_PRINTABLE_STRING | der::TAG_UTF8_STRING => {
                match tlv.content.to_ascii_lowercase().as_slice() {
                    b"prime256v1" | b"secp256r1" | b"p-256" | b"nistp256" => Ok(Curve::P256),
                    b"secp384r1" | b"p-384" | b"nistp384" => Ok(Curve::P384),
                    b"secp521r1" | b"p-521" | b"nistp521" => Ok(Curve::P521),
                    b"secp256k1" => Ok(Curve::Secp256k1),
                    _ => Err(unsupported),
                }
            }
            _ => Err(unsupported),
        }
    }

    fn group(&self) -> Group {
        match self {
            Curve::P256 => Group::P256,
            Curve::P384 => Group::P384,
            Curve::P521 => Group::P521,
            Curve::Secp256k1 => Group::Secp256k1,
        }
    }
}

/// Wraps a raw point in a DER OCTET STRING, as CKA_EC_POINT holds it.
pub fn ec_point_to_der(point: &[u8]) -> Vec<u8> {
    der::octet_string(point)
}

/// CKA_EC_POINT (or a derive mechanism's public data) -> the raw point. Clients send both
/// the DER OCTET STRING the spec asks for and the bare point; both are accepted.
///
/// `expected_len_hint` is the length of the raw point when known: the uncompressed
/// length `1 + 2 * field_len` for a Weierstrass curve (then the compressed length
/// `1 + field_len` with a 0x02/0x03 prefix is accepted too), or 32 for Ed25519/X25519.
/// With a hint the two forms cannot be confused for any real curve; without one, a value
/// that parses as exactly one OCTET STRING is taken as DER.
pub fn ec_point_from_attribute(
    value: &[u8],
    expected_len_hint: Option<usize>,
) -> CryptoResult<Vec<u8>> {
    let plausible = |p: &[u8]| match expected_len_hint {
        None => !p.is_empty(),
        Some(h) if h % 2 == 1 && h >= 3 => {
            (p.len() == h && p.first() == Some(&0x04))
                || (p.len() == h / 2 + 1 && matches!(p.first(), Some(0x02 | 0x03)))
        }
        Some(h) => p.len() == h,
    };
    if let Some(inner) = der::single(value, der::TAG_OCTET_STRING)
        .ok()
        .filter(|inner| plausible(inner))
    {
        return Ok(inner.to_vec());
    }
    if plausible(value) {
        return Ok(value.to_vec());
    }
    Err(CryptoError::InvalidParameter("public point"))
}

struct PublicInner {
    curve: Curve,
    key: LcEcKey,
    point: Vec<u8>,
}

/// An EC public key. Cloning is cheap (shared, immutable).
#[derive(Clone)]
pub struct EcPublicKey {
    inner: Arc<PublicInner>,
}

impl fmt::Debug for EcPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcPublicKey")
            .field("curve", &self.inner.curve)
            .field("point", &self.inner.point)
            .finish()
    }
}

impl EcPublicKey {
    /// From an SEC1 point, uncompressed or compressed; must lie on the curve.
    pub fn from_point(curve: Curve, point: &[u8]) -> CryptoResult<EcPublicKey> {
        let ok_len = point.len() == curve.point_len() || point.len() == 1 + curve.field_len();
        if !ok_len {
            return Err(CryptoError::InvalidKey("EC point length"));
        }
        let key = LcEcKey::from_public(curve.group(), point)
            .ok_or(CryptoError::InvalidKey("EC point not on the curve"))?;
        let point = key.public_point(curve.field_len())?;
        Ok(EcPublicKey {
            inner: Arc::new(PublicInner { curve, key, point }),
        })
    }

    pub fn curve(&self) -> Curve {
        self.inner.curve
    }

    /// The point, uncompressed (0x04 || X || Y).
    pub fn point(&self) -> &[u8] {
        &self.inner.point
    }

    /// Verifies raw r || s over `hash` (any length; truncated as in signing).
    pub fn verify_prehashed(&self, hash: &[u8], sig: &[u8]) -> CryptoResult<()> {
        let n = self.inner.curve.order_len();
        if sig.len() != 2 * n {
            return Err(CryptoError::SignatureLen);
        }
        let (r, s) = sig.split_at(n);
        if self.inner.key.ecdsa_verify(hash, r, s) {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }
}

/// An EC private key, parsed once into AWS-LC. `Send + Sync`; no `Clone`.
pub struct EcPrivateKey {
    key: LcEcKey,
    public: EcPublicKey,
}

impl fmt::Debug for EcPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcPrivateKey")
            .field("curve", &self.public.inner.curve)
            .finish_non_exhaustive()
    }
}

impl EcPrivateKey {
    pub fn generate(curve: Curve) -> CryptoResult<EcPrivateKey> {
        let key = LcEcKey::generate(curve.group())?;
        EcPrivateKey::from_lc(curve, key)
    }

    /// From the private scalar, big-endian; shorter than the order length is fine.
    /// Zero or >= the order -> `InvalidKey`.
    pub fn from_scalar(curve: Curve, d: &[u8]) -> CryptoResult<EcPrivateKey> {
        let start = d.iter().position(|&x| x != 0).unwrap_or(d.len());
        let d = &d[start..];
        if d.is_empty() {
            return Err(CryptoError::InvalidKey("EC private scalar is zero"));
        }
        if d.len() > curve.order_len() {
            return Err(CryptoError::InvalidKey("EC private scalar out of range"));
        }
        let key = LcEcKey::from_private(curve.group(), d)?;
        EcPrivateKey::from_lc(curve, key)
    }

    fn from_lc(curve: Curve, key: LcEcKey) -> CryptoResult<EcPrivateKey> {
        let point = key.public_point(curve.field_len())?;
        let public = EcPublicKey::from_point(curve, &point)?;
        Ok(EcPrivateKey { key, public })
    }

    pub fn curve(&self) -> Curve {
        self.public.inner.curve
    }

    /// The private scalar, left-padded to the order length.
    pub fn scalar(&self) -> SecretBytes {
        let len = self.curve().order_len();
        // Only fails on allocation failure for a key AWS-LC holds; an all-zero value is
        // never a valid scalar, so it cannot be mistaken for one.
        self.key
            .private_scalar(len)
            .unwrap_or_else(|_| SecretBytes::zeroed(len))
    }

    /// The public point, uncompressed (0x04 || X || Y).
    pub fn public_point(&self) -> Vec<u8> {
        self.public.point().to_vec()
    }

    pub fn public_key(&self) -> EcPublicKey {
        self.public.clone()
    }

    /// ECDSA over a caller-supplied hash of any length (truncated to the order's bit
    /// length as SEC 1 / FIPS 186-4 specify). Returns r || s, each `order_len` bytes.
    pub fn sign_prehashed(&self, hash: &[u8]) -> CryptoResult<Vec<u8>> {
        self.key.ecdsa_sign(hash, self.curve().order_len())
    }

    /// ECDH (SEC 1 §3.3.1, cofactor 1): the shared x-coordinate, `field_len` bytes. The
    /// peer point may be uncompressed or compressed, bare or in a DER OCTET STRING.
    pub fn ecdh(&self, peer_point: &[u8]) -> CryptoResult<SecretBytes> {
        let curve = self.curve();
        let bad = CryptoError::InvalidParameter("public point");
        let peer = ec_point_from_attribute(peer_point, Some(curve.point_len()))?;
        self.key.ecdh(&peer, curve.field_len()).ok_or(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::digest::{digest, HashAlg};
    use ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};

    const ALL: [Curve; 4] = [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1];

    #[test]
    fn keys_are_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<EcPrivateKey>();
        check::<EcPublicKey>();
    }

    #[test]
    fn round_trip_all_curves_all_hash_lengths() {
        for curve in ALL {
            let k = EcPrivateKey::generate(curve).expect("generate");
            assert_eq!(k.curve(), curve);
            assert_eq!(k.scalar().len(), curve.order_len());
            let point = k.public_point();
            assert_eq!(point.len(), curve.point_len());
            assert_eq!(point[0], 4);
            let pk = EcPublicKey::from_point(curve, &point).expect("public");
            for hash in [
                &[][..],
                &[0x80][..],
                &digest(HashAlg::Sha1, b"m"),
                &digest(HashAlg::Sha256, b"m"),
                &digest(HashAlg::Sha384, b"m"),
                &digest(HashAlg::Sha512, b"m"),
                &[0xab; 100][..],
            ] {
                let sig = k.sign_prehashed(hash).expect("sign");
                assert_eq!(sig.len(), 2 * curve.order_len());
                pk.verify_prehashed(hash, &sig).expect("verify");
                k.public_key().verify_prehashed(hash, &sig).expect("verify");
                let mut bad = sig.clone();
                bad[3] ^= 1;
                assert_eq!(
                    pk.verify_prehashed(hash, &bad).err(),
                    Some(CryptoError::BadSignature)
                );
            }
            // Same scalar -> same key.
            let k2 = EcPrivateKey::from_scalar(curve, k.scalar().expose()).expect("import");
            assert_eq!(k2.public_point(), point);
        }
    }

    #[test]
    fn p256_cross_verify() {
        use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
        let k = EcPrivateKey::generate(Curve::P256).expect("generate");
        let vk = VerifyingKey::from_sec1_bytes(&k.public_point()).expect("p256 parses our point");
        for hash in [
            digest(HashAlg::Sha256, b"abc"),
            digest(HashAlg::Sha512, b"abc"),
            digest(HashAlg::Sha1, b"abc"),
        ] {
            let sig = k.sign_prehashed(&hash).expect("sign");
            let sig = Signature::from_slice(&sig).expect("r||s");
            vk.verify_prehash(&hash, &sig).expect("p256 verifies ours");
        }
        // Theirs -> ours.
        let sk = SigningKey::from_slice(k.scalar().expose()).expect("p256 takes our scalar");
        let hash = digest(HashAlg::Sha256, b"theirs");
        let sig: Signature = sk.sign_prehash(&hash).expect("p256 signs");
        k.public_key()
            .verify_prehashed(&hash, &sig.to_bytes())
            .expect("we verify theirs");
        let their_point = sk.verifying_key().to_encoded_point(false);
        assert_eq!(their_point.as_bytes(), &k.public_point()[..]);
    }

    #[test]
    fn p384_cross_verify() {
        use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
        let k = EcPrivateKey::generate(Curve::P384).expect("generate");
        let vk = VerifyingKey::from_sec1_bytes(&k.public_point()).expect("parse");
        for hash in [
            digest(HashAlg::Sha384, b"abc"),
            digest(HashAlg::Sha256, b"abc"),
            digest(HashAlg::Sha512, b"abc"),
        ] {
            let sig = k.sign_prehashed(&hash).expect("sign");
            vk.verify_prehash(&hash, &Signature::from_slice(&sig).expect("sig"))
                .expect("p384 verifies ours");
        }
        let sk = SigningKey::from_slice(k.scalar().expose()).expect("scalar");
        let hash = digest(HashAlg::Sha384, b"theirs");
        let sig: Signature = sk.sign_prehash(&hash).expect("sign");
        k.public_key()
            .verify_prehashed(&hash, &sig.to_bytes())
            .expect("verify");
    }

    #[test]
    fn p521_cross_verify() {
        use p521::ecdsa::{Signature, SigningKey, VerifyingKey};
        let k = EcPrivateKey::generate(Curve::P521).expect("generate");
        let vk = VerifyingKey::from_sec1_bytes(&k.public_point()).expect("parse");
        let hash = digest(HashAlg::Sha512, b"abc");
        let sig = k.sign_prehashed(&hash).expect("sign");
        vk.verify_prehash(&hash, &Signature::from_slice(&sig).expect("sig"))
            .expect("p521 verifies ours");
        let sk = SigningKey::from_slice(k.scalar().expose()).expect("scalar");
        let sig: Signature = sk.sign_prehash(&hash).expect("sign");
        k.public_key()
            .verify_prehashed(&hash, &sig.to_bytes())
            .expect("verify");
    }

    #[test]
    fn secp256k1_cross_verify() {
        use k256::ecdsa::{Signature, VerifyingKey};
        let k = EcPrivateKey::generate(Curve::Secp256k1).expect("generate");
        let vk = VerifyingKey::from_sec1_bytes(&k.public_point()).expect("parse");
        let hash = digest(HashAlg::Sha256, b"abc");
        let sig = k.sign_prehashed(&hash).expect("sign");
        let sig = Signature::from_slice(&sig).expect("sig");
        // k256 accepts only low-S signatures; ECDSA itself accepts both.
        let sig = sig.normalize_s().unwrap_or(sig);
        vk.verify_prehash(&hash, &sig).expect("k256 verifies ours");
    }

    #[test]
    fn ecdh_agrees_both_sides() {
        // P-256 with the p256 crate as the peer.
        let ours = EcPrivateKey::generate(Curve::P256).expect("generate");
        let theirs = p256::SecretKey::random(&mut rand::thread_rng());
        let their_pub = theirs.public_key();
        let their_uncompressed = p256::EncodedPoint::from(their_pub);
        let compressed =
            p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&their_pub, true);
        let ours_shared = ours.ecdh(their_uncompressed.as_bytes()).expect("ecdh");
        let our_pub = p256::PublicKey::from_sec1_bytes(&ours.public_point()).expect("parse");
        let their_shared =
            p256::ecdh::diffie_hellman(theirs.to_nonzero_scalar(), our_pub.as_affine());
        assert_eq!(ours_shared.expose(), &their_shared.raw_secret_bytes()[..]);
        assert_eq!(ours_shared.len(), 32);
        // Compressed and DER-wrapped peer points give the same secret.
        assert_eq!(
            ours.ecdh(compressed.as_bytes()).expect("compressed"),
            ours_shared
        );
        let wrapped = ec_point_to_der(their_uncompressed.as_bytes());
        assert_eq!(ours.ecdh(&wrapped).expect("der"), ours_shared);

        // P-384 against p384, and ours against ours for P-521 / secp256k1.
        let a = EcPrivateKey::generate(Curve::P384).expect("generate");
        let b = p384::SecretKey::random(&mut rand::thread_rng());
        let b_pub = p384::EncodedPoint::from(b.public_key());
        let a_pub = p384::PublicKey::from_sec1_bytes(&a.public_point()).expect("parse");
        let s1 = a.ecdh(b_pub.as_bytes()).expect("ecdh");
        let s2 = p384::ecdh::diffie_hellman(b.to_nonzero_scalar(), a_pub.as_affine());
        assert_eq!(s1.expose(), &s2.raw_secret_bytes()[..]);
        for curve in [Curve::P521, Curve::Secp256k1] {
            let a = EcPrivateKey::generate(curve).expect("a");
            let b = EcPrivateKey::generate(curve).expect("b");
            let ab = a.ecdh(&b.public_point()).expect("ab");
            let ba = b.ecdh(&a.public_point()).expect("ba");
            assert_eq!(ab, ba);
            assert_eq!(ab.len(), curve.field_len());
        }
    }

    #[test]
    fn ecdh_rejects_invalid_points() {
        let k = EcPrivateKey::generate(Curve::P256).expect("generate");
        let mut p = k.public_point();
        p[40] ^= 1; // off the curve
        let bad = Err(CryptoError::InvalidParameter("public point"));
        assert_eq!(k.ecdh(&p).map(|_| ()), bad);
        assert_eq!(k.ecdh(&[]).map(|_| ()), bad);
        assert_eq!(k.ecdh(&[0]).map(|_| ()), bad);
        assert_eq!(k.ecdh(&[4; 65]).map(|_| ()), bad);
        let other = EcPrivateKey::generate(Curve::P384).expect("generate");
        assert_eq!(k.ecdh(&other.public_point()).map(|_| ()), bad);
    }

    #[test]
    fn scalar_import_rules() {
        // d = 1: the public key is the generator.
        let k = EcPrivateKey::from_scalar(Curve::P256, &[1]).expect("d=1");
        assert_eq!(
            hex::encode(&k.public_point()[1..33]),
            "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
        );
        assert_eq!(k.scalar().expose()[31], 1);
        assert!(k.scalar().expose()[..31].iter().all(|&b| b == 0));
        // Leading zeros beyond the order length are fine.
        let mut long = vec![0u8; 40];
        long[39] = 7;
        assert!(EcPrivateKey::from_scalar(Curve::P256, &long).is_ok());
        let order_p256 =
            hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
                .expect("hex");
        let invalid = |r: CryptoResult<EcPrivateKey>| matches!(r, Err(CryptoError::InvalidKey(_)));
        assert!(invalid(EcPrivateKey::from_scalar(Curve::P256, &order_p256)));
        assert!(invalid(EcPrivateKey::from_scalar(Curve::P256, &[0xff; 32])));
        assert!(invalid(EcPrivateKey::from_scalar(Curve::P256, &[0; 32])));
        assert!(invalid(EcPrivateKey::from_scalar(Curve::P256, &[])));
        assert!(invalid(EcPrivateKey::from_scalar(Curve::P256, &[1; 33])));
        let mut n_minus_1 = order_p256.clone();
        n_minus_1[31] -= 1;
        assert!(EcPrivateKey::from_scalar(Curve::P256, &n_minus_1).is_ok());
        // Debug never shows the scalar.
        let k = EcPrivateKey::from_scalar(Curve::P256, &[0x5a; 32]).expect("key");
        assert!(!format!("{k:?}").contains("90, 90, 90"));
        assert!(!format!("{k:?}").to_lowercase().contains("5a5a"));
    }

    #[test]
    fn public_point_rules() {
        let k = EcPrivateKey::generate(Curve::P384).expect("generate");
        let p = k.public_point();
        let mut compressed = vec![2 + (p[96] & 1)];
        compressed.extend_from_slice(&p[1..49]);
        let pk = EcPublicKey::from_point(Curve::P384, &compressed).expect("compressed");
        assert_eq!(pk.point(), &p[..]);
        let mut off = p.clone();
        off[10] ^= 1;
        assert!(matches!(
            EcPublicKey::from_point(Curve::P384, &off),
            Err(CryptoError::InvalidKey(_))
        ));
        assert!(matches!(
            EcPublicKey::from_point(Curve::P256, &p),
            Err(CryptoError::InvalidKey(_))
        ));
        assert!(matches!(
            EcPublicKey::from_point(Curve::P384, &[0]),
            Err(CryptoError::InvalidKey(_))
        ));
        let sig = k.sign_prehashed(b"h").expect("sign");
        assert_eq!(
            pk.verify_prehashed(b"h", &sig[1..]).err(),
            Some(CryptoError::SignatureLen)
        );
        assert_eq!(
            pk.verify_prehashed(b"h", &[0; 96]).err(),
            Some(CryptoError::BadSignature)
        );
        assert_eq!(
            pk.verify_prehashed(b"h", &[0xff; 96]).err(),
            Some(CryptoError::BadSignature)
        );
    }

    #[test]
    fn ec_params_forms() {
        for c in ALL {
            assert_eq!(Curve::from_ec_params(c.oid_der()), Ok(c));
        }
        let ps = |s: &str| {
            let mut v = vec![0x13, s.len() as u8];
            v.extend_from_slice(s.as_bytes());
            v
        };
        assert_eq!(Curve::from_ec_params(&ps("prime256v1")), Ok(Curve::P256));
        assert_eq!(Curve::from_ec_params(&ps("secp256r1")), Ok(Curve::P256));
        assert_eq!(Curve::from_ec_params(&ps("P-256")), Ok(Curve::P256));
        assert_eq!(Curve::from_ec_params(&ps("secp384r1")), Ok(Curve::P384));
        assert_eq!(Curve::from_ec_params(&ps("secp521r1")), Ok(Curve::P521));
        assert_eq!(
            Curve::from_ec_params(&ps("secp256k1")),
            Ok(Curve::Secp256k1)
        );
        let unsupported = Err(CryptoError::Unsupported("curve"));
        assert_eq!(Curve::from_ec_params(&ps("brainpoolP256r1")), unsupported);
        assert_eq!(Curve::from_ec_params(&ps("edwards25519")), unsupported);
        assert_eq!(Curve::from_ec_params(&[]), unsupported);
        assert_eq!(Curve::from_ec_params(&[0x06]), unsupported);
        let mut trailing = Curve::P256.oid_der().to_vec();
        trailing.push(0);
        assert_eq!(Curve::from_ec_params(&trailing), unsupported);
        // brainpoolP256r1 OID, ed25519 OID, explicit parameters (a SEQUENCE), NULL.
        assert_eq!(
            Curve::from_ec_params(&[
                0x06, 0x09, 0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07
            ]),
            unsupported
        );
        assert_eq!(
            Curve::from_ec_params(&[0x06, 0x03, 0x2b, 0x65, 0x70]),
            unsupported
        );
        assert_eq!(
            Curve::from_ec_params(&[0x30, 0x03, 0x02, 0x01, 0x01]),
            unsupported
        );
        assert_eq!(Curve::from_ec_params(&[0x05, 0x00]), unsupported);
        assert_eq!(Curve::P521.name(), "P-521");
        assert_eq!(Curve::P521.field_len(), 66);
    }

    #[test]
    fn ec_point_attribute_forms() {
        let k = EcPrivateKey::generate(Curve::P521).expect("generate");
        let p = k.public_point();
        let der = ec_point_to_der(&p);
        assert_eq!(&der[..3], &[0x04, 0x81, 133]);
        assert_eq!(ec_point_from_attribute(&der, Some(133)).expect("der"), p);
        assert_eq!(ec_point_from_attribute(&der, None).expect("der"), p);
        assert_eq!(ec_point_from_attribute(&p, Some(133)).expect("raw"), p);
        assert_eq!(ec_point_from_attribute(&p, None).expect("raw"), p);
        // A raw P-256 point whose X starts with 0x3f is also a valid 65-byte DER OCTET
        // STRING of 63 bytes: the hint resolves it.
        let mut tricky = vec![0x04, 0x3f];
        tricky.extend_from_slice(&[0x11; 63]);
        assert_eq!(
            ec_point_from_attribute(&tricky, Some(65)).expect("raw"),
            tricky
        );
        // Compressed, raw and wrapped.
        let mut c = vec![0x03];
        c.extend_from_slice(&[0x22; 32]);
        assert_eq!(ec_point_from_attribute(&c, Some(65)).expect("c"), c);
        assert_eq!(
            ec_point_from_attribute(&ec_point_to_der(&c), Some(65)).expect("c"),
            c
        );
        // Ed25519 keys: 32 bytes.
        let ed = [0x04u8; 32];
        assert_eq!(ec_point_from_attribute(&ed, Some(32)).expect("ed"), ed);
        assert_eq!(
            ec_point_from_attribute(&ec_point_to_der(&ed), Some(32)).expect("ed"),
            ed
        );
        let bad = Err(CryptoError::InvalidParameter("public point"));
        assert_eq!(ec_point_from_attribute(&[], None), bad);
        assert_eq!(ec_point_from_attribute(&[0x04, 0x00], Some(65)), bad);
        assert_eq!(ec_point_from_attribute(&p[..100], Some(133)), bad);
        assert_eq!(ec_point_from_attribute(&[0x04; 33], Some(65)), bad);
    }

    #[test]
    fn concurrent_signing() {
        let k = EcPrivateKey::generate(Curve::P256).expect("generate");
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let k = &k;
                s.spawn(move || {
                    for i in 0..20u8 {
                        let h = [t, i, 1, 2];
                        let sig = k.sign_prehashed(&h).expect("sign");
                        k.public_key().verify_prehashed(&h, &sig).expect("verify");
                    }
                });
            }
        });
    }
}

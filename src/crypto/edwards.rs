//! Ed25519 (RFC 8032, pure EdDSA) and X25519 (RFC 7748) through aws-lc-rs's safe API,
//! plus recognition of the CKA_EC_PARAMS values PKCS#11 uses for these curves.

use std::fmt;

use aws_lc_rs::agreement;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair};

use super::der::{self, Reader};
use super::{CryptoError, CryptoResult};
use crate::secure_mem::SecretBytes;

const KEY_LEN: usize = 32;
const SIG_LEN: usize = 64;

/// The Edwards / Montgomery curves a PKCS#11 CKK_EC_EDWARDS / CKK_EC_MONTGOMERY key uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdwardsCurve {
    Ed25519,
    X25519,
}

impl EdwardsCurve {
    /// CKA_EC_PARAMS -> curve: the RFC 8410 OIDs 1.3.101.112 / 1.3.101.110 and the
    /// PKCS#11 3.0 §2.3.5 curve names "edwards25519" / "curve25519" as a PrintableString
    /// (UTF8String tolerated). Ed448/X448 and anything else -> `Unsupported("curve")`.
    pub fn from_ec_params(params: &[u8]) -> CryptoResult<EdwardsCurve> {
        let unsupported = CryptoError::Unsupported("curve");
        let mut r = Reader::new(params);
        let tlv = r.read().map_err(|_| unsupported.clone())?;
        r.finish().map_err(|_| unsupported.clone())?;
        match (tlv.tag, tlv.content) {
            (der::TAG_OID, der::OID_ED25519) => Ok(EdwardsCurve::Ed25519),
            (der::TAG_OID, der::OID_X25519) => Ok(EdwardsCurve::X25519),
            (der::TAG_PRINTABLE_STRING | der::TAG_UTF8_STRING, name) => {
                match name.to_ascii_lowercase().as_slice() {
                    b"edwards25519" | b"ed25519" => Ok(EdwardsCurve::Ed25519),
                    b"curve25519" | b"x25519" => Ok(EdwardsCurve::X25519),
                    _ => Err(unsupported),
                }
            }
            _ => Err(unsupported),
        }
    }

    /// The CKA_EC_PARAMS value this token writes when it has to choose one: the RFC 8410
    /// OBJECT IDENTIFIER (06 03 2B 65 70 / 06 03 2B 65 6E).
    ///
    /// Why the OID and not the PrintableString: PKCS#11 3.1 names the OIDs as the
    /// preferred form (3.0 had only the curve names), they are what SPKI and PKCS#8 carry,
    /// and current consumers (OpenSSL's pkcs11-provider, OpenSC >= 0.24, p11-kit, Kryoptic)
    /// accept them; older OpenSC and SoftHSMv2 read both. A value the client supplied in a
    /// template is stored as given, so a client that sends "edwards25519" gets it back.
    /// [`EdwardsCurve::ec_params_name_der`] gives the PrintableString form when needed.
    pub fn ec_params_der(&self) -> Vec<u8> {
        match self {
            EdwardsCurve::Ed25519 => der::oid_tlv(der::OID_ED25519),
            EdwardsCurve::X25519 => der::oid_tlv(der::OID_X25519),
        }
    }

    /// The PKCS#11 3.0 curve-name form: PrintableString "edwards25519" / "curve25519".
    pub fn ec_params_name_der(&self) -> Vec<u8> {
        match self {
            EdwardsCurve::Ed25519 => der::printable_string("edwards25519"),
            EdwardsCurve::X25519 => der::printable_string("curve25519"),
        }
    }
}

fn random_32() -> CryptoResult<SecretBytes> {
    let mut s = SecretBytes::zeroed(KEY_LEN);
    aws_lc_rs::rand::fill(s.expose_mut()).map_err(|_| CryptoError::Internal("RNG"))?;
    Ok(s)
}

/// An Ed25519 private key (the 32-byte RFC 8032 seed), parsed once.
pub struct Ed25519PrivateKey {
    pair: Ed25519KeyPair,
    seed: SecretBytes,
    public: [u8; KEY_LEN],
}

impl fmt::Debug for Ed25519PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519PrivateKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Ed25519PrivateKey {
    pub fn generate() -> CryptoResult<Ed25519PrivateKey> {
        let seed = random_32()?;
        Ed25519PrivateKey::from_seed(seed.expose())
    }

    /// From the 32-byte seed (what PKCS#11 CKA_VALUE and RFC 8410 PKCS#8 hold).
    pub fn from_seed(seed: &[u8]) -> CryptoResult<Ed25519PrivateKey> {
        if seed.len() != KEY_LEN {
            return Err(CryptoError::InvalidKey("Ed25519 seed must be 32 bytes"));
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| CryptoError::InvalidKey("Ed25519 seed"))?;
        let mut public = [0u8; KEY_LEN];
        let pk = pair.public_key().as_ref();
        if pk.len() != KEY_LEN {
            return Err(CryptoError::Internal("Ed25519 public key length"));
        }
        public.copy_from_slice(pk);
        Ok(Ed25519PrivateKey {
            pair,
            seed: SecretBytes::from_slice(seed),
            public,
        })
    }

    pub fn seed(&self) -> SecretBytes {
        self.seed.duplicate()
    }

    pub fn public_key_bytes(&self) -> [u8; KEY_LEN] {
        self.public
    }

    /// Pure Ed25519 over the whole message.
    pub fn sign(&self, msg: &[u8]) -> CryptoResult<Vec<u8>> {
        self.pair
            .try_sign(msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CryptoError::Internal("Ed25519 sign"))
    }
}

/// Pure Ed25519 verification. Public key not 32 bytes -> `InvalidKey`; signature not 64
/// bytes -> `SignatureLen`; mismatch (or an invalid point) -> `BadSignature`.
pub fn ed25519_verify(public: &[u8], msg: &[u8], sig: &[u8]) -> CryptoResult<()> {
    if public.len() != KEY_LEN {
        return Err(CryptoError::InvalidKey(
            "Ed25519 public key must be 32 bytes",
        ));
    }
    if sig.len() != SIG_LEN {
        return Err(CryptoError::SignatureLen);
    }
    signature::UnparsedPublicKey::new(&signature::ED25519, public)
        .verify(msg, sig)
        .map_err(|_| CryptoError::BadSignature)
}

/// An X25519 private key (the 32-byte RFC 7748 scalar, as given: clamping happens inside
/// the function), parsed once.
pub struct X25519PrivateKey {
    key: agreement::PrivateKey,
    scalar: SecretBytes,
    public: [u8; KEY_LEN],
}

impl fmt::Debug for X25519PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X25519PrivateKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl X25519PrivateKey {
    pub fn generate() -> CryptoResult<X25519PrivateKey> {
        let s = random_32()?;
        X25519PrivateKey::from_scalar(s.expose())
    }

    pub fn from_scalar(scalar: &[u8]) -> CryptoResult<X25519PrivateKey> {
        if scalar.len() != KEY_LEN {
            return Err(CryptoError::InvalidKey(
                "X25519 private key must be 32 bytes",
            ));
        }
        let key = agreement::PrivateKey::from_private_key(&agreement::X25519, scalar)
            .map_err(|_| CryptoError::InvalidKey("X25519 private key"))?;
        let pk = key
            .compute_public_key()
            .map_err(|_| CryptoError::Internal("X25519 public key"))?;
        let pk = pk.as_ref();
        if pk.len() != KEY_LEN {
            return Err(CryptoError::Internal("X25519 public key length"));
        }
        let mut public = [0u8; KEY_LEN];
        public.copy_from_slice(pk);
        Ok(X25519PrivateKey {
            key,
            scalar: SecretBytes::from_slice(scalar),
            public,
        })
    }

    pub fn scalar(&self) -> SecretBytes {
        self.scalar.duplicate()
    }

    pub fn public_key_bytes(&self) -> [u8; KEY_LEN] {
        self.public
    }

    /// X25519(k, peer). A peer key that is not 32 bytes, or of small order (all-zero
    /// shared secret, RFC 7748 §6.1), -> `InvalidParameter("public point")`.
    pub fn diffie_hellman(&self, peer_public: &[u8]) -> CryptoResult<SecretBytes> {
        let bad = CryptoError::InvalidParameter("public point");
        if peer_public.len() != KEY_LEN {
            return Err(bad);
        }
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_public);
        agreement::agree(&self.key, peer, bad, |shared| {
            Ok(SecretBytes::from_slice(shared))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).expect("hex")
    }

    #[test]
    fn keys_are_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Ed25519PrivateKey>();
        check::<X25519PrivateKey>();
    }

    /// RFC 8032 §7.1, TEST 1 (empty message) and TEST 2 (one byte).
    #[test]
    fn ed25519_rfc8032_vectors() {
        let vectors = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (seed, public, msg, sig) in vectors {
            let k = Ed25519PrivateKey::from_seed(&h(seed)).expect("seed");
            assert_eq!(k.public_key_bytes().to_vec(), h(public));
            assert_eq!(k.seed().expose(), &h(seed)[..]);
            let s = k.sign(&h(msg)).expect("sign");
            assert_eq!(s, h(sig));
            ed25519_verify(&h(public), &h(msg), &s).expect("verify");
        }
    }

    #[test]
    fn ed25519_cross_verify_and_errors() {
        use ed25519_dalek::{Signer, Verifier};
        let k = Ed25519PrivateKey::generate().expect("generate");
        let msg = b"cross check";
        let sig = k.sign(msg).expect("sign");
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&k.public_key_bytes()).expect("vk");
        let dsig = ed25519_dalek::Signature::from_slice(&sig).expect("sig");
        vk.verify(msg, &dsig).expect("dalek verifies ours");
        let mut seed = [0u8; 32];
        seed.copy_from_slice(k.seed().expose());
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let theirs = sk.sign(b"theirs");
        ed25519_verify(&k.public_key_bytes(), b"theirs", &theirs.to_bytes()).expect("we verify");

        assert_eq!(
            ed25519_verify(&k.public_key_bytes(), b"other", &sig),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            ed25519_verify(&k.public_key_bytes(), msg, &sig[1..]),
            Err(CryptoError::SignatureLen)
        );
        assert!(matches!(
            ed25519_verify(&[1; 31], msg, &sig),
            Err(CryptoError::InvalidKey(_))
        ));
        assert_eq!(
            ed25519_verify(&[0xff; 32], msg, &sig),
            Err(CryptoError::BadSignature)
        );
        assert!(matches!(
            Ed25519PrivateKey::from_seed(&[1; 31]),
            Err(CryptoError::InvalidKey(_))
        ));
        assert!(matches!(
            Ed25519PrivateKey::from_seed(&[1; 64]),
            Err(CryptoError::InvalidKey(_))
        ));
        assert!(!format!("{k:?}").contains(&format!("{:?}", k.seed().expose())));
    }

    /// RFC 7748 §5.2 (single X25519 calls) and §6.1 (the Diffie-Hellman example).
    #[test]
    fn x25519_rfc7748_vectors() {
        let single = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
            ),
        ];
        for (k, u, out) in single {
            let key = X25519PrivateKey::from_scalar(&h(k)).expect("scalar");
            assert_eq!(key.diffie_hellman(&h(u)).expect("dh").expose(), &h(out)[..]);
            let arr = |v: Vec<u8>| <[u8; 32]>::try_from(v).expect("32");
            assert_eq!(x25519_dalek::x25519(arr(h(k)), arr(h(u))).to_vec(), h(out));
            assert_eq!(key.scalar().expose(), &h(k)[..]);
        }
        let alice = X25519PrivateKey::from_scalar(&h(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ))
        .expect("alice");
        let bob = X25519PrivateKey::from_scalar(&h(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ))
        .expect("bob");
        assert_eq!(
            alice.public_key_bytes().to_vec(),
            h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            bob.public_key_bytes().to_vec(),
            h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let k = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(
            alice
                .diffie_hellman(&bob.public_key_bytes())
                .expect("a")
                .expose(),
            &k[..]
        );
        assert_eq!(
            bob.diffie_hellman(&alice.public_key_bytes())
                .expect("b")
                .expose(),
            &k[..]
        );
    }

    #[test]
    fn x25519_cross_and_errors() {
        let ours = X25519PrivateKey::generate().expect("generate");
        let theirs = x25519_dalek::StaticSecret::random_from_rng(rand::thread_rng());
        let their_pub = x25519_dalek::PublicKey::from(&theirs);
        let a = ours.diffie_hellman(their_pub.as_bytes()).expect("dh");
        let b = theirs.diffie_hellman(&x25519_dalek::PublicKey::from(ours.public_key_bytes()));
        assert_eq!(a.expose(), b.as_bytes());
        let bad = Err(CryptoError::InvalidParameter("public point"));
        // Small-order points give an all-zero secret, which is refused.
        assert_eq!(ours.diffie_hellman(&[0; 32]).map(|_| ()), bad);
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(ours.diffie_hellman(&one).map(|_| ()), bad);
        assert_eq!(ours.diffie_hellman(&[9; 31]).map(|_| ()), bad);
        assert!(matches!(
            X25519PrivateKey::from_scalar(&[1; 33]),
            Err(CryptoError::InvalidKey(_))
        ));
    }

    #[test]
    fn ec_params_forms() {
        let ed_oid = [0x06, 0x03, 0x2b, 0x65, 0x70];
        let x_oid = [0x06, 0x03, 0x2b, 0x65, 0x6e];
        assert_eq!(
            EdwardsCurve::from_ec_params(&ed_oid),
            Ok(EdwardsCurve::Ed25519)
        );
        assert_eq!(
            EdwardsCurve::from_ec_params(&x_oid),
            Ok(EdwardsCurve::X25519)
        );
        assert_eq!(EdwardsCurve::Ed25519.ec_params_der(), ed_oid);
        assert_eq!(EdwardsCurve::X25519.ec_params_der(), x_oid);
        let name = EdwardsCurve::Ed25519.ec_params_name_der();
        assert_eq!(name[0], 0x13);
        assert_eq!(&name[2..], b"edwards25519");
        assert_eq!(
            EdwardsCurve::from_ec_params(&name),
            Ok(EdwardsCurve::Ed25519)
        );
        assert_eq!(
            EdwardsCurve::from_ec_params(&EdwardsCurve::X25519.ec_params_name_der()),
            Ok(EdwardsCurve::X25519)
        );
        let unsupported = Err(CryptoError::Unsupported("curve"));
        // Ed448, X448, P-256, garbage, trailing data.
        assert_eq!(
            EdwardsCurve::from_ec_params(&[0x06, 0x03, 0x2b, 0x65, 0x71]),
            unsupported
        );
        assert_eq!(
            EdwardsCurve::from_ec_params(&[0x06, 0x03, 0x2b, 0x65, 0x6f]),
            unsupported
        );
        assert_eq!(
            EdwardsCurve::from_ec_params(&[
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07
            ]),
            unsupported
        );
        assert_eq!(
            EdwardsCurve::from_ec_params(b"\x13\x0aedwards448"),
            unsupported
        );
        assert_eq!(EdwardsCurve::from_ec_params(&[0x13]), unsupported);
        assert_eq!(
            EdwardsCurve::from_ec_params(&[0x06, 0x03, 0x2b, 0x65, 0x70, 0x00]),
            unsupported
        );
    }
}

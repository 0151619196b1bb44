//! Minimal DER reading and writing for key containers and certificates:
//! PKCS#8 (RFC 5208 / RFC 5958), SubjectPublicKeyInfo (RFC 5280), RSAPrivateKey
//! (RFC 8017 A.1.2), ECPrivateKey (RFC 5915), RFC 8410 curve keys, and the few X.509
//! fields a token fills from CKA_VALUE.
//!
//! The reader works on borrowed slices with checked arithmetic only: it never panics and
//! never reads past its input, whatever the bytes (fuzzed; see the tests). It accepts
//! definite lengths only, minimal length encodings only, and low tag numbers only —
//! everything DER itself allows for these structures.
//!
//! Encoding of private material: the full output size is computed before a single
//! pre-sized buffer is written, so no reallocation leaves copies of key bytes behind;
//! the result is a `SecretBytes`.

use super::ec::Curve;
use super::rsa::RsaComponents;
use super::{CryptoError, CryptoResult};
use crate::secure_mem::SecretBytes;

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_UTF8_STRING: u8 = 0x0c;
pub(crate) const TAG_PRINTABLE_STRING: u8 = 0x13;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
const TAG_CTX0_CONS: u8 = 0xa0;
const TAG_CTX1_CONS: u8 = 0xa1;
const TAG_CTX1_PRIM: u8 = 0x81;

/// rsaEncryption 1.2.840.113549.1.1.1 (content octets).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey 1.2.840.10045.2.1.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// id-X25519 1.3.101.110.
pub(crate) const OID_X25519: &[u8] = &[0x2b, 0x65, 0x6e];
/// id-Ed25519 1.3.101.112.
pub(crate) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

fn malformed() -> CryptoError {
    CryptoError::InvalidKey("malformed DER")
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// One TLV: its tag, its content octets and the whole encoding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// A cursor over a sequence of DER TLVs.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { rest: data }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next TLV.
    pub fn read(&mut self) -> CryptoResult<Tlv<'a>> {
        let data = self.rest;
        let (&tag, after_tag) = data.split_first().ok_or_else(malformed)?;
        if tag & 0x1f == 0x1f {
            // High tag numbers: not used by anything we parse.
            return Err(malformed());
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or_else(malformed)?;
        let len: usize = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            // 0x80 (indefinite) is BER only; more than 4 length octets is absurd here.
            if n == 0 || n > 4 {
                return Err(malformed());
            }
            let (len_bytes, rest) = after_len.split_at_checked(n).ok_or_else(malformed)?;
            after_len = rest;
            if len_bytes.first() == Some(&0) {
                return Err(malformed()); // not minimal
            }
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return Err(malformed()); // should have used the short form
            }
            len
        };
        let (content, rest) = after_len.split_at_checked(len).ok_or_else(malformed)?;
        let header_len = data.len() - after_len.len();
        let raw = data.get(..header_len + len).ok_or_else(malformed)?;
        self.rest = rest;
        Ok(Tlv { tag, content, raw })
    }

    /// Reads a TLV that must have `tag`; returns its content.
    pub fn take(&mut self, tag: u8) -> CryptoResult<&'a [u8]> {
        let t = self.read()?;
        if t.tag == tag {
            Ok(t.content)
        } else {
            Err(malformed())
        }
    }

    /// Reads the next TLV only when its tag is `tag`.
    pub fn optional(&mut self, tag: u8) -> CryptoResult<Option<&'a [u8]>> {
        if self.peek_tag() == Some(tag) {
            self.take(tag).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads a non-negative INTEGER; returns its magnitude without leading zeros
    /// (borrowed: callers copy secrets straight into `SecretBytes`).
    pub fn unsigned(&mut self) -> CryptoResult<&'a [u8]> {
        let c = self.take(TAG_INTEGER)?;
        unsigned_content(c)
    }

    /// Reads a small non-negative INTEGER (a version number).
    pub fn small_uint(&mut self) -> CryptoResult<u32> {
        let v = self.unsigned()?;
        if v.len() > 4 {
            return Err(malformed());
        }
        Ok(v.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    }

    /// Fails unless the input is fully consumed.
    pub fn finish(&self) -> CryptoResult<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed())
        }
    }
}

/// INTEGER content -> magnitude without leading zeros; negative numbers are rejected.
fn unsigned_content(c: &[u8]) -> CryptoResult<&[u8]> {
    match c.first() {
        None => Err(malformed()),
        Some(&b) if b & 0x80 != 0 => Err(malformed()),
        Some(_) => {
            let start = c.iter().position(|&x| x != 0).unwrap_or(c.len());
            Ok(&c[start..])
        }
    }
}

/// Parses `data` as exactly one TLV with `tag`; returns its content.
pub(crate) fn single(data: &[u8], tag: u8) -> CryptoResult<&[u8]> {
    let mut r = Reader::new(data);
    let c = r.take(tag)?;
    r.finish()?;
    Ok(c)
}

/// BIT STRING content with no unused bits -> the bytes.
fn bit_string_bytes(c: &[u8]) -> CryptoResult<&[u8]> {
    match c.split_first() {
        Some((0, bytes)) => Ok(bytes),
        _ => Err(malformed()),
    }
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// A DER value to be written: built as a small tree so the exact size is known first.
enum Node<'a> {
    /// A primitive TLV with these content octets.
    Prim(u8, &'a [u8]),
    /// An INTEGER from an unsigned big-endian magnitude (leading zeros dropped, a 0x00
    /// added when the top bit is set; zero encodes as 02 01 00).
    UInt(&'a [u8]),
    /// A BIT STRING with no unused bits.
    Bits(&'a [u8]),
    /// A constructed TLV (or an OCTET STRING wrapping DER) with these children.
    Cons(u8, Vec<Node<'a>>),
}

/// Tag + length octets for `content_len` (matches `write_header`).
fn header_len(content_len: usize) -> usize {
    if content_len < 0x80 {
        2
    } else {
        let significant = (usize::BITS - content_len.leading_zeros()).div_ceil(8);
        2 + significant as usize
    }
}

fn write_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().position(|&b| b != 0).unwrap_or(7);
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn uint_parts(mag: &[u8]) -> (bool, &[u8]) {
    let start = mag.iter().position(|&x| x != 0).unwrap_or(mag.len());
    let m = &mag[start..];
    match m.first() {
        None => (true, m), // zero: a single 0x00 octet
        Some(&b) => (b & 0x80 != 0, m),
    }
}

impl Node<'_> {
    fn content_len(&self) -> usize {
        match self {
            Node::Prim(_, c) => c.len(),
            Node::UInt(m) => {
                let (pad, m) = uint_parts(m);
                m.len() + usize::from(pad)
            }
            Node::Bits(b) => b.len() + 1,
            Node::Cons(_, children) => children.iter().map(Node::encoded_len).sum(),
        }
    }

    fn encoded_len(&self) -> usize {
        let c = self.content_len();
        header_len(c) + c
    }

    fn write(&self, out: &mut Vec<u8>) {
        let len = self.content_len();
        match self {
            Node::Prim(tag, c) => {
                write_header(out, *tag, len);
                out.extend_from_slice(c);
            }
            Node::UInt(m) => {
                write_header(out, TAG_INTEGER, len);
                let (pad, m) = uint_parts(m);
                if pad {
                    out.push(0);
                }
                out.extend_from_slice(m);
            }
            Node::Bits(b) => {
                write_header(out, TAG_BIT_STRING, len);
                out.push(0);
                out.extend_from_slice(b);
            }
            Node::Cons(tag, children) => {
                write_header(out, *tag, len);
                for c in children {
                    c.write(out);
                }
            }
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    /// Encodes into exactly-sized storage, so private bytes are never reallocated.
    fn to_secret(&self) -> SecretBytes {
        SecretBytes::new(self.to_vec())
    }
}

/// DER OCTET STRING around `content`.
pub(crate) fn octet_string(content: &[u8]) -> Vec<u8> {
    Node::Prim(TAG_OCTET_STRING, content).to_vec()
}

/// DER OBJECT IDENTIFIER TLV from its content octets.
pub(crate) fn oid_tlv(content: &[u8]) -> Vec<u8> {
    Node::Prim(TAG_OID, content).to_vec()
}

/// DER PrintableString TLV.
pub(crate) fn printable_string(s: &str) -> Vec<u8> {
    Node::Prim(TAG_PRINTABLE_STRING, s.as_bytes()).to_vec()
}

/// The content octets of a curve's OID (without tag and length).
fn curve_oid_content(curve: Curve) -> &'static [u8] {
    curve.oid_der().get(2..).unwrap_or_default()
}

fn curve_from_oid_content(c: &[u8]) -> CryptoResult<Curve> {
    Curve::from_ec_params(&oid_tlv(c))
}

// ---------------------------------------------------------------------------------------
// PKCS#8
// ---------------------------------------------------------------------------------------

/// A private key as PKCS#8 carries it.
#[derive(Debug)]
pub enum PrivateKeyMaterial {
    Rsa(RsaComponents),
    Ec {
        curve: Curve,
        scalar: SecretBytes,
        public_point: Option<Vec<u8>>,
    },
    Ed25519 {
        seed: SecretBytes,
    },
    X25519 {
        scalar: SecretBytes,
    },
}

/// RSAPrivateKey (RFC 8017 A.1.2) as SecretBytes; requires every CRT component.
fn encode_rsa_private(c: &RsaComponents) -> CryptoResult<SecretBytes> {
    let missing = CryptoError::InvalidKey("RSA key without CRT components cannot be encoded");
    let (Some(d), Some(p), Some(q), Some(dp), Some(dq), Some(qinv)) =
        (&c.d, &c.p, &c.q, &c.dp, &c.dq, &c.qinv)
    else {
        return Err(missing);
    };
    let node = Node::Cons(
        TAG_SEQUENCE,
        vec![
            Node::UInt(&[0]),
            Node::UInt(&c.n),
            Node::UInt(&c.e),
            Node::UInt(d.expose()),
            Node::UInt(p.expose()),
            Node::UInt(q.expose()),
            Node::UInt(dp.expose()),
            Node::UInt(dq.expose()),
            Node::UInt(qinv.expose()),
        ],
    );
    Ok(node.to_secret())
}

/// Encodes a PrivateKeyInfo (RFC 5208; version 0, no attributes).
pub fn encode_pkcs8(m: &PrivateKeyMaterial) -> CryptoResult<SecretBytes> {
    let version = Node::UInt(&[0]);
    let null: &[u8] = &[];
    match m {
        PrivateKeyMaterial::Rsa(c) => {
            let inner = encode_rsa_private(c)?;
            let node = Node::Cons(
                TAG_SEQUENCE,
                vec![
                    version,
                    Node::Cons(
                        TAG_SEQUENCE,
                        vec![Node::Prim(TAG_OID, OID_RSA), Node::Prim(TAG_NULL, null)],
                    ),
                    Node::Prim(TAG_OCTET_STRING, inner.expose()),
                ],
            );
            Ok(node.to_secret())
        }
        PrivateKeyMaterial::Ec {
            curve,
            scalar,
            public_point,
        } => {
            // RFC 5915: privateKey is the scalar left-padded to the order length.
            let order_len = curve.order_len();
            let s = scalar.expose();
            let start = s.iter().position(|&x| x != 0).unwrap_or(s.len());
            let s = &s[start..];
            if s.is_empty() || s.len() > order_len {
                return Err(CryptoError::InvalidKey("EC private scalar"));
            }
            let mut padded = SecretBytes::zeroed(order_len);
            padded.expose_mut()[order_len - s.len()..].copy_from_slice(s);
            // The parameters are in the PKCS#8 AlgorithmIdentifier; RFC 5915 §3 says
            // the ECPrivateKey's own [0] parameters may be omitted then; OpenSSL writes
            // them, so do we, for the widest compatibility.
            let mut fields = vec![
                Node::UInt(&[1]),
                Node::Prim(TAG_OCTET_STRING, padded.expose()),
                Node::Cons(
                    TAG_CTX0_CONS,
                    vec![Node::Prim(TAG_OID, curve_oid_content(*curve))],
                ),
            ];
            if let Some(pt) = public_point {
                fields.push(Node::Cons(TAG_CTX1_CONS, vec![Node::Bits(pt)]));
            }
            let node = Node::Cons(
                TAG_SEQUENCE,
                vec![
                    version,
                    Node::Cons(
                        TAG_SEQUENCE,
                        vec![
                            Node::Prim(TAG_OID, OID_EC_PUBLIC_KEY),
                            Node::Prim(TAG_OID, curve_oid_content(*curve)),
                        ],
                    ),
                    Node::Cons(TAG_OCTET_STRING, vec![Node::Cons(TAG_SEQUENCE, fields)]),
                ],
            );
            Ok(node.to_secret())
        }
        PrivateKeyMaterial::Ed25519 { seed } => encode_curve25519(OID_ED25519, seed),
        PrivateKeyMaterial::X25519 { scalar } => encode_curve25519(OID_X25519, scalar),
    }
}

/// RFC 8410 §7: privateKey = OCTET STRING { CurvePrivateKey ::= OCTET STRING }.
fn encode_curve25519(oid: &[u8], key: &SecretBytes) -> CryptoResult<SecretBytes> {
    if key.len() != 32 {
        return Err(CryptoError::InvalidKey("curve25519 private key length"));
    }
    let node = Node::Cons(
        TAG_SEQUENCE,
        vec![
            Node::UInt(&[0]),
            Node::Cons(TAG_SEQUENCE, vec![Node::Prim(TAG_OID, oid)]),
            Node::Cons(
                TAG_OCTET_STRING,
                vec![Node::Prim(TAG_OCTET_STRING, key.expose())],
            ),
        ],
    );
    Ok(node.to_secret())
}

/// AlgorithmIdentifier -> (algorithm OID content, parameters TLV if any).
fn algorithm_identifier<'a>(content: &'a [u8]) -> CryptoResult<(&'a [u8], Option<Tlv<'a>>)> {
    let mut r = Reader::new(content);
    let oid = r.take(TAG_OID)?;
    let params = if r.is_empty() { None } else { Some(r.read()?) };
    r.finish()?;
    Ok((oid, params))
}

fn secret_opt(b: &[u8]) -> Option<SecretBytes> {
    Some(SecretBytes::from_slice(b))
}

/// Decodes a PrivateKeyInfo / OneAsymmetricKey (versions 0 and 1; attributes and the
/// optional public key are skipped).
pub fn decode_pkcs8(der: &[u8]) -> CryptoResult<PrivateKeyMaterial> {
    let body = single(der, TAG_SEQUENCE)?;
    let mut r = Reader::new(body);
    let version = r.small_uint()?;
    if version > 1 {
        return Err(CryptoError::InvalidKey("PKCS#8 version"));
    }
    let (alg, params) = algorithm_identifier(r.take(TAG_SEQUENCE)?)?;
    let private_key = r.take(TAG_OCTET_STRING)?;
    // [0] attributes, [1] publicKey (v2): allowed, ignored.
    let _attributes = r.optional(TAG_CTX0_CONS)?;
    let _public_key = r.optional(TAG_CTX1_PRIM)?;
    r.finish()?;

    if alg == OID_RSA {
        if params.is_some_and(|p| p.tag != TAG_NULL) {
            return Err(CryptoError::InvalidKey("rsaEncryption parameters"));
        }
        decode_rsa_private(private_key).map(PrivateKeyMaterial::Rsa)
    } else if alg == OID_EC_PUBLIC_KEY {
        let outer_curve = match params {
            Some(p) if p.tag == TAG_OID => Some(curve_from_oid_content(p.content)?),
            Some(_) => return Err(CryptoError::Unsupported("curve")),
            None => None,
        };
        decode_ec_private(private_key, outer_curve)
    } else if alg == OID_ED25519 || alg == OID_X25519 {
        if params.is_some() {
            return Err(CryptoError::InvalidKey(
                "RFC 8410 parameters must be absent",
            ));
        }
        let key = single(private_key, TAG_OCTET_STRING)?;
        if key.len() != 32 {
            return Err(CryptoError::InvalidKey("curve25519 private key length"));
        }
        let key = SecretBytes::from_slice(key);
        Ok(if alg == OID_ED25519 {
            PrivateKeyMaterial::Ed25519 { seed: key }
        } else {
            PrivateKeyMaterial::X25519 { scalar: key }
        })
    } else {
        Err(CryptoError::Unsupported("private key algorithm"))
    }
}

/// RSAPrivateKey (two-prime, version 0).
fn decode_rsa_private(der: &[u8]) -> CryptoResult<RsaComponents> {
    let mut r = Reader::new(single(der, TAG_SEQUENCE)?);
    if r.small_uint()? != 0 {
        return Err(CryptoError::Unsupported("multi-prime RSA"));
    }
    let n = r.unsigned()?.to_vec();
    let e = r.unsigned()?.to_vec();
    let d = secret_opt(r.unsigned()?);
    let p = secret_opt(r.unsigned()?);
    let q = secret_opt(r.unsigned()?);
    let dp = secret_opt(r.unsigned()?);
    let dq = secret_opt(r.unsigned()?);
    let qinv = secret_opt(r.unsigned()?);
    r.finish()?;
    Ok(RsaComponents {
        n,
        e,
        d,
        p,
        q,
        dp,
        dq,
        qinv,
    })
}

/// ECPrivateKey (RFC 5915); the curve comes from the PKCS#8 parameters or the [0] field.
fn decode_ec_private(der: &[u8], outer: Option<Curve>) -> CryptoResult<PrivateKeyMaterial> {
    let mut r = Reader::new(single(der, TAG_SEQUENCE)?);
    if r.small_uint()? != 1 {
        return Err(CryptoError::InvalidKey("ECPrivateKey version"));
    }
    let scalar = r.take(TAG_OCTET_STRING)?;
    let inner = match r.optional(TAG_CTX0_CONS)? {
        Some(c) => {
            let oid = single(c, TAG_OID).map_err(|_| CryptoError::Unsupported("curve"))?;
            Some(curve_from_oid_content(oid)?)
        }
        None => None,
    };
    let public_point = match r.optional(TAG_CTX1_CONS)? {
        Some(c) => Some(bit_string_bytes(single(c, TAG_BIT_STRING)?)?.to_vec()),
        None => None,
    };
    r.finish()?;
    let curve = match (outer, inner) {
        (Some(a), Some(b)) if a != b => {
            return Err(CryptoError::InvalidKey("EC curve mismatch"));
        }
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => return Err(CryptoError::InvalidKey("EC curve missing")),
    };
    if scalar.is_empty() || scalar.len() > curve.order_len() {
        return Err(CryptoError::InvalidKey("EC private scalar length"));
    }
    let mut s = SecretBytes::zeroed(curve.order_len());
    let off = curve.order_len() - scalar.len();
    s.expose_mut()[off..].copy_from_slice(scalar);
    Ok(PrivateKeyMaterial::Ec {
        curve,
        scalar: s,
        public_point,
    })
}

// ---------------------------------------------------------------------------------------
// SubjectPublicKeyInfo
// ---------------------------------------------------------------------------------------

/// A public key as SubjectPublicKeyInfo carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKeyMaterial {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { curve: Curve, point: Vec<u8> },
    Ed25519(Vec<u8>),
    X25519(Vec<u8>),
}

/// Encodes a SubjectPublicKeyInfo (RFC 5280 §4.1; RSA per RFC 3279, EC per RFC 5480,
/// curve25519 per RFC 8410).
pub fn encode_spki(m: &PublicKeyMaterial) -> Vec<u8> {
    let null: &[u8] = &[];
    let rsa_key;
    let (alg, key): (Vec<Node<'_>>, &[u8]) = match m {
        PublicKeyMaterial::Rsa { n, e } => {
            rsa_key = Node::Cons(TAG_SEQUENCE, vec![Node::UInt(n), Node::UInt(e)]).to_vec();
            (
                vec![Node::Prim(TAG_OID, OID_RSA), Node::Prim(TAG_NULL, null)],
                &rsa_key,
            )
        }
        PublicKeyMaterial::Ec { curve, point } => (
            vec![
                Node::Prim(TAG_OID, OID_EC_PUBLIC_KEY),
                Node::Prim(TAG_OID, curve_oid_content(*curve)),
            ],
            point,
        ),
        PublicKeyMaterial::Ed25519(k) => (vec![Node::Prim(TAG_OID, OID_ED25519)], k),
        PublicKeyMaterial::X25519(k) => (vec![Node::Prim(TAG_OID, OID_X25519)], k),
    };
    Node::Cons(
        TAG_SEQUENCE,
        vec![Node::Cons(TAG_SEQUENCE, alg), Node::Bits(key)],
    )
    .to_vec()
}

/// Decodes a SubjectPublicKeyInfo.
pub fn decode_spki(der: &[u8]) -> CryptoResult<PublicKeyMaterial> {
    let mut r = Reader::new(single(der, TAG_SEQUENCE)?);
    let (alg, params) = algorithm_identifier(r.take(TAG_SEQUENCE)?)?;
    let key = bit_string_bytes(r.take(TAG_BIT_STRING)?)?;
    r.finish()?;
    if alg == OID_RSA {
        if params.is_some_and(|p| p.tag != TAG_NULL) {
            return Err(CryptoError::InvalidKey("rsaEncryption parameters"));
        }
        let mut k = Reader::new(single(key, TAG_SEQUENCE)?);
        let n = k.unsigned()?.to_vec();
        let e = k.unsigned()?.to_vec();
        k.finish()?;
        if n.is_empty() || e.is_empty() {
            return Err(CryptoError::InvalidKey("RSA public key"));
        }
        Ok(PublicKeyMaterial::Rsa { n, e })
    } else if alg == OID_EC_PUBLIC_KEY {
        let curve = match params {
            Some(p) if p.tag == TAG_OID => curve_from_oid_content(p.content)?,
            _ => return Err(CryptoError::Unsupported("curve")),
        };
        if key.is_empty() {
            return Err(CryptoError::InvalidKey("EC point"));
        }
        Ok(PublicKeyMaterial::Ec {
            curve,
            point: key.to_vec(),
        })
    } else if alg == OID_ED25519 || alg == OID_X25519 {
        if params.is_some() {
            return Err(CryptoError::InvalidKey(
                "RFC 8410 parameters must be absent",
            ));
        }
        if key.len() != 32 {
            return Err(CryptoError::InvalidKey("curve25519 public key length"));
        }
        Ok(if alg == OID_ED25519 {
            PublicKeyMaterial::Ed25519(key.to_vec())
        } else {
            PublicKeyMaterial::X25519(key.to_vec())
        })
    } else {
        Err(CryptoError::Unsupported("public key algorithm"))
    }
}

// ---------------------------------------------------------------------------------------
// X.509
// ---------------------------------------------------------------------------------------

/// The certificate fields a token derives from CKA_VALUE: each as its full DER TLV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFields {
    /// The subject Name SEQUENCE (CKA_SUBJECT).
    pub subject: Vec<u8>,
    /// The issuer Name SEQUENCE (CKA_ISSUER).
    pub issuer: Vec<u8>,
    /// The serialNumber INTEGER TLV (CKA_SERIAL_NUMBER).
    pub serial_number: Vec<u8>,
    /// The SubjectPublicKeyInfo SEQUENCE (CKA_PUBLIC_KEY_INFO).
    pub spki: Vec<u8>,
}

/// Extracts subject, issuer, serial number and SPKI from an X.509 v1/v2/v3 certificate
/// (RFC 5280 §4.1). The signature is not checked: this only reads the structure.
pub fn parse_certificate(der: &[u8]) -> CryptoResult<CertificateFields> {
    let bad = |_| CryptoError::InvalidParameter("certificate");
    let mut cert = Reader::new(single(der, TAG_SEQUENCE).map_err(bad)?);
    let mut tbs = Reader::new(cert.take(TAG_SEQUENCE).map_err(bad)?);
    let _signature_algorithm = cert.take(TAG_SEQUENCE).map_err(bad)?;
    let _signature = cert.take(TAG_BIT_STRING).map_err(bad)?;
    cert.finish().map_err(bad)?;

    // version [0] EXPLICIT INTEGER DEFAULT v1
    if let Some(v) = tbs.optional(TAG_CTX0_CONS).map_err(bad)? {
        let mut vr = Reader::new(v);
        let version = vr.small_uint().map_err(bad)?;
        vr.finish().map_err(bad)?;
        if version > 2 {
            return Err(CryptoError::InvalidParameter("certificate version"));
        }
    }
    let serial = tbs.read().map_err(bad)?;
    if serial.tag != TAG_INTEGER || serial.content.is_empty() {
        return Err(CryptoError::InvalidParameter("certificate serial number"));
    }
    let _signature = tbs.take(TAG_SEQUENCE).map_err(bad)?;
    let issuer = tbs.read().map_err(bad)?;
    let _validity = tbs.take(TAG_SEQUENCE).map_err(bad)?;
    let subject = tbs.read().map_err(bad)?;
    let spki = tbs.read().map_err(bad)?;
    if issuer.tag != TAG_SEQUENCE || subject.tag != TAG_SEQUENCE || spki.tag != TAG_SEQUENCE {
        return Err(CryptoError::InvalidParameter("certificate"));
    }
    // issuerUniqueID [1], subjectUniqueID [2], extensions [3] follow: not needed, but
    // they must be well-formed TLVs.
    while !tbs.is_empty() {
        tbs.read().map_err(bad)?;
    }
    Ok(CertificateFields {
        subject: subject.raw.to_vec(),
        issuer: issuer.raw.to_vec(),
        serial_number: serial.raw.to_vec(),
        spki: spki.raw.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::digest::{digest, HashAlg};
    use crate::crypto::ec::{EcPrivateKey, EcPublicKey};
    use crate::crypto::edwards::{Ed25519PrivateKey, X25519PrivateKey};
    use crate::crypto::rsa::{RsaPrivateKey, RsaPublicKey};

    macro_rules! testdata {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/testdata/asym/",
                $name
            ))
            .as_slice()
        };
    }

    const RSA_PK8: &[u8] = testdata!("rsa2048.pk8.der");
    const RSA_SPKI: &[u8] = testdata!("rsa2048.spki.der");
    const EC_FILES: [(Curve, &[u8], &[u8]); 4] = [
        (
            Curve::P256,
            testdata!("ec-P-256.pk8.der"),
            testdata!("ec-P-256.spki.der"),
        ),
        (
            Curve::P384,
            testdata!("ec-P-384.pk8.der"),
            testdata!("ec-P-384.spki.der"),
        ),
        (
            Curve::P521,
            testdata!("ec-P-521.pk8.der"),
            testdata!("ec-P-521.spki.der"),
        ),
        (
            Curve::Secp256k1,
            testdata!("ec-secp256k1.pk8.der"),
            testdata!("ec-secp256k1.spki.der"),
        ),
    ];
    const ED_PK8: &[u8] = testdata!("ed25519.pk8.der");
    const ED_SPKI: &[u8] = testdata!("ed25519.spki.der");
    const X_PK8: &[u8] = testdata!("x25519.pk8.der");
    const X_SPKI: &[u8] = testdata!("x25519.spki.der");
    const CERT_EC_V3: &[u8] = testdata!("cert-ec-v3.der");
    const CERT_RSA_V1: &[u8] = testdata!("cert-rsa-v1.der");

    fn all_inputs() -> Vec<&'static [u8]> {
        let mut v = vec![
            RSA_PK8,
            RSA_SPKI,
            ED_PK8,
            ED_SPKI,
            X_PK8,
            X_SPKI,
            CERT_EC_V3,
            CERT_RSA_V1,
        ];
        for (_, a, b) in EC_FILES {
            v.push(a);
            v.push(b);
        }
        v
    }

    #[test]
    fn openssl_rsa_pkcs8_and_spki() {
        let PrivateKeyMaterial::Rsa(c) = decode_pkcs8(RSA_PK8).expect("decode") else {
            panic!("not RSA");
        };
        let PublicKeyMaterial::Rsa { n, e } = decode_spki(RSA_SPKI).expect("spki") else {
            panic!("not RSA");
        };
        assert_eq!(c.n, n);
        assert_eq!(e, vec![1, 0, 1]);
        assert_eq!(n.len(), 256);
        let k = RsaPrivateKey::from_components(&c).expect("key");
        let d = digest(HashAlg::Sha256, b"openssl key");
        let sig = k.sign_pkcs1v15_digest(HashAlg::Sha256, &d).expect("sign");
        RsaPublicKey::from_components(&n, &e)
            .expect("pub")
            .verify_pkcs1v15_digest(HashAlg::Sha256, &d, &sig)
            .expect("verify");
        // Our encodings are byte-identical to OpenSSL's.
        assert_eq!(
            encode_pkcs8(&PrivateKeyMaterial::Rsa(k.components()))
                .expect("enc")
                .expose(),
            RSA_PK8
        );
        assert_eq!(encode_spki(&PublicKeyMaterial::Rsa { n, e }), RSA_SPKI);
    }

    #[test]
    fn openssl_ec_pkcs8_and_spki() {
        for (curve, pk8, spki) in EC_FILES {
            let PrivateKeyMaterial::Ec {
                curve: c,
                scalar,
                public_point,
            } = decode_pkcs8(pk8).expect("decode")
            else {
                panic!("not EC");
            };
            assert_eq!(c, curve);
            assert_eq!(scalar.len(), curve.order_len());
            let k = EcPrivateKey::from_scalar(curve, scalar.expose()).expect("key");
            assert_eq!(public_point.as_deref(), Some(&k.public_point()[..]));
            let PublicKeyMaterial::Ec { curve: c2, point } = decode_spki(spki).expect("spki")
            else {
                panic!("not EC");
            };
            assert_eq!(c2, curve);
            assert_eq!(point, k.public_point());
            let pk = EcPublicKey::from_point(curve, &point).expect("point");
            let sig = k
                .sign_prehashed(b"0123456789abcdef0123456789abcdef")
                .expect("sign");
            pk.verify_prehashed(b"0123456789abcdef0123456789abcdef", &sig)
                .expect("verify");
            assert_eq!(encode_spki(&PublicKeyMaterial::Ec { curve, point }), spki);
            // Our PKCS#8 decodes to the same material and AWS-LC's own parser takes it.
            let m = PrivateKeyMaterial::Ec {
                curve,
                scalar,
                public_point,
            };
            let ours = encode_pkcs8(&m).expect("encode");
            let back = decode_pkcs8(ours.expose()).expect("decode ours");
            match (&m, &back) {
                (
                    PrivateKeyMaterial::Ec {
                        scalar: a,
                        public_point: pa,
                        ..
                    },
                    PrivateKeyMaterial::Ec {
                        scalar: b,
                        public_point: pb,
                        curve: cb,
                    },
                ) => {
                    assert_eq!(a, b);
                    assert_eq!(pa, pb);
                    assert_eq!(*cb, curve);
                }
                _ => panic!("kind changed"),
            }
            if curve != Curve::Secp256k1 {
                let alg = match curve {
                    Curve::P256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    Curve::P384 => &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    _ => &aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED_SIGNING,
                };
                aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, ours.expose())
                    .expect("aws-lc-rs parses our PKCS#8");
            }
        }
    }

    #[test]
    fn openssl_curve25519_keys() {
        let PrivateKeyMaterial::Ed25519 { seed } = decode_pkcs8(ED_PK8).expect("ed") else {
            panic!("not Ed25519");
        };
        let k = Ed25519PrivateKey::from_seed(seed.expose()).expect("seed");
        assert_eq!(
            decode_spki(ED_SPKI).expect("spki"),
            PublicKeyMaterial::Ed25519(k.public_key_bytes().to_vec())
        );
        assert_eq!(
            encode_pkcs8(&PrivateKeyMaterial::Ed25519 { seed })
                .expect("enc")
                .expose(),
            ED_PK8
        );
        assert_eq!(
            encode_spki(&PublicKeyMaterial::Ed25519(k.public_key_bytes().to_vec())),
            ED_SPKI
        );

        let PrivateKeyMaterial::X25519 { scalar } = decode_pkcs8(X_PK8).expect("x") else {
            panic!("not X25519");
        };
        let k = X25519PrivateKey::from_scalar(scalar.expose()).expect("scalar");
        assert_eq!(
            decode_spki(X_SPKI).expect("spki"),
            PublicKeyMaterial::X25519(k.public_key_bytes().to_vec())
        );
        assert_eq!(
            encode_pkcs8(&PrivateKeyMaterial::X25519 { scalar })
                .expect("enc")
                .expose(),
            X_PK8
        );
    }

    #[test]
    fn generated_keys_round_trip() {
        let rsa = RsaPrivateKey::generate(2048, &[]).expect("rsa");
        let der = encode_pkcs8(&PrivateKeyMaterial::Rsa(rsa.components())).expect("enc");
        aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.expose()).expect("aws-lc-rs parses ours");
        let PrivateKeyMaterial::Rsa(c) = decode_pkcs8(der.expose()).expect("dec") else {
            panic!("kind");
        };
        let rsa2 = RsaPrivateKey::from_components(&c).expect("key");
        assert_eq!(
            rsa2.public_key().unwrap().n(),
            rsa.public_key().unwrap().n()
        );
        let spki = encode_spki(&PublicKeyMaterial::Rsa {
            n: rsa.public_key().unwrap().n().to_vec(),
            e: rsa.public_key().unwrap().e().to_vec(),
        });
        assert!(matches!(
            decode_spki(&spki),
            Ok(PublicKeyMaterial::Rsa { .. })
        ));

        let ed = Ed25519PrivateKey::generate().expect("ed");
        let der = encode_pkcs8(&PrivateKeyMaterial::Ed25519 { seed: ed.seed() }).expect("enc");
        aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.expose())
            .expect("aws-lc-rs parses ours");

        // EC without a public point; scalar shorter than the order.
        let m = PrivateKeyMaterial::Ec {
            curve: Curve::P256,
            scalar: SecretBytes::from_slice(&[7]),
            public_point: None,
        };
        let der = encode_pkcs8(&m).expect("enc");
        let PrivateKeyMaterial::Ec {
            scalar,
            public_point,
            ..
        } = decode_pkcs8(der.expose()).expect("dec")
        else {
            panic!("kind");
        };
        assert_eq!(scalar.len(), 32);
        assert_eq!(scalar.expose()[31], 7);
        assert!(public_point.is_none());

        // An RSA key without CRT parts cannot be written as RSAPrivateKey.
        let c = rsa.components();
        let no_crt = RsaComponents {
            n: c.n,
            e: c.e,
            d: c.d,
            p: None,
            q: None,
            dp: None,
            dq: None,
            qinv: None,
        };
        assert!(matches!(
            encode_pkcs8(&PrivateKeyMaterial::Rsa(no_crt)),
            Err(CryptoError::InvalidKey(_))
        ));
        assert!(matches!(
            encode_pkcs8(&PrivateKeyMaterial::X25519 {
                scalar: SecretBytes::zeroed(31)
            }),
            Err(CryptoError::InvalidKey(_))
        ));
    }

    #[test]
    fn pkcs8_v2_with_public_key_and_attributes() {
        // OneAsymmetricKey v2 (RFC 8410 §10.3 example shape): version 1, [0] attributes,
        // [1] publicKey; built from the OpenSSL Ed25519 key.
        let PrivateKeyMaterial::Ed25519 { seed } = decode_pkcs8(ED_PK8).expect("ed") else {
            panic!("kind");
        };
        let pubkey = Ed25519PrivateKey::from_seed(seed.expose())
            .expect("k")
            .public_key_bytes();
        let mut body = vec![0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
        body.extend_from_slice(&[0x04, 0x22, 0x04, 0x20]);
        body.extend_from_slice(seed.expose());
        body.extend_from_slice(&[0xa0, 0x02, 0x05, 0x00]);
        body.extend_from_slice(&[0x81, 0x21, 0x00]);
        body.extend_from_slice(&pubkey);
        let mut der = vec![0x30, body.len() as u8];
        der.extend_from_slice(&body);
        match decode_pkcs8(&der).expect("v2") {
            PrivateKeyMaterial::Ed25519 { seed: s } => assert_eq!(s, seed),
            _ => panic!("kind"),
        }
        // Version 2 is not a thing.
        der[4] = 2;
        assert!(decode_pkcs8(&der).is_err());
    }

    #[test]
    fn certificates() {
        let f = parse_certificate(CERT_EC_V3).expect("v3");
        assert_eq!(
            f.serial_number,
            hex::decode("02090123456789abcdef01").expect("hex")
        );
        assert_eq!(f.subject, f.issuer);
        assert_eq!(f.spki, EC_FILES[0].2);
        assert_eq!(f.subject[0], 0x30);
        assert!(f.subject.windows(5).any(|w| w == b"ec-v3"));
        assert!(f.subject.windows(15).any(|w| w == b"clusterhsm test"));
        // The subject decodes as exactly one SEQUENCE.
        single(&f.subject, TAG_SEQUENCE).expect("subject is a SEQUENCE");

        let f = parse_certificate(CERT_RSA_V1).expect("v1");
        assert_eq!(f.serial_number, vec![0x02, 0x01, 0x07]);
        assert_eq!(f.spki, RSA_SPKI);
        assert!(f.subject.windows(6).any(|w| w == b"rsa-v1"));
        assert_eq!(f.subject, f.issuer);

        assert!(matches!(
            parse_certificate(RSA_SPKI),
            Err(CryptoError::InvalidParameter(_))
        ));
        assert!(matches!(
            parse_certificate(&[]),
            Err(CryptoError::InvalidParameter(_))
        ));
        let mut trailing = CERT_EC_V3.to_vec();
        trailing.push(0);
        assert!(parse_certificate(&trailing).is_err());
    }

    #[test]
    fn reader_rejects_non_der_lengths() {
        let bad: [&[u8]; 10] = [
            &[],
            &[0x04],
            &[0x04, 0x80],                         // indefinite
            &[0x04, 0x81, 0x05, 1, 2, 3, 4, 5],    // long form for a short length
            &[0x04, 0x82, 0x00, 0x81],             // leading zero in the length
            &[0x04, 0x85, 1, 0, 0, 0, 0],          // 5 length octets
            &[0x04, 0x84, 0xff, 0xff, 0xff, 0xff], // 4 GiB, not there
            &[0x04, 0x02, 0x01],                   // short content
            &[0x1f, 0x81, 0x01, 0x00],             // high tag number
            &[0x04, 0x01],
        ];
        for b in bad {
            assert!(single(b, TAG_OCTET_STRING).is_err(), "{b:?}");
        }
        assert_eq!(
            single(&[0x04, 0x00], TAG_OCTET_STRING).expect("empty"),
            &[] as &[u8]
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend_from_slice(&[9; 128]);
        assert_eq!(single(&long, TAG_OCTET_STRING).expect("long").len(), 128);
        // Negative and empty INTEGERs are refused as unsigned values.
        assert!(Reader::new(&[0x02, 0x01, 0x80]).unsigned().is_err());
        assert!(Reader::new(&[0x02, 0x00]).unsigned().is_err());
        assert_eq!(
            Reader::new(&[0x02, 0x02, 0x00, 0x80])
                .unsigned()
                .expect("int"),
            &[0x80]
        );
    }

    #[test]
    fn writer_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 65535, 65536] {
            let data = vec![0xaa; len];
            let der = octet_string(&data);
            assert_eq!(der.len(), header_len(len) + len);
            assert_eq!(single(&der, TAG_OCTET_STRING).expect("parse"), &data[..]);
        }
        assert_eq!(Node::UInt(&[]).to_vec(), vec![0x02, 0x01, 0x00]);
        assert_eq!(Node::UInt(&[0, 0, 0x7f]).to_vec(), vec![0x02, 0x01, 0x7f]);
        assert_eq!(Node::UInt(&[0x80]).to_vec(), vec![0x02, 0x02, 0x00, 0x80]);
    }

    /// Every truncation and a few thousand single-byte mutations of every test file:
    /// decoding returns (Ok or Err) and never panics or reads out of bounds.
    #[test]
    fn hostile_inputs_never_panic() {
        let run_all = |b: &[u8]| {
            let _ = decode_pkcs8(b);
            let _ = decode_spki(b);
            let _ = parse_certificate(b);
            let _ = Curve::from_ec_params(b);
            let _ = crate::crypto::edwards::EdwardsCurve::from_ec_params(b);
            let _ = crate::crypto::ec::ec_point_from_attribute(b, None);
            let _ = crate::crypto::ec::ec_point_from_attribute(b, Some(65));
        };
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for input in all_inputs() {
            for cut in 0..input.len() {
                run_all(&input[..cut]);
                assert!(decode_pkcs8(&input[..cut]).is_err());
                assert!(decode_spki(&input[..cut]).is_err());
                assert!(parse_certificate(&input[..cut]).is_err());
            }
            for _ in 0..300 {
                let mut m = input.to_vec();
                let i = (rand() as usize) % m.len();
                m[i] = rand() as u8;
                run_all(&m);
            }
        }
        for len in 0..200 {
            let junk: Vec<u8> = (0..len).map(|_| rand() as u8).collect();
            run_all(&junk);
            let mut seq = vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff];
            seq.extend_from_slice(&junk);
            run_all(&seq);
        }
    }

    #[test]
    fn unknown_algorithms_are_unsupported() {
        // PKCS#8 with a DSA OID (1.2.840.10040.4.1).
        let der = [
            0x30, 0x12, 0x02, 0x01, 0x00, 0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x38,
            0x04, 0x01, 0x04, 0x02, 0x30, 0x00,
        ];
        assert_eq!(
            decode_pkcs8(&der).err(),
            Some(CryptoError::Unsupported("private key algorithm"))
        );
        // SPKI for EC with an unknown named curve.
        let spki = [
            0x30, 0x13, 0x30, 0x0e, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x03, 0x2b, 0x65, 0x71, 0x03, 0x01, 0x00,
        ];
        assert_eq!(
            decode_spki(&spki).err(),
            Some(CryptoError::Unsupported("curve"))
        );
    }
}

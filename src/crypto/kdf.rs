//! Key derivation: HKDF (RFC 5869) and the ANSI X9.63 / SEC 1 §3.6.1 KDF.

use zeroize::Zeroize;

use super::digest::{HashAlg, Hasher};
use super::mac::Hmac;
use super::{CryptoError, CryptoResult};
use crate::secure_mem::SecretBytes;

/// HKDF-Extract (RFC 5869 §2.2): PRK = HMAC-Hash(salt, IKM); an empty salt means
/// HashLen zero bytes.
pub fn hkdf_extract(alg: HashAlg, salt: &[u8], ikm: &[u8]) -> SecretBytes {
    let zeros = [0u8; 64];
    let salt = if salt.is_empty() {
        &zeros[..alg.output_len()]
    } else {
        salt
    };
    let mut m = Hmac::new(alg, salt);
    m.update(ikm);
    let mut prk = SecretBytes::zeroed(alg.output_len());
    m.finish_into(prk.expose_mut());
    prk
}

/// HKDF-Expand (RFC 5869 §2.3): `len` bytes of OKM; `len > 255 * HashLen` is
/// `InvalidParameter`.
pub fn hkdf_expand(alg: HashAlg, prk: &[u8], info: &[u8], len: usize) -> CryptoResult<SecretBytes> {
    let hl = alg.output_len();
    if len > 255 * hl {
        return Err(CryptoError::InvalidParameter(
            "HKDF output longer than 255 * HashLen",
        ));
    }
    let mut okm = SecretBytes::zeroed(len);
    let keyed = Hmac::new(alg, prk);
    let mut t = [0u8; 64];
    let mut t_len = 0usize;
    let mut counter = 1u8;
    let mut done = 0;
    while done < len {
        let mut m = keyed.clone();
        m.update(&t[..t_len]);
        m.update(info);
        m.update(&[counter]);
        m.finish_into(&mut t[..hl]);
        t_len = hl;
        let n = hl.min(len - done);
        okm.expose_mut()[done..done + n].copy_from_slice(&t[..n]);
        done += n;
        counter = counter.wrapping_add(1);
    }
    t.zeroize();
    Ok(okm)
}

/// ANSI X9.63 KDF (SEC 1 v2 §3.6.1): K = Hash(Z || 1 || SharedInfo) || Hash(Z || 2 ||
/// SharedInfo) || ..., the counter a 32-bit big-endian integer from 1, truncated to
/// `len` bytes.
pub fn x963_kdf(alg: HashAlg, z: &[u8], shared_info: &[u8], len: usize) -> SecretBytes {
    let hl = alg.output_len();
    let mut out = SecretBytes::zeroed(len);
    let mut block = [0u8; 64];
    let mut counter: u32 = 1;
    let mut done = 0;
    while done < len {
        let mut h = Hasher::new(alg);
        h.update(z);
        h.update(&counter.to_be_bytes());
        h.update(shared_info);
        h.finish_into(&mut block[..hl]);
        let n = hl.min(len - done);
        out.expose_mut()[done..done + n].copy_from_slice(&block[..n]);
        done += n;
        counter = counter.wrapping_add(1);
    }
    block.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::digest::tests::hex;

    /// RFC 5869 Appendix A.1 (SHA-256), A.3 (SHA-256, empty salt and info), A.4 (SHA-1).
    #[test]
    fn rfc5869_vectors() {
        let salt: Vec<u8> = (0..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        type Case<'a> = (HashAlg, Vec<u8>, &'a [u8], &'a [u8], &'a str, &'a str);
        let cases: [Case; 3] = [
            (
                HashAlg::Sha256,
                vec![0x0b; 22],
                &salt,
                &info,
                "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            ),
            (
                HashAlg::Sha256,
                vec![0x0b; 22],
                b"",
                b"",
                "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
                "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
            ),
            (
                HashAlg::Sha1,
                vec![0x0b; 11],
                &salt,
                &info,
                "9b6c18c432a7bf8f0e71c8eb88f4b30baa2ba243",
                "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896",
            ),
        ];
        for (alg, ikm, salt, info, prk_hex, okm_hex) in cases {
            let prk = hkdf_extract(alg, salt, &ikm);
            assert_eq!(prk.expose(), &hex(prk_hex)[..]);
            let okm = hkdf_expand(alg, prk.expose(), info, 42).expect("expand");
            assert_eq!(okm.expose(), &hex(okm_hex)[..]);
            // Shorter outputs are prefixes.
            let short = hkdf_expand(alg, prk.expose(), info, 5).expect("expand");
            assert_eq!(short.expose(), &hex(okm_hex)[..5]);
        }
    }

    #[test]
    fn hkdf_length_limit() {
        let prk = [1u8; 32];
        assert_eq!(
            hkdf_expand(HashAlg::Sha256, &prk, b"", 255 * 32)
                .expect("max")
                .len(),
            8160
        );
        assert!(matches!(
            hkdf_expand(HashAlg::Sha256, &prk, b"", 255 * 32 + 1),
            Err(CryptoError::InvalidParameter(_))
        ));
        assert_eq!(
            hkdf_expand(HashAlg::Sha256, &prk, b"", 0)
                .expect("empty")
                .len(),
            0
        );
    }

    /// NIST CAVP SP 800-135 "ansx963_2001.rsp" [SHA-1], first vector (Z 192 bits, no
    /// SharedInfo, 128-bit key data); a 50-byte SHA-256 output with SharedInfo from
    /// Python `cryptography`'s X963KDF.
    #[test]
    fn x963_vectors() {
        let k = x963_kdf(
            HashAlg::Sha1,
            &hex("1c7d7b5f0597b03d06a018466ed1a93e30ed4b04dc64ccdd"),
            b"",
            16,
        );
        assert_eq!(k.expose(), &hex("bf71dffd8f4d99223936beb46fee8ccc")[..]);
        let k = x963_kdf(HashAlg::Sha256, &[b'z'; 32], b"shared", 50);
        assert_eq!(
            k.expose(),
            &hex(
                "22b57aeb74632e528b88174f96b345baf40d2466f5735f01a43d78d2ee0d338c\
                  2b37076d3ffe7bebce2ce206b1e9e31c3b6c"
            )[..]
        );
        assert_eq!(x963_kdf(HashAlg::Sha256, b"z", b"", 0).len(), 0);
    }
}

/// One encoded piece of the SP 800-108 fixed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterKdfPart {
    Counter {
        width_bits: usize,
        little_endian: bool,
    },
    Length {
        value_bits: u64,
        width_bits: usize,
        little_endian: bool,
    },
    Bytes(Vec<u8>),
}

fn encode_uint(
    v: u64,
    width_bits: usize,
    little_endian: bool,
    out: &mut Vec<u8>,
) -> CryptoResult<()> {
    let n = width_bits / 8;
    if n == 0 || n > 8 || (n < 8 && v >> (8 * n) != 0) {
        return Err(CryptoError::InvalidParameter("SP 800-108 field too narrow"));
    }
    let be = v.to_be_bytes();
    let mut bytes = be[8 - n..].to_vec();
    if little_endian {
        bytes.reverse();
    }
    out.extend_from_slice(&bytes);
    Ok(())
}

/// NIST SP 800-108 KDF in counter mode: K(i) = PRF(key, fixed input with counter i), for
/// i = 1.. until `len` bytes are produced. `prf` computes one PRF block.
pub fn sp800_108_counter(
    parts: &[CounterKdfPart],
    len: usize,
    mut prf: impl FnMut(&[u8]) -> Vec<u8>,
) -> CryptoResult<SecretBytes> {
    if !parts
        .iter()
        .any(|p| matches!(p, CounterKdfPart::Counter { .. }))
    {
        return Err(CryptoError::InvalidParameter(
            "SP 800-108 counter mode needs a counter",
        ));
    }
    let mut out = SecretBytes::zeroed(len);
    let mut filled = 0;
    let mut i: u64 = 1;
    while filled < len {
        let mut input = Vec::new();
        for p in parts {
            match p {
                CounterKdfPart::Counter {
                    width_bits,
                    little_endian,
                } => encode_uint(i, *width_bits, *little_endian, &mut input)?,
                CounterKdfPart::Length {
                    value_bits,
                    width_bits,
                    little_endian,
                } => encode_uint(*value_bits, *width_bits, *little_endian, &mut input)?,
                CounterKdfPart::Bytes(b) => input.extend_from_slice(b),
            }
        }
        let block = SecretBytes::new(prf(&input));
        if block.is_empty() {
            return Err(CryptoError::Internal("empty PRF output"));
        }
        let take = block.len().min(len - filled);
        out.expose_mut()[filled..filled + take].copy_from_slice(&block.expose()[..take]);
        filled += take;
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod sp800_108_tests {
    use super::*;
    use crate::crypto::digest::HashAlg;
    use crate::crypto::mac::hmac;

    /// NIST CAVP KBKDF counter mode, HMAC-SHA256, counter before fixed data, r=8
    /// (KDFCTR_gen.rsp, [PRF=HMAC_SHA256][CTRLOCATION=BEFORE_FIXED][RLEN=8_BITS], COUNT=0).
    #[test]
    fn cavp_hmac_sha256_counter_before_fixed_8bit() {
        let ki = hex("3edc6b5b8f7aadbd713732b482b8f979286e1ea3b8f8f99c30c884cfe3349b83");
        let fixed = hex("98e9988bb4cc8b34d7922e1c68ad692ba2a1d9ae15149571675f17a77ad49e80c8d2a85e831a26445b1f0ff44d7084a17206b4896c8112daad18605a");
        let ko = hex("6c037652990674a07844732d0ad985f9");
        let parts = [
            CounterKdfPart::Counter {
                width_bits: 8,
                little_endian: false,
            },
            CounterKdfPart::Bytes(fixed),
        ];
        let out = sp800_108_counter(&parts, 16, |x| hmac(HashAlg::Sha256, &ki, x)).unwrap();
        assert_eq!(out.expose(), ko.as_slice());
    }

    #[test]
    fn counter_required_and_widths_checked() {
        assert!(sp800_108_counter(&[CounterKdfPart::Bytes(vec![1])], 16, |_| vec![0; 32]).is_err());
        let p = [CounterKdfPart::Counter {
            width_bits: 8,
            little_endian: false,
        }];
        // 300 blocks would overflow an 8-bit counter.
        assert!(sp800_108_counter(&p, 300 * 32, |_| vec![0; 32]).is_err());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}

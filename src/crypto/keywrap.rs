//! AES Key Wrap (RFC 3394, NIST SP 800-38F KW) and Key Wrap with Padding (RFC 5649,
//! SP 800-38F KWP), with caller-chosen IV / alternative IV.

use zeroize::Zeroize;

use super::block::BlockCipher;
use super::lc::ct_eq;
use super::{CryptoError, CryptoResult};
use crate::secure_mem::SecretBytes;

/// RFC 3394 §2.2.3.1 default initial value.
const KW_DEFAULT_IV: [u8; 8] = [0xa6; 8];
/// RFC 5649 §3 alternative initial value prefix.
const KWP_DEFAULT_AIV: [u8; 4] = [0xa6, 0x59, 0x59, 0xa6];

/// W(S) of RFC 3394 §2.2.1 (index form) in place: `a` the integrity register,
/// `r` the n >= 2 64-bit blocks.
fn wrap_core(cipher: &BlockCipher, a: &mut [u8; 8], r: &mut [u8]) {
    let n = r.len() / 8;
    let mut b = [0u8; 16];
    for j in 0..6u64 {
        for i in 0..n {
            b[..8].copy_from_slice(a);
            b[8..].copy_from_slice(&r[8 * i..8 * i + 8]);
            cipher.encrypt_block_in_place(&mut b);
            let t = (n as u64) * j + (i as u64) + 1;
            for (k, tb) in t.to_be_bytes().iter().enumerate() {
                a[k] = b[k] ^ tb;
            }
            r[8 * i..8 * i + 8].copy_from_slice(&b[8..]);
        }
    }
    b.zeroize();
}

/// W^-1(C) of RFC 3394 §2.2.2 (index form) in place.
fn unwrap_core(cipher: &BlockCipher, a: &mut [u8; 8], r: &mut [u8]) {
    let n = r.len() / 8;
    let mut b = [0u8; 16];
    for j in (0..6u64).rev() {
        for i in (0..n).rev() {
            let t = (n as u64) * j + (i as u64) + 1;
            for (k, tb) in t.to_be_bytes().iter().enumerate() {
                b[k] = a[k] ^ tb;
            }
            b[8..].copy_from_slice(&r[8 * i..8 * i + 8]);
            cipher.decrypt_block_in_place(&mut b);
            a.copy_from_slice(&b[..8]);
            r[8 * i..8 * i + 8].copy_from_slice(&b[8..]);
        }
    }
    b.zeroize();
}

/// RFC 3394 wrap. `data` must be a multiple of 8 bytes and at least 16 (`DataLen`).
/// `iv` defaults to A6A6A6A6A6A6A6A6.
pub fn aes_kw_wrap(kek: &[u8], data: &[u8], iv: Option<&[u8; 8]>) -> CryptoResult<Vec<u8>> {
    let cipher = BlockCipher::aes(kek)?;
    if data.len() % 8 != 0 || data.len() < 16 {
        return Err(CryptoError::DataLen);
    }
    let mut a = *iv.unwrap_or(&KW_DEFAULT_IV);
    let mut out = vec![0u8; data.len() + 8];
    out[8..].copy_from_slice(data);
    wrap_core(&cipher, &mut a, &mut out[8..]);
    out[..8].copy_from_slice(&a);
    Ok(out)
}

/// RFC 3394 unwrap. `wrapped` must be a multiple of 8 bytes and at least 24
/// (`EncryptedDataLen`); a failed integrity check is `EncryptedDataInvalid`.
pub fn aes_kw_unwrap(
    kek: &[u8],
    wrapped: &[u8],
    iv: Option<&[u8; 8]>,
) -> CryptoResult<SecretBytes> {
    let cipher = BlockCipher::aes(kek)?;
    if wrapped.len() % 8 != 0 || wrapped.len() < 24 {
        return Err(CryptoError::EncryptedDataLen);
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&wrapped[..8]);
    let mut r = SecretBytes::from_slice(&wrapped[8..]);
    unwrap_core(&cipher, &mut a, r.expose_mut());
    let ok = ct_eq(&a, iv.unwrap_or(&KW_DEFAULT_IV));
    a.zeroize();
    if ok {
        Ok(r)
    } else {
        Err(CryptoError::EncryptedDataInvalid)
    }
}

/// RFC 5649 wrap of any `data` of 1 ..= 2^32-1 bytes (else `DataLen`). `aiv` is the
/// 32-bit constant of the alternative IV (default A65959A6); the message length
/// indicator follows it.
pub fn aes_kwp_wrap(kek: &[u8], data: &[u8], aiv: Option<&[u8; 4]>) -> CryptoResult<Vec<u8>> {
    let cipher = BlockCipher::aes(kek)?;
    let mli = u32::try_from(data.len()).map_err(|_| CryptoError::DataLen)?;
    if data.is_empty() {
        return Err(CryptoError::DataLen);
    }
    let mut a = [0u8; 8];
    a[..4].copy_from_slice(aiv.unwrap_or(&KWP_DEFAULT_AIV));
    a[4..].copy_from_slice(&mli.to_be_bytes());
    let padded = data.len().div_ceil(8) * 8;
    let mut out = vec![0u8; padded + 8];
    if padded == 8 {
        // §4.1 step 2: a single AES block, ECB.
        out[..8].copy_from_slice(&a);
        out[8..8 + data.len()].copy_from_slice(data);
        cipher.encrypt_block_in_place(&mut out);
    } else {
        out[8..8 + data.len()].copy_from_slice(data);
        wrap_core(&cipher, &mut a, &mut out[8..]);
        out[..8].copy_from_slice(&a);
    }
    Ok(out)
}

/// RFC 5649 unwrap. `wrapped` must be a multiple of 8 bytes and at least 16
/// (`EncryptedDataLen`); a wrong AIV, length indicator or padding is
/// `EncryptedDataInvalid`.
pub fn aes_kwp_unwrap(
    kek: &[u8],
    wrapped: &[u8],
    aiv: Option<&[u8; 4]>,
) -> CryptoResult<SecretBytes> {
    let cipher = BlockCipher::aes(kek)?;
    if wrapped.len() % 8 != 0 || wrapped.len() < 16 {
        return Err(CryptoError::EncryptedDataLen);
    }
    let mut a = [0u8; 8];
    let mut r = if wrapped.len() == 16 {
        let mut block = SecretBytes::from_slice(wrapped);
        cipher.decrypt_block_in_place(block.expose_mut());
        a.copy_from_slice(&block.expose()[..8]);
        SecretBytes::from_slice(&block.expose()[8..])
    } else {
        a.copy_from_slice(&wrapped[..8]);
        let mut r = SecretBytes::from_slice(&wrapped[8..]);
        unwrap_core(&cipher, &mut a, r.expose_mut());
        r
    };
    let n8 = r.len();
    let mut mli_bytes = [0u8; 4];
    mli_bytes.copy_from_slice(&a[4..]);
    let mli = u32::from_be_bytes(mli_bytes) as usize;
    let mut bad = u8::from(!ct_eq(&a[..4], aiv.unwrap_or(&KWP_DEFAULT_AIV)));
    // §3: 8*(n-1) < MLI <= 8*n.
    let in_range = mli <= n8 && mli + 8 > n8;
    bad |= u8::from(!in_range);
    let pad_start = if in_range { mli } else { n8 };
    for &p in &r.expose()[pad_start..] {
        bad |= u8::from(p != 0);
    }
    a.zeroize();
    if bad != 0 {
        return Err(CryptoError::EncryptedDataInvalid);
    }
    let out = SecretBytes::from_slice(&r.expose()[..mli]);
    r.expose_mut().zeroize();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::digest::tests::{hex, TestRng};

    const KEK256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    /// RFC 3394 §4.1, §4.2, §4.3, §4.6 (checked also with Python `cryptography`).
    #[test]
    fn rfc3394_vectors() {
        let kek = hex(KEK256);
        let d128 = hex("00112233445566778899aabbccddeeff");
        let d256 = hex("00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f");
        for (kek_len, data, want) in [
            (
                16,
                &d128,
                "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5",
            ),
            (
                24,
                &d128,
                "96778b25ae6ca435f92b5b97c050aed2468ab8a17ad84e5d",
            ),
            (
                32,
                &d128,
                "64e8c3f9ce0f5ba263e9777905818a2a93c8191e7d6e8ae7",
            ),
            (
                32,
                &d256,
                "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21",
            ),
        ] {
            let w = aes_kw_wrap(&kek[..kek_len], data, None).expect("wrap");
            assert_eq!(w, hex(want));
            let u = aes_kw_unwrap(&kek[..kek_len], &w, None).expect("unwrap");
            assert_eq!(u.expose(), &data[..]);
        }
    }

    /// RFC 5649 §6 (192-bit KEK, 20- and 7-byte keys) and a 3-byte key from Python
    /// `cryptography`'s aes_key_wrap_with_padding.
    #[test]
    fn rfc5649_vectors() {
        let kek = hex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
        for (data, want) in [
            (
                "c37b7e6492584340bed12207808941155068f738",
                "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
            ),
            ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
            ("466f72", "4a1e89f7e60fd17e50ed46f7671131ad"),
        ] {
            let w = aes_kwp_wrap(&kek, &hex(data), None).expect("wrap");
            assert_eq!(w, hex(want));
            assert_eq!(
                aes_kwp_unwrap(&kek, &w, None).expect("unwrap").expose(),
                &hex(data)[..]
            );
        }
    }

    #[test]
    fn custom_ivs_roundtrip_and_must_match() {
        let mut rng = TestRng(5);
        let kek = rng.bytes(32);
        let iv = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let data = rng.bytes(32);
        let w = aes_kw_wrap(&kek, &data, Some(&iv)).expect("wrap");
        assert_ne!(w, aes_kw_wrap(&kek, &data, None).expect("wrap"));
        assert_eq!(
            aes_kw_unwrap(&kek, &w, Some(&iv)).expect("unwrap").expose(),
            &data[..]
        );
        assert_eq!(
            aes_kw_unwrap(&kek, &w, None).err(),
            Some(CryptoError::EncryptedDataInvalid)
        );
        let aiv = [9u8, 9, 9, 9];
        for len in [1usize, 8, 9, 31] {
            let d = rng.bytes(len);
            let w = aes_kwp_wrap(&kek, &d, Some(&aiv)).expect("wrap");
            assert_eq!(
                aes_kwp_unwrap(&kek, &w, Some(&aiv))
                    .expect("unwrap")
                    .expose(),
                &d[..]
            );
            assert_eq!(
                aes_kwp_unwrap(&kek, &w, None).err(),
                Some(CryptoError::EncryptedDataInvalid)
            );
        }
    }

    #[test]
    fn kwp_all_lengths_roundtrip() {
        let mut rng = TestRng(77);
        let kek = rng.bytes(16);
        for len in 1..=100 {
            let d = rng.bytes(len);
            let w = aes_kwp_wrap(&kek, &d, None).expect("wrap");
            assert_eq!(w.len(), len.div_ceil(8) * 8 + 8);
            assert_eq!(
                aes_kwp_unwrap(&kek, &w, None).expect("unwrap").expose(),
                &d[..]
            );
        }
    }

    #[test]
    fn errors() {
        let kek = [3u8; 16];
        for len in [0usize, 8, 15, 17, 23] {
            assert_eq!(
                aes_kw_wrap(&kek, &vec![0u8; len], None).err(),
                Some(CryptoError::DataLen)
            );
        }
        assert_eq!(
            aes_kwp_wrap(&kek, &[], None).err(),
            Some(CryptoError::DataLen)
        );
        for len in [0usize, 8, 16, 23, 25] {
            assert_eq!(
                aes_kw_unwrap(&kek, &vec![0u8; len], None).err(),
                Some(CryptoError::EncryptedDataLen),
                "kw {len}"
            );
        }
        for len in [0usize, 8, 15, 17] {
            assert_eq!(
                aes_kwp_unwrap(&kek, &vec![0u8; len], None).err(),
                Some(CryptoError::EncryptedDataLen),
                "kwp {len}"
            );
        }
        // Corruption anywhere fails the integrity check.
        let w = aes_kw_wrap(&kek, &[5u8; 24], None).expect("wrap");
        for i in [0usize, 12, w.len() - 1] {
            let mut bad = w.clone();
            bad[i] ^= 1;
            assert_eq!(
                aes_kw_unwrap(&kek, &bad, None).err(),
                Some(CryptoError::EncryptedDataInvalid)
            );
        }
        for data_len in [5usize, 20] {
            let w = aes_kwp_wrap(&kek, &vec![6u8; data_len], None).expect("wrap");
            let mut bad = w.clone();
            bad[3] ^= 1;
            assert_eq!(
                aes_kwp_unwrap(&kek, &bad, None).err(),
                Some(CryptoError::EncryptedDataInvalid)
            );
        }
        // A KW (not KWP) wrapping is not a valid KWP wrapping.
        let w = aes_kw_wrap(&kek, &[5u8; 16], None).expect("wrap");
        assert_eq!(
            aes_kwp_unwrap(&kek, &w, None).err(),
            Some(CryptoError::EncryptedDataInvalid)
        );
        // Bad padding / MLI: build wrappings with a forged length indicator.
        let mut a = [0u8; 8];
        a[..4].copy_from_slice(&KWP_DEFAULT_AIV);
        for (mli, r) in [
            (3u32, [1u8, 2, 3, 9, 0, 0, 0, 0]),
            (0, [0u8; 8]),
            (9, [1u8; 8]),
        ] {
            let mut block = [0u8; 16];
            block[..4].copy_from_slice(&a[..4]);
            block[4..8].copy_from_slice(&mli.to_be_bytes());
            block[8..].copy_from_slice(&r);
            let c = BlockCipher::aes(&kek).expect("aes");
            c.encrypt_blocks(&mut block).expect("ecb");
            assert_eq!(
                aes_kwp_unwrap(&kek, &block, None).err(),
                Some(CryptoError::EncryptedDataInvalid),
                "mli {mli}"
            );
        }
        // KEK size.
        assert_eq!(
            aes_kw_wrap(&[0u8; 10], &[0u8; 16], None).err(),
            Some(CryptoError::KeySize)
        );
        assert_eq!(
            aes_kwp_unwrap(&[0u8; 10], &[0u8; 16], None).err(),
            Some(CryptoError::KeySize)
        );
    }
}

//! AES-GCM (NIST SP 800-38D), one-shot, on AWS-LC's `EVP_AEAD` (AES-NI/VAES + CLMUL
//! assembly). Any IV length from 1 byte (non-96-bit IVs derive J0 with GHASH); tags of
//! 4..=16 bytes.

use std::sync::OnceLock;

use super::lc;
use super::{CryptoError, CryptoResult};
use crate::secure_mem::SecretBytes;

/// SP 800-38D §5.2.1.1: len(P) <= 2^39 - 256 bits.
const MAX_PLAINTEXT: u64 = (1 << 36) - 32;
const MIN_TAG: usize = 4;
const MAX_TAG: usize = 16;

/// A prepared AES-GCM key (key schedule and GHASH table), reused across calls and
/// shareable across threads.
pub struct GcmKey {
    /// Context for 16-byte tags; sealing always uses it and truncates.
    full: lc::GcmCtx,
    /// Contexts for opening with a truncated tag (4..=15 bytes), made on first use.
    truncated: [OnceLock<lc::GcmCtx>; MAX_TAG - MIN_TAG],
    /// Kept only to build `truncated` contexts lazily.
    key: SecretBytes,
}

impl std::fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcmKey")
            .field("key_len", &self.key.len())
            .finish_non_exhaustive()
    }
}

fn check_params(iv: &[u8], tag_len: usize) -> CryptoResult<()> {
    if iv.is_empty() || u32::try_from(iv.len()).is_err() {
        return Err(CryptoError::InvalidParameter("GCM IV length"));
    }
    if !(MIN_TAG..=MAX_TAG).contains(&tag_len) {
        return Err(CryptoError::InvalidParameter("GCM tag length"));
    }
    Ok(())
}

impl GcmKey {
    /// AES-128/192/256 (`key` of 16, 24 or 32 bytes, else `KeySize`).
    pub fn new(key: &[u8]) -> CryptoResult<GcmKey> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(CryptoError::KeySize);
        }
        let full = lc::GcmCtx::new(key, MAX_TAG).ok_or(CryptoError::Internal("GCM key setup"))?;
        Ok(GcmKey {
            full,
            truncated: Default::default(),
            key: SecretBytes::from_slice(key),
        })
    }

    fn ctx_for(&self, tag_len: usize) -> CryptoResult<&lc::GcmCtx> {
        if tag_len == MAX_TAG {
            return Ok(&self.full);
        }
        let slot = self
            .truncated
            .get(tag_len.wrapping_sub(MIN_TAG))
            .ok_or(CryptoError::InvalidParameter("GCM tag length"))?;
        if let Some(ctx) = slot.get() {
            return Ok(ctx);
        }
        let ctx = lc::GcmCtx::new(self.key.expose(), tag_len)
            .ok_or(CryptoError::Internal("GCM key setup"))?;
        // A racing thread may have set it first; either context is equivalent.
        Ok(slot.get_or_init(|| ctx))
    }

    /// Encrypts and authenticates: returns ciphertext || tag (`tag_len` bytes).
    pub fn seal(
        &self,
        iv: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        tag_len: usize,
    ) -> CryptoResult<Vec<u8>> {
        check_params(iv, tag_len)?;
        if plaintext.len() as u64 > MAX_PLAINTEXT {
            return Err(CryptoError::DataLen);
        }
        let mut out = self
            .full
            .seal(iv, aad, plaintext)
            .ok_or(CryptoError::Internal("GCM seal"))?;
        out.truncate(plaintext.len() + tag_len);
        Ok(out)
    }

    /// Verifies and decrypts ciphertext || tag. Authentication failure is
    /// `EncryptedDataInvalid` (and no plaintext is returned); input shorter than the
    /// tag is `EncryptedDataLen`.
    pub fn open(
        &self,
        iv: &[u8],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
        tag_len: usize,
    ) -> CryptoResult<Vec<u8>> {
        check_params(iv, tag_len)?;
        if ciphertext_and_tag.len() < tag_len {
            return Err(CryptoError::EncryptedDataLen);
        }
        let ct_len = ciphertext_and_tag.len() - tag_len;
        if ct_len as u64 > MAX_PLAINTEXT {
            return Err(CryptoError::EncryptedDataLen);
        }
        let ctx = self.ctx_for(tag_len)?;
        ctx.open(iv, aad, ciphertext_and_tag)
            .ok_or(CryptoError::EncryptedDataInvalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::digest::tests::{hex, TestRng};

    const K: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
    const P: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                     1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
    const A: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    const IV60: &str = "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728\
                        c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b";

    /// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 1, 5
    /// (64-bit IV), 6 (480-bit IV, AES-128), 12 (480-bit IV, AES-192), 16 (96-bit IV,
    /// AES-256) and 18 (480-bit IV, AES-256); values re-checked with Python
    /// `cryptography` (OpenSSL).
    #[test]
    fn mcgrew_viega_vectors() {
        let k = hex(K);
        let cases: [(usize, &str, &str, &str); 5] = [
            (
                16,
                "cafebabefacedbad",
                "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423\
                 73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
                "3612d2e79e3b0785561be14aaca2fccb",
            ),
            (
                16,
                IV60,
                "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7\
                 01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
                "619cc5aefffe0bfa462af43c1699d050",
            ),
            (
                24,
                IV60,
                "d27e88681ce3243c4830165a8fdcf9ff1de9a1d8e6b447ef6ef7b79828666e45\
                 81e79012af34ddd9e2f037589b292db3e67c036745fa22e7e9b7373b",
                "dcf566ff291c25bbb8568fc3d376a6d9",
            ),
            (
                32,
                "cafebabefacedbaddecaf888",
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
                 8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                "76fc6ece0f4e1768cddf8853bb2d551b",
            ),
            (
                32,
                IV60,
                "5a8def2f0c9e53f1f75d7853659e2a20eeb2b22aafde6419a058ab4f6f746bf4\
                 0fc0c3b780f244452da3ebf1c5d82cdea2418997200ef82e44ae7e3f",
                "a44a8266ee1c8eb0c8b5d4cf5ae9f19a",
            ),
        ];
        for (klen, iv, c, t) in cases {
            let key = GcmKey::new(&k[..klen]).expect("key");
            let mut want = hex(c);
            want.extend_from_slice(&hex(t));
            let got = key.seal(&hex(iv), &hex(A), &hex(P), 16).expect("seal");
            assert_eq!(got, want, "klen {klen} iv {iv}");
            assert_eq!(key.open(&hex(iv), &hex(A), &got, 16).expect("open"), hex(P));
            // Truncated tag (12 bytes) is the prefix and opens with tag_len 12.
            let short = key.seal(&hex(iv), &hex(A), &hex(P), 12).expect("seal");
            assert_eq!(short[..], want[..want.len() - 4]);
            assert_eq!(
                key.open(&hex(iv), &hex(A), &short, 12).expect("open"),
                hex(P)
            );
        }
        // Test case 1: zero key, empty plaintext, 96-bit zero IV.
        let key = GcmKey::new(&[0u8; 16]).expect("key");
        assert_eq!(
            key.seal(&[0u8; 12], &[], &[], 16).expect("seal"),
            hex("58e2fccefa7e3061367f1d57a4e7455a")
        );
    }

    /// A 128-byte IV and 17-byte plaintext, from Python `cryptography`.
    #[test]
    fn long_iv_vector() {
        let key = GcmKey::new(&hex(K)).expect("key");
        let iv: Vec<u8> = (0..128u8).collect();
        let got = key.seal(&iv, &[], &hex(P)[..17], 16).expect("seal");
        assert_eq!(
            got,
            hex("a335bc530eeb97f2df9586c2ac67a9015c64843cf6acff4067a57a76ac814f55a1")
        );
    }

    #[test]
    fn every_iv_and_tag_length_roundtrips() {
        let mut rng = TestRng(31337);
        let key = GcmKey::new(&rng.bytes(32)).expect("key");
        for iv_len in 1..=256 {
            let iv = rng.bytes(iv_len);
            let tag_len = MIN_TAG + iv_len % (MAX_TAG - MIN_TAG + 1);
            let n = rng.below(100);
            let pt = rng.bytes(n);
            let n = rng.below(40);
            let aad = rng.bytes(n);
            let sealed = key.seal(&iv, &aad, &pt, tag_len).expect("seal");
            assert_eq!(sealed.len(), pt.len() + tag_len);
            assert_eq!(key.open(&iv, &aad, &sealed, tag_len).expect("open"), pt);
            // Distinct IVs give distinct tags (J0 depends on every IV byte).
            let mut iv2 = iv.clone();
            iv2[iv_len - 1] ^= 1;
            assert_eq!(
                key.open(&iv2, &aad, &sealed, tag_len),
                Err(CryptoError::EncryptedDataInvalid)
            );
        }
    }

    #[test]
    fn errors() {
        let key = GcmKey::new(&[7u8; 16]).expect("key");
        let iv = [1u8; 12];
        let sealed = key.seal(&iv, b"aad", b"hello", 16).expect("seal");
        // Tampered ciphertext, tag, AAD.
        for i in [0usize, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert_eq!(
                key.open(&iv, b"aad", &bad, 16),
                Err(CryptoError::EncryptedDataInvalid)
            );
        }
        assert_eq!(
            key.open(&iv, b"aaD", &sealed, 16),
            Err(CryptoError::EncryptedDataInvalid)
        );
        // Wrong tag length interpretation fails authentication.
        assert_eq!(
            key.open(&iv, b"aad", &sealed, 12),
            Err(CryptoError::EncryptedDataInvalid)
        );
        // Shorter than the tag.
        assert_eq!(
            key.open(&iv, b"aad", &sealed[..15], 16),
            Err(CryptoError::EncryptedDataLen)
        );
        assert_eq!(
            key.open(&iv, b"aad", &[], 4),
            Err(CryptoError::EncryptedDataLen)
        );
        // Exactly a tag: empty plaintext.
        let empty = key.seal(&iv, b"", b"", 4).expect("seal");
        assert_eq!(key.open(&iv, b"", &empty, 4), Ok(vec![]));
        // Parameters.
        for t in [0usize, 3, 17] {
            assert!(matches!(
                key.seal(&iv, b"", b"x", t),
                Err(CryptoError::InvalidParameter(_))
            ));
            assert!(matches!(
                key.open(&iv, b"", &[0u8; 32], t),
                Err(CryptoError::InvalidParameter(_))
            ));
        }
        assert!(matches!(
            key.seal(&[], b"", b"x", 16),
            Err(CryptoError::InvalidParameter(_))
        ));
        assert!(matches!(
            key.open(&[], b"", &[0u8; 16], 16),
            Err(CryptoError::InvalidParameter(_))
        ));
        for len in [0usize, 8, 15, 20, 33] {
            assert!(matches!(
                GcmKey::new(&vec![0u8; len]),
                Err(CryptoError::KeySize)
            ));
        }
        assert!(!format!("{key:?}").contains("7, 7"));
    }

    /// The key-holding and streaming types can be shared and sent across threads, and
    /// their `Debug` output shows no key bytes.
    #[test]
    fn types_are_send_sync_and_redacted() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<GcmKey>();
        send_sync::<crate::crypto::block::BlockCipher>();
        send_sync::<crate::crypto::block::CipherStream>();
        send_sync::<crate::crypto::mac::Hmac>();
        send_sync::<crate::crypto::mac::Cmac>();
        send_sync::<crate::crypto::digest::Hasher>();
        let key = [0xabu8; 32];
        let shown = [
            format!("{:?}", GcmKey::new(&key).expect("key")),
            format!(
                "{:?}",
                crate::crypto::block::BlockCipher::aes(&key).expect("key")
            ),
            format!(
                "{:?}",
                crate::crypto::mac::Hmac::new(crate::crypto::digest::HashAlg::Sha256, &key)
            ),
        ];
        for s in shown {
            assert!(
                !s.contains("171") && !s.to_lowercase().contains("abab"),
                "{s}"
            );
        }
    }

    #[test]
    fn shared_across_threads() {
        let key = std::sync::Arc::new(GcmKey::new(&[9u8; 32]).expect("key"));
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let key = key.clone();
                std::thread::spawn(move || {
                    for i in 0..200u32 {
                        let iv = [t; 12];
                        let pt = i.to_be_bytes();
                        let tag_len = 4 + (i as usize % 13);
                        let s = key.seal(&iv, &[], &pt, tag_len).expect("seal");
                        assert_eq!(key.open(&iv, &[], &s, tag_len).expect("open"), pt);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
    }
}

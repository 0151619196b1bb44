//! MACs: HMAC (RFC 2104, FIPS 198-1) over every `HashAlg`, and CMAC (NIST SP 800-38B)
//! over AES and Triple-DES.

use std::sync::Arc;

use zeroize::Zeroize;

use super::block::BlockCipher;
use super::digest::HashAlg;
use super::lc;

/// A keyed, running HMAC. Any key length, including 0. `Clone` copies the state.
#[derive(Clone)]
pub struct Hmac {
    alg: HashAlg,
    ctx: lc::HmacCtx,
}

impl Hmac {
    pub fn new(alg: HashAlg, key: &[u8]) -> Hmac {
        Hmac {
            alg,
            ctx: lc::HmacCtx::new(alg, key),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.ctx.update(data);
    }

    /// The full-length MAC (`output_len()` bytes).
    pub fn finish(self) -> Vec<u8> {
        let mut out = vec![0u8; self.alg.output_len()];
        self.finish_into(&mut out);
        out
    }

    /// Writes the MAC into `out`, exactly `output_len()` bytes (for secret outputs such
    /// as HKDF blocks).
    pub(crate) fn finish_into(self, out: &mut [u8]) {
        assert_eq!(out.len(), self.alg.output_len(), "HMAC output buffer size");
        self.ctx.finish_into(out);
    }

    pub fn output_len(&self) -> usize {
        self.alg.output_len()
    }

    pub fn alg(&self) -> HashAlg {
        self.alg
    }
}

impl std::fmt::Debug for Hmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hmac")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// One-shot HMAC.
pub fn hmac(alg: HashAlg, key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; alg.output_len()];
    lc::hmac_into(alg, key, data, &mut out);
    out
}

/// A running CMAC (NIST SP 800-38B) over a 16-byte (AES) or 8-byte (3DES) block cipher.
/// The cipher's key schedule is copied in, so the `Cmac` does not borrow the cipher.
/// Subkeys, chaining value and buffered input are wiped on drop.
#[derive(Clone)]
pub struct Cmac {
    cipher: Arc<BlockCipher>,
    bs: usize,
    k1: [u8; 16],
    k2: [u8; 16],
    /// The CBC-MAC chaining value X.
    x: [u8; 16],
    /// Unprocessed input; the last block (even if full) stays here until `finish`.
    buf: [u8; 16],
    buf_len: usize,
}

/// Doubling in GF(2^b) as SP 800-38B §6.1 defines the subkey step: shift left by one
/// bit and, if the top bit was set, XOR R_b into the last byte (0x87 for b = 128,
/// 0x1b for b = 64).
fn dbl(block: &mut [u8]) {
    let rb = if block.len() == 16 { 0x87 } else { 0x1b };
    let carry = block[0] >> 7;
    for i in 0..block.len() {
        let next = if i + 1 < block.len() {
            block[i + 1] >> 7
        } else {
            0
        };
        block[i] = (block[i] << 1) | next;
    }
    let last = block.len() - 1;
    // Constant time: mask is 0x00 or 0xff.
    block[last] ^= rb & 0u8.wrapping_sub(carry);
}

impl Cmac {
    pub fn new(cipher: &BlockCipher) -> Cmac {
        let bs = cipher.block_size();
        let cipher = Arc::new(cipher.duplicate());
        let mut l = [0u8; 16];
        cipher.encrypt_block_in_place(&mut l[..bs]);
        let mut k1 = l;
        dbl(&mut k1[..bs]);
        let mut k2 = k1;
        dbl(&mut k2[..bs]);
        l.zeroize();
        Cmac {
            cipher,
            bs,
            k1,
            k2,
            x: [0u8; 16],
            buf: [0u8; 16],
            buf_len: 0,
        }
    }

    fn absorb_block(&mut self, block: &[u8]) {
        let bs = self.bs;
        for (x, m) in self.x[..bs].iter_mut().zip(block) {
            *x ^= m;
        }
        self.cipher.encrypt_block_in_place(&mut self.x[..bs]);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        let bs = self.bs;
        if data.is_empty() {
            return;
        }
        // Top up the buffer; if it is full and more data follows, it is not the last.
        if self.buf_len < bs {
            let take = (bs - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
        }
        if data.is_empty() {
            return;
        }
        // buf is full and more data follows.
        let block = self.buf;
        self.absorb_block(&block[..bs]);
        self.buf_len = 0;
        // Absorb all full blocks except one that may be the last.
        while data.len() > bs {
            let (head, tail) = data.split_at(bs);
            self.absorb_block(head);
            data = tail;
        }
        self.buf[..data.len()].copy_from_slice(data);
        self.buf_len = data.len();
    }

    /// The full-block MAC (`output_len()` bytes; the caller truncates for CMAC_GENERAL).
    pub fn finish(mut self) -> Vec<u8> {
        let bs = self.bs;
        let mut last = [0u8; 16];
        if self.buf_len == bs {
            for ((l, b), k) in last.iter_mut().zip(&self.buf).zip(&self.k1).take(bs) {
                *l = b ^ k;
            }
        } else {
            last[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
            last[self.buf_len] = 0x80;
            for (l, k) in last.iter_mut().zip(&self.k2).take(bs) {
                *l ^= k;
            }
        }
        self.absorb_block(&last[..bs]);
        last.zeroize();
        self.x[..bs].to_vec()
    }

    pub fn output_len(&self) -> usize {
        self.bs
    }
}

impl Drop for Cmac {
    fn drop(&mut self) {
        self.k1.zeroize();
        self.k2.zeroize();
        self.x.zeroize();
        self.buf.zeroize();
    }
}

impl std::fmt::Debug for Cmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cmac")
            .field("block_size", &self.bs)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::digest::tests::{hex, TestRng};

    /// RFC 4231 §4.2-4.8 test cases 1-4, 6, 7 (case 5 is the truncated one, checked as a
    /// prefix).
    #[test]
    fn rfc4231_hmac_sha2() {
        let long_key = vec![0xaau8; 131];
        let cases: Vec<(Vec<u8>, Vec<u8>, [&str; 4])> = vec![
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                [
                    "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                     faea9ea9076ede7f4af152e8b2fa9cb6",
                    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                     daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
                ],
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                [
                    "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                     8e2240ca5e69e2c78b3239ecfab21649",
                    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                     9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
                ],
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                [
                    "7fb3cb3588c6c1f6ffa9694d7d6ad2649365b0c1f65d69d1ec8333ea",
                    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
                    "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b\
                     2a5ab39dc13814b94e3ab6e101a34f27",
                    "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39\
                     bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
                ],
            ),
            (
                hex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                [
                    "6c11506874013cac6a2abc1bb382627cec6a90d86efc012de7afec5a",
                    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
                    "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e\
                     6801dd23c4a7d679ccf8a386c674cffb",
                    "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db\
                     a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
                ],
            ),
            (
                long_key.clone(),
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                [
                    "95e9a0db962095adaebe9b2d6f0dbce2d499f112f2d2b7273fa6870e",
                    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                    "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
                     0c2ef6ab4030fe8296248df163f44952",
                    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
                     6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
                ],
            ),
            (
                long_key,
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                [
                    "3a854166ac5d9f023f54d517d0b39dbd946770db9c2b95c9f6f565d1",
                    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
                    "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5\
                     a678cc31e799176d3860e6110c46523e",
                    "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944\
                     b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
                ],
            ),
        ];
        let algs = [
            HashAlg::Sha224,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ];
        for (i, (key, data, wants)) in cases.iter().enumerate() {
            for (alg, want) in algs.iter().zip(wants) {
                assert_eq!(hmac(*alg, key, data), hex(want), "case {i} {alg:?}");
            }
        }
        // Test case 5: output truncated to 128 bits.
        let key5 = vec![0x0c; 20];
        let t = hmac(HashAlg::Sha256, &key5, b"Test With Truncation");
        assert_eq!(t[..16], hex("a3b6167473100ee06e0c796c2955552b")[..]);
    }

    /// RFC 2202 §3 test case 1 (HMAC-SHA-1); HMAC-SHA3-256 and an empty key
    /// cross-checked with `openssl mac -digest SHA3-256 -macopt hexkey:...` and
    /// `openssl dgst -sha256 -hmac ''`.
    #[test]
    fn sha1_sha3_and_empty_key() {
        assert_eq!(
            hmac(HashAlg::Sha1, &[0x0b; 20], b"Hi There"),
            hex("b617318655057264e28bc0b6fb378c8ef146be00")
        );
        assert_eq!(
            hmac(HashAlg::Sha3_256, &[0x0b; 20], b"Hi There"),
            hex(HMAC_SHA3_256_HI_THERE)
        );
        assert_eq!(
            hmac(HashAlg::Sha256, b"", b"abc"),
            hex(HMAC_SHA256_EMPTY_KEY_ABC)
        );
    }

    const HMAC_SHA3_256_HI_THERE: &str =
        "ba85192310dffa96e2a3a40e69774351140bb7185e1202cdcc917589f95e16bb";
    const HMAC_SHA256_EMPTY_KEY_ABC: &str =
        "fd7adb152c05ef80dccf50a1fa4c05d5a3ec6da95575fc312ae7c5d091836351";

    #[test]
    fn hmac_streaming_and_clone() {
        let mut rng = TestRng(99);
        for alg in [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha512,
            HashAlg::Sha3_384,
        ] {
            let n = rng.below(200);
            let key = rng.bytes(n);
            let data = rng.bytes(5000);
            let want = hmac(alg, &key, &data);
            let mut m = Hmac::new(alg, &key);
            assert_eq!(m.output_len(), alg.output_len());
            let mut rest = &data[..];
            let mut fork = None;
            while !rest.is_empty() {
                let n = rng.below(700).min(rest.len());
                m.update(&rest[..n]);
                rest = &rest[n..];
                if fork.is_none() {
                    fork = Some((m.clone(), data.len() - rest.len()));
                }
            }
            if let Some((mut f, done)) = fork {
                f.update(&data[done..]);
                assert_eq!(f.finish(), want);
            }
            assert_eq!(m.finish(), want);
        }
    }

    /// RFC 4493 §4 examples (AES-128 CMAC), messages of 0, 16, 40 and 64 bytes.
    #[test]
    fn rfc4493_aes128_cmac() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let msg = hex(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
             30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
        );
        let cipher = BlockCipher::aes(&key).expect("AES key");
        for (len, want) in [
            (0, "bb1d6929e95937287fa37d129b756746"),
            (16, "070a16b46b4d4144f79bdd9dd04a287c"),
            (40, "dfa66747de9ae63030ca32611497c827"),
            (64, "51f0bebf7e3b9d92fc49741779363cfe"),
        ] {
            let mut c = Cmac::new(&cipher);
            c.update(&msg[..len]);
            assert_eq!(c.output_len(), 16);
            assert_eq!(c.finish(), hex(want), "len {len}");
        }
    }

    /// NIST SP 800-38B Appendix D.3 (AES-256) example 4 (64-byte message) and D.4
    /// (TDEA, three keys) examples 1 and 3, from the NIST "CMAC examples" document.
    #[test]
    fn sp800_38b_aes256_and_tdes() {
        let key = hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let msg = hex(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
             30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
        );
        let cipher = BlockCipher::aes(&key).expect("AES key");
        let mut c = Cmac::new(&cipher);
        c.update(&msg);
        assert_eq!(c.finish(), hex("e1992190549f6ed5696a2c056c315410"));
        let mut c = Cmac::new(&cipher);
        assert_eq!(c.clone().finish(), hex("028962f61b7bf89efc6b551f4667d983"));
        c.update(&msg[..16]);
        assert_eq!(c.finish(), hex("28a7023f452e8f82bd4bf28d8c37c35c"));

        let tkey = hex("8aa83bf8cbda10620bc1bf19fbb6cd58bc313d4a371ca8b5");
        let tdes = BlockCipher::des3(&tkey).expect("3DES key");
        // Messages of 0, 16, 20 and 32 bytes (D.4 examples 1-4). Every value here was
        // re-computed with `openssl mac -cipher DES-EDE3-CBC ... CMAC`; for the 16-byte
        // message OpenSSL gives 286d394673448197, which is used here.
        for (len, want) in [
            (0, "b7a688e122ffaf95"),
            (16, "286d394673448197"),
            (20, "743ddbe0ce2dc2ed"),
            (32, "33e6b1092400eae5"),
        ] {
            let mut c = Cmac::new(&tdes);
            assert_eq!(c.output_len(), 8);
            c.update(&msg[..len]);
            assert_eq!(c.finish(), hex(want), "TDES len {len}");
        }
    }

    #[test]
    fn cmac_streaming_matches_one_shot() {
        let mut rng = TestRng(4242);
        for key_len in [16usize, 24, 32] {
            let cipher = BlockCipher::aes(&rng.bytes(key_len)).expect("AES key");
            for total in [0usize, 1, 15, 16, 17, 32, 33, 100, 1000] {
                let data = rng.bytes(total);
                let mut one = Cmac::new(&cipher);
                one.update(&data);
                let want = one.finish();
                let mut s = Cmac::new(&cipher);
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let n = rng.below(40).min(rest.len());
                    s.update(&rest[..n]);
                    rest = &rest[n..];
                }
                assert_eq!(s.finish(), want, "key {key_len} len {total}");
            }
        }
    }
}

//! Block ciphers (AES, Triple-DES) and their confidentiality modes (NIST SP 800-38A:
//! ECB, CBC, CTR; CBC with PKCS#7 padding as PKCS#11's CKM_*_CBC_PAD), streaming.

use std::sync::Arc;

use zeroize::Zeroize;

use super::lc;
use super::{CryptoError, CryptoResult};

enum Engine {
    Aes(lc::AesKey),
    Des3(lc::Des3Key),
}

/// An expanded block-cipher key. `Send + Sync`; hold it in an `Arc` and share it.
/// The key schedules live in AWS-LC-allocated memory and are wiped on drop.
pub struct BlockCipher {
    engine: Engine,
    key_len: usize,
}

impl std::fmt::Debug for BlockCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alg = if self.is_aes() { "AES" } else { "DES3" };
        f.debug_struct("BlockCipher")
            .field("alg", &alg)
            .field("key_len", &self.key_len)
            .finish_non_exhaustive()
    }
}

impl BlockCipher {
    /// AES-128/192/256 (`key` of 16, 24 or 32 bytes, else `KeySize`).
    pub fn aes(key: &[u8]) -> CryptoResult<BlockCipher> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(CryptoError::KeySize);
        }
        let k = lc::AesKey::new(key).ok_or(CryptoError::Internal("AES key setup"))?;
        Ok(BlockCipher {
            engine: Engine::Aes(k),
            key_len: key.len(),
        })
    }

    /// Triple-DES EDE: 24 bytes (K1 K2 K3) or 16 bytes (two-key, K3 = K1). Parity bits
    /// are ignored.
    pub fn des3(key: &[u8]) -> CryptoResult<BlockCipher> {
        let mut full = [0u8; 24];
        match key.len() {
            24 => full.copy_from_slice(key),
            16 => {
                full[..16].copy_from_slice(key);
                full[16..].copy_from_slice(&key[..8]);
            }
            _ => return Err(CryptoError::KeySize),
        }
        let k = lc::Des3Key::new(&full);
        full.zeroize();
        Ok(BlockCipher {
            engine: Engine::Des3(k),
            key_len: key.len(),
        })
    }

    /// A second copy of the key schedule (for holders that cannot borrow, e.g. CMAC).
    pub(crate) fn duplicate(&self) -> BlockCipher {
        let engine = match &self.engine {
            Engine::Aes(k) => Engine::Aes(k.duplicate()),
            Engine::Des3(k) => Engine::Des3(k.duplicate()),
        };
        BlockCipher {
            engine,
            key_len: self.key_len,
        }
    }

    pub fn block_size(&self) -> usize {
        match self.engine {
            Engine::Aes(_) => 16,
            Engine::Des3(_) => 8,
        }
    }

    pub fn is_aes(&self) -> bool {
        matches!(self.engine, Engine::Aes(_))
    }

    /// Key length in bytes as given to the constructor.
    pub fn key_len(&self) -> usize {
        self.key_len
    }

    /// ECB encryption in place; `buf.len()` must be a multiple of the block size
    /// (else `DataLen`).
    pub fn encrypt_blocks(&self, buf: &mut [u8]) -> CryptoResult<()> {
        if buf.len() % self.block_size() != 0 {
            return Err(CryptoError::DataLen);
        }
        self.ecb_in_place(true, buf);
        Ok(())
    }

    /// ECB decryption in place; `buf.len()` must be a multiple of the block size
    /// (else `DataLen`).
    pub fn decrypt_blocks(&self, buf: &mut [u8]) -> CryptoResult<()> {
        if buf.len() % self.block_size() != 0 {
            return Err(CryptoError::DataLen);
        }
        self.ecb_in_place(false, buf);
        Ok(())
    }

    /// Encrypts exactly one block in place (`block.len() == block_size()`).
    pub(crate) fn encrypt_block_in_place(&self, block: &mut [u8]) {
        debug_assert_eq!(block.len(), self.block_size());
        self.ecb_in_place(true, block);
    }

    /// Decrypts exactly one block in place (`block.len() == block_size()`).
    pub(crate) fn decrypt_block_in_place(&self, block: &mut [u8]) {
        debug_assert_eq!(block.len(), self.block_size());
        self.ecb_in_place(false, block);
    }

    fn ecb_in_place(&self, encrypt: bool, buf: &mut [u8]) {
        match &self.engine {
            Engine::Aes(k) => k.ecb_in_place(encrypt, buf),
            Engine::Des3(k) => k.ecb_in_place(encrypt, buf),
        }
    }

    /// ECB from `input` to `out` (equal lengths, whole blocks).
    fn ecb(&self, encrypt: bool, input: &[u8], out: &mut [u8]) {
        match &self.engine {
            Engine::Aes(k) => k.ecb(encrypt, input, out),
            Engine::Des3(k) => {
                out.copy_from_slice(input);
                k.ecb_in_place(encrypt, out);
            }
        }
    }

    /// CBC from `input` to `out` (equal lengths, whole blocks); `iv[..block_size]` is
    /// the chaining value, updated.
    fn cbc(&self, encrypt: bool, iv: &mut [u8; 16], input: &[u8], out: &mut [u8]) {
        match &self.engine {
            Engine::Aes(k) => k.cbc(encrypt, iv, input, out),
            Engine::Des3(k) => {
                let mut iv8 = [0u8; 8];
                iv8.copy_from_slice(&iv[..8]);
                k.cbc(encrypt, &mut iv8, input, out);
                iv[..8].copy_from_slice(&iv8);
            }
        }
    }
}

/// AES-encrypts one block under a key used only for this (key check values).
pub fn aes_encrypt_block_once(key: &[u8], block: &mut [u8; 16]) -> CryptoResult<()> {
    if !matches!(key.len(), 16 | 24 | 32) {
        return Err(CryptoError::KeySize);
    }
    if lc::aes_encrypt_one_block(key, block) {
        Ok(())
    } else {
        Err(CryptoError::Internal("AES key setup"))
    }
}

/// Which way a stream runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

/// A confidentiality mode with its parameters.
#[derive(Clone, Debug)]
pub enum Mode {
    Ecb,
    Cbc {
        iv: Vec<u8>,
    },
    /// CBC with PKCS#7 padding (PKCS#11 CKM_AES_CBC_PAD / CKM_DES3_CBC_PAD).
    CbcPad {
        iv: Vec<u8>,
    },
    /// AES only. `counter_bits` (1..=128) low-order bits of `counter_block` are the
    /// counter (PKCS#11 CK_AES_CTR_PARAMS.ulCounterBits); the counter must not wrap.
    Ctr {
        counter_block: [u8; 16],
        counter_bits: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ecb,
    Cbc,
    CbcPad,
    Ctr,
}

/// A multi-part encryption or decryption. `Clone` snapshots the whole state, so a
/// caller can retry after a too-small output buffer. Buffered data and keystream are
/// wiped on drop.
#[derive(Clone)]
pub struct CipherStream {
    cipher: Arc<BlockCipher>,
    kind: Kind,
    dir: Direction,
    bs: usize,
    /// CBC chaining value, or the CTR counter block.
    iv: [u8; 16],
    /// Block modes: input not yet processed (< bs, or exactly bs for CBC-PAD decrypt,
    /// which holds the last block back for `finish`).
    buf: [u8; 16],
    buf_len: usize,
    /// CTR: keystream of the current block and how much of it is used.
    ecount: [u8; 16],
    ecount_used: u32,
    /// CTR: keystream bytes still available before the counter would wrap.
    ctr_bytes_left: u128,
}

impl std::fmt::Debug for CipherStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CipherStream")
            .field("mode", &self.kind)
            .field("dir", &self.dir)
            .field("buffered", &self.buf_len)
            .finish_non_exhaustive()
    }
}

impl Drop for CipherStream {
    fn drop(&mut self) {
        self.buf.zeroize();
        self.ecount.zeroize();
        self.iv.zeroize();
    }
}

const OUT_TOO_SMALL: CryptoError = CryptoError::InvalidParameter("output buffer too small");

impl CipherStream {
    pub fn new(cipher: Arc<BlockCipher>, mode: Mode, dir: Direction) -> CryptoResult<CipherStream> {
        let bs = cipher.block_size();
        let mut iv = [0u8; 16];
        let mut ctr_bytes_left = 0u128;
        let kind = match mode {
            Mode::Ecb => Kind::Ecb,
            Mode::Cbc { iv: v } | Mode::CbcPad { iv: v } if v.len() != bs => {
                return Err(CryptoError::InvalidParameter(
                    "IV length must equal the block size",
                ));
            }
            Mode::Cbc { iv: v } => {
                iv[..bs].copy_from_slice(&v);
                Kind::Cbc
            }
            Mode::CbcPad { iv: v } => {
                iv[..bs].copy_from_slice(&v);
                Kind::CbcPad
            }
            Mode::Ctr {
                counter_block,
                counter_bits,
            } => {
                if !cipher.is_aes() {
                    return Err(CryptoError::Unsupported("CTR mode is AES only"));
                }
                if !(1..=128).contains(&counter_bits) {
                    return Err(CryptoError::InvalidParameter(
                        "CTR counter bits must be 1..=128",
                    ));
                }
                iv = counter_block;
                let whole = u128::from_be_bytes(counter_block);
                let blocks_left = if counter_bits == 128 {
                    // 2^128 - counter values remain; more than any input can use.
                    u128::MAX
                } else {
                    let max = (1u128 << counter_bits) - 1;
                    max - (whole & max) + 1
                };
                ctr_bytes_left = blocks_left.saturating_mul(16);
                Kind::Ctr
            }
        };
        Ok(CipherStream {
            cipher,
            kind,
            dir,
            bs,
            iv,
            buf: [0u8; 16],
            buf_len: 0,
            ecount: [0u8; 16],
            ecount_used: 0,
            ctr_bytes_left,
        })
    }

    fn holds_last_block(&self) -> bool {
        self.kind == Kind::CbcPad && self.dir == Direction::Decrypt
    }

    /// Exactly how many bytes the next `update` with `input_len` bytes will output.
    pub fn update_len(&self, input_len: usize) -> usize {
        if self.kind == Kind::Ctr {
            return input_len;
        }
        let total = self.buf_len.saturating_add(input_len);
        let mut blocks = total / self.bs;
        if self.holds_last_block() && total % self.bs == 0 && blocks > 0 {
            blocks -= 1;
        }
        blocks * self.bs
    }

    /// Processes `input`, writing exactly `update_len(input.len())` bytes to `out`
    /// (which must be at least that long). On error nothing changes.
    pub fn update(&mut self, input: &[u8], out: &mut [u8]) -> CryptoResult<usize> {
        let out_len = self.update_len(input.len());
        if out.len() < out_len {
            return Err(OUT_TOO_SMALL);
        }
        if self.kind == Kind::Ctr {
            return self.ctr_update(input, &mut out[..out_len]);
        }
        let bs = self.bs;
        if out_len == 0 {
            // Everything fits in the buffer (update_len guarantees it).
            self.buf[self.buf_len..self.buf_len + input.len()].copy_from_slice(input);
            self.buf_len += input.len();
            return Ok(0);
        }
        let mut rest = input;
        let mut done = 0;
        if self.buf_len > 0 {
            // Complete the buffered block (out_len > 0 implies enough input for it).
            let take = bs - self.buf_len;
            self.buf[self.buf_len..bs].copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            let block = self.buf;
            self.process(&block[..bs], &mut out[..bs]);
            done = bs;
            self.buf_len = 0;
        }
        let direct = out_len - done;
        self.process(&rest[..direct], &mut out[done..out_len]);
        let tail = &rest[direct..];
        self.buf[..tail.len()].copy_from_slice(tail);
        self.buf_len = tail.len();
        Ok(out_len)
    }

    fn process(&mut self, input: &[u8], out: &mut [u8]) {
        let encrypt = self.dir == Direction::Encrypt;
        match self.kind {
            Kind::Ecb => self.cipher.ecb(encrypt, input, out),
            Kind::Cbc | Kind::CbcPad => self.cipher.cbc(encrypt, &mut self.iv, input, out),
            Kind::Ctr => unreachable!("CTR does not use the block path"),
        }
    }

    fn ctr_update(&mut self, input: &[u8], out: &mut [u8]) -> CryptoResult<usize> {
        let n = input.len() as u128;
        if n > self.ctr_bytes_left {
            return Err(CryptoError::DataLen);
        }
        match &self.cipher.engine {
            Engine::Aes(k) => {
                k.ctr(
                    &mut self.iv,
                    &mut self.ecount,
                    &mut self.ecount_used,
                    input,
                    out,
                );
            }
            Engine::Des3(_) => return Err(CryptoError::Unsupported("CTR mode is AES only")),
        }
        self.ctr_bytes_left -= n;
        Ok(input.len())
    }

    /// The exact output of a whole operation on `input_len` bytes from a fresh stream,
    /// when it is known without running it and the input is acceptable: ECB and CBC on
    /// whole blocks, CBC-PAD encryption. None otherwise (CTR, CBC-PAD decryption, a stream
    /// already fed, a length the mode refuses).
    pub fn exact_total_len(&self, input_len: usize) -> Option<usize> {
        if self.buf_len != 0 {
            return None;
        }
        match (self.kind, self.dir) {
            (Kind::Ecb | Kind::Cbc, _) if input_len % self.bs == 0 => Some(input_len),
            (Kind::CbcPad, Direction::Encrypt) => Some((input_len / self.bs + 1) * self.bs),
            _ => None,
        }
    }

    /// Exactly how many bytes `finish` will output; for CBC-PAD decryption an upper
    /// bound (one block).
    pub fn final_len(&self) -> usize {
        match (self.kind, self.dir) {
            (Kind::CbcPad, Direction::Encrypt) => self.bs,
            (Kind::CbcPad, Direction::Decrypt) => self.bs,
            _ => 0,
        }
    }

    /// Ends the operation. CBC-PAD encryption writes the padded last block, CBC-PAD
    /// decryption the unpadded tail; other modes write nothing. On error the state is
    /// unchanged.
    pub fn finish(&mut self, out: &mut [u8]) -> CryptoResult<usize> {
        let bs = self.bs;
        match (self.kind, self.dir) {
            (Kind::Ctr, _) => Ok(0),
            (Kind::Ecb | Kind::Cbc, dir) => {
                if self.buf_len != 0 {
                    return Err(match dir {
                        Direction::Encrypt => CryptoError::DataLen,
                        Direction::Decrypt => CryptoError::EncryptedDataLen,
                    });
                }
                Ok(0)
            }
            (Kind::CbcPad, Direction::Encrypt) => {
                if out.len() < bs {
                    return Err(OUT_TOO_SMALL);
                }
                let pad = (bs - self.buf_len) as u8;
                let mut block = self.buf;
                for b in &mut block[self.buf_len..bs] {
                    *b = pad;
                }
                let mut iv = self.iv;
                self.cipher.cbc(true, &mut iv, &block[..bs], &mut out[..bs]);
                block.zeroize();
                self.iv = iv;
                self.buf_len = 0;
                Ok(bs)
            }
            (Kind::CbcPad, Direction::Decrypt) => {
                if self.buf_len != bs {
                    return Err(CryptoError::EncryptedDataLen);
                }
                let mut iv = self.iv;
                let mut plain = [0u8; 16];
                self.cipher
                    .cbc(false, &mut iv, &self.buf[..bs], &mut plain[..bs]);
                let result = unpad(&plain[..bs]);
                let outcome = match result {
                    None => Err(CryptoError::EncryptedDataInvalid),
                    Some(n) if out.len() < n => Err(OUT_TOO_SMALL),
                    Some(n) => {
                        out[..n].copy_from_slice(&plain[..n]);
                        self.buf_len = 0;
                        self.iv = iv;
                        Ok(n)
                    }
                };
                plain.zeroize();
                outcome
            }
        }
    }

    /// Runs a whole operation on `input` in one call.
    pub fn one_shot(
        cipher: Arc<BlockCipher>,
        mode: Mode,
        dir: Direction,
        input: &[u8],
    ) -> CryptoResult<Vec<u8>> {
        if let Mode::Ecb = mode {
            // Fast path without stream state: a one-block ECB call is ~20 ns of AES.
            if input.len() % cipher.block_size() != 0 {
                return Err(match dir {
                    Direction::Encrypt => CryptoError::DataLen,
                    Direction::Decrypt => CryptoError::EncryptedDataLen,
                });
            }
            let mut out = input.to_vec();
            cipher.ecb_in_place(dir == Direction::Encrypt, &mut out);
            return Ok(out);
        }
        let mut s = CipherStream::new(cipher, mode, dir)?;
        let n = s.update_len(input.len());
        let mut out = vec![0u8; n + s.final_len()];
        let a = s.update(input, &mut out)?;
        let b = s.finish(&mut out[a..])?;
        out.truncate(a + b);
        Ok(out)
    }
}

/// PKCS#7 unpadding of the last block: the number of data bytes, or `None` if the
/// padding is malformed. Checks every byte of the block without data-dependent branches.
fn unpad(block: &[u8]) -> Option<usize> {
    let bs = block.len();
    let pad = block[bs - 1];
    // good = 1 <= pad <= bs
    let mut bad = u8::from(pad == 0) | u8::from(usize::from(pad) > bs);
    for (i, &b) in block.iter().enumerate() {
        // Byte i is padding iff i >= bs - pad.
        let is_pad = u8::from(i + usize::from(pad) >= bs);
        bad |= is_pad & u8::from(b != pad);
    }
    if bad == 0 {
        Some(bs - usize::from(pad))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::digest::tests::{hex, TestRng};

    fn aes(key: &str) -> Arc<BlockCipher> {
        Arc::new(BlockCipher::aes(&hex(key)).expect("AES key"))
    }

    const SP800_38A_PT: &str = "6bc1bee22e409f96e93d7e117393172a\
                                ae2d8a571e03ac9c9eb76fac45af8e51\
                                30c81c46a35ce411e5fbc1191a0a52ef\
                                f69f2445df4f9b17ad2b417be66c3710";
    const K128: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const K192: &str = "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b";
    const K256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";

    /// NIST SP 800-38A F.1.1, F.1.3, F.1.5 (ECB-AES128/192/256).
    #[test]
    fn sp800_38a_ecb() {
        for (key, ct) in [
            (
                K128,
                "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf\
                 43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4",
            ),
            (
                K192,
                "bd334f1d6e45f25ff712a214571fa5cc974104846d0ad3ad7734ecb3ecee4eef\
                 ef7afd2270e2e60adce0ba2face6444e9a4b41ba738d6c72fb16691603c18e0e",
            ),
            (
                K256,
                "f3eed1bdb5d2a03c064b5a7e3db181f8591ccb10d410ed26dc5ba74a31362870\
                 b6ed21b99ca6f4f9f153e7b1beafed1d23304b7a39f9f3ff067d8d8f9e24ecc7",
            ),
        ] {
            let c = aes(key);
            let pt = hex(SP800_38A_PT);
            let got = CipherStream::one_shot(c.clone(), Mode::Ecb, Direction::Encrypt, &pt)
                .expect("encrypt");
            assert_eq!(got, hex(ct));
            let back = CipherStream::one_shot(c.clone(), Mode::Ecb, Direction::Decrypt, &got)
                .expect("decrypt");
            assert_eq!(back, pt);
            let mut buf = pt.clone();
            c.encrypt_blocks(&mut buf).expect("ecb");
            assert_eq!(buf, hex(ct));
            c.decrypt_blocks(&mut buf).expect("ecb");
            assert_eq!(buf, pt);
        }
    }

    /// NIST SP 800-38A F.2.1, F.2.3, F.2.5 (CBC-AES128/192/256).
    #[test]
    fn sp800_38a_cbc() {
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        for (key, ct) in [
            (
                K128,
                "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
                 73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
            ),
            (
                K192,
                "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a\
                 571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd",
            ),
            (
                K256,
                "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
                 39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
            ),
        ] {
            let c = aes(key);
            let pt = hex(SP800_38A_PT);
            let mode = Mode::Cbc { iv: iv.clone() };
            let got = CipherStream::one_shot(c.clone(), mode.clone(), Direction::Encrypt, &pt)
                .expect("encrypt");
            assert_eq!(got, hex(ct));
            let back = CipherStream::one_shot(c, mode, Direction::Decrypt, &got).expect("decrypt");
            assert_eq!(back, pt);
        }
    }

    /// NIST SP 800-38A F.5.1, F.5.5 (CTR-AES128/256).
    #[test]
    fn sp800_38a_ctr() {
        let ctr = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
        let mut cb = [0u8; 16];
        cb.copy_from_slice(&ctr);
        for (key, ct) in [
            (
                K128,
                "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff\
                 5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee",
            ),
            (
                K256,
                "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5\
                 2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6",
            ),
        ] {
            let c = aes(key);
            let pt = hex(SP800_38A_PT);
            // 128 counter bits: the counter wraps through 0xff..ff -> 0x..00 carries.
            let mode = Mode::Ctr {
                counter_block: cb,
                counter_bits: 128,
            };
            let got = CipherStream::one_shot(c.clone(), mode.clone(), Direction::Encrypt, &pt)
                .expect("encrypt");
            assert_eq!(got, hex(ct));
            let back =
                CipherStream::one_shot(c.clone(), mode, Direction::Decrypt, &got).expect("decrypt");
            assert_eq!(back, pt);
            // The low byte goes fcfd..ff: 8 or 16 counter bits give 4 blocks too.
            let mode = Mode::Ctr {
                counter_block: cb,
                counter_bits: 16,
            };
            assert_eq!(
                CipherStream::one_shot(c, mode, Direction::Encrypt, &pt).expect("encrypt"),
                hex(ct)
            );
        }
    }

    #[test]
    fn ctr_counter_exhaustion_is_data_len() {
        let c = aes(K128);
        let mut cb = [0u8; 16];
        cb[15] = 0xfc; // 4 counter values left with 8 bits: fc fd fe ff
        let mode = Mode::Ctr {
            counter_block: cb,
            counter_bits: 8,
        };
        let mut s = CipherStream::new(c.clone(), mode.clone(), Direction::Encrypt).expect("new");
        let mut out = [0u8; 80];
        assert_eq!(s.update(&[0u8; 60], &mut out).expect("fits"), 60);
        let snapshot = s.clone();
        assert_eq!(s.update(&[0u8; 5], &mut out), Err(CryptoError::DataLen));
        // State unchanged: the last 4 bytes are still available and match a clone.
        let mut a = [0u8; 4];
        let mut b = [0u8; 4];
        assert_eq!(s.update(&[0u8; 4], &mut a).expect("fits"), 4);
        let mut snap = snapshot;
        snap.update(&[0u8; 4], &mut b).expect("fits");
        assert_eq!(a, b);
        assert_eq!(s.update(&[0u8; 1], &mut a), Err(CryptoError::DataLen));
        assert_eq!(s.update(&[], &mut a), Ok(0));
        assert_eq!(s.finish(&mut []), Ok(0));
        // A single block of 1 counter bit with the bit set: exactly one block.
        cb[15] = 0x01;
        let one = Mode::Ctr {
            counter_block: cb,
            counter_bits: 1,
        };
        assert!(
            CipherStream::one_shot(c.clone(), one.clone(), Direction::Encrypt, &[0; 16]).is_ok()
        );
        assert_eq!(
            CipherStream::one_shot(c.clone(), one, Direction::Encrypt, &[0; 17]),
            Err(CryptoError::DataLen)
        );
        for bad in [0u32, 129] {
            let m = Mode::Ctr {
                counter_block: cb,
                counter_bits: bad,
            };
            assert!(matches!(
                CipherStream::new(c.clone(), m, Direction::Encrypt),
                Err(CryptoError::InvalidParameter(_))
            ));
        }
    }

    /// The carry out of the low 32 bits must propagate (AWS-LC's ctr32 path).
    #[test]
    fn ctr_carries_past_32_bits() {
        let c = aes(K256);
        let mut cb = [0u8; 16];
        cb[8..].copy_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe]);
        let mode = Mode::Ctr {
            counter_block: cb,
            counter_bits: 64,
        };
        let ks =
            CipherStream::one_shot(c.clone(), mode, Direction::Encrypt, &[0u8; 64]).expect("ctr");
        // Expected keystream: ECB of the four counter values.
        let mut blocks = Vec::new();
        for v in [0xffff_fffeu64, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0001] {
            let mut b = [0u8; 16];
            b[8..].copy_from_slice(&v.to_be_bytes());
            blocks.extend_from_slice(&b);
        }
        c.encrypt_blocks(&mut blocks).expect("ecb");
        assert_eq!(ks, blocks);
    }

    /// CBC-PAD: PKCS#7 padding checked against `openssl enc -aes-128-cbc` (which pads
    /// the same way): 16 bytes of plaintext gain a whole block of 0x10.
    #[test]
    fn cbc_pad_vectors_and_roundtrip() {
        let c = aes(K128);
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let pt = hex(SP800_38A_PT);
        let mode = Mode::CbcPad { iv: iv.clone() };
        let ct = CipherStream::one_shot(c.clone(), mode.clone(), Direction::Encrypt, &pt[..16])
            .expect("encrypt");
        // First block is SP 800-38A F.2.1 block 1; the second is E(0x10*16 ^ C1)
        // (`openssl enc -aes-128-cbc -K .. -iv ..`).
        assert_eq!(
            ct,
            hex("7649abac8119b246cee98e9b12e9197d8964e0b149c10b7b682e6e39aaeb731c")
        );
        let back = CipherStream::one_shot(c.clone(), mode.clone(), Direction::Decrypt, &ct)
            .expect("decrypt");
        assert_eq!(back, &pt[..16]);
        for len in 0..=40 {
            let ct =
                CipherStream::one_shot(c.clone(), mode.clone(), Direction::Encrypt, &pt[..len])
                    .expect("encrypt");
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            let back = CipherStream::one_shot(c.clone(), mode.clone(), Direction::Decrypt, &ct)
                .expect("decrypt");
            assert_eq!(back, &pt[..len]);
        }
    }

    #[test]
    fn cbc_pad_errors() {
        let c = aes(K128);
        let mode = Mode::CbcPad { iv: vec![0u8; 16] };
        // Not a block multiple, and empty.
        for len in [0usize, 15, 17, 31] {
            assert_eq!(
                CipherStream::one_shot(
                    c.clone(),
                    mode.clone(),
                    Direction::Decrypt,
                    &vec![0u8; len]
                ),
                Err(CryptoError::EncryptedDataLen),
                "len {len}"
            );
        }
        // Bad padding: encrypt blocks whose last byte is 0, 17, or inconsistent.
        for last_block in [[0u8; 16], [17u8; 16], {
            let mut b = [3u8; 16];
            b[13] = 4;
            b
        }] {
            let ct = CipherStream::one_shot(
                c.clone(),
                Mode::Cbc { iv: vec![0u8; 16] },
                Direction::Encrypt,
                &last_block,
            )
            .expect("encrypt");
            let mut s =
                CipherStream::new(c.clone(), mode.clone(), Direction::Decrypt).expect("new");
            let mut out = [0u8; 32];
            assert_eq!(s.update(&ct, &mut out), Ok(0));
            assert_eq!(s.final_len(), 16);
            assert_eq!(s.finish(&mut out), Err(CryptoError::EncryptedDataInvalid));
        }
        // Valid 3-byte padding still works through the same path.
        let mut good = [3u8; 16];
        good[0] = 0xaa;
        let ct = CipherStream::one_shot(
            c.clone(),
            Mode::Cbc { iv: vec![0u8; 16] },
            Direction::Encrypt,
            &good,
        )
        .expect("encrypt");
        let pt = CipherStream::one_shot(c, mode, Direction::Decrypt, &ct).expect("decrypt");
        assert_eq!(pt, &good[..13]);
    }

    #[test]
    fn unpadded_mode_errors() {
        let c = aes(K128);
        for mode in [Mode::Ecb, Mode::Cbc { iv: vec![0u8; 16] }] {
            assert_eq!(
                CipherStream::one_shot(c.clone(), mode.clone(), Direction::Encrypt, &[0u8; 17]),
                Err(CryptoError::DataLen)
            );
            assert_eq!(
                CipherStream::one_shot(c.clone(), mode.clone(), Direction::Decrypt, &[0u8; 33]),
                Err(CryptoError::EncryptedDataLen)
            );
            // Empty input is fine (zero blocks).
            assert_eq!(
                CipherStream::one_shot(c.clone(), mode, Direction::Encrypt, &[]),
                Ok(vec![])
            );
        }
        let mut odd = [0u8; 20];
        assert_eq!(c.encrypt_blocks(&mut odd), Err(CryptoError::DataLen));
        assert_eq!(c.decrypt_blocks(&mut odd), Err(CryptoError::DataLen));
        // IV length.
        for iv in [vec![0u8; 8], vec![0u8; 15], vec![]] {
            assert!(matches!(
                CipherStream::new(c.clone(), Mode::Cbc { iv: iv.clone() }, Direction::Encrypt),
                Err(CryptoError::InvalidParameter(_))
            ));
            assert!(matches!(
                CipherStream::new(c.clone(), Mode::CbcPad { iv }, Direction::Decrypt),
                Err(CryptoError::InvalidParameter(_))
            ));
        }
        // Key sizes.
        for len in [0usize, 8, 15, 17, 31, 33, 64] {
            assert!(matches!(
                BlockCipher::aes(&vec![0u8; len]),
                Err(CryptoError::KeySize)
            ));
        }
        for len in [0usize, 8, 23, 25, 32] {
            assert!(matches!(
                BlockCipher::des3(&vec![0u8; len]),
                Err(CryptoError::KeySize)
            ));
        }
        // CTR needs AES; too-small output buffer leaves the state alone.
        let d = Arc::new(BlockCipher::des3(&[1u8; 24]).expect("des3"));
        let ctr = Mode::Ctr {
            counter_block: [0; 16],
            counter_bits: 32,
        };
        assert!(matches!(
            CipherStream::new(d, ctr, Direction::Encrypt),
            Err(CryptoError::Unsupported(_))
        ));
        let mut s =
            CipherStream::new(c, Mode::Cbc { iv: vec![0u8; 16] }, Direction::Encrypt).expect("new");
        let mut small = [0u8; 16];
        assert_eq!(s.update_len(40), 32);
        assert!(matches!(
            s.update(&[0u8; 40], &mut small),
            Err(CryptoError::InvalidParameter(_))
        ));
        assert_eq!(s.update_len(40), 32, "state unchanged after the error");
    }

    /// SP 800-67 Rev. 2 / SP 800-20 style TDEA check: the three-key vector of
    /// NIST SP 800-67 (Rev. 1) Appendix B ("The quick brown fox jump"), ECB.
    #[test]
    fn tdes_sp800_67_vector() {
        let key = hex("0123456789abcdef23456789abcdef01456789abcdef0123");
        let d = Arc::new(BlockCipher::des3(&key).expect("des3"));
        assert_eq!(d.block_size(), 8);
        assert!(!d.is_aes());
        let pt = b"The qufck brown fox jump".to_vec();
        let want = hex("a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900");
        let ct =
            CipherStream::one_shot(d.clone(), Mode::Ecb, Direction::Encrypt, &pt).expect("encrypt");
        assert_eq!(ct, want);
        let back = CipherStream::one_shot(d, Mode::Ecb, Direction::Decrypt, &ct).expect("decrypt");
        assert_eq!(back, pt);
    }

    /// Two-key 3DES equals three-key with K3 = K1; CBC with openssl-checked vector
    /// (`openssl enc -des-ede3-cbc -nopad`).
    #[test]
    fn tdes_two_key_and_cbc() {
        let k2 = hex("0123456789abcdeffedcba9876543210");
        let mut k3 = k2.clone();
        k3.extend_from_slice(&k2[..8]);
        let a = Arc::new(BlockCipher::des3(&k2).expect("2-key"));
        let b = Arc::new(BlockCipher::des3(&k3).expect("3-key"));
        let pt = hex("0123456789abcdef0123456789abcdef");
        let iv = hex("1234567890abcdef");
        let mode = Mode::Cbc { iv };
        let ca = CipherStream::one_shot(a, mode.clone(), Direction::Encrypt, &pt).expect("enc");
        let cb =
            CipherStream::one_shot(b.clone(), mode.clone(), Direction::Encrypt, &pt).expect("enc");
        assert_eq!(ca, cb);
        assert_eq!(ca, hex(TDES_CBC_2KEY_CT));
        let back = CipherStream::one_shot(b, mode, Direction::Decrypt, &ca).expect("dec");
        assert_eq!(back, pt);
    }

    const TDES_CBC_2KEY_CT: &str = "1aab6acba5abd5442b1ef48603e1b724";

    fn all_modes(bs: usize, aes: bool) -> Vec<Mode> {
        let mut v = vec![
            Mode::Ecb,
            Mode::Cbc {
                iv: (0..bs as u8).collect(),
            },
            Mode::CbcPad {
                iv: (10..10 + bs as u8).collect(),
            },
        ];
        if aes {
            let mut cb = [0u8; 16];
            cb[12..].copy_from_slice(&[0xff, 0xff, 0xff, 0xf0]);
            v.push(Mode::Ctr {
                counter_block: cb,
                counter_bits: 64,
            });
        }
        v
    }

    /// Streaming in random chunk sizes equals one-shot, and update_len/final_len are
    /// exact, for every mode, both directions, AES and 3DES.
    #[test]
    fn streaming_random_chunks_equal_one_shot() {
        let mut rng = TestRng(0xdead_beef_cafe_f00d);
        let ciphers = [
            Arc::new(BlockCipher::aes(&rng.bytes(16)).expect("aes")),
            Arc::new(BlockCipher::aes(&rng.bytes(32)).expect("aes")),
            Arc::new(BlockCipher::des3(&rng.bytes(24)).expect("des3")),
        ];
        for c in &ciphers {
            let bs = c.block_size();
            for mode in all_modes(bs, c.is_aes()) {
                for round in 0..30 {
                    let len = match (&mode, round % 3) {
                        (Mode::Ecb | Mode::Cbc { .. }, _) => bs * rng.below(70),
                        (_, 0) => rng.below(20),
                        _ => rng.below(1100),
                    };
                    let pt = rng.bytes(len);
                    let ct =
                        CipherStream::one_shot(c.clone(), mode.clone(), Direction::Encrypt, &pt)
                            .expect("encrypt");
                    for (dir, input, want) in [
                        (Direction::Encrypt, &pt, &ct),
                        (Direction::Decrypt, &ct, &pt),
                    ] {
                        let mut s = CipherStream::new(c.clone(), mode.clone(), dir).expect("new");
                        let mut got = Vec::new();
                        let mut rest = &input[..];
                        while !rest.is_empty() {
                            let n = rng.below(3 * bs + 40).min(rest.len());
                            let expect = s.update_len(n);
                            let mut out = vec![0u8; expect];
                            let w = s.update(&rest[..n], &mut out).expect("update");
                            assert_eq!(w, expect, "update_len exact");
                            got.extend_from_slice(&out);
                            rest = &rest[n..];
                        }
                        let fl = s.final_len();
                        let mut out = vec![0u8; fl];
                        let w = s.finish(&mut out).expect("finish");
                        let is_pad_decrypt =
                            matches!(mode, Mode::CbcPad { .. }) && dir == Direction::Decrypt;
                        if is_pad_decrypt {
                            assert!(w <= fl && w < bs);
                        } else {
                            assert_eq!(w, fl, "final_len exact");
                        }
                        got.extend_from_slice(&out[..w]);
                        assert_eq!(&got, want, "{mode:?} {dir:?} len {len}");
                    }
                }
            }
        }
    }

    /// A clone taken mid-stream continues identically (the PKCS#11 layer's retry).
    #[test]
    fn clone_snapshots_state() {
        let c = aes(K256);
        let mode = Mode::CbcPad { iv: vec![7u8; 16] };
        let mut s = CipherStream::new(c, mode, Direction::Decrypt).expect("new");
        let mut out = [0u8; 64];
        s.update(&[1u8; 20], &mut out).expect("update");
        let mut t = s.clone();
        let mut o1 = [0u8; 64];
        let mut o2 = [0u8; 64];
        let n1 = s.update(&[2u8; 28], &mut o1).expect("update");
        let n2 = t.update(&[2u8; 28], &mut o2).expect("update");
        assert_eq!((n1, &o1[..]), (n2, &o2[..]));
        assert!(format!("{s:?}").contains("CbcPad"));
    }

    #[test]
    fn unpad_rules() {
        let mut b = [0u8; 16];
        b[15] = 1;
        assert_eq!(unpad(&b), Some(15));
        let b = [16u8; 16];
        assert_eq!(unpad(&b), Some(0));
        let b = [0u8; 16];
        assert_eq!(unpad(&b), None);
        let mut b = [2u8; 8];
        b[6] = 1;
        assert_eq!(unpad(&b), None);
        let b = [9u8; 8];
        assert_eq!(unpad(&b), None);
    }
}

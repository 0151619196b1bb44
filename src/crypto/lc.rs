//! The raw AWS-LC shim: the few `aws-lc-sys` entry points that aws-lc-rs's safe API has
//! no door for (SHA3-224 and HMAC-SHA3, AES/3DES block primitives, AES-GCM with any IV
//! length and truncated tags), each behind a small safe type.
//!
//! Every AWS-LC object here is allocated by AWS-LC's own allocator (`*_new`,
//! `OPENSSL_zalloc`), so once `secure_mem` routes `CRYPTO_set_mem_functions` into the
//! locked arena, key schedules and MAC/hash states live there too. Each is wiped before
//! it is freed. All types are plain owners of their allocation: `Send`, and `Sync` because
//! every `&self` method only reads the object (AWS-LC documents the AES key schedule and
//! the AES-GCM `EVP_AEAD_CTX` as safe for concurrent read-only use).
#![allow(unsafe_code)]

use std::os::raw::{c_int, c_uint, c_void};
use std::ptr::NonNull;

use aws_lc_sys as sys;

use super::digest::HashAlg;

/// Aborts like any Rust allocation failure would: AWS-LC returns NULL/0 from these
/// constructors only when memory is exhausted.
#[cold]
fn alloc_failed(size: usize) -> ! {
    let layout = std::alloc::Layout::from_size_align(size.max(1), 8)
        .unwrap_or_else(|_| std::alloc::Layout::new::<u64>());
    std::alloc::handle_alloc_error(layout)
}

/// Wipes `len` bytes at `ptr` in a way the optimiser keeps.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
unsafe fn cleanse(ptr: *mut c_void, len: usize) {
    // SAFETY: the caller guarantees `ptr` is valid for `len` bytes of writes.
    unsafe { sys::OPENSSL_cleanse(ptr, len) }
}

/// The `EVP_MD` for a hash algorithm (static tables inside AWS-LC, never freed).
fn evp_md(alg: HashAlg) -> *const sys::EVP_MD {
    // SAFETY: these accessors take no arguments and return pointers to static tables.
    unsafe {
        match alg {
            HashAlg::Sha1 => sys::EVP_sha1(),
            HashAlg::Sha224 => sys::EVP_sha224(),
            HashAlg::Sha256 => sys::EVP_sha256(),
            HashAlg::Sha384 => sys::EVP_sha384(),
            HashAlg::Sha512 => sys::EVP_sha512(),
            HashAlg::Sha3_224 => sys::EVP_sha3_224(),
            HashAlg::Sha3_256 => sys::EVP_sha3_256(),
            HashAlg::Sha3_384 => sys::EVP_sha3_384(),
            HashAlg::Sha3_512 => sys::EVP_sha3_512(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hashing

/// One-shot hash of `data` into `out` (`out.len()` must be the algorithm's output size).
pub(crate) fn digest_into(alg: HashAlg, data: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), alg.output_len());
    let mut written: c_uint = 0;
    // SAFETY: `data` is valid for reads of its length; `out` has room for the digest
    // (its length is the algorithm's output size, at most EVP_MAX_MD_SIZE); `written` is
    // a valid out-pointer; the EVP_MD is static.
    let ok = unsafe {
        sys::EVP_Digest(
            data.as_ptr().cast(),
            data.len(),
            out.as_mut_ptr(),
            &mut written,
            evp_md(alg),
            std::ptr::null_mut(),
        )
    };
    if ok != 1 {
        alloc_failed(256);
    }
}

/// A running hash (`EVP_MD_CTX`).
pub(crate) struct MdCtx {
    ctx: NonNull<sys::EVP_MD_CTX>,
}

// SAFETY: MdCtx exclusively owns its EVP_MD_CTX; AWS-LC contexts have no thread affinity.
unsafe impl Send for MdCtx {}
// SAFETY: the only `&self` use is EVP_MD_CTX_copy_ex reading the context.
unsafe impl Sync for MdCtx {}

impl MdCtx {
    pub(crate) fn new(alg: HashAlg) -> MdCtx {
        // SAFETY: EVP_MD_CTX_new has no preconditions; NULL means out of memory.
        let ctx =
            NonNull::new(unsafe { sys::EVP_MD_CTX_new() }).unwrap_or_else(|| alloc_failed(64));
        let this = MdCtx { ctx };
        // SAFETY: `ctx` is a fresh, valid context; the EVP_MD is static.
        let ok =
            unsafe { sys::EVP_DigestInit_ex(this.ctx.as_ptr(), evp_md(alg), std::ptr::null_mut()) };
        if ok != 1 {
            alloc_failed(256);
        }
        this
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // SAFETY: the context is initialised; `data` is valid for its length. The call
        // cannot fail for an initialised context.
        unsafe {
            sys::EVP_DigestUpdate(self.ctx.as_ptr(), data.as_ptr().cast(), data.len());
        }
    }

    /// Writes the digest into `out` (exactly the output size).
    pub(crate) fn finish_into(self, out: &mut [u8]) {
        let mut written: c_uint = 0;
        // SAFETY: the context is initialised; `out` has room for the digest (checked by
        // the caller: output size <= 64 = EVP_MAX_MD_SIZE).
        let ok =
            unsafe { sys::EVP_DigestFinal_ex(self.ctx.as_ptr(), out.as_mut_ptr(), &mut written) };
        debug_assert!(ok == 1 && written as usize == out.len());
    }
}

impl Clone for MdCtx {
    fn clone(&self) -> MdCtx {
        // SAFETY: EVP_MD_CTX_new has no preconditions; NULL means out of memory.
        let ctx =
            NonNull::new(unsafe { sys::EVP_MD_CTX_new() }).unwrap_or_else(|| alloc_failed(64));
        let out = MdCtx { ctx };
        // SAFETY: both contexts are valid; `self.ctx` is initialised.
        let ok = unsafe { sys::EVP_MD_CTX_copy_ex(out.ctx.as_ptr(), self.ctx.as_ptr()) };
        if ok != 1 {
            alloc_failed(256);
        }
        out
    }
}

impl Drop for MdCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context; cleanse wipes the state, free releases it once.
        unsafe {
            sys::EVP_MD_CTX_cleanse(self.ctx.as_ptr());
            sys::EVP_MD_CTX_free(self.ctx.as_ptr());
        }
    }
}

// ---------------------------------------------------------------------------------------
// HMAC

/// A keyed, running HMAC (`HMAC_CTX`).
pub(crate) struct HmacCtx {
    ctx: NonNull<sys::HMAC_CTX>,
}

// SAFETY: HmacCtx exclusively owns its HMAC_CTX; no thread affinity.
unsafe impl Send for HmacCtx {}
// SAFETY: the only `&self` use is HMAC_CTX_copy_ex reading the context.
unsafe impl Sync for HmacCtx {}

impl HmacCtx {
    fn alloc() -> HmacCtx {
        // SAFETY: HMAC_CTX_new has no preconditions; NULL means out of memory.
        let ctx = NonNull::new(unsafe { sys::HMAC_CTX_new() }).unwrap_or_else(|| alloc_failed(512));
        HmacCtx { ctx }
    }

    pub(crate) fn new(alg: HashAlg, key: &[u8]) -> HmacCtx {
        static EMPTY: [u8; 1] = [0];
        let this = HmacCtx::alloc();
        // A NULL key means "reuse the previous key" to AWS-LC: an empty key is passed as
        // a valid pointer with length 0.
        let key_ptr = if key.is_empty() {
            EMPTY.as_ptr()
        } else {
            key.as_ptr()
        };
        // SAFETY: the context is fresh; `key_ptr` is valid for `key.len()` bytes; the
        // EVP_MD is static.
        let ok = unsafe {
            sys::HMAC_Init_ex(
                this.ctx.as_ptr(),
                key_ptr.cast(),
                key.len(),
                evp_md(alg),
                std::ptr::null_mut(),
            )
        };
        if ok != 1 {
            alloc_failed(512);
        }
        this
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // SAFETY: the context is initialised; `data` is valid for its length.
        unsafe {
            sys::HMAC_Update(self.ctx.as_ptr(), data.as_ptr(), data.len());
        }
    }

    /// Writes the full MAC into `out` (exactly the hash output size).
    pub(crate) fn finish_into(self, out: &mut [u8]) {
        let mut written: c_uint = 0;
        // SAFETY: the context is initialised; `out` has room for the hash output
        // (checked by the caller).
        let ok = unsafe { sys::HMAC_Final(self.ctx.as_ptr(), out.as_mut_ptr(), &mut written) };
        debug_assert!(ok == 1 && written as usize == out.len());
    }
}

/// One-shot HMAC into `out` (exactly the hash output size). AWS-LC keeps the context
/// on its stack and cleanses it, saving the allocation of a streaming context.
pub(crate) fn hmac_into(alg: HashAlg, key: &[u8], data: &[u8], out: &mut [u8]) {
    static EMPTY: [u8; 1] = [0];
    assert_eq!(out.len(), alg.output_len(), "HMAC output buffer size");
    let key_ptr = if key.is_empty() {
        EMPTY.as_ptr()
    } else {
        key.as_ptr()
    };
    let data_ptr = if data.is_empty() {
        EMPTY.as_ptr()
    } else {
        data.as_ptr()
    };
    let mut written: c_uint = 0;
    // SAFETY: key and data pointers are valid for their lengths (a static byte when
    // empty); `out` has room for the hash output (asserted above); the EVP_MD is static.
    let r = unsafe {
        sys::HMAC(
            evp_md(alg),
            key_ptr.cast(),
            key.len(),
            data_ptr,
            data.len(),
            out.as_mut_ptr(),
            &mut written,
        )
    };
    if r.is_null() {
        alloc_failed(512);
    }
}

impl Clone for HmacCtx {
    fn clone(&self) -> HmacCtx {
        let out = HmacCtx::alloc();
        // SAFETY: both contexts are valid; `self` is initialised.
        let ok = unsafe { sys::HMAC_CTX_copy_ex(out.ctx.as_ptr(), self.ctx.as_ptr()) };
        if ok != 1 {
            alloc_failed(512);
        }
        out
    }
}

impl Drop for HmacCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context; HMAC_CTX_free cleanses it (HMAC_CTX_cleanup) and
        // frees it once.
        unsafe { sys::HMAC_CTX_free(self.ctx.as_ptr()) }
    }
}

// ---------------------------------------------------------------------------------------
// Plain-old-data key schedules in AWS-LC memory

/// A `T` (a C key-schedule struct: plain data, valid when zeroed) allocated with
/// `OPENSSL_zalloc`, placed on a 16-byte boundary, and wiped before `OPENSSL_free`.
/// (AWS-LC's allocations are only 8-aligned: a misaligned AES schedule makes some of the
/// round-key loads in every block straddle cache lines, measurably slower for CBC.)
struct LcBox<T: Copy> {
    ptr: NonNull<T>,
    /// The allocation `ptr` lies in (what `OPENSSL_free` takes).
    base: NonNull<u8>,
}

// SAFETY: LcBox exclusively owns plain data.
unsafe impl<T: Copy + Send> Send for LcBox<T> {}
// SAFETY: shared access is read-only.
unsafe impl<T: Copy + Sync> Sync for LcBox<T> {}

const LC_BOX_ALIGN: usize = 16;

impl<T: Copy> LcBox<T> {
    fn zeroed() -> LcBox<T> {
        let size = std::mem::size_of::<T>() + LC_BOX_ALIGN;
        debug_assert!(std::mem::align_of::<T>() <= LC_BOX_ALIGN);
        // SAFETY: OPENSSL_zalloc has no preconditions; it returns zeroed memory (at least
        // 8-aligned) or NULL when out of memory.
        let raw = unsafe { sys::OPENSSL_zalloc(size) };
        let base = NonNull::new(raw.cast::<u8>()).unwrap_or_else(|| alloc_failed(size));
        let offset = base.as_ptr().align_offset(LC_BOX_ALIGN);
        // SAFETY: `offset` < LC_BOX_ALIGN, so `base + offset .. + size_of::<T>()` lies
        // inside the `size` bytes allocated, is 16-aligned and zeroed (a valid `T`).
        let ptr = unsafe { NonNull::new_unchecked(base.as_ptr().add(offset).cast::<T>()) };
        LcBox { ptr, base }
    }

    fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr.as_ptr()
    }

    fn duplicate(&self) -> LcBox<T> {
        let out = LcBox::<T>::zeroed();
        // SAFETY: both allocations hold one valid `T` and do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.as_ptr(), out.ptr.as_ptr(), 1) };
        out
    }
}

impl<T: Copy> Drop for LcBox<T> {
    fn drop(&mut self) {
        // SAFETY: we own the allocation of size_of::<T>() + LC_BOX_ALIGN bytes at `base`
        // from OPENSSL_zalloc; it is wiped whole and then freed exactly once.
        unsafe {
            cleanse(
                self.base.as_ptr().cast(),
                std::mem::size_of::<T>() + LC_BOX_ALIGN,
            );
            sys::OPENSSL_free(self.base.as_ptr().cast());
        }
    }
}

// ---------------------------------------------------------------------------------------
// AES block primitive

/// Encrypts one block with a key used once (a key check value): the schedule lives on the
/// stack for the call and is wiped, instead of two allocations in the locked arena.
pub(crate) fn aes_encrypt_one_block(key: &[u8], block: &mut [u8; 16]) -> bool {
    let Ok(bits) = c_uint::try_from(key.len() * 8) else {
        return false;
    };
    if !matches!(key.len(), 16 | 24 | 32) {
        return false;
    }
    let mut schedule = std::mem::MaybeUninit::<sys::AES_KEY>::zeroed();
    // SAFETY: `key` is valid for bits/8 bytes; `schedule` is a writable AES_KEY that
    // AES_set_encrypt_key fills; AES_encrypt allows in == out on a 16-byte block; the
    // schedule is wiped before it goes out of scope.
    unsafe {
        let ok = sys::AES_set_encrypt_key(key.as_ptr(), bits, schedule.as_mut_ptr()) == 0;
        if ok {
            sys::AES_encrypt(block.as_ptr(), block.as_mut_ptr(), schedule.as_ptr());
        }
        cleanse(
            schedule.as_mut_ptr().cast(),
            std::mem::size_of::<sys::AES_KEY>(),
        );
        ok
    }
}

/// The encryption schedule and, beside it in the same allocation, the raw key (wiped
/// with it) to expand the decryption schedule from on first use.
#[derive(Clone, Copy)]
struct EncKey {
    schedule: sys::AES_KEY,
    raw: [u8; 32],
    bits: c_uint,
}

/// Expanded AES key schedules: encryption at once, decryption on the first decryption
/// (a key that only ever encrypts, or serves CTR/GCM/CMAC, holds one schedule, not two).
pub(crate) struct AesKey {
    enc: LcBox<EncKey>,
    dec: std::sync::OnceLock<LcBox<sys::AES_KEY>>,
}

impl AesKey {
    /// `key` must be 16, 24 or 32 bytes (checked by the caller).
    pub(crate) fn new(key: &[u8]) -> Option<AesKey> {
        if key.len() > 32 {
            return None;
        }
        let bits = c_uint::try_from(key.len() * 8).ok()?;
        let mut enc = LcBox::<EncKey>::zeroed();
        // SAFETY: `enc` holds one valid, exclusively owned EncKey; `key` is valid for
        // bits/8 bytes and the schedule is a writable AES_KEY.
        let ok = unsafe {
            let e = &mut *enc.as_mut_ptr();
            e.raw[..key.len()].copy_from_slice(key);
            e.bits = bits;
            sys::AES_set_encrypt_key(key.as_ptr(), bits, &mut e.schedule) == 0
        };
        ok.then_some(AesKey {
            enc,
            dec: std::sync::OnceLock::new(),
        })
    }

    fn enc(&self) -> *const sys::AES_KEY {
        // SAFETY: `enc` holds a valid EncKey for as long as `self` lives.
        unsafe { &(*self.enc.as_ptr()).schedule }
    }

    fn dec(&self) -> *const sys::AES_KEY {
        self.dec
            .get_or_init(|| {
                let mut dec = LcBox::<sys::AES_KEY>::zeroed();
                // SAFETY: `raw`/`bits` were filled by `new` with a key AES_set_encrypt_key
                // accepted (so of a valid size); `dec` is a valid writable AES_KEY.
                unsafe {
                    let e = &*self.enc.as_ptr();
                    sys::AES_set_decrypt_key(e.raw.as_ptr(), e.bits, dec.as_mut_ptr());
                }
                dec
            })
            .as_ptr()
    }

    pub(crate) fn duplicate(&self) -> AesKey {
        let dec = std::sync::OnceLock::new();
        if let Some(d) = self.dec.get() {
            let _ = dec.set(d.duplicate());
        }
        AesKey {
            enc: self.enc.duplicate(),
            dec,
        }
    }

    /// ECB over whole blocks, `input` and `out` of the same length (a multiple of 16).
    pub(crate) fn ecb(&self, encrypt: bool, input: &[u8], out: &mut [u8]) {
        debug_assert!(input.len() == out.len() && input.len() % 16 == 0);
        let (key, block_fn) = self.block_fn(encrypt);
        for (i, o) in input.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
            // SAFETY: `i` and `o` are 16-byte blocks; the key schedule is initialised.
            unsafe { block_fn(i.as_ptr(), o.as_mut_ptr(), key) };
        }
    }

    /// ECB in place over whole blocks.
    pub(crate) fn ecb_in_place(&self, encrypt: bool, buf: &mut [u8]) {
        debug_assert!(buf.len() % 16 == 0);
        let (key, block_fn) = self.block_fn(encrypt);
        for b in buf.chunks_exact_mut(16) {
            let p = b.as_mut_ptr();
            // SAFETY: `b` is a 16-byte block; AES_encrypt/AES_decrypt allow in == out.
            unsafe { block_fn(p, p, key) };
        }
    }

    /// The schedule and single-block function for one direction.
    #[allow(clippy::type_complexity)]
    fn block_fn(
        &self,
        encrypt: bool,
    ) -> (
        *const sys::AES_KEY,
        unsafe extern "C" fn(*const u8, *mut u8, *const sys::AES_KEY),
    ) {
        if encrypt {
            (self.enc(), sys::AES_encrypt)
        } else {
            (self.dec(), sys::AES_decrypt)
        }
    }

    /// CBC over whole blocks; `iv` is updated to the last ciphertext block.
    pub(crate) fn cbc(&self, encrypt: bool, iv: &mut [u8; 16], input: &[u8], out: &mut [u8]) {
        debug_assert!(input.len() == out.len() && input.len() % 16 == 0);
        if input.is_empty() {
            return;
        }
        let (key, enc) = if encrypt {
            (self.enc(), sys::AES_ENCRYPT as c_int)
        } else {
            (self.dec(), sys::AES_DECRYPT as c_int)
        };
        // SAFETY: `input` and `out` are valid, non-overlapping and of equal length (a
        // multiple of 16); `iv` is 16 writable bytes; the key schedule is initialised.
        unsafe {
            sys::AES_cbc_encrypt(
                input.as_ptr(),
                out.as_mut_ptr(),
                input.len(),
                key,
                iv.as_mut_ptr(),
                enc,
            )
        }
    }

    /// CTR keystream XOR with AWS-LC's streaming state (`counter` incremented as a
    /// 128-bit big-endian integer, `ecount`/`num` the partial-block keystream).
    pub(crate) fn ctr(
        &self,
        counter: &mut [u8; 16],
        ecount: &mut [u8; 16],
        num: &mut u32,
        input: &[u8],
        out: &mut [u8],
    ) {
        debug_assert!(input.len() == out.len());
        if input.is_empty() {
            return;
        }
        let mut n: c_uint = *num;
        // SAFETY: `input`/`out` are valid, non-overlapping, of equal length; `counter` and
        // `ecount` are 16 writable bytes each; `n` < 16 as AWS-LC left it.
        unsafe {
            sys::AES_ctr128_encrypt(
                input.as_ptr(),
                out.as_mut_ptr(),
                input.len(),
                self.enc(),
                counter.as_mut_ptr(),
                ecount.as_mut_ptr(),
                &mut n,
            )
        }
        *num = n;
    }
}

// ---------------------------------------------------------------------------------------
// Triple-DES block primitive

#[derive(Clone, Copy)]
#[repr(C)]
struct Des3Schedules {
    ks: [sys::DES_key_schedule; 3],
}

/// Three DES key schedules (EDE).
pub(crate) struct Des3Key {
    ks: LcBox<Des3Schedules>,
}

impl Des3Key {
    /// `key` is 24 bytes (K1 K2 K3); parity bits are ignored.
    pub(crate) fn new(key: &[u8; 24]) -> Des3Key {
        let mut ks = LcBox::<Des3Schedules>::zeroed();
        for i in 0..3 {
            let mut block = sys::DES_cblock { bytes: [0u8; 8] };
            block.bytes.copy_from_slice(&key[8 * i..8 * i + 8]);
            // SAFETY: `block` is a valid DES_cblock; the schedule slot is valid for writes.
            unsafe {
                let sched = std::ptr::addr_of_mut!((*ks.as_mut_ptr()).ks[i]);
                sys::DES_set_key_unchecked(&block, sched);
            }
            // SAFETY: `block` is a local 8-byte value.
            unsafe { cleanse(std::ptr::addr_of_mut!(block).cast(), 8) };
        }
        Des3Key { ks }
    }

    pub(crate) fn duplicate(&self) -> Des3Key {
        Des3Key {
            ks: self.ks.duplicate(),
        }
    }

    fn schedules(
        &self,
    ) -> (
        *const sys::DES_key_schedule,
        *const sys::DES_key_schedule,
        *const sys::DES_key_schedule,
    ) {
        let p = self.ks.as_ptr();
        // SAFETY: `p` points to a valid Des3Schedules; only field addresses are taken.
        unsafe {
            (
                std::ptr::addr_of!((*p).ks[0]),
                std::ptr::addr_of!((*p).ks[1]),
                std::ptr::addr_of!((*p).ks[2]),
            )
        }
    }

    /// ECB in place over whole 8-byte blocks.
    pub(crate) fn ecb_in_place(&self, encrypt: bool, buf: &mut [u8]) {
        debug_assert!(buf.len() % 8 == 0);
        let (k1, k2, k3) = self.schedules();
        let enc = if encrypt {
            sys::DES_ENCRYPT
        } else {
            sys::DES_DECRYPT
        } as c_int;
        for b in buf.chunks_exact_mut(8) {
            let mut block = sys::DES_cblock { bytes: [0u8; 8] };
            block.bytes.copy_from_slice(b);
            let mut outb = sys::DES_cblock { bytes: [0u8; 8] };
            // SAFETY: `block` and `outb` are valid DES_cblocks; the schedules are
            // initialised.
            unsafe { sys::DES_ecb3_encrypt(&block, &mut outb, k1, k2, k3, enc) };
            b.copy_from_slice(&outb.bytes);
        }
    }

    /// CBC over whole blocks; `iv` is updated to the last ciphertext block.
    pub(crate) fn cbc(&self, encrypt: bool, iv: &mut [u8; 8], input: &[u8], out: &mut [u8]) {
        debug_assert!(input.len() == out.len() && input.len() % 8 == 0);
        if input.is_empty() {
            return;
        }
        let (k1, k2, k3) = self.schedules();
        let enc = if encrypt {
            sys::DES_ENCRYPT
        } else {
            sys::DES_DECRYPT
        } as c_int;
        let mut ivb = sys::DES_cblock { bytes: *iv };
        // SAFETY: `input`/`out` are valid, non-overlapping, of equal length (multiple of
        // 8); `ivb` is a valid DES_cblock; the schedules are initialised.
        unsafe {
            sys::DES_ede3_cbc_encrypt(
                input.as_ptr(),
                out.as_mut_ptr(),
                input.len(),
                k1,
                k2,
                k3,
                &mut ivb,
                enc,
            )
        };
        // Chain from the last ciphertext block explicitly rather than relying on how the
        // C routine leaves `ivec`.
        let last = if encrypt {
            &out[out.len() - 8..]
        } else {
            &input[input.len() - 8..]
        };
        iv.copy_from_slice(last);
    }
}

// ---------------------------------------------------------------------------------------
// AES-GCM (EVP_AEAD)

/// An AES-GCM `EVP_AEAD_CTX` for one key and one tag length.
pub(crate) struct GcmCtx {
    ctx: NonNull<sys::EVP_AEAD_CTX>,
    tag_len: usize,
}

// SAFETY: GcmCtx exclusively owns its context.
unsafe impl Send for GcmCtx {}
// SAFETY: AWS-LC documents EVP_AEAD_CTX_seal/open as safe to call concurrently on one
// AES-GCM context (aead.h, "Concurrency"); `&self` methods only call those.
unsafe impl Sync for GcmCtx {}

impl GcmCtx {
    /// `key` is 16, 24 or 32 bytes; `tag_len` 1..=16 (checked by the caller).
    pub(crate) fn new(key: &[u8], tag_len: usize) -> Option<GcmCtx> {
        // SAFETY: the accessors return static EVP_AEAD tables.
        let aead = unsafe {
            match key.len() {
                16 => sys::EVP_aead_aes_128_gcm(),
                24 => sys::EVP_aead_aes_192_gcm(),
                32 => sys::EVP_aead_aes_256_gcm(),
                _ => return None,
            }
        };
        // SAFETY: `key` is valid for its length; the EVP_AEAD is static.
        let raw = unsafe { sys::EVP_AEAD_CTX_new(aead, key.as_ptr(), key.len(), tag_len) };
        NonNull::new(raw).map(|ctx| GcmCtx { ctx, tag_len })
    }

    /// Returns ciphertext || tag (`plaintext.len() + tag_len` bytes), or `None` if
    /// AWS-LC refuses (input too long).
    pub(crate) fn seal(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        let max = plaintext.len().checked_add(self.tag_len)?;
        // Written by AWS-LC before it is read: no need to zero-fill 4 KiB per call.
        let mut out: Vec<u8> = Vec::with_capacity(max);
        let mut out_len = 0usize;
        // SAFETY: the inputs are valid for their lengths; `out` has `max` bytes of
        // (uninitialised) capacity that AWS-LC only writes, never reads, and that cannot
        // overlap the inputs; the context is initialised and seal only reads it.
        let ok = unsafe {
            sys::EVP_AEAD_CTX_seal(
                self.ctx.as_ptr(),
                out.as_mut_ptr(),
                &mut out_len,
                max,
                nonce.as_ptr(),
                nonce.len(),
                plaintext.as_ptr(),
                plaintext.len(),
                aad.as_ptr(),
                aad.len(),
            )
        };
        if ok != 1 || out_len != max {
            // SAFETY: no preconditions; clears this thread's AWS-LC error queue.
            unsafe { sys::ERR_clear_error() };
            return None;
        }
        // SAFETY: AWS-LC wrote exactly `max` bytes at the start of the buffer.
        unsafe { out.set_len(max) };
        Some(out)
    }

    /// Verifies and decrypts `ciphertext || tag`; `None` on authentication failure (the
    /// buffer AWS-LC may have written is wiped).
    pub(crate) fn open(&self, nonce: &[u8], aad: &[u8], input: &[u8]) -> Option<Vec<u8>> {
        let max = input.len().checked_sub(self.tag_len)?;
        let mut out: Vec<u8> = Vec::with_capacity(max);
        let mut out_len = 0usize;
        // SAFETY: as in `seal`; `out` has room for the whole plaintext.
        let ok = unsafe {
            sys::EVP_AEAD_CTX_open(
                self.ctx.as_ptr(),
                out.as_mut_ptr(),
                &mut out_len,
                max,
                nonce.as_ptr(),
                nonce.len(),
                input.as_ptr(),
                input.len(),
                aad.as_ptr(),
                aad.len(),
            )
        };
        if ok != 1 || out_len != max {
            // SAFETY: `out` owns `max` bytes of capacity, which may hold unauthenticated
            // plaintext; wiping writes only within it. Then clear the error queue.
            unsafe {
                cleanse(out.as_mut_ptr().cast(), max);
                sys::ERR_clear_error();
            }
            return None;
        }
        // SAFETY: AWS-LC wrote exactly `max` bytes at the start of the buffer.
        unsafe { out.set_len(max) };
        Some(out)
    }
}

impl Drop for GcmCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context. Cleanup releases the AEAD state (aead = NULL, so
        // the cleanup inside EVP_AEAD_CTX_free is a no-op), the struct (which holds the
        // key schedule inline) is wiped, then freed once.
        unsafe {
            sys::EVP_AEAD_CTX_cleanup(self.ctx.as_ptr());
            cleanse(
                self.ctx.as_ptr().cast(),
                std::mem::size_of::<sys::EVP_AEAD_CTX>(),
            );
            sys::EVP_AEAD_CTX_free(self.ctx.as_ptr());
        }
    }
}

/// Constant-time equality of two byte strings of equal length (false if lengths differ).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.is_empty() {
        return true;
    }
    // SAFETY: both slices are valid for `a.len()` bytes.
    unsafe { sys::CRYPTO_memcmp(a.as_ptr().cast(), b.as_ptr().cast(), a.len()) == 0 }
}

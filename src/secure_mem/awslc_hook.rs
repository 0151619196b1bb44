//! Routes every AWS-LC allocation (`OPENSSL_malloc` and everything built on it: BIGNUMs,
//! RSA/EC keys, EVP contexts, AES key schedules) into the locked arena with
//! `CRYPTO_set_mem_functions` (exported by aws-lc-sys as
//! `aws_lc_0_47_0_CRYPTO_set_mem_functions`).
//!
//! The hook is installed by an `.init_array` constructor, so in the shared object it runs
//! when the loader maps it, before any code can reach AWS-LC. If anything allocated
//! earlier (another constructor), such blocks carry AWS-LC's own 8-byte size prefix and
//! came from libc: `free`/`realloc` check that a pointer is the arena's before treating
//! it as such, and hand foreign ones back to libc the way AWS-LC would have (wiped).
//! A second install returns 0 and keeps the first (AWS-LC's rule).

use std::ffi::{c_char, c_int, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use super::arena;

static ROUTED: AtomicBool = AtomicBool::new(false);

/// AWS-LC's `OPENSSL_MALLOC_PREFIX`: the size word its default allocator puts before
/// each block.
const LC_PREFIX: usize = 8;

unsafe extern "C" fn lc_malloc(size: usize, _file: *const c_char, _line: c_int) -> *mut c_void {
    arena::alloc(size).map_or(std::ptr::null_mut(), |p| p.as_ptr().cast())
}

unsafe extern "C" fn lc_realloc(
    ptr: *mut c_void,
    new_size: usize,
    _file: *const c_char,
    _line: c_int,
) -> *mut c_void {
    let Some(old) = NonNull::new(ptr.cast::<u8>()) else {
        return arena::alloc(new_size).map_or(std::ptr::null_mut(), |p| p.as_ptr().cast());
    };
    if is_ours(old) {
        // SAFETY: AWS-LC passes a live block it got from us.
        return unsafe { arena::realloc(old, new_size) }
            .map_or(std::ptr::null_mut(), |p| p.as_ptr().cast());
    }
    // A block from AWS-LC's default allocator (before the hook went in).
    // SAFETY: such a block has AWS-LC's size word LC_PREFIX bytes before it.
    let old_size = unsafe { old.as_ptr().sub(LC_PREFIX).cast::<usize>().read() };
    let Some(new) = arena::alloc(new_size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the old block holds `old_size` bytes, the new one `new_size`; distinct.
    unsafe {
        std::ptr::copy_nonoverlapping(old.as_ptr(), new.as_ptr(), old_size.min(new_size));
        free_foreign(old);
    }
    new.as_ptr().cast()
}

unsafe extern "C" fn lc_free(ptr: *mut c_void, _file: *const c_char, _line: c_int) {
    let Some(p) = NonNull::new(ptr.cast::<u8>()) else {
        return;
    };
    if is_ours(p) {
        // SAFETY: AWS-LC frees each block it got from us once.
        unsafe { arena::free(p) }
    } else {
        // SAFETY: not the arena's, so it came from AWS-LC's default allocator.
        unsafe { free_foreign(p) }
    }
}

#[inline]
fn is_ours(p: NonNull<u8>) -> bool {
    arena::owns(p.as_ptr())
}

/// Frees a block of AWS-LC's default allocator as `OPENSSL_free` would: wipe prefix and
/// bytes, then libc `free`.
///
/// # Safety
/// `p` must be a live block from AWS-LC's default `OPENSSL_malloc`.
unsafe fn free_foreign(p: NonNull<u8>) {
    // SAFETY: the prefix word and the `size` bytes after it belong to the block, which
    // libc's malloc returned at `p - LC_PREFIX`.
    unsafe {
        let base = p.as_ptr().sub(LC_PREFIX);
        let size = base.cast::<usize>().read();
        zeroize::Zeroize::zeroize(std::slice::from_raw_parts_mut(base, size + LC_PREFIX));
        libc::free(base.cast());
    }
}

/// Installs the hook (idempotent: only the first call in the process can succeed).
pub fn install() -> bool {
    // SAFETY: the three functions match AWS-LC's expected signatures and stay valid for
    // the life of the process; CRYPTO_set_mem_functions only stores the pointers.
    let ok = unsafe {
        aws_lc_sys::CRYPTO_set_mem_functions(Some(lc_malloc), Some(lc_realloc), Some(lc_free))
    } == 1;
    if ok {
        ROUTED.store(true, Ordering::Release);
    }
    ok
}

/// Whether AWS-LC allocates from the arena in this process.
pub fn routed() -> bool {
    ROUTED.load(Ordering::Acquire)
}

/// The test switch's environment variable. It exists only in `test-hooks` builds: a test
/// checks that the release `.so` does not contain this name.
#[cfg(feature = "test-hooks")]
pub const DISABLE_ENV: &std::ffi::CStr = c"CLUSTERHSM_TEST_DISABLE_ARENA";

extern "C" fn constructor() {
    #[cfg(feature = "test-hooks")]
    {
        // SAFETY: getenv with a NUL-terminated name; the environment is set up before
        // .init_array functions run.
        if !unsafe { libc::getenv(DISABLE_ENV.as_ptr()) }.is_null() {
            arena::disable_for_tests();
            return;
        }
    }
    install();
}

/// Runs [`constructor`] when the object is loaded (shared object: at dlopen, before any
/// caller can reach AWS-LC; executable: before main).
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static INIT_ARRAY_ENTRY: extern "C" fn() = constructor;

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as AWS-LC's default allocator makes it: libc malloc, an 8-byte size word,
    /// the caller's pointer after it.
    fn foreign_block(bytes: &[u8]) -> *mut c_void {
        // SAFETY: malloc has no preconditions; the block holds the prefix and the bytes.
        unsafe {
            let base = libc::malloc(LC_PREFIX + bytes.len()).cast::<u8>();
            assert!(!base.is_null());
            base.cast::<usize>().write(bytes.len());
            let p = base.add(LC_PREFIX);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            p.cast()
        }
    }

    #[test]
    fn blocks_from_before_the_hook_go_back_to_libc() {
        let p = foreign_block(b"made before the hook");
        assert!(!arena::owns(p.cast()));
        // SAFETY: a live foreign block, freed once (glibc would abort on a bad free).
        unsafe { lc_free(p, std::ptr::null(), 0) };
    }

    #[test]
    fn realloc_moves_a_foreign_block_into_the_arena() {
        let p = foreign_block(b"0123456789abcdef");
        // SAFETY: a live foreign block; realloc takes ownership of it.
        let q = unsafe { lc_realloc(p, 64, std::ptr::null(), 0) };
        assert!(arena::owns(q.cast()));
        // SAFETY: q is a live arena block of 64 bytes, the first 16 copied.
        unsafe {
            assert_eq!(
                std::slice::from_raw_parts(q.cast::<u8>(), 16),
                b"0123456789abcdef"
            );
            let r = lc_realloc(q, 8, std::ptr::null(), 0);
            assert_eq!(std::slice::from_raw_parts(r.cast::<u8>(), 8), b"01234567");
            lc_free(r, std::ptr::null(), 0);
            lc_free(std::ptr::null_mut(), std::ptr::null(), 0);
        }
    }

    #[test]
    fn hook_is_installed_once() {
        assert!(routed(), "the constructor installed it");
        assert!(
            !install(),
            "a second install is refused and keeps the first"
        );
        // SAFETY: OPENSSL_malloc/free through the hook.
        unsafe {
            let p = aws_lc_sys::OPENSSL_malloc(100);
            assert!(arena::owns(p.cast()));
            assert_eq!(p as usize % 16, 0, "16-byte aligned for AWS-LC");
            aws_lc_sys::OPENSSL_free(p);
        }
    }
}

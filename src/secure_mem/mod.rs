//! Secret-holding memory. `SecretBytes` is the one type every key value, PIN and derived
//! key lives in: stored in the locked arena ([`arena`]: mlock'd, MADV_DONTDUMP, guard
//! pages around each chunk), wiped on free, never cloned implicitly, redacted in `Debug`.
//! AWS-LC allocates from the same arena ([`awslc_hook`]), so parsed keys, BIGNUMs and key
//! schedules are covered too.
//!
//! What stays outside: ordinary Rust heap allocations (the module installs no global
//! allocator). A value that passes through a plain `Vec` before it becomes a
//! `SecretBytes` leaves that `Vec` on the libc heap: `SecretBytes::new` wipes the `Vec` it
//! is given (its whole capacity), but not the copies an earlier reallocation of that `Vec`
//! left behind. Build secrets in place (`zeroed` + `expose_mut`) where sizes are known.
//!
//! Valgrind: see [`valgrind`] for what Memcheck sees inside the arena.
#![allow(unsafe_code)]

pub mod arena;
pub mod awslc_hook;
pub mod registers;
pub mod valgrind;

use std::ptr::NonNull;

use zeroize::Zeroize;

/// The arena's figures, for `CHSM_GetMemoryStats` and `clusterhsm status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemStats {
    /// Bytes of arena chunks currently mlock'd.
    pub locked_bytes: usize,
    /// Bytes of arena chunks mapped (guard pages not counted).
    pub mapped_bytes: usize,
    /// Bytes handed out to live blocks (16-byte headers included).
    pub in_use_bytes: usize,
    /// Every chunk is locked (false when RLIMIT_MEMLOCK was too small, or in a forked
    /// child that has not locked its chunks again yet).
    pub locking_complete: bool,
    /// AWS-LC allocates from the arena.
    pub aws_lc_routed: bool,
}

/// The arena's current figures.
pub fn stats() -> MemStats {
    let c = arena::counters();
    MemStats {
        locked_bytes: c.locked_bytes,
        mapped_bytes: c.mapped_bytes,
        in_use_bytes: c.in_use_bytes,
        locking_complete: c.locking_complete,
        aws_lc_routed: awslc_hook::routed(),
    }
}

/// Called by C_Initialize (after the log is set up): in a forked child, locks the chunks
/// again; makes sure one chunk exists so that whether locking works is known (and
/// logged, once) from the start.
pub fn on_initialize() {
    arena::relock_if_forked();
    if let Some(p) = arena::alloc(1) {
        // SAFETY: a live block just allocated.
        unsafe { arena::free(p) };
    }
    warn_if_pending();
}

/// Logs the one warning about chunks that could not be locked. Never called from inside
/// the allocator (logging allocates).
fn warn_if_pending() {
    if arena::take_warning() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit struct we own.
        let limit = if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0 {
            lim.rlim_cur.to_string()
        } else {
            "unknown".to_string()
        };
        crate::log_warn!(
            "secure memory: mlock failed (RLIMIT_MEMLOCK is {limit} bytes and no CAP_IPC_LOCK); \
             keys stay out of core dumps and are wiped on free, but may be swapped to disk. \
             Raise the limit (ulimit -l, LimitMEMLOCK=) to lock them."
        );
    }
}

/// Owned secret bytes in the locked arena: wiped on drop, no `Clone`, `Debug` prints only
/// the length.
pub struct SecretBytes {
    /// Dangling when `len == 0` (nothing allocated), else a live arena block.
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: SecretBytes exclusively owns its block; the arena is thread-safe (a block may be
// freed from any thread).
unsafe impl Send for SecretBytes {}
// SAFETY: `&SecretBytes` only gives out `&[u8]`.
unsafe impl Sync for SecretBytes {}

impl SecretBytes {
    /// An arena block of `len` bytes, contents unspecified (dangling for 0).
    fn alloc(len: usize) -> NonNull<u8> {
        if len == 0 {
            return NonNull::dangling();
        }
        let p = arena::alloc(len).unwrap_or_else(|| {
            std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(len, arena::ALIGN)
                    .unwrap_or(std::alloc::Layout::new::<u128>()),
            )
        });
        warn_if_pending();
        p
    }

    /// Copies `bytes` into the arena and wipes the caller's buffer (its whole capacity).
    pub fn new(mut bytes: Vec<u8>) -> Self {
        let s = Self::from_slice(&bytes);
        bytes.zeroize();
        s
    }

    /// Copies `bytes` into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let ptr = Self::alloc(bytes.len());
        if !bytes.is_empty() {
            // SAFETY: `ptr` is a fresh block of `bytes.len()` bytes, distinct from `bytes`.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
        }
        SecretBytes {
            ptr,
            len: bytes.len(),
        }
    }

    /// A zero-filled secret of `len` bytes, to be written in place.
    pub fn zeroed(len: usize) -> Self {
        let ptr = Self::alloc(len);
        if len > 0 {
            // SAFETY: `ptr` is a fresh block of `len` bytes.
            unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, len) };
        }
        SecretBytes { ptr, len }
    }

    pub fn expose(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: a live block of `len` initialised bytes, owned by self for `&self`'s life.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn expose_mut(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as in `expose`, and `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An explicit copy; named so that duplicating a secret is always visible in review.
    pub fn duplicate(&self) -> Self {
        Self::from_slice(self.expose())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: our live block, freed once (the arena wipes it first).
            unsafe { arena::free(self.ptr) };
        }
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes([REDACTED; {}])", self.len)
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time comparison of two secrets of equal length.
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len {
            return false;
        }
        let diff = self
            .expose()
            .iter()
            .zip(other.expose().iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl Eq for SecretBytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretBytes::from_slice(b"hunter2");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains('7'));
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(
            SecretBytes::from_slice(b"ab"),
            SecretBytes::from_slice(b"ab")
        );
        assert_ne!(
            SecretBytes::from_slice(b"ab"),
            SecretBytes::from_slice(b"ac")
        );
        assert_ne!(
            SecretBytes::from_slice(b"ab"),
            SecretBytes::from_slice(b"abc")
        );
    }

    #[test]
    fn secrets_live_in_the_arena() {
        let s = SecretBytes::from_slice(&[7u8; 40]);
        assert!(arena::owns(s.expose().as_ptr()));
        assert_eq!(s.expose().as_ptr() as usize % arena::ALIGN, 0);
        let e = SecretBytes::zeroed(0);
        assert!(e.is_empty() && e.expose().is_empty());
        let st = stats();
        assert!(st.mapped_bytes >= arena::CHUNK_SIZE);
        assert!(st.in_use_bytes >= 40);
    }

    #[test]
    fn new_wipes_the_vec_it_was_given() {
        let v = vec![0xA5u8; 64];
        let s = SecretBytes::new(v);
        assert_eq!(s.expose(), &[0xA5u8; 64][..]);
    }

    #[test]
    fn free_wipes_the_block() {
        let pattern: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8 | 0x80).collect();
        let s = SecretBytes::from_slice(&pattern);
        let at = s.expose().as_ptr() as usize;
        drop(s);
        // The chunk stays mapped; talc may reuse a few words for its free lists, but no
        // run of the secret survives.
        // SAFETY: the memory is a mapped, readable arena chunk (never unmapped).
        let after: Vec<u8> = (0..200)
            .map(|i| unsafe { std::ptr::read_volatile((at + i) as *const u8) })
            .collect();
        assert!(after
            .windows(8)
            .all(|w| !pattern.windows(8).any(|p| p == w)));
    }

    #[test]
    fn aws_lc_allocates_from_the_arena() {
        assert!(
            stats().aws_lc_routed,
            "the .init_array constructor installed the hook"
        );
        let k = crate::crypto::rsa::RsaPrivateKey::generate(2048, &[1, 0, 1]).unwrap();
        let before = stats().in_use_bytes;
        let sig = k.sign_pkcs1v15_digest(crate::crypto::digest::HashAlg::Sha256, &[1u8; 32]);
        assert!(sig.is_ok());
        assert!(before > 1000, "the RSA key's BIGNUMs are arena blocks");
    }

    #[test]
    fn large_and_many_blocks_from_many_threads() {
        let big = SecretBytes::zeroed(3 * arena::CHUNK_SIZE);
        assert!(arena::owns(big.expose().as_ptr()));
        assert!(arena::owns(&big.expose()[3 * arena::CHUNK_SIZE - 1]));
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..2000usize {
                        let s = SecretBytes::from_slice(&vec![t; 1 + i % 300]);
                        if i % 3 == 0 {
                            held.push(s);
                        }
                    }
                    held.iter().all(|s| s.expose().iter().all(|&b| b == t))
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap());
        }
    }

    #[test]
    fn realloc_keeps_the_prefix() {
        let p = arena::alloc(10).unwrap();
        // SAFETY: a fresh 10-byte block.
        unsafe { std::ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p.as_ptr(), 10) };
        // SAFETY: a live block of ours.
        let q = unsafe { arena::realloc(p, 5000) }.unwrap();
        // SAFETY: q is a live block of at least 10 bytes.
        unsafe {
            assert_eq!(std::slice::from_raw_parts(q.as_ptr(), 10), b"0123456789");
            assert_eq!(arena::size_of(q), 5000);
            arena::free(q);
        }
    }

    /// Memcheck reports a read one byte past a `SecretBytes` as it would for malloc
    /// (the client requests work). Skipped when valgrind is not installed.
    #[test]
    fn memcheck_sees_arena_blocks() {
        const CHILD: &str = "CLUSTERHSM_MEMCHECK_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let s = SecretBytes::from_slice(&[1u8; 24]);
            let p = s.expose().as_ptr();
            // SAFETY: one byte past the block on purpose: still mapped arena memory, so
            // the read is harmless natively; Memcheck must flag it.
            let v = unsafe { std::ptr::read_volatile(p.add(24)) };
            std::hint::black_box(v);
            return;
        }
        if std::process::Command::new("valgrind")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("SKIP: valgrind is not installed");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("valgrind")
            .arg("--error-exitcode=99")
            .arg(exe)
            .args([
                "secure_mem::tests::memcheck_sees_arena_blocks",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(99), "{err}");
        assert!(
            err.contains("is 0 bytes after a block of size 24 alloc'd"),
            "{err}"
        );
        assert_eq!(err.matches("Invalid read").count(), 1, "{err}");
    }

    #[test]
    fn a_forked_child_locks_its_chunks_again() {
        let _s = SecretBytes::from_slice(b"before fork");
        let locked_before = stats().locked_bytes;
        // SAFETY: the child only calls the arena (whose locks the atfork handlers reset),
        // reads its stats and leaves with _exit; no other library state is touched.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let forked = stats();
            let s = SecretBytes::from_slice(b"after fork");
            let relocked = stats();
            let ok = !forked.locking_complete
                && forked.locked_bytes == 0
                && relocked.locked_bytes >= locked_before
                && relocked.locking_complete == (relocked.locked_bytes == relocked.mapped_bytes)
                && s.expose() == b"after fork";
            // SAFETY: ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}

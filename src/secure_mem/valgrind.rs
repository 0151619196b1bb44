//! Memcheck client requests (valgrind.h's `VALGRIND_*` macros) without a C dependency:
//! the arena tells Memcheck where its blocks start and end, so a read past the end of a
//! `SecretBytes` or of an AWS-LC object, or a use after free, is reported as it would be
//! for `malloc`.
//!
//! What Memcheck sees: every arena block as a heap block (leaks included), chunk memory
//! outside live blocks as unaddressable, freed blocks as unaddressable. What it cannot
//! see: the allocator's own bookkeeping (talc's free lists and our 16-byte headers) is
//! read and written with error reporting switched off for the calling thread, so a
//! corruption *of* that bookkeeping by the allocator itself is not reported; AWS-LC blocks
//! allocated before the hook went in (libc, tracked by Memcheck's own malloc wrappers);
//! and on targets other than x86_64 these requests are no-ops.
//!
//! Outside Valgrind the instruction sequence is a no-op (four rotations of `rdi` by a
//! total of 128 bits and `xchg rbx, rbx`); the arena checks [`running`] once anyway and
//! skips the requests, so a normal run pays one relaxed load per allocation.

use std::sync::atomic::{AtomicU8, Ordering};

const RUNNING_ON_VALGRIND: usize = 0x1001;
const MALLOCLIKE_BLOCK: usize = 0x1301;
const FREELIKE_BLOCK: usize = 0x1302;
const CHANGE_ERR_DISABLEMENT: usize = 0x1801;
/// VG_USERREQ_TOOL_BASE('M','C') + 0 (memcheck.h).
const MAKE_MEM_NOACCESS: usize = (b'M' as usize) << 24 | (b'C' as usize) << 16;

/// 0 = not asked yet, 1 = no, 2 = yes.
static RUNNING: AtomicU8 = AtomicU8::new(0);

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn request(default: usize, args: [usize; 6]) -> usize {
    let mut result = default;
    // SAFETY: the "special instruction preamble" of valgrind.h for amd64. Natively it
    // rotates rdi by 3+13+61+51 = 128 bits (back to its value; declared clobbered anyway)
    // and exchanges rbx with itself; under Valgrind it is a client request reading the
    // six words at `args` (which lives until the asm returns) and writing rdx.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") result,
            in("rax") args.as_ptr(),
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    result
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn request(default: usize, _args: [usize; 6]) -> usize {
    default
}

/// Whether the process runs under Valgrind (asked once).
#[inline]
pub fn running() -> bool {
    match RUNNING.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let on = request(0, [RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0]) != 0;
            RUNNING.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// A block of `size` bytes at `addr` was handed out (VALGRIND_MALLOCLIKE_BLOCK).
#[inline]
pub fn malloclike(addr: *const u8, size: usize) {
    if running() {
        request(0, [MALLOCLIKE_BLOCK, addr as usize, size, 0, 0, 0]);
    }
}

/// The block at `addr` was freed (VALGRIND_FREELIKE_BLOCK).
#[inline]
pub fn freelike(addr: *const u8) {
    if running() {
        request(0, [FREELIKE_BLOCK, addr as usize, 0, 0, 0, 0]);
    }
}

/// Marks `len` bytes at `addr` unaddressable (VALGRIND_MAKE_MEM_NOACCESS).
#[inline]
pub fn make_noaccess(addr: *const u8, len: usize) {
    if running() {
        request(0, [MAKE_MEM_NOACCESS, addr as usize, len, 0, 0, 0]);
    }
}

/// Switches error reporting off for this thread while the allocator touches its own
/// bookkeeping inside chunk memory; the guard switches it back on.
#[inline]
pub fn allocator_internals() -> Internals {
    let on = running();
    if on {
        request(0, [CHANGE_ERR_DISABLEMENT, 1, 0, 0, 0, 0]);
    }
    Internals { on }
}

pub struct Internals {
    on: bool,
}

impl Drop for Internals {
    #[inline]
    fn drop(&mut self) {
        if self.on {
            request(0, [CHANGE_ERR_DISABLEMENT, usize::MAX, 0, 0, 0, 0]);
        }
    }
}

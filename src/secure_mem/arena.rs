//! The locked arena: 1 MiB `mmap` chunks, each between two `PROT_NONE` guard pages,
//! marked `MADV_DONTDUMP` and `mlock`ed, carved up by talc. Four shards, each its own talc
//! heap behind its own mutex: a thread sticks to one shard (round-robin on first use) and
//! falls over to another when that one is busy; a block goes back to the shard that
//! handed it out (recorded in its header). Every block is wiped before it is freed.
//!
//! Block layout: a 16-byte header `[user size: usize][shard: u32][magic: u32]` followed by
//! the user's bytes, 16-byte aligned (AWS-LC needs at least 8).
//!
//! Chunks are never unmapped (AWS-LC may free a block at thread exit, long after
//! C_Finalize); freed space is reused. `mlock` is not inherited by a child process: a
//! `pthread_atfork` child handler only sets a flag, and the next allocation (or
//! C_Initialize) in the child locks the chunks again. The same handlers hold every shard
//! lock across `fork`, as libc's malloc does, so a child never inherits a lock that a
//! vanished thread held.

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};
use talc::{OomHandler, Span, Talc};

use super::valgrind;

/// Usable bytes of an ordinary chunk (a larger block gets a chunk of its own size).
pub const CHUNK_SIZE: usize = 1 << 20;
/// Number of independently locked heaps.
pub const SHARDS: usize = 4;
/// Alignment of every block handed out.
pub const ALIGN: usize = 16;
const HEADER: usize = 16;
const MAGIC: u32 = 0x5EC2_E7A1;
/// At most this many chunks (4 GiB of ordinary chunks); the table is a fixed array so
/// that recording a chunk never allocates.
const MAX_CHUNKS: usize = 4096;
/// Room for talc's own metadata in a chunk made for one large block.
const LARGE_SLACK: usize = 64 * 1024;

/// The chunk source for talc: maps a new chunk when a shard runs out.
struct ChunkSource;

impl OomHandler for ChunkSource {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        let want = layout
            .size()
            .checked_add(layout.align())
            .and_then(|n| n.checked_add(LARGE_SLACK))
            .ok_or(())?;
        let size = round_up(want.max(CHUNK_SIZE), page_size()).ok_or(())?;
        let base = map_chunk(size).ok_or(())?;
        // SAFETY: `base..base+size` is a fresh read-write mapping that nothing else uses
        // and that is never unmapped; it overlaps no other heap.
        unsafe { talc.claim(Span::from_base_size(base, size)) }.map(|_| ())
    }
}

#[repr(align(64))]
struct Shard {
    heap: Mutex<Talc<ChunkSource>>,
    /// Bytes handed out from this shard (headers included); written under `heap`'s lock.
    in_use: AtomicUsize,
}

static SHARD: [Shard; SHARDS] = [const {
    Shard {
        heap: Mutex::new(Talc::new(ChunkSource)),
        in_use: AtomicUsize::new(0),
    }
}; SHARDS];

/// Serializes chunk mapping (taken while holding a shard lock, never the other way).
static MAP_LOCK: Mutex<()> = Mutex::new(());
static CHUNK_START: [AtomicUsize; MAX_CHUNKS] = [const { AtomicUsize::new(0) }; MAX_CHUNKS];
static CHUNK_END: [AtomicUsize; MAX_CHUNKS] = [const { AtomicUsize::new(0) }; MAX_CHUNKS];
static CHUNK_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Lowest chunk start and highest chunk end: a cheap first test in [`owns`].
static LOWEST: AtomicUsize = AtomicUsize::new(usize::MAX);
static HIGHEST: AtomicUsize = AtomicUsize::new(0);

static MAPPED: AtomicUsize = AtomicUsize::new(0);
static LOCKED: AtomicUsize = AtomicUsize::new(0);
/// Some chunk could not be locked (RLIMIT_MEMLOCK without CAP_IPC_LOCK).
static LOCK_FAILED: AtomicBool = AtomicBool::new(false);
/// A fork happened and the child has not locked its chunks again yet.
static FORKED: AtomicBool = AtomicBool::new(false);
/// The one warning about failed locking: armed until the first failure, then pending
/// until someone outside the allocator takes it (logging may allocate).
static WARN_ARMED: AtomicBool = AtomicBool::new(true);
static WARN_PENDING: AtomicBool = AtomicBool::new(false);
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's home shard; `usize::MAX` until first use. No destructor, so it is
    /// usable during thread teardown (AWS-LC frees its thread state then).
    static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[cfg(feature = "test-hooks")]
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Test builds only: the arena is bypassed (blocks come from libc malloc, nothing is
/// locked or hidden from core dumps). Must be called before the first allocation.
#[cfg(feature = "test-hooks")]
pub fn disable_for_tests() {
    DISABLED.store(true, Ordering::SeqCst);
}

#[cfg(feature = "test-hooks")]
fn disabled() -> bool {
    DISABLED.load(Ordering::Relaxed)
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
fn disabled() -> bool {
    false
}

/// Wipes `len` bytes at `ptr` with `memset` speed (the `zeroize` crate writes a byte at a
/// time, which made freeing large AWS-LC blocks measurably slower), then an empty `asm`
/// that takes the pointer and may read memory, so the stores cannot be elided — the same
/// construction as AWS-LC's `OPENSSL_cleanse`.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
#[inline]
pub(crate) unsafe fn wipe(ptr: *mut u8, len: usize) {
    // SAFETY: forwarded caller guarantee.
    unsafe { std::ptr::write_bytes(ptr, 0, len) };
    // SAFETY: an empty instruction sequence; it only makes the compiler assume that the
    // memory behind `ptr` is read here.
    unsafe { std::arch::asm!("/* {0} */", in(reg) ptr, options(nostack, preserves_flags)) };
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v / to * to)
}

/// Maps, guards, hides and locks a chunk of `size` usable bytes (a page multiple) and
/// records it. Returns the start of the usable part.
fn map_chunk(size: usize) -> Option<*mut u8> {
    let _map = MAP_LOCK.lock();
    let n = CHUNK_COUNT.load(Ordering::Relaxed);
    if n >= MAX_CHUNKS {
        return None;
    }
    if n == 0 {
        register_fork_handlers();
    }
    let page = page_size();
    let total = size.checked_add(2 * page)?;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing; no
    // existing memory is affected.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let raw = raw.cast::<u8>();
    // SAFETY: `raw + page` is inside the `total`-byte mapping just made.
    let base = unsafe { raw.add(page) };
    // SAFETY: `base..base+size` lies inside our fresh mapping (one guard page each side
    // stays PROT_NONE); the madvise covers exactly the mapping.
    let ok = unsafe {
        libc::mprotect(base.cast(), size, libc::PROT_READ | libc::PROT_WRITE) == 0
            && libc::madvise(raw.cast(), total, libc::MADV_DONTDUMP) == 0
    };
    if !ok {
        // Without MADV_DONTDUMP the chunk would not keep secrets out of core dumps: fail
        // the allocation rather than hand out such memory.
        // SAFETY: unmapping exactly the mapping made above, which nothing uses yet.
        unsafe { libc::munmap(raw.cast(), total) };
        return None;
    }
    lock_range(base, size);
    valgrind::make_noaccess(base, size);
    let start = base as usize;
    CHUNK_START[n].store(start, Ordering::Relaxed);
    CHUNK_END[n].store(start + size, Ordering::Relaxed);
    CHUNK_COUNT.store(n + 1, Ordering::Release);
    LOWEST.fetch_min(start, Ordering::Release);
    HIGHEST.fetch_max(start + size, Ordering::Release);
    MAPPED.fetch_add(size, Ordering::Relaxed);
    Some(base)
}

/// mlock one chunk; on failure remember it (and arm the one warning).
fn lock_range(base: *mut u8, size: usize) {
    // SAFETY: `base..base+size` is a mapping of ours; mlock only pins it.
    if unsafe { libc::mlock(base.cast(), size) } == 0 {
        LOCKED.fetch_add(size, Ordering::Relaxed);
    } else {
        LOCK_FAILED.store(true, Ordering::Relaxed);
        if WARN_ARMED.swap(false, Ordering::Relaxed) {
            WARN_PENDING.store(true, Ordering::Release);
        }
    }
}

/// Whether `ptr` lies in one of the arena's chunks.
#[inline]
pub fn owns(ptr: *const u8) -> bool {
    let a = ptr as usize;
    if a < LOWEST.load(Ordering::Acquire) || a >= HIGHEST.load(Ordering::Acquire) {
        return false;
    }
    let n = CHUNK_COUNT.load(Ordering::Acquire);
    (0..n).any(|i| {
        a >= CHUNK_START[i].load(Ordering::Relaxed) && a < CHUNK_END[i].load(Ordering::Relaxed)
    })
}

fn home_shard() -> usize {
    HOME.try_with(|h| {
        let v = h.get();
        if v < SHARDS {
            v
        } else {
            let v = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            h.set(v);
            v
        }
    })
    .unwrap_or(0)
}

/// The home shard if free, else any free one, else wait for the home shard.
fn lock_some_shard() -> (usize, MutexGuard<'static, Talc<ChunkSource>>) {
    let home = home_shard();
    for k in 0..SHARDS {
        let i = (home + k) % SHARDS;
        if let Some(g) = SHARD[i].heap.try_lock() {
            return (i, g);
        }
    }
    (home, SHARD[home].heap.lock())
}

/// Allocates `size` bytes (at least 1) of locked, non-dumpable memory, 16-byte aligned.
/// None when memory is exhausted.
pub fn alloc(size: usize) -> Option<NonNull<u8>> {
    if disabled() {
        return libc_alloc(size);
    }
    relock_if_forked();
    let size = size.max(1);
    let total = size.checked_add(HEADER)?;
    let layout = Layout::from_size_align(total, ALIGN).ok()?;
    let (shard, mut heap) = lock_some_shard();
    let base = {
        let _internals = valgrind::allocator_internals();
        // SAFETY: `layout` has a non-zero size.
        let base = unsafe { heap.malloc(layout) }.ok()?;
        // SAFETY: talc handed out `total` >= HEADER bytes at `base`, 16-aligned, so the
        // header words are in bounds and aligned.
        unsafe {
            base.as_ptr().cast::<usize>().write(size);
            base.as_ptr().add(8).cast::<u32>().write(shard as u32);
            base.as_ptr().add(12).cast::<u32>().write(MAGIC);
        }
        base
    };
    // Only the lock holder writes this counter: a plain load and store, no atomic RMW.
    let used = &SHARD[shard].in_use;
    used.store(used.load(Ordering::Relaxed) + total, Ordering::Relaxed);
    drop(heap);
    // SAFETY: `HEADER < total`, still inside the block.
    let user = unsafe { base.as_ptr().add(HEADER) };
    valgrind::malloclike(user, size);
    NonNull::new(user)
}

/// The user size recorded in the header of a block of ours.
///
/// # Safety
/// `ptr` must be a live block returned by [`alloc`] (not by the test-only libc path).
unsafe fn header(ptr: *mut u8) -> (usize, usize) {
    let _internals = valgrind::allocator_internals();
    // SAFETY: a live block has its header in the 16 bytes before it (caller guarantee).
    unsafe {
        let base = ptr.sub(HEADER);
        let size = base.cast::<usize>().read();
        let shard = base.add(8).cast::<u32>().read() as usize;
        let magic = base.add(12).cast::<u32>().read();
        if magic != MAGIC || shard >= SHARDS {
            // A double free or a corrupted header: continuing could hand the same
            // memory out twice.
            std::process::abort();
        }
        (size, shard)
    }
}

/// The usable size of a block of ours.
///
/// # Safety
/// As for [`free`].
pub unsafe fn size_of(ptr: NonNull<u8>) -> usize {
    if disabled() {
        // SAFETY: a live libc block (caller guarantee).
        return unsafe { libc_size(ptr) };
    }
    // SAFETY: forwarded caller guarantee.
    unsafe { header(ptr.as_ptr()) }.0
}

/// Wipes and frees a block.
///
/// # Safety
/// `ptr` must come from [`alloc`] and not have been freed.
pub unsafe fn free(ptr: NonNull<u8>) {
    if disabled() {
        // SAFETY: forwarded caller guarantee.
        return unsafe { libc_free(ptr) };
    }
    let ptr = ptr.as_ptr();
    // SAFETY: a live block of ours (caller guarantee).
    let (size, shard) = unsafe { header(ptr) };
    // SAFETY: the block's `size` user bytes are ours until freed.
    unsafe { wipe(ptr, size) };
    let total = size + HEADER;
    let mut heap = SHARD[shard].heap.lock();
    {
        let _internals = valgrind::allocator_internals();
        // SAFETY: the header is part of the block; wiping it also makes a second free
        // of the same pointer abort (magic gone).
        unsafe { wipe(ptr.sub(HEADER), HEADER) };
        // SAFETY: `ptr - HEADER` was returned by this shard's talc for exactly this
        // layout (size and shard from the header written at allocation).
        unsafe {
            heap.free(
                NonNull::new_unchecked(ptr.sub(HEADER)),
                Layout::from_size_align_unchecked(total, ALIGN),
            )
        };
    }
    let used = &SHARD[shard].in_use;
    used.store(used.load(Ordering::Relaxed) - total, Ordering::Relaxed);
    drop(heap);
    valgrind::freelike(ptr);
}

/// Moves a block to a new one of `new_size` bytes (the old one is wiped and freed).
///
/// # Safety
/// As for [`free`].
pub unsafe fn realloc(ptr: NonNull<u8>, new_size: usize) -> Option<NonNull<u8>> {
    // SAFETY: forwarded caller guarantee.
    let old = unsafe { size_of(ptr) };
    let new = alloc(new_size)?;
    // SAFETY: both blocks are live, distinct, and at least min(old, new_size) long.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old.min(new_size));
        free(ptr);
    }
    Some(new)
}

// ---------------------------------------------------------------------------------------
// The test-only libc path: a size prefix so that free can wipe.

fn libc_alloc(size: usize) -> Option<NonNull<u8>> {
    let total = size.max(1).checked_add(HEADER)?;
    // SAFETY: calloc has no preconditions; NULL is checked.
    let base = NonNull::new(unsafe { libc::calloc(1, total) }.cast::<u8>())?;
    // SAFETY: `total` >= HEADER bytes at a malloc-aligned (16) address.
    unsafe {
        base.as_ptr().cast::<usize>().write(size.max(1));
        NonNull::new(base.as_ptr().add(HEADER))
    }
}

/// # Safety
/// `ptr` from [`libc_alloc`], live.
unsafe fn libc_size(ptr: NonNull<u8>) -> usize {
    // SAFETY: the size prefix sits HEADER bytes before the block.
    unsafe { ptr.as_ptr().sub(HEADER).cast::<usize>().read() }
}

/// # Safety
/// `ptr` from [`libc_alloc`], live.
unsafe fn libc_free(ptr: NonNull<u8>) {
    // SAFETY: the block is ours: wipe header and bytes, then give it back to libc.
    unsafe {
        let size = libc_size(ptr);
        let base = ptr.as_ptr().sub(HEADER);
        wipe(base, size + HEADER);
        libc::free(base.cast());
    }
}

// ---------------------------------------------------------------------------------------
// fork

fn register_fork_handlers() {
    // SAFETY: the three handlers are plain functions that live as long as the process
    // (the module is linked with -z nodelete).
    unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_parent),
            Some(after_fork_child),
        );
    }
}

unsafe extern "C" fn before_fork() {
    for s in &SHARD {
        std::mem::forget(s.heap.lock());
    }
    std::mem::forget(MAP_LOCK.lock());
}

fn unlock_all() {
    // SAFETY: `before_fork` locked each of these in this very thread and forgot the
    // guards; this is the matching unlock (in the parent, or in the child, where the
    // forking thread is the only thread).
    unsafe {
        MAP_LOCK.force_unlock();
        for s in &SHARD {
            s.heap.force_unlock();
        }
    }
}

unsafe extern "C" fn after_fork_parent() {
    unlock_all();
}

unsafe extern "C" fn after_fork_child() {
    unlock_all();
    LOCKED.store(0, Ordering::Relaxed);
    FORKED.store(true, Ordering::Release);
}

/// In a child after fork: lock every chunk again (mlock is not inherited). One relaxed
/// load when there was no fork.
#[inline]
pub fn relock_if_forked() {
    if FORKED.load(Ordering::Relaxed) {
        relock_slow();
    }
}

#[cold]
fn relock_slow() {
    let _map = MAP_LOCK.lock();
    if !FORKED.swap(false, Ordering::AcqRel) {
        return;
    }
    LOCK_FAILED.store(false, Ordering::Relaxed);
    let n = CHUNK_COUNT.load(Ordering::Acquire);
    for i in 0..n {
        let start = CHUNK_START[i].load(Ordering::Relaxed);
        let end = CHUNK_END[i].load(Ordering::Relaxed);
        lock_range(start as *mut u8, end - start);
    }
}

// ---------------------------------------------------------------------------------------
// statistics

pub struct Counters {
    pub locked_bytes: usize,
    pub mapped_bytes: usize,
    pub in_use_bytes: usize,
    pub locking_complete: bool,
}

pub fn counters() -> Counters {
    Counters {
        locked_bytes: LOCKED.load(Ordering::Relaxed),
        mapped_bytes: MAPPED.load(Ordering::Relaxed),
        in_use_bytes: SHARD.iter().map(|s| s.in_use.load(Ordering::Relaxed)).sum(),
        locking_complete: !disabled()
            && !LOCK_FAILED.load(Ordering::Relaxed)
            && !FORKED.load(Ordering::Relaxed),
    }
}

/// Takes the pending "could not lock" warning, if any (at most once per process).
pub fn take_warning() -> bool {
    WARN_PENDING.load(Ordering::Relaxed) && WARN_PENDING.swap(false, Ordering::Acquire)
}

/// The chunks' usable ranges (for tests and diagnostics).
pub fn chunks() -> Vec<(usize, usize)> {
    let n = CHUNK_COUNT.load(Ordering::Acquire);
    (0..n)
        .map(|i| {
            (
                CHUNK_START[i].load(Ordering::Relaxed),
                CHUNK_END[i].load(Ordering::Relaxed),
            )
        })
        .collect()
}

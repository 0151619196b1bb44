//! The cross-process change counter: one u64 in a small shared memory-mapped file in the
//! store directory, bumped after each committed write and read with one atomic load.

#![allow(unsafe_code)]

use crate::error::{Error, Result};
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub const COUNTER_FILE: &str = "changes.shm";
const MAP_LEN: usize = 4096;

pub struct ChangeCounter {
    ptr: *mut AtomicU64,
    /// False on a read-only store: the page is mapped PROT_READ and never written.
    writable: bool,
}

// SAFETY: the mapping is shared memory accessed only through an AtomicU64; the pointer is
// valid until Drop unmaps it and safe to use from any thread.
unsafe impl Send for ChangeCounter {}
// SAFETY: as above; all access is atomic.
unsafe impl Sync for ChangeCounter {}

impl ChangeCounter {
    pub fn open(path: &Path) -> Result<ChangeCounter> {
        match Self::map(path, true) {
            Ok(c) => Ok(c),
            // A read-only store (read-only mount, no write permission): map it for reading.
            Err(rw) => Self::map(path, false).map_err(|_| rw),
        }
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    fn map(path: &Path, writable: bool) -> Result<ChangeCounter> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .create(writable)
            .truncate(false)
            .open(path)
            .map_err(|e| {
                Error::DeviceError(format!(
                    "cannot open change counter {}: {e}",
                    path.display()
                ))
            })?;
        let len = file
            .metadata()
            .map_err(|e| Error::DeviceError(format!("change counter: {e}")))?
            .len();
        if len < MAP_LEN as u64 {
            if !writable {
                return Err(Error::DeviceError(format!(
                    "change counter {} is too short",
                    path.display()
                )));
            }
            file.set_len(MAP_LEN as u64)
                .map_err(|e| Error::DeviceError(format!("change counter: {e}")))?;
        }
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: mapping MAP_LEN bytes of a file at least MAP_LEN long, shared; the result
        // is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_LEN,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::DeviceError(format!(
                "cannot map change counter {}",
                path.display()
            )));
        }
        // The mapping stays valid after the file is closed.
        Ok(ChangeCounter {
            ptr: ptr.cast(),
            writable,
        })
    }

    pub fn load(&self) -> u64 {
        // SAFETY: ptr points at the page-aligned start of a live shared mapping, suitably
        // aligned for AtomicU64 and unmapped only on drop.
        unsafe { (*self.ptr).load(Ordering::Acquire) }
    }

    pub fn bump(&self) {
        if !self.writable {
            return;
        }
        // SAFETY: as in `load`, and the mapping is writable.
        unsafe { (*self.ptr).fetch_add(1, Ordering::AcqRel) };
    }
}

impl Drop for ChangeCounter {
    fn drop(&mut self) {
        // SAFETY: ptr/MAP_LEN is exactly the mapping made in `map`, and nothing uses it after
        // drop (the store that owns the counter is gone). Unmapping lets C_Finalize release
        // the store's filesystem.
        unsafe { libc::munmap(self.ptr.cast(), MAP_LEN) };
    }
}

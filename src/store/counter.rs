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
}

// SAFETY: the mapping is shared memory accessed only through an AtomicU64; the pointer is
// valid for the life of the process (never unmapped) and safe to use from any thread.
unsafe impl Send for ChangeCounter {}
// SAFETY: as above; all access is atomic.
unsafe impl Sync for ChangeCounter {}

impl ChangeCounter {
    pub fn open(path: &Path) -> Result<ChangeCounter> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
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
            file.set_len(MAP_LEN as u64)
                .map_err(|e| Error::DeviceError(format!("change counter: {e}")))?;
        }
        // SAFETY: mapping MAP_LEN bytes of a file we just sized to at least MAP_LEN, shared,
        // read/write; the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
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
        Ok(ChangeCounter { ptr: ptr.cast() })
    }

    pub fn load(&self) -> u64 {
        // SAFETY: ptr points at the page-aligned start of a live shared mapping, suitably
        // aligned for AtomicU64 and never unmapped.
        unsafe { (*self.ptr).load(Ordering::Acquire) }
    }

    pub fn bump(&self) {
        // SAFETY: as in `load`.
        unsafe { (*self.ptr).fetch_add(1, Ordering::AcqRel) };
    }
}

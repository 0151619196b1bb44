//! The C boundary: every C_* entry point in a few lines (guard → marshal → api), the
//! function lists, and the panic boundary. A caught panic marks the library failed: every
//! later call but C_Finalize returns CKR_GENERAL_ERROR (fail closed).

#![allow(unsafe_code)]
#![allow(non_snake_case)]
#![allow(clippy::missing_safety_doc)]

pub mod functions;
pub mod lists;
pub mod marshal;
pub mod params;
pub mod vendor;

use crate::error::{Error, Result};
use cryptoki_sys::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

static FAILED: AtomicBool = AtomicBool::new(false);

/// Runs one entry point: fail-closed check, panic boundary, error mapping and logging.
pub fn guard(name: &'static str, f: impl FnOnce() -> Result<()>) -> CK_RV {
    if FAILED.load(Ordering::Acquire) && name != "C_Finalize" {
        return CKR_GENERAL_ERROR;
    }
    let outcome = catch_unwind(AssertUnwindSafe(f));
    // Key bytes must not stay behind in this thread's registers (see registers.rs).
    crate::secure_mem::registers::clear_vector_registers();
    match outcome {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => {
            let rv = e.ck_rv();
            if !e.is_routine() {
                match &e {
                    Error::GeneralError(_)
                    | Error::DeviceError(_)
                    | Error::FunctionFailed(_)
                    | Error::DeviceMemory(_) => {
                        crate::log_warn!("{name}: {e} (rv 0x{rv:x})")
                    }
                    _ => crate::log_info!("{name}: {e} (rv 0x{rv:x})"),
                }
            }
            rv
        }
        Err(_) => {
            FAILED.store(true, Ordering::Release);
            crate::log_error!("{name}: internal panic caught at the C boundary; the library now fails closed until C_Finalize");
            CKR_GENERAL_ERROR
        }
    }
}

/// Clears the failed state (C_Finalize succeeded).
pub fn reset_failed() {
    FAILED.store(false, Ordering::Release);
}

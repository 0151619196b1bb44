//! General-purpose functions (PKCS#11 v2.40 §5.4): C_Initialize, C_Finalize, C_GetInfo.

use super::{install, is_initialized, Library};
use crate::config::Config;
use crate::error::{Error, Result};
use parking_lot::Mutex;

/// The parts of CK_C_INITIALIZE_ARGS the spec gives rules for.
#[derive(Clone, Copy, Debug, Default)]
pub struct InitArgs {
    pub mutex_fns_given: usize,
    pub os_locking_ok: bool,
    pub reserved_non_null: bool,
}

/// Serializes C_Initialize/C_Finalize against each other.
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// C_Initialize (§5.4). The module always uses its own OS-level locking, so it is
/// thread-safe whichever locking arrangement the caller asks for.
pub fn initialize(args: Option<InitArgs>) -> Result<()> {
    if let Some(a) = args {
        if a.reserved_non_null {
            return Err(Error::ArgumentsBad("pReserved must be NULL"));
        }
        // All four mutex functions or none (§5.4, CK_C_INITIALIZE_ARGS).
        if a.mutex_fns_given != 0 && a.mutex_fns_given != 4 {
            return Err(Error::ArgumentsBad(
                "supply all four mutex functions or none",
            ));
        }
    }
    let _guard = INIT_LOCK.lock();
    if is_initialized() {
        return Err(Error::CryptokiAlreadyInitialized);
    }
    let config = Config::load().map_err(|e| Error::FunctionFailed(e.to_string()))?;
    crate::log::init(&config.log_level, &config.log_target);
    crate::cluster::audit::TO_SYSLOG
        .store(config.audit_syslog, std::sync::atomic::Ordering::Relaxed);
    crate::secure_mem::on_initialize();
    let lib = Library::open(config).map_err(|e| {
        crate::log_error!("C_Initialize: {e}");
        match e {
            Error::TokenNotRecognized(_) | Error::DeviceError(_) | Error::GeneralError(_) => {
                Error::FunctionFailed(e.to_string())
            }
            other => other,
        }
    })?;
    install(Some(std::sync::Arc::new(lib)));
    Ok(())
}

/// C_Finalize (§5.4): drops every session and all state; nothing is left to static
/// destructors.
pub fn finalize(reserved_non_null: bool) -> Result<()> {
    if reserved_non_null {
        return Err(Error::ArgumentsBad("pReserved must be NULL"));
    }
    let _guard = INIT_LOCK.lock();
    match install(None) {
        Some(lib) => {
            lib.sessions.clear();
            lib.clusters.write().clear();
            Ok(())
        }
        None => Err(Error::NotInitialized),
    }
}

pub const MANUFACTURER: &str = "clusterhsm project";
pub const LIBRARY_DESCRIPTION: &str = "clusterhsm PKCS#11 module";

/// C_GetInfo (§5.4): checks the library is initialized; the FFI layer fills the struct.
pub fn get_info() -> Result<()> {
    super::library().map(|_| ())
}

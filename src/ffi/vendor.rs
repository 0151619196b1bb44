//! The vendor interface "clusterhsm" (C_GetInterface): what PKCS#11 has no call for —
//! fault injection and cluster status for in-process tests. Layout in include/clusterhsm.h.

use super::guard;
use super::marshal::{out_ref, to_ulong, write_output};
use crate::api;
use crate::cluster::hsm::Health;
use crate::error::{Error, Result};
use cryptoki_sys::*;
use std::ffi::{c_char, CStr};

pub const CHSM_HEALTH_ACTIVE: CK_ULONG = 0;
pub const CHSM_HEALTH_DEGRADED: CK_ULONG = 1;
pub const CHSM_HEALTH_DOWN: CK_ULONG = 2;

/// Per-instance status, as clusterhsm.h declares it.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct CK_CLUSTERHSM_INSTANCE_INFO {
    pub id: [CK_UTF8CHAR; 32],
    pub az: [CK_UTF8CHAR; 32],
    pub health: CK_ULONG,
    pub ops_served: CK_ULONG,
}

/// The secure-memory arena's figures, as clusterhsm.h declares it.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct CK_CLUSTERHSM_MEMORY_STATS {
    pub locked_bytes: CK_ULONG,
    pub mapped_bytes: CK_ULONG,
    pub in_use_bytes: CK_ULONG,
    pub locking_complete: CK_BBOOL,
    pub aws_lc_routed: CK_BBOOL,
}

#[repr(C)]
#[allow(non_camel_case_types, non_snake_case)]
pub struct CK_CLUSTERHSM_FUNCTION_LIST {
    pub version: CK_VERSION,
    pub CHSM_SetInstanceHealth: unsafe extern "C" fn(CK_SLOT_ID, *const c_char, CK_ULONG) -> CK_RV,
    pub CHSM_SetAzHealth: unsafe extern "C" fn(CK_SLOT_ID, *const c_char, CK_ULONG) -> CK_RV,
    pub CHSM_GetInstanceCount: unsafe extern "C" fn(CK_SLOT_ID, *mut CK_ULONG) -> CK_RV,
    pub CHSM_GetInstanceInfo:
        unsafe extern "C" fn(CK_SLOT_ID, CK_ULONG, *mut CK_CLUSTERHSM_INSTANCE_INFO) -> CK_RV,
    pub CHSM_GetObjectReplicas: unsafe extern "C" fn(
        CK_SESSION_HANDLE,
        CK_OBJECT_HANDLE,
        *mut CK_BYTE,
        *mut CK_ULONG,
    ) -> CK_RV,
    /// Appended after interface version 1.0's fields (their offsets are unchanged).
    pub CHSM_GetMemoryStats: unsafe extern "C" fn(*mut CK_CLUSTERHSM_MEMORY_STATS) -> CK_RV,
}

pub static VENDOR_FUNCTION_LIST: CK_CLUSTERHSM_FUNCTION_LIST = CK_CLUSTERHSM_FUNCTION_LIST {
    version: CK_VERSION {
        major: crate::vendor::INTERFACE_VERSION_MAJOR,
        minor: crate::vendor::INTERFACE_VERSION_MINOR,
    },
    CHSM_SetInstanceHealth,
    CHSM_SetAzHealth,
    CHSM_GetInstanceCount,
    CHSM_GetInstanceInfo,
    CHSM_GetObjectReplicas,
    CHSM_GetMemoryStats,
};

fn health_from(v: CK_ULONG) -> Result<Health> {
    match v {
        CHSM_HEALTH_ACTIVE => Ok(Health::Active),
        CHSM_HEALTH_DEGRADED => Ok(Health::Degraded),
        CHSM_HEALTH_DOWN => Ok(Health::Down),
        _ => Err(Error::ArgumentsBad(
            "health is 0 (active), 1 (degraded) or 2 (down)",
        )),
    }
}

/// # Safety
/// `s` must be NULL or a NUL-terminated string.
unsafe fn name(s: *const c_char) -> Result<String> {
    if s.is_null() {
        return Err(Error::ArgumentsBad("NULL name"));
    }
    // SAFETY: non-NULL and NUL-terminated (caller guarantee).
    Ok(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

unsafe extern "C" fn CHSM_SetInstanceHealth(
    slot: CK_SLOT_ID,
    id: *const c_char,
    health: CK_ULONG,
) -> CK_RV {
    guard("CHSM_SetInstanceHealth", || {
        // SAFETY: NUL-terminated per clusterhsm.h.
        let id = unsafe { name(id) }?;
        api::library()?
            .cluster(slot)?
            .set_hsm_health(&id, health_from(health)?)
    })
}

unsafe extern "C" fn CHSM_SetAzHealth(
    slot: CK_SLOT_ID,
    az: *const c_char,
    health: CK_ULONG,
) -> CK_RV {
    guard("CHSM_SetAzHealth", || {
        // SAFETY: NUL-terminated per clusterhsm.h.
        let az = unsafe { name(az) }?;
        api::library()?
            .cluster(slot)?
            .set_az_health(&az, health_from(health)?)
            .map(|_| ())
    })
}

unsafe extern "C" fn CHSM_GetInstanceCount(slot: CK_SLOT_ID, count: *mut CK_ULONG) -> CK_RV {
    guard("CHSM_GetInstanceCount", || {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ref(count) }?;
        let c = api::library()?.cluster(slot)?;
        c.refresh()?;
        *out = to_ulong(c.instance_stats().len());
        Ok(())
    })
}

unsafe extern "C" fn CHSM_GetInstanceInfo(
    slot: CK_SLOT_ID,
    index: CK_ULONG,
    info: *mut CK_CLUSTERHSM_INSTANCE_INFO,
) -> CK_RV {
    guard("CHSM_GetInstanceInfo", || {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ref(info) }?;
        let c = api::library()?.cluster(slot)?;
        c.refresh()?;
        let stats = c.instance_stats();
        let i = usize::try_from(index).map_err(|_| Error::ArgumentsBad("index"))?;
        let (id, az, health, served) = stats
            .get(i)
            .ok_or(Error::ArgumentsBad("index out of range"))?;
        out.id = [0; 32];
        out.az = [0; 32];
        out.id[..id.len().min(31)].copy_from_slice(&id.as_bytes()[..id.len().min(31)]);
        out.az[..az.len().min(31)].copy_from_slice(&az.as_bytes()[..az.len().min(31)]);
        out.health = match health {
            Health::Active => CHSM_HEALTH_ACTIVE,
            Health::Degraded => CHSM_HEALTH_DEGRADED,
            Health::Down => CHSM_HEALTH_DOWN,
        };
        out.ops_served = *served as CK_ULONG;
        Ok(())
    })
}

unsafe extern "C" fn CHSM_GetObjectReplicas(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    buf: *mut CK_BYTE,
    len: *mut CK_ULONG,
) -> CK_RV {
    guard("CHSM_GetObjectReplicas", || {
        let (_lib, s) = api::session(h)?;
        s.cluster
            .entry(object, crate::cluster::objects::Access::Read)?;
        let list = s.cluster.replicas_of(object).join(",");
        // SAFETY: output per the length convention.
        unsafe { write_output(buf, len, list.as_bytes()) }
    })
}

/// The process's secure-memory figures; needs no C_Initialize.
unsafe extern "C" fn CHSM_GetMemoryStats(stats: *mut CK_CLUSTERHSM_MEMORY_STATS) -> CK_RV {
    guard("CHSM_GetMemoryStats", || {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ref(stats) }?;
        let m = crate::secure_mem::stats();
        out.locked_bytes = to_ulong(m.locked_bytes);
        out.mapped_bytes = to_ulong(m.mapped_bytes);
        out.in_use_bytes = to_ulong(m.in_use_bytes);
        out.locking_complete = CK_BBOOL::from(m.locking_complete);
        out.aws_lc_routed = CK_BBOOL::from(m.aws_lc_routed);
        Ok(())
    })
}

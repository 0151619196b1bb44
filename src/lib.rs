//! clusterhsm: a software HSM that speaks PKCS#11 and models an AWS CloudHSM cluster.
//!
//! Layers (dependencies point one way): `ffi` → `api` → {`session`, `object`,
//! `mechanism`} → `crypto`; tokens reach keys through `cluster`, which persists in `store`.
//! `unsafe` lives in `ffi`, `store::counter` and the crypto engine shim only.

#![deny(unsafe_code)]

pub mod api;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod error;
pub mod ffi;
pub mod log;
pub mod mechanism;
pub mod object;
pub mod secure_mem;
pub mod session;
#[allow(unsafe_code)]
pub mod store;
pub mod vendor;

/// The library version from Cargo.toml, as a CK_VERSION.
pub fn library_version() -> cryptoki_sys::CK_VERSION {
    let major = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0);
    let minor = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0);
    cryptoki_sys::CK_VERSION { major, minor }
}

//! Random number generation (PKCS#11 v2.40 §5.15).

use super::session;
use crate::error::{Error, Result};
use cryptoki_sys::*;

/// C_SeedRandom: accepted and ignored, as the spec allows for a token whose RNG cannot be
/// seeded from outside (AWS-LC seeds itself from the OS).
pub fn seed_random(handle: CK_SESSION_HANDLE, _seed: &[u8]) -> Result<()> {
    session(handle).map(|_| ())
}

/// C_GenerateRandom.
pub fn generate_random(handle: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<()> {
    session(handle)?;
    crate::crypto::rng::fill_random(out).map_err(|_| Error::RandomNoRng)
}

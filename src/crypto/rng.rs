//! Random bytes from AWS-LC's DRBG (aws-lc-rs `SystemRandom`: CTR-DRBG seeded from the
//! OS, fork-safe).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::{CryptoError, CryptoResult};
use crate::secure_mem::SecretBytes;

/// Fills `buf` with random bytes.
pub fn fill_random(buf: &mut [u8]) -> CryptoResult<()> {
    if buf.is_empty() {
        return Ok(());
    }
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Internal("random generator failed"))
}

/// `len` random bytes.
pub fn random_vec(len: usize) -> CryptoResult<Vec<u8>> {
    let mut v = vec![0u8; len];
    fill_random(&mut v)?;
    Ok(v)
}

/// `len` random bytes as a secret (key material).
pub fn random_secret(len: usize) -> CryptoResult<SecretBytes> {
    let mut s = SecretBytes::zeroed(len);
    fill_random(s.expose_mut())?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_not_constant() {
        assert_eq!(random_vec(0).expect("rng").len(), 0);
        let a = random_vec(32).expect("rng");
        let b = random_vec(32).expect("rng");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b, "two 256-bit draws collided");
        let s = random_secret(48).expect("rng");
        assert_eq!(s.len(), 48);
        assert!(s.expose().iter().any(|&x| x != 0));
        let mut buf = [0u8; 1000];
        fill_random(&mut buf).expect("rng");
        // A crude sanity check: 1000 random bytes take many distinct values.
        let distinct = buf.iter().collect::<std::collections::HashSet<_>>().len();
        assert!(distinct > 200, "only {distinct} distinct byte values");
    }
}

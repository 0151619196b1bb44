//! Sealing at rest: a random token master key seals every secret attribute with
//! AES-256-GCM (the object's identity in the AAD), and is itself stored wrapped under a
//! key derived from each user's password with PBKDF2-HMAC-SHA256.

use crate::error::{Error, Result};
use crate::secure_mem::SecretBytes;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::num::NonZeroU32;

pub const MASTER_KEY_LEN: usize = 32;
pub const SALT_LEN: usize = 16;
/// Default PBKDF2 iterations: about 40 ms per login on this class of machine, and a
/// verified-PIN cache keeps repeated logins of one process cheap.
pub const DEFAULT_KDF_ITERATIONS: u32 = 100_000;

/// The token master key, held only in SecretBytes.
pub struct MasterKey {
    key: LessSafeKey,
    raw: SecretBytes,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

fn gcm_key(raw: &[u8]) -> Result<LessSafeKey> {
    let unbound = UnboundKey::new(&AES_256_GCM, raw)
        .map_err(|_| Error::GeneralError("master key length".into()))?;
    Ok(LessSafeKey::new(unbound))
}

pub fn random_bytes(len: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut v)
        .map_err(|_| Error::RandomNoRng)?;
    Ok(v)
}

impl MasterKey {
    pub fn generate() -> Result<MasterKey> {
        let raw = SecretBytes::new(random_bytes(MASTER_KEY_LEN)?);
        Self::from_raw(raw)
    }

    pub fn from_raw(raw: SecretBytes) -> Result<MasterKey> {
        Ok(MasterKey {
            key: gcm_key(raw.expose())?,
            raw,
        })
    }

    pub fn raw(&self) -> &SecretBytes {
        &self.raw
    }

    /// nonce || ciphertext || tag, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.key, aad, plaintext)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
        open_with(&self.key, aad, sealed)
    }
}

fn seal_with(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let nonce_bytes = random_bytes(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce_bytes)
        .map_err(|_| Error::GeneralError("nonce".into()))?;
    let mut buf = plaintext.to_vec();
    let sealed = key.seal_in_place_append_tag(nonce, Aad::from(aad), &mut buf);
    if sealed.is_err() {
        zeroize::Zeroize::zeroize(&mut buf);
        return Err(Error::GeneralError("seal failed".into()));
    }
    let mut out = nonce_bytes;
    out.extend_from_slice(&buf);
    Ok(out)
}

fn open_with(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(Error::DeviceError("sealed record is truncated".into()));
    }
    let (nonce_bytes, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce_bytes)
        .map_err(|_| Error::GeneralError("nonce".into()))?;
    let mut buf = SecretBytes::from_slice(ct);
    let len = key
        .open_in_place(nonce, Aad::from(aad), buf.expose_mut())
        .map_err(|_| Error::DeviceError("sealed record failed its integrity check (tampered, swapped or from another token)".into()))?
        .len();
    Ok(SecretBytes::from_slice(&buf.expose()[..len]))
}

/// The key-encryption key derived from a user's password.
pub fn derive_kek(password: &[u8], salt: &[u8], iterations: u32) -> Result<LessSafeKey> {
    let mut out = SecretBytes::zeroed(MASTER_KEY_LEN);
    let iters =
        NonZeroU32::new(iterations.max(1)).ok_or(Error::GeneralError("kdf iterations".into()))?;
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iters,
        salt,
        password,
        out.expose_mut(),
    );
    gcm_key(out.expose())
}

/// Wraps the master key for one user.
pub fn wrap_master_key(
    mk: &MasterKey,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    aad: &[u8],
) -> Result<Vec<u8>> {
    let kek = derive_kek(password, salt, iterations)?;
    seal_with(&kek, aad, mk.raw.expose())
}

/// Unwraps the master key with a user's password: a wrong password fails the tag check.
pub fn unwrap_master_key(
    wrapped: &[u8],
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    aad: &[u8],
) -> Result<MasterKey> {
    let kek = derive_kek(password, salt, iterations)?;
    let raw = open_with(&kek, aad, wrapped).map_err(|_| Error::PinIncorrect)?;
    MasterKey::from_raw(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_binds_aad() {
        let mk = MasterKey::generate().unwrap();
        let s = mk.seal(b"obj-1", b"secret").unwrap();
        assert_eq!(mk.open(b"obj-1", &s).unwrap().expose(), b"secret");
        assert!(mk.open(b"obj-2", &s).is_err());
        let mut flipped = s.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(mk.open(b"obj-1", &flipped).is_err());
    }

    #[test]
    fn wrong_password_is_pin_incorrect() {
        let mk = MasterKey::generate().unwrap();
        let w = wrap_master_key(&mk, b"good pin", b"salt-salt-salt-1", 10, b"cu").unwrap();
        let back = unwrap_master_key(&w, b"good pin", b"salt-salt-salt-1", 10, b"cu").unwrap();
        assert_eq!(back.raw(), mk.raw());
        assert_eq!(
            unwrap_master_key(&w, b"bad pin", b"salt-salt-salt-1", 10, b"cu").unwrap_err(),
            Error::PinIncorrect
        );
    }
}

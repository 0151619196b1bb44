//! Secret-holding memory. `SecretBytes` is the one type every key value, PIN and derived
//! key lives in: zeroized on drop, never cloned implicitly, redacted in `Debug`.

use zeroize::Zeroize;

/// Owned secret bytes: wiped on drop, no `Clone`, `Debug` prints only the length.
pub struct SecretBytes {
    bytes: Vec<u8>,
}

impl SecretBytes {
    /// Takes ownership of `bytes`; the caller's buffer becomes the secret's storage.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes { bytes }
    }

    /// Copies `bytes` into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Self {
        SecretBytes {
            bytes: bytes.to_vec(),
        }
    }

    /// A zero-filled secret of `len` bytes, to be written in place.
    pub fn zeroed(len: usize) -> Self {
        SecretBytes {
            bytes: vec![0u8; len],
        }
    }

    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    pub fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// An explicit copy; named so that duplicating a secret is always visible in review.
    pub fn duplicate(&self) -> Self {
        Self::from_slice(&self.bytes)
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes([REDACTED; {}])", self.bytes.len())
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time comparison of two secrets of equal length.
    fn eq(&self, other: &Self) -> bool {
        if self.bytes.len() != other.bytes.len() {
            return false;
        }
        let diff = self
            .bytes
            .iter()
            .zip(other.bytes.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }
}

impl Eq for SecretBytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretBytes::from_slice(b"hunter2");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains('7'));
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(
            SecretBytes::from_slice(b"ab"),
            SecretBytes::from_slice(b"ab")
        );
        assert_ne!(
            SecretBytes::from_slice(b"ab"),
            SecretBytes::from_slice(b"ac")
        );
        assert_ne!(
            SecretBytes::from_slice(b"ab"),
            SecretBytes::from_slice(b"abc")
        );
    }
}

//! Algorithms, with no PKCS#11 types: the mechanism layer maps these to CKM_/CKR_.

use std::fmt;

/// What went wrong inside an algorithm. The mechanism layer maps each to a CK_RV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The key bytes or components are malformed or inconsistent.
    InvalidKey(&'static str),
    /// The key length or modulus size is outside what the algorithm allows.
    KeySize,
    /// Input data has the wrong length for this operation (plaintext side).
    DataLen,
    /// Ciphertext has the wrong length for this operation.
    EncryptedDataLen,
    /// Ciphertext is malformed: bad padding, failed tag, out-of-range value.
    EncryptedDataInvalid,
    /// Input data is out of range (e.g. raw RSA input >= modulus).
    DataInvalid,
    /// Signature did not verify.
    BadSignature,
    /// Signature has the wrong length.
    SignatureLen,
    /// A parameter (IV length, tag length, salt length, curve ...) is not acceptable.
    InvalidParameter(&'static str),
    /// The algorithm or variant is not available in this engine.
    Unsupported(&'static str),
    /// The engine failed unexpectedly.
    Internal(&'static str),
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for CryptoError {}

pub type CryptoResult<T> = Result<T, CryptoError>;

mod awslc;
pub mod block;
pub mod der;
pub mod digest;
pub mod ec;
pub mod edwards;
pub mod gcm;
pub mod kdf;
pub mod keywrap;
mod lc;
pub mod mac;
pub mod rng;
pub mod rsa;

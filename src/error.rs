//! The one error type of the module and the ONE mapping from it to `CK_RV`.
//!
//! Every fallible function below the FFI layer returns `Result<T, Error>`. The mapping in
//! [`Error::ck_rv`] is an exhaustive match without a `_` arm, so adding a variant forces a
//! decision about its code.

use crate::crypto::CryptoError;
use cryptoki_sys::*;
use std::fmt;

pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong, with enough context for a useful log line (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    ArgumentsBad(&'static str),
    NotInitialized,
    AlreadyInitialized,
    CantLock,
    FunctionNotSupported(&'static str),
    FunctionFailed(String),
    GeneralError(String),
    DeviceError(String),
    DeviceMemory(String),
    HostMemory,
    SlotIdInvalid(CK_SLOT_ID),
    TokenNotPresent,
    TokenNotRecognized(String),
    TokenWriteProtected,
    SessionHandleInvalid(CK_SESSION_HANDLE),
    SessionCount,
    SessionReadOnly,
    SessionExists,
    SessionReadOnlyExists,
    SessionReadWriteSoExists,
    SessionParallelNotSupported,
    ObjectHandleInvalid(CK_OBJECT_HANDLE),
    KeyHandleInvalid(CK_OBJECT_HANDLE),
    AttributeTypeInvalid(CK_ATTRIBUTE_TYPE),
    AttributeValueInvalid(CK_ATTRIBUTE_TYPE),
    AttributeReadOnly(CK_ATTRIBUTE_TYPE),
    AttributeSensitive(CK_ATTRIBUTE_TYPE),
    TemplateIncomplete(CK_ATTRIBUTE_TYPE),
    TemplateInconsistent(String),
    ActionProhibited(String),
    MechanismInvalid(CK_MECHANISM_TYPE),
    MechanismParamInvalid(String),
    KeyTypeInconsistent,
    KeyFunctionNotPermitted(&'static str),
    KeySizeRange,
    KeyNotWrappable,
    KeyUnextractable,
    KeyIndigestible,
    WrappingKeyHandleInvalid,
    WrappingKeyTypeInconsistent,
    WrappingKeySizeRange,
    UnwrappingKeyHandleInvalid,
    UnwrappingKeyTypeInconsistent,
    UnwrappingKeySizeRange,
    WrappedKeyInvalid,
    WrappedKeyLen,
    OperationActive,
    OperationNotInitialized,
    DataInvalid,
    DataLenRange,
    EncryptedDataInvalid,
    EncryptedDataLenRange,
    SignatureInvalid,
    SignatureLenRange,
    BufferTooSmall,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PinExpired,
    UserAlreadyLoggedIn,
    UserAnotherAlreadyLoggedIn,
    UserNotLoggedIn,
    UserPinNotInitialized,
    UserTypeInvalid,
    UserTooManyTypes,
    RandomNoRng,
    FunctionCanceled,
    CryptokiAlreadyInitialized,
    NoEvent,
}

impl Error {
    /// The single mapping from errors to PKCS#11 return values.
    pub fn ck_rv(&self) -> CK_RV {
        use Error::*;
        match self {
            ArgumentsBad(_) => CKR_ARGUMENTS_BAD,
            NotInitialized => CKR_CRYPTOKI_NOT_INITIALIZED,
            AlreadyInitialized | CryptokiAlreadyInitialized => CKR_CRYPTOKI_ALREADY_INITIALIZED,
            CantLock => CKR_CANT_LOCK,
            FunctionNotSupported(_) => CKR_FUNCTION_NOT_SUPPORTED,
            FunctionFailed(_) => CKR_FUNCTION_FAILED,
            GeneralError(_) => CKR_GENERAL_ERROR,
            DeviceError(_) => CKR_DEVICE_ERROR,
            DeviceMemory(_) => CKR_DEVICE_MEMORY,
            HostMemory => CKR_HOST_MEMORY,
            SlotIdInvalid(_) => CKR_SLOT_ID_INVALID,
            TokenNotPresent => CKR_TOKEN_NOT_PRESENT,
            TokenNotRecognized(_) => CKR_TOKEN_NOT_RECOGNIZED,
            TokenWriteProtected => CKR_TOKEN_WRITE_PROTECTED,
            SessionHandleInvalid(_) => CKR_SESSION_HANDLE_INVALID,
            SessionCount => CKR_SESSION_COUNT,
            SessionReadOnly => CKR_SESSION_READ_ONLY,
            SessionExists => CKR_SESSION_EXISTS,
            SessionReadOnlyExists => CKR_SESSION_READ_ONLY_EXISTS,
            SessionReadWriteSoExists => CKR_SESSION_READ_WRITE_SO_EXISTS,
            SessionParallelNotSupported => CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            ObjectHandleInvalid(_) => CKR_OBJECT_HANDLE_INVALID,
            KeyHandleInvalid(_) => CKR_KEY_HANDLE_INVALID,
            AttributeTypeInvalid(_) => CKR_ATTRIBUTE_TYPE_INVALID,
            AttributeValueInvalid(_) => CKR_ATTRIBUTE_VALUE_INVALID,
            AttributeReadOnly(_) => CKR_ATTRIBUTE_READ_ONLY,
            AttributeSensitive(_) => CKR_ATTRIBUTE_SENSITIVE,
            TemplateIncomplete(_) => CKR_TEMPLATE_INCOMPLETE,
            TemplateInconsistent(_) => CKR_TEMPLATE_INCONSISTENT,
            ActionProhibited(_) => CKR_ACTION_PROHIBITED,
            MechanismInvalid(_) => CKR_MECHANISM_INVALID,
            MechanismParamInvalid(_) => CKR_MECHANISM_PARAM_INVALID,
            KeyTypeInconsistent => CKR_KEY_TYPE_INCONSISTENT,
            KeyFunctionNotPermitted(_) => CKR_KEY_FUNCTION_NOT_PERMITTED,
            KeySizeRange => CKR_KEY_SIZE_RANGE,
            KeyNotWrappable => CKR_KEY_NOT_WRAPPABLE,
            KeyUnextractable => CKR_KEY_UNEXTRACTABLE,
            KeyIndigestible => CKR_KEY_INDIGESTIBLE,
            WrappingKeyHandleInvalid => CKR_WRAPPING_KEY_HANDLE_INVALID,
            WrappingKeyTypeInconsistent => CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
            WrappingKeySizeRange => CKR_WRAPPING_KEY_SIZE_RANGE,
            UnwrappingKeyHandleInvalid => CKR_UNWRAPPING_KEY_HANDLE_INVALID,
            UnwrappingKeyTypeInconsistent => CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
            UnwrappingKeySizeRange => CKR_UNWRAPPING_KEY_SIZE_RANGE,
            WrappedKeyInvalid => CKR_WRAPPED_KEY_INVALID,
            WrappedKeyLen => CKR_WRAPPED_KEY_LEN_RANGE,
            OperationActive => CKR_OPERATION_ACTIVE,
            OperationNotInitialized => CKR_OPERATION_NOT_INITIALIZED,
            DataInvalid => CKR_DATA_INVALID,
            DataLenRange => CKR_DATA_LEN_RANGE,
            EncryptedDataInvalid => CKR_ENCRYPTED_DATA_INVALID,
            EncryptedDataLenRange => CKR_ENCRYPTED_DATA_LEN_RANGE,
            SignatureInvalid => CKR_SIGNATURE_INVALID,
            SignatureLenRange => CKR_SIGNATURE_LEN_RANGE,
            BufferTooSmall => CKR_BUFFER_TOO_SMALL,
            PinIncorrect => CKR_PIN_INCORRECT,
            PinInvalid => CKR_PIN_INVALID,
            PinLenRange => CKR_PIN_LEN_RANGE,
            PinLocked => CKR_PIN_LOCKED,
            PinExpired => CKR_PIN_EXPIRED,
            UserAlreadyLoggedIn => CKR_USER_ALREADY_LOGGED_IN,
            UserAnotherAlreadyLoggedIn => CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
            UserNotLoggedIn => CKR_USER_NOT_LOGGED_IN,
            UserPinNotInitialized => CKR_USER_PIN_NOT_INITIALIZED,
            UserTypeInvalid => CKR_USER_TYPE_INVALID,
            UserTooManyTypes => CKR_USER_TOO_MANY_TYPES,
            RandomNoRng => CKR_RANDOM_NO_RNG,
            FunctionCanceled => CKR_FUNCTION_CANCELED,
            NoEvent => CKR_NO_EVENT,
        }
    }

    /// Routine outcomes that callers provoke on purpose and that need no log line.
    pub fn is_routine(&self) -> bool {
        matches!(
            self,
            Error::BufferTooSmall
                | Error::SignatureInvalid
                | Error::UserAlreadyLoggedIn
                | Error::CryptokiAlreadyInitialized
                | Error::NoEvent
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AttributeTypeInvalid(t)
            | Error::AttributeValueInvalid(t)
            | Error::AttributeReadOnly(t)
            | Error::AttributeSensitive(t)
            | Error::TemplateIncomplete(t) => {
                write!(f, "{}(attribute 0x{t:x})", variant_name(self))
            }
            Error::MechanismInvalid(m) => write!(f, "MechanismInvalid(0x{m:x})"),
            Error::GeneralError(m)
            | Error::DeviceError(m)
            | Error::DeviceMemory(m)
            | Error::FunctionFailed(m)
            | Error::TemplateInconsistent(m)
            | Error::ActionProhibited(m)
            | Error::MechanismParamInvalid(m)
            | Error::TokenNotRecognized(m) => f.write_str(m),
            Error::ArgumentsBad(m)
            | Error::FunctionNotSupported(m)
            | Error::KeyFunctionNotPermitted(m) => f.write_str(m),
            other => write!(f, "{other:?}"),
        }
    }
}

fn variant_name(e: &Error) -> &'static str {
    match e {
        Error::AttributeTypeInvalid(_) => "AttributeTypeInvalid",
        Error::AttributeValueInvalid(_) => "AttributeValueInvalid",
        Error::AttributeReadOnly(_) => "AttributeReadOnly",
        Error::AttributeSensitive(_) => "AttributeSensitive",
        Error::TemplateIncomplete(_) => "TemplateIncomplete",
        _ => "Error",
    }
}

impl std::error::Error for Error {}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::InvalidKey(what) => {
                Error::TemplateInconsistent(format!("invalid key material: {what}"))
            }
            CryptoError::KeySize => Error::KeySizeRange,
            CryptoError::DataLen => Error::DataLenRange,
            CryptoError::EncryptedDataLen => Error::EncryptedDataLenRange,
            CryptoError::EncryptedDataInvalid => Error::EncryptedDataInvalid,
            CryptoError::DataInvalid => Error::DataInvalid,
            CryptoError::BadSignature => Error::SignatureInvalid,
            CryptoError::SignatureLen => Error::SignatureLenRange,
            CryptoError::InvalidParameter(what) => Error::MechanismParamInvalid(what.to_string()),
            CryptoError::Unsupported(what) => {
                Error::MechanismParamInvalid(format!("unsupported {what}"))
            }
            CryptoError::Internal(what) => Error::FunctionFailed(format!("crypto engine: {what}")),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match &e {
            rusqlite::Error::SqliteFailure(code, _) => match code.code {
                ErrorCode::DiskFull => Error::DeviceMemory("store: disk full".into()),
                ErrorCode::ReadOnly | ErrorCode::PermissionDenied => {
                    Error::DeviceError(format!("store is read-only: {e}"))
                }
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                    Error::DeviceError(format!("store is corrupt: {e}"))
                }
                _ => Error::DeviceError(format!("store: {e}")),
            },
            _ => Error::DeviceError(format!("store: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_examples() {
        assert_eq!(Error::BufferTooSmall.ck_rv(), CKR_BUFFER_TOO_SMALL);
        assert_eq!(Error::PinLocked.ck_rv(), CKR_PIN_LOCKED);
        assert_eq!(
            Error::from(CryptoError::BadSignature).ck_rv(),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(
            Error::from(CryptoError::KeySize).ck_rv(),
            CKR_KEY_SIZE_RANGE
        );
    }

    #[test]
    fn display_has_context() {
        let s = Error::AttributeSensitive(CKA_VALUE).to_string();
        assert!(s.contains("0x11"), "{s}");
    }
}

//! Vendor constants: AWS CloudHSM's published mechanism values, and clusterhsm's own
//! interface. `include/clusterhsm.h` carries the same numbers (build.rs checks).

use cryptoki_sys::CK_MECHANISM_TYPE;

pub const CKM_VENDOR_DEFINED: CK_MECHANISM_TYPE = 0x8000_0000;
/// CloudHSM: AES key wrap without padding.
pub const CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD: CK_MECHANISM_TYPE = 0x8000_2109;
/// CloudHSM: AES key wrap with PKCS#5 padding.
pub const CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD: CK_MECHANISM_TYPE = 0x8000_210A;
/// CloudHSM: AES key wrap with zero padding.
pub const CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD: CK_MECHANISM_TYPE = 0x8000_216F;
/// CloudHSM: AES-GCM with an HSM-generated IV prepended to the ciphertext.
pub const CKM_CLOUDHSM_AES_GCM: CK_MECHANISM_TYPE = 0x8000_1087;
/// CloudHSM: NIST SP 800-108 counter-mode KDF.
pub const CKM_SP800_108_COUNTER_KDF_CLOUDHSM: CK_MECHANISM_TYPE = 0x8000_0001;

/// Name of the vendor interface returned by C_GetInterface.
pub const INTERFACE_NAME: &str = "clusterhsm";
pub const INTERFACE_VERSION_MAJOR: u8 = 1;
/// 1.1 added CHSM_GetMemoryStats.
pub const INTERFACE_VERSION_MINOR: u8 = 1;

/// CloudHSM's SP 800-108 data-parameter types (its vendor header), which differ from
/// PKCS#11 3.0's CK_SP800_108_* numbers 1..=5.
pub const CLOUDHSM_SP800_108_COUNTER_FORMAT: cryptoki_sys::CK_ULONG = 4;
pub const CLOUDHSM_SP800_108_PRF_LABEL: cryptoki_sys::CK_ULONG = 5;
pub const CLOUDHSM_SP800_108_PRF_CONTEXT: cryptoki_sys::CK_ULONG = 6;
pub const CLOUDHSM_SP800_108_DKM_FORMAT: cryptoki_sys::CK_ULONG = 7;
pub const CLOUDHSM_SP800_108_BYTE_ARRAY: cryptoki_sys::CK_ULONG = 8;

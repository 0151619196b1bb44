//! The one registry: every mechanism the token offers, its key sizes and the operations
//! its CKF_ flags claim. C_GetMechanismList and C_GetMechanismInfo read only this table,
//! and the operation constructors refuse anything not in it.

use crate::cluster::Profile;
use crate::vendor::*;
use cryptoki_sys::*;

/// Which profiles offer a mechanism. CloudHSM's list is 2.40-only plus its vendor ones.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    Both,
    StandardOnly,
}

pub struct Entry {
    pub mech: CK_MECHANISM_TYPE,
    pub min: CK_ULONG,
    pub max: CK_ULONG,
    pub flags: CK_FLAGS,
    pub offered: Offered,
}

const fn m(
    mech: CK_MECHANISM_TYPE,
    min: CK_ULONG,
    max: CK_ULONG,
    flags: CK_FLAGS,
    offered: Offered,
) -> Entry {
    Entry {
        mech,
        min,
        max,
        flags: flags | CKF_HW,
        offered,
    }
}

use Offered::*;
const ENC: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT;
const SIG: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
const WRAP: CK_FLAGS = CKF_WRAP | CKF_UNWRAP;
const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

/// Every mechanism carries CKF_HW: the token is the HSM (CloudHSM reports it too, and
/// pkcs11-tool only tests mechanisms with it).
/// Sorted by mechanism number. Key sizes are in bits for RSA and EC and in bytes for AES,
/// 3DES, generic secrets and HMAC keys, as PKCS#11 defines per mechanism.
pub static REGISTRY: &[Entry] = &[
    m(
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        1024,
        8192,
        CKF_GENERATE_KEY_PAIR,
        Both,
    ),
    m(
        CKM_RSA_PKCS,
        1024,
        8192,
        ENC | SIG | CKF_SIGN_RECOVER | CKF_VERIFY_RECOVER | WRAP,
        Both,
    ),
    m(
        CKM_RSA_X_509,
        1024,
        8192,
        ENC | SIG | CKF_SIGN_RECOVER | CKF_VERIFY_RECOVER,
        Both,
    ),
    m(CKM_SHA1_RSA_PKCS, 1024, 8192, SIG, Both),
    m(CKM_RSA_PKCS_OAEP, 1024, 8192, ENC | WRAP, Both),
    m(
        CKM_RSA_X9_31_KEY_PAIR_GEN,
        1024,
        8192,
        CKF_GENERATE_KEY_PAIR,
        Both,
    ),
    m(CKM_RSA_PKCS_PSS, 1024, 8192, SIG, Both),
    m(CKM_SHA1_RSA_PKCS_PSS, 1024, 8192, SIG, Both),
    m(CKM_SHA256_RSA_PKCS, 1024, 8192, SIG, Both),
    m(CKM_SHA384_RSA_PKCS, 1024, 8192, SIG, Both),
    m(CKM_SHA512_RSA_PKCS, 1024, 8192, SIG, Both),
    m(CKM_SHA256_RSA_PKCS_PSS, 1024, 8192, SIG, Both),
    m(CKM_SHA384_RSA_PKCS_PSS, 1024, 8192, SIG, Both),
    m(CKM_SHA512_RSA_PKCS_PSS, 1024, 8192, SIG, Both),
    m(CKM_SHA224_RSA_PKCS, 1024, 8192, SIG, Both),
    m(CKM_SHA224_RSA_PKCS_PSS, 1024, 8192, SIG, Both),
    m(CKM_RSA_AES_KEY_WRAP, 1024, 8192, WRAP, Both),
    m(CKM_DES3_KEY_GEN, 24, 24, CKF_GENERATE, Both),
    m(CKM_DES3_ECB, 24, 24, ENC, Both),
    m(CKM_DES3_CBC, 24, 24, ENC, Both),
    m(CKM_DES3_CBC_PAD, 24, 24, ENC, Both),
    m(CKM_SHA_1, 0, 0, CKF_DIGEST, Both),
    m(CKM_SHA_1_HMAC, 1, 512, SIG, Both),
    m(CKM_SHA_1_HMAC_GENERAL, 1, 512, SIG, Both),
    m(CKM_SHA256, 0, 0, CKF_DIGEST, Both),
    m(CKM_SHA256_HMAC, 1, 512, SIG, Both),
    m(CKM_SHA256_HMAC_GENERAL, 1, 512, SIG, Both),
    m(CKM_SHA224, 0, 0, CKF_DIGEST, Both),
    m(CKM_SHA224_HMAC, 1, 512, SIG, Both),
    m(CKM_SHA224_HMAC_GENERAL, 1, 512, SIG, Both),
    m(CKM_SHA384, 0, 0, CKF_DIGEST, Both),
    m(CKM_SHA384_HMAC, 1, 512, SIG, Both),
    m(CKM_SHA384_HMAC_GENERAL, 1, 512, SIG, Both),
    m(CKM_SHA512, 0, 0, CKF_DIGEST, Both),
    m(CKM_SHA512_HMAC, 1, 512, SIG, Both),
    m(CKM_SHA512_HMAC_GENERAL, 1, 512, SIG, Both),
    m(CKM_SHA3_256, 0, 0, CKF_DIGEST, StandardOnly),
    m(CKM_SHA3_256_HMAC, 1, 512, SIG, StandardOnly),
    m(CKM_SHA3_224, 0, 0, CKF_DIGEST, StandardOnly),
    m(CKM_SHA3_224_HMAC, 1, 512, SIG, StandardOnly),
    m(CKM_SHA3_384, 0, 0, CKF_DIGEST, StandardOnly),
    m(CKM_SHA3_384_HMAC, 1, 512, SIG, StandardOnly),
    m(CKM_SHA3_512, 0, 0, CKF_DIGEST, StandardOnly),
    m(CKM_SHA3_512_HMAC, 1, 512, SIG, StandardOnly),
    m(CKM_GENERIC_SECRET_KEY_GEN, 1, 512, CKF_GENERATE, Both),
    m(
        CKM_EC_KEY_PAIR_GEN,
        256,
        521,
        CKF_GENERATE_KEY_PAIR | EC_FLAGS,
        Both,
    ),
    m(CKM_ECDSA, 256, 521, SIG | EC_FLAGS, Both),
    m(CKM_ECDSA_SHA1, 256, 521, SIG | EC_FLAGS, Both),
    m(CKM_ECDSA_SHA224, 256, 521, SIG | EC_FLAGS, Both),
    m(CKM_ECDSA_SHA256, 256, 521, SIG | EC_FLAGS, Both),
    m(CKM_ECDSA_SHA384, 256, 521, SIG | EC_FLAGS, Both),
    m(CKM_ECDSA_SHA512, 256, 521, SIG | EC_FLAGS, Both),
    m(CKM_ECDH1_DERIVE, 255, 521, CKF_DERIVE | EC_FLAGS, Both),
    m(
        CKM_ECDH1_COFACTOR_DERIVE,
        256,
        521,
        CKF_DERIVE | EC_FLAGS,
        StandardOnly,
    ),
    m(
        CKM_EC_MONTGOMERY_KEY_PAIR_GEN,
        255,
        255,
        CKF_GENERATE_KEY_PAIR,
        StandardOnly,
    ),
    m(
        CKM_EC_EDWARDS_KEY_PAIR_GEN,
        255,
        255,
        CKF_GENERATE_KEY_PAIR,
        StandardOnly,
    ),
    m(CKM_EDDSA, 255, 255, SIG, StandardOnly),
    m(CKM_AES_KEY_GEN, 16, 32, CKF_GENERATE, Both),
    m(CKM_AES_ECB, 16, 32, ENC, Both),
    m(CKM_AES_CBC, 16, 32, ENC, Both),
    m(CKM_AES_CBC_PAD, 16, 32, ENC | WRAP, Both),
    m(CKM_AES_CTR, 16, 32, ENC, Both),
    m(CKM_AES_GCM, 16, 32, ENC | WRAP, Both),
    m(CKM_AES_CMAC, 16, 32, SIG, Both),
    m(CKM_AES_CMAC_GENERAL, 16, 32, SIG, Both),
    m(CKM_AES_KEY_WRAP, 16, 32, WRAP, Both),
    m(CKM_AES_KEY_WRAP_PAD, 16, 32, WRAP, Both),
    m(CKM_AES_ECB_ENCRYPT_DATA, 16, 32, CKF_DERIVE, StandardOnly),
    m(CKM_AES_CBC_ENCRYPT_DATA, 16, 32, CKF_DERIVE, StandardOnly),
    m(CKM_HKDF_DERIVE, 1, 512, CKF_DERIVE, StandardOnly),
    m(CKM_SP800_108_COUNTER_KDF, 1, 512, CKF_DERIVE, StandardOnly),
    m(CKM_SP800_108_COUNTER_KDF_CLOUDHSM, 1, 512, CKF_DERIVE, Both),
    m(CKM_CLOUDHSM_AES_GCM, 16, 32, ENC | WRAP, Both),
    m(CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD, 16, 32, WRAP, Both),
    m(CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD, 16, 32, WRAP, Both),
    m(CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD, 16, 32, WRAP, Both),
];

fn offered_in(e: &Entry, profile: Profile) -> bool {
    e.offered == Both || profile == Profile::Standard
}

pub fn find(profile: Profile, mech: CK_MECHANISM_TYPE) -> Option<&'static Entry> {
    REGISTRY
        .iter()
        .find(|e| e.mech == mech && offered_in(e, profile))
}

pub fn list(profile: Profile) -> Vec<CK_MECHANISM_TYPE> {
    let mut v: Vec<_> = REGISTRY
        .iter()
        .filter(|e| offered_in(e, profile))
        .map(|e| e.mech)
        .collect();
    v.sort_unstable();
    v
}

pub fn info(profile: Profile, mech: CK_MECHANISM_TYPE) -> Option<CK_MECHANISM_INFO> {
    find(profile, mech).map(|e| CK_MECHANISM_INFO {
        ulMinKeySize: e.min,
        ulMaxKeySize: e.max,
        flags: e.flags,
    })
}

/// Whether `mech` is offered for an operation (one CKF_ flag).
pub fn allows(profile: Profile, mech: CK_MECHANISM_TYPE, flag: CK_FLAGS) -> bool {
    find(profile, mech).is_some_and(|e| e.flags & flag != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_duplicates_and_cloudhsm_is_a_subset() {
        let std = list(Profile::Standard);
        let mut dedup = std.clone();
        dedup.dedup();
        assert_eq!(std, dedup);
        let cloud = list(Profile::CloudHsm);
        assert!(cloud.iter().all(|m| std.contains(m)));
        assert!(!cloud.contains(&CKM_SHA3_256));
    }
}

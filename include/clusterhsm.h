/* clusterhsm vendor definitions: AWS CloudHSM's vendor mechanisms and the "clusterhsm"
 * vendor interface (C_GetInterface((CK_UTF8CHAR_PTR)"clusterhsm", NULL, &iface, 0)).
 * build.rs checks the mechanism values against src/vendor.rs. */
#ifndef CLUSTERHSM_H
#define CLUSTERHSM_H

#include "pkcs11.h"

#define CKM_VENDOR_DEFINED_CLUSTERHSM 0x80000000
#define CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD 0x80002109
#define CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD 0x8000210a
#define CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD 0x8000216f
#define CKM_CLOUDHSM_AES_GCM 0x80001087
#define CKM_SP800_108_COUNTER_KDF_CLOUDHSM 0x80000001
#define CKM_VENDOR_DEFINED 0x80000000

/* PKCS#11 3.0's SP 800-108 counter KDF, for headers that predate it. */
#ifndef CKM_SP800_108_COUNTER_KDF
#define CKM_SP800_108_COUNTER_KDF 0x000003ac
#endif

#define CHSM_HEALTH_ACTIVE 0UL
#define CHSM_HEALTH_DEGRADED 1UL
#define CHSM_HEALTH_DOWN 2UL

typedef struct CK_CLUSTERHSM_INSTANCE_INFO {
    CK_UTF8CHAR id[32];        /* NUL-terminated, e.g. "hsm-a" */
    CK_UTF8CHAR az[32];        /* NUL-terminated, e.g. "az-a" */
    CK_ULONG health;           /* CHSM_HEALTH_* */
    CK_ULONG ops_served;       /* operations this process routed to the instance */
} CK_CLUSTERHSM_INSTANCE_INFO;

/* The process's secure-memory arena (CHSM_GetMemoryStats). */
typedef struct CK_CLUSTERHSM_MEMORY_STATS {
    CK_ULONG locked_bytes;     /* arena bytes mlock'ed now */
    CK_ULONG mapped_bytes;     /* arena bytes mapped (guard pages not counted) */
    CK_ULONG in_use_bytes;     /* bytes in live blocks, headers included */
    CK_BBOOL locking_complete; /* CK_FALSE: some memory is not locked (RLIMIT_MEMLOCK) */
    CK_BBOOL aws_lc_routed;    /* CK_TRUE: AWS-LC allocates from the arena */
} CK_CLUSTERHSM_MEMORY_STATS;

typedef struct CK_CLUSTERHSM_FUNCTION_LIST {
    CK_VERSION version;
    CK_RV (*CHSM_SetInstanceHealth)(CK_SLOT_ID slot, const char *hsm_id, CK_ULONG health);
    CK_RV (*CHSM_SetAzHealth)(CK_SLOT_ID slot, const char *az, CK_ULONG health);
    CK_RV (*CHSM_GetInstanceCount)(CK_SLOT_ID slot, CK_ULONG *count);
    CK_RV (*CHSM_GetInstanceInfo)(CK_SLOT_ID slot, CK_ULONG index, CK_CLUSTERHSM_INSTANCE_INFO *info);
    CK_RV (*CHSM_GetObjectReplicas)(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                                    CK_BYTE *ids_comma_separated, CK_ULONG *len);
    /* Appended after the 1.0 fields; works before C_Initialize. */
    CK_RV (*CHSM_GetMemoryStats)(CK_CLUSTERHSM_MEMORY_STATS *stats);
} CK_CLUSTERHSM_FUNCTION_LIST;

#endif

/* Bad-input sweep (issue 8): every C function of the 2.40 list with NULL pointers, zero and
 * huge lengths (CK_UNAVAILABLE_INFORMATION, > isize::MAX), invalid handles, wrong session
 * state and mismatched mechanisms, each row asserting the code PKCS#11 specifies (where
 * the spec allows more than one, the row lists them). run.sh runs it under valgrind
 * (--error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite).
 *
 * Usage: sweep /path/to/libclusterhsm.so   (CLUSTERHSM_DIR / CLUSTERHSM_CONF set, a fresh
 * store). Exit status: 0 when every row matched. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11.h"

static CK_FUNCTION_LIST *f;
static int rows, failed;

static const char *name(CK_RV rv);

/* ROW(call, n, codes...): call returns one of the n codes. */
static void row(int line, const char *what, CK_RV got, int n, const CK_RV *want) {
    rows++;
    for (int i = 0; i < n; i++)
        if (got == want[i]) {
            printf("ok   %4d %-70s %s\n", line, what, name(got));
            return;
        }
    failed++;
    printf("FAIL %4d %-70s got %s (0x%lx), want %s", line, what, name(got), got, name(want[0]));
    for (int i = 1; i < n; i++) printf(" or %s", name(want[i]));
    printf("\n");
}
#define ROW(call, ...)                                                                   \
    do {                                                                                 \
        const CK_RV want_[] = {__VA_ARGS__};                                             \
        row(__LINE__, #call, (call), (int)(sizeof want_ / sizeof want_[0]), want_);     \
    } while (0)
/* A step that must succeed for the sweep to go on. */
#define MUST(call)                                                                       \
    do {                                                                                 \
        CK_RV rv_ = (call);                                                              \
        if (rv_ != CKR_OK) {                                                             \
            printf("FATAL %d %s: %s (0x%lx)\n", __LINE__, #call, name(rv_), rv_);        \
            exit(2);                                                                     \
        }                                                                                \
    } while (0)
#define EXPECT(cond)                                                                     \
    do {                                                                                 \
        rows++;                                                                          \
        if (cond) printf("ok   %4d %s\n", __LINE__, #cond);                               \
        else {                                                                           \
            failed++;                                                                    \
            printf("FAIL %4d %s\n", __LINE__, #cond);                                    \
        }                                                                                \
    } while (0)

#define HUGE1 CK_UNAVAILABLE_INFORMATION
#define HUGE2 (((CK_ULONG)~0UL >> 1) + 1) /* > isize::MAX */
#define BADH ((CK_ULONG)0x7fff1234)

static CK_BYTE P256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

static int dummy;

static CK_RV create_mutex(CK_VOID_PTR_PTR m) { *m = &dummy; return CKR_OK; }

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s libclusterhsm.so\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (!gfl) return 2;
    ROW(gfl(NULL), CKR_ARGUMENTS_BAD);
    MUST(gfl(&f));

    CK_INFO info;
    CK_SLOT_ID slot = 0, slots[8];
    CK_ULONG n = 0;
    CK_SESSION_HANDLE s = 0, ro = 0;
    CK_OBJECT_HANDLE h = 0, aes = 0, ecpub = 0, ecpriv = 0, data = 0;
    CK_BYTE buf[512], out[512];
    CK_ULONG len;
    CK_BYTE so_pin[] = "12345678", pin[] = "1234";
    memset(buf, 0x11, sizeof buf);
    memset(out, 0x22, sizeof out);
    len = sizeof out;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

    /* ---- before C_Initialize */
    ROW(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
    ROW(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
    ROW(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    ROW(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_CRYPTOKI_NOT_INITIALIZED);
    ROW(f->C_CloseSession(1), CKR_CRYPTOKI_NOT_INITIALIZED);
    ROW(f->C_GenerateRandom(1, buf, 4), CKR_CRYPTOKI_NOT_INITIALIZED);

    /* ---- C_Initialize arguments */
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.pReserved = &args;
    ROW(f->C_Initialize(&args), CKR_ARGUMENTS_BAD);
    memset(&args, 0, sizeof args);
    args.CreateMutex = create_mutex; /* some but not all mutex functions */
    ROW(f->C_Initialize(&args), CKR_ARGUMENTS_BAD);
    MUST(f->C_Initialize(NULL));
    ROW(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    ROW(f->C_Finalize(&args), CKR_ARGUMENTS_BAD);

    /* ---- general and slot functions */
    ROW(f->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_GetInfo(&info), CKR_OK);
    ROW(f->C_GetSlotList(CK_FALSE, NULL, NULL), CKR_ARGUMENTS_BAD);
    n = 0;
    ROW(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
    EXPECT(n == 1);
    n = 0;
    ROW(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_BUFFER_TOO_SMALL);
    EXPECT(n == 1);
    n = 8;
    MUST(f->C_GetSlotList(CK_TRUE, slots, &n));
    slot = slots[0];
    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;
    ROW(f->C_GetSlotInfo(BADH, &si), CKR_SLOT_ID_INVALID);
    ROW(f->C_GetSlotInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_GetSlotInfo(slot, &si), CKR_OK);
    ROW(f->C_GetTokenInfo(BADH, &ti), CKR_SLOT_ID_INVALID);
    ROW(f->C_GetTokenInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_GetMechanismList(slot, NULL, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_GetMechanismList(BADH, NULL, &n), CKR_SLOT_ID_INVALID);
    CK_MECHANISM_INFO mi;
    ROW(f->C_GetMechanismInfo(slot, 0x7ffffff0UL, &mi), CKR_MECHANISM_INVALID);
    ROW(f->C_GetMechanismInfo(slot, CKM_AES_ECB, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_GetMechanismInfo(BADH, CKM_AES_ECB, &mi), CKR_SLOT_ID_INVALID);
    CK_BYTE label[32];
    memset(label, ' ', sizeof label);
    memcpy(label, "sweep", 5);
    ROW(f->C_InitToken(slot, NULL, 8, label), CKR_ARGUMENTS_BAD);
    ROW(f->C_InitToken(slot, so_pin, 8, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_InitToken(BADH, so_pin, 8, label), CKR_SLOT_ID_INVALID);
    MUST(f->C_InitToken(slot, so_pin, 8, label));
    n = 8;
    MUST(f->C_GetSlotList(CK_TRUE, slots, &n));
    slot = slots[0];
    CK_SLOT_ID ev;
    ROW(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL), CKR_ARGUMENTS_BAD,
        CKR_FUNCTION_NOT_SUPPORTED);
    ROW(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL), CKR_NO_EVENT, CKR_FUNCTION_NOT_SUPPORTED);

    /* ---- sessions */
    ROW(f->C_OpenSession(slot, 0, NULL, NULL, &s), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    ROW(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_OpenSession(BADH, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_SLOT_ID_INVALID);
    ROW(f->C_CloseSession(0), CKR_SESSION_HANDLE_INVALID);
    ROW(f->C_CloseSession(BADH), CKR_SESSION_HANDLE_INVALID);
    ROW(f->C_CloseAllSessions(BADH), CKR_SLOT_ID_INVALID);
    MUST(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
    CK_SESSION_INFO sinfo;
    ROW(f->C_GetSessionInfo(s, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_GetSessionInfo(BADH, &sinfo), CKR_SESSION_HANDLE_INVALID);
    ROW(f->C_GetFunctionStatus(s), CKR_FUNCTION_NOT_PARALLEL);
    ROW(f->C_CancelFunction(s), CKR_FUNCTION_NOT_PARALLEL);

    /* ---- login state */
    ROW(f->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
    ROW(f->C_Login(s, CKU_USER, NULL, 4), CKR_ARGUMENTS_BAD);
    ROW(f->C_Login(s, CKU_USER, NULL, HUGE1), CKR_ARGUMENTS_BAD);
    ROW(f->C_Login(s, CKU_USER, NULL, HUGE2), CKR_ARGUMENTS_BAD);
    ROW(f->C_Login(s, 99, pin, 4), CKR_USER_TYPE_INVALID);
    ROW(f->C_Login(BADH, CKU_USER, pin, 4), CKR_SESSION_HANDLE_INVALID);
    ROW(f->C_InitPIN(s, pin, 4), CKR_USER_NOT_LOGGED_IN);
    MUST(f->C_Login(s, CKU_SO, so_pin, 8));
    ROW(f->C_Login(s, CKU_SO, so_pin, 8), CKR_USER_ALREADY_LOGGED_IN);
    ROW(f->C_Login(s, CKU_USER, pin, 4), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    ROW(f->C_InitPIN(s, NULL, 4), CKR_ARGUMENTS_BAD);
    ROW(f->C_InitPIN(s, NULL, HUGE2), CKR_ARGUMENTS_BAD);
    MUST(f->C_InitPIN(s, pin, 4));
    MUST(f->C_Logout(s));
    ROW(f->C_Login(s, CKU_USER, pin, 4), CKR_OK);
    ROW(f->C_Login(s, CKU_USER, pin, 4), CKR_USER_ALREADY_LOGGED_IN);
    ROW(f->C_SetPIN(s, NULL, 4, pin, 4), CKR_ARGUMENTS_BAD);
    ROW(f->C_SetPIN(s, pin, 4, NULL, 4), CKR_ARGUMENTS_BAD);
    ROW(f->C_SetPIN(BADH, pin, 4, pin, 4), CKR_SESSION_HANDLE_INVALID);

    /* ---- objects */
    CK_OBJECT_CLASS c_data = CKO_DATA, c_secret = CKO_SECRET_KEY;
    CK_KEY_TYPE k_aes = CKK_AES;
    CK_ULONG vlen = 32;
    CK_ATTRIBUTE data_t[] = {{CKA_CLASS, &c_data, sizeof c_data},
                             {CKA_LABEL, "d", 1},
                             {CKA_VALUE, "value", 5}};
    ROW(f->C_CreateObject(s, NULL, 1, &h), CKR_ARGUMENTS_BAD);
    ROW(f->C_CreateObject(s, data_t, 3, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_CreateObject(BADH, data_t, 3, &h), CKR_SESSION_HANDLE_INVALID);
    CK_ATTRIBUTE nullval[] = {{CKA_CLASS, &c_data, sizeof c_data}, {CKA_LABEL, NULL, 5}};
    ROW(f->C_CreateObject(s, nullval, 2, &h), CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_VALUE_INVALID);
    CK_ATTRIBUTE hugeval[] = {{CKA_CLASS, &c_data, sizeof c_data}, {CKA_LABEL, NULL, HUGE2}};
    ROW(f->C_CreateObject(s, hugeval, 2, &h), CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_VALUE_INVALID);
    CK_ATTRIBUTE shortclass[] = {{CKA_CLASS, &c_data, 3}};
    ROW(f->C_CreateObject(s, shortclass, 1, &h), CKR_ATTRIBUTE_VALUE_INVALID);
    CK_ATTRIBUTE badtype[] = {{CKA_CLASS, &c_data, sizeof c_data}, {0x7fff0000UL, "x", 1}};
    ROW(f->C_CreateObject(s, badtype, 2, &h), CKR_ATTRIBUTE_TYPE_INVALID);
    CK_ATTRIBUTE nokeytype[] = {{CKA_CLASS, &c_secret, sizeof c_secret}, {CKA_VALUE, buf, 16}};
    ROW(f->C_CreateObject(s, nokeytype, 2, &h), CKR_TEMPLATE_INCOMPLETE);
    MUST(f->C_CreateObject(s, data_t, 3, &data));
    ROW(f->C_DestroyObject(s, 0), CKR_OBJECT_HANDLE_INVALID);
    ROW(f->C_DestroyObject(s, BADH), CKR_OBJECT_HANDLE_INVALID);
    ROW(f->C_GetObjectSize(s, data, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_GetObjectSize(s, BADH, &len), CKR_OBJECT_HANDLE_INVALID);
    ROW(f->C_GetAttributeValue(s, data, NULL, 1), CKR_ARGUMENTS_BAD);
    CK_ATTRIBUTE ga[1] = {{CKA_VALUE, buf, 2}};
    ROW(f->C_GetAttributeValue(s, data, ga, 1), CKR_BUFFER_TOO_SMALL);
    EXPECT(ga[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
    ga[0].type = 0x7fff0000UL;
    ga[0].pValue = NULL;
    ga[0].ulValueLen = 0;
    ROW(f->C_GetAttributeValue(s, data, ga, 1), CKR_ATTRIBUTE_TYPE_INVALID);
    EXPECT(ga[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
    ga[0].type = CKA_VALUE;
    ga[0].pValue = NULL;
    ga[0].ulValueLen = HUGE2;
    ROW(f->C_GetAttributeValue(s, data, ga, 1), CKR_OK);
    EXPECT(ga[0].ulValueLen == 5);
    CK_ATTRIBUTE ro_class[] = {{CKA_CLASS, &c_secret, sizeof c_secret}};
    ROW(f->C_SetAttributeValue(s, data, ro_class, 1), CKR_ATTRIBUTE_READ_ONLY);
    ROW(f->C_SetAttributeValue(s, data, NULL, 1), CKR_ARGUMENTS_BAD);
    ROW(f->C_CopyObject(s, BADH, NULL, 0, &h), CKR_OBJECT_HANDLE_INVALID);
    ROW(f->C_CopyObject(s, data, NULL, 0, NULL), CKR_ARGUMENTS_BAD);

    /* ---- find */
    CK_OBJECT_HANDLE found[4];
    ROW(f->C_FindObjects(s, found, 4, &n), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_FindObjectsFinal(s), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_FindObjectsInit(s, NULL, 1), CKR_ARGUMENTS_BAD);
    MUST(f->C_FindObjectsInit(s, NULL, 0));
    ROW(f->C_FindObjectsInit(s, NULL, 0), CKR_OPERATION_ACTIVE);
    ROW(f->C_FindObjects(s, NULL, 4, &n), CKR_ARGUMENTS_BAD);
    ROW(f->C_FindObjects(s, found, 4, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_FindObjects(s, found, 4, &n), CKR_OK);
    ROW(f->C_FindObjectsFinal(s), CKR_OK);

    /* ---- keys */
    CK_MECHANISM kg = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ATTRIBUTE aes_t[] = {{CKA_VALUE_LEN, &vlen, sizeof vlen},
                            {CKA_ENCRYPT, &yes, 1},
                            {CKA_DECRYPT, &yes, 1},
                            {CKA_WRAP, &yes, 1},
                            {CKA_EXTRACTABLE, &no, 1}};
    ROW(f->C_GenerateKey(s, NULL, aes_t, 5, &h), CKR_ARGUMENTS_BAD);
    ROW(f->C_GenerateKey(s, &kg, aes_t, 5, NULL), CKR_ARGUMENTS_BAD);
    CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
    ROW(f->C_GenerateKey(s, &ecb, aes_t, 5, &h), CKR_MECHANISM_INVALID);
    ROW(f->C_GenerateKey(s, &kg, aes_t + 1, 4, &h), CKR_TEMPLATE_INCOMPLETE);
    CK_ULONG seven = 7;
    CK_ATTRIBUTE aes7[] = {{CKA_VALUE_LEN, &seven, sizeof seven}};
    ROW(f->C_GenerateKey(s, &kg, aes7, 1, &h), CKR_KEY_SIZE_RANGE, CKR_ATTRIBUTE_VALUE_INVALID);
    MUST(f->C_GenerateKey(s, &kg, aes_t, 5, &aes));
    CK_MECHANISM eckg = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE ecpub_t[] = {{CKA_EC_PARAMS, P256, sizeof P256}, {CKA_VERIFY, &yes, 1}};
    CK_ATTRIBUTE ecpriv_t[] = {{CKA_SIGN, &yes, 1}, {CKA_DERIVE, &yes, 1}};
    ROW(f->C_GenerateKeyPair(s, &eckg, NULL, 2, ecpriv_t, 2, &ecpub, &ecpriv), CKR_ARGUMENTS_BAD);
    ROW(f->C_GenerateKeyPair(s, &eckg, ecpub_t, 2, ecpriv_t, 2, NULL, &ecpriv), CKR_ARGUMENTS_BAD);
    ROW(f->C_GenerateKeyPair(s, &eckg, ecpub_t + 1, 1, ecpriv_t, 2, &ecpub, &ecpriv),
        CKR_TEMPLATE_INCOMPLETE);
    MUST(f->C_GenerateKeyPair(s, &eckg, ecpub_t, 2, ecpriv_t, 2, &ecpub, &ecpriv));

    /* ---- encrypt / decrypt */
    ROW(f->C_Encrypt(s, buf, 16, out, &len), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_EncryptUpdate(s, buf, 16, out, &len), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_EncryptFinal(s, out, &len), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_EncryptInit(s, NULL, aes), CKR_ARGUMENTS_BAD);
    ROW(f->C_EncryptInit(s, &ecb, 0), CKR_KEY_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID);
    ROW(f->C_EncryptInit(s, &ecb, ecpriv), CKR_KEY_TYPE_INCONSISTENT,
        CKR_KEY_FUNCTION_NOT_PERMITTED);
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    ROW(f->C_EncryptInit(s, &sha, aes), CKR_MECHANISM_INVALID);
    CK_MECHANISM cbc3 = {CKM_AES_CBC, buf, 3};
    ROW(f->C_EncryptInit(s, &cbc3, aes), CKR_MECHANISM_PARAM_INVALID);
    CK_MECHANISM cbcnull = {CKM_AES_CBC, NULL, 16};
    ROW(f->C_EncryptInit(s, &cbcnull, aes), CKR_MECHANISM_PARAM_INVALID, CKR_ARGUMENTS_BAD);
    MUST(f->C_EncryptInit(s, &ecb, aes));
    ROW(f->C_EncryptInit(s, &ecb, aes), CKR_OPERATION_ACTIVE);
    len = 0;
    ROW(f->C_Encrypt(s, buf, 16, NULL, &len), CKR_OK);
    EXPECT(len == 16);
    len = 1;
    ROW(f->C_Encrypt(s, buf, 16, out, &len), CKR_BUFFER_TOO_SMALL);
    EXPECT(len == 16);
    ROW(f->C_Encrypt(s, buf, 16, out, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_EncryptInit(s, &ecb, aes), CKR_OK);
    len = sizeof out;
    ROW(f->C_Encrypt(s, NULL, 16, out, &len), CKR_ARGUMENTS_BAD);
    ROW(f->C_EncryptInit(s, &ecb, aes), CKR_OK);
    len = sizeof out;
    ROW(f->C_Encrypt(s, NULL, HUGE1, out, &len), CKR_ARGUMENTS_BAD);
    ROW(f->C_EncryptInit(s, &ecb, aes), CKR_OK);
    len = sizeof out;
    ROW(f->C_Encrypt(s, NULL, HUGE2, out, &len), CKR_ARGUMENTS_BAD);
    ROW(f->C_EncryptInit(s, &ecb, aes), CKR_OK);
    len = sizeof out;
    ROW(f->C_Encrypt(s, buf, 15, out, &len), CKR_DATA_LEN_RANGE);
    ROW(f->C_EncryptInit(s, &ecb, aes), CKR_OK);
    len = sizeof out;
    ROW(f->C_Encrypt(s, buf, 16, out, &len), CKR_OK);
    ROW(f->C_Encrypt(s, buf, 16, out, &len), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_EncryptInit(s, &ecb, aes), CKR_OK);
    len = sizeof out;
    ROW(f->C_EncryptUpdate(s, NULL, 16, out, &len), CKR_ARGUMENTS_BAD);
    ROW(f->C_DecryptInit(s, NULL, aes), CKR_ARGUMENTS_BAD);
    ROW(f->C_Decrypt(s, out, 16, buf, &len), CKR_OPERATION_NOT_INITIALIZED);
    MUST(f->C_DecryptInit(s, &ecb, aes));
    len = sizeof buf;
    ROW(f->C_Decrypt(s, out, 15, buf, &len), CKR_ENCRYPTED_DATA_LEN_RANGE);
    ROW(f->C_DecryptInit(s, &ecb, aes), CKR_OK);
    len = sizeof buf;
    ROW(f->C_DecryptUpdate(s, NULL, HUGE2, buf, &len), CKR_ARGUMENTS_BAD);
    ROW(f->C_DecryptFinal(s, buf, &len), CKR_OPERATION_NOT_INITIALIZED);

    /* ---- sign / verify */
    CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
    ROW(f->C_SignInit(s, NULL, ecpriv), CKR_ARGUMENTS_BAD);
    ROW(f->C_SignInit(s, &ecdsa, aes), CKR_KEY_TYPE_INCONSISTENT, CKR_KEY_FUNCTION_NOT_PERMITTED);
    ROW(f->C_SignInit(s, &ecdsa, BADH), CKR_KEY_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID);
    ROW(f->C_Sign(s, buf, 4, out, &len), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_SignUpdate(s, buf, 4), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_SignFinal(s, out, &len), CKR_OPERATION_NOT_INITIALIZED);
    MUST(f->C_SignInit(s, &ecdsa, ecpriv));
    len = sizeof out;
    ROW(f->C_Sign(s, NULL, HUGE2, out, &len), CKR_ARGUMENTS_BAD);
    ROW(f->C_SignInit(s, &ecdsa, ecpriv), CKR_OK);
    len = 0;
    ROW(f->C_Sign(s, buf, 4, NULL, &len), CKR_OK);
    EXPECT(len == 64);
    len = sizeof out;
    ROW(f->C_Sign(s, buf, 4, out, &len), CKR_OK);
    ROW(f->C_VerifyInit(s, &ecdsa, ecpub), CKR_OK);
    ROW(f->C_Verify(s, buf, 4, out, 63), CKR_SIGNATURE_LEN_RANGE, CKR_SIGNATURE_INVALID);
    MUST(f->C_VerifyInit(s, &ecdsa, ecpub));
    out[0] ^= 1;
    ROW(f->C_Verify(s, buf, 4, out, 64), CKR_SIGNATURE_INVALID);
    ROW(f->C_VerifyInit(s, &ecdsa, ecpub), CKR_OK);
    ROW(f->C_Verify(s, buf, 4, NULL, 64), CKR_ARGUMENTS_BAD);
    ROW(f->C_VerifyFinal(s, out, 64), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_VerifyUpdate(s, buf, 4), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_SignRecoverInit(s, &ecdsa, ecpriv), CKR_MECHANISM_INVALID,
        CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_FUNCTION_NOT_SUPPORTED);
    ROW(f->C_SignRecover(s, buf, 4, out, &len), CKR_OPERATION_NOT_INITIALIZED,
        CKR_FUNCTION_NOT_SUPPORTED);
    ROW(f->C_VerifyRecover(s, out, 64, buf, &len), CKR_OPERATION_NOT_INITIALIZED,
        CKR_FUNCTION_NOT_SUPPORTED);

    /* ---- digest */
    ROW(f->C_DigestInit(s, NULL), CKR_ARGUMENTS_BAD);
    ROW(f->C_Digest(s, buf, 4, out, &len), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_DigestInit(s, &ecb), CKR_MECHANISM_INVALID);
    MUST(f->C_DigestInit(s, &sha));
    ROW(f->C_DigestInit(s, &sha), CKR_OPERATION_ACTIVE);
    len = 0;
    ROW(f->C_Digest(s, buf, 4, NULL, &len), CKR_OK);
    EXPECT(len == 32);
    len = 31;
    ROW(f->C_Digest(s, buf, 4, out, &len), CKR_BUFFER_TOO_SMALL);
    len = sizeof out;
    ROW(f->C_Digest(s, buf, 4, out, &len), CKR_OK);
    ROW(f->C_DigestInit(s, &sha), CKR_OK);
    ROW(f->C_DigestUpdate(s, NULL, HUGE1), CKR_ARGUMENTS_BAD);
    ROW(f->C_DigestInit(s, &sha), CKR_OK);
    ROW(f->C_DigestKey(s, BADH), CKR_KEY_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID);
    /* Unlike C_DigestUpdate, the spec does not say whether a failed C_DigestKey ends the
     * operation: either is accepted, and the operation is over afterwards. */
    len = sizeof out;
    ROW(f->C_DigestFinal(s, out, &len), CKR_OK, CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_DigestFinal(s, out, &len), CKR_OPERATION_NOT_INITIALIZED);
    ROW(f->C_DigestEncryptUpdate(s, buf, 16, out, &len), CKR_OPERATION_NOT_INITIALIZED,
        CKR_FUNCTION_NOT_SUPPORTED);
    ROW(f->C_DecryptDigestUpdate(s, buf, 16, out, &len), CKR_OPERATION_NOT_INITIALIZED,
        CKR_FUNCTION_NOT_SUPPORTED);
    ROW(f->C_SignEncryptUpdate(s, buf, 16, out, &len), CKR_OPERATION_NOT_INITIALIZED,
        CKR_FUNCTION_NOT_SUPPORTED);
    ROW(f->C_DecryptVerifyUpdate(s, buf, 16, out, &len), CKR_OPERATION_NOT_INITIALIZED,
        CKR_FUNCTION_NOT_SUPPORTED);

    /* ---- wrap / unwrap / derive */
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
    ROW(f->C_WrapKey(s, NULL, aes, aes, NULL, &len), CKR_ARGUMENTS_BAD);
    ROW(f->C_WrapKey(s, &kw, aes, aes, NULL, NULL), CKR_ARGUMENTS_BAD);
    /* A key wrapping itself: refused either way. */
    ROW(f->C_WrapKey(s, &kw, aes, aes, NULL, &len), CKR_KEY_UNEXTRACTABLE, CKR_KEY_NOT_WRAPPABLE);
    CK_OBJECT_HANDLE aes2 = 0;
    MUST(f->C_GenerateKey(s, &kg, aes_t, 5, &aes2));
    ROW(f->C_WrapKey(s, &kw, aes2, aes, NULL, &len), CKR_KEY_UNEXTRACTABLE);
    ROW(f->C_WrapKey(s, &kw, BADH, aes, NULL, &len), CKR_WRAPPING_KEY_HANDLE_INVALID);
    ROW(f->C_WrapKey(s, &kw, aes, BADH, NULL, &len), CKR_KEY_HANDLE_INVALID);
    CK_ATTRIBUTE unw_t[] = {{CKA_CLASS, &c_secret, sizeof c_secret}, {CKA_KEY_TYPE, &k_aes, sizeof k_aes}};
    ROW(f->C_UnwrapKey(s, &kw, aes, buf, 7, unw_t, 2, &h), CKR_WRAPPED_KEY_LEN_RANGE);
    ROW(f->C_UnwrapKey(s, &kw, aes, NULL, 24, unw_t, 2, &h), CKR_ARGUMENTS_BAD);
    ROW(f->C_UnwrapKey(s, &kw, aes, buf, 24, unw_t, 2, NULL), CKR_ARGUMENTS_BAD);
    CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, NULL, 0};
    CK_KEY_TYPE k_gen = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE der_t[] = {{CKA_CLASS, &c_secret, sizeof c_secret},
                            {CKA_KEY_TYPE, &k_gen, sizeof k_gen},
                            {CKA_VALUE_LEN, &vlen, sizeof vlen}};
    ROW(f->C_DeriveKey(s, &ecdh, ecpriv, der_t, 3, &h), CKR_MECHANISM_PARAM_INVALID);
    CK_ECDH1_DERIVE_PARAMS ep = {CKD_NULL, 0, NULL, 65, NULL};
    CK_MECHANISM ecdh2 = {CKM_ECDH1_DERIVE, &ep, sizeof ep};
    ROW(f->C_DeriveKey(s, &ecdh2, ecpriv, der_t, 3, &h), CKR_MECHANISM_PARAM_INVALID,
        CKR_ARGUMENTS_BAD);
    ROW(f->C_DeriveKey(s, NULL, ecpriv, der_t, 3, &h), CKR_ARGUMENTS_BAD);
    CK_ECDH1_DERIVE_PARAMS ep_ok = {CKD_NULL, 0, NULL, 65, buf};
    CK_MECHANISM ecdh3 = {CKM_ECDH1_DERIVE, &ep_ok, sizeof ep_ok};
    ROW(f->C_DeriveKey(s, &ecdh3, BADH, der_t, 3, &h), CKR_KEY_HANDLE_INVALID,
        CKR_OBJECT_HANDLE_INVALID);

    /* ---- random, state */
    ROW(f->C_GenerateRandom(s, NULL, 16), CKR_ARGUMENTS_BAD);
    ROW(f->C_GenerateRandom(s, NULL, HUGE2), CKR_ARGUMENTS_BAD);
    ROW(f->C_GenerateRandom(s, buf, 0), CKR_OK);
    ROW(f->C_GenerateRandom(BADH, buf, 4), CKR_SESSION_HANDLE_INVALID);
    ROW(f->C_SeedRandom(s, NULL, 4), CKR_ARGUMENTS_BAD);
    ROW(f->C_GetOperationState(s, NULL, NULL), CKR_ARGUMENTS_BAD, CKR_FUNCTION_NOT_SUPPORTED);
    ROW(f->C_SetOperationState(s, NULL, 4, 0, 0), CKR_ARGUMENTS_BAD, CKR_FUNCTION_NOT_SUPPORTED);
    ROW(f->C_SetOperationState(s, buf, 4, 0, 0), CKR_SAVED_STATE_INVALID,
        CKR_FUNCTION_NOT_SUPPORTED);

    /* ---- read-only session */
    MUST(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro));
    CK_ATTRIBUTE tok_t[] = {{CKA_CLASS, &c_data, sizeof c_data}, {CKA_TOKEN, &yes, 1}};
    ROW(f->C_CreateObject(ro, tok_t, 2, &h), CKR_SESSION_READ_ONLY);
    ROW(f->C_Logout(ro), CKR_OK);
    ROW(f->C_Login(ro, CKU_SO, so_pin, 8), CKR_SESSION_READ_ONLY_EXISTS);
    ROW(f->C_CloseSession(ro), CKR_OK);
    ROW(f->C_CloseSession(ro), CKR_SESSION_HANDLE_INVALID);
    ROW(f->C_CloseAllSessions(slot), CKR_OK);
    ROW(f->C_GetSessionInfo(s, &sinfo), CKR_SESSION_HANDLE_INVALID);

    /* ---- after C_Finalize */
    ROW(f->C_Finalize(NULL), CKR_OK);
    ROW(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
    ROW(f->C_CloseSession(s), CKR_CRYPTOKI_NOT_INITIALIZED);
    ROW(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    /* And a second life, for the leak check. */
    MUST(f->C_Initialize(NULL));
    MUST(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
    MUST(f->C_Login(s, CKU_USER, pin, 4));
    ROW(f->C_Finalize(NULL), CKR_OK);

    dlclose(lib);
    printf("%d rows, %d failed\n", rows, failed);
    return failed ? 1 : 0;
}

static const char *name(CK_RV rv) {
    switch (rv) {
#define N(x) case x: return #x;
        N(CKR_OK) N(CKR_GENERAL_ERROR) N(CKR_FUNCTION_FAILED) N(CKR_ARGUMENTS_BAD)
        N(CKR_NO_EVENT) N(CKR_ATTRIBUTE_READ_ONLY) N(CKR_ATTRIBUTE_SENSITIVE)
        N(CKR_ATTRIBUTE_TYPE_INVALID) N(CKR_ATTRIBUTE_VALUE_INVALID) N(CKR_DATA_LEN_RANGE)
        N(CKR_DEVICE_ERROR) N(CKR_ENCRYPTED_DATA_LEN_RANGE) N(CKR_FUNCTION_NOT_PARALLEL)
        N(CKR_FUNCTION_NOT_SUPPORTED) N(CKR_KEY_HANDLE_INVALID) N(CKR_KEY_SIZE_RANGE)
        N(CKR_KEY_TYPE_INCONSISTENT) N(CKR_KEY_FUNCTION_NOT_PERMITTED) N(CKR_KEY_UNEXTRACTABLE) N(CKR_KEY_NOT_WRAPPABLE)
        N(CKR_MECHANISM_INVALID) N(CKR_MECHANISM_PARAM_INVALID) N(CKR_OBJECT_HANDLE_INVALID)
        N(CKR_OPERATION_ACTIVE) N(CKR_OPERATION_NOT_INITIALIZED) N(CKR_PIN_INCORRECT)
        N(CKR_SESSION_HANDLE_INVALID) N(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
        N(CKR_SESSION_READ_ONLY) N(CKR_SESSION_READ_ONLY_EXISTS) N(CKR_SIGNATURE_INVALID)
        N(CKR_SIGNATURE_LEN_RANGE) N(CKR_SLOT_ID_INVALID) N(CKR_TEMPLATE_INCOMPLETE)
        N(CKR_TEMPLATE_INCONSISTENT) N(CKR_USER_ALREADY_LOGGED_IN) N(CKR_USER_NOT_LOGGED_IN)
        N(CKR_USER_TYPE_INVALID) N(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
        N(CKR_WRAPPED_KEY_LEN_RANGE) N(CKR_WRAPPING_KEY_HANDLE_INVALID) N(CKR_BUFFER_TOO_SMALL)
        N(CKR_SAVED_STATE_INVALID) N(CKR_CRYPTOKI_NOT_INITIALIZED)
        N(CKR_CRYPTOKI_ALREADY_INITIALIZED) N(CKR_DEVICE_MEMORY) N(CKR_SESSION_CLOSED)
#undef N
    default: return "CKR_?";
    }
}

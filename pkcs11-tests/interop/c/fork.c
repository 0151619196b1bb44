/*
 * fork.c: the two ways real clients use a PKCS#11 module across fork(), against the module
 * named on the command line (loaded with dlopen, as every client does).
 *
 *   fork <module.so> <pin> <key-label> inherit   libp11 / nginx: the parent initializes,
 *       logs in and finds the key; forks 2 children; each child calls C_Initialize again,
 *       accepts CKR_CRYPTOKI_ALREADY_INITIALIZED, and keeps using the inherited session and
 *       key handle to sign.
 *   fork <module.so> <pin> <key-label> reinit    pkcs11-provider: each child calls
 *       C_Finalize then C_Initialize, opens a new session, logs in again, finds the key
 *       and signs.
 *
 * The key is an RSA key and the mechanism CKM_SHA256_RSA_PKCS, which is deterministic: every
 * child's signature must equal the parent's. The parent signs again after the children
 * have exited (its state survived their use). Exit status 0 only when all of that holds;
 * every PKCS#11 call that fails is printed with its name and return code.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pkcs11.h"

static CK_FUNCTION_LIST *p11;
static const char *who = "parent";

#define CALL(fn, ...)                                                               \
  do {                                                                              \
    CK_RV rv_ = p11->fn(__VA_ARGS__);                                               \
    if (rv_ != CKR_OK) {                                                            \
      fprintf(stderr, "%s (pid %d): " #fn " failed: rv 0x%lx\n", who, (int)getpid(), \
              (unsigned long)rv_);                                                  \
      return -1;                                                                    \
    }                                                                               \
  } while (0)

static const CK_BYTE data[] = "data signed across fork";

static int find_key(CK_SESSION_HANDLE s, const char *label, CK_OBJECT_HANDLE *key) {
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof cls},
      {CKA_LABEL, (void *)label, strlen(label)},
  };
  CK_ULONG n = 0;
  CALL(C_FindObjectsInit, s, tmpl, 2);
  CALL(C_FindObjects, s, key, 1, &n);
  CALL(C_FindObjectsFinal, s);
  if (n != 1) {
    fprintf(stderr, "%s: key '%s' not found\n", who, label);
    return -1;
  }
  return 0;
}

static int sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_BYTE *sig, CK_ULONG *len) {
  CK_MECHANISM mech = {CKM_SHA256_RSA_PKCS, NULL_PTR, 0};
  CALL(C_SignInit, s, &mech, key);
  CALL(C_Sign, s, (CK_BYTE_PTR)data, sizeof data - 1, sig, len);
  return 0;
}

static int login_session(const char *pin, CK_SESSION_HANDLE *s) {
  CK_SLOT_ID slots[4];
  CK_ULONG count = 4;
  CALL(C_GetSlotList, CK_TRUE, slots, &count);
  if (count < 1) {
    fprintf(stderr, "%s: no token\n", who);
    return -1;
  }
  CALL(C_OpenSession, slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL_PTR, NULL_PTR, s);
  CALL(C_Login, *s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
  return 0;
}

static int init(void) {
  CK_C_INITIALIZE_ARGS args;
  memset(&args, 0, sizeof args);
  args.flags = CKF_OS_LOCKING_OK;
  CALL(C_Initialize, &args);
  return 0;
}

/* The child's work; returns its exit status. */
static int child(const char *mode, const char *pin, const char *label, CK_SESSION_HANDLE s,
                 CK_OBJECT_HANDLE key, const CK_BYTE *want, CK_ULONG want_len) {
  CK_BYTE sig[1024];
  CK_ULONG len = sizeof sig;
  who = "child";
  if (strcmp(mode, "inherit") == 0) {
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = p11->C_Initialize(&args);
    if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED && rv != CKR_OK) {
      fprintf(stderr, "child: C_Initialize after fork: rv 0x%lx\n", (unsigned long)rv);
      return 1;
    }
    fprintf(stderr, "child (pid %d): C_Initialize after fork: rv 0x%lx, using the inherited session\n",
            (int)getpid(), (unsigned long)rv);
    /* A find in the inherited session too, as libp11 does when it reloads keys. */
    CK_OBJECT_HANDLE again;
    if (find_key(s, label, &again) != 0) return 1;
    if (again != key) {
      fprintf(stderr, "child: key handle changed across fork (%lu -> %lu)\n", key, again);
      return 1;
    }
  } else {
    if (p11->C_Finalize(NULL_PTR) != CKR_OK) {
      fprintf(stderr, "child: C_Finalize after fork failed\n");
      return 1;
    }
    if (init() != 0) return 1;
    if (login_session(pin, &s) != 0) return 1;
    if (find_key(s, label, &key) != 0) return 1;
  }
  for (int i = 0; i < 20; i++) {
    len = sizeof sig;
    if (sign(s, key, sig, &len) != 0) return 1;
    if (len != want_len || memcmp(sig, want, len) != 0) {
      fprintf(stderr, "child: signature differs from the parent's\n");
      return 1;
    }
  }
  if (strcmp(mode, "reinit") == 0 && p11->C_Finalize(NULL_PTR) != CKR_OK) {
    fprintf(stderr, "child: final C_Finalize failed\n");
    return 1;
  }
  fprintf(stderr, "child (pid %d): 20 signatures equal to the parent's\n", (int)getpid());
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 5 || (strcmp(argv[4], "inherit") != 0 && strcmp(argv[4], "reinit") != 0)) {
    fprintf(stderr, "usage: %s module.so pin key-label inherit|reinit\n", argv[0]);
    return 2;
  }
  const char *pin = argv[2], *label = argv[3], *mode = argv[4];
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  if (!gfl || gfl(&p11) != CKR_OK) {
    fprintf(stderr, "C_GetFunctionList failed\n");
    return 1;
  }
  CK_SESSION_HANDLE s;
  CK_OBJECT_HANDLE key;
  CK_BYTE want[1024], sig[1024];
  CK_ULONG want_len = sizeof want, len;
  if (init() != 0 || login_session(pin, &s) != 0 || find_key(s, label, &key) != 0 ||
      sign(s, key, want, &want_len) != 0)
    return 1;

  pid_t kids[2];
  for (int i = 0; i < 2; i++) {
    fflush(NULL);
    kids[i] = fork();
    if (kids[i] < 0) {
      perror("fork");
      return 1;
    }
    if (kids[i] == 0) _exit(child(mode, pin, label, s, key, want, want_len));
  }
  int bad = 0;
  for (int i = 0; i < 2; i++) {
    int st;
    if (waitpid(kids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "parent: child %d failed (status 0x%x)\n", (int)kids[i], st);
      bad = 1;
    }
  }
  /* The parent's session still works after the children used (or finalized) theirs. */
  len = sizeof sig;
  if (sign(s, key, sig, &len) != 0) return 1;
  if (len != want_len || memcmp(sig, want, len) != 0) {
    fprintf(stderr, "parent: signature after the children differs\n");
    return 1;
  }
  CALL(C_Logout, s);
  CALL(C_CloseSession, s);
  CALL(C_Finalize, NULL_PTR);
  if (bad) return 1;
  fprintf(stderr, "parent: %s mode OK\n", mode);
  return 0;
}

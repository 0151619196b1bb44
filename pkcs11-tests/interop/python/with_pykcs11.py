"""PyKCS11 (PyPI) against clusterhsm: python with_pykcs11.py MODULE PIN STEP [SIGFILE].

Each step opens a session on the one slot, logs in, does its work, logs out; prints what it
did and exits 0, or raises.
"""
import hashlib
import sys

import PyKCS11
from PyKCS11.LowLevel import (CKA_CLASS, CKA_DECRYPT, CKA_EC_PARAMS, CKA_ENCRYPT, CKA_ID,
                              CKA_KEY_TYPE, CKA_LABEL, CKA_MODULUS_BITS, CKA_PRIVATE,
                              CKA_PUBLIC_EXPONENT, CKA_SENSITIVE, CKA_SIGN, CKA_TOKEN,
                              CKA_VALUE_LEN, CKA_VERIFY, CKF_RW_SESSION, CKF_SERIAL_SESSION,
                              CKK_AES, CKK_EC, CKK_RSA, CKM_AES_CBC_PAD, CKM_ECDSA_SHA256,
                              CKM_SHA256, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS,
                              CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY, CKG_MGF1_SHA256)

MODULE, PIN, STEP = sys.argv[1:4]
DATA = b"data signed by PyKCS11 through clusterhsm"
P256 = bytes.fromhex("06082a8648ce3d030107")


def check(ok, what):
    if not ok:
        raise AssertionError(what)


lib = PyKCS11.PyKCS11Lib()
lib.load(MODULE)
slots = lib.getSlotList(tokenPresent=True)
check(len(slots) == 1, f"one slot with a token, got {slots}")
s = lib.openSession(slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION)
s.login(PIN)


def find(cls, label):
    objs = s.findObjects([(CKA_CLASS, cls), (CKA_LABEL, label)])
    check(len(objs) == 1, f"{label}: {len(objs)} objects")
    return objs[0]


def step_session():
    info = lib.getTokenInfo(slots[0])
    check(info.label.strip() == "interop", f"label {info.label!r}")
    sinfo = s.getSessionInfo()
    print(f"token {info.label.strip()!r} by {info.manufacturerID.strip()!r}, session state {sinfo.state}")


def step_generate():
    pub_t = [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_TOKEN, True), (CKA_KEY_TYPE, CKK_RSA),
             (CKA_MODULUS_BITS, 2048), (CKA_PUBLIC_EXPONENT, (0x01, 0x00, 0x01)),
             (CKA_VERIFY, True), (CKA_ENCRYPT, True), (CKA_LABEL, "pyk-rsa"), (CKA_ID, (0x61,))]
    priv_t = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_TOKEN, True), (CKA_KEY_TYPE, CKK_RSA),
              (CKA_PRIVATE, True), (CKA_SENSITIVE, True), (CKA_SIGN, True), (CKA_DECRYPT, True),
              (CKA_LABEL, "pyk-rsa"), (CKA_ID, (0x61,))]
    s.generateKeyPair(pub_t, priv_t, mecha=PyKCS11.MechanismRSAGENERATEKEYPAIR)
    pub_t = [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_TOKEN, True), (CKA_KEY_TYPE, CKK_EC),
             (CKA_EC_PARAMS, P256), (CKA_VERIFY, True), (CKA_LABEL, "pyk-ec"), (CKA_ID, (0x62,))]
    priv_t = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_TOKEN, True), (CKA_KEY_TYPE, CKK_EC),
              (CKA_PRIVATE, True), (CKA_SENSITIVE, True), (CKA_SIGN, True),
              (CKA_LABEL, "pyk-ec"), (CKA_ID, (0x62,))]
    s.generateKeyPair(pub_t, priv_t, mecha=PyKCS11.MechanismECGENERATEKEYPAIR)
    s.generateKey([(CKA_CLASS, CKO_SECRET_KEY), (CKA_KEY_TYPE, CKK_AES), (CKA_VALUE_LEN, 32),
                   (CKA_TOKEN, True), (CKA_ENCRYPT, True), (CKA_DECRYPT, True),
                   (CKA_LABEL, "pyk-aes")], mecha=PyKCS11.MechanismAESGENERATEKEY)
    print("generated RSA-2048, EC P-256 key pairs and an AES-256 key on the token")


def sign_verify(label, mech):
    priv, pub = find(CKO_PRIVATE_KEY, label), find(CKO_PUBLIC_KEY, label)
    sig = bytes(s.sign(priv, DATA, mech))
    check(s.verify(pub, DATA, sig, mech), "signature verifies")
    check(not s.verify(pub, DATA + b"!", sig, mech), "other data rejected")
    print(f"{label}: {len(sig)}-byte signature verified, other data rejected")


def step_sign_rsa():
    sign_verify("pyk-rsa", PyKCS11.Mechanism(CKM_SHA256_RSA_PKCS, None))
    sign_verify("pyk-rsa", PyKCS11.RSA_PSS_Mechanism(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 32))


def step_sign_ec():
    sign_verify("pyk-ec", PyKCS11.Mechanism(CKM_ECDSA_SHA256, None))


def step_verify_other():
    """A signature made by python-pkcs11 with its key verifies here (same token, other library)."""
    with open(sys.argv[4], "rb") as f:
        sig = f.read()
    pub = find(CKO_PUBLIC_KEY, "py-rsa")
    data = b"data signed by python-pkcs11 through clusterhsm"
    check(s.verify(pub, data, sig, PyKCS11.Mechanism(CKM_SHA256_RSA_PKCS, None)), "cross-library verify")
    print("python-pkcs11's SHA256-RSA-PKCS signature verified by PyKCS11")


def step_encrypt():
    aes = find(CKO_SECRET_KEY, "pyk-aes")
    iv = bytes(s.generateRandom(16))
    ct = bytes(s.encrypt(aes, DATA, PyKCS11.Mechanism(CKM_AES_CBC_PAD, iv)))
    check(bytes(s.decrypt(aes, ct, PyKCS11.Mechanism(CKM_AES_CBC_PAD, iv))) == DATA, "AES-CBC-PAD round trip")
    gcm = PyKCS11.AES_GCM_Mechanism(bytes(s.generateRandom(12)), b"aad", 128)
    ct = bytes(s.encrypt(aes, DATA, gcm))
    check(len(ct) == len(DATA) + 16, "GCM tag")
    check(bytes(s.decrypt(aes, ct, gcm)) == DATA, "AES-GCM round trip")
    oaep = PyKCS11.RSAOAEPMechanism(CKM_SHA256, CKG_MGF1_SHA256)
    ct = bytes(s.encrypt(find(CKO_PUBLIC_KEY, "pyk-rsa"), b"secret", oaep))
    check(bytes(s.decrypt(find(CKO_PRIVATE_KEY, "pyk-rsa"), ct, oaep)) == b"secret", "RSA-OAEP round trip")
    print("AES-CBC-PAD, AES-GCM, RSA-OAEP-SHA256: encrypt/decrypt round trips")


def step_digest():
    d = bytes(s.digest(DATA, PyKCS11.Mechanism(CKM_SHA256, None)))
    check(d == hashlib.sha256(DATA).digest(), "SHA-256 equals hashlib")
    print("SHA-256 digest equals hashlib's")


def step_random():
    a, b = bytes(s.generateRandom(32)), bytes(s.generateRandom(32))
    check(a != b and a != bytes(32), "random draws")
    s.seedRandom(b"extra entropy")
    print("generateRandom: 2 x 32 bytes, distinct")


try:
    globals()["step_" + STEP.replace("-", "_")]()
finally:
    s.logout()
    s.closeSession()

"""python-pkcs11 (PyPI) against clusterhsm: python with_python_pkcs11.py MODULE PIN STEP.

Each step opens its own session (user login), does its work, prints what it did and exits
0, or raises. Keys made with store=True stay on the token for later steps and for the
PyKCS11 script.
"""
import hashlib
import sys

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MGF, ObjectClass
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import encode_named_curve_parameters

MODULE, PIN, STEP = sys.argv[1:4]
DATA = b"data signed by python-pkcs11 through clusterhsm"


def session():
    lib = pkcs11.lib(MODULE)
    token = lib.get_token(token_label="interop")
    return token.open(user_pin=PIN, rw=True)


def check(ok, what):
    if not ok:
        raise AssertionError(what)


def step_session():
    lib = pkcs11.lib(MODULE)
    slots = lib.get_slots(token_present=True)
    check(len(slots) == 1, f"one slot with a token, got {len(slots)}")
    token = slots[0].get_token()
    check(token.label == "interop", f"token label {token.label!r}")
    with token.open(user_pin=PIN) as s:
        print(f"session on {token.label!r} ({token.manufacturer_id}), slot {slots[0].slot_description!r}")


def step_generate():
    with session() as s:
        s.generate_keypair(KeyType.RSA, 2048, store=True, label="py-rsa", id=b"\x51")
        params = s.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        params.generate_keypair(store=True, label="py-ec", id=b"\x52")
        s.generate_key(KeyType.AES, 256, store=True, label="py-aes", id=b"\x53")
        labels = sorted(o[Attribute.LABEL] for o in s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        check("py-rsa" in labels and "py-ec" in labels, f"private keys {labels}")
        print("generated RSA-2048, EC P-256 key pairs and an AES-256 key on the token:", labels)


def sign_verify(label, mechs, **kw):
    with session() as s:
        priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
        pub = s.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
        for mech in mechs:
            sig = priv.sign(DATA, mechanism=mech, **kw)
            check(pub.verify(DATA, sig, mechanism=mech, **kw), f"{mech.name} verifies")
            check(not pub.verify(DATA + b"!", sig, mechanism=mech, **kw), f"{mech.name} rejects other data")
            print(f"{label} {mech.name}: {len(sig)}-byte signature verified, other data rejected")
        if label == "py-rsa":
            sig = priv.sign(DATA, mechanism=Mechanism.SHA256_RSA_PKCS)
            with open(sys.argv[4], "wb") as f:  # for PyKCS11 to verify
                f.write(sig)


def step_sign_rsa():
    sign_verify("py-rsa", [Mechanism.SHA256_RSA_PKCS])
    sign_verify("py-rsa", [Mechanism.SHA256_RSA_PKCS_PSS],
                mechanism_param=(Mechanism.SHA256, MGF.SHA256, 32))


def step_sign_ec():
    sign_verify("py-ec", [Mechanism.ECDSA_SHA256])


def step_encrypt():
    with session() as s:
        aes = s.get_key(label="py-aes")
        iv = s.generate_random(128)
        ct = aes.encrypt(DATA, mechanism_param=iv)  # AES-CBC-PAD
        check(ct != DATA and len(ct) % 16 == 0, "CBC-PAD ciphertext")
        check(aes.decrypt(ct, mechanism_param=iv) == DATA, "AES-CBC-PAD round trip")
        nonce = s.generate_random(96)
        ct = aes.encrypt(DATA, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, b"aad", 128))
        check(len(ct) == len(DATA) + 16, "GCM tag appended")
        check(aes.decrypt(ct, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, b"aad", 128)) == DATA,
              "AES-GCM round trip")
        pub = s.get_key(object_class=ObjectClass.PUBLIC_KEY, label="py-rsa")
        priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="py-rsa")
        oaep = (Mechanism.SHA256, MGF.SHA256, None)
        ct = pub.encrypt(b"secret", mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=oaep)
        check(priv.decrypt(ct, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=oaep) == b"secret",
              "RSA-OAEP round trip")
        print("AES-CBC-PAD, AES-GCM (AAD, 128-bit tag), RSA-OAEP-SHA256: encrypt/decrypt round trips")


def step_digest():
    with session() as s:
        for mech, ref in [(Mechanism.SHA256, hashlib.sha256), (Mechanism.SHA384, hashlib.sha384),
                          (Mechanism.SHA512, hashlib.sha512)]:
            d = s.digest(DATA, mechanism=mech)
            check(d == ref(DATA).digest(), f"{mech.name} equals hashlib")
        print("SHA-256/384/512 digests equal hashlib's")


def step_random():
    with session() as s:
        a, b = s.generate_random(256), s.generate_random(256)
        check(len(a) == 32 and a != b and a != bytes(32), "random draws")
        s.seed_random(b"extra entropy")
        print("generate_random: 2 x 32 bytes, distinct")


globals()["step_" + STEP.replace("-", "_")]()

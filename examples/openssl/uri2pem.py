#!/usr/bin/env python3
"""Wrap a pkcs11: URI in a PEM file that OpenSSL 3 with pkcs11-provider loads as a key.

    examples/openssl/uri2pem.py 'pkcs11:object=rsa;type=private' > rsa-key.pem

For programs that only take key *files*, such as nginx before "store:" support: with the
provider loaded (OPENSSL_CONF=examples/openssl/pkcs11-provider.cnf), PEM_read_PrivateKey on
this file goes to pkcs11-provider's decoder and returns the token key. The format is
pkcs11-provider's ("PKCS#11 PROVIDER URI": SEQUENCE { VisibleString description,
UTF8String uri }), as its tools/uri2pem.py writes it. Do not put a PIN in the URI here:
the file is not encrypted; use pkcs11-module-token-pin in the provider config.
"""
import base64
import sys


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + length + body


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].startswith("pkcs11:"):
        sys.exit("usage: uri2pem.py 'pkcs11:object=...;type=private'")
    der = tlv(0x30, tlv(0x1A, b"PKCS#11 Provider URI v1.0") + tlv(0x0C, sys.argv[1].encode()))
    b64 = base64.encodebytes(der).decode()
    sys.stdout.write(f"-----BEGIN PKCS#11 PROVIDER URI-----\n{b64}-----END PKCS#11 PROVIDER URI-----\n")


if __name__ == "__main__":
    main()

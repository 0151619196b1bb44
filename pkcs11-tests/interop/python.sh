#!/usr/bin/env bash
# Interop: python-pkcs11 and PyKCS11, installed from PyPI with pip into a virtualenv in the
# test's temp dir (never in the repo), drive the module: session, key generation on the
# token, sign/verify (RSA PKCS#1 and PSS, ECDSA), encrypt/decrypt (AES-CBC-PAD, AES-GCM,
# RSA-OAEP), digest (checked against hashlib), random; a signature made with one library is
# verified with the other. Scripts: python/with_python_pkcs11.py, python/with_pykcs11.py.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
C=python
new_store python
init_token $C
venv="$work/venv"
check $C "virtualenv with python-pkcs11 and PyKCS11 from PyPI" bash -c "python3 -m venv '$venv' && '$venv/bin/pip' install -q python-pkcs11==0.10.1 PyKCS11==1.5.20 && '$venv/bin/pip' list 2>/dev/null | grep -iE 'pkcs11'"
PY="$venv/bin/python"
for step in session generate sign-rsa sign-ec encrypt digest random; do
  check $C "python-pkcs11: $step" "$PY" "$here/python/with_python_pkcs11.py" "$MODULE" "$USER_PIN" "$step" "$work/py-rsa.sig"
done
for step in session generate sign-rsa sign-ec encrypt digest random verify-other; do
  check $C "PyKCS11: $step" "$PY" "$here/python/with_pykcs11.py" "$MODULE" "$USER_PIN" "$step" "$work/py-rsa.sig"
done
summary

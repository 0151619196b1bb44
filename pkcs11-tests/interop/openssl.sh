#!/usr/bin/env bash
# Interop: OpenSSL 3 drives the built module through pkcs11-provider AND through the libp11
# engine, with the configs in examples/openssl/ as they are. For each: pkeyutl
# sign/verify/encrypt/decrypt with pkcs11: URIs for RSA-2048 (PKCS#1 v1.5, PSS, OAEP-SHA256)
# and EC P-256 keys, `req -x509` self-signed certificates with token keys. Every result is
# checked with plain OpenSSL (no provider, no engine) and the public key read off the token
# with pkcs11-tool. Every openssl process must exit 0 (no crash in C_Finalize at exit; the
# configs use no pkcs11-module-quirks).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
C=openssl
new_store openssl
export work MODULE REPO USER_PIN
export CLUSTERHSM_MODULE="$MODULE"
echo "$USER_PIN" > "$work/pin.txt"
export CLUSTERHSM_PIN_FILE="$work/pin.txt"
export PROVIDER_CNF="$REPO/examples/openssl/pkcs11-provider.cnf"
export ENGINE_CNF="$REPO/examples/openssl/libp11-engine.cnf"

init_token $C
check $C "keypairgen RSA-2048 on the token (pkcs11-tool)" p11 --login --pin "$USER_PIN" --keypairgen --key-type rsa:2048 --id 01 --label rsa
check $C "keypairgen EC P-256 on the token (pkcs11-tool)" p11 --login --pin "$USER_PIN" --keypairgen --key-type EC:prime256v1 --id 02 --label ec

# Plain OpenSSL: no config with a provider or engine.
plain() { env -u OPENSSL_CONF openssl "$@"; }
# The public keys as PEM, read with pkcs11-tool and converted by plain OpenSSL: the
# reference every token result is checked against.
export_pubkeys() {
  p11 --read-object --type pubkey --id 01 -o "$work/rsa.pub.der"
  p11 --read-object --type pubkey --id 02 -o "$work/ec.pub.der"
  plain pkey -pubin -inform DER -in "$work/rsa.pub.der" -out "$work/rsa.pub.pem"
  plain pkey -pubin -inform DER -in "$work/ec.pub.der" -out "$work/ec.pub.pem"
}
checkf $C "public keys exported (pkcs11-tool + plain openssl)" export_pubkeys

echo "data signed and encrypted by OpenSSL through clusterhsm" > "$work/data.txt"
openssl dgst -sha256 -binary "$work/data.txt" > "$work/data.sha256"
head -c 48 /dev/urandom > "$work/secret.bin"

# ossl BACKEND SUBCOMMAND ARGS...: openssl with the backend's config from examples/openssl;
# with the engine, the subcommand gets -engine pkcs11 -keyform engine. Keys are URIs: the
# provider reads the PIN from pkcs11-module-token-pin, the engine from the URI's pin-value.
# Fails if openssl exits non-zero or prints a crash or an error to stderr.
ossl() {
  local backend=$1 sub=$2; shift 2
  local err="$work/ossl.err" rc=0
  if [ "$backend" = provider ]; then
    OPENSSL_CONF="$PROVIDER_CNF" openssl "$sub" "$@" 2>"$err" || rc=$?
  else
    OPENSSL_CONF="$ENGINE_CNF" openssl "$sub" -engine pkcs11 -keyform engine "$@" 2>"$err" || rc=$?
  fi
  grep -v '^Engine "pkcs11" set\.$' "$err" >&2 || true
  [ $rc -eq 0 ] || { echo "openssl $sub exited $rc" >&2; return 1; }
  no_crash "$err"
}
# key BACKEND LABEL private|public: the pkcs11: URI of a token key for that backend.
key() {
  if [ "$1" = engine ] && [ "$3" = private ]; then
    echo "pkcs11:object=$2;type=$3;pin-value=$USER_PIN"
  else
    echo "pkcs11:object=$2;type=$3"
  fi
}

rsa_pkcs1_sign() {
  local b=$1
  ossl "$b" pkeyutl -sign -inkey "$(key "$b" rsa private)" -pkeyopt digest:sha256 -in "$work/data.sha256" -out "$work/sig.$b.pkcs1"
  plain pkeyutl -verify -pubin -inkey "$work/rsa.pub.pem" -pkeyopt digest:sha256 -in "$work/data.sha256" -sigfile "$work/sig.$b.pkcs1"
  plain dgst -sha256 -verify "$work/rsa.pub.pem" -signature "$work/sig.$b.pkcs1" "$work/data.txt"
}
rsa_pkcs1_verify() {
  local b=$1
  ossl "$b" pkeyutl -verify -pubin -inkey "$(key "$b" rsa public)" -pkeyopt digest:sha256 -in "$work/data.sha256" -sigfile "$work/sig.$b.pkcs1"
  # A signature that does not match must be refused.
  cp "$work/sig.$b.pkcs1" "$work/sig.bad"
  printf '\x55' | dd of="$work/sig.bad" bs=1 seek=100 conv=notrunc 2>/dev/null
  if ossl "$b" pkeyutl -verify -pubin -inkey "$(key "$b" rsa public)" -pkeyopt digest:sha256 -in "$work/data.sha256" -sigfile "$work/sig.bad" 2>/dev/null; then
    echo "a corrupted signature verified" >&2; return 1
  fi
}
rsa_pss_sign() {
  local b=$1
  ossl "$b" pkeyutl -sign -inkey "$(key "$b" rsa private)" -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -pkeyopt digest:sha256 -in "$work/data.sha256" -out "$work/sig.$b.pss"
  plain pkeyutl -verify -pubin -inkey "$work/rsa.pub.pem" -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -pkeyopt digest:sha256 -in "$work/data.sha256" -sigfile "$work/sig.$b.pss"
  ossl "$b" pkeyutl -verify -pubin -inkey "$(key "$b" rsa public)" -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -pkeyopt digest:sha256 -in "$work/data.sha256" -sigfile "$work/sig.$b.pss"
}
rsa_oaep() {
  local b=$1 opts=(-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256)
  # plain OpenSSL encrypts to the public key, the token decrypts
  plain pkeyutl -encrypt -pubin -inkey "$work/rsa.pub.pem" "${opts[@]}" -in "$work/secret.bin" -out "$work/oaep.$b.ct"
  ossl "$b" pkeyutl -decrypt -inkey "$(key "$b" rsa private)" "${opts[@]}" -in "$work/oaep.$b.ct" -out "$work/oaep.$b.back"
  cmp "$work/secret.bin" "$work/oaep.$b.back"
  # encryption with the token's public key (URI), decrypted by the token
  ossl "$b" pkeyutl -encrypt -pubin -inkey "$(key "$b" rsa public)" "${opts[@]}" -in "$work/secret.bin" -out "$work/oaep2.$b.ct"
  ossl "$b" pkeyutl -decrypt -inkey "$(key "$b" rsa private)" "${opts[@]}" -in "$work/oaep2.$b.ct" -out "$work/oaep2.$b.back"
  cmp "$work/secret.bin" "$work/oaep2.$b.back"
}
rsa_pkcs1_decrypt() {
  local b=$1
  plain pkeyutl -encrypt -pubin -inkey "$work/rsa.pub.pem" -pkeyopt rsa_padding_mode:pkcs1 -in "$work/secret.bin" -out "$work/pkcs1.$b.ct"
  ossl "$b" pkeyutl -decrypt -inkey "$(key "$b" rsa private)" -pkeyopt rsa_padding_mode:pkcs1 -in "$work/pkcs1.$b.ct" -out "$work/pkcs1.$b.back"
  cmp "$work/secret.bin" "$work/pkcs1.$b.back"
}
ec_sign() {
  local b=$1
  ossl "$b" pkeyutl -sign -inkey "$(key "$b" ec private)" -in "$work/data.sha256" -out "$work/sig.$b.ec"
  plain pkeyutl -verify -pubin -inkey "$work/ec.pub.pem" -in "$work/data.sha256" -sigfile "$work/sig.$b.ec"
  plain dgst -sha256 -verify "$work/ec.pub.pem" -signature "$work/sig.$b.ec" "$work/data.txt"
  ossl "$b" pkeyutl -verify -pubin -inkey "$(key "$b" ec public)" -in "$work/data.sha256" -sigfile "$work/sig.$b.ec"
}
x509_self_signed() {
  local b=$1 label=$2
  ossl "$b" req -x509 -new -key "$(key "$b" "$label" private)" -sha256 -days 2 -subj "/CN=clusterhsm $b $label" -out "$work/cert.$b.$label.pem"
  plain verify -CAfile "$work/cert.$b.$label.pem" "$work/cert.$b.$label.pem"
  plain x509 -in "$work/cert.$b.$label.pem" -noout -pubkey > "$work/cert.$b.$label.pub.pem"
  cmp "$work/cert.$b.$label.pub.pem" "$work/$label.pub.pem"
}
no_quirks() {
  ! grep -qE '^[[:space:]]*pkcs11-module-quirks' "$PROVIDER_CNF"
}

checkf $C "provider config has no pkcs11-module-quirks" no_quirks
for b in provider engine; do
  checkf $C "$b: RSA PKCS#1 v1.5 SHA-256 sign (plain openssl verifies)" rsa_pkcs1_sign $b
  checkf $C "$b: RSA PKCS#1 v1.5 verify with the token public key" rsa_pkcs1_verify $b
  checkf $C "$b: RSA-PSS SHA-256 sign/verify" rsa_pss_sign $b
  checkf $C "$b: RSA-OAEP-SHA256 encrypt/decrypt" rsa_oaep $b
  checkf $C "$b: RSA PKCS#1 v1.5 decrypt" rsa_pkcs1_decrypt $b
  checkf $C "$b: ECDSA P-256 sign/verify" ec_sign $b
  checkf $C "$b: req -x509 self-signed with the token RSA key" x509_self_signed $b rsa
  checkf $C "$b: req -x509 self-signed with the token EC key" x509_self_signed $b ec
done
summary

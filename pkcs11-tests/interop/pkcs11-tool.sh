#!/usr/bin/env bash
# Interop: OpenSC pkcs11-tool drives the built module, each step a separate process on one
# token, as a user would. Prints one PASS/FAIL line per step.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CLUSTERHSM_DIR="$work/store"
printf 'kdf_iterations = 10000\n' > "$work/test.toml"
export CLUSTERHSM_CONF="$work/test.toml"
mkdir -p "$work/bin"
printf '#!/bin/sh\nexec pkcs11-tool --module "%s" "$@"\n' "$MODULE" > "$work/bin/p11"
chmod +x "$work/bin/p11"
export PATH="$work/bin:$PATH"
SO=12345678
PIN=1234

check "pkcs11-tool" "free slot before init" bash -c "p11 --list-slots | grep -q 'uninitialized'"
check "pkcs11-tool" "init-token" p11 --init-token --label interop --so-pin "$SO"
check "pkcs11-tool" "exactly one slot after init" bash -c "[ \$(p11 --list-token-slots 2>/dev/null | grep -c '^Slot') -eq 1 ]"
check "pkcs11-tool" "init-pin" p11 --login --login-type so --so-pin "$SO" --init-pin --pin "$PIN"
check "pkcs11-tool" "wrong PIN refused" bash -c "! p11 --login --pin 9999 --list-objects"
check "pkcs11-tool" "change-pin" p11 --login --pin "$PIN" --change-pin --new-pin 5678
check "pkcs11-tool" "login with the new PIN" p11 --login --pin 5678 --list-objects
check "pkcs11-tool" "change-pin back" p11 --login --pin 5678 --change-pin --new-pin "$PIN"
declare -A ids=([rsa:2048]=10 [rsa:3072]=11 [EC:prime256v1]=12 [EC:secp384r1]=13 [EC:secp521r1]=14)
for kt in rsa:2048 rsa:3072 EC:prime256v1 EC:secp384r1 EC:secp521r1; do
  id=${ids[$kt]}
  check "pkcs11-tool" "keypairgen $kt" p11 --login --pin "$PIN" --keypairgen --key-type "$kt" --id "$id" --label "k-$kt"
done
check "pkcs11-tool" "keypairgen Ed25519" p11 --login --pin "$PIN" --keypairgen --key-type EC:edwards25519 --id e1 --label k-ed25519
check "pkcs11-tool" "keygen AES-256" p11 --login --pin "$PIN" --keygen --key-type AES:32 --id a1 --id a1
echo "interop data" > "$work/data.txt"
check "pkcs11-tool" "sign/verify SHA256-RSA-PKCS" bash -c "p11 --login --pin $PIN --sign --mechanism SHA256-RSA-PKCS --id 10 -i '$work/data.txt' -o '$work/sig' && p11 --verify --mechanism SHA256-RSA-PKCS --id 10 -i '$work/data.txt' --signature-file '$work/sig'"
check "pkcs11-tool" "sign/verify SHA256-RSA-PKCS-PSS" bash -c "p11 --login --pin $PIN --sign --mechanism SHA256-RSA-PKCS-PSS --id 10 -i '$work/data.txt' -o '$work/sig' && p11 --verify --mechanism SHA256-RSA-PKCS-PSS --id 10 -i '$work/data.txt' --signature-file '$work/sig'"
check "pkcs11-tool" "sign/verify ECDSA-SHA256" bash -c "p11 --login --pin $PIN --sign --mechanism ECDSA-SHA256 --id 12 -i '$work/data.txt' -o '$work/sig' && p11 --verify --mechanism ECDSA-SHA256 --id 12 -i '$work/data.txt' --signature-file '$work/sig'"
check "pkcs11-tool" "sign/verify EDDSA" bash -c "p11 --login --pin $PIN --sign --mechanism EDDSA --id e1 -i '$work/data.txt' -o '$work/sig' && p11 --verify --mechanism EDDSA --id e1 -i '$work/data.txt' --signature-file '$work/sig'"
check "pkcs11-tool" "openssl verifies a token ECDSA signature" bash -c "
  p11 --login --pin $PIN --sign --mechanism ECDSA-SHA256 --signature-format openssl --id 12 -i '$work/data.txt' -o '$work/sig.der' &&
  p11 --read-object --type pubkey --id 12 -o '$work/pub.der' &&
  openssl dgst -sha256 -verify '$work/pub.der' -keyform DER -signature '$work/sig.der' '$work/data.txt'"
head -c 32 /dev/urandom > "$work/plain.bin"
check "pkcs11-tool" "encrypt/decrypt AES-CBC-PAD" bash -c "p11 --login --pin $PIN --encrypt --mechanism AES-CBC-PAD --iv 000102030405060708090a0b0c0d0e0f --id a1 -i '$work/plain.bin' -o '$work/ct' && p11 --login --pin $PIN --decrypt --mechanism AES-CBC-PAD --iv 000102030405060708090a0b0c0d0e0f --id a1 -i '$work/ct' -o '$work/back' && cmp '$work/plain.bin' '$work/back'"
check "pkcs11-tool" "openssl RSA-OAEP-SHA256 encrypt, token decrypt" bash -c "p11 --read-object --type pubkey --id 10 -o '$work/rsapub.der' && openssl pkeyutl -encrypt -pubin -keyform DER -inkey '$work/rsapub.der' -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in '$work/plain.bin' -out '$work/ct' && p11 --login --pin $PIN --decrypt --mechanism RSA-PKCS-OAEP --hash-algorithm SHA256 --mgf MGF1-SHA256 --id 10 -i '$work/ct' -o '$work/back' && cmp '$work/plain.bin' '$work/back'"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=interop -keyout "$work/k.pem" -outform DER -out "$work/cert.der" -days 1 2>/dev/null
check "pkcs11-tool" "write-object certificate" p11 --login --pin "$PIN" --write-object "$work/cert.der" --type cert --id c1 --label cert1
check "pkcs11-tool" "write-object data" p11 --login --pin "$PIN" --write-object "$work/data.txt" --type data --label data1 --private
check "pkcs11-tool" "read-object certificate back" bash -c "p11 --read-object --type cert --label cert1 -o '$work/cert.back' && cmp '$work/cert.der' '$work/cert.back'"
check "pkcs11-tool" "read-object private data back" bash -c "p11 --login --pin $PIN --read-object --type data --label data1 -o '$work/data.back' && cmp '$work/data.txt' '$work/data.back'"
check "pkcs11-tool" "list-objects shows the certificate" bash -c "p11 --list-objects | grep -q 'Certificate Object'"
check "pkcs11-tool" "delete-object data" p11 --login --pin "$PIN" --delete-object --type data --label data1
check "pkcs11-tool" "deleted object is gone" bash -c "! p11 --login --pin $PIN --list-objects --type data | grep -q data1"
check "pkcs11-tool" "--test passes every sub-test" bash -c "out=\$(p11 --test --login --pin $PIN 2>&1); echo \"\$out\" | tail -3; echo \"\$out\" | grep -q '^No errors' && ! echo \"\$out\" | grep -q 'ERR:'"
check "pkcs11-tool" "--test-fork" bash -c "p11 --test-fork --login --pin $PIN 2>&1 | tail -2"
summary

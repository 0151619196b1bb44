#!/usr/bin/env bash
# Interop: Java 17 SunPKCS11 with examples/java/clusterhsm.cfg. keytool (through the
# provider) makes RSA-2048 and P-256 key pairs with self-signed certificates on the token,
# pkcs11-tool an AES-256 key; java/Interop.java (compiled with javac here) lists the
# KeyStore, signs with SHA256withRSA, RSASSA-PSS and SHA256withECDSA (verified by the
# JDK's software providers), encrypts with AES/CBC/PKCS5Padding (decrypted by pkcs11-tool
# too) and AES/GCM/NoPadding, generates keys with KeyPairGenerator and KeyGenerator, draws
# from SecureRandom; `keytool -list -storetype PKCS11` shows the entries.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
C=java
new_store java
CFG="$REPO/examples/java/clusterhsm.cfg"
export work MODULE CFG USER_PIN
init_token $C
check $C "javac Interop.java" javac -d "$work/classes" "$here/java/Interop.java"
kt() {
  keytool -J-Dclusterhsm.module="$MODULE" -keystore NONE -storetype PKCS11 \
    -providerClass sun.security.pkcs11.SunPKCS11 -providerArg "$CFG" -storepass "$USER_PIN" "$@"
}
checkf $C "keytool -genkeypair RSA-2048 on the token" kt -genkeypair -alias javarsa -keyalg RSA -keysize 2048 -sigalg SHA256withRSA -dname CN=javarsa -validity 2
checkf $C "keytool -genkeypair EC P-256 on the token" kt -genkeypair -alias javaec -keyalg EC -groupname secp256r1 -sigalg SHA256withECDSA -dname CN=javaec -validity 2
check $C "keygen AES-256 on the token (pkcs11-tool)" p11 --login --pin "$USER_PIN" --keygen --key-type AES:32 --id a1 --label aes1
j() { java -Dclusterhsm.module="$MODULE" -cp "$work/classes" Interop "$CFG" "$USER_PIN" "$work" "$1"; }
checkf $C "KeyStore lists keys with certificates" j keystore
checkf $C "Signature SHA256withRSA" j sha256withrsa
checkf $C "Signature RSASSA-PSS (SHA-256, MGF1, salt 32)" j rsassa-pss
checkf $C "Signature SHA256withECDSA" j sha256withecdsa
checkf $C "Cipher AES/CBC/PKCS5Padding" j aes-cbc
cbc_cross() {
  p11 --login --pin "$USER_PIN" --decrypt --mechanism AES-CBC-PAD --iv 000102030405060708090a0b0c0d0e0f \
    --id a1 -i "$work/java-cbc.ct" -o "$work/java-cbc.back"
  cmp "$work/java-cbc.plain" "$work/java-cbc.back"
}
checkf $C "pkcs11-tool decrypts Java's AES-CBC ciphertext" cbc_cross
checkf $C "Cipher AES/GCM/NoPadding" j aes-gcm
checkf $C "KeyPairGenerator RSA and EC through the provider" j keypairgenerator
checkf $C "KeyGenerator AES through the provider, stored in the KeyStore" j keygenerator
checkf $C "SecureRandom PKCS11" j securerandom
keytool_list() {
  kt -list | tee "$work/kt.list"
  grep -q '^javarsa, PrivateKeyEntry' "$work/kt.list"
  grep -q '^javaec, PrivateKeyEntry' "$work/kt.list"
  grep -q '^aes1, SecretKeyEntry' "$work/kt.list"
}
checkf $C "keytool -list -storetype PKCS11 -providerClass SunPKCS11 -providerArg cfg" keytool_list
summary

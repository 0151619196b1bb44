#!/usr/bin/env bash
# Interop: the fork patterns of real clients, in a small C program (c/fork.c) compiled with
# gcc at test time against the repo's include/pkcs11.h and run on a fresh token:
#  (a) libp11/nginx: the parent logs in and finds the key, forks; each child calls
#      C_Initialize again (CKR_CRYPTOKI_ALREADY_INITIALIZED accepted) and signs with the
#      inherited session and key handle;
#  (b) pkcs11-provider: each child calls C_Finalize, C_Initialize, logs in again and signs.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
C=fork
new_store fork
init_token $C
check $C "keypairgen RSA-2048 (pkcs11-tool)" p11 --login --pin "$USER_PIN" --keypairgen --key-type rsa:2048 --id 01 --label forkkey
check $C "compile c/fork.c with gcc" gcc -Wall -Wextra -Werror -O1 -I "$REPO/include" -o "$work/fork" "$here/c/fork.c" -ldl
check $C "(a) libp11/nginx: children re-call C_Initialize, sign with inherited session" "$work/fork" "$MODULE" "$USER_PIN" forkkey inherit
check $C "(b) pkcs11-provider: children C_Finalize + C_Initialize, log in again, sign" "$work/fork" "$MODULE" "$USER_PIN" forkkey reinit
summary

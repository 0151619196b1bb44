#!/usr/bin/env bash
# Interop: scripts/install-module.sh registers the module with p11-kit system-wide;
# `p11-kit list-modules`, p11tool (no --provider) and pkcs11-tool through p11-kit-proxy.so
# then find the clusterhsm token, and `install-module.sh --uninstall` removes it again.
# A clusterhsm registration that existed before the test is put back at the end.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
C=p11-kit
new_store p11-kit
export work MODULE REPO USER_PIN
moddir=$(pkg-config --variable=p11_module_path p11-kit-1 2>/dev/null || echo /usr/lib/x86_64-linux-gnu/pkcs11)
confdir=$(pkg-config --variable=p11_module_configs p11-kit-1 2>/dev/null || echo /usr/share/p11-kit/modules)
export moddir confdir
# Keep a registration made before this test and put it back afterwards.
mkdir -p "$work/saved"
[ -f "$moddir/libclusterhsm.so" ] && cp -p "$moddir/libclusterhsm.so" "$work/saved/"
[ -f "$confdir/clusterhsm.module" ] && cp -p "$confdir/clusterhsm.module" "$work/saved/"
restore() {
  "$REPO/scripts/install-module.sh" --uninstall
  [ -f "$work/saved/libclusterhsm.so" ] && cp -p "$work/saved/libclusterhsm.so" "$moddir/"
  [ -f "$work/saved/clusterhsm.module" ] && cp -p "$work/saved/clusterhsm.module" "$confdir/"
}
on_exit restore

init_token $C
check $C "install-module.sh" "$REPO/scripts/install-module.sh" --so "$MODULE"
installed_files() {
  ls -l "$moddir/libclusterhsm.so" "$confdir/clusterhsm.module"
  cmp "$MODULE" "$moddir/libclusterhsm.so"
  cat "$confdir/clusterhsm.module"
}
checkf $C "module in $moddir, config in $confdir" installed_files
list_modules() {
  local out
  out=$(p11-kit list-modules)
  echo "$out" | sed -n '/^clusterhsm:/,/^[^ ]/p'
  echo "$out" | grep -q '^clusterhsm: .*libclusterhsm.so'
  echo "$out" | sed -n '/^clusterhsm:/,/^[^ ]/p' | grep -q 'token: interop'
}
checkf $C "p11-kit list-modules shows clusterhsm and its token" list_modules
list_tokens() {
  local out
  out=$(p11tool --list-tokens)
  echo "$out" | grep -B1 -A7 'token=interop'
  echo "$out" | grep -q 'manufacturer=clusterhsm%20project;serial=[0-9a-f]*;token=interop'
}
checkf $C "p11tool --list-tokens (no --provider) finds the token" list_tokens
sign_via_system() {
  export GNUTLS_PIN="$USER_PIN"
  p11tool --login --generate-privkey=ecdsa --curve=secp256r1 --label=p11kit-ec --outfile="$work/ec.pub.pem" "pkcs11:token=interop"
  p11tool --login --test-sign "pkcs11:token=interop;object=p11kit-ec;type=private" 2>&1 | tee "$work/ts.log"
  [ "$(grep -c '\.\.\. ok' "$work/ts.log")" -eq 3 ]
}
checkf $C "p11tool (no --provider) generates a key and test-signs" sign_via_system
proxy() {
  local proxy_so
  proxy_so=$(ls /usr/lib/*/p11-kit-proxy.so | head -1)
  pkcs11-tool --module "$proxy_so" --list-token-slots | tee "$work/proxy.log"
  grep -q 'token label *: interop' "$work/proxy.log"
  grep -q 'token manufacturer *: clusterhsm project' "$work/proxy.log"
}
checkf $C "pkcs11-tool through p11-kit-proxy.so sees the token" proxy
check $C "install-module.sh --uninstall" "$REPO/scripts/install-module.sh" --uninstall
gone() {
  [ ! -e "$moddir/libclusterhsm.so" ] && [ ! -e "$confdir/clusterhsm.module" ]
  ! p11-kit list-modules | grep -q '^clusterhsm:'
  ! p11tool --list-tokens | grep -q 'token=interop'
}
checkf $C "after uninstall neither p11-kit nor p11tool finds clusterhsm" gone
summary

#!/usr/bin/env bash
# Registers libclusterhsm.so with p11-kit, system-wide, the Debian way: copies the module
# into the PKCS#11 module directory (p11-kit's p11_module_path, on Debian amd64
# /usr/lib/x86_64-linux-gnu/pkcs11/) and writes clusterhsm.module into p11-kit's module
# config directory (/usr/share/p11-kit/modules/). Programs that load modules through
# p11-kit (GnuTLS p11tool/certtool, p11-kit-proxy.so users such as pkcs11-provider's
# default) then find clusterhsm without a module path.
#   scripts/install-module.sh [--so path/to/libclusterhsm.so]   install (default: the release build)
#   scripts/install-module.sh --uninstall                       remove both files
# Needs root. The module still reads CLUSTERHSM_DIR / CLUSTERHSM_CONF (or
# /etc/clusterhsm/clusterhsm.toml) in every process that loads it.
set -euo pipefail
cd "$(dirname "$0")/.."
so=target/release/libclusterhsm.so
mode=install
while [ $# -gt 0 ]; do
  case $1 in
    --uninstall) mode=uninstall ;;
    --so) so=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" -ne 0 ]; then
  echo "install-module.sh writes to system directories: run it as root" >&2
  exit 1
fi
multiarch=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
moddir=$(pkg-config --variable=p11_module_path p11-kit-1 2>/dev/null || true)
[ -n "$moddir" ] || moddir=/usr/lib/$multiarch/pkcs11
confdir=$(pkg-config --variable=p11_module_configs p11-kit-1 2>/dev/null || true)
[ -n "$confdir" ] || confdir=/usr/share/p11-kit/modules

if [ $mode = uninstall ]; then
  rm -f "$moddir/libclusterhsm.so" "$confdir/clusterhsm.module"
  echo "removed $moddir/libclusterhsm.so and $confdir/clusterhsm.module"
  exit 0
fi
[ -f "$so" ] || { echo "$so not found: build it first (cargo build --release)" >&2; exit 1; }
install -d -m 0755 "$moddir" "$confdir"
# install(1) writes a new file and renames it: processes that have the old copy mapped
# keep running.
install -m 0644 "$so" "$moddir/libclusterhsm.so"
cat > "$confdir/clusterhsm.module.tmp" <<MOD
# clusterhsm, a software HSM modelling an AWS CloudHSM cluster (installed by
# scripts/install-module.sh). See pkcs11.conf(5).
module: libclusterhsm.so
# Not needed for the system to work: a failure to load it must not break other modules.
critical: no
MOD
mv "$confdir/clusterhsm.module.tmp" "$confdir/clusterhsm.module"
echo "installed $moddir/libclusterhsm.so and $confdir/clusterhsm.module"

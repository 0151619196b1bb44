#!/usr/bin/env bash
# Installs, with apt-get, whatever the interop suite (pkcs11-tests/interop/*.sh) needs and
# the machine lacks: OpenSC, OpenSSL with pkcs11-provider (from bookworm-backports) and the
# libp11 engine, nginx, curl, GnuTLS tools, p11-kit, a JDK, python3-venv, a C compiler.
# Needs root when something is missing; runs `apt-get update` at most once. A package that
# cannot be installed makes this script (and so the test run) fail.
set -euo pipefail

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

need=()
for pkg in opensc openssl nginx curl gnutls-bin p11-kit libengine-pkcs11-openssl gcc pkg-config gdb valgrind; do
  installed "$pkg" || need+=("$pkg")
done
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
# The venv module (with ensurepip) of the python3 the scripts will run.
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
need_backports=0
installed pkcs11-provider || need_backports=1

if [ ${#need[@]} -eq 0 ] && [ $need_backports -eq 0 ]; then
  echo "interop dependencies: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "interop dependencies missing: ${need[*]}$([ $need_backports -eq 1 ] && echo ' pkcs11-provider (bookworm-backports)')" >&2
  echo "run scripts/install-interop-deps.sh as root (or install them yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

if [ $need_backports -eq 1 ]; then
  # pkcs11-provider is in bookworm-backports only: add that suite to the existing Debian
  # entry (deb822 .sources or one-line sources.list) instead of naming a mirror here.
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    added=0
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      if grep -qE '^Suites:.*(^|[[:space:]])bookworm([[:space:]]|$)' "$f"; then
        sed -i -E '/^Suites:/ s/(^|[[:space:]])bookworm([[:space:]]|$)/\1bookworm bookworm-backports\2/' "$f"
        echo "added bookworm-backports to the Suites line of $f"
        added=1
        break
      fi
    done
    if [ $added -eq 0 ] && [ -f /etc/apt/sources.list ]; then
      line=$(grep -E '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+bookworm[[:space:]]' /etc/apt/sources.list | head -1 || true)
      if [ -n "$line" ]; then
        echo "${line/ bookworm / bookworm-backports }" >> /etc/apt/sources.list
        echo "added a bookworm-backports line to /etc/apt/sources.list"
        added=1
      fi
    fi
    if [ $added -eq 0 ]; then
      echo "no Debian bookworm sources entry found to add bookworm-backports to" >&2
      exit 1
    fi
  fi
fi

apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ $need_backports -eq 1 ]; then
  echo "installing: pkcs11-provider (bookworm-backports)"
  apt-get install -y -qq --no-install-recommends -t bookworm-backports pkcs11-provider >/dev/null
fi

# Check that what the suite runs is really there now.
for cmd in pkcs11-tool openssl nginx curl p11tool certtool gnutls-serv gnutls-cli p11-kit javac gcc; do
  command -v "$cmd" >/dev/null || { echo "still missing after install: $cmd" >&2; exit 1; }
done
for pkg in pkcs11-provider libengine-pkcs11-openssl; do
  installed "$pkg" || { echo "still missing after install: $pkg" >&2; exit 1; }
done
echo "interop dependencies: installed"

#!/usr/bin/env bash
# The whole test suite: unit tests, the cryptoki-driven tests in pkcs11-tests/, the
# interop suite with real clients, and the demo. Installs missing system packages with
# apt-get when run as root. Prints each stage's duration.
set -euo pipefail
cd "$(dirname "$0")/.."
suite_start=$(date +%s)

stage_start=0
stage() { stage_name=$1; stage_start=$(date +%s); echo; echo "=== stage: $1"; }
stage_done() { echo "=== stage $stage_name took $(( $(date +%s) - stage_start ))s"; }

stage "install system packages"
# Everything the interop suite runs (OpenSSL with pkcs11-provider and the libp11 engine,
# nginx, GnuTLS, p11-kit, Java, Python venv, gcc); apt-get, so root is needed when
# something is missing.
./scripts/install-interop-deps.sh
stage_done

stage "build (release)"
cargo build --release --workspace --all-targets
stage_done

stage "unit tests"
cargo test --release -p clusterhsm
stage_done

stage "pkcs11-tests (cryptoki driving the built .so)"
cargo test --release -p pkcs11-tests
stage_done

# Reliability (issue 8): short forms of the long runs in README "Reliability". Like the
# interop stages, a failing one does not stop the others; the suite fails at the end.
reliability_failed=()
reliability() {
  stage "reliability: $1"
  shift
  "$@" || reliability_failed+=("$stage_name")
  stage_done
}
reliability "stress (8 threads x 3 processes, AZ down/up, STRESS_SECONDS=${STRESS_SECONDS:-10})" \
  cargo test --release -p pkcs11-tests --test stress -- --nocapture
reliability "kill -9 during writes (4 writers, 1,000 operations)" \
  cargo test --release -p pkcs11-tests --test crash -- --nocapture
reliability "disk full and read-only store (mount namespace, root)" \
  cargo test --release -p pkcs11-tests --test diskfull -- --nocapture
reliability "fuzzing (proptest, PROPTEST_CASES=${PROPTEST_CASES:-500} per target)" \
  cargo test --release -p pkcs11-tests --test fuzz_abi --test fuzz_decoders -- --nocapture --test-threads=1
reliability "bad-input sweep under valgrind" \
  bash pkcs11-tests/valgrind/run.sh

# Interop with real clients, one stage per client; a failing client does not stop the
# others (each prints its own PASS/FAIL lines), the suite fails at the end.
interop_failed=()
interop() {
  stage "interop: $2"
  bash "pkcs11-tests/interop/$1.sh" || interop_failed+=("$1")
  stage_done
}
interop pkcs11-tool "pkcs11-tool"
interop openssl "openssl (pkcs11-provider and libp11 engine)"
interop nginx "nginx (TLS with token keys, failover under load)"
interop fork "fork (libp11 and pkcs11-provider patterns, C)"
interop gnutls "gnutls (p11tool, certtool, gnutls-serv)"
interop p11-kit "p11-kit (install-module.sh, system-wide registration)"
interop python "python (python-pkcs11, PyKCS11 in a virtualenv)"
interop java "java (SunPKCS11, keytool)"
if [ ${#interop_failed[@]} -gt 0 ]; then
  echo "interop failed: ${interop_failed[*]}" >&2
  exit 1
fi
if [ ${#reliability_failed[@]} -gt 0 ]; then
  printf 'reliability failed: %s\n' "${reliability_failed[@]}" >&2
  exit 1
fi

stage "demo"
target/release/clusterhsm demo
stage_done
echo
echo "all stages passed in $(( $(date +%s) - suite_start ))s"

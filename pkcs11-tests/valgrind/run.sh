#!/usr/bin/env bash
# The bad-input sweep (sweep.c) under valgrind: every row must match its PKCS#11 code,
# with zero invalid reads/writes and zero definitely-lost blocks. Suppressions
# (valgrind.supp) cover third-party code only, each with its reason.
# Usage: pkcs11-tests/valgrind/run.sh [path/to/libclusterhsm.so]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
module=${1:-$repo/target/release/libclusterhsm.so}
command -v valgrind >/dev/null || { echo "valgrind missing: run scripts/install-interop-deps.sh" >&2; exit 1; }
[ -f "$module" ] || { echo "module not found: $module (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -Wall -Wextra -Werror -O1 -g -I "$repo/include" -o "$work/sweep" "$here/sweep.c" -ldl
mkdir -p "$work/store"
printf 'kdf_iterations = 1000\n' > "$work/clusterhsm.toml"
export CLUSTERHSM_DIR="$work/store" CLUSTERHSM_CONF="$work/clusterhsm.toml"
start=$(date +%s)
set +e
valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --track-origins=yes --suppressions="$here/valgrind.supp" \
  --log-file="$work/valgrind.log" "$work/sweep" "$module" > "$work/sweep.out"
rc=$?
set -e
cat "$work/sweep.out" | grep -v '^ok ' || true
echo "--- valgrind summary"
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|Invalid (read|write)" "$work/valgrind.log" | sed 's/^==[0-9]*== //' | sort | uniq -c
if [ $rc -ne 0 ]; then
  echo "--- valgrind log"; cat "$work/valgrind.log"
  echo "FAIL: sweep under valgrind exited $rc" >&2
  exit 1
fi
echo "PASS: $(tail -1 "$work/sweep.out") under valgrind in $(( $(date +%s) - start ))s"

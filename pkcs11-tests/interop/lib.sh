# Shared helpers for the interop scripts: one PASS/FAIL line per check, a summary line.
MODULE=${CLUSTERHSM_MODULE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/release/libclusterhsm.so}
[ -f "$MODULE" ] || { echo "FAIL setup: $MODULE not built"; exit 1; }
passed=0
failed=0
log_dir=${INTEROP_LOG_DIR:-$(mktemp -d)}
check() {
  local client=$1 step=$2; shift 2
  local log="$log_dir/$(echo "$client-$step" | tr -c 'A-Za-z0-9_.-' '_').log"
  if timeout 300 "$@" >"$log" 2>&1; then
    echo "PASS $client: $step"
    passed=$((passed + 1))
  else
    echo "FAIL $client: $step (log: $log)"
    sed 's/^/    | /' "$log" | tail -15
    failed=$((failed + 1))
  fi
}
summary() {
  echo "interop: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

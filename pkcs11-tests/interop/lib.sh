# Shared helpers for the interop scripts: one PASS/FAIL line per check, a summary line.
MODULE=${CLUSTERHSM_MODULE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/release/libclusterhsm.so}
[ -f "$MODULE" ] || { echo "FAIL setup: $MODULE not built"; exit 1; }
passed=0
failed=0
log_dir=${INTEROP_LOG_DIR:-}
[ -n "$log_dir" ] || { log_dir=$(mktemp -d "${TMPDIR:-/tmp}/interop-logs.XXXXXX"); own_log_dir=1; }
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
  # the logs are kept (and named in the FAIL lines) only when something failed
  [ "$failed" -eq 0 ] && [ "${own_log_dir:-0}" = 1 ] && rm -rf "$log_dir"
  [ "$failed" -eq 0 ]
}

# --- helpers for the client scripts -------------------------------------------------------
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SO_PIN=${SO_PIN:-12345678}
USER_PIN=${USER_PIN:-1234}
# Cleanup actions run in reverse order at exit (kill what a script started, remove its temp
# dir); a script adds to them with on_exit and never sets its own EXIT trap.
_cleanups=()
on_exit() { _cleanups+=("$1"); }
_run_cleanups() {
  local i
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[$i]}" >/dev/null 2>&1 || true; done
}
trap _run_cleanups EXIT
trap 'exit 130' INT TERM
# new_store: a fresh temp dir ($work) with its own store and a test config (fast KDF);
# exports CLUSTERHSM_DIR and CLUSTERHSM_CONF, puts `p11` (pkcs11-tool on the module) on PATH.
new_store() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/interop-$1.XXXXXX")
  on_exit "rm -rf '$work'"
  export CLUSTERHSM_DIR="$work/store"
  printf 'kdf_iterations = 10000\n' > "$work/test.toml"
  export CLUSTERHSM_CONF="$work/test.toml"
  mkdir -p "$work/bin"
  printf '#!/bin/sh\nexec pkcs11-tool --module "%s" "$@"\n' "$MODULE" > "$work/bin/p11"
  chmod +x "$work/bin/p11"
  export PATH="$work/bin:$PATH"
}
# init_token CLIENT: the token set up through PKCS#11 only, as a user would (C_InitToken with
# the SO PIN creates the cluster, C_InitPIN creates the default Crypto User).
init_token() {
  check "$1" "init-token (pkcs11-tool)" p11 --init-token --label interop --so-pin "$SO_PIN"
  check "$1" "init-pin (pkcs11-tool)" p11 --login --login-type so --so-pin "$SO_PIN" --init-pin --pin "$USER_PIN"
}
# free_port: a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
# no_crash LOG: the log shows no signal death or sanitizer/abort message.
no_crash() { ! grep -qiE 'segmentation fault|core dumped|aborted|double free|panicked' "$1"; }
# checkf CLIENT STEP FUNCTION [ARGS...]: check with a shell function of the script (every
# function and the exported variables reach it; set -e inside, so any failing command fails
# the step).
checkf() {
  local client=$1 step=$2; shift 2
  export -f $(declare -F | awk '{print $3}')
  check "$client" "$step" bash -ec '"$@"' _ "$@"
}

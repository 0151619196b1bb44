#!/usr/bin/env bash
# The benchmark of issue 7, one command: builds the module and examples/bench.rs, runs
#   1. p11bench (../shared/bench) with A = clusterhsm, B = SoftHSMv2, interleaved, with the
#      OpenSSL ceiling (`--limit`: openssl speed -elapsed, aes-256-cbc, sha256, ...);
#   2. p11bench keygen_rsa2048 alone with --seconds 30;
#   3. p11bench's dedicated scaling run (--threads 1,2 --seconds 4 --rounds 4);
#   4. examples/bench.rs: every case through the C ABI, with aws-lc-rs alone in-process;
#   5. examples/bench.rs --scale: 100,000 AES + 10,000 RSA token keys;
# each on fresh token directories, one after the other, JSON into
# bench-results/<date>-<nproc>cpu-<cpu model>/, then renders the README table
# (scripts/render-bench.py, between the bench markers in README.md).
#
#   scripts/bench.sh                 # everything (about 15 minutes on 2 cores)
#   QUICK=1 scripts/bench.sh         # short smoke run into bench-results/quick-* (not for the README)
#
# Environment: P11BENCH (a built p11bench; default: build ../shared/bench into
# target/p11bench), SOFTHSM (module path; default from dpkg), OUT (result directory).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n== %s (load %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2; }

step "build"
cargo build --release --quiet
cargo build --release --quiet --example bench
if [[ -z "${P11BENCH:-}" ]]; then
    src=${P11BENCH_SRC:-$root/../shared/bench}
    CARGO_TARGET_DIR="$root/target/p11bench" cargo build --release --quiet --manifest-path "$src/Cargo.toml"
    P11BENCH=$root/target/p11bench/release/p11bench
fi
SOFTHSM=${SOFTHSM:-$(dpkg -L libsofthsm2 2>/dev/null | grep -m1 '/libsofthsm2\.so$' || echo /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so)}

cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
slug=$(printf '%s' "$cpu" | tr -c 'A-Za-z0-9' '-' | sed 's/--*/-/g; s/^-//; s/-$//' | cut -c1-40)
if [[ -n "${QUICK:-}" ]]; then
    OUT=${OUT:-bench-results/quick-$(date +%Y-%m-%d)-$(nproc)cpu-$slug}
    P="--seconds 0.6 --rounds 3"; KG=3; SC="--seconds 1 --rounds 3"; B="--seconds 0.6 --keygen-seconds 3"
    SCALE="--aes 10000 --rsa 1000"
else
    OUT=${OUT:-bench-results/$(date +%Y-%m-%d)-$(nproc)cpu-$slug}
    P="--seconds 2 --rounds 3"; KG=30; SC="--seconds 4 --rounds 4"; B="--seconds 2 --keygen-seconds 30"
    SCALE="--aes 100000 --rsa 10000"
fi
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The module under test is a snapshot: a rebuild in target/ during the run changes nothing.
cp target/release/libclusterhsm.so "$tmp/libclusterhsm.so"
MOD=$tmp/libclusterhsm.so

# Fresh stores: clusterhsm (CLUSTERHSM_DIR) and SoftHSMv2 (SOFTHSM2_CONF) per run.
fresh() { # fresh NAME -> sets CLUSTERHSM_DIR and SOFTHSM2_CONF for one run
    local d="$tmp/$1"
    mkdir -p "$d/clusterhsm" "$d/softhsm/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$d/softhsm/tokens" >"$d/softhsm/softhsm2.conf"
    export CLUSTERHSM_DIR="$d/clusterhsm" SOFTHSM2_CONF="$d/softhsm/softhsm2.conf"
}
loads=()
mark() { loads+=("{\"step\":\"$1\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"time\":\"$(date -Is)\"}"); }

mark start
step "1/5 p11bench clusterhsm vs SoftHSMv2 with the OpenSSL ceiling"
fresh main
"$P11BENCH" --module "$MOD" --module-b "$SOFTHSM" --limit --threads 1 $P \
    --json "$OUT/p11bench.json" | tee "$OUT/p11bench.txt"
mark p11bench

step "2/5 p11bench keygen_rsa2048, ${KG} s"
fresh keygen
"$P11BENCH" --module "$MOD" --module-b "$SOFTHSM" --only keygen_rsa2048 --threads 1 \
    --seconds "$KG" --json "$OUT/p11bench-keygen-rsa.json" | tee "$OUT/p11bench-keygen-rsa.txt"
mark keygen

step "3/5 p11bench scaling, threads 1,2"
fresh scaling
T='rsa2048_sign_pkcs1_sha256,rsa2048_sign_pss_sha256,rsa3072_sign,rsa4096_sign,ecdsa_p256_sign,ecdsa_p384_sign,ecdsa_p384_sha384_sign,aes256_cbc_encrypt_4k,aes256_gcm_encrypt_4k,aes256_ecb_16,find_objects'
"$P11BENCH" --module "$MOD" --module-b "$SOFTHSM" --only "$T" --threads 1,2 $SC \
    --json "$OUT/p11bench-scaling.json" | tee "$OUT/p11bench-scaling.txt"
mark scaling

step "4/5 examples/bench.rs (C ABI + aws-lc-rs alone)"
target/release/examples/bench --module "$MOD" --store "$tmp/bench-store" $B \
    --json "$OUT/bench.json" | tee "$OUT/bench.txt"
mark bench

step "5/5 examples/bench.rs --scale"
target/release/examples/bench --scale --module "$MOD" --store "$tmp/scale-store" $SCALE \
    --json "$OUT/scale.json" 2>&1 | tee "$OUT/scale.txt"
mark end

{
    printf '{\n  "date": "%s",\n  "nproc": %s,\n  "cpu_model": "%s",\n' "$(date -Is)" "$(nproc)" "$cpu"
    printf '  "mem_total": "%s",\n' "$(grep -m1 MemTotal /proc/meminfo | sed 's/  */ /g')"
    printf '  "kernel": "%s",\n  "openssl": "%s",\n' "$(uname -r)" "$(openssl version)"
    printf '  "softhsm": "%s",\n' "$(dpkg-query -W -f '${Version}' libsofthsm2 2>/dev/null || echo unknown)"
    printf '  "rustc": "%s",\n' "$(rustc --version)"
    printf '  "git_commit": "%s",\n' "$(git rev-parse HEAD)"
    printf '  "git_dirty_src": %s,\n' "$( [[ -n $(git status --porcelain -- src Cargo.toml) ]] && echo true || echo false)"
    printf '  "module_sha256": "%s",\n' "$(sha256sum "$MOD" | cut -d' ' -f1)"
    printf '  "p11bench": "%s",\n  "quick": %s,\n' "$P11BENCH" "$([[ -n ${QUICK:-} ]] && echo true || echo false)"
    printf '  "loadavg": [%s]\n}\n' "$(IFS=,; echo "${loads[*]}")"
} >"$OUT/machine.json"

step "render"
if [[ -z "${QUICK:-}" ]]; then
    python3 scripts/render-bench.py "$OUT" --readme README.md
else
    python3 scripts/render-bench.py "$OUT"
fi
echo "results in $OUT" >&2

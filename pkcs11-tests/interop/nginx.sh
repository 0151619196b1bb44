#!/usr/bin/env bash
# Interop: nginx (Debian package) terminates TLS 1.2 and 1.3 with RSA-2048 and P-256 keys on
# the token through the libp11 engine, using examples/nginx/nginx.conf and
# examples/openssl/libp11-engine.cnf: 2 workers running as nobody, on random free 127.0.0.1
# ports, with its own prefix and pid file, stopped by its PID. Real handshakes with curl and
# openssl s_client; a bounded handshake load while hsm-b goes down must see zero failures;
# handshakes/s are measured with the token keys and, in the same nginx, with the same keys
# from PEM files (the keys are made as PEM first and imported into the token with
# pkcs11-tool --write-object --type privkey, so both sides use identical key material).
# Environment: nginx keeps CLUSTERHSM_DIR / CLUSTERHSM_CONF through `env` directives.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
C=nginx
CLI="$REPO/target/release/clusterhsm"
LOAD_SECONDS=${NGINX_LOAD_SECONDS:-8}
RATE_SECONDS=${NGINX_RATE_SECONDS:-5}
new_store nginx
export work MODULE REPO USER_PIN CLI
# The workers (nobody) must reach the store: the temp dir is private to root otherwise.
chmod 0711 "$work"
export CLUSTERHSM_MODULE="$MODULE"
export OPENSSL_CONF="$REPO/examples/openssl/libp11-engine.cnf"
plain() { env -u OPENSSL_CONF openssl "$@"; }

init_token $C
# Store permissions: the directory and every file in it (SQLite db, -wal, -shm,
# changes.shm) belong to the worker user; root (master, CLI) can use them anyway, and
# SQLite gives a -wal/-shm it creates as root the owner of the database file.
set_store_perms() {
  chown -R nobody:nogroup "$CLUSTERHSM_DIR"
  chmod 0700 "$CLUSTERHSM_DIR"
  ls -la "$CLUSTERHSM_DIR"
}

# Keys made as PEM, imported into the token (private key, public key and certificate under
# one ID, as libp11 expects), so the PEM and token servers use the same key.
certs="$work/certs"
mkdir -p "$certs"
export certs LOAD_SECONDS RATE_SECONDS
make_keys() {
  plain genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$certs/rsa.key"
  plain genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$certs/ec.key"
  local k id
  for k in rsa ec; do
    [ $k = rsa ] && id=01 || id=02
    plain req -x509 -new -key "$certs/$k.key" -sha256 -days 2 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$certs/$k.crt"
    plain pkey -in "$certs/$k.key" -outform DER -out "$certs/$k.key.der"
    plain pkey -in "$certs/$k.key" -pubout -outform DER -out "$certs/$k.pub.der"
    plain x509 -in "$certs/$k.crt" -outform DER -out "$certs/$k.crt.der"
    p11 --login --pin "$USER_PIN" --write-object "$certs/$k.key.der" --type privkey --id $id --label $k
    p11 --login --pin "$USER_PIN" --write-object "$certs/$k.pub.der" --type pubkey --id $id --label $k
    p11 --login --pin "$USER_PIN" --write-object "$certs/$k.crt.der" --type cert --id $id --label $k
  done
  chmod 0644 "$certs"/*.crt
}
checkf $C "PEM keys (RSA-2048, P-256) imported into the token" make_keys
checkf $C "store directory owned by the worker user" set_store_perms

prefix="$work/nginx"
mkdir -p "$prefix/tmp" "$prefix/conf.d" "$prefix/logs"
port_rsa=$(free_port); port_ec=$(free_port); port_pem_rsa=$(free_port); port_pem_ec=$(free_port)
export prefix certs port_rsa port_ec port_pem_rsa port_pem_ec
sed -e "s|@PREFIX@|$prefix|g" -e "s|@CERTS@|$certs|g" -e "s|@PORT_RSA@|$port_rsa|g" \
    -e "s|@PORT_EC@|$port_ec|g" -e "s|@PIN@|$USER_PIN|g" "$REPO/examples/nginx/nginx.conf" > "$prefix/nginx.conf"
# The same keys from PEM files, for the handshake-rate comparison.
cat > "$prefix/conf.d/pem-keys.conf" <<EOF
server {
    listen 127.0.0.1:$port_pem_rsa ssl;
    ssl_certificate $certs/rsa.crt;
    ssl_certificate_key $certs/rsa.key;
    location / { return 200 "pem rsa\n"; }
}
server {
    listen 127.0.0.1:$port_pem_ec ssl;
    ssl_certificate $certs/ec.crt;
    ssl_certificate_key $certs/ec.key;
    location / { return 200 "pem ec\n"; }
}
EOF

stop_nginx() {
  local pid pfx=${1:-$prefix}
  pid=$(cat "$pfx/nginx.pid" 2>/dev/null) || return 0
  kill -QUIT "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  # the workers die with the master; make sure of it
  pkill -KILL -P "$pid" 2>/dev/null || true
}
on_exit "stop_nginx '$prefix'"
on_exit "$CLI hsm up hsm-b"
start_nginx() {
  nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" -t
  nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log"
  for _ in $(seq 50); do [ -s "$prefix/nginx.pid" ] && break; sleep 0.1; done
  sleep 0.5
  local master workers
  master=$(cat "$prefix/nginx.pid")
  workers=$(pgrep -P "$master" | wc -l)
  ps -o pid,user,cmd --ppid "$master"
  [ "$workers" -eq 2 ] || { echo "expected 2 workers, got $workers" >&2; cat "$prefix/logs/error.log" >&2; return 1; }
  [ "$(ps -o user= --ppid "$master" | sort -u)" = nobody ]
}
checkf $C "nginx starts (2 workers as nobody, keys via engine:pkcs11)" start_nginx

curl_ok() {
  local port=$1 tls=$2 expect=$3
  local out
  out=$(curl -sS --max-time 10 --cacert "$certs/$4.crt" "--tlsv$tls" --tls-max "$tls" "https://127.0.0.1:$port/" -w '\n%{http_code} %{ssl_verify_result}')
  echo "$out"
  echo "$out" | grep -q "^$expect\$"
  echo "$out" | tail -1 | grep -q '^200 0$'
}
s_client_ok() {
  local port=$1 tls=$2 k=$3 out
  out=$(plain s_client -connect "127.0.0.1:$port" "-tls$tls" -CAfile "$certs/$k.crt" -verify_return_error -verify_ip 127.0.0.1 </dev/null 2>&1)
  echo "$out" | grep -E 'Protocol|Cipher is|Peer signature type|Verification|Verify return code'
  echo "$out" | grep -q 'Verify return code: 0 (ok)'
  if [ "$k" = rsa ]; then echo "$out" | grep -qE 'Peer signature type: RSA'; else echo "$out" | grep -q 'Peer signature type: ECDSA'; fi
}
for tls in 1.2 1.3; do
  checkf $C "curl TLS $tls, RSA-2048 token key" curl_ok "$port_rsa" $tls "clusterhsm rsa" rsa
  checkf $C "curl TLS $tls, P-256 token key" curl_ok "$port_ec" $tls "clusterhsm ec" ec
  checkf $C "openssl s_client TLS $tls, RSA-2048 token key" s_client_ok "$port_rsa" "${tls/./_}" rsa
  checkf $C "openssl s_client TLS $tls, P-256 token key" s_client_ok "$port_ec" "${tls/./_}" ec
done

# Handshake load (curl loops, new connection each, bounded in time) on both token-key
# servers and both TLS versions while hsm-b goes down: no handshake may fail.
curl_loop() {
  local port=$1 tls=$2 k=$3 out=$4 end=$((SECONDS + LOAD_SECONDS)) ok=0 fail=0
  while [ $SECONDS -lt $end ]; do
    if curl -s --max-time 10 -o /dev/null --cacert "$certs/$k.crt" "--tlsv$tls" --tls-max "$tls" "https://127.0.0.1:$port/" -w '%{http_code}' | grep -q '^200$'; then
      ok=$((ok + 1))
    else
      fail=$((fail + 1))
    fi
  done
  echo "$ok $fail" > "$out"
}
failover_load() {
  local pids=() i=0 ok=0 fail=0 a b
  "$CLI" status
  for spec in "$port_rsa 1.2 rsa" "$port_rsa 1.3 rsa" "$port_ec 1.2 ec" "$port_ec 1.3 ec"; do
    curl_loop $spec "$work/load.$i" & pids+=($!)
    i=$((i + 1))
  done
  sleep 2
  "$CLI" hsm down hsm-b
  "$CLI" status
  wait "${pids[@]}"
  for f in "$work"/load.*; do
    read -r a b < "$f"; ok=$((ok + a)); fail=$((fail + b))
  done
  echo "handshakes during failover: $ok succeeded, $fail failed"
  echo "$ok $fail" > "$work/failover.result"
  "$CLI" hsm up hsm-b
  "$CLI" status
  [ "$ok" -gt 0 ] && [ "$fail" -eq 0 ]
}
checkf $C "zero failed handshakes while hsm-b goes down (${LOAD_SECONDS}s, 4 curl loops)" failover_load
[ -f "$work/failover.result" ] && echo "    handshakes during failover (succeeded failed): $(cat "$work/failover.result")"
checkf $C "handshakes still succeed after hsm-b is back" curl_ok "$port_rsa" 1.3 "clusterhsm rsa" rsa

# Handshake rate: 2 parallel `openssl s_time -new` (full handshakes, TLS 1.3) per server.
rate() {
  local port=$1 k=$2 i n total=0 secs
  for i in 1 2; do
    plain s_time -connect "127.0.0.1:$port" -new -time "$RATE_SECONDS" -CAfile "$certs/$k.crt" > "$work/stime.$port.$i" 2>&1 &
  done
  wait
  for i in 1 2; do
    n=$(sed -n 's/^\([0-9]*\) connections in [0-9.]* real seconds.*/\1/p' "$work/stime.$port.$i" | head -1)
    [ -n "$n" ] || { cat "$work/stime.$port.$i" >&2; return 1; }
    total=$((total + n))
  done
  echo "$k port $port: $total handshakes in ${RATE_SECONDS}s = $((total / RATE_SECONDS))/s"
  echo "$((total / RATE_SECONDS))" > "$work/rate.$port"
  [ "$total" -gt 0 ]
}
checkf $C "handshake rate, RSA-2048 token key" rate "$port_rsa" rsa
checkf $C "handshake rate, RSA-2048 PEM key" rate "$port_pem_rsa" rsa
checkf $C "handshake rate, P-256 token key" rate "$port_ec" ec
checkf $C "handshake rate, P-256 PEM key" rate "$port_pem_ec" ec
r() { cat "$work/rate.$1" 2>/dev/null || echo "?"; }
echo "    handshakes/s (TLS 1.3, 2 s_time clients): RSA-2048 token $(r $port_rsa) vs PEM $(r $port_pem_rsa); P-256 token $(r $port_ec) vs PEM $(r $port_pem_ec)"

# The workers signed with token keys held in the module's locked arena: VmLck > 0 in each
# (mlock is not inherited across fork; the module re-locks its chunks in the child).
workers_locked() {
  local master w kb all=0
  master=$(cat "$prefix/nginx.pid")
  for w in $(pgrep -P "$master"); do
    kb=$(awk '/^VmLck:/ {print $2}' "/proc/$w/status")
    echo "worker $w: VmLck ${kb} kB"
    [ "${kb:-0}" -gt 0 ] || all=1
  done
  return $all
}
checkf $C "nginx workers hold the keys in locked memory (VmLck > 0)" workers_locked

no_errors_logged() {
  cat "$prefix/logs/error.log"
  ! grep -E '\[(emerg|alert|crit)\]|signal [0-9]+' "$prefix/logs/error.log"
}
checkf $C "nginx error log: no crit/alert/emerg, no worker killed by a signal" no_errors_logged
stopped() {
  local pid
  pid=$(cat "$prefix/nginx.pid")
  stop_nginx
  ! kill -0 "$pid" 2>/dev/null
  ! pgrep -f "nginx.*$prefix" >/dev/null
}
checkf $C "nginx stopped by its PID" stopped

# --- the same with pkcs11-provider: keys are PEM files wrapping their pkcs11: URI
# (examples/openssl/uri2pem.py), examples/nginx/nginx-pkcs11-provider.conf, the provider
# config with the PIN in a root-only file; the provider re-initializes the module in each
# worker after fork (C_Finalize, C_Initialize, login).
prefix="$work/nginx-provider"
keys="$work/keys"
mkdir -p "$prefix/tmp" "$prefix/logs" "$keys"
port_rsa=$(free_port); port_ec=$(free_port)
export prefix keys port_rsa port_ec
echo "$USER_PIN" > "$work/pin.txt"
chmod 0600 "$work/pin.txt"
export CLUSTERHSM_PIN_FILE="$work/pin.txt"
python3 "$REPO/examples/openssl/uri2pem.py" 'pkcs11:object=rsa;type=private' > "$keys/rsa-uri.pem"
python3 "$REPO/examples/openssl/uri2pem.py" 'pkcs11:object=ec;type=private' > "$keys/ec-uri.pem"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@CERTS@|$certs|g" -e "s|@KEYS@|$keys|g" -e "s|@PORT_RSA@|$port_rsa|g" \
    -e "s|@PORT_EC@|$port_ec|g" "$REPO/examples/nginx/nginx-pkcs11-provider.conf" > "$prefix/nginx.conf"
on_exit "stop_nginx '$prefix'"
export OPENSSL_CONF="$REPO/examples/openssl/pkcs11-provider.cnf"
checkf $C "pkcs11-provider: nginx starts (2 workers as nobody, URI-PEM keys)" start_nginx
for tls in 1.2 1.3; do
  checkf $C "pkcs11-provider: curl TLS $tls, RSA-2048 token key" curl_ok "$port_rsa" $tls "clusterhsm rsa" rsa
  checkf $C "pkcs11-provider: curl TLS $tls, P-256 token key" curl_ok "$port_ec" $tls "clusterhsm ec" ec
  checkf $C "pkcs11-provider: openssl s_client TLS $tls, RSA-2048 token key" s_client_ok "$port_rsa" "${tls/./_}" rsa
done
rm -f "$work"/load.* "$work/failover.result"
checkf $C "pkcs11-provider: zero failed handshakes while hsm-b goes down (${LOAD_SECONDS}s, 4 curl loops)" failover_load
[ -f "$work/failover.result" ] && echo "    handshakes during failover (succeeded failed): $(cat "$work/failover.result")"
checkf $C "pkcs11-provider: handshake rate, RSA-2048 token key" rate "$port_rsa" rsa
checkf $C "pkcs11-provider: handshake rate, P-256 token key" rate "$port_ec" ec
echo "    handshakes/s via pkcs11-provider (TLS 1.3, 2 s_time clients): RSA-2048 $(r $port_rsa), P-256 $(r $port_ec)"
checkf $C "pkcs11-provider: nginx error log: no crit/alert/emerg, no worker killed by a signal" no_errors_logged
checkf $C "pkcs11-provider: nginx stopped by its PID" stopped
# After the run (root master, nobody workers, root CLI all wrote to it), every file of the
# store is still readable and writable by the worker user.
store_usable_by_workers() {
  ls -la "$CLUSTERHSM_DIR"
  local f n=0
  for f in "$CLUSTERHSM_DIR" "$CLUSTERHSM_DIR"/*; do
    runuser -u nobody -- test -r "$f" -a -w "$f" || { echo "nobody cannot read/write $f" >&2; return 1; }
    n=$((n + 1))
  done
  [ $n -gt 1 ]
}
checkf $C "store files still readable/writable by the worker user" store_usable_by_workers
summary

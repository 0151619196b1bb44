#!/usr/bin/env bash
# Interop: GnuTLS tools on the built module named with --provider (no system-wide install
# needed): p11tool lists the token, generates RSA-2048 and P-256 key pairs on it and
# test-signs with them; certtool makes a CA certificate self-signed by the token RSA key and
# signs with it a server certificate for the token EC key; gnutls-serv serves TLS with the
# token EC key to gnutls-cli on 127.0.0.1. PINs come from GNUTLS_PIN, as GnuTLS documents.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
C=gnutls
new_store gnutls
export work MODULE USER_PIN
export GNUTLS_PIN="$USER_PIN"
TOKEN="pkcs11:token=interop"
RSA="$TOKEN;object=gnutls-rsa;type=private"
EC="$TOKEN;object=gnutls-ec;type=private"
export TOKEN RSA EC

init_token $C
list_tokens() {
  local out
  out=$(p11tool --provider "$MODULE" --list-tokens)
  echo "$out"
  echo "$out" | grep -q 'token=interop' && echo "$out" | grep -q 'Manufacturer: clusterhsm'
}
checkf $C "p11tool --list-tokens" list_tokens
check $C "p11tool --generate-privkey rsa 2048" p11tool --provider "$MODULE" --login --set-pin="$USER_PIN" \
  --generate-privkey=rsa --bits=2048 --label=gnutls-rsa --outfile="$work/rsa.pub.pem" "$TOKEN"
check $C "p11tool --generate-privkey ecdsa secp256r1" p11tool --provider "$MODULE" --login --set-pin="$USER_PIN" \
  --generate-privkey=ecdsa --curve=secp256r1 --label=gnutls-ec --outfile="$work/ec.pub.pem" "$TOKEN"
list_all() {
  local out
  out=$(p11tool --provider "$MODULE" --login --set-pin="$USER_PIN" --list-all "$TOKEN")
  echo "$out"
  for want in 'Private key (RSA-2048)' 'Public key (RSA-2048)' 'Private key (EC/ECDSA-SECP256R1)' 'Public key (EC/ECDSA-SECP256R1)'; do
    echo "$out" | grep -qF "$want" || { echo "missing: $want" >&2; return 1; }
  done
  # without login only the public objects are visible
  ! p11tool --provider "$MODULE" --list-all "$TOKEN" | grep -q 'Private key'
}
checkf $C "p11tool --list-all (private keys only after login)" list_all
test_sign() {
  local out
  out=$(p11tool --provider "$MODULE" --login --set-pin="$USER_PIN" --test-sign "$1" 2>&1)
  echo "$out"
  [ "$(echo "$out" | grep -c '\.\.\. ok')" -eq 3 ]
}
checkf $C "p11tool --test-sign RSA" test_sign "$RSA"
checkf $C "p11tool --test-sign ECDSA" test_sign "$EC"

cat > "$work/ca.tmpl" <<'T'
cn = "clusterhsm GnuTLS CA"
ca
cert_signing_key
expiration_days = 2
T
cat > "$work/server.tmpl" <<'T'
cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
tls_www_server
signing_key
expiration_days = 2
T
make_certs() {
  certtool --provider "$MODULE" --generate-self-signed --load-privkey "$RSA" --template "$work/ca.tmpl" --outfile "$work/ca.pem"
  certtool --provider "$MODULE" --generate-certificate --load-privkey "$EC" --load-ca-privkey "$RSA" \
    --load-ca-certificate "$work/ca.pem" --template "$work/server.tmpl" --outfile "$work/server.pem"
  # checked by GnuTLS and by plain OpenSSL; the certificates carry the token public keys
  certtool --verify --load-ca-certificate "$work/ca.pem" --infile "$work/server.pem" | grep -q 'Verified'
  env -u OPENSSL_CONF openssl verify -CAfile "$work/ca.pem" "$work/server.pem"
  cmp <(env -u OPENSSL_CONF openssl x509 -in "$work/ca.pem" -noout -pubkey) <(env -u OPENSSL_CONF openssl pkey -pubin -in "$work/rsa.pub.pem")
  cmp <(env -u OPENSSL_CONF openssl x509 -in "$work/server.pem" -noout -pubkey) <(env -u OPENSSL_CONF openssl pkey -pubin -in "$work/ec.pub.pem")
}
checkf $C "certtool: CA self-signed and server certificate signed with token keys" make_certs

port=$(free_port)
export port
serve_one() {
  gnutls-serv --provider "$MODULE" --http --x509certfile "$work/server.pem" --x509keyfile "$EC" -p "$port" > "$work/serv.log" 2>&1 &
  local sp=$! out rc=0 i
  echo "$sp" > "$work/serv.pid"
  for i in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  out=$(printf 'GET / HTTP/1.0\r\n\r\n' | timeout 30 gnutls-cli --x509cafile "$work/ca.pem" -p "$port" 127.0.0.1 2>&1) || rc=$?
  kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null || true
  echo "$out" | grep -E 'Status|Description|Handshake|HTTP/1'
  [ $rc -eq 0 ]
  echo "$out" | grep -q 'The certificate is trusted'
  echo "$out" | grep -q 'Handshake was completed'
  echo "$out" | grep -q 'ECDSA-SECP256R1'
  echo "$out" | grep -q '^HTTP/1.0 200 OK'
}
on_exit 'kill $(cat "$work/serv.pid" 2>/dev/null) 2>/dev/null'
checkf $C "gnutls-serv with the token EC key serves a handshake to gnutls-cli" serve_one
summary

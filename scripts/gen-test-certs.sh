#!/usr/bin/env bash
# Regenerates the TLS certificates the tests use (tests/fixtures/tls): a test CA, a server
# certificate for localhost and 127.0.0.1 (serverAuth and clientAuth, as a service presents it
# both ways), and a client certificate. Test material only — never deploy it. Valid for 100 years
# so the tests do not expire; run again to replace them.
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/tls"
mkdir -p "$dir"
cd "$dir"
days=36500
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=jiaxin test CA" -keyout ca.key -out ca.crt 2>/dev/null
issue() {
  local name=$1 cn=$2 ext=$3
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile <(printf '%s\n' "$ext") -out "$name.crt" 2>/dev/null
  rm -f "$name.csr"
}
issue server "jiaxin test server" \
  "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth
basicConstraints=CA:FALSE"
issue client "jiaxin test client" \
  "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
rm -f ca.key ca.srl
echo "test certificates written to $dir" >&2

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Make a test CA and node certificates for Aegis' TLS (docs/security.md):
#
#   scripts/make-certs.sh DIR N
#
# writes DIR/ca.crt, DIR/ca.key and, for i = 1..N, DIR/node<i>.crt and DIR/node<i>.key.
# Node i's certificate is signed by the CA and names the node the way aegisd checks it:
# a subjectAltName URI aegis://node/<i> (plus DNS:localhost and IP:127.0.0.1, so clients
# such as redis-cli can verify the client port on this host, and subject CN
# aegis-node-<i> for people). extendedKeyUsage serverAuth,clientAuth: each certificate
# serves both as server and as client certificate (peers dial each other; redis-cli can
# present one with --cert/--key). Keys are ECDSA P-256, unencrypted: for tests and
# trials. A production CA key belongs offline.
#
# When DIR/ca.crt and DIR/ca.key exist they are reused (add nodes to an existing
# cluster); otherwise a new CA is made. Environment: CERT_DAYS (node certificate validity
# in days, default 825; a negative value makes an already expired certificate, for
# tests), CA_DAYS (default 3650).
set -euo pipefail
if [ $# -ne 2 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 DIR N   (N >= 1 node certificates)" >&2
  exit 2
fi
dir=$1
n=$2
days=${CERT_DAYS:-825}
ca_days=${CA_DAYS:-3650}
mkdir -p "$dir"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$dir/ca.crt" ] || [ ! -f "$dir/ca.key" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -days "$ca_days" -subj "/CN=aegis-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

for i in $(seq 1 "$n"); do
  cat > "$tmp/ext$i" <<EOT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=URI:aegis://node/$i,DNS:localhost,IP:127.0.0.1
EOT
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/node$i.key" -out "$tmp/node$i.csr" -subj "/CN=aegis-node-$i" 2>/dev/null
  openssl x509 -req -in "$tmp/node$i.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$tmp/ext$i" \
    -out "$dir/node$i.crt" 2>/dev/null
done
chmod 644 "$dir/ca.crt" "$dir"/node*.crt
echo "make-certs: $dir/ca.crt and $n node certificate(s) in $dir"

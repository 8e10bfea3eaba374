#!/usr/bin/env bash
# Records the API as shipped, so `buf breaking` in CI can refuse incompatible changes offline.
# Run it when a release ships; additions never break, so routine work does not need it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-buf.sh"
"$root/.tools/node_modules/.bin/buf" build "$root/proto" -o "$root/proto/api-baseline.binpb"
echo "wrote proto/api-baseline.binpb"

#!/usr/bin/env bash
# Installs buf (protobuf lint, format and breaking-change checks) from the npm registry into
# .tools/, where .ci/run and developers find it. npm's @bufbuild/buf package ships the binary.
set -euo pipefail
BUF_VERSION="${BUF_VERSION:-1.75.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
if [ -x "$tools/node_modules/.bin/buf" ] && "$tools/node_modules/.bin/buf" --version 2>/dev/null | grep -qx "$BUF_VERSION"; then
  exit 0
fi
mkdir -p "$tools"
npm install --prefix "$tools" --no-audit --no-fund --silent "@bufbuild/buf@$BUF_VERSION" >&2
"$tools/node_modules/.bin/buf" --version >&2

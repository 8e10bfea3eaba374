#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests offline, failing on anything it cannot check.

Built-in kinds: kubernetes-validate --strict against every Kubernetes version the chart supports.
Strimzi KafkaTopic and CloudNativePG Cluster: the JSON schemas kept in k8s/schemas.
KEDA ScaledObject and Prometheus-operator ServiceMonitor: npm's @kubernetes-models validators.
Any other kind fails: a kind with no schema never passes silently.

usage: validate.py FILE...   (multi-document YAML, e.g. helm template or kubectl kustomize output)
"""
import json
import pathlib
import shutil
import subprocess
import sys

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The oldest Kubernetes the chart supports (gRPC probes are GA from 1.27), one between, the newest.
KUBERNETES_VERSIONS = ["1.27.0", "1.31.0", "1.37.0"]
BUILT_IN_GROUPS = {
    "v1", "apps/v1", "batch/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}
SCHEMAS = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "kafkatopic.kafka.strimzi.io_v1beta2.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cluster.postgresql.cnpg.io_v1.json",
}
NODE_MODELS = {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor")}


def documents(path):
    with open(path, encoding="utf-8") as f:
        for doc in yaml.safe_load_all(f):
            if doc:
                yield doc


def main(paths):
    problems = []
    for_node = []
    counts = {}
    for path in paths:
        for doc in documents(path):
            api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
            name = f"{path}: {kind}/{doc.get('metadata', {}).get('name', '?')}"
            counts[kind] = counts.get(kind, 0) + 1
            if api in BUILT_IN_GROUPS:
                for version in KUBERNETES_VERSIONS:
                    try:
                        kubernetes_validate.validate(doc, version, strict=True)
                    except kubernetes_validate.ValidationError as error:
                        problems.append(f"{name} (Kubernetes {version}): {error.message} at {list(error.path)}")
                    except kubernetes_validate.SchemaNotFoundError:
                        problems.append(f"{name}: Kubernetes {version} has no {api} {kind}")
            elif (api, kind) in SCHEMAS:
                schema = json.loads((ROOT / "k8s/schemas" / SCHEMAS[(api, kind)]).read_text(encoding="utf-8"))
                for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
                    problems.append(f"{name}: {error.message} at {list(error.path)}")
            elif (api, kind) in NODE_MODELS:
                for_node.append({"source": name, "doc": doc})
            else:
                problems.append(f"{name}: no schema for {api} {kind}: add one, or it cannot be checked")
    if for_node:
        # ES modules resolve packages from the script's own directory: run a copy beside them.
        script = ROOT / ".tools/k8s/node/validate-crds.mjs"
        shutil.copyfile(ROOT / "scripts/k8s/validate-crds.mjs", script)
        node = subprocess.run(["node", str(script)], input=json.dumps(for_node), text=True, capture_output=True)
        problems += [line for line in node.stdout.splitlines() if line]
        if node.returncode != 0 and not node.stdout.strip():
            problems.append(f"CRD validator failed: {node.stderr.strip()}")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    if problems:
        print("\n".join(problems))
        print(f"invalid: {len(problems)} problem(s) in {summary}", file=sys.stderr)
        return 1
    print(f"valid: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

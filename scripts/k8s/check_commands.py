#!/usr/bin/env python3
"""Runs every jiaxin command line a rendered manifest would start, with `--check-config`.

For each Deployment and Job container (init containers too) running the jiaxin image, builds
the environment the kubelet would give it — literal values, ConfigMaps from the same render,
Secret references filled with well-formed sample values by key — and runs
`jiaxin <args> --check-config` with nothing else in the environment. The binary's own parser
and validation decide: a flag it does not know, an unset or malformed setting, fails the check.

usage: check_commands.py JIAXIN_BINARY FILE...
"""
import os
import subprocess
import sys

import yaml

# What a Secret key holds, by the names the chart and k8s/ use (CNPG's app Secret has `uri`).
SAMPLE_SECRETS = {
    "uri": "postgresql://jiaxin:sample@jiaxin-db-rw:5432/jiaxin",
    "url": "postgres://jiaxin:sample@db:5432/jiaxin",
    "database-url": "postgres://jiaxin:sample@db:5432/jiaxin",
    "field-key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "password": "sample-admin-password",
    "admin-password": "sample-admin-password",
}


def load(paths):
    docs = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            docs += [(path, d) for d in yaml.safe_load_all(f) if d]
    return docs


def environment(container, config_maps, where):
    env = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        if ref not in config_maps:
            raise SystemExit(f"{where}: envFrom names ConfigMap {ref}, which the render does not have")
        env.update({k: str(v) for k, v in (config_maps[ref].get("data") or {}).items()})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        secret = var.get("valueFrom", {}).get("secretKeyRef")
        if secret is None or secret["key"] not in SAMPLE_SECRETS:
            raise SystemExit(f"{where}: no sample value for {var['name']} ({var.get('valueFrom')})")
        env[var["name"]] = SAMPLE_SECRETS[secret["key"]]
    return env


def main(binary, paths):
    docs = load(paths)
    config_maps = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "ConfigMap"}
    checked, failures = 0, []
    for path, doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            if "jiaxin" not in container["image"]:
                continue
            where = f"{path}: {doc['kind']}/{doc['metadata']['name']} container {container['name']}"
            env = environment(container, config_maps, where)
            env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
            args = [str(a) for a in container.get("args", [])] + ["--check-config"]
            run = subprocess.run([binary, *args], env=env, capture_output=True, text=True, cwd="/tmp")
            checked += 1
            if run.returncode != 0:
                failures.append(f"{where}: jiaxin {' '.join(args)}\n    {run.stderr.strip()}")
    if failures:
        print("\n".join(failures))
        print(f"{len(failures)} of {checked} command lines refused", file=sys.stderr)
        return 1
    if checked == 0:
        print("no jiaxin container found: nothing was checked", file=sys.stderr)
        return 1
    print(f"all {checked} jiaxin command lines accepted")
    return 0


if __name__ == "__main__":
    sys.exit(main(os.path.abspath(sys.argv[1]), sys.argv[2:]))

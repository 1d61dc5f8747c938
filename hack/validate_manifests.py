#!/usr/bin/env python3
"""Validate rendered Kubernetes manifests offline against the Kubernetes OpenAPI v3 spec.

Why this and not kubeconform's default: kubeconform downloads its JSON schemas, and these
machines reach no internet. The Kubernetes module that the Go build already fetched ships the
authoritative OpenAPI v3 documents (`k8s.io/kubernetes@<ver>/api/openapi-spec/v3/*.json`), so we
validate every object against the schema of its group/version/kind with `jsonschema`, strictly:
unknown fields are errors (like `kubeconform -strict`). Custom resources are validated against
the `openAPIV3Schema` of CRD files passed with `--crd` (e.g. the Prometheus operator's CRDs from
its Go module); kinds with no schema are errors unless listed with `--skip-kind`.

Usage: validate_manifests.py [--spec-dir DIR] [--crd FILE ...] [--skip-kind KIND ...] FILE|-
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

VERSIONS_ENV = Path(__file__).resolve().parent / "versions.env"


def pinned(name: str) -> str:
    """A version pinned in hack/versions.env (as hack/lib.sh reads it: the environment wins)."""
    if os.environ.get(name):
        return os.environ[name]
    for line in VERSIONS_ENV.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key == name:
            return value
    raise KeyError(f"{name} is not pinned in {VERSIONS_ENV}")


K8S_VERSION = pinned("K8S_VERSION")
GVK_KEY = "x-kubernetes-group-version-kind"
PRESERVE = "x-kubernetes-preserve-unknown-fields"


def default_spec_dir() -> Path:
    """The OpenAPI v3 directory inside the Go module cache (GOMODCACHE or ~/go/pkg/mod)."""
    modcache = os.environ.get("GOMODCACHE") or str(Path.home() / "go" / "pkg" / "mod")
    return Path(modcache) / f"k8s.io/kubernetes@{K8S_VERSION}" / "api" / "openapi-spec" / "v3"


def strict(schema: Any) -> Any:
    """Forbid unknown fields wherever an object lists its properties (kubeconform -strict)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out and not out.get(PRESERVE):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def nullable(schema: Any) -> Any:
    """Translate OpenAPI `nullable: true` into JSON Schema (null allowed) before validating."""
    if isinstance(schema, dict):
        out = {k: nullable(v) for k, v in schema.items()}
        if out.get("nullable") and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(schema, list):
        return [nullable(v) for v in schema]
    return schema


class SchemaIndex:
    """Kubernetes kinds → schema, from the OpenAPI v3 files and any CRDs."""

    def __init__(self, spec_dir: Path) -> None:
        files = sorted(glob.glob(str(spec_dir / "*.json")))
        if not files:
            raise SystemExit(
                f"no OpenAPI v3 files in {spec_dir}: run hack/build-k8s.sh (it downloads the "
                f"k8s.io/kubernetes module) or pass --spec-dir"
            )
        self.components: dict[str, Any] = {}
        for f in files:
            doc = json.loads(Path(f).read_text())
            self.components.update(doc.get("components", {}).get("schemas", {}))
        self.kinds: dict[tuple[str, str], Any] = {}
        for name, schema in self.components.items():
            for gvk in schema.get(GVK_KEY, []):
                api = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
                self.kinds[(api, gvk["kind"])] = {"$ref": f"#/components/schemas/{name}"}
        self.root = {"components": {"schemas": strict(nullable(self.components))}}

    def add_crd(self, crd: dict[str, Any]) -> None:
        """Register each served version of a CustomResourceDefinition."""
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = version.get("schema", {}).get("openAPIV3Schema")
            if schema is None:
                continue
            body = copy.deepcopy(schema)
            # metadata is validated as ObjectMeta, as the API server does.
            body.setdefault("properties", {})["metadata"] = {
                "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
            }
            api = f"{spec['group']}/{version['name']}"
            self.kinds[(api, spec["names"]["kind"])] = strict(nullable(body))

    def validator(self, api: str, kind: str) -> Draft7Validator | None:
        schema = self.kinds.get((api, kind))
        if schema is None:
            return None
        return Draft7Validator({**schema, **self.root})


def load_docs(paths: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every non-empty YAML document, with a label saying where it came from."""
    for path in paths:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        for i, doc in enumerate(yaml.safe_load_all(text)):
            if doc:
                yield f"{path}#{i}", doc


def describe(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{doc.get('kind')} {ns}{meta.get('name')}"


def validate(index: SchemaIndex, docs: Iterable[tuple[str, dict[str, Any]]], skip: set[str]) -> int:
    """Print one line per object; return the number of invalid objects."""
    bad = 0
    for where, doc in docs:
        api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        validator = index.validator(api, kind)
        if validator is None:
            if kind in skip:
                print(f"SKIP  {describe(doc)} ({api}): no schema, skipped on request")
                continue
            print(f"FAIL  {describe(doc)} ({where}): no schema for {api} {kind}; pass --crd")
            bad += 1
            continue
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            bad += 1
            print(f"FAIL  {describe(doc)} ({where})")
            for err in errors[:20]:
                path = ".".join(str(p) for p in err.absolute_path) or "<root>"
                print(f"      {path}: {err.message[:300]}")
        else:
            print(f"OK    {describe(doc)} ({api})")
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="manifest files, or - for stdin")
    parser.add_argument("--spec-dir", type=Path, default=default_spec_dir())
    parser.add_argument("--crd", action="append", default=[], help="CRD YAML to validate CRs")
    parser.add_argument("--skip-kind", action="append", default=[], help="kinds with no schema")
    args = parser.parse_args(argv)
    index = SchemaIndex(args.spec_dir)
    for crd_file in args.crd:
        for _, doc in load_docs([crd_file]):
            if doc.get("kind") == "CustomResourceDefinition":
                index.add_crd(doc)
    bad = validate(index, load_docs(args.files), set(args.skip_kind))
    if bad:
        print(f"{bad} invalid object(s)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

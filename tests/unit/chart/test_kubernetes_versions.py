"""Kubernetes 1.24 to the newest release kubernetes-validate ships: the CRDs and every manifest the chart renders
for the values the tests install validate strictly (unknown fields are errors) against each release's API
schemas, and no built-in API the chart or the operator uses is removed in any of them.

Only Kubernetes 1.20 runs for real here (the platform's kube-apiserver); users run 1.24 or later (tidb-operator
v1.6 needs 1.24, v2 needs 1.30). A removed API has no schema in its release, so the schemas prove both. The
removals checked below, each against the schemas of the releases on both sides of it:

| removed in | apiVersion (kind)                                                         | we use instead          |
|------------|---------------------------------------------------------------------------|-------------------------|
| 1.22       | apiextensions.k8s.io/v1beta1 (CustomResourceDefinition)                   | apiextensions.k8s.io/v1 |
| 1.22       | rbac.authorization.k8s.io/v1beta1 (ClusterRole, Role and their bindings)  | rbac...k8s.io/v1        |
| 1.22       | coordination.k8s.io/v1beta1 (Lease)                                       | coordination.k8s.io/v1  |
| 1.22       | networking.k8s.io/v1beta1, extensions/v1beta1 (Ingress)                   | none used               |
| 1.25       | policy/v1beta1 (PodDisruptionBudget, PodSecurityPolicy)                   | policy/v1; no PSP       |
| 1.25       | events.k8s.io/v1beta1 (Event)                                             | v1 Event                |
| 1.25       | batch/v1beta1 (CronJob), discovery.k8s.io/v1beta1 (EndpointSlice)         | none used               |
| 1.25       | autoscaling/v2beta1 (HorizontalPodAutoscaler)                             | none used               |
| 1.26       | autoscaling/v2beta2 (HorizontalPodAutoscaler), flowcontrol v1beta1        | none used               |
| 1.27       | storage.k8s.io/v1beta1 (CSIStorageCapacity)                               | none used               |
| 1.29       | flowcontrol.apiserver.k8s.io/v1beta2 (FlowSchema)                         | none used               |
| 1.32       | flowcontrol.apiserver.k8s.io/v1beta3 (FlowSchema; added in 1.26)          | none used               |

The chart's PodDisruptionBudget is policy/v1beta1 only on a cluster that does not serve policy/v1 (before 1.21,
helm's Capabilities): `helm template` offline renders what 1.21 and later get.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_asyncio.client
import kubernetes_validate
import pytest
import yaml
from packaging.version import Version

from tests.unit.chart.chart import CHART, REPO, VALUE_SETS, one
from tests.unit.chart.kubernetes import (
    CHART_APIS,
    CUSTOM_RESOURCES,
    KUBERNETES_APIS,
    OLDEST,
    OPERATOR_APIS,
    RELEASES,
    VENDORED,
    NoSchema,
    has_schema,
    validate,
)

OPERATOR = REPO / "operator" / "tikv_operator"
CRD_FILES = sorted((REPO / "crds").glob("*.yaml")) + sorted((CHART / "crds").glob("*.yaml"))
# (removed in, apiVersion, kind): the table above.
REMOVED = [
    ("1.22", "apiextensions.k8s.io/v1beta1", "CustomResourceDefinition"),
    *(("1.22", "rbac.authorization.k8s.io/v1beta1", kind)
      for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")),
    ("1.22", "coordination.k8s.io/v1beta1", "Lease"),
    ("1.22", "networking.k8s.io/v1beta1", "Ingress"),
    ("1.22", "extensions/v1beta1", "Ingress"),
    ("1.25", "policy/v1beta1", "PodDisruptionBudget"),
    ("1.25", "policy/v1beta1", "PodSecurityPolicy"),
    ("1.25", "events.k8s.io/v1beta1", "Event"),
    ("1.25", "batch/v1beta1", "CronJob"),
    ("1.25", "discovery.k8s.io/v1beta1", "EndpointSlice"),
    ("1.25", "autoscaling/v2beta1", "HorizontalPodAutoscaler"),
    ("1.26", "autoscaling/v2beta2", "HorizontalPodAutoscaler"),
    ("1.26", "flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"),
    ("1.27", "storage.k8s.io/v1beta1", "CSIStorageCapacity"),
    ("1.29", "flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema"),
    ("1.32", "flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema"),
]
ADDED_AFTER_1_24 = {"flowcontrol.apiserver.k8s.io/v1beta3": "1.26"}


def crds() -> list[dict[str, Any]]:
    return [doc for path in CRD_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def built_in(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents of built-in APIs, each once: many value sets render the same ServiceAccount or CRD."""
    unique = {json.dumps(doc, sort_keys=True): doc for doc in docs
              if (doc["apiVersion"], doc["kind"]) not in CUSTOM_RESOURCES}
    return list(unique.values())


@pytest.fixture(scope="module")
def manifests(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    every = [doc for docs in rendered.values() for doc in docs]
    assert {(doc["apiVersion"], doc["kind"]) for doc in every} - KUBERNETES_APIS <= CUSTOM_RESOURCES
    return built_in(every + crds())


def test_the_releases_are_1_24_to_the_newest_kubernetes_validate_ships() -> None:
    newest = kubernetes_validate.utils.latest_version().rsplit(".", 1)[0]
    assert RELEASES[0] == OLDEST == "1.24"
    assert RELEASES[-1] == newest
    assert Version(newest) >= Version("1.37")
    # Every minor release in between, none skipped.
    assert [Version(r).minor for r in RELEASES] == list(range(24, Version(newest).minor + 1))


@pytest.mark.parametrize("release", RELEASES)
def test_every_crd_and_rendered_manifest_validates_strictly(manifests: list[dict[str, Any]], release: str) -> None:
    failures = []
    for doc in manifests:
        try:
            validate(doc, release)
        except jsonschema.ValidationError as error:
            where = "/".join(map(str, error.absolute_path))
            failures.append(f"{doc['kind']}/{doc['metadata']['name']} at {where}: {error.message[:300]}")
    assert failures == [], f"Kubernetes {release}:\n" + "\n".join(failures)
    kinds = {doc["kind"] for doc in manifests}
    assert {"CustomResourceDefinition", "Deployment", "PodDisruptionBudget", "ClusterRole", "Role"} <= kinds


def test_each_values_combination_is_validated(rendered: dict[str, list[dict[str, Any]]],
                                              manifests: list[dict[str, Any]]) -> None:
    validated = {json.dumps(doc, sort_keys=True) for doc in manifests}
    for name, docs in rendered.items():
        for doc in built_in(docs):
            assert json.dumps(doc, sort_keys=True) in validated, name
    assert len(rendered) == len(VALUE_SETS) >= 10


@pytest.mark.parametrize("release", [RELEASES[0], RELEASES[-1]])
def test_the_validation_rejects_a_wrong_type_and_an_unknown_field(
    rendered: dict[str, list[dict[str, Any]]], release: str,
) -> None:
    deployment = one(rendered["defaults"], "Deployment")
    validate(deployment, release)
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "one"}}
    with pytest.raises(jsonschema.ValidationError, match="'one' is not of type"):
        validate(broken, release)
    pod = deployment["spec"]["template"]["spec"]
    typo = {**pod, "containers": [{**pod["containers"][0], "securityContex": {}}]}
    unknown_field = {**deployment, "spec": {**deployment["spec"], "template": {"spec": typo}}}
    with pytest.raises(jsonschema.ValidationError, match="securityContex"):
        validate(unknown_field, release)
    crd = crds()[0]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    with pytest.raises(jsonschema.ValidationError, match="x-kubernetes-int-or-strin"):
        validate({**crd, "spec": {**crd["spec"], "versions": [{**crd["spec"]["versions"][0], "schema": {
            "openAPIV3Schema": {**schema, "x-kubernetes-int-or-strin": True}}}]}}, release)


def test_the_cached_validation_agrees_with_kubernetes_validate(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = one(rendered["every value set"], "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "strategy": {"type": "RollingUpdate", "surge": 1}}}
    for release in RELEASES[1:]:
        kubernetes_validate.validate(deployment, release, strict=True)
        validate(deployment, release)
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, release, strict=True)
        with pytest.raises(jsonschema.ValidationError):
            validate(broken, release)


@pytest.mark.parametrize("release", RELEASES)
def test_no_api_the_chart_or_the_operator_uses_is_removed(release: str) -> None:
    missing = [f"{api_version} {kind}" for api_version, kind in sorted(KUBERNETES_APIS)
               if not has_schema(release, api_version, kind)]
    assert missing == [], f"Kubernetes {release} no longer serves {missing}"


def test_a_removed_api_has_no_schema() -> None:
    psp: dict[str, Any] = {"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "x"},
                           "spec": {}}
    assert has_schema("1.24", "policy/v1beta1", "PodSecurityPolicy")
    with pytest.raises(NoSchema, match=r"Kubernetes 1\.25 serves no policy/v1beta1 PodSecurityPolicy"):
        validate(psp, "1.25")


@pytest.mark.parametrize(("removed_in", "api_version", "kind"), REMOVED)
def test_the_removals_named_in_the_table_are_what_the_schemas_say(removed_in: str, api_version: str,
                                                                    kind: str) -> None:
    served = {release for release in RELEASES if has_schema(release, api_version, kind)}
    added = Version(ADDED_AFTER_1_24.get(api_version, OLDEST))
    assert served == {release for release in RELEASES if added <= Version(release) < Version(removed_in)}
    assert (api_version, kind) not in KUBERNETES_APIS


def test_the_chart_renders_exactly_the_chart_apis(rendered: dict[str, list[dict[str, Any]]]) -> None:
    used = {(doc["apiVersion"], doc["kind"]) for docs in rendered.values() for doc in docs}
    assert used - CUSTOM_RESOURCES == CHART_APIS


def _operator_trees() -> Iterator[ast.AST]:
    for path in sorted(OPERATOR.rglob("*.py")):
        yield ast.parse(path.read_text(), str(path))


def _api_classes() -> dict[str, type]:
    return {name: cls for name, cls in vars(kubernetes_asyncio.client).items()
            if isinstance(cls, type) and name.endswith("Api") and name != "ApiClient"}


def operator_apis() -> set[tuple[str, str]]:
    """The built-in APIs the operator's code calls: the typed kubernetes_asyncio API classes it builds, the
    methods of theirs it calls (their REST path says the group and version) and the manifests it writes."""
    classes = _api_classes()
    names: set[str] = set()
    methods: set[str] = set()
    used: set[tuple[str, str]] = set()
    for tree in _operator_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                methods.add(node.attr)
                names.add(node.attr)
            elif isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.alias):
                names.add(node.name)
            elif isinstance(node, ast.Dict):
                literal = {k.value: v.value for k, v in zip(node.keys, node.values, strict=True)
                           if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)}
                api_version, kind = literal.get("apiVersion"), literal.get("kind")
                if isinstance(api_version, str) and isinstance(kind, str):
                    used.add((api_version, kind))
    built = {name for name in names if name in classes}
    assert built, "the operator builds no kubernetes_asyncio API class: the scan is broken"
    for name in built:
        for method in methods:
            if "custom_object" in method or not hasattr(classes[name], f"{method}_with_http_info"):
                continue  # custom resources (ours and tidb-operator's), or not a request of this class
            source = inspect.getsource(getattr(classes[name], f"{method}_with_http_info"))
            path = re.search(r"'(/apis?/[^']*)'", source)
            assert path, f"{name}.{method}: no REST path found"
            api_version = re.sub(r"^/apis?/|/(namespaces|\{).*$", "", path[1])
            words = method.removesuffix("_status").split("_")
            kind = "".join(word.title() for word in words[2 if words[1] == "namespaced" else 1:])
            used.add((api_version, kind))
    return used - CUSTOM_RESOURCES


def test_the_operator_calls_exactly_the_operator_apis() -> None:
    assert operator_apis() == OPERATOR_APIS
    # The scan sees Events and Leases through their typed methods (not only the manifests the code writes).
    classes = _api_classes()
    assert {"create_namespaced_event", "read_namespaced_lease"} <= {
        m for m in dir(classes["CoreV1Api"]) + dir(classes["CoordinationV1Api"]) if not m.startswith("_")}


def test_the_vendored_1_24_slice_is_whole() -> None:
    vendored = json.loads(VENDORED.read_text())
    for api_version, kind in KUBERNETES_APIS:
        assert vendored["kinds"][f"{api_version} {kind}"] in vendored["$defs"]
    refs = set(re.findall(r'#/\$defs/([^"]+)"', json.dumps(vendored["$defs"])))
    assert refs <= set(vendored["$defs"])
    assert "policy/v1beta1 PodDisruptionBudget" in vendored["kinds"]  # served by 1.24, removed in 1.25


def test_the_docs_name_the_releases_validated_and_run() -> None:
    newest = RELEASES[-1]
    for page in (REPO / "README.md", REPO / "docs" / "install.md"):
        text = page.read_text()
        assert f"1.24 to {newest}" in text, page
        assert "1.20.2" in text, page
    install = (REPO / "docs" / "install.md").read_text()
    for api_version, kind in KUBERNETES_APIS:
        assert re.search(rf"`{re.escape(api_version)}`[^\n]*\b{kind}\b", install), (api_version, kind)


def test_the_crd_files_are_validated(manifests: list[dict[str, Any]]) -> None:
    names = {doc["metadata"]["name"] for doc in manifests if doc["kind"] == "CustomResourceDefinition"}
    assert names == {"tikvclusters.tikvops.io", "operatortickets.tikvops.io"}
    assert len(CRD_FILES) == 4  # crds/ and the chart's copy

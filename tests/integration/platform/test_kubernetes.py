"""The local control plane behaves like a real cluster for what the operator relies on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from harness.kube import Cli, eventually
from harness.platform import platform_command, wait_crds

GROUP = "smoke.tikvops.io"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"gadgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gdg"]},
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "required": ["color"], "properties": {
                        "color": {"type": "string", "enum": ["Red", "Green", "Blue"]},
                    }},
                    "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                },
            }},
        }],
    },
}


def gadget(name: str, color: str) -> dict[str, object]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": {"color": color}}


@pytest.fixture(scope="module")
def gadget_crd(kubectl_admin: Cli) -> Iterator[None]:
    kubectl_admin.apply(CRD)
    wait_crds(f"gadgets.{GROUP}")
    yield
    kubectl_admin("delete", "crd", f"gadgets.{GROUP}", "--wait=false", check=False)


@pytest.mark.usefixtures("gadget_crd")
def test_kubectl_get_prints_the_printer_columns(kubectl: Cli) -> None:
    kubectl.apply(gadget("g1", "Green"))
    kubectl("patch", "gadget", "g1", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Ready"}}')

    lines = kubectl("get", "gdg").stdout.splitlines()

    assert lines[0].split() == ["NAME", "COLOR", "PHASE", "AGE"]
    assert lines[1].split()[:3] == ["g1", "Green", "Ready"]


@pytest.mark.usefixtures("gadget_crd")
def test_a_bad_enum_value_is_rejected_with_a_readable_message(kubectl: Cli) -> None:
    result = kubectl.apply(gadget("g2", "Purple"), check=False)

    assert result.returncode != 0
    assert 'spec.color: Unsupported value: "Purple": supported values: "Red", "Green", "Blue"' in result.stderr
    assert kubectl("get", "gadgets", "-o", "name").stdout.strip() == ""


@pytest.mark.usefixtures("gadget_crd")
def test_status_is_written_only_through_the_status_subresource(kubectl: Cli) -> None:
    kubectl.apply(gadget("g3", "Blue"))

    kubectl("patch", "gadget", "g3", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Ready"}}')
    # With a status subresource, the main resource ignores status changes: that is what lets the
    # operator's status writes and a person's spec edits never overwrite each other.
    kubectl("patch", "gadget", "g3", "--type=merge", "-p", '{"status":{"phase":"Hacked"},"spec":{"color":"Red"}}')

    obj = kubectl.json("get", "gadget", "g3")
    assert obj["status"] == {"phase": "Ready"}
    assert obj["spec"]["color"] == "Red"


def test_an_owned_object_is_garbage_collected_after_its_owner(kubectl: Cli) -> None:
    kubectl("create", "configmap", "owner", "--from-literal=role=owner")
    uid = kubectl.json("get", "configmap", "owner")["metadata"]["uid"]
    kubectl.apply({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "child", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid},
        ]},
        "data": {"role": "child"},
    })

    kubectl("delete", "configmap", "owner")

    eventually(lambda: kubectl("get", "configmap", "child", check=False).returncode != 0,
               timeout=30, what="the garbage collector to delete the child")
    assert "NotFound" in kubectl("get", "configmap", "child", check=False).stderr


def test_a_namespace_deletion_completes(kubectl_admin: Cli, request: pytest.FixtureRequest) -> None:
    name = f"t-nsdel-{abs(hash(request.node.nodeid)) % 10**6}"
    kubectl_admin("create", "namespace", name)
    kubectl_admin("create", "configmap", "inside", "-n", name, "--from-literal=a=b")
    eventually(lambda: kubectl_admin("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
               timeout=30, what="the serviceaccount controller to create `default`")

    kubectl_admin("delete", "namespace", name, "--timeout=60s")

    result = kubectl_admin("get", "namespace", name, check=False)
    assert result.returncode != 0
    assert f'namespaces "{name}" not found' in result.stderr


def test_the_server_reports_its_version(kubectl_admin: Cli) -> None:
    # helm's kubeVersion checks read this; a blank version breaks charts that declare one.
    version = json.loads(kubectl_admin("version", "-o", "json").stdout)["serverVersion"]
    assert (version["major"], version["minor"], version["gitVersion"]) == ("1", "20", "v1.20.2")


def test_wait_crds_waits_for_a_crd_created_a_moment_ago_and_names_one_that_never_comes(kubectl_admin: Cli) -> None:
    # `kubectl wait --for=condition=Established` right after the create failed about 1 in 20 times here
    # (".status.conditions accessor error: <nil>"): hack/platform wait-crds polls instead.
    for attempt in range(5):
        kubectl_admin.apply({**CRD, "metadata": {"name": f"doohickeys{attempt}.{GROUP}"},
                             "spec": {**CRD["spec"], "names": {"plural": f"doohickeys{attempt}",  # type: ignore[dict-item]
                                                               "kind": f"Doohickey{attempt}"}}})
        try:
            wait_crds(f"doohickeys{attempt}.{GROUP}")
        finally:
            kubectl_admin("delete", "crd", f"doohickeys{attempt}.{GROUP}", "--wait=false", check=False)
    result = platform_command("wait-crds", f"nothing.{GROUP}", "--timeout", "1")
    assert result.returncode == 1
    assert f"crd/nothing.{GROUP} not Established after 1s" in result.stderr
    assert "NotFound" in result.stderr

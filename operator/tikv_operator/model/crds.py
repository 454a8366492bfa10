"""The CustomResourceDefinitions, generated from the pydantic models: one source of truth per schema.

`hack/gen-crds` writes them to crds/; a unit test fails when the committed files drift from the models.
Pydantic emits JSON Schema 2020-12; Kubernetes wants an OpenAPI v3.0 *structural* schema (no $ref, no
anyOf for optionals, no titles, free-form objects marked x-kubernetes-preserve-unknown-fields), and
only the keywords Kubernetes 1.20 understands (no CEL).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from tikv_operator.model.cluster_resource import CLUSTER_NAME_MAX, TiKVClusterSpec, TiKVClusterStatus
from tikv_operator.model.ticket_resource import OperatorTicketSpec, OperatorTicketStatus
from tikv_operator.model.vocabulary import CATEGORY, GROUP, VERSION

_KEPT = {
    "type", "description", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength", "format",
    "default", "items", "properties", "required", "additionalProperties", "minItems", "maxItems",
}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        outer = {k: v for k, v in node.items() if k != "$ref"}
        return _convert({**target, **outer}, defs)
    if "anyOf" in node:  # pydantic spells `X | None` as anyOf [X, null]; optional = not required
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) != 1:
            raise ValueError(f"a union other than `X | None` has no structural schema: {node}")
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        return _convert({**options[0], **outer}, defs)

    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEPT}
    # No default at all means the same as null or "", and Kubernetes 1.20 rejects a "" default.
    if "default" in out and out["default"] in (None, ""):
        del out["default"]
    if "exclusiveMinimum" in node:
        raise ValueError("OpenAPI 3.0 spells exclusiveMinimum differently; use ge= in the model")
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {name: _convert(sub, defs) for name, sub in node["properties"].items()}
        out.pop("additionalProperties", None)
    elif node.get("additionalProperties") is True:  # dict[str, Any]: free-form
        out["x-kubernetes-preserve-unknown-fields"] = True
        out.pop("additionalProperties")
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(node["additionalProperties"], defs)
    if "items" in node:
        out["items"] = _convert(node["items"], defs)
    return out


def _resource_schema(description: str, spec: type[BaseModel], status: type[BaseModel],
                     name_max: int | None = None) -> dict[str, Any]:
    # Structural schemas may restrict metadata.name (and nothing else of metadata).
    metadata: dict[str, Any] = {"type": "object"}
    if name_max is not None:
        metadata["properties"] = {"name": {"type": "string", "maxLength": name_max}}
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": metadata,
            "spec": structural_schema(spec),
            "status": structural_schema(status),
        },
    }


def _crd(kind: str, plural: str, short_names: list[str], schema: dict[str, Any],
         columns: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": [CATEGORY],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    }


def _column(name: str, type_: str, path: str, description: str, priority: int = 0) -> dict[str, Any]:
    column = {"name": name, "type": type_, "jsonPath": path, "description": description}
    if priority:
        column["priority"] = priority
    return column


def tikvcluster_crd() -> dict[str, Any]:
    schema = _resource_schema(
        "A TiKV cluster watched by tikv-operator: its PD and Prometheus, and how to check it.",
        TiKVClusterSpec, TiKVClusterStatus, name_max=CLUSTER_NAME_MAX,
    )
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return _crd("TiKVCluster", "tikvclusters", ["tkc"], schema, [
        _column("Health", "string", ".status.health", "Healthy, Degraded or Unknown"),
        _column("Stores", "string", ".status.storesUp", "Stores up / total"),
        _column("Tickets", "integer", ".status.openTickets", "Tickets not resolved"),
        _column("Last Check", "date", ".status.lastCheckTime", "When the last check ran"),
        _column("Age", "date", ".metadata.creationTimestamp", "Age"),
        _column("PD", "string", ".spec.pd.url", "PD URL", priority=1),
    ])


def operatorticket_crd() -> dict[str, Any]:
    schema = _resource_schema(
        "One broken health invariant of a TiKV cluster (and store), from detection to resolution.",
        OperatorTicketSpec, OperatorTicketStatus,
    )
    return _crd("OperatorTicket", "operatortickets", ["otk", "ticket"], schema, [
        _column("Phase", "string", ".status.phase", "Open, Acknowledged, Diagnosed or Resolved"),
        _column("Severity", "string", ".status.severity", "emergency, critical, warning or info"),
        _column("Invariant", "string", ".spec.invariant", "The broken invariant"),
        _column("Store", "string", ".spec.store", "PD store id (empty: cluster-wide)"),
        _column("Count", "integer", ".status.occurrences", "Checks that saw the violation"),
        _column("First Seen", "date", ".status.firstSeen", "When the violation was first seen"),
        _column("Held", "boolean", ".spec.held", "Held tickets never auto-resolve"),
        # At a glance, which tickets are symptoms (rule 26); Phase says which causes carry a diagnosis (rule 27).
        _column("Cause", "string", ".status.cause.ticket", "The ticket that explains this one"),
        _column("Age", "date", ".metadata.creationTimestamp", "Age"),
        # Wide (-o wide): the long texts.
        _column("Message", "string", ".status.message", "What was seen", priority=1),
        _column("Diagnosis", "string", ".status.diagnosis.summary", "What the operator found behind it",
                priority=1),
    ])


class _PlainDumper(yaml.SafeDumper):
    """No &anchors/*aliases: shared sub-schemas are written out in full where a reader expects them."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(obj: dict[str, Any]) -> str:
    return yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False, width=100)


HEADER = "# Generated by hack/gen-crds from the models in operator/tikv_operator/model; do not edit by hand.\n"


def rendered_crds() -> dict[str, str]:
    """File name under crds/ -> YAML text."""
    return {
        "tikvclusters.yaml": HEADER + _dump(tikvcluster_crd()),
        "operatortickets.yaml": HEADER + _dump(operatorticket_crd()),
    }

"""The CRDs in crds/ are exactly what the models generate, and the schemas are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tikv_operator.model.crds import operatorticket_crd, rendered_crds, tikvcluster_crd

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_committed_crds_match_the_models() -> None:
    for name, text in rendered_crds().items():
        committed = (CRDS / name).read_text()
        assert committed == text, f"crds/{name} drifted from the pydantic models: run hack/gen-crds"


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        found += walk(sub, f"{path}.{name}")
    if "items" in schema:
        found += walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += walk(schema["additionalProperties"], f"{path}{{}}")
    return found


def test_schemas_are_structural_and_1_20_compatible() -> None:
    for crd in (tikvcluster_crd(), operatorticket_crd()):
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in walk(schema):
            assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
            forbidden = {"$ref", "anyOf", "oneOf", "allOf", "title", "x-kubernetes-validations", "nullable"}
            assert not forbidden & set(node), f"{path} uses {forbidden & set(node)}"


def test_printer_columns_follow_the_original_table_order_with_the_cause_before_age() -> None:
    columns = [c["name"] for c in operatorticket_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
               if not c.get("priority")]
    assert columns == ["Phase", "Severity", "Invariant", "Store", "Count", "First Seen", "Held", "Cause",
                       "Age"]
    names = tikvcluster_crd()["spec"]["names"]
    assert (names["shortNames"], names["categories"]) == (["tkc"], ["tikvops"])


def test_every_field_a_person_edits_has_a_description() -> None:
    spec = tikvcluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    missing = [path for path, node in walk(spec) if not node.get("description") and not path.endswith("{}")]
    assert missing == []


def test_the_files_are_plain_yaml_without_anchors() -> None:
    for name in ("tikvclusters.yaml", "operatortickets.yaml"):
        text = (CRDS / name).read_text()
        assert "&id" not in text
        assert "*id" not in text
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"

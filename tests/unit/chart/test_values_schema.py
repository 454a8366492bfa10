"""values.schema.json: closed at every object level, and it accepts and rejects what it should."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.chart.chart import CHART, template
from tikv_operator.model.cluster_resource import URL_PATTERN
from tikv_operator.model.durations import AT_LEAST_A_SECOND_PATTERN

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
# Maps whose keys are free by nature (label and annotation keys); their values must be strings.
STRING_MAPS = {"nodeSelector", "podAnnotations", "serviceMonitor.labels",
               "#labelSelector.matchLabels"}


def object_nodes(node: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(node, dict):
        return found
    if node.get("type") == "object":
        found.append((path, node))
    for name, sub in node.get("properties", {}).items():
        found += object_nodes(sub, f"{path}.{name}" if path else name)
    for name, sub in node.get("definitions", {}).items():
        found += object_nodes(sub, f"#{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += object_nodes(node[key], path)
    for option in node.get("anyOf", []):
        found += object_nodes(option, path)
    return found


def with_values(**changes: Any) -> dict[str, Any]:
    return {**DEFAULTS, **changes}


def valid(values: dict[str, Any]) -> bool:
    try:
        jsonschema.validate(values, SCHEMA)
    except jsonschema.ValidationError:
        return False
    return True


def test_every_object_level_is_closed() -> None:
    nodes = object_nodes(SCHEMA, "")
    assert len(nodes) > 20
    for path, node in nodes:
        if path in STRING_MAPS:
            assert node["additionalProperties"] == {"type": "string"}, path
            assert "properties" not in node, path
        else:
            assert node.get("additionalProperties") is False, f"{path or '(top level)'} is not closed"
    assert {path for path, _ in nodes} >= STRING_MAPS


def test_the_default_values_are_valid() -> None:
    jsonschema.validate(DEFAULTS, SCHEMA)


@pytest.mark.parametrize("interval", ["30s", "1m", "1m30s", "1.5m", "500ms", "2h", "1h0m0s"])
def test_intervals_accepted(interval: str) -> None:
    assert valid(with_values(checkInterval=interval))


@pytest.mark.parametrize("interval", ["soon", "30", "", "10d", "-5s", "1 m", "s", "1.s"])
def test_intervals_rejected(interval: str) -> None:
    assert not valid(with_values(checkInterval=interval))


@pytest.mark.parametrize(
    "change",
    [
        {"logFormat": "xml"},
        {"unknownKey": 1},
        {"image": {"repository": "x", "tag": "1", "pullPolicy": "Sometimes"}},
        {"image": {"repository": "x", "registry": "y"}},
        {"watchNamespaces": ["Not_A_Namespace"]},
        {"watchNamespaces": ["a", "a"]},
        {"watchNamespaces": "tikv"},
        {"metrics": {"port": 80}},  # a non-root process without capabilities cannot bind it
        {"resources": {"limits": {"cpu": "lots"}}},
        {"resources": {"limit": {"cpu": "1"}}},
        {"tolerations": [{"key": "k", "operator": "Maybe"}]},
        {"affinity": {"nodeAffinity": {"requiredDuringScheduling": {}}}},
        {"serviceMonitor": {"enabled": "yes"}},
        {"nodeSelector": {"disk": 1}},
        {"replicas": 0},
        {"replicas": "2"},
        {"leaderElection": {**DEFAULTS["leaderElection"], "namespace": "ops"}},  # always the release's
        {"leaderElection": {**DEFAULTS["leaderElection"], "enabled": "true"}},
        {"leaderElection": {**DEFAULTS["leaderElection"], "id": "Tikv_Operator"}},
        {"leaderElection": {**DEFAULTS["leaderElection"], "id": ""}},
        {"leaderElection": {**DEFAULTS["leaderElection"], "leaseDuration": "15"}},
        {"leaderElection": {**DEFAULTS["leaderElection"], "renewDeadline": "ten seconds"}},
        {"leaderElection": {**DEFAULTS["leaderElection"], "retryPeriod": "-2s"}},
        {"leaderElection": {"enabled": True}},
        {"podDisruptionBudget": {"enabled": True, "minAvailable": 0}},
        {"podDisruptionBudget": {"enabled": True, "minAvailable": "0%"}},
        {"podDisruptionBudget": {"enabled": True, "minAvailable": "half"}},
        {"podDisruptionBudget": {"enabled": True, "maxUnavailable": 1}},
        {"discovery": {**DEFAULTS["discovery"], "tidbClusters": "true"}},
        {"discovery": {**DEFAULTS["discovery"], "tidbCluster": True}},  # unknown key under discovery
        {"discovery": {**DEFAULTS["discovery"], "namespaces": ["tidb"]}},  # always the watched ones
        {"discovery": {"tidbClusters": True}},
        {"discovery": True},
    ],
)
def test_malformed_values_rejected(change: dict[str, Any]) -> None:
    assert not valid(with_values(**change))


@pytest.mark.parametrize(
    "change",
    [
        {"replicas": 1, "leaderElection": {**DEFAULTS["leaderElection"], "enabled": False}},
        {"replicas": 3},
        {"leaderElection": {**DEFAULTS["leaderElection"], "id": "tikv-ops.leader", "leaseDuration": "1m",
                            "renewDeadline": "40s", "retryPeriod": "500ms"}},
        {"podDisruptionBudget": {"enabled": False, "minAvailable": 1}},
        {"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}},
    ],
)
def test_high_availability_values_accepted(change: dict[str, Any]) -> None:
    assert valid(with_values(**change))


@pytest.mark.parametrize("url", [
    "", "http://prometheus:9090", "https://prometheus.monitoring.svc:9090/prom", "http://10.0.0.1:9090",
    "http://[fd00::1]:9090/",
])
def test_discovery_prometheus_urls_accepted(url: str) -> None:
    assert valid(with_values(discovery={"tidbClusters": True, "prometheusURL": url, "interval": "1m"}))


@pytest.mark.parametrize("url", [
    "not a url", "prometheus:9090", "ftp://prometheus:9090", "http://", "http://user:pass@prometheus:9090",
    "http://prometheus:9090/?q=1", "http://prometheus:9090/#x", " http://prometheus:9090", "http://prom etheus",
])
def test_discovery_prometheus_urls_rejected(url: str) -> None:
    assert not valid(with_values(discovery={**DEFAULTS["discovery"], "prometheusURL": url}))


@pytest.mark.parametrize("interval", ["1s", "30s", "1m", "1m30s", "1500ms", "2h", "0m5s"])
def test_discovery_intervals_accepted(interval: str) -> None:
    assert valid(with_values(discovery={**DEFAULTS["discovery"], "interval": interval}))


@pytest.mark.parametrize("interval", ["0s", "500ms", "999ms", "0m", "30", "", "often", "-30s"])
def test_discovery_intervals_rejected(interval: str) -> None:
    """The operator refuses --discovery-interval under 1s (a hot loop against the API server)."""
    assert not valid(with_values(discovery={**DEFAULTS["discovery"], "interval": interval}))


def test_discovery_is_off_by_default_and_checked_as_the_operator_checks_it() -> None:
    assert DEFAULTS["discovery"] == {"tidbClusters": False, "prometheusURL": "", "interval": "30s"}
    discovery = SCHEMA["properties"]["discovery"]["properties"]
    # The Prometheus URL: what the operator accepts (the Alertmanager URLs' pattern), or empty.
    alertmanager = SCHEMA["properties"]["alertmanager"]["properties"]["urls"]["items"]["pattern"]
    assert alertmanager == URL_PATTERN
    assert discovery["prometheusURL"]["pattern"] == f"^({URL_PATTERN[1:-1]})?$"
    assert discovery["interval"]["pattern"] == AT_LEAST_A_SECOND_PATTERN


def test_the_defaults_are_two_replicas_behind_a_lease() -> None:
    assert DEFAULTS["replicas"] == 2
    assert DEFAULTS["leaderElection"] == {"enabled": True, "id": "tikv-operator", "leaseDuration": "15s",
                                          "renewDeadline": "10s", "retryPeriod": "2s"}
    assert DEFAULTS["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}


def test_helm_applies_the_schema_and_names_the_field(helm_bin: str) -> None:
    result = template(helm_bin, {"checkInterval": "soon"})
    assert result.returncode != 0
    assert "checkInterval" in result.stderr
    assert "soon" in result.stderr
    unknown = template(helm_bin, {"intervall": "30s"})
    assert unknown.returncode != 0
    assert "intervall" in unknown.stderr


@pytest.mark.parametrize(("values", "must_read"), [
    ({"discovery": {"prometheusURL": "not a url"}}, ["discovery", "prometheusURL", "not a url"]),
    ({"discovery": {"tidbclusters": True}}, ["discovery", "tidbclusters"]),
    ({"discovery": {"interval": "often"}}, ["discovery", "interval", "often"]),
])
def test_helm_refuses_bad_discovery_values(helm_bin: str, values: dict[str, Any], must_read: list[str]) -> None:
    result = template(helm_bin, values)
    assert result.returncode != 0
    for words in must_read:
        assert words in result.stderr, f"{words!r} not in: {result.stderr}"

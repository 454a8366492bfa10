"""Invalid TiKVCluster and OperatorTicket manifests are rejected with a message that names the field,
and a rejected apply leaves nothing behind."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from harness.kube import Cli, to_yaml

from tikv_operator.checks.core.catalogue import ENTRIES

VALID_CLUSTER: dict[str, Any] = {
    "apiVersion": "tikvops.io/v1alpha1",
    "kind": "TiKVCluster",
    "metadata": {"name": "basic"},
    "spec": {"pd": {"url": "http://basic-pd.tidb:2379"}, "prometheus": {"url": "http://prom.tidb:9090"}},
}
VALID_TICKET: dict[str, Any] = {
    "apiVersion": "tikvops.io/v1alpha1",
    "kind": "OperatorTicket",
    "metadata": {"name": "basic-store-down-s1-1"},
    "spec": {"cluster": "basic", "invariant": "store_down", "store": "1"},
}


def with_change(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `base` with the dotted `path` set to `value` (or removed when value is DELETE)."""
    manifest = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = manifest
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return manifest


DELETE = object()

# (case id, manifest, what the person must read in the error)
INVALID = [
    ("cluster-without-spec", with_change(VALID_CLUSTER, "spec", DELETE), ["spec"]),
    ("cluster-without-pd", with_change(VALID_CLUSTER, "spec.pd", DELETE), ["spec.pd", "Required value"]),
    ("cluster-without-prometheus", with_change(VALID_CLUSTER, "spec.prometheus", DELETE),
     ["spec.prometheus", "Required value"]),
    ("pd-url-missing", with_change(VALID_CLUSTER, "spec.pd.url", DELETE), ["spec.pd.url", "Required value"]),
    ("pd-url-not-http", with_change(VALID_CLUSTER, "spec.pd.url", "ftp://pd:2379"),
     ["spec.pd.url", "should match"]),
    ("pd-url-no-host", with_change(VALID_CLUSTER, "spec.pd.url", "http://"), ["spec.pd.url", "should match"]),
    ("pd-url-a-number", with_change(VALID_CLUSTER, "spec.pd.url", 2379), ["spec.pd.url", "string"]),
    ("prometheus-url-empty", with_change(VALID_CLUSTER, "spec.prometheus.url", ""),
     ["spec.prometheus.url", "should match"]),
    ("interval-in-words", with_change(VALID_CLUSTER, "spec.interval", "soon"), ["spec.interval", "should match"]),
    ("interval-without-unit", with_change(VALID_CLUSTER, "spec.interval", "30"), ["spec.interval", "should match"]),
    ("interval-in-days", with_change(VALID_CLUSTER, "spec.interval", "1d"), ["spec.interval", "should match"]),
    ("paused-a-string", with_change(VALID_CLUSTER, "spec.paused", "yes"), ["spec.paused", "boolean"]),
    ("pd-timeout-bad", with_change(VALID_CLUSTER, "spec.pd.timeout", "5 seconds"),
     ["spec.pd.timeout", "should match"]),
    ("tls-secret-bad-name", with_change(VALID_CLUSTER, "spec.pd.tlsSecret", {"name": "Bad_Name"}),
     ["spec.pd.tlsSecret.name", "should match"]),
    ("auth-secret-without-name", with_change(VALID_CLUSTER, "spec.prometheus.authSecret", {}),
     ["spec.prometheus.authSecret.name", "Required value"]),
    ("label-matcher-not-a-string", with_change(VALID_CLUSTER, "spec.prometheus.labelMatchers", {"zone": 1}),
     ["spec.prometheus.labelMatchers", "string"]),
    ("severity-unknown", with_change(VALID_CLUSTER, "spec.invariants", {"store_down": {"severity": "urgent"}}),
     ["spec.invariants.store_down.severity", 'Unsupported value: "urgent"', '"critical"']),
    ("threshold-negative", with_change(VALID_CLUSTER, "spec.invariants", {"high_latency": {"threshold": -1}}),
     ["spec.invariants.high_latency.threshold", "greater than or equal to 0"]),
    ("grace-period-bad", with_change(VALID_CLUSTER, "spec.invariants", {"low_disk_space": {"gracePeriod": "1w"}}),
     ["spec.invariants.low_disk_space.gracePeriod", "should match"]),
    ("flapping-count-too-small", with_change(VALID_CLUSTER, "spec.flapping", {"count": 1}),
     ["spec.flapping.count", "greater than or equal to 2"]),
    ("flapping-count-too-big", with_change(VALID_CLUSTER, "spec.flapping", {"count": 1000}),
     ["spec.flapping.count", "less than or equal to 100"]),
    ("flapping-window-bad", with_change(VALID_CLUSTER, "spec.flapping", {"window": "ten minutes"}),
     ["spec.flapping.window", "should match"]),
    ("retention-forever", with_change(VALID_CLUSTER, "spec.tickets", {"resolvedRetention": "forever"}),
     ["spec.tickets.resolvedRetention", "should match"]),
    # Hardening: a hot loop, credentials in a URL, a name too long for the labels its tickets carry.
    ("interval-zero", with_change(VALID_CLUSTER, "spec.interval", "0s"), ["spec.interval", "should match"]),
    ("interval-under-a-second", with_change(VALID_CLUSTER, "spec.interval", "500ms"),
     ["spec.interval", "should match"]),
    ("refresh-zero", with_change(VALID_CLUSTER, "spec.tickets", {"refreshInterval": "0s"}),
     ["spec.tickets.refreshInterval", "should match"]),
    ("pd-url-with-userinfo", with_change(VALID_CLUSTER, "spec.pd.url", "http://admin:s3cret@pd:2379"),
     ["spec.pd.url", "should match"]),
    ("prometheus-url-with-query", with_change(VALID_CLUSTER, "spec.prometheus.url", "http://prom:9090/?token=x"),
     ["spec.prometheus.url", "should match"]),
    ("prometheus-url-with-fragment", with_change(VALID_CLUSTER, "spec.prometheus.url", "http://prom:9090/#x"),
     ["spec.prometheus.url", "should match"]),
    ("cluster-name-over-63", with_change(VALID_CLUSTER, "metadata.name", "c" * 64),
     ["metadata.name", "63"]),
    # Durations beyond what datetime and timers hold crashed the cluster's daemon in a loop (OverflowError).
    ("interval-overflowing", with_change(VALID_CLUSTER, "spec.interval", "99999999999999h"),
     ["spec.interval", "should be at most 14 chars long"]),
    ("pd-timeout-overflowing", with_change(VALID_CLUSTER, "spec.pd.timeout", "99999999999999h"),
     ["spec.pd.timeout", "should be at most 14 chars long"]),
    ("retention-overflowing", with_change(VALID_CLUSTER, "spec.tickets", {"resolvedRetention": "999999999999999m"}),
     ["spec.tickets.resolvedRetention", "should be at most 14 chars long"]),
    ("grace-period-overflowing", with_change(VALID_CLUSTER, "spec.invariants",
                                             {"store_down": {"gracePeriod": "99999999999999s"}}),
     ["spec.invariants.store_down.gracePeriod", "should be at most 14 chars long"]),
    # Delivery: where tickets are delivered.
    ("alertmanager-url-not-http", with_change(VALID_CLUSTER, "spec.alertmanager", {"urls": ["ftp://am:9093"]}),
     ["spec.alertmanager.urls", "should match"]),
    ("alertmanager-url-with-userinfo",
     with_change(VALID_CLUSTER, "spec.alertmanager", {"urls": ["http://am:9093", "http://u:p@am-1:9093"]}),
     ["spec.alertmanager.urls", "should match"]),
    ("alertmanager-urls-a-string", with_change(VALID_CLUSTER, "spec.alertmanager", {"urls": "http://am:9093"}),
     ["spec.alertmanager.urls", "array"]),
    ("alertmanager-label-not-a-string", with_change(VALID_CLUSTER, "spec.alertmanager", {"labels": {"team": 1}}),
     ["spec.alertmanager.labels", "string"]),
    ("ticket-without-cluster", with_change(VALID_TICKET, "spec.cluster", DELETE),
     ["spec.cluster", "Required value"]),
    ("ticket-invariant-not-a-name", with_change(VALID_TICKET, "spec.invariant", "Disk Full"),
     ["spec.invariant", "should match"]),
    # The catalogue's overrides and a cluster's own invariants.
    ("window-bad", with_change(VALID_CLUSTER, "spec.invariants", {"pd_leader_flapping": {"window": "10 min"}}),
     ["spec.invariants.pd_leader_flapping.window", "should match"]),
    ("keep-firing-bad", with_change(VALID_CLUSTER, "spec.invariants", {"raft_log_lag": {"keepFiringFor": "x"}}),
     ["spec.invariants.raft_log_lag.keepFiringFor", "should match"]),
    ("custom-without-expr", with_change(VALID_CLUSTER, "spec.customInvariants", [{"name": "mine"}]),
     ["spec.customInvariants.expr", "Required value"]),
    ("custom-name-bad", with_change(VALID_CLUSTER, "spec.customInvariants", [{"name": "My-Rule", "expr": "up"}]),
     ["spec.customInvariants.name", "should match"]),
    ("custom-scope-bad", with_change(VALID_CLUSTER, "spec.customInvariants",
                                     [{"name": "mine", "expr": "up", "scope": "node"}]),
     ["spec.customInvariants.scope", 'Unsupported value: "node"']),
    ("custom-for-bad", with_change(VALID_CLUSTER, "spec.customInvariants",
                                   [{"name": "mine", "expr": "up", "for": "1"}]),
     ["spec.customInvariants.for", "should match"]),
    ("ticket-store-not-an-id", with_change(VALID_TICKET, "spec.store", "tikv-0"), ["spec.store", "should match"]),
    ("ticket-held-a-string", with_change(VALID_TICKET, "spec.held", "true"), ["spec.held", "boolean"]),
]


@pytest.mark.usefixtures("tikvops_crds")
@pytest.mark.parametrize(("manifest", "expected"), [pytest.param(m, e, id=i) for i, m, e in INVALID])
def test_an_invalid_manifest_is_rejected_with_a_readable_message(
    kubectl: Cli, manifest: dict[str, Any], expected: list[str]
) -> None:
    # As typed: kubectl validates against the published schema first.
    typed = kubectl.apply(manifest, check=False)
    # Without kubectl's check, as any API client would send it: the CRD schema itself must refuse it.
    server = kubectl("apply", "--validate=false", "-f", "-", input=to_yaml(manifest), check=False)

    assert typed.returncode != 0, f"accepted: {typed.stdout}"
    assert server.returncode != 0, f"the API server accepted it: {server.stdout}"
    for fragment in expected:
        assert fragment in server.stderr, f"{fragment!r} not in:\n{server.stderr}"
    assert "Traceback" not in typed.stderr + server.stderr
    kind = manifest["kind"].lower()
    assert kubectl("get", kind, "-o", "name").stdout == "", "a rejected manifest left an object behind"


@pytest.mark.usefixtures("tikvops_crds")
@pytest.mark.parametrize(("patch", "expected"), [
    ({"phase": "Closed"}, ['status.phase', 'Unsupported value: "Closed"', '"Resolved"']),
    ({"occurrences": -1}, ["status.occurrences", "greater than or equal to 0"]),
    ({"severity": "fatal"}, ["status.severity", 'Unsupported value: "fatal"']),
    ({"resolution": "magic"}, ["status.resolution", 'Unsupported value: "magic"']),
])
def test_an_invalid_status_patch_is_rejected_and_the_status_is_kept(
    kubectl: Cli, patch: dict[str, Any], expected: list[str]
) -> None:
    kubectl.apply(VALID_TICKET)
    name = VALID_TICKET["metadata"]["name"]
    kubectl("patch", "otk", name, "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Open"}}')

    result = kubectl("patch", "otk", name, "--subresource=status", "--type=merge",
                     "-p", json.dumps({"status": patch}), check=False)

    assert result.returncode != 0
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    assert kubectl.json("get", "otk", name)["status"] == {"phase": "Open"}


@pytest.mark.usefixtures("tikvops_crds")
@pytest.mark.parametrize(("path", "value"), [
    ("spec.interval", "1s"), ("spec.interval", "1000ms"), ("spec.interval", "1.5s"), ("spec.interval", "2m"),
    ("spec.interval", "0m30s"), ("spec.tickets", {"refreshInterval": "10s"}),
    ("spec.interval", "8760h"), ("spec.tickets", {"resolvedRetention": "2h45m30s500ms"}),
    ("spec.prometheus.url", "https://prom.example:9090/prometheus"), ("metadata.name", "c" * 63),
])
def test_the_limits_accept_what_people_write(kubectl: Cli, path: str, value: Any) -> None:
    result = kubectl.apply(with_change(VALID_CLUSTER, path, value), check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.usefixtures("tikvops_crds")
def test_a_minimal_cluster_is_accepted_and_shows_its_defaults(kubectl: Cli) -> None:
    kubectl.apply(VALID_CLUSTER)

    spec = kubectl.json("get", "tkc", "basic")["spec"]

    assert "interval" not in spec  # the operator's --default-interval applies
    assert spec["paused"] is False
    assert spec["pd"]["timeout"] == "5s"
    assert spec["flapping"] == {"window": "10m", "count": 3}
    assert spec["tickets"] == {"refreshInterval": "1m", "resolvedRetention": "168h"}
    header = kubectl("get", "tkc").stdout.splitlines()[0].split()
    assert header == ["NAME", "HEALTH", "STORES", "TICKETS", "LAST", "CHECK", "AGE"]


@pytest.mark.usefixtures("tikvops_crds")
def test_a_ticket_lists_with_the_original_columns(kubectl: Cli) -> None:
    kubectl.apply(VALID_TICKET)
    kubectl("patch", "ticket", "basic-store-down-s1-1", "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"phase": "Open", "severity": "critical", "occurrences": 4,
                                   "firstSeen": "2026-11-25T03:00:00Z"}}))

    lines = kubectl("get", "operatortickets").stdout.splitlines()

    assert lines[0].split() == ["NAME", "PHASE", "SEVERITY", "INVARIANT", "STORE", "COUNT", "FIRST", "SEEN",
                                "HELD", "CAUSE", "AGE"]
    assert lines[1].split()[:6] == ["basic-store-down-s1-1", "Open", "critical", "store_down", "1", "4"]
    assert lines[1].split()[7] == "false"


@pytest.mark.usefixtures("tikvops_crds")
def test_kubectl_explain_lists_every_invariant_with_its_defaults(kubectl: Cli) -> None:
    text = " ".join(kubectl("explain", "tikvcluster.spec.invariants").stdout.split())
    for name, entry in ENTRIES.items():
        assert f"{name} <Object>" in text, name
        assert f"{name}: {entry.scope}-scoped, from {entry.source_text}" in text, name
    assert "Default threshold 80, grace 1m, severity critical" in text  # store_slow
    custom = " ".join(kubectl("explain", "tikvcluster.spec.customInvariants").stdout.split())
    assert "$matchers" in custom


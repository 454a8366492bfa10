"""`helm template` output: the Deployment, PodDisruptionBudget, Service and ServiceMonitor say what the chart
promises (test_kubernetes_versions.py validates every manifest against every Kubernetes release)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart.chart import (
    EVERYTHING,
    FULLNAME,
    NAMESPACED,
    RELEASE_NAMESPACE,
    VALUE_SETS,
    notes,
    of_kind,
    one,
    render,
    template,
)

DISCOVERY_FLAGS = ("--discover-tidbclusters", "--discovery-interval", "--default-prometheus-url")


def container_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_the_deployment_runs_restricted_operators(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = one(rendered["defaults"], "Deployment")
    assert deployment["metadata"]["namespace"] == RELEASE_NAMESPACE
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = container_of(rendered["defaults"])
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["image"] == "tikv-operator:0.1.0"  # the tag defaults to appVersion
    assert set(container["resources"]) == {"requests", "limits"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    # Read-only root filesystem: /tmp is the one writable place.
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 (an emptyDir)
    assert [v["name"] for v in pod["volumes"] if "emptyDir" in v] == ["tmp"]


def test_two_replicas_roll_one_at_a_time_and_one_alone_is_recreated(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    # With the Lease: a new pod starts before an old one stops, so one replica always runs.
    for value_set in ("defaults", "every value set"):
        assert one(rendered[value_set], "Deployment")["spec"]["strategy"] == {
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
    assert one(rendered["every value set"], "Deployment")["spec"]["replicas"] == 3
    # Without it: never two active pods, not even during a rollout.
    single = one(rendered["single"], "Deployment")["spec"]
    assert (single["replicas"], single["strategy"]) == (1, {"type": "Recreate"})


def test_the_pod_knows_its_name_and_namespace(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for value_set in VALUE_SETS:
        env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container_of(rendered[value_set])["env"]}
        assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}, value_set


def test_liveness_and_readiness_probe_healthz_on_the_health_port(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for value_set, health_port in (("defaults", 8081), ("every value set", 9091)):
        container = container_of(rendered[value_set])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["health"] == health_port
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe


def test_the_operator_arguments_follow_the_values(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert container_of(rendered["defaults"])["args"] == [
        "--all-namespaces", "--standalone",
        "--leader-elect", "--leader-election-id=tikv-operator", f"--leader-election-namespace={RELEASE_NAMESPACE}",
        "--leader-election-lease-duration=15s", "--leader-election-renew-deadline=10s",
        "--leader-election-retry-period=2s",
        "--metrics-port=8080", "--health-port=8081",
        "--log-format=text", "--default-interval=30s", "--stall-timeout=5m",
        "--alert-resend-interval=1m", "--silence-duration=24h",
    ]
    single = container_of(rendered["single"])["args"]
    assert "--no-leader-elect" in single
    assert not [arg for arg in single if arg.startswith("--leader-elect")]
    assert container_of(rendered["namespaced"])["args"][:3] == [
        "--namespace=tikv-a", "--namespace=tikv-b", "--standalone",
    ]
    args = container_of(rendered["every value set"])["args"]
    assert {"--metrics-port=9090", "--health-port=9091", "--log-format=json", "--default-interval=1m30s",
            "--alertmanager-url=http://am-0.am:9093", "--alertmanager-url=http://am-1.am:9093",
            "--alert-resend-interval=30s", "--silence-duration=8h",
            "--runbook-url=https://runbooks.example/{invariant}.md",
            "--leader-elect", "--leader-election-id=tikv-ops.leader",
            f"--leader-election-namespace={RELEASE_NAMESPACE}", "--leader-election-lease-duration=30s",
            "--leader-election-renew-deadline=20s", "--leader-election-retry-period=4s"} <= set(args)
    assert "--all-namespaces" not in args


def discovery_args(docs: list[dict[str, Any]]) -> list[str]:
    return [arg for arg in container_of(docs)["args"] if arg.split("=")[0] in DISCOVERY_FLAGS]


def test_discovery_arguments_only_with_discovery(rendered: dict[str, list[dict[str, Any]]], helm_bin: str) -> None:
    for value_set in ("defaults", "namespaced", "single"):
        assert discovery_args(rendered[value_set]) == [], value_set
    # On: the flag and the interval; the default Prometheus only when one is given.
    assert discovery_args(rendered["discovery"]) == ["--discover-tidbclusters", "--discovery-interval=30s"]
    assert discovery_args(rendered["every value set"]) == [
        "--discover-tidbclusters", "--discovery-interval=1m30s",
        "--default-prometheus-url=https://prometheus.monitoring:9090/prom",
    ]
    # The rest of the arguments is the same with discovery on or off.
    on = rendered["discovery"]
    rest = [arg for arg in container_of(on)["args"] if arg not in discovery_args(on)]
    assert rest == container_of(rendered["defaults"])["args"]
    # Off: nothing, whatever the other discovery values say; a release from an older chart has no discovery key.
    off = {"discovery": {"tidbClusters": False, "prometheusURL": "http://prometheus:9090", "interval": "5m"}}
    for values in (off, {"discovery": None}):
        docs = render(helm_bin, values)
        assert discovery_args(docs) == []
        assert container_of(docs)["args"] == container_of(rendered["defaults"])["args"]


def test_the_release_notes_tell_how_to_list_the_generated_clusters_only_with_discovery(helm_bin: str) -> None:
    line = ("TiKVClusters are generated from tidb-operator's TidbClusters (discovery.tidbClusters, every 2m); "
            "list them: kubectl get tikvclusters -A -l tikvops.io/discovered-from")
    on = notes(helm_bin, {"discovery": {"tidbClusters": True, "prometheusURL": "", "interval": "2m"}})
    assert line in on.splitlines(), on
    for values in ({}, {"discovery": None}, NAMESPACED):
        off = notes(helm_bin, values)
        assert "TidbCluster" not in off
        assert "discovered-from" not in off


def test_placement_and_image_values_reach_the_pod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    template_ = one(rendered["every value set"], "Deployment")["spec"]["template"]
    pod = template_["spec"]
    assert pod["nodeSelector"] == EVERYTHING["nodeSelector"]
    assert pod["tolerations"] == EVERYTHING["tolerations"]
    assert pod["affinity"] == EVERYTHING["affinity"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert template_["metadata"]["annotations"] == EVERYTHING["podAnnotations"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/tikv-operator:0.1.0-rc1"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == EVERYTHING["resources"]
    defaults = one(rendered["defaults"], "Deployment")["spec"]["template"]
    assert not {"nodeSelector", "tolerations", "imagePullSecrets"} & set(defaults["spec"])
    assert "annotations" not in defaults["metadata"]


def test_replicas_prefer_different_nodes_unless_affinity_is_given(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = one(rendered["defaults"], "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["spec"]["affinity"] == {"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector}}}],
    }}
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    # A given affinity replaces the default as a whole (test_placement_and_image_values_reach_the_pod).


def test_the_disruption_budget_keeps_one_replica_and_only_with_several(
    rendered: dict[str, list[dict[str, Any]]], helm_bin: str,
) -> None:
    for value_set, min_available in (("defaults", 1), ("every value set", "50%")):
        budget = one(rendered[value_set], "PodDisruptionBudget")
        assert budget["apiVersion"] == "policy/v1"  # helm template offline; policy/v1beta1 before Kubernetes 1.21
        assert budget["metadata"]["namespace"] == RELEASE_NAMESPACE
        assert budget["spec"] == {
            "minAvailable": min_available,
            "selector": {"matchLabels": one(rendered[value_set], "Deployment")["spec"]["selector"]["matchLabels"]},
        }
    # One replica: minAvailable 1 would block every node drain forever.
    assert of_kind(rendered["single"], "PodDisruptionBudget") == []
    assert of_kind(render(helm_bin, {"replicas": 1}), "PodDisruptionBudget") == []
    assert of_kind(render(helm_bin, {"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget") == []


def test_the_metrics_service_and_the_optional_service_monitor(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert of_kind(rendered["defaults"], "ServiceMonitor") == []
    for value_set, port in (("defaults", 8080), ("every value set", 9090)):
        docs = rendered[value_set]
        service = one(docs, "Service")
        expected = {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}
        assert service["spec"]["ports"] == [expected]
        pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container_of(docs)["ports"]
    monitor = one(rendered["every value set"], "ServiceMonitor")
    service = one(rendered["every value set"], "Service")
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"


def test_the_crds_are_rendered_with_include_crds(rendered: dict[str, list[dict[str, Any]]]) -> None:
    names = {d["metadata"]["name"] for d in of_kind(rendered["defaults"], "CustomResourceDefinition")}
    assert names == {"tikvclusters.tikvops.io", "operatortickets.tikvops.io"}


def test_equal_metrics_and_health_ports_are_refused(helm_bin: str) -> None:
    result = template(helm_bin, {"metrics": {"port": 9000}, "health": {"port": 9000}})
    assert result.returncode != 0
    assert "metrics.port and health.port must differ" in result.stderr


@pytest.mark.parametrize(("values", "message"), [
    ({"replicas": 2, "leaderElection": {"enabled": False}},
     "replicas=2 needs leaderElection.enabled=true: without a Lease every replica is active"),
    ({"replicas": 3, "podDisruptionBudget": {"minAvailable": 3}},
     "podDisruptionBudget.minAvailable=3 must be below replicas=3"),
])
def test_several_replicas_without_a_lease_and_an_unsatisfiable_budget_are_refused(
    helm_bin: str, values: dict[str, Any], message: str,
) -> None:
    result = template(helm_bin, values)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_values_of_an_older_chart_are_refused_with_the_way_out(helm_bin: str) -> None:
    """`helm upgrade --reuse-values` from chart 0.1.0 keeps that chart's defaults, which lack the keys."""
    old_defaults = [f"{key}=null" for key in ("replicas", "leaderElection", "podDisruptionBudget")]
    result = template(helm_bin, extra=[arg for setting in old_defaults for arg in ("--set", setting)])
    assert result.returncode != 0
    assert "--reset-then-reuse-values" in result.stderr, result.stderr

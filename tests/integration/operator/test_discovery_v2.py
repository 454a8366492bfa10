"""`--discover-tidbclusters` with tidb-operator v2 (core.pingcap.com): a Cluster, its PDGroup, TiKVGroup and TiKV
objects become a TiKVCluster (PD from status.pd, the client Secret the Cluster names, storePods from the TiKVs,
Prometheus from the annotation or the default), whose store fault opens a ticket and which goes with the
Cluster; and a TidbCluster of the same name is never written over."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.kube import Cli, eventually, to_yaml
from harness.operator_process import (
    OperatorProcess,
    SimulatedCluster,
    event_reasons,
    open_tickets,
    start_simulated_cluster,
    wait_for_ticket,
)
from harness.platform import PlatformInfo
from harness.prometheus import Prometheus, ScrapeTargets

from tests.support.plugin import delete_custom_resources
from tests.support.tidb_operator import CRDS as V1_CRDS
from tests.support.tidb_operator import install_crds as install_v1_crds
from tests.support.tidb_operator import tidbcluster_manifest
from tests.support.tidb_operator_v2 import cluster_manifest, instance_for_pod, member_manifest, write_status
from tikv_sim.cluster_model import InstanceLabel

StartOperator = Callable[..., OperatorProcess]
DEFAULT_PROMETHEUS = "http://prometheus-k8s.monitoring:9090"
DISCOVERY = ("--discover-tidbclusters", "--discovery-interval", "1s")
V2 = "cluster.core.pingcap.com"


def tikvclusters(kubectl: Cli) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in kubectl.json("get", "tikvclusters")["items"]}


def generated(kubectl: Cli, name: str, probe: Callable[[dict[str, Any]], bool] = lambda _: True,
              what: str = "") -> dict[str, Any]:
    return eventually(lambda: (c := tikvclusters(kubectl).get(name)) is not None and probe(c) and c, timeout=30,
                      what=what or f"TiKVCluster {name}")


def create_v2_cluster(kubectl: Cli, name: str, pd: str, stores: dict[str, str], **cluster: Any) -> None:
    """What a person applies (Cluster, PDGroup, TiKVGroup) and what tidb-operator then makes and writes: a TiKV
    per store whose pod is `stores[id]`, each with its store id, and the Cluster's status.pd."""
    tikvs = {instance_for_pod(pod, "tikv"): sid for sid, pod in stores.items()}
    kubectl("create", "-f", "-", input=to_yaml([
        cluster_manifest(name, **cluster), member_manifest("PDGroup", f"{name}-pd", name),
        member_manifest("TiKVGroup", f"{name}-tikv", name),
        *[member_manifest("TiKV", instance, name) for instance in tikvs]]))
    for instance, sid in tikvs.items():
        write_status(kubectl, "tikvs", instance, {"id": sid, "state": "Serving"})
    write_status(kubectl, "clusters", name, {"pd": pd, "id": "7049382735671234567"})


def test_a_v2_cluster_alone_becomes_a_tikvcluster_that_opens_tickets_and_goes_with_it(
    kubectl: Cli, kubectl_admin: Cli, namespace: str, start_operator: StartOperator, prometheus: Prometheus,
    prom_targets: ScrapeTargets, tidb_v2_crds: None,
) -> None:
    ns = namespace
    kubectl_admin("delete", "crd", *V1_CRDS, "--ignore-not-found", "--timeout=60s")  # only v2 installed
    # Series labelled as the official PodMonitor labels them: tidb_cluster=<ns>-<cluster>, instance=<pod>.
    tikv: SimulatedCluster = start_simulated_cluster(
        prometheus, prom_targets, labels={"tidb_cluster": f"{ns}-basic"}, name="basic", namespace=ns,
        instance_label=InstanceLabel.POD_NAME)
    try:
        pods = {sid: store["podName"] for sid, store in tikv.sim.tidb_stores().items()}
        # status.pd is whatever tidb-operator wrote (here the simulator's PD): used as it is, never derived.
        create_v2_cluster(kubectl, "basic", tikv.pd_url, pods,
                          annotations={"tikvops.io/prometheus-url": prometheus.url})
        create_v2_cluster(kubectl, "secure", f"https://secure-pd.{ns}.svc.cluster.local:2379",
                          {"1": "secure-tikv-0"}, tls=True, client_secret="secure-tls")
        operator = start_operator(extra_args=(*DISCOVERY, "--default-prometheus-url", DEFAULT_PROMETHEUS))

        basic = generated(kubectl, "basic", lambda c: (c.get("status") or {}).get("health") == "Healthy",
                          what="the discovered v2 cluster to be judged Healthy")
        uid = kubectl.json("get", "clusters.core.pingcap.com", "basic")["metadata"]["uid"]
        assert basic["metadata"]["labels"]["tikvops.io/discovered-from"] == V2
        assert basic["metadata"]["ownerReferences"] == [{"apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
                                                         "name": "basic", "uid": uid, "blockOwnerDeletion": False}]
        assert basic["spec"]["pd"]["url"] == tikv.pd_url
        assert basic["spec"]["prometheus"]["url"] == prometheus.url
        assert basic["spec"]["prometheus"]["labelMatchers"] == {"tidb_cluster": f"{ns}-basic"}
        assert basic["spec"]["storePods"] == pods
        secure = generated(kubectl, "secure")["spec"]
        assert secure["pd"]["url"] == f"https://secure-pd.{ns}.svc.cluster.local:2379"
        assert secure["pd"]["tlsSecret"] == {"name": "secure-tls"}
        assert (secure["prometheus"]["url"], secure["prometheus"]["labelMatchers"]) == (
            DEFAULT_PROMETHEUS, {"tidb_cluster": f"{ns}-secure"})
        log = operator.log()
        assert "TidbCluster discovery is off: the API server serves no tidbclusters.pingcap.com" in log
        assert "Cluster.core.pingcap.com discovery (tidb-operator v2) is on" in log

        # A store fault on the discovered cluster: a ticket, through the same path as for v1.
        tikv.fault(kind="stop-store", store=1)
        wait_for_ticket(kubectl, "store_down", "1", timeout=60)

        # A new TiKV gets its store id: storePods follows.
        kubectl("create", "-f", "-", input=to_yaml([member_manifest("TiKV", "secure-1", "secure")]))
        write_status(kubectl, "tikvs", "secure-1", {"id": "8"})
        generated(kubectl, "secure", lambda c: c["spec"]["storePods"] == {"1": "secure-tikv-0", "8": "secure-tikv-1"},
                  what="storePods to follow the new TiKV")

        # Deleted: its TiKVCluster and tickets go (the garbage collector, through the ownerReference, or discovery).
        kubectl("delete", "clusters.core.pingcap.com", "basic")
        eventually(lambda: "basic" not in tikvclusters(kubectl) and not open_tickets(kubectl), timeout=60,
                   what="the TiKVCluster and its tickets to go with the Cluster")
        assert "secure" in tikvclusters(kubectl)
    finally:
        tikv.sim.__exit__(None, None, None)
        install_v1_crds(kubectl_admin)


@pytest.mark.usefixtures("tidb_crds", "tidb_v2_crds")
def test_a_tidbcluster_and_a_v2_cluster_of_one_name_collide_only_in_one_namespace(
    kubectl: Cli, kubectl_admin: Cli, namespace: str, platform: PlatformInfo, tmp_path: Path,
) -> None:
    other = f"{namespace[:55]}-other"
    kubectl_admin("create", "namespace", other)
    theirs = kubectl_admin.in_namespace(other)
    operator: OperatorProcess | None = None
    try:
        # One namespace: the TidbCluster first; the v2 Cluster of the same name must not take its TiKVCluster.
        kubectl("create", "-f", "-", input=to_yaml([tidbcluster_manifest("db", namespace=namespace)]))
        operator = OperatorProcess(platform.env(), (namespace, other), tmp_path / "operator.log",
                                   extra_args=(*DISCOVERY, "--default-prometheus-url", DEFAULT_PROMETHEUS)).start()
        generated(kubectl, "db")
        create_v2_cluster(kubectl, "db", f"http://db-pd.{namespace}:2379", {"1": "db-tikv-0"})
        # Different namespaces: a v2 Cluster here, a TidbCluster there, each its own TiKVCluster.
        create_v2_cluster(kubectl, "web", f"http://web-pd.{namespace}:2379", {"1": "web-tikv-0"})
        theirs("create", "-f", "-", input=to_yaml([tidbcluster_manifest("web", namespace=other)]))

        web = generated(kubectl, "web")
        assert web["metadata"]["labels"]["tikvops.io/discovered-from"] == V2
        their_web = eventually(lambda: {c["metadata"]["name"]: c for c in theirs.json("get", "tikvclusters")["items"]}
                               .get("web"), timeout=30, what="the TidbCluster's TiKVCluster in the other namespace")
        assert their_web["metadata"]["labels"]["tikvops.io/discovered-from"] == "tidbcluster"
        assert their_web["spec"]["pd"]["url"] == f"http://web-pd.{other}:2379"

        # The collision is said where the v2 Cluster's owner looks, and the TiKVCluster stays the TidbCluster's.
        eventually(lambda: "DiscoveryConflict" in event_reasons(kubectl, "Cluster", "db"), timeout=30,
                   what="a DiscoveryConflict Event on the v2 Cluster db")
        assert (f"Cluster.core.pingcap.com {namespace}/db: TiKVCluster {namespace}/db is generated from the "
                "TidbCluster of the same name in this namespace and is not written over") in operator.log()
        db = tikvclusters(kubectl)["db"]
        assert db["metadata"]["labels"]["tikvops.io/discovered-from"] == "tidbcluster"
        assert db["spec"]["pd"]["url"] == f"http://db-pd.{namespace}:2379"
        assert db["metadata"]["ownerReferences"][0]["kind"] == "TidbCluster"

        # The TidbCluster opts out: its TiKVCluster goes and the v2 Cluster's takes the name.
        kubectl("annotate", "tidbcluster", "db", "tikvops.io/discovery=false")
        generated(kubectl, "db", lambda c: c["metadata"]["labels"]["tikvops.io/discovered-from"] == V2,
                  what="the v2 Cluster to take the name once the TidbCluster's TiKVCluster is gone")
    finally:
        if operator is not None and operator.process is not None and operator.process.poll() is None:
            for kube in (kubectl, theirs):
                kube("delete", "tikvclusters", "--all", "--timeout=30s", check=False)
            assert operator.stop() == 0, operator.log()
        delete_custom_resources(kubectl_admin, other)
        kubectl_admin("delete", "namespace", other, "--wait=false", check=False)

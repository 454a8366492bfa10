"""`--discover-tidbclusters`: TiKVClusters generated from tidb-operator's TidbClusters and TidbMonitors, kept
in step with them, removed with them; and a whole ticket through a discovered cluster whose generated URLs
are used unchanged (their host names mapped to loopback addresses in /etc/hosts)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from harness.kube import Cli, eventually, to_yaml
from harness.operator_process import (
    FAST_PD,
    OperatorProcess,
    SimulatedCluster,
    open_tickets,
    start_simulated_cluster,
    still,
    wait_for_phase,
    wait_for_ticket,
)
from harness.platform import PlatformInfo
from harness.prometheus import Prometheus, ScrapeTargets

from tests.support.plugin import delete_custom_resources
from tests.support.tidb_operator import (
    CRDS,
    hosts_entries,
    install_crds,
    loopback_address,
    pd_host,
    prometheus_host,
    tcp_forward,
    tidbcluster_manifest,
    tidbmonitor_manifest,
)
from tikv_sim.cluster_model import InstanceLabel

StartOperator = Callable[..., OperatorProcess]
DEFAULT_PROMETHEUS = "http://prometheus-k8s.monitoring:9090"
DISCOVERY = ("--discover-tidbclusters", "--discovery-interval", "1s")


def store(sid: str, pod: str, tc: str, ns: str) -> dict[str, Any]:
    """An entry of status.tikv.stores as tidb-operator writes it."""
    return {"id": sid, "podName": pod, "ip": f"{pod}.{tc}-tikv-peer.{ns}.svc", "leaderCount": 10, "state": "Up",
            "lastTransitionTime": "2026-12-07T00:00:00Z"}


def tikvclusters(kubectl: Cli) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in kubectl.json("get", "tikvclusters")["items"]}


def generated(kubectl: Cli, name: str, probe: Callable[[dict[str, Any]], bool] = lambda _: True,
              what: str = "") -> dict[str, Any]:
    return eventually(lambda: (c := tikvclusters(kubectl).get(name)) is not None and probe(c) and c, timeout=30,
                      what=what or f"TiKVCluster {name}")


@pytest.mark.usefixtures("tidb_crds")
def test_tidbclusters_become_tikvclusters_that_follow_them(
    kubectl: Cli, namespace: str, start_operator: StartOperator,
) -> None:
    ns = namespace
    kubectl.apply({  # a person's TiKVCluster, named like a TidbCluster
        "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": "mine"},
        "spec": {"pd": {"url": "http://127.0.0.1:9"}, "prometheus": {"url": "http://127.0.0.1:9"}, "paused": True}})
    kubectl("create", "-f", "-", input=_yaml([
        tidbcluster_manifest("basic", namespace=ns),
        tidbcluster_manifest("secure", namespace=ns, tls=True),
        tidbcluster_manifest("domain", namespace=ns, cluster_domain="cluster.local"),
        tidbcluster_manifest("hetero", namespace=ns, join={"name": "basic"},
                             stores={"11": store("11", "hetero-tikv-0", "hetero", ns)}),
        tidbcluster_manifest("paused", namespace=ns, paused=True),
        tidbcluster_manifest("fresh", namespace=ns, bootstrapped=False),
        tidbcluster_manifest("optout", namespace=ns, annotations={"tikvops.io/discovery": "false"}),
        tidbcluster_manifest("lonely", namespace=ns),
        tidbcluster_manifest("mine", namespace=ns),
        tidbmonitor_manifest("monitor", [{"name": "basic"}, {"name": "secure"}, {"name": "domain"}], namespace=ns),
    ]))
    operator = start_operator(extra_args=(*DISCOVERY, "--default-prometheus-url", DEFAULT_PROMETHEUS))

    eventually(lambda: set(tikvclusters(kubectl)) == {"basic", "secure", "domain", "lonely", "mine"}, timeout=30,
               what="a TiKVCluster for each TidbCluster with TiKV and its own PD")
    uids = {tc["metadata"]["name"]: tc["metadata"]["uid"] for tc in kubectl.json("get", "tidbclusters")["items"]}
    basic = tikvclusters(kubectl)["basic"]
    assert basic["metadata"]["labels"]["tikvops.io/discovered-from"] == "tidbcluster"
    assert basic["metadata"]["ownerReferences"][0] | {"uid": ""} == {
        "apiVersion": "pingcap.com/v1alpha1", "kind": "TidbCluster", "name": "basic", "uid": "",
        "blockOwnerDeletion": False}
    assert basic["metadata"]["ownerReferences"][0]["uid"] == uids["basic"]
    assert basic["spec"]["pd"]["url"] == f"http://basic-pd.{ns}:2379"
    assert "tlsSecret" not in basic["spec"]["pd"]
    assert basic["spec"]["prometheus"]["url"] == f"http://monitor-prometheus.{ns}:9090"
    assert basic["spec"]["prometheus"]["labelMatchers"] == {"tidb_cluster": f"{ns}-basic"}
    # The stores of status.tikv.stores, and those of the TidbCluster joining its PD.
    assert basic["spec"]["storePods"] == {"1": "basic-tikv-0", "2": "basic-tikv-1", "3": "basic-tikv-2",
                                          "11": "hetero-tikv-0"}
    secure = tikvclusters(kubectl)["secure"]["spec"]
    assert secure["pd"] == {"url": f"https://secure-pd.{ns}:2379", "timeout": "5s",
                            "tlsSecret": {"name": "secure-cluster-client-secret"}}
    assert tikvclusters(kubectl)["domain"]["spec"]["pd"]["url"] == f"http://domain-pd.{ns}.svc.cluster.local:2379"
    lonely = tikvclusters(kubectl)["lonely"]["spec"]["prometheus"]
    assert (lonely["url"], lonely["labelMatchers"]) == (DEFAULT_PROMETHEUS, {"namespace": ns})
    assert "tikvops.io/discovered-from" not in (tikvclusters(kubectl)["mine"]["metadata"].get("labels") or {})
    assert tikvclusters(kubectl)["mine"]["spec"]["pd"]["url"] == "http://127.0.0.1:9"  # a person's: untouched
    log = operator.log()
    for reason in (f"TidbCluster {ns}/paused: skipped: it is paused", f"TidbCluster {ns}/fresh: skipped: its TiKV is "
                   "not bootstrapped", f"TidbCluster {ns}/hetero: skipped: it joins the PD of {ns}/basic",
                   f"TidbCluster {ns}/optout: skipped: annotated tikvops.io/discovery=false",
                   f"TidbCluster {ns}/mine: a TiKVCluster of that name exists and was not generated"):
        assert reason in log

    # A person tunes the generated cluster; discovery keeps to the connection fields.
    kubectl("patch", "tikvcluster", "basic", "--type", "merge", "-p",
            '{"spec": {"invariants": {"store_down": {"gracePeriod": "5m"}}, "pd": {"timeout": "2s"}}}')
    # The TidbMonitor stops scraping basic; a store of basic is replaced (tidb-operator's status follows PD).
    kubectl("patch", "tidbmonitor", "monitor", "--type", "merge", "-p",
            '{"spec": {"clusters": [{"name": "secure"}, {"name": "domain"}, {"name": "lonely"}]}}')
    kubectl("patch", "tidbcluster", "basic", "--type", "merge", "-p", json.dumps(
        {"status": {"tikv": {"stores": {"2": None, "4": store("4", "basic-tikv-1", "basic", ns)}}}}))
    basic = generated(kubectl, "basic", lambda c: c["spec"]["prometheus"]["url"] == DEFAULT_PROMETHEUS
                      and "4" in c["spec"]["storePods"], what="basic to follow its TidbCluster and TidbMonitor")
    assert basic["spec"]["prometheus"]["labelMatchers"] == {"namespace": ns}
    assert basic["spec"]["storePods"] == {"1": "basic-tikv-0", "4": "basic-tikv-1", "3": "basic-tikv-2",
                                          "11": "hetero-tikv-0"}
    assert basic["spec"]["invariants"]["store_down"]["gracePeriod"] == "5m"
    assert basic["spec"]["pd"] == {"url": f"http://basic-pd.{ns}:2379", "timeout": "2s"}
    generated(kubectl, "lonely", lambda c: c["spec"]["prometheus"]["url"] == f"http://monitor-prometheus.{ns}:9090",
              what="lonely to take the TidbMonitor that now lists it")

    # Opting out removes the generated TiKVCluster; deleting a TidbCluster removes its TiKVCluster and tickets.
    kubectl("annotate", "tidbcluster", "domain", "tikvops.io/discovery=false")
    kubectl("patch", "tikvcluster", "lonely", "--type", "merge", "-p",
            '{"spec": {"invariants": {"pd_unreachable": {"gracePeriod": "1s"}}}}')
    # lonely-pd.<ns> resolves nowhere here: PD is unreachable, and with a 1s grace that is a ticket.
    eventually(lambda: [t for t in open_tickets(kubectl, "pd_unreachable") if t["spec"]["cluster"] == "lonely"],
               timeout=30, what="lonely's pd_unreachable ticket")
    kubectl("delete", "tidbcluster", "lonely")
    eventually(lambda: not {"domain", "lonely"} & set(tikvclusters(kubectl)), timeout=60,
               what="the opted-out and the deleted TidbClusters' TiKVClusters to go")
    eventually(lambda: not [t for t in kubectl.json("get", "operatortickets")["items"]
                            if t["spec"]["cluster"] == "lonely"], timeout=60, what="lonely's tickets to go")
    assert f"TidbCluster {ns}/domain: generated TiKVCluster deleted: annotated tikvops.io/discovery=false" \
        in operator.log()
    assert set(tikvclusters(kubectl)) == {"basic", "secure", "mine"}


@pytest.mark.usefixtures("tidb_crds")
def test_a_ticket_through_a_discovered_cluster_with_the_generated_urls(
    kubectl: Cli, namespace: str, start_operator: StartOperator, prometheus: Prometheus,
    prom_targets: ScrapeTargets,
) -> None:
    """tidb-operator's naming end to end: PD at basic-pd.<ns>:2379, Prometheus at monitor-prometheus.<ns>:9090,
    series labelled tidb_cluster=<ns>-basic and instance=<pod>. The host names resolve to loopback addresses
    where the simulator's PD and a forwarder to the platform's Prometheus listen."""
    ns = namespace
    pd_ip, prom_ip = loopback_address(2379), loopback_address(9090)
    platform_prometheus = urlparse(prometheus.url)
    tikv: SimulatedCluster = start_simulated_cluster(
        prometheus, prom_targets, labels={"tidb_cluster": f"{ns}-basic"}, name="basic", namespace=ns,
        instance_label=InstanceLabel.POD_NAME, pd_host=pd_ip, pd_port=2379, timing=FAST_PD)
    try:
        with hosts_entries({pd_host("basic", ns): pd_ip, prometheus_host("monitor", ns): prom_ip}, owner=ns), \
                tcp_forward(prom_ip, 9090, platform_prometheus.hostname or "127.0.0.1",
                            platform_prometheus.port or 80):
            kubectl("create", "-f", "-", input=_yaml([
                tidbcluster_manifest("basic", namespace=ns, stores=tikv.sim.tidb_stores()),
                tidbmonitor_manifest("monitor", [{"name": "basic"}], namespace=ns),
            ]))
            start_operator(extra_args=DISCOVERY)
            cluster = generated(kubectl, "basic", lambda c: (c.get("status") or {}).get("health") == "Healthy",
                                what="the discovered cluster to be judged Healthy through the generated URLs")
            assert cluster["spec"]["pd"]["url"] == f"http://basic-pd.{ns}:2379"

            tikv.fault(kind="disk", store=2, percent=85)
            ticket = wait_for_ticket(kubectl, "low_disk_space", "2")
            tikv.fault(kind="disk", store=2, percent=30)
            wait_for_phase(kubectl, ticket["metadata"]["name"], "Resolved")
            tikv.fault(kind="stop-store", store=1)
            wait_for_ticket(kubectl, "store_down", "1")

            kubectl("delete", "tidbcluster", "basic")
            eventually(lambda: "basic" not in tikvclusters(kubectl) and not open_tickets(kubectl), timeout=60,
                       what="the TiKVCluster and its tickets to go with the TidbCluster")
    finally:
        tikv.sim.__exit__(None, None, None)


def test_without_tidb_operators_crd_discovery_is_off_until_it_is_installed(
    kubectl: Cli, kubectl_admin: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any],
) -> None:
    kubectl_admin("delete", "crd", *CRDS, "--ignore-not-found", "--timeout=60s")
    try:
        operator = start_operator(extra_args=DISCOVERY)
        make_cluster(tikv.pd_url)
        generated(kubectl, "basic", lambda c: (c.get("status") or {}).get("health") == "Healthy",
                  what="the operator to check as usual")
        time.sleep(3)  # several discovery passes
        assert operator.log().count("TidbCluster discovery is off: the API server serves no "
                                    "tidbclusters.pingcap.com/v1alpha1") == 1
        assert "Traceback" not in operator.log()
    finally:
        install_crds(kubectl_admin)
    # tidb-operator installed later: no restart needed.
    kubectl("create", "-f", "-", input=_yaml([tidbcluster_manifest("later", namespace=namespace),
                                              tidbmonitor_manifest("monitor", [{"name": "later"}],
                                                                   namespace=namespace)]))
    generated(kubectl, "later", what="a TiKVCluster for the TidbCluster created after the CRD")
    still(lambda: "basic" in tikvclusters(kubectl), seconds=1)


@pytest.mark.usefixtures("tidb_crds")
def test_a_tidbmonitor_in_another_namespace_is_used_only_once_the_tidbcluster_allows_it(
    kubectl: Cli, kubectl_admin: Cli, namespace: str, platform: PlatformInfo, tmp_path: Path,
) -> None:
    # Someone else's namespace, watched by the same operator, whose TidbMonitor lists the team's TidbCluster.
    other = f"{namespace[:55]}-theirs"
    kubectl_admin("create", "namespace", other)
    operator: OperatorProcess | None = None
    try:
        kubectl("create", "-f", "-", input=_yaml([tidbcluster_manifest("team", namespace=namespace)]))
        kubectl_admin.in_namespace(other)("create", "-f", "-", input=_yaml([
            tidbmonitor_manifest("theirs", [{"name": "team", "namespace": namespace}], namespace=other)]))
        operator = OperatorProcess(platform.env(), (namespace, other), tmp_path / "operator.log",
                                   extra_args=(*DISCOVERY, "--default-prometheus-url", DEFAULT_PROMETHEUS)).start()
        team = generated(kubectl, "team")
        assert team["spec"]["prometheus"]["url"] == DEFAULT_PROMETHEUS
        hint = (f"TidbCluster {namespace}/team: TidbMonitor {other}/theirs lists it from another namespace and is "
                f"ignored; to use it, annotate the TidbCluster tikvops.io/allow-monitors-from={other}")
        assert hint in operator.log()
        still(lambda: tikvclusters(kubectl)["team"]["spec"]["prometheus"]["url"] == DEFAULT_PROMETHEUS, seconds=3)

        kubectl("annotate", "tidbcluster", "team", f"tikvops.io/allow-monitors-from={other}")
        team = generated(kubectl, "team", lambda c: c["spec"]["prometheus"]["url"]
                         == f"http://theirs-prometheus.{other}:9090", what="team to take the allowed TidbMonitor")
        assert team["spec"]["prometheus"]["labelMatchers"] == {"tidb_cluster": f"{namespace}-team"}
    finally:
        if operator is not None and operator.process is not None and operator.process.poll() is None:
            kubectl("delete", "tikvclusters", "--all", "--timeout=30s", check=False)
            assert operator.stop() == 0, operator.log()
        delete_custom_resources(kubectl_admin, other)
        kubectl_admin("delete", "namespace", other, "--wait=false", check=False)


def _yaml(manifests: list[dict[str, Any]]) -> str:
    return to_yaml(manifests)

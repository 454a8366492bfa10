"""TiKVClusters generated from TidbClusters and TidbMonitors: tidb-operator's conventions, exactly."""

from __future__ import annotations

from typing import Any

from tikv_operator.checks.core.instances import map_instances
from tikv_operator.checks.core.observation import Store
from tikv_operator.discovery.core.plan import (
    LABEL_DISCOVERED,
    Create,
    Delete,
    Generated,
    Skipped,
    Update,
    connection_patch,
    generate,
    plan_discovery,
)

PROM = "http://prometheus.monitoring:9090"


def tc(name: str = "basic", namespace: str = "tidb", *, tls: bool = False, domain: str = "", paused: bool = False,
       bootstrapped: bool = True, stores: dict[str, str] | None = None, join: str | None = None, tikv: bool = True,
       annotations: dict[str, str] | None = None, across: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"version": "v8.5.0", "tikv": {"replicas": 3} if tikv else None}
    if join:
        spec["cluster"] = {"name": join}
    else:
        spec["pd"] = {"replicas": 3}
    if tls:
        spec["tlsCluster"] = {"enabled": True}
    if domain:
        spec["clusterDomain"] = domain
    if paused:
        spec["paused"] = True
    if across:
        spec["acrossK8s"] = True
    pods = stores if stores is not None else {"1": f"{name}-tikv-0", "4": f"{name}-tikv-1", "5": f"{name}-tikv-2"}
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "annotations": annotations or {}},
            "spec": spec,
            "status": {"tikv": {"bootStrapped": bootstrapped, "stores": {
                sid: {"id": sid, "podName": pod, "state": "Up"} for sid, pod in pods.items()}}}}


def monitor(name: str, namespace: str = "tidb", clusters: list[dict[str, str]] | None = None,
            created: str = "2026-12-01T00:00:00Z") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
            "spec": {"clusters": clusters if clusters is not None else [{"name": "basic"}]}}


def generated(cluster: dict[str, Any], monitors: list[dict[str, Any]] | None = None, others: list[Any] = (),
              default: str = "") -> Generated:
    result = generate(cluster, [cluster, *others], monitors or [], default)
    assert isinstance(result, Generated), result
    return result


def test_a_plain_tidbcluster_with_its_monitor() -> None:
    result = generated(tc(), [monitor("basic-monitor")])
    assert result.connection == {
        "pd": {"url": "http://basic-pd.tidb:2379", "tlsSecret": None},
        "prometheus": {"url": "http://basic-monitor-prometheus.tidb:9090",
                       "labelMatchers": {"tidb_cluster": "tidb-basic"}},
        "storePods": {"1": "basic-tikv-0", "4": "basic-tikv-1", "5": "basic-tikv-2"},
    }
    assert result.owner_uid == "uid-basic"


def test_tls_cluster_domain_and_across_kubernetes() -> None:
    secure = generated(tc(tls=True, domain="cluster.local"), [monitor("m")])
    assert secure.connection["pd"] == {"url": "https://basic-pd.tidb.svc.cluster.local:2379",
                                       "tlsSecret": {"name": "basic-cluster-client-secret"}}
    across = generated(tc(across=True, domain="east.example"), [monitor("m")])
    assert across.connection["pd"]["url"] == "http://basic-pd-peer.tidb.svc.east.example:2379"


def test_the_monitor_may_live_in_another_namespace_the_tidbcluster_allows_and_defaults_to_its_own() -> None:
    elsewhere = monitor("central", "monitoring", [{"name": "basic", "namespace": "tidb"}])
    allowing = tc(annotations={"tikvops.io/allow-monitors-from": "other, monitoring"})
    assert generated(allowing, [monitor("other", "tidb", [{"name": "x"}]), elsewhere]).connection["prometheus"]["url"] \
        == "http://central-prometheus.monitoring:9090"
    # A cluster listed without a namespace is the monitor's own namespace's: not this one.
    assert isinstance(generate(tc(), [tc()], [monitor("m", "monitoring", [{"name": "basic"}])], ""), Skipped)


def test_a_monitor_in_another_namespace_is_not_used_unless_the_tidbcluster_allows_its_namespace() -> None:
    # Someone else's TidbMonitor lists the team's TidbCluster, and it is the oldest: it must not become the
    # Prometheus that decides the team's verdicts.
    foreign = monitor("theirs", "mallory", [{"name": "basic", "namespace": "tidb"}], created="2020-01-01T00:00:00Z")
    own = monitor("own", "tidb", [{"name": "basic"}])
    with_own = generated(tc(), [foreign, own])
    assert with_own.connection["prometheus"]["url"] == "http://own-prometheus.tidb:9090"
    assert "tikvops.io/allow-monitors-from=mallory" in with_own.warning  # said, so a person can allow it
    fallback = generated(tc(), [foreign], default=PROM)
    assert fallback.connection["prometheus"]["url"] == PROM
    assert "TidbMonitor mallory/theirs" in fallback.warning
    assert "tikvops.io/allow-monitors-from=mallory" in fallback.warning
    skipped = generate(tc(), [tc()], [foreign], "")
    assert isinstance(skipped, Skipped)
    assert "tikvops.io/allow-monitors-from=mallory" in skipped.reason
    other_allowed = tc(annotations={"tikvops.io/allow-monitors-from": "monitoring"})
    assert generated(other_allowed, [foreign], default=PROM).connection["prometheus"]["url"] == PROM
    notes = plan_discovery([tc()], [foreign], [], PROM).notes
    assert any("tikvops.io/allow-monitors-from" in n for n in notes)


def test_without_a_monitor_the_default_prometheus_selects_by_namespace() -> None:
    result = generated(tc(), [], default=PROM)
    assert result.connection["prometheus"] == {"url": PROM, "labelMatchers": {"namespace": "tidb"}}
    assert result.prometheus_from == "--default-prometheus-url"


def test_skipped_tidbclusters_say_why() -> None:
    cases = {
        "annotated tikvops.io/discovery=false": tc(annotations={"tikvops.io/discovery": "false"}),
        "it has no TiKV": tc(tikv=False),
        "it is paused": tc(paused=True),
        "not bootstrapped": tc(bootstrapped=False),
        "joins the PD of tidb/basic": tc("hetero", join="basic"),
    }
    for words, cluster in cases.items():
        result = generate(cluster, [cluster], [monitor("m", clusters=[{"name": cluster["metadata"]["name"]}])], PROM)
        assert isinstance(result, Skipped), words
        assert words in result.reason
    assert "no TidbMonitor lists it" in generate(tc(), [tc()], [], "").reason  # type: ignore[union-attr]


def test_a_heterogeneous_tidbcluster_adds_its_stores_to_the_one_whose_pd_it_joins() -> None:
    hetero = tc("hetero", join="basic", stores={"7": "hetero-tikv-0"})
    result = generated(tc(), [monitor("m")], others=[hetero])
    assert result.connection["storePods"]["7"] == "hetero-tikv-0"


def test_an_invalid_result_is_skipped_not_created() -> None:
    result = generate(tc(stores={"x": "basic-tikv-0"}), [], [monitor("m")], "")
    assert isinstance(result, Skipped)
    assert "storePods keys must be PD store ids" in result.reason


def existing(name: str = "basic", ours: bool = True, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    labels = {LABEL_DISCOVERED: "tidbcluster"} if ours else {}
    return {"metadata": {"name": name, "namespace": "tidb", "labels": labels}, "spec": spec or {}}


def test_plan_creates_updates_and_deletes_only_what_discovery_generated() -> None:
    current = generated(tc(), [monitor("m")]).connection
    spec = {**current, "pd": {**current["pd"], "timeout": "3s"}, "invariants": {"store_down": {"gracePeriod": "5m"}}}
    spec["pd"] = {k: v for k, v in spec["pd"].items() if v is not None}
    # Up to date: nothing; a person's fields (timeout, invariants) are not discovery's.
    assert plan_discovery([tc()], [monitor("m")], [existing(spec=spec)], "").actions == []
    # A new TidbCluster: created, owned by it.
    plan = plan_discovery([tc(), tc("new")], [monitor("m", clusters=[{"name": "basic"}, {"name": "new"}])],
                          [existing(spec=spec)], "")
    [create] = plan.actions
    assert isinstance(create, Create)
    assert create.manifest["metadata"]["ownerReferences"][0]["uid"] == "uid-new"
    assert create.manifest["metadata"]["labels"] == {LABEL_DISCOVERED: "tidbcluster"}
    assert "tlsSecret" not in create.manifest["spec"]["pd"]
    # A store replaced and TLS turned on: the connection fields follow, nothing else.
    moved = tc(tls=True, stores={"1": "basic-tikv-0", "6": "basic-tikv-1"})
    [update] = plan_discovery([moved], [monitor("m")], [existing(spec=spec)], "").actions
    assert isinstance(update, Update)
    assert update.patch == {
        "pd": {"url": "https://basic-pd.tidb:2379", "tlsSecret": {"name": "basic-cluster-client-secret"}},
        "storePods": {"6": "basic-tikv-1", "4": None, "5": None}}
    # A person's TiKVCluster of the same name is left alone; an opted-out one generated earlier is removed.
    assert plan_discovery([tc()], [monitor("m")], [existing(ours=False)], "").actions == []
    [delete] = plan_discovery([tc(annotations={"tikvops.io/discovery": "false"})], [monitor("m")],
                              [existing(spec=spec)], "").actions
    assert isinstance(delete, Delete)
    assert "annotated" in delete.reason
    # Paused: kept as it is.
    assert plan_discovery([tc(paused=True)], [monitor("m")], [existing(spec=spec)], "").actions == []


def test_connection_patch_removes_label_matchers_no_longer_wanted() -> None:
    have = {"prometheus": {"url": PROM, "labelMatchers": {"namespace": "tidb"}, "timeout": "2s"}}
    want = {"prometheus": {"url": "http://m-prometheus.tidb:9090", "labelMatchers": {"tidb_cluster": "tidb-basic"}}}
    assert connection_patch(have, want) == {"prometheus": {
        "url": "http://m-prometheus.tidb:9090", "labelMatchers": {"tidb_cluster": "tidb-basic", "namespace": None}}}


def test_declared_pods_win_over_the_naming_heuristic() -> None:
    # PD's addresses say store 1 runs on basic-tikv-0, but tidb-operator knows better: after a failover store
    # 1's pod is basic-tikv-2 (and 3's is basic-tikv-0). The heuristic would swap their series.
    stores = [Store("1", "basic-tikv-0.basic-tikv-peer.tidb.svc:20160"),
              Store("2", "basic-tikv-1.basic-tikv-peer.tidb.svc:20160"),
              Store("3", "basic-tikv-2.basic-tikv-peer.tidb.svc:20160")]
    keys = {"basic-tikv-0", "basic-tikv-1", "basic-tikv-2"}
    assert map_instances(stores, keys).key_by_store["1"] == "basic-tikv-0"
    declared = map_instances(stores, keys, {"1": "basic-tikv-2", "3": "basic-tikv-0"})
    assert declared.key_by_store == {"1": "basic-tikv-2", "2": "basic-tikv-1", "3": "basic-tikv-0"}
    # Addresses with no pod in them (hostNetwork: pod IPs): only the declaration can map them.
    ips = [Store("1", "10.0.0.5:20160", "10.0.0.5:20180")]
    assert map_instances(ips, {"basic-tikv-0"}).key_by_store == {}
    assert map_instances(ips, {"basic-tikv-0"}, {"1": "basic-tikv-0"}).key_by_store == {"1": "basic-tikv-0"}


def test_a_sharded_monitor_is_used_and_its_limit_said() -> None:
    sharded = monitor("m")
    sharded["spec"]["shards"] = 2
    plan = plan_discovery([tc()], [sharded], [], "")
    assert isinstance(plan.actions[0], Create)
    assert any("has 2 shards: only shard 0's Prometheus is asked" in note for note in plan.notes)

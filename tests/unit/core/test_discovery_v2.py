"""TiKVClusters generated from tidb-operator v2's Clusters (core.pingcap.com): status.pd as it is, the client
Secret the Cluster names, stores from TiKV and TiFlash objects, the Prometheus of an annotation; planned by the
same planner as TidbClusters, and a TidbCluster of the same name is never written over."""

from __future__ import annotations

from typing import Any

from tikv_operator.discovery.core.clusters_v2 import CLUSTER, CoreObjects, discover_v2, generate_v2, pod_name
from tikv_operator.discovery.core.plan import (
    LABEL_DISCOVERED,
    TIDBCLUSTER,
    Create,
    Delete,
    Generated,
    Skipped,
    Update,
    plan_discovery,
)
from tikv_operator.model.vocabulary import ANNOTATION_PROMETHEUS_URL

PROM = "http://prometheus.monitoring:9090"
V2_LABEL = "cluster.core.pingcap.com"


def cluster(name: str = "basic", namespace: str = "tidb", *, pd: str = "http://pd-pd.tidb:2379", tls: bool = False,
            client: dict[str, Any] | None = None, annotations: dict[str, str] | None = None, paused: bool = False,
            created: str = "2026-12-01T00:00:00Z") -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if tls:
        spec["tlsCluster"] = {"enabled": True}
    if client is not None:
        spec["security"] = {"tls": {"client": client}}
    if paused:
        spec["paused"] = True
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-v2-{name}", "creationTimestamp": created,
                         "annotations": annotations or {}},
            "spec": spec, "status": {"pd": pd, "id": "7001"} if pd else {}}


def member(kind: str, name: str, of: str = "basic", namespace: str = "tidb", store: str = "") -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace},
            "spec": {"cluster": {"name": of}}, "status": {"id": store} if store else {}}


def objects(*clusters: dict[str, Any], of: str = "basic", namespace: str = "tidb", tikv: bool = True,
            tikvs: dict[str, str] | None = None, tiflashes: dict[str, str] | None = None) -> CoreObjects:
    """A cluster with one PDGroup `pd`, a TiKVGroup `tikv`, and TiKV objects {name: store id}."""
    stores = tikvs if tikvs is not None else {"tikv-a1b2c": "1", "tikv-d3e4f": "4", "tikv-g5h6i": ""}
    return CoreObjects(
        clusters=list(clusters) or [cluster(of, namespace)],
        pdgroups=[member("PDGroup", "pd", of, namespace)],
        tikvgroups=[member("TiKVGroup", "tikv", of, namespace)] if tikv else [],
        tikvs=[member("TiKV", name, of, namespace, sid) for name, sid in stores.items()],
        tiflashes=[member("TiFlash", name, of, namespace, sid) for name, sid in (tiflashes or {}).items()],
    )


def generated(c: dict[str, Any], objs: CoreObjects | None = None, default: str = PROM) -> Generated:
    result = generate_v2(c, objs or objects(c), default)
    assert isinstance(result, Generated), result
    return result


def test_a_cluster_gives_status_pd_its_stores_pods_and_the_default_prometheus_by_tidb_cluster() -> None:
    c = cluster(pd="http://custom-svc.tidb.svc.east.local:2379")  # FQDN mode, a customized Service: as written
    result = generated(c, objects(c, tiflashes={"tiflash-zz9": "9"}))
    assert result.connection == {
        "pd": {"url": "http://custom-svc.tidb.svc.east.local:2379", "tlsSecret": None},
        "prometheus": {"url": PROM, "labelMatchers": {"tidb_cluster": "tidb-basic"}},
        # A TiKV without status.id has no store yet: not mapped.
        "storePods": {"1": "tikv-tikv-a1b2c", "4": "tikv-tikv-d3e4f", "9": "tiflash-tiflash-zz9"},
    }
    assert (result.owner_uid, result.source.kind, result.prometheus_from) == (
        "uid-v2-basic", "Cluster", "--default-prometheus-url")


def test_the_pod_of_an_instance_is_tidb_operators_pod_name() -> None:
    assert pod_name("basic-tikv-x7k2p", "tikv") == "basic-tikv-tikv-x7k2p"
    assert pod_name("db-0", "tiflash") == "db-tiflash-0"
    assert pod_name("nodash", "tikv") is None


def test_tls_takes_the_client_secret_the_cluster_names_else_tidb_operators_default() -> None:
    assert generated(cluster(tls=True)).connection["pd"]["tlsSecret"] == {"name": "basic-cluster-client-secret"}
    named = generated(cluster(tls=True, client={"ca": {"name": "client-tls"}, "certKeyPair": {"name": "client-tls"}}))
    assert named.connection["pd"]["tlsSecret"] == {"name": "client-tls"}
    assert named.warning == ""
    split = generated(cluster(tls=True, client={"ca": {"name": "ca"}, "certKeyPair": {"name": "pair"}}))
    assert split.connection["pd"]["tlsSecret"] == {"name": "pair"}
    assert "client CA is in Secret ca" in split.warning
    # A client section without TLS on: no Secret.
    assert generated(cluster(client={"certKeyPair": {"name": "pair"}})).connection["pd"]["tlsSecret"] is None


def test_the_annotation_names_the_prometheus_and_wins_over_the_default() -> None:
    c = cluster(annotations={ANNOTATION_PROMETHEUS_URL: "http://vmselect.vm:8481/select/0/prometheus"})
    result = generated(c)
    assert result.connection["prometheus"] == {"url": "http://vmselect.vm:8481/select/0/prometheus",
                                               "labelMatchers": {"tidb_cluster": "tidb-basic"}}
    assert result.prometheus_from == f"annotation {ANNOTATION_PROMETHEUS_URL}"


def test_skipped_clusters_say_why_and_which_keep_their_tikvcluster() -> None:
    cases: dict[str, tuple[dict[str, Any], CoreObjects | None, str, bool]] = {
        "opted out": (cluster(annotations={"tikvops.io/discovery": "false"}), None,
                      "annotated tikvops.io/discovery=false", False),
        "no TiKV": (cluster(), objects(tikv=False), "it has no TiKVGroup", False),
        "paused": (cluster(paused=True), None, "it is paused", True),
        "no PD yet": (cluster(pd=""), None, "has not written its PD URL yet (status.pd)", True),
        "no Prometheus": (cluster(), None, f"annotate it {ANNOTATION_PROMETHEUS_URL}=<url>", True),
        "bad annotation": (cluster(annotations={ANNOTATION_PROMETHEUS_URL: "prometheus:9090"}), None,
                           "not valid", True),
    }
    for case, (c, objs, words, keep) in cases.items():
        result = generate_v2(c, objs or objects(c), "" if case == "no Prometheus" else PROM)
        assert isinstance(result, Skipped), case
        assert words in result.reason, (case, result.reason)
        assert result.keep is keep, case


def test_members_are_matched_by_spec_cluster_name_in_the_clusters_own_namespace() -> None:
    here, other = cluster("basic", "tidb"), cluster("basic", "elsewhere")
    objs = CoreObjects(clusters=[here, other],
                       tikvgroups=[member("TiKVGroup", "tikv", "basic", "tidb")],
                       tikvs=[member("TiKV", "tikv-a", "basic", "tidb", "1"),
                              member("TiKV", "tikv-b", "other", "tidb", "2"),
                              member("TiKV", "tikv-c", "basic", "elsewhere", "3")])
    results = {r.namespace: r for r in discover_v2(objs, PROM)}
    assert isinstance(results["tidb"], Generated)
    assert results["tidb"].connection["storePods"] == {"1": "tikv-tikv-a"}
    assert isinstance(results["elsewhere"], Skipped)  # its TiKV alone is no TiKVGroup
    assert "no TiKVGroup" in results["elsewhere"].reason


def existing(name: str = "basic", label: str = V2_LABEL, namespace: str = "tidb",
             spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": {LABEL_DISCOVERED: label} if label else {}},
            "spec": spec or {}}


def plan(objs: CoreObjects, tikvclusters: list[dict[str, Any]], tcs: list[dict[str, Any]] = (),
         monitors: list[dict[str, Any]] = (), v1: bool = True) -> Any:
    return plan_discovery(list(tcs), list(monitors), tikvclusters, PROM, discover_v2(objs, PROM),
                          [TIDBCLUSTER, CLUSTER] if v1 else [CLUSTER])


def test_plan_creates_owned_by_the_cluster_follows_it_and_deletes_it_with_it() -> None:
    [create] = plan(objects(), []).actions
    assert isinstance(create, Create)
    meta = create.manifest["metadata"]
    assert meta["labels"] == {LABEL_DISCOVERED: V2_LABEL}
    assert meta["ownerReferences"] == [{"apiVersion": "core.pingcap.com/v1alpha1", "kind": "Cluster",
                                        "name": "basic", "uid": "uid-v2-basic", "blockOwnerDeletion": False}]
    spec = create.manifest["spec"]
    # A TiKV got its store id: storePods follows at the next pass, nothing else changes.
    [update] = plan(objects(tikvs={"tikv-a1b2c": "1", "tikv-d3e4f": "4", "tikv-g5h6i": "5"}),
                    [existing(spec=spec)]).actions
    assert isinstance(update, Update)
    assert update.patch == {"storePods": {"5": "tikv-tikv-g5h6i"}}
    assert update.display == "Cluster.core.pingcap.com"
    # Gone or opted out: deleted, saying why.
    [gone] = plan(CoreObjects(), [existing(spec=spec)]).actions
    assert isinstance(gone, Delete)
    assert gone.reason == "its Cluster.core.pingcap.com is gone"
    opted = cluster(annotations={"tikvops.io/discovery": "false"})
    [delete] = plan(objects(opted), [existing(spec=spec)]).actions
    assert isinstance(delete, Delete)
    assert "annotated tikvops.io/discovery=false" in delete.reason
    # A TidbCluster's generated TiKVCluster is not the v2 source's to delete, nor a person's.
    assert plan(CoreObjects(), [existing(label="tidbcluster")], v1=False).actions == []
    assert plan(CoreObjects(), [existing(label="")]).actions == []


def tidbcluster(name: str = "basic", namespace: str = "tidb", created: str = "2026-12-01T00:00:00Z") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-v1-{name}", "creationTimestamp": created},
            "spec": {"pd": {"replicas": 3}, "tikv": {"replicas": 3}},
            "status": {"tikv": {"bootStrapped": True, "stores": {"1": {"id": "1", "podName": f"{name}-tikv-0"}}}}}


def test_same_names_in_different_namespaces_do_not_collide() -> None:
    actions = plan(objects(cluster("basic", "v2ns"), of="basic", namespace="v2ns"), [],
                   tcs=[tidbcluster("basic", "v1ns")]).actions
    created = sorted((a.manifest["metadata"]["namespace"], a.manifest["metadata"]["labels"][LABEL_DISCOVERED])
                     for a in actions if isinstance(a, Create))
    assert created == [("v1ns", "tidbcluster"), ("v2ns", V2_LABEL)]


def test_same_name_in_one_namespace_the_holder_keeps_it_and_the_other_is_reported() -> None:
    # Nothing generated yet: the older of the two gets it (here the v2 Cluster), the other is reported.
    result = plan(objects(cluster(created="2026-11-01T00:00:00Z")), [], tcs=[tidbcluster()])
    [create] = result.actions
    assert isinstance(create, Create)
    assert create.manifest["metadata"]["labels"][LABEL_DISCOVERED] == V2_LABEL
    [conflict] = result.conflicts
    assert conflict.loser.source.kind == "TidbCluster"
    assert conflict.message.startswith("TidbCluster tidb/basic: TiKVCluster tidb/basic is generated from the "
                                       "Cluster.core.pingcap.com of the same name")
    assert conflict.message in result.notes
    # The TidbCluster's TiKVCluster exists: it stays the TidbCluster's, however old the v2 Cluster is.
    v1_spec = plan(CoreObjects(), [], tcs=[tidbcluster()]).actions[0].manifest["spec"]
    held = plan(objects(cluster(created="2020-01-01T00:00:00Z")), [existing(label="tidbcluster", spec=v1_spec)],
                tcs=[tidbcluster()])
    assert held.actions == []
    [conflict] = held.conflicts
    assert (conflict.loser.source.kind, conflict.winner.kind) == ("Cluster", "TidbCluster")
    # The TidbCluster opts out: its TiKVCluster goes, and the v2 Cluster takes the name once it is gone.
    opted = tidbcluster()
    opted["metadata"]["annotations"] = {"tikvops.io/discovery": "false"}
    releasing = plan(objects(), [existing(label="tidbcluster", spec=v1_spec)], tcs=[opted])
    assert [type(a) for a in releasing.actions] == [Delete]
    assert releasing.conflicts == []
    assert any("waits for TiKVCluster tidb/basic" in n for n in releasing.notes)
    [create] = plan(objects(), [], tcs=[opted]).actions
    assert isinstance(create, Create)
    # A tie: the TidbCluster, which discovery knew first.
    [tie] = plan(objects(), [], tcs=[tidbcluster()]).actions
    assert tie.manifest["metadata"]["labels"][LABEL_DISCOVERED] == "tidbcluster"

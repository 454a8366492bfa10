"""TiKVClusters from tidb-operator v2's Clusters (core.pingcap.com/v1alpha1): the same Generated | Skipped
description as a TidbCluster's (discovery.core.plan), so one planner creates, updates and deletes both.

Conventions, read in pingcap/tidb-operator main 42684baa (v2.2.0-alpha.6-7) and back to v2.0.0 3d4bf8fe, which
has all of them but spec.security.tls.client (docs/discovery.md says so too):
- A Cluster owns nothing by reference: its PDGroups, TiKVGroups, TiKVs and TiFlashes point at it with
  `spec.cluster.name`, in its namespace (api/core/v1alpha1/common_types.go ClusterReference).
- PD: `status.pd` is the URL tidb-operator itself hands every component (pkg/controllers/cluster/tasks/status.go,
  coreutil.PDServiceURL): the Service is named after the first PDGroup, or `spec.customizedPDServiceName` with
  the MultiPDGroup feature, and `spec.dns.mode: FQDN` appends `.svc.<clusterDomain>`. It is used as it is,
  never derived from names.
- TLS: `spec.tlsCluster.enabled`; the client certificate is the Secret `spec.security.tls.client.certKeyPair.name`,
  its CA the Secret `spec.security.tls.client.ca.name`, both `<cluster>-cluster-client-secret` by default
  (pkg/apiutil/core/v1alpha1/cluster.go ClientCertKeyPairSecretName, ClientCASecretName). A TiKVCluster names
  one Secret with ca.crt, tls.crt and tls.key: the certificate's, and a separate CA Secret is said.
- Stores: a TiKV's (and TiFlash's) `status.id` is its store id; its pod is `<prefix>-tikv-<suffix>` for an
  instance named `<prefix>-<suffix>` (coreutil.PodName: the instance's name cut at its last "-").
- Prometheus: v2 has no TidbMonitor. The official PodMonitor and VMPodScrape (docs.pingcap.com
  tidb-in-kubernetes v2.0, monitor-a-tidb-cluster) label every series `tidb_cluster="<ns>-<cluster>"` and
  `instance` = the pod's name; which Prometheus holds them is the Cluster's ANNOTATION_PROMETHEUS_URL, else
  the operator's --default-prometheus-url.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tikv_operator.discovery.core.plan import (
    ANNOTATION_DISCOVERY,
    Generated,
    Skipped,
    Source,
    meta_of,
    spec_of,
    status_of,
)
from tikv_operator.model.cluster_resource import TiKVClusterSpec, spec_error
from tikv_operator.model.vocabulary import ANNOTATION_PROMETHEUS_URL

CORE_GROUP, CORE_VERSION = "core.pingcap.com", "v1alpha1"
CLUSTER = Source("Cluster", f"{CORE_GROUP}/{CORE_VERSION}", "cluster.core.pingcap.com", "Cluster.core.pingcap.com")
# What each pass lists (plurals of core.pingcap.com), besides the Clusters themselves.
PLURALS = ("pdgroups", "tikvgroups", "tikvs", "tiflashes")


@dataclass(frozen=True)
class CoreObjects:
    """What one pass listed of core.pingcap.com, every namespace watched together."""

    clusters: list[Mapping[str, Any]] = field(default_factory=list)
    pdgroups: list[Mapping[str, Any]] = field(default_factory=list)
    tikvgroups: list[Mapping[str, Any]] = field(default_factory=list)
    tikvs: list[Mapping[str, Any]] = field(default_factory=list)
    tiflashes: list[Mapping[str, Any]] = field(default_factory=list)


def members(cluster: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The objects of the cluster's namespace whose spec.cluster.name is the cluster."""
    namespace, name = meta_of(cluster).get("namespace"), meta_of(cluster).get("name")
    return [o for o in objects if meta_of(o).get("namespace") == namespace
            and (spec_of(o).get("cluster") or {}).get("name") == name]


def pod_name(instance: str, component: str) -> str | None:
    """tidb-operator's pod of an instance (coreutil.PodName): `basic-x7k2p` -> `basic-tikv-x7k2p`."""
    prefix, dash, suffix = instance.rpartition("-")
    return f"{prefix}-{component}-{suffix}" if dash and prefix and suffix else None


def store_pods(tikvs: Iterable[Mapping[str, Any]], tiflashes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Store id -> pod name, from the instances that have a store id yet (status.id)."""
    pods: dict[str, str] = {}
    for component, instances in (("tikv", tikvs), ("tiflash", tiflashes)):
        for instance in instances:
            store_id, pod = str(status_of(instance).get("id") or ""), pod_name(str(meta_of(instance).get("name")),
                                                                              component)
            if store_id and pod:
                pods[store_id] = pod
    return pods


def client_tls(cluster: Mapping[str, Any]) -> tuple[str | None, str]:
    """(the client Secret, what a person should know about it), None without spec.tlsCluster.enabled."""
    if not (spec_of(cluster).get("tlsCluster") or {}).get("enabled"):
        return None, ""
    default = f"{meta_of(cluster)['name']}-cluster-client-secret"
    client = (((spec_of(cluster).get("security") or {}).get("tls") or {}).get("client") or {})
    secret = str((client.get("certKeyPair") or {}).get("name") or default)
    ca = str((client.get("ca") or {}).get("name") or default)
    notes = []
    if ca != secret:
        notes.append(f"its client CA is in Secret {ca} and its certificate in Secret {secret}: the operator reads "
                     f"ca.crt, tls.crt and tls.key from {secret}, so {secret} must hold ca.crt too")
    if client.get("insecureSkipTLSVerify"):
        notes.append("it sets spec.security.tls.client.insecureSkipTLSVerify, which the operator does not: PD's "
                     "certificate is verified against ca.crt")
    return secret, "; ".join(notes)


def generate_v2(cluster: Mapping[str, Any], objects: CoreObjects, default_prometheus: str) -> Generated | Skipped:
    meta, spec, status = meta_of(cluster), spec_of(cluster), status_of(cluster)
    namespace, name = str(meta["namespace"]), str(meta["name"])

    def skipped(reason: str, keep: bool = False) -> Skipped:
        return Skipped(namespace, name, reason, keep, CLUSTER)

    annotations = meta.get("annotations") or {}
    if str(annotations.get(ANNOTATION_DISCOVERY, "")).lower() == "false":
        return skipped(f"annotated {ANNOTATION_DISCOVERY}=false")
    if not members(cluster, objects.tikvgroups):
        return skipped("it has no TiKVGroup")
    if spec.get("paused"):
        return skipped("it is paused (spec.paused)", keep=True)
    pd_url = str(status.get("pd") or "")
    if not pd_url:
        why = "" if members(cluster, objects.pdgroups) else " (it has no PDGroup)"
        return skipped(f"tidb-operator has not written its PD URL yet (status.pd){why}", keep=True)

    prometheus_url = str(annotations.get(ANNOTATION_PROMETHEUS_URL) or "")
    source = f"annotation {ANNOTATION_PROMETHEUS_URL}"
    if not prometheus_url:
        prometheus_url, source = default_prometheus, "--default-prometheus-url"
    if not prometheus_url:
        return skipped(f"it names no Prometheus (annotate it {ANNOTATION_PROMETHEUS_URL}=<url>) and the operator "
                       "has no --default-prometheus-url", keep=True)

    secret, warning = client_tls(cluster)
    connection = {
        "pd": {"url": pd_url, "tlsSecret": {"name": secret} if secret else None},
        "prometheus": {"url": prometheus_url, "labelMatchers": {"tidb_cluster": f"{namespace}-{name}"}},
        "storePods": store_pods(members(cluster, objects.tikvs), members(cluster, objects.tiflashes)),
    }
    try:
        TiKVClusterSpec.model_validate({**connection, "pd": {k: v for k, v in connection["pd"].items() if v}})
    except ValidationError as error:
        # Kept: a typo in the annotation must not delete the cluster's TiKVCluster and its tickets.
        return skipped(f"the TiKVCluster it would make is not valid: {spec_error(error)}", keep=True)
    return Generated(namespace, name, str(meta.get("uid", "")), connection, source, warning, CLUSTER,
                     str(meta.get("creationTimestamp") or ""))


def discover_v2(objects: CoreObjects, default_prometheus: str) -> list[Generated | Skipped]:
    return [generate_v2(cluster, objects, default_prometheus) for cluster in objects.clusters]

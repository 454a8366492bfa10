"""Prometheus file_sd target groups for a cluster's pods, labelled the way each deployment labels them.

status-address (tiup)      instance = the store's status address
pod-name (TidbMonitor)     instance = pod name, plus component, tidb_cluster (<ns>-<tc>), cluster, kubernetes_namespace
pod-label (kube-prometheus) no instance (Prometheus makes it __address__, i.e. podIP:port) and the
                            __meta_kubernetes_* labels Kubernetes discovery gives; the platform's
                            kubernetes-pods job relabels them into pod, namespace, container, service, endpoint, job
"""

from dataclasses import dataclass
from typing import Any

from tikv_sim.cluster_model import Cluster, InstanceLabel, Slot

# The port names tidb-operator gives the metrics ports in its services.
_PORT_NAMES = {"tikv": "status", "tiflash": "proxy-metrics", "pd": "client"}


@dataclass(frozen=True)
class Pod:
    """Where a pod's metrics listen (127.0.0.1:port) and the IP Kubernetes would have given it."""

    port: int
    ip: str


def _address(port: int) -> list[str]:
    return [f"127.0.0.1:{port}"]


def _kubernetes_meta(cluster: Cluster, pod_name: str, container: str, service: str, ip: str) -> dict[str, str]:
    return {
        "__meta_kubernetes_namespace": cluster.identity.namespace,
        "__meta_kubernetes_pod_name": pod_name,
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_service_name": service,
        "__meta_kubernetes_endpoint_port_name": _PORT_NAMES[container],
        "__meta_kubernetes_pod_ip": ip,
    }


def _tidb_monitor(cluster: Cluster, instance: str, component: str) -> dict[str, str]:
    identity = cluster.identity
    return {
        "instance": instance,
        "component": component,
        "tidb_cluster": identity.tidb_cluster,
        "cluster": identity.name,
        "kubernetes_namespace": identity.namespace,
    }


def store_group(cluster: Cluster, slot: Slot, pod: Pod, extra: dict[str, str]) -> dict[str, Any]:
    identity = cluster.identity
    store = cluster.store(slot.store_id)
    pod_name = identity.pod_name(slot.ordinal, slot.engine)
    mode = identity.instance_label
    if mode is InstanceLabel.POD_LABEL:
        meta = _kubernetes_meta(cluster, pod_name, slot.engine, identity.peer_service(slot.engine), pod.ip)
        return {"targets": _address(pod.port), "labels": meta | extra}
    if mode is InstanceLabel.POD_NAME:
        return {"targets": _address(pod.port), "labels": _tidb_monitor(cluster, pod_name, slot.engine) | extra}
    return {"targets": _address(pod.port), "labels": {"instance": store.spec.status_address, **extra}}


def pd_group(cluster: Cluster, member: int, pod: Pod, extra: dict[str, str]) -> dict[str, Any]:
    """One PD member's metrics target: every member is scraped, as PD's ServiceMonitor and tiup do."""
    identity = cluster.identity
    name = identity.pd_member_name_of(member)
    mode = identity.instance_label
    if mode is InstanceLabel.POD_LABEL:
        meta = _kubernetes_meta(cluster, name, "pd", f"{identity.name}-pd", pod.ip)
        return {"targets": _address(pod.port), "labels": meta | extra}
    if mode is InstanceLabel.POD_NAME:
        return {"targets": _address(pod.port), "labels": _tidb_monitor(cluster, name, "pd") | extra}
    return {"targets": _address(pod.port), "labels": {"instance": f"127.0.0.1:{pod.port}", **extra}}


def instance_of(cluster: Cluster, slot: Slot, pod: Pod) -> str:
    """The `instance` label Prometheus ends up with for the slot's target."""
    identity = cluster.identity
    if identity.instance_label is InstanceLabel.POD_LABEL:
        return f"127.0.0.1:{pod.port}"
    if identity.instance_label is InstanceLabel.POD_NAME:
        return identity.pod_name(slot.ordinal, slot.engine)
    return cluster.store(slot.store_id).spec.status_address

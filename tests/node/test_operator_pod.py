"""The image and the chart, run for real: `helm install` on the platform's kubelet node runs the image built
from the Dockerfile as pods, the way a user's first install does.

What the user would see and rely on: the pods pass their probes; they run as uid 10001 on a read-only root
with no capabilities, in a namespace labelled for the restricted Pod Security Standard; they read
TiKVClusters and open a ticket against a TiKV cluster (tikv_sim, reached over the pod network); their
/metrics is scraped by Prometheus; a killed operator process is restarted by the kubelet and checks go on;
`helm upgrade` replaces the pods and `helm uninstall` removes them.

Kubernetes 1.20 has no PodSecurity admission (1.22+): the namespace carries the labels a newer cluster
enforces, and the test checks the pod against the restricted profile's rules itself, from the API (the
spec) and from the kernel (/proc of the container's process).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness.kube import Cli, eventually
from harness.operator_process import cluster_manifest, start_simulated_cluster, wait_for_ticket
from harness.platform import REPO, PlatformInfo
from harness.prometheus import Prometheus, ScrapeTargets

CHART = REPO / "charts" / "tikv-operator"
RELEASE = "tikv-operator"
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
POD_TIMEOUT_S = 90
OPERATOR_UID = 10001


def pods(kubectl: Cli) -> list[dict[str, Any]]:
    return list(kubectl.json("get", "pods", "-l", f"app.kubernetes.io/instance={RELEASE}")["items"])


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return pod["metadata"].get("deletionTimestamp") is None and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def all_ready(kubectl: Cli, count: int) -> list[dict[str, Any]]:
    found = pods(kubectl)
    return found if len(found) == count and all(ready(p) for p in found) else []


def container_pid(platform: PlatformInfo, pod: dict[str, Any]) -> int:
    """The host pid of the pod's operator process, from the node's containerd."""
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    listed = subprocess.run(["ctr", "--address", platform.containerd_address, "--namespace", "k8s.io", "tasks",
                             "ls"], capture_output=True, text=True, check=True, timeout=30).stdout
    for line in listed.splitlines()[1:]:
        task, pid, status = line.split()[:3]
        if task == container_id and status == "RUNNING":
            return int(pid)
    raise AssertionError(f"no running task {container_id} on the node:\n{listed}")


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def root_mount_options(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return fields[5].split(",")
    raise AssertionError(f"process {pid} has no root mount")


def metric(pod: dict[str, Any], name: str) -> float:
    """A pod's own metric (summed over its series), read from its /metrics on the pod network."""
    text = httpx.get(f"http://{pod['status']['podIP']}:8080/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#") and line[len(name)] in " {")


def checks(kubectl: Cli) -> float:
    return sum(metric(p, "tikv_operator_checks_total") for p in pods(kubectl) if ready(p))


def assert_restricted(pod: dict[str, Any]) -> None:
    """The restricted Pod Security Standard's rules (v1.20-era fields) that apply to this pod."""
    spec = pod["spec"]
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host), host
    assert all("hostPath" not in v for v in spec.get("volumes", [])), spec["volumes"]
    pod_context = spec.get("securityContext") or {}
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert not context["capabilities"].get("add")
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True
        seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile")
        assert seccomp["type"] in ("RuntimeDefault", "Localhost")
        assert not context.get("privileged")
        assert not any(p.get("hostPort") for p in container.get("ports", []))


@pytest.fixture
def operator_metrics(platform: PlatformInfo, namespace: str) -> Iterator[ScrapeTargets]:
    """A file_sd file of its own for the operator pods (the simulator rewrites the test's other one)."""
    targets = ScrapeTargets(platform.file_sd_dir / f"{namespace}-operator.json", {"test_ns": namespace})
    yield targets
    targets.remove()


def test_helm_install_runs_the_image_as_restricted_pods_that_open_a_ticket(
    platform: PlatformInfo, operator_image: str, kubectl: Cli, helm: Cli, namespace: str,
    prometheus: Prometheus, prom_targets: ScrapeTargets, operator_metrics: ScrapeTargets,
) -> None:
    kubectl("label", "namespace", namespace, *(f"{k}={v}" for k, v in RESTRICTED.items()))
    repository, tag = operator_image.rsplit(":", 1)
    helm("install", RELEASE, str(CHART), "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
         "--set", "image.pullPolicy=Never", "--set", f"watchNamespaces={{{namespace}}}", "--set", "checkInterval=2s")

    # 1. Two replicas (the chart's default), Ready: the readiness probe passed through the kubelet.
    running = eventually(lambda: all_ready(kubectl, 2), timeout=POD_TIMEOUT_S, what="both operator pods Ready")
    lease = eventually(lambda: kubectl.json("get", "lease", RELEASE)["spec"].get("holderIdentity"),
                       what="a replica to take the Lease")
    assert lease.split("_")[0] in {p["metadata"]["name"] for p in running}

    # 2. Restricted, from the API and from the kernel.
    assert kubectl.json("get", "namespace", namespace)["metadata"]["labels"].items() >= RESTRICTED.items()
    for pod in running:
        assert_restricted(pod)
        pid = container_pid(platform, pod)
        status = proc_status(pid)
        assert status["Uid"].split() == [str(OPERATOR_UID)] * 4, status["Uid"]
        assert status["Gid"].split()[0] == str(OPERATOR_UID)
        assert int(status["CapEff"], 16) == 0, status["CapEff"]
        assert int(status["CapPrm"], 16) == 0, status["CapPrm"]
        assert status["NoNewPrivs"] == "1"
        assert status["Seccomp"] == "2"  # filter mode: the runtime's default profile
        assert "ro" in root_mount_options(pid)
        assert "tikv-operator" in Path(f"/proc/{pid}/cmdline").read_bytes().decode().replace("\0", " ")

    # 3. A TiKVCluster the pods reach over the pod network: PD on the node's host address, Prometheus
    #    relayed there. A store fails: the pods' operator opens the ticket people list with kubectl.
    tikv = start_simulated_cluster(prometheus, prom_targets, pd_host=platform.node_host_address)
    try:
        prometheus_port = prometheus.url.rsplit(":", 1)[1]
        kubectl.apply(cluster_manifest("basic", tikv.pd_url, f"http://{platform.node_host_address}:{prometheus_port}",
                                       prom_targets.labels, interval="1s"))
        eventually(lambda: (kubectl.json("get", "tkc", "basic").get("status") or {}).get("health") == "Healthy",
                   timeout=60, what="the cluster judged Healthy by the operator pod")
        tikv.fault(kind="stop-store", store=2)
        opened = wait_for_ticket(kubectl, "store_down", "2", timeout=60)
        assert opened["metadata"]["name"] == "basic-store-down-s2-1"

        # 4. /metrics, scraped by the platform's Prometheus from the pods' addresses.
        operator_metrics.write([{"targets": [f"{p['status']['podIP']}:8080" for p in running]}])
        prometheus.wait_for_addresses({f"{p['status']['podIP']}:8080" for p in running}, timeout=60)
        scraped = eventually(lambda: prometheus.query(
            f'sum(tikv_operator_checks_total{{test_ns="{namespace}",cluster="basic"}})'), timeout=30,
            what="Prometheus to hold the pods' check counter")
        assert float(scraped[0]["value"][1]) > 0

        # 5. The operator process killed in its container: the kubelet restarts it, checks go on.
        leader = next(p for p in running if p["metadata"]["name"] == lease.split("_")[0])
        old_pid = container_pid(platform, leader)
        os.kill(old_pid, signal.SIGKILL)
        restarted = eventually(
            lambda: next((p for p in pods(kubectl) if p["metadata"]["name"] == leader["metadata"]["name"]
                          and p["status"]["containerStatuses"][0]["restartCount"] >= 1 and ready(p)), None),
            timeout=POD_TIMEOUT_S, what="the kubelet to restart the killed container and the pod to be Ready")
        assert restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
        assert container_pid(platform, restarted) != old_pid
        before = checks(kubectl)
        eventually(lambda: checks(kubectl) >= before + 3, timeout=60,
                   what="checks to go on after the restart (the Lease may have moved to the other pod)")
        tikv.fault(kind="start-store", store=2)
        eventually(lambda: kubectl.json("get", "operatorticket", "basic-store-down-s2-1")["status"]["phase"]
                   == "Resolved", timeout=60, what="the ticket to auto-resolve")

        # 6. helm upgrade: a changed pod template replaces every pod.
        names = {p["metadata"]["name"] for p in pods(kubectl)}
        helm("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "checkInterval=3s")
        replaced = eventually(lambda: [p for p in all_ready(kubectl, 2) if p["metadata"]["name"] not in names],
                              timeout=POD_TIMEOUT_S, what="two new Ready pods after helm upgrade")
        assert len(replaced) == 2
        assert all("--default-interval=3s" in p["spec"]["containers"][0]["args"] for p in replaced)
        eventually(lambda: not names & {p["metadata"]["name"] for p in pods(kubectl)}, timeout=POD_TIMEOUT_S,
                   what="the old pods to be gone")
        tikv.fault(kind="stop-store", store=1)
        wait_for_ticket(kubectl, "store_down", "1", timeout=60)

        # 7. helm uninstall (the TiKVClusters first, as the chart's notes say): no pod left.
        kubectl("delete", "tkc", "basic", "--timeout=60s")
        helm("uninstall", RELEASE)
        eventually(lambda: not pods(kubectl), timeout=POD_TIMEOUT_S, what="helm uninstall to remove the pods")
        eventually(lambda: not running_containers(platform, namespace), timeout=60,
                   what="the node to run no container of the release")
    finally:
        tikv.sim.__exit__(None, None, None)


def running_containers(platform: PlatformInfo, namespace: str) -> list[str]:
    ctr = ["ctr", "--address", platform.containerd_address, "--namespace", "k8s.io"]
    listed = subprocess.run([*ctr, "containers", "ls", "--quiet",
                             f"labels.\"io.kubernetes.pod.namespace\"=={namespace}"],
                            capture_output=True, text=True, check=True, timeout=30).stdout.split()
    tasks = subprocess.run([*ctr, "tasks", "ls"], capture_output=True, text=True, check=True, timeout=30).stdout
    running = {line.split()[0] for line in tasks.splitlines()[1:] if line.split()[2] == "RUNNING"}
    return [c for c in listed if c in running]

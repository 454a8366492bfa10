"""A kubelet node for the local platform: `hack/platform up --with-node`.

What kind gives other operators' CI, from Debian's packages: kubelet 1.20.2 (built with the control plane by
hack/lib/build-kube.sh), containerd 1.6 with runc (cgroupfs driver, overlayfs snapshotter), the CNI bridge
and host-local plugins, kube-scheduler, and the Deployment and ReplicaSet controllers. Pods get addresses on
a private bridge of their own (10.244.N.0/24); nothing listens beyond that bridge and 127.0.0.1.

What stands in for the rest of a cluster:
- no kube-proxy: hack/lib/tcp_forwarder.py listens on the `kubernetes` Service's cluster IP (an address of
  the bridge) and relays to the API server on 127.0.0.1, so pods use the standard in-cluster config; it
  also relays the bridge's gateway address to Prometheus and Alertmanager (the pods' way to them).
- no registry: the pause image is built here from the kubelet's own pause.c, and images are imported into
  containerd (hack/image load).
- the kubelet authenticates with the platform's admin token and serves on 127.0.0.1 to anyone (the API
  server has no client certificate for it): fine on a throwaway test node, not a model of a real one.

Standard library only, like hack/localplatform.py, whose `up` and `down` call start() and teardown().
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from localimage import PAUSE_IMAGE

NODE_NAME = "tikv-node"
APT_NODE = ["containerd", "runc", "containernetworking-plugins", "buildah", "iproute2"]
CNI_BIN_DIR = "/usr/lib/cni"
COMPONENTS = ("host-proxy", "containerd", "kube-scheduler", "kubelet")
READY_TIMEOUT_S = 120.0
# The kubelet puts every pod's logs here whatever its --root-dir says (1.20: a constant).
POD_LOG_DIR = Path("/var/log/pods")
CGROUP_FS = Path("/sys/fs/cgroup")
# How the kubelet names a pod in its log: "name_namespace(uid)".
KUBELET_POD_REF = re.compile(r'"([a-z0-9.-]+)_([a-z0-9-]+)\(([0-9a-f-]{36})\)"')


@dataclass
class NodeState:
    """What `down` needs to undo, saved in the platform's state.json."""

    name: str
    index: int
    bridge: str
    pod_cidr: str
    gateway: str
    service_cidr: str
    service_ip: str
    containerd_address: str
    cgroup_root: str
    directory: str

    @classmethod
    def load(cls, raw: dict[str, object]) -> NodeState | None:
        return cls(**raw) if raw else None  # type: ignore[arg-type]

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def env(self) -> dict[str, str]:
        return {
            "NODE_NAME": self.name,
            # Where a pod reaches the machine: the simulator listens here, Prometheus and Alertmanager are
            # relayed here on their own ports.
            "NODE_HOST_ADDRESS": self.gateway,
            "NODE_POD_CIDR": self.pod_cidr,
            "CONTAINERD_ADDRESS": self.containerd_address,
        }


# ---------------------------------------------------------------------------------------------------
# Planning: names and ranges that two platforms on one machine (a developer's and a test run's) don't share


def _used_networks() -> list[ipaddress.IPv4Network]:
    shown = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    return [ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
            for link in json.loads(shown) for a in link.get("addr_info", [])]


def plan(directory: Path) -> NodeState:
    digest = hashlib.sha256(str(directory).encode()).hexdigest()
    used = _used_networks()
    start = int(digest[:4], 16) % 200
    for offset in range(200):
        index = (start + offset) % 200 + 10
        pods = ipaddress.ip_network(f"10.244.{index}.0/24")
        services = ipaddress.ip_network(f"10.96.{index}.0/24")
        if not any(pods.overlaps(u) or services.overlaps(u) for u in used):
            break
    else:
        raise RuntimeError("no free 10.244.N.0/24 for the node's pods")
    short = digest[:8]
    return NodeState(
        name=NODE_NAME, index=index, bridge=f"tkvbr{index}", pod_cidr=str(pods),
        gateway=str(pods.network_address + 1), service_cidr=str(services),
        # The API server's first Service IP is the `kubernetes` Service's, and its self-signed certificate
        # names it: pods verify TLS against it as on any cluster.
        service_ip=str(services.network_address + 1),
        # A unix socket path must stay under 108 bytes, which a deep checkout's platform dir may not.
        containerd_address=f"/run/tikv-platform/{short}/containerd.sock",
        cgroup_root=f"/tikv-platform-{short}", directory=str(directory / "node"),
    )


def controllers() -> list[str]:
    """The controller-manager's controllers a node adds to the platform's: Deployments run pods."""
    # nodelifecycle lifts the not-ready taint the kubelet registers its node with.
    return ["deployment", "replicaset", "nodelifecycle"]


# ---------------------------------------------------------------------------------------------------
# Starting


CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{address}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  enable_selinux = false
  # The kubelet asks for a negative oom_score_adj for every sandbox (-998); these VMs refuse any value below
  # 0 even to root. Restricting to containerd's own value (0) is what rootless nodes do.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"""

KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {address}
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz_port}
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
failSwapOn: false
oomScoreAdj: 0
# The machine's firewall is not the node's to manage (and would keep the kubelet's chains after `down`).
makeIPTablesUtilChains: false
staticPodPath: ""
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
# Images are imported, never pulled: the kubelet must not collect them as garbage.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
# Status every 2 s and probes from the first second: tests wait less for what a user waits for too.
nodeStatusUpdateFrequency: 2s
syncFrequency: 5s
"""


def cni_config(node: NodeState) -> dict[str, object]:
    return {
        "cniVersion": "0.4.0",
        "name": "tikv-platform",
        "plugins": [{
            "type": "bridge", "bridge": node.bridge, "isGateway": True, "isDefaultGateway": True, "ipMasq": False,
            "hairpinMode": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": node.pod_cidr, "gateway": node.gateway}]],
                     "dataDir": str(Path(node.directory) / "cni-ipam")},
        }, {"type": "portmap", "capabilities": {"portMappings": True}}],
    }


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def setup_network(node: NodeState) -> None:
    """The bridge exists before any pod: the forwarder listens on its addresses from the start."""
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip("link", "del", node.bridge)
    _ip("link", "add", node.bridge, "type", "bridge")
    prefix = ipaddress.ip_network(node.pod_cidr).prefixlen
    _ip("addr", "add", f"{node.gateway}/{prefix}", "dev", node.bridge)
    _ip("addr", "add", f"{node.service_ip}/32", "dev", node.bridge)
    _ip("link", "set", node.bridge, "up")


def setup_cgroups(node: NodeState) -> None:
    """The kubelet refuses a --cgroup-root that does not exist in every hierarchy; a root of its own keeps
    two nodes on one machine (and the machine's own processes) apart."""
    for hierarchy in _hierarchies():
        path = hierarchy / node.cgroup_root.lstrip("/")
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":  # a new cpuset starts empty and would accept no process
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (path / knob).write_text((hierarchy / knob).read_text())


def _hierarchies() -> list[Path]:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    return [Path(fields[1]) for fields in (line.split() for line in mounts)
            if fields[2] == "cgroup" and fields[1].startswith(str(CGROUP_FS))]


def write_configs(node: NodeState, kubelet_port: int, healthz_port: int) -> tuple[Path, Path]:
    root = Path(node.directory)
    for sub in ("containerd/root", "containerd/state", "cni", "cni-ipam", "kubelet", "kubelet-certs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    Path(node.containerd_address).parent.mkdir(parents=True, exist_ok=True)
    containerd = root / "containerd.toml"
    containerd.write_text(CONTAINERD_CONFIG.format(
        root=root / "containerd" / "root", state=root / "containerd" / "state", address=node.containerd_address,
        pause=PAUSE_IMAGE, cni_bin=CNI_BIN_DIR, cni_conf=root / "cni"))
    (root / "cni" / "10-tikv-platform.conflist").write_text(json.dumps(cni_config(node), indent=2) + "\n")
    kubelet = root / "kubelet.yaml"
    kubelet.write_text(KUBELET_CONFIG.format(address=node.gateway, port=kubelet_port, healthz_port=healthz_port,
                                             cgroup_root=node.cgroup_root))
    return containerd, kubelet


def ctr(node: NodeState, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ctr", "--address", node.containerd_address, "--namespace", "k8s.io", *args],
                          capture_output=True, text=True, check=check, timeout=120)


def kubelet_argv(bins: Path, node: NodeState, kubeconfig: str, config: Path) -> list[str]:
    root = Path(node.directory)
    return [
        str(bins / "kubelet"), f"--config={config}", f"--kubeconfig={kubeconfig}",
        "--container-runtime=remote", f"--container-runtime-endpoint=unix://{node.containerd_address}",
        f"--root-dir={root / 'kubelet'}", f"--cert-dir={root / 'kubelet-certs'}",
        f"--hostname-override={node.name}", f"--node-ip={node.gateway}",
        # --v=2 logs every pod it is given ("SyncLoop ADD"): `down` finds the pods' log folders there.
        "--v=2",
    ]


def scheduler_argv(bins: Path, kubeconfig: str) -> list[str]:
    return [str(bins / "kube-scheduler"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            "--port=0", "--secure-port=0"]


def node_ready(kubectl: Callable[..., subprocess.CompletedProcess[str]], name: str) -> bool:
    shown = kubectl("get", "node", name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
    return shown.returncode == 0 and shown.stdout.strip() == "True"


# ---------------------------------------------------------------------------------------------------
# Stopping: what the kubelet and containerd leave behind when they stop (a pod's processes outlive both)


def stop_pods(node: NodeState, log: Callable[[str], None]) -> None:
    """Kill every container and sandbox of this node's containerd. The kubelet must already be stopped (it
    would restart them)."""
    if not Path(node.containerd_address).exists():
        return
    listed = ctr(node, "containers", "list", "--quiet", check=False)
    ids = listed.stdout.split() if listed.returncode == 0 else []
    for container in ids:
        ctr(node, "tasks", "kill", "--signal", "SIGKILL", container, check=False)
    deadline = time.monotonic() + 15
    for container in ids:
        while time.monotonic() < deadline:
            gone = ctr(node, "tasks", "delete", container, check=False)
            if gone.returncode == 0 or "not found" in gone.stderr:
                break
            time.sleep(0.2)
        ctr(node, "containers", "delete", container, check=False)
    if ids:
        log(f"node: stopped {len(ids)} containers")


def pod_log_dirs(node: NodeState) -> list[str]:
    """The log folders of every pod this node's kubelet ran: it removes a deleted pod's folder only at its
    next garbage collection, which `down` does not wait for."""
    kubelet_log = Path(node.directory).parent / "logs" / "kubelet.log"
    text = kubelet_log.read_text(errors="replace") if kubelet_log.exists() else ""
    pods = {(namespace, name, uid) for name, namespace, uid in KUBELET_POD_REF.findall(text)}
    return [str(POD_LOG_DIR / f"{namespace}_{name}_{uid}") for namespace, name, uid in pods]


def pod_network_namespaces(node: NodeState) -> list[str]:
    """The network namespaces containerd made for this node's pods: those holding an address of its range
    (a stopped sandbox's namespace can outlive both the pod and containerd)."""
    pod_range = ipaddress.ip_network(node.pod_cidr)
    found = []
    for netns in Path("/var/run/netns").glob("cni-*"):
        shown = subprocess.run(["ip", "-n", netns.name, "-j", "-4", "addr"], capture_output=True, text=True,
                               check=False)
        if shown.returncode != 0:
            continue
        addresses = [a["local"] for link in json.loads(shown.stdout or "[]") for a in link.get("addr_info", [])]
        if any(ipaddress.ip_address(a) in pod_range for a in addresses):
            found.append(netns.name)
    return found


def cleanup_host(node: NodeState, log: Callable[[str], None]) -> None:
    """After every process stopped: shims that outlived containerd, mounts under the node's folders, the
    pods' network namespaces and log folders, the bridge, the cgroups."""
    for pid, cmdline in _processes():
        if "containerd-shim" in cmdline and node.containerd_address in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for name in pod_network_namespaces(node):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    for path in pod_log_dirs(node):
        shutil.rmtree(path, ignore_errors=True)
    unmounted = unmount_under(node.directory, str(Path(node.containerd_address).parent))
    if unmounted:
        log(f"node: unmounted {unmounted} leftover mounts")
    subprocess.run(["ip", "link", "del", node.bridge], capture_output=True, check=False)
    for hierarchy in _hierarchies():
        root = hierarchy / node.cgroup_root.lstrip("/")
        if root.is_dir():
            # Deepest first: a cgroup folder can only be removed once it has no children.
            for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    path.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()
    shutil.rmtree(Path(node.containerd_address).parent, ignore_errors=True)


def unmount_under(*folders: str) -> int:
    count = 0
    for _ in range(5):  # a mount can hide another one under it: repeat until nothing is left
        targets = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        mine = sorted({t for t in targets if any(t == f or t.startswith(f + "/") for f in folders)},
                      key=len, reverse=True)
        if not mine:
            break
        for target in mine:
            if subprocess.run(["umount", "-l", target], capture_output=True, check=False).returncode == 0:
                count += 1
    return count


def _processes() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
    return found

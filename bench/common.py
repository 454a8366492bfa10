"""What every benchmark shares: the platform, the simulator host process, the Kubernetes API, the
machine description and the results file."""

from __future__ import annotations

import contextlib
import json
import os
import platform as pyplatform
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from harness.platform import PlatformInfo, bring_up, platform_command, read_platform, wait_crds

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RESULTS_DIR = BENCH / "results"
RESULTS_FILE = BENCH / "RESULTS.md"
DEFAULT_PLATFORM_DIR = REPO / ".platform-bench"
RUN_DIR = Path(os.environ.get("BENCH_RUN_DIR") or Path(tempfile.gettempdir()) / "tikv-operator-bench")
# Order of the sections in RESULTS.md.
SECTIONS = ("check_cost", "detection_latency", "detection_latency_stacks", "api_writes", "scale", "query_cost",
            "delivery_cost", "failover", "soak")

T = TypeVar("T")


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def run_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def wait_for(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as error:
            last = error
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}"[:2000])
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------
# Load and machine


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def load_text(values: tuple[float, float, float] | None = None) -> str:
    one, five, fifteen = values or load()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _command(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except OSError:
        return "(unavailable)"


def machine_description() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": _command("nproc"),
        "cpu": model or pyplatform.processor(),
        "free -m": _command("free", "-m"),
        "python": sys.version.split()[0] + f" ({sys.executable})",
        "kernel": pyplatform.release(),
        "uptime": _command("uptime"),
        "commit": _command("git", "-C", str(REPO), "rev-parse", "--short", "HEAD"),
    }


# --------------------------------------------------------------------------------------------------
# The platform


@dataclass
class Platform:
    info: PlatformInfo
    owned: bool

    @property
    def env(self) -> dict[str, str]:
        return self.info.env()

    @property
    def prometheus_url(self) -> str:
        return self.info.prometheus_url

    @property
    def file_sd_dir(self) -> Path:
        return self.info.file_sd_dir

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True,
                                env=self.env, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {shlex.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
        return result

    def kube(self) -> KubeApi:
        return KubeApi.from_kubeconfig(Path(self.info.kubeconfig))


def platform_up() -> Platform:
    """The platform of TIKV_PLATFORM_DIR (default .platform-bench), brought up if needed, CRDs applied."""
    os.environ.setdefault("TIKV_PLATFORM_DIR", str(DEFAULT_PLATFORM_DIR))
    info = read_platform()
    owned = False
    if info is None:
        log(f"bringing up the platform in {os.environ['TIKV_PLATFORM_DIR']}")
        info = bring_up()
        owned = True
    result = Platform(info, owned)
    try:
        result.kubectl("apply", "-f", str(REPO / "crds"))
        wait_crds()
    except BaseException:
        platform_down(result)  # a platform this run brought up must not outlive its failure
        raise
    return result


def platform_down(platform: Platform) -> None:
    if platform.owned:
        log("bringing the platform down")
        platform_command("down", timeout=120)


# --------------------------------------------------------------------------------------------------
# The Kubernetes API, directly (bulk creation and deletion, polling)


@dataclass
class KubeApi:
    server: str
    ca_file: str
    token: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.server, verify=self.ca_file,
                                   headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeApi:
        config = yaml.safe_load(path.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        return cls(cluster["server"], cluster["certificate-authority"], user["token"])

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def path(namespace: str, plural: str, name: str = "", subresource: str = "") -> str:
        path = f"/apis/tikvops.io/v1alpha1/namespaces/{namespace}/{plural}"
        return path + (f"/{name}" if name else "") + (f"/{subresource}" if subresource else "")

    def list_objects(self, namespace: str, plural: str, selector: str = "") -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else {}
        response = self.client.get(self.path(namespace, plural), params=params)
        response.raise_for_status()
        return list(response.json()["items"])

    def create_namespace(self, name: str) -> None:
        response = self.client.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                                "metadata": {"name": name}})
        if response.status_code != 409:
            response.raise_for_status()

    def delete_namespace(self, name: str) -> None:
        self.client.delete(f"/api/v1/namespaces/{name}")

    def create_clusters(self, namespace: str, manifests: list[dict[str, Any]], concurrency: int = 16) -> None:
        """POST many TiKVClusters (a thread pool: kubectl apply of 1000 objects takes minutes)."""
        from concurrent.futures import ThreadPoolExecutor

        def create(manifest: dict[str, Any]) -> None:
            response = self.client.post(self.path(namespace, "tikvclusters"), json=manifest)
            if response.status_code != 409:
                response.raise_for_status()

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(create, manifests))

    def delete_all(self, namespace: str, plural: str, timeout: float = 120) -> int:
        """Delete every object of a kind; objects still held by a finalizer after `timeout` (no operator
        left to release them) get their finalizers removed. Returns how many needed that."""
        self.client.delete(self.path(namespace, plural))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.list_objects(namespace, plural):
                return 0
            time.sleep(1)
        left = self.list_objects(namespace, plural)
        from concurrent.futures import ThreadPoolExecutor

        def release(item: dict[str, Any]) -> None:
            self.client.patch(self.path(namespace, plural, item["metadata"]["name"]),
                              json={"metadata": {"finalizers": None}},
                              headers={"Content-Type": "application/merge-patch+json"})

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(release, left))
        return len(left)


def cluster_manifest(name: str, pd_url: str, prometheus_url: str, matchers: Mapping[str, str],
                     pd_timeout: str | None = "2s", prometheus_timeout: str | None = "5s", **spec: Any
                     ) -> dict[str, Any]:
    """A TiKVCluster; a timeout of None leaves the CRD's default (PD 5s, Prometheus 10s)."""
    pd: dict[str, Any] = {"url": pd_url}
    prometheus: dict[str, Any] = {"url": prometheus_url, "labelMatchers": dict(matchers)}
    if pd_timeout:
        pd["timeout"] = pd_timeout
    if prometheus_timeout:
        prometheus["timeout"] = prometheus_timeout
    return {"apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": name},
            "spec": {"pd": pd, "prometheus": prometheus, **spec}}


# --------------------------------------------------------------------------------------------------
# The simulator, in a process of its own (bench/sim_host.py)


@dataclass
class SimHost:
    process: subprocess.Popen[bytes]
    state: dict[str, Any]
    file_sd: Path | None

    @classmethod
    def start(cls, *, stores: int, clusters: int = 1, name: str = "bench", labels: Mapping[str, str] | None = None,
              file_sd: Path | None = None, fake_prometheus: bool = False, scrape_interval: str | None = None,
              heartbeat_interval: float = 0.5, disconnect_after: float = 1.5, down_after: float = 1800.0,
              max_seconds: float = 3600, grpc_series: str = "lean", timeout: float = 120) -> SimHost:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        state_file = RUN_DIR / f"sim-{secrets.token_hex(4)}.json"
        argv = [sys.executable, "-m", "bench.sim_host", "--stores", str(stores), "--clusters", str(clusters),
                "--name", name, "--state-file", str(state_file), "--heartbeat-interval", str(heartbeat_interval),
                "--disconnect-after", str(disconnect_after), "--max-seconds", str(max_seconds),
                "--down-after", str(down_after), "--grpc-series", grpc_series]
        for key, value in (labels or {}).items():
            argv += ["--label", f"{key}={value}"]
        if file_sd is not None:
            argv += ["--file-sd", str(file_sd)]
        if scrape_interval:
            argv += ["--scrape-interval", scrape_interval]
        if fake_prometheus:
            argv.append("--fake-prometheus")
        log_file = (RUN_DIR / f"{state_file.stem}.log").open("ab")
        process = subprocess.Popen(argv, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()

        def ready() -> dict[str, Any] | None:
            if process.poll() is not None:
                raise RuntimeError(f"bench.sim_host exited {process.returncode} (log {state_file.stem}.log)")
            return json.loads(state_file.read_text()) if state_file.exists() else None

        state = wait_for(ready, timeout, "the simulator host")
        return cls(process, dict(state or {}), file_sd)

    @property
    def clusters(self) -> list[dict[str, Any]]:
        return list(self.state["clusters"])

    @property
    def cluster_label(self) -> str:
        return str(self.state["cluster_label"])

    def matchers(self, cluster: str) -> dict[str, str]:
        """The labelMatchers that pick one simulated cluster's series out of the shared Prometheus."""
        return {**self.state["labels"], self.cluster_label: cluster}

    def instances(self) -> set[str]:
        return {s["instance"] for c in self.clusters for s in c["stores"]}

    def fault(self, **fault: Any) -> None:
        response = httpx.post(f"{self.state['control_url']}/api/v1/faults", json=fault, timeout=10)
        response.raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.file_sd is not None:
            self.file_sd.unlink(missing_ok=True)


@contextlib.contextmanager
def sim_host(**options: Any) -> Iterator[SimHost]:
    host = SimHost.start(**options)
    try:
        yield host
    finally:
        host.stop()


def wait_for_scrapes(prometheus_url: str, instances: set[str], label: tuple[str, str], timeout: float = 60,
                     samples: int = 2) -> None:
    """Wait until Prometheus has `samples` scrapes of every instance (rate() needs two points)."""
    key, value = label
    expr = f'count_over_time(up{{{key}="{value}"}}[1m]) >= {samples}'

    def enough() -> bool:
        response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
        seen = {r["metric"].get("instance", "") for r in response.json()["data"]["result"]}
        return instances <= seen

    wait_for(enough, timeout, f"{len(instances)} targets scraped {samples} times", interval=0.5)


# --------------------------------------------------------------------------------------------------
# The results file


def write_section(name: str, markdown: str) -> Path:
    """Store one benchmark's section and rebuild RESULTS.md from every section there is."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(markdown.rstrip() + "\n")
    render_results()
    return path


def render_results() -> None:
    machine = machine_description()
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/`. Each section below was measured by the command it names; "
        "`make bench` (or `.venv/bin/python -m bench.run_all`) runs them all and rewrites this file.",
        "",
        f"Machine at the time this file was written ({datetime.now(UTC):%Y-%m-%d %H:%M UTC}):",
        "",
        f"- `nproc`: {machine['nproc']} ({machine['cpu']}), kernel {machine['kernel']}",
        f"- Python {machine['python']}; commit {machine['commit']} (plus the uncommitted working tree)",
        f"- `uptime`: {machine['uptime']}",
        "- `free -m`:",
        "",
        "```",
        machine["free -m"],
        "```",
        "",
        "The machine is shared (another engineer's test runs use the same 2 cores): every figure has the",
        "`uptime` load averages (1 / 5 / 15 min) taken next to it; a 1-minute load above 2 means the",
        "benchmark competed for CPU.",
        "",
    ]
    for section in SECTIONS:
        path = RESULTS_DIR / f"{section}.md"
        if path.exists():
            lines += [path.read_text().rstrip(), ""]
            # Hand-written, dated notes on a section's figures (an investigation, what changed): kept across runs.
            notes = RESULTS_DIR / f"{section}.notes.md"
            if notes.exists():
                lines += [notes.read_text().rstrip(), ""]
        else:
            lines += [f"## {section}", "", f"(not run yet: `.venv/bin/python -m bench.{section}`)", ""]
    RESULTS_FILE.write_text("\n".join(lines).rstrip() + "\n")


def table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


_VERSIONS_AT_START: dict[str, str] = {}


def product_version() -> str:
    """The commit of the checkout, and whether the product's code (operator/) differs from it."""
    commit = _command("git", "-C", str(REPO), "rev-parse", "--short", "HEAD")
    dirty = _command("git", "-C", str(REPO), "status", "--porcelain", "--", "operator")
    return commit + (" with uncommitted changes in operator/" if dirty else " (operator/ as committed)")


def start(module: str) -> datetime:
    """Mark the start of a benchmark: its time, and the product version it measures."""
    _VERSIONS_AT_START[module] = product_version()
    return datetime.now(UTC)


def section_header(title: str, module: str, started: datetime, argv: list[str]) -> list[str]:
    command = ".venv/bin/python -m bench." + module + (" " + shlex.join(argv) if argv else "")
    before, after = _VERSIONS_AT_START.get(module, "unknown"), product_version()
    version = (f"Product: commit {after}." if before == after else
               f"WARNING: the product changed during this measurement ({before} -> {after}); the figures mix both.")
    return [f"## {title}", "", f"Measured {started:%Y-%m-%d %H:%M UTC}; reproduce with `{command}` "
            f"(the platform of `TIKV_PLATFORM_DIR`, default `.platform-bench`, is brought up if needed). {version}", ""]

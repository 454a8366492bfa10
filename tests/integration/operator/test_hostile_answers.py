"""Answers the operator must not trust whole: a PD that answers without end costs its own cluster a verdict,
never the process' memory or another cluster's ticket; a Prometheus that answers partially resolves nothing."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from harness.hostile_pd import STORE, HostilePD
from harness.kube import Cli
from harness.operator_process import OperatorProcess, SimulatedCluster, open_tickets, still, wait_for_ticket

MIB = 1024 * 1024
CHART_MEMORY_LIMIT = 256 * MIB  # charts/tikv-operator's resources.limits.memory
HOSTILE_ANSWER = 300 * MIB
BIG_VALID_ANSWER = 30 * MIB  # just under the operator's 32 MiB cap per answer


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def endless_pd() -> Iterator[str]:
    """A PD whose /stores answer is 300 MiB of valid-looking stores (sent as fast as it is read)."""
    pd = HostilePD("huge", huge_bytes=HOSTILE_ANSWER).start()
    yield pd.url
    pd.stop()


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_a_pd_answering_without_end_costs_neither_memory_nor_another_clusters_ticket(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
    endless_pd: str,
) -> None:
    assert operator.process is not None
    peak = [_rss_bytes(operator.process.pid)]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.2):
            peak.append(_rss_bytes(operator.process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        kubectl.apply({
            "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": "hostile"},
            "spec": {"interval": "1s", "pd": {"url": endless_pd, "timeout": "30s"},
                     "prometheus": {"url": "http://127.0.0.1:9", "timeout": "1s"}},
        })
        make_cluster(tikv.pd_url, name="a")
        time.sleep(3)  # the hostile cluster's checks are under way
        tikv.fault(kind="disk", store=2, percent=90)
        disk = wait_for_ticket(kubectl, "low_disk_space", "2", timeout=25)
        assert disk["spec"]["cluster"] == "a"

        def hostile_verdict() -> str:
            conditions = {c["type"]: c for c in kubectl.json("get", "tkc", "hostile").get("status", {})
                          .get("conditions", [])}
            return str(conditions.get("PDReachable", {}).get("message", ""))

        deadline = time.monotonic() + 30
        while "answer too large" not in hostile_verdict() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        sampling.set()
        sampler.join(timeout=5)

    assert max(peak) < CHART_MEMORY_LIMIT, f"the operator's RSS peaked at {max(peak) / MIB:.0f} MiB"
    assert "GET /pd/api/v1/stores: answer too large: it exceeded 32 MiB" in hostile_verdict()


def _peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.fixture
def big_valid_pd() -> Iterator[str]:
    """A PD whose /stores answer is 30 MiB of valid JSON: tens of thousands of stores, each as PD lists one."""
    one = json.dumps(STORE)
    count = BIG_VALID_ANSWER // (len(one) + 1)
    stores = ",".join(one.replace('"id": 1,', f'"id": {number},', 1) for number in range(1, count + 1))
    body = f'{{"count": {count}, "stores": [{stores}]}}'.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the operator stopped reading: its choice
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server, url = _serve(Handler)
    yield url
    server.shutdown()
    server.server_close()


def test_big_valid_pd_answers_of_several_clusters_cost_neither_memory_nor_another_clusters_ticket(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
    big_valid_pd: str,
) -> None:
    assert operator.process is not None
    hostile = [f"big-{number}" for number in range(4)]
    for name in hostile:
        kubectl.apply({
            "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": name},
            "spec": {"interval": "1s", "pd": {"url": big_valid_pd, "timeout": "20s"},
                     "prometheus": {"url": "http://127.0.0.1:9", "timeout": "1s"}},
        })
    make_cluster(tikv.pd_url, name="a")
    time.sleep(3)  # the big clusters' checks are under way
    tikv.fault(kind="disk", store=2, percent=90)
    disk = wait_for_ticket(kubectl, "low_disk_space", "2", timeout=30)
    assert disk["spec"]["cluster"] == "a"

    def verdicts() -> list[str]:
        found = []
        for name in hostile:
            conditions = {c["type"]: c for c in kubectl.json("get", "tkc", name).get("status", {})
                          .get("conditions", [])}
            found.append(str(conditions.get("PDReachable", {}).get("message", "")))
        return found

    deadline = time.monotonic() + 60
    while not all("answer too large" in v or "waited for memory" in v for v in verdicts()) \
            and time.monotonic() < deadline:
        time.sleep(1)
    peak = _peak_rss_bytes(operator.process.pid)
    assert peak < CHART_MEMORY_LIMIT, f"the operator's RSS peaked at {peak / MIB:.0f} MiB"
    assert all("answer too large" in v or "waited for memory" in v for v in verdicts()), verdicts()


@pytest.fixture
def partial_prometheus() -> Iterator[dict[str, str]]:
    """A Thanos-like query API: the custom expression answers per `mode`: one series ("firing"), an empty
    result with `warnings` ("partial", a store down), or an empty result ("empty"); other queries: empty."""
    state = {"mode": "firing"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer: dict[str, Any] = {"status": "success", "data": {"resultType": "vector", "result": []}}
            if "hostile_custom_metric" in self.path:
                if state["mode"] == "firing":
                    series = {"tikvops_check": "custom/replicas_missing"}  # what the label_replace adds
                    answer["data"]["result"] = [{"metric": series, "value": [time.time(), "1"]}]
                elif state["mode"] == "partial":
                    answer["warnings"] = ["No StoreAPIs matched for this query: store 10.0.0.7:10901 is down"]
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server, url = _serve(Handler)
    state["url"] = url
    yield state
    server.shutdown()
    server.server_close()


def test_a_partial_prometheus_answer_with_an_empty_result_resolves_nothing(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, partial_prometheus: dict[str, str],
) -> None:
    kubectl.apply({
        "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": "thanos"},
        "spec": {"interval": "1s", "pd": {"url": tikv.pd_url},
                 "prometheus": {"url": partial_prometheus["url"], "timeout": "2s"},
                 "customInvariants": [{"name": "replicas_missing", "expr": "hostile_custom_metric > 0"}]},
    })
    opened = wait_for_ticket(kubectl, "replicas_missing", timeout=30)

    partial_prometheus["mode"] = "partial"
    still(lambda: [t["metadata"]["name"] for t in open_tickets(kubectl, "replicas_missing")]
          == [opened["metadata"]["name"]], seconds=8)
    conditions = {c["type"]: c for c in kubectl.json("get", "tkc", "thanos")["status"]["conditions"]}
    assert "Prometheus answered partially" in conditions["CustomInvariants"]["message"], conditions

    partial_prometheus["mode"] = "empty"  # the same empty result, whole: now it resolves
    deadline = time.monotonic() + 30
    while open_tickets(kubectl, "replicas_missing") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert open_tickets(kubectl, "replicas_missing") == []

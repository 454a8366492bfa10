"""One slow or hostile Prometheus delays only its own clusters: a Prometheus that trickles its answers
(each read quick, the answer never complete) for clusters B1..B4 does not blind cluster A."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from harness.kube import Cli
from harness.operator_process import OperatorProcess, SimulatedCluster, open_tickets, still, wait_for_ticket

CLOSED = "http://127.0.0.1:9"


@pytest.fixture
def trickling_prometheus() -> Iterator[str]:
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            deadline = time.monotonic() + 120
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    stop.wait(0.2)
            except OSError:
                pass  # the operator gave up: that is the point

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop.set()
    server.shutdown()
    server.server_close()


def test_a_trickling_prometheus_for_other_clusters_does_not_blind_this_one(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
    trickling_prometheus: str,
) -> None:
    for index in range(1, 5):
        kubectl.apply({
            "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": f"b{index}"},
            "spec": {"interval": "1s", "pd": {"url": CLOSED, "timeout": "1s"},
                     "prometheus": {"url": trickling_prometheus, "timeout": "1s"}},
        })
    # Long enough for the B clusters to hold every thread of a shared pool (2 queries a second each).
    time.sleep(12)
    make_cluster(tikv.pd_url, name="a", invariants={"prometheus_unreachable": {"gracePeriod": "1s"}})

    tikv.fault(kind="disk", store=2, percent=90)
    disk = wait_for_ticket(kubectl, "low_disk_space", "2", timeout=20)

    assert disk["spec"]["cluster"] == "a"
    still(lambda: [t for t in open_tickets(kubectl, "prometheus_unreachable") if t["spec"]["cluster"] == "a"] == [],
          seconds=5)
    conditions = {c["type"]: c for c in kubectl.json("get", "tkc", "a")["status"]["conditions"]}
    assert conditions["PrometheusReachable"]["status"] == "True", conditions["PrometheusReachable"]
    b1 = {c["type"]: c for c in kubectl.json("get", "tkc", "b1")["status"]["conditions"]}
    assert b1["PrometheusReachable"]["status"] == "False"
    assert "no answer within 1s" in b1["PrometheusReachable"]["message"]

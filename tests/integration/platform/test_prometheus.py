"""The platform's Prometheus scrapes a local HTTP endpoint and answers PromQL with its value."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from harness.kube import eventually
from harness.prometheus import Prometheus, ScrapeTargets

EXPOSITION = b"""# HELP smoke_answer A gauge the smoke test sets.
# TYPE smoke_answer gauge
smoke_answer{kind="gauge"} 42.5
"""


class MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(EXPOSITION)))
        self.end_headers()
        self.wfile.write(EXPOSITION)

    def log_message(self, format: str, *args: object) -> None:
        pass  # scrapes every second would drown the test output


@pytest.fixture
def metrics_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_prometheus_scrapes_a_target_and_answers_an_instant_query(
    prometheus: Prometheus, prom_targets: ScrapeTargets, metrics_endpoint: str
) -> None:
    prom_targets.write([{"targets": [metrics_endpoint], "labels": {"component": "smoke"}}])

    prometheus.wait_for_targets({metrics_endpoint})
    test_id = prom_targets.labels["test_id"]
    result = eventually(lambda: prometheus.query(f'smoke_answer{{test_id="{test_id}"}}'),
                        timeout=15, what="the scraped sample to be queryable")

    assert len(result) == 1
    assert result[0]["metric"] == {
        "__name__": "smoke_answer", "kind": "gauge", "component": "smoke",
        "instance": metrics_endpoint, "job": "targets", "test_id": test_id,
    }
    assert float(result[0]["value"][1]) == 42.5

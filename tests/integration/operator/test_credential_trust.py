"""The confused deputy: whoever may create a TiKVCluster may name any Secret of its namespace and point
prometheus.url at their own server. The operator sends only Secrets labelled tikvops.io/credentials=true,
never a ServiceAccount token, and says so on the TiKVCluster."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.kube import Cli, eventually
from tests.support.operator import OperatorProcess

CLOSED = "http://127.0.0.1:9"


class Recorder:
    """A server that answers like an empty Prometheus and keeps the Authorization header of every request."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.authorizations.append(self.headers.get("Authorization"))
                body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def cluster(name: str, prometheus_url: str, secret: str) -> dict[str, Any]:
    return {
        "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": name},
        "spec": {"interval": "1s", "pd": {"url": CLOSED, "timeout": "1s"},
                 "prometheus": {"url": prometheus_url, "timeout": "2s", "authSecret": {"name": secret}}},
    }


def prometheus_condition(kubectl: Cli, name: str) -> dict[str, Any] | None:
    conditions = kubectl.json("get", "tkc", name).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "PrometheusReachable"), None)


def test_a_secret_that_did_not_opt_in_or_a_service_account_token_is_never_sent(
    kubectl: Cli, operator: OperatorProcess, recorder: Recorder,
) -> None:
    kubectl("create", "secret", "generic", "plain", "--from-literal=token=PLAIN-TOKEN-VALUE")
    kubectl.apply({
        "apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "sa-token", "labels": {"tikvops.io/credentials": "true"},
            "annotations": {"kubernetes.io/service-account.name": "default"}},
        "type": "kubernetes.io/service-account-token",
    })
    eventually(lambda: "token" in (kubectl.json("get", "secret", "sa-token").get("data") or {}), timeout=30,
               what="the token controller to fill the ServiceAccount token")
    kubectl.apply(cluster("plain", recorder.url, "plain"))
    kubectl.apply(cluster("satoken", recorder.url, "sa-token"))

    for name, reason in (("plain", "is not labelled tikvops.io/credentials=true"),
                         ("satoken", "is a ServiceAccount token")):
        condition = eventually(lambda n=name: prometheus_condition(kubectl, n), timeout=30,
                               what=f"PrometheusReachable on {name}")
        assert condition["status"] == "False"
        assert reason in condition["message"], condition
    sa_token = base64.b64decode(kubectl.json("get", "secret", "sa-token")["data"]["token"]).decode()
    assert recorder.authorizations == [], "the operator contacted the recording server"
    assert sa_token not in operator.log()
    assert "PLAIN-TOKEN-VALUE" not in operator.log()

    # The owner opts the Secret in: now, and only now, it is sent.
    kubectl("label", "secret", "plain", "tikvops.io/credentials=true")
    eventually(lambda: "Bearer PLAIN-TOKEN-VALUE" in recorder.authorizations, timeout=30,
               what="the opted-in token to reach Prometheus")
    assert not any(sa_token in (header or "") for header in recorder.authorizations)

"""--verbose is the operator's own debug log, never the Kubernetes client's response bodies: an opted-in
Secret in use appears in no log line, neither in clear nor in base64."""

from __future__ import annotations

import base64
from collections.abc import Callable

from harness.kube import Cli, eventually
from harness.operator_process import OperatorProcess

from tests.support.recording_prometheus import Recorder

TOKEN = "VERBOSE-TOKEN-VALUE-5f1c"


def test_a_verbose_log_holds_no_opted_in_secret(
    kubectl: Cli, start_operator: Callable[..., OperatorProcess], recorder: Recorder,
) -> None:
    operator = start_operator(extra_args=("--verbose",))
    kubectl.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "prom-auth", "labels": {"tikvops.io/credentials": "true"}},
                   "stringData": {"token": TOKEN}})
    kubectl.apply({
        "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": "verbose"},
        "spec": {"interval": "1s", "pd": {"url": "http://127.0.0.1:9", "timeout": "1s"},
                 "prometheus": {"url": recorder.url, "timeout": "2s", "authSecret": {"name": "prom-auth"}}},
    })
    eventually(lambda: f"Bearer {TOKEN}" in recorder.authorizations, timeout=30,
               what="the opted-in token to reach Prometheus")
    log = operator.log()
    assert "DEBUG" in log or "debug" in log.lower(), "the operator's own debug lines are there"
    encoded = base64.b64encode(TOKEN.encode()).decode()
    assert TOKEN not in log, "the token in clear in the verbose log"
    assert encoded not in log, "the token in base64 in the verbose log"

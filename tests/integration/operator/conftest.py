"""Fixtures of the end-to-end operator tests: the operator process, a simulated cluster, its TiKVCluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.kube import Cli
from harness.operator_process import (
    OperatorProcess,
    SimulatedCluster,
    cluster_manifest,
    start_simulated_cluster,
)
from harness.platform import PlatformInfo
from harness.prometheus import Prometheus, ScrapeTargets

from tests.support.recording_prometheus import Recorder, recording

StartOperator = Callable[..., OperatorProcess]


@pytest.fixture
def start_operator(platform: PlatformInfo, namespace: str, kubectl: Cli, tmp_path: Path, tikvops_crds: None
                   ) -> Iterator[StartOperator]:
    """Start `tikv-operator run -n <test namespace>`; every process started is stopped with SIGTERM
    at the end, and must exit 0 without a traceback. TiKVClusters are deleted while an operator still
    runs, so it releases its finalizer as it would in a real cluster."""
    started: list[OperatorProcess] = []

    def start(**options: Any) -> OperatorProcess:
        log = tmp_path / f"operator-{len(started) + 1}.log"
        process = OperatorProcess(platform.env(), (namespace,), log, **options).start()
        started.append(process)
        return process

    yield start
    if any(p.process is not None and p.process.poll() is None for p in started):
        kubectl("delete", "tikvclusters", "--all", "--timeout=30s", check=False)
    for process in started:
        if process.process is not None and process.process.poll() is None:
            code = process.stop()
            log = process.log()
            assert code == 0, f"the operator exited {code} on SIGTERM:\n{log}"
            assert "Traceback" not in log, log


@pytest.fixture
def operator(start_operator: StartOperator) -> OperatorProcess:
    return start_operator()


@pytest.fixture
def tikv(prometheus: Prometheus, prom_targets: ScrapeTargets) -> Iterator[SimulatedCluster]:
    cluster = start_simulated_cluster(prometheus, prom_targets)
    yield cluster
    cluster.sim.__exit__(None, None, None)


@pytest.fixture
def make_cluster(kubectl: Cli, prometheus: Prometheus, prom_targets: ScrapeTargets
                 ) -> Callable[..., dict[str, Any]]:
    """Apply a TiKVCluster watching `pd_url` through the platform's Prometheus (scoped to this test)."""

    def make(pd_url: str, name: str = "basic", **spec: Any) -> dict[str, Any]:
        manifest = cluster_manifest(name, pd_url, prometheus.url, prom_targets.labels, **spec)
        kubectl.apply(manifest)
        return manifest

    return make


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """An empty Prometheus that records the Authorization header of every request."""
    with recording() as server:
        yield server

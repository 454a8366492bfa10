"""Fixtures of the simulator's integration tests."""

from collections.abc import Iterator

import pytest
from harness.prometheus import Prometheus, ScrapeTargets, kubernetes_targets

from tests.support.plugin import test_id


@pytest.fixture
def kube_targets(request: pytest.FixtureRequest, prometheus: Prometheus) -> Iterator[ScrapeTargets]:
    """This test's file for the platform's kubernetes-pods job (ServiceMonitor-style relabelling)."""
    targets = kubernetes_targets(prometheus, test_id(request))
    yield targets
    targets.remove()

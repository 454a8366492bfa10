"""Pytest fixtures for integration tests on the real local platform.

Loaded for every run through `-p tests.support.plugin` (pyproject.toml).

- `platform` (session): the platform of TIKV_PLATFORM_DIR; brought up (and down at the end) when it is
  not already running. When it cannot be had, the tests that need it are skipped on a developer's
  machine and FAIL with CI=true: missing infrastructure never passes silently in CI.
- `kubectl_admin` (session) / `kubectl` (per test, bound to a fresh namespace) / `helm` (per test).
- `namespace` (per test): a fresh namespace; at teardown its custom resources are deleted first (their
  finalizers removed if no controller is left to do it), then the namespace.
- `prometheus` (session) and `prom_targets` (per test): the real Prometheus and one test's scrape targets.
- `alertmanager` (session): the platform's real Alertmanager and its webhook log (shared: filter by labels);
  `private_alertmanager` (per test): one of the test's own, to stop and restart; always stopped at teardown.
- `tidb_crds` (session, from tests.support.tidb_operator): tidb-operator's TidbCluster and TidbMonitor CRDs;
  `tidb_v2_crds` (session, from tests.support.tidb_operator_v2): v2's Cluster, groups and instances.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.kube import Cli, eventually
from harness.platform import (
    REPO,
    PlatformInfo,
    PlatformUnavailable,
    bring_up,
    platform_command,
    read_platform,
    wait_crds,
)
from harness.prometheus import Prometheus, ScrapeTargets

from tests.support.alertmanager import Alertmanager, PrivateAlertmanager, start_private_alertmanager

# More fixtures, in modules of their own: tidb_crds and tidb_v2_crds (tidb-operator v1 and v2 CRDs, reduced).
pytest_plugins = ["tests.support.tidb_operator", "tests.support.tidb_operator_v2"]

INTEGRATION_DIRS = (Path(__file__).resolve().parents[1] / "integration", Path(__file__).resolve().parents[1] / "node")
CR_DELETE_TIMEOUT_S = 20.0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if set(INTEGRATION_DIRS) & set(Path(str(item.fspath)).resolve().parents):
            item.add_marker(pytest.mark.integration)


def unavailable(why: str, command: str = "hack/platform up") -> None:
    """Missing infrastructure: a failure with CI=true, a skip that names the command elsewhere."""
    if in_ci():
        pytest.fail(f"CI=true and the platform is unavailable: {why}", pytrace=False)
    pytest.skip(f"the local platform is unavailable (run `{command}`): {why}")


def provide_platform(*up_options: str) -> Iterator[PlatformInfo]:
    """The running platform, or one brought up with `up_options` (and down at the end)."""
    info = read_platform()
    owned = False
    if info is None:
        try:
            info = bring_up(*up_options)
            owned = True
        except PlatformUnavailable as error:
            unavailable(str(error), " ".join(("hack/platform up", *up_options)))
    assert info is not None
    yield info
    if owned:
        platform_command("down", timeout=180)


@pytest.fixture(scope="session")
def platform() -> Iterator[PlatformInfo]:
    yield from provide_platform()


@pytest.fixture(scope="session")
def kubectl_admin(platform: PlatformInfo) -> Cli:
    return Cli("kubectl", platform.env())


def test_id(request: pytest.FixtureRequest) -> str:
    """A DNS-label-safe name unique to this test invocation."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"t-{base}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kubectl_admin: Cli) -> Iterator[str]:
    name = test_id(request)
    kubectl_admin("create", "namespace", name)
    yield name
    delete_custom_resources(kubectl_admin, name)
    kubectl_admin("delete", "namespace", name, "--wait=false", check=False)


def delete_custom_resources(kubectl: Cli, namespace: str) -> None:
    crds = kubectl.json("get", "customresourcedefinitions")["items"]
    kinds = ",".join(
        f"{c['spec']['names']['plural']}.{c['spec']['group']}" for c in crds if c["spec"]["scope"] == "Namespaced"
    )
    if not kinds:
        return
    ns = kubectl.in_namespace(namespace)
    ns("delete", kinds, "--all", "--wait=false", check=False)

    def remaining() -> list[str]:
        return ns("get", kinds, "-o", "name", check=False).stdout.split()

    try:
        eventually(lambda: not remaining(), timeout=CR_DELETE_TIMEOUT_S, what="custom resources to go")
    except AssertionError:
        # No controller is left to release them (a kopf operator puts a finalizer on what it watches).
        for name in remaining():
            ns("patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)


@pytest.fixture
def kubectl(kubectl_admin: Cli, namespace: str) -> Cli:
    return kubectl_admin.in_namespace(namespace)


@pytest.fixture
def helm(platform: PlatformInfo, namespace: str) -> Cli:
    return Cli("helm", platform.env(), namespace, timeout=120)


@pytest.fixture(scope="session")
def prometheus(platform: PlatformInfo) -> Prometheus:
    return Prometheus(url=platform.prometheus_url, file_sd_dir=platform.file_sd_dir)


@pytest.fixture
def prom_targets(request: pytest.FixtureRequest, prometheus: Prometheus) -> Iterator[ScrapeTargets]:
    name = test_id(request)
    targets = ScrapeTargets(path=prometheus.file_sd_dir / f"{name}.json", labels={"test_id": name})
    yield targets
    targets.remove()


@pytest.fixture(scope="session")
def alertmanager(platform: PlatformInfo) -> Alertmanager:
    return Alertmanager(url=platform.alertmanager_url, webhook_log=platform.alertmanager_webhook_log,
                        amtool_bin=str(platform.bin_dir / "amtool"))


@pytest.fixture
def private_alertmanager(platform: PlatformInfo, tmp_path: Path) -> Iterator[PrivateAlertmanager]:
    # `platform`: its `up` provisioned the alertmanager and amtool links the private one runs.
    with start_private_alertmanager(tmp_path / "private-alertmanager") as private:
        yield private


@pytest.fixture(scope="session")
def tikvops_crds(kubectl_admin: Cli) -> None:
    """The project's CRDs, applied from crds/ as a person would (kubectl apply -f crds/)."""
    kubectl_admin("apply", "-f", str(REPO / "crds"))
    wait_crds()
    # kubectl validates against the published OpenAPI, which lags the Established condition a little.
    for kind in ("tikvcluster", "operatorticket"):
        eventually(lambda kind=kind: kubectl_admin("explain", kind, check=False).returncode == 0,
                   timeout=30, what=f"the {kind} schema to be published")

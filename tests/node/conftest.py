"""Fixtures for the tests that run the operator's image as pods on the platform's kubelet node.

- `platform` (session, overrides the plugin's): a platform with a node (`hack/platform up --with-node`),
  brought up (and down) when none runs. A running platform without a node fails them with CI=true and skips
  them elsewhere, with the command that gives one.
- `operator_image` (session): the image built from the repository's Dockerfile with buildah (`hack/image
  build`, cached per machine) and imported into the node's containerd (`hack/image load`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from tests.support.platform import REPO, PlatformInfo, PlatformUnavailable, bring_up, platform_command, read_platform
from tests.support.plugin import in_ci

IMAGE = "localhost/tikv-operator:dev"
IMAGE_TIMEOUT_S = 900  # a fresh machine makes the base (debootstrap) and installs uv.lock's packages


def _unavailable(why: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and the node platform is unavailable: {why}", pytrace=False)
    pytest.skip(f"needs a platform with a node (hack/platform up --with-node): {why}")


@pytest.fixture(scope="session")
def platform() -> Iterator[PlatformInfo]:
    info = read_platform()
    owned = False
    if info is None:
        try:
            info = bring_up("--with-node")
            owned = True
        except PlatformUnavailable as error:
            _unavailable(str(error))
    assert info is not None
    if not info.has_node:
        _unavailable(f"the platform of {info.directory} runs without a node")
    yield info
    if owned:
        platform_command("down", timeout=180)


@pytest.fixture(scope="session")
def operator_image(platform: PlatformInfo) -> str:
    for step in ("build", "load"):
        done = subprocess.run([str(REPO / "hack" / "image"), step, "--tag", IMAGE], env=platform.env(),
                              capture_output=True, text=True, timeout=IMAGE_TIMEOUT_S, check=False)
        assert done.returncode == 0, f"hack/image {step} failed:\n{done.stderr[-3000:]}"
    return IMAGE

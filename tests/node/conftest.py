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
from harness.platform import REPO, PlatformInfo
from tests.support.plugin import provide_platform, unavailable

IMAGE = "localhost/tikv-operator:dev"
IMAGE_TIMEOUT_S = 900  # a fresh machine makes the base (debootstrap) and installs uv.lock's packages


@pytest.fixture(scope="session")
def platform() -> Iterator[PlatformInfo]:
    for info in provide_platform("--with-node"):
        if not info.has_node:
            unavailable(f"the platform of {info.directory} runs without a node", "hack/platform up --with-node")
        yield info


@pytest.fixture(scope="session")
def operator_image(platform: PlatformInfo) -> str:
    for step in ("build", "load"):
        done = subprocess.run([str(REPO / "hack" / "image"), step, "--tag", IMAGE], env=platform.env(),
                              capture_output=True, text=True, timeout=IMAGE_TIMEOUT_S, check=False)
        assert done.returncode == 0, f"hack/image {step} failed:\n{done.stderr[-3000:]}"
    return IMAGE

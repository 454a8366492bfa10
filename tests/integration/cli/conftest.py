"""Fixtures for running the installed `tikv-operator` console script against the platform's API server."""

from __future__ import annotations

import base64
import json
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.kube import Cli, eventually
from harness.platform import PlatformInfo

TIKV_OPERATOR = str(Path(sys.executable).parent / "tikv-operator")

Kubeconfig = Callable[..., Path]


@pytest.fixture
def tikv_operator(platform: PlatformInfo, namespace: str, tikvops_crds: None) -> Cli:
    """`tikv-operator` with the user's environment (KUBECONFIG of the platform), bound to the test namespace."""
    return Cli(TIKV_OPERATOR, platform.env(), namespace)


@pytest.fixture
def kubeconfig(platform: PlatformInfo, tmp_path: Path) -> Kubeconfig:
    """A copy of the platform's kubeconfig with changes: kubeconfig(namespace=..., token=..., server=...)."""

    def make(*, namespace: str | None = None, token: str | None = None, server: str | None = None) -> Path:
        config: dict[str, Any] = json.loads(Path(platform.kubeconfig).read_text())
        context = config["contexts"][0]["context"]
        if namespace is None:
            context.pop("namespace", None)
        else:
            context["namespace"] = namespace
        if token is not None:
            config["users"][0]["user"]["token"] = token
        if server is not None:
            config["clusters"][0]["cluster"]["server"] = server
        path = tmp_path / f"kubeconfig-{len(list(tmp_path.glob('kubeconfig-*')))}"
        path.write_text(json.dumps(config))
        return path

    return make


def cli_with_kubeconfig(platform: PlatformInfo, path: Path) -> Cli:
    """`tikv-operator` as a user whose KUBECONFIG is `path` (no namespace flag added)."""
    return Cli(TIKV_OPERATOR, {**platform.env(), "KUBECONFIG": str(path)})


@pytest.fixture
def service_account_token(kubectl: Cli) -> str:
    """The token of a new ServiceAccount that no Role grants anything (1.20 still makes token Secrets)."""
    kubectl("create", "serviceaccount", "nobody")

    def secret_name() -> str:
        secrets = kubectl.json("get", "serviceaccount", "nobody").get("secrets") or []
        return str(secrets[0]["name"]) if secrets else ""

    name = eventually(secret_name, timeout=30, what="the ServiceAccount token Secret")
    encoded = eventually(lambda: kubectl.json("get", "secret", name)["data"].get("token"), timeout=30,
                         what="the token in its Secret")
    return base64.b64decode(encoded).decode()


@pytest.fixture
def refused_server() -> Iterator[str]:
    """An https URL on 127.0.0.1 where nothing accepts connections (the port is held, never listened on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield f"https://127.0.0.1:{held.getsockname()[1]}"

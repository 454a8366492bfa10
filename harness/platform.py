"""Finding (or bringing up) the local platform that integration tests run against."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLATFORM = REPO / "hack" / "platform"


class PlatformUnavailable(Exception):
    """The platform could not be found or started; the message says why."""


# What `hack/platform env` exports (its --json form adds APISERVER_URL and BIN_DIR).
EXPORTED = ("KUBECONFIG", "PATH", "PROMETHEUS_URL", "PROMETHEUS_FILE_SD_DIR", "ALERTMANAGER_URL",
            "ALERTMANAGER_WEBHOOK_LOG", "TIKV_PLATFORM_DIR", "KUBE_AUDIT_LOG", "PROMETHEUS_RELEASE",
            "ALERTMANAGER_RELEASE")
# What it adds when the platform has a node (`hack/platform up --with-node`).
NODE_EXPORTED = ("NODE_NAME", "NODE_HOST_ADDRESS", "NODE_POD_CIDR", "CONTAINERD_ADDRESS")


@dataclass(frozen=True)
class PlatformInfo:
    exports: dict[str, str]

    @property
    def kubeconfig(self) -> str:
        return self.exports["KUBECONFIG"]

    @property
    def prometheus_url(self) -> str:
        return self.exports["PROMETHEUS_URL"]

    @property
    def file_sd_dir(self) -> Path:
        return Path(self.exports["PROMETHEUS_FILE_SD_DIR"])

    @property
    def alertmanager_url(self) -> str:
        return self.exports["ALERTMANAGER_URL"]

    @property
    def alertmanager_webhook_log(self) -> Path:
        """One JSON line per notification Alertmanager sent to the platform's webhook receiver."""
        return Path(self.exports["ALERTMANAGER_WEBHOOK_LOG"])

    @property
    def audit_log(self) -> Path:
        """The API server's audit log: one JSON line per write to tikvops.io objects, Events and Leases."""
        return Path(self.exports["KUBE_AUDIT_LOG"])

    @property
    def bin_dir(self) -> Path:
        return Path(self.exports["BIN_DIR"])

    @property
    def prometheus_release(self) -> str:
        """hack/stacks.py's name of the release that runs (e.g. "3.5", "victoriametrics")."""
        return self.exports["PROMETHEUS_RELEASE"]

    @property
    def alertmanager_release(self) -> str:
        return self.exports["ALERTMANAGER_RELEASE"]

    @property
    def directory(self) -> Path:
        return Path(self.exports["TIKV_PLATFORM_DIR"])

    @property
    def has_node(self) -> bool:
        return "NODE_NAME" in self.exports

    @property
    def node_host_address(self) -> str:
        """The machine as the node's pods reach it: the simulator listens here; Prometheus and Alertmanager
        are relayed here on their own ports."""
        return self.exports["NODE_HOST_ADDRESS"]

    @property
    def containerd_address(self) -> str:
        return self.exports["CONTAINERD_ADDRESS"]

    def env(self) -> dict[str, str]:
        """The environment a user gets after `eval "$(hack/platform env)"`."""
        keys = EXPORTED + (NODE_EXPORTED if self.has_node else ())
        return {**os.environ, **{key: self.exports[key] for key in keys}}


def platform_command(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PLATFORM), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def wait_crds(*names: str) -> None:
    """CRDs (default: the project's) Established, by `hack/platform wait-crds`: it polls, because `kubectl wait`
    fails at once on a CRD created a moment ago."""
    result = platform_command("wait-crds", *names, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"hack/platform wait-crds {' '.join(names)}: {result.stderr.strip()}")


def read_platform() -> PlatformInfo | None:
    """The running platform of TIKV_PLATFORM_DIR, or None when it is not up."""
    if platform_command("status", timeout=60).returncode != 0:
        return None
    result = platform_command("env", "--json", timeout=60)
    if result.returncode != 0:
        return None
    return PlatformInfo(exports=json.loads(result.stdout))


def bring_up(*options: str) -> PlatformInfo:
    result = platform_command("up", *options)
    if result.returncode != 0:
        raise PlatformUnavailable(f"hack/platform up failed:\n{result.stderr[-4000:]}")
    info = read_platform()
    if info is None:
        raise PlatformUnavailable("hack/platform up succeeded but the platform does not report itself up")
    return info

"""Finding (or bringing up) the local platform that integration tests run against."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLATFORM = REPO / "hack" / "platform"


class PlatformUnavailable(Exception):
    """The platform could not be found or started; the message says why."""


@dataclass(frozen=True)
class PlatformInfo:
    kubeconfig: str
    prometheus_url: str
    file_sd_dir: Path
    bin_dir: Path
    apiserver_url: str
    directory: Path

    def env(self) -> dict[str, str]:
        """The environment a user gets after `eval "$(hack/platform env)"`."""
        return {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PROMETHEUS_URL": self.prometheus_url,
        }


def platform_command(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PLATFORM), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def read_platform() -> PlatformInfo | None:
    """The running platform of TIKV_PLATFORM_DIR, or None when it is not up."""
    if platform_command("status", timeout=60).returncode != 0:
        return None
    result = platform_command("env", "--json", timeout=60)
    if result.returncode != 0:
        return None
    env = json.loads(result.stdout)
    return PlatformInfo(
        kubeconfig=env["KUBECONFIG"],
        prometheus_url=env["PROMETHEUS_URL"],
        file_sd_dir=Path(env["PROMETHEUS_FILE_SD_DIR"]),
        bin_dir=Path(env["BIN_DIR"]),
        apiserver_url=env["APISERVER_URL"],
        directory=Path(env["TIKV_PLATFORM_DIR"]),
    )


def bring_up() -> PlatformInfo:
    result = platform_command("up")
    if result.returncode != 0:
        raise PlatformUnavailable(f"hack/platform up failed:\n{result.stderr[-4000:]}")
    info = read_platform()
    if info is None:
        raise PlatformUnavailable("hack/platform up succeeded but the platform does not report itself up")
    return info

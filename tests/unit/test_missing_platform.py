"""Missing infrastructure skips on a developer's machine and FAILS in CI: it never passes silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

NEEDS_PLATFORM = '''
def test_needs_the_platform(platform):
    assert platform.kubeconfig
'''


def run_pytest_without_a_platform(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_needs_platform.py").write_text(NEEDS_PLATFORM)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    # A cache path that cannot be created makes provisioning fail at once, as on a broken machine.
    env |= {"TIKV_PLATFORM_DIR": str(tmp_path / "platform"), "TIKV_OPERATOR_CACHE": "/dev/null/cache",
            "PYTHONPATH": str(REPO)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.plugin", "-q", "-rs", "-o", "addopts=",
         "--rootdir", str(tmp_path), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )


def test_in_ci_a_missing_platform_fails_the_run(tmp_path: Path) -> None:
    result = run_pytest_without_a_platform(tmp_path, ci="true")

    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout
    assert "CI=true and the platform is unavailable: hack/platform up failed" in result.stdout
    assert "/dev/null/cache" in result.stdout  # the reason reaches the person reading the CI log


def test_on_a_developer_machine_a_missing_platform_skips_with_the_reason(tmp_path: Path) -> None:
    result = run_pytest_without_a_platform(tmp_path, ci=None)

    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "the local platform is unavailable (run `hack/platform up`)" in result.stdout

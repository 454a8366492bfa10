"""The `tikv-operator` entry point as installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tikv_operator

BIN = Path(sys.executable).parent


def test_version_prints_the_installed_version() -> None:
    result = subprocess.run([str(BIN / "tikv-operator"), "--version"], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"tikv-operator {tikv_operator.__version__}\n"
    assert tikv_operator.__version__ == "0.1.0"


def test_no_arguments_shows_help() -> None:
    result = subprocess.run([str(BIN / "tikv-operator")], capture_output=True, text=True, check=False)

    assert "Usage: tikv-operator" in result.stdout + result.stderr

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


def run_refused(*args: str) -> str:
    """`tikv-operator run` with bad options: exit 2 and typer's message, before any connection is made."""
    result = subprocess.run([str(BIN / "tikv-operator"), "run", "--all-namespaces", *args], capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    return " ".join(result.stderr.replace("│", " ").split())


def test_leader_election_options_are_checked() -> None:
    assert "the lease duration must exceed the renew deadline" in run_refused(
        "--leader-elect", "--leader-election-renew-deadline", "20s")
    assert "the renew deadline must exceed the retry period" in run_refused(
        "--leader-elect", "--leader-election-retry-period", "10s")
    assert "is not a valid Lease name" in run_refused("--leader-elect", "--leader-election-id", "Bad_Name")


def test_discovery_options_are_checked() -> None:
    assert "is not an http(s) URL" in run_refused("--discover-tidbclusters", "--default-prometheus-url", "ftp://x")
    assert "--discovery-interval must be at least 1s" in run_refused("--discovery-interval", "500ms")

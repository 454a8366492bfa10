"""Prometheus file_sd target groups for the simulated processes, labelled as real deployments are."""

import json
import os
from pathlib import Path
from typing import Any


def target_group(port: int, instance: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"targets": [f"127.0.0.1:{port}"], "labels": {"instance": instance, **labels}}


def write_atomically(path: Path, groups: list[dict[str, Any]]) -> None:
    """Prometheus re-reads the file when it changes: it must never see half of it.

    The temporary name starts with a dot and does not end in .json, so a `*.json` glob skips it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(groups, indent=2) + "\n")
    temporary.replace(path)

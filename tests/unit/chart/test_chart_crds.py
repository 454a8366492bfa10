"""The chart's crds/ holds exactly the CRDs in crds/, which are exactly what the models generate."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.unit.chart.chart import CHART, REPO
from tikv_operator.model.crds import rendered_crds


def test_the_chart_crds_are_identical_to_the_top_level_crds() -> None:
    top = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_text() for p in (CHART / "crds").iterdir()}
    assert sorted(chart) == sorted(top), "charts/tikv-operator/crds/ must hold the same files as crds/"
    for name, text in top.items():
        assert chart[name] == text, f"charts/tikv-operator/crds/{name} drifted from crds/{name}: run hack/gen-crds"


def test_the_chart_crds_are_what_the_models_generate() -> None:
    for name, text in rendered_crds().items():
        assert (CHART / "crds" / name).read_text() == text, f"run hack/gen-crds ({name})"


def test_gen_crds_writes_the_chart_copies_too(tmp_path: Path) -> None:
    # hack/gen-crds works from the folder above its own: run a copy of it in an empty tree.
    (tmp_path / "hack").mkdir()
    shutil.copy2(REPO / "hack" / "gen-crds", tmp_path / "hack" / "gen-crds")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    subprocess.run([str(tmp_path / "hack" / "gen-crds")], check=True, capture_output=True, timeout=120)
    for name, text in rendered_crds().items():
        assert (tmp_path / "crds" / name).read_text() == text
        assert (tmp_path / "charts" / "tikv-operator" / "crds" / name).read_text() == text

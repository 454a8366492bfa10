"""The monitoring stack's releases (hack/stacks.py): which one `up` runs, where it comes from, how it starts."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
from harness.stack import ALERTMANAGER_RELEASES, PROMETHEUS_RELEASES, stacks


@pytest.fixture(scope="module")
def st() -> ModuleType:
    return stacks()


def test_the_harness_knows_every_release_the_platform_runs(st: ModuleType) -> None:
    assert tuple(st.PROMETHEUS_RELEASES) == PROMETHEUS_RELEASES
    assert tuple(st.ALERTMANAGER_RELEASES) == ALERTMANAGER_RELEASES
    assert st.DEFAULT_PROMETHEUS in PROMETHEUS_RELEASES
    assert st.DEFAULT_ALERTMANAGER in ALERTMANAGER_RELEASES


def test_every_fetched_release_is_pinned_to_an_exact_package_version(st: ModuleType) -> None:
    for release in [*st.PROMETHEUS_RELEASES.values(), *st.ALERTMANAGER_RELEASES.values()]:
        assert release.suite == "bookworm" if release.from_machine else release.suite in ("trixie", "sid")
        if not release.from_machine:
            assert "-" in release.version, release  # upstream-debian revision: one exact .deb


def test_a_release_comes_from_the_option_then_the_environment_then_the_default(
        st: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(st.PROMETHEUS_ENV, raising=False)
    assert st.prometheus_release().name == st.DEFAULT_PROMETHEUS
    monkeypatch.setenv(st.PROMETHEUS_ENV, "victoriametrics")
    assert st.prometheus_release().name == "victoriametrics"
    assert st.prometheus_release("2.42").name == "2.42"
    with pytest.raises(st.PlatformError, match=re.escape("--alertmanager '0.1': not one of 0.25, 0.28, 0.33")):
        st.alertmanager_release("0.1")


def test_the_mirror_is_the_one_the_machine_uses(st: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    assert st.debian_mirror(tmp_path) == "http://deb.debian.org/debian"  # nothing configured
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://mirror.example/debian/ bookworm main\n")
    assert st.debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://other.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://ftp.example/debian\nSuites: bookworm\n")
    assert st.debian_mirror(tmp_path) == "http://ftp.example/debian"  # deb822 first; security is no archive


def test_victoriametrics_scrapes_the_same_jobs_with_a_config_its_strict_parser_takes(st: ModuleType,
                                                                                      tmp_path: Path) -> None:
    vm = st.PROMETHEUS_RELEASES["victoriametrics"]
    prometheus = st.PROMETHEUS_RELEASES["3.5"]
    for release in (vm, prometheus):
        config = st.scrape_config(release, "/sd")
        assert "job_name: targets" in config
        assert "job_name: kubernetes-pods" in config
        assert 'files: ["/sd/kubernetes/*.json"]' in config
    assert "refresh_interval" not in st.scrape_config(vm, "/sd")
    assert "evaluation_interval" not in st.scrape_config(vm, "/sd")
    assert "refresh_interval: 1s" in st.scrape_config(prometheus, "/sd")
    argv = st.prometheus_argv(tmp_path, vm, Path("/c.yml"), Path("/data"), 9999)
    assert argv[0] == str(tmp_path / "debian" / f"victoria-metrics_{vm.version}" / "usr" / "bin" / "victoria-metrics")
    assert "-promscrape.fileSDCheckInterval=1s" in argv
    assert "-httpListenAddr=127.0.0.1:9999" in argv
    assert not any(a.startswith("-search.latencyOffset") for a in argv)  # the default users run
    assert st.ready_path(vm) == "/health"
    assert st.ready_path(prometheus) == "/-/ready"
    assert st.binary(tmp_path, st.PROMETHEUS_RELEASES["2.42"]) == Path("/usr/bin/prometheus")


def test_a_pin_sid_replaced_falls_back_to_the_newest_build_of_its_series_and_never_to_another(
        st: ModuleType) -> None:
    assert st.pick_version("3.5.3+ds1-6", ["3.5.3+ds1-6", "3.4.0-1"]) == "3.5.3+ds1-6"
    assert st.pick_version("3.5.3+ds1-6", ["3.6.0+ds1-1", "3.5.4+ds1-1", "3.5.3+ds1-7"]) == "3.5.4+ds1-1"
    assert st.pick_version("0.33.1-5", ["0.34.0-1"]) is None
    assert st.pick_version("1.145.0+ds1-2", ["1.146.1+ds1-1"], "victoriametrics") == "1.146.1+ds1-1"
    assert st.pick_version("1.145.0+ds1-2", ["2.0.0-1"], "victoriametrics") is None

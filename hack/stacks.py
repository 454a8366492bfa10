"""The monitoring stack's releases the platform can run: Prometheus 2.42, 2.53 and 3.5, VictoriaMetrics (single
node), Alertmanager 0.25, 0.28 and 0.33 (docs/monitoring-stacks.md says what differs between them).

Bookworm's own packages (Prometheus 2.42, Alertmanager 0.25) come from the machine's apt. The newer ones are
Debian's own builds from trixie and sid, pinned to an exact package version so a CI run is reproducible:
static Go binaries that run here. They are fetched with an apt configuration of the platform's own (its own
sources list, package lists, cache and state under the per-machine cache, on the Debian mirror the machine
already uses) and unpacked with `dpkg-deb -x` into the cache; the machine's apt (/etc/apt) is never touched.

A leaf beside machine.py: it imports only machine. Standard library only, like the platform."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from machine import PlatformError, apt_install, log, run

# Today's long-term-support Prometheus (3.5 LTS, what kube-prometheus-stack ships) and Alertmanager 0.28, the
# first release after API v1's removal that a Debian stable suite (trixie) carries: a pinned stable package
# stays on the mirror, a sid one is replaced by the next upload.
DEFAULT_PROMETHEUS = "3.5"
DEFAULT_ALERTMANAGER = "0.28"
PROMETHEUS_ENV = "TIKV_PROMETHEUS_RELEASE"
ALERTMANAGER_ENV = "TIKV_ALERTMANAGER_RELEASE"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class Release:
    name: str  # what `hack/platform up --prometheus/--alertmanager` takes
    package: str  # the Debian package
    version: str  # its exact version; "" for bookworm's, installed by the machine's apt
    suite: str
    program: str  # the binary in /usr/bin
    kind: str  # "prometheus", "victoriametrics" or "alertmanager"

    @property
    def from_machine(self) -> bool:
        return not self.version

    def describe(self) -> str:
        return f"{self.package} {self.version or '(bookworm)'}"


PROMETHEUS_RELEASES = {
    "2.42": Release("2.42", "prometheus", "", "bookworm", "prometheus", "prometheus"),
    "2.53": Release("2.53", "prometheus", "2.53.3+ds1-2", "trixie", "prometheus", "prometheus"),
    "3.5": Release("3.5", "prometheus", "3.5.3+ds1-6", "sid", "prometheus", "prometheus"),
    "victoriametrics": Release("victoriametrics", "victoria-metrics", "1.145.0+ds1-2", "sid", "victoria-metrics",
                               "victoriametrics"),
}
ALERTMANAGER_RELEASES = {
    "0.25": Release("0.25", "prometheus-alertmanager", "", "bookworm", "prometheus-alertmanager", "alertmanager"),
    "0.28": Release("0.28", "prometheus-alertmanager", "0.28.1+ds-1", "trixie", "prometheus-alertmanager",
                    "alertmanager"),
    "0.33": Release("0.33", "prometheus-alertmanager", "0.33.1-5", "sid", "prometheus-alertmanager", "alertmanager"),
}


def prometheus_release(name: str | None = None) -> Release:
    """The release `name`, else $TIKV_PROMETHEUS_RELEASE, else the default."""
    return _pick(PROMETHEUS_RELEASES, name or os.environ.get(PROMETHEUS_ENV) or DEFAULT_PROMETHEUS, "--prometheus")


def alertmanager_release(name: str | None = None) -> Release:
    """The release `name`, else $TIKV_ALERTMANAGER_RELEASE, else the default."""
    return _pick(ALERTMANAGER_RELEASES, name or os.environ.get(ALERTMANAGER_ENV) or DEFAULT_ALERTMANAGER,
                 "--alertmanager")


def _pick(releases: dict[str, Release], name: str, option: str) -> Release:
    if name not in releases:
        raise PlatformError(f"{option} {name!r}: not one of {', '.join(releases)}")
    return releases[name]


def unpacked(cache: Path, release: Release) -> Path:
    """Where `dpkg-deb -x` put the package of a release that is not the machine's own."""
    return cache / "debian" / f"{release.package}_{release.version}"


def binary(cache: Path, release: Release, program: str | None = None) -> Path:
    """The path of the release's program (or of a sibling such as amtool), once provisioned."""
    program = program or release.program
    if release.from_machine:
        return Path("/usr/bin") / program
    return unpacked(cache, release) / "usr" / "bin" / program


def provision(cache: Path, releases: list[Release]) -> None:
    """Every release's binary in place; the caller holds the cache lock. Bookworm's through the machine's apt,
    the others downloaded once per machine (a failed download fails `up`: a test run never skips a release)."""
    apt_install(sorted({r.package for r in releases if r.from_machine}))
    wanted = [r for r in releases if not r.from_machine and not binary(cache, r).exists()]
    if not wanted:
        return
    apt = _apt_options(cache, sorted({r.suite for r in wanted}))
    log(f"fetching {', '.join(r.describe() for r in wanted)} from Debian {'/'.join(sorted({r.suite for r in wanted}))}")
    _apt_get(apt, "update", "-q")
    for release in wanted:
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            _apt_get(apt, "download", f"{release.package}={_available(apt, release)}", cwd=tmp)
            debs = list(Path(tmp).glob("*.deb"))
            if len(debs) != 1:
                raise PlatformError(f"apt-get download {release.package}={release.version} gave {debs}")
            partial = Path(tmp) / "root"
            run(["dpkg-deb", "-x", str(debs[0]), str(partial)])
            target = unpacked(cache, release)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            partial.replace(target)
        if not binary(cache, release).exists():
            raise PlatformError(f"{release.describe()} has no /usr/bin/{release.program}")


def series(version: str, kind: str = "prometheus") -> str:
    """The upstream release series of a Debian version: "3.5.3+ds1-6" -> "3.5.", "0.33.1-5" -> "0.33.".
    VictoriaMetrics has no long-lived minor series (a minor a month, all 1.x compatible): its series is "1."."""
    return ".".join(version.split(".")[:1 if kind == "victoriametrics" else 2]) + "."


def pick_version(pinned: str, offered: list[str], kind: str = "prometheus") -> str | None:
    """The pinned version when the mirror still has it; else the newest the mirror offers of the same upstream
    series (sid replaces a build at its next upload and the mirror keeps only the newest, so a pin of sid's would
    otherwise break every new machine); None when the series is gone. `offered` is newest first, as apt lists."""
    if pinned in offered:
        return pinned
    return next((v for v in offered if v.startswith(series(pinned, kind))), None)


def _available(apt: list[str], release: Release) -> str:
    result = subprocess.run(["apt-cache", *apt, "madison", release.package], capture_output=True, text=True,
                            check=False)
    offered = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line.count("|") >= 2]
    version = pick_version(release.version, offered, release.kind)
    if version is None:
        raise PlatformError(f"{release.describe()}: Debian {release.suite} no longer has the "
                            f"{series(release.version, release.kind)}x "
                            f"series (it offers {', '.join(offered) or 'nothing'}): update hack/stacks.py")
    if version != release.version:
        log(f"{release.describe()} is gone from Debian {release.suite}: using {version} of the same series")
    return version


def _apt_options(cache: Path, suites: list[str]) -> list[str]:
    root = cache / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    sources = root / "sources.list"
    keyring = f" [signed-by={KEYRING}]" if Path(KEYRING).exists() else ""
    sources.write_text("".join(f"deb{keyring} {debian_mirror()} {suite} main\n" for suite in suites))
    status = root / "status"
    status.touch()
    arch = run(["dpkg", "--print-architecture"], capture_output=True).stdout.strip()
    return [
        "-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={root / 'lists'}", "-o", f"Dir::Cache={root / 'cache'}",
        "-o", f"Dir::State::status={status}", "-o", f"APT::Architecture={arch}",
        # Our own lists and cache, under the platform's cache lock: apt's system lock is not ours to take.
        "-o", "Debug::NoLocking=1",
        *(["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []),
    ]


def _apt_get(options: list[str], *args: str, cwd: str | None = None) -> None:
    result = subprocess.run(["apt-get", *options, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PlatformError(f"apt-get {' '.join(args)} failed (exit {result.returncode}): "
                            f"{(result.stderr or result.stdout).strip()[-1500:]}")


def debian_mirror(etc: Path = Path("/etc/apt")) -> str:
    """The Debian archive the machine already uses (its deb822 .sources or sources.list), else deb.debian.org."""
    texts = [p.read_text(errors="replace") for p in sorted((etc / "sources.list.d").glob("*.sources"))]
    lists = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    texts += [p.read_text(errors="replace") for p in lists if p.exists()]
    for text in texts:
        for uri in re.findall(r"^\s*(?:URIs:|deb(?:\s+\[[^\]]*\])?)\s+(\S+)", text, flags=re.MULTILINE):
            if re.search(r"/debian/?$", uri):
                return uri.rstrip("/")
    return FALLBACK_MIRROR


# ---------------------------------------------------------------------------------------------------
# How each kind is started


PROMETHEUS_SCRAPE_CONFIGS = """\
scrape_configs:
  - job_name: targets
    file_sd_configs:
      - files: ["{file_sd}/*.json"]
        refresh_interval: 1s
  - job_name: kubernetes-pods
    file_sd_configs:
      - files: ["{file_sd}/kubernetes/*.json"]
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_service_name]
        target_label: service
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_container_name]
        target_label: container
      - source_labels: [__meta_kubernetes_service_name]
        target_label: job
      - source_labels: [__meta_kubernetes_endpoint_port_name]
        target_label: endpoint
"""


def scrape_config(release: Release, file_sd: str) -> str:
    """The scrape configuration of a release: the same jobs and targets for all. VictoriaMetrics' parser is
    strict: it has no evaluation_interval (it evaluates no rules) and no file_sd refresh_interval (a flag,
    -promscrape.fileSDCheckInterval, sets it)."""
    header = ("# Written by hack/platform. Tests and tools add scrape targets by dropping file_sd JSON files into\n"
              f"# {file_sd}: they are picked up within a second, no reload needed.\n"
              "# - *.json: labels are used as given (tiup, TidbMonitor conventions).\n"
              "# - kubernetes/*.json: targets carry the __meta_kubernetes_* labels that Kubernetes service\n"
              "#   discovery would give, relabelled as prometheus-operator does for a ServiceMonitor\n"
              "#   (kube-prometheus, tidb-operator v2); instance stays __address__, i.e. podIP:port.\n")
    evaluation = "" if release.kind == "victoriametrics" else "  evaluation_interval: 1s\n"
    jobs = PROMETHEUS_SCRAPE_CONFIGS.format(file_sd=file_sd)
    if release.kind == "victoriametrics":
        jobs = "".join(line for line in jobs.splitlines(keepends=True) if "refresh_interval" not in line)
    return header + "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n" + evaluation + jobs


def prometheus_argv(cache: Path, release: Release, config: Path, data: Path, port: int) -> list[str]:
    """Prometheus or single-node VictoriaMetrics scraping with `config`, storing in `data`, on 127.0.0.1:`port`."""
    program = str(binary(cache, release))
    if release.kind == "victoriametrics":
        return [
            program, f"-promscrape.config={config}", f"-storageDataPath={data}",
            f"-httpListenAddr=127.0.0.1:{port}", "-retentionPeriod=1d",
            # Its default re-reads file_sd files every minute; Prometheus' refresh_interval is 1s here.
            "-promscrape.fileSDCheckInterval=1s",
            # -search.latencyOffset stays at its default (30s): what users run, and what the operator handles.
        ]
    return [
        program, f"--config.file={config}", f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle", "--storage.tsdb.retention.time=2h",
    ]


def ready_path(release: Release) -> str:
    """The readiness endpoint: VictoriaMetrics answers /health (it has no /-/ready of its own)."""
    return "/health" if release.kind == "victoriametrics" else "/-/ready"

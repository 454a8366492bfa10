"""The platform's real Prometheus, as tests see it: add scrape targets, run PromQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True)
class Prometheus:
    url: str
    file_sd_dir: Path

    def _get(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The `data.result` of an instant query."""
        data = self._get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", f"{expr!r} gave a {data['resultType']}, not a vector"
        return list(data["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/targets", state="active")["activeTargets"])

    def wait_for_addresses(self, addresses: set[str], timeout: float = 30) -> None:
        """Wait until every target address (host:port) is healthy and has been scraped at least once,
        whatever instance label relabeling gave it."""
        self._wait_for_scraped(addresses, lambda t: t["discoveredLabels"].get("__address__", ""), timeout)

    def wait_for_targets(self, instances: set[str], timeout: float = 30) -> None:
        """Wait until every instance has a healthy target that has been scraped at least once."""
        self._wait_for_scraped(instances, lambda t: t["labels"].get("instance", ""), timeout)

    def _wait_for_scraped(self, wanted: set[str], key: Callable[[dict[str, Any]], str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        healthy: set[str] = set()
        while time.monotonic() < deadline:
            healthy = {key(t) for t in self.targets()
                       if t["health"] == "up" and not t["lastScrape"].startswith("0001-")}
            if wanted <= healthy:
                return
            time.sleep(0.25)
        raise AssertionError(f"Prometheus never scraped {sorted(wanted - healthy)} within {timeout}s")


@dataclass
class ScrapeTargets:
    """One test's file_sd file in the directory the platform Prometheus watches."""

    path: Path
    labels: dict[str, str]
    groups: list[dict[str, Any]] = field(default_factory=list)

    def write(self, groups: list[dict[str, Any]]) -> None:
        """Replace this test's targets; `labels` are added to every group."""
        self.groups = [{"targets": g["targets"], "labels": {**self.labels, **g.get("labels", {})}} for g in groups]
        # Write then rename: Prometheus must never read a half-written file.
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.groups))
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


KUBERNETES_SUBDIR = "kubernetes"


def kubernetes_targets(prometheus: Prometheus, name: str) -> ScrapeTargets:
    """A test's file_sd file for the platform's `kubernetes-pods` job: its groups carry
    __meta_kubernetes_* labels, relabelled as prometheus-operator does (pod, namespace, container,
    service, endpoint, job), with instance = the target address. The caller removes it."""
    directory = prometheus.file_sd_dir / KUBERNETES_SUBDIR
    directory.mkdir(exist_ok=True)  # platforms started before the job existed have no such directory
    return ScrapeTargets(path=directory / f"{name}.json", labels={"test_id": name})


def until_shown(read: Callable[[], Any], ready: Callable[[Any], bool], what: str, timeout: float = 60.0) -> Any:
    """`read()` once a second until `ready(value)`; fails naming `what` and the last value (bounded)."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = read()
        if ready(value):
            return value
        time.sleep(1)
    raise AssertionError(f"Prometheus never showed {what}; last: {value}")

"""The platform's real Alertmanager (its release: hack/stacks.py), as tests see it: post alerts and silences through API
v2, read what the webhook receiver was sent, run amtool.

Every test shares the platform's one Alertmanager, so tests label their alerts with their own
namespace and filter by it. A test that must stop and restart an Alertmanager starts a private one
(start_private_alertmanager), started exactly as `hack/platform up` starts the shared one.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from harness.stack import localplatform as load_localplatform

REQUEST_TIMEOUT_S = 10.0


localplatform = load_localplatform()
import stacks  # noqa: E402 (hack/stacks.py: on sys.path once localplatform is loaded)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert(labels: dict[str, str], *, firing: bool = True, annotations: dict[str, str] | None = None,
          starts_at: datetime | None = None) -> dict[str, Any]:
    """A postableAlert. Firing: endsAt 5 minutes ahead; resolved: endsAt a second ago. startsAt is
    always given: without it Alertmanager takes endsAt as the start."""
    now = datetime.now(UTC)
    ends_at = now + timedelta(minutes=5) if firing else now - timedelta(seconds=1)
    return {
        "labels": labels,
        "annotations": annotations or {},
        "startsAt": rfc3339(starts_at or now - timedelta(minutes=1)),
        "endsAt": rfc3339(ends_at),
    }


def _filters(labels: dict[str, str]) -> list[tuple[str, str]]:
    return [("filter", f'{name}="{value}"') for name, value in labels.items()]


@dataclass(frozen=True)
class Alertmanager:
    url: str
    webhook_log: Path | None
    amtool_bin: str = "amtool"
    auth: tuple[str, str] | None = None  # basic auth, for an Alertmanager with a web config

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        response = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=REQUEST_TIMEOUT_S, auth=self.auth)
        response.raise_for_status()

    def alerts(self, *, include_suppressed: bool = False, **labels: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: alerts whose labels equal every filter. Active (not silenced or
        inhibited) ones only unless include_suppressed; resolved alerts are never listed."""
        suppressed = "true" if include_suppressed else "false"
        params = [*_filters(labels), ("active", "true"), ("silenced", suppressed), ("inhibited", suppressed)]
        response = httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=REQUEST_TIMEOUT_S, auth=self.auth)
        response.raise_for_status()
        return list(response.json())

    def create_silence(self, matchers: dict[str, str], *, comment: str, created_by: str = "tests",
                       duration: timedelta = timedelta(hours=1)) -> str:
        """POST /api/v2/silences with equality matchers; returns the silence id."""
        now = datetime.now(UTC)
        body = {
            "matchers": [{"name": n, "value": v, "isRegex": False, "isEqual": True} for n, v in matchers.items()],
            "startsAt": rfc3339(now), "endsAt": rfc3339(now + duration),
            "createdBy": created_by, "comment": comment,
        }
        response = httpx.post(f"{self.url}/api/v2/silences", json=body, timeout=REQUEST_TIMEOUT_S, auth=self.auth)
        response.raise_for_status()
        return str(response.json()["silenceID"])

    def expire_silence(self, silence_id: str) -> None:
        response = httpx.delete(f"{self.url}/api/v2/silence/{silence_id}", timeout=REQUEST_TIMEOUT_S, auth=self.auth)
        response.raise_for_status()

    def silences(self, **labels: str) -> list[dict[str, Any]]:
        """GET /api/v2/silences: silences (any state: active, pending, expired) having an equality matcher
        for every filter."""
        response = httpx.get(f"{self.url}/api/v2/silences", params=_filters(labels), timeout=REQUEST_TIMEOUT_S,
                             auth=self.auth)
        response.raise_for_status()
        return list(response.json())

    def notifications(self, **labels: str) -> list[dict[str, Any]]:
        """What the webhook receiver was sent, oldest first, one entry per alert of each notification:
        {"status": the notification's "firing"/"resolved", "labels": the alert's labels, "alert": the
        alert as sent, "receiver", "groupKey"}; only alerts whose labels equal every filter."""
        if self.webhook_log is None:
            raise ValueError("this Alertmanager's webhook log is not known")
        try:
            text = self.webhook_log.read_text()
        except FileNotFoundError:
            return []
        entries = []
        # The sink writes whole lines; a last line without its newline is still being written.
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                break
            notification = json.loads(line)
            for sent in notification["alerts"]:
                if all(sent["labels"].get(name) == value for name, value in labels.items()):
                    entries.append({"status": notification["status"], "labels": sent["labels"], "alert": sent,
                                    "receiver": notification["receiver"], "groupKey": notification["groupKey"]})
        return entries

    def wait_for_notifications(self, count: int, *, timeout: float = 10, status: str | None = None,
                               **labels: str) -> list[dict[str, Any]]:
        """Wait until at least `count` matching notifications (of `status`, if given) arrived; returns
        them all."""
        deadline = time.monotonic() + timeout
        while True:
            seen = [n for n in self.notifications(**labels) if status is None or n["status"] == status]
            if len(seen) >= count:
                return seen
            if time.monotonic() >= deadline:
                raise AssertionError(f"{len(seen)} of {count} {status or ''} notifications for {labels} "
                                     f"within {timeout}s: {seen}")
            time.sleep(0.1)

    def amtool(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """amtool against this Alertmanager, as a person would run it (not checked: look at returncode)."""
        return subprocess.run([self.amtool_bin, f"--alertmanager.url={self.url}", *args], capture_output=True,
                              text=True, timeout=timeout, check=False)


class PrivateAlertmanager:
    """An Alertmanager of one test's own, configured like the platform's, under `directory`; it can be
    stopped and started again on the same port with the same storage (silences and the notification log
    survive; alerts live in memory only). With no webhook_url, a private webhook sink runs too (and
    keeps running across restarts), logging to `directory`/webhook.jsonl."""

    def __init__(self, directory: Path, webhook_url: str | None = None,
                 basic_auth: tuple[str, str, str] | None = None, release: str | None = None) -> None:
        """`basic_auth`: (user, password, bcrypt hash of the password): every request must then carry them.
        `release`: hack/stacks.py's name (e.g. "0.33"); by default the platform's."""
        self.directory = directory
        self.release = _release(release)
        self.basic_auth = basic_auth
        self.web_config: Path | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.home = directory / "alertmanager"
        self.logs = directory / "logs"
        self.port = localplatform.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._procs: dict[str, Any] = {}
        self.webhook_log: Path | None = None
        self.webhook_url = webhook_url or ""
        if not (localplatform.bin_dir() / "alertmanager").exists():
            raise FileNotFoundError(f"no alertmanager in {localplatform.bin_dir()}; run `hack/platform up` once")
        with localplatform.cache_lock():
            stacks.provision(localplatform.cache_dir(), [self.release])
        if webhook_url is None:
            self.webhook_log = directory / "webhook.jsonl"
            self.webhook_log.touch()
            sink_port = localplatform.free_port()
            self.webhook_url = f"http://127.0.0.1:{sink_port}/"
            self._start("webhook", localplatform.webhook_sink_argv(sink_port, self.webhook_log), sink_port,
                        self.webhook_url)
        localplatform.write_alertmanager_config(self.home / "alertmanager.yml", self.webhook_url)
        if basic_auth is not None:
            self.web_config = self.home / "web.yml"
            self.web_config.write_text(f"basic_auth_users:\n  {basic_auth[0]}: '{basic_auth[2]}'\n")

    @property
    def client(self) -> Alertmanager:
        auth = (self.basic_auth[0], self.basic_auth[1]) if self.basic_auth else None
        return Alertmanager(self.url, self.webhook_log, str(localplatform.bin_dir() / "amtool"), auth)

    @property
    def running(self) -> bool:
        proc = self._procs.get("alertmanager")
        return proc is not None and localplatform.is_alive(proc)

    def start(self) -> None:
        if self.running:
            return
        self._start("alertmanager", localplatform.alertmanager_argv(self.home, self.port, self.web_config,
                                                                    release=self.release),
                    self.port, f"{self.url}/-/ready")

    def stop(self) -> None:
        """SIGTERM (Alertmanager snapshots silences and the notification log), SIGKILL if it lingers."""
        self._stop("alertmanager")

    def close(self) -> None:
        self._stop("alertmanager")
        self._stop("webhook")

    def _start(self, name: str, argv: list[str], port: int, ready_url: str) -> None:
        proc = localplatform.spawn(name, argv, port, self.logs)
        self._procs[name] = proc
        try:
            header = None
            if self.basic_auth is not None and name == "alertmanager":
                header = "Basic " + base64.b64encode(f"{self.basic_auth[0]}:{self.basic_auth[1]}".encode()).decode()
            localplatform.wait_ready(proc, lambda: localplatform.http_ok(ready_url, authorization=header),
                                     f"GET {ready_url}")
        except localplatform.PlatformError as error:
            self.close()
            raise AssertionError(str(error)) from error

    def _stop(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is not None:
            localplatform.stop(localplatform.State("", "", "", "", "", procs=[proc]))
            # stop() waits until the process is no longer alive, which a zombie already counts as;
            # collect it so no defunct child stays around until pytest exits.
            localplatform._reap(proc.pid)

    def __enter__(self) -> PrivateAlertmanager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _release(name: str | None) -> Any:
    """hack/stacks.py's Alertmanager release `name`, else the one the platform of TIKV_PLATFORM_DIR runs."""
    if name is None:
        state = localplatform.State.load(localplatform.state_dir())
        name = state.alertmanager_release if state is not None and state.alertmanager_release else None
    return stacks.alertmanager_release(name)


def start_private_alertmanager(directory: Path, webhook_url: str | None = None,
                               basic_auth: tuple[str, str, str] | None = None,
                               release: str | None = None) -> PrivateAlertmanager:
    """Start a private Alertmanager (and, without webhook_url, its own webhook sink), of the platform's release
    unless `release` names another; use it as a context manager, or call close(), so nothing outlives the test."""
    private = PrivateAlertmanager(directory, webhook_url, basic_auth, release)
    try:
        private.start()
    except BaseException:
        private.close()
        raise
    return private

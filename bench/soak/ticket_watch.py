"""Every version of every ticket of the soak's namespace, from a Kubernetes watch that resumes from the last
resourceVersion it saw (a paused or restarted API server, a dropped connection), and lists again only when
the API server says that version is gone (410): the versions it could not see then are recorded as a gap.

Each version is a small dict (see `version`), with `received`: when the harness saw it (time.time())."""

from __future__ import annotations

import json
import ssl
import threading
import time
from typing import Any

import httpx

from bench.common import KubeApi

NON_RESOLVED = ("Open", "Acknowledged", "Diagnosed")


def version(obj: dict[str, Any], event: str, received: float) -> dict[str, Any]:
    """The fields of a ticket the oracle reads (the evidence and the message are left out: memory)."""
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
    labels = meta.get("labels") or {}
    return {
        "received": received,
        "event": event,
        "name": meta.get("name", ""),
        "rv": int(meta.get("resourceVersion") or 0),
        "created": meta.get("creationTimestamp", ""),
        "cluster": spec.get("cluster", ""),
        "invariant": spec.get("invariant", ""),
        "store": str(spec.get("store") or ""),
        "held": bool(spec.get("held")),
        "phase": status.get("phase") or "Open",
        "severity": status.get("severity") or "",
        "resolution": status.get("resolution") or "",
        "resolution_message": status.get("resolutionMessage") or "",
        "resolved_at": status.get("resolvedAt") or "",
        "reopened": len(status.get("reopenedAt") or []),
        "silences": len(status.get("silences") or {}),
        "label_phase": labels.get("tikvops.io/phase", ""),
        "label_held": labels.get("tikvops.io/held", ""),
        "recorded": (meta.get("annotations") or {}).get("tikvops.io/recorded", ""),
    }


class TicketWatch:
    """A background thread; `versions` grows in the API server's order, `current` is the latest of each."""

    def __init__(self, kube: KubeApi, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.versions: list[dict[str, Any]] = []
        self.current: dict[str, dict[str, Any]] = {}
        self.gaps: list[float] = []
        self.reconnects = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticket-watch", daemon=True)
        self._client = httpx.Client(base_url=kube.server, verify=ssl.create_default_context(cafile=kube.ca_file),
                                    headers={"Authorization": f"Bearer {kube.token}"},
                                    timeout=httpx.Timeout(10, read=120))
        self.resource_version = ""

    def start(self) -> TicketWatch:
        self._relist(initial=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(70)
        self._client.close()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.current)

    def all_versions(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.versions)

    def _record(self, obj: dict[str, Any], event: str) -> None:
        item = version(obj, event, time.time())
        with self._lock:
            if event == "DELETED":
                self.current.pop(item["name"], None)
            else:
                self.current[item["name"]] = item
            self.versions.append(item)

    def _relist(self, initial: bool = False) -> None:
        path = KubeApi.path(self.namespace, "operatortickets")
        while not self._stop.is_set():
            try:
                response = self._client.get(path)
                response.raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            return
        body = response.json()
        seen = set()
        for item in body.get("items", []):
            seen.add(item["metadata"]["name"])
            self._record(item, "LIST" if initial else "RELIST")
        if not initial:
            self.gaps.append(time.time())
            for name in set(self.snapshot()) - seen:
                self._record({"metadata": {"name": name}}, "DELETED")
        self.resource_version = body["metadata"]["resourceVersion"]

    def _run(self) -> None:
        path = KubeApi.path(self.namespace, "operatortickets")
        while not self._stop.is_set():
            params = {"watch": "1", "resourceVersion": self.resource_version, "allowWatchBookmarks": "true",
                      "timeoutSeconds": "20"}
            try:
                with self._client.stream("GET", path, params=params) as response:
                    if response.status_code == 410:
                        self._relist()
                        continue
                    response.raise_for_status()
                    for line in response.iter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            if obj.get("code") == 410:
                                self._relist()
                            break
                        rv = (obj.get("metadata") or {}).get("resourceVersion")
                        if event.get("type") != "BOOKMARK":
                            self._record(obj, str(event.get("type")))
                        if rv:
                            self.resource_version = rv
            except (httpx.HTTPError, json.JSONDecodeError):
                self.reconnects += 1
                self._stop.wait(0.5)

"""The API server's audit log (hack/platform writes one): who wrote which object, and when."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tikv_operator.model.timestamps import from_rfc3339


@dataclass(frozen=True)
class Write:
    verb: str
    resource: str  # e.g. operatortickets/status
    namespace: str
    name: str
    user_agent: str
    received: datetime
    code: int

    def __str__(self) -> str:
        return f"{self.received.isoformat()} {self.verb} {self.resource} {self.namespace}/{self.name} -> {self.code}"


def writes(log: Path, user_agent: str, namespace: str | None = None) -> list[Write]:
    """Every audited write whose User-Agent contains `user_agent`, oldest first."""
    found = []
    with log.open() as lines:
        for line in lines:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            agent = event.get("userAgent") or ""
            if user_agent not in agent or (namespace is not None and ref.get("namespace") != namespace):
                continue
            received = from_rfc3339(event["requestReceivedTimestamp"])
            assert received is not None
            resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            found.append(Write(event["verb"], resource, ref.get("namespace", ""), ref.get("name", ""), agent,
                               received, int((event.get("responseStatus") or {}).get("code", 0))))
    return sorted(found, key=lambda w: w.received)

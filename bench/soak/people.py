"""People's actions on tickets, as a person types them (docs/tickets.md): kubectl patch of
spec.held, and of status.phase through the status subresource. `-o json` returns the object the patch
produced: its resourceVersion is how the oracle finds the person's version in the ticket history."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from bench.soak.ground_truth import PersonAction
from bench.soak.ticket_watch import NON_RESOLVED

PATCHES: dict[str, tuple[tuple[str, ...], str]] = {
    "hold": ((), '{"spec":{"held":true}}'),
    "unhold": ((), '{"spec":{"held":false}}'),
    "ack": (("--subresource=status",), '{"status":{"phase":"Acknowledged"}}'),
    "resolve": (("--subresource=status",), '{"status":{"phase":"Resolved"}}'),
}


def candidates(action: str, tickets: Mapping[str, dict[str, Any]]) -> list[str]:
    """The tickets a person would take this action on, by name (the watch's latest view)."""
    live = {n: t for n, t in tickets.items() if t["phase"] in NON_RESOLVED}
    wanted = {
        "hold": lambda t: not t["held"],
        "unhold": lambda t: t["held"],
        "ack": lambda t: t["phase"] == "Open",
        "resolve": lambda t: True,
    }[action]
    return sorted(n for n, t in live.items() if wanted(t))


def act(env: Mapping[str, str], namespace: str, index: int, action: str, pick: float,
        tickets: Mapping[str, dict[str, Any]]) -> PersonAction | None:
    """Do `action` on the ticket `pick` (0..1) selects among the candidates; None when there is none."""
    names = candidates(action, tickets)
    if not names:
        return None
    name = names[min(int(pick * len(names)), len(names) - 1)]
    flags, body = PATCHES[action]
    argv = ["kubectl", "patch", "operatorticket", name, "--namespace", namespace, *flags, "--type=merge", "-p", body,
            "-o", "json", "--request-timeout=10s"]
    before = time.time()
    try:
        result = subprocess.run(argv, capture_output=True, text=True, env=dict(env), timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return PersonAction(index, action, name, before, time.time(), False, phase_before=tickets[name]["phase"],
                            output="kubectl timed out")
    after = time.time()
    entry = PersonAction(index, action, name, before, after, result.returncode == 0,
                         phase_before=tickets[name]["phase"], output=result.stderr.strip()[-300:])
    if result.returncode == 0:
        obj = json.loads(result.stdout)
        entry.resource_version = int(obj["metadata"]["resourceVersion"])
        entry.phase_after = (obj.get("status") or {}).get("phase") or "Open"
        entry.held_after = bool((obj.get("spec") or {}).get("held"))
    return entry

"""Liveness of the checking machinery: a check that runs far past what its own timeouts allow means the
operator itself is stuck (a connection no timeout covers, a lock, a bug), and a restart is the cure.

A cluster whose PD is down is not stuck: its probes time out and its checks complete. So each check has
a budget of its probe timeouts plus the stall timeout, and only a check past that budget fails /healthz.
The event loop being blocked fails /healthz without help from here: the endpoint runs on that loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# Every Kubernetes request has a 10 s total timeout and a check makes a handful of them; five minutes
# past the probe timeouts is stuck by any measure, and short of it a slow API server is not our fault.
DEFAULT_STALL_TIMEOUT_S = 300.0


@dataclass
class Watchdog:
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S
    clock: Callable[[], float] = time.monotonic
    # (namespace, cluster) -> (started, budget in seconds) of the check in progress
    running: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    @contextmanager
    def check(self, namespace: str, cluster: str, probe_timeouts_s: float) -> Iterator[None]:
        key = (namespace, cluster)
        self.running[key] = (self.clock(), probe_timeouts_s + self.stall_timeout_s)
        try:
            yield
        finally:
            self.running.pop(key, None)

    def stalled(self) -> list[str]:
        """Why the machinery is stuck, one line per stuck check; empty when it is not."""
        now = self.clock()
        return [f"the check of {ns}/{name} has run {now - started:.0f}s, past its {budget:.0f}s budget"
                for (ns, name), (started, budget) in sorted(self.running.items()) if now - started > budget]


WATCHDOG = Watchdog()

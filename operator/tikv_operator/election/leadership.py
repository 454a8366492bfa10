"""Which replica acts: `--leader-elect` runs an election on a Lease; without it this process always acts.

Every replica runs kopf (its watches and ticket index stay warm), but only the one whose `Leadership`
says `acting()` runs checks, records people's edits, writes and pages. `acting()` reads the clock itself,
so a holder that could not renew (a partition, a stopped process) stops writing at its renew deadline
even before the election loop gets to run again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator import self_metrics
from tikv_operator.election.core.leases import (
    LeaseRecord,
    LeaseTiming,
    Sighting,
    claim,
    held_by_other,
    may_act,
    next_attempt_in,
    observe,
    released,
    time_left,
)
from tikv_operator.election.lease_lock import LeaseLock
from tikv_operator.kube.api import API_TIMEOUT_SECONDS, FENCED_WRITES, short_error

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Releasing on SIGTERM: one quick try; a slow API server must not hold up the shutdown (the Lease then
# expires as after a crash).
RELEASE_TIMEOUT_S = 2.0

log = logging.getLogger("tikv_operator")


def user_agent(identity: str) -> str:
    """`tikv-operator/<version> (<replica>)`: the API server's audit log names the replica that wrote, and
    managedFields name the operator."""
    from tikv_operator import __version__

    return f"tikv-operator/{__version__} ({identity})"


def default_namespace() -> str:
    """The pod's namespace (the chart passes it through the downward API), else its service account's,
    else `default`."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def new_identity() -> str:
    """client-go's: the host (the pod's name) and a random suffix, unique per process even on one host."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}_{uuid.uuid4().hex[:12]}"


@dataclass
class Leadership:
    """Whether this process may act now. `elected=False`: always (a single replica, or `monitor`)."""

    elected: bool = False
    timing: LeaseTiming = field(default_factory=LeaseTiming)
    identity: str = ""
    clock: Callable[[], float] = time.monotonic
    leading: bool = False
    renewed_at: float | None = None  # monotonic time the last successful renewal was sent
    term: int = 0  # +1 each time this process starts leading: a new term starts from what is written

    def acting(self) -> bool:
        if not self.elected:
            return True
        return self.leading and may_act(self.renewed_at, self.clock(), self.timing)

    def time_left(self) -> float | None:
        """Seconds a write sent now has before another replica may act (None: no election, no limit)."""
        if not self.elected:
            return None
        return time_left(self.renewed_at, self.clock(), self.timing) if self.leading else 0.0

    def start(self, renewed_at: float) -> None:
        self.renewed_at = renewed_at
        if not self.leading:
            self.leading = True
            self.term += 1
            self_metrics.LEADER.set(1)
            self_metrics.LEADER_TRANSITIONS.inc()

    def stop(self) -> None:
        self.leading = False
        self.renewed_at = None
        self_metrics.LEADER.set(0)


@dataclass
class LeaseElector:
    """The election loop: acquire or renew every retry period; stop acting past the renew deadline."""

    lock: LeaseLock
    leadership: Leadership
    sighting: Sighting | None = None
    version: str | None = None  # resourceVersion of the Lease as this process last read or wrote it
    _failing: str = ""

    @property
    def me(self) -> str:
        return self.leadership.identity

    async def run(self) -> None:
        timing = self.leadership.timing
        log.info("leader election on %s as %s (lease %gs, renew deadline %gs, retry %gs)", self.lock.where,
                 self.me, timing.lease_duration_s, timing.renew_deadline_s, timing.retry_period_s)
        while True:
            try:
                await self.attempt()
                self._failing = ""
            except (ApiException, TimeoutError, OSError, aiohttp.ClientError) as error:
                self._note_failure(error)
            self._check_deadline()
            await asyncio.sleep(next_attempt_in(self.sighting, self.me, self.leadership.leading,
                                                self.leadership.clock(), timing,
                                                random.random()))  # noqa: S311  (jitter, not a secret)

    async def attempt(self) -> None:
        """One try, as client-go's tryAcquireOrRenew: renew what this process holds, else take a free or
        expired Lease; never take a Lease another replica may still act on."""
        clock = self.leadership.clock
        self._check_deadline()  # a holder that was frozen past its deadline must not renew as if it still led
        if self.leadership.leading and self.version is not None and self.sighting is not None:
            try:
                await self._write(claim(self.sighting, self.me, datetime.now(UTC), self.leadership.timing))
                return
            except ApiException as error:
                if error.status != 409:
                    raise
                # Written by someone else since: read it, and stop if it is no longer ours.
        found = await self.lock.get()
        now = clock()
        if found is None:
            self.sighting, self.version = None, None
        else:
            record, self.version = found
            self.sighting = observe(self.sighting, record, now)
        if held_by_other(self.sighting, self.me, now):
            if self.leadership.leading:
                holder = self.sighting.record.holder if self.sighting else "?"
                self._stop(f"{self.lock.where} is held by {holder}")
            return
        try:
            await self._write(claim(self.sighting, self.me, datetime.now(UTC), self.leadership.timing))
        except ApiException as error:
            if error.status != 409:
                raise
            log.debug("%s: another replica wrote it first", self.lock.where)

    async def _write(self, record: LeaseRecord) -> None:
        sent_at = self.leadership.clock()
        if self.version is None:
            self.version = await self.lock.create(record)
        else:
            self.version = await self.lock.replace(record, self.version)
        self.sighting = Sighting(record, self.leadership.clock())
        if not self.leadership.leading:
            log.info("started leading: %s is held by %s (transition %d)", self.lock.where, self.me,
                     record.transitions)
        self.leadership.start(sent_at)

    async def release(self) -> None:
        """On SIGTERM: stop acting at once, then hand the Lease back so a standby need not wait it out."""
        if not self.leadership.leading:
            return
        self._stop("shutting down", logging.INFO)
        if self.sighting is None or self.version is None:
            return
        # Writes already past the fence end first (each within its own timeout, itself within the fence's
        # margin): a standby that took the Lease at once must not see them land after it started.
        if not await FENCED_WRITES.drained(API_TIMEOUT_SECONDS):
            log.warning("writes still in flight after %gs: releasing %s anyway", API_TIMEOUT_SECONDS,
                        self.lock.where)
        try:
            await asyncio.wait_for(self._hand_back(self.sighting.record, self.version), RELEASE_TIMEOUT_S)
        except (ApiException, TimeoutError, OSError, aiohttp.ClientError) as error:
            log.warning("could not release %s (%s): a standby takes over when it expires", self.lock.where,
                        short_error(error))

    async def _hand_back(self, record: LeaseRecord, version: str) -> None:
        try:
            await self.lock.replace(released(record, datetime.now(UTC)), version)
        except ApiException as error:
            if error.status != 409:
                raise
            # A renewal cancelled by the shutdown may have landed unseen: the Lease is newer than our
            # version but may still be ours. Hand back only what this process still holds.
            found = await self.lock.get()
            if found is None or found[0].holder != self.me:
                log.info("%s is no longer held by this process: nothing to release", self.lock.where)
                return
            await self.lock.replace(released(found[0], datetime.now(UTC)), found[1])
        log.info("released %s", self.lock.where)

    def _check_deadline(self) -> None:
        timing = self.leadership.timing
        if self.leadership.leading and not may_act(self.leadership.renewed_at, self.leadership.clock(), timing):
            self._stop(f"could not renew {self.lock.where} for {timing.renew_deadline_s:g}s")

    def _stop(self, why: str, level: int = logging.WARNING) -> None:
        if self.leadership.leading:
            log.log(level, "stopped leading: %s", why)
        self.leadership.stop()

    def _note_failure(self, error: BaseException) -> None:
        message = short_error(error)
        if message != self._failing:  # once per kind of failure, not every 2 s
            log.warning("%s: %s", self.lock.where, message)
        self._failing = message


"""One TiKVCluster's loop: when its checks run (schedule, leadership, pause, a spec it cannot use) and what
is said about them (metrics, watchdog). What one check does is ClusterChecker's."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator import self_metrics
from tikv_operator.checks.checker import CheckResult, ClusterChecker, parse_status
from tikv_operator.checks.core.cluster_status import spec_rejected_status
from tikv_operator.checks.core.observation import Observation
from tikv_operator.checks.core.settings import ClusterSettings, Rejected, SettingsCache
from tikv_operator.checks.probe import observe
from tikv_operator.kube.api import NotLeading, short_error
from tikv_operator.kube.credentials import load_alertmanager_credentials, load_credentials
from tikv_operator.model.cluster_resource import TiKVClusterSpec
from tikv_operator.services import Services
from tikv_operator.tickets.core.ticket import TicketView
from tikv_operator.watchdog import WATCHDOG

# How often a sleeping daemon looks at its spec again, so a shorter interval or `paused: false`
# takes effect quickly without a restart.
SPEC_POLL_S = 1.0
# How often a standby's daemon looks whether its replica leads now: the first check of a new leader
# follows its taking the Lease by at most this.
STANDBY_POLL_S = 0.5

log = logging.getLogger("tikv_operator")

TicketIndex = kopf.Index[Any, TicketView]


class ClusterLoop:
    """Checks one TiKVCluster every spec.interval, while this replica leads, until it is deleted or the
    operator stops."""

    def __init__(self, namespace: str, name: str, body: kopf.Body, services: Services, index: TicketIndex) -> None:
        self.namespace, self.name = namespace, name
        self.body = body  # kopf keeps it current: the spec and status as last watched
        self.services = services
        self.index = index
        self.settings = SettingsCache(services.default_interval)
        self.checker, self.term = self._new_checker(), services.leadership.term
        self.last_start: float | None = None  # monotonic; None: the next check runs at once

    async def run(self, stopped: kopf.DaemonStopped) -> None:
        try:
            while not stopped:
                await self.turn(stopped)
        finally:
            # Also when kopf cancels the daemon: a deleted cluster leaves no series behind.
            self_metrics.forget_cluster(self.namespace, self.name)
            if stopped.reason is not None and kopf.DaemonStoppingReason.RESOURCE_DELETED in stopped.reason:
                # Its alerts resolve; an operator that exits resolves none.
                self.services.notifier.retire(self.namespace, self.name)

    async def turn(self, stopped: kopf.DaemonStopped) -> None:
        """One turn: stand by, or note a rejected or paused spec, or wait, or run the check that is due."""
        leadership = self.services.leadership
        if not leadership.acting():
            await self._stand_by(stopped)
            return
        if self.term != leadership.term:
            # A new term starts from what is written (status, tickets), not from what this process
            # remembered of an earlier term: another replica acted meanwhile.
            self.checker, self.term = self._new_checker(), leadership.term
        try:
            settings = self.settings.of(self.body.get("spec"))
            if isinstance(settings, Rejected):
                if settings.delivery is not None and not self.services.notifier.registered(self.namespace, self.name):
                    # Rule 23: open tickets still page; a registration from the last good spec stays as it is.
                    await self._register_delivery(settings.delivery, None)
                await self._note_spec_rejected(settings.reason)
                self.checker.last_status = None  # the first check after the fix rewrites the status
                await stopped.wait(SPEC_POLL_S * 10)
            elif settings.spec.paused:
                if not self.services.notifier.registered(self.namespace, self.name):
                    await self._register_delivery(settings.spec, settings.alertmanager_timeout_s)  # tickets page
                await self._note_paused()
                self.checker.last_status = None  # the first check after the pause rewrites the status
                await stopped.wait(SPEC_POLL_S)
            else:
                now = time.monotonic()
                due = now if self.last_start is None else self.last_start + settings.interval.total_seconds()
                if now < due:
                    await stopped.wait(min(SPEC_POLL_S, due - now))
                else:
                    await self._check(settings, now, due)
        except NotLeading:
            log.info("%s/%s: check abandoned: this replica stopped leading", self.namespace, self.name)

    async def _check(self, settings: ClusterSettings, now: float, due: float) -> None:
        self_metrics.CHECK_LAG.observe(now - due)
        with WATCHDOG.check(self.namespace, self.name, settings.probe_timeouts_s):
            await self._register_delivery(settings.spec, settings.alertmanager_timeout_s, settings.interval)
            self_metrics.CHECKS.labels(self.namespace, self.name).inc()
            try:
                result = await self.checker.check(dict(self.body), settings, self._tickets)
            except NotLeading:
                raise  # not a failure: another replica acts now
            except (ApiException, TimeoutError, OSError, aiohttp.ClientError) as error:
                # The API server itself is unavailable: nothing was decided, try again next interval.
                self_metrics.CHECK_FAILURES.labels(self.namespace, self.name).inc()
                log.warning("%s/%s: check not completed: %s", self.namespace, self.name, short_error(error))
            except Exception:
                # A bug must cost one check of one cluster, never the daemon that watches it.
                self_metrics.CHECK_FAILURES.labels(self.namespace, self.name).inc()
                log.exception("%s/%s: check failed", self.namespace, self.name)
            else:
                self._count(result)
        self_metrics.OPEN_TICKETS.count_cluster(self.namespace, self.name, self._tickets())
        self.last_start = now

    def _count(self, result: CheckResult) -> None:
        """The self-metrics of a check that completed."""
        self_metrics.CHECK_DURATION.observe(result.seconds)
        # A probe not attempted (its Secret unusable) is no error of PD's or Prometheus'.
        pd, metrics = result.observation.pd, result.observation.metrics
        if not pd.reachable and pd.not_contacted is None:
            self_metrics.PROBE_ERRORS.labels("pd").inc()
        if not metrics.reachable and metrics.not_contacted is None:
            self_metrics.PROBE_ERRORS.labels("prometheus").inc()
        for finding in result.findings:
            if finding.verdict == "violated":
                self_metrics.VIOLATIONS.labels(finding.invariant).inc()
        if result.failed_writes > len(result.conflicts):
            self_metrics.CHECK_FAILURES.labels(self.namespace, self.name).inc()
        else:
            self_metrics.LAST_SUCCESS.labels(self.namespace, self.name).set(time.time())

    async def _stand_by(self, stopped: kopf.DaemonStopped) -> None:
        """A standby: the watch and the ticket index stay warm, nothing is checked or written."""
        if self.last_start is not None:
            # Per-cluster series come from the replica that checks: a stale "last successful check"
            # here would page as if the cluster were no longer checked.
            self_metrics.forget_cluster(self.namespace, self.name)
        self.last_start = None  # the first check of a new term runs at once
        await stopped.wait(STANDBY_POLL_S)

    def _new_checker(self) -> ClusterChecker:
        return ClusterChecker(self.namespace, self.name, self._observe, self.services.writer,
                              delivery=lambda: self.services.notifier.report(self.namespace, self.name))

    async def _observe(self, settings: ClusterSettings, now: datetime, ticketed: frozenset[str]) -> Observation:
        credentials = await load_credentials(self.services.credentials, self.namespace, settings.spec)
        return await observe(self.name, settings, credentials, now, ticketed, namespace=self.namespace)

    def _tickets(self) -> Iterable[TicketView]:
        key = (self.namespace, self.name)
        return list(self.index[key]) if key in self.index else []

    async def _register_delivery(self, spec: TiKVClusterSpec, timeout_s: float | None,
                                 interval: timedelta | None = None) -> None:
        """Tell the notifier where this cluster's tickets go (and with which credentials), before each check.
        `timeout_s`: spec.alertmanager.timeout as worked out already (None: the notifier works it out)."""
        credentials, problem = await load_alertmanager_credentials(
            self.services.credentials, self.namespace, spec.alertmanager)
        self.services.notifier.register(self.namespace, self.name, spec, self._tickets, credentials, problem,
                                        timeout_s=timeout_s, check_interval=interval)

    async def _note_spec_rejected(self, reason: str) -> None:
        previous = parse_status(self.body.get("status"))
        if previous is not None and previous.message == f"spec rejected: {reason}":
            return
        log.error("%s/%s: spec rejected: %s", self.namespace, self.name, reason)
        generation = self.body.get("metadata", {}).get("generation")
        status = spec_rejected_status(previous, reason, generation, datetime.now(UTC))
        await self.services.writer.patch_cluster_status(self.namespace, self.name, status.wire())

    async def _note_paused(self) -> None:
        status = self.body.get("status") or {}
        if status.get("message") != "checks paused":
            await self.services.writer.patch_cluster_status(self.namespace, self.name, {"message": "checks paused"})

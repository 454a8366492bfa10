"""One TiKVCluster's checks: probe -> invariants -> lifecycle plan -> Kubernetes writes -> status.

Holds the little state a check needs between runs (pending violations, coalesced counters, the last
written status); everything that decides lives in the pure core."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from tikv_operator.alerts.core.delivery import DeliveryReport
from tikv_operator.checks.core.cluster_status import heartbeat, needs_write, next_status, read_memory
from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.invariants import evaluate
from tikv_operator.checks.core.observation import Observation
from tikv_operator.checks.core.settings import ClusterSettings
from tikv_operator.checks.core.store_memory import EMPTY, StoreMemory, remember
from tikv_operator.diagnosis.core.amend import amend_plan
from tikv_operator.kube.writer import KubeWriter
from tikv_operator.model.cluster_resource import PendingViolation, TiKVClusterStatus
from tikv_operator.model.timestamps import from_rfc3339
from tikv_operator.tickets.core.lifecycle import Plan, carried_pending, open_tickets_written, plan_check
from tikv_operator.tickets.core.ticket import TicketView

# (settings, now, stores with open tickets) -> what PD and Prometheus say of this checker's cluster.
Observer = Callable[[ClusterSettings, datetime, frozenset[str]], Awaitable[Observation]]
# The cluster's tickets as they are now (the operator's index): asked again after the probes.
TicketSource = Callable[[], Iterable[TicketView]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    observation: Observation
    findings: list[Finding]
    plan: Plan
    status_written: bool
    failed_writes: int
    seconds: float
    conflicts: frozenset[str] = frozenset()


@dataclass
class ClusterChecker:
    namespace: str
    name: str
    observer: Observer
    writer: KubeWriter
    pending: list[PendingViolation] | None = None
    # When the check that last carried `pending` ran (from the status after a restart or handover).
    pending_carried_at: datetime | None = None
    unwritten: dict[str, int] = field(default_factory=dict)
    last_status: TiKVClusterStatus | None = None
    # What earlier checks saw of the stores (restarts, leadership): store_restarted and store_leader_lost.
    # None until resumed from the status (rule 24).
    memory: StoreMemory | None = None
    # When the check that last carried `memory` ran: the memory of an unwatched time is not carried (rule 16).
    memory_carried_at: datetime | None = None
    # When each open ticket's violation was last seen, also between coalesced counter writes (keepFiringFor).
    last_violated: dict[str, datetime] = field(default_factory=dict)
    # Where the cluster's tickets are delivered and how that goes (the notifier), for AlertsDelivered.
    delivery: Callable[[], DeliveryReport | None] | None = None

    def resume(self, status: Mapping[str, Any] | None) -> None:
        """Take up where the last process left off: the grace clocks (rule 2) and the memory of the stores
        (rule 24) live in the status."""
        if self.last_status is None:
            self.last_status = parse_status(status)
        written_at = from_rfc3339(self.last_status.last_check_time) if self.last_status else None
        if self.pending is None:
            self.pending = list(self.last_status.pending_violations) if self.last_status else []
            self.pending_carried_at = written_at
        if self.memory is None:
            self.memory = read_memory(self.last_status.store_memory) if self.last_status else EMPTY
            self.memory_carried_at = written_at

    def _carried_memory(self, now: datetime, settings: ClusterSettings) -> StoreMemory:
        """The memory a check may go on from: rule 16's staleness, since restarts and leaders lost while
        nobody watched are not in it. Without a time (an older status), it is kept."""
        memory, at = self.memory or EMPTY, self.memory_carried_at
        if at is not None and now - at > settings.policy.refresh_interval + 2 * settings.interval:
            return EMPTY
        return memory

    async def check(self, body: Mapping[str, Any], settings: ClusterSettings, tickets: TicketSource,
                    now: datetime | None = None) -> CheckResult:
        """Probe -> invariants -> lifecycle plan -> ticket writes -> status."""
        started = time.perf_counter()
        self.resume(body.get("status"))
        now = now or datetime.now(UTC)
        ticketed = frozenset(t.store for t in tickets() if t.active and t.store)
        observation = await self.observer(settings, now, ticketed)
        configs, policy = settings.configs, settings.policy
        self.memory = remember(self._carried_memory(now, settings), observation, settings.restart_horizon)
        self.memory_carried_at = now
        findings = evaluate(observation, configs, self.memory)
        current = list(tickets())
        carried = carried_pending(self.pending or [], self.pending_carried_at, now, settings.interval, policy)
        plan = plan_check(
            cluster=self.name, now=now, batch=f"{self.name}-{now:%Y%m%d%H%M%S}", findings=findings,
            # Read after the probes (which may take seconds): a hold or resolve made meanwhile is planned on,
            # not overwritten; one made after this line makes its ticket's patches fail with 409.
            configs=configs, tickets=current, pending=carried, unwritten=self.unwritten,
            policy=policy, last_violated=self.last_violated,
        )
        # Rules 26 and 27: symptoms name their cause, causes carry their diagnosis.
        plan = amend_plan(plan, current, findings, now)
        applied = await self.writer.apply(self.namespace, body, plan.operations)
        self.pending, self.pending_carried_at = list(plan.pending), now
        self.last_violated = dict(plan.last_violated)
        self.unwritten = {**{k: v for k, v in self.unwritten.items() if k in applied.failed}, **plan.unwritten}
        plan = replace(plan, open_tickets=open_tickets_written(plan, applied.failed))
        generation = body.get("metadata", {}).get("generation")
        report = self.delivery() if self.delivery is not None else None
        status = next_status(self.last_status, observation, findings, plan, generation, report, self.memory)
        written = needs_write(self.last_status, status, policy.refresh_interval)
        if written:
            wire = status.wire()
            if status.store_memory is None:
                wire["storeMemory"] = None  # a memory that started over: the merge patch removes the stale one
            await self.writer.patch_cluster_status(self.namespace, self.name, wire)
            self.last_status = status
        log.info("%s/%s %s", self.namespace, self.name, heartbeat(findings, plan))
        return CheckResult(observation, findings, plan, written, len(applied.failed), time.perf_counter() - started,
                           applied.conflicts)


def parse_status(status: Mapping[str, Any] | None) -> TiKVClusterStatus | None:
    """The status as last written, or None when there is none or it no longer parses."""
    if not status:
        return None
    try:
        return TiKVClusterStatus.model_validate(status)
    except ValidationError:
        return None



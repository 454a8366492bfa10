"""The operator's own metrics (prometheus_client), on a port of their own.

Labels name clusters, invariants, severities and probe targets; never tickets, whose names are unbounded."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tikv_operator.checks.core.catalogue import INVARIANT_NAMES
from tikv_operator.model.vocabulary import SEVERITIES
from tikv_operator.tickets.core.ticket import TicketView

CHECKS = Counter("tikv_operator_checks_total", "Checks run.", ["namespace", "cluster"])
CHECK_FAILURES = Counter(
    "tikv_operator_check_failures_total", "Checks that could not complete or write their results.",
    ["namespace", "cluster"])
CHECK_DURATION = Histogram(
    "tikv_operator_check_duration_seconds", "Wall time of one check (probes, planning, writes).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CHECK_LAG = Histogram(
    "tikv_operator_check_lag_seconds", "Delay between a check's scheduled time and its start.",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
PROBE_ERRORS = Counter("tikv_operator_probe_errors_total", "Probes that got no correct answer.", ["target"])
# A cluster's own invariants (spec.customInvariants) are named by people and come and go: the label set of one
# not violated for this long is removed, so renamed or deleted ones do not pile up. Built-in ones stay.
CUSTOM_LABEL_IDLE_S = 24 * 3600.0
_PRUNE_EVERY_S = 60.0
_clock = time.monotonic


class _ViolationsCounter(Counter):
    """tikv_operator_violations_found_total: a Counter whose custom invariants' label sets go when idle."""

    _seen: dict[str, float] = {}  # noqa: RUF012  (one counter: its parent's bookkeeping)
    _pruned_at = 0.0
    _prune_lock = threading.Lock()

    def labels(self, *values: Any, **named: Any) -> Any:
        child = super().labels(*values, **named)
        invariant = str(values[0] if values else named.get("invariant", ""))
        now = _clock()
        with self._prune_lock:
            if invariant not in INVARIANT_NAMES:
                _ViolationsCounter._seen[invariant] = now
            if now - _ViolationsCounter._pruned_at >= _PRUNE_EVERY_S:
                _ViolationsCounter._pruned_at = now
                for name, at in list(self._seen.items()):
                    if now - at > CUSTOM_LABEL_IDLE_S:
                        del _ViolationsCounter._seen[name]
                        with contextlib.suppress(KeyError):
                            self.remove(name)
        return child


VIOLATIONS = _ViolationsCounter("tikv_operator_violations_found_total", "Violated invariants seen by checks.",
                                ["invariant"])


def count_violation(invariant: str) -> None:
    VIOLATIONS.labels(invariant).inc()
LAST_SUCCESS = Gauge(
    "tikv_operator_last_successful_check_timestamp_seconds", "Unix time of the last completed check.",
    ["namespace", "cluster"])
NOTIFICATIONS_SENT = Counter(
    "tikv_operator_notifications_sent_total", "Alerts posted to an Alertmanager (firing, resolved, watchdog).",
    ["alertmanager"])
NOTIFICATIONS_FAILED = Counter(
    "tikv_operator_notifications_failed_total",
    "Requests to an Alertmanager (alert posts, silences) that failed; the alerts are posted again.",
    ["alertmanager"])

LEADER = Gauge(
    "tikv_operator_leader", "1 while this replica acts (holds the Lease, or runs without leader election).")
LEADER_TRANSITIONS = Counter(
    "tikv_operator_leader_transitions_total", "Times this replica started leading (acquired the Lease).")

for _target in ("pd", "prometheus"):
    PROBE_ERRORS.labels(_target)


class OpenTickets(Collector):
    """Open tickets by severity. Each cluster's loop counts its own tickets after its check, on the event loop
    (which owns kopf's ticket index): a check costs its own tickets, not every ticket of every cluster. Read
    at scrape time only: the metrics endpoint runs on a thread of its own, and iterating the index there
    while the loop changes it can fail the scrape."""

    def __init__(self) -> None:
        self.by_cluster: Mapping[tuple[str, str], Mapping[str, int]] = {}

    @staticmethod
    def _tally(tickets: Iterable[TicketView]) -> dict[str, int]:
        return dict(Tally(t.severity or "unknown" for t in tickets if t.active))

    def count(self, tickets: Iterable[TicketView]) -> None:
        """Every ticket at once (one process-wide count in place of the per-cluster ones)."""
        self.by_cluster = {("", ""): self._tally(tickets)}

    def count_cluster(self, namespace: str, cluster: str, tickets: Iterable[TicketView]) -> None:
        self.by_cluster = {**self.by_cluster, (namespace, cluster): self._tally(tickets)}  # one atomic swap

    def forget(self, namespace: str, cluster: str) -> None:
        self.by_cluster = {key: counts for key, counts in self.by_cluster.items() if key != (namespace, cluster)}

    @property
    def counts(self) -> Mapping[str, int]:
        total: Tally[str] = Tally()
        for counts in self.by_cluster.values():
            total.update(counts)
        return dict(total)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self.counts
        family = GaugeMetricFamily("tikv_operator_open_tickets", "Tickets not resolved, by severity.",
                                   labels=["severity"])
        for severity in (*SEVERITIES, *sorted(set(counts) - set(SEVERITIES))):
            family.add_metric([severity], counts.get(severity, 0))
        yield family


OPEN_TICKETS = OpenTickets()
REGISTRY.register(OPEN_TICKETS)


def forget_cluster(namespace: str, cluster: str) -> None:
    for metric in (CHECKS, CHECK_FAILURES, LAST_SUCCESS):
        with contextlib.suppress(KeyError):
            metric.remove(namespace, cluster)
    OPEN_TICKETS.forget(namespace, cluster)


def forget_alertmanager(url: str) -> None:
    """No target sends to this Alertmanager any more: its series go (URLs come and go with the specs)."""
    for metric in (NOTIFICATIONS_SENT, NOTIFICATIONS_FAILED):
        with contextlib.suppress(KeyError):
            metric.remove(url)


def serve(port: int, address: str = "0.0.0.0") -> None:  # noqa: S104  (a pod must be scraped from outside)
    start_http_server(port, addr=address)

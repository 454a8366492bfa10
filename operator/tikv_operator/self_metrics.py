"""The operator's own metrics (prometheus_client), on a port of their own.

Labels name clusters, invariants, severities and probe targets; never tickets, whose names are unbounded."""

from __future__ import annotations

import contextlib
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
VIOLATIONS = Counter("tikv_operator_violations_found_total", "Violated invariants seen by checks.", ["invariant"])
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
    """Open tickets by severity. Counted on the event loop (which owns kopf's ticket index) after each check
    and only read at scrape time: the metrics endpoint runs on a thread of its own, and iterating the index
    there while the loop changes it can fail the scrape."""

    def __init__(self) -> None:
        self.counts: Mapping[str, int] = {}

    def count(self, tickets: Iterable[TicketView]) -> None:
        self.counts = dict(Tally(t.severity or "unknown" for t in tickets if t.active))  # one atomic swap

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


def serve(port: int, address: str = "0.0.0.0") -> None:  # noqa: S104  (a pod must be scraped from outside)
    start_http_server(port, addr=address)

"""Tickets as Alertmanager alerts, and acknowledgements as silences: what to send, and when (pure).

The cadence is Prometheus' own (rules/alerting.go, reference/alerting.md 1.2): an open ticket is sent at
once and re-sent every `resend` with endsAt = now + 4 x resend, so Alertmanager never times it out while
the operator lives, even through two lost posts; a resolved ticket is sent with endsAt = resolvedAt and
re-sent for 15 minutes (an Alertmanager that restarted, or missed the post, still learns of it).

Identity: Alertmanager deduplicates by the label set, so the labels are a function of the ticket alone
(name, invariant, store, cluster, namespace, severity): a restarted operator or a second replica sends the
same alert, never a second one. Severity only rises within a ticket; when it does, the old label set is
resolved and the new one fires, so a route on severity (warning to chat, critical to the pager) sees the
escalation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from tikv_operator.checks.core.catalogue import INVARIANT_NAMES
from tikv_operator.diagnosis.core.causes import LINKS_BY_RULE
from tikv_operator.model.cluster_resource import RESERVED_ALERT_LABELS
from tikv_operator.model.timestamps import to_rfc3339
from tikv_operator.model.vocabulary import SEVERITIES, Phase
from tikv_operator.tickets.core.ticket import TicketView

ALERTNAME = "alertname"
WATCHDOG = "TiKVOperatorWatchdog"
# Phases in which a person may have taken the ticket. Acknowledged always silences; Diagnosed only when a person
# set it: the operator's Diagnosed carries a diagnosis and silences nothing (rule 27, `silenced`).
SILENCED_PHASES = frozenset({Phase.ACKNOWLEDGED, Phase.DIAGNOSED})
SILENCE_CREATOR = "tikv-operator"
DESCRIPTION_CHARS = 400
# Check intervals a symptom whose cause resolved waits for a check that judges it again (rule 26).
SETTLE_CHECKS = 2
# The least urgent severity a ticket rises from: store_down opens as a warning (Disconnected is never more than
# a warning) and rises when PD calls the store Down; nothing opens at info and rises.
RISES_FROM = "warning"
# Evidence that is not worth a line of the page (long queries go in generatorURL instead).
_NOT_DESCRIBED = frozenset({"query", "series", "key", "source"})

Fingerprint = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class AlertPolicy:
    resend: timedelta = timedelta(minutes=1)
    resolved_retention: timedelta = timedelta(minutes=15)
    silence_duration: timedelta = timedelta(hours=24)
    # "{invariant}" is replaced by the invariant's name; empty: no runbook_url annotation.
    runbook_url: str = ""

    @property
    def valid_for(self) -> timedelta:
        """Prometheus' ValidUntil: two resends may be lost before Alertmanager resolves on its own."""
        return 4 * self.resend


@dataclass(frozen=True)
class AlertContext:
    """What an alert says about the TiKVCluster its ticket belongs to."""

    namespace: str
    cluster: str
    labels: Mapping[str, str] = field(default_factory=dict)
    pd_url: str = ""
    prometheus_url: str = ""
    # How long a symptom whose cause resolved still waits for a check to judge it again (rule 26).
    settle: timedelta = timedelta(0)


@dataclass(frozen=True)
class Alert:
    labels: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime
    firing: bool
    annotations: Mapping[str, str] = field(default_factory=dict)
    generator_url: str = ""

    @property
    def fingerprint(self) -> Fingerprint:
        return tuple(sorted(self.labels.items()))

    def resolved(self, at: datetime) -> Alert:
        """The same alert, resolved at `at` (never before it started)."""
        return Alert(self.labels, self.starts_at, max(at, self.starts_at), False, self.annotations,
                     self.generator_url)

    def wire(self) -> dict[str, Any]:
        """A postableAlert of Alertmanager's API v2."""
        body: dict[str, Any] = {"labels": dict(self.labels), "annotations": dict(self.annotations),
                                "startsAt": to_rfc3339(self.starts_at), "endsAt": to_rfc3339(self.ends_at)}
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body


def alert_labels(ticket: TicketView, context: AlertContext) -> dict[str, str]:
    labels = {k: v for k, v in context.labels.items() if k not in RESERVED_ALERT_LABELS and v}  # identity holds
    labels |= {ALERTNAME: ticket.invariant, "namespace": context.namespace, "tikv_cluster": context.cluster,
               "severity": ticket.severity or "", "ticket": ticket.name}
    if ticket.store:
        labels["store"] = ticket.store
    return labels


def silenced(ticket: TicketView) -> bool:
    """Rule 27: a person's acknowledgement silences a ticket's page; a diagnosis alone never does. The operator
    writes Diagnosed only with a diagnosis, so a Diagnosed ticket without one is a person's (kubectl patch, an
    older operator) and keeps the silence it always had."""
    return ticket.phase == Phase.ACKNOWLEDGED or (ticket.phase == Phase.DIAGNOSED and not ticket.operator_diagnosed)


def held_back(ticket: TicketView, tickets: Mapping[str, TicketView], now: datetime,
              settle: timedelta = timedelta(0)) -> bool:
    """Rule 26: a symptom does not page while the ticket named as its cause is open (the cause pages for both).
    `tickets`: the cluster's tickets by name. Once the cause resolved, the symptom waits at most `settle` (two of
    the cluster's check intervals, SETTLE_CHECKS) plus the time its link says such a symptom takes to clear
    (`clears_within`: a region heartbeat for the region gauges): time for a check to see it cleared, since a
    symptom measured through Prometheus clears a scrape or a heartbeat after its cause. Still open after that, it
    pages on its own at the next delivery. A cause that is gone holds nothing. An alert of the symptom that went
    out before its cause was known is sent resolved (plan_sends: no longer desired): one incident, one page."""
    if ticket.cause is None or not ticket.active or ticket.cause.ticket == ticket.name:
        return False
    cause = tickets.get(ticket.cause.ticket)
    if cause is None:
        return False
    if cause.active:
        return True
    link = LINKS_BY_RULE.get(ticket.cause.rule)
    clears_within = link.clears_within if link is not None else timedelta(0)
    return cause.resolved_at is not None and now - cause.resolved_at < settle + clears_within


def _diagnosis_annotations(ticket: TicketView, tickets: Mapping[str, TicketView]) -> dict[str, str]:
    """What the page says of correlation: a cause's diagnosis and the tickets it explains (rule 27), a symptom's
    cause (rule 26; seen only once the cause resolved, since until then the symptom does not page)."""
    out: dict[str, str] = {}
    if ticket.diagnosis is not None:
        out["diagnosis"] = ticket.diagnosis.summary[:DESCRIPTION_CHARS * 2]
        if ticket.diagnosis.explains:
            out["explains"] = ", ".join(e.ticket for e in ticket.diagnosis.explains)[:DESCRIPTION_CHARS * 2]
        if ticket.diagnosis.runbook:
            out["diagnosis_runbook"] = ticket.diagnosis.runbook
    if ticket.cause is not None:
        out["cause"] = f"{ticket.cause.ticket} ({ticket.cause.rule})"
        cause = tickets.get(ticket.cause.ticket)
        if cause is not None and not cause.active and cause.resolved_at is not None:
            out["cause"] += f", resolved at {to_rfc3339(cause.resolved_at)}: this ticket outlived its cause"
    return out


def describe(ticket: TicketView) -> str:
    """The evidence in a line or two: the observed values, not the queries behind them."""
    parts = [f"{key}={value}" for key, value in (ticket.evidence or {}).items()
             if key not in _NOT_DESCRIBED and isinstance(value, str | int | float | bool)]
    text = ", ".join(parts) or ticket.message
    return text if len(text) <= DESCRIPTION_CHARS else text[: DESCRIPTION_CHARS - 1] + "…"


def generator_url(ticket: TicketView, context: AlertContext) -> str:
    """Where the value came from: the Prometheus graph of the query, or PD's API for a store's state."""
    evidence = ticket.evidence or {}
    query = evidence.get("query")
    if isinstance(query, str) and query and context.prometheus_url:
        return f"{context.prometheus_url.rstrip('/')}/graph?g0.expr={quote(query, safe='')}&g0.tab=1"
    if context.pd_url and ticket.store and "stateName" in evidence:
        return f"{context.pd_url.rstrip('/')}/pd/api/v1/store/{ticket.store}"
    url = evidence.get("url")
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else ""


def ticket_alert(ticket: TicketView, context: AlertContext, now: datetime, policy: AlertPolicy,
                 tickets: Mapping[str, TicketView] | None = None) -> Alert | None:
    """The alert of a ticket now, or None when there is nothing (more) to send: its status not written yet
    (the next check writes it), or resolved longer ago than the retention. `tickets`: the cluster's, by name (what
    the page says of a cause)."""
    if ticket.phase is None or not ticket.severity:
        return None
    starts = ticket.first_seen or ticket.created or now
    if ticket.active:
        ends, firing = now + policy.valid_for, True
    else:
        resolved = ticket.resolved_at or ticket.last_seen or now
        if now - resolved > policy.resolved_retention:
            return None
        ends, firing = max(resolved, starts), False
    annotations = {"summary": ticket.message or f"{ticket.invariant} {ticket.store}".strip(),
                   "description": describe(ticket), **_diagnosis_annotations(ticket, tickets or {})}
    # The runbooks (docs/runbooks) are the built-in invariants'; a cluster's own invariants have none there.
    if policy.runbook_url and ticket.invariant in INVARIANT_NAMES:
        annotations["runbook_url"] = policy.runbook_url.replace("{invariant}", ticket.invariant)
    return Alert(alert_labels(ticket, context), starts, ends, firing, annotations, generator_url(ticket, context))


def superseded(alert: Alert, now: datetime) -> list[Alert]:
    """The label sets a ticket's alert had before its severity rose, resolved, for as long as its own alert is
    sent. The process that raises a ticket's severity resolves the old label set (plan_sends), but it may die
    between writing the ticket and posting that, and its successor never saw the old set: it would fire on
    until its endsAt, minutes after the ticket resolved. So whoever leads sends them; Alertmanager notifies
    nobody of a resolved alert it never had."""
    severity = alert.labels.get("severity", "")
    if severity not in SEVERITIES:
        return []
    less_urgent = SEVERITIES[SEVERITIES.index(severity) + 1: SEVERITIES.index(RISES_FROM) + 1]
    ends = now if alert.firing else alert.ends_at
    return [Alert({**alert.labels, "severity": lower}, alert.starts_at, max(ends, alert.starts_at), False,
                  alert.annotations, alert.generator_url) for lower in less_urgent]


def watchdog_alert(started: datetime, now: datetime, policy: AlertPolicy, labels: Mapping[str, str]) -> Alert:
    """Always firing while an operator lives: when it stops arriving, the operator is dead or cut off (a
    dead man's switch, as kube-prometheus' Watchdog)."""
    annotations = {"summary": "tikv-operator is running",
                   "description": "Always firing while a tikv-operator runs; route it to a dead man's switch. "
                                  "If it stops, tickets stop reaching Alertmanager."}
    return Alert({ALERTNAME: WATCHDOG, "severity": "none", **labels}, started, now + policy.valid_for, True,
                 annotations)


@dataclass(frozen=True)
class Sent:
    """What was last posted to one Alertmanager for one label set, and when."""

    alert: Alert
    at: datetime


@dataclass(frozen=True)
class Sends:
    alerts: tuple[Alert, ...]
    forget: tuple[Fingerprint, ...]


def plan_sends(desired: Iterable[Alert], sent: Mapping[Fingerprint, Sent], now: datetime,
               policy: AlertPolicy) -> Sends:
    """Prometheus' needsSending, per Alertmanager: a new or changed state at once, the same state once per
    resend. A label set no longer desired (its ticket deleted, its severity risen, its cluster deleted) is
    sent resolved once and re-sent like any resolved alert; forgotten after the retention."""
    out: list[Alert] = []
    wanted: dict[Fingerprint, Alert] = {}
    for alert in desired:
        wanted[alert.fingerprint] = alert
    for fingerprint, alert in wanted.items():
        last = sent.get(fingerprint)
        if last is None or last.alert.firing != alert.firing or now - last.at >= policy.resend:
            out.append(alert)
    forget: list[Fingerprint] = []
    for fingerprint, last in sent.items():
        if fingerprint in wanted:
            continue
        if last.alert.firing:
            out.append(last.alert.resolved(now))
        elif now - last.alert.ends_at > policy.resolved_retention:
            forget.append(fingerprint)
        elif now - last.at >= policy.resend:
            out.append(last.alert)
    return Sends(tuple(out), tuple(forget))


SilenceAction = Literal["create", "expire"]


@dataclass(frozen=True)
class SilenceOp:
    action: SilenceAction
    alertmanager: str
    ticket: str
    silence_id: str = ""


def silence_ops(ticket: TicketView, alertmanagers: Iterable[str], gone: Collection[str] = ()) -> list[SilenceOp]:
    """Acknowledge = silence (reference/alerting.md 1.3): an Acknowledged ticket (or one a person marked
    Diagnosed; rule 27, `silenced`) has a silence on every Alertmanager it is sent to; any other has none
    (a resolved ticket's silence is
    expired, so the identity pages again if it comes back). `gone`: recorded silence ids their Alertmanager no
    longer has at all (it restarted without its storage): made again. One it has as expired is not: a
    silence ends after silenceDuration on purpose."""
    recorded = {url: silence_id for url, silence_id in ticket.silences.items() if silence_id not in gone}
    if silenced(ticket):
        return [SilenceOp("create", url, ticket.name) for url in alertmanagers if url not in recorded]
    return [SilenceOp("expire", url, ticket.name, silence_id) for url, silence_id in sorted(recorded.items())]


def silence_matchers(namespace: str, ticket: str) -> list[dict[str, Any]]:
    """The ticket's alerts and nothing else: ticket names are unique only within a namespace."""
    return [{"name": "ticket", "value": ticket, "isRegex": False, "isEqual": True},
            {"name": "namespace", "value": namespace, "isRegex": False, "isEqual": True}]


def silence_body(ticket: TicketView, namespace: str, now: datetime, policy: AlertPolicy) -> dict[str, Any]:
    """A postableSilence for an acknowledged ticket; it ends by itself after `silence_duration` (an
    acknowledgement nobody acts on pages again), and earlier when the ticket resolves."""
    what = ticket.message or ticket.invariant
    return {"matchers": silence_matchers(namespace, ticket.name), "startsAt": to_rfc3339(now),
            "endsAt": to_rfc3339(now + policy.silence_duration), "createdBy": SILENCE_CREATOR,
            "comment": f"OperatorTicket {namespace}/{ticket.name} is {ticket.phase}: {what}"[:1000]}


def is_our_silence(silence: Mapping[str, Any], namespace: str, ticket: str) -> bool:
    """An active or pending silence this operator made for the ticket (one made earlier by a process that
    died before recording its id, or by another replica): reused rather than doubled."""
    state = (silence.get("status") or {}).get("state")
    matchers = [{k: m.get(k) for k in ("name", "value", "isRegex")} for m in silence.get("matchers") or []]
    wanted = [{k: m[k] for k in ("name", "value", "isRegex")} for m in silence_matchers(namespace, ticket)]
    return (state in ("active", "pending") and silence.get("createdBy") == SILENCE_CREATOR
            and sorted(matchers, key=str) == sorted(wanted, key=str))


@dataclass(frozen=True)
class TargetHealth:
    """How the last attempt to reach one Alertmanager went (ok None: nothing attempted yet)."""

    url: str
    ok: bool | None = None
    error: str = ""
    failing_since: datetime | None = None


@dataclass(frozen=True)
class DeliveryReport:
    """Where a cluster's tickets go and whether they got there, for its AlertsDelivered condition."""

    targets: tuple[TargetHealth, ...] = ()
    disabled: bool = False
    problem: str = ""  # a Secret the delivery needs could not be used: nothing is sent


ConditionVerdict = tuple[Literal["True", "False", "Unknown"], str, str]


def alerts_delivered(report: DeliveryReport) -> ConditionVerdict:
    """(status, reason, message) of the AlertsDelivered condition: can a ticket of this cluster page?"""
    if report.disabled:
        return "Unknown", "Disabled", "spec.alertmanager.enabled is false: tickets are sent nowhere"
    if not report.targets:
        return "Unknown", "NotConfigured", ("no Alertmanager: tickets stay in the cluster (set "
                                            "spec.alertmanager.urls, or the operator's --alertmanager-url)")
    if report.problem:
        return "False", "CredentialsUnavailable", f"nothing sent: {report.problem}"
    failing = [t for t in report.targets if t.ok is False]
    if failing:
        since = ", ".join(f"{t.url}: {t.error}" + (f" (since {to_rfc3339(t.failing_since)})" if t.failing_since
                                                    else "") for t in failing)
        return "False", "DeliveryFailed", f"tickets are not reaching {since}"
    if any(t.ok is None for t in report.targets):
        return "Unknown", "Pending", f"not sent yet to {', '.join(t.url for t in report.targets if t.ok is None)}"
    return "True", "Delivered", f"alerts delivered to {', '.join(t.url for t in report.targets)}"

"""Delivery of tickets to Alertmanager, beside the checks (docs/design.md, where a page goes).

One task per Alertmanager (per set of credentials) posts what alerts.core.delivery plans, from the operator's
index of tickets: a slow or dead Alertmanager delays neither a check nor another Alertmanager. Clusters
register after each check (where to send, their labels and credentials); the tickets are read live, so a
new ticket or an acknowledgement goes out within a tick, not at the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator import self_metrics
from tikv_operator.alerts.alertmanager import AlertmanagerClient, DeliveryError
from tikv_operator.alerts.core.delivery import (
    SETTLE_CHECKS,
    Alert,
    AlertContext,
    AlertPolicy,
    DeliveryReport,
    Fingerprint,
    Sent,
    SilenceOp,
    TargetHealth,
    held_back,
    is_our_silence,
    plan_sends,
    silence_body,
    silence_matchers,
    silence_ops,
    silenced,
    superseded,
    ticket_alert,
    watchdog_alert,
)
from tikv_operator.kube.api import NotLeading, server_message
from tikv_operator.kube.credentials import NO_ALERTMANAGER_CREDENTIALS, AlertmanagerCredentials
from tikv_operator.model.cluster_resource import TiKVClusterSpec
from tikv_operator.model.durations import parse_duration
from tikv_operator.tickets.core.ticket import TicketView

log = logging.getLogger(__name__)

TICK_S = 1.0
BATCH = 1000
MAX_BACKOFF_S = 30.0
DEFAULT_TIMEOUT_S = 10.0

# (url, namespace of the Secrets, TLS Secret, auth Secret, timeout in seconds): two clusters that reach one
# Alertmanager with different credentials or timeouts are two targets, each with its own connection, records
# and backoff, so one tenant's spec.alertmanager never changes another's delivery; clusters that spell both the
# same share one.
TargetKey = tuple[str, str, str, str, float]
Tickets = Callable[[], Iterable[TicketView]]


class SilenceRecorder(Protocol):
    async def record_silence(self, namespace: str, ticket: str, alertmanager: str, silence_id: str | None
                             ) -> None: ...


@dataclass
class Registration:
    context: AlertContext
    keys: tuple[TargetKey, ...]
    tickets: Tickets
    disabled: bool = False
    problem: str = ""


@dataclass
class Target:
    key: TargetKey
    client: AlertmanagerClient | None
    setup_error: str = ""
    sent: dict[Fingerprint, Sent] = field(default_factory=dict)
    health: TargetHealth | None = None
    failures: int = 0
    retry_at: float = 0.0
    task: asyncio.Task[None] | None = None
    # Clients replaced by rotated credentials, closed between rounds: never under a request in flight.
    retired: list[AlertmanagerClient] = field(default_factory=list)
    # When the silences this Alertmanager has were last listed (to find the ones it forgot).
    silences_listed: datetime | None = None
    # Since when no cluster sends here (None: one does): its alerts' resolution is given up after the retention.
    unused_since: datetime | None = None

    @property
    def url(self) -> str:
        return self.key[0]


def _client(url: str, timeout_s: float, credentials: AlertmanagerCredentials) -> tuple[AlertmanagerClient | None, str]:
    try:
        return AlertmanagerClient(url, timeout_s, credentials), ""
    except DeliveryError as error:
        return None, str(error)


class Notifier:
    def __init__(self, policy: AlertPolicy, default_urls: Sequence[str] = (), recorder: SilenceRecorder | None = None,
                 watchdog_labels: Mapping[str, str] | None = None, active: Callable[[], bool] = lambda: True) -> None:
        self.policy = policy
        # Only the replica that acts pages (HA: the one holding the Lease); a standby's records stay, and it
        # sends what is due the moment it leads.
        self.active = active
        self.default_urls = tuple(default_urls)
        self.recorder = recorder
        self.watchdog_labels = dict(watchdog_labels or {})
        self.started = datetime.now(UTC)
        self.clusters: dict[tuple[str, str], Registration] = {}
        self.targets: dict[TargetKey, Target] = {}
        # Silences made or expired whose record in the ticket's status the index does not show yet:
        # (namespace, ticket, url) -> id, "" for expired. Without it a tick would act on a stale record twice.
        self._silences: dict[tuple[str, str, str], str] = {}
        self._closed = False

    # -- registration (called by the handlers) ----------------------------------------------------

    def start(self) -> None:
        """The operator's default Alertmanagers get the watchdog from the start, clusters or not."""
        for key in self._default_keys():
            self._target(key, NO_ALERTMANAGER_CREDENTIALS)

    def _default_keys(self) -> tuple[TargetKey, ...]:
        return tuple((url, "", "", "", DEFAULT_TIMEOUT_S) for url in self.default_urls)

    def register(self, namespace: str, name: str, spec: TiKVClusterSpec, tickets: Tickets,
                 credentials: AlertmanagerCredentials = NO_ALERTMANAGER_CREDENTIALS, problem: str = "",
                 timeout_s: float | None = None, check_interval: timedelta | None = None) -> None:
        """`timeout_s`: spec.alertmanager.timeout as the cluster's settings parsed it (else parsed here).
        `check_interval`: the cluster's; a symptom whose cause resolved waits that long twice (rule 26)."""
        am = spec.alertmanager
        disabled = am is not None and not am.enabled
        urls: tuple[str, ...] = () if disabled else (tuple(am.urls) if am and am.urls else self.default_urls)
        if timeout_s is None:
            timeout_s = parse_duration(am.timeout).total_seconds() if am else DEFAULT_TIMEOUT_S
        tls = am.tls_secret.name if am and am.tls_secret else ""
        auth = am.auth_secret.name if am and am.auth_secret else ""
        keys = tuple((url, namespace if (tls or auth) else "", tls, auth, float(timeout_s)) for url in urls)
        previous = self.clusters.get((namespace, name))
        if problem and previous is not None:
            # The Secrets cannot be read now: keep sending with the last good ones (the targets keep their
            # clients), never let the cluster's alerts lapse into "resolved" because of a Secret.
            keys = previous.keys
        elif not problem:
            for key in keys:
                self._target(key, credentials)
        previous_settle = previous.context.settle if previous is not None else timedelta(0)
        settle = SETTLE_CHECKS * check_interval if check_interval is not None else previous_settle
        context = AlertContext(namespace, name, dict(am.labels) if am else {}, spec.pd.url, spec.prometheus.url,
                               settle)
        self.clusters[(namespace, name)] = Registration(context, keys, tickets, disabled, problem)

    def registered(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.clusters

    def retire(self, namespace: str, name: str) -> None:
        """The TiKVCluster was deleted: its alerts are resolved (the next tick sends them resolved)."""
        self.clusters.pop((namespace, name), None)

    def report(self, namespace: str, name: str) -> DeliveryReport | None:
        registration = self.clusters.get((namespace, name))
        if registration is None:
            return None
        healths = []
        for key in registration.keys:
            target = self.targets.get(key)
            healths.append(target.health if target is not None and target.health is not None else TargetHealth(key[0]))
        return DeliveryReport(tuple(healths), registration.disabled, registration.problem)

    def _target(self, key: TargetKey, credentials: AlertmanagerCredentials) -> None:
        target = self.targets.get(key)
        if target is not None and target.client is not None and target.client.credentials == credentials:
            return
        client, error = _client(key[0], key[4], credentials)
        if target is None:
            target = Target(key, client, error)
            self.targets[key] = target
            if not self._closed:
                target.task = asyncio.get_running_loop().create_task(self._run(target), name=f"alertmanager {key[0]}")
        else:  # rotated credentials: a new connection, the same records; the old one closes after its round
            old, target.client, target.setup_error = target.client, client, error
            if old is not None:
                target.retired.append(old)

    async def close(self) -> None:
        self._closed = True
        for target in self.targets.values():
            if target.task is not None:
                target.task.cancel()
        for target in self.targets.values():
            if target.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await target.task
            await self._close_retired(target)
            if target.client is not None:
                await target.client.aclose()

    @staticmethod
    async def _close_retired(target: Target) -> None:
        while target.retired:
            await target.retired.pop().aclose()

    # -- one Alertmanager's loop ---------------------------------------------------------------------

    def _users(self, key: TargetKey) -> Iterator[Registration]:
        return (r for r in list(self.clusters.values()) if key in r.keys)

    def desired(self, key: TargetKey, now: datetime) -> list[Alert]:
        alerts: list[Alert] = []
        used = False
        for registration in self._users(key):
            used = True
            tickets = list(registration.tickets())
            by_name = {t.name: t for t in tickets}
            for ticket in tickets:
                if held_back(ticket, by_name, now, registration.context.settle):
                    continue  # rule 26: its cause pages for it
                alert = ticket_alert(ticket, registration.context, now, self.policy, by_name)
                if alert is not None:
                    alerts.append(alert)
                    alerts.extend(superseded(alert, now))
        if used or key in self._default_keys():
            alerts.append(watchdog_alert(self.started, now, self.policy, self.watchdog_labels))
        return alerts

    async def _run(self, target: Target) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if time.monotonic() < target.retry_at or not self.active():
                continue
            try:
                await self.deliver(target, datetime.now(UTC))
            except NotLeading:
                continue  # lost the Lease mid-round: the new leader sends
            except Exception as error:
                # A bug must cost one delivery round, never the loop that pages people; the round failed like
                # any other, backed off and reported (AlertsDelivered), not retried every tick in silence.
                log.exception("alertmanager %s: delivery round failed", target.url)
                self._failed(target, f"delivery round failed ({type(error).__name__})", datetime.now(UTC))
            await self._close_retired(target)
            if self.unused(target, datetime.now(UTC)):
                await self.drop(target)
                return

    def unused(self, target: Target, now: datetime) -> bool:
        """No cluster sends here any more, and every alert sent here has been resolved and retained, or could
        not be for the resolved retention (an Alertmanager gone for good: its alerts end by their endsAt)."""
        if target.key in self._default_keys() or any(True for _ in self._users(target.key)):
            target.unused_since = None
            return False
        if target.unused_since is None:
            target.unused_since = now
        return not target.sent or now - target.unused_since > self.policy.resolved_retention

    async def drop(self, target: Target) -> None:
        if self.targets.get(target.key) is target:
            del self.targets[target.key]
        await self._close_retired(target)
        if target.client is not None:
            await target.client.aclose()
        if not any(other.url == target.url for other in self.targets.values()):
            self_metrics.forget_alertmanager(target.url)

    async def deliver(self, target: Target, now: datetime) -> None:
        """One round: post what is due, then make or expire the silences acknowledgements ask for."""
        if target.client is None:
            self._failed(target, target.setup_error, now)
            return
        desired = self.desired(target.key, now)
        self._hand_over(target, desired, now)
        sends = plan_sends(desired, target.sent, now, self.policy)
        # Past the retention whether or not the last re-send got there: an Alertmanager that never answers
        # again must not keep its records for ever.
        for fingerprint in sends.forget:
            target.sent.pop(fingerprint, None)
        try:
            for start in range(0, len(sends.alerts), BATCH):
                batch = sends.alerts[start:start + BATCH]
                await target.client.post_alerts([a.wire() for a in batch])
                for alert in batch:
                    target.sent[alert.fingerprint] = Sent(alert, now)
                self_metrics.NOTIFICATIONS_SENT.labels(target.url).inc(len(batch))
            await self._silence_round(target, now)
        except DeliveryError as error:
            self._failed(target, str(error), now)
            return
        self._succeeded(target, now)

    def _hand_over(self, target: Target, desired: Sequence[Alert], now: datetime) -> None:
        """Alerts this target fired that another target of the same Alertmanager now sends (a cluster whose
        timeout or credentials changed, the watchdog of a target no cluster uses any more) pass to that target's
        records instead of being resolved here: the Alertmanager would get resolved and firing in turn."""
        wanted = {alert.fingerprint for alert in desired}
        orphans = [fp for fp, last in target.sent.items() if last.alert.firing and fp not in wanted]
        if not orphans:
            return  # the common case, without asking the other targets
        for other in list(self.targets.values()):
            if other is target or other.url != target.url:
                continue
            theirs = {alert.fingerprint for alert in self.desired(other.key, now)}
            for fingerprint in [fp for fp in orphans if fp in theirs]:
                other.sent.setdefault(fingerprint, target.sent[fingerprint])
                del target.sent[fingerprint]
                orphans.remove(fingerprint)
            if not orphans:
                return

    def _failed(self, target: Target, error: str, now: datetime) -> None:
        self_metrics.NOTIFICATIONS_FAILED.labels(target.url).inc()
        target.failures += 1
        target.retry_at = time.monotonic() + min(MAX_BACKOFF_S, 2.0 ** (target.failures - 1))
        previous = target.health
        since = previous.failing_since if previous is not None and previous.ok is False else now
        target.health = TargetHealth(target.url, False, error, since)
        if previous is None or previous.ok is not False:
            log.warning("alertmanager %s: delivery failing: %s", target.url, error)

    def _succeeded(self, target: Target, now: datetime) -> None:
        if target.health is not None and target.health.ok is False:
            log.info("alertmanager %s: delivering again after %d failed attempts", target.url, target.failures)
        target.failures, target.retry_at = 0, 0.0
        target.health = TargetHealth(target.url, True)

    # -- acknowledgements as silences ------------------------------------------------------------

    def _recorded(self, namespace: str, ticket: TicketView) -> dict[str, str]:
        """The ticket's silences as this process knows them: its status, overlaid by what was done since."""
        recorded = dict(ticket.silences)
        for (ns, name, url), silence_id in list(self._silences.items()):
            if ns != namespace or name != ticket.name:
                continue
            if recorded.get(url, "") == silence_id:
                del self._silences[(ns, name, url)]  # the index has caught up
            elif silence_id:
                recorded[url] = silence_id
            else:
                recorded.pop(url, None)
        return recorded

    async def _silence_round(self, target: Target, now: datetime) -> None:
        present: set[str] | None = None  # the silence ids the Alertmanager has, when listed this round
        for registration in self._users(target.key):
            namespace = registration.context.namespace
            for ticket in registration.tickets():
                if not ticket.silences and not silenced(ticket) and not any(
                        k[0] == namespace and k[1] == ticket.name for k in self._silences):
                    continue  # the common case, without building anything
                view = replace(ticket, silences=self._recorded(namespace, ticket))
                gone: set[str] = set()
                recorded = view.silences.get(target.url)
                if recorded and silenced(view):
                    if present is None and self._silences_due(target, now):
                        # One list per resend interval, not one request per ticket: an Alertmanager restarted
                        # without storage has forgotten the silences of acknowledged tickets.
                        assert target.client is not None
                        present = {str(s.get("id")) for s in await target.client.silences([])}
                        target.silences_listed = now
                    if present is not None and recorded not in present:
                        log.info("ticket %s/%s: silence %s is gone from %s (restarted without storage?): "
                                 "silencing again", namespace, ticket.name, recorded, target.url)
                        gone.add(recorded)
                for op in silence_ops(view, [target.url], gone):
                    if op.alertmanager == target.url:
                        await self._apply_silence(target, namespace, view, op, now)

    def _silences_due(self, target: Target, now: datetime) -> bool:
        return target.silences_listed is None or now - target.silences_listed >= self.policy.resend

    async def _apply_silence(self, target: Target, namespace: str, ticket: TicketView, op: SilenceOp,
                             now: datetime) -> None:
        assert target.client is not None
        key = (namespace, ticket.name, target.url)
        if op.action == "create":
            matchers = silence_matchers(namespace, ticket.name)
            ours = [s for s in await target.client.silences(matchers) if is_our_silence(s, namespace, ticket.name)]
            silence_id = str(ours[0]["id"]) if ours else await target.client.create_silence(
                silence_body(ticket, namespace, now, self.policy))
            self._silences[key] = silence_id
            log.info("ticket %s/%s: %s, silenced on %s (silence %s)", namespace, ticket.name, ticket.phase,
                     target.url, silence_id)
            await self._record(namespace, ticket.name, target.url, silence_id)
        else:
            await target.client.expire_silence(op.silence_id)
            self._silences[key] = ""
            log.info("ticket %s/%s: %s, silence %s on %s expired", namespace, ticket.name, ticket.phase,
                     op.silence_id, target.url)
            await self._record(namespace, ticket.name, target.url, None)

    async def _record(self, namespace: str, ticket: str, url: str, silence_id: str | None) -> None:
        if self.recorder is None:
            return
        try:
            await self.recorder.record_silence(namespace, ticket, url, silence_id)
        except ApiException as error:
            # This process remembers what it did (self._silences); a restarted one finds its silence by
            # its matchers, so a lost record costs no second silence.
            if error.status != 404:  # a deleted ticket needs no record
                log.warning("ticket %s/%s: silence not recorded in its status (%s)", namespace, ticket,
                            server_message(error))
        except (TimeoutError, OSError) as error:
            log.warning("ticket %s/%s: silence not recorded in its status (%s)", namespace, ticket,
                        type(error).__name__)

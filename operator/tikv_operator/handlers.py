"""kopf handlers, kept thin: a daemon per TiKVCluster runs its checks; ticket edits by people are
recorded; an index of tickets per cluster spares every check a LIST call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException
from pydantic import ValidationError

from tikv_operator import self_metrics
from tikv_operator.adapters.credentials import SecretCache, load_alertmanager_credentials, load_credentials
from tikv_operator.adapters.kube_api import NotLeading, TimedApiClient, server_message, short_error
from tikv_operator.adapters.kube_writer import KubeWriter
from tikv_operator.adapters.probe import observe
from tikv_operator.checker import ClusterChecker, interval_of, parse_spec, parse_status
from tikv_operator.core.alerts import AlertPolicy
from tikv_operator.core.cluster_resource import TiKVClusterSpec, spec_error
from tikv_operator.core.cluster_status import spec_rejected_status
from tikv_operator.core.durations import parse_duration
from tikv_operator.core.lifecycle import react_to_edit
from tikv_operator.core.observation import Observation
from tikv_operator.core.tickets import TicketView
from tikv_operator.core.vocabulary import GROUP, VERSION
from tikv_operator.health import serve_health
from tikv_operator.leader_election import Leadership, user_agent
from tikv_operator.notifier import Notifier
from tikv_operator.watchdog import WATCHDOG

FINALIZER = f"{GROUP}/finalizer"
# How often a sleeping daemon looks at its spec again, so a shorter interval or `paused: false`
# takes effect quickly without a restart.
SPEC_POLL_S = 1.0
# How often a standby's daemon looks whether its replica leads now: the first check of a new leader
# follows its taking the Lease by at most this.
STANDBY_POLL_S = 0.5
# Recording a person's edit: a few quick tries inside the handler (kopf does not retry on.event handlers);
# past them the next check records it, from the `recorded` annotation.
RECORD_ATTEMPTS = 3
RECORD_BACKOFF_S = 1.0

log = logging.getLogger("tikv_operator")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    # Our own Events are the transitions; kopf's per-log-line Events would be one API write per check.
    settings.posting.enabled = False
    # No peering CRDs, no namespace/CRD scanning: fewer permissions, and two replicas are safe anyway
    # because ticket names are deterministic (rule 1).
    settings.peering.standalone = True
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    try:
        config.load_incluster_config()
    except ConfigException:
        await config.load_kube_config()
    leadership = _leadership(memo)
    # Every write of this process passes the fence: a replica that does not hold the Lease writes nothing.
    memo.api = TimedApiClient(fence=leadership.acting, user_agent=user_agent(leadership.identity))
    memo.writer = KubeWriter.connect(memo.api)
    memo.core = client.CoreV1Api(memo.api)
    if memo.get("health_port") is not None:
        memo.health = await serve_health(memo.bind_address, memo.health_port)
    # One cache for every cluster: Secrets are read once a minute per Secret, not once per check per cluster.
    memo.credentials = SecretCache(memo.core)
    memo.notifier = Notifier(memo.get("alert_policy") or AlertPolicy(), memo.get("alertmanager_urls") or (),
                             memo.writer, active=leadership.acting)
    memo.notifier.start()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    notifier = getattr(memo, "notifier", None)
    if notifier is not None:
        await notifier.close()  # no "resolved" goes out: a restarted operator takes over the same alerts
    api = getattr(memo, "api", None)
    if api is not None:
        await api.close()
    health = getattr(memo, "health", None)
    if health is not None:
        await health.cleanup()


@kopf.index(GROUP, VERSION, "operatortickets")
def tickets_by_cluster(namespace: str, spec: kopf.Spec, body: kopf.Body, **_: Any) -> dict[Any, TicketView]:
    return {(namespace, spec.get("cluster", "")): TicketView.from_resource(body)}


@kopf.daemon(GROUP, VERSION, "tikvclusters", cancellation_timeout=10.0)
async def watch_cluster(
    name: str, namespace: str, body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo,
    tickets_by_cluster: kopf.Index[Any, TicketView], **_: Any,
) -> None:
    """Checks one TiKVCluster every spec.interval until it is deleted or the operator stops."""
    if memo.get("only_cluster") not in (None, name):
        return  # `tikv-operator monitor` watches one cluster of the namespace

    async def observer(cluster: str, ns: str, spec: TiKVClusterSpec, now: datetime,
                       ticketed: frozenset[str]) -> Observation:
        credentials = await load_credentials(memo.credentials, ns, spec)
        return await observe(cluster, spec, credentials, now, ticketed)

    def new_checker() -> ClusterChecker:
        return ClusterChecker(namespace, name, observer, memo.writer,
                              delivery=lambda: memo.notifier.report(namespace, name))

    try:
        await _watch(new_checker, body, stopped, memo, tickets_by_cluster)
    finally:
        # Also when kopf cancels the daemon: a deleted cluster leaves no series behind.
        self_metrics.forget_cluster(namespace, name)
        if stopped.reason is not None and kopf.DaemonStoppingReason.RESOURCE_DELETED in stopped.reason:
            memo.notifier.retire(namespace, name)  # its alerts resolve; an operator that exits resolves none


async def _register_delivery(memo: kopf.Memo, namespace: str, name: str, spec: TiKVClusterSpec,
                             index: kopf.Index[Any, TicketView]) -> None:
    """Tell the notifier where this cluster's tickets go (and with which credentials), before each check."""
    credentials, problem = await load_alertmanager_credentials(memo.credentials, namespace, spec.alertmanager)
    memo.notifier.register(namespace, name, spec, lambda: _tickets(index, namespace, name), credentials, problem)


async def _watch(new_checker: Callable[[], ClusterChecker], body: kopf.Body, stopped: kopf.DaemonStopped,
                 memo: kopf.Memo, index: kopf.Index[Any, TicketView]) -> None:
    leadership = _leadership(memo)
    checker, term = new_checker(), leadership.term
    namespace, name = checker.namespace, checker.name
    default: timedelta = memo.default_interval
    last_start: float | None = None
    while not stopped:
        if not leadership.acting():
            # A standby: the watch and the ticket index stay warm, nothing is checked or written.
            if last_start is not None:
                # Per-cluster series come from the replica that checks: a stale "last successful check"
                # here would page as if the cluster were no longer checked.
                self_metrics.forget_cluster(namespace, name)
            last_start = None  # the first check of a new term runs at once
            await stopped.wait(STANDBY_POLL_S)
            continue
        if term != leadership.term:
            # A new term starts from what is written (status, tickets), not from what this process
            # remembered of an earlier term: another replica acted meanwhile.
            checker, term = new_checker(), leadership.term
        try:
            last_start = await _step(checker, body, stopped, memo, index, default, last_start)
        except NotLeading:
            log.info("%s/%s: check abandoned: this replica stopped leading", namespace, name)


async def _step(checker: ClusterChecker, body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo,
                index: kopf.Index[Any, TicketView], default: timedelta, last_start: float | None) -> float | None:
    """One turn of a cluster's loop: note a rejected or paused spec, or wait, or run the check that is due.
    Returns when the last check started (monotonic)."""
    namespace, name = checker.namespace, checker.name
    try:
        spec = parse_spec(body)
    except ValidationError as error:
        await _note_spec_rejected(memo.writer, namespace, name, body, spec_error(error))
        checker.last_status = None  # the first check after the fix rewrites the status
        await stopped.wait(SPEC_POLL_S * 10)
        return last_start
    interval = interval_of(spec, default).total_seconds()
    if spec.paused:
        if not memo.notifier.registered(namespace, name):
            await _register_delivery(memo, namespace, name, spec, index)  # open tickets still page
        await _note_paused(memo.writer, namespace, name, body)
        checker.last_status = None  # the first check after the pause rewrites the status
        await stopped.wait(SPEC_POLL_S)
        return last_start
    now = time.monotonic()
    due = now if last_start is None else last_start + interval
    if now < due:
        await stopped.wait(min(SPEC_POLL_S, due - now))
        return last_start
    self_metrics.CHECK_LAG.observe(now - due)
    budget = (parse_duration(spec.pd.timeout) + parse_duration(spec.prometheus.timeout)).total_seconds()
    with WATCHDOG.check(namespace, name, budget):
        await _register_delivery(memo, namespace, name, spec, index)
        await _check_once(checker, body, spec, lambda: _tickets(index, namespace, name), timedelta(seconds=interval))
    self_metrics.OPEN_TICKETS.count(t for key in list(index) for t in index[key])
    return now


async def _check_once(checker: ClusterChecker, body: kopf.Body, spec: TiKVClusterSpec,
                      tickets: Callable[[], Iterable[TicketView]], interval: timedelta) -> None:
    namespace, name = checker.namespace, checker.name
    self_metrics.CHECKS.labels(namespace, name).inc()
    try:
        result = await checker.check(dict(body), spec, tickets, interval=interval)
    except NotLeading:
        raise  # not a failure: another replica acts now
    except (ApiException, TimeoutError, OSError, aiohttp.ClientError) as error:
        # The API server itself is unavailable: nothing was decided, try again next interval.
        self_metrics.CHECK_FAILURES.labels(namespace, name).inc()
        log.warning("%s/%s: check not completed: %s", namespace, name, short_error(error))
        return
    except Exception:
        # A bug must cost one check of one cluster, never the daemon that watches it.
        self_metrics.CHECK_FAILURES.labels(namespace, name).inc()
        log.exception("%s/%s: check failed", namespace, name)
        return
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
        self_metrics.CHECK_FAILURES.labels(namespace, name).inc()
    else:
        self_metrics.LAST_SUCCESS.labels(namespace, name).set(time.time())


def _leadership(memo: kopf.Memo) -> Leadership:
    leadership = memo.get("leadership")
    return leadership if isinstance(leadership, Leadership) else Leadership()


def _tickets(index: kopf.Index[Any, TicketView], namespace: str, name: str) -> Iterable[TicketView]:
    key = (namespace, name)
    return list(index[key]) if key in index else []


async def _note_spec_rejected(writer: KubeWriter, namespace: str, name: str, body: kopf.Body, reason: str) -> None:
    previous = parse_status(body.get("status"))
    if previous is not None and previous.message == f"spec rejected: {reason}":
        return
    log.error("%s/%s: spec rejected: %s", namespace, name, reason)
    generation = body.get("metadata", {}).get("generation")
    status = spec_rejected_status(previous, reason, generation, datetime.now(UTC))
    await writer.patch_cluster_status(namespace, name, status.wire())


async def _note_paused(writer: KubeWriter, namespace: str, name: str, body: kopf.Body) -> None:
    status = body.get("status") or {}
    if status.get("message") != "checks paused":
        await writer.patch_cluster_status(namespace, name, {"message": "checks paused"})


@kopf.on.event(GROUP, VERSION, "operatortickets")
async def ticket_changed(type: str, body: kopf.Body, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    """A person held, unheld, acknowledged or resolved a ticket: record it (rule 6) and post the Event.

    Never raises: kopf does not retry on.event handlers. What is not recorded here is recorded by the next
    check of the cluster, which plans the same edit from the same `recorded` annotation."""
    if type == "DELETED" or not hasattr(memo, "writer") or not _leadership(memo).acting():
        return  # a standby: the leader records it, or the next check of a new leader does
    view = TicketView.from_resource(body)
    if view.name in memo.writer.busy:
        return  # this process is mid-write on it: an intermediate version; a later event or check has the rest
    op = react_to_edit(view, datetime.now(UTC))
    if op is None:
        return
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            cluster = await _cluster_of(memo.writer, namespace, view.cluster) if op.event is not None else None
            await memo.writer.patch_ticket(namespace, cluster, op)
            return
        except NotLeading:
            return  # the next leader's check records it, from the same `recorded` annotation
        except ApiException as error:
            if error.status in (404, 409):
                return  # deleted, or changed again: its newer version comes as an event of its own
            failure = server_message(error)
        except (TimeoutError, OSError, aiohttp.ClientError) as error:
            failure = short_error(error)
        if attempt == RECORD_ATTEMPTS:
            log.warning("ticket %s: edit not recorded (%s); the next check records it", view.name, failure)
            return
        await asyncio.sleep(RECORD_BACKOFF_S * attempt)


async def _cluster_of(writer: KubeWriter, namespace: str, name: str) -> Any:
    """The ticket's TiKVCluster, for the Event on it; None if it is gone."""
    try:
        return await writer.objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "tikvclusters", name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


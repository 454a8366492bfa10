"""`tikv-operator run`: the kopf operator process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import kopf

from tikv_operator.alerts.core.delivery import AlertPolicy
from tikv_operator.checks.core.settings import DEFAULT_INTERVAL
from tikv_operator.discovery.reconciler import Discovery
from tikv_operator.election.core.leases import LeaseTiming
from tikv_operator.election.leadership import Leadership, LeaseElector, new_identity, user_agent
from tikv_operator.election.lease_lock import LeaseLock
from tikv_operator.kube.api import TimedApiClient

LogFormat = Literal["text", "json"]

log = logging.getLogger("tikv_operator")


@dataclass(frozen=True)
class DiscoveryOptions:
    """`--discover-tidbclusters`: TiKVClusters generated from tidb-operator's TidbClusters."""

    default_prometheus: str = ""
    interval: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class ElectionOptions:
    """`--leader-elect`: the Lease that decides which replica acts."""

    lease: str = "tikv-operator"
    namespace: str = "default"
    timing: LeaseTiming = field(default_factory=LeaseTiming)


@dataclass(frozen=True)
class RunOptions:
    namespaces: Sequence[str] = ()
    all_namespaces: bool = False
    bind_address: str = "0.0.0.0"  # noqa: S104  (probes and scrapes come from outside the pod)
    health_port: int | None = 8081
    only_cluster: str | None = None  # `monitor`: check this TiKVCluster alone
    metrics_port: int | None = 8080
    log_format: LogFormat = "text"
    default_interval: timedelta = DEFAULT_INTERVAL
    stall_timeout: timedelta = timedelta(minutes=5)
    verbose: bool = False
    alertmanager_urls: Sequence[str] = ()  # the default for clusters whose spec names none
    alert_policy: AlertPolicy = field(default_factory=AlertPolicy)
    extra_memo: dict[str, object] = field(default_factory=dict)
    election: ElectionOptions | None = None  # None: this process always acts
    discovery: DiscoveryOptions | None = None  # None: no TidbCluster discovery


# Libraries that log what goes over the wire at DEBUG: kubernetes_asyncio's REST client logs every response
# body (a Secret's data included, read before the operator decides whether it opted in), httpx and httpcore
# their requests and headers. The operator's --verbose is its own debug log, never theirs.
WIRE_LOGGERS = ("kubernetes_asyncio", "kubernetes", "urllib3", "httpx", "httpcore", "aiohttp", "hpack")


def _is_wire_logger(name: str) -> bool:
    return any(name == library or name.startswith(library + ".") for library in WIRE_LOGGERS)


class WireDebugFilter(logging.Filter):
    """The second line of defence, on the handlers: whatever level a library's logger was given (by a
    library, a debugger, a later change), none of its DEBUG lines is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO or not _is_wire_logger(record.name)


def configure_logging(verbose: bool, log_format: LogFormat = "text") -> None:
    """kopf's handler and format; DEBUG for the operator and kopf only when verbose, never for the libraries
    that log bodies (no credential in any log at any level)."""
    # kopf.configure(verbose=True) would set the root logger, and so every library, to DEBUG.
    kopf.configure(log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL)
    level = logging.DEBUG if verbose else logging.INFO
    logging.getLogger("tikv_operator").setLevel(level)
    logging.getLogger("kopf").setLevel(level)
    for library in WIRE_LOGGERS:
        logging.getLogger(library).setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        # One line per check is ours; per-handler lines would drown it.
        for noisy in ("kopf.objects", "kopf.activities.startup"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, WireDebugFilter) for f in handler.filters):
            handler.addFilter(WireDebugFilter())


def run_operator(options: RunOptions) -> None:
    """Runs until SIGINT/SIGTERM, then stops the daemons cleanly (a leader hands its Lease back first)."""
    from tikv_operator import (
        handlers,  # noqa: F401  (registers the handlers)
        self_metrics,
    )
    from tikv_operator.services import ProcessOptions
    from tikv_operator.watchdog import WATCHDOG

    WATCHDOG.stall_timeout_s = options.stall_timeout.total_seconds()

    configure_logging(options.verbose, options.log_format)
    if options.metrics_port is not None:
        self_metrics.serve(options.metrics_port, options.bind_address)
    election = options.election
    leadership = Leadership(elected=election is not None, identity=new_identity(),
                            timing=election.timing if election else LeaseTiming())
    self_metrics.LEADER.set(0 if election else 1)
    memo = kopf.Memo(options=ProcessOptions(
        leadership=leadership, default_interval=options.default_interval, only_cluster=options.only_cluster,
        health_port=options.health_port, bind_address=options.bind_address,
        alertmanager_urls=tuple(options.alertmanager_urls), alert_policy=options.alert_policy,
    ), **options.extra_memo)
    asyncio.run(_operate(options, memo, leadership))


async def _operate(options: RunOptions, memo: kopf.Memo, leadership: Leadership) -> None:
    """kopf, and beside it the election once kopf has started (the Kubernetes configuration is loaded then,
    and kopf waits for its ticket index before any check runs, so a new leader acts on a warm cache)."""
    stop, ready = asyncio.Event(), asyncio.Event()
    operator = asyncio.create_task(kopf.operator(
        clusterwide=options.all_namespaces,
        namespaces=list(options.namespaces),
        standalone=True,
        memo=memo,  # /healthz is ours (tikv_operator.health), started with the operator
        stop_flag=stop, ready_flag=ready,
    ), name="kopf")
    started = asyncio.create_task(ready.wait())
    await asyncio.wait({operator, started}, return_when=asyncio.FIRST_COMPLETED)
    if operator.done():
        started.cancel()
        await operator  # startup failed: its exception, as kopf.run would raise it
        return
    elector: LeaseElector | None = None
    election: asyncio.Task[None] | None = None
    lease_api: TimedApiClient | None = None
    if options.election is not None:
        # A client of its own: renewals do not queue behind a burst of check writes.
        lease_api = TimedApiClient(timeout_s=options.election.timing.renew_deadline_s / 2,
                                   user_agent=user_agent(leadership.identity))
        lock = LeaseLock(lease_api, options.election.namespace, options.election.lease, lease_api.timeout_s)
        elector = LeaseElector(lock, leadership)
        election = asyncio.create_task(elector.run(), name="leader election")
    discovery: asyncio.Task[None] | None = None
    discovery_api: TimedApiClient | None = None
    if options.discovery is not None:
        discovery_api = TimedApiClient(fence=leadership.acting, fence_time_left=leadership.time_left,
                                       user_agent=user_agent(leadership.identity))
        discovery = asyncio.create_task(Discovery(
            discovery_api, tuple(options.namespaces), options.discovery.default_prometheus,
            options.discovery.interval.total_seconds(), leadership).run(), name="tidbcluster discovery")

    async def shut_down(received: signal.Signals) -> None:
        log.info("%s received: stopping", received.name)
        if election is not None and elector is not None:
            election.cancel()
            await elector.release()  # before kopf stops: the standby takes over while we wind down
        stop.set()

    # Replaces kopf's own handlers (installed before `ready`): the Lease goes back before kopf's shutdown,
    # which waits for the daemons and may take seconds.
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    for received in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(received, lambda s=received: stopping or stopping.append(
            asyncio.create_task(shut_down(s))))
    try:
        await operator
    finally:
        for task in (election, discovery):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for api in (lease_api, discovery_api):
            if api is not None:
                await api.close()

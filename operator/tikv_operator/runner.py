"""`tikv-operator run`: the kopf operator process."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import kopf

from tikv_operator.core.alerts import AlertPolicy

LogFormat = Literal["text", "json"]

@dataclass(frozen=True)
class RunOptions:
    namespaces: Sequence[str] = ()
    all_namespaces: bool = False
    bind_address: str = "0.0.0.0"  # noqa: S104  (probes and scrapes come from outside the pod)
    health_port: int | None = 8081
    only_cluster: str | None = None  # `monitor`: check this TiKVCluster alone
    metrics_port: int | None = 8080
    log_format: LogFormat = "text"
    default_interval: timedelta = timedelta(seconds=30)
    stall_timeout: timedelta = timedelta(minutes=5)
    verbose: bool = False
    alertmanager_urls: Sequence[str] = ()  # the default for clusters whose spec names none
    alert_policy: AlertPolicy = field(default_factory=AlertPolicy)
    extra_memo: dict[str, object] = field(default_factory=dict)


def run_operator(options: RunOptions) -> None:
    """Runs until SIGINT/SIGTERM; kopf handles the signals and stops the daemons cleanly."""
    from tikv_operator import (
        handlers,  # noqa: F401  (registers the handlers)
        self_metrics,
    )
    from tikv_operator.watchdog import WATCHDOG

    WATCHDOG.stall_timeout_s = options.stall_timeout.total_seconds()

    kopf.configure(
        verbose=options.verbose,
        log_format=kopf.LogFormat.JSON if options.log_format == "json" else kopf.LogFormat.FULL,
    )
    logging.getLogger("tikv_operator").setLevel(logging.DEBUG if options.verbose else logging.INFO)
    if not options.verbose:
        # One line per check is ours; per-request and per-handler lines would drown it.
        for noisy in ("httpx", "kopf.objects", "kopf.activities.startup"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if options.metrics_port is not None:
        self_metrics.serve(options.metrics_port, options.bind_address)
    memo = kopf.Memo(default_interval=options.default_interval, only_cluster=options.only_cluster,
                     health_port=options.health_port, bind_address=options.bind_address,
                     alertmanager_urls=tuple(options.alertmanager_urls), alert_policy=options.alert_policy,
                     **options.extra_memo)
    kopf.run(
        clusterwide=options.all_namespaces,
        namespaces=list(options.namespaces),
        standalone=True,
        memo=memo,  # /healthz is ours (tikv_operator.health), started with the operator
    )

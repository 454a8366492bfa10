"""`tikv-operator monitor`: the original one-command daemon, kept on top of the Kubernetes resources.

It creates (or updates) one TiKVCluster in the current namespace and runs the operator in the
foreground for that cluster alone, printing its configuration and one heartbeat line per check."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta
from typing import Annotated, Any

import typer

from tikv_operator.model.durations import format_duration, parse_duration


def _interval(text: str) -> str:
    """The original took seconds ("30"); Kubernetes style ("30s", "1m") works as well."""
    try:
        seconds = float(text) if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text) else parse_duration(text).total_seconds()
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if seconds <= 0:
        raise typer.BadParameter("the interval must be positive")
    return format_duration(timedelta(seconds=seconds))


def monitor(
    pd: Annotated[str | None, typer.Option("--pd", help="PD URL (env PD_ENDPOINT).")] = None,
    prometheus: Annotated[str | None, typer.Option(
        "--prometheus", help="Prometheus URL (env PROMETHEUS_URL).")] = None,
    interval: Annotated[str, typer.Option(help="Seconds between checks (or a duration like 1m).")] = "30",
    name: Annotated[str, typer.Option(help="Name of the TiKVCluster to create or update.")] = "tikv",
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="Namespace (default: the kubeconfig context's).")] = None,
    alertmanager_url: Annotated[list[str] | None, typer.Option(
        "--alertmanager-url", help="Send the tickets to this Alertmanager (repeatable; env ALERTMANAGER_URL); "
        "written to the TiKVCluster's spec.alertmanager.urls.")] = None,
) -> None:
    """Watch one TiKV cluster in the foreground until Ctrl+C or SIGTERM (creates its TiKVCluster)."""
    from tikv_operator.cli.ticket_api import KubernetesError, connect
    from tikv_operator.runner import RunOptions, run_operator

    pd = pd or os.environ.get("PD_ENDPOINT")
    prometheus = prometheus or os.environ.get("PROMETHEUS_URL")
    if not pd or not prometheus:
        typer.echo("error: give --pd and --prometheus (or set PD_ENDPOINT and PROMETHEUS_URL)", err=True)
        raise typer.Exit(1)
    every = _interval(interval)
    spec: dict[str, Any] = {"pd": {"url": pd}, "prometheus": {"url": prometheus}, "interval": every,
                            "paused": False}
    alertmanagers = list(alertmanager_url or ([os.environ["ALERTMANAGER_URL"]] if os.environ.get("ALERTMANAGER_URL")
                                              else []))
    if alertmanagers:
        spec["alertmanager"] = {"urls": alertmanagers}

    async def upsert() -> str:
        async with connect() as api:
            ns = namespace or api.default_namespace
            await api.upsert_cluster(ns, name, spec)
            return ns

    try:
        ns = asyncio.run(upsert())
    except KubernetesError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Monitoring TiKVCluster {ns}/{name}")
    typer.echo(f"  PD endpoint:    {pd}")
    typer.echo(f"  Prometheus:     {prometheus}")
    if alertmanagers:
        typer.echo(f"  Alertmanager:   {', '.join(alertmanagers)}")
    typer.echo(f"  Interval:       {every}")
    typer.echo(f"  Tickets:        kubectl get operatortickets -n {ns} -l tikvops.io/cluster={name}")
    typer.echo("Press Ctrl+C to stop.", nl=True)
    run_operator(RunOptions(namespaces=(ns,), health_port=None, metrics_port=None, only_cluster=name))
    typer.echo("Monitor stopped.")

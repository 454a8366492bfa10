"""The `run` command: options of the operator process."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from tikv_operator.alerts.core.delivery import AlertPolicy
from tikv_operator.election.core.leases import LeaseTiming
from tikv_operator.model.cluster_resource import URL_PATTERN
from tikv_operator.model.durations import parse_duration

# A Kubernetes object name (RFC 1123 subdomain).
DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


def run(
    namespace: Annotated[list[str] | None, typer.Option(
        "--namespace", "-n", help="Watch this namespace (repeat for several).")] = None,
    all_namespaces: Annotated[bool, typer.Option(
        "--all-namespaces", "-A", help="Watch every namespace.")] = False,
    health_port: Annotated[int, typer.Option(help="Port of the liveness/readiness endpoint GET /healthz.")] = 8081,
    metrics_port: Annotated[int, typer.Option(help="Port of the Prometheus metrics endpoint GET /metrics.")] = 8080,
    bind_address: Annotated[str, typer.Option(help="Address the health and metrics endpoints listen on.")]
        = "0.0.0.0",  # noqa: S104
    log_format: Annotated[str, typer.Option(help="text or json.")] = "text",
    default_interval: Annotated[str, typer.Option(
        help="Check interval of TiKVClusters that set no spec.interval, e.g. 30s.")] = "30s",
    stall_timeout: Annotated[str, typer.Option(
        help="Fail /healthz when a check runs this long past its PD and Prometheus timeouts "
             "(the operator itself is stuck; a restart is the cure).")] = "5m",
    standalone: Annotated[bool, typer.Option(
        help="Accepted for kopf familiarity; the operator always runs standalone (no peering).")] = True,
    alertmanager_url: Annotated[list[str] | None, typer.Option(
        "--alertmanager-url", help="Send tickets to this Alertmanager (API v2); repeat for every replica of an HA "
        "Alertmanager. The default for TiKVClusters whose spec.alertmanager names no URL.")] = None,
    alert_resend_interval: Annotated[str, typer.Option(
        help="Re-send open tickets' alerts this often (endsAt = now + 4 x this), as Prometheus' "
             "--rules.alert.resend-delay.")] = "1m",
    silence_duration: Annotated[str, typer.Option(
        help="How long the Alertmanager silence of an acknowledged ticket lasts if the ticket does not "
             "resolve first.")] = "24h",
    runbook_url: Annotated[str, typer.Option(
        help="runbook_url annotation of alerts; {invariant} is replaced by the invariant's name, e.g. "
             "https://example.com/runbooks/{invariant}.md. Empty: no runbook_url.")] = "",
    leader_elect: Annotated[bool, typer.Option(
        "--leader-elect/--no-leader-elect", help="Run as one of several replicas: only the holder of a "
        "coordination.k8s.io Lease checks and writes; the others stand by with warm caches.")] = False,
    leader_election_id: Annotated[str, typer.Option(help="Name of the Lease.")] = "tikv-operator",
    leader_election_namespace: Annotated[str | None, typer.Option(
        help="Namespace of the Lease. Default: $POD_NAMESPACE (the chart sets it from the downward API), else "
             "the service account's namespace, else default.", show_default=False)] = None,
    leader_election_lease_duration: Annotated[str, typer.Option(
        help="How long a standby waits, after the holder's last renewal, before it takes the Lease.")] = "15s",
    leader_election_renew_deadline: Annotated[str, typer.Option(
        help="The holder stops acting when it could not renew for this long (shorter than the lease "
             "duration, so it stops before anyone else may start).")] = "10s",
    leader_election_retry_period: Annotated[str, typer.Option(
        help="How often the holder renews and a standby tries to take the Lease.")] = "2s",
    discover_tidbclusters: Annotated[bool, typer.Option(
        "--discover-tidbclusters", help="Generate and keep a TiKVCluster for every tidb-operator TidbCluster "
        "(pingcap.com/v1alpha1) with TiKV and its own PD, from its PD service, TLS Secret, TidbMonitor and "
        "store pods, and for every tidb-operator v2 Cluster (core.pingcap.com/v1alpha1) with a TiKVGroup, "
        "from its status.pd, client Secret and TiKV objects.")] = False,
    default_prometheus_url: Annotated[str, typer.Option(
        help="Prometheus of discovered TidbClusters that no TidbMonitor lists, and of v2 Clusters not annotated "
             "tikvops.io/prometheus-url. Empty: such clusters are skipped (and the log says so).")] = "",
    discovery_interval: Annotated[str, typer.Option(
        help="How often discovery lists TidbClusters and TidbMonitors (and v2's Clusters, groups and "
             "instances).")] = "30s",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run the operator: check every TiKVCluster and keep its OperatorTickets (Ctrl+C or SIGTERM stops it)."""
    if bool(namespace) == all_namespaces:
        raise typer.BadParameter("give either --all-namespaces or at least one --namespace")
    if log_format not in ("text", "json"):
        raise typer.BadParameter("--log-format must be text or json")
    try:
        interval = parse_duration(default_interval)
        stall = parse_duration(stall_timeout)
        resend = parse_duration(alert_resend_interval)
        silence = parse_duration(silence_duration)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    urls = tuple(alertmanager_url or ())
    for url in urls:
        _check_url("--alertmanager-url", url)
    if resend.total_seconds() < 1:
        raise typer.BadParameter("--alert-resend-interval must be at least 1s")
    if default_prometheus_url:
        _check_url("--default-prometheus-url", default_prometheus_url)
    try:
        every = parse_duration(discovery_interval)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if every.total_seconds() < 1:
        raise typer.BadParameter("--discovery-interval must be at least 1s")
    election = _election(leader_elect, leader_election_id, leader_election_namespace,
                         (leader_election_lease_duration, leader_election_renew_deadline, leader_election_retry_period))
    # Imported here: kopf and the Kubernetes client take a second to import, which `--help` need not pay.
    from tikv_operator.runner import DiscoveryOptions, ElectionOptions, LogFormat, RunOptions, run_operator

    fmt: LogFormat = "json" if log_format == "json" else "text"
    run_operator(RunOptions(
        namespaces=tuple(namespace or ()), all_namespaces=all_namespaces, health_port=health_port,
        metrics_port=metrics_port, bind_address=bind_address, log_format=fmt, default_interval=interval,
        verbose=verbose, stall_timeout=stall, alertmanager_urls=urls,
        alert_policy=AlertPolicy(resend=resend, silence_duration=silence, runbook_url=runbook_url),
        election=ElectionOptions(lease=election[0], namespace=election[1], timing=election[2]) if election else None,
        discovery=DiscoveryOptions(default_prometheus_url, every) if discover_tidbclusters else None,
    ))


def _check_url(flag: str, url: str) -> None:
    """The TiKVCluster schema's rule for URLs (URL_PATTERN), said about the flag."""
    if not re.fullmatch(URL_PATTERN, url):
        raise typer.BadParameter(f"{flag} {url!r} is not an http(s) URL without user:password@, query or fragment")


def _election(enabled: bool, lease: str, namespace: str | None, durations: tuple[str, str, str],
              ) -> tuple[str, str, LeaseTiming] | None:
    """The Lease's name, namespace and timing, checked; None without --leader-elect."""
    if not enabled:
        return None
    if not re.fullmatch(DNS_SUBDOMAIN, lease):
        raise typer.BadParameter(f"--leader-election-id {lease!r} is not a valid Lease name (a DNS subdomain: "
                                 "lower-case letters, digits, '-' and '.')")
    try:
        duration, deadline, retry = (parse_duration(d).total_seconds() for d in durations)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    timing = LeaseTiming(lease_duration_s=duration, renew_deadline_s=deadline, retry_period_s=retry)
    problems = timing.problems()
    if problems:
        raise typer.BadParameter("leader election timing: " + "; ".join(problems))
    from tikv_operator.election.leadership import default_namespace

    return lease, namespace or default_namespace(), timing


def main() -> None:
    typer.run(run)


if __name__ == "__main__":
    main()

"""Cluster-wide invariants from PD's own metrics in Prometheus. PD computes its region gauges on the
leader only, and followers keep exporting the values of when they last led: each value is read through
the leader gate (etcd_server_is_leader == 1), and without exactly one leader in Prometheus it is unknown."""

from __future__ import annotations

from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.instances import origin
from tikv_operator.checks.core.invariants.engine import (
    Context,
    InvariantConfig,
    Rule,
    finding,
    number,
    prometheus_blind,
)
from tikv_operator.checks.core.queries import PD_LEADER_CHANGES, PD_LEADER_SETTLED, PD_LEADERS, PD_REGIONS


def _leader_gate(ctx: Context, config: InvariantConfig) -> Finding | None:
    """Unknown unless Prometheus shows exactly one PD member leading; None when it does."""
    blind = prometheus_blind(ctx, config, PD_LEADERS, "", "PD leader")
    if blind is not None:
        return blind
    leaders = sum(v for s in ctx.view.cluster_series(PD_LEADERS) if (v := number(s.value)) is not None)
    if leaders == 0:
        return finding(config, "", "unknown", "no PD member reports itself leader in Prometheus "
                       "(etcd_server_is_leader == 1): PD's metrics are not scraped, or an election is under way; "
                       "followers' region gauges are stale, so they are not read", cause="no-data",
                       query=ctx.query(PD_LEADERS))
    if leaders > 1:
        return finding(config, "", "unknown", f"{leaders:g} PD members report themselves leader: the series of "
                       "several PD clusters are mixed; set spec.prometheus.labelMatchers to pick this cluster's",
                       cause="ambiguous", query=ctx.query(PD_LEADERS))
    return None


def region_rule(region_type: str) -> Rule:
    """A region gauge of the PD leader (`type` of pd_regions_status) above the threshold."""

    def rule(ctx: Context, config: InvariantConfig) -> list[Finding]:
        gate = _leader_gate(ctx, config)
        if gate is not None:
            return [gate]
        blind = prometheus_blind(ctx, config, PD_REGIONS, "", "PD region health")
        if blind is not None:
            return [blind]
        series = [s for s in ctx.view.cluster_series(PD_REGIONS) if s.labels.get("type") == region_type]
        query = ctx.query(PD_REGIONS)
        if not series or (count := number(series[0].value)) is None:
            return [finding(config, "", "unknown",
                            f'the PD leader exports no pd_regions_status{{type="{region_type}"}} '
                            "(not bootstrapped, or a leader elected moments ago)", cause="no-data", query=query)]
        kind = region_type.removesuffix("-region-count")
        measured = f"{count:g} regions with a {kind} (PD leader)"
        evidence = {"regions": count, "thresholdRegions": config.limit, "type": region_type, "query": query}
        if count > config.limit:
            return [finding(config, "", "violated", f"{measured} > {config.limit:g}", **evidence)]
        # A leader elected within the rate window may be exporting the gauges of its previous term (found by
        # the fault soak: a new leader's stale 0 resolved a miss-peer ticket mid-fault): ok, but it does
        # not clear a ticket until one member has led throughout the window.
        settled = sum(v for s in ctx.view.cluster_series(PD_LEADER_SETTLED) if (v := number(s.value)) is not None)
        if settled != 1:
            return [finding(config, "", "ok", f"{measured} <= {config.limit:g}, but PD's leader changed within "
                            "the rate window: a ticket waits for a leader that led throughout it",
                            clears=False, **evidence)]
        return [finding(config, "", "ok", f"{measured} <= {config.limit:g}", **evidence)]

    return rule


def pd_leader_flapping(ctx: Context, config: InvariantConfig) -> list[Finding]:
    blind = prometheus_blind(ctx, config, PD_LEADER_CHANGES, "", "PD leader changes")
    if blind is not None:
        return [blind]
    gate = _leader_gate(ctx, config)
    if gate is not None and gate.cause == "ambiguous":
        return [gate]  # several PD clusters' changes mixed; no leader at all (an election) is still judged
    series = ctx.view.cluster_series(PD_LEADER_CHANGES)
    query = ctx.query(PD_LEADER_CHANGES)
    window = f"{config.window.total_seconds() if config.window else 0:g}s"
    if not series or (raw := number(series[0].value)) is None:
        return [finding(config, "", "unknown", "no etcd_server_leader_changes_seen_total from PD in Prometheus "
                        "(are PD's metrics scraped?)", cause="no-data", query=query)]
    # increase() extrapolates to the window's edges: 1 change can read 1.1.
    changes = round(raw)
    evidence = {"leaderChanges": changes, "thresholdChanges": config.limit, "window": window,
                "series": origin(series[0]), "query": query}
    measured = f"PD's leader changed {changes} time{'s' * (changes != 1)} within the last {window}"
    if changes >= config.limit:
        return [finding(config, "", "violated", f"{measured} (>= {config.limit:g}): PD leadership is flapping",
                        **evidence)]
    return [finding(config, "", "ok", f"{measured} (< {config.limit:g})", **evidence)]

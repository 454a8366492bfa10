"""The soak's TiKVClusters as manifests (pure): the well-behaved clusters the oracle judges, and the hostile
tenants beside them, which share the operator, the Prometheus and the Alertmanager with them:

- huge-pd: a PD whose /stores answer has no end (harness.hostile_pd, 128 MiB streamed per request), read
  with a PD timeout long enough that the operator's answer cap, not the timeout, is what stops it;
- nan-pd: a PD whose stores carry NaN and Infinity where PD writes numbers;
- slow-query: a custom invariant with an expensive query on the shared Prometheus (a subquery over every
  series of every tenant), watching a well-behaved cluster's PD and series;
- am-timeout: the smallest spec.alertmanager.timeout the schema takes (0s), delivering to the same
  Alertmanager as everyone else, watching another well-behaved cluster's PD and series (so it has tickets).

Their verdicts are not the oracle's to judge (unknown, blind, or tickets of a cluster it shares); what is
judged is that they cost the well-behaved clusters nothing, and the operator neither its life nor its memory
(bench.soak.oracle)."""

from __future__ import annotations

from typing import Any

from bench.soak.oracle import Settings

WELL_BEHAVED = "well-behaved"
HOSTILE_KINDS = ("huge-pd", "nan-pd", "slow-query", "am-timeout")
# Kinds whose PD is hostile: they must never be called Healthy (what the operator read was never whole).
HOSTILE_PD_MODES = {"huge-pd": "huge", "nan-pd": "nan"}  # the keys: oracle.HOSTILE_PD_KINDS
SLOW_QUERY = 'max_over_time(count({__name__=~".+"})[5m:1s]) < 0'
HUGE_PD_TIMEOUT = "10s"
SMALLEST_ALERTMANAGER_TIMEOUT = "0s"


def tenant_name(kind: str) -> str:
    return f"hostile-{kind}"


def cluster_manifest(name: str, pd_url: str, prometheus_url: str, run: str, s: Settings,
                     matchers: dict[str, str] | None = None) -> dict[str, Any]:
    grace = {inv: {"gracePeriod": f"{g:g}s"} for inv, g in s.grace_s.items() if g}
    return {
        "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": name},
        "spec": {
            "pd": {"url": pd_url, "timeout": f"{s.pd_timeout_s:g}s"},
            "prometheus": {"url": prometheus_url,
                           "labelMatchers": matchers or {"soak_run": run, "soak_cluster": name},
                           "timeout": f"{s.prometheus_timeout_s:g}s", "rateWindow": f"{s.rate_window_s:g}s"},
            "interval": f"{s.interval_s:g}s",
            "tickets": {"refreshInterval": f"{s.refresh_s:g}s"},
            "flapping": {"window": f"{s.flapping_window_s:g}s", "count": s.flapping_threshold},
            "invariants": {
                **grace,
                "store_restarted": {"window": f"{s.restart_window_s:g}s", "threshold": s.restart_threshold},
                "pd_leader_flapping": {"window": f"{s.flapping_window_s:g}s", "gracePeriod": "6s",
                                       "threshold": s.flapping_threshold},
                "store_low_space": {"gracePeriod": "6s"},
                "store_leader_lost": {"gracePeriod": "60s"},
            },
        },
    }


def hosts(kinds: tuple[str, ...], clusters: list[str]) -> dict[str, str]:
    """The well-behaved cluster whose PD and series a tenant that needs real ones watches (slow-query the
    first, am-timeout the second when there are two)."""
    out = {}
    if "slow-query" in kinds and clusters:
        out["slow-query"] = clusters[0]
    if "am-timeout" in kinds and clusters:
        out["am-timeout"] = clusters[1 % len(clusters)]
    return out


def hostile_manifest(kind: str, *, run: str, prometheus_url: str, alertmanager_url: str, s: Settings,
                     hostile_pds: dict[str, str], host_pd_urls: dict[str, str], host: str | None) -> dict[str, Any]:
    """The TiKVCluster of one hostile tenant, with the soak's timing (so its checks are as frequent as the
    others'). `hostile_pds`: mode -> URL of harness.hostile_pd's servers; `host_pd_urls`: well-behaved
    cluster -> its PD's URL."""
    name = tenant_name(kind)
    if kind in HOSTILE_PD_MODES:
        manifest = cluster_manifest(name, hostile_pds[HOSTILE_PD_MODES[kind]], prometheus_url, run, s)
        if kind == "huge-pd":
            manifest["spec"]["pd"]["timeout"] = HUGE_PD_TIMEOUT
        return manifest
    if host is None:
        raise ValueError(f"the {kind} tenant needs a well-behaved cluster to watch")
    manifest = cluster_manifest(name, host_pd_urls[host], prometheus_url, run, s,
                                matchers={"soak_run": run, "soak_cluster": host})
    if kind == "slow-query":
        manifest["spec"]["customInvariants"] = [
            {"name": "every_series_counted", "expr": SLOW_QUERY, "summary": "a subquery over every series"}]
    elif kind == "am-timeout":
        manifest["spec"]["alertmanager"] = {"urls": [alertmanager_url], "timeout": SMALLEST_ALERTMANAGER_TIMEOUT}
    else:
        raise ValueError(f"unknown hostile tenant kind {kind!r} (one of {', '.join(HOSTILE_KINDS)})")
    return manifest

"""Invariants judged from PD's /stores answer alone (the one PD request of a check): they work without
Prometheus, whatever the deployment labels its metrics."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.invariants.engine import (
    STORES_API,
    Context,
    InvariantConfig,
    Rule,
    finding,
    less_urgent,
    per_store,
    up_only,
)
from tikv_operator.checks.core.observation import TOMBSTONE, NotContacted, Store
from tikv_operator.model.json_text import spell_number
from tikv_operator.model.timestamps import to_rfc3339
from tikv_operator.model.vocabulary import Severity

# A Disconnected store is at most this urgent; Down has the invariant's severity (critical by default).
DISCONNECTED_SEVERITY: Severity = "warning"
# How far above its threshold the free-space ratio must rise before an open ticket resolves (rule 13).
SPACE_CLEAR_MARGIN = 0.05


def _since_heartbeat(store: Store, at: datetime) -> dict[str, Any]:
    if not store.last_heartbeat_ns:
        return {}
    beat = datetime.fromtimestamp(store.last_heartbeat_ns / 1e9, UTC)
    return {"lastHeartbeat": to_rfc3339(beat), "secondsSinceHeartbeat": round((at - beat).total_seconds(), 1)}


def _name(store: Store) -> str:
    return f"store {store.id} ({store.address})"


def _judge_state(store: Store, ctx: Context, config: InvariantConfig) -> Finding:
    """PD's own word on the store (pkg/response/store.go): Disconnected is PD's 20 s without a heartbeat,
    which a PD leader change (stale heartbeats) and a rolling restart both cause, so it waits out the grace
    period; Down (max-store-down-time, 30 m) opens at once; Offline is a store being removed."""
    state, name = store.state_name, _name(store)
    evidence = {"stateName": state, "address": store.address, "source": STORES_API,
                **_since_heartbeat(store, ctx.obs.at)}
    ago = f" for {evidence['secondsSinceHeartbeat']:g}s" if "secondsSinceHeartbeat" in evidence else ""
    if state == "Up":
        return finding(config, store.id, "ok", f"{name} is Up", **evidence)
    if state == "Disconnected":
        return finding(config, store.id, "violated", f"{name} is Disconnected: no heartbeat{ago}",
                       severity=less_urgent(config.severity, DISCONNECTED_SEVERITY), **evidence)
    if state == "Down":
        return finding(config, store.id, "violated", f"{name} is Down: no heartbeat{ago}",
                       grace_period=timedelta(0), **evidence)
    if state in ("Offline", TOMBSTONE):
        what = "being removed (scale-in), not a down store" if state == "Offline" else "removed from the cluster"
        return finding(config, store.id, "ok", f"{name} is {state}: {what}", **evidence)
    if not state:
        return finding(config, store.id, "unknown", f"PD gave no state for store {store.id}", cause="pd",
                       source=STORES_API)
    return finding(config, store.id, "unknown", f"PD reports {name} as {state!r}, a state this operator does not know",
                   cause="pd", **evidence)


def _judge_slow(store: Store, _: Context, config: InvariantConfig) -> Finding | None:
    """PD calls a store slow at slow_score >= 80 (pkg/core/store.go); TiKV's healthy score is 1."""
    evidence = {"source": STORES_API, "thresholdScore": config.limit}
    if store.slow_score is None:
        if not store.exports_tikv_metrics:
            return None  # TiFlash may not report one
        return finding(config, store.id, "unknown", f"PD reports no slow_score for store {store.id} (before its "
                       "first heartbeat, or a PD older than v5.2)", cause="no-data", **evidence)
    if not math.isfinite(store.slow_score):
        # No score at all: NaN compares False with the threshold, which would read as ok.
        return finding(config, store.id, "unknown", f"PD reported slow_score {spell_number(store.slow_score)} for "
                       f"store {store.id}", cause="pd", **evidence)
    evidence["slowScore"] = store.slow_score
    measured = f"store {store.id} slow score {store.slow_score:g}"
    if store.slow_score >= config.limit:
        return finding(config, store.id, "violated", f"{measured} >= {config.limit:g}: PD considers it slow",
                       **evidence)
    return finding(config, store.id, "ok", f"{measured} < {config.limit:g}", **evidence)


def _judge_space(store: Store, _: Context, config: InvariantConfig) -> Finding:
    cap, avail = store.capacity_bytes, store.available_bytes
    if not cap or avail is None:
        # "0B" after a PD restart until the store's next heartbeat (pkg/core/store_stats.go).
        return finding(config, store.id, "unknown", f"PD reports no disk capacity for store {store.id} yet",
                       cause="no-data", source=STORES_API)
    free = avail / cap
    limit = config.limit
    clear = min(1.0, limit + SPACE_CLEAR_MARGIN)
    measured = f"store {store.id} has {free:.1%} of its disk available ({avail / 2**30:.2f} of {cap / 2**30:.2f} GiB)"
    evidence = {"source": STORES_API, "availableRatio": round(free, 6), "thresholdRatio": limit,
                "capacityBytes": cap, "availableBytes": avail}
    if free < limit:
        return finding(config, store.id, "violated", f"{measured} < {limit:.0%}", **evidence)
    if free < clear:
        return finding(config, store.id, "ok", f"{measured} >= {limit:.0%}, below {clear:.0%}, the level that "
                       "resolves a ticket", clears=False, **evidence)
    return finding(config, store.id, "ok", f"{measured} >= {limit:.0%}", **evidence)


def _judge_restarts(store: Store, ctx: Context, config: InvariantConfig) -> Finding:
    """Restarts seen in PD's start_timestamp within the window. Not inhibited: a crash-looping store is
    Disconnected half the time, and its restarts are the point."""
    seen = ctx.memory.restarts.get(store.id, ())
    window = config.window or timedelta(0)
    recent = [t for t in seen if ctx.obs.at - t < window]
    count, limit = len(recent), max(1, round(config.limit))
    evidence: dict[str, Any] = {"source": STORES_API, "restarts": count, "thresholdRestarts": limit,
                                "window": str(window), "restartsSeenAt": [to_rfc3339(t) for t in recent]}
    if store.start_timestamp:
        evidence["startTimestamp"] = store.start_timestamp
    measured = f"store {store.id} restarted {count} time{'s' * (count != 1)} within the last {_span(window)}"
    if count >= limit:
        return finding(config, store.id, "violated", f"{measured} (>= {limit})", **evidence)
    start = ctx.obs.at - window
    if not ctx.memory.watched_restarts_since(store, start):
        # Rule 24: restarts before the memory began were not seen; fewer than `limit` seen is not ok yet.
        since = ctx.memory.since or ctx.obs.at
        return finding(config, store.id, "unknown", f"restarts of store {store.id} within the last {_span(window)} "
                       f"not known: watched only since {to_rfc3339(since)} ({count} seen), and PD says its process "
                       f"started within the window; judged again at {to_rfc3339(since + window)}, or at {limit} "
                       "restarts seen", cause="history", watchedSince=to_rfc3339(since), **evidence)
    return finding(config, store.id, "ok", f"{measured} (< {limit})", **evidence)


def _span(window: timedelta) -> str:
    seconds = window.total_seconds()
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def _judge_leaders(store: Store, ctx: Context, config: InvariantConfig) -> Finding | None:
    if not store.exports_tikv_metrics:
        return None  # TiFlash holds learners only: never a leader
    if store.leader_count is None:
        return finding(config, store.id, "unknown", f"PD reports no leader_count for store {store.id}",
                       cause="no-data", source=STORES_API)
    others = ctx.up_leaders - (store.leader_count or 0)
    evidence = {"source": STORES_API, "leaderCount": store.leader_count, "otherStoresLeaders": others,
                "regionCount": store.region_count}
    if store.leader_count > 0:
        return finding(config, store.id, "ok", f"store {store.id} holds {store.leader_count} leaders", **evidence)
    if store.id not in ctx.memory.vouched:
        # Rule 24: it may have lost them before the memory began; never ok on a memory that cannot vouch.
        since = to_rfc3339(ctx.memory.since or ctx.obs.at)
        return finding(config, store.id, "unknown", f"store {store.id} holds no leaders, and whether it held any "
                       f"since its process started is not known (leadership history watched only since {since}): "
                       "judged again once it holds leaders or restarts", cause="history", watchedSince=since,
                       **evidence)
    if store.id not in ctx.memory.led:
        return finding(config, store.id, "ok", f"store {store.id} holds no leaders and has held none since it "
                       "started (a new or restarted store waits for PD to balance leaders to it)", **evidence)
    if others == 0:
        return finding(config, store.id, "unknown", f"store {store.id} holds no leaders, and neither do the "
                       "other Up stores: PD's leader counts say nothing now", cause="pd", **evidence)
    return finding(config, store.id, "violated", f"store {store.id} lost all its Raft leaders while the other "
                   f"stores hold {others} (evicted as slow, or unable to keep leadership?)", **evidence)


def _not_contacted(config: InvariantConfig, what: str, url: str, not_contacted: NotContacted) -> list[Finding]:
    """Unknown, not violated: a Secret the operator could not use says nothing about PD or Prometheus, and
    an API server that throttles Secret reads must not page anyone about PD (docs/design.md, rule 21)."""
    return [finding(config, "", "unknown", f"{what} at {url} was not contacted: {not_contacted.reason}",
                    cause="credentials", url=url, credentials=not_contacted.reason)]


def reachability(config: InvariantConfig, what: str, url: str, reachable: bool, error: str,
                 not_contacted: NotContacted | None) -> list[Finding]:
    """pd_unreachable and prometheus_unreachable: one rule, two probes."""
    if not_contacted is not None:
        return _not_contacted(config, what, url, not_contacted)
    if reachable:
        return [finding(config, "", "ok", f"{what} at {url} answers", url=url)]
    return [finding(config, "", "violated", f"{what} at {url} does not answer correctly: {error}", url=url,
                    error=error)]


def pd_unreachable(ctx: Context, config: InvariantConfig) -> list[Finding]:
    pd = ctx.obs.pd
    return reachability(config, "PD", pd.url, pd.reachable, pd.error, pd.not_contacted)


# The rules the declarations name (checks.core.invariants.declarations).
store_down: Rule = per_store(_judge_state)
store_slow: Rule = per_store(up_only(_judge_slow))
store_low_space: Rule = per_store(up_only(_judge_space))
store_restarted: Rule = per_store(_judge_restarts)
store_leader_lost: Rule = per_store(up_only(_judge_leaders))

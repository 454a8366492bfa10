"""Per-store invariants judged from TiKV's own metrics in Prometheus, and Prometheus' own reachability."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.instances import describe_split, origin
from tikv_operator.checks.core.invariants.engine import (
    Context,
    InvariantConfig,
    MetricJudge,
    Rule,
    finding,
    metric_rule,
    number,
)
from tikv_operator.checks.core.invariants.pd_rules import reachability
from tikv_operator.checks.core.observation import Series, Store
from tikv_operator.checks.core.queries import (
    CRITICAL_ERRORS,
    L0_FILES,
    P99_LATENCY,
    RAFT_APPEND,
    RAFT_APPLY,
    RAFT_LOG_LAG,
    STORE_SIZE,
    WRITE_STALL,
)

# How far below its threshold a value must fall before an open ticket resolves (rule 13: a value that
# hovers at the threshold keeps one ticket open instead of opening and resolving one per check).
DISK_CLEAR_MARGIN = 0.05  # ratio points: 70 % opens, 65 % clears
LATENCY_CLEAR_FACTOR = 0.8  # 100 ms opens, 80 ms clears; also the raft p99s
# TiKV_maybe_write_stall: RocksDB slows writes down from 20 L0 files and stops them at 36 by default; an
# average above 80 means stalls are near whatever the configuration.
L0_FILES_LIMIT = 80.0


def compare(config: InvariantConfig, store: str, value: float, clear: float, measured: str,
            unit: Callable[[float], str], suffix: str = "", **evidence: object) -> Finding:
    """Above the threshold is violated; between the clear level and the threshold is ok but does not resolve
    an open ticket; below the clear level is ok."""
    limit = config.limit
    tail = f" {suffix}" if suffix else ""
    if value > limit:
        return finding(config, store, "violated", f"{measured} > {unit(limit)}{tail}", **evidence)
    if value > clear:
        return finding(config, store, "ok", f"{measured} <= {unit(limit)}, above {unit(clear)}, the level that "
                       f"resolves a ticket{tail}", clears=False, **evidence)
    return finding(config, store, "ok", f"{measured} <= {unit(limit)}{tail}", **evidence)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"


def _single(check: str, what: str, judge: Callable[[Store, Series, Context, InvariantConfig, dict[str, object]],
                                                    Finding]) -> MetricJudge:
    """A judge of a check that gives one series per store: several are ambiguous (two clusters' series
    summed under one key), NaN is idle (nothing observed in the window: unknown, not blind)."""

    def judge_one(store: Store, key: str, series: Sequence[Series], ctx: Context, config: InvariantConfig) -> Finding:
        query = ctx.query(check)
        if len(series) > 1:
            return finding(config, store.id, "unknown", describe_split(store, key, series), cause="ambiguous",
                           series=[origin(s) for s in series], query=query)
        (only,) = series
        evidence: dict[str, object] = {"key": key, "series": origin(only), "query": query}
        if number(only.value) is None:
            # Nothing measured in the window: nothing to judge, but an open ticket stays open (a store so
            # stuck that nothing completes records no durations either).
            return finding(config, store.id, "unknown", f"store {store.id}: no {what} measured in the window",
                           cause="idle", **evidence)
        return judge(store, only, ctx, config, evidence)

    return judge_one


def _latency(store: Store, only: Series, _: Context, config: InvariantConfig, evidence: dict[str, object]) -> Finding:
    p99, kind = only.value, only.labels.get("type", "")
    evidence |= {"type": kind, "p99Seconds": round(p99, 6), "thresholdSeconds": config.limit}
    return compare(config, store.id, p99, config.limit * LATENCY_CLEAR_FACTOR,
                   f"store {store.id} p99 gRPC latency {p99 * 1000:.1f} ms ({kind})", _ms, **evidence)


def _raft_seconds(what: str) -> Callable[[Store, Series, Context, InvariantConfig, dict[str, object]], Finding]:
    def judge(store: Store, only: Series, _: Context, config: InvariantConfig, evidence: dict[str, object]) -> Finding:
        evidence |= {"p99Seconds": round(only.value, 6), "thresholdSeconds": config.limit}
        return compare(config, store.id, only.value, config.limit * LATENCY_CLEAR_FACTOR,
                       f"store {store.id} p99 {what} {only.value * 1000:.1f} ms", _ms, **evidence)

    return judge


def _log_lag(store: Store, only: Series, _: Context, config: InvariantConfig, evidence: dict[str, object]) -> Finding:
    evidence |= {"p99Entries": round(only.value, 1), "thresholdEntries": config.limit}
    return compare(config, store.id, only.value, config.limit * LATENCY_CLEAR_FACTOR,
                   f"store {store.id} p99 Raft log lag {only.value:.0f} entries", lambda v: f"{v:g} entries",
                   **evidence)


def _judge_disk(store: Store, key: str, series: Sequence[Series], ctx: Context, config: InvariantConfig) -> Finding:
    query = ctx.query(STORE_SIZE)
    by_type: dict[str, list[Series]] = {}
    for s in series:
        by_type.setdefault(s.labels.get("type", ""), []).append(s)
    capacity, available = by_type.get("capacity", []), by_type.get("available", [])
    split = capacity if len(capacity) > 1 else available if len(available) > 1 else None
    if split:
        return finding(config, store.id, "unknown", describe_split(store, key, split), cause="ambiguous",
                       series=[origin(s) for s in split], query=query)
    evidence = {"key": key, "series": origin(series[0]), "query": query}
    cap = number(capacity[0].value) if capacity else None
    avail = number(available[0].value) if available else None
    if cap is None or avail is None:
        return finding(config, store.id, "unknown",
                       f"store {store.id}: disk capacity or available space missing in Prometheus",
                       cause="no-data", **evidence)
    if cap <= 0:
        return finding(config, store.id, "unknown",
                       f"store {store.id}: disk capacity reads 0 (TiKV has not measured its disk yet)",
                       cause="no-data", **evidence)
    return _disk_used(config, store, cap, avail, evidence)


def _disk_used(config: InvariantConfig, store: Store, cap: float, avail: float,
               evidence: dict[str, object]) -> Finding:
    used = (cap - avail) / cap
    evidence |= {"usedRatio": round(used, 6), "thresholdRatio": config.limit, "capacityBytes": int(cap),
                 "availableBytes": int(avail)}
    return compare(config, store.id, used, max(0.0, config.limit - DISK_CLEAR_MARGIN),
                   f"store {store.id} disk {used:.1%} used", lambda v: f"{v:.0%}",
                   f"({_gib(avail)} of {_gib(cap)} available)", **evidence)


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def _write_stall(store: Store, only: Series, ctx: Context, config: InvariantConfig,
                 evidence: dict[str, object]) -> Finding:
    stall = only.value
    _, l0_series = ctx.view.lookup(L0_FILES, store)
    l0 = max((v for s in l0_series if (v := number(s.value)) is not None), default=None)
    evidence |= {"maxStallMicros": stall, "thresholdMicros": config.limit, "l0FilesAvg": l0,
                 "l0FilesLimit": L0_FILES_LIMIT}
    window = _seconds(config)
    if stall > config.limit:
        return finding(config, store.id, "violated", f"store {store.id}: RocksDB stalled writes for up to "
                       f"{stall / 1000:.1f} ms within the last {window}", **evidence)
    if l0 is not None and l0 > L0_FILES_LIMIT:
        return finding(config, store.id, "violated", f"store {store.id}: {l0:g} L0 files on average > "
                       f"{L0_FILES_LIMIT:g}: writes are about to stall", **evidence)
    return finding(config, store.id, "ok", f"store {store.id}: no write stall within the last {window}"
                   + (f", {l0:g} L0 files on average" if l0 is not None else ""), **evidence)


def _seconds(config: InvariantConfig) -> str:
    return f"{config.window.total_seconds() if config.window else 0:g}s"


def _errors(store: Store, only: Series, _: Context, config: InvariantConfig, evidence: dict[str, object]) -> Finding:
    errors = only.value
    evidence |= {"errors": round(errors, 2)}
    if errors > config.limit:
        return finding(config, store.id, "violated", f"store {store.id}: {errors:.0f} critical error"
                       f"{'s' * (round(errors) != 1)} (tikv_critical_error_total) within the last {_seconds(config)}",
                       **evidence)
    return finding(config, store.id, "ok", f"store {store.id}: no critical error within the last {_seconds(config)}",
                   **evidence)


def _no_errors_if_scraped(store: Store, ctx: Context, config: InvariantConfig) -> Finding | None:
    """TiKV exports a critical_error child only from its first error: no series while the store's other
    metrics are there means no error, not no data."""
    if ctx.failure(CRITICAL_ERRORS) is not None or not ctx.obs.metrics.reachable:
        return None
    _, sizes = ctx.view.lookup(STORE_SIZE, store)
    if not sizes:
        return None
    return finding(config, store.id, "ok", f"store {store.id}: no critical error since it started",
                   query=ctx.query(CRITICAL_ERRORS))


def prometheus_unreachable(ctx: Context, config: InvariantConfig) -> list[Finding]:
    m = ctx.obs.metrics
    if m.busy:  # never asked: the operator's own workers were taken, Prometheus is not to blame (rule 5)
        return [finding(config, "", "unknown", f"Prometheus at {m.url} was not asked: {m.error}",
                        cause="prometheus", url=m.url)]
    return reachability(config, "Prometheus", m.url, m.reachable, m.error, m.not_contacted)


# The rules the declarations name (checks.core.invariants.declarations).
high_latency: Rule = metric_rule(P99_LATENCY, "gRPC latency",
                                 _single(P99_LATENCY, "foreground gRPC requests", _latency))
# Without its series it is unknown; store_low_space still judges the disk from PD's heartbeats.
low_disk_space: Rule = metric_rule(STORE_SIZE, "tikv_store_size_bytes", _judge_disk)
raft_log_lag: Rule = metric_rule(RAFT_LOG_LAG, "tikv_raftstore_log_lag",
                                 _single(RAFT_LOG_LAG, "Raft log lag", _log_lag))
raft_append_slow: Rule = metric_rule(RAFT_APPEND, "tikv_raftstore_append_log_duration_seconds",
                                     _single(RAFT_APPEND, "Raft log appends", _raft_seconds("Raft log append")))
raft_apply_slow: Rule = metric_rule(RAFT_APPLY, "tikv_raftstore_apply_log_duration_seconds",
                                    _single(RAFT_APPLY, "Raft log applies", _raft_seconds("Raft log apply")))
write_stall: Rule = metric_rule(WRITE_STALL, "tikv_engine_write_stall",
                                _single(WRITE_STALL, "write stalls", _write_stall))
critical_error: Rule = metric_rule(CRITICAL_ERRORS, "tikv_critical_error_total",
                                   _single(CRITICAL_ERRORS, "critical errors", _errors), absent=_no_errors_if_scraped)

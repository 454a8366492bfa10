"""The TiKVCluster status after a check, and whether it is worth a write."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from tikv_operator.alerts.core.delivery import DeliveryReport, alerts_delivered
from tikv_operator.checks.core.catalogue import INVARIANT_NAMES
from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.observation import NotContacted, Observation
from tikv_operator.checks.core.store_memory import EMPTY, StoreMemory
from tikv_operator.model.cluster_resource import (
    RESTARTS_REMEMBERED_MAX,
    Condition,
    RememberedStore,
    StoreCounts,
    StoreMemoryStatus,
    TiKVClusterStatus,
)
from tikv_operator.model.timestamps import from_rfc3339, to_rfc3339
from tikv_operator.model.vocabulary import Health
from tikv_operator.tickets.core.lifecycle import Plan

ConditionStatus = Literal["True", "False", "Unknown"]


def _condition(previous: TiKVClusterStatus | None, type_: str, status: ConditionStatus, reason: str, message: str,
               generation: int | None, now: datetime) -> Condition:
    old = next((c for c in (previous.conditions if previous else []) if c.type == type_), None)
    # metav1.Condition: lastTransitionTime moves only when the status does.
    since = old.last_transition_time if old is not None and old.status == status else to_rfc3339(now)
    return Condition(type=type_, status=status, reason=reason, message=message[:32768],
                     observed_generation=generation, last_transition_time=since)


def heartbeat(findings: Sequence[Finding], plan: Plan) -> str:
    """The log line of one check, in the spirit of the original "Check complete: 3 invariants, all passing"."""
    invariants = len({f.invariant for f in findings})
    violated = [f for f in findings if f.verdict == "violated"]
    unknown = sum(f.verdict == "unknown" for f in findings)
    names = ", ".join(f"{f.invariant}{'@' + f.store if f.store else ''}" for f in violated[:5])
    more = ", ..." if len(violated) > 5 else ""
    verdict = ("all passing" if not violated
               else f"{len(violated)} violation{'s' * (len(violated) != 1)} ({names}{more})")
    extra = f", {unknown} unknown" if unknown else ""
    return f"check complete: {invariants} invariants, {verdict}{extra}; {plan.open_tickets} open tickets"


# Reasons of MetricsAvailable=False, by the cause of the findings behind it, most actionable first.
_BLIND_REASONS = {"query-failed": "QueryFailed", "ambiguous": "AmbiguousSeries", "no-data": "NoSeries"}


def credentials_available(obs: Observation) -> tuple[ConditionStatus, str, str]:
    """Could the probes use the Secrets the spec names? (status, reason, message). SecretRefused: the
    Secret was read and must be changed by its owner (not opted in, a ServiceAccount token, a key missing or
    malformed); SecretUnreadable: the API server did not hand it over (not found, forbidden, throttled,
    failing, timed out). When both probes have a problem, Refused wins: it is the one a person must fix."""
    problems = [p for p in (obs.pd.not_contacted, obs.metrics.not_contacted) if p is not None]
    if problems:
        refused = any(p.failure == "refused" for p in problems)
        return "False", "SecretRefused" if refused else "SecretUnreadable", "; ".join(p.reason for p in problems)
    if obs.secrets:
        loaded = f"loaded Secret{'s' * (len(obs.secrets) != 1)} {', '.join(obs.secrets)}"
        if obs.stale_secrets:
            return "True", "LoadedStale", f"{loaded}; {'; '.join(obs.stale_secrets)}"
        return "True", "Loaded", loaded
    return "True", "NotNeeded", "the spec names no Secret"


def _reachable(url: str, reachable: bool, error: str, not_contacted: NotContacted | None
               ) -> tuple[ConditionStatus, str, str]:
    """PDReachable / PrometheusReachable: not contacted is Unknown, since nothing was asked."""
    if not_contacted is not None:
        return "Unknown", "NotContacted", f"not contacted: {not_contacted.reason}"
    if reachable:
        return "True", "Answering", url
    return "False", "NotAnswering", error or url


def _not_contacted_message(what: str, not_contacted: NotContacted) -> str:
    return f"credentials unavailable, {what} not contacted: {not_contacted.reason}"


def metrics_available(obs: Observation, findings: Sequence[Finding]) -> tuple[ConditionStatus, str, str]:
    """Rule 14: can the operator see the metrics its invariants need? (status, reason, message)."""
    if obs.pd.not_contacted is not None:
        return "Unknown", "PDNotContacted", ("which stores to look for is not known while PD is not contacted "
                                             f"(credentials unavailable: {obs.pd.not_contacted.reason})")
    if not obs.pd.reachable:
        return "Unknown", "PDNotAnswering", "which stores to look for is not known while PD does not answer"
    if obs.metrics.not_contacted is not None:
        return "Unknown", "PrometheusNotContacted", _not_contacted_message("Prometheus", obs.metrics.not_contacted)
    if not obs.metrics.reachable:
        return "False", "PrometheusNotAnswering", obs.metrics.error
    for cause, reason in _BLIND_REASONS.items():
        blind = [f for f in findings if f.verdict == "unknown" and f.cause == cause]
        if blind:
            stores = sorted({f.store for f in blind if f.store}, key=lambda s: (len(s), s))
            invariants = sorted({f.invariant for f in blind})
            where = f" for store{'s' * (len(stores) != 1)} {', '.join(stores)}" if stores else ""
            return "False", reason, f"{', '.join(invariants)} cannot be judged{where}: {blind[0].message}"
    return "True", "SeriesFound", "every Up TiKV store has the series its invariants read"


def custom_invariants(findings: Sequence[Finding]) -> tuple[ConditionStatus, str, str] | None:
    """Could the cluster's own invariants be evaluated? None when it has none. A malformed expression is
    False with Prometheus' own error, so the person who wrote it sees why."""
    customs = [f for f in findings if f.invariant not in INVARIANT_NAMES]
    if not customs:
        return None
    names = sorted({f.invariant for f in customs})
    for cause, reason in (("query-failed", "QueryFailed"), ("ambiguous", "UnmappedSeries")):
        bad = {f.invariant: f.message for f in customs if f.verdict == "unknown" and f.cause == cause}
        if bad:
            return "False", reason, "; ".join(f"{name}: {message}" for name, message in sorted(bad.items()))
    unknown = next((f for f in customs if f.verdict == "unknown" and f.cause != "inhibited"), None)
    if unknown is not None:
        return "Unknown", "NotEvaluated", unknown.message
    return "True", "Evaluated", f"evaluated {', '.join(names)}"


def written_memory(memory: StoreMemory) -> StoreMemoryStatus | None:
    """The memory as `status.storeMemory`: only the stores PD lists (remember drops the others), the newest
    restart sightings (remember forgets those past the window). None before PD first answered."""
    if memory.since is None or memory.at is None:
        return None
    ids = sorted(set(memory.starts) | set(memory.restarts) | memory.vouched, key=lambda i: (len(i), i))
    stores = [RememberedStore(
        id=i, start_timestamp=memory.starts.get(i),
        restarts=[to_rfc3339(t) for t in memory.restarts.get(i, ())[-RESTARTS_REMEMBERED_MAX:]],
        led=(i in memory.led) if i in memory.vouched else None) for i in ids]
    return StoreMemoryStatus(since=to_rfc3339(memory.since), at=to_rfc3339(memory.at), stores=stores)


def read_memory(status: StoreMemoryStatus | None) -> StoreMemory:
    """The memory a status holds (EMPTY for none); a timestamp that does not parse is dropped."""
    if status is None:
        return EMPTY
    since, at = from_rfc3339(status.since), from_rfc3339(status.at)
    if since is None or at is None:
        return EMPTY
    restarts = {s.id: tuple(t for t in map(from_rfc3339, s.restarts) if t is not None) for s in status.stores}
    return StoreMemory(
        starts={s.id: s.start_timestamp for s in status.stores if s.start_timestamp},
        restarts={i: ts for i, ts in restarts.items() if ts},
        led=frozenset(s.id for s in status.stores if s.led),
        vouched=frozenset(s.id for s in status.stores if s.led is not None),
        at=at, since=since)


def next_status(previous: TiKVClusterStatus | None, obs: Observation, findings: Sequence[Finding], plan: Plan,
                generation: int | None, delivery: DeliveryReport | None = None,
                memory: StoreMemory | None = None) -> TiKVClusterStatus:
    now = obs.at
    up = sum(s.up for s in obs.pd.stores)
    total = len(obs.pd.stores)
    blind = not (obs.pd.reachable and obs.metrics.reachable) or any(f.blind for f in findings)
    health: Health = "Degraded" if plan.open_tickets else ("Unknown" if blind else "Healthy")
    violated = sum(f.verdict == "violated" for f in findings)
    if obs.pd.not_contacted is not None:
        message = _not_contacted_message("PD", obs.pd.not_contacted)
    elif obs.pd.reachable:
        message = f"{up}/{total} stores up, {plan.open_tickets} open tickets, {violated} violations"
    else:
        message = f"PD does not answer: {obs.pd.error}"
    if obs.metrics.not_contacted is not None:
        message += f"; {_not_contacted_message('Prometheus', obs.metrics.not_contacted)}"
    elif not obs.metrics.reachable:
        message += f"; Prometheus does not answer: {obs.metrics.error}"
    metrics_status, metrics_reason, metrics_message = metrics_available(obs, findings)
    if obs.metrics.reachable and metrics_status == "False":
        message += f"; blind: {metrics_message}"
    unknown_state = next((f for f in findings if f.blind and f.cause == "pd"), None)
    if unknown_state is not None:
        message += f"; {unknown_state.message}"
    stores = StoreCounts(up=up, total=total) if obs.pd.reachable else (previous.stores if previous else None)
    conditions = [
        _condition(previous, "Ready", "True" if health == "Healthy" else "False", health,
                   message, generation, now),
        _condition(previous, "PDReachable",
                   *_reachable(obs.pd.url, obs.pd.reachable, obs.pd.error, obs.pd.not_contacted), generation, now),
        _condition(previous, "PrometheusReachable",
                   *_reachable(obs.metrics.url, obs.metrics.reachable, obs.metrics.error, obs.metrics.not_contacted),
                   generation, now),
        _condition(previous, "MetricsAvailable", metrics_status, metrics_reason, metrics_message, generation, now),
        _condition(previous, "CredentialsAvailable", *credentials_available(obs), generation, now),
    ]
    if delivery is not None:
        conditions.append(_condition(previous, "AlertsDelivered", *alerts_delivered(delivery), generation, now))
    custom = custom_invariants(findings)
    if custom is not None:
        conditions.append(_condition(previous, "CustomInvariants", *custom, generation, now))
    return TiKVClusterStatus(
        observed_generation=generation,
        health=health,
        conditions=conditions,
        last_check_time=to_rfc3339(now),
        stores=stores,
        stores_up=f"{stores.up}/{stores.total}" if stores else None,
        open_tickets=plan.open_tickets,
        pending_violations=list(plan.pending),
        # None before PD first answered, or when the memory started over (rule 16): a stale memory is not
        # kept, or the next process would take it as recent.
        store_memory=written_memory(memory or EMPTY),
        message=message,
    )


def needs_write(previous: TiKVClusterStatus | None, new: TiKVClusterStatus, refresh_interval: timedelta) -> bool:
    """Write when anything but the check time changed, or the check time is a refresh interval old:
    in a steady state that is one status write per cluster per refresh interval. The store memory's `at`
    moves with every check and is written with the rest; anything else in it (a restart seen, a store that
    led, a store listed or dropped) is a change, written by the check that saw it (rule 24)."""
    if previous is None:
        return True
    ignore: dict[str, Any] = {"last_check_time": True, "store_memory": {"at": True}}
    if previous.model_dump(exclude=ignore) != new.model_dump(exclude=ignore):
        return True
    last, now = from_rfc3339(previous.last_check_time), from_rfc3339(new.last_check_time)
    return last is None or now is None or now - last >= refresh_interval


def spec_rejected_status(previous: TiKVClusterStatus | None, message: str, generation: int | None,
                         now: datetime) -> TiKVClusterStatus:
    """A spec the operator cannot use: no verdict (Unknown), and why, where `kubectl describe` shows it.
    The other conditions are kept: they still say what the last good check saw."""
    ready = _condition(previous, "Ready", "False", "InvalidSpec", message, generation, now)
    kept = [c for c in (previous.conditions if previous else []) if c.type != "Ready"]
    base = previous or TiKVClusterStatus()
    return base.model_copy(update={
        "health": "Unknown", "message": f"spec rejected: {message}", "conditions": [ready, *kept],
        "observed_generation": generation,
    })

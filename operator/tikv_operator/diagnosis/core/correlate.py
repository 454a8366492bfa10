"""Which open ticket is a symptom of which cause (rule 26), and the diagnosis a cause carries (rule 27): pure.

`correlate` reads the cluster's open tickets (and the ones this check is opening) against the catalogue
(`causes.LINKS`); `diagnose` words what a cause explains for a person at 3 a.m. and keeps PD's evidence beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tikv_operator.diagnosis.core.causes import CAUSES, LINKS, Link
from tikv_operator.model.durations import format_duration
from tikv_operator.model.ticket_resource import ExplainedTicket, TicketCause, TicketDiagnosis
from tikv_operator.model.timestamps import from_rfc3339, to_rfc3339
from tikv_operator.tickets.core.ticket import TicketView

# PD's default max-store-down-time (pkg/schedule/config/config.go defaultMaxStoreDownTime): the operator does
# not read PD's configuration, so the time left is said as against the default, and says so.
PD_DEFAULT_MAX_STORE_DOWN_TIME = timedelta(minutes=30)
RUNBOOK = "docs/runbooks/{invariant}.md"
# Evidence not worth keeping in a diagnosis: the query text is on the ticket already.
_NOT_EVIDENCE = frozenset({"query", "series", "key", "source"})


@dataclass(frozen=True)
class Explained:
    """`symptom` is explained by `cause`, through `link`."""

    symptom: TicketView
    cause: TicketView
    link: Link

    def cause_field(self, now: datetime) -> TicketCause:
        return TicketCause(ticket=self.cause.name, invariant=self.cause.invariant, store=self.cause.store,
                           rule=self.link.rule, since=to_rfc3339(now))


def _located(link: Link, cause: TicketView, symptom: TicketView) -> bool:
    if link.where == "same-store":
        return bool(cause.store) and symptom.store == cause.store
    if link.where == "other-stores":
        return bool(cause.store) and bool(symptom.store) and symptom.store != cause.store
    return True


def _in_window(link: Link, cause: TicketView, symptom: TicketView) -> bool:
    """A symptom first seen long before its cause was there before it: something else, and it pages."""
    if cause.first_seen is None or symptom.first_seen is None:
        return True
    return symptom.first_seen >= cause.first_seen - link.window


def explain(symptom: TicketView, causes: Iterable[TicketView]) -> tuple[TicketView, Link] | None:
    """The cause of `symptom` among `causes`, and the link: the first link of the catalogue that holds, and for it
    the cause seen first (then by name, so every check and replica picks the same)."""
    candidates = [c for c in causes if c.active and c.name != symptom.name]
    for link in LINKS:
        if symptom.invariant not in link.symptoms:
            continue
        matching = [c for c in candidates if c.invariant == link.cause and _located(link, c, symptom)
                    and _in_window(link, c, symptom)]
        if matching:
            far_future = datetime.max.replace(tzinfo=symptom.first_seen.tzinfo if symptom.first_seen else None)
            cause = min(matching, key=lambda c: (c.first_seen or far_future, c.name))
            return cause, link
    return None


def correlate(tickets: Iterable[TicketView]) -> dict[str, Explained]:
    """Open ticket name -> its cause, for every open ticket the catalogue explains by another open ticket."""
    active = [t for t in tickets if t.active]
    # Only tickets of a cause's invariant can explain anything: a cluster's hundreds of tickets are few causes.
    causes = [t for t in active if t.invariant in CAUSES]
    out: dict[str, Explained] = {}
    for ticket in active:
        found = explain(ticket, causes)
        if found is not None:
            out[ticket.name] = Explained(ticket, found[0], found[1])
    return out


def explains(correlation: Mapping[str, Explained]) -> dict[str, list[Explained]]:
    """Cause name -> what it explains, by ticket name."""
    by_cause: dict[str, list[Explained]] = {}
    for explained in sorted(correlation.values(), key=lambda e: e.symptom.name):
        by_cause.setdefault(explained.cause.name, []).append(explained)
    return by_cause


def _clock(moment: datetime) -> str:
    return f"{moment:%H:%M} UTC"


def _pd_facts(cause: TicketView, evidence: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    facts = {k: v for k, v in evidence.items() if k not in _NOT_EVIDENCE}
    if cause.invariant == "store_down":
        beat = from_rfc3339(evidence.get("lastHeartbeat")) if isinstance(evidence.get("lastHeartbeat"), str) else None
        if evidence.get("stateName") == "Disconnected" and beat is not None:
            left = max(PD_DEFAULT_MAX_STORE_DOWN_TIME - (now - beat), timedelta(0))
            facts["maxStoreDownTimeLeft"] = format_duration(timedelta(seconds=round(left.total_seconds())))
            facts["maxStoreDownTime"] = f"{format_duration(PD_DEFAULT_MAX_STORE_DOWN_TIME)} (PD's default)"
    return facts


def _headline(cause: TicketView, facts: Mapping[str, Any]) -> str:
    """The cause in a few words, with PD's facts when there are any."""
    if cause.invariant == "store_down" and facts.get("stateName"):
        beat = from_rfc3339(facts["lastHeartbeat"]) if isinstance(facts.get("lastHeartbeat"), str) else None
        text = f"store {cause.store} is {facts['stateName']}"
        if beat is not None:
            text += f" since {_clock(beat)}"
        if "maxStoreDownTimeLeft" in facts:
            text += (f" ({facts['maxStoreDownTimeLeft']} left of PD's default max-store-down-time "
                     f"{format_duration(PD_DEFAULT_MAX_STORE_DOWN_TIME)})")
        return text
    return cause.message or (f"{cause.invariant} on store {cause.store}" if cause.store else cause.invariant)


def _stores(stores: Sequence[str]) -> str:
    ordered = sorted(set(stores), key=lambda s: (len(s), s))
    if len(ordered) == 1:
        return f"store {ordered[0]}"
    return f"stores {', '.join(ordered[:-1])} and {ordered[-1]}"


def _what(explained: Sequence[Explained]) -> str:
    """`region_down_peer (60 regions), high_latency on stores 1 and 2`: per invariant, in catalogue order."""
    by_invariant: dict[str, list[TicketView]] = {}
    for e in explained:
        by_invariant.setdefault(e.symptom.invariant, []).append(e.symptom)
    parts: list[str] = []
    for invariant, tickets in sorted(by_invariant.items()):
        stores = [t.store for t in tickets if t.store]
        regions = [t.evidence.get("regions") for t in tickets if isinstance(t.evidence.get("regions"), int | float)]
        text = invariant
        if stores:
            text += f" on {_stores(stores)}"
        if regions:
            text += f" ({max(regions):g} regions)"
        parts.append(text)
    return ", ".join(parts)


def summary(cause: TicketView, facts: Mapping[str, Any], explained: Sequence[Explained]) -> str:
    """One line for a person at 3 a.m.: what is wrong, PD's word on it, and which tickets it explains."""
    head = _headline(cause, facts)
    if not explained:
        return f"{head}: it explains no other open ticket"
    count = len(explained)
    return f"{head}: it explains {count} ticket{'s' if count != 1 else ''}: {_what(explained)}"


def diagnose(cause: TicketView, explained: Sequence[Explained], evidence: Mapping[str, Any],
             now: datetime) -> TicketDiagnosis:
    """The diagnosis of `cause` (rule 27). `evidence`: the cause's latest finding's (this check's), else its own."""
    facts = _pd_facts(cause, evidence, now)
    regions = {e.symptom.invariant: e.symptom.evidence["regions"] for e in explained
               if isinstance(e.symptom.evidence.get("regions"), int | float)}
    if regions:
        facts["regions"] = regions
    return TicketDiagnosis(
        summary=summary(cause, facts, explained),
        explains=[ExplainedTicket(ticket=e.symptom.name, invariant=e.symptom.invariant, store=e.symptom.store,
                                  rule=e.link.rule) for e in explained],
        rules=sorted({e.link.rule for e in explained}),
        pd=facts or None,
        runbook=RUNBOOK.format(invariant=cause.invariant),
        diagnosed_at=to_rfc3339(now),
    )


def same_diagnosis(old: TicketDiagnosis | None, new: TicketDiagnosis) -> bool:
    """Unchanged but for when it was made and the numbers that move every check (seconds since a heartbeat, time
    left): a diagnosis is rewritten when what it explains or the state behind it changes, not every check."""
    if old is None:
        return False
    moving = {"secondsSinceHeartbeat", "maxStoreDownTimeLeft"}

    def key(d: TicketDiagnosis) -> tuple[Any, ...]:
        pd = {k: v for k, v in (d.pd or {}).items() if k not in moving}
        return (tuple((e.ticket, e.rule) for e in d.explains), pd.get("stateName"), pd.get("regions"))
    return key(old) == key(new)

"""What the operator remembers of each store between checks: PD's answer is a snapshot, and two invariants
are about change (a restart, leaders lost). Pure: one observation in, the next memory out.

The memory is written in the TiKVCluster's `status.storeMemory` with every check that changes it in a way a
verdict reads (a restart seen, a store that led, a store listed or dropped), so an operator restart or a
leader handover goes on from it (rule 24), if the check that wrote it is recent enough (the staleness of
rule 16); else the memory starts over. What a memory cannot vouch for (it began after the window, or after
the store's process started) is unknown, never ok: `since` and `vouched` say what it covers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tikv_operator.checks.core.observation import Observation, Store


@dataclass(frozen=True)
class StoreMemory:
    starts: Mapping[str, int] = field(default_factory=dict)  # store id -> PD's start_timestamp last seen
    restarts: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)  # when each restart happened
    # Stores that held Raft leaders since their process started: only they can lose them (a new or just
    # restarted store has none until PD balances some to it, which takes minutes).
    led: frozenset[str] = frozenset()
    at: datetime | None = None  # the last observation in which PD answered
    # Stores whose leadership since their process started is known (every store in `led`; a store seen to
    # start: a restart, or first listed while the memory was already watching). Another store with no
    # leaders may have lost them before the memory began: not known, so store_leader_lost is unknown.
    vouched: frozenset[str] = frozenset()
    # When this memory began watching (its first PD answer): restarts before it were not seen.
    since: datetime | None = None

    def watched_restarts_since(self, store: Store, moment: datetime) -> bool:
        """Would every restart of `store` after `moment` be in this memory? Yes when the memory was watching
        by then, or when PD says the store's process started before it (no restart since)."""
        if self.since is not None and self.since <= moment:
            return True
        return bool(store.start_timestamp) and datetime.fromtimestamp(store.start_timestamp, UTC) <= moment


def restart_time(start_timestamp: int, previous: datetime | None, now: datetime) -> datetime:
    """When a restart seen now happened: PD's start_timestamp of the new process, which falls after the last
    answer that still showed the old one and no later than now. Not the check that saw it: after PD (or the
    operator) was away, that check may come a whole window later, and a restart from before the window would
    count as a recent one (found by the fault soak). A start_timestamp outside those bounds (a clock
    apart, PD's 1970 placeholder) is clamped to them."""
    moment = datetime.fromtimestamp(start_timestamp, UTC)
    if previous is not None:
        moment = max(moment, previous)
    return min(moment, now)


EMPTY = StoreMemory()


def remember(memory: StoreMemory, obs: Observation, horizon: timedelta) -> StoreMemory:
    """The memory after `obs`; restart sightings older than `horizon` are forgotten, and so are stores PD
    no longer lists. A PD that did not answer teaches nothing."""
    if not obs.pd.reachable:
        return memory
    starts: dict[str, int] = {}
    restarts: dict[str, tuple[datetime, ...]] = {}
    led: set[str] = set()
    vouched: set[str] = set()
    for store in obs.pd.stores:
        before = memory.starts.get(store.id)
        # 0 (PD's 1970 start_ts) until the process' first heartbeat: not a start time yet.
        start = store.start_timestamp or before
        seen = tuple(t for t in memory.restarts.get(store.id, ()) if obs.at - t < horizon)
        restarted = bool(before and start and start > before)
        if restarted:
            seen += (restart_time(start, memory.at, obs.at),)
        if start:
            starts[store.id] = start
        if seen:
            restarts[store.id] = seen
        if (store.id in memory.led and not restarted) or (store.up and (store.leader_count or 0) > 0):
            led.add(store.id)
        # Seen from its process' start: restarted, or listed for the first time by a memory that was already
        # watching (a new store).
        born = restarted or (memory.at is not None and before is None)
        if store.id in led or store.id in memory.vouched or born:
            vouched.add(store.id)
    return StoreMemory(starts=starts, restarts=restarts, led=frozenset(led), at=obs.at,
                       vouched=frozenset(vouched), since=memory.since or obs.at)



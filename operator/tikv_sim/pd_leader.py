"""PD leader elections: the windows in which PD's API fails, and what the new leader knows of the stores."""

from dataclasses import dataclass, field
from enum import Enum

from tikv_sim.exposition import Sample

# A member's cluster gauges by family name (pd_cluster_status, pd_regions_status, pd_scheduler_store_status).
Gauges = dict[str, list[Sample]]


class LeaderPhase(Enum):
    ELECTION = "election"  # no leader: followers answer 503 ErrRedirectNoLeader
    NOT_BOOTSTRAPPED = "not-bootstrapped"  # a leader whose RaftCluster is not running yet: 500
    SERVING = "serving"


@dataclass(frozen=True)
class LeaderChange:
    at_ns: int
    elected_ns: int  # end of the election
    ready_ns: int  # the new leader's RaftCluster runs from here
    reconnect_ns: int  # stores' heartbeats reach the new leader from here on
    # Store id -> the heartbeat the new leader loaded from etcd (PD persists one every persist_interval).
    persisted: dict[int, int] = field(default_factory=dict)

    def phase(self, now_ns: int) -> LeaderPhase:
        if now_ns < self.elected_ns:
            return LeaderPhase.ELECTION
        if now_ns < self.ready_ns:
            return LeaderPhase.NOT_BOOTSTRAPPED
        return LeaderPhase.SERVING


@dataclass
class LeaderState:
    leader_index: int = 0  # which PD member leads: pd-0, pd-1, pd-2, then pd-0 again
    changes: int = 0
    last: LeaderChange | None = None
    # Member index -> the gauges it last set as leader. PD never resets them: a follower keeps exporting these.
    stale: dict[int, Gauges] = field(default_factory=dict)

    def phase(self, now_ns: int) -> LeaderPhase:
        return LeaderPhase.SERVING if self.last is None else self.last.phase(now_ns)

    def record(self, change: LeaderChange, members: int) -> None:
        self.leader_index = (self.leader_index + 1) % max(1, members)
        self.changes += 1
        self.last = change

"""Scenario files play their faults in order, at their times."""

import asyncio

import pytest

from tikv_sim.clock import NS_PER_SECOND, ManualClock
from tikv_sim.faults import Fault, FaultError
from tikv_sim.scenario import parse_duration, parse_scenario, play

SCENARIO = """
- at: 1m
  fault: pd
  mode: unreachable
- at: 5s
  fault: stop-store
  store: 1
- at: 5s
  fault: disk
  store: 2
  percent: 85
- at: 1m30s
  fault: pd
  mode: ok
"""


def test_steps_are_ordered_by_time_and_keep_file_order_on_ties() -> None:
    steps = parse_scenario(SCENARIO)
    assert [(s.at_seconds, s.fault.kind) for s in steps] == [
        (5, "stop-store"),
        (5, "disk"),
        (60, "pd"),
        (90, "pd"),
    ]


def test_play_applies_each_fault_when_its_time_comes() -> None:
    clock = ManualClock()
    started = clock.now_ns()
    applied: list[tuple[float, str]] = []

    async def apply(fault: Fault) -> None:
        applied.append(((clock.now_ns() - started) / NS_PER_SECOND, fault.kind))

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    asyncio.run(play(parse_scenario(SCENARIO), apply, sleep, lambda: (clock.now_ns() - started) / NS_PER_SECOND))
    assert applied == [(5, "stop-store"), (5, "disk"), (60, "pd"), (90, "pd")]


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5), ("1m30s", 90), ("250ms", 0.25), (3, 3), ("1h", 3600)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- fault: stop-store\n  store: 1\n", "step 1: each step needs `at`"),
        ("- at: soon\n  fault: stop-store\n  store: 1\n", "step 1: not a duration"),
        ("- at: 1s\n  fault: stop-store\n  store: 1\n- at: 2s\n  fault: melt\n", "step 2: unknown fault"),
        ("fault: stop-store\n", "a scenario is a list"),
    ],
)
def test_bad_scenarios_say_which_step(text: str, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        parse_scenario(text)


def test_steps_mapping_form() -> None:
    steps = parse_scenario("steps:\n  - at: 2s\n    fault: latency\n    store: 1\n    p99_ms: 250\n")
    assert steps[0].fault.params == {"p99_ms": 250.0}


def test_a_scenario_can_switch_the_cascade_on_first() -> None:
    steps = parse_scenario("cascade: true\nsteps:\n  - at: 0s\n    fault: stop-store\n    store: 1\n")
    assert [step.fault.to_mapping() for step in steps] == [{"fault": "cascade", "mode": "on"},
                                                           {"fault": "stop-store", "store": 1}]
    with pytest.raises(FaultError, match="cascade is true or false"):
        parse_scenario("cascade: sometimes\nsteps: []\n")


def test_timeline_faults_in_a_scenario() -> None:
    steps = parse_scenario(
        "- at: 1s\n  fault: rolling-restart\n  downtime: 3\n  gap: 1\n"
        "- at: 2s\n  fault: pd-leader-change\n  election_seconds: 1.5\n"
        "- at: 3s\n  fault: scale-in\n  store: 3\n  drain_seconds: 4\n"
        "- at: 4s\n  fault: replace-store\n  store: 1\n  cluster: beta/basic\n"
    )
    assert [(s.fault.kind, s.fault.params) for s in steps] == [
        ("rolling-restart", {"downtime": 3.0, "gap": 1.0}),
        ("pd-leader-change", {"election_seconds": 1.5}),
        ("scale-in", {"drain_seconds": 4.0}),
        ("replace-store", {}),
    ]
    assert steps[3].fault.cluster == "beta/basic"


def test_timeline_steps_are_not_faults_users_send() -> None:
    with pytest.raises(FaultError, match="unknown fault 'remove-store'"):
        Fault.from_mapping({"fault": "remove-store", "store": 1})


def test_health_faults_in_a_scenario() -> None:
    steps = parse_scenario(
        "- at: 1s\n  fault: raft-log-lag\n  store: 1\n  entries: 6000\n"
        "- at: 2s\n  fault: raft-append\n  store: 2\n  p99_ms: 1500\n"
        "- at: 3s\n  fault: raft-apply\n  store: 2\n  p99_ms: 1200\n"
        "- at: 4s\n  fault: critical-error\n  store: 3\n  type: key not in region\n  count: 2\n"
        "- at: 5s\n  fault: leaders\n  store: 1\n  count: 0\n"
        "- at: 6s\n  fault: regions\n  miss-peer: 200\n  member: followers\n"
    )
    assert [(s.fault.kind, s.fault.params) for s in steps] == [
        ("raft-log-lag", {"entries": 6000.0}),
        ("raft-append", {"p99_ms": 1500.0}),
        ("raft-apply", {"p99_ms": 1200.0}),
        ("critical-error", {"type": "key not in region", "count": 2}),
        ("leaders", {"count": 0}),
        ("regions", {"miss-peer": 200, "member": "followers"}),
    ]
    with pytest.raises(FaultError, match="step 1: fault raft-log-lag: entries must be a finite number at least 0"):
        parse_scenario("- at: 1s\n  fault: raft-log-lag\n  store: 1\n  entries: -4\n")

"""The Lease rules: who may take it, when a holder must stop, what is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tikv_operator.election.core.leases import (
    MAX_JITTER,
    LeaseRecord,
    LeaseTiming,
    Sighting,
    claim,
    held_by_other,
    may_act,
    next_attempt_in,
    observe,
    released,
)

T0 = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
TIMING = LeaseTiming()


def held(holder: str, duration: int = 15, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(holder=holder, duration_s=duration, acquire_time=T0, renew_time=T0, transitions=transitions)


def test_client_go_defaults_are_sound() -> None:
    assert (TIMING.lease_duration_s, TIMING.renew_deadline_s, TIMING.retry_period_s) == (15, 10, 2)
    assert TIMING.problems() == []


@pytest.mark.parametrize(("timing", "words"), [
    (LeaseTiming(lease_duration_s=10, renew_deadline_s=10), "lease duration must exceed the renew deadline"),
    (LeaseTiming(renew_deadline_s=2, retry_period_s=2), "renew deadline must exceed the retry period"),
    (LeaseTiming(retry_period_s=0), "retry period must be positive"),
])
def test_unsafe_timings_are_named(timing: LeaseTiming, words: str) -> None:
    assert any(words in problem for problem in timing.problems())


def test_the_expiry_clock_restarts_only_when_the_record_changes() -> None:
    first = observe(None, held("a"), now=100.0)
    assert observe(first, held("a"), now=110.0).seen_at == 100.0  # the same record read again
    renewed = held("a")
    renewed = LeaseRecord(**{**renewed.__dict__, "renew_time": T0 + timedelta(seconds=2)})
    assert observe(first, renewed, now=112.0).seen_at == 112.0


def test_another_holder_is_live_until_its_duration_has_passed_since_this_replica_saw_it_renew() -> None:
    seen = Sighting(held("a"), seen_at=100.0)
    assert held_by_other(seen, "b", now=114.9)
    assert not held_by_other(seen, "b", now=115.0)
    assert not held_by_other(seen, "a", now=101.0)  # its own
    assert not held_by_other(Sighting(released(held("a"), T0), 100.0), "b", now=100.0)  # released: free at once
    assert not held_by_other(None, "b", now=0.0)  # no Lease yet


def test_renewing_keeps_acquire_time_and_transitions_taking_over_counts_one() -> None:
    later = T0 + timedelta(seconds=30)
    renewal = claim(Sighting(held("a", transitions=4), 0.0), "a", later, TIMING)
    assert (renewal.holder, renewal.acquire_time, renewal.renew_time, renewal.transitions) == ("a", T0, later, 4)
    taken = claim(Sighting(held("a", transitions=4), 0.0), "b", later, TIMING)
    assert (taken.holder, taken.acquire_time, taken.renew_time, taken.transitions) == ("b", later, later, 5)
    after_release = claim(Sighting(released(held("a", transitions=4), T0), 0.0), "b", later, TIMING)
    assert after_release.transitions == 5
    first = claim(None, "a", later, TIMING)
    assert (first.holder, first.duration_s, first.transitions) == ("a", 15, 0)


def test_a_release_leaves_no_holder_and_a_one_second_duration() -> None:
    record = released(held("a", transitions=2), T0 + timedelta(seconds=5))
    assert (record.holder, record.duration_s, record.transitions) == ("", 1, 2)


def test_the_holder_stops_acting_at_the_renew_deadline_before_anyone_may_take_over() -> None:
    assert may_act(renewed_at=100.0, now=109.9, timing=TIMING)
    assert not may_act(renewed_at=100.0, now=110.0, timing=TIMING)
    assert not may_act(renewed_at=None, now=0.0, timing=TIMING)
    # The renewal was sent at 100 and seen by the standby no earlier: it may take over at 115 at the soonest,
    # 5 s after the holder stopped.
    assert not held_by_other(Sighting(held("a"), seen_at=100.0), "b", now=115.0)


def test_a_standby_asks_every_retry_period_and_right_when_the_lease_runs_out() -> None:
    assert next_attempt_in(None, "b", leading=True, now=0.0, timing=TIMING, jitter=0.9) == 2.0
    assert next_attempt_in(None, "b", leading=False, now=0.0, timing=TIMING, jitter=0.0) == 2.0
    assert next_attempt_in(None, "b", leading=False, now=0.0, timing=TIMING, jitter=1.0) == pytest.approx(
        2.0 * (1 + MAX_JITTER))
    # The holder's lease (seen at 100) runs out at 115: at 114, the standby asks at 115, not at 116.
    seen = Sighting(held("a"), seen_at=100.0)
    assert next_attempt_in(seen, "b", leading=False, now=114.0, timing=TIMING, jitter=1.0) == pytest.approx(1.05)

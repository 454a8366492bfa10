"""The soak's plan is reproducible, keeps each lane's faults apart, and always holds every disruption."""

import itertools

from bench.soak.schedule import PEOPLE, PLATFORM, Event, counts, plan

CLUSTERS = [("c01", 3), ("c02", 3), ("c03", 3), ("c04", 3)]


def test_the_same_seed_gives_the_same_plan_and_another_seed_another():
    first = plan(7, 600, CLUSTERS)
    assert first == plan(7, 600, CLUSTERS)
    assert first != plan(8, 600, CLUSTERS)


def test_events_are_in_time_order_and_every_end_comes_before_the_settle_time():
    events = plan(3, 600, CLUSTERS, settle_s=30)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert all(e.end <= 570 + 1e-6 for e in events if e.duration and e.kind != "rolling-restart")


def test_a_store_has_one_fault_at_a_time_and_none_after_its_scale_in_or_during_a_rolling_restart():
    events = plan(11, 1800, CLUSTERS)
    for cluster, stores in CLUSTERS:
        rolling = [(e.at, e.end) for e in events if e.cluster == cluster and e.kind == "rolling-restart"]
        for store in range(1, stores + 1):
            lane = [e for e in events if e.cluster == cluster and e.store == store]
            for a, b in itertools.pairwise(lane):
                assert a.end <= b.at, (a, b)
            scaled = [e for e in lane if e.kind == "scale-in"]
            if scaled:
                assert lane[-1] == scaled[0]
            for e in lane:
                assert all(e.end <= start or e.at >= end for start, end in rolling), (e, rolling)


def test_every_run_holds_every_platform_disruption_and_every_people_action_even_a_short_one():
    tally = counts(plan(5, 150, CLUSTERS[:2]))
    for kind in PLATFORM:
        assert tally.get(kind, 0) >= 1, (kind, tally)
    for action in PEOPLE:
        assert tally.get(f"person:{action}", 0) >= 1, (action, tally)


def test_operator_disruptions_are_spaced_for_a_handover_to_finish():
    events = [e for e in plan(2, 1800, CLUSTERS) if e.kind.startswith("operator-")]
    assert len(events) >= 2
    assert all(b.at - a.at >= 45 for a, b in itertools.pairwise(events))


def test_an_event_ends_after_its_duration():
    assert Event(10.0, "disk", "c01", 1, 5.0).end == 15.0

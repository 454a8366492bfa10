"""The failover benchmark's bookkeeping: when checks happened, per cluster, from successive scrapes."""

import pytest
from bench.failover import CheckTimes, checks_by_cluster, gauge, missed_checks, outages

METRICS = """\
# HELP tikv_operator_checks_total Checks run.
# TYPE tikv_operator_checks_total counter
tikv_operator_checks_total{cluster="a",namespace="ns1"} 4.0
tikv_operator_checks_total{cluster="b",namespace="ns1"} 3.0
tikv_operator_checks_total{cluster="a",namespace="other"} 9.0
tikv_operator_checks_created{cluster="a",namespace="ns1"} 1.7e+09
# TYPE tikv_operator_leader gauge
tikv_operator_leader 1.0
"""


def test_the_first_scrape_is_a_baseline_and_each_increase_is_a_check():
    times = CheckTimes()
    times.update({"a": 4, "b": 3}, at=10.0)
    assert times.last("a") is None
    times.update({"a": 4, "b": 3}, at=10.1)
    times.update({"a": 5, "b": 3}, at=10.2)
    times.update({"a": 5, "b": 4}, at=11.0)
    times.update({"a": 6, "b": 4}, at=12.2)
    assert times.last("a") == 12.2
    assert times.last("b") == 11.0
    assert times.steady_gaps() == [pytest.approx(2.0)]
    assert times.before(11.0) == 2


def test_a_series_that_appears_or_comes_back_is_a_check_and_one_that_goes_is_not():
    standby = CheckTimes()
    standby.update({}, at=0.0)  # a standby has no per-cluster series
    standby.update({"a": 1}, at=5.0)  # it leads: its first check
    assert standby.first_after("a", 1.0) == 5.0
    standby.update({}, at=6.0)  # it stopped leading: the series is forgotten
    assert standby.last("a") == 5.0
    standby.update({"a": 1}, at=9.0)  # a new term starts again from 1
    assert standby.last("a") == 9.0
    assert standby.first_after("a", 5.0) == 9.0


def test_outage_is_the_old_leaders_last_check_to_the_new_leaders_first():
    old, new = CheckTimes(), CheckTimes()
    old.update({"a": 1, "b": 1}, at=0.0)
    new.update({}, at=0.0)
    old.update({"a": 2, "b": 1}, at=1.0)
    old.update({"a": 2, "b": 2}, at=2.5)
    new.update({"a": 1, "b": 1}, at=18.0)
    got = outages(old, new, signalled=3.0, clusters=["a", "b", "c"])
    assert got == {"a": pytest.approx(17.0), "b": pytest.approx(15.5)}  # c: never seen, left out


def test_a_check_by_the_standby_before_the_signal_is_not_its_first_after_it():
    old, new = CheckTimes(), CheckTimes()
    old.update({"a": 1}, at=0.0)
    new.update({}, at=0.0)
    old.update({"a": 2}, at=1.0)
    new.update({"a": 1}, at=2.0)
    assert outages(old, new, signalled=3.0, clusters=["a"]) == {}


def test_checks_missed_is_intervals_beyond_the_first():
    assert missed_checks(2.0, 2.0) == 0
    assert missed_checks(17.0, 2.0) == pytest.approx(7.5)
    assert missed_checks(1.0, 2.0) == pytest.approx(-0.5)  # the new leader checked sooner than the next was due


def test_metrics_of_one_namespace_by_cluster():
    assert checks_by_cluster(METRICS, "ns1") == {"a": 4.0, "b": 3.0}
    assert gauge(METRICS, "tikv_operator_leader") == 1.0
    assert gauge("", "tikv_operator_leader") == 0

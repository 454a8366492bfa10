"""PD's members, each scraped on its own: etcd's leader gauge on all of them, the cluster gauges live on
the leader and stale (as last set) on a member that stepped down."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.unit.sim.conftest import TIMING
from tests.unit.sim.promql import Series, scrape
from tikv_sim.clock import ManualClock
from tikv_sim.cluster_model import InstanceLabel
from tikv_sim.embedded import SimulatorThread
from tikv_sim.simulator import SimConfig

MISS = (("type", "miss-peer-region-count"),)
DOWN_PEER = (("type", "down-peer-region-count"),)
DISCONNECTED = (("type", "store_disconnected_count"),)


def _members(sim: SimulatorThread) -> list[dict[str, Any]]:
    return list(sim.summary()["clusters"][0]["pd_members"])


def _scrape_members(sim: SimulatorThread) -> list[Series]:
    return [scrape(member["metrics_url"]) for member in _members(sim)]


def _families(series: Series) -> set[str]:
    return {name for name, _ in series}


def _leader_only(members: list[Series], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """sum by (type) (name * ignoring(type) group_left() (etcd_server_is_leader == 1)), in Python."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for series in members:
        if series[("etcd_server_is_leader", ())] != 1:
            continue
        for (sample, labels), value in series.items():
            if sample == name:
                out[labels] = out.get(labels, 0.0) + value
    return out


def _change_leader(sim: SimulatorThread, clock: ManualClock) -> None:
    sim.fault({"fault": "pd-leader-change", "election_seconds": 1, "not_bootstrapped_seconds": 1})
    clock.advance(2 + TIMING.heartbeat_interval)  # serving, and every store has reached the new leader


def test_every_member_has_its_own_metrics_and_only_the_leader_computes_gauges(sim: SimulatorThread) -> None:
    members = _members(sim)
    assert [(m["name"], m["leader"]) for m in members] == [("pd-0", True), ("pd-1", False), ("pd-2", False)]
    urls = {m["metrics_url"] for m in members}
    assert len(urls) == 3
    assert f"{sim.pd_url}/metrics" not in urls
    leader, *followers = _scrape_members(sim)
    assert leader[("etcd_server_is_leader", ())] == 1
    assert {"pd_cluster_status", "pd_regions_status", "pd_scheduler_store_status"} <= _families(leader)
    for follower in followers:
        assert follower[("etcd_server_is_leader", ())] == 0
        assert follower[("etcd_server_leader_changes_seen_total", ())] == 0
        assert _families(follower) == {"etcd_server_is_leader", "etcd_server_leader_changes_seen_total"}


def test_the_pd_url_serves_the_leaders_view_but_is_no_target(sim: SimulatorThread, clock: ManualClock) -> None:
    assert httpx.get(f"{sim.pd_url}/metrics", timeout=5).text == httpx.get(_members(sim)[0]["metrics_url"]).text
    _change_leader(sim, clock)
    assert httpx.get(f"{sim.pd_url}/metrics", timeout=5).text == httpx.get(_members(sim)[1]["metrics_url"]).text
    addresses = {address for group in sim.call(sim.simulator.target_groups) for address in group["targets"]}
    assert sim.pd_url.removeprefix("http://") not in addresses
    assert {m["metrics_url"].removeprefix("http://").removesuffix("/metrics") for m in _members(sim)} <= addresses


def test_a_member_that_stepped_down_keeps_its_gauges(sim: SimulatorThread, clock: ManualClock) -> None:
    sim.fault({"fault": "regions", "miss-peer": 150})
    sim.fault({"fault": "pd-leader-change", "election_seconds": 1, "not_bootstrapped_seconds": 1})
    during = _scrape_members(sim)
    assert [m[("etcd_server_is_leader", ())] for m in during] == [0, 0, 0]  # nobody leads in an election
    assert during[0][("pd_regions_status", MISS)] == 150  # the old leader's gauges stay
    assert "pd_regions_status" not in _families(during[1])  # the new one computes none before it serves
    assert _leader_only(during, "pd_regions_status") == {}

    clock.advance(2 + TIMING.heartbeat_interval)
    sim.fault({"fault": "regions", "miss-peer": 3, "down-peer": 2})
    sim.fault({"fault": "stop-store", "store": 1})
    clock.advance(TIMING.disconnect_after + 1)
    old, new, never = _scrape_members(sim)
    assert [m[("etcd_server_is_leader", ())] for m in (old, new, never)] == [0, 1, 0]
    assert [m[("etcd_server_leader_changes_seen_total", ())] for m in (old, new, never)] == [1, 1, 1]
    assert (new[("pd_regions_status", MISS)], new[("pd_regions_status", DOWN_PEER)]) == (3, 2)
    assert new[("pd_cluster_status", DISCONNECTED)] == 1
    assert (old[("pd_regions_status", MISS)], old[("pd_regions_status", DOWN_PEER)]) == (150, 0)  # stale
    assert old[("pd_cluster_status", DISCONNECTED)] == 0  # stale: store 1 was up when pd-0 stepped down
    assert ("pd_scheduler_store_status", (("address", "127.0.0.1:20160"), ("store", "1"),
                                          ("type", "leader_count"))) in old  # fmt: skip
    assert _families(never) == {"etcd_server_is_leader", "etcd_server_leader_changes_seen_total"}
    assert _leader_only([old, new, never], "pd_regions_status")[MISS] == 3
    assert [m["leader"] for m in _members(sim)] == [False, True, False]

    _change_leader(sim, clock)  # pd-2
    _change_leader(sim, clock)  # pd-0 again: live values replace its stale ones
    old, new, last = _scrape_members(sim)
    assert old[("pd_regions_status", MISS)] == 3
    assert old[("pd_cluster_status", DISCONNECTED)] == 1
    assert new[("pd_regions_status", MISS)] == 3  # what pd-1 set while it led
    assert last[("pd_regions_status", MISS)] == 3
    assert old[("etcd_server_leader_changes_seen_total", ())] == 3


def test_regions_on_followers_only_changes_their_stale_gauges(
    sim: SimulatorThread, clock: ManualClock, pd: httpx.Client
) -> None:
    sim.fault({"fault": "regions", "miss-peer": 500, "pending-peer": 7, "member": "followers"})
    leader, first, second = _scrape_members(sim)
    assert leader[("pd_regions_status", MISS)] == 0
    for follower in (first, second):
        assert follower[("pd_regions_status", MISS)] == 500
        assert follower[("pd_regions_status", (("type", "pending-peer-region-count"),))] == 7
        assert follower[("pd_regions_status", DOWN_PEER)] == 0  # the others as the leader has them
        assert "pd_cluster_status" not in _families(follower)
    assert pd.get("/regions/check/miss-peer").json()["count"] == 0  # PD's answers are the leader's
    assert _leader_only([leader, first, second], "pd_regions_status")[MISS] == 0
    assert sim.summary()["clusters"][0]["region_problems"]["miss-peer"] == 0

    # A follower with gauges of its own: only pd_regions_status changes, and only the counts named.
    sim.fault({"fault": "regions", "down-peer": 4, "member": "leader"})
    _change_leader(sim, clock)
    sim.fault({"fault": "regions", "miss-peer": 9, "member": "followers"})
    old, new, never = _scrape_members(sim)
    assert (old[("pd_regions_status", MISS)], old[("pd_regions_status", DOWN_PEER)]) == (9, 4)
    assert old[("pd_cluster_status", DISCONNECTED)] == 0
    assert (never[("pd_regions_status", MISS)], never[("pd_regions_status", DOWN_PEER)]) == (9, 0)
    assert (new[("pd_regions_status", MISS)], new[("pd_regions_status", DOWN_PEER)]) == (0, 4)
    assert _leader_only([old, new, never], "pd_regions_status")[MISS] == 0


def test_an_unreachable_pd_takes_every_members_metrics_with_it(sim: SimulatorThread) -> None:
    urls = [m["metrics_url"] for m in _members(sim)]
    with httpx.Client(timeout=2) as kept_alive:
        assert kept_alive.get(urls[1]).status_code == 200
        sim.fault({"fault": "pd", "mode": "unreachable"})
        for url in urls:
            with pytest.raises(httpx.ConnectError):
                httpx.get(url, timeout=2)
        with pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
            kept_alive.get(urls[1])
    sim.fault({"fault": "pd", "mode": "ok"})
    assert [m["metrics_url"] for m in _members(sim)] == urls  # back on the same ports
    assert all(httpx.get(url, timeout=2).status_code == 200 for url in urls)


def test_other_pd_faults_leave_member_metrics_alone(sim: SimulatorThread) -> None:
    sim.fault({"fault": "pd", "mode": "500"})
    leader = scrape(_members(sim)[0]["metrics_url"])
    assert leader[("pd_regions_status", MISS)] == 0


def test_a_leader_that_stops_serving_keeps_its_current_gauges(sim: SimulatorThread, clock: ManualClock) -> None:
    # pd-0 steps down with no miss-peer, leads again, and sees 7: its current term's numbers are 7.
    for _ in range(3):
        _change_leader(sim, clock)
    sim.fault({"fault": "regions", "miss-peer": 7})
    assert scrape(_members(sim)[0]["metrics_url"])[("pd_regions_status", MISS)] == 7

    sim.fault({"fault": "pd", "mode": "not-bootstrapped"})
    leader = scrape(_members(sim)[0]["metrics_url"])
    assert leader[("etcd_server_is_leader", ())] == 1
    assert leader[("pd_regions_status", MISS)] == 7  # what it set last, not its previous term's 0
    sim.fault({"fault": "regions", "miss-peer": 2})
    assert scrape(_members(sim)[0]["metrics_url"])[("pd_regions_status", MISS)] == 7  # it computes nothing now

    sim.fault({"fault": "pd", "mode": "ok"})
    assert scrape(_members(sim)[0]["metrics_url"])[("pd_regions_status", MISS)] == 2  # live again


@pytest.fixture
def pod_label() -> Iterator[SimulatorThread]:
    config = SimConfig(stores=1, instance_label=InstanceLabel.POD_LABEL, control_port=None, grpc_series="lean",
                       timing=TIMING)  # fmt: skip
    with SimulatorThread(config) as running:
        yield running


def test_member_targets_under_kube_prometheus(pod_label: SimulatorThread) -> None:
    sim = pod_label
    groups = sim.call(sim.simulator.target_groups)
    members = [g for g in groups if g["labels"]["__meta_kubernetes_pod_container_name"] == "pd"]
    assert [g["labels"]["__meta_kubernetes_pod_name"] for g in members] == ["basic-pd-0", "basic-pd-1", "basic-pd-2"]
    assert [g["targets"][0] for g in members] == [
        m["metrics_url"].removeprefix("http://").removesuffix("/metrics") for m in _members(sim)
    ]
    assert [m["name"] for m in _members(sim)] == ["basic-pd-0", "basic-pd-1", "basic-pd-2"]
    sim.fault({"fault": "pd", "mode": "unreachable"})
    assert sim.call(sim.simulator.target_groups) == groups  # closed members stay targets (scrapes fail)

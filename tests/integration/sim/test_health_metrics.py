"""Raft health metrics and several PD members, as the real Prometheus scrapes and computes them."""

import math
from collections.abc import Callable
from typing import Any

import pytest
from harness.prometheus import Prometheus, ScrapeTargets, until_shown

from tikv_sim.embedded import SimulatorThread
from tikv_sim.file_sd import write_atomically
from tikv_sim.simulator import SimConfig

pytestmark = pytest.mark.integration

QUERY_TIMEOUT_S = 60.0


def _eventually(read: Callable[[], Any], ready: Callable[[Any], bool], what: str) -> Any:
    return until_shown(read, ready, what, QUERY_TIMEOUT_S)


def _by(label: str, result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def _numbers(values: dict[str, float], keys: set[str]) -> bool:
    return keys <= set(values) and not any(math.isnan(values[key]) for key in keys)


def test_raft_p99s_critical_errors_and_the_pd_leader_gate(prometheus: Prometheus, prom_targets: ScrapeTargets) -> None:
    test_id = prom_targets.labels["test_id"]
    config = SimConfig(stores=2, control_port=None, extra_labels=prom_targets.labels, grpc_series="lean")
    with SimulatorThread(config) as sim:
        # Before the first scrape, so that every rate window holds only these distributions.
        sim.fault({"fault": "raft-log-lag", "store": 1, "entries": 6000})
        sim.fault({"fault": "raft-append", "store": 2, "p99_ms": 1500})
        # pd-0 leads with 120 missing peers, steps down keeping them; pd-1 leads with 3; the followers'
        # stale gauges are then set to 999.
        sim.fault({"fault": "regions", "miss-peer": 120})
        sim.fault({"fault": "pd-leader-change", "election_seconds": 0, "not_bootstrapped_seconds": 0})
        sim.fault({"fault": "regions", "miss-peer": 3})
        sim.fault({"fault": "regions", "miss-peer": 999, "member": "followers"})
        groups = sim.call(sim.simulator.target_groups)
        write_atomically(prom_targets.path, groups)
        prometheus.wait_for_targets({g["labels"]["instance"] for g in groups}, timeout=30)
        stores = sim.summary()["clusters"][0]["stores"]
        lagging, slow = stores[0]["instance"], stores[1]["instance"]
        selector = f'{{test_id="{test_id}"}}'

        def p99(name: str) -> dict[str, float]:
            expr = f"histogram_quantile(0.99, sum by (instance, le) (rate({name}_bucket{selector}[1m])))"
            return _by("instance", prometheus.query(expr))

        lag = _eventually(lambda: p99("tikv_raftstore_log_lag"), lambda v: _numbers(v, {lagging, slow}), "log lag")
        assert lag[lagging] == pytest.approx(6000, rel=0.05)
        assert lag[slow] == pytest.approx(10, rel=0.05)
        append = _eventually(lambda: p99("tikv_raftstore_append_log_duration_seconds"),
                             lambda v: _numbers(v, {lagging, slow}), "append p99")  # fmt: skip
        assert append[slow] == pytest.approx(1.5, rel=0.05)
        assert append[lagging] == pytest.approx(0.005, rel=0.05)
        apply = _eventually(lambda: p99("tikv_raftstore_apply_log_duration_seconds"),
                            lambda v: _numbers(v, {lagging, slow}), "apply p99")  # fmt: skip
        assert apply[slow] == pytest.approx(0.005, rel=0.05)

        errors = f"tikv_critical_error_total{selector}"
        assert prometheus.query(errors) == []  # no child before the first error
        sim.fault({"fault": "critical-error", "store": 2, "count": 2})
        seen = _eventually(lambda: prometheus.query(errors), lambda v: len(v) == 1, "tikv_critical_error_total")
        assert seen[0]["metric"]["instance"] == slow
        assert (seen[0]["metric"]["type"], seen[0]["value"][1]) == ("sst_corruption", "2")

        leaders = _eventually(lambda: _by("instance", prometheus.query(f"etcd_server_is_leader{selector}")),
                              lambda v: len(v) == 3, "three PD members")  # fmt: skip
        pd_1 = sim.summary()["clusters"][0]["pd_members"][1]["metrics_url"].split("/")[2]
        assert leaders == {instance: float(instance == pd_1) for instance in leaders}
        gated = (f"sum by (type) (pd_regions_status{selector} * ignoring(type) group_left() "
                 f"(etcd_server_is_leader{selector} == 1))")  # fmt: skip
        miss = "miss-peer-region-count"
        leader_only = _eventually(lambda: _by("type", prometheus.query(gated)), lambda v: miss in v, "gated gauges")
        assert leader_only[miss] == 3
        assert leader_only["down-peer-region-count"] == 0
        every = _by("type", prometheus.query(f"sum by (type) (pd_regions_status{selector})"))
        assert every[miss] == 3 + 999 + 999  # what an ungated query would add up

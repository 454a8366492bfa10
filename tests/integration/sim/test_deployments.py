"""Deployment conventions and the realistic gRPC histogram, as the real Prometheus stores and computes them."""

import math
from collections.abc import Callable
from typing import Any

import pytest
from harness.prometheus import Prometheus, ScrapeTargets, until_shown

from tikv_sim.cluster_model import InstanceLabel
from tikv_sim.embedded import SimulatorThread
from tikv_sim.file_sd import write_atomically
from tikv_sim.simulator import SimConfig

pytestmark = pytest.mark.integration

QUERY_TIMEOUT_S = 60.0
GRPC = "tikv_grpc_msg_duration_seconds_bucket"


def _eventually(read: Callable[[], Any], ready: Callable[[Any], bool], what: str) -> Any:
    return until_shown(read, ready, what, QUERY_TIMEOUT_S)


def _number(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _labels(result: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [r["metric"] for r in result]


def test_pod_label_convention_as_prometheus_operator_relabels_it(
    prometheus: Prometheus, kube_targets: ScrapeTargets
) -> None:
    test_id = kube_targets.labels["test_id"]
    config = SimConfig(stores=2, tiflash=1, namespace="prod", instance_label=InstanceLabel.POD_LABEL,
                       file_sd=kube_targets.path, extra_labels=kube_targets.labels, grpc_series="lean",
                       control_port=None)  # fmt: skip
    with SimulatorThread(config) as sim:
        expr = f'tikv_store_size_bytes{{test_id="{test_id}",type="capacity"}}'
        series = _eventually(lambda: _labels(prometheus.query(expr)), lambda v: len(v) == 2, "two TiKV pods")
        by_pod = {s["pod"]: s for s in series}
        first = by_pod["basic-tikv-0"]
        instance = sim.summary()["clusters"][0]["stores"][0]["instance"]
        assert first["instance"] == instance  # __address__: podIP:port, 127.0.0.1:port here
        assert instance.startswith("127.0.0.1:")
        assert (first["namespace"], first["container"], first["service"], first["endpoint"], first["job"]) == (
            "prod",
            "tikv",
            "basic-tikv-peer",
            "status",
            "basic-tikv-peer",
        )
        assert [key for key in first if key.startswith("__")] == ["__name__"]  # no __meta_* left after relabelling

        pd = _eventually(lambda: _labels(prometheus.query(f'etcd_server_is_leader{{test_id="{test_id}"}}')),
                         lambda v: len(v) == 3, "three PD members")  # fmt: skip
        members = sorted((m["pod"], m["container"], m["job"]) for m in pd)
        assert members == [(f"basic-pd-{i}", "pd", "basic-pd") for i in range(3)]

        tiflash = f'{{test_id="{test_id}",pod="basic-tiflash-0"}}'
        names = _eventually(
            lambda: {r["metric"]["__name__"] for r in prometheus.query(f'{{__name__=~".+",{tiflash[1:]}')},
            lambda v: "tiflash_proxy_tikv_store_size_bytes" in v,
            "TiFlash's proxy metrics",
        )
        assert not any(name.startswith("tikv_") for name in names)

        sim.fault({"fault": "restart-store", "store": 1, "downtime": 0.5})
        moved = _eventually(
            lambda: {s["instance"] for s in _labels(prometheus.query(f'{expr[:-1]},pod="basic-tikv-0"}}'))},
            lambda v: len(v) == 1 and instance not in v,
            "the restarted pod under a new instance",
        )
        assert moved == {sim.summary()["clusters"][0]["stores"][0]["instance"]}


def test_per_type_p99_and_the_old_mixed_query_under_lock_waits(
    prometheus: Prometheus, prom_targets: ScrapeTargets
) -> None:
    test_id = prom_targets.labels["test_id"]
    config = SimConfig(stores=2, p99_ms=10, extra_labels=prom_targets.labels, grpc_series="lean",
                       control_port=None)  # fmt: skip
    with SimulatorThread(config) as sim:
        # Before the first scrape, so that every rate window holds only these distributions.
        sim.fault({"fault": "latency", "store": 1, "type": "kv_pessimistic_lock", "p99_ms": 2000})
        sim.fault({"fault": "latency", "store": 1, "type": "kv_commit", "p99_ms": 40})
        write_atomically(prom_targets.path, sim.call(sim.simulator.target_groups))
        stores = sim.summary()["clusters"][0]["stores"]
        lock_store, healthy = stores[0]["instance"], stores[1]["instance"]

        per_type = (f"histogram_quantile(0.99, sum by (instance, type, le) "
                    f'(rate({GRPC}{{test_id="{test_id}"}}[1m])))')  # fmt: skip
        old = (f"histogram_quantile(0.99, sum by (instance, le) "
               f'(rate({GRPC}{{test_id="{test_id}",type!="kv_gc"}}[1m])))')  # fmt: skip

        def p99s() -> dict[tuple[str, str], float]:
            return {(r["metric"]["instance"], r["metric"].get("type", "")): float(r["value"][1])
                    for r in prometheus.query(per_type)}  # fmt: skip

        wanted = [(lock_store, "kv_get"), (lock_store, "kv_pessimistic_lock"), (healthy, "coprocessor_stream")]
        values = _eventually(p99s, lambda v: all(_number(v.get(key)) for key in wanted), "per-type p99s")
        assert values[(lock_store, "kv_pessimistic_lock")] == pytest.approx(2.0, abs=0.01 * 1.6384)
        assert values[(lock_store, "kv_commit")] == pytest.approx(0.040, abs=0.01 * 0.0256)
        for name in ("kv_get", "kv_prewrite", "coprocessor", "kv_batch_get"):
            assert values[(lock_store, name)] == pytest.approx(0.010, abs=0.01 * 0.0064), name
            assert values[(healthy, name)] == pytest.approx(0.010, abs=0.01 * 0.0064), name
        assert 1.0 < values[(healthy, "coprocessor_stream")] < 5.0
        assert math.isnan(values.get((healthy, "unsafe_destroy_range"), math.nan))  # no traffic at all

        mixed = _eventually(
            lambda: {r["metric"]["instance"]: float(r["value"][1]) for r in prometheus.query(old)},
            lambda v: _number(v.get(lock_store)) and _number(v.get(healthy)),
            "the mixed p99",
        )
        assert mixed[lock_store] > 0.5  # lock waits decide a mixed p99: far above the 100 ms threshold
        assert mixed[healthy] == pytest.approx(0.010, abs=0.02 * 0.0064)  # a 0.2 % stream does not


def test_full_series_count_and_two_namespaces_with_the_same_pods(
    prometheus: Prometheus, prom_targets: ScrapeTargets
) -> None:
    test_id = prom_targets.labels["test_id"]
    config = SimConfig(stores=1, namespaces=("alpha", "beta"), instance_label=InstanceLabel.POD_NAME,
                       extra_labels=prom_targets.labels, control_port=None)  # fmt: skip
    with SimulatorThread(config) as sim:
        sim.fault({"fault": "disk", "store": 1, "percent": 80, "cluster": "beta/basic"})
        write_atomically(prom_targets.path, sim.call(sim.simulator.target_groups))
        count = f'count({GRPC}{{test_id="{test_id}"}})'
        total = _eventually(lambda: prometheus.query(count), lambda v: bool(v) and v[0]["value"][1] == "9200",
                            "every bucket series of both stores")  # fmt: skip
        assert total[0]["value"][1] == str(2 * 50 * 4 * 23)
        expr = f'tikv_store_size_bytes{{test_id="{test_id}",type="available",instance="basic-tikv-0"}}'
        series = _eventually(lambda: prometheus.query(expr), lambda v: len(v) == 2, "both basic-tikv-0")
    by_namespace = {r["metric"]["kubernetes_namespace"]: float(r["value"][1]) for r in series}
    assert by_namespace == {"alpha": pytest.approx(70 * 1024**3), "beta": pytest.approx(20 * 1024**3)}
    assert {r["metric"]["tidb_cluster"] for r in series} == {"alpha-basic", "beta-basic"}
    assert {r["metric"]["cluster"] for r in series} == {"basic"}

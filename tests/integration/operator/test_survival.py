"""The operator survives PD answering 500, hanging or returning malformed JSON, Prometheus down, and a
TiKVCluster pointing at closed ports, while it keeps checking the other clusters."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.kube import Cli, eventually
from harness.operator_process import (
    OperatorProcess,
    SimulatedCluster,
    open_tickets,
    start_simulated_cluster,
    wait_for_phase,
    wait_for_ticket,
)
from harness.prometheus import Prometheus, ScrapeTargets

CLOSED = "http://127.0.0.1:9"


def test_a_broken_and_a_misbehaving_cluster_do_not_stop_checks_of_a_healthy_one(
    kubectl: Cli, operator: OperatorProcess, prometheus: Prometheus, prom_targets: ScrapeTargets,
    make_cluster: Callable[..., Any],
) -> None:
    sims: SimulatedCluster = start_simulated_cluster(prometheus, prom_targets, clusters=2)
    try:
        good_name, flaky_name = (c["name"] for c in sims.sim.summary()["clusters"])
        good_pd, flaky_pd = sims.sim.simulator.pd_url(good_name), sims.sim.simulator.pd_url(flaky_name)
        make_cluster(good_pd, name="good")
        make_cluster(flaky_pd, name="flaky", invariants={"pd_unreachable": {"gracePeriod": "3s"}})
        kubectl.apply({
            "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": "broken"},
            "spec": {"pd": {"url": CLOSED, "timeout": "1s"}, "prometheus": {"url": CLOSED, "timeout": "1s"},
                     "invariants": {"pd_unreachable": {"gracePeriod": "1s"},
                                    "prometheus_unreachable": {"gracePeriod": "1s"}}},
        })
        eventually(lambda: {t["spec"]["invariant"] for t in open_tickets(kubectl)
                            if t["spec"]["cluster"] == "broken"} == {"pd_unreachable", "prometheus_unreachable"},
                   what="both unreachable tickets of the broken cluster")
        broken = kubectl.json("get", "tkc", "broken")["status"]
        assert broken["health"] == "Degraded"
        assert broken["message"].startswith("PD does not answer: ")
        assert "Prometheus does not answer" in broken["message"]

        for mode in ("500", "hang", "malformed", "wrong-shape"):
            sims.sim.fault({"fault": "pd", "mode": mode, "cluster": flaky_name})
            # The good cluster is still checked while the flaky PD misbehaves.
            store = {"500": 1, "hang": 2, "malformed": 3, "wrong-shape": 1}[mode]
            sims.sim.fault({"fault": "stop-store", "store": store, "cluster": good_name})
            name = wait_for_ticket_of(kubectl, "good", store)
            sims.sim.fault({"fault": "start-store", "store": store, "cluster": good_name})
            wait_for_phase(kubectl, name, "Resolved")
        flaky_ticket = wait_for_ticket(kubectl, "pd_unreachable", timeout=30)
        assert flaky_ticket["spec"]["cluster"] in {"flaky", "broken"}
        assert operator.healthy()
        time.sleep(1)
        metrics = operator.metrics()
        assert 'tikv_operator_probe_errors_total{target="pd"}' in metrics
        assert "Traceback" not in operator.log()
    finally:
        sims.sim.__exit__(None, None, None)


def wait_for_ticket_of(kubectl: Cli, cluster: str, store: int) -> str:
    found = eventually(lambda: [t for t in open_tickets(kubectl, "store_down", str(store))
                                if t["spec"]["cluster"] == cluster], timeout=30,
                       what=f"a store_down ticket of {cluster} store {store}")
    return str(found[0]["metadata"]["name"])


def test_a_spec_the_operator_cannot_use_is_said_on_the_cluster_and_checks_resume_once_fixed(
    kubectl: Cli, operator: OperatorProcess,
) -> None:
    # The CRD cannot check map keys (no CEL on Kubernetes 1.20), so the API server stores this one.
    kubectl.apply({
        "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": "typo"},
        "spec": {"pd": {"url": CLOSED, "timeout": "1s"},
                 "prometheus": {"url": CLOSED, "timeout": "1s", "labelMatchers": {"tidb-cluster": "basic"}}},
    })
    status = eventually(lambda: kubectl.json("get", "tkc", "typo").get("status", {}).get("conditions") and
                        kubectl.json("get", "tkc", "typo")["status"], what="a status on the rejected cluster")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.prometheus.labelMatchers" in ready["message"]
    assert "tidb-cluster" in ready["message"]
    assert status["health"] == "Unknown"
    assert status["message"].startswith("spec rejected: spec.prometheus.labelMatchers")
    assert kubectl("get", "tkc", "typo").stdout.splitlines()[1].split()[1] == "Unknown"

    kubectl("patch", "tkc", "typo", "--type=json", "-p",
            '[{"op": "replace", "path": "/spec/prometheus/labelMatchers", "value": {"tidb_cluster": "basic"}}]')
    eventually(lambda: not kubectl.json("get", "tkc", "typo")["status"]["message"].startswith("spec rejected"),
               timeout=30, what="checks of the fixed cluster")
    assert "Traceback" not in operator.log()

"""The kube-apiserver stops answering for 30 s (SIGSTOP: connections stay open, nothing answers, the way a
wedged control plane or a half-open connection looks) and then continues. Checks resume, no ticket is
duplicated, the violation that began during the outage is ticketed, and a person's resolve made just
before the outage is recorded. /healthz fails while checks are stuck past their budget, and recovers."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.kube import Cli, eventually
from harness.operator_process import (
    SimulatedCluster,
    event_reasons,
    open_tickets,
    ticket,
    tickets,
    wait_for_phase,
    wait_for_ticket,
)
from harness.platform import PlatformInfo

from tests.integration.operator.conftest import StartOperator
from tikv_operator.model.timestamps import from_rfc3339

OUTAGE_S = 30


def apiserver_pid(platform: PlatformInfo) -> int:
    state = json.loads((platform.directory / "state.json").read_text())
    return int(next(p["pid"] for p in state["procs"] if p["name"] == "kube-apiserver"))


@contextmanager
def apiserver_stopped(platform: PlatformInfo) -> Iterator[None]:
    pid = apiserver_pid(platform)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)  # whatever happens in the test, the platform lives on


def test_checks_resume_after_the_api_server_stops_for_30s_and_nothing_is_lost_or_doubled(
    kubectl: Cli, platform: PlatformInfo, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any],
) -> None:
    # A short stall timeout, so that checks stuck on the frozen API server show on /healthz in this test.
    operator = start_operator(extra_args=("--stall-timeout", "3s"))
    # refreshInterval 1s: every check writes its status, so checks do wait on the API server.
    make_cluster(tikv.pd_url, tickets={"refreshInterval": "1s"})
    tikv.fault(kind="stop-store", store=1)
    first = wait_for_ticket(kubectl, "store_down", "1")["metadata"]["name"]
    kubectl("patch", "operatorticket", first, "--type", "merge", "-p", '{"spec":{"held":true}}')
    eventually(lambda: "TicketHeld" in event_reasons(kubectl, "OperatorTicket", first), what="the hold recorded")
    tikv.fault(kind="start-store", store=1)
    # The person resolves by hand (a manual resolve wins over the hold) and the API server freezes at once.
    kubectl("patch", "operatorticket", first, "--subresource=status", "--type", "merge",
            "-p", '{"status":{"phase":"Resolved"}}')
    with apiserver_stopped(platform):
        tikv.fault(kind="stop-store", store=2)  # a violation that begins during the outage
        stalled = False
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:
            stalled = stalled or not operator.healthy()
            time.sleep(1)
    continued = datetime.now(UTC)
    assert stalled, "/healthz stayed 200 while checks were stuck on the frozen API server"

    # Checks resume.
    eventually(lambda: (from_rfc3339(kubectl.json("get", "tkc", "basic")["status"]["lastCheckTime"])
                        or continued) > continued + timedelta(seconds=1),
               timeout=60, what="a check after the API server continued")
    eventually(operator.healthy, timeout=30, what="/healthz 200 again")
    # The resolve made just before the outage is recorded: hold cleared, labels in step, one Event.
    resolved = eventually(lambda: (t := ticket(kubectl, first))["metadata"]["labels"]["tikvops.io/phase"]
                          == "resolved" and t, timeout=30, what=f"{first} recorded as resolved")
    assert resolved["status"]["resolution"] == "manual"
    assert resolved["spec"]["held"] is False
    assert resolved["metadata"]["labels"]["tikvops.io/held"] == "false"
    assert resolved["metadata"]["annotations"]["tikvops.io/recorded"] == "Resolved/unheld"
    assert event_reasons(kubectl, "OperatorTicket", first).count("TicketResolvedManually") == 1
    # The violation of the outage is ticketed once; store 1, back up and resolved, is not ticketed again.
    second = wait_for_ticket(kubectl, "store_down", "2", timeout=30)["metadata"]["name"]
    tikv.fault(kind="start-store", store=2)
    wait_for_phase(kubectl, second, "Resolved", timeout=30)
    names = sorted(t["metadata"]["name"] for t in tickets(kubectl))
    assert names == sorted([first, second]), names
    assert open_tickets(kubectl) == []
    assert "Traceback" not in operator.log()

"""An Alertmanager restarted without its storage has forgotten every silence: the operator makes the silence of
an Acknowledged ticket again, and records the new one."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from harness.kube import Cli, eventually
from harness.operator_process import OperatorProcess, SimulatedCluster, ticket, wait_for_ticket

from tests.support.alertmanager import PrivateAlertmanager


def test_an_acknowledged_tickets_silence_is_made_again_after_alertmanager_lost_its_storage(
    kubectl: Cli, start_operator: Callable[..., OperatorProcess], tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], private_alertmanager: PrivateAlertmanager,
) -> None:
    am = private_alertmanager.client
    start_operator(extra_args=("--alert-resend-interval", "2s"))
    make_cluster(tikv.pd_url, alertmanager={"urls": [am.url]})
    tikv.fault(kind="stop-store", store=2)
    name = wait_for_ticket(kubectl, "store_down", "2")["metadata"]["name"]
    kubectl("patch", "operatorticket", name, "--subresource=status", "--type=merge",
            "-p", '{"status":{"phase":"Acknowledged"}}')
    first = eventually(lambda: (ticket(kubectl, name)["status"].get("silences") or {}).get(am.url), timeout=30,
                       what="the silence id in the ticket's status")

    private_alertmanager.stop()
    shutil.rmtree(private_alertmanager.home / "data", ignore_errors=True)  # restarted without storage
    private_alertmanager.start()
    assert not [s for s in am.silences(ticket=name) if s["status"]["state"] == "active"], "forgotten"

    def active() -> list[dict[str, Any]]:
        return [s for s in am.silences(ticket=name) if s["status"]["state"] == "active"]

    (again,) = eventually(active, timeout=40, what="the ticket's silence made again")
    assert again["id"] != first
    eventually(lambda: (ticket(kubectl, name)["status"].get("silences") or {}).get(am.url) == again["id"],
               timeout=20, what="the new silence id recorded in the ticket's status")
    assert ticket(kubectl, name)["status"]["phase"] == "Acknowledged"

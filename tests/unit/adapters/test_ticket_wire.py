"""The JSON the API server receives for every kind of ticket write, pinned byte for byte.

Each case plans one kind of operation (the lifecycle, an edit being recorded, a `tickets` command) and
carries it out through KubeWriter on a fake API; the requests sent are compared with ticket_wire.json as
JSON values: every key, value and null (a merge patch's delete) must be the same; the order of an object's
keys means nothing to the API server and may change. Regenerate the file only for an intended change of the
wire form: TIKV_WRITE_WIRE=1 pytest tests/unit/adapters/test_ticket_wire.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.unit.adapters.fake_kube import FakeCore, FakeObjects
from tikv_operator.checks.core.findings import Finding, Verdict
from tikv_operator.checks.core.settings import configure
from tikv_operator.cli.tickets_output import Ticket, plan_ack, plan_hold, plan_resolve, plan_unhold
from tikv_operator.kube.writer import KubeWriter
from tikv_operator.model.cluster_resource import TiKVClusterSpec
from tikv_operator.tickets.core.lifecycle import LifecyclePolicy, Operation, plan_check, react_to_edit
from tikv_operator.tickets.core.ticket import TicketView

GOLDEN = Path(__file__).with_name("ticket_wire.json")
T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
SPEC = TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://prom:9090"},
                                       "flapping": {"count": 2}})
CONFIGS = configure(SPEC)
POLICY = LifecyclePolicy.from_spec(SPEC)
CLUSTER = {"apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster",
           "metadata": {"name": "basic", "namespace": "ns", "uid": "u-1"}}
NAME = "basic-store-down-s4-1"
EVIDENCE = {"state_name": "Down", "value": 0.5, "count": 3, "queries": ["up{job=\"tikv\"}"], "nested": {"a": [1, 2]},
            "none": None, "empty": ""}


def finding(verdict: Verdict, severity: str = "critical", message: str = "store 4 is Down") -> Finding:
    return Finding("store_down", "4", verdict, severity, message, EVIDENCE,  # type: ignore[arg-type]
                   grace_period=timedelta(0))


def stored(phase: str | None = "Open", held: bool = False, recorded: str | None = "Open/unheld",
           labels: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    """The ticket as the API server holds it."""
    annotations = {"tikvops.io/recorded": recorded} if recorded else {}
    obj: dict[str, Any] = {
        "apiVersion": "tikvops.io/v1alpha1", "kind": "OperatorTicket",
        "metadata": {"name": NAME, "namespace": "ns", "creationTimestamp": "2026-11-25T02:00:00Z",
                     "labels": labels if labels is not None else {
                         "tikvops.io/phase": (phase or "open").lower(), "tikvops.io/held": str(held).lower()},
                     "annotations": annotations},
        "spec": {"cluster": "basic", "invariant": "store_down", "store": "4", "held": held},
    }
    if phase is not None:
        obj["status"] = {"phase": phase, "severity": "warning", "message": "store 4 is Disconnected",
                         "firstSeen": "2026-11-25T02:00:00Z", "lastSeen": "2026-11-25T02:30:00Z",
                         "occurrences": 4, **status}
    return obj


def plan(verdict: Verdict | None, obj: dict[str, Any] | None, now: datetime = T0, unwritten: int = 0,
         severity: str = "critical") -> tuple[Operation, ...]:
    tickets = [] if obj is None else [TicketView.from_resource({**obj, "metadata": {
        **obj["metadata"], "resourceVersion": "7"}})]
    findings = [] if verdict is None else [finding(verdict, severity)]
    return plan_check(cluster="basic", now=now, batch="b1", findings=findings, configs=CONFIGS, tickets=tickets,
                      pending=[], unwritten={NAME: unwritten} if unwritten else {}, policy=POLICY).operations


def sent(obj: dict[str, Any] | None, operations: tuple[Operation, ...]) -> list[Any]:
    """The requests KubeWriter makes for `operations`, and the Events it posts (reason, message, type)."""
    objects, core = FakeObjects(), FakeCore()
    if obj is not None:
        objects.put("operatortickets", obj)
        objects.store[("operatortickets", NAME)]["metadata"]["resourceVersion"] = "7"
    assert operations
    asyncio.run(KubeWriter(objects, core).apply("ns", CLUSTER, operations))  # type: ignore[arg-type]
    calls = [[verb, name, body if verb != "delete" else body.preconditions.resource_version]
             for verb, name, body in objects.calls]
    return [calls, [[e["reason"], e["message"], e["type"]] for e in core.events]]


def edit(obj: dict[str, Any], now: datetime = T0) -> tuple[Operation, ...]:
    op = react_to_edit(TicketView.from_resource({**obj, "metadata": {**obj["metadata"], "resourceVersion": "7"}}),
                       now)
    return () if op is None else (op,)


LATER = T0 + timedelta(minutes=30)
CASES: dict[str, Callable[[], list[Any]]] = {
    "create": lambda: sent(None, plan("violated", None)),
    "refresh-counters": lambda: sent(stored(severity="critical"), plan(
        "violated", stored(severity="critical"), now=LATER, unwritten=2)),
    "severity-change": lambda: sent(stored(), plan("violated", stored(), now=T0, severity="emergency")),
    "resolve": lambda: sent(stored(), plan("ok", stored(), now=LATER, unwritten=3)),
    "resolve-never-initialised": lambda: sent(stored(None), plan("ok", stored(None), now=LATER)),
    "reopen": lambda: sent(*(lambda o: (o, plan("violated", o, now=LATER)))(stored(
        "Resolved", recorded="Resolved/unheld", resolution="auto", resolvedAt="2026-11-25T03:27:00Z",
        resolutionMessage="store 4 is Up", reopenedAt=["2026-11-25T02:40:00Z"]))),
    "repair": lambda: sent(stored(None), plan("violated", stored(None), now=LATER)),
    "delete-expired": lambda: sent(*(lambda o: (o, plan(None, o, now=T0 + timedelta(days=30))))(stored(
        "Resolved", recorded="Resolved/unheld", resolution="auto", resolvedAt="2026-11-25T03:20:00Z"))),
    "edit-manual-resolve-of-held": lambda: sent(*(lambda o: (o, edit(o)))(stored(
        "Resolved", held=True, labels={"tikvops.io/phase": "open", "tikvops.io/held": "true"},
        recorded="Open/held"))),
    "edit-manual-resolve-by-cli": lambda: sent(*(lambda o: (o, edit(o)))(stored(
        "Resolved", resolution="manual", resolvedAt="2026-11-25T02:50:00Z",
        labels={"tikvops.io/phase": "resolved", "tikvops.io/held": "false"}))),
    "edit-hold": lambda: sent(*(lambda o: (o, edit(o)))(stored(
        held=True, labels={"tikvops.io/phase": "open", "tikvops.io/held": "false"}))),
    "edit-unhold": lambda: sent(*(lambda o: (o, edit(o)))(stored(recorded="Open/held"))),
    "edit-acknowledge": lambda: sent(*(lambda o: (o, edit(o)))(stored(
        "Acknowledged", labels={"tikvops.io/phase": "open", "tikvops.io/held": "false"}))),
    "edit-auto-resolve-catch-up": lambda: sent(*(lambda o: (o, edit(o)))(stored(
        "Resolved", resolution="auto", resolvedAt="2026-11-25T02:50:00Z",
        labels={"tikvops.io/phase": "resolved", "tikvops.io/held": "false"}))),
    "edit-before-the-annotation": lambda: sent(*(lambda o: (o, edit(o)))(stored(
        held=True, recorded=None, labels={"tikvops.io/phase": "open", "tikvops.io/held": "false"}))),
}

VIEW = Ticket.from_object
CLI_CASES: dict[str, Callable[[], Any]] = {
    "cli-resolve": lambda: plan_resolve(VIEW(stored(held=True)), T0 + timedelta(microseconds=999)),
    "cli-resolve-no-status": lambda: plan_resolve(VIEW(stored(None)), T0),
    "cli-hold": lambda: plan_hold(VIEW(stored("Acknowledged"))),
    "cli-unhold": lambda: plan_unhold(VIEW(stored(held=True))),
    "cli-ack": lambda: plan_ack(VIEW(stored())),
    "cli-ack-no-status": lambda: plan_ack(VIEW(stored(None, held=True))),
}


def _cli(name: str) -> list[Any]:
    outcome = CLI_CASES[name]()
    return [outcome.status_patch, outcome.object_patch]


def wire(name: str) -> str:
    return json.dumps(CASES[name]() if name in CASES else _cli(name))


def regenerate() -> None:
    """Rewrite ticket_wire.json on purpose, when a wire change is meant:
    `.venv/bin/python -c 'from tests.unit.adapters.test_ticket_wire import regenerate; regenerate()'`."""
    GOLDEN.write_text(json.dumps({name: wire(name) for name in [*CASES, *CLI_CASES]}, indent=1) + "\n")


@pytest.mark.parametrize("name", [*CASES, *CLI_CASES])
def test_the_wire_form_of_each_write_is_unchanged(name: str) -> None:
    assert json.loads(wire(name)) == json.loads(json.loads(GOLDEN.read_text())[name])


def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} in a body for the API server: JSON has no such value")


@pytest.mark.parametrize("case", ["create", "reopen"])
def test_non_finite_evidence_reaches_the_api_server_as_strict_json(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Go's decoder refuses NaN and Infinity, which json.dumps writes: the status write after a create would
    fail (400), leaving a ticket with no phase that never pages. The wire body is what kubernetes_asyncio
    sends: its sanitized body through json.dumps."""
    from kubernetes_asyncio.client import ApiClient

    hostile = {"slowScore": float("nan"), "ratio": float("inf"), "values": [float("-inf"), 1.5],
               "nested": {"a": float("nan")}}
    monkeypatch.setattr(sys.modules[__name__], "EVIDENCE", hostile)
    calls, _ = CASES[case]()
    statuses = [body for verb, _, body in calls if verb == "patch_status"]
    assert statuses, calls
    for body in statuses:
        text = json.dumps(ApiClient.__new__(ApiClient).sanitize_for_serialization(body))  # no session needed
        sent = json.loads(text, parse_constant=_no_constants)
        assert sent["status"]["evidence"] == {"slowScore": "NaN", "ratio": "+Inf", "values": ["-Inf", 1.5],
                                              "nested": {"a": "NaN"}}

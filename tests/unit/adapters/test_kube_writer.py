"""KubeWriter: a name collision adopts or moves on, patches apply only to the version they were planned
on, and a 409 stops the rest of that ticket's plan without an Event."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from tests.unit.adapters.fake_kube import FakeCore, FakeObjects
from tikv_operator.kube.writer import KubeWriter
from tikv_operator.tickets.core.lifecycle import CreateTicket, DeleteTicket, PatchTicket, TicketEvent

CLUSTER = {"apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster",
           "metadata": {"name": "basic", "namespace": "ns", "uid": "u-1"}}
OPENED = TicketEvent("TicketOpened", "store 4 is Down", "Warning")


def writer(objects: FakeObjects | None = None) -> tuple[KubeWriter, FakeObjects, FakeCore]:
    objects = objects or FakeObjects()
    core = FakeCore()
    return KubeWriter(objects, core), objects, core  # type: ignore[arg-type]


def create(name: str = "basic-store-down-s4-1") -> CreateTicket:
    return CreateTicket(name=name, invariant="store_down", store="4", labels={"tikvops.io/phase": "open"},
                        status={"phase": "Open", "severity": "critical"}, event=OPENED)


def existing(name: str, phase: str | None = "Open", store: str = "4") -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "tikvops.io/v1alpha1", "kind": "OperatorTicket",
                           "metadata": {"name": name, "namespace": "ns"},
                           "spec": {"cluster": "basic", "invariant": "store_down", "store": store}}
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


def test_a_name_taken_by_the_same_active_ticket_is_adopted() -> None:
    w, objects, core = writer()
    objects.put("operatortickets", existing("basic-store-down-s4-1"))
    applied = asyncio.run(w.apply("ns", CLUSTER, (create(),)))
    assert not applied.failed
    assert [c[0] for c in objects.calls] == ["create", "get"]
    assert core.events == []  # the writer that created it announced it


def test_a_name_taken_by_a_resolved_ticket_moves_on_to_the_next_number() -> None:
    w, objects, core = writer()
    objects.put("operatortickets", existing("basic-store-down-s4-1", "Resolved"))
    applied = asyncio.run(w.apply("ns", CLUSTER, (create(),)))
    assert not applied.failed
    made = objects.store[("operatortickets", "basic-store-down-s4-2")]
    assert made["status"] == {"phase": "Open", "severity": "critical"}
    assert made["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert core.reasons() == ["TicketOpened", "TicketOpened"]  # on the ticket and on its cluster


def test_a_name_taken_again_and_again_gives_up_and_says_so() -> None:
    w, objects, _ = writer()
    for n in range(1, 7):
        objects.put("operatortickets", existing(f"basic-store-down-s4-{n}", "Resolved"))
    applied = asyncio.run(w.apply("ns", CLUSTER, (create(),)))
    assert applied.failed == {"basic-store-down-s4-1"}
    assert not applied.conflicts  # a 409 of a create is a name collision, not an edit to plan on


def test_patches_name_the_version_planned_on_and_chain_the_versions_they_write() -> None:
    w, objects, core = writer()
    version = objects.put("operatortickets", existing("t-1"))["metadata"]["resourceVersion"]
    record = PatchTicket("t-1", status={"resolution": "manual"}, labels={"tikvops.io/phase": "resolved"},
                         annotations={"tikvops.io/recorded": "Resolved/unheld"},
                         event=TicketEvent("TicketResolvedManually", "t-1: resolved by hand"),
                         resource_version=version)
    later = PatchTicket("t-1", status={"occurrences": 3}, resource_version=version)
    applied = asyncio.run(w.apply("ns", CLUSTER, (record, later)))
    assert not applied.failed
    patches = [(verb, body["metadata"]["resourceVersion"]) for verb, _, body in objects.calls]
    # status first, labels and the record last; each names the version the one before wrote
    assert patches == [("patch_status", version), ("patch", str(int(version) + 1)),
                       ("patch_status", str(int(version) + 2))]
    assert core.reasons("t-1") == ["TicketResolvedManually"]


def test_a_ticket_changed_since_the_plan_is_left_alone_and_named_as_a_conflict() -> None:
    w, objects, core = writer()
    stale = objects.put("operatortickets", existing("t-1"))["metadata"]["resourceVersion"]
    objects.put("operatortickets", {**existing("t-1"), "spec": {"cluster": "basic", "held": True,
                                                                 "invariant": "store_down", "store": "4"}})
    resolve = PatchTicket("t-1", status={"phase": "Resolved", "resolution": "auto"},
                          labels={"tikvops.io/phase": "resolved"},
                          event=TicketEvent("TicketResolved", "t-1: condition cleared"), resource_version=stale)
    refresh = PatchTicket("t-1", status={"occurrences": 2}, resource_version=stale)
    other = PatchTicket("t-2", status={"occurrences": 2})
    objects.put("operatortickets", existing("t-2"))
    applied = asyncio.run(w.apply("ns", CLUSTER, (resolve, refresh, other)))
    assert applied.failed == {"t-1"}
    assert applied.conflicts == {"t-1"}
    assert objects.store[("operatortickets", "t-1")]["status"] == {"phase": "Open"}  # the hold stands
    assert objects.store[("operatortickets", "t-2")]["status"]["occurrences"] == 2
    assert [name for verb, name, _ in objects.calls if verb.startswith("patch")] == ["t-1", "t-2"]
    assert core.events == []


def test_a_delete_applies_only_to_the_version_planned_on() -> None:
    w, objects, _ = writer()
    stale = objects.put("operatortickets", existing("t-1", "Resolved"))["metadata"]["resourceVersion"]
    objects.put("operatortickets", existing("t-1", "Open"))  # reopened meanwhile
    applied = asyncio.run(w.apply("ns", CLUSTER, (DeleteTicket("t-1", OPENED, resource_version=stale),)))
    assert applied.conflicts == {"t-1"}
    assert ("operatortickets", "t-1") in objects.store


def test_other_errors_fail_one_operation_not_the_plan() -> None:
    def fault(verb: str, name: str) -> ApiException | None:
        return ApiException(status=422, reason="Invalid") if name == "t-1" else None

    w, objects, _ = writer(FakeObjects(fault))
    objects.put("operatortickets", existing("t-2"))
    applied = asyncio.run(w.apply("ns", CLUSTER, (create("t-1"), PatchTicket("t-2", status={"occurrences": 5}))))
    assert applied.failed == {"t-1"}
    assert not applied.conflicts
    assert objects.store[("operatortickets", "t-2")]["status"]["occurrences"] == 5

"""An Alertmanager that restarted without storage forgets its silences: an Acknowledged ticket's silence is
made again, once the notifier sees the id its ticket records is gone; one that merely expired (its
silenceDuration passed) is not."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.unit.test_notifier import NOW, OPEN, Recorder, Server, run, spec
from tikv_operator.alerts.core.delivery import AlertPolicy, silence_ops
from tikv_operator.alerts.notifier import Notifier
from tikv_operator.tickets.core.ticket import TicketView

ACKED = replace(OPEN, phase="Acknowledged")


def test_a_silence_the_alertmanager_forgot_is_created_again() -> None:
    run(_a_silence_the_alertmanager_forgot_is_created_again)


async def _a_silence_the_alertmanager_forgot_is_created_again(state: Server, url: str) -> None:
    recorder = Recorder()
    tickets: list[TicketView] = [ACKED]
    notifier = Notifier(AlertPolicy(), recorder=recorder)
    notifier.register("ns", "basic", spec(url), lambda: tickets)
    (target,) = notifier.targets.values()
    await notifier.deliver(target, NOW)
    assert recorder.records == [("ns", OPEN.name, url, "s1")]
    tickets = [replace(ACKED, silences={url: "s1"})]  # the index has caught up
    state.silences.clear()  # Alertmanager restarted without its storage
    state.silences["other"] = {"id": "other", "status": {"state": "active"}, "matchers": []}
    await notifier.deliver(target, NOW + timedelta(minutes=2))
    ours = [s for s in state.silences.values() if s["id"] != "other"]
    assert len(ours) == 1, "the forgotten silence is made again"
    assert ours[0]["status"]["state"] == "active"
    assert recorder.records[-1] == ("ns", OPEN.name, url, ours[0]["id"])
    await notifier.close()


def test_an_expired_silence_of_an_acknowledged_ticket_is_not_made_again() -> None:
    run(_an_expired_silence_of_an_acknowledged_ticket_is_not_made_again)


async def _an_expired_silence_of_an_acknowledged_ticket_is_not_made_again(state: Server, url: str) -> None:
    notifier = Notifier(AlertPolicy(), recorder=Recorder())
    tickets: list[TicketView] = [ACKED]
    notifier.register("ns", "basic", spec(url), lambda: tickets)
    (target,) = notifier.targets.values()
    await notifier.deliver(target, NOW)
    tickets = [replace(ACKED, silences={url: "s1"})]
    state.silences["s1"]["status"] = {"state": "expired"}  # silenceDuration passed: it pages again, by design
    await notifier.deliver(target, NOW + timedelta(minutes=2))
    assert list(state.silences) == ["s1"]
    await notifier.close()


def test_silence_ops_recreate_only_what_is_gone() -> None:
    ticket = replace(ACKED, silences={"http://am-1": "a", "http://am-2": "b"})
    assert silence_ops(ticket, ["http://am-1", "http://am-2"]) == []
    assert [(op.action, op.alertmanager) for op in silence_ops(ticket, ["http://am-1", "http://am-2"],
                                                                gone={"b"})] == [("create", "http://am-2")]

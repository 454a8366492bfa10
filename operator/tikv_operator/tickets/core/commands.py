"""What the `tikv-operator tickets` commands do to a ticket, without I/O and without words: each decision
says whether the command changes the ticket, finds it already so, or is refused by the lifecycle rules,
and which merge patches make the change.

The shell (cli.tickets, cli.tickets_output and cli.ticket_api) finds the ticket, words the decision,
sends the patches and prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tikv_operator.model.ticket_resource import OperatorTicketStatus
from tikv_operator.model.vocabulary import PHASES, Phase, phase_label, phase_of_label
from tikv_operator.tickets.core.ticket import TicketView, manual_resolve, state_labels


class Effect(StrEnum):
    CHANGED = "changed"  # the patches make the change
    ALREADY = "already"  # what was asked is already true: nothing to send
    REFUSED = "refused"  # the lifecycle rules do not allow it


@dataclass(frozen=True)
class Decision:
    """`status_patch` goes to the status subresource, `object_patch` (metadata and spec) to the object;
    neither carries a resourceVersion, so they apply to whatever the object is by then, like `kubectl patch`."""

    effect: Effect
    status_patch: dict[str, Any] | None = None
    object_patch: dict[str, Any] | None = None


def normalise_phase(text: str) -> Phase:
    """`open`, `OPEN` or `Open` -> Phase.OPEN; anything else is refused with the accepted values."""
    phase = phase_of_label(text)
    if phase is None:
        raise ValueError(f"unknown status {text!r}; use one of: {', '.join(phase_label(p) for p in PHASES)}")
    return phase


def _labels_patch(phase: str, held: bool) -> dict[str, Any]:
    return {"metadata": {"labels": state_labels(phase, held)}}


def _status_patch(status: OperatorTicketStatus) -> dict[str, Any]:
    return {"status": status.merge_patch()}


def decide_resolve(ticket: TicketView, now: datetime) -> Decision:
    """Rule 6, the same rule the operator records a `kubectl patch` to Resolved with (manual_resolve)."""
    if not ticket.active:
        return Decision(Effect.ALREADY)
    # The status is patched first: it is what counts, and a running operator brings the labels and
    # `held` in step with it even if the second patch never lands.
    rule = manual_resolve(None, now)
    return Decision(
        Effect.CHANGED,
        status_patch=_status_patch(rule.status),
        object_patch={"metadata": {"labels": dict(rule.labels)}, "spec": dict(rule.spec)},
    )


def decide_hold(ticket: TicketView) -> Decision:
    if not ticket.active:
        return Decision(Effect.REFUSED)  # a new ticket opens if the condition returns
    if ticket.held:
        return Decision(Effect.ALREADY)
    return Decision(Effect.CHANGED, object_patch={**_labels_patch(ticket.current_phase, True), "spec": {"held": True}})


def decide_unhold(ticket: TicketView) -> Decision:
    if not ticket.held:
        return Decision(Effect.ALREADY)
    return Decision(Effect.CHANGED,
                    object_patch={**_labels_patch(ticket.current_phase, False), "spec": {"held": False}})


def decide_ack(ticket: TicketView) -> Decision:
    if not ticket.active:
        return Decision(Effect.REFUSED)
    if ticket.current_phase != Phase.OPEN and not ticket.operator_diagnosed:
        # Acknowledged, or a person's Diagnosed: acknowledging must not move it back. The operator's Diagnosed is
        # no acknowledgement (rule 27): acknowledging it silences it, and its diagnosis stays.
        return Decision(Effect.ALREADY)
    return Decision(
        Effect.CHANGED,
        status_patch=_status_patch(OperatorTicketStatus(phase=Phase.ACKNOWLEDGED)),
        object_patch=_labels_patch(Phase.ACKNOWLEDGED, ticket.held),
    )

"""OperatorTicket: one broken invariant of one TiKV cluster (and store), from detection to resolution."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field

from tikv_operator.model.json_text import finite_json
from tikv_operator.model.vocabulary import INVARIANT_NAME_MAX, INVARIANT_NAME_PATTERN, Phase, Resolution, Severity
from tikv_operator.model.wire import Timestamp, WireModel

# Free-form values the operator measured: a NaN or an Infinity in them (PD's, Prometheus') is written as its
# spelling, "NaN" or "+Inf", since the API server refuses the status write of a body holding one. Every ticket
# status the operator writes is built as this model, so no write misses it.
FiniteJson = Annotated[dict[str, Any], AfterValidator(finite_json)]


class OperatorTicketSpec(WireModel):
    """What the ticket is about; written by the operator, except `held`."""

    cluster: str = Field(min_length=1, max_length=253, description="Name of the TiKVCluster (same namespace).")
    invariant: str = Field(pattern=INVARIANT_NAME_PATTERN, max_length=INVARIANT_NAME_MAX,
                           description="The broken invariant: a built-in one or a name from the TiKVCluster's "
                           "spec.customInvariants.")
    store: str = Field(
        "", pattern=r"^[0-9]*$", max_length=20, description="PD store id; empty for a cluster-wide invariant."
    )
    held: bool = Field(
        False,
        description="true keeps the ticket open when the condition clears (a manual resolve still wins).",
    )


class TicketCause(WireModel):
    """The open ticket that explains this one (docs/design.md rule 26): while it is open, this one does not page."""

    ticket: str = Field(description="Name of the cause's OperatorTicket (same namespace).")
    invariant: str = Field(description="The cause's invariant.")
    store: str = Field("", description="The cause's store; empty for a cluster-wide invariant.")
    rule: str = Field(description="The diagnosis rule that linked them (docs/diagnosis.md).")
    since: Timestamp | None = Field(None, description="When the operator linked them.")


class ExplainedTicket(WireModel):
    """One symptom ticket a cause explains."""

    ticket: str
    invariant: str
    store: str = ""
    rule: str


class TicketDiagnosis(WireModel):
    """What the operator found behind a cause ticket (rule 27). Each source of facts has its own section
    (`pd`; `kubernetes` for pod, node and PVC facts), so a new source adds a section and changes none."""

    summary: str = Field(description="One line a person understands: the cause, its evidence, what it explains.")
    explains: list[ExplainedTicket] = Field(default_factory=list, max_length=200,
                                            description="The symptom tickets this cause explains.")
    rules: list[str] = Field(default_factory=list, description="The diagnosis rules that linked them.")
    pd: FiniteJson | None = Field(None, description="What PD says of the cause (state, since when, time left "
                                  "to max-store-down-time, region counts).")
    kubernetes: FiniteJson | None = Field(None, description="Pod, node and PVC facts of the cause's store, when "
                                          "the operator reads them.")
    runbook: str = Field("", description="The runbook of the cause's invariant (docs/runbooks/<invariant>.md).")
    diagnosed_at: Timestamp | None = Field(None, description="When the operator last changed this diagnosis.")


# The status as the operator writes it (`merge_patch`) and every reader reads it (`read`). (No docstring: it
# would become the CRD's description of status.)
class OperatorTicketStatus(WireModel):
    # A phase reads back as the plain string the API server holds (Phase is a StrEnum of those strings).
    model_config = ConfigDict(use_enum_values=True)

    phase: Phase | None = Field(
        None, description="Open, Acknowledged, Diagnosed or Resolved; patch to Resolved to resolve by hand."
    )
    severity: Severity | None = None
    message: str | None = Field(None, description="What was seen, in words.")
    first_seen: Timestamp | None = None
    last_seen: Timestamp | None = None
    occurrences: int | None = Field(None, ge=0, description="Checks that saw the violation.")
    resolved_at: Timestamp | None = None
    resolution: Resolution | None = Field(None, description="auto (the condition cleared) or manual.")
    resolution_message: str | None = Field(
        None, description="What the operator saw when it auto-resolved the ticket (e.g. the store is Tombstone)."
    )
    reopened_at: list[Timestamp] | None = Field(
        None, max_length=100,
        description="When the ticket reopened: its violation came back within the flapping window after an "
        "auto-resolve (newest last).",
    )
    batch: str | None = Field(None, description="Id shared by the tickets opened in the same check.")
    flapping: bool | None = Field(None, description="The same identity opened too many tickets recently.")
    evidence: FiniteJson | None = Field(
        None, description="The observed values and the queries behind them at detection time."
    )
    silences: dict[str, str] | None = Field(
        None, description="Alertmanager silences the operator made when the ticket was acknowledged: silence id "
        "by Alertmanager URL; expired when the ticket resolves.",
    )
    cause: TicketCause | None = Field(
        None, description="The open ticket that explains this one (a symptom); its page waits for the cause's.")
    diagnosis: TicketDiagnosis | None = Field(
        None, description="The operator's diagnosis of a cause ticket: the tickets it explains, and why.")

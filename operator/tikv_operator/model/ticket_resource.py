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
    diagnosis: FiniteJson | None = Field(None, description="Reserved for correlated diagnosis.")

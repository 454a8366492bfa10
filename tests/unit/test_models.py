"""The resource models read what people write and what the API server stores."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from tikv_operator.core.cluster_resource import TiKVClusterSpec
from tikv_operator.core.durations import format_duration, parse_duration
from tikv_operator.core.ticket_resource import OperatorTicketSpec, OperatorTicketStatus


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("24h", 86400), ("1.5h", 5400), ("2h45m", 9900),
])
def test_durations_parse_like_go(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("text", ["", "30", "soon", "1d", "-5s", "5 s", "s"])
def test_bad_durations_are_rejected_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration like 30s"):
        parse_duration(text)


def test_format_duration_is_the_shortest_spelling() -> None:
    assert [format_duration(timedelta(seconds=s)) for s in (90, 0.25, 3600, 0)] == ["1m30s", "250ms", "1h", "0s"]


def test_a_minimal_spec_gets_the_documented_defaults() -> None:
    spec = TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://prom:9090"}})

    assert (spec.interval, spec.paused, spec.flapping.window, spec.flapping.count) == (None, False, "10m", 3)
    assert (spec.pd.timeout, spec.tickets.refresh_interval, spec.tickets.resolved_retention) == ("5s", "1m", "168h")
    assert spec.invariants.store_down is None


def test_camel_case_on_the_wire_and_invariant_names_as_keys() -> None:
    spec = TiKVClusterSpec.model_validate({
        "pd": {"url": "https://pd:2379", "tlsSecret": {"name": "basic-cluster-client-secret"}},
        "prometheus": {"url": "http://prom:9090", "labelMatchers": {"tidb_cluster": "tidb-basic"}},
        "invariants": {"high_latency": {"threshold": 0.25, "gracePeriod": "2m", "severity": "critical"}},
    })

    assert spec.pd.tls_secret is not None
    assert spec.pd.tls_secret.name == "basic-cluster-client-secret"
    assert spec.invariants.high_latency is not None
    assert spec.invariants.high_latency.grace_period == "2m"
    wire = spec.wire()
    assert wire["invariants"] == {"high_latency": {"threshold": 0.25, "gracePeriod": "2m", "severity": "critical"}}
    assert wire["prometheus"]["labelMatchers"] == {"tidb_cluster": "tidb-basic"}


def test_ticket_models_reject_what_the_crd_rejects() -> None:
    with pytest.raises(ValidationError):
        OperatorTicketSpec.model_validate({"cluster": "c", "invariant": "disk_full"})
    with pytest.raises(ValidationError):
        OperatorTicketSpec.model_validate({"cluster": "c", "invariant": "store_down", "store": "s1"})
    with pytest.raises(ValidationError):
        OperatorTicketStatus.model_validate({"phase": "Closed"})


def test_unknown_fields_from_a_newer_operator_are_ignored() -> None:
    status = OperatorTicketStatus.model_validate({"phase": "Open", "occurrences": 3, "futureField": 1})
    assert status.wire() == {"phase": "Open", "occurrences": 3}

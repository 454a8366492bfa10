"""The resource models read what people write and what the API server stores."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from pydantic import ValidationError

from tikv_operator.model.cluster_resource import URL_PATTERN, TiKVClusterSpec
from tikv_operator.model.durations import AT_LEAST_A_SECOND_PATTERN, format_duration, parse_duration
from tikv_operator.model.ticket_resource import OperatorTicketSpec, OperatorTicketStatus

MINIMAL = {"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://prom:9090"}}


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
    # Any invariant name of the catalogue's shape: a cluster's custom invariants open tickets too.
    assert OperatorTicketSpec.model_validate({"cluster": "c", "invariant": "disk_full"}).invariant == "disk_full"
    for bad in ("Disk-Full", "disk full", "_disk", "disk_", "x" * 41):
        with pytest.raises(ValidationError):
            OperatorTicketSpec.model_validate({"cluster": "c", "invariant": bad})
    with pytest.raises(ValidationError):
        OperatorTicketSpec.model_validate({"cluster": "c", "invariant": "store_down", "store": "s1"})
    with pytest.raises(ValidationError):
        OperatorTicketStatus.model_validate({"phase": "Closed"})


def test_unknown_fields_from_a_newer_operator_are_ignored() -> None:
    status = OperatorTicketStatus.model_validate({"phase": "Open", "occurrences": 3, "futureField": 1})
    assert status.wire() == {"phase": "Open", "occurrences": 3}


@pytest.mark.parametrize("text", ["1s", "1.5s", "1000ms", "2500ms", "0m30s", "2m", "1h", "0s1s", "010s"])
def test_a_second_or_more_matches_the_crd_pattern_and_the_model(text: str) -> None:
    assert re.fullmatch(AT_LEAST_A_SECOND_PATTERN, text)
    assert TiKVClusterSpec.model_validate({**MINIMAL, "interval": text}).interval == text


@pytest.mark.parametrize("text", ["0s", "0ms", "999ms", "500ms", "0.5s", "0m0s", "0h", "00s"])
def test_under_a_second_is_refused_by_the_crd_pattern_and_the_model(text: str) -> None:
    assert not re.fullmatch(AT_LEAST_A_SECOND_PATTERN, text)
    with pytest.raises(ValidationError):
        TiKVClusterSpec.model_validate({**MINIMAL, "interval": text})
    with pytest.raises(ValidationError):
        TiKVClusterSpec.model_validate({**MINIMAL, "tickets": {"refreshInterval": text}})


@pytest.mark.parametrize("url", [
    "http://admin:secret@pd:2379", "http://token@pd:2379", "http://pd:2379/?x=1", "http://pd:2379#top",
    "http://pd:2379/pd?x", "http://pd:2379/a#b",
])
def test_urls_with_credentials_queries_or_fragments_are_refused(url: str) -> None:
    assert not re.fullmatch(URL_PATTERN, url)
    with pytest.raises(ValidationError):
        TiKVClusterSpec.model_validate({**MINIMAL, "pd": {"url": url}})


@pytest.mark.parametrize("key", ["", "1zone", "tidb-cluster", "zone name", "__name__x!"])
def test_label_matcher_keys_must_be_prometheus_label_names(key: str) -> None:
    with pytest.raises(ValidationError, match="label name"):
        TiKVClusterSpec.model_validate({**MINIMAL, "prometheus": {"url": "http://p:9090", "labelMatchers": {key: "x"}}})


def test_label_matcher_keys_that_prometheus_accepts_are_kept() -> None:
    spec = TiKVClusterSpec.model_validate(
        {**MINIMAL, "prometheus": {"url": "http://p:9090", "labelMatchers": {"tidb_cluster": "a", "_x9": "b"}}}
    )
    assert spec.prometheus.label_matchers == {"tidb_cluster": "a", "_x9": "b"}


# Durations are bounded: a year at most (docs/reference/tikvcluster.md), and a spelling the schema bounds too.
DURATION_PATHS = [("interval",), ("pd", "timeout"), ("prometheus", "timeout"), ("prometheus", "rateWindow"),
                  ("alertmanager", "timeout"), ("flapping", "window"), ("tickets", "refreshInterval"),
                  ("tickets", "resolvedRetention"), ("invariants", "store_down", "gracePeriod"),
                  ("invariants", "pd_leader_flapping", "window"), ("invariants", "raft_log_lag", "keepFiringFor"),
                  ("customInvariants", 0, "for"), ("customInvariants", 0, "keepFiringFor")]


def _spec_with(path: tuple[str | int, ...], value: str) -> dict[str, object]:
    spec: dict[str, object] = {**MINIMAL, "pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://prom:9090"},
                               "customInvariants": [{"name": "mine", "expr": "up"}]}
    node: object = spec
    for key in path[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})  # type: ignore[index,union-attr]
    node[path[-1]] = value  # type: ignore[index]
    return spec


@pytest.mark.parametrize("path", DURATION_PATHS, ids=lambda p: ".".join(map(str, p)))
@pytest.mark.parametrize("value", ["99999999999999h", "9999999999h", "8761h", "525601m", "8760h1ms"])
def test_a_duration_beyond_a_year_is_a_validation_error_never_an_overflow(path: tuple[str, ...], value: str) -> None:
    with pytest.raises(ValidationError) as error:
        TiKVClusterSpec.model_validate(_spec_with(path, value))
    assert re.search(r"longer than 8760h|at most 14 characters", str(error.value)), str(error.value)


@pytest.mark.parametrize("path", DURATION_PATHS, ids=lambda p: ".".join(map(str, p)))
def test_a_duration_of_a_year_is_taken(path: tuple[str, ...]) -> None:
    TiKVClusterSpec.model_validate(_spec_with(path, "8760h"))
    TiKVClusterSpec.model_validate(_spec_with(path, "2h45m30s500ms"))


def test_the_operator_never_parses_a_duration_beyond_a_year() -> None:
    with pytest.raises(ValueError, match="longer than 8760h"):
        parse_duration("99999999999999999999h")

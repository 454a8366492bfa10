"""Fuzzing what others answer and what people write: every input gives an observation or a validation error,
never an exception out of a check. PD's /stores and /health, Prometheus' instant vectors, Alertmanager's
answers, and the TiKVCluster spec, with NaN, Infinity, huge numbers, stack-deep nesting and odd shapes.

Each property runs a bounded number of examples (a few seconds in all) and keeps no example database."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tikv_operator.alerts.alertmanager import AlertmanagerClient, DeliveryError
from tikv_operator.alerts.core.delivery import is_our_silence
from tikv_operator.checks.core.invariants import evaluate
from tikv_operator.checks.core.observation import MetricsObservation, Observation, PDObservation
from tikv_operator.checks.core.pd_model import PDAnswerError, parse_health, parse_stores
from tikv_operator.checks.core.settings import ClusterSettings, Rejected, configure, delivery_spec, settings_of
from tikv_operator.checks.pd_client import _stores_observation
from tikv_operator.checks.prometheus_client import instant_vector
from tikv_operator.checks.prometheus_transport import Answer
from tikv_operator.kube.credentials import NO_ALERTMANAGER_CREDENTIALS
from tikv_operator.model.cluster_resource import TiKVClusterSpec

FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DEEP = "[" * 50_000 + "]" * 50_000
MINIMAL = {"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://prom:9090"}}
SPEC = TiKVClusterSpec.model_validate(MINIMAL)
CONFIGS = configure(SPEC)
AT = datetime(2026, 11, 25, tzinfo=UTC)

numbers = (st.integers(min_value=-(10**30), max_value=10**30) | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([10**300, 10**400, -1, 0, 2**63, 2**64]))
leaves = st.none() | st.booleans() | numbers | st.text(max_size=12) | st.sampled_from(
    ["NaN", "+Inf", "-Inf", "1e999", "96.73GiB", "1e999GiB", "Up", "Down", "0B"])
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)


def dumped(value: Any) -> str:
    return json.dumps(value)  # NaN and Infinity as Python writes them, which its reader takes back


# A /stores answer of the right shape with hostile values where PD puts numbers and text.
store_meta = st.fixed_dictionaries({"id": st.integers(0, 2**64) | leaves}, optional={
    "address": leaves, "state_name": st.sampled_from(["Up", "Down", "Disconnected", "Offline", "Tombstone", ""])
    | leaves, "last_heartbeat": numbers, "start_timestamp": numbers, "physically_destroyed": leaves,
    "labels": st.lists(st.fixed_dictionaries({"key": st.sampled_from(["engine", "zone"]),
                                              "value": st.sampled_from(["tiflash", "a"])}), max_size=2)})
store_status = st.fixed_dictionaries({}, optional={
    "capacity": numbers | leaves, "available": numbers | leaves, "used_size": numbers | leaves,
    "region_count": numbers, "leader_count": numbers, "slow_score": numbers | leaves})
stores_answers = st.lists(st.fixed_dictionaries({"store": store_meta}, optional={"status": store_status}),
                          max_size=4).map(lambda stores: dumped({"count": len(stores), "stores": stores}))


def check_of(stores: Any) -> None:
    """Every built-in invariant judges what was parsed, as a check would: findings, never an exception."""
    obs = Observation(cluster="basic", at=AT, pd=PDObservation(url="http://pd", reachable=True, stores=stores),
                      metrics=MetricsObservation(url="http://prom", reachable=False, error="not asked"))
    for finding in evaluate(obs, CONFIGS):
        assert finding.verdict in ("ok", "violated", "unknown")
        if finding.invariant == "store_slow" and "slowScore" not in finding.evidence:
            assert finding.verdict != "ok"


@FUZZ
@given(st.one_of(stores_answers, json_values.map(dumped), st.binary(max_size=64)))
@example(DEEP)
@example('{"stores": [{"store": {"id": 1, "state_name": "Up"}, "status": {"slow_score": NaN, "capacity": Infinity}}]}')
def test_a_stores_answer_is_an_observation_or_a_pd_answer_error(body: str | bytes) -> None:
    try:
        answer = parse_stores(body)
    except PDAnswerError:
        pass
    else:
        check_of(answer.observed())
    # The read path as PD's client takes it: an observation whatever the body.
    raw = body.encode() if isinstance(body, str) else body
    observation = asyncio.run(_stores_observation("http://pd", "GET /pd/api/v1/stores", 200, "OK", raw))
    assert observation.reachable or observation.error


@FUZZ
@given(st.one_of(json_values.map(dumped), st.binary(max_size=64), st.lists(st.fixed_dictionaries(
    {"member_id": numbers | leaves}, optional={"name": leaves, "client_urls": json_values, "health": leaves}),
    max_size=3).map(dumped)))
@example(DEEP)
def test_a_health_answer_is_members_or_a_pd_answer_error(body: str | bytes) -> None:
    with contextlib.suppress(PDAnswerError):
        parse_health(body)


samples = st.fixed_dictionaries({"metric": st.dictionaries(st.text(max_size=6), leaves, max_size=3) | leaves,
                                 "value": st.tuples(numbers, numbers | leaves).map(list) | json_values})


@FUZZ
@given(st.lists(samples, max_size=4) | json_values)
@example([{"metric": {}, "value": [1, 10**400]}])  # an integer beyond any float
def test_an_instant_vector_is_samples_or_a_readable_reason(result: Any) -> None:
    try:
        series = instant_vector(json.loads(dumped(result)))
    except Answer as error:
        reason = str(error)
        assert reason
    else:
        assert all(isinstance(s.value, float) for s in series)


@pytest.fixture(scope="module")
def alertmanager_answers() -> Any:
    """Runs one request against an AlertmanagerClient whose every answer is the given one."""

    def run(status: int, body: bytes, call: str) -> None:
        async def scenario() -> None:
            # Without __init__: its TLS setup is not under test, and costs more than the whole example.
            client = AlertmanagerClient.__new__(AlertmanagerClient)
            client.url, client.timeout_s, client.credentials = "http://am:9093", 5.0, NO_ALERTMANAGER_CREDENTIALS
            client._client = httpx.AsyncClient(transport=httpx.MockTransport(
                lambda _request: httpx.Response(status, content=body)))
            try:
                if call == "post":
                    await client.post_alerts([{"labels": {"alertname": "x"}}])
                elif call == "silences":
                    for silence in await client.silences([{"name": "ticket", "value": "t", "isRegex": False}]):
                        is_our_silence(silence, "ns", "t")
                elif call == "create":
                    assert await client.create_silence({"matchers": []})
                else:
                    await client.expire_silence("s1")
            except DeliveryError as error:
                reason = str(error)
                assert reason
            finally:
                await client.aclose()

        asyncio.run(scenario())

    return run


@FUZZ
@given(status=st.sampled_from([200, 202, 400, 404, 422, 500, 502]),
       body=st.one_of(json_values.map(lambda v: dumped(v).encode()), st.binary(max_size=64),
                      st.lists(st.fixed_dictionaries({}, optional={
                          "id": leaves, "status": json_values, "matchers": json_values, "createdBy": leaves}),
                          max_size=3).map(lambda v: dumped(v).encode())),
       call=st.sampled_from(["post", "silences", "create", "expire"]))
@example(status=500, body=DEEP.encode(), call="post").via("stack-deep error")
@example(status=200, body=DEEP.encode(), call="silences").via("stack-deep list")
@example(status=200, body=DEEP.encode(), call="create").via("stack-deep id")
def test_an_alertmanager_answer_is_a_result_or_a_delivery_error(alertmanager_answers: Any, status: int, body: bytes,
                                                                 call: str) -> None:
    alertmanager_answers(status, body, call)


durations = st.sampled_from(["30s", "0s", "500ms", "8760h", "8761h", "99999999999999h", "9999999999h", "1e3s",
                             "1.5h", "", "-1s", "1d", "2h45m30s500ms"]) | st.text(alphabet="0123456789.hms",
                                                                                    max_size=16)
spec_parts = st.fixed_dictionaries({
    "pd": st.fixed_dictionaries({"url": st.sampled_from(["http://pd:2379", "ftp://x", ""]) | leaves},
                                optional={"timeout": durations | leaves}),
    "prometheus": st.fixed_dictionaries({"url": st.sampled_from(["http://prom:9090"]) | leaves}, optional={
        "timeout": durations, "rateWindow": durations,
        "labelMatchers": st.dictionaries(st.sampled_from(["tidb_cluster", "bad-key", ""]), leaves, max_size=2)}),
}, optional={
    "interval": durations | leaves, "paused": leaves,
    "flapping": st.fixed_dictionaries({}, optional={"window": durations, "count": numbers}),
    "tickets": st.fixed_dictionaries({}, optional={"refreshInterval": durations, "resolvedRetention": durations}),
    "invariants": st.dictionaries(st.sampled_from(["store_down", "low_disk_space", "pd_leader_flapping", "nope"]),
                                  st.fixed_dictionaries({}, optional={
                                      "gracePeriod": durations, "keepFiringFor": durations, "window": durations,
                                      "threshold": numbers, "severity": leaves, "enabled": leaves}), max_size=2),
    "customInvariants": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["mine", "Bad-Name"]),
                                                        "expr": st.sampled_from(["up", ""]) | leaves},
                                                       optional={"for": durations, "keepFiringFor": durations,
                                                                 "scope": leaves}), max_size=2),
    "alertmanager": st.fixed_dictionaries({}, optional={
        "urls": st.lists(st.sampled_from(["http://am:9093", "ftp://am"]) | leaves, max_size=2) | leaves,
        "labels": st.dictionaries(st.sampled_from(["team", "bad-label", "severity"]), leaves, max_size=2),
        "timeout": durations, "enabled": leaves}) | leaves,
    "storePods": st.dictionaries(st.sampled_from(["1", "x"]), leaves, max_size=2),
})


# Specs that mostly validate, so the settings of many valid ones are worked out too.
good_durations = st.sampled_from(["1s", "30s", "1m30s", "8760h", "2h45m30s500ms", "1.5h", "1000ms"])
near_valid = st.fixed_dictionaries({"pd": st.just(MINIMAL["pd"]), "prometheus": st.just(MINIMAL["prometheus"])},
                                   optional={
    "interval": good_durations, "paused": st.booleans(),
    "flapping": st.fixed_dictionaries({}, optional={"window": good_durations, "count": st.integers(1, 101)}),
    "tickets": st.fixed_dictionaries({}, optional={"refreshInterval": good_durations,
                                                   "resolvedRetention": good_durations | durations}),
    "invariants": st.dictionaries(st.sampled_from(["store_down", "low_disk_space", "pd_leader_flapping"]),
                                  st.fixed_dictionaries({}, optional={
                                      "gracePeriod": good_durations, "window": good_durations,
                                      "threshold": st.floats(0, 10**6) | st.integers(0, 10**6)}), max_size=2),
    "customInvariants": st.lists(st.fixed_dictionaries({"name": st.just("mine"), "expr": st.just("up")},
                                                       optional={"for": good_durations}), max_size=1),
    "alertmanager": st.fixed_dictionaries({}, optional={"urls": st.lists(st.just("http://am:9093"), max_size=2),
                                                        "timeout": good_durations}),
})


@FUZZ
@given(st.one_of(near_valid, spec_parts, json_values))
@example({**MINIMAL, "interval": "99999999999999h"})
@example({**MINIMAL, "prometheus": {"url": "http://prom:9090", "labelMatchers": {"bad-key": "x"}}})
def test_a_spec_is_a_model_or_a_validation_error_and_a_valid_one_always_builds_settings(spec: Any) -> None:
    try:
        TiKVClusterSpec.model_validate(spec)
    except ValidationError:
        valid = False
    else:
        valid = True
    settings_or_refusal = settings_of(spec if isinstance(spec, dict) else None, timedelta(seconds=30))
    if valid and isinstance(spec, dict):
        assert isinstance(settings_or_refusal, ClusterSettings)
        assert settings_or_refusal.interval <= timedelta(hours=8760)
    elif isinstance(settings_or_refusal, Rejected):
        assert settings_or_refusal.reason
        assert settings_or_refusal.delivery is not None
    delivery_spec(spec if isinstance(spec, dict) else None)

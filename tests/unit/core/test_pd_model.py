"""PD bodies parsed leniently: old and new size formats, omitted and unknown fields, uint64 ids."""

from __future__ import annotations

import json

import pytest

from tikv_operator.checks.core.observation import Store
from tikv_operator.checks.core.pd_model import PDAnswerError, parse_health, parse_stores
from tikv_operator.model.sizes import parse_size

GIB = 2**30


def one_store(store: dict[str, object], status: dict[str, object] | None = None) -> str:
    entry: dict[str, object] = {"store": store}
    if status is not None:
        entry["status"] = status
    return json.dumps({"count": 1, "stores": [entry]})


@pytest.mark.parametrize(
    ("text", "size"),
    [("96.73GiB", round(96.73 * GIB)), ("937 GiB", 937 * GIB), ("0B", 0), ("1.636TiB", round(1.636 * 2**40)),
     ("292.5MiB", round(292.5 * 2**20)), ("512KB", 512 * 1024), ("7", 7)],
)
def test_sizes_in_every_format_pd_has_printed(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "12 parsecs", "-1GiB", "1,5GiB"])
def test_sizes_that_are_not_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_old_pd_sizes_with_a_space_are_read() -> None:
    (store,) = parse_stores(one_store({"id": 1}, {"capacity": "937 GiB", "available": "468.5 GiB"})).observed()

    assert store.capacity_bytes == 937 * GIB
    assert store.available_bytes == round(468.5 * GIB)


def test_unknown_fields_of_a_newer_pd_are_ignored() -> None:
    body = one_store(
        {"id": 7, "address": "a:20160", "state_name": "Up", "node_state": 1, "physically_destroyed": False,
         "brand_new": {"nested": [1, 2]}},
        {"capacity": "1GiB", "available": "512MiB", "network_slow_score": 1, "slow_trend": {"cause_value": 0}},
    )

    assert parse_stores(body).observed() == (
        Store(id="7", address="a:20160", state_name="Up", capacity_bytes=GIB, available_bytes=512 * 2**20),
    )


def test_omitted_fields_take_empty_values() -> None:
    """Go's omitempty: a store with only an id (and no status) is still a store."""
    (store,) = parse_stores(one_store({"id": 3})).observed()

    assert store == Store(id="3", state_name="")  # no state: its invariants are unknown, not ok
    assert store.capacity_bytes is None


def test_an_odd_size_loses_only_that_size() -> None:
    (store,) = parse_stores(one_store({"id": 3}, {"capacity": "lots", "available": "1GiB"})).observed()

    assert (store.capacity_bytes, store.available_bytes) == (None, GIB)


def test_no_stores_is_an_empty_answer() -> None:
    assert parse_stores('{"count": 0, "stores": null}').observed() == ()
    assert parse_stores('{"count": 0, "stores": []}').observed() == ()
    assert parse_stores("{}").observed() == ()


def test_uint64_ids_keep_every_digit() -> None:
    body = ('[{"name": "pd-0", "member_id": 13195394291058371180, "client_urls": ["http://pd-0:2379"],'
            ' "health": true}, {"name": "pd-1", "member_id": "18446744073709551615", "health": false}]')

    first, second = parse_health(body)

    assert first.member_id == "13195394291058371180"  # above 2**53: a float would have made it ...1216
    assert first.health is True
    assert first.client_urls == ("http://pd-0:2379",)
    assert second.member_id == "18446744073709551615"
    assert second.health is False


def test_store_ids_are_text() -> None:
    body = one_store({"id": 18446744073709551615})

    assert parse_stores(body).observed()[0].id == "18446744073709551615"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"count": 2, "stores": [', "/stores is not JSON: "),
        ('[{"id": 1, "state": "Up"}]', "/stores is not an object with a list of stores"),
        ('{"stores": {"1": {}}}', "/stores is not an object with a list of stores"),
        ('{"stores": [{"status": {}}]}', "/stores has an unexpected shape (stores.0.store: Field required)"),
        ('{"stores": [{"store": {"id": 1.5}}]}', "/stores has an unexpected shape (stores.0.store.id: "),
        ('{"stores": [{"store": {"id": true}}]}', "/stores has an unexpected shape (stores.0.store.id: "),
    ],
)
def test_answers_that_are_not_stores(body: str, error: str) -> None:
    with pytest.raises(PDAnswerError) as caught:
        parse_stores(body)

    assert str(caught.value).startswith(error), str(caught.value)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("<html>", "/health is not JSON: "),
        ('{"code": 0, "message": "ok", "data": null}', "/health is not a list of members"),
        ('[{"name": "pd-0"}]', "/health has an unexpected shape (member_id: Field required)"),
    ],
)
def test_health_answers_that_are_not_members(body: str, error: str) -> None:
    with pytest.raises(PDAnswerError) as caught:
        parse_health(body)

    assert str(caught.value).startswith(error), str(caught.value)


# Hostile or broken values: each gives an observation or a PDAnswerError, never another exception.

def test_a_nan_slow_score_is_unknown_never_ok() -> None:
    from datetime import UTC, datetime

    from tikv_operator.checks.core.invariants import evaluate
    from tikv_operator.checks.core.observation import MetricsObservation, Observation, PDObservation
    from tikv_operator.checks.core.settings import configure
    from tikv_operator.model.cluster_resource import TiKVClusterSpec

    body = '{"count": 1, "stores": [{"store": {"id": 1, "state_name": "Up"}, "status": {"slow_score": NaN}}]}'
    stores = parse_stores(body).observed()
    spec = TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://p:9090"}})
    obs = Observation(cluster="basic", at=datetime(2026, 11, 25, tzinfo=UTC),
                      pd=PDObservation(url="u", reachable=True, stores=stores),
                      metrics=MetricsObservation(url="p", reachable=False, error="x"))
    (slow,) = [f for f in evaluate(obs, configure(spec)) if f.invariant == "store_slow"]
    assert slow.verdict == "unknown"
    assert slow.message == "PD reported slow_score NaN for store 1"


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e999", '"1e999GiB"', '"NaNGiB"'])
def test_a_capacity_that_is_not_a_finite_size_is_no_size(value: str) -> None:
    body = '{"count": 1, "stores": [{"store": {"id": 1, "state_name": "Up"}, "status": {"capacity": VALUE}}]}'
    body = body.replace("VALUE", value)
    (store,) = parse_stores(body).observed()
    assert store.capacity_bytes is None


@pytest.mark.parametrize("parse", [parse_stores, parse_health])
def test_deeply_nested_json_is_a_malformed_answer(parse: object) -> None:
    with pytest.raises(PDAnswerError, match="is not JSON"):
        parse("[" * 100_000 + "]" * 100_000)  # type: ignore[operator]

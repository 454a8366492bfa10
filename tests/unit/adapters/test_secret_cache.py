"""SecretCache: one GET per Secret per TTL for the whole process, the last good copy through transient
failures (not through a 404, a 403 or a refusal), one read in flight per Secret, and no value in a repr
or a log line."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest
from kubernetes_asyncio.client import V1Secret

from tests.unit.adapters.fake_kube import FakeCore, api_error, opted_in_secret
from tikv_operator.kube.credentials import (
    ERROR_TTL_S,
    MAX_STALENESS_S,
    SECRET_TTL_S,
    CredentialsError,
    SecretCache,
    SecretUnreadable,
    load_credentials,
)
from tikv_operator.model.cluster_resource import TiKVClusterSpec

KEY = ("tidb", "prom")
TOKEN = "tok-SECRETVALUE-1"
ROTATED = "tok-SECRETVALUE-2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token_of(secret: V1Secret) -> str:
    return base64.b64decode(secret.data["token"]).decode()


def read(cache: SecretCache) -> V1Secret:
    return asyncio.run(cache.read(*KEY))


def setup(answer: V1Secret | BaseException, delay: float = 0.0) -> tuple[FakeCore, Clock, SecretCache]:
    core, clock = FakeCore({KEY: answer}, delay=delay), Clock()
    return core, clock, SecretCache(core, clock=clock)  # type: ignore[arg-type]


def test_a_secret_is_read_once_per_ttl() -> None:
    core, clock, cache = setup(opted_in_secret(token=TOKEN))

    for _ in range(5):
        assert token_of(read(cache)) == TOKEN
        clock.now += SECRET_TTL_S / 10

    assert len(core.reads) == 1


def test_a_rotated_secret_is_used_once_the_ttl_is_over() -> None:
    core, clock, cache = setup(opted_in_secret(token=TOKEN))
    read(cache)
    core.answers[KEY] = opted_in_secret(token=ROTATED)

    clock.now += SECRET_TTL_S - 1
    assert token_of(read(cache)) == TOKEN
    clock.now += 1
    assert token_of(read(cache)) == ROTATED
    assert len(core.reads) == 2


@pytest.mark.parametrize("transient", [api_error(429, "Too Many Requests"), api_error(503, "Service Unavailable"),
                                       TimeoutError()])
def test_a_transient_failure_keeps_the_last_good_copy_until_it_is_too_old(
    transient: BaseException, caplog: pytest.LogCaptureFixture,
) -> None:
    core, clock, cache = setup(opted_in_secret(token=TOKEN))
    read(cache)
    core.answers[KEY] = transient

    caplog.set_level(logging.DEBUG)
    clock.now += SECRET_TTL_S
    assert token_of(read(cache)) == TOKEN
    assert "using the copy read 60s ago" in caplog.text
    # ... and the cluster's status says so, not a plain "Loaded".
    assert cache.staleness(*KEY).startswith("re-reading Secret tidb/prom fails (cannot read Secret tidb/prom")
    assert cache.staleness(*KEY).endswith("using the copy read 60s ago")
    # Retried after the (shorter) error TTL, still covered while the copy is young enough.
    clock.now += ERROR_TTL_S
    assert token_of(read(cache)) == TOKEN
    assert len(core.reads) == 3

    clock.now += MAX_STALENESS_S
    with pytest.raises(SecretUnreadable) as caught:
        read(cache)
    assert caught.value.transient
    assert "cannot read Secret tidb/prom" in str(caught.value)
    assert "SECRETVALUE" not in caplog.text


@pytest.mark.parametrize(("answer", "message"), [
    (api_error(404, "Not Found"), "Secret tidb/prom not found"),
    (api_error(403, "Forbidden"), "not allowed to read Secret tidb/prom"),
    (opted_in_secret(labels={}, token=TOKEN), "is not labelled tikvops.io/credentials=true"),
])
def test_authoritative_answers_are_never_masked_by_the_last_good_copy(answer: V1Secret | BaseException,
                                                                       message: str) -> None:
    core, clock, cache = setup(opted_in_secret(token=TOKEN))
    read(cache)
    core.answers[KEY] = answer

    clock.now += SECRET_TTL_S
    with pytest.raises(CredentialsError, match=message) as caught:
        read(cache)
    assert not caught.value.transient


def test_a_failure_is_retried_after_the_error_ttl_so_a_fixed_secret_is_used_soon() -> None:
    core, clock, cache = setup(api_error(404, "Not Found"))
    for _ in range(3):
        with pytest.raises(SecretUnreadable, match="not found"):
            read(cache)
    assert len(core.reads) == 1  # a missing Secret is not asked for every check either

    core.answers[KEY] = opted_in_secret(token=TOKEN)
    clock.now += ERROR_TTL_S
    assert token_of(read(cache)) == TOKEN
    assert len(core.reads) == 2


def test_concurrent_readers_of_one_secret_share_one_get() -> None:
    core, _, cache = setup(opted_in_secret(token=TOKEN), delay=0.05)
    other = ("tidb", "other")
    core.answers[other] = opted_in_secret(token=ROTATED)

    async def many() -> list[V1Secret]:
        return await asyncio.gather(*(cache.read(*KEY) for _ in range(10)), cache.read(*other))

    secrets = asyncio.run(many())

    assert [token_of(s) for s in secrets] == [TOKEN] * 10 + [ROTATED]
    assert sorted(core.reads) == [other, KEY]


def test_two_clusters_naming_one_secret_do_one_get_for_pd_and_prometheus_alike() -> None:
    core, _, cache = setup(opted_in_secret(token=TOKEN), delay=0.05)
    spec = TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"},
                                           "prometheus": {"url": "http://prom:9090", "authSecret": {"name": "prom"}}})

    async def two_clusters() -> None:
        first, second = await asyncio.gather(load_credentials(cache, "tidb", spec),
                                             load_credentials(cache, "tidb", spec))
        assert first == second
        assert first.secrets == ("tidb/prom",)

    asyncio.run(two_clusters())

    assert core.reads == [KEY]


def test_a_cancelled_reader_does_not_cancel_the_read_others_wait_for() -> None:
    core, _, cache = setup(opted_in_secret(token=TOKEN), delay=0.1)

    async def scenario() -> V1Secret:
        leaving = asyncio.ensure_future(cache.read(*KEY))
        staying = asyncio.ensure_future(cache.read(*KEY))
        await asyncio.sleep(0.01)
        leaving.cancel()
        return await staying

    assert token_of(asyncio.run(scenario())) == TOKEN
    assert core.reads == [KEY]


def test_no_value_shows_in_a_repr_or_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    core, clock, cache = setup(opted_in_secret(token=TOKEN))
    read(cache)
    core.answers[KEY] = api_error(429, "Too Many Requests")
    clock.now += SECRET_TTL_S
    read(cache)

    shown = " ".join([repr(cache), str(cache), repr(cache._entries), caplog.text])

    assert "SECRETVALUE" not in shown
    assert "dG9rLVNFQ1JFVFZBTFVF" not in shown  # nor its base64
    assert repr(cache) == "SecretCache(1 Secrets, ttl 60s)"


def test_secrets_nobody_asks_for_any_more_leave_memory() -> None:
    core, clock, cache = setup(opted_in_secret(token=TOKEN))
    core.answers[("tidb", "other")] = opted_in_secret(token=ROTATED)
    read(cache)

    clock.now += MAX_STALENESS_S + 1
    asyncio.run(cache.read("tidb", "other"))

    assert list(cache._entries) == [("tidb", "other")]


def test_credentials_name_the_secrets_in_use_from_an_older_copy() -> None:
    core, clock, cache = setup(opted_in_secret(token=TOKEN))
    spec = TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"}, "prometheus": {
        "url": "http://prom:9090", "authSecret": {"name": "prom"}}})
    assert asyncio.run(load_credentials(cache, "tidb", spec)).stale == ()
    core.answers[KEY] = api_error(429, "Too Many Requests")
    clock.now += SECRET_TTL_S + 5
    credentials = asyncio.run(load_credentials(cache, "tidb", spec))
    assert credentials.prometheus_auth is not None
    assert credentials.stale == ("re-reading Secret tidb/prom fails (cannot read Secret tidb/prom: HTTP 429 Too Many "
                                 "Requests); using the copy read 65s ago",)

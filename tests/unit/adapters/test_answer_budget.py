"""The process-wide budget for big PD answers: one slot at a time, small answers free, a request that waits
past its deadline gets its cluster a clear unknown, and no slot is lost to a cancellation."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp import web

from tests.support.pd_bodies import REFERENCE_STORES
from tests.unit.adapters.local_servers import serving
from tikv_operator.checks import answer_budget, pd_client
from tikv_operator.checks.answer_budget import SMALL_ANSWER_BYTES, Lease, lease, slots_free
from tikv_operator.checks.core.pd_model import PDAnswerError, PDAnswerTooLarge, parse_stores

BIG = SMALL_ANSWER_BYTES + 1
STORES = "/pd/api/v1/stores"


def _stores_body(count: int) -> str:
    entry = REFERENCE_STORES["stores"][0]
    stores = [{**entry, "store": {**entry["store"], "id": n}} for n in range(1, count + 1)]
    return json.dumps({"count": count, "stores": stores})


def test_big_answers_take_the_slot_one_at_a_time_in_the_order_they_asked() -> None:
    held: list[int] = []
    order: list[int] = []

    async def big(number: int) -> None:
        async with lease() as claim:
            await claim.grow(BIG)
            order.append(number)
            held.append(number)
            assert len(held) <= answer_budget.BIG_ANSWER_SLOTS
            await asyncio.sleep(0.01)
            held.remove(number)

    async def scenario() -> int:
        await asyncio.gather(*(big(n) for n in range(5)))
        return slots_free()

    assert asyncio.run(scenario()) == answer_budget.BIG_ANSWER_SLOTS
    assert order == [0, 1, 2, 3, 4]


def test_a_small_answer_reads_while_a_big_one_holds_the_slot() -> None:
    async def scenario() -> bool:
        async with lease() as big:
            await big.grow(BIG)
            small = Lease()
            await asyncio.wait_for(small.grow(SMALL_ANSWER_BYTES), timeout=5)
            return small.held

    assert asyncio.run(scenario()) is False


def test_a_waiter_cancelled_by_its_deadline_takes_no_slot_with_it() -> None:
    async def scenario() -> tuple[bool, int]:
        async with lease() as big:
            await big.grow(BIG)
            claim = Lease()

            async def wait_for_slot() -> None:
                try:
                    async with asyncio.timeout(0.05):
                        await claim.grow(BIG)
                finally:
                    claim.release()

            claim_task = asyncio.ensure_future(wait_for_slot())
            with pytest.raises(TimeoutError):
                await claim_task
        return claim.waiting, slots_free()

    waiting, free = asyncio.run(scenario())
    assert waiting  # what read_stores turns into "waited for memory"
    assert free == answer_budget.BIG_ANSWER_SLOTS


def test_a_parse_whose_caller_gave_up_keeps_the_slot_until_the_parse_ends() -> None:
    release = threading.Event()

    async def scenario() -> tuple[int, int]:
        async def parse_past_deadline() -> None:
            async with asyncio.timeout(0.05), lease() as claim:
                await claim.grow(BIG)
                await claim.run(lambda: release.wait(10))

        with pytest.raises(TimeoutError):
            await parse_past_deadline()
        during = slots_free()  # the worker thread still holds its memory
        release.set()
        for _ in range(500):
            if slots_free():
                break
            await asyncio.sleep(0.01)
        return during, slots_free()

    during, after = asyncio.run(scenario())
    assert (during, after) == (0, answer_budget.BIG_ANSWER_SLOTS)


def test_a_cluster_whose_big_answer_waits_past_its_timeout_is_unknown_and_says_why() -> None:
    body = _stores_body(2000)
    assert len(body) > SMALL_ANSWER_BYTES

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get(STORES, handle)

    async def scenario() -> tuple[str | None, bool]:
        async with serving(app) as url:
            async with lease() as other:  # another cluster's big answer is being read
                await other.grow(BIG)
                waited = await pd_client.read_stores(url, 0.5)
            alone = await pd_client.read_stores(url, 5.0)
        return waited.error, alone.reachable

    error, reachable_alone = asyncio.run(scenario())
    assert error == ("GET /pd/api/v1/stores: a big PD answer waited for memory: "
                     "other clusters' big answers were being read")
    assert reachable_alone


def test_an_answer_listing_more_stores_than_any_cluster_runs_is_too_large() -> None:
    with pytest.raises(PDAnswerTooLarge, match="answer too large: it lists 3 stores, more than 2"):
        parse_stores(_stores_body(3), max_stores=2)
    assert len(parse_stores(_stores_body(2), max_stores=2).stores) == 2
    assert issubclass(PDAnswerTooLarge, PDAnswerError)  # every caller that handles a bad answer handles this


def test_an_answer_of_countless_tiny_values_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pd_client, "MAX_JSON_ELEMENTS", 1000)
    body = ('{"stores": [], "padding": [' + "[]," * 200_000 + "[]]}").encode()
    assert len(body) > pd_client.PARSE_INLINE_MAX_BYTES

    with pytest.raises(PDAnswerTooLarge, match="answer too large: it holds over 1,000 JSON values"):
        asyncio.run(pd_client.parsed_stores(body))

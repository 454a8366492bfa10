"""The soak's hostile PDs (harness/hostile_pd.py), read by the operator's own PD client: one answer the cap
stops, one answer whose numbers are NaN and Infinity."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
from harness.hostile_pd import MIB, HostilePD

from tikv_operator.checks.pd_client import PD_ANSWER_MAX_BYTES, read_stores


def test_a_huge_pd_answers_past_the_operators_cap_and_the_operator_stops_reading_there():
    pd = HostilePD("huge", huge_bytes=PD_ANSWER_MAX_BYTES + 4 * MIB).start()
    try:
        observation = asyncio.run(read_stores(pd.url, 30))
    finally:
        pd.stop()
    assert not observation.reachable
    assert observation.error == f"GET /pd/api/v1/stores: answer too large: it exceeded {PD_ANSWER_MAX_BYTES // MIB} MiB"
    assert pd.requests == 1


def test_a_nan_pd_is_read_with_its_numbers_unknown_not_as_numbers():
    pd = HostilePD("nan").start()
    try:
        observation = asyncio.run(read_stores(pd.url, 10))
        assert httpx.get(f"{pd.url}/pd/api/v1/health", timeout=5).status_code == 404
    finally:
        pd.stop()
    assert observation.reachable, observation.error
    assert [s.id for s in observation.stores] == ["1", "2", "3"]
    for store in observation.stores:
        assert math.isnan(store.slow_score or 0.0)
        assert (store.capacity_bytes, store.available_bytes, store.leader_count) == (None, None, None)


def test_a_hostile_pd_mode_is_one_it_knows():
    with pytest.raises(ValueError, match="unknown hostile PD mode"):
        HostilePD("slow").start()

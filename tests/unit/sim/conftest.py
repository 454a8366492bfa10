"""A simulator on loopback, driven by a hand-moved clock so that minutes of PD time pass instantly."""

from collections.abc import Iterator

import httpx
import pytest

from tikv_sim.clock import ManualClock
from tikv_sim.embedded import SimulatorThread
from tikv_sim.simulator import SimConfig
from tikv_sim.store_model import Timing

# Shorter than PD's defaults so that tests name them explicitly; the transitions are PD's.
TIMING = Timing(heartbeat_interval=10, disconnect_after=20, unhealthy_after=60, down_after=120)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[SimulatorThread]:
    with SimulatorThread(SimConfig(stores=3, timing=TIMING, p99_ms=10), clock=clock) as running:
        yield running


@pytest.fixture
def pd(sim: SimulatorThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sim.pd_url}/pd/api/v1", timeout=5) as client:
        yield client

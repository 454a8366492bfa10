"""One process-wide budget for big PD answers: the memory cap is per process (the chart gives 256 MiB), so the
cost of an answer must be counted against every other cluster's answers, not only against its own cap.

An answer stays small (SMALL_ANSWER_BYTES) for free: a well-behaved cluster is never refused because another
cluster is big. An answer that grows past that needs one of BIG_ANSWER_SLOTS slots, held while it is read and
parsed; they are granted first come first served (asyncio.Semaphore wakes its waiters in order), so one
cluster's big answers cannot starve another's. A request that cannot get a slot within its own deadline ends
as that cluster's unknown (BudgetExhausted), never as memory taken.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

MIB = 1024 * 1024
# PD's /stores answer for a few hundred stores is well under this; answers this small are read and parsed as
# before, whatever other clusters do.
SMALL_ANSWER_BYTES = 1 * MIB
# One 32 MiB answer at a time: read (32 MiB) and parsed (bounded by the PD client's element bound, some tens
# of MiB) it fits beside the operator's own ~100-150 MiB under the chart's 256 MiB; two would not reliably.
BIG_ANSWER_SLOTS = 1

T = TypeVar("T")


class BudgetExhausted(Exception):
    """A big answer's request ran out of time waiting for a slot; str() is the reason, in the docs' words."""

    def __init__(self) -> None:
        super().__init__("a big PD answer waited for memory: other clusters' big answers were being read")


# Per event loop: an asyncio primitive belongs to one loop, and tests and benchmarks run several in turn.
# The operator runs one loop, so this is one budget for the process.
_SEMAPHORES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _semaphore() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    semaphore = _SEMAPHORES.get(loop)
    if semaphore is None:
        semaphore = _SEMAPHORES[loop] = asyncio.Semaphore(BIG_ANSWER_SLOTS)
    return semaphore


def slots_free() -> int:
    """How many big-answer slots are free on the running loop (for tests and diagnostics)."""
    semaphore = _SEMAPHORES.get(asyncio.get_running_loop())
    return BIG_ANSWER_SLOTS if semaphore is None else semaphore._value


class Lease:
    """One request's claim on the budget: free while its answer is small, one slot once it grows."""

    def __init__(self) -> None:
        self.held = False
        self.waiting = False
        self._pending: asyncio.Future[object] | None = None

    async def grow(self, size: int) -> None:
        """The answer is now `size` bytes: take a slot if it just became big (waits, FIFO, for one)."""
        if self.held or size <= SMALL_ANSWER_BYTES:
            return
        self.waiting = True
        await _semaphore().acquire()
        self.waiting = False
        self.held = True

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` in a worker thread. If the caller is cancelled (its deadline), the thread still runs to its
        end and keeps its memory until then: the slot is given back only when it ends, not when the caller
        stops waiting."""
        future = asyncio.get_running_loop().run_in_executor(None, work)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if self.held and not future.done():
                self._pending = future
            raise

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        semaphore = _semaphore()
        pending, self._pending = self._pending, None
        if pending is None:
            semaphore.release()
        else:
            pending.add_done_callback(lambda _: semaphore.release())


@asynccontextmanager
async def lease() -> AsyncIterator[Lease]:
    """A Lease for one request: whatever happens (an error, a timeout, a cancellation) its slot is given back.
    After a timeout, `waiting` tells whether the request was waiting for a slot (BudgetExhausted) rather than
    for PD."""
    claim = Lease()
    try:
        yield claim
    finally:
        claim.release()

"""Reading a process' CPU and memory from /proc, and py-spy's collapsed stacks (pure parsing helpers)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat_cpu(stat: str) -> float:
    """utime + stime of a /proc/PID/stat line, in seconds (threads included)."""
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is the state (stat field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / TICKS


def parse_status_kib(status: str, key: str) -> int:
    """A `Key:   1234 kB` line of /proc/PID/status, in KiB (0 when absent)."""
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class ProcSample:
    at: float  # time.monotonic()
    cpu_s: float
    rss_kib: int


def cpu_cores(samples: list[ProcSample]) -> list[float]:
    """CPU use between consecutive samples, in cores."""
    return [(b.cpu_s - a.cpu_s) / (b.at - a.at) for a, b in itertools.pairwise(samples) if b.at > a.at]


@dataclass
class ProcSampler:
    """Samples a process every `period` seconds in a background thread."""

    pid: int
    period: float = 1.0
    samples: list[ProcSample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> ProcSample | None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        return ProcSample(time.monotonic(), parse_stat_cpu(stat), parse_status_kib(status, "VmRSS"))

    def peak_rss_kib(self) -> int:
        """VmHWM: the highest RSS of the process' whole life."""
        try:
            return parse_status_kib(Path(f"/proc/{self.pid}/status").read_text(), "VmHWM")
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = self.sample()
            if sample is not None:
                self.samples.append(sample)
            self._stop.wait(self.period)

    def start(self) -> ProcSampler:
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[ProcSample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.samples


def _function(frame: str) -> str:
    """`check (tikv_operator/checker.py:70)` -> `check (tikv_operator/checker.py)`: one entry per function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/operator/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


# Where the real work of a stack starts: below the event loop's callback dispatch, or a pool thread's work item.
DISPATCH = ("Handle._run (asyncio/events.py)", "_WorkItem.run (concurrent/futures/thread.py)")


def top_frames(collapsed: str, n: int = 12) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """From py-spy's raw (collapsed) output with --threads: total samples, the top `n` functions by own
    samples (the innermost frame) and by inclusive samples (once per stack), the latter counted below the
    last dispatch frame (the event loop running a callback, a pool thread running a work item), so that
    main(), kopf.run() and the thread bootstrap, on every stack, do not fill the list."""
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";")[1:] if f]  # the first entry names the thread
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        cut = max((i for i, f in enumerate(frames) if f in DISPATCH), default=-1)
        for name in set(frames[cut + 1:]):
            inclusive[name] += count
    return total, own.most_common(n), inclusive.most_common(n)

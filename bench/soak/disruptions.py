"""What the soak does to the platform and the operator: pause a platform process (kube-apiserver,
Prometheus) with SIGSTOP and always SIGCONT it again, and two `--leader-elect` operator replicas, the
leader of which is SIGKILLed or SIGTERMed and replaced, with each replica's memory sampled."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from harness.operator_process import OperatorProcess
from harness.platform import PlatformInfo, platform_command

from bench.common import log
from bench.procstat import parse_status_kib
from bench.soak.ground_truth import Exit, Fault, Outage, Record, RssSample
from bench.stats import parse_samples

# A paused process is resumed by a timer even if the harness never gets to it (an exception, a stuck step).
PAUSE_SAFETY_S = 5.0
HANDOVER_TIMEOUT_S = 60.0


def platform_pid(platform: PlatformInfo, name: str) -> int:
    """The pid `hack/platform up` (or `restart`) recorded for a component (its state.json), checked to be
    alive: ProcessLookupError when it is not."""
    state = json.loads((platform.directory / "state.json").read_text())
    proc = next(p for p in state["procs"] if p["name"] == name)
    pid = int(proc["pid"])
    try:
        ticks = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        raise ProcessLookupError(3, f"{name} (pid {pid}) is not running") from None
    if int(ticks) != int(proc["start_ticks"]):  # the pid was reused by another process
        raise ProcessLookupError(3, f"{name} (pid {pid}) is not running")
    return pid


class Pauses:
    """SIGSTOP / SIGCONT of platform processes, bounded: every pause has a timer that resumes it."""

    def __init__(self, platform: PlatformInfo) -> None:
        self.platform = platform
        self._timers: dict[str, threading.Timer] = {}
        self._pids: dict[str, int] = {}

    def paused(self, name: str) -> bool:
        return name in self._timers

    def pause(self, name: str, seconds: float) -> None:
        pid = self._pids[name] = platform_pid(self.platform, name)  # read again: a crash watch may restart it
        timer = threading.Timer(seconds + PAUSE_SAFETY_S, self.resume, args=(name,))
        timer.daemon = True
        self._timers[name] = timer
        os.kill(pid, signal.SIGSTOP)
        timer.start()

    def resume(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        pid = self._pids.get(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def resume_all(self) -> None:
        for name in list(self._pids):
            self.resume(name)


# A watched platform component -> the fault kind the oracle judges its absence as.
CRASH_KINDS = {"prometheus": "prometheus-down"}


class CrashWatch:
    """A platform process that dies during the soak, which the soak did not stop: it is started again the way
    `hack/platform up` started it (`hack/platform restart`, as a kubelet restarts a crashed container) and
    the time it was gone is recorded as that component being down. Debian's Prometheus 2.42 panics now and
    then in its head-chunk writer ("expected newly cut file to have sequence:offset", prometheus/prometheus
    #10291, #11618): the operator must say prometheus_unreachable then, and the faults it could not see
    are not counted against it."""

    def __init__(self, platform: PlatformInfo, record: Record, first_id: int) -> None:
        self.platform, self.record = platform, record
        self._next_id = first_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="crash-watch", daemon=True)

    def start(self) -> CrashWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for name, kind in CRASH_KINDS.items():
                try:
                    platform_pid(self.platform, name)
                except ProcessLookupError:
                    self._restart(name, kind)

    def _restart(self, name: str, kind: str) -> None:
        gone = time.time()
        fault = Fault(self._next_id, kind, None, None, gone, params={"cause": "crashed"}, requested=gone)
        self._next_id += 1
        self.record.add("faults", fault)
        why = _last_panic(Path(self.platform.directory) / "logs" / f"{name}.log")
        result = platform_command("restart", name, timeout=300)
        fault.off = fault.clearing = time.time()
        what = f"{name} died ({why}); restarted in {fault.off - gone:.1f}s"
        if result.returncode != 0:
            what = f"{name} died ({why}) and did not start again: {result.stderr.strip()[-300:]}"
            self._stop.set()  # down until the end: the oracle counts it so (see Soak.tear_down)
            fault.off = fault.clearing = None
        self.record.notes.append(what[:400])
        log(f"soak: {what}")


def _last_panic(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    return next((line for line in reversed(lines) if line.startswith(("panic:", "fatal error:"))), "exited")[:200]


def leading(process: OperatorProcess) -> bool | None:
    """The replica's own tikv_operator_leader gauge; None when it does not answer."""
    if process.process is None or process.process.poll() is not None:
        return None
    try:
        text = httpx.get(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    return sum(value for _, value in parse_samples(text, "tikv_operator_leader")) == 1.0


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB: its memory now and the most it ever held; (0, 0) when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    return parse_status_kib(status, "VmRSS"), parse_status_kib(status, "VmHWM")


class Replicas:
    """Two operator replicas; a signalled one is replaced after a delay, in a thread of its own."""

    def __init__(self, platform: PlatformInfo, namespace: str, log_dir: Path, record: Record,
                 alertmanager_url: str, interval: str) -> None:
        self.platform, self.namespace, self.log_dir, self.record = platform, namespace, log_dir, record
        self.alertmanager_url, self.interval = alertmanager_url, interval
        self.processes: dict[int, OperatorProcess] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="rss", daemon=True)
        self._ended: set[int] = set()  # replicas whose exit is recorded (signalled, stopped or crashed)

    def launch(self) -> OperatorProcess:
        with self._lock:
            number = len(self.processes) + 1
            process = OperatorProcess(
                self.platform.env(), (self.namespace,), self.log_dir / f"operator-{number}.log",
                default_interval=self.interval,
                extra_args=("--leader-elect", "--leader-election-namespace", self.namespace,
                            "--alertmanager-url", self.alertmanager_url))
            self.processes[number] = process
        self.record.replicas[number] = [time.time(), 0.0]
        process.start()
        return process

    def start(self) -> None:
        self.launch()
        self.launch()
        self._sampler.start()

    def live(self) -> dict[int, OperatorProcess]:
        with self._lock:
            return {n: p for n, p in self.processes.items() if p.process is not None and p.process.poll() is None}

    def leader(self) -> tuple[int, OperatorProcess] | None:
        for number, process in self.live().items():
            if leading(process):
                return number, process
        return None

    def disrupt(self, kind: str, restart_after: float) -> str:
        """SIGKILL or SIGTERM the leader (the standby when none leads); its replacement starts later."""
        found = self.leader() or next(iter(self.live().items()), None)
        if found is None:
            return "no live replica"
        number, process = found
        assert process.process is not None
        started = time.time()
        with self._lock:
            self._ended.add(number)
        self.record.add("exits", Exit(number, started, None, kind))
        os.kill(process.process.pid, signal.SIGKILL if kind == "operator-sigkill" else signal.SIGTERM)
        thread = threading.Thread(target=self._handover, args=(kind, number, process, started, restart_after),
                                  name=f"handover-{number}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return f"replica {number} (pid {process.process.pid})"

    def _handover(self, kind: str, number: int, process: OperatorProcess, started: float, restart_after: float
                  ) -> None:
        assert process.process is not None
        with contextlib.suppress(Exception):
            process.process.wait(30)
        self.record.replicas[number][1] = time.time()
        deadline = time.monotonic() + HANDOVER_TIMEOUT_S
        restart_at = time.monotonic() + restart_after
        replaced = False
        end: float | None = None
        while time.monotonic() < deadline and not self._stop.is_set():
            if not replaced and time.monotonic() >= restart_at:
                replaced = True
                try:
                    self.launch()
                except AssertionError as error:
                    log(f"soak: restarting a replica failed: {str(error)[:300]}")
            if end is None and self.leader() is not None:
                end = time.time()
            if end is not None and replaced:
                break
            time.sleep(0.25)
        self.record.add("outages", Outage(kind, started, end or time.time()))

    def _sample(self) -> None:
        while not self._stop.wait(5.0):
            for number, process in self.live().items():
                assert process.process is not None
                kib, peak = rss_kib(process.process.pid)
                if kib:
                    self.record.add("rss", RssSample(number, time.time(), kib, bool(leading(process)), peak))
            self._note_crashes()

    def _note_crashes(self) -> None:
        """A replica that exited although the soak neither signalled nor stopped it: a crash."""
        with self._lock:
            ended = [(n, p) for n, p in self.processes.items() if n not in self._ended
                     and p.process is not None and p.process.poll() is not None]
            self._ended.update(n for n, _ in ended)
        for number, process in ended:
            assert process.process is not None
            self.record.add("exits", Exit(number, time.time(), process.process.returncode, "unexpected"))
            log(f"soak: replica {number} exited {process.process.returncode} on its own")

    def stop(self, on_each: Callable[[int, OperatorProcess], None] | None = None) -> None:
        self._stop.set()
        self._sampler.join(10)
        for thread in self._threads:
            thread.join(40)
        self._note_crashes()
        for number, process in self.live().items():
            code: int | None = None
            try:
                code = process.stop(timeout=20)
            except AssertionError as error:
                log(f"soak: replica {number} ignored SIGTERM: {str(error)[:200]}")
            with self._lock:
                self._ended.add(number)
            self.record.add("exits", Exit(number, time.time(), code, "teardown"))
            self.record.replicas[number][1] = time.time()
            if on_each is not None:
                on_each(number, process)

"""Reading /proc figures and py-spy stacks for the scale benchmark."""

import os

import pytest
from bench.procstat import TICKS, ProcSample, ProcSampler, cpu_cores, parse_stat_cpu, parse_status_kib, top_frames


def test_parse_stat_cpu_survives_spaces_and_parentheses_in_the_name():
    stat = "1234 (tikv (op) x) S 1 2 3 4 5 6 7 8 9 10 " + f"{3 * TICKS} {TICKS} 0 0 20 0 9 0 100 1 2"
    assert parse_stat_cpu(stat) == pytest.approx(4.0)


def test_parse_status_kib():
    status = "Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"
    assert parse_status_kib(status, "VmRSS") == 1024
    assert parse_status_kib(status, "VmHWM") == 2048
    assert parse_status_kib(status, "VmSwap") == 0


def test_cpu_cores_between_samples():
    samples = [ProcSample(0.0, 1.0, 10), ProcSample(2.0, 2.0, 10), ProcSample(3.0, 3.5, 10)]
    assert cpu_cores(samples) == [0.5, 1.5]


def test_the_sampler_reads_this_process():
    sample = ProcSampler(os.getpid()).sample()
    assert sample is not None
    assert sample.rss_kib > 0


def test_top_frames_self_and_inclusive_below_the_dispatch():
    collapsed = (
        "thread (0x1);main (app.py:1);Handle._run (asyncio/events.py:80);check (tikv_operator/checker.py:70);"
        "ctx (ssl.py:5) 6\n"
        "thread (0x1);main (app.py:1);Handle._run (asyncio/events.py:80);check (tikv_operator/checker.py:71);"
        "send (x/site-packages/httpx/a.py:3) 3\n"
        "thread (0x2);boot (threading.py:1);_WorkItem.run (concurrent/futures/thread.py:58);query (q.py:2) 1\n"
    )
    total, own, inclusive = top_frames(collapsed)
    assert total == 10
    assert own[0] == ("ctx (ssl.py)", 6)
    assert ("send (httpx/a.py)", 3) in own
    assert inclusive[0] == ("check (tikv_operator/checker.py)", 9)
    names = {name for name, _ in inclusive}
    assert "query (q.py)" in names
    assert not names & {"main (app.py)", "boot (threading.py)", "Handle._run (asyncio/events.py)"}

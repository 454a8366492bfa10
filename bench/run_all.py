"""`make bench` / `.venv/bin/python -m bench.run_all`: every benchmark, one after another, on
the platform of TIKV_PLATFORM_DIR (default .platform-bench: brought up if needed and down at the end if
this run brought it up). Each benchmark prints its section and rewrites bench/RESULTS.md.

--quick runs small versions (a smoke test of the machinery, not figures to publish)."""

from __future__ import annotations

import argparse
import signal
import time
import traceback
from collections.abc import Callable

from bench import api_writes, check_cost, delivery_cost, detection_latency, failover, query_cost, scale
from bench.common import log, render_results, write_section
from bench.runner import on_platform

BENCHMARKS: dict[str, Callable[[list[str]], str]] = {
    "check_cost": check_cost.main,
    "detection_latency": detection_latency.main,
    "api_writes": api_writes.main,
    "scale": scale.main,
    "query_cost": query_cost.main,
    "delivery_cost": delivery_cost.main,
    "failover": failover.main,
}
QUICK: dict[str, list[str]] = {
    "check_cost": ["--sizes", "3,30", "--checks", "3"],
    "detection_latency": ["--faults", "2"],
    "api_writes": ["--clusters", "5", "--interval", "2", "--refresh", "10", "--window", "25"],
    "scale": ["--sizes", "20", "--window", "20", "--warmup", "5", "--py-spy", ""],
    "query_cost": ["--stores", "5", "--rounds", "2"],
    "delivery_cost": ["--clusters", "10", "--rounds", "2"],
    "failover": ["--handovers", "2"],
}


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through every benchmark's clean-up


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmark names")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks {', '.join(unknown)}: use {', '.join(BENCHMARKS)}")
    failed = 0
    try:
        with on_platform():  # each benchmark finds it running, so only this run brings it down
            for name in names:
                started = time.monotonic()
                log(f"=== {name}")
                try:
                    BENCHMARKS[name](QUICK[name] if args.quick else [])
                except Exception:
                    failed += 1
                    write_section(name, f"## {name}\n\nFAILED in this run:\n\n```\n"
                                        f"{traceback.format_exc()[-3000:]}```")
                    log(f"{name} failed:\n{traceback.format_exc()}")
                log(f"=== {name} took {time.monotonic() - started:.0f}s")
    finally:
        render_results()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

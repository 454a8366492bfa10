"""`python -m bench.soak`: the fault soak (docs/development.md). `make soak DURATION=30m SEED=19 CLUSTERS=20`.

Runs on the platform of TIKV_PLATFORM_DIR (default .platform-soak: brought up if it is not running, and down
again at the end if this run brought it up), writes bench/results/soak.md and bench/RESULTS.md (or --out),
and exits 1 when the oracle found a violation. `--check RECORD` judges a saved record again, offline."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.common import REPO, log, write_section
from bench.runner import benchmark
from bench.soak import ground_truth
from bench.soak.oracle import GUARANTEES, judge
from bench.soak.run import Options, soak
from bench.soak.tenants import HOSTILE_KINDS
from tikv_operator.model.durations import parse_duration


def seconds(text: str) -> float:
    """"30m", "3m30s", "180s" or a number of seconds."""
    try:
        return float(text)
    except ValueError:
        return parse_duration(text).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=seconds, default=1800.0, help="30m, 180s, ... (default 30m)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None,
                        help="write the section here instead of bench/results/soak.md and bench/RESULTS.md")
    parser.add_argument("--hostile", default=",".join(HOSTILE_KINDS),
                        help=f"hostile tenants beside the clusters, comma-separated ({', '.join(HOSTILE_KINDS)}; "
                        "default all; 'none' for none)")
    parser.add_argument("--check", type=Path, default=None, help="judge a saved record.json again and exit")
    args = parser.parse_args(argv)
    hostile = tuple(k for k in args.hostile.split(",") if k and k != "none")
    if unknown := set(hostile) - set(HOSTILE_KINDS):
        parser.error(f"unknown hostile tenant kind(s): {', '.join(sorted(unknown))}")
    if args.check is not None:
        record, versions = ground_truth.load(args.check)
        verdict = judge(record, versions)
        for guarantee in GUARANTEES:
            print(f"{guarantee:32} checks {verdict.checks[guarantee]:6}  violations {verdict.count(guarantee)}")
        for violation in verdict.violations:
            print(f"- {violation.guarantee}: {violation.detail}")
        return 1 if verdict.violations else 0
    os.environ.setdefault("TIKV_PLATFORM_DIR", str(REPO / ".platform-soak"))
    with benchmark("soak", argv if argv is not None else sys.argv[1:]) as session:
        outcome = soak(session.platform.info,
                       Options(duration_s=args.duration, seed=args.seed, clusters=args.clusters, hostile=hostile))
    from bench.soak.report import render

    markdown = render(outcome, session.started, session.argv)
    print(markdown)
    if args.out is not None:
        args.out.write_text(markdown + "\n")
    else:
        log(f"soak: wrote {write_section('soak', markdown)}")
    return 1 if outcome.verdict.violations else 0


if __name__ == "__main__":
    sys.exit(main())

"""`make demo` end to end: every step of the story appears, and nothing it started is left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from harness.platform import REPO, PlatformInfo

STEPS = [
    "Starting the local platform",
    "Starting a simulated TiKV cluster",
    "Starting the operator",
    "1. Routine operations: a PD leader change, then a rolling restart",
    "2. Store 2 goes down and stays down",
    "3. An SRE holds the ticket",
    "4. Store 2 comes back: the held ticket stays open",
    "5. Unhold: the ticket auto-resolves",
    "6. Store 1's disk fills to 85 %: low_disk_space opens",
    "7. An SRE acknowledges it: Alertmanager silences its pages",
    "8. A person resolves it by hand: the silence expires",
    "Story complete",
    "demo: stopped the operator, tikv-sim and the platform",
]


def processes_mentioning(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_make_demo_tells_the_whole_story_and_leaves_nothing_running(platform: PlatformInfo, tmp_path: Path) -> None:
    # The demo's own platform, so it does not disturb (or depend on) the one the other tests use;
    # platform binaries are shared through the per-machine cache that make test already filled.
    demo_dir = tmp_path / "demo-platform"
    env = {k: v for k, v in os.environ.items() if k != "KEEP"} | {"TIKV_PLATFORM_DIR": str(demo_dir)}
    result = subprocess.run([sys.executable, str(REPO / "hack" / "demo.py")], env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    positions = [output.find(step) for step in STEPS]
    assert all(p >= 0 for p in positions), [s for s, p in zip(STEPS, positions, strict=True) if p < 0]
    assert positions == sorted(positions), "the steps came out of order"
    routine = output[output.find("1. Routine operations"):output.find("2. Store 2 goes down")]
    assert "No resources found in tikv-demo namespace." in routine  # no ticket for a restart or an election
    story = output[output.find("2. Store 2 goes down"):]
    down_step = story.split("3. An SRE holds")[0]
    rows = [line.split() for line in down_step.splitlines() if line.startswith("basic-store-down-s2-1 ")]
    assert [row[2] for row in rows] == ["warning", "critical"], rows  # opened as a warning, then escalated
    held_step = story.split("4. Store 2 comes back")[1].split("5. Unhold")[0]
    row = next(line.split() for line in held_step.splitlines() if line.startswith("basic-store-down-s2-1 "))
    assert (row[1], row[7]) == ("Open", "true"), row  # phase and Held after the store came back
    unheld_step = story.split("5. Unhold")[1].split("6. Store 1")[0]
    row = next(line.split() for line in unheld_step.splitlines() if line.startswith("basic-store-down-s2-1 "))
    assert (row[1], row[7]) == ("Resolved", "false"), row
    assert "basic-low-disk-space-s1-1   Open" in story
    # The page arrives (warning, then critical) and leaves; the acknowledgement is a silence that expires.
    pages = [line for line in down_step.splitlines() if line.startswith("PAGE firing ")]
    assert [line.split()[1:4] for line in pages] == [["firing", "store_down", "severity=warning"],
                                                     ["firing", "store_down", "severity=critical"]], pages
    assert "PAGE resolved store_down severity=critical ticket=basic-store-down-s2-1" in unheld_step
    ack_step = story.split("7. An SRE acknowledges")[1].split("8. A person resolves")[0]
    assert "tikv-operator" in ack_step  # amtool's silence table: Created By
    assert "ticket=\"basic-low-disk-space-s1-1\"" in ack_step
    resolved_step = story.split("8. A person resolves")[1]
    assert "ticket=\"basic-low-disk-space-s1-1\"" in resolved_step.split("--expired")[1]
    assert re.search(r"^  Resolution:\s+manual$", story, re.MULTILINE), story
    assert "TicketResolvedManually" in story
    assert "Traceback" not in output
    assert processes_mentioning(str(demo_dir)) == []
    assert processes_mentioning("run --namespace tikv-demo") == []
    assert processes_mentioning("tikv-sim run --stores 3 --file-sd " + str(demo_dir)) == []

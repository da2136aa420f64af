#!/usr/bin/env python
"""Synth speed and memory of one account's stack: our lazy bindings import vs the naive import.

Each variant runs in a fresh process (the cdktf runtime is per process), once to warm the
page cache and then ``--runs`` times; the figure is the best warm run. Peak memory is the
Python process's high-water mark plus its jsii node child's (both read from /proc).

    .venv/bin/python benchmarks/synth_speed.py [--stack sandbox] [--runs 2]

Goal (issue 3): warm synth <= 4 s and <= 800 MB peak; the naive import takes 12-13 s, ~1.2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS, GOAL_MB = 4.0, 800

CHILD = r"""
import json, os, sys, time
start = time.perf_counter()
if sys.argv[1] == "naive":
    import cdktf_cdktf_provider_aws  # the package __init__: every resource module
from stacks.config import load_config
from stacks.synth import synth_config
from pathlib import Path
synth_config(load_config(), Path(sys.argv[3]), only=sys.argv[2])
elapsed = time.perf_counter() - start

def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0

def descendants(root):
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == pid]
        found += kids
        frontier += kids
    return found

tree = [os.getpid(), *descendants(os.getpid())]
peak_mb = sum(status_kb(pid, "VmHWM") for pid in tree) / 1024
cpu = sum(cpu_seconds(pid) for pid in tree)
print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "peak_mb": peak_mb}))
"""


def run_once(variant: str, stack: str) -> dict[str, float]:
    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20,22")
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as outdir:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, variant, stack, outdir],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(variant: str, stack: str, runs: int) -> dict[str, float]:
    run_once(variant, stack)  # warm the page cache
    results = [run_once(variant, stack) for _ in range(runs)]
    best = min(results, key=lambda r: r["seconds"])
    return best | {"peak_mb": max(r["peak_mb"] for r in results)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default="security-prod", help="stack to synthesize (default: the largest)")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    ours = measure("lazy", args.stack, args.runs)
    naive = measure("naive", args.stack, args.runs)
    print(f"warm synth of stack {args.stack!r} (best of {args.runs}, {os.cpu_count()} cores)")
    print(f"load average {os.getloadavg()[0]:.1f}: wall time suffers under load, CPU time much less")
    print(f"{'variant':<36}{'wall s':>8}{'CPU s':>8}{'peak MB':>9}")
    for label, r in (
        ("lazy bindings (stacks/bindings.py)", ours),
        ("naive: import the whole package", naive),
    ):
        print(f"{label:<36}{r['seconds']:>8.2f}{r['cpu_seconds']:>8.2f}{r['peak_mb']:>9.0f}")
    print(f"{'goal':<36}{GOAL_SECONDS:>8.2f}{'':>8}{GOAL_MB:>9}")
    speed_up, memory_ratio = naive["seconds"] / ours["seconds"], naive["peak_mb"] / ours["peak_mb"]
    print(f"speed-up x{speed_up:.1f}, memory /{memory_ratio:.1f}")
    met = ours["seconds"] <= GOAL_SECONDS and ours["peak_mb"] <= GOAL_MB
    print("goal met" if met else "goal NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())

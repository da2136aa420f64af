"""Time ``detect`` against ``zcat`` and an equivalent ``jq`` filter on the same CloudTrail archive.

    python -m benchmarks.detect_throughput              # 1M events (archive cached in benchmarks/out/)
    python -m benchmarks.detect_throughput --events 200000 --repeat 3
    python -m benchmarks.detect_throughput --events 150000 --profile dense --profile data-events
    python -m benchmarks.detect_throughput --events 300000 --baseline /tmp/before   # before/after

Profiles (``--profile``, repeatable; default all three, each in its own table):

* ``sparse``: a few files hold one to three watched calls (the management trail of a quiet account);
* ``dense``: about 1% watched calls in every file, so every file is a candidate;
* ``data-events``: dense plus about 30% S3 data events (GetObject/PutObject), a few with ACL headers.

Each tool runs as a subprocess over the same gzipped files with its output going to a
file or /dev/null. The table gives wall seconds (best of ``--repeat``), events/s, CPU
seconds (user + sys of the process tree) and the ratio of detect's speed to each
baseline. Goals (issue 12): detect/zcat >= 1.5 on sparse and >= 1.0 on dense and data-events,
detect/jq >= 8.0 everywhere, peak memory <= 128 MiB. Peak memory is sampled from /proc every
20 ms over the whole process tree (main process plus workers) as the sum of proportional set
sizes (PSS), so pages the forked workers share with the main process count once.

Wall times depend on what else the machine runs; the CPU column is steadier.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from benchmarks.gen_archive import PROFILES, generate
from handlers.detection.rules import REGISTRY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What a user would write: every record whose (eventSource, eventName) a rule reads.
JQ_FILTER = (
    '.Records[] | select((.eventSource + ":" + .eventName) | IN('
    + ", ".join(f'"{source}:{name}"' for source, name in sorted(REGISTRY))
    + "))"
)

NAIVE = """
import gzip, json, sys
from handlers.detection.classify import classify
for path in open(sys.argv[1]).read().splitlines():
    with gzip.open(path) as f:
        for record in json.load(f)["Records"]:
            for finding in classify(record):
                print(json.dumps(finding))
"""


def _memory_kib(pid: int) -> int:
    """``pid``'s proportional set size (PSS), in KiB: the pages it shares with its forked workers
    are split between them, so the tree's sum is the memory it really holds (a sum of RSS counts
    every shared page once per process). VmRSS where smaps_rollup is unreadable."""
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(path) as lines:
                for line in lines:
                    if line.startswith(key):
                        return int(line.split()[1])
        except PermissionError:
            continue
    return 0


def _tree_rss_kib(root: int) -> int:
    """Memory of ``root`` and all its descendants (:func:`_memory_kib`), in KiB (0 once gone)."""
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            total += _memory_kib(pid)
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    stack.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


class Run:
    """One timed run of a shell pipeline or command."""

    def __init__(
        self, args: Sequence[str] | str, stdout_path: str = os.devnull, shell: bool = False, cwd: str = ROOT
    ) -> None:
        self.args = args
        self.cwd = cwd
        self.stdout_path = stdout_path
        self.shell = shell
        self.wall = 0.0
        self.cpu = 0.0
        self.peak_rss_kib = 0
        self.stderr = ""
        self.returncode = 0

    def __call__(self) -> Run:
        before = os.times()
        with open(self.stdout_path, "w") as out:
            started = time.perf_counter()
            process = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.PIPE, text=True, shell=self.shell, cwd=self.cwd
            )
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    self.peak_rss_kib = max(self.peak_rss_kib, _tree_rss_kib(process.pid))
                    stop.wait(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            _, self.stderr = process.communicate()
            self.wall = time.perf_counter() - started
            stop.set()
            sampler.join()
        after = os.times()
        self.cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        self.returncode = process.returncode
        return self


def _findings(path: str) -> list[str]:
    """The findings in a JSON-lines file, each in one canonical spelling, sorted."""
    with open(path) as lines:
        return sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines if line.strip())


def best_of(repeat: int, make: Run) -> Run:
    """The fastest of ``repeat`` runs (the least disturbed by the rest of the machine)."""
    runs = []
    for _ in range(repeat):
        fresh = Run(make.args, make.stdout_path, make.shell, make.cwd)
        runs.append(fresh())
        if fresh.returncode != 0:
            sys.exit(f"{fresh.args!r} failed ({fresh.returncode}): {fresh.stderr.strip()[-2000:]}")
    return min(runs, key=lambda run: run.wall)


def print_table(results: dict[str, Run], baseline: str, count: int, unit: str, width: int) -> None:
    """One row per tool: wall time, ``unit``s per second over ``count``, CPU, peak RSS, and how many
    times slower than ``baseline`` it is."""
    base = results[baseline]
    columns = f"{'wall s':>9}{unit + '/s':>12}{'CPU s':>9}{'peak MiB':>14}{baseline + ' is':>12}"
    print(f"\n{'tool':<{width}}{columns}")
    for name, run in results.items():
        ratio = run.wall / base.wall
        print(
            f"{name:<{width}}{run.wall:>9.2f}{count / run.wall:>12,.0f}{run.cpu:>9.2f}"
            f"{run.peak_rss_kib / 1024:>14.0f}{'' if name == baseline else f'{ratio:.2f}x':>12}"
        )


def archive_parser(description: str, events: int, shown: str, repeat_help: str) -> argparse.ArgumentParser:
    """The options every archive benchmark takes: its size (``shown``: the default as help says it),
    seed, output folder and repeats."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--events", type=int, default=events, help=f"events in the archive (default {shown})")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "out"))
    parser.add_argument("--repeat", type=int, default=1, help=repeat_help)
    return parser


def _detect_module(checkout: str) -> str:
    """The detect CLI's module in ``checkout`` (it moved to handlers/offline/ with issue 13)."""
    offline = os.path.join(checkout, "handlers", "offline", "detect_cli.py")
    return "handlers.offline.detect_cli" if os.path.exists(offline) else "handlers" + ".detect_cli"


ZCAT_GOAL = {"sparse": 1.5, "dense": 1.0, "data-events": 1.0}
JQ_GOAL = 8.0


def run_profile(args: argparse.Namespace, profile: str) -> int:
    """Generate (or reuse) the archive for ``profile``, time every tool on it, print one table."""
    suffix = "" if profile == "sparse" else f"-{profile}"
    archive = os.path.join(args.out, f"archive-{args.events}-{args.seed}{suffix}")
    print(f"generating or reusing {archive} ...", file=sys.stderr)
    manifest = generate(archive, args.events, args.seed, profile=profile)
    files = [os.path.join(archive, path) for path in manifest["files"]]
    events = manifest["records"]
    mib = manifest["decompressed_bytes"] / 2**20
    # The file list goes through xargs: a 1M-event archive's paths overflow one command line.
    list_path = os.path.join(args.out, f"files-{args.events}-{args.seed}{suffix}.lst")
    with open(list_path, "w") as listing:
        listing.write("\n".join(files))
    cat = f"xargs -d '\\n' zcat < '{list_path}'"
    findings_path = os.path.join(args.out, f"detect-findings{suffix}.jsonl")

    tools: list[tuple[str, Run]] = [
        ("zcat", Run(cat, shell=True)),
        ("jq", Run(f"{cat} | jq -c '{JQ_FILTER}'", shell=True)),
    ]
    naive_path = os.path.join(args.out, f"naive-findings{suffix}.jsonl")
    if args.naive:
        tools.append(("python json.load", Run([sys.executable, "-c", NAIVE, list_path], naive_path)))
    if args.baseline:  # another checkout's detect (e.g. main before a change), timed beside this one
        module = _detect_module(args.baseline)
        tools.append(("detect (baseline)", Run([sys.executable, "-m", module, archive], cwd=args.baseline)))
    tools.append(("detect", Run([sys.executable, "-m", _detect_module(ROOT), archive], findings_path)))
    results = {name: best_of(args.repeat, run) for name, run in tools}

    detect = results["detect"]
    with open(findings_path) as lines:
        findings = sum(1 for _ in lines)
    match = re.search(r"watched (\d+)", detect.stderr)
    print(
        f"\n[{profile}] archive: {events:,} events in {len(files)} gzipped files, "
        f"{mib:,.0f} MiB decompressed, "
        f"{manifest['watched']} watched management calls in {manifest['files_with_watched']} files; "
        f"machine: {os.cpu_count()} cores"
    )
    print(f"detect: {findings} findings, watched records seen {match.group(1) if match else '?'}")
    print_table(results, "detect", events, "events", 18)
    zcat_ratio = results["zcat"].wall / detect.wall
    jq_ratio = results["jq"].wall / detect.wall
    print(
        f"\n[{profile}] detect/zcat {zcat_ratio:.2f}x (goal >= {ZCAT_GOAL[profile]}), "
        f"detect/jq {jq_ratio:.2f}x (goal >= {JQ_GOAL}), "
        f"detect peak memory {detect.peak_rss_kib / 1024:.0f} MiB (goal <= 128)"
    )
    # Same findings as the naive full parse (every record through classify), or the speed means nothing.
    if args.naive and _findings(naive_path) != _findings(findings_path):
        print(f"error: [{profile}] findings differ from the full parse's: {naive_path}", file=sys.stderr)
        return 1
    if args.naive:
        print(f"[{profile}] findings identical to the full json.load parse: {findings}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = archive_parser(__doc__.split("\n\n")[0], 1_000_000, "1M", "runs per tool; the fastest counts")
    parser.add_argument(
        "--profile",
        action="append",
        choices=PROFILES,
        help="archive shape; repeat for several (default: all three, one table each)",
    )
    parser.add_argument(
        "--naive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time a naive json.load loop (default: yes)",
    )
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also time the detect of another checkout (git worktree add /tmp/before <rev>)",
    )
    args = parser.parse_args(argv)
    status = 0
    for profile in dict.fromkeys(args.profile or PROFILES):
        status = max(status, run_profile(args, profile))
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Time ``detect s3://…`` (a moto server on 127.0.0.1) beside ``detect`` on the same files read locally.

    python -m benchmarks.detect_sources_throughput                   # 200k events, cached archive
    python -m benchmarks.detect_sources_throughput --events 1000000 --s3-jobs 4,16 --repeat 3

The archive is :mod:`benchmarks.gen_archive`'s (CloudTrail's key layout, gzipped files). It is
uploaded to a moto server started as a subprocess on 127.0.0.1 (stopped by its PID at the end),
then ``detect`` runs as a subprocess over the local directory and over ``s3://bucket/`` with
``--since`` covering the archive's days. The findings must be identical, line for line.

What this measures: detect's S3 path (listing, GetObject streaming, the same per-file reading)
against a local S3 on loopback. moto is one Python process answering every GetObject, so the S3
figure is a floor set partly by moto's own CPU; real S3 adds network latency per object
(tens of ms), which more ``--jobs`` hide because the workers mostly wait.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

from benchmarks.detect_throughput import Run, archive_parser, best_of
from benchmarks.gen_archive import generate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "bench-trail-logs"
REGION = "us-east-1"
KEY = "testing"  # moto accepts any credentials; these never leave the machine


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_moto(port: int, log_path: str) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"moto exited with {server.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=1):
                return server
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    server.terminate()
    sys.exit(f"moto did not answer on 127.0.0.1:{port}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def _upload(endpoint: str, archive: str, files: list[str]) -> float:
    """Put every file under its relative path as key; returns the seconds it took."""
    s3 = boto3.session.Session(aws_access_key_id=KEY, aws_secret_access_key=KEY).client(
        "s3", region_name=REGION, endpoint_url=endpoint, config=Config(max_pool_connections=16)
    )
    s3.create_bucket(Bucket=BUCKET)
    started = time.perf_counter()

    def put(relative: str) -> None:
        with open(os.path.join(archive, relative), "rb") as body:
            s3.put_object(Bucket=BUCKET, Key=relative, Body=body.read())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, files))
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = archive_parser(__doc__.split("\n\n")[0], 200_000, "200k", "runs per case; the fastest counts")
    parser.add_argument(
        "--s3-jobs", default="", help="comma-separated --jobs values for the s3:// runs (default: detect's)"
    )
    args = parser.parse_args(argv)

    archive = os.path.join(args.out, f"archive-{args.events}-{args.seed}")
    print(f"generating or reusing {archive} ...", file=sys.stderr)
    manifest = generate(archive, args.events, args.seed)
    files: list[str] = manifest["files"]
    events = manifest["records"]
    days = sorted({path.split("/CloudTrail/")[1].split("/", 1)[1].rsplit("/", 1)[0] for path in files})
    since, until = days[0].replace("/", "-"), days[-1].replace("/", "-")

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = _start_moto(port, os.path.join(args.out, "moto-detect-sources.log"))
    try:
        upload_s = _upload(endpoint, archive, files)
        print(f"uploaded {len(files)} objects in {upload_s:.1f} s", file=sys.stderr)
        # Only the loopback emulator is reachable: endpoint and fake credentials for the subprocess.
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": KEY,
            "AWS_DEFAULT_REGION": REGION,
        }
        env.pop("AWS_PROFILE", None)
        detect = [sys.executable, "-m", "handlers.offline.detect_cli"]
        local_out = os.path.join(args.out, "detect-local.jsonl")
        cases: list[tuple[str, Run, str]] = [("local files", Run([*detect, archive], local_out), local_out)]
        s3_args = [*detect, f"s3://{BUCKET}/", "--since", since, "--until", until]
        for jobs in [j for j in args.s3_jobs.split(",") if j.strip()] or [""]:
            out = os.path.join(args.out, f"detect-s3-{jobs or 'default'}.jsonl")
            label = f"s3:// --jobs {jobs}" if jobs else "s3:// (default jobs)"
            cases.append((label, Run([*s3_args, *(["--jobs", jobs] if jobs else [])], out), out))
        results = []
        saved_env = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)  # Run starts its subprocess with this process's environment
        try:
            for label, run, out in cases:
                results.append((label, best_of(args.repeat, run), out))
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
    finally:
        _stop(server)

    with open(local_out) as handle:
        expected = handle.read()
    mib = manifest["decompressed_bytes"] / 2**20
    print(
        f"\narchive: {events:,} events in {len(files)} gzipped objects ({mib:,.0f} MiB decompressed), "
        f"days {since} to {until}; machine: {os.cpu_count()} cores; S3: moto server on 127.0.0.1"
    )
    print(f"\n{'case':<24}{'wall s':>9}{'events/s':>12}{'objects/s':>11}{'CPU s':>9}{'peak MiB':>14}")
    same = True
    for label, run, out in results:
        with open(out) as handle:
            same = same and handle.read() == expected
        print(
            f"{label:<24}{run.wall:>9.2f}{events / run.wall:>12,.0f}{len(files) / run.wall:>11,.0f}"
            f"{run.cpu:>9.2f}{run.peak_rss_kib / 1024:>14.0f}"
        )
    print(
        f"\nfindings identical to the local run: {'yes' if same else 'NO'} ({expected.count(chr(10))} lines)"
    )
    summary = {label: round(events / run.wall) for label, run, _ in results}
    print(json.dumps({"events": events, "objects": len(files), "events_per_s": summary}), file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

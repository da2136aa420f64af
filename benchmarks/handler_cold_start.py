"""Response Lambda: import cost (cold start) and per-event time against moto.

Run:  .venv/bin/python benchmarks/handler_cold_start.py [--runs 7] [--events 200]

1. Import: ``python -X importtime`` of ``handlers.response.function`` vs of ``boto3`` alone, in
   fresh interpreters, median of ``--runs``. Budget (issue 4): the handler module adds
   <= 50 ms beyond boto3. Measured twice: without bytecode cache (this machine sets
   PYTHONDONTWRITEBYTECODE=1, and a Lambda zip without .pyc files behaves the same way:
   /var/task is read-only) and with a warm bytecode cache.
2. Per event: p50/p95 of ``respond()`` for one public-policy event (mode off: seven
   confirmation reads, one idempotency put, one publish to a topic without
   subscribers, one update), in-process against
   moto, with sequential vs concurrent reads; and again with 20 ms of simulated network
   latency per AWS call, which is where concurrency pays (moto itself is CPU-bound).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MS = 50.0
SIMULATED_LATENCY_S = 0.020


def import_times(code: str, env: dict[str, str], python: str = sys.executable) -> dict[str, float]:
    """Cumulative import time (ms) of each top-level import ``code`` makes, in a fresh interpreter."""
    result = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        cwd=env.get("BENCH_CWD", ROOT),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    times: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        if not name.startswith("  "):  # " name" is top level; nested imports are indented further
            times[name.strip()] = int(cumulative.strip()) / 1000
    return times


def import_table(runs: int) -> list[tuple[str, float, float]]:
    """Per variant: median ms of ``import boto3`` and of ``import handlers.response.function`` after boto3."""
    rows = []
    base_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as cache:
        variants = {
            "no bytecode cache": {**base_env, "PYTHONDONTWRITEBYTECODE": "1"},
            "warm bytecode cache": {
                **{k: v for k, v in base_env.items() if k != "PYTHONDONTWRITEBYTECODE"},
                "PYTHONPYCACHEPREFIX": cache,
            },
        }
        for label, env in variants.items():
            if "PYTHONPYCACHEPREFIX" in env:
                import_times("import handlers.response.function", env)  # fill the cache
            boto, added = [], []
            for _ in range(runs):
                boto.append(import_times("import boto3", env)["boto3"])
                # With boto3 already imported, the handler's own cumulative time is exactly what it adds.
                added.append(
                    import_times("import boto3; import handlers.response.function", env)[
                        "handlers.response.function"
                    ]
                )
            rows.append((label, statistics.median(boto), statistics.median(added)))
        rows.extend(shipped_bytecode_rows(runs))
    return rows


def shipped_bytecode_rows(runs: int) -> list[tuple[str, float, float]]:
    """As in Lambda: the deployment zip (with its python3.12 bytecode) unpacked read-only, no writes.

    Needs a Python 3.12 (``LAMBDA_PYTHON`` or ``python3.12`` on PATH, as the packaging does);
    boto3 comes from this venv (pure Python, like the runtime's own copy).
    """
    from stacks.packaging import build_handler_zip, lambda_python

    python = lambda_python()
    if not python:
        print("(no Python 3.12 found: set LAMBDA_PYTHON to measure the shipped bytecode)")
        return []
    site = next(p for p in sys.path if p.endswith("site-packages"))
    with tempfile.TemporaryDirectory() as task_root:
        zipfile.ZipFile(build_handler_zip()).extractall(task_root)
        env = {
            **os.environ,
            "PYTHONPATH": f"{task_root}:{site}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "BENCH_CWD": task_root,
        }
        boto, added = [], []
        for _ in range(runs):
            boto.append(import_times("import boto3", env, python)["boto3"])
            added.append(
                import_times("import boto3; import handlers.response.function", env, python)[
                    "handlers.response.function"
                ]
            )
    return [("shipped bytecode (3.12 zip)", statistics.median(boto), statistics.median(added))]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def event_timings(events: int) -> list[tuple[str, float, float, float, float]]:
    """(label, seq p50, seq p95, concurrent p50, concurrent p95) in ms."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "MOTO_ACCOUNT_ID": "111122223333",
        }
    )
    import boto3
    from moto import mock_aws

    from handlers.response import aws_clients, exposure
    from handlers.response.function import respond
    from handlers.response.response_config import load_settings

    latency = {"seconds": 0.0}

    def slow_network(client: Any) -> None:
        client.meta.events.register("before-send", lambda **_: time.sleep(latency["seconds"]))

    aws_clients.add_client_hook(slow_network)
    rows = []
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        topic = session.client("sns").create_topic(Name="alerts")["TopicArn"]
        session.client("dynamodb").create_table(
            TableName="idem",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        s3 = session.client("s3")
        s3.create_bucket(Bucket="bench-bucket")
        policy = (
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
            '"Action":"s3:GetObject","Resource":"arn:aws:s3:::bench-bucket/*"}]}'
        )
        s3.put_bucket_policy(Bucket="bench-bucket", Policy=policy)
        settings = load_settings(
            {"ALERT_TOPIC_ARN": topic, "EXPECTED_ACCOUNT_ID": "111122223333", "IDEMPOTENCY_TABLE": "idem"}
        )
        counter = [0]

        def one_event() -> float:
            counter[0] += 1
            record = {
                "eventVersion": "1.09",
                "eventSource": "s3.amazonaws.com",
                "eventName": "PutBucketPolicy",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-02T09:14:23Z",
                "eventID": f"bench-{counter[0]}",
                "recipientAccountId": "111122223333",
                "userIdentity": {"arn": "arn:aws:iam::111122223333:user/bench", "accountId": "111122223333"},
                "requestParameters": {"bucketName": "bench-bucket", "bucketPolicy": policy},
            }
            start = time.perf_counter()
            respond(
                {"detail-type": "AWS API Call via CloudTrail", "detail": record}, settings, lease_seconds=60
            )
            elapsed = time.perf_counter() - start
            return elapsed * 1000

        for label, delay, count in (
            ("moto", 0.0, events),
            ("moto + 20 ms/call", SIMULATED_LATENCY_S, events // 4),
        ):
            latency["seconds"] = delay
            result: list[float] = [label]  # type: ignore[list-item]
            for workers in (1, exposure.READ_WORKERS):
                exposure.READ_WORKERS, saved = workers, exposure.READ_WORKERS
                for _ in range(5):
                    one_event()  # warm-up: clients, models, thread pool
                samples = [one_event() for _ in range(count)]
                exposure.READ_WORKERS = saved
                result += [percentile(samples, 0.5), percentile(samples, 0.95)]
            rows.append(tuple(result))  # type: ignore[arg-type]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per import measurement")
    parser.add_argument("--events", type=int, default=200, help="events per per-event measurement")
    args = parser.parse_args()

    print(f"Import cost, median of {args.runs} fresh interpreters (python -X importtime), ms")
    print(f"{'':22} {'boto3':>8} {'handler adds':>13} {'total':>8} {'budget':>7}")
    for label, boto, added in import_table(args.runs):
        verdict = "ok" if added <= BUDGET_MS else "OVER"
        print(f"{label:22} {boto:8.1f} {added:13.1f} {boto + added:8.1f} {BUDGET_MS:7.0f} {verdict}")

    print()
    print(f"Per event, in-process against moto, ms ({args.events} events; latency rows use a quarter)")
    print(f"{'':20} {'sequential p50':>15} {'p95':>8} {'concurrent p50':>15} {'p95':>8}")
    for label, seq50, seq95, con50, con95 in event_timings(args.events):
        print(f"{label:20} {seq50:15.1f} {seq95:8.1f} {con50:15.1f} {con95:8.1f}")


if __name__ == "__main__":
    main()

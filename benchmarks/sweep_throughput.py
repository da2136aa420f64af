"""Sweep throughput: buckets per second at 1 vs N threads against moto with simulated network latency.

Run:  .venv/bin/python benchmarks/sweep_throughput.py [--latency-ms 30] [--buckets 400]
      [--sequential-buckets 60] [--threads 8 16 32]

Each AWS call the sweep makes sleeps ``--latency-ms`` first (a botocore ``before-call`` hook on
the sweep's clients), standing in for the round trip to S3 that moto, in-process, does not
have. The estate is mostly private buckets with 15% public (policy or ACL), so the
figures include the ledger reads and writes and the alerts of a first sweep (the ledger is
cleared before each row). The 1-thread row is the baseline.

Projection: 10,000 buckets at the measured rate, against the Lambda limit (900 s) less the
sweep's reserve (90 s for the hand-off, digest and metric line). moto's own CPU time is on
the same core as the client's, so the N-thread rows are CPU-bound here sooner than in Lambda;
the CPU column shows it (client + moto CPU seconds per bucket).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_LIMIT_S = 900.0
TARGET_BUCKETS = 10_000
ACCOUNT = "111122223333"
REGION = "us-east-1"
TABLE = "bench-ledger"


def setup_env() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "MOTO_ACCOUNT_ID": ACCOUNT,
        }
    )


def build(session: Any, buckets: int) -> str:
    """``buckets`` buckets (1 in 10 public by policy, 1 in 20 by ACL); returns the topic ARN."""
    from demo.policy_documents import public_read_policy  # after setup_env: the repo on sys.path

    topic = session.client("sns").create_topic(Name="alerts")["TopicArn"]
    session.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3 = session.client("s3")
    for index in range(buckets):
        name = f"bench-{index:05d}"
        s3.create_bucket(Bucket=name)
        if index % 10 == 0:
            s3.put_bucket_policy(Bucket=name, Policy=json.dumps(public_read_policy(name)))
        elif index % 20 == 5:
            s3.put_bucket_acl(Bucket=name, ACL="public-read")
    return topic


def clear_ledger(session: Any) -> None:
    dynamodb = session.client("dynamodb")
    for item in dynamodb.scan(TableName=TABLE)["Items"]:
        dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"]})


def measure(sweep: Any, settings: Any, refs: list[Any], threads: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, buckets checked) for one pass over ``refs`` on ``threads`` threads."""
    from dataclasses import replace

    from handlers.response.exposure import account_bpa_read
    from handlers.response.exposure_ledger import ExposureLedger

    tuned = replace(settings, threads=threads)
    context = sweep.SweepContext(
        settings=tuned,
        account_bpa=account_bpa_read(ACCOUNT, REGION),
        ledger=ExposureLedger(TABLE, ACCOUNT, REGION),
        known={},
        run_id="bench",
        now=datetime.now(UTC).replace(hour=3),
        home_region=REGION,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    results, rest = sweep.check_all(refs, context, lambda: LAMBDA_LIMIT_S)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert not rest and all(r.outcome != "error" for r in results), "the benchmark estate must sweep cleanly"
    return wall, cpu, len(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=30.0, help="simulated latency per AWS call")
    parser.add_argument("--buckets", type=int, default=400, help="buckets per N-thread measurement")
    parser.add_argument(
        "--sequential-buckets", type=int, default=60, help="buckets for the 1-thread baseline"
    )
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[8, 16, 32], help="thread counts to compare"
    )
    args = parser.parse_args()
    setup_env()

    import logging

    import boto3
    from moto import mock_aws

    from handlers.response import aws_clients
    from handlers.sweep import function as sweep
    from handlers.sweep.config import load_sweep_settings

    logging.getLogger("handlers").setLevel(logging.WARNING)  # the per-bucket lines are not the point
    latency = args.latency_ms / 1000

    def slow_network(client: Any) -> None:
        client.meta.events.register("before-call", lambda **_: time.sleep(latency))

    aws_clients.add_client_hook(slow_network)
    aws_clients.size_connection_pool(max(args.threads) + 4)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        topic = build(session, max(args.buckets, args.sequential_buckets))
        settings = load_sweep_settings(
            {"ALERT_TOPIC_ARN": topic, "EXPECTED_ACCOUNT_ID": ACCOUNT, "IDEMPOTENCY_TABLE": TABLE}
        )
        every = sweep.list_buckets(REGION)
        calls_per_bucket = 6  # policy status, policy, ACL, BPA, ownership, tags (+ ledger for exposed ones)
        measure(sweep, settings, every[:20], 4)  # warm-up: clients, models, thread pool
        rows = []
        for threads, count in [(1, args.sequential_buckets)] + [(t, args.buckets) for t in args.threads]:
            clear_ledger(session)
            wall, cpu, checked = measure(sweep, settings, every[:count], threads)
            rows.append((threads, checked, wall, cpu))

    print(
        f"Sweep throughput, in-process moto + {args.latency_ms:.0f} ms simulated latency per AWS call "
        f"(~{calls_per_bucket} reads per bucket; 15% of buckets public: ledger + alert too)"
    )
    budget = LAMBDA_LIMIT_S - sweep.TIME_RESERVE_SECONDS
    base_rate = rows[0][1] / rows[0][2]
    print(
        f"{'threads':>7} {'buckets':>8} {'wall s':>8} {'buckets/s':>10} {'vs 1':>6} "
        f"{'CPU ms/bucket':>14} {'10,000 buckets':>15} {'fits ' + str(int(budget)) + ' s?':>12}"
    )
    for threads, checked, wall, cpu in rows:
        rate = checked / wall
        projected = TARGET_BUCKETS / rate
        fits = "yes" if projected <= budget else "no"
        print(
            f"{threads:7d} {checked:8d} {wall:8.2f} {rate:10.1f} {rate / base_rate:5.1f}x "
            f"{1000 * cpu / checked:14.1f} {projected:13.0f} s {fits:>12}"
        )
    best = max(rows[1:], key=lambda row: row[1] / row[2]) if len(rows) > 1 else rows[0]
    capacity = int(best[1] / best[2] * budget)
    print(
        f"\nOne invocation at {best[0]} threads checks about {capacity:,} buckets in {budget:.0f} s "
        f"at this rate; sweep.fanout_threshold (default 3,000) hands larger estates to SQS workers."
    )


if __name__ == "__main__":
    main()

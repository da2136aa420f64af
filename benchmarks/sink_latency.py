"""The added latency per alert of the other sinks: Security Hub, the chat topic, the event bus.

Run:  .venv/bin/python -m benchmarks.sink_latency [--alerts 200]

Builds one alert per labelled dataset finding (the real pipeline, mode off, exposure not read),
then times :func:`handlers.response.sinks.deliver` per alert, in-process against moto: the alert topic
alone (the baseline), each other sink alone, and all of them. Again with 20 ms of simulated
network latency per AWS call, which is closer to what a Lambda sees (moto answers in-process).
moto lacks Security Hub's ``BatchUpdateFindings``: it is answered in AWS's documented shape by
the demo's hook (``demo.lambda_worker.security_hub_gaps``), so its cost here is the client's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

SIMULATED_LATENCY_S = 0.020


def _alerts(settings: Any, limit: int) -> list[Any]:
    from demo import dataset_loader
    from handlers.detection.classify import classify
    from handlers.response.decision import decide
    from handlers.response.exposure import not_checked

    now = datetime.now(UTC)
    built = []
    for case in dataset_loader.load_cases():
        for finding in classify(case.record, case.detector):
            built.append(decide(finding, not_checked("benchmark: not read"), settings, now=now).alert)
    return (built * (limit // max(1, len(built)) + 1))[:limit]


def _stats(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"p50 {statistics.median(ms):7.2f}  p95 {ms[int(0.95 * (len(ms) - 1))]:7.2f}  max {ms[-1]:7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    args = parser.parse_args()
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1", MOTO_ACCOUNT_ID="111122223333",
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
    )  # fmt: skip
    from moto import mock_aws

    from demo.lambda_worker import security_hub_gaps
    from handlers.response import aws_clients, sinks
    from handlers.response.response_config import load_settings

    with mock_aws():
        import boto3

        sns = boto3.client("sns", region_name="us-east-1")
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        chat = sns.create_topic(Name="chat")["TopicArn"]
        settings = load_settings(
            {
                "ALERT_TOPIC_ARN": topic, "EXPECTED_ACCOUNT_ID": "111122223333",
                "IDEMPOTENCY_TABLE": "t-bench", "SECURITY_HUB": "true", "CHAT_TOPIC_ARN": chat,
                "DECISION_EVENTS": "true",
            }
        )  # fmt: skip
        alerts = _alerts(settings, args.alerts)
        aws_clients.reset_clients()
        aws_clients.add_client_hook(security_hub_gaps)
        latency = [0.0]

        def network(client: Any) -> None:
            client.meta.events.register(
                "before-send", lambda **_: time.sleep(latency[0]) if latency[0] else None
            )

        aws_clients.add_client_hook(network)
        variants = {
            "topic only (baseline)": (sinks.TOPIC,),
            "+ security hub": (sinks.SECURITY_HUB,),
            "+ chat": (sinks.CHAT,),
            "+ event bus": (sinks.EVENTS,),
            "all four": sinks.ALL_SINKS,
        }
        print(f"Per alert, ms ({len(alerts)} alerts from the labelled dataset; in-process moto)")
        for label, delay in (("moto", 0.0), ("moto + 20 ms/call", SIMULATED_LATENCY_S)):
            latency[0] = delay
            count = len(alerts) if not delay else max(20, len(alerts) // 4)
            sinks.deliver(alerts[0], settings, region="us-east-1")  # warm the clients
            print(f"\n{label} ({count} alerts)")
            for name, chosen in variants.items():
                times = []
                for alert in alerts[:count]:
                    start = time.perf_counter()
                    result = sinks.deliver(alert, settings, region="us-east-1", sinks=chosen)
                    times.append(time.perf_counter() - start)
                    assert not result.failed, result.errors
                print(f"  {name:<24} {_stats(times)}")


if __name__ == "__main__":
    main()

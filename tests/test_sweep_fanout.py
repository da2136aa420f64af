"""Fan-out: above the threshold (or short of time) the scheduled run enqueues batches; workers check them.

The work queue is a real moto SQS queue; the worker is driven through ``sweep.handler`` with
SQS-shaped events built from the messages received, as the event source mapping delivers them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from response_fixtures import FakeContext, World, build_world
from sweep_estate import build_estate, configure_sweep, ledger_items, paged_listing

from handlers.response.permissions import sweep_calls_for
from handlers.sweep import function as sweep

EARLY = datetime.now(UTC).replace(hour=3)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


def work_queue(world: World) -> tuple[str, str]:
    sqs = world.client("sqs")
    url = sqs.create_queue(QueueName="sweep-work")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive_all(world: World, url: str) -> list[dict[str, Any]]:
    sqs = world.client("sqs")
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found += batch
    return found


def sqs_event(messages: list[dict[str, Any]], arn: str) -> dict[str, Any]:
    """What the event source mapping hands the function."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def emf(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def assert_granted(world: World, mode: str) -> None:
    granted = {(c.service, c.operation) for c in sweep_calls_for(mode)}
    assert set(world.calls) <= granted, sorted(set(world.calls) - granted)


COUNTS = {"policy": 8, "acl": 4, "held": 4, "site": 3, "expired": 3, "private": 18}  # 40 buckets


def test_above_the_threshold_the_run_enqueues_and_workers_check(world: World, capsys) -> None:
    url, arn = work_queue(world)
    estate = build_estate(world, COUNTS)
    world.answer("s3", "ListBuckets", paged_listing(world, estate, page_cap=15))
    configure_sweep(
        world,
        REMEDIATION_MODE="enforce",
        SWEEP_WORK_QUEUE_URL=url,
        SWEEP_FANOUT_THRESHOLD="30",
        SWEEP_BATCH_SIZE="7",
        SWEEP_DIGEST_HOUR="23",
    )
    capsys.readouterr()

    summary = sweep.run_scheduled(sweep.current_settings(), now=EARLY)

    assert summary["listed"] == 40 and summary["checked"] == 0
    assert summary["enqueued"] == 40 and summary["batches"] == 6  # ceil(40 / 7)
    assert summary["completed"]
    assert world.alerts() == []  # nothing checked by the scheduled run itself
    (scheduled,) = emf(capsys.readouterr().out)
    assert scheduled["SweepCompleted"] == 1 and scheduled["BucketsEnqueued"] == 40
    assert scheduled["BucketsChecked"] == 0
    messages = receive_all(world, url)
    bodies = [json.loads(m["Body"]) for m in messages]
    assert sorted(len(b["buckets"]) for b in bodies) == [5, 7, 7, 7, 7, 7]
    assert sorted(name for b in bodies for name, _ in b["buckets"]) == estate.names
    assert all(b["schema"] == sweep.BATCH_SCHEMA and b["run"] == summary["run"] for b in bodies)

    # The event source mapping delivers them in batches of up to 10 messages; two here.
    results = [
        sweep.handler(sqs_event(messages[:4], arn), FakeContext(remaining_ms=900_000)),
        sweep.handler(sqs_event(messages[4:], arn), FakeContext(remaining_ms=900_000)),
    ]

    assert results == [{"batchItemFailures": []}, {"batchItemFailures": []}]
    alerts = {a.payload["finding"]["bucket"]: a.payload for a in world.alerts()}
    assert set(alerts) == estate.alerting()
    closed = estate.of("policy", "acl", "expired")
    assert {b for b, p in alerts.items() if p["remediation"]["status"] == "applied"} == closed
    workers = emf(capsys.readouterr().out)
    assert [w["sweepMode"] for w in workers] == ["worker", "worker"]
    assert sum(w["BucketsChecked"] for w in workers) == 40
    assert sum(w["BucketsRemediated"] for w in workers) == len(closed)
    assert sum(w["SweepCompleted"] for w in workers) == 0  # only the scheduled run completes a sweep
    assert_granted(world, "enforce")


def test_known_exposures_travel_with_the_batch_for_clean_up(world: World) -> None:
    url, arn = work_queue(world)
    estate = build_estate(world, {"policy": 3})
    world.answer("s3", "ListBuckets", paged_listing(world, estate))
    configure_sweep(world, SWEEP_WORK_QUEUE_URL=url, SWEEP_FANOUT_THRESHOLD="100")
    sweep.run_scheduled(sweep.current_settings(), now=EARLY)  # inline: alerts and records all three
    world.alerts()
    world.client("s3").delete_bucket_policy(Bucket="policy-00001")
    configure_sweep(world, SWEEP_WORK_QUEUE_URL=url, SWEEP_FANOUT_THRESHOLD="1")

    sweep.run_scheduled(sweep.current_settings(), now=EARLY)
    (message,) = receive_all(world, url)
    assert set(json.loads(message["Body"])["known"]) == estate.of("policy")
    assert sweep.handler(sqs_event([message], arn), None) == {"batchItemFailures": []}

    assert world.alerts() == []
    assert set(ledger_items(world)) == {"policy-00000", "policy-00002"}


def test_below_the_threshold_the_run_checks_everything_itself(world: World) -> None:
    url, _ = work_queue(world)
    estate = build_estate(world, {"policy": 2, "private": 3})
    world.answer("s3", "ListBuckets", paged_listing(world, estate))
    configure_sweep(world, SWEEP_WORK_QUEUE_URL=url, SWEEP_FANOUT_THRESHOLD="5")
    summary = sweep.run_scheduled(sweep.current_settings(), now=EARLY)
    assert summary["checked"] == 5 and summary["enqueued"] == 0
    assert receive_all(world, url) == []
    assert "SendMessageBatch" not in world.handler_calls("sqs")


def test_short_of_time_the_rest_goes_to_the_queue(world: World) -> None:
    url, _ = work_queue(world)
    estate = build_estate(world, {"policy": 2, "private": 3})
    world.answer("s3", "ListBuckets", paged_listing(world, estate))
    configure_sweep(world, SWEEP_WORK_QUEUE_URL=url, SWEEP_FANOUT_THRESHOLD="1000")

    summary = sweep.run_scheduled(sweep.current_settings(), remaining=lambda: 60.0, now=EARLY)

    assert summary["checked"] == 0 and summary["enqueued"] == 5 and summary["completed"]
    (message,) = receive_all(world, url)
    assert sorted(name for name, _ in json.loads(message["Body"])["buckets"]) == estate.names


def test_short_of_time_without_a_queue_the_run_is_incomplete(world: World, capsys) -> None:
    estate = build_estate(world, {"private": 3})
    world.answer("s3", "ListBuckets", paged_listing(world, estate))
    configure_sweep(world)
    capsys.readouterr()
    with pytest.raises(sweep.SweepIncomplete):
        sweep.run_scheduled(sweep.current_settings(), remaining=lambda: 10.0, now=EARLY)
    (line,) = emf(capsys.readouterr().out)
    assert line["SweepCompleted"] == 0 and line["BucketErrors"] == 3


def test_a_bad_message_fails_alone(world: World) -> None:
    url, arn = work_queue(world)
    estate = build_estate(world, {"policy": 2})
    world.answer("s3", "ListBuckets", paged_listing(world, estate))
    configure_sweep(world, SWEEP_WORK_QUEUE_URL=url, SWEEP_FANOUT_THRESHOLD="1")
    sweep.run_scheduled(sweep.current_settings(), now=EARLY)
    (good,) = receive_all(world, url)
    bad = {**good, "MessageId": "not-a-batch", "Body": json.dumps({"schema": "other"})}

    result = sweep.handler(sqs_event([bad, good], arn), None)

    assert result == {"batchItemFailures": [{"itemIdentifier": "not-a-batch"}]}
    assert {a.payload["finding"]["bucket"] for a in world.alerts()} == estate.of("policy")


def test_a_batch_whose_alert_fails_is_retried_and_alerts_once(world: World) -> None:
    url, arn = work_queue(world)
    estate = build_estate(world, {"policy": 2})
    world.answer("s3", "ListBuckets", paged_listing(world, estate))
    configure_sweep(world, SWEEP_WORK_QUEUE_URL=url, SWEEP_FANOUT_THRESHOLD="1")
    sweep.run_scheduled(sweep.current_settings(), now=EARLY)
    (message,) = receive_all(world, url)
    world.fail("sns", "Publish", "Throttling", only_call=1)  # the first bucket's alert fails

    first = sweep.handler(sqs_event([message], arn), None)
    assert first == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert len(world.alerts()) == 1
    world.heal()
    second = sweep.handler(sqs_event([message], arn), None)  # SQS redelivers it

    assert second == {"batchItemFailures": []}
    assert len(world.alerts()) == 1  # only the one that failed; the other is not repeated
    assert set(ledger_items(world)) == estate.of("policy")


def test_event_shapes() -> None:
    assert sweep.is_work_batch({"Records": [{"eventSource": "aws:sqs", "body": "{}", "messageId": "m"}]})
    assert not sweep.is_work_batch({"Records": [{"eventSource": "aws:sqs"}]})  # no body: not SQS's shape
    assert not sweep.is_work_batch({"source": "aws.events", "detail-type": "Scheduled Event"})
    assert not sweep.is_work_batch({"Records": [{"eventSource": "aws:s3"}]})
    assert not sweep.is_work_batch({})

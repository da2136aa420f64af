"""Exposure windows: the ledger records both ends, and every closed window reaches the review queue.

A window opens at the first evidence (the event's time, or the sweep's first sighting) and
closes at our remediation or when the sweep finds the bucket closed or deleted. The closed
window is sent to the review queue before the ledger lets go of it; a failed send keeps the
item, so the next look sends it again. While a window stays open, every sweep run asks for
an hourly review. All against moto (SQS, DynamoDB, S3).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from response_fixtures import ACCOUNT, TABLE, World, build_world, make_record, public_policy
from sweep_estate import build_estate, configure_sweep, ledger_items, paged_listing

from handlers.response.exposure_ledger import ExposureLedger
from handlers.sweep import function as sweep

NOW = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


def review_queue(world: World) -> str:
    return world.client("sqs").create_queue(QueueName="review-requests")["QueueUrl"]


def requests(world: World, queue_url: str) -> list[dict]:
    sqs = world.client("sqs")
    found = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def run_sweep(world: World, now: datetime) -> sweep.SweepSummary:
    sweep.reset_settings()
    return sweep.run_scheduled(sweep.current_settings(), now=now)


def expose(world: World, bucket: str) -> dict:
    record = make_record("PutBucketPolicy", bucket, {"bucketPolicy": public_policy(bucket)})
    record["eventTime"] = "2026-12-03T09:41:07Z"
    world.s3.create_bucket(Bucket=bucket)
    world.replay(record)
    return record


def test_our_remediation_closes_the_window_and_asks_for_its_review(world: World) -> None:
    queue = review_queue(world)
    world.configure(REMEDIATION_MODE="enforce", REVIEW_QUEUE_URL=queue, ACTOR_HISTORY_SECONDS="0")
    record = expose(world, "exports-eu")
    summary = world.invoke(record)
    assert summary["findings"][0]["remediation"] == "applied"
    (request,) = requests(world, queue)
    checked = world.alerts()[0].payload["checkedAt"]
    assert request == {
        "kind": "exposure-review",
        "version": 1,
        "account": ACCOUNT,
        "region": "us-east-1",
        "bucket": "exports-eu",
        "from": "2026-12-03T09:41:07Z",  # the event's own time: the first evidence
        "to": checked,  # the remediation's time
        "trigger": "closed",
        "severity": summary["findings"][0]["severity"],
        "subject": summary["findings"][0]["subject"],
    }
    item = ledger_items(world)["exports-eu"]
    assert item["closed_at"] == checked and "opened_at" not in item


def test_without_remediation_the_window_stays_open_and_no_review_is_asked(world: World) -> None:
    queue = review_queue(world)
    world.configure(REMEDIATION_MODE="off", REVIEW_QUEUE_URL=queue, ACTOR_HISTORY_SECONDS="0")
    world.invoke(expose(world, "exports-eu"))
    assert requests(world, queue) == []
    item = ledger_items(world)["exports-eu"]
    assert item["opened_at"] == "2026-12-03T09:41:07Z" and "closed_at" not in item


def test_a_failed_send_keeps_the_window_open_for_the_sweep(world: World) -> None:
    queue = review_queue(world)
    world.configure(REMEDIATION_MODE="enforce", REVIEW_QUEUE_URL=queue, ACTOR_HISTORY_SECONDS="0")
    world.fail("sqs", "SendMessage", "AccessDenied")
    summary = world.invoke(expose(world, "exports-eu"))
    assert summary["outcome"] == "handled" and len(world.alerts()) == 1  # the alert is never held up
    assert requests(world, queue) == []
    item = ledger_items(world)["exports-eu"]
    assert item["opened_at"] == "2026-12-03T09:41:07Z" and "closed_at" not in item

    # The sweep finds it closed (our BPA is on), sends the window and only then forgets it.
    world.heal()
    world.answer("s3", "ListBuckets", lambda _: {"Buckets": [{"Name": "exports-eu"}], "Owner": {}})
    configure_sweep(world, REVIEW_QUEUE_URL=queue, ACTOR_HISTORY_SECONDS="0")
    run_sweep(world, NOW)
    (request,) = requests(world, queue)
    assert (request["from"], request["to"], request["trigger"]) == (
        "2026-12-03T09:41:07Z",
        "2026-12-03T10:00:00Z",
        "closed",
    )
    # Held back by our BPA now: the window is closed and reviewed; the exposure stays known.
    item = ledger_items(world)["exports-eu"]
    assert item["status"] == "exposable" and item["closed_at"] == "2026-12-03T10:00:00Z"
    assert "opened_at" not in item
    run_sweep(world, NOW + timedelta(hours=1))
    assert requests(world, queue) == []  # sent once: no hourly review of a closed window


def test_the_sweep_opens_windows_asks_hourly_while_open_and_once_when_closed(world: World) -> None:
    queue = review_queue(world)
    estate = build_estate(world, {"policy": 2, "held": 1, "private": 1})
    world.answer("s3", "ListBuckets", paged_listing(world, estate))
    configure_sweep(world, REVIEW_QUEUE_URL=queue)
    run_sweep(world, NOW)
    items = ledger_items(world)
    public = sorted(estate.of("policy"))
    assert {b: items[b]["opened_at"] for b in public} == dict.fromkeys(public, "2026-12-03T10:00:00Z")
    assert not any("opened_at" in items[b] for b in estate.of("held"))  # never public: no window
    assert requests(world, queue) == []  # nothing was open before this run

    later = NOW + timedelta(hours=1)
    summary = run_sweep(world, later)
    hourly = requests(world, queue)
    # Only public windows: the held-back bucket was never readable by the public.
    assert sorted(r["bucket"] for r in hourly) == public
    assert {(r["from"], r["to"], r["trigger"]) for r in hourly} == {("2026-12-03T10:00:00Z", None, "hourly")}
    assert summary["counts"]["ReviewsRequested"] == 2

    closed = public[0]
    world.s3.delete_bucket_policy(Bucket=closed)
    run_sweep(world, later + timedelta(hours=1))
    sent = requests(world, queue)
    closing = [r for r in sent if r["trigger"] == "closed"]
    assert closing == [
        {**closing[0], "bucket": closed, "from": "2026-12-03T10:00:00Z", "to": "2026-12-03T12:00:00Z"}
    ]
    assert sorted(r["bucket"] for r in sent if r["trigger"] == "hourly") == public[1:]
    assert closed not in ledger_items(world)


def test_a_relapse_after_a_reviewed_window_opens_a_new_one(world: World) -> None:
    ledger = ExposureLedger(TABLE, ACCOUNT, "us-east-1")
    tokens = ("policy/read/public",)
    common = {"status": "public-now", "severity": "high", "region": "us-east-1", "source": "realtime",
              "subject": "s", "alerted": True}  # fmt: skip
    ledger.record("b1", tokens, None, now=NOW, opened_at="2026-12-03T09:00:00Z", **common)
    ledger.record("b1", tokens, ledger.get("b1"), now=NOW, opened_at="2026-12-03T09:30:00Z", **common)
    assert ledger.get("b1").opened_at == "2026-12-03T09:00:00Z"  # an open window keeps its start
    assert ledger.close_window("b1", "2026-12-03T09:45:00Z")
    entry = ledger.get("b1")
    assert (entry.opened_at, entry.closed_at) == (None, "2026-12-03T09:45:00Z")
    ledger.record("b1", tokens, entry, now=NOW, opened_at="2026-12-03T09:50:00Z", **common)
    entry = ledger.get("b1")
    assert (entry.opened_at, entry.closed_at) == ("2026-12-03T09:50:00Z", None)
    assert not ledger.close_window("never-recorded", "2026-12-03T09:45:00Z")


@pytest.mark.parametrize(
    "event_time", ["2026-12-03T09:41:07Z\n", "yesterday", 17, None, "2026-12-03T09:41:07.5Z"]
)
def test_a_malformed_event_time_never_becomes_a_window_start(world: World, event_time: object) -> None:
    queue = review_queue(world)
    world.configure(REMEDIATION_MODE="enforce", REVIEW_QUEUE_URL=queue, ACTOR_HISTORY_SECONDS="0")
    record = expose(world, "exports-eu")
    record["eventTime"] = event_time
    world.invoke(record)
    (request,) = requests(world, queue)
    checked = world.alerts()[0].payload["checkedAt"]
    assert request["from"] == checked == request["to"]  # the first evidence we can vouch for

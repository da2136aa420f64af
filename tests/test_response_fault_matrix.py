"""Fault matrix (issue 9, item 5): every AWS call of the public-bucket path x four faults x every mode.

Each case runs in one moto world with three buckets made public by a ``PutBucketPolicy`` event:

- ``acme-open``: nothing approves it;
- ``acme-tagged``: approved by its tag ``public-access-approved-until`` = a date 30 days ahead
  (within the 90-day maximum);
- ``acme-listed``: on the allow-list (``EXCEPTION_BUCKETS``).

Phase 1 delivers the three events while one call fails every time it is made
(test_response_faults.py covers single faults one by one; this is the systematic product). Phase 2
heals and lets Lambda retry every invocation that failed, with its own request id. Phase 3 delivers
every event once more (EventBridge's at-least-once delivery: a new request id).

Asserted in every case:

- item 5: each invocation either publishes its event's alert or raises ``AlertNotPublished`` (and
  only a failed ``sns:Publish`` makes it raise); with the claim table unreachable it publishes from
  live reads, acts on nothing and raises ``ClaimUnavailable``, and Lambda's retry completes the
  response (one alert, acted on); after a failed publish the retry publishes exactly the alert
  that was missing, as it was built and staged (``resent``, no S3 call); a later delivery is a
  ``duplicate``; and no bucket ever gets two successful ``PutPublicAccessBlock`` calls;
- the approved and the allow-listed bucket are never closed and no put is even attempted on them;
  with ``GetBucketTagging`` failing, the tag-approved bucket is not closed and its alert says the
  approval is unknown;
- the unapproved bucket is closed in ``enforce`` unless the fault stops it, and then its alert says
  so (a remediation status other than ``applied`` and the fix command); ``off`` and ``dry-run`` never
  call ``PutPublicAccessBlock``.

Plus the compound fault of observation 7: ``Publish`` fails and so does the ``UpdateItem`` that
releases the claim.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from response_fixtures import ALL_ON, TABLE, FakeContext, World, build_world, make_record, public_policy

from handlers.response.function import AlertNotPublished, ClaimUnavailable

CALLS = [
    ("s3", "GetBucketPolicyStatus"),
    ("s3", "GetBucketPolicy"),
    ("s3", "GetBucketAcl"),
    ("s3", "GetPublicAccessBlock"),
    ("s3", "GetBucketOwnershipControls"),
    ("s3", "GetBucketTagging"),
    ("s3", "PutPublicAccessBlock"),
    ("s3control", "GetPublicAccessBlock"),
    ("dynamodb", "UpdateItem"),
    ("sns", "Publish"),
]
FAULTS = ["AccessDenied", "Throttling", "Timeout", "InternalError"]
MODES = ["off", "dry-run", "enforce"]
OPEN, TAGGED, LISTED = "acme-open", "acme-tagged", "acme-listed"
APPROVAL_TAG = "public-access-approved-until"
PUT = ("s3", "PutPublicAccessBlock")
# With these failing on every call, enforce mode must not (or cannot) close the unapproved bucket.
KEEPS_IT_OPEN = {
    PUT,  # the put itself fails
    ("s3", "GetBucketTagging"),  # approval unknown: it might be approved
}
CLAIM = ("dynamodb", "UpdateItem")  # without a claim: alert from live reads, act on nothing, fail


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


def public_buckets(world: World, mode: str) -> dict[str, dict[str, Any]]:
    """The three buckets, public through their policy, and the event that made each public."""
    world.configure(REMEDIATION_MODE=mode, EXCEPTION_BUCKETS=json.dumps([LISTED]), LOG_LEVEL="WARNING")
    records = {}
    for bucket in (OPEN, TAGGED, LISTED):
        records[bucket] = make_record("PutBucketPolicy", bucket, {"bucketPolicy": public_policy(bucket)})
        world.replay(records[bucket])
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    world.s3.put_bucket_tagging(Bucket=TAGGED, Tagging={"TagSet": [{"Key": APPROVAL_TAG, "Value": until}]})
    world.calls.clear()
    world.call_params.clear()
    return records


def put_calls(world: World, start: int = 0) -> list[str]:
    """Buckets of the handler's PutPublicAccessBlock calls from ``world.call_params[start:]``."""
    return [
        params["context"]["input_params"]["Bucket"]  # a before-call hook sees the request dict
        for service, operation, params in world.call_params[start:]
        if (service, operation) == PUT
    ]


def by_event(world: World) -> dict[str, list[dict[str, Any]]]:
    """Drain the topic's capture queue: alert payloads by the eventID of their finding."""
    found: dict[str, list[dict[str, Any]]] = {}
    for alert in world.alerts():
        found.setdefault(alert.payload["finding"]["eventID"], []).append(alert.payload)
    return found


def staged_subjects(world: World, event_id: str) -> list[str]:
    """The subjects of the alerts stored on the claim for the retry to re-send."""
    key = {"pk": {"S": f"event#{event_id}"}}
    item = world.client("dynamodb").get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item", {})
    return [a["subject"] for a in json.loads(item.get("alerts", {}).get("S", "[]"))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("service", "operation"), CALLS, ids=[f"{s}-{o}" for s, o in CALLS])
def test_fault_matrix(world: World, service: str, operation: str, fault: str, mode: str) -> None:
    records = public_buckets(world, mode)
    call = (service, operation)

    # Phase 1: the call fails every time; each event is delivered once.
    world.fail(service, operation, fault)
    contexts = {bucket: FakeContext() for bucket in records}
    first: dict[str, list[dict[str, Any]]] = {}
    raised: set[str] = set()
    claimless: set[str] = set()
    for bucket, record in records.items():
        try:
            summary = world.invoke(record, contexts[bucket])
        except AlertNotPublished:
            raised.add(bucket)
        except ClaimUnavailable:
            claimless.add(bucket)  # alerted, acted on nothing, failed so that Lambda retries
        else:
            assert summary["outcome"] == "handled", summary
        published = by_event(world)
        assert set(published) <= {record["eventID"]}
        first[bucket] = published.get(record["eventID"], [])
        # Either the alert went out, or the invocation raised so that Lambda retries it.
        assert len(first[bucket]) == (0 if bucket in raised else 1), (bucket, first[bucket])
    # Only a failed publish stops the alert; an unreachable claim table fails the invocation after it.
    assert raised == (set(records) if call == ("sns", "Publish") else set())
    assert claimless == (set(records) if call == CLAIM else set())
    if call == CLAIM:
        assert put_calls(world) == [], "nothing is acted on without a claim"
    phase1_puts = put_calls(world)
    # A put the fault stopped did not happen.
    succeeded = [] if call == PUT else phase1_puts

    # Phase 2: healed; Lambda retries each failed invocation with its request id.
    world.heal()
    mark = len(world.call_params)
    for bucket in sorted(raised):
        record = records[bucket]
        staged = staged_subjects(world, record["eventID"])
        assert len(staged) == 1, "the unsent alert is stored on the claim for the retry"
        summary = world.invoke(record, contexts[bucket])
        assert summary["outcome"] == "resent", summary
        published = by_event(world)
        assert set(published) == {record["eventID"]}
        (resent,) = published[record["eventID"]]  # exactly the missing alert, as it was built
        assert resent["subject"] == staged[0]
        first[bucket] = [resent]
    assert not [op for svc, op in world.calls[mark:] if svc in ("s3", "s3control")], "a resend reads nothing"
    for bucket in sorted(claimless):
        # Lambda's retry, with the table back, completes the response: a fresh decision, acted on.
        record = records[bucket]
        assert world.invoke(record, contexts[bucket])["outcome"] == "handled"
        (completed,) = by_event(world)[record["eventID"]]
        first[bucket] = [completed]
    open_bpa = world.bucket_bpa(OPEN)  # before phase 3, which may act where phase 1 could not

    # Phase 3: EventBridge delivers every event once more (a new request id).
    for bucket, record in records.items():
        summary = world.invoke(record, FakeContext())
        assert summary["outcome"] == "duplicate", (bucket, summary)
        assert by_event(world) == {}
    succeeded += put_calls(world, mark)

    # Never two remediations of one bucket; off and dry-run never try one.
    assert all(succeeded.count(bucket) <= 1 for bucket in records), succeeded
    if mode != "enforce":
        assert put_calls(world) == []

    # The approved and the allow-listed bucket are never closed, not even tried.
    for bucket in (TAGGED, LISTED):
        assert bucket not in put_calls(world), f"{bucket} is approved but a put was attempted"
        assert world.bucket_bpa(bucket) is None
        (alert,) = first[bucket]
        assert alert["remediation"]["status"] in ("skipped", "not-needed"), alert["remediation"]
    assert first[LISTED][0]["approval"]["approved"] is True
    tagged = first[TAGGED][0]
    if call == ("s3", "GetBucketTagging"):
        # The approval could not be read: not treated as approved, not closed, and the alert says so.
        assert tagged["approval"]["approved"] is False
        assert "could not be read" in tagged["approval"]["reason"]
        assert tagged["remediation"]["status"] == "skipped"
        assert "approval unknown" in tagged["text"] and "not closed" in tagged["text"]
    else:
        assert tagged["approval"]["approved"] is True

    # The unapproved bucket: closed in enforce unless the fault stops it, and then the alert says so.
    (alert,) = first[OPEN]
    remediation = alert["remediation"]
    if mode == "enforce" and call not in KEEPS_IT_OPEN:
        assert open_bpa == ALL_ON
        assert remediation["status"] in ("applied", "unverified"), remediation
        assert remediation["undo"], "a closed bucket's alert carries the undo command"
    else:
        assert open_bpa is None
        assert remediation["status"] != "applied", remediation
        assert remediation["fix"] and remediation["fix"] in alert["text"]


RELEASE_CALL = {"enforce": 4, "dry-run": 3, "off": 3}  # claim, [write-ahead,] stage, release


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", FAULTS)
def test_publish_and_release_both_fail_then_the_retry_resends(world: World, fault: str, mode: str) -> None:
    """Observation 7: the release fails too; the invocation says so, and Lambda's retry re-claims."""
    records = public_buckets(world, mode)
    record = records[OPEN]
    context = FakeContext()
    world.fail("sns", "Publish", fault)
    world.fail("dynamodb", "UpdateItem", fault, only_call=RELEASE_CALL[mode])
    with pytest.raises(AlertNotPublished, match="releasing the claim also failed"):
        world.invoke(record, context)
    assert world.calls.count(("dynamodb", "UpdateItem")) == RELEASE_CALL[mode]  # the release was tried
    assert by_event(world) == {}

    # Within the lease, another delivery must not take over while Lambda's retry is pending...
    world.heal()
    assert world.invoke(record, FakeContext())["outcome"] == "duplicate"
    # ...and the retry (same request id) re-claims and sends the staged alert.
    summary = world.invoke(record, context)
    assert summary["outcome"] == "resent"
    (alert,) = by_event(world)[record["eventID"]]
    assert (
        alert["remediation"]["status"]
        == {"enforce": "applied", "dry-run": "would-apply", "off": "skipped"}[mode]
    )
    assert world.invoke(record, FakeContext())["outcome"] == "duplicate"
    assert len(put_calls(world)) == (1 if mode == "enforce" else 0)

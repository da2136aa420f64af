"""Every AWS call the handler makes can fail: AccessDenied, throttling, NoSuchBucket, timeouts.

Defined behaviour:
- a failed confirmation read is reported in the alert (``COULD NOT CHECK``) and in the
  payload; what could not be read is treated as "not guarding", so the bucket is
  still closed in enforce mode (blocking a private bucket costs nothing);
- NoSuchBucket means the bucket was deleted meanwhile: alert, nothing to remediate;
- a failed remediation is reported (``FAILED CALL``) with the fix command;
- a failed publish raises (EventBridge retries, then the DLQ); the retry re-sends the
  alert that was built, without acting again;
- an unreachable idempotency table does not stop the alert: it goes out from live reads, nothing
  is acted on or written, and the invocation fails so Lambda's retry completes the response.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from response_fixtures import ALL_ON, FakeContext, World, build_world, make_record, public_policy

from handlers.response.function import AlertNotPublished, ClaimUnavailable

BUCKET = "acme-exports"
CONFIRM_CALLS = [
    ("s3", "GetBucketPolicyStatus"),
    ("s3", "GetBucketPolicy"),
    ("s3", "GetBucketAcl"),
    ("s3", "GetPublicAccessBlock"),
    ("s3", "GetBucketOwnershipControls"),
    ("s3", "GetBucketTagging"),
    ("s3control", "GetPublicAccessBlock"),
]
FAULT_CODES = {"AccessDenied": "AccessDenied", "Throttling": "SlowDown", "NoSuchBucket": "NoSuchBucket"}
FAULT_CODES |= {"Timeout": "Timeout", "ConnectTimeout": "Timeout"}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


def public_bucket(world: World) -> dict[str, Any]:
    record = make_record("PutBucketPolicy", BUCKET, {"bucketPolicy": public_policy(BUCKET)})
    world.replay(record)
    return record


def table_item(world: World, record: dict[str, Any]) -> dict[str, Any]:
    key = {"pk": {"S": f"event#{record['eventID']}"}}
    return world.client("dynamodb").get_item(TableName="s3-exposure-idempotency", Key=key)["Item"]


@pytest.mark.parametrize("fault", list(FAULT_CODES))
@pytest.mark.parametrize(("service", "operation"), CONFIRM_CALLS, ids=[f"{s}-{o}" for s, o in CONFIRM_CALLS])
def test_failed_confirmation_read_still_alerts_and_says_what_failed(
    world: World, service: str, operation: str, fault: str
) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    world.fail(service, operation, fault, only_call=1)
    summary = world.invoke(record)
    assert summary["outcome"] == "handled"
    (alert,) = world.alerts()
    code = FAULT_CODES[fault]
    failures = alert.payload["exposure"]["failures"]
    assert {"call": f"{service}:{operation}", "error": code} == {k: failures[0][k] for k in ("call", "error")}
    assert f"COULD NOT CHECK: {service}:{operation} failed with {code}" in alert.text
    assert alert.payload["severity"] in ("high", "critical", "medium")
    if fault == "NoSuchBucket":
        assert alert.payload["exposure"]["status"] == "gone"
        assert alert.payload["remediation"]["status"] == "not-needed"
        assert alert.payload["severity"] == "medium"
        assert world.bucket_bpa(BUCKET) is None
    elif operation == "GetBucketTagging":
        # The bucket might carry a valid approval: never closed on a failed tag read.
        assert alert.payload["approval"]["approved"] is False
        assert "could not be read" in alert.payload["approval"]["reason"]
        assert alert.payload["remediation"]["status"] == "skipped"
        assert world.bucket_bpa(BUCKET) is None
    else:
        # The public policy is still seen by one of the two policy reads; the bucket is closed.
        assert alert.payload["exposure"]["status"] in ("public-now", "unknown")
        assert alert.payload["remediation"]["status"] == "applied"
        assert world.bucket_bpa(BUCKET) == ALL_ON


def test_bpa_unreadable_leaves_previous_state_unknown_but_still_closes(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    world.fail("s3", "GetPublicAccessBlock", "AccessDenied", only_call=1)
    world.invoke(record)
    (alert,) = world.alerts()
    assert alert.payload["exposure"]["status"] == "unknown"
    assert alert.payload["previousBpa"] == {"state": "unknown", "flags": None}
    assert "the previous state could not be read" in alert.payload["remediation"]["undo"]
    assert world.bucket_bpa(BUCKET) == ALL_ON


def test_every_call_times_out_and_the_alert_still_goes_out(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    for service, operation in CONFIRM_CALLS:
        world.fail(service, operation, "Timeout")
    world.invoke(record)
    (alert,) = world.alerts()
    assert alert.payload["exposure"]["status"] == "unknown"
    assert len(alert.payload["exposure"]["failures"]) == len(CONFIRM_CALLS)
    assert alert.payload["severity"] == "high"
    # The tags timed out too, so the bucket may be approved: alerted, with the fix, not closed.
    assert alert.payload["remediation"]["status"] == "skipped"
    assert "aws s3api put-public-access-block --bucket acme-exports" in alert.text
    assert world.bucket_bpa(BUCKET) is None


def test_every_call_but_tagging_times_out_and_the_failed_put_is_reported(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    for service, operation in [*CONFIRM_CALLS, ("s3", "PutPublicAccessBlock")]:
        if operation != "GetBucketTagging":
            world.fail(service, operation, "Timeout")
    world.invoke(record)
    (alert,) = world.alerts()
    assert alert.payload["exposure"]["status"] == "unknown"
    assert len(alert.payload["exposure"]["failures"]) == len(CONFIRM_CALLS) - 1
    # Unconfirmed is treated as exposed: the event's grant decides the level.
    assert alert.payload["severity"] == "high"
    remediation = alert.payload["remediation"]
    assert remediation["status"] == "failed" and remediation["error"]["error"] == "Timeout"
    assert "FAILED CALL: s3:PutPublicAccessBlock: Timeout" in alert.text
    assert "aws s3api put-public-access-block --bucket acme-exports" in alert.text
    assert world.bucket_bpa(BUCKET) is None


@pytest.mark.parametrize("fault", ["AccessDenied", "Throttling", "NoSuchBucket", "Timeout"])
def test_failed_remediation_is_reported_with_the_fix(world: World, fault: str) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    world.fail("s3", "PutPublicAccessBlock", fault)
    world.invoke(record)
    (alert,) = world.alerts()
    remediation = alert.payload["remediation"]
    assert remediation["status"] == "failed"
    assert remediation["error"]["error"] == FAULT_CODES[fault]
    assert f"FAILED CALL: s3:PutPublicAccessBlock: {FAULT_CODES[fault]}" in alert.text
    assert remediation["fix"] in alert.text
    assert world.bucket_bpa(BUCKET) is None


def test_failed_read_back_is_unverified(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    world.fail("s3", "GetPublicAccessBlock", "Throttling", only_call=2)  # 1: confirm, 2: verify
    world.invoke(record)
    (alert,) = world.alerts()
    assert alert.payload["remediation"]["status"] == "unverified"
    assert "reading them back failed: SlowDown" in alert.text
    assert world.bucket_bpa(BUCKET) == ALL_ON


def test_read_back_showing_flags_off_is_a_failure(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    calls = {"n": 0}

    def stale_read(_params: dict[str, Any]) -> dict[str, Any] | None:
        calls["n"] += 1
        if calls["n"] == 1:
            return None  # the confirmation read: let moto answer
        return {"PublicAccessBlockConfiguration": {**ALL_ON, "RestrictPublicBuckets": False}}

    world.answer("s3", "GetPublicAccessBlock", stale_read)
    world.invoke(record)
    (alert,) = world.alerts()
    assert alert.payload["remediation"]["status"] == "failed"
    assert "read-back shows RestrictPublicBuckets off" in alert.text


@pytest.mark.parametrize("fault", ["AccessDenied", "Throttling", "Timeout"])
def test_publish_failure_raises_and_the_retry_resends_without_acting_again(world: World, fault: str) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    world.fail("sns", "Publish", fault)
    with pytest.raises(AlertNotPublished):
        world.invoke(record)
    assert world.alerts() == []
    assert world.bucket_bpa(BUCKET) == ALL_ON  # the action happened; only the alert is missing
    item = table_item(world, record)
    assert item["status"]["S"] == "publish-failed"
    stored = json.loads(item["alerts"]["S"])
    assert stored[0]["payload"]["remediation"]["status"] == "applied"

    # EventBridge retries the same event once SNS is back.
    world.heal()
    world.calls.clear()
    summary = world.invoke(record)
    assert summary["outcome"] == "resent"
    (alert,) = world.alerts()
    assert alert.subject == stored[0]["subject"]
    assert alert.payload["remediation"]["status"] == "applied"
    assert alert.payload["previousBpa"]["state"] == "not-set"  # the state before our put, not after
    assert world.handler_calls("s3") == []
    assert table_item(world, record)["status"]["S"] == "done"

    # And a third delivery is a plain duplicate.
    assert world.invoke(record)["outcome"] == "duplicate"
    assert world.alerts() == []


@pytest.mark.parametrize("fault", ["AccessDenied", "Throttling", "Timeout"])
def test_idempotency_table_unreachable_does_not_stop_the_alert(world: World, fault: str) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    world.fail("dynamodb", "UpdateItem", fault)
    context = FakeContext(aws_request_id="req-1")
    with pytest.raises(ClaimUnavailable):
        world.invoke(record, context)
    (alert,) = world.alerts()  # the alert went out now, from live reads
    assert alert.payload["delivery"]["claim"] == "unavailable"
    assert alert.payload["delivery"]["idempotencyError"]["call"] == "dynamodb:UpdateItem"
    # No action without its record written first (a retry could repeat it and lose the undo),
    # and nothing written at all: an earlier attempt's stored alert must not be overwritten.
    assert alert.payload["remediation"]["status"] == "skipped"
    assert "idempotency table" in alert.payload["remediation"]["detail"]
    assert world.bucket_bpa(BUCKET) is None
    # (The actor history's cache is read, GetItem, and never touches the claim's item.)
    assert [op for svc, op in world.calls if svc == "dynamodb" and op != "GetItem"] == ["UpdateItem"]
    # Lambda's retry, once the table answers, completes the response.
    world.heal()
    assert world.invoke(record, context)["outcome"] == "handled"
    (alert,) = world.alerts()
    assert alert.payload["remediation"]["status"] == "applied"
    assert world.bucket_bpa(BUCKET) == ALL_ON


def test_an_invocation_that_died_mid_way_can_be_taken_over_after_its_lease(world: World) -> None:
    from handlers.response.idempotency import IdempotencyStore

    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    now = [1_800_000_000.0]
    store = IdempotencyStore("s3-exposure-idempotency", world.region, clock=lambda: now[0])
    assert store.claim(record["eventID"], lease_seconds=60).outcome == "new"  # then the invocation died
    assert store.claim(record["eventID"], lease_seconds=60).outcome == "duplicate"  # still within its lease
    now[0] += 120
    assert store.claim(record["eventID"], lease_seconds=60).outcome == "retry"
    store.complete(record["eventID"])
    assert store.claim(record["eventID"], lease_seconds=60).outcome == "duplicate"


def test_other_failure_releases_the_claim_for_a_full_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.response import decision

    record = public_bucket(world)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("bug")

    with monkeypatch.context() as patch:
        patch.setattr(decision, "remediate", broken)
        with pytest.raises(RuntimeError):
            world.invoke(record)
    assert table_item(world, record)["status"]["S"] == "failed"
    assert world.alerts() == []
    assert world.invoke(record)["outcome"] == "handled"
    assert len(world.alerts()) == 1

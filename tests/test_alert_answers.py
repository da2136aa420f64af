"""The alert answers the response checklist: who, have they done this before, how to harden.

moto does not implement CloudTrail ``LookupEvents``, so these tests answer it at the client seam
(``World.answer``) with pages in AWS's documented shape (``Events`` with ``EventTime`` as a
datetime and ``CloudTrailEvent`` as a JSON string). Everything else is moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from response_fixtures import ACCOUNT, World, build_world, make_record, public_policy

from handlers.response.alert import COMMAND_PREFIX, WHO_HEADER

ACTOR = f"arn:aws:sts::{ACCOUNT}:assumed-role/dev-admin/alice"
EVENT_TIME = datetime(2026, 11, 2, 9, 14, 23, tzinfo=UTC)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


def earlier_event(
    name: str, days: int, *, ip: str = "198.51.100.23", agent: str | None = None
) -> dict[str, Any]:
    """One LookupEvents entry: alice's earlier call, ``days`` before the alerted event."""
    record = make_record(name, "older-bucket")
    record["eventTime"] = (EVENT_TIME - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record["sourceIPAddress"] = ip
    if agent:
        record["userAgent"] = agent
    return {
        "EventId": record["eventID"],
        "EventName": name,
        "ReadOnly": "false",
        "AccessKeyId": "ASIAEXAMPLE",
        "EventTime": EVENT_TIME - timedelta(days=days),
        "EventSource": "s3.amazonaws.com",
        "Username": "alice",
        "Resources": [{"ResourceType": "AWS::S3::Bucket", "ResourceName": "older-bucket"}],
        "CloudTrailEvent": json.dumps(record),
    }


def history(world: World, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answer LookupEvents with ``events`` (one page, newest first); returns the requests made.

    At the client seam botocore hands over the serialized request: a JSON body, times as epoch seconds.
    """
    asked: list[dict[str, Any]] = []

    def answer(params: dict[str, Any]) -> dict[str, Any]:
        request = json.loads(params["body"])
        asked.append(request)
        end = request.get("EndTime")
        return {"Events": [e for e in events if end is None or e["EventTime"].timestamp() < end]}

    world.answer("cloudtrail", "LookupEvents", answer)
    return asked


def exposed(world: World, bucket: str = "exports-eu", **record_fields: Any) -> dict[str, Any]:
    record = make_record("PutBucketPolicy", bucket, {"bucketPolicy": public_policy(bucket)})
    record.update(record_fields)
    world.s3.create_bucket(Bucket=bucket)
    world.replay(record)
    return record


def test_a_first_time_actor_on_production_raises_the_severity_one_level(world: World) -> None:
    asked = history(world, [])
    world.invoke(exposed(world))
    (alert,) = world.alerts()
    found = alert.payload["actorHistory"]
    assert found["verdict"] == "first-time" and found["checked"] == "full"
    assert asked and asked[0]["LookupAttributes"] == [{"AttributeKey": "Username", "AttributeValue": "alice"}]
    # public read, production, not tagged sensitive: high; first-time: one up.
    assert alert.payload["severity"] == "critical"
    assert "raised from high" in alert.payload["severityReason"]
    assert WHO_HEADER in alert.text and "2. Has " in alert.text and "NO: first time" in alert.text


def test_a_known_actor_keeps_the_severity_and_the_alert_says_what_it_did_before(world: World) -> None:
    history(world, [earlier_event("PutBucketPolicy", 3), earlier_event("PutBucketAcl", 20, ip="203.0.113.1")])
    world.invoke(exposed(world))
    (alert,) = world.alerts()
    found = alert.payload["actorHistory"]
    assert found["verdict"] == "seen-before"
    assert found["sameApi"]["count"] == 1 and found["otherWatchedCalls"]["count"] == 1
    assert found["sourceIpSeen"] is True
    assert alert.payload["severity"] == "high" and "first-time" not in alert.payload["severityReason"]


def test_the_same_history_on_a_sandbox_account_changes_nothing(world: World) -> None:
    history(world, [])
    world.configure(ENVIRONMENT="sandbox")
    world.invoke(exposed(world))
    (alert,) = world.alerts()
    assert alert.payload["actorHistory"]["verdict"] == "first-time"
    assert alert.payload["severity"] == "high"


def test_trusted_automation_is_context_and_never_lowers_severity(world: World) -> None:
    history(world, [])
    world.configure(TRUSTED_PRINCIPALS=json.dumps([f"arn:aws:iam::{ACCOUNT}:role/dev-admin"]))
    world.invoke(exposed(world))
    (alert,) = world.alerts()
    found = alert.payload["actorHistory"]
    assert found["trusted"] is True and found["trustedMatch"] == f"arn:aws:iam::{ACCOUNT}:role/dev-admin"
    assert "trusted automation" in alert.text
    assert alert.payload["severity"] == "critical"  # first-time still counts: trust is not a pass


def test_history_turned_off_makes_no_call_and_says_so(world: World) -> None:
    history(world, [])
    world.configure(ACTOR_HISTORY_SECONDS="0")
    world.invoke(exposed(world))
    (alert,) = world.alerts()
    assert "LookupEvents" not in world.handler_calls("cloudtrail")
    assert alert.payload["actorHistory"] is None
    assert "History not checked" in alert.text and alert.payload["severity"] == "high"


def test_history_denied_never_holds_up_the_alert(world: World) -> None:
    world.fail("cloudtrail", "LookupEvents", "AccessDenied")
    summary = world.invoke(exposed(world))
    (alert,) = world.alerts()
    assert summary["outcome"] == "handled"
    assert alert.payload["actorHistory"]["checked"] == "not-checked"
    assert alert.payload["actorHistory"]["verdict"] == "unknown"
    assert alert.payload["severity"] == "high"


def test_how_they_signed_in_is_in_the_who_section(world: World) -> None:
    history(world, [])
    identity = {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLE:alice",
        "arn": ACTOR,
        "accountId": ACCOUNT,
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/dev-admin"},
            "attributes": {"creationDate": "2026-11-02T08:00:00Z", "mfaAuthenticated": "false"},
        },
    }
    world.invoke(exposed(world, userIdentity=identity, userAgent="S3Console/0.4, aws-internal/3"))
    (alert,) = world.alerts()
    who = alert.text.split(WHO_HEADER, 1)[1].split("\nWHEN", 1)[0]
    assert "Origin: the AWS console" in who
    assert "MFA: NO" in who and f"session issued by arn:aws:iam::{ACCOUNT}:role/dev-admin" in who


def test_a_hostile_session_issuer_is_shown_safely(world: World) -> None:
    history(world, [])
    identity = {
        "type": "AssumedRole",
        "arn": ACTOR,
        "accountId": ACCOUNT,
        "sessionContext": {
            "sessionIssuer": {"arn": "x\n    $ rm -rf / <!channel>"},
            "attributes": {"mfaAuthenticated": "yes please"},
        },
    }
    world.invoke(exposed(world, userIdentity=identity))
    (alert,) = world.alerts()
    assert not any(line.startswith(COMMAND_PREFIX + "rm") for line in alert.text.splitlines())
    assert "<!channel>" not in alert.text and "MFA: not recorded" in alert.text


def harden_step(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "6. Harden:" in line)
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines))
    return lines[start:end]


def test_harden_names_the_simplest_control_for_an_acl_path(world: World) -> None:
    history(world, [])
    bucket = "acl-exports"
    record = make_record("PutBucketAcl", bucket, {"x-amz-acl": ["public-read"], "acl": [""]})
    world.s3.create_bucket(Bucket=bucket)
    world.replay(record)
    world.invoke(record)
    (alert,) = world.alerts()
    step = harden_step(alert.text)
    assert "BucketOwnerEnforced" in step[0]
    assert any(
        line.startswith(COMMAND_PREFIX + "aws s3api put-bucket-ownership-controls --bucket acl-exports")
        for line in step
    )
    assert any("aws s3control put-public-access-block" in line for line in step)


def test_harden_names_block_public_policy_for_an_open_policy_path(world: World) -> None:
    history(world, [])
    world.invoke(exposed(world))
    (alert,) = world.alerts()
    step = harden_step(alert.text)
    assert "BlockPublicPolicy" in step[0]
    assert any(
        line.startswith(COMMAND_PREFIX + "aws s3api put-public-access-block --bucket exports-eu")
        for line in step
    )

"""Every labelled event, through the real handler, against moto holding the state the event created.

For each case and each remediation mode: replay the recorded call into moto, deliver
the event, and check the alert (subject, body, payload, attributes), the remediation
result, the final Block Public Access state, and that every AWS call the handler made
is one the IAM list grants for that mode.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from response_fixtures import ALL_ON, world_for

from demo import dataset_loader
from handlers.detection.classify import classify
from handlers.detection.event_patterns import EVENTBRIDGE_SOURCES
from handlers.detection.records import account_id, as_text
from handlers.detection.rules import ALERT_ONLY_SCOPES
from handlers.response import permissions
from handlers.response.remediation import NEEDS_CLOSING

CASES = dataset_loader.load_cases()
MODES = ("off", "dry-run", "enforce")


def granted(mode: str, allow_account: bool) -> set[tuple[str, str]]:
    return {(c.service, c.operation) for c in permissions.calls_for(mode, allow_account)}


def check_common_alert(alert: Any, record: dict[str, Any], finding: dict[str, Any], world: Any) -> None:
    """What every alert must carry, whatever the case."""
    subject, payload, text = alert.subject, alert.payload, alert.text
    assert len(subject) < 100 and subject.isascii() and "\n" not in subject
    severity = payload["severity"]
    assert subject.startswith(f"[{severity.upper()}] ")
    assert alert.attributes["severity"] == severity
    assert alert.attributes["verdict"] == finding["verdict"]
    assert payload["finding"]["eventID"] == record["eventID"]
    assert payload["account"]["id"] == world.account
    assert record["eventID"] in payload["links"]["cloudtrailEvent"]
    assert f"Event time: {record['eventTime']}" in text
    actor = finding["actor"]
    if actor:
        assert f"Actor: {actor}" in text
    if finding["sourceIPAddress"]:
        assert finding["sourceIPAddress"] in text
    assert "RESPONSE CHECKLIST" in text and "6. Harden" in text
    if finding["bucket"]:
        assert payload["links"]["bucket"].startswith(
            f"https://s3.console.aws.amazon.com/s3/buckets/{finding['bucket']}"
        )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_dataset_event_through_handler(case: Any, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    record = copy.deepcopy(case.record)
    account = account_id(record) or "111122223333"
    region = as_text(record.get("awsRegion")) or "us-east-1"
    findings = classify(record, case.detector)
    with world_for(monkeypatch, account, region) as world:
        world.replay(record)
        if record["eventName"] == "PutBucketPolicy" and not record.get("errorCode"):
            # AWS's verdict on the stored policy is the case's label (moto's own is simplistic).
            is_public = case.expect["verdict"] == "public"
            world.answer("s3", "GetBucketPolicyStatus", lambda _p: {"PolicyStatus": {"IsPublic": is_public}})
        bucket = findings[0]["bucket"] if findings else None
        bpa_before = world.bucket_bpa(bucket) if bucket else None
        account_before = world.account_bpa()
        world.configure(REMEDIATION_MODE=mode, **case.detector.to_environment())
        world.calls.clear()

        summary = world.invoke(record)
        alerts = world.alerts()

        # IAM: every call is granted in this mode; every S3 call is owner-checked.
        assert set(world.calls) <= granted(mode, allow_account=False)
        for service, _op, params in world.call_params:
            if service == "s3":
                assert params["headers"].get("x-amz-expected-bucket-owner") == account

        verdict = case.expect["verdict"]
        if verdict == "none":
            if record.get("eventSource") not in EVENTBRIDGE_SOURCES:
                # No deployed rule delivers this source: such an event was sent by someone else.
                assert summary["outcome"] == "rejected"
                assert world.handler_calls("s3") == [] and world.handler_calls("s3control") == []
                assert [a.attributes["verdict"] for a in alerts] == ["rejected"]
                return
            assert summary["outcome"] == "ignored" and alerts == [] and world.calls == []
            return
        assert summary["outcome"] == "handled"
        assert len(alerts) == len(findings)
        for alert, finding in zip(alerts, findings, strict=True):
            check_common_alert(alert, record, finding, world)
            payload = alert.payload
            remediation, exposure = payload["remediation"], payload["exposure"]
            if verdict == "attempt":
                assert payload["severity"] == "low" and remediation["status"] == "not-needed"
                assert exposure["status"] == "not-checked"
                assert alert.subject.startswith("[LOW] Failed attempt")
                assert world.handler_calls("s3") == [] and world.handler_calls("s3control") == []
                continue
            if verdict == "tamper":
                assert payload["severity"] == "high" and remediation["status"] == "skipped"
                assert world.handler_calls("s3") == []
                continue
            if verdict == "public" and finding["scope"] in ("bucket", "object"):
                # Replayed on a bucket without BPA and with ACLs on: the grant is live.
                assert exposure["status"] == "public-now", exposure["reasons"]
                assert payload["severity"] in ("high", "critical")
                assert exposure["disagreement"] is None
            if finding["scope"] in ALERT_ONLY_SCOPES:
                # Object Lambda / Multi-Region Access Points, Outposts: nothing read, nothing changed.
                assert exposure["status"] == "not-checked" and remediation["status"] == "skipped"
                assert "no live read for this target; alert only" in exposure["reasons"][0]
                assert world.handler_calls("s3") == [] and world.handler_calls("s3control") == []
                continue
            if finding["scope"] == "account":
                assert "aws s3control put-public-access-block --account-id" in alert.text
                assert world.account_bpa() == account_before  # account remediation not allowed here
                assert remediation["status"] in ("skipped", "not-needed")
                continue
            if not bucket or finding["scope"] == "access-point":
                assert remediation["status"] == "skipped"
                continue
            needs_closing = exposure["status"] in NEEDS_CLOSING and bpa_before != ALL_ON
            if mode == "enforce" and needs_closing:
                assert world.bucket_bpa(bucket) == ALL_ON
                assert remediation["status"] == "applied" and remediation["applied"] == ALL_ON
                assert payload["previousBpa"]["flags"] == bpa_before
                assert payload["previousBpa"]["state"] == ("set" if bpa_before else "not-set")
                assert "  Undo:\n    $ aws s3api " in alert.text  # the command on a line of its own
                assert payload["exposureWindow"]["to"] == payload["checkedAt"]
            else:
                assert world.bucket_bpa(bucket) == bpa_before
                if not needs_closing:
                    assert remediation["status"] == "not-needed"
                elif mode == "dry-run":
                    assert remediation["status"] == "would-apply"
                    assert f"would put all four BPA flags on bucket {bucket}" in alert.text
                else:
                    assert remediation["status"] == "skipped"
                    assert "aws s3api put-public-access-block --bucket" in alert.text


ACCOUNT_CASES = [
    c for c in CASES if c.expect.get("scope") == "account" and c.expect["verdict"] == "weakening"
]


@pytest.mark.parametrize("case", ACCOUNT_CASES, ids=[c.id for c in ACCOUNT_CASES])
def test_account_weakening_remediated_only_when_allowed(case: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    record = copy.deepcopy(case.record)
    account = account_id(record)
    with world_for(monkeypatch, account, record["awsRegion"]) as world:
        world.replay(record)
        before = world.account_bpa()
        world.configure(REMEDIATION_MODE="enforce", ALLOW_ACCOUNT_REMEDIATION="true")
        world.calls.clear()
        world.invoke(record)
        (alert,) = world.alerts()
        assert set(world.calls) <= granted("enforce", allow_account=True)
        assert ("s3control", "PutPublicAccessBlock") in world.calls
        assert world.account_bpa() == ALL_ON
        remediation = alert.payload["remediation"]
        assert remediation["status"] == "applied"
        assert remediation["previous"] == before
        expected_undo = "delete-public-access-block" if before is None else "put-public-access-block"
        assert f"aws s3control {expected_undo} --account-id {account}" in remediation["undo"]

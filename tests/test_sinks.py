"""Where decisions go besides the alert topic: Security Hub (ASFF), the chat topic, the event bus.

Through the real response handler and sweep against moto (SNS, SQS, DynamoDB, S3, EventBridge).
Security Hub is a local fake with AWS's documented semantics (tests/security_hub_fake.py: moto
lacks BatchUpdateFindings, ignores GetFindings filters and lets imports overwrite Workflow);
one test also imports into moto's own Security Hub through a real client.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from response_fixtures import ACCOUNT, REGION, World, build_world, make_record, public_policy, world_for
from security_hub_fake import SecurityHubFake, asff_problems
from sweep_estate import configure_sweep
from test_alert_contract import CHAT_AGENT, FORGED_KEY, LIVE_SYNTAX, RAW_FORBIDDEN

from demo import dataset_loader
from handlers.detection.classify import classify
from handlers.detection.records import account_id, as_text
from handlers.response import permissions, security_hub, sinks
from handlers.sweep import function as sweep

NOW = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
SINKS = ("security-hub", "chat", "events")
CASES = dataset_loader.load_cases()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


class Sinks:
    """The chat topic and the event bus captured through SQS; Security Hub faked."""

    def __init__(self, world: World) -> None:
        self.world = world
        sqs, sns, events = world.client("sqs"), world.client("sns"), world.client("events")
        self.chat_queue = sqs.create_queue(QueueName="chat-capture")["QueueUrl"]
        self.event_queue = sqs.create_queue(QueueName="event-capture")["QueueUrl"]
        self.chat_topic = sns.create_topic(Name="s3-exposure-chat")["TopicArn"]
        sns.subscribe(
            TopicArn=self.chat_topic, Protocol="sqs", Endpoint=self._arn(self.chat_queue),
            Attributes={"RawMessageDelivery": "true"},
        )  # fmt: skip
        # A user's own rule on the default bus, as the README shows it.
        events.put_rule(
            Name="exposure-decisions",
            EventPattern=json.dumps(
                {"source": [sinks.EVENT_SOURCE], "detail-type": [sinks.EVENT_DETAIL_TYPE]}
            ),
        )
        events.put_targets(
            Rule="exposure-decisions", Targets=[{"Id": "q", "Arn": self._arn(self.event_queue)}]
        )
        self.hub = SecurityHubFake()
        self.hub.install(world)

    def _arn(self, url: str) -> str:
        attributes = self.world.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return attributes["Attributes"]["QueueArn"]

    def configure(self, **env: str) -> None:
        self.world.configure(
            SECURITY_HUB="true", DECISION_EVENTS="true", CHAT_TOPIC_ARN=self.chat_topic,
            ACTOR_HISTORY_SECONDS="0", **env,
        )  # fmt: skip

    def drain(self, url: str) -> list[dict[str, Any]]:
        sqs, found = self.world.client("sqs"), []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def chats(self) -> list[dict[str, Any]]:
        return self.drain(self.chat_queue)

    def events(self) -> list[dict[str, Any]]:
        return self.drain(self.event_queue)


@pytest.fixture
def out(world: World) -> Sinks:
    return Sinks(world)


def expose(world: World, bucket: str) -> dict[str, Any]:
    record = make_record("PutBucketPolicy", bucket, {"bucketPolicy": public_policy(bucket)})
    world.s3.create_bucket(Bucket=bucket)
    world.replay(record)
    return record


def check_chat(message: dict[str, Any]) -> None:
    """Amazon Q Developer's custom notification schema, with nothing live in it."""
    assert message["version"] == "1.0" and message["source"] == "custom"
    content = message["content"]
    assert set(content) >= {"title", "description"} and content["textType"] == "client-markdown"
    assert len(content["title"]) <= sinks.CHAT_TITLE_MAX
    assert isinstance(content["nextSteps"], list) and isinstance(content["keywords"], list)
    for text in (content["title"], content["description"], *content["nextSteps"], *content["keywords"]):
        assert not LIVE_SYNTAX.search(text), text
        assert not RAW_FORBIDDEN.search(text.replace("\n", " ")), text
        for url in (w for w in text.split() if "://" in w):
            assert url.startswith("https://") and ".console.aws.amazon.com" in url, url


# ---- every labelled decision, everywhere ------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_dataset_decision_reaches_every_sink_valid(case: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    record = copy.deepcopy(case.record)
    account = account_id(record) or ACCOUNT
    region = as_text(record.get("awsRegion")) or REGION
    findings = classify(record, case.detector)
    with world_for(monkeypatch, account, region) as world:
        out = Sinks(world)
        world.replay(record)
        if record["eventName"] == "PutBucketPolicy" and not record.get("errorCode"):
            # AWS's verdict on the stored policy is the case's label (moto's own is simplistic).
            is_public = case.expect["verdict"] == "public"
            world.answer("s3", "GetBucketPolicyStatus", lambda _p: {"PolicyStatus": {"IsPublic": is_public}})
        out.configure(REMEDIATION_MODE="enforce", **case.detector.to_environment())
        world.calls.clear()
        summary = world.invoke(record)
        alerts = world.alerts()
        granted = {(c.service, c.operation) for c in permissions.calls_for("enforce", False, SINKS)}
        assert set(world.calls) <= granted
        if summary["outcome"] != "handled":
            assert out.hub.requests == [] and out.chats() == [] and out.events() == []
            return
        assert len(alerts) == len(findings)
        imported = [b for op, b in out.hub.requests if op == "BatchImportFindings"]
        assert len(imported) == len(alerts)
        for body, alert in zip(imported, alerts, strict=True):
            (asff,) = body["Findings"]
            assert asff_problems(asff) == []
            assert asff["AwsAccountId"] == world.account
            assert (
                asff["ProductArn"]
                == f"arn:aws:securityhub:{region}:{world.account}:product/{world.account}/default"
            )
            assert asff["Severity"]["Label"] == security_hub.LABELS[alert.payload["severity"]]
            fields = asff["ProductFields"]
            assert fields["s3-exposure-detector/verdict"] == alert.payload["finding"]["verdict"]
            assert fields["s3-exposure-detector/route"] == alert.payload["finding"]["route"]
            assert asff["SourceUrl"] == alert.payload["links"]["cloudtrailEvent"]
            expected = security_hub.workflow_status(alert.payload)
            gone = alert.payload["exposure"]["status"] == "gone"
            assert out.hub.status(asff["Id"]) == (expected, "ARCHIVED" if gone else "ACTIVE")
        chats = out.chats()
        assert len(chats) == len(alerts)
        for message in chats:
            check_chat(message)
        events = out.events()
        assert sorted(e["detail"]["finding"]["eventID"] for e in events) == sorted(
            a.payload["finding"]["eventID"] for a in alerts
        )
        for event in events:
            assert event["source"] == sinks.EVENT_SOURCE and event["detail-type"] == sinks.EVENT_DETAIL_TYPE
            assert event["detail"]["schema"] == "s3-public-exposure-alert/1"


# ---- identity and lifecycle -------------------------------------------------------------------------


def test_a_redetection_updates_the_same_finding(world: World, out: Sinks) -> None:
    out.configure(REMEDIATION_MODE="off")
    record = expose(world, "exports-eu")
    world.invoke(record)
    again = make_record(
        "PutBucketPolicy", "exports-eu", {"bucketPolicy": public_policy("exports-eu", Sid="Again")}
    )
    world.replay(again)
    world.invoke(again)
    assert list(out.hub.findings) == [f"{ACCOUNT}/{REGION}/exports-eu/policy"]
    finding = out.hub.findings[f"{ACCOUNT}/{REGION}/exports-eu/policy"]
    assert finding["ProductFields"]["s3-exposure-detector/eventID"] == again["eventID"]
    assert out.hub.status(finding["Id"]) == ("NEW", "ACTIVE")


def test_detect_then_remediate_then_resolved(world: World, out: Sinks) -> None:
    out.configure(REMEDIATION_MODE="off")
    world.invoke(expose(world, "exports-eu"))
    finding_id = f"{ACCOUNT}/{REGION}/exports-eu/policy"
    assert out.hub.status(finding_id) == ("NEW", "ACTIVE")
    # The operator turns enforcement on; the next change is closed by us: the finding resolves,
    # through BatchUpdateFindings (an import cannot change the workflow of an existing finding).
    out.configure(REMEDIATION_MODE="enforce")
    again = make_record(
        "PutBucketPolicy", "exports-eu", {"bucketPolicy": public_policy("exports-eu", Sid="B")}
    )
    world.replay(again)
    summary = world.invoke(again)
    assert summary["findings"][0]["remediation"] == "applied"
    assert out.hub.status(finding_id) == ("RESOLVED", "ACTIVE")
    update = [b for op, b in out.hub.requests if op == "BatchUpdateFindings"][-1]
    assert update["Workflow"] == {"Status": "RESOLVED"} and set(update) == {
        "FindingIdentifiers",
        "Workflow",
        "Note",
    }
    recommendation = out.hub.findings[finding_id]["Remediation"]["Recommendation"]["Text"]
    assert "undo" in recommendation and "aws s3api" in recommendation


def test_an_approved_exception_is_suppressed(world: World, out: Sinks) -> None:
    out.configure(REMEDIATION_MODE="enforce", EXCEPTION_BUCKETS='["public-site-*"]')
    world.invoke(expose(world, "public-site-www"))
    assert out.hub.status(f"{ACCOUNT}/{REGION}/public-site-www/policy") == ("SUPPRESSED", "ACTIVE")


def test_the_sweep_resolves_a_closed_bucket_and_archives_a_deleted_one(world: World, out: Sinks) -> None:
    out.configure(REMEDIATION_MODE="off")
    world.invoke(expose(world, "closes-later"))
    world.invoke(expose(world, "deleted-later"))
    world.invoke(expose(world, "closes-lateral"))  # its name starts with another's: never touched
    world.s3.delete_bucket_policy(Bucket="closes-later")
    world.s3.delete_bucket_policy(Bucket="deleted-later")
    world.s3.delete_bucket(Bucket="deleted-later")
    configure_sweep(world, SECURITY_HUB="true", ACTOR_HISTORY_SECONDS="0")
    sweep.reset_settings()
    summary = sweep.run_scheduled(sweep.current_settings(), now=NOW)
    assert summary["counts"].get("BucketErrors", 0) == 0
    assert out.hub.status(f"{ACCOUNT}/{REGION}/closes-later/policy") == ("RESOLVED", "ACTIVE")
    assert out.hub.status(f"{ACCOUNT}/{REGION}/deleted-later/policy") == ("RESOLVED", "ARCHIVED")
    assert out.hub.status(f"{ACCOUNT}/{REGION}/closes-lateral/policy") == ("NEW", "ACTIVE")
    granted = {(c.service, c.operation) for c in permissions.sweep_calls_for("off", ("security-hub",))}
    assert set(world.calls) <= granted | {
        (c.service, c.operation) for c in permissions.calls_for("off", False, SINKS)
    }


def test_a_failed_resolve_keeps_the_exposure_for_the_next_run(world: World, out: Sinks) -> None:
    out.configure(REMEDIATION_MODE="off")
    world.invoke(expose(world, "closes-later"))
    world.s3.delete_bucket_policy(Bucket="closes-later")
    configure_sweep(world, SECURITY_HUB="true", ACTOR_HISTORY_SECONDS="0")
    world.fail("securityhub", "GetFindings", "AccessDenied")
    sweep.reset_settings()
    first = sweep.run_scheduled(sweep.current_settings(), now=NOW)
    assert first["counts"]["BucketErrors"] >= 1
    assert out.hub.status(f"{ACCOUNT}/{REGION}/closes-later/policy") == ("NEW", "ACTIVE")
    world.heal()
    sweep.run_scheduled(sweep.current_settings(), now=NOW + timedelta(hours=1))
    assert out.hub.status(f"{ACCOUNT}/{REGION}/closes-later/policy") == ("RESOLVED", "ACTIVE")


# ---- nothing lost, nothing sent twice -----------------------------------------------------------------


def test_a_failed_sink_is_retried_alone(world: World, out: Sinks) -> None:
    out.configure(REMEDIATION_MODE="off")
    record = expose(world, "exports-eu")
    world.fail("securityhub", "BatchImportFindings", "AccessDenied")
    with pytest.raises(Exception, match="could not be published"):
        world.invoke(record)
    assert len(world.alerts()) == 1 and len(out.chats()) == 1 and len(out.events()) == 1
    assert out.hub.findings == {}
    world.heal()
    summary = world.invoke(record)  # Lambda's retry of the same event
    assert summary["outcome"] == "resent"
    assert world.alerts() == [] and out.chats() == [] and out.events() == []  # not sent twice
    assert list(out.hub.findings) == [f"{ACCOUNT}/{REGION}/exports-eu/policy"]


def test_sinks_off_by_config_make_no_calls(world: World, out: Sinks) -> None:
    world.configure(REMEDIATION_MODE="off", ACTOR_HISTORY_SECONDS="0")
    world.calls.clear()
    world.invoke(expose(world, "exports-eu"))
    assert len(world.alerts()) == 1
    assert not [c for c in world.calls if c[0] in ("securityhub", "events")]
    assert out.chats() == [] and out.hub.requests == []


# ---- hostile values -------------------------------------------------------------------------------------


HOSTILE_KEY = FORGED_KEY + " <!here> [click](https://evil.example) @channel \u202e\x1b[31m"


def test_hostile_fields_stay_inert_in_chat_and_valid_in_security_hub(world: World, out: Sinks) -> None:
    out.configure(REMEDIATION_MODE="off")
    world.s3.create_bucket(Bucket="exports-eu")
    record = make_record(
        "PutObjectAcl", "exports-eu", {"key": HOSTILE_KEY, "x-amz-acl": ["public-read"]},
    )  # fmt: skip
    record["userAgent"] = CHAT_AGENT
    record["userIdentity"]["userName"] = "<@U0123|admin> @here"
    world.s3.put_object(Bucket="exports-eu", Key=HOSTILE_KEY, Body=b"x")
    world.invoke(record)
    (chat,) = out.chats()
    check_chat(chat)
    (asff,) = out.hub.findings.values()
    assert asff_problems(asff) == []
    assert asff["Id"] == f"{ACCOUNT}/{REGION}/exports-eu/object-acl"
    for value in (asff["Title"], asff["Description"], *asff["ProductFields"].values()):
        assert not LIVE_SYNTAX.search(value) and not RAW_FORBIDDEN.search(value)


@pytest.mark.parametrize(
    "bucket",
    ["a b;rm -rf ~", "x" * 5000, "../../etc", "", None, 12, ["list"], "acme\nexports"],
)
def test_a_hostile_bucket_value_still_gives_a_valid_bounded_finding(bucket: Any) -> None:
    payload = {
        "subject": "[HIGH] S3 bucket made public",
        "severity": "high",
        "finding": {
            "bucket": bucket,
            "scope": "bucket",
            "kind": "policy",
            "verdict": "public",
            "eventTime": bucket,
        },
        "exposure": {"status": "public-now", "bucket_bpa": {"BlockPublicAcls": "yes", 7: 1}},
        "remediation": {"status": "skipped", "fix": "aws s3api put-public-access-block --bucket x"},
        "links": {"cloudtrailEvent": "javascript:alert(1)"},
    }
    asff = security_hub.build(payload, region=REGION, account=ACCOUNT, now=NOW)
    assert asff_problems(asff) == []
    assert "SourceUrl" not in asff
    assert len(asff["Id"]) <= 512 and "\n" not in asff["Id"] and " " not in asff["Id"]


def test_the_sweeps_finding_shares_the_events_id() -> None:
    sweep_finding = {"kind": "sweep", "scope": "bucket", "bucket": "b1"}
    exposure = {"paths": [{"via": "bucket-acl", "effective": False}, {"via": "policy", "effective": True}]}
    assert security_hub.path_of(sweep_finding, exposure) == "policy"
    assert security_hub.path_of({"kind": "acl", "scope": "object"}) == "object-acl"
    assert security_hub.path_of({"kind": "a/b c"}) == "other"
    # A failed attempt never reopens or overwrites the exposure's own finding.
    assert (
        security_hub.path_of({"kind": "policy", "scope": "bucket", "verdict": "attempt"}) == "policy-attempt"
    )


def test_moto_takes_the_findings_through_a_real_client(world: World) -> None:
    """moto's own Security Hub accepts the import (its store, not our fake)."""
    hub = world.client("securityhub")
    hub.enable_security_hub()
    payload = {
        "subject": "[CRITICAL] S3 bucket exports-eu made public",
        "severity": "critical",
        "finding": {"bucket": "exports-eu", "scope": "bucket", "kind": "policy", "verdict": "public",
                    "eventName": "PutBucketPolicy", "sourceIPAddress": "203.0.113.9",
                    "eventTime": "2026-12-04T09:00:00Z"},
        "exposure": {"status": "public-now"},
        "remediation": {"status": "skipped", "fix": "aws s3api put-public-access-block --bucket exports-eu"},
    }  # fmt: skip
    response = hub.batch_import_findings(
        Findings=[security_hub.build(payload, region=REGION, account=ACCOUNT, now=NOW)]
    )
    assert response["FailedCount"] == 0
    (stored,) = hub.get_findings()["Findings"]
    assert stored["Id"] == f"{ACCOUNT}/{REGION}/exports-eu/policy"
    assert stored["Action"]["AwsApiCallAction"]["RemoteIpDetails"]["IpAddressV4"] == "203.0.113.9"


def test_event_entry_fits_the_bus_for_any_payload() -> None:
    from handlers.response.alert import Alert

    huge = Alert(
        subject="[HIGH] x",
        text="t" * 500_000,
        payload={
            "schema": "s3-public-exposure-alert/1",
            "finding": {"bucket": "b1", "reasons": ["r" * 300_000] * 3},
        },
        attributes={},
    )
    entry = sinks.event_entry(huge, REGION)
    size = sum(len(str(entry[k]).encode()) for k in ("Source", "DetailType", "Detail")) + len(
        json.dumps(entry.get("Resources", []))
    )
    assert size <= 256 * 1024
    assert json.loads(entry["Detail"])["shrunk"]["originalBytes"] > 256 * 1024

"""The response Lambda's decisions, scenario by scenario, against moto.

Each test sets a bucket's real state, delivers one event through the handler and
checks the alert, the remediation and the state left behind.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from response_fixtures import ALL_ON, World, build_world, in_days, make_record, only_alert, public_policy

from handlers.response.decision_log import record_fields
from handlers.response.response_config import ConfigError

BUCKET = "acme-exports"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


def put_policy(world: World, bucket: str, policy: dict[str, Any]) -> dict[str, Any]:
    """Really store ``policy`` and return the CloudTrail record of that call."""
    record = make_record("PutBucketPolicy", bucket, {"bucketPolicy": policy})
    world.replay(record)
    return record


# --- duplicates and loops ------------------------------------------------------------------------


def test_duplicate_delivery_neither_acts_nor_alerts_twice(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = put_policy(world, BUCKET, public_policy(BUCKET))
    first = world.invoke(record)
    second = world.invoke(record)
    assert first["outcome"] == "handled" and second["outcome"] == "duplicate"
    assert len(world.alerts()) == 1
    assert world.handler_calls("s3").count("PutPublicAccessBlock") == 1


def test_own_remediation_event_ends_quietly(world: World) -> None:
    """Loop safety: the PutBucketPublicAccessBlock of enforce mode raises an event that does nothing."""
    world.configure(REMEDIATION_MODE="enforce")
    world.invoke(put_policy(world, BUCKET, public_policy(BUCKET)))
    alert = only_alert(world)
    assert alert.payload["remediation"]["status"] == "applied"
    put = next(p for s, op, p in world.call_params if (s, op) == ("s3", "PutPublicAccessBlock"))
    body = put["body"].decode() if isinstance(put["body"], bytes) else put["body"]
    flags = {flag: f"<{flag}>true</{flag}>" in body for flag in ALL_ON}
    echoed = make_record(
        "PutBucketPublicAccessBlock",
        BUCKET,
        {"PublicAccessBlockConfiguration": {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/", **flags}},
        user_agent="[Boto3/1.34 md/Botocore#1.34 ua/2.0 os/linux exec-env/AWS_Lambda_python3.11]",
    )
    world.calls.clear()
    summary = world.invoke(echoed)
    assert summary["outcome"] == "ignored"
    assert world.alerts() == [] and world.calls == []


# --- exceptions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag_value", "approved"),
    [
        ((datetime.now(UTC) + timedelta(days=30)).date().isoformat(), True),
        ((datetime.now(UTC) + timedelta(hours=2)).isoformat(timespec="seconds"), True),
        ((datetime.now(UTC) - timedelta(days=1)).date().isoformat(), False),
        ((datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds"), False),
        ("next-quarter", False),
        ((datetime.now(UTC) + timedelta(days=30)).strftime("%Y%m%d"), True),
        ((datetime.now(UTC) + timedelta(days=91)).date().isoformat(), False),
        ("9999-12-31", False),
        ("9999-12-31T23:59:59-12:00", False),
        ("x" * 5000, False),
    ],
    ids=[
        "date-valid",
        "datetime-valid",
        "date-expired",
        "datetime-expired",
        "unreadable",
        "basic-format-valid",
        "beyond-90-day-horizon",
        "max-date-overflow",
        "max-datetime-offset",
        "huge-value",
    ],
)
def test_approval_tag_with_expiry(world: World, tag_value: str, approved: bool) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = put_policy(world, BUCKET, public_policy(BUCKET))
    world.s3.put_bucket_tagging(
        Bucket=BUCKET, Tagging={"TagSet": [{"Key": "public-access-approved-until", "Value": tag_value}]}
    )
    world.invoke(record)
    alert = only_alert(world)
    if approved:
        assert alert.payload["severity"] == "low"
        assert alert.payload["approval"]["basis"] == "tag" and alert.payload["approval"]["approved"]
        assert alert.payload["remediation"]["status"] == "skipped"
        assert world.bucket_bpa(BUCKET) is None
        assert "approved exception" in alert.text
    else:
        assert alert.payload["severity"] in ("high", "critical")
        assert not alert.payload["approval"]["approved"]
        assert world.bucket_bpa(BUCKET) == ALL_ON


@pytest.mark.parametrize(
    ("bucket", "listed"),
    [("public-site-www", True), ("public-x", True), ("acme-public-site", False), ("publicsite", False)],
)
def test_allow_list_globs(world: World, bucket: str, listed: bool) -> None:
    world.configure(REMEDIATION_MODE="enforce", EXCEPTION_BUCKETS=json.dumps(["public-*", "assets-??"]))
    world.invoke(put_policy(world, bucket, public_policy(bucket)))
    alert = only_alert(world)
    assert (alert.payload["approval"]["basis"] == "allow-list") is listed
    assert (world.bucket_bpa(bucket) is None) is listed
    assert (alert.payload["severity"] == "low") is listed


def test_custom_approval_tag_name(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce", APPROVAL_TAG="ok-public-until")
    record = put_policy(world, BUCKET, public_policy(BUCKET))
    world.s3.put_bucket_tagging(
        Bucket=BUCKET, Tagging={"TagSet": [{"Key": "ok-public-until", "Value": in_days(30)}]}
    )
    world.invoke(record)
    assert only_alert(world).payload["approval"]["approved"]


# --- account checks ------------------------------------------------------------------------------


def test_event_from_unexpected_account_is_refused_alerted_and_not_acted_on(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce", EXPECTED_ACCOUNT_ID="999988887777")
    record = put_policy(world, BUCKET, public_policy(BUCKET))
    world.calls.clear()
    assert world.invoke(record)["outcome"] == "rejected"
    alert = only_alert(world)
    assert alert.payload["severity"] == "high"
    assert alert.attributes["verdict"] == "rejected"
    assert "999988887777" in alert.payload["rejected"]["reason"]
    assert world.handler_calls("s3") == [] and world.handler_calls("s3control") == []
    assert world.bucket_bpa(BUCKET) is None


def test_moto_policy_status_disagreeing_with_own_analysis_is_reported_and_treated_as_exposed(
    world: World,
) -> None:
    """NotPrincipal+Allow is public; moto's GetBucketPolicyStatus says it is not."""
    world.configure(REMEDIATION_MODE="enforce")
    policy = public_policy(BUCKET)
    statement = policy["Statement"][0]
    del statement["Principal"]
    statement["NotPrincipal"] = {"AWS": "arn:aws:iam::111122223333:role/auditor"}
    world.invoke(put_policy(world, BUCKET, policy))
    alert = only_alert(world)
    exposure = alert.payload["exposure"]
    assert "IsPublic=False" in exposure["disagreement"] and "public" in exposure["disagreement"]
    assert "DISAGREEMENT" in alert.text
    assert exposure["status"] == "public-now"
    assert world.bucket_bpa(BUCKET) == ALL_ON


def test_aws_says_public_our_analysis_not_still_exposed(world: World) -> None:
    world.configure(REMEDIATION_MODE="dry-run")
    policy = public_policy(BUCKET, Condition={"StringEquals": {"aws:SourceVpce": "vpce-0a1b2c3d"}})
    put_policy(world, BUCKET, policy)
    world.answer("s3", "GetBucketPolicyStatus", lambda _p: {"PolicyStatus": {"IsPublic": True}})
    # The put itself is not public by our analysis; a guard removal makes the handler look.
    world.invoke(make_record("DeleteBucketPublicAccessBlock", BUCKET))
    alert = only_alert(world)
    assert "IsPublic=True" in alert.payload["exposure"]["disagreement"]
    assert alert.payload["exposure"]["status"] == "public-now"
    assert alert.payload["remediation"]["status"] == "would-apply"


def test_conditioned_private_policy_agreeing_with_aws_is_closed(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    policy = public_policy(BUCKET, Condition={"StringEquals": {"aws:SourceVpce": "vpce-0a1b2c3d"}})
    record = make_record("PutBucketPolicy", BUCKET, {"bucketPolicy": policy})
    world.replay(record)
    # An event that classifies as undetermined forces the confirmation of this bucket.
    truncated = make_record("PutBucketPolicy", BUCKET, {"bucketPolicy": json.dumps(policy)[:40]})
    world.answer("s3", "GetBucketPolicyStatus", lambda _p: {"PolicyStatus": {"IsPublic": False}})
    world.invoke(truncated)
    alert = only_alert(world)
    assert alert.payload["finding"]["verdict"] == "undetermined"
    assert (
        alert.payload["exposure"]["status"] == "closed" and alert.payload["exposure"]["disagreement"] is None
    )
    assert alert.payload["severity"] == "medium"
    assert alert.payload["remediation"]["status"] == "not-needed"
    assert world.bucket_bpa(BUCKET) is None


def test_undetermined_event_on_public_bucket_rates_high(world: World) -> None:
    world.configure(REMEDIATION_MODE="off", ENVIRONMENT="staging")
    world.replay(make_record("PutBucketPolicy", BUCKET, {"bucketPolicy": public_policy(BUCKET)}))
    world.invoke(make_record("PutBucketPolicy", BUCKET, {"bucketPolicy": '{"Version": "2012-10-17", "Sta'}))
    alert = only_alert(world)
    assert alert.payload["exposure"]["status"] == "public-now"
    assert alert.payload["severity"] == "high"
    assert alert.subject.startswith(f"[HIGH] S3 bucket {BUCKET} possibly made public")


def test_bpa_removal_re_exposes_an_old_public_acl(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    world.s3.create_bucket(Bucket=BUCKET, ACL="public-read")
    world.s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=ALL_ON)
    record = make_record("DeleteBucketPublicAccessBlock", BUCKET)
    world.replay(record)
    world.invoke(record)
    alert = only_alert(world)
    exposure = alert.payload["exposure"]
    assert exposure["status"] == "public-now" and exposure["access"] == ["read"]
    assert exposure["paths"][0]["via"] == "bucket-acl"
    assert alert.subject == (
        "[HIGH] S3 bucket acme-exports BPA weakened, now public (read) in prod-payments 111122223333"
    )
    assert alert.payload["remediation"]["previous_state"] == "not-set"
    assert (
        "aws s3api delete-public-access-block --bucket acme-exports --expected-bucket-owner 111122223333"
        in (alert.text)
    )
    assert world.bucket_bpa(BUCKET) == ALL_ON


def test_bpa_removal_with_nothing_public_is_medium_and_left_alone(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    world.s3.create_bucket(Bucket=BUCKET)
    record = make_record("DeleteBucketPublicAccessBlock", BUCKET)
    world.invoke(record)
    alert = only_alert(world)
    assert alert.payload["exposure"]["status"] == "closed"
    assert alert.payload["severity"] == "medium"
    assert alert.payload["remediation"]["status"] == "not-needed"
    assert world.bucket_bpa(BUCKET) is None


def test_public_policy_held_back_by_account_bpa_is_exposable(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = put_policy(world, BUCKET, public_policy(BUCKET))
    world.s3control.put_public_access_block(AccountId=world.account, PublicAccessBlockConfiguration=ALL_ON)
    world.invoke(record)
    alert = only_alert(world)
    exposure = alert.payload["exposure"]
    assert exposure["status"] == "exposable"
    assert exposure["paths"][0]["held_back_by"] == ["RestrictPublicBuckets"]
    assert alert.payload["severity"] == "medium"
    # One account-level change away from public: the bucket gets its own guard.
    assert world.bucket_bpa(BUCKET) == ALL_ON


@pytest.mark.parametrize(
    ("guard", "held_by"),
    [("ignore-public-acls", "IgnorePublicAcls"), ("ownership-enforced", "ownership BucketOwnerEnforced")],
)
def test_public_acl_neutralised(world: World, guard: str, held_by: str) -> None:
    world.configure(REMEDIATION_MODE="dry-run")
    record = make_record("PutBucketAcl", BUCKET, {"x-amz-acl": "public-read-write"})
    world.replay(record)
    if guard == "ignore-public-acls":
        flags = {**dict.fromkeys(ALL_ON, False), "IgnorePublicAcls": True}
        world.s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=flags)
    else:
        controls = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        world.s3.put_bucket_ownership_controls(Bucket=BUCKET, OwnershipControls=controls)
    world.invoke(record)
    exposure = only_alert(world).payload["exposure"]
    assert exposure["status"] == "exposable"
    assert exposure["paths"][0]["held_back_by"] == [held_by]


def test_only_block_flags_do_not_hide_an_existing_public_policy(world: World) -> None:
    """BlockPublicPolicy refuses new puts; it does not neutralise a policy already there."""
    world.configure(REMEDIATION_MODE="off")
    record = put_policy(world, BUCKET, public_policy(BUCKET))
    flags = {**ALL_ON, "RestrictPublicBuckets": False}
    world.s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=flags)
    world.invoke(record)
    alert = only_alert(world)
    assert alert.payload["exposure"]["status"] == "public-now"
    assert alert.payload["remediation"]["status"] == "skipped"
    assert "RestrictPublicBuckets=off" in alert.text


def test_object_acl_closed_by_bucket_ignore_public_acls(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = make_record("PutObjectAcl", BUCKET, {"key": "q1/report.pdf", "x-amz-acl": "public-read"})
    world.replay(record)
    world.invoke(record)
    alert = only_alert(world)
    assert alert.subject.startswith(f"[HIGH] S3 object in bucket {BUCKET} made public (read)")
    assert alert.payload["exposure"]["paths"][0]["via"] == "object-acl"
    assert "object q1/report.pdf in bucket" in alert.text
    assert world.bucket_bpa(BUCKET) == ALL_ON


# --- severity ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "canned", "tags", "expected"),
    [
        ("production", "public-read-write", {}, "critical"),
        ("prod", "public-read-write", {}, "critical"),
        ("staging", "public-read-write", {}, "high"),
        ("production", "public-read", {}, "high"),
        ("staging", "public-read", {"data-classification": "Confidential"}, "critical"),
        ("staging", "public-read", {"data-classification": "public"}, "high"),
    ],
)
def test_severity_levels(
    world: World, environment: str, canned: str, tags: dict[str, str], expected: str
) -> None:
    world.configure(ENVIRONMENT=environment)
    record = make_record("PutBucketAcl", BUCKET, {"x-amz-acl": canned})
    world.replay(record)
    if tags:
        tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
        world.s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": tag_set})
    world.invoke(record)
    alert = only_alert(world)
    assert alert.payload["severity"] == expected
    assert alert.subject.startswith(f"[{expected.upper()}] S3 bucket {BUCKET} made public")


def test_critical_subject_matches_the_documented_example(world: World) -> None:
    world.configure(ACCOUNT_NAME="prod-payments")
    record = make_record("PutBucketAcl", BUCKET, {"x-amz-acl": "public-read-write"})
    world.replay(record)
    world.invoke(record)
    assert only_alert(world).subject == (
        "[CRITICAL] S3 bucket acme-exports made public (read, write) in prod-payments 111122223333"
    )


def test_failed_attempt_is_low_and_changes_nothing(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    world.s3.create_bucket(Bucket=BUCKET)
    world.calls.clear()
    world.invoke(make_record("PutBucketAcl", BUCKET, {"x-amz-acl": "public-read"}, error="AccessDenied"))
    alert = only_alert(world)
    assert alert.payload["severity"] == "low"
    assert alert.subject.startswith("[LOW] Failed attempt to expose S3 bucket acme-exports")
    assert world.handler_calls("s3") == []
    assert world.bucket_bpa(BUCKET) is None


# --- account level -------------------------------------------------------------------------------


def test_account_weakening_spells_out_the_fix_and_is_not_remediated_by_default(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = make_record("DeleteAccountPublicAccessBlock", None)
    record["requestParameters"] = {"Host": f"{world.account}.s3-control.us-east-1.amazonaws.com"}
    world.s3control.put_public_access_block(AccountId=world.account, PublicAccessBlockConfiguration=ALL_ON)
    world.replay(record)
    world.invoke(record)
    alert = only_alert(world)
    assert (
        alert.subject == "[HIGH] S3 account-level Block Public Access weakened in prod-payments 111122223333"
    )
    assert alert.payload["remediation"]["status"] == "skipped"
    assert "ALLOW_ACCOUNT_REMEDIATION=false" in alert.text
    fix = (
        "aws s3control put-public-access-block --account-id 111122223333 --public-access-block-configuration "
        "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true"
    )
    assert fix in alert.text
    assert world.account_bpa() is None


# --- alert format --------------------------------------------------------------------------------


def test_subject_is_truncated_safely_keeping_the_account(world: World) -> None:
    bucket = "a" * 38 + "-very-long-bucket-name-xy"  # 63 characters, the S3 maximum
    world.configure(ACCOUNT_NAME="Zahlungsverkehr-\u00fcberwacht\n-Konto")
    record = make_record("PutBucketAcl", bucket, {"x-amz-acl": "public-read"})
    world.replay(record)
    world.invoke(record)
    subject = only_alert(world).subject
    assert len(subject) == 99 and subject.isascii() and "\n" not in subject
    assert subject.startswith("[HIGH] S3 bucket aaaa")
    assert subject.endswith("... in Zahlungsverkehr-uberwacht -Konto 111122223333")


def test_alert_body_has_who_when_why_and_links(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = put_policy(world, BUCKET, public_policy(BUCKET))
    world.invoke(record)
    alert = only_alert(world)
    text = alert.text
    for expected in (
        "Actor: arn:aws:sts::111122223333:assumed-role/dev-admin/alice",
        "Source IP: 198.51.100.23",
        "Origin: the AWS CLI",
        "Event time: 2026-11-02T09:14:23Z",
        "Why: statement 'PublicRead' allows read to *",
        "AttributeKey=Username,AttributeValue=alice",
        f"https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?region=us-east-1#/events/{record['eventID']}",
        f"https://s3.console.aws.amazon.com/s3/buckets/{BUCKET}?region=us-east-1&tab=permissions",
        "Exposure window 2026-11-02T09:14:23Z -> ",
    ):
        assert expected in text
    assert alert.attributes["remediation"] == "applied" and alert.attributes["bucket"] == BUCKET
    assert alert.payload["schema"] == "s3-public-exposure-alert/1"


def test_one_json_log_line_per_decision(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="handlers")
    world.invoke(put_policy(world, BUCKET, public_policy(BUCKET)))
    world.invoke(
        make_record("PutBucketVersioning", BUCKET, {"VersioningConfiguration": {"Status": "Enabled"}})
    )
    lines = [record_fields(r) for r in caplog.records if r.name == "handlers.response.function"]
    # The message is the decision's name; its fields are top-level keys of the runtime's JSON line.
    assert [r.getMessage() for r in caplog.records if r.name == "handlers.response.function"] == [
        "finding",
        "published",
        "ignored",
    ]
    assert [line["decision"] for line in lines] == ["finding", "published", "ignored"]
    assert all(json.loads(json.dumps(line)) == line for line in lines)  # JSON as they are


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ALERT_TOPIC_ARN", ""),
        ("ALERT_TOPIC_ARN", "not-an-arn"),
        ("EXPECTED_ACCOUNT_ID", "12345"),
        ("IDEMPOTENCY_TABLE", ""),
        ("REMEDIATION_MODE", "fix-everything"),
        ("ALLOW_ACCOUNT_REMEDIATION", "maybe"),
        ("EXCEPTION_BUCKETS", "public-*"),
        ("EXCEPTION_BUCKETS", '{"a": 1}'),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_setting_raises_naming_the_variable(world: World, variable: str, value: str) -> None:
    world.configure(**{variable: value})
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        world.invoke(make_record("PutBucketAcl", BUCKET, {"x-amz-acl": "public-read"}))
    assert world.alerts() == []

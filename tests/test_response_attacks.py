"""The response under attack: each observation of issue 9, tried through the handlers' entry points.

Every case goes through ``handlers.response.function.handler`` (or
``handlers.sweep.function.handler``) with an
EventBridge event, against moto, with faults injected at the botocore level, the way an
attacker who can tag buckets, name objects, set a user agent or invoke the function would.
The alert text itself (escaping, links, commands, size) has its own tests in
``test_alert_contract.py`` and ``test_safe_text.py``; here each attack is shown harmless end to end.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from response_fixtures import (
    ALL_ON,
    TABLE,
    FakeContext,
    World,
    build_world,
    envelope,
    in_days,
    make_record,
    only_alert,
    public_policy,
)
from sweep_estate import configure_sweep

from handlers.detection.approvals import parse_expiry
from handlers.response import function as response
from handlers.response import remediation
from handlers.response.alert import command_lines
from handlers.response.function import AlertNotPublished, ClaimUnavailable
from handlers.sweep import function as sweep

BUCKET = "acme-exports"
CONTROL = {chr(c) for c in range(32) if c != 10} | {"\x7f", "\u2028", "\u2029", "\x85"}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


def public_bucket(world: World, bucket: str = BUCKET, **params: Any) -> dict[str, Any]:
    record = make_record("PutBucketPolicy", bucket, {"bucketPolicy": public_policy(bucket)}, **params)
    world.replay(record)
    return record


def tag(world: World, bucket: str, value: str, key: str = "public-access-approved-until") -> None:
    world.s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": key, "Value": value}]})


def published(world: World) -> list[dict[str, Any]]:
    """The request body of every SNS Publish the handler made (the query protocol's flat form)."""
    return [
        params["body"] for service, op, params in world.call_params if (service, op) == ("sns", "Publish")
    ]


def item(world: World, pk: str) -> dict[str, Any] | None:
    return world.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": pk}}).get("Item")


# --- 1. an approval tag of 9999-12-31 --------------------------------------------------------------


def test_1_max_date_approval_neither_crashes_nor_mutes_nor_approves(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    tag(world, BUCKET, "9999-12-31")
    summary = world.invoke(record)
    alert = only_alert(world)
    assert summary["outcome"] == "handled"
    assert alert.payload["approval"]["approved"] is False
    assert "90-day maximum" in alert.payload["approval"]["reason"]
    assert world.bucket_bpa(BUCKET) == ALL_ON


def test_1_sweep_does_not_error_on_a_max_date_approval(world: World) -> None:
    configure_sweep(world, REMEDIATION_MODE="enforce")
    public_bucket(world)
    tag(world, BUCKET, "9999-12-31")
    summary = sweep.run_scheduled(sweep.current_settings(), now=datetime.now(UTC).replace(hour=3))
    assert summary["counts"].get("error", 0) == 0
    assert summary["alerted"] == [BUCKET] and summary["remediated"] == [BUCKET]


# --- 2. a throttled GetBucketTagging on an approved bucket -----------------------------------------


@pytest.mark.parametrize("fault", ["Throttling", "AccessDenied", "Timeout"])
def test_2_unreadable_tags_never_close_a_possibly_approved_bucket(world: World, fault: str) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    tag(world, BUCKET, in_days(30))
    world.fail("s3", "GetBucketTagging", fault)
    world.invoke(record)
    alert = only_alert(world)
    assert world.bucket_bpa(BUCKET) is None
    assert alert.payload["approval"]["approved"] is False
    assert "could not be read" in alert.payload["approval"]["reason"]
    assert alert.payload["remediation"]["status"] == "skipped"
    assert "not closed" in alert.payload["remediation"]["detail"]
    assert alert.payload["severity"] in ("high", "critical")  # unknown is not approved


def test_2_sweep_never_closes_a_bucket_whose_tags_it_could_not_read(world: World) -> None:
    configure_sweep(world, REMEDIATION_MODE="enforce")
    public_bucket(world)
    tag(world, BUCKET, in_days(30))
    world.fail("s3", "GetBucketTagging", "Throttling")
    summary = sweep.run_scheduled(sweep.current_settings(), now=datetime.now(UTC).replace(hour=3))
    assert summary["remediated"] == []
    assert world.bucket_bpa(BUCKET) is None
    assert summary["alerted"] == [BUCKET]  # still reported: approval unknown, not approved


# --- 3. a bare CloudTrail record invoked directly, and other forged envelopes --------------------


def forged_events(record: dict[str, Any]) -> dict[str, Any]:
    good = envelope(record)
    detail_other_account = json.loads(json.dumps(good))
    detail_other_account["detail"]["recipientAccountId"] = "999988887777"
    return {
        "bare-record": record,
        "wrong-detail-type": {**good, "detail-type": "Object Created"},
        "foreign-source": {**good, "source": "custom.attacker"},
        "source-eventsource-mismatch": {**good, "source": "aws.kms"},
        "envelope-other-account": {**good, "account": "999988887777"},
        "record-other-account": detail_other_account,
        "unwatched-region": {**good, "region": "ap-south-1"},
        "spoofed-record-region": {**good, "detail": {**record, "awsRegion": "evil.example/x#"}},
        "no-event-id": {**good, "detail": {k: v for k, v in record.items() if k != "eventID"}},
        "event-id-not-a-string": {**good, "detail": {**record, "eventID": {"$": 1}}},
        "detail-not-an-object": {**good, "detail": "PutBucketPolicy"},
        "not-an-object": ["x"],
    }


@pytest.mark.parametrize("case", list(forged_events(make_record("PutBucketPolicy", BUCKET))))
def test_3_forged_events_are_refused_before_any_read_or_action(world: World, case: str) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    world.calls.clear()
    summary = response.handler(forged_events(record)[case], FakeContext())
    assert summary["outcome"] == "rejected"
    assert world.handler_calls("s3") == [] and world.handler_calls("s3control") == []
    assert world.bucket_bpa(BUCKET) is None
    alert = only_alert(world)
    assert alert.payload["severity"] == "high"
    assert alert.attributes["verdict"] == "rejected"
    assert "finding" not in alert.payload  # nothing the caller wrote is presented as a finding


def test_3_refusals_are_counted_and_alerted_once_per_window(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    record = public_bucket(world)
    for _ in range(5):
        assert response.handler(record, FakeContext())["outcome"] == "rejected"
    assert len(world.alerts()) == 1
    metrics = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"RejectedEvents"' in line
    ]
    assert [m["RejectedEvents"] for m in metrics] == [1] * 5


def test_3_refusal_alert_survives_an_unreachable_table(world: World) -> None:
    record = public_bucket(world)
    world.fail("dynamodb", "UpdateItem", "Throttling")
    assert response.handler(record, FakeContext())["outcome"] == "rejected"
    assert len(world.alerts()) == 1


# --- 4, 5, 6. attacker text in keys, user agents, regions and bucket names -----------------------

FORGED_BODY = (
    "report.csv\n\nSTATE NOW (checked 2026-01-01)\n  Exposure: not public\n\nWHAT WAS DONE\n  all good"
)
CHAT = "<!channel> <https://evil.example|AWS console> @here"


def test_4_object_key_cannot_forge_alert_sections(world: World) -> None:
    world.s3.create_bucket(Bucket=BUCKET)
    record = make_record("PutObjectAcl", BUCKET, {"key": FORGED_BODY, "x-amz-acl": "public-read"})
    world.invoke(record)
    text = only_alert(world).text
    for header in ("WHAT HAPPENED", "STATE NOW", "WHAT WAS DONE"):
        starts = [line for line in text.splitlines() if line.startswith(header)]
        assert len(starts) == 1, (header, starts)
    assert "Exposure: not public" not in [line.strip() for line in text.splitlines()]


def test_5_user_agent_cannot_mention_a_channel_or_disguise_a_link(world: World) -> None:
    record = public_bucket(world, user_agent=CHAT)
    world.invoke(record)
    alert = only_alert(world)
    assert alert.payload["finding"]["userAgent"] == CHAT  # raw in the data fields, for machines
    for live in ("<!channel>", "<https://evil.example|", "@here"):
        assert live not in alert.text and live not in alert.payload["text"]
    assert not CONTROL & set(alert.text)


def test_6_commands_quote_the_bucket_and_links_stay_on_aws_consoles(world: World) -> None:
    world.configure(REMEDIATION_MODE="off")
    record = public_bucket(world)
    world.invoke(record)
    alert = only_alert(world)
    fixes = [shlex.split(c) for c in command_lines(alert.text) if "put-public-access-block" in c]
    assert fixes
    assert fixes[0][:5] == ["aws", "s3api", "put-public-access-block", "--bucket", BUCKET]
    for url in alert.payload["links"].values():
        assert url.split("/")[2].endswith(".console.aws.amazon.com"), url


@pytest.mark.parametrize("hostile", ["a b;$(id)`x`", "--profile", "evil.example/x#", "acme\n  $ aws s3 rb"])
def test_6_a_hostile_bucket_string_never_reaches_a_command(world: World, hostile: str) -> None:
    hostile = hostile.replace("\\n", "\n")
    record = make_record("PutBucketPolicy", hostile, {"bucketPolicy": public_policy("x")})
    world.invoke(record)
    alert = only_alert(world)
    for command in command_lines(alert.text):
        argv = shlex.split(command)
        assert hostile not in argv and argv[0] == "aws", command
    assert "(invalid bucket" in alert.text


def test_6_a_spoofed_region_is_refused_before_it_reaches_a_link(world: World) -> None:
    record = public_bucket(world)
    event = envelope(record)
    event["detail"] = {**record, "awsRegion": "evil.example/x#"}
    assert response.handler(event, FakeContext())["outcome"] == "rejected"
    assert all("evil.example" not in url for url in only_alert(world).payload.get("links", {}).values())


# --- 7. a publish failure whose release also fails loses nothing ---------------------------------


def test_7_publish_and_release_both_fail_then_the_retry_publishes(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    context = FakeContext(aws_request_id="req-7")
    world.fail("sns", "Publish", "Throttling")
    updates = sum(1 for s, op in world.calls if (s, op) == ("dynamodb", "UpdateItem"))
    # claim, record_action, stage succeed; the release (the next UpdateItem) is throttled
    world.fail("dynamodb", "UpdateItem", "Throttling", only_call=updates + 4)
    with pytest.raises(AlertNotPublished, match="releasing the claim also failed"):
        response.handler(envelope(record), context)
    assert world.bucket_bpa(BUCKET) == ALL_ON
    world.heal()
    summary = response.handler(envelope(record), context)  # Lambda's retry: same request id
    assert summary["outcome"] == "resent"
    alert = only_alert(world)
    assert alert.payload["remediation"]["status"] == "applied"
    assert alert.payload["remediation"]["undo"]  # the staged alert kept the undo command
    puts = [op for s, op in world.calls if (s, op) == ("s3", "PutPublicAccessBlock")]
    assert len(puts) == 1


def test_7_a_new_delivery_inside_the_lease_is_a_duplicate_only_while_the_holder_may_retry(
    world: World,
) -> None:
    record = public_bucket(world)
    world.fail("sns", "Publish", "Throttling")
    with pytest.raises(AlertNotPublished):
        response.handler(envelope(record), FakeContext(aws_request_id="first"))
    world.heal()
    # A second EventBridge delivery (another request id) finds publish-failed and re-sends.
    summary = response.handler(envelope(record), FakeContext(aws_request_id="second"))
    assert summary["outcome"] == "resent"
    assert len(world.alerts()) == 1


# --- 8. one definition of write access ----------------------------------------------------------


def test_8_public_policy_write_in_production_is_critical_live_as_in_detect(world: World) -> None:
    record = public_bucket(world)
    policy = public_policy(
        BUCKET, Action=["s3:PutBucketPolicy", "s3:DeleteBucketPolicy"], Resource=f"arn:aws:s3:::{BUCKET}"
    )
    record = make_record("PutBucketPolicy", BUCKET, {"bucketPolicy": policy})
    world.replay(record)
    world.invoke(record)
    alert = only_alert(world)
    assert "policy-write" in alert.payload["finding"]["access"]
    assert alert.payload["finding"]["severity"] == "critical"
    assert alert.payload["severity"] == "critical"


# --- 9. an approval covers public read only -------------------------------------------------------


@pytest.mark.parametrize("environment", ["production", "sandbox"])
def test_9_approval_does_not_extend_to_public_write(world: World, environment: str) -> None:
    world.configure(REMEDIATION_MODE="enforce", ENVIRONMENT=environment)
    world.s3.create_bucket(Bucket=BUCKET)
    tag(world, BUCKET, in_days(30))
    record = make_record("PutBucketAcl", BUCKET, {"x-amz-acl": ["public-read-write"], "acl": [""]})
    world.replay(record)
    world.invoke(record)
    alert = only_alert(world)
    assert alert.payload["approval"]["approved"] is False
    assert "covers public read only" in alert.payload["approval"]["reason"]
    assert alert.payload["severity"] == ("critical" if environment == "production" else "high")
    assert world.bucket_bpa(BUCKET) == ALL_ON


def test_9_approval_still_covers_public_read(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    tag(world, BUCKET, in_days(30))
    world.invoke(record)
    alert = only_alert(world)
    assert alert.payload["approval"]["approved"] and alert.payload["severity"] == "low"
    assert world.bucket_bpa(BUCKET) is None


# --- 10. the SNS JSON contract at any policy size --------------------------------------------------


def test_10_a_20kb_conditioned_policy_keeps_the_json_contract(world: World) -> None:
    statements = [
        {
            "Sid": f"S{i:03d}",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/p{i}/*",
            "Condition": {"StringLike": {"aws:Referer": f"https://s{i}.example/*"}},
        }
        for i in range(110)
    ]
    policy = {"Version": "2012-10-17", "Statement": statements}
    while len(json.dumps(policy)) > 20_000:
        statements.pop()
    assert len(statements) >= 100
    record = make_record("PutBucketPolicy", BUCKET, {"bucketPolicy": policy})
    world.replay(record)
    # moto would call the policy public too; AWS says a Referer condition does not restrict:
    # force the disagreement path both ways.
    world.answer("s3", "GetBucketPolicyStatus", lambda _: {"PolicyStatus": {"IsPublic": False}})
    world.invoke(record)
    (params,) = published(world)
    assert params["MessageStructure"] == "json"
    size = sum(len(str(v).encode()) for k, v in params.items() if k in ("Message", "Subject"))
    size += sum(len(str(v).encode()) for k, v in params.items() if k.startswith("MessageAttributes."))
    assert size <= 262_144
    payload = json.loads(json.loads(params["Message"])["sqs"])
    assert payload["schema"] == "s3-public-exposure-alert/1"
    assert only_alert(world).payload["schema"] == "s3-public-exposure-alert/1"


# --- 11. access points are confirmed on their own BPA, their bucket's and the account's ----------


def access_point(world: World, name: str, *, own_bpa: bool) -> dict[str, Any]:
    world.s3.create_bucket(Bucket=BUCKET)
    config = dict.fromkeys(ALL_ON, own_bpa)
    world.s3control.create_access_point(
        AccountId=world.account, Name=name, Bucket=BUCKET, PublicAccessBlockConfiguration=config
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:{world.region}:{world.account}:accesspoint/{name}/object/*",
            }
        ],
    }
    world.s3control.put_access_point_policy(AccountId=world.account, Name=name, Policy=json.dumps(policy))
    return make_record("PutAccessPointPolicy", None, {"name": name, "policy": json.dumps(policy)})


@pytest.mark.parametrize(("own_bpa", "status"), [(True, "exposable"), (False, "public-now")])
def test_11_access_point_exposure_is_confirmed(world: World, own_bpa: bool, status: str) -> None:
    record = access_point(world, "reports-ap", own_bpa=own_bpa)
    world.invoke(record)
    alert = only_alert(world)
    assert alert.payload["exposure"]["status"] == status
    assert ("s3control", "GetAccessPoint") in world.calls
    assert ("s3control", "GetAccessPointPolicyStatus") in world.calls
    assert ("s3", "GetPublicAccessBlock") in world.calls  # the access point's bucket


def test_11_access_point_held_back_by_the_bucket_bpa(world: World) -> None:
    record = access_point(world, "reports-ap", own_bpa=False)
    world.s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=ALL_ON)
    world.invoke(record)
    exposure = only_alert(world).payload["exposure"]
    assert exposure["status"] == "exposable"
    assert exposure["paths"][0]["held_back_by"] == ["bucket RestrictPublicBuckets"]


# --- 12. account-level remediation polls for propagation ----------------------------------------


def account_weakening(world: World) -> dict[str, Any]:
    world.configure(REMEDIATION_MODE="enforce", ALLOW_ACCOUNT_REMEDIATION="true")
    host = f"{world.account}.s3-control.{world.region}.amazonaws.com"
    record = make_record("DeleteAccountPublicAccessBlock", None, {"Host": host})
    return record


def test_12_account_remediation_not_yet_visible_is_pending(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remediation, "ACCOUNT_POLL_SECONDS", (0.0, 0.0))
    record = account_weakening(world)
    off = {"PublicAccessBlockConfiguration": dict.fromkeys(ALL_ON, False)}
    reads = {"n": 0}

    def stale(_: dict[str, Any]) -> dict[str, Any]:
        reads["n"] += 1
        return off

    world.answer("s3control", "GetPublicAccessBlock", stale)
    world.invoke(record)
    remedy = only_alert(world).payload["remediation"]
    assert remedy["status"] == "pending"
    assert reads["n"] == 1 + 3  # the confirmation read, then three read-backs


def test_12_account_remediation_seen_on_a_later_poll_is_applied(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remediation, "ACCOUNT_POLL_SECONDS", (0.0, 0.0))
    record = account_weakening(world)
    # The confirmation read and the first read-back still show the account open; then moto answers.
    answers = iter([dict.fromkeys(ALL_ON, False), dict.fromkeys(ALL_ON, False)])

    def later(_: dict[str, Any]) -> dict[str, Any] | None:
        value = next(answers, None)
        return {"PublicAccessBlockConfiguration": value} if value is not None else None

    world.answer("s3control", "GetPublicAccessBlock", later)
    world.invoke(record)
    assert only_alert(world).payload["remediation"]["status"] == "applied"


# --- 13. the sweep refuses malformed input and never sweeps on an arbitrary payload --------------


@pytest.mark.parametrize(
    "event",
    [
        {"Records": ["x"]},
        {"Records": [{"eventSource": "aws:sqs"}]},
        {"Records": []},
        {},
        {"source": "aws.events", "detail-type": "Scheduled Event", "account": "999988887777"},
        {"anything": "else"},
        ["x"],
        "x",
        None,
    ],
    ids=[
        "records-of-strings",
        "record-without-body",
        "no-records",
        "empty",
        "other-account-schedule",
        "other",
        "list",
        "string",
        "none",
    ],
)
def test_13_sweep_refuses_malformed_input_without_sweeping(world: World, event: Any) -> None:
    configure_sweep(world)
    public_bucket(world)
    world.calls.clear()
    result = sweep.handler(event, None)
    assert "refused" in result
    assert world.calls == []


def test_13_sweep_accepts_its_schedule(world: World) -> None:
    configure_sweep(world)
    public_bucket(world)
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "account": world.account, "detail": {}}
    result = sweep.handler(event, FakeContext(remaining_ms=900_000))
    assert result["alerted"] == [BUCKET]


# --- 14. idempotency leftovers ----------------------------------------------------------------------


def test_14_nothing_is_written_without_a_claim_and_every_item_carries_a_ttl(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    context = FakeContext(aws_request_id="req-14")
    world.fail("dynamodb", "UpdateItem", "Throttling", only_call=1)  # the claim
    with pytest.raises(ClaimUnavailable):
        response.handler(envelope(record), context)
    assert only_alert(world).payload["delivery"]["claim"] == "unavailable"
    assert item(world, f"event#{record['eventID']}") is None  # no claimless write
    world.heal()
    assert response.handler(envelope(record), context)["outcome"] == "handled"
    stored = item(world, f"event#{record['eventID']}")
    assert stored is not None and "expires_at" in stored and stored["status"]["S"] == "done"
    assert world.client("dynamodb").scan(TableName=TABLE)["Count"] >= 1
    for each in world.client("dynamodb").scan(TableName=TABLE)["Items"]:
        if not each["pk"]["S"].startswith("exposure#"):  # ledger items live as long as the exposure
            assert "expires_at" in each, each["pk"]


def test_14_a_new_claim_keeps_stored_alerts_until_they_are_resent(world: World) -> None:
    world.configure(REMEDIATION_MODE="enforce")
    record = public_bucket(world)
    world.fail("sns", "Publish", "Throttling")
    with pytest.raises(AlertNotPublished):
        response.handler(envelope(record), FakeContext(aws_request_id="a"))
    # The retry's publish fails again: the stored alerts must still be there for the next one.
    with pytest.raises(AlertNotPublished):
        response.handler(envelope(record), FakeContext(aws_request_id="b"))
    stored = item(world, f"event#{record['eventID']}")
    assert stored is not None
    assert "undo" in stored["alerts"]["S"] and "delete-public-access-block" in stored["alerts"]["S"]
    world.heal()
    assert response.handler(envelope(record), FakeContext(aws_request_id="c"))["outcome"] == "resent"
    alert = only_alert(world)
    assert "delete-public-access-block" in (alert.payload["remediation"]["undo"] or "")


def test_14_resent_alerts_are_recorded_in_the_ledger(world: World) -> None:
    record = public_bucket(world)
    world.fail("sns", "Publish", "Throttling")
    with pytest.raises(AlertNotPublished):
        world.invoke(record)
    world.heal()
    assert world.invoke(record)["outcome"] == "resent"
    assert item(world, f"exposure#{world.account}#{BUCKET}") is not None


# --- 15. basic-format dates last through their day --------------------------------------------------


@pytest.mark.parametrize("value", ["20261231", "2026-12-31"])
def test_15_basic_and_extended_dates_end_at_the_next_midnight(value: str) -> None:
    assert parse_expiry(value) == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["9999-12-31", "99991231", "0001-01-01T00:00:00+23:59", "2026-13-01", "", "\x00", "1" * 10_000]
)
def test_15_parsing_never_raises(value: str) -> None:
    parse_expiry(value)  # returns a datetime or None, never raises

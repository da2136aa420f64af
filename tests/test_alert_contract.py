"""The alert's contract, built directly (no AWS): safe text under attack, and the SNS message at any size.

Safe text (issue 9, item 3): with hostile values in every field an attacker can set, the body
has no raw control character, no forged section, no live mention or link syntax; every link
goes to an AWS console host; every command line splits (``shlex.split``) into exactly the
intended argv. The payload's data fields keep the raw values.

SNS contract (item 6): every message is at most 262,144 UTF-8 bytes (message, subject and
attributes), keeps ``MessageStructure=json`` and the payload schema in every JSON protocol,
and says what it shortened (a marker and a count) when it had to.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from response_fixtures import World, build_world, make_record

from handlers.detection.approvals import Approval
from handlers.detection.classify import classify
from handlers.detection.finding import Finding
from handlers.response import alert as alerts
from handlers.response.alert import (
    COMMAND_PREFIX,
    SNS_MAX_BYTES,
    build_alert,
    build_rejection_alert,
    safe_subject,
    sns_message,
)
from handlers.response.cli_commands import (
    ALL_ON,
    account_fix_command,
    bucket_fix_command,
    bucket_undo_command,
    lookup_events_command,
    ownership_enforced_command,
)
from handlers.response.exposure import BucketState, Exposure, Read, assess_bucket, not_checked
from handlers.response.exposure_ledger import LedgerEntry
from handlers.response.remediation import Remediation
from handlers.response.response_config import load_settings
from handlers.sweep.digest import build_digest

ACCOUNT = "111122223333"
BUCKET = "acme-exports"
CHECKED_AT = "2026-11-02T10:00:00Z"
SETTINGS = load_settings(
    {
        "ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-1:{ACCOUNT}:s3-alerts",
        "EXPECTED_ACCOUNT_ID": ACCOUNT,
        "IDEMPOTENCY_TABLE": "s3-exposure-idempotency",
        "ENVIRONMENT": "production",
        "ACCOUNT_NAME": "prod-payments",
    }
)
FORGED_KEY = "report.csv\n\nSTATE NOW\n  Exposure: not public\n\nWHAT WAS DONE\n  Mode enforce: applied"
CHAT_AGENT = "<!channel> <https://evil.example|AWS console>"
HOSTILE_BUCKETS = ("a b;rm -rf ~", "$(id)", "a b;$(id)", "x'y\"z", "--profile", "acme\nexports")
JSON_KEYS = {"default", "sqs", "lambda", "http", "https", "firehose"}

RAW_FORBIDDEN = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ud800-\udfff]"
)
LIVE_SYNTAX = re.compile(
    r"<[!@#]|<https?:|<[^>\n]*\|[^>\n]*>|@(?:here|channel|everyone)|\]\(|&lt;|&gt;", re.IGNORECASE
)
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s)]*")
HEADERS = (
    "WHAT HAPPENED",
    "WHO, AND HAVE THEY DONE THIS BEFORE",
    "WHEN",
    "STATE NOW",
    "SEVERITY",
    "WHAT WAS DONE",
    "RESPONSE CHECKLIST",
    "LINKS",
)


# ---- building blocks ---------------------------------------------------------------------------


def finding_for(name: str = BUCKET, /, **overrides: Any) -> Finding:
    record = make_record("PutObjectAcl", name, {"key": "k", "x-amz-acl": "public-read"})
    (finding,) = classify(record)
    finding.update(overrides)  # type: ignore[typeddict-item]
    return finding


def remediation_for(
    bucket: str, status: str = "applied", *, mode: str = "enforce", **overrides: Any
) -> Remediation:
    result = Remediation(
        mode=mode,
        action="put-bucket-public-access-block",
        status=status,
        detail="put all four BPA flags on bucket and read them back: verified",
        previous=None,
        previous_state="not-set",
        applied=dict(ALL_ON) if status == "applied" else None,
        fix=bucket_fix_command(bucket, ACCOUNT),
        undo=bucket_undo_command(bucket, ACCOUNT, None, "not-set"),
        error=None,
    )
    result.update(overrides)  # type: ignore[typeddict-item]
    return result


def alert_of(
    finding: Finding,
    exposure: Exposure | None = None,
    *,
    severity: str = "high",
    reason: str = "r",
    approval: Approval | None = None,
    remediation: Remediation | None = None,
) -> alerts.Alert:
    """build_alert with what most cases share: nothing checked, no approval, the bucket closed."""
    return build_alert(
        finding,
        not_checked("x") if exposure is None else exposure,
        severity,
        reason,
        Approval(False, None, "none") if approval is None else approval,
        remediation_for(BUCKET) if remediation is None else remediation,
        SETTINGS,
        checked_at=CHECKED_AT,
    )


def hostile_alert(bucket: str, region: str = "evil.example/x#") -> alerts.Alert:
    """Every attacker-settable field hostile at once."""
    finding = finding_for(
        bucket,
        key=FORGED_KEY,
        userAgent=CHAT_AGENT,
        region=region,
        actor="arn:aws:sts::111122223333:assumed-role/x/<!here>\nWHO",
        sourceIPAddress="198.51.100.23\r\nWHEN",
        eventID="../../evil\n",
        eventName="PutObjectAcl\nLINKS",
        principals=["*", "@everyone", "[click](https://evil.example)"],
        reasons=["canned ACL\n\nSEVERITY: LOW - nothing to see", "\u202egnp.exe\u202c <@U123>"],
        errorMessage="\x1b[2J\x1b[Hcleared",
        error="AccessDenied\n",
    )
    exposure = not_checked("\n\nRESPONSE CHECKLIST\n  [ ] 1. nothing to do")
    exposure["status"] = "public-now"
    exposure["disagreement"] = (
        "IsPublic=false\n\nWHAT WAS DONE\n  Mode enforce: applied - all good <!everyone>"
    )
    exposure["tags"] = {"owner\n": "<!channel>", "public-access-approved-until": "9999-12-31\nLINKS"}
    exposure["bucket_bpa_state"] = "not-set"
    exposure["ownership"] = "BucketOwnerEnforced\nWHO"
    exposure["failures"] = [
        {"call": "s3:GetBucketAcl\n", "error": "Throttling", "message": "<!here> slow\ndown"}
    ]
    approval = Approval(
        False, "tag", "approval tag public-access-approved-until='9999-12-31\\nLINKS' is too far"
    )
    remediation = remediation_for(bucket, detail="done\n\nLINKS\n  Bucket: https://evil.example")
    return build_alert(
        finding,
        exposure,
        "high",
        "rated\nSEVERITY: LOW",
        approval,
        remediation,
        SETTINGS,
        checked_at=CHECKED_AT,
    )


def header_of(line: str) -> str | None:
    """The section header ``line`` is (``STATE NOW (checked ...)``, ``SEVERITY: HIGH - ...``), if any."""
    for header in HEADERS:
        if line == header or line.startswith((f"{header} (", f"{header}: ")):
            return header
    return None


def assert_clean(text: str, intended: list[list[str]] | None = None) -> None:
    """No raw control character, live chat syntax, foreign link or unsafe command."""
    assert not RAW_FORBIDDEN.search(text), RAW_FORBIDDEN.search(text)
    without_links = URL.sub("", text)
    assert not LIVE_SYNTAX.search(without_links), LIVE_SYNTAX.search(without_links)
    for url in URL.findall(text):
        host = urlsplit(url).hostname or ""
        assert url.startswith("https://") and host.endswith(".console.aws.amazon.com"), url
    for command in alerts.command_lines(text):
        argv = shlex.split(command)
        assert shlex.join(argv) == command
        if intended is not None:
            assert argv in intended, argv
    for line in text.splitlines():
        if line.lstrip().startswith("$ "):
            assert line.startswith(COMMAND_PREFIX), line


def assert_safe_text(text: str, intended: list[list[str]] | None = None) -> None:
    """:func:`assert_clean`, and every line at the left margin is a real section header, once each."""
    assert_clean(text, intended)
    margin = [line for line in text.splitlines()[1:] if line and not line[0].isspace()]
    headers = [header_of(line) for line in margin]
    assert None not in headers, margin
    assert len(headers) == len(set(headers)), margin


def argv_of(command: str | None) -> list[str]:
    assert command is not None
    return shlex.split(command)


# ---- untrusted text ------------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", HOSTILE_BUCKETS)
def test_hostile_values_everywhere_give_a_safe_body(bucket: str) -> None:
    alert = hostile_alert(bucket)
    text = alert["text"]
    # Only the account-wide fix is a command: the bucket is invalid, so no bucket command at all.
    assert_safe_text(text, intended=[argv_of(account_fix_command(ACCOUNT))])
    assert alerts.command_lines(text) == [account_fix_command(ACCOUNT)]
    assert "(invalid bucket name)" in text and "(invalid region)" in text and "(invalid event id)" in text
    assert "Undo: no command" in text
    assert alert["payload"]["links"] == {}
    # the forged sections are there, but escaped onto the line they came in on
    assert "report.csv\\n\\nSTATE NOW\\n  Exposure: not public" in text
    assert "‹!channel› ‹https[:]//evil.example|AWS console›" in text
    # subject: ASCII, one line, no chat syntax
    subject = alert["subject"]
    assert subject.isascii() and len(subject) < 100 and "\n" not in subject
    assert not LIVE_SYNTAX.search(subject) and "<" not in subject
    assert alert["payload"]["text"] == text and alert["payload"]["subject"] == subject
    # the data fields keep the raw values: consumers need them
    assert alert["payload"]["finding"]["key"] == FORGED_KEY
    assert alert["payload"]["finding"]["userAgent"] == CHAT_AGENT
    assert alert["payload"]["finding"]["bucket"] == bucket


def test_each_real_section_appears_once_at_the_margin() -> None:
    text = hostile_alert("a b;$(id)")["text"]
    margin = [line for line in text.splitlines()[1:] if line and not line[0].isspace()]
    assert [header_of(line) for line in margin] == list(HEADERS)


def test_a_spoofed_region_gives_no_link_to_anywhere() -> None:
    finding = finding_for(BUCKET, region="evil.example/x#")
    alert = alert_of(finding)
    links = alert["payload"]["links"]
    assert "cloudtrailEvent" not in links and "actorEvents" not in links
    assert links["bucket"] == f"https://s3.console.aws.amazon.com/s3/buckets/{BUCKET}?tab=permissions"
    assert "CloudTrail links omitted: evil.example/x# (invalid region)" in alert["text"]
    assert_safe_text(alert["text"])


@pytest.mark.parametrize(
    ("bucket", "status", "state", "previous"),
    [
        (BUCKET, "applied", "not-set", None),
        (BUCKET, "applied", "set", {"BlockPublicAcls": True}),
        (BUCKET, "would-apply", "set", {"BlockPublicAcls": True}),
        ("Legacy_Bucket.Name", "applied", "not-set", None),
        (BUCKET, "skipped", "not-set", None),
    ],
)
def test_commands_round_trip_to_the_intended_argv(
    bucket: str, status: str, state: str, previous: dict[str, bool] | None
) -> None:
    undo = bucket_undo_command(bucket, ACCOUNT, previous, state)
    remediation = remediation_for(bucket, status, previous=previous, previous_state=state, undo=undo)
    if status == "skipped":
        remediation["fix"] = None
    finding = finding_for(bucket, actor="arn:aws:sts::111122223333:assumed-role/admin/bob@example.com")
    alert = alert_of(finding, remediation=remediation)
    lookup = [
        *("aws", "cloudtrail", "lookup-events", "--region", "us-east-1", "--lookup-attributes"),
        *("AttributeKey=Username,AttributeValue=bob@example.com", "--max-results", "50"),
    ]
    # An ACL path: hardening names Object Ownership BucketOwnerEnforced, and account-level BPA.
    intended = [
        argv_of(account_fix_command(ACCOUNT)),
        lookup,
        argv_of(ownership_enforced_command(bucket, ACCOUNT)),
    ]
    if status in ("applied", "would-apply"):
        intended.append(argv_of(undo))
    if status == "would-apply":
        intended.append(argv_of(remediation["fix"]))
    assert_safe_text(alert["text"], intended)
    assert sorted(shlex.split(c) for c in alerts.command_lines(alert["text"])) == sorted(intended)


def test_a_raw_command_string_from_elsewhere_is_never_shown_as_a_command() -> None:
    remediation = remediation_for(BUCKET, fix="aws s3api put-public-access-block --bucket a b;$(id)")
    remediation["status"] = "skipped"
    alert = alert_of(finding_for(), remediation=remediation)
    assert "aws s3api put-public-access-block --bucket a b;$(id)" not in alerts.command_lines(alert["text"])
    assert_safe_text(alert["text"])


def test_approval_verdict_and_pending_status() -> None:
    record = make_record(
        "PutBucketTagging",
        BUCKET,
        {"Tagging": {"TagSet": {"Tag": [{"Key": "public-access-approved-until", "Value": "2026-12-31"}]}}},
    )
    (finding,) = classify(record)
    assert finding["verdict"] == "approval"
    remediation = remediation_for(
        BUCKET, "not-needed", fix=None, undo=None, detail="recorded, not remediated"
    )
    alert = alert_of(
        finding,
        severity="low",
        reason="approval change",
        approval=Approval(True, "tag", "valid"),
        remediation=remediation,
    )
    assert alert["subject"].startswith(f"[LOW] S3 bucket {BUCKET} public-access approval set/changed")
    assert alerts.headline(finding, not_checked("x")) == (
        f"S3 bucket {BUCKET} public-access approval set/changed (PutBucketTagging)"
    )
    assert "no exposure window" in alert["text"]
    assert_safe_text(alert["text"])

    account_finding = finding_for(BUCKET, scope="account", kind="block-public-access", bucket=None, key=None)
    pending = remediation_for(
        BUCKET,
        "pending",
        action="put-account-public-access-block",
        fix=account_fix_command(ACCOUNT),
        undo=f"aws s3control delete-public-access-block --account-id {ACCOUNT}",
        detail="put all four BPA flags on account; the read-back does not show them yet",
    )
    alert = alert_of(account_finding, remediation=pending)
    text = alert["text"]
    assert "pending (put, but not yet visible in the read-back)" in text
    assert f"aws s3control get-public-access-block --account-id {ACCOUNT}" in alerts.command_lines(text)
    assert f"aws s3control delete-public-access-block --account-id {ACCOUNT}" in alerts.command_lines(text)
    assert "not visible yet" in text
    assert alert["payload"]["exposureWindow"]["to"] is None
    assert_safe_text(text)


def test_rejection_alert_quotes_the_forged_envelope_safely() -> None:
    event = {
        "source": "aws.s3\n\nWHAT WAS DONE\n  nothing",
        "detail-type": "<!channel> AWS API Call via CloudTrail",
        "account": "999999999999",
        "region": "evil.example/x#",
        "detail": {"eventName": "PutBucketAcl\n@here", "eventID": "x" * 5000},
    }
    alert = build_rejection_alert(
        "envelope account is not this stack's account", event, SETTINGS, checked_at=CHECKED_AT
    )
    assert alert["subject"] == (
        f"[HIGH] Detector received an event it will not act on in prod-payments {ACCOUNT}"
    )
    assert alert["attributes"]["verdict"] == "rejected" and alert["attributes"]["severity"] == "high"
    payload = alert["payload"]
    assert payload["schema"] == "s3-public-exposure-alert/1" and payload["severity"] == "high"
    assert payload["rejected"] == {
        "reason": "envelope account is not this stack's account",
        "source": event["source"],
        "detailType": event["detail-type"],
        "account": "999999999999",
        "region": "evil.example/x#",
        "eventName": "PutBucketAcl\n@here",
        "eventID": "x" * 5000,
    }
    text = alert["text"]
    assert "forged event; nothing was read or changed" in text
    assert "Region: evil.example/x# (invalid region)" in text
    assert "…[+" in text  # the 5000-character event id is capped
    assert_safe_text(text, intended=[])
    for weird in (None, "a string", ["list"], {"detail": "not a dict"}, {"eventName": "bare\nrecord"}):
        built = build_rejection_alert("no envelope", weird, SETTINGS, checked_at=CHECKED_AT)
        assert_safe_text(built["text"], intended=[])
        assert_contract(sns_message(built))


TOKENS = (
    *("<!channel>", "<!here>", "<!everyone>", "@here", "@channel", "<@U123>", "<https://evil.example|x>"),
    *("[AWS](https://evil.example)", "\n\nSTATE NOW\n", "\nLINKS\n", "$(id)", "`id`", "; rm -rf ~", "'", '"'),
    *("acme-exports", "us-east-1", "arn:aws:iam::111122223333:user/", "\u2028", "\u202e", "\x1b[2J", "&lt;"),
)
ANY_TEXT = st.lists(
    st.one_of(st.text(max_size=30), st.sampled_from(TOKENS)),
    max_size=8,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bucket=ANY_TEXT,
    region=ANY_TEXT,
    key=ANY_TEXT,
    agent=ANY_TEXT,
    actor=ANY_TEXT,
    event_id=ANY_TEXT,
    reasons=st.lists(ANY_TEXT, max_size=5),
    tag_value=ANY_TEXT,
    detail=ANY_TEXT,
)
def test_any_values_give_a_safe_body_and_a_valid_message(
    bucket: str,
    region: str,
    key: str,
    agent: str,
    actor: str,
    event_id: str,
    reasons: list[str],
    tag_value: str,
    detail: str,
) -> None:
    finding = finding_for(
        BUCKET, bucket=bucket, region=region, key=key, userAgent=agent, actor=actor, eventID=event_id
    )
    finding["reasons"] = reasons
    exposure = not_checked(detail)
    exposure["status"] = "public-now"
    exposure["bucket_bpa_state"] = "not-set"
    exposure["tags"] = {"public-access-approved-until": tag_value}
    remediation = remediation_for(bucket, "skipped", detail=detail, fix=None, undo=None)
    approval = Approval(False, "tag", f"approval tag value {tag_value!r} is not a date")
    alert = build_alert(
        finding, exposure, "high", detail, approval, remediation, SETTINGS, checked_at=CHECKED_AT
    )
    region_for_links = region or "us-east-1"
    intended = [
        shlex.split(command)
        for command in (
            account_fix_command(ACCOUNT),
            bucket_fix_command(bucket, ACCOUNT),
            ownership_enforced_command(bucket, ACCOUNT),  # hardening an ACL path
            lookup_events_command(region_for_links, "Username", alerts.actor_username(actor)),
        )
        if command
    ]
    assert_safe_text(alert["text"], intended)
    subject = alert["subject"]
    assert subject.isascii() and len(subject) < 100 and not LIVE_SYNTAX.search(subject) and "<" not in subject
    for url in alert["payload"]["links"].values():
        assert (urlsplit(url).hostname or "").endswith(".console.aws.amazon.com")
    assert alert["payload"]["finding"]["key"] == key  # raw in the data
    assert_contract(sns_message(alert))


# ---- the SNS message at any size -----------------------------------------------------------------


def message_bytes(message: dict[str, Any]) -> int:
    total = len(message["Message"].encode("utf-8")) + len(message.get("Subject", "").encode("utf-8"))
    for name, attribute in message.get("MessageAttributes", {}).items():
        total += (
            len(name.encode()) + len(attribute["DataType"].encode()) + len(attribute["StringValue"].encode())
        )
    return total


def assert_contract(message: dict[str, Any], schema: str = "s3-public-exposure-alert/1") -> dict[str, Any]:
    """≤ 256 KB in UTF-8 bytes, MessageStructure json, the schema in every JSON protocol; the payload."""
    assert message_bytes(message) <= SNS_MAX_BYTES
    assert message["MessageStructure"] == "json"
    per_protocol = json.loads(message["Message"])
    assert set(per_protocol) == JSON_KEYS
    assert all(isinstance(value, str) for value in per_protocol.values())
    payloads = {key: per_protocol[key] for key in JSON_KEYS - {"default"}}
    assert len(set(payloads.values())) == 1  # the same payload for every JSON protocol
    payload = json.loads(payloads["sqs"])
    assert payload["schema"] == schema
    assert payload["text"] == per_protocol["default"]
    subject = message["Subject"]
    assert subject.isascii() and 0 < len(subject) < 100
    return payload


def policy_alert(policy: dict[str, Any], *, status_public: bool = False) -> alerts.Alert:
    """A PutBucketPolicy alert through classify and assess_bucket; AWS's status may disagree."""
    record = make_record("PutBucketPolicy", BUCKET, {"bucketPolicy": policy})
    (finding,) = classify(record)
    state = BucketState(
        bucket=BUCKET,
        account_bpa=Read(not_set=True),
        policy_status=Read(value=status_public),
        policy=Read(value=json.dumps(policy)),
        acl=Read(value=[]),
        bucket_bpa=Read(not_set=True),
        ownership=Read(not_set=True),
        tags=Read(value={"owner": "data-team"}),
    )
    exposure = assess_bucket(state)
    return alert_of(finding, exposure, severity="critical", reason="public policy")


def statement(index: int, sid: str = "") -> dict[str, Any]:
    return {
        "Sid": sid or f"PublicRead{index:03d}",
        "Effect": "Allow",
        "Principal": "*",
        "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": f"arn:aws:s3:::{BUCKET}/p{index}/*",
        "Condition": {"StringLike": {"aws:Referer": [f"https://partner{index}.example/*"]}},
    }


def policy_of(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def dense_statement(index: int) -> dict[str, Any]:
    """A short public statement with a long Sid: as many bytes of reasons per policy byte as it gets."""
    return {
        "Sid": f"PublicRead{index:03d}" + "A" * 140,
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
        "Condition": {"StringLike": {"aws:Referer": "x"}},
    }


@pytest.mark.parametrize("make", [statement, dense_statement], ids=["conditioned", "dense"])
def test_the_20_kb_policy_maximum_fits_and_keeps_its_structure(make: Any) -> None:
    statements: list[dict[str, Any]] = []
    while len(json.dumps(policy_of([*statements, make(len(statements))]))) <= 20 * 1024:
        statements.append(make(len(statements)))
    policy = policy_of(statements)
    assert 19 * 1024 < len(json.dumps(policy)) <= 20 * 1024  # S3's bucket policy maximum is 20 KB
    alert = policy_alert(policy)
    assert alert["payload"]["exposure"]["disagreement"]  # AWS says not public, our analysis says public
    payload = assert_contract(sns_message(alert))
    assert_safe_text(payload["text"])
    if make is dense_statement:  # reasons quoting every Sid, four times over: this one had to shrink
        assert payload["shrunk"]["originalBytes"] > SNS_MAX_BYTES
        assert re.search(r"…\[\+\d+ chars\]$", payload["exposure"]["disagreement"])
        assert len(payload["finding"]["reasons"]) + payload["finding"].get("reasonsOmitted", 0) == len(
            statements
        )


def test_110_statements_on_the_disagreement_path_are_shrunk_with_markers_and_counts() -> None:
    # Issue 9 observation 10: 110 conditioned statements made a 446 K message that lost its JSON.
    policy = policy_of([statement(i, sid=f"PublicRead{i:03d}-" + "-" * 60) for i in range(110)])
    alert = policy_alert(policy)
    unshrunk = len(json.dumps(alert["payload"]))
    assert unshrunk * 5 > SNS_MAX_BYTES  # five payload copies would not fit
    message = sns_message(alert)
    payload = assert_contract(message)
    shrunk = payload["shrunk"]
    assert shrunk["originalBytes"] > SNS_MAX_BYTES
    assert payload["finding"]["reasonsOmitted"] > 0
    assert len(payload["finding"]["reasons"]) + payload["finding"]["reasonsOmitted"] == 110
    assert re.search(r"…\[\+\d+ chars\]$", payload["exposure"]["disagreement"])
    assert re.search(r"…\[\+\d+ chars\]$", payload["exposure"]["paths"][0]["detail"])
    # the body was bounded when built: lists say how many entries they left out
    assert re.search(r"\.\.\. \d+ more reasons omitted", payload["text"])
    # structure, not content, is what survives: the same keys as the unshrunk payload
    assert set(alert["payload"]) <= set(payload)
    assert sns_message(alert) == message  # deterministic


def test_a_long_disagreement_string_is_capped_in_the_body_and_shrunk_in_the_payload() -> None:
    alert = policy_alert(policy_of([statement(i) for i in range(60)]))
    alert["payload"]["exposure"]["disagreement"] = "IsPublic=false; " + "statement allows read; " * 20_000
    payload = assert_contract(sns_message(alert))
    assert re.search(r"…\[\+\d+ chars\]$", payload["exposure"]["disagreement"])
    line = next(line for line in alert["text"].splitlines() if line.startswith("  DISAGREEMENT: "))
    assert len(line) < 2200 and re.search(r"…\[\+\d+ chars\]$", line)


def test_non_ascii_text_is_measured_in_bytes_not_characters() -> None:
    wide = "東京データ🚀"  # 3- and 4-byte characters
    policy = policy_of([statement(i, sid=f"{wide * 8}{i}") for i in range(110)])
    policy["Statement"] = [{**s, "Sid": s["Sid"]} for s in policy["Statement"]]
    alert = policy_alert(policy)
    alert["payload"]["finding"]["reasons"] = [f"{wide * 40} reason {i}" for i in range(2000)]
    message = sns_message(alert)
    payload = assert_contract(message)
    assert len(message["Message"]) < len(message["Message"].encode("utf-8"))  # bytes ≠ characters
    assert payload["shrunk"]["originalBytes"] > SNS_MAX_BYTES
    assert payload["finding"]["reasonsOmitted"] > 0


def test_a_pathological_1_mb_reason_list_fits() -> None:
    finding = finding_for(reasons=[f"reason {i}: " + "x" * 90 for i in range(10_000)])
    exposure = not_checked("x")
    exposure["reasons"] = [f"exposure reason {i} " + "y" * 90 for i in range(10_000)]
    exposure["paths"] = [
        {"via": "policy", "effective": True, "held_back_by": [], "access": ["read"], "detail": "z" * 100_000}
    ]
    assert len(json.dumps(finding["reasons"])) > 1_000_000
    alert = alert_of(finding, exposure)
    assert len(alert["text"].encode("utf-8")) <= alerts.TEXT_BUDGET
    assert "... 9975 more reasons omitted" in alert["text"]
    payload = assert_contract(sns_message(alert))
    assert payload["finding"]["reasonsOmitted"] == 10_000 - len(payload["finding"]["reasons"])
    assert payload["exposure"]["reasonsOmitted"] == 10_000 - len(payload["exposure"]["reasons"])
    assert "…[+" in payload["exposure"]["paths"][0]["detail"]
    assert payload["finding"]["eventID"] == alert["payload"]["finding"]["eventID"]


def test_a_small_alert_is_sent_unchanged() -> None:
    alert = policy_alert(policy_of([statement(1)]), status_public=True)
    payload = assert_contract(sns_message(alert))
    assert "shrunk" not in payload
    assert payload == json.loads(json.dumps(alert["payload"], default=str))
    message = json.loads(sns_message(alert)["Message"])
    assert "email" not in message  # email (and any other protocol) gets "default", the body


def test_raw_lone_surrogates_and_huge_attributes_still_make_a_valid_message() -> None:
    alert = hostile_alert("a b;$(id)")
    alert["payload"]["finding"]["userAgent"] = "bad \udc00 surrogate"
    alert["attributes"]["bucket"] = "b" * 100_000 + "\n"
    message = sns_message(alert)
    payload = assert_contract(message)
    assert payload["finding"]["userAgent"] == "bad \udc00 surrogate"  # raw, as received
    assert all("\n" not in a["StringValue"] for a in message["MessageAttributes"].values())


def open_entry(bucket: str) -> LedgerEntry:
    signature = ("policy:read", "acl:read")
    return LedgerEntry(bucket, signature, "public-now", "high", "us-east-1", CHECKED_AT, None, "sweep", None)


def test_a_stored_alert_without_its_payload_still_gets_the_schema() -> None:
    restored = alerts.Alert(subject="[HIGH] x\n<!here>", text="body\n", payload={}, attributes={})
    payload = assert_contract(sns_message(restored))
    assert payload == {"schema": "s3-public-exposure-alert/1", "text": "body\n"}


def test_a_huge_digest_fits_with_its_own_schema() -> None:
    entries = [open_entry(f"bucket-{i:05d}") for i in range(5000)]
    digest = build_digest(entries, SETTINGS, "2026-11-02", CHECKED_AT)
    assert_clean(digest["text"], intended=[argv_of(bucket_fix_command(e.bucket, ACCOUNT)) for e in entries])
    assert alerts.command_lines(digest["text"])[0] == bucket_fix_command("bucket-00000", ACCOUNT)
    payload = assert_contract(sns_message(digest), schema="s3-public-exposure-digest/1")
    assert payload["exposuresOmitted"] + len(payload["exposures"]) == 5000


# ---- through the handler, as the attacker would --------------------------------------------------


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


def test_through_the_handler_a_forged_key_and_a_chat_agent_forge_nothing(world: World) -> None:
    # Issue 9 observations 4 and 5, through the entry point with an EventBridge envelope.
    world.configure(REMEDIATION_MODE="enforce")
    world.s3.create_bucket(Bucket=BUCKET)
    record = make_record(
        "PutObjectAcl", BUCKET, {"key": FORGED_KEY, "x-amz-acl": "public-read"}, user_agent=CHAT_AGENT
    )
    world.invoke(record)
    (alert,) = world.alerts()
    assert_safe_text(alert.text)
    assert "report.csv\\n\\nSTATE NOW" in alert.text
    assert "‹!channel› ‹https[:]//evil.example|AWS console›" in alert.text
    assert (
        alert.payload["finding"]["key"] == FORGED_KEY and alert.payload["finding"]["userAgent"] == CHAT_AGENT
    )
    for command in alerts.command_lines(alert.text):
        argv = shlex.split(command)
        assert argv[:2] in (["aws", "s3api"], ["aws", "s3control"], ["aws", "cloudtrail"])
        if "--bucket" in argv:
            assert argv[argv.index("--bucket") + 1] == BUCKET


def test_through_the_handler_a_110_statement_policy_keeps_the_json_contract(world: World) -> None:
    # Issue 9 observation 10: AWS and our analysis disagree; the message used to lose its JSON.
    policy = policy_of([statement(i, sid=f"PublicRead{i:03d}" + "A" * 60) for i in range(110)])
    world.s3.create_bucket(Bucket=BUCKET)
    world.s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    world.answer("s3", "GetBucketPolicyStatus", lambda _params: {"PolicyStatus": {"IsPublic": False}})
    world.invoke(make_record("PutBucketPolicy", BUCKET, {"bucketPolicy": policy}))
    (alert,) = world.alerts()  # delivered to SQS as the JSON payload, not as plain text
    assert alert.payload["schema"] == "s3-public-exposure-alert/1"
    assert alert.payload["shrunk"]["originalBytes"] > SNS_MAX_BYTES
    assert alert.payload["finding"]["reasonsOmitted"] + len(alert.payload["finding"]["reasons"]) == 110
    assert alert.payload["exposure"]["disagreement"]
    assert_safe_text(alert.text)


def test_a_mention_after_a_bracket_makes_no_link_joint_in_the_subject() -> None:
    # Found by hypothesis: "]@0" became "](at)0", a markdown link joint, in the subject.
    subject = safe_subject("bucket ]@\U000f00000 made public")
    assert "](" not in subject and "(at)0" in subject

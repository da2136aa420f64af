"""The alert: a subject line, a body a responder can act on, and a JSON payload for machines.

One SNS message carries all three (``MessageStructure=json``): e-mail and the
default protocol get the human body; SQS, Lambda, HTTP(S) and Firehose subscribers
get the JSON payload, which also holds the body under ``text``. Message attributes
(severity, verdict, bucket, account, environment, remediation) let subscriptions
filter, e.g. only critical and high to the pager.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, TypedDict
from urllib.parse import quote

from handlers import aws_clients
from handlers.approvals import Approval
from handlers.exposure import BPA_FLAGS, Exposure
from handlers.finding import Finding
from handlers.remediation import Remediation, account_fix_command, bucket_fix_command
from handlers.response_config import Settings

SUBJECT_LIMIT = 99  # SNS: "less than 100 characters"
MESSAGE_LIMIT = 250_000  # SNS: 256 KiB for message and attributes together
PAYLOAD_SCHEMA = "s3-public-exposure-alert/1"
JSON_PROTOCOLS = ("sqs", "lambda", "http", "https", "firehose")
STATUS_WORDS = {
    "public-now": "PUBLIC NOW",
    "exposable": "held back only by Block Public Access (one change away from public)",
    "closed": "not public",
    "unknown": "could not be confirmed; treated as exposed",
    "gone": "bucket deleted",
    "weakened": "account-level guard weakened",
    "not-checked": "not checked",
}


class Alert(TypedDict):
    """A built alert, ready to publish (and to store for a retry)."""

    subject: str
    text: str
    payload: dict[str, Any]
    attributes: dict[str, str]


def safe_subject(text: str, suffix: str = "") -> str:
    """An SNS-safe subject: ASCII, one line, no control characters, under 100 characters.

    When too long, ``text`` is shortened and ``suffix`` (the account) kept, if it fits.
    """
    head, tail = _one_ascii_line(text), _one_ascii_line(suffix)
    tail = f" {tail}" if tail else ""
    if len(head) + len(tail) <= SUBJECT_LIMIT:
        return (head + tail).strip() or "S3 public access alert"
    if len(tail) > SUBJECT_LIMIT // 2:
        whole = head + tail
        return whole[: SUBJECT_LIMIT - 3].rstrip() + "..."
    return head[: SUBJECT_LIMIT - len(tail) - 3].rstrip() + "..." + tail


def _one_ascii_line(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f]", " ", ascii_text)).strip()


def headline(finding: Finding, exposure: Exposure) -> str:
    """What happened, in a few words, without severity or location."""
    bucket = finding["bucket"] or "?"
    access = f" ({', '.join(finding['access'])})" if finding["access"] else ""
    now_public = (
        f", now public ({', '.join(exposure['access'])})" if exposure["status"] == "public-now" else ""
    )
    verdict, kind, scope = finding["verdict"], finding["kind"], finding["scope"]
    if kind == "sweep":  # found by the scheduled sweep: a state, not an event
        if exposure["status"] == "public-now":
            return f"S3 bucket {bucket} is public ({', '.join(exposure['access']) or 'unknown'}) [sweep]"
        return f"S3 bucket {bucket} is held back only by BPA [sweep]"
    if verdict == "tamper":
        return f"CloudTrail tampering: {finding['eventName']}"
    access_point = f"access point {finding['accessPoint'] or '?'}"
    if verdict == "attempt":
        target = {"account": "account", "access-point": access_point}.get(scope, f"bucket {bucket}")
        return f"Failed attempt to expose S3 {target} ({finding['eventName']})"
    if scope == "account":
        return "S3 account-level Block Public Access weakened"
    if scope == "access-point":
        made = "possibly made public" if verdict == "undetermined" else "made public"
        return f"S3 {access_point} {made}{access}"
    if verdict == "undetermined":
        return f"S3 bucket {bucket} possibly made public ({finding['eventName']}){now_public}"
    if kind == "block-public-access":
        return f"S3 bucket {bucket} BPA weakened{now_public}"
    if kind == "ownership":
        return f"S3 bucket {bucket} ACLs re-enabled{now_public}"
    if scope == "object":
        return f"S3 object in bucket {bucket} made public{access}"
    return f"S3 bucket {bucket} made public{access}"


def console_links(finding: Finding) -> dict[str, str]:
    """Deep links: the CloudTrail event, the bucket's permissions tab, the actor's recent events."""
    region = finding["region"] or "us-east-1"
    links: dict[str, str] = {}
    if finding["eventID"]:
        links["cloudtrailEvent"] = (
            f"https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}"
            f"#/events/{quote(finding['eventID'], safe='')}"
        )
    if finding["bucket"]:
        links["bucket"] = (
            f"https://s3.console.aws.amazon.com/s3/buckets/{quote(finding['bucket'], safe='')}"
            f"?region={region}&tab=permissions"
        )
    user = lookup_username(finding["actor"])
    if user:
        links["actorEvents"] = (
            f"https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}"
            f"#/events?Username={quote(user, safe='')}"
        )
    return links


def lookup_username(actor: str | None) -> str | None:
    """The CloudTrail "User name" lookup value for an actor ARN: user name, role session, or root."""
    if not actor or not actor.startswith("arn:"):
        return None
    resource = actor.split(":", 5)[-1]
    if resource == "root":
        return "root"
    return resource.rsplit("/", 1)[-1] or None


def _flags_text(flags: dict[str, bool] | None, state: str) -> str:
    if state == "not-set":
        return "not set (all four off)"
    if state in ("unknown", "not-read"):
        return "could not be read" if state == "unknown" else "not read"
    flags = flags or {}
    return ", ".join(f"{flag}={'on' if flags.get(flag) else 'off'}" for flag in BPA_FLAGS)


def build_alert(
    finding: Finding,
    exposure: Exposure,
    severity: str,
    severity_reason: str,
    approval: Approval,
    remediation: Remediation,
    settings: Settings,
    *,
    checked_at: str,
    account_mismatch: bool = False,
) -> Alert:
    """Assemble subject, human body and JSON payload for one finding."""
    account = finding["account"] or "unknown-account"
    where = f"in {settings.account_name} {account}"
    if account_mismatch:
        where = f"in UNEXPECTED account {account} (stack watches {settings.expected_account_id})"
    subject = safe_subject(f"[{severity.upper()}] {headline(finding, exposure)}", where)
    links = console_links(finding)
    window_end = checked_at if remediation["status"] == "applied" else None
    payload: dict[str, Any] = {
        "schema": PAYLOAD_SCHEMA,
        "subject": subject,
        "severity": severity,
        "severityReason": severity_reason,
        "account": {
            "id": account,
            "name": settings.account_name,
            "environment": settings.environment,
            "production": settings.production,
            "expected": settings.expected_account_id,
            "mismatch": account_mismatch,
        },
        "finding": dict(finding),
        "exposure": dict(exposure),
        "approval": {
            "approved": approval.approved,
            "basis": approval.basis,
            "reason": approval.reason,
            "expires": approval.expires,
        },
        "remediation": dict(remediation),
        "previousBpa": {"state": remediation["previous_state"], "flags": remediation["previous"]},
        "exposureWindow": {"from": finding["eventTime"], "to": window_end},
        "checkedAt": checked_at,
        "links": links,
    }
    text = _body(finding, exposure, severity, severity_reason, approval, remediation, settings, payload)
    payload["text"] = text
    attributes = {
        "severity": severity,
        "verdict": finding["verdict"],
        "account": account,
        "environment": settings.environment,
        "remediation": remediation["status"],
        "exposure": exposure["status"],
    }
    if finding["bucket"]:
        attributes["bucket"] = finding["bucket"]
    return Alert(subject=subject, text=text, payload=payload, attributes=attributes)


def _body(
    finding: Finding,
    exposure: Exposure,
    severity: str,
    severity_reason: str,
    approval: Approval,
    remediation: Remediation,
    settings: Settings,
    payload: dict[str, Any],
) -> str:
    account = finding["account"] or "unknown"
    bucket = finding["bucket"]
    region = finding["region"] or "unknown region"
    links = payload["links"]
    lines = [payload["subject"], ""]

    lines.append("WHAT HAPPENED")
    target = (
        f"bucket {bucket}"
        if bucket
        else (f"access point {finding['accessPoint']}" if finding["accessPoint"] else "the account")
    )
    if finding["key"]:
        target = f"object {finding['key']} in bucket {bucket}"
    lines.append(f"  {finding['eventName']} on {target}, account {settings.account_name} {account}, {region}")
    lines.append(f"  Verdict: {finding['verdict']} ({finding['kind']}, {finding['scope']} level)")
    if finding["access"] or finding["principals"]:
        lines.append(
            f"  Granted: {', '.join(finding['access']) or '-'} to {', '.join(finding['principals']) or '-'}"
        )
    for reason in finding["reasons"]:
        lines.append(f"  Why: {reason}")
    if finding["error"]:
        lines.append(f"  The call failed: {finding['error']} {finding['errorMessage'] or ''}".rstrip())

    lines += ["", "WHO"]
    lines.append(f"  Actor: {finding['actor'] or 'unknown'}")
    lines.append(f"  Source IP: {finding['sourceIPAddress'] or 'unknown'}")
    lines.append(f"  User agent: {finding['userAgent'] or 'unknown'} ({finding['client']})")

    if finding["kind"] == "sweep":
        when = f"  Found by the scheduled sweep at {payload['checkedAt']}; the change itself was not observed"
    else:
        when = f"  Event time: {finding['eventTime'] or 'unknown'} (CloudTrail eventID {finding['eventID']})"
    lines += ["", "WHEN", when]

    lines += ["", f"STATE NOW (checked {payload['checkedAt']})"]
    lines.append(f"  Exposure: {STATUS_WORDS.get(exposure['status'], exposure['status'])}")
    if exposure["access"]:
        lines.append(f"  Public access now: {', '.join(exposure['access'])}")
    for reason in exposure["reasons"]:
        lines.append(f"  - {reason}")
    if exposure["disagreement"]:
        lines.append(f"  DISAGREEMENT: {exposure['disagreement']}")
    if exposure["bucket_bpa_state"] != "not-read":
        lines.append(
            "  Bucket Block Public Access: "
            + _flags_text(exposure["bucket_bpa"], exposure["bucket_bpa_state"])
        )
    if exposure["account_bpa_state"] != "not-read":
        lines.append(
            "  Account Block Public Access: "
            + _flags_text(exposure["account_bpa"], exposure["account_bpa_state"])
        )
    if exposure["ownership"] or exposure["bucket_bpa_state"] != "not-read":
        lines.append(f"  Object ownership: {exposure['ownership'] or 'not set (ACLs honoured)'}")
    for failure in exposure["failures"]:
        lines.append(
            f"  COULD NOT CHECK: {failure['call']} failed with {failure['error']}: {failure['message']}"
        )

    lines += ["", f"SEVERITY: {severity.upper()} - {severity_reason}"]

    lines += ["", "WHAT WAS DONE"]
    lines.append(f"  Mode {remediation['mode']}: {remediation['status']} - {remediation['detail']}")
    if remediation["previous_state"] != "not-read":
        lines.append(f"  Previous BPA: {_flags_text(remediation['previous'], remediation['previous_state'])}")
    if remediation["error"]:
        error = remediation["error"]
        lines.append(f"  FAILED CALL: {error['call']}: {error['error']}: {error['message']}")
    if remediation["undo"] and remediation["status"] in ("applied", "unverified", "would-apply"):
        lines.append(f"  Undo: {remediation['undo']}")

    lines += ["", "RESPONSE CHECKLIST"]
    lines += [
        f"  [ ] {step}"
        for step in _checklist(finding, exposure, severity, approval, remediation, settings, payload)
    ]

    lines += ["", "LINKS"]
    for name, label in (
        ("cloudtrailEvent", "CloudTrail event"),
        ("bucket", "Bucket permissions"),
        ("actorEvents", "Actor's recent events"),
    ):
        if name in links:
            lines.append(f"  {label}: {links[name]}")
    return "\n".join(lines) + "\n"


def _checklist(
    finding: Finding,
    exposure: Exposure,
    severity: str,
    approval: Approval,
    remediation: Remediation,
    settings: Settings,
    payload: dict[str, Any],
) -> list[str]:
    account = finding["account"] or "unknown"
    bucket = finding["bucket"]
    region = finding["region"] or "us-east-1"
    tags = exposure["tags"]
    tag_text = (
        "tags could not be read"
        if tags is None and exposure["bucket_bpa_state"] != "not-read"
        else ", ".join(f"{k}={v}" for k, v in sorted((tags or {}).items())) or "no tags"
    )
    access = ", ".join(exposure["access"] or finding["access"]) or "none confirmed"
    environment = f"{settings.environment}{' (production)' if settings.production else ''}"
    steps = [
        "1. Weigh account, bucket and permission: "
        f"account {settings.account_name} {account} ({environment}); "
        f"bucket {bucket or '-'} ({tag_text}); public access {access}. Rated {severity}.",
    ]
    user = lookup_username(finding["actor"])
    if finding["kind"] == "sweep" and bucket:
        steps.append(
            f"2. Who opened it, and when? The sweep saw the state, not the change: aws cloudtrail "
            f"lookup-events --region {region} --lookup-attributes "
            f"AttributeKey=ResourceName,AttributeValue={bucket} --max-results 50"
        )
    elif user:
        steps.append(
            f"2. Has {finding['actor']} done this before? aws cloudtrail lookup-events --region {region} "
            f"--lookup-attributes AttributeKey=Username,AttributeValue={user} --max-results 50"
            + (f" (console: {payload['links']['actorEvents']})" if "actorEvents" in payload["links"] else "")
        )
    else:
        steps.append(
            f"2. Has the actor ({finding['actor'] or 'unknown'}) done this before? Search CloudTrail for it."
        )
    if bucket:
        steps.append(
            f"3. Should {bucket} be public? {approval.reason}. If it should, "
            f"add it to EXCEPTION_BUCKETS or tag it {settings.approval_tag}=<YYYY-MM-DD expiry>."
        )
    else:
        steps.append("3. Should this be public? Confirm with the owner of the change.")
    if remediation["status"] == "applied":
        steps.append(f"4. Remediate fast: done at {payload['checkedAt']} ({remediation['detail']}).")
    elif remediation["fix"]:
        steps.append(f"4. Remediate fast: {remediation['fix']}")
    else:
        steps.append(f"4. Remediate fast: {remediation['detail']}.")
    if bucket and finding["verdict"] not in ("attempt", "tamper"):
        end = payload["exposureWindow"]["to"] or "now (still open or unconfirmed)"
        steps.append(
            f"5. Check access for the exposure window {finding['eventTime'] or '?'} -> {end}: "
            f"S3 server access logs or CloudTrail data events for {bucket} "
            f"(GetObject, ListBucket, PutObject from outside {account})."
        )
    else:
        steps.append("5. Check access logs: no exposure window (nothing changed on a bucket).")
    account_flags = _flags_text(exposure["account_bpa"], exposure["account_bpa_state"])
    steps.append(
        f"6. Harden: account-level Block Public Access is {account_flags}; "
        f"to block every bucket: {account_fix_command(account)}"
        + (
            f"; this bucket alone: {bucket_fix_command(bucket, account)}"
            if bucket and remediation["status"] != "applied" and not remediation["fix"]
            else ""
        )
    )
    return steps


def sns_message(alert: Alert) -> dict[str, Any]:
    """The keyword arguments of ``sns.publish`` for ``alert`` (without TopicArn)."""
    payload_json = json.dumps(alert["payload"], default=str, sort_keys=True)
    per_protocol = {
        "default": alert["text"],
        "email": alert["text"],
        **dict.fromkeys(JSON_PROTOCOLS, payload_json),
    }
    message = json.dumps(per_protocol)
    attributes = {
        name: {"DataType": "String", "StringValue": value[:256]}
        for name, value in alert["attributes"].items()
        if value
    }
    if len(message) > MESSAGE_LIMIT:
        # Too big for one message: humans still get the body (truncated); the payload is dropped.
        return {
            "Subject": alert["subject"],
            "Message": alert["text"][:MESSAGE_LIMIT],
            "MessageAttributes": attributes,
        }
    return {
        "Subject": alert["subject"],
        "Message": message,
        "MessageStructure": "json",
        "MessageAttributes": attributes,
    }


def publish(alert: Alert, topic_arn: str, region: str) -> str:
    """Publish ``alert``; returns the SNS MessageId. Raises on failure: the caller must not lose it."""
    sns = aws_clients.client("sns", region)
    response = sns.publish(TopicArn=topic_arn, **sns_message(alert))
    return str(response.get("MessageId", ""))

"""Decisions as AWS Security Hub findings (ASFF), imported into the account's default product.

One finding per exposure, not per event: its ``Id`` is ``<account>/<region>/<target>/<path>``
(target: the bucket, access point, trail or ``account``; path: how it is exposed, e.g. ``policy``
or ``object-acl``), so a re-detection updates the finding instead of adding one.

Lifecycle, as AWS documents it for finding providers:

- ``BatchImportFindings`` creates and updates the finding. A new finding takes its ``Workflow``
  from the import (``NEW``; ``RESOLVED`` when we closed it already; ``SUPPRESSED`` for an approved
  exception). After creation AWS ignores ``Workflow`` in imports, so a change of status goes
  through ``BatchUpdateFindings`` (only ``Workflow`` and a ``Note``; IAM conditions keep it so).
- When the sweep finds a reported bucket closed, its active findings are ``RESOLVED``; when the
  bucket is gone they are re-imported with ``RecordState: ARCHIVED``. ``GetFindings`` (filtered
  to this bucket's ``Id`` prefix in our product) tells which findings exist.

Severity and Types go in ``FindingProviderFields`` too: AWS takes a provider's later values from
there. Every text comes from the alert payload, whose event fields are attacker-written: each is
made one safe line (:mod:`handlers.detection.safe_text`) and cut to ASFF's documented limits.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from handlers.detection.s3_terms import BPA_FLAGS
from handlers.detection.safe_text import checked_access_point, checked_bucket, checked_region, inline
from handlers.detection.timestamps import utc_text
from handlers.response import aws_clients

SCHEMA_VERSION = "2018-10-08"
PRODUCT_NAME = "S3 Exposure Detector"
GENERATOR_ID = "s3-exposure-detector"
# ASFF's documented limits.
TITLE_MAX = 256
DESCRIPTION_MAX = 1024
RECOMMENDATION_MAX = 512
PRODUCT_FIELDS_MAX = 50
PRODUCT_FIELD_VALUE_MAX = 2048
NOTE_MAX = 512
MAX_UPDATE_IDS = 100  # BatchUpdateFindings takes up to 100 identifiers per call
LABELS = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM", "low": "LOW", "info": "INFORMATIONAL"}
NORMALIZED = {"CRITICAL": 90, "HIGH": 70, "MEDIUM": 40, "LOW": 1, "INFORMATIONAL": 0}
EXPOSURE_TYPE = "Effects/Data Exposure/S3 Public Access"
COLLECTION_TYPE = "TTPs/Collection/T1530-Data from Cloud Storage"
TYPES = {
    "public": (EXPOSURE_TYPE, COLLECTION_TYPE),
    "weakening": (
        "Software and Configuration Checks/AWS Security Best Practices/S3 Public Access Guard Removed",
        EXPOSURE_TYPE,
        COLLECTION_TYPE,
    ),
    "undetermined": (EXPOSURE_TYPE, COLLECTION_TYPE),
    "attempt": ("Unusual Behaviors/User/Attempt To Make S3 Data Public", COLLECTION_TYPE),
    "tamper": ("TTPs/Defense Evasion/T1562.008-Disable or Modify Cloud Logs",),
    "approval": ("Software and Configuration Checks/AWS Security Best Practices/S3 Public Access Approval",),
}
# Documented reason the workflow is not the import's (a Note on every status change we make).
_STATUS_NOTE = {
    "RESOLVED": "closed: {why}",
    "SUPPRESSED": "approved exception: {why}",
    "NEW": "exposed: {why}",
}
_PATH_NAME = re.compile(r"[a-z][a-z-]{0,40}")
# Set by Security Hub, not by a provider: left out when a finding read back is imported again.
_NOT_IMPORTED = frozenset(
    {"Workflow", "WorkflowState", "Note", "UserDefinedFields", "VerificationState", "ProcessedAt"}
)


class SecurityHubError(RuntimeError):
    """Security Hub did not take a finding (a failed call, or the finding listed as failed)."""


# ---- identity -------------------------------------------------------------------------------------


def product_arn(partition: str, region: str, account: str) -> str:
    """The account's own product (custom findings go there)."""
    return f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _digest(value: object) -> str:
    return "h-" + hashlib.sha256(str(value).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def target_of(finding: Mapping[str, Any]) -> str:
    """The exposed thing, in a form safe for an Id: checked names, else a digest of the raw value."""
    scope = finding.get("scope")
    if scope == "account":
        return "account"
    if scope == "access-point":
        raw = finding.get("accessPoint")
        name = str(raw).rsplit("/", 1)[-1] if isinstance(raw, str) else None
        checked = checked_access_point(name)
        return f"access-point:{checked}" if checked else f"access-point:{_digest(raw)}"
    if scope == "trail":
        return "trail"
    raw = finding.get("bucket")
    return checked_bucket(raw) or _digest(raw)


def path_of(finding: Mapping[str, Any], exposure: Mapping[str, Any] | None = None) -> str:
    """How it is exposed: the finding's kind; object ACLs are their own path, failed attempts too.

    The sweep's findings (kind ``sweep``) name the path they saw public, so a bucket the sweep
    finds public through its policy updates the same finding as the ``PutBucketPolicy`` event.
    """
    kind = finding.get("kind")
    if finding.get("verdict") == "attempt":
        # A failed call exposed nothing: its own finding, never one that reopens the exposure's.
        return f"{path_of({**finding, 'verdict': None}, exposure)}-attempt"
    if kind == "sweep":
        paths = (exposure or {}).get("paths")
        vias = [p.get("via") for p in paths if isinstance(p, Mapping)] if isinstance(paths, list) else []
        effective = (
            [p.get("via") for p in paths or [] if isinstance(p, Mapping) and p.get("effective")]
            if isinstance(paths, list)
            else []
        )
        via = (effective or vias or [None])[0]
        return {"policy": "policy", "bucket-acl": "acl", "object-acl": "object-acl"}.get(str(via), "sweep")
    if finding.get("scope") == "object" and kind == "acl":
        return "object-acl"
    if isinstance(kind, str) and _PATH_NAME.fullmatch(kind):
        return kind
    return "other"


def finding_id(account: str, region: str, target: str, path: str) -> str:
    return f"{account}/{region}/{target}/{path}"


# ---- the finding ----------------------------------------------------------------------------------


def _text(value: object, limit: int) -> str:
    return inline(value, limit=max(1, limit - 16), empty="-")[:limit]


def _timestamp(value: object, fallback: datetime) -> str:
    """ASFF's ISO 8601 form (UTC, milliseconds); anything unparseable is ``fallback``."""
    when = fallback
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            when = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return utc_text(when, "milliseconds")


def workflow_status(payload: Mapping[str, Any]) -> str:
    """NEW, or RESOLVED when it is closed already (by us, or found closed), SUPPRESSED when approved."""
    approval = _mapping(payload.get("approval"))
    remediation = _mapping(payload.get("remediation"))
    exposure = _mapping(payload.get("exposure"))
    if approval.get("approved") is True:
        return "SUPPRESSED"
    if remediation.get("status") == "applied" or exposure.get("status") in ("closed", "gone"):
        return "RESOLVED"
    return "NEW"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def build(payload: Mapping[str, Any], *, region: str, account: str, now: datetime) -> dict[str, Any]:
    """One ASFF finding for an alert payload (the alert's JSON), in ``region`` of ``account``.

    ``account`` is the stack's (an import for another account is refused by AWS, and a finding
    about an event claiming another account is still this account's concern).
    """
    finding = _mapping(payload.get("finding"))
    exposure = _mapping(payload.get("exposure"))
    remediation = _mapping(payload.get("remediation"))
    approval = _mapping(payload.get("approval"))
    partition = partition_of(region)
    target, path = target_of(finding), path_of(finding, exposure)
    severity = str(payload.get("severity") or finding.get("severity") or "info")
    label = LABELS.get(severity, "INFORMATIONAL")
    verdict = str(finding.get("verdict") or "undetermined")
    types = list(TYPES.get(verdict, (EXPOSURE_TYPE,)))
    seen = _timestamp(finding.get("eventTime"), now)
    updated = _timestamp(None, now)
    reasons = found if isinstance(found := finding.get("reasons"), list) else []
    exposure_reasons = listed if isinstance(listed := exposure.get("reasons"), list) else []
    description = (
        "; ".join(inline(r, limit=200) for r in [*reasons[:5], *exposure_reasons[:3]] if r)
        or "S3 exposure decision"
    )
    result: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(account, region, target, path),
        "ProductArn": product_arn(partition, region, account),
        "ProductName": PRODUCT_NAME,
        "CompanyName": "Custom",
        "GeneratorId": f"{GENERATOR_ID}/{path}",
        "AwsAccountId": account,
        "Types": types,
        "FirstObservedAt": seen,
        "LastObservedAt": seen,
        "CreatedAt": seen,
        "UpdatedAt": updated,
        "Severity": {"Label": label, "Original": severity if severity in LABELS else "info"},
        "FindingProviderFields": {
            "Severity": {"Label": label, "Original": severity if severity in LABELS else "info"},
            "Types": types,
        },
        "Title": _text(payload.get("subject") or f"S3 exposure: {target}", TITLE_MAX),
        "Description": _text(description, DESCRIPTION_MAX),
        "Resources": [_resource(finding, exposure, target, partition, region, account)],
        "Workflow": {"Status": workflow_status(payload)},
        "RecordState": "ARCHIVED" if exposure.get("status") == "gone" else "ACTIVE",
        "ProductFields": _product_fields(payload, finding, exposure, remediation, approval),
    }
    recommendation = _recommendation(remediation, exposure)
    if recommendation:
        result["Remediation"] = {"Recommendation": {"Text": recommendation}}
    links = _mapping(payload.get("links"))
    source = links.get("cloudtrailEvent")
    if isinstance(source, str) and source.startswith("https://") and len(source) <= 2048:
        result["SourceUrl"] = source
    action = _action(finding)
    if action:
        result["Action"] = action
    return result


def _recommendation(remediation: Mapping[str, Any], exposure: Mapping[str, Any]) -> str:
    status = remediation.get("status")
    parts: list[str] = []
    if status == "applied" and isinstance(remediation.get("undo"), str):
        parts = ["Closed with Block Public Access. If it was intended, undo:", remediation["undo"]]
    elif isinstance(remediation.get("fix"), str):
        parts = ["Close it with Block Public Access:", remediation["fix"]]
    elif exposure.get("status") in ("public-now", "unknown", "exposable"):
        parts = ["Review the bucket's policy, ACLs and Block Public Access settings."]
    text = " ".join(parts)
    # Commands are ours (built from checked names); anything longer than the field is cut whole.
    return text if len(text) <= RECOMMENDATION_MAX else text[: RECOMMENDATION_MAX - 1] + "…"


def _resource(
    finding: Mapping[str, Any],
    exposure: Mapping[str, Any],
    target: str,
    partition: str,
    region: str,
    account: str,
) -> dict[str, Any]:
    scope = finding.get("scope")
    base = {"Partition": partition, "Region": checked_region(finding.get("region")) or region}
    if scope == "account":
        return {**base, "Type": "AwsAccount", "Id": f"AWS::::Account:{account}"}
    if scope == "trail":
        return {
            **base,
            "Type": "AwsCloudTrailTrail",
            "Id": f"arn:{partition}:cloudtrail:{region}:{account}:trail",
        }
    if target.startswith("access-point:"):
        name = target.split(":", 1)[1]
        return {
            **base,
            "Type": "AwsS3AccessPoint",
            "Id": f"arn:{partition}:s3:{base['Region']}:{account}:accesspoint/{name}",
        }
    details: dict[str, Any] = {"OwnerAccountId": account}
    flags = exposure.get("bucket_bpa")
    if isinstance(flags, Mapping) and flags:
        details["PublicAccessBlockConfiguration"] = {k: bool(v) for k, v in flags.items() if k in BPA_FLAGS}
    return {
        **base,
        "Type": "AwsS3Bucket",
        "Id": f"arn:{partition}:s3:::{target}",
        "Details": {"AwsS3Bucket": details},
    }


def _product_fields(
    payload: Mapping[str, Any],
    finding: Mapping[str, Any],
    exposure: Mapping[str, Any],
    remediation: Mapping[str, Any],
    approval: Mapping[str, Any],
) -> dict[str, str]:
    history = _mapping(payload.get("actorHistory"))
    fields = {
        "s3-exposure-detector/verdict": finding.get("verdict"),
        "s3-exposure-detector/route": finding.get("route"),
        "s3-exposure-detector/requestForm": finding.get("variant"),
        "s3-exposure-detector/kind": finding.get("kind"),
        "s3-exposure-detector/eventName": finding.get("eventName"),
        "s3-exposure-detector/eventID": finding.get("eventID"),
        "s3-exposure-detector/actor": finding.get("actor"),
        "s3-exposure-detector/sourceIPAddress": finding.get("sourceIPAddress"),
        "s3-exposure-detector/objectKey": finding.get("key"),
        "s3-exposure-detector/exposure": exposure.get("status"),
        "s3-exposure-detector/remediation": remediation.get("status"),
        "s3-exposure-detector/approval": approval.get("state"),
        "s3-exposure-detector/actorHistory": history.get("verdict"),
    }
    # Values are attacker-written: one safe line each, capped; empty ones are left out.
    return {
        k: _text(v, PRODUCT_FIELD_VALUE_MAX)
        for k, v in list(fields.items())[:PRODUCT_FIELDS_MAX]
        if v not in (None, "")
    }


def _action(finding: Mapping[str, Any]) -> dict[str, Any] | None:
    name = finding.get("eventName")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9]{1,128}", name):
        return None
    call: dict[str, Any] = {
        "Api": name,
        "ServiceName": "cloudtrail.amazonaws.com" if finding.get("kind") == "trail" else "s3.amazonaws.com",
        "CallerType": "remoteIp",
    }
    ip = finding.get("sourceIPAddress")
    if isinstance(ip, str) and re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", ip):
        call["RemoteIpDetails"] = {"IpAddressV4": ip}
    return {"ActionType": "AWS_API_CALL", "AwsApiCallAction": call}


# ---- the calls ------------------------------------------------------------------------------------


def report(payload: Mapping[str, Any], *, region: str, account: str, now: datetime | None = None) -> str:
    """Import the decision; when it existed already, set its workflow. Returns the finding Id.

    Raises :class:`SecurityHubError` when the finding was not taken (the caller keeps it for a retry).
    """
    now = now or datetime.now(UTC)
    asff = build(payload, region=region, account=account, now=now)
    hub = aws_clients.client("securityhub", region)
    response = hub.batch_import_findings(Findings=[asff])
    failed = response.get("FailedFindings") or []
    if response.get("FailedCount") or failed:
        first = failed[0] if failed and isinstance(failed[0], Mapping) else {}
        raise SecurityHubError(
            f"BatchImportFindings refused {asff['Id']}: {first.get('ErrorCode')}: {first.get('ErrorMessage')}"
        )
    status = asff["Workflow"]["Status"]
    why = inline(_mapping(payload.get("remediation")).get("detail") or payload.get("subject"), limit=300)
    # A new finding took the status from the import; an existing one needs the update. A finding
    # not (yet) visible to the update was just created, so the import's status holds.
    set_workflow(hub, [asff["Id"]], asff["ProductArn"], status, _STATUS_NOTE[status].format(why=why))
    return str(asff["Id"])


def set_workflow(hub: Any, ids: list[str], product: str, status: str, note: str) -> None:
    """``BatchUpdateFindings`` of ``Workflow.Status`` (and a note) for ``ids``; raises on real failures."""
    for start in range(0, len(ids), MAX_UPDATE_IDS):
        chunk = ids[start : start + MAX_UPDATE_IDS]
        response = hub.batch_update_findings(
            FindingIdentifiers=[{"Id": i, "ProductArn": product} for i in chunk],
            Workflow={"Status": status},
            Note={"Text": note[:NOTE_MAX], "UpdatedBy": GENERATOR_ID},
        )
        for item in response.get("UnprocessedFindings") or []:
            code = str(_mapping(item).get("ErrorCode") or "")
            if code != "FindingNotFound":
                raise SecurityHubError(f"BatchUpdateFindings left {len(chunk)} finding(s): {code}")


def close(
    bucket: str, *, region: str, account: str, gone: bool, reason: str, now: datetime | None = None
) -> int:
    """The sweep found ``bucket`` closed (``gone``: deleted): resolve, or archive, its active findings.

    Returns how many findings changed; raises :class:`SecurityHubError` (or the client's error)
    so the caller keeps the exposure and tries again on its next run.
    """
    now = now or datetime.now(UTC)
    name = checked_bucket(bucket) or _digest(bucket)
    hub = aws_clients.client("securityhub", region)
    product = product_arn(partition_of(region), region, account)
    prefix = finding_id(account, region, name, "")
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        request: dict[str, Any] = {
            "Filters": {
                "Id": [{"Value": prefix, "Comparison": "PREFIX"}],
                "ProductArn": [{"Value": product, "Comparison": "EQUALS"}],
                "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
            },
            "MaxResults": 100,
        }
        if token:
            request["NextToken"] = token
        page = hub.get_findings(**request)
        # The prefix ends with "/", so another bucket whose name starts with this one never matches;
        # checked again here in case a filter is looser than documented.
        found += [f for f in page.get("Findings") or [] if str(f.get("Id", "")).startswith(prefix)]
        token = page.get("NextToken")
        if not token or len(found) > 1000:
            break
    if not found:
        return 0
    note = inline(reason, limit=400)
    if gone:
        stamp = _timestamp(None, now)
        archived = [{**_importable(hub, f), "RecordState": "ARCHIVED", "UpdatedAt": stamp} for f in found]
        for start in range(0, len(archived), 100):
            response = hub.batch_import_findings(Findings=archived[start : start + 100])
            if response.get("FailedCount"):
                raise SecurityHubError(
                    f"BatchImportFindings did not archive {response['FailedCount']} finding(s)"
                )
    ids = [
        str(f["Id"])
        for f in found
        if _mapping(f.get("Workflow")).get("Status") not in ("RESOLVED", "SUPPRESSED")
    ]
    if ids:
        set_workflow(hub, ids, product, "RESOLVED", _STATUS_NOTE["RESOLVED"].format(why=note))
    return len(found)


def _importable(hub: Any, finding: Mapping[str, Any]) -> dict[str, Any]:
    """A finding read back by ``GetFindings``, reduced to what a provider may import again."""
    members = hub.meta.service_model.shape_for("AwsSecurityFinding").members
    kept = {k: v for k, v in finding.items() if k in members and k not in _NOT_IMPORTED}
    fields = kept.get("ProductFields")
    if isinstance(fields, Mapping):  # "aws/securityhub/..." keys are Security Hub's own
        kept["ProductFields"] = {k: v for k, v in fields.items() if not str(k).startswith("aws/")}
    return kept

"""What every rule shares: turning a record plus a decision into a finding.

A rule module holds ``EVENT_NAMES`` (the CloudTrail ``eventName`` values it reads),
``EVENT_SOURCE``, ``classify(record) -> list[Finding]`` and the declarations the deployment
is derived from (:mod:`handlers.detection.rules.declarations`). It decides as if the call succeeded;
:func:`make_finding` turns a failed call into a low-severity attempt.
"""

from __future__ import annotations

from typing import Any

from handlers.detection.access_levels import WRITE_ACCESS
from handlers.detection.finding import Finding, Route, Severity, Verdict
from handlers.detection.records import (
    Record,
    account_id,
    actor,
    as_list,
    as_text,
    bucket_name,
    client_kind,
    deep_get,
    failed,
    object_key,
    session_context,
)


def resource_name(record: Record, resource_type: str) -> str | None:
    """The name at the end of the ARN of the record's first ``resources`` entry of ``resource_type``
    (``...:accesspoint/<name>``): the target, when null or damaged parameters do not say."""
    for resource in as_list(record.get("resources")):
        arn = as_text(deep_get(resource, "ARN"))
        if deep_get(resource, "type") == resource_type and arn and "/" in arn:
            return arn.rsplit("/", 1)[-1] or None
    return None


def static_severity(verdict: str, access: list[str], scope: str) -> Severity:
    """Severity from the record alone; the response Lambda refines it with live context."""
    if verdict == "public":
        return "critical" if WRITE_ACCESS.intersection(access) else "high"
    if verdict == "weakening":
        return "high" if scope == "account" else "medium"
    if verdict == "tamper":
        return "high"
    if verdict == "undetermined":
        return "medium"
    if verdict == "approval":
        return "low"  # an audit trail of who exempted a bucket, not an exposure by itself
    return "low"


def make_finding(
    record: Record,
    *,
    verdict: Verdict,
    kind: str,
    route: Route,
    variant: str,
    reasons: list[str],
    scope: str = "bucket",
    access: list[str] | None = None,
    principals: list[str] | None = None,
    bucket: Any = ...,
    access_point: str | None = None,
) -> Finding:
    """Build a finding for ``record``; a failed call becomes an ``attempt`` whatever it tried."""
    access = sorted(set(access or []))
    error = as_text(record.get("errorCode")) if failed(record) else None
    if error:
        reasons = [*reasons, f"the call failed with {error}, so nothing changed"]
        verdict = "attempt"
    user_agent = as_text(record.get("userAgent"))
    return Finding(
        eventID=as_text(record.get("eventID")),
        eventName=as_text(record.get("eventName")) or "",
        eventTime=as_text(record.get("eventTime")),
        account=account_id(record),
        region=as_text(record.get("awsRegion")),
        bucket=bucket_name(record) if bucket is ... else bucket,
        key=object_key(record) if scope == "object" else None,
        accessPoint=access_point,
        public=verdict == "public",
        verdict=verdict,
        kind=kind,
        scope=scope,
        access=access,
        principals=sorted(set(principals or [])),
        variant=variant,
        route=route,
        client=client_kind(user_agent),
        actor=actor(record),
        sourceIPAddress=as_text(record.get("sourceIPAddress")),
        userAgent=user_agent,
        severity=static_severity(verdict, access, scope),
        reasons=reasons,
        error=error,
        errorMessage=as_text(record.get("errorMessage")) if error else None,
        session=session_context(record),
    )


def tamper_finding(
    record: Record, reasons: list[str], *, scope: str = "trail", bucket: str | None = None
) -> Finding:
    """A finding for a call that blinds or weakens the audit trail the detector relies on."""
    return make_finding(
        record,
        verdict="tamper",
        kind="trail",
        route="trail-tamper",
        variant="body",
        scope=scope,
        reasons=reasons,
        bucket=bucket,
    )

"""The one decision pipeline: approval -> severity -> remediation -> alert, for events and the sweep.

The response function feeds it a finding from a CloudTrail event plus the live exposure it
read; the scheduled sweep feeds it a bucket state it observed (:func:`observed_finding`
gives that state the finding shape the alert speaks). Both get the same answers:

- **approval** (:mod:`handlers.detection.approvals`): allow-list or a bounded approval tag, covering
  public read only; tags that could not be read leave the approval ``unknown``;
- **severity** (:mod:`handlers.response.severity`), raised to at least high when an approval
  does not cover the access granted;
- **remediation** (:mod:`handlers.response.remediation`), which never closes a bucket whose
  approval is unknown and, behind ``gate``, acts only once per event;
- **alert** (:mod:`handlers.response.alert`), built from all of the above.

Remediation decisions rest on the live reads in ``exposure``, never on what an event claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from handlers.detection.approvals import NOT_CHECKED, Approval, check_approval, covers
from handlers.detection.finding import SEVERITY_ORDER, Finding, Severity
from handlers.detection.timestamps import utc_text
from handlers.response import alert as alerts
from handlers.response.exposure import Exposure
from handlers.response.remediation import ActionGate, Remediation, remediate
from handlers.response.response_config import Settings
from handlers.response.severity import is_sensitive, public_access, raised_for_first_time, rate


@dataclass(frozen=True)
class Decision:
    """Everything decided about one finding or observed bucket."""

    approval: Approval
    severity: Severity
    severity_reason: str
    remediation: Remediation
    alert: alerts.Alert


def stamp(moment: datetime) -> str:
    """``2026-12-03T07:38:24Z``: the timestamp form of alerts, ledger and logs."""
    return utc_text(moment)


def approval_for(finding: Finding, exposure: Exposure, settings: Settings, now: datetime) -> Approval:
    """Whether the bucket may be public, limited to what an approval can cover (public read)."""
    if exposure["status"] == "not-checked" or finding["scope"] not in ("bucket", "object"):
        return NOT_CHECKED
    approval = check_approval(
        finding["bucket"],
        exposure["tags"],
        allow_list=settings.exception_buckets,
        approval_tag=settings.approval_tag,
        now=now,
        max_days=settings.max_approval_days,
    )
    if finding["verdict"] == "approval":
        return approval  # an audit of the approval itself: report it as it stands
    granted = set(public_access(finding, exposure))
    if finding["verdict"] == "public":
        granted |= set(finding["access"])
    return covers(approval, granted)


def decide(
    finding: Finding,
    exposure: Exposure,
    settings: Settings,
    *,
    now: datetime,
    account_mismatch: bool = False,
    allow_account: bool | None = None,
    gate: ActionGate | None = None,
    acted_before: Mapping[str, Mapping[str, Any]] | None = None,
    history: Mapping[str, Any] | None = None,
) -> Decision:
    """Rate, remediate (per ``settings.remediation_mode``) and build the alert for one finding.

    ``allow_account``: override the account-level remediation setting (the sweep never acts
    on the account). ``gate`` and ``acted_before``: see :func:`handlers.response.remediation.remediate`.
    ``history``: the actor's CloudTrail history (:mod:`handlers.response.actor_history`), when read.
    """
    approval = approval_for(finding, exposure, settings, now)
    sensitive = is_sensitive(exposure["tags"], settings.sensitive_tag, settings.sensitive_tag_values)
    severity, why = rate(
        finding,
        exposure,
        approval,
        production=settings.production,
        sensitive=sensitive,
        account_mismatch=account_mismatch,
    )
    if approval.state == "not-covered" and SEVERITY_ORDER[severity] < SEVERITY_ORDER["high"]:
        severity, why = "high", f"{why}; an approval covers public read only, not the write access granted"
    severity, why = raised_for_first_time(
        severity,
        why,
        dict(history) if history is not None else None,
        production=settings.production,
        verdict=finding["verdict"],
    )
    if approval.unknown and finding["verdict"] not in ("attempt", "tamper", "approval"):
        why = f"{why}; approval unknown (the bucket's tags could not be read), so it was not closed"
    remediation = remediate(
        finding,
        exposure,
        approval,
        mode=settings.remediation_mode,
        account=settings.expected_account_id,
        allow_account=settings.allow_account_remediation if allow_account is None else allow_account,
        account_mismatch=account_mismatch,
        gate=gate,
        acted_before=acted_before,
    )
    alert = alerts.build_alert(
        finding,
        exposure,
        severity,
        why,
        approval,
        remediation,
        settings,
        checked_at=stamp(now),
        account_mismatch=account_mismatch,
        history=history,
    )
    return Decision(approval, severity, why, remediation, alert)


def observed_finding(bucket: str, region: str | None, account: str, exposure: Exposure) -> Finding:
    """The finding shape for a bucket state the sweep observed (no event: no actor, no time)."""
    public_now = exposure["status"] == "public-now"
    access = sorted({a for p in exposure["paths"] for a in p["access"]} - {"unknown"})
    return cast(
        Finding,
        {
            "eventID": None,
            "eventName": "ScheduledSweep",
            "eventTime": None,
            "account": account,
            "region": region,
            "bucket": bucket,
            "key": None,
            "accessPoint": None,
            "public": public_now,
            "verdict": "public" if public_now else "weakening",
            "kind": "sweep",
            "scope": "bucket",
            "access": access,
            "principals": [],
            "variant": "",
            "route": "sweep",
            "client": "unknown",
            "actor": None,
            "sourceIPAddress": None,
            "userAgent": None,
            "severity": "high" if public_now else "medium",
            "reasons": [f"scheduled sweep: {reason}" for reason in exposure["reasons"]],
            "error": None,
            "errorMessage": None,
        },
    )

"""The response Lambda: classify, confirm, rate, remediate, alert; once per CloudTrail event.

``handler`` is the Lambda entry (``handlers.response.handler``) and stays thin:
settings, logging, then :func:`respond`. Every decision is one JSON log line.
If the alert cannot be published the invocation raises, so EventBridge's retry
and the dead-letter queue take over: nothing is lost silently.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict

from handlers import alert as alerts
from handlers import exposure as exposures
from handlers import exposure_ledger
from handlers.approvals import Approval, check_approval
from handlers.classify import classify, unwrap
from handlers.finding import Finding
from handlers.idempotency import Claim, IdempotencyStore
from handlers.records import bucket_name
from handlers.remediation import remediate
from handlers.response_config import Settings, load_settings
from handlers.severity import is_sensitive, rate

log = logging.getLogger("handlers.response")
DEFAULT_LEASE_SECONDS = 900.0  # the Lambda maximum, when no context tells the real remaining time
LOG_GRANTS = frozenset({"PutBucketLogging"})  # grants S3 applies to each delivered log object

_settings: Settings | None = None


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class FindingOutcome(TypedDict):
    """What the handler decided for one finding."""

    bucket: str | None
    verdict: str
    severity: str
    exposure: str
    remediation: str
    subject: str
    messageId: str | None


class ResponseSummary(TypedDict):
    """The handler's return value (also visible in the Lambda console and in tests)."""

    eventID: str | None
    outcome: str  # ignored | duplicate | handled | resent
    claim: str | None
    findings: list[FindingOutcome]


class AlertNotPublished(RuntimeError):
    """An alert could not be published; raised so the event is retried or dead-lettered."""


def handler(event: dict[str, Any], context: LambdaContext | None) -> ResponseSummary:
    """Lambda entry point: EventBridge "AWS API Call via CloudTrail" event in, summary out."""
    settings = current_settings()
    configure_logging(settings.log_level)
    lease = context.get_remaining_time_in_millis() / 1000 if context is not None else DEFAULT_LEASE_SECONDS
    return respond(event, settings, lease_seconds=lease)


def current_settings() -> Settings:
    """Settings from the environment, read once per container; a bad setting raises every time."""
    global _settings
    if _settings is None:
        _settings = load_settings(os.environ)
    return _settings


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    global _settings
    _settings = None


def configure_logging(level: str) -> None:
    """JSON lines at ``level``; outside Lambda (no root handler) write them to stdout."""
    logger = logging.getLogger("handlers")
    logger.setLevel(level)
    if not logging.getLogger().handlers and not logger.handlers:
        stream = logging.StreamHandler(sys.stdout)
        stream.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(stream)


def log_decision(decision: str, **fields: Any) -> None:
    """One structured JSON line per decision."""
    log.info(json.dumps({"decision": decision, **fields}, default=str, sort_keys=True))


def respond(
    event: Any,
    settings: Settings,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
) -> ResponseSummary:
    """Handle one event end to end; raises :class:`AlertNotPublished` if an alert could not go out."""
    record = unwrap(event) or {}
    findings = classify(event, settings.detector)
    event_id = record.get("eventID") if isinstance(record.get("eventID"), str) else None
    if not findings:
        log_decision("ignored", eventID=event_id, eventName=record.get("eventName"), reason="exposes nothing")
        return ResponseSummary(eventID=event_id, outcome="ignored", claim=None, findings=[])

    # The table lives in the function's own region (AWS_REGION in Lambda).
    store = IdempotencyStore(settings.idempotency_table, os.environ.get("AWS_REGION") or None)
    claim = store.claim(event_id, lease_seconds)
    if not claim.proceed:
        log_decision("duplicate", eventID=event_id, reason="already handled or in progress; not acting again")
        return ResponseSummary(eventID=event_id, outcome="duplicate", claim=claim.outcome, findings=[])
    if claim.error:
        log_decision("idempotency-unavailable", eventID=event_id, error=claim.error)
    if claim.pending_alerts:
        return _resend(event_id, claim, store, settings)

    try:
        built = [_decide(_with_bucket(f, record), settings, claim, now) for f in findings]
    except Exception as exc:
        store.release(event_id, f"{type(exc).__name__}: {exc}")
        raise
    outcomes = [outcome for outcome, _ in built]
    unsent = _publish_all([alert for _, alert in built], outcomes, settings, event_id)
    if unsent:
        store.release(event_id, "alert publish failed", unsent=unsent)
        raise AlertNotPublished(f"{len(unsent)} alert(s) for event {event_id} could not be published")
    # Tell the sweep's ledger what was just reported, so the next hourly sweep stays quiet.
    exposure_ledger.record_published(
        settings.idempotency_table,
        settings.expected_account_id,
        [alert for _, alert in built],
        now or datetime.now(UTC),
        os.environ.get("AWS_REGION") or None,
    )
    failure = store.complete(event_id)
    if failure:
        log_decision("idempotency-complete-failed", eventID=event_id, error=failure)
    return ResponseSummary(eventID=event_id, outcome="handled", claim=claim.outcome, findings=outcomes)


def _with_bucket(finding: Finding, record: dict[str, Any]) -> Finding:
    """A bucket-level finding without a bucket (a rule that crashed) gets it from the record."""
    if finding["bucket"] is None and finding["scope"] in ("bucket", "object"):
        return {**finding, "bucket": bucket_name(record)}  # type: ignore[typeddict-item]
    return finding


def _decide(
    finding: Finding, settings: Settings, claim: Claim, now: datetime | None
) -> tuple[FindingOutcome, alerts.Alert]:
    """Confirm, rate, remediate and build the alert for one finding."""
    account = settings.expected_account_id
    mismatch = finding["account"] is not None and finding["account"] != account
    exposure = _confirm(finding, settings, mismatch)
    tags = exposure["tags"]
    if exposure["status"] == "not-checked":
        approval = Approval(False, None, "not checked")
    else:
        approval = check_approval(
            finding["bucket"],
            tags,
            allow_list=settings.exception_buckets,
            approval_tag=settings.approval_tag,
            now=now or datetime.now(UTC),
        )
    sensitive = is_sensitive(tags, settings.sensitive_tag, settings.sensitive_tag_values)
    severity, why = rate(
        finding,
        exposure,
        approval,
        production=settings.production,
        sensitive=sensitive,
        account_mismatch=mismatch,
    )
    remediation = remediate(
        finding,
        exposure,
        approval,
        mode=settings.remediation_mode,
        account=account,
        allow_account=settings.allow_account_remediation,
        account_mismatch=mismatch,
    )
    checked_at = (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")
    alert = alerts.build_alert(
        finding,
        exposure,
        severity,
        why,
        approval,
        remediation,
        settings,
        checked_at=checked_at,
        account_mismatch=mismatch,
    )
    alert["payload"]["delivery"] = {"claim": claim.outcome, "idempotencyError": claim.error}
    log_decision(
        "finding",
        eventID=finding["eventID"],
        eventName=finding["eventName"],
        bucket=finding["bucket"],
        verdict=finding["verdict"],
        severity=severity,
        exposure=exposure["status"],
        approval=approval.basis if approval.approved else None,
        remediation=remediation["status"],
        failures=[f"{f['call']}:{f['error']}" for f in exposure["failures"]]
        + (
            [f"{remediation['error']['call']}:{remediation['error']['error']}"]
            if remediation["error"]
            else []
        ),
    )
    outcome = FindingOutcome(
        bucket=finding["bucket"],
        verdict=finding["verdict"],
        severity=severity,
        exposure=exposure["status"],
        remediation=remediation["status"],
        subject=alert["subject"],
        messageId=None,
    )
    return outcome, alert


def _confirm(finding: Finding, settings: Settings, mismatch: bool) -> exposures.Exposure:
    """Read the live state the finding depends on (nothing for attempts, tampering, other accounts)."""
    account = settings.expected_account_id
    if mismatch:
        return exposures.not_checked(
            f"event from account {finding['account']}, but this stack watches {account}: not checked"
        )
    if finding["verdict"] == "attempt":
        return exposures.not_checked("the call failed; nothing to confirm")
    if finding["verdict"] == "tamper":
        return exposures.not_checked("trail tampering: no S3 state to confirm")
    region = finding["region"]
    if finding["scope"] == "account":
        return exposures.assess_account(exposures.account_bpa_read(account, region))
    if finding["scope"] == "access-point" or not finding["bucket"]:
        exposure = exposures.assess_account(exposures.account_bpa_read(account, region))
        guarded = bool((exposure["account_bpa"] or {}).get("RestrictPublicBuckets"))
        exposure["status"] = "exposable" if guarded else "unknown"
        exposure["reasons"].append(
            "the access point policy is not re-read; account RestrictPublicBuckets "
            + ("holds it back" if guarded else "does not hold it back")
        )
        return exposure
    state = exposures.read_bucket_state(finding["bucket"], account, region)
    object_grant = None
    # Object ACLs (and the grants of logging targets, which land on every log object) are not
    # re-read: the event's grant is assumed in place, and the bucket's guards decide.
    if finding["verdict"] == "public" and (
        finding["scope"] == "object" or finding["eventName"] in LOG_GRANTS
    ):
        object_grant = (finding["access"], finding["reasons"])
    return exposures.assess_bucket(state, object_grant)


def _publish_all(
    built: list[alerts.Alert], outcomes: list[FindingOutcome], settings: Settings, event_id: str | None
) -> list[dict[str, Any]]:
    """Publish every alert; return those that failed (as dicts, to store for the retry)."""
    unsent: list[dict[str, Any]] = []
    for index, alert in enumerate(built):
        try:
            message_id = alerts.publish(alert, settings.alert_topic_arn, settings.topic_region)
        except Exception as exc:  # any failure: keep the alert for the retry, then raise
            log_decision(
                "publish-failed",
                eventID=event_id,
                subject=alert["subject"],
                error=f"{type(exc).__name__}: {exc}",
            )
            unsent.append(dict(alert))
            continue
        if index < len(outcomes):
            outcomes[index]["messageId"] = message_id
        log_decision("published", eventID=event_id, subject=alert["subject"], messageId=message_id)
    return unsent


def _resend(
    event_id: str | None, claim: Claim, store: IdempotencyStore, settings: Settings
) -> ResponseSummary:
    """A retry after a failed publish: send the alerts that were built, without acting again."""
    pending = [alerts.Alert(**a) for a in claim.pending_alerts]  # type: ignore[typeddict-item]
    outcomes: list[FindingOutcome] = []
    unsent = _publish_all(pending, outcomes, settings, event_id)
    if unsent:
        store.release(event_id, "alert publish failed again", unsent=unsent)
        raise AlertNotPublished(f"{len(unsent)} alert(s) for event {event_id} still could not be published")
    store.complete(event_id)
    return ResponseSummary(eventID=event_id, outcome="resent", claim=claim.outcome, findings=[])

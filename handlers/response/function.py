"""The response Lambda: check provenance, classify, confirm, decide, alert; once per CloudTrail event.

``handler`` is the Lambda entry (``handlers.response.function.handler``) and stays thin: settings,
logging, then :func:`respond`. Every decision is one JSON log line.

- **Provenance first** (:mod:`handlers.response.provenance`): only an EventBridge envelope our rules
  deliver, for this account and a watched region, is acted on; anything else is refused,
  counted and alerted (rate-limited).
- **Claim** (:mod:`handlers.response.idempotency`): one invocation per eventID acts; Lambda's own
  retry (same request id) re-claims, and re-sends alerts an earlier attempt built.
- **Decide** (:mod:`handlers.response.decision`): the pipeline the sweep shares, on live reads.
- **Deliver**: alerts are staged on the claim, then published. If one cannot be published
  the invocation raises, so Lambda's retry and the dead-letter queue take over: nothing is
  lost silently, and a failure to record the release is raised too, never swallowed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict

from handlers.detection.classify import classify
from handlers.detection.finding import Finding
from handlers.detection.records import bucket_name
from handlers.detection.rules import ALERT_ONLY_SCOPES, TARGET_LABELS
from handlers.response import actor_history, decision_log, exposure_ledger, provenance, sinks
from handlers.response import alert as alerts
from handlers.response import exposure as exposures
from handlers.response import metrics as sweep_metrics
from handlers.response.decision import Decision, decide, stamp
from handlers.response.decision_log import configure_logging
from handlers.response.idempotency import Claim, IdempotencyStore
from handlers.response.remediation import ActionGate
from handlers.response.response_config import Settings, load_settings
from handlers.response.settings_cache import SettingsCache, function_region

log = logging.getLogger("handlers.response.function")
DEFAULT_LEASE_SECONDS = 900.0  # the Lambda maximum, when no context tells the real remaining time
LOG_GRANTS = frozenset({"PutBucketLogging"})  # grants S3 applies to each delivered log object

_settings = SettingsCache(load_settings)


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
    outcome: str  # rejected | ignored | duplicate | handled | resent
    claim: str | None
    findings: list[FindingOutcome]


class AlertNotPublished(RuntimeError):
    """An alert could not be published; raised so the event is retried or dead-lettered."""


class ClaimUnavailable(RuntimeError):
    """The alert went out, but without a claim nothing could be done or recorded: retry the event.

    Without the idempotency table the invocation cannot know what an earlier attempt of the same
    event stored (an unsent alert with its undo command, a remediation written ahead), and must
    not overwrite it. So it alerts from live reads without acting, and fails: Lambda's retry
    completes the response once the table answers, and the dead-letter queue keeps the event if
    it never does.
    """


def handler(event: dict[str, Any], context: LambdaContext | None) -> ResponseSummary:
    """Lambda entry point: EventBridge "AWS API Call via CloudTrail" event in, summary out."""
    settings = current_settings()
    configure_logging(settings.log_level)
    lease = context.get_remaining_time_in_millis() / 1000 if context is not None else DEFAULT_LEASE_SECONDS
    request_id = getattr(context, "aws_request_id", None)
    return respond(
        event,
        settings,
        lease_seconds=lease,
        request_id=request_id if isinstance(request_id, str) else None,
    )


def current_settings() -> Settings:
    """Settings from the environment, read once per container; a bad setting raises every time."""
    return _settings.get()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    _settings.reset()


def log_decision(decision: str, **fields: Any) -> None:
    """One JSON object per decision, its fields at top level (:mod:`handlers.response.decision_log`)."""
    decision_log.log_decision(log, decision, **fields)


def respond(
    event: Any,
    settings: Settings,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
    request_id: str | None = None,
) -> ResponseSummary:
    """Handle one event end to end; raises :class:`AlertNotPublished` if an alert could not go out."""
    now = now or datetime.now(UTC)
    refused = provenance.rejection(event, settings)
    if refused:
        return _reject(event, refused, settings, now)
    record: dict[str, Any] = event["detail"]
    event_id: str = record["eventID"]
    findings = classify(record, settings.detector)
    if not findings:
        log_decision("ignored", eventID=event_id, eventName=record.get("eventName"), reason="exposes nothing")
        return ResponseSummary(eventID=event_id, outcome="ignored", claim=None, findings=[])

    store = IdempotencyStore(settings.idempotency_table, function_region(), request_id=request_id)
    claim = store.claim(event_id, lease_seconds)
    if not claim.proceed:
        log_decision("duplicate", eventID=event_id, reason="already handled or in progress; not acting again")
        return ResponseSummary(eventID=event_id, outcome="duplicate", claim=claim.outcome, findings=[])
    if claim.outcome == "unavailable":
        log_decision("idempotency-unavailable", eventID=event_id, error=claim.error)
        return _without_claim(event_id, record, findings, claim, settings, now)
    if claim.pending_alerts:
        pending = [_stored_alert(a) for a in claim.pending_alerts]
        return _deliver(event_id, pending, [], claim, store, settings, now, outcome="resent")

    def gate(target: str, before: dict[str, Any]) -> bool:
        failure = store.record_action(event_id, target, before)
        if failure:
            log_decision("action-not-recorded", eventID=event_id, target=target, error=failure)
        return failure is None

    try:
        histories = _Histories(settings, now)
        decided = [
            _decide(_with_bucket(f, record), settings, claim, gate, now, histories(f)) for f in findings
        ]
    except Exception as exc:
        failure = store.release(event_id, f"{type(exc).__name__}: {exc}")
        if failure:
            log_decision("release-failed", eventID=event_id, error=failure)
        raise
    built = [alert for _, alert in decided]
    staged = store.stage(event_id, [dict(a) for a in built])
    if staged:
        log_decision("stage-failed", eventID=event_id, error=staged)
    return _deliver(event_id, built, [o for o, _ in decided], claim, store, settings, now, outcome="handled")


def _without_claim(
    event_id: str,
    record: dict[str, Any],
    findings: list[Finding],
    claim: Claim,
    settings: Settings,
    now: datetime,
) -> ResponseSummary:
    """Alert from live reads with no claim: nothing is acted on or written, then the invocation fails."""

    def refuse(_target: str, _before: dict[str, Any]) -> bool:
        return False  # no action that cannot be recorded first (see handlers.response.idempotency)

    histories = _Histories(settings, now)
    decided = [_decide(_with_bucket(f, record), settings, claim, refuse, now, histories(f)) for f in findings]
    unsent = _publish_all([a for _, a in decided], [o for o, _ in decided], settings, event_id)
    if unsent:
        raise AlertNotPublished(f"{len(unsent)} alert(s) for event {event_id} could not be published")
    error = claim.error or {"call": "dynamodb:UpdateItem", "error": "unknown", "message": ""}
    raise ClaimUnavailable(
        f"alerted on event {event_id} without a claim ({error['call']}: {error['error']}); failing so "
        "Lambda's retry completes the response once the idempotency table answers"
    )


def _stored_alert(stored: dict[str, Any]) -> alerts.Alert:
    """An alert as staged on the claim (read back from DynamoDB, so every field is checked)."""
    payload = stored.get("payload")
    alert = alerts.Alert(
        subject=str(stored.get("subject") or "S3 public access alert"),
        text=str(stored.get("text") or ""),
        payload=payload if isinstance(payload, dict) else {},
        attributes={str(k): str(v) for k, v in (stored.get("attributes") or {}).items()},
    )
    owed = stored.get("sinks")
    if isinstance(owed, list):  # only known names: a stored value is never trusted further
        alert["sinks"] = [s for s in owed if s in sinks.ALL_SINKS]
    return alert


def _deliver(
    event_id: str,
    built: list[alerts.Alert],
    outcomes: list[FindingOutcome],
    claim: Claim,
    store: IdempotencyStore,
    settings: Settings,
    now: datetime,
    *,
    outcome: str,
) -> ResponseSummary:
    """Publish, then complete the claim and tell the ledger; on failure release and raise."""
    unsent = _publish_all(built, outcomes, settings, event_id)
    if unsent:
        failure = store.release(event_id, "alert publish failed", unsent=unsent)
        extra = ""
        if failure:
            log_decision("release-failed", eventID=event_id, error=failure)
            extra = f"; releasing the claim also failed ({failure['call']}: {failure['error']})"
        raise AlertNotPublished(
            f"{len(unsent)} alert(s) for event {event_id} could not be published{extra} ({_why(unsent)})"
        )
    # Tell the sweep's ledger what was just reported, so the next hourly sweep stays quiet.
    exposure_ledger.record_published(
        settings.idempotency_table,
        settings.expected_account_id,
        built,
        now,
        function_region(),
        review_queue=settings.review_queue_url,
    )
    failure = store.complete(event_id)
    if failure:
        log_decision("idempotency-complete-failed", eventID=event_id, error=failure)
    return ResponseSummary(eventID=event_id, outcome=outcome, claim=claim.outcome, findings=outcomes)


def _why(unsent: list[dict[str, Any]]) -> str:
    """Which sinks failed and the first error, for the exception (the log has every one)."""
    errors = unsent[0].get("lastErrors") or {}
    first = next(iter(errors.items()), ("?", "unknown"))
    return f"{', '.join(unsent[0].get('sinks') or [])}: {first[0]}: {first[1]}"[:500]


def _with_bucket(finding: Finding, record: dict[str, Any]) -> Finding:
    """A bucket-level finding without a bucket (a rule that crashed) gets it from the record."""
    if finding["bucket"] is None and finding["scope"] in ("bucket", "object"):
        return {**finding, "bucket": bucket_name(record)}
    return finding


class _Histories:
    """The actor's CloudTrail history, read once per event (one call may give several findings).

    Never raises and never takes longer than ``settings.actor_history_seconds`` per actor
    (:func:`handlers.response.actor_history.actor_history`); 0 turns it off.
    """

    def __init__(self, settings: Settings, now: datetime) -> None:
        self.settings = settings
        self.now = now
        self.read: dict[tuple[object, object], dict[str, Any]] = {}

    def __call__(self, finding: Finding) -> dict[str, Any] | None:
        if self.settings.actor_history_seconds <= 0 or finding.get("kind") == "sweep":
            return None
        key = (finding.get("actor"), finding.get("eventName"))
        if key not in self.read:
            region = finding.get("region")
            self.read[key] = actor_history.actor_history(
                finding,
                region=(
                    region if region in self.settings.watched_regions else (function_region() or "us-east-1")
                ),
                table=self.settings.idempotency_table,
                trusted_principals=self.settings.trusted_principals,
                budget_seconds=self.settings.actor_history_seconds,
                now=self.now,
            )
        return self.read[key]


def _decide(
    finding: Finding,
    settings: Settings,
    claim: Claim,
    gate: ActionGate,
    now: datetime,
    history: dict[str, Any] | None = None,
) -> tuple[FindingOutcome, alerts.Alert]:
    """Confirm, then run the shared pipeline for one finding."""
    mismatch = finding["account"] is not None and finding["account"] != settings.expected_account_id
    exposure = _confirm(finding, settings, mismatch)
    decision: Decision = decide(
        finding,
        exposure,
        settings,
        now=now,
        account_mismatch=mismatch,
        gate=gate,
        acted_before=claim.actions,
        history=history,
    )
    alert, remediation = decision.alert, decision.remediation
    alert["payload"]["delivery"] = {"claim": claim.outcome, "idempotencyError": claim.error}
    log_decision(
        "finding",
        eventID=finding["eventID"],
        eventName=finding["eventName"],
        bucket=finding["bucket"],
        verdict=finding["verdict"],
        severity=decision.severity,
        exposure=exposure["status"],
        approval=decision.approval.state,
        history=(history or {}).get("verdict"),
        historyChecked=(history or {}).get("checked"),
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
        severity=decision.severity,
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
    if finding["scope"] in ALERT_ONLY_SCOPES:  # declared by the rule: nothing this function can read
        label = TARGET_LABELS.get(finding["scope"], finding["scope"])
        return exposures.not_checked(f"{label}: no live read for this target; alert only, nothing changed")
    region = finding["region"]
    if finding["scope"] == "account":
        return exposures.assess_account(exposures.account_bpa_read(account, region))
    if finding["scope"] == "access-point":
        name = exposures.access_point_name(finding["accessPoint"], account)
        if name is None:
            exposure = exposures.not_checked("")
            exposure["status"] = "unknown"
            exposure["reasons"] = ["the access point is not a valid name or ARN of this account: not read"]
            return exposure
        return exposures.assess_access_point(exposures.read_access_point_state(name, account, region))
    if not finding["bucket"]:
        exposure = exposures.assess_account(exposures.account_bpa_read(account, region))
        guarded = bool((exposure["account_bpa"] or {}).get("RestrictPublicBuckets"))
        exposure["status"] = "exposable" if guarded else "unknown"
        exposure["reasons"].append(
            "no bucket named; account RestrictPublicBuckets "
            + ("holds a public policy back" if guarded else "does not hold it back")
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
    """Send every alert to every sink it owes; return those some sink did not take (as dicts, each
    listing just the sinks still owed, to store for the retry)."""
    unsent: list[dict[str, Any]] = []
    for index, alert in enumerate(built):
        delivery = sinks.deliver(alert, settings, region=function_region())
        if delivery.failed:  # keep the alert for the retry (only the sinks that failed), then raise
            log_decision(
                "publish-failed",
                eventID=event_id,
                subject=alert["subject"],
                sinks=delivery.failed,
                error=delivery.errors,
            )
            unsent.append({**alert, "sinks": delivery.failed, "lastErrors": delivery.errors})
        if delivery.message_id is not None:
            if index < len(outcomes):
                outcomes[index]["messageId"] = delivery.message_id
            log_decision(
                "published", eventID=event_id, subject=alert["subject"], messageId=delivery.message_id
            )
    return unsent


def _reject(event: Any, reason: str, settings: Settings, now: datetime) -> ResponseSummary:
    """Refuse an event of doubtful provenance: log, count, and alert once per window."""
    envelope = event if isinstance(event, dict) else {}
    detail = envelope.get("detail") if isinstance(envelope.get("detail"), dict) else {}
    claimed = {
        "source": envelope.get("source"),
        "detailType": envelope.get("detail-type"),
        "account": envelope.get("account"),
        "region": envelope.get("region"),
        "eventName": (detail or {}).get("eventName") or envelope.get("eventName"),
        "eventID": (detail or {}).get("eventID") or envelope.get("eventID"),
    }
    # Values are the caller's: logged as JSON strings (escaped), capped, never interpreted.
    log_decision(
        "rejected-event", reason=reason, **{k: str(v)[:200] for k, v in claimed.items() if v is not None}
    )
    sweep_metrics.emit(
        settings.account_name,
        {sweep_metrics.Metric.REJECTED_EVENTS: 1},
        mode="response",
        metrics=sweep_metrics.RESPONSE_METRICS,
    )
    limiter = provenance.RejectionLimiter(
        settings.idempotency_table, settings.expected_account_id, function_region()
    )
    first, count = limiter.first_in_window()
    if not first:
        log_decision("rejection-alert-suppressed", reason="one rejection alert per window", count=count)
        return ResponseSummary(eventID=None, outcome="rejected", claim=None, findings=[])
    alert = alerts.build_rejection_alert(reason, event, settings, checked_at=stamp(now))
    try:
        message_id = alerts.publish(alert, settings.alert_topic_arn, settings.topic_region)
    except Exception as exc:
        limiter.release()
        raise AlertNotPublished(f"the alert about a refused event could not be published: {exc}") from exc
    log_decision("published", subject=alert["subject"], messageId=message_id, rejected=True)
    return ResponseSummary(eventID=None, outcome="rejected", claim=None, findings=[])

"""The exposure review Lambda (``handlers.review.function.handler``): was a bucket read or
written while public?

Input: an SQS batch from the review queue; each message asks for one window
(:func:`handlers.response.review_queue.review_request`)::

    {"kind": "exposure-review", "version": 1, "account": "<12 digits>", "region": "<region>" | null,
     "bucket": "<name>", "from": "<ISO>", "to": "<ISO>" | null, "trigger": "closed" | "hourly",
     "severity": "low|medium|high|critical", "subject": "<original alert subject>" (optional),
     "cursor": {...} (continuations only)}

Every field is validated (:func:`parse_request`); a bad message is logged and dropped, never
retried. ``to: null``: the window is still open, reviewed up to now.

What happens (:func:`review`): the evidence is planned and read (:mod:`handlers.review.review_sources`)
within the invocation's time. A review that does not finish stores its partial result in the
idempotency table (item ``review#<account>#<bucket>#<from>``) and sends itself a continuation
(the same body plus ``cursor``), which merges it and reads on. A finished review publishes its
follow-up alert: a ``closed`` window exactly once (a claim on the item, marked published after
the publish succeeded), an ``hourly`` one only when more outside requests were seen than in the
last review published for the window. A closed window is first given the late-delivery margin
(``REVIEW_LATE_MARGIN_MINUTES``) for its logs to arrive: the message re-queues itself with a
delay until then, when there is evidence to wait for and a queue to wait on.

Returns SQS partial batch failures: a message whose review could not be completed or published
is retried (and dead-lettered after the queue's receive count).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from handlers.detection.finding import SEVERITY_ORDER
from handlers.detection.safe_text import (
    checked_account,
    checked_arn,
    checked_bucket,
    checked_region,
    inline,
    shown,
)
from handlers.detection.timestamps import parse_zoned, utc_text
from handlers.response import alert as alerts
from handlers.response import aws_clients, decision_log
from handlers.response.cli_commands import logging_enable_command
from handlers.response.decision_log import configure_logging
from handlers.response.function_env import ReviewEnv
from handlers.response.response_config import ConfigError, Settings, load_settings
from handlers.response.review_queue import REVIEW_KIND, TRIGGERS, review_request
from handlers.response.settings_cache import SettingsCache, function_region
from handlers.review.exposure_review import STATE_BUDGET_CHARS, ReviewAccumulator, summary_line
from handlers.review.review_sources import (
    ACCESS_LOGS,
    DATA_EVENTS,
    DEFAULT_LATE_MARGIN_MINUTES,
    KINDS,
    Budget,
    Cursor,
    Plan,
    Window,
    plan_sources,
    read_sources,
)

log = logging.getLogger("handlers.review.function")

SCHEMA = "s3-exposure-review-alert/1"
SEVERITIES = ("low", "medium", "high", "critical")
MAX_BODY_CHARS = 16_384  # our messages are well under 2 KB; anything larger is not ours
MAX_SUBJECT_CHARS = 1000
MAX_WINDOW = timedelta(days=366)
FUTURE_SLACK = timedelta(minutes=5)  # clocks differ a little between sender and reviewer
SAFETY_SECONDS = 60.0  # no new object this long before the Lambda's end: time to save and continue
GRACE_SECONDS = 30.0  # of which an object being read may still take this long
MIN_READ_SECONDS = 5.0
DEFAULT_REMAINING_SECONDS = 900.0
RETENTION_SECONDS = 7 * 24 * 3600
# A DynamoDB item holds 400 KB; the partial result stays under this so the item stays < 350 KB.
PARTIAL_LIMIT_BYTES = 330_000
TRIMMED_ENTRIES = 16  # entries each counter keeps when a partial result has to be trimmed
CLAIM_LEASE_SECONDS = 120  # a publish takes seconds; SQS redelivers after 90 minutes
MAX_DELAY_SECONDS = 900  # SQS's maximum message delay
MAX_WAITS = 200
MAX_SEQ = 100_000
MAX_RESTARTS = 3  # restarts from scratch after unusable stored progress
TEXT_BUDGET = alerts.TEXT_BUDGET

_RUN = re.compile(r"[0-9a-f]{32}", re.ASCII)
_CANONICAL_ID = re.compile(r"[0-9a-f]{64}", re.ASCII)

# Replaced by tests to make time pass (a continuation needs the budget to run out).
clock: Callable[[], float] = time.monotonic


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class BadRequest(ValueError):
    """A message that is not a valid review request (dropped, never retried); says which field."""


class ReviewRetry(RuntimeError):
    """The review could not be completed or published now; SQS retries the message."""


# ---- settings --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewSettings:
    """The response function's settings plus the review's own."""

    base: Settings
    late_margin: timedelta
    log_target: str | None  # REVIEW_LOG_TARGET_BUCKET: where the fix command sends access logs

    @property
    def queue_url(self) -> str | None:
        """``REVIEW_QUEUE_URL``: where continuations (and waits for late logs) go."""
        return self.base.review_queue_url


def load_review_settings(environ: Mapping[str, str]) -> ReviewSettings:
    """:func:`~handlers.response.response_config.load_settings` plus ``REVIEW_LATE_MARGIN_MINUTES`` (0-1440,
    default 120) and ``REVIEW_LOG_TARGET_BUCKET`` (optional); :class:`ConfigError` names a bad one."""
    base = load_settings(environ)
    raw = environ.get(ReviewEnv.LATE_MARGIN_MINUTES, "").strip()
    if raw and (not raw.isdigit() or int(raw) > 1440):
        raise ConfigError(
            f"{ReviewEnv.LATE_MARGIN_MINUTES}: expected whole minutes from 0 to 1440, got {raw[:40]!r}"
        )
    target = environ.get(ReviewEnv.LOG_TARGET_BUCKET, "").strip() or None
    if target is not None and checked_bucket(target) is None:
        raise ConfigError(f"{ReviewEnv.LOG_TARGET_BUCKET}: expected a bucket name, got {target[:80]!r}")
    margin = int(raw) if raw else DEFAULT_LATE_MARGIN_MINUTES
    return ReviewSettings(base=base, late_margin=timedelta(minutes=margin), log_target=target)


_settings = SettingsCache(load_review_settings)


def current_settings() -> ReviewSettings:
    """Settings from the environment, read once per container; a bad setting raises every time."""
    return _settings.get()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    _settings.reset()


def log_decision(decision: str, **fields: Any) -> None:
    """One JSON object per decision, its fields at top level (:mod:`handlers.response.decision_log`)."""
    decision_log.log_decision(log, decision, **fields)


# ---- the entry point -------------------------------------------------------------------------------------


def handler(event: Any, context: LambdaContext | None) -> dict[str, list[dict[str, str]]]:
    """Lambda entry: an SQS batch of review requests in, the messages to retry out."""
    settings = current_settings()
    configure_logging(settings.base.log_level)
    remaining = (
        context.get_remaining_time_in_millis() / 1000 if context is not None else DEFAULT_REMAINING_SECONDS
    )
    budget = Budget.of(max(remaining - SAFETY_SECONDS, MIN_READ_SECONDS), GRACE_SECONDS, clock)
    request_id = getattr(context, "aws_request_id", None)
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        # Anyone who may invoke the function could start S3 reads at will: only SQS batches count.
        log_decision("review-input-refused", reason="not an SQS batch", eventType=type(event).__name__)
        return {"batchItemFailures": []}
    failures: list[dict[str, str]] = []
    for record in records:
        message_id = record.get("messageId") if isinstance(record, dict) else None
        if not isinstance(message_id, str) or not message_id or len(message_id) > 128:
            log_decision("review-message-dropped", reason="an SQS record without a message id")
            continue
        if handle_message(record, settings, budget, request_id, message_id):
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def handle_message(
    record: Mapping[str, Any], settings: ReviewSettings, budget: Budget, request_id: object, message_id: str
) -> bool:
    """Review one SQS record; True when it must be retried. Logs one line for what was decided."""
    now = datetime.now(UTC)
    try:
        _check_origin(record, settings.queue_url)
        request = parse_request(record.get("body"), settings.base.expected_account_id, now)
    except BadRequest as exc:
        log_decision("review-message-dropped", messageId=message_id, reason=str(exc))
        return False
    try:
        outcome = review(
            request,
            settings,
            budget=budget,
            request_id=request_id if isinstance(request_id, str) and request_id else uuid.uuid4().hex,
            now=now,
        )
    except Exception as exc:  # this message is retried (then dead-lettered); the others go on
        log_decision(
            "review-failed",
            messageId=message_id,
            bucket=request.bucket,
            trigger=request.trigger,
            error=f"{type(exc).__name__}: {inline(str(exc), 300)}",
        )
        return True
    log_decision("review", messageId=message_id, bucket=request.bucket, trigger=request.trigger, **outcome)
    return False


def _check_origin(record: Mapping[str, Any], queue_url: str | None) -> None:
    if record.get("eventSource") != "aws:sqs" or not isinstance(record.get("body"), str):
        raise BadRequest("not an SQS message")
    if queue_url:
        arn = record.get("eventSourceARN")
        name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        if not isinstance(arn, str) or arn.rsplit(":", 1)[-1] != name:
            raise BadRequest("the message does not come from the review queue")


# ---- the request -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRequest:
    """A validated review request."""

    account: str
    region: str | None
    bucket: str
    start: datetime
    end: datetime | None  # None: still open
    trigger: str
    severity: str
    subject: str | None
    cursor: dict[str, Any] | None

    @property
    def pk(self) -> str:
        """The review's item in the idempotency table."""
        return f"review#{self.account}#{self.bucket}#{stamp(self.start)}"

    def body(self, cursor: Mapping[str, Any] | None) -> dict[str, Any]:
        """The message body of this request (for a continuation: with ``cursor``)."""
        body = review_request(
            account=self.account,
            region=self.region,
            bucket=self.bucket,
            start=stamp(self.start),
            end=stamp(self.end) if self.end else None,
            trigger=self.trigger,
            severity=self.severity,
            subject=self.subject,
        )
        if cursor is not None:
            body["cursor"] = dict(cursor)
        return body


def stamp(moment: datetime) -> str:
    """``2026-12-03T07:38:24Z``: the timestamp form of messages, items and alerts."""
    return utc_text(moment)


def parse_request(body: object, expected_account: str, now: datetime) -> ReviewRequest:
    """Validate a message body; :class:`BadRequest` names the first bad field (values cut and escaped)."""
    if not isinstance(body, str) or len(body) > MAX_BODY_CHARS:
        raise BadRequest(f"body: expected a JSON object of at most {MAX_BODY_CHARS} characters")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("body: not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body: expected a JSON object")
    if data.get("kind") != REVIEW_KIND or data.get("version") != 1:
        raise BadRequest(f"kind/version: expected {REVIEW_KIND!r} version 1")
    account = data.get("account")
    if checked_account(account) is None:
        raise BadRequest(f"account: expected 12 digits, got {_shown(account)}")
    if account != expected_account:
        raise BadRequest(f"account: {account} is not this stack's account {expected_account}")
    region = data.get("region")
    if region is not None and checked_region(region) is None:
        raise BadRequest(f"region: expected an AWS region or null, got {_shown(region)}")
    bucket = data.get("bucket")
    if checked_bucket(bucket) is None:
        raise BadRequest(f"bucket: expected a bucket name, got {_shown(bucket)}")
    start = _timestamp(data.get("from"), "from")
    end = None if data.get("to") is None else _timestamp(data.get("to"), "to")
    if start > now + FUTURE_SLACK or (end is not None and end > now + FUTURE_SLACK):
        raise BadRequest("from/to: the window lies in the future")
    if end is not None and end < start:
        raise BadRequest("to: the window ends before it starts")
    if (end or now) - start > MAX_WINDOW:
        raise BadRequest(f"from/to: windows longer than {MAX_WINDOW.days} days are not reviewed")
    trigger, severity = data.get("trigger"), data.get("severity")
    if trigger not in TRIGGERS:
        raise BadRequest(f"trigger: expected one of {', '.join(TRIGGERS)}, got {_shown(trigger)}")
    if severity not in SEVERITIES:
        raise BadRequest(f"severity: expected one of {', '.join(SEVERITIES)}, got {_shown(severity)}")
    subject = data.get("subject")
    if subject is not None and (not isinstance(subject, str) or len(subject) > MAX_SUBJECT_CHARS):
        raise BadRequest(f"subject: expected a string of at most {MAX_SUBJECT_CHARS} characters")
    return ReviewRequest(
        account=str(account),
        region=region,
        bucket=str(bucket),
        start=start,
        end=end,
        trigger=str(trigger),
        severity=str(severity),
        subject=subject or None,
        cursor=_cursor(data.get("cursor")),
    )


def _shown(value: object) -> str:
    return inline(value if isinstance(value, str) else repr(value), 80)


def _timestamp(value: object, name: str) -> datetime:
    try:
        when = parse_zoned(value, name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    # Whole seconds: the window is stored and re-sent in this form, and must compare equal.
    return when.replace(microsecond=0)


def _cursor(value: object) -> dict[str, Any] | None:
    """A continuation's cursor: ``{"wait": n}`` or ``{"run", "seq", "source", "after"}``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("cursor: expected an object")
    if set(value) == {"wait"}:
        wait = value["wait"]
        if not _is_int(wait) or not 1 <= wait <= MAX_WAITS:
            raise BadRequest(f"cursor.wait: expected 1 to {MAX_WAITS}")
        return {"wait": wait}
    if set(value) != {"run", "seq", "source", "after"}:
        raise BadRequest("cursor: expected {wait} or {run, seq, source, after}")
    run, seq, source, after = value["run"], value["seq"], value["source"], value["after"]
    if not isinstance(run, str) or not _RUN.fullmatch(run):
        raise BadRequest("cursor.run: expected 32 hex digits")
    if not _is_int(seq) or not 1 <= seq <= MAX_SEQ:
        raise BadRequest(f"cursor.seq: expected 1 to {MAX_SEQ}")
    if source not in KINDS or not isinstance(after, str) or len(after) > 1100:
        raise BadRequest("cursor.source/after: expected a source kind and a key")
    return {"run": run, "seq": seq, "source": source, "after": after}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---- the review ------------------------------------------------------------------------------------------


def review(
    request: ReviewRequest,
    settings: ReviewSettings,
    *,
    budget: Budget,
    request_id: str,
    now: datetime,
) -> dict[str, Any]:
    """Review one window: read, then continue, wait or publish. Returns what was done (for the log).

    Raises :class:`ReviewRetry` (or an AWS error) when the message must be retried.
    """
    store = ReviewStore(settings.base.idempotency_table, function_region(), request.pk, now)
    item = store.get()
    if item.get("closed_published"):
        # closed: a redelivery; hourly: the window's final review is out already.
        return {"outcome": "already-reviewed"}
    cursor = request.cursor
    resumed: _Resumed | None = None
    if cursor is not None and "run" in cursor:
        resumed_or_outcome = _resume(request, item, store, settings)
        if isinstance(resumed_or_outcome, dict):
            return resumed_or_outcome
        resumed = resumed_or_outcome
    home = function_region()
    if resumed is None:
        end = request.end or now
        window = _window(request, settings, end, now, home)
        plan = plan_sources(window, settings.base.detector, home)
        waited = _wait_for_late_logs(request, settings, plan, window, now)
        if waited is not None:
            return waited
        accumulator = ReviewAccumulator(request.bucket, request.account, request.start, end)
        run, seq, trimmed = uuid.uuid4().hex, 0, False
    else:
        accumulator, plan, run, seq, trimmed = (
            resumed.accumulator,
            resumed.plan,
            resumed.run,
            resumed.seq,
            resumed.trimmed,
        )
        window = _window(request, settings, accumulator.end, now, home)
    stopped = read_sources(plan, accumulator, window, budget)
    if stopped is not None and settings.queue_url:
        return _continue(request, settings, store, accumulator, plan, stopped, run, seq, trimmed, resumed)
    # Done, or nowhere to continue: publish what was read (marked incomplete when stopped).
    return _finish(
        request, settings, store, item, accumulator, plan, window, run, trimmed, stopped, request_id, now
    )


def _window(
    request: ReviewRequest, settings: ReviewSettings, end: datetime, now: datetime, home: str | None
) -> Window:
    return Window(
        request.bucket, request.account, request.region or home, request.start, end, now, settings.late_margin
    )


def _wait_for_late_logs(
    request: ReviewRequest, settings: ReviewSettings, plan: Plan, window: Window, now: datetime
) -> dict[str, Any] | None:
    """Re-queue a closed window until its logs had the late margin to arrive; None: go ahead now."""
    ready_at = window.end + settings.late_margin
    waits = request.cursor.get("wait", 0) if request.cursor else 0
    if (
        request.trigger != "closed"
        or request.end is None
        or not plan.sources
        or not settings.queue_url
        or now >= ready_at
        or waits >= MAX_WAITS
    ):
        return None
    delay = min(MAX_DELAY_SECONDS, max(1, math.ceil((ready_at - now).total_seconds())))
    _send(settings.queue_url, request.body({"wait": waits + 1}), delay)
    return {"outcome": "waiting-for-late-logs", "readyAt": stamp(ready_at), "delaySeconds": delay}


@dataclass
class _Resumed:
    accumulator: ReviewAccumulator
    plan: Plan
    run: str
    seq: int
    trimmed: bool


def _resume(
    request: ReviewRequest, item: Mapping[str, Any], store: ReviewStore, settings: ReviewSettings
) -> _Resumed | dict[str, Any] | None:
    """The stored partial result a continuation carries on from, what to do instead (an outcome),
    or None: the stored result is unusable, start the review again."""
    cursor = request.cursor or {}
    run, seq = cursor["run"], cursor["seq"]
    stored_run, stored_seq = item.get("partial_run"), item.get("partial_seq")
    if stored_run != run:
        return {"outcome": "superseded", "reason": "another run of this review took over"}
    if stored_seq == seq + 1 and item.get("partial_sent") == seq + 1:
        return {"outcome": "duplicate", "reason": "this step was done and its continuation sent"}
    if stored_seq == seq + 1 and settings.queue_url:
        # An earlier attempt stored its progress but could not send its continuation: send it now.
        stored_cursor = _json_object(item.get("partial_cursor"))
        next_cursor = {"run": run, "seq": seq + 1, **_cursor_tail(stored_cursor)}
        _send(settings.queue_url, request.body(next_cursor))
        store.mark_sent(run, seq + 1)
        return {"outcome": "continuation-resent", "seq": seq + 1}
    if stored_seq != seq:
        return {"outcome": "superseded", "reason": f"stored progress is at step {stored_seq}, not {seq}"}
    partial = _json_object(item.get("partial_state"))
    try:
        accumulator = ReviewAccumulator.from_state(partial.get("state"))
        plan = Plan.from_json(partial.get("plan"))
        if (accumulator.bucket, accumulator.account, accumulator.start) != (
            request.bucket,
            request.account,
            request.start,
        ):
            raise ValueError("the stored state is of another window")
    except ValueError as exc:
        # Unusable progress must not end the review: start it again from the beginning, a few
        # times at most (a fault that repeats goes to the dead-letter queue, not round in circles).
        restarts = store.count_restart()
        log_decision(
            "review-state-unreadable", bucket=request.bucket, restarts=restarts, error=inline(str(exc), 300)
        )
        if restarts > MAX_RESTARTS:
            raise ReviewRetry(f"the stored progress was unusable {restarts} times") from exc
        return None
    return _Resumed(accumulator, plan, run, seq, partial.get("trimmed") is True)


def _cursor_tail(stored: Mapping[str, Any]) -> dict[str, str]:
    source, after = stored.get("source"), stored.get("after")
    return {
        "source": source if source in KINDS else ACCESS_LOGS,
        "after": after if isinstance(after, str) else "",
    }


def _json_object(value: object) -> dict[str, Any]:
    if not isinstance(value, str):
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _continue(
    request: ReviewRequest,
    settings: ReviewSettings,
    store: ReviewStore,
    accumulator: ReviewAccumulator,
    plan: Plan,
    stopped: Cursor,
    run: str,
    seq: int,
    trimmed: bool,
    resumed: _Resumed | None,
) -> dict[str, Any]:
    """Store the partial result (conditionally: no other run took over) and send the continuation."""
    partial, trimmed = partial_json(accumulator, plan, trimmed)
    cursor = {"run": run, "seq": seq + 1, **stopped.to_json()}
    stored = store.save_partial(
        trigger=request.trigger,
        run=run,
        seq=seq + 1,
        previous_seq=seq if resumed is not None else None,
        partial=partial,
        cursor=json.dumps(stopped.to_json()),
    )
    if not stored:
        return {"outcome": "superseded", "reason": "another run of this review took over"}
    assert settings.queue_url is not None  # checked by the caller
    _send(settings.queue_url, request.body(cursor))
    store.mark_sent(run, seq + 1)
    return {"outcome": "continued", "seq": seq + 1, "source": stopped.source, "trimmed": trimmed}


def _finish(
    request: ReviewRequest,
    settings: ReviewSettings,
    store: ReviewStore,
    item: Mapping[str, Any],
    accumulator: ReviewAccumulator,
    plan: Plan,
    window: Window,
    run: str,
    trimmed: bool,
    stopped: Cursor | None,
    request_id: str,
    now: datetime,
) -> dict[str, Any]:
    """Build the report and publish it when this trigger should (see the module docstring)."""
    report = accumulator.report(
        sources=plan.entries(window),
        complete=plan.complete(window) and not trimmed and stopped is None,
        complete_to=plan.complete_to(window),
    )
    report["absentSources"] = [dict(entry) for entry in plan.absent]
    if trimmed:
        report["stateTrimmed"] = True
    if stopped is not None:
        report["stoppedAt"] = stopped.to_json()
    outside = _outside(report)
    summary = {
        "verdict": report["verdict"],
        "anonymous": report["requests"]["anonymous"],
        "external": report["requests"]["external"],
        "complete": report["complete"],
    }
    last = _int(item.get("published_outside"))
    if request.trigger == "hourly" and outside <= last:
        store.clear_partial(run)
        return {"outcome": "no-news", "lastPublished": last, **summary}
    claim = store.claim(request.trigger, request_id, outside)
    if claim != "claimed":
        return {"outcome": claim, **summary}
    severity, reason = review_severity(request.severity, report)
    alert = build_review_alert(request, report, severity, reason, settings, now)
    try:
        message_id = alerts.publish(alert, settings.base.alert_topic_arn, settings.base.topic_region)
    except Exception as exc:
        store.release(request.trigger, request_id)
        raise ReviewRetry(f"the review alert could not be published: {type(exc).__name__}") from exc
    failure = store.mark_published(request.trigger, request_id, outside, message_id, str(report["verdict"]))
    if failure is not None:
        log_decision("review-mark-failed", bucket=request.bucket, error=failure)
    store.clear_partial(run)
    return {"outcome": "published", "severity": severity, "snsMessageId": message_id, **summary}


def _outside(report: Mapping[str, Any]) -> int:
    requests = report.get("requests") or {}
    return _int(requests.get("anonymous")) + _int(requests.get("external"))


def _int(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return 0


def _send(queue_url: str, body: dict[str, Any], delay: int = 0) -> None:
    """Send one message to the review queue; raises :class:`ReviewRetry` when it cannot."""
    params: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": json.dumps(body, separators=(",", ":"))}
    if delay:
        params["DelaySeconds"] = delay
    try:
        aws_clients.client("sqs", aws_clients.queue_region(queue_url)).send_message(**params)
    except (ClientError, BotoCoreError, OSError) as exc:
        raise ReviewRetry(f"sqs:SendMessage failed: {type(exc).__name__}") from exc


# ---- partial results -------------------------------------------------------------------------------------


def partial_json(accumulator: ReviewAccumulator, plan: Plan, trimmed: bool) -> tuple[str, bool]:
    """The partial result as stored (JSON, at most :data:`PARTIAL_LIMIT_BYTES`) and whether it was trimmed.

    The accumulator keeps its own state under its budget; should the whole still be too big,
    each counter keeps only its largest entries (the report then says the counts are
    approximate and the review incomplete).
    """
    state = accumulator.to_state()
    plan_json = plan.to_json()
    text = _dumps({"state": state, "plan": plan_json, "trimmed": trimmed})
    if len(text.encode()) <= PARTIAL_LIMIT_BYTES:
        return text, trimmed
    for source in plan_json["sources"]:
        source["unreadable"] = source["unreadable"][:3]
    text = _dumps({"state": trim_state(state), "plan": plan_json, "trimmed": True})
    if len(text.encode()) > PARTIAL_LIMIT_BYTES:
        raise ReviewRetry(f"the partial result is larger than {PARTIAL_LIMIT_BYTES} bytes even trimmed")
    return text, True


def trim_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (of :meth:`ReviewAccumulator.to_state`) with each counter cut to its largest entries."""
    trimmed: dict[str, Any] = json.loads(json.dumps(state))  # a deep copy: the same shape
    for part in ("anon", "ext"):
        breakdown = trimmed.get(part)
        if not isinstance(breakdown, dict):
            continue
        ips = breakdown.get("ip", {}).get("c", [])
        if breakdown.get("dx") is not True:
            distinct = {row[0] for row in ips} | set(breakdown.get("d") or [])
            breakdown["dx"], breakdown["d"] = True, len(distinct)
        for name in ("ip", "obj", "pr"):
            counter = breakdown.get(name)
            rows = counter.get("c") if isinstance(counter, dict) else None
            if isinstance(counter, dict) and isinstance(rows, list) and len(rows) > TRIMMED_ENTRIES:
                # A dropped value loses at most its own count: the error bound grows by the largest.
                counter["e"] = _int(counter.get("e")) + _int(rows[TRIMMED_ENTRIES][1])
                counter["c"] = rows[:TRIMMED_ENTRIES]
    return trimmed


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


assert STATE_BUDGET_CHARS < PARTIAL_LIMIT_BYTES  # the accumulator's own budget fits the item


# ---- the review's item in the idempotency table ----------------------------------------------------------


class ReviewStore:
    """The review item ``review#<account>#<bucket>#<from>``: partial result, publish claim and marks.

    Attributes: ``partial_run``/``partial_seq``/``partial_trigger``/``partial_state``/``partial_cursor``
    (the one run in progress; ``partial_sent``: the step whose continuation is out),
    ``claim_<trigger>``/``lease_<trigger>`` (a publish in progress), ``closed_published`` (the
    closed review is out), ``published_outside``/``published_at``/``published_verdict``/
    ``published_message`` (the last review published), ``restarts`` (restarts after unusable
    progress) and ``expires_at`` (TTL, seven days).
    """

    def __init__(self, table: str, region: str | None, pk: str, now: datetime) -> None:
        self.table = table
        self.region = region
        self.pk = pk
        self.now = now

    @property
    def _dynamodb(self) -> Any:
        return aws_clients.client("dynamodb", self.region)

    def _key(self) -> dict[str, Any]:
        return {"pk": {"S": self.pk}}

    def _expires(self) -> dict[str, str]:
        return {"N": str(int(self.now.timestamp()) + RETENTION_SECONDS)}

    def get(self) -> dict[str, Any]:
        """The item as plain values (strings and ints); ``{}`` when there is none. Raises on failure."""
        response = self._dynamodb.get_item(TableName=self.table, Key=self._key(), ConsistentRead=True)
        item = response.get("Item") or {}
        plain: dict[str, Any] = {}
        for name, value in item.items():
            if isinstance(value, dict) and "S" in value:
                plain[name] = value["S"]
            elif isinstance(value, dict) and "N" in value:
                plain[name] = _int(value["N"])
        return plain

    def save_partial(
        self, *, trigger: str, run: str, seq: int, previous_seq: int | None, partial: str, cursor: str
    ) -> bool:
        """Store the run's progress; False when another run took over (or the window is reviewed).

        A continuation writes only over its own previous step; a new closed run takes over any
        run; a new hourly run never takes over a closed one.
        """
        names = {"#trigger": "partial_trigger"}
        values: dict[str, Any] = {
            ":run": {"S": run},
            ":seq": {"N": str(seq)},
            ":trigger": {"S": trigger},
            ":partial": {"S": partial},
            ":cursor": {"S": cursor},
            ":expires": self._expires(),
        }
        condition = "attribute_not_exists(closed_published)"
        if previous_seq is not None:
            condition += " AND partial_run = :run AND partial_seq = :previous"
            values[":previous"] = {"N": str(previous_seq)}
        elif trigger == "hourly":
            condition += " AND (attribute_not_exists(#trigger) OR #trigger = :trigger)"
        try:
            self._dynamodb.update_item(
                TableName=self.table,
                Key=self._key(),
                UpdateExpression=(
                    "SET partial_run = :run, partial_seq = :seq, #trigger = :trigger, "
                    "partial_state = :partial, partial_cursor = :cursor, expires_at = :expires "
                    "REMOVE partial_sent"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _conditional(exc):
                return False
            raise
        return True

    def count_restart(self) -> int:
        """Count one restart of the review from scratch; returns how many there were."""
        response = self._dynamodb.update_item(
            TableName=self.table,
            Key=self._key(),
            UpdateExpression="ADD restarts :one SET expires_at = :expires",
            ExpressionAttributeValues={":one": {"N": "1"}, ":expires": self._expires()},
            ReturnValues="UPDATED_NEW",
        )
        return _int((response.get("Attributes") or {}).get("restarts", {}).get("N"))

    def mark_sent(self, run: str, seq: int) -> None:
        """Note that step ``seq``'s continuation is out, so a duplicate delivery does not send it again.

        Best effort: without the mark, a duplicate re-sends it, and the copies race for the
        conditional write of the next step (one wins, the others are superseded).
        """
        with contextlib.suppress(ClientError, BotoCoreError, OSError):
            self._dynamodb.update_item(
                TableName=self.table,
                Key=self._key(),
                UpdateExpression="SET partial_sent = :seq",
                ConditionExpression="partial_run = :run AND partial_seq = :seq",
                ExpressionAttributeValues={":run": {"S": run}, ":seq": {"N": str(seq)}},
            )

    def claim(self, trigger: str, request_id: str, outside: int) -> str:
        """Claim the publish: ``claimed``, ``already-reviewed``, ``no-news`` (hourly) or ``busy``."""
        holder, lease = f"claim_{trigger}", f"lease_{trigger}"
        now = int(self.now.timestamp())
        condition = (
            "attribute_not_exists(closed_published) AND "
            "(attribute_not_exists(#holder) OR #lease < :now OR #holder = :me)"
        )
        values: dict[str, Any] = {
            ":me": {"S": request_id},
            ":now": {"N": str(now)},
            ":until": {"N": str(now + CLAIM_LEASE_SECONDS)},
            ":expires": self._expires(),
        }
        if trigger == "hourly":
            condition += " AND (attribute_not_exists(published_outside) OR published_outside < :outside)"
            values[":outside"] = {"N": str(outside)}
        try:
            self._dynamodb.update_item(
                TableName=self.table,
                Key=self._key(),
                UpdateExpression="SET #holder = :me, #lease = :until, expires_at = :expires",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#holder": holder, "#lease": lease},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _conditional(exc):
                raise
            item = self.get()
            if item.get("closed_published"):
                return "already-reviewed"
            if trigger == "hourly" and _int(item.get("published_outside")) >= outside:
                return "no-news"
            return "busy"
        return "claimed"

    def release(self, trigger: str, request_id: str) -> None:
        """Give the claim up after a failed publish, so the retry may publish (best effort: it expires)."""
        try:
            self._dynamodb.update_item(
                TableName=self.table,
                Key=self._key(),
                UpdateExpression="REMOVE #holder, #lease",
                ConditionExpression="#holder = :me",
                ExpressionAttributeNames={"#holder": f"claim_{trigger}", "#lease": f"lease_{trigger}"},
                ExpressionAttributeValues={":me": {"S": request_id}},
            )
        except (ClientError, BotoCoreError, OSError) as exc:
            log_decision("review-release-failed", error=str(exc)[:300])

    def mark_published(
        self, trigger: str, request_id: str, outside: int, message_id: str, verdict: str
    ) -> str | None:
        """Record the published review (and, for ``closed``, that the window's review is out)."""
        expression = (
            "SET published_outside = :outside, published_at = :at, published_verdict = :verdict, "
            "published_message = :message, expires_at = :expires"
        )
        if trigger == "closed":
            expression += ", closed_published = :at"
        try:
            self._dynamodb.update_item(
                TableName=self.table,
                Key=self._key(),
                UpdateExpression=expression + " REMOVE #holder, #lease",
                ExpressionAttributeNames={"#holder": f"claim_{trigger}", "#lease": f"lease_{trigger}"},
                ExpressionAttributeValues={
                    ":outside": {"N": str(outside)},
                    ":at": {"S": stamp(self.now)},
                    ":verdict": {"S": verdict},
                    ":message": {"S": message_id or "-"},
                    ":expires": self._expires(),
                },
            )
        except (ClientError, BotoCoreError, OSError) as exc:
            return f"dynamodb:UpdateItem: {type(exc).__name__}: {str(exc)[:200]}"
        return None

    def clear_partial(self, run: str) -> None:
        """Drop this run's stored progress once the review is over (best effort: the TTL also does)."""
        # A failed condition means another run's progress, or none: nothing to clear.
        with contextlib.suppress(ClientError, BotoCoreError, OSError):
            self._dynamodb.update_item(
                TableName=self.table,
                Key=self._key(),
                UpdateExpression=(
                    "REMOVE partial_run, partial_seq, #trigger, partial_state, partial_cursor, partial_sent"
                ),
                ConditionExpression="partial_run = :run",
                ExpressionAttributeNames={"#trigger": "partial_trigger"},
                ExpressionAttributeValues={":run": {"S": run}},
            )


def _conditional(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


# ---- severity --------------------------------------------------------------------------------------------


def review_severity(original: str, report: Mapping[str, Any]) -> tuple[str, str]:
    """The alert's severity: the original one, raised (never lowered) for what outsiders did.

    At least ``high`` when anonymous or external callers read or wrote successfully, and
    ``critical`` when they wrote.
    """
    wrote = read = False
    for name in ("anonymous", "external"):
        part = report.get(name)
        if isinstance(part, Mapping):
            wrote = wrote or _int(part.get("succeededWrites")) > 0
            read = read or _int(part.get("succeededReads")) > 0
    floor, why = "low", ""
    if wrote:
        floor, why = "critical", "callers outside the account changed the bucket while it was public"
    elif read:
        floor, why = "high", "callers outside the account read from the bucket while it was public"
    level = original if original in SEVERITY_ORDER else "high"
    if SEVERITY_ORDER[floor] > SEVERITY_ORDER[level]:
        return floor, f"raised from {level}: {why}"
    if why:
        return level, f"the original alert's level; {why}"
    return level, "the original alert's level (nothing outside the account succeeded in reading or writing)"


# ---- the alert -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Caps:
    items: int  # entries per list
    key: int  # characters of a key, principal or reason
    value: int  # characters of a short value


_CAPS = (_Caps(10, 300, 200), _Caps(5, 120, 120), _Caps(3, 60, 80), _Caps(1, 40, 60))

CANNOT_TELL = (
    "cannot tell whether data was read: server access logging is off and the trail records no data "
    "events for this bucket"
)


def build_review_alert(
    request: ReviewRequest,
    report: dict[str, Any],
    severity: str,
    severity_reason: str,
    settings: ReviewSettings,
    now: datetime,
) -> alerts.Alert:
    """Subject, body and payload of the follow-up alert for a finished review."""
    base = settings.base
    where = f"in {base.account_name} {request.account}"
    level = f"[{severity.upper()}]"
    candidates = headlines(report, request.bucket)
    fitting = [h for h in candidates if len(f"{level} {h} {where}") <= alerts.SUBJECT_LIMIT]
    subject = alerts.safe_subject(f"{level} {(fitting or candidates[-1:])[0]}", where)
    payload: dict[str, Any] = {
        "schema": SCHEMA,
        "subject": subject,
        "severity": severity,
        "severityReason": severity_reason,
        "trigger": request.trigger,
        "original": {"subject": request.subject, "severity": request.severity},
        "account": {"id": request.account, "name": base.account_name, "environment": base.environment},
        "window": {"from": stamp(request.start), "to": stamp(request.end) if request.end else None},
        "review": report,
        "checkedAt": stamp(now),
    }
    fix = logging_enable_command(request.bucket, request.account, settings.log_target)
    text = ""
    for caps in _CAPS:  # the most generous caps that fit; whole lines cut as a last resort
        text = (
            "\n".join(_body(request, report, severity, severity_reason, settings, subject, fix, caps)) + "\n"
        )
        if len(text.encode()) <= TEXT_BUDGET:
            break
    text = alerts.cut_text(text, TEXT_BUDGET)
    payload["text"] = text
    attributes = {
        "severity": severity,
        "verdict": "exposure-review",
        "reviewVerdict": str(report.get("verdict")),
        "account": request.account,
        "bucket": request.bucket,
        "environment": base.environment,
        "trigger": request.trigger,
    }
    return alerts.Alert(subject=subject, text=text, payload=payload, attributes=attributes)


def headlines(report: Mapping[str, Any], bucket: str) -> list[str]:
    """What the review found in a few words and numbers, most detailed first (no attacker-written text).

    The subject takes the first that fits; the bucket and the byte counts go first when space is short.
    """
    name = checked_bucket(bucket) or "(invalid bucket name)"
    scopes = (f"exposure review of {name}", "exposure review")
    if not report.get("sources"):
        return [
            f"{scope}: cannot tell if data was read{detail}"
            for scope in scopes
            for detail in (" (no access logs, no data events)", "")
        ]
    if report.get("verdict") == "no-evidence":
        return [f"{scope}: no evidence could be read" for scope in scopes]
    classes = [
        (kind, part)
        for kind in ("anonymous", "external")
        if isinstance(part := report.get(kind), Mapping) and _int(part.get("requests"))
    ]
    if not classes:
        minutes = _int((report.get("window") or {}).get("minutes"))
        return [f"{scope}: no outside requests in {minutes} minutes" for scope in scopes]
    verdict = {"read": "READ", "written": "WRITTEN", "attempted-only": "attempts only"}.get(
        str(report.get("verdict")), "outside requests"
    )
    full = [_class_words(kind, part, with_bytes=True) for kind, part in classes]
    short = [_class_words(kind, part, with_bytes=False) for kind, part in classes]
    found = [
        f"{scope}: {verdict}: {'; '.join(parts)}" for scope in scopes for parts in (full, full[:1], short[:1])
    ]
    total = sum(_int(part.get("requests")) for _, part in classes)
    return [*found, f"exposure review: {verdict}: {total} outside requests"]


def _class_words(kind: str, part: Mapping[str, Any], *, with_bytes: bool) -> str:
    """E.g. ``37 anonymous GETs from 5 IPs, 120 MB out``."""
    requests = _int(part.get("requests"))
    by_op = part.get("byOperation")
    used = [(op, _int(n)) for op, n in by_op.items() if _int(n)] if isinstance(by_op, Mapping) else []
    if len(used) == 1 and used[0][0] != "OTHER":
        text = f"{requests} {kind} {used[0][0]}{'' if requests == 1 else 's'}"
    else:
        text = f"{requests} {kind} request{'' if requests == 1 else 's'}"
    ips = _int(part.get("distinctIps"))
    at_least = "at least " if part.get("distinctIpsAtLeast") is True else ""
    text += f" from {at_least}{ips} IP{'' if ips == 1 else 's'}"
    sent = _int(part.get("bytesSent"))
    if not _int(part.get("succeeded")):
        text += ", all failed"
    elif sent and with_bytes:
        text += f", {human_bytes(sent)} out"
    return text


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def human_bytes(count: int) -> str:
    """Decimal units as the S3 console shows them: ``950 B``, ``1.2 KB``, ``120 MB``."""
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 999.5 or unit == "PB":
            return f"{value:.1f} {unit}" if value < 9.95 else f"{value:.0f} {unit}"
    return f"{count} B"  # unreachable


def _body(
    request: ReviewRequest,
    report: Mapping[str, Any],
    severity: str,
    severity_reason: str,
    settings: ReviewSettings,
    subject: str,
    fix: str | None,
    caps: _Caps,
) -> list[str]:
    base = settings.base
    bucket = shown(request.bucket, checked_bucket, "bucket name", limit=caps.value)
    region = shown(request.region, checked_region, "region", empty="unknown region")
    window = report.get("window") or {}
    lines = [subject, "", "EXPOSURE REVIEW"]
    lines.append(f"  Did anyone outside the account read or write bucket {bucket} while it was public?")
    lines.append(f"  Account {inline(base.account_name, caps.value)} {request.account}, {region}")
    still_open = " (the window is still open: reviewed up to now)" if request.end is None else ""
    lines.append(
        f"  Window: {inline(window.get('from'), 40)} to {inline(window.get('to'), 40)}, "
        f"{_int(window.get('minutes'))} minutes{still_open}"
    )
    trigger = "the window was closed" if request.trigger == "closed" else "hourly, while the window is open"
    lines.append(f"  Reviewed because: {trigger}")
    if request.subject:
        lines.append(f"  Original alert ({request.severity}): {inline(request.subject, caps.key)}")

    lines += ["", "ANSWER"]
    if not report.get("sources"):
        lines.append(f"  {CANNOT_TELL}")
    elif report.get("verdict") == "no-evidence":
        lines.append(f"  cannot tell whether data was read: {_no_evidence_reason(report)}")
    else:
        lines.append(f"  {summary_line(report)}")
        lines.append(f"  Verdict: {_VERDICT_WORDS.get(str(report.get('verdict')), '?')}")
        if report.get("complete") is not True:
            lines.append("  Not complete: " + inline(_incomplete_reason(report, settings), caps.key * 2))

    for kind in ("anonymous", "external"):
        part = report.get(kind)
        if isinstance(part, Mapping) and _int(part.get("requests")):
            lines += ["", f"{kind.upper()} REQUESTS"]
            lines += _breakdown(part, caps, with_principals=kind == "external")

    lines += ["", "SOURCES"]
    lines += _sources(report, caps)
    other = [
        (_int(report.get("malformedLines")), "malformed log lines skipped"),
        (_int(report.get("malformedEvents")), "malformed data events skipped"),
        (_int(report.get("outsideWindow")), "records of this bucket outside the window"),
        (_int(report.get("otherBuckets")), "records of other buckets in the same logs"),
    ]
    shown_other = [f"{n} {what}" for n, what in other if n]
    if shown_other:
        lines.append(f"  Also: {'; '.join(shown_other)}")

    if not report.get("sources") or not any(
        isinstance(s, Mapping) and s.get("kind") == ACCESS_LOGS for s in report.get("sources") or []
    ):
        lines += ["", "WHAT TO DO"]
        lines.append(
            "  [ ] Turn on server access logging for the bucket (it records from now on, not the past):"
        )
        if fix is not None and alerts.is_command(fix):
            lines.append(f"{alerts.COMMAND_PREFIX}{fix}")
        else:
            lines.append(
                "      (no command: name a log bucket of this account, in the bucket's region, first in "
                "review.log_buckets to get one here)"
            )

    lines += ["", f"SEVERITY: {severity.upper()} - {inline(severity_reason, caps.key)}"]
    return lines


_VERDICT_WORDS = {
    "no-outside-access": "no request from outside the account",
    "read": "READ: callers outside the account read from the bucket",
    "written": "WRITTEN: callers outside the account changed the bucket",
    "attempted-only": "attempts only: every request from outside the account failed",
    "no-evidence": "no evidence: the sources hold no record",
}


def _no_evidence_reason(report: Mapping[str, Any]) -> str:
    sources = [s for s in report.get("sources") or [] if isinstance(s, Mapping)]
    if any(s.get("failure") for s in sources):
        return "the evidence could not be read (see SOURCES)"
    if any(_int(s.get("unreadableFiles")) for s in sources):
        return "the log files could not be read (see SOURCES)"
    return (
        "no log record was delivered for the window: nobody made a request, or logging was turned on "
        "later or cannot deliver to its bucket"
    )


def _incomplete_reason(report: Mapping[str, Any], settings: ReviewSettings) -> str:
    reasons = []
    for source in report.get("sources") or []:
        if not isinstance(source, Mapping):
            continue
        if source.get("failure"):
            reasons.append(f"{source.get('kind')} could not be read")
        elif source.get("unreadableFiles"):
            reasons.append(
                f"{_int(source.get('unreadableFiles'))} {source.get('kind')} files could not be read"
            )
        coverage = source.get("coverage")
        if isinstance(coverage, Mapping) and coverage.get("reads") == "some":
            reasons.append("the trail records reads of only part of the bucket")
    if report.get("stateTrimmed") or report.get("stoppedAt"):
        reasons.append("the review had to stop or trim its partial results")
    to = report.get("completeTo")
    window_to = (report.get("window") or {}).get("to")
    if isinstance(to, str) and isinstance(window_to, str) and to < window_to:
        margin = int(settings.late_margin.total_seconds() // 60)
        reasons.append(
            f"logs are taken as delivered only {margin} minutes after the fact, so records after "
            f"{to} may still arrive"
        )
    return "; ".join(reasons) or "see the sources below"


def _breakdown(part: Mapping[str, Any], caps: _Caps, *, with_principals: bool) -> list[str]:
    lines = [
        f"  {_plural(_int(part.get('requests')), 'request')}: {_int(part.get('succeeded'))} succeeded "
        f"({_int(part.get('succeededReads'))} reads, {_int(part.get('succeededWrites'))} writes), "
        f"{_int(part.get('failed'))} failed; {human_bytes(_int(part.get('bytesSent')))} sent"
    ]
    by_op, ok_by_op = part.get("byOperation"), part.get("succeededByOperation")
    if isinstance(by_op, Mapping):
        ok = ok_by_op if isinstance(ok_by_op, Mapping) else {}
        ops = [f"{op} {_int(n)} ({_int(ok.get(op))} ok)" for op, n in by_op.items() if _int(n)]
        lines.append(f"  By operation: {', '.join(ops) or '-'}")
    at_least = "at least " if part.get("distinctIpsAtLeast") is True else ""
    lines.append(f"  Distinct IPs: {at_least}{_int(part.get('distinctIps'))}")
    approximate = " (approximate counts)" if part.get("approximateTopCounts") is True else ""
    lines += _listed(
        f"  Top IPs{approximate}:",
        part.get("topIps"),
        caps,
        lambda row: f"{_ip(row.get('ip'))}: {_plural(_int(row.get('requests')), 'request')}",
    )
    lines += _listed(
        "  Objects most read:",
        part.get("objectsMostRead"),
        caps,
        lambda row: (
            f"{inline(row.get('key'), caps.key)}: {_plural(_int(row.get('reads')), 'read')}, "
            f"{human_bytes(_int(row.get('bytes')))}"
        ),
    )
    if with_principals:
        lines += _listed(
            "  Principals:",
            part.get("principals"),
            caps,
            lambda row: (
                f"{_principal(row.get('principal'), caps)}: {_plural(_int(row.get('requests')), 'request')}"
            ),
        )
    return lines


def _listed(title: str, rows: object, caps: _Caps, render: Callable[[Mapping[str, Any]], str]) -> list[str]:
    entries = [row for row in rows if isinstance(row, Mapping)] if isinstance(rows, list) else []
    if not entries:
        return []
    lines = [title] + [f"    - {render(row)}" for row in entries[: caps.items]]
    if len(entries) > caps.items:
        lines.append(f"    ... {len(entries) - caps.items} more in the JSON payload")
    return lines


def _ip(value: object) -> str:
    """An IP address as text, only when it is one (log fields are attacker-influenced)."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    return "(not an IP address; see the JSON payload)"


def _principal(value: object, caps: _Caps) -> str:
    return shown(value, _checked_principal, "principal", limit=caps.key)


def _checked_principal(value: object) -> str | None:
    if checked_arn(value) is not None or checked_account(value) is not None:
        return str(value)
    return str(value) if isinstance(value, str) and _CANONICAL_ID.fullmatch(value) else None


def _sources(report: Mapping[str, Any], caps: _Caps) -> list[str]:
    lines = []
    for source in report.get("sources") or []:
        if not isinstance(source, Mapping):
            continue
        files = _plural(_int(source.get("files")), "file")
        if source.get("kind") == ACCESS_LOGS:
            target = shown(source.get("targetBucket"), checked_bucket, "bucket name", limit=caps.value)
            prefix = inline(source.get("targetPrefix"), caps.value, empty="(none)")
            lines.append(
                f"  - access logs in bucket {target}, prefix {prefix} "
                f"({inline(source.get('keyFormat'), 60)}): {files}, "
                f"{_plural(_int(source.get('lines')), 'line')}"
            )
        elif source.get("kind") == DATA_EVENTS:
            lines.append(
                f"  - data events of trail {inline(source.get('trail'), caps.value)} "
                f"(bucket {shown(source.get('trailBucket'), checked_bucket, 'bucket name')}): "
                f"{inline(source.get('recorded'), caps.key)}; {files}, "
                f"{_plural(_int(source.get('events')), 'record')}, "
                f"{_int(source.get('bucketEvents'))} of this bucket"
            )
        else:
            continue
        state = "complete" if source.get("complete") is True else "NOT complete"
        to = source.get("completeTo")
        lines.append(
            f"      {state}" + (f"; records up to {inline(to, 40)} taken as delivered" if to else "")
        )
        failure = source.get("failure")
        if isinstance(failure, Mapping):
            lines.append(
                f"      FAILED: {inline(failure.get('call'), 60)}: {inline(failure.get('error'), 60)}: "
                f"{inline(failure.get('message'), caps.key)}"
            )
        if _int(source.get("unreadableFiles")):
            lines.append(f"      {_int(source.get('unreadableFiles'))} files could not be read:")
            unreadable = source.get("unreadable")
            for entry in (unreadable if isinstance(unreadable, list) else [])[: caps.items]:
                lines.append(f"        - {inline(entry, caps.key)}")
    for absent in report.get("absentSources") or []:
        if isinstance(absent, Mapping):
            what = "access logs" if absent.get("kind") == ACCESS_LOGS else "data events"
            lines.append(f"  - no {what}: {inline(absent.get('reason'), caps.key)}")
    return lines or ["  - none"]

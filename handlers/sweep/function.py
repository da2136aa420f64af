"""The scheduled exposure sweep: the configuration checker beside the event-driven path.

Event monitoring misses whatever happens while CloudTrail is off, and everything made
public before the detector existed. The sweep looks at every bucket instead:

- **scheduled run** (EventBridge schedule, hourly by default): list every bucket (paged),
  then check them here with bounded parallelism, or, above ``SWEEP_FANOUT_THRESHOLD``
  buckets, enqueue batches of names to the SQS work queue; the function's own SQS event
  source mapping runs them as **worker** invocations. A run that is short of time also
  hands its unchecked remainder to the queue.
- **per bucket**: :func:`exposure.read_bucket_state` and :func:`exposure.assess_bucket`
  (policy status and policy, ACL, bucket and account BPA, ownership, tags), then the
  decision pipeline the event path uses (:func:`decision.decide`: approval, severity,
  remediation in the configured mode, alert). Public and exposable buckets that are not
  excepted alert once per exposure (:mod:`handlers.response.exposure_ledger`); the daily digest
  lists those still open.
- **input**: only the schedule's "Scheduled Event" and SQS batches from the work queue;
  anything else is refused with a log line and starts nothing.
- **metrics**: one CloudWatch EMF line per invocation (:mod:`handlers.response.metrics`).

Buckets whose state cannot be decided (reads failed) are counted as errors and logged,
not alerted or closed: without an event saying something changed, a failed read is far
more often throttling than exposure, and the error metric has its own alarm.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict

from handlers.response import alert as alerts
from handlers.response import aws_clients, decision_log, security_hub, sinks
from handlers.response import metrics as sweep_metrics
from handlers.response.decision import decide, observed_finding, stamp
from handlers.response.decision_log import configure_logging
from handlers.response.exposure import (
    CallFailure,
    Read,
    account_bpa_read,
    assess_bucket,
    describe_error,
    read_bucket_state,
)
from handlers.response.exposure_ledger import (
    EXPOSED_STATUSES,
    ExposureLedger,
    LedgerEntry,
    LedgerUnavailable,
    is_news,
    request_closed_review,
    signature,
)
from handlers.response.metrics import Metric
from handlers.response.response_config import Settings
from handlers.response.review_queue import review_request, send_review
from handlers.response.settings_cache import SettingsCache, function_region
from handlers.sweep.bucket_listing import BucketRef, list_buckets
from handlers.sweep.config import SweepSettings, load_sweep_settings
from handlers.sweep.digest import build_digest, digest_due, open_exposures

log = logging.getLogger("handlers.sweep.function")
SEND_BATCH = 10  # SendMessageBatch's entry limit
TIME_RESERVE_SECONDS = 90.0  # left for enqueueing the rest, the digest and the metric line
DEFAULT_REMAINING_SECONDS = 900.0
BATCH_SCHEMA = "s3-exposure-sweep-batch/1"
ACTED = frozenset({"applied", "failed", "unverified"})  # remediation outcomes worth an alert on their own

_settings = SettingsCache(load_sweep_settings)


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class AlertNotPublished(RuntimeError):
    """Some alert could not be published; raised after the metric so the run or batch is retried."""


class SweepIncomplete(RuntimeError):
    """Some buckets were neither checked nor enqueued."""


@dataclass
class BucketResult:
    """What the sweep found and did for one bucket."""

    bucket: str
    status: str  # public-now | exposable | closed | gone | unknown | error
    outcome: str  # private | gone | excepted | alerted | suppressed | error | alert-failed
    severity: str | None = None
    remediation: str | None = None
    reason: str | None = None  # why it alerted: new | changed | remediated | ledger-unavailable
    error: str | None = None
    message_id: str | None = None


class SweepSummary(TypedDict):
    """The handler's return value for a scheduled run."""

    run: str
    mode: str  # scheduled
    listed: int
    checked: int
    enqueued: int
    batches: int
    counts: dict[str, int]
    alerted: list[str]
    remediated: list[str]
    digest: str | None  # sent | not-due | already-sent | empty | failed
    completed: bool


@dataclass
class SweepContext:
    """Everything one invocation shares across its bucket checks."""

    settings: SweepSettings
    account_bpa: Read
    ledger: ExposureLedger
    known: Mapping[str, LedgerEntry]  # ledger entries of the buckets at hand (for clean-up)
    run_id: str
    now: datetime
    home_region: str | None


# ---- entry point -------------------------------------------------------------------------------


def handler(event: dict[str, Any], context: LambdaContext | None) -> Any:
    """Lambda entry: an SQS batch from the work queue (worker) or anything else (a scheduled run)."""
    sweep = current_settings()
    configure_logging(sweep.base.log_level)
    aws_clients.size_connection_pool(sweep.threads + 4)
    started = time.monotonic()
    budget = (
        context.get_remaining_time_in_millis() / 1000 if context is not None else DEFAULT_REMAINING_SECONDS
    )

    def remaining() -> float:
        return budget - (time.monotonic() - started)

    kind, refused = input_kind(event, sweep)
    if kind == "batch":
        return run_worker(event, sweep, remaining=remaining)
    if kind == "schedule":
        return run_scheduled(sweep, remaining=remaining)
    # Anyone who may invoke the function could start a full sweep (and its S3 reads) at will:
    # only the schedule and the work queue's batches are accepted.
    log_decision("sweep-input-refused", reason=refused, eventType=type(event).__name__)
    return {"refused": refused}


def current_settings() -> SweepSettings:
    """Settings from the environment, read once per container."""
    return _settings.get()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    _settings.reset()


def is_work_batch(event: Any) -> bool:
    """Whether ``event`` is an SQS batch (from the work queue's event source mapping)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(
            isinstance(r, dict)
            and r.get("eventSource") == "aws:sqs"
            and isinstance(r.get("body"), str)
            and isinstance(r.get("messageId"), str)
            for r in records
        )
    )


def is_schedule(event: Any, account: str) -> bool:
    """Whether ``event`` is the EventBridge schedule's "Scheduled Event" for this account."""
    return (
        isinstance(event, dict)
        and event.get("source") == "aws.events"
        and event.get("detail-type") == "Scheduled Event"
        and event.get("account") == account
    )


def input_kind(event: Any, sweep: SweepSettings) -> tuple[str, str]:
    """``("batch" | "schedule" | "refused", why refused)`` for the sweep function's input."""
    if is_work_batch(event):
        queue = sweep.work_queue_url
        names = {str(r.get("eventSourceARN", "")).rsplit(":", 1)[-1] for r in event["Records"]}
        if queue and names != {queue.rstrip("/").rsplit("/", 1)[-1]}:
            return "refused", "an SQS batch that does not come from the sweep's work queue"
        return "batch", ""
    if is_schedule(event, sweep.base.expected_account_id):
        return "schedule", ""
    return "refused", (
        "neither the schedule's Scheduled Event for this account nor an SQS batch from the work queue"
    )


def log_decision(decision: str, **fields: Any) -> None:
    """One JSON object per decision, its fields at top level (:mod:`handlers.response.decision_log`)."""
    decision_log.log_decision(log, decision, **fields)


# ---- the scheduled run -------------------------------------------------------------------------


def run_scheduled(
    sweep: SweepSettings,
    *,
    remaining: Callable[[], float] = lambda: DEFAULT_REMAINING_SECONDS,
    now: datetime | None = None,
) -> SweepSummary:
    """List every bucket, then check them here or fan them out; digest; metric line."""
    settings = sweep.base
    now = now or datetime.now(UTC)
    run_id = now.strftime("%Y%m%dT%H%M%SZ")  # compact: it names SQS batches and log lines
    home = function_region()
    account = settings.expected_account_id
    counts: Counter[str] = Counter()

    refs = list_buckets(home)  # a failure raises: no SweepCompleted, so the missed-sweep alarm fires
    ledger = ExposureLedger(settings.idempotency_table, account, home)
    known: dict[str, LedgerEntry] = {}
    try:
        known = ledger.entries()
    except LedgerUnavailable as exc:
        counts[Metric.BUCKET_ERRORS] += 1
        log_decision("ledger-scan-failed", run=run_id, error=str(exc))
    listed = {ref.name for ref in refs}
    for bucket, entry in known.items():
        if bucket not in listed:  # deleted since it was reported
            _close(ledger, bucket, entry, counts, settings, now, gone=True, home=home)

    context = SweepContext(
        settings=sweep,
        account_bpa=account_bpa_read(account, home),
        ledger=ledger,
        known=known,
        run_id=run_id,
        now=now,
        home_region=home,
    )
    fan_out = bool(sweep.work_queue_url) and len(refs) > sweep.fanout_threshold
    results: list[BucketResult] = []
    rest = refs
    if not fan_out:
        results, rest = check_all(refs, context, remaining)
    enqueued, batches, unsent = enqueue(rest, known, sweep, run_id) if rest else (0, 0, 0)
    counts[Metric.BUCKETS_ENQUEUED] += enqueued
    counts[Metric.BUCKET_ERRORS] += unsent
    _tally(results, counts)
    # Windows still open: known public, and not found otherwise in this run (fanned-out buckets
    # are checked later by workers: their hourly review reads up to its own "now").
    ended = {r.bucket for r in results if r.status != "public-now"}
    open_windows = {b: e for b, e in known.items() if b in listed and b not in ended}
    counts[Metric.REVIEWS_REQUESTED] += request_hourly_reviews(open_windows, settings, now)
    digest = send_digest(sweep, ledger, now)
    if digest == "failed":
        counts[Metric.BUCKET_ERRORS] += 1
    completed = unsent == 0 and counts["alert-failed"] == 0
    counts[Metric.SWEEP_COMPLETED] = 1 if completed else 0
    sweep_metrics.emit(settings.account_name, counts, mode="scheduled")
    summary = SweepSummary(
        run=run_id,
        mode="scheduled",
        listed=len(refs),
        checked=len(results),
        enqueued=enqueued,
        batches=batches,
        counts=dict(counts),
        alerted=sorted(r.bucket for r in results if r.outcome == "alerted"),
        remediated=sorted(r.bucket for r in results if r.remediation == "applied"),
        digest=digest,
        completed=completed,
    )
    log_decision(
        "sweep-run",
        run=run_id,
        listed=len(refs),
        checked=len(results),
        enqueued=enqueued,
        fanOut=fan_out,
        digest=digest,
        counts=dict(counts),
    )
    if counts["alert-failed"]:
        raise AlertNotPublished(
            f"{counts['alert-failed']} sweep alert(s) could not be published (run {run_id})"
        )
    if unsent:
        raise SweepIncomplete(f"{unsent} bucket(s) could be neither checked nor enqueued (run {run_id})")
    return summary


# ---- worker invocations ------------------------------------------------------------------------


def run_worker(
    event: dict[str, Any],
    sweep: SweepSettings,
    *,
    remaining: Callable[[], float] = lambda: DEFAULT_REMAINING_SECONDS,
    now: datetime | None = None,
) -> dict[str, list[dict[str, str]]]:
    """Check the buckets of each work-queue message; report the messages that must be retried."""
    settings = sweep.base
    now = now or datetime.now(UTC)
    home = function_region()
    account = settings.expected_account_id
    ledger = ExposureLedger(settings.idempotency_table, account, home)
    account_bpa = account_bpa_read(account, home)
    counts: Counter[str] = Counter()
    failures: list[dict[str, str]] = []
    for record in event["Records"]:
        message_id = str(record.get("messageId", ""))
        try:
            body = json.loads(record["body"])
            if body.get("schema") != BATCH_SCHEMA:
                raise ValueError(f"expected schema {BATCH_SCHEMA}, got {body.get('schema')!r}")
            refs = [BucketRef(str(name), region or None) for name, region in body["buckets"]]
            known = {b: _known_entry(b, tokens) for b, tokens in (body.get("known") or {}).items()}
            context = SweepContext(
                settings=sweep,
                account_bpa=account_bpa,
                ledger=ledger,
                known=known,
                run_id=str(body.get("run", "?")),
                now=now,
                home_region=home,
            )
            results, rest = check_all(refs, context, remaining)
            _tally(results, counts)
            if rest:
                enqueued, _, unsent = enqueue(rest, known, sweep, context.run_id)
                counts[Metric.BUCKETS_ENQUEUED] += enqueued
                if unsent:
                    raise SweepIncomplete(f"{unsent} bucket(s) could not be re-enqueued")
            failed = sum(1 for r in results if r.outcome == "alert-failed")
            if failed:
                raise AlertNotPublished(f"{failed} alert(s) could not be published")
        except Exception as exc:  # this message is retried (then dead-lettered); the others are done
            log_decision("sweep-batch-failed", messageId=message_id, error=f"{type(exc).__name__}: {exc}")
            failures.append({"itemIdentifier": message_id})
    sweep_metrics.emit(settings.account_name, counts, mode="worker")
    return {"batchItemFailures": failures}


def _known_entry(bucket: str, tokens: list[str]) -> LedgerEntry:
    return LedgerEntry(bucket, tuple(tokens), "", "", None, None, None, "sweep", None)


def enqueue(
    refs: list[BucketRef], known: Mapping[str, LedgerEntry], sweep: SweepSettings, run_id: str
) -> tuple[int, int, int]:
    """Send ``refs`` to the work queue in batches; returns (buckets enqueued, messages, buckets not sent)."""
    if not sweep.work_queue_url:
        log_decision(
            "sweep-unfinished", run=run_id, buckets=len(refs), reason="no work queue to hand them to"
        )
        return 0, 0, len(refs)
    sqs = aws_clients.client("sqs", aws_clients.queue_region(sweep.work_queue_url))
    batches = [refs[i : i + sweep.batch_size] for i in range(0, len(refs), sweep.batch_size)]
    bodies = [
        json.dumps(
            {
                "schema": BATCH_SCHEMA,
                "run": run_id,
                "buckets": [[r.name, r.region] for r in batch],
                "known": {r.name: list(known[r.name].signature) for r in batch if r.name in known},
            },
            separators=(",", ":"),
        )
        for batch in batches
    ]
    sent = unsent = 0
    for start in range(0, len(bodies), SEND_BATCH):
        entries = {str(i): bodies[i] for i in range(start, min(start + SEND_BATCH, len(bodies)))}
        for _attempt in range(2):  # SendMessageBatch can fail some entries; try those once more
            try:
                response = sqs.send_message_batch(
                    QueueUrl=sweep.work_queue_url,
                    Entries=[{"Id": key, "MessageBody": body} for key, body in entries.items()],
                )
                failed = {f["Id"] for f in response.get("Failed", [])}
            except Exception as exc:  # the whole call failed: retry, then count as not sent
                log_decision("enqueue-failed", run=run_id, error=describe_error("sqs:SendMessage", exc))
                failed = set(entries)
            for key in set(entries) - failed:
                sent += len(batches[int(key)])
            entries = {key: entries[key] for key in failed}
            if not entries:
                break
        unsent += sum(len(batches[int(key)]) for key in entries)
    log_decision("enqueued", run=run_id, buckets=sent, messages=len(batches), unsent=unsent)
    return sent, len(batches), unsent


# ---- checking buckets --------------------------------------------------------------------------


def check_all(
    refs: list[BucketRef], context: SweepContext, remaining: Callable[[], float]
) -> tuple[list[BucketResult], list[BucketRef]]:
    """Check ``refs`` on ``SWEEP_THREADS`` threads; stop early when time runs short.

    Returns the results and the buckets not started (to hand to the work queue).
    """
    threads = context.settings.threads
    chunk = max(threads * 8, 1)
    results: list[BucketResult] = []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sweep") as pool:
        for start in range(0, len(refs), chunk):
            if remaining() < TIME_RESERVE_SECONDS:
                rest = refs[start:]
                log_decision("sweep-out-of-time", run=context.run_id, checked=start, rest=len(rest))
                return results, rest
            results += pool.map(lambda ref: check_bucket(ref, context), refs[start : start + chunk])
    return results, []


def check_bucket(ref: BucketRef, context: SweepContext) -> BucketResult:
    """Confirm, rate, remediate and (once per exposure) alert for one bucket; never raises."""
    try:
        result = _check(ref, context)
    except Exception as exc:  # one bucket's surprise must not stop the sweep
        result = BucketResult(ref.name, "error", "error", error=f"{type(exc).__name__}: {exc}"[:300])
    if result.outcome not in ("private", "gone", "suppressed") or log.isEnabledFor(logging.DEBUG):
        log_decision(
            "sweep-bucket",
            run=context.run_id,
            bucket=ref.name,
            region=ref.region,
            status=result.status,
            outcome=result.outcome,
            severity=result.severity,
            remediation=result.remediation,
            reason=result.reason,
            error=result.error,
        )
    return result


def _check(ref: BucketRef, context: SweepContext) -> BucketResult:
    settings = context.settings.base
    account = settings.expected_account_id
    region = ref.region or context.home_region
    state = read_bucket_state(ref.name, account, region, workers=1, account_bpa=context.account_bpa)
    exposure = assess_bucket(state)
    status = exposure["status"]
    if status in ("closed", "gone"):
        entry = context.known.get(ref.name)
        if entry is not None:
            failure = _close(
                context.ledger, ref.name, entry, Counter(), settings, context.now,
                gone=status == "gone", home=context.home_region, region=region,
            )  # fmt: skip
            if failure:  # an error for this run's count; the item stays for the next run
                return BucketResult(ref.name, status, "error", error=failure)
        return BucketResult(ref.name, status, "private" if status == "closed" else "gone")
    known = context.known.get(ref.name)
    if status == "exposable" and known is not None and not known.closed_at:
        # Held back by Block Public Access now: no longer public, so its findings are resolved.
        failure = _resolve_findings(ref.name, settings, context.now, gone=False, home=context.home_region)
        if failure:
            return BucketResult(ref.name, status, "error", error=failure)
    if status == "exposable" and known is not None and settings.review_queue_url:
        # Public no more (held back by Block Public Access now): the window closed; the item stays.
        review_failure: CallFailure | None
        try:
            review_failure = request_closed_review(
                context.ledger, ref.name, region, stamp(context.now), settings.review_queue_url
            )
        except LedgerUnavailable as exc:
            review_failure = exc.failure
        if review_failure:
            log_decision("review-request-failed", bucket=ref.name, error=review_failure)
    if status not in EXPOSED_STATUSES:
        failures = [f"{f['call']}:{f['error']}" for f in exposure["failures"]]
        return BucketResult(
            ref.name, status, "error", error="; ".join(failures) or "; ".join(exposure["reasons"])
        )

    finding = observed_finding(ref.name, region, account, exposure)
    # The same pipeline as the event path; the sweep never acts on the account.
    decision = decide(finding, exposure, settings, now=context.now, allow_account=False)
    if decision.approval.approved:
        return BucketResult(ref.name, status, "excepted", reason=decision.approval.reason)
    severity, remediation = decision.severity, decision.remediation
    result = BucketResult(
        ref.name, status, "suppressed", severity=severity, remediation=remediation["status"]
    )

    tokens = signature(exposure)
    previous: LedgerEntry | None = None
    ledger_ok = True
    try:
        previous = context.ledger.get(ref.name)
    except LedgerUnavailable as exc:
        ledger_ok = False  # alert rather than stay silent: at worst a repeat
        result.error = str(exc)
    news = is_news(tokens, previous.signature if previous else None)
    if not ledger_ok:
        result.reason = "ledger-unavailable"
    elif news:
        result.reason = "new" if previous is None else "changed"
    elif remediation["status"] in ACTED:
        result.reason = "remediated"
    else:
        if previous is not None and set(previous.signature) != set(tokens):
            _quietly(
                lambda: context.ledger.record(
                    ref.name, tokens, previous, status=status, severity=severity, region=region,
                    now=context.now, source="sweep", subject=previous.subject, alerted=False,
                )
            )  # fmt: skip
        return result

    alert = decision.alert
    alert["payload"]["sweep"] = {
        "run": context.run_id,
        "reason": result.reason,
        "signature": list(tokens),
        "previousSignature": list(previous.signature) if previous else None,
        "previouslyAlerted": previous.alerted_at if previous else None,
    }
    claimed = False
    if ledger_ok and news:
        try:
            claimed = context.ledger.record(
                ref.name, tokens, previous, status=status, severity=severity, region=region,
                now=context.now, source="sweep", subject=alert["subject"], alerted=True,
            )  # fmt: skip
        except LedgerUnavailable as exc:
            result.error = str(exc)
        else:
            if not claimed and remediation["status"] not in ACTED:
                result.reason = "recorded-meanwhile"  # the real-time path (or a parallel run) reported it
                return result
    delivery = sinks.deliver(alert, settings, region=context.home_region)
    if sinks.TOPIC in (delivery.failed or []):  # keep going; the run or batch raises at the end
        result.outcome = "alert-failed"
        result.error = str((delivery.errors or {}).get(sinks.TOPIC))
        if claimed:
            _quietly(lambda: context.ledger.restore(ref.name, previous))
        return result
    if delivery.failed:
        # The alert went out; a sink behind it did not take it. Logged (the topic's alert stands):
        # re-sending the whole alert next run would repeat it to everyone who has it.
        log_decision("sink-failed", bucket=ref.name, sinks=delivery.failed, error=delivery.errors)
    result.message_id = delivery.message_id
    result.outcome = "alerted"
    return result


def _close(
    ledger: ExposureLedger,
    bucket: str,
    entry: LedgerEntry,
    counts: Counter[str],
    settings: Settings,
    now: datetime,
    *,
    gone: bool,
    home: str | None,
    region: str | None = None,
) -> str | None:
    """A known exposure found closed or deleted: resolve (or archive) its Security Hub findings,
    send its window to the review, then forget it. Returns what failed, if anything.

    When either cannot be done the item stays, so the next run tries again.
    """
    unresolved = _resolve_findings(bucket, settings, now, gone=gone, home=home)
    if unresolved:
        counts[Metric.BUCKET_ERRORS] += 1
        return unresolved
    review_queue = settings.review_queue_url
    if review_queue:
        try:
            failure = request_closed_review(ledger, bucket, region, stamp(now), review_queue)
        except LedgerUnavailable as exc:
            failure = exc.failure
        if failure:
            counts[Metric.BUCKET_ERRORS] += 1
            log_decision("review-request-failed", bucket=bucket, error=failure)
            return f"review request: {failure.get('call')}: {failure.get('error')}"
    _forget(ledger, bucket, entry, counts)
    return None


def _resolve_findings(
    bucket: str, settings: Settings, now: datetime, *, gone: bool, home: str | None
) -> str | None:
    """Resolve (``gone``: archive) the bucket's Security Hub findings; the failure, or None."""
    if not settings.security_hub:
        return None
    try:
        changed = security_hub.close(
            bucket,
            region=home or settings.topic_region,
            account=settings.expected_account_id,
            gone=gone,
            reason="bucket deleted" if gone else "found not public by the scheduled sweep",
            now=now,
        )
    except Exception as exc:  # kept: the next run tries again
        failure = f"{type(exc).__name__}: {exc}"[:300]
        log_decision("security-hub-close-failed", bucket=bucket, error=failure)
        return failure
    if changed:
        log_decision("security-hub-closed", bucket=bucket, findings=changed, archived=gone)
    return None


def request_hourly_reviews(open_windows: Mapping[str, LedgerEntry], settings: Settings, now: datetime) -> int:
    """Ask for a review of every window still open and public (it publishes only news)."""
    if not settings.review_queue_url:
        return 0
    sent = 0
    for bucket, entry in open_windows.items():
        start = entry.window_start
        if entry.status != "public-now" or entry.closed_at or not start:
            continue
        body = review_request(
            account=settings.expected_account_id, region=entry.region, bucket=bucket, start=start,
            end=None, trigger="hourly", severity=entry.severity, subject=entry.subject,
        )  # fmt: skip
        failure = send_review(settings.review_queue_url, body)
        if failure:
            log_decision("review-request-failed", bucket=bucket, error=failure, trigger="hourly")
        else:
            sent += 1
    return sent


def _forget(ledger: ExposureLedger, bucket: str, entry: LedgerEntry, counts: Counter[str]) -> None:
    try:
        if ledger.forget(bucket, entry):
            log_decision("ledger-forget", bucket=bucket, reason="closed or deleted")
    except LedgerUnavailable as exc:
        counts[Metric.BUCKET_ERRORS] += 1
        log_decision("ledger-forget-failed", bucket=bucket, error=str(exc))


def _quietly(action: Callable[[], Any]) -> None:
    """A ledger write whose failure only risks one repeated alert later: logged, not raised."""
    try:
        action()
    except LedgerUnavailable as exc:
        log_decision("ledger-write-failed", error=str(exc))


def _tally(results: list[BucketResult], counts: Counter[str]) -> None:
    for result in results:
        counts[Metric.BUCKETS_CHECKED] += 1
        counts[result.outcome] += 1
        if result.status == "public-now":
            counts[Metric.BUCKETS_PUBLIC] += 1
        elif result.status == "exposable":
            counts[Metric.BUCKETS_EXPOSABLE] += 1
        if result.remediation == "applied":
            counts[Metric.BUCKETS_REMEDIATED] += 1
        if result.outcome == "alerted":
            counts[Metric.ALERTS_SENT] += 1
        if result.outcome in ("error", "alert-failed"):
            counts[Metric.BUCKET_ERRORS] += 1


# ---- the daily digest --------------------------------------------------------------------------


def send_digest(sweep: SweepSettings, ledger: ExposureLedger, now: datetime) -> str:
    """Send today's digest if due and not yet sent: sent | not-due | already-sent | empty | failed."""
    settings = sweep.base
    if not digest_due(now, sweep.digest_hour):
        return "not-due"
    day = now.strftime("%Y-%m-%d")
    checked = stamp(now)
    try:
        if not ledger.claim_digest(day, now.timestamp()):
            return "already-sent"
        entries = open_exposures(ledger.entries(), alerted_now=checked)
    except LedgerUnavailable as exc:
        log_decision("digest-failed", day=day, error=str(exc))
        return "failed"
    if not entries:
        log_decision("digest", day=day, exposures=0, sent=False)
        return "empty"
    message = build_digest(entries, settings, day, checked)
    try:
        message_id = alerts.publish(message, settings.alert_topic_arn, settings.topic_region)
    except Exception as exc:
        _quietly(lambda: ledger.release_digest(day))
        log_decision("digest-failed", day=day, error=f"{type(exc).__name__}: {exc}")
        return "failed"
    log_decision("digest", day=day, exposures=len(entries), messageId=message_id)
    return "sent"

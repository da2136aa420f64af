"""Every AWS API call the response and sweep Lambdas make, per remediation mode, with its IAM action.

These lists are the single source of truth: the infrastructure derives each function's
IAM policy from them, and a test fails when the code calls an operation that is not
listed here (and so not granted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# "listing" and "history": actions IAM gives no resource type (s3:ListAllMyBuckets,
# cloudtrail:LookupEvents), so Resource "*" (both reads).
# "review-queue": the exposure review's queue; "log-bucket"/"log-object": buckets holding access
# logs the review may read (review.log_buckets) and the detector's trail bucket; "trail": its trail.
# "hub-product": the account's own Security Hub product (custom findings); "hub": its hub;
# "chat-topic": the chat topic; "event-bus": the default event bus.
Resource = Literal[
    "bucket", "account", "access-point", "topic", "table", "key", "queue", "listing", "history",
    "review-queue", "log-bucket", "log-object", "trail", "hub-product", "hub", "chat-topic", "event-bus",
]  # fmt: skip
Mode = Literal["off", "dry-run", "enforce"]
MODES: tuple[Mode, ...] = ("off", "dry-run", "enforce")


@dataclass(frozen=True)
class ApiCall:
    """One API operation (botocore name), the IAM action it needs and what it acts on."""

    service: str  # boto3 client name
    operation: str  # botocore operation name
    iam_action: str
    resource: Resource


# Reads that confirm the current exposure of a bucket (every mode).
CONFIRM_CALLS: tuple[ApiCall, ...] = (
    ApiCall("s3", "GetBucketPolicyStatus", "s3:GetBucketPolicyStatus", "bucket"),
    ApiCall("s3", "GetBucketPolicy", "s3:GetBucketPolicy", "bucket"),
    ApiCall("s3", "GetBucketAcl", "s3:GetBucketAcl", "bucket"),
    ApiCall("s3", "GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock", "bucket"),
    ApiCall("s3", "GetBucketOwnershipControls", "s3:GetBucketOwnershipControls", "bucket"),
    ApiCall("s3", "GetBucketTagging", "s3:GetBucketTagging", "bucket"),
    ApiCall("s3control", "GetPublicAccessBlock", "s3:GetAccountPublicAccessBlock", "account"),
)

# Reads that confirm an access point's exposure (the response function only; the sweep reads
# buckets): AWS's verdict on its policy, and its own BPA and bucket (GetAccessPoint). Its
# bucket's and the account's BPA come from CONFIRM_CALLS.
ACCESS_POINT_CONFIRM_CALLS: tuple[ApiCall, ...] = (
    ApiCall("s3control", "GetAccessPointPolicyStatus", "s3:GetAccessPointPolicyStatus", "access-point"),
    ApiCall("s3control", "GetAccessPoint", "s3:GetAccessPoint", "access-point"),
)

# Alerting and duplicate suppression (every mode).
ALERT_CALLS: tuple[ApiCall, ...] = (
    ApiCall("sns", "Publish", "sns:Publish", "topic"),
    ApiCall("kms", "GenerateDataKey", "kms:GenerateDataKey", "key"),  # encrypted topic
    ApiCall("kms", "Decrypt", "kms:Decrypt", "key"),
    # Claims, write-ahead records, staged alerts, the ledger and the refusal count: all UpdateItem.
    ApiCall("dynamodb", "UpdateItem", "dynamodb:UpdateItem", "table"),
)

# Closing a bucket (enforce only).
BUCKET_REMEDIATION_CALLS: tuple[ApiCall, ...] = (
    ApiCall("s3", "PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock", "bucket"),
)

# Closing the account (enforce, and only when the config explicitly allows it).
ACCOUNT_REMEDIATION_CALLS: tuple[ApiCall, ...] = (
    ApiCall("s3control", "PutPublicAccessBlock", "s3:PutAccountPublicAccessBlock", "account"),
)


# The actor's history (handlers/response/actor_history.py): 90 days of management events, and its cache.
HISTORY_CALLS: tuple[ApiCall, ...] = (
    ApiCall("cloudtrail", "LookupEvents", "cloudtrail:LookupEvents", "history"),
    ApiCall("dynamodb", "GetItem", "dynamodb:GetItem", "table"),
    ApiCall("dynamodb", "PutItem", "dynamodb:PutItem", "table"),
)

# A closed exposure window goes to the exposure review (handlers/response/review_queue.py); the window's
# start is read from the ledger item first (GetItem, in HISTORY_CALLS).
REVIEW_REQUEST_CALLS: tuple[ApiCall, ...] = (
    ApiCall("sqs", "SendMessage", "sqs:SendMessage", "review-queue"),
)


# Where else each decision goes (handlers/response/sinks.py), each only when the config turns it on.
# Security Hub: import into the account's own product; a status change after creation is
# BatchUpdateFindings (AWS ignores Workflow in later imports).
SECURITY_HUB_REPORT_CALLS: tuple[ApiCall, ...] = (
    ApiCall("securityhub", "BatchImportFindings", "securityhub:BatchImportFindings", "hub-product"),
    ApiCall("securityhub", "BatchUpdateFindings", "securityhub:BatchUpdateFindings", "hub"),
)
# The sweep resolves (or archives) a closed bucket's findings: it reads which exist first.
SECURITY_HUB_CLOSE_CALLS: tuple[ApiCall, ...] = (
    ApiCall("securityhub", "GetFindings", "securityhub:GetFindings", "hub"),
)
CHAT_CALLS: tuple[ApiCall, ...] = (ApiCall("sns", "Publish", "sns:Publish", "chat-topic"),)
EVENT_CALLS: tuple[ApiCall, ...] = (ApiCall("events", "PutEvents", "events:PutEvents", "event-bus"),)
SINKS = ("security-hub", "chat", "events")  # handlers.response.sinks' names of the optional sinks


def sink_calls(sinks: tuple[str, ...], *, closing: bool = False) -> tuple[ApiCall, ...]:
    """The calls of the optional sinks in ``sinks`` (``closing``: the sweep's resolve too)."""
    unknown = set(sinks) - set(SINKS)
    if unknown:
        raise ValueError(f"unknown sinks {sorted(unknown)}; expected some of {', '.join(SINKS)}")
    calls: tuple[ApiCall, ...] = ()
    if "security-hub" in sinks:
        calls += SECURITY_HUB_REPORT_CALLS + (SECURITY_HUB_CLOSE_CALLS if closing else ())
    if "chat" in sinks:
        calls += CHAT_CALLS
    if "events" in sinks:
        calls += EVENT_CALLS
    return calls


def calls_for(
    mode: str, allow_account_remediation: bool = False, sinks: tuple[str, ...] = ()
) -> tuple[ApiCall, ...]:
    """The API calls the response Lambda may make in ``mode`` (``sinks``: the optional ones on)."""
    if mode not in MODES:
        raise ValueError(f"unknown remediation mode {mode!r}; expected one of {', '.join(MODES)}")
    calls = CONFIRM_CALLS + ACCESS_POINT_CONFIRM_CALLS + ALERT_CALLS + HISTORY_CALLS + REVIEW_REQUEST_CALLS
    calls += sink_calls(sinks)
    if mode == "enforce":
        calls += BUCKET_REMEDIATION_CALLS
        if allow_account_remediation:
            calls += ACCOUNT_REMEDIATION_CALLS
    return calls


def iam_actions_by_resource(
    mode: str, allow_account_remediation: bool = False, sinks: tuple[str, ...] = ()
) -> dict[str, list[str]]:
    """IAM actions grouped by the resource they act on, sorted, for policy generation."""
    return group_by_resource(calls_for(mode, allow_account_remediation, sinks))


# ---- the scheduled sweep (handlers/sweep/function.py) ----

# Listing every bucket, once per run (paged).
SWEEP_LIST_CALLS: tuple[ApiCall, ...] = (ApiCall("s3", "ListBuckets", "s3:ListAllMyBuckets", "listing"),)

# The exposure ledger (handlers/response/exposure_ledger.py): alert once per exposure, a daily digest.
SWEEP_LEDGER_CALLS: tuple[ApiCall, ...] = (
    ApiCall("dynamodb", "GetItem", "dynamodb:GetItem", "table"),
    ApiCall("dynamodb", "PutItem", "dynamodb:PutItem", "table"),
    ApiCall("dynamodb", "UpdateItem", "dynamodb:UpdateItem", "table"),
    ApiCall("dynamodb", "DeleteItem", "dynamodb:DeleteItem", "table"),
    ApiCall("dynamodb", "Scan", "dynamodb:Scan", "table"),
)

# Fan-out: batches of bucket names to the work queue (KMS-encrypted with the stack key, which
# ALERT_CALLS already grants). SendMessageBatch is authorised by sqs:SendMessage.
SWEEP_QUEUE_CALLS: tuple[ApiCall, ...] = (ApiCall("sqs", "SendMessageBatch", "sqs:SendMessage", "queue"),)


def sweep_calls_for(mode: str, sinks: tuple[str, ...] = ()) -> tuple[ApiCall, ...]:
    """The API calls the sweep Lambda may make in ``mode``.

    The same confirmation reads and alerting as the response Lambda, plus listing, the ledger
    and the work queue. Bucket-level remediation in enforce mode only; never account-level:
    the sweep raises no account-scope findings.
    """
    if mode not in MODES:
        raise ValueError(f"unknown remediation mode {mode!r}; expected one of {', '.join(MODES)}")
    alerting = tuple(c for c in ALERT_CALLS if c.service != "dynamodb")
    calls = (
        SWEEP_LIST_CALLS
        + CONFIRM_CALLS
        + alerting
        + SWEEP_LEDGER_CALLS
        + SWEEP_QUEUE_CALLS
        + REVIEW_REQUEST_CALLS
        + sink_calls(sinks, closing=True)
    )
    if mode == "enforce":
        calls += BUCKET_REMEDIATION_CALLS
    return calls


def sweep_iam_actions_by_resource(mode: str, sinks: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """The sweep's IAM actions grouped by resource, sorted, for policy generation."""
    return group_by_resource(sweep_calls_for(mode, sinks))


# ---- the exposure review (handlers/review/function.py) ----

# Where the evidence is: the bucket's logging target, the access log objects, the trail's
# data-event selectors and log files. Reads only.
REVIEW_EVIDENCE_CALLS: tuple[ApiCall, ...] = (
    ApiCall("s3", "GetBucketLogging", "s3:GetBucketLogging", "bucket"),
    ApiCall("s3", "ListObjectsV2", "s3:ListBucket", "log-bucket"),
    ApiCall("s3", "GetObject", "s3:GetObject", "log-object"),
    ApiCall("cloudtrail", "GetEventSelectors", "cloudtrail:GetEventSelectors", "trail"),
)

# Partial results of a long review, the once-per-window publish marker, and continuations
# (also the delayed re-queue that waits for late logs).
REVIEW_STATE_CALLS: tuple[ApiCall, ...] = (
    ApiCall("dynamodb", "GetItem", "dynamodb:GetItem", "table"),
    ApiCall("dynamodb", "UpdateItem", "dynamodb:UpdateItem", "table"),
    ApiCall("sqs", "SendMessage", "sqs:SendMessage", "review-queue"),
)


def review_calls() -> tuple[ApiCall, ...]:
    """The API calls the exposure review may make (every mode: it only reads and reports)."""
    alerting = tuple(c for c in ALERT_CALLS if c.service != "dynamodb")
    return REVIEW_EVIDENCE_CALLS + alerting + REVIEW_STATE_CALLS


def group_by_resource(calls: tuple[ApiCall, ...]) -> dict[str, list[str]]:
    """IAM actions of ``calls`` grouped by the resource they act on, sorted."""
    grouped: dict[str, set[str]] = {}
    for call in calls:
        grouped.setdefault(call.resource, set()).add(call.iam_action)
    return {resource: sorted(actions) for resource, actions in sorted(grouped.items())}

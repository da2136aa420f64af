"""Tampering with the detector's trail log bucket: its policy replaced or deleted, its logs cut short.

Only the bucket the context names counts: the same calls on any other bucket are routine
(``bucket_policy`` still judges a policy put for public access, whatever the bucket).

Watched, and why:
- ``PutBucketPolicy`` / ``DeleteBucketPolicy``: the policy is what lets CloudTrail write
  (and keeps everyone else from reading or deleting); replacing or deleting it stops
  delivery or opens the record. The finding says when the new policy no longer lets
  CloudTrail write.
- ``DeleteBucket``: delivery stops (the call fails while logs remain, which is reported
  as an attempt: someone tried).
- ``PutBucketLifecycle``: an expiry rule destroys delivered log files, i.e. the evidence.

Not watched: ``DeleteBucketLifecycle`` (logs are kept longer, not shorter), and
encryption, versioning or ACL changes, which neither stop delivery nor delete what was
delivered (public ACLs are the ``acl_grants`` rule's business).
"""

from __future__ import annotations

from typing import Any

from handlers.detection.finding import Finding, Route
from handlers.detection.policy import PolicyUnreadable, load_policy
from handlers.detection.records import (
    Record,
    as_list,
    as_text,
    bucket_name,
    deep_get,
    get_ci,
    request_parameters,
)
from handlers.detection.rules.base import tamper_finding
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext

ROUTE: Route = "trail-tamper"
EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutBucketPolicy", "DeleteBucketPolicy", "DeleteBucket", "PutBucketLifecycle")
# Fires only when the detector context names one of these (see rules.watched_event_names).
CONTEXT_FIELDS = ("trail_bucket",)
CONFIRMATION: tuple[Confirmation, ...] = ("none",)
REPLAY: dict[str, ReplayHint] = {}  # PutBucketPolicy is replayed for bucket_policy


def patterns(context: DetectorContext, key_ids: object = None) -> tuple[PatternPart, ...]:
    """These calls on the context's trail bucket only; nothing without one."""
    if not context.trail_bucket:
        return ()
    detail = {"eventName": list(EVENT_NAMES), "requestParameters": {"bucketName": [context.trail_bucket]}}
    return (PatternPart(ROUTE, detail),)


CLOUDTRAIL_SERVICE = "cloudtrail.amazonaws.com"
_WRITE_ACTIONS = frozenset({"s3:putobject", "s3:*", "*"})


def lets_cloudtrail_write(statement: Any) -> bool:
    """Whether a statement allows the CloudTrail service principal ``s3:PutObject``."""
    if not isinstance(statement, dict) or str(statement.get("Effect", "")).lower() != "allow":
        return False
    services = as_list(deep_get(statement, "Principal", "Service"))
    if CLOUDTRAIL_SERVICE not in services:
        return False
    actions = {str(action).lower() for action in as_list(statement.get("Action"))}
    return bool(actions & _WRITE_ACTIONS)


def policy_reasons(bucket: str, document: Any) -> list[str]:
    """Why replacing the trail bucket's policy with ``document`` matters."""
    reasons = [f"the policy of the detector's trail log bucket {bucket} was replaced"]
    try:
        policy = load_policy(document)
    except PolicyUnreadable as exc:
        return [*reasons, f"the new policy could not be read ({exc}); check CloudTrail can still write"]
    if not any(lets_cloudtrail_write(s) for s in as_list(policy.get("Statement"))):
        reasons.append("the new policy no longer lets CloudTrail write log files: delivery stops")
    return reasons


def shortest_expiry_days(params: dict[str, Any]) -> int | None:
    """The shortest ``Expiration.Days`` among the lifecycle rules put, if any is readable."""
    rules = as_list(deep_get(get_ci(params, "LifecycleConfiguration"), "Rule"))
    days = []
    for rule in rules:
        value = as_text(deep_get(rule, "Expiration", "Days"))
        if value and value.isdigit():
            days.append(int(value))
    return min(days) if days else None


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A tamper finding for a policy, deletion or lifecycle change of the detector's trail bucket."""
    bucket = bucket_name(record)
    if not context.trail_bucket or bucket != context.trail_bucket:
        return []
    name = as_text(record.get("eventName")) or ""
    params = request_parameters(record)
    if name == "PutBucketPolicy":
        reasons = policy_reasons(bucket, get_ci(params, "bucketPolicy"))
    elif name == "DeleteBucketPolicy":
        reasons = [
            f"the policy of the detector's trail log bucket {bucket} was deleted: "
            "CloudTrail can no longer write log files"
        ]
    elif name == "DeleteBucket":
        reasons = [f"the detector's trail log bucket {bucket} was deleted: trail delivery stops"]
    else:
        days = shortest_expiry_days(params)
        expiry = f" (shortest expiry now {days} days)" if days is not None else ""
        reasons = [
            f"the lifecycle of the detector's trail log bucket {bucket} was replaced{expiry}: "
            "log files may expire early, destroying the audit record"
        ]
    return [tamper_finding(record, reasons, scope="bucket", bucket=bucket)]

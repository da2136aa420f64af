"""Tampering with the KMS keys the detector depends on: its trail's key and its own key.

Only keys the context names count; the same calls on any other key are routine.

Watched, and why:
- ``DisableKey`` and ``ScheduleKeyDeletion``: the key stops working at once (a key pending
  deletion cannot be used either), so CloudTrail cannot encrypt log files and delivery
  stops; once deleted, every log file it encrypted is unreadable for good.
- ``PutKeyPolicy``: the policy decides who may use and administer the key; a new one can
  shut CloudTrail out (the finding says so) or let others decrypt or delete.

Not watched: ``CreateGrant`` (AWS services such as DynamoDB and Lambda create grants on the
detector's key in normal operation, so it would be noise, and a grant can neither disable
nor delete the key), rotation and alias changes (the trail names the key by ARN, which
neither changes), and imported key material (the detector's key is AWS-generated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from handlers.detection.finding import Finding, Route
from handlers.detection.policy import PolicyUnreadable, load_policy
from handlers.detection.records import Record, as_list, as_text, deep_get, get_ci, request_parameters
from handlers.detection.rules.base import tamper_finding
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext, key_id_of

ROUTE: Route = "trail-tamper"
EVENT_SOURCE = "kms.amazonaws.com"
EVENT_NAMES = ("DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy")
# Fires only when the detector context names one of these (see rules.watched_event_names).
CONTEXT_FIELDS = ("trail_key_arn", "detector_key_arn")
CONFIRMATION: tuple[Confirmation, ...] = ("none",)
REPLAY: dict[str, ReplayHint] = {}


def patterns(context: DetectorContext, key_ids: Sequence[str] | None = None) -> tuple[PatternPart, ...]:
    """These calls on the context's keys only. A request names a key by id or ARN and the record's
    ``resources`` carry the ARN, so both are matched. ``key_ids`` overrides the ids taken from the
    ARNs (the stack passes Terraform expressions when an ARN is not known at synth)."""
    arns = list(context.key_arns)
    if not arns:
        return ()
    ids = list(key_ids) if key_ids is not None else [key_id_of(arn) for arn in arns]
    names = {"eventName": list(EVENT_NAMES)}
    return (
        PatternPart(ROUTE, {**names, "resources": {"ARN": arns}}),
        PatternPart(ROUTE, {**names, "requestParameters": {"keyId": list(dict.fromkeys(arns + ids))}}),
    )


CLOUDTRAIL_SERVICE = "cloudtrail.amazonaws.com"
_ENCRYPT_ACTIONS = frozenset({"kms:generatedatakey*", "kms:generatedatakey", "kms:*", "*"})


def key_refs(record: Record) -> list[str]:
    """Every way the record names its key: ``keyId`` (an id or ARN) and the resources' ARNs."""
    refs = [as_text(get_ci(request_parameters(record), "keyId"))]
    for resource in as_list(record.get("resources")):
        arn = as_text(deep_get(resource, "ARN")) or ""
        kind = deep_get(resource, "type")
        # Old records (event version 1.02) list the key without a "type".
        if kind == "AWS::KMS::Key" or (kind is None and ":kms:" in arn and ":key/" in arn):
            refs.append(arn)
    return [ref for ref in refs if ref]


def lets_cloudtrail_encrypt(statement: Any) -> bool:
    """Whether a key policy statement allows the CloudTrail service to generate data keys."""
    if not isinstance(statement, dict) or str(statement.get("Effect", "")).lower() != "allow":
        return False
    if CLOUDTRAIL_SERVICE not in as_list(deep_get(statement, "Principal", "Service")):
        return False
    return bool({str(a).lower() for a in as_list(statement.get("Action"))} & _ENCRYPT_ACTIONS)


def key_policy_reasons(document: Any, guards_trail: bool) -> list[str]:
    """What a new key policy breaks; for the trail's key, whether CloudTrail may still encrypt."""
    try:
        policy = load_policy(document)
    except PolicyUnreadable as exc:
        return [f"the new key policy could not be read ({exc}); check who may use the key"]
    statements = as_list(policy.get("Statement"))
    if guards_trail and not any(lets_cloudtrail_encrypt(s) for s in statements):
        return ["the new key policy no longer lets CloudTrail encrypt log files: delivery stops"]
    return ["check who may now use, administer or delete the key"]


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A tamper finding when a key the detector depends on is disabled, deleted or re-policied."""
    refs = key_refs(record)
    roles = context.key_roles(refs)
    if not roles:
        return []
    key = next((ref for ref in refs if ref.startswith("arn:")), refs[0])
    what = " and ".join(roles)
    name = as_text(record.get("eventName")) or ""
    params = request_parameters(record)
    if name == "DisableKey":
        reasons = [f"KMS key {key} ({what}) disabled: nothing encrypted with it can be written or read"]
    elif name == "ScheduleKeyDeletion":
        days = as_text(get_ci(params, "pendingWindowInDays")) or "?"
        reasons = [
            f"KMS key {key} ({what}) scheduled for deletion in {days} days: unusable from now on, "
            "and everything it encrypted is lost for good once it is deleted"
        ]
    else:
        reasons = [
            f"the policy of KMS key {key} ({what}) was replaced",
            *key_policy_reasons(get_ci(params, "policy"), context.is_trail_key(refs)),
        ]
    return [tamper_finding(record, reasons)]

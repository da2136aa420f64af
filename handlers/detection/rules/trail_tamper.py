"""CloudTrail tampering: the detector is blind while the trail is stopped, gone or narrowed.

EventBridge only sees S3 calls while a trail logs management events, so stopping,
deleting or narrowing that trail is the first move of anyone who wants to expose a
bucket unseen.

Every trail counts, not only the detector's: EventBridge receives CloudTrail events while
*any* trail logs management events, so with ``trail.create = false`` an organisation trail
the detector was never told about may be the one it depends on, and stopping or deleting a
trail is an evasion move (MITRE ATT&CK T1562.008) whoever owns it. When the context names
the detector's trail the finding says so, and an ``UpdateTrail`` that moves the detector's
trail to another bucket or key counts too (for any other trail that is routine).
"""

from __future__ import annotations

from typing import Any

from handlers.detection.finding import Finding, Route
from handlers.detection.records import Record, as_list, as_text, get_ci, request_parameters
from handlers.detection.rules.base import tamper_finding
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext, key_id_of

ROUTE: Route = "trail-tamper"
EVENT_SOURCE = "cloudtrail.amazonaws.com"
EVENT_NAMES = ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors")
PATTERNS = (PatternPart(ROUTE, {"eventName": list(EVENT_NAMES)}),)  # any trail, whoever owns it
CONFIRMATION: tuple[Confirmation, ...] = ("none",)
REPLAY: dict[str, ReplayHint] = {}


def _is_false(value: Any) -> bool:
    return value is False or (as_text(value) or "").strip().lower() == "false"


def update_trail_reasons(params: dict[str, Any]) -> list[str]:
    """What an UpdateTrail request narrows: regions, global events or log integrity."""
    reasons = []
    if _is_false(get_ci(params, "isMultiRegionTrail")):
        reasons.append("trail made single-region: S3 calls in other regions go unlogged")
    if _is_false(get_ci(params, "includeGlobalServiceEvents")):
        reasons.append("trail stops recording global service events")
    if _is_false(get_ci(params, "enableLogFileValidation")):
        reasons.append("log file validation switched off: log tampering becomes undetectable")
    return reasons


def _selector_logs_management_writes(selector: Any) -> bool:
    if not isinstance(selector, dict):
        return False
    if _is_false(get_ci(selector, "includeManagementEvents")):
        return False
    read_write = (as_text(get_ci(selector, "readWriteType")) or "All").lower()
    return read_write in ("all", "writeonly")


def _advanced_selector_logs_management(selector: Any) -> bool:
    """An advanced selector keeps write management events unless it filters them out."""
    fields = {(as_text(get_ci(f, "field")) or ""): f for f in as_list(get_ci(selector, "fieldSelectors"))}
    category = fields.get("eventCategory")
    if "Management" not in [as_text(v) for v in as_list(get_ci(category, "equals"))]:
        return False
    read_only = fields.get("readOnly")
    return "true" not in [(as_text(v) or "").lower() for v in as_list(get_ci(read_only, "equals"))]


def event_selector_reasons(params: dict[str, Any]) -> list[str]:
    """Why a PutEventSelectors request stops write management events (where S3 calls live)."""
    advanced = get_ci(params, "advancedEventSelectors")
    if advanced is not None:
        if any(_advanced_selector_logs_management(s) for s in as_list(advanced)):
            return []
        return ["advanced event selectors no longer record write management events"]
    selectors = as_list(get_ci(params, "eventSelectors"))
    if any(_selector_logs_management_writes(s) for s in selectors):
        return []
    return ["event selectors no longer record write management events (S3 bucket calls go unlogged)"]


def detector_trail_reasons(params: dict[str, Any], context: DetectorContext) -> list[str]:
    """What an UpdateTrail of the detector's own trail moves away: its log bucket or its key."""
    reasons = []
    bucket = as_text(get_ci(params, "s3BucketName"))
    if bucket is not None and bucket != context.trail_bucket:
        expected = f", not {context.trail_bucket}" if context.trail_bucket else ""
        reasons.append(f"the detector's trail now delivers its logs to bucket {bucket}{expected}")
    key = get_ci(params, "kmsKeyId")
    if key is not None:
        key_text = as_text(key) or ""
        known = context.trail_key_arn
        if not key_text:
            reasons.append("the detector's trail log files are no longer encrypted with its KMS key")
        elif not known or key_id_of(key_text) != key_id_of(known):
            reasons.append(f"the detector's trail log files are now encrypted with another key, {key_text}")
    return reasons


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A tamper finding for a stopped, deleted or narrowed trail (or the detector's, moved)."""
    name = as_text(record.get("eventName")) or ""
    params = request_parameters(record)
    trail = as_text(get_ci(params, "name")) or as_text(get_ci(params, "trailName"))
    ours = context.is_trail(trail)
    if name == "StopLogging":
        reasons = [f"logging stopped on trail {trail}"]
    elif name == "DeleteTrail":
        reasons = [f"trail {trail} deleted"]
    elif name == "UpdateTrail":
        reasons = update_trail_reasons(params) + (detector_trail_reasons(params, context) if ours else [])
        if not reasons and as_text(record.get("errorCode")):
            # Like a failed StopLogging: an attempt (make_finding), whatever it meant to change.
            reasons = [f"UpdateTrail on trail {trail} was attempted"]
    else:
        reasons = event_selector_reasons(params)
    if not reasons:
        return []
    if ours:
        reasons.append(f"{trail} is the detector's own trail")
    return [tamper_finding(record, reasons)]

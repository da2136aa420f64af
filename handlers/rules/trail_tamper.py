"""CloudTrail tampering: the detector is blind while the trail is stopped, gone or narrowed.

EventBridge only sees S3 calls while a trail logs management events, so stopping,
deleting or narrowing that trail is the first move of anyone who wants to expose a
bucket unseen.
"""

from __future__ import annotations

from typing import Any

from handlers.finding import Finding
from handlers.records import Record, as_list, as_text, get_ci, request_parameters
from handlers.rules.base import make_finding

EVENT_SOURCE = "cloudtrail.amazonaws.com"
EVENT_NAMES = ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors")


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


def classify(record: Record) -> list[Finding]:
    """A tamper finding for a stopped, deleted or narrowed trail."""
    name = as_text(record.get("eventName")) or ""
    params = request_parameters(record)
    trail = as_text(get_ci(params, "name")) or as_text(get_ci(params, "trailName"))
    if name == "StopLogging":
        reasons = [f"logging stopped on trail {trail}"]
    elif name == "DeleteTrail":
        reasons = [f"trail {trail} deleted"]
    elif name == "UpdateTrail":
        reasons = update_trail_reasons(params)
    else:
        reasons = event_selector_reasons(params)
    if not reasons:
        return []
    return [
        make_finding(
            record,
            verdict="tamper",
            kind="trail",
            route="trail-tamper",
            variant="body",
            scope="trail",
            reasons=reasons,
            bucket=None,
        )
    ]

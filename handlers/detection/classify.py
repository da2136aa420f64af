"""The entry point of detection: one CloudTrail record (or EventBridge event) in, findings out.

Pure: no AWS calls. Never raises on malformed input; a record it cannot read
yields an ``undetermined`` finding when it is one of the watched calls, so an
exposure is never dropped silently.
"""

from __future__ import annotations

import logging
from typing import Any

from handlers.detection.finding import Finding
from handlers.detection.records import Record, as_text, normalize_record
from handlers.detection.rules import RULES_BY_EVENT, WATCHED_EVENT_NAMES
from handlers.detection.rules.base import make_finding
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext

EVENTBRIDGE_DETAIL_TYPE = "AWS API Call via CloudTrail"

log = logging.getLogger(__name__)


def unwrap(event: Any) -> Record | None:
    """The CloudTrail record in ``event``: the event itself, or an EventBridge envelope's detail."""
    if not isinstance(event, dict):
        return None
    if "detail" in event and "detail-type" in event:
        detail = event.get("detail")
        return detail if isinstance(detail, dict) else None
    return event


def is_watched(record: Record) -> bool:
    """Cheap test: is this one of the calls any rule reads?"""
    return as_text(record.get("eventName")) in WATCHED_EVENT_NAMES


def classify(event: Any, context: DetectorContext | None = None) -> list[Finding]:
    """All findings for one record; empty when the call exposes nothing.

    ``context`` names the detector's own trail, log bucket and keys; without it the rules
    that need it (tampering with those resources) find nothing.
    """
    record = unwrap(event)
    if record is None:
        return []
    record = normalize_record(record)  # pipeline-rewritten keys read as CloudTrail's own
    source = as_text(record.get("eventSource")) or ""
    name = as_text(record.get("eventName")) or ""
    findings: list[Finding] = []
    for module in RULES_BY_EVENT.get((source, name), ()):
        try:
            findings.extend(module.classify(record, context or NO_CONTEXT))
        except Exception as exc:  # a rule bug or a shape nobody foresaw must not lose the event
            log.exception("rule %s for %s failed on event %s", module.__name__, name, record.get("eventID"))
            findings.append(
                make_finding(
                    record,
                    verdict="undetermined",
                    kind="unknown",
                    route=getattr(module, "ROUTE", "public-body"),
                    variant="unknown",
                    reasons=[f"the {name} record could not be analysed ({type(exc).__name__}: {exc})"],
                    bucket=None,
                )
            )
    return findings

"""PutBucketOwnershipControls back to ObjectWriter/BucketOwnerPreferred re-enables ACLs.

Object ACLs set before ACLs were disabled take effect again, so this is a weakening.
"""

from __future__ import annotations

from handlers.finding import Finding
from handlers.records import Record, as_list, as_text, deep_get, get_ci, request_parameters
from handlers.rules.base import make_finding
from handlers.rules.detector_context import NO_CONTEXT, DetectorContext

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutBucketOwnershipControls", "DeleteBucketOwnershipControls")
ACL_ENABLING = frozenset({"objectwriter", "bucketownerpreferred"})


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A weakening finding when the new ownership setting honours ACLs."""
    event_name = as_text(record.get("eventName")) or ""
    if event_name == "DeleteBucketOwnershipControls":
        # Without ownership controls a bucket behaves as ObjectWriter: ACLs apply.
        reasons = ["ownership controls deleted: ACLs are honoured again (ObjectWriter)"]
    else:
        controls = get_ci(request_parameters(record), "OwnershipControls")
        settings = [
            as_text(deep_get(rule, "ObjectOwnership")) or "" for rule in as_list(get_ci(controls, "Rule"))
        ]
        if not any(settings):
            # No ownership setting in the record (null or damaged parameters): it may re-enable ACLs.
            return [
                make_finding(
                    record,
                    verdict="undetermined",
                    kind="ownership",
                    route="guard-removal",
                    variant="body",
                    reasons=["the PutBucketOwnershipControls record carries no ObjectOwnership setting"],
                )
            ]
        enabling = [s for s in settings if s.lower() in ACL_ENABLING]
        if not enabling:
            return []
        reasons = [f"object ownership set to {enabling[0]}: ACLs are honoured again"]
    return [
        make_finding(
            record,
            verdict="weakening",
            kind="ownership",
            route="guard-removal",
            variant="body",
            reasons=reasons,
        )
    ]

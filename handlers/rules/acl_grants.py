"""Public ACLs: PutBucketAcl, PutObjectAcl, and CreateBucket/PutObject/CopyObject with an ACL.

The same grant can arrive as an XML body (the console's form) or as headers (the
CLI's and SDKs' form); the finding names the form, which decides the EventBridge
rule variant that routes it.
"""

from __future__ import annotations

from handlers.acl import analyse_acl_request
from handlers.finding import Finding
from handlers.records import Record, as_text, request_parameters
from handlers.rules.base import make_finding
from handlers.rules.detector_context import NO_CONTEXT, DetectorContext

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutBucketAcl", "PutObjectAcl", "CreateBucket", "PutObject", "CopyObject")
OBJECT_LEVEL = frozenset({"PutObjectAcl", "PutObject", "CopyObject"})
# These calls always carry an ACL (body or headers); the others carry one only optionally.
ACL_REQUIRED = frozenset({"PutBucketAcl", "PutObjectAcl"})


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """One public finding per request form that carried a public grant."""
    verdict = analyse_acl_request(request_parameters(record))
    event_name = as_text(record.get("eventName")) or ""
    scope = "object" if event_name in OBJECT_LEVEL else "bucket"
    if not verdict.present_forms and event_name in ACL_REQUIRED:
        # The ACL went missing from the record (null or damaged parameters): say so.
        reason = f"the {event_name} record carries no ACL in any request form; cannot tell if it is public"
        return [
            make_finding(
                record,
                verdict="undetermined",
                kind="acl",
                route="public-body",
                variant="unknown",
                scope=scope,
                reasons=[reason],
            )
        ]
    if not verdict.public:
        return []
    # Body wins when both forms appear: the body is what the console sends.
    variant = "body" if "body" in verdict.forms else "header"
    return [
        make_finding(
            record,
            verdict="public",
            kind="acl",
            route="public-body" if variant == "body" else "public-header",
            variant=variant,
            scope=scope,
            reasons=verdict.reasons,
            access=sorted(verdict.access),
            principals=sorted(verdict.principals),
        )
    ]

"""Public ACLs: PutBucketAcl, PutObjectAcl, and CreateBucket/PutObject/CopyObject/CreateMultipartUpload
with an ACL (a multipart upload's ACL headers come with CreateMultipartUpload and apply on completion).

The same grant can arrive as an XML body (the console's form) or as headers (the
CLI's and SDKs' form); the finding names the form, which decides the EventBridge
rule variant that routes it.
"""

from __future__ import annotations

from typing import Any

from handlers.detection.acl import AclVerdict, analyse_acl_request
from handlers.detection.finding import Finding
from handlers.detection.records import Record, as_text, request_parameters
from handlers.detection.rules.base import make_finding
from handlers.detection.rules.declarations import (
    OBJECT_ACL_OPTION,
    OBJECT_WRITE_OPTION,
    Confirmation,
    DataEvents,
    PatternPart,
    ReplayHint,
)
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext
from handlers.detection.rules.pattern_fields import PUBLIC_GROUP_URI, public_header_parts

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = (
    "PutBucketAcl",
    "PutObjectAcl",
    "CreateBucket",
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
)
# Object calls are data events: recorded only when the trail option that pays for them is on.
DATA_EVENTS = (
    DataEvents("AWS::S3::Object", ("PutObjectAcl",), OBJECT_ACL_OPTION),
    DataEvents("AWS::S3::Object", ("PutObject", "CopyObject", "CreateMultipartUpload"), OBJECT_WRITE_OPTION),
)
OBJECT_LEVEL = frozenset(name for events in DATA_EVENTS for name in events.event_names)
# These calls always carry an ACL (body or headers); the others carry one only optionally.
ACL_REQUIRED = frozenset({"PutBucketAcl", "PutObjectAcl"})
PATTERNS = (
    # Console / XML body: a grant to a public group.
    PatternPart(
        "public-body",
        {
            "requestParameters": {
                "AccessControlPolicy": {
                    "AccessControlList": {"Grant": {"Grantee": {"URI": [PUBLIC_GROUP_URI]}}}
                }
            }
        },
    ),
    # A damaged ACL record: nothing to read, so the classifier reports it undetermined.
    PatternPart("public-body", {"eventName": sorted(ACL_REQUIRED), "requestParameters": [None]}),
    *public_header_parts(),
)
CONFIRMATION: tuple[Confirmation, ...] = ("bucket",)
REPLAY: dict[str, ReplayHint] = {
    "PutBucketAcl": "put-bucket-acl",
    "PutObjectAcl": "put-object-acl",
    "CreateBucket": "create-bucket",
    "PutObject": "put-object",
    "CopyObject": "copy-object",
    # The upload's ACL applies when it completes: the state it leaves is an object with that ACL.
    "CreateMultipartUpload": "put-object",
}


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
    return public_acl_findings(record, verdict, scope=scope)


def public_acl_findings(record: Record, verdict: AclVerdict, **fields: Any) -> list[Finding]:
    """A public finding for an ACL that grants the public access (none otherwise); ``fields``
    place it (make_finding's ``scope``, ``bucket``, ``access_point``)."""
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
            reasons=verdict.reasons,
            access=sorted(verdict.access),
            principals=sorted(verdict.principals),
            **fields,
        )
    ]

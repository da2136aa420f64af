"""PutBucketLogging with target grants to AllUsers/AuthenticatedUsers.

S3 writes access-log objects into the target bucket with these grants, so every
log object (bucket names, keys, requester IPs) becomes publicly readable.
"""

from __future__ import annotations

from handlers.detection.acl import AclVerdict, add_public_grants
from handlers.detection.finding import Finding
from handlers.detection.records import Record, as_text, deep_get, get_ci, request_parameters
from handlers.detection.rules.base import make_finding
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext
from handlers.detection.rules.pattern_fields import PUBLIC_GROUP_URI

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutBucketLogging",)
PATTERNS = (
    PatternPart(
        "public-body",
        {
            "requestParameters": {
                "BucketLoggingStatus": {
                    "LoggingEnabled": {"TargetGrants": {"Grant": {"Grantee": {"URI": [PUBLIC_GROUP_URI]}}}}
                }
            }
        },
    ),
)
CONFIRMATION: tuple[Confirmation, ...] = ("bucket",)  # the log target bucket's guards decide
REPLAY: dict[str, ReplayHint] = {"PutBucketLogging": "put-bucket-logging"}


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A public finding when the logging configuration grants a public group access to the logs."""
    enabled = deep_get(get_ci(request_parameters(record), "BucketLoggingStatus"), "LoggingEnabled")
    if not isinstance(enabled, dict):
        return []
    verdict = AclVerdict()
    add_public_grants(deep_get(get_ci(enabled, "TargetGrants"), "Grant"), verdict, "logging target grant")
    if not verdict.public:
        return []
    target = as_text(get_ci(enabled, "TargetBucket"))
    return [
        make_finding(
            record,
            verdict="public",
            kind="acl",
            route="public-body",
            variant="body",
            reasons=[*verdict.reasons, f"access logs delivered to {target} carry these grants"],
            access=sorted(verdict.access),
            principals=sorted(verdict.principals),
            bucket=target,
        )
    ]

"""PutBucketPolicy: a bucket policy that lets the public in (AWS's "meaning of public")."""

from __future__ import annotations

from typing import Any

from handlers.detection.finding import Finding
from handlers.detection.policy import PolicyUnreadable, analyse_policy
from handlers.detection.records import Record, get_ci, request_parameters
from handlers.detection.rules.base import make_finding
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext
from handlers.detection.rules.pattern_fields import PUBLIC_STATEMENT_FIELDS

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutBucketPolicy",)
PATTERNS = (
    PatternPart(
        "public-body",
        {"requestParameters": {"bucketPolicy": {"Statement": {"$or": PUBLIC_STATEMENT_FIELDS}}}},
    ),
    # Unreadable policy (a JSON string, missing, null or truncated): let the classifier say so.
    PatternPart(
        "public-body",
        {
            "eventName": ["PutBucketPolicy"],
            "requestParameters": {"bucketPolicy": {"Statement": {"Effect": [{"exists": False}]}}},
        },
    ),
)
CONFIRMATION: tuple[Confirmation, ...] = ("bucket",)
REPLAY: dict[str, ReplayHint] = {"PutBucketPolicy": "put-bucket-policy"}


def policy_findings(record: Record, document: Any, subject: str, **fields: Any) -> list[Finding]:
    """Findings for a resource policy put by ``record``: public, undetermined, or none."""
    try:
        verdict = analyse_policy(document)
    except PolicyUnreadable as exc:
        reason = f"cannot decide whether the {subject} is public: {exc}"
        return [make_finding(record, verdict="undetermined", reasons=[reason], **fields)]
    if not verdict.public:
        return []
    return [
        make_finding(
            record,
            verdict="public",
            reasons=verdict.reasons,
            access=sorted(verdict.access),
            principals=sorted(verdict.principals),
            **fields,
        )
    ]


def access_point_policy_findings(
    record: Record, document: Any, label: str, name: str | None, scope: str
) -> list[Finding]:
    """Findings for a policy put on an access point of any kind (``label``: what the reason calls it)."""
    return policy_findings(
        record,
        document,
        f"policy of {label} {name!r}",
        kind="access-point-policy",
        route="public-body",
        variant="body",
        scope=scope,
        access_point=name,
        bucket=None,
    )


def put_policy_document(params: Any, request_key: str) -> Any:
    """The ``policy`` parameter, or the ``Policy`` inside the S3 Control request body ``request_key``."""
    document = get_ci(params, "policy")
    request = get_ci(params, request_key)
    if document is None and isinstance(request, dict):
        document = get_ci(request, "Policy")
    return document


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A public finding for a public policy, an undetermined one for an unreadable policy."""
    params = request_parameters(record)
    document = get_ci(params, "bucketPolicy")
    if document in (None, "", {}):
        document = get_ci(params, "policy")  # some tools record the raw body here
    return policy_findings(
        record, document, "bucket policy", kind="policy", route="public-body", variant="body"
    )

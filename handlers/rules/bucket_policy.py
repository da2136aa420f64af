"""PutBucketPolicy: a bucket policy that lets the public in (AWS's "meaning of public")."""

from __future__ import annotations

from typing import Any

from handlers.finding import Finding
from handlers.policy import PolicyUnreadable, analyse_policy
from handlers.records import Record, get_ci, request_parameters
from handlers.rules.base import make_finding
from handlers.rules.detector_context import NO_CONTEXT, DetectorContext

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutBucketPolicy",)


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


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A public finding for a public policy, an undetermined one for an unreadable policy."""
    params = request_parameters(record)
    document = get_ci(params, "bucketPolicy")
    if document in (None, "", {}):
        document = get_ci(params, "policy")  # some tools record the raw body here
    return policy_findings(
        record, document, "bucket policy", kind="policy", route="public-body", variant="body"
    )

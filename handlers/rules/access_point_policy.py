"""PutAccessPointPolicy: an access point policy that lets the public in.

No real CloudTrail sample was available; the shape follows the S3 Control API
(``name`` plus a ``policy`` document, as a string or object) and reads the
alternatives leniently. An access point's policy is public by the same test as a
bucket policy.
"""

from __future__ import annotations

from handlers.finding import Finding
from handlers.records import Record, as_text, get_ci, request_parameters
from handlers.rules.bucket_policy import policy_findings
from handlers.rules.detector_context import NO_CONTEXT, DetectorContext

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutAccessPointPolicy",)


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A public finding for a public access point policy; undetermined if unreadable."""
    params = request_parameters(record)
    document = get_ci(params, "policy")
    request = get_ci(params, "PutAccessPointPolicyRequest")
    if document is None and isinstance(request, dict):
        document = get_ci(request, "Policy")
    name = as_text(get_ci(params, "name")) or as_text(get_ci(params, "accessPointName"))
    return policy_findings(
        record,
        document,
        f"policy of access point {name!r}",
        kind="access-point-policy",
        route="public-body",
        variant="body",
        scope="access-point",
        access_point=name,
        bucket=None,
    )

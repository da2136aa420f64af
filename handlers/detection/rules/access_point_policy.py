"""PutAccessPointPolicy: an access point policy that lets the public in.

No real CloudTrail sample was available; the shape follows the S3 Control API
(``name`` plus a ``policy`` document, as a string or object) and reads the
alternatives leniently. An access point's policy is public by the same test as a
bucket policy.
"""

from __future__ import annotations

from handlers.detection.finding import Finding
from handlers.detection.records import Record, as_text, get_ci, request_parameters
from handlers.detection.rules.bucket_policy import access_point_policy_findings, put_policy_document
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutAccessPointPolicy",)
TARGETS = {"access-point": "access point"}
# The policy arrives as a JSON string, which a pattern cannot look inside: route every put.
PATTERNS = (PatternPart("public-body", {"eventName": list(EVENT_NAMES)}),)
CONFIRMATION: tuple[Confirmation, ...] = ("access-point",)
REPLAY: dict[str, ReplayHint] = {}  # moto holds no access point policies; the answers are stubbed


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A public finding for a public access point policy; undetermined if unreadable."""
    params = request_parameters(record)
    document = put_policy_document(params, "PutAccessPointPolicyRequest")
    name = as_text(get_ci(params, "name")) or as_text(get_ci(params, "accessPointName"))
    return access_point_policy_findings(record, document, "access point", name, "access-point")

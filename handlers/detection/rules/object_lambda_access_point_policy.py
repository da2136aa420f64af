"""PutAccessPointPolicyForObjectLambda: an Object Lambda Access Point policy that lets the public in.

No real CloudTrail sample was available. The request shape is the S3 Control API reference's
(``PUT /v20180820/accesspointforobjectlambda/{name}/policy`` with a
``PutAccessPointPolicyForObjectLambdaRequest`` body holding ``Policy``, a JSON string); the
record is read leniently, like :mod:`handlers.detection.rules.access_point_policy`. The response function
cannot read or change such a policy: it alerts only (as for access points, account-level
Block Public Access is the fix it names).
"""

from __future__ import annotations

from handlers.detection.finding import Finding
from handlers.detection.records import Record, as_text, get_ci, request_parameters
from handlers.detection.rules.base import resource_name
from handlers.detection.rules.bucket_policy import access_point_policy_findings, put_policy_document
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutAccessPointPolicyForObjectLambda",)
SCOPE = "object-lambda-access-point"
TARGETS = {SCOPE: "Object Lambda Access Point"}
# The policy is a JSON string, which a pattern cannot look inside: route every put.
PATTERNS = (PatternPart("public-body", {"eventName": list(EVENT_NAMES)}),)
CONFIRMATION: tuple[Confirmation, ...] = ("alert-only",)
REPLAY: dict[str, ReplayHint] = {}


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A public finding for a public Object Lambda Access Point policy; undetermined if unreadable."""
    params = request_parameters(record)
    document = put_policy_document(params, "PutAccessPointPolicyForObjectLambdaRequest")
    name = as_text(get_ci(params, "name")) or resource_name(record, "AWS::S3ObjectLambda::AccessPoint")
    return access_point_policy_findings(record, document, TARGETS[SCOPE], name, SCOPE)

"""PutMultiRegionAccessPointPolicy: a Multi-Region Access Point policy that lets the public in.

No real CloudTrail sample was available. The request shape is the S3 Control API reference's
(``POST /v20180820/async-requests/mrap/put-policy`` with a ``PutMultiRegionAccessPointPolicyRequest``
body: ``ClientToken`` and ``Details`` holding ``Name`` and ``Policy``, a JSON string). AWS always
routes the call to US West (Oregon), so its event arrives in us-west-2: the detector sees it
only when us-west-2 is a watched region. The response function alerts only.
"""

from __future__ import annotations

from handlers.detection.finding import Finding
from handlers.detection.records import Record, as_text, deep_get, get_ci, request_parameters
from handlers.detection.rules.base import resource_name
from handlers.detection.rules.bucket_policy import access_point_policy_findings
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutMultiRegionAccessPointPolicy",)
SCOPE = "multi-region-access-point"
TARGETS = {SCOPE: "Multi-Region Access Point"}
# The policy is a JSON string, which a pattern cannot look inside: route every put.
PATTERNS = (PatternPart("public-body", {"eventName": list(EVENT_NAMES)}),)
CONFIRMATION: tuple[Confirmation, ...] = ("alert-only",)
RECORDED_IN = ("us-west-2",)  # AWS routes every Multi-Region Access Point control call to Oregon
REPLAY: dict[str, ReplayHint] = {}


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A public finding for a public Multi-Region Access Point policy; undetermined if unreadable."""
    params = request_parameters(record)
    details = deep_get(get_ci(params, "PutMultiRegionAccessPointPolicyRequest"), "Details")
    if not isinstance(details, dict):
        details = get_ci(params, "Details")  # some tools may flatten the body
    document = get_ci(details, "Policy")
    name = as_text(get_ci(details, "Name")) or resource_name(record, "AWS::S3::MultiRegionAccessPoint")
    return access_point_policy_findings(record, document, TARGETS[SCOPE], name, SCOPE)

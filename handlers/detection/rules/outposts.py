"""S3 on Outposts (``eventSource: s3-outposts.amazonaws.com``): a public bucket policy or object ACL.

S3 on Outposts always enforces Block Public Access (S3 User Guide, "Using IAM with S3 on
Outposts"), so AWS refuses these requests and the usual record is a failed call: an attempt,
still worth a low alert (someone tried). A record of one that succeeded says AWS let a public
grant through: it is reported public, with that said in the reasons.

No real CloudTrail sample was available. Shapes, read leniently:
- ``PutBucketPolicy`` (S3 Control API reference, Outposts): the bucket as an ARN
  (``arn:aws:s3-outposts:<region>:<account>:outpost/<id>/bucket/<name>``) in ``bucket`` or
  ``bucketName``, the policy in ``bucketPolicy`` or ``policy`` (object or JSON string), as S3 records it;
- ``PutObject`` (a data event, resource type ``AWS::S3Outposts::Object``): the ACL headers as S3
  records them (``x-amz-acl``, ``x-amz-grant-*``); the bucket's Outposts ARN in ``resources``.

The response function cannot read or change Outposts resources: it alerts only.
"""

from __future__ import annotations

from typing import TypedDict

from handlers.detection.acl import analyse_acl_request
from handlers.detection.finding import Finding
from handlers.detection.records import Record, as_list, as_text, deep_get, get_ci, request_parameters
from handlers.detection.rules import bucket_policy
from handlers.detection.rules.acl_grants import public_acl_findings
from handlers.detection.rules.declarations import (
    OBJECT_WRITE_OPTION,
    Confirmation,
    DataEvents,
    ReplayHint,
)
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext
from handlers.detection.rules.pattern_fields import public_header_parts

EVENT_SOURCE = "s3-outposts.amazonaws.com"
EVENT_NAMES = ("PutBucketPolicy", "PutObject")
DATA_EVENTS = (DataEvents("AWS::S3Outposts::Object", ("PutObject",), OBJECT_WRITE_OPTION),)
SCOPE = "outposts"
TARGETS = {SCOPE: "Outposts resource"}
# The same pattern pieces as S3's policies and ACL headers: each deployed rule then lists both sources.
PATTERNS = (*bucket_policy.PATTERNS, *public_header_parts())
CONFIRMATION: tuple[Confirmation, ...] = ("alert-only",)
REPLAY: dict[str, ReplayHint] = {}  # moto has no S3 on Outposts
ENFORCED = "S3 on Outposts always enforces Block Public Access, so AWS should have refused this call"


def target(record: Record) -> str | None:
    """The Outposts bucket or access point the call addressed: its ARN where the record gives one
    (``bucket`` or ``resources``), else the name in ``bucketName``."""
    params = request_parameters(record)
    named = [as_text(get_ci(params, key)) for key in ("bucket", "bucketName")]
    arns = [as_text(deep_get(resource, "ARN")) for resource in as_list(record.get("resources"))]
    outposts_arns = [value for value in (*named, *reversed(arns)) if value and ":s3-outposts:" in value]
    return next(iter(outposts_arns), None) or next((value for value in named if value), None)


class _Where(TypedDict):
    """The finding fields that place an Outposts call (make_finding's keywords)."""

    scope: str
    access_point: str | None
    bucket: None


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A public finding for a public policy or ACL (an attempt when, as expected, the call failed)."""
    name = as_text(record.get("eventName")) or ""
    where = target(record)
    fields = _Where(scope=SCOPE, access_point=where, bucket=None)
    params = request_parameters(record)
    if name == "PutBucketPolicy":
        document = get_ci(params, "bucketPolicy")
        if document in (None, "", {}):
            document = get_ci(params, "policy")
        found = bucket_policy.policy_findings(
            record,
            document,
            "Outposts bucket policy",
            kind="policy",
            route="public-body",
            variant="body",
            **fields,
        )
    else:
        found = public_acl_findings(record, analyse_acl_request(params), **fields)
    for finding in found:
        if finding["verdict"] == "public":
            finding["reasons"].append(ENFORCED)
    return found

"""Object ownership that honours ACLs: a weakening, since object ACLs then take effect.

- ``PutBucketOwnershipControls`` back to ObjectWriter/BucketOwnerPreferred, or
  ``DeleteBucketOwnershipControls``: object ACLs set before ACLs were disabled take effect again.
- ``CreateBucket`` with ``x-amz-object-ownership: ObjectWriter`` (or BucketOwnerPreferred): new
  buckets have ACLs disabled (BucketOwnerEnforced) since April 2023, so asking for ACLs is a guard
  removed at birth. When the same call also grants a public ACL, ``acl_grants`` reports it as
  public and this rule stays silent (one alert for one call).
"""

from __future__ import annotations

from handlers.detection.acl import analyse_acl_request
from handlers.detection.finding import Finding
from handlers.detection.records import Record, as_list, as_text, deep_get, get_ci, request_parameters
from handlers.detection.rules.base import make_finding
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutBucketOwnershipControls", "DeleteBucketOwnershipControls", "CreateBucket")
ACL_ENABLING = frozenset({"objectwriter", "bucketownerpreferred"})
ACLS_DISABLED = "BucketOwnerEnforced"
OWNERSHIP_HEADER = "x-amz-object-ownership"
PATTERNS = (
    PatternPart("guard-removal", {"eventName": ["DeleteBucketOwnershipControls"]}),
    PatternPart(
        "guard-removal",
        {
            "eventName": ["PutBucketOwnershipControls"],
            "requestParameters": {
                "OwnershipControls": {
                    "Rule": {"ObjectOwnership": [{"anything-but": ACLS_DISABLED}, {"exists": False}]}
                }
            },
        },
    ),
    # No header means BucketOwnerEnforced (the default since 2023): not routed.
    PatternPart(
        "guard-removal",
        {
            "eventName": ["CreateBucket"],
            "requestParameters": {OWNERSHIP_HEADER: [{"anything-but": ACLS_DISABLED}]},
        },
    ),
)
CONFIRMATION: tuple[Confirmation, ...] = ("bucket",)
REPLAY: dict[str, ReplayHint] = {
    "PutBucketOwnershipControls": "put-bucket-ownership-controls",
    "DeleteBucketOwnershipControls": "delete-bucket-ownership-controls",
    "CreateBucket": "create-bucket",
}


def _weakening(record: Record, reasons: list[str]) -> list[Finding]:
    return [
        make_finding(
            record,
            verdict="weakening",
            kind="ownership",
            route="guard-removal",
            variant="body",
            reasons=reasons,
        )
    ]


def _create_bucket(record: Record) -> list[Finding]:
    params = request_parameters(record)
    settings = [as_text(value) or "" for value in as_list(get_ci(params, OWNERSHIP_HEADER))]
    enabling = [s for s in settings if s.strip().lower() in ACL_ENABLING]
    if not enabling or analyse_acl_request(params).public:
        return []  # ACLs stay disabled, or acl_grants reports the public grant itself
    return _weakening(record, [f"bucket created with object ownership {enabling[0]}: ACLs are honoured"])


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A weakening finding when the new ownership setting honours ACLs."""
    event_name = as_text(record.get("eventName")) or ""
    if event_name == "CreateBucket":
        return _create_bucket(record)
    if event_name == "DeleteBucketOwnershipControls":
        # Without ownership controls a bucket behaves as ObjectWriter: ACLs apply.
        return _weakening(record, ["ownership controls deleted: ACLs are honoured again (ObjectWriter)"])
    controls = get_ci(request_parameters(record), "OwnershipControls")
    settings = [
        as_text(deep_get(rule, "ObjectOwnership")) or "" for rule in as_list(get_ci(controls, "Rule"))
    ]
    if not any(settings):
        # No ownership setting in the record (null or damaged parameters): it may re-enable ACLs.
        return [
            make_finding(
                record,
                verdict="undetermined",
                kind="ownership",
                route="guard-removal",
                variant="body",
                reasons=["the PutBucketOwnershipControls record carries no ObjectOwnership setting"],
            )
        ]
    enabling = [s for s in settings if s.lower() in ACL_ENABLING]
    if not enabling:
        return []
    return _weakening(record, [f"object ownership set to {enabling[0]}: ACLs are honoured again"])

"""The shape of one detection: what a CloudTrail record did to a bucket's exposure.

A finding is a plain dict (a ``TypedDict``) so it serialises to one JSON line
without conversion and the Lambda, the ``detect`` command and the tests share it.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# What the call did, if it succeeded.
#   public       - it made the bucket, its objects or an access point publicly accessible
#   weakening    - it removed a guard (Block Public Access, ACLs disabled) so that a
#                  public policy or ACL already there, or set later, takes effect
#   attempt      - it would have been public or weakening, but the call failed
#   undetermined - it may expose, but the record does not say enough to decide
#   tamper       - it blinded or weakened the audit trail the detector relies on
#   approval     - it set or removed the tag that approves a bucket's public access (an audit
#                  alert, low: whoever can tag a bucket can exempt it from remediation)
Verdict = Literal["public", "weakening", "attempt", "undetermined", "tamper", "approval"]

# Which deployed EventBridge rule is expected to route the record (issue: infrastructure). The one
# definition of the routes: handlers.detection.event_patterns deploys one rule per route, the dataset checks
# its labels against it, and each rule module's pattern pieces name one of these.
#   public-body   - console / XML-body variant: ACL bodies and policy documents
#   public-header - CLI / header variant: canned x-amz-acl and x-amz-grant-* headers
#   guard-removal - Block Public Access and ownership-control changes, approval tag set or removed
#   trail-tamper  - CloudTrail being stopped, deleted or narrowed
Route = Literal["public-body", "public-header", "guard-removal", "trail-tamper"]

Severity = Literal["critical", "high", "medium", "low", "info"]

SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")  # least severe first
SEVERITY_ORDER: dict[str, int] = {level: order for order, level in enumerate(SEVERITIES)}


class Finding(TypedDict):
    eventID: str | None
    eventName: str
    eventTime: str | None
    account: str | None
    region: str | None
    bucket: str | None
    key: str | None
    accessPoint: str | None  # the target when it is not a bucket: an access point, an Outposts ARN, ...
    public: bool
    verdict: Verdict
    kind: str  # policy | acl | block-public-access | ownership | access-point-policy | trail | approval
    scope: str  # object | bucket | account | trail, or a target rules declare (rules.TARGET_LABELS)
    access: list[str]  # read | write | acl-read | acl-write | policy-write | all
    principals: list[str]  # who got in: "*", AllUsers, AuthenticatedUsers, ...
    variant: str  # request form: body | header
    route: Route
    client: str  # console | cli | sdk | terraform | aws-service | unknown
    actor: str | None
    sourceIPAddress: str | None
    userAgent: str | None
    severity: Severity
    reasons: list[str]
    error: str | None
    errorMessage: str | None
    # How the caller signed in (records.session_context): MFA, session issuer; absent for the sweep.
    session: NotRequired[dict[str, Any]]


def max_severity(*levels: str) -> Severity:
    """The most severe of the given levels; an unknown level counts as ``info``."""
    return SEVERITIES[max((SEVERITY_ORDER.get(level, 0) for level in levels), default=0)]

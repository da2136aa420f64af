"""The EventBridge rules that route CloudTrail records to the response function, as pure data.

One pattern per route (see ``handlers.finding.Route``). The stack deploys exactly these
patterns and the routing test runs the labelled dataset through them, so this module is
the single source of truth for "which calls reach the function".

Design choices:
- Routing is a cheap, fail-open pre-filter; the classifier decides. A pattern may let a
  harmless call through (a Deny-only ``Principal: "*"`` policy), but it must never drop
  one the classifier would flag. Where the record may be damaged (null or truncated
  ``requestParameters``, a policy recorded as a JSON string) the call is routed.
- Failed calls (``errorCode`` present) are routed too: attempts are reported.
- Arrays of objects (``Statement[]``, ``Grant[]``) are flattened by EventBridge and
  fields of one element are not correlated with each other, so every condition that
  reaches into an array tests one field only.
- Values differ between event versions (``"x-amz-acl": ["public-read"]`` in 1.05,
  a string later); EventBridge matches either, since a list matches if any item does.
- Every pattern stays under EventBridge's default 2,048-character limit (tested).
- Two patterns depend on the deployment (:func:`rules_for`). Trail tamper: besides any
  trail being stopped, deleted or narrowed (static), it matches calls on the detector's
  own trail bucket and keys (:func:`trail_tamper_pattern`). Guard removal: it matches a
  PutBucketTagging naming the configured approval tag (:func:`guard_removal_pattern`).

No AWS or cdktf import: the stack, the tests and the Lambda-side replay all read this.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from handlers.finding import Route
from handlers.rules import trail_bucket, trail_key
from handlers.rules.detector_context import DEFAULT_APPROVAL_TAG, DetectorContext, key_id_of

DETAIL_TYPE = "AWS API Call via CloudTrail"
MAX_PATTERN_CHARS = 2048  # EventBridge's default limit on an event pattern


def pattern_json(pattern: dict[str, Any]) -> str:
    """Compact JSON, as EventBridge stores it (the length EventBridge's limit applies to)."""
    return json.dumps(pattern, separators=(",", ":"))


# CloudTrail eventSource -> EventBridge "source" of the event it becomes.
EVENTBRIDGE_SOURCES: dict[str, str] = {
    "s3.amazonaws.com": "aws.s3",
    "cloudtrail.amazonaws.com": "aws.cloudtrail",
    "kms.amazonaws.com": "aws.kms",
}

# Only AllUsers and AuthenticatedUsers live under groups/global/ (LogDelivery is groups/s3/).
_PUBLIC_GROUP_URI = {"wildcard": "*/groups/global/*"}
_PUBLIC_CANNED_ACLS = ["public-read", "public-read-write", "authenticated-read"]
_GRANT_HEADERS = (
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
)
_EXISTS = {"exists": True}

# Principals that can make a policy statement public (a superset of handlers.policy's test):
# "*" or any bare string, {"AWS": "*"}, a non-ARN value, a wildcard account, Federated,
# "*" for any other principal kind, and NotPrincipal in any form.
_PUBLIC_STATEMENT_FIELDS: list[dict[str, Any]] = [
    {"Principal": [_EXISTS]},  # a string ("*") or list principal
    {
        "Principal": {
            "AWS": [
                {"anything-but": {"prefix": "arn:"}},  # "*", bare account ids, anything odd
                {"prefix": "arn:aws:iam::*"},
                {"prefix": "arn:aws:sts::*"},
                {"prefix": "arn:aws-cn:iam::*"},
                {"prefix": "arn:aws-us-gov:iam::*"},
                {"wildcard": "arn:*:*::*?*"},  # '?' in the account field
            ]
        }
    },
    {"Principal": {"Federated": [_EXISTS]}},
    {"Principal": {"Service": ["*"]}},
    {"Principal": {"CanonicalUser": ["*"]}},
    {"NotPrincipal": [_EXISTS]},
    {"NotPrincipal": {"AWS": [_EXISTS]}},
    {"NotPrincipal": {"Service": [_EXISTS]}},
]


def _s3_rule(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": ["aws.s3"],
        "detail-type": [DETAIL_TYPE],
        "detail": {"eventSource": ["s3.amazonaws.com"], **detail},
    }


# Console / XML-body variant: ACL bodies granting to the public groups, and policy documents.
PUBLIC_BODY: dict[str, Any] = _s3_rule(
    {
        "$or": [
            {
                "requestParameters": {
                    "AccessControlPolicy": {
                        "AccessControlList": {"Grant": {"Grantee": {"URI": [_PUBLIC_GROUP_URI]}}}
                    }
                }
            },
            # PutBucketLogging target grants make every access-log object public.
            {
                "requestParameters": {
                    "BucketLoggingStatus": {
                        "LoggingEnabled": {
                            "TargetGrants": {"Grant": {"Grantee": {"URI": [_PUBLIC_GROUP_URI]}}}
                        }
                    }
                }
            },
            {"requestParameters": {"bucketPolicy": {"Statement": {"$or": _PUBLIC_STATEMENT_FIELDS}}}},
            # Unreadable policy (a JSON string, missing, null or truncated): let the classifier say so.
            {
                "eventName": ["PutBucketPolicy"],
                "requestParameters": {"bucketPolicy": {"Statement": {"Effect": [{"exists": False}]}}},
            },
            # Access point policies arrive as a JSON string, which a pattern cannot look inside.
            {"eventName": ["PutAccessPointPolicy"]},
            # A damaged ACL record: nothing to read, so the classifier reports it undetermined.
            {"eventName": ["PutBucketAcl", "PutObjectAcl"], "requestParameters": [None]},
        ]
    }
)

# CLI / header variant: canned x-amz-acl values and x-amz-grant-* headers naming the public groups,
# on any call that takes them (PutBucketAcl, PutObjectAcl, CreateBucket, PutObject, CopyObject).
PUBLIC_HEADER: dict[str, Any] = _s3_rule(
    {
        "$or": [
            {"requestParameters": {"x-amz-acl": _PUBLIC_CANNED_ACLS}},
            *({"requestParameters": {"accessControlList": {h: [_PUBLIC_GROUP_URI]}}} for h in _GRANT_HEADERS),
            # Some records carry the grant headers directly in requestParameters.
            *({"requestParameters": {h: [_PUBLIC_GROUP_URI]}} for h in _GRANT_HEADERS),
        ]
    }
)

_PUT_BPA = ["PutBucketPublicAccessBlock", "PutAccountPublicAccessBlock"]
_BPA_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")

# Tagging calls that change the public-access approval (handlers.rules.approval_tag): any bucket
# tagged <approval tag>=<date> is exempt from remediation, so setting it removes our guard too.
_TAGGING_DELETE = "DeleteBucketTagging"
_TAGGING_PUT = "PutBucketTagging"


def guard_removal_pattern(approval_tag: str = DEFAULT_APPROVAL_TAG) -> dict[str, Any]:
    """Block Public Access switched off or deleted (bucket or account), ownership controls that
    re-enable ACLs, and the approval tag ``approval_tag`` set or every bucket tag deleted.

    An all-true BPA put (our own remediation emits one) is not routed, nor is a tagging call that
    does not name the approval tag (the everyday kind). Should a key make the pattern exceed the
    size limit, every PutBucketTagging is routed instead (fail open: the classifier decides).
    """
    tagging: dict[str, Any] = {
        "eventName": [_TAGGING_PUT],
        "requestParameters": {"Tagging": {"TagSet": {"Tag": {"Key": [approval_tag]}}}},
    }
    pattern = _guard_removal(tagging)
    if len(pattern_json(pattern)) > MAX_PATTERN_CHARS:
        pattern = _guard_removal({"eventName": [_TAGGING_PUT]})
    return pattern


def _guard_removal(tagging: dict[str, Any]) -> dict[str, Any]:
    return _s3_rule(
        {
            "$or": [
                {
                    "eventName": [
                        "DeleteBucketPublicAccessBlock",
                        "DeleteAccountPublicAccessBlock",
                        "DeleteBucketOwnershipControls",
                        _TAGGING_DELETE,
                    ]
                },
                # A flag that is false, "false" (old shapes) or omitted (omitted means off).
                *(
                    {
                        "eventName": _PUT_BPA,
                        "requestParameters": {
                            "PublicAccessBlockConfiguration": {flag: [False, "false", {"exists": False}]}
                        },
                    }
                    for flag in _BPA_FLAGS
                ),
                {
                    "eventName": ["PutBucketOwnershipControls"],
                    "requestParameters": {
                        "OwnershipControls": {
                            "Rule": {
                                "ObjectOwnership": [
                                    {"anything-but": "BucketOwnerEnforced"},
                                    {"exists": False},
                                ]
                            }
                        }
                    },
                },
                # The approval tag set (a Tag list is flattened: any element's Key matches); failed
                # calls carry their parameters too, so attempts are routed.
                tagging,
            ]
        }
    )


# Trail tamper: the trail the detector depends on stopped, deleted or narrowed.
TRAIL_TAMPER: dict[str, Any] = {
    "source": ["aws.cloudtrail"],
    "detail-type": [DETAIL_TYPE],
    "detail": {
        "eventSource": ["cloudtrail.amazonaws.com"],
        "eventName": ["StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"],
    },
}


def trail_tamper_pattern(context: DetectorContext, key_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The trail-tamper pattern for one deployment: :data:`TRAIL_TAMPER` plus the detector's resources.

    Adds the calls ``handlers.rules.trail_bucket`` reads on the context's trail bucket and
    those ``handlers.rules.trail_key`` reads on its keys. A request names a key by id or ARN
    and the record's ``resources`` carry the ARN, so both are matched. ``key_ids`` overrides
    the ids taken from the ARNs (the stack passes Terraform expressions when the ARN is not
    known at synth). Without bucket or keys the pattern is :data:`TRAIL_TAMPER` itself.
    """
    arns = list(context.key_arns)
    ids = list(key_ids) if key_ids is not None else [key_id_of(arn) for arn in arns]
    alternatives: list[dict[str, Any]] = []
    if context.trail_bucket:
        alternatives.append(
            {
                "eventSource": [trail_bucket.EVENT_SOURCE],
                "eventName": list(trail_bucket.EVENT_NAMES),
                "requestParameters": {"bucketName": [context.trail_bucket]},
            }
        )
    if arns:
        kms = {"eventSource": [trail_key.EVENT_SOURCE], "eventName": list(trail_key.EVENT_NAMES)}
        alternatives.append({**kms, "resources": {"ARN": arns}})
        alternatives.append({**kms, "requestParameters": {"keyId": list(dict.fromkeys(arns + ids))}})
    if not alternatives:
        return TRAIL_TAMPER
    return {
        "source": [
            *TRAIL_TAMPER["source"],
            *([EVENTBRIDGE_SOURCES[trail_bucket.EVENT_SOURCE]] if context.trail_bucket else []),
            *([EVENTBRIDGE_SOURCES[trail_key.EVENT_SOURCE]] if arns else []),
        ],
        "detail-type": [DETAIL_TYPE],
        "detail": {"$or": [TRAIL_TAMPER["detail"], *alternatives]},
    }


@dataclass(frozen=True)
class RuleSpec:
    """One EventBridge rule: its route (also its name suffix), what it is for, and its pattern."""

    route: Route
    description: str
    pattern: dict[str, Any]

    def pattern_json(self) -> str:
        """The pattern as deployed: compact JSON, keys in declaration order."""
        return pattern_json(self.pattern)


# The guard-removal pattern for the default approval tag (rules_for swaps in a configured one).
GUARD_REMOVAL: dict[str, Any] = guard_removal_pattern()
GUARD_REMOVAL_DESCRIPTION = (
    "Block Public Access off or deleted, ACL-enabling ownership controls; "
    "approval tag set or bucket tags deleted"
)

RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "public-body",
        "S3 ACL bodies and log target grants to the public groups; bucket and access point policies",
        PUBLIC_BODY,
    ),
    RuleSpec(
        "public-header",
        "S3 canned x-amz-acl and x-amz-grant-* headers naming the public groups",
        PUBLIC_HEADER,
    ),
    RuleSpec("guard-removal", GUARD_REMOVAL_DESCRIPTION, GUARD_REMOVAL),
    RuleSpec("trail-tamper", "CloudTrail stopped, deleted or narrowed", TRAIL_TAMPER),
)
RULES_BY_ROUTE: dict[str, RuleSpec] = {rule.route: rule for rule in RULES}


def rules_for(context: DetectorContext, key_ids: Sequence[str] | None = None) -> tuple[RuleSpec, ...]:
    """The rules one deployment gets: :data:`RULES` with the trail-tamper pattern for ``context``
    and the guard-removal pattern for its approval tag (both as in :data:`RULES` by default)."""
    tamper = trail_tamper_pattern(context, key_ids)
    guard = (
        GUARD_REMOVAL
        if context.approval_tag == DEFAULT_APPROVAL_TAG
        else guard_removal_pattern(context.approval_tag)
    )

    def for_context(rule: RuleSpec) -> RuleSpec:
        if rule.route == "trail-tamper" and tamper is not TRAIL_TAMPER:
            return replace(
                rule,
                pattern=tamper,
                description="CloudTrail stopped, deleted or narrowed; "
                "the detector's trail bucket or key altered",
            )
        if rule.route == "guard-removal" and guard is not GUARD_REMOVAL:
            return replace(rule, pattern=guard)
        return rule

    return tuple(for_context(rule) for rule in RULES)


def envelope(record: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """The EventBridge event that CloudTrail ``record`` becomes on the default bus."""
    event_source = str(record.get("eventSource") or "")
    source = EVENTBRIDGE_SOURCES.get(event_source, "aws." + event_source.split(".", 1)[0])
    return {
        "version": "0",
        "id": event_id or str(record.get("eventID") or "00000000-0000-0000-0000-000000000000"),
        "detail-type": DETAIL_TYPE,
        "source": source,
        "account": str(record.get("recipientAccountId") or "000000000000"),
        "time": str(record.get("eventTime") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
        "region": str(record.get("awsRegion") or "us-east-1"),
        "resources": [],
        "detail": record,
    }

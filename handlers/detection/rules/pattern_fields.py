"""EventBridge pattern pieces several rules share: public grantees in ACLs and principals in policies.

Routing is a cheap, fail-open pre-filter (see :mod:`handlers.detection.event_patterns`): each piece may
let a harmless call through but must never drop one the classifier would flag.
"""

from __future__ import annotations

from typing import Any

from handlers.detection.acl import CANNED_PUBLIC, GRANT_HEADERS, PUBLIC_GROUP_PATH
from handlers.detection.rules.declarations import PatternPart

EXISTS: dict[str, Any] = {"exists": True}
# Matches AllUsers and AuthenticatedUsers, whichever scheme or spelling the URI has.
PUBLIC_GROUP_URI: dict[str, Any] = {"wildcard": f"*{PUBLIC_GROUP_PATH}*"}

# Principals that can make a policy statement public (a superset of handlers.detection.policy's test):
# "*" or any bare string, {"AWS": "*"}, a non-ARN value, a wildcard account, Federated,
# "*" for any other principal kind, and NotPrincipal in any form.
PUBLIC_STATEMENT_FIELDS: list[dict[str, Any]] = [
    {"Principal": [EXISTS]},  # a string ("*") or list principal
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
    {"Principal": {"Federated": [EXISTS]}},
    {"Principal": {"Service": ["*"]}},
    {"Principal": {"CanonicalUser": ["*"]}},
    {"NotPrincipal": [EXISTS]},
    {"NotPrincipal": {"AWS": [EXISTS]}},
    {"NotPrincipal": {"Service": [EXISTS]}},
]


def public_header_parts() -> tuple[PatternPart, ...]:
    """Canned ``x-amz-acl`` values and ``x-amz-grant-*`` headers naming the public groups, on any call.

    The grant headers sit under ``accessControlList`` or, in some records, directly in
    ``requestParameters``. A 1.05 record's list value matches when any item does.
    """
    return (
        PatternPart("public-header", {"requestParameters": {"x-amz-acl": list(CANNED_PUBLIC)}}),
        *(
            PatternPart(
                "public-header", {"requestParameters": {"accessControlList": {h: [PUBLIC_GROUP_URI]}}}
            )
            for h in GRANT_HEADERS
        ),
        *(
            PatternPart("public-header", {"requestParameters": {h: [PUBLIC_GROUP_URI]}})
            for h in GRANT_HEADERS
        ),
    )

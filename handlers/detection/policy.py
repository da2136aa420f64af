"""AWS's "meaning of public" for resource policies (bucket and access-point policies).

AWS starts from "public" and calls a policy non-public only when every Allow
statement is pinned to fixed values of a specific principal or of one of a short
list of condition keys. This module applies that test to one policy document and
explains each public statement.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from handlers.detection.records import as_list

# Condition keys that pin access to a fixed party or network when given fixed values.
RESTRICTING_KEYS = frozenset(
    {
        "aws:sourceip",
        "aws:sourcearn",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceowner",
        "aws:sourceaccount",
        "aws:principalorgid",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "aws:userid",
        "s3:dataaccesspointarn",
        "s3:dataaccesspointaccount",
    }
)

# Positive operators: the request must match a listed value. Negated operators
# (StringNotEquals, NotIpAddress, ...), Null and *IfExists forms let requests
# without the key or with any other value through, so they restrict nobody.
POSITIVE_OPERATORS = frozenset(
    {
        "stringequals",
        "stringequalsignorecase",
        "stringlike",
        "arnequals",
        "arnlike",
        "ipaddress",
    }
)

IPV4_MAX_PUBLIC_PREFIX = 8  # broader than /8 is public
IPV6_MAX_PUBLIC_PREFIX = 32  # broader than /32 is public

# Representative actions per access level, matched against the statement's Action
# patterns (which may carry wildcards such as "s3:Get*").
ACCESS_ACTIONS: dict[str, tuple[str, ...]] = {
    "read": ("s3:getobject", "s3:listbucket", "s3:getobjectversion"),
    "write": ("s3:putobject", "s3:deleteobject", "s3:deletebucket"),
    "acl-write": ("s3:putbucketacl", "s3:putobjectacl"),
    "acl-read": ("s3:getbucketacl", "s3:getobjectacl"),
    "policy-write": ("s3:putbucketpolicy", "s3:deletebucketpolicy", "s3:putbucketpublicaccessblock"),
}


# Object Lambda and Outposts policies name the same actions under their own service prefix
# (s3-object-lambda:GetObject, s3-outposts:PutObject): read them as the S3 actions they are.
_S3_FAMILY_PREFIX = re.compile(r"^(?:s3-object-lambda|s3-outposts):")


def _action_patterns(value: Any) -> list[str]:
    return [_S3_FAMILY_PREFIX.sub("s3:", str(a).lower()) for a in as_list(value)]


class PolicyUnreadable(ValueError):
    """The policy document could not be read (truncated, not JSON, wrong type)."""


@dataclass
class PolicyVerdict:
    """The outcome of analysing one policy document."""

    public: bool = False
    access: set[str] = field(default_factory=set)
    principals: set[str] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)


def load_policy(document: Any) -> dict[str, Any]:
    """The policy as a dict, from a dict or a JSON string; :class:`PolicyUnreadable` otherwise."""
    if isinstance(document, str):
        if not document.strip():
            raise PolicyUnreadable("the policy is empty")
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise PolicyUnreadable(f"the policy is not valid JSON (truncated?): {exc}") from None
    if not isinstance(document, dict):
        raise PolicyUnreadable(f"the policy is a {type(document).__name__}, not a JSON object")
    if "Statement" not in document:
        raise PolicyUnreadable("the policy has no Statement")
    return document


def analyse_policy(document: Any) -> PolicyVerdict:
    """Decide whether a policy document is public in AWS's sense, and why."""
    policy = load_policy(document)
    verdict = PolicyVerdict()
    for index, statement in enumerate(as_list(policy.get("Statement"))):
        if not isinstance(statement, dict):
            raise PolicyUnreadable(f"statement {index} is a {type(statement).__name__}, not an object")
        label = _statement_label(statement, index)
        if str(statement.get("Effect", "")).lower() != "allow":
            continue  # Deny never grants access
        who = public_principals(statement)
        if not who:
            continue
        restriction = restricting_condition(statement.get("Condition"))
        if restriction:
            continue
        verdict.public = True
        verdict.principals.update(who)
        access = statement_access(statement)
        verdict.access.update(access)
        condition_note = _condition_note(statement.get("Condition"))
        verdict.reasons.append(
            f"{label} allows {', '.join(sorted(access)) or 'access'} to "
            f"{', '.join(sorted(who))}{condition_note}"
        )
    return verdict


def public_principals(statement: dict[str, Any]) -> set[str]:
    """The public principals a statement names; empty when only specific parties get in."""
    if "NotPrincipal" in statement:
        return {"NotPrincipal (everyone except the listed principals)"}
    principal = statement.get("Principal")
    if principal is None:
        return set()
    if isinstance(principal, str):
        return {"*"} if principal.strip() == "*" else set()
    if not isinstance(principal, dict):
        return {f"unreadable principal {principal!r}"}
    found: set[str] = set()
    for kind, values in principal.items():
        kind_lower = str(kind).lower()
        for value in as_list(values):
            text = str(value).strip()
            if kind_lower == "federated":
                found.add(f"Federated:{text}")  # any user of the identity provider
            elif text == "*":
                found.add(f"{kind}:*" if kind_lower != "aws" else "*")
            elif kind_lower == "aws" and _wildcard_account_arn(text):
                found.add(f"AWS:{text}")
    return found


def _wildcard_account_arn(text: str) -> bool:
    """An IAM ARN whose account field carries a wildcard, e.g. ``arn:aws:iam::*:root``."""
    parts = text.split(":")
    if len(parts) >= 5 and parts[0] == "arn":
        return "*" in parts[4] or "?" in parts[4]
    return "*" in text or "?" in text


def restricting_condition(condition: Any) -> str | None:
    """The first condition that pins access to fixed values, described; ``None`` if none does."""
    if not isinstance(condition, dict):
        return None
    for operator, clauses in condition.items():
        op = str(operator).lower()
        if op.startswith("forallvalues:"):
            continue  # true for a request that carries no value at all
        op = op.removeprefix("foranyvalue:")
        if op not in POSITIVE_OPERATORS or not isinstance(clauses, dict):
            continue
        for key, values in clauses.items():
            key_lower = str(key).lower()
            if key_lower not in RESTRICTING_KEYS:
                continue
            value_list = as_list(values)
            if not value_list:
                continue
            if key_lower == "aws:sourceip":
                if op == "ipaddress" and all(_narrow_cidr(v) for v in value_list):
                    return f"{operator} {key}"
                continue
            if op == "ipaddress":
                continue
            if all(_fixed_value(v) for v in value_list):
                return f"{operator} {key}"
    return None


def _fixed_value(value: Any) -> bool:
    """A value with no wildcard and no policy variable."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return False
    text = str(value)
    return bool(text) and "*" not in text and "?" not in text and "${" not in text


def _narrow_cidr(value: Any) -> bool:
    """A CIDR no broader than /8 (IPv4) or /32 (IPv6)."""
    if not isinstance(value, str):
        return False
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    limit = IPV4_MAX_PUBLIC_PREFIX if network.version == 4 else IPV6_MAX_PUBLIC_PREFIX
    return network.prefixlen >= limit


def statement_access(statement: dict[str, Any]) -> set[str]:
    """The access levels a statement's Action (or NotAction) grants."""
    if "NotAction" in statement:
        excluded = _action_patterns(statement.get("NotAction"))
        granted = {
            level
            for level, actions in ACCESS_ACTIONS.items()
            if any(not any(fnmatchcase(a, pattern) for pattern in excluded) for a in actions)
        }
    else:
        patterns = _action_patterns(statement.get("Action"))
        if any(p in ("*", "s3:*") for p in patterns):
            return {"all"}
        granted = {
            level
            for level, actions in ACCESS_ACTIONS.items()
            if any(fnmatchcase(a, pattern) for a in actions for pattern in patterns)
        }
        if not granted and patterns:
            granted = {"other"}
    return granted


def _statement_label(statement: dict[str, Any], index: int) -> str:
    sid = statement.get("Sid")
    return f"statement {sid!r}" if isinstance(sid, str) and sid else f"statement #{index + 1}"


def _condition_note(condition: Any) -> str:
    if isinstance(condition, dict) and condition:
        return f" (its condition {', '.join(map(str, condition))} does not restrict who gets in)"
    return ""

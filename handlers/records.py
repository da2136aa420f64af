"""Safe accessors for CloudTrail records, whatever their event version or damage.

CloudTrail records are untrusted input: fields go missing, turn null, change type
between event versions (1.05 list values vs 1.08+ strings) or are truncated. Every
reader here returns a default instead of raising.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]


def deep_get(obj: Any, *path: str, default: Any = None) -> Any:
    """Follow ``path`` through nested dicts; ``default`` if any step is missing or not a dict."""
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
        if obj is None:
            return default
    return obj


def get_ci(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` with a case-insensitive key (``Host`` vs ``host``, ``x-amz-acl`` vs ``X-Amz-Acl``)."""
    if not isinstance(obj, dict):
        return default
    if key in obj:
        return obj[key]
    lowered = key.lower()
    for candidate, value in obj.items():
        if isinstance(candidate, str) and candidate.lower() == lowered:
            return value
    return default


def as_list(value: Any) -> list[Any]:
    """A value that may be a single item or a list, as a list (``None`` is empty)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def as_text(value: Any) -> str | None:
    """A scalar string field that old event versions wrap in a list (``["public-read"]``)."""
    if isinstance(value, list):
        texts = [v for v in value if isinstance(v, str) and v]
        return ",".join(texts) if texts else None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    return None


def request_parameters(record: Record) -> dict[str, Any]:
    """``requestParameters`` as a dict; null or a wrong type reads as empty."""
    params = record.get("requestParameters")
    return params if isinstance(params, dict) else {}


def failed(record: Record) -> bool:
    """True when the call was refused or failed (CloudTrail sets ``errorCode``)."""
    return bool(record.get("errorCode"))


def bucket_name(record: Record) -> str | None:
    """The bucket the call addressed, from ``bucketName`` or, failing that, ``resources``."""
    name = as_text(request_parameters(record).get("bucketName"))
    if name:
        return name
    for resource in as_list(record.get("resources")):
        if deep_get(resource, "type") == "AWS::S3::Bucket":
            arn = as_text(deep_get(resource, "ARN"))
            if arn and arn.startswith("arn:"):
                return arn.split(":::", 1)[-1] or None
    return None


def object_key(record: Record) -> str | None:
    """The object key of an object-level call."""
    return as_text(request_parameters(record).get("key"))


def actor(record: Record) -> str | None:
    """Who made the call: the identity ARN, else principal id, else the invoking service."""
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        return None
    for field in ("arn", "principalId", "invokedBy"):
        value = as_text(identity.get(field))
        if value:
            return value
    return as_text(identity.get("type"))


def session_context(record: Record) -> dict[str, Any]:
    """How the caller signed in: identity type, MFA, the role a session was issued from, when.

    ``mfaAuthenticated`` is ``None`` when the record does not say (AWS writes the string
    "true" or "false"; anything else is not trusted as either).
    """
    identity = record.get("userIdentity")
    identity = identity if isinstance(identity, dict) else {}
    context = identity.get("sessionContext")
    context = context if isinstance(context, dict) else {}
    attributes = context.get("attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    issuer = context.get("sessionIssuer")
    issuer = issuer if isinstance(issuer, dict) else {}
    mfa = as_text(attributes.get("mfaAuthenticated"))
    return {
        "identityType": as_text(identity.get("type")),
        "mfaAuthenticated": {"true": True, "false": False}.get((mfa or "").lower()),
        "sessionIssuer": as_text(issuer.get("arn")),
        "sessionIssuerType": as_text(issuer.get("type")),
        "sessionCreated": as_text(attributes.get("creationDate")),
        "invokedBy": as_text(identity.get("invokedBy")),
    }


def account_id(record: Record) -> str | None:
    """The account the call was made in."""
    return as_text(record.get("recipientAccountId")) or as_text(deep_get(record, "userIdentity", "accountId"))


def client_kind(user_agent: str | None) -> str:
    """Classify the caller's tool from its user agent: console, cli, terraform, sdk, aws-service."""
    if not user_agent:
        return "unknown"
    ua = user_agent.lower()
    if "s3console" in ua or "signin.amazonaws.com" in ua or "console.amazonaws.com" in ua:
        return "console"
    if "aws-cli" in ua or "aws-powershell" in ua:
        return "cli"
    if "terraform" in ua:
        return "terraform"
    if ua.endswith(".amazonaws.com") and " " not in ua:
        return "aws-service"
    if "aws-sdk" in ua or "boto" in ua or "aws-internal" in ua:
        return "sdk"
    return "unknown"

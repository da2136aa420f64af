"""Safe accessors for CloudTrail records, whatever their event version or damage.

CloudTrail records are untrusted input: fields go missing, turn null, change type
between event versions (1.05 list values vs 1.08+ strings) or are truncated. Every
reader here returns a default instead of raising. Records read back from log pipelines
carry rewritten key names (``x_amz_grant_read``, ``eventId``); they are read as the
originals (see "Keys rewritten by log pipelines" below).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from handlers.detection.s3_terms import BPA_FLAGS, CANNED_ACL_HEADER, GRANT_HEADERS

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
    """``requestParameters`` as a dict, pipeline-rewritten keys read as the originals
    (:func:`normalize_keys`); null or a wrong type reads as empty."""
    params = record.get("requestParameters")
    return _renamed(params, "requestParameters") if isinstance(params, dict) else {}


def _identity(record: Record) -> dict[str, Any]:
    identity = record.get("userIdentity")
    return _renamed(identity, "userIdentity") if isinstance(identity, dict) else {}


def _renamed(value: dict[str, Any], parent: str) -> dict[str, Any]:
    try:
        renamed = normalize_keys(value, parent, 1)
    except RecursionError:  # nested past the interpreter's limit: read it as it is
        return value
    return renamed if isinstance(renamed, dict) else value


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
    identity = _identity(record)
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
    identity = _identity(record)
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
    return as_text(record.get("recipientAccountId")) or as_text(_identity(record).get("accountId"))


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


# --- Keys rewritten by log pipelines --------------------------------------------------------
#
# Records that went through a log pipeline before reaching us carry rewritten key names:
# Firehose/StreamAlert sanitisers turn every non-word character into "_" (``x_amz_grant_read``,
# ``xsi_type``, ``aws_SourceIp``), Glue and Athena lower-case column names (``eventname``), and
# hand-written test data capitalises at will (``AccessControlList``). A key is therefore compared
# by its *fold* (lower case, everything but letters and digits dropped), and a key whose fold is
# that of a key the rules read is renamed to it, at any depth.
#
# Precedence when several spellings of one key meet in one object (an attacker can write both;
# real records do it only for bare markers such as ``"tagging": ""`` beside ``"Tagging": {...}``,
# and a marker gives way to the object, as null gives way to anything):
# * inside ``requestParameters`` and ``userIdentity``, neither may hide the other: for keys read
#   as one scalar (``Effect``, ``Principal``, ``Condition``, a grantee ``URI``, ``ObjectOwnership``,
#   BPA and trail flags) the more exposing value wins (Allow, "*", no condition, a public group,
#   a guard off); two objects are merged key by key; anything else becomes one list of both
#   values (as 1.05 records write lists), which the readers of grants, canned ACLs, grant
#   headers and policy statements already walk in full. Keys that name the resource
#   (``bucketName``, trail ``name``, ``kmsKeyId``) keep CloudTrail's own spelling;
# * at the top level the fields are CloudTrail's own metadata (eventID, eventName, errorCode),
#   not request content: the exact canonical spelling wins, so a rewritten duplicate cannot
#   override what CloudTrail wrote; an object still beats a scalar, and two objects merge.
#
# EventBridge delivers CloudTrail's own spelling, so the deployed patterns need none of this:
# it is for records read back from pipelines (detect, query results).

# Keys the rules read, as CloudTrail writes them. Keep in step with the readers in handlers/
# (tests/test_records.py checks that policy.RESTRICTING_KEYS, acl.GRANT_HEADERS and the BPA
# flags are covered).
_RECORD_KEYS = (
    "eventVersion", "eventID", "eventTime", "eventSource", "eventName", "eventType", "eventCategory",
    "awsRegion", "sourceIPAddress", "userAgent", "requestParameters", "responseElements",
    "additionalEventData", "errorCode", "errorMessage", "userIdentity", "recipientAccountId",
    "resources", "readOnly", "managementEvent", "requestID", "sharedEventID", "vpcEndpointId",
    "vpcEndpointAccountId", "apiVersion", "serviceEventDetails", "sessionCredentialFromConsole",
    "tlsDetails", "edgeDeviceDetails", "insightDetails", "addendum", "detail", "detail-type",
)  # fmt: skip
_IDENTITY_KEYS = (
    "type", "arn", "principalId", "accountId", "accessKeyId", "invokedBy", "sessionContext",
    "attributes", "mfaAuthenticated", "creationDate", "sessionIssuer", "userName",
)  # fmt: skip
_REQUEST_KEYS = (
    "bucketName", "key", "Host", "acl", "policy", "bucketPolicy", "accessPointName", "name",
    CANNED_ACL_HEADER, *GRANT_HEADERS, "x-amz-object-ownership", "x-amz-id-2",
    "accessControlList", "AccessControlPolicy", "AccessControlList", "Grant", "Grantee",
    "Permission", "URI", "ID", "DisplayName", "EmailAddress", "Owner", "xsi:type", "xmlns:xsi",
    "PublicAccessBlockConfiguration", "PutPublicAccessBlockRequest", *BPA_FLAGS, "OwnershipControls", "Rule",
    "ObjectOwnership", "PutAccessPointPolicyRequest", "Tagging", "TagSet", "Tag", "Value",
    "BucketLoggingStatus", "LoggingEnabled", "TargetBucket", "TargetGrants", "TargetPrefix",
    "trailName", "s3BucketName", "kmsKeyId", "isMultiRegionTrail", "includeGlobalServiceEvents",
    "enableLogFileValidation", "eventSelectors", "advancedEventSelectors", "includeManagementEvents",
    "readWriteType", "fieldSelectors", "field", "equals", "keyId", "pendingWindowInDays",
)  # fmt: skip
_POLICY_KEYS = (
    "Version", "Statement", "Sid", "Effect", "Principal", "NotPrincipal", "Action",
    "NotAction", "Resource", "NotResource", "Condition", "AWS", "Federated", "Service",
    "CanonicalUser",
    # condition keys that restrict access (policy.RESTRICTING_KEYS), as AWS spells them
    "aws:SourceIp", "aws:SourceArn", "aws:SourceVpc", "aws:SourceVpce", "aws:SourceOwner",
    "aws:SourceAccount", "aws:PrincipalOrgID", "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "aws:userid", "s3:DataAccessPointArn", "s3:DataAccessPointAccount",
)  # fmt: skip

# Folds spelled differently by context: the XML body's ``AccessControlPolicy.AccessControlList``
# vs the grant-header container ``requestParameters.accessControlList``; a tag's ``Key`` vs an
# object ``key``; an access point request's ``Policy`` vs ``policy``; a resource's ``ARN``.
_BY_PARENT: dict[str, dict[str, str]] = {
    "accesscontrollist": {"accesscontrolpolicy": "AccessControlList", "": "accessControlList"},
    "key": {"tag": "Key", "tagset": "Key", "": "key"},
    "policy": {"putaccesspointpolicyrequest": "Policy", "": "policy"},
    "arn": {"resources": "ARN", "": "arn"},
}

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_MAX_DEPTH = 64  # deeper than any real record; beyond it values pass through untouched
_USER_AGENT_LIMIT = 2048  # CloudTrail's own userAgent field is far shorter
_USER_AGENT_PARTS = 64


def fold_key(key: str) -> str:
    """``key`` as pipelines may rewrite it, reduced to lower-case letters and digits."""
    return _NON_ALNUM.sub("", key.lower())


def _canonical_by_fold() -> dict[str, str]:
    table: dict[str, str] = {}
    for key in (*_RECORD_KEYS, *_IDENTITY_KEYS, *_REQUEST_KEYS, *_POLICY_KEYS):
        fold = fold_key(key)
        if fold not in _BY_PARENT:
            table[fold] = key
    return table


CANONICAL_KEYS: dict[str, str] = _canonical_by_fold()  # fold -> the spelling CloudTrail writes
_PLAIN_SPELLINGS = frozenset(CANONICAL_KEYS.values())  # already right whatever the parent


@lru_cache(maxsize=4096)  # a few hundred distinct keys in practice; bounded against floods
def _canonical_text_key(key: str, parent: str) -> str:
    fold = fold_key(key)
    choices = _BY_PARENT.get(fold)
    if choices is not None:
        return choices.get(fold_key(parent), choices[""])
    return CANONICAL_KEYS.get(fold, key)


def canonical_key(key: Any, parent: str = "") -> Any:
    """The spelling CloudTrail writes for ``key`` (inside ``parent``); unknown keys unchanged."""
    if not isinstance(key, str) or key in _PLAIN_SPELLINGS:
        return key
    return _canonical_text_key(key, parent if isinstance(parent, str) else "")


def _blank(value: Any) -> bool:
    """Null, "" or [""]: how CloudTrail records a bare sub-resource marker (``?tagging``)."""
    while isinstance(value, list):  # a loop, not recursion: [[[...]]] may be nested deep
        if len(value) > 1:
            return False
        value = value[0] if value else None
    return value is None or value == ""


def _off(value: Any) -> bool:
    return value is not True and (as_text(value) or "").strip().lower() != "true"


def _public_group(uri: Any) -> str | None:
    from handlers.detection.acl import public_group  # acl reads records: import on use, not at load

    return public_group(uri)


# Keys read as one scalar, where a list of both values would read as neither: of two spellings
# the more exposing value wins (an Allow, a public group, a guard switched off, no condition).
_MORE_EXPOSING: dict[str, Callable[[Any], bool]] = {
    "Effect": lambda value: (as_text(value) or "").strip().lower() == "allow",
    "Principal": lambda value: "*" in repr(value),
    "Condition": lambda value: not value,  # no condition restricts nobody
    "URI": lambda value: _public_group(value) is not None,
    "ObjectOwnership": lambda value: (as_text(value) or "").strip().lower() != "bucketownerenforced",
    **dict.fromkeys(
        (
            *BPA_FLAGS, "isMultiRegionTrail", "includeGlobalServiceEvents", "enableLogFileValidation",
            "includeManagementEvents",
        ),
        _off,
    ),
}  # fmt: skip


# Keys that name the resource acted on: a list of two names would name neither (and would not
# match the detector's own trail or key), so CloudTrail's own spelling wins, as at the top level.
_RESOURCE_NAMES = frozenset(
    {"bucketName", "key", "name", "trailName", "s3BucketName", "accessPointName", "kmsKeyId", "keyId"}
)


def merge_values(first: Any, second: Any, key: Any = "", depth: int = 0) -> Any:
    """Both values of a key spelled twice: the more exposing one for the scalar keys in
    ``_MORE_EXPOSING``, else objects merged key by key and anything else one list.

    Null gives way to anything, and a blank marker to an object: real records pair the query
    marker ``"tagging": ""`` with the body ``"Tagging": {...}`` (and ``ownershipControls``).
    """
    prefer = _MORE_EXPOSING.get(key) if isinstance(key, str) else None
    if prefer is not None:
        for value in (first, second):
            if prefer(value):
                return value
    if first is None or (_blank(first) and isinstance(second, dict)):
        return second
    if second is None or (_blank(second) and isinstance(first, dict)):
        return first
    if not isinstance(first, (dict, list)) and first == second:
        return first  # scalars only: comparing deep containers could itself recurse too far
    if isinstance(first, dict) and isinstance(second, dict) and depth < _MAX_DEPTH:
        merged = dict(first)
        for name, value in second.items():
            merged[name] = merge_values(merged[name], value, name, depth + 1) if name in merged else value
        return merged
    return [*as_list(first), *as_list(second)]


def normalize_keys(value: Any, parent: str = "", depth: int = 0) -> Any:
    """``value`` with every pipeline-rewritten key renamed to CloudTrail's spelling, at any depth.

    Spellings that meet in one object are merged (:func:`merge_values`), so neither can hide
    or override the other. Returns new containers where something changed; never mutates.
    """
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, list):
        # List items keep the list's parent name (``Grant: [{...}]``, ``Tag: [{...}]``).
        items: list[Any] | None = None
        for index, item in enumerate(value):
            new = normalize_keys(item, parent, depth + 1) if isinstance(item, (dict, list)) else item
            if new is not item and items is None:
                items = value[:index]
            if items is not None:
                items.append(new)
        return value if items is None else items
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    changed = False
    for key, item in value.items():
        name = canonical_key(key, parent)
        inner = (
            normalize_keys(item, name if isinstance(name, str) else "", depth + 1)
            if isinstance(item, (dict, list))
            else item
        )
        changed = changed or name != key or inner is not item
        if name not in out or out[name] is None:
            out[name] = inner
        elif name in _RESOURCE_NAMES:
            if key == name and inner is not None:
                out[name] = inner  # CloudTrail's own spelling names the resource
        else:
            out[name] = merge_values(out[name], inner, name)
    return out if changed else value


def user_agent_text(value: Any) -> str | None:
    """A ``userAgent`` as one string, from a string or a (nested) list of strings; bounded."""
    parts: list[str] = []
    stack: list[Any] = [value]
    budget = _USER_AGENT_PARTS * 16  # bounds the walk of a huge or deeply nested list
    while stack and budget and len(parts) < _USER_AGENT_PARTS:
        budget -= 1
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item[:_USER_AGENT_PARTS]))
        elif isinstance(item, str) and item:
            parts.append(item)
    text = " ".join(parts)[:_USER_AGENT_LIMIT]
    return text or None


def normalize_record(record: Record) -> Record:
    """``record``'s top level read as CloudTrail wrote it, whatever a log pipeline did to it.

    * top-level keys rewritten by pipelines (``eventId``, Glue's ``eventname``) renamed; the
      canonical spelling wins over a rewritten duplicate (``eventID`` over ``eventId``), and an
      object (``requestParameters``) over a scalar; two objects are merged;
    * a ``userAgent`` given as a list (StreamAlert) or nested lists joined into one string.

    Nested keys (``x_amz_grant_read``, ``AccessControlList`` for the header container,
    ``xsi_type``) are renamed where they are read, by :func:`request_parameters` and the
    identity readers, so a rule called on a raw record benefits too and records no rule reads
    cost nothing beyond their top level.

    Event versions need nothing here: 1.03/1.04 and 1.11 records carry the same fields as the
    1.05-1.10 ones, and readers already accept 1.05's list values. The input is never mutated.
    """
    if not isinstance(record, dict):
        return record
    if _PLAIN_SPELLINGS.issuperset(record) and not isinstance(record.get("userAgent"), list):
        return record  # the common case, CloudTrail's own spelling throughout: one set test
    try:
        return _normalized(record)
    except RecursionError:  # a structure nested past the interpreter's limit: read it as it is
        return record


def _normalized(record: Record) -> Record:
    out: dict[Any, Any] = {}
    exact: set[Any] = set()
    changed = False
    for key, item in record.items():
        name = canonical_key(key)
        inner = item  # nested keys are renamed where they are read (request_parameters, _identity)
        changed = changed or name != key or inner is not item
        if name not in out or out[name] is None:
            out[name] = inner
        elif isinstance(out[name], dict) and isinstance(inner, dict):
            out[name] = merge_values(out[name], inner)  # requestParameters twice: both considered
        elif isinstance(out[name], dict) or isinstance(inner, dict):
            # Readers of requestParameters and userIdentity take only an object: a scalar
            # duplicate must not displace one.
            out[name] = out[name] if isinstance(out[name], dict) else inner
        elif key == name and name not in exact and inner is not None:
            out[name] = inner  # CloudTrail's own spelling beats a rewritten duplicate
        if key == name:
            exact.add(name)
    agent = out.get("userAgent")
    if isinstance(agent, list):
        out["userAgent"] = user_agent_text(agent)
        changed = True
    return out if changed else record

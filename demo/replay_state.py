"""Make the API call a CloudTrail record describes, so moto holds the state the record left behind.

Used by the response Lambda tests (and the end-to-end demo): before the handler
confirms a bucket's exposure, the bucket must really be in the state the event
created. Failed calls change nothing and are not replayed. How each call is replayed is
its rule's declared replay hint (``REPLAY`` in the rule module); calls without one (access
point policies, trails, Outposts, routine calls) are skipped.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

from handlers.detection.acl import GRANT_HEADERS
from handlers.detection.records import (
    as_list,
    as_text,
    bucket_name,
    deep_get,
    failed,
    get_ci,
    request_parameters,
)
from handlers.detection.rules import REPLAY_HINTS
from handlers.detection.rules.approval_tag import tag_text
from handlers.detection.rules.declarations import ReplayHint
from handlers.detection.rules.public_access_block import BPA_FLAGS, flag_is_on

_GRANTEE_PAIR = re.compile(r"""\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^,\s]*))\s*""")
OBJECT_BODY = b"replayed object"
S3_EVENT_SOURCE = "s3.amazonaws.com"  # moto holds S3 buckets only (no Outposts)


def ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    """Create ``bucket`` in ``region`` if it does not exist (no BPA, ACLs enabled: the pre-2023 default)."""
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except s3.exceptions.ClientError:
        pass
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)


def acl_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """The boto3 ACL arguments a request carried: canned ``ACL`` or an ``AccessControlPolicy`` grant list."""
    kwargs: dict[str, Any] = {}
    canned = as_text(get_ci(params, "x-amz-acl"))
    if canned:
        kwargs["ACL"] = canned
    # Grant headers become an explicit grant list: moto reads only the first grantee of a header.
    grants: list[dict[str, Any]] = []
    for container in (params, get_ci(params, "accessControlList")):
        for header, permission in GRANT_HEADERS.items():
            value = as_text(get_ci(container, header))
            for match in _GRANTEE_PAIR.finditer(value or ""):
                kind = match.group(1).lower()
                grantee_value = next((g for g in match.groups()[1:] if g is not None), "")
                grantee = {
                    "uri": {"Type": "Group", "URI": grantee_value},
                    "id": {"Type": "CanonicalUser", "ID": grantee_value},
                    "emailaddress": {"Type": "AmazonCustomerByEmail", "EmailAddress": grantee_value},
                }.get(kind)
                if grantee:
                    grants.append({"Grantee": grantee, "Permission": permission})
    acl = deep_get(params, "AccessControlPolicy", "AccessControlList")
    if isinstance(acl, dict) or grants:
        for grant in as_list(acl.get("Grant") if isinstance(acl, dict) else None):
            grantee = grant.get("Grantee") or {}
            kind = get_ci(grantee, "xsi:type") or ("Group" if get_ci(grantee, "URI") else "CanonicalUser")
            entry: dict[str, Any] = {"Type": kind}
            for source, target in (("URI", "URI"), ("ID", "ID"), ("EmailAddress", "EmailAddress")):
                if get_ci(grantee, source):
                    entry[target] = get_ci(grantee, source)
            grants.append({"Grantee": entry, "Permission": as_text(grant.get("Permission")) or "READ"})
        owner = deep_get(params, "AccessControlPolicy", "Owner", "ID") or "owner"
        kwargs["AccessControlPolicy"] = {"Grants": grants, "Owner": {"ID": owner}}
    return kwargs


def bpa_config(params: dict[str, Any]) -> dict[str, bool]:
    """The BPA flags a put recorded (omitted flags are off)."""
    config = get_ci(params, "PublicAccessBlockConfiguration")
    if config is None:
        config = deep_get(params, "PutPublicAccessBlockRequest", "PublicAccessBlockConfiguration")
    return {flag: flag_is_on(get_ci(config, flag)) for flag in BPA_FLAGS}


def tag_set_kwargs(params: dict[str, Any]) -> list[dict[str, str]] | None:
    """The boto3 ``TagSet`` a PutBucketTagging recorded (``Tag``: a dict or a list); ``None``: unreadable."""
    tags = get_ci(get_ci(get_ci(params, "Tagging"), "TagSet"), "Tag")
    if not isinstance(tags, (dict, list)):
        return None
    pairs = [(tag_text(get_ci(tag, "Key")), tag_text(get_ci(tag, "Value"))) for tag in as_list(tags)]
    return [{"Key": key, "Value": value or ""} for key, value in pairs if key]


Replayer = Callable[[Any, str, str, dict[str, Any], str], None]  # (s3, bucket, region, params, key)


def _create_bucket(s3: Any, bucket: str, region: str, params: dict[str, Any], key: str) -> None:
    acl = acl_kwargs(params)
    body = acl.pop("AccessControlPolicy", None)  # CreateBucket takes canned ACLs and headers only
    kwargs: dict[str, Any] = {"Bucket": bucket, **acl}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    ownership = as_text(get_ci(params, "x-amz-object-ownership"))
    if ownership:
        kwargs["ObjectOwnership"] = ownership
    s3.create_bucket(**kwargs)
    if body:
        s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=body)


class _NothingToReplay(Exception):
    """The record does not hold what the call stored (truncated, damaged): only the bucket is made."""


def _put_bucket_policy(s3: Any, bucket: str, region: str, params: dict[str, Any], key: str) -> None:
    document = get_ci(params, "bucketPolicy")
    text = document if isinstance(document, str) else json.dumps(document)
    try:
        json.loads(text)
    except ValueError:
        # A truncated policy: AWS stored the full one, which the record no longer holds.
        raise _NothingToReplay from None
    s3.put_bucket_policy(Bucket=bucket, Policy=text)


def _put_bucket_acl(s3: Any, bucket: str, region: str, params: dict[str, Any], key: str) -> None:
    kwargs = acl_kwargs(params)
    if not kwargs:
        raise _NothingToReplay
    s3.put_bucket_acl(Bucket=bucket, **kwargs)


def _put_bucket_ownership_controls(
    s3: Any, bucket: str, region: str, params: dict[str, Any], key: str
) -> None:
    rules = [
        {"ObjectOwnership": as_text(deep_get(rule, "ObjectOwnership"))}
        for rule in as_list(get_ci(get_ci(params, "OwnershipControls"), "Rule"))
        if as_text(deep_get(rule, "ObjectOwnership"))
    ]
    if not rules:
        raise _NothingToReplay
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={"Rules": rules})


def _put_bucket_logging(s3: Any, bucket: str, region: str, params: dict[str, Any], key: str) -> None:
    enabled = deep_get(get_ci(params, "BucketLoggingStatus"), "LoggingEnabled")
    target = as_text(get_ci(enabled, "TargetBucket")) if isinstance(enabled, dict) else None
    if not target:
        raise _NothingToReplay
    ensure_bucket(s3, target, region)
    grants = acl_kwargs({"AccessControlPolicy": {"AccessControlList": get_ci(enabled, "TargetGrants")}})
    status = {
        "LoggingEnabled": {
            "TargetBucket": target,
            "TargetPrefix": as_text(get_ci(enabled, "TargetPrefix")) or "",
            "TargetGrants": grants.get("AccessControlPolicy", {}).get("Grants", []),
        }
    }
    # moto checks the target bucket's log-delivery rights; the handler reads only its guards.
    with contextlib.suppress(s3.exceptions.ClientError):
        s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus=status)


def _put_bucket_tagging(s3: Any, bucket: str, region: str, params: dict[str, Any], key: str) -> None:
    # The response Lambda reads the approval tag back (GetBucketTagging): put the recorded set.
    tags = tag_set_kwargs(params)
    if tags is None:
        raise _NothingToReplay
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})


def _put_object(s3: Any, bucket: str, region: str, params: dict[str, Any], key: str) -> None:
    acl = acl_kwargs(params)
    grants = acl.pop("AccessControlPolicy", None)  # PutObject takes canned ACLs only in boto3's shape
    s3.put_object(Bucket=bucket, Key=key, Body=OBJECT_BODY, **acl)
    if grants:
        s3.put_object_acl(Bucket=bucket, Key=key, AccessControlPolicy=grants)


def _put_object_acl(s3: Any, bucket: str, region: str, params: dict[str, Any], key: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=OBJECT_BODY)
    kwargs = acl_kwargs(params)
    if kwargs:
        s3.put_object_acl(Bucket=bucket, Key=key, **kwargs)


def _copy_object(s3: Any, bucket: str, region: str, params: dict[str, Any], key: str) -> None:
    s3.put_object(Bucket=bucket, Key=f"{key}.source", Body=OBJECT_BODY)
    s3.copy_object(
        Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": f"{key}.source"}, **acl_kwargs(params)
    )


# Replay hint (declared by each rule module's REPLAY) -> what puts the call's state into moto.
BUCKET_REPLAYERS: dict[ReplayHint, Replayer] = {
    "put-bucket-policy": _put_bucket_policy,
    "put-bucket-acl": _put_bucket_acl,
    "put-bucket-public-access-block": lambda s3, bucket, _r, params, _k: s3.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration=bpa_config(params)
    ),
    "delete-bucket-public-access-block": lambda s3, bucket, *_: s3.delete_public_access_block(Bucket=bucket),
    "put-bucket-ownership-controls": _put_bucket_ownership_controls,
    "delete-bucket-ownership-controls": lambda s3, bucket, *_: s3.delete_bucket_ownership_controls(
        Bucket=bucket
    ),
    "put-bucket-logging": _put_bucket_logging,
    "put-bucket-tagging": _put_bucket_tagging,
    "delete-bucket-tagging": lambda s3, bucket, *_: s3.delete_bucket_tagging(Bucket=bucket),
    "put-object": _put_object,
    "put-object-acl": _put_object_acl,
    "copy-object": _copy_object,
}


def replay(record: dict[str, Any], session: Any) -> list[str]:
    """Apply ``record``'s call through ``session`` (a boto3 session inside moto); return the calls made.

    How a call is replayed is the replay hint its rule declares
    (:data:`handlers.detection.rules.REPLAY_HINTS`);
    a call without one (access point policies, trails, Outposts, routine calls) is not replayed.
    """
    if failed(record):
        return []
    name = as_text(record.get("eventName")) or ""
    source = as_text(record.get("eventSource")) or ""
    hint = REPLAY_HINTS.get((source, name))
    region = as_text(record.get("awsRegion")) or "us-east-1"
    params = request_parameters(record)
    account = as_text(record.get("recipientAccountId")) or ""
    s3 = session.client("s3", region_name=region)
    s3control = session.client("s3control", region_name=region)
    bucket = bucket_name(record)
    key = as_text(params.get("key")) or "replayed-key"

    if hint is None:
        if bucket and source == S3_EVENT_SOURCE:
            ensure_bucket(s3, bucket, region)  # the bucket the call addressed exists, nothing more
            return ["CreateBucket"]
        return []
    if hint == "put-account-public-access-block":
        s3control.put_public_access_block(
            AccountId=account, PublicAccessBlockConfiguration=bpa_config(params)
        )
        return [name]
    if hint == "delete-account-public-access-block":
        s3control.delete_public_access_block(AccountId=account)
        return [name]
    if not bucket:
        return []
    if hint == "create-bucket":
        _create_bucket(s3, bucket, region, params, key)
        return [name]
    ensure_bucket(s3, bucket, region)
    try:
        BUCKET_REPLAYERS[hint](s3, bucket, region, params, key)
    except _NothingToReplay:
        return ["CreateBucket"]
    return ["CreateBucket", name]

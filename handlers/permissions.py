"""Every AWS API call the response Lambda makes, per remediation mode, with its IAM action.

This list is the single source of truth: the infrastructure derives the function's
IAM policy from it, and a test fails when the code calls an operation that is not
listed here (and so not granted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Resource = Literal["bucket", "account", "topic", "table", "key"]
Mode = Literal["off", "dry-run", "enforce"]
MODES: tuple[Mode, ...] = ("off", "dry-run", "enforce")


@dataclass(frozen=True)
class ApiCall:
    """One API operation (botocore name), the IAM action it needs and what it acts on."""

    service: str  # boto3 client name
    operation: str  # botocore operation name
    iam_action: str
    resource: Resource


# Reads that confirm the current exposure of a bucket (every mode).
CONFIRM_CALLS: tuple[ApiCall, ...] = (
    ApiCall("s3", "GetBucketPolicyStatus", "s3:GetBucketPolicyStatus", "bucket"),
    ApiCall("s3", "GetBucketPolicy", "s3:GetBucketPolicy", "bucket"),
    ApiCall("s3", "GetBucketAcl", "s3:GetBucketAcl", "bucket"),
    ApiCall("s3", "GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock", "bucket"),
    ApiCall("s3", "GetBucketOwnershipControls", "s3:GetBucketOwnershipControls", "bucket"),
    ApiCall("s3", "GetBucketTagging", "s3:GetBucketTagging", "bucket"),
    ApiCall("s3control", "GetPublicAccessBlock", "s3:GetAccountPublicAccessBlock", "account"),
)

# Alerting and duplicate suppression (every mode).
ALERT_CALLS: tuple[ApiCall, ...] = (
    ApiCall("sns", "Publish", "sns:Publish", "topic"),
    ApiCall("kms", "GenerateDataKey", "kms:GenerateDataKey", "key"),  # encrypted topic
    ApiCall("kms", "Decrypt", "kms:Decrypt", "key"),
    ApiCall("dynamodb", "PutItem", "dynamodb:PutItem", "table"),
    ApiCall("dynamodb", "UpdateItem", "dynamodb:UpdateItem", "table"),
)

# Closing a bucket (enforce only).
BUCKET_REMEDIATION_CALLS: tuple[ApiCall, ...] = (
    ApiCall("s3", "PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock", "bucket"),
)

# Closing the account (enforce, and only when the config explicitly allows it).
ACCOUNT_REMEDIATION_CALLS: tuple[ApiCall, ...] = (
    ApiCall("s3control", "PutPublicAccessBlock", "s3:PutAccountPublicAccessBlock", "account"),
)


def calls_for(mode: str, allow_account_remediation: bool = False) -> tuple[ApiCall, ...]:
    """The API calls the response Lambda may make in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"unknown remediation mode {mode!r}; expected one of {', '.join(MODES)}")
    calls = CONFIRM_CALLS + ALERT_CALLS
    if mode == "enforce":
        calls += BUCKET_REMEDIATION_CALLS
        if allow_account_remediation:
            calls += ACCOUNT_REMEDIATION_CALLS
    return calls


def iam_actions_by_resource(mode: str, allow_account_remediation: bool = False) -> dict[str, list[str]]:
    """IAM actions grouped by the resource they act on, sorted, for policy generation."""
    grouped: dict[str, set[str]] = {}
    for call in calls_for(mode, allow_account_remediation):
        grouped.setdefault(call.resource, set()).add(call.iam_action)
    return {resource: sorted(actions) for resource, actions in sorted(grouped.items())}

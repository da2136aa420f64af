"""Closing an exposure with Block Public Access: decide, then put-then-verify behind the client seam.

Non-destructive: only BPA flags are set; no policy or ACL is deleted or rewritten.
Reversible: the previous BPA state is recorded and the undo command is spelled out.
Owner-checked: every S3 call passes ``ExpectedBucketOwner``. The all-four put closes
public policies (RestrictPublicBuckets) and bucket and object ACLs (IgnorePublicAcls);
repeating it is harmless, so a retry cannot do damage.
"""

from __future__ import annotations

from typing import TypedDict

from botocore.exceptions import BotoCoreError, ClientError

from handlers import aws_clients
from handlers.approvals import Approval
from handlers.exposure import BPA_FLAGS, CallFailure, Exposure, describe_error
from handlers.finding import Finding

ALL_ON: dict[str, bool] = dict.fromkeys(BPA_FLAGS, True)
NEEDS_CLOSING = frozenset({"public-now", "exposable", "unknown"})


class Remediation(TypedDict):
    """What was (or would be) done about a finding, and how to undo it."""

    mode: str  # off | dry-run | enforce
    action: str  # none | put-bucket-public-access-block | put-account-public-access-block
    status: str  # not-needed | skipped | would-apply | applied | unverified | failed
    detail: str
    previous: dict[str, bool] | None  # BPA before; None when not set or unknown (see previous_state)
    previous_state: str  # set | not-set | unknown | not-read
    applied: dict[str, bool] | None  # what the read-back showed
    fix: str | None  # command that closes the exposure (for a human, when not applied)
    undo: str | None  # command that restores the previous state
    error: CallFailure | None


def _config_arg(flags: dict[str, bool]) -> str:
    return ",".join(f"{flag}={str(bool(flags.get(flag))).lower()}" for flag in BPA_FLAGS)


def bucket_fix_command(bucket: str, account: str) -> str:
    """The CLI command that puts all four BPA flags on a bucket."""
    return (
        f"aws s3api put-public-access-block --bucket {bucket} --expected-bucket-owner {account} "
        f"--public-access-block-configuration {_config_arg(ALL_ON)}"
    )


def bucket_undo_command(bucket: str, account: str, previous: dict[str, bool] | None, state: str) -> str:
    """The CLI command that restores a bucket's previous BPA state."""
    if state == "not-set":
        return f"aws s3api delete-public-access-block --bucket {bucket} --expected-bucket-owner {account}"
    if state == "set" and previous is not None:
        return (
            f"aws s3api put-public-access-block --bucket {bucket} --expected-bucket-owner {account} "
            f"--public-access-block-configuration {_config_arg(previous)}"
        )
    return (
        "the previous state could not be read; compare with the CloudTrail record and use "
        f"aws s3api put-public-access-block --bucket {bucket} --expected-bucket-owner {account} ..."
    )


def account_fix_command(account: str) -> str:
    """The CLI command that puts all four BPA flags on the account."""
    return (
        f"aws s3control put-public-access-block --account-id {account} "
        f"--public-access-block-configuration {_config_arg(ALL_ON)}"
    )


def account_undo_command(account: str, previous: dict[str, bool] | None, state: str) -> str:
    """The CLI command that restores the account's previous BPA state."""
    if state == "not-set":
        return f"aws s3control delete-public-access-block --account-id {account}"
    if state == "set" and previous is not None:
        return (
            f"aws s3control put-public-access-block --account-id {account} "
            f"--public-access-block-configuration {_config_arg(previous)}"
        )
    return "the previous state could not be read; restore it by hand from the CloudTrail record"


def _result(mode: str, action: str, status: str, detail: str, **extra: object) -> Remediation:
    base = Remediation(
        mode=mode,
        action=action,
        status=status,
        detail=detail,
        previous=None,
        previous_state="not-read",
        applied=None,
        fix=None,
        undo=None,
        error=None,
    )
    base.update(extra)  # type: ignore[typeddict-item]
    return base


def remediate(
    finding: Finding,
    exposure: Exposure,
    approval: Approval,
    *,
    mode: str,
    account: str,
    allow_account: bool,
    account_mismatch: bool = False,
) -> Remediation:
    """Decide what to do about ``finding`` in ``mode`` and, in enforce mode, do it."""
    bucket = finding["bucket"]
    region = finding["region"]
    if account_mismatch:
        return _result(mode, "none", "skipped", "the event comes from another account: not acting on it")
    if finding["verdict"] == "attempt":
        return _result(mode, "none", "not-needed", "the call failed, so nothing changed")
    if finding["verdict"] == "tamper":
        return _result(mode, "none", "skipped", "trail tampering is not remediated automatically")
    if approval.approved:
        return _result(mode, "none", "skipped", f"approved exception, never remediated: {approval.reason}")
    if finding["scope"] == "account":
        return _remediate_account(exposure, mode=mode, account=account, region=region, allowed=allow_account)
    if finding["scope"] == "access-point" or not bucket:
        fix = account_fix_command(account)
        detail = (
            "access point policies are not changed automatically; account-level Block Public Access "
            "(RestrictPublicBuckets) closes them"
        )
        return _result(mode, "none", "skipped", detail, fix=fix)
    return _remediate_bucket(bucket, exposure, mode=mode, account=account, region=region)


def _remediate_bucket(
    bucket: str, exposure: Exposure, *, mode: str, account: str, region: str | None
) -> Remediation:
    action = "put-bucket-public-access-block"
    previous = exposure["bucket_bpa"]
    previous_state = exposure["bucket_bpa_state"]
    fix = bucket_fix_command(bucket, account)
    undo = bucket_undo_command(bucket, account, previous, previous_state)
    known = {"previous": previous, "previous_state": previous_state}
    status = exposure["status"]
    if status == "gone":
        return _result(mode, "none", "not-needed", "the bucket no longer exists", **known)
    if status not in NEEDS_CLOSING:
        return _result(mode, "none", "not-needed", "nothing is public or held back only by BPA", **known)
    if previous_state == "set" and previous == ALL_ON:
        return _result(mode, "none", "not-needed", "the bucket's BPA already has all four flags on", **known)
    if mode == "off":
        detail = "REMEDIATION_MODE=off: alert only; run the fix command to close the bucket"
        return _result(mode, action, "skipped", detail, fix=fix, **known)
    if mode == "dry-run":
        detail = f"dry-run: would put all four BPA flags on bucket {bucket} and read them back"
        return _result(mode, action, "would-apply", detail, fix=fix, undo=undo, **known)
    s3 = aws_clients.client("s3", region)
    owner = {"Bucket": bucket, "ExpectedBucketOwner": account}
    try:
        s3.put_public_access_block(PublicAccessBlockConfiguration=dict(ALL_ON), **owner)
    except (ClientError, BotoCoreError, OSError) as exc:
        error = describe_error("s3:PutPublicAccessBlock", exc)
        detail = f"putting BPA on bucket {bucket} failed: {error['error']}"
        return _result(mode, action, "failed", detail, fix=fix, error=error, **known)
    return _verify(
        lambda: s3.get_public_access_block(**owner),
        "s3:GetPublicAccessBlock",
        f"bucket {bucket}",
        _result(mode, action, "applied", "", fix=fix, undo=undo, **known),
    )


def _remediate_account(
    exposure: Exposure, *, mode: str, account: str, region: str | None, allowed: bool
) -> Remediation:
    action = "put-account-public-access-block"
    previous = exposure["account_bpa"]
    previous_state = exposure["account_bpa_state"]
    fix = account_fix_command(account)
    undo = account_undo_command(account, previous, previous_state)
    known = {"previous": previous, "previous_state": previous_state, "fix": fix}
    if exposure["status"] == "closed":
        return _result(mode, "none", "not-needed", "account BPA already has all four flags on", **known)
    if mode == "off":
        return _result(mode, action, "skipped", "REMEDIATION_MODE=off: alert only", **known)
    if not allowed:
        detail = "account-level remediation is not allowed (ALLOW_ACCOUNT_REMEDIATION=false); fix it by hand"
        return _result(mode, action, "skipped", detail, **known)
    if mode == "dry-run":
        detail = "dry-run: would put all four BPA flags on the account and read them back"
        return _result(mode, action, "would-apply", detail, undo=undo, **known)
    s3control = aws_clients.client("s3control", region)
    try:
        s3control.put_public_access_block(AccountId=account, PublicAccessBlockConfiguration=dict(ALL_ON))
    except (ClientError, BotoCoreError, OSError) as exc:
        error = describe_error("s3control:PutPublicAccessBlock", exc)
        return _result(
            mode, action, "failed", f"putting account BPA failed: {error['error']}", error=error, **known
        )
    return _verify(
        lambda: s3control.get_public_access_block(AccountId=account),
        "s3control:GetPublicAccessBlock",
        f"account {account}",
        _result(mode, action, "applied", "", undo=undo, **known),
    )


def _verify(read, call: str, target: str, result: Remediation) -> Remediation:  # type: ignore[no-untyped-def]
    """Read the flags back: the put only counts when the read shows all four on."""
    try:
        config = read().get("PublicAccessBlockConfiguration") or {}
    except (ClientError, BotoCoreError, OSError) as exc:
        result["status"] = "unverified"
        result["error"] = describe_error(call, exc)
        result["detail"] = (
            f"put all four BPA flags on {target}, but reading them back failed: {result['error']['error']}"
        )
        return result
    applied = {flag: bool(config.get(flag)) for flag in BPA_FLAGS}
    result["applied"] = applied
    if applied == ALL_ON:
        result["detail"] = f"put all four BPA flags on {target} and read them back: verified"
    else:
        off = [flag for flag, on in applied.items() if not on]
        result["status"] = "failed"
        result["detail"] = f"put all four BPA flags on {target}, but the read-back shows {', '.join(off)} off"
    return result

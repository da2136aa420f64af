"""Closing an exposure with Block Public Access: decide, then put-then-verify behind the client seam.

Non-destructive: only BPA flags are set; no policy or ACL is deleted or rewritten.
Reversible: the previous BPA state is recorded and the undo command is spelled out.
Owner-checked: every S3 call passes ``ExpectedBucketOwner``. The all-four put closes
public policies (RestrictPublicBuckets) and bucket and object ACLs (IgnorePublicAcls);
repeating it is harmless, so a retry cannot do damage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from botocore.exceptions import BotoCoreError, ClientError

from handlers.detection.approvals import Approval
from handlers.detection.finding import Finding
from handlers.response import aws_clients
from handlers.response.cli_commands import (  # built with shell quoting; still importable from here
    ALL_ON,
    account_fix_command,
    account_undo_command,
    bucket_fix_command,
    bucket_undo_command,
)
from handlers.response.exposure import BPA_FLAGS, CallFailure, Exposure, describe_error

NEEDS_CLOSING = frozenset({"public-now", "exposable", "unknown"})


class Remediation(TypedDict):
    """What was (or would be) done about a finding, and how to undo it."""

    mode: str  # off | dry-run | enforce
    action: str  # none | put-bucket-public-access-block | put-account-public-access-block
    status: str  # not-needed | skipped | would-apply | applied | pending | unverified | failed
    detail: str
    previous: dict[str, bool] | None  # BPA before; None when not set or unknown (see previous_state)
    previous_state: str  # set | not-set | unknown | not-read
    applied: dict[str, bool] | None  # what the read-back showed
    fix: str | None  # command that closes the exposure (for a human, when not applied)
    undo: str | None  # command that restores the previous state
    error: CallFailure | None


class _Before(TypedDict):
    """The state a put would change (bucket or account BPA), as each result about it reports."""

    previous: dict[str, bool] | None
    previous_state: str


class _AccountBefore(_Before):
    fix: str | None


def _result(
    mode: str,
    action: str,
    status: str,
    detail: str,
    *,
    previous: dict[str, bool] | None = None,
    previous_state: str = "not-read",
    applied: dict[str, bool] | None = None,
    fix: str | None = None,
    undo: str | None = None,
    error: CallFailure | None = None,
) -> Remediation:
    return Remediation(
        mode=mode,
        action=action,
        status=status,
        detail=detail,
        previous=previous,
        previous_state=previous_state,
        applied=applied,
        fix=fix,
        undo=undo,
        error=error,
    )


# Called before a put with the target ("bucket:<name>" or "account:<id>") and its state before;
# returns whether the action was recorded first (see handlers.response.idempotency: write-ahead).
ActionGate = Callable[[str, dict[str, Any]], bool]
ACCOUNT_POLL_SECONDS = (1.0, 2.0, 4.0, 8.0)  # account BPA propagates: read back for up to ~15 s


def remediate(
    finding: Finding,
    exposure: Exposure,
    approval: Approval,
    *,
    mode: str,
    account: str,
    allow_account: bool,
    account_mismatch: bool = False,
    gate: ActionGate | None = None,
    acted_before: Mapping[str, Mapping[str, Any]] | None = None,
) -> Remediation:
    """Decide what to do about ``finding`` in ``mode`` and, in enforce mode, do it.

    ``gate``: called before any put; when it returns False nothing is changed (the action
    could not be recorded first, so a retry might repeat it and lose the undo).
    ``acted_before``: targets an earlier attempt of the same event already acted on, with the
    state they had before; they are read back, not put again.
    """
    bucket = finding["bucket"]
    region = finding["region"]
    if account_mismatch:
        return _result(mode, "none", "skipped", "the event comes from another account: not acting on it")
    if finding["verdict"] == "attempt":
        return _result(mode, "none", "not-needed", "the call failed, so nothing changed")
    if finding["verdict"] == "tamper":
        return _result(mode, "none", "skipped", "trail tampering is not remediated automatically")
    if finding["verdict"] == "approval":
        return _result(mode, "none", "not-needed", "an approval change is recorded, not remediated")
    if approval.approved:
        return _result(mode, "none", "skipped", f"approved exception, never remediated: {approval.reason}")
    earlier = dict(acted_before or {})
    if finding["scope"] == "account":
        return _remediate_account(
            exposure,
            mode=mode,
            account=account,
            region=region,
            allowed=allow_account,
            gate=gate,
            earlier=earlier,
        )
    if finding["scope"] == "access-point" or not bucket:
        fix = account_fix_command(account)
        detail = (
            "access point policies are not changed automatically; account-level Block Public Access "
            "(RestrictPublicBuckets) closes them"
        )
        return _result(mode, "none", "skipped", detail, fix=fix)
    return _remediate_bucket(
        bucket,
        exposure,
        mode=mode,
        account=account,
        region=region,
        gate=gate,
        earlier=earlier,
        approval_unknown=approval.unknown,
    )


def _remediate_bucket(
    bucket: str,
    exposure: Exposure,
    *,
    mode: str,
    account: str,
    region: str | None,
    gate: ActionGate | None,
    earlier: dict[str, Mapping[str, Any]],
    approval_unknown: bool = False,
) -> Remediation:
    action = "put-bucket-public-access-block"
    target = f"bucket:{bucket}"
    previous, previous_state = exposure["bucket_bpa"], exposure["bucket_bpa_state"]
    if target in earlier:  # the state before the earlier attempt's put, not after it
        previous, previous_state = _before(earlier[target])
    fix = bucket_fix_command(bucket, account)
    undo = bucket_undo_command(bucket, account, previous, previous_state)
    known = _Before(previous=previous, previous_state=previous_state)
    status = exposure["status"]
    s3 = aws_clients.client("s3", region)
    owner = {"Bucket": bucket, "ExpectedBucketOwner": account}
    write = _BpaWrite(
        put=lambda: s3.put_public_access_block(PublicAccessBlockConfiguration=dict(ALL_ON), **owner),
        read=lambda: s3.get_public_access_block(**owner),
        call="s3:PutPublicAccessBlock",
        target=f"bucket {bucket}",
    )
    if target in earlier and mode == "enforce":
        # An earlier attempt of this event wrote this action ahead. Its put may or may not have
        # reached S3 before that attempt died: if the flags are on, it did; otherwise put now.
        return _complete_earlier(write, _result(mode, action, "applied", "", fix=fix, undo=undo, **known))
    if status == "gone":
        return _result(mode, "none", "not-needed", "the bucket no longer exists", **known)
    if status not in NEEDS_CLOSING:
        return _result(mode, "none", "not-needed", "nothing is public or held back only by BPA", **known)
    if previous_state == "set" and previous == ALL_ON:
        return _result(mode, "none", "not-needed", "the bucket's BPA already has all four flags on", **known)
    if approval_unknown:
        # The bucket may be approved: a failed tag read must never take an approved site down.
        detail = (
            "not closed: the bucket's tags could not be read, so it may carry a valid approval; "
            "run the fix command if it should not be public (the next sweep checks it again)"
        )
        return _result(mode, action, "skipped", detail, fix=fix, **known)
    if mode == "off":
        detail = "REMEDIATION_MODE=off: alert only; run the fix command to close the bucket"
        return _result(mode, action, "skipped", detail, fix=fix, **known)
    if mode == "dry-run":
        detail = f"dry-run: would put all four BPA flags on bucket {bucket} and read them back"
        return _result(mode, action, "would-apply", detail, fix=fix, undo=undo, **known)
    if gate is not None and not gate(target, {"previous": previous, "previous_state": previous_state}):
        detail = (
            "not closed: the action could not be recorded first in the idempotency table, so a retry "
            "might repeat it and lose the undo; run the fix command (the next sweep checks it again)"
        )
        return _result(mode, action, "skipped", detail, fix=fix, **known)
    return _put_and_verify(write, _result(mode, action, "applied", "", fix=fix, undo=undo, **known))


def _remediate_account(
    exposure: Exposure,
    *,
    mode: str,
    account: str,
    region: str | None,
    allowed: bool,
    gate: ActionGate | None,
    earlier: dict[str, Mapping[str, Any]],
) -> Remediation:
    action = "put-account-public-access-block"
    target = f"account:{account}"
    previous, previous_state = exposure["account_bpa"], exposure["account_bpa_state"]
    if target in earlier:
        previous, previous_state = _before(earlier[target])
    fix = account_fix_command(account)
    undo = account_undo_command(account, previous, previous_state)
    known = _AccountBefore(previous=previous, previous_state=previous_state, fix=fix)
    s3control = aws_clients.client("s3control", region)

    def read() -> dict[str, Any]:
        return dict(s3control.get_public_access_block(AccountId=account))

    write = _BpaWrite(
        put=lambda: s3control.put_public_access_block(
            AccountId=account, PublicAccessBlockConfiguration=dict(ALL_ON)
        ),
        read=read,
        call="s3control:PutPublicAccessBlock",
        target=f"account {account}",
        verify=lambda result: _verify_account(read, account, result),
    )
    if target in earlier and mode == "enforce" and allowed:
        return _complete_earlier(write, _result(mode, action, "applied", "", undo=undo, **known))
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
    if gate is not None and not gate(target, {"previous": previous, "previous_state": previous_state}):
        detail = (
            "not changed: the action could not be recorded first in the idempotency table, so a retry "
            "might repeat it and lose the undo; run the fix command"
        )
        return _result(mode, action, "skipped", detail, **known)
    return _put_and_verify(write, _result(mode, action, "applied", "", undo=undo, **known))


def _verify_account(read: Callable[[], dict[str, Any]], account: str, result: Remediation) -> Remediation:
    """Account BPA takes time to propagate: poll (bounded) before any verdict; ``pending`` if unseen."""
    waited = 0.0
    for delay in (0.0, *ACCOUNT_POLL_SECONDS):
        if delay:
            time.sleep(delay)
            waited += delay
        result = _verify(read, "s3control:GetPublicAccessBlock", f"account {account}", result)
        if result["status"] == "applied":
            return result
    if result["status"] == "unverified":  # the last read-back failed: say so, not "pending"
        return result
    result["status"] = "pending"
    result["detail"] = (
        f"put all four BPA flags on account {account}; after {waited:.0f} s of polling the read-back "
        "does not show them yet (account-level settings propagate over minutes): check again"
    )
    return result


def _flags_now(read: Callable[[], Any]) -> dict[str, bool] | None:
    """The BPA flags now (all off when not set), or ``None`` when they cannot be read."""
    try:
        config = read().get("PublicAccessBlockConfiguration") or {}
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchPublicAccessBlockConfiguration":
            return dict.fromkeys(BPA_FLAGS, False)
        return None
    except (BotoCoreError, OSError):
        return None
    return {flag: bool(config.get(flag)) for flag in BPA_FLAGS}


@dataclass(frozen=True)
class _BpaWrite:
    """How to put and read back one target's four BPA flags (a bucket's or the account's)."""

    put: Callable[[], Any]
    read: Callable[[], Any]
    call: str  # the put's API name, for errors ("s3:PutPublicAccessBlock")
    target: str  # "bucket NAME" or "account ID", for details
    verify: Callable[[Remediation], Remediation] | None = None  # default: one read-back (_verify)


def _complete_earlier(write: _BpaWrite, result: Remediation) -> Remediation:
    """Finish an action an earlier attempt of the event wrote ahead (its put may not have landed).

    Flags on: that put landed. Flags off: it never reached S3 (the attempt died first), so put
    now. Unreadable: do not put blindly a second time; say so, with the fix command.
    """
    now_on = _flags_now(write.read)
    if now_on == ALL_ON:
        result["applied"] = dict(ALL_ON)
        result["detail"] = (
            f"all four BPA flags on {write.target} were put by an earlier attempt of this event: verified"
        )
        return result
    if now_on is None:
        result["status"] = "unverified"
        result["detail"] = (
            f"an earlier attempt of this event was about to put all four BPA flags on {write.target}, "
            "but they cannot be read now to confirm it; run the fix command"
        )
        return result
    return _put_and_verify(write, result)


def _put_and_verify(write: _BpaWrite, result: Remediation) -> Remediation:
    """Put all four flags, then read them back (``write.verify``, default :func:`_verify`)."""
    try:
        write.put()
    except (ClientError, BotoCoreError, OSError) as exc:
        error = describe_error(write.call, exc)
        result["status"] = "failed"
        result["error"] = error
        result["detail"] = f"putting BPA on {write.target} failed: {error['error']}"
        return result
    if write.verify is not None:
        return write.verify(result)
    return _verify(write.read, write.call.replace("Put", "Get", 1), write.target, result)


def _before(recorded: Mapping[str, Any]) -> tuple[dict[str, bool] | None, str]:
    """The state an earlier attempt recorded before acting (see :mod:`handlers.response.idempotency`)."""
    previous = recorded.get("previous")
    state = recorded.get("previous_state")
    flags = {flag: bool(previous.get(flag)) for flag in BPA_FLAGS} if isinstance(previous, dict) else None
    return flags, state if state in ("set", "not-set", "unknown") else "unknown"


def _verify(read: Callable[[], Any], call: str, target: str, result: Remediation) -> Remediation:
    """Read the flags back: the put only counts when the read shows all four on."""
    try:
        config = read().get("PublicAccessBlockConfiguration") or {}
    except (ClientError, BotoCoreError, OSError) as exc:
        failure = describe_error(call, exc)
        result["status"] = "unverified"
        result["error"] = failure
        result["detail"] = (
            f"put all four BPA flags on {target}, but reading them back failed: {failure['error']}"
        )
        return result
    applied = {flag: bool(config.get(flag)) for flag in BPA_FLAGS}
    result["applied"] = applied
    result["error"] = None
    if applied == ALL_ON:
        result["status"] = "applied"
        result["detail"] = f"put all four BPA flags on {target} and read them back: verified"
    else:
        off = [flag for flag, on in applied.items() if not on]
        result["status"] = "failed"
        result["detail"] = f"put all four BPA flags on {target}, but the read-back shows {', '.join(off)} off"
    return result

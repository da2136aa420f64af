"""The AWS CLI commands an alert spells out (fix, undo, look-up), built from argv with shell quoting.

A bucket or account name reaches these builders from a CloudTrail record or a live read, so
it is validated first (:mod:`handlers.detection.safe_text`): an invalid value gives ``None`` (no
command at all) rather than a command a responder might paste with someone else's text in
it. Valid values are joined with ``shlex.join``, so ``shlex.split`` of every command gives
back exactly the argv it was built from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from handlers.detection.safe_text import checked_account, checked_bucket, checked_region, shell_command
from handlers.response.exposure import BPA_FLAGS

ALL_ON: dict[str, bool] = dict.fromkeys(BPA_FLAGS, True)


def _config_arg(flags: Mapping[str, object]) -> str:
    """The CLI's shorthand for a BPA configuration: ``BlockPublicAcls=true,IgnorePublicAcls=false,...``."""
    return ",".join(f"{flag}={str(bool(flags.get(flag))).lower()}" for flag in BPA_FLAGS)


def bucket_put_argv(bucket: str | None, account: str | None, flags: Mapping[str, object]) -> list[str] | None:
    """argv of ``aws s3api put-public-access-block`` setting ``flags`` on ``bucket``; None if invalid."""
    valid_bucket, valid_account = checked_bucket(bucket), checked_account(account)
    if valid_bucket is None or valid_account is None:
        return None
    return [
        "aws", "s3api", "put-public-access-block",
        "--bucket", valid_bucket,
        "--expected-bucket-owner", valid_account,
        "--public-access-block-configuration", _config_arg(flags),
    ]  # fmt: skip


def account_put_argv(account: str | None, flags: Mapping[str, object]) -> list[str] | None:
    """argv of ``aws s3control put-public-access-block`` setting ``flags`` on ``account``; None if invalid."""
    valid_account = checked_account(account)
    if valid_account is None:
        return None
    return [
        "aws", "s3control", "put-public-access-block",
        "--account-id", valid_account,
        "--public-access-block-configuration", _config_arg(flags),
    ]  # fmt: skip


def bucket_fix_command(bucket: str | None, account: str | None) -> str | None:
    """The CLI command that puts all four BPA flags on a bucket; None when bucket or account is invalid."""
    argv = bucket_put_argv(bucket, account, ALL_ON)
    return shell_command(argv) if argv else None


def bucket_undo_command(
    bucket: str | None, account: str | None, previous: Mapping[str, object] | None, state: str
) -> str | None:
    """The CLI command that restores a bucket's previous BPA state; None when bucket or account is invalid.

    When the previous state could not be read, a sentence saying so (not a command).
    """
    valid_bucket, valid_account = checked_bucket(bucket), checked_account(account)
    if valid_bucket is None or valid_account is None:
        return None
    if state == "not-set":
        return shell_command(
            [
                "aws", "s3api", "delete-public-access-block",
                "--bucket", valid_bucket, "--expected-bucket-owner", valid_account,
            ]
        )  # fmt: skip
    if state == "set" and previous is not None:
        argv = bucket_put_argv(valid_bucket, valid_account, previous)
        return shell_command(argv) if argv else None
    return (
        "the previous state could not be read; compare with the CloudTrail record and restore the "
        f"flags it had with aws s3api put-public-access-block on bucket {valid_bucket}"
    )


def account_fix_command(account: str | None) -> str | None:
    """The CLI command that puts all four BPA flags on the account; None when the account id is invalid."""
    argv = account_put_argv(account, ALL_ON)
    return shell_command(argv) if argv else None


def account_undo_command(
    account: str | None, previous: Mapping[str, object] | None, state: str
) -> str | None:
    """The CLI command that restores the account's previous BPA state; None when the account id is invalid.

    When the previous state could not be read, a sentence saying so (not a command).
    """
    valid_account = checked_account(account)
    if valid_account is None:
        return None
    if state == "not-set":
        return shell_command(
            ["aws", "s3control", "delete-public-access-block", "--account-id", valid_account]
        )
    if state == "set" and previous is not None:
        argv = account_put_argv(valid_account, previous)
        return shell_command(argv) if argv else None
    return "the previous state could not be read; restore it by hand from the CloudTrail record"


def account_check_command(account: str | None) -> str | None:
    """The CLI command that reads the account's BPA flags (to see a pending change land)."""
    valid_account = checked_account(account)
    if valid_account is None:
        return None
    return shell_command(["aws", "s3control", "get-public-access-block", "--account-id", valid_account])


def lookup_events_command(region: str | None, attribute: str, value: str | None) -> str | None:
    """``aws cloudtrail lookup-events`` for one lookup attribute; None when region or value is missing.

    ``attribute`` is the caller's constant (``Username``, ``ResourceName``); ``value`` must already
    have passed a validator. The shorthand ``AttributeKey=...,AttributeValue=...`` is split by the
    CLI on ``,``, so a value holding a comma is refused.
    """
    valid_region = checked_region(region)
    if valid_region is None or not value or "," in value:
        return None
    return shell_command(
        [
            "aws", "cloudtrail", "lookup-events", "--region", valid_region,
            "--lookup-attributes", f"AttributeKey={attribute},AttributeValue={value}",
            "--max-results", "50",
        ]
    )  # fmt: skip


def ownership_enforced_command(bucket: str | None, account: str | None) -> str | None:
    """``put-bucket-ownership-controls`` with BucketOwnerEnforced (ACLs off); None if a value is invalid."""
    valid_bucket, valid_account = checked_bucket(bucket), checked_account(account)
    if valid_bucket is None or valid_account is None:
        return None
    return shell_command(
        [
            "aws", "s3api", "put-bucket-ownership-controls",
            "--bucket", valid_bucket,
            "--expected-bucket-owner", valid_account,
            "--ownership-controls", "Rules=[{ObjectOwnership=BucketOwnerEnforced}]",
        ]
    )  # fmt: skip


def logging_enable_command(bucket: str | None, account: str | None, target: str | None) -> str | None:
    """``put-bucket-logging`` sending the bucket's server access logs to ``target`` under ``<bucket>/``."""
    valid_bucket, valid_account, valid_target = (
        checked_bucket(bucket),
        checked_account(account),
        checked_bucket(target),
    )
    if valid_bucket is None or valid_account is None or valid_target is None:
        return None
    status = {"LoggingEnabled": {"TargetBucket": valid_target, "TargetPrefix": f"{valid_bucket}/"}}
    return shell_command(
        [
            "aws", "s3api", "put-bucket-logging",
            "--bucket", valid_bucket,
            "--expected-bucket-owner", valid_account,
            "--bucket-logging-status", json.dumps(status, separators=(",", ":")),
        ]
    )  # fmt: skip

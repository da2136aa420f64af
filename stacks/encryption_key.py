"""The stack's customer-managed KMS key: alerts topic, dead-letter queue, logs, table and trail.

One key keeps the key policy reviewable in one place. Each AWS service gets only the
operations it needs, scoped to this account (and, for CloudTrail, to this trail).
"""

from __future__ import annotations

import json
from typing import Any

from stacks.bindings import Construct, KmsAlias, KmsKey
from stacks.config import AccountConfig


def key_policy(account: AccountConfig, trail_arn: str | None) -> dict[str, Any]:
    """The key policy document (pure, for the stack and the tests)."""
    p, acct, region = account.partition, account.account_id, account.home_region
    this_account = {"StringEquals": {"aws:SourceAccount": acct}}
    statements: list[dict[str, Any]] = [
        {
            # The account administers the key through IAM; without this the key is unmanageable.
            "Sid": "AccountAdministersKeyThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{p}:iam::{acct}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        # Services that send this account's messages to the encrypted topic and queues.
        *(
            {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": this_account,
            }
            for sid, service in (
                ("AlarmsPublishToEncryptedTopic", "cloudwatch.amazonaws.com"),
                ("EventBridgeDeadLettersToEncryptedQueue", "events.amazonaws.com"),
            )
        ),
        {
            "Sid": "LogsEncryptFunctionLogs",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": [
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            "Resource": "*",
            "Condition": {
                "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:{p}:logs:{region}:{acct}:log-group:*"}
            },
        },
    ]
    if trail_arn:
        statements.append(
            {
                "Sid": "CloudTrailEncryptsThisTrailsLogs",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": ["kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:SourceArn": trail_arn},
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:{p}:cloudtrail:*:{acct}:trail/*"
                    },
                },
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


class EncryptionKey(Construct):
    """A rotating customer-managed key with an alias named after the stack."""

    def __init__(self, scope: Construct, id: str, *, account: AccountConfig, trail_arn: str | None) -> None:
        super().__init__(scope, id)
        self.key = KmsKey(
            self,
            "key",
            description=f"s3-public-exposure-detector ({account.name}): alerts, dead letters, logs, trail",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=json.dumps(key_policy(account, trail_arn)),
        )
        KmsAlias(self, "alias", name=f"alias/{account.name}-detector", target_key_id=self.key.key_id)

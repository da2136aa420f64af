"""The encrypted dead-letter queue for events that could not be delivered or processed.

Both EventBridge (delivery to the function failed after its retries) and Lambda (the
function failed on every async attempt) send here; an alarm on its depth pages the topic.
"""

from __future__ import annotations

import json

from stacks.bindings import Construct, SqsQueue
from stacks.config import AccountConfig

RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum: two weeks to investigate and replay


def dead_letter_policy(queue_arn: str, rule_arns: list[str], sid: str) -> str:
    """A queue policy letting only ``rule_arns`` dead-letter undeliverable events into the queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": sid,
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arns}},
                }
            ],
        }
    )


class DeadLetterQueue(Construct):
    """A KMS-encrypted SQS queue with the longest retention SQS allows."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        account: AccountConfig,
        kms_key_arn: str,
        source_rule_arns: list[str],
    ) -> None:
        super().__init__(scope, id)
        name = f"{account.name}-detector-dead-letters"
        arn = f"arn:{account.partition}:sqs:{account.home_region}:{account.account_id}:{name}"
        self.queue = SqsQueue(
            self,
            "queue",
            name=name,
            kms_master_key_id=kms_key_arn,
            kms_data_key_reuse_period_seconds=300,
            message_retention_seconds=RETENTION_SECONDS,
            # Inline, with ARNs written out: a separate queue policy costs ~25 s on apply and destroy.
            policy=dead_letter_policy(arn, source_rule_arns, "RulesDeadLetterUndeliveredEvents"),
        )

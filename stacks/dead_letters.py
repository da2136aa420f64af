"""The encrypted dead-letter queue for events that could not be delivered or processed.

Both EventBridge (delivery to the function failed after its retries) and Lambda (the
function failed on every async attempt) send here; an alarm on its depth pages the topic.
"""

from __future__ import annotations

from stacks.bindings import Construct, SqsQueue
from stacks.config import AccountConfig

RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum: two weeks to investigate and replay


class DeadLetterQueue(Construct):
    """A KMS-encrypted SQS queue with the longest retention SQS allows."""

    def __init__(self, scope: Construct, id: str, *, account: AccountConfig, kms_key_arn: str) -> None:
        super().__init__(scope, id)
        self.queue = SqsQueue(
            self,
            "queue",
            name=f"{account.name}-detector-dead-letters",
            kms_master_key_id=kms_key_arn,
            kms_data_key_reuse_period_seconds=300,
            message_retention_seconds=RETENTION_SECONDS,
        )

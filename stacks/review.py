"""The exposure review: did anyone read or write a bucket while it was public?

- the review queue (KMS-encrypted, with its own dead-letter queue): the response function sends
  a window there when its remediation closes it, the sweep when it finds a known exposure closed
  or deleted, and every run while one stays open;
- the function (the response function's package, handler ``handlers.review.handler``), its log
  group, role and policy (from ``review_calls`` in handlers/permissions.py): it reads logging
  settings of any bucket, but list and read only the buckets named in ``review.log_buckets`` and
  the detector's own trail bucket;
- the event source mapping feeding the queue to the function.

Cost: one invocation per window closed plus one per open window per sweep run, each listing
and reading the log objects of the window (GET requests at $0.0004 per 1,000).
"""

from __future__ import annotations

import json

from stacks.bindings import (
    Construct,
    IamRolePolicy,
    LambdaEventSourceMapping,
    LambdaEventSourceMappingScalingConfig,
    SqsQueue,
)
from stacks.config import AccountConfig
from stacks.iam_policy import ReviewPolicyTargets, review_function_policy
from stacks.response_function import environment_variables, handler_function, log_group_and_role
from stacks.trail import log_bucket_name, trail_arn

HANDLER = "handlers.review.handler"
MEMORY_MB = 512
TIMEOUT_SECONDS = 900  # a long window continues in a new message before this runs out
RETENTION_SECONDS = 4 * 24 * 3600  # SQS default: a review request older than that is stale
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
MAX_RECEIVES = 5
CONCURRENCY = 2  # reviews are few and not urgent to the second; keeps S3 and LookupEvents calm


def function_name(account: AccountConfig) -> str:
    return f"{account.name}-s3-exposure-review"


class ReviewQueue(Construct):
    """The queue of windows to review, with its dead letters (created before its senders)."""

    def __init__(self, scope: Construct, id: str, *, account: AccountConfig, kms_key_arn: str) -> None:
        super().__init__(scope, id)
        self.dead_letters = SqsQueue(
            self,
            "dead-letters",
            name=f"{account.name}-review-dead-letters",
            kms_master_key_id=kms_key_arn,
            kms_data_key_reuse_period_seconds=300,
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
        )
        self.queue = SqsQueue(
            self,
            "requests",
            name=f"{account.name}-review-requests",
            kms_master_key_id=kms_key_arn,
            kms_data_key_reuse_period_seconds=300,
            message_retention_seconds=RETENTION_SECONDS,
            visibility_timeout_seconds=6 * TIMEOUT_SECONDS,  # AWS's advice for Lambda event sources
            redrive_policy=json.dumps(
                {"deadLetterTargetArn": self.dead_letters.arn, "maxReceiveCount": MAX_RECEIVES}
            ),
        )


class ReviewFunction(Construct):
    """Function, role, log group and the event source mapping from the review queue."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        account: AccountConfig,
        queue: ReviewQueue,
        kms_key_arn: str,
        topic_arn: str,
        table_arn: str,
        table_name: str,
    ) -> None:
        super().__init__(scope, id)
        name = function_name(account)
        p, acct = account.partition, account.account_id
        self.log_group, self.role, log_group_arn = log_group_and_role(
            self,
            account,
            name,
            kms_key_arn,
            "Reviews S3 access logs and data events for the time a bucket was public",
        )
        self.policy_document = review_function_policy(
            ReviewPolicyTargets(
                partition=p,
                account_id=acct,
                topic_arn=topic_arn,
                key_arn=kms_key_arn,
                table_arn=table_arn,
                review_queue_arn=queue.queue.arn,
                dead_letter_queue_arn=queue.dead_letters.arn,
                log_group_arn=log_group_arn,
                trail_arn=trail_arn(account) if account.create_trail else None,
                trail_bucket=log_bucket_name(account) if account.create_trail else None,
            ),
            account.review_log_buckets,
        )
        policy = IamRolePolicy(
            self,
            "policy",
            name="review-least-privilege",
            role=self.role.id,
            policy=json.dumps(self.policy_document),
        )
        variables = {
            **environment_variables(account, topic_arn, table_name, kms_key_arn, queue.queue.url),
            "REVIEW_LATE_MARGIN_MINUTES": str(account.review_late_margin_minutes),
        }
        # The log bucket the "turn logging on" fix names: the first one named outright, if any.
        target = next((b for b in account.review_log_buckets if not set(b) & set("*?[]!")), None)
        if target:
            variables["REVIEW_LOG_TARGET_BUCKET"] = target
        self.function = handler_function(
            self,
            name=name,
            description="Reports who read or wrote an S3 bucket while it was public (access logs)",
            role_arn=self.role.arn,
            handler=HANDLER,
            memory_mb=MEMORY_MB,
            timeout=TIMEOUT_SECONDS,
            reserved_concurrency=CONCURRENCY + 1,
            kms_key_arn=kms_key_arn,
            variables=variables,
            dead_letter_arn=queue.dead_letters.arn,
            log_group=self.log_group,
            policy=policy,
        )
        LambdaEventSourceMapping(
            self,
            "requests",
            event_source_arn=queue.queue.arn,
            function_name=self.function.arn,
            batch_size=1,  # one window per invocation: its time budget is the whole timeout
            function_response_types=["ReportBatchItemFailures"],
            scaling_config=LambdaEventSourceMappingScalingConfig(maximum_concurrency=CONCURRENCY),
            depends_on=[policy],
        )

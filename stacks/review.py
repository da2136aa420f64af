"""The exposure review: did anyone read or write a bucket while it was public?

- the review queue (KMS-encrypted, with its own dead-letter queue): the response function sends
  a window there when its remediation closes it, the sweep when it finds a known exposure closed
  or deleted, and every run while one stays open;
- the function (the response function's package, handler ``handlers.review.function.handler``), its log
  group, role and policy (from ``review_calls`` in handlers/response/permissions.py): it reads logging
  settings of any bucket, but list and read only the buckets named in ``review.log_buckets`` and
  the detector's own trail bucket;
- the event source mapping feeding the queue to the function.

Cost: one invocation per window closed plus one per open window per sweep run, each listing
and reading the log objects of the window (GET requests at $0.0004 per 1,000).
"""

from __future__ import annotations

import json

from handlers.response import function_env
from handlers.response.function_env import ReviewEnv
from stacks.bindings import Construct, SqsQueue
from stacks.config import AccountConfig
from stacks.iam_policy import ReviewPolicyTargets, review_function_policy
from stacks.response_function import (
    least_privilege_function,
    log_group_arn,
    queue_event_source,
    response_values,
)
from stacks.trail import log_bucket_name, trail_arn

HANDLER = "handlers.review.function.handler"
MEMORY_MB = 512
TIMEOUT_SECONDS = 900  # a long window continues in a new message before this runs out
RETENTION_SECONDS = 4 * 24 * 3600  # SQS default: a review request older than that is stale
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
MAX_RECEIVES = 5
CONCURRENCY = 2  # reviews are few and not urgent to the second; keeps S3 and LookupEvents calm


def function_name(account: AccountConfig) -> str:
    return f"{account.name}-s3-exposure-review"


def review_environment(
    account: AccountConfig, topic_arn: str, table_name: str, kms_key_arn: str, queue_url: str
) -> dict[str, str]:
    """The response function's variables (same contract) plus the review's own."""
    values = {
        **response_values(account, topic_arn, table_name, kms_key_arn, queue_url),
        ReviewEnv.LATE_MARGIN_MINUTES: str(account.review_late_margin_minutes),
    }
    # The log bucket the "turn logging on" fix names: the first one named outright, if any.
    target = next((b for b in account.review_log_buckets if not set(b) & set("*?[]!")), None)
    if target:
        values[ReviewEnv.LOG_TARGET_BUCKET] = target
    return function_env.environment("review function", function_env.REVIEW, values)


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
        self.policy_document = review_function_policy(
            ReviewPolicyTargets(
                partition=p,
                account_id=acct,
                topic_arn=topic_arn,
                key_arn=kms_key_arn,
                table_arn=table_arn,
                review_queue_arn=queue.queue.arn,
                dead_letter_queue_arn=queue.dead_letters.arn,
                log_group_arn=log_group_arn(account, name),
                trail_arn=trail_arn(account) if account.create_trail else None,
                trail_bucket=log_bucket_name(account) if account.create_trail else None,
            ),
            account.review_log_buckets,
        )
        parts = least_privilege_function(
            self,
            account=account,
            name=name,
            kms_key_arn=kms_key_arn,
            role_description="Reviews S3 access logs and data events for the time a bucket was public",
            policy_name="review-least-privilege",
            policy_document=self.policy_document,
            description="Reports who read or wrote an S3 bucket while it was public (access logs)",
            handler=HANDLER,
            memory_mb=MEMORY_MB,
            timeout=TIMEOUT_SECONDS,
            reserved_concurrency=CONCURRENCY + 1,
            variables=review_environment(account, topic_arn, table_name, kms_key_arn, queue.queue.url),
            dead_letter_arn=queue.dead_letters.arn,
        )
        self.log_group, self.role, self.function = parts.log_group, parts.role, parts.function
        # One window per invocation: its time budget is the whole timeout.
        queue_event_source(
            self, "requests", queue_arn=queue.queue.arn, parts=parts, max_concurrency=CONCURRENCY
        )

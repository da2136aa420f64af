"""The scheduled exposure sweep: function, schedule, work queue and what only they use.

- the function (the response function's package, handler ``handlers.sweep.function.handler``), its
  log group, role and least-privilege policy (from ``sweep_calls_for`` in handlers/response/permissions.py);
- an EventBridge schedule (``rate(N minutes)``, hourly by default) that starts a scheduled run;
- the work queue for fan-out (KMS-encrypted, with its own dead-letter queue) and the event
  source mapping that feeds its batches to the same function as worker invocations.

Cost of the default hourly schedule, per 1,000 buckets: 720 runs a month, each making about
six S3 GET-class calls per bucket (policy status, policy, ACL, BPA, ownership, tags) plus one
ListBuckets page per 1,000 buckets: ~4.3 million requests a month, about $1.73 at $0.0004 per
1,000 GET requests (us-east-1), plus Lambda time (~30-60 s at 1 GB per run: ~$0.50-1.00) and
CloudWatch Logs for one EMF line per run. See the README's sweep section.
"""

from __future__ import annotations

import json

from handlers.response import function_env
from handlers.response.function_env import SweepEnv
from handlers.sweep.config import DEFAULT_BATCH_SIZE
from stacks.bindings import (
    CloudwatchEventRule,
    CloudwatchEventTarget,
    CloudwatchEventTargetRetryPolicy,
    Construct,
    LambdaFunctionEventInvokeConfig,
    LambdaPermission,
    SqsQueue,
)
from stacks.config import AccountConfig
from stacks.iam_policy import SweepPolicyTargets, sweep_function_policy
from stacks.response_function import (
    least_privilege_function,
    log_group_arn,
    queue_event_source,
    response_values,
    sink_targets,
)

HANDLER = "handlers.sweep.function.handler"
MEMORY_MB = 1024  # CPU scales with memory: boto3 parsing of ~6 calls per bucket is the bottleneck
TIMEOUT_SECONDS = 900  # the Lambda maximum: a scheduled run may list and check thousands of buckets
WORK_RETENTION_SECONDS = 24 * 3600  # a batch older than a day is stale: later sweeps cover it
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
MAX_RECEIVES = 5  # AWS's advice for SQS event sources (throttled deliveries count as receives)


def function_name(account: AccountConfig) -> str:
    return f"{account.name}-s3-exposure-sweep"


def schedule_expression(interval_minutes: int) -> str:
    """The EventBridge rate expression (the config keeps it >= 15, so the plural form is right)."""
    return f"rate({interval_minutes} minutes)"


def sweep_environment(
    account: AccountConfig,
    topic_arn: str,
    table_name: str,
    kms_key_arn: str,
    work_queue_url: str,
    review_queue_url: str | None = None,
) -> dict[str, str]:
    """The response function's variables (same contract) plus the sweep's own."""
    values = {
        **response_values(account, topic_arn, table_name, kms_key_arn, review_queue_url),
        SweepEnv.WORK_QUEUE_URL: work_queue_url,
        SweepEnv.FANOUT_THRESHOLD: str(account.sweep_fanout_threshold),
        SweepEnv.THREADS: str(account.sweep_threads),
        SweepEnv.BATCH_SIZE: str(DEFAULT_BATCH_SIZE),
        SweepEnv.DIGEST_HOUR: str(account.sweep_digest_hour),
    }
    return function_env.environment("sweep function", function_env.SWEEP, values)


class SweepFunction(Construct):
    """Function, role, log group, schedule, work queue with dead letters, and event source mapping."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        account: AccountConfig,
        kms_key_arn: str,
        topic_arn: str,
        table_arn: str,
        table_name: str,
        review_queue_url: str | None = None,
        review_queue_arn: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        name = function_name(account)
        p, acct = account.partition, account.account_id

        self.dead_letters = SqsQueue(
            self,
            "work-dead-letters",
            name=f"{account.name}-sweep-work-dead-letters",
            # SQS-managed keys: it holds bucket names only, and not waiting for the KMS key
            # keeps it off the apply's critical path (each queue costs ~25 s to create).
            sqs_managed_sse_enabled=True,
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
        )
        self.queue = SqsQueue(
            self,
            "work-queue",
            name=f"{account.name}-sweep-work",
            kms_master_key_id=kms_key_arn,
            kms_data_key_reuse_period_seconds=300,
            message_retention_seconds=WORK_RETENTION_SECONDS,
            # AWS's advice for Lambda event sources: at least six times the function timeout.
            visibility_timeout_seconds=6 * TIMEOUT_SECONDS,
            redrive_policy=json.dumps(
                {"deadLetterTargetArn": self.dead_letters.arn, "maxReceiveCount": MAX_RECEIVES}
            ),
        )
        self.policy_document = sweep_function_policy(
            account.remediation_mode,
            SweepPolicyTargets(
                partition=p,
                account_id=acct,
                topic_arn=topic_arn,
                key_arn=kms_key_arn,
                table_arn=table_arn,
                work_queue_arn=self.queue.arn,
                dead_letter_queue_arn=self.dead_letters.arn,
                log_group_arn=log_group_arn(account, name),
                review_queue_arn=review_queue_arn,
                sinks=sink_targets(account),
            ),
            account.exception_buckets,
        )
        parts = least_privilege_function(
            self,
            account=account,
            name=name,
            kms_key_arn=kms_key_arn,
            role_description="Runs the scheduled S3 public-exposure sweep",
            policy_name="sweep-least-privilege",
            policy_document=self.policy_document,
            description="Sweeps every S3 bucket for public exposure on a schedule; alerts once per exposure",
            handler=HANDLER,
            memory_mb=MEMORY_MB,
            timeout=TIMEOUT_SECONDS,
            # One scheduled run plus the workers the event source may start.
            reserved_concurrency=account.sweep_worker_concurrency + 1,
            variables=sweep_environment(
                account, topic_arn, table_name, kms_key_arn, self.queue.url, review_queue_url
            ),
            dead_letter_arn=self.dead_letters.arn,
        )
        self.log_group, self.role, self.function = parts.log_group, parts.role, parts.function
        LambdaFunctionEventInvokeConfig(
            self,
            "async-invoke",
            function_name=self.function.function_name,
            # One retry of a failed scheduled run; a later run is due within the hour anyway.
            maximum_retry_attempts=1,
            maximum_event_age_in_seconds=min(3600, account.sweep_interval_minutes * 60),
        )

        self.schedule = CloudwatchEventRule(
            self,
            "schedule",
            name=f"{account.name}-s3-exposure-sweep",
            description=f"Starts the S3 exposure sweep every {account.sweep_interval_minutes} minutes",
            schedule_expression=schedule_expression(account.sweep_interval_minutes),
        )
        CloudwatchEventTarget(
            self,
            "schedule-target",
            rule=self.schedule.name,
            target_id="sweep",
            arn=self.function.arn,
            retry_policy=CloudwatchEventTargetRetryPolicy(
                maximum_event_age_in_seconds=min(3600, account.sweep_interval_minutes * 60),
                maximum_retry_attempts=3,
            ),
        )
        LambdaPermission(
            self,
            "schedule-invokes",
            statement_id="ScheduleStartsSweep",
            action="lambda:InvokeFunction",
            function_name=self.function.function_name,
            principal="events.amazonaws.com",
            source_arn=self.schedule.arn,
        )
        # One message = up to SWEEP_BATCH_SIZE buckets: plenty per invocation. Concurrency below
        # the reserved concurrency, so SQS deliveries are not throttled into the DLQ.
        queue_event_source(
            self,
            "work-source",
            queue_arn=self.queue.arn,
            parts=parts,
            max_concurrency=account.sweep_worker_concurrency,
        )

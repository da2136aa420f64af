"""The scheduled exposure sweep: function, schedule, work queue and what only they use.

- the function (the response function's package, handler ``handlers.sweep.handler``), its
  log group, role and least-privilege policy (from ``sweep_calls_for`` in handlers/permissions.py);
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

from handlers.sweep_config import DEFAULT_BATCH_SIZE
from stacks.bindings import (
    CloudwatchEventRule,
    CloudwatchEventTarget,
    CloudwatchEventTargetRetryPolicy,
    Construct,
    IamRolePolicy,
    LambdaEventSourceMapping,
    LambdaEventSourceMappingScalingConfig,
    LambdaFunctionEventInvokeConfig,
    LambdaPermission,
    SqsQueue,
)
from stacks.config import AccountConfig
from stacks.iam_policy import SweepPolicyTargets, sweep_function_policy
from stacks.response_function import environment_variables, handler_function, log_group_and_role, sink_targets

HANDLER = "handlers.sweep.handler"
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
    return {
        **environment_variables(account, topic_arn, table_name, kms_key_arn, review_queue_url),
        "SWEEP_WORK_QUEUE_URL": work_queue_url,
        "SWEEP_FANOUT_THRESHOLD": str(account.sweep_fanout_threshold),
        "SWEEP_THREADS": str(account.sweep_threads),
        "SWEEP_BATCH_SIZE": str(DEFAULT_BATCH_SIZE),
        "SWEEP_DIGEST_HOUR": str(account.sweep_digest_hour),
    }


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
        self.log_group, self.role, log_group_arn = log_group_and_role(
            self, account, name, kms_key_arn, "Runs the scheduled S3 public-exposure sweep"
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
                log_group_arn=log_group_arn,
                review_queue_arn=review_queue_arn,
                sinks=sink_targets(account),
            ),
            account.exception_buckets,
        )
        policy = IamRolePolicy(
            self,
            "policy",
            name="sweep-least-privilege",
            role=self.role.id,
            policy=json.dumps(self.policy_document),
        )
        self.function = handler_function(
            self,
            name=name,
            description="Sweeps every S3 bucket for public exposure on a schedule; alerts once per exposure",
            role_arn=self.role.arn,
            handler=HANDLER,
            memory_mb=MEMORY_MB,
            timeout=TIMEOUT_SECONDS,
            # One scheduled run plus the workers the event source may start.
            reserved_concurrency=account.sweep_worker_concurrency + 1,
            kms_key_arn=kms_key_arn,
            variables=sweep_environment(
                account, topic_arn, table_name, kms_key_arn, self.queue.url, review_queue_url
            ),
            dead_letter_arn=self.dead_letters.arn,
            log_group=self.log_group,
            policy=policy,
        )
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
        LambdaEventSourceMapping(
            self,
            "work-source",
            event_source_arn=self.queue.arn,
            function_name=self.function.arn,
            batch_size=1,  # one message = up to SWEEP_BATCH_SIZE buckets: plenty per invocation
            function_response_types=["ReportBatchItemFailures"],
            # Below the reserved concurrency, so SQS deliveries are not throttled into the DLQ.
            scaling_config=LambdaEventSourceMappingScalingConfig(
                maximum_concurrency=account.sweep_worker_concurrency
            ),
            depends_on=[policy],
        )

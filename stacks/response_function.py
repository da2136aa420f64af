"""The response function: the Lambda that classifies, confirms, alerts and (optionally) closes.

Also what only it uses: its role and least-privilege policy (from ``handlers/response/permissions.py``
via ``stacks/iam_policy.py``), its log group, and the idempotency table that suppresses
duplicate alerts for redelivered events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from handlers.response import function_env
from handlers.response.function_env import ResponseEnv as Env
from stacks.bindings import (
    AssetType,
    CloudwatchLogGroup,
    Construct,
    DynamodbTable,
    DynamodbTableAttribute,
    DynamodbTablePointInTimeRecovery,
    DynamodbTableServerSideEncryption,
    DynamodbTableTtl,
    Fn,
    IamRole,
    IamRolePolicy,
    LambdaEventSourceMapping,
    LambdaEventSourceMappingScalingConfig,
    LambdaFunction,
    LambdaFunctionDeadLetterConfig,
    LambdaFunctionEnvironment,
    LambdaFunctionEventInvokeConfig,
    LambdaFunctionLoggingConfig,
    TerraformAsset,
)
from stacks.config import AccountConfig
from stacks.iam_policy import PolicyTargets, SinkTargets, lambda_assume_role_policy, response_function_policy
from stacks.packaging import build_handler_zip
from stacks.rules import detector_context
from stacks.scan_exceptions import accept_findings

RUNTIME = "python3.12"
HANDLER = "handlers.response.function.handler"
MEMORY_MB = 256
ASYNC_RETRIES = 2  # Lambda's maximum for async invocations; then the dead-letter queue
MAX_EVENT_AGE_SECONDS = 6 * 3600
# Each record one JSON object in CloudWatch (handlers/response/decision_log.py writes decisions for it).
LOG_FORMAT = "JSON"
# Lambda's names for the levels the config accepts (``log_level``); the handlers' LOG_LEVEL keeps Python's.
LAMBDA_LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}
# START, END and REPORT (duration, memory, init time) are INFO: keep them for troubleshooting.
SYSTEM_LOG_LEVEL = "INFO"


def function_name(account: AccountConfig) -> str:
    return f"{account.name}-s3-exposure-response"


def chat_topic_name(account: AccountConfig) -> str:
    return f"{account.name}-s3-exposure-chat"


def chat_topic_arn(account: AccountConfig) -> str | None:
    """The chat topic's ARN when ``alerts.chat`` is on (its name is fixed, so no reference is needed)."""
    if not account.chat:
        return None
    return (
        f"arn:{account.partition}:sns:{account.home_region}:{account.account_id}:{chat_topic_name(account)}"
    )


def sink_targets(account: AccountConfig) -> SinkTargets:
    """Where the optional sinks write, for the functions' policies."""
    return SinkTargets(
        region=account.home_region,
        security_hub=account.security_hub,
        chat_topic_arn=chat_topic_arn(account),
        decision_events=account.eventbridge,
    )


def response_values(
    account: AccountConfig,
    topic_arn: str,
    table_name: str,
    kms_key_arn: str | None = None,
    review_queue_url: str | None = None,
) -> dict[str, str]:
    """The response function's variables by name (handlers/response/function_env.py), all strings;
    the sweep and
    the review add their own before :func:`handlers.response.function_env.environment` checks them.

    ``kms_key_arn`` is the stack's key; with the trail's name and bucket it lets the function
    recognise tampering with the detector's own trail (TRAIL_* and DETECTOR_KMS_KEY_ARN).
    ``review_queue_url``: the exposure review's queue (REVIEW_QUEUE_URL), when deployed.
    """
    chat = chat_topic_arn(account)
    values: dict[str, str] = {
        **detector_context(account, kms_key_arn).to_environment(),  # TRAIL_*, *_KMS_KEY_ARN, APPROVAL_TAG
        Env.ALERT_TOPIC_ARN: topic_arn,
        Env.REMEDIATION_MODE: account.remediation_mode,
        Env.ALLOW_ACCOUNT_REMEDIATION: _flag(account.allow_account_remediation),
        Env.ENVIRONMENT: account.environment,
        Env.ACCOUNT_NAME: account.name,
        Env.EXPECTED_ACCOUNT_ID: account.account_id,
        Env.EXCEPTION_BUCKETS: json.dumps(list(account.exception_buckets)),
        Env.MAX_APPROVAL_DAYS: str(account.max_approval_days),
        Env.WATCHED_REGIONS: ",".join(account.regions),
        Env.SENSITIVE_TAG: account.sensitive_tag,
        Env.SENSITIVE_TAG_VALUES: ",".join(account.sensitive_tag_values),
        Env.IDEMPOTENCY_TABLE: table_name,
        Env.LOG_LEVEL: account.log_level,
        Env.TRUSTED_PRINCIPALS: json.dumps(list(account.trusted_principals)),
        Env.ACTOR_HISTORY_SECONDS: str(account.actor_history_seconds),
        Env.SECURITY_HUB: _flag(account.security_hub),
        Env.DECISION_EVENTS: _flag(account.eventbridge),
    }
    if chat:
        values[Env.CHAT_TOPIC_ARN] = chat
    if review_queue_url:
        values[Env.REVIEW_QUEUE_URL] = review_queue_url
    return values


def _flag(value: bool) -> str:
    return "true" if value else "false"


def log_group_and_role(
    scope: Construct, account: AccountConfig, name: str, kms_key_arn: str, description: str
) -> tuple[CloudwatchLogGroup, IamRole, str]:
    """A function's encrypted log group and its role (only Lambda, for this account, may assume it).

    Returns both and the log group's ARN, which the function's policy scopes its log writes to.
    """
    log_group = CloudwatchLogGroup(
        scope,
        "log-group",
        name=f"/aws/lambda/{name}",
        retention_in_days=account.function_log_retention_days,
        kms_key_id=kms_key_arn,
    )
    role = IamRole(
        scope,
        "role",
        name=f"{name}-role",
        description=description,
        assume_role_policy=json.dumps(lambda_assume_role_policy(account.account_id)),
    )
    return log_group, role, log_group_arn(account, name)


def log_group_arn(account: AccountConfig, name: str) -> str:
    """The ARN of function ``name``'s log group (known before deploy: its policy is built from it)."""
    p, region, acct = account.partition, account.home_region, account.account_id
    return f"arn:{p}:logs:{region}:{acct}:log-group:/aws/lambda/{name}"


@dataclass(frozen=True)
class FunctionParts:
    """What :func:`least_privilege_function` creates, for the construct to expose."""

    log_group: CloudwatchLogGroup
    role: IamRole
    policy: IamRolePolicy
    function: LambdaFunction


def least_privilege_function(
    scope: Construct,
    *,
    account: AccountConfig,
    name: str,
    kms_key_arn: str,
    role_description: str,
    policy_name: str,
    policy_document: dict[str, Any],
    description: str,
    handler: str,
    memory_mb: int,
    timeout: int,
    reserved_concurrency: int,
    variables: dict[str, str],
    dead_letter_arn: str,
) -> FunctionParts:
    """A function running ``handler`` from the shared ``handlers/`` package, with its log group,
    role and inline least-privilege policy: how every function of the stack is deployed."""
    log_group, role, _ = log_group_and_role(scope, account, name, kms_key_arn, role_description)
    policy = IamRolePolicy(
        scope, "policy", name=policy_name, role=role.id, policy=json.dumps(policy_document)
    )
    package = TerraformAsset(scope, "package", path=str(build_handler_zip()), type=AssetType.FILE)
    function = LambdaFunction(
        scope,
        "function",
        function_name=name,
        description=description,
        role=role.arn,
        runtime=RUNTIME,
        architectures=["arm64"],
        handler=handler,
        filename=package.path,
        source_code_hash=Fn.filebase64sha256(package.path),
        memory_size=memory_mb,
        timeout=timeout,
        reserved_concurrent_executions=reserved_concurrency,
        kms_key_arn=kms_key_arn,
        environment=LambdaFunctionEnvironment(variables=variables),
        dead_letter_config=LambdaFunctionDeadLetterConfig(target_arn=dead_letter_arn),
        logging_config=LambdaFunctionLoggingConfig(
            log_format=LOG_FORMAT,
            application_log_level=LAMBDA_LOG_LEVELS[account.log_level],
            system_log_level=SYSTEM_LOG_LEVEL,
            log_group=log_group.name,
        ),
        depends_on=[log_group, policy],
    )
    accept_findings(function, "CKV_AWS_117", "CKV_AWS_272", "CKV_AWS_50")
    return FunctionParts(log_group=log_group, role=role, policy=policy, function=function)


def queue_event_source(
    scope: Construct, id: str, *, queue_arn: str, parts: FunctionParts, max_concurrency: int
) -> LambdaEventSourceMapping:
    """Feeds the queue to the function one message per invocation, retrying only failed messages."""
    return LambdaEventSourceMapping(
        scope,
        id,
        event_source_arn=queue_arn,
        function_name=parts.function.arn,
        batch_size=1,
        function_response_types=["ReportBatchItemFailures"],
        scaling_config=LambdaEventSourceMappingScalingConfig(maximum_concurrency=max_concurrency),
        depends_on=[parts.policy],  # the mapping polls as the role: its policy must exist first
    )


class ResponseFunction(Construct):
    """The function with its role, log group and idempotency table."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        account: AccountConfig,
        kms_key_arn: str,
        topic_arn: str,
        dead_letter_queue_arn: str,
        review_queue_url: str | None = None,
        review_queue_arn: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        name = function_name(account)
        p, acct = account.partition, account.account_id

        self.table = DynamodbTable(
            self,
            "idempotency-table",
            name=f"{account.name}-detector-seen-events",
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            attribute=[DynamodbTableAttribute(name="pk", type="S")],
            ttl=DynamodbTableTtl(attribute_name="expires_at", enabled=True),
            server_side_encryption=DynamodbTableServerSideEncryption(enabled=True, kms_key_arn=kms_key_arn),
            point_in_time_recovery=DynamodbTablePointInTimeRecovery(enabled=True),
        )
        self.policy_document = response_function_policy(
            account.remediation_mode,
            account.allow_account_remediation,
            PolicyTargets(
                partition=p,
                account_id=acct,
                topic_arn=topic_arn,
                key_arn=kms_key_arn,
                table_arn=self.table.arn,
                dead_letter_queue_arn=dead_letter_queue_arn,
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
            role_description="Runs the S3 public-exposure response function",
            policy_name="least-privilege",
            policy_document=self.policy_document,
            description="Classifies S3 exposure events, confirms, alerts and optionally closes the bucket",
            handler=HANDLER,
            memory_mb=MEMORY_MB,
            timeout=account.function_timeout_seconds,
            reserved_concurrency=account.reserved_concurrency,
            variables=function_env.environment(
                "response function",
                function_env.RESPONSE,
                response_values(account, topic_arn, self.table.name, kms_key_arn, review_queue_url),
            ),
            dead_letter_arn=dead_letter_queue_arn,
        )
        self.log_group, self.role, self.function = parts.log_group, parts.role, parts.function
        LambdaFunctionEventInvokeConfig(
            self,
            "async-invoke",
            function_name=self.function.function_name,
            maximum_retry_attempts=ASYNC_RETRIES,
            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
        )

"""The response function: the Lambda that classifies, confirms, alerts and (optionally) closes.

Also what only it uses: its role and least-privilege policy (from ``handlers/permissions.py``
via ``stacks/iam_policy.py``), its log group, and the idempotency table that suppresses
duplicate alerts for redelivered events.
"""

from __future__ import annotations

import json

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
HANDLER = "handlers.response.handler"
MEMORY_MB = 256
ASYNC_RETRIES = 2  # Lambda's maximum for async invocations; then the dead-letter queue
MAX_EVENT_AGE_SECONDS = 6 * 3600


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


def environment_variables(
    account: AccountConfig,
    topic_arn: str,
    table_name: str,
    kms_key_arn: str | None = None,
    review_queue_url: str | None = None,
) -> dict[str, str]:
    """Everything the function reads from its environment (all strings).

    ``kms_key_arn`` is the stack's key; with the trail's name and bucket it lets the function
    recognise tampering with the detector's own trail (TRAIL_* and DETECTOR_KMS_KEY_ARN).
    ``review_queue_url``: the exposure review's queue (REVIEW_QUEUE_URL), when deployed.
    """
    review = {"REVIEW_QUEUE_URL": review_queue_url} if review_queue_url else {}
    chat = chat_topic_arn(account)
    return {
        **review,
        **({"CHAT_TOPIC_ARN": chat} if chat else {}),
        "SECURITY_HUB": "true" if account.security_hub else "false",
        "DECISION_EVENTS": "true" if account.eventbridge else "false",
        **detector_context(account, kms_key_arn).to_environment(),
        "ALERT_TOPIC_ARN": topic_arn,
        "REMEDIATION_MODE": account.remediation_mode,
        "ALLOW_ACCOUNT_REMEDIATION": "true" if account.allow_account_remediation else "false",
        "ENVIRONMENT": account.environment,
        "ACCOUNT_NAME": account.name,
        "EXPECTED_ACCOUNT_ID": account.account_id,
        "EXCEPTION_BUCKETS": json.dumps(list(account.exception_buckets)),
        "APPROVAL_TAG": account.approval_tag,
        "MAX_APPROVAL_DAYS": str(account.max_approval_days),
        "WATCHED_REGIONS": ",".join(account.regions),
        "SENSITIVE_TAG": account.sensitive_tag,
        "SENSITIVE_TAG_VALUES": ",".join(account.sensitive_tag_values),
        "IDEMPOTENCY_TABLE": table_name,
        "LOG_LEVEL": account.log_level,
        "TRUSTED_PRINCIPALS": json.dumps(list(account.trusted_principals)),
        "ACTOR_HISTORY_SECONDS": str(account.actor_history_seconds),
    }


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
    p, region, acct = account.partition, account.home_region, account.account_id
    return log_group, role, f"arn:{p}:logs:{region}:{acct}:log-group:/aws/lambda/{name}"


def handler_function(
    scope: Construct,
    *,
    name: str,
    description: str,
    role_arn: str,
    handler: str,
    memory_mb: int,
    timeout: int,
    reserved_concurrency: int,
    kms_key_arn: str,
    variables: dict[str, str],
    dead_letter_arn: str,
    log_group: CloudwatchLogGroup,
    policy: IamRolePolicy,
) -> LambdaFunction:
    """A function running ``handler`` from the shared ``handlers/`` package, as both functions deploy it."""
    package = TerraformAsset(scope, "package", path=str(build_handler_zip()), type=AssetType.FILE)
    function = LambdaFunction(
        scope,
        "function",
        function_name=name,
        description=description,
        role=role_arn,
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
        logging_config=LambdaFunctionLoggingConfig(log_format="Text", log_group=log_group.name),
        depends_on=[log_group, policy],
    )
    accept_findings(function, "CKV_AWS_117", "CKV_AWS_272", "CKV_AWS_50")
    return function


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
        self.log_group, self.role, log_group_arn = log_group_and_role(
            self, account, name, kms_key_arn, "Runs the S3 public-exposure response function"
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
                log_group_arn=log_group_arn,
                review_queue_arn=review_queue_arn,
                sinks=sink_targets(account),
            ),
            account.exception_buckets,
        )
        policy = IamRolePolicy(
            self,
            "policy",
            name="least-privilege",
            role=self.role.id,
            policy=json.dumps(self.policy_document),
        )
        self.function = handler_function(
            self,
            name=name,
            description="Classifies S3 exposure events, confirms, alerts and optionally closes the bucket",
            role_arn=self.role.arn,
            handler=HANDLER,
            memory_mb=MEMORY_MB,
            timeout=account.function_timeout_seconds,
            reserved_concurrency=account.reserved_concurrency,
            kms_key_arn=kms_key_arn,
            variables=environment_variables(
                account, topic_arn, self.table.name, kms_key_arn, review_queue_url
            ),
            dead_letter_arn=dead_letter_queue_arn,
            log_group=self.log_group,
            policy=policy,
        )
        LambdaFunctionEventInvokeConfig(
            self,
            "async-invoke",
            function_name=self.function.function_name,
            maximum_retry_attempts=ASYNC_RETRIES,
            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
        )

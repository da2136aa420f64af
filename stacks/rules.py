"""The EventBridge rules, one per route, with the patterns from ``handlers/detection/event_patterns.py``.

EventBridge rules are regional and S3 events arrive in the bucket's region. The home
region's rules invoke the function; every other watched region gets the same rules with
the home region's default event bus as target, where the home rules match them again
(a forwarded event keeps its source, detail-type, detail and original ``region``).
One function and one topic therefore serve every region.

A forwarding target retries for EventBridge's maximum (24 hours, 185 attempts) and then
dead-letters into a queue in its own region (EventBridge requires the dead-letter queue in
the rule's region). Those queues use SQS-managed encryption because the stack's KMS key
lives in the home region only.
"""

from __future__ import annotations

import json

from handlers.detection.event_patterns import RuleSpec, rules_for
from handlers.detection.rules.detector_context import DetectorContext, key_id_of
from stacks.bindings import (
    AwsProvider,
    CloudwatchEventRule,
    CloudwatchEventTarget,
    CloudwatchEventTargetDeadLetterConfig,
    CloudwatchEventTargetRetryPolicy,
    Construct,
    IamRole,
    IamRolePolicy,
    LambdaPermission,
    SqsQueue,
)
from stacks.config import AccountConfig
from stacks.dead_letters import dead_letter_policy
from stacks.iam_policy import service_assume_role_policy
from stacks.trail import log_bucket_name, trail_name

MAX_EVENT_AGE_SECONDS = 24 * 3600  # EventBridge's maximum: keep retrying through an outage
MAX_RETRY_ATTEMPTS = 185  # EventBridge's maximum


FORWARD_DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum


def rule_name(account: AccountConfig, rule: RuleSpec) -> str:
    return f"{account.name}-s3-exposure-{rule.route}"


def rule_arn(account: AccountConfig, rule: RuleSpec, region: str) -> str:
    """A rule's ARN, known before it exists (queue policies can then sit inline on their queue)."""
    return f"arn:{account.partition}:events:{region}:{account.account_id}:rule/{rule_name(account, rule)}"


def forwarder_role_name(account: AccountConfig) -> str:
    return f"{account.name}-s3-exposure-forwarder"


def forward_dead_letter_queue_name(account: AccountConfig) -> str:
    return f"{account.name}-detector-forward-dead-letters"


def home_bus_arn(account: AccountConfig) -> str:
    """The home region's default event bus, where every other region's rules forward."""
    return f"arn:{account.partition}:events:{account.home_region}:{account.account_id}:event-bus/default"


def detector_context(account: AccountConfig, kms_key_arn: str | None) -> DetectorContext:
    """What the detector must recognise as its own: its trail, the trail's log bucket, its keys.

    ``kms_key_arn`` is the stack's key (it encrypts the trail too when ``trail.kms_encryption``).
    With ``trail.create = false`` only the key is known: the existing trail is not ours to name.
    """
    if not account.create_trail:
        return DetectorContext(detector_key_arn=kms_key_arn, approval_tag=account.approval_tag)
    return DetectorContext(
        approval_tag=account.approval_tag,
        trail_name=trail_name(account),
        trail_bucket=log_bucket_name(account),
        trail_key_arn=kms_key_arn if account.trail_kms_encryption else None,
        detector_key_arn=kms_key_arn,
    )


def key_ids(context: DetectorContext, stack_key_id: str | None = None) -> list[str]:
    """The key ids of the context's keys; the stack key's id token where its ARN is not known at synth."""
    return [key_id_of(arn) if arn.startswith("arn:") else (stack_key_id or arn) for arn in context.key_arns]


def _retry_policy() -> CloudwatchEventTargetRetryPolicy:
    return CloudwatchEventTargetRetryPolicy(
        maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS, maximum_retry_attempts=MAX_RETRY_ATTEMPTS
    )


class ExposureRules(Construct):
    """Home-region rules targeting the function; forwarding rules in the other watched regions."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        account: AccountConfig,
        providers: dict[str, AwsProvider],
        function_arn: str,
        function_name: str,
        dead_letter_queue_arn: str,
        kms_key_arn: str | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        context = detector_context(account, kms_key_arn)
        self.rules = rules_for(context, key_ids(context, kms_key_id))
        for rule in self.rules:
            event_rule = CloudwatchEventRule(
                self,
                f"{rule.route}-rule",
                name=rule_name(account, rule),
                description=rule.description,
                event_pattern=rule.pattern_json(),
            )
            CloudwatchEventTarget(
                self,
                f"{rule.route}-target",
                rule=event_rule.name,
                target_id="response-function",
                arn=function_arn,
                retry_policy=_retry_policy(),
                dead_letter_config=CloudwatchEventTargetDeadLetterConfig(arn=dead_letter_queue_arn),
            )
            LambdaPermission(
                self,
                f"{rule.route}-invoke",
                statement_id=f"events-{rule.route}",
                action="lambda:InvokeFunction",
                function_name=function_name,
                principal="events.amazonaws.com",
                source_arn=event_rule.arn,
            )
        other_regions = [region for region in account.regions if region != account.home_region]
        if other_regions:
            self._forward(account, providers, other_regions)

    def _forward(self, account: AccountConfig, providers: dict[str, AwsProvider], regions: list[str]) -> None:
        acct = account.account_id
        home_bus = home_bus_arn(account)
        # IAM is global: one role serves every region's forwarding targets.
        role = IamRole(
            self,
            "forwarder-role",
            name=forwarder_role_name(account),
            description="Lets EventBridge forward S3 exposure events to the home region's bus",
            assume_role_policy=json.dumps(service_assume_role_policy("events.amazonaws.com", acct)),
        )
        IamRolePolicy(
            self,
            "forwarder-policy",
            name="put-events-to-home-bus",
            role=role.id,
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ForwardToHomeBus",
                            "Effect": "Allow",
                            "Action": ["events:PutEvents"],
                            "Resource": [home_bus],
                        }
                    ],
                }
            ),
        )
        for region in regions:
            provider = providers[region]
            queue_name = forward_dead_letter_queue_name(account)
            queue_arn = f"arn:{account.partition}:sqs:{region}:{acct}:{queue_name}"
            queue = SqsQueue(
                self,
                f"{region}-forward-dead-letters",
                provider=provider,
                name=queue_name,
                sqs_managed_sse_enabled=True,
                message_retention_seconds=FORWARD_DEAD_LETTER_RETENTION_SECONDS,
                # Inline, with ARNs written out: a separate queue policy costs ~25 s on apply and destroy.
                policy=dead_letter_policy(
                    queue_arn,
                    [rule_arn(account, rule, region) for rule in self.rules],
                    "ForwardingRulesDeadLetterUndeliveredEvents",
                ),
            )
            for rule in self.rules:
                event_rule = CloudwatchEventRule(
                    self,
                    f"{region}-{rule.route}-rule",
                    provider=provider,
                    name=rule_name(account, rule),
                    description=f"{rule.description} (forwarded to {account.home_region})",
                    event_pattern=rule.pattern_json(),
                )
                CloudwatchEventTarget(
                    self,
                    f"{region}-{rule.route}-target",
                    provider=provider,
                    rule=event_rule.name,
                    target_id="home-region-bus",
                    arn=home_bus,
                    role_arn=role.arn,
                    retry_policy=_retry_policy(),
                    dead_letter_config=CloudwatchEventTargetDeadLetterConfig(arn=queue.arn),
                )

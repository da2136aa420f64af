"""The EventBridge rules, one per route, with the patterns from ``handlers/event_patterns.py``.

EventBridge rules are regional and S3 events arrive in the bucket's region. The home
region's rules invoke the function; every other watched region gets the same rules with
the home region's default event bus as target, where the home rules match them again.
"""

from __future__ import annotations

import json

from handlers.event_patterns import RULES, RuleSpec
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
    SqsQueuePolicy,
)
from stacks.config import AccountConfig

MAX_EVENT_AGE_SECONDS = 24 * 3600  # EventBridge's maximum: keep retrying through an outage
MAX_RETRY_ATTEMPTS = 185  # EventBridge's maximum


def rule_name(account: AccountConfig, rule: RuleSpec) -> str:
    return f"{account.name}-s3-exposure-{rule.route}"


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
        dead_letter_queue_url: str,
    ) -> None:
        super().__init__(scope, id)
        rule_arns = []
        for rule in RULES:
            event_rule = CloudwatchEventRule(
                self,
                f"{rule.route}-rule",
                name=rule_name(account, rule),
                description=rule.description,
                event_pattern=rule.pattern_json(),
            )
            rule_arns.append(event_rule.arn)
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
        SqsQueuePolicy(
            self,
            "dead-letter-policy",
            queue_url=dead_letter_queue_url,
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "RulesDeadLetterUndeliveredEvents",
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": dead_letter_queue_arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arns}},
                        }
                    ],
                }
            ),
        )
        other_regions = [region for region in account.regions if region != account.home_region]
        if other_regions:
            self._forward(account, providers, other_regions)

    def _forward(self, account: AccountConfig, providers: dict[str, AwsProvider], regions: list[str]) -> None:
        p, acct = account.partition, account.account_id
        home_bus = f"arn:{p}:events:{account.home_region}:{acct}:event-bus/default"
        role = IamRole(
            self,
            "forwarder-role",
            name=f"{account.name}-s3-exposure-forwarder",
            description="Lets EventBridge forward S3 exposure events to the home region's bus",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            "Condition": {"StringEquals": {"aws:SourceAccount": acct}},
                        }
                    ],
                }
            ),
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
            for rule in RULES:
                event_rule = CloudwatchEventRule(
                    self,
                    f"{region}-{rule.route}-rule",
                    provider=providers[region],
                    name=rule_name(account, rule),
                    description=f"{rule.description} (forwarded to {account.home_region})",
                    event_pattern=rule.pattern_json(),
                )
                CloudwatchEventTarget(
                    self,
                    f"{region}-{rule.route}-target",
                    provider=providers[region],
                    rule=event_rule.name,
                    target_id="home-region-bus",
                    arn=home_bus,
                    role_arn=role.arn,
                    retry_policy=_retry_policy(),
                )

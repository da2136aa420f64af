"""Alerting: the KMS-encrypted SNS topic, who may publish to it, its subscriptions, and the alarms.

The topic policy lets in only what must publish (the response function's role and this
account's CloudWatch alarms) and refuses plain-HTTP publishing.
"""

from __future__ import annotations

import json

from stacks.bindings import CloudwatchMetricAlarm, Construct, SnsTopic, SnsTopicPolicy, SnsTopicSubscription
from stacks.config import AccountConfig

ALARM_PERIOD_SECONDS = 300


def topic_policy(account: AccountConfig, topic_arn: str, publisher_role_arn: str) -> dict:
    """Publish rights for the function's role and this stack's alarms only."""
    p, region, acct = account.partition, account.home_region, account.account_id
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ResponseFunctionPublishes",
                "Effect": "Allow",
                "Principal": {"AWS": publisher_role_arn},
                "Action": "sns:Publish",
                "Resource": topic_arn,
            },
            {
                "Sid": "StackAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{p}:cloudwatch:{region}:{acct}:alarm:{account.name}-*"
                    },
                    "StringEquals": {"aws:SourceAccount": acct},
                },
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


class Alerting(Construct):
    """The alert topic and its subscriptions; publishers and alarms are added once they exist."""

    def __init__(self, scope: Construct, id: str, *, account: AccountConfig, kms_key_arn: str) -> None:
        super().__init__(scope, id)
        self.account = account
        self.topic = SnsTopic(
            self,
            "topic",
            name=f"{account.name}-s3-exposure-alerts",
            display_name="S3 public exposure",
            kms_master_key_id=kms_key_arn,
        )
        for index, address in enumerate(account.alert_emails):
            SnsTopicSubscription(
                self, f"email-{index}", topic_arn=self.topic.arn, protocol="email", endpoint=address
            )
        for index, url in enumerate(account.alert_https_endpoints):
            SnsTopicSubscription(
                self, f"https-{index}", topic_arn=self.topic.arn, protocol="https", endpoint=url
            )

    def allow_publisher(self, role_arn: str) -> None:
        """Attach the topic policy once the function's role exists."""
        SnsTopicPolicy(
            self,
            "policy",
            arn=self.topic.arn,
            policy=json.dumps(topic_policy(self.account, self.topic.arn, role_arn)),
        )

    def add_alarms(self, function_name: str, dead_letter_queue_name: str) -> None:
        """Page the topic when the function errors or events pile up in the dead-letter queue."""
        actions = [self.topic.arn]
        # Missing data is normal for both: an idle function emits no Errors datapoints, and
        # SQS stops reporting an empty inactive queue. A real failure always produces data.
        CloudwatchMetricAlarm(
            self,
            "function-errors",
            alarm_name=f"{self.account.name}-detector-function-errors",
            alarm_description="The S3 exposure response function failed; an exposure may be unhandled",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": function_name},
            statistic="Sum",
            period=ALARM_PERIOD_SECONDS,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
        )
        CloudwatchMetricAlarm(
            self,
            "dead-letters",
            alarm_name=f"{self.account.name}-detector-dead-letters",
            alarm_description="Exposure events could not be processed and wait in the dead-letter queue",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": dead_letter_queue_name},
            statistic="Maximum",
            period=ALARM_PERIOD_SECONDS,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
        )

"""Alerting: the KMS-encrypted SNS topic, who may publish to it, its subscriptions, and the alarms.

The topic policy names what must publish (the response function's role and this account's
CloudWatch alarms) and refuses plain-HTTP publishing. The sweep's role publishes through its
own IAM policy (same account: an identity policy suffices when the topic policy does not deny).
The alarms watch the watcher: the response function's errors and throttles, both dead-letter
queues (three, with the exposure review's), and the sweep not completing within twice its interval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from handlers.response import metrics as sweep_metrics
from handlers.response.metrics import Metric
from stacks.bindings import CloudwatchMetricAlarm, Construct, SnsTopic, SnsTopicPolicy, SnsTopicSubscription
from stacks.config import AccountConfig
from stacks.response_function import chat_topic_name

ALARM_PERIOD_SECONDS = 300


@dataclass(frozen=True)
class SweepWatch:
    """What the sweep alarms watch: its schedule and its dead-letter queue."""

    interval_minutes: int
    dead_letter_queue_name: str

    @property
    def alarm_period_seconds(self) -> int:
        """Twice the interval (CloudWatch accepts any multiple of 60 s up to 7 days)."""
        return 2 * self.interval_minutes * 60


def topic_policy(account: AccountConfig, topic_arn: str, publisher_role_arn: str) -> dict[str, Any]:
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
            deny_insecure_publish(topic_arn),
        ],
    }


def deny_insecure_publish(topic_arn: str) -> dict[str, Any]:
    """Refuse publishing over plain HTTP."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sns:Publish",
        "Resource": topic_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def chat_topic_policy(topic_arn: str) -> dict[str, Any]:
    """The functions publish through their identity policies (same account); plain HTTP is refused."""
    return {
        "Version": "2012-10-17",
        "Statement": [deny_insecure_publish(topic_arn)],
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
        # alerts.chat: Amazon Q Developer custom notifications; the chat client subscribes itself
        # (a channel configuration in Amazon Q Developer in chat applications names this topic).
        self.chat_topic = (
            SnsTopic(
                self,
                "chat-topic",
                name=chat_topic_name(account),
                display_name="S3 public exposure (chat)",
                kms_master_key_id=kms_key_arn,
            )
            if account.chat
            else None
        )
        if self.chat_topic is not None:
            SnsTopicPolicy(
                self,
                "chat-policy",
                arn=self.chat_topic.arn,
                policy=json.dumps(chat_topic_policy(self.chat_topic.arn)),
            )

    def allow_publisher(self, role_arn: str) -> None:
        """Attach the topic policy once the function's role exists."""
        SnsTopicPolicy(
            self,
            "policy",
            arn=self.topic.arn,
            policy=json.dumps(topic_policy(self.account, self.topic.arn, role_arn)),
        )

    def add_alarms(
        self,
        function_name: str,
        dead_letter_queue_name: str,
        sweep: SweepWatch | None = None,
        review_dead_letter_queue_name: str | None = None,
    ) -> None:
        """Watch the watcher: page the topic when a part of the detector stops working.

        Each alarm's missing-data treatment is chosen for what "no data" means for its metric;
        none of them can be silenced by the metric simply stopping.
        """
        # Errors and Throttles: an idle function emits no datapoints, which is normal, so missing
        # data is "not breaching". Every failed or throttled invocation does produce a datapoint,
        # so the alarm can still fire.
        for metric, what in (("Errors", "failed"), ("Throttles", "was throttled")):
            self._alarm(
                f"function-{metric.lower()}",
                f"The S3 exposure response function {what}; an exposure may be unhandled",
                namespace="AWS/Lambda",
                metric_name=metric,
                dimensions={"FunctionName": function_name},
                statistic="Sum",
                period=ALARM_PERIOD_SECONDS,
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                treat_missing_data="notBreaching",
            )
        self._queue_depth_alarm(
            "dead-letters",
            "Exposure events could not be processed and wait in the dead-letter queue",
            dead_letter_queue_name,
        )
        if review_dead_letter_queue_name:
            self._queue_depth_alarm(
                "review-dead-letters",
                "Exposure reviews failed every attempt: whether data was read while a bucket was public "
                "is unanswered",
                review_dead_letter_queue_name,
            )
        if sweep is None:
            return
        # The sweep reports SweepCompleted=1 at the end of every good scheduled run. Missing data is
        # exactly the failure to catch (no run, a crash, a timeout, the schedule deleted), so it is
        # "breaching": silence pages.
        self._sweep_alarm(
            "sweep-missed",
            f"No exposure sweep completed in {2 * sweep.interval_minutes} minutes (twice its interval); "
            "buckets made public while CloudTrail was off would go unseen",
            sweep,
            Metric.SWEEP_COMPLETED,
            comparison="LessThanThreshold",
            missing="breaching",
        )
        # Buckets whose exposure could not be decided (reads failed): blind spots. Every run emits
        # the metric (0 when clean), so missing data means no run, which "sweep-missed" reports;
        # here it is "not breaching" to page once, not twice.
        self._sweep_alarm(
            "sweep-errors",
            "The exposure sweep could not decide some buckets' exposure (reads failed or alerts unsent)",
            sweep,
            Metric.BUCKET_ERRORS,
            comparison="GreaterThanOrEqualToThreshold",
            missing="notBreaching",
        )
        self._queue_depth_alarm(
            "sweep-dead-letters",
            "Sweep batches or scheduled runs failed every attempt and wait in the sweep's dead-letter queue",
            sweep.dead_letter_queue_name,
        )

    def _sweep_alarm(
        self, id: str, description: str, sweep: SweepWatch, metric: Metric, *, comparison: str, missing: str
    ) -> None:
        """An alarm on one of the sweep's own metrics (one datapoint per run) over twice its interval."""
        self._alarm(
            id,
            description,
            namespace=sweep_metrics.NAMESPACE,
            metric_name=metric.value,
            dimensions={sweep_metrics.DIMENSION: self.account.name},
            statistic="Sum",
            period=sweep.alarm_period_seconds,
            comparison_operator=comparison,
            threshold=1,
            treat_missing_data=missing,
        )

    def _queue_depth_alarm(self, id: str, description: str, queue_name: str) -> None:
        # SQS publishes a queue's metrics only while it is active: CloudWatch counts a queue as active
        # for up to six hours after a message arrives or any action touches it. A dead-letter queue
        # whose messages nobody touches goes quiet with messages still in it, so missing data keeps
        # the last state ("ignore"): an alarm raised stays raised until someone drains the queue
        # (which is activity, so a 0 datapoint clears it); an empty, idle queue stays OK.
        self._alarm(
            id,
            description,
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": queue_name},
            statistic="Maximum",
            period=ALARM_PERIOD_SECONDS,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            treat_missing_data="ignore",
        )

    def _alarm(self, id: str, description: str, **metric: Any) -> None:
        # Named after the stack and the construct id, so the topic policy's "<name>-*" matches it.
        actions = [self.topic.arn]
        CloudwatchMetricAlarm(
            self,
            id,
            alarm_name=f"{self.account.name}-detector-{id}",
            alarm_description=description,
            evaluation_periods=1,
            alarm_actions=actions,
            ok_actions=actions,
            **metric,
        )

"""Watch the watcher: every alarm's metric, threshold, period, missing-data treatment and topic action.

An alarm that cannot fire is a defect, so each treatment is asserted with the reason it was chosen
(stacks/alerting.py says why in a comment next to each).
"""

from __future__ import annotations

import json

import pytest

from handlers.response import metrics as sweep_metrics
from stacks.config import load_config, parse_config
from stacks.synth import synth_config

TWELVE_HOURLY = {
    "name": "twelve",
    "account_id": "666666666666",
    "home_region": "eu-west-1",
    "sweep": {"interval_minutes": 720},
}
NO_SWEEP = {
    "name": "quiet",
    "account_id": "777777777777",
    "home_region": "eu-west-1",
    "sweep": {"enabled": False},
}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("alarms")
    synthesized = synth_config(load_config(), out / "repo")
    synthesized |= synth_config(parse_config({"accounts": [TWELVE_HOURLY, NO_SWEEP]}), out / "variants")
    return synthesized


def alarms(stack: dict) -> dict[str, dict]:
    """Alarms by name, without the stack prefix."""
    found = {}
    for alarm in stack["resource"]["aws_cloudwatch_metric_alarm"].values():
        found[alarm["alarm_name"].split("-detector-", 1)[1]] = alarm
    return found


def topic_ref(stack: dict) -> str:
    (key,) = stack["resource"]["aws_sns_topic"]
    return f"${{aws_sns_topic.{key}.arn}}"


def reference(stack: dict, kind: str, key_prefix: str, attribute: str) -> str:
    (key,) = [k for k in stack["resource"][kind] if k.startswith(key_prefix)]
    return f"${{{kind}.{key}.{attribute}}}"


def test_every_alarm_notifies_the_alert_topic_both_ways(stacks):
    for name in ("security-prod", "sandbox", "twelve", "quiet"):
        stack = stacks[name]
        for alarm in alarms(stack).values():
            assert alarm["alarm_actions"] == [topic_ref(stack)], alarm["alarm_name"]
            assert alarm["ok_actions"] == [topic_ref(stack)], alarm["alarm_name"]
            assert alarm["alarm_name"].startswith(f"{name}-")  # the topic policy admits {name}-* alarms
            assert alarm["evaluation_periods"] == 1
            assert alarm["alarm_description"]


def test_the_set_of_alarms(stacks):
    full = {"function-errors", "function-throttles", "dead-letters", "sweep-missed", "sweep-errors",
            "sweep-dead-letters", "review-dead-letters"}  # fmt: skip
    assert set(alarms(stacks["security-prod"])) == full
    assert set(alarms(stacks["quiet"])) == {
        "function-errors",
        "function-throttles",
        "dead-letters",
        "review-dead-letters",
    }


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_response_function_errors_and_throttles(stacks, metric):
    stack = stacks["security-prod"]
    alarm = alarms(stack)[f"function-{metric.lower()}"]
    assert (alarm["namespace"], alarm["metric_name"], alarm["statistic"]) == ("AWS/Lambda", metric, "Sum")
    function = reference(stack, "aws_lambda_function", "response_", "function_name")
    assert alarm["dimensions"] == {"FunctionName": function}
    assert alarm["period"] == 300
    assert (alarm["comparison_operator"], alarm["threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    # An idle function emits no datapoints; every failure or throttle does emit one.
    assert alarm["treat_missing_data"] == "notBreaching"


@pytest.mark.parametrize(
    ("alarm_name", "queue_prefix"),
    [("dead-letters", "dead-letters_queue_"), ("sweep-dead-letters", "sweep_work-dead-letters_")],
)
def test_dead_letter_depth(stacks, alarm_name, queue_prefix):
    stack = stacks["security-prod"]
    alarm = alarms(stack)[alarm_name]
    assert (alarm["namespace"], alarm["metric_name"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["dimensions"] == {"QueueName": reference(stack, "aws_sqs_queue", queue_prefix, "name")}
    assert alarm["statistic"] == "Maximum" and alarm["period"] == 300
    assert (alarm["comparison_operator"], alarm["threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    # SQS stops reporting an untouched queue after six hours, messages or not: keep the last state,
    # so an alarm raised by dead letters is not cleared by the queue going quiet.
    assert alarm["treat_missing_data"] == "ignore"


@pytest.mark.parametrize(("name", "interval_minutes"), [("security-prod", 60), ("twelve", 720)])
def test_sweep_missed_fires_on_silence(stacks, name, interval_minutes):
    alarm = alarms(stacks[name])["sweep-missed"]
    assert (alarm["namespace"], alarm["metric_name"]) == (sweep_metrics.NAMESPACE, "SweepCompleted")
    assert "SweepCompleted" in sweep_metrics.METRICS
    assert alarm["dimensions"] == {sweep_metrics.DIMENSION: name}
    assert alarm["statistic"] == "Sum"
    assert alarm["period"] == 2 * interval_minutes * 60  # twice the interval
    assert alarm["period"] * alarm["evaluation_periods"] <= 7 * 24 * 3600  # CloudWatch's ceiling
    assert (alarm["comparison_operator"], alarm["threshold"]) == ("LessThanThreshold", 1)
    # No datapoint means no completed run: that is the failure, so silence is breaching.
    assert alarm["treat_missing_data"] == "breaching"


def test_sweep_errors(stacks):
    alarm = alarms(stacks["security-prod"])["sweep-errors"]
    assert (alarm["namespace"], alarm["metric_name"]) == (sweep_metrics.NAMESPACE, "BucketErrors")
    assert "BucketErrors" in sweep_metrics.METRICS
    assert alarm["dimensions"] == {sweep_metrics.DIMENSION: "security-prod"}
    assert alarm["statistic"] == "Sum" and alarm["period"] == 2 * 60 * 60
    assert (alarm["comparison_operator"], alarm["threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    # Every run emits BucketErrors (0 when clean); no data means no run, which sweep-missed reports.
    assert alarm["treat_missing_data"] == "notBreaching"


def test_the_topic_and_key_let_the_alarms_publish(stacks):
    stack = stacks["security-prod"]
    (policy,) = stack["resource"]["aws_sns_topic_policy"].values()
    statements = json.loads(policy["policy"])["Statement"]
    (alarms_may,) = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert alarms_may["Condition"]["ArnLike"]["aws:SourceArn"].endswith(":alarm:security-prod-*")
    (key,) = stack["resource"]["aws_kms_key"].values()
    sids = {s["Sid"] for s in json.loads(key["policy"])["Statement"]}
    assert "AlarmsPublishToEncryptedTopic" in sids


def test_no_alarm_treats_missing_data_as_ok_where_silence_is_the_failure(stacks):
    """The liveness alarm must be the breaching kind; the others must be able to fire on data."""
    for name in ("security-prod", "twelve"):
        found = alarms(stacks[name])
        assert found["sweep-missed"]["treat_missing_data"] == "breaching"
        for alarm in found.values():
            assert alarm["treat_missing_data"] in ("breaching", "notBreaching", "ignore")
            if alarm["treat_missing_data"] == "notBreaching":
                # Fires on a datapoint at or above 1: the metric is emitted on each failure.
                assert alarm["comparison_operator"] == "GreaterThanOrEqualToThreshold"

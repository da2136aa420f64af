"""Synth assertions for the other sinks: config keys, the chat topic, environment, IAM scope."""

from __future__ import annotations

import pytest
from test_iam_least_privilege import allowed, role_policies

from handlers.response.response_config import load_settings
from stacks.config import ConfigError, parse_config
from stacks.synth import synth_config

ALL_ON = {
    "name": "sinks",
    "account_id": "111111111111",
    "home_region": "eu-west-1",
    "alerts": {"security_hub": True, "chat": True, "eventbridge": True},
}
ALL_OFF = {
    "name": "quiet",
    "account_id": "555555555555",
    "home_region": "eu-west-1",
    "alerts": {"eventbridge": False},
}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> dict[str, dict]:
    return synth_config(parse_config({"accounts": [ALL_ON, ALL_OFF]}), tmp_path_factory.mktemp("sinks"))


def functions(stack: dict) -> dict[str, dict]:
    return {f["handler"]: f for f in stack["resource"]["aws_lambda_function"].values()}


def test_every_sink_on_deploys_its_topic_environment_and_scoped_grants(stacks):
    stack = stacks["sinks"]
    topics = {t["name"]: t for t in stack["resource"]["aws_sns_topic"].values()}
    assert topics["sinks-s3-exposure-chat"]["kms_master_key_id"]
    assert "chat_topic_arn" in stack["output"]
    chat_arn = "arn:aws:sns:eu-west-1:111111111111:sinks-s3-exposure-chat"
    for handler in ("handlers.response.function.handler", "handlers.sweep.function.handler"):
        env = functions(stack)[handler]["environment"]["variables"]
        assert (env["SECURITY_HUB"], env["DECISION_EVENTS"], env["CHAT_TOPIC_ARN"]) == (
            "true",
            "true",
            chat_arn,
        )
        # The handler reads what the stack wrote (references resolved as Terraform would).
        resolved = {**env, "ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:111111111111:sinks-s3-exposure-alerts",
                    "IDEMPOTENCY_TABLE": "sinks-detector-seen-events", "AWS_REGION": "eu-west-1"}  # fmt: skip
        resolved = {k: v for k, v in resolved.items() if "${" not in v}
        settings = load_settings(resolved)
        assert settings.security_hub and settings.decision_events and settings.chat_topic_arn == chat_arn
    product = "arn:aws:securityhub:eu-west-1:111111111111:product/111111111111/default"
    hub = "arn:aws:securityhub:eu-west-1:111111111111:hub/default"
    bus = "arn:aws:events:eu-west-1:111111111111:event-bus/default"
    response, sweep = role_policies(stack)["least-privilege"], role_policies(stack)["sweep-least-privilege"]
    for policy in (response, sweep):
        assert allowed(policy, "securityhub:BatchImportFindings", product)
        assert not allowed(
            policy,
            "securityhub:BatchImportFindings",
            product.replace("111111111111/default", "999999999999/default"),
        )
        assert allowed(policy, "securityhub:BatchUpdateFindings", hub)
        assert allowed(policy, "sns:Publish", chat_arn)
        assert allowed(policy, "events:PutEvents", bus)
        assert not allowed(policy, "events:PutEvents", bus.replace("default", "other"))
        (update,) = [s for s in policy["Statement"] if "securityhub:BatchUpdateFindings" in s["Action"]]
        # Workflow only: never the severity, the types or the verification state.
        assert update["Condition"]["StringEquals"] == {
            "securityhub:ASFFSyntaxPath/Workflow.Status": ["NEW", "RESOLVED", "SUPPRESSED"]
        }
        assert set(update["Condition"]["Null"].values()) == {"true"}
    assert allowed(sweep, "securityhub:GetFindings", hub)
    assert not allowed(response, "securityhub:GetFindings", hub)  # only the sweep resolves


def test_every_sink_off_grants_nothing_for_them(stacks):
    stack = stacks["quiet"]
    topics = [t["name"] for t in stack["resource"]["aws_sns_topic"].values()]
    assert topics == ["quiet-s3-exposure-alerts"] and "chat_topic_arn" not in stack["output"]
    for name, policy in role_policies(stack).items():
        actions = {a for s in policy["Statement"] for a in s["Action"]}
        assert not {a for a in actions if a.startswith(("securityhub:", "events:"))}, name
    env = functions(stack)["handlers.response.function.handler"]["environment"]["variables"]
    assert (env["SECURITY_HUB"], env["DECISION_EVENTS"]) == ("false", "false") and "CHAT_TOPIC_ARN" not in env


@pytest.mark.parametrize("key", ["security_hub", "chat", "eventbridge"])
def test_a_sink_switch_must_be_a_boolean(key):
    with pytest.raises(ConfigError, match=f"alerts.{key}"):
        parse_config({"accounts": [{**ALL_OFF, "alerts": {key: "yes"}}]})


def test_a_bad_chat_topic_in_the_environment_is_refused_by_name():
    from handlers.response.response_config import ConfigError as SettingsError

    env = {"ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:111111111111:a", "EXPECTED_ACCOUNT_ID": "111111111111",
           "IDEMPOTENCY_TABLE": "tbl", "CHAT_TOPIC_ARN": "https://hooks.slack.com/x"}  # fmt: skip
    with pytest.raises(SettingsError, match="CHAT_TOPIC_ARN"):
        load_settings(env)
    with pytest.raises(SettingsError, match="SECURITY_HUB"):
        load_settings({**env, "CHAT_TOPIC_ARN": "", "SECURITY_HUB": "maybe"})

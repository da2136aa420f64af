"""Synth assertions for the exposure review: queue, function, role, event source mapping, wiring."""

from __future__ import annotations

import json

import pytest
from test_iam_least_privilege import allowed, assert_least_privilege, role_policies

from handlers.response.permissions import review_calls
from stacks.config import load_config, parse_config
from stacks.synth import synth_config

LOGS = {
    "name": "logged",
    "account_id": "111111111111",
    "home_region": "eu-west-1",
    "alerts": {"trusted_principals": ["arn:aws:iam::111111111111:role/terraform-deploy"]},
    "review": {"log_buckets": ["access-logs-*", "central-access-logs"], "late_margin_minutes": 30},
}
NO_REVIEW = {
    "name": "noreview",
    "account_id": "555555555555",
    "home_region": "eu-west-1",
    "review": {"enabled": False},
}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("review-synth")
    return synth_config(load_config(), out / "repo") | synth_config(
        parse_config({"accounts": [LOGS, NO_REVIEW]}), out / "variants"
    )


def named(stack: dict, kind: str, prefix: str) -> tuple[str, dict]:
    found = [(k, b) for k, b in stack["resource"].get(kind, {}).items() if k.startswith(prefix)]
    assert len(found) == 1, (kind, prefix, [k for k, _ in found])
    return f"${{{kind}.{found[0][0]}", found[0][1]


def functions(stack: dict) -> dict[str, dict]:
    return {f["handler"]: f for f in stack["resource"]["aws_lambda_function"].values()}


def test_the_review_function_runs_from_the_shared_package_fed_by_its_queue(stacks):
    stack = stacks["logged"]
    by_handler = functions(stack)
    review = by_handler["handlers.review.function.handler"]
    response = by_handler["handlers.response.function.handler"]
    assert review["function_name"] == "logged-s3-exposure-review"
    # One package, three entries (each function's own copy of the same zip).
    assert review["filename"].endswith("/handlers.zip") and response["filename"].endswith("/handlers.zip")
    queue_ref, queue = named(stack, "aws_sqs_queue", "review-queue_requests_")
    dead_ref, _ = named(stack, "aws_sqs_queue", "review-queue_dead-letters_")
    assert queue["kms_master_key_id"] and json.loads(queue["redrive_policy"])["maxReceiveCount"] == 5
    assert review["dead_letter_config"]["target_arn"] == f"{dead_ref}.arn}}"
    _, mapping = named(stack, "aws_lambda_event_source_mapping", "review_requests_")
    assert mapping["event_source_arn"] == f"{queue_ref}.arn}}"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]


def test_every_sender_gets_the_queue_and_the_review_its_settings(stacks):
    stack = stacks["logged"]
    queue_ref, _ = named(stack, "aws_sqs_queue", "review-queue_requests_")
    by_handler = functions(stack)
    for handler in (
        "handlers.response.function.handler",
        "handlers.sweep.function.handler",
        "handlers.review.function.handler",
    ):
        variables = by_handler[handler]["environment"]["variables"]
        assert variables["REVIEW_QUEUE_URL"] == f"{queue_ref}.url}}", handler
        assert json.loads(variables["TRUSTED_PRINCIPALS"]) == [
            "arn:aws:iam::111111111111:role/terraform-deploy"
        ]
        assert variables["ACTOR_HISTORY_SECONDS"] == "5"
    review = by_handler["handlers.review.function.handler"]["environment"]["variables"]
    assert review["REVIEW_LATE_MARGIN_MINUTES"] == "30"
    assert review["REVIEW_LOG_TARGET_BUCKET"] == "central-access-logs"  # the first name that is no glob


def test_the_review_role_reads_objects_only_of_log_buckets_and_the_trail(stacks):
    stack = stacks["logged"]
    policy = role_policies(stack)["review-least-privilege"]
    assert_least_privilege(policy, "off", False)
    assert allowed(policy, "s3:GetObject", "arn:aws:s3:::access-logs-eu/x")
    assert allowed(policy, "s3:GetObject", "arn:aws:s3:::central-access-logs/x")
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::customer-exports/x")
    assert allowed(policy, "s3:GetBucketLogging", "arn:aws:s3:::customer-exports")
    granted = {a for s in policy["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}
    assert {c.iam_action for c in review_calls()} <= granted


def test_senders_may_send_to_the_review_queue_only(stacks):
    stack = stacks["logged"]
    queue_ref, _ = named(stack, "aws_sqs_queue", "review-queue_requests_")
    for name in ("least-privilege", "sweep-least-privilege"):
        policy = role_policies(stack)[name]
        (statement,) = [s for s in policy["Statement"] if s["Sid"] == "RequestExposureReviews"]
        assert statement["Action"] == ["sqs:SendMessage"] and statement["Resource"] == [f"{queue_ref}.arn}}"]


def test_history_is_the_one_new_star_resource_and_says_so(stacks):
    stack = stacks["logged"]
    policy = role_policies(stack)["least-privilege"]
    star = [s for s in policy["Statement"] if "*" in s["Resource"]]
    assert {s["Sid"] for s in star} == {"AccountBlockPublicAccessRead", "ReadActorHistoryNoResourceType"}
    (history,) = [s for s in star if s["Sid"] == "ReadActorHistoryNoResourceType"]
    assert history["Action"] == ["cloudtrail:LookupEvents"]


def test_a_dead_review_pages_the_topic(stacks):
    alarms = stacks["logged"]["resource"]["aws_cloudwatch_metric_alarm"].values()
    (alarm,) = [a for a in alarms if a["alarm_name"] == "logged-detector-review-dead-letters"]
    assert alarm["dimensions"]["QueueName"].startswith("${aws_sqs_queue.review-queue_dead-letters_")
    assert alarm["treat_missing_data"] == "ignore"


def test_review_off_deploys_nothing_of_it(stacks):
    stack = stacks["noreview"]
    assert "handlers.review.function.handler" not in functions(stack)
    assert not [k for k in stack["resource"]["aws_sqs_queue"] if k.startswith("review")]
    for function in functions(stack).values():
        assert "REVIEW_QUEUE_URL" not in function["environment"]["variables"]

"""Synth assertions for the scheduled sweep: function, role, schedule, work queue, event source mapping."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from test_iam_least_privilege import allowed, assert_least_privilege

from handlers.response.permissions import sweep_calls_for
from stacks.config import load_config, parse_config
from stacks.synth import synth_config

TUNED = {
    "name": "tuned",
    "account_id": "111111111111",  # the account tests/test_iam_least_privilege.py checks conditions for
    "home_region": "eu-west-1",
    "remediation": {"mode": "enforce"},
    "exceptions": {"buckets": ["public-site-*"]},
    "sweep": {"interval_minutes": 720, "fanout_threshold": 500, "threads": 32, "worker_concurrency": 10},
}
NO_SWEEP = {
    "name": "nosweep",
    "account_id": "555555555555",
    "home_region": "eu-west-1",
    "sweep": {"enabled": False},
}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("sweep-synth")
    synthesized = synth_config(load_config(), out / "repo")
    synthesized |= synth_config(parse_config({"accounts": [TUNED, NO_SWEEP]}), out / "variants")
    synthesized["_outdir"] = {"path": str(out / "repo")}
    return synthesized


def sweep_resource(stack: dict, kind: str, name: str) -> tuple[str, dict]:
    """The sweep construct's ``name`` resource of ``kind``: (reference prefix, body)."""
    found = [
        (key, body)
        for key, body in stack["resource"].get(kind, {}).items()
        if key.startswith(f"sweep_{name}_")
    ]
    assert len(found) == 1, (kind, name, [k for k, _ in found])
    key, body = found[0]
    return f"${{{kind}.{key}", body


def test_function_runs_the_sweep_handler_from_the_shared_package(stacks):
    stack = stacks["security-prod"]
    _, function = sweep_resource(stack, "aws_lambda_function", "function")
    assert function["function_name"] == "security-prod-s3-exposure-sweep"
    assert function["handler"] == "handlers.sweep.function.handler"
    assert function["runtime"] == "python3.12"
    assert function["timeout"] == 900
    assert function["memory_size"] == 1024
    assert function["reserved_concurrent_executions"] == 4 + 1  # workers + the scheduled run
    assert function["kms_key_arn"].startswith("${aws_kms_key.")
    dlq_ref, _ = sweep_resource(stack, "aws_sqs_queue", "work-dead-letters")
    assert function["dead_letter_config"]["target_arn"] == f"{dlq_ref}.arn}}"
    log_ref, log_group = sweep_resource(stack, "aws_cloudwatch_log_group", "log-group")
    assert function["logging_config"]["log_group"] == f"{log_ref}.name}}"
    assert log_group["name"] == "/aws/lambda/security-prod-s3-exposure-sweep"
    assert log_group["retention_in_days"] == 365 and log_group["kms_key_id"].startswith("${aws_kms_key.")
    outdir = Path(stacks["_outdir"]["path"]) / "stacks" / "security-prod"
    with zipfile.ZipFile(outdir / function["filename"]) as archive:
        names = archive.namelist()
    assert {
        "handlers/sweep/function.py",
        "handlers/response/exposure_ledger.py",
        "handlers/response/function.py",
    } <= set(names)


def test_environment_is_the_response_contract_plus_the_sweep_settings(stacks):
    stack = stacks["security-prod"]
    _, function = sweep_resource(stack, "aws_lambda_function", "function")
    env = function["environment"]["variables"]
    (response,) = [
        f for k, f in stack["resource"]["aws_lambda_function"].items() if k.startswith("response_")
    ]
    shared = response["environment"]["variables"]
    assert {
        k: env[k] for k in shared
    } == shared  # same REMEDIATION_MODE, EXCEPTION_BUCKETS, APPROVAL_TAG, ...
    queue_ref, _ = sweep_resource(stack, "aws_sqs_queue", "work-queue")
    assert env["SWEEP_WORK_QUEUE_URL"] == f"{queue_ref}.url}}"
    assert env["SWEEP_FANOUT_THRESHOLD"] == "3000"
    assert env["SWEEP_THREADS"] == "16"
    assert env["SWEEP_DIGEST_HOUR"] == "8"
    assert int(env["SWEEP_BATCH_SIZE"]) > 0
    tuned = sweep_resource(stacks["tuned"], "aws_lambda_function", "function")[1]["environment"]["variables"]
    assert (tuned["SWEEP_FANOUT_THRESHOLD"], tuned["SWEEP_THREADS"]) == ("500", "32")


def test_schedule_is_hourly_by_default_and_configurable(stacks):
    for name, expression in (("security-prod", "rate(60 minutes)"), ("tuned", "rate(720 minutes)")):
        stack = stacks[name]
        rule_ref, rule = sweep_resource(stack, "aws_cloudwatch_event_rule", "schedule")
        assert rule["schedule_expression"] == expression
        assert "event_pattern" not in rule
        function_ref, _ = sweep_resource(stack, "aws_lambda_function", "function")
        _, target = sweep_resource(stack, "aws_cloudwatch_event_target", "schedule-target")
        assert target["rule"] == f"{rule_ref}.name}}" and target["arn"] == f"{function_ref}.arn}}"
        _, permission = sweep_resource(stack, "aws_lambda_permission", "schedule-invokes")
        assert permission["principal"] == "events.amazonaws.com"
        assert permission["source_arn"] == f"{rule_ref}.arn}}"
        assert permission["function_name"] == f"{function_ref}.function_name}}"


def test_work_queue_is_encrypted_with_its_own_dead_letters(stacks):
    stack = stacks["security-prod"]
    _, queue = sweep_resource(stack, "aws_sqs_queue", "work-queue")
    dlq_ref, dlq = sweep_resource(stack, "aws_sqs_queue", "work-dead-letters")
    assert queue["kms_master_key_id"].startswith("${aws_kms_key.")
    assert dlq["sqs_managed_sse_enabled"] is True  # bucket names only; keeps it off the KMS wait
    assert json.loads(queue["redrive_policy"]) == {
        "deadLetterTargetArn": f"{dlq_ref}.arn}}",
        "maxReceiveCount": 5,
    }
    assert queue["visibility_timeout_seconds"] == 6 * 900  # AWS's advice: six times the function timeout
    assert dlq["message_retention_seconds"] == 14 * 24 * 3600
    assert not dlq["name"].endswith("-detector-dead-letters")  # not mistaken for the events' DLQ


def test_event_source_mapping_feeds_worker_batches(stacks):
    for name, concurrency in (("security-prod", 4), ("tuned", 10)):
        stack = stacks[name]
        queue_ref, _ = sweep_resource(stack, "aws_sqs_queue", "work-queue")
        function_ref, function = sweep_resource(stack, "aws_lambda_function", "function")
        _, mapping = sweep_resource(stack, "aws_lambda_event_source_mapping", "work-source")
        assert mapping["event_source_arn"] == f"{queue_ref}.arn}}"
        assert mapping["function_name"] == f"{function_ref}.arn}}"
        assert mapping["batch_size"] == 1
        assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
        assert mapping["scaling_config"]["maximum_concurrency"] == concurrency
        assert function["reserved_concurrent_executions"] > concurrency  # never throttled into the DLQ


def ref(stack: dict, kind: str, prefix: str, attribute: str = "arn") -> str:
    (key,) = [key for key in stack["resource"][kind] if key.startswith(prefix)]
    return f"${{{kind}.{key}.{attribute}}}"


@pytest.mark.parametrize("name", ["security-prod", "sandbox", "tuned"])
def test_role_grants_every_sweep_call_on_its_resource_and_nothing_more(stacks, name):
    stack = stacks[name]
    mode = {"security-prod": "enforce", "sandbox": "dry-run", "tuned": "enforce"}[name]
    _, role_policy = sweep_resource(stack, "aws_iam_role_policy", "policy")
    assert role_policy["name"] == "sweep-least-privilege"
    policy = json.loads(role_policy["policy"])
    assert_least_privilege(policy, mode, False)
    resource_for = {
        "bucket": "arn:aws:s3:::some-bucket",
        "listing": "*",
        "account": "*",
        "topic": ref(stack, "aws_sns_topic", "alerting_topic_"),
        "key": ref(stack, "aws_kms_key", "encryption_key_"),
        "table": ref(stack, "aws_dynamodb_table", "response_idempotency-table_"),
        "queue": ref(stack, "aws_sqs_queue", "sweep_work-queue_"),
        "review-queue": ref(stack, "aws_sqs_queue", "review-queue_requests_"),
    }
    for call in sweep_calls_for(mode):
        assert allowed(policy, call.iam_action, resource_for[call.resource]), call
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["ListBucketsNoResourceType"]["Action"] == ["s3:ListAllMyBuckets"]
    assert by_sid["ReceiveSweepBatches"]["Resource"] == [resource_for["queue"]]
    assert not allowed(policy, "sqs:SendMessage", ref(stack, "aws_sqs_queue", "dead-letters_queue_"))
    assert not allowed(policy, "sns:Publish", "arn:aws:sns:eu-west-1:111111111111:other")
    assert not allowed(policy, "s3:PutAccountPublicAccessBlock", "*")
    assert allowed(policy, "s3:PutBucketPublicAccessBlock", "arn:aws:s3:::b") is (mode == "enforce")


def test_exception_buckets_are_never_closed_by_the_sweep(stacks):
    _, role_policy = sweep_resource(stacks["tuned"], "aws_iam_role_policy", "policy")
    policy = json.loads(role_policy["policy"])
    assert not allowed(policy, "s3:PutBucketPublicAccessBlock", "arn:aws:s3:::public-site-www")
    assert allowed(policy, "s3:PutBucketPublicAccessBlock", "arn:aws:s3:::data")


def test_disabled_sweep_deploys_nothing_of_it(stacks):
    stack = stacks["nosweep"]
    keys = [key for kind in stack["resource"].values() for key in kind]
    assert not [key for key in keys if key.startswith("sweep_")]
    assert "sweep_function_name" not in stack.get("output", {})
    assert "sweep_function_name" in stacks["security-prod"]["output"]

"""Synth assertions: every resource and setting the detector needs, read from the synthesized JSON.

Stacks are synthesized once per module (the cdktf runtime starts once per process).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from handlers.detection.event_patterns import RULES
from stacks.config import load_config, parse_config
from stacks.packaging import build_handler_zip
from stacks.providers import ENDPOINT_SERVICES, ProviderOptions
from stacks.synth import synth_config

ENFORCE_ACCOUNT = {
    "name": "enforcer",
    "account_id": "333333333333",
    "home_region": "us-west-2",
    "remediation": {"mode": "enforce", "allow_account_level": True},
    "trail": {"kms_encryption": False},
    "exceptions": {"buckets": ["public-site-*", "odd[ab]"]},
}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("synth")
    synthesized = synth_config(load_config(), out / "repo")
    synthesized |= synth_config(parse_config({"accounts": [ENFORCE_ACCOUNT]}), out / "enforce")
    emulator = synth_config(
        load_config(), out / "emulator", ProviderOptions(endpoint_url="http://127.0.0.1:4566"), only="sandbox"
    )
    synthesized["sandbox-emulator"] = emulator["sandbox"]
    synthesized["_outdir"] = {"path": str(out / "repo")}
    return synthesized


def resources(stack: dict, kind: str) -> list[dict]:
    """The stack's resources of ``kind``, without the scheduled sweep's and the exposure review's.

    The sweep (a second function, log group, schedule rule and target, queues, role) is asserted
    in tests/test_sweep_stack.py, its alarms in tests/test_alarms.py; the review (a third function,
    its queue and role) in tests/test_review_stack.py.
    """
    found = stack.get("resource", {}).get(kind, {}).values()
    others = ("/sweep/", "/review/", "/review-queue/")
    return [
        r for r in found if not any(o in r.get("//", {}).get("metadata", {}).get("path", "") for o in others)
    ]


def one(stack: dict, kind: str) -> dict:
    found = resources(stack, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_one_stack_per_account(stacks):
    assert {"security-prod", "sandbox", "enforcer"} <= set(stacks)


# ---- CloudTrail ----


def test_trail_is_multi_region_validated_and_encrypted(stacks):
    trail = one(stacks["security-prod"], "aws_cloudtrail")
    assert trail["is_multi_region_trail"] is True
    assert trail["enable_log_file_validation"] is True
    assert trail["include_global_service_events"] is True
    assert trail["enable_logging"] is True
    assert trail["kms_key_id"].startswith("${aws_kms_key.")
    assert "kms_key_id" not in one(stacks["enforcer"], "aws_cloudtrail")


def test_object_acl_data_events_are_opt_in(stacks):
    selectors = one(stacks["security-prod"], "aws_cloudtrail")["advanced_event_selector"]
    # Advanced selectors replace the default: management events must be selected explicitly.
    assert {"field": "eventCategory", "equals": ["Management"]} in selectors[0]["field_selector"]
    data = [s for s in selectors if {"field": "eventCategory", "equals": ["Data"]} in s["field_selector"]]
    assert len(data) == 1
    assert {"field": "eventName", "equals": ["PutObjectAcl"]} in data[0]["field_selector"]
    assert {"field": "readOnly", "equals": ["false"]} in data[0]["field_selector"]
    assert "advanced_event_selector" not in one(stacks["enforcer"], "aws_cloudtrail")


def test_existing_trail_means_no_trail_resources(stacks):
    sandbox = stacks["sandbox"]
    for kind in ("aws_cloudtrail", "aws_s3_bucket", "aws_s3_bucket_policy"):
        assert not resources(sandbox, kind), kind


def test_log_bucket_is_locked_down(stacks):
    stack = stacks["security-prod"]
    bpa = one(stack, "aws_s3_bucket_public_access_block")
    assert all(
        bpa[flag] is True
        for flag in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )
    assert one(stack, "aws_s3_bucket_ownership_controls")["rule"]["object_ownership"] == "BucketOwnerEnforced"
    assert one(stack, "aws_s3_bucket_versioning")["versioning_configuration"]["status"] == "Enabled"
    sse = one(stack, "aws_s3_bucket_server_side_encryption_configuration")["rule"][0]
    assert sse["apply_server_side_encryption_by_default"]["sse_algorithm"] == "aws:kms"
    rule = one(stack, "aws_s3_bucket_lifecycle_configuration")["rule"][0]
    assert rule["status"] == "Enabled" and rule["expiration"][0]["days"] == 365
    assert rule["noncurrent_version_expiration"][0]["noncurrent_days"] == 30
    enforcer_sse = one(stacks["enforcer"], "aws_s3_bucket_server_side_encryption_configuration")["rule"][0]
    assert enforcer_sse["apply_server_side_encryption_by_default"]["sse_algorithm"] == "AES256"


def test_log_bucket_policy_is_tls_only_and_scoped_to_the_trail(stacks):
    policy = json.loads(one(stacks["security-prod"], "aws_s3_bucket_policy")["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    deny = by_sid["DenyInsecureTransport"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    trail_arn = "arn:aws:cloudtrail:eu-west-1:111111111111:trail/security-prod-trail"
    write = by_sid["CloudTrailWrite"]
    assert write["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert write["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn
    assert write["Resource"].endswith("/AWSLogs/111111111111/*")
    assert by_sid["CloudTrailAclCheck"]["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn


# ---- EventBridge ----


def test_home_region_rules_use_the_shared_patterns(stacks):
    stack = stacks["security-prod"]
    home_rules = [r for r in resources(stack, "aws_cloudwatch_event_rule") if "provider" not in r]
    # Every pattern is the shared one except trail-tamper, which adds this account's trail bucket.
    static = sorted(rule.pattern_json() for rule in RULES if rule.route != "trail-tamper")
    assert sorted(r["event_pattern"] for r in home_rules if not r["name"].endswith("trail-tamper")) == static
    (tamper,) = [json.loads(r["event_pattern"]) for r in home_rules if r["name"].endswith("trail-tamper")]
    alternatives = tamper["detail"]["$or"]
    assert {"bucketName": ["security-prod-trail-logs-111111111111"]} in [
        a.get("requestParameters") for a in alternatives
    ]
    # With an existing trail, nothing of it is known: the sandbox's bucket part is absent.
    sandbox = [r for r in resources(stacks["sandbox"], "aws_cloudwatch_event_rule") if "provider" not in r]
    (sandbox_tamper,) = [r for r in sandbox if r["name"].endswith("trail-tamper")]
    assert '"bucketName"' not in sandbox_tamper["event_pattern"]


def test_rule_targets_retry_and_dead_letter(stacks):
    stack = stacks["security-prod"]
    targets = [t for t in resources(stack, "aws_cloudwatch_event_target") if "provider" not in t]
    assert len(targets) == len(RULES)
    for target in targets:
        assert target["arn"].startswith("${aws_lambda_function.")
        assert target["retry_policy"] == {
            "maximum_event_age_in_seconds": 86400,
            "maximum_retry_attempts": 185,
        }
        assert target["dead_letter_config"]["arn"].startswith("${aws_sqs_queue.")
    permissions = resources(stack, "aws_lambda_permission")
    assert len(permissions) == len(RULES)
    assert all(
        p["principal"] == "events.amazonaws.com"
        and p["source_arn"].startswith("${aws_cloudwatch_event_rule.")
        for p in permissions
    )


def test_other_watched_regions_forward_to_the_home_bus(stacks):
    stack = stacks["security-prod"]
    forwarders = [t for t in resources(stack, "aws_cloudwatch_event_target") if "provider" in t]
    assert {t["provider"] for t in forwarders} == {"aws.eu-central-1", "aws.us-east-1"}
    assert len(forwarders) == 2 * len(RULES)
    assert all(t["arn"] == "arn:aws:events:eu-west-1:111111111111:event-bus/default" for t in forwarders)
    assert all(t["role_arn"].startswith("${aws_iam_role.") for t in forwarders)
    assert not [t for t in resources(stacks["sandbox"], "aws_cloudwatch_event_target") if "provider" in t]


def test_dead_letter_queue_is_encrypted_and_only_the_rules_may_send(stacks):
    stack = stacks["security-prod"]
    # The home region's queue; each forwarding region has its own (tests/test_multi_region.py).
    (queue,) = [q for q in resources(stack, "aws_sqs_queue") if q["name"].endswith("-detector-dead-letters")]
    assert queue["kms_master_key_id"].startswith("${aws_kms_key.")
    assert queue["message_retention_seconds"] == 14 * 24 * 3600
    # The policy sits inline on the queue (a separate queue policy costs ~25 s per apply).
    assert not resources(stack, "aws_sqs_queue_policy")
    (statement,) = json.loads(queue["policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == "arn:aws:sqs:eu-west-1:111111111111:security-prod-detector-dead-letters"
    home_rules = {r["name"] for r in resources(stack, "aws_cloudwatch_event_rule") if "provider" not in r}
    assert sorted(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(
        f"arn:aws:events:eu-west-1:111111111111:rule/{name}"
        for name in home_rules
        if not name.endswith("-sweep")
    )
    assert len(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == len(RULES)


# ---- the response function ----


def test_function_runtime_package_and_bounds(stacks):
    function = one(stacks["security-prod"], "aws_lambda_function")
    assert function["runtime"] == "python3.12"
    assert function["handler"] == "handlers.response.function.handler"
    assert function["reserved_concurrent_executions"] == 5
    assert function["filename"].endswith("/handlers.zip")
    assert function["source_code_hash"].startswith("${filebase64sha256(")
    assert function["dead_letter_config"]["target_arn"].startswith("${aws_sqs_queue.")
    assert function["logging_config"]["log_group"].startswith("${aws_cloudwatch_log_group.")
    invoke = one(stacks["security-prod"], "aws_lambda_function_event_invoke_config")
    assert invoke["maximum_retry_attempts"] == 2


def test_package_holds_the_handlers_package_without_pycache(stacks):
    outdir = Path(stacks["_outdir"]["path"]) / "stacks" / "security-prod"
    function = one(stacks["security-prod"], "aws_lambda_function")
    with zipfile.ZipFile(outdir / function["filename"]) as archive:
        names = archive.namelist()
    assert "handlers/__init__.py" in names and "handlers/detection/classify.py" in names
    assert all(name.startswith("handlers/") for name in names)
    # Never the building machine's own bytecode cache; only python3.12 bytecode made for Lambda.
    assert not [n for n in names if n.endswith(".pyc") and not n.endswith(".cpython-312.pyc")]


def _python_312() -> str | None:
    found = os.environ.get("LAMBDA_PYTHON") or next(
        (str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))), None
    )
    return found if found and Path(found).exists() else None


def test_package_ships_reproducible_lambda_bytecode_when_python_312_is_at_hand(tmp_path, monkeypatch):
    python = _python_312()
    if not python:
        pytest.skip("no Python 3.12 here (LAMBDA_PYTHON unset, none under ~/.pyenv)")
    monkeypatch.setenv("LAMBDA_PYTHON", python)
    first = build_handler_zip(build_dir=tmp_path / "a")
    second = build_handler_zip(build_dir=tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()  # same source, same bytes: a stable asset hash
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        sources = [n for n in names if n.endswith(".py")]
        pycs = [n for n in names if n.endswith(".pyc")]
        assert len(pycs) == len(sources)
        for source in sources:
            folder, module = source.rsplit("/", 1)
            assert f"{folder}/__pycache__/{module[:-3]}.cpython-312.pyc" in names
        header = archive.read("handlers/detection/__pycache__/classify.cpython-312.pyc")[:16]
    # PEP 552 flags: bit 0 hash-based, bit 1 check source; unchecked-hash is 0b01.
    assert int.from_bytes(header[4:8], "little") == 0b01
    monkeypatch.setenv("LAMBDA_PYTHON", "/nonexistent/python3.12")
    plain = build_handler_zip(build_dir=tmp_path / "c")
    with zipfile.ZipFile(plain) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".pyc")]


def test_function_environment_carries_the_config(stacks):
    env = one(stacks["security-prod"], "aws_lambda_function")["environment"]["variables"]
    assert env["REMEDIATION_MODE"] == "enforce"
    assert env["ALLOW_ACCOUNT_REMEDIATION"] == "false"
    assert env["ENVIRONMENT"] == "production"
    assert env["ACCOUNT_NAME"] == "security-prod"
    assert env["EXPECTED_ACCOUNT_ID"] == "111111111111"
    assert json.loads(env["EXCEPTION_BUCKETS"]) == ["example-public-website", "example-assets-*"]
    assert env["APPROVAL_TAG"] == "public-access-approved-until"
    assert env["SENSITIVE_TAG"] == "data-classification"
    assert env["SENSITIVE_TAG_VALUES"] == "confidential,restricted,sensitive"
    assert env["ALERT_TOPIC_ARN"].startswith("${aws_sns_topic.")
    assert env["IDEMPOTENCY_TABLE"].startswith("${aws_dynamodb_table.")
    assert env["LOG_LEVEL"] == "INFO"
    sandbox_env = one(stacks["sandbox"], "aws_lambda_function")["environment"]["variables"]
    assert sandbox_env["REMEDIATION_MODE"] == "dry-run" and sandbox_env["ENVIRONMENT"] == "sandbox"


def test_log_group_has_retention_and_encryption(stacks):
    group = one(stacks["security-prod"], "aws_cloudwatch_log_group")
    assert group["name"] == "/aws/lambda/security-prod-s3-exposure-response"
    assert group["retention_in_days"] == 365
    assert group["kms_key_id"].startswith("${aws_kms_key.")


def test_idempotency_table(stacks):
    table = one(stacks["security-prod"], "aws_dynamodb_table")
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert table["hash_key"] == "pk"
    assert table["attribute"] == [{"name": "pk", "type": "S"}]
    assert table["ttl"] == {"attribute_name": "expires_at", "enabled": True}
    assert table["server_side_encryption"]["enabled"] is True
    assert table["point_in_time_recovery"]["enabled"] is True


# ---- alerting ----


def test_topic_is_encrypted_and_subscribed(stacks):
    stack = stacks["security-prod"]
    assert one(stack, "aws_sns_topic")["kms_master_key_id"].startswith("${aws_kms_key.")
    subscriptions = {(s["protocol"], s["endpoint"]) for s in resources(stack, "aws_sns_topic_subscription")}
    assert subscriptions == {
        ("email", "secops@example.com"),
        ("https", "https://alerts.example.com/hooks/s3-public"),
    }


def test_topic_policy_lets_in_only_the_function_and_the_alarms(stacks):
    policy = json.loads(one(stacks["security-prod"], "aws_sns_topic_policy")["policy"])
    allows = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    principals = [s["Principal"] for s in allows]
    assert len(principals) == 2
    assert {"Service": "cloudwatch.amazonaws.com"} in principals
    role = next(p["AWS"] for p in principals if "AWS" in p)
    assert role.startswith("${aws_iam_role.response_role_") and role.endswith(".arn}")
    assert all(s["Action"] == "sns:Publish" for s in allows)
    alarms = next(s for s in allows if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"})
    assert alarms["Condition"]["StringEquals"]["aws:SourceAccount"] == "111111111111"


def test_alarms_on_function_errors_and_dead_letters(stacks):
    # Every alarm, with its metric, period and missing-data treatment, is in tests/test_alarms.py.
    names = {a["alarm_name"] for a in resources(stacks["security-prod"], "aws_cloudwatch_metric_alarm")}
    assert {"security-prod-detector-function-errors", "security-prod-detector-dead-letters"} <= names


def test_key_rotates_and_lets_services_in_by_account(stacks):
    key = one(stacks["security-prod"], "aws_kms_key")
    assert key["enable_key_rotation"] is True
    policy = json.loads(key["policy"])
    sids = {s["Sid"] for s in policy["Statement"]}
    assert "CloudTrailEncryptsThisTrailsLogs" in sids
    assert "CloudTrailEncryptsThisTrailsLogs" not in {
        s["Sid"] for s in json.loads(one(stacks["sandbox"], "aws_kms_key")["policy"])["Statement"]
    }


# ---- providers ----


def test_providers_assume_the_deploy_role_and_pin_the_account(stacks):
    providers = stacks["security-prod"]["provider"]["aws"]
    assert [p.get("alias") for p in providers] == [None, "eu-central-1", "us-east-1"]
    for provider in providers:
        assert provider["allowed_account_ids"] == ["111111111111"]
        assert provider["assume_role"][0]["role_arn"] == "arn:aws:iam::111111111111:role/detector-deploy"
        assert "endpoints" not in provider and "skip_credentials_validation" not in provider


def test_endpoint_override_points_every_service_at_the_emulator(stacks):
    (provider,) = stacks["sandbox-emulator"]["provider"]["aws"]
    assert provider["endpoints"] == [{service: "http://127.0.0.1:4566" for service in ENDPOINT_SERVICES}]
    assert provider["skip_credentials_validation"] is True
    assert provider["skip_requesting_account_id"] is True
    assert provider["s3_use_path_style"] is True
    assert "allowed_account_ids" not in provider


def test_state_path_is_relative(stacks):
    path = stacks["sandbox"]["terraform"]["backend"]["local"]["path"]
    assert not path.startswith("/")

"""Every watched region from one deploy: rules, targets, roles and dead letters in each region.

One account watching four regions is synthesized once. The home region's rules invoke
the function; every other region's rules forward to the home region's default bus with a
least-privilege role, retry for a day and dead-letter in their own region. A forwarded
event keeps its source, detail-type, detail and original ``region``, so the faithful
engine proves the home rules (as synthesized) match events from any region.

What no emulator proves: moto's ``put_events`` does not deliver from one region's rule to
another region's bus (its targets must be SQS, Logs or a bus in the same backend), so the
cross-region hop itself is only proven here, from the synthesized configuration.
"""

from __future__ import annotations

import copy
import json

import pytest

from demo.dataset_loader import load_cases
from demo.pattern_engine import matches
from handlers.detection.event_patterns import RULES, envelope
from stacks.config import parse_config
from stacks.rules import forward_dead_letter_queue_name, forwarder_role_name, rule_name
from stacks.synth import synth_config
from stacks.trail import log_bucket_name, trail_name

HOME = "eu-west-1"
OTHERS = ("eu-central-1", "us-east-1", "ap-southeast-2")
ACCOUNT_ID = "444444444444"
MULTI = {
    "name": "multi",
    "account_id": ACCOUNT_ID,
    "home_region": HOME,
    "watch_regions": [HOME, *OTHERS],
}
HOME_BUS = f"arn:aws:events:{HOME}:{ACCOUNT_ID}:event-bus/default"
ROUTES = [rule.route for rule in RULES]


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory) -> tuple[dict, object]:
    config = parse_config({"accounts": [MULTI]})
    stacks = synth_config(config, tmp_path_factory.mktemp("multi"))
    return stacks["multi"], config.accounts[0]


@pytest.fixture(scope="module")
def stack(synthesized) -> dict:
    return synthesized[0]


def resources(stack: dict, kind: str) -> dict[str, dict]:
    """The stack's resources of ``kind``, without the sweep's (its schedule rule is home-only)."""
    found = stack.get("resource", {}).get(kind, {})
    return {
        name: r
        for name, r in found.items()
        if "/sweep/" not in r.get("//", {}).get("metadata", {}).get("path", "")
    }


def region_of(resource: dict) -> str:
    """The region a resource is created in: its provider alias, or the home region."""
    provider = resource.get("provider")
    return provider.removeprefix("aws.") if provider else HOME


def by_region(stack: dict, kind: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for resource in resources(stack, kind).values():
        found.setdefault(region_of(resource), []).append(resource)
    return found


def test_every_watched_region_has_a_provider_and_the_same_rules(stack, synthesized) -> None:
    account = synthesized[1]
    aliases = {p.get("alias") for p in stack["provider"]["aws"]}
    assert aliases == {None, *OTHERS}
    rules = by_region(stack, "aws_cloudwatch_event_rule")
    assert set(rules) == {HOME, *OTHERS}
    home_patterns = sorted(r["event_pattern"] for r in rules[HOME])
    for region, regional in rules.items():
        assert sorted(r["name"] for r in regional) == sorted(rule_name(account, rule) for rule in RULES), (
            region
        )
        # Forwarding rules filter exactly like the home rules: only what the home rules want travels.
        assert sorted(r["event_pattern"] for r in regional) == home_patterns, region


def test_only_home_rules_invoke_the_function_others_forward_to_the_home_bus(stack) -> None:
    targets = by_region(stack, "aws_cloudwatch_event_target")
    assert len(targets[HOME]) == len(RULES)
    assert all(t["arn"].startswith("${aws_lambda_function.") for t in targets[HOME])
    assert len({t["arn"] for t in targets[HOME]}) == 1  # one function serves every region
    for region in OTHERS:
        assert len(targets[region]) == len(RULES)
        for target in targets[region]:
            assert target["arn"] == HOME_BUS, "a non-home rule must never target the function directly"
            assert "lambda" not in json.dumps(target)
            assert target["role_arn"].startswith("${aws_iam_role.")
            assert target["retry_policy"] == {
                "maximum_event_age_in_seconds": 86400,
                "maximum_retry_attempts": 185,
            }
    permissions = resources(stack, "aws_lambda_permission").values()
    invoke = [p for p in permissions if "events-" in p.get("statement_id", "")]
    assert all(region_of(p) == HOME for p in invoke) and len(invoke) == len(RULES)


def test_the_forwarder_role_is_least_privilege(stack, synthesized) -> None:
    account = synthesized[1]
    roles = {r["name"]: r for r in resources(stack, "aws_iam_role").values()}
    role = roles[forwarder_role_name(account)]
    trust = json.loads(role["assume_role_policy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    policies = [
        p for p in resources(stack, "aws_iam_role_policy").values() if p["name"] == "put-events-to-home-bus"
    ]
    (policy,) = policies
    (grant,) = json.loads(policy["policy"])["Statement"]
    assert grant["Effect"] == "Allow"
    assert grant["Action"] == ["events:PutEvents"] and grant["Resource"] == [HOME_BUS]
    # IAM is global: one role for every region's targets, no role per region.
    forward_roles = {
        t["role_arn"] for r in OTHERS for t in by_region(stack, "aws_cloudwatch_event_target")[r]
    }
    assert len(forward_roles) == 1


def test_forwarding_targets_dead_letter_into_a_queue_in_their_own_region(stack, synthesized) -> None:
    account = synthesized[1]
    queues = resources(stack, "aws_sqs_queue")
    queue_region = {f"${{aws_sqs_queue.{key}.arn}}": region_of(q) for key, q in queues.items()}
    regional = [q for q in queues.values() if q["name"] == forward_dead_letter_queue_name(account)]
    assert sorted(region_of(q) for q in regional) == sorted(OTHERS)
    for queue in regional:
        assert queue["sqs_managed_sse_enabled"] is True  # the stack's CMK lives in the home region only
        assert queue["message_retention_seconds"] == 14 * 24 * 3600
    targets = by_region(stack, "aws_cloudwatch_event_target")
    for region in OTHERS:
        for target in targets[region]:
            assert queue_region[target["dead_letter_config"]["arn"]] == region
    # Each queue's policy is inline and admits exactly its own region's rules, by ARN.
    rules = by_region(stack, "aws_cloudwatch_event_rule")
    for queue in regional:
        region = region_of(queue)
        (statement,) = json.loads(queue["policy"])["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Resource"] == f"arn:aws:sqs:{region}:{account.account_id}:{queue['name']}"
        sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        assert sorted(sources) == sorted(
            f"arn:aws:events:{region}:{account.account_id}:rule/{r['name']}" for r in rules[region]
        )
        assert len(sources) == len(RULES)


def test_one_function_and_one_topic_all_in_the_home_region(stack) -> None:
    topics = resources(stack, "aws_sns_topic").values()
    assert len(topics) == 1 and all(region_of(t) == HOME for t in topics)
    functions = resources(stack, "aws_lambda_function").values()
    assert functions and all(region_of(f) == HOME for f in functions)
    responders = [f for f in functions if f["handler"] == "handlers.response.function.handler"]
    assert len(responders) == 1


def test_the_function_and_the_tamper_rule_know_the_detectors_trail(stack, synthesized) -> None:
    account = synthesized[1]
    (function,) = [
        f
        for f in resources(stack, "aws_lambda_function").values()
        if f["handler"] == "handlers.response.function.handler"
    ]
    env = function["environment"]["variables"]
    assert env["TRAIL_NAME"] == trail_name(account)
    assert env["TRAIL_BUCKET"] == log_bucket_name(account)
    assert env["TRAIL_KMS_KEY_ARN"].startswith("${aws_kms_key.")
    assert env["DETECTOR_KMS_KEY_ARN"] == env["TRAIL_KMS_KEY_ARN"]
    tamper = [
        r for r in by_region(stack, "aws_cloudwatch_event_rule")[HOME] if r["name"].endswith("trail-tamper")
    ]
    pattern = json.loads(tamper[0]["event_pattern"])
    assert {"bucketName": [log_bucket_name(account)]} in [
        alternative.get("requestParameters") for alternative in pattern["detail"]["$or"]
    ]


# Labelled with the route that must deliver them, and needing no detector context.
MUST_ROUTE = [
    c for c in load_cases() if "route" in c.expect and '"context"' not in c.path.read_text(encoding="utf-8")
]


@pytest.mark.parametrize("region", OTHERS)
def test_forwarded_events_match_the_home_rules_as_synthesized(stack, synthesized, region: str) -> None:
    account = synthesized[1]
    rules = by_region(stack, "aws_cloudwatch_event_rule")
    route_of = {rule_name(account, rule): rule.route for rule in RULES}
    home = {route_of[r["name"]]: r["event_pattern"] for r in rules[HOME]}
    regional = {route_of[r["name"]]: r["event_pattern"] for r in rules[region]}
    for case in MUST_ROUTE:
        record = copy.deepcopy(case.record)
        record["awsRegion"] = region
        # What the regional rule sees, and what the home bus receives after forwarding.
        event = envelope(record)
        assert event["region"] == region != HOME
        route = case.expect["route"]
        assert matches(regional[route], event), f"{case.id} not forwarded from {region}"
        assert matches(home[route], event), f"{case.id} forwarded from {region} but not matched at home"
    # The account's own trail bucket, altered from a forwarding region, reaches the tamper rule.
    record = copy.deepcopy(
        next(c.record for c in MUST_ROUTE if c.record["eventSource"] == "s3.amazonaws.com")
    )
    record.update(eventName="DeleteBucketPolicy", awsRegion=region)
    record["requestParameters"] = {"bucketName": log_bucket_name(account)}
    assert matches(home["trail-tamper"], envelope(record))
    record["requestParameters"] = {"bucketName": "someone-elses-bucket"}
    assert not matches(home["trail-tamper"], envelope(record))

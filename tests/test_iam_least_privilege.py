"""The function's IAM policy grants what the code calls and nothing more.

Rules: no "*" action anywhere; no "*" resource on any write, except the one action IAM
gives no resource type (s3:PutAccountPublicAccessBlock), granted only in enforce mode with
account-level remediation allowed; every API call in handlers/response/permissions.py is granted.
The reads IAM gives no resource type (cloudtrail:LookupEvents, s3:ListAllMyBuckets) sit in
statements whose Sid says so. The exposure review reads objects only of the log buckets.
"""

from __future__ import annotations

import fnmatch
import json

import pytest

from handlers.response.permissions import MODES, calls_for, review_calls
from stacks.config import load_config
from stacks.iam_policy import (
    PolicyTargets,
    ReviewPolicyTargets,
    response_function_policy,
    review_function_policy,
)
from stacks.synth import synth_config

TARGETS = PolicyTargets(
    partition="aws",
    account_id="111111111111",
    topic_arn="arn:aws:sns:eu-west-1:111111111111:alerts",
    key_arn="arn:aws:kms:eu-west-1:111111111111:key/abc",
    table_arn="arn:aws:dynamodb:eu-west-1:111111111111:table/seen",
    dead_letter_queue_arn="arn:aws:sqs:eu-west-1:111111111111:dlq",
    log_group_arn="arn:aws:logs:eu-west-1:111111111111:log-group:/aws/lambda/fn",
    review_queue_arn="arn:aws:sqs:eu-west-1:111111111111:review-requests",
)
REVIEW_TARGETS = ReviewPolicyTargets(
    partition="aws",
    account_id="111111111111",
    topic_arn=TARGETS.topic_arn,
    key_arn=TARGETS.key_arn,
    table_arn=TARGETS.table_arn,
    review_queue_arn="arn:aws:sqs:eu-west-1:111111111111:review-requests",
    dead_letter_queue_arn="arn:aws:sqs:eu-west-1:111111111111:review-dlq",
    log_group_arn="arn:aws:logs:eu-west-1:111111111111:log-group:/aws/lambda/review",
    trail_arn="arn:aws:cloudtrail:eu-west-1:111111111111:trail/detector",
    trail_bucket="detector-trail-logs",
)
NO_RESOURCE_TYPE_WRITES = {"s3:PutAccountPublicAccessBlock"}
RESOURCE_FOR = {
    "bucket": "arn:aws:s3:::some-bucket",
    "account": "*",
    "access-point": f"arn:aws:s3:eu-west-1:{TARGETS.account_id}:accesspoint/reports",
    "topic": TARGETS.topic_arn,
    "key": TARGETS.key_arn,
    "table": TARGETS.table_arn,
    "history": "*",
    "review-queue": "arn:aws:sqs:eu-west-1:111111111111:review-requests",
    "log-bucket": "arn:aws:s3:::access-logs-eu",
    "log-object": "arn:aws:s3:::access-logs-eu/public-site/2026-12-03-10-00-00-ABC",
    "trail": REVIEW_TARGETS.trail_arn,
}
COMBINATIONS = [(mode, allow) for mode in MODES for allow in (False, True) if mode == "enforce" or not allow]


def is_read(action: str) -> bool:
    return action.split(":", 1)[1].startswith(("Get", "List", "Describe", "Lookup"))


def role_policies(stack: dict) -> dict[str, dict]:
    """A synthesized stack's inline role policies, parsed, by policy name."""
    return {p["name"]: json.loads(p["policy"]) for p in stack["resource"]["aws_iam_role_policy"].values()}


def statements(policy: dict) -> list[dict]:
    return [s | {"Action": _list(s["Action"]), "Resource": _list(s["Resource"])} for s in policy["Statement"]]


def _list(value):
    return value if isinstance(value, list) else [value]


def allowed(policy: dict, action: str, resource: str) -> bool:
    """Allowed by some Allow statement and not denied (conditions ignored: they only narrow)."""

    def hits(s: dict) -> bool:
        return any(fnmatch.fnmatchcase(action, a) for a in s["Action"]) and any(
            fnmatch.fnmatchcase(resource, r) for r in s["Resource"]
        )

    stmts = statements(policy)
    return any(s["Effect"] == "Allow" and hits(s) for s in stmts) and not any(
        s["Effect"] == "Deny" and hits(s) for s in stmts
    )


def assert_least_privilege(policy: dict, mode: str, allow_account: bool) -> None:
    for statement in statements(policy):
        assert "*" not in statement["Action"], statement
        assert all(not a.endswith(":*") for a in statement["Action"]), statement
        if statement["Effect"] != "Allow":
            continue
        writes = [a for a in statement["Action"] if not is_read(a)]
        if "*" in statement["Resource"]:
            assert "NoResourceType" in statement["Sid"] or statement["Sid"].startswith(
                "AccountBlockPublic"
            ), statement
        if "*" in statement["Resource"] and writes:
            assert set(writes) <= NO_RESOURCE_TYPE_WRITES, statement
            assert mode == "enforce" and allow_account, statement
            assert "NoResourceType" in statement["Sid"], "the exception must say why in its Sid"
        if "s3:PutBucketPublicAccessBlock" in statement["Action"]:
            assert statement["Condition"] == {"StringEquals": {"aws:ResourceAccount": "111111111111"}}


@pytest.mark.parametrize(("mode", "allow_account"), COMBINATIONS)
def test_policy_is_least_privilege(mode, allow_account):
    assert_least_privilege(response_function_policy(mode, allow_account, TARGETS), mode, allow_account)


@pytest.mark.parametrize(("mode", "allow_account"), COMBINATIONS)
def test_every_call_the_code_makes_is_granted(mode, allow_account):
    policy = response_function_policy(mode, allow_account, TARGETS)
    for call in calls_for(mode, allow_account):
        assert allowed(policy, call.iam_action, RESOURCE_FOR[call.resource]), call


@pytest.mark.parametrize("mode", MODES)
def test_writes_only_in_enforce(mode):
    policy = response_function_policy(mode, mode == "enforce", TARGETS)
    bucket_write = allowed(policy, "s3:PutBucketPublicAccessBlock", "arn:aws:s3:::b")
    account_write = allowed(policy, "s3:PutAccountPublicAccessBlock", "*")
    assert bucket_write is (mode == "enforce")
    assert account_write is (mode == "enforce")
    if mode == "enforce":
        assert not allowed(
            response_function_policy(mode, False, TARGETS), "s3:PutAccountPublicAccessBlock", "*"
        )


def test_publish_only_to_the_alert_topic():
    policy = response_function_policy("enforce", True, TARGETS)
    assert allowed(policy, "sns:Publish", TARGETS.topic_arn)
    assert not allowed(policy, "sns:Publish", "arn:aws:sns:eu-west-1:111111111111:other")
    assert not allowed(policy, "dynamodb:PutItem", "arn:aws:dynamodb:eu-west-1:111111111111:table/other")
    assert not allowed(policy, "s3:PutBucketPolicy", "arn:aws:s3:::b")


def test_exception_buckets_are_never_closed():
    policy = response_function_policy("enforce", False, TARGETS, ("public-site-*", "odd[ab]"))
    assert not allowed(policy, "s3:PutBucketPublicAccessBlock", "arn:aws:s3:::public-site-www")
    assert allowed(policy, "s3:PutBucketPublicAccessBlock", "arn:aws:s3:::data")
    deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
    assert deny["Resource"] == ["arn:aws:s3:::public-site-*"]  # '[ab]' has no IAM equivalent


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    return synth_config(load_config(), tmp_path_factory.mktemp("iam"))


def test_deployed_policies_are_least_privilege(synthesized):
    config = load_config()
    for account in config.accounts:
        stack = synthesized[account.name]
        for role_policy in stack["resource"]["aws_iam_role_policy"].values():
            policy = json.loads(role_policy["policy"])
            assert_least_privilege(policy, account.remediation_mode, account.allow_account_remediation)
        function_policy = role_policies(stack)["least-privilege"]
        for call in calls_for(account.remediation_mode, account.allow_account_remediation):
            granted = [s for s in statements(function_policy) if call.iam_action in s["Action"]]
            assert granted, call


def test_the_review_reads_objects_of_log_buckets_only() -> None:
    policy = review_function_policy(REVIEW_TARGETS, ("access-logs-*",))
    assert_least_privilege(policy, "off", False)
    for call in review_calls():
        assert allowed(policy, call.iam_action, RESOURCE_FOR[call.resource]), call
    assert allowed(policy, "s3:GetObject", "arn:aws:s3:::detector-trail-logs/AWSLogs/x.json.gz")
    assert allowed(policy, "s3:GetBucketLogging", "arn:aws:s3:::any-bucket")
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::customer-data/secret.csv")
    assert not allowed(policy, "s3:ListBucket", "arn:aws:s3:::customer-data")
    assert not any(
        is_read(a) is False and a.startswith("s3:") for s in statements(policy) for a in s["Action"]
    )


def test_without_log_buckets_or_trail_the_review_reads_no_objects() -> None:
    targets = ReviewPolicyTargets(**{**REVIEW_TARGETS.__dict__, "trail_arn": None, "trail_bucket": None})
    policy = review_function_policy(targets, ())
    assert not any("s3:GetObject" in s["Action"] for s in statements(policy))
    assert not any("cloudtrail:GetEventSelectors" in s["Action"] for s in statements(policy))

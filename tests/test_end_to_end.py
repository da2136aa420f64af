"""End to end on a local moto server: the synthesized stack, applied with Terraform, replays the dataset.

One apply per test session (``deployed`` fixture, shared with ``python -m demo`` through
``demo.stack_session.EmulatedStack``). The main checks run the enforce pass over every
labelled event; the negative controls prove the harness notices when a rule, an
environment variable, a permission or the topic's delivery is missing, by replaying a few
events against a copy of what was read back with one piece taken out.

Needs the terraform CLI and ``TF_PROVIDER_MIRROR`` (an offline mirror of hashicorp/aws);
without them the module is skipped, saying which is missing. Never touches real AWS.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from demo.real_account import WriteRefused, refuse_writes
from demo.replay import (
    ALL_ON,
    POSITIVE_VERDICTS,
    PassResult,
    load_cases,
    problems,
    run_pass,
    subscribe_capture,
    with_rule_removed,
)
from demo.role_scope import merged, role_policy_documents, without_action
from demo.stack_session import EmulatedStack
from handlers.response.remediation import NEEDS_CLOSING

CASES = load_cases()
# Marks for everything that deploys (the guards of --real-account at the end run everywhere).
needs_terraform = [
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform CLI not on PATH"),
    pytest.mark.skipif(
        not os.environ.get("TF_PROVIDER_MIRROR"),
        reason="TF_PROVIDER_MIRROR is unset: set it to a filesystem mirror of hashicorp/aws",
    ),
]


def deploys(test: Any) -> Any:
    for mark in needs_terraform:
        test = mark(test)
    return test


def _first(predicate: Any) -> Any:
    found = [case for case in CASES if predicate(case)]
    assert found, "the dataset no longer holds a case the negative controls need"
    return found[0]


def _bucket_public(route: str) -> Any:
    return _first(
        lambda c: (
            c.expect["verdict"] == "public"
            and c.expect.get("route") == route
            and c.expect.get("scope") == "bucket"
            and c.record.get("recipientAccountId") == "318473062105"
            and c.record.get("awsRegion") == "us-east-1"
        )
    )


@pytest.fixture(scope="session")
def deployed() -> Iterator[EmulatedStack]:
    with EmulatedStack(say=print) as stack:
        yield stack


@pytest.fixture(scope="session")
def enforce_pass(deployed: EmulatedStack) -> PassResult:
    assert deployed.deployment is not None
    return run_pass(deployed.server, deployed.deployment, CASES, "enforce", deployed.workdir)


@pytest.fixture(scope="session")
def control_cases() -> list[Any]:
    """A body-form and a header-form public bucket event (small, so each control is quick)."""
    return [_bucket_public("public-body"), _bucket_public("public-header")]


@deploys
def test_every_positive_event_is_routed_and_alerted(enforce_pass: PassResult) -> None:
    missing = [
        f"{row.case_id} (rules: {row.routes or 'none'}, alerts: {len(row.alerts)})"
        for row in enforce_pass.rows
        if row.label in POSITIVE_VERDICTS and not (row.routes and row.alerts)
    ]
    assert not missing, "positive events not routed or not alerted:\n" + "\n".join(missing)


@deploys
def test_every_verdict_matches_its_label(enforce_pass: PassResult) -> None:
    wrong = [f"{r.case_id}: {r.verdict} (label {r.label})" for r in enforce_pass.rows if r.verdict != r.label]
    assert not wrong, "\n".join(wrong)


@deploys
def test_enforce_closes_every_public_bucket(enforce_pass: PassResult) -> None:
    closable = [
        row
        for row in enforce_pass.rows
        if row.label in ("public", "weakening")
        and row.scope in ("bucket", "object")
        and row.in_account
        and row.exposure in NEEDS_CLOSING
        and not row.approved
    ]
    assert len(closable) >= 10, "the dataset should exercise remediation on many buckets"
    left_open = [f"{r.case_id}: {r.bpa_after} ({r.remediation})" for r in closable if r.bpa_after != ALL_ON]
    assert not left_open, "\n".join(left_open)


@deploys
def test_the_alert_answers_who_and_a_follow_up_answers_whether_data_was_read(
    enforce_pass: PassResult,
) -> None:
    """Newcomers (no seeded history) are first-time, the regulars seen before, Terraform CI trusted;
    every bucket the function closed gets a review: exact counts from its logs, or "cannot tell"."""
    by_actor = {(r.case_id, r.history, r.trusted) for r in enforce_pass.rows if r.alerts}
    assert {h for _, h, _ in by_actor} >= {"first-time", "seen-before"}
    assert any(trusted for _, _, trusted in by_actor)
    mallory = [
        r for r in enforce_pass.rows if r.alerts and "mallory" in json.dumps(r.alerts[0].get("finding"))
    ]
    assert mallory and all(r.history == "first-time" for r in mallory)
    reviewed = [r for r in enforce_pass.rows if r.review_expected]
    assert len([r for r in reviewed if r.review == "read"]) >= 10
    assert any(r.review == "no-evidence" for r in reviewed)  # a bucket in another region: no logs here
    for row in (r for r in reviewed if r.review == "read"):
        anonymous = row.review_report["anonymous"]
        assert (anonymous["requests"], anonymous["succeeded"], anonymous["distinctIps"]) == (4, 3, 3), (
            row.case_id
        )
        assert row.review_report["requests"]["internal"] == 2 and row.review_report["otherBuckets"] == 1


@deploys
def test_enforce_pass_has_no_problems(enforce_pass: PassResult) -> None:
    """Also: no call refused by the role, no handler error, no missing alert."""
    assert problems(enforce_pass) == []


@deploys
def test_dry_run_alerts_without_changing_anything(deployed: EmulatedStack, control_cases: list[Any]) -> None:
    assert deployed.deployment is not None
    result = run_pass(deployed.server, deployed.deployment, control_cases, "dry-run", deployed.workdir)
    assert problems(result) == []
    assert [row.remediation for row in result.rows] == ["would-apply"] * len(control_cases)
    assert all(row.bpa_after != ALL_ON for row in result.rows)


# ---- negative controls: the harness must report each failure mode --------------------------


@deploys
def test_control_missing_rule_is_reported(deployed: EmulatedStack, control_cases: list[Any]) -> None:
    assert deployed.deployment is not None
    rules = with_rule_removed(deployed.deployment.rules, "public-header")
    result = run_pass(
        deployed.server, deployed.deployment, control_cases, "enforce", deployed.workdir, rules=rules
    )
    header_case = control_cases[1].id
    assert any(header_case in p and "no deployed rule routes" in p for p in problems(result))
    assert result.rows[0].routes and result.rows[0].alerts  # the body-form event still goes through


@deploys
def test_control_missing_environment_variable_is_reported(
    deployed: EmulatedStack, control_cases: list[Any]
) -> None:
    assert deployed.deployment is not None
    variables = {**deployed.deployment.function.environment, "REMEDIATION_MODE": "enforce"}
    del variables["ALERT_TOPIC_ARN"]
    result = run_pass(
        deployed.server, deployed.deployment, control_cases, "enforce", deployed.workdir, variables=variables
    )
    found = problems(result)
    assert any("the function failed" in p and "ALERT_TOPIC_ARN" in p for p in found), found
    assert any("no alert arrived" in p for p in found)


@deploys
def test_control_missing_mode_variable_leaves_buckets_open(
    deployed: EmulatedStack, control_cases: list[Any]
) -> None:
    assert deployed.deployment is not None
    variables = dict(deployed.deployment.function.environment)
    del variables["REMEDIATION_MODE"]  # the code then falls back to alert-only
    result = run_pass(
        deployed.server, deployed.deployment, control_cases, "enforce", deployed.workdir, variables=variables
    )
    assert any("left with Block Public Access" in p for p in problems(result))


@deploys
@pytest.mark.parametrize(
    ("action", "symptom"),
    [("s3:GetBucketAcl", "refused s3:GetBucketAcl"), ("sns:Publish", "refused sns:Publish")],
)
def test_control_missing_permission_is_reported(
    deployed: EmulatedStack, control_cases: list[Any], action: str, symptom: str
) -> None:
    assert deployed.deployment is not None
    stack = deployed.deployment
    policy = without_action(merged(role_policy_documents(deployed.server, stack.function.role_arn)), action)
    result = run_pass(deployed.server, stack, control_cases, "enforce", deployed.workdir, policy=policy)
    found = problems(result)
    assert any(symptom in p for p in found), found


@deploys
def test_control_topic_not_delivering_is_reported(deployed: EmulatedStack, control_cases: list[Any]) -> None:
    assert deployed.deployment is not None
    stack = deployed.deployment
    sns = deployed.server.client("sns", stack.topic_arn.split(":")[3])
    sns.unsubscribe(SubscriptionArn=stack.capture_subscription_arn)
    try:
        result = run_pass(deployed.server, stack, control_cases, "enforce", deployed.workdir)
        found = problems(result)
        assert sum("no alert arrived" in p for p in found) == len(control_cases), found
    finally:
        queue_name = stack.capture_queue_url.rsplit("/", 1)[-1]
        stack.capture_queue_url, stack.capture_subscription_arn = subscribe_capture(
            deployed.server, stack.topic_arn, queue_name
        )


# ---- --real-account must never reach AWS from the test suite --------------------------------


def test_real_account_mode_refuses_to_run_under_pytest(capsys: pytest.CaptureFixture[str]) -> None:
    from demo.__main__ import main

    assert main(["--real-account"]) == 2
    assert "never runs under pytest" in capsys.readouterr().out


def test_read_only_guard_refuses_a_write_before_sending_it() -> None:
    import boto3

    client = refuse_writes(
        boto3.client("events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    )
    sent: list[Any] = []
    client.meta.events.register("before-send", lambda **kwargs: sent.append(kwargs))
    with pytest.raises(WriteRefused, match="events:PutRule"):
        client.put_rule(Name="demo", EventPattern="{}")
    assert sent == []

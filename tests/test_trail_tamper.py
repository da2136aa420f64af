"""Tampering with the detector's own trail, log bucket and keys: classified, routed and alerted.

Cases under ``dataset/trail_*`` may carry a top-level ``context`` (the detector's trail name,
bucket and key ARNs); they are classified with it, matched against the rules deployed for
it, and delivered to the real handler in moto with the same context in its environment.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest
from response_fixtures import world_for

from demo.dataset_loader import Case, load_cases
from demo.pattern_engine import compile_pattern, matches
from handlers.detection.classify import classify
from handlers.detection.event_patterns import (
    MAX_PATTERN_CHARS,
    RULES,
    RULES_BY_ROUTE,
    TRAIL_TAMPER,
    envelope,
    rules_for,
    trail_tamper_pattern,
)
from handlers.detection.records import account_id
from handlers.detection.rules import REGISTRY, RULES_BY_EVENT, bucket_policy, trail_bucket, trail_key
from handlers.detection.rules.detector_context import (
    NO_CONTEXT,
    DetectorContext,
    from_environment,
    from_mapping,
)
from handlers.offline.detect_cli import main as detect_main
from handlers.response import response_config

TRAIL_DIRS = ("trail_tamper", "trail_bucket", "trail_key")
CASES = [case for case in load_cases() if case.rule in TRAIL_DIRS]
FLAGGED = [case for case in CASES if case.verdict != "none"]


def case_context(case: Case) -> DetectorContext:
    """The detector context a case is labelled under (its optional top-level ``context``)."""
    return from_mapping(json.loads(case.path.read_text(encoding="utf-8")).get("context"))


CONTEXT_CASES = [case for case in CASES if case_context(case) != NO_CONTEXT]


def ids(cases: list[Case]) -> list[str]:
    return [case.id for case in cases]


# ---- classification ----


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_verdict_matches_label_under_the_cases_context(case: Case) -> None:
    findings = classify(copy.deepcopy(case.record), case_context(case))
    if case.verdict == "none":
        assert findings == [], case.description
        return
    (finding,) = findings
    for field in ("verdict", "kind", "route", "scope", "variant"):
        assert finding[field] == case.expect[field], f"{field}: {case.description}"
    assert finding["severity"] == ("low" if case.verdict == "attempt" else "high")
    assert finding["eventID"] == case.record["eventID"]
    assert finding["actor"] == case.record["userIdentity"]["arn"]
    assert finding["region"] == case.record["awsRegion"]
    if finding["scope"] == "bucket":
        assert finding["bucket"] == case_context(case).trail_bucket
    else:
        assert finding["bucket"] is None


@pytest.mark.parametrize("case", CONTEXT_CASES, ids=ids(CONTEXT_CASES))
def test_context_dependent_cases_are_silent_without_the_context(case: Case) -> None:
    # The same record, classified with no context: only any-trail tampering may still show.
    findings = classify(copy.deepcopy(case.record))
    if case.rule in ("trail_bucket", "trail_key"):
        assert findings == []
    for finding in findings:
        assert "the detector's own trail" not in " ".join(finding["reasons"])


def test_the_detectors_trail_is_named_in_the_reasons() -> None:
    (case,) = [c for c in CASES if c.id == "trail_tamper/stop-logging-detector-trail"]
    (finding,) = classify(copy.deepcopy(case.record), case_context(case))
    assert finding["reasons"][-1].endswith("is the detector's own trail")
    other = DetectorContext(trail_name="some-other-trail")
    (plain,) = classify(copy.deepcopy(case.record), other)
    assert not any("detector's own trail" in reason for reason in plain["reasons"])


def test_reasons_say_what_breaks() -> None:
    by_id = {case.id: case for case in CASES}

    def reasons(case_id: str) -> str:
        case = by_id[case_id]
        return " ".join(classify(copy.deepcopy(case.record), case_context(case))[0]["reasons"])

    assert "no longer lets CloudTrail write" in reasons("trail_bucket/put-policy-dropping-cloudtrail-console")
    assert "no longer lets CloudTrail" not in reasons("trail_bucket/put-policy-keeping-cloudtrail-terraform")
    assert "shortest expiry now 1 days" in reasons(
        "trail_bucket/lifecycle-one-day-expiry-on-detector-trail-bucket"
    )
    assert "no longer lets CloudTrail encrypt" in reasons("trail_key/put-key-policy-dropping-cloudtrail")
    assert "in 7 days" in reasons("trail_key/schedule-deletion-of-trail-key")
    assert "detector's own key" in reasons("trail_key/disable-detector-key")
    assert "attacker-controlled-logs" in reasons("trail_tamper/update-detector-trail-to-another-bucket")


def test_old_records_listing_the_key_without_a_type_are_read() -> None:
    # Event version 1.02 (the KMS guide's DisableKey sample) has resources without "type".
    (case,) = [c for c in CASES if c.id == "trail_key/disable-detector-key"]
    record = copy.deepcopy(case.record)
    record["eventVersion"] = "1.02"
    record["requestParameters"] = {}
    record["resources"] = [{"ARN": case_context(case).detector_key_arn, "accountId": "111122223333"}]
    assert [f["verdict"] for f in classify(record, case_context(case))] == ["tamper"]
    record["resources"] = [{"ARN": "arn:aws:s3:::not-a-key", "accountId": "111122223333"}]
    assert classify(record, case_context(case)) == []


def public_policy_on_trail_bucket() -> tuple[dict, DetectorContext]:
    (case,) = [c for c in CASES if c.id == "trail_bucket/put-policy-dropping-cloudtrail-console"]
    record = copy.deepcopy(case.record)
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::x/*",
    }
    record["requestParameters"]["bucketPolicy"]["Statement"].append(statement)
    return record, case_context(case)


def test_a_public_policy_on_the_trail_bucket_is_both_public_and_tamper() -> None:
    record, context = public_policy_on_trail_bucket()
    assert RULES_BY_EVENT[("s3.amazonaws.com", "PutBucketPolicy")] == (bucket_policy, trail_bucket)
    findings = classify(record, context)
    assert [(f["verdict"], f["route"]) for f in findings] == [
        ("public", "public-body"),
        ("tamper", "trail-tamper"),
    ]
    assert {f["bucket"] for f in findings} == {context.trail_bucket}
    routed = [rule.route for rule in rules_for(context) if matches(rule.pattern_json(), envelope(record))]
    assert {"public-body", "trail-tamper"} <= set(routed)
    # REGISTRY keeps one callable per event, running every rule for it.
    assert REGISTRY[("s3.amazonaws.com", "PutBucketPolicy")](record, context) == findings


def test_one_rule_failing_does_not_hide_the_other_rules_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    record, context = public_policy_on_trail_bucket()

    def broken(_record: dict, _context: DetectorContext) -> list:
        raise KeyError("surprise")

    monkeypatch.setattr(trail_bucket, "classify", broken)
    findings = classify(record, context)
    assert [(f["verdict"], f["route"]) for f in findings] == [
        ("public", "public-body"),
        ("undetermined", "trail-tamper"),
    ]
    assert "KeyError" in findings[1]["reasons"][0]


# ---- the context itself ----


def test_context_matches_trails_and_keys_by_name_id_or_arn() -> None:
    arn = "arn:aws:kms:eu-west-1:111122223333:key/6f0c2b1e-4d7a-4c1b-9e3f-2a8d5c7b9e10"
    context = DetectorContext(trail_name="prod-trail", trail_key_arn=arn)
    assert context.is_trail("prod-trail")
    assert context.is_trail("arn:aws:cloudtrail:eu-west-1:111122223333:trail/prod-trail")
    assert not context.is_trail("prod-trail-2") and not context.is_trail(None)
    assert context.is_trail_key(["6f0c2b1e-4d7a-4c1b-9e3f-2a8d5c7b9e10"]) and context.is_trail_key([arn])
    assert not context.is_trail_key(["6f0c2b1e"]) and not NO_CONTEXT.is_trail_key([arn])
    assert context.key_roles([arn]) == ["the key encrypting the detector's trail logs"]
    both = DetectorContext(trail_key_arn=arn, detector_key_arn=arn)
    assert len(both.key_roles([arn])) == 2 and both.key_arns == (arn,)


def test_context_round_trips_through_the_environment() -> None:
    context = DetectorContext("t", "b", "arn:aws:kms:us-east-1:111122223333:key/k1", None)
    env = context.to_environment()
    assert env == {
        "TRAIL_NAME": "t",
        "TRAIL_BUCKET": "b",
        "TRAIL_KMS_KEY_ARN": "arn:aws:kms:us-east-1:111122223333:key/k1",
        "DETECTOR_KMS_KEY_ARN": "",
        "APPROVAL_TAG": "public-access-approved-until",  # never unset: the default
    }
    assert from_environment(env) == context
    assert from_environment({}) == NO_CONTEXT
    with pytest.raises(ValueError, match="unknown context keys"):
        from_mapping({"trailBuckett": "x"})


def test_settings_read_the_context_and_reject_a_key_that_is_not_an_arn() -> None:
    base = {
        "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:111122223333:alerts",
        "EXPECTED_ACCOUNT_ID": "111122223333",
        "IDEMPOTENCY_TABLE": "seen-events",
    }
    assert response_config.load_settings(base).detector == NO_CONTEXT
    settings = response_config.load_settings({**base, "TRAIL_BUCKET": "logs", "TRAIL_NAME": "t"})
    assert settings.detector == DetectorContext(trail_name="t", trail_bucket="logs")
    with pytest.raises(response_config.ConfigError, match="TRAIL_KMS_KEY_ARN: expected a KMS key ARN"):
        response_config.load_settings({**base, "TRAIL_KMS_KEY_ARN": "alias/detector"})


# ---- routing ----

LONGEST = DetectorContext(
    trail_name="a" * 128,
    trail_bucket="b" * 63,
    trail_key_arn="arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-" + "f" * 32,
    detector_key_arn="arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/" + "e" * 8 + "-" + "e" * 27,
)


def test_without_a_context_the_tamper_rule_is_the_static_one() -> None:
    assert trail_tamper_pattern(NO_CONTEXT) is TRAIL_TAMPER
    assert rules_for(NO_CONTEXT) == RULES


def test_the_per_account_pattern_is_valid_and_within_the_size_limit() -> None:
    rule = {r.route: r for r in rules_for(LONGEST)}["trail-tamper"]
    compile_pattern(rule.pattern_json())
    assert len(rule.pattern_json()) <= MAX_PATTERN_CHARS
    assert rule.pattern != RULES_BY_ROUTE["trail-tamper"].pattern
    # Only the tamper rule depends on the account.
    assert [r for r in rules_for(LONGEST) if r.route != "trail-tamper"] == [
        r for r in RULES if r.route != "trail-tamper"
    ]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_kms_and_bucket_calls_route_only_for_the_detectors_resources(case: Case) -> None:
    context = case_context(case)
    tamper = {r.route: r for r in rules_for(context)}["trail-tamper"]
    routed = matches(tamper.pattern_json(), envelope(case.record))
    if case.verdict != "none":
        assert routed, case.description
    elif case.rule in ("trail_bucket", "trail_key"):
        # Calls on other buckets and keys never wake the function through this rule.
        assert not routed, case.description


def test_event_names_in_the_pattern_are_the_rules_event_names() -> None:
    detail = trail_tamper_pattern(LONGEST)["detail"]["$or"]
    names = {name for alternative in detail for name in alternative["eventName"]}
    assert names == {*TRAIL_TAMPER["detail"]["eventName"], *trail_bucket.EVENT_NAMES, *trail_key.EVENT_NAMES}


# ---- through the handler ----


@pytest.mark.parametrize("case", FLAGGED, ids=ids(FLAGGED))
def test_each_tamper_event_is_alerted_by_the_handler(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    record = copy.deepcopy(case.record)
    context = case_context(case)
    with world_for(monkeypatch, account_id(record) or "111122223333", record["awsRegion"]) as world:
        world.configure(REMEDIATION_MODE="enforce", **context.to_environment())
        world.calls.clear()
        summary = world.invoke(record)
        (alert,) = world.alerts()
    assert summary["outcome"] == "handled"
    payload = alert.payload
    if case.verdict == "tamper":
        assert payload["severity"] == "high" and alert.subject.startswith("[HIGH] CloudTrail tampering")
    else:
        assert payload["severity"] == "low"
        assert alert.subject.startswith("[LOW] Failed attempt to tamper with CloudTrail"), alert.subject
    assert alert.attributes["verdict"] == case.verdict
    assert payload["remediation"]["status"] in ("skipped", "not-needed")
    assert payload["exposure"]["status"] == "not-checked"
    assert world.handler_calls("s3") == [] and world.handler_calls("s3control") == []
    assert record["awsRegion"] in alert.text  # the alert names the region where it happened
    for reason in payload["finding"]["reasons"]:
        assert reason in alert.text


@pytest.mark.parametrize(
    "case_id",
    ["trail_bucket/delete-policy-of-detector-trail-bucket", "trail_key/schedule-deletion-of-trail-key"],
)
def test_without_the_context_in_its_environment_the_handler_ignores_them(
    case_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (case,) = [c for c in CASES if c.id == case_id]
    record = copy.deepcopy(case.record)
    with world_for(monkeypatch, account_id(record) or "111122223333", record["awsRegion"]) as world:
        summary = world.invoke(record)
        assert summary["outcome"] == "ignored" and world.alerts() == []


def test_public_policy_on_the_trail_bucket_gives_two_alerts(monkeypatch: pytest.MonkeyPatch) -> None:
    record, context = public_policy_on_trail_bucket()
    with world_for(monkeypatch, "111122223333", record["awsRegion"]) as world:
        world.replay(record)
        world.answer("s3", "GetBucketPolicyStatus", lambda _p: {"PolicyStatus": {"IsPublic": True}})
        world.configure(**context.to_environment())
        summary = world.invoke(record)
        alerts = world.alerts()
    assert [f["verdict"] for f in summary["findings"]] == ["public", "tamper"]
    assert sorted(a.attributes["verdict"] for a in alerts) == ["public", "tamper"]
    assert all(a.attributes["bucket"] == context.trail_bucket for a in alerts)


# ---- detect ----


def test_detect_reports_tampering_only_when_told_the_detectors_resources(tmp_path: Path) -> None:
    records = [c.record for c in CASES if c.rule in ("trail_bucket", "trail_key")]
    path = tmp_path / "trail.json"
    path.write_text(json.dumps({"Records": records}))
    values = case_context(next(c for c in CONTEXT_CASES if c.rule == "trail_bucket"))

    def run(*options: str) -> list[dict]:
        out, err = io.StringIO(), io.StringIO()
        assert detect_main([str(path), "--jobs", "1", *options], out, err) == 0, err.getvalue()
        return [json.loads(line) for line in out.getvalue().splitlines()]

    assert run() == []
    found = run(
        *("--trail-name", values.trail_name or ""),
        *("--trail-bucket", values.trail_bucket or ""),
        *("--trail-key", values.trail_key_arn or ""),
        *("--detector-key", values.detector_key_arn or ""),
    )
    want = [f["eventID"] for record in records for f in classify(copy.deepcopy(record), values)]
    assert [f["eventID"] for f in found] == want
    assert {f["verdict"] for f in found} == {"tamper", "attempt"} and len(found) >= 8

"""The classifier against every labelled case in ``dataset/`` (a failure names the case)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from demo.dataset_loader import (
    NEGATIVE_VERDICTS,
    POSITIVE_VERDICTS,
    Case,
    DatasetError,
    load_cases,
    load_cases_from,
)
from handlers.detection.classify import classify
from handlers.detection.rules import REGISTRY, RULE_MODULES

CASES = load_cases()
FINDING_KINDS = {"public", "weakening", "attempt", "undetermined", "tamper", "approval"}
WRITE_ACCESS = {"write", "acl-write", "policy-write", "all"}


def envelope(record: dict) -> dict:
    """The record as EventBridge delivers it."""
    return {
        "version": "0",
        "id": "6f1e0c52-7f0b-4c3e-9a47-3c1d2b6a8e90",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.s3",
        "account": record.get("recipientAccountId"),
        "time": record.get("eventTime"),
        "region": record.get("awsRegion"),
        "resources": [],
        "detail": record,
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_verdict_matches_label(case: Case) -> None:
    findings = classify(copy.deepcopy(case.record), case.detector)
    expect = case.expect
    if expect["verdict"] == "none":
        assert findings == [], f"{case.id}: expected no finding ({case.description})"
        return
    assert len(findings) == 1, f"{case.id}: expected exactly one finding, got {findings}"
    finding = findings[0]
    assert finding["verdict"] == expect["verdict"], case.description
    assert finding["kind"] == expect["kind"]
    for field in ("variant", "route", "scope"):
        if field in expect:
            assert finding[field] == expect[field], f"{field} of {case.id}"
    if "access" in expect:
        assert sorted(finding["access"]) == sorted(expect["access"])


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.verdict != "none"], ids=[c.id for c in CASES if c.verdict != "none"]
)
def test_finding_fields_copied_from_record(case: Case) -> None:
    record = case.record
    (finding,) = classify(copy.deepcopy(record), case.detector)
    assert finding["eventID"] == record["eventID"]
    assert finding["eventName"] == record["eventName"]
    assert finding["eventTime"] == record["eventTime"]
    assert finding["region"] == record["awsRegion"]
    assert finding["account"] == record["recipientAccountId"]
    assert finding["sourceIPAddress"] == record["sourceIPAddress"]
    assert finding["userAgent"] == record["userAgent"]
    assert finding["actor"] == record["userIdentity"]["arn"]
    assert finding["public"] is (finding["verdict"] == "public")
    assert finding["reasons"] and all(isinstance(r, str) and r for r in finding["reasons"])
    params = record.get("requestParameters") or {}
    buckets = [
        r["ARN"].split(":::", 1)[1] for r in record.get("resources", []) if r["type"] == "AWS::S3::Bucket"
    ]
    if finding["scope"] in ("bucket", "object"):
        expected = case.expect.get("bucket") or params.get("bucketName") or buckets[0]
        assert finding["bucket"] == expected
    else:
        assert finding["bucket"] is None
    if finding["scope"] == "object":
        assert finding["key"] == params["key"]
    if record.get("errorCode"):
        assert finding["error"] == record["errorCode"]
        assert finding["errorMessage"] == record["errorMessage"]
    else:
        assert finding["error"] is None


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.verdict != "none"], ids=[c.id for c in CASES if c.verdict != "none"]
)
def test_severity_follows_verdict(case: Case) -> None:
    (finding,) = classify(copy.deepcopy(case.record), case.detector)
    severity = finding["severity"]
    if finding["verdict"] in ("attempt", "approval"):
        assert severity == "low"
    elif finding["verdict"] == "public":
        assert severity == ("critical" if WRITE_ACCESS & set(finding["access"]) else "high")
    elif finding["verdict"] == "weakening":
        assert severity == ("high" if finding["scope"] == "account" else "medium")
    else:
        assert severity in ("medium", "high")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_eventbridge_envelope_gives_the_same_result(case: Case) -> None:
    assert classify(envelope(copy.deepcopy(case.record)), case.detector) == classify(
        copy.deepcopy(case.record), case.detector
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_classify_does_not_mutate_the_record(case: Case) -> None:
    record = copy.deepcopy(case.record)
    classify(record, case.detector)
    assert record == case.record


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case_sits_under_the_rule_that_reads_it(case: Case) -> None:
    key = (case.record["eventSource"], case.record["eventName"])
    if case.rule == "routine":
        assert key not in REGISTRY, f"{case.id} is read by a rule; move it under that rule's directory"
        return
    modules = {module.__name__.rsplit(".", 1)[-1]: module for module in RULE_MODULES}
    assert case.rule in modules, f"dataset/{case.rule}/ does not name a rule module"
    module = modules[case.rule]
    assert case.record["eventSource"] == module.EVENT_SOURCE
    # A rule's directory may hold a nearby call it deliberately ignores (e.g. StartLogging).
    assert case.record["eventName"] in module.EVENT_NAMES or case.verdict == "none"


def test_every_watched_event_has_a_positive_and_a_negative_case() -> None:
    positives = {
        (c.record["eventSource"], c.record["eventName"]) for c in CASES if c.verdict in POSITIVE_VERDICTS
    }
    negatives = {
        (c.record["eventSource"], c.record["eventName"]) for c in CASES if c.verdict in NEGATIVE_VERDICTS
    }
    missing_pos = sorted(set(REGISTRY) - positives)
    missing_neg = sorted(set(REGISTRY) - negatives)
    assert not missing_pos, f"watched events without a positive case: {missing_pos}"
    assert not missing_neg, f"watched events without a negative (none/attempt) case: {missing_neg}"


def test_every_rule_module_has_a_dataset_directory() -> None:
    rules_with_cases = {c.rule for c in CASES}
    for module in RULE_MODULES:
        assert module.__name__.rsplit(".", 1)[-1] in rules_with_cases


def test_event_versions_and_clients_are_both_represented() -> None:
    versions = {c.record["eventVersion"] for c in CASES}
    assert "1.05" in versions and {"1.08", "1.09"} <= versions
    agents = " ".join(c.record["userAgent"] for c in CASES)
    for marker in ("S3Console", "signin.amazonaws.com", "aws-cli/", "Terraform/", "Boto3/"):
        assert marker in agents


def write_case(root: Path, name: str, doc: object) -> None:
    path = root / "bucket_policy" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))


GOOD = {
    "description": "d",
    "provenance": "p",
    "expect": {"verdict": "none"},
    "record": {
        "eventVersion": "1.09",
        "eventTime": "2024-01-01T00:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketPolicy",
        "awsRegion": "us-east-1",
        "eventID": "0b1c6c0e-5a6d-4f1e-9a0f-2f3b4c5d6e7f",
    },
}


def test_loader_reads_a_well_formed_case(tmp_path: Path) -> None:
    write_case(tmp_path, "ok.json", GOOD)
    (case,) = load_cases_from(tmp_path)
    assert case.id == "bucket_policy/ok"
    assert case.verdict == "none"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(expect={"verdict": "exposed"}), "expect.verdict"),
        (lambda d: d.update(expect={"verdict": "public"}), "expect.kind"),
        (lambda d: d.update(expect={"verdict": "none", "kind": "acl"}), "only the verdict"),
        (lambda d: d.update(expect={"verdict": "public", "kind": "acl", "route": "gui"}), "expect.route"),
        (lambda d: d.update(expect={"verdict": "public", "kind": "acl", "acess": []}), "unknown keys"),
        (lambda d: d["record"].pop("eventID"), "record.eventID"),
        (lambda d: d.pop("description"), "'description'"),
    ],
)
def test_loader_names_the_file_and_field_of_a_bad_case(tmp_path: Path, mutate, message: str) -> None:
    doc = copy.deepcopy(GOOD)
    mutate(doc)
    write_case(tmp_path, "bad.json", doc)
    with pytest.raises(DatasetError, match=message) as info:
        load_cases_from(tmp_path)
    assert "bad.json" in str(info.value)


def test_loader_rejects_broken_json_and_duplicate_event_ids(tmp_path: Path) -> None:
    write_case(tmp_path, "broken.json", '{"description": ')
    with pytest.raises(DatasetError, match=r"broken\.json: not readable JSON"):
        load_cases_from(tmp_path)
    (tmp_path / "bucket_policy" / "broken.json").unlink()
    write_case(tmp_path, "a.json", GOOD)
    write_case(tmp_path, "b.json", GOOD)
    with pytest.raises(DatasetError, match="already used by bucket_policy/a"):
        load_cases_from(tmp_path)

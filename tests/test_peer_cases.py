"""Other detection projects' own CloudTrail test events (``../shared/corpora/peer-cases``).

77 records from Panther, StreamAlert, Stratus Red Team, Cloud Custodian, Elastic and the AWS
docs, each labelled by AWS's meaning of public (the corpus README): ``public``, ``weaken``,
``tamper`` or ``benign``. They carry shapes our own dataset lacks: keys rewritten by log
pipelines (``AccessControlList.x_amz_grant_read``, ``xsi_type``), ``eventId``, a list
``userAgent``, event versions 1.03/1.04/1.11, EventBridge envelopes. Detection over them must
miss no public, weakening or tamper case and call no benign case public.

The corpus is third-party data: it is read in place, never copied into the project.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from handlers.detection.classify import classify, unwrap
from handlers.detection.finding import Finding
from handlers.offline.detect_cli import main as detect_main

CORPUS = Path(__file__).resolve().parents[1].parent / "shared/corpora/peer-cases"
CASES_FILE = CORPUS / "cases.jsonl"


def load_cases() -> list[dict[str, Any]]:
    if not CASES_FILE.is_file():
        return []
    return [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


CASES = load_cases()
needs_corpus = pytest.mark.skipif(not CASES, reason=f"peer-cases corpus not found at {CASES_FILE}")

# Their label -> the verdict of ours that detects it.
DETECTED_BY = {"public": "public", "weaken": "weakening", "tamper": "tamper"}
# What a benign case must never produce (an ``attempt`` for a failed call, or ``undetermined``
# for a record that does not say enough, is right).
FALSE_ALARMS = frozenset({"public", "weakening", "tamper"})

# Cases that fail only because an exposure path is still missing (issue 13 part 1):
# case id -> the path. Empty today: every public case in the corpus uses a path we have.
NEEDS_PATH: dict[str, str] = {}


def case_params() -> list[Any]:
    params = []
    for case in CASES:
        marks = []
        if case["id"] in NEEDS_PATH:
            marks.append(
                pytest.mark.xfail(
                    strict=True, reason=f"needs path {NEEDS_PATH[case['id']]} (issue 13 part 1)"
                )
            )
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


def label_problem(label: str, findings: Iterable[Finding], record: dict[str, Any]) -> str | None:
    """Why ``findings`` do not match the case's ``label``; ``None`` when they do."""
    verdicts = sorted({f["verdict"] for f in findings})
    if label in DETECTED_BY:
        if DETECTED_BY[label] not in verdicts:
            return f"{label} case missed: verdicts {verdicts}"
        return None
    if label != "benign":
        return f"unknown label {label!r}"
    false = FALSE_ALARMS.intersection(verdicts)
    if false:
        return f"benign case raised {sorted(false)}"
    if "attempt" in verdicts and not record.get("errorCode"):
        return "attempt finding for a call that did not fail"
    return None


def inner_record(case: dict[str, Any]) -> dict[str, Any]:
    record = unwrap(case["record"])
    assert isinstance(record, dict), case["id"]
    return record


@needs_corpus
def test_the_corpus_is_what_the_readme_describes() -> None:
    labels = [case["label"] for case in CASES]
    assert len(CASES) == 77
    assert {label: labels.count(label) for label in set(labels)} == {
        "public": 13,
        "weaken": 5,
        "tamper": 11,
        "benign": 48,
    }
    ids = [inner_record(case).get("eventID") for case in CASES]
    assert len(set(ids)) == len(ids), "eventIDs are unique (the CLI test matches findings by them)"


@needs_corpus
@pytest.mark.parametrize("case", case_params())
def test_detection_matches_the_label(case: dict[str, Any]) -> None:
    findings = classify(case["record"])
    problem = label_problem(case["label"], findings, inner_record(case))
    assert problem is None, f"{case['id']}: {problem} ({case['note']})"


@needs_corpus
def test_pipeline_rewritten_grant_headers_are_read() -> None:
    """StreamAlert's sanitised ``AccessControlList.x_amz_grant_read`` is the grant header it was."""
    rewritten = [c for c in CASES if "x_amz_grant_read" in json.dumps(c["record"])]
    assert rewritten, "the corpus holds sanitised grant headers"
    for case in rewritten:
        (finding,) = [f for f in classify(case["record"]) if f["verdict"] == "public"]
        assert finding["principals"] == ["AllUsers"] and finding["variant"] == "header", case["id"]


@needs_corpus
def test_findings_keep_cloudtrails_event_id_and_a_text_user_agent() -> None:
    for case in CASES:
        record = inner_record(case)
        for finding in classify(case["record"]):
            assert finding["eventID"] == record["eventID"], case["id"]  # never the placeholder eventId
            assert finding["userAgent"] is None or isinstance(finding["userAgent"], str), case["id"]


@needs_corpus
def test_the_offline_detect_command_over_the_cases(tmp_path: Path) -> None:
    """``detect`` over the cases, as a CloudTrail file and as JSON lines with the envelopes:
    the same findings as :func:`classify`, and the labels hold over its output."""
    trail_file = tmp_path / "peer-cloudtrail.json"
    # Compact, as CloudTrail writes it: detect's record-level prefilter then picks what to parse.
    records = [inner_record(c) for c in CASES]
    trail_file.write_text(json.dumps({"Records": records}, separators=(",", ":")), encoding="utf-8")
    lines_file = tmp_path / "peer-records.jsonl"
    lines_file.write_text("".join(json.dumps(c["record"]) + "\n" for c in CASES), encoding="utf-8")
    expected = [f["eventID"] for case in CASES for f in classify(case["record"])]
    by_id = {inner_record(c)["eventID"]: c for c in CASES}

    for path in (trail_file, lines_file):
        out, err = io.StringIO(), io.StringIO()
        assert detect_main([str(path), "--jobs", "1"], out, err) == 0, err.getvalue()
        found: list[Finding] = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [f["eventID"] for f in found] == expected, path.name
        for event_id, case in by_id.items():
            if case["id"] in NEEDS_PATH:
                continue
            mine = [f for f in found if f["eventID"] == event_id]
            problem = label_problem(case["label"], mine, inner_record(case))
            assert problem is None, f"{path.name}: {case['id']}: {problem}"


def test_a_failed_update_trail_is_an_attempt() -> None:
    """Like a failed StopLogging: whatever it meant to change, the try is reported (low)."""
    record = {
        "eventVersion": "1.04",
        "eventID": "b7d4398e-0000-4faa-9c76-000000000001",
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "UpdateTrail",
        "requestParameters": {"name": "myTrail2"},
        "errorCode": "TrailNotFoundException",
        "errorMessage": "Unknown trail",
    }
    (finding,) = classify(record)
    assert (finding["verdict"], finding["severity"], finding["kind"]) == ("attempt", "low", "trail")
    assert classify({**record, "errorCode": None}) == []  # succeeded, narrowed nothing
    assert classify({**record, "errorCode": {"not": "text"}}) == []  # no error text: not an attempt

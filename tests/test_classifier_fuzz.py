"""Property tests: damaged, real-shaped records never crash the classifier or lose an exposure."""

from __future__ import annotations

import copy
import json
import os
from typing import Any, get_args

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demo.dataset_loader import load_cases
from handlers.detection.classify import classify
from handlers.detection.finding import SEVERITY_ORDER, Finding, Route, Verdict
from handlers.detection.records import as_text
from handlers.detection.rules import REGISTRY

CASES = load_cases()
WATCHED = [c for c in CASES if c.rule != "routine"]
# Modest by default so the suite stays fast; FUZZ_EXAMPLES=5000 for a deeper hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

VERDICTS = set(get_args(Verdict))
ROUTES = set(get_args(Route))
OPTIONAL_TEXT = ("eventID", "eventTime", "account", "region", "bucket", "key", "accessPoint", "actor")
OPTIONAL_TEXT += ("sourceIPAddress", "userAgent", "error", "errorMessage")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
NON_ASCII = st.sampled_from(["ü", "€", "漢字", "😀", "\u202e", "\x00", "\ufeff", "İ", "ß"])
OPERATIONS = ("drop", "null", "random", "non-ascii", "truncate", "listify", "unlistify", "retype")


def locations(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) pair in a JSON document, depth first."""
    found: list[tuple[Any, Any]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        found.append((node, key))
        found.extend(locations(child))
    return found


def retyped(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return 0


def mutate(data: st.DataObject, record: dict) -> None:
    """Apply one random damage to ``record`` in place."""
    spots = locations(record)
    if not spots:
        return
    container, key = data.draw(st.sampled_from(spots), label="location")
    value = container[key]
    operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
    if operation == "drop":
        del container[key]
    elif operation == "null":
        container[key] = None
    elif operation == "random":
        container[key] = data.draw(json_values, label="random value")
    elif operation == "non-ascii":
        text = value if isinstance(value, str) else json.dumps(value)
        at = data.draw(st.integers(0, len(text)), label="at")
        container[key] = text[:at] + data.draw(NON_ASCII) + text[at:]
    elif operation == "truncate":
        if isinstance(value, (str, list)):
            container[key] = value[: data.draw(st.integers(0, max(len(value) - 1, 0)), label="cut")]
        elif isinstance(value, dict):
            container[key] = dict(list(value.items())[: len(value) // 2])
    elif operation == "listify":
        container[key] = [value]
    elif operation == "unlistify":
        container[key] = value[0] if isinstance(value, list) and value else None
    else:
        container[key] = retyped(value)


def assert_well_formed(findings: Any) -> None:
    assert isinstance(findings, list)
    for finding in findings:
        assert isinstance(finding, dict)
        assert set(finding) == set(Finding.__annotations__)
        for field in OPTIONAL_TEXT:
            assert finding[field] is None or isinstance(finding[field], str), field
        assert isinstance(finding["eventName"], str)
        assert finding["verdict"] in VERDICTS
        assert finding["route"] in ROUTES
        assert finding["severity"] in SEVERITY_ORDER
        assert finding["public"] is (finding["verdict"] == "public")
        for field in ("kind", "scope", "variant", "client"):
            assert isinstance(finding[field], str) and finding[field]
        for field in ("access", "principals"):
            assert isinstance(finding[field], list) and all(isinstance(v, str) for v in finding[field])
        assert finding["reasons"] and all(isinstance(r, str) and r for r in finding["reasons"])
        json.dumps(finding)  # one JSON line per finding must always be possible


@FUZZ
@given(data=st.data(), case=st.sampled_from(WATCHED), rounds=st.integers(1, 4))
def test_damaged_records_never_crash_a_rule(data: st.DataObject, case, rounds: int) -> None:
    record = copy.deepcopy(case.record)
    for _ in range(rounds):
        mutate(data, record)
    findings = classify(record)
    assert_well_formed(findings)
    # The rule itself must cope: classify's catch-all is a backstop, not the mechanism.
    rule = REGISTRY.get((as_text(record.get("eventSource")) or "", as_text(record.get("eventName")) or ""))
    if rule is not None:
        assert_well_formed(rule(copy.deepcopy(record)))


@FUZZ
@given(data=st.data(), case=st.sampled_from(CASES))
def test_damaged_eventbridge_envelopes_never_crash(data: st.DataObject, case) -> None:
    event = {"version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.s3"}
    event["detail"] = copy.deepcopy(case.record)
    mutate(data, event)
    assert_well_formed(classify(event))


@FUZZ
@given(value=json_values)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    assert_well_formed(classify(value))
    assert_well_formed(classify({"detail-type": "AWS API Call via CloudTrail", "detail": value}))


POLICY_CASES = [
    c
    for c in CASES
    if c.rule in ("bucket_policy", "access_point_policy")
    and c.verdict in ("public", "none")
    and not c.record.get("errorCode")
    and c.record.get("requestParameters")
]


def set_policy(record: dict, text: str) -> None:
    params = record["requestParameters"]
    if "PutAccessPointPolicyRequest" in params:
        params["PutAccessPointPolicyRequest"]["Policy"] = text
    else:
        params["bucketPolicy"] = text


def policy_text(record: dict) -> str:
    params = record["requestParameters"]
    document = params.get("PutAccessPointPolicyRequest", {}).get("Policy", params.get("bucketPolicy"))
    return document if isinstance(document, str) else json.dumps(document)


@FUZZ
@given(case=st.sampled_from(POLICY_CASES), data=st.data())
def test_a_truncated_policy_is_undetermined_never_silent(case, data: st.DataObject) -> None:
    record = copy.deepcopy(case.record)
    text = policy_text(record)
    set_policy(record, text[: data.draw(st.integers(1, len(text) - 1), label="cut")])
    findings = classify(record)
    assert [f["verdict"] for f in findings] == ["undetermined"]
    assert "cannot decide" in findings[0]["reasons"][0]


@FUZZ
@given(case=st.sampled_from(WATCHED), text=st.text(min_size=1, max_size=8).map(lambda t: "é" + t))
def test_non_ascii_in_descriptive_fields_keeps_the_verdict(case, text: str) -> None:
    record = copy.deepcopy(case.record)
    expected = [(f["verdict"], f["kind"], f["route"]) for f in classify(record)]
    record["userAgent"] = text + record["userAgent"]
    record["sourceIPAddress"] = text
    record["userIdentity"]["arn"] = record["userIdentity"].get("arn", "") + text
    findings = classify(record)
    assert [(f["verdict"], f["kind"], f["route"]) for f in findings] == expected
    assert all(f["userAgent"].startswith(text) for f in findings)

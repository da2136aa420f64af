"""Routing invariant: every record the detector must see matches the deployed rule for its route.

The patterns come from ``handlers/detection/event_patterns.py`` (what the stack deploys); matching
uses LocalStack's EventBridge engine (``demo/pattern_engine.py``) on each dataset record
wrapped in the EventBridge envelope CloudTrail produces. A case with a ``context`` (the
detector's own trail, bucket and keys) is matched against the rules deployed for that
context (:func:`handlers.detection.event_patterns.rules_for`) and classified with it.
"""

from __future__ import annotations

import copy
import json

import pytest

from demo.dataset_loader import Case, load_cases
from demo.pattern_engine import InvalidEventPatternException, compile_pattern, matches
from handlers.detection.classify import classify
from handlers.detection.event_patterns import MAX_PATTERN_CHARS, RULES, RULES_BY_ROUTE, envelope, rules_for
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext, from_mapping


def case_context(case: Case) -> DetectorContext:
    """The detector context a case is labelled under (its optional top-level ``context``)."""
    return from_mapping(json.loads(case.path.read_text(encoding="utf-8")).get("context"))


ROUTED_VERDICTS = {"public", "weakening", "attempt", "undetermined", "tamper", "approval"}
CASES = load_cases()
MUST_ROUTE = [case for case in CASES if case.verdict in ROUTED_VERDICTS]
NEGATIVES = [case for case in CASES if case.verdict == "none"]


def routes_matching(record: dict, context: DetectorContext = NO_CONTEXT) -> list[str]:
    """The routes whose rule (as deployed for ``context``) matches ``record`` wrapped as an event."""
    event = envelope(record)
    return [rule.route for rule in rules_for(context) if matches(rule.pattern_json(), event)]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.route)
def test_pattern_is_valid_and_within_the_size_limit(rule):
    compile_pattern(rule.pattern_json())
    assert len(rule.pattern_json()) <= MAX_PATTERN_CHARS


def test_routes_cover_every_finding_route():
    from typing import get_args

    from handlers.detection.finding import Route

    assert set(RULES_BY_ROUTE) == set(get_args(Route))


def test_engine_rejects_a_misspelled_operator():
    # moto accepts this; EventBridge (and LocalStack) refuse it.
    with pytest.raises(InvalidEventPatternException):
        compile_pattern({"detail": {"eventName": [{"prefixx": "Put"}]}})


def test_engine_matches_inside_arrays_of_objects():
    pattern = {"detail": {"Statement": {"Principal": ["*"]}}}
    event = {"detail": {"Statement": [{"Principal": {"AWS": "x"}}, {"Principal": "*"}]}}
    assert matches(pattern, event)
    assert not matches(pattern, {"detail": {"Statement": [{"Principal": {"AWS": "*"}}]}})


def test_dataset_has_cases_for_every_route():
    assert {case.expect.get("route") for case in MUST_ROUTE} >= set(RULES_BY_ROUTE)


@pytest.mark.parametrize("case", MUST_ROUTE, ids=lambda case: case.id)
def test_every_detectable_record_matches_its_rule(case: Case):
    matched = routes_matching(case.record, case_context(case))
    route = case.expect.get("route")
    if route:
        assert route in matched, f"{case.id} ({case.verdict}) should match rule {route}; matched {matched}"
    else:
        assert matched, f"{case.id} ({case.verdict}) matches no deployed rule"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_classifier_finding_is_routed_by_its_rule(case: Case):
    # Ties the classifier to the patterns whatever the labels say: a finding the rules
    # would never deliver is a finding the deployed detector never makes.
    context = case_context(case)
    matched = routes_matching(case.record, context)
    for finding in classify(copy.deepcopy(case.record), context):
        assert finding["route"] in matched, f"{case.id}: finding routed {finding['route']}, rules {matched}"


def test_routine_calls_mostly_do_not_match():
    routed = {case.id: routes_matching(case.record, case_context(case)) for case in NEGATIVES}
    hits = {case_id: routes for case_id, routes in routed.items() if routes}
    routine = [case for case in NEGATIVES if case.rule == "routine"]
    routine_hits = [case.id for case in routine if case.id in hits]
    print(f"\n{len(hits)}/{len(NEGATIVES)} verdict=none cases match a rule (the classifier drops them):")
    for case_id, routes in sorted(hits.items()):
        print(f"  {case_id}: {', '.join(routes)}")
    print(f"routine calls: {len(routine_hits)}/{len(routine)} match")
    # Routine traffic (dataset/routine) must almost never wake the function.
    assert len(routine_hits) <= 0.10 * len(routine), routine_hits
    # Near misses (a private policy with Principal "*" and a fixed condition, an all-true BPA
    # put, ...) may route: the pattern cannot correlate fields within one statement. Bound it.
    assert len(hits) <= 0.35 * len(NEGATIVES), sorted(hits)


def _record(name: str, params: object, **extra: object) -> dict:
    record = {
        "eventVersion": "1.09",
        "eventSource": "s3.amazonaws.com",
        "eventName": name,
        "awsRegion": "eu-west-1",
        "eventID": "11111111-2222-3333-4444-555555555555",
        "eventTime": "2025-01-01T00:00:00Z",
        "recipientAccountId": "111111111111",
        "requestParameters": params,
    }
    record.update(extra)
    return record


ALL_TRUE = {
    f: True for f in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(
            _record(
                "PutBucketPublicAccessBlock", {"bucketName": "b", "PublicAccessBlockConfiguration": ALL_TRUE}
            ),
            [],
            id="our-own-remediation-all-true-is-not-routed",
        ),
        pytest.param(
            _record(
                "PutBucketPublicAccessBlock",
                {
                    "bucketName": "b",
                    "PublicAccessBlockConfiguration": {**ALL_TRUE, "BlockPublicPolicy": False},
                },
            ),
            ["guard-removal"],
            id="one-flag-false",
        ),
        pytest.param(
            _record(
                "PutAccountPublicAccessBlock",
                {"PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "IgnorePublicAcls": True}},
            ),
            ["guard-removal"],
            id="omitted-flags-count-as-off",
        ),
        pytest.param(
            _record(
                "PutBucketOwnershipControls",
                {"OwnershipControls": {"Rule": {"ObjectOwnership": "BucketOwnerEnforced"}}},
            ),
            [],
            id="ownership-enforced-is-not-routed",
        ),
        pytest.param(
            _record("PutBucketAcl", {"bucketName": "b", "x-amz-acl": ["public-read"]}),
            ["public-header"],
            id="canned-acl-as-a-1.05-list",
        ),
        pytest.param(
            _record("PutObject", {"bucketName": "b", "key": "k", "x-amz-acl": "bucket-owner-full-control"}),
            [],
            id="routine-putobject-acl",
        ),
        pytest.param(
            _record(
                "PutBucketAcl",
                {
                    "bucketName": "b",
                    "accessControlList": {
                        "x-amz-grant-write": 'uri="http://acs.amazonaws.com/groups/s3/LogDelivery"'
                    },
                },
            ),
            [],
            id="log-delivery-grant-is-not-public",
        ),
        pytest.param(
            _record(
                "PutBucketAcl",
                {"bucketName": "b", "x-amz-acl": "public-read"},
                errorCode="AccessDenied",
                errorMessage="Access Denied",
            ),
            ["public-header"],
            id="failed-call-is-routed",
        ),
        pytest.param(
            _record(
                "PutObjectAcl",
                {
                    "AccessControlPolicy": {
                        "AccessControlList": {
                            "Grant": {
                                "Grantee": {
                                    "xsi:type": "Group",
                                    "URI": "http://acs.amazonaws.com/groups/global/AllUsers",
                                },
                                "Permission": "READ",
                            }
                        }
                    }
                },
            ),
            ["public-body"],
            id="single-grant-object-body",
        ),
        pytest.param(
            _record(
                "PutBucketPolicy",
                {
                    "bucketPolicy": {
                        "Statement": {
                            "Effect": "Allow",
                            "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                        }
                    }
                },
            ),
            [],
            id="specific-principal-policy-is-not-routed",
        ),
        pytest.param(
            _record(
                "PutBucketPolicy",
                {
                    "bucketPolicy": {
                        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::*:root"}}]
                    }
                },
            ),
            ["public-body"],
            id="wildcard-account-principal",
        ),
    ],
)
def test_hand_written_records(record, expected):
    assert routes_matching(record) == expected


# ---- the approval tag (handlers.detection.rules.approval_tag): its key is the deployment's ----

CUSTOM_APPROVAL = DetectorContext(approval_tag="security:public-until")


def _tagging(*tags: dict, **extra: object) -> dict:
    tag_set = {"Tag": tags[0] if len(tags) == 1 else list(tags)}
    return _record(
        "PutBucketTagging", {"bucketName": "b", "tagging": "", "Tagging": {"TagSet": tag_set}}, **extra
    )


@pytest.mark.parametrize(
    ("record", "context", "expected"),
    [
        pytest.param(
            _tagging({"Key": "public-access-approved-until", "Value": "2030-01-01"}),
            NO_CONTEXT,
            ["guard-removal"],
            id="default-key-single-tag",
        ),
        pytest.param(
            _tagging({"Key": "team", "Value": "web"}, {"Key": "public-access-approved-until", "Value": "x"}),
            NO_CONTEXT,
            ["guard-removal"],
            id="default-key-in-a-tag-list",
        ),
        pytest.param(
            _tagging({"Key": "team", "Value": "web"}, {"Key": "env", "Value": "prod"}),
            NO_CONTEXT,
            [],
            id="everyday-tags-are-not-routed",
        ),
        pytest.param(
            _tagging({"Key": "Public-Access-Approved-Until", "Value": "2030-01-01"}),
            NO_CONTEXT,
            [],
            id="keys-are-case-sensitive",
        ),
        pytest.param(
            _tagging({"Key": "security:public-until", "Value": "2030-01-01"}),
            CUSTOM_APPROVAL,
            ["guard-removal"],
            id="custom-key-routed",
        ),
        pytest.param(
            _tagging({"Key": "public-access-approved-until", "Value": "2030-01-01"}),
            CUSTOM_APPROVAL,
            [],
            id="default-key-not-routed-under-a-custom-key",
        ),
        pytest.param(
            _tagging(
                {"Key": "public-access-approved-until", "Value": "2030-01-01"},
                errorCode="AccessDenied",
                errorMessage="Access Denied",
            ),
            NO_CONTEXT,
            ["guard-removal"],
            id="failed-approval-is-routed",
        ),
        pytest.param(
            _record("DeleteBucketTagging", {"bucketName": "b", "tagging": ""}),
            CUSTOM_APPROVAL,
            ["guard-removal"],
            id="delete-bucket-tagging",
        ),
        pytest.param(
            _record("DeleteBucketTagging", None, errorCode="NoSuchBucket"),
            NO_CONTEXT,
            ["guard-removal"],
            id="failed-delete-with-null-parameters",
        ),
    ],
)
def test_approval_tag_routing(record: dict, context: DetectorContext, expected: list[str]) -> None:
    assert routes_matching(record, context) == expected
    # Whatever is routed, the classifier finds; whatever it finds, is routed.
    assert [f["route"] for f in classify(record, context)] == expected


def test_guard_removal_depends_on_the_approval_tag_only() -> None:
    assert rules_for(DetectorContext(approval_tag="public-access-approved-until")) == RULES
    custom = {rule.route: rule for rule in rules_for(CUSTOM_APPROVAL)}
    assert custom["guard-removal"].pattern != RULES_BY_ROUTE["guard-removal"].pattern
    assert [r for r in custom.values() if r.route != "guard-removal"] == [
        r for r in RULES if r.route != "guard-removal"
    ]


@pytest.mark.parametrize(
    "key",
    [
        "k" * 128,  # the longest key exceptions.approval_tag accepts
        "a:b/c=d+e@f g_h.i-" * 7,  # every character it accepts (none needs escaping in JSON)
        "\u00e9" * 128,  # beyond the configuration's rules: 6 characters each once escaped
        "\u00e9" * 400,  # too long for one pattern: every PutBucketTagging is routed (fail open)
    ],
)
def test_guard_removal_with_any_approval_key_is_valid_and_within_the_size_limit(key: str) -> None:
    rule = {r.route: r for r in rules_for(DetectorContext(approval_tag=key))}["guard-removal"]
    compile_pattern(rule.pattern_json())
    assert len(rule.pattern_json()) <= MAX_PATTERN_CHARS
    record = _tagging({"Key": key, "Value": "2030-01-01"})
    assert routes_matching(record, DetectorContext(approval_tag=key)) == ["guard-removal"]

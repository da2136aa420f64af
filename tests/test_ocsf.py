"""OCSF Detection Finding output (handlers/offline/ocsf.py), validated with py-ocsf-models (dev dependency).

The library's pydantic models ignore attributes they do not know, so :func:`validate` does more
than ``model_validate``: it parses the JSON text in strict mode (no "5" for 5), dumps what the
model kept and requires it to equal what we emitted, except for the few OCSF attributes the
library does not model (:data:`NOT_MODELLED`), which are checked here by type.
"""

from __future__ import annotations

import copy
import io
import ipaddress
import json
import re
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from py_ocsf_models import OCSF_VERSION as LIBRARY_OCSF_VERSION  # type: ignore[import-untyped]
from py_ocsf_models.events.findings.detection_finding import DetectionFinding  # type: ignore[import-untyped]
from py_ocsf_models.objects.user import User  # type: ignore[import-untyped]

from demo.dataset_loader import Case, load_cases
from handlers.detection.classify import classify
from handlers.detection.finding import Finding
from handlers.detection.rules.detector_context import DetectorContext
from handlers.offline import detect_cli, ocsf
from handlers.offline.ocsf import detection_finding

CASES = [case for case in load_cases() if case.expect["verdict"] != "none"]
FINDING_FIELDS = list(Finding.__annotations__)
FIXED_NOW = 1_800_000_000_000

# OCSF 1.5 attributes of the evidence artifact that py-ocsf-models 0.10 does not model.
NOT_MODELLED = {"evidences[].actor", "evidences[].src_endpoint", "evidences[].http_request"}

# Characters that must never reach the output raw (see handlers.offline.ocsf._UNSAFE_CHARS).
UNSAFE_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
BIDI_AND_ZERO_WIDTH = {chr(c) for c in [*range(0x200B, 0x2010), *range(0x202A, 0x202F), 0xFEFF]}


def _diff(ours: Any, kept: Any, path: str, missing: set[str]) -> None:
    """Record in ``missing`` the paths of ``ours`` the model dropped; assert the rest is unchanged."""
    if isinstance(ours, dict):
        assert isinstance(kept, dict), f"{path}: {kept!r}"
        for key, value in ours.items():
            where = f"{path}.{key}" if path else key
            if key not in kept:
                missing.add(where)
            else:
                _diff(value, kept[key], where, missing)
    elif isinstance(ours, list):
        assert isinstance(kept, list) and len(kept) == len(ours), f"{path}: {kept!r}"
        for mine, theirs in zip(ours, kept, strict=True):
            _diff(mine, theirs, f"{path}[]", missing)
    else:
        assert type(ours) is type(kept) and ours == kept, f"{path}: {ours!r} became {kept!r}"


def _check_not_modelled(event: dict[str, Any]) -> None:
    """Type checks for the evidence attributes the library does not model (OCSF 1.5 types)."""
    for evidence in event.get("evidences", []):
        actor = evidence.get("actor")
        if actor is not None:
            assert set(actor) <= {"user", "session", "invoked_by"}
            user = actor.get("user")
            if user is not None:
                assert set(user) <= {"uid", "name", "account", "type_id", "type"}
                assert isinstance(user["uid"], str) and isinstance(user["name"], str)
                assert isinstance(user["type_id"], int) and user["type_id"] in (0, 1, 2, 99)
                if "account" in user:  # then it is a whole User as the library models it
                    User.model_validate_json(json.dumps(user), strict=True)
            session = actor.get("session", {})
            assert set(session) <= {"is_mfa", "issuer", "created_time"}
            assert isinstance(session.get("is_mfa", False), bool)
            assert isinstance(session.get("issuer", ""), str)
            assert type(session.get("created_time", 0)) is int
            assert isinstance(actor.get("invoked_by", ""), str)
        endpoint = evidence.get("src_endpoint")
        if endpoint is not None:
            assert len(endpoint) == 1 and set(endpoint) <= {"ip", "name"}
            if "ip" in endpoint:
                ipaddress.ip_address(endpoint["ip"])
            assert all(isinstance(value, str) and value for value in endpoint.values())
        request = evidence.get("http_request")
        if request is not None:
            assert set(request) == {"user_agent"} and isinstance(request["user_agent"], str)


def validate(event: dict[str, Any]) -> DetectionFinding:
    """The event as py-ocsf-models reads it; fails on anything not a valid Detection Finding."""
    text = json.dumps(event, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogates
    model = DetectionFinding.model_validate_json(text, strict=True)
    missing: set[str] = set()
    _diff(json.loads(text), model.model_dump(mode="json", exclude_unset=True), "", missing)
    assert missing <= NOT_MODELLED, f"attributes py-ocsf-models does not know: {missing - NOT_MODELLED}"
    _check_not_modelled(event)
    assert event["class_uid"] == 2004 and event["category_uid"] == 2
    assert event["activity_id"] == 1 and event["type_uid"] == 200401
    assert event["class_name"] == "Detection Finding" and event["category_name"] == "Findings"
    assert event["metadata"]["version"] == ocsf.OCSF_VERSION
    assert event["metadata"]["product"]["name"] == "s3-exposure-detector"
    assert type(event["time"]) is int and event["time"] > 0
    return model


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def finding_for(case: Case) -> Finding:
    (finding,) = classify(copy.deepcopy(case.record), case.detector)
    return finding


def base_finding(**changes: Any) -> dict[str, Any]:
    """A public bucket-policy finding as the classifier writes it."""
    finding: dict[str, Any] = {
        "eventID": "0f7c7a51-6a52-4c1e-9e0e-2b1d5f3c9a10",
        "eventName": "PutBucketPolicy",
        "eventTime": "2024-03-12T08:39:07Z",
        "account": "318473062105",
        "region": "eu-west-1",
        "bucket": "acme-exports",
        "key": None,
        "accessPoint": None,
        "public": True,
        "verdict": "public",
        "kind": "policy",
        "scope": "bucket",
        "access": ["read"],
        "principals": ["*"],
        "variant": "body",
        "route": "public-body",
        "client": "cli",
        "actor": "arn:aws:sts::318473062105:assumed-role/ops-admin/jane.doe@acme.example",
        "sourceIPAddress": "203.0.113.45",
        "userAgent": "aws-cli/2.15.30 Python/3.11.6",
        "severity": "high",
        "reasons": ["statement 'PublicRead' allows read to *"],
        "error": None,
        "errorMessage": None,
        "session": {
            "identityType": "AssumedRole",
            "mfaAuthenticated": True,
            "sessionIssuer": "arn:aws:iam::318473062105:role/ops-admin",
            "sessionIssuerType": "Role",
            "sessionCreated": "2024-03-12T08:02:11Z",
            "invokedBy": None,
        },
    }
    finding.update(changes)
    return finding


# --- the labelled dataset --------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_every_dataset_finding_is_a_valid_detection_finding(case: Case) -> None:
    finding = finding_for(case)
    event = detection_finding(finding, product_version="1.4.0")
    validate(event)
    assert "conversion_error" not in event["unmapped"]
    assert event["metadata"]["product"]["version"] == "1.4.0"
    assert event["finding_info"]["types"] == [finding["verdict"]]
    assert event["api"]["operation"] == finding["eventName"]
    assert event["cloud"]["account"]["uid"] == finding["account"]
    assert event["cloud"]["region"] == finding["region"]
    assert "time_note" not in event["unmapped"]
    for field in ("verdict", "route", "variant", "client", "access", "principals"):
        assert event["unmapped"][field] == finding[field]
    if finding["bucket"]:
        assert {"type": "AWS::S3::Bucket", "uid": f"arn:aws:s3:::{finding['bucket']}"}.items() <= event[
            "resources"
        ][0].items()


def _cli_args(context: DetectorContext) -> list[str]:
    args = ["--jobs", "1", "--approval-tag", context.approval_tag]
    for flag, value in (
        ("--trail-name", context.trail_name),
        ("--trail-bucket", context.trail_bucket),
        ("--trail-key", context.trail_key_arn),
        ("--detector-key", context.detector_key_arn),
    ):
        if value:
            args += [flag, value]
    return args


def test_every_finding_detect_prints_for_the_dataset_converts(tmp_path: Path) -> None:
    """``detect`` over the dataset's records (grouped by detector context), each JSON line converted."""
    groups: dict[DetectorContext, list[dict[str, Any]]] = defaultdict(list)
    for case in load_cases():
        groups[case.detector].append(case.record)
    lines: list[str] = []
    for index, (context, records) in enumerate(groups.items()):
        path = tmp_path / f"group-{index}.json"
        path.write_text(json.dumps({"Records": records}))
        out, err = io.StringIO(), io.StringIO()
        assert detect_cli.main([*_cli_args(context), str(path)], out, err) == 0, err.getvalue()
        lines += out.getvalue().splitlines()
    assert len(lines) == len(CASES)
    uids = set()
    for line in lines:
        event = detection_finding(json.loads(line))
        validate(event)
        uids.add(event["metadata"]["uid"])
    assert len(uids) == len(lines), "two findings share a uid"


def test_library_and_module_agree_on_the_schema_version() -> None:
    assert ocsf.OCSF_VERSION == LIBRARY_OCSF_VERSION
    assert tuple(int(part) for part in ocsf.OCSF_VERSION.split(".")) >= (1, 1, 0)


def test_the_docstring_maps_every_finding_field() -> None:
    doc = ocsf.__doc__ or ""
    for field in FINDING_FIELDS:
        assert re.search(rf"^{field}[ .]", doc, re.MULTILINE), field


# --- severity, time, uid ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "severity_id", "caption", "risk_level_id"),
    [
        ("critical", 5, "Critical", 4),
        ("high", 4, "High", 3),
        ("medium", 3, "Medium", 2),
        ("low", 2, "Low", 1),
        ("info", 1, "Informational", 0),
    ],
)
def test_severity_mapping(severity: str, severity_id: int, caption: str, risk_level_id: int) -> None:
    event = detection_finding(base_finding(severity=severity))
    validate(event)
    assert (event["severity_id"], event["severity"]) == (severity_id, caption)
    assert event["risk_level_id"] == risk_level_id
    assert "severity" not in event["unmapped"]


@pytest.mark.parametrize("severity", ["CRITICAL", "catastrophic", "", None, 5, ["high"]])
def test_unknown_severity_is_unknown_not_guessed(severity: Any) -> None:
    event = detection_finding(base_finding(severity=severity))
    validate(event)
    assert (event["severity_id"], event["severity"]) == (0, "Unknown")
    assert "risk_level_id" not in event
    if isinstance(severity, str | int) and severity != "":
        assert event["unmapped"]["severity"] == str(severity)


@pytest.mark.parametrize(
    ("event_time", "millis"),
    [
        ("2024-03-12T08:39:07Z", 1_710_232_747_000),
        ("2024-03-12T08:39:07.123Z", 1_710_232_747_123),
        ("2024-03-12T10:39:07+02:00", 1_710_232_747_000),
        ("2024-03-12T08:39:07", 1_710_232_747_000),  # no zone: UTC, as CloudTrail writes
    ],
)
def test_time_is_event_time_in_milliseconds(event_time: str, millis: int) -> None:
    event = detection_finding(base_finding(eventTime=event_time))
    validate(event)
    assert event["time"] == millis
    assert event["finding_info"]["first_seen_time"] == millis
    assert event["metadata"]["original_time"] == event_time
    assert "time_note" not in event["unmapped"]


@pytest.mark.parametrize(
    "event_time",
    [None, "", "yesterday", "2024-13-45T99:99:99Z", "1969-12-31T23:59:59Z", 1710232747, ["2024-03-12"], {}],
)
def test_unusable_event_time_falls_back_and_says_so(monkeypatch: pytest.MonkeyPatch, event_time: Any) -> None:
    monkeypatch.setattr(ocsf, "_now_ms", lambda: FIXED_NOW)
    finding = base_finding(eventTime=event_time)
    if event_time is None:
        del finding["eventTime"]
    event = detection_finding(finding)
    validate(event)
    assert event["time"] == FIXED_NOW
    assert "eventTime missing or malformed" in event["unmapped"]["time_note"]
    assert "first_seen_time" not in event["finding_info"]
    if isinstance(event_time, str | int) and event_time != "":
        assert event["unmapped"]["eventTime"] == str(event_time)
        assert event["metadata"]["original_time"] == str(event_time)


def test_uid_is_stable_and_derived_from_event_bucket_and_kind() -> None:
    first = detection_finding(base_finding())
    again = detection_finding(copy.deepcopy(base_finding()))
    uid = first["metadata"]["uid"]
    assert again["metadata"]["uid"] == uid == first["finding_info"]["uid"]
    assert uuid.UUID(uid).version == 5
    # Re-running with other severities, reasons or a product version keeps the uid...
    same = detection_finding(base_finding(severity="critical", reasons=["other"]), product_version="9")
    assert same["metadata"]["uid"] == uid
    # ...while another record, bucket or kind of finding gets its own.
    for change in ({"eventID": "other-event"}, {"bucket": "other-bucket"}, {"kind": "acl"}):
        assert detection_finding(base_finding(**change))["metadata"]["uid"] != uid, change
    # The record's id correlates findings of one record.
    assert first["metadata"]["correlation_uid"] == base_finding()["eventID"]
    assert first["finding_info"]["related_events"] == [
        {"uid": base_finding()["eventID"], "type": "AWS CloudTrail record"}
    ]


def test_uid_without_event_id_is_still_stable_and_tells_records_apart() -> None:
    one = detection_finding(base_finding(eventID=None))
    assert detection_finding(base_finding(eventID=None))["metadata"]["uid"] == one["metadata"]["uid"]
    other = detection_finding(base_finding(eventID=None, eventTime="2024-03-13T00:00:00Z"))
    assert other["metadata"]["uid"] != one["metadata"]["uid"]
    assert "correlation_uid" not in one["metadata"]


# --- ATT&CK ----------------------------------------------------------------------------------


def _attack_ids(event: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [
        (a["technique"]["uid"], a.get("sub_technique", {}).get("uid"), a["tactic"]["uid"])
        for a in event["finding_info"].get("attacks", [])
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"verdict": "public"}, [("T1530", None, "TA0009")]),
        (
            {"verdict": "weakening", "kind": "block-public-access", "route": "guard-removal"},
            [("T1530", None, "TA0009")],
        ),
        ({"verdict": "attempt", "error": "AccessDenied"}, [("T1530", None, "TA0009")]),
        (
            {"verdict": "tamper", "kind": "trail", "scope": "trail", "route": "trail-tamper", "bucket": None},
            [("T1562", "T1562.008", "TA0005")],
        ),
        (
            {"verdict": "attempt", "kind": "trail", "route": "trail-tamper", "eventName": "StopLogging"},
            [("T1562", "T1562.008", "TA0005")],
        ),
        ({"verdict": "approval", "kind": "approval", "route": "guard-removal"}, []),
    ],
)
def test_attack_mapping(changes: dict[str, Any], expected: list[tuple[str, str | None, str]]) -> None:
    event = detection_finding(base_finding(**changes))
    validate(event)
    assert _attack_ids(event) == expected


def test_attack_names_for_public_and_tamper() -> None:
    (public,) = detection_finding(base_finding())["finding_info"]["attacks"]
    assert public["technique"]["name"] == "Data from Cloud Storage"
    assert public["tactic"]["name"] == "Collection"
    tamper = base_finding(verdict="tamper", kind="trail", route="trail-tamper", eventName="StopLogging")
    (attack,) = detection_finding(tamper)["finding_info"]["attacks"]
    assert attack["sub_technique"]["name"] == "Disable or Modify Cloud Logs"
    assert attack["tactic"]["name"] == "Defense Evasion"


def test_dataset_tamper_and_public_findings_carry_their_technique() -> None:
    seen = defaultdict(set)
    for case in CASES:
        finding = finding_for(case)
        seen[finding["verdict"]].update(_attack_ids(detection_finding(finding)))
    assert seen["public"] == seen["weakening"] == {("T1530", None, "TA0009")}
    assert seen["tamper"] == {("T1562", "T1562.008", "TA0005")}
    assert seen["approval"] == set()


# --- field mapping ---------------------------------------------------------------------------


def test_bucket_finding_maps_resource_actor_endpoint_api_and_cloud() -> None:
    event = detection_finding(base_finding())
    validate(event)
    (bucket,) = event["resources"]
    assert bucket["type"] == "AWS::S3::Bucket"
    assert bucket["uid"] == "arn:aws:s3:::acme-exports" and bucket["name"] == "acme-exports"
    assert bucket["region"] == "eu-west-1" and bucket["cloud_partition"] == "aws"
    assert bucket["owner"]["account"]["uid"] == "318473062105"
    assert event["cloud"] == {
        "provider": "AWS",
        "region": "eu-west-1",
        "account": {"uid": "318473062105", "name": "318473062105", "type_id": 10, "type": "AWS Account"},
    }
    assert event["finding_info"]["title"] == "S3 bucket made public: acme-exports"
    assert event["finding_info"]["desc"] == "statement 'PublicRead' allows read to *"
    assert event["finding_info"]["analytic"]["name"] == "public-body"
    assert event["api"]["service"]["name"] == "s3.amazonaws.com"
    assert "response" not in event["api"]
    (evidence,) = event["evidences"]
    assert evidence["api"] == event["api"]
    user = evidence["actor"]["user"]
    assert user["uid"] == base_finding()["actor"] and user["name"] == "jane.doe@acme.example"
    assert user["account"]["uid"] == "318473062105"
    assert evidence["actor"]["session"] == {
        "is_mfa": True,
        "issuer": "arn:aws:iam::318473062105:role/ops-admin",
        "created_time": 1_710_230_531_000,
    }
    assert evidence["src_endpoint"] == {"ip": "203.0.113.45"}
    assert evidence["http_request"] == {"user_agent": "aws-cli/2.15.30 Python/3.11.6"}
    observed = {(o["type_id"], o["value"]) for o in event["observables"]}
    assert observed == {(10, "arn:aws:s3:::acme-exports"), (4, "jane.doe@acme.example"), (2, "203.0.113.45")}
    assert event["unmapped"]["session"] == {"sessionIssuerType": "Role"}


def test_object_access_point_and_account_scopes() -> None:
    obj = detection_finding(base_finding(scope="object", key="exports/2024/q1.csv", kind="acl"))
    validate(obj)
    assert [r["type"] for r in obj["resources"]] == ["AWS::S3::Bucket", "AWS::S3::Object"]
    assert obj["resources"][1]["uid"] == "arn:aws:s3:::acme-exports/exports/2024/q1.csv"
    assert obj["finding_info"]["title"] == "S3 object made public: acme-exports/exports/2024/q1.csv"

    point = detection_finding(
        base_finding(
            bucket=None, accessPoint="partner-drop", scope="access-point", kind="access-point-policy"
        )
    )
    validate(point)
    (resource,) = point["resources"]
    assert resource["type"] == "AWS::S3::AccessPoint"
    assert resource["uid"] == "arn:aws:s3:eu-west-1:318473062105:accesspoint/partner-drop"

    account = detection_finding(
        base_finding(bucket=None, scope="account", verdict="weakening", kind="block-public-access")
    )
    validate(account)
    (resource,) = account["resources"]
    assert resource["type"] == "AWS::S3::AccountPublicAccessBlock" and resource["uid"] == "318473062105"
    assert account["finding_info"]["title"] == "S3 Block Public Access weakened for account: 318473062105"


def test_partition_follows_the_region() -> None:
    event = detection_finding(base_finding(region="cn-north-1"))
    validate(event)
    assert event["resources"][0]["uid"] == "arn:aws-cn:s3:::acme-exports"
    assert event["resources"][0]["cloud_partition"] == "aws-cn"


@pytest.mark.parametrize(
    ("event_name", "kind", "service"),
    [
        ("PutBucketAcl", "acl", "s3.amazonaws.com"),
        ("StopLogging", "trail", "cloudtrail.amazonaws.com"),
        ("PutKeyPolicy", "trail", "kms.amazonaws.com"),
        ("DeleteBucket", "trail", "s3.amazonaws.com"),
        ("SomethingNew", "trail", "cloudtrail.amazonaws.com"),
        ("SomethingNew", "policy", "s3.amazonaws.com"),
    ],
)
def test_api_service_by_event_name_then_kind(event_name: str, kind: str, service: str) -> None:
    event = detection_finding(base_finding(eventName=event_name, kind=kind))
    validate(event)
    assert event["api"]["service"]["name"] == service


def test_failed_call_goes_to_api_response() -> None:
    event = detection_finding(
        base_finding(verdict="attempt", public=False, error="AccessDenied", errorMessage="Access Denied")
    )
    validate(event)
    assert event["api"]["response"] == {"error": "AccessDenied", "error_message": "Access Denied"}
    assert event["finding_info"]["title"] == "Failed attempt to expose S3 bucket: acme-exports"


def test_aws_service_caller_is_named_not_an_ip() -> None:
    event = detection_finding(base_finding(sourceIPAddress="s3.amazonaws.com"))
    validate(event)
    assert event["evidences"][0]["src_endpoint"] == {"name": "s3.amazonaws.com"}
    assert all(o["type_id"] != 2 for o in event["observables"])


TAMPER = {"verdict": "tamper", "kind": "trail", "scope": "trail", "route": "trail-tamper", "bucket": None}


@pytest.mark.parametrize(
    ("changes", "title"),
    [
        ({}, "S3 bucket made public: acme-exports"),
        (TAMPER | {"eventName": "StopLogging"}, "Tampering with the audit trail (StopLogging): 318473062105"),
        (
            TAMPER | {"verdict": "attempt", "eventName": "DeleteTrail", "error": "AccessDenied"},
            "Failed attempt to tamper with the audit trail (DeleteTrail): 318473062105",
        ),
        ({"verdict": "approval", "kind": "approval"}, "S3 public-access approval tag changed: acme-exports"),
        (
            {"verdict": "weakening", "kind": "ownership"},
            "S3 bucket public access guard removed: acme-exports",
        ),
        ({"verdict": "undetermined"}, "Possible exposure of S3 bucket (undetermined): acme-exports"),
        ({"verdict": "bogus"}, "S3 exposure finding (PutBucketPolicy): acme-exports"),
        ({"bucket": None, "account": None}, "S3 bucket made public"),
    ],
)
def test_titles(changes: dict[str, Any], title: str) -> None:
    event = detection_finding(base_finding(**changes))
    validate(event)
    assert event["finding_info"]["title"] == event["message"] == title


def test_undetermined_is_low_confidence() -> None:
    event = detection_finding(base_finding(verdict="undetermined", severity="medium"))
    validate(event)
    assert (event["confidence_id"], event["confidence"]) == (1, "Low")
    assert (detection_finding(base_finding())["confidence_id"]) == 3


def test_invalid_identifiers_are_not_put_into_arns() -> None:
    event = detection_finding(
        base_finding(bucket="../../etc passwd", account="12345", region="moon-1", accessPoint="A P")
    )
    validate(event)
    assert all("uid" not in r for r in event["resources"])
    assert "account" not in event["cloud"] and "region" not in event["cloud"]
    assert event["unmapped"]["invalid"] == {
        "account": "12345",
        "region": "moon-1",
        "bucket": "../../etc passwd",
        "accessPoint": "A P",
    }


# --- hostile input ---------------------------------------------------------------------------

JUNK: list[Any] = [
    None,
    0,
    -1,
    10**5000,  # past Python's int-to-str digit limit
    3.5,
    float("nan"),
    float("inf"),
    True,
    [],
    ["x", 1, None, {"y": []}],
    {"nested": {"junk": [1, {"a": None}]}},
    "",
    "x" * 1_000_000,
    "\x00\x1b[31mred\x07\r\n\u2028\u202eevil\u200b\ufeff\ud800\udfff",
    b"bytes",
    ("tuple",),
    object(),
]


def _assert_safe(event: dict[str, Any]) -> None:
    validate(event)
    assert "conversion_error" not in event["unmapped"]
    for text in strings(event):
        assert len(text) <= ocsf.DESC_LIMIT + 40, len(text)
        for char in text:
            assert unicodedata.category(char) not in UNSAFE_CATEGORIES, repr(char)
            assert char not in BIDI_AND_ZERO_WIDTH, repr(char)
    assert len(json.dumps(event)) < 200_000


@pytest.mark.parametrize("junk", JUNK, ids=[f"{type(j).__name__}-{i}" for i, j in enumerate(JUNK)])
def test_every_field_of_the_wrong_type(junk: Any) -> None:
    finding = {field: junk for field in FINDING_FIELDS}
    _assert_safe(detection_finding(finding, product_version=junk))


@pytest.mark.parametrize("field", FINDING_FIELDS)
def test_one_field_of_junk_in_a_real_finding(field: str) -> None:
    for junk in JUNK:
        event = detection_finding(base_finding(**{field: junk}))
        _assert_safe(event)
        assert event["metadata"]["uid"]


@pytest.mark.parametrize("missing", [FINDING_FIELDS, ["eventTime", "eventID", "bucket"], ["session"]])
def test_missing_keys(missing: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocsf, "_now_ms", lambda: FIXED_NOW)
    finding = {k: v for k, v in base_finding().items() if k not in missing}
    event = detection_finding(finding)
    _assert_safe(event)


@pytest.mark.parametrize("not_a_mapping", [None, [], "finding", 42, [("eventID", "x")]])
def test_not_a_mapping_at_all(not_a_mapping: Any) -> None:
    _assert_safe(detection_finding(not_a_mapping))


def test_megabyte_strings_are_capped_with_a_marker() -> None:
    huge = "a" * 1_000_000
    finding = base_finding(
        userAgent=huge, reasons=[huge] * 1000, principals=[huge] * 1000, key=huge, scope="object"
    )
    event = detection_finding(finding)
    _assert_safe(event)
    user_agent = event["evidences"][0]["http_request"]["user_agent"]
    assert user_agent.startswith("a" * 100) and user_agent.endswith("…[truncated: 1000000 chars]")
    assert len(event["unmapped"]["principals"]) == ocsf.LIST_LIMIT
    assert event["finding_info"]["desc"].endswith("chars]")


def test_control_characters_are_escaped_visibly() -> None:
    event = detection_finding(base_finding(userAgent="curl\x1b[2J\r\nFAKE\u202eLINE\ud800"))
    _assert_safe(event)
    assert (
        event["evidences"][0]["http_request"]["user_agent"] == "curl\\x1b[2J\\x0d\\x0aFAKE\\u202eLINE\ufffd"
    )


def test_escapes_never_cut_in_half_at_the_cap() -> None:
    event = detection_finding(base_finding(userAgent="\x1b" * 5000))
    user_agent = event["evidences"][0]["http_request"]["user_agent"]
    body = user_agent.split("…", 1)[0]
    assert body == "\\x1b" * (len(body) // 4) and len(body) <= ocsf.TEXT_LIMIT
    _assert_safe(event)


def test_session_with_junk_types_is_ignored_field_by_field() -> None:
    session = {"mfaAuthenticated": "true", "sessionIssuer": ["x"], "sessionCreated": 5, "identityType": {}}
    event = detection_finding(base_finding(session=session))
    _assert_safe(event)
    actor = event["evidences"][0]["actor"]
    assert "session" not in actor  # "true" is text, not a boolean: not trusted as MFA
    assert (actor["user"]["type_id"], actor["user"]["type"]) == (0, "Unknown")


class Exploding(Mapping[str, Any]):
    """A mapping whose every read fails."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


def test_a_mapping_that_raises_still_gives_a_valid_event() -> None:
    event = detection_finding(Exploding())
    validate(event)
    assert event["unmapped"]["conversion_error"] == "RuntimeError: boom"


JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=300),
    st.sampled_from(["2024-03-12T08:39:07Z", "critical", "public", "trail-tamper", "arn:aws:iam::1:user/x"]),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from([*FINDING_FIELDS, "mfaAuthenticated", "extra"]),
        JSON_VALUE,
        max_size=len(FINDING_FIELDS),
    ),
    st.dictionaries(
        st.sampled_from(["identityType", "mfaAuthenticated", "sessionIssuer", "sessionCreated", "invokedBy"]),
        JSON_VALUE,
    ),
)
def test_any_json_finding_gives_a_valid_event(finding: dict[str, Any], session: dict[str, Any]) -> None:
    if session:
        finding["session"] = session
    _assert_safe(detection_finding(finding))

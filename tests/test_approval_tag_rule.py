"""The approval-tag rule on odd record shapes, and the parts of detect and replay it touches.

The labelled cases live in ``dataset/approval_tag/`` (run by the dataset and routing tests);
this file covers the shapes a dataset case cannot sensibly hold: damaged parameters, values
CloudTrail recorded as JSON literals, forged duplicates and huge values.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from demo.replay_state import replay
from handlers.detection.classify import classify
from handlers.detection.rules import approval_tag, event_markers, watched_event_names
from handlers.detection.rules.detector_context import (
    DEFAULT_APPROVAL_TAG,
    NO_CONTEXT,
    DetectorContext,
    from_environment,
    from_mapping,
)
from handlers.offline.detect_cli import main, scan_file
from handlers.offline.prefilter import ChunkedPrefilter, may_contain_watched, watch_for

KEY = DEFAULT_APPROVAL_TAG
ACTOR = "arn:aws:iam::111122223333:user/alice"


def tagging(tags: Any, *, name: str = "PutBucketTagging", params: Any = ..., **extra: Any) -> dict[str, Any]:
    """A PutBucketTagging record whose ``Tagging.TagSet.Tag`` is ``tags`` (or ``params`` verbatim)."""
    record = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": ACTOR},
        "eventTime": "2024-03-12T09:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": name,
        "awsRegion": "eu-west-1",
        "eventID": "approval-1",
        "recipientAccountId": "111122223333",
        "requestParameters": (
            {"bucketName": "acme-site", "tagging": "", "Tagging": {"TagSet": {"Tag": tags}}}
            if params is ...
            else params
        ),
    }
    record.update(extra)
    return record


def only(record: dict[str, Any], context: DetectorContext = NO_CONTEXT) -> dict[str, Any]:
    findings = classify(record, context)
    assert len(findings) == 1, findings
    return dict(findings[0])


# ---- what the rule reports ----


@pytest.mark.parametrize(
    "tags",
    [
        {"Key": KEY, "Value": "2030-01-31"},
        [{"Key": "team", "Value": "web"}, {"Key": KEY, "Value": "2030-01-31"}],
        [None, "junk", 7, {"Key": KEY, "Value": "2030-01-31"}],  # junk elements are skipped
    ],
    ids=["one-tag-dict", "tag-list", "list-with-junk"],
)
def test_setting_the_approval_names_who_and_until_when(tags: Any) -> None:
    finding = only(tagging(tags))
    assert (finding["verdict"], finding["kind"], finding["scope"]) == ("approval", "approval", "bucket")
    assert (finding["route"], finding["severity"], finding["public"]) == ("guard-removal", "low", False)
    assert finding["actor"] == ACTOR and finding["bucket"] == "acme-site"
    assert finding["reasons"] == [
        f"sets public-access approval until 2030-02-01T00:00:00Z ({KEY}='2030-01-31')"
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (True, "'true'"),  # CloudTrail records an XML "true" as a JSON boolean (invictus-aws corpus)
        ("forever", "'forever'"),
        ("", "''"),
        ("9999-12-31T23:59:59-05:00", None),  # may be readable or not; it must never raise
    ],
)
def test_an_unreadable_value_counts_as_no_approval(value: Any, shown: str | None) -> None:
    (reason,) = only(tagging({"Key": KEY, "Value": value}))["reasons"]
    if shown is not None:
        assert reason == f"sets an unreadable approval value {shown} ({KEY}), which counts as no approval"


@pytest.mark.parametrize("value", [20300131, 20300131.0, ["2030-01-31"]])
def test_values_recorded_as_numbers_or_lists_are_read_as_text(value: Any) -> None:
    assert only(tagging({"Key": KEY, "Value": value}))["reasons"][0].startswith(
        "sets public-access approval until 2030-02-01T00:00:00Z"
    )


def test_a_value_that_is_not_text_and_a_missing_value() -> None:
    assert only(tagging({"Key": KEY, "Value": {"nested": 1}}))["reasons"] == [
        f"sets {KEY} to a value that is not text, which counts as no approval"
    ]
    assert "unreadable approval value ''" in only(tagging({"Key": KEY}))["reasons"][0]


def test_an_expiry_already_past_is_said_so() -> None:
    (reason,) = only(tagging({"Key": KEY, "Value": "2024-01-31"}))["reasons"]
    assert reason.endswith("already past at the time of the call, so it approves nothing")
    # An unreadable eventTime just drops the remark.
    (reason,) = only(tagging({"Key": KEY, "Value": "2024-01-31"}, eventTime="yesterday"))["reasons"]
    assert reason.endswith("='2024-01-31')")


def test_hostile_values_are_escaped_and_capped_in_the_reason() -> None:
    (reason,) = only(tagging({"Key": KEY, "Value": "x\n\nSTATE NOW\u2028<!channel>"}))["reasons"]
    assert "\n" not in reason and "\u2028" not in reason and "\\n\\nSTATE NOW\\u2028" in reason
    (reason,) = only(tagging({"Key": KEY, "Value": "9" * 10_000}))["reasons"]
    assert len(reason) < 400 and "(10000 characters)" in reason


def test_forged_duplicates_are_bounded() -> None:
    tags = [{"Key": KEY, "Value": f"2030-01-{day:02d}"} for day in range(1, 21)]
    reasons = only(tagging(tags))["reasons"]
    assert len(reasons) == approval_tag.MAX_REASONS + 1 and reasons[-1].startswith("... and 15 more")


def test_a_failed_call_is_a_low_attempt_that_reads_sensibly() -> None:
    finding = only(tagging({"Key": KEY, "Value": "2030-01-31"}, errorCode="AccessDenied", errorMessage="no"))
    assert (finding["verdict"], finding["severity"], finding["error"]) == ("attempt", "low", "AccessDenied")
    assert finding["reasons"] == [
        f"tried to set public-access approval until 2030-02-01T00:00:00Z ({KEY}='2030-01-31')",
        "the call failed with AccessDenied, so nothing changed",
    ]


def test_deleting_every_tag_removes_the_approval() -> None:
    record = tagging(None, name="DeleteBucketTagging", params={"bucketName": "acme-site", "tagging": ""})
    finding = only(record)
    assert (finding["verdict"], finding["severity"], finding["bucket"]) == ("approval", "low", "acme-site")
    assert finding["reasons"] == [f"removes every tag, including any public-access approval ({KEY})"]
    custom = only(record, DetectorContext(approval_tag="ok-public-until"))
    assert custom["reasons"] == ["removes every tag, including any public-access approval (ok-public-until)"]


@pytest.mark.parametrize(
    "params",
    [
        None,
        "garbage",
        [],
        {},
        {"bucketName": "acme-site"},
        {"Tagging": None},
        {"Tagging": "<Tagging/>"},
        {"Tagging": {"TagSet": None}},
        {"Tagging": {"TagSet": [{"Tag": {"Key": KEY, "Value": "2030-01-31"}}]}},  # not the recorded shape
        {"Tagging": {"TagSet": {"Tag": "public-access-approved-until"}}},
        {"Tagging": {"TagSet": {"Tag": {"Value": "2030-01-31"}}}},  # no Key
        {"Tagging": {"TagSet": {"Tag": {"Key": None, "Value": "2030-01-31"}}}},
        {"Tagging": {"TagSet": {"Tag": {"Key": ["a", "b"], "Value": "2030-01-31"}}}},
    ],
)
def test_damaged_or_unrelated_parameters_never_raise_and_report_nothing(params: Any) -> None:
    record = tagging(None, params=params)
    assert approval_tag.classify(record, NO_CONTEXT) == []
    assert classify(record) == []


def test_keys_match_exactly_and_follow_the_context() -> None:
    assert classify(tagging({"Key": KEY.upper(), "Value": "2030-01-31"})) == []
    assert classify(tagging({"Key": f" {KEY}", "Value": "2030-01-31"})) == []
    custom = DetectorContext(approval_tag="ok-public-until")
    assert classify(tagging({"Key": KEY, "Value": "2030-01-31"}), custom) == []
    assert only(tagging({"Key": "ok-public-until", "Value": "2030-01-31"}), custom)["verdict"] == "approval"


def test_a_parser_that_raises_does_not_lose_the_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_value: object) -> None:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(approval_tag, "parse_expiry", broken)
    (reason,) = only(tagging({"Key": KEY, "Value": "9999-12-31"}))["reasons"]
    assert "unreadable approval value '9999-12-31'" in reason


def test_classify_does_not_mutate_the_record() -> None:
    record = tagging([{"Key": KEY, "Value": True}, {"Key": "team", "Value": 7}])
    before = copy.deepcopy(record)
    classify(record)
    assert record == before


# ---- the detector context ----


def test_the_approval_tag_comes_from_the_environment_and_the_dataset() -> None:
    assert NO_CONTEXT.approval_tag == DEFAULT_APPROVAL_TAG
    assert from_environment({}).approval_tag == DEFAULT_APPROVAL_TAG
    assert from_environment({"APPROVAL_TAG": "  "}).approval_tag == DEFAULT_APPROVAL_TAG
    context = from_environment({"APPROVAL_TAG": "ok-public-until", "TRAIL_NAME": "t"})
    assert context == DetectorContext(trail_name="t", approval_tag="ok-public-until")
    assert from_environment(context.to_environment()) == context
    assert context.to_environment()["APPROVAL_TAG"] == "ok-public-until"
    assert from_mapping({"approvalTag": "ok-public-until"}).approval_tag == "ok-public-until"
    assert from_mapping({"approvalTag": ""}).approval_tag == DEFAULT_APPROVAL_TAG


# ---- detect: tagging calls are parsed only when they name the approval tag ----


def test_only_the_approval_keys_letters_are_required_of_a_tagging_call() -> None:
    assert event_markers() == {"PutBucketTagging": ("public", "access", "approved", "until")}
    assert event_markers(DetectorContext(approval_tag="sec:ok/2030")) == {"PutBucketTagging": ("sec", "ok")}
    assert event_markers(DetectorContext(approval_tag="2030")) == {}  # no letters: always parsed
    assert {"PutBucketTagging", "DeleteBucketTagging"} <= watched_event_names()


def _file(*records: dict[str, Any], indent: int | None = None) -> bytes:
    return json.dumps({"Records": list(records)}, indent=indent).encode()


EVERYDAY = tagging([{"Key": "team", "Value": "web"}, {"Key": "env", "Value": "prod"}])
APPROVAL = tagging({"Key": KEY, "Value": "2030-01-31"})


def _chunked(data: bytes, size: int, context: DetectorContext = NO_CONTEXT) -> bool:
    prefilter = ChunkedPrefilter(*watch_for(context))
    for start in range(0, len(data), size):
        prefilter.feed(data[start : start + size])
    return prefilter.candidate


def test_the_prefilter_skips_everyday_tagging_and_keeps_the_approval() -> None:
    everyday = _file(EVERYDAY, EVERYDAY)
    assert not may_contain_watched(everyday, *watch_for())
    assert not any(_chunked(everyday, size) for size in (1, 5, 64))
    for data in (_file(EVERYDAY, APPROVAL), _file(APPROVAL, indent=2)):
        assert may_contain_watched(data, *watch_for())
        assert all(_chunked(data, size) for size in (1, 2, 7, 64, 4096))
    # The key's letters in one record and the call in another: a candidate (parsing decides).
    assert may_contain_watched(_file(EVERYDAY, {**EVERYDAY, "eventName": "GetBucketTagging", "note": KEY}))
    # A letter of the key written as an escape: parsed, as for any escaped letter.
    escaped = _file(APPROVAL).replace(b"approved", b"appr\\u006fved")
    assert json.loads(escaped)["Records"][0]["requestParameters"]["Tagging"]["TagSet"]["Tag"]["Key"] == KEY
    assert may_contain_watched(escaped, *watch_for()) and _chunked(escaped, 3)


def test_detect_finds_the_approval_and_takes_the_key_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "trail.json"
    path.write_bytes(_file(EVERYDAY, APPROVAL, EVERYDAY))
    report = scan_file(str(path))
    assert report.parsed and [json.loads(f)["verdict"] for f in report.findings] == ["approval"]
    skipped = tmp_path / "everyday.json"
    skipped.write_bytes(_file(EVERYDAY))
    assert scan_file(str(skipped)).ruled_out

    custom = tmp_path / "custom.json"
    custom.write_bytes(_file(tagging({"Key": "ok-public-until", "Value": "2030-01-31"})))
    assert scan_file(str(custom)).ruled_out  # the default key is not in it
    out, err = io.StringIO(), io.StringIO()
    assert main([str(custom), "--approval-tag", "ok-public-until", "--jobs", "1"], out, err) == 0
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["reasons"][0].startswith("sets public-access approval until 2030-02-01")
    assert "approval 1)" in err.getvalue()


# ---- replay puts the recorded tags into moto (the response Lambda reads them back) ----


@mock_aws
def test_replay_puts_and_deletes_the_recorded_tags() -> None:
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1")
    s3 = session.client("s3")
    record = tagging([{"Key": KEY, "Value": "2030-01-31"}, {"Key": "flag", "Value": True}])
    assert replay(record, session) == ["CreateBucket", "PutBucketTagging"]
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket="acme-site")["TagSet"]}
    assert tags == {KEY: "2030-01-31", "flag": "true"}
    assert replay(tagging(None, params={"bucketName": "acme-site", "Tagging": None}), session) == [
        "CreateBucket"
    ]
    delete = tagging(None, name="DeleteBucketTagging", params={"bucketName": "acme-site", "tagging": ""})
    assert replay(delete, session) == ["CreateBucket", "DeleteBucketTagging"]
    with pytest.raises(s3.exceptions.ClientError):
        s3.get_bucket_tagging(Bucket="acme-site")

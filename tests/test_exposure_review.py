"""The exposure review: window, buckets, classes, operations, data events, bounds, state and summary."""

from __future__ import annotations

import copy
import gzip
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_access_logs import OWNER, log_line

from handlers.review import exposure_review
from handlers.review.access_logs import parse_line
from handlers.review.exposure_review import (
    ACL,
    DELETE,
    DISTINCT_IP_CAP,
    GET,
    HEAD,
    IP_CAPACITY,
    KEY_CAPACITY,
    LIST,
    OTHER,
    POLICY,
    PUT,
    STATE_BUDGET_CHARS,
    ReviewAccumulator,
    TopCounter,
    classify_requester,
    event_category,
    iter_lines,
    operation_category,
    review_paths,
    summary_line,
)

BUCKET = "acme-prod-web"
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "999988887777"
START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
END = datetime(2024, 5, 1, 10, 14, tzinfo=UTC)
IN = START + timedelta(minutes=5)
SOURCES = [{"kind": "access-logs", "files": 1, "lines": 1}]
ANONYMOUS_IDENTITY = {"type": "AWSAccount", "principalId": "", "accountId": "anonymous"}
EXTERNAL_ARN = f"arn:aws:iam::{OTHER_ACCOUNT}:user/mallory"
INTERNAL_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/i-0123"


def entry(when: datetime = IN, **fields: str) -> str:
    """A log line for BUCKET at ``when``; other fields as in :func:`test_access_logs.log_line`."""
    fields.setdefault("bucket", BUCKET)
    return log_line(when=when.strftime("%d/%b/%Y:%H:%M:%S +0000"), **fields)


def event(
    name: str = "GetObject",
    *,
    when: str = "2024-05-01T10:05:00Z",
    identity: object = None,
    error: str | None = None,
    bytes_out: object = None,
    key: str = "data/report.csv",
    bucket: str = BUCKET,
    ip: str = "203.0.113.9",
) -> dict[str, Any]:
    """A CloudTrail S3 data event."""
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "eventSource": "s3.amazonaws.com",
        "eventName": name,
        "eventTime": when,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": ip,
        "userIdentity": copy.deepcopy(ANONYMOUS_IDENTITY if identity is None else identity),
        "requestParameters": {"bucketName": bucket, "key": key, "Host": f"{bucket}.s3.amazonaws.com"},
        "resources": [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"}],
        "recipientAccountId": ACCOUNT,
    }
    if error is not None:
        record["errorCode"] = error
    if bytes_out is not None:
        record["additionalEventData"] = {"bytesTransferredIn": 0, "bytesTransferredOut": bytes_out}
    return record


def accumulator() -> ReviewAccumulator:
    return ReviewAccumulator(BUCKET, ACCOUNT, START, END)


def review(lines: Iterable[str | bytes] = (), events: Iterable[Any] = (), **options: Any) -> dict[str, Any]:
    acc = accumulator()
    for line in lines:
        acc.add_log_line(line)
    for record in events:
        acc.add_data_event(record)
    options.setdefault("sources", SOURCES)
    options.setdefault("complete", True)
    options.setdefault("complete_to", END)
    return acc.report(**options)


# --- window and buckets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "counted"),
    [
        (START - timedelta(seconds=1), False),
        (START, True),
        (END, True),
        (END + timedelta(seconds=1), False),
        (END + timedelta(hours=2), False),  # delivered late, read past the end: still outside
        (START - timedelta(days=1), False),
    ],
    ids=["1s-before", "at-start", "at-end", "1s-after", "late", "day-before"],
)
def test_window_boundaries(when: datetime, counted: bool) -> None:
    report = review([entry(when)])
    assert report["requests"]["anonymous"] == (1 if counted else 0)
    assert report["outsideWindow"] == (0 if counted else 1)
    assert report["latestRecord"] == when.isoformat().replace("+00:00", "Z")


def test_window_uses_each_record_own_time_with_its_offset() -> None:
    # 11:59:59 +0200 is 09:59:59Z: before the window, though its clock reads later.
    lines = [
        log_line(bucket=BUCKET, when="01/May/2024:11:59:59 +0200"),
        log_line(bucket=BUCKET, when="01/May/2024:12:00:00 +0200"),
    ]
    report = review(lines)
    assert (report["requests"]["anonymous"], report["outsideWindow"]) == (1, 1)


def test_other_buckets_are_counted_apart() -> None:
    lines = [
        entry(bucket="acme-other"),
        entry(bucket="acme-prod-web-2"),
        entry(bucket="ACME-PROD-WEB"),
        entry(),
    ]
    report = review(lines)
    assert report["otherBuckets"] == 3
    assert report["requests"] == {"anonymous": 1, "external": 0, "internal": 0, "total": 1}


def test_window_report_shape() -> None:
    report = review([])
    assert report["schema"] == "s3-exposure-review/1"
    assert (report["bucket"], report["account"]) == (BUCKET, ACCOUNT)
    assert report["window"] == {"from": "2024-05-01T10:00:00Z", "to": "2024-05-01T10:14:00Z", "minutes": 14}
    assert (report["complete"], report["completeTo"], report["latestRecord"]) == (
        True,
        "2024-05-01T10:14:00Z",
        None,
    )
    assert report["sources"] == SOURCES
    json.dumps(report)  # serialisable as it is


def test_window_minutes_round_up() -> None:
    acc = ReviewAccumulator(BUCKET, ACCOUNT, START, START + timedelta(minutes=14, seconds=30))
    assert acc.report(sources=SOURCES, complete=False, complete_to=None)["window"]["minutes"] == 15


@pytest.mark.parametrize(
    ("bucket", "account", "start", "end"),
    [
        ("", ACCOUNT, START, END),
        (BUCKET, "12345678901", START, END),
        (BUCKET, "12345678901a", START, END),
        (BUCKET, ACCOUNT, START.replace(tzinfo=None), END),
        (BUCKET, ACCOUNT, START, END.replace(tzinfo=None)),
        (BUCKET, ACCOUNT, END, START),
    ],
    ids=["empty-bucket", "short-account", "letter-in-account", "naive-start", "naive-end", "reversed"],
)
def test_accumulator_rejects_bad_arguments(bucket: str, account: str, start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError):
        ReviewAccumulator(bucket, account, start, end)


# --- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requester", "expected"),
    [
        ("-", "anonymous"),
        ("Anonymous", "anonymous"),  # the earliest logs' spelling
        (OWNER, "internal"),
        (f"arn:aws:iam::{ACCOUNT}:user/alice", "internal"),
        (INTERNAL_ARN, "internal"),
        (f"arn:aws:iam::{ACCOUNT}:root", "internal"),
        (ACCOUNT, "internal"),
        ("svc:logging.s3.amazonaws.com", "internal"),
        ("s3.amazonaws.com", "internal"),
        ("delivery.logs.amazonaws.com", "internal"),
        (
            f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/AWSServiceRoleForTrustedAdvisor/TrustedAdvisor",
            "internal",
        ),
        (f"arn:aws:iam::{OTHER_ACCOUNT}:role/aws-service-role/access-analyzer.amazonaws.com/X", "internal"),
        (EXTERNAL_ARN, "external"),
        (
            f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/reader/{ACCOUNT}",
            "external",
        ),  # account only in the name
        (f"arn:aws:iam::{OTHER_ACCOUNT}:user/svc:x", "external"),
        (
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "external",
        ),  # another canonical id
        (OTHER_ACCOUNT, "external"),
        ("s3.amazonaws.com.evil.example", "external"),
        ("evil.example/s3.amazonaws.com", "external"),
        (f"arn:aws:sts::{ACCOUNT}", "external"),  # not a whole ARN
        (
            f"arn:aws:iam::{OTHER_ACCOUNT}:role/AWSServiceRoleForX",
            "external",
        ),  # the role itself, not its path
    ],
)
def test_classify_requester(requester: str, expected: str) -> None:
    assert classify_requester(requester, ACCOUNT, OWNER) == expected
    report = review([entry(requester=requester)])
    assert report["requests"][expected] == 1
    assert report["requests"]["total"] == 1


def test_record_and_line_paths_agree() -> None:
    lines = [
        entry(requester="-", status="403", error="AccessDenied", sent="243"),
        entry(requester=EXTERNAL_ARN, operation="REST.PUT.OBJECT", sent="-"),
        entry(requester=OWNER),
        entry(requester="-", key="caf%C3%A9.txt", sent="5000"),
        entry(START - timedelta(seconds=1)),
        entry(bucket="other"),
    ]
    by_lines = review(lines)
    acc = accumulator()
    for line in lines:
        record = parse_line(line)
        assert record is not None
        acc.add_log_record(record)
    assert acc.report(sources=SOURCES, complete=True, complete_to=END) == by_lines


# --- operations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "category", "mutating"),
    [
        ("REST.GET.OBJECT", GET, False),
        ("WEBSITE.GET.OBJECT", GET, False),
        ("REST.GET.OBJECT_TORRENT", GET, False),
        ("REST.COPY.OBJECT_GET", GET, False),
        ("REST.HEAD.OBJECT", HEAD, False),
        ("WEBSITE.HEAD.OBJECT", HEAD, False),
        ("REST.HEAD.BUCKET", HEAD, False),
        ("REST.GET.BUCKET", LIST, False),
        ("REST.GET.BUCKETVERSIONS", LIST, False),
        ("REST.GET.UPLOADS", LIST, False),
        ("REST.PUT.OBJECT", PUT, True),
        ("REST.POST.OBJECT", PUT, True),
        ("REST.POST.UPLOADS", PUT, True),
        ("REST.PUT.PART", PUT, True),
        ("REST.POST.UPLOAD", PUT, True),
        ("REST.COPY.OBJECT", PUT, True),
        ("REST.COPY.PART", PUT, True),
        ("REST.DELETE.OBJECT", DELETE, True),
        ("REST.DELETE.UPLOAD", DELETE, True),
        ("REST.POST.MULTI_OBJECT_DELETE", DELETE, True),
        ("BATCH.DELETE.OBJECT", DELETE, True),
        ("REST.GET.ACL", ACL, False),
        ("REST.PUT.ACL", ACL, True),
        ("REST.GET.OBJECT_ACL", ACL, False),
        ("REST.GET.BUCKETPOLICY", POLICY, False),
        ("REST.PUT.BUCKETPOLICY", POLICY, True),
        ("REST.DELETE.BUCKETPOLICY", POLICY, True),
        ("REST.GET.POLICY_STATUS", POLICY, False),
        ("REST.GET.VERSIONING", OTHER, False),
        ("REST.PUT.VERSIONING", OTHER, True),
        ("REST.GET.OBJECT_TAGGING", OTHER, False),
        ("REST.POST.RESTORE", OTHER, True),
        ("REST.OPTIONS.PREFLIGHT", OTHER, False),
        ("S3.EXPIRE.OBJECT", OTHER, False),
        ("nonsense", OTHER, False),
        ("", OTHER, False),
    ],
)
def test_operation_category(operation: str, category: int, mutating: bool) -> None:
    assert operation_category(operation) == (category, mutating)
    assert operation_category(operation) == (category, mutating)  # and from the memo


@pytest.mark.parametrize(
    ("name", "category", "mutating"),
    [
        ("GetObject", GET, False),
        ("SelectObjectContent", GET, False),
        ("HeadObject", HEAD, False),
        ("HeadBucket", HEAD, False),
        ("ListObjects", LIST, False),
        ("ListObjectsV2", LIST, False),
        ("ListObjectVersions", LIST, False),
        ("PutObject", PUT, True),
        ("CopyObject", PUT, True),
        ("CreateMultipartUpload", PUT, True),
        ("UploadPart", PUT, True),
        ("CompleteMultipartUpload", PUT, True),
        ("DeleteObject", DELETE, True),
        ("DeleteObjects", DELETE, True),
        ("GetObjectAcl", ACL, False),
        ("PutObjectAcl", ACL, True),
        ("PutBucketAcl", ACL, True),
        ("GetBucketPolicy", POLICY, False),
        ("PutBucketPolicy", POLICY, True),
        ("GetObjectTagging", OTHER, False),
        ("RestoreObject", OTHER, True),
        ("SomethingNew", OTHER, True),  # unknown: better read as a write than missed
    ],
)
def test_event_category(name: str, category: int, mutating: bool) -> None:
    assert event_category(name) == (category, mutating)


def test_breakdown_counts_by_operation_and_outcome() -> None:
    lines = (
        [
            entry(requester="-", ip=f"198.51.100.{n % 5}", status="403", error="AccessDenied", sent="243")
            for n in range(37)
        ]
        + [entry(requester="-", operation="REST.HEAD.OBJECT", sent="-", ip="198.51.100.9")] * 2
        + [entry(requester="-", operation="REST.GET.BUCKET", sent="5000", key="-", ip="198.51.100.9")]
        + [
            entry(
                requester="-", operation="WEBSITE.GET.OBJECT", key="index.html", sent="800", ip="198.51.100.9"
            )
        ]
        * 3
    )
    anonymous = review(lines)["anonymous"]
    assert anonymous["requests"] == 43
    assert (anonymous["succeeded"], anonymous["failed"]) == (6, 37)
    assert (anonymous["succeededReads"], anonymous["succeededWrites"]) == (6, 0)
    assert anonymous["byOperation"] == {
        "GET": 40,
        "HEAD": 2,
        "LIST": 1,
        "PUT": 0,
        "DELETE": 0,
        "ACL": 0,
        "POLICY": 0,
        "OTHER": 0,
    }
    assert anonymous["succeededByOperation"]["GET"] == 3
    assert anonymous["bytesSent"] == 5000 + 3 * 800  # error bodies are not data
    assert (anonymous["distinctIps"], anonymous["distinctIpsAtLeast"]) == (6, False)
    assert anonymous["topIps"] == [
        {"ip": "198.51.100.0", "requests": 8},
        {"ip": "198.51.100.1", "requests": 8},
        {"ip": "198.51.100.2", "requests": 7},
        {"ip": "198.51.100.3", "requests": 7},
        {"ip": "198.51.100.4", "requests": 7},
        {"ip": "198.51.100.9", "requests": 6},
    ]
    assert anonymous["objectsMostRead"] == [{"key": "index.html", "reads": 3, "bytes": 2400}]
    assert "principals" not in anonymous


def test_top_lists_are_ranked_and_cut_at_ten() -> None:
    lines = []
    for n in range(15):
        lines += [
            entry(
                requester=f"arn:aws:iam::{OTHER_ACCOUNT}:user/u{n:02d}",
                ip=f"203.0.113.{n}",
                key=f"k{n:02d}",
                sent="10",
            )
        ] * (n + 1)
    external = review(lines)["external"]
    assert external["requests"] == sum(range(1, 16))
    assert [row["ip"] for row in external["topIps"]] == [f"203.0.113.{n}" for n in range(14, 4, -1)]
    assert [row["requests"] for row in external["topIps"]] == list(range(15, 5, -1))
    assert external["objectsMostRead"][0] == {"key": "k14", "reads": 15, "bytes": 150}
    assert len(external["objectsMostRead"]) == 10
    assert external["principals"][0] == {
        "principal": f"arn:aws:iam::{OTHER_ACCOUNT}:user/u14",
        "requests": 15,
    }
    assert len(external["principals"]) == 10
    assert external["distinctIps"] == 15


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], "no-outside-access"),
        (
            [entry(requester=OWNER), entry(requester=INTERNAL_ARN, operation="REST.PUT.OBJECT")],
            "no-outside-access",
        ),
        ([entry(START - timedelta(seconds=1)), entry(bucket="other")], "no-outside-access"),
        ([entry(status="403", error="AccessDenied")] * 3, "attempted-only"),
        ([entry(operation="REST.PUT.OBJECT", status="403", error="AccessDenied")], "attempted-only"),
        ([entry()], "read"),
        ([entry(operation="REST.HEAD.OBJECT")], "read"),
        ([entry(operation="REST.GET.BUCKET")], "read"),
        ([entry(operation="REST.GET.ACL")], "read"),
        ([entry(operation="REST.GET.OBJECT", status="304")], "read"),
        ([entry(operation="REST.PUT.OBJECT", status="403"), entry()], "read"),
        ([entry(requester=EXTERNAL_ARN, operation="REST.PUT.OBJECT")], "written"),
        ([entry(operation="REST.DELETE.OBJECT", status="204")], "written"),
        ([entry(operation="REST.PUT.ACL")], "written"),
        ([entry(operation="REST.PUT.BUCKETPOLICY")], "written"),
        ([entry(), entry(operation="REST.POST.UPLOADS")], "written"),
        ([entry(status="-")], "read"),  # an unknown status is not taken as a failure
    ],
)
def test_verdict(lines: list[str], expected: str) -> None:
    assert review(lines)["verdict"] == expected


@pytest.mark.parametrize(
    "sources",
    [[], [{"kind": "access-logs", "files": 0, "lines": 0}], [{"kind": "data-events", "events": 0}]],
    ids=["none", "no-lines", "no-events"],
)
def test_verdict_without_evidence(sources: list[dict[str, Any]]) -> None:
    assert review([entry()], sources=sources)["verdict"] == "no-evidence"


# --- data events ------------------------------------------------------------------------------


def test_anonymous_get_object_event() -> None:
    report = review(events=[event(bytes_out=52_000)])
    anonymous = report["anonymous"]
    assert report["requests"] == {"anonymous": 1, "external": 0, "internal": 0, "total": 1}
    assert anonymous["byOperation"]["GET"] == 1
    assert anonymous["bytesSent"] == 52_000
    assert anonymous["topIps"] == [{"ip": "203.0.113.9", "requests": 1}]
    assert anonymous["objectsMostRead"] == [{"key": "data/report.csv", "reads": 1, "bytes": 52_000}]
    assert report["verdict"] == "read"


def test_external_put_object_event() -> None:
    identity = {"type": "IAMUser", "accountId": OTHER_ACCOUNT, "arn": EXTERNAL_ARN, "principalId": "AIDA"}
    report = review(events=[event("PutObject", identity=identity)])
    assert report["requests"]["external"] == 1
    assert report["external"]["byOperation"]["PUT"] == 1
    assert report["external"]["principals"] == [{"principal": EXTERNAL_ARN, "requests": 1}]
    assert report["verdict"] == "written"


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (ANONYMOUS_IDENTITY, "anonymous"),
        ({"type": "AWSAccount", "principalId": "ANONYMOUS_PRINCIPAL", "accountId": ""}, "anonymous"),
        ({"type": "AssumedRole", "accountId": ACCOUNT, "arn": INTERNAL_ARN}, "internal"),
        ({"type": "AWSService", "invokedBy": "s3.amazonaws.com"}, "internal"),
        ({"type": "AWSAccount", "accountId": ACCOUNT, "principalId": "AIDA"}, "internal"),
        ({"type": "AWSAccount", "accountId": OTHER_ACCOUNT, "principalId": "AIDA"}, "external"),
        ({"type": "IAMUser", "accountId": ACCOUNT, "arn": EXTERNAL_ARN}, "external"),  # the ARN decides
        ({}, "external"),
        ("anonymous", "external"),  # unreadable: counted as an outsider, never hidden as internal
        (["AWSAccount"], "external"),
        (None, "anonymous"),  # event() puts the anonymous identity in for None
    ],
)
def test_data_event_identity(identity: object, expected: str) -> None:
    report = review(events=[event(identity=identity)])
    assert report["requests"][expected] == 1
    assert report["requests"]["total"] == 1


def test_data_event_filters_and_errors() -> None:
    events = [
        event(error="AccessDenied", bytes_out=0),
        event(bucket="someone-else"),
        event(when="2024-05-01T09:59:59Z"),
        event(when="2024-05-01T10:14:01Z"),
        event(when="2024-05-01T10:14:00.000001Z"),
        event(when="2024-05-01T12:14:00+02:00"),  # = END: counted
        event(when="2024-05-01T10:05:00"),  # no zone: UTC
        {**event(), "eventSource": "ec2.amazonaws.com"},
        {**event(), "eventTime": None},
        {k: v for k, v in event().items() if k != "eventName"},
        {"detail-type": "AWS API Call via CloudTrail", "detail": event(bytes_out=7)},
    ]
    report = review(events=events)
    assert report["anonymous"]["requests"] == 4
    assert (report["anonymous"]["failed"], report["anonymous"]["succeeded"]) == (1, 3)
    assert report["anonymous"]["bytesSent"] == 7
    assert report["otherBuckets"] == 1
    assert report["outsideWindow"] == 3
    assert report["malformedEvents"] == 3


def test_bucket_from_resources_when_request_parameters_lack_it() -> None:
    record = event()
    record["requestParameters"] = None
    report = review(events=[record])
    assert report["anonymous"]["requests"] == 1
    assert report["anonymous"]["objectsMostRead"] == []  # no key: nothing to name


def with_field(path: tuple[str, ...], value: object) -> dict[str, Any]:
    record = event(bytes_out=100)
    target: Any = record
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return record


@pytest.mark.parametrize(
    ("path", "value", "anonymous", "malformed"),
    [
        (("userIdentity",), "AWSAccount", 0, 0),
        (("userIdentity",), 42, 0, 0),
        (("userIdentity", "accountId"), ["anonymous"], 0, 0),
        (("additionalEventData",), ["bytesTransferredOut", 100], 1, 0),
        (("additionalEventData",), "100", 1, 0),
        (("additionalEventData", "bytesTransferredOut"), "abc", 1, 0),
        (("additionalEventData", "bytesTransferredOut"), -5, 1, 0),
        (("additionalEventData", "bytesTransferredOut"), float("inf"), 1, 0),
        (("additionalEventData", "bytesTransferredOut"), float("nan"), 1, 0),
        (("additionalEventData", "bytesTransferredOut"), True, 1, 0),
        (("additionalEventData", "bytesTransferredOut"), 10**40, 1, 0),
        (("additionalEventData", "bytesTransferredOut"), {"n": 1}, 1, 0),
        (("requestParameters",), "bucketName=acme-prod-web", 1, 0),
        (("requestParameters",), ["acme-prod-web"], 1, 0),
        (("requestParameters", "bucketName"), ["acme-prod-web"], 1, 0),
        (("requestParameters", "key"), {"k": 1}, 1, 0),
        (("resources",), "arn:aws:s3:::acme-prod-web", 0, 1),
        (("sourceIPAddress",), {"ip": 1}, 1, 0),
        (("sourceIPAddress",), "x" * 10_000, 1, 0),
        (("errorCode",), {"code": 1}, 1, 0),
        (("eventName",), 7, 0, 1),
        (("eventTime",), 1714557900, 0, 1),
        (("eventTime",), "not a time", 0, 1),
        (("eventTime",), "9999-12-31T23:59:59-23:59", 0, 1),
        (("eventTime",), "2024-05-01T10:05:00Z" * 100, 0, 1),
    ],
)
def test_malformed_data_event_shapes_do_not_crash(
    path: tuple[str, ...], value: object, anonymous: int, malformed: int
) -> None:
    """Every field is attacker-written; the record is counted somewhere, never raised."""
    record = with_field(path, value)
    if path == ("resources",):
        record["requestParameters"] = {}
    report = review(events=[record])
    assert report["anonymous"]["requests"] == anonymous
    assert report["malformedEvents"] == malformed
    assert report["requests"]["total"] + report["malformedEvents"] == 1
    json.dumps(report)


def test_event_byte_counts_are_sanitised() -> None:
    values: list[object] = [100, "250", -5, float("inf"), True, 10**40, 12.9]
    report = review(events=[event(bytes_out=value) for value in values])
    assert report["anonymous"]["bytesSent"] == 100 + 250 + 0 + 0 + 0 + 2**53 + 12


@pytest.mark.parametrize("record", [None, "event", 42, [event()], {"detail": "x"}, {}])
def test_non_records_are_malformed_events(record: Any) -> None:
    assert review(events=[record])["malformedEvents"] == 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "userIdentity",
        "additionalEventData",
        "requestParameters",
        "resources",
        "eventTime",
        "eventName",
        "sourceIPAddress",
        "errorCode",
        "eventSource",
        "detail",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(FIELDS, JSON, max_size=6))
def test_data_events_never_raise(overrides: dict[str, Any]) -> None:
    report = review(events=[{**event(bytes_out=1), **overrides}])
    assert (
        report["requests"]["total"]
        + report["malformedEvents"]
        + report["otherBuckets"]
        + report["outsideWindow"]
        == 1
    )
    json.dumps(report)


# --- malformed lines --------------------------------------------------------------------------


def test_malformed_lines_are_counted() -> None:
    lines: list[str | bytes] = [
        b"garbage",
        b"\xff\xfe\x00",
        "",
        entry()[:60],
        entry().encode() + b"\xff",  # invalid UTF-8 in AWS-written trailing fields: malformed
        entry(user_agent='"agent"').encode().replace(b"agent", b"ag\xffent"),  # in the user agent: kept
        entry(),
    ]
    report = review(lines)
    assert report["malformedLines"] == 5
    assert report["requests"]["anonymous"] == 2


# --- bounds -----------------------------------------------------------------------------------


def test_top_k_bound_with_100k_distinct_ips() -> None:
    acc = accumulator()
    heavy = "198.51.100.77"
    template = entry(ip="IPADDR")
    sizes = []
    for n in range(100_000):
        acc.add_log_line(template.replace("IPADDR", f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"))
        if n % 20 == 0:
            acc.add_log_line(template.replace("IPADDR", heavy))
        if n % 997 == 0:
            sizes.append(len(acc.anonymous.ips.counts))
    sizes.append(len(acc.anonymous.ips.counts))
    assert max(sizes) <= IP_CAPACITY
    assert acc.anonymous.distinct is None  # the exact set is dropped past its cap
    anonymous = acc.report(sources=SOURCES, complete=True, complete_to=END)["anonymous"]
    assert anonymous["requests"] == 105_000
    assert (anonymous["distinctIps"], anonymous["distinctIpsAtLeast"]) == (DISTINCT_IP_CAP, True)
    assert anonymous["approximateTopCounts"] is True
    top = anonymous["topIps"][0]
    assert top["ip"] == heavy
    # Misra-Gries: low by at most N / (capacity // 2 + 1).
    assert 5000 - 105_000 / (IP_CAPACITY // 2 + 1) <= top["requests"] <= 5000
    assert len(json.dumps(acc.to_state())) <= STATE_BUDGET_CHARS


def test_key_counter_bound() -> None:
    acc = accumulator()
    for n in range(20_000):
        acc.add_log_line(entry(key=f"data/part-{n:06d}.parquet"))
    assert len(acc.anonymous.objects.counts) <= KEY_CAPACITY
    assert acc.anonymous.objects.error > 0


def test_state_stays_within_budget_with_long_distinct_values() -> None:
    acc = accumulator()
    for n in range(3000):
        acc.add_log_line(entry(key=f"{n:05d}" + "k" * 1000, ip=f"10.0.{n >> 8}.{n & 255}"))
        acc.add_log_line(entry(requester=f"arn:aws:iam::{OTHER_ACCOUNT}:user/{n:05d}" + "p" * 400))
    state = acc.to_state()
    assert len(json.dumps(state, separators=(",", ":"))) <= STATE_BUDGET_CHARS
    restored = ReviewAccumulator.from_state(json.loads(json.dumps(state)))
    report = restored.report(sources=SOURCES, complete=True, complete_to=END)
    assert report["requests"] == {"anonymous": 3000, "external": 3000, "internal": 0, "total": 6000}
    assert report["anonymous"]["approximateTopCounts"] is True
    assert (report["anonymous"]["distinctIps"], report["anonymous"]["distinctIpsAtLeast"]) == (
        DISTINCT_IP_CAP,
        True,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=400), st.lists(st.integers(0, 40), max_size=400))
def test_top_counter_guarantee(first: list[int], second: list[int]) -> None:
    """Each kept count is low by at most ``error``, and ``error <= N / (capacity//2 + 1)``, merged too."""
    capacity = 8
    a, b = TopCounter(capacity), TopCounter(capacity)
    for value in first:
        a.add(str(value))
    for value in second:
        b.add(str(value))
    a.merge(b)
    truth = Counter(str(value) for value in first + second)
    assert len(a.counts) <= capacity
    assert a.error <= len(first + second) / (capacity // 2 + 1)
    for item, count in truth.items():
        estimate = a.counts.get(item, 0)
        assert estimate <= count <= estimate + a.error


def test_top_counter_exact_below_capacity() -> None:
    counter = TopCounter(8)
    for value, times in (("a", 3), ("b", 1), ("c", 3)):
        for _ in range(times):
            counter.add(value, weight=10)
    assert counter.top(2) == [("a", 3, 30), ("c", 3, 30)]
    assert counter.error == 0


def test_long_keys_stay_distinct_when_cut() -> None:
    long_a, long_b = "a" * 5000 + "1", "a" * 5000 + "2"
    report = review(events=[event(key=long_a, bytes_out=1), event(key=long_b, bytes_out=1)])
    keys = [row["key"] for row in report["anonymous"]["objectsMostRead"]]
    assert len(keys) == 2 and len(set(keys)) == 2
    assert all(len(key) <= exposure_review.MAX_KEY_CHARS for key in keys)


def test_long_values_from_log_lines_are_bounded_and_state_reloads() -> None:
    acc = accumulator()
    acc.add_log_line(entry(ip="1" * 100, key="%41" * 2000, requester="-"))
    acc.add_log_line(entry(ip="2" * 100, requester=f"arn:aws:iam::{OTHER_ACCOUNT}:user/" + "u" * 2000))
    restored = ReviewAccumulator.from_state(json.loads(json.dumps(acc.to_state())))
    report = restored.report(sources=SOURCES, complete=True, complete_to=END)
    assert report == acc.report(sources=SOURCES, complete=True, complete_to=END)
    (read,) = report["anonymous"]["objectsMostRead"]
    assert len(read["key"]) == exposure_review.MAX_KEY_CHARS and read["key"].startswith("AAAA")
    assert len(report["anonymous"]["topIps"][0]["ip"]) == exposure_review.MAX_IP_CHARS
    assert len(report["external"]["principals"][0]["principal"]) == exposure_review.MAX_PRINCIPAL_CHARS


# --- merge and state --------------------------------------------------------------------------


def corpus() -> list[tuple[str, Any]]:
    """A mix of everything a review meets, as ("line", text) and ("event", record)."""
    items: list[tuple[str, Any]] = []
    for n in range(60):
        when = START + timedelta(seconds=n * 13)
        items.append(("line", entry(when, ip=f"198.51.100.{n % 7}", key=f"k{n % 5}", sent=str(100 + n))))
        items.append(("line", entry(when, requester=EXTERNAL_ARN, operation="REST.PUT.OBJECT", sent="-")))
        items.append(("line", entry(when, requester=OWNER, operation="REST.GET.BUCKET")))
        items.append(("line", entry(when, status="403", error="AccessDenied", ip=f"203.0.113.{n % 3}")))
        if n % 10 == 0:
            items.append(("line", entry(END + timedelta(minutes=n + 1))))
            items.append(("line", entry(bucket="other-bucket")))
            items.append(("line", "garbage " * n))
            items.append(("event", event(bytes_out=n, ip=f"192.0.2.{n}")))
            items.append(("event", {"eventSource": "s3.amazonaws.com"}))
    return items


def feed(acc: ReviewAccumulator, items: list[tuple[str, Any]]) -> ReviewAccumulator:
    for kind, item in items:
        if kind == "line":
            acc.add_log_line(item)
        else:
            acc.add_data_event(item)
    return acc


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_merge_and_state_round_trip_equal_a_single_pass(parts: int) -> None:
    items = corpus()
    single = feed(accumulator(), items).report(sources=SOURCES, complete=True, complete_to=END)
    chunks = [items[index::parts] for index in range(parts)]
    states = [json.loads(json.dumps(feed(accumulator(), chunk).to_state())) for chunk in chunks]
    merged = ReviewAccumulator.from_state(states[0])
    for state in states[1:]:
        merged.merge(ReviewAccumulator.from_state(state))
    assert merged.report(sources=SOURCES, complete=True, complete_to=END) == single
    direct = feed(accumulator(), chunks[0])
    for chunk in chunks[1:]:
        direct.merge(feed(accumulator(), chunk))
    assert direct.report(sources=SOURCES, complete=True, complete_to=END) == single
    assert single["requests"] == {"anonymous": 126, "external": 60, "internal": 60, "total": 246}
    assert (single["malformedLines"], single["malformedEvents"], single["outsideWindow"]) == (6, 6, 6)


def test_state_is_compact() -> None:
    state = feed(accumulator(), corpus()).to_state()
    assert len(json.dumps(state, separators=(",", ":"))) < 2500


def test_merge_keeps_the_larger_distinct_floor() -> None:
    """A side that only knows "at least n" (past the cap, or trimmed to the budget) merged with one
    that knows more: the larger count holds, whichever side merges into which."""
    few, more = accumulator(), accumulator()
    few.add_log_line(entry(ip="198.51.100.1"))
    for n in range(3):
        more.add_log_line(entry(ip=f"10.0.0.{n}"))
    trimmed = few.to_state()
    trimmed["anon"]["dx"], trimmed["anon"]["d"] = True, 1  # as a state trimmed to the budget says it
    for first, second in ((trimmed, more.to_state()), (more.to_state(), trimmed)):
        merged = ReviewAccumulator.from_state(first)
        merged.merge(ReviewAccumulator.from_state(second))
        anonymous = merged.report(sources=SOURCES, complete=True, complete_to=END)["anonymous"]
        assert (anonymous["distinctIps"], anonymous["distinctIpsAtLeast"]) == (3, True)


def test_merge_refuses_another_window() -> None:
    with pytest.raises(ValueError):
        accumulator().merge(ReviewAccumulator(BUCKET, ACCOUNT, START, END + timedelta(seconds=1)))
    with pytest.raises(ValueError):
        accumulator().merge(ReviewAccumulator("other", ACCOUNT, START, END))


def valid_state() -> dict[str, Any]:
    return json.loads(json.dumps(feed(accumulator(), corpus()).to_state()))


def set_path(state: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    target: Any = state
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return state


def move_successes(state: dict[str, Any], part: str, source: int, target: int) -> dict[str, Any]:
    """Successes moved to a category with fewer requests: the sums still add up, the rows do not."""
    ok = state[part]["ok"]
    ok[source], ok[target] = ok[source] - 1, ok[target] + 1
    assert ok[target] > state[part]["op"][target]
    return state


GARBAGE: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
    ("not-an-object", lambda s: ["state"]),
    ("none", lambda s: None),
    ("empty", lambda s: {}),
    ("version", lambda s: set_path(s, "v", 2)),
    ("account", lambda s: set_path(s, "account", "1234")),
    ("bucket", lambda s: set_path(s, "bucket", "")),
    ("bucket-type", lambda s: set_path(s, "bucket", 7)),
    ("naive-from", lambda s: set_path(s, "from", "2024-05-01T10:00:00")),
    ("from-type", lambda s: set_path(s, "from", 1714557600)),
    ("reversed", lambda s: set_path(s, "to", "2024-05-01T09:00:00Z")),
    ("latest", lambda s: set_path(s, "latest", "yesterday")),
    ("n-short", lambda s: set_path(s, "n", [1, 2, 3])),
    ("n-negative", lambda s: set_path(s, "n.0", -1)),
    ("n-bool", lambda s: set_path(s, "n.0", True)),
    ("n-float", lambda s: set_path(s, "n.0", 1.5)),
    ("anon-missing", lambda s: {k: v for k, v in s.items() if k != "anon"}),
    ("anon-list", lambda s: set_path(s, "anon", [])),
    ("counts-disagree", lambda s: set_path(s, "anon.n.0", 10**6)),
    ("reads-writes-disagree", lambda s: set_path(s, "anon.n.4", s["anon"]["n"][4] + 1)),
    ("by-operation-disagrees", lambda s: set_path(s, "anon.op.7", s["anon"]["op"][7] + 1)),
    ("more-ok-than-requests", lambda s: move_successes(s, "ext", PUT, OTHER)),
    ("ip-counts-exceed-requests", lambda s: set_path(s, "anon.ip.c.0.1", 10**6)),
    ("reads-exceed-gets", lambda s: set_path(s, "anon.obj.c.0.1", 10**6)),
    ("op-short", lambda s: set_path(s, "anon.op", [0] * 7)),
    ("op-string", lambda s: set_path(s, "anon.ok.0", "1")),
    ("ip-rows", lambda s: set_path(s, "anon.ip.c", "198.51.100.1")),
    ("ip-row-shape", lambda s: set_path(s, "anon.ip.c.0", ["198.51.100.1", 1, 2, 3])),
    ("ip-value-type", lambda s: set_path(s, "anon.ip.c.0", [7, 1])),
    ("ip-zero-count", lambda s: set_path(s, "anon.ip.c.0", ["198.51.100.1", 0])),
    ("ip-too-long", lambda s: set_path(s, "anon.ip.c.0", ["1" * 100, 1])),
    ("ip-duplicate", lambda s: set_path(s, "anon.ip.c", [["a", 1], ["a", 2]])),
    ("ip-too-many", lambda s: set_path(s, "anon.ip.c", [[str(n), 1] for n in range(IP_CAPACITY + 1)])),
    ("ip-error", lambda s: set_path(s, "anon.ip.e", -1)),
    ("obj-weight", lambda s: set_path(s, "anon.obj.c.0", ["k", 1, -3])),
    ("distinct-type", lambda s: set_path(s, "anon.d", [1, 2])),
    ("distinct-too-many", lambda s: set_path(s, "anon.d", [str(n) for n in range(DISTINCT_IP_CAP + 1)])),
    ("dx-not-true", lambda s: set_path(s, "anon.dx", "yes")),
    ("dx-with-list", lambda s: set_path(s, "anon.dx", True)),
    ("dx-count-too-big", lambda s: set_path(set_path(s, "anon.dx", True), "anon.d", DISTINCT_IP_CAP + 1)),
]


@pytest.mark.parametrize("mutate", [m for _, m in GARBAGE], ids=[name for name, _ in GARBAGE])
def test_from_state_rejects_garbage(mutate: Callable[[dict[str, Any]], object]) -> None:
    ReviewAccumulator.from_state(valid_state())  # the base is fine
    with pytest.raises(ValueError):
        ReviewAccumulator.from_state(mutate(valid_state()))


def paths_of(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in [prefix + key, *paths_of(item, prefix + key + ".")]]
    if isinstance(value, list):
        return [
            p for i, item in enumerate(value) for p in [prefix + str(i), *paths_of(item, f"{prefix}{i}.")]
        ]
    return []


STATE_PATHS = paths_of(valid_state())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STATE_PATHS), JSON)
def test_from_state_raises_only_value_error(path: str, value: object) -> None:
    state = set_path(copy.deepcopy(valid_state()), path, value)
    try:
        restored = ReviewAccumulator.from_state(state)
    except ValueError:
        return
    json.dumps(restored.report(sources=SOURCES, complete=False, complete_to=None))


# --- summary ----------------------------------------------------------------------------------


def test_summary_nothing_seen() -> None:
    report = review([entry(requester=OWNER)], complete_to=datetime(2024, 5, 1, 10, 42, tzinfo=UTC))
    assert summary_line(report) == (
        "exposure review: 0 anonymous requests during the 14-minute window (access logs complete to 10:42Z)"
    )


def test_summary_no_sources() -> None:
    assert summary_line(review([entry()], sources=[])) == (
        "exposure review: cannot tell whether data was read: server access logging is off and the trail "
        "records no data events for this bucket"
    )


def test_summary_outside_access() -> None:
    lines = [
        entry(
            ip=f"198.51.100.{n % 5}",
            key="evil%0A%3C%21channel%3E%20%40here",  # decoded: a newline, a mention
            sent="3000000",
            user_agent='"<!here> \\"x\\""',
        )
        for n in range(36)
    ]
    lines.append(entry(ip="198.51.100.1", key="db.sql", sent="12000000"))
    lines.append(
        entry(requester=EXTERNAL_ARN, ip="203.0.113.5", status="403", error="AccessDenied", sent="243")
    )
    lines.append(entry(requester=EXTERNAL_ARN, ip="203.0.113.5", operation="REST.PUT.OBJECT", sent="-"))
    report = review(lines, complete_to=datetime(2024, 5, 1, 10, 42, tzinfo=UTC))
    line = summary_line(report)
    assert line == (
        "exposure review: 37 anonymous GETs from 5 IPs, 120 MB out; 2 external requests (1 GET, 1 PUT) "
        "from 1 IP, 1 succeeded; verdict written; 14-minute window (access logs complete to 10:42Z)"
    )
    assert line.isascii()
    assert "channel" not in line and "mallory" not in line and "198.51" not in line


@pytest.mark.parametrize(
    ("complete", "complete_to", "expected"),
    [
        (True, None, "(access logs complete)"),
        (
            False,
            datetime(2024, 5, 1, 10, 9, tzinfo=UTC),
            "(access logs only up to 10:09Z, may be incomplete)",
        ),
        (False, None, "(access logs may be incomplete)"),
        (True, datetime(2024, 5, 2, 1, 0, tzinfo=UTC), "(access logs complete to 2024-05-02 01:00Z)"),
    ],
)
def test_summary_coverage(complete: bool, complete_to: datetime | None, expected: str) -> None:
    assert summary_line(review([], complete=complete, complete_to=complete_to)).endswith(expected)


def test_summary_attempts_only_and_at_least() -> None:
    acc = accumulator()
    for n in range(DISTINCT_IP_CAP + 5):
        acc.add_log_line(entry(ip=f"10.1.{n >> 8}.{n & 255}", status="403", error="AccessDenied", sent="243"))
    acc.add_log_line("garbage")
    line = summary_line(acc.report(sources=SOURCES, complete=True, complete_to=None))
    assert line == (
        f"exposure review: {DISTINCT_IP_CAP + 5} anonymous GETs from at least {DISTINCT_IP_CAP} IPs, "
        "all failed; verdict attempted-only; 14-minute window (access logs complete); "
        "1 malformed record skipped"
    )


def test_summary_hints_at_a_wrong_bucket() -> None:
    line = summary_line(review([entry(bucket="acme-prod-web-typo")] * 3, complete=False, complete_to=None))
    assert line.endswith("; no record of this bucket at all (3 of other buckets)")


def test_summary_when_the_logs_hold_nothing() -> None:
    report = review([], sources=[{"kind": "access-logs", "files": 2, "lines": 0}])
    assert summary_line(report) == (
        "exposure review: cannot tell whether data was read: the logs given hold no record (2 files read)"
    )


# --- reading files ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 5, 64, 1 << 20])
def test_iter_lines_across_chunks(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(exposure_review, "READ_CHUNK", chunk)
    monkeypatch.setattr(exposure_review, "MAX_LINE_CHARS", 20)
    data = b"one\ntwo\r\n\n\r\n" + b"x" * 50 + b"\nthree\n" + b"y" * 21 + b"\n" + b"z" * 20 + b"\nlast"
    assert list(iter_lines(io.BytesIO(data))) == [
        b"one",
        b"two\r",
        b"x" * 21,  # cut just past the limit, so the parser refuses it; the rest is skipped
        b"three",
        b"y" * 21,
        b"z" * 20,
        b"last",
    ]


def test_review_paths_reads_plain_gzip_and_directories(tmp_path: Path) -> None:
    (tmp_path / "logs" / "2024" / "05").mkdir(parents=True)
    plain = tmp_path / "logs" / "2024-05-01-10-15-00-ABCDEF"
    plain.write_text("\n".join([entry(), entry(requester=EXTERNAL_ARN), "garbage"]) + "\n")
    packed = tmp_path / "logs" / "2024" / "05" / "2024-05-01-10-30-00-123456"  # gzip without .gz
    packed.write_bytes(gzip.compress((entry(END + timedelta(minutes=20)) + "\n").encode()))
    (tmp_path / "logs" / ".hidden").write_text(entry() + "\n")
    single = tmp_path / "more.log.gz"
    single.write_bytes(
        gzip.compress(entry().encode()) + gzip.compress(b"\n" + entry().encode())
    )  # two members
    report = review_paths([tmp_path / "logs", single], BUCKET, ACCOUNT, START, END)
    assert report["sources"] == [{"kind": "access-logs", "files": 3, "lines": 6}]
    assert report["requests"] == {"anonymous": 3, "external": 1, "internal": 0, "total": 4}
    assert (report["malformedLines"], report["outsideWindow"]) == (1, 1)
    assert (report["complete"], report["completeTo"]) == (True, "2024-05-01T10:34:00Z")


def test_review_paths_incomplete_without_a_later_record(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text(entry() + "\n")
    report = review_paths([path], BUCKET, ACCOUNT, START, END)
    assert (report["complete"], report["completeTo"]) == (False, "2024-05-01T10:05:00Z")


def test_review_paths_reports_damaged_gzip(tmp_path: Path) -> None:
    whole = gzip.compress(("\n".join([entry()] * 2000) + "\n" + entry(END + timedelta(hours=1))).encode())
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    report = review_paths([path], BUCKET, ACCOUNT, START, END)
    (source,) = report["sources"]
    assert source["unreadableFiles"] == 1
    assert source["unreadable"] == [
        f"{path}: Compressed file ended before the end-of-stream marker was reached"
    ]
    assert 0 < source["lines"] < 2001
    assert report["complete"] is False


def test_review_paths_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        review_paths([tmp_path / "nope"], BUCKET, ACCOUNT, START, END)

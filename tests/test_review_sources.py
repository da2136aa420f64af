"""The exposure review's evidence readers, against moto: access logs in both key formats, trail data events.

Log objects are written into the mocked target bucket as S3 would deliver them (some late, some
of other buckets, some gzipped, some damaged); each test checks exact counts in the report.
The helpers here are shared with tests/test_review_handler.py.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from moto import mock_aws
from moto.sns import models as moto_sns_models
from response_fixtures import Alert, client_error

from handlers.detection.rules.detector_context import DetectorContext
from handlers.response import aws_clients
from handlers.review.exposure_review import ReviewAccumulator
from handlers.review.review_sources import (
    ACCESS_LOGS,
    DATA_EVENTS,
    Budget,
    Cursor,
    Plan,
    Source,
    TooLarge,
    Window,
    is_bucket_data_event,
    key_time,
    listings,
    open_stream,
    plan_sources,
    read_sources,
    trail_coverage,
)

ACCOUNT = "111122223333"
REGION = "us-east-1"
TABLE = "s3-exposure-idempotency"
OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
BUCKET = "acme-public-data"
TARGET = "acme-access-logs"
TRAIL = "s3-exposure-trail"
TRAIL_BUCKET = "acme-trail-logs"
OUTSIDER = "arn:aws:iam::999988887777:user/eve"
INSIDER = f"arn:aws:iam::{ACCOUNT}:user/alice"
NON_ASCII_KEY = "données/été.txt"
ORG = "o-abcdefghij"

# The window: 10:00-11:00 UTC three days ago (so every late-delivery margin has passed).
DAY = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
START = DAY.replace(hour=10)
END = DAY.replace(hour=11)


# ---- building log data -----------------------------------------------------------------------------------


def log_time(when: datetime) -> str:
    return when.strftime("%d/%b/%Y:%H:%M:%S +0000")


def log_line(
    when: datetime,
    *,
    bucket: str = BUCKET,
    ip: str = "203.0.113.7",
    requester: str = "-",
    operation: str = "REST.GET.OBJECT",
    key: str = "photos/cat.jpg",
    status: int = 200,
    sent: int = 1000,
) -> str:
    """One server access log line (the key URL-encoded, as S3 logs it)."""
    raw_key = quote(key, safe="/") if key != "-" else "-"
    error, body = ("-", sent) if status < 400 else ("AccessDenied", 243)
    method = operation.split(".")[1] if operation.count(".") >= 2 else "GET"
    return (
        f"{OWNER} {bucket} [{log_time(when)}] {ip} {requester} 3E57427F3EXAMPLE {operation} {raw_key} "
        f'"{method} /{bucket}/{raw_key} HTTP/1.1" {status} {error} {body} {sent} 7 3 '
        f'"-" "curl/8.5.0" - HOSTID= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader '
        f"{bucket}.s3.{REGION}.amazonaws.com TLSv1.2 - -"
    )


def simple_key(prefix: str, delivered: datetime, unique: str = "A1B2C3D4E5F60718") -> str:
    return f"{prefix}{delivered:%Y-%m-%d-%H-%M-%S}-{unique}"


def partitioned_key(
    prefix: str, folder_day: datetime, stamp: datetime, unique: str = "A1B2C3D4E5F60718"
) -> str:
    return f"{prefix}{ACCOUNT}/{REGION}/{BUCKET}/{folder_day:%Y/%m/%d}/{stamp:%Y-%m-%d-%H-%M-%S}-{unique}"


def put_object(world: World, bucket: str, key: str, lines: list[str], *, gz: bool = False) -> None:
    data = ("\n".join(lines) + "\n").encode()
    world.s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(data) if gz else data)


def enable_logging(world: World, bucket: str = BUCKET, target: str = TARGET, prefix: str = "logs/") -> None:
    """The reviewed bucket logging to ``target``/``prefix`` (moto needs the log-delivery policy)."""
    s3 = world.s3
    for name in (bucket, target):
        s3.create_bucket(Bucket=name)
    s3.put_bucket_policy(
        Bucket=target,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "logging.s3.amazonaws.com"},
                        "Action": ["s3:PutObject"],
                        "Resource": f"arn:aws:s3:::{target}/*",
                    }
                ],
            }
        ),
    )
    s3.put_bucket_logging(
        Bucket=bucket,
        BucketLoggingStatus={"LoggingEnabled": {"TargetBucket": target, "TargetPrefix": prefix}},
    )


def key_format(world: World, date_source: str) -> None:
    """Make GetBucketLogging also say PartitionedPrefix (moto does not return TargetObjectKeyFormat)."""

    def answer(params: dict[str, Any]) -> dict[str, Any]:
        enabled = world.client("s3").get_bucket_logging(Bucket=params["Bucket"])["LoggingEnabled"]
        enabled["TargetObjectKeyFormat"] = {"PartitionedPrefix": {"PartitionDateSource": date_source}}
        return {"LoggingEnabled": enabled}

    world.answer("s3", "GetBucketLogging", answer)


@dataclass
class Expected:
    """What the standard log set holds for the window (see :func:`standard_logs`)."""

    anonymous: int = 0
    external: int = 0
    internal: int = 0
    malformed: int = 0
    outside: int = 0
    other: int = 0
    files: int = 0
    lines: int = 0
    ignored: int = 0
    keys: list[str] = field(default_factory=list)


def window_lines() -> dict[str, list[str]]:
    """The log content, by delivery: early (10:05), mid (10:35, gzipped), late (11:50, delivered late)."""
    early = [
        log_line(START + timedelta(minutes=1), ip="203.0.113.7"),
        log_line(START + timedelta(minutes=2), ip="203.0.113.7"),
        log_line(START + timedelta(minutes=3), ip="198.51.100.9"),
        log_line(START + timedelta(minutes=4), ip="198.51.100.9", key="secret/payroll.csv", status=403),
        log_line(
            START + timedelta(minutes=4), requester=INSIDER, operation="REST.PUT.OBJECT", key="upload.bin"
        ),
        log_line(START + timedelta(minutes=4), requester=OWNER, key="photos/cat.jpg"),
    ]
    mid = [
        log_line(START + timedelta(minutes=31), ip="192.0.2.44", key=NON_ASCII_KEY, sent=2500),
        log_line(START + timedelta(minutes=32), ip="192.0.2.44", key=NON_ASCII_KEY, sent=2500),
        log_line(
            START + timedelta(minutes=33), requester=OUTSIDER, ip="192.0.2.99", operation="REST.PUT.OBJECT"
        ),
        "this is not a server access log line",
    ]
    late = [
        log_line(END - timedelta(minutes=5), ip="203.0.113.7", operation="REST.HEAD.OBJECT", sent=0),
        log_line(START - timedelta(minutes=30), ip="203.0.113.7"),  # before the window
        log_line(END + timedelta(minutes=2), ip="203.0.113.7"),  # after it
    ]
    other = [log_line(START + timedelta(minutes=10), bucket="someone-elses-bucket")] * 3
    # Not read at all: delivered long before the window, or after the late margin.
    history = [log_line(START - timedelta(hours=5), ip="10.9.9.9")] * 4
    too_late = [log_line(END - timedelta(minutes=1), ip="10.9.9.9")] * 4
    return {
        "early": early,
        "mid": mid,
        "late": late,
        "other": other,
        "history": history,
        "too-late": too_late,
    }


def standard_expected() -> Expected:
    return Expected(
        anonymous=3 + 1 + 2 + 1,  # 3 GETs + a refused GET, 2 GETs of the non-ASCII key, a HEAD
        external=1,
        internal=2,
        malformed=1,
        outside=2,
        other=3,
        files=4,
        lines=6 + 4 + 3 + 3,
    )


def standard_simple_logs(world: World, prefix: str = "logs/") -> Expected:
    """Write the standard log set with SimplePrefix keys (delivery time in the name)."""
    data = window_lines()
    put_object(world, TARGET, simple_key(prefix, START + timedelta(minutes=5)), data["early"])
    put_object(world, TARGET, simple_key(prefix, START + timedelta(minutes=35)), data["mid"], gz=True)
    put_object(
        world, TARGET, simple_key(prefix, START + timedelta(minutes=40), "OTHERBUCKET0000"), data["other"]
    )
    put_object(world, TARGET, simple_key(prefix, END + timedelta(minutes=50)), data["late"])
    put_object(world, TARGET, simple_key(prefix, START - timedelta(hours=4)), data["history"])
    put_object(world, TARGET, simple_key(prefix, END + timedelta(hours=3)), data["too-late"])
    # Not a log object (a "folder" under the prefix): listed, never read.
    put_object(world, TARGET, simple_key(prefix, START + timedelta(minutes=20)) + "/notes.txt", ["x"])
    expected = standard_expected()
    expected.ignored = 1
    return expected


def window(now: datetime | None = None, **overrides: Any) -> Window:
    values: dict[str, Any] = {
        "bucket": BUCKET,
        "account": ACCOUNT,
        "region": REGION,
        "start": START,
        "end": END,
        "now": now or datetime.now(UTC),
    }
    values.update(overrides)
    return Window(**values)


def review(plan: Plan, win: Window, budget: Budget | None = None) -> tuple[dict[str, Any], Cursor | None]:
    accumulator = ReviewAccumulator(win.bucket, win.account, win.start, win.end)
    cursor = read_sources(plan, accumulator, win, budget or Budget.of(600))
    report = accumulator.report(
        sources=plan.entries(win), complete=plan.complete(win), complete_to=plan.complete_to(win)
    )
    return report, cursor


def check_counts(report: dict[str, Any], expected: Expected) -> None:
    assert report["requests"]["anonymous"] == expected.anonymous
    assert report["requests"]["external"] == expected.external
    assert report["requests"]["internal"] == expected.internal
    assert report["malformedLines"] == expected.malformed
    assert report["outsideWindow"] == expected.outside
    assert report["otherBuckets"] == expected.other


# ---- CloudTrail files ------------------------------------------------------------------------------------


def trail_record(
    name: str,
    when: datetime,
    *,
    bucket: str = BUCKET,
    identity: dict[str, Any] | None = None,
    key: str = "photos/cat.jpg",
    error: str | None = None,
    sent: int = 0,
    category: str = "Data",
    ip: str = "203.0.113.50",
) -> dict[str, Any]:
    """A CloudTrail S3 data-event record shaped as S3 writes it."""
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity or {"type": "AWSAccount", "accountId": "anonymous", "principalId": ""},
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "s3.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": ip,
        "userAgent": "curl/8.5.0",
        "requestParameters": {"bucketName": bucket, "key": key, "Host": f"{bucket}.s3.amazonaws.com"},
        "responseElements": None,
        "additionalEventData": {"bytesTransferredIn": 0, "bytesTransferredOut": sent},
        "requestID": "EXAMPLE",
        "eventID": "00000000-0000-4000-8000-000000000001",
        "readOnly": name.startswith(("Get", "Head", "List")),
        "resources": [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ],
        "eventType": "AwsApiCall",
        "managementEvent": category != "Data",
        "recipientAccountId": ACCOUNT,
        "eventCategory": category,
    }
    if error:
        record["errorCode"] = error
        record["errorMessage"] = "Access Denied"
    return record


def trail_key(delivered: datetime, base: str | None = None, unique: str = "AbCdEf123456") -> str:
    base = base or f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/"
    return (
        f"{base}{delivered:%Y/%m/%d}/{ACCOUNT}_CloudTrail_{REGION}_{delivered:%Y%m%dT%H%MZ}_{unique}.json.gz"
    )


def put_trail_file(world: World, key: str, records: list[dict[str, Any]]) -> None:
    body = gzip.compress(json.dumps({"Records": records}).encode())
    world.s3.put_object(Bucket=TRAIL_BUCKET, Key=key, Body=body)


ALL_DATA_EVENTS = [
    {
        "Name": "management",
        "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}],
    },
    {
        "Name": "reviewed bucket objects",
        "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
            {"Field": "resources.ARN", "StartsWith": [f"arn:aws:s3:::{BUCKET}/"]},
        ],
    },
]
# What the stack deploys by default (stacks/trail.py): object ACL changes only.
ACL_ONLY = [
    {"Name": "management-events", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
    {
        "Name": "s3-object-acl-data-events",
        "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
            {"Field": "readOnly", "Equals": ["false"]},
            {"Field": "eventName", "Equals": ["PutObjectAcl"]},
        ],
    },
]


def create_trail(world: World, selectors: list[dict[str, Any]]) -> None:
    world.s3.create_bucket(Bucket=TRAIL_BUCKET)
    cloudtrail = world.client("cloudtrail")
    cloudtrail.create_trail(Name=TRAIL, S3BucketName=TRAIL_BUCKET, IsMultiRegionTrail=True)
    cloudtrail.put_event_selectors(TrailName=TRAIL, AdvancedEventSelectors=selectors)


def standard_trail_files(world: World) -> dict[str, int]:
    """Trail files of the window: what each should count."""
    anonymous = {"type": "AWSAccount", "accountId": "anonymous", "principalId": "ANONYMOUS_PRINCIPAL"}
    outsider = {"type": "IAMUser", "accountId": "999988887777", "arn": OUTSIDER, "principalId": "AIDAEVE"}
    insider = {"type": "IAMUser", "accountId": ACCOUNT, "arn": INSIDER, "principalId": "AIDAALICE"}
    first = [
        trail_record("GetObject", START + timedelta(minutes=2), identity=anonymous, sent=500),
        trail_record(
            "GetObject", START + timedelta(minutes=3), identity=anonymous, sent=500, key=NON_ASCII_KEY
        ),
        trail_record("GetObject", START + timedelta(minutes=3), identity=outsider, error="AccessDenied"),
        trail_record("PutObject", START + timedelta(minutes=4), identity=insider),
        trail_record("GetObject", START + timedelta(minutes=4), bucket="another-bucket", identity=anonymous),
        trail_record(
            "PutBucketPolicy", START + timedelta(minutes=4), identity=insider, category="Management"
        ),
        {"eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances", "eventCategory": "Management"},
    ]
    put_trail_file(world, trail_key(START + timedelta(minutes=5)), first)
    # Delivered late, still in the margin: a record at the end of the window.
    put_trail_file(
        world,
        trail_key(END + timedelta(minutes=10)),
        [trail_record("HeadObject", END - timedelta(minutes=1), identity=anonymous)],
    )
    # An organisation trail's folder of the same account.
    put_trail_file(
        world,
        trail_key(START + timedelta(minutes=20), base=f"AWSLogs/{ORG}/{ACCOUNT}/CloudTrail/{REGION}/"),
        [trail_record("GetObject", START + timedelta(minutes=18), identity=anonymous, sent=100)],
    )
    # Outside the files' time range: never read.
    put_trail_file(
        world,
        trail_key(START - timedelta(hours=3)),
        [trail_record("GetObject", START - timedelta(hours=3), identity=anonymous)] * 5,
    )
    put_trail_file(
        world,
        trail_key(END + timedelta(hours=5)),
        [trail_record("GetObject", END, identity=anonymous)] * 5,
    )
    return {"anonymous": 4, "external": 1, "internal": 1, "files": 3, "events": 9, "bucket_events": 6}


DETECTOR = DetectorContext(trail_name=TRAIL, trail_bucket=TRAIL_BUCKET)
NO_TRAIL = DetectorContext()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


# ---- the mocked account ----------------------------------------------------------------------------------
# The house pattern of tests/response_fixtures.py (moto, a capture queue on the topic, the table, a
# client hook that records and can fail or answer every call the code makes), without importing
# the response function.


@dataclass
class FakeContext:
    """The part of the Lambda context the handler reads."""

    remaining_ms: int = 900_000
    aws_request_id: str = field(default_factory=lambda: f"req-{next(_REQUESTS)}")

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


_REQUESTS = iter(range(1, 1_000_000))


@dataclass
class World:
    """Handles on the mocked account the code under test runs against."""

    monkeypatch: pytest.MonkeyPatch
    topic_arn: str
    capture_url: str
    review_queue_url: str
    review_queue_arn: str
    calls: list[tuple[str, str]] = field(default_factory=list)
    call_params: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    faults: dict[tuple[str, str], str] = field(default_factory=dict)
    answers: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = field(default_factory=dict)

    def configure(self, **env: str) -> None:
        """Set the review function's environment (defaults + ``env``)."""
        from handlers.review import function as review_module

        defaults = {
            "ALERT_TOPIC_ARN": self.topic_arn,
            "EXPECTED_ACCOUNT_ID": ACCOUNT,
            "IDEMPOTENCY_TABLE": TABLE,
            "ENVIRONMENT": "production",
            "ACCOUNT_NAME": "prod-payments",
            "REVIEW_QUEUE_URL": self.review_queue_url,
            "LOG_LEVEL": "INFO",
        }
        for name, value in {**defaults, **env}.items():
            if value:
                self.monkeypatch.setenv(name, value)
            else:
                self.monkeypatch.delenv(name, raising=False)
        review_module.reset_settings()

    def client(self, service: str) -> Any:
        """A test-side client (not observed)."""
        key = (service, REGION)
        if key not in _TEST_CLIENTS:
            _TEST_CLIENTS[key] = _SESSION.client(service, region_name=REGION)
        return _TEST_CLIENTS[key]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    def fail(self, service: str, operation: str, code: str) -> None:
        """Make the code's ``service``/``operation`` calls raise ``code``."""
        self.faults[(service, operation)] = code

    def heal(self) -> None:
        self.faults.clear()

    def answer(self, service: str, operation: str, fn: Callable[[dict[str, Any]], Any]) -> None:
        """Answer the code's call with ``fn(params)`` instead of moto (``None``: moto answers)."""
        self.answers[(service, operation)] = fn

    def handler_calls(self, service: str | None = None) -> list[str]:
        return [op for svc, op in self.calls if service is None or svc == service]

    def alerts(self) -> list[Alert]:
        """Drain the SQS subscription of the alert topic."""
        return [
            Alert(envelope["Subject"], json.loads(envelope["Message"]), attributes)
            for envelope, attributes in drain(self.client("sqs"), self.capture_url)
        ]

    def before_call(self, service: str, model: Any) -> Any:
        # The API parameters were recorded just before (before-parameter-build).
        params = self.call_params[-1][2] if self.call_params else {}
        self.calls.append((service, model.name))
        code = self.faults.get((service, model.name))
        if code is not None:
            raise client_error(code, model.name, 403 if code == "AccessDenied" else 503)
        answer = self.answers.get((service, model.name))
        if answer is not None:
            result = answer(params)
            if result is not None:
                return _Http(), result
        return None


class _Http:
    status_code = 200


def drain(sqs: Any, queue_url: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Every message now visible on ``queue_url`` (deleted), as (SNS envelope or body, attributes)."""
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            body = json.loads(message["Body"])
            attributes = (
                {k: v["Value"] for k, v in body.get("MessageAttributes", {}).items()}
                if "Subject" in body
                else {}
            )
            found.append((body, attributes))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


_ACTIVE: list[World] = []
_TEST_CLIENTS: dict[tuple[str, str], Any] = {}
_SESSION = boto3.session.Session()
_KEYS: list[Any] = []


def _dispatch(client: Any) -> None:
    service = client.meta.service_model.service_name

    def before_parameters(params: dict[str, Any], model: Any, **_: Any) -> None:
        if _ACTIVE:
            _ACTIVE[0].call_params.append((service, model.name, dict(params)))

    def before_call(model: Any, **_: Any) -> Any:
        return _ACTIVE[0].before_call(service, model) if _ACTIVE else None

    client.meta.events.register("before-parameter-build", before_parameters)
    client.meta.events.register("before-call", before_call)


aws_clients.add_client_hook(_dispatch)


def _signing_key(_subscription: Any) -> Any:
    if not _KEYS:
        _KEYS.append(moto_sns_models.rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEYS[0]


def build_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """moto with the topic and its capture queue, the review queue and the idempotency table."""
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    for name, value in (("AWS_DEFAULT_REGION", REGION), ("AWS_REGION", REGION)):
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    for name in ("TRAIL_NAME", "TRAIL_BUCKET", "REVIEW_LATE_MARGIN_MINUTES", "REVIEW_LOG_TARGET_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(moto_sns_models.Subscription, "private_key", _signing_key)
    # Clients created from now on carry the hook (others' cached clients come back afterwards).
    monkeypatch.setattr(aws_clients, "_clients", {})
    with mock_aws():
        sqs, sns = (_SESSION.client(name, region_name=REGION) for name in ("sqs", "sns"))
        _TEST_CLIENTS.clear()
        _TEST_CLIENTS[("sqs", REGION)], _TEST_CLIENTS[("sns", REGION)] = sqs, sns
        topic_arn = sns.create_topic(Name="s3-exposure-alerts")["TopicArn"]
        capture_url = sqs.create_queue(QueueName="alert-capture")["QueueUrl"]
        capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=capture_arn["QueueArn"])
        review_url = sqs.create_queue(QueueName="review-requests")["QueueUrl"]
        review_arn = sqs.get_queue_attributes(QueueUrl=review_url, AttributeNames=["QueueArn"])["Attributes"]
        _SESSION.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        world = World(monkeypatch, topic_arn, capture_url, review_url, review_arn["QueueArn"])
        _ACTIVE[:] = [world]
        world.configure()
        try:
            yield world
        finally:
            _ACTIVE.clear()
            _TEST_CLIENTS.clear()


# ---- access logs: SimplePrefix ---------------------------------------------------------------------------


def test_simple_prefix_logs_give_exact_counts(world: World) -> None:
    enable_logging(world)
    expected = standard_simple_logs(world)
    plan = plan_sources(window(), NO_TRAIL, REGION)
    assert [s.kind for s in plan.sources] == [ACCESS_LOGS]
    report, cursor = review(plan, window())
    assert cursor is None
    check_counts(report, expected)
    anonymous = report["anonymous"]
    assert anonymous["byOperation"]["GET"] == 6 and anonymous["byOperation"]["HEAD"] == 1
    assert anonymous["succeeded"] == 6 and anonymous["failed"] == 1
    assert anonymous["distinctIps"] == 3
    assert anonymous["topIps"][0] == {"ip": "203.0.113.7", "requests": 3}
    assert anonymous["bytesSent"] == 3 * 1000 + 2 * 2500
    assert {"key": NON_ASCII_KEY, "reads": 2, "bytes": 5000} in anonymous["objectsMostRead"]
    assert report["external"]["principals"] == [{"principal": OUTSIDER, "requests": 1}]
    assert report["verdict"] == "written"
    [source] = report["sources"]
    assert source["files"] == expected.files and source["lines"] == expected.lines
    assert source["ignoredKeys"] == expected.ignored
    assert source["keyFormat"] == "SimplePrefix"
    assert source["targetBucket"] == TARGET and source["targetPrefix"] == "logs/"
    assert source["complete"] is True and report["complete"] is True
    assert report["completeTo"] == END.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_simple_prefix_listing_starts_at_the_window_not_at_the_history(world: World) -> None:
    enable_logging(world)
    standard_simple_logs(world)
    review(plan_sources(window(), NO_TRAIL, REGION), window())
    lists = [p for svc, op, p in world.call_params if op == "ListObjectsV2" and p.get("MaxKeys") != 1]
    assert lists and all(
        p["StartAfter"] == f"logs/{START - timedelta(minutes=10):%Y-%m-%d-%H-%M-%S}" for p in lists
    )
    assert all(p["ExpectedBucketOwner"] == ACCOUNT for p in lists)
    reads = [p["Key"] for svc, op, p in world.call_params if op == "GetObject"]
    assert len(reads) == 4 and all(START - timedelta(hours=1) < key_time("simple", k[5:]) for k in reads)  # type: ignore[operator]


def test_a_review_run_too_early_is_not_complete(world: World) -> None:
    enable_logging(world)
    standard_simple_logs(world)
    early = window(now=END + timedelta(minutes=30))
    report, _ = review(plan_sources(early, NO_TRAIL, REGION), early)
    assert report["complete"] is False
    assert report["completeTo"] == (END + timedelta(minutes=30) - timedelta(minutes=120)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_logs_without_a_prefix_share_the_bucket_with_other_objects(world: World) -> None:
    enable_logging(world, prefix="")
    put_object(
        world, TARGET, simple_key("", START + timedelta(minutes=5)), [log_line(START + timedelta(minutes=1))]
    )
    put_object(world, TARGET, "index.html", ["<html>"])
    report, _ = review(plan_sources(window(), NO_TRAIL, REGION), window())
    assert report["requests"]["anonymous"] == 1
    assert report["sources"][0]["files"] == 1


# ---- access logs: PartitionedPrefix ----------------------------------------------------------------------


def test_partitioned_prefix_event_time_reads_the_days_of_the_window(world: World) -> None:
    enable_logging(world)
    key_format(world, "EventTime")
    data = window_lines()
    midnight = DAY
    put_object(world, TARGET, partitioned_key("logs/", DAY, midnight, "EARLY"), data["early"])
    put_object(world, TARGET, partitioned_key("logs/", DAY, midnight, "MID"), data["mid"], gz=True)
    put_object(world, TARGET, partitioned_key("logs/", DAY, midnight, "LATE"), data["late"])
    # Another bucket's partition, and the day before: never listed.
    other = f"logs/{ACCOUNT}/{REGION}/someone-elses-bucket/{DAY:%Y/%m/%d}/{DAY:%Y-%m-%d}-00-00-00-X"
    put_object(world, TARGET, other, data["history"])
    yesterday = DAY - timedelta(days=1)
    put_object(world, TARGET, partitioned_key("logs/", yesterday, yesterday, "OLD"), data["history"])
    report, cursor = review(plan_sources(window(), NO_TRAIL, REGION), window())
    assert cursor is None
    expected = standard_expected()
    expected.other = 0
    check_counts(report, expected)
    [source] = report["sources"]
    assert source["keyFormat"] == "PartitionedPrefix (EventTime)"
    assert source["files"] == 3 and source["complete"] is True
    prefixes = {p["Prefix"] for svc, op, p in world.call_params if op == "ListObjectsV2"}
    assert prefixes == {f"logs/{ACCOUNT}/{REGION}/{BUCKET}/{DAY:%Y/%m/%d}/"}


def test_partitioned_prefix_delivery_time_filters_by_the_time_in_the_name(world: World) -> None:
    enable_logging(world)
    key_format(world, "DeliveryTime")
    data = window_lines()
    put_object(world, TARGET, partitioned_key("logs/", DAY, START + timedelta(minutes=5)), data["early"])
    put_object(
        world, TARGET, partitioned_key("logs/", DAY, START + timedelta(minutes=35)), data["mid"], gz=True
    )
    put_object(world, TARGET, partitioned_key("logs/", DAY, END + timedelta(minutes=50)), data["late"])
    put_object(world, TARGET, partitioned_key("logs/", DAY, START - timedelta(hours=4)), data["history"])
    put_object(world, TARGET, partitioned_key("logs/", DAY, END + timedelta(hours=3)), data["too-late"])
    report, _ = review(plan_sources(window(), NO_TRAIL, REGION), window())
    expected = standard_expected()
    expected.other = 0
    check_counts(report, expected)
    assert report["sources"][0]["files"] == 3


def test_partitioned_logs_are_found_when_the_sdk_does_not_report_the_key_format(world: World) -> None:
    enable_logging(world)  # moto, like an SDK from before November 2023, reports no key format
    data = window_lines()
    put_object(world, TARGET, partitioned_key("logs/", DAY, DAY, "EARLY"), data["early"])
    put_object(world, TARGET, partitioned_key("logs/", DAY, DAY, "LATE"), data["late"])
    report, _ = review(plan_sources(window(), NO_TRAIL, REGION), window())
    [source] = report["sources"]
    assert source["keyFormat"] == "PartitionedPrefix (date source not reported)"
    assert source["files"] == 2 and report["requests"]["anonymous"] == 4 + 1


def test_partitioned_logs_across_midnight_list_each_day_folder(world: World) -> None:
    enable_logging(world)
    key_format(world, "DeliveryTime")
    start, end = DAY - timedelta(minutes=30), DAY + timedelta(minutes=30)
    before = start + timedelta(minutes=5)
    after = end - timedelta(minutes=5)
    put_object(
        world, TARGET, partitioned_key("logs/", before, before), [log_line(before - timedelta(minutes=1))]
    )
    put_object(
        world, TARGET, partitioned_key("logs/", after, after), [log_line(after - timedelta(minutes=1))]
    )
    win = window(start=start, end=end)
    report, _ = review(plan_sources(win, NO_TRAIL, REGION), win)
    assert report["requests"]["anonymous"] == 2


# ---- no evidence, unreadable evidence --------------------------------------------------------------------


def test_logging_off_and_no_trail_leaves_no_source(world: World) -> None:
    world.s3.create_bucket(Bucket=BUCKET)
    plan = plan_sources(window(), NO_TRAIL, REGION)
    assert plan.sources == []
    assert [a["kind"] for a in plan.absent] == [ACCESS_LOGS, DATA_EVENTS]
    assert plan.absent[0]["reason"] == "server access logging is off for this bucket"
    report, _ = review(plan, window())
    assert report["verdict"] == "no-evidence" and report["sources"] == []


def test_an_unreadable_target_is_reported_not_raised(world: World) -> None:
    enable_logging(world)
    standard_simple_logs(world)
    world.fail("s3", "ListObjectsV2", "AccessDenied")
    plan = plan_sources(window(), NO_TRAIL, REGION)
    report, cursor = review(plan, window())
    assert cursor is None
    [source] = report["sources"]
    assert source["failure"]["error"] == "AccessDenied" and source["failure"]["call"] == "s3:ListObjectsV2"
    assert source["lines"] == 0 and source["complete"] is False
    assert report["verdict"] == "no-evidence" and report["complete"] is False


def test_objects_that_cannot_be_read_stop_the_source_once(world: World) -> None:
    enable_logging(world)
    standard_simple_logs(world)
    world.fail("s3", "GetObject", "AccessDenied")
    report, _ = review(plan_sources(window(), NO_TRAIL, REGION), window())
    assert report["sources"][0]["failure"]["call"] == "s3:GetObject"
    assert world.handler_calls("s3").count("GetObject") == 1


def test_a_damaged_object_is_named_and_the_others_still_count(world: World) -> None:
    enable_logging(world)
    expected = standard_simple_logs(world)
    damaged = gzip.compress(("\n".join(window_lines()["early"]) + "\n").encode())[:-12]
    world.s3.put_object(Bucket=TARGET, Key=simple_key("logs/", START + timedelta(minutes=45)), Body=damaged)
    report, _ = review(plan_sources(window(), NO_TRAIL, REGION), window())
    [source] = report["sources"]
    assert source["unreadableFiles"] == 1 and "complete" in source and source["complete"] is False
    assert source["unreadable"][0].startswith(simple_key("logs/", START + timedelta(minutes=45)))
    assert report["requests"]["anonymous"] >= expected.anonymous


def test_the_logging_settings_unreadable_is_an_absent_source(world: World) -> None:
    world.s3.create_bucket(Bucket=BUCKET)
    world.fail("s3", "GetBucketLogging", "AccessDenied")
    plan = plan_sources(window(), NO_TRAIL, REGION)
    assert plan.sources == [] and plan.absent[0]["failure"]["error"] == "AccessDenied"


# ---- data events -----------------------------------------------------------------------------------------


def test_a_trail_recording_only_object_acl_changes_is_not_a_read_source(world: World) -> None:
    world.s3.create_bucket(Bucket=BUCKET)
    create_trail(world, ACL_ONLY)
    plan = plan_sources(window(), DETECTOR, REGION)
    assert plan.sources == []
    absent = {a["kind"]: a for a in plan.absent}
    assert absent[DATA_EVENTS]["reason"] == (
        "the trail records only PutObjectAcl data events for this bucket: reads are not recorded"
    )
    assert "GetObject" not in [op for _, op in world.calls]


def test_a_trail_recording_the_buckets_data_events_is_read_and_counted(world: World) -> None:
    world.s3.create_bucket(Bucket=BUCKET)
    create_trail(world, ALL_DATA_EVENTS)
    expected = standard_trail_files(world)
    plan = plan_sources(window(), DETECTOR, REGION)
    assert [s.kind for s in plan.sources] == [DATA_EVENTS]
    report, cursor = review(plan, window())
    assert cursor is None
    assert report["requests"] == {
        "anonymous": expected["anonymous"],
        "external": expected["external"],
        "internal": expected["internal"],
        "total": expected["anonymous"] + expected["external"] + expected["internal"],
    }
    anonymous = report["anonymous"]
    assert anonymous["byOperation"]["GET"] == 3 and anonymous["byOperation"]["HEAD"] == 1
    assert anonymous["bytesSent"] == 1100
    assert {"key": NON_ASCII_KEY, "reads": 1, "bytes": 500} in anonymous["objectsMostRead"]
    assert report["external"]["failed"] == 1
    [source] = report["sources"]
    assert source["files"] == expected["files"]
    assert source["events"] == expected["events"]
    assert source["bucketEvents"] == expected["bucket_events"]
    assert source["coverage"] == {"reads": "all", "writes": "all", "eventNames": None}
    assert source["complete"] is True
    assert report["verdict"] == "read"


def test_both_sources_together(world: World) -> None:
    enable_logging(world)
    logs = standard_simple_logs(world)
    create_trail(world, ALL_DATA_EVENTS)
    trail = standard_trail_files(world)
    report, _ = review(plan_sources(window(), DETECTOR, REGION), window())
    assert [s["kind"] for s in report["sources"]] == [ACCESS_LOGS, DATA_EVENTS]
    assert report["requests"]["anonymous"] == logs.anonymous + trail["anonymous"]


def test_the_trail_unknown_is_an_absent_source(world: World) -> None:
    world.s3.create_bucket(Bucket=BUCKET)
    plan = plan_sources(
        window(), DetectorContext(trail_name="no-such-trail", trail_bucket=TRAIL_BUCKET), REGION
    )
    [absent] = [a for a in plan.absent if a["kind"] == DATA_EVENTS]
    assert "could not be read" in absent["reason"]


def basic(kind: str, *values: str) -> dict[str, Any]:
    """A basic event selector for S3 objects."""
    resources = [{"Type": "AWS::S3::Object", "Values": list(values)}] if values else []
    return {
        "EventSelectors": [
            {"ReadWriteType": kind, "IncludeManagementEvents": True, "DataResources": resources}
        ]
    }


def advanced(*fields: dict[str, Any], resource: str = "AWS::S3::Object") -> dict[str, Any]:
    """An advanced event selector for data events of ``resource``, narrowed by ``fields``."""
    base = [
        {"Field": "eventCategory", "Equals": ["Data"]},
        {"Field": "resources.type", "Equals": [resource]},
    ]
    return {"AdvancedEventSelectors": [{"FieldSelectors": base + list(fields)}]}


OWN_OBJECTS = f"arn:aws:s3:::{BUCKET}/"


@pytest.mark.parametrize(
    ("selectors", "reads", "writes", "recorded"),
    [
        pytest.param(
            {"AdvancedEventSelectors": ACL_ONLY}, "none", "none", "reads are not recorded", id="repo-default"
        ),
        pytest.param(
            {"AdvancedEventSelectors": ALL_DATA_EVENTS}, "all", "all", "every object read", id="advanced"
        ),
        pytest.param(basic("All", "arn:aws:s3"), "all", "all", "every object read", id="basic-every-bucket"),
        pytest.param(basic("ReadOnly", OWN_OBJECTS), "all", "none", "(not writes)", id="basic-reads"),
        pytest.param(
            basic("WriteOnly", OWN_OBJECTS), "none", "all", "only write data events", id="basic-writes"
        ),
        pytest.param(
            basic("All", OWN_OBJECTS + "private/"), "some", "some", "some object read", id="key-prefix"
        ),
        pytest.param(
            basic("All", "arn:aws:s3:::other-bucket/"), "none", "none", "no S3 data", id="other-bucket"
        ),
        pytest.param(basic("All"), "none", "none", "no S3 data events", id="management-only"),
        pytest.param(
            advanced({"Field": "readOnly", "Equals": ["true"]}),
            "all",
            "none",
            "every object read",
            id="reads-only",
        ),
        pytest.param(
            advanced({"Field": "eventName", "Equals": ["GetObject"]}),
            "all",
            "none",
            "(only GetObject)",
            id="getobject-only",
        ),
        pytest.param(
            advanced({"Field": "resources.ARN", "NotStartsWith": [OWN_OBJECTS]}),
            "none",
            "none",
            "no S3 data events",
            id="bucket-excluded",
        ),
        pytest.param(
            advanced({"Field": "userIdentity.arn", "Equals": [INSIDER]}),
            "some",
            "some",
            "some object read",
            id="some-callers",
        ),
        pytest.param(advanced(resource="AWS::DynamoDB::Table"), "none", "none", "no S3", id="other-resource"),
        pytest.param(
            {"AdvancedEventSelectors": [{"FieldSelectors": "x"}, 7]}, "none", "none", "no S3", id="garbage"
        ),
    ],
)
def test_trail_coverage(selectors: dict[str, Any], reads: str, writes: str, recorded: str) -> None:
    coverage = trail_coverage(selectors, BUCKET)
    assert (coverage.reads, coverage.writes) == (reads, writes)
    assert recorded in coverage.description


def test_only_data_events_of_the_bucket_are_fed() -> None:
    assert is_bucket_data_event(trail_record("GetObject", START), BUCKET)
    assert not is_bucket_data_event(trail_record("GetObject", START, bucket="x-other"), BUCKET)
    assert not is_bucket_data_event(trail_record("PutBucketAcl", START, category="Management"), BUCKET)
    no_name = trail_record("GetObject", START)
    no_name["requestParameters"] = None
    assert is_bucket_data_event(no_name, BUCKET)  # decided by its resources
    no_name["resources"] = "garbage"
    assert is_bucket_data_event(no_name, BUCKET)  # unknown: the review counts it as malformed
    assert not is_bucket_data_event(["not", "a", "record"], BUCKET)


# ---- the budget and continuing ---------------------------------------------------------------------------


class TickingClock:
    """Fake monotonic time that moves on only when told (e.g. on every GetObject)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> Callable[[dict[str, Any]], None]:
        def advance(_params: dict[str, Any]) -> None:
            self.now += seconds

        return advance


def test_a_tiny_budget_stops_with_a_cursor_and_the_continuation_gives_the_same_report(world: World) -> None:
    enable_logging(world)
    create_trail(world, ALL_DATA_EVENTS)
    standard_simple_logs(world)
    standard_trail_files(world)
    single, _ = review(plan_sources(window(), DETECTOR, REGION), window())

    world.calls.clear()
    clock = TickingClock()
    world.answer("s3", "GetObject", clock.tick(10))  # every object read costs 10 s
    plan = plan_sources(window(), DETECTOR, REGION)
    accumulator = ReviewAccumulator(BUCKET, ACCOUNT, START, END)
    cursors = []
    for _ in range(20):
        budget = Budget(soft=clock.now + 15, hard=clock.now + 45, clock=clock)  # two objects per call
        cursor = read_sources(plan, accumulator, window(), budget)
        if cursor is None:
            break
        cursors.append(cursor)
        # What the handler stores and loads between invocations.
        plan = Plan.from_json(json.loads(json.dumps(plan.to_json())))
        accumulator = ReviewAccumulator.from_state(json.loads(json.dumps(accumulator.to_state())))
    # 7 objects, two per call; the access logs end with a listing past the window, then the trail.
    assert [c.source for c in cursors] == [ACCESS_LOGS, DATA_EVENTS, DATA_EVENTS]
    win = window()
    merged = accumulator.report(
        sources=plan.entries(win), complete=plan.complete(win), complete_to=plan.complete_to(win)
    )
    assert merged == single
    assert world.handler_calls("s3").count("GetObject") == 7  # nothing read twice


def test_an_object_abandoned_for_time_counts_nothing_and_is_read_again(world: World) -> None:
    enable_logging(world)
    expected = standard_simple_logs(world)
    clock = TickingClock()
    world.answer("s3", "GetObject", clock.tick(10))
    plan = plan_sources(window(), NO_TRAIL, REGION)
    accumulator = ReviewAccumulator(BUCKET, ACCOUNT, START, END)
    # The second object starts at 10 s (< soft) but is abandoned at once: at 20 s, past hard.
    cursor = read_sources(plan, accumulator, window(), Budget(soft=12, hard=15, clock=clock))
    assert cursor is not None and plan.sources[0].files == 1
    cursor = read_sources(plan, accumulator, window(), Budget(soft=1e9, hard=1e9, clock=clock))
    assert cursor is None
    win = window()
    report = accumulator.report(sources=plan.entries(win), complete=True, complete_to=None)
    check_counts(report, expected)
    assert report["sources"][0]["files"] == expected.files


def test_one_object_longer_than_a_whole_invocation_is_skipped_and_named(world: World) -> None:
    enable_logging(world)
    put_object(world, TARGET, simple_key("logs/", START + timedelta(minutes=5)), [log_line(START)])
    clock = TickingClock()
    world.answer("s3", "GetObject", clock.tick(100))
    plan = plan_sources(window(), NO_TRAIL, REGION)
    accumulator = ReviewAccumulator(BUCKET, ACCOUNT, START, END)
    assert read_sources(plan, accumulator, window(), Budget(soft=5, hard=50, clock=clock)) is None
    assert plan.sources[0].unreadable_count == 1
    assert "within one invocation" in plan.sources[0].unreadable[0]


def test_listings_resume_after_the_cursor() -> None:
    source = Source(
        kind=ACCESS_LOGS,
        bucket=TARGET,
        owner=ACCOUNT,
        region=REGION,
        layout="partitioned",
        bases=["p/"],
        not_before=None,
        not_after=None,
        first_day=DAY.date(),
        last_day=(DAY + timedelta(days=2)).date(),
    )
    prefixes = [prefix for prefix, _ in listings(source)]
    assert prefixes == [f"p/{(DAY + timedelta(days=n)):%Y/%m/%d}/" for n in range(3)]


@pytest.mark.parametrize(
    ("layout", "name", "expected"),
    [
        ("simple", "2024-05-01-10-05-00-ABCDEF", datetime(2024, 5, 1, 10, 5, tzinfo=UTC)),
        ("simple", "2024-05-01-10-05-00-ABC/def", None),
        ("simple", "2024-13-01-10-05-00-ABCDEF", None),
        ("simple", "index.html", None),
        ("partitioned", "2024-05-01-00-00-00-X", datetime(2024, 5, 1, tzinfo=UTC)),
        (
            "trail",
            f"{ACCOUNT}_CloudTrail_{REGION}_20240501T1005Z_abc.json.gz",
            datetime(2024, 5, 1, 10, 5, tzinfo=UTC),
        ),
        ("trail", f"{ACCOUNT}_CloudTrail-Digest_{REGION}_20240501T1005Z_abc.json.gz", None),
        ("trail", "garbage", None),
    ],
)
def test_key_time(layout: str, name: str, expected: datetime | None) -> None:
    assert key_time(layout, name) == expected


def test_streams_are_gunzipped_and_capped() -> None:
    data = b"line\n" * 1000
    assert open_stream(io.BytesIO(gzip.compress(data)), 10_000).read() == data
    assert open_stream(io.BytesIO(data), 10_000).read() == data
    with pytest.raises(TooLarge):
        open_stream(io.BytesIO(gzip.compress(data)), 100).read()


def test_stored_sources_refuse_garbage() -> None:
    for garbage in (
        None,
        [],
        {"kind": "x"},
        {"sources": "x", "absent": []},
        {"sources": [{"kind": ACCESS_LOGS}], "absent": []},
    ):
        with pytest.raises(ValueError):
            Plan.from_json(garbage)

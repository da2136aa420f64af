"""A moto-backed world for the response Lambda: topic + SQS capture, idempotency table, fault injection.

Test modules build their ``world`` fixture with :func:`build_world` (or :func:`world_for`).
Everything runs in-process under ``moto.mock_aws``; nothing touches the network.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from moto import mock_aws
from moto.sns import models as moto_sns_models

for _path in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from demo.replay_state import replay  # noqa: E402
from handlers.detection.event_patterns import EVENTBRIDGE_SOURCES  # noqa: E402
from handlers.response import aws_clients  # noqa: E402
from handlers.response import function as response  # noqa: E402
from handlers.response.exposure import BPA_FLAGS  # noqa: E402

ACCOUNT = "111122223333"
REGION = "us-east-1"
TABLE = "s3-exposure-idempotency"
ALL_ON = dict.fromkeys(BPA_FLAGS, True)


@dataclass
class FakeContext:
    """The part of the Lambda context the handler reads."""

    remaining_ms: int = 60_000
    function_name: str = "s3-exposure-response"
    # Lambda gives every invocation its own id and reuses it for the async retries of a failed one.
    aws_request_id: str = field(default_factory=lambda: new_request_id())

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Alert:
    """One alert as an SQS subscriber of the topic receives it."""

    subject: str
    payload: dict[str, Any]
    attributes: dict[str, str]

    @property
    def text(self) -> str:
        return self.payload["text"]


def client_error(code: str, operation: str, status: int = 400, message: str = "injected") -> ClientError:
    """A ClientError shaped like AWS's."""
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


FAULTS: dict[str, Callable[[str], Exception]] = {
    "AccessDenied": lambda op: client_error("AccessDenied", op, 403, "Access Denied"),
    "Throttling": lambda op: client_error("SlowDown", op, 503, "Please reduce your request rate."),
    "NoSuchBucket": lambda op: client_error("NoSuchBucket", op, 404, "The specified bucket does not exist"),
    "Timeout": lambda op: ReadTimeoutError(endpoint_url=f"https://example.invalid/{op}"),
    "ConnectTimeout": lambda op: ConnectTimeoutError(endpoint_url=f"https://example.invalid/{op}"),
}


class _Http:
    status_code = 200


@dataclass
class World:
    """Handles on the mocked account the handler runs against."""

    monkeypatch: pytest.MonkeyPatch
    account: str
    region: str
    session: Any
    topic_arn: str
    queue_url: str
    calls: list[tuple[str, str]] = field(default_factory=list)
    call_params: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    faults: dict[tuple[str, str], Callable[[str], Exception]] = field(default_factory=dict)
    fault_only_call: dict[tuple[str, str], int] = field(default_factory=dict)
    overrides: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any] | None]] = field(
        default_factory=dict
    )

    # --- configuration -------------------------------------------------------------------------
    def configure(self, **env: str) -> None:
        """Set the handler's environment (defaults + ``env``) and forget cached settings."""
        defaults = {
            "ALERT_TOPIC_ARN": self.topic_arn,
            "REMEDIATION_MODE": "off",
            "ALLOW_ACCOUNT_REMEDIATION": "false",
            "ENVIRONMENT": "production",
            "ACCOUNT_NAME": "prod-payments",
            "EXPECTED_ACCOUNT_ID": self.account,
            "EXCEPTION_BUCKETS": "[]",
            "IDEMPOTENCY_TABLE": TABLE,
            "LOG_LEVEL": "INFO",
        }
        for name, value in {**defaults, **env}.items():
            self.monkeypatch.setenv(name, value)
        response.reset_settings()

    # --- acting ----------------------------------------------------------------------------------
    def invoke(self, record: dict[str, Any], context: FakeContext | None = None) -> response.ResponseSummary:
        """Deliver ``record`` to the handler wrapped in an EventBridge envelope."""
        return response.handler(envelope(record), context or FakeContext())

    def replay(self, record: dict[str, Any]) -> list[str]:
        """Put moto into the state the record's call left behind."""
        return replay(record, _TestClients(self.region))

    def fail(self, service: str, operation: str, fault: str, only_call: int | None = None) -> None:
        """Make the handler's ``service``/``operation`` calls raise ``fault`` (see FAULTS).

        ``only_call``: fail just the n-th such call (1-based), e.g. the read-back after a put.
        """
        self.faults[(service, operation)] = FAULTS[fault]
        if only_call is not None:
            self.fault_only_call[(service, operation)] = only_call

    def heal(self) -> None:
        """Remove every injected fault."""
        self.faults.clear()
        self.fault_only_call.clear()

    def answer(
        self, service: str, operation: str, fn: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> None:
        """Answer the handler's call with ``fn(params)`` instead of moto (``None``: let moto answer)."""
        self.overrides[(service, operation)] = fn

    # --- observing -------------------------------------------------------------------------------
    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def s3control(self) -> Any:
        return self.client("s3control")

    def bucket_bpa(self, bucket: str) -> dict[str, bool] | None:
        try:
            return self.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        except ClientError:
            return None

    def account_bpa(self) -> dict[str, bool] | None:
        try:
            return self.s3control.get_public_access_block(AccountId=self.account)[
                "PublicAccessBlockConfiguration"
            ]
        except ClientError:
            return None

    def alerts(self) -> list[Alert]:
        """Drain the SQS subscription of the alert topic."""
        sqs = self.client("sqs")
        found: list[Alert] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                envelope_ = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in envelope_.get("MessageAttributes", {}).items()}
                found.append(Alert(envelope_["Subject"], json.loads(envelope_["Message"]), attributes))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def handler_calls(self, service: str | None = None) -> list[str]:
        return [op for svc, op in self.calls if service is None or svc == service]

    # --- called for every AWS call the handler makes (see _dispatch) ------------------------------
    def before_call(self, service: str, model: Any, params: dict[str, Any]) -> Any:
        self.calls.append((service, model.name))
        self.call_params.append((service, model.name, dict(params)))
        fault = self.faults.get((service, model.name))
        only = self.fault_only_call.get((service, model.name))
        if fault is not None and (only is None or self.calls.count((service, model.name)) == only):
            raise fault(model.name)
        override = self.overrides.get((service, model.name))
        if override is not None:
            answer = override(params)
            if answer is not None:
                return _Http(), answer
        return None

    def client(self, service: str) -> Any:
        """A test-side client (not observed), cached for the process."""
        return _test_client(service, self.region)


# The handler's clients live for the whole test process (creating clients is the slow part), so
# one hook per client dispatches to whichever World is active.
_ACTIVE: list[World] = []


def _dispatch(client: Any) -> None:
    service = client.meta.service_model.service_name

    def before_call(model: Any, params: dict[str, Any], **_: Any) -> Any:
        return _ACTIVE[0].before_call(service, model, params) if _ACTIVE else None

    client.meta.events.register("before-call", before_call)


aws_clients.add_client_hook(_dispatch)
_TEST_CLIENTS: dict[tuple[str, str], Any] = {}
_KEYS: list[Any] = []


def _signing_key(_subscription: Any) -> Any:
    if not _KEYS:
        _KEYS.append(moto_sns_models.rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEYS[0]


def _test_client(service: str, region: str) -> Any:
    key = (service, region)
    if key not in _TEST_CLIENTS:
        _TEST_CLIENTS[key] = _shared_session().client(service, region_name=region)
    return _TEST_CLIENTS[key]


def envelope(record: dict[str, Any]) -> dict[str, Any]:
    """The EventBridge event that carries ``record``."""
    return {
        "version": "0",
        "id": f"eb-{record.get('eventID', 'x')}",
        "detail-type": "AWS API Call via CloudTrail",
        "source": EVENTBRIDGE_SOURCES.get(str(record.get("eventSource")), "aws.s3"),
        "account": record.get("recipientAccountId", ACCOUNT),
        "time": record.get("eventTime", "2026-01-01T00:00:00Z"),
        "region": record.get("awsRegion", REGION),
        "resources": [],
        "detail": record,
    }


_SESSION: list[Any] = []


def _shared_session() -> Any:
    """One boto3 session for all tests: model loading is the slow part of creating clients."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]


@contextmanager
def world_for(
    monkeypatch: pytest.MonkeyPatch, account: str = ACCOUNT, region: str = REGION
) -> Iterator[World]:
    """:func:`build_world` as a context manager, for tests that pick the account per case."""
    yield from build_world(monkeypatch, account, region)


def build_world(
    monkeypatch: pytest.MonkeyPatch, account: str = ACCOUNT, region: str = REGION
) -> Iterator[World]:
    """Start moto for ``account`` with the topic, the capture queue and the idempotency table."""
    monkeypatch.setenv("MOTO_ACCOUNT_ID", account)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_REGION", region)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    # moto signs each subscription's deliveries with a fresh 2048-bit RSA key (~0.1 s); one will do.
    monkeypatch.setattr(moto_sns_models.Subscription, "private_key", _signing_key)
    with mock_aws():
        sns = _test_client("sns", region)
        sqs = _test_client("sqs", region)
        topic_arn = sns.create_topic(Name="s3-exposure-alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="alert-capture")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        _test_client("dynamodb", region).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        world = World(monkeypatch, account, region, _shared_session(), topic_arn, queue_url)
        _ACTIVE[:] = [world]
        world.configure()
        try:
            yield world
        finally:
            _ACTIVE.clear()
            response.reset_settings()


class _TestClients:
    """The ``session.client`` interface replay_state expects, backed by the cached test clients."""

    def __init__(self, region: str) -> None:
        self.region = region

    def client(self, service: str, region_name: str | None = None) -> Any:
        return _test_client(service, region_name or self.region)


_COUNTER: list[int] = [0]


def make_record(
    event_name: str,
    bucket: str | None,
    params: dict[str, Any] | None = None,
    *,
    account: str = ACCOUNT,
    region: str = REGION,
    error: str | None = None,
    user_agent: str = "[aws-cli/2.15.0 Python/3.11.6 Linux/6.2 exe/x86_64 command/s3api]",
) -> dict[str, Any]:
    """A CloudTrail record (event version 1.09) for an S3 call, with a fresh eventID."""
    _COUNTER[0] += 1
    request = {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com"} if bucket else {}
    request.update(params or {})
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:alice",
            "arn": f"arn:aws:sts::{account}:assumed-role/dev-admin/alice",
            "accountId": account,
        },
        "eventTime": "2026-11-02T09:14:23Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": "198.51.100.23",
        "userAgent": user_agent,
        "requestParameters": request,
        "responseElements": None,
        "eventID": f"00000000-0000-4000-8000-{_COUNTER[0]:012d}",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    if error:
        record["errorCode"] = error
        record["errorMessage"] = "injected"
    return record


def public_policy(bucket: str, **statement: Any) -> dict[str, Any]:
    """A policy letting anyone GetObject (``statement`` overrides/extends the statement)."""
    body = {
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        **statement,
    }
    return {"Version": "2012-10-17", "Statement": [body]}


# A server-side failure (HTTP 500), for the fault matrix.
FAULTS["InternalError"] = lambda op: client_error("InternalError", op, 500, "internal error")


def in_days(days: int) -> str:
    """An approval tag value ``days`` from today (within the default 90-day horizon when < 90)."""
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def only_alert(world: World) -> Any:
    """The one alert the world's topic received (fails naming the subjects when not exactly one)."""
    alerts = world.alerts()
    assert len(alerts) == 1, [a.subject for a in alerts]
    return alerts[0]


def new_request_id() -> str:
    """A fresh Lambda request id (FakeContext's default: every invocation gets its own)."""
    import uuid

    return str(uuid.uuid4())

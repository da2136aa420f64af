"""The actor's CloudTrail history: answers, budget, throttling, odd names, cache.

moto does not implement CloudTrail ``LookupEvents``: these tests use the local fake in
``demo/lookup_events_fake.py`` (AWS's documented page shape: ``Events``, ``NextToken``, 50 per
page, ``EventTime`` a datetime, ``CloudTrailEvent`` a JSON string) and, once, a botocore
``Stubber`` with the same shapes. The cache lives in moto's DynamoDB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from demo.lookup_events_fake import LookupEventsFake
from handlers import aws_clients
from handlers.actor_history import actor_history, history_lines, principal_of, trusted_match

ACCOUNT = "111122223333"
TABLE = "seen"
EVENT_TIME = datetime(2026, 11, 2, 9, 14, 23, tzinfo=UTC)
ROLE = f"arn:aws:iam::{ACCOUNT}:role/dev-admin"


def session_arn(session: str = "alice", role: str = "dev-admin") -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"


def record(
    name: str,
    days_before: float,
    *,
    session: str = "alice",
    role: str = "dev-admin",
    ip: str = "198.51.100.23",
    agent: str = "aws-cli/2.15.0",
    event_id: str | None = None,
) -> dict[str, Any]:
    when = EVENT_TIME - timedelta(days=days_before)
    return {
        "eventVersion": "1.09",
        "eventID": event_id or f"ev-{name}-{days_before}-{session}-{role}",
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventName": name,
        "eventSource": "s3.amazonaws.com",
        "sourceIPAddress": ip,
        "userAgent": agent,
        "userIdentity": {
            "type": "AssumedRole",
            "arn": session_arn(session, role),
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}"}
            },
        },
        "requestParameters": {"bucketName": "older"},
    }


def finding(actor: object = None, name: str = "PutBucketPolicy", **extra: Any) -> dict[str, Any]:
    return {
        "eventID": "ev-now",
        "eventName": name,
        "eventTime": EVENT_TIME.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "account": ACCOUNT,
        "actor": session_arn() if actor is None else actor,
        "sourceIPAddress": "198.51.100.23",
        "userAgent": "aws-cli/2.15.0",
        **extra,
    }


class Ok:
    status_code = 200


class Clock:
    """A fake monotonic clock: ``sleep`` advances it, and each call costs ``per_call`` seconds."""

    def __init__(self, per_call: float = 0.0) -> None:
        self.now = 0.0
        self.per_call = per_call
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


ADDED: list[Any] = []  # this module's client hooks, removed after each test (others' hooks stay)


def add_hook(hook: Any) -> None:
    aws_clients.add_client_hook(hook)
    ADDED.append(hook)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws_clients.reset_clients(keep_hooks=True)  # new clients, so this test's hooks see them
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield
    while ADDED:
        aws_clients.remove_client_hook(ADDED.pop())
    aws_clients.reset_clients(keep_hooks=True)


def fake(records: list[dict[str, Any]], clock: Clock | None = None, **options: Any) -> LookupEventsFake:
    """Put the fake in front of every CloudTrail client made from now on."""
    lookup = LookupEventsFake(records, **options)

    def hook(client: Any) -> None:
        if client.meta.service_model.service_name == "cloudtrail":
            lookup.install(client)
            if clock is not None and clock.per_call:
                client.meta.events.register(
                    "before-call", lambda **_: setattr(clock, "now", clock.now + clock.per_call)
                )

    add_hook(hook)
    return lookup


def read(found: dict[str, Any], clock: Clock | None = None, **options: Any) -> dict[str, Any]:
    clock = clock or Clock()
    options.setdefault("table", None)
    return actor_history(found, region="us-east-1", now=EVENT_TIME, clock=clock, sleep=clock.sleep, **options)


def test_history_present_over_several_pages(aws: None) -> None:
    noise = [record("ListBuckets", 1 + i / 10) for i in range(120)]  # 3 pages of 50
    watched = [
        record("PutBucketPolicy", 30),
        record("PutBucketPolicy", 5),
        record("PutBucketAcl", 60, ip="203.0.113.5"),
    ]
    lookup = fake(noise + watched + [record("PutBucketPolicy", 2, role="other-role")])
    clock = Clock()
    found = read(finding(), clock, budget_seconds=10)
    assert found["checked"] == "full" and found["verdict"] == "seen-before"
    assert found["sameApi"] == {"count": 2, "last": "2026-10-28T09:14:23Z"}  # not the other role's session
    assert found["otherWatchedCalls"] == {
        "count": 1,
        "names": {"PutBucketAcl": 1},
        "last": "2026-09-03T09:14:23Z",
    }
    assert found["eventsRead"] == 123 and found["pagesRead"] == 3 and found["daysRead"] == 90
    assert (found["sourceIpSeen"], found["userAgentSeen"], found["firstActivity"]) == (True, True, False)
    assert found["lookup"] == {"attribute": "Username", "value": "alice"}
    assert [r["LookupAttributes"] for r in lookup.requests] == [
        [{"AttributeKey": "Username", "AttributeValue": "alice"}]
    ] * 3
    assert all(r["EndTime"] == EVENT_TIME.timestamp() for r in lookup.requests)
    assert clock.sleeps == [0.5, 0.5]  # paced at 2 requests per second


def test_first_time_needs_the_whole_window_read(aws: None) -> None:
    fake(
        [record("ListBuckets", 100), record("GetBucketAcl", 3, role="other-role")]
    )  # outside window / not hers
    found = read(finding(sourceIPAddress="192.0.2.1"))
    assert found["checked"] == "full" and found["verdict"] == "first-time"
    assert found["firstActivity"] is True and found["sourceIpSeen"] is False and found["eventsRead"] == 0
    lines = history_lines(found)
    assert "Verdict: FIRST-TIME" in lines[-1] and "First activity in this account: yes" in lines


def test_throttled_midway_is_partial_and_never_first_time(aws: None) -> None:
    fake([record("ListBuckets", 1 + i / 2) for i in range(120)], throttle_after=1)
    found = read(finding())
    assert found["checked"] == "partial" and found["verdict"] == "unknown"
    assert found["reason"] == "LookupEvents failed: ThrottlingException"
    assert found["pagesRead"] == 1 and 25 <= found["daysRead"] <= 26  # page 1 reached 25.5 days back
    assert found["firstActivity"] is False and found["sourceIpSeen"] is True
    assert any(line.startswith("History partial: 25.5 days read") for line in history_lines(found))


def test_a_partial_read_still_proves_seen_before(aws: None) -> None:
    fake([record("PutBucketAcl", 0.5)] + [record("ListBuckets", 1 + i) for i in range(80)], throttle_after=1)
    found = read(finding())
    assert (found["checked"], found["verdict"]) == ("partial", "seen-before")


def test_the_budget_is_never_exceeded(aws: None) -> None:
    fake([record("ListBuckets", i / 20) for i in range(1, 1000)])
    clock = Clock(per_call=0.3)
    found = read(finding(), clock, budget_seconds=2.0)
    assert clock.now <= 2.0
    assert found["checked"] == "partial" and found["reason"] == "time budget of 2 s used"
    assert 1 <= found["pagesRead"] <= 4 and found["verdict"] == "unknown"


def test_a_first_page_failure_means_not_checked(aws: None) -> None:
    fake([record("PutBucketAcl", 3)], throttle_after=0)
    found = read(finding())
    assert (found["checked"], found["verdict"]) == ("not-checked", "unknown")
    assert history_lines(found) == ["History not checked: LookupEvents failed: ThrottlingException"]


@pytest.mark.parametrize("session", ["alice+ops@example.com", "a=b,c.d@e-f_g", "jane.doe@acme.example"])
def test_odd_session_names_are_looked_up_exactly(aws: None, session: str) -> None:
    lookup = fake(
        [record("PutBucketPolicy", 4, session=session), record("PutBucketPolicy", 4, session="alice")]
    )
    found = read(finding(session_arn(session)))
    assert found["lookup"]["value"] == session and found["sameApi"]["count"] == 1
    assert lookup.requests[0]["LookupAttributes"][0]["AttributeValue"] == session


@pytest.mark.parametrize(
    "actor",
    [
        None,
        "",
        "AIDAEXAMPLE",
        "s3.amazonaws.com",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/dev-admin/alice\n",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/dev-admin/al ice",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/dev-admin/" + "a" * 65,
        f"arn:aws:iam::{ACCOUNT}:user/<!channel>",
        ["arn:aws:iam::111122223333:user/bob"],
    ],
)
def test_an_actor_lookup_events_cannot_name_makes_no_call(aws: None, actor: object) -> None:
    lookup = fake([record("PutBucketPolicy", 4)])
    found = read(finding(actor=actor) if actor is not None else {**finding(), "actor": None})
    assert found["checked"] == "not-checked" and lookup.requests == []


def test_iam_users_and_root_are_looked_up_by_their_names() -> None:
    user = principal_of(f"arn:aws:iam::{ACCOUNT}:user/ops/bob")
    assert user is not None and (user.username, user.role_arn) == ("bob", None)
    root = principal_of(f"arn:aws:iam::{ACCOUNT}:root")
    assert root is not None and root.username == "root"
    session = principal_of(session_arn("alice"))
    assert session is not None and session.role_arn == ROLE


def test_malformed_pages_and_records_never_crash(aws: None) -> None:
    answers = iter(
        [
            {"Events": "nope", "NextToken": "t1"},
            {"Events": [None, {"CloudTrailEvent": "{not json"}, {"CloudTrailEvent": json.dumps([1])},
                        {"CloudTrailEvent": json.dumps({**record("PutBucketAcl", 2), "eventTime": 5})}],
             "NextToken": 7},
        ]
    )  # fmt: skip

    def hook(client: Any) -> None:
        if client.meta.service_model.service_name == "cloudtrail":
            client.meta.events.register(
                "before-call.cloudtrail.LookupEvents", lambda **_: (Ok(), next(answers))
            )

    add_hook(hook)
    found = read(finding())
    assert found["checked"] == "full", found["reason"]
    assert found["eventsRead"] == 0 and found["verdict"] == "first-time"


def test_trusted_globs_match_the_session_or_its_role() -> None:
    globs = ["arn:aws:iam::*:role/terraform-*", ROLE]
    assert trusted_match(session_arn(), globs) == ROLE
    assert trusted_match(session_arn(role="terraform-ci"), globs) == "arn:aws:iam::*:role/terraform-*"
    assert trusted_match(session_arn(role="dev-admins"), globs) is None
    assert trusted_match("not an arn", globs) is None


def test_the_cache_reads_only_what_is_newer(aws: None) -> None:
    lookup = fake([record("PutBucketAcl", 10), record("ListBuckets", 1)])
    first = read(finding(), table=TABLE)
    assert first["cache"] == "miss" and first["verdict"] == "seen-before"
    later = {
        **finding(),
        "eventID": "ev-later",
        "eventTime": (EVENT_TIME + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    second = read(later, table=TABLE)
    assert second["cache"] == "hit" and second["verdict"] == "seen-before"
    assert second["otherWatchedCalls"]["count"] == 1 and second["eventsRead"] == 2
    assert lookup.requests[1]["StartTime"] == EVENT_TIME.timestamp()  # only after what was cached
    item = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=TABLE)["Items"][0]
    assert item["pk"]["S"].startswith(f"actor#{ACCOUNT}#") and "alice" not in item["pk"]["S"]
    assert len(json.dumps(item)) < 10_000 and int(item["expires_at"]["N"]) > EVENT_TIME.timestamp()


def test_a_cache_that_cannot_be_read_costs_only_a_full_read(aws: None) -> None:
    fake([record("PutBucketAcl", 10)])
    found = read(finding(), table="no-such-table")
    assert (
        found["cache"] == "unavailable" and found["checked"] == "full" and found["verdict"] == "seen-before"
    )


def test_real_shaped_pages_through_a_stubber(aws: None) -> None:
    client = aws_clients.client("cloudtrail", "us-east-1", budgeted=True)
    earlier = record("PutBucketPolicy", 7)
    with Stubber(client) as stub:
        for page, token in (([], "token-2"), ([earlier], None)):
            response: dict[str, Any] = {
                "Events": [
                    {
                        "EventId": r["eventID"],
                        "EventName": r["eventName"],
                        "ReadOnly": "false",
                        "AccessKeyId": "ASIAEXAMPLE",
                        "EventTime": EVENT_TIME - timedelta(days=7),
                        "EventSource": "s3.amazonaws.com",
                        "Username": "alice",
                        "Resources": [{"ResourceType": "AWS::S3::Bucket", "ResourceName": "older"}],
                        "CloudTrailEvent": json.dumps(r),
                    }
                    for r in page
                ]
            }
            if token:
                response["NextToken"] = token
            stub.add_response("lookup_events", response)
        found = read(finding())
        stub.assert_no_pending_responses()
    assert found["sameApi"] == {"count": 1, "last": "2026-10-26T09:14:23Z"} and found["pagesRead"] == 2

"""The actor's CloudTrail history: answers, budget, pacing, throttling, odd names, trust, cache, lines.

moto does not implement CloudTrail ``LookupEvents``, so these tests answer it with the local fake
in ``demo/lookup_events_fake.py``, which follows AWS's documented shapes (``Events`` and
``NextToken``, at most 50 per page, ``EventTime`` a datetime, ``CloudTrailEvent`` a JSON string,
``Username`` the user or session name, inclusive ``StartTime``/``EndTime``), and once with a
botocore ``Stubber`` holding real-shaped pages. The per-principal cache lives in moto's DynamoDB.
Time is a fake clock: ``sleep`` advances it, and each LookupEvents call may cost some seconds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from demo.lookup_events_fake import LookupEventsFake, seed_from_records
from handlers.detection.rules import WATCHED_EVENT_NAMES
from handlers.response import aws_clients
from handlers.response.actor_history import (
    MAX_SEEN,
    actor_history,
    history_lines,
    principal_of,
    trusted_match,
)

ACCOUNT = "111122223333"
TABLE = "idempotency"
REGION = "us-east-1"
EVENT_TIME = datetime(2026, 11, 2, 9, 14, 23, tzinfo=UTC)
ROLE = f"arn:aws:iam::{ACCOUNT}:role/dev-admin"
IP = "198.51.100.23"
AGENT = "aws-cli/2.15.0 Python/3.11.6 command/s3api.put-bucket-policy"


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def session_arn(session: str = "alice", role: str = "dev-admin") -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"


def record(
    name: str,
    days_before: float,
    *,
    session: str = "alice",
    role: str = "dev-admin",
    role_path: str = "/",
    ip: str = IP,
    agent: str = AGENT,
    event_id: str | None = None,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An earlier CloudTrail record of a role session (or of ``identity``)."""
    when = EVENT_TIME - timedelta(days=days_before)
    return {
        "eventVersion": "1.09",
        "eventID": event_id or f"ev-{name}-{days_before}-{session}-{role}-{ip}-{agent}",
        "eventTime": stamp(when),
        "eventName": name,
        "eventSource": "s3.amazonaws.com",
        "sourceIPAddress": ip,
        "userAgent": agent,
        "userIdentity": identity
        or {
            "type": "AssumedRole",
            "arn": session_arn(session, role),
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role{role_path}{role}",
                    "userName": role,
                }
            },
        },
        "requestParameters": {"bucketName": "older-bucket"},
    }


def user_identity(name: str, path: str = "/") -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "arn": f"arn:aws:iam::{ACCOUNT}:user{path}{name}",
        "accountId": ACCOUNT,
        "userName": name,
        "accessKeyId": "AKIAEXAMPLE",
    }


def finding(actor: object = None, name: str = "PutBucketPolicy", **extra: Any) -> dict[str, Any]:
    return {
        "eventID": "ev-now",
        "eventName": name,
        "eventTime": stamp(EVENT_TIME),
        "account": ACCOUNT,
        "region": REGION,
        "actor": session_arn() if actor is None else actor,
        "sourceIPAddress": IP,
        "userAgent": AGENT,
        **extra,
    }


class Clock:
    """A fake monotonic clock: ``sleep`` advances it; each LookupEvents call costs ``per_call``."""

    def __init__(self, per_call: float = 0.0) -> None:
        self.now = 0.0
        self.per_call = per_call
        self.sleeps: list[float] = []
        self.page_starts: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def page(self, **_: Any) -> None:
        self.page_starts.append(self.now)
        self.now += self.per_call


ADDED: list[Any] = []  # this module's client hooks, removed after each test (others' hooks stay)


def add_hook(hook: Callable[[Any], None]) -> None:
    aws_clients.add_client_hook(hook)
    ADDED.append(hook)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """moto with the idempotency table; yields every operation our clients call."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    aws_clients.reset_clients(keep_hooks=True)  # new clients, so this test's hooks see them
    operations: list[str] = []

    def observe(client: Any) -> None:
        service = client.meta.service_model.service_name
        # before-parameter-build comes for every call, before any before-call answer cuts it short
        client.meta.events.register(
            "before-parameter-build", lambda model, **_: operations.append(f"{service}:{model.name}")
        )

    add_hook(observe)
    with mock_aws():
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield operations
    while ADDED:
        aws_clients.remove_client_hook(ADDED.pop())
    aws_clients.reset_clients(keep_hooks=True)


def fake(records: list[dict[str, Any]], clock: Clock | None = None, **options: Any) -> LookupEventsFake:
    """Put the fake in front of every CloudTrail client made from now on."""
    lookup = LookupEventsFake(records, **options)

    def hook(client: Any) -> None:
        if client.meta.service_model.service_name == "cloudtrail":
            if clock is not None:
                client.meta.events.register("before-call.cloudtrail.LookupEvents", clock.page)
            lookup.install(client)

    add_hook(hook)
    return lookup


def answer_with(pages: list[Any], clock: Clock | None = None) -> None:
    """Answer LookupEvents with these raw pages, in order (to feed malformed shapes)."""
    answers = iter(pages)

    class Ok:
        status_code = 200

    def hook(client: Any) -> None:
        if client.meta.service_model.service_name == "cloudtrail":
            client.meta.events.register(
                "before-call.cloudtrail.LookupEvents", lambda **_: (Ok(), next(answers))
            )

    add_hook(hook)


def read(found: Any, clock: Clock | None = None, **options: Any) -> dict[str, Any]:
    clock = clock or Clock()
    options.setdefault("table", None)
    options.setdefault("now", EVENT_TIME)
    result = actor_history(found, region=REGION, clock=clock, sleep=clock.sleep, **options)
    json.dumps(result)  # always JSON-serialisable
    return result


def entry(r: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A LookupEvents entry for record ``r`` in the API's shape."""
    return {
        "EventId": r["eventID"],
        "EventName": r["eventName"],
        "ReadOnly": "false",
        "AccessKeyId": "ASIAEXAMPLE",
        "EventTime": datetime.fromisoformat(r["eventTime"]),
        "EventSource": "s3.amazonaws.com",
        "Username": "alice",
        "Resources": [{"ResourceType": "AWS::S3::Bucket", "ResourceName": "older-bucket"}],
        "CloudTrailEvent": json.dumps(r),
        **overrides,
    }


# ---- the answers -----------------------------------------------------------------------------------


def test_history_present_over_several_pages(aws: list[str]) -> None:
    noise = [record("ListBuckets", 1 + i / 10) for i in range(120)]  # with the rest: 3 pages of 50
    watched = [
        record("PutBucketPolicy", 30),
        record("PutBucketPolicy", 5),
        record("PutBucketAcl", 60, ip="203.0.113.5"),
        record("PutBucketAcl", 61),
        record("DeleteBucketPublicAccessBlock", 70),
    ]
    not_hers = [record("PutBucketPolicy", 2, role="other-role"), record("PutBucketAcl", 3, session="bob")]
    lookup = fake(noise + watched + not_hers)
    clock = Clock()
    found = read(finding(), clock, budget_seconds=10)
    assert (found["checked"], found["reason"], found["verdict"]) == ("full", None, "seen-before")
    assert found["sameApi"] == {"eventName": "PutBucketPolicy", "count": 2, "last": "2026-10-28T09:14:23Z"}
    assert found["otherWatchedCalls"] == {
        "count": 3,
        "names": {"PutBucketAcl": 2, "DeleteBucketPublicAccessBlock": 1},
        "last": "2026-09-03T09:14:23Z",
    }
    assert (found["eventsRead"], found["pagesRead"], found["daysRead"]) == (125, 3, 90.0)
    assert (found["sourceIpSeen"], found["userAgentSeen"], found["firstActivity"]) == (True, True, False)
    assert found["firstSeen"] == "2026-08-24T09:14:23Z"
    assert found["principal"] == session_arn() and found["trusted"] is False and found["cache"] == "off"
    assert found["lookup"] == {"attribute": "Username", "value": "alice"}
    assert [r["LookupAttributes"] for r in lookup.requests] == [
        [{"AttributeKey": "Username", "AttributeValue": "alice"}]
    ] * 3
    assert all(r["EndTime"] == EVENT_TIME.timestamp() for r in lookup.requests)
    assert all(r["StartTime"] == (EVENT_TIME - timedelta(days=90)).timestamp() for r in lookup.requests)
    assert clock.sleeps == [0.5, 0.5]  # paced at 2 requests per second
    assert aws == ["cloudtrail:LookupEvents"] * 3


def test_first_time_needs_the_whole_window_read(aws: list[str]) -> None:
    fake(
        [
            record("PutBucketPolicy", 91),  # outside the 90 days
            record("GetBucketAcl", 3, role="other-role"),  # another role's session called alice
            record("PutBucketPolicy", 0, event_id="ev-now"),  # the alerted call itself
            record("PutBucketAcl", 0, event_id="ev-same-second"),  # at its time: not "before"
        ]
    )
    found = read(finding(sourceIPAddress="192.0.2.1"))
    assert (found["checked"], found["verdict"], found["daysRead"]) == ("full", "first-time", 90.0)
    assert found["firstActivity"] is True and found["eventsRead"] == 0
    assert (found["sourceIpSeen"], found["userAgentSeen"]) == (False, False)
    lines = history_lines(found)
    assert lines[-1].startswith("Verdict: FIRST-TIME") and "First activity in this account: yes" in lines
    assert "Called PutBucketPolicy before: never in the 90 days read" in lines


def test_other_calls_only_mean_not_the_first_activity(aws: list[str]) -> None:
    fake([record("ListBuckets", 4, ip="203.0.113.9"), record("GetObject", 8)])
    found = read(finding())
    assert (found["verdict"], found["firstActivity"], found["sourceIpSeen"]) == ("first-time", False, True)
    assert found["eventsRead"] == 2 and found["otherWatchedCalls"]["count"] == 0


def test_throttled_midway_is_partial_and_never_first_time(aws: list[str]) -> None:
    fake([record("ListBuckets", 1 + i / 2) for i in range(120)], throttle_after=1)
    found = read(finding())
    assert (found["checked"], found["verdict"], found["reason"]) == ("partial", "unknown", "throttled")
    assert found["pagesRead"] == 1 and found["daysRead"] == 25.5  # page 1 reached 25.5 days back
    assert found["firstActivity"] is False and found["sourceIpSeen"] is True
    assert found["firstSeen"] == stamp(EVENT_TIME - timedelta(days=25.5))
    assert "History partial: 25.5 days read (throttled)" in history_lines(found)


def test_a_partial_read_that_found_nothing_proves_nothing(aws: list[str]) -> None:
    others = [record("ListBuckets", 1 + i / 2, role="other-role") for i in range(120)]
    fake(others, throttle_after=2)
    found = read(finding(sourceIPAddress="192.0.2.1"))
    assert (found["checked"], found["verdict"], found["firstActivity"]) == ("partial", "unknown", None)
    assert (found["sourceIpSeen"], found["userAgentSeen"]) == (None, None)  # not seen in part: unknown


def test_a_partial_read_still_proves_seen_before(aws: list[str]) -> None:
    fake([record("PutBucketAcl", 0.5)] + [record("ListBuckets", 1 + i) for i in range(80)], throttle_after=1)
    found = read(finding())
    assert (found["checked"], found["verdict"]) == ("partial", "seen-before")


@pytest.mark.parametrize("error", ["ThrottlingException", "AccessDeniedException"])
def test_a_first_page_failure_means_not_checked(aws: list[str], error: str) -> None:
    fake([record("PutBucketAcl", 3)], throttle_after=0, error_code=error)
    found = read(finding())
    assert (found["checked"], found["verdict"]) == ("not-checked", "unknown")
    assert found["reason"] == f"LookupEvents failed: {error}" and found["principal"] == session_arn()
    assert history_lines(found) == [f"History not checked: LookupEvents failed: {error}"]


def test_a_failure_later_that_is_not_a_throttle_names_the_error(aws: list[str]) -> None:
    fake([record("ListBuckets", 1 + i / 2) for i in range(120)], throttle_after=2, error_code="InternalError")
    found = read(finding())
    assert (found["checked"], found["reason"], found["pagesRead"]) == (
        "partial",
        "LookupEvents failed: InternalError",
        2,
    )


def test_the_window_is_the_90_days_before_the_event_not_before_now(aws: list[str]) -> None:
    lookup = fake([record("PutBucketAcl", 89), record("PutBucketPolicy", 91)])
    found = read(finding(), now=EVENT_TIME + timedelta(days=30))  # a replayed, older event
    assert (found["checked"], found["verdict"], found["otherWatchedCalls"]["count"]) == (
        "full",
        "seen-before",
        1,
    )
    assert found["sameApi"]["count"] == 0
    assert lookup.requests[0]["StartTime"] == (EVENT_TIME - timedelta(days=90)).timestamp()
    assert lookup.requests[0]["EndTime"] == EVENT_TIME.timestamp()
    future = read(finding(eventTime=stamp(EVENT_TIME + timedelta(days=2))))  # never past "now"
    assert future["checked"] == "full" and lookup.requests[-1]["EndTime"] == EVENT_TIME.timestamp()


# ---- the budget and the pace --------------------------------------------------------------------------


@pytest.mark.parametrize(("per_call", "budget"), [(0.05, 2.0), (0.3, 2.0), (1.2, 3.0), (0.3, 5.0)])
def test_the_budget_is_never_exceeded(aws: list[str], per_call: float, budget: float) -> None:
    clock = Clock(per_call=per_call)
    fake([record("ListBuckets", i / 20) for i in range(1, 1000)] + [record("PutBucketAcl", 80)], clock)
    found = read(finding(), clock, budget_seconds=budget)
    assert clock.now <= budget
    assert found["checked"] == "partial" and found["reason"] == f"time budget of {budget:g} s used"
    assert found["verdict"] == "unknown"  # the one watched call is 80 days back: not reached
    assert found["pagesRead"] == len(clock.page_starts) >= 1


def test_pages_start_at_least_half_a_second_apart(aws: list[str]) -> None:
    clock = Clock(per_call=0.1)
    fake([record("ListBuckets", i / 20) for i in range(1, 400)], clock)
    found = read(finding(), clock, budget_seconds=60)
    starts = clock.page_starts
    assert found["pagesRead"] == 8 and len(starts) == 8
    assert all(later - earlier >= 0.5 for earlier, later in itertools.pairwise(starts))
    assert clock.sleeps and all(abs(s - 0.4) < 1e-9 for s in clock.sleeps)  # 0.1 s call + 0.4 s wait


def test_a_budget_too_small_for_one_page_calls_nothing(aws: list[str]) -> None:
    lookup = fake([record("PutBucketAcl", 3)])
    found = read(finding(), budget_seconds=0.2)
    assert found["checked"] == "not-checked" and found["reason"] == "time budget of 0.2 s used"
    assert lookup.requests == []


# ---- whose history ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "session", ["alice+ops@example.com", "a=b,c.d@e-f_g", "jane.doe@acme.example", "svc-01_x.y"]
)
def test_odd_session_names_are_looked_up_exactly(aws: list[str], session: str) -> None:
    lookup = fake(
        [record("PutBucketPolicy", 4, session=session), record("PutBucketPolicy", 5, session="alice")]
    )
    found = read(finding(session_arn(session)))
    assert found["lookup"] == {"attribute": "Username", "value": session}
    assert found["sameApi"]["count"] == 1 and found["checked"] == "full"
    assert lookup.requests[0]["LookupAttributes"] == [{"AttributeKey": "Username", "AttributeValue": session}]


def test_an_iam_user_with_a_path_is_looked_up_by_user_name(aws: list[str]) -> None:
    alice = user_identity("alice+ops@example.com", "/team/ops/")
    same_name_session = record("PutBucketAcl", 2, session="alice+ops@example.com")
    lookup = fake([record("PutBucketPolicy", 9, identity=alice), same_name_session])
    found = read(finding(alice["arn"]))
    assert lookup.requests[0]["LookupAttributes"][0]["AttributeValue"] == "alice+ops@example.com"
    assert found["sameApi"]["count"] == 1 and found["otherWatchedCalls"]["count"] == 0  # not the session


def test_sessions_of_a_role_with_a_path_are_recognised_by_the_issuer() -> None:
    sso = "AWSReservedSSO_Admin_0123456789abcdef"
    principal = principal_of(session_arn("jane.doe@acme.example", sso))
    assert principal is not None and principal.role_arn == f"arn:aws:iam::{ACCOUNT}:role/{sso}"
    issuer_only = {
        "arn": "not an arn",
        "sessionContext": {
            "sessionIssuer": {"arn": f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/{sso}"}
        },
    }
    assert principal.owns(issuer_only)
    assert not principal.owns({"arn": session_arn("jane.doe@acme.example", "other")})
    assert not principal.owns("not a mapping")


def test_iam_users_and_root_are_looked_up_by_their_names() -> None:
    user = principal_of(f"arn:aws:iam::{ACCOUNT}:user/ops/bob")
    assert user is not None and (user.username, user.role_arn) == ("bob", None)
    root = principal_of(f"arn:aws:iam::{ACCOUNT}:root")
    assert root is not None and root.username == "root"
    assert principal_of(f"arn:aws-us-gov:sts::{ACCOUNT}:assumed-role/r/s") is not None


@pytest.mark.parametrize(
    ("actor", "reason"),
    [
        (None, "no actor in the record"),
        ("", "no actor in the record"),
        ("AIDAEXAMPLEEXAMPLE", "the actor is not a valid ARN"),
        (
            "s3.amazonaws.com",
            "the caller is an AWS service or another account, not a principal of this account",
        ),
        ("AWSService", "the caller is an AWS service or another account, not a principal of this account"),
        ("ANONYMOUS_PRINCIPAL", "the caller is anonymous"),
        (f"arn:aws:sts::{ACCOUNT}:federated-user/bob", "federated-user sessions are not looked up"),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/dev-admin/alice\n", "the actor is not a valid ARN"),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/dev-admin/al ice", "the actor is not a valid ARN"),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/dev-admin/al\x00ice", "the actor is not a valid ARN"),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/dev-admin/al\u200bice", None),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/dev-admin/" + "a" * 65, None),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/dev-admin/" + "a" * 5000, None),
        ("arn:aws:sts::1111:assumed-role/dev-admin/alice", None),
        (f"arn:aws:iam::{ACCOUNT}:user/<!channel>", None),
        (f"arn:aws:iam::{ACCOUNT}:user/x@here", None),
        (f"arn:aws:iam::{ACCOUNT}:role/dev-admin", None),
        ("arn:aws:s3:::some-bucket", None),
        (["arn:aws:iam::111122223333:user/bob"], None),
        ({"arn": session_arn()}, None),
    ],
)
def test_an_actor_lookup_events_cannot_name_makes_no_call(
    aws: list[str], actor: object, reason: str | None
) -> None:
    lookup = fake([record("PutBucketPolicy", 4)])
    found = read({**finding(), "actor": actor}, table=TABLE)
    assert (found["checked"], found["verdict"], found["principal"], found["lookup"]) == (
        "not-checked",
        "unknown",
        None,
        None,
    )
    assert lookup.requests == [] and aws == []  # nothing sent to AWS: not even the cache
    if reason:
        assert found["reason"] == reason
    assert all(line.isascii() and "\n" not in line for line in history_lines(found))


# ---- malformed answers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        {"Events": "nope"},
        {"Events": None},
        {},
        None,
        "a string",
        {"Events": [], "NextToken": 7},
        {"Events": [], "NextToken": ["t"]},
    ],
)
def test_a_malformed_first_page_is_not_checked(aws: list[str], page: Any) -> None:
    answer_with([page])
    found = read(finding())
    assert (found["checked"], found["reason"]) == ("not-checked", "LookupEvents answer malformed")


def test_malformed_entries_never_crash_and_prove_nothing(aws: list[str]) -> None:
    good = record("ListBuckets", 2)
    answer_with(
        [
            {"Events": [entry(record("ListBuckets", 1))], "NextToken": "t2"},
            {
                "Events": [
                    None,
                    "x",
                    {"CloudTrailEvent": "{not json"},
                    {"CloudTrailEvent": json.dumps([1])},
                    {"CloudTrailEvent": 5},
                    {"CloudTrailEvent": json.dumps({**good, "eventTime": 5}), "EventTime": "also bad"},
                    {"CloudTrailEvent": json.dumps({**good, "eventID": "e2", "userIdentity": "root"})},
                    {
                        "CloudTrailEvent": json.dumps(
                            {**good, "eventID": "e3", "eventName": {"a": 1}, "sourceIPAddress": ["x"]}
                        )
                    },
                    entry(good),  # the same event twice counts once
                    entry(good, EventTime="2026-10-31T09:14:23Z"),
                ]
            },
        ]
    )
    found = read(finding())
    assert (found["checked"], found["verdict"]) == ("partial", "unknown")
    assert found["reason"] == "6 events unreadable" and found["daysRead"] == 90
    assert found["eventsRead"] == 3  # page 1, the bad-name one, and the good one


def test_an_event_time_only_in_the_entry_is_used(aws: list[str]) -> None:
    earlier = record("PutBucketPolicy", 3)
    del earlier["eventTime"]
    answer_with([{"Events": [entry({**earlier, "eventTime": stamp(EVENT_TIME - timedelta(days=3))})]}])
    answer = read(finding())
    assert answer["sameApi"]["last"] == stamp(EVENT_TIME - timedelta(days=3))


def test_anything_unexpected_becomes_not_checked(aws: list[str]) -> None:
    def broken(client: Any) -> None:
        if client.meta.service_model.service_name == "cloudtrail":

            def fail(**_: Any) -> None:
                raise RuntimeError("boom")

            client.meta.events.register("before-call.cloudtrail.LookupEvents", fail)

    add_hook(broken)
    found = read(finding())
    assert found["checked"] == "not-checked" and found["reason"] == "LookupEvents failed: RuntimeError"
    for weird in (None, [], "text", {"actor": session_arn(), "eventTime": object()}):
        assert read(weird)["checked"] == "not-checked"
    broken_sleep = actor_history(
        finding(),
        region=REGION,
        table=None,
        now=EVENT_TIME,
        sleep=None,  # type: ignore[arg-type]
    )
    assert broken_sleep["checked"] == "not-checked"


# ---- trust --------------------------------------------------------------------------------------------


def test_trusted_globs_match_the_session_or_its_role() -> None:
    globs = ["arn:aws:iam::*:role/terraform-*", ROLE]
    assert trusted_match(session_arn(), globs) == ROLE
    assert trusted_match(session_arn(role="terraform-ci"), globs) == "arn:aws:iam::*:role/terraform-*"
    assert trusted_match(session_arn(role="dev-admins"), globs) is None
    assert trusted_match("not an arn", globs) is None
    assert trusted_match(session_arn(), [None, 5, ROLE]) == ROLE  # type: ignore[list-item]
    assert trusted_match(session_arn(), "arn:*") is None  # a string is not a list of globs
    with_path = f"arn:aws:iam::{ACCOUNT}:role/ci/dev-admin"
    assert trusted_match(session_arn(), [with_path], issuer=with_path) == with_path
    assert trusted_match(session_arn(), [with_path], issuer=f"arn:aws:iam::{ACCOUNT}:role/ci/other") is None
    assert trusted_match(f"arn:aws:iam::{ACCOUNT}:user/deploy-bot", ["*:user/deploy-*"]) == "*:user/deploy-*"


def test_trust_is_context_in_the_answer(aws: list[str]) -> None:
    fake([])
    glob = "arn:aws:iam::*:role/dev-admin"
    trusted = read(finding(), trusted_principals=[glob])
    assert (trusted["trusted"], trusted["trustedMatch"], trusted["verdict"]) == (True, glob, "first-time")
    assert history_lines(trusted)[0] == f"Change by trusted automation (matches {glob})"
    plain = read(finding(), trusted_principals=["arn:aws:iam::*:role/terraform-deploy"])
    assert (plain["trusted"], plain["trustedMatch"]) == (False, None)
    denied = read({**finding(), "actor": "s3.amazonaws.com"}, trusted_principals=[glob])
    assert denied["trusted"] is False and denied["checked"] == "not-checked"


# ---- the cache ----------------------------------------------------------------------------------------


def cache_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]
    return items


def later(minutes: float, **extra: Any) -> dict[str, Any]:
    when = EVENT_TIME + timedelta(minutes=minutes)
    return finding(eventID=f"ev-later-{minutes}", eventTime=stamp(when), **extra)


def test_the_cache_reads_only_what_is_newer(aws: list[str]) -> None:
    alerted = record("PutBucketPolicy", 0, event_id="ev-now")
    lookup = fake([record("PutBucketAcl", 10), record("ListBuckets", 1), alerted])
    first = read(finding(), table=TABLE)
    assert (first["cache"], first["verdict"], first["sameApi"]["count"]) == ("miss", "seen-before", 0)
    second = read(later(5), table=TABLE, now=EVENT_TIME + timedelta(minutes=5))
    assert (second["cache"], second["checked"], second["verdict"]) == ("hit", "full", "seen-before")
    # the first alert's own call is history now; the cached counts carry the rest
    assert second["sameApi"] == {"eventName": "PutBucketPolicy", "count": 1, "last": stamp(EVENT_TIME)}
    assert second["otherWatchedCalls"]["count"] == 1 and second["eventsRead"] == 3
    assert second["pagesRead"] == 1 and second["daysRead"] == 90
    assert lookup.requests[1]["StartTime"] == EVENT_TIME.timestamp()  # only after what was cached
    (item,) = cache_items()
    assert (
        item["pk"]["S"].startswith(f"actor#{ACCOUNT}#") and len(item["pk"]["S"]) == len("actor##") + 12 + 64
    )
    assert "alice" not in json.dumps(item) and IP not in json.dumps(item)
    assert int(item["expires_at"]["N"]) == int(EVENT_TIME.timestamp()) + 900  # from the full read, not later
    expired = read(later(16), table=TABLE, now=EVENT_TIME + timedelta(minutes=16))
    assert expired["cache"] == "miss" and lookup.requests[-1]["StartTime"] < EVENT_TIME.timestamp()
    assert aws.count("dynamodb:GetItem") == 3 and aws.count("dynamodb:PutItem") == 3


def test_a_cache_hit_with_a_failed_gap_read_keeps_the_proof_but_is_not_rewritten(aws: list[str]) -> None:
    lookup = fake([record("PutBucketAcl", 10)])
    read(finding(), table=TABLE)
    written = cache_items()
    lookup.throttle_after = lookup.pages  # the next request is throttled
    found = read(later(3), table=TABLE, now=EVENT_TIME + timedelta(minutes=3))
    assert (found["cache"], found["checked"], found["verdict"]) == ("hit", "partial", "seen-before")
    assert found["reason"] == "LookupEvents failed: ThrottlingException" and found["pagesRead"] == 0
    assert cache_items() == written


def test_an_older_event_does_not_use_or_replace_a_newer_cache(aws: list[str]) -> None:
    fake([record("PutBucketAcl", 10)])
    read(later(10), table=TABLE, now=EVENT_TIME + timedelta(minutes=10))
    written = cache_items()
    found = read(finding(), table=TABLE, now=EVENT_TIME + timedelta(minutes=10))
    assert found["cache"] == "miss" and found["checked"] == "full"
    assert cache_items() == written


def test_a_partial_read_is_cached_only_when_it_proved_seen_before(aws: list[str]) -> None:
    fake([record("ListBuckets", 1 + i / 2) for i in range(120)], throttle_after=1)
    unknown = read(finding(), table=TABLE)
    assert (unknown["verdict"], unknown["cache"], cache_items()) == ("unknown", "miss", [])
    aws_clients.remove_client_hook(ADDED.pop())  # a new fake for new clients
    aws_clients.reset_clients(keep_hooks=True)
    lookup = fake(
        [record("PutBucketAcl", 0.5)] + [record("ListBuckets", 1 + i) for i in range(80)], throttle_after=1
    )
    proven = read(finding(), table=TABLE)
    assert (proven["verdict"], proven["checked"], len(cache_items())) == ("seen-before", "partial", 1)
    lookup.throttle_after = None
    again = read(later(2), table=TABLE, now=EVENT_TIME + timedelta(minutes=2))
    assert (again["cache"], again["checked"], again["verdict"]) == ("hit", "partial", "seen-before")
    assert again["reason"] == "throttled"


@pytest.mark.parametrize("table", ["no-such-table", TABLE])
def test_a_cache_that_cannot_be_used_costs_only_a_full_read(aws: list[str], table: str) -> None:
    fake([record("PutBucketAcl", 10)])
    if table == TABLE:  # readable but refusing writes

        def refuse(client: Any) -> None:
            if client.meta.service_model.service_name == "dynamodb":

                def deny(model: Any, **_: Any) -> None:
                    if model.name == "PutItem":
                        raise ClientError({"Error": {"Code": "AccessDeniedException"}}, "PutItem")

                client.meta.events.register("before-call", deny)

        add_hook(refuse)
    found = read(finding(), table=table)
    assert (found["cache"], found["checked"], found["verdict"]) == ("unavailable", "full", "seen-before")


@pytest.mark.parametrize(
    "summary",
    ["{not json", json.dumps({"v": 2}), json.dumps([1]), "x" * 20_000, json.dumps({"v": 1, "newest": "x"})],
)
def test_a_cache_item_that_is_not_ours_is_a_miss(aws: list[str], summary: str) -> None:
    fake([record("PutBucketAcl", 10)])
    read(finding(), table=TABLE)
    (item,) = cache_items()
    item["summary"] = {"S": summary}
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=TABLE, Item=item)
    found = read(later(1), table=TABLE, now=EVENT_TIME + timedelta(minutes=1))
    assert (found["cache"], found["checked"], found["verdict"]) == ("miss", "full", "seen-before")


def test_the_cache_item_stays_small_and_a_capped_set_proves_no_miss(aws: list[str]) -> None:
    names = sorted(WATCHED_EVENT_NAMES)
    many = [
        record(
            names[i % len(names)],
            1 + i / 10,
            ip=f"10.0.{i // 250}.{i % 250}",
            agent=f"agent/{i} " + "x" * 200,
        )
        for i in range(600)
    ]
    fake(many)
    found = read(
        finding(sourceIPAddress="192.0.2.99", userAgent="never-seen"), table=TABLE, budget_seconds=60
    )
    assert found["checked"] == "full" and found["eventsRead"] == 600
    assert (found["sourceIpSeen"], found["userAgentSeen"]) == (None, None)  # capped: a miss proves nothing
    assert len(found["otherWatchedCalls"]["names"]) == 10
    (item,) = cache_items()
    summary = json.loads(item["summary"]["S"])
    assert len(summary["ips"]) == MAX_SEEN and summary["ipsFull"] is True
    assert len(json.dumps(item)) < 10_000
    again = read(later(1, sourceIPAddress="10.0.0.1"), table=TABLE, now=EVENT_TIME + timedelta(minutes=1))
    assert again["cache"] == "hit" and again["sourceIpSeen"] is True


# ---- a real-shaped answer -----------------------------------------------------------------------------


def test_real_shaped_pages_through_a_stubber(aws: list[str]) -> None:
    client = aws_clients.client("cloudtrail", REGION, budgeted=True)
    earlier, noise = record("PutBucketPolicy", 7), record("ListBuckets", 1)
    expected = {
        "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "alice"}],
        "StartTime": EVENT_TIME - timedelta(days=90),
        "EndTime": EVENT_TIME,
        "MaxResults": 50,
    }
    with Stubber(client) as stub:
        stub.add_response("lookup_events", {"Events": [entry(noise)], "NextToken": "token-2"}, expected)
        stub.add_response("lookup_events", {"Events": [entry(earlier)]}, {**expected, "NextToken": "token-2"})
        found = read(finding())
        stub.assert_no_pending_responses()
    assert found["sameApi"]["count"] == 1 and found["sameApi"]["last"] == "2026-10-26T09:14:23Z"
    assert (found["pagesRead"], found["checked"], found["eventsRead"]) == (2, "full", 2)


# ---- the alert's lines --------------------------------------------------------------------------------


def test_history_lines_say_what_was_found() -> None:
    history = {
        "checked": "partial",
        "reason": "throttled",
        "daysRead": 12.0,
        "sameApi": {"eventName": "PutBucketPolicy", "count": 3, "last": "2026-10-30T10:00:00Z"},
        "otherWatchedCalls": {
            "count": 5,
            "names": {"PutBucketAcl": 3, "PutBucketPublicAccessBlock": 2},
            "last": "2026-10-01T08:00:00Z",
        },
        "sourceIpSeen": True,
        "userAgentSeen": False,
        "firstActivity": False,
        "firstSeen": "2026-10-21T00:00:00Z",
        "verdict": "seen-before",
        "trusted": True,
        "trustedMatch": "arn:aws:iam::*:role/terraform-deploy",
    }
    assert history_lines(history) == [
        "Change by trusted automation (matches arn:aws:iam::*:role/terraform-deploy)",
        "Called PutBucketPolicy before: 3 times in 12 days, last 2026-10-30T10:00:00Z",
        "Other watched S3 permission calls: 5 (PutBucketAcl 3, PutBucketPublicAccessBlock 2), "
        "last 2026-10-01T08:00:00Z",
        "Source IP seen before: yes",
        "User agent seen before: no",
        "First activity in this account: no (earliest event read 2026-10-21T00:00:00Z)",
        "Verdict: SEEN-BEFORE: this principal has made such calls before",
        "History partial: 12 days read (throttled)",
    ]


def test_history_lines_print_nothing_the_caller_chose() -> None:
    tampered = {
        "checked": "full",
        "daysRead": "90; rm -rf /",
        "sameApi": {"eventName": "<!channel> Evil", "count": 1, "last": "now\n@here"},
        "otherWatchedCalls": {"count": True, "names": {"@everyone": 9, "PutBucketAcl": 1}, "last": "x"},
        "sourceIpSeen": "yes",
        "firstSeen": "\u202eevil",
        "verdict": "pwned",
        "trusted": "yes",
        "trustedMatch": "<@U123>\nnext",
    }
    lines = history_lines(tampered)
    text = "\n".join(lines)
    assert all(line.isascii() and "\n" not in line for line in lines)
    for bad in ("<", ">", "@", "rm -rf", "Evil", "everyone", "pwned", "evil", "trusted"):
        assert bad not in text
    assert "Called this API before: 1 time in 0 days, last unknown" in lines
    assert "Other watched S3 permission calls: 0 (PutBucketAcl 1)" in lines
    assert lines[-1] == "Verdict: UNKNOWN: the history could not be read in full"
    assert history_lines({"checked": "not-checked", "reason": "x\n<@here>"}) == [
        "History not checked: x???here?"
    ]
    assert history_lines({}) == ["History not checked: -"]


# ---- the fake itself ----------------------------------------------------------------------------------


def test_the_fake_filters_like_lookup_events() -> None:
    bob = user_identity("bob")
    records = [
        record("PutBucketPolicy", 1),
        {**record("GetBucketAcl", 2, identity=bob), "readOnly": True},
        {**record("PutObject", 3, session="carol"), "requestParameters": {"bucketName": "b", "key": "k"}},
        {**record("ConsoleLogin", 4, identity={"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root"})},
    ]
    lookup = LookupEventsFake(records)

    def names(key: str, value: str) -> list[str]:
        page = lookup.lookup({"LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}]})
        return [e["EventName"] for e in page["Events"]]

    assert names("Username", "alice") == ["PutBucketPolicy"]
    assert names("Username", "bob") == ["GetBucketAcl"] and names("Username", "root") == ["ConsoleLogin"]
    assert names("EventName", "PutObject") == ["PutObject"] and names("ReadOnly", "true") == ["GetBucketAcl"]
    assert names("AccessKeyId", "AKIAEXAMPLE") == ["GetBucketAcl"]
    assert names("EventId", records[0]["eventID"]) == ["PutBucketPolicy"]
    assert names("ResourceName", "b/k") == ["PutObject"] and names("ResourceType", "AWS::S3::Object") == [
        "PutObject"
    ]
    assert len(names("EventSource", "s3.amazonaws.com")) == 4
    newest_first = [e["EventTime"] for e in lookup.lookup({})["Events"]]
    assert newest_first == sorted(newest_first, reverse=True)
    at = (EVENT_TIME - timedelta(days=2)).timestamp()
    assert len(lookup.lookup({"StartTime": at, "EndTime": at})["Events"]) == 1  # both ends inclusive


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (
            {
                "LookupAttributes": [
                    {"AttributeKey": "Username", "AttributeValue": "a"},
                    {"AttributeKey": "EventName", "AttributeValue": "b"},
                ]
            },
            "InvalidLookupAttributesException",
        ),
        (
            {"LookupAttributes": [{"AttributeKey": "UserArn", "AttributeValue": "a"}]},
            "InvalidLookupAttributesException",
        ),
        ({"StartTime": 10, "EndTime": 5}, "InvalidTimeRangeException"),
        ({"MaxResults": 51}, "InvalidMaxResultsException"),
        ({"NextToken": "bm90LWEtdG9rZW4="}, "InvalidNextTokenException"),
    ],
)
def test_the_fake_refuses_what_lookup_events_refuses(request_: dict[str, Any], code: str) -> None:
    with pytest.raises(ClientError) as raised:
        LookupEventsFake([record("ListBuckets", 1)]).lookup(request_)
    assert raised.value.response["Error"]["Code"] == code


def test_the_fake_pages_with_tokens_bound_to_the_request() -> None:
    lookup = LookupEventsFake([record("ListBuckets", 1 + i) for i in range(7)])
    first = lookup.lookup({"MaxResults": 3})
    assert len(first["Events"]) == 3 and first["NextToken"]
    second = lookup.lookup({"MaxResults": 3, "NextToken": first["NextToken"]})
    assert [e["EventId"] for e in second["Events"]] != [e["EventId"] for e in first["Events"]]
    with pytest.raises(ClientError):
        lookup.lookup({"MaxResults": 3, "NextToken": first["NextToken"], "StartTime": 1})


def test_seeding_moves_records_into_the_last_90_days_as_new_events() -> None:
    now = datetime(2027, 1, 1, tzinfo=UTC)
    originals = [record("PutBucketAcl", 400), record("PutBucketPolicy", 300), record("ListBuckets", 200)]
    seeded = seed_from_records(originals, now=now, keep=lambda r: r["eventName"] != "ListBuckets")
    assert [r["eventName"] for r in seeded] == ["PutBucketAcl", "PutBucketPolicy"]  # order kept
    times = [datetime.fromisoformat(r["eventTime"]) for r in seeded]
    assert times == [now - timedelta(days=89), now - timedelta(days=1)]
    assert {r["eventID"] for r in seeded}.isdisjoint(r["eventID"] for r in originals)
    assert seeded == seed_from_records(originals, now=now, keep=lambda r: r["eventName"] != "ListBuckets")
    lookup = LookupEventsFake.from_dataset(originals, now=now)
    assert len(lookup.events) == 3 and originals[0]["eventTime"] == stamp(EVENT_TIME - timedelta(days=400))

"""Hypothesis fuzz of the response handler: attacker strings in every record field and tag value.

Each example is a well-formed EventBridge envelope (provenance holds) whose CloudTrail record
carries arbitrary strings (newlines, control characters, Unicode separators, chat mention and
link syntax, shell metacharacters, values up to 10 KB) in the fields an attacker sets: the object
key, user agent, source IP, principal ARN, error message, the policy's Sid and principal, and
the bucket's tag values (answered for ``GetBucketTagging``). Asserted for every alert:

- no exception escapes the handler (publishing works here, so nothing may raise);
- the text holds no raw control character and no live mention or link syntax;
- every command line, split with ``shlex.split``, is exactly the argv the command builders make
  from the real bucket and account;
- every link's host is an AWS console host.
"""

from __future__ import annotations

import shlex
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from response_fixtures import World, build_world, make_record, public_policy

from handlers.response.alert import command_lines
from handlers.response.cli_commands import bucket_fix_command

BUCKET = "acme-fuzz"
LIVE_SYNTAX = ("<!channel>", "<!here>", "<!everyone>", "@here", "@channel", "@everyone", "<http", "](http")
NASTY = [
    "\n\nSTATE NOW\n  Exposure: not public\n",
    "<!channel>",
    "<!here|here>",
    "@here",
    "<https://evil.example|AWS console>",
    "[console](https://evil.example)",
    "$(id)",
    "`id`",
    "; rm -rf ~",
    "' \" \\",
    "\u2028\u2029\x85",
    "\x1b[31m",
    "\u202e",
    "\x00",
]
text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(NASTY),
    st.lists(st.sampled_from(NASTY), min_size=1, max_size=5).map("".join),
    st.integers(min_value=1_000, max_value=10_000).map(lambda n: ("@here\n" * n)[:n]),
)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for made in build_world(monkeypatch):
            made.configure(REMEDIATION_MODE="dry-run")
            made.s3.create_bucket(Bucket=BUCKET)
            yield made


def record_with(fields: dict[str, str], scope: str) -> dict[str, Any]:
    policy = public_policy(BUCKET, Sid=fields["sid"])  # public: anyone may read
    policy["Statement"].append({**policy["Statement"][0], "Principal": {"AWS": fields["principal"]}})
    if scope == "object":
        params = {"key": fields["key"], "x-amz-acl": "public-read"}
        record = make_record("PutObjectAcl", BUCKET, params, user_agent=fields["agent"])
    else:
        record = make_record("PutBucketPolicy", BUCKET, {"bucketPolicy": policy}, user_agent=fields["agent"])
    record["sourceIPAddress"] = fields["ip"]
    record["userIdentity"]["arn"] = fields["actor"]
    record["userIdentity"]["principalId"] = fields["actor"]
    if fields["error"]:
        record["errorCode"] = fields["error"][:40] or "AccessDenied"
        record["errorMessage"] = fields["error"]
    return record


def assert_safe(text_: str, account: str) -> None:
    for char in text_:
        if char != "\n":
            assert unicodedata.category(char) not in ("Cc", "Zl", "Zp"), repr(char)
    lowered = text_.lower()
    for live in LIVE_SYNTAX:
        assert live not in lowered, live
    fix = shlex.split(bucket_fix_command(BUCKET, account) or "")
    for command in command_lines(text_):
        argv = shlex.split(command)
        assert argv[0] == "aws"
        if argv[:3] == ["aws", "s3api", "put-public-access-block"]:
            assert argv == fix, argv
        if "--bucket" in argv:
            assert argv[argv.index("--bucket") + 1] == BUCKET


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fields=st.fixed_dictionaries(
        {
            "key": text,
            "agent": text,
            "ip": text,
            "actor": text,
            "sid": text,
            "principal": text,
            "error": st.one_of(st.just(""), text),
            "tag": text,
        }
    ),
    scope=st.sampled_from(["bucket", "object"]),
)
def test_attacker_strings_never_crash_forge_or_escape(
    world: World, fields: dict[str, str], scope: str
) -> None:
    tags = [
        {"Key": "public-access-approved-until", "Value": fields["tag"]},
        {"Key": fields["tag"], "Value": "x"},
    ]
    world.answer("s3", "GetBucketTagging", lambda _params: {"TagSet": tags})
    summary = world.invoke(record_with(fields, scope))
    alerts = world.alerts()
    assert summary["outcome"] == "handled" and alerts
    for alert in alerts:
        assert_safe(alert.text, world.account)
        assert_safe(alert.payload["text"], world.account)
        assert alert.subject.isascii() and "\n" not in alert.subject
        for url in alert.payload["links"].values():
            assert url.startswith("https://") and url.split("/")[2].endswith(".console.aws.amazon.com"), url

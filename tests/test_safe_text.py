"""handlers.detection.safe_text: the gate every attacker-settable string passes before it reaches an alert.

Unit tests pin the escapes, the neutralised chat syntax, the cap and the validators; hypothesis
properties check that whatever goes in, what comes out is one line with no raw control or
invisible character, no live mention or link syntax, bounded, and that nothing raises.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.detection import safe_text
from handlers.detection.safe_text import (
    block,
    checked_access_point,
    checked_account,
    checked_arn,
    checked_bucket,
    checked_event_id,
    checked_region,
    checked_username,
    console_host_url,
    console_url,
    inline,
    shell_command,
    shown,
)

# What must never survive inline(): raw control/invisible characters and live chat syntax.
RAW_FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ud800-\udfff]"
)
LIVE_SYNTAX = re.compile(
    r"<[!@#]|<https?:|<mailto:|<[^>]*\|[^>]*>|(?i:@(?:here|channel|everyone))|\]\(|[a-z][a-z0-9+.-]*://|&lt;",
    re.IGNORECASE,
)
MARKER = re.compile(r"…\[\+\d+ chars\]$")

SPECIAL_CHARS = "\n\r\t\x1b\x00\x7f\x85\u2028\u2029\u202e\u2066\u200b\ufeff<>@|[]():/&;#"
TOKENS = (
    *("<!channel>", "<!here>", "<!everyone>", "@here", "@channel", "@everyone", "<@U123>", "<#C123>"),
    *("<!subteam^S1>", "<https://evil.example|AWS console>", "[AWS](https://evil)", "https://evil.example"),
    *("&lt;!channel&gt;", "$(id)", "`id`", "STATE NOW"),
)
HOSTILE_TEXT = st.lists(
    st.one_of(
        st.text(st.characters(), max_size=20),  # every code point, surrogates and controls included
        st.text(st.sampled_from(SPECIAL_CHARS), max_size=10),
        st.sampled_from(TOKENS),
    ),
    max_size=30,
).map("".join)


# ---- inline ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.csv\n\nSTATE NOW", "report.csv\\n\\nSTATE NOW"),
        ("a\rb\tc", "a\\rb\\tc"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x00\x7f\x85\x9f", "\\x00\\x7f\\x85\\x9f"),
        ("line\u2028sep\u2029para", "line\\u2028sep\\u2029para"),
        ("abc\u202eexe.txt", "abc\\u202eexe.txt"),
        ("iso\u2066late\u2069", "iso\\u2066late\\u2069"),
        ("zero\u200bwidth\u200d\ufeff", "zero\\u200bwidth\\u200d\\ufeff"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("lone \udc00 surrogate", "lone \\udc00 surrogate"),
    ],
)
def test_inline_escapes_control_and_invisible_characters_visibly(raw: str, expected: str) -> None:
    assert inline(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<!channel> hi", "‹!channel› hi"),
        ("<!here>", "‹!here›"),
        ("<!everyone>", "‹!everyone›"),
        ("<!subteam^S123|oncall>", "‹!subteam^S123|oncall›"),
        ("<@U123> <#C456>", "‹＠U123› ‹#C456›"),
        ("<https://evil.example|AWS console>", "‹https[:]//evil.example|AWS console›"),
        ("ping @here and @Channel or @everyone!", "ping ＠here and ＠Channel or ＠everyone!"),
        ("x@here", "x＠here"),  # broadcast mentions are live mid-word on some relays
        ("@alice", "＠alice"),
        ("[AWS console](https://evil.example)", "[AWS console］(https[:]//evil.example)"),
        ("&lt;!channel&gt;", "＆lt;!channel＆gt;"),
    ],
)
def test_inline_neutralises_chat_mentions_and_links(raw: str, expected: str) -> None:
    assert inline(raw) == expected


@pytest.mark.parametrize(
    "ordinary",
    [
        "arn:aws:sts::111122223333:assumed-role/admin/bob@example.com",
        "[aws-cli/2.15.0 Python/3.11.6 Linux/6.2 exe/x86_64 command/s3api]",
        "statement 'PublicRead' allows read to *",
        "Zahlungsverkehr-überwacht 東京 🚀",
        "a b;$(id)",
    ],
)
def test_inline_leaves_ordinary_text_alone(ordinary: str) -> None:
    assert inline(ordinary) == ordinary


def test_inline_empty_and_non_strings() -> None:
    assert inline(None) == "-"
    assert inline("") == "-"
    assert inline("", empty="unknown") == "unknown"
    assert inline(42) == "42"
    assert inline(["a\nb"]) == "['a\\nb']"  # str() of the list: its repr already escaped the newline

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    assert inline(Hostile()) == "(unprintable Hostile)"


def test_inline_caps_length_with_a_marker_counting_what_was_left_out() -> None:
    assert inline("x" * 1000, limit=10) == "x" * 10 + "…[+990 chars]"
    assert inline("x" * 10, limit=10) == "x" * 10
    # an escape is never cut in half: it is kept whole or left out whole
    assert inline("abc\n" * 3, limit=4) == "abc…[+9 chars]"
    assert inline("abc\n" * 3, limit=5) == "abc\\n…[+8 chars]"
    # a cut never turns a harmless word into a live mention
    assert inline("0@HERE0", limit=6) == "0＠HERE…[+1 chars]"
    assert inline("abcd", limit=0) == "…[+4 chars]"
    assert inline("abcd", limit="nonsense") == "abcd"  # type: ignore[arg-type]


def test_block_keeps_lines_but_none_at_the_margin() -> None:
    text = block("policy line 1\nSTATE NOW\r\n<!channel>\x1b")
    assert text.splitlines() == ["    | policy line 1", "    | STATE NOW", "    | ‹!channel›\\x1b"]
    assert block(None) == "    | -"
    assert block("y" * 50, limit=10).endswith("…[+40 chars]")


@settings(max_examples=300, deadline=None)
@given(value=HOSTILE_TEXT, limit=st.integers(min_value=0, max_value=500))
def test_inline_property_one_safe_bounded_line(value: str, limit: int) -> None:
    out = inline(value, limit=limit)
    assert not RAW_FORBIDDEN.search(out), out
    assert "\n" not in out and len(out.splitlines()) <= 1
    assert not LIVE_SYNTAX.search(out), out
    assert "<" not in out and ">" not in out
    body = MARKER.sub("", out)
    assert len(body) <= max(limit, 0) or (value == "" and out == "-")
    if MARKER.search(out):
        assert len(body) <= limit
    out.encode("utf-8")  # always encodable: no lone surrogate survives


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(st.none(), st.integers(), st.floats(), st.binary(), HOSTILE_TEXT, st.lists(HOSTILE_TEXT))
)
def test_inline_never_raises_and_block_never_raises(value: object) -> None:
    assert isinstance(inline(value), str)
    assert isinstance(block(value), str)
    for line in block(value).splitlines():
        assert line.startswith("    | ")


def test_no_category_that_hides_or_breaks_text_survives() -> None:
    sample = "".join(chr(code) for code in range(0, 0x3000)) + "\ufeff\U000e0001\U000e007f"
    out = inline(sample, limit=10**6)
    for char in out:
        assert unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp", "Cs"), hex(ord(char))


# ---- validators ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "region", ["us-east-1", "us-gov-west-1", "cn-north-1", "ap-southeast-5", "eu-central-2", "il-central-1"]
)
def test_checked_region_accepts_real_regions(region: str) -> None:
    assert checked_region(region) == region


@pytest.mark.parametrize(
    "region",
    [
        "evil.example/x#",
        "us-east-1\n",
        "US-EAST-1",
        "us-east-1.evil.com",
        "us-east",
        "",
        None,
        1,
        "us-east-١",
    ],
)
def test_checked_region_refuses_anything_else(region: object) -> None:
    assert checked_region(region) is None


def test_checked_account() -> None:
    assert checked_account("111122223333") == "111122223333"
    for bad in (
        "11112222333",
        "1111222233334",
        "11112222333a",
        "１１１１２２２２３３３３",
        " 111122223333",
        None,
        111122223333,
    ):
        assert checked_account(bad) is None


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::111122223333:user/alice",
        "arn:aws:sts::111122223333:assumed-role/admin/bob@example.com",
        "arn:aws-us-gov:s3:::bucket/key",
        "arn:aws-cn:s3:cn-north-1:111122223333:accesspoint/ap-1",
        "arn:aws:iam::111122223333:root",
    ],
)
def test_checked_arn_accepts_arns(arn: str) -> None:
    assert checked_arn(arn) == arn


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::111122223333:user/a b",
        "arn:aws:iam::111122223333:user/a\nb",
        "arn:aws:iam::111122223333:user/a\u202eb",
        "arn:aws:iam::11112222333:user/a",
        "arn:evil:iam::111122223333:user/a",
        "AIDAEXAMPLE",
        "arn:aws:iam::111122223333:" + "u" * 2100,
        None,
    ],
)
def test_checked_arn_refuses_malformed(arn: object) -> None:
    assert checked_arn(arn) is None


@pytest.mark.parametrize(
    "bucket", ["acme-exports", "a.b.c", "abc", "a" * 63, "Legacy_Bucket.Name", "L" + "x" * 254, "b--x-s3"]
)
def test_checked_bucket_accepts_current_and_legacy_names(bucket: str) -> None:
    assert checked_bucket(bucket) == bucket


@pytest.mark.parametrize(
    "bucket",
    [
        "a b;rm -rf ~",
        "$(id)",
        "a/b",
        "a#b",
        "a?b",
        "a'b",
        'a"b',
        "ab\n",
        "-bucket",
        "--profile",
        "ab",
        "x" * 256,
        "192.168.1.1",
        "",
        None,
    ],
)
def test_checked_bucket_refuses_what_cannot_be_a_bucket(bucket: object) -> None:
    assert checked_bucket(bucket) is None


def test_checked_access_point_event_id_username() -> None:
    assert checked_access_point("public-catalog") == "public-catalog"
    assert checked_access_point("Public") is None and checked_access_point("a" * 51) is None
    assert checked_event_id("00000000-0000-4000-8000-000000000001") == "00000000-0000-4000-8000-000000000001"
    assert checked_event_id("x/../y") is None and checked_event_id("a" * 129) is None
    assert checked_username("bob@example.com") == "bob@example.com"
    assert checked_username("x@here") is None  # would show differently than it links
    assert checked_username("a b") is None and checked_username("a/b") is None


def test_shown_marks_invalid_values_and_not_absent_ones() -> None:
    assert shown("us-east-1", checked_region, "region") == "us-east-1"
    assert shown("evil.example/x#", checked_region, "region") == "evil.example/x# (invalid region)"
    assert shown("a\nb", checked_bucket, "bucket name") == "a\\nb (invalid bucket name)"
    assert shown(None, checked_bucket, "bucket name") == "-"
    assert shown(None, checked_bucket, "bucket name", empty="unknown") == "unknown"


# ---- commands and links --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["aws", "s3api", "get-bucket-acl", "--bucket", "acme-exports"],
        ["aws", "s3api", "x", "--bucket", "a b;rm -rf ~"],
        ["aws", "s3api", "x", "--bucket", "$(id)", "`id`", "'", '"', "\\", ""],
    ],
)
def test_shell_command_round_trips(argv: list[str]) -> None:
    assert shlex.split(shell_command(argv)) == argv


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00")), max_size=8
    )
)
def test_shell_command_round_trips_anything(argv: list[str]) -> None:
    assert shlex.split(shell_command(argv)) == argv


def test_console_url_only_for_valid_regions_and_quotes_every_part() -> None:
    url = console_url("us-east-1", ["cloudtrailv2", "home"], [("region", "us-east-1")], ["events", "a/b#c?d"])
    assert url == (
        "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?region=us-east-1#/events/a%2Fb%23c%3Fd"
    )
    assert console_url("evil.example/x#", ["x"]) is None
    assert console_url(None, ["x"]) is None
    s3 = console_url(None, ["s3", "buckets", "@evil.example"], [("tab", "permissions")], s3_global=True)
    assert s3 == "https://s3.console.aws.amazon.com/s3/buckets/%40evil.example?tab=permissions"
    assert console_host_url("eu-west-1", "/s3/home") == "https://eu-west-1.console.aws.amazon.com/s3/home"
    assert console_host_url("evil.example#", "/s3/home") is None


@settings(max_examples=200, deadline=None)
@given(region=HOSTILE_TEXT, parts=st.lists(HOSTILE_TEXT, max_size=4), value=HOSTILE_TEXT)
def test_console_url_host_is_always_a_console_host(region: str, parts: list[str], value: str) -> None:
    for url in (
        console_url(region, parts, [("q", value)], parts, [("u", value)]),
        console_url(region, parts, [("q", value)], s3_global=True),
    ):
        if url is None:
            continue
        host = urlsplit(url).hostname or ""
        assert host.endswith(safe_text.CONSOLE_DOMAIN), url
        assert not re.search(r"\s", url)

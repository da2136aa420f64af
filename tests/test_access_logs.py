"""The server access log parser: the documented format, its vintages, and every way a line can be bad."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.review.access_logs import MAX_LINE_CHARS, AccessLogRecord, decode_key, parse_line, parse_time

OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
HOST = "amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com"
AP = "arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP"
CIPHER = "ECDHE-RSA-AES128-GCM-SHA256"

# The five example records of the AWS documentation (LogFormat.html), as published.
DOC_LINES = [
    f"{OWNER} amzn-s3-demo-bucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 {OWNER} 3E57427F3EXAMPLE "
    'REST.GET.VERSIONING - "GET /amzn-s3-demo-bucket1?versioning HTTP/1.1" 200 - 113 - 7 - "-" '
    '"S3Console/0.4" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= '
    f"SigV4 {CIPHER} AuthHeader {HOST} TLSV1.2 {AP} Yes us-east-1",
    f"{OWNER} amzn-s3-demo-bucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 {OWNER} 891CE47D2EXAMPLE "
    'REST.GET.LOGGING_STATUS - "GET /amzn-s3-demo-bucket1?logging HTTP/1.1" 200 - 242 - 11 - "-" '
    '"S3Console/0.4" - 9vKBE6vMhrNiWHZmb2L0mXOcqPGzQOI5XLnCtZNPxev+Hf+7tpT6sxDwDty4LHBUOZJG96N1234= '
    f"SigV4 {CIPHER} AuthHeader {HOST} TLSV1.2 - - us-east-1",
    f"{OWNER} amzn-s3-demo-bucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 {OWNER} A1206F460EXAMPLE "
    'REST.GET.BUCKETPOLICY - "GET /amzn-s3-demo-bucket1?policy HTTP/1.1" 404 NoSuchBucketPolicy 297 - 38 - '
    '"-" "S3Console/0.4" - BNaBsXZQQDbssi6xMBdBU2sLt+Yf5kZDmeBUP35sFoKa3sLLeMC78iwEIWxs99CRUrbS4n11234= '
    f"SigV4 {CIPHER} AuthHeader {HOST} TLSV1.2 - Yes us-east-1",
    f"{OWNER} amzn-s3-demo-bucket1 [06/Feb/2019:00:01:00 +0000] 192.0.2.3 {OWNER} 7B4A0FABBEXAMPLE "
    'REST.GET.VERSIONING - "GET /amzn-s3-demo-bucket1?versioning HTTP/1.1" 200 - 113 - 33 - "-" '
    '"S3Console/0.4" - Ke1bUcazaN1jWuUlPJaxF64cQVpUEhoZKEG/hmy/gijN/I1DeWqDfFvnpybfEseEME/u7ME1234= '
    f"SigV4 {CIPHER} AuthHeader {HOST} TLSV1.2 - - us-east-1",
    f"{OWNER} amzn-s3-demo-bucket1 [06/Feb/2019:00:01:57 +0000] 192.0.2.3 {OWNER} DD6CC733AEXAMPLE "
    'REST.PUT.OBJECT s3-dg.pdf "PUT /amzn-s3-demo-bucket1/s3-dg.pdf HTTP/1.1" 200 - - 4406583 41754 28 '
    '"-" "S3Console/0.4" - 10S62Zv81kBW7BB6SX4XJ48o6kpcl6LPwEoizZQQxJd5qDSCTLX0TgS37kYUBKQW3+bPdrg1234= '
    f"SigV4 ECDHE-RSA-AES128-SHA AuthHeader {HOST} TLSV1.2 - Yes us-east-1",
]
# The same request as the 2014 documentation printed it: the format then ended at version_id.
OLD_LINE = (
    f"{OWNER} mybucket [06/Feb/2014:00:01:57 +0000] 192.0.2.3 {OWNER} DD6CC733AEXAMPLE REST.PUT.OBJECT "
    's3-dg.pdf "PUT /mybucket/s3-dg.pdf HTTP/1.1" 200 - - 4406583 41754 28 "-" "S3Console/0.4" -'
)
FULL_TAIL = f" - HOSTID= SigV4 {CIPHER} AuthHeader {HOST} TLSv1.2 {AP} Yes"


def log_line(
    *,
    when: str = "06/Feb/2019:00:00:38 +0000",
    bucket: str = "amzn-s3-demo-bucket1",
    ip: str = "192.0.2.3",
    requester: str = "-",
    operation: str = "REST.GET.OBJECT",
    key: str = "photos/cat.jpg",
    uri: str = '"GET /amzn-s3-demo-bucket1/photos/cat.jpg HTTP/1.1"',
    status: str = "200",
    error: str = "-",
    sent: str = "1024",
    size: str = "1024",
    referer: str = '"-"',
    user_agent: str = '"aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0"',
    tail: str = FULL_TAIL,
    owner: str = OWNER,
) -> str:
    """A server access log line; every field is given as it appears in the log (quotes included)."""
    return (
        f"{owner} {bucket} [{when}] {ip} {requester} 3E57427F3EXAMPLE {operation} {key} {uri} {status} "
        f"{error} {sent} {size} 7 3 {referer} {user_agent}{tail}"
    )


def test_first_doc_line_in_full() -> None:
    assert parse_line(DOC_LINES[0]) == AccessLogRecord(
        bucket_owner=OWNER,
        bucket="amzn-s3-demo-bucket1",
        time=datetime(2019, 2, 6, 0, 0, 38, tzinfo=UTC),
        remote_ip="192.0.2.3",
        requester=OWNER,
        request_id="3E57427F3EXAMPLE",
        operation="REST.GET.VERSIONING",
        key=None,
        request_uri="GET /amzn-s3-demo-bucket1?versioning HTTP/1.1",
        http_status=200,
        error_code=None,
        bytes_sent=113,
        object_size=None,
        user_agent="S3Console/0.4",
        version_id=None,
        authentication_type="AuthHeader",
        host_header=HOST,
        access_point_arn=AP,
        raw_key=None,
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            DOC_LINES[0],
            ("3E57427F3EXAMPLE", "REST.GET.VERSIONING", None, 200, None, 113, None, (0, 0, 38), AP),
        ),
        (
            DOC_LINES[1],
            ("891CE47D2EXAMPLE", "REST.GET.LOGGING_STATUS", None, 200, None, 242, None, (0, 0, 38), None),
        ),
        (
            DOC_LINES[2],
            (
                "A1206F460EXAMPLE",
                "REST.GET.BUCKETPOLICY",
                None,
                404,
                "NoSuchBucketPolicy",
                297,
                None,
                (0, 0, 38),
                None,
            ),
        ),
        (
            DOC_LINES[3],
            ("7B4A0FABBEXAMPLE", "REST.GET.VERSIONING", None, 200, None, 113, None, (0, 1, 0), None),
        ),
        (
            DOC_LINES[4],
            ("DD6CC733AEXAMPLE", "REST.PUT.OBJECT", "s3-dg.pdf", 200, None, 0, 4406583, (0, 1, 57), None),
        ),
    ],
    ids=["versioning", "logging-status", "bucket-policy-404", "versioning-later", "put-object"],
)
def test_doc_examples(line: str, expected: tuple[Any, ...]) -> None:
    record = parse_line(line)
    assert record is not None
    request_id, operation, key, status, error, sent, size, (hour, minute, second), access_point = expected
    assert (record.request_id, record.operation, record.key, record.http_status, record.error_code) == (
        request_id,
        operation,
        key,
        status,
        error,
    )
    assert (record.bytes_sent, record.object_size, record.access_point_arn) == (sent, size, access_point)
    assert record.time == datetime(2019, 2, 6, hour, minute, second, tzinfo=UTC)
    assert record.time.utcoffset() is not None
    assert (record.bucket, record.remote_ip, record.requester, record.user_agent) == (
        "amzn-s3-demo-bucket1",
        "192.0.2.3",
        OWNER,
        "S3Console/0.4",
    )
    assert (record.authentication_type, record.host_header) == ("AuthHeader", HOST)


def test_old_format_ending_at_version_id() -> None:
    record = parse_line(OLD_LINE)
    assert record is not None
    assert (record.bucket, record.operation, record.key, record.object_size) == (
        "mybucket",
        "REST.PUT.OBJECT",
        "s3-dg.pdf",
        4406583,
    )
    assert record.time == datetime(2014, 2, 6, 0, 1, 57, tzinfo=UTC)
    assert (record.version_id, record.authentication_type, record.host_header, record.access_point_arn) == (
        None,
        None,
        None,
        None,
    )


TAIL_FIELDS = ["3HL4kqtJvjVBH40Nrjfkd", "HOSTID=", "SigV4", CIPHER, "QueryString", HOST, "TLSv1.3", AP, "Yes"]


@pytest.mark.parametrize("count", range(len(TAIL_FIELDS) + 4))
def test_trailing_fields_missing_or_extra(count: int) -> None:
    """Everything after the user agent is optional, and fields AWS appends later are ignored."""
    fields = [*TAIL_FIELDS, "us-east-1", "future-field", "another"][:count]
    record = parse_line(log_line(tail="".join(f" {field}" for field in fields)))
    assert record is not None
    assert record.user_agent == "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0"
    assert record.version_id == ("3HL4kqtJvjVBH40Nrjfkd" if count >= 1 else None)
    assert record.authentication_type == ("QueryString" if count >= 5 else None)
    assert record.host_header == (HOST if count >= 6 else None)
    assert record.access_point_arn == (AP if count >= 8 else None)


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        ('"Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"', "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"),
        ('"scanner \\"v2\\" (contact: a@b)"', 'scanner "v2" (contact: a@b)'),
        ('"ends with a backslash \\\\"', "ends with a backslash \\"),
        ('"\\"\\""', '""'),
        ('"  spaces  around  "', "  spaces  around  "),
        ('"-"', None),
        ("-", None),
        ('""', None),
    ],
    ids=[
        "spaces",
        "escaped-quotes",
        "escaped-backslash",
        "only-quotes",
        "many-spaces",
        "dash",
        "bare-dash",
        "empty",
    ],
)
def test_quoted_user_agent(user_agent: str, expected: str | None) -> None:
    record = parse_line(log_line(user_agent=user_agent))
    assert record is not None
    assert record.user_agent == expected
    assert record.authentication_type == "AuthHeader"  # the fields after it are still in place


def test_quoted_request_uri_and_referer_with_spaces() -> None:
    record = parse_line(
        log_line(uri='"GET /b/a%20b?x=\\"1\\" HTTP/1.1"', referer='"https://example.com/a page"')
    )
    assert record is not None
    assert record.request_uri == 'GET /b/a%20b?x="1" HTTP/1.1'


def test_dash_fields() -> None:
    record = parse_line(
        log_line(requester="-", key="-", uri="-", status="-", error="-", sent="-", size="-", user_agent='"-"')
    )
    assert record is not None
    assert (record.requester, record.key, record.raw_key, record.request_uri, record.http_status) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert (record.error_code, record.bytes_sent, record.object_size, record.user_agent) == (
        None,
        0,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("caf%C3%A9.txt", "café.txt"),
        ("%E6%97%A5%E6%9C%AC/%F0%9F%98%80.png", "日本/😀.png"),
        ("reports/Q1+results%202024.pdf", "reports/Q1+results 2024.pdf"),  # '+' is literal in a path
        ("bad%ZZescape%", "bad%ZZescape%"),
        ("not-utf8-%FF%FE", "not-utf8-\ufffd\ufffd"),
        ("truncated-%C3", "truncated-\ufffd"),
        ("caf\u00e9-raw", "caf\u00e9-raw"),
    ],
)
def test_keys_are_url_decoded_and_kept_raw(raw: str, decoded: str) -> None:
    record = parse_line(log_line(key=raw))
    assert record is not None
    assert (record.key, record.raw_key) == (decoded, raw)
    assert decode_key(raw) == decoded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("06/Feb/2019:00:00:38 +0000", datetime(2019, 2, 6, 0, 0, 38, tzinfo=UTC)),
        ("06/Feb/2019:00:00:38 +0130", datetime(2019, 2, 5, 22, 30, 38, tzinfo=UTC)),
        ("06/Feb/2019:23:59:59 -0100", datetime(2019, 2, 7, 0, 59, 59, tzinfo=UTC)),
        ("31/dec/2016:23:59:60 +0000", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),  # leap second
        ("29/Feb/2024:12:00:00 +0000", datetime(2024, 2, 29, 12, 0, tzinfo=UTC)),
        ("29/Feb/2023:12:00:00 +0000", None),
        ("06/Fob/2019:00:00:38 +0000", None),
        ("32/Jan/2019:00:00:38 +0000", None),
        ("06/Feb/2019:24:00:00 +0000", None),
        ("01/Jan/0001:00:00:00 +0100", None),  # before datetime's first instant in UTC
    ],
)
def test_parse_time(text: str, expected: datetime | None) -> None:
    assert parse_time(text) == expected
    assert parse_time(text) == expected  # the cached answer is the same
    record = parse_line(log_line(when=text))
    assert (record.time if record else None) == expected


def test_bytes_str_and_line_endings_agree() -> None:
    line = DOC_LINES[4]
    expected = parse_line(line)
    assert expected is not None
    for variant in (line.encode(), line + "\n", (line + "\r\n").encode(), line + "\r"):
        assert parse_line(variant) == expected


def test_invalid_utf8_in_user_agent_is_kept_not_dropped() -> None:
    """A hostile user agent must not make its request vanish from a review."""
    line = log_line(user_agent='"evil\xff\xfe agent"').encode("latin-1")
    record = parse_line(line)
    assert record is not None
    assert record.user_agent == "evil\ufffd\ufffd agent"
    assert record.bucket == "amzn-s3-demo-bucket1"


def truncations() -> list[str]:
    """Every prefix of a line that stops before the user agent's closing quote."""
    line = log_line(tail="")
    return [line[:cut] for cut in range(0, len(line) - 1, 7)]


MALFORMED: list[str | bytes] = [
    "",
    " ",
    "\n",
    "garbage",
    "#Version: 1.0",
    DOC_LINES[0].replace(" ", "\t"),
    DOC_LINES[0].replace(" [06/Feb", "  [06/Feb"),
    log_line(when="06/Feb/2019:00:00:38"),
    log_line(when="2019-02-06T00:00:38Z"),
    log_line(when="06/Fob/2019:00:00:38 +0000"),
    log_line(status="2OO"),
    log_line(status="9" * 20),
    log_line(sent="1e6"),
    log_line(size="-1"),
    log_line(user_agent='"unterminated'),
    log_line(referer="referer-unquoted"),
    log_line(uri="GET /x HTTP/1.1"),
    log_line(tail=" -\nsecond line"),
    log_line(bucket=""),
    "\x00" * 400,
    b"\x00" * 400,
    bytes(range(256)),
    b"\xff\xfe\xfd" * 100,
    log_line(bucket="amzn-s3-demo-bucket1\xff").encode("latin-1"),  # invalid UTF-8 outside quoted text
    log_line(key="caf\xe9.txt").encode("latin-1"),
    log_line(requester="arn:aws:iam::123456789012:user/\xff").encode("latin-1"),
    log_line(user_agent='"' + "A" * MAX_LINE_CHARS + '"'),
    log_line(user_agent='"' + "A" * MAX_LINE_CHARS + '"').encode(),
]


@pytest.mark.parametrize("line", [*MALFORMED, *truncations()])
def test_malformed_lines_are_none(line: str | bytes) -> None:
    assert parse_line(line) is None


def test_every_truncation_was_checked() -> None:
    assert len(truncations()) > 30
    assert parse_line(log_line(tail="")) is not None  # the line they are cut from is fine


@pytest.mark.parametrize("value", [None, 42, 4.2, ["line"], bytearray(b"x")])
def test_non_text_input_is_none(value: object) -> None:
    assert parse_line(value) is None  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_never_raises_on_bytes(data: bytes) -> None:
    record = parse_line(data)
    assert record is None or isinstance(record, AccessLogRecord)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(DOC_LINES[4])), st.text(max_size=8), st.integers(0, 3))
def test_never_raises_on_damaged_lines(at: int, inserted: str, drop: int) -> None:
    line = DOC_LINES[4]
    damaged = line[:at] + inserted + line[at + drop :]
    for variant in (damaged, damaged.encode("utf-8", "surrogatepass")):
        record = parse_line(variant)
        assert record is None or record.time.tzinfo is UTC

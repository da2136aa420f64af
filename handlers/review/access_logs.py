"""A streaming parser for S3 server access log lines (the space-delimited format S3 writes to a bucket).

Format (https://docs.aws.amazon.com/AmazonS3/latest/userguide/LogFormat.html), fields in order::

    bucket_owner bucket [06/Feb/2019:00:00:38 +0000] remote_ip requester request_id operation key
    "request_uri" http_status error_code bytes_sent object_size total_time turn_around_time
    "referer" "user_agent" version_id host_id signature_version cipher_suite authentication_type
    host_header tls_version access_point_arn acl_required [fields AWS adds later ...]

Everything after ``user_agent`` is optional (older logs stop earlier) and fields after
``acl_required`` are ignored (AWS appends new ones). ``-`` means empty. Quoted fields may hold
spaces and backslash-escaped quotes. Keys are URL-encoded in the log; the record carries both the
raw and the decoded form.

Speed: this is the hot path of an exposure review, so a line is matched by one compiled regex and
nothing else per line is expensive: the timestamp is parsed by slicing, once per distinct string
(a log file holds many requests per second), and :func:`scan_line` gives the raw fields without
building a record for callers that only count.

Robustness: :func:`parse_line` never raises. A line is malformed (``None``) when it does not have
the documented shape, is longer than :data:`MAX_LINE_CHARS`, or carries bytes that are not UTF-8
outside the quoted free-text fields. Invalid UTF-8 *inside* the request URI, referer or user
agent is replaced (U+FFFD) instead: those are written by the requester, and a hostile user agent
must not make its request vanish from a review.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import unquote

# S3 caps a request's headers at 8 KiB and its URL at a few KiB, so a genuine line stays far
# below this; anything longer is refused rather than matched (bounded work per line).
MAX_LINE_CHARS: Final = 64 * 1024

# Possessive quantifiers (3.11): the fields cannot overlap, so there is nothing to backtrack
# into, and not recording the backtracking points is ~20% of the matching time.
_TOKEN = r"(\S++)"  # an unquoted field: no whitespace
_NUMBER = r"([0-9]{1,19}+|-)"  # bounded: int() of a huge digit string is slow (and raises past 4300)
# A quoted field: backslash escapes allowed, no raw line breaks; "-" unquoted is tolerated too.
_QUOTED = r'(?:"([^"\\\r\n]*+(?:\\.[^"\\\r\n]*+)*+)"|(-))'
_LINE: Final = re.compile(
    rf"{_TOKEN} {_TOKEN} "
    r"\[([0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4})\] "
    rf"{_TOKEN} {_TOKEN} {_TOKEN} {_TOKEN} {_TOKEN} {_QUOTED} {_NUMBER} {_TOKEN} "
    rf"{_NUMBER} {_NUMBER} {_NUMBER} {_NUMBER} {_QUOTED} {_QUOTED}"
    r"(?: ([^\r\n]*+))?\r?\n?"
)
_UNESCAPE: Final = re.compile(r"\\(.)")

# Indexes into the groups of _LINE (see scan_line).
OWNER, BUCKET, TIME, REMOTE_IP, REQUESTER, REQUEST_ID, OPERATION, KEY = range(8)
URI, URI_DASH, STATUS, ERROR_CODE, BYTES_SENT, OBJECT_SIZE, TOTAL_TIME, TURN_AROUND = range(8, 16)
REFERER, REFERER_DASH, USER_AGENT, USER_AGENT_DASH, TAIL = range(16, 21)
# The groups that hold requester-written free text, where invalid UTF-8 is tolerated.
_FREE_TEXT: Final = frozenset({URI, REFERER, USER_AGENT})

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
# Timestamp string -> datetime (or None when invalid). Bounded: cleared when full.
_TIME_CACHE: dict[str, datetime | None] = {}
_TIME_CACHE_LIMIT: Final = 8192


@dataclass(frozen=True, slots=True)
class AccessLogRecord:
    """One request from a server access log. ``None`` stands for ``-`` (empty) unless noted."""

    bucket_owner: str | None
    bucket: str | None
    time: datetime  # tz-aware, UTC
    remote_ip: str | None
    requester: str | None  # None: anonymous (the log says "-")
    request_id: str | None
    operation: str | None
    key: str | None  # URL-decoded (invalid escapes and bytes are kept or replaced, never an error)
    request_uri: str | None
    http_status: int | None
    error_code: str | None
    bytes_sent: int  # 0 for "-" (the log writes "-" for zero)
    object_size: int | None
    user_agent: str | None
    version_id: str | None
    authentication_type: str | None
    host_header: str | None
    access_point_arn: str | None
    raw_key: str | None = None  # the key exactly as logged (URL-encoded)


def parse_time(text: str) -> datetime | None:
    """``06/Feb/2019:00:00:38 +0000`` as a UTC datetime, or ``None`` when it is not a valid time.

    Cached per string: a log holds many lines per second, and slicing beats ``strptime`` anyway.
    """
    try:
        return _TIME_CACHE[text]
    except KeyError:
        pass
    value: datetime | None
    try:
        month = _MONTHS.get(text[3:6].title())
        if month is None or len(text) != 26:
            value = None
        else:
            # A leap second is a real time; datetime has no second 60.
            second = min(int(text[18:20]), 59)
            offset = timedelta(hours=int(text[22:24]), minutes=int(text[24:26]))
            local = datetime(
                int(text[7:11]), month, int(text[0:2]), int(text[12:14]), int(text[15:17]), second, tzinfo=UTC
            )
            value = local - offset if text[21] == "+" else local + offset
    except (ValueError, OverflowError):
        value = None
    if len(_TIME_CACHE) >= _TIME_CACHE_LIMIT:
        _TIME_CACHE.clear()
    _TIME_CACHE[text] = value
    return value


def scan_line(line: str | bytes) -> tuple[str, ...] | None:
    """The raw fields of a log line (the groups of the line pattern, indexed by this module's
    constants), or ``None`` when the line does not have the documented shape. Never raises.

    Values are as logged: ``-`` is not replaced, quoted fields are not unescaped, the timestamp is
    not parsed; a part that is absent (a trailing field, the other side of a quoted-or-dash
    alternative) is ``""``. For callers that count and need only a few fields; :func:`parse_line`
    builds a record.
    """
    lossy = False
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_CHARS:
            return None
        try:
            text = line.decode()
        except UnicodeDecodeError:
            text = line.decode(errors="replace")
            lossy = True
    elif isinstance(line, str):
        if len(line) > MAX_LINE_CHARS:
            return None
        text = line
    else:
        return None
    match = _LINE.fullmatch(text)
    if match is None:
        return None
    groups: tuple[str, ...] = match.groups("")
    if lossy:
        # Replaced bytes are only acceptable in the requester-written free text.
        for index, value in enumerate(groups):
            if "\ufffd" in value and index not in _FREE_TEXT:
                return None
    return groups


def _dash(value: str) -> str | None:
    return None if value == "-" or value == "" else value


def _quoted(value: str) -> str | None:
    if value == "-" or value == "":
        return None
    return _UNESCAPE.sub(r"\1", value) if "\\" in value else value


def _number(value: str) -> int | None:
    return None if value == "-" or value == "" else int(value)


def decode_key(raw: str) -> str:
    """A logged (URL-encoded) key decoded as UTF-8; never raises (bad escapes stay, bad bytes: U+FFFD)."""
    return unquote(raw, errors="replace") if "%" in raw else raw


def parse_line(line: str | bytes) -> AccessLogRecord | None:
    """One server access log line as a record, or ``None`` when it is malformed. Never raises.

    Accepts the line with or without its line break. See the module docstring for what counts
    as malformed.
    """
    groups = scan_line(line)
    if groups is None:
        return None
    when = parse_time(groups[TIME])
    if when is None:
        return None
    tail = groups[TAIL].split(" ")
    tail += [""] * (9 - len(tail))
    raw_key = _dash(groups[KEY])
    return AccessLogRecord(
        bucket_owner=_dash(groups[OWNER]),
        bucket=_dash(groups[BUCKET]),
        time=when,
        remote_ip=_dash(groups[REMOTE_IP]),
        requester=_dash(groups[REQUESTER]),
        request_id=_dash(groups[REQUEST_ID]),
        operation=_dash(groups[OPERATION]),
        key=None if raw_key is None else decode_key(raw_key),
        request_uri=_quoted(groups[URI]),
        http_status=_number(groups[STATUS]),
        error_code=_dash(groups[ERROR_CODE]),
        bytes_sent=_number(groups[BYTES_SENT]) or 0,
        object_size=_number(groups[OBJECT_SIZE]),
        user_agent=_quoted(groups[USER_AGENT]),
        version_id=_dash(tail[0]),
        authentication_type=_dash(tail[4]),
        host_header=_dash(tail[5]),
        access_point_arn=_dash(tail[7]),
        raw_key=raw_key,
    )

"""Exposure review: did anyone outside the account read or write a bucket while it was public?

Input: S3 server access log lines (:mod:`handlers.review.access_logs`) and, optionally, CloudTrail S3
data-event records. Output: a JSON-serialisable report (:meth:`ReviewAccumulator.report`) of who
reached the bucket during a time window, and a one-line summary (:func:`summary_line`).

What counts: only records of this bucket (others: ``otherBuckets``) whose own time lies in
``[start, end]``, both ends included (others: ``outsideWindow``; logs arrive late, so callers read
past the end). Each request is ``anonymous`` (no requester), ``internal`` (the bucket's own
account, its owner's canonical id, or an AWS service) or ``external`` (anyone else).

Memory is bounded whatever the input size. Per class (anonymous, external):

* requests per IP, per principal and successful GETs per key are Misra-Gries heavy-hitter counters
  of at most :data:`IP_CAPACITY`, :data:`PRINCIPAL_CAPACITY` and :data:`KEY_CAPACITY` entries.
  They are exact while fewer distinct values were seen; past that, a reported count may be low by
  at most ``requests / (capacity // 2 + 1)`` and the breakdown says ``approximateTopCounts``;
* distinct IPs are counted exactly up to :data:`DISTINCT_IP_CAP`, then reported as that number
  with ``distinctIpsAtLeast: true``;
* keys, IPs and principals longer than the limits below are cut and suffixed with a hash of the
  whole value, so distinct values stay distinct.

So an accumulator holds at most a few thousand short strings (about 1 MiB in the worst case),
and its state (:meth:`ReviewAccumulator.to_state`) is trimmed to at most
:data:`STATE_BUDGET_CHARS` of JSON so it fits one DynamoDB item.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from handlers.detection.safe_text import ACCOUNT_ID
from handlers.detection.timestamps import utc_text
from handlers.review.access_logs import (
    BUCKET,
    BYTES_SENT,
    KEY,
    MAX_LINE_CHARS,
    OPERATION,
    OWNER,
    REMOTE_IP,
    REQUESTER,
    STATUS,
    TIME,
    AccessLogRecord,
    decode_key,
    parse_time,
    scan_line,
)

SCHEMA: Final = "s3-exposure-review/1"
STATE_VERSION: Final = 1
TOP_N: Final = 10

IP_CAPACITY: Final = 1024
KEY_CAPACITY: Final = 512
PRINCIPAL_CAPACITY: Final = 256
DISTINCT_IP_CAP: Final = 2048
# Longest kept value; longer ones are cut and suffixed with a hash (see _bounded).
MAX_KEY_CHARS: Final = 1024  # S3's own key limit, in bytes
MAX_PRINCIPAL_CHARS: Final = 512
MAX_IP_CHARS: Final = 64  # IPv6 text is at most 45; data-event "IPs" are attacker-written
# A DynamoDB item holds 400 KB; leave room for the item's other attributes.
STATE_BUDGET_CHARS: Final = 300_000
# Largest byte count taken from one data event (beyond 2**53 JSON readers lose precision).
MAX_EVENT_BYTES: Final = 2**53

CATEGORIES: Final = ("GET", "HEAD", "LIST", "PUT", "DELETE", "ACL", "POLICY", "OTHER")
GET, HEAD, LIST, PUT, DELETE, ACL, POLICY, OTHER = range(8)
ANONYMOUS, EXTERNAL, INTERNAL = "anonymous", "external", "internal"
VERDICTS: Final = ("no-outside-access", "read", "written", "attempted-only", "no-evidence")

GZIP_MAGIC: Final = b"\x1f\x8b"
READ_CHUNK: Final = 1024 * 1024

_SERVICE_PRINCIPAL: Final = re.compile(r"[a-z0-9][a-z0-9.-]*\.amazonaws\.com(?:\.cn)?", re.ASCII)
_CACHE_LIMIT: Final = 4096


# --- bounded counters -------------------------------------------------------------------------


def _bounded(text: str, limit: int) -> str:
    """``text``; past ``limit`` chars, its start and a hash of the whole (distinct values stay distinct)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[: limit - 28]}...[sha256:{digest}]"  # the suffix is 28 characters: exactly ``limit``


class TopCounter:
    """Misra-Gries heavy hitters (batched) holding at most ``capacity`` entries.

    When a new value meets a full table, every count drops by the (capacity//2 + 1)-th largest
    count and the entries left at zero go, so at most capacity//2 remain. Each kept count is then
    low by at most ``error`` (the sum of those drops), and ``error <= total / (capacity//2 + 1)``.
    Counts are exact while ``error`` is 0. ``weights`` (e.g. bytes) ride along with kept entries.
    Merging is adding the tables and compacting the same way (a mergeable summary).
    """

    __slots__ = ("capacity", "counts", "error", "weights")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.weights: dict[str, int] = {}
        self.error = 0

    def add(self, value: str, count: int = 1, weight: int = 0) -> None:
        """Count ``value`` ``count`` times (and add ``weight`` to its weight)."""
        counts = self.counts
        current = counts.get(value)
        if current is None:
            if len(counts) >= self.capacity:
                self._compact(self.capacity // 2)
            counts[value] = count
        else:
            counts[value] = current + count
        if weight:
            self.weights[value] = self.weights.get(value, 0) + weight

    def _compact(self, keep: int) -> None:
        """Drop every count by the (keep+1)-th largest; at most ``keep`` entries stay."""
        if len(self.counts) <= keep:
            return
        cut = sorted(self.counts.values(), reverse=True)[keep]
        self.error += cut
        self.counts = {value: count - cut for value, count in self.counts.items() if count > cut}
        self.weights = {value: weight for value, weight in self.weights.items() if value in self.counts}

    def merge(self, other: TopCounter) -> None:
        """Add ``other``'s counts (and errors) into this one, then compact to the capacity."""
        for value, count in other.counts.items():
            self.counts[value] = self.counts.get(value, 0) + count
        for value, weight in other.weights.items():
            self.weights[value] = self.weights.get(value, 0) + weight
        self.error += other.error
        if len(self.counts) > self.capacity:
            self._compact(self.capacity // 2)

    def top(self, n: int) -> list[tuple[str, int, int]]:
        """The ``n`` largest ``(value, count, weight)``, largest first, ties by value."""
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:n]
        return [(value, count, self.weights.get(value, 0)) for value, count in ranked]

    def to_state(self, limit: int | None = None) -> dict[str, Any]:
        """Compact JSON form; ``limit`` keeps only that many of the largest (the error grows to match)."""
        ranked = self.top(len(self.counts))
        error = self.error
        if limit is not None and len(ranked) > limit:
            # Dropped values lose at most their own count, so the bound grows by the largest dropped.
            error += ranked[limit][1]
            ranked = ranked[:limit]
        rows: list[list[Any]] = [
            [value, count, weight] if weight else [value, count] for value, count, weight in ranked
        ]
        return {"e": error, "c": rows}

    @classmethod
    def from_state(cls, state: object, capacity: int, limit: int, where: str) -> TopCounter:
        """Rebuild from :meth:`to_state`; raises ValueError naming ``where`` on anything else."""
        data = _mapping(state, where)
        counter = cls(capacity)
        counter.error = _count_field(data, "e", where)
        rows = data.get("c")
        if not isinstance(rows, list) or len(rows) > capacity:
            raise ValueError(f"{where}.c: expected a list of at most {capacity} rows")
        for index, row in enumerate(rows):
            place = f"{where}.c[{index}]"
            if not isinstance(row, list) or len(row) not in (2, 3):
                raise ValueError(f"{place}: expected [value, count] or [value, count, weight]")
            value, count = row[0], row[1]
            weight = row[2] if len(row) == 3 else 0
            if not isinstance(value, str) or len(value) > limit:
                raise ValueError(f"{place}: expected a string of at most {limit} characters")
            if value in counter.counts:
                raise ValueError(f"{place}: duplicate value")
            if not _is_count(count) or count == 0 or not _is_count(weight):
                raise ValueError(f"{place}: expected a positive count and a non-negative weight")
            counter.counts[value] = count
            if weight:
                counter.weights[value] = weight
        return counter


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object")
    return value


def _count_field(data: Mapping[str, Any], name: str, where: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}.{name}: expected a non-negative integer, got {type(value).__name__}")
    return value


# --- classification ---------------------------------------------------------------------------


def classify_requester(requester: str | None, account: str, bucket_owner: str | None = None) -> str:
    """``anonymous``, ``internal`` or ``external`` for an access-log requester.

    Anonymous: ``-`` (or the ``Anonymous`` of very old logs). Internal: the bucket owner's
    canonical id, an ARN or bare id of ``account``, an AWS service (``svc:...``,
    ``*.amazonaws.com``) or a service-linked role (``AWSServiceRoleFor*``: the name is reserved
    for roles that only AWS services can assume). Anything else is external, including other
    canonical ids and ARNs of other accounts.
    """
    if requester is None or requester in ("", "-", "Anonymous"):
        return ANONYMOUS
    if bucket_owner is not None and requester == bucket_owner and bucket_owner != "-":
        return INTERNAL
    if requester == account or requester.startswith("svc:") or _SERVICE_PRINCIPAL.fullmatch(requester):
        return INTERNAL
    parts = requester.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn":
        resource = parts[5]
        if parts[4] == account:
            return INTERNAL
        if parts[2] in ("iam", "sts") and (
            resource.startswith("assumed-role/AWSServiceRoleFor")
            or resource.startswith("role/aws-service-role/")
        ):
            return INTERNAL
    return EXTERNAL


def operation_category(operation: str | None) -> tuple[int, bool]:
    """(category index into :data:`CATEGORIES`, whether it changes anything) of a log operation.

    ``REST.GET.OBJECT``/``WEBSITE.GET.OBJECT`` -> GET, ``REST.HEAD.*`` -> HEAD, bucket/version/upload
    listings -> LIST, object PUT/POST/COPY and multipart parts -> PUT, ``*.DELETE.*`` and multi-object
    delete -> DELETE, anything naming ACL -> ACL, POLICY -> POLICY. The read side of a copy
    (``REST.COPY.OBJECT_GET``) is a GET. Changing: PUT, POST, DELETE and COPY methods.
    """
    if not operation:
        return OTHER, False
    cached = _OPERATION_CACHE.get(operation)
    if cached is not None:
        return cached
    name = operation.upper()
    parts = name.split(".", 2)
    method, resource = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
    copy_read = method == "COPY" and resource.endswith("_GET")
    mutating = method in ("PUT", "POST", "DELETE", "COPY") and not copy_read
    category: int
    if "ACL" in name:
        category = ACL
    elif "POLICY" in name:
        category = POLICY
    elif method == "DELETE" or resource == "MULTI_OBJECT_DELETE":
        category = DELETE
    elif copy_read or (method == "GET" and resource in ("OBJECT", "OBJECT_TORRENT")):
        category = GET
    elif method == "GET" and resource in ("BUCKET", "BUCKETVERSIONS", "UPLOADS", "UPLOAD"):
        category = LIST
    elif method == "HEAD":
        category = HEAD
    elif (method == "PUT" and resource in ("OBJECT", "PART")) or method in ("POST", "COPY"):
        category = PUT if resource not in ("RESTORE", "SELECT") else OTHER
    else:
        category = OTHER
    result = (category, mutating)
    if len(_OPERATION_CACHE) < _CACHE_LIMIT:
        _OPERATION_CACHE[operation] = result
    return result


_OPERATION_CACHE: dict[str, tuple[int, bool]] = {}

_EVENT_CATEGORIES: Final = {
    "GetObject": GET,
    "GetObjectTorrent": GET,
    "SelectObjectContent": GET,
    "HeadObject": HEAD,
    "HeadBucket": HEAD,
    "ListObjects": LIST,
    "ListObjectsV2": LIST,
    "ListObjectVersions": LIST,
    "ListMultipartUploads": LIST,
    "ListParts": LIST,
    "PutObject": PUT,
    "PostObject": PUT,
    "CopyObject": PUT,
    "CreateMultipartUpload": PUT,
    "UploadPart": PUT,
    "UploadPartCopy": PUT,
    "CompleteMultipartUpload": PUT,
    "DeleteObject": DELETE,
    "DeleteObjects": DELETE,
    "DeleteObjectVersion": DELETE,
}


def event_category(name: str) -> tuple[int, bool]:
    """(category, changes anything) of a CloudTrail S3 ``eventName``; unknown names are OTHER.

    Reads are names starting Get/Head/List/Select; everything else is taken to change something
    (an unknown call by an outsider had better read as a write than be missed).
    """
    category = _EVENT_CATEGORIES.get(name)
    if category is None:
        category = ACL if "Acl" in name else POLICY if "Policy" in name else OTHER
    return category, not name.startswith(("Get", "Head", "List", "Select"))


# --- the accumulator --------------------------------------------------------------------------


def _iso(when: datetime) -> str:
    return utc_text(when, "auto")  # keeps sub-second precision


def _utc(when: datetime, name: str) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name}: expected a timezone-aware datetime")
    return when.astimezone(UTC)


def _parse_iso(text: object, where: str) -> datetime:
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError(f"{where}: expected an ISO 8601 timestamp")
    try:
        return _utc(datetime.fromisoformat(text), where)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{where}: expected an ISO 8601 timestamp with a zone: {exc}") from None


class _Breakdown:
    """What one class of requester (anonymous or external) did; see the module docstring for bounds."""

    __slots__ = (
        "by_op",
        "bytes_sent",
        "distinct",
        "distinct_floor",
        "failed",
        "ips",
        "objects",
        "ok_by_op",
        "ok_reads",
        "ok_writes",
        "principals",
        "requests",
        "succeeded",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.succeeded = 0
        self.failed = 0
        self.bytes_sent = 0  # in successful responses only: an error body is not data
        self.ok_reads = 0
        self.ok_writes = 0
        self.by_op = [0] * len(CATEGORIES)
        self.ok_by_op = [0] * len(CATEGORIES)
        self.ips = TopCounter(IP_CAPACITY)
        self.distinct: set[str] | None = set()  # None once past DISTINCT_IP_CAP ...
        self.distinct_floor = 0  # ... and then at least this many
        self.objects = TopCounter(KEY_CAPACITY)  # successful GETs per key, weight: bytes
        self.principals = TopCounter(PRINCIPAL_CAPACITY)

    def count(
        self,
        category: int,
        mutating: bool,
        ok: bool,
        ip: str | None,
        key: str | None,
        sent: int,
        principal: str | None,
    ) -> None:
        """Count one request; ``key`` only for a successful GET, ``principal`` only for an outsider."""
        # Bounded here, whatever the source: a state holding a longer value would not load again.
        if ip is not None and len(ip) > MAX_IP_CHARS:
            ip = _bounded(ip, MAX_IP_CHARS)
        if key is not None and len(key) > MAX_KEY_CHARS:
            key = _bounded(key, MAX_KEY_CHARS)
        if principal is not None and len(principal) > MAX_PRINCIPAL_CHARS:
            principal = _bounded(principal, MAX_PRINCIPAL_CHARS)
        self.requests += 1
        self.by_op[category] += 1
        if ok:
            self.succeeded += 1
            self.ok_by_op[category] += 1
            self.bytes_sent += sent
            if mutating:
                self.ok_writes += 1
            else:
                self.ok_reads += 1
            if key is not None:  # callers pass a key for successful GETs only
                self.objects.add(key, 1, sent)
        else:
            self.failed += 1
        if ip is not None:
            self.ips.add(ip)
            self._see_ip(ip)
        if principal is not None:
            self.principals.add(principal)

    def _see_ip(self, ip: str) -> None:
        distinct = self.distinct
        if distinct is not None and ip not in distinct:
            if len(distinct) >= DISTINCT_IP_CAP:
                # Past the cap the set is no longer worth its memory: only "at least" is said.
                self.distinct, self.distinct_floor = None, DISTINCT_IP_CAP
            else:
                distinct.add(ip)

    def merge(self, other: _Breakdown) -> None:
        self.requests += other.requests
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.bytes_sent += other.bytes_sent
        self.ok_reads += other.ok_reads
        self.ok_writes += other.ok_writes
        self.by_op = [a + b for a, b in zip(self.by_op, other.by_op, strict=True)]
        self.ok_by_op = [a + b for a, b in zip(self.ok_by_op, other.ok_by_op, strict=True)]
        self.ips.merge(other.ips)
        self.objects.merge(other.objects)
        self.principals.merge(other.principals)
        if self.distinct is None or other.distinct is None:
            # Either side only knows "at least": so does the sum, and the larger floor holds.
            self.distinct_floor = max(self.distinct_ips(), other.distinct_ips())
            self.distinct = None
        else:
            for ip in sorted(other.distinct):
                self._see_ip(ip)

    def distinct_ips(self) -> int:
        """Distinct IPs seen: exact while ``distinct`` is a set, a lower bound after."""
        return self.distinct_floor if self.distinct is None else len(self.distinct)

    def report(self, with_principals: bool) -> dict[str, Any]:
        result: dict[str, Any] = {
            "requests": self.requests,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "succeededReads": self.ok_reads,
            "succeededWrites": self.ok_writes,
            "byOperation": dict(zip(CATEGORIES, self.by_op, strict=True)),
            "succeededByOperation": dict(zip(CATEGORIES, self.ok_by_op, strict=True)),
            "distinctIps": self.distinct_ips(),
            "distinctIpsAtLeast": self.distinct is None,
            "topIps": [{"ip": ip, "requests": n} for ip, n, _ in self.ips.top(TOP_N)],
            "bytesSent": self.bytes_sent,
            "objectsMostRead": [
                {"key": key, "reads": n, "bytes": sent} for key, n, sent in self.objects.top(TOP_N)
            ],
            "approximateTopCounts": bool(self.ips.error or self.objects.error or self.principals.error),
        }
        if with_principals:
            result["principals"] = [
                {"principal": who, "requests": n} for who, n, _ in self.principals.top(TOP_N)
            ]
        return result

    def to_state(self, limit: int | None) -> dict[str, Any]:
        """Compact form; ``limit`` (when trimming to a budget) keeps fewer counter entries and
        turns the distinct IPs into an "at least" count."""
        ips = self.ips.to_state(limit)
        state: dict[str, Any] = {
            "n": [self.requests, self.succeeded, self.failed, self.bytes_sent, self.ok_reads, self.ok_writes],
            "op": self.by_op,
            "ok": self.ok_by_op,
            "ip": ips,
            "obj": self.objects.to_state(limit),
            "pr": self.principals.to_state(limit),
        }
        if self.distinct is None or limit is not None:
            state["dx"] = True  # past the cap (or trimmed to fit the budget): "at least" from here on
            state["d"] = self.distinct_ips()
        else:
            # Distinct IPs already named by the IP counter are not repeated.
            named = {row[0] for row in ips["c"]}
            state["d"] = sorted(self.distinct - named)
        return state

    @classmethod
    def from_state(cls, state: object, where: str) -> _Breakdown:
        data = _mapping(state, where)
        result = cls()
        numbers = data.get("n")
        if not isinstance(numbers, list) or len(numbers) != 6 or not all(_is_count(n) for n in numbers):
            raise ValueError(f"{where}.n: expected 6 non-negative integers")
        (
            result.requests,
            result.succeeded,
            result.failed,
            result.bytes_sent,
            result.ok_reads,
            result.ok_writes,
        ) = numbers
        for name in ("op", "ok"):
            row = data.get(name)
            if not isinstance(row, list) or len(row) != len(CATEGORIES) or not all(_is_count(n) for n in row):
                raise ValueError(f"{where}.{name}: expected {len(CATEGORIES)} non-negative integers")
        result.by_op, result.ok_by_op = list(data["op"]), list(data["ok"])
        if (
            result.succeeded + result.failed != result.requests
            or sum(result.by_op) != result.requests
            or sum(result.ok_by_op) != result.succeeded
            or result.ok_reads + result.ok_writes != result.succeeded
            or any(ok > all_ for ok, all_ in zip(result.ok_by_op, result.by_op, strict=True))
        ):
            raise ValueError(f"{where}: counts do not add up")
        result.ips = TopCounter.from_state(data.get("ip"), IP_CAPACITY, MAX_IP_CHARS, f"{where}.ip")
        result.objects = TopCounter.from_state(data.get("obj"), KEY_CAPACITY, MAX_KEY_CHARS, f"{where}.obj")
        result.principals = TopCounter.from_state(
            data.get("pr"), PRINCIPAL_CAPACITY, MAX_PRINCIPAL_CHARS, f"{where}.pr"
        )
        for name, counter, most in (
            ("ip", result.ips, result.requests),
            ("pr", result.principals, result.requests),
            ("obj", result.objects, result.ok_by_op[GET]),
        ):
            if sum(counter.counts.values()) > most:
                raise ValueError(f"{where}.{name}: counts more requests than there were")
        distinct = data.get("d")
        if data.get("dx") is True:
            if (
                not isinstance(distinct, int)
                or isinstance(distinct, bool)
                or not 0 <= distinct <= DISTINCT_IP_CAP
            ):
                raise ValueError(f"{where}.d: expected a count of at most {DISTINCT_IP_CAP}")
            result.distinct, result.distinct_floor = None, distinct
        elif "dx" in data:
            raise ValueError(f"{where}.dx: expected true when present")
        else:
            if not isinstance(distinct, list) or not all(
                isinstance(ip, str) and len(ip) <= MAX_IP_CHARS for ip in distinct
            ):
                raise ValueError(f"{where}.d: expected a list of IP strings")
            names = set(distinct) | set(result.ips.counts)
            if len(names) > DISTINCT_IP_CAP:
                raise ValueError(f"{where}.d: more than {DISTINCT_IP_CAP} distinct IPs")
            result.distinct = names
        return result


class ReviewAccumulator:
    """Counts who reached ``bucket`` (of ``account``) between ``start`` and ``end`` (inclusive).

    Feed it log lines, parsed records and data events in any order and from any number of
    workers; :meth:`merge` and :meth:`to_state`/:meth:`from_state` combine partial results.
    """

    def __init__(self, bucket: str, account: str, start: datetime, end: datetime) -> None:
        if not isinstance(bucket, str) or not bucket:
            raise ValueError("bucket: expected a non-empty string")
        if not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
            raise ValueError(f"account: expected 12 digits, got {account!r}")
        self.bucket = bucket
        self.account = account
        self.start = _utc(start, "start")
        self.end = _utc(end, "end")
        if self.end < self.start:
            raise ValueError("end: the window ends before it starts")
        self.malformed_lines = 0
        self.malformed_events = 0  # not a usable S3 data-event record
        self.outside_window = 0
        self.other_buckets = 0
        self.internal = 0
        self.latest: datetime | None = None  # latest time of any record of this bucket, in window or not
        self.anonymous = _Breakdown()
        self.external = _Breakdown()
        self._classes: dict[str, str] = {}  # requester -> class (logs repeat requesters)

    # -- input

    def add_log_line(self, line: str | bytes) -> None:
        """Count one server access log line; a malformed one is counted in ``malformedLines``."""
        groups = scan_line(line)
        when = None if groups is None else parse_time(groups[TIME])
        if groups is None or when is None:
            self.malformed_lines += 1
            return
        if groups[BUCKET] != self.bucket:
            self.other_buckets += 1
            return
        if self.latest is None or when > self.latest:
            self.latest = when
        if when < self.start or when > self.end:
            self.outside_window += 1
            return
        requester = groups[REQUESTER]
        if requester == "-":
            kind = ANONYMOUS
        elif requester == groups[OWNER]:
            kind = INTERNAL  # the bucket owner's canonical id
        else:
            kind = self._classes.get(requester) or self._remember(requester)
        if kind == INTERNAL:
            self.internal += 1
            return
        category, mutating = operation_category(groups[OPERATION])
        status = groups[STATUS]
        ok = status == "-" or int(status) < 400  # an unknown status counts as success: never hide data out
        sent = groups[BYTES_SENT]
        ip = groups[REMOTE_IP]
        raw_key = groups[KEY]
        # Only successful GETs are counted per key, so only they pay for decoding it.
        key = decode_key(raw_key) if category == GET and ok and raw_key != "-" else None
        (self.anonymous if kind == ANONYMOUS else self.external).count(
            category,
            mutating,
            ok,
            None if ip == "-" else ip,
            key,
            0 if sent == "-" else int(sent),
            requester if kind == EXTERNAL else None,
        )

    def _remember(self, requester: str) -> str:
        kind = classify_requester(requester, self.account)
        if len(self._classes) >= _CACHE_LIMIT:
            self._classes.clear()
        self._classes[requester] = kind
        return kind

    def add_log_lines(self, lines: Iterable[str | bytes]) -> int:
        """Count every line of ``lines``; returns how many there were."""
        before = self.inputs_counted()
        add = self.add_log_line
        for line in lines:
            add(line)
        return self.inputs_counted() - before

    def inputs_counted(self) -> int:
        """Lines, records and events counted so far: each lands in exactly one counter."""
        return (
            self.malformed_lines
            + self.malformed_events
            + self.outside_window
            + self.other_buckets
            + self.internal
            + self.anonymous.requests
            + self.external.requests
        )

    def add_log_record(self, record: AccessLogRecord) -> None:
        """Count one parsed access-log record (same rules as :meth:`add_log_line`)."""
        if record.bucket != self.bucket:
            self.other_buckets += 1
            return
        if not self._in_window(record.time):
            return
        kind = classify_requester(record.requester, self.account, record.bucket_owner)
        if kind == INTERNAL:
            self.internal += 1
            return
        category, mutating = operation_category(record.operation)
        ok = record.http_status is None or record.http_status < 400
        (self.anonymous if kind == ANONYMOUS else self.external).count(
            category,
            mutating,
            ok,
            record.remote_ip,
            record.key if category == GET and ok else None,
            record.bytes_sent,
            record.requester if kind == EXTERNAL else None,
        )

    def _in_window(self, when: datetime) -> bool:
        if self.latest is None or when > self.latest:
            self.latest = when
        if when < self.start or when > self.end:
            self.outside_window += 1
            return False
        return True

    def add_data_event(self, record: Mapping[str, Any]) -> None:
        """Count one CloudTrail S3 data-event record; anything unusable goes to ``malformedEvents``.

        Every field is treated as attacker-written: wrong types, missing parts and odd values
        are counted, never raised. An EventBridge envelope (record under ``detail``) is unwrapped.
        """
        if isinstance(record, Mapping) and "eventSource" not in record:
            detail = record.get("detail")
            record = detail if isinstance(detail, Mapping) else record
        if not isinstance(record, Mapping) or record.get("eventSource") != "s3.amazonaws.com":
            self.malformed_events += 1
            return
        when = _event_time(record.get("eventTime"))
        name = record.get("eventName")
        params = record.get("requestParameters")
        params = params if isinstance(params, Mapping) else {}
        bucket = params.get("bucketName")
        if not isinstance(bucket, str):
            bucket = _bucket_from_resources(record.get("resources"))
        if when is None or not isinstance(name, str) or bucket is None:
            self.malformed_events += 1
            return
        if bucket != self.bucket:
            self.other_buckets += 1
            return
        if not self._in_window(when):
            return
        kind, principal = _identity_class(record.get("userIdentity"), self.account)
        if kind == INTERNAL:
            self.internal += 1
            return
        category, mutating = event_category(name)
        error = record.get("errorCode")
        ok = error is None or error == ""
        ip = record.get("sourceIPAddress")
        key = params.get("key")
        extra = record.get("additionalEventData")
        sent = _event_bytes(extra.get("bytesTransferredOut")) if isinstance(extra, Mapping) else 0
        (self.anonymous if kind == ANONYMOUS else self.external).count(
            category,
            mutating,
            ok,
            ip if isinstance(ip, str) and ip else None,
            key if isinstance(key, str) and category == GET and ok else None,
            sent if ok else 0,
            principal if kind == EXTERNAL else None,
        )

    def merge(self, other: ReviewAccumulator) -> None:
        """Add ``other``'s counts (same bucket, account and window) into this one."""
        if (other.bucket, other.account, other.start, other.end) != (
            self.bucket,
            self.account,
            self.start,
            self.end,
        ):
            raise ValueError("merge: the accumulators review different buckets, accounts or windows")
        self.malformed_lines += other.malformed_lines
        self.malformed_events += other.malformed_events
        self.outside_window += other.outside_window
        self.other_buckets += other.other_buckets
        self.internal += other.internal
        if other.latest is not None and (self.latest is None or other.latest > self.latest):
            self.latest = other.latest
        self.anonymous.merge(other.anonymous)
        self.external.merge(other.external)

    # -- state

    def to_state(self) -> dict[str, Any]:
        """A compact JSON-serialisable snapshot, at most :data:`STATE_BUDGET_CHARS` as JSON.

        Past the budget (only with many long distinct keys or principals) the counters keep
        fewer of their largest entries and the counts become approximate, as the report says.
        """
        limit: int | None = None
        while True:
            state = {
                "v": STATE_VERSION,
                "bucket": self.bucket,
                "account": self.account,
                "from": _iso(self.start),
                "to": _iso(self.end),
                "latest": None if self.latest is None else _iso(self.latest),
                "n": [
                    self.malformed_lines,
                    self.malformed_events,
                    self.outside_window,
                    self.other_buckets,
                    self.internal,
                ],
                "anon": self.anonymous.to_state(limit),
                "ext": self.external.to_state(limit),
            }
            if limit == 0 or len(json.dumps(state, separators=(",", ":"))) <= STATE_BUDGET_CHARS:
                return state
            limit = 64 if limit is None else limit // 2

    @classmethod
    def from_state(cls, state: object) -> ReviewAccumulator:
        """Rebuild an accumulator from :meth:`to_state`; raises ValueError (naming the field) on garbage."""
        data = _mapping(state, "state")
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"state.v: expected {STATE_VERSION}")
        bucket, account = data.get("bucket"), data.get("account")
        if not isinstance(bucket, str) or not isinstance(account, str):
            raise ValueError("state.bucket, state.account: expected strings")
        result = cls(
            bucket,
            account,
            _parse_iso(data.get("from"), "state.from"),
            _parse_iso(data.get("to"), "state.to"),
        )
        latest = data.get("latest")
        result.latest = None if latest is None else _parse_iso(latest, "state.latest")
        numbers = data.get("n")
        if not isinstance(numbers, list) or len(numbers) != 5 or not all(_is_count(n) for n in numbers):
            raise ValueError("state.n: expected 5 non-negative integers")
        (
            result.malformed_lines,
            result.malformed_events,
            result.outside_window,
            result.other_buckets,
            result.internal,
        ) = numbers
        result.anonymous = _Breakdown.from_state(data.get("anon"), "state.anon")
        result.external = _Breakdown.from_state(data.get("ext"), "state.ext")
        return result

    # -- output

    def report(
        self, *, sources: list[dict[str, Any]], complete: bool, complete_to: datetime | None
    ) -> dict[str, Any]:
        """The review as a JSON-serialisable dict (schema ``s3-exposure-review/1``).

        ``sources`` says what was read (e.g. ``{"kind": "access-logs", "files": 3, "lines": 120}``).
        The verdict is ``no-evidence`` when there is none, or when each says it read nothing
        (``lines`` or ``events`` of 0). ``complete`` and ``complete_to`` say how far the sources
        are known to be complete.
        """
        anonymous, external = self.anonymous, self.external
        outside = (anonymous, external)
        if not any(_has_evidence(source) for source in sources):
            verdict = "no-evidence"
        elif any(part.ok_writes for part in outside):
            verdict = "written"
        elif any(part.ok_reads for part in outside):
            verdict = "read"
        elif any(part.requests for part in outside):
            verdict = "attempted-only"
        else:
            verdict = "no-outside-access"
        seconds = (self.end - self.start).total_seconds()
        return {
            "schema": SCHEMA,
            "bucket": self.bucket,
            "account": self.account,
            "window": {"from": _iso(self.start), "to": _iso(self.end), "minutes": math.ceil(seconds / 60)},
            "requests": {
                ANONYMOUS: anonymous.requests,
                EXTERNAL: external.requests,
                INTERNAL: self.internal,
                "total": anonymous.requests + external.requests + self.internal,
            },
            ANONYMOUS: anonymous.report(with_principals=False),
            EXTERNAL: external.report(with_principals=True),
            "malformedLines": self.malformed_lines,
            "malformedEvents": self.malformed_events,
            "outsideWindow": self.outside_window,
            "otherBuckets": self.other_buckets,
            "latestRecord": None if self.latest is None else _iso(self.latest),
            "complete": bool(complete),
            "completeTo": None if complete_to is None else _iso(_utc(complete_to, "complete_to")),
            "sources": [dict(source) for source in sources],
            "verdict": verdict,
        }


def _has_evidence(source: Mapping[str, Any]) -> bool:
    """False for a source that says it read nothing (``lines``/``events`` of 0)."""
    return not any(source.get(name) == 0 for name in ("lines", "events"))


# --- data-event fields (every one attacker-written) ----------------------------------------------


def _event_time(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        when = datetime.fromisoformat(value)
        # CloudTrail writes UTC with a Z; a time without a zone is taken as UTC.
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _bucket_from_resources(resources: object) -> str | None:
    """The bucket named by a data event's ``resources`` (``arn:aws:s3:::bucket[/key]``), if any."""
    if not isinstance(resources, list):
        return None
    for resource in resources[:16]:
        arn = resource.get("ARN") if isinstance(resource, Mapping) else None
        if isinstance(arn, str) and arn.startswith("arn:") and arn.count(":") >= 5:
            name = arn.split(":", 5)[5].split("/", 1)[0]
            if arn.split(":", 3)[2] == "s3" and name:
                return name
    return None


def _identity_class(identity: object, account: str) -> tuple[str, str | None]:
    """(class, principal) from a data event's ``userIdentity``; an unreadable one is external, unnamed."""
    if not isinstance(identity, Mapping):
        return EXTERNAL, None
    kind, account_id = identity.get("type"), identity.get("accountId")
    if account_id == "anonymous" or identity.get("principalId") == "ANONYMOUS_PRINCIPAL":
        return ANONYMOUS, None
    if kind == "AWSService":
        return INTERNAL, None
    arn = identity.get("arn")
    if isinstance(arn, str) and arn:
        return classify_requester(arn, account), arn
    if isinstance(account_id, str) and account_id:
        if account_id == account:
            return INTERNAL, None
        return EXTERNAL, account_id
    return EXTERNAL, None


def _event_bytes(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return min(max(value, 0), MAX_EVENT_BYTES)
    if isinstance(value, float) and math.isfinite(value):
        return int(min(max(value, 0.0), float(MAX_EVENT_BYTES)))
    if isinstance(value, str) and 0 < len(value) <= 19 and value.isascii() and value.isdigit():
        return min(int(value), MAX_EVENT_BYTES)
    return 0


# --- summary ----------------------------------------------------------------------------------


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _human_bytes(count: int) -> str:
    """Decimal units, as S3's console shows them: 950 B, 1.2 KB, 120 MB."""
    if count < 1000:
        return f"{count} B"
    value, unit = float(count), "B"
    for name in ("KB", "MB", "GB", "TB", "PB"):
        value, unit = value / 1000, name
        if value < 999.5:
            break
    return f"{value:.1f} {unit}" if value < 9.95 else f"{value:.0f} {unit}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _describe_class(name: str, part: Mapping[str, Any]) -> str:
    """E.g. "37 anonymous GETs from 5 IPs (all failed)" or "3 external requests (2 GET, 1 PUT) ..."."""
    requests = _int(part.get("requests"))
    by_op = part.get("byOperation")
    ops = [(op, _int(by_op.get(op))) for op in CATEGORIES] if isinstance(by_op, Mapping) else []
    used = [(op, n) for op, n in ops if n]
    if len(used) == 1 and used[0][0] in ("GET", "HEAD", "LIST", "PUT", "DELETE"):
        text = f"{requests} {name} {used[0][0]}" + ("" if requests == 1 else "s")
    else:
        detail = ", ".join(f"{n} {op}" for op, n in used)
        text = f"{_plural(requests, name + ' request')}" + (f" ({detail})" if detail else "")
    ips = _int(part.get("distinctIps"))
    at_least = "at least " if part.get("distinctIpsAtLeast") is True else ""
    text += f" from {at_least}{_plural(ips, 'IP')}"
    succeeded = _int(part.get("succeeded"))
    if succeeded == 0:
        text += ", all failed"
    elif succeeded < requests:
        text += f", {succeeded} succeeded"
    sent = _int(part.get("bytesSent"))
    if sent:
        text += f", {_human_bytes(sent)} out"
    return text


def _clock(text: object, window_end: object) -> str:
    """``10:42Z`` (or ``2019-02-06 10:42Z`` when not the window's last day) from an ISO string."""
    if not isinstance(text, str):
        return "?"
    try:
        when = datetime.fromisoformat(text).astimezone(UTC)
        end = datetime.fromisoformat(window_end).astimezone(UTC) if isinstance(window_end, str) else None
    except (ValueError, OverflowError):
        return "?"
    return when.strftime("%H:%MZ" if end is not None and end.date() == when.date() else "%Y-%m-%d %H:%MZ")


def summary_line(report: Mapping[str, Any]) -> str:
    """One ASCII line for a person, from a :meth:`ReviewAccumulator.report`; numbers only.

    Keys, user agents, principals and IPs are attacker-written and never appear here.
    """
    sources = report.get("sources")
    if not sources or not isinstance(sources, list):
        return (
            "exposure review: cannot tell whether data was read: server access logging is off "
            "and the trail records no data events for this bucket"
        )
    if report.get("verdict") == "no-evidence":
        files = sum(_int(source.get("files")) for source in sources if isinstance(source, Mapping))
        return (
            "exposure review: cannot tell whether data was read: the logs given hold no record "
            f"({_plural(files, 'file')} read)"
        )
    window = report.get("window")
    window = window if isinstance(window, Mapping) else {}
    kinds = {source.get("kind") for source in sources if isinstance(source, Mapping)}
    logs = (
        "access logs" if kinds == {"access-logs"} else "data events" if kinds == {"data-events"} else "logs"
    )
    complete_to = report.get("completeTo")
    if report.get("complete") is True:
        coverage = f"{logs} complete" + (
            f" to {_clock(complete_to, window.get('to'))}" if complete_to else ""
        )
    elif complete_to:
        coverage = f"{logs} only up to {_clock(complete_to, window.get('to'))}, may be incomplete"
    else:
        coverage = f"{logs} may be incomplete"
    minutes = _int(window.get("minutes"))
    parts = []
    for name in (ANONYMOUS, EXTERNAL):
        part = report.get(name)
        if isinstance(part, Mapping) and _int(part.get("requests")):
            parts.append(_describe_class(name, part))
    malformed = _int(report.get("malformedLines")) + _int(report.get("malformedEvents"))
    tail = f"; {_plural(malformed, 'malformed record')} skipped" if malformed else ""
    if not parts:
        if report.get("latestRecord") is None and _int(report.get("otherBuckets")):
            # Usually a mistyped bucket name or the wrong log prefix, not a quiet bucket.
            tail += f"; no record of this bucket at all ({_int(report.get('otherBuckets'))} of other buckets)"
        return f"exposure review: 0 anonymous requests during the {minutes}-minute window ({coverage}){tail}"
    verdict = report.get("verdict")
    verdict_text = verdict if verdict in VERDICTS else "?"
    return (
        f"exposure review: {'; '.join(parts)}; verdict {verdict_text}; "
        f"{minutes}-minute window ({coverage}){tail}"
    )


# --- reading files ----------------------------------------------------------------------------


def iter_log_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given; directories walked recursively in sorted order (hidden entries skipped).

    Raises FileNotFoundError naming a path that does not exist.
    """
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    candidate = Path(root, name)
                    if not name.startswith(".") and candidate.is_file():
                        yield candidate
        elif path.exists():
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")


class Readable(Protocol):
    """What :func:`iter_lines` reads from: a binary file, plain or gzip."""

    def read1(self, size: int = -1, /) -> bytes: ...


def iter_lines(stream: Readable) -> Iterator[bytes]:
    """The non-blank lines of a binary stream, read in chunks of up to 1 MiB (memory stays bounded).

    A line longer than :data:`MAX_LINE_CHARS` comes out once, cut just past the limit (so a
    parser refuses it), and the rest of it is skipped.
    """
    rest = b""
    skipping = False
    # read1, not read: a damaged gzip stream raises, and read would drop what came before the damage.
    while chunk := stream.read1(READ_CHUNK):
        lines = chunk.split(b"\n")
        last = lines.pop()  # the start of a line that the next chunk continues
        if lines:
            first = lines[0]
            if skipping:
                lines[0], skipping = b"", False
            elif rest:
                lines[0] = rest + first
            rest = b""
            for line in lines:
                if len(line) > MAX_LINE_CHARS:
                    yield line[: MAX_LINE_CHARS + 1]
                elif line and line != b"\r":
                    yield line
        if skipping:
            continue
        rest = rest + last if rest else last
        if len(rest) > MAX_LINE_CHARS:
            yield rest[: MAX_LINE_CHARS + 1]
            rest, skipping = b"", True
    if rest and not skipping and rest != b"\r":
        yield rest


def read_access_logs(accumulator: ReviewAccumulator, paths: Iterable[Path]) -> dict[str, Any]:
    """Feed every line of the files under ``paths`` (gzip or plain, by magic bytes) to ``accumulator``.

    Returns the source entry ``{"kind": "access-logs", "files": n, "lines": n}``, plus
    ``"unreadableFiles": n`` and ``"unreadable": ["path: reason", ...]`` (the first 20) when a file
    could not be read to its end; the lines read before the damage still count. Raises
    FileNotFoundError for a missing path.
    """
    files = lines = failed = 0
    unreadable: list[str] = []
    for path in iter_log_files(paths):
        files += 1
        before = accumulator.inputs_counted()  # so lines read before a failure still count
        try:
            with open(path, "rb") as raw:
                gzipped = raw.read(2) == GZIP_MAGIC
                raw.seek(0)
                stream: Readable = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
                accumulator.add_log_lines(iter_lines(stream))
        except (OSError, EOFError, zlib.error) as exc:
            failed += 1
            if len(unreadable) < 20:
                reason = (
                    exc.strerror
                    if isinstance(exc, OSError) and exc.strerror
                    else str(exc) or type(exc).__name__
                )
                unreadable.append(f"{path}: {reason}")
        finally:
            lines += accumulator.inputs_counted() - before
    source: dict[str, Any] = {"kind": "access-logs", "files": files, "lines": lines}
    if failed:
        source["unreadableFiles"] = failed
        source["unreadable"] = unreadable
    return source


def review_paths(
    paths: Iterable[Path], bucket: str, account: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """Review the server access logs under ``paths`` (files or directories, gzip or plain).

    Completeness is inferred: the logs count as complete when every file was read and some record
    of the bucket is at or past the window's end (S3 delivers logs late and out of order, so this
    is a sign, not a proof); ``completeTo`` is the latest such record. Files that hold no line
    at all are no evidence (verdict ``no-evidence``).
    """
    accumulator = ReviewAccumulator(bucket, account, start, end)
    source = read_access_logs(accumulator, paths)
    latest = accumulator.latest
    complete = "unreadable" not in source and latest is not None and latest >= accumulator.end
    return accumulator.report(sources=[source], complete=complete, complete_to=latest)

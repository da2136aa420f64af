"""Where an exposure review finds its evidence, and reading it: S3 server access logs, CloudTrail data events.

Two sources, each planned once per review (:func:`plan_sources`) and then read object by object
(:func:`read_sources`) into a :class:`~handlers.review.exposure_review.ReviewAccumulator`:

- **access logs**: ``GetBucketLogging`` names the target bucket, prefix and key format. Only
  the log objects whose key time could hold records of the window are listed: from the window
  start (less :data:`EARLY_MARGIN`) to its end plus the late-delivery margin. SimplePrefix keys
  (``<prefix>YYYY-mm-DD-HH-MM-SS-<unique>``, the delivery time) are listed with ``StartAfter``
  at the window start, never the bucket's whole history; PartitionedPrefix keys
  (``<prefix><account>/<region>/<bucket>/YYYY/MM/DD/...``) one day folder at a time (EventTime:
  the days of the window, every object; DeliveryTime: the days up to the end plus the margin,
  filtered by the time in the name; not reported, as by SDKs older than the key formats: found
  by its partition folder, every object of the days that may hold records).
- **data events**: the detector's trail (``TRAIL_NAME``/``TRAIL_BUCKET``) counts only when its
  event selectors record *reads* of this bucket's objects (:func:`trail_coverage`); the
  repo's default (``PutObjectAcl`` only) does not. Its log files of the window's days
  (``AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/``) are streamed, and the S3
  data events of this bucket fed to the review.

Completeness: S3 delivers access logs best-effort, usually within a few hours, and never says
when a period is complete; CloudTrail usually within 15 minutes. So the rule here is a
time rule: records older than ``now - late margin`` are taken as delivered. A source is
complete to ``min(window end, now - margin)`` when it was read to its end without a failed
listing or an unreadable object; the review is complete when that reaches the window's end.

Everything read from S3 is attacker-influenced (keys, log lines, trail records): keys are
checked before use, objects are streamed with a cap on their decompressed size, and no object
is held in memory whole. A :class:`Budget` stops the reading before the Lambda's time runs
out; :func:`read_sources` then returns a :class:`Cursor` and the sources' progress is saved
with them (:meth:`Source.to_json`), so another invocation continues where this one stopped.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from handlers.detection.cloudtrail_files import InputError, ParseProblems, iter_json_values, iter_records
from handlers.detection.cloudtrail_files import _TextBuffer as TextBuffer
from handlers.detection.rules.detector_context import DetectorContext, trail_short_name
from handlers.detection.safe_text import checked_bucket, checked_region
from handlers.detection.timestamps import parse_zoned, utc_text
from handlers.response import aws_clients
from handlers.response.exposure import CallFailure, describe_error
from handlers.review.exposure_review import GZIP_MAGIC, ReviewAccumulator, iter_lines

ACCESS_LOGS: Final = "access-logs"
DATA_EVENTS: Final = "data-events"
KINDS: Final = (ACCESS_LOGS, DATA_EVENTS)

DEFAULT_LATE_MARGIN_MINUTES: Final = 120
# Records are delivered after they happen, so a key time before the window start holds nothing
# of it; the margin only covers clock skew between the request and the delivery stamp.
EARLY_MARGIN: Final = timedelta(minutes=10)
# Decompressed bytes read from one object at most: S3 access log objects are kilobytes to a few
# megabytes, CloudTrail files tens of megabytes. Past this an object is reported, not read on.
MAX_ACCESS_LOG_BYTES: Final = 256 * 1024 * 1024
MAX_TRAIL_FILE_BYTES: Final = 1024 * 1024 * 1024
MAX_LISTED_UNREADABLE: Final = 20
MAX_SHOWN_KEY: Final = 300  # characters of a key kept in a source's unreadable list
MAX_KEY_CHARS: Final = 1024  # S3's own limit (bytes); a longer "key" is not one S3 returned
MAX_PREFIX_CHARS: Final = 1024
MAX_WINDOW_DAYS: Final = 400  # day folders listed at most per prefix
MAX_ORGANISATIONS: Final = 5  # organisation folders under AWSLogs/ followed at most
READ_CHUNK: Final = 1024 * 1024
PAGE_SIZE: Final = 1000

# GetObject errors that will fail the same way for every other object of the source.
_SOURCE_WIDE_ERRORS: Final = frozenset(
    {"AccessDenied", "AllAccessDisabled", "NoSuchBucket", "InvalidBucketName", "KMS.AccessDeniedException"}
)
_SIMPLE_NAME: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})-([0-9]{2})-([0-9]{2})-([0-9]{2})-[^/]{1,256}"
)
_TRAIL_STAMP: Final = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})Z")
_ORGANISATION: Final = re.compile(r"o-[a-z0-9]{10,32}")


class OutOfTime(Exception):
    """The budget's hard limit passed while an object was being read (it is read again later)."""


class TooLarge(Exception):
    """An object decompressed to more than its source's cap."""


@dataclass
class Budget:
    """How long this invocation may read: no new object after ``soft``, abandon one after ``hard``.

    Times are ``clock()`` values (monotonic seconds). The gap between the two is the time one
    more object may take; after ``hard`` the caller still needs time to save and continue.
    """

    soft: float
    hard: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def of(cls, seconds: float, grace: float = 30.0, clock: Callable[[], float] = time.monotonic) -> Budget:
        """A budget starting now: ``seconds`` to start objects, ``grace`` more to finish one."""
        now = clock()
        return cls(now + seconds, now + seconds + grace, clock)

    def can_start(self) -> bool:
        """Whether another object may be started."""
        return self.clock() < self.soft

    def overrun(self) -> bool:
        """Whether the object being read must be abandoned."""
        return self.clock() >= self.hard


@dataclass(frozen=True)
class Cursor:
    """Where reading stopped: the source being read and the last of its keys fully processed."""

    source: str
    after: str

    def to_json(self) -> dict[str, str]:
        """The cursor as a JSON object (for the continuation message)."""
        return {"source": self.source, "after": self.after}


@dataclass(frozen=True)
class Window:
    """What is reviewed: a bucket of an account, between two times, as seen at ``now``."""

    bucket: str
    account: str
    region: str | None
    start: datetime
    end: datetime
    now: datetime
    late_margin: timedelta = timedelta(minutes=DEFAULT_LATE_MARGIN_MINUTES)

    @property
    def complete_to(self) -> datetime:
        """How far records are taken as delivered: the window end at most, ``now - margin`` at least."""
        return min(self.end, self.now - self.late_margin)

    @property
    def read_until(self) -> datetime:
        """The latest key time that may hold records of the window (end plus margin, not the future)."""
        return min(self.end + self.late_margin, max(self.now, self.end))


# ---- sources and their progress --------------------------------------------------------------------------


@dataclass
class Source:
    """One evidence source: where its objects are, which keys to read, and how far reading got.

    ``layout`` says how keys are named: ``simple`` (``<base>YYYY-mm-DD-HH-MM-SS-x``),
    ``partitioned`` (``<base>YYYY/MM/DD/YYYY-MM-DD-hh-mm-ss-x``) or ``trail``
    (``<base>YYYY/MM/DD/<account>_CloudTrail_<region>_YYYYMMDDTHHmmZ_x.json.gz``).
    Keys whose time is before ``not_before`` are skipped; one after ``not_after`` ends a listing.
    """

    kind: str
    bucket: str  # the bucket holding the evidence objects
    owner: str | None  # ExpectedBucketOwner for its reads (None: the trail bucket may be elsewhere)
    region: str | None
    layout: str
    bases: list[str]
    not_before: datetime | None
    not_after: datetime | None
    first_day: date | None = None
    last_day: date | None = None
    details: dict[str, Any] = field(default_factory=dict)  # shown in the report as they are
    full_coverage: bool = True  # records every read of the bucket (a trail may record only some)
    after: str = ""  # the last key fully processed
    done: bool = False
    files: int = 0
    units: int = 0  # lines (access logs) or records (trail files) read
    matched: int = 0  # trail: S3 data events of this bucket among them
    ignored_keys: int = 0  # keys in the listing that are not log objects
    unreadable: list[str] = field(default_factory=list)
    unreadable_count: int = 0
    failure: CallFailure | None = None

    def entry(self, window: Window) -> dict[str, Any]:
        """The report's ``sources`` entry: what was read, how much, and how complete it is."""
        unit = "lines" if self.kind == ACCESS_LOGS else "events"
        entry: dict[str, Any] = {"kind": self.kind, **self.details, "files": self.files, unit: self.units}
        if self.kind == DATA_EVENTS:
            entry["bucketEvents"] = self.matched
        if self.ignored_keys:
            entry["ignoredKeys"] = self.ignored_keys
        if self.unreadable_count:
            entry["unreadableFiles"] = self.unreadable_count
            entry["unreadable"] = list(self.unreadable)
        if self.failure is not None:
            entry["failure"] = dict(self.failure)
        entry["complete"] = self.complete(window)
        entry["completeTo"] = None if self.failure else _iso(window.complete_to)
        return entry

    def complete(self, window: Window) -> bool:
        """Read to its end, nothing failed, and the window's end is older than the late margin."""
        return (
            self.done
            and self.failure is None
            and not self.unreadable_count
            and self.full_coverage
            and window.complete_to >= window.end
        )

    def to_json(self) -> dict[str, Any]:
        """The source and its progress as JSON (stored between invocations)."""
        return {
            "kind": self.kind,
            "bucket": self.bucket,
            "owner": self.owner,
            "region": self.region,
            "layout": self.layout,
            "bases": self.bases,
            "notBefore": _iso(self.not_before) if self.not_before else None,
            "notAfter": _iso(self.not_after) if self.not_after else None,
            "firstDay": self.first_day.isoformat() if self.first_day else None,
            "lastDay": self.last_day.isoformat() if self.last_day else None,
            "details": self.details,
            "full": self.full_coverage,
            "after": self.after,
            "done": self.done,
            "n": [self.files, self.units, self.matched, self.ignored_keys, self.unreadable_count],
            "unreadable": self.unreadable,
            "failure": dict(self.failure) if self.failure else None,
        }

    @classmethod
    def from_json(cls, data: object) -> Source:
        """Rebuild from :meth:`to_json`; raises ValueError naming the field on anything else."""
        if not isinstance(data, Mapping):
            raise ValueError("source: expected an object")
        kind, layout = data.get("kind"), data.get("layout")
        if kind not in KINDS or layout not in ("simple", "partitioned", "trail"):
            raise ValueError("source.kind/layout: unknown")
        bucket = data.get("bucket")
        if checked_bucket(bucket) is None:
            raise ValueError("source.bucket: expected a bucket name")
        bases = data.get("bases")
        if not isinstance(bases, list) or not all(isinstance(b, str) and len(b) <= 2048 for b in bases):
            raise ValueError("source.bases: expected a list of key prefixes")
        numbers = data.get("n")
        if not isinstance(numbers, list) or len(numbers) != 5 or not all(_is_count(n) for n in numbers):
            raise ValueError("source.n: expected 5 counts")
        unreadable = data.get("unreadable")
        if not isinstance(unreadable, list) or not all(isinstance(u, str) for u in unreadable):
            raise ValueError("source.unreadable: expected a list of strings")
        details = data.get("details")
        after = data.get("after")
        if not isinstance(details, dict) or not isinstance(after, str):
            raise ValueError("source.details/after: wrong type")
        failure = data.get("failure")
        source = cls(
            kind=str(kind),
            bucket=str(bucket),
            owner=_optional_str(data.get("owner"), "source.owner"),
            region=_optional_str(data.get("region"), "source.region"),
            layout=str(layout),
            bases=list(bases),
            not_before=_optional_time(data.get("notBefore"), "source.notBefore"),
            not_after=_optional_time(data.get("notAfter"), "source.notAfter"),
            first_day=_optional_day(data.get("firstDay"), "source.firstDay"),
            last_day=_optional_day(data.get("lastDay"), "source.lastDay"),
            details=details,
            full_coverage=data.get("full") is True,
            after=after,
            done=data.get("done") is True,
            unreadable=list(unreadable)[:MAX_LISTED_UNREADABLE],
            failure=_failure_from(failure),
        )
        source.files, source.units, source.matched, source.ignored_keys, source.unreadable_count = numbers
        return source

    def note_unreadable(self, key: str, reason: str) -> None:
        """Count an object that could not be read (the first few are named)."""
        self.unreadable_count += 1
        if len(self.unreadable) < MAX_LISTED_UNREADABLE:
            self.unreadable.append(f"{key[:MAX_SHOWN_KEY]}: {reason[:200]}")


@dataclass
class Plan:
    """The sources a review reads (present) and those it cannot (absent, each with its reason)."""

    sources: list[Source] = field(default_factory=list)
    absent: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The plan and the progress of its sources, as JSON."""
        return {"sources": [s.to_json() for s in self.sources], "absent": self.absent}

    @classmethod
    def from_json(cls, data: object) -> Plan:
        """Rebuild from :meth:`to_json`; raises ValueError on anything else."""
        if not isinstance(data, Mapping):
            raise ValueError("plan: expected an object")
        sources, absent = data.get("sources"), data.get("absent")
        if not isinstance(sources, list) or len(sources) > len(KINDS):
            raise ValueError("plan.sources: expected a short list")
        if not isinstance(absent, list) or not all(isinstance(a, dict) for a in absent):
            raise ValueError("plan.absent: expected a list of objects")
        return cls([Source.from_json(s) for s in sources], list(absent))

    def entries(self, window: Window) -> list[dict[str, Any]]:
        """The report's ``sources``: the present ones only (absent ones are no evidence at all)."""
        return [source.entry(window) for source in self.sources]

    def complete(self, window: Window) -> bool:
        """Every source read completely, and at least one records every read of the bucket."""
        return (
            bool(self.sources)
            and all(s.done and s.failure is None and not s.unreadable_count for s in self.sources)
            and any(s.complete(window) for s in self.sources)
        )

    def complete_to(self, window: Window) -> datetime | None:
        """How far the evidence reaches (see the module docstring); None when no source was read."""
        if any(s.failure is None for s in self.sources):
            return window.complete_to
        return None


def plan_sources(window: Window, detector: DetectorContext, home_region: str | None) -> Plan:
    """Find where the evidence for ``window`` is: the bucket's access logs and the detector's trail.

    Never raises: a read that fails makes its source absent (with the failure) or failed.
    """
    plan = Plan()
    for planned in (plan_access_logs(window), plan_data_events(window, detector, home_region)):
        if isinstance(planned, Source):
            plan.sources.append(planned)
        else:
            plan.absent.append(planned)
    return plan


# ---- access logs -----------------------------------------------------------------------------------------


def plan_access_logs(window: Window) -> Source | dict[str, Any]:
    """The access-log source of the bucket, or an absent entry saying why there is none."""
    s3 = aws_clients.client("s3", window.region)
    try:
        response = s3.get_bucket_logging(Bucket=window.bucket, ExpectedBucketOwner=window.account)
    except (ClientError, BotoCoreError, OSError) as exc:
        failure = describe_error("s3:GetBucketLogging", exc)
        gone = failure["error"] == "NoSuchBucket"
        return {
            "kind": ACCESS_LOGS,
            "reason": "the bucket no longer exists, so where its logs went is unknown"
            if gone
            else f"the bucket's logging settings could not be read ({failure['error']})",
            "failure": dict(failure),
        }
    enabled = response.get("LoggingEnabled") if isinstance(response, Mapping) else None
    if not isinstance(enabled, Mapping):
        return {"kind": ACCESS_LOGS, "reason": "server access logging is off for this bucket"}
    target, prefix = enabled.get("TargetBucket"), enabled.get("TargetPrefix", "")
    if checked_bucket(target) is None or not isinstance(prefix, str) or len(prefix) > MAX_PREFIX_CHARS:
        return {"kind": ACCESS_LOGS, "reason": "the logging settings name no valid target bucket and prefix"}
    key_format = enabled.get("TargetObjectKeyFormat")
    partitioned = key_format.get("PartitionedPrefix") if isinstance(key_format, Mapping) else None
    lo, hi = window.start - EARLY_MARGIN, window.read_until
    details: dict[str, Any] = {"targetBucket": target, "targetPrefix": prefix}

    def source(layout: str, bases: list[str], days: tuple[date, date] | None, filtered: bool) -> Source:
        return Source(
            kind=ACCESS_LOGS,
            bucket=str(target),
            owner=window.account,  # a log target is always in the bucket's own account
            region=window.region,
            layout=layout,
            bases=bases,
            not_before=lo if filtered else None,
            not_after=hi if filtered else None,
            first_day=days[0] if days else None,
            last_day=days[1] if days else None,
            details=details,
        )

    base = f"{prefix}{window.account}/{window.region or 'us-east-1'}/{window.bucket}/"
    if not isinstance(key_format, Mapping) and _holds_keys(str(target), base, window):
        # An SDK older than the key formats (Nov 2023: the Lambda runtime's may be) does not report
        # one; the partition folder shows it. Every day the records may be in is read whole.
        details["keyFormat"] = "PartitionedPrefix (date source not reported)"
        return source("partitioned", [base], (window.start.date(), hi.date()), filtered=False)
    if not isinstance(partitioned, Mapping):
        details["keyFormat"] = "SimplePrefix"
        return source("simple", [prefix], None, filtered=True)
    if partitioned.get("PartitionDateSource") == "DeliveryTime":
        details["keyFormat"] = "PartitionedPrefix (DeliveryTime)"
        return source("partitioned", [base], (lo.date(), hi.date()), filtered=True)
    # EventTime (the default): a day folder holds that day's records whenever they were delivered,
    # and every key's time is the day at 00:00:00, so no key is filtered by its time.
    details["keyFormat"] = "PartitionedPrefix (EventTime)"
    return source("partitioned", [base], (window.start.date(), window.end.date()), filtered=False)


def _holds_keys(bucket: str, prefix: str, window: Window) -> bool:
    """Whether any object's key starts with ``prefix`` (a failed listing: no, the read reports it)."""
    try:
        page = aws_clients.client("s3", window.region).list_objects_v2(
            Bucket=bucket, Prefix=prefix, MaxKeys=1, ExpectedBucketOwner=window.account
        )
    except (ClientError, BotoCoreError, OSError):
        return False
    return isinstance(page, Mapping) and bool(page.get("KeyCount") or page.get("Contents"))


# ---- data events: what the trail records -----------------------------------------------------------------


@dataclass(frozen=True)
class TrailCoverage:
    """What the trail's event selectors record of one bucket's objects: ``all``, ``some`` or ``none``."""

    reads: str
    writes: str
    names: tuple[str, ...] | None  # the only data event names recorded, when the selectors list them
    description: str

    def to_json(self) -> dict[str, Any]:
        """The coverage as JSON (part of the source's details)."""
        return {"reads": self.reads, "writes": self.writes, "eventNames": list(self.names or []) or None}


_LEVELS: Final = {"none": 0, "some": 1, "all": 2}
_READ_PROBE, _WRITE_PROBE = "GetObject", "PutObject"  # the calls that decide "records reads/writes"


def _best(*levels: str) -> str:
    return max(levels, key=lambda level: _LEVELS[level], default="none")


def trail_coverage(selectors: Mapping[str, Any], bucket: str, partition: str = "aws") -> TrailCoverage:
    """What ``GetEventSelectors``' answer records of ``bucket``'s objects. Pure; never raises.

    Basic selectors: ``AWS::S3::Object`` data resources ``arn:aws:s3`` (every bucket) or
    ``arn:aws:s3:::bucket/[prefix]``, with ``ReadWriteType``. Advanced selectors:
    ``eventCategory = Data`` and ``resources.type = AWS::S3::Object``, narrowed by
    ``readOnly``, ``eventName`` and ``resources.ARN``; any other condition makes the coverage
    ``some`` at most (it may leave out requests). Reads count as recorded when ``GetObject`` is.
    """
    bucket_arn = f"arn:{partition}:s3:::{bucket}/"
    reads: list[str] = []
    writes: list[str] = []
    names: set[str] = set()
    any_names_unlimited = False
    basic = selectors.get("EventSelectors")
    for selector in basic if isinstance(basic, list) else []:
        if not isinstance(selector, Mapping):
            continue
        scope = _basic_scope(selector.get("DataResources"), bucket_arn)
        kind = selector.get("ReadWriteType") or "All"
        reads.append(scope if kind in ("All", "ReadOnly") else "none")
        writes.append(scope if kind in ("All", "WriteOnly") else "none")
        any_names_unlimited = any_names_unlimited or scope != "none"
    advanced = selectors.get("AdvancedEventSelectors")
    for selector in advanced if isinstance(advanced, list) else []:
        result = _advanced_scope(selector, bucket_arn) if isinstance(selector, Mapping) else None
        if result is None:
            continue
        read_scope, write_scope, listed = result
        reads.append(read_scope)
        writes.append(write_scope)
        if listed is None:
            any_names_unlimited = any_names_unlimited or read_scope != "none" or write_scope != "none"
        else:
            names.update(listed)
    read, write = _best(*reads), _best(*writes)
    only = None if any_names_unlimited or not names else tuple(sorted(names))
    return TrailCoverage(read, write, only, _describe_coverage(read, write, only))


def _basic_scope(resources: object, bucket_arn: str) -> str:
    scopes = ["none"]
    for resource in resources if isinstance(resources, list) else []:
        if not isinstance(resource, Mapping) or resource.get("Type") != "AWS::S3::Object":
            continue
        values = resource.get("Values")
        for value in values if isinstance(values, list) else []:
            scopes.append(_arn_scope(value, bucket_arn))
    return _best(*scopes)


def _arn_scope(value: object, bucket_arn: str) -> str:
    """``all`` when ``value`` (an ARN prefix) covers every object of the bucket, ``some`` for part."""
    if not isinstance(value, str) or not value:
        return "none"
    # "arn:aws:s3" and "arn:aws:s3:::" stand for every bucket; "arn:aws:s3:::b/" for one.
    if value == bucket_arn[:-1] or (
        bucket_arn.startswith(value) and (value.count(":") <= 2 or value.endswith((":::", "/")))
    ):
        return "all"
    if value.startswith(bucket_arn) or bucket_arn.startswith(value):
        return "some"  # a key prefix, or a bucket-name prefix whose matching rule we do not assume
    return "none"


def _advanced_scope(selector: Mapping[str, Any], bucket_arn: str) -> tuple[str, str, list[str] | None] | None:
    """(reads, writes, listed event names) of one advanced selector; None if it is not about S3 objects."""
    fields: dict[str, Mapping[str, Any]] = {}
    raw = selector.get("FieldSelectors")
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("Field"), str):
            fields[item["Field"]] = item
    category = fields.pop("eventCategory", {})
    resource_type = fields.pop("resources.type", {})
    if "Data" not in _values(category, "Equals") or "AWS::S3::Object" not in _values(resource_type, "Equals"):
        return None
    scope = "all"
    arn = fields.pop("resources.ARN", None)
    if arn is not None:
        scope = _advanced_arn_scope(arn, bucket_arn)
    read_only = fields.pop("readOnly", None)
    records_reads = records_writes = True
    if read_only is not None:
        equals, not_equals = _values(read_only, "Equals"), _values(read_only, "NotEquals")
        records_reads = ("true" in equals or not equals) and "true" not in not_equals
        records_writes = ("false" in equals or not equals) and "false" not in not_equals
    name = fields.pop("eventName", None)
    listed: list[str] | None = None
    if name is not None:
        records_reads = records_reads and _name_allowed(name, _READ_PROBE)
        records_writes = records_writes and _name_allowed(name, _WRITE_PROBE)
        listed = _values(name, "Equals") or None
    fields.pop("eventSource", None)  # S3 data events come from s3.amazonaws.com only
    if fields and scope == "all":
        scope = "some"  # e.g. userIdentity.arn: only some callers are recorded
    return (scope if records_reads else "none", scope if records_writes else "none", listed)


def _values(selector: Mapping[str, Any], operator: str) -> list[str]:
    values = selector.get(operator)
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def _advanced_arn_scope(selector: Mapping[str, Any], bucket_arn: str) -> str:
    scope = "all"
    starts = _values(selector, "StartsWith")
    if starts:
        scope = _best(*(_prefix_scope(v, bucket_arn) for v in starts))
    equals = _values(selector, "Equals")
    if equals:
        exact = "some" if any(v.startswith(bucket_arn) for v in equals) else "none"
        scope = _best(exact, scope if starts else "none")
    for value in _values(selector, "NotStartsWith"):
        if bucket_arn.startswith(value):
            return "none"
        if value.startswith(bucket_arn):
            scope = "some" if scope == "all" else scope
    if any(_values(selector, op) for op in ("EndsWith", "NotEndsWith", "NotEquals")) and scope == "all":
        scope = "some"
    return scope


def _prefix_scope(value: str, bucket_arn: str) -> str:
    if bucket_arn.startswith(value):
        return "all"
    return "some" if value.startswith(bucket_arn) else "none"


def _name_allowed(selector: Mapping[str, Any], name: str) -> bool:
    checks: list[tuple[str, Callable[[str], bool], bool]] = [
        ("Equals", lambda v: name == v, True),
        ("StartsWith", name.startswith, True),
        ("EndsWith", name.endswith, True),
        ("NotEquals", lambda v: name == v, False),
        ("NotStartsWith", name.startswith, False),
        ("NotEndsWith", name.endswith, False),
    ]
    for operator, test, wanted in checks:
        values = _values(selector, operator)
        if values and any(test(v) for v in values) != wanted:
            return False
    return True


def _describe_coverage(reads: str, writes: str, names: tuple[str, ...] | None) -> str:
    if reads == "none" and writes == "none" and not names:
        return "the trail records no S3 data events for this bucket"
    if reads == "none":
        recorded = f"only {', '.join(names)} data events" if names else "only write data events"
        return f"the trail records {recorded} for this bucket: reads are not recorded"
    what = {"all": "every", "some": "some"}
    text = f"the trail records {what[reads]} object read"
    text += f" and {what[writes]} object write" if writes != "none" else " (not writes)"
    text += " of this bucket"
    if names:
        text += f" (only {', '.join(names)})"
    return text


def plan_data_events(
    window: Window, detector: DetectorContext, home_region: str | None
) -> Source | dict[str, Any]:
    """The data-event source (the detector's trail, when it records reads of the bucket), or why not."""
    trail, trail_bucket = detector.trail_name, detector.trail_bucket
    if not trail:
        return {"kind": DATA_EVENTS, "reason": "no detector trail is configured (TRAIL_NAME)"}
    trail_region = home_region
    partition = "aws"
    if trail.startswith("arn:") and trail.count(":") >= 5:
        parts = trail.split(":")
        partition, trail_region = parts[1] or "aws", checked_region(parts[3]) or home_region
    try:
        selectors = aws_clients.client("cloudtrail", trail_region).get_event_selectors(TrailName=trail)
    except (ClientError, BotoCoreError, OSError) as exc:
        failure = describe_error("cloudtrail:GetEventSelectors", exc)
        return {
            "kind": DATA_EVENTS,
            "reason": f"the trail's event selectors could not be read ({failure['error']})",
            "failure": dict(failure),
        }
    coverage = trail_coverage(selectors if isinstance(selectors, Mapping) else {}, window.bucket, partition)
    details: dict[str, Any] = {
        "trail": trail_short_name(trail),
        "coverage": coverage.to_json(),
        "recorded": coverage.description,
    }
    if coverage.reads == "none":
        return {"kind": DATA_EVENTS, "reason": coverage.description, **details}
    if checked_bucket(trail_bucket) is None:
        return {
            "kind": DATA_EVENTS,
            "reason": "the trail's log bucket is not configured (TRAIL_BUCKET)",
            **details,
        }
    region = window.region or home_region or "us-east-1"  # S3 data events are logged in the bucket's region
    details["trailBucket"] = trail_bucket
    lo, hi = window.start - EARLY_MARGIN, window.read_until
    source = Source(
        kind=DATA_EVENTS,
        bucket=str(trail_bucket),
        owner=None,
        region=trail_region,
        layout="trail",
        bases=[],
        not_before=lo,
        not_after=hi,
        first_day=lo.date(),
        last_day=hi.date(),
        details=details,
        full_coverage=coverage.reads == "all",
    )
    try:
        source.bases = _trail_bases(source, window.account, region)
    except (ClientError, BotoCoreError, OSError) as exc:
        source.failure = describe_error("s3:ListObjectsV2", exc)
        source.done = True
    return source


def _trail_bases(source: Source, account: str, region: str) -> list[str]:
    """``AWSLogs/<account>/CloudTrail/<region>/`` and the same under each organisation folder."""
    bases = [f"AWSLogs/{account}/CloudTrail/{region}/"]
    s3 = aws_clients.client("s3", source.region)
    page = s3.list_objects_v2(Bucket=source.bucket, Prefix="AWSLogs/", Delimiter="/", MaxKeys=PAGE_SIZE)
    folders = page.get("CommonPrefixes") if isinstance(page, Mapping) else None
    organisations = []
    for folder in folders if isinstance(folders, list) else []:
        name = folder.get("Prefix") if isinstance(folder, Mapping) else None
        if isinstance(name, str) and _ORGANISATION.fullmatch(name.removeprefix("AWSLogs/").rstrip("/")):
            organisations.append(f"{name}{account}/CloudTrail/{region}/")
    return sorted(bases + organisations[:MAX_ORGANISATIONS])


# ---- reading ---------------------------------------------------------------------------------------------


def read_sources(plan: Plan, review: ReviewAccumulator, window: Window, budget: Budget) -> Cursor | None:
    """Read every source of ``plan`` into ``review`` from where it stopped; None when all are read.

    Stops before ``budget`` runs out and returns the cursor to continue from (the sources'
    progress is in ``plan``). At least one key is processed per call, so a continuation always
    gets further. Never raises for what S3 answers: failures are recorded on the source.
    """
    progress = _Progress()
    for source in plan.sources:
        if source.done:
            continue
        if not _read_source(source, review, window, budget, progress):
            return Cursor(source.kind, source.after)
        source.done = True
    return None


@dataclass
class _Progress:
    advanced: bool = False  # a key was processed in this call

    def must_stop(self, budget: Budget) -> bool:
        return self.advanced and not budget.can_start()


def _read_source(
    source: Source, review: ReviewAccumulator, window: Window, budget: Budget, progress: _Progress
) -> bool:
    """Read one source onwards from its cursor; False when stopped by the budget."""
    s3 = aws_clients.client("s3", source.region)
    owner = {"ExpectedBucketOwner": source.owner} if source.owner else {}
    for prefix, start_after in listings(source):
        if source.after and not source.after.startswith(prefix) and source.after > prefix:
            continue  # every key under this prefix sorts before the cursor: read already
        start = max(start_after, source.after) if source.after else start_after
        token: str | None = None
        while True:
            if progress.must_stop(budget):
                return False
            params: dict[str, Any] = {
                "Bucket": source.bucket,
                "Prefix": prefix,
                "MaxKeys": PAGE_SIZE,
                **owner,
            }
            if token:
                params["ContinuationToken"] = token
            elif start:
                params["StartAfter"] = start
            try:
                page = s3.list_objects_v2(**params)
            except (ClientError, BotoCoreError, OSError) as exc:
                source.failure = describe_error("s3:ListObjectsV2", exc)
                return True
            outcome = _read_page(source, page, prefix, start, review, window, budget, progress)
            if outcome == "stopped":
                return False
            if outcome in ("failed", "listing-done"):
                if outcome == "failed":
                    return True
                break
            next_token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not isinstance(next_token, str) or not next_token:
                break
            token = next_token
    return True


def _read_page(
    source: Source,
    page: Mapping[str, Any],
    prefix: str,
    start: str,
    review: ReviewAccumulator,
    window: Window,
    budget: Budget,
    progress: _Progress,
) -> str:
    """Process one listing page: ``more``, ``listing-done`` (past the window), ``stopped`` or ``failed``."""
    contents = page.get("Contents") if isinstance(page, Mapping) else None
    for item in contents if isinstance(contents, list) else []:
        key = item.get("Key") if isinstance(item, Mapping) else None
        # S3 returns keys under the prefix, after StartAfter, in order; anything else is not trusted.
        if not isinstance(key, str) or len(key) > MAX_KEY_CHARS or not key.startswith(prefix) or key <= start:
            continue
        if key <= source.after:
            continue
        when = key_time(source.layout, key[len(prefix) :])
        if when is None:
            source.ignored_keys += 1
            _advance(source, key, progress)
            continue
        if source.not_after is not None and when > source.not_after:
            return "listing-done"  # keys sort by time under a prefix: the rest is later still
        if source.not_before is not None and when < source.not_before:
            _advance(source, key, progress)
            continue
        if progress.must_stop(budget):
            return "stopped"
        outcome = _read_object(source, key, review, budget)
        if outcome == "out-of-time":
            if progress.advanced:
                return "stopped"
            # Alone it takes longer than a whole invocation: report it and move on, or no
            # continuation would ever get past it.
            source.note_unreadable(key, "could not be read within one invocation's time")
        elif outcome == "source-failed":
            return "failed"
        _advance(source, key, progress)
    return "more"


def _advance(source: Source, key: str, progress: _Progress) -> None:
    source.after = key
    progress.advanced = True


def listings(source: Source) -> Iterator[tuple[str, str]]:
    """(prefix, StartAfter) of each listing of ``source``, in key order."""
    for base in sorted(source.bases):
        if source.layout == "simple":
            start = f"{base}{source.not_before:%Y-%m-%d-%H-%M-%S}" if source.not_before else ""
            yield base, start
            continue
        if source.first_day is None or source.last_day is None:
            continue
        for day in _days(source.first_day, source.last_day):
            prefix = f"{base}{day:%Y/%m/%d}/"
            start = ""
            if source.layout == "partitioned" and source.not_before and source.not_before.date() == day:
                start = f"{prefix}{source.not_before:%Y-%m-%d-%H-%M-%S}"
            yield prefix, start


def _days(first: date, last: date) -> Iterator[date]:
    day, count = first, 0
    while day <= last and count < MAX_WINDOW_DAYS:
        yield day
        day += timedelta(days=1)
        count += 1


def key_time(layout: str, name: str) -> datetime | None:
    """The time in a log object's name (the part after its listing prefix); None: not a log object."""
    if layout == "trail":
        parts = name.split("_")
        if len(parts) < 5 or parts[1] != "CloudTrail" or "/" in name:
            return None
        match = _TRAIL_STAMP.fullmatch(parts[3])
        fields = match.groups() if match else None
    else:
        match = _SIMPLE_NAME.fullmatch(name)
        fields = match.groups() if match else None
    if fields is None:
        return None
    n = [int(f) for f in fields] + [0]  # a trail stamp has no seconds
    try:
        return datetime(n[0], n[1], n[2], n[3], n[4], n[5], tzinfo=UTC)
    except ValueError:
        return None


def _read_object(source: Source, key: str, review: ReviewAccumulator, budget: Budget) -> str:
    """Read one object into ``review``: ``read``, ``unreadable``, ``out-of-time`` or ``source-failed``.

    Counted into a fresh accumulator first and merged once read, so an object abandoned for
    time counts nothing and is read whole by the next invocation. An object damaged part-way
    (corrupt gzip, a broken connection) keeps what was read before the damage, as the offline
    reader does, and is reported.
    """
    s3 = aws_clients.client("s3", source.region)
    owner = {"ExpectedBucketOwner": source.owner} if source.owner else {}
    part = ReviewAccumulator(review.bucket, review.account, review.start, review.end)
    cap = MAX_ACCESS_LOG_BYTES if source.kind == ACCESS_LOGS else MAX_TRAIL_FILE_BYTES
    counter = _Counter()
    problem: str | None = None
    try:
        body = s3.get_object(Bucket=source.bucket, Key=key, **owner)["Body"]
    except (ClientError, BotoCoreError, OSError) as exc:
        failure = describe_error("s3:GetObject", exc)
        if failure["error"] in _SOURCE_WIDE_ERRORS:
            source.failure = failure
            return "source-failed"
        source.note_unreadable(key, f"{failure['error']}: {failure['message']}")
        return "unreadable"
    try:
        stream = open_stream(body, cap, budget)
        if source.kind == ACCESS_LOGS:
            part.add_log_lines(counter.count(iter_lines(stream)))
        else:
            _feed_trail_file(stream, key, part, review.bucket, counter, source)
    except OutOfTime:
        return "out-of-time"
    except TooLarge:
        problem = f"larger than {cap // (1024 * 1024)} MiB decompressed; read no further"
    except InputError as exc:
        problem = str(exc).removeprefix(f"{key}: ")[:200]
    except (ClientError, BotoCoreError, OSError, EOFError, zlib.error, ValueError) as exc:
        problem = f"{type(exc).__name__}: {str(exc)[:160]}"
    finally:
        _close(body)
    review.merge(part)
    source.files += 1
    source.units += counter.items
    if problem is not None:
        source.note_unreadable(key, problem)
        return "unreadable"
    return "read"


def _close(body: Any) -> None:
    # Closing a stream that already failed must not hide the first failure.
    with contextlib.suppress(Exception):
        body.close()


@dataclass
class _Counter:
    items: int = 0

    def count(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            self.items += 1
            yield item


def _feed_trail_file(
    stream: io.BufferedReader,
    key: str,
    part: ReviewAccumulator,
    bucket: str,
    counter: _Counter,
    source: Source,
) -> None:
    """Stream a CloudTrail log file's records; feed the S3 data events of ``bucket`` to ``part``."""
    reader = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    buffer = TextBuffer(key, "", reader)
    problems = ParseProblems()
    for record in counter.count(iter_records(iter_json_values(buffer, problems))):
        if is_bucket_data_event(record, bucket):
            source.matched += 1
            part.add_data_event(record)
    if problems.count:
        raise InputError(problems.errors[0] if problems.errors else f"{key}: {problems.count} bad values")


def is_bucket_data_event(record: object, bucket: str) -> bool:
    """Whether a trail record is an S3 data event that may concern ``bucket`` (cheap, never raises).

    Records naming another bucket, management events and other services are left out; an S3
    data event that names no bucket at all is kept (the review counts it as malformed).
    """
    if not isinstance(record, Mapping) or record.get("eventSource") != "s3.amazonaws.com":
        return False
    category = record.get("eventCategory")
    if category != "Data" and not (category is None and record.get("managementEvent") is False):
        return False
    params = record.get("requestParameters")
    named = params.get("bucketName") if isinstance(params, Mapping) else None
    if isinstance(named, str):
        return named == bucket
    resources = record.get("resources")
    for resource in resources[:16] if isinstance(resources, list) else []:
        arn = resource.get("ARN") if isinstance(resource, Mapping) else None
        if isinstance(arn, str) and ":::" in arn:
            return arn.split(":::", 1)[1].split("/", 1)[0] == bucket
    return True


# ---- streams ---------------------------------------------------------------------------------------------


class _RawReader(io.RawIOBase):
    """A raw stream over anything with ``read(n)`` (a botocore StreamingBody), optionally capped and timed."""

    def __init__(self, source: Any, cap: int | None = None, budget: Budget | None = None) -> None:
        self._source = source
        self._cap = cap
        self._budget = budget
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._budget is not None and self._budget.overrun():
            raise OutOfTime
        view = memoryview(buffer).cast("B")
        data = self._source.read(min(len(view), READ_CHUNK))
        if not data:
            return 0
        self._read += len(data)
        if self._cap is not None and self._read > self._cap:
            raise TooLarge
        view[: len(data)] = data
        return len(data)


def open_stream(body: Any, cap: int, budget: Budget | None = None) -> io.BufferedReader:
    """``body`` as a buffered binary stream, gunzipped when it starts with the gzip magic.

    At most ``cap`` decompressed bytes come out (then :class:`TooLarge`), and past the budget's
    hard limit a read raises :class:`OutOfTime`.
    """
    raw = io.BufferedReader(_RawReader(body), buffer_size=READ_CHUNK)
    inner: Any = gzip.GzipFile(fileobj=raw, mode="rb") if raw.peek(2)[:2] == GZIP_MAGIC else raw
    return io.BufferedReader(_RawReader(inner, cap, budget), buffer_size=READ_CHUNK)


# ---- small helpers ---------------------------------------------------------------------------------------


def _iso(when: datetime) -> str:
    return utc_text(when)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _optional_str(value: object, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{where}: expected a string or null")


def _optional_time(value: object, where: str) -> datetime | None:
    return None if value is None else parse_zoned(value, where)


def _optional_day(value: object, where: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError(f"{where}: expected YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where}: expected YYYY-MM-DD") from None


def _failure_from(value: object) -> CallFailure | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(value.get(k), str) for k in ("call", "error")):
        raise ValueError("source.failure: expected {call, error, message}")
    return CallFailure(call=value["call"], error=value["error"], message=str(value.get("message", ""))[:300])

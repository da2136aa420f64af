"""Where ``detect`` finds CloudTrail records besides local files: a trail's bucket, or LookupEvents.

**A trail bucket** (``s3://bucket/prefix/``): CloudTrail writes
``[prefix/]AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<file>.json.gz``, and an
organisation trail ``[prefix/]AWSLogs/<org-id>/<account>/CloudTrail/<region>/YYYY/MM/DD/``.
:class:`TrailListing` finds the accounts and regions with ``ListObjectsV2`` and a ``/``
delimiter (or takes the ones given), then lists only the day folders of the window, so the
bucket is never listed whole. Each object becomes an :class:`S3Object`, a
:class:`handlers.detection.cloudtrail_files.ByteSource` that ``detect`` reads exactly like a local
file, streamed from ``GetObject`` (nothing written to disk).

**No trail bucket** (``--lookup-events``): :class:`LookupEventsReader` reads the 90-day
management event history, one ``EventName`` lookup attribute per request (the API's only
filter), paced to the documented 2 requests per second per account and region, backing off
and retrying on throttling. Data events (``PutObject``, ...) are not in that history.

Standard library and boto3 only: worker processes import this module to read objects.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from handlers.detection.rules import data_event_names
from handlers.detection.safe_text import ACCOUNT_ID, BUCKET_NAME, REGION_NAME
from handlers.detection.timestamps import utc_text

# Calls CloudTrail records only as data events (the rules' DATA_EVENTS): LookupEvents never holds them.
S3_DATA_EVENT_NAMES: frozenset[str] = frozenset(data_event_names())
LOOKUP_RATE = 2.0  # requests per second per account per region (CloudTrail quotas)
LOOKUP_PAGE = 50  # LookupEvents' largest MaxResults
LOOKUP_HISTORY = timedelta(days=90)
THROTTLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
THROTTLE_RETRIES = 4  # after the first try; backoff 1, 2, 4, 8 s
BACKOFF_BASE = 1.0

_ORG = re.compile(r"o-[a-z0-9]{10,32}")
_RELATIVE = re.compile(r"(\d+)\s*([dhm])")

# S3 calls retry transient errors themselves; LookupEvents does not, so that the pacer sees every try.
_S3_CONFIG = Config(retries={"total_max_attempts": 3, "mode": "standard"}, max_pool_connections=4)
_LOOKUP_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"})


class SourceError(Exception):
    """A source that cannot be read at all (bad URL, missing bucket, no access): one line for stderr."""


# --- clients --------------------------------------------------------------------------------------

ClientHook = Callable[[Any], None]
_client_hooks: list[ClientHook] = []
_clients: dict[tuple[int, str, str | None], Any] = {}


def add_client_hook(hook: ClientHook) -> None:
    """Call ``hook`` on every client made from now on (tests count calls or put a fake in front)."""
    _client_hooks.append(hook)
    _clients.clear()


def reset_clients() -> None:
    """Forget the cached clients and hooks."""
    _client_hooks.clear()
    _clients.clear()


def client(service: Literal["cloudtrail", "s3"], region: str | None) -> Any:
    """A client for ``service`` in ``region``, one per process (a forked worker must not reuse its parent's).

    The endpoint comes from boto3's own configuration (``AWS_ENDPOINT_URL`` points it at a local
    emulator).
    """
    key = (os.getpid(), service, region)
    made = _clients.get(key)
    if made is None:
        config = _LOOKUP_CONFIG if service == "cloudtrail" else _S3_CONFIG
        made = boto3.session.Session().client(service, region_name=region, config=config)
        for hook in _client_hooks:
            hook(made)
        _clients[key] = made
    return made


def describe_error(exc: BaseException) -> str:
    """``Code: message`` of an AWS error, or the exception's text."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or ""
        return f"{code}: {message}".rstrip(": ") if message else str(code)
    return str(exc) or type(exc).__name__


def _code(exc: BaseException) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


# --- time window ----------------------------------------------------------------------------------


def parse_time(text: str, now: datetime, what: str = "--since") -> datetime:
    """``text`` in UTC: an ISO date or date-time (naive means UTC), or an age: ``90d``, ``12h``, ``30m``."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return (
            now
            - {"d": timedelta(days=amount), "h": timedelta(hours=amount), "m": timedelta(minutes=amount)}[
                unit
            ]
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SourceError(
            f"{what} {text!r}: expected an ISO date or time (2026-09-01, 2026-09-01T12:00Z) "
            "or an age such as 90d, 12h or 30m"
        ) from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def window(since: str | None, until: str | None, now: datetime) -> tuple[datetime | None, datetime]:
    """The ``[since, until]`` window; ``until`` defaults to ``now``. Refuses a window in the future."""
    start = parse_time(since, now, "--since") if since else None
    end = parse_time(until, now, "--until") if until else now
    if start is not None and start > now:
        raise SourceError(f"--since {since}: {utc_text(start)} is in the future")
    if start is not None and start > end:
        raise SourceError(f"--since {since} is after --until {until}")
    return start, min(end, now)


# --- a trail bucket -------------------------------------------------------------------------------


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` as (bucket, prefix ending in ``/`` or empty)."""
    if not url.startswith("s3://"):
        raise SourceError(f"{url}: not an s3:// URL")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise SourceError(f"{url}: {bucket!r} is not a valid S3 bucket name")
    prefix = prefix.strip("/")
    # A trail's folder given in full (…/AWSLogs/…) is not its prefix: say what is expected.
    if prefix == "AWSLogs" or prefix.endswith("/AWSLogs") or "/AWSLogs/" in f"/{prefix}/":
        raise SourceError(
            f"{url}: give the trail's prefix, the part before AWSLogs/ (s3://{bucket}/ if none)"
        )
    return bucket, f"{prefix}/" if prefix else ""


class _BodyReader(io.RawIOBase):
    """A ``GetObject`` body as a raw stream whose failures are ``OSError`` (so they name the object)."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:  # botocore and urllib3 errors alike: the read failed, say why
            raise OSError(f"reading the object failed: {describe_error(exc)}") from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


@dataclass(frozen=True)
class S3Object:
    """One log object; small and picklable, so worker processes fetch and read it themselves."""

    bucket: str
    key: str
    size: int | None
    region: str | None

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def open(self) -> io.BufferedReader:
        try:
            body = client("s3", self.region).get_object(Bucket=self.bucket, Key=self.key)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise OSError(f"GetObject failed: {describe_error(exc)}") from exc
        return io.BufferedReader(_BodyReader(body), buffer_size=1024 * 1024)


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


@dataclass
class TrailListing:
    """The log objects of a trail bucket for a window, found without listing the bucket whole.

    The window selects whole UTC day folders (CloudTrail files them by delivery day), so
    records a little outside ``[since, until]`` can be read too. Without ``since``, the day
    folders are found with delimiter listings (year, month, day) up to ``until``.
    """

    bucket: str
    prefix: str
    since: datetime | None
    until: datetime
    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    listed: int = 0  # objects yielded so far
    finished: bool = False  # every folder listed
    list_calls: int = 0
    region: str | None = None  # the bucket's
    trails: list[str] = field(default_factory=list)  # the ".../CloudTrail/<region>/" folders to read

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _client(self) -> Any:
        return client("s3", self.region)

    def _list(
        self, prefix: str, delimiter: str | None = "/", start_after: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Pages of one listing; raises ClientError/BotoCoreError."""
        token: str | None = None
        while True:
            request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if delimiter:
                request["Delimiter"] = delimiter
            if token:
                request["ContinuationToken"] = token
            self.list_calls += 1
            page = self._client().list_objects_v2(**request)
            yield page
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def _folders(self, prefix: str) -> list[str]:
        """The next path components under ``prefix`` (names, without the slash)."""
        names: list[str] = []
        for page in self._list(prefix):
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"][len(prefix) :].rstrip("/"))
        return names

    def check(self) -> None:
        """Find the bucket's region, the accounts and the regions; raises :class:`SourceError`."""
        try:
            head = client("s3", None).head_bucket(Bucket=self.bucket)
            headers = head.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            self.region = headers.get("x-amz-bucket-region") or head.get("BucketRegion") or None
            self._discover()
        except NoCredentialsError:
            raise SourceError(f"{self.url}: no AWS credentials found") from None
        except ClientError as exc:
            code = _code(exc)
            if code in ("404", "NoSuchBucket"):
                raise SourceError(f"{self.url}: no such bucket") from None
            if code in ("403", "AccessDenied", "AllAccessDisabled"):
                raise SourceError(
                    f"{self.url}: access denied (reading a trail needs s3:ListBucket and s3:GetObject)"
                ) from None
            raise SourceError(f"{self.url}: {describe_error(exc)}") from None
        except BotoCoreError as exc:
            raise SourceError(f"{self.url}: {describe_error(exc)}") from None

    def _discover(self) -> None:
        root = f"{self.prefix}AWSLogs/"
        owners = self._folders(root)
        if not owners:
            raise SourceError(f"{self.url}: no CloudTrail logs under s3://{self.bucket}/{root}")
        found: list[tuple[str, str]] = []  # (account, ".../<account>/")
        for owner in owners:
            if ACCOUNT_ID.fullmatch(owner):
                found.append((owner, f"{root}{owner}/"))
            elif _ORG.fullmatch(owner):  # an organisation trail: one folder per member account
                found += [
                    (a, f"{root}{owner}/{a}/")
                    for a in self._folders(f"{root}{owner}/")
                    if ACCOUNT_ID.fullmatch(a)
                ]
        if self.accounts:
            present = {account for account, _ in found}
            for missing in sorted(set(self.accounts) - present):
                self.warnings.append(f"{self.url}: account {missing} has no logs in this bucket")
            found = [(a, folder) for a, folder in found if a in self.accounts]
        for _, folder in found:
            regions = self.regions or tuple(
                r for r in self._folders(f"{folder}CloudTrail/") if REGION_NAME.fullmatch(r)
            )
            self.trails += [f"{folder}CloudTrail/{region}/" for region in regions]

    def _day_folders(self, trail: str) -> Iterator[str]:
        """``trail``'s day folders in the window, oldest first."""
        if self.since is not None:
            for date_in_window in _days(self.since.date(), self.until.date()):
                yield f"{trail}{date_in_window:%Y/%m/%d}/"
            return
        last = self.until.date()
        for year in sorted(y for y in self._folders(trail) if y.isdigit() and int(y) <= last.year):
            for month in sorted(m for m in self._folders(f"{trail}{year}/") if m.isdigit()):
                if (int(year), int(month)) > (last.year, last.month):
                    continue
                for day in sorted(d for d in self._folders(f"{trail}{year}/{month}/") if d.isdigit()):
                    if (int(year), int(month), int(day)) <= (last.year, last.month, last.day):
                        yield f"{trail}{year}/{month}/{day}/"

    def objects(self) -> Iterator[S3Object]:
        """Every log object of the window, folder by folder; listing errors go to :attr:`errors`."""
        for trail in self.trails:
            try:
                for folder in self._day_folders(trail):
                    for page in self._list(folder, delimiter=None):
                        for item in page.get("Contents", []):
                            key = item["Key"]
                            if key.endswith("/"):
                                continue
                            self.listed += 1
                            yield S3Object(self.bucket, key, item.get("Size"), self.region)
            except (ClientError, BotoCoreError) as exc:
                # The rest of this trail folder is unknown; the other folders still count.
                self.errors.append(f"s3://{self.bucket}/{trail}: listing failed: {describe_error(exc)}")
        self.finished = True


# --- LookupEvents ---------------------------------------------------------------------------------


class Pacer:
    """At most ``rate`` calls per second: :meth:`wait` sleeps until the next slot is due."""

    def __init__(
        self,
        rate: float = LOOKUP_RATE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self._next is not None and now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


@dataclass
class LookupEvent:
    """One event from the history: its region, the name looked up, and the parsed record."""

    region: str
    name: str
    record: dict[str, Any]


@dataclass
class LookupEventsReader:
    """Watched management events of ``regions`` in ``[since, until]`` from CloudTrail's event history."""

    regions: tuple[str, ...]
    names: tuple[str, ...]
    since: datetime
    until: datetime
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rate: float = LOOKUP_RATE
    retries: int = THROTTLE_RETRIES
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    throttled: int = 0
    events: int = 0  # as returned, duplicates included
    duplicates: int = 0
    done: int = 0  # (region, name) lookups finished
    _seen: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return len(self.regions) * len(self.names)

    def read(self) -> Iterator[LookupEvent]:
        """Each event once (by ``eventID``), name by name and region by region, newest first in each."""
        for region in self.regions:
            pacer = Pacer(self.rate, self.clock, self.sleep)  # the quota is per account and region
            for index, name in enumerate(self.names):
                try:
                    yield from self._lookup(region, name, pacer)
                except (ClientError, BotoCoreError) as exc:
                    # Access or configuration errors hold for every name: skip the region, say so once.
                    left = len(self.names) - index
                    self.errors.append(
                        f"LookupEvents in {region} ({name}): {describe_error(exc)}; "
                        f"{left} of this region's {len(self.names)} lookups not done"
                    )
                    self.done += left
                    break
                self.done += 1

    def _lookup(self, region: str, name: str, pacer: Pacer) -> Iterator[LookupEvent]:
        trail = client("cloudtrail", region)
        request: dict[str, Any] = {
            "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}],
            "StartTime": self.since,
            "EndTime": self.until,
            "MaxResults": LOOKUP_PAGE,
        }
        oldest: str | None = None  # events come newest first: what is left unread is older than this
        while True:
            page = self._call(trail, request, pacer)
            if page is None:
                upto = oldest or utc_text(self.until)
                self.errors.append(
                    f"LookupEvents in {region} ({name}): still throttled after {self.retries} retries; "
                    f"events from {utc_text(self.since)} to {upto} not read"
                )
                return
            for event in page.get("Events", []):
                self.events += 1
                when = event.get("EventTime")
                if isinstance(when, datetime):
                    oldest = utc_text(when)
                event_id = str(event.get("EventId") or "")
                if event_id in self._seen:
                    self.duplicates += 1
                    continue
                record = self._record(region, event)
                if record is None:
                    continue
                self._seen.add(str(record.get("eventID") or event_id))
                if event_id:
                    self._seen.add(event_id)
                yield LookupEvent(region, name, record)
            token = page.get("NextToken")
            if not token:
                return
            request["NextToken"] = token

    def _call(self, trail: Any, request: dict[str, Any], pacer: Pacer) -> dict[str, Any] | None:
        """One page, retrying throttling with backoff; None when still throttled after the retries."""
        for attempt in range(self.retries + 1):
            pacer.wait()
            self.requests += 1
            try:
                page: dict[str, Any] = trail.lookup_events(**request)
                return page
            except ClientError as exc:
                if _code(exc) not in THROTTLE_CODES:
                    raise
                self.throttled += 1
                if attempt < self.retries:
                    self.sleep(BACKOFF_BASE * 2**attempt)
        return None

    def _record(self, region: str, event: dict[str, Any]) -> dict[str, Any] | None:
        text = event.get("CloudTrailEvent")
        try:
            record = json.loads(text) if isinstance(text, str) else None
        except ValueError as exc:
            self.errors.append(
                f"LookupEvents in {region}: event {event.get('EventId')}: bad CloudTrailEvent: {exc}"
            )
            return None
        if not isinstance(record, dict):
            self.errors.append(
                f"LookupEvents in {region}: event {event.get('EventId')}: no CloudTrailEvent record"
            )
            return None
        return record


def lookup_names(watched: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names LookupEvents can find, data-event names it cannot), each sorted."""
    names = sorted(set(watched))
    return tuple(n for n in names if n not in S3_DATA_EVENT_NAMES), tuple(
        n for n in names if n in S3_DATA_EVENT_NAMES
    )


def history_start(now: datetime) -> datetime:
    """The oldest time LookupEvents still holds."""
    return now - LOOKUP_HISTORY


def default_region() -> str | None:
    """The region boto3 is configured with (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile)."""
    return boto3.session.Session().region_name


def is_region(name: str) -> bool:
    """True for a region name's shape (``eu-west-1``, ``us-gov-west-1``)."""
    return REGION_NAME.fullmatch(name) is not None
